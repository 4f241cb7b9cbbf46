//! Criterion benches of permessage-deflate through the public API: compressing and
//! decompressing 1 KiB and 64 KiB JSON-like text messages, with and without context
//! takeover, beside the same messages uncompressed.
//!
//! Run with `cargo bench --bench deflate`; add `-- compress` (any id prefix) to run
//! a subset. Setup prints the bytes on the wire per message for each case.
//!
//! Each case negotiates deflate between two fastws ends over `tokio::io::duplex`
//! in a current-thread runtime, then taps one end:
//! - `compress`: a server `WebSocket` sends a message; a frame codec on the other
//!   end takes the frame off the pipe (no inflating). Timed: compressing, framing,
//!   one copy through the pipe.
//! - `decompress`: the recorded frames of the sender are written into a pipe whose
//!   other end is a client `WebSocket`, which yields the message. Timed: one copy
//!   into the pipe, decoding, inflating, UTF-8 validation.
//!
//! Messages rotate through JSON texts that differ in their numbers, at least 64 KiB
//! of them (twice deflate's 32 KiB window), so context takeover finds similar
//! earlier messages but never an identical one. For `decompress` the sender runs
//! a few rounds of the rotation and the receiver is fed all of those frames first:
//! replaying the last round, in order, then keeps the receiver's history equal to
//! the one each frame was compressed against.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fastws::{Acceptor, ClientRequest, Config, DeflateConfig, Frame, Message, WebSocket, WsCodec};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::runtime::Runtime;
use tokio_util::codec::{Encoder, Framed};

const SIZES: [(usize, &str); 2] = [(1 << 10, "1KiB"), (64 << 10, "64KiB")];

/// The fewest bytes of distinct messages in the rotation: twice deflate's window.
const ROTATION_BYTES: usize = 64 << 10;
/// Rounds of the rotation sent before recording, so the compressor's window holds
/// earlier messages as in a long-lived connection.
const ROUNDS: usize = 3;
/// Room in each in-memory pipe: more than one uncompressed 64 KiB message.
const PIPE: usize = 1 << 20;

#[derive(Clone, Copy)]
enum Mode {
    /// No permessage-deflate: the baseline.
    Uncompressed,
    /// Deflate, compressor and decompressor kept across messages (the default).
    ContextTakeover,
    /// Deflate, both sides reset after every message.
    NoContextTakeover,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Uncompressed => "uncompressed",
            Mode::ContextTakeover => "context_takeover",
            Mode::NoContextTakeover => "no_context_takeover",
        }
    }

    fn config(self) -> Config {
        let deflate = match self {
            Mode::Uncompressed => DeflateConfig::disabled(),
            Mode::ContextTakeover => DeflateConfig::default(),
            Mode::NoContextTakeover => DeflateConfig::default()
                .server_no_context_takeover(true)
                .client_no_context_takeover(true),
        };
        Config::default().deflate(deflate)
    }
}

/// JSON-like ASCII text of exactly `len` bytes whose records start at `first_id`.
fn json(len: usize, first_id: u64) -> String {
    let mut text = String::with_capacity(len + 128);
    text.push('[');
    let mut i = first_id;
    while text.len() < len {
        write!(
            text,
            r#"{{"id":{i},"name":"user {}","email":"user{i}@example.com","score":{},"active":{}}},"#,
            i % 97,
            (i * 7919) % 1000,
            i % 3 == 0
        )
        .unwrap();
        i += 1;
    }
    text.truncate(len);
    text
}

/// A server and a client `WebSocket` joined by a pipe, handshake done with `config`
/// on both ends. Panics unless deflate was negotiated as `mode` asks.
async fn pair(mode: Mode) -> (WebSocket<DuplexStream>, WebSocket<DuplexStream>) {
    let (server_io, client_io) = tokio::io::duplex(PIPE);
    let request = ClientRequest::new("ws://localhost/").config(mode.config());
    let acceptor = Acceptor::new().config(mode.config());
    let (server, client) = tokio::join!(
        acceptor.accept(server_io),
        fastws::client_handshake(client_io, request)
    );
    let (client, response) = client.expect("client handshake");
    let negotiated = response.headers().get("sec-websocket-extensions");
    assert_eq!(
        negotiated.is_some(),
        !matches!(mode, Mode::Uncompressed),
        "{negotiated:?}"
    );
    (server.expect("server handshake"), client)
}

/// The frame codec on the far end of a server `WebSocket`'s pipe.
fn tap(client: WebSocket<DuplexStream>) -> Framed<DuplexStream, WsCodec> {
    Framed::new(
        client.into_framed().into_inner(),
        WsCodec::client().allowed_rsv(0b100),
    )
}

/// A frame as a server puts it on the wire.
fn wire_bytes(frame: &Frame) -> Bytes {
    let mut wire = BytesMut::new();
    WsCodec::server()
        .encode(frame.clone(), &mut wire)
        .expect("encode");
    wire.freeze()
}

struct Case {
    messages: Vec<Message>,
    /// The sender and the tap on its pipe, for `compress`.
    sender: WebSocket<DuplexStream>,
    tap: Framed<DuplexStream, WsCodec>,
    /// The last round of recorded frames, the pipe into the receiver and the
    /// receiver, for `decompress`.
    replay: Vec<Bytes>,
    inject: DuplexStream,
    receiver: WebSocket<DuplexStream>,
    /// The index of the next message, kept across timing runs: replayed frames must
    /// come in order.
    next: usize,
}

/// Negotiates, records `ROUNDS` rounds of frames, feeds them all to the receiver
/// (checking each message arrives intact), and prints the bytes on the wire.
async fn setup(size: usize, label: &str, mode: Mode) -> Case {
    let rotation = (ROTATION_BYTES / size).max(8) as u64;
    let messages: Vec<_> = (0..rotation)
        .map(|k| Message::text(json(size, k * 1000)))
        .collect();
    let (mut sender, far_end) = pair(mode).await;
    let mut tap = tap(far_end);
    let (injector, mut receiver) = pair(mode).await;
    let mut inject = injector.into_framed().into_inner();

    let mut recorded = Vec::with_capacity(ROUNDS * messages.len());
    for _ in 0..ROUNDS {
        for message in &messages {
            sender.send(message.clone()).await.expect("send");
            let frame = tap.next().await.expect("a frame").expect("valid frame");
            assert!(frame.is_fin(), "one frame per message");
            recorded.push(wire_bytes(&frame));
        }
    }
    for (wire, message) in recorded.iter().zip(messages.iter().cycle()) {
        inject.write_all(wire).await.expect("write");
        let received = receiver.next().await.expect("a message").expect("valid message");
        assert!(
            received == *message,
            "a recorded frame did not inflate to its message"
        );
    }
    let replay = recorded.split_off(recorded.len() - messages.len());

    let on_wire: usize = replay.iter().map(Bytes::len).sum::<usize>() / replay.len();
    eprintln!(
        "deflate bench {label:>5} {:<19}: {on_wire:>6} bytes on the wire per {size}-byte message ({:.1}%)",
        mode.name(),
        100.0 * on_wire as f64 / size as f64
    );
    Case {
        messages,
        sender,
        tap,
        replay,
        inject,
        receiver,
        next: 0,
    }
}

fn deflate(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("deflate");
    for (size, label) in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        for mode in [Mode::Uncompressed, Mode::ContextTakeover, Mode::NoContextTakeover] {
            let mut case = runtime.block_on(setup(size, label, mode));
            let id = format!("{label}/{}", mode.name());
            group.bench_function(BenchmarkId::new("compress", &id), |b| {
                b.iter_custom(|iters| timed(&runtime, iters, &mut case, compress_one));
            });
            group.bench_function(BenchmarkId::new("decompress", &id), |b| {
                b.iter_custom(|iters| timed(&runtime, iters, &mut case, decompress_one));
            });
        }
    }
    group.finish();
}

/// Runs `one` on the next `iters` messages of the rotation inside the runtime;
/// returns the time taken.
fn timed<F>(runtime: &Runtime, iters: u64, case: &mut Case, one: F) -> Duration
where
    F: AsyncFn(&mut Case, usize),
{
    runtime.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let i = case.next;
            case.next = (i + 1) % case.messages.len();
            one(case, i).await;
        }
        start.elapsed()
    })
}

async fn compress_one(case: &mut Case, i: usize) {
    case.sender
        .send(black_box(case.messages[i].clone()))
        .await
        .expect("send");
    let frame = case.tap.next().await.expect("a frame").expect("valid frame");
    black_box(frame);
}

async fn decompress_one(case: &mut Case, i: usize) {
    case.inject.write_all(&case.replay[i]).await.expect("write");
    let message = case
        .receiver
        .next()
        .await
        .expect("a message")
        .expect("valid message");
    black_box(message);
}

criterion_group!(benches, deflate);
criterion_main!(benches);
