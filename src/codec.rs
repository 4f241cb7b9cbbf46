//! `WsCodec`: the frame codec (RFC 6455 §5) as a tokio-util `Decoder` / `Encoder<Frame>`.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::{Error, ProtocolError};
use crate::frame::{Frame, MAX_CONTROL_PAYLOAD, OpCode};
use crate::mask::apply_mask;

/// The default limit on one frame's payload: 16 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 << 20;

/// The longest frame header: 2 bytes, an 8-byte length and a 4-byte mask key.
pub const MAX_HEADER_LEN: usize = 14;

/// The least free space the decoder leaves in the read buffer before the next
/// read, so one read system call brings in many small frames.
const MIN_READ_SPACE: usize = 4096;

/// The most free space the decoder asks for between frames: pipelined traffic
/// that fills smaller reads gets up to this much per read system call.
const MAX_READ_SPACE: usize = 64 * 1024;

/// How far past the received bytes the decoder reserves for an incomplete frame:
/// frames up to this size (header included) are read into one allocation, made
/// when the header arrives; larger ones grow the buffer by doubling as their bytes
/// arrive, so a header alone never commits more than this much memory.
const RESERVE_AHEAD: usize = (1 << 20) + MAX_HEADER_LEN;

/// Frames at least this long get room for several of them when the buffer is
/// grown or reclaimed (see [`WsCodec::reserve_for_read`]).
const LARGE_FRAME: usize = 16 * 1024;

/// How many large frames' worth of room such a reservation leaves.
const LARGE_FRAME_HEADROOM: usize = 4;

/// Whether a buffer grown for a large frame of `frame_len` bytes (header
/// included) holds several such frames: [`LARGE_FRAME_HEADROOM`] of them within
/// [`RESERVE_AHEAD`].
fn several_fit(frame_len: usize) -> bool {
    frame_len.saturating_mul(LARGE_FRAME_HEADROOM) <= RESERVE_AHEAD
}

/// Which end of the connection this codec serves. It decides masking (RFC 6455 §5.1):
/// a client masks every frame it sends and refuses masked frames; a server never
/// masks and refuses unmasked frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The end that accepted the connection.
    Server,
    /// The end that opened the connection.
    Client,
}

/// The WebSocket frame codec: decodes [`Frame`]s from bytes and encodes them back.
///
/// Decoding is incremental (a frame split across reads at any byte decodes the
/// same), zero-copy (the payload is split out of the read buffer and unmasked in
/// place) and validates every header rule of RFC 6455 §5 before buffering a payload.
///
/// ```
/// use bytes::BytesMut;
/// use fastws::{Frame, WsCodec};
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut client = WsCodec::client();
/// let mut server = WsCodec::server().max_frame_size(1 << 20);
/// let mut wire = BytesMut::new();
/// client.encode(Frame::text("Hello"), &mut wire)?;
/// assert_eq!(server.decode(&mut wire)?, Some(Frame::text("Hello")));
/// # Ok::<(), fastws::Error>(())
/// ```
///
/// Over a socket, wrap it in a `Framed`:
///
/// ```no_run
/// use fastws::WsCodec;
/// use futures_util::{SinkExt, StreamExt};
/// use tokio_util::codec::Framed;
///
/// # async fn run(tcp: tokio::net::TcpStream) -> Result<(), fastws::Error> {
/// let mut frames = Framed::new(tcp, WsCodec::server());
/// while let Some(frame) = frames.next().await {
///     frames.send(frame?).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct WsCodec {
    role: Role,
    max_frame_size: usize,
    /// RSV bits a negotiated extension allows on the first frame of a data message.
    allowed_rsv: u8,
    /// The validated header of a frame whose payload has not fully arrived.
    pending: Option<Header>,
    /// How much free space to leave for the next read.
    read_space: ReadSpace,
}

/// Adapts the free space left for each read to the traffic: a read that brought in
/// as much as was offered doubles the offer (up to [`MAX_READ_SPACE`]), one that
/// brought in under a quarter halves it (down to [`MIN_READ_SPACE`]). A burst of
/// pipelined frames then arrives in one system call, while a quiet connection keeps
/// a small buffer.
#[derive(Debug, Clone, Copy)]
struct ReadSpace {
    /// The free space the next read gets.
    offer: usize,
    /// Bytes decoded since the decoder last asked for more.
    decoded: usize,
    /// The most one read of a large frame takes (see [`WsCodec::note_large_read`]).
    large_read: usize,
}

impl ReadSpace {
    const fn new() -> ReadSpace {
        ReadSpace {
            offer: MIN_READ_SPACE,
            decoded: 0,
            large_read: MAX_READ_SPACE,
        }
    }

    /// Called when the decoder needs more bytes, `leftover` of them already
    /// buffered: adapts the offer to what the last read brought, and returns it.
    fn next_offer(&mut self, leftover: usize) -> usize {
        let arrived = std::mem::take(&mut self.decoded) + leftover;
        if arrived >= self.offer {
            self.offer = (self.offer * 2).min(MAX_READ_SPACE);
        } else if arrived < self.offer / 4 {
            self.offer = (self.offer / 2).max(MIN_READ_SPACE);
        }
        self.offer
    }
}

/// A parsed and validated frame header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    first_byte: u8,
    pub(crate) opcode: OpCode,
    mask: Option<[u8; 4]>,
    header_len: usize,
    payload_len: usize,
    /// How much of the payload is already unmasked in place (see [`WsCodec::peek_partial`]).
    unmasked: usize,
}

impl WsCodec {
    /// A codec for the server end: expects masked frames, sends unmasked ones.
    pub fn server() -> WsCodec {
        WsCodec::new(Role::Server)
    }

    /// A codec for the client end: expects unmasked frames, masks what it sends.
    pub fn client() -> WsCodec {
        WsCodec::new(Role::Client)
    }

    /// A codec for `role` with the default limits.
    pub fn new(role: Role) -> WsCodec {
        WsCodec {
            role,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            allowed_rsv: 0,
            pending: None,
            read_space: ReadSpace::new(),
        }
    }

    /// Sets the largest frame payload the decoder accepts; a larger frame is refused
    /// as soon as its header is read ([`Error::FrameTooLarge`], close 1009).
    pub fn max_frame_size(mut self, max: usize) -> WsCodec {
        self.max_frame_size = max;
        self
    }

    /// Sets the RSV bits an extension allows on the first frame of a data message
    /// (bit 2 = RSV1, as permessage-deflate uses). Control and continuation frames
    /// must still have all RSV bits clear.
    pub fn allowed_rsv(mut self, rsv: u8) -> WsCodec {
        self.allowed_rsv = rsv & 0b111;
        self
    }

    /// The role this codec serves.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configured maximum frame payload.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_size
    }

    /// Parses and validates the header at the start of `src`, without consuming it.
    /// `Ok(None)` means more bytes are needed.
    #[inline]
    fn parse_header(&self, src: &[u8]) -> Result<Option<Header>, Error> {
        let [first_byte, second_byte, ..] = *src else {
            return Ok(None);
        };
        let fin = first_byte & 0x80 != 0;
        let rsv = (first_byte >> 4) & 0b111;
        let opcode =
            OpCode::from_bits(first_byte & 0x0F).ok_or(ProtocolError::ReservedOpCode(first_byte & 0x0F))?;
        let allowed_rsv = match opcode {
            OpCode::Text | OpCode::Binary => self.allowed_rsv,
            _ => 0,
        };
        if rsv & !allowed_rsv != 0 {
            return Err(ProtocolError::ReservedBits(rsv).into());
        }
        let masked = second_byte & 0x80 != 0;
        match (self.role, masked) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame.into()),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame.into()),
            _ => {}
        }

        let (payload_len, mut header_len) = match second_byte & 0x7F {
            126 => match src.get(2..4) {
                Some(bytes) => (u64::from(u16::from_be_bytes([bytes[0], bytes[1]])), 4),
                None => return Ok(None),
            },
            127 => match src.get(2..10) {
                Some(bytes) => {
                    let len = u64::from_be_bytes(bytes.try_into().expect("8 bytes"));
                    // RFC 6455 §5.2: the most significant bit must be 0.
                    if len >> 63 != 0 {
                        return Err(ProtocolError::InvalidLength.into());
                    }
                    (len, 10)
                }
                None => return Ok(None),
            },
            len => (u64::from(len), 2),
        };

        // RFC 6455 §5.5: control frames are short and never fragmented.
        if opcode.is_control() {
            if payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlFrameTooLong(payload_len).into());
            }
            if !fin {
                return Err(ProtocolError::FragmentedControlFrame.into());
            }
        }
        if payload_len > self.frame_limit(opcode) as u64 {
            return Err(Error::FrameTooLarge {
                len: payload_len,
                max: self.max_frame_size,
            });
        }

        let mask = if masked {
            let Some(key) = src.get(header_len..header_len + 4) else {
                return Ok(None);
            };
            header_len += 4;
            Some(key.try_into().expect("4 bytes"))
        } else {
            None
        };

        Ok(Some(Header {
            first_byte,
            opcode,
            mask,
            header_len,
            // Fits: payload_len <= frame_limit(), a usize.
            payload_len: payload_len as usize,
            unmasked: 0,
        }))
    }
}

impl WsCodec {
    /// The largest payload a frame of `opcode` may declare. Where RSV1 is allowed
    /// (permessage-deflate, RFC 7692), a data frame may carry compressed bytes, and
    /// deflate makes incompressible data slightly longer: such frames get zlib's
    /// worst-case expansion on top (`deflateBound` for a raw stream, about 0.03 %),
    /// so a limit means the same for a compressed message as for a plain one. The
    /// inflated size is bounded by the message limit.
    #[inline]
    fn frame_limit(&self, opcode: OpCode) -> usize {
        let max = self.max_frame_size;
        if opcode.is_data() && self.allowed_rsv & 0b100 != 0 {
            max.saturating_add((max >> 12) + (max >> 14) + (max >> 25) + 16)
        } else {
            max
        }
    }

    /// The free space the decoder currently leaves for each read.
    pub(crate) fn read_space(&self) -> usize {
        self.read_space.offer
    }

    /// The header of the frame still incomplete in the read buffer, if any.
    pub(crate) fn pending_mut(&mut self) -> Option<&mut Header> {
        self.pending.as_mut()
    }
}

impl Header {
    /// The whole frame's length, header included.
    fn frame_len(&self) -> usize {
        self.header_len.saturating_add(self.payload_len)
    }

    /// Whether RSV1 is set: the frame starts a compressed message.
    pub(crate) fn rsv1(&self) -> bool {
        self.first_byte & 0x40 != 0
    }

    /// The payload of this (incomplete) frame that has arrived in `src` so far,
    /// unmasked in place.
    ///
    /// This lets the message layer validate a text frame while it arrives (Autobahn
    /// 6.4.3 and 6.4.4 expect a failure before the frame completes). Bytes are
    /// unmasked once: the decoder later skips what this already unmasked.
    pub(crate) fn unmask_arrived<'a>(&mut self, src: &'a mut BytesMut) -> &'a [u8] {
        let start = self.header_len;
        let available = src.len().saturating_sub(start).min(self.payload_len);
        if let Some(key) = self.mask
            && available > self.unmasked
        {
            apply_mask(
                &mut src[start + self.unmasked..start + available],
                key,
                self.unmasked,
            );
            self.unmasked = available;
        }
        &src[start..start + available]
    }
}

impl Default for WsCodec {
    /// A server codec.
    fn default() -> WsCodec {
        WsCodec::server()
    }
}

impl Decoder for WsCodec {
    type Item = Frame;
    type Error = Error;

    /// Decodes the next frame; when `src` holds no whole frame, reserves room for
    /// the next read: the adaptive read space, or room for the rest of a frame
    /// that is arriving (never more than the larger of 1 MiB and what has
    /// already arrived).
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Error> {
        let frame = self.decode_frame(src)?;
        if frame.is_none() {
            self.reserve_for_read(src);
        }
        Ok(frame)
    }
}

impl WsCodec {
    /// Decodes the next frame without reserving anything: `Ok(None)` means `src`
    /// holds no whole frame yet (a complete header is remembered, so it is parsed
    /// and validated once).
    ///
    /// The transport layer calls this, then reserves only when it is about to read,
    /// after writing out payloads that still share the read buffer: a reservation
    /// while they do would allocate a new buffer.
    #[inline]
    pub(crate) fn decode_frame(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Error> {
        let header = match self.pending {
            Some(header) => header,
            None => match self.parse_header(src)? {
                Some(header) => header,
                None => return Ok(None),
            },
        };
        let frame_len = header.header_len.saturating_add(header.payload_len);
        if src.len() < frame_len {
            self.pending = Some(header);
            return Ok(None);
        }
        self.pending = None;
        let payload = self.take_payload(src, header.header_len, frame_len, header.mask, header.unmasked);
        Ok(Some(
            Frame::new(header.opcode, payload)
                .with_fin(header.first_byte & 0x80 != 0)
                .with_rsv(header.first_byte >> 4),
        ))
    }

    /// Decodes the next frame if it is a whole message in the commonest form, and
    /// leaves `src` untouched otherwise: an unfragmented text or binary frame
    /// without RSV bits, masked as this role expects, within `max_frame_size` and
    /// wholly buffered. Anything else (another kind of frame, an invalid one, one
    /// still arriving, or a header already pending) is `None`, for
    /// [`WsCodec::decode_frame`] to handle and to reject. (With deflate,
    /// `decode_frame` allows data frames zlib's expansion past `max_frame_size`: a
    /// plain frame in that margin takes that long way.)
    ///
    /// The message layer's fast lane: per message it skips the general header
    /// parse, the `Frame` and the assembler.
    #[inline]
    pub(crate) fn decode_whole_message(&mut self, src: &mut BytesMut) -> Option<(OpCode, Bytes)> {
        if self.pending.is_some() {
            return None;
        }
        let opcode = match *src.first()? {
            0x81 => OpCode::Text,
            0x82 => OpCode::Binary,
            _ => return None,
        };
        let second_byte = *src.get(1)?;
        let masked = second_byte & 0x80 != 0;
        if masked != (self.role == Role::Server) {
            return None;
        }
        let (payload_len, length_end) = match second_byte & 0x7F {
            126 => (usize::from(u16::from_be_bytes([*src.get(2)?, *src.get(3)?])), 4),
            // A length with the top bit set (RFC 6455 §5.2 forbids it) is never
            // wholly buffered, and one past `usize` (32-bit targets) fails the
            // conversion: both fall through to `decode_frame`, which rejects them.
            127 => (
                usize::try_from(u64::from_be_bytes(src.get(2..10)?.try_into().expect("8 bytes"))).ok()?,
                10,
            ),
            len => (usize::from(len), 2),
        };
        let (header_len, mask) = if masked {
            let key = src.get(length_end..length_end + 4)?;
            (length_end + 4, Some(key.try_into().expect("4 bytes")))
        } else {
            (length_end, None)
        };
        let frame_len = header_len.saturating_add(payload_len);
        if src.len() < frame_len || payload_len > self.max_frame_size {
            return None;
        }
        Some((opcode, self.take_payload(src, header_len, frame_len, mask, 0)))
    }

    /// Splits a whole frame of `frame_len` bytes off `src` and returns its payload,
    /// unmasked from byte `unmasked` on (the bytes before it were unmasked as they
    /// arrived).
    #[inline]
    fn take_payload(
        &mut self,
        src: &mut BytesMut,
        header_len: usize,
        frame_len: usize,
        mask: Option<[u8; 4]>,
        unmasked: usize,
    ) -> Bytes {
        self.read_space.decoded += frame_len;
        // One split of the read buffer per frame, header included: the header is
        // then skipped on the frozen `Bytes`, which is cheaper than advancing a
        // `BytesMut` a second time.
        let mut frame = src.split_to(frame_len);
        if let Some(key) = mask {
            apply_mask(&mut frame[header_len + unmasked..], key, unmasked);
        }
        let mut payload = frame.freeze();
        payload.advance(header_len);
        payload
    }

    /// Whether the frame arriving is too large for a buffer to hold several of
    /// it (over about 256 KiB): its reads are the largest, up to 1 MiB each.
    #[inline]
    pub(crate) fn frame_outgrows_buffer(&self) -> bool {
        self.pending
            .is_some_and(|header| !several_fit(header.frame_len()))
    }

    /// The most the next read into `src` should take while a large frame is
    /// arriving: the adaptive large read (see [`WsCodec::note_large_read`]), and
    /// no further than the header after the last frame of this one's length that
    /// fits in the room (for a frame too large for several per buffer: its end
    /// and the next header). `None` (all the room there is) otherwise.
    ///
    /// A read that runs into a frame the room cannot finish leaves that frame's
    /// start to be moved when the buffer is reclaimed or grown. Measured: a
    /// 1 MiB echo took 109 instructions per KiB reading past frames, 80 ending
    /// at them, and a client receiving 64 KiB messages in 64 KiB reads moved 7 %
    /// of its bytes a second time (117 instructions per KiB, 113 with reads
    /// ending at frames). The frames after this one are not known yet: a
    /// slightly longer one is finished by one more small read, a much longer
    /// one moved as before.
    #[inline]
    pub(crate) fn read_limit(&self, src: &BytesMut) -> Option<usize> {
        let frame_len = self.pending?.frame_len();
        if frame_len < LARGE_FRAME {
            return None;
        }
        // Pending, so incomplete; and never zero, which would read as the end of
        // the input.
        let to_next_header = frame_len
            .saturating_sub(src.len())
            .max(1)
            .saturating_add(MAX_HEADER_LEN);
        let limit = if several_fit(frame_len) {
            let room = src.capacity() - src.len();
            let more_frames = room.saturating_sub(to_next_header) / frame_len;
            to_next_header + more_frames * frame_len
        } else {
            to_next_header
        };
        Some(limit.min(self.read_space.large_read))
    }

    /// Adapts the large read to a read limited by [`WsCodec::read_limit`] that
    /// asked for `asked` bytes and got `read`.
    ///
    /// A read that fills less than it was offered tells tokio the socket is
    /// drained, and the connection waits for readiness before it reads again. A
    /// reader that keeps up with its peer and asks for a whole large frame mostly
    /// gets less, and then waits several times per frame (measured, a client
    /// receiving 1 MiB messages: 5.8 waits per message, against 0.8 asking for
    /// 64 KiB at a time). So a short read halves the large read, down to
    /// [`MAX_READ_SPACE`], and a full one doubles it, up to [`RESERVE_AHEAD`]:
    /// reads settle near what the socket holds when they are made, full while the
    /// bytes keep coming, and few when they are queued anyway. A read that lacks
    /// only the next frame's header is full.
    pub(crate) fn note_large_read(&mut self, asked: usize, read: usize) {
        let large = &mut self.read_space.large_read;
        if read + MAX_HEADER_LEN < asked {
            *large = (*large / 2).max(MAX_READ_SPACE);
        } else if asked >= *large {
            // A full read that asked for less (the rest of a frame) says nothing
            // about whether more would have come.
            *large = (*large * 2).min(RESERVE_AHEAD);
        }
    }

    /// Reserves room in `src` for the next read, after [`WsCodec::decode_frame`]
    /// found no whole frame: the adaptive read space (see `ReadSpace`), or, while a
    /// frame is arriving, room for the rest of it.
    ///
    /// The whole frame is reserved at once, so a large payload is read without
    /// repeated reallocation, but never more than twice what has arrived beyond
    /// `RESERVE_AHEAD`: a 14-byte header must not make us allocate the declared (up
    /// to `max_frame_size`) bytes before the peer sends them. A large frame whose
    /// rest fits in the room already there reserves nothing.
    pub(crate) fn reserve_for_read(&mut self, src: &mut BytesMut) {
        let offer = self.read_space.next_offer(src.len());
        match self.pending {
            Some(header) => {
                let frame_len = header.frame_len();
                let missing = frame_len.saturating_sub(src.len());
                let room = src.capacity() - src.len();
                let mut wanted = missing.max(offer);
                if frame_len >= LARGE_FRAME {
                    if several_fit(frame_len) && room >= missing {
                        // The rest fits where the frame is: reserving could only
                        // move what has arrived.
                        return;
                    }
                    if room < wanted {
                        // Growing or moving anyway: leave room for the frames
                        // after this one too.
                        wanted = wanted.max(frame_len.saturating_mul(LARGE_FRAME_HEADROOM));
                    }
                }
                src.reserve(wanted.min(src.len().max(RESERVE_AHEAD)));
            }
            None => src.reserve(offer),
        }
    }
}

impl Encoder<Frame> for WsCodec {
    type Error = Error;

    /// Writes the header in its shortest length form, then the payload; a client
    /// masks it with a fresh key from a cryptographically secure generator.
    ///
    /// # Errors
    ///
    /// A control frame with a payload over 125 bytes is refused with
    /// [`Error::ControlPayloadTooLong`], one with FIN clear with [`Error::Protocol`]:
    /// RFC 6455 §5.5 forbids sending either.
    #[inline]
    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), Error> {
        let payload = frame.payload();
        if frame.opcode().is_control() {
            if payload.len() > MAX_CONTROL_PAYLOAD {
                return Err(Error::ControlPayloadTooLong { len: payload.len() });
            }
            if !frame.is_fin() {
                return Err(ProtocolError::FragmentedControlFrame.into());
            }
        }
        let mask = match self.role {
            Role::Client => Some(rand::random::<[u8; 4]>()),
            Role::Server => None,
        };
        dst.reserve(MAX_HEADER_LEN + payload.len());
        put_header(dst, frame.first_byte(), payload.len(), mask);
        let start = dst.len();
        dst.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut dst[start..], key, 0);
        }
        Ok(())
    }
}

/// Writes a frame header: `first_byte` (FIN, RSV, opcode), the payload length in its
/// shortest form, and the mask key if any.
#[inline(always)]
pub(crate) fn put_header(dst: &mut BytesMut, first_byte: u8, len: usize, mask: Option<[u8; 4]>) {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    // One write per length form: each `put_*` checks the capacity again.
    if len < 126 {
        dst.put_u16(u16::from_be_bytes([first_byte, mask_bit | len as u8]));
    } else if len <= usize::from(u16::MAX) {
        let [high, low] = (len as u16).to_be_bytes();
        dst.put_u32(u32::from_be_bytes([first_byte, mask_bit | 126, high, low]));
    } else {
        dst.put_u16(u16::from_be_bytes([first_byte, mask_bit | 127]));
        dst.put_u64(len as u64);
    }
    if let Some(key) = mask {
        dst.put_slice(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_space_doubles_while_reads_fill_it_and_halves_when_they_do_not() {
        let mut space = ReadSpace::new();
        assert_eq!(
            space.next_offer(0),
            MIN_READ_SPACE,
            "an empty read keeps the minimum"
        );
        let mut offers = Vec::new();
        for _ in 0..6 {
            // Pipelined traffic: every read fills what was offered.
            space.decoded = space.offer;
            offers.push(space.next_offer(0));
        }
        assert_eq!(offers, [8192, 16384, 32768, 65536, 65536, 65536]);
        // A read of a quarter or more keeps the offer; less halves it.
        space.decoded = MAX_READ_SPACE / 4;
        assert_eq!(space.next_offer(0), MAX_READ_SPACE);
        space.decoded = 100;
        assert_eq!(space.next_offer(20), MAX_READ_SPACE / 2);
        for _ in 0..10 {
            space.next_offer(0);
        }
        assert_eq!(space.offer, MIN_READ_SPACE);
    }

    #[test]
    fn a_burst_that_filled_the_buffer_leaves_more_room_for_the_next_read() {
        let mut sender = WsCodec::client();
        let mut receiver = WsCodec::server();
        let mut buf = BytesMut::new();
        assert_eq!(receiver.decode(&mut buf).unwrap(), None);
        let first = buf.capacity();
        assert!(first >= MIN_READ_SPACE);
        // A read that filled the offered space with 1 KiB frames.
        let mut wire = BytesMut::new();
        while wire.len() < first {
            sender.encode(Frame::binary(vec![7; 1024]), &mut wire).unwrap();
        }
        buf.extend_from_slice(&wire[..first]);
        while receiver.decode(&mut buf).unwrap().is_some() {}
        assert!(
            buf.capacity() - buf.len() >= 2 * MIN_READ_SPACE,
            "spare {} after a full read",
            buf.capacity() - buf.len()
        );
    }

    /// A server codec with the first `arrived` bytes of a masked binary frame of
    /// `payload_len` bytes decoded so far.
    fn arriving(payload_len: usize, arrived: usize) -> (WsCodec, BytesMut) {
        let mut wire = BytesMut::new();
        WsCodec::client()
            .encode(Frame::binary(vec![3; payload_len]), &mut wire)
            .unwrap();
        let mut codec = WsCodec::server();
        let mut buf = BytesMut::from(&wire[..arrived]);
        assert!(codec.decode_frame(&mut buf).unwrap().is_none());
        (codec, buf)
    }

    #[test]
    fn reads_of_small_frames_and_between_frames_are_not_limited() {
        let (codec, buf) = arriving(LARGE_FRAME / 2, 100);
        assert_eq!(codec.read_limit(&buf), None);
        let mut between = WsCodec::server();
        assert!(between.decode_frame(&mut BytesMut::new()).unwrap().is_none());
        assert_eq!(between.read_limit(&BytesMut::new()), None);
    }

    #[test]
    fn the_large_read_halves_after_a_short_read_and_doubles_after_a_full_one() {
        let (mut codec, buf) = arriving(8 << 20, 1000);
        assert_eq!(codec.read_limit(&buf), Some(MAX_READ_SPACE), "starts small");
        let mut limits = Vec::new();
        for _ in 0..6 {
            let asked = codec.read_limit(&buf).unwrap();
            codec.note_large_read(asked, asked);
            limits.push(codec.read_limit(&buf).unwrap());
        }
        assert_eq!(
            limits,
            [
                128 << 10,
                256 << 10,
                512 << 10,
                1 << 20,
                RESERVE_AHEAD,
                RESERVE_AHEAD
            ]
        );
        // Short: the socket held less than asked, and the reader waits.
        codec.note_large_read(RESERVE_AHEAD, 1000);
        assert_eq!(codec.read_limit(&buf), Some(RESERVE_AHEAD / 2));
        for _ in 0..20 {
            codec.note_large_read(codec.read_limit(&buf).unwrap(), 0);
        }
        assert_eq!(codec.read_limit(&buf), Some(MAX_READ_SPACE), "never below 64 KiB");
    }

    #[test]
    fn a_frame_too_large_for_several_in_a_buffer_is_read_up_to_its_end_and_the_next_header() {
        let payload_len = 1 << 20;
        let (mut codec, buf) = arriving(payload_len, 10_000);
        for _ in 0..8 {
            let asked = codec.read_limit(&buf).unwrap();
            codec.note_large_read(asked, asked);
        }
        let frame_len = payload_len + 14;
        assert_eq!(
            codec.read_limit(&buf),
            Some(frame_len - buf.len() + MAX_HEADER_LEN),
            "the read may not run into the frame after the next header"
        );
        // Getting all but the next header is a full read: the large read stays.
        codec.note_large_read(frame_len - buf.len() + MAX_HEADER_LEN, frame_len - buf.len());
        assert_eq!(
            codec.read_limit(&buf),
            Some(frame_len - buf.len() + MAX_HEADER_LEN)
        );
        // One byte missing: the limit is never zero, and never past the next header.
        let (codec, buf) = arriving(payload_len, frame_len - 1);
        assert_eq!(codec.read_limit(&buf), Some(1 + MAX_HEADER_LEN));
    }

    /// [`arriving`], with the buffer's capacity `room` bytes past what arrived.
    fn arriving_with_room(payload_len: usize, arrived: usize, room: usize) -> (WsCodec, BytesMut) {
        let (codec, arrived) = arriving(payload_len, arrived);
        let mut buf = BytesMut::with_capacity(arrived.len() + room);
        buf.extend_from_slice(&arrived);
        assert_eq!(buf.capacity() - buf.len(), room);
        (codec, buf)
    }

    #[test]
    fn a_read_ends_where_the_last_frame_of_this_length_that_fits_in_the_room_ends() {
        let payload_len = 64 << 10;
        let frame_len = payload_len + 14; // masked, with a 64-bit length
        let arrived = 1000;
        let to_next_header = frame_len - arrived + MAX_HEADER_LEN;
        let grown = |codec: &mut WsCodec, buf: &BytesMut| {
            for _ in 0..8 {
                codec.note_large_read(RESERVE_AHEAD, RESERVE_AHEAD);
            }
            codec.read_limit(buf)
        };
        // Room for the rest only: up to the next header.
        let (mut codec, buf) = arriving_with_room(payload_len, arrived, frame_len);
        assert_eq!(grown(&mut codec, &buf), Some(to_next_header));
        // Room for the rest and two more such frames, but not three.
        let room = to_next_header + 3 * frame_len - 1;
        let (mut codec, buf) = arriving_with_room(payload_len, arrived, room);
        assert_eq!(grown(&mut codec, &buf), Some(to_next_header + 2 * frame_len));
        // The large read, still at its start, is the smaller limit.
        let (codec, buf) = arriving_with_room(payload_len, arrived, room);
        assert_eq!(codec.read_limit(&buf), Some(MAX_READ_SPACE));
    }

    #[test]
    fn a_large_frame_whose_rest_fits_in_the_room_reserves_nothing() {
        let payload_len = 64 << 10;
        let frame_len = payload_len + 14;
        // The rest fits: the buffer is neither moved nor grown, though the room is
        // less than the read space would offer between frames.
        let (mut codec, mut buf) = arriving_with_room(payload_len, frame_len - 100, 100);
        assert!(codec.read_space.offer > 100);
        let (start, capacity) = (buf.as_ptr(), buf.capacity());
        codec.reserve_for_read(&mut buf);
        assert_eq!((buf.as_ptr(), buf.capacity()), (start, capacity));
    }

    /// `frame` on the wire as `sender` (the peer of `role`) encodes it.
    fn wire_to(role: Role, frame: Frame) -> BytesMut {
        let sender = match role {
            Role::Server => Role::Client,
            Role::Client => Role::Server,
        };
        let mut wire = BytesMut::new();
        WsCodec::new(sender).encode(frame, &mut wire).unwrap();
        wire
    }

    #[test]
    fn the_fast_lane_takes_whole_messages_as_decode_frame_does() {
        for role in [Role::Server, Role::Client] {
            for len in [0, 1, 125, 126, 1024, 65_535, 65_536, 200_000] {
                for frame in [Frame::binary(vec![0xA5; len]), Frame::text("é".repeat(len / 2))] {
                    // Two frames back to back, and the start of a third.
                    let mut wire = wire_to(role, frame.clone());
                    wire.extend_from_slice(&wire_to(role, frame.clone()));
                    wire.extend_from_slice(&[0x82]);
                    let mut fast = WsCodec::new(role);
                    let mut slow = WsCodec::new(role);
                    let mut slow_wire = wire.clone();
                    for _ in 0..2 {
                        let (opcode, payload) = fast.decode_whole_message(&mut wire).expect("taken");
                        let expected = slow.decode_frame(&mut slow_wire).unwrap().unwrap();
                        assert_eq!((opcode, &payload), (expected.opcode(), expected.payload()));
                        assert_eq!(wire, slow_wire, "{role:?} {len}: what is left");
                    }
                    assert_eq!(fast.decode_whole_message(&mut wire), None);
                    assert_eq!(fast.read_space.decoded, slow.read_space.decoded);
                }
            }
        }
    }

    #[test]
    fn the_fast_lane_leaves_every_other_frame_to_decode_frame_untouched() {
        let server = |frame: Frame| wire_to(Role::Server, frame);
        let mut compressed = server(Frame::binary("x"));
        compressed[0] |= 0x40;
        let mut unmasked = wire_to(Role::Client, Frame::binary("x"));
        let masked_to_client = server(Frame::binary("x"));
        let long = server(Frame::binary(vec![0; 65_536]));
        let mut top_bit = long.clone();
        top_bit[2] |= 0x80;
        let whole = server(Frame::binary(vec![1; 300]));
        let cases = [
            ("a fragment", server(Frame::binary("x").with_fin(false))),
            ("a continuation", server(Frame::continuation("x"))),
            ("a ping", server(Frame::ping("x"))),
            ("a close", server(Frame::close_empty())),
            ("RSV1", compressed),
            ("a 64-bit length with its top bit set", top_bit),
            ("half a 64-bit length", BytesMut::from(&long[..6])),
            (
                "a 64-bit length, its mask and half its payload",
                BytesMut::from(&long[..40_000]),
            ),
            ("one byte", BytesMut::from(&whole[..1])),
            ("half a length", BytesMut::from(&whole[..3])),
            ("half a mask", BytesMut::from(&whole[..6])),
            ("half a payload", BytesMut::from(&whole[..200])),
        ];
        for (what, mut wire) in cases {
            let before = wire.clone();
            let mut codec = WsCodec::server();
            assert_eq!(codec.decode_whole_message(&mut wire), None, "{what}");
            assert_eq!(wire, before, "{what}: untouched");
            assert_eq!(codec.read_space.decoded, 0, "{what}");
        }
        // Masking the role refuses: decode_frame rejects these.
        assert_eq!(WsCodec::server().decode_whole_message(&mut unmasked), None);
        assert_eq!(
            WsCodec::client().decode_whole_message(&mut masked_to_client.clone()),
            None
        );
        // Over the frame limit: decode_frame rejects it (or, with deflate, allows
        // zlib's expansion).
        let mut limited = WsCodec::server().max_frame_size(299);
        assert_eq!(limited.decode_whole_message(&mut whole.clone()), None);
        assert!(
            WsCodec::server()
                .max_frame_size(300)
                .decode_whole_message(&mut whole.clone())
                .is_some()
        );
        // The longest length there is, with no limit: no overflow, declined.
        let mut longest = BytesMut::from(&[0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF][..]);
        longest.extend_from_slice(&[0; 40]);
        let before = longest.clone();
        let mut unlimited = WsCodec::server().max_frame_size(usize::MAX);
        assert_eq!(unlimited.decode_whole_message(&mut longest), None);
        assert_eq!(longest, before);
        // RSV1 where deflate allows it: a compressed message, for the assembler.
        let mut compressed = server(Frame::binary("x"));
        compressed[0] |= 0x40;
        let mut deflating = WsCodec::server().allowed_rsv(0b100);
        assert_eq!(deflating.decode_whole_message(&mut compressed), None);
        assert!(deflating.decode_frame(&mut compressed).unwrap().unwrap().rsv1());
        // A header already parsed and pending: its frame is decode_frame's.
        let mut codec = WsCodec::server();
        let mut partial = BytesMut::from(&whole[..200]);
        assert!(codec.decode_frame(&mut partial).unwrap().is_none());
        partial.extend_from_slice(&whole[200..]);
        assert_eq!(codec.decode_whole_message(&mut partial), None);
        assert!(codec.decode_frame(&mut partial).unwrap().is_some());
    }

    proptest::proptest! {
        /// On any bytes, for either role and any limit: what the lane takes is what
        /// `decode_frame` would decode, down to the bytes left, and what it
        /// declines it leaves as it was.
        #[test]
        fn the_fast_lane_agrees_with_decode_frame_on_any_bytes(
            head in proptest::collection::vec(proptest::num::u8::ANY, 0..16),
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            first_byte in proptest::sample::select(vec![0x81u8, 0x82, 0x01, 0x02, 0x80, 0x89, 0xC1, 0x92]),
            server in proptest::bool::ANY,
            max_frame_size in 0usize..400,
        ) {
            let role = if server { Role::Server } else { Role::Client };
            let mut bytes = vec![first_byte];
            bytes.extend_from_slice(&head);
            bytes.extend_from_slice(&body);
            let mut fast = WsCodec::new(role).max_frame_size(max_frame_size);
            let mut slow = fast.clone();
            let mut fast_buf = BytesMut::from(&bytes[..]);
            let mut slow_buf = fast_buf.clone();
            match fast.decode_whole_message(&mut fast_buf) {
                Some((opcode, payload)) => {
                    let frame = slow.decode_frame(&mut slow_buf).expect("valid").expect("whole");
                    proptest::prop_assert!(frame.is_fin() && frame.rsv() == 0);
                    proptest::prop_assert_eq!(opcode, frame.opcode());
                    proptest::prop_assert_eq!(&payload, frame.payload());
                    proptest::prop_assert_eq!(&fast_buf, &slow_buf);
                }
                None => proptest::prop_assert_eq!(&fast_buf[..], &bytes[..]),
            }
        }
    }

    fn decode_all(codec: &mut WsCodec, bytes: &[u8]) -> Result<Vec<Frame>, Error> {
        let mut buf = BytesMut::from(bytes);
        let mut frames = Vec::new();
        while let Some(frame) = codec.decode(&mut buf)? {
            frames.push(frame);
        }
        assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
        Ok(frames)
    }

    #[test]
    fn header_uses_shortest_length_form() {
        for (len, expected_header_len) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let mut dst = BytesMut::new();
            put_header(&mut dst, 0x82, len, None);
            assert_eq!(dst.len(), expected_header_len, "len {len}");
        }
    }

    #[test]
    fn a_huge_declared_length_reserves_only_in_step_with_arrivals() {
        // 2^62 bytes declared; the limit is off.
        let mut codec = WsCodec::client().max_frame_size(usize::MAX);
        let mut buf = BytesMut::from(&[0x82, 127, 0x40, 0, 0, 0, 0, 0, 0, 0][..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(buf.capacity() <= 2 * RESERVE_AHEAD, "capacity {}", buf.capacity());
        buf.extend_from_slice(&vec![0; RESERVE_AHEAD]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(
            buf.capacity() <= 4 * RESERVE_AHEAD + 64,
            "capacity {}",
            buf.capacity()
        );
    }

    #[test]
    fn a_large_frame_that_needs_room_gets_room_for_the_frames_after_it_too() {
        let mut sender = WsCodec::client();
        let mut receiver = WsCodec::server();
        let mut wire = BytesMut::new();
        sender
            .encode(Frame::binary(vec![1; 64 * 1024]), &mut wire)
            .unwrap();
        let frame_len = wire.len();
        let mut buf = BytesMut::from(&wire[..1000]);
        assert!(receiver.decode(&mut buf).unwrap().is_none());
        assert!(
            buf.capacity() >= LARGE_FRAME_HEADROOM * frame_len,
            "capacity {} for a {frame_len}-byte frame",
            buf.capacity()
        );
        // Small frames get what they need and the read space, nothing more.
        let mut small = BytesMut::from(&[0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4][..]);
        assert!(WsCodec::server().decode(&mut small).unwrap().is_none());
        assert!(
            small.capacity() < 2 * MAX_READ_SPACE,
            "capacity {}",
            small.capacity()
        );
    }

    #[test]
    fn incomplete_frame_consumes_nothing_and_reserves_once() {
        let mut codec = WsCodec::client();
        let mut buf = BytesMut::from(&[0x82, 126, 0x10, 0x00, 1, 2, 3][..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert_eq!(buf.len(), 7);
        assert!(buf.capacity() >= 4 + 4096);
        buf.extend_from_slice(&vec![0; 4096 - 3]);
        let frame = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(frame.payload().len(), 4096);
    }

    #[test]
    fn rsv1_is_allowed_only_where_an_extension_permits_it() {
        // Unmasked text "a" with RSV1 set, as a server would send it to a client.
        let compressed_text = [0xC1, 0x01, b'a'];
        assert!(matches!(
            decode_all(&mut WsCodec::client(), &compressed_text),
            Err(Error::Protocol(ProtocolError::ReservedBits(0b100)))
        ));
        let mut deflate = WsCodec::client().allowed_rsv(0b100);
        assert!(decode_all(&mut deflate, &compressed_text).unwrap()[0].rsv1());
        // Never on control or continuation frames.
        for frame in [[0xC9, 0x00], [0xC0, 0x00]] {
            assert!(matches!(
                decode_all(&mut WsCodec::client().allowed_rsv(0b100), &frame),
                Err(Error::Protocol(ProtocolError::ReservedBits(_)))
            ));
        }
    }
}
