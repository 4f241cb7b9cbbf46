//! Size limits and write backpressure over a real socket: a frame or message over
//! its limit fails with close 1009 as soon as the limit is crossed, and a server
//! writing to a peer that does not read stops making progress instead of buffering
//! without bound.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use fastws::{CloseCode, Config, Error, Frame, Message};
use futures::SinkExt;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn frame_over_max_frame_size_is_closed_with_1009_from_its_header_alone() {
    let config = Config::default().max_frame_size(1024);
    let (addr, server) = start(config, echo).await;
    let mut client = connect(addr).await;

    // A masked binary frame header announcing 1025 bytes; no payload follows.
    let header = [0x82, 0x80 | 126, 0x04, 0x01, 0xa1, 0xb2, 0xc3, 0xd4];
    let tcp = client.get_mut();
    tcp.write_all(&header).await.expect("write header");
    tcp.flush().await.expect("flush");

    expect_close_with(&mut client, 1009, "frame too large").await;
    expect_eof(&mut client).await;
    let result = finish(server).await;
    assert!(
        matches!(result, Err(Error::FrameTooLarge { len: 1025, max: 1024 })),
        "{result:?}"
    );
}

#[tokio::test]
async fn frame_of_exactly_max_frame_size_is_accepted() {
    let config = Config::default().max_frame_size(1024);
    let (addr, server) = start(config, echo).await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::binary(vec![5u8; 1024])).await;
    assert_eq!(recv(&mut client).await, Frame::binary(vec![5u8; 1024]));

    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    finish(server).await.expect("server result");
}

#[tokio::test]
async fn huge_declared_length_is_closed_with_1009_without_waiting_for_the_payload() {
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;

    // 64-bit length of 2^40 bytes, far over the default 16 MiB limit.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 40).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    let tcp = client.get_mut();
    tcp.write_all(&header).await.expect("write header");

    assert_eq!(expect_close(&mut client).await, Some(1009));
    let result = finish(server).await;
    assert!(
        matches!(result, Err(Error::FrameTooLarge { len, .. }) if len == 1 << 40),
        "{result:?}"
    );
}

#[tokio::test]
async fn message_over_max_message_size_is_closed_with_1009_at_the_fragment_that_crosses_it() {
    let config = Config::default().max_message_size(1000);
    let (addr, server) = start(config, echo).await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::binary(vec![1u8; 600]).with_fin(false)).await;
    // A ping after the first fragment proves the server read it and did not fail.
    send(&mut client, Frame::ping("still open?")).await;
    assert_eq!(recv(&mut client).await, Frame::pong("still open?"));

    // 600 + 600 > 1000: this fragment crosses the limit; no final fragment follows.
    send(&mut client, Frame::continuation(vec![2u8; 600]).with_fin(false)).await;

    expect_close_with(&mut client, 1009, "message too big").await;
    expect_eof(&mut client).await;
    let result = finish(server).await;
    assert!(
        matches!(result, Err(Error::MessageTooLarge { len: 1200, max: 1000 })),
        "{result:?}"
    );
}

#[tokio::test]
async fn unfragmented_message_over_max_message_size_is_closed_with_1009() {
    let config = Config::default().max_message_size(100);
    let (addr, server) = start(config, echo).await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::text("x".repeat(100))).await;
    assert_eq!(recv(&mut client).await, Frame::text("x".repeat(100)));
    send(&mut client, Frame::text("x".repeat(101))).await;

    assert_eq!(expect_close(&mut client).await, Some(1009));
    let result = finish(server).await;
    assert!(matches!(result, Err(Error::MessageTooLarge { .. })), "{result:?}");
}

#[tokio::test]
async fn message_in_more_fragments_than_max_fragments_is_closed_with_1009() {
    let config = Config::default().max_fragments(100);
    let (addr, server) = start(config, echo).await;
    let mut client = connect(addr).await;

    // 100 frames are allowed, empty ones included.
    send(&mut client, Frame::binary("a").with_fin(false)).await;
    for _ in 1..100 {
        send(&mut client, Frame::continuation("").with_fin(false)).await;
    }
    send(&mut client, Frame::ping("still open?")).await;
    assert_eq!(recv(&mut client).await, Frame::pong("still open?"));
    send(&mut client, Frame::continuation("").with_fin(false)).await;

    expect_close_with(&mut client, 1009, "message too big: too many fragments").await;
    expect_eof(&mut client).await;
    let result = finish(server).await;
    assert!(
        matches!(result, Err(Error::TooManyFragments { max: 100 })),
        "{result:?}"
    );
}

#[tokio::test]
async fn message_of_a_million_one_byte_fragments_is_refused_by_default() {
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;

    // Fragments in batches, until the server answers with its close frame: the
    // default limit must stop the message long before a million fragments.
    let mut batch = Vec::new();
    for _ in 0..10_000 {
        batch.extend_from_slice(&masked_frame(0x00, b"x", [1, 2, 3, 4]));
    }
    send(&mut client, Frame::binary("x").with_fin(false)).await;
    let mut sent = 1;
    let tcp = client.get_mut();
    while sent < 1_000_000 {
        if tcp.write_all(&batch).await.is_err() {
            break;
        }
        sent += 10_000;
        // The server stops reading once it has failed; the socket then fills.
        let mut probe = [0u8; 1];
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(1), tcp.peek(&mut probe)).await {
            break;
        }
    }
    assert!(sent < 1_000_000, "a million fragments were taken");
    let close = recv(&mut client).await;
    assert_eq!(close_code(&close), Some(1009));
    let result = finish(server).await;
    assert!(
        matches!(result, Err(Error::TooManyFragments { max }) if max == fastws::config::DEFAULT_MAX_FRAGMENTS),
        "{result:?}"
    );
}

#[tokio::test]
async fn sending_to_a_peer_that_does_not_read_stops_making_progress() {
    const CHUNK: usize = 64 * 1024;
    const LIMIT: usize = 200 << 20;
    let config = Config::default().write_buffer_size(64 * 1024);
    let (addr, server) = start(config, |mut ws| async move {
        let chunk = Bytes::from(vec![0xabu8; CHUNK]);
        let mut sent = 0usize;
        let stalled = loop {
            if sent >= LIMIT {
                break false;
            }
            let send = ws.send(Message::binary(chunk.clone()));
            match tokio::time::timeout(Duration::from_millis(500), send).await {
                Ok(result) => {
                    result?;
                    sent += CHUNK;
                }
                Err(_elapsed) => break true,
            }
        };
        Ok((stalled, sent))
    })
    .await;
    // Upgrade, then never read.
    let client = connect(addr).await;

    let (stalled, sent) = within_for(Duration::from_secs(60), "the server to stall", server)
        .await
        .expect("server task panicked")
        .expect("server result");
    assert!(stalled, "send never stayed pending; {sent} bytes were accepted");
    assert!(
        sent < LIMIT,
        "{sent} bytes accepted for a peer that reads nothing"
    );
    drop(client);
}
