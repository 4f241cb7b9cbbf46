//! `WebSocket<S>`: a `Stream` and `Sink` of messages over a `Framed<S, WsCodec>`.
//!
//! # Who sends the control frames the read path owes
//!
//! Reading a ping owes the peer a pong; reading a close owes it the echo. The read
//! path (`poll_next`) queues them and writes them out itself, so a task that only
//! reads still answers pings; the write path (`Sink`) also sends whatever is owed
//! before its own frames. Both halves poll the socket for writing through one proxy
//! waker that wakes the reading task and the writing task alike, so after `split()`
//! neither half can steal the other's wake-up.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker, ready};

use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use futures_sink::Sink;
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;
use tokio_util::codec::{Framed, FramedParts};

use crate::assemble::{Chunk, MessageAssembler};
use crate::close::{CloseAction, CloseState, parse_close_payload};
use crate::codec::{Role, WsCodec, put_header};
use crate::config::Config;
use crate::error::{Error, ProtocolError};
use crate::frame::{Frame, MAX_CONTROL_PAYLOAD, OpCode};
use crate::message::Message;
use crate::split::{SplitSink, SplitStream};

/// A WebSocket connection: a [`Stream`] of received [`Message`]s and a [`Sink`] of
/// messages to send.
///
/// It reassembles fragments, validates UTF-8, answers pings, runs the close
/// handshake and enforces the limits of its [`Config`]. Get one from
/// [`accept`](crate::accept), or wrap a `Framed` you already have with
/// [`WebSocket::from_framed`].
///
/// ```no_run
/// use futures_util::{SinkExt, StreamExt};
///
/// # async fn run(tcp: tokio::net::TcpStream) -> Result<(), fastws::Error> {
/// let mut ws = fastws::accept(tcp).await?;
/// while let Some(message) = ws.next().await {
///     let message = message?;
///     if message.is_data() {
///         ws.send(message).await?;
///     }
/// }
/// # Ok(()) }
/// ```
///
/// # The end of the stream
///
/// When the close handshake completes, the stream yields the peer's
/// [`Message::Close`] and then ends; when the connection fails (a protocol
/// violation, a timeout, an I/O error) it yields the error, after sending the close
/// frame the error implies, and then ends. Either way the transport is shut down
/// first. A peer that drops the connection without a close frame gives an
/// [`Error::Io`] of kind `UnexpectedEof`.
///
/// # Cancel safety
///
/// `poll_next` and the `Sink` methods keep all progress in `self`: dropping a
/// `next()` or `send()` future loses no received data, and a message passed to
/// `start_send` is in the write buffer.
///
/// # Timers
///
/// The close timeout uses `tokio::time`: run the WebSocket inside a tokio runtime
/// with the time driver enabled (`#[tokio::main]` enables it).
#[derive(Debug)]
pub struct WebSocket<S> {
    framed: Framed<S, WsCodec>,
    config: Config,
    close: CloseState,
    reading: ReadState,
    assembler: MessageAssembler,
    /// The payload of the latest unanswered ping (RFC 6455 §5.5.3 allows answering
    /// only the most recent one).
    owed_pong: Option<Bytes>,
    /// A close frame owed to the peer (an echo, or the code of a failure).
    owed_close: Option<Frame>,
    /// The read path queued frames whose flush has not completed yet.
    read_path_unflushed: bool,
    /// Running while a close handshake or teardown may not take forever.
    close_deadline: Option<Pin<Box<Sleep>>>,
    both_halves: Arc<BothHalves>,
    /// Wakes both halves: polls that either half may be waiting on (writes, the
    /// close timer) register this waker, never one task's own.
    wake_both: Waker,
    /// A streaming reader was dropped mid-message: the rest of it is skipped.
    discarding: bool,
    /// Frames received so far: the keepalive and idle timers compare it.
    frames_received: u64,
    /// The keepalive and idle timers, created on first use if configured.
    keepalive: Keepalive,
    /// A keepalive ping is due.
    owed_ping: bool,
    /// The payload of the last frame in the write buffer, written after it
    /// without being copied (see `encode_frame`).
    unbuffered_payload: Option<Bytes>,
    /// Compresses outgoing data messages when permessage-deflate was negotiated.
    #[cfg(feature = "deflate")]
    deflater: Option<crate::deflate::compression::Deflater>,
}

/// What the opening handshake negotiated beyond the base protocol.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Negotiated {
    /// The permessage-deflate parameters, if the extension is in use.
    #[cfg(feature = "deflate")]
    pub(crate) deflate: Option<crate::deflate::negotiation::DeflateParams>,
}

/// Payloads at least this large are written from their own buffer (vectored)
/// instead of being copied into the write buffer.
const ZERO_COPY_MIN: usize = 64 * 1024;

/// Empty buffers larger than this are freed when the connection goes idle.
const SHRINK_ABOVE: usize = 64 * 1024;

/// Where the read side is.
#[derive(Debug)]
enum ReadState {
    Reading,
    /// Flushing what is owed, waiting for the server's EOF (a client after a clean
    /// close, RFC 6455 §7.1.1), shutting the transport down; then yielding `last`.
    TearingDown {
        await_eof: bool,
        last: Option<Result<Message, Error>>,
    },
    Done,
}

/// Which half of the connection is polling.
#[derive(Debug, Clone, Copy)]
enum Side {
    Read,
    Write,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wraps a transport whose opening handshake is already done.
    ///
    /// Read and write buffers start empty and grow with traffic.
    pub fn from_raw_socket(io: S, role: Role, config: Config) -> WebSocket<S> {
        WebSocket::from_parts(
            FramedParts::new(io, WsCodec::new(role)),
            config,
            Negotiated::default(),
        )
    }

    /// Wraps a transport whose handshake is done, with bytes already read from it
    /// (for example, read together with the HTTP head) as the start of the stream.
    pub fn from_partially_read(io: S, read: BytesMut, role: Role, config: Config) -> WebSocket<S> {
        WebSocket::after_handshake(io, read, role, config, Negotiated::default())
    }

    /// Wraps a transport after a handshake that negotiated `negotiated`.
    pub(crate) fn after_handshake(
        io: S,
        read: BytesMut,
        role: Role,
        config: Config,
        negotiated: Negotiated,
    ) -> WebSocket<S> {
        let mut parts = FramedParts::new(io, WsCodec::new(role));
        parts.read_buf = read;
        WebSocket::from_parts(parts, config, negotiated)
    }

    /// Wraps an existing `Framed`, keeping its codec's role and any bytes it has
    /// buffered. The config's frame size limit replaces the codec's.
    pub fn from_framed(framed: Framed<S, WsCodec>, config: Config) -> WebSocket<S> {
        WebSocket::from_parts(framed.into_parts(), config, Negotiated::default())
    }

    fn from_parts(
        mut parts: FramedParts<S, WsCodec>,
        config: Config,
        negotiated: Negotiated,
    ) -> WebSocket<S> {
        parts.codec = parts.codec.max_frame_size(config.get_max_frame_size());
        #[cfg_attr(not(feature = "deflate"), allow(unused_mut))]
        let mut assembler = MessageAssembler::new(config.get_max_message_size());
        #[cfg(feature = "deflate")]
        let deflater = negotiated.deflate.map(|params| {
            // RFC 7692 §6: RSV1 marks a compressed message.
            parts.codec = parts.codec.clone().allowed_rsv(0b100);
            let (deflater, inflater) =
                crate::deflate::compression::for_role(&params, parts.codec.role(), config.get_deflate());
            assembler.set_inflater(inflater);
            deflater
        });
        #[cfg(not(feature = "deflate"))]
        let Negotiated {} = negotiated;
        let mut framed = Framed::from_parts(parts);
        framed.set_backpressure_boundary(config.get_write_buffer_size());
        let both_halves = Arc::new(BothHalves::default());
        WebSocket {
            framed,
            assembler,
            #[cfg(feature = "deflate")]
            deflater,
            config,
            close: CloseState::Open,
            reading: ReadState::Reading,
            owed_pong: None,
            owed_close: None,
            discarding: false,
            unbuffered_payload: None,
            frames_received: 0,
            keepalive: Keepalive::default(),
            owed_ping: false,
            read_path_unflushed: false,
            close_deadline: None,
            wake_both: Waker::from(Arc::clone(&both_halves)),
            both_halves,
        }
    }
}

impl<S> WebSocket<S> {
    /// The frame layer underneath. Frames read or written through it bypass the
    /// message layer's checks.
    pub fn get_ref(&self) -> &Framed<S, WsCodec> {
        &self.framed
    }

    /// Mutable access to the frame layer underneath.
    pub fn get_mut(&mut self) -> &mut Framed<S, WsCodec> {
        &mut self.framed
    }

    /// Gives back the `Framed`, with any buffered bytes. A partly received message
    /// and owed control frames are dropped.
    pub fn into_framed(self) -> Framed<S, WsCodec> {
        self.framed
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.framed.codec().role()
    }

    /// A streaming reader was dropped before its message ended: skip the rest.
    pub(crate) fn discard_rest_of_message(&mut self) {
        self.discarding = true;
    }

    /// The frame for one fragment of a streamed message of kind `opcode`:
    /// compressed on the fly when permessage-deflate is in use (RSV1 on the first).
    fn fragment_frame(
        &mut self,
        opcode: OpCode,
        payload: Bytes,
        first: bool,
        fin: bool,
    ) -> Result<Frame, Error> {
        #[cfg(feature = "deflate")]
        let (payload, rsv) = match &mut self.deflater {
            Some(deflater) => (
                deflater.compress_part(&payload, fin)?,
                if first { 0b100 } else { 0 },
            ),
            None => (payload, 0),
        };
        #[cfg(not(feature = "deflate"))]
        let rsv = 0;
        let opcode = if first { opcode } else { OpCode::Continuation };
        Ok(Frame::new(opcode, payload).with_fin(fin).with_rsv(rsv))
    }

    /// Queues the final fragment of a streamed message without waiting for room
    /// (a writer being dropped); the read path flushes it if nothing else does.
    pub(crate) fn queue_final_fragment(
        &mut self,
        opcode: OpCode,
        payload: Bytes,
        first: bool,
    ) -> Result<(), Error> {
        if !self.close.can_send() {
            return Err(Error::ConnectionClosed);
        }
        let frame = self.fragment_frame(opcode, payload, first, true)?;
        if let Some(large) = self.unbuffered_payload.take() {
            self.framed.write_buffer_mut().extend_from_slice(&large);
        }
        let mut encoder = WsCodec::new(self.role());
        tokio_util::codec::Encoder::encode(&mut encoder, frame, self.framed.write_buffer_mut())?;
        self.read_path_unflushed = true;
        Ok(())
    }

    /// Splits into a sending half and a receiving half that can be used from
    /// different tasks at the same time; [`SplitStream::reunite`] undoes it.
    ///
    /// The receiving half answers pings on its own, so a task that only reads keeps
    /// the connection healthy. Prefer this over `futures`' `StreamExt::split`,
    /// whose sink holds one message back in a slot of its own until its next poll.
    pub fn split(self) -> (SplitSink<S>, SplitStream<S>) {
        crate::split::split(self)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Moves owed control frames into the write buffer: the pong first, since its
    /// ping arrived before any close.
    fn queue_owed(&mut self) -> Result<bool, Error> {
        let mut queued = false;
        if std::mem::take(&mut self.owed_ping) && self.close.can_send() {
            self.encode_frame(Frame::ping(Bytes::new()))?;
            queued = true;
        }
        if let Some(payload) = self.owed_pong.take() {
            self.encode_frame(Frame::pong(payload))?;
            queued = true;
        }
        if let Some(frame) = self.owed_close.take() {
            self.encode_frame(frame)?;
            queued = true;
        }
        Ok(queued)
    }

    /// Queues owed frames and flushes the write buffer.
    fn poll_flush_owed(&mut self, side: Side, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.queue_owed()?;
        self.both_halves.register(side, cx.waker());
        let mut cx = Context::from_waker(&self.wake_both);
        ready!(poll_write_unbuffered(
            &mut self.framed,
            &mut self.unbuffered_payload,
            &mut cx
        ))?;
        Pin::new(&mut self.framed).poll_flush(&mut cx)
    }

    /// Sends what the read path owes without making reads wait on writes: a peer
    /// that is slow to read must not stop us reading (that could deadlock two
    /// endpoints that both write a lot).
    fn send_owed_from_read_path(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        if self.queue_owed()? {
            self.read_path_unflushed = true;
        }
        if self.read_path_unflushed {
            match self.poll_flush_owed(Side::Read, cx) {
                Poll::Ready(result) => {
                    self.read_path_unflushed = false;
                    result?;
                }
                Poll::Pending => {}
            }
        }
        Ok(())
    }

    /// Runs the keepalive and idle timers while the read path waits. Returns
    /// `Ok(true)` when a keepalive ping was queued (to be sent at once).
    ///
    /// # Errors
    ///
    /// [`Error::IdleTimeout`] or [`Error::KeepaliveTimeout`] when the peer stayed
    /// silent too long.
    fn poll_keepalive(&mut self, cx: &mut Context<'_>) -> Result<bool, Error> {
        let seen = self.frames_received;
        if let Some(timeout) = self.config.get_idle_timeout() {
            let timer = self
                .keepalive
                .idle
                .get_or_insert_with(|| Timer::new(timeout, seen));
            if self
                .both_halves
                .poll_timer(Side::Read, cx, &self.wake_both, timer)
            {
                if timer.seen == seen {
                    return Err(Error::IdleTimeout);
                }
                timer.rearm(timeout, seen);
                self.both_halves
                    .poll_timer(Side::Read, cx, &self.wake_both, timer);
            }
        }
        let Some(interval) = self.config.get_ping_interval() else {
            return Ok(false);
        };
        let timer = self
            .keepalive
            .ping
            .get_or_insert_with(|| Timer::new(interval, seen));
        if !self
            .both_halves
            .poll_timer(Side::Read, cx, &self.wake_both, timer)
        {
            return Ok(false);
        }
        let ping_due = if timer.seen != seen {
            self.keepalive.ping_outstanding = false;
            timer.rearm(interval, seen);
            false
        } else if self.keepalive.ping_outstanding {
            return Err(Error::KeepaliveTimeout);
        } else {
            self.keepalive.ping_outstanding = true;
            timer.rearm(self.config.get_ping_timeout(), seen);
            true
        };
        self.both_halves
            .poll_timer(Side::Read, cx, &self.wake_both, timer);
        self.owed_ping |= ping_due;
        Ok(ping_due)
    }

    /// Frees buffers that a burst grew, once they are empty, so an idle connection
    /// holds little memory.
    fn shrink_idle_buffers(&mut self) {
        let read = self.framed.read_buffer_mut();
        if read.is_empty() && read.capacity() > SHRINK_ABOVE {
            *read = BytesMut::new();
        }
        let write = self.framed.write_buffer_mut();
        if write.is_empty() && write.capacity() > SHRINK_ABOVE {
            *write = BytesMut::new();
        }
    }

    fn start_close_timer(&mut self) {
        if self.close_deadline.is_none() {
            self.close_deadline = Some(Box::pin(tokio::time::sleep(self.config.get_close_timeout())));
        }
    }

    fn close_timer_expired(&mut self, side: Side, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = &mut self.close_deadline else {
            return false;
        };
        self.both_halves.register(side, cx.waker());
        deadline
            .as_mut()
            .poll(&mut Context::from_waker(&self.wake_both))
            .is_ready()
    }

    /// Fails the connection (RFC 6455 §7.1.7): owes the close code the error
    /// implies, then tears down and yields the error.
    fn fail(&mut self, error: Error) {
        let frame = error.close_code().map(|code| Frame::close(code, ""));
        if let CloseAction::Send(frame) = self.close.on_failure(frame) {
            self.owed_close = Some(frame);
        }
        self.begin_teardown(false, Err(error));
    }

    fn begin_teardown(&mut self, await_eof: bool, last: Result<Message, Error>) {
        self.start_close_timer();
        self.reading = ReadState::TearingDown {
            await_eof,
            last: Some(last),
        };
    }

    /// Handles one received control frame; returns the message to yield, if any.
    fn on_control_frame(&mut self, frame: Frame) -> Result<Option<Message>, Error> {
        match frame.opcode() {
            OpCode::Ping => {
                if self.config.get_auto_pong() && self.close.can_send() {
                    self.owed_pong = Some(frame.payload().clone());
                }
                Ok(self
                    .config
                    .get_control_messages()
                    .then(|| Message::Ping(frame.into_payload())))
            }
            OpCode::Pong => Ok(self
                .config
                .get_control_messages()
                .then(|| Message::Pong(frame.into_payload()))),
            OpCode::Close => {
                let close = parse_close_payload(frame.into_payload())?;
                match self.close.on_close_received(close.as_ref()) {
                    CloseAction::Send(echo) => self.owed_close = Some(echo),
                    CloseAction::Finish => {}
                    CloseAction::Ignore => return Ok(None),
                }
                // RFC 6455 §7.1.1: the server closes TCP first; a client waits for it.
                let await_eof = self.role() == Role::Client;
                self.begin_teardown(await_eof, Ok(Message::Close(close)));
                Ok(None)
            }
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                unreachable!("data frames go to the assembler")
            }
        }
    }

    /// Validates the part of a text frame that has arrived so far, so invalid UTF-8
    /// fails the connection without waiting for the rest of the frame.
    fn check_partial_frame(&mut self) -> Result<(), Error> {
        let Some(mut header) = self.framed.codec_mut().take_pending() else {
            return Ok(());
        };
        let arrived = header.unmask_arrived(self.framed.read_buffer_mut());
        let result = self
            .assembler
            .check_partial(header.opcode, header.rsv1(), arrived);
        self.framed.codec_mut().restore_pending(header);
        result
    }

    /// Flushes what is owed, waits for EOF if asked, shuts the transport down, then
    /// yields the last item. The close timer bounds every wait.
    fn poll_teardown(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        let expired = self.close_timer_expired(Side::Read, cx);
        if let Poll::Pending = self.poll_flush_owed(Side::Read, cx)
            && !expired
        {
            return Poll::Pending;
        }
        if let ReadState::TearingDown { await_eof, .. } = &mut self.reading
            && *await_eof
        {
            loop {
                match Pin::new(&mut self.framed).poll_next(cx) {
                    Poll::Ready(Some(Ok(_))) => continue,
                    Poll::Ready(None | Some(Err(_))) => break,
                    Poll::Pending if expired => break,
                    Poll::Pending => return Poll::Pending,
                }
            }
            *await_eof = false;
        }
        self.both_halves.register(Side::Read, cx.waker());
        if let Poll::Pending =
            Pin::new(&mut self.framed).poll_close(&mut Context::from_waker(&self.wake_both))
            && !expired
        {
            return Poll::Pending;
        }
        match std::mem::replace(&mut self.reading, ReadState::Done) {
            ReadState::TearingDown { last, .. } => Poll::Ready(last),
            _ => Poll::Ready(None),
        }
    }

    /// Waits for room in the write buffer for a streamed fragment.
    pub(crate) fn poll_ready_to_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if !self.close.can_send() {
            return Poll::Ready(Err(Error::ConnectionClosed));
        }
        Pin::new(self).poll_ready(cx)
    }

    /// Queues one fragment of a streamed message, after what the read path owes.
    pub(crate) fn start_send_fragment(
        &mut self,
        opcode: OpCode,
        payload: Bytes,
        first: bool,
        fin: bool,
    ) -> Result<(), Error> {
        if !self.close.can_send() {
            return Err(Error::ConnectionClosed);
        }
        self.queue_owed()?;
        let frame = self.fragment_frame(opcode, payload, first, fin)?;
        self.encode_frame(frame)
    }

    /// Flushes everything queued, as the sending side does.
    pub(crate) fn poll_flush_sends(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_flush_owed(Side::Write, cx)
    }

    /// Encodes a message, split into frames of the configured fragment size.
    fn encode_message(&mut self, message: Message) -> Result<(), Error> {
        #[cfg_attr(not(feature = "deflate"), allow(unused_mut))]
        let mut frame = message.into_frame();
        #[cfg(feature = "deflate")]
        if let Some(deflater) = &mut self.deflater
            && frame.opcode().is_data()
            && deflater.wants(frame.payload().len())
        {
            let compressed = deflater.compress(frame.payload())?;
            frame = Frame::new(frame.opcode(), compressed).with_rsv(0b100);
        }
        let len = frame.payload().len();
        match self.config.get_fragment_size() {
            Some(size) if frame.opcode().is_data() && len > size => {
                let mut opcode = frame.opcode();
                // RSV1 (compression) marks only the first frame (RFC 7692 §6.1).
                let mut rsv = frame.rsv();
                let payload = frame.into_payload();
                let mut start = 0;
                while start < len {
                    let end = (start + size).min(len);
                    let fragment = Frame::new(opcode, payload.slice(start..end))
                        .with_fin(end == len)
                        .with_rsv(rsv);
                    self.encode_frame(fragment)?;
                    opcode = OpCode::Continuation;
                    rsv = 0;
                    start = end;
                }
                Ok(())
            }
            _ => self.encode_frame(frame),
        }
    }

    /// Puts a frame in the write buffer. A large payload is not copied: only its
    /// header is, and the payload waits in `unbuffered_payload` to be written with a
    /// vectored write right after the buffer (a client masks it in place when it
    /// holds the only reference).
    fn encode_frame(&mut self, frame: Frame) -> Result<(), Error> {
        if let Some(payload) = self.unbuffered_payload.take() {
            // Frames must follow the large payload: this rare interleaving (a
            // control frame queued while it waits) pays one copy.
            self.framed.write_buffer_mut().extend_from_slice(&payload);
        }
        if frame.payload().len() < ZERO_COPY_MIN || (frame.opcode().is_control()) {
            return Pin::new(&mut self.framed).start_send(frame);
        }
        let first_byte = frame.first_byte();
        let (payload, mask) = match self.role() {
            Role::Server => (frame.into_payload(), None),
            Role::Client => match frame.into_payload().try_into_mut() {
                Ok(mut payload) => {
                    let key = rand::random::<[u8; 4]>();
                    crate::mask::apply_mask(&mut payload, key, 0);
                    (payload.freeze(), Some(key))
                }
                Err(shared) => {
                    let frame = Frame::new(
                        OpCode::from_bits(first_byte & 0x0F).expect("valid opcode"),
                        shared,
                    )
                    .with_fin(first_byte & 0x80 != 0)
                    .with_rsv(first_byte >> 4);
                    return Pin::new(&mut self.framed).start_send(frame);
                }
            },
        };
        put_header(self.framed.write_buffer_mut(), first_byte, payload.len(), mask);
        self.unbuffered_payload = Some(payload);
        Ok(())
    }
}

/// Writes the write buffer and the large payload that follows it with vectored
/// writes until the payload is out; what remains is ordinary buffered bytes.
fn poll_write_unbuffered<S: AsyncWrite + Unpin>(
    framed: &mut Framed<S, WsCodec>,
    unbuffered: &mut Option<Bytes>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), Error>> {
    while let Some(payload) = unbuffered {
        // Take the buffer out to borrow it next to the transport; always put it back.
        let mut buffer = std::mem::take(framed.write_buffer_mut());
        let slices = [IoSlice::new(&buffer), IoSlice::new(payload)];
        let result = match Pin::new(framed.get_mut()).poll_write_vectored(cx, &slices) {
            Poll::Ready(Ok(0)) => Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(written)) => {
                let from_buffer = written.min(buffer.len());
                buffer.advance(from_buffer);
                payload.advance(written - from_buffer);
                Poll::Ready(Ok(()))
            }
            other => other.map_ok(|_| ()),
        };
        *framed.write_buffer_mut() = buffer;
        ready!(result)?;
        if payload.is_empty() {
            *unbuffered = None;
        }
    }
    Poll::Ready(Ok(()))
}

/// What the read path yields before reassembly.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A text, binary or continuation frame, for the assembler or a streaming reader.
    Data(Frame),
    /// A message to yield as it is: a ping or pong (if configured), or the close.
    Message(Message),
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// The read path below reassembly: sends what is owed, reads frames, answers
    /// control frames, runs keepalive, fails and tears down the connection.
    pub(crate) fn poll_incoming(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Incoming, Error>>> {
        loop {
            match self.reading {
                ReadState::Reading => {}
                ReadState::TearingDown { .. } => {
                    return self
                        .poll_teardown(cx)
                        .map(|last| last.map(|item| item.map(Incoming::Message)));
                }
                ReadState::Done => return Poll::Ready(None),
            }
            if let Err(error) = self.send_owed_from_read_path(cx) {
                self.fail(error);
                continue;
            }
            match Pin::new(&mut self.framed).poll_next(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    self.frames_received += 1;
                    if frame.opcode().is_data() {
                        return Poll::Ready(Some(Ok(Incoming::Data(frame))));
                    }
                    match self.on_control_frame(frame) {
                        Ok(Some(message)) => return Poll::Ready(Some(Ok(Incoming::Message(message)))),
                        Ok(None) => {}
                        Err(error) => self.fail(error),
                    }
                }
                Poll::Ready(Some(Err(error))) => self.fail(error),
                Poll::Ready(None) => {
                    self.close.on_failure(None);
                    self.reading = ReadState::Done;
                    let eof = std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "connection closed without a close frame",
                    );
                    return Poll::Ready(Some(Err(Error::Io(eof))));
                }
                Poll::Pending => {
                    if let Err(error) = self.check_partial_frame() {
                        self.fail(error);
                        continue;
                    }
                    self.shrink_idle_buffers();
                    if self.close == CloseState::CloseSent && self.close_timer_expired(Side::Read, cx) {
                        self.close.on_failure(None);
                        self.begin_teardown(false, Err(Error::CloseTimeout));
                        continue;
                    }
                    match self.poll_keepalive(cx) {
                        Ok(true) => continue,
                        Ok(false) => return Poll::Pending,
                        Err(error) => self.fail(error),
                    }
                }
            }
        }
    }

    /// Hands a data frame to the assembler; while a dropped streaming reader's
    /// message is still arriving, its frames are checked and discarded.
    fn assemble(&mut self, frame: Frame) -> Result<Option<Message>, Error> {
        if self.discarding {
            self.discarding = !self.assembler.push_chunk(frame)?.fin;
            return Ok(None);
        }
        self.assembler.push(frame)
    }

    /// The next piece of a data message, for a streaming reader: control frames are
    /// handled and skipped; the end of the stream (after a close) is `None`.
    pub(crate) fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Chunk, Error>>> {
        loop {
            match ready!(self.poll_incoming(cx)) {
                Some(Ok(Incoming::Data(frame))) => match self.assembler.push_chunk(frame) {
                    // The rest of a message whose reader was dropped: skip it.
                    Ok(chunk) if self.discarding => self.discarding = !chunk.fin,
                    Ok(chunk) => return Poll::Ready(Some(Ok(chunk))),
                    Err(error) => self.fail(error),
                },
                Some(Ok(Incoming::Message(Message::Close(_)))) | None => return Poll::Ready(None),
                Some(Ok(Incoming::Message(_))) => {}
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match ready!(this.poll_incoming(cx)) {
                Some(Ok(Incoming::Data(frame))) => match this.assemble(frame) {
                    Ok(Some(message)) => return Poll::Ready(Some(Ok(message))),
                    Ok(None) => {}
                    Err(error) => this.fail(error),
                },
                Some(Ok(Incoming::Message(message))) => return Poll::Ready(Some(Ok(message))),
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => return Poll::Ready(None),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if !this.close.can_send() {
            // start_send decides: a close is accepted (and ignored), data is refused.
            return Poll::Ready(Ok(()));
        }
        this.queue_owed()?;
        this.both_halves.register(Side::Write, cx.waker());
        let mut cx = Context::from_waker(&this.wake_both);
        ready!(poll_write_unbuffered(
            &mut this.framed,
            &mut this.unbuffered_payload,
            &mut cx
        ))?;
        Pin::new(&mut this.framed).poll_ready(&mut cx)
    }

    /// Queues a message. Sending [`Message::Close`] starts the close handshake
    /// (and the close timer); a close after one was already sent is ignored.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionClosed`] for anything but a close after the close handshake
    /// started; [`Error::Protocol`] for a control message over 125 bytes or a close
    /// code that may not be sent.
    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        let this = self.get_mut();
        if let Message::Close(close) = &message {
            if let Some(close) = close {
                if !close.code.is_allowed_on_wire() {
                    return Err(ProtocolError::InvalidCloseCode(close.code.as_u16()).into());
                }
                if close.reason.len() + 2 > MAX_CONTROL_PAYLOAD {
                    return Err(ProtocolError::ControlFrameTooLong(close.reason.len() as u64 + 2).into());
                }
            }
            this.queue_owed()?;
            if let CloseAction::Send(frame) = this.close.on_close_requested(message.into_frame()) {
                this.encode_frame(frame)?;
                this.start_close_timer();
            }
            return Ok(());
        }
        if !this.close.can_send() {
            return Err(Error::ConnectionClosed);
        }
        this.queue_owed()?;
        this.encode_message(message)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_flush_owed(Side::Write, cx)
    }

    /// Starts the close handshake with 1000 (normal) if it has not started, and
    /// flushes. The transport is shut down by the read side once the peer answers
    /// (or the close timeout passes), so keep reading until the stream ends.
    ///
    /// # Errors
    ///
    /// [`Error::CloseTimeout`] if the flush does not finish within the close
    /// timeout (a peer that stopped reading).
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.close == CloseState::Open {
            let close = Message::close(crate::frame::CloseCode::Normal, "");
            self.as_mut().start_send(close)?;
        }
        let this = self.get_mut();
        match this.poll_flush_owed(Side::Write, cx) {
            Poll::Pending if this.close_timer_expired(Side::Write, cx) => {
                Poll::Ready(Err(Error::CloseTimeout))
            }
            other => other,
        }
    }
}

/// The keepalive and idle timers.
#[derive(Debug, Default)]
struct Keepalive {
    ping: Option<Timer>,
    idle: Option<Timer>,
    /// A keepalive ping went out and no frame has arrived since.
    ping_outstanding: bool,
}

/// A timer and the frame count when it was armed: if the count moved when it
/// fires, the peer was heard from meanwhile.
#[derive(Debug)]
struct Timer {
    sleep: Pin<Box<Sleep>>,
    seen: u64,
}

impl Timer {
    fn new(after: std::time::Duration, seen: u64) -> Timer {
        Timer {
            sleep: Box::pin(tokio::time::sleep(after)),
            seen,
        }
    }

    fn rearm(&mut self, after: std::time::Duration, seen: u64) {
        self.sleep.as_mut().reset(tokio::time::Instant::now() + after);
        self.seen = seen;
    }
}

/// The wakers of the tasks that last polled through `wake_both`, one per half.
#[derive(Debug, Default)]
struct BothHalves {
    read: AtomicWaker,
    write: AtomicWaker,
}

impl BothHalves {
    /// Polls `timer` so that its expiry wakes both halves; true if it expired.
    fn poll_timer(&self, side: Side, cx: &Context<'_>, wake_both: &Waker, timer: &mut Timer) -> bool {
        self.register(side, cx.waker());
        timer
            .sleep
            .as_mut()
            .poll(&mut Context::from_waker(wake_both))
            .is_ready()
    }

    /// Lock-free; clones the waker only when a different task polls.
    fn register(&self, side: Side, waker: &Waker) {
        match side {
            Side::Read => self.read.register(waker),
            Side::Write => self.write.register(waker),
        }
    }
}

impl Wake for BothHalves {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.read.wake();
        self.write.wake();
    }
}
