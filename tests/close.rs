//! The close handshake (RFC 6455 §5.5.1, §7) over a real socket: echoing the
//! peer's close, validating close payloads, closing from the server side, the close
//! timeout, and a peer that vanishes without a close frame.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use fastws::{CloseCode, CloseFrame, Config, Error, Frame, Message, OpCode, ProtocolError};
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn received_close_is_echoed_with_its_code_then_the_server_closes_tcp() {
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::close(CloseCode::Normal, "bye")).await;

    assert_eq!(expect_close(&mut client).await, Some(1000));
    // RFC 6455 §7.1.1: the server closes the TCP connection first.
    expect_eof(&mut client).await;
    // The stream yields the peer's close, then ends (the echo loop returns Ok).
    let seen = finish(server).await.expect("server result");
    assert_eq!(
        seen,
        vec![Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))]
    );
}

#[tokio::test]
async fn stream_ends_after_yielding_the_close() {
    let (addr, server) = start(Config::default(), |mut ws| async move {
        let first = ws.next().await;
        let second = ws.next().await;
        let third = ws.next().await;
        Ok((first, second.is_none(), third.is_none()))
    })
    .await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::close(CloseCode::Away, "going")).await;
    assert_eq!(expect_close(&mut client).await, Some(1001));
    expect_eof(&mut client).await;

    let (first, second_is_none, third_is_none) = finish(server).await.expect("server result");
    match first {
        Some(Ok(Message::Close(Some(close)))) => {
            assert_eq!(close.code, CloseCode::Away);
            assert_eq!(close.reason, "going");
        }
        other => panic!("expected the peer's close, got {other:?}"),
    }
    assert!(second_is_none, "stream must end after the close");
    assert!(third_is_none, "stream must stay ended");
}

#[tokio::test]
async fn empty_close_is_echoed_empty() {
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::close_empty()).await;

    let echo_frame = recv(&mut client).await;
    assert_eq!(echo_frame.opcode(), OpCode::Close);
    assert!(echo_frame.payload().is_empty(), "{echo_frame:?}");
    expect_eof(&mut client).await;
    let seen = finish(server).await.expect("server result");
    assert_eq!(seen, vec![Message::Close(None)]);
}

/// Sends a close frame with `payload` as-is; returns the code the server answered
/// with and the server's result.
async fn close_with_payload(payload: Vec<u8>) -> (Option<u16>, Result<Vec<Message>, Error>) {
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;
    send(&mut client, Frame::new(OpCode::Close, payload)).await;
    let code = expect_close(&mut client).await;
    expect_eof(&mut client).await;
    (code, finish(server).await)
}

#[tokio::test]
async fn one_byte_close_payload_is_answered_with_1002() {
    let (code, result) = close_with_payload(vec![0x03]).await;
    assert_eq!(code, Some(1002));
    assert!(
        matches!(result, Err(Error::Protocol(ProtocolError::InvalidClosePayload))),
        "{result:?}"
    );
}

#[tokio::test]
async fn close_codes_not_allowed_on_the_wire_are_answered_with_1002() {
    for sent in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        let (code, result) = close_with_payload(sent.to_be_bytes().to_vec()).await;
        assert_eq!(code, Some(1002), "close code {sent}");
        assert!(
            matches!(
                result,
                Err(Error::Protocol(ProtocolError::InvalidCloseCode(c))) if c == sent
            ),
            "close code {sent}: {result:?}"
        );
    }
}

#[tokio::test]
async fn close_reason_that_is_not_utf8_is_answered_with_1007() {
    for reason in [&b"\xff"[..], b"ok\xc3", b"\xed\xa0\x80"] {
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(reason);
        let (code, result) = close_with_payload(payload).await;
        assert_eq!(code, Some(1007), "reason {reason:?}");
        assert!(
            matches!(result, Err(Error::InvalidUtf8)),
            "reason {reason:?}: {result:?}"
        );
    }
}

#[tokio::test]
async fn valid_close_codes_are_echoed() {
    let valid = (1000u16..=1003)
        .chain(1007..=1014)
        .chain([3000, 3999, 4000, 4999]);
    for sent in valid {
        let (code, result) = close_with_payload(sent.to_be_bytes().to_vec()).await;
        assert_eq!(code, Some(sent), "close code {sent}");
        let seen = result.unwrap_or_else(|err| panic!("close code {sent}: {err}"));
        assert_eq!(
            seen,
            vec![Message::close(CloseCode::from(sent), "")],
            "close code {sent}"
        );
    }
}

#[tokio::test]
async fn sending_data_after_the_close_handshake_is_connection_closed() {
    let (addr, server) = start(Config::default(), |mut ws| async move {
        while let Some(message) = ws.next().await {
            message?;
        }
        Ok(ws.send(Message::text("too late")).await)
    })
    .await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    expect_eof(&mut client).await;

    let send_result = finish(server).await.expect("server result");
    let err = send_result.expect_err("sending after close must fail");
    assert!(err.is_closed(), "{err:?}");
    assert!(matches!(err, Error::ConnectionClosed), "{err:?}");
}

#[tokio::test]
async fn data_is_refused_once_the_server_has_sent_its_close() {
    let (addr, server) = start(Config::default(), |mut ws| async move {
        ws.send(Message::close(CloseCode::Normal, "")).await?;
        let refused = ws.send(Message::text("after close")).await;
        // Finish the handshake.
        while let Some(message) = ws.next().await {
            message?;
        }
        Ok(refused)
    })
    .await;
    let mut client = connect(addr).await;

    assert_eq!(expect_close(&mut client).await, Some(1000));
    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    expect_eof(&mut client).await;

    let refused = finish(server).await.expect("server result");
    assert!(matches!(refused, Err(Error::ConnectionClosed)), "{refused:?}");
}

#[tokio::test]
async fn server_close_message_is_sent_and_the_stream_ends_when_the_peer_answers() {
    let (addr, server) = start(Config::default(), |mut ws| async move {
        ws.send(Message::close(CloseCode::Normal, "done")).await?;
        let mut seen = Vec::new();
        while let Some(message) = ws.next().await {
            seen.push(message?);
        }
        Ok(seen)
    })
    .await;
    let mut client = connect(addr).await;

    let close = recv(&mut client).await;
    assert_eq!(close_code(&close), Some(1000));
    assert_eq!(&close.payload()[2..], b"done");
    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    expect_eof(&mut client).await;

    let seen = finish(server).await.expect("server result");
    assert_eq!(seen, vec![Message::close(CloseCode::Normal, "")]);
}

#[tokio::test]
async fn sink_close_sends_close_1000_and_the_stream_ends_when_the_peer_answers() {
    let (addr, server) = start(Config::default(), |mut ws| async move {
        SinkExt::close(&mut ws).await?;
        let mut seen = Vec::new();
        while let Some(message) = ws.next().await {
            seen.push(message?);
        }
        Ok(seen)
    })
    .await;
    let mut client = connect(addr).await;

    assert_eq!(expect_close(&mut client).await, Some(1000));
    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    expect_eof(&mut client).await;

    let seen = finish(server).await.expect("server result");
    assert_eq!(seen, vec![Message::close(CloseCode::Normal, "")]);
}

#[tokio::test]
async fn data_sent_by_the_peer_before_its_close_reply_is_still_received() {
    let (addr, server) = start(Config::default(), |mut ws| async move {
        ws.send(Message::close(CloseCode::Away, "")).await?;
        let mut seen = Vec::new();
        while let Some(message) = ws.next().await {
            seen.push(message?);
        }
        Ok(seen)
    })
    .await;
    let mut client = connect(addr).await;

    assert_eq!(expect_close(&mut client).await, Some(1001));
    send(&mut client, Frame::text("last words")).await;
    send(&mut client, Frame::close(CloseCode::Away, "")).await;
    expect_eof(&mut client).await;

    let seen = finish(server).await.expect("server result");
    assert_eq!(
        seen,
        vec![Message::text("last words"), Message::close(CloseCode::Away, "")]
    );
}

#[tokio::test]
async fn close_handshake_the_peer_never_completes_ends_with_close_timeout() {
    let close_timeout = Duration::from_millis(300);
    let config = Config::default().close_timeout(close_timeout);
    let (addr, server) = start(config, |mut ws| async move {
        let started = Instant::now();
        ws.send(Message::close(CloseCode::Normal, "")).await?;
        let mut items = Vec::new();
        while let Some(item) = ws.next().await {
            items.push(item);
        }
        Ok((items, started.elapsed()))
    })
    .await;
    let mut client = connect(addr).await;

    // The client reads the close and never answers, but keeps the socket open.
    assert_eq!(expect_close(&mut client).await, Some(1000));
    expect_eof(&mut client).await;

    let (items, elapsed) = finish(server).await.expect("server result");
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(matches!(items[0], Err(Error::CloseTimeout)), "{:?}", items[0]);
    assert!(
        elapsed >= close_timeout - Duration::from_millis(10),
        "gave up after {elapsed:?}, before the close timeout"
    );
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    drop(client);
}

#[tokio::test]
async fn peer_dropping_tcp_without_a_close_frame_is_an_unexpected_eof() {
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;
    send(&mut client, Frame::text("hello")).await;
    assert_eq!(recv(&mut client).await, Frame::text("hello"));

    drop(client);

    let result = finish(server).await;
    match result {
        Err(Error::Io(err)) => {
            assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}")
        }
        other => panic!("expected an unexpected EOF, got {other:?}"),
    }
}

#[tokio::test]
async fn close_code_in_the_message_reflects_the_payload_bytes() {
    // 4000 with a reason: the server yields exactly what was on the wire.
    let (addr, server) = start(Config::default(), echo).await;
    let mut client = connect(addr).await;
    let mut payload = 4000u16.to_be_bytes().to_vec();
    payload.extend_from_slice("κόσμε".as_bytes());
    send(&mut client, Frame::new(OpCode::Close, Bytes::from(payload))).await;
    assert_eq!(expect_close(&mut client).await, Some(4000));
    let seen = finish(server).await.expect("server result");
    assert_eq!(seen, vec![Message::close(CloseCode::from(4000), "κόσμε")]);
}

#[tokio::test]
async fn close_timeout_applies_even_while_the_peer_keeps_sending_data() {
    let close_timeout = Duration::from_millis(300);
    let config = Config::default().close_timeout(close_timeout);
    let (addr, server) = start(config, |mut ws| async move {
        let started = Instant::now();
        ws.send(Message::close(CloseCode::Normal, "")).await?;
        let mut data = 0usize;
        let mut last = None;
        while let Some(item) = ws.next().await {
            match item {
                Ok(message) if message.is_data() => data += 1,
                other => last = Some(other),
            }
        }
        Ok((data, last, started.elapsed()))
    })
    .await;
    let client = connect(addr).await;
    let mut tcp = client.into_inner();

    // Never answer the close; flood data frames until the server hangs up.
    let mut batch = Vec::new();
    for i in 0..1000u32 {
        batch.extend_from_slice(&masked_frame(0x82, &i.to_be_bytes(), [1, 2, 3, 4]));
    }
    let flood = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let started = Instant::now();
        while tcp.write_all(&batch).await.is_ok() {
            if started.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
    });

    let (data, last, elapsed) = finish(server).await.expect("server result");
    flood.abort();
    assert!(data > 0, "the flood never reached the server");
    assert!(
        matches!(last, Some(Err(Error::CloseTimeout))),
        "{last:?} after {data} data messages"
    );
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
}

/// Sends 64 KiB messages until `send` stays pending for 300 ms: the peer's receive
/// window and our write buffer are full.
async fn fill_until_stalled(ws: &mut fastws::WebSocket<tokio::net::TcpStream>) -> Result<(), Error> {
    let chunk = Bytes::from(vec![0u8; 64 * 1024]);
    for _ in 0..(200 << 4) {
        let send = ws.send(Message::binary(chunk.clone()));
        if tokio::time::timeout(Duration::from_millis(300), send)
            .await
            .is_err()
        {
            return Ok(());
        }
    }
    panic!("200 MiB sent to a peer that reads nothing");
}

#[tokio::test]
async fn close_to_a_peer_that_stopped_reading_ends_the_stream_after_the_close_timeout() {
    let close_timeout = Duration::from_millis(300);
    let config = Config::default()
        .close_timeout(close_timeout)
        .write_buffer_size(64 * 1024);
    let (addr, server) = start(config, |mut ws| async move {
        fill_until_stalled(&mut ws).await?;
        let started = Instant::now();
        // Closing cannot flush; it must not stop the stream from timing out.
        let _ = tokio::time::timeout(Duration::from_millis(50), SinkExt::close(&mut ws)).await;
        let mut items = Vec::new();
        while let Some(item) = ws.next().await {
            items.push(item);
        }
        Ok((items, started.elapsed()))
    })
    .await;
    // Upgrade, then never read.
    let client = connect(addr).await;

    let (items, elapsed) = finish(server).await.expect("server result");
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(matches!(items[0], Err(Error::CloseTimeout)), "{items:?}");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    drop(client);
}

#[tokio::test]
async fn sink_close_to_a_peer_that_stopped_reading_returns_after_the_close_timeout() {
    let close_timeout = Duration::from_millis(300);
    let config = Config::default()
        .close_timeout(close_timeout)
        .write_buffer_size(64 * 1024);
    let (addr, server) = start(config, |mut ws| async move {
        fill_until_stalled(&mut ws).await?;
        let started = Instant::now();
        let closed = tokio::time::timeout(Duration::from_secs(3), SinkExt::close(&mut ws)).await;
        Ok((closed, started.elapsed()))
    })
    .await;
    // Upgrade, then never read.
    let client = connect(addr).await;

    let (closed, elapsed) = finish(server).await.expect("server result");
    let result = closed.unwrap_or_else(|_| panic!("close() still pending after 3 s"));
    // Either outcome is fine once the timeout has passed: done, or CloseTimeout.
    assert!(matches!(result, Ok(()) | Err(Error::CloseTimeout)), "{result:?}");
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    drop(client);
}

#[tokio::test]
async fn every_failure_close_says_why_in_its_reason() {
    let key = [9, 8, 7, 6];
    let cases: [(Vec<u8>, u16, &str); 5] = [
        (
            masked_frame(0x83, b"", key),
            1002,
            "protocol error: reserved opcode 0x3",
        ),
        (
            vec![0x81, 0x00],
            1002,
            "protocol error: client frame is not masked",
        ),
        (
            masked_frame(0x09, b"", key),
            1002,
            "protocol error: control frame is fragmented",
        ),
        (masked_frame(0x81, b"ok\xff", key), 1007, "invalid UTF-8"),
        (
            masked_frame(0x80, b"", key),
            1002,
            "protocol error: continuation frame without a message in progress",
        ),
    ];
    for (wire, code, reason) in cases {
        let (addr, server) = start(Config::default(), echo).await;
        let mut client = connect(addr).await;
        client.get_mut().write_all(&wire).await.expect("write");
        let close = recv(&mut client).await;
        assert_eq!(close_code(&close), Some(code), "{reason}");
        assert_eq!(close_reason(&close), reason);
        assert!(close.payload().len() <= 125);
        expect_eof(&mut client).await;
        let result = finish(server).await;
        let error = result.expect_err(reason);
        assert_eq!(
            error
                .close_frame()
                .map(|close| close.reason.to_string())
                .as_deref(),
            Some(reason)
        );
    }
}

/// A socket the peer has reset: `input` can still be read, then the end of input;
/// the first write meets the reset (reported once, as the system does), later
/// ones a broken pipe.
struct ResetSocket {
    input: Vec<u8>,
    reset_reported: bool,
}

impl tokio::io::AsyncRead for ResetSocket {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = buf.remaining().min(self.input.len());
        buf.put_slice(&self.input[..n]);
        self.input.drain(..n);
        std::task::Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for ResetSocket {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let kind = if std::mem::replace(&mut self.reset_reported, true) {
            std::io::ErrorKind::BrokenPipe
        } else {
            std::io::ErrorKind::ConnectionReset
        };
        std::task::Poll::Ready(Err(kind.into()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_reset_met_by_a_write_ahead_of_a_read_is_reported_as_a_reset() {
    // The read path writes queued large payloads before it reads. The system
    // reports a reset once: if that write met it, the read after it sees only the
    // end of input, and the reset must still be what the stream reports.
    let io = ResetSocket {
        input: masked_frame(0x82, &vec![7u8; 64 * 1024], [1, 2, 3, 4]),
        reset_reported: false,
    };
    let mut ws = fastws::WebSocket::from_raw_socket(io, fastws::Role::Server, Config::default());
    let message = ws.next().await.unwrap().unwrap();
    // Queued, not flushed: the next read writes it out first.
    ws.feed(message).await.unwrap();
    match within("the error", ws.next()).await {
        Some(Err(Error::Io(err))) => assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}"),
        other => panic!("expected the reset, got {other:?}"),
    }
}
