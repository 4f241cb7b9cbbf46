//! A `WebSocket` split into a sending and a receiving half, over a real socket: the
//! receiving half answers pings on its own, the halves move a lot of data at the
//! same time in both directions without deadlock or loss, and everything is `Send`.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use fastws::{CloseCode, Config, Error, Frame, Message, OpCode, Role, WebSocket};
use fastws::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn task_that_only_reads_answers_every_ping() {
    const PINGS: usize = 50;
    let (addr, server) = start(Config::default(), |ws| async move {
        let (sink, mut stream) = ws.split();
        let mut seen = Vec::new();
        while let Some(message) = stream.next().await {
            seen.push(message?);
        }
        // The sending half was held, never used.
        drop(sink);
        Ok(seen)
    })
    .await;
    let mut client = connect(addr).await;

    for i in 0..PINGS {
        send(&mut client, Frame::ping(format!("ping {i}"))).await;
    }
    let last = Bytes::from(format!("ping {}", PINGS - 1));
    let mut ponged = Vec::new();
    loop {
        let frame = recv(&mut client).await;
        assert_eq!(frame.opcode(), OpCode::Pong, "{frame:?}");
        let payload = frame.into_payload();
        let done = payload == last;
        ponged.push(payload);
        if done {
            break;
        }
    }

    // RFC 6455 §5.5.3 allows answering only the latest of several pings, but every
    // pong must echo a ping, in order, and the last ping must be answered.
    let sent: Vec<Bytes> = (0..PINGS).map(|i| Bytes::from(format!("ping {i}"))).collect();
    let mut unmatched = sent.iter();
    for pong in &ponged {
        assert!(
            unmatched.any(|ping| ping == pong),
            "pong {pong:?} does not echo a ping in order; pongs: {ponged:?}"
        );
    }

    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    expect_eof(&mut client).await;
    let seen = finish(server).await.expect("server result");
    assert_eq!(seen, vec![Message::close(CloseCode::Normal, "")]);
}

const MESSAGES: u64 = 2000;
const MESSAGE_LEN: usize = 16 * 1024;

/// Message `seq` of a stream: its sequence number, then a pattern derived from it
/// and from `tag` (so the two directions carry different bytes).
fn numbered(tag: u8, seq: u64) -> Bytes {
    let mut payload = Vec::with_capacity(MESSAGE_LEN);
    payload.extend_from_slice(&seq.to_be_bytes());
    payload.push(tag);
    payload.resize(MESSAGE_LEN, (seq as u8) ^ tag);
    Bytes::from(payload)
}

/// Sends `MESSAGES` numbered messages through `sink`.
async fn send_numbered<S>(sink: &mut S, tag: u8) -> Result<(), Error>
where
    S: futures::Sink<Message, Error = Error> + Unpin,
{
    for seq in 0..MESSAGES {
        sink.send(Message::binary(numbered(tag, seq))).await?;
    }
    Ok(())
}

/// Receives `MESSAGES` numbered messages from `stream`, checking that none is lost,
/// reordered or altered.
async fn receive_numbered<S>(stream: &mut S, tag: u8) -> Result<(), Error>
where
    S: futures::Stream<Item = Result<Message, Error>> + Unpin,
{
    for seq in 0..MESSAGES {
        let message = stream
            .next()
            .await
            .unwrap_or_else(|| panic!("stream ended before message {seq} (tag {tag})"))?;
        let Message::Binary(payload) = message else {
            panic!("message {seq} (tag {tag}) is not binary: {message:?}");
        };
        let got = u64::from_be_bytes(payload[..8].try_into().unwrap());
        assert_eq!(got, seq, "message lost or reordered (tag {tag})");
        assert!(payload == numbered(tag, seq), "message {seq} (tag {tag}) altered");
    }
    Ok(())
}

/// Runs the writer and the reader of one end in two tasks at the same time, then
/// puts the halves back together.
async fn send_and_receive_at_once(
    ws: WebSocket<TcpStream>,
    send_tag: u8,
    receive_tag: u8,
) -> Result<WebSocket<TcpStream>, Error> {
    let (mut sink, mut stream) = ws.split();
    let writer = tokio::spawn(async move {
        send_numbered(&mut sink, send_tag).await?;
        Ok::<_, Error>(sink)
    });
    let reader = tokio::spawn(async move {
        receive_numbered(&mut stream, receive_tag).await?;
        Ok::<_, Error>(stream)
    });
    let sink = writer.await.expect("writer panicked")?;
    let stream = reader.await.expect("reader panicked")?;
    Ok(stream.reunite(sink).expect("halves of the same WebSocket"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halves_send_and_receive_large_volumes_at_once_without_loss() {
    large_volumes_both_ways().await;
}

#[tokio::test(flavor = "current_thread")]
async fn halves_send_and_receive_large_volumes_at_once_on_one_thread() {
    large_volumes_both_ways().await;
}

/// Both ends split, each writing and reading `MESSAGES` messages at the same time.
async fn large_volumes_both_ways() {
    const SERVER: u8 = 0x5a;
    const CLIENT: u8 = 0xc3;
    let (addr, server) = start(Config::default(), |ws| async move {
        let mut ws = send_and_receive_at_once(ws, SERVER, CLIENT).await?;
        // Then the client closes.
        let mut rest = Vec::new();
        while let Some(message) = ws.next().await {
            rest.push(message?);
        }
        Ok(rest)
    })
    .await;

    let exchange = async {
        let (tcp, read) = upgrade_raw(addr).await;
        let peer = WebSocket::from_partially_read(tcp, read, Role::Client, Config::default());
        let mut peer = send_and_receive_at_once(peer, CLIENT, SERVER)
            .await
            .expect("client exchange");
        SinkExt::close(&mut peer).await.expect("client close");
        let mut rest = Vec::new();
        while let Some(message) = peer.next().await {
            rest.push(message.expect("client stream"));
        }
        rest
    };
    // 2 × 32 MiB in a debug build: generous, but a deadlock still fails the test.
    let client_rest = within_for(Duration::from_secs(120), "both exchanges", exchange).await;
    assert_eq!(client_rest, vec![Message::close(CloseCode::Normal, "")]);

    let server_rest = finish(server).await.expect("server result");
    assert_eq!(server_rest, vec![Message::close(CloseCode::Normal, "")]);
}

fn assert_send<T: Send>(_: &T) {}

#[tokio::test]
async fn websocket_its_halves_and_its_futures_are_send() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .expect("connect");
    let (server, _) = listener.accept().await.expect("accept");

    // The handshake futures.
    let accept = fastws::accept(server);
    assert_send(&accept);
    drop(accept);
    let accept_with = fastws::accept_with(client, |_, response| Ok(response));
    assert_send(&accept_with);
    drop(accept_with);
    let acceptor = fastws::Acceptor::new();
    let (a, b) = tokio::io::duplex(64);
    let accept_with_acceptor = acceptor.accept(a);
    assert_send(&accept_with_acceptor);
    drop(accept_with_acceptor);
    drop(b);

    // The WebSocket and the futures of its Stream and Sink.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let _peer = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .expect("connect");
    let (tcp, _) = listener.accept().await.expect("accept");
    let mut ws: WebSocket<TcpStream> = WebSocket::from_raw_socket(tcp, Role::Server, Config::default());
    assert_send(&ws);
    assert_send(&ws.next());
    assert_send(&ws.send(Message::text("x")));
    assert_send(&SinkExt::close(&mut ws));

    // The halves and their futures.
    let (mut sink, mut stream): (SplitSink<TcpStream>, SplitStream<TcpStream>) = ws.split();
    assert_send(&sink);
    assert_send(&stream);
    assert_send(&sink.send(Message::binary(vec![1u8])));
    assert_send(&stream.next());
}

#[tokio::test]
async fn the_sending_half_waits_once_its_write_buffer_is_full() {
    use futures::FutureExt;

    // 64 bytes of pipe and a peer that never reads: nothing drains the buffer.
    let (server_io, _peer) = tokio::io::duplex(64);
    let config = Config::default().write_buffer_size(1024);
    let ws = WebSocket::from_raw_socket(server_io, Role::Server, config);
    let (mut sink, _stream) = ws.split();
    let message = || Message::binary(vec![7u8; 600]);
    // 0 and then 604 bytes buffered (600 and a 4-byte header): under the limit,
    // both accepted at once.
    assert!(sink.feed(message()).now_or_never().is_some());
    assert!(sink.feed(message()).now_or_never().is_some());
    // 1,208 bytes: full. poll_ready must try to write and wait, not say ready.
    assert!(
        sink.feed(message()).now_or_never().is_none(),
        "a third message was accepted into a full write buffer"
    );
}
