//! A small websocat: each line of stdin is sent as a text message, each message
//! received is printed. End of input sends a close (1000) and waits for the server's.
//!
//! Usage: cargo run --example client -- ws://127.0.0.1:9001/   (wss:// works too)

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001/".to_owned());
    let (ws, response) = fastws::connect(url.as_str()).await?;
    eprintln!("connected to {url} ({})", response.status());
    let (mut sink, mut stream) = ws.split();

    let printer = tokio::spawn(async move {
        while let Some(message) = stream.next().await {
            match message {
                Ok(fastws::Message::Text(text)) => println!("{text}"),
                Ok(fastws::Message::Binary(bytes)) => println!("<{} binary bytes>", bytes.len()),
                Ok(fastws::Message::Close(close)) => eprintln!("server closed: {close:?}"),
                Ok(_) => {}
                Err(err) => {
                    eprintln!("error: {err}");
                    break;
                }
            }
        }
    });

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        sink.send(fastws::Message::text(line)).await?;
    }
    // Sends close 1000; the printer ends when the server answers and closes.
    sink.close().await?;
    printer.await?;
    Ok(())
}
