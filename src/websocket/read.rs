//! The read path: frames in, control frames answered, failures and the close
//! handshake carried out, the transport torn down at the end.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_core::stream::FusedStream;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{MAX_SUPERSEDED_PINGS, ReadState, SHRINK_ABOVE, Side, WebSocket};
use crate::assemble::Chunk;
use crate::close::{CloseAction, CloseState, parse_close_payload};
use crate::codec::Role;
use crate::error::Error;
use crate::frame::{Frame, OpCode};
use crate::message::Message;

/// What a reader of the read path makes of a message the read path yields as it
/// is: a ping or pong (if configured), or the peer's close at the end.
pub(crate) enum Step<T> {
    /// Yield this.
    Yield(T),
    /// Read on.
    Skip,
    /// End the reader's stream.
    End,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// The read path: sends what is owed, reads frames, answers control frames,
    /// runs keepalive, fails and tears down the connection.
    ///
    /// Each data frame goes to `on_data`, which makes an item of it or asks for
    /// more (`None`); an error it returns fails the connection. Each message the
    /// read path yields as it is goes to `on_message`. Generic, so that
    /// `poll_next` gets its messages without a layer of wrapping per frame.
    pub(crate) fn poll_read<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut on_data: impl FnMut(&mut Self, Frame) -> Result<Option<T>, Error>,
        on_message: impl Fn(Message) -> Step<T>,
    ) -> Poll<Option<Result<T, Error>>> {
        loop {
            match self.reading {
                ReadState::Reading => {}
                ReadState::TearingDown { .. } => match ready!(self.poll_teardown(cx)) {
                    Some(Ok(message)) => match on_message(message) {
                        Step::Yield(item) => return Poll::Ready(Some(Ok(item))),
                        // Torn down: the next round ends the stream.
                        Step::Skip => continue,
                        Step::End => return Poll::Ready(None),
                    },
                    Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                    None => return Poll::Ready(None),
                },
                ReadState::Done => return Poll::Ready(None),
            }
            if let Err(error) = self.send_owed_from_read_path(cx) {
                self.fail(error);
                continue;
            }
            match self.frames.poll_frame(cx, &self.wake_both) {
                Poll::Ready(Some(Ok(frame))) => {
                    self.frames_received += 1;
                    if frame.opcode().is_data() {
                        match on_data(self, frame) {
                            Ok(Some(item)) => return Poll::Ready(Some(Ok(item))),
                            Ok(None) => {}
                            Err(error) => self.fail(error),
                        }
                        continue;
                    }
                    match self.on_control_frame(frame) {
                        Ok(Some(message)) => match on_message(message) {
                            Step::Yield(item) => return Poll::Ready(Some(Ok(item))),
                            Step::Skip => {}
                            Step::End => return Poll::Ready(None),
                        },
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
                    if self.close == CloseState::CloseSent {
                        // Normally started when the close was sent; not from a `Drop`.
                        self.start_close_timer();
                    }
                    if self.close == CloseState::CloseSent && self.close_timer_expired(Side::Read, cx) {
                        self.close.on_failure(None);
                        self.begin_teardown(false, Err(Error::CloseTimeout));
                        continue;
                    }
                    #[cfg(feature = "deflate")]
                    self.poll_hibernation(Side::Read, cx);
                    match self.poll_keepalive(cx) {
                        Ok(true) => continue,
                        Ok(false) => return Poll::Pending,
                        Err(error) => self.fail(error),
                    }
                }
            }
        }
    }

    /// The read path's fast lane: the next message, when the read buffer already
    /// holds it as one plain frame (see [`WsCodec::decode_whole_message`]) and
    /// nothing else needs the read path: no frame owed to the peer or still being
    /// flushed, no message in progress, no close received and no teardown under
    /// way (after a close we sent, data still comes through, as by the long way).
    /// `None` leaves everything, with nothing consumed, to [`WebSocket::poll_read`],
    /// which would make the same message of the frame by the long way.
    ///
    /// Some of these conditions cannot hold while `reading` is `Reading` today (a
    /// close owed starts the teardown; a keepalive ping owed is queued before the
    /// read path returns; discarding implies a message in progress): they are
    /// checked all the same, so that the lane never depends on that.
    ///
    /// [`WsCodec::decode_whole_message`]: crate::codec::WsCodec::decode_whole_message
    #[inline]
    fn next_buffered_message(&mut self) -> Option<Result<Message, Error>> {
        let nothing_else_to_do = matches!(self.reading, ReadState::Reading)
            && !self.owes_control_frames()
            && !self.read_path_unflushed
            && !self.discarding
            && self.assembler.is_between_messages();
        if !nothing_else_to_do {
            return None;
        }
        let (opcode, payload) = self.frames.next_whole_message()?;
        self.frames_received += 1;
        Some(self.assembler.whole_message(opcode, payload))
    }

    /// Hands a data frame to the assembler; while a dropped streaming reader's
    /// message is still arriving, its frames are checked and discarded.
    pub(super) fn assemble(&mut self, frame: Frame) -> Result<Option<Message>, Error> {
        if self.discarding {
            self.discarding = !self.assembler.push_chunk(frame)?.fin;
            return Ok(None);
        }
        self.assembler.push(frame)
    }

    /// The next piece of a data message, for a streaming reader: control frames are
    /// handled and skipped; the end of the stream (after a close) is `None`.
    pub(crate) fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Chunk, Error>>> {
        let on_data = |ws: &mut Self, frame| {
            let chunk = ws.assembler.push_chunk(frame)?;
            if ws.discarding {
                // The rest of a message whose reader was dropped: skip it.
                ws.discarding = !chunk.fin;
                return Ok(None);
            }
            Ok(Some(chunk))
        };
        self.poll_read(cx, on_data, |message| match message {
            Message::Close(_) => Step::End,
            _ => Step::Skip,
        })
    }

    /// Handles one received control frame; returns the message to yield, if any.
    pub(super) fn on_control_frame(&mut self, frame: Frame) -> Result<Option<Message>, Error> {
        match frame.opcode() {
            OpCode::Ping => {
                if self.config.get_auto_pong() && self.close.can_send() {
                    self.owe_pong(frame.payload().clone())?;
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

    /// Owes the peer a pong for a ping with `payload`. A pong still owed for an
    /// earlier ping is dropped (RFC 6455 §5.5.3): it was not queued, so the write
    /// buffer was full.
    ///
    /// # Errors
    ///
    /// [`Error::PingFlood`] once more than [`MAX_SUPERSEDED_PINGS`] pongs were
    /// dropped without one being queued.
    fn owe_pong(&mut self, payload: Bytes) -> Result<(), Error> {
        if self.owed_pong.replace(payload).is_some() {
            self.superseded_pings += 1;
            if self.superseded_pings > MAX_SUPERSEDED_PINGS {
                return Err(Error::PingFlood {
                    unanswered: self.superseded_pings,
                });
            }
        }
        Ok(())
    }

    /// Validates the part of a text frame that has arrived so far, so invalid UTF-8
    /// fails the connection without waiting for the rest of the frame.
    pub(super) fn check_partial_frame(&mut self) -> Result<(), Error> {
        let frames = &mut self.frames;
        let Some(header) = frames.codec.pending_mut() else {
            return Ok(());
        };
        let arrived = header.unmask_arrived(&mut frames.read_buf);
        self.assembler
            .check_partial(header.opcode, header.rsv1(), arrived)
    }

    /// Fails the connection (RFC 6455 §7.1.7): owes the close code the error
    /// implies, then tears down and yields the error.
    ///
    /// The close frame says why ([`Error::close_frame`]). After a timeout it is
    /// sent on a best-effort basis: written if the transport takes it at once, the
    /// connection closed either way.
    pub(super) fn fail(&mut self, error: Error) {
        let frame = error
            .close_frame()
            .map(|close| Frame::close(close.code, &close.reason));
        if let CloseAction::Send(frame) = self.close.on_failure(frame) {
            self.owed_close = Some(frame);
        }
        let best_effort = matches!(error, Error::IdleTimeout | Error::KeepaliveTimeout);
        self.begin_teardown_with(false, best_effort, Err(error));
    }

    pub(super) fn begin_teardown(&mut self, await_eof: bool, last: Result<Message, Error>) {
        self.begin_teardown_with(await_eof, false, last);
    }

    fn begin_teardown_with(&mut self, await_eof: bool, best_effort: bool, last: Result<Message, Error>) {
        self.start_close_timer();
        self.reading = ReadState::TearingDown {
            await_eof,
            best_effort,
            last: Some(last),
        };
    }

    /// Flushes what is owed, waits for EOF if asked, shuts the transport down, then
    /// yields the last item. The close timer bounds every wait.
    pub(super) fn poll_teardown(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        let best_effort = matches!(
            self.reading,
            ReadState::TearingDown {
                best_effort: true,
                ..
            }
        );
        let expired = self.close_timer_expired(Side::Read, cx) || best_effort;
        if let Poll::Pending = self.poll_flush_owed(Side::Read, cx)
            && !expired
        {
            return Poll::Pending;
        }
        if let ReadState::TearingDown { await_eof, .. } = &mut self.reading
            && *await_eof
        {
            loop {
                match self.frames.poll_frame(cx, &self.wake_both) {
                    Poll::Ready(Some(Ok(_))) => continue,
                    Poll::Ready(None | Some(Err(_))) => break,
                    Poll::Pending if expired => break,
                    Poll::Pending => return Poll::Pending,
                }
            }
            *await_eof = false;
        }
        self.both_halves.register(Side::Read, cx.waker());
        if let Poll::Pending = self
            .frames
            .poll_shutdown(&mut Context::from_waker(&self.wake_both))
            && !expired
        {
            return Poll::Pending;
        }
        match std::mem::replace(&mut self.reading, ReadState::Done) {
            ReadState::TearingDown { last, .. } => Poll::Ready(last),
            _ => Poll::Ready(None),
        }
    }

    /// Frees buffers that a burst grew, once they are empty, so an idle connection
    /// holds little memory: the read buffer is kept only up to twice the space the
    /// codec currently offers each read (it adapts to the traffic).
    pub(super) fn shrink_idle_buffers(&mut self) {
        let frames = &mut self.frames;
        let keep_read = SHRINK_ABOVE.max(2 * frames.codec.read_space());
        if frames.read_buf.is_empty() && frames.read_buf.capacity() > keep_read {
            frames.read_buf = BytesMut::new();
        }
        if frames.write_buf.is_empty() && frames.write_buf.capacity() > SHRINK_ABOVE {
            frames.write_buf = BytesMut::new();
        }
    }

    /// Sends what the read path owes without making reads wait on writes: a peer
    /// that is slow to read must not stop us reading (that could deadlock two
    /// endpoints that both write a lot).
    ///
    /// A pong waiting for room in the write buffer keeps this flushing, so that it
    /// goes out as soon as the buffer drains.
    pub(super) fn send_owed_from_read_path(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        if self.queue_owed()? {
            self.read_path_unflushed = true;
        }
        if self.read_path_unflushed || self.owed_pong.is_some() {
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
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let ws = self.get_mut();
        match ws.next_buffered_message() {
            Some(Ok(message)) => return Poll::Ready(Some(Ok(message))),
            Some(Err(error)) => ws.fail(error),
            None => {}
        }
        ws.poll_read(cx, WebSocket::assemble, Step::Yield)
    }
}

/// Terminated once the stream has nothing more to yield: after the close handshake,
/// a failure or the end of the transport. So `futures::select!` can poll
/// `ws.next()` directly.
impl<S: AsyncRead + AsyncWrite + Unpin> FusedStream for WebSocket<S> {
    fn is_terminated(&self) -> bool {
        matches!(self.reading, ReadState::Done)
    }
}
