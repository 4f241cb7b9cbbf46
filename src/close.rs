//! The close handshake (RFC 6455 §5.5.1, §7) as a pure state machine: events in,
//! actions out, no I/O. [`WebSocket`](crate::WebSocket) feeds it and carries out
//! the actions.

use bytes::Bytes;

use crate::error::{Error, ProtocolError};
use crate::frame::{CloseCode, Frame};
use crate::message::{CloseFrame, Utf8Bytes};

/// Where the connection is in the close handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseState {
    /// No close frame sent or received: data flows both ways.
    Open,
    /// We sent a close frame and wait for the peer's; we still read, but send no data.
    CloseSent,
    /// Both close frames are exchanged (or the connection failed): nothing more is
    /// sent after the frames already queued, and the transport is torn down.
    Closed,
}

/// What the WebSocket must do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CloseAction {
    /// Queue this close frame; for a received close this is the echo that completes
    /// the handshake.
    Send(Frame),
    /// The handshake is complete; tear the transport down.
    Finish,
    /// Nothing to do (a duplicate close).
    Ignore,
}

impl CloseState {
    /// Whether data and ping/pong frames may still be sent (RFC 6455 §5.5.1: none
    /// after a close frame).
    pub(crate) fn can_send(self) -> bool {
        self == CloseState::Open
    }

    /// We want to close (the application asked, or the connection failed): send
    /// `frame` unless a close frame was already sent.
    pub(crate) fn on_close_requested(&mut self, frame: Frame) -> CloseAction {
        match self {
            CloseState::Open => {
                *self = CloseState::CloseSent;
                CloseAction::Send(frame)
            }
            CloseState::CloseSent | CloseState::Closed => CloseAction::Ignore,
        }
    }

    /// The connection failed (RFC 6455 §7.1.7): send `frame` if no close frame was
    /// sent yet, and close without waiting for the peer's answer.
    pub(crate) fn on_failure(&mut self, frame: Option<Frame>) -> CloseAction {
        let was = *self;
        *self = CloseState::Closed;
        match (was, frame) {
            (CloseState::Open, Some(frame)) => CloseAction::Send(frame),
            _ => CloseAction::Finish,
        }
    }

    /// The peer's close frame arrived: echo its code if we have not sent ours
    /// (RFC 6455 §5.5.1), then the handshake is complete.
    pub(crate) fn on_close_received(&mut self, close: Option<&CloseFrame>) -> CloseAction {
        match self {
            CloseState::Open => {
                *self = CloseState::Closed;
                CloseAction::Send(match close {
                    Some(close) => Frame::close(close.code, ""),
                    None => Frame::close_empty(),
                })
            }
            CloseState::CloseSent => {
                *self = CloseState::Closed;
                CloseAction::Finish
            }
            CloseState::Closed => CloseAction::Ignore,
        }
    }
}

/// Parses and validates a close frame's payload (RFC 6455 §5.5.1, §7.4).
///
/// # Errors
///
/// A one-byte payload or a code that may not appear on the wire is a protocol error
/// (1002); a reason that is not UTF-8 is [`Error::InvalidUtf8`] (1007).
pub(crate) fn parse_close_payload(payload: Bytes) -> Result<Option<CloseFrame>, Error> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(ProtocolError::InvalidClosePayload.into()),
        _ => {
            let code = CloseCode::from(u16::from_be_bytes([payload[0], payload[1]]));
            if !code.is_allowed_on_wire() {
                return Err(ProtocolError::InvalidCloseCode(code.as_u16()).into());
            }
            let reason = Utf8Bytes::try_from(payload.slice(2..)).map_err(|_| Error::InvalidUtf8)?;
            Ok(Some(CloseFrame { code, reason }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_close_is_echoed_with_its_code_then_closed() {
        let mut state = CloseState::Open;
        let close = CloseFrame::new(CloseCode::Away, "bye");
        assert_eq!(
            state.on_close_received(Some(&close)),
            CloseAction::Send(Frame::close(CloseCode::Away, ""))
        );
        assert_eq!(state, CloseState::Closed);
        assert!(!state.can_send());
        assert_eq!(state.on_close_received(Some(&close)), CloseAction::Ignore);
    }

    #[test]
    fn empty_close_is_echoed_empty() {
        let mut state = CloseState::Open;
        assert_eq!(
            state.on_close_received(None),
            CloseAction::Send(Frame::close_empty())
        );
    }

    #[test]
    fn close_we_started_finishes_when_the_peer_answers() {
        let mut state = CloseState::Open;
        let ours = Frame::close(CloseCode::Normal, "");
        assert_eq!(
            state.on_close_requested(ours.clone()),
            CloseAction::Send(ours.clone())
        );
        assert_eq!(state, CloseState::CloseSent);
        assert!(!state.can_send());
        assert_eq!(state.on_close_requested(ours), CloseAction::Ignore);
        assert_eq!(state.on_close_received(None), CloseAction::Finish);
        assert_eq!(state, CloseState::Closed);
    }

    #[test]
    fn failure_sends_its_code_once() {
        let mut state = CloseState::Open;
        let frame = Frame::close(CloseCode::Protocol, "");
        assert_eq!(
            state.on_failure(Some(frame.clone())),
            CloseAction::Send(frame.clone())
        );
        assert_eq!(state, CloseState::Closed);
        let mut state = CloseState::CloseSent;
        assert_eq!(state.on_failure(Some(frame)), CloseAction::Finish);
        let mut state = CloseState::Open;
        assert_eq!(state.on_failure(None), CloseAction::Finish);
    }

    #[test]
    fn close_payloads_are_validated() {
        assert!(parse_close_payload(Bytes::new()).unwrap().is_none());
        assert!(matches!(
            parse_close_payload(Bytes::from_static(&[3])),
            Err(Error::Protocol(ProtocolError::InvalidClosePayload))
        ));
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            assert!(
                matches!(
                    parse_close_payload(Bytes::copy_from_slice(&code.to_be_bytes())),
                    Err(Error::Protocol(ProtocolError::InvalidCloseCode(c))) if c == code
                ),
                "code {code}"
            );
        }
        assert!(matches!(
            parse_close_payload(Bytes::from_static(b"\x03\xe8\xff")),
            Err(Error::InvalidUtf8)
        ));
        let close = parse_close_payload(Bytes::from_static(b"\x0f\xa0ok"))
            .unwrap()
            .unwrap();
        assert_eq!(close, CloseFrame::new(CloseCode::Private(4000), "ok"));
    }
}
