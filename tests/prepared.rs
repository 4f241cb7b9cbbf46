//! `PreparedMessage` over real sockets on 127.0.0.1: it goes out in order with
//! ordinary sends, pings and close; with permessage-deflate and no context
//! takeover every connection gets one shared compressed frame, the one `send`
//! would have made; with context takeover, on a client and where the connection
//! fragments, the message is encoded per connection and still arrives intact.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::inflate::inflate;
use common::*;
use fastws::{
    Acceptor, CloseCode, Config, DeflateConfig, Error, Frame, Message, OpCode, PreparedMessage, WebSocket,
    WsCodec,
};
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};

/// The end of a sync flush, which a sender strips and a receiver appends (RFC
/// 7692 §7.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// A message's compressed payload, inflated from a fresh stream.
fn inflate_message(payload: &[u8]) -> common::inflate::Inflated {
    inflate(&[payload, &TAIL].concat(), &[]).expect("valid deflate")
}

/// A JSON-ish text that compresses well.
fn update(seq: usize) -> String {
    let mut text = String::new();
    for i in 0..40 {
        text.push_str(&format!(
            r#"{{"seq":{seq},"symbol":"FAST{i}","bid":101.25,"ask":101.5}},"#
        ));
    }
    text
}

fn binary(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

/// Accepts `count` connections with `acceptor`, each offering `offer` as
/// `Sec-WebSocket-Extensions` (or nothing), and returns the server ends with
/// frame-level clients for them.
async fn pairs(acceptor: Acceptor, count: usize, offer: Option<&str>) -> Vec<(WebSocket<TcpStream>, Client)> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut accepted = Vec::new();
        for _ in 0..count {
            let (tcp, _) = listener.accept().await.unwrap();
            accepted.push(acceptor.accept(tcp).await.unwrap());
        }
        accepted
    });
    let mut clients = Vec::new();
    for _ in 0..count {
        clients.push(raw_client(addr, offer).await);
    }
    let servers = finish(server).await;
    servers.into_iter().zip(clients).collect()
}

async fn raw_client(addr: SocketAddr, offer: Option<&str>) -> Client {
    let extra = offer.map_or(String::new(), |offer| {
        format!("Sec-WebSocket-Extensions: {offer}\r\n")
    });
    let (tcp, head, rest) = connect_with_request(addr, upgrade_request("/", &extra).as_bytes()).await;
    assert_eq!(head.status, 101, "handshake refused: {head:?}");
    let codec = match head.header("sec-websocket-extensions") {
        Some(_) => WsCodec::client().allowed_rsv(0b100),
        None => WsCodec::client(),
    };
    framed_with(tcp, rest, codec)
}

fn plain() -> Acceptor {
    Acceptor::new().config(Config::default().deflate(DeflateConfig::disabled()))
}

#[tokio::test]
async fn a_prepared_message_goes_out_in_order_with_sends_pings_and_the_close() {
    let (mut ws, mut client) = pairs(plain(), 1, None).await.pop().unwrap();
    let text = PreparedMessage::new(Message::text("to everyone"));
    // Large enough to be written from the shared buffer, not copied.
    let large = PreparedMessage::new(Message::binary(binary(100_000, 3)));
    ws.send(Message::text("first")).await.unwrap();
    ws.send_prepared(&text).await.unwrap();
    ws.feed(Message::ping("are you there")).await.unwrap();
    ws.feed_prepared(&large).await.unwrap();
    ws.send_prepared(&text).await.unwrap();
    let close = PreparedMessage::new(Message::close(CloseCode::Normal, "bye"));
    ws.send_prepared(&close).await.unwrap();
    assert!(
        matches!(ws.send_prepared(&text).await, Err(Error::ConnectionClosed)),
        "data after the close"
    );

    let mut frames = Vec::new();
    for _ in 0..6 {
        frames.push(recv(&mut client).await);
    }
    assert_eq!(frames[0], Frame::text("first"));
    assert_eq!(frames[1], Frame::text("to everyone"));
    assert_eq!(frames[2], Frame::ping("are you there"));
    assert_eq!(frames[3], Frame::binary(binary(100_000, 3)));
    assert_eq!(frames[4], Frame::text("to everyone"));
    assert_eq!(frames[5].opcode(), OpCode::Close);
    assert_eq!(close_code(&frames[5]), Some(1000));
    assert_eq!(close_reason(&frames[5]), "bye");

    // The close handshake started: the peer's answer ends the stream.
    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    let rest = within("the server's stream to end", async {
        let mut rest = Vec::new();
        while let Some(message) = ws.next().await {
            rest.push(message);
        }
        rest
    })
    .await;
    assert!(
        rest.iter().all(|m| matches!(m, Ok(Message::Close(_)))),
        "{rest:?}"
    );
}

#[tokio::test]
async fn without_context_takeover_every_connection_gets_the_frame_send_would_make() {
    let acceptor = Acceptor::new()
        .config(Config::default().deflate(DeflateConfig::default().server_no_context_takeover(true)));
    let mut pairs = pairs(acceptor, 3, Some("permessage-deflate")).await;
    let text = update(1);
    let prepared = PreparedMessage::new(Message::text(text.clone()));
    for (ws, _) in &mut pairs {
        ws.send_prepared(&prepared).await.unwrap();
    }
    // The last connection also sends it the ordinary way: the same bytes.
    pairs[2].0.send(Message::text(text.clone())).await.unwrap();

    let mut payloads = Vec::new();
    for (_, client) in &mut pairs {
        let frame = recv(client).await;
        assert!(frame.rsv1(), "not compressed: {frame:?}");
        assert_eq!(frame.opcode(), OpCode::Text);
        payloads.push(frame.into_payload());
    }
    let sent = recv(&mut pairs[2].1).await;
    assert!(sent.rsv1());
    assert!(payloads.iter().all(|payload| *payload == payloads[0]));
    assert_eq!(
        payloads[0],
        sent.into_payload(),
        "the prepared frame differs from send's"
    );
    assert!(payloads[0].len() < text.len() / 4, "{} bytes", payloads[0].len());
    // A fresh stream each time: no back-reference reaches before the message.
    let inflated = inflate_message(&payloads[0]);
    assert_eq!(inflated.data, text.as_bytes());
}

#[tokio::test]
async fn connections_with_different_windows_each_get_a_frame_for_their_window() {
    let acceptor = Acceptor::new()
        .config(Config::default().deflate(DeflateConfig::default().server_no_context_takeover(true)));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut accepted = Vec::new();
        for _ in 0..2 {
            let (tcp, _) = listener.accept().await.unwrap();
            accepted.push(acceptor.accept(tcp).await.unwrap());
        }
        accepted
    });
    let mut wide = raw_client(addr, Some("permessage-deflate")).await;
    let mut narrow = raw_client(addr, Some("permessage-deflate; server_max_window_bits=9")).await;
    let mut servers = finish(server).await;
    // Repeats 2 KiB apart: a 512-byte window cannot reach them.
    let block: String = (0..2048).map(|i| char::from(b'a' + (i * 7 % 26) as u8)).collect();
    let text = format!("{block}{block}{block}");
    let prepared = PreparedMessage::new(Message::text(text.clone()));
    for ws in &mut servers {
        ws.send_prepared(&prepared).await.unwrap();
    }
    let wide_frame = recv(&mut wide).await.into_payload();
    let narrow_frame = recv(&mut narrow).await.into_payload();
    let wide_inflated = inflate_message(&wide_frame);
    let narrow_inflated = inflate_message(&narrow_frame);
    assert_eq!(wide_inflated.data, text.as_bytes());
    assert_eq!(narrow_inflated.data, text.as_bytes());
    assert!(
        narrow_inflated.max_distance <= 512,
        "{}",
        narrow_inflated.max_distance
    );
    assert!(wide_inflated.max_distance > 512, "{}", wide_inflated.max_distance);
}

#[tokio::test]
async fn with_context_takeover_it_is_compressed_against_each_connections_history() {
    // The server keeps its compression context; a fastws client follows it.
    let (addr, server) = start(Config::default(), |mut ws| async move {
        let prepared = PreparedMessage::new(Message::text(update(2)));
        ws.send(Message::text(update(1))).await?;
        ws.send_prepared(&prepared).await?;
        // Compressed against a history that holds the prepared message: had the
        // peer been sent a frame made without it, this would not inflate right.
        ws.send(Message::text(update(3))).await?;
        ws.send_prepared(&prepared).await?;
        ws.send(Message::text(update(1))).await?;
        let mut rest = Vec::new();
        while let Some(message) = ws.next().await {
            rest.push(message?);
        }
        Ok(rest)
    })
    .await;
    let (mut client, _) = fastws::connect(format!("ws://{addr}/")).await.unwrap();
    for expected in [update(1), update(2), update(3), update(2), update(1)] {
        let message = within("a message", client.next()).await.unwrap().unwrap();
        assert_eq!(message.as_text(), Some(expected.as_str()));
    }
    SinkExt::close(&mut client).await.unwrap();
    while within("the close", client.next()).await.is_some() {}
    finish(server).await.unwrap();
}

#[tokio::test]
async fn a_client_masks_a_prepared_message_as_it_masks_any_other() {
    let (addr, server) = start(Config::default(), echo).await;
    let (mut client, _) = fastws::connect(format!("ws://{addr}/")).await.unwrap();
    let prepared = PreparedMessage::new(Message::binary(binary(70_000, 9)));
    for _ in 0..3 {
        client.send_prepared(&prepared).await.unwrap();
    }
    for _ in 0..3 {
        let echo = within("an echo", client.next()).await.unwrap().unwrap();
        assert_eq!(echo, Message::binary(binary(70_000, 9)));
    }
    SinkExt::close(&mut client).await.unwrap();
    while within("the close", client.next()).await.is_some() {}
    let seen = finish(server).await.unwrap();
    assert_eq!(seen.iter().filter(|message| message.is_binary()).count(), 3);
}

#[tokio::test]
async fn a_connection_that_fragments_sends_a_prepared_message_in_fragments() {
    let acceptor = Acceptor::new().config(
        Config::default()
            .deflate(DeflateConfig::disabled())
            .fragment_size(Some(1000)),
    );
    let (mut ws, mut client) = pairs(acceptor, 1, None).await.pop().unwrap();
    let payload = binary(2500, 1);
    ws.send_prepared(&PreparedMessage::new(Message::binary(payload.clone())))
        .await
        .unwrap();
    let frames = [
        recv(&mut client).await,
        recv(&mut client).await,
        recv(&mut client).await,
    ];
    let opcodes: Vec<_> = frames
        .iter()
        .map(|frame| (frame.opcode(), frame.is_fin()))
        .collect();
    assert_eq!(
        opcodes,
        [
            (OpCode::Binary, false),
            (OpCode::Continuation, false),
            (OpCode::Continuation, true)
        ]
    );
    let joined: Vec<u8> = frames.iter().flat_map(|frame| frame.payload().to_vec()).collect();
    assert_eq!(joined, payload);
}

#[tokio::test]
async fn the_sending_half_sends_prepared_messages_while_the_receiving_half_reads() {
    const COUNT: usize = 200;
    let (ws, mut client) = pairs(plain(), 1, None).await.pop().unwrap();
    let (mut sink, mut stream) = ws.split();
    let reader = tokio::spawn(async move {
        let mut seen = 0;
        while let Some(message) = stream.next().await {
            if message.unwrap().is_text() {
                seen += 1;
            }
        }
        seen
    });
    let prepared = PreparedMessage::new(Message::text("tick"));
    let writer = tokio::spawn(async move {
        for _ in 0..COUNT {
            sink.send_prepared(&prepared).await.unwrap();
        }
        sink
    });
    for i in 0..COUNT {
        send(&mut client, Frame::text(format!("hello {i}"))).await;
        assert_eq!(recv(&mut client).await, Frame::text("tick"));
    }
    let mut sink = finish(writer).await;
    sink.close().await.unwrap();
    assert_eq!(expect_close(&mut client).await, Some(1000));
    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(finish(reader).await, COUNT);
}
