//! The write path: messages and owed control frames into the write buffer,
//! backpressure, fragments of streamed messages.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Side, WebSocket};
use crate::close::{CloseAction, CloseState};
use crate::error::Error;
use crate::frame::{CloseCode, Frame, MAX_CONTROL_PAYLOAD, OpCode};
use crate::message::Message;

impl<S> WebSocket<S> {
    /// Whether `poll_ready` would return at once: sending is over (`start_send`
    /// decides what a close-time message gets), or the write buffer has room.
    pub(crate) fn accepts_without_waiting(&self) -> bool {
        !self.close.can_send() || self.frames.has_room(self.config.get_write_buffer_size())
    }

    /// A dropped text writer left a message that no valid ending can finish (part
    /// of a cut character already went out): close with 1011 (RFC 6455 §7.4.1).
    pub(crate) fn fail_unfinishable_message(&mut self) {
        let close = Frame::close(CloseCode::Error, "message writer dropped inside a character");
        if let CloseAction::Send(frame) = self.close.on_close_requested(close) {
            // The close timer starts when the read path next waits.
            let _ = self.buffer_without_waiting(frame);
        }
    }

    /// The frame for one fragment of a streamed message of kind `opcode`:
    /// compressed on the fly when permessage-deflate is in use (RSV1 on the first).
    pub(super) fn fragment_frame(
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
        self.buffer_without_waiting(frame)
    }

    /// Buffers a frame from a place that cannot wait (a `Drop`); the read path
    /// flushes it if nothing else does.
    fn buffer_without_waiting(&mut self, frame: Frame) -> Result<(), Error> {
        self.frames.buffer(frame)?;
        self.read_path_unflushed = true;
        Ok(())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Moves owed control frames into the write buffer: the pong first, since its
    /// ping arrived before any close.
    #[inline]
    pub(super) fn queue_owed(&mut self) -> Result<bool, Error> {
        if !self.owed_ping && self.owed_pong.is_none() && self.owed_close.is_none() {
            return Ok(false);
        }
        self.queue_owed_frames()
    }

    /// The pong waits while the write buffer is full (see the module docs of
    /// `websocket`), except ahead of the close frame it precedes; after a close
    /// frame has gone out it is dropped (RFC 6455 §5.5.1).
    #[cold]
    fn queue_owed_frames(&mut self) -> Result<bool, Error> {
        let mut queued = false;
        if std::mem::take(&mut self.owed_ping) && self.close.can_send() {
            self.encode_frame(Frame::ping(Bytes::new()))?;
            queued = true;
        }
        let before_close = self.owed_close.is_some();
        if !self.close.can_send() && !before_close {
            self.owed_pong = None;
        }
        if self.owed_pong.is_some() && (before_close || self.has_room_for_control()) {
            let payload = self.owed_pong.take().expect("checked");
            self.encode_frame(Frame::pong(payload))?;
            self.superseded_pings = 0;
            queued = true;
        }
        if let Some(frame) = self.owed_close.take() {
            self.encode_frame(frame)?;
            queued = true;
        }
        Ok(queued)
    }

    /// Whether an owed pong may go into the write buffer: it is under its limit
    /// (or empty, whatever the limit).
    fn has_room_for_control(&self) -> bool {
        self.frames.is_empty() || self.frames.has_room(self.config.get_write_buffer_size())
    }

    /// Queues owed frames and flushes the write buffer, until a pong that waited
    /// for room is out too.
    pub(super) fn poll_flush_owed(&mut self, side: Side, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.both_halves.register(side, cx.waker());
        loop {
            self.queue_owed()?;
            let mut cx = Context::from_waker(&self.wake_both);
            ready!(self.frames.poll_flush(&mut cx))?;
            // The buffer is empty now, so a waiting pong was queued (or dropped,
            // after a close) by the call above on the next round.
            if self.owed_pong.is_none() {
                return Poll::Ready(Ok(()));
            }
        }
    }

    /// Encodes a message, split into frames of the configured fragment size.
    pub(super) fn encode_message(&mut self, message: Message) -> Result<(), Error> {
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

    /// Puts a frame in the write buffer (a large payload goes out after it, uncopied).
    pub(super) fn encode_frame(&mut self, frame: Frame) -> Result<(), Error> {
        self.frames.buffer(frame)
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
        if this.frames.has_room(this.config.get_write_buffer_size()) {
            // Nothing to wait for, so no waker to register.
            return Poll::Ready(Ok(()));
        }
        this.both_halves.register(Side::Write, cx.waker());
        this.frames
            .poll_flush(&mut Context::from_waker(&this.wake_both))
            .map_err(Error::from)
    }

    /// Queues a message. Sending [`Message::Close`] starts the close handshake
    /// (and the close timer); a close after one was already sent is ignored.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionClosed`] for anything but a close after the close handshake
    /// started; [`Error::ControlPayloadTooLong`] for a control message over 125
    /// bytes, [`Error::UnsendableCloseCode`] for a close code that may not be sent.
    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        let this = self.get_mut();
        if let Message::Close(close) = &message {
            if let Some(close) = close {
                if !close.code.is_allowed_on_wire() {
                    return Err(Error::UnsendableCloseCode(close.code));
                }
                if close.reason.len() + 2 > MAX_CONTROL_PAYLOAD {
                    return Err(Error::ControlPayloadTooLong {
                        len: close.reason.len() + 2,
                    });
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
        let this = self.get_mut();
        // A connection that only sends is judged quiet here (the read path judges
        // it while it waits).
        #[cfg(feature = "deflate")]
        this.poll_hibernation(Side::Write, cx);
        this.poll_flush_owed(Side::Write, cx)
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
            let close = Message::close(CloseCode::Normal, "");
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
