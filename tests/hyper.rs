//! Upgrading inside hyper: a WebSocket route served by a hyper 1.x server.

use std::convert::Infallible;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

/// The route under test: `/ws` upgrades and echoes, `/agreed` upgrades and sends
/// what the upgraded WebSocket reports as agreed, anything else is plain HTTP.
async fn route(mut request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let report = match request.uri().path() {
        "/ws" => false,
        "/agreed" => true,
        _ => return Ok(Response::new(Full::new(Bytes::from_static(b"plain")))),
    };
    match fastws::hyper::upgrade(&mut request, fastws::Config::default()) {
        Ok((response, upgrade)) => {
            tokio::spawn(async move {
                let mut ws = upgrade.await.expect("hyper hands the connection over");
                if report {
                    let agreed = format!("{:?} {}", ws.extensions(), ws.is_compressed());
                    let _ = ws.send(fastws::Message::text(agreed)).await;
                }
                let (sink, stream) = ws.split();
                let _ = stream.forward(sink).await;
            });
            Ok(response)
        }
        Err(rejection) => {
            let refusal = rejection.response();
            let mut response = Response::new(Full::new(Bytes::from(refusal.body().clone())));
            *response.status_mut() = refusal.status();
            response.headers_mut().extend(refusal.headers().clone());
            Ok(response)
        }
    }
}

/// A hyper server on an ephemeral port, serving `route` with upgrades on.
async fn hyper_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(
                http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service_fn(route))
                    .with_upgrades(),
            );
        }
    });
    addr
}

#[tokio::test]
async fn a_hyper_route_upgrades_and_echoes_with_deflate_negotiated() {
    let addr = hyper_server().await;
    let (mut ws, response) = timeout(LIMIT, fastws::connect(format!("ws://{addr}/ws")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 101);
    let extensions = response.headers()["sec-websocket-extensions"].to_str().unwrap();
    assert!(extensions.starts_with("permessage-deflate"), "{extensions}");
    for message in [
        fastws::Message::text("über hyper"),
        fastws::Message::binary(vec![9u8; 100_000]),
    ] {
        ws.send(message.clone()).await.unwrap();
        let echo = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(echo, message);
    }
    ws.close().await.unwrap();
    assert!(
        timeout(LIMIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .is_close()
    );
}

#[tokio::test]
async fn a_plain_request_to_the_websocket_route_gets_400() {
    let addr = hyper_server().await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    timeout(LIMIT, tcp.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

#[tokio::test]
async fn a_wrong_version_gets_426_with_the_supported_version() {
    let addr = hyper_server().await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = vec![0u8; 1024];
    let n = timeout(LIMIT, tcp.read(&mut head)).await.unwrap().unwrap();
    let head = String::from_utf8_lossy(&head[..n]).to_lowercase();
    assert!(head.starts_with("http/1.1 426"), "{head}");
    assert!(head.contains("sec-websocket-version: 13"), "{head}");
}

#[tokio::test]
async fn plain_routes_still_answer_next_to_the_websocket_route() {
    let addr = hyper_server().await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    timeout(LIMIT, tcp.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("plain"),
        "{answer}"
    );
}

#[tokio::test]
async fn the_upgraded_websocket_reports_the_extensions_of_the_101_it_answered_with() {
    let addr = hyper_server().await;
    let (mut ws, response) = timeout(LIMIT, fastws::connect(format!("ws://{addr}/agreed")))
        .await
        .unwrap()
        .unwrap();
    let sent = response.headers()["sec-websocket-extensions"].to_str().unwrap();
    let report = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(report.as_text(), Some(format!("Some({sent:?}) true").as_str()));
}
