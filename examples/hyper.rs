//! A hyper 1.x server with a WebSocket echo route next to a plain HTTP route.
//!
//! Usage: cargo run --features hyper --example hyper -- [ADDR]   (default 127.0.0.1:9004)
//!
//! `GET /` answers text; `GET /ws` upgrades to a WebSocket echo (permessage-deflate
//! negotiated as with `fastws::accept`).

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9004".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    println!(
        "http on http://{0}/ and websocket echo on ws://{0}/ws",
        listener.local_addr()?
    );
    loop {
        let (tcp, _) = listener.accept().await?;
        tokio::spawn(async move {
            let connection = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service_fn(route))
                .with_upgrades();
            if let Err(err) = connection.await {
                eprintln!("connection error: {err}");
            }
        });
    }
}

async fn route(mut request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() != "/ws" {
        return Ok(Response::new(Full::new(Bytes::from_static(
            b"hello over plain http\n",
        ))));
    }
    match fastws::hyper::upgrade(&mut request, fastws::Config::default()) {
        Ok((response, upgrade)) => {
            tokio::spawn(async move {
                match upgrade.await {
                    Ok(ws) => {
                        let (sink, stream) = ws.split();
                        if let Err(err) = stream.forward(sink).await {
                            eprintln!("websocket error: {err}");
                        }
                    }
                    Err(err) => eprintln!("upgrade failed: {err}"),
                }
            });
            Ok(response)
        }
        Err(rejection) => {
            let refusal = rejection.response();
            let mut response = Response::new(Full::new(Bytes::from(refusal.body().clone())));
            *response.status_mut() = refusal.status();
            response.headers_mut().extend(refusal.headers().clone());
            if response.status() == StatusCode::OK {
                *response.status_mut() = StatusCode::BAD_REQUEST;
            }
            Ok(response)
        }
    }
}
