//! Streaming a message in (`AsyncRead`) and out (`AsyncWrite`), fragment by
//! fragment, for messages too large to hold in memory.
//!
//! - [`MessageReader`] yields the payload of one incoming data message as its frames
//!   arrive; get one from [`WebSocket::next_message_reader`] or
//!   [`SplitStream::next_message_reader`].
//! - [`MessageWriter`] sends one outgoing message as fragments; get one from
//!   [`WebSocket::message_writer`] or [`SplitSink::message_writer`].
//!
//! Both keep the protocol going underneath: pings that arrive between fragments are
//! answered, pongs go out between outgoing fragments, limits and UTF-8 checks apply.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::Error;
use crate::frame::OpCode;
use crate::message::Message;
use crate::utf8::Utf8Validator;
use crate::websocket::{Shared, SplitSink, SplitStream, WebSocket};

/// The default size of the fragments a [`MessageWriter`] sends, when the config
/// sets no [`fragment_size`](crate::Config::fragment_size).
pub const DEFAULT_STREAM_FRAGMENT: usize = 64 * 1024;

/// The kind of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// UTF-8 text.
    Text,
    /// Binary data.
    Binary,
}

impl MessageKind {
    fn opcode(self) -> OpCode {
        match self {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        }
    }
}

/// The connection a reader or writer works on: a whole WebSocket, or the shared
/// one behind split halves.
#[derive(Debug)]
enum Handle<'a, S> {
    Whole(&'a mut WebSocket<S>),
    Half(&'a Shared<S>),
}

impl<S> Handle<'_, S> {
    fn with<R>(&mut self, f: impl FnOnce(&mut WebSocket<S>) -> R) -> R {
        match self {
            Handle::Whole(ws) => f(ws),
            Handle::Half(shared) => f(&mut shared.lock()),
        }
    }
}

/// The payload of one incoming data message, read as it arrives.
///
/// Reading returns the message's bytes fragment by fragment (decompressed, and
/// validated as UTF-8 for text) and then end-of-file. Errors of the connection come
/// back as `io::Error`s of kind `Other` wrapping [`Error`]; the connection ending
/// mid-message is `UnexpectedEof`.
///
/// Dropping the reader before the end **skips the rest of the message**: its
/// remaining frames are still checked (limits, UTF-8, decompression) and then
/// discarded, and the next message is read normally.
///
/// ```no_run
/// # async fn run(mut ws: fastws::WebSocket<tokio::net::TcpStream>) -> Result<(), Box<dyn std::error::Error>> {
/// if let Some(reader) = ws.next_message_reader().await {
///     let mut reader = reader?;
///     let mut file = tokio::fs::File::create("upload.bin").await?;
///     tokio::io::copy(&mut reader, &mut file).await?; // bounded memory
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MessageReader<'a, S> {
    handle: Handle<'a, S>,
    kind: MessageKind,
    chunk: Bytes,
    finished: bool,
}

impl<S> MessageReader<'_, S> {
    /// Whether the message is text or binary.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// Whether the whole message has been received (some may still be unread).
    pub fn is_complete(&self) -> bool {
        self.finished
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MessageReader<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.chunk.is_empty() && !this.finished {
            match ready!(this.handle.with(|ws| ws.poll_chunk(cx))) {
                Some(Ok(chunk)) => {
                    this.chunk = chunk.bytes;
                    this.finished = chunk.fin;
                }
                Some(Err(Error::Io(error))) => return Poll::Ready(Err(error)),
                Some(Err(error)) => return Poll::Ready(Err(io::Error::other(error))),
                None => {
                    this.finished = true;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection closed in the middle of a message",
                    )));
                }
            }
        }
        let n = this.chunk.len().min(buf.remaining());
        buf.put_slice(&this.chunk[..n]);
        this.chunk.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S> Drop for MessageReader<'_, S> {
    fn drop(&mut self) {
        if !self.finished {
            self.handle.with(WebSocket::discard_rest_of_message);
        }
    }
}

/// Waits for the first piece of the next data message and wraps it in a reader.
async fn next_reader<S: AsyncRead + AsyncWrite + Unpin>(
    mut handle: Handle<'_, S>,
) -> Option<Result<MessageReader<'_, S>, Error>> {
    let first = std::future::poll_fn(|cx| handle.with(|ws| ws.poll_chunk(cx))).await?;
    Some(first.map(|chunk| MessageReader {
        kind: match chunk.opcode {
            OpCode::Text => MessageKind::Text,
            _ => MessageKind::Binary,
        },
        finished: chunk.fin,
        chunk: chunk.bytes,
        handle,
    }))
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Waits for the next data message and returns a reader of its payload, which
    /// arrives fragment by fragment without the whole message being buffered.
    /// `None` when the stream has ended. Control frames are handled meanwhile.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the first piece is read and wrapped in one poll. Do not mix with
    /// `next()` in the middle of a message.
    pub async fn next_message_reader(&mut self) -> Option<Result<MessageReader<'_, S>, Error>> {
        next_reader(Handle::Whole(self)).await
    }

    /// A writer that sends one message of `kind` as fragments of the configured
    /// [`fragment_size`](crate::Config::fragment_size) (64 KiB if unset); see
    /// [`MessageWriter`].
    pub fn message_writer(&mut self, kind: MessageKind) -> MessageWriter<'_, S> {
        MessageWriter::new(Handle::Whole(self), kind)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> SplitStream<S> {
    /// [`WebSocket::next_message_reader`] on the receiving half.
    pub async fn next_message_reader(&mut self) -> Option<Result<MessageReader<'_, S>, Error>> {
        next_reader(Handle::Half(self.shared())).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> SplitSink<S> {
    /// [`WebSocket::message_writer`] on the sending half.
    pub fn message_writer(&mut self, kind: MessageKind) -> MessageWriter<'_, S> {
        MessageWriter::new(Handle::Half(self.shared()), kind)
    }
}

/// One outgoing message, written as a stream of bytes.
///
/// Bytes are gathered into fragments of the configured size; each full fragment is
/// sent as a frame (with backpressure: writing waits while the connection's write
/// buffer is full), `flush` sends what is gathered so far, and `shutdown` sends the
/// final frame. Text is checked to be UTF-8 as it is written (a write of invalid
/// UTF-8 fails with `InvalidData`). With permessage-deflate the message is
/// compressed on the fly.
///
/// Dropping the writer before `shutdown` **finishes the message** with what was
/// written: the final frame is queued and goes out with the next flush, send or read.
/// Text cut inside a UTF-8 character loses the cut bytes; if part of that character
/// was already sent, the message cannot end validly and the connection is closed
/// with 1011 instead.
///
/// ```no_run
/// use tokio::io::AsyncWriteExt;
///
/// # async fn run(mut ws: fastws::WebSocket<tokio::net::TcpStream>) -> Result<(), Box<dyn std::error::Error>> {
/// let mut file = tokio::fs::File::open("big.bin").await?;
/// let mut writer = ws.message_writer(fastws::streaming::MessageKind::Binary);
/// tokio::io::copy(&mut file, &mut writer).await?; // any size, bounded memory
/// writer.shutdown().await?; // the final frame
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MessageWriter<'a, S> {
    handle: Handle<'a, S>,
    kind: MessageKind,
    buffer: BytesMut,
    fragment_size: usize,
    utf8: Option<Utf8Validator>,
    /// A fragment of this message went out already.
    started: bool,
    finished: bool,
}

impl<'a, S> MessageWriter<'a, S> {
    fn new(mut handle: Handle<'a, S>, kind: MessageKind) -> MessageWriter<'a, S> {
        let fragment_size = handle
            .with(|ws| ws.config().get_fragment_size())
            .unwrap_or(DEFAULT_STREAM_FRAGMENT);
        MessageWriter {
            handle,
            kind,
            buffer: BytesMut::new(),
            fragment_size,
            utf8: (kind == MessageKind::Text).then(Utf8Validator::default),
            started: false,
            finished: false,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> MessageWriter<'_, S> {
    /// Sends a ping between this message's fragments (RFC 6455 §5.4 lets control
    /// frames interleave with a fragmented message), for example to keep a long
    /// upload's connection alive; the bytes gathered so far wait for the next
    /// fragment. Waits for room in the write buffer, then flushes.
    ///
    /// # Errors
    ///
    /// [`Error::ControlPayloadTooLong`] for a payload over 125 bytes, and the
    /// connection's own errors.
    pub async fn ping(&mut self, payload: impl Into<Bytes>) -> Result<(), Error> {
        let ping = Message::Ping(payload.into());
        std::future::poll_fn(|cx| self.handle.with(|ws| ws.poll_ready_to_send(cx))).await?;
        self.handle
            .with(|ws| futures_sink::Sink::start_send(Pin::new(ws), ping))?;
        std::future::poll_fn(|cx| self.handle.with(|ws| ws.poll_flush_sends(cx))).await
    }

    /// Sends the gathered bytes as the next fragment, once the connection has room.
    fn poll_send_fragment(&mut self, cx: &mut Context<'_>, fin: bool) -> Poll<io::Result<()>> {
        let (kind, first) = (self.kind.opcode(), !self.started);
        ready!(self.handle.with(|ws| ws.poll_ready_to_send(cx))).map_err(io::Error::other)?;
        let payload = self.buffer.split().freeze();
        self.handle
            .with(|ws| ws.start_send_fragment(kind, payload, first, fin))
            .map_err(io::Error::other)?;
        self.started = true;
        self.finished = fin;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MessageWriter<'_, S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the message is finished",
            )));
        }
        if this.buffer.len() >= this.fragment_size {
            ready!(this.poll_send_fragment(cx, false))?;
        }
        let n = buf.len().min(this.fragment_size - this.buffer.len());
        if let Some(utf8) = &mut this.utf8
            && utf8.feed(&buf[..n]).is_err()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                Error::InvalidUtf8,
            )));
        }
        this.buffer.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.buffer.is_empty() && !this.finished {
            ready!(this.poll_send_fragment(cx, false))?;
        }
        this.handle
            .with(|ws| ws.poll_flush_sends(cx))
            .map_err(io::Error::other)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.finished {
            if let Some(utf8) = &mut this.utf8
                && utf8.finish().is_err()
            {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    Error::InvalidUtf8,
                )));
            }
            ready!(this.poll_send_fragment(cx, true))?;
        }
        this.handle
            .with(|ws| ws.poll_flush_sends(cx))
            .map_err(io::Error::other)
    }
}

impl<S> Drop for MessageWriter<'_, S> {
    fn drop(&mut self) {
        if self.finished || (!self.started && self.buffer.is_empty()) {
            return;
        }
        // Text cut inside a code point: drop the cut bytes if they are still ours;
        // if some already went out, no valid end exists and the connection fails.
        let cut = self.utf8.as_ref().map_or(0, Utf8Validator::pending_len);
        if cut > self.buffer.len() {
            self.handle.with(WebSocket::fail_unfinishable_message);
            return;
        }
        self.buffer.truncate(self.buffer.len() - cut);
        let (kind, first, payload) = (self.kind.opcode(), !self.started, self.buffer.split().freeze());
        // Nothing to report an error to: a closed connection makes this a no-op.
        let _ = self
            .handle
            .with(|ws| ws.queue_final_fragment(kind, payload, first));
    }
}
