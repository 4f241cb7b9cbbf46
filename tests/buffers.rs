//! Buffer sizes seen from the transport: an idle connection holds a small read
//! buffer, traffic gets the codec's larger read space, and connections on one
//! thread take turns with the same buffers.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::metered::{IoPeaks, Metered};
use futures::{SinkExt, StreamExt};
use tokio_util::codec::Framed;

use fastws::{Config, Frame, Message, Role, WebSocket, WsCodec};

#[tokio::test]
async fn an_idle_connection_waits_with_a_small_read_buffer_and_traffic_gets_more() {
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let peaks = Arc::new(IoPeaks::default());
    let transport = Metered {
        inner: server_io,
        peaks: Arc::clone(&peaks),
    };
    let mut ws = WebSocket::from_raw_socket(transport, Role::Server, Config::default());
    let mut client = Framed::new(client_io, WsCodec::client());

    // Nothing has arrived: the one read so far, which waits, was offered little room.
    assert!(futures::poll!(ws.next()).is_pending());
    let idle_room = peaks.read_room.load(Ordering::Relaxed);
    assert!(
        idle_room <= 1024,
        "an idle connection offered {idle_room} bytes to a read"
    );

    // 64 frames of 1 KiB in one burst.
    for _ in 0..64 {
        client.feed(Frame::binary(vec![3u8; 1024])).await.unwrap();
    }
    client.flush().await.unwrap();
    for _ in 0..64 {
        let message = ws.next().await.unwrap().unwrap();
        assert!(matches!(&message, Message::Binary(payload) if payload.len() == 1024));
    }
    let largest = peaks.read_room.load(Ordering::Relaxed);
    assert!(
        largest >= 4096,
        "reads during a burst were offered at most {largest} bytes"
    );
}

/// A server WebSocket over a recording transport, and a client framing its peer.
fn metered_pair() -> (
    WebSocket<Metered<tokio::io::DuplexStream>>,
    Arc<IoPeaks>,
    Framed<tokio::io::DuplexStream, WsCodec>,
) {
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let peaks = Arc::new(IoPeaks::default());
    let transport = Metered {
        inner: server_io,
        peaks: Arc::clone(&peaks),
    };
    let ws = WebSocket::from_raw_socket(transport, Role::Server, Config::default());
    (ws, peaks, Framed::new(client_io, WsCodec::client()))
}

#[tokio::test]
async fn connections_on_one_thread_read_into_and_write_from_the_same_buffers() {
    let (mut first, first_peaks, mut first_client) = metered_pair();
    let (mut second, second_peaks, mut second_client) = metered_pair();

    // The first connection echoes a burst, then waits: its emptied buffers go back
    // to the thread.
    for _ in 0..16 {
        first_client.feed(Frame::binary(vec![1u8; 1024])).await.unwrap();
    }
    first_client.flush().await.unwrap();
    for _ in 0..16 {
        let message = first.next().await.unwrap().unwrap();
        first.feed(message).await.unwrap();
    }
    first.flush().await.unwrap();
    assert!(futures::poll!(first.next()).is_pending());
    let first_read_at = first_peaks.read_at.load(Ordering::Relaxed);
    let first_write_at = first_peaks.write_at.load(Ordering::Relaxed);

    // The second connection, which has held no buffer yet, reads into and writes
    // from the memory the first one gave back.
    second_client.send(Frame::binary(vec![2u8; 1024])).await.unwrap();
    let message = second.next().await.unwrap().unwrap();
    second.send(message).await.unwrap();
    assert_eq!(
        second_peaks.write_at.load(Ordering::Relaxed),
        first_write_at,
        "the second connection wrote from a buffer of its own"
    );
    assert!(futures::poll!(second.next()).is_pending());
    assert_eq!(
        second_peaks.read_at.load(Ordering::Relaxed),
        first_read_at,
        "the second connection read into a buffer of its own"
    );

    // Every echo arrived whole.
    for _ in 0..16 {
        let echo = first_client.next().await.unwrap().unwrap();
        assert_eq!(echo.payload().as_ref(), &[1u8; 1024][..]);
    }
    let echo = second_client.next().await.unwrap().unwrap();
    assert_eq!(echo.payload().as_ref(), &[2u8; 1024][..]);
}
