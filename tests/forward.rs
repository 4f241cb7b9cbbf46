//! `SplitStream::forward`, the README's echo: into the stream's own half it runs
//! under one lock per poll, and must still do everything futures' `forward` does —
//! every message in order, pings answered, the close handshake, the stream's error
//! returned with its close code on the wire, backpressure without loss — and into
//! any other sink it relays as `StreamExt::forward` does.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use fastws::{CloseCode, Config, Frame, OpCode, Role, WebSocket, WsCodec};
use futures::{SinkExt, StreamExt};
use tokio::io::DuplexStream;
use tokio_util::codec::Framed;

fn numbered(seq: usize) -> Bytes {
    let mut payload = format!("message {seq:05} ").into_bytes();
    payload.resize(16 + seq % 300, b'x');
    Bytes::from(payload)
}

#[tokio::test]
async fn echo_into_its_own_half_answers_every_message_in_order_and_the_close() {
    const MESSAGES: usize = 2_000;
    let (addr, server) = start(Config::default(), |ws| async move {
        let (sink, stream) = ws.split();
        stream.forward(sink).await
    })
    .await;
    let client = connect(addr).await;
    let (mut to_server, mut from_server) = client.split();

    let writer = tokio::spawn(async move {
        for seq in 0..MESSAGES {
            let payload = numbered(seq);
            let frame = match seq % 3 {
                0 => Frame::text(payload),
                1 => Frame::binary(payload),
                // A message in two fragments.
                _ => {
                    let (head, tail) = payload.split_at(7);
                    to_server
                        .feed(Frame::new(OpCode::Binary, Bytes::copy_from_slice(head)).with_fin(false))
                        .await
                        .expect("send");
                    Frame::new(OpCode::Continuation, Bytes::copy_from_slice(tail))
                }
            };
            to_server.feed(frame).await.expect("send");
            if seq % 100 == 0 {
                to_server
                    .feed(Frame::ping(format!("ping {seq}")))
                    .await
                    .expect("send");
            }
        }
        to_server.flush().await.expect("flush");
        to_server
    });

    let mut pongs = 0;
    let mut seq = 0;
    while seq < MESSAGES {
        let frame = recv_half(&mut from_server).await;
        if frame.opcode() == OpCode::Pong {
            pongs += 1;
            continue;
        }
        let expected_opcode = if seq % 3 == 0 {
            OpCode::Text
        } else {
            OpCode::Binary
        };
        assert_eq!(frame.opcode(), expected_opcode, "message {seq}");
        assert!(frame.is_fin(), "message {seq} echoed in fragments");
        assert_eq!(frame.payload(), &numbered(seq), "message {seq}");
        seq += 1;
    }
    assert!(pongs >= 1, "no ping was answered");

    let mut to_server = writer.await.expect("writer");
    to_server
        .send(Frame::close(CloseCode::Normal, "bye"))
        .await
        .expect("send close");
    let mut client = to_server.reunite(from_server).expect("same client");
    loop {
        let frame = recv(&mut client).await;
        if frame.opcode() != OpCode::Pong {
            assert_eq!(close_code(&frame), Some(1000), "{frame:?}");
            break;
        }
    }
    expect_eof(&mut client).await;
    finish(server)
        .await
        .expect("forward ends cleanly after the close handshake");
}

async fn recv_half(stream: &mut futures::stream::SplitStream<Client>) -> Frame {
    match within("a frame from the server", stream.next()).await {
        Some(Ok(frame)) => frame,
        other => panic!("expected a frame, got {other:?}"),
    }
}

#[tokio::test]
async fn a_violation_ends_forward_with_the_error_and_its_close_code_on_the_wire() {
    let (addr, server) = start(Config::default(), |ws| async move {
        let (sink, stream) = ws.split();
        stream.forward(sink).await
    })
    .await;
    let mut client = connect(addr).await;
    send(&mut client, Frame::text("before")).await;
    assert_eq!(recv(&mut client).await.payload(), &Bytes::from_static(b"before"));

    // Invalid UTF-8 in a text message: RFC 6455 §8.1, close 1007.
    send(
        &mut client,
        Frame::new(OpCode::Text, Bytes::from_static(b"\xff\xfe")),
    )
    .await;
    assert_eq!(expect_close(&mut client).await, Some(1007));
    let error = finish(server)
        .await
        .expect_err("forward returns the stream's error");
    assert_eq!(error.close_code(), Some(CloseCode::Invalid), "{error:?}");
}

/// A server over an in-memory pipe of `pipe` bytes with a small write buffer, and
/// the raw client at the other end.
fn over_pipe(pipe: usize) -> (WebSocket<DuplexStream>, Framed<DuplexStream, WsCodec>) {
    let (server_io, client_io) = tokio::io::duplex(pipe);
    let config = Config::default().write_buffer_size(4096);
    let ws = WebSocket::from_raw_socket(server_io, Role::Server, config);
    (ws, Framed::new(client_io, WsCodec::client()))
}

#[tokio::test]
async fn a_peer_that_stops_reading_holds_the_echo_back_and_loses_nothing() {
    const MESSAGES: usize = 400;
    let (ws, client) = over_pipe(8 * 1024);
    let server = tokio::spawn(async move {
        let (sink, stream) = ws.split();
        stream.forward(sink).await
    });
    let (mut to_server, mut from_server) = client.split();
    let writer = tokio::spawn(async move {
        for seq in 0..MESSAGES {
            to_server.send(Frame::binary(numbered(seq))).await.expect("send");
        }
        to_server
    });

    // Nothing is read for a while: the pipe and the write buffer fill, and the
    // echo must wait with a received message in hand, not drop it or end.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !server.is_finished(),
        "forward ended while its peer was not reading"
    );
    assert!(!writer.is_finished(), "the echo did not push back on the writer");

    for seq in 0..MESSAGES {
        let frame = within("an echo", from_server.next())
            .await
            .expect("a frame")
            .expect("a valid frame");
        assert_eq!(frame.payload(), &numbered(seq), "message {seq}");
    }
    let mut to_server = writer.await.expect("writer");
    to_server
        .send(Frame::close(CloseCode::Normal, ""))
        .await
        .expect("send close");
    let close = within("the close echo", from_server.next())
        .await
        .expect("a frame")
        .expect("valid");
    assert_eq!(close_code(&close), Some(1000));
    finish(server).await.expect("forward ends cleanly");
}

#[tokio::test]
async fn forward_into_another_connections_sink_relays_and_closes_it_at_the_end() {
    let (from, mut client_a) = over_pipe(64 * 1024);
    let (to, mut client_b) = over_pipe(64 * 1024);
    let relay = tokio::spawn(async move {
        let (_sink_a, stream_a) = from.split();
        let (sink_b, mut stream_b) = to.split();
        // Read B too, so its close handshake can finish.
        let drain_b = tokio::spawn(async move { while stream_b.next().await.is_some() {} });
        let relayed = stream_a.forward(sink_b).await;
        drain_b.await.expect("drain");
        relayed
    });

    for seq in 0..50 {
        client_a.send(Frame::binary(numbered(seq))).await.expect("send");
    }
    for seq in 0..50 {
        let frame = within("a relayed message", client_b.next())
            .await
            .expect("a frame")
            .expect("valid");
        assert_eq!(frame.payload(), &numbered(seq), "message {seq}");
    }
    // A's close ends A's stream; its close message is relayed as B's close.
    client_a
        .send(Frame::close(CloseCode::Away, "a leaves"))
        .await
        .expect("close a");
    let close_b = within("B's close", client_b.next())
        .await
        .expect("a frame")
        .expect("valid");
    assert_eq!(close_code(&close_b), Some(1001), "{close_b:?}");
    client_b
        .send(Frame::close(CloseCode::Away, ""))
        .await
        .expect("answer b");
    finish(relay).await.expect("relay ends cleanly");
}
