//! Reassembly of data messages from frames (RFC 6455 §5.4), with the message size
//! limit and UTF-8 validation applied fragment by fragment.

use bytes::{Bytes, BytesMut};

use crate::error::{Error, ProtocolError};
use crate::frame::{Frame, OpCode};
use crate::message::{Message, Utf8Bytes};
use crate::utf8::Utf8Validator;

/// Turns data frames into messages. Pure logic: control frames never reach it.
#[derive(Debug)]
pub(crate) struct MessageAssembler {
    max_message_size: usize,
    max_fragments: usize,
    /// The frames of the message in progress so far.
    fragments: usize,
    /// The opcode of the fragmented message in progress, if any.
    in_progress: Option<OpCode>,
    buffer: BytesMut,
    utf8: Utf8Validator,
    /// Bytes of the frame being received that `check_partial` already validated.
    validated: usize,
    /// The message in progress is compressed (RSV1 on its first frame).
    compressed: bool,
    /// Boxed: a connection without permessage-deflate keeps a pointer, not its state.
    #[cfg(feature = "deflate")]
    inflater: Option<Box<crate::deflate::compression::Inflater>>,
    /// The decompressed part of a compressed message in progress.
    #[cfg(feature = "deflate")]
    inflated: Vec<u8>,
    /// Bytes of the message in progress already handed out by `push_chunk`.
    streamed: usize,
}

/// A piece of a data message handed out as it arrives (see
/// [`MessageAssembler::push_chunk`]).
#[derive(Debug)]
pub(crate) struct Chunk {
    /// The message's kind: `Text` or `Binary`.
    pub(crate) opcode: OpCode,
    /// The piece's payload, decompressed and (for text) validated.
    pub(crate) bytes: Bytes,
    /// Whether this piece ends the message.
    pub(crate) fin: bool,
}

impl MessageAssembler {
    pub(crate) fn new(max_message_size: usize, max_fragments: usize) -> MessageAssembler {
        MessageAssembler {
            max_message_size,
            max_fragments,
            fragments: 0,
            in_progress: None,
            buffer: BytesMut::new(),
            utf8: Utf8Validator::default(),
            validated: 0,
            compressed: false,
            #[cfg(feature = "deflate")]
            inflater: None,
            #[cfg(feature = "deflate")]
            inflated: Vec::new(),
            streamed: 0,
        }
    }

    /// Decompresses messages whose first frame has RSV1 set (permessage-deflate).
    #[cfg(feature = "deflate")]
    pub(crate) fn set_inflater(&mut self, inflater: crate::deflate::compression::Inflater) {
        self.inflater = Some(Box::new(inflater));
    }

    /// The decompressor, if permessage-deflate is in use.
    #[cfg(feature = "deflate")]
    pub(crate) fn inflater_mut(&mut self) -> Option<&mut crate::deflate::compression::Inflater> {
        self.inflater.as_deref_mut()
    }

    /// Feeds one text, binary or continuation frame; returns the message it
    /// completes, if any.
    ///
    /// # Errors
    ///
    /// A continuation without a message in progress, or a new message before the
    /// previous one ended, is a protocol error (1002); a message over the size limit
    /// is [`Error::MessageTooLarge`] (1009), reported at the fragment that crosses it,
    /// and one in more frames than allowed is [`Error::TooManyFragments`] (1009);
    /// invalid UTF-8 in a text message is [`Error::InvalidUtf8`] (1007), reported at
    /// the fragment where it appears.
    #[inline]
    pub(crate) fn push(&mut self, frame: Frame) -> Result<Option<Message>, Error> {
        let opcode = self.message_opcode(&frame)?;
        if opcode == frame.opcode() && frame.is_fin() && !self.compressed && self.validated == 0 {
            self.in_progress = None;
            return self.whole_message(opcode, frame.into_payload()).map(Some);
        }
        if self.compressed {
            self.push_compressed(opcode, frame)
        } else {
            self.push_fragment(opcode, frame)
        }
    }

    /// Feeds one data frame and hands its payload straight back, decompressed and
    /// validated, without buffering the message: the limits and checks of `push`
    /// apply as the pieces go by.
    ///
    /// # Errors
    ///
    /// As [`MessageAssembler::push`].
    pub(crate) fn push_chunk(&mut self, frame: Frame) -> Result<Chunk, Error> {
        let opcode = self.message_opcode(&frame)?;
        if opcode == frame.opcode() {
            self.streamed = 0;
        }
        let fin = frame.is_fin();
        let validated = std::mem::take(&mut self.validated);
        let (bytes, validated) = if self.compressed {
            (self.inflate_piece(&frame)?, 0)
        } else {
            (frame.into_payload(), validated)
        };
        self.streamed += bytes.len();
        self.check_size(self.streamed)?;
        if opcode == OpCode::Text {
            self.utf8
                .feed(&bytes[validated..])
                .map_err(|_| Error::InvalidUtf8)?;
            if fin {
                self.utf8.finish().map_err(|_| Error::InvalidUtf8)?;
            }
        }
        if fin {
            self.in_progress = None;
            self.compressed = false;
        }
        Ok(Chunk { opcode, bytes, fin })
    }

    #[cfg(feature = "deflate")]
    fn inflate_piece(&mut self, frame: &Frame) -> Result<Bytes, Error> {
        let inflater = self.inflater.as_mut().ok_or(ProtocolError::ReservedBits(0b100))?;
        let mut out = Vec::new();
        let room = self.max_message_size.saturating_sub(self.streamed);
        inflater
            .inflate(frame.payload(), frame.is_fin(), &mut out, room)
            .map_err(|err| match err {
                Error::MessageTooLarge { len, max } => Error::MessageTooLarge {
                    len: len + self.streamed,
                    max: max + self.streamed,
                },
                err => err,
            })?;
        Ok(Bytes::from(out))
    }

    #[cfg(not(feature = "deflate"))]
    fn inflate_piece(&mut self, _: &Frame) -> Result<Bytes, Error> {
        Err(ProtocolError::ReservedBits(0b100).into())
    }

    /// The opcode of the message `frame` belongs to, checking the continuation
    /// rules (RFC 6455 §5.4) and the fragment limit, and noting a new message's
    /// compression and kind.
    #[inline]
    fn message_opcode(&mut self, frame: &Frame) -> Result<OpCode, Error> {
        debug_assert!(frame.opcode().is_data());
        match (frame.opcode(), self.in_progress) {
            (OpCode::Continuation, None) => Err(ProtocolError::UnexpectedContinuation.into()),
            (OpCode::Text | OpCode::Binary, Some(_)) => Err(ProtocolError::ExpectedContinuation.into()),
            (OpCode::Continuation, Some(opcode)) => {
                // Empty fragments never reach the size limit: without this a
                // message could stay open forever.
                self.fragments += 1;
                if self.fragments > self.max_fragments {
                    return Err(Error::TooManyFragments {
                        max: self.max_fragments,
                    });
                }
                Ok(opcode)
            }
            (opcode, None) => {
                // RFC 7692 §6.1: RSV1 on the first frame marks the whole message.
                self.compressed = frame.rsv1();
                self.in_progress = Some(opcode);
                self.fragments = 1;
                Ok(opcode)
            }
            (OpCode::Close | OpCode::Ping | OpCode::Pong, _) => {
                unreachable!("control frames are handled by the WebSocket")
            }
        }
    }

    /// A fragment of a compressed message: inflated at once, so the size limit and
    /// UTF-8 validation apply to the decompressed bytes as they appear.
    #[cfg(feature = "deflate")]
    fn push_compressed(&mut self, opcode: OpCode, frame: Frame) -> Result<Option<Message>, Error> {
        let inflater = self.inflater.as_mut().ok_or(ProtocolError::ReservedBits(0b100))?;
        let start = self.inflated.len();
        inflater.inflate(
            frame.payload(),
            frame.is_fin(),
            &mut self.inflated,
            self.max_message_size,
        )?;
        if opcode == OpCode::Text {
            self.utf8
                .feed(&self.inflated[start..])
                .map_err(|_| Error::InvalidUtf8)?;
        }
        if !frame.is_fin() {
            return Ok(None);
        }
        self.in_progress = None;
        self.compressed = false;
        let payload = Bytes::from(std::mem::take(&mut self.inflated));
        self.complete(opcode, payload)
    }

    /// Without the `deflate` feature the codec refuses RSV1, so this never runs.
    #[cfg(not(feature = "deflate"))]
    fn push_compressed(&mut self, _: OpCode, _: Frame) -> Result<Option<Message>, Error> {
        Err(ProtocolError::ReservedBits(0b100).into())
    }

    /// Validates the part of an incomplete frame with `opcode` that has `arrived`, so
    /// invalid text fails before the frame completes (RFC 6455 §8.1 fail-fast).
    /// Compressed frames are validated once inflated instead.
    pub(crate) fn check_partial(&mut self, opcode: OpCode, rsv1: bool, arrived: &[u8]) -> Result<(), Error> {
        let text = !rsv1
            && !self.compressed
            && matches!(
                (opcode, self.in_progress),
                (OpCode::Text, None) | (OpCode::Continuation, Some(OpCode::Text))
            );
        if text && arrived.len() > self.validated {
            self.utf8
                .feed(&arrived[self.validated..])
                .map_err(|_| Error::InvalidUtf8)?;
            self.validated = arrived.len();
        }
        Ok(())
    }

    /// The message of one unfragmented, uncompressed frame with `opcode`, checked
    /// against the size limit and (text) validated in one pass, zero copy. For a
    /// frame that arrives between messages: the message layer's fast lane calls it
    /// directly.
    #[inline]
    pub(crate) fn whole_message(&self, opcode: OpCode, payload: Bytes) -> Result<Message, Error> {
        self.check_size(payload.len())?;
        Ok(match opcode {
            OpCode::Text => match simdutf8::basic::from_utf8(&payload) {
                Ok(_) => Message::Text(Utf8Bytes::from_validated(payload)),
                Err(_) => return Err(Error::InvalidUtf8),
            },
            _ => Message::Binary(payload),
        })
    }

    /// Whether no message is in progress and no frame was validated as it
    /// arrived: a whole frame can become a message without the assembler's state.
    pub(crate) fn is_between_messages(&self) -> bool {
        self.in_progress.is_none() && self.validated == 0
    }

    fn push_fragment(&mut self, opcode: OpCode, frame: Frame) -> Result<Option<Message>, Error> {
        let fin = frame.is_fin();
        let payload = frame.into_payload();
        self.check_size(self.buffer.len() + payload.len())?;
        if opcode == OpCode::Text {
            let validated = std::mem::take(&mut self.validated);
            self.utf8
                .feed(&payload[validated..])
                .map_err(|_| Error::InvalidUtf8)?;
        }
        if !fin {
            self.buffer.extend_from_slice(&payload);
            return Ok(None);
        }
        self.in_progress = None;
        let payload = if self.buffer.is_empty() {
            payload
        } else {
            self.buffer.extend_from_slice(&payload);
            self.buffer.split().freeze()
        };
        self.complete(opcode, payload)
    }

    /// Ends a fragmented (or compressed) message whose bytes were fed to the UTF-8
    /// validator as they came.
    fn complete(&mut self, opcode: OpCode, payload: Bytes) -> Result<Option<Message>, Error> {
        Ok(Some(match opcode {
            OpCode::Text => {
                self.utf8.finish().map_err(|_| Error::InvalidUtf8)?;
                Message::Text(Utf8Bytes::from_validated(payload))
            }
            _ => Message::Binary(payload),
        }))
    }

    #[inline]
    fn check_size(&self, len: usize) -> Result<(), Error> {
        if len > self.max_message_size {
            return Err(Error::MessageTooLarge {
                len,
                max: self.max_message_size,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assemble(frames: Vec<Frame>) -> Result<Vec<Message>, Error> {
        let mut assembler = MessageAssembler::new(16, usize::MAX);
        let mut messages = Vec::new();
        for frame in frames {
            messages.extend(assembler.push(frame)?);
        }
        Ok(messages)
    }

    #[test]
    fn fragments_are_joined_into_one_message() {
        let messages = assemble(vec![
            Frame::text("κό").with_fin(false),
            Frame::continuation(&"σμε".as_bytes()[..1]).with_fin(false),
            Frame::continuation(&"σμε".as_bytes()[1..]),
            Frame::binary(&b"ab"[..]),
        ])
        .unwrap();
        assert_eq!(
            messages,
            vec![Message::text("κόσμε"), Message::binary(&b"ab"[..])]
        );
    }

    #[test]
    fn continuation_rules_are_enforced() {
        assert!(matches!(
            assemble(vec![Frame::continuation("x")]),
            Err(Error::Protocol(ProtocolError::UnexpectedContinuation))
        ));
        assert!(matches!(
            assemble(vec![Frame::text("x").with_fin(false), Frame::binary("y")]),
            Err(Error::Protocol(ProtocolError::ExpectedContinuation))
        ));
    }

    #[test]
    fn size_limit_applies_to_the_fragment_that_crosses_it() {
        let mut assembler = MessageAssembler::new(16, usize::MAX);
        assert!(
            assembler
                .push(Frame::binary(vec![0; 10]).with_fin(false))
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            assembler.push(Frame::continuation(vec![0; 7]).with_fin(false)),
            Err(Error::MessageTooLarge { len: 17, max: 16 })
        ));
        assert!(matches!(
            MessageAssembler::new(16, usize::MAX).push(Frame::binary(vec![0; 17])),
            Err(Error::MessageTooLarge { .. })
        ));
    }

    /// Feeds `frame`, which must be accepted without completing a message.
    fn assert_pending(assembler: &mut MessageAssembler, frame: Frame) {
        assert!(assembler.push(frame).unwrap().is_none());
    }

    #[test]
    fn fragment_limit_counts_every_frame_of_a_message() {
        let mut assembler = MessageAssembler::new(1024, 3);
        assert_pending(&mut assembler, Frame::binary("a").with_fin(false));
        assert_pending(&mut assembler, Frame::continuation("").with_fin(false));
        assert_eq!(
            assembler.push(Frame::continuation("b")).unwrap(),
            Some(Message::binary("ab"))
        );
        // The count starts again with each message; empty fragments count too.
        assert_pending(&mut assembler, Frame::text("x").with_fin(false));
        assert_pending(&mut assembler, Frame::continuation("").with_fin(false));
        assert_pending(&mut assembler, Frame::continuation("").with_fin(false));
        assert!(matches!(
            assembler.push(Frame::continuation("").with_fin(false)),
            Err(Error::TooManyFragments { max: 3 })
        ));
        // A streamed message counts the same way.
        let mut assembler = MessageAssembler::new(1024, 2);
        assert!(
            !assembler
                .push_chunk(Frame::binary("a").with_fin(false))
                .unwrap()
                .fin
        );
        assert!(
            !assembler
                .push_chunk(Frame::continuation("b").with_fin(false))
                .unwrap()
                .fin
        );
        assert!(matches!(
            assembler.push_chunk(Frame::continuation("c")),
            Err(Error::TooManyFragments { max: 2 })
        ));
    }

    #[test]
    fn invalid_text_fails_before_its_frame_completes() {
        let mut assembler = MessageAssembler::new(1024, usize::MAX);
        assert!(assembler.check_partial(OpCode::Text, false, b"valid").is_ok());
        assert!(matches!(
            assembler.check_partial(OpCode::Text, false, b"valid\xed\xa0\x80"),
            Err(Error::InvalidUtf8)
        ));
        // Binary frames are not validated.
        assert!(
            MessageAssembler::new(1024, usize::MAX)
                .check_partial(OpCode::Binary, false, b"\xff")
                .is_ok()
        );
    }

    #[test]
    fn partially_validated_frame_completes_without_validating_twice() {
        let mut assembler = MessageAssembler::new(1024, usize::MAX);
        let text = "κόσμε".as_bytes();
        assembler.check_partial(OpCode::Text, false, &text[..3]).unwrap();
        let message = assembler.push(Frame::text(text)).unwrap();
        assert_eq!(message, Some(Message::text("κόσμε")));
        // The validator is reset for the next message.
        assert_eq!(
            assembler.push(Frame::text("a")).unwrap(),
            Some(Message::text("a"))
        );
    }

    #[test]
    fn invalid_utf8_fails_at_its_fragment() {
        let mut assembler = MessageAssembler::new(1024, usize::MAX);
        assert!(
            assembler
                .push(Frame::text("ok").with_fin(false))
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            assembler.push(Frame::continuation(&b"\xff"[..]).with_fin(false)),
            Err(Error::InvalidUtf8)
        ));
        assert!(matches!(
            MessageAssembler::new(1024, usize::MAX).push(Frame::text(&b"\xe2\x82"[..])),
            Err(Error::InvalidUtf8)
        ));
    }
}
