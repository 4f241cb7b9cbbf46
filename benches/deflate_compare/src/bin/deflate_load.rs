//! A neutral permessage-deflate throughput generator (tokio + flate2, not fastws), for cpu.sh.
//!
//! Opens C connections offering `permessage-deflate; client_max_window_bits` (what
//! Chromium sends) and keeps F messages in flight on each: JSON texts of --size bytes,
//! 64 distinct ones, each compressed once up front (a fresh raw deflate stream per
//! message, valid under context takeover: a sender need not refer back) and sent as
//! masked frames. Every echo is inflated with the connection's own context and
//! checked byte for byte against what was sent, in order.
//!
//! After the handshakes and a warm-up (--warmup messages per connection), it samples
//! the server's CPU time (utime + stime of /proc/PID/stat, --server-pid), runs for
//! --seconds, drains what is in flight, samples again and prints:
//! `messages N`, `seconds S`, `msgs_per_s X`, `server_cpu_us_per_msg Y`, `wire_ratio R`.
//!
//! Usage: deflate_load --addr 127.0.0.1:PORT --server-pid PID [-c 16] [-f 16] [--size 1024]
//!        [--seconds 10] [--warmup 200]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fastws_deflate_compare::{
    Error, Negotiated, Peer, frame, handshake, json_message, read_message, splitmix,
};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

/// Distinct messages each connection cycles through.
const DISTINCT: usize = 64;
/// Longest time for the handshakes, or for a connection to finish after the stop.
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);

fn usage() -> ! {
    eprintln!(
        "usage: deflate_load --addr 127.0.0.1:PORT --server-pid PID [-c 16] [-f 16] [--size 1024] \
         [--seconds 10] [--warmup 200]"
    );
    std::process::exit(2)
}

struct Options {
    addr: String,
    server_pid: u32,
    connections: usize,
    in_flight: usize,
    size: usize,
    seconds: f64,
    warmup: u64,
}

/// What one connection counted in the measured phase.
#[derive(Debug, Default)]
struct Counts {
    messages: u64,
    plain_bytes: u64,
    wire_bytes: u64,
    uncompressed_echoes: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let options = parse_options();
    if let Err(e) = run(options).await {
        eprintln!("deflate_load: {e}");
        std::process::exit(1);
    }
}

fn parse_options() -> Options {
    let mut o = Options {
        addr: String::new(),
        server_pid: 0,
        connections: 16,
        in_flight: 16,
        size: 1024,
        seconds: 10.0,
        warmup: 200,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        let number = || value.parse::<u64>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--addr" => o.addr = value.clone(),
            "--server-pid" => o.server_pid = number() as u32,
            "-c" => o.connections = number() as usize,
            "-f" => o.in_flight = number() as usize,
            "--size" => o.size = number() as usize,
            "--seconds" => o.seconds = value.parse().unwrap_or_else(|_| usage()),
            "--warmup" => o.warmup = number(),
            _ => usage(),
        }
    }
    let valid = !o.addr.is_empty()
        && o.server_pid != 0
        && (1..=1024).contains(&o.connections)
        && (1..=1024).contains(&o.in_flight)
        && (256..=16 << 20).contains(&o.size)
        && (0.1..=300.0).contains(&o.seconds)
        && (1..=100_000).contains(&o.warmup);
    if !valid {
        usage();
    }
    o
}

/// Flags the connections share with the main task.
#[derive(Default)]
struct Shared {
    /// Connections that got their warm-up echoes back.
    warmed: AtomicUsize,
    /// Set once all are warm: completions count from then on.
    measuring: AtomicBool,
    /// Set after --seconds (or on a failure): no new messages.
    stop: AtomicBool,
}

async fn run(o: Options) -> Result<(), Error> {
    let o = Arc::new(o);
    let shared = Arc::new(Shared::default());
    let tasks: Vec<_> = (0..o.connections)
        .map(|id| {
            let (o, shared) = (o.clone(), shared.clone());
            tokio::spawn(async move {
                let result = connection(&o, id, &shared).await;
                if result.is_err() {
                    shared.stop.store(true, Ordering::Relaxed);
                }
                result.map_err(|e| format!("connection {id}: {e}"))
            })
        })
        .collect();
    let warm_by = Instant::now() + PHASE_TIMEOUT;
    while shared.warmed.load(Ordering::Relaxed) < o.connections {
        if Instant::now() > warm_by || shared.stop.load(Ordering::Relaxed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (cpu_before, start) = (server_cpu_seconds(o.server_pid)?, Instant::now());
    shared.measuring.store(true, Ordering::Relaxed);
    if !shared.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_secs_f64(o.seconds)).await;
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut total = Counts::default();
    let mut negotiated = None;
    for task in tasks {
        let (counts, n) = tokio::time::timeout(PHASE_TIMEOUT, task)
            .await
            .map_err(|_| "a connection did not finish within 60 s of the stop")???;
        total.messages += counts.messages;
        total.plain_bytes += counts.plain_bytes;
        total.wire_bytes += counts.wire_bytes;
        total.uncompressed_echoes += counts.uncompressed_echoes;
        negotiated.get_or_insert(n);
    }
    let (cpu_after, seconds) = (server_cpu_seconds(o.server_pid)?, start.elapsed().as_secs_f64());
    if shared.warmed.load(Ordering::Relaxed) < o.connections {
        return Err("the warm-up did not finish within 60 s".into());
    }
    if let Some(n) = negotiated {
        println!("negotiated {n:?}");
    }
    println!("messages {}", total.messages);
    println!("seconds {seconds:.3}");
    println!("msgs_per_s {:.0}", total.messages as f64 / seconds);
    println!(
        "server_cpu_us_per_msg {:.2}",
        (cpu_after - cpu_before) * 1e6 / total.messages.max(1) as f64
    );
    println!("uncompressed_echoes {}", total.uncompressed_echoes);
    println!(
        "wire_ratio {:.3}",
        total.wire_bytes as f64 / total.plain_bytes.max(1) as f64
    );
    Ok(())
}

/// One connection: handshake, then F messages in flight until the stop, every echo
/// checked in order; returns what it counted while measuring.
async fn connection(o: &Options, id: usize, shared: &Shared) -> Result<(Counts, Negotiated), Error> {
    let (stream, mut buf, negotiated) = tokio::time::timeout(PHASE_TIMEOUT, handshake(&o.addr, id))
        .await
        .map_err(|_| "handshake timed out")??;
    let messages = prepare(id, o.size, negotiated)?;
    let (mut reader, mut writer) = stream.into_split();
    let slots = Semaphore::new(o.in_flight);
    // Messages written or being written. The reader reads only while this is ahead
    // of what it received, so it never waits for an echo that will not come.
    let sent = AtomicU64::new(0);
    let writer_done = AtomicBool::new(false);

    let write = async {
        let mut batch = Vec::new();
        let result = async {
            while !shared.stop.load(Ordering::Relaxed) {
                // Wakes now and then to notice the stop even when no slot frees.
                let Ok(permit) = tokio::time::timeout(Duration::from_millis(50), slots.acquire()).await
                else {
                    continue;
                };
                permit?.forget();
                let take = 1 + slots.forget_permits(slots.available_permits());
                let first = sent.fetch_add(take as u64, Ordering::AcqRel);
                batch.clear();
                for seq in first..first + take as u64 {
                    batch.extend_from_slice(&messages[(seq % DISTINCT as u64) as usize].1);
                }
                writer.write_all(&batch).await?;
            }
            Ok::<(), Error>(())
        }
        .await;
        writer_done.store(true, Ordering::Release);
        result
    };

    let read = async {
        let result = read_echoes(
            o,
            shared,
            negotiated,
            &messages,
            &sent,
            &writer_done,
            &slots,
            &mut reader,
            &mut buf,
        )
        .await;
        if result.is_err() {
            shared.stop.store(true, Ordering::Relaxed);
        }
        result
    };

    let (written, counts) = tokio::join!(write, read);
    written?;
    Ok((counts?, negotiated))
}

/// Reads and checks echoes while some are in flight, until the writer is done.
#[allow(clippy::too_many_arguments)]
async fn read_echoes(
    o: &Options,
    shared: &Shared,
    negotiated: Negotiated,
    messages: &[(String, Vec<u8>)],
    sent: &AtomicU64,
    writer_done: &AtomicBool,
    slots: &Semaphore,
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
    buf: &mut Vec<u8>,
) -> Result<Counts, Error> {
    {
        let mut peer = Peer::new(negotiated);
        let mut counts = Counts::default();
        let mut received = 0u64;
        loop {
            if received == sent.load(Ordering::Acquire) {
                if writer_done.load(Ordering::Acquire) && received == sent.load(Ordering::Acquire) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            let (rsv1, echoed) = read_message(reader, buf).await?;
            let plain = if rsv1 {
                peer.decompress(&echoed)?
            } else {
                echoed.clone()
            };
            let expected = &messages[(received % DISTINCT as u64) as usize].0;
            if plain != expected.as_bytes() {
                return Err(format!("echo {received} differs from the message sent").into());
            }
            received += 1;
            slots.add_permits(1);
            if received == o.warmup {
                shared.warmed.fetch_add(1, Ordering::Relaxed);
            }
            if shared.measuring.load(Ordering::Relaxed) {
                counts.messages += 1;
                counts.plain_bytes += plain.len() as u64;
                counts.wire_bytes += echoed.len() as u64;
                counts.uncompressed_echoes += u64::from(negotiated.deflate && !rsv1);
            }
        }
        Ok(counts)
    }
}

/// The DISTINCT messages of a connection: each plain text and its masked frame,
/// compressed alone (a fresh context each) when deflate was negotiated.
fn prepare(id: usize, size: usize, negotiated: Negotiated) -> Result<Vec<(String, Vec<u8>)>, Error> {
    (0..DISTINCT)
        .map(|seq| {
            let text = json_message(id, seq, size);
            let payload = Peer::new(negotiated).compress(text.as_bytes())?;
            let mask = (splitmix((id as u64) << 20 | seq as u64) as u32).to_le_bytes();
            let frame = frame(&payload, negotiated.deflate, mask);
            Ok((text, frame))
        })
        .collect()
}

/// The server's user + system CPU time so far, in seconds.
fn server_cpu_seconds(pid: u32) -> Result<f64, Error> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').ok_or("odd /proc stat")? + 2..]
        .split(' ')
        .collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}
