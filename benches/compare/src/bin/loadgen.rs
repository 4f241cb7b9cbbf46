//! The load generator: C connections, each keeping K binary messages of S bytes in
//! flight, for a fixed duration after a warm-up; prints one line
//! `server C S K msgs/s MB/s p50 p99 p99.9` (MB/s counts echoed payload, 10^6
//! bytes; the last three are round-trip percentiles in microseconds, from an HDR
//! histogram of every echo of the measured part, see `client::Progress`).
//!
//! Usage: loadgen --server NAME --addr 127.0.0.1:PORT -c C -s S -k K [--warmup SECS] [--duration SECS]
//!
//! The warm-up lasts at least `--warmup` seconds and until C x K echoes have come
//! back (at most 30 s more).
//!
//! A server named `raw_tcp` (or anything starting with `raw`) echoes the client's
//! masked frames as they are; every other server must answer unmasked frames.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fastws_compare::client::{self, Load, Progress};

/// The longest the warm-up may wait for the first C x K echoes.
const WARM_LIMIT: Duration = Duration::from_secs(30);

struct Args {
    server: String,
    addr: String,
    connections: usize,
    size: usize,
    in_flight: usize,
    warmup: f64,
    duration: f64,
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen --server NAME --addr 127.0.0.1:PORT -c C -s S -k K [--warmup SECS] [--duration SECS]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        server: String::new(),
        addr: String::new(),
        connections: 1,
        size: 16,
        in_flight: 1,
        warmup: 1.0,
        duration: 3.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        let bad = |_| usage();
        match flag.as_str() {
            "--server" => args.server = value,
            "--addr" => args.addr = value,
            "-c" => args.connections = value.parse().unwrap_or_else(bad),
            "-s" => args.size = value.parse().unwrap_or_else(bad),
            "-k" => args.in_flight = value.parse().unwrap_or_else(bad),
            "--warmup" => args.warmup = value.parse().unwrap_or_else(|_| usage()),
            "--duration" => args.duration = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let bounded = (1..=10_000).contains(&args.connections)
        && (1..=1024).contains(&args.in_flight)
        && args.size <= 64 << 20
        && (0.0..=600.0).contains(&args.warmup)
        && args.duration > 0.0
        && args.duration <= 600.0;
    if args.server.is_empty() || args.addr.is_empty() || !bounded {
        usage();
    }
    args
}

fn fail(message: String) -> ! {
    eprintln!("loadgen: {message}");
    std::process::exit(1)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse_args();
    let load = Load::new(args.size, args.in_flight, args.server.starts_with("raw"));
    let progress = Arc::new(Progress::default());

    let mut connections = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let tcp = client::connect(&args.addr)
            .await
            .unwrap_or_else(|e| fail(format!("{}: {e}", args.server)));
        connections.push(tcp);
    }
    for tcp in connections {
        let (load, progress, server) = (load.clone(), Arc::clone(&progress), args.server.clone());
        tokio::spawn(async move {
            if let Err(e) = client::drive(tcp, load, progress).await {
                fail(format!("{server}: {e}"));
            }
        });
    }

    // The warm-up lasts at least --warmup, and until C x K echoes (one window per
    // connection on average) have come back: with many large messages in flight the
    // first round trip alone can outlast a short warm-up.
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let window = (args.connections * args.in_flight) as u64;
    let deadline = Instant::now() + WARM_LIMIT;
    while progress.echoed.load(Ordering::Relaxed) < window {
        if Instant::now() > deadline {
            fail(format!(
                "{}: fewer than C x K echoes within {WARM_LIMIT:?} of warm-up",
                args.server
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    progress.start_recording();
    let (start, from) = (Instant::now(), progress.echoed.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let (elapsed, to) = (
        start.elapsed().as_secs_f64(),
        progress.echoed.load(Ordering::Relaxed),
    );

    let micros = {
        let round_trips = progress.round_trips();
        [0.5, 0.99, 0.999].map(|q| round_trips.value_at_quantile(q) as f64 / 1e3)
    };

    let rate = (to - from) as f64 / elapsed;
    println!(
        "{} {} {} {} {:.0} {:.2} {:.1} {:.1} {:.1}",
        args.server,
        args.connections,
        args.size,
        args.in_flight,
        rate,
        rate * args.size as f64 / 1e6,
        micros[0],
        micros[1],
        micros[2]
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // The connections are dropped with the process: the run is over.
    std::process::exit(0)
}
