//! The read path takes a whole, plain message that is already buffered by a
//! short way (no `Frame`, no assembler). These tests pin down that the short way
//! and the long one make the same stream of messages out of any mix of frames
//! arriving in one read, and that the short way never overtakes what the read
//! path owes the peer.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fastws::{Config, Frame, Message, Role, WebSocket, WsCodec};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_util::codec::{Decoder, Encoder};

/// The role of the end that talks to one in `role`.
fn peer_of(role: Role) -> Role {
    match role {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    }
}

/// `frames` as the peer of `role` puts them on the wire, back to back.
fn wire(role: Role, frames: &[Frame]) -> BytesMut {
    let mut codec = WsCodec::new(peer_of(role));
    let mut wire = BytesMut::new();
    for frame in frames {
        codec.encode(frame.clone(), &mut wire).unwrap();
    }
    wire
}

/// A `WebSocket` in `role` whose peer's end of the pipe is returned with it.
fn pair(role: Role, config: Config) -> (WebSocket<DuplexStream>, DuplexStream) {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    (WebSocket::from_raw_socket(ours, role, config), theirs)
}

#[tokio::test]
async fn every_mix_of_frames_in_one_read_yields_the_messages_in_order() {
    let big = Bytes::from(vec![7u8; 70_000]);
    let frames = [
        Frame::binary("one"),
        Frame::text("two"),
        Frame::text("thr").with_fin(false),
        Frame::ping("between fragments"),
        Frame::continuation("ee").with_fin(false),
        Frame::continuation(""),
        Frame::binary(""),
        Frame::binary(big.clone()),
        Frame::text("é".repeat(200)),
        Frame::pong("unasked"),
        Frame::binary(vec![1u8; 65_535]),
        Frame::binary("last"),
    ];
    let expected = [
        Message::binary("one"),
        Message::text("two"),
        Message::Ping(Bytes::from_static(b"between fragments")),
        Message::text("three"),
        Message::binary(""),
        Message::binary(big),
        Message::text("é".repeat(200)),
        Message::Pong(Bytes::from_static(b"unasked")),
        Message::binary(vec![1u8; 65_535]),
        Message::binary("last"),
    ];
    for role in [Role::Server, Role::Client] {
        let (mut ws, mut peer) = pair(role, Config::default().control_messages(true));
        peer.write_all(&wire(role, &frames)).await.unwrap();
        for (index, want) in expected.iter().enumerate() {
            let got = ws.next().await.expect("a message").expect("no error");
            assert_eq!(&got, want, "{role:?}: message {index}");
        }
        // The ping was answered.
        let mut answers = BytesMut::new();
        let mut codec = WsCodec::new(peer_of(role));
        let pong = loop {
            if let Some(frame) = codec.decode(&mut answers).unwrap() {
                break frame;
            }
            peer.read_buf(&mut answers).await.unwrap();
        };
        assert_eq!(pong, Frame::pong("between fragments"), "{role:?}");
    }
}

#[tokio::test]
async fn a_pong_owed_is_written_before_the_buffered_messages_after_the_ping() {
    for role in [Role::Server, Role::Client] {
        let (mut ws, mut peer) = pair(role, Config::default().control_messages(true));
        let mut frames = vec![Frame::binary("before"), Frame::ping("now")];
        frames.extend((0..100).map(|i| Frame::binary(format!("after {i}"))));
        peer.write_all(&wire(role, &frames)).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary("before"));
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::Ping(Bytes::from_static(b"now"))
        );
        // The next message is buffered; taking it must not skip the owed pong.
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary("after 0"));
        // `ws` is not polled again: the pong is on the wire already.
        let mut answers = BytesMut::new();
        let read = tokio::time::timeout(Duration::from_secs(2), peer.read_buf(&mut answers)).await;
        assert!(matches!(read, Ok(Ok(n)) if n > 0), "{role:?}: no pong yet");
        let pong = WsCodec::new(peer_of(role)).decode(&mut answers).unwrap();
        assert_eq!(pong, Some(Frame::pong("now")), "{role:?}");
    }
}

#[tokio::test]
async fn invalid_text_taken_the_short_way_fails_after_the_messages_before_it() {
    for role in [Role::Server, Role::Client] {
        let (mut ws, mut peer) = pair(role, Config::default());
        let mut invalid = wire(role, &[Frame::binary("fine")]);
        invalid.extend_from_slice(&wire(role, &[Frame::text(Bytes::from_static(b"\xff\xfe"))]));
        invalid.extend_from_slice(&wire(role, &[Frame::binary("never")]));
        peer.write_all(&invalid).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary("fine"));
        let failure = ws.next().await.unwrap();
        assert!(
            matches!(failure, Err(fastws::Error::InvalidUtf8)),
            "{role:?}: {failure:?}"
        );
        assert!(ws.next().await.is_none(), "{role:?}: nothing after the failure");
        let mut answers = BytesMut::new();
        peer.read_buf(&mut answers).await.unwrap();
        let close = WsCodec::new(peer_of(role)).decode(&mut answers).unwrap().unwrap();
        assert_eq!(&close.payload()[..2], &1007u16.to_be_bytes(), "{role:?}");
    }
}

#[tokio::test]
async fn a_whole_frame_after_a_pong_inside_a_fragmented_message_is_a_protocol_error() {
    // A data frame that is whole in itself, while a message is in progress: the
    // short way must not take it for a message of its own. (A pong, unlike a
    // ping, owes nothing, so nothing else keeps the short way out.)
    for role in [Role::Server, Role::Client] {
        let (mut ws, mut peer) = pair(role, Config::default().control_messages(true));
        let frames = [
            Frame::text("a").with_fin(false),
            Frame::pong("p"),
            Frame::text("b"),
        ];
        peer.write_all(&wire(role, &frames)).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::Pong(Bytes::from_static(b"p"))
        );
        let failure = ws.next().await.unwrap();
        assert!(
            matches!(failure, Err(fastws::Error::Protocol(_))),
            "{role:?}: {failure:?}"
        );
        let mut answers = BytesMut::new();
        let mut codec = WsCodec::new(peer_of(role));
        let close = loop {
            match codec.decode(&mut answers).unwrap() {
                Some(frame) if frame.opcode() == fastws::OpCode::Close => break frame,
                Some(_) => {}
                None => {
                    peer.read_buf(&mut answers).await.unwrap();
                }
            }
        };
        assert_eq!(&close.payload()[..2], &1002u16.to_be_bytes(), "{role:?}");
    }
}

#[tokio::test]
async fn a_buffered_message_over_the_message_limit_is_closed_with_1009() {
    for role in [Role::Server, Role::Client] {
        let config = Config::default().max_message_size(100).max_frame_size(1000);
        let (mut ws, mut peer) = pair(role, config);
        let frames = [Frame::binary("small"), Frame::binary(vec![0u8; 101])];
        peer.write_all(&wire(role, &frames)).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary("small"));
        let failure = ws.next().await.unwrap();
        assert!(
            matches!(
                failure,
                Err(fastws::Error::MessageTooLarge { len: 101, max: 100 })
            ),
            "{role:?}: {failure:?}"
        );
        let mut answers = BytesMut::new();
        peer.read_buf(&mut answers).await.unwrap();
        let close = WsCodec::new(peer_of(role)).decode(&mut answers).unwrap().unwrap();
        assert_eq!(&close.payload()[..2], &1009u16.to_be_bytes(), "{role:?}");
    }
}

/// The next frame the peer of `role` reads from `peer`, with `buffered` bytes
/// already read; `None` if nothing more arrives within two seconds.
async fn next_frame(peer: &mut DuplexStream, buffered: &mut BytesMut, codec: &mut WsCodec) -> Option<Frame> {
    loop {
        if let Some(frame) = codec.decode(buffered).unwrap() {
            return Some(frame);
        }
        match tokio::time::timeout(Duration::from_secs(2), peer.read_buf(buffered)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return None,
        }
    }
}

#[tokio::test]
async fn a_pong_whose_flush_was_held_up_goes_out_before_the_next_buffered_message() {
    for role in [Role::Server, Role::Client] {
        // A pipe of 256 bytes each way, the peer not reading at first.
        let (ours, mut peer) = tokio::io::duplex(256);
        let config = Config::default().control_messages(true);
        let mut ws = WebSocket::from_raw_socket(ours, role, config);
        // Fill our direction: 256 bytes of a 300-byte message go out, the rest waits.
        ws.feed(Message::binary(vec![9u8; 300])).await.unwrap();
        let flushed = tokio::time::timeout(Duration::from_millis(50), ws.flush()).await;
        assert!(flushed.is_err(), "{role:?}: the pipe should be full");
        let frames = [Frame::ping("held"), Frame::binary("a"), Frame::binary("b")];
        peer.write_all(&wire(role, &frames)).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::Ping(Bytes::from_static(b"held"))
        );
        // The pong is queued behind the rest of the message; its flush cannot
        // complete yet.
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary("a"));
        // The peer reads what the pipe holds: now there is room.
        let mut answers = BytesMut::new();
        while answers.len() < 256 {
            peer.read_buf(&mut answers).await.unwrap();
        }
        // Taking the buffered "b" must go on with the flush the pong is in; `ws`
        // is not polled after it.
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary("b"));
        let mut codec = WsCodec::new(peer_of(role));
        let data = next_frame(&mut peer, &mut answers, &mut codec).await;
        assert_eq!(data.map(|frame| frame.payload().len()), Some(300), "{role:?}");
        let pong = next_frame(&mut peer, &mut answers, &mut codec).await;
        assert_eq!(
            pong,
            Some(Frame::pong("held")),
            "{role:?}: the pong was not flushed"
        );
    }
}
