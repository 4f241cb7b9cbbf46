//! The chat example (`examples/chat/`) as two servers joined through a real
//! `redis-server`, started here on a loopback port and stopped by PID: a line
//! sent to one server reaches the room's subscribers on both, once each, and
//! every subscriber sees a room's lines in the same order.
//!
//! Needs `redis-server` on the PATH (Debian: `apt-get install redis-server`;
//! `.ci/run` installs it).

mod common;

#[allow(dead_code)]
#[path = "../examples/chat/main.rs"]
mod chat;

use std::net::SocketAddr;
use std::time::Duration;

use common::chat::{PROBE, Redis, next_line, until_subscribed};
use common::within;
use fastws::{MaybeTlsStream, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;

type Client = WebSocket<MaybeTlsStream>;

async fn chat_server(redis: &Redis) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let url = redis.url.clone();
    tokio::spawn(async move { chat::serve_with_redis(listener, chat::acceptor(), &url).await });
    addr
}

async fn join(addr: SocketAddr, room: &str) -> Client {
    within("joining", fastws::connect(format!("ws://{addr}/{room}")))
        .await
        .unwrap()
        .0
}

/// The next `count` lines that are not probes, then a check that no more come.
async fn lines(client: &mut Client, count: usize) -> Vec<String> {
    let mut lines = Vec::new();
    while lines.len() < count {
        lines.push(next_line(client, "a line").await);
    }
    loop {
        match tokio::time::timeout(Duration::from_millis(300), client.next()).await {
            Err(_) => return lines,
            Ok(Some(Ok(message))) if message.as_text().is_some_and(|text| text.starts_with(PROBE)) => {}
            Ok(other) => panic!("a line more than expected: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_line_sent_to_one_server_reaches_the_room_on_both_once_each_in_one_order() {
    let redis = Redis::start().await;
    let (one, two) = (chat_server(&redis).await, chat_server(&redis).await);
    let mut alice = join(one, "ops").await;
    let mut dave = join(one, "ops").await;
    let mut bob = join(two, "ops").await;
    let mut carol = join(two, "ops").await;
    let mut elsewhere = join(two, "sales").await;
    let mut elsewhere_too = join(one, "sales").await;
    until_subscribed(&mut alice, &mut bob).await;
    until_subscribed(&mut bob, &mut alice).await;
    until_subscribed(&mut alice, &mut dave).await;
    until_subscribed(&mut bob, &mut carol).await;
    until_subscribed(&mut elsewhere_too, &mut elsewhere).await;

    // One sender: everyone else, on both servers, gets every line once, in order.
    let sent: Vec<String> = (0..200).map(|i| format!("alice {i}")).collect();
    for line in &sent {
        alice.send(Message::text(line.clone())).await.unwrap();
    }
    for reader in [&mut dave, &mut bob, &mut carol] {
        assert_eq!(lines(reader, sent.len()).await, sent);
    }

    // Two senders on different servers at once: each line once everywhere, each
    // sender's lines in its order, and one order for the room.
    let (alice_lines, bob_lines): (Vec<String>, Vec<String>) = (
        (0..100).map(|i| format!("a{i}")).collect(),
        (0..100).map(|i| format!("b{i}")).collect(),
    );
    let (a, b) = (alice_lines.clone(), bob_lines.clone());
    let (mut alice, mut bob) = {
        let alice_sends = tokio::spawn(async move {
            for line in a {
                alice.send(Message::text(line)).await.unwrap();
            }
            alice
        });
        let bob_sends = tokio::spawn(async move {
            for line in b {
                bob.send(Message::text(line)).await.unwrap();
            }
            bob
        });
        (alice_sends.await.unwrap(), bob_sends.await.unwrap())
    };
    let on_one = lines(&mut dave, 200).await;
    let on_two = lines(&mut carol, 200).await;
    assert_eq!(
        on_one, on_two,
        "the servers saw the room's lines in different orders"
    );
    let of = |prefix: &str, lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .filter(|line| line.starts_with(prefix))
            .cloned()
            .collect()
    };
    assert_eq!(of("a", &on_one), alice_lines);
    assert_eq!(of("b", &on_one), bob_lines);
    assert_eq!(
        lines(&mut alice, 100).await,
        bob_lines,
        "alice gets bob's lines, not her own"
    );
    assert_eq!(lines(&mut bob, 100).await, alice_lines);
    let quiet = tokio::time::timeout(Duration::from_millis(200), elsewhere.next()).await;
    assert!(quiet.is_err(), "another room got {quiet:?}");
}
