//! A peer that pings without reading: what we owe it stays bounded. While the
//! write buffer is full, owed pongs collapse into the latest one (RFC 6455 §5.5.3),
//! and a peer that keeps pinging fails the connection with close 1008; a split
//! reader goes on reading while its own writer waits for the same socket.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use common::metered::{IoPeaks, Metered};
use common::within_for;
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::codec::{Encoder, FramedRead};

use fastws::{CloseCode, Config, Error, Frame, Message, OpCode, Role, WebSocket, WsCodec};

/// Socket buffers this small keep the kernel from absorbing megabytes of pongs, so
/// the WebSocket's own write buffer is what fills.
const SOCKET_BUFFER: u32 = 8 * 1024;

/// More pings than any bound below lets through; a flood this long that never
/// fails the connection is a bug.
const MAX_PINGS: usize = 200_000;

/// Pings per write of the flood.
const BATCH: usize = 1000;

/// A connected pair of loopback sockets with small buffers: `(ours, peer)`.
async fn small_buffered_pair() -> (TcpStream, TcpStream) {
    let listener = TcpSocket::new_v4().unwrap();
    // Accepted sockets inherit the listener's buffer sizes.
    listener.set_send_buffer_size(SOCKET_BUFFER).unwrap();
    listener.set_recv_buffer_size(SOCKET_BUFFER).unwrap();
    listener.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener: TcpListener = listener.listen(1).unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let peer = TcpSocket::new_v4().unwrap();
    peer.set_send_buffer_size(SOCKET_BUFFER).unwrap();
    peer.set_recv_buffer_size(SOCKET_BUFFER).unwrap();
    let (peer, accepted) = tokio::join!(peer.connect(addr), listener.accept());
    (accepted.unwrap().0, peer.unwrap())
}

/// A ping whose 125-byte payload starts with its sequence number.
fn ping(seq: u64) -> Frame {
    let mut payload = vec![b'p'; 125];
    payload[..8].copy_from_slice(&seq.to_be_bytes());
    Frame::ping(payload)
}

fn seq_of(payload: &[u8]) -> u64 {
    u64::from_be_bytes(payload[..8].try_into().unwrap())
}

/// Writes pings as fast as the socket takes them, never reading, until a write
/// has waited `stalled` (the other end stopped reading) or [`MAX_PINGS`] went out.
/// Returns how many were sent.
async fn flood(peer: &mut TcpStream, peer_role: Role, stalled: Duration) -> usize {
    let mut codec = WsCodec::new(peer_role);
    let mut sent = 0;
    while sent < MAX_PINGS {
        let mut batch = BytesMut::new();
        for seq in sent..sent + BATCH {
            codec.encode(ping(seq as u64), &mut batch).unwrap();
        }
        match tokio::time::timeout(stalled, peer.write_all(&batch)).await {
            Ok(Ok(())) => sent += BATCH,
            // Stalled or reset: the other end has stopped taking pings.
            Ok(Err(_)) | Err(_) => return sent,
        }
    }
    sent
}

/// What the flooding peer reads back once it starts reading: the pongs in order,
/// and the close frame that ended them.
async fn drain(peer: TcpStream, peer_role: Role) -> (Vec<u64>, Option<Frame>) {
    let mut frames = FramedRead::new(peer, WsCodec::new(peer_role));
    let mut pongs = Vec::new();
    while let Some(frame) = within_for(Duration::from_secs(20), "the pongs", frames.next()).await {
        let Ok(frame) = frame else { break };
        match frame.opcode() {
            OpCode::Pong => pongs.push(seq_of(frame.payload())),
            OpCode::Close => return (pongs, Some(frame)),
            other => panic!("unexpected {other:?} frame"),
        }
    }
    (pongs, None)
}

/// Floods a WebSocket of `role` with pings from a peer that does not read, then
/// checks what it wrote and how it ended.
async fn flood_is_bounded(role: Role) {
    let (ours, mut peer) = small_buffered_pair().await;
    let peaks = Arc::new(IoPeaks::default());
    let transport = Metered {
        inner: ours,
        peaks: Arc::clone(&peaks),
    };
    let config = Config::default();
    let write_buffer = config.get_write_buffer_size();
    let mut ws = WebSocket::from_raw_socket(transport, role, config);
    let reader = tokio::spawn(async move {
        let first = ws.next().await;
        first.map(|item| item.map_err(|err| format!("{err:?}")))
    });
    let peer_role = match role {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    };
    let sent = flood(&mut peer, peer_role, Duration::from_millis(500)).await;
    // The peer reads now, while the failed connection still tries to send its close.
    let ((pongs, close), first) = tokio::join!(drain(peer, peer_role), async {
        within_for(Duration::from_secs(20), "the flood to fail", reader)
            .await
            .unwrap()
    });
    let error = first
        .expect("an item")
        .expect_err("the flood must fail the connection");
    assert!(error.starts_with("PingFlood"), "{error}");
    assert!(sent < MAX_PINGS, "the peer took all {sent} pings");

    // What the WebSocket held for the peer: one write hands the transport the
    // whole write buffer, so the largest write is the most it held.
    let held = peaks.write.load(Ordering::Relaxed);
    let bound = write_buffer + 1024;
    assert!(
        held <= bound,
        "held {held} bytes for a peer that never read (bound {bound}) after {sent} pings"
    );

    assert!(!pongs.is_empty());
    assert!(
        pongs.windows(2).all(|pair| pair[0] < pair[1]),
        "pongs are answered in order, never twice"
    );
    assert!(
        pongs.len() < sent,
        "{} pongs for {sent} pings: they did not collapse",
        pongs.len()
    );
    let close = close.expect("a close frame after the pongs");
    let payload = close.payload();
    assert_eq!(
        CloseCode::from(u16::from_be_bytes([payload[0], payload[1]])),
        CloseCode::Policy
    );
    assert!(
        std::str::from_utf8(&payload[2..])
            .unwrap()
            .starts_with("ping flood")
    );
}

#[tokio::test]
async fn a_server_flooded_with_pings_it_cannot_answer_holds_a_bounded_write_buffer() {
    flood_is_bounded(Role::Server).await;
}

#[tokio::test]
async fn a_client_flooded_with_pings_it_cannot_answer_holds_a_bounded_write_buffer() {
    flood_is_bounded(Role::Client).await;
}

#[tokio::test]
async fn pings_are_all_answered_while_the_write_buffer_has_room() {
    let (ours, peer) = small_buffered_pair().await;
    let mut ws = WebSocket::from_raw_socket(ours, Role::Server, Config::default());
    let server = tokio::spawn(async move { ws.next().await.map(|item| item.map_err(|err| err.to_string())) });
    let (read, mut write) = peer.into_split();
    let mut frames = FramedRead::new(read, WsCodec::client());
    let mut codec = WsCodec::client();
    // Bursts of 50 pings (6.5 KB of pongs, far below the write buffer's limit),
    // each read back before the next: not one pong may be dropped.
    for round in 0..200u64 {
        let mut bytes = BytesMut::new();
        for seq in round * 50..(round + 1) * 50 {
            codec.encode(ping(seq), &mut bytes).unwrap();
        }
        write.write_all(&bytes).await.unwrap();
        for seq in round * 50..(round + 1) * 50 {
            let frame = within_for(Duration::from_secs(5), "a pong", frames.next())
                .await
                .expect("a pong, not the end of the stream")
                .unwrap();
            assert_eq!(frame.opcode(), OpCode::Pong);
            assert_eq!(seq_of(frame.payload()), seq, "every ping answered, in order");
        }
    }
    let mut bytes = BytesMut::new();
    codec.encode(Frame::text("done"), &mut bytes).unwrap();
    write.write_all(&bytes).await.unwrap();
    assert_eq!(server.await.unwrap(), Some(Ok(Message::text("done"))));
}

#[tokio::test]
async fn a_split_reader_goes_on_reading_while_its_writer_waits_for_the_socket() {
    let (ours, mut peer) = small_buffered_pair().await;
    let ws = WebSocket::from_raw_socket(ours, Role::Server, Config::default());
    let (mut sink, mut stream) = ws.split();
    // The writer fills the socket and the write buffer: the peer never reads.
    let writer = tokio::spawn(async move {
        let mut sent = 0usize;
        while sent < 1000 {
            if sink.send(Message::binary(vec![7u8; 64 * 1024])).await.is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !writer.is_finished(),
        "the writer should be waiting for the socket"
    );
    let mut codec = WsCodec::client();
    let mut bytes = BytesMut::new();
    for seq in 0..100 {
        codec.encode(ping(seq), &mut bytes).unwrap();
    }
    codec.encode(Frame::text("still reading"), &mut bytes).unwrap();
    peer.write_all(&bytes).await.unwrap();
    let message = within_for(Duration::from_secs(5), "the reader", stream.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(message, Message::text("still reading"));
    drop(peer);
    let sent = within_for(Duration::from_secs(10), "the writer to fail", writer)
        .await
        .unwrap();
    assert!(sent < 1000);
    // The stream then ends with the connection's failure.
    let rest = within_for(Duration::from_secs(10), "the end", stream.next()).await;
    assert!(matches!(rest, Some(Err(Error::Io(_))) | None), "{rest:?}");
}
