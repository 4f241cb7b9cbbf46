//! Fragmentation (RFC 6455 §5.4) over a real socket: incoming fragments are
//! reassembled into one message, control frames may be interleaved, continuation
//! rules are enforced with close 1002, and outgoing messages are split by
//! `Config::fragment_size`.

mod common;

use common::*;
use fastws::{CloseCode, Config, Error, Frame, Message, OpCode, ProtocolError};

#[tokio::test]
async fn fragmented_text_is_reassembled_into_one_message() {
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::text("Hel").with_fin(false)).await;
    send(&mut client, Frame::continuation("lo, ").with_fin(false)).await;
    send(&mut client, Frame::continuation("world")).await;

    let echoed = recv(&mut client).await;
    assert_eq!(echoed, Frame::text("Hello, world"));

    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    expect_eof(&mut client).await;
    let seen = finish(server).await.expect("server result");
    assert_eq!(seen[0], Message::text("Hello, world"));
    assert_eq!(seen.len(), 2, "one data message, then the close: {seen:?}");
}

#[tokio::test]
async fn fragmented_binary_is_reassembled_into_one_message() {
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::binary(vec![1u8, 2, 3]).with_fin(false)).await;
    send(&mut client, Frame::continuation(Vec::<u8>::new()).with_fin(false)).await;
    send(&mut client, Frame::continuation(vec![4u8, 5])).await;

    assert_eq!(recv(&mut client).await, Frame::binary(vec![1u8, 2, 3, 4, 5]));

    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    let seen = finish(server).await.expect("server result");
    assert_eq!(seen[0], Message::binary(vec![1u8, 2, 3, 4, 5]));
}

#[tokio::test]
async fn ping_between_fragments_is_answered_and_the_message_still_arrives_whole() {
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::text("first ").with_fin(false)).await;
    send(&mut client, Frame::ping("are you there?")).await;
    // The pong comes back while the message is still incomplete.
    assert_eq!(recv(&mut client).await, Frame::pong("are you there?"));

    send(&mut client, Frame::continuation("second ").with_fin(false)).await;
    send(&mut client, Frame::ping("")).await;
    assert_eq!(recv(&mut client).await, Frame::pong(""));

    send(&mut client, Frame::continuation("third")).await;
    assert_eq!(recv(&mut client).await, Frame::text("first second third"));

    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    let seen = finish(server).await.expect("server result");
    assert_eq!(seen[0], Message::text("first second third"));
}

#[tokio::test]
async fn continuation_without_a_message_in_progress_is_closed_with_1002() {
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::continuation("orphan")).await;

    assert_eq!(expect_close(&mut client).await, Some(1002));
    expect_eof(&mut client).await;
    let result = finish(server).await;
    assert!(
        matches!(
            result,
            Err(Error::Protocol(ProtocolError::UnexpectedContinuation))
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn continuation_after_a_complete_message_is_closed_with_1002() {
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::text("done")).await;
    assert_eq!(recv(&mut client).await, Frame::text("done"));
    send(&mut client, Frame::continuation("more")).await;

    assert_eq!(expect_close(&mut client).await, Some(1002));
    let result = finish(server).await;
    assert!(
        matches!(
            result,
            Err(Error::Protocol(ProtocolError::UnexpectedContinuation))
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn new_text_frame_during_a_fragmented_message_is_closed_with_1002() {
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::text("part").with_fin(false)).await;
    send(&mut client, Frame::text("interloper")).await;

    assert_eq!(expect_close(&mut client).await, Some(1002));
    expect_eof(&mut client).await;
    let result = finish(server).await;
    assert!(
        matches!(result, Err(Error::Protocol(ProtocolError::ExpectedContinuation))),
        "{result:?}"
    );
}

#[tokio::test]
async fn new_binary_frame_during_a_fragmented_message_is_closed_with_1002() {
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::binary(vec![0u8; 3]).with_fin(false)).await;
    send(&mut client, Frame::binary(vec![1u8; 3]).with_fin(false)).await;

    assert_eq!(expect_close(&mut client).await, Some(1002));
    let result = finish(server).await;
    assert!(
        matches!(result, Err(Error::Protocol(ProtocolError::ExpectedContinuation))),
        "{result:?}"
    );
}

/// Receives one message's frames: returns them once a frame with FIN arrives.
async fn recv_message_frames(client: &mut Client) -> Vec<Frame> {
    let mut frames = Vec::new();
    loop {
        let frame = recv(client).await;
        let fin = frame.is_fin();
        frames.push(frame);
        if fin {
            return frames;
        }
    }
}

/// Checks the frames of one outgoing message: `expected_sizes` payloads, the first
/// with `opcode`, the rest continuations, only the last with FIN; returns the
/// joined payload.
fn check_fragments(frames: &[Frame], opcode: OpCode, expected_sizes: &[usize]) -> Vec<u8> {
    let sizes: Vec<usize> = frames.iter().map(|f| f.payload().len()).collect();
    assert_eq!(sizes, expected_sizes, "fragment sizes");
    for (i, frame) in frames.iter().enumerate() {
        let expected_opcode = if i == 0 { opcode } else { OpCode::Continuation };
        assert_eq!(frame.opcode(), expected_opcode, "opcode of frame {i}");
        assert_eq!(frame.is_fin(), i == frames.len() - 1, "FIN of frame {i}");
        assert_eq!(frame.rsv(), 0, "RSV of frame {i}");
    }
    frames.iter().flat_map(|f| f.payload().iter().copied()).collect()
}

#[tokio::test]
async fn outgoing_binary_message_is_split_into_fragments_of_the_configured_size() {
    let config = Config::default().fragment_size(Some(1000));
    let (addr, server) = start(config, echo).await;
    let mut client = connect(addr).await;
    let payload: Vec<u8> = (0..4500u32).map(|i| (i % 251) as u8).collect();

    send(&mut client, Frame::binary(payload.clone())).await;

    let frames = recv_message_frames(&mut client).await;
    // ceil(4500 / 1000) = 5 frames.
    let joined = check_fragments(&frames, OpCode::Binary, &[1000, 1000, 1000, 1000, 500]);
    assert_eq!(joined, payload);

    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    finish(server).await.expect("server result");
}

#[tokio::test]
async fn outgoing_text_message_of_an_exact_multiple_is_split_without_an_empty_fragment() {
    let config = Config::default().fragment_size(Some(100));
    let (addr, server) = start(config, echo).await;
    let mut client = connect(addr).await;
    // 300 bytes of two-byte characters: fragments cut code points in half, which
    // RFC 6455 §5.4 allows (only the whole message must be valid UTF-8).
    let text = "é".repeat(150);

    send(&mut client, Frame::text(text.clone())).await;

    let frames = recv_message_frames(&mut client).await;
    let joined = check_fragments(&frames, OpCode::Text, &[100, 100, 100]);
    assert_eq!(joined, text.as_bytes());

    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    finish(server).await.expect("server result");
}

#[tokio::test]
async fn outgoing_message_no_larger_than_the_fragment_size_is_one_frame() {
    let config = Config::default().fragment_size(Some(100));
    let (addr, server) = start(config, echo).await;
    let mut client = connect(addr).await;

    for len in [0usize, 1, 99, 100] {
        let payload = vec![7u8; len];
        send(&mut client, Frame::binary(payload.clone())).await;
        assert_eq!(recv(&mut client).await, Frame::binary(payload), "len {len}");
    }
    send(&mut client, Frame::text("x".repeat(101))).await;
    let frames = recv_message_frames(&mut client).await;
    check_fragments(&frames, OpCode::Text, &[100, 1]);

    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    finish(server).await.expect("server result");
}

#[tokio::test]
async fn control_frames_are_never_fragmented() {
    let config = Config::default().fragment_size(Some(2));
    let (addr, server) = start(config, echo).await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::ping("a longer ping payload")).await;
    assert_eq!(recv(&mut client).await, Frame::pong("a longer ping payload"));

    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    finish(server).await.expect("server result");
}

#[tokio::test]
async fn close_between_fragments_is_echoed_and_ends_the_stream() {
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::text("never ").with_fin(false)).await;
    send(&mut client, Frame::close(CloseCode::Away, "")).await;

    assert_eq!(expect_close(&mut client).await, Some(1001));
    expect_eof(&mut client).await;
    let seen = finish(server).await.expect("server result");
    assert_eq!(seen, vec![Message::close(CloseCode::Away, "")]);
}
