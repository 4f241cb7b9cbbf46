//! Streaming messages over real sockets on 127.0.0.1: `MessageWriter` puts
//! fragments of the configured size on the wire, `MessageReader` yields a message
//! fragment by fragment while the connection keeps answering pings and enforcing
//! its limits, both work on split halves and with permessage-deflate, and a
//! 256 MiB message streams through an echo in both directions in bounded memory.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::metered::{IoPeaks, Metered};
use common::*;
#[cfg(feature = "deflate")]
use fastws::DeflateConfig;
use fastws::streaming::{MessageKind, MessageReader};
use fastws::{Acceptor, ClientRequest, CloseCode, Config, Error, Frame, Message, OpCode, WebSocket};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// A config without permessage-deflate, so frames on the wire are what was written.
fn plain() -> Config {
    #[cfg(feature = "deflate")]
    return Config::default().deflate(DeflateConfig::disabled());
    #[cfg(not(feature = "deflate"))]
    Config::default()
}

/// The `fastws::Error` inside an `io::Error` of a reader or writer.
fn inner_error(err: &io::Error) -> Option<&Error> {
    err.get_ref().and_then(|inner| inner.downcast_ref::<Error>())
}

/// Runs the client handshake of fastws over `io` to the server at `addr`.
async fn fastws_client<S>(io: S, addr: SocketAddr, config: Config) -> (WebSocket<S>, http::Response<()>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = ClientRequest::new(format!("ws://{addr}/")).config(config);
    within("the client handshake", fastws::client_handshake(io, request))
        .await
        .expect("client handshake")
}

/// Connects a fastws client over plain TCP.
async fn connect_fastws(addr: SocketAddr, config: Config) -> WebSocket<TcpStream> {
    let tcp = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    fastws_client(tcp, addr, config).await.0
}

/// Receives the frames of one data message (up to the frame with FIN), failing on
/// any control frame in between.
async fn recv_message_frames(client: &mut Client) -> Vec<Frame> {
    let mut frames = Vec::new();
    loop {
        let frame = recv(client).await;
        assert!(frame.opcode().is_data(), "expected a data frame, got {frame:?}");
        let fin = frame.is_fin();
        frames.push(frame);
        if fin {
            return frames;
        }
    }
}

/// Requires `frames` to be one message of `opcode` in fragments of `sizes`, FIN only
/// on the last and no RSV bits; returns the payload.
fn check_fragments(frames: &[Frame], opcode: OpCode, sizes: &[usize]) -> Vec<u8> {
    let got: Vec<(OpCode, usize, bool, u8)> = frames
        .iter()
        .map(|f| (f.opcode(), f.payload().len(), f.is_fin(), f.rsv()))
        .collect();
    let expected: Vec<(OpCode, usize, bool, u8)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let op = if i == 0 { opcode } else { OpCode::Continuation };
            (op, size, i + 1 == sizes.len(), 0)
        })
        .collect();
    assert_eq!(got, expected, "(opcode, length, fin, rsv) of each frame");
    frames.iter().flat_map(|f| f.payload().iter().copied()).collect()
}

/// Ends a test's connection from the raw client: close 1000, its echo, then EOF.
async fn close_from_client(client: &mut Client) {
    send(client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(client).await, Some(1000));
    expect_eof(client).await;
}

/// Reads the stream to its end, returning everything it yielded.
async fn drain<S>(ws: &mut WebSocket<S>) -> Result<Vec<Message>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut seen = Vec::new();
    while let Some(message) = ws.next().await {
        seen.push(message?);
    }
    Ok(seen)
}

/// Text of exactly `len` bytes with two- and three-byte characters, so fragment
/// boundaries fall inside code points.
fn multibyte_text(len: usize) -> String {
    let mut text = String::with_capacity(len + 4);
    let words = ["κόσμε ", "€uro ", "plain ", "ñandú "];
    let mut i = 0;
    while text.len() < len {
        text.push_str(words[i % words.len()]);
        i += 1;
    }
    while text.len() > len {
        text.pop();
    }
    // Pad with ASCII if popping a multi-byte character left it short.
    while text.len() < len {
        text.push('.');
    }
    text
}

// ---------------------------------------------------------------------------------
// A deterministic byte pattern: position-dependent, cheap to produce and check
// ---------------------------------------------------------------------------------

/// The pattern repeats with this (prime) period, so a lost, repeated or reordered
/// piece of any power-of-two size shows up as a mismatch.
const PERIOD: usize = 65_521;

/// Two periods of pseudo-random bytes: any window of up to `PERIOD` bytes starting
/// in the first period is contiguous.
fn pattern_block() -> Arc<[u8]> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let period: Vec<u8> = (0..PERIOD)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect();
    let mut block = period.clone();
    block.extend_from_slice(&period);
    block.into()
}

/// Byte `offset + i` of the pattern, for `i` in `0..len`.
fn pattern_bytes(block: &[u8], offset: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut pos = offset;
    while out.len() < len {
        let start = (pos % PERIOD as u64) as usize;
        let n = (len - out.len()).min(PERIOD);
        out.extend_from_slice(&block[start..start + n]);
        pos += n as u64;
    }
    out
}

/// An `AsyncRead` of `remaining` bytes of the pattern, starting at `offset`.
struct PatternReader {
    block: Arc<[u8]>,
    offset: u64,
    remaining: u64,
}

impl PatternReader {
    fn new(block: &Arc<[u8]>, offset: u64, len: u64) -> PatternReader {
        PatternReader {
            block: Arc::clone(block),
            offset,
            remaining: len,
        }
    }
}

impl AsyncRead for PatternReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let start = (self.offset % PERIOD as u64) as usize;
        let n = (self.remaining.min(buf.remaining() as u64) as usize).min(PERIOD);
        buf.put_slice(&self.block[start..start + n]);
        self.offset += n as u64;
        self.remaining -= n as u64;
        Poll::Ready(Ok(()))
    }
}

/// Checks streamed bytes against the pattern as they arrive.
struct PatternChecker {
    block: Arc<[u8]>,
    offset: u64,
    seen: u64,
}

impl PatternChecker {
    fn new(block: &Arc<[u8]>, offset: u64) -> PatternChecker {
        PatternChecker {
            block: Arc::clone(block),
            offset,
            seen: 0,
        }
    }

    /// Checks the next piece; panics at the first byte that differs.
    fn check(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let pos = self.offset + self.seen;
            let start = (pos % PERIOD as u64) as usize;
            let n = data.len().min(PERIOD);
            if data[..n] != self.block[start..start + n] {
                let at = (0..n).find(|&i| data[i] != self.block[start + i]).unwrap_or(0);
                panic!(
                    "streamed bytes differ from the pattern at byte {}",
                    self.seen + at as u64
                );
            }
            self.seen += n as u64;
            data = &data[n..];
        }
    }
}

/// Reads a whole message from `reader`, checking it against the pattern from
/// `offset`; returns how many bytes it held.
async fn read_checking<S>(
    reader: &mut MessageReader<'_, S>,
    block: &Arc<[u8]>,
    offset: u64,
) -> io::Result<u64>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut checker = PatternChecker::new(block, offset);
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(checker.seen);
        }
        checker.check(&buf[..n]);
    }
}

// ---------------------------------------------------------------------------------
// MessageWriter on the wire
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn message_writer_sends_fragments_of_exactly_the_configured_size() {
    const FRAGMENT: usize = 1000;
    let block = pattern_block();
    let binary = pattern_bytes(&block, 0, 3500);
    let text = multibyte_text(2500);
    let (to_send, text_to_send) = (binary.clone(), text.clone());
    let (addr, server) = start(plain().fragment_size(Some(FRAGMENT)), move |mut ws| async move {
        let mut writer = ws.message_writer(MessageKind::Binary);
        writer.write_all(&to_send).await?;
        writer.shutdown().await?;
        drop(writer);
        let mut writer = ws.message_writer(MessageKind::Text);
        // In odd-sized pieces, so writes straddle fragment boundaries.
        for piece in text_to_send.as_bytes().chunks(333) {
            writer.write_all(piece).await?;
        }
        writer.shutdown().await?;
        drop(writer);
        drain(&mut ws).await
    })
    .await;
    let mut client = connect(addr).await;

    let frames = recv_message_frames(&mut client).await;
    let payload = check_fragments(&frames, OpCode::Binary, &[1000, 1000, 1000, 500]);
    assert!(payload == binary, "binary payload differs from what was written");

    let frames = recv_message_frames(&mut client).await;
    let payload = check_fragments(&frames, OpCode::Text, &[1000, 1000, 500]);
    assert_eq!(String::from_utf8(payload).expect("utf-8 on the wire"), text);

    close_from_client(&mut client).await;
    let seen = finish(server).await.expect("server result");
    assert_eq!(seen, vec![Message::close(CloseCode::Normal, "")]);
}

#[tokio::test]
async fn message_writer_of_an_exact_multiple_ends_with_a_full_final_fragment() {
    let (addr, server) = start(plain().fragment_size(Some(100)), |mut ws| async move {
        let mut writer = ws.message_writer(MessageKind::Binary);
        writer.write_all(&[7; 300]).await?;
        writer.shutdown().await?;
        drop(writer);
        drain(&mut ws).await
    })
    .await;
    let mut client = connect(addr).await;

    let frames = recv_message_frames(&mut client).await;
    assert_eq!(
        check_fragments(&frames, OpCode::Binary, &[100, 100, 100]),
        vec![7; 300]
    );

    close_from_client(&mut client).await;
    finish(server).await.expect("server result");
}

#[tokio::test]
async fn streamed_message_arrives_at_a_fastws_peer_as_one_message() {
    let block = pattern_block();
    let binary = pattern_bytes(&block, 99, 200_000);
    let text = multibyte_text(150_000);
    let (to_send, text_to_send) = (binary.clone(), text.clone());
    let (addr, server) = start(plain().fragment_size(Some(4096)), move |mut ws| async move {
        let mut writer = ws.message_writer(MessageKind::Binary);
        writer.write_all(&to_send).await?;
        writer.shutdown().await?;
        drop(writer);
        let mut writer = ws.message_writer(MessageKind::Text);
        writer.write_all(text_to_send.as_bytes()).await?;
        writer.shutdown().await?;
        drop(writer);
        drain(&mut ws).await
    })
    .await;
    let mut ws = connect_fastws(addr, plain()).await;

    match within("the binary message", ws.next()).await {
        Some(Ok(Message::Binary(payload))) => assert!(payload == binary, "binary message differs"),
        other => panic!("expected the binary message, got {other:?}"),
    }
    match within("the text message", ws.next()).await {
        Some(Ok(Message::Text(payload))) => assert!(payload.as_str() == text, "text message differs"),
        other => panic!("expected the text message, got {other:?}"),
    }
    within("close", ws.close()).await.expect("close");
    match within("the close reply", ws.next()).await {
        Some(Ok(Message::Close(_))) => {}
        other => panic!("expected the close reply, got {other:?}"),
    }
    let seen = finish(server).await.expect("server result");
    assert_eq!(seen, vec![Message::close(CloseCode::Normal, "")]);
}

#[tokio::test]
async fn flush_sends_what_is_gathered_as_a_non_final_fragment() {
    let (flushed_tx, flushed_rx) = oneshot::channel();
    let (addr, server) = start(plain().fragment_size(Some(1000)), move |mut ws| async move {
        let mut writer = ws.message_writer(MessageKind::Binary);
        writer.write_all(&[1; 300]).await?;
        writer.flush().await?;
        // Hold the message open until the peer has seen the flushed fragment.
        within("the peer to see the flushed fragment", flushed_rx)
            .await
            .expect("signal");
        writer.write_all(&[2; 200]).await?;
        writer.shutdown().await?;
        drop(writer);
        drain(&mut ws).await
    })
    .await;
    let mut client = connect(addr).await;

    let first = recv(&mut client).await;
    assert_eq!(
        (first.opcode(), first.is_fin(), &first.payload()[..]),
        (OpCode::Binary, false, &[1; 300][..])
    );
    flushed_tx.send(()).expect("server waits");
    let last = recv(&mut client).await;
    assert_eq!(
        (last.opcode(), last.is_fin(), &last.payload()[..]),
        (OpCode::Continuation, true, &[2; 200][..])
    );

    close_from_client(&mut client).await;
    finish(server).await.expect("server result");
}

#[tokio::test]
async fn dropping_a_writer_finishes_the_message_with_what_was_written() {
    let (addr, server) = start(plain().fragment_size(Some(1000)), |mut ws| async move {
        let mut writer = ws.message_writer(MessageKind::Binary);
        writer.write_all(&[5; 1500]).await?;
        drop(writer);
        // No flush: reading alone must send the queued final fragment.
        drain(&mut ws).await
    })
    .await;
    let mut client = connect(addr).await;

    let frames = recv_message_frames(&mut client).await;
    assert_eq!(
        check_fragments(&frames, OpCode::Binary, &[1000, 500]),
        vec![5; 1500]
    );

    close_from_client(&mut client).await;
    finish(server).await.expect("server result");
}

#[tokio::test]
async fn message_writer_waits_for_a_peer_that_does_not_read() {
    const FRAGMENT: usize = 64 * 1024;
    let block = pattern_block();
    let (addr, server) = start(plain().fragment_size(Some(FRAGMENT)), move |mut ws| async move {
        assert!(ws.config().get_write_buffer_size() + 2 * FRAGMENT < 1 << 20);
        let mut source = PatternReader::new(&block, 0, 1 << 30);
        let mut writer = ws.message_writer(MessageKind::Binary);
        let stalled = tokio::time::timeout(
            Duration::from_millis(1500),
            tokio::io::copy(&mut source, &mut writer),
        )
        .await;
        assert!(
            stalled.is_err(),
            "writing 1 GiB to a peer that does not read finished: {stalled:?}"
        );
        drop(writer);
        let framed = ws.into_framed();
        // Room for the backpressure boundary and a fragment or two, with BytesMut's
        // doubling: far below the gigabyte being written.
        let limit = 1 << 20;
        assert!(
            framed.write_buffer().capacity() <= limit,
            "write buffer grew to {} bytes (limit {limit})",
            framed.write_buffer().capacity()
        );
        Ok(())
    })
    .await;
    // Connected, and never reads.
    let _client = connect(addr).await;
    finish(server).await.expect("server result");
}

// ---------------------------------------------------------------------------------
// UTF-8 of text writers
// ---------------------------------------------------------------------------------

/// Reads frames until a text message equal to `last` has arrived (or the connection
/// ends); returns every complete data message as (opcode, payload).
async fn recv_messages_until(client: &mut Client, last: &str) -> Vec<(OpCode, Vec<u8>)> {
    let mut messages = Vec::new();
    let mut current: Option<(OpCode, Vec<u8>)> = None;
    while let Some(frame) = within("a frame from the server", client.next()).await {
        let frame = frame.expect("client read");
        match frame.opcode() {
            OpCode::Text | OpCode::Binary => current = Some((frame.opcode(), frame.payload().to_vec())),
            OpCode::Continuation => current
                .as_mut()
                .expect("continuation without a message")
                .1
                .extend_from_slice(frame.payload()),
            OpCode::Close => break,
            _ => continue,
        }
        if frame.is_fin() {
            let message = current.take().expect("a message");
            let done = message == (OpCode::Text, last.as_bytes().to_vec());
            messages.push(message);
            if done {
                break;
            }
        }
    }
    messages
}

/// Requires every text message to be valid UTF-8.
fn assert_all_text_valid(messages: &[(OpCode, Vec<u8>)]) {
    for (opcode, payload) in messages {
        if *opcode == OpCode::Text {
            assert!(
                std::str::from_utf8(payload).is_ok(),
                "invalid utf-8 reached the wire in a text message: {payload:x?}"
            );
        }
    }
}

#[tokio::test]
async fn text_writer_refuses_invalid_utf8_and_nothing_invalid_reaches_the_wire() {
    let (addr, server) = start(plain().fragment_size(Some(4)), |mut ws| async move {
        let mut writer = ws.message_writer(MessageKind::Text);
        writer.write_all("héllo ".as_bytes()).await?;
        let err = writer.write(b"\xff").await.expect_err("invalid utf-8 accepted");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        let err = writer
            .write(b"\xc0\xaf")
            .await
            .expect_err("an overlong encoding accepted");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        // What was accepted is complete, valid text: the message ends with it.
        writer.shutdown().await?;
        drop(writer);
        ws.send(Message::text("after")).await?;
        drain(&mut ws).await
    })
    .await;
    let mut client = connect(addr).await;

    let messages = recv_messages_until(&mut client, "after").await;
    assert_all_text_valid(&messages);
    assert_eq!(
        messages,
        vec![
            (OpCode::Text, "héllo ".as_bytes().to_vec()),
            (OpCode::Text, b"after".to_vec()),
        ]
    );

    close_from_client(&mut client).await;
    finish(server).await.expect("server result");
}

#[tokio::test]
async fn text_writer_shutdown_mid_character_fails_every_time() {
    let (addr, server) = start(plain(), |mut ws| async move {
        let mut writer = ws.message_writer(MessageKind::Text);
        // A valid prefix: the euro sign's first two bytes.
        writer.write_all(b"ok\xe2\x82").await?;
        let err = writer
            .shutdown()
            .await
            .expect_err("message ending mid-character finished");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        let again = writer.shutdown().await;
        assert!(
            again.is_err(),
            "a second shutdown finished a message ending mid-character"
        );
        drop(writer);
        ws.send(Message::text("after")).await?;
        drain(&mut ws).await
    })
    .await;
    let mut client = connect(addr).await;

    let messages = recv_messages_until(&mut client, "after").await;
    assert_all_text_valid(&messages);

    close_from_client(&mut client).await;
    finish(server).await.expect("server result");
}

#[tokio::test]
async fn dropping_a_text_writer_mid_character_sends_no_invalid_text() {
    let (addr, server) = start(plain(), |mut ws| async move {
        let mut writer = ws.message_writer(MessageKind::Text);
        writer.write_all(b"ok\xe2\x82").await?;
        let err = writer
            .shutdown()
            .await
            .expect_err("message ending mid-character finished");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        drop(writer);
        ws.send(Message::text("after")).await?;
        drain(&mut ws).await
    })
    .await;
    let mut client = connect(addr).await;

    let messages = recv_messages_until(&mut client, "after").await;
    assert_all_text_valid(&messages);

    close_from_client(&mut client).await;
    finish(server).await.expect("server result");
}

// ---------------------------------------------------------------------------------
// MessageReader
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn pings_between_fragments_are_answered_while_a_reader_is_mid_message() {
    let (reading_tx, reading_rx) = oneshot::channel();
    let (addr, server) = start(plain(), move |mut ws| async move {
        let mut reader = ws.next_message_reader().await.expect("a message")?;
        let kind = reader.kind();
        let mut first = vec![0; 64];
        let n = reader.read(&mut first).await?;
        first.truncate(n);
        assert!(!reader.is_complete(), "complete after the first fragment");
        reading_tx.send(()).expect("client waits");
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await?;
        let complete = reader.is_complete();
        drop(reader);
        first.extend_from_slice(&rest);
        Ok((kind, first, complete, drain(&mut ws).await?))
    })
    .await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::text("hello ").with_fin(false)).await;
    within("the server to start reading", reading_rx)
        .await
        .expect("signal");
    send(&mut client, Frame::ping("p1")).await;
    let pong = recv(&mut client).await;
    assert_eq!((pong.opcode(), &pong.payload()[..]), (OpCode::Pong, &b"p1"[..]));
    send(&mut client, Frame::continuation("wor").with_fin(false)).await;
    send(&mut client, Frame::ping("p2")).await;
    let pong = recv(&mut client).await;
    assert_eq!((pong.opcode(), &pong.payload()[..]), (OpCode::Pong, &b"p2"[..]));
    // Only now does the message end.
    send(&mut client, Frame::continuation("ld")).await;

    close_from_client(&mut client).await;
    let (kind, payload, complete, seen) = finish(server).await.expect("server result");
    assert_eq!(kind, MessageKind::Text);
    assert_eq!(payload, b"hello world");
    assert!(complete, "the reader did not report the message complete");
    assert_eq!(seen, vec![Message::close(CloseCode::Normal, "")]);
}

#[tokio::test]
async fn reader_yields_each_fragment_as_it_arrives() {
    let (got_tx, mut got_rx) = tokio::sync::mpsc::unbounded_channel();
    let (addr, server) = start(plain(), move |mut ws| async move {
        let mut reader = ws.next_message_reader().await.expect("a message")?;
        assert_eq!(reader.kind(), MessageKind::Binary);
        let mut buf = vec![0; 1024];
        loop {
            let n = reader.read(&mut buf).await?;
            got_tx.send(buf[..n].to_vec()).expect("client listens");
            if n == 0 {
                break;
            }
        }
        drop(reader);
        drain(&mut ws).await
    })
    .await;
    let mut client = connect(addr).await;

    for (i, piece) in [&b"one"[..], b"two", b"three"].into_iter().enumerate() {
        let frame = if i == 0 {
            Frame::binary(piece)
        } else {
            Frame::continuation(piece)
        };
        send(&mut client, frame.with_fin(i == 2)).await;
        // Each fragment is readable before the next one is sent.
        let got = within("the fragment from the reader", got_rx.recv()).await;
        assert_eq!(got.as_deref(), Some(piece));
    }
    let end = within("the end of the message", got_rx.recv()).await;
    assert_eq!(
        end.as_deref(),
        Some(&b""[..]),
        "expected end-of-file after the last fragment"
    );

    close_from_client(&mut client).await;
    finish(server).await.expect("server result");
}

#[tokio::test]
async fn dropping_a_reader_mid_message_skips_the_rest_of_it() {
    let (dropped_tx, dropped_rx) = oneshot::channel();
    let (dropped_again_tx, dropped_again_rx) = oneshot::channel();
    let (addr, server) = start(plain(), move |mut ws| async move {
        let mut reader = ws.next_message_reader().await.expect("first message")?;
        let mut buf = [0; 4];
        reader.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"aaaa");
        drop(reader);
        dropped_tx.send(()).expect("client waits");
        let after_first = ws.next().await.expect("the following message")?;

        let mut reader = ws.next_message_reader().await.expect("third message")?;
        reader.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"dddd");
        drop(reader);
        dropped_again_tx.send(()).expect("client waits");
        let mut reader = ws.next_message_reader().await.expect("the following message")?;
        let kind = reader.kind();
        let mut after_third = Vec::new();
        reader.read_to_end(&mut after_third).await?;
        drop(reader);
        Ok((after_first, kind, after_third, drain(&mut ws).await?))
    })
    .await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::binary("aaaa").with_fin(false)).await;
    within("the server to drop its reader", dropped_rx)
        .await
        .expect("signal");
    send(&mut client, Frame::continuation("bbbb").with_fin(false)).await;
    send(&mut client, Frame::continuation("cccc")).await;
    send(&mut client, Frame::text("next")).await;

    send(&mut client, Frame::text("dddd").with_fin(false)).await;
    within("the server to drop its second reader", dropped_again_rx)
        .await
        .expect("signal");
    send(&mut client, Frame::continuation("eeee")).await;
    send(&mut client, Frame::binary("last").with_fin(false)).await;
    send(&mut client, Frame::continuation("!")).await;

    close_from_client(&mut client).await;
    let (after_first, kind, after_third, seen) = finish(server).await.expect("server result");
    assert_eq!(after_first, Message::text("next"));
    assert_eq!((kind, &after_third[..]), (MessageKind::Binary, &b"last!"[..]));
    assert_eq!(seen, vec![Message::close(CloseCode::Normal, "")]);
}

#[tokio::test]
async fn skipped_rest_of_a_text_message_is_still_checked_for_utf8() {
    let (dropped_tx, dropped_rx) = oneshot::channel();
    let (addr, server) = start(plain(), move |mut ws| async move {
        let mut reader = ws.next_message_reader().await.expect("a message")?;
        let mut buf = [0; 2];
        reader.read_exact(&mut buf).await?;
        drop(reader);
        dropped_tx.send(()).expect("client waits");
        Ok(ws.next().await)
    })
    .await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::text("ok").with_fin(false)).await;
    within("the server to drop its reader", dropped_rx)
        .await
        .expect("signal");
    send(&mut client, Frame::continuation(&b"\xff"[..]).with_fin(false)).await;
    assert_eq!(expect_close(&mut client).await, Some(1007));
    expect_eof(&mut client).await;
    let next = finish(server).await.expect("server result");
    assert!(matches!(next, Some(Err(Error::InvalidUtf8))), "{next:?}");
}

#[tokio::test]
async fn max_message_size_is_enforced_while_streaming() {
    let (read_tx, read_rx) = oneshot::channel();
    let (addr, server) = start(plain().max_message_size(1000), move |mut ws| async move {
        let mut reader = ws.next_message_reader().await.expect("a message")?;
        let mut first = vec![0; 600];
        reader.read_exact(&mut first).await?;
        read_tx.send(()).expect("client waits");
        let err = reader
            .read(&mut [0; 1024])
            .await
            .expect_err("read past max_message_size");
        assert_eq!(err.kind(), io::ErrorKind::Other, "{err}");
        assert!(
            matches!(inner_error(&err), Some(Error::MessageTooLarge { max: 1000, .. })),
            "{err:?}"
        );
        drop(reader);
        Ok(ws.next().await.map(|item| item.map_err(|e| e.to_string())))
    })
    .await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::binary(vec![1; 600]).with_fin(false)).await;
    within("the server to read the first fragment", read_rx)
        .await
        .expect("signal");
    send(&mut client, Frame::continuation(vec![2; 600]).with_fin(false)).await;
    assert_eq!(expect_close(&mut client).await, Some(1009));
    expect_eof(&mut client).await;
    let after = finish(server).await.expect("server result");
    assert_eq!(after, None, "the stream goes on after failing");
}

#[cfg(feature = "deflate")]
#[tokio::test]
async fn max_message_size_applies_to_decompressed_bytes_while_streaming() {
    const MAX: usize = 64 * 1024;
    // 1 MiB of zeros compresses to about a kilobyte.
    let (addr, server) = start(Config::default().max_message_size(MAX), |mut ws| async move {
        let mut delivered = 0;
        let result = async {
            let mut reader = ws
                .next_message_reader()
                .await
                .expect("a message")
                .map_err(io::Error::other)?;
            let mut buf = vec![0; 8192];
            loop {
                match reader.read(&mut buf).await? {
                    0 => return Ok(()),
                    n => delivered += n,
                }
            }
        }
        .await;
        let err = result.expect_err("a message over the limit was read to its end");
        assert!(
            matches!(inner_error(&err), Some(Error::MessageTooLarge { max: MAX, .. })),
            "{err:?}"
        );
        Ok(delivered)
    })
    .await;
    let tcp = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let (mut ws, response) = fastws_client(tcp, addr, Config::default()).await;
    assert!(
        response.headers().contains_key("sec-websocket-extensions"),
        "deflate not negotiated"
    );

    within("send", ws.send(Message::binary(vec![0; 1 << 20])))
        .await
        .expect("send");
    match within("the server's close", ws.next()).await {
        Some(Ok(Message::Close(Some(close)))) => assert_eq!(close.code, CloseCode::Size),
        other => panic!("expected close 1009, got {other:?}"),
    }
    let delivered = finish(server).await.expect("server result");
    assert!(
        delivered <= MAX,
        "the reader delivered {delivered} bytes, over the limit of {MAX}"
    );
}

#[tokio::test]
async fn invalid_utf8_in_a_streamed_text_message_fails_at_its_fragment() {
    let (read_tx, read_rx) = oneshot::channel();
    let (addr, server) = start(plain(), move |mut ws| async move {
        let mut reader = ws.next_message_reader().await.expect("a message")?;
        assert_eq!(reader.kind(), MessageKind::Text);
        let mut first = [0; 5];
        reader.read_exact(&mut first).await?;
        assert_eq!(&first, b"hello");
        read_tx.send(()).expect("client waits");
        let err = reader
            .read(&mut [0; 64])
            .await
            .expect_err("invalid utf-8 was read");
        assert_eq!(err.kind(), io::ErrorKind::Other, "{err}");
        assert!(matches!(inner_error(&err), Some(Error::InvalidUtf8)), "{err:?}");
        Ok(())
    })
    .await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::text("hello").with_fin(false)).await;
    within("the server to read the first fragment", read_rx)
        .await
        .expect("signal");
    // A valid prefix, then a byte that cannot follow it; the message never ends.
    send(
        &mut client,
        Frame::continuation(&b" w\xc3\x28"[..]).with_fin(false),
    )
    .await;
    assert_eq!(expect_close(&mut client).await, Some(1007));
    expect_eof(&mut client).await;
    finish(server).await.expect("server result");
}

#[tokio::test]
async fn connection_ending_mid_message_is_unexpected_eof_for_the_reader() {
    let (read_tx, read_rx) = oneshot::channel();
    let (addr, server) = start(plain(), move |mut ws| async move {
        let mut reader = ws.next_message_reader().await.expect("a message")?;
        let mut first = [0; 3];
        reader.read_exact(&mut first).await?;
        read_tx.send(()).expect("client waits");
        let err = reader.read(&mut [0; 64]).await.expect_err("read past the end");
        Ok(err)
    })
    .await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::binary("abc").with_fin(false)).await;
    within("the server to read the first fragment", read_rx)
        .await
        .expect("signal");
    drop(client);
    let err = finish(server).await.expect("server result");
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err:?}");
}

#[tokio::test]
async fn close_in_the_middle_of_a_message_is_unexpected_eof_for_the_reader() {
    let (read_tx, read_rx) = oneshot::channel();
    let (addr, server) = start(plain(), move |mut ws| async move {
        let mut reader = ws.next_message_reader().await.expect("a message")?;
        let mut first = [0; 3];
        reader.read_exact(&mut first).await?;
        read_tx.send(()).expect("client waits");
        let err = reader.read(&mut [0; 64]).await.expect_err("read past the end");
        drop(reader);
        Ok((err, ws.next().await.map(|item| item.map_err(|e| e.to_string()))))
    })
    .await;
    let mut client = connect(addr).await;

    send(&mut client, Frame::binary("abc").with_fin(false)).await;
    within("the server to read the first fragment", read_rx)
        .await
        .expect("signal");
    // RFC 6455 §5.4: control frames may come between fragments, a close too.
    close_from_client(&mut client).await;
    let (err, after) = finish(server).await.expect("server result");
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err:?}");
    assert_eq!(after, None, "the stream goes on after the close");
}

// ---------------------------------------------------------------------------------
// Split halves and permessage-deflate
// ---------------------------------------------------------------------------------

/// Streams `len` bytes of the pattern from `offset` out through `sink` while
/// reading one streamed message from `stream` (the pattern from `expect_offset`),
/// in two tasks at the same time; returns the halves and the length read.
async fn stream_both_ways<S>(
    ws: WebSocket<S>,
    block: &Arc<[u8]>,
    offset: u64,
    expect_offset: u64,
    len: u64,
) -> Result<(WebSocket<S>, u64), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let source_block = Arc::clone(block);
    let writer = tokio::spawn(async move {
        let mut writer = sink.message_writer(MessageKind::Binary);
        let mut source = PatternReader::new(&source_block, offset, len);
        tokio::io::copy(&mut source, &mut writer).await?;
        writer.shutdown().await?;
        drop(writer);
        Ok::<_, io::Error>(sink)
    });
    let check_block = Arc::clone(block);
    let reader = tokio::spawn(async move {
        let mut reader = stream.next_message_reader().await.expect("a message")?;
        assert_eq!(reader.kind(), MessageKind::Binary);
        let got = read_checking(&mut reader, &check_block, expect_offset).await?;
        drop(reader);
        Ok::<_, Error>((stream, got))
    });
    let sink = writer.await.expect("writer task panicked")?;
    let (stream, got) = reader.await.expect("reader task panicked")?;
    let ws = stream
        .reunite(sink)
        .unwrap_or_else(|_| panic!("halves of different websockets"));
    Ok((ws, got))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_and_writer_work_on_split_halves_at_the_same_time() {
    // Far more than loopback socket buffers hold: neither direction can finish
    // unless both halves make progress at once on both ends.
    const LEN: u64 = 24 << 20;
    let block = pattern_block();
    let server_block = Arc::clone(&block);
    let config = plain().fragment_size(Some(64 * 1024));
    let (addr, server) = start(config.clone(), move |ws| async move {
        let (mut ws, got) = stream_both_ways(ws, &server_block, 1, 2, LEN).await?;
        Ok((got, drain(&mut ws).await?))
    })
    .await;
    let ws = connect_fastws(addr, config).await;
    let (mut ws, got) = within_for(Duration::from_secs(120), "streaming both ways", async {
        stream_both_ways(ws, &block, 2, 1, LEN).await
    })
    .await
    .expect("client streaming");
    assert_eq!(got, LEN, "the client read a message of the wrong length");

    within("close", ws.close()).await.expect("close");
    assert!(matches!(
        within("the close reply", ws.next()).await,
        Some(Ok(Message::Close(_)))
    ));
    let (got, seen) = within_for(Duration::from_secs(120), "the server", server)
        .await
        .expect("server panicked")
        .expect("server result");
    assert_eq!(got, LEN, "the server read a message of the wrong length");
    assert_eq!(seen, vec![Message::close(CloseCode::Normal, "")]);
}

#[cfg(feature = "deflate")]
#[tokio::test]
async fn streamed_message_round_trips_with_permessage_deflate() {
    let text = multibyte_text(600_000);
    let config = Config::default().fragment_size(Some(16 * 1024));
    // The server echoes each message as a stream: read a piece, write it out.
    let (addr, server) = start(config.clone(), |ws| async move {
        let (mut sink, mut stream) = ws.split();
        let mut echoed = 0;
        let mut buf = vec![0; 8192];
        while let Some(reader) = stream.next_message_reader().await {
            let mut reader = reader?;
            let mut writer = sink.message_writer(reader.kind());
            loop {
                let n = reader.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                writer.write_all(&buf[..n]).await?;
                echoed += n as u64;
            }
            writer.shutdown().await?;
        }
        Ok(echoed)
    })
    .await;
    let peaks = Arc::new(IoPeaks::default());
    let tcp = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let io = Metered {
        inner: tcp,
        peaks: Arc::clone(&peaks),
    };
    let (ws, response) = fastws_client(io, addr, config).await;
    let extensions = response
        .headers()
        .get("sec-websocket-extensions")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        extensions.contains("permessage-deflate"),
        "deflate not negotiated: {extensions:?}"
    );
    let handshake_bytes = peaks.written.load(Ordering::Relaxed);

    let (mut sink, mut stream) = ws.split();
    let send = async {
        let mut writer = sink.message_writer(MessageKind::Text);
        for piece in text.as_bytes().chunks(10_000) {
            writer.write_all(piece).await?;
        }
        writer.shutdown().await
    };
    let receive = async {
        let mut reader = stream
            .next_message_reader()
            .await
            .expect("the echo")
            .map_err(io::Error::other)?;
        let kind = reader.kind();
        let mut echo = Vec::new();
        reader.read_to_end(&mut echo).await?;
        Ok::<_, io::Error>((kind, echo))
    };
    let (sent, received) = within_for(Duration::from_secs(60), "the echo", async {
        tokio::join!(send, receive)
    })
    .await;
    sent.expect("streaming the message out");
    let (kind, echo) = received.expect("reading the echo");
    assert_eq!(kind, MessageKind::Text);
    assert!(echo == text.as_bytes(), "the echo differs from what was sent");
    let on_wire = peaks.written.load(Ordering::Relaxed) - handshake_bytes;
    assert!(
        on_wire < text.len() / 4,
        "{on_wire} bytes on the wire for {} bytes of repetitive text: not compressed",
        text.len()
    );

    within("close", sink.close()).await.expect("close");
    assert!(matches!(
        within("the close reply", stream.next()).await,
        Some(Ok(Message::Close(_)))
    ));
    let echoed = finish(server).await.expect("server result");
    assert_eq!(echoed, text.len() as u64);
}

#[cfg(feature = "deflate")]
#[tokio::test]
async fn compressed_streamed_messages_with_an_empty_final_fragment_round_trip() {
    let (addr, server) = start(Config::default(), |mut ws| async move {
        let mut writer = ws.message_writer(MessageKind::Text);
        writer.write_all(b"hello ").await?;
        writer.flush().await?;
        // Everything written went out with the flush: the final fragment is empty.
        writer.shutdown().await?;
        drop(writer);
        // An empty streamed message right after a compressed one.
        let mut writer = ws.message_writer(MessageKind::Binary);
        writer.shutdown().await?;
        drop(writer);
        drain(&mut ws).await
    })
    .await;
    let tcp = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let (mut ws, response) = fastws_client(tcp, addr, Config::default()).await;
    assert!(
        response.headers().contains_key("sec-websocket-extensions"),
        "deflate not negotiated"
    );

    let first = within("the first message", ws.next()).await;
    assert!(
        matches!(&first, Some(Ok(Message::Text(text))) if text.as_str() == "hello "),
        "{first:?}"
    );
    let second = within("the empty message", ws.next()).await;
    assert!(
        matches!(&second, Some(Ok(Message::Binary(payload))) if payload.is_empty()),
        "{second:?}"
    );
    within("close", ws.close()).await.expect("close");
    assert!(matches!(
        within("the close reply", ws.next()).await,
        Some(Ok(Message::Close(_)))
    ));
    finish(server).await.expect("server result");
}

// ---------------------------------------------------------------------------------
// 256 MiB through a streaming echo, in bounded memory
// ---------------------------------------------------------------------------------

/// Counts live heap bytes of the threads that opted in (see [`TRACKED`]), so tests
/// running in parallel on other threads do not disturb the measurement.
struct CountingAllocator;

thread_local! {
    /// Whether this thread's allocations are counted.
    static TRACKED: Cell<bool> = const { Cell::new(false) };
}

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn track(delta: isize) {
    if TRACKED.try_with(Cell::get).unwrap_or(false) {
        let live = LIVE.fetch_add(delta, Ordering::Relaxed) + delta;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to `System` unchanged; the counting has no
// effect on the memory handed out.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            track(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            track(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            track(new_size as isize - layout.size() as isize);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The size of the message streamed through the echo.
const HUGE: u64 = 256 << 20;
/// Live heap the whole transfer (both ends) may use beyond what it started with.
const HEAP_LIMIT: isize = 16 << 20;
/// The largest read or write buffer either end may offer its transport.
const BUFFER_LIMIT: usize = 4 << 20;

/// The server of the big test: echoes each message as a stream, piece by piece.
async fn streaming_echo(ws: WebSocket<Metered<TcpStream>>) -> Result<u64, Error> {
    let (mut sink, mut stream) = ws.split();
    let mut echoed = 0;
    while let Some(reader) = stream.next_message_reader().await {
        let mut reader = reader?;
        let mut writer = sink.message_writer(reader.kind());
        echoed += tokio::io::copy(&mut reader, &mut writer).await?;
        writer.shutdown().await?;
    }
    Ok(echoed)
}

#[test]
fn a_256_mib_message_streams_through_an_echo_both_ways_in_bounded_memory() {
    // Everything runs on this thread (a current-thread runtime), so the allocator
    // counts exactly the two ends of this test.
    TRACKED.with(|tracked| tracked.set(true));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The default limit of 64 MiB applies to streamed messages too.
    let config = plain()
        .fragment_size(Some(256 * 1024))
        .max_message_size(HUGE as usize);
    let block = pattern_block();
    let server_peaks = Arc::new(IoPeaks::default());
    let client_peaks = Arc::new(IoPeaks::default());

    let (echoed, received, elapsed, heap_peak) = runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let peaks = Arc::clone(&server_peaks);
        let server_config = config.clone();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let io = Metered { inner: tcp, peaks };
            let ws = Acceptor::new().config(server_config).accept(io).await?;
            streaming_echo(ws).await
        });
        let tcp = within("connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        let io = Metered {
            inner: tcp,
            peaks: Arc::clone(&client_peaks),
        };
        let (ws, _) = fastws_client(io, addr, config).await;
        let (mut sink, mut stream) = ws.split();

        let baseline = LIVE.load(Ordering::Relaxed);
        PEAK.store(baseline, Ordering::Relaxed);
        let started = Instant::now();
        let source_block = Arc::clone(&block);
        let writer = tokio::spawn(async move {
            let mut source = PatternReader::new(&source_block, 0, HUGE);
            let mut writer = sink.message_writer(MessageKind::Binary);
            let copied = tokio::io::copy(&mut source, &mut writer).await?;
            writer.shutdown().await?;
            drop(writer);
            Ok::<_, io::Error>((sink, copied))
        });
        let check_block = Arc::clone(&block);
        let reader = tokio::spawn(async move {
            let mut reader = stream.next_message_reader().await.expect("the echo")?;
            assert_eq!(reader.kind(), MessageKind::Binary);
            let received = read_checking(&mut reader, &check_block, 0).await?;
            assert!(
                reader.is_complete(),
                "end of file before the message was complete"
            );
            drop(reader);
            Ok::<_, Error>((stream, received))
        });
        let limit = Duration::from_secs(600);
        let (sink, copied) = within_for(limit, "streaming the message out", writer)
            .await
            .expect("writer task panicked")
            .expect("streaming the message out");
        assert_eq!(copied, HUGE);
        let (mut stream, received) = within_for(limit, "reading the echo", reader)
            .await
            .expect("reader task panicked")
            .expect("reading the echo");
        let elapsed = started.elapsed();
        let heap_peak = PEAK.load(Ordering::Relaxed) - baseline;

        let mut sink = sink;
        within("close", sink.close()).await.expect("close");
        match within("the close reply", stream.next()).await {
            Some(Ok(Message::Close(_))) => {}
            other => panic!("expected the close reply, got {other:?}"),
        }
        let ws = stream
            .reunite(sink)
            .unwrap_or_else(|_| panic!("halves of different websockets"));
        drop(ws);
        let echoed = finish(server).await.expect("server result");
        (echoed, received, elapsed, heap_peak)
    });
    TRACKED.with(|tracked| tracked.set(false));

    let peaks = |p: &IoPeaks| {
        (
            p.read_room.load(Ordering::Relaxed),
            p.write.load(Ordering::Relaxed),
            p.written.load(Ordering::Relaxed),
        )
    };
    let (client_read, client_write, client_written) = peaks(&client_peaks);
    let (server_read, server_write, server_written) = peaks(&server_peaks);
    eprintln!(
        "{} MiB echoed in {elapsed:.2?}; peak live heap {:.2} MiB; largest read room / write: \
         client {client_read} / {client_write} bytes, server {server_read} / {server_write} bytes",
        HUGE >> 20,
        heap_peak as f64 / (1 << 20) as f64,
    );
    assert_eq!(echoed, HUGE, "the server echoed the wrong length");
    assert_eq!(received, HUGE, "the client read an echo of the wrong length");
    assert!(
        client_written as u64 >= HUGE && server_written as u64 >= HUGE,
        "the data did not cross the wire"
    );
    assert!(
        heap_peak < HEAP_LIMIT,
        "peak live heap grew by {heap_peak} bytes while streaming {HUGE} bytes (limit {HEAP_LIMIT})"
    );
    for (what, size) in [
        ("client read room", client_read),
        ("client write", client_write),
        ("server read room", server_read),
        ("server write", server_write),
    ] {
        assert!(
            size <= BUFFER_LIMIT,
            "{what} of {size} bytes: a buffer grew past {BUFFER_LIMIT}"
        );
    }
}
