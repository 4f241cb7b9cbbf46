//! Messages (RFC 6455 §5.6) and the UTF-8 text type that carries text payloads.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

use crate::frame::{CloseCode, Frame, OpCode};

/// Immutable UTF-8 text backed by [`Bytes`]: cloning and slicing never copy.
///
/// The only ways to build one validate the bytes (or start from a `str`), so it
/// always derefs to a `&str` without a check.
///
/// ```
/// use fastws::Utf8Bytes;
/// let text = Utf8Bytes::try_from(bytes::Bytes::from_static(b"hello")).unwrap();
/// assert_eq!(&*text, "hello");
/// assert!(Utf8Bytes::try_from(bytes::Bytes::from_static(b"\xff")).is_err());
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// Text from a static string, without copying.
    pub const fn from_static(text: &'static str) -> Utf8Bytes {
        Utf8Bytes(Bytes::from_static(text.as_bytes()))
    }

    /// The text as a `&str`.
    #[allow(unsafe_code)]
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor of `Utf8Bytes` validates its bytes (`TryFrom<Bytes>`,
        // `from_validated` after the message layer's validator) or starts from a `str`,
        // and the bytes are immutable afterwards. Re-validating here would make every
        // `Deref` O(n). `as_str_matches_the_validated_bytes` checks the invariant.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Takes the underlying bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Wraps bytes the caller has already validated.
    pub(crate) fn from_validated(bytes: Bytes) -> Utf8Bytes {
        debug_assert!(simdutf8::basic::from_utf8(&bytes).is_ok());
        Utf8Bytes(bytes)
    }
}

impl Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Utf8Bytes {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Utf8Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = std::str::Utf8Error;
    fn try_from(bytes: Bytes) -> Result<Utf8Bytes, std::str::Utf8Error> {
        if simdutf8::basic::from_utf8(&bytes).is_ok() {
            return Ok(Utf8Bytes(bytes));
        }
        std::str::from_utf8(&bytes)?;
        unreachable!("simdutf8 and std disagree on UTF-8 validity")
    }
}

impl From<String> for Utf8Bytes {
    fn from(text: String) -> Utf8Bytes {
        Utf8Bytes(Bytes::from(text))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(text: &str) -> Utf8Bytes {
        Utf8Bytes(Bytes::copy_from_slice(text.as_bytes()))
    }
}

impl From<Utf8Bytes> for Bytes {
    fn from(text: Utf8Bytes) -> Bytes {
        text.0
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The payload of a close frame: a status code and a UTF-8 reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// Why the connection closes; at most 123 bytes on the wire.
    pub reason: Utf8Bytes,
}

impl CloseFrame {
    /// A close frame with `code` and `reason`.
    pub fn new(code: CloseCode, reason: impl Into<Utf8Bytes>) -> CloseFrame {
        CloseFrame {
            code,
            reason: reason.into(),
        }
    }
}

/// A WebSocket message: a complete data message, or a control message.
///
/// ```
/// use fastws::Message;
/// let text = Message::from("hello");
/// assert!(text.is_text());
/// assert_eq!(text.as_text(), Some("hello"));
/// let binary = Message::from(vec![1u8, 2, 3]);
/// assert_eq!(binary.payload().len(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message, validated UTF-8.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping; fastws answers it with a pong by default ([`Config::auto_pong`](crate::Config::auto_pong)).
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// A close message, with a status code and reason if the peer sent one.
    Close(Option<CloseFrame>),
}

impl Message {
    /// A text message.
    pub fn text(text: impl Into<Utf8Bytes>) -> Message {
        Message::Text(text.into())
    }

    /// A binary message.
    pub fn binary(payload: impl Into<Bytes>) -> Message {
        Message::Binary(payload.into())
    }

    /// A ping message (at most 125 bytes).
    pub fn ping(payload: impl Into<Bytes>) -> Message {
        Message::Ping(payload.into())
    }

    /// A pong message (at most 125 bytes).
    pub fn pong(payload: impl Into<Bytes>) -> Message {
        Message::Pong(payload.into())
    }

    /// A close message with a code and reason.
    pub fn close(code: CloseCode, reason: impl Into<Utf8Bytes>) -> Message {
        Message::Close(Some(CloseFrame::new(code, reason)))
    }

    /// Whether this is a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }

    /// Whether this is a binary message.
    pub fn is_binary(&self) -> bool {
        matches!(self, Message::Binary(_))
    }

    /// Whether this is a data (text or binary) message.
    pub fn is_data(&self) -> bool {
        self.is_text() || self.is_binary()
    }

    /// Whether this is a close message.
    pub fn is_close(&self) -> bool {
        matches!(self, Message::Close(_))
    }

    /// Whether this is a ping.
    pub fn is_ping(&self) -> bool {
        matches!(self, Message::Ping(_))
    }

    /// Whether this is a pong.
    pub fn is_pong(&self) -> bool {
        matches!(self, Message::Pong(_))
    }

    /// The length of [`payload`](Message::payload) in bytes.
    pub fn len(&self) -> usize {
        self.payload().len()
    }

    /// Whether [`payload`](Message::payload) is empty.
    pub fn is_empty(&self) -> bool {
        self.payload().is_empty()
    }

    /// The payload as text: a text message's own, any other message's payload if it
    /// is valid UTF-8 (tokio-tungstenite's meaning). `?` turns the error into
    /// [`Error::InvalidUtf8`](crate::Error::InvalidUtf8).
    ///
    /// ```
    /// use fastws::Message;
    /// assert_eq!(Message::text("hi").to_text().unwrap(), "hi");
    /// assert_eq!(Message::binary(&b"hi"[..]).to_text().unwrap(), "hi");
    /// assert!(Message::binary(vec![0xff]).to_text().is_err());
    /// ```
    pub fn to_text(&self) -> Result<&str, std::str::Utf8Error> {
        match self {
            Message::Text(text) => Ok(text.as_str()),
            other => std::str::from_utf8(other.payload()),
        }
    }

    /// Takes the payload as text, on the terms of [`to_text`](Message::to_text),
    /// without copying it.
    pub fn into_text(self) -> Result<Utf8Bytes, std::str::Utf8Error> {
        match self {
            Message::Text(text) => Ok(text),
            other => Utf8Bytes::try_from(other.into_payload()),
        }
    }

    /// Takes the payload (a close message gives its reason): tokio-tungstenite's
    /// name for [`into_payload`](Message::into_payload).
    pub fn into_data(self) -> Bytes {
        self.into_payload()
    }

    /// The text, if this is a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(text) => Some(text.as_str()),
            _ => None,
        }
    }

    /// The payload bytes (for a close message, its code and reason are not included).
    pub fn payload(&self) -> &[u8] {
        match self {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) | Message::Ping(bytes) | Message::Pong(bytes) => bytes,
            Message::Close(Some(close)) => close.reason.as_bytes(),
            Message::Close(None) => &[],
        }
    }

    /// Takes the payload (a close message gives its reason).
    pub fn into_payload(self) -> Bytes {
        match self {
            Message::Text(text) => text.into_bytes(),
            Message::Binary(bytes) | Message::Ping(bytes) | Message::Pong(bytes) => bytes,
            Message::Close(Some(close)) => close.reason.into_bytes(),
            Message::Close(None) => Bytes::new(),
        }
    }

    /// The single, final frame that carries this message unfragmented.
    #[inline]
    pub fn into_frame(self) -> Frame {
        match self {
            Message::Text(text) => Frame::new(OpCode::Text, text.into_bytes()),
            Message::Binary(bytes) => Frame::new(OpCode::Binary, bytes),
            Message::Ping(bytes) => Frame::new(OpCode::Ping, bytes),
            Message::Pong(bytes) => Frame::new(OpCode::Pong, bytes),
            Message::Close(Some(close)) => Frame::close(close.code, &close.reason),
            Message::Close(None) => Frame::close_empty(),
        }
    }
}

/// Text as it is; any other message as `Binary Data<length=N>` unless its payload
/// is UTF-8 (tokio-tungstenite's format).
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_text() {
            Ok(text) => f.write_str(text),
            Err(_) => write!(f, "Binary Data<length={}>", self.len()),
        }
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Message {
        Message::Text(text.into())
    }
}

impl From<String> for Message {
    fn from(text: String) -> Message {
        Message::Text(text.into())
    }
}

impl From<Utf8Bytes> for Message {
    fn from(text: Utf8Bytes) -> Message {
        Message::Text(text)
    }
}

impl From<Bytes> for Message {
    fn from(bytes: Bytes) -> Message {
        Message::Binary(bytes)
    }
}

impl From<Vec<u8>> for Message {
    fn from(bytes: Vec<u8>) -> Message {
        Message::Binary(bytes.into())
    }
}

impl From<&[u8]> for Message {
    fn from(bytes: &[u8]) -> Message {
        Message::Binary(Bytes::copy_from_slice(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_message_becomes_a_close_frame() {
        let frame = Message::close(CloseCode::Away, "bye").into_frame();
        assert_eq!(frame.opcode(), OpCode::Close);
        assert_eq!(&frame.payload()[..], b"\x03\xe9bye");
        assert!(Message::Close(None).into_frame().payload().is_empty());
    }

    #[test]
    fn as_str_matches_the_validated_bytes() {
        let text = Utf8Bytes::try_from(Bytes::from_static("κόσμε".as_bytes())).unwrap();
        assert_eq!(text.as_str(), "κόσμε");
        assert_eq!(Utf8Bytes::from(String::from("€")).as_str(), "€");
        assert_eq!(Utf8Bytes::from_static("static").as_str(), "static");
    }

    #[test]
    fn invalid_utf8_is_refused() {
        assert!(Utf8Bytes::try_from(Bytes::from_static(b"ok\xc3")).is_err());
        assert_eq!(Utf8Bytes::try_from(Bytes::from_static(b"ok")).unwrap(), "ok");
    }
}
