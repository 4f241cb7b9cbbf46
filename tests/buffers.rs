//! Buffer sizes seen from the transport: an idle connection holds a small read
//! buffer, and traffic gets the codec's larger read space.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio_util::codec::Framed;

use fastws::{Config, Frame, Message, Role, WebSocket, WsCodec};

/// A transport that records the free space every read was offered.
struct RecordsReads {
    inner: DuplexStream,
    rooms: Arc<Mutex<Vec<usize>>>,
}

impl AsyncRead for RecordsReads {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.rooms.lock().unwrap().push(buf.remaining());
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for RecordsReads {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn an_idle_connection_waits_with_a_small_read_buffer_and_traffic_gets_more() {
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let rooms = Arc::new(Mutex::new(Vec::new()));
    let transport = RecordsReads {
        inner: server_io,
        rooms: Arc::clone(&rooms),
    };
    let mut ws = WebSocket::from_raw_socket(transport, Role::Server, Config::default());
    let mut client = Framed::new(client_io, WsCodec::client());

    // Nothing has arrived: the read that waits was offered little room.
    assert!(futures::poll!(ws.next()).is_pending());
    let idle_room = rooms.lock().unwrap()[0];
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
    let largest = rooms.lock().unwrap().iter().copied().max().unwrap();
    assert!(
        largest >= 4096,
        "reads during a burst were offered at most {largest} bytes"
    );
}
