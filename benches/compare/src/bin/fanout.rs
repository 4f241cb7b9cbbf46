//! The fan-out load side (issue 16), on plain tokio with flate2 and no WebSocket
//! library: N subscribers that only read, one publisher, every delivery checked.
//!
//! Usage: fanout --name NAME --addr 127.0.0.1:PORT --server-pid PID -n N -s SIZE -m MESSAGES [--deflate]
//!
//! The subscribers connect first (offering permessage-deflate as Chromium does
//! with `--deflate`), then the publisher sends MESSAGES messages of SIZE bytes,
//! each carrying its sequence number and send time (`fanout::payload`), never
//! more than `fanout::WINDOW` ahead of the slowest subscriber. Every subscriber
//! checks that it gets every message once, in order, intact (reassembling what
//! arrives in fragments, inflating what arrives compressed); the first failure
//! ends the run. The first tenth is warm-up. Prints one line:
//!
//! `NAME N SIZE deflate|plain deliveries/s server-µs/delivery KiB/subscriber p50-µs p99-µs`
//!
//! Server CPU is user + system time from `/proc/PID/stat` over the measured part;
//! memory per subscriber is the server's resident memory with the subscribers
//! connected and idle, less what it had before they connected, divided by N.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use fastws_compare::client::{KEY, MASK};
use fastws_compare::fanout::{WINDOW, parse, payload};
use flate2::{Decompress, FlushDecompress, Status};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A run that has not finished by then has failed.
const TIME_LIMIT: Duration = Duration::from_secs(180);
/// Chromium's permessage-deflate offer.
const CHROMIUM_OFFER: &str = "permessage-deflate; client_max_window_bits";

struct Args {
    name: String,
    addr: String,
    server_pid: u32,
    subscribers: usize,
    size: usize,
    messages: u64,
    deflate: bool,
}

fn args() -> Args {
    let mut args = Args {
        name: String::new(),
        addr: String::new(),
        server_pid: 0,
        subscribers: 100,
        size: 16,
        messages: 1000,
        deflate: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--name" => args.name = value(),
            "--addr" => args.addr = value(),
            "--server-pid" => args.server_pid = value().parse().unwrap_or_else(|_| usage()),
            "-n" => args.subscribers = value().parse().unwrap_or_else(|_| usage()),
            "-s" => args.size = value().parse().unwrap_or_else(|_| usage()),
            "-m" => args.messages = value().parse().unwrap_or_else(|_| usage()),
            "--deflate" => args.deflate = true,
            _ => usage(),
        }
    }
    if args.addr.is_empty() || args.server_pid == 0 {
        usage();
    }
    args
}

fn usage() -> ! {
    eprintln!(
        "usage: fanout --name NAME --addr 127.0.0.1:PORT --server-pid PID -n N -s SIZE -m MESSAGES [--deflate]"
    );
    std::process::exit(2)
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match runtime.block_on(async { tokio::time::timeout(TIME_LIMIT, run(&args)).await }) {
        Ok(Ok(line)) => println!("{line}"),
        Ok(Err(err)) => {
            eprintln!("fanout {}: {err}", args.name);
            std::process::exit(1);
        }
        Err(_) => {
            eprintln!("fanout {}: the run took longer than {TIME_LIMIT:?}", args.name);
            std::process::exit(1);
        }
    }
}

async fn run(args: &Args) -> Result<String, String> {
    let epoch = Instant::now();
    let rss_before = resident_kib(args.server_pid)?;
    // received[k]: how many subscribers have message k.
    let received: Arc<Vec<AtomicU32>> = Arc::new((0..args.messages).map(|_| AtomicU32::new(0)).collect());
    let warm = (args.messages / 10).max(1);
    let failed = Arc::new(AtomicBool::new(false));
    let mut subscribers = Vec::with_capacity(args.subscribers);
    for batch in (0..args.subscribers).collect::<Vec<_>>().chunks(100) {
        let mut connecting = Vec::new();
        for _ in batch {
            connecting.push(tokio::spawn(upgrade(
                args.addr.clone(),
                args.deflate.then_some(CHROMIUM_OFFER),
            )));
        }
        for connection in connecting {
            let (tcp, rest, compressed) = connection.await.map_err(|e| e.to_string())??;
            if args.deflate && !compressed {
                return Err("the server did not accept permessage-deflate".to_owned());
            }
            let (received, failed) = (Arc::clone(&received), Arc::clone(&failed));
            let (messages, size) = (args.messages, args.size);
            subscribers.push(tokio::spawn(async move {
                let delays = subscribe(tcp, rest, messages, size, warm, received, epoch).await;
                failed.fetch_or(delays.is_err(), Ordering::Relaxed);
                delays
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle = resident_kib(args.server_pid)?;

    let (mut publisher, _, _) = upgrade(args.addr.clone(), None).await?;
    let n = args.subscribers as u32;
    let mut cpu_start = None;
    let mut frame = Vec::with_capacity(args.size + 14);
    for seq in 0..args.messages {
        if seq >= WINDOW {
            all_have(&received[(seq - WINDOW) as usize], n, &failed, &mut subscribers).await?;
        }
        if seq == warm {
            all_have(&received[(warm - 1) as usize], n, &failed, &mut subscribers).await?;
            cpu_start = Some((Instant::now(), cpu_ticks(args.server_pid)?));
        }
        let sent_ns = epoch.elapsed().as_nanos() as u64;
        masked_frame(&mut frame, args.size, &payload(args.size, seq, sent_ns));
        publisher.write_all(&frame).await.map_err(|e| e.to_string())?;
    }
    let mut delays = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    for subscriber in subscribers {
        delays
            .add(subscriber.await.map_err(|e| e.to_string())??)
            .expect("same bounds");
    }
    let (start, ticks_start) = cpu_start.ok_or("no measured part")?;
    let elapsed = start.elapsed().as_secs_f64();
    let ticks = cpu_ticks(args.server_pid)? - ticks_start;
    let deliveries = (args.messages - warm) as f64 * args.subscribers as f64;
    let cpu_us = ticks as f64 * 1e6 / clock_ticks_per_second() as f64;
    Ok(format!(
        "{} {} {} {} {:.0} {:.3} {:.1} {:.0} {:.0}",
        args.name,
        args.subscribers,
        args.size,
        if args.deflate { "deflate" } else { "plain" },
        deliveries / elapsed,
        cpu_us / deliveries,
        rss_idle.saturating_sub(rss_before) as f64 / args.subscribers as f64,
        delays.value_at_quantile(0.5) as f64 / 1e3,
        delays.value_at_quantile(0.99) as f64 / 1e3,
    ))
}

/// A subscriber's task: its delivery delays, or what it found wrong.
type Subscriber = tokio::task::JoinHandle<Result<Histogram<u64>, String>>;

/// Waits until all `n` subscribers have a message (`received` counts them), or
/// returns the error of a subscriber that failed: it will never count another
/// message, and the publisher would wait for it until the time limit.
async fn all_have(
    received: &AtomicU32,
    n: u32,
    failed: &AtomicBool,
    subscribers: &mut [Subscriber],
) -> Result<(), String> {
    while received.load(Ordering::Acquire) < n {
        if failed.load(Ordering::Relaxed) {
            for subscriber in subscribers.iter_mut().filter(|s| s.is_finished()) {
                subscriber.await.map_err(|e| e.to_string())??;
            }
            return Err("a subscriber failed".to_owned());
        }
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// Connects and upgrades, offering `offer` as the extensions; returns the
/// socket, bytes read past the response head, and whether permessage-deflate
/// was agreed.
async fn upgrade(addr: String, offer: Option<&'static str>) -> Result<(TcpStream, Vec<u8>, bool), String> {
    let mut tcp = TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    if !tcp.peer_addr().map_err(|e| e.to_string())?.ip().is_loopback() {
        return Err("the load side only targets loopback addresses".to_owned());
    }
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let extensions = offer.map_or(String::new(), |offer| {
        format!("Sec-WebSocket-Extensions: {offer}\r\n")
    });
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extensions}\r\n"
    );
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = Vec::with_capacity(512);
    let end = loop {
        let mut chunk = [0u8; 1024];
        let n = tcp.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the server closed during the upgrade".to_owned());
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
    if !text.starts_with("http/1.1 101") {
        return Err(format!("upgrade refused: {text:?}"));
    }
    let compressed = text.contains("sec-websocket-extensions: permessage-deflate");
    Ok((tcp, head[end..].to_vec(), compressed))
}

/// One subscriber: reads `messages` messages, checks each, counts it in
/// `received`, and returns the delivery delays of the measured ones.
async fn subscribe(
    mut tcp: TcpStream,
    mut buf: Vec<u8>,
    messages: u64,
    size: usize,
    warm: u64,
    received: Arc<Vec<AtomicU32>>,
    epoch: Instant,
) -> Result<Histogram<u64>, String> {
    let mut delays = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    let mut inflater = Decompress::new(false);
    let mut inflated = Vec::with_capacity(size + 64);
    // The message arriving in fragments, if one is: its payload so far, and
    // whether it is compressed.
    let (mut assembling, mut fragments_compressed, mut fragments) = (false, false, Vec::new());
    let mut next = 0u64;
    let mut at = 0;
    // 10,000 subscribers each hold one: no larger than a message needs.
    let mut chunk = vec![0u8; (size * 2).clamp(4096, 64 * 1024)];
    while next < messages {
        // Every whole frame in the buffer.
        while let Some((first, header_len, len)) = frame_header(&buf[at..])? {
            if buf.len() - at < header_len + len {
                break;
            }
            let body = &buf[at + header_len..at + header_len + len];
            at += header_len + len;
            let (opcode, fin) = (first & 0x0F, first & 0x80 != 0);
            if opcode >= 0x8 {
                continue;
            }
            // RFC 6455 §5.4: a server may send a message in fragments (gorilla
            // does, in frames of its 4 KiB write buffer, when it compresses);
            // only the first carries the opcode and RSV1 (RFC 7692 §6.1).
            if opcode == 0 {
                if !assembling {
                    return Err("a continuation frame outside a message".to_owned());
                }
                fragments.extend_from_slice(body);
                if !fin {
                    continue;
                }
                assembling = false;
            } else if assembling {
                return Err("a data frame inside a fragmented message".to_owned());
            } else if !fin {
                (assembling, fragments_compressed) = (true, first & 0x40 != 0);
                fragments.clear();
                fragments.extend_from_slice(body);
                continue;
            }
            let (compressed, payload) = if opcode == 0 {
                (fragments_compressed, &fragments[..])
            } else {
                (first & 0x40 != 0, body)
            };
            let message: &[u8] = if compressed {
                inflated.clear();
                inflate(&mut inflater, payload, &mut inflated)?;
                &inflated
            } else {
                payload
            };
            if message.len() != size {
                return Err(format!("a message of {} bytes, expected {size}", message.len()));
            }
            let (seq, sent_ns) = parse(message).ok_or("a message without its sequence number")?;
            if seq != next {
                return Err(format!("message {seq} where {next} was due"));
            }
            if seq >= warm {
                let delay = (epoch.elapsed().as_nanos() as u64).saturating_sub(sent_ns).max(1);
                delays.record(delay).map_err(|e| e.to_string())?;
            }
            received[seq as usize].fetch_add(1, Ordering::Release);
            next += 1;
        }
        buf.drain(..at);
        at = 0;
        if next == messages {
            break;
        }
        let n = tcp.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("the server closed after {next} of {messages} messages"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(delays)
}

/// The first byte, header length and payload length of the unmasked frame at the
/// start of `bytes`, once its header is there.
fn frame_header(bytes: &[u8]) -> Result<Option<(u8, usize, usize)>, String> {
    let [first, second, ..] = *bytes else {
        return Ok(None);
    };
    if second & 0x80 != 0 {
        return Err("a masked frame from the server".to_owned());
    }
    let (len, header_len) = match second & 0x7F {
        126 => match bytes.get(2..4) {
            Some(b) => (u16::from_be_bytes([b[0], b[1]]) as usize, 4),
            None => return Ok(None),
        },
        127 => match bytes.get(2..10) {
            Some(b) => (u64::from_be_bytes(b.try_into().expect("8 bytes")) as usize, 10),
            None => return Ok(None),
        },
        len => (len as usize, 2),
    };
    Ok(Some((first, header_len, len)))
}

/// Inflates one compressed message (RFC 7692 §7.2.2: its payload, then the
/// `00 00 ff ff` the sender stripped), keeping the context for the next.
fn inflate(inflater: &mut Decompress, body: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    for input in [body, &[0x00, 0x00, 0xff, 0xff][..]] {
        let start = inflater.total_in();
        loop {
            let consumed = (inflater.total_in() - start) as usize;
            if out.capacity() - out.len() < 4096 {
                out.reserve(out.capacity().max(4096));
            }
            let status = inflater
                .decompress_vec(&input[consumed..], out, FlushDecompress::Sync)
                .map_err(|e| format!("inflate: {e}"))?;
            let done = (inflater.total_in() - start) as usize == input.len();
            if done && out.len() < out.capacity() || status == Status::StreamEnd {
                break;
            }
        }
    }
    Ok(())
}

/// One masked, final frame: text for the JSON payloads, binary for 16 bytes.
fn masked_frame(out: &mut Vec<u8>, size: usize, payload: &[u8]) {
    out.clear();
    out.push(if size > 16 { 0x81 } else { 0x82 });
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
}

/// The server's user and system time so far, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("server {pid}: {e}"))?;
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = stat.rsplit_once(')').ok_or("unreadable stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field =
        |n: usize| -> Result<u64, String> { fields[n - 3].parse().map_err(|_| "unreadable stat".to_owned()) };
    Ok(field(14)? + field(15)?)
}

/// The clock ticks per second of `/proc/PID/stat` (`getconf CLK_TCK`).
fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
}

/// The server's resident memory in KiB.
fn resident_kib(pid: u32) -> Result<u64, String> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("server {pid}: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS".to_owned())
}
