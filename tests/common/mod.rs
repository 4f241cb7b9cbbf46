//! Shared helpers of the integration tests: a one-connection server running a
//! handler on the accepted `WebSocket`, and a raw frame-level client that does the
//! HTTP upgrade by hand so tests can put arbitrary frames on the wire.
#![allow(dead_code)]

pub mod chat;
pub mod counting;
pub mod faulty;
pub mod inflate;
pub mod metered;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use fastws::{Acceptor, Config, Error, Frame, Message, OpCode, WebSocket, WsCodec};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::codec::{Framed, FramedParts};

/// How long any single wait on the peer may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The `Sec-WebSocket-Key` of RFC 6455 §1.3, and the accept value it implies.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A raw client: frames in and out, no message-layer checks.
pub type Client = Framed<TcpStream, WsCodec>;

/// Awaits `future`, failing the test if it takes longer than [`TIMEOUT`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    within_for(TIMEOUT, what, future).await
}

/// Awaits `future`, failing the test if it takes longer than `limit`.
pub async fn within_for<F: Future>(limit: Duration, what: &str, future: F) -> F::Output {
    match tokio::time::timeout(limit, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

// ---------------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------------

/// Listens on 127.0.0.1 (port 0), accepts one TCP connection and runs `handler` on
/// it in a spawned task.
pub async fn start_raw<F, Fut, T>(handler: F) -> (SocketAddr, JoinHandle<T>)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept tcp");
        handler(tcp).await
    });
    (addr, task)
}

/// Like [`start`], with a fully configured `Acceptor`.
pub async fn start_with<F, Fut, T>(
    acceptor: Acceptor,
    handler: F,
) -> (SocketAddr, JoinHandle<Result<T, Error>>)
where
    F: FnOnce(WebSocket<TcpStream>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    start_raw(move |tcp| async move {
        let ws = acceptor.accept(tcp).await?;
        handler(ws).await
    })
    .await
}

/// Starts a server that upgrades one connection with `config` and runs `handler`
/// on the WebSocket; the task gives back the handler's result (or the handshake's
/// error).
pub async fn start<F, Fut, T>(config: Config, handler: F) -> (SocketAddr, JoinHandle<Result<T, Error>>)
where
    F: FnOnce(WebSocket<TcpStream>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    start_with(Acceptor::new().config(config), handler).await
}

/// The echo loop: sends every data message back, and returns every message the
/// stream yielded once it ends, or the first error.
pub async fn echo(mut ws: WebSocket<TcpStream>) -> Result<Vec<Message>, Error> {
    let mut seen = Vec::new();
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_data() {
            ws.send(message.clone()).await?;
        }
        seen.push(message);
    }
    Ok(seen)
}

/// Waits for the server task, failing the test on a timeout or a panic.
pub async fn finish<T>(task: JoinHandle<T>) -> T {
    within("the server task to end", task)
        .await
        .expect("server task panicked")
}

// ---------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------

/// A valid upgrade request for `path`, with `extra` header lines (each ending in
/// `\r\n`) before the blank line.
pub fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\n\
         Host: 127.0.0.1\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\n\
         Sec-WebSocket-Version: 13\r\n\
         {extra}\r\n"
    )
}

/// An HTTP response head as the client received it.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: u16,
    /// Header names lower-cased, values as sent.
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads an HTTP response head up to the blank line; returns it with the bytes
/// that followed it.
pub async fn read_response_head(tcp: &mut TcpStream) -> (ResponseHead, BytesMut) {
    let mut buf = BytesMut::with_capacity(1024);
    let head_len = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let read = within("the response head", tcp.read_buf(&mut buf))
            .await
            .expect("read response head");
        assert_ne!(read, 0, "connection closed inside the response head: {buf:?}");
    };
    let rest = buf.split_off(head_len);
    let text = std::str::from_utf8(&buf).expect("response head is ASCII");
    let mut lines = text.split("\r\n");
    let status_line = lines.next().expect("status line");
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "status line {status_line:?}");
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {line:?}"));
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    (ResponseHead { status, headers }, rest)
}

/// Connects, sends `request` and reads the response head.
pub async fn connect_with_request(addr: SocketAddr, request: &[u8]) -> (TcpStream, ResponseHead, BytesMut) {
    let mut tcp = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    within("write the request", tcp.write_all(request))
        .await
        .expect("write request");
    let (head, rest) = read_response_head(&mut tcp).await;
    (tcp, head, rest)
}

/// Does the opening handshake by hand and checks the `101`; returns the socket and
/// any bytes read past the response head.
pub async fn upgrade_raw(addr: SocketAddr) -> (TcpStream, BytesMut) {
    let request = upgrade_request("/", "");
    let (tcp, head, rest) = connect_with_request(addr, request.as_bytes()).await;
    assert_eq!(head.status, 101, "handshake refused: {head:?}");
    assert_eq!(head.header("sec-websocket-accept"), Some(SAMPLE_ACCEPT));
    (tcp, rest)
}

/// Wraps an upgraded socket in a client frame codec, keeping bytes already read.
pub fn client_from(tcp: TcpStream, read: BytesMut) -> Client {
    let mut parts = FramedParts::new::<Frame>(tcp, WsCodec::client());
    parts.read_buf = read;
    Framed::from_parts(parts)
}

/// Like [`client_from`], for either role, with the caller's codec (for example one
/// that allows RSV1 after permessage-deflate was negotiated).
pub fn framed_with(tcp: TcpStream, read: BytesMut, codec: WsCodec) -> Client {
    let mut parts = FramedParts::new::<Frame>(tcp, codec);
    parts.read_buf = read;
    Framed::from_parts(parts)
}

/// Connects and upgrades; returns a raw frame-level client.
pub async fn connect(addr: SocketAddr) -> Client {
    let (tcp, rest) = upgrade_raw(addr).await;
    client_from(tcp, rest)
}

/// Sends one frame (masked by the client codec) and flushes.
pub async fn send(client: &mut Client, frame: Frame) {
    within("sending a frame", client.send(frame))
        .await
        .expect("send frame");
}

/// Receives the next frame, failing on EOF or an error.
pub async fn recv(client: &mut Client) -> Frame {
    match within("a frame from the server", client.next()).await {
        Some(Ok(frame)) => frame,
        Some(Err(err)) => panic!("client read failed: {err}"),
        None => panic!("server closed the connection, expected a frame"),
    }
}

/// The status code of a close frame's payload, if it has one.
pub fn close_code(frame: &Frame) -> Option<u16> {
    assert_eq!(frame.opcode(), OpCode::Close, "not a close frame: {frame:?}");
    let payload = frame.payload();
    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]))
}

/// The reason of a close frame's payload (empty if it has none).
pub fn close_reason(frame: &Frame) -> &str {
    assert_eq!(frame.opcode(), OpCode::Close, "not a close frame: {frame:?}");
    std::str::from_utf8(frame.payload().get(2..).unwrap_or_default()).expect("a UTF-8 close reason")
}

/// Receives the next frame and requires it to be a close frame with `code` and
/// `reason`.
pub async fn expect_close_with(client: &mut Client, code: u16, reason: &str) {
    let close = recv(client).await;
    assert_eq!(close_code(&close), Some(code), "{close:?}");
    assert_eq!(close_reason(&close), reason);
}

/// Receives the next frame, requires it to be a close frame, returns its code.
pub async fn expect_close(client: &mut Client) -> Option<u16> {
    let frame = recv(client).await;
    close_code(&frame)
}

/// Requires the server to have closed the TCP connection (EOF, nothing more).
pub async fn expect_eof(client: &mut Client) {
    match within("the server to close the connection", client.next()).await {
        None => {}
        Some(other) => panic!("expected EOF, got {other:?}"),
    }
}

/// A masked client frame built by hand: header (FIN, opcode, length, key) then the
/// masked payload, for tests that write raw bytes.
pub fn masked_frame(first_byte: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mut wire = vec![first_byte];
    match payload.len() {
        len @ 0..=125 => wire.push(0x80 | len as u8),
        len @ 126..=0xFFFF => {
            wire.push(0x80 | 126);
            wire.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            wire.push(0x80 | 127);
            wire.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    wire.extend_from_slice(&key);
    let start = wire.len();
    wire.extend_from_slice(payload);
    fastws::mask::apply_mask(&mut wire[start..], key, 0);
    wire
}
