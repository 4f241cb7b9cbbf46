//! Buffer sizes seen from the transport: an idle connection holds a small read
//! buffer, and traffic gets the codec's larger read space.

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
