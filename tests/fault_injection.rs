//! Fault-injected I/O: thousands of conversations between a fastws client and a
//! fastws server over an in-memory pipe whose ends (`common::faulty`) split reads
//! and writes at random points, return `Pending` at random and, at a planned
//! point, fail for good (a read error, a write error, or an early end of input).
//!
//! Everything about a conversation comes from its seed: the messages (0 B to
//! 200 KiB, text with multi-byte characters and binary, pings among them),
//! permessage-deflate, fragmentation, buffer sizes, how the server echoes
//! (`forward` after `split`, or a reader task feeding a writer task), who closes,
//! and how each end's transport misbehaves. Every failure message names the seed;
//! `FAULT_SEED=N cargo test --all-features --test fault_injection` replays it
//! alone, and `FAULT_SEEDS=N` runs `N` seeds per test instead of the default.
//!
//! Each conversation runs on its own current-thread runtime with paused time, so
//! timers fire as soon as everything waits and a hang shows up as a virtual
//! timeout instead of a stuck test.

mod common;

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::faulty::{Fault, FaultKind, Faulty, Plan, Recording, Rng};
use fastws::{
    Acceptor, ClientRequest, CloseCode, Config, DeflateConfig, Error, HandshakeError, Message, OpCode,
    SplitSink, SplitStream, WsCodec,
};
use futures::{SinkExt, StreamExt};
use tokio::io::DuplexStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinError, JoinHandle};
use tokio_util::codec::Decoder;

/// One end's transport.
type Io = Faulty<DuplexStream>;

/// Virtual time after which a conversation counts as hung: far beyond every
/// timeout fastws runs (handshakes 10 and 30 s, the close handshake 5 s).
const HANG: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------

#[test]
fn echoes_survive_split_reads_and_writes() {
    let mix = Mix {
        faults: false,
        server_closes_percent: 50,
        overrun: false,
    };
    let (mut total, mut misbehaved) = (0, 0);
    for seed in seeds(0, 600) {
        let (scenario, report) = converse(seed, mix);
        assert_invariants(&scenario, &report);
        assert!(!report.fired(), "{}: no fault was planned", scenario.name());
        assert_complete(&scenario, &report);
        total += 1;
        let (client, server) = (&report.client_wire, &report.server_wire);
        misbehaved +=
            (client.splits > 0 && server.splits > 0 && client.pendings + server.pendings > 0) as usize;
    }
    eprintln!("{misbehaved} of {total} seeds split calls on both ends and returned spurious Pendings");
    if total >= 100 {
        assert!(
            3 * misbehaved >= 2 * total,
            "only {misbehaved} of {total} seeds misbehaved"
        );
    }
}

#[test]
fn injected_failures_surface_as_errors() {
    let mix = Mix {
        faults: true,
        server_closes_percent: 50,
        overrun: false,
    };
    let (mut total, mut fired, mut clean) = (0, 0, 0);
    for seed in seeds(1, 1100) {
        let (scenario, report) = converse(seed, mix);
        assert_invariants(&scenario, &report);
        total += 1;
        if report.fired() {
            fired += 1;
            // The conversation may still complete (a fault after the close
            // handshake, such as a reset instead of the final EOF); if not, a side
            // must say so.
            assert!(
                is_complete(&scenario, &report)
                    || report.client.result.is_err()
                    || report.server.result.is_err(),
                "{}: a fault fired, the conversation did not complete, and neither side \
                 returned an error\n{}",
                scenario.name(),
                report.summary()
            );
        } else {
            clean += 1;
            assert_complete(&scenario, &report);
        }
    }
    eprintln!("{fired} of {total} seeds had a fault that fired, {clean} completed cleanly");
    if total >= 100 {
        assert!(
            3 * fired >= total,
            "faults fired in only {fired} of {total} seeds"
        );
        assert!(
            3 * clean >= total,
            "only {clean} of {total} seeds ran without a fault"
        );
    }
}

#[test]
fn nothing_is_written_after_a_close_frame() {
    // The server closes while the client may still be sending, and faults cut
    // connections at any point: the close frame must be the last thing either
    // side writes, and nothing may follow the shutdown.
    let mix = Mix {
        faults: true,
        server_closes_percent: 100,
        overrun: true,
    };
    let (mut total, mut both_closed, mut refused) = (0, 0, 0);
    for seed in seeds(2, 400) {
        let (scenario, report) = converse(seed, mix);
        assert_invariants(&scenario, &report);
        if !report.fired() {
            assert_complete(&scenario, &report);
        }
        total += 1;
        both_closed += (closes_on_wire(&report.client_wire, WsCodec::server())
            && closes_on_wire(&report.server_wire, WsCodec::client())) as usize;
        refused += report.client.refused_after_close as usize;
    }
    eprintln!(
        "{both_closed} of {total} seeds put a close frame on the wire from both sides; \
         in {refused} the client's sends were refused after the server's close"
    );
    if total >= 100 {
        assert!(
            3 * both_closed >= total,
            "close frames in only {both_closed} of {total} seeds"
        );
        assert!(
            refused > 0,
            "no seed had the client sending after the server's close"
        );
    }
}

// ---------------------------------------------------------------------------------
// Seeds and scenarios
// ---------------------------------------------------------------------------------

/// Each test's seeds start at a multiple of this: a seed names its test.
const SEED_BLOCK: u64 = 1_000_000;

/// `count` seeds of test `block` (`FAULT_SEEDS` overrides the count, for a longer
/// run), or only `FAULT_SEED` if it is set and belongs to this test.
fn seeds(block: u64, count: u64) -> Range<u64> {
    let first = block * SEED_BLOCK;
    let number = |name: &str| {
        let value = std::env::var(name).ok()?;
        Some(
            value
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("{name} is a number")),
        )
    };
    match number("FAULT_SEED") {
        Some(seed) if (first..first + SEED_BLOCK).contains(&seed) => seed..seed + 1,
        Some(_) => first..first,
        None => first..first + number("FAULT_SEEDS").unwrap_or(count).min(SEED_BLOCK),
    }
}

/// What a test's seeds vary.
#[derive(Debug, Clone, Copy)]
struct Mix {
    /// Whether the transports may inject failures.
    faults: bool,
    /// How often the server closes rather than the client.
    server_closes_percent: u64,
    /// Whether the client may go on sending after the point where the server closes.
    overrun: bool,
}

/// One conversation, all of it derived from its seed.
struct Scenario {
    seed: u64,
    /// What the client sends, in order.
    script: Vec<Step>,
    closer: Closer,
    echo: Echo,
    /// The client flushes after every message, or only at the end.
    flush_each: bool,
    /// The client sends copies that only it holds (masked in place), or payloads
    /// the test keeps too (masked as they are copied).
    unique_payloads: bool,
    client: Config,
    server: Config,
    client_plan: Plan,
    server_plan: Plan,
    /// The bytes the in-memory pipe holds in each direction.
    pipe: usize,
}

#[derive(Debug, Clone)]
enum Step {
    Data(Message),
    Ping(Bytes),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closer {
    /// The client closes once it has sent everything, or once every echo is back.
    Client { after_echoes: bool },
    /// The server closes after echoing `after` messages.
    Server { after: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Echo {
    /// `stream.forward(sink)` after `split()`.
    Forward,
    /// A reader task feeding a writer task through a channel.
    ByHand,
}

impl Scenario {
    fn new(seed: u64, mix: Mix) -> Scenario {
        let mut rng = Rng::new(seed);
        let data = messages(&mut rng);
        let largest = data.iter().map(|m| m.payload().len()).max().unwrap_or(0);
        // Bytes per direction, roughly: the HTTP head, payloads and frame headers.
        let volume = 300 + data.iter().map(|m| m.payload().len() as u64 + 14).sum::<u64>();
        let echo = if rng.percent(50) {
            Echo::Forward
        } else {
            Echo::ByHand
        };
        let closer = if rng.percent(mix.server_closes_percent) {
            let after = match mix.overrun {
                true => rng.between(0, data.len()),
                false => data.len(),
            };
            Closer::Server { after }
        } else {
            // A reader task hands echoes to a writer task: when the client's close
            // arrives, echoes still in the channel are rightly never sent (nothing
            // may follow the close echo), so that client waits for its echoes.
            Closer::Client {
                after_echoes: echo == Echo::ByHand || rng.percent(50),
            }
        };
        Scenario {
            seed,
            script: with_pings(&mut rng, data),
            closer,
            echo,
            flush_each: rng.percent(50),
            unique_payloads: rng.percent(50),
            client: config(&mut rng, largest),
            server: config(&mut rng, largest),
            client_plan: plan(&mut rng, mix.faults, volume),
            server_plan: plan(&mut rng, mix.faults, volume),
            pipe: rng.pick(&[64, 1024, 65536]).max(smallest_piece(volume)),
        }
    }

    /// The data messages the client sends.
    fn data(&self) -> Vec<Message> {
        let data = self.script.iter().filter_map(|step| match step {
            Step::Data(message) => Some(message.clone()),
            Step::Ping(_) => None,
        });
        data.collect()
    }

    /// How many echoes the client gets back in a complete conversation.
    fn expected_echoes(&self) -> usize {
        match self.closer {
            Closer::Client { .. } => self.data().len(),
            Closer::Server { after } => after,
        }
    }

    /// The seed, how to replay it, and what it chose.
    fn name(&self) -> String {
        let sizes: Vec<String> = self
            .script
            .iter()
            .map(|step| match step {
                Step::Data(Message::Text(text)) => format!("t{}", text.len()),
                Step::Data(message) => format!("b{}", message.payload().len()),
                Step::Ping(payload) => format!("ping{}", payload.len()),
            })
            .collect();
        format!(
            "seed {seed} (replay: FAULT_SEED={seed} cargo test --all-features --test fault_injection) \
             [script {sizes:?}, {closer:?}, {echo:?}, flush_each {flush}, \
             unique_payloads {unique}, pipe {pipe}, \
             client {client:?} {client_plan:?}, server {server:?} {server_plan:?}]",
            seed = self.seed,
            closer = self.closer,
            echo = self.echo,
            flush = self.flush_each,
            unique = self.unique_payloads,
            pipe = self.pipe,
            client = self.client,
            server = self.server,
            client_plan = self.client_plan,
            server_plan = self.server_plan,
        )
    }
}

/// Up to 10 data messages, at most 600 KiB in all.
fn messages(rng: &mut Rng) -> Vec<Message> {
    let mut budget = 600 * 1024;
    (0..rng.between(0, 10))
        .map(|_| {
            let len = message_len(rng).min(budget);
            budget -= len;
            message(rng, len)
        })
        .collect()
}

/// 0 B to 200 KiB, mostly small, some at the edges of the frame header's length
/// forms and of the size from which payloads are written uncopied (64 KiB).
fn message_len(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..15 => 0,
        15..50 => rng.between(1, 125),
        50..55 => rng.pick(&[125, 126, 127, 65535, 65536, 65537]),
        55..80 => rng.between(126, 4096),
        80..95 => rng.between(4097, 65536),
        _ => rng.between(65537, 200 * 1024),
    }
}

/// A message of exactly `len` bytes: ASCII or multi-byte text, noise, or a pattern.
fn message(rng: &mut Rng, len: usize) -> Message {
    match rng.below(4) {
        0 => Message::text(text(rng, len, &['a', 'b', ' ', '{', '"', '1'])),
        1 => Message::text(text(rng, len, &['a', 'é', 'ß', '€', '中', '😀', ' '])),
        2 => Message::binary(noise(rng, len)),
        _ => Message::binary((0..len).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>()),
    }
}

/// `len` bytes of text from `alphabet`, padded with ASCII where a wider character
/// does not fit.
fn text(rng: &mut Rng, len: usize, alphabet: &[char]) -> String {
    let mut text = String::with_capacity(len);
    while text.len() < len {
        let c = rng.pick(alphabet);
        text.push(if text.len() + c.len_utf8() <= len { c } else { 'x' });
    }
    text
}

/// `len` random (incompressible) bytes.
fn noise(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// The data messages, with a ping before some of them (never after the last, so
/// a ping never races a close the server sends once the data is echoed).
fn with_pings(rng: &mut Rng, data: Vec<Message>) -> Vec<Step> {
    let mut script = Vec::new();
    for message in data {
        if rng.percent(25) {
            let len = rng.between(0, 125);
            script.push(Step::Ping(noise(rng, len).into()));
        }
        script.push(Step::Data(message));
    }
    script
}

/// One end's configuration: fragmentation, write buffer, permessage-deflate.
fn config(rng: &mut Rng, largest: usize) -> Config {
    // At most about 1,000 fragments per message, to keep debug builds quick.
    let fragment = rng
        .percent(40)
        .then(|| rng.pick(&[1, 7, 125, 1000, 16384, 70000]).max(largest / 1000));
    let deflate = match rng.percent(70) {
        true => DeflateConfig::default()
            .level(rng.pick(&[1, 6]))
            .min_size(rng.pick(&[0, 0, 100]))
            .server_no_context_takeover(rng.percent(30))
            .client_no_context_takeover(rng.percent(30)),
        false => DeflateConfig::disabled(),
    };
    Config::default()
        .fragment_size(fragment)
        .write_buffer_size(rng.pick(&[128 * 1024, 4096, 1]))
        .deflate(deflate)
}

/// The smallest piece in which `volume` bytes go through in about a thousand calls.
fn smallest_piece(volume: u64) -> usize {
    (volume / 1000) as usize
}

/// How one end's transport misbehaves, for a conversation of about `volume` bytes
/// each way.
fn plan(rng: &mut Rng, faults: bool, volume: u64) -> Plan {
    // Small chunks for small conversations only: about a thousand calls at most
    // (a debug build takes some 5 µs a call).
    let max_chunk = rng
        .pick(&[1, 3, 16, 200, 4096, 65536, usize::MAX])
        .max(smallest_piece(volume));
    let pending_percent = rng.pick(&[0, 10, 50]);
    let fault = (faults && rng.percent(45)).then(|| {
        let kind = rng.pick(&[FaultKind::ReadError, FaultKind::WriteError, FaultKind::EarlyEof]);
        // Half near the start (the handshake, the first frames), half anywhere.
        let within = match rng.percent(50) {
            true => 1 << rng.between(3, 16),
            false => volume + 1,
        };
        Fault {
            kind,
            after: rng.below(within),
        }
    });
    Plan {
        max_chunk,
        pending_percent,
        fault,
    }
}

// ---------------------------------------------------------------------------------
// Running a conversation
// ---------------------------------------------------------------------------------

/// How one end finished.
#[derive(Debug)]
struct End {
    /// The first error either half met (the handshake's included).
    result: Result<(), Error>,
    /// Every message its stream yielded.
    received: Vec<Message>,
    /// Its stream ended (`None`) after them.
    ended: bool,
    /// The client's sink refused a message after the server's close (expected).
    refused_after_close: bool,
}

/// What a stream yielded, shared between an end's tasks.
#[derive(Debug, Default)]
struct Log {
    received: Vec<Message>,
    ended: bool,
    refused_after_close: bool,
}

type SharedLog = Arc<Mutex<Log>>;

impl End {
    fn new(result: Result<(), Error>, log: &SharedLog) -> End {
        let log = std::mem::take(&mut *log.lock().unwrap());
        End {
            result,
            received: log.received,
            ended: log.ended,
            refused_after_close: log.refused_after_close,
        }
    }

    fn data(&self) -> Vec<Message> {
        self.received.iter().filter(|m| m.is_data()).cloned().collect()
    }
}

/// Both ends of a conversation and what their transports recorded.
struct Report {
    client: End,
    server: End,
    client_wire: Recording,
    server_wire: Recording,
}

impl Report {
    /// Whether a planned failure actually happened on either transport.
    fn fired(&self) -> bool {
        self.client_wire.fired || self.server_wire.fired
    }

    fn summary(&self) -> String {
        let end = |end: &End, wire: &Recording| {
            format!(
                "result {:?}, {} data messages, last {:?}, ended {}, fault fired {}, {} bytes written",
                end.result,
                end.data().len(),
                end.received.last().map(|m| m.is_close().then_some(m)),
                end.ended,
                wire.fired,
                wire.written.len()
            )
        };
        format!(
            "client: {}\nserver: {}",
            end(&self.client, &self.client_wire),
            end(&self.server, &self.server_wire)
        )
    }
}

/// Runs the conversation of `seed` on a runtime of its own.
fn converse(seed: u64, mix: Mix) -> (Scenario, Report) {
    let scenario = Scenario::new(seed, mix);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let report = runtime.block_on(run(&scenario));
    (scenario, report)
}

async fn run(scenario: &Scenario) -> Report {
    let (client_io, server_io) = tokio::io::duplex(scenario.pipe);
    // Generators of their own, not replaying the one that made the scenario.
    let (client_io, client_wire) = Faulty::new(client_io, scenario.seed ^ 0xc11e, scenario.client_plan);
    let (server_io, server_wire) = Faulty::new(server_io, scenario.seed ^ 0x5e7e, scenario.server_plan);
    let server_closes = match scenario.closer {
        Closer::Server { after } => Some(after),
        Closer::Client { .. } => None,
    };
    let server = tokio::spawn(serve(
        server_io,
        scenario.server.clone(),
        scenario.echo,
        server_closes,
    ));
    let sender = Sender {
        closer: scenario.closer,
        flush_each: scenario.flush_each,
        unique_payloads: scenario.unique_payloads,
    };
    let client = tokio::spawn(talk(
        client_io,
        scenario.client.clone(),
        scenario.script.clone(),
        sender,
        scenario.expected_echoes(),
    ));
    let Ok((server, client)) = tokio::time::timeout(HANG, async { (server.await, client.await) }).await
    else {
        panic!("{}: hung for {HANG:?} of virtual time", scenario.name());
    };
    let unpanic = |end: Result<End, JoinError>, side| {
        end.unwrap_or_else(|error| panic!("{}: the {side} panicked: {error}", scenario.name()))
    };
    let take = |wire: Arc<Mutex<Recording>>| std::mem::take(&mut *wire.lock().unwrap());
    Report {
        client: unpanic(client, "client"),
        server: unpanic(server, "server"),
        client_wire: take(client_wire),
        server_wire: take(server_wire),
    }
}

/// Waits for both halves' tasks of one end; when one fails the other is aborted,
/// as an application gives up on a connection, unless the error is
/// `ConnectionClosed`: the other half closed the connection, and its own end (or
/// error) says why. A panic in either is re-raised.
async fn join_halves(
    mut a: JoinHandle<Result<(), Error>>,
    mut b: JoinHandle<Result<(), Error>>,
) -> Result<(), Error> {
    let (first, other) = tokio::select! {
        biased;
        first = &mut a => (first, b),
        first = &mut b => (first, a),
    };
    let first = first.unwrap_or_else(|error| panic!("{error}"));
    if first.as_ref().is_err_and(|error| !error.is_closed()) {
        other.abort();
    }
    let second = match other.await {
        Err(error) if error.is_cancelled() => Ok(()),
        other => other.unwrap_or_else(|error| panic!("{error}")),
    };
    match (first, second) {
        (Err(closed), Err(cause)) if closed.is_closed() => Err(cause),
        (first, second) => first.and(second),
    }
}

// ---------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------

/// Accepts, echoes every data message, and closes after `close_after` echoes (or
/// when the client closes).
async fn serve(io: Io, config: Config, echo: Echo, close_after: Option<usize>) -> End {
    let log = SharedLog::default();
    let result = async {
        let ws = Acceptor::new().config(config).accept(io).await?;
        let (sink, stream) = ws.split();
        match echo {
            Echo::Forward => forward_echoes(sink, stream, close_after, &log).await,
            Echo::ByHand => {
                let (echoes, to_echo) = mpsc::channel(4);
                let reader = tokio::spawn(read_to_channel(stream, echoes, Arc::clone(&log)));
                let writer = tokio::spawn(echo_from_channel(to_echo, sink, close_after));
                join_halves(reader, writer).await
            }
        }
    }
    .await;
    End::new(result, &log)
}

/// `stream.forward(sink)`; with `close_after`, only that many messages, after which
/// `forward` closes the sink. Then reads the stream to its end.
async fn forward_echoes(
    mut sink: SplitSink<Io>,
    mut stream: SplitStream<Io>,
    close_after: Option<usize>,
    log: &SharedLog,
) -> Result<(), Error> {
    let logged = (&mut stream).inspect(|item| {
        if let Ok(message) = item {
            log.lock().unwrap().received.push(message.clone());
        }
    });
    match close_after {
        None => logged.forward(&mut sink).await?,
        Some(n) => logged.take(n).forward(&mut sink).await?,
    }
    read_to_end(&mut stream, log).await
}

/// Reads `stream` to its end, logging every message.
async fn read_to_end(stream: &mut SplitStream<Io>, log: &SharedLog) -> Result<(), Error> {
    while let Some(message) = stream.next().await {
        log.lock().unwrap().received.push(message?);
    }
    log.lock().unwrap().ended = true;
    Ok(())
}

/// The reading half of a by-hand echo: every data message goes to the writer task.
async fn read_to_channel(
    mut stream: SplitStream<Io>,
    echoes: mpsc::Sender<Message>,
    log: SharedLog,
) -> Result<(), Error> {
    while let Some(message) = stream.next().await {
        let message = message?;
        log.lock().unwrap().received.push(message.clone());
        if message.is_data() {
            // A writer that is gone has failed, and `join_halves` ends this task.
            let _ = echoes.send(message).await;
        }
    }
    log.lock().unwrap().ended = true;
    Ok(())
}

/// The writing half of a by-hand echo: echoes what the reader hands over; after
/// `close_after` echoes, closes and echoes nothing more (RFC 6455 §5.5.1).
async fn echo_from_channel(
    mut to_echo: mpsc::Receiver<Message>,
    mut sink: SplitSink<Io>,
    mut close_after: Option<usize>,
) -> Result<(), Error> {
    while close_after != Some(0) {
        let Some(message) = to_echo.recv().await else {
            return Ok(());
        };
        sink.send(message).await?;
        close_after = close_after.map(|n| n - 1);
    }
    sink.close().await?;
    while to_echo.recv().await.is_some() {}
    Ok(())
}

// ---------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------

/// Connects, sends the script from one task while another reads the echoes, and
/// closes if it is the client's turn to.
async fn talk(io: Io, config: Config, script: Vec<Step>, sender: Sender, expected: usize) -> End {
    let log = SharedLog::default();
    let result = async {
        let request = ClientRequest::new("ws://fastws.test/echo").config(config);
        let (ws, _response) = fastws::client_handshake(io, request).await?;
        let (sink, stream) = ws.split();
        let (echoed, all_echoed) = oneshot::channel();
        let reader = tokio::spawn(read_echoes(stream, Arc::clone(&log), expected, echoed));
        let writer = tokio::spawn(sender.run(sink, script, all_echoed, Arc::clone(&log)));
        join_halves(reader, writer).await
    }
    .await;
    End::new(result, &log)
}

/// Reads to the end of the stream; says when `expected` echoes are in.
async fn read_echoes(
    mut stream: SplitStream<Io>,
    log: SharedLog,
    expected: usize,
    echoed: oneshot::Sender<()>,
) -> Result<(), Error> {
    let mut echoed = Some(echoed);
    let mut echoes = 0;
    loop {
        if echoes == expected
            && let Some(echoed) = echoed.take()
        {
            let _ = echoed.send(());
        }
        let Some(message) = stream.next().await else { break };
        let message = message?;
        echoes += message.is_data() as usize;
        log.lock().unwrap().received.push(message);
    }
    log.lock().unwrap().ended = true;
    Ok(())
}

/// How the client's sending half sends.
#[derive(Debug, Clone, Copy)]
struct Sender {
    closer: Closer,
    flush_each: bool,
    unique_payloads: bool,
}

impl Sender {
    /// Sends the script, then closes if it is the client's turn to (once every
    /// echo is back, if the closer says so).
    async fn run(
        self,
        mut sink: SplitSink<Io>,
        script: Vec<Step>,
        all_echoed: oneshot::Receiver<()>,
        log: SharedLog,
    ) -> Result<(), Error> {
        let mut sent = 0;
        for step in script {
            let (message, data) = match step {
                Step::Data(message) if self.unique_payloads => (unique_copy(&message), true),
                Step::Data(message) => (message, true),
                Step::Ping(payload) => (Message::ping(payload), false),
            };
            let result = match self.flush_each {
                true => sink.send(message).await,
                false => sink.feed(message).await,
            };
            if self.refused_after_close(result, sent, &log)? {
                return Ok(());
            }
            sent += data as usize;
        }
        let result = sink.flush().await;
        if self.refused_after_close(result, sent, &log)? {
            return Ok(());
        }
        if let Closer::Client { after_echoes } = self.closer {
            if after_echoes {
                // An error means the reader ended first; closing is still right.
                let _ = all_echoed.await;
            }
            sink.close().await?;
        }
        Ok(())
    }

    /// Whether the sink refused a message because the server closed, which it may
    /// once it has the `sent` messages it echoes: sending stops there.
    fn refused_after_close(
        &self,
        result: Result<(), Error>,
        sent: usize,
        log: &SharedLog,
    ) -> Result<bool, Error> {
        match (result, self.closer) {
            (Ok(()), _) => Ok(false),
            (Err(Error::ConnectionClosed), Closer::Server { after }) if sent >= after => {
                log.lock().unwrap().refused_after_close = true;
                Ok(true)
            }
            (Err(error), _) => Err(error),
        }
    }
}

/// A copy of `message` whose payload nobody else holds.
fn unique_copy(message: &Message) -> Message {
    match message {
        Message::Text(text) => Message::text(text.as_str().to_owned()),
        other => Message::binary(other.payload().to_vec()),
    }
}

// ---------------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------------

/// What holds in every conversation, faults or not: no message lost, duplicated or
/// reordered before the failure point, and nothing on the wire after a close
/// frame or after shutdown.
fn assert_invariants(scenario: &Scenario, report: &Report) {
    for (side, end) in [("client", &report.client), ("server", &report.server)] {
        if let Err(error) = &end.result {
            assert!(
                is_a_cut(error),
                "{}: the {side} failed with {error:?}, which a cut connection cannot cause\n{}",
                scenario.name(),
                report.summary()
            );
        }
    }
    let sent = scenario.data();
    assert_prefix(
        scenario,
        report,
        "the server received",
        &report.server.data(),
        &sent,
    );
    assert_prefix(
        scenario,
        report,
        "the client's echoes",
        &report.client.data(),
        &sent,
    );
    assert!(
        report.client.data().len() <= scenario.expected_echoes(),
        "{}: more echoes than the server sends before it closes\n{}",
        scenario.name(),
        report.summary()
    );
    assert_clean_wire(scenario, "client", &report.client_wire, WsCodec::server());
    assert_clean_wire(scenario, "server", &report.server_wire, WsCodec::client());
}

/// Whether `error` is one a cut connection may cause: the transport's, or the
/// connection ending. Never a protocol violation or an invalid handshake: no byte
/// is ever altered.
fn is_a_cut(error: &Error) -> bool {
    matches!(
        error,
        Error::Io(_)
            | Error::ConnectionClosed
            | Error::CloseTimeout
            | Error::Handshake(HandshakeError::UnexpectedEof)
    )
}

/// `got` is `sent[..got.len()]`, message for message (kind and payload).
fn assert_prefix(scenario: &Scenario, report: &Report, what: &str, got: &[Message], sent: &[Message]) {
    assert!(
        got.len() <= sent.len(),
        "{}: {what} {} messages, {} were sent\n{}",
        scenario.name(),
        got.len(),
        sent.len(),
        report.summary()
    );
    if let Some(i) = (0..got.len()).find(|&i| got[i] != sent[i]) {
        panic!(
            "{}: {what} message {i} is not the one sent there (lost, duplicated, reordered \
             or altered): got {} {} bytes, sent {} {} bytes\n{}",
            scenario.name(),
            kind(&got[i]),
            got[i].payload().len(),
            kind(&sent[i]),
            sent[i].payload().len(),
            report.summary()
        );
    }
}

fn kind(message: &Message) -> &'static str {
    match message {
        Message::Text(_) => "text",
        Message::Binary(_) => "binary",
        _ => "control",
    }
}

/// Whether the whole conversation happened: every echo, and the close handshake
/// completed on both sides with no error.
fn is_complete(scenario: &Scenario, report: &Report) -> bool {
    let closed_normally = |end: &End| {
        end.result.is_ok()
            && end.ended
            && matches!(end.received.last(), Some(Message::Close(Some(close))) if close.code == CloseCode::Normal)
    };
    let server_got = report.server.data().len();
    let server_expected = match scenario.closer {
        Closer::Client { .. } => server_got == scenario.data().len(),
        Closer::Server { after } => server_got >= after,
    };
    closed_normally(&report.client)
        && closed_normally(&report.server)
        && report.client.data().len() == scenario.expected_echoes()
        && server_expected
}

fn assert_complete(scenario: &Scenario, report: &Report) {
    assert!(
        is_complete(scenario, report),
        "{}: the conversation did not complete (expected {} echoes, a normal close on \
         both sides, no error)\n{}",
        scenario.name(),
        scenario.expected_echoes(),
        report.summary()
    );
    for (side, wire, codec) in [
        ("client", &report.client_wire, WsCodec::server()),
        ("server", &report.server_wire, WsCodec::client()),
    ] {
        let frames = frames_on_wire(&wire.written, codec).unwrap_or_default();
        assert!(
            frames.closed && frames.cut_short == 0 && wire.shut_down,
            "{}: the {side} completed without sending a whole close frame and shutting \
             down: {frames:?}, shut down {}",
            scenario.name(),
            wire.shut_down
        );
    }
}

/// What one side wrote, after its HTTP head, read as frames.
#[derive(Debug, Default)]
struct Wire {
    frames: usize,
    /// A close frame was among them (and ended the reading).
    closed: bool,
    /// Bytes after the first close frame.
    after_close: usize,
    /// Bytes of an incomplete frame at the end (a connection cut mid-frame).
    cut_short: usize,
}

/// Decodes `written` with `codec` (the peer's role), up to the first close frame.
fn frames_on_wire(written: &[u8], mut codec: WsCodec) -> Result<Wire, Error> {
    let Some(head) = written.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(Wire::default());
    };
    codec = codec.allowed_rsv(0b100);
    let mut buf = BytesMut::from(&written[head + 4..]);
    let mut wire = Wire::default();
    while let Some(frame) = codec.decode(&mut buf)? {
        wire.frames += 1;
        if frame.opcode() == OpCode::Close {
            wire.closed = true;
            wire.after_close = buf.len();
            return Ok(wire);
        }
    }
    wire.cut_short = buf.len();
    Ok(wire)
}

/// The side's output is valid frames, nothing follows its first close frame, and
/// nothing was offered to the transport after its shutdown.
fn assert_clean_wire(scenario: &Scenario, side: &str, wire: &Recording, codec: WsCodec) {
    let frames = frames_on_wire(&wire.written, codec)
        .unwrap_or_else(|error| panic!("{}: the {side} wrote invalid frames: {error}", scenario.name()));
    assert_eq!(
        frames.after_close,
        0,
        "{}: the {side} wrote {} bytes after its close frame",
        scenario.name(),
        frames.after_close
    );
    assert_eq!(
        wire.offered_after_shutdown,
        0,
        "{}: the {side} wrote {} bytes after shutting its transport down",
        scenario.name(),
        wire.offered_after_shutdown
    );
}

/// Whether the side's output holds a close frame.
fn closes_on_wire(wire: &Recording, codec: WsCodec) -> bool {
    frames_on_wire(&wire.written, codec).is_ok_and(|frames| frames.closed)
}
