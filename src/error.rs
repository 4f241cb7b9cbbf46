//! The crate's error type and the close code each protocol error implies.

use std::fmt;
use std::io;

use crate::frame::{CloseCode, MAX_CONTROL_PAYLOAD};
use crate::message::CloseFrame;

/// Everything that can go wrong in fastws.
///
/// An error that ends a connection maps to the close frame the peer is sent
/// ([`Error::close_frame`]): the code RFC 6455 prescribes and a short reason. The
/// message layer queues that close frame before it returns the error. Prefer the
/// predicates over matching on variants.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The underlying transport failed.
    Io(io::Error),
    /// The peer broke a framing or protocol rule (close 1002).
    Protocol(ProtocolError),
    /// A text message or close reason was not valid UTF-8 (close 1007).
    #[doc(alias = "Utf8")]
    InvalidUtf8,
    /// A frame's declared payload length exceeds the configured maximum (close 1009).
    FrameTooLarge {
        /// The length the frame header declared.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// A message grew past the configured maximum while it arrived (close 1009).
    #[doc(alias = "Capacity")]
    MessageTooLarge {
        /// The size the message reached, at least.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A message arrived in more fragments than the configured maximum
    /// ([`Config::max_fragments`](crate::Config::max_fragments); close 1009).
    TooManyFragments {
        /// The configured maximum.
        max: usize,
    },
    /// The peer kept sending pings while it read none of the pongs owed to it
    /// (close 1008): see [`Config::write_buffer_size`](crate::Config::write_buffer_size).
    PingFlood {
        /// The pings that arrived while no pong could be queued.
        unanswered: usize,
    },
    /// The opening handshake failed.
    Handshake(HandshakeError),
    /// The URL given to [`connect`](crate::connect) is invalid or its scheme is not
    /// `ws` or `wss`.
    InvalidUrl(String),
    /// The URL's host name could not be resolved.
    Dns(io::Error),
    /// No TCP connection could be opened to any of the host's addresses (for
    /// example, connection refused).
    Connect(io::Error),
    /// The TLS handshake failed, or `wss://` was asked for without TLS support.
    Tls(io::Error),
    /// The WebSocket is closed: a message was sent after a close frame, or the
    /// connection ended.
    #[doc(alias = "AlreadyClosed")]
    ConnectionClosed,
    /// The peer did not complete the close handshake within the configured timeout.
    CloseTimeout,
    /// The peer did not answer a keepalive ping in time
    /// ([`Config::ping_interval`](crate::Config::ping_interval); close 1001, sent
    /// without waiting for an answer).
    KeepaliveTimeout,
    /// No frame arrived for the configured idle timeout
    /// ([`Config::idle_timeout`](crate::Config::idle_timeout); close 1001, sent
    /// without waiting for an answer).
    IdleTimeout,
    /// This side asked to send a close code that may not appear on the wire
    /// ([`CloseCode::is_allowed_on_wire`]): our mistake, not the peer's. Nothing was
    /// sent and the connection is unaffected.
    UnsendableCloseCode(CloseCode),
    /// This side asked to send a control message (ping, pong, close) with more than
    /// 125 bytes of payload (RFC 6455 §5.5): our mistake, not the peer's. Nothing
    /// was sent and the connection is unaffected.
    ControlPayloadTooLong {
        /// The payload length asked for (for a close, code and reason together).
        len: usize,
    },
}

impl Error {
    /// The close code fastws sends the peer when this error ends the connection:
    /// the code of [`Error::close_frame`].
    ///
    /// ```
    /// use fastws::{CloseCode, Error};
    /// assert_eq!(Error::InvalidUtf8.close_code(), Some(CloseCode::Invalid));
    /// assert_eq!(Error::IdleTimeout.close_code(), Some(CloseCode::Away));
    /// assert_eq!(Error::ConnectionClosed.close_code(), None);
    /// ```
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Error::Protocol(_) => Some(CloseCode::Protocol),
            Error::InvalidUtf8 => Some(CloseCode::Invalid),
            Error::FrameTooLarge { .. } | Error::MessageTooLarge { .. } | Error::TooManyFragments { .. } => {
                Some(CloseCode::Size)
            }
            Error::PingFlood { .. } => Some(CloseCode::Policy),
            Error::IdleTimeout | Error::KeepaliveTimeout => Some(CloseCode::Away),
            _ => None,
        }
    }

    /// The close frame fastws sends the peer when this error ends the connection:
    /// the code RFC 6455 prescribes (§7.4.1) and a short reason (valid UTF-8, at most
    /// 123 bytes). `None` for errors after which no close frame is sent (I/O
    /// errors, a close handshake already under way, errors of our own).
    ///
    /// ```
    /// use fastws::{CloseCode, Error};
    /// let close = Error::InvalidUtf8.close_frame().unwrap();
    /// assert_eq!(close.code, CloseCode::Invalid);
    /// assert_eq!(close.reason, "invalid UTF-8");
    /// ```
    pub fn close_frame(&self) -> Option<CloseFrame> {
        let code = self.close_code()?;
        let reason = match self {
            Error::Protocol(err) => {
                return Some(CloseFrame::new(
                    code,
                    short_reason(format!("protocol error: {err}")),
                ));
            }
            Error::InvalidUtf8 => "invalid UTF-8",
            Error::FrameTooLarge { .. } => "frame too large",
            Error::MessageTooLarge { .. } => "message too big",
            Error::TooManyFragments { .. } => "message too big: too many fragments",
            Error::PingFlood { .. } => "ping flood: pongs are not being read",
            Error::IdleTimeout => "idle timeout",
            Error::KeepaliveTimeout => "keepalive timeout: no answer to ping",
            _ => "",
        };
        Some(CloseFrame::new(code, reason))
    }

    /// Whether the connection is closed (sending after close, or reading after the
    /// end of the stream).
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::ConnectionClosed)
    }

    /// Whether this is an I/O error of the transport.
    pub fn is_io(&self) -> bool {
        matches!(self, Error::Io(_))
    }

    /// Whether the peer went away without a close handshake: the connection was
    /// reset, or it ended (in the middle of a frame or between frames) without a
    /// close frame. The usual way a browser tab or a mobile client disappears;
    /// log it as a disconnect, not as a failure. (tokio-tungstenite reports the same
    /// as `Protocol(ResetWithoutClosingHandshake)` or an I/O error.)
    ///
    /// ```
    /// use std::io;
    /// let eof = fastws::Error::from(io::Error::from(io::ErrorKind::UnexpectedEof));
    /// assert!(eof.is_disconnect());
    /// assert!(!fastws::Error::InvalidUtf8.is_disconnect());
    /// ```
    pub fn is_disconnect(&self) -> bool {
        match self {
            Error::Io(err) => matches!(
                err.kind(),
                io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
            ),
            _ => false,
        }
    }

    /// Whether this side misused the API: asked to send what may not be sent
    /// ([`Error::UnsendableCloseCode`], [`Error::ControlPayloadTooLong`]). The
    /// connection is unaffected.
    pub fn is_misuse(&self) -> bool {
        matches!(
            self,
            Error::UnsendableCloseCode(_) | Error::ControlPayloadTooLong { .. }
        )
    }

    /// Whether the peer broke the protocol or one of the configured limits (the
    /// errors answered with close 1002, 1007, 1008 or 1009).
    pub fn is_protocol(&self) -> bool {
        matches!(
            self,
            Error::Protocol(_)
                | Error::InvalidUtf8
                | Error::FrameTooLarge { .. }
                | Error::MessageTooLarge { .. }
                | Error::TooManyFragments { .. }
                | Error::PingFlood { .. }
        )
    }

    /// Whether the opening handshake failed.
    pub fn is_handshake(&self) -> bool {
        matches!(self, Error::Handshake(_))
    }

    /// The handshake failure, if this is one.
    pub fn handshake(&self) -> Option<&HandshakeError> {
        match self {
            Error::Handshake(err) => Some(err),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(err) => write!(f, "i/o error: {err}"),
            Error::Protocol(err) => write!(f, "protocol error: {err}"),
            Error::InvalidUtf8 => f.write_str("text payload is not valid utf-8"),
            Error::FrameTooLarge { len, max } => {
                write!(f, "frame payload of {len} bytes exceeds the limit of {max}")
            }
            Error::MessageTooLarge { len, max } => {
                write!(f, "message of {len} bytes exceeds the limit of {max}")
            }
            Error::TooManyFragments { max } => {
                write!(f, "message arrived in more than {max} fragments")
            }
            Error::PingFlood { unanswered } => {
                write!(
                    f,
                    "{unanswered} pings arrived while the peer read none of their pongs"
                )
            }
            Error::Handshake(err) => write!(f, "handshake failed: {err}"),
            Error::InvalidUrl(reason) => write!(f, "invalid websocket url: {reason}"),
            Error::Dns(err) => write!(f, "host name resolution failed: {err}"),
            Error::Connect(err) => write!(f, "tcp connect failed: {err}"),
            Error::Tls(err) => write!(f, "tls handshake failed: {err}"),
            Error::ConnectionClosed => f.write_str("the websocket connection is closed"),
            Error::KeepaliveTimeout => f.write_str("the peer did not answer a keepalive ping in time"),
            Error::IdleTimeout => f.write_str("no frame arrived within the idle timeout"),
            Error::CloseTimeout => f.write_str("the peer did not complete the close handshake in time"),
            Error::UnsendableCloseCode(code) => {
                write!(f, "close code {code} may not be sent on the wire")
            }
            Error::ControlPayloadTooLong { len } => {
                write!(f, "control message of {len} bytes exceeds the limit of 125")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(err) | Error::Dns(err) | Error::Connect(err) | Error::Tls(err) => Some(err),
            Error::Protocol(err) => Some(err),
            Error::Handshake(err) => Some(err),
            _ => None,
        }
    }
}

/// Cuts `reason` to what fits in a close frame (RFC 6455 §5.5: 125 bytes of
/// payload, 2 of them the code), at a character boundary.
fn short_reason(mut reason: String) -> String {
    let max = MAX_CONTROL_PAYLOAD - 2;
    if reason.len() > max {
        let cut = (0..=max)
            .rev()
            .find(|&at| reason.is_char_boundary(at))
            .unwrap_or(0);
        reason.truncate(cut);
    }
    reason
}

/// An I/O error, or the fastws error inside one: the streaming
/// [`MessageReader`](crate::MessageReader) and [`MessageWriter`](crate::MessageWriter)
/// report ours wrapped in `io::Error` (as `AsyncRead` / `AsyncWrite` must), and `?`
/// gives it back.
///
/// ```
/// use std::io;
/// let wrapped = io::Error::other(fastws::Error::InvalidUtf8);
/// assert!(matches!(fastws::Error::from(wrapped), fastws::Error::InvalidUtf8));
/// ```
impl From<io::Error> for Error {
    fn from(err: io::Error) -> Error {
        if err.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            let inner = err.into_inner().expect("checked above");
            return *inner.downcast::<Error>().expect("checked above");
        }
        Error::Io(err)
    }
}

/// Text that is not UTF-8 ([`Message::to_text`](crate::Message::to_text) and
/// [`Message::into_text`](crate::Message::into_text) on binary data, for example).
impl From<std::str::Utf8Error> for Error {
    fn from(_: std::str::Utf8Error) -> Error {
        Error::InvalidUtf8
    }
}

impl From<ProtocolError> for Error {
    fn from(err: ProtocolError) -> Error {
        Error::Protocol(err)
    }
}

impl From<HandshakeError> for Error {
    fn from(err: HandshakeError) -> Error {
        Error::Handshake(err)
    }
}

/// A framing or protocol rule the peer broke; each is answered with close 1002.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The frame used a reserved opcode (RFC 6455 §5.2).
    ReservedOpCode(u8),
    /// RSV bits were set that no negotiated extension defines (RFC 6455 §5.2).
    ReservedBits(u8),
    /// A control frame's payload exceeded 125 bytes (RFC 6455 §5.5).
    ControlFrameTooLong(u64),
    /// A control frame had FIN clear (RFC 6455 §5.5).
    FragmentedControlFrame,
    /// A client sent an unmasked frame (RFC 6455 §5.1).
    UnmaskedFrame,
    /// A server sent a masked frame (RFC 6455 §5.1).
    MaskedFrame,
    /// A 64-bit payload length had its most significant bit set (RFC 6455 §5.2).
    InvalidLength,
    /// A continuation frame arrived with no message in progress (RFC 6455 §5.4).
    UnexpectedContinuation,
    /// A new text or binary frame arrived before the previous message ended (RFC 6455 §5.4).
    ExpectedContinuation,
    /// A close frame carried a status code that may not appear on the wire (RFC 6455 §7.4).
    InvalidCloseCode(u16),
    /// A close frame had a one-byte payload (RFC 6455 §5.5.1).
    InvalidClosePayload,
    /// A compressed message was not a valid deflate stream (RFC 7692 §7.2.2).
    InvalidCompressedData,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedOpCode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::ReservedBits(bits) => {
                write!(f, "rsv bits {bits:#05b} set without a negotiated extension")
            }
            ProtocolError::ControlFrameTooLong(len) => {
                write!(f, "control frame payload of {len} bytes exceeds 125 bytes")
            }
            ProtocolError::FragmentedControlFrame => f.write_str("control frame is fragmented"),
            ProtocolError::UnmaskedFrame => f.write_str("client frame is not masked"),
            ProtocolError::MaskedFrame => f.write_str("server frame is masked"),
            ProtocolError::InvalidLength => {
                f.write_str("64-bit payload length has its most significant bit set")
            }
            ProtocolError::UnexpectedContinuation => {
                f.write_str("continuation frame without a message in progress")
            }
            ProtocolError::ExpectedContinuation => {
                f.write_str("new data frame while a fragmented message is in progress")
            }
            ProtocolError::InvalidCloseCode(code) => write!(f, "close code {code} is not allowed"),
            ProtocolError::InvalidClosePayload => f.write_str("close payload of one byte"),
            ProtocolError::InvalidCompressedData => {
                f.write_str("compressed message is not valid deflate data")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Why an opening handshake failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The request or response was not valid HTTP/1.1, or broke a rule of
    /// RFC 6455 §4; on a server, the client was answered with `status`.
    Invalid {
        /// What was wrong, in words.
        reason: &'static str,
        /// The HTTP status a server answered with (400 or 426), if any.
        status: Option<u16>,
    },
    /// The server's accept callback rejected the request with this status.
    Rejected {
        /// The HTTP status sent to the client.
        status: u16,
    },
    /// The server answered the client's upgrade request with a status other than
    /// `101`: its response, with the start of the body (at most 64 KiB), says why.
    Refused(Box<http::Response<bytes::Bytes>>),
    /// The HTTP head exceeded the configured size or header count.
    TooLarge,
    /// The peer did not finish the handshake within the configured timeout.
    Timeout,
    /// The connection ended before the handshake finished.
    UnexpectedEof,
    /// The proxy would not open a tunnel to the server, or broke its protocol.
    Proxy(ProxyError),
    /// A redirect that [`ClientRequest::follow_redirects`](crate::ClientRequest::follow_redirects)
    /// would not follow: one too many, to `ws://` from `wss://`, or to a location
    /// that is not a WebSocket URL.
    Redirect {
        /// The `Location` the server answered with (empty when it sent none).
        location: String,
        /// Why it was not followed.
        reason: &'static str,
    },
}

impl HandshakeError {
    /// The server's non-`101` response, for a client whose upgrade was refused.
    pub fn response(&self) -> Option<&http::Response<bytes::Bytes>> {
        match self {
            HandshakeError::Refused(response) => Some(response),
            _ => None,
        }
    }

    /// The HTTP status involved: the one a server sent, if any. A proxy's status
    /// is not the server's: see [`ProxyError::status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            HandshakeError::Invalid { status, .. } => *status,
            HandshakeError::Rejected { status } => Some(*status),
            HandshakeError::Refused(response) => Some(response.status().as_u16()),
            HandshakeError::TooLarge => Some(431),
            _ => None,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Invalid { reason, .. } => f.write_str(reason),
            HandshakeError::Rejected { status } => {
                write!(f, "request rejected with status {status}")
            }
            HandshakeError::Refused(response) => {
                write!(f, "server answered {} instead of 101", response.status())
            }
            HandshakeError::TooLarge => f.write_str("http head exceeds the size limit"),
            HandshakeError::Timeout => f.write_str("handshake timed out"),
            HandshakeError::UnexpectedEof => f.write_str("connection closed during the handshake"),
            HandshakeError::Proxy(err) => write!(f, "proxy: {err}"),
            HandshakeError::Redirect { location, reason } => {
                write!(f, "redirect to {location:?} not followed: {reason}")
            }
        }
    }
}

impl std::error::Error for HandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HandshakeError::Proxy(err) => Some(err),
            _ => None,
        }
    }
}

/// Why a proxy did not open the tunnel ([`HandshakeError::Proxy`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyError {
    /// An HTTP proxy answered `CONNECT` with this status instead of 2xx: 407 when
    /// it wants credentials (or got wrong ones), 403 when its rules forbid the
    /// destination, 502 or 504 when it could not reach the server.
    Refused {
        /// The proxy's HTTP status.
        status: u16,
    },
    /// A SOCKS5 proxy answered the connect request with this reply code
    /// (RFC 1928 §6): 2 not allowed by its rules, 3 network unreachable, 4 host
    /// unreachable, 5 connection refused, ...
    SocksRefused {
        /// The reply code (never 0, which means success).
        reply: u8,
    },
    /// The SOCKS5 proxy accepted none of the authentication methods offered: it
    /// wants a username and password and the proxy URL has none, or the reverse.
    SocksNoAcceptableMethod,
    /// The SOCKS5 proxy rejected the username and password (RFC 1929).
    SocksAuthFailed,
    /// The proxy closed the connection before the tunnel was open.
    Closed,
    /// The proxy's answer broke its protocol.
    Invalid(&'static str),
}

impl ProxyError {
    /// The HTTP status an HTTP proxy refused the tunnel with, if that is the error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ProxyError::Refused { status } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::Refused { status } => write!(f, "proxy answered CONNECT with status {status}"),
            ProxyError::SocksRefused { reply } => {
                let meaning = match reply {
                    1 => "general failure",
                    2 => "connection not allowed by ruleset",
                    3 => "network unreachable",
                    4 => "host unreachable",
                    5 => "connection refused",
                    6 => "ttl expired",
                    7 => "command not supported",
                    8 => "address type not supported",
                    _ => "unassigned reply code",
                };
                write!(f, "socks5 proxy refused the connection: {meaning} ({reply})")
            }
            ProxyError::SocksNoAcceptableMethod => {
                f.write_str("socks5 proxy accepted none of the offered authentication methods")
            }
            ProxyError::SocksAuthFailed => f.write_str("socks5 proxy rejected the username and password"),
            ProxyError::Closed => f.write_str("proxy closed the connection before the tunnel was open"),
            ProxyError::Invalid(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for ProxyError {}

impl From<ProxyError> for Error {
    fn from(err: ProxyError) -> Error {
        Error::Handshake(HandshakeError::Proxy(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_a_control_frame_and_stay_utf8() {
        assert_eq!(short_reason("short".to_owned()), "short");
        // 62 two-byte characters are 124 bytes: the cut falls inside the last one.
        let cut = short_reason("é".repeat(62));
        assert_eq!(cut, "é".repeat(61));
        assert_eq!(short_reason("a".repeat(200)).len(), 123);
    }

    #[test]
    fn every_error_with_a_close_code_has_a_reason() {
        let errors = [
            Error::Protocol(ProtocolError::InvalidLength),
            Error::InvalidUtf8,
            Error::FrameTooLarge { len: 2, max: 1 },
            Error::MessageTooLarge { len: 2, max: 1 },
            Error::TooManyFragments { max: 1 },
            Error::PingFlood { unanswered: 1001 },
            Error::IdleTimeout,
            Error::KeepaliveTimeout,
        ];
        for error in errors {
            let close = error.close_frame().expect("a close frame");
            assert_eq!(Some(close.code), error.close_code());
            assert!(close.code.is_allowed_on_wire(), "{error}");
            assert!(!close.reason.is_empty() && close.reason.len() <= 123, "{error}");
        }
        assert!(Error::ConnectionClosed.close_frame().is_none());
        assert!(Error::CloseTimeout.close_frame().is_none());
    }
}
