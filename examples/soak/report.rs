//! What the soak measures and prints: the counters every client shares ([`Stats`]),
//! the server's resident memory sampled from `/proc` ([`Memory`]), the progress line
//! every 10 s and the final report with the verdict.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::{Instant, sleep_until};

use crate::{GRACE, Options};

/// Counters shared by every client.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) handshakes: AtomicU64,
    pub(crate) deflate_negotiated: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) abrupt: AtomicU64,
    pub(crate) abrupt_in_handshake: AtomicU64,
    pub(crate) clean_closes: AtomicU64,
    pub(crate) up: AtomicI64,
    pub(crate) peak_up: AtomicI64,
    pub(crate) sent_text: AtomicU64,
    pub(crate) sent_binary: AtomicU64,
    pub(crate) sent_large: AtomicU64,
    pub(crate) sent_bytes: AtomicU64,
    pub(crate) verified: AtomicU64,
    pub(crate) verified_bytes: AtomicU64,
    pub(crate) pings_sent: AtomicU64,
    pub(crate) pongs_verified: AtomicU64,
    pub(crate) pongs_outstanding_at_close: AtomicU64,
    pub(crate) abandoned: AtomicU64,
    pub(crate) mismatches: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    /// Echo round trips, by decade: under 1 ms, 10 ms, 100 ms, 1 s, 10 s, and longer.
    latency: [AtomicU64; 6],
    max_latency_us: AtomicU64,
    pub(crate) started: std::sync::OnceLock<Instant>,
}

impl Stats {
    /// Counts an error; the first of each kind is printed with the time it happened.
    pub(crate) fn error(&self, kind: String) {
        let mut errors = self.errors.lock().unwrap();
        if let Some(count) = errors.get_mut(&kind) {
            *count += 1;
            return;
        }
        let at = self
            .started
            .get()
            .map_or(0.0, |started| started.elapsed().as_secs_f64());
        eprintln!("soak: first error of its kind at t={at:.1}s: {kind}");
        errors.insert(kind, 1);
    }

    fn error_count(&self) -> u64 {
        self.errors.lock().unwrap().values().sum()
    }

    pub(crate) fn round_trip(&self, took: Duration) {
        let us = took.as_micros() as u64;
        let decade = match us {
            0..1_000 => 0,
            1_000..10_000 => 1,
            10_000..100_000 => 2,
            100_000..1_000_000 => 3,
            1_000_000..10_000_000 => 4,
            _ => 5,
        };
        self.latency[decade].fetch_add(1, Relaxed);
        self.max_latency_us.fetch_max(us, Relaxed);
    }
}

/// The server's resident memory, sampled every second.
#[derive(Default)]
pub(crate) struct Memory {
    pub(crate) start_kib: AtomicU64,
    peak_kib: AtomicU64,
    last_kib: AtomicU64,
    died: AtomicBool,
}

/// VmRSS and VmHWM of a process, in KiB; `None` once it is gone.
fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:").unwrap_or(0)))
}

impl Memory {
    pub(crate) fn sample(&self, pid: u32) -> Option<(u64, u64)> {
        let sample = rss_kib(pid);
        match sample {
            Some((rss, _)) => {
                self.last_kib.store(rss, Relaxed);
                self.peak_kib.fetch_max(rss, Relaxed);
            }
            None => self.died.store(true, Relaxed),
        }
        sample
    }
}

/// Prints a progress line every 10 s and samples the server's memory every second.
pub(crate) async fn sample_and_report(
    options: Arc<Options>,
    stats: Arc<Stats>,
    memory: Arc<Memory>,
    started: Instant,
) {
    // Bounded: the task is aborted when the clients are done; the count is a backstop.
    let limit = (options.duration + options.ramp + GRACE).as_secs() + 10;
    for second in 1..=limit {
        sleep_until(started + Duration::from_secs(second)).await;
        if let Some(pid) = options.server_pid {
            memory.sample(pid);
        }
        if second % 10 == 0 {
            eprintln!(
                "t={second}s up={} sent={} verified={} reconnects={} errors={} mismatches={} server_rss={} KiB",
                stats.up.load(Relaxed),
                stats.sent_text.load(Relaxed) + stats.sent_binary.load(Relaxed),
                stats.verified.load(Relaxed),
                stats.reconnects.load(Relaxed),
                stats.error_count(),
                stats.mismatches.load(Relaxed),
                memory.last_kib.load(Relaxed),
            );
        }
    }
}

pub(crate) fn report(
    options: &Options,
    stats: &Stats,
    memory: &Memory,
    end: Option<(u64, u64)>,
    elapsed: Duration,
    hung: usize,
) -> ExitCode {
    let get = |counter: &AtomicU64| counter.load(Relaxed);
    let sent = get(&stats.sent_text) + get(&stats.sent_binary);
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!("soak: finished after {:.1} s", elapsed.as_secs_f64());
    println!(
        "connections: {} opened ({} with permessage-deflate), {} reconnects, {} abrupt disconnects ({} mid-handshake), {} clean closes, {} up at peak",
        get(&stats.handshakes),
        get(&stats.deflate_negotiated),
        get(&stats.reconnects),
        get(&stats.abrupt),
        get(&stats.abrupt_in_handshake),
        get(&stats.clean_closes),
        stats.peak_up.load(Relaxed),
    );
    println!(
        "messages sent: {sent} ({} text, {} binary, {} large), {:.1} MiB",
        get(&stats.sent_text),
        get(&stats.sent_binary),
        get(&stats.sent_large),
        mib(get(&stats.sent_bytes)),
    );
    println!(
        "echoes verified: {}, {:.1} MiB; abandoned in flight (abrupt disconnects, errors): {}",
        get(&stats.verified),
        mib(get(&stats.verified_bytes)),
        get(&stats.abandoned),
    );
    let decades = stats.latency.each_ref().map(|count| count.load(Relaxed));
    println!(
        "echo round trips: {} under 1 ms, {} 1-10 ms, {} 10-100 ms, {} 0.1-1 s, {} 1-10 s, {} over 10 s; max {:.3} s",
        decades[0],
        decades[1],
        decades[2],
        decades[3],
        decades[4],
        decades[5],
        get(&stats.max_latency_us) as f64 / 1e6,
    );
    println!(
        "messages exchanged: {} ({:.0} per second)",
        sent + get(&stats.verified),
        (sent + get(&stats.verified)) as f64 / elapsed.as_secs_f64()
    );
    println!(
        "pings: {} sent, {} pongs verified, {} unanswered when the connection closed cleanly",
        get(&stats.pings_sent),
        get(&stats.pongs_verified),
        get(&stats.pongs_outstanding_at_close),
    );
    println!("echo mismatches: {}", get(&stats.mismatches));
    let errors = stats.errors.lock().unwrap();
    println!("errors: {}", errors.values().sum::<u64>());
    for (kind, count) in errors.iter() {
        println!("  {count:>8}  {kind}");
    }
    println!("clients hung at the end: {hung}");
    if let Some(pid) = options.server_pid {
        let (end_rss, hwm) = end.unwrap_or((0, 0));
        println!(
            "server rss (pid {pid}): start {} KiB, peak {} KiB (VmHWM {hwm} KiB), end {end_rss} KiB after {} s settle",
            memory.start_kib.load(Relaxed),
            memory.peak_kib.load(Relaxed),
            options.settle.as_secs(),
        );
    }
    let died = memory.died.load(Relaxed);
    if died {
        println!("server died during the soak");
    }
    let failed = get(&stats.mismatches) > 0 || died || hung > 0;
    println!("verdict: {}", if failed { "FAIL" } else { "ok" });
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
