//! The chat example (`examples/chat/`), run in-process on 127.0.0.1: lines go to
//! everyone else in the sender's room, in order, and to nobody outside it.

mod common;

#[allow(dead_code)]
#[path = "../examples/chat/main.rs"]
mod chat;

use std::net::SocketAddr;
use std::time::Duration;

use common::chat::{next_line, until_subscribed};
use common::within;
use fastws::{MaybeTlsStream, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;

type Client = WebSocket<MaybeTlsStream>;

async fn start() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(chat::serve(listener, chat::acceptor()));
    addr
}

async fn join(addr: SocketAddr, room: &str) -> Client {
    fastws::connect(format!("ws://{addr}/{room}")).await.unwrap().0
}

#[tokio::test]
async fn lines_reach_everyone_else_in_the_room_in_order_and_nobody_outside_it() {
    let addr = start().await;
    let mut alice = join(addr, "red").await;
    let mut bob = join(addr, "red").await;
    let mut carol = join(addr, "red").await;
    let mut dave = join(addr, "blue").await;
    let mut frank = join(addr, "blue").await;
    let mut erin = join(addr, "").await;
    let mut grace = join(addr, "lobby").await;
    until_subscribed(&mut alice, &mut bob).await;
    until_subscribed(&mut alice, &mut carol).await;
    until_subscribed(&mut bob, &mut alice).await;
    until_subscribed(&mut frank, &mut dave).await;
    until_subscribed(&mut dave, &mut frank).await;
    // `/` is the lobby.
    until_subscribed(&mut grace, &mut erin).await;

    for i in 0..100 {
        alice.send(Message::text(format!("red {i}"))).await.unwrap();
    }
    frank.send(Message::text("blue only")).await.unwrap();
    for reader in [&mut bob, &mut carol] {
        for i in 0..100 {
            assert_eq!(next_line(reader, "a chat line").await, format!("red {i}"));
        }
    }
    bob.send(Message::text("back to alice")).await.unwrap();
    assert_eq!(
        next_line(&mut alice, "a chat line").await,
        "back to alice",
        "the sender gets nothing of its own"
    );
    assert_eq!(next_line(&mut carol, "a chat line").await, "back to alice");
    // Nothing from red reached blue or the lobby.
    assert_eq!(next_line(&mut dave, "a chat line").await, "blue only");
    let quiet = tokio::time::timeout(Duration::from_millis(200), dave.next()).await;
    assert!(quiet.is_err(), "blue got {quiet:?}");
    let quiet = tokio::time::timeout(Duration::from_millis(200), erin.next()).await;
    assert!(quiet.is_err(), "the lobby got {quiet:?}");
}

#[tokio::test]
async fn a_room_whose_members_all_left_works_again_for_new_members() {
    let addr = start().await;
    let mut first = join(addr, "green").await;
    let mut second = join(addr, "green").await;
    until_subscribed(&mut first, &mut second).await;
    for mut client in [first, second] {
        client.close().await.unwrap();
        while within("the close", client.next()).await.is_some() {}
    }
    // A new room of the same name works like any other.
    let mut third = join(addr, "green").await;
    let mut fourth = join(addr, "green").await;
    until_subscribed(&mut third, &mut fourth).await;
    third.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    let message = within("a line", fourth.next()).await.unwrap().unwrap();
    assert_eq!(message, Message::binary(vec![1, 2, 3]));
}
