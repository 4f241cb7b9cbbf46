//! The load side, on plain tokio and no WebSocket library: the upgrade by hand,
//! pre-built masked binary frames, and a parser that checks every echoed frame.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Semaphore;

/// The `Sec-WebSocket-Key` every connection sends (the one of RFC 6455 §1.3).
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The `Sec-WebSocket-Accept` that [`KEY`] must get back.
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// The masking key of every pre-built frame.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// How long connecting and upgrading one connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `addr` (loopback only), sets `TCP_NODELAY` and performs the
/// upgrade. Fails unless the answer is `101` with the right accept key and
/// nothing follows the response head (these servers never speak first).
pub async fn connect(addr: &str) -> std::io::Result<TcpStream> {
    tokio::time::timeout(CONNECT_TIMEOUT, connect_inner(addr))
        .await
        .map_err(|_| std::io::Error::other(format!("{addr}: connect and upgrade timed out")))?
}

async fn connect_inner(addr: &str) -> std::io::Result<TcpStream> {
    let mut tcp = TcpStream::connect(addr).await?;
    if !tcp.peer_addr()?.ip().is_loopback() {
        return Err(std::io::Error::other(
            "the load generator only targets loopback addresses",
        ));
    }
    tcp.set_nodelay(true)?;
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(256);
    let end = loop {
        let mut chunk = [0u8; 512];
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("server closed during the upgrade"));
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if head.len() > 16 * 1024 {
            return Err(std::io::Error::other("response head over 16 KiB"));
        }
    };
    let text = String::from_utf8_lossy(&head[..end]);
    let status_ok = text.starts_with("HTTP/1.1 101");
    let accept_ok = text.lines().any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == ACCEPT
        })
    });
    if !status_ok || !accept_ok || end != head.len() {
        return Err(std::io::Error::other(format!("bad upgrade response: {text:?}")));
    }
    Ok(tcp)
}

/// `count` copies of one masked, final, binary frame with `size` bytes of payload,
/// back to back; returns the bytes and the length of one frame.
pub fn build_frames(size: usize, count: usize) -> (Vec<u8>, usize) {
    let mut frame = vec![0x82u8];
    match size {
        0..=125 => frame.push(0x80 | size as u8),
        126..=65535 => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(size as u16).to_be_bytes());
        }
        _ => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(size as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    frame.extend((0..size).map(|i| (i as u8).wrapping_mul(31) ^ MASK[i % 4]));
    let len = frame.len();
    (frame.repeat(count), len)
}

/// Checks echoed frames as they arrive, in pieces of any size, without buffering
/// payloads: each must be a final binary frame of exactly the expected length,
/// unmasked from a WebSocket server, masked from the raw TCP echo.
#[derive(Debug)]
pub struct EchoParser {
    expect_len: u64,
    masked: bool,
    /// Header bytes of a frame whose header arrived split.
    header: [u8; 14],
    header_len: usize,
    /// Payload bytes of the current frame still to come.
    skip: u64,
}

impl EchoParser {
    /// A parser for echoes of `expect_len`-byte messages; `masked` for the raw echo.
    pub fn new(expect_len: usize, masked: bool) -> EchoParser {
        EchoParser {
            expect_len: expect_len as u64,
            masked,
            header: [0; 14],
            header_len: 0,
            skip: 0,
        }
    }

    /// Parses the next bytes of the stream; returns how many frames they completed.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<u64, String> {
        let mut done = 0;
        while !data.is_empty() {
            if self.skip > 0 {
                let take = self.skip.min(data.len() as u64);
                self.skip -= take;
                data = &data[take as usize..];
                if self.skip == 0 {
                    done += 1;
                }
                continue;
            }
            let used = if self.header_len == 0 {
                match self.parse_header(data)? {
                    Some(used) => used,
                    None => {
                        self.header[..data.len()].copy_from_slice(data);
                        self.header_len = data.len();
                        return Ok(done);
                    }
                }
            } else {
                // Complete a split header one byte at a time (rare).
                self.header[self.header_len] = data[0];
                self.header_len += 1;
                let header = self.header;
                if self.parse_header(&header[..self.header_len])?.is_some() {
                    self.header_len = 0;
                }
                1
            };
            data = &data[used..];
            if self.header_len == 0 && self.skip == 0 {
                done += 1; // an empty payload
            }
        }
        Ok(done)
    }

    /// Parses a header at the start of `bytes`: `None` if incomplete, otherwise the
    /// header's length (and `skip` set to the payload's).
    fn parse_header(&mut self, bytes: &[u8]) -> Result<Option<usize>, String> {
        if bytes.len() < 2 {
            return Ok(None);
        }
        if bytes[0] != 0x82 {
            return Err(format!(
                "expected a final binary frame, got first byte {:#04x}",
                bytes[0]
            ));
        }
        let masked = bytes[1] & 0x80 != 0;
        if masked != self.masked {
            return Err(format!("echoed frame masked: {masked}, expected {}", self.masked));
        }
        let (len, mut used) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as u64, 4),
            127 if bytes.len() >= 10 => (u64::from_be_bytes(bytes[2..10].try_into().unwrap()), 10),
            126 | 127 => return Ok(None),
            len => (len as u64, 2),
        };
        if masked {
            used += 4;
        }
        if bytes.len() < used {
            return Ok(None);
        }
        if len != self.expect_len {
            return Err(format!(
                "echoed frame of {len} bytes, expected {}",
                self.expect_len
            ));
        }
        self.skip = len;
        Ok(Some(used))
    }
}

/// What one connection of the load does.
#[derive(Debug, Clone)]
pub struct Load {
    /// `in_flight` frames back to back, shared by all connections.
    pub frames: Arc<[u8]>,
    /// The length of one frame.
    pub frame_len: usize,
    /// Messages in flight per connection.
    pub in_flight: usize,
    /// Payload bytes per message.
    pub size: usize,
    /// Whether echoes come back masked (the raw TCP echo).
    pub masked_echo: bool,
}

impl Load {
    /// A load of `in_flight` messages of `size` bytes.
    pub fn new(size: usize, in_flight: usize, masked_echo: bool) -> Load {
        let (frames, frame_len) = build_frames(size, in_flight);
        Load {
            frames: frames.into(),
            frame_len,
            in_flight,
            size,
            masked_echo,
        }
    }
}

/// The longest round trip the histogram tells apart from longer ones (60 s).
const MAX_ROUND_TRIP_NANOS: u64 = 60_000_000_000;

/// Counters shared by the connections of a load.
pub struct Progress {
    /// Echoes received and checked, all connections together.
    pub echoed: AtomicU64,
    /// Messages the writers claimed, all connections together (past
    /// `send_limit` by what the last claims asked for; only the limit is written).
    pub sent: AtomicU64,
    /// The most messages the connections write together (none more once reached,
    /// so the load ends with nothing in flight); unlimited by default.
    pub send_limit: AtomicU64,
    /// Whether round trips are recorded (set after the warm-up).
    pub recording: AtomicBool,
    /// Round-trip times of the echoes received while recording, in nanoseconds,
    /// from the start of the write that sent the message to the read that completed
    /// its echo (so with K in flight, the time a message waits behind the others).
    pub round_trips: Mutex<Histogram<u64>>,
    /// Called by a connection's reader each time it adds echoes to `echoed`, with
    /// the count before and after: a caller that reads counters of its own at a
    /// given echo count does it here, at that count, not whenever its own task
    /// next runs (on a busy runtime that can be hundreds of large messages later).
    pub on_echoed: OnceLock<Box<dyn Fn(u64, u64) + Send + Sync>>,
}

impl Default for Progress {
    fn default() -> Progress {
        Progress {
            echoed: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            send_limit: AtomicU64::new(u64::MAX),
            recording: AtomicBool::new(false),
            round_trips: Mutex::new(
                Histogram::new_with_bounds(1, MAX_ROUND_TRIP_NANOS, 3).expect("valid histogram bounds"),
            ),
            on_echoed: OnceLock::new(),
        }
    }
}

impl Progress {
    /// Starts recording round trips, forgetting any recorded before.
    pub fn start_recording(&self) {
        self.round_trips().reset();
        self.recording.store(true, Ordering::Relaxed);
    }

    /// The recorded round trips.
    pub fn round_trips(&self) -> std::sync::MutexGuard<'_, Histogram<u64>> {
        self.round_trips.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// When the messages in flight on one connection were sent, oldest first: one
/// entry per write, with the number of messages it carried (echoes come back in
/// order).
#[derive(Debug, Default)]
struct SendTimes {
    writes: Mutex<VecDeque<(Instant, u64)>>,
}

impl SendTimes {
    fn sent(&self, messages: usize) {
        self.lock().push_back((Instant::now(), messages as u64));
    }

    /// Takes the send times of the next `echoed` messages, recording their round
    /// trips in `progress` if it is recording.
    fn echoed(&self, mut echoed: u64, progress: &Progress) {
        let now = Instant::now();
        let recording = progress.recording.load(Ordering::Relaxed);
        let mut writes = self.lock();
        let mut round_trips = recording.then(|| progress.round_trips());
        while echoed > 0 {
            let Some((sent, messages)) = writes.front_mut() else {
                return;
            };
            let these = echoed.min(*messages);
            if let Some(histogram) = &mut round_trips {
                let nanos = u64::try_from((now - *sent).as_nanos()).unwrap_or(u64::MAX);
                histogram.saturating_record_n(nanos.max(1), these);
            }
            *messages -= these;
            echoed -= these;
            if *messages == 0 {
                writes.pop_front();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Instant, u64)>> {
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Keeps `load.in_flight` messages in flight on `tcp` until an error: a writer
/// sends as many frames as echoes have come back (one write per batch), a reader
/// checks the echoes and counts them in `progress`. Never returns `Ok`.
pub async fn drive(tcp: TcpStream, load: Load, progress: Arc<Progress>) -> Result<(), String> {
    let (read, write) = tcp.into_split();
    let credits = Arc::new(Semaphore::new(load.in_flight));
    let parser = EchoParser::new(load.size, load.masked_echo);
    let send_times = SendTimes::default();
    tokio::try_join!(
        read_echoes(read, parser, &credits, &progress, &load, &send_times),
        write_frames(write, &load, &credits, &progress, &send_times),
    )?;
    Ok(())
}

async fn write_frames(
    mut write: OwnedWriteHalf,
    load: &Load,
    credits: &Semaphore,
    progress: &Progress,
    send_times: &SendTimes,
) -> Result<(), String> {
    loop {
        credits.acquire().await.map_err(|e| e.to_string())?.forget();
        let mut n = 1;
        let more = credits.available_permits().min(load.in_flight - 1);
        if more > 0 {
            credits
                .try_acquire_many(more as u32)
                .map_err(|e| e.to_string())?
                .forget();
            n += more;
        }
        let before = progress.sent.fetch_add(n as u64, Ordering::Relaxed);
        let allowed = progress.send_limit.load(Ordering::Relaxed).saturating_sub(before);
        n = n.min(usize::try_from(allowed).unwrap_or(usize::MAX));
        if n == 0 {
            // The limit is reached: the echoes still to come end the load.
            return std::future::pending().await;
        }
        send_times.sent(n);
        write
            .write_all(&load.frames[..n * load.frame_len])
            .await
            .map_err(|e| format!("write: {e}"))?;
    }
}

async fn read_echoes(
    mut read: OwnedReadHalf,
    mut parser: EchoParser,
    credits: &Semaphore,
    progress: &Progress,
    load: &Load,
    send_times: &SendTimes,
) -> Result<(), String> {
    let mut buf = vec![0u8; (load.size + 14).clamp(64 * 1024, 256 * 1024)];
    loop {
        let n = read.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("server closed the connection".to_owned());
        }
        let done = parser.feed(&buf[..n])?;
        if done > 0 {
            send_times.echoed(done, progress);
            let before = progress.echoed.fetch_add(done, Ordering::Relaxed);
            if let Some(on_echoed) = progress.on_echoed.get() {
                on_echoed(before, before + done);
            }
            credits.add_permits(done as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unmasked(size: usize) -> Vec<u8> {
        let (masked, _) = build_frames(size, 1);
        let offset = masked.len() - size - 4;
        let mut frame = masked[..offset].to_vec();
        frame[1] &= 0x7f;
        frame.extend(std::iter::repeat_n(0u8, size));
        frame
    }

    #[test]
    fn counts_frames_split_at_every_byte() {
        for size in [0, 16, 125, 126, 1024, 65535, 65536, 70000] {
            for masked in [false, true] {
                let one = if masked {
                    build_frames(size, 1).0
                } else {
                    unmasked(size)
                };
                let stream = one.repeat(3);
                for split in 0..stream.len().min(40) {
                    let mut parser = EchoParser::new(size, masked);
                    let a = parser.feed(&stream[..split]).unwrap();
                    let b = parser.feed(&stream[split..]).unwrap();
                    assert_eq!(a + b, 3, "size {size} masked {masked} split {split}");
                }
                let mut parser = EchoParser::new(size, masked);
                let total: u64 = stream.iter().map(|b| parser.feed(&[*b]).unwrap()).sum();
                assert_eq!(total, 3, "byte by byte, size {size} masked {masked}");
            }
        }
    }

    #[test]
    fn rejects_wrong_length_and_mask() {
        assert!(EchoParser::new(16, false).feed(&unmasked(17)).is_err());
        assert!(EchoParser::new(16, false).feed(&build_frames(16, 1).0).is_err());
        assert!(EchoParser::new(16, true).feed(&unmasked(16)).is_err());
        let mut text = unmasked(16);
        text[0] = 0x81;
        assert!(EchoParser::new(16, false).feed(&text).is_err());
    }
}
