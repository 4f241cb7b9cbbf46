//! Fuzzes `WsCodec::decode`, the parser of peer input.
//!
//! Usage: `cargo +nightly fuzz run decode` (from the repository root).
//!
//! Input layout: byte 0 picks the role (bit 0), the RSV bits an extension allows
//! (bits 1–3) and the max frame size (bits 4–7, an index into `MAX_FRAME_SIZES`);
//! byte 1 picks how the wire is cut into pieces; the rest is the wire.
//!
//! Checked for every input:
//! - decoding never panics;
//! - decoding the wire in pieces (as reads deliver it) gives the same frames, then the
//!   same error or the same number of bytes left over, as decoding it whole;
//! - every frame decoded is one the peer's encoder accepts, and encoding it again
//!   and decoding that gives the frame back.
#![no_main]

use std::mem::discriminant;

use bytes::BytesMut;
use fastws::codec::DEFAULT_MAX_FRAME_SIZE;
use fastws::{Error, Frame, Role, WsCodec};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

/// Limits around each edge of the three length forms, and the default.
const MAX_FRAME_SIZES: [usize; 16] = [
    0,
    1,
    2,
    16,
    124,
    125,
    126,
    127,
    1024,
    65_535,
    65_536,
    65_537,
    1 << 20,
    (1 << 20) + 1,
    DEFAULT_MAX_FRAME_SIZE - 1,
    DEFAULT_MAX_FRAME_SIZE,
];

/// What decoding a wire produced.
struct Outcome {
    frames: Vec<Frame>,
    error: Option<Error>,
    /// Bytes left in the read buffer when decoding stopped without an error.
    left: usize,
}

/// Decodes everything `buf` holds, appending frames to `outcome`; false on error.
fn drain(codec: &mut WsCodec, buf: &mut BytesMut, outcome: &mut Outcome) -> bool {
    loop {
        let before = buf.len();
        match codec.decode(buf) {
            Ok(Some(frame)) => {
                assert!(buf.len() + 2 <= before, "a frame consumed less than its header");
                outcome.frames.push(frame);
            }
            Ok(None) => return true,
            Err(err) => {
                outcome.error = Some(err);
                return false;
            }
        }
    }
}

fn decode_whole(mut codec: WsCodec, wire: &[u8]) -> Outcome {
    let mut outcome = Outcome {
        frames: Vec::new(),
        error: None,
        left: 0,
    };
    let mut buf = BytesMut::from(wire);
    if drain(&mut codec, &mut buf, &mut outcome) {
        outcome.left = buf.len();
    }
    outcome
}

/// Feeds `wire` in pieces of 0 to `cut + 1` bytes, lengths drawn from a generator
/// seeded by `cut`, decoding after each piece as `Framed` does after each read.
fn decode_in_pieces(mut codec: WsCodec, wire: &[u8], cut: u8) -> Outcome {
    let mut outcome = Outcome {
        frames: Vec::new(),
        error: None,
        left: 0,
    };
    let longest = usize::from(cut) + 1;
    // xorshift32; never zero, so never stuck.
    let mut state = (u32::from(cut) << 8) | 0x9E37_0001;
    let mut buf = BytesMut::new();
    let mut rest = wire;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let take = (state as usize % (longest + 1)).min(rest.len());
        let (piece, tail) = rest.split_at(take);
        buf.extend_from_slice(piece);
        rest = tail;
        if !drain(&mut codec, &mut buf, &mut outcome) {
            return outcome;
        }
    }
    outcome.left = buf.len();
    outcome
}

fn same_error(a: &Error, b: &Error) -> bool {
    discriminant(a) == discriminant(b) && a.to_string() == b.to_string()
}

fn peer(role: Role) -> Role {
    match role {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    }
}

fuzz_target!(|data: &[u8]| {
    let [config, cut, wire @ ..] = data else {
        return;
    };
    let role = if config & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let codec = WsCodec::new(role)
        .allowed_rsv((config >> 1) & 0b111)
        .max_frame_size(MAX_FRAME_SIZES[usize::from(config >> 4)]);

    let whole = decode_whole(codec.clone(), wire);
    let pieces = decode_in_pieces(codec.clone(), wire, *cut);

    assert_eq!(
        whole.frames, pieces.frames,
        "frames differ when decoded in pieces"
    );
    match (&whole.error, &pieces.error) {
        (None, None) => assert_eq!(whole.left, pieces.left, "bytes left over differ"),
        (Some(a), Some(b)) => assert!(same_error(a, b), "errors differ: {a:?} vs {b:?}"),
        (a, b) => panic!("decoding whole gave {a:?}, in pieces gave {b:?}"),
    }

    // A decoded frame is one the peer may send: encode it as the peer and decode again.
    let mut sender = WsCodec::new(peer(role));
    for frame in whole.frames {
        let mut wire = BytesMut::new();
        sender
            .encode(frame.clone(), &mut wire)
            .expect("the peer's encoder refused a frame the decoder accepted");
        let mut receiver = codec.clone();
        let again = receiver.decode(&mut wire).expect("re-encoded frame refused");
        assert_eq!(
            again.as_ref(),
            Some(&frame),
            "re-encoded frame decodes differently"
        );
        assert!(wire.is_empty(), "re-encoded frame left bytes behind");
    }
});
