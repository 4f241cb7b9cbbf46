//! A small websocat: each line of stdin is sent as a text message, each message
//! received is printed. End of input sends a close (1000) and waits for the server's.
//!
//! Usage: cargo run --example client -- [--proxy PROXY_URL] [WS_URL]
//!        (WS_URL defaults to ws://127.0.0.1:9001/; wss:// works too)
//!
//! `--proxy` takes `http://`, `https://`, `socks5://` or `socks5h://`, with
//! `user:password@` for credentials, and wins over the environment. Without it
//! the proxy variables apply as curl reads them (`HTTPS_PROXY` for wss://,
//! `HTTP_PROXY` for ws://, `ALL_PROXY`, `NO_PROXY`). Redirects are followed (up to 5).

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut proxy = None;
    let mut url = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--proxy" => proxy = Some(args.next().ok_or("--proxy needs a URL")?),
            _ if url.is_none() => url = Some(arg),
            _ => return Err(format!("unexpected argument {arg:?}").into()),
        }
    }
    let url = url.unwrap_or_else(|| "ws://127.0.0.1:9001/".to_owned());
    let mut request = fastws::ClientRequest::new(&url).follow_redirects(5);
    if let Some(proxy) = &proxy {
        request = request.proxy(proxy);
    }
    let (ws, response) = request.connect().await?;
    // The proxy's host and port only: its URL may hold a password.
    let via = match proxy.as_deref().map(fastws::Proxy::new) {
        Some(Ok(proxy)) => format!(" through {}:{}", proxy.host(), proxy.port()),
        _ => String::new(),
    };
    eprintln!("connected to {url}{via} ({})", response.status());
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
