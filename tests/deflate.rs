//! permessage-deflate (RFC 7692) over real sockets on 127.0.0.1: negotiation in
//! the opening handshake, round trips between two fastws ends for every mix of
//! context takeover and window size, what the compressor puts on the wire (RSV1,
//! fragmentation, window limits, context resets, size), and the failures: bombs,
//! invalid compressed data, RSV1 where it may not be, answers the client did not
//! offer.
//!
//! Raw peers inflate with the reference decoder of `common::inflate`, which shares
//! no code with fastws; raw senders compress with flate2.
#![cfg(feature = "deflate")]

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use common::inflate::{Inflated, inflate};
use common::*;
use fastws::{
    ClientRequest, CloseCode, Config, DeflateConfig, Error, Frame, HandshakeError, MaybeTlsStream, Message,
    OpCode, ProtocolError, WebSocket, WsCodec,
};
use flate2::{Compress, Compression, FlushCompress};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The empty stored block a sync flush ends with: a sender strips it, a receiver
/// appends it (RFC 7692 §7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// How long an echo of up to 1 MiB may take in a debug build on a busy machine
/// (deflate with a small window is slow).
const ECHO_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------------

/// JSON-like ASCII text of exactly `len` bytes: records with counters, as an API
/// would send them.
fn json(len: usize) -> String {
    let mut text = String::with_capacity(len + 128);
    text.push('[');
    let mut i = 0u64;
    while text.len() < len {
        write!(
            text,
            r#"{{"id":{i},"name":"user {}","email":"user{i}@example.com","score":{},"active":{}}},"#,
            i % 97,
            (i * 7919) % 1000,
            i % 3 == 0
        )
        .unwrap();
        i += 1;
    }
    text.truncate(len);
    text
}

/// `len` pseudo-random (incompressible) bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Binary that compresses partly: in every 4 KiB, 1 KiB of noise and 3 KiB of a
/// repeating pattern.
fn mixed_binary(len: usize) -> Vec<u8> {
    let noise = noise(len / 4 + 1024, 42);
    (0..len)
        .map(|i| match i % 4096 {
            0..1024 => noise[i / 4096 * 1024 + i % 4096],
            j => (j * 31 % 251) as u8,
        })
        .collect()
}

/// Noise with copies of itself at distances from 32000 down to 100 bytes: a
/// compressor finds the copies its window reaches, so the longest distance it
/// uses shows its window size.
fn window_probe() -> Vec<u8> {
    let mut data = noise(32 * 1024, 7);
    for distance in [32000, 16000, 8000, 4000, 2000, 1000, 500, 250, 200, 100] {
        for _ in 0..200 {
            data.push(data[data.len() - distance]);
        }
        data.extend_from_slice(&noise(64, distance as u64));
    }
    data
}

/// The messages of a round trip: short, 1 KiB and 1 MiB, text and binary. Empty
/// messages have tests of their own (`empty_message_*`).
fn round_trip_messages() -> Vec<Message> {
    vec![
        Message::text("hello, κόσμε 👋"),
        Message::binary(vec![0u8, 1, 2, 0xff]),
        Message::text(json(1024)),
        Message::binary(noise(1024, 1)),
        Message::text(json(1 << 20)),
        Message::binary(mixed_binary(1 << 20)),
    ]
}

// ---------------------------------------------------------------------------------
// Deflate helpers
// ---------------------------------------------------------------------------------

/// Compresses a message as a permessage-deflate sender does (RFC 7692 §7.2.1): raw
/// DEFLATE ended by a sync flush, whose trailing `00 00 ff ff` is removed.
fn deflate_message(compress: &mut Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    let start = compress.total_in();
    loop {
        let consumed = (compress.total_in() - start) as usize;
        compress
            .compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
            .expect("compress");
        // The flush is complete once it stops filling the output.
        if (compress.total_in() - start) as usize == data.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    assert!(
        out.ends_with(&TAIL),
        "a sync flush ends with an empty stored block"
    );
    out.truncate(out.len() - TAIL.len());
    out
}

/// [`deflate_message`] with a fresh compressor (no context from earlier messages).
fn deflate_once(data: &[u8]) -> Vec<u8> {
    deflate_message(&mut Compress::new(Compression::default(), false), data)
}

/// Inflates a compressed message as a receiver does (RFC 7692 §7.2.2), with the
/// reference decoder; `history` is what earlier messages inflated to.
fn inflate_message(payload: &[u8], history: &[u8]) -> Inflated {
    let mut input = payload.to_vec();
    input.extend_from_slice(&TAIL);
    inflate(&input, history).unwrap_or_else(|err| panic!("invalid compressed message: {err}"))
}

/// A message of about 64 KiB (deflate's best ratio is about 1:1000) that inflates
/// to 64 MiB of zeros.
fn zero_bomb() -> Vec<u8> {
    deflate_message(&mut Compress::new(Compression::best(), false), &vec![0; 64 << 20])
}

/// An extension element's name and its parameters as a set, so answers compare
/// whatever order the parameters come in.
fn element(value: &str) -> (String, BTreeSet<String>) {
    let mut parts = value.split(';').map(str::trim);
    let name = parts.next().unwrap_or_default().to_owned();
    (name, parts.map(str::to_owned).collect())
}

// ---------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------

/// A raw client that offers `offer` in `Sec-WebSocket-Extensions`; returns the
/// response head and a frame-level client that accepts RSV1 if the answer has
/// the extension.
async fn connect_offering(addr: SocketAddr, offer: &str) -> (Client, ResponseHead) {
    let request = upgrade_request("/", &format!("Sec-WebSocket-Extensions: {offer}\r\n"));
    let (tcp, head, rest) = connect_with_request(addr, request.as_bytes()).await;
    assert_eq!(head.status, 101, "handshake refused: {head:?}");
    let codec = match head.header("sec-websocket-extensions") {
        Some(_) => WsCodec::client().allowed_rsv(0b100),
        None => WsCodec::client(),
    };
    (framed_with(tcp, rest, codec), head)
}

/// Plays a hand-written server: reads the upgrade request, answers `101` with
/// `extensions` as `Sec-WebSocket-Extensions` (none if `None`); returns the request
/// head and a frame-level server peer that accepts RSV1.
async fn accept_raw(mut tcp: TcpStream, extensions: Option<&str>) -> (String, Client) {
    let mut buf = BytesMut::with_capacity(1024);
    let head_len = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let read = within("the request head", tcp.read_buf(&mut buf))
            .await
            .expect("read request head");
        assert_ne!(read, 0, "connection closed inside the request head");
    };
    let rest = buf.split_off(head_len);
    let head = String::from_utf8(buf.to_vec()).expect("request head is ASCII");
    let key = request_header(&head, "sec-websocket-key").expect("request has a key");
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        fastws::handshake::accept_key(key.as_bytes())
    );
    if let Some(extensions) = extensions {
        write!(response, "Sec-WebSocket-Extensions: {extensions}\r\n").unwrap();
    }
    response.push_str("\r\n");
    within("writing the response", tcp.write_all(response.as_bytes()))
        .await
        .expect("write response");
    (head, framed_with(tcp, rest, WsCodec::server().allowed_rsv(0b100)))
}

/// The value of the request header `name` (case-insensitive), if present.
fn request_header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Connects a fastws client with `config` to `addr`.
async fn connect_fastws(
    addr: SocketAddr,
    config: Config,
) -> Result<(WebSocket<MaybeTlsStream>, http::Response<()>), Error> {
    let request = ClientRequest::new(format!("ws://{addr}/")).config(config);
    within("the client handshake", fastws::connect(request)).await
}

/// The `Sec-WebSocket-Extensions` of a response, if any.
fn extensions_of(response: &http::Response<()>) -> Option<&str> {
    response
        .headers()
        .get("sec-websocket-extensions")
        .map(|value| value.to_str().expect("ASCII header"))
}

/// Sends each message and requires its echo to come back equal.
async fn expect_echoes(ws: &mut WebSocket<MaybeTlsStream>, messages: &[Message], what: &str) {
    for message in messages {
        within("sending a message", ws.send(message.clone()))
            .await
            .unwrap_or_else(|err| panic!("{what}: send failed: {err}"));
        match within_for(ECHO_TIMEOUT, "an echo", ws.next()).await {
            Some(Ok(echo)) => assert!(
                echo == *message,
                "{what}: echo of a {}-byte message differs",
                message.payload().len()
            ),
            other => panic!("{what}: expected an echo, got {other:?}"),
        }
    }
}

/// Runs the close handshake from the client and requires a clean end.
async fn close_cleanly(ws: &mut WebSocket<MaybeTlsStream>) {
    within("sending the close", ws.close()).await.expect("close");
    match within("the server's close", ws.next()).await {
        Some(Ok(Message::Close(Some(close)))) => assert_eq!(close.code, CloseCode::Normal),
        other => panic!("expected the close echo, got {other:?}"),
    }
    assert!(within("the end of the stream", ws.next()).await.is_none());
}

/// A server handler that echoes data messages and returns the first error the
/// stream yields, after requiring the stream to end behind it.
async fn first_error(mut ws: WebSocket<TcpStream>) -> Result<Error, Error> {
    loop {
        match ws.next().await {
            Some(Ok(message)) if message.is_data() => ws.send(message).await?,
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                assert!(ws.next().await.is_none(), "the stream ends after an error");
                return Ok(error);
            }
            None => panic!("the stream ended without an error"),
        }
    }
}

/// Receives frames from a raw peer up to and including the one with FIN set.
async fn recv_message_frames(peer: &mut Client) -> Vec<Frame> {
    let mut frames = vec![recv(peer).await];
    while !frames.last().expect("a frame").is_fin() {
        frames.push(recv(peer).await);
    }
    frames
}

// ---------------------------------------------------------------------------------
// Round trips between two fastws ends
// ---------------------------------------------------------------------------------

/// Which side holds the non-default deflate settings of a round trip.
#[derive(Debug, Clone, Copy)]
enum SetBy {
    /// The client offers them; the server runs the defaults.
    ClientOffer,
    /// The server's config imposes them; the client offers the defaults.
    ServerConfig,
}

/// The answer a server gives (RFC 7692 §7.1): it echoes the context takeover
/// parameters either side asked for; the server's window appears when the client
/// offered one. fastws clients always offer `client_max_window_bits`: a server at
/// its defaults limits it to 12 bits, one configured with a window limits it to
/// that (15 is no limit). A server may use a smaller window than 15 for itself
/// without saying so.
fn expected_answer(set_by: SetBy, server_nct: bool, client_nct: bool, bits: u8) -> String {
    let mut answer = String::from("permessage-deflate");
    if server_nct {
        answer.push_str("; server_no_context_takeover");
    }
    if client_nct {
        answer.push_str("; client_no_context_takeover");
    }
    if bits < 15
        && let SetBy::ClientOffer = set_by
    {
        write!(answer, "; server_max_window_bits={bits}").unwrap();
    }
    match set_by {
        SetBy::ClientOffer => write!(answer, "; client_max_window_bits={}", bits.min(12)).unwrap(),
        SetBy::ServerConfig if bits < 15 => write!(answer, "; client_max_window_bits={bits}").unwrap(),
        SetBy::ServerConfig => {}
    }
    answer
}

/// One connection between a fastws client and a fastws echo server with the given
/// settings: checks the negotiated answer, then round trips the messages.
async fn round_trip(
    set_by: SetBy,
    (server_nct, client_nct): (bool, bool),
    bits: u8,
    fragment_size: Option<usize>,
) {
    let what = format!(
        "{set_by:?} server_no_context_takeover={server_nct} client_no_context_takeover={client_nct} \
         bits={bits} fragment_size={fragment_size:?}"
    );
    let settings = DeflateConfig::default()
        .server_no_context_takeover(server_nct)
        .client_no_context_takeover(client_nct)
        .server_max_window_bits(bits)
        .client_max_window_bits(bits);
    let (server_deflate, client_deflate) = match set_by {
        SetBy::ClientOffer => (DeflateConfig::default(), settings),
        SetBy::ServerConfig => (settings, DeflateConfig::default()),
    };
    let config = |deflate| Config::default().fragment_size(fragment_size).deflate(deflate);
    let (addr, server) = start(config(server_deflate), echo).await;
    let (mut ws, response) = connect_fastws(addr, config(client_deflate))
        .await
        .unwrap_or_else(|err| panic!("{what}: handshake failed: {err}"));
    assert_eq!(response.status(), 101);
    let answer = extensions_of(&response).unwrap_or_else(|| panic!("{what}: deflate not negotiated"));
    assert_eq!(
        element(answer),
        element(&expected_answer(set_by, server_nct, client_nct, bits)),
        "{what}: answer {answer:?}"
    );

    // Twice: the second time refers back to the first under context takeover.
    let messages = round_trip_messages();
    expect_echoes(&mut ws, &messages, &what).await;
    expect_echoes(&mut ws, &messages, &what).await;
    close_cleanly(&mut ws).await;
    let seen = finish(server).await.expect("server result");
    let sent = [&messages[..], &messages[..]].concat();
    assert_eq!(seen.len(), sent.len() + 1, "{what}: the messages, then the close");
    assert!(
        seen[..sent.len()] == sent[..],
        "{what}: the server saw other messages"
    );
}

/// Every window size of the matrix, with outgoing messages fragmented (1000-byte
/// frames on both sides) for half of them.
async fn round_trip_matrix(set_by: SetBy, takeover: &[(bool, bool)]) {
    for &no_context_takeover in takeover {
        for (bits, fragment_size) in [(8, None), (9, Some(1000)), (12, None), (15, Some(1000))] {
            round_trip(set_by, no_context_takeover, bits, fragment_size).await;
        }
    }
}

#[tokio::test]
async fn round_trips_with_windows_offered_by_the_client_and_context_takeover() {
    round_trip_matrix(SetBy::ClientOffer, &[(false, false)]).await;
}

#[tokio::test]
async fn round_trips_with_windows_offered_by_the_client_without_context_takeover() {
    round_trip_matrix(SetBy::ClientOffer, &[(true, false), (false, true), (true, true)]).await;
}

#[tokio::test]
async fn round_trips_with_windows_set_by_the_server_and_context_takeover() {
    round_trip_matrix(SetBy::ServerConfig, &[(false, false)]).await;
}

#[tokio::test]
async fn round_trips_with_windows_set_by_the_server_without_context_takeover() {
    round_trip_matrix(SetBy::ServerConfig, &[(true, false), (false, true), (true, true)]).await;
}

// ---------------------------------------------------------------------------------
// On the wire
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn compression_shrinks_a_64_kib_json_message_on_the_wire() {
    let text = json(64 * 1024);
    let sent = text.clone();
    let (addr, server) = start(Config::default(), move |mut ws| async move {
        ws.send(Message::text(sent)).await?;
        echo(ws).await
    })
    .await;
    let (mut client, head) = connect_offering(addr, "permessage-deflate").await;
    assert_eq!(
        head.header("sec-websocket-extensions"),
        Some("permessage-deflate")
    );

    let frame = recv(&mut client).await;
    assert_eq!(frame.opcode(), OpCode::Text);
    assert!(
        frame.rsv1() && frame.is_fin(),
        "a compressed message has RSV1 set"
    );
    let wire = frame.payload().len();
    assert!(
        wire * 5 < text.len(),
        "{wire} bytes on the wire for {} of JSON",
        text.len()
    );
    assert_eq!(inflate_message(frame.payload(), &[]).data, text.as_bytes());

    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    expect_eof(&mut client).await;
    finish(server).await.expect("server result");
}

#[tokio::test]
async fn fragmented_compressed_message_has_rsv1_on_its_first_frame_only() {
    let mut message = json(64 * 1024).into_bytes();
    message.extend_from_slice(&noise(8 * 1024, 3));
    let sent = message.clone();
    let config = Config::default().fragment_size(Some(1000));
    let (addr, server) = start(config, move |mut ws| async move {
        ws.send(Message::binary(sent)).await?;
        echo(ws).await
    })
    .await;
    let (mut client, _) = connect_offering(addr, "permessage-deflate").await;

    let frames = recv_message_frames(&mut client).await;
    assert!(frames.len() > 2, "{} frames", frames.len());
    let (first, rest) = frames.split_first().unwrap();
    assert_eq!((first.opcode(), first.rsv()), (OpCode::Binary, 0b100));
    for frame in rest {
        assert_eq!(
            (frame.opcode(), frame.rsv()),
            (OpCode::Continuation, 0),
            "RSV1 marks only the first frame (RFC 7692 §6.1)"
        );
    }
    assert!(frames.iter().all(|frame| frame.payload().len() <= 1000));
    let compressed: Vec<u8> = frames.iter().flat_map(|f| f.payload().to_vec()).collect();
    assert!(compressed.len() < message.len() / 2);
    assert_eq!(inflate_message(&compressed, &[]).data, message);

    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    finish(server).await.expect("server result");
}

#[tokio::test]
async fn client_fragments_compressed_messages_with_rsv1_on_the_first_frame_only() {
    let message = json(32 * 1024);
    let (addr, server) = start_raw(|tcp| async move {
        let (head, mut peer) = accept_raw(tcp, Some("permessage-deflate")).await;
        let frames = recv_message_frames(&mut peer).await;
        send(&mut peer, Frame::close(CloseCode::Normal, "")).await;
        (head, frames)
    })
    .await;
    let config = Config::default().fragment_size(Some(1000));
    let (mut ws, response) = connect_fastws(addr, config).await.expect("handshake");
    assert_eq!(extensions_of(&response), Some("permessage-deflate"));
    within("sending", ws.send(Message::text(message.clone())))
        .await
        .unwrap();

    let (head, frames) = finish(server).await;
    assert!(
        request_header(&head, "sec-websocket-extensions").is_some_and(|v| v.contains("permessage-deflate"))
    );
    assert!(frames.len() > 2, "{} frames", frames.len());
    assert_eq!((frames[0].opcode(), frames[0].rsv()), (OpCode::Text, 0b100));
    assert!(
        frames[1..]
            .iter()
            .all(|f| f.opcode() == OpCode::Continuation && f.rsv() == 0)
    );
    assert!(frames.iter().all(|frame| frame.payload().len() <= 1000));
    let compressed: Vec<u8> = frames.iter().flat_map(|f| f.payload().to_vec()).collect();
    assert_eq!(inflate_message(&compressed, &[]).data, message.as_bytes());
}

#[tokio::test]
async fn compressed_fragments_from_the_peer_are_reassembled_around_a_ping() {
    let (addr, server) = start(Config::default(), echo).await;
    let (mut client, _) = connect_offering(addr, "permessage-deflate").await;
    let text = json(3000);
    let compressed = deflate_once(text.as_bytes());
    let third = compressed.len() / 3;
    send(
        &mut client,
        Frame::text(compressed[..third].to_vec())
            .with_fin(false)
            .with_rsv(0b100),
    )
    .await;
    send(&mut client, Frame::ping("between")).await;
    assert_eq!(recv(&mut client).await, Frame::pong("between"));
    send(
        &mut client,
        Frame::continuation(compressed[third..2 * third].to_vec()).with_fin(false),
    )
    .await;
    send(&mut client, Frame::continuation(compressed[2 * third..].to_vec())).await;

    let echoed = recv(&mut client).await;
    assert!(echoed.rsv1());
    assert_eq!(inflate_message(echoed.payload(), &[]).data, text.as_bytes());
    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    let seen = finish(server).await.expect("server result");
    assert_eq!(seen[0], Message::text(text));
}

#[tokio::test]
async fn uncompressed_messages_are_still_accepted_after_negotiation() {
    // RFC 7692 §6: a message without RSV1 on its first frame is not compressed.
    let (addr, server) = start(Config::default(), echo).await;
    let (mut client, _) = connect_offering(addr, "permessage-deflate").await;
    send(&mut client, Frame::text("plain").with_fin(false)).await;
    send(&mut client, Frame::continuation(" text")).await;
    let echoed = recv(&mut client).await;
    assert_eq!(inflate_message(echoed.payload(), &[]).data, b"plain text");
    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    assert_eq!(
        finish(server).await.expect("server result")[0],
        Message::text("plain text")
    );
}

#[tokio::test]
async fn messages_under_min_size_are_sent_uncompressed() {
    let config = Config::default().deflate(DeflateConfig::default().min_size(256));
    let long = json(1024);
    let sent = long.clone();
    let (addr, server) = start(config, move |mut ws| async move {
        ws.send(Message::text("short")).await?;
        ws.send(Message::text(sent)).await?;
        echo(ws).await
    })
    .await;
    let (mut client, _) = connect_offering(addr, "permessage-deflate").await;
    assert_eq!(recv(&mut client).await, Frame::text("short"));
    let frame = recv(&mut client).await;
    assert!(frame.rsv1());
    assert_eq!(inflate_message(frame.payload(), &[]).data, long.as_bytes());
    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    finish(server).await.expect("server result");
}

#[tokio::test]
async fn server_compressor_keeps_to_the_agreed_window() {
    let probe = window_probe();
    for bits in 8..=15u8 {
        let sent = probe.clone();
        let (addr, server) = start(Config::default(), move |mut ws| async move {
            ws.send(Message::binary(sent)).await?;
            echo(ws).await
        })
        .await;
        let offer = format!("permessage-deflate; server_max_window_bits={bits}");
        let (mut client, head) = connect_offering(addr, &offer).await;
        assert_eq!(head.header("sec-websocket-extensions"), Some(offer.as_str()));
        let frames = recv_message_frames(&mut client).await;
        assert_eq!(frames.len(), 1);
        let inflated = inflate_message(frames[0].payload(), &[]);
        assert_eq!(inflated.data, probe, "bits {bits}");
        assert!(
            inflated.max_distance <= 1 << bits,
            "a match {} bytes back with a {bits}-bit window",
            inflated.max_distance
        );
        // Not vacuous: the probe has copies the window reaches.
        assert!(
            inflated.max_distance > (1 << bits) / 4,
            "bits {bits}: {inflated:?}"
        );
        send(&mut client, Frame::close(CloseCode::Normal, "")).await;
        assert_eq!(expect_close(&mut client).await, Some(1000));
        finish(server).await.expect("server result");
    }
}

#[tokio::test]
async fn client_compressor_keeps_to_the_window_the_server_sets() {
    let probe = window_probe();
    for bits in 8..=15u8 {
        let answer = format!("permessage-deflate; client_max_window_bits={bits}");
        let (addr, server) = start_raw(move |tcp| async move {
            let (_, mut peer) = accept_raw(tcp, Some(&answer)).await;
            let frames = recv_message_frames(&mut peer).await;
            send(&mut peer, Frame::close(CloseCode::Normal, "")).await;
            frames
        })
        .await;
        // Offering the largest window, so that the server may set any.
        let config = Config::default().deflate(DeflateConfig::default().client_max_window_bits(15));
        let (mut ws, _) = connect_fastws(addr, config).await.expect("handshake");
        within("sending", ws.send(Message::binary(probe.clone())))
            .await
            .unwrap();
        let frames = finish(server).await;
        assert_eq!((frames.len(), frames[0].rsv()), (1, 0b100));
        let inflated = inflate_message(frames[0].payload(), &[]);
        assert_eq!(inflated.data, probe, "bits {bits}");
        assert!(
            inflated.max_distance <= 1 << bits,
            "a match {} bytes back with a {bits}-bit window",
            inflated.max_distance
        );
        assert!(
            inflated.max_distance > (1 << bits) / 4,
            "bits {bits}: {inflated:?}"
        );
    }
}

#[tokio::test]
async fn server_context_takeover_follows_the_negotiation() {
    let text = json(2000);
    for (offer, takeover) in [
        ("permessage-deflate", true),
        ("permessage-deflate; server_no_context_takeover", false),
    ] {
        let sent = text.clone();
        let (addr, server) = start(Config::default(), move |mut ws| async move {
            ws.send(Message::text(sent.clone())).await?;
            ws.send(Message::text(sent)).await?;
            echo(ws).await
        })
        .await;
        let (mut client, head) = connect_offering(addr, offer).await;
        assert_eq!(head.header("sec-websocket-extensions"), Some(offer));
        let first = recv(&mut client).await;
        let second = recv(&mut client).await;
        assert_eq!(inflate_message(first.payload(), &[]).data, text.as_bytes());
        if takeover {
            // The second message refers back into the first.
            assert!(second.payload().len() * 4 < first.payload().len(), "{offer}");
            assert_eq!(
                inflate_message(second.payload(), text.as_bytes()).data,
                text.as_bytes()
            );
            assert_eq!(
                inflate(&[&second.payload()[..], &TAIL].concat(), &[]),
                Err("distance too far back"),
                "{offer}: the second message needs the first"
            );
        } else {
            // A reset compressor compresses the same message the same way, alone.
            assert_eq!(second.payload(), first.payload(), "{offer}");
        }
        send(&mut client, Frame::close(CloseCode::Normal, "")).await;
        assert_eq!(expect_close(&mut client).await, Some(1000));
        finish(server).await.expect("server result");
    }
}

#[tokio::test]
async fn client_context_takeover_follows_the_negotiation() {
    let text = json(2000);
    for (answer, takeover) in [
        ("permessage-deflate", true),
        ("permessage-deflate; client_no_context_takeover", false),
    ] {
        let (addr, server) = start_raw(move |tcp| async move {
            let (_, mut peer) = accept_raw(tcp, Some(answer)).await;
            let first = recv(&mut peer).await;
            let second = recv(&mut peer).await;
            send(&mut peer, Frame::close(CloseCode::Normal, "")).await;
            (first, second)
        })
        .await;
        let (mut ws, _) = connect_fastws(addr, Config::default()).await.expect("handshake");
        for _ in 0..2 {
            within("sending", ws.send(Message::text(text.clone())))
                .await
                .unwrap();
        }
        let (first, second) = finish(server).await;
        assert!(first.rsv1() && second.rsv1());
        assert_eq!(inflate_message(first.payload(), &[]).data, text.as_bytes());
        if takeover {
            assert!(second.payload().len() * 4 < first.payload().len(), "{answer}");
            assert_eq!(
                inflate_message(second.payload(), text.as_bytes()).data,
                text.as_bytes()
            );
        } else {
            assert_eq!(second.payload(), first.payload(), "{answer}");
        }
    }
}

#[tokio::test]
async fn empty_message_first_or_without_context_takeover_is_a_valid_payload() {
    for offer in [
        "permessage-deflate",
        "permessage-deflate; server_no_context_takeover",
    ] {
        let (addr, server) = start(Config::default(), |mut ws| async move {
            ws.send(Message::text("")).await?;
            ws.send(Message::text("next")).await?;
            echo(ws).await
        })
        .await;
        let (mut client, _) = connect_offering(addr, offer).await;
        let empty = recv(&mut client).await;
        assert!(empty.rsv1(), "{offer}");
        assert_eq!(inflate_message(empty.payload(), &[]).data, b"", "{offer}");
        let next = recv(&mut client).await;
        assert_eq!(inflate_message(next.payload(), &[]).data, b"next", "{offer}");
        send(&mut client, Frame::close(CloseCode::Normal, "")).await;
        assert_eq!(expect_close(&mut client).await, Some(1000));
        finish(server).await.expect("server result");
    }
}

#[tokio::test]
async fn empty_message_after_another_is_a_valid_payload_under_context_takeover() {
    // zlib refuses a second sync flush with no new input (a buffer error, no output):
    // the empty message must still become a valid payload, such as the 0x00 of a
    // stored block header, so that the peer's stream stays in step.
    let (addr, server) = start(Config::default(), |mut ws| async move {
        ws.send(Message::text("first")).await?;
        ws.send(Message::text("")).await?;
        ws.send(Message::text("last")).await?;
        echo(ws).await
    })
    .await;
    let (mut client, _) = connect_offering(addr, "permessage-deflate").await;
    let mut history = Vec::new();
    for expected in ["first", "", "last"] {
        let frame = recv(&mut client).await;
        assert!(frame.rsv1());
        let payload = [&frame.payload()[..], &TAIL].concat();
        let inflated = inflate(&payload, &history)
            .unwrap_or_else(|err| panic!("payload {:x?} of {expected:?}: {err}", frame.payload()));
        assert_eq!(inflated.data, expected.as_bytes());
        history.extend_from_slice(&inflated.data);
    }
    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    finish(server).await.expect("server result");
}

#[tokio::test]
async fn empty_messages_round_trip_under_context_takeover() {
    let (addr, server) = start(Config::default(), echo).await;
    let (mut ws, _) = connect_fastws(addr, Config::default()).await.expect("handshake");
    let messages = ["a", "", "b", "", ""].map(Message::text);
    expect_echoes(&mut ws, &messages, "empty messages").await;
    close_cleanly(&mut ws).await;
    finish(server).await.expect("server result");
}

// ---------------------------------------------------------------------------------
// Size limits
// ---------------------------------------------------------------------------------

/// Starts a server with a 1 MiB message limit that returns its stream's error.
async fn start_limited() -> (SocketAddr, tokio::task::JoinHandle<Result<Error, Error>>) {
    start(Config::default().max_message_size(1 << 20), first_error).await
}

/// Requires a `MessageTooLarge` for the 1 MiB limit, found without inflating much
/// past it.
fn assert_refused_at_the_limit(error: &Error) {
    match *error {
        Error::MessageTooLarge { len, max } => {
            assert_eq!(max, 1 << 20);
            assert!(len > max, "len {len}");
            assert!(len <= max + 64 * 1024, "inflated {len} bytes before refusing");
        }
        ref other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    assert_eq!(error.close_code(), Some(CloseCode::Size));
}

#[tokio::test]
async fn decompression_bomb_is_refused_with_1009_before_it_is_inflated() {
    let bomb = zero_bomb();
    assert!(bomb.len() < 80 * 1024, "{} bytes", bomb.len());
    let (addr, server) = start_limited().await;
    let (mut client, _) = connect_offering(addr, "permessage-deflate").await;
    send(&mut client, Frame::binary(bomb).with_rsv(0b100)).await;
    assert_eq!(expect_close(&mut client).await, Some(1009));
    expect_eof(&mut client).await;
    assert_refused_at_the_limit(&finish(server).await.expect("server result"));
}

#[tokio::test]
async fn decompression_bomb_in_fragments_is_refused_at_the_fragment_that_crosses_the_limit() {
    let bomb = zero_bomb();
    let (addr, server) = start_limited().await;
    let (mut client, _) = connect_offering(addr, "permessage-deflate").await;
    // Fragments of 1 KiB (each inflates to about 1 MiB), written without waiting.
    let pieces: Vec<_> = bomb.chunks(1024).collect();
    let mut result = Ok(());
    for (i, piece) in pieces.iter().enumerate() {
        let frame = match i {
            0 => Frame::text(piece.to_vec()).with_rsv(0b100),
            _ => Frame::continuation(piece.to_vec()),
        };
        result = within(
            "sending a fragment",
            client.feed(frame.with_fin(i + 1 == pieces.len())),
        )
        .await;
        if result.is_err() {
            break;
        }
    }
    // The server may close before all fragments are written.
    let _ = result.and(within("flushing", client.flush()).await);
    assert_eq!(expect_close(&mut client).await, Some(1009));
    assert_refused_at_the_limit(&finish(server).await.expect("server result"));
}

#[tokio::test]
async fn client_refuses_a_decompression_bomb_from_the_server() {
    let bomb = zero_bomb();
    let (addr, server) = start_raw(|tcp| async move {
        let (_, mut peer) = accept_raw(tcp, Some("permessage-deflate")).await;
        send(&mut peer, Frame::binary(bomb).with_rsv(0b100)).await;
        let code = expect_close(&mut peer).await;
        send(&mut peer, Frame::close(CloseCode::Size, "")).await;
        code
    })
    .await;
    let config = Config::default().max_message_size(1 << 20);
    let (mut ws, _) = connect_fastws(addr, config).await.expect("handshake");
    match within("the client's error", ws.next()).await {
        Some(Err(error)) => assert_refused_at_the_limit(&error),
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(finish(server).await, Some(1009));
}

// ---------------------------------------------------------------------------------
// Invalid compressed data and misplaced RSV bits
// ---------------------------------------------------------------------------------

/// A DEFLATE block header with BTYPE 11, which RFC 1951 §3.2.3 reserves.
const INVALID_DEFLATE: [u8; 8] = [0xff; 8];

#[tokio::test]
async fn invalid_compressed_data_fails_with_1002() {
    assert_eq!(
        Error::from(ProtocolError::InvalidCompressedData).close_code(),
        Some(CloseCode::Protocol)
    );
    let (addr, server) = start(Config::default(), first_error).await;
    let (mut client, _) = connect_offering(addr, "permessage-deflate").await;
    send(&mut client, Frame::text(INVALID_DEFLATE.to_vec()).with_rsv(0b100)).await;
    assert_eq!(expect_close(&mut client).await, Some(1002));
    expect_eof(&mut client).await;
    let error = finish(server).await.expect("server result");
    assert!(
        matches!(error, Error::Protocol(ProtocolError::InvalidCompressedData)),
        "{error:?}"
    );
}

#[tokio::test]
async fn client_fails_with_1002_on_invalid_compressed_data() {
    let (addr, server) = start_raw(|tcp| async move {
        let (_, mut peer) = accept_raw(tcp, Some("permessage-deflate")).await;
        send(&mut peer, Frame::binary(INVALID_DEFLATE.to_vec()).with_rsv(0b100)).await;
        expect_close(&mut peer).await
    })
    .await;
    let (mut ws, _) = connect_fastws(addr, Config::default()).await.expect("handshake");
    match within("the client's error", ws.next()).await {
        Some(Err(Error::Protocol(ProtocolError::InvalidCompressedData))) => {}
        other => panic!("expected InvalidCompressedData, got {other:?}"),
    }
    assert_eq!(finish(server).await, Some(1002));
}

#[tokio::test]
async fn invalid_utf8_inside_compressed_text_fails_with_1007() {
    let (addr, server) = start(Config::default(), first_error).await;
    let (mut client, _) = connect_offering(addr, "permessage-deflate").await;
    let compressed = deflate_once(b"valid, then \xed\xa0\x80 a surrogate");
    send(&mut client, Frame::text(compressed).with_rsv(0b100)).await;
    assert_eq!(expect_close(&mut client).await, Some(1007));
    assert!(matches!(
        finish(server).await.expect("server result"),
        Error::InvalidUtf8
    ));
}

#[tokio::test]
async fn rsv1_on_a_continuation_frame_fails_with_1002() {
    for first_rsv in [0b100, 0] {
        let (addr, server) = start(Config::default(), first_error).await;
        let (mut client, _) = connect_offering(addr, "permessage-deflate").await;
        let compressed = deflate_once(json(100).as_bytes());
        let (head, tail) = compressed.split_at(compressed.len() / 2);
        let payload = if first_rsv == 0 { &b"plain"[..] } else { head };
        send(
            &mut client,
            Frame::text(payload.to_vec()).with_fin(false).with_rsv(first_rsv),
        )
        .await;
        send(&mut client, Frame::continuation(tail.to_vec()).with_rsv(0b100)).await;
        assert_eq!(
            expect_close(&mut client).await,
            Some(1002),
            "first rsv {first_rsv:#b}"
        );
        let error = finish(server).await.expect("server result");
        assert!(
            matches!(error, Error::Protocol(ProtocolError::ReservedBits(0b100))),
            "{error:?}"
        );
    }
}

#[tokio::test]
async fn rsv1_on_a_control_frame_fails_with_1002() {
    for frame in [
        Frame::ping("x"),
        Frame::pong("x"),
        Frame::close(CloseCode::Normal, ""),
    ] {
        let opcode = frame.opcode();
        let (addr, server) = start(Config::default(), first_error).await;
        let (mut client, _) = connect_offering(addr, "permessage-deflate").await;
        send(&mut client, frame.with_rsv(0b100)).await;
        assert_eq!(expect_close(&mut client).await, Some(1002), "{opcode:?}");
        let error = finish(server).await.expect("server result");
        assert!(
            matches!(error, Error::Protocol(ProtocolError::ReservedBits(0b100))),
            "{opcode:?}: {error:?}"
        );
    }
}

#[tokio::test]
async fn rsv1_without_negotiated_deflate_fails_with_1002() {
    let (addr, server) = start(Config::default(), first_error).await;
    let mut client = connect(addr).await;
    send(&mut client, Frame::text(deflate_once(b"hello")).with_rsv(0b100)).await;
    assert_eq!(expect_close(&mut client).await, Some(1002));
    let error = finish(server).await.expect("server result");
    assert!(
        matches!(error, Error::Protocol(ProtocolError::ReservedBits(0b100))),
        "{error:?}"
    );
}

#[tokio::test]
async fn rsv2_stays_reserved_with_deflate_negotiated() {
    let (addr, server) = start(Config::default(), first_error).await;
    let (mut client, _) = connect_offering(addr, "permessage-deflate").await;
    send(&mut client, Frame::text(deflate_once(b"hello")).with_rsv(0b110)).await;
    assert_eq!(expect_close(&mut client).await, Some(1002));
    let error = finish(server).await.expect("server result");
    assert!(
        matches!(error, Error::Protocol(ProtocolError::ReservedBits(_))),
        "{error:?}"
    );
}

#[tokio::test]
async fn message_compressed_with_a_final_block_is_accepted() {
    // RFC 7692 §7.2.3.4: "Hello" in a block with BFINAL set, then one octet that
    // starts an empty stored block, so the receiver's appended 00 00 ff ff completes
    // it. A sender may flush this way; the stream after it starts afresh.
    let (addr, server) = start(Config::default(), echo).await;
    let (mut client, _) = connect_offering(addr, "permessage-deflate").await;
    let rfc_example = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    send(&mut client, Frame::text(rfc_example.to_vec()).with_rsv(0b100)).await;
    let echoed = recv(&mut client).await;
    assert_eq!(echoed.opcode(), OpCode::Text, "got {echoed:?}");
    let history = inflate_message(echoed.payload(), &[]).data;
    assert_eq!(history, b"Hello");
    send(&mut client, Frame::text(deflate_once(b"again")).with_rsv(0b100)).await;
    let echoed = recv(&mut client).await;
    assert_eq!(echoed.opcode(), OpCode::Text, "got {echoed:?}");
    assert_eq!(inflate_message(echoed.payload(), &history).data, b"again");
    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    let seen = finish(server).await.expect("server result");
    assert_eq!(seen[..2], [Message::text("Hello"), Message::text("again")]);
}

// ---------------------------------------------------------------------------------
// Negotiation edge cases
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn server_with_deflate_disabled_answers_without_the_extension() {
    let disabled = || Config::default().deflate(DeflateConfig::disabled());

    // A raw client's offer is declined; frames come back without RSV1.
    let (addr, server) = start(disabled(), echo).await;
    let (mut client, head) = connect_offering(addr, "permessage-deflate; client_max_window_bits").await;
    assert_eq!(head.header("sec-websocket-extensions"), None);
    send(&mut client, Frame::text(json(1024))).await;
    assert_eq!(recv(&mut client).await, Frame::text(json(1024)));
    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    finish(server).await.expect("server result");

    // A fastws client goes on uncompressed.
    let (addr, server) = start(disabled(), echo).await;
    let (mut ws, response) = connect_fastws(addr, Config::default()).await.expect("handshake");
    assert_eq!(extensions_of(&response), None);
    let messages = [Message::text(json(1024)), Message::binary(noise(1024, 5))];
    expect_echoes(&mut ws, &messages, "deflate disabled on the server").await;
    close_cleanly(&mut ws).await;
    finish(server).await.expect("server result");
}

#[tokio::test]
async fn client_with_deflate_disabled_sends_no_offer() {
    let (addr, server) = start_raw(|tcp| async move {
        let (head, mut peer) = accept_raw(tcp, None).await;
        let frame = recv(&mut peer).await;
        send(&mut peer, Frame::close(CloseCode::Normal, "")).await;
        (head, frame)
    })
    .await;
    let config = Config::default().deflate(DeflateConfig::disabled());
    let (mut ws, response) = connect_fastws(addr, config.clone()).await.expect("handshake");
    assert_eq!(extensions_of(&response), None);
    within("sending", ws.send(Message::text(json(1024))))
        .await
        .unwrap();
    let (head, frame) = finish(server).await;
    assert_eq!(request_header(&head, "sec-websocket-extensions"), None, "{head}");
    assert_eq!(frame, Frame::text(json(1024)), "sent uncompressed");

    // Against a fastws server, too.
    let (addr, server) = start(Config::default(), echo).await;
    let (mut ws, response) = connect_fastws(addr, config).await.expect("handshake");
    assert_eq!(extensions_of(&response), None);
    expect_echoes(
        &mut ws,
        &[Message::text(json(1024))],
        "deflate disabled on the client",
    )
    .await;
    close_cleanly(&mut ws).await;
    finish(server).await.expect("server result");
}

/// Connects a fastws client with `deflate` to a server that answers `answer`;
/// returns the client's handshake error and the offer it sent.
async fn handshake_against(answer: &'static str, deflate: DeflateConfig) -> (Error, String) {
    let (addr, server) = start_raw(move |tcp| async move {
        let (head, mut peer) = accept_raw(tcp, Some(answer)).await;
        // The client gives up on the answer and closes.
        let _ = within("the client to hang up", peer.next()).await;
        head
    })
    .await;
    let result = connect_fastws(addr, Config::default().deflate(deflate)).await;
    let error = result
        .err()
        .unwrap_or_else(|| panic!("the client accepted {answer:?}"));
    let head = finish(server).await;
    let offer = request_header(&head, "sec-websocket-extensions").unwrap_or_default();
    (error, offer.to_owned())
}

/// Requires an invalid-handshake error whose reason mentions `words`.
fn assert_invalid_answer(error: &Error, words: &str) {
    match error {
        Error::Handshake(HandshakeError::Invalid { reason, status: None }) => {
            assert!(reason.contains(words), "reason {reason:?} lacks {words:?}")
        }
        other => panic!("expected an invalid handshake, got {other:?}"),
    }
}

#[tokio::test]
async fn client_refuses_a_window_larger_than_it_offered() {
    let deflate = DeflateConfig::default().client_max_window_bits(10);
    let (error, offer) = handshake_against("permessage-deflate; client_max_window_bits=12", deflate).await;
    assert!(offer.contains("client_max_window_bits=10"), "offer {offer:?}");
    assert_invalid_answer(&error, "client_max_window_bits");
}

#[tokio::test]
async fn client_refuses_an_unknown_parameter_in_the_answer() {
    let (error, _) = handshake_against("permessage-deflate; bogus", DeflateConfig::default()).await;
    assert_invalid_answer(&error, "parameter");
}

#[tokio::test]
async fn client_refuses_deflate_it_did_not_offer() {
    let (error, offer) = handshake_against("permessage-deflate", DeflateConfig::disabled()).await;
    assert_eq!(offer, "");
    assert_invalid_answer(&error, "did not offer");
}

#[tokio::test]
async fn client_refuses_an_answer_without_the_reset_it_required() {
    let deflate = DeflateConfig::default().server_no_context_takeover(true);
    let (error, offer) = handshake_against("permessage-deflate", deflate).await;
    assert!(offer.contains("server_no_context_takeover"), "offer {offer:?}");
    assert_invalid_answer(&error, "server_no_context_takeover");
}

#[tokio::test]
async fn server_declines_invalid_offers_and_takes_the_first_valid_one() {
    for (offer, answer) in [
        (
            "permessage-deflate; server_max_window_bits=7, permessage-deflate; client_no_context_takeover",
            Some("permessage-deflate; client_no_context_takeover"),
        ),
        ("permessage-deflate; bogus", None),
        ("x-webkit-deflate-frame", None),
    ] {
        let (addr, server) = start(Config::default(), echo).await;
        let (mut client, head) = connect_offering(addr, offer).await;
        assert_eq!(head.header("sec-websocket-extensions"), answer, "{offer}");
        send(&mut client, Frame::text("hi")).await;
        let echoed = recv(&mut client).await;
        match answer {
            Some(_) => assert_eq!(inflate_message(echoed.payload(), &[]).data, b"hi"),
            None => assert_eq!(echoed, Frame::text("hi"), "{offer}"),
        }
        send(&mut client, Frame::close(CloseCode::Normal, "")).await;
        assert_eq!(expect_close(&mut client).await, Some(1000));
        finish(server).await.expect("server result");
    }
}

#[tokio::test]
async fn incompressible_message_at_the_frame_limit_is_accepted_compressed_in_one_frame() {
    // Deflate makes incompressible data a little longer: 16 MiB of noise, the
    // default frame limit, compresses to a frame a few KiB over it. The limit
    // bounds what the message is, not what deflate made of it.
    let limit = Config::default().get_max_frame_size();
    let data = noise(limit, 7);
    let compressed = deflate_once(&data);
    assert!(compressed.len() > limit, "the test needs a frame over the limit");
    let (addr, server) = start(Config::default(), |mut ws| async move {
        let first = ws.next().await.expect("a message")?;
        Ok(first.into_payload())
    })
    .await;
    let (mut client, _) = connect_offering(addr, "permessage-deflate; client_max_window_bits").await;
    send(&mut client, Frame::binary(compressed).with_rsv(0b100)).await;
    let received = finish(server).await.expect("accepted");
    assert_eq!(received.len(), data.len());
    assert!(received == data[..], "inflated to the message that was sent");
}

#[tokio::test]
async fn a_server_that_hibernates_between_messages_keeps_both_streams_valid() {
    // The server's contexts hibernate after 10 ms of quiet; the client pauses
    // longer between messages, so every message wakes them again, primed with the
    // history. The client's compressor and decompressor never pause: each sees the
    // whole stream, as a browser's do.
    let config =
        Config::default().deflate(DeflateConfig::default().hibernate_after(Some(Duration::from_millis(10))));
    let (addr, server) = start(config, echo).await;
    let (mut client, head) = connect_offering(addr, "permessage-deflate; client_max_window_bits").await;
    // As a browser does, the client keeps to the window the server answered with.
    assert_eq!(
        head.header("sec-websocket-extensions"),
        Some("permessage-deflate; client_max_window_bits=12")
    );
    let mut compress = Compress::new_with_window_bits(Compression::default(), false, 12);
    let mut decompress = flate2::Decompress::new_with_window_bits(false, 15);
    let mut wire = 0;
    let messages: Vec<String> = (0..12).map(|i| json(700 + 150 * i)).collect();
    for (i, message) in messages.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let compressed = deflate_message(&mut compress, message.as_bytes());
        send(&mut client, Frame::text(compressed).with_rsv(0b100)).await;
        let echoed = recv(&mut client).await;
        assert!(echoed.rsv1(), "message {i} echoed compressed");
        wire += echoed.payload().len();
        let mut input = echoed.payload().to_vec();
        input.extend_from_slice(&TAIL);
        let mut out = Vec::with_capacity(message.len() + 64);
        decompress
            .decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync)
            .expect("the echo continues the server's stream");
        assert_eq!(out, message.as_bytes(), "message {i}");
    }
    // The history survived hibernation: similar messages kept compressing well.
    let total: usize = messages.iter().map(String::len).sum();
    assert!(wire * 5 < total, "{wire} bytes on the wire for {total}");
    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    assert_eq!(
        finish(server).await.expect("server result").len(),
        messages.len() + 1
    );
}
