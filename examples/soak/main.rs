//! A soak test: many clients keep mixed traffic going against an echo server for
//! minutes while a tenth of them drop their connections abruptly (TCP RST, no close
//! frame) and reconnect; every echo is checked byte for byte, in order.
//!
//! Usage: cargo run --release --example soak -- [--connections 1000] [--duration 180] [--server-pid PID] ws://127.0.0.1:PORT
//!
//! `scripts/soak.sh` builds `echo_server` and this, starts the server and runs the soak
//! against it. Other options: `--in-flight 4` (messages awaiting their echo, per
//! connection), `--think-ms 20` (mean pause between sends), `--ramp 2` (seconds over
//! which the first connections open), `--settle 5` (seconds between the last close
//! and the last memory sample), `--stall 30` (seconds without an echo after which a
//! connection counts as stalled), `--seed N`, `--deflate half` (`all` or `none`: which
//! clients offer permessage-deflate).
//!
//! Each client is one task that connects (by default even clients offer
//! permessage-deflate, odd ones turn it off), then sends, until the duration is over:
//! mostly small messages (16 B–1 KiB), some large ones (64 KiB–1 MiB, at most one in
//! flight), text (with multi-byte UTF-8) and binary, whose content comes from a
//! per-client seed so each echo is regenerated and compared; now and then a ping,
//! whose pong it sees through `Config::control_messages`. Then it waits for its echoes
//! and closes with 1000. One client in ten lives connections of 0.2–8 s that end with
//! an RST at a random moment (one in twenty of those in the middle of the upgrade
//! request) and reconnects at once; a connection it opens after the duration closes
//! at once, so every client ends with a clean close unless it failed.
//!
//! With `--server-pid`, the server's VmRSS is sampled every second: before the first
//! connection, its peak, and after every client has closed and `--settle` seconds.
//! The report is plain text on stdout. The exit status is 1 if an echo (or a pong)
//! did not match what was sent, if the server died, or if a client was still running
//! 60 s after the end of the duration; errors of other kinds are counted, not fatal.

mod connection;
mod report;
mod traffic;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::time::{Instant, sleep, sleep_until, timeout};

use connection::{Connection, Outcome};
use report::{Memory, Stats, report, sample_and_report};
use traffic::Rng;

/// How long the clients still running after the duration get before they count as hung.
const GRACE: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(reason) => {
            eprintln!("soak: {reason}");
            eprintln!(
                "usage: soak [--connections 1000] [--duration 180] [--server-pid PID] [--in-flight 4] \
                 [--think-ms 20] [--ramp 2] [--settle 5] [--stall 30] [--seed N] [--deflate half|all|none] \
                 ws://127.0.0.1:PORT"
            );
            return ExitCode::from(2);
        }
    };
    run(Arc::new(options)).await
}

/// The command line.
#[derive(Debug)]
struct Options {
    url: String,
    connections: u64,
    duration: Duration,
    server_pid: Option<u32>,
    in_flight: usize,
    think_ms: u64,
    ramp: Duration,
    settle: Duration,
    stall: Duration,
    seed: u64,
    deflate: Share,
}

/// Which clients offer permessage-deflate.
#[derive(Debug, Clone, Copy)]
enum Share {
    Half,
    All,
    None,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let mut options = Options {
            url: String::new(),
            connections: 1000,
            duration: Duration::from_secs(180),
            server_pid: None,
            in_flight: 4,
            think_ms: 20,
            ramp: Duration::from_secs(2),
            settle: Duration::from_secs(5),
            stall: Duration::from_secs(30),
            seed: 0x5eed,
            deflate: Share::Half,
        };
        while let Some(arg) = args.next() {
            if !arg.starts_with("--") {
                options.url = arg;
                continue;
            }
            let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{arg}: not a number: {value}"))
            };
            match arg.as_str() {
                "--connections" => options.connections = number()?.max(1),
                "--duration" => options.duration = Duration::from_secs(number()?),
                "--server-pid" => options.server_pid = Some(number()? as u32),
                "--in-flight" => options.in_flight = number()?.clamp(1, 64) as usize,
                "--think-ms" => options.think_ms = number()?,
                "--ramp" => options.ramp = Duration::from_secs(number()?),
                "--settle" => options.settle = Duration::from_secs(number()?),
                "--stall" => options.stall = Duration::from_secs(number()?.max(1)),
                "--seed" => options.seed = number()?,
                "--deflate" => {
                    options.deflate = match value.as_str() {
                        "half" => Share::Half,
                        "all" => Share::All,
                        "none" => Share::None,
                        _ => return Err(format!("--deflate: half, all or none, not {value}")),
                    }
                }
                _ => return Err(format!("unknown option {arg}")),
            }
        }
        if !options.url.starts_with("ws://") {
            return Err("the server's ws:// URL is required".to_owned());
        }
        Ok(options)
    }

    /// The server's address, from the URL.
    fn addr(&self) -> String {
        let rest = &self.url["ws://".len()..];
        rest.split('/').next().unwrap_or(rest).to_owned()
    }
}

async fn run(options: Arc<Options>) -> ExitCode {
    let stats = Arc::new(Stats::default());
    let memory = Arc::new(Memory::default());
    println!(
        "soak: {} connections for {} s against {} (in flight {}, think {} ms, seed {})",
        options.connections,
        options.duration.as_secs(),
        options.url,
        options.in_flight,
        options.think_ms,
        options.seed
    );
    if let Some(pid) = options.server_pid {
        match memory.sample(pid) {
            Some((rss, _)) => memory.start_kib.store(rss, Relaxed),
            None => {
                eprintln!("soak: no process {pid}");
                return ExitCode::FAILURE;
            }
        }
    }

    let started = Instant::now();
    let _ = stats.started.set(started);
    let deadline = started + options.duration;
    let sampler = tokio::spawn(sample_and_report(
        options.clone(),
        stats.clone(),
        memory.clone(),
        started,
    ));
    let mut clients = tokio::task::JoinSet::new();
    for id in 0..options.connections {
        let start_at = started + options.ramp.mul_f64(id as f64 / options.connections as f64);
        clients.spawn(client(id, options.clone(), stats.clone(), start_at, deadline));
    }
    let mut hung = 0;
    let all_done = async { while clients.join_next().await.is_some() {} };
    if timeout(options.duration + options.ramp + GRACE, all_done)
        .await
        .is_err()
    {
        hung = clients.len();
        clients.abort_all();
        while clients.join_next().await.is_some() {}
    }
    let elapsed = started.elapsed();
    sleep(options.settle).await;
    sampler.abort();
    let end = options.server_pid.and_then(|pid| memory.sample(pid));
    report(&options, &stats, &memory, end, elapsed, hung)
}

/// One client: connections one after another until the deadline.
async fn client(id: u64, options: Arc<Options>, stats: Arc<Stats>, start_at: Instant, deadline: Instant) {
    sleep_until(start_at).await;
    let mut rng = Rng::new(options.seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let deflate = match options.deflate {
        Share::Half => id % 2 == 0,
        Share::All => true,
        Share::None => false,
    };
    // Pairs of ids, so that flaky clients are half with deflate and half without.
    let flaky = (id / 2) % 10 == 0;
    let mut failures = 0u32;
    // Bounded by the deadline; the count is a backstop against a loop that does not wait.
    for attempt in 0..100_000u64 {
        if attempt > 0 {
            stats.reconnects.fetch_add(1, Relaxed);
        }
        let now = Instant::now();
        // A connection opened after the deadline (after an abrupt disconnect that came
        // late) closes at once: every client ends with a clean close unless it failed.
        let kill_at = (flaky && now < deadline).then(|| now + Duration::from_millis(rng.range(200, 8000)));
        let connection = Connection {
            options: &options,
            stats: &stats,
            deflate,
            deadline,
            seed: rng.next(),
        };
        let outcome = if kill_at.is_some() && rng.below(20) == 0 {
            connection.abandon_handshake().await
        } else {
            connection.run(kill_at).await
        };
        match outcome {
            Ok(Outcome::Closed) => break,
            Ok(Outcome::Killed) => failures = 0,
            Err(kind) => {
                stats.error(kind);
                failures += 1;
                // Back off after failures, 50 ms doubling up to 2 s.
                let backoff = Duration::from_millis(50 << failures.min(6)).min(Duration::from_secs(2));
                if Instant::now() + backoff >= deadline {
                    break;
                }
                sleep(backoff).await;
            }
        }
    }
}
