//! One connection of a client: TCP connect, the upgrade (or half of one, then an RST),
//! traffic until the deadline with every echo and pong checked in order, a watchdog
//! for stalls, and the close.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use fastws::{ClientRequest, CloseCode, Config, DeflateConfig, Message, SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep, sleep_until, timeout};

use crate::report::Stats;
use crate::traffic::{Kind, Rng, Spec};
use crate::{GRACE, Options};

/// How many details of mismatches are printed.
const MAX_MISMATCH_DETAILS: u64 = 20;

/// How a connection ended, when it ended as planned.
pub(crate) enum Outcome {
    /// The duration is over and the close handshake completed.
    Closed,
    /// Dropped on purpose with an RST.
    Killed,
}

/// One connection of a client.
pub(crate) struct Connection<'a> {
    pub(crate) options: &'a Options,
    pub(crate) stats: &'a Stats,
    pub(crate) deflate: bool,
    pub(crate) deadline: Instant,
    pub(crate) seed: u64,
}

/// What the sending and receiving halves of one connection share. One task runs both,
/// so the locks are never contended; they are there because the task moves between threads.
struct Shared {
    expected: Mutex<VecDeque<Spec>>,
    permits: Semaphore,
    large_in_flight: AtomicBool,
    ping: Mutex<Option<Bytes>>,
    last_received: Mutex<Instant>,
    scratch: Mutex<Vec<u8>>,
}

impl Connection<'_> {
    async fn open_tcp(&self) -> Result<TcpStream, String> {
        let tcp = match timeout(Duration::from_secs(10), TcpStream::connect(self.options.addr())).await {
            Err(_) => return Err("connect: timed out".to_owned()),
            Ok(Err(err)) => return Err(format!("connect: {:?}", err.kind())),
            Ok(Ok(tcp)) => tcp,
        };
        tcp.set_nodelay(true)
            .map_err(|err| format!("connect: {:?}", err.kind()))?;
        Ok(tcp)
    }

    /// Sends half an upgrade request and resets the connection.
    pub(crate) async fn abandon_handshake(self) -> Result<Outcome, String> {
        let mut tcp = self.open_tcp().await?;
        let host = self.options.addr();
        let partial = format!("GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upg");
        tcp.write_all(partial.as_bytes())
            .await
            .map_err(|err| format!("send: i/o: {:?}", err.kind()))?;
        sleep(Duration::from_millis(5)).await;
        reset(&tcp);
        self.stats.abrupt.fetch_add(1, Relaxed);
        self.stats.abrupt_in_handshake.fetch_add(1, Relaxed);
        Ok(Outcome::Killed)
    }

    /// Handshake, traffic until the deadline (or `kill_at`), close.
    pub(crate) async fn run(self, kill_at: Option<Instant>) -> Result<Outcome, String> {
        let tcp = self.open_tcp().await?;
        let deflate = match self.deflate {
            true => DeflateConfig::default(),
            false => DeflateConfig::disabled(),
        };
        let request = ClientRequest::new(&self.options.url)
            .config(Config::default().control_messages(true).deflate(deflate))
            .timeout(Duration::from_secs(10));
        let (ws, response) = fastws::client_handshake(tcp, request)
            .await
            .map_err(|err| error_kind("handshake", &err))?;
        let negotiated = response
            .headers()
            .get("sec-websocket-extensions")
            .is_some_and(|value| value.as_bytes().starts_with(b"permessage-deflate"));
        self.stats.handshakes.fetch_add(1, Relaxed);
        if negotiated {
            self.stats.deflate_negotiated.fetch_add(1, Relaxed);
        }
        if negotiated != self.deflate {
            return Err(format!(
                "handshake: deflate offered {} but negotiated {negotiated}",
                self.deflate
            ));
        }
        let up = self.stats.up.fetch_add(1, Relaxed) + 1;
        self.stats.peak_up.fetch_max(up, Relaxed);

        let shared = Shared {
            expected: Mutex::new(VecDeque::new()),
            permits: Semaphore::new(self.options.in_flight),
            large_in_flight: AtomicBool::new(false),
            ping: Mutex::new(None),
            last_received: Mutex::new(Instant::now()),
            scratch: Mutex::new(Vec::new()),
        };
        let (mut sink, mut stream) = ws.split();
        let outcome = {
            let traffic = futures_util::future::try_join(
                self.send(&mut sink, &shared),
                self.receive(&mut stream, &shared),
            );
            let far = self.deadline + self.options.ramp + GRACE;
            tokio::select! {
                result = traffic => result.map(|_| Outcome::Closed),
                () = sleep_until(kill_at.unwrap_or(far)), if kill_at.is_some_and(|at| at < self.deadline) => {
                    Ok(Outcome::Killed)
                }
                kind = self.watchdog(&shared) => Err(kind),
                () = sleep_until(far) => Err("timeout: connection outlived the grace period".to_owned()),
            }
        };
        self.stats.up.fetch_sub(1, Relaxed);
        let in_flight = shared.expected.lock().unwrap().len() as u64;
        self.stats.abandoned.fetch_add(in_flight, Relaxed);
        match &outcome {
            Ok(Outcome::Killed) => {
                let ws = stream.reunite(sink).expect("halves of one websocket");
                reset(ws.get_ref());
                self.stats.abrupt.fetch_add(1, Relaxed);
            }
            Ok(Outcome::Closed) => {
                self.stats.clean_closes.fetch_add(1, Relaxed);
                if shared.ping.lock().unwrap().is_some() {
                    self.stats.pongs_outstanding_at_close.fetch_add(1, Relaxed);
                }
            }
            Err(_) => {}
        }
        outcome
    }

    /// Sends messages and pings until the deadline, waits for the echoes, closes.
    async fn send(&self, sink: &mut SplitSink<TcpStream>, shared: &Shared) -> Result<(), String> {
        let mut rng = Rng::new(self.seed);
        let failed = |err: fastws::Error| error_kind("send", &err);
        while Instant::now() < self.deadline {
            if self.options.think_ms > 0 {
                sleep(Duration::from_millis(rng.below(2 * self.options.think_ms + 1))).await;
            }
            if rng.below(20) == 0 && shared.ping.lock().unwrap().is_none() {
                let mut payload = vec![0; rng.below(126) as usize];
                payload.iter_mut().for_each(|byte| *byte = rng.next() as u8);
                let payload = Bytes::from(payload);
                *shared.ping.lock().unwrap() = Some(payload.clone());
                sink.send(Message::ping(payload)).await.map_err(failed)?;
                self.stats.pings_sent.fetch_add(1, Relaxed);
                continue;
            }
            let mut spec = Spec::random(&mut rng, !shared.large_in_flight.load(Relaxed));
            shared
                .permits
                .acquire()
                .await
                .expect("the semaphore is never closed")
                .forget();
            if spec.large {
                shared.large_in_flight.store(true, Relaxed);
            }
            let message = spec.message();
            spec.queued = Instant::now();
            shared.expected.lock().unwrap().push_back(spec);
            sink.send(message).await.map_err(failed)?;
            let counter = match spec.kind {
                Kind::Text => &self.stats.sent_text,
                Kind::Binary => &self.stats.sent_binary,
            };
            counter.fetch_add(1, Relaxed);
            self.stats.sent_bytes.fetch_add(spec.len as u64, Relaxed);
            if spec.large {
                self.stats.sent_large.fetch_add(1, Relaxed);
            }
        }
        // Every echo back (the watchdog bounds the wait), and the pong, within 5 s.
        let _all = shared
            .permits
            .acquire_many(self.options.in_flight as u32)
            .await
            .expect("the semaphore is never closed");
        for _ in 0..500 {
            if shared.ping.lock().unwrap().is_none() {
                break;
            }
            sleep(Duration::from_millis(10)).await;
        }
        sink.close().await.map_err(|err| error_kind("close", &err))
    }

    /// Checks every message that comes back until the stream ends.
    async fn receive(&self, stream: &mut SplitStream<TcpStream>, shared: &Shared) -> Result<(), String> {
        let mut closed = false;
        while let Some(message) = stream.next().await {
            let message = message.map_err(|err| error_kind("receive", &err))?;
            *shared.last_received.lock().unwrap() = Instant::now();
            match message {
                Message::Text(text) => self.check_echo(Kind::Text, text.as_bytes(), shared)?,
                Message::Binary(bytes) => self.check_echo(Kind::Binary, &bytes, shared)?,
                Message::Pong(payload) => match shared.ping.lock().unwrap().take() {
                    Some(ping) if ping == payload => {
                        self.stats.pongs_verified.fetch_add(1, Relaxed);
                    }
                    ping => {
                        return Err(self.mismatch(format!(
                            "pong of {} bytes, the ping outstanding was {:?} bytes",
                            payload.len(),
                            ping.map(|ping| ping.len())
                        )));
                    }
                },
                Message::Ping(_) => self
                    .stats
                    .error("receive: unexpected ping from the server".to_owned()),
                Message::Close(frame) => {
                    let code = frame.as_ref().map(|frame| frame.code);
                    if code != Some(CloseCode::Normal) {
                        self.stats.error(format!("receive: close with {code:?}"));
                    }
                    closed = true;
                }
            }
        }
        match closed {
            true => Ok(()),
            false => Err("receive: stream ended without a close".to_owned()),
        }
    }

    /// The oldest message in flight must come back, with its type and every byte.
    fn check_echo(&self, kind: Kind, payload: &[u8], shared: &Shared) -> Result<(), String> {
        let Some(spec) = shared.expected.lock().unwrap().pop_front() else {
            return Err(self.mismatch(format!(
                "{kind:?} echo of {} bytes, none in flight",
                payload.len()
            )));
        };
        if spec.kind != kind || spec.len != payload.len() {
            return Err(self.mismatch(format!(
                "{kind:?} echo of {} bytes, expected {:?} of {} bytes",
                payload.len(),
                spec.kind,
                spec.len
            )));
        }
        let mut scratch = shared.scratch.lock().unwrap();
        spec.fill(&mut scratch);
        if let Some(at) = scratch.iter().zip(payload).position(|(a, b)| a != b) {
            return Err(self.mismatch(format!(
                "{kind:?} echo of {} bytes differs at byte {at} (seed {:#x})",
                spec.len, spec.seed
            )));
        }
        if scratch.capacity() > 64 * 1024 {
            *scratch = Vec::new();
        }
        if spec.large {
            shared.large_in_flight.store(false, Relaxed);
        }
        shared.permits.add_permits(1);
        self.stats.round_trip(spec.queued.elapsed());
        self.stats.verified.fetch_add(1, Relaxed);
        self.stats.verified_bytes.fetch_add(spec.len as u64, Relaxed);
        Ok(())
    }

    /// Counts a mismatch, prints the first few, and gives the error that ends the connection.
    fn mismatch(&self, detail: String) -> String {
        let count = self.stats.mismatches.fetch_add(1, Relaxed) + 1;
        if count <= MAX_MISMATCH_DETAILS {
            eprintln!(
                "soak: MISMATCH (deflate {}, connection seed {:#x}): {detail}",
                self.deflate, self.seed
            );
        }
        "echo mismatch (counted separately)".to_owned()
    }

    /// Fails the connection when messages are in flight and nothing has come back
    /// for `--stall` seconds.
    async fn watchdog(&self, shared: &Shared) -> String {
        loop {
            sleep(Duration::from_secs(1)).await;
            let waiting =
                !shared.expected.lock().unwrap().is_empty() || shared.ping.lock().unwrap().is_some();
            if waiting && shared.last_received.lock().unwrap().elapsed() > self.options.stall {
                return format!(
                    "stall: nothing received for {} s with {} messages in flight",
                    self.options.stall.as_secs(),
                    shared.expected.lock().unwrap().len()
                );
            }
        }
    }
}

/// Drops the connection with an RST instead of a FIN: SO_LINGER of zero.
fn reset(tcp: &TcpStream) {
    // `set_zero_linger` (tokio 1.50) does the same; the crate's tokio floor is 1.45. A
    // zero linger does not block on drop, which is what the deprecation warns about.
    #[allow(deprecated)]
    let _ = tcp.set_linger(Some(Duration::ZERO));
}

/// An error's kind for the report: where it happened and what it was, without the
/// details that make every line unique.
fn error_kind(phase: &str, err: &fastws::Error) -> String {
    use fastws::Error;
    let what = match err {
        Error::Io(io) => format!("i/o: {:?}", io.kind()),
        Error::Connect(io) => format!("connect: {:?}", io.kind()),
        Error::Handshake(handshake) => format!("handshake: {handshake}"),
        Error::ConnectionClosed => "connection closed".to_owned(),
        Error::CloseTimeout => "close timeout".to_owned(),
        err if err.is_protocol() => format!("protocol: {err}"),
        err => format!("other: {err}"),
    };
    format!("{phase}: {what}")
}
