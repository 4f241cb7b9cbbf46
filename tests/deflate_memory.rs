//! What an idle permessage-deflate connection holds, counted by the allocator: no
//! zlib state before its first compressed message, and none between messages
//! without context takeover; only context takeover keeps a context while idle.
//!
//! One test in this file, so no other test's allocations are counted alongside.
#![cfg(feature = "deflate")]

mod common;

use std::time::Duration;

use common::counting::{Counting, live_bytes};
use fastws::{Acceptor, ClientRequest, Config, DeflateConfig, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use tokio::io::DuplexStream;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Connections per measurement: what a thread keeps for all of them (its spare
/// contexts) is spread thin.
const CONNECTIONS: usize = 20;

/// A 1 KiB JSON text message, as a browser would send.
fn json() -> Message {
    let mut text = String::from("[");
    let mut i = 0;
    while text.len() < 1024 {
        text.push_str(&format!(r#"{{"id":{i},"name":"user {i}","active":true}},"#));
        i += 1;
    }
    text.truncate(1024);
    Message::text(text)
}

type Pair = (WebSocket<DuplexStream>, WebSocket<DuplexStream>);

/// A server and a client joined in memory, after the opening handshake with
/// `config` on both sides (the client offers deflate as browsers do).
async fn pair(config: &Config) -> Pair {
    let (server_io, client_io) = tokio::io::duplex(16 * 1024);
    let acceptor = Acceptor::new().config(config.clone());
    let request = ClientRequest::new("ws://localhost/").config(config.clone());
    let (server, client) = tokio::join!(
        acceptor.accept(server_io),
        fastws::client_handshake(client_io, request)
    );
    (server.expect("accept"), client.expect("connect").0)
}

/// One message from the client and its echo from the server.
async fn exchange((server, client): &mut Pair) {
    client.send(json()).await.unwrap();
    let message = server.next().await.unwrap().unwrap();
    server.send(message).await.unwrap();
    assert_eq!(client.next().await.unwrap().unwrap(), json());
}

/// The bytes `CONNECTIONS` pairs hold, per pair, after `messages` exchanges each
/// and `idle` without traffic, both ends waiting for a message in a task of their
/// own as a server's connections do.
async fn held_per_pair(config: &Config, messages: usize, idle: Duration) -> isize {
    // Warm up: tokio's structures, and the thread's spare contexts, filled to
    // their bound (they are the thread's, not any connection's).
    let mut warm = Vec::new();
    for _ in 0..4 {
        let mut pair = pair(config).await;
        exchange(&mut pair).await;
        warm.push(pair);
    }
    drop(warm);
    let before = live_bytes();
    let mut waiting = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut pair = pair(config).await;
        for _ in 0..messages {
            exchange(&mut pair).await;
        }
        waiting.push(tokio::spawn(async move {
            let (mut server, mut client) = pair;
            let _ = tokio::join!(server.next(), client.next());
        }));
    }
    tokio::time::sleep(idle).await;
    let held = (live_bytes() - before) / CONNECTIONS as isize;
    for task in waiting {
        task.abort();
        let _ = task.await;
    }
    held
}

#[tokio::test(flavor = "current_thread")]
async fn idle_deflate_connections_hold_no_zlib_state_unless_context_takeover_needs_it() {
    const QUIET: Duration = Duration::from_millis(20);
    let plain = Config::default().deflate(DeflateConfig::disabled());
    let deflate = Config::default();
    let no_takeover = Config::default().deflate(
        DeflateConfig::default()
            .server_no_context_takeover(true)
            .client_no_context_takeover(true),
    );
    let hibernating = Config::default().deflate(DeflateConfig::default().hibernate_after(Some(QUIET)));
    let awake = Config::default().deflate(DeflateConfig::default().hibernate_after(None));
    // Both ends of a pair are counted: two WebSockets, their tasks, the duplex pipe.
    let plain_idle = held_per_pair(&plain, 0, Duration::ZERO).await;
    let plain_after = held_per_pair(&plain, 1, Duration::ZERO).await;
    let deflate_idle = held_per_pair(&deflate, 0, Duration::ZERO).await;
    let no_takeover_after = held_per_pair(&no_takeover, 3, Duration::ZERO).await;
    let awake_after = held_per_pair(&awake, 1, 5 * QUIET).await;
    let asleep_after = held_per_pair(&hibernating, 1, 5 * QUIET).await;
    let asleep_after_many = held_per_pair(&hibernating, 100, 5 * QUIET).await;
    println!(
        "bytes per pair: plain {plain_idle} (after a message {plain_after}), deflate before a message \
         {deflate_idle}, no context takeover after 3 messages {no_takeover_after}, context takeover \
         after one: awake {awake_after}, hibernating {asleep_after} (after 100: {asleep_after_many})"
    );
    // A zlib context is tens of KiB (a decompressor's window alone is 32 KiB); the
    // margin allows for the negotiated parameters and the handshake's leftovers.
    let margin = 4 * 1024;
    assert!(
        deflate_idle <= plain_idle + margin,
        "a deflate pair holds {deflate_idle} bytes before any message, a plain one {plain_idle}"
    );
    assert!(
        no_takeover_after <= plain_after + margin,
        "without context takeover a pair holds {no_takeover_after} bytes between messages, a plain \
         one {plain_after}"
    );
    // A hibernating pair keeps its history (1 KiB each way, in each end), not its
    // contexts.
    assert!(
        asleep_after <= plain_after + 4 * 1024 + margin,
        "a pair quiet for {:?} holds {asleep_after} bytes under context takeover, a plain one \
         {plain_after}",
        5 * QUIET
    );
    // After 100 messages the histories are full: the server keeps 4 KiB of what it
    // sent (all a woken compressor is primed with) and the client's 4 KiB window;
    // the client keeps 4 KiB of its own and the server's whole 32 KiB window.
    assert!(
        asleep_after_many <= plain_after + (4 + 4 + 4 + 32) * 1024 + margin,
        "{asleep_after_many} bytes after 100 messages"
    );
    // The measurement sees zlib state where it is held: without hibernation,
    // context takeover keeps it.
    assert!(
        awake_after > plain_after + 64 * 1024,
        "context takeover held only {awake_after} bytes: is the count working?"
    );
}
