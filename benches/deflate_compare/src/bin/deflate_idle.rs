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

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use futures::{StreamExt, TryStreamExt};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Handshakes (and their message exchanges) under way at once.
const CONCURRENT: usize = 64;
/// Size of every message, in bytes of JSON.
const MESSAGE_LEN: usize = 1024;
/// The tail a sync flush ends with, stripped on the wire (RFC 7692 §7.2.1).
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// Longest time for one connection's handshake and messages.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

type Error = Box<dyn std::error::Error + Send + Sync>;

fn usage() -> ! {
    eprintln!("usage: deflate_idle --addr 127.0.0.1:PORT [-n 2000] [-m 0|1|100] [--hold SECS]");
    std::process::exit(2)
}

/// What the server's 101 answer agreed to.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Negotiated {
    deflate: bool,
    /// Window of our compressor (the server's `client_max_window_bits`, else 15).
    client_window_bits: u8,
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
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
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let key = BASE64.encode(splitmix(id as u64 ^ 0x5eed).to_le_bytes().repeat(2));
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(4096);
    let head_len = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > 16 * 1024 || stream.read_buf(&mut buf).await? == 0 {
            return Err("no complete handshake response".into());
        }
    };
    let negotiated = parse_response(&buf[..head_len], &key)?;
    buf.drain(..head_len);

    let mut outcome = Outcome {
        negotiated: Some(negotiated),
        ..Outcome::default()
    };
    if messages > 0 {
        let mut peer = Peer::new(negotiated);
        for seq in 0..messages {
            let text = json_message(id, seq);
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

/// Checks the 101 answer and reads its permessage-deflate parameters (RFC 7692 §7.1).
fn parse_response(head: &[u8], key: &str) -> Result<Negotiated, Error> {
    let head = std::str::from_utf8(head)?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("101") {
        return Err(format!("handshake answered {status:?}").into());
    }
    let expected_accept = {
        let mut sha = Sha1::new();
        sha.update(key.as_bytes());
        sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
        BASE64.encode(sha.finalize())
    };
    let mut accept_ok = false;
    let mut negotiated = Negotiated {
        deflate: false,
        client_window_bits: 15,
        server_no_context_takeover: false,
        client_no_context_takeover: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("sec-websocket-accept") {
            accept_ok = value == expected_accept;
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
            for extension in value.split(',') {
                let mut params = extension.split(';').map(str::trim);
                if params.next() != Some("permessage-deflate") {
                    return Err(format!("unexpected extension {extension:?}").into());
                }
                if negotiated.deflate {
                    return Err("permessage-deflate accepted twice".into());
                }
                negotiated.deflate = true;
                for param in params.filter(|p| !p.is_empty()) {
                    let (name, value) = match param.split_once('=') {
                        Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                        None => (param, None),
                    };
                    match (name, value) {
                        ("server_no_context_takeover", None) => negotiated.server_no_context_takeover = true,
                        ("client_no_context_takeover", None) => negotiated.client_no_context_takeover = true,
                        ("client_max_window_bits", Some(bits)) => {
                            let bits: u8 = bits.parse()?;
                            if !(8..=15).contains(&bits) {
                                return Err(format!("client_max_window_bits={bits}").into());
                            }
                            negotiated.client_window_bits = bits;
                        }
                        // Our decompressor takes any window up to 15 bits.
                        ("server_max_window_bits", Some(_)) => {}
                        _ => return Err(format!("unexpected parameter {param:?}").into()),
                    }
                }
            }
        }
    }
    if !accept_ok {
        return Err("missing or wrong Sec-WebSocket-Accept".into());
    }
    Ok(negotiated)
}

/// The client's compression contexts for one connection.
struct Peer {
    negotiated: Negotiated,
    compress: Compress,
    decompress: Decompress,
}

impl Peer {
    fn new(negotiated: Negotiated) -> Self {
        // zlib turns a raw 8-bit window into 9 bits, which an 8-bit limit forbids.
        let bits = negotiated.client_window_bits.max(9);
        Peer {
            negotiated,
            compress: Compress::new_with_window_bits(Compression::new(6), false, bits),
            decompress: Decompress::new_with_window_bits(false, 15),
        }
    }

    /// The payload of one message: deflated with a sync flush, its tail stripped.
    fn compress(&mut self, plain: &[u8]) -> Result<Vec<u8>, Error> {
        if !self.negotiated.deflate {
            return Ok(plain.to_vec());
        }
        let mut out = Vec::with_capacity(plain.len() + 64);
        let start_in = self.compress.total_in();
        for round in 0.. {
            if round > 1000 {
                return Err("compressor makes no progress".into());
            }
            let consumed = (self.compress.total_in() - start_in) as usize;
            if out.len() == out.capacity() {
                out.reserve(256);
            }
            self.compress
                .compress_vec(&plain[consumed..], &mut out, FlushCompress::Sync)?;
            let consumed = (self.compress.total_in() - start_in) as usize;
            // Done when all input is in and the flush had room to finish.
            if consumed == plain.len() && out.len() < out.capacity() {
                break;
            }
        }
        if !out.ends_with(&SYNC_TAIL) {
            return Err("compressor output lacks the sync flush tail".into());
        }
        out.truncate(out.len() - SYNC_TAIL.len());
        if self.negotiated.client_no_context_takeover {
            self.compress.reset();
        }
        Ok(out)
    }

    /// One echoed payload, inflated (the stripped tail put back first).
    fn decompress(&mut self, payload: &[u8]) -> Result<Vec<u8>, Error> {
        let mut input = Vec::with_capacity(payload.len() + 4);
        input.extend_from_slice(payload);
        input.extend_from_slice(&SYNC_TAIL);
        let mut out = Vec::with_capacity(MESSAGE_LEN * 2);
        let start_in = self.decompress.total_in();
        for round in 0.. {
            if round > 1000 {
                return Err("decompressor makes no progress".into());
            }
            let consumed = (self.decompress.total_in() - start_in) as usize;
            if out.len() == out.capacity() {
                out.reserve(MESSAGE_LEN);
            }
            let before_out = out.len();
            let status =
                self.decompress
                    .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)?;
            let consumed = (self.decompress.total_in() - start_in) as usize;
            if status == Status::StreamEnd {
                return Err("echo ended its deflate stream (BFINAL)".into());
            }
            if consumed == input.len() && out.len() < out.capacity() {
                break;
            }
            if consumed == input.len() && out.len() == before_out {
                break;
            }
            if out.len() > 1 << 20 {
                return Err("echo inflates past 1 MiB".into());
            }
        }
        if self.negotiated.server_no_context_takeover {
            self.decompress.reset(false);
        }
        Ok(out)
    }
}

/// A masked client frame of one text message, FIN set (RFC 6455 §5.2).
fn frame(payload: &[u8], rsv1: bool, mask: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | if rsv1 { 0x40 } else { 0 } | 0x1);
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Reads one data message (fragments joined); returns its RSV1 bit and payload.
async fn read_message(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(bool, Vec<u8>), Error> {
    let mut message: Option<(bool, Vec<u8>)> = None;
    loop {
        let (fin, rsv1, opcode, payload) = read_frame(stream, buf).await?;
        match opcode {
            0x1 | 0x2 if message.is_none() => message = Some((rsv1, payload)),
            0x0 if message.is_some() => message.as_mut().unwrap().1.extend_from_slice(&payload),
            0x8 => return Err(format!("server closed: {payload:?}").into()),
            0x9 | 0xA => continue, // pings are not expected within seconds; ignore
            _ => return Err(format!("unexpected opcode {opcode:#x}").into()),
        }
        if fin {
            return Ok(message.unwrap());
        }
    }
}

/// Reads one unmasked server frame: (FIN, RSV1, opcode, payload).
async fn read_frame(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(bool, bool, u8, Vec<u8>), Error> {
    loop {
        if buf.len() >= 2 {
            let (b0, b1) = (buf[0], buf[1]);
            if b1 & 0x80 != 0 {
                return Err("server frame is masked".into());
            }
            let (len, header) = match b1 & 0x7f {
                126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                127 if buf.len() >= 10 => (u64::from_be_bytes(buf[2..10].try_into()?) as usize, 10),
                126 | 127 => (usize::MAX, 0),
                n => (n as usize, 2),
            };
            if len != usize::MAX && buf.len() >= header + len {
                let payload = buf[header..header + len].to_vec();
                buf.drain(..header + len);
                return Ok((b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x0f, payload));
            }
        }
        if stream.read_buf(buf).await? == 0 {
            return Err("connection closed mid-frame".into());
        }
    }
}

/// A 1 KiB JSON text, deterministic, its numbers varying with the connection and sequence.
fn json_message(id: usize, seq: usize) -> String {
    let mut state = splitmix((id as u64) << 32 | seq as u64);
    let mut next = || {
        state = splitmix(state);
        state
    };
    let mut text = format!(
        "{{\"type\":\"ticker\",\"conn\":{id},\"seq\":{seq},\"ts\":{},\"items\":[",
        1_764_000_000_000u64 + next() % 1_000_000
    );
    let mut first = true;
    while text.len() < MESSAGE_LEN - 120 {
        let r = next();
        if !first {
            text.push(',');
        }
        first = false;
        text.push_str(&format!(
            "{{\"sym\":\"S{:03}\",\"bid\":{}.{:02},\"ask\":{}.{:02},\"qty\":{}}}",
            r % 500,
            100 + (r >> 9) % 900,
            (r >> 19) % 100,
            100 + (r >> 26) % 900,
            (r >> 36) % 100,
            (r >> 43) % 10_000
        ));
    }
    text.push_str("],\"note\":\"");
    while text.len() < MESSAGE_LEN - 2 {
        text.push((b'a' + (next() % 26) as u8) as char);
    }
    text.push_str("\"}");
    debug_assert_eq!(text.len(), MESSAGE_LEN);
    text
}

/// SplitMix64: a small deterministic mixer.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
