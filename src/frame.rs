//! Frames, opcodes and close codes (RFC 6455 §5, §7.4): plain data, no I/O.

use bytes::{BufMut, Bytes, BytesMut};

/// The largest payload a control frame may carry (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The kind of a frame (RFC 6455 §5.2).
///
/// The reserved opcodes (0x3–0x7, 0xB–0xF) have no variant: decoding a frame that
/// uses one is a protocol error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// `0x0`: a later fragment of a fragmented message.
    Continuation,
    /// `0x1`: the first (or only) frame of a text message.
    Text,
    /// `0x2`: the first (or only) frame of a binary message.
    Binary,
    /// `0x8`: the close control frame.
    Close,
    /// `0x9`: the ping control frame.
    Ping,
    /// `0xA`: the pong control frame.
    Pong,
}

impl OpCode {
    /// Parses the four opcode bits; `None` for a reserved opcode.
    ///
    /// ```
    /// use fastws::OpCode;
    /// assert_eq!(OpCode::from_bits(0x9), Some(OpCode::Ping));
    /// assert_eq!(OpCode::from_bits(0x3), None);
    /// ```
    pub const fn from_bits(bits: u8) -> Option<OpCode> {
        match bits {
            0x0 => Some(OpCode::Continuation),
            0x1 => Some(OpCode::Text),
            0x2 => Some(OpCode::Binary),
            0x8 => Some(OpCode::Close),
            0x9 => Some(OpCode::Ping),
            0xA => Some(OpCode::Pong),
            _ => None,
        }
    }

    /// The four opcode bits as they appear on the wire.
    pub const fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Whether this is a control opcode (close, ping, pong).
    pub const fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }

    /// Whether this opcode starts or continues a data message.
    pub const fn is_data(self) -> bool {
        !self.is_control()
    }
}

/// A close status code (RFC 6455 §7.4).
///
/// `From<u16>` maps every registered number to its named variant, so
/// `CloseCode::from(1002) == CloseCode::Protocol`; construct [`CloseCode::Registered`],
/// [`CloseCode::Private`] and [`CloseCode::Reserved`] through `From<u16>` too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    Normal,
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    Away,
    /// 1002: the peer violated the protocol.
    Protocol,
    /// 1003: the endpoint received a type of data it cannot accept.
    Unsupported,
    /// 1005: no status code was present. Never sent on the wire.
    NoStatus,
    /// 1006: the connection closed without a close frame. Never sent on the wire.
    Abnormal,
    /// 1007: a message's data was inconsistent with its type (e.g. invalid UTF-8).
    Invalid,
    /// 1008: a message violated the endpoint's policy.
    Policy,
    /// 1009: a message was too big to process.
    Size,
    /// 1010: the client expected the server to negotiate an extension.
    Extension,
    /// 1011: the server hit an unexpected condition.
    Error,
    /// 1012: the service is restarting.
    Restart,
    /// 1013: try again later.
    Again,
    /// 1014: a gateway received an invalid response.
    BadGateway,
    /// 1015: the TLS handshake failed. Never sent on the wire.
    Tls,
    /// 3000–3999: registered with IANA by libraries, frameworks and applications.
    /// (tokio-tungstenite calls this range `Iana`; its `Library` is our [`Private`](CloseCode::Private).)
    #[doc(alias = "Iana")]
    Registered(u16),
    /// 4000–4999: for private use between applications, never registered.
    #[doc(alias = "Library")]
    Private(u16),
    /// Any other number: reserved or invalid, never valid on the wire.
    Reserved(u16),
}

impl CloseCode {
    /// The numeric code.
    pub const fn as_u16(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::Away => 1001,
            CloseCode::Protocol => 1002,
            CloseCode::Unsupported => 1003,
            CloseCode::NoStatus => 1005,
            CloseCode::Abnormal => 1006,
            CloseCode::Invalid => 1007,
            CloseCode::Policy => 1008,
            CloseCode::Size => 1009,
            CloseCode::Extension => 1010,
            CloseCode::Error => 1011,
            CloseCode::Restart => 1012,
            CloseCode::Again => 1013,
            CloseCode::BadGateway => 1014,
            CloseCode::Tls => 1015,
            CloseCode::Registered(code) | CloseCode::Private(code) | CloseCode::Reserved(code) => code,
        }
    }

    /// Whether this code may appear in a close frame on the wire (RFC 6455 §7.4.1,
    /// §7.4.2 and the IANA registry): 1000–1003, 1007–1014 and 3000–4999.
    ///
    /// ```
    /// use fastws::CloseCode;
    /// assert!(CloseCode::Normal.is_allowed_on_wire());
    /// assert!(!CloseCode::NoStatus.is_allowed_on_wire());
    /// assert!(!CloseCode::from(2999).is_allowed_on_wire());
    /// ```
    pub const fn is_allowed_on_wire(self) -> bool {
        match self {
            CloseCode::NoStatus | CloseCode::Abnormal | CloseCode::Tls => false,
            CloseCode::Registered(code) => code >= 3000 && code <= 3999,
            CloseCode::Private(code) => code >= 4000 && code <= 4999,
            CloseCode::Reserved(_) => false,
            _ => true,
        }
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> CloseCode {
        match code {
            1000 => CloseCode::Normal,
            1001 => CloseCode::Away,
            1002 => CloseCode::Protocol,
            1003 => CloseCode::Unsupported,
            1005 => CloseCode::NoStatus,
            1006 => CloseCode::Abnormal,
            1007 => CloseCode::Invalid,
            1008 => CloseCode::Policy,
            1009 => CloseCode::Size,
            1010 => CloseCode::Extension,
            1011 => CloseCode::Error,
            1012 => CloseCode::Restart,
            1013 => CloseCode::Again,
            1014 => CloseCode::BadGateway,
            1015 => CloseCode::Tls,
            3000..=3999 => CloseCode::Registered(code),
            4000..=4999 => CloseCode::Private(code),
            _ => CloseCode::Reserved(code),
        }
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.as_u16()
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.as_u16())
    }
}

/// One WebSocket frame (RFC 6455 §5.2), its payload always unmasked.
///
/// Build frames with the constructors ([`Frame::text`], [`Frame::close`], …) and adjust
/// the header bits with [`Frame::with_fin`] and [`Frame::with_rsv`] for low-level
/// crafting. Payloads are [`Bytes`]: cloning a frame never copies its payload.
///
/// ```
/// use fastws::{Frame, OpCode};
/// let first = Frame::text("Hel").with_fin(false);
/// let last = Frame::continuation("lo");
/// assert_eq!(first.opcode(), OpCode::Text);
/// assert!(!first.is_fin() && last.is_fin());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    fin: bool,
    rsv: u8,
    opcode: OpCode,
    payload: Bytes,
}

impl Frame {
    /// A final frame with the given opcode and payload, RSV bits clear.
    pub fn new(opcode: OpCode, payload: impl Into<Bytes>) -> Frame {
        Frame {
            fin: true,
            rsv: 0,
            opcode,
            payload: payload.into(),
        }
    }

    /// A text frame. The payload is not validated here: the message layer checks
    /// UTF-8 across all fragments of a message.
    pub fn text(payload: impl Into<Bytes>) -> Frame {
        Frame::new(OpCode::Text, payload)
    }

    /// A binary frame.
    pub fn binary(payload: impl Into<Bytes>) -> Frame {
        Frame::new(OpCode::Binary, payload)
    }

    /// A continuation frame; clear FIN with [`Frame::with_fin`] for a middle fragment.
    pub fn continuation(payload: impl Into<Bytes>) -> Frame {
        Frame::new(OpCode::Continuation, payload)
    }

    /// A ping frame. RFC 6455 §5.5 limits control payloads to 125 bytes; the encoder
    /// refuses longer ones.
    pub fn ping(payload: impl Into<Bytes>) -> Frame {
        Frame::new(OpCode::Ping, payload)
    }

    /// A pong frame (usually echoing a ping's payload).
    pub fn pong(payload: impl Into<Bytes>) -> Frame {
        Frame::new(OpCode::Pong, payload)
    }

    /// A close frame carrying `code` and a UTF-8 `reason` (RFC 6455 §5.5.1).
    ///
    /// ```
    /// use fastws::{CloseCode, Frame};
    /// let frame = Frame::close(CloseCode::Normal, "bye");
    /// assert_eq!(&frame.payload()[..], b"\x03\xe8bye");
    /// ```
    pub fn close(code: CloseCode, reason: &str) -> Frame {
        let mut payload = BytesMut::with_capacity(2 + reason.len());
        payload.put_u16(code.as_u16());
        payload.put_slice(reason.as_bytes());
        Frame::new(OpCode::Close, payload.freeze())
    }

    /// A close frame without a status code (an empty payload).
    pub fn close_empty() -> Frame {
        Frame::new(OpCode::Close, Bytes::new())
    }

    /// Returns the frame with its FIN bit set to `fin`.
    pub fn with_fin(mut self, fin: bool) -> Frame {
        self.fin = fin;
        self
    }

    /// Returns the frame with its RSV bits set to `rsv` (bit 2 = RSV1, bit 1 = RSV2,
    /// bit 0 = RSV3; higher bits are ignored).
    ///
    /// ```
    /// use fastws::Frame;
    /// let frame = Frame::text("x").with_rsv(0b100);
    /// assert!(frame.rsv1() && !frame.rsv2() && !frame.rsv3());
    /// ```
    pub fn with_rsv(mut self, rsv: u8) -> Frame {
        self.rsv = rsv & 0b111;
        self
    }

    /// Whether this is the final fragment of its message.
    pub fn is_fin(&self) -> bool {
        self.fin
    }

    /// The three RSV bits (bit 2 = RSV1, bit 1 = RSV2, bit 0 = RSV3).
    pub fn rsv(&self) -> u8 {
        self.rsv
    }

    /// RSV1, used by permessage-deflate to mark a compressed message.
    pub fn rsv1(&self) -> bool {
        self.rsv & 0b100 != 0
    }

    /// RSV2.
    pub fn rsv2(&self) -> bool {
        self.rsv & 0b010 != 0
    }

    /// RSV3.
    pub fn rsv3(&self) -> bool {
        self.rsv & 0b001 != 0
    }

    /// The frame's opcode.
    pub fn opcode(&self) -> OpCode {
        self.opcode
    }

    /// The unmasked payload.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Takes the payload out of the frame.
    pub fn into_payload(self) -> Bytes {
        self.payload
    }

    /// The bits of the first header byte: FIN, RSV1–3 and the opcode.
    pub(crate) fn first_byte(&self) -> u8 {
        (u8::from(self.fin) << 7) | (self.rsv << 4) | self.opcode.bits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcode_bits_round_trip_and_reserved_are_rejected() {
        for bits in 0u8..16 {
            match OpCode::from_bits(bits) {
                Some(op) => assert_eq!(op.bits(), bits),
                None => assert!(matches!(bits, 0x3..=0x7 | 0xB..=0xF)),
            }
        }
    }

    #[test]
    fn close_codes_round_trip_through_u16() {
        for code in 0..=u16::MAX {
            assert_eq!(CloseCode::from(code).as_u16(), code);
        }
    }

    #[test]
    fn wire_validity_matches_rfc_ranges() {
        let allowed: Vec<u16> = (0..=u16::MAX)
            .filter(|&c| CloseCode::from(c).is_allowed_on_wire())
            .collect();
        let expected: Vec<u16> = (1000..=1003).chain(1007..=1014).chain(3000..=4999).collect();
        assert_eq!(allowed, expected);
    }

    #[test]
    fn first_byte_packs_fin_rsv_and_opcode() {
        assert_eq!(Frame::text("").first_byte(), 0x81);
        assert_eq!(Frame::binary("").with_fin(false).first_byte(), 0x02);
        assert_eq!(Frame::text("").with_rsv(0b100).first_byte(), 0xC1);
        assert_eq!(Frame::ping("").with_rsv(0xFF).first_byte(), 0xF9);
    }
}
