//! One echo handler per library and variant: text comes back as text, binary as
//! binary, control frames are left to the library. Each takes an accepted
//! `TcpStream` (with `TCP_NODELAY` already set by [`serve`](crate::serve)).
//!
//! Same limits everywhere: messages up to [`MAX_MESSAGE`] (64 MiB), frames up to
//! [`MAX_FRAME`] (16 MiB) where the library has that knob.
//!
//! The plain handlers are each library's documented echo. Where a library exposes a
//! `Stream` + `Sink` of messages there are two more: [`echo_batched`] (feed while
//! more messages are already buffered, one flush per burst) and [`echo_forward`]
//! (`split` + `forward`, which is tokio-tungstenite's own example).

use std::future::{Future, ready};

use bytes::Bytes;
use futures::{FutureExt, Sink, SinkExt, Stream, StreamExt, TryStreamExt};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest message every server accepts.
pub const MAX_MESSAGE: usize = 64 << 20;
/// The largest frame, for the libraries that limit frames apart from messages.
pub const MAX_FRAME: usize = 16 << 20;
/// The most messages a hand-batched echo feeds before it flushes.
pub const BURST: usize = 64;

/// Echoes data messages, feeding each one while more are already received (polled
/// once with `now_or_never`, up to [`BURST`]), then flushing once: the batching a
/// user can write by hand over any `Stream` + `Sink` of messages.
pub async fn echo_batched<W, M, E>(mut ws: W, is_data: fn(&M) -> bool) -> Result<(), E>
where
    W: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Unpin,
{
    while let Some(message) = ws.next().await {
        let message = message?;
        if is_data(&message) {
            ws.feed(message).await?;
        }
        for _ in 1..BURST {
            match ws.next().now_or_never() {
                Some(Some(message)) => {
                    let message = message?;
                    if is_data(&message) {
                        ws.feed(message).await?;
                    }
                }
                Some(None) => {
                    // The stream ended (close handshake done): flush what is left, if
                    // the connection still takes it.
                    let _ = ws.flush().await;
                    return Ok(());
                }
                None => break,
            }
        }
        ws.flush().await?;
    }
    Ok(())
}

/// Echoes data messages with `split` and `forward`: `forward` feeds while the
/// stream has items ready and flushes when it has none.
pub async fn echo_forward<W, M, E>(ws: W, is_data: fn(&M) -> bool) -> Result<(), E>
where
    W: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
{
    let (sink, stream) = ws.split();
    stream
        .try_filter(move |message| ready(is_data(message)))
        .forward(sink)
        .await
}

// ---------------------------------------------------------------------------
// fastws

fn fastws_acceptor() -> fastws::Acceptor {
    let config = fastws::Config::default()
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_FRAME);
    fastws::Acceptor::new().config(config)
}

fn fastws_is_data(message: &fastws::Message) -> bool {
    message.is_data()
}

/// fastws, the echo of its README and `examples/echo_server.rs`: fastws's own
/// `split()`, then `stream.forward(sink)` (the peer's close message is forwarded
/// too; fastws ignores it, its close echo is already queued).
pub async fn fastws(tcp: TcpStream) -> Result<(), fastws::Error> {
    let (sink, stream) = fastws_acceptor().accept(tcp).await?.split();
    stream.forward(sink).await
}

/// fastws, the README's loop "written by hand": `next()` then `send()` per data
/// message (one flush per message).
pub async fn fastws_send(tcp: TcpStream) -> Result<(), fastws::Error> {
    let mut ws = fastws_acceptor().accept(tcp).await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_data() {
            ws.send(message).await?;
        }
    }
    Ok(())
}

/// fastws, hand-batched ([`echo_batched`]).
pub async fn fastws_batched(tcp: TcpStream) -> Result<(), fastws::Error> {
    let ws = fastws_acceptor().accept(tcp).await?;
    echo_batched(ws, fastws_is_data).await
}

/// fastws, exactly the peers' `forward` echo ([`echo_forward`]: futures'
/// `StreamExt::split` and a data filter) rather than the README's.
pub async fn fastws_forward(tcp: TcpStream) -> Result<(), fastws::Error> {
    let ws = fastws_acceptor().accept(tcp).await?;
    echo_forward(ws, fastws_is_data).await
}

// ---------------------------------------------------------------------------
// tokio-tungstenite

type TungsteniteMessage = tokio_tungstenite::tungstenite::Message;
type TungsteniteError = tokio_tungstenite::tungstenite::Error;

async fn tungstenite_accept(
    tcp: TcpStream,
) -> Result<tokio_tungstenite::WebSocketStream<TcpStream>, TungsteniteError> {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_FRAME));
    tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await
}

fn tungstenite_is_data(message: &TungsteniteMessage) -> bool {
    message.is_text() || message.is_binary()
}

/// tokio-tungstenite, `next()` then `send()` per message.
pub async fn tungstenite(tcp: TcpStream) -> Result<(), TungsteniteError> {
    let mut ws = tungstenite_accept(tcp).await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_text() || message.is_binary() {
            ws.send(message).await?;
        }
    }
    Ok(())
}

/// tokio-tungstenite, hand-batched ([`echo_batched`]).
pub async fn tungstenite_batched(tcp: TcpStream) -> Result<(), TungsteniteError> {
    let ws = tungstenite_accept(tcp).await?;
    echo_batched(ws, tungstenite_is_data).await
}

/// tokio-tungstenite, `split` + `try_filter` + `forward`: its `examples/echo-server.rs`.
pub async fn tungstenite_forward(tcp: TcpStream) -> Result<(), TungsteniteError> {
    let ws = tungstenite_accept(tcp).await?;
    echo_forward(ws, tungstenite_is_data).await
}

// ---------------------------------------------------------------------------
// fastwebsockets

/// fastwebsockets, as its `examples/echo_server.rs`: the upgrade through hyper
/// (feature `upgrade`), a `FragmentCollector` for whole messages, and the
/// connection in an `unconstrained` task. Its `WebSocket` writes every frame with
/// its own `write_all` and has no `Stream`/`Sink`, so there is no batched or
/// forward variant.
pub async fn fastwebsockets(tcp: TcpStream) -> Result<(), hyper::Error> {
    http1::Builder::new()
        .serve_connection(TokioIo::new(tcp), service_fn(fastwebsockets_upgrade))
        .with_upgrades()
        .await
}

async fn fastwebsockets_upgrade(
    mut request: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, fastwebsockets::WebSocketError> {
    let (response, upgrade) = fastwebsockets::upgrade::upgrade(&mut request)?;
    tokio::spawn(tokio::task::unconstrained(async move {
        if let Err(err) = fastwebsockets_echo(upgrade).await {
            eprintln!("fastwebsockets: {err}");
        }
    }));
    Ok(response)
}

async fn fastwebsockets_echo(
    upgrade: fastwebsockets::upgrade::UpgradeFut,
) -> Result<(), fastwebsockets::WebSocketError> {
    let mut ws = upgrade.await?;
    ws.set_max_message_size(MAX_MESSAGE);
    let mut ws = fastwebsockets::FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            fastwebsockets::OpCode::Close => break,
            fastwebsockets::OpCode::Text | fastwebsockets::OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// tokio-websockets

type TokioWebsocketsError = tokio_websockets::Error;

async fn tokio_websockets_accept(
    tcp: TcpStream,
) -> Result<tokio_websockets::WebSocketStream<TcpStream>, TokioWebsocketsError> {
    let limits = tokio_websockets::Limits::default().max_payload_len(Some(MAX_MESSAGE));
    let (_request, ws) = tokio_websockets::ServerBuilder::new()
        .limits(limits)
        .accept(tcp)
        .await?;
    Ok(ws)
}

fn tokio_websockets_is_data(message: &tokio_websockets::Message) -> bool {
    message.is_text() || message.is_binary()
}

/// tokio-websockets, as its `examples/echo_server.rs` (`next()` then `send()`, in
/// an `unconstrained` task).
pub async fn tokio_websockets(tcp: TcpStream) -> Result<(), TokioWebsocketsError> {
    tokio::task::unconstrained(async move {
        let mut ws = tokio_websockets_accept(tcp).await?;
        while let Some(message) = ws.next().await {
            let message = message?;
            if message.is_text() || message.is_binary() {
                ws.send(message).await?;
            }
        }
        Ok(())
    })
    .await
}

/// tokio-websockets, hand-batched ([`echo_batched`]).
pub async fn tokio_websockets_batched(tcp: TcpStream) -> Result<(), TokioWebsocketsError> {
    tokio::task::unconstrained(async move {
        let ws = tokio_websockets_accept(tcp).await?;
        echo_batched(ws, tokio_websockets_is_data).await
    })
    .await
}

/// tokio-websockets, `split` + `forward` ([`echo_forward`]).
pub async fn tokio_websockets_forward(tcp: TcpStream) -> Result<(), TokioWebsocketsError> {
    tokio::task::unconstrained(async move {
        let ws = tokio_websockets_accept(tcp).await?;
        echo_forward(ws, tokio_websockets_is_data).await
    })
    .await
}

// ---------------------------------------------------------------------------
// raw TCP: the ceiling

/// The fixed answer of [`raw_tcp`]: the accept key of the client's fixed key
/// ([`client::KEY`](crate::client::KEY)).
pub const RAW_RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\n\
Upgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

/// The read buffer of [`raw_tcp`]: as large as the largest message of the matrix,
/// so the ceiling is not limited by its own buffer.
pub const RAW_BUFFER: usize = 1 << 20;

/// Reads the request head up to `\r\n\r\n`, answers [`RAW_RESPONSE`], then writes
/// back every byte it reads: the client's masked frames return as they went out.
pub async fn raw_tcp(mut tcp: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let end = loop {
        let mut chunk = [0u8; 1024];
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if head.len() > 16 * 1024 {
            return Err(std::io::Error::other("request head over 16 KiB"));
        }
    };
    tcp.write_all(RAW_RESPONSE).await?;
    tcp.write_all(&head[end..]).await?;
    let mut buf = vec![0u8; RAW_BUFFER];
    loop {
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        tcp.write_all(&buf[..n]).await?;
    }
}

// ---------------------------------------------------------------------------
// by name

/// The name of every server, as in `srv_NAME`, the order of the result tables.
pub const NAMES: &[&str] = &[
    "fastws",
    "fastws_send",
    "fastws_batched",
    "fastws_forward",
    "tungstenite",
    "tungstenite_batched",
    "tungstenite_forward",
    "fastwebsockets",
    "tokio_websockets",
    "tokio_websockets_batched",
    "tokio_websockets_forward",
    "raw_tcp",
];

/// A connection's echo, its error as text.
pub type Connection = std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// The handler called `name` (one of [`NAMES`]), running on `tcp`.
pub fn by_name(name: &str, tcp: TcpStream) -> Option<Connection> {
    fn boxed<E: std::fmt::Display>(
        connection: impl Future<Output = Result<(), E>> + Send + 'static,
    ) -> Option<Connection> {
        Some(Box::pin(
            async move { connection.await.map_err(|e| e.to_string()) },
        ))
    }
    match name {
        "fastws" => boxed(fastws(tcp)),
        "fastws_send" => boxed(fastws_send(tcp)),
        "fastws_batched" => boxed(fastws_batched(tcp)),
        "fastws_forward" => boxed(fastws_forward(tcp)),
        "tungstenite" => boxed(tungstenite(tcp)),
        "tungstenite_batched" => boxed(tungstenite_batched(tcp)),
        "tungstenite_forward" => boxed(tungstenite_forward(tcp)),
        "fastwebsockets" => boxed(fastwebsockets(tcp)),
        "tokio_websockets" => boxed(tokio_websockets(tcp)),
        "tokio_websockets_batched" => boxed(tokio_websockets_batched(tcp)),
        "tokio_websockets_forward" => boxed(tokio_websockets_forward(tcp)),
        "raw_tcp" => boxed(raw_tcp(tcp)),
        _ => None,
    }
}
