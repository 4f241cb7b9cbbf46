//! Opens N upgraded WebSocket connections and keeps them silent, for idle_mem.sh
//! to read the server's resident memory. Prints `ready N` once all are open.
//!
//! Usage: idle --addr 127.0.0.1:PORT [-n 5000] [--hold SECS]   (default hold 60 s)

use std::io::Write;
use std::time::Duration;

use fastws_compare::client;
use futures::{StreamExt, TryStreamExt};

/// Upgrades under way at once (the server's accept backlog is finite).
const CONCURRENT: usize = 64;

fn usage() -> ! {
    eprintln!("usage: idle --addr 127.0.0.1:PORT [-n 5000] [--hold SECS]");
    std::process::exit(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (mut addr, mut count, mut hold) = (String::new(), 5000usize, 60.0f64);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--addr" => addr = value,
            "-n" => count = value.parse().unwrap_or_else(|_| usage()),
            "--hold" => hold = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    if addr.is_empty() || count > 20_000 || !(0.0..=600.0).contains(&hold) {
        usage();
    }
    let connections: Vec<_> = futures::stream::iter(0..count)
        .map(|_| client::connect(&addr))
        .buffer_unordered(CONCURRENT)
        .try_collect()
        .await
        .unwrap_or_else(|e| {
            eprintln!("idle: {e}");
            std::process::exit(1)
        });
    println!("ready {}", connections.len());
    let _ = std::io::stdout().flush();
    tokio::time::sleep(Duration::from_secs_f64(hold)).await;
    drop(connections);
}
