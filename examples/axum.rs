//! An axum app serving a WebSocket route with fastws next to plain HTTP routes.
//!
//! Usage: cargo run --features hyper --example axum -- [ADDR]   (default 127.0.0.1:9005)
//!
//! `GET /` and `GET /health` are plain routes; `GET /ws` is a WebSocket echo that
//! selects the first subprotocol the client offers.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use http::HeaderValue;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9005".to_owned());
    let app = Router::new()
        .route("/", get(|| async { "fastws inside axum\n" }))
        .route("/health", get(|| async { "ok\n" }))
        .route("/ws", get(websocket));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "axum on http://{0}/ with a websocket echo on ws://{0}/ws",
        listener.local_addr()?
    );
    axum::serve(listener, app).await
}

async fn websocket(mut request: Request) -> Response {
    let offered = fastws::handshake::offered_protocols(request.headers())
        .next()
        .map(str::to_owned);
    match fastws::hyper::upgrade::<_, Body>(&mut request, fastws::Config::default()) {
        Ok((mut response, upgrade)) => {
            if let Some(protocol) = offered.and_then(|p| HeaderValue::from_str(&p).ok()) {
                response
                    .headers_mut()
                    .insert(http::header::SEC_WEBSOCKET_PROTOCOL, protocol);
            }
            tokio::spawn(async move {
                if let Ok(ws) = upgrade.await {
                    let (sink, stream) = ws.split();
                    let _ = stream.forward(sink).await;
                }
            });
            response
        }
        Err(rejection) => {
            let refusal = rejection.response();
            (
                refusal.status(),
                refusal.headers().clone(),
                refusal.body().clone(),
            )
                .into_response()
        }
    }
}
