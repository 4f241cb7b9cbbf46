//! The frame codec (RFC 6455 §5): the byte-exact examples of §5.7, round trips in
//! both roles, every malformed header with the error it implies, robustness against
//! arbitrary bytes, and frames echoed over a real loopback socket.

use std::time::Duration;

use bytes::BytesMut;
use fastws::codec::DEFAULT_MAX_FRAME_SIZE;
use fastws::mask::apply_mask_scalar;
use fastws::{CloseCode, Error, Frame, OpCode, ProtocolError, Role, WsCodec};
use futures::{SinkExt, StreamExt};
use proptest::prelude::*;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Decoder, Encoder, Framed};

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// Decodes every frame in `bytes`, requiring that nothing is left over.
fn decode_all(codec: &mut WsCodec, bytes: &[u8]) -> Result<Vec<Frame>, Error> {
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(frame) = codec.decode(&mut buf)? {
        frames.push(frame);
    }
    assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
    Ok(frames)
}

/// Decodes exactly one frame that fills `bytes`.
fn decode_one(codec: &mut WsCodec, bytes: &[u8]) -> Frame {
    let frames = decode_all(codec, bytes).expect("valid frame");
    assert_eq!(frames.len(), 1, "expected exactly one frame");
    frames.into_iter().next().unwrap()
}

fn encode(codec: &mut WsCodec, frame: Frame) -> BytesMut {
    let mut wire = BytesMut::new();
    codec.encode(frame, &mut wire).expect("encodable frame");
    wire
}

/// Feeds `bytes` one at a time and decodes after each, collecting the frames.
fn decode_byte_by_byte(codec: &mut WsCodec, bytes: &[u8]) -> Result<Vec<Frame>, Error> {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for &byte in bytes {
        buf.extend_from_slice(&[byte]);
        while let Some(frame) = codec.decode(&mut buf)? {
            frames.push(frame);
        }
    }
    assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
    Ok(frames)
}

/// Checks a client's encoding of `frame`: the unmasked header `header` with the mask
/// bit set, a key, the payload masked with that key, and a server decodes it back.
fn assert_client_encoding(frame: Frame, header: &[u8]) {
    let wire = encode(&mut WsCodec::client(), frame.clone());
    assert_eq!(wire[0], header[0], "first header byte");
    assert_eq!(wire[1], header[1] | 0x80, "mask bit and length");
    assert_eq!(&wire[2..header.len()], &header[2..], "extended length");
    let key: [u8; 4] = wire[header.len()..header.len() + 4].try_into().unwrap();
    let mut payload = wire[header.len() + 4..].to_vec();
    apply_mask_scalar(&mut payload, key, 0);
    assert_eq!(
        &payload[..],
        &frame.payload()[..],
        "payload masked with the key sent"
    );
    assert_eq!(decode_one(&mut WsCodec::server(), &wire), frame);
}

/// `bytes` with its payload (from `header_len` on) masked with the RFC's example key.
fn masked(mut bytes: Vec<u8>, header_len: usize) -> Vec<u8> {
    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    bytes[1] |= 0x80;
    let mut payload = bytes.split_off(header_len);
    bytes.extend_from_slice(&KEY);
    apply_mask_scalar(&mut payload, KEY, 0);
    bytes.extend_from_slice(&payload);
    bytes
}

/// Asserts that `codec` refuses `bytes` with an error matching `pattern`, both when
/// the bytes arrive at once and when they arrive one at a time (where every decode
/// before the error must ask for more bytes).
macro_rules! assert_refused {
    ($codec:expr, $bytes:expr, $pattern:pat $(if $guard:expr)?) => {{
        let codec: WsCodec = $codec;
        let bytes: &[u8] = &$bytes;

        let mut whole = codec.clone();
        match whole.decode(&mut BytesMut::from(bytes)) {
            Err($pattern) $(if $guard)? => {}
            other => panic!(
                "{:?}: expected {}, got {other:?}",
                bytes,
                stringify!($pattern)
            ),
        }

        let mut incremental = codec.clone();
        let mut buf = BytesMut::new();
        let mut refused = false;
        for &byte in bytes {
            buf.extend_from_slice(&[byte]);
            match incremental.decode(&mut buf) {
                Ok(None) => {}
                Err($pattern) $(if $guard)? => {
                    refused = true;
                    break;
                }
                other => panic!(
                    "{:?} byte by byte: expected {}, got {other:?}",
                    bytes,
                    stringify!($pattern)
                ),
            }
        }
        assert!(refused, "{:?} byte by byte: never refused", bytes);
    }};
}

// ---------------------------------------------------------------------------------
// RFC 6455 §5.7 examples
// ---------------------------------------------------------------------------------

const UNMASKED_HELLO: [u8; 7] = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
const MASKED_HELLO: [u8; 11] = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];

#[test]
fn rfc_unmasked_hello_decodes_on_client_and_server_encodes_it_byte_exact() {
    assert_eq!(
        decode_one(&mut WsCodec::client(), &UNMASKED_HELLO),
        Frame::text("Hello")
    );
    assert_eq!(
        &encode(&mut WsCodec::server(), Frame::text("Hello"))[..],
        &UNMASKED_HELLO
    );
}

#[test]
fn rfc_masked_hello_decodes_on_server() {
    // The helper the other tests mask with reproduces the RFC's bytes.
    assert_eq!(masked(UNMASKED_HELLO.to_vec(), 2), MASKED_HELLO);
    assert_eq!(
        decode_one(&mut WsCodec::server(), &MASKED_HELLO),
        Frame::text("Hello")
    );
}

#[test]
fn client_masks_hello_with_a_key_the_server_can_undo() {
    assert_client_encoding(Frame::text("Hello"), &[0x81, 0x05]);
}

#[test]
fn client_uses_a_fresh_mask_key_per_frame() {
    let mut client = WsCodec::client();
    let keys: std::collections::HashSet<Vec<u8>> = (0..16)
        .map(|_| encode(&mut client, Frame::text("Hello"))[2..6].to_vec())
        .collect();
    assert!(keys.len() > 1, "16 frames all used the same mask key");
}

#[test]
fn rfc_fragmented_unmasked_text_decodes_as_two_frames_and_encodes_byte_exact() {
    let first = [0x01, 0x03, 0x48, 0x65, 0x6c];
    let last = [0x80, 0x02, 0x6c, 0x6f];
    let frames = [Frame::text("Hel").with_fin(false), Frame::continuation("lo")];

    let wire = [&first[..], &last[..]].concat();
    assert_eq!(decode_all(&mut WsCodec::client(), &wire).unwrap(), frames);

    let mut server = WsCodec::server();
    assert_eq!(&encode(&mut server, frames[0].clone())[..], &first);
    assert_eq!(&encode(&mut server, frames[1].clone())[..], &last);

    assert_client_encoding(frames[0].clone(), &first[..2]);
    assert_client_encoding(frames[1].clone(), &last[..2]);
}

#[test]
fn rfc_unmasked_ping_decodes_on_client_and_server_encodes_it_byte_exact() {
    let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    assert_eq!(decode_one(&mut WsCodec::client(), &ping), Frame::ping("Hello"));
    assert_eq!(&encode(&mut WsCodec::server(), Frame::ping("Hello"))[..], &ping);
    assert_client_encoding(Frame::ping("Hello"), &ping[..2]);
}

#[test]
fn rfc_masked_pong_decodes_on_server() {
    let pong = [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    assert_eq!(decode_one(&mut WsCodec::server(), &pong), Frame::pong("Hello"));
    assert_client_encoding(Frame::pong("Hello"), &[0x8a, 0x05]);
}

#[test]
fn rfc_256_byte_binary_uses_the_16_bit_length() {
    let header = [0x82, 0x7E, 0x01, 0x00];
    let payload: Vec<u8> = (0..256).map(|i| i as u8).collect();
    let wire = [&header[..], &payload[..]].concat();
    let frame = Frame::binary(payload.clone());

    assert_eq!(decode_one(&mut WsCodec::client(), &wire), frame);
    assert_eq!(
        decode_one(&mut WsCodec::server(), &masked(wire.clone(), 4)),
        frame
    );
    assert_eq!(&encode(&mut WsCodec::server(), frame.clone())[..], &wire[..]);
    assert_client_encoding(frame, &header);
}

#[test]
fn rfc_64_kib_binary_uses_the_64_bit_length() {
    let header = [0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00];
    let payload: Vec<u8> = (0..65536).map(|i| (i * 7) as u8).collect();
    let wire = [&header[..], &payload[..]].concat();
    let frame = Frame::binary(payload.clone());

    assert_eq!(decode_one(&mut WsCodec::client(), &wire), frame);
    assert_eq!(
        decode_one(&mut WsCodec::server(), &masked(wire.clone(), 10)),
        frame
    );
    assert_eq!(&encode(&mut WsCodec::server(), frame.clone())[..], &wire[..]);
    assert_client_encoding(frame, &header);
}

#[test]
fn lengths_use_the_shortest_form_at_each_boundary() {
    for (len, header) in [
        (0, &[0x82, 0x00][..]),
        (125, &[0x82, 0x7D]),
        (126, &[0x82, 0x7E, 0x00, 0x7E]),
        (65535, &[0x82, 0x7E, 0xFF, 0xFF]),
        (65536, &[0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]),
    ] {
        let frame = Frame::binary(vec![0xAB; len]);
        let wire = encode(&mut WsCodec::server(), frame.clone());
        assert_eq!(&wire[..header.len()], header, "len {len}");
        assert_eq!(wire.len(), header.len() + len, "len {len}");
        assert_client_encoding(frame, header);
    }
}

#[test]
fn non_minimal_length_forms_are_accepted() {
    // RFC 6455 §5.2 asks senders for the minimal form; a receiver that refuses the
    // longer forms would break interoperability for no gain.
    let short_in_16_bits = [0x82, 0x7E, 0x00, 0x02, 0xAA, 0xBB];
    let short_in_64_bits = [0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0x02, 0xAA, 0xBB];
    for wire in [&short_in_16_bits[..], &short_in_64_bits[..]] {
        assert_eq!(
            decode_one(&mut WsCodec::client(), wire),
            Frame::binary(vec![0xAA, 0xBB])
        );
    }
}

#[test]
fn close_frame_with_code_and_reason_round_trips() {
    let frame = Frame::close(CloseCode::Normal, "bye");
    let wire = encode(&mut WsCodec::server(), frame.clone());
    assert_eq!(&wire[..], b"\x88\x05\x03\xe8bye");
    assert_eq!(decode_one(&mut WsCodec::client(), &wire), frame);
    assert_client_encoding(frame, &[0x88, 0x05]);
    assert_client_encoding(Frame::close_empty(), &[0x88, 0x00]);
}

#[test]
fn incomplete_frame_is_left_in_the_buffer_until_it_completes() {
    let mut client = WsCodec::client();
    let mut buf = BytesMut::from(&UNMASKED_HELLO[..4]);
    assert!(client.decode(&mut buf).unwrap().is_none());
    assert_eq!(&buf[..], &UNMASKED_HELLO[..4]);
    buf.extend_from_slice(&UNMASKED_HELLO[4..]);
    buf.extend_from_slice(&UNMASKED_HELLO[..1]);
    assert_eq!(client.decode(&mut buf).unwrap(), Some(Frame::text("Hello")));
    assert_eq!(&buf[..], &UNMASKED_HELLO[..1]);
    assert!(client.decode(&mut buf).unwrap().is_none());
}

#[test]
fn rsv_bits_allowed_by_an_extension_round_trip_on_text_and_binary() {
    for rsv in 1..=0b111 {
        for frame in [Frame::text("x"), Frame::binary("y")] {
            let frame = frame.with_rsv(rsv);
            let wire = encode(&mut WsCodec::client(), frame.clone());
            let mut server = WsCodec::server().allowed_rsv(0b111);
            assert_eq!(decode_one(&mut server, &wire), frame);
        }
    }
}

// ---------------------------------------------------------------------------------
// Malformed input: each violation gives its own error
// ---------------------------------------------------------------------------------

const RESERVED_OPCODES: [u8; 10] = [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF];

#[test]
fn every_reserved_opcode_is_refused() {
    for op in RESERVED_OPCODES {
        let unmasked = vec![0x80 | op, 0x01, 0x00];
        assert_refused!(
            WsCodec::client(),
            unmasked,
            Error::Protocol(ProtocolError::ReservedOpCode(got)) if got == op
        );
        assert_refused!(
            WsCodec::server(),
            masked(unmasked.clone(), 2),
            Error::Protocol(ProtocolError::ReservedOpCode(got)) if got == op
        );
        // Even with every RSV bit allowed, the opcode stays reserved.
        assert_refused!(
            WsCodec::client().allowed_rsv(0b111),
            unmasked,
            Error::Protocol(ProtocolError::ReservedOpCode(got)) if got == op
        );
    }
}

#[test]
fn each_rsv_bit_without_a_negotiated_extension_is_refused() {
    for (bit, rsv) in [(0x40, 0b100), (0x20, 0b010), (0x10, 0b001)] {
        for opcode in [0x0, 0x1, 0x2, 0x8, 0x9, 0xA] {
            let unmasked = vec![0x80 | bit | opcode, 0x00];
            assert_refused!(
                WsCodec::client(),
                unmasked,
                Error::Protocol(ProtocolError::ReservedBits(got)) if got == rsv
            );
            assert_refused!(
                WsCodec::server(),
                masked(unmasked, 2),
                Error::Protocol(ProtocolError::ReservedBits(got)) if got == rsv
            );
        }
    }
}

#[test]
fn rsv_bits_beyond_those_an_extension_allows_are_refused() {
    // RSV1 allowed (permessage-deflate), RSV2 still refused.
    assert_refused!(
        WsCodec::client().allowed_rsv(0b100),
        [0xE1, 0x00],
        Error::Protocol(ProtocolError::ReservedBits(0b110))
    );
    // Control and continuation frames never carry RSV bits.
    for first_byte in [0xC0, 0xC8, 0xC9, 0xCA] {
        assert_refused!(
            WsCodec::client().allowed_rsv(0b111),
            [first_byte, 0x00],
            Error::Protocol(ProtocolError::ReservedBits(0b100))
        );
    }
}

#[test]
fn control_frame_with_126_byte_payload_is_refused() {
    for opcode in [0x8, 0x9, 0xA] {
        let mut unmasked = vec![0x80 | opcode, 0x7E, 0x00, 0x7E];
        unmasked.extend_from_slice(&[b'x'; 126]);
        assert_refused!(
            WsCodec::client(),
            unmasked,
            Error::Protocol(ProtocolError::ControlFrameTooLong(126))
        );
        assert_refused!(
            WsCodec::server(),
            masked(unmasked.clone(), 4),
            Error::Protocol(ProtocolError::ControlFrameTooLong(126))
        );
        // Refused from the header alone, without waiting for the payload.
        assert_refused!(
            WsCodec::client(),
            unmasked[..4],
            Error::Protocol(ProtocolError::ControlFrameTooLong(126))
        );
    }
}

#[test]
fn control_frame_with_125_byte_payload_is_accepted() {
    let mut wire = vec![0x89, 0x7D];
    wire.extend_from_slice(&[b'x'; 125]);
    assert_eq!(
        decode_one(&mut WsCodec::client(), &wire),
        Frame::ping(vec![b'x'; 125])
    );
}

#[test]
fn control_frame_with_64_bit_length_is_refused() {
    let header = [0x89, 0x7F, 0, 0, 0, 0, 0, 0, 0x01, 0x00];
    assert_refused!(
        WsCodec::client(),
        header,
        Error::Protocol(ProtocolError::ControlFrameTooLong(256))
    );
}

#[test]
fn control_frame_without_fin_is_refused() {
    for opcode in [0x8, 0x9, 0xA] {
        let unmasked = vec![opcode, 0x00];
        assert_refused!(
            WsCodec::client(),
            unmasked,
            Error::Protocol(ProtocolError::FragmentedControlFrame)
        );
        assert_refused!(
            WsCodec::server(),
            masked(unmasked, 2),
            Error::Protocol(ProtocolError::FragmentedControlFrame)
        );
    }
    // The RFC's ping, FIN cleared.
    assert_refused!(
        WsCodec::client(),
        [0x09, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f],
        Error::Protocol(ProtocolError::FragmentedControlFrame)
    );
}

#[test]
fn server_refuses_an_unmasked_frame() {
    assert_refused!(
        WsCodec::server(),
        UNMASKED_HELLO,
        Error::Protocol(ProtocolError::UnmaskedFrame)
    );
    assert_refused!(
        WsCodec::server(),
        [0x89, 0x00],
        Error::Protocol(ProtocolError::UnmaskedFrame)
    );
}

#[test]
fn client_refuses_a_masked_frame() {
    assert_refused!(
        WsCodec::client(),
        MASKED_HELLO,
        Error::Protocol(ProtocolError::MaskedFrame)
    );
    assert_refused!(
        WsCodec::client(),
        [0x89, 0x80, 1, 2, 3, 4],
        Error::Protocol(ProtocolError::MaskedFrame)
    );
}

#[test]
fn a_64_bit_length_with_its_most_significant_bit_set_is_refused() {
    for length in [1u64 << 63, u64::MAX, (1 << 63) | 5] {
        let mut unmasked = vec![0x82, 0x7F];
        unmasked.extend_from_slice(&length.to_be_bytes());
        assert_refused!(
            WsCodec::client(),
            unmasked,
            Error::Protocol(ProtocolError::InvalidLength)
        );
        // Refused even where no size limit would catch it.
        assert_refused!(
            WsCodec::client().max_frame_size(usize::MAX),
            unmasked,
            Error::Protocol(ProtocolError::InvalidLength)
        );
        let mut masked_header = unmasked;
        masked_header[1] |= 0x80;
        masked_header.extend_from_slice(&[1, 2, 3, 4]);
        assert_refused!(
            WsCodec::server(),
            masked_header,
            Error::Protocol(ProtocolError::InvalidLength)
        );
    }
}

#[test]
fn frame_over_max_frame_size_is_refused_from_its_header_alone() {
    // 1025 bytes declared against a limit of 1024: 16-bit length form.
    let header = [0x82, 0xFE, 0x04, 0x01, 1, 2, 3, 4];
    let mut server = WsCodec::server().max_frame_size(1024);
    let mut buf = BytesMut::from(&header[..]);
    match server.decode(&mut buf) {
        Err(Error::FrameTooLarge { len: 1025, max: 1024 }) => {}
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert!(
        buf.capacity() < 1024,
        "buffer grew to {} for a refused frame",
        buf.capacity()
    );
    assert_refused!(
        WsCodec::server().max_frame_size(1024),
        header,
        Error::FrameTooLarge { len: 1025, max: 1024 }
    );

    // 1 TiB declared in the 64-bit form: refused, and nothing close to it reserved.
    let mut header = vec![0x82, 0x7F];
    header.extend_from_slice(&(1u64 << 40).to_be_bytes());
    let mut client = WsCodec::client().max_frame_size(1 << 20);
    let mut buf = BytesMut::from(&header[..]);
    match client.decode(&mut buf) {
        Err(Error::FrameTooLarge { len, max }) => {
            assert_eq!((len, max), (1 << 40, 1 << 20));
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert!(buf.capacity() < 1 << 20);
    assert_refused!(
        WsCodec::client().max_frame_size(1 << 20),
        header,
        Error::FrameTooLarge { len, max: 0x10_0000 } if len == 1 << 40
    );
}

#[test]
fn default_max_frame_size_refuses_one_byte_more() {
    let mut header = vec![0x82, 0x7F];
    header.extend_from_slice(&(DEFAULT_MAX_FRAME_SIZE as u64 + 1).to_be_bytes());
    assert_refused!(
        WsCodec::client(),
        header,
        Error::FrameTooLarge { len, max } if len == DEFAULT_MAX_FRAME_SIZE as u64 + 1
            && max == DEFAULT_MAX_FRAME_SIZE
    );
}

#[test]
fn frame_of_exactly_max_frame_size_is_accepted() {
    let frame = Frame::binary(vec![7; 1024]);
    let wire = encode(&mut WsCodec::client(), frame.clone());
    let mut server = WsCodec::server().max_frame_size(1024);
    assert_eq!(decode_one(&mut server, &wire), frame);

    let empty = encode(&mut WsCodec::server(), Frame::binary(""));
    let mut client = WsCodec::client().max_frame_size(0);
    assert_eq!(decode_one(&mut client, &empty), Frame::binary(""));
}

#[test]
fn encoder_refuses_control_frame_over_125_bytes() {
    for role in [Role::Server, Role::Client] {
        for frame in [
            Frame::ping(vec![0; 126]),
            Frame::pong(vec![0; 126]),
            Frame::new(OpCode::Close, vec![0x03; 126]),
            Frame::ping(vec![0; 70_000]),
        ] {
            let len = frame.payload().len();
            let mut wire = BytesMut::new();
            match WsCodec::new(role).encode(frame, &mut wire) {
                // Our own mistake, not the peer's.
                Err(err @ Error::ControlPayloadTooLong { len: got }) => {
                    assert_eq!(got, len);
                    assert!(err.is_misuse() && !err.is_protocol() && err.close_code().is_none());
                }
                other => panic!("{role:?}: expected ControlPayloadTooLong, got {other:?}"),
            }
            assert!(wire.is_empty(), "{role:?}: refused frame left bytes behind");
        }
        let mut wire = BytesMut::new();
        WsCodec::new(role)
            .encode(Frame::ping(vec![0; 125]), &mut wire)
            .expect("125-byte ping is allowed");
    }
}

#[test]
fn encoder_refuses_control_frame_without_fin() {
    for role in [Role::Server, Role::Client] {
        for frame in [
            Frame::ping("a"),
            Frame::pong(""),
            Frame::close(CloseCode::Normal, ""),
        ] {
            let mut wire = BytesMut::new();
            match WsCodec::new(role).encode(frame.with_fin(false), &mut wire) {
                Err(Error::Protocol(ProtocolError::FragmentedControlFrame)) => {}
                other => panic!("{role:?}: expected FragmentedControlFrame, got {other:?}"),
            }
            assert!(wire.is_empty(), "{role:?}: refused frame left bytes behind");
        }
    }
}

#[test]
fn protocol_errors_imply_close_1002_and_size_errors_close_1009() {
    let mut client = WsCodec::client();
    let err = client.decode(&mut BytesMut::from(&[0x83, 0x00][..])).unwrap_err();
    assert_eq!(err.close_code(), Some(CloseCode::Protocol));
    let mut client = WsCodec::client().max_frame_size(1);
    let err = client.decode(&mut BytesMut::from(&[0x82, 0x02][..])).unwrap_err();
    assert_eq!(err.close_code(), Some(CloseCode::Size));
}

// ---------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------

/// A payload of `len` bytes, cheap to generate however long: a pattern from `seed`.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Payload lengths, weighted towards the edges of the three length forms.
fn data_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => 0usize..=130,
        1 => 120usize..=131,
        1 => 65_530usize..=65_541,
        1 => 0usize..70_000,
    ]
}

fn data_frame() -> impl Strategy<Value = Frame> {
    (
        prop_oneof![
            Just(OpCode::Continuation),
            Just(OpCode::Text),
            Just(OpCode::Binary)
        ],
        any::<bool>(),
        0u8..8,
        data_len(),
        any::<u64>(),
    )
        .prop_map(|(opcode, fin, rsv, len, seed)| {
            // Extensions may set RSV bits on the first frame of a message only.
            let rsv = if opcode == OpCode::Continuation { 0 } else { rsv };
            Frame::new(opcode, payload(len, seed)).with_fin(fin).with_rsv(rsv)
        })
}

fn control_frame() -> impl Strategy<Value = Frame> {
    (
        prop_oneof![Just(OpCode::Close), Just(OpCode::Ping), Just(OpCode::Pong)],
        0usize..=125,
        any::<u64>(),
    )
        .prop_map(|(opcode, len, seed)| Frame::new(opcode, payload(len, seed)))
}

fn any_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![data_frame(), control_frame()]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Server), Just(Role::Client)]
}

fn peer(role: Role) -> Role {
    match role {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    }
}

/// A decoder for frames sent by `sender`, accepting every RSV bit.
fn receiver_of(sender: Role) -> WsCodec {
    WsCodec::new(peer(sender)).allowed_rsv(0b111)
}

fn arbitrary_max_frame_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(DEFAULT_MAX_FRAME_SIZE),
        0usize..300,
        Just(125usize),
        Just(126usize),
        Just(65_535usize),
        Just(65_536usize),
    ]
}

/// Decodes until the codec asks for more bytes or refuses them; must not panic.
fn decode_until_stuck(codec: &mut WsCodec, bytes: &[u8]) {
    let mut buf = BytesMut::from(bytes);
    let mut left = buf.len();
    while let Ok(Some(_)) = codec.decode(&mut buf) {
        assert!(buf.len() + 2 <= left, "a frame consumed less than its header");
        left = buf.len();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_frame_round_trips_from_either_role_to_the_other(
        frame in any_frame(),
        sender in role(),
    ) {
        let wire = encode(&mut WsCodec::new(sender), frame.clone());
        let decoded = decode_all(&mut receiver_of(sender), &wire).unwrap();
        prop_assert_eq!(decoded, vec![frame]);
    }

    #[test]
    fn decoding_byte_by_byte_gives_the_same_frames_as_decoding_at_once(
        frames in prop::collection::vec(any_frame(), 1..5),
        sender in role(),
    ) {
        let mut wire = BytesMut::new();
        let mut encoder = WsCodec::new(sender);
        for frame in &frames {
            encoder.encode(frame.clone(), &mut wire).unwrap();
        }
        let at_once = decode_all(&mut receiver_of(sender), &wire).unwrap();
        let byte_by_byte = decode_byte_by_byte(&mut receiver_of(sender), &wire).unwrap();
        prop_assert_eq!(&at_once, &frames);
        prop_assert_eq!(&byte_by_byte, &frames);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic_the_decoder(
        bytes in prop::collection::vec(any::<u8>(), 0..4096),
        role in role(),
        max in arbitrary_max_frame_size(),
        rsv in 0u8..8,
    ) {
        let mut codec = WsCodec::new(role).max_frame_size(max).allowed_rsv(rsv);
        decode_until_stuck(&mut codec, &bytes);
    }

    #[test]
    fn corrupted_frames_never_panic_the_decoder(
        frames in prop::collection::vec(any_frame(), 1..6),
        sender in role(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        max in arbitrary_max_frame_size(),
    ) {
        // Valid frames with a few bytes changed reach deeper into the header
        // checks than uniformly random bytes do.
        let mut wire = BytesMut::new();
        let mut encoder = WsCodec::new(sender);
        for frame in frames {
            encoder.encode(frame, &mut wire).unwrap();
        }
        for (index, xor) in flips {
            let at = index.index(wire.len());
            wire[at] ^= xor;
        }
        decode_until_stuck(&mut WsCodec::new(peer(sender)).max_frame_size(max), &wire);
        decode_until_stuck(&mut WsCodec::new(sender).max_frame_size(max), &wire);
    }
}

// ---------------------------------------------------------------------------------
// Over a real socket
// ---------------------------------------------------------------------------------

/// Accepts one connection and echoes every frame until the client hangs up.
async fn spawn_echo_server() -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<Result<usize, Error>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut frames = Framed::new(tcp, WsCodec::server());
        let mut echoed = 0;
        while let Some(frame) = frames.next().await {
            frames.send(frame?).await?;
            echoed += 1;
        }
        Ok(echoed)
    });
    (addr, server)
}

fn frames_to_echo() -> Vec<Frame> {
    vec![
        Frame::text("Hello"),
        Frame::binary(vec![0, 1, 2, 255]),
        Frame::binary(payload(100 * 1024, 42)),
        Frame::text("Hel").with_fin(false),
        Frame::continuation("lo"),
        Frame::ping("are you there?"),
        Frame::binary(""),
        Frame::text("fragmented ").with_fin(false),
        Frame::continuation(payload(70_000, 7)).with_fin(false),
        Frame::continuation(" end"),
        Frame::pong(""),
    ]
}

#[tokio::test]
async fn every_frame_is_echoed_unchanged_over_tcp() {
    let (addr, server) = spawn_echo_server().await;
    let sent = frames_to_echo();

    let client = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut frames = Framed::new(tcp, WsCodec::client());
        for frame in &sent {
            frames.send(frame.clone()).await.unwrap();
            let echo = frames.next().await.expect("echo").unwrap();
            assert_eq!(&echo, frame);
        }
        let close = Frame::close(CloseCode::Normal, "done");
        frames.send(close.clone()).await.unwrap();
        assert_eq!(frames.next().await.expect("close echo").unwrap(), close);
    };
    tokio::time::timeout(Duration::from_secs(30), client)
        .await
        .expect("client timed out");

    let echoed = tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("server timed out")
        .unwrap()
        .unwrap();
    assert_eq!(echoed, sent.len() + 1);
}

#[tokio::test]
async fn pipelined_frames_are_echoed_in_order_over_tcp() {
    let (addr, server) = spawn_echo_server().await;
    let sent: Vec<Frame> = (0..20).flat_map(|_| frames_to_echo()).collect();

    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sink, mut stream) = Framed::new(tcp, WsCodec::client()).split();
    let send_all = async {
        for frame in &sent {
            sink.feed(frame.clone()).await.unwrap();
        }
        sink.flush().await.unwrap();
        sink.close().await.unwrap();
    };
    let receive_all = async {
        let mut received = Vec::with_capacity(sent.len());
        while let Some(frame) = stream.next().await {
            received.push(frame.unwrap());
        }
        received
    };
    let ((), received) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(send_all, receive_all)
    })
    .await
    .expect("timed out");

    assert_eq!(received.len(), sent.len());
    assert!(received == sent, "echoed frames differ from those sent");
    let echoed = server.await.unwrap().unwrap();
    assert_eq!(echoed, sent.len());
}
