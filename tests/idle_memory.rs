//! What an idle server connection costs, counted by the allocator: the README's
//! echo (`accept`, `split`, `forward`) in a task per connection, waiting for a
//! message that does not come.
//!
//! One test in this file, so no other test's allocations are counted alongside.

mod common;

use common::counting::{Counting, live_bytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const CONNECTIONS: usize = 100;

const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// The server's connection handler, as the README writes it.
async fn echo(io: DuplexStream) -> Result<(), fastws::Error> {
    let (sink, stream) = fastws::accept(io).await?.split();
    stream.forward(sink).await
}

/// A transport pair whose client end has sent its upgrade request, and whose
/// server-to-client pipe has already grown to hold the `101` (the pipe is the
/// test's, not the connection's).
async fn requested() -> (DuplexStream, DuplexStream) {
    let (mut server_io, mut client_io) = tokio::io::duplex(4096);
    server_io.write_all(&[0; 512]).await.unwrap();
    client_io.read_exact(&mut [0; 512]).await.unwrap();
    client_io.write_all(REQUEST).await.unwrap();
    (server_io, client_io)
}

/// Reads the server's `101` response head off `client_io`.
async fn read_response(client_io: &mut DuplexStream) {
    let mut head = [0; 512];
    let mut len = 0;
    while !head[..len].ends_with(b"\r\n\r\n") {
        let read = client_io.read(&mut head[len..]).await.unwrap();
        assert_ne!(read, 0, "the server closed before its response ended");
        len += read;
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101 "),
        "{}",
        String::from_utf8_lossy(&head[..len])
    );
}

#[tokio::test(flavor = "current_thread")]
async fn an_idle_echo_connection_holds_under_two_kib_and_no_handshake_state() {
    // The handshake's state is on the heap while it runs, not in the task for the
    // connection's whole life.
    let (server_io, _client_io) = tokio::io::duplex(64);
    let accepting = fastws::accept(server_io);
    assert!(
        size_of_val(&accepting) <= size_of::<usize>(),
        "the accept future is {} bytes",
        size_of_val(&accepting)
    );
    drop(accepting);

    // Warm up: the runtime's structures for tasks and timers.
    let (server_io, mut client_io) = requested().await;
    let warm = tokio::spawn(echo(server_io));
    read_response(&mut client_io).await;

    let mut pairs = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        pairs.push(requested().await);
    }
    let mut clients = Vec::with_capacity(CONNECTIONS);
    let mut tasks = Vec::with_capacity(CONNECTIONS);
    let before = live_bytes();
    for (server_io, client_io) in pairs.drain(..) {
        tasks.push(tokio::spawn(echo(server_io)));
        clients.push(client_io);
    }
    for client_io in &mut clients {
        read_response(client_io).await;
    }
    // Every connection's task is now parked in its first read.
    tokio::task::yield_now().await;
    let held = (live_bytes() - before) / CONNECTIONS as isize;
    println!("an idle connection holds {held} bytes");
    // Measured: 1,141 bytes (1,021 without the deflate feature): the task with its
    // future, the WebSocket both halves share, their wakers. Before the handshake's
    // state and the deflate state were boxed: 2,701.
    assert!(held <= 2048, "an idle connection holds {held} bytes");
    for task in tasks.into_iter().chain([warm]) {
        task.abort();
        let _ = task.await;
    }
}
