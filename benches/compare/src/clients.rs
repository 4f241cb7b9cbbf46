//! One WebSocket client per library for the client-role benchmark, each written
//! as its documentation recommends: its message stream (fastwebsockets: its
//! `FragmentCollector`), checking every message's length.
//!
//! The upgrade is the load generator's ([`client::connect`]), the same bytes for
//! every library; each library then takes over the upgraded socket in the client
//! role. Messages are counted into [`Progress::echoed`] in steps of
//! [`TALLY_STEP`], so the counting costs every client the same and little.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::client::{EchoParser, Progress, build_frames};
use crate::neutral_server::Mode;

/// Messages a client counts before it adds them to the shared count.
pub const TALLY_STEP: u64 = 16;

/// The largest message any client accepts (the largest load is 1 MiB).
const MAX_MESSAGE: usize = 16 << 20;

/// What one connection does: subscribe with one message and receive `count`
/// messages of `size` bytes (push), or send and await the echo of `count` such
/// messages, one at a time (echo).
#[derive(Clone)]
pub struct Job {
    pub mode: Mode,
    pub size: usize,
    pub count: u64,
    pub progress: Arc<Progress>,
}

/// Counts a connection's messages into the shared count, [`TALLY_STEP`] at a time.
struct Tally<'a> {
    progress: &'a Progress,
    pending: u64,
}

impl Tally<'_> {
    fn one(&mut self) {
        self.pending += 1;
        if self.pending == TALLY_STEP {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let done = std::mem::take(&mut self.pending);
        let before = self.progress.echoed.fetch_add(done, Ordering::Relaxed);
        if let Some(on_echoed) = self.progress.on_echoed.get() {
            on_echoed(before, before + done);
        }
    }
}

impl Drop for Tally<'_> {
    fn drop(&mut self) {
        if self.pending > 0 {
            self.flush();
        }
    }
}

/// The client names, as `client_role` takes them; `fastws_twin` is fastws again,
/// the control that shows how far two runs of one client differ.
pub const NAMES: &[&str] = &[
    "fastws",
    "fastws_twin",
    "tungstenite",
    "fastwebsockets",
    "tokio_websockets",
    "raw_tcp",
];

/// What a client runs over: the upgraded socket, or an in-memory [`Feed`](crate::feed::Feed).
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for T {}

/// Runs the client `name` over the upgraded `tcp`; `None` for an unknown name.
pub async fn run<S: Transport>(name: &str, tcp: S, job: Job) -> Option<Result<(), String>> {
    Some(match name {
        "fastws" | "fastws_twin" => fastws(tcp, job).await,
        "tungstenite" => tungstenite(tcp, job).await,
        "fastwebsockets" => fastwebsockets(tcp, job).await,
        "tokio_websockets" => tokio_websockets(tcp, job).await,
        "raw_tcp" => raw_tcp(tcp, job).await,
        _ => return None,
    })
}

/// The message a push client subscribes with.
const SUBSCRIBE: &[u8] = b"subscribe";

/// The payload every echo client sends.
fn payload(size: usize) -> Bytes {
    Bytes::from((0..size).map(|i| i as u8).collect::<Vec<u8>>())
}

fn check_len(len: usize, job: &Job) -> Result<(), String> {
    if len == job.size {
        Ok(())
    } else {
        Err(format!("a message of {len} bytes, expected {}", job.size))
    }
}

/// The loop of every client that is a `Stream` and a `Sink` of messages:
/// subscribe (push) or send each request (echo), then read up to the next data
/// message. `message` makes a binary message; `data_len` is a data message's
/// payload length, `None` for a control message.
async fn stream_client<W, M, E>(
    mut ws: W,
    job: Job,
    message: impl Fn(Bytes) -> M,
    data_len: impl Fn(&M) -> Option<usize>,
) -> Result<(), String>
where
    W: Stream<Item = Result<M, E>> + Sink<M> + Unpin,
    E: std::fmt::Display,
    <W as Sink<M>>::Error: std::fmt::Display,
{
    let mut tally = Tally {
        progress: &job.progress,
        pending: 0,
    };
    let request = payload(job.size);
    if job.mode == Mode::Push {
        ws.send(message(Bytes::from_static(SUBSCRIBE)))
            .await
            .map_err(|e| e.to_string())?;
    }
    for _ in 0..job.count {
        if job.mode == Mode::Echo {
            ws.send(message(request.clone()))
                .await
                .map_err(|e| e.to_string())?;
        }
        loop {
            let received = ws
                .next()
                .await
                .ok_or("the server closed")?
                .map_err(|e| e.to_string())?;
            if let Some(len) = data_len(&received) {
                check_len(len, &job)?;
                break;
            }
        }
        tally.one();
    }
    Ok(())
}

/// fastws: `WebSocket` as a `Stream` of messages, `send` per request.
pub async fn fastws<S: Transport>(tcp: S, job: Job) -> Result<(), String> {
    let config = fastws::Config::default()
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE);
    let ws = fastws::WebSocket::from_raw_socket(tcp, fastws::Role::Client, config);
    stream_client(ws, job, fastws::Message::binary, |message| {
        message.is_data().then(|| message.len())
    })
    .await
}

/// tokio-tungstenite: `WebSocketStream` as a `Stream` of messages.
pub async fn tungstenite<S: Transport>(tcp: S, job: Job) -> Result<(), String> {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(tcp, Role::Client, Some(config)).await;
    stream_client(ws, job, Message::Binary, |message| match message {
        Message::Binary(data) => Some(data.len()),
        Message::Text(text) => Some(text.len()),
        _ => None,
    })
    .await
}

/// fastwebsockets: `FragmentCollector::read_frame`, requests written from a
/// borrowed mutable buffer (masked in place, the zero-copy way its docs give).
pub async fn fastwebsockets<S: Transport>(tcp: S, job: Job) -> Result<(), String> {
    use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
    let mut ws = WebSocket::after_handshake(tcp, Role::Client);
    ws.set_max_message_size(MAX_MESSAGE);
    let mut ws = fastwebsockets::FragmentCollector::new(ws);
    let mut tally = Tally {
        progress: &job.progress,
        pending: 0,
    };
    let mut request = payload(job.size).to_vec();
    if job.mode == Mode::Push {
        ws.write_frame(Frame::binary(Payload::Borrowed(SUBSCRIBE)))
            .await
            .map_err(|e| e.to_string())?;
    }
    for _ in 0..job.count {
        if job.mode == Mode::Echo {
            ws.write_frame(Frame::binary(Payload::BorrowedMut(&mut request)))
                .await
                .map_err(|e| e.to_string())?;
        }
        loop {
            let frame = ws.read_frame().await.map_err(|e| e.to_string())?;
            match frame.opcode {
                OpCode::Binary | OpCode::Text => {
                    check_len(frame.payload.len(), &job)?;
                    break;
                }
                OpCode::Close => return Err("the server closed".to_owned()),
                _ => {}
            }
        }
        tally.one();
    }
    Ok(())
}

/// tokio-websockets: `WebSocketStream` as a `Stream` of messages.
pub async fn tokio_websockets<S: Transport>(tcp: S, job: Job) -> Result<(), String> {
    let limits = tokio_websockets::Limits::default().max_payload_len(Some(MAX_MESSAGE));
    let ws = tokio_websockets::ClientBuilder::new()
        .limits(limits)
        .take_over(tcp);
    stream_client(ws, job, tokio_websockets::Message::binary, |message| {
        (message.is_binary() || message.is_text()).then(|| message.as_payload().len())
    })
    .await
}

/// The read buffer of [`raw_tcp`], unless `RAW_READ` sets another size.
const RAW_BUFFER: usize = 64 << 10;

/// No WebSocket library, the reference: writes pre-built masked frames, reads
/// into one reused buffer and only walks the frame headers ([`EchoParser`]),
/// never copying or keeping a payload. It does the least work per message of
/// all the clients, which is what makes it telling where it receives the
/// slowest: there, the rate measures how the pair of processes waits on each
/// other, not how much work the client does.
pub async fn raw_tcp<S: Transport>(mut tcp: S, job: Job) -> Result<(), String> {
    let mut tally = Tally {
        progress: &job.progress,
        pending: 0,
    };
    let mut parser = EchoParser::new(job.size, false);
    let read_size = std::env::var("RAW_READ")
        .ok()
        .and_then(|size| size.parse().ok())
        .unwrap_or(RAW_BUFFER);
    let mut buffer = vec![0u8; read_size];
    let (request, _) = build_frames(job.size, 1);
    if job.mode == Mode::Push {
        let (subscribe, _) = build_frames(SUBSCRIBE.len(), 1);
        tcp.write_all(&subscribe).await.map_err(|e| e.to_string())?;
    }
    let mut received = 0;
    while received < job.count {
        if job.mode == Mode::Echo {
            tcp.write_all(&request).await.map_err(|e| e.to_string())?;
        }
        let wanted = if job.mode == Mode::Echo {
            received + 1
        } else {
            job.count
        };
        while received < wanted {
            let n = tcp.read(&mut buffer).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the server closed".to_owned());
            }
            // A read may end past the last message (a `Feed` is endless).
            for _ in 0..parser.feed(&buffer[..n])?.min(wanted - received) {
                received += 1;
                tally.one();
            }
        }
    }
    Ok(())
}
