//! A WebSocket echo server: text comes back as text, binary as binary.
//!
//! Usage: cargo run --release --example echo_server -- [ADDR]   (default 127.0.0.1:9001)
//!
//! One task per connection, echoing with `stream.forward(sink)`. When a client offers subprotocols, the first one is
//! selected (browsers fail a connection whose offered subprotocols the server ignores).

use http::HeaderValue;
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    println!("echo server listening on ws://{}", listener.local_addr()?);
    loop {
        let (tcp, peer) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(err) = serve(tcp).await {
                eprintln!("{peer}: {err}");
            }
        });
    }
}

async fn serve(tcp: TcpStream) -> Result<(), fastws::Error> {
    tcp.set_nodelay(true)?;
    let ws = fastws::accept_with(tcp, |request, mut response| {
        let first = fastws::handshake::offered_protocols(request.headers()).next();
        if let Some(protocol) = first.and_then(|p| HeaderValue::from_str(p).ok()) {
            response
                .headers_mut()
                .insert(http::header::SEC_WEBSOCKET_PROTOCOL, protocol);
        }
        Ok(response)
    })
    .await?;
    // Flushes only when no received message is waiting: bursts share a write.
    let (sink, stream) = ws.split();
    stream.forward(sink).await
}
