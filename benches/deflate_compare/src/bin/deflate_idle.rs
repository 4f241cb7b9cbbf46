//! A neutral permessage-deflate load generator (tokio + flate2, not fastws), for run.sh.
//!
//! Opens N connections offering `permessage-deflate; client_max_window_bits` (what
//! Chromium sends), sends M masked, compressed 1 KiB JSON text messages on each, one
//! after another, inflates every echo and checks it byte for byte, then prints
//! `wire_ratio X` (compressed echo payload bytes / plain bytes), `ready N`, and keeps
//! the connections open and silent for --hold seconds.
//!
//! Usage: deflate_idle --addr 127.0.0.1:PORT [-n 2000] [-m 0|1|100] [--hold SECS]   (default hold 60 s)

use std::io::Write;
use std::time::Duration;

use fastws_deflate_compare::{
    Error, Negotiated, Peer, frame, handshake, json_message, read_message, splitmix,
};
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Handshakes (and their message exchanges) under way at once.
const CONCURRENT: usize = 64;
/// Size of every message, in bytes of JSON.
const MESSAGE_LEN: usize = 1024;
/// Longest time for one connection's handshake and messages.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

fn usage() -> ! {
    eprintln!("usage: deflate_idle --addr 127.0.0.1:PORT [-n 2000] [-m 0|1|100] [--hold SECS]");
    std::process::exit(2)
}

/// Counts one connection reports back.
#[derive(Debug, Default)]
struct Outcome {
    stream: Option<TcpStream>,
    negotiated: Option<Negotiated>,
    plain_bytes: u64,
    wire_bytes: u64,
    uncompressed_echoes: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (mut addr, mut count, mut messages, mut hold) = (String::new(), 2000usize, 0usize, 60.0f64);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--addr" => addr = value,
            "-n" => count = value.parse().unwrap_or_else(|_| usage()),
            "-m" => messages = value.parse().unwrap_or_else(|_| usage()),
            "--hold" => hold = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    if addr.is_empty() || count > 20_000 || messages > 10_000 || !(0.0..=600.0).contains(&hold) {
        usage();
    }
    let outcomes: Vec<Outcome> = futures::stream::iter(0..count)
        .map(|id| {
            let addr = addr.clone();
            async move {
                tokio::time::timeout(CONNECTION_TIMEOUT, connection(&addr, id, messages))
                    .await
                    .map_err(|_| format!("connection {id}: timed out"))?
                    .map_err(|e| format!("connection {id}: {e}"))
            }
        })
        .buffer_unordered(CONCURRENT)
        .try_collect()
        .await
        .unwrap_or_else(|e: String| {
            eprintln!("deflate_idle: {e}");
            std::process::exit(1)
        });
    let deflate = outcomes
        .iter()
        .filter(|o| o.negotiated.is_some_and(|n| n.deflate))
        .count();
    let plain: u64 = outcomes.iter().map(|o| o.plain_bytes).sum();
    let wire: u64 = outcomes.iter().map(|o| o.wire_bytes).sum();
    if let Some(n) = outcomes.first().and_then(|o| o.negotiated) {
        println!("negotiated {n:?}");
    }
    println!("deflate {deflate} of {}", outcomes.len());
    println!(
        "uncompressed_echoes {}",
        outcomes.iter().map(|o| o.uncompressed_echoes).sum::<u64>()
    );
    if plain > 0 {
        println!("wire_ratio {:.3}", wire as f64 / plain as f64);
    } else {
        println!("wire_ratio -");
    }
    println!("ready {}", outcomes.len());
    let _ = std::io::stdout().flush();
    tokio::time::sleep(Duration::from_secs_f64(hold)).await;
    drop(outcomes);
}

/// One connection: handshake, M messages echoed and checked; returns the open stream.
async fn connection(addr: &str, id: usize, messages: usize) -> Result<Outcome, Error> {
    let (mut stream, mut buf, negotiated) = handshake(addr, id).await?;

    let mut outcome = Outcome {
        negotiated: Some(negotiated),
        ..Outcome::default()
    };
    if messages > 0 {
        let mut peer = Peer::new(negotiated);
        for seq in 0..messages {
            let text = json_message(id, seq, MESSAGE_LEN);
            let payload = peer.compress(text.as_bytes())?;
            let mask = (splitmix((id as u64) << 20 | seq as u64) as u32).to_le_bytes();
            stream
                .write_all(&frame(&payload, negotiated.deflate, mask))
                .await?;
            let (rsv1, echoed) = read_message(&mut stream, &mut buf).await?;
            if rsv1 && !negotiated.deflate {
                return Err(format!("echo {seq}: RSV1 set without permessage-deflate").into());
            }
            // A sender may leave a message uncompressed (RFC 7692 §6); counted, not refused.
            outcome.uncompressed_echoes += u64::from(negotiated.deflate && !rsv1);
            let plain = if rsv1 {
                peer.decompress(&echoed)?
            } else {
                echoed.clone()
            };
            if plain != text.as_bytes() {
                return Err(format!("echo {seq}: differs from the message sent").into());
            }
            outcome.plain_bytes += plain.len() as u64;
            outcome.wire_bytes += echoed.len() as u64;
        }
        // The contexts go: only the silent connection is held.
    }
    if !buf.is_empty() {
        return Err(format!("{} unexpected bytes after the echoes", buf.len()).into());
    }
    outcome.stream = Some(stream);
    Ok(outcome)
}
