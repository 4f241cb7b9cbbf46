//! UTF-8 validation of text messages (RFC 6455 §5.6, §8.1) over a real socket:
//! invalid text fails with close 1007 as soon as it arrives (in a fragment, or in
//! the part of a frame received so far), while code points split across fragments
//! or reads are accepted.

mod common;

use std::time::Duration;

use common::*;
use fastws::{CloseCode, Config, Error, Frame, Message};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

/// U+D800, a surrogate: never valid in UTF-8.
const SURROGATE: &[u8] = b"\xed\xa0\x80";

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_is_closed_with_1007() {
    for payload in [
        &b"\xff"[..],
        b"hello\xc0\xafworld",
        SURROGATE,
        b"\xf4\x90\x80\x80",
    ] {
        let (addr, server) = start(Config::default(), echo).await;
        let mut client = connect(addr).await;

        send(&mut client, Frame::text(payload)).await;

        assert_eq!(expect_close(&mut client).await, Some(1007), "{payload:?}");
        expect_eof(&mut client).await;
        let result = finish(server).await;
        assert!(
            matches!(result, Err(Error::InvalidUtf8)),
            "{payload:?}: {result:?}"
        );
    }
}

#[tokio::test]
async fn text_ending_inside_a_code_point_is_closed_with_1007() {
    // "€" is E2 82 AC; the message stops after two of its bytes.
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;
    send(&mut client, Frame::text(&b"price: \xe2\x82"[..])).await;
    assert_eq!(expect_close(&mut client).await, Some(1007));
    assert!(matches!(finish(server).await, Err(Error::InvalidUtf8)));

    // The same, with the cut-off code point in the final fragment.
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;
    send(&mut client, Frame::text("price: ").with_fin(false)).await;
    send(&mut client, Frame::continuation(&b"\xe2\x82"[..])).await;
    assert_eq!(expect_close(&mut client).await, Some(1007));
    assert!(matches!(finish(server).await, Err(Error::InvalidUtf8)));
}

#[tokio::test]
async fn invalid_utf8_in_a_middle_fragment_is_closed_before_the_final_fragment() {
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::text("valid start, ").with_fin(false)).await;
    send(&mut client, Frame::continuation(SURROGATE).with_fin(false)).await;

    // No final fragment was sent: the close must come on its own.
    assert_eq!(expect_close(&mut client).await, Some(1007));
    expect_eof(&mut client).await;
    let result = finish(server).await;
    assert!(matches!(result, Err(Error::InvalidUtf8)), "{result:?}");
}

#[tokio::test]
async fn code_point_split_across_fragments_is_accepted() {
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;
    // "a€b𝄞": € = E2 82 AC, 𝄞 = F0 9D 84 9E.
    let text = "a€b𝄞";
    let bytes = text.as_bytes();

    send(&mut client, Frame::text(&bytes[..2]).with_fin(false)).await;
    send(&mut client, Frame::continuation(&bytes[2..3]).with_fin(false)).await;
    send(&mut client, Frame::continuation(&bytes[3..6]).with_fin(false)).await;
    send(&mut client, Frame::continuation(&bytes[6..])).await;

    assert_eq!(recv(&mut client).await, Frame::text(text));
    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    let seen = finish(server).await.expect("server result");
    assert_eq!(seen[0], Message::text(text));
}

#[tokio::test]
async fn invalid_utf8_fails_before_the_rest_of_its_frame_arrives() {
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;
    // One masked text frame of 40 bytes; the invalid byte is in the first half.
    let mut payload = b"hello \xff".to_vec();
    payload.resize(40, b'x');
    let wire = masked_frame(0x81, &payload, [0x37, 0xfa, 0x21, 0x3d]);
    let header_len = 2 + 4;
    let (first, rest) = wire.split_at(header_len + 20);

    let tcp = client.get_mut();
    tcp.write_all(first).await.expect("write first half");
    tcp.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Nothing more was written: the close must already be on its way.
    let code = within_for(
        Duration::from_secs(2),
        "a close before the frame completed",
        expect_close(&mut client),
    )
    .await;
    assert_eq!(code, Some(1007));
    // The rest may or may not be accepted by the closing socket.
    let _ = client.get_mut().write_all(rest).await;
    let result = finish(server).await;
    assert!(matches!(result, Err(Error::InvalidUtf8)), "{result:?}");
}

#[tokio::test]
async fn code_point_split_across_reads_of_one_frame_is_accepted() {
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;
    let text = "κόσμε €€€ 𝄞";
    let payload = text.as_bytes();
    let wire = masked_frame(0x81, payload, [1, 2, 3, 4]);
    // Three TCP writes, cut right after the lead byte of the first "€" and after
    // the second byte of "𝄞".
    let header_len = 2 + 4;
    let euro = text.find('€').unwrap();
    let clef = text.find('𝄞').unwrap();
    let cuts = [header_len + euro + 1, header_len + clef + 2];

    let mut start_at = 0;
    for cut in cuts.into_iter().chain([wire.len()]) {
        let tcp = client.get_mut();
        tcp.write_all(&wire[start_at..cut]).await.expect("write");
        tcp.flush().await.expect("flush");
        tokio::time::sleep(Duration::from_millis(50)).await;
        start_at = cut;
    }

    assert_eq!(recv(&mut client).await, Frame::text(text));
    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    let seen = finish(server).await.expect("server result");
    assert_eq!(seen[0], Message::text(text));
}

#[tokio::test]
async fn invalid_utf8_in_a_continuation_fails_before_that_fragment_completes() {
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;
    send(&mut client, Frame::text("fine so far, ").with_fin(false)).await;

    let mut payload = b"then \xc3\x28".to_vec();
    payload.resize(64, b'y');
    let wire = masked_frame(0x80, &payload, [9, 8, 7, 6]);
    let tcp = client.get_mut();
    tcp.write_all(&wire[..6 + 16]).await.expect("write");
    tcp.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(100)).await;

    let code = within_for(
        Duration::from_secs(2),
        "a close before the continuation completed",
        expect_close(&mut client),
    )
    .await;
    assert_eq!(code, Some(1007));
    let result = finish(server).await;
    assert!(matches!(result, Err(Error::InvalidUtf8)), "{result:?}");
}

#[tokio::test]
async fn binary_messages_are_not_validated_as_utf8() {
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;
    send(&mut client, Frame::binary(&b"\xff\xfe"[..]).with_fin(false)).await;
    send(&mut client, Frame::continuation(SURROGATE)).await;
    assert_eq!(
        recv(&mut client).await,
        Frame::binary(&b"\xff\xfe\xed\xa0\x80"[..])
    );
    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    finish(server).await.expect("server result");
}

#[tokio::test]
async fn code_point_split_across_a_fragment_and_a_read_is_accepted() {
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;
    // "a€b": the first fragment ends after the lead byte of "€"; the continuation
    // arrives in two writes cut after the second byte.
    send(&mut client, Frame::text(&b"a\xe2"[..]).with_fin(false)).await;
    let wire = masked_frame(0x80, b"\x82\xacb", [4, 3, 2, 1]);
    let (first, rest) = wire.split_at(6 + 1);
    for part in [first, rest] {
        let tcp = client.get_mut();
        tcp.write_all(part).await.expect("write");
        tcp.flush().await.expect("flush");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert_eq!(recv(&mut client).await, Frame::text("a€b"));
    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    let seen = finish(server).await.expect("server result");
    assert_eq!(seen[0], Message::text("a€b"));
}

#[tokio::test]
async fn invalid_sequence_cut_across_reads_fails_when_its_second_byte_arrives() {
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;
    // ED A0 80 is a surrogate; ED alone is a valid prefix, ED A0 no longer is.
    let mut payload = b"abc\xed\xa0\x80".to_vec();
    payload.resize(32, b'z');
    let wire = masked_frame(0x81, &payload, [0x11, 0x22, 0x33, 0x44]);
    let header_len = 2 + 4;

    let tcp = client.get_mut();
    tcp.write_all(&wire[..header_len + 4]).await.expect("write");
    tcp.flush().await.expect("flush");
    // Up to and including ED nothing is wrong yet: no close comes.
    let early = tokio::time::timeout(Duration::from_millis(200), client.next()).await;
    assert!(early.is_err(), "closed on a valid prefix: {early:?}");
    let tcp = client.get_mut();
    tcp.write_all(&wire[header_len + 4..header_len + 5])
        .await
        .expect("write");
    tcp.flush().await.expect("flush");

    let code = within_for(
        Duration::from_secs(2),
        "a close once A0 arrived",
        expect_close(&mut client),
    )
    .await;
    assert_eq!(code, Some(1007));
    let result = finish(server).await;
    assert!(matches!(result, Err(Error::InvalidUtf8)), "{result:?}");
}
