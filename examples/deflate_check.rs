//! Checks permessage-deflate against an echo server of another implementation:
//! connects with fastws (deflate offered, every message compressed), requires the
//! server to accept permessage-deflate, sends a set of messages (Unicode text,
//! binary, 100 KiB of JSON twice, incompressible bytes), and requires every echo to
//! come back byte for byte with its type. Exits 1 on any mismatch or failure, or
//! after 30 s. `scripts/interop.sh` runs it against Node's `ws`.
//!
//! Usage: cargo run --example deflate_check -- ws://127.0.0.1:PORT/

use std::process::ExitCode;
use std::time::Duration;

use fastws::{CloseCode, Message};
use futures_util::{SinkExt, StreamExt};

#[tokio::main]
async fn main() -> ExitCode {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: deflate_check ws://127.0.0.1:PORT/");
        return ExitCode::from(2);
    };
    match tokio::time::timeout(Duration::from_secs(30), check(&url)).await {
        Ok(Ok(count)) => {
            println!("deflate_check: {count} messages echoed intact over permessage-deflate");
            ExitCode::SUCCESS
        }
        Ok(Err(reason)) => {
            eprintln!("deflate_check: FAIL: {reason}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("deflate_check: FAIL: timed out after 30 s");
            ExitCode::FAILURE
        }
    }
}

/// Runs the exchange; returns how many messages came back intact.
async fn check(url: &str) -> Result<usize, String> {
    let (mut ws, response) = fastws::connect(url)
        .await
        .map_err(|err| format!("connect: {err}"))?;
    let answer = response
        .headers()
        .get(http::header::SEC_WEBSOCKET_EXTENSIONS)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    println!("deflate_check: server answered {answer:?}");
    if !answer.trim_start().starts_with("permessage-deflate") {
        return Err(format!("permessage-deflate not negotiated (answer {answer:?})"));
    }

    let messages = messages();
    for (i, message) in messages.iter().enumerate() {
        ws.send(message.clone())
            .await
            .map_err(|err| format!("message {i}: send: {err}"))?;
        match ws.next().await {
            Some(Ok(echo)) if echo == *message => {}
            Some(Ok(echo)) => {
                return Err(format!(
                    "message {i}: echo differs: sent {} bytes ({}), got {} bytes ({})",
                    message.payload().len(),
                    kind(message),
                    echo.payload().len(),
                    kind(&echo)
                ));
            }
            Some(Err(err)) => return Err(format!("message {i}: {err}")),
            None => return Err(format!("message {i}: the connection ended")),
        }
    }

    ws.send(Message::close(CloseCode::Normal, "done"))
        .await
        .map_err(|err| format!("close: {err}"))?;
    match ws.next().await {
        Some(Ok(Message::Close(_))) => Ok(messages.len()),
        other => Err(format!("expected the close echo, got {other:?}")),
    }
}

fn kind(message: &Message) -> &'static str {
    match message {
        Message::Text(_) => "text",
        Message::Binary(_) => "binary",
        _ => "control",
    }
}

/// The set of `scripts/interop/messages.mjs`, byte for byte.
fn messages() -> Vec<Message> {
    let counting: Vec<u8> = (0..1024).map(|i| (i % 256) as u8).collect();
    vec![
        Message::text("hello, κόσμε 👋 ünïcödé 𝄞 ✓"),
        Message::binary(counting),
        Message::text(json(100 * 1024)),
        // The same again: under context takeover it refers back into the previous one.
        Message::text(json(100 * 1024)),
        Message::binary(noise(4096)),
        Message::text("short, after the long ones"),
    ]
}

/// JSON-like ASCII text of exactly `len` bytes.
fn json(len: usize) -> String {
    let mut text = String::from("[");
    let mut i = 0u64;
    while text.len() < len {
        text.push_str(&format!(
            r#"{{"id":{i},"name":"user {}","email":"user{i}@example.com","score":{},"active":{}}},"#,
            i % 97,
            (i * 7919) % 1000,
            i % 3 == 0
        ));
        i += 1;
    }
    text.truncate(len);
    text
}

/// `len` bytes of a multiplicative hash: no structure deflate can use.
fn noise(len: u32) -> Vec<u8> {
    (1..=len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}
