//! A broadcast chat server: every message a client sends goes to every other client.
//!
//! Usage: cargo run --example chat -- [ADDR]   (default 127.0.0.1:9002)
//!
//! Each connection is split: one task reads the client's messages into a broadcast
//! channel, another writes the other clients' messages to it, concurrently.

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

/// A chat line and the id of the connection it came from.
type Line = (u64, fastws::Message);

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    println!("chat server listening on ws://{}", listener.local_addr()?);
    let (lines, _) = broadcast::channel::<Line>(1024);
    for id in 0.. {
        let (tcp, peer) = listener.accept().await?;
        let lines = lines.clone();
        tokio::spawn(async move {
            if let Err(err) = serve(id, tcp, lines).await {
                eprintln!("{peer}: {err}");
            }
        });
    }
    Ok(())
}

async fn serve(id: u64, tcp: TcpStream, lines: broadcast::Sender<Line>) -> Result<(), fastws::Error> {
    tcp.set_nodelay(true)?;
    let ws = fastws::accept(tcp).await?;
    let (mut sink, mut stream) = ws.split();
    let mut others = lines.subscribe();

    // Writer: forward the other clients' lines until the connection closes.
    let writer = tokio::spawn(async move {
        loop {
            match others.recv().await {
                Ok((from, _)) if from == id => {}
                Ok((_, message)) => sink.send(message).await?,
                // A slow client misses lines rather than slowing everyone down.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
        Ok::<_, fastws::Error>(())
    });

    // Reader: publish this client's lines; pings are answered by the stream itself.
    while let Some(message) = stream.next().await {
        let message = message?;
        if message.is_data() {
            // No receivers is fine: nobody else is connected.
            let _ = lines.send((id, message));
        }
    }
    writer.abort();
    Ok(())
}
