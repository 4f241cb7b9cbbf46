//! The write path: messages and owed control frames into the write buffer,
//! backpressure, fragments of streamed messages.

use std::borrow::Cow;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Side, WebSocket};
use crate::close::{CloseAction, CloseState};
use crate::codec::Role;
use crate::error::Error;
use crate::frame::{CloseCode, Frame, MAX_CONTROL_PAYLOAD, OpCode};
use crate::message::Message;
use crate::prepared::{Encoded, PreparedMessage};

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
        if !self.owes_control_frames() {
            return Ok(false);
        }
        self.queue_owed_frames()
    }

    /// Whether a pong, a keepalive ping or a close is owed to the peer.
    #[inline]
    pub(super) fn owes_control_frames(&self) -> bool {
        self.owed_ping || self.owed_pong.is_some() || self.owed_close.is_some()
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

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Queues a [`PreparedMessage`] as [`Sink::start_send`] queues a message,
    /// after `poll_ready`: its shared frame where this connection can send it
    /// as it is (see [`PreparedMessage`] for where it cannot), in order with the
    /// connection's other messages.
    ///
    /// # Errors
    ///
    /// As [`Sink::start_send`]; and a compression failure.
    pub fn start_send_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), Error> {
        let message = prepared.message();
        if !message.is_data() {
            return Pin::new(self).start_send(message.clone());
        }
        if !self.close.can_send() {
            return Err(Error::ConnectionClosed);
        }
        self.queue_owed()?;
        match self.shared_frame(prepared)? {
            Some(frame) => {
                self.frames.buffer_encoded(&frame.header, &frame.payload);
                Ok(())
            }
            None => self.encode_message(message.clone()),
        }
    }

    /// The frame of `prepared` this connection can send as it is: a server's,
    /// compressed for its settings if it compresses the message without context
    /// takeover, and not to be fragmented. `None` where it must encode the
    /// message itself.
    ///
    /// Borrowed when uncompressed: a delivery then takes no reference count.
    fn shared_frame<'a>(&self, prepared: &'a PreparedMessage) -> Result<Option<Cow<'a, Encoded>>, Error> {
        if self.role() != Role::Server {
            return Ok(None);
        }
        #[cfg_attr(not(feature = "deflate"), allow(unused_mut))]
        let mut frame = Cow::Borrowed(prepared.plain());
        #[cfg(feature = "deflate")]
        if let Some(deflater) = &self.deflater
            && deflater.wants(frame.payload.len())
        {
            match deflater.fresh_compression() {
                Some(compression) => frame = Cow::Owned(prepared.compressed(compression)?),
                // Compressed against this connection's history: its own.
                None => return Ok(None),
            }
        }
        let fits = self
            .config
            .get_fragment_size()
            .is_none_or(|size| frame.payload.len() <= size);
        Ok(fits.then_some(frame))
    }

    /// Sends a [`PreparedMessage`] and flushes, as
    /// [`SinkExt::send`](futures_util::SinkExt::send) sends a message.
    ///
    /// ```no_run
    /// use fastws::{Message, PreparedMessage};
    ///
    /// # async fn run(rooms: Vec<fastws::WebSocket<tokio::net::TcpStream>>) -> Result<(), fastws::Error> {
    /// let news = PreparedMessage::new(Message::text("the meeting moved to 3 pm"));
    /// for mut ws in rooms {
    ///     ws.send_prepared(&news).await?;
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`SinkExt::send`](futures_util::SinkExt::send).
    pub async fn send_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), Error> {
        self.feed_prepared(prepared).await?;
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_flush(cx)).await
    }

    /// Queues a [`PreparedMessage`] once there is room, without flushing, as
    /// [`SinkExt::feed`](futures_util::SinkExt::feed) does a message.
    ///
    /// # Errors
    ///
    /// As [`SinkExt::feed`](futures_util::SinkExt::feed).
    pub async fn feed_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), Error> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_ready(cx)).await?;
        self.start_send_prepared(prepared)
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

#[cfg(all(test, feature = "deflate"))]
mod tests {
    use bytes::BytesMut;

    use super::super::Negotiated;
    use super::*;
    use crate::Config;
    use crate::deflate::negotiation::DeflateParams;

    /// A server end that negotiated permessage-deflate with these parameters for
    /// its own compressor.
    fn server(no_context_takeover: bool, window_bits: u8) -> WebSocket<tokio::io::DuplexStream> {
        let (io, _peer) = tokio::io::duplex(1 << 20);
        let params = DeflateParams {
            server_no_context_takeover: no_context_takeover,
            client_no_context_takeover: false,
            server_max_window_bits: window_bits,
            client_max_window_bits: 15,
        };
        let negotiated = Negotiated {
            deflate: Some(params),
            ..Negotiated::default()
        };
        WebSocket::after_handshake(io, BytesMut::new(), Role::Server, Config::default(), negotiated)
    }

    #[tokio::test]
    async fn a_prepared_message_is_compressed_once_per_settings_and_never_for_context_takeover() {
        let text = r#"{"symbol":"FAST","bid":101.25,"ask":101.5}"#.repeat(20);
        let prepared = PreparedMessage::new(Message::text(text));
        let mut same = [server(true, 15), server(true, 15), server(true, 15)];
        for ws in &mut same {
            ws.start_send_prepared(&prepared).unwrap();
        }
        assert_eq!(prepared.compressions(), 1, "three connections, one setting");
        server(true, 10).start_send_prepared(&prepared).unwrap();
        assert_eq!(prepared.compressions(), 2, "a second window, a second form");
        let mut takeover = server(false, 15);
        takeover.start_send_prepared(&prepared).unwrap();
        assert_eq!(
            prepared.compressions(),
            2,
            "context takeover compresses on its own"
        );
        assert!(takeover.deflater.as_ref().unwrap().parts_compressed() == 1);
        // Shared, not copied: every connection queues the same bytes.
        let fresh = same[0].deflater.as_ref().unwrap().fresh_compression().unwrap();
        let (first, again) = (
            prepared.compressed(fresh).unwrap(),
            prepared.compressed(fresh).unwrap(),
        );
        assert_eq!(first.payload.as_ptr(), again.payload.as_ptr());
        assert_eq!(same[0].deflater.as_ref().unwrap().parts_compressed(), 0);
    }
}
