//! The fan-out benchmark (issue 16): one publisher, N subscribers, every message
//! broadcast by the server to all of them. This module holds what the servers and
//! the load side share: the message format and each library's broadcast server.
//!
//! Every connection is alike to a server: a data message from any connection goes
//! to every other one. The load side's subscribers never send, so what the
//! publisher sends is a broadcast. Each server is written in its library's
//! documented broadcast pattern: a `tokio::sync::broadcast` channel whose
//! receivers each connection's writer task drains, sending what it gets
//! (tokio-tungstenite's `server.rs` example shares messages the same way), and
//! sends each one with `send` (a flush per message). fastws, as its chat example:
//! a [`fastws::PreparedMessage`] made once per message, and a writer that feeds
//! what is already waiting before it flushes once. `fastws_send` is fastws in the
//! peers' pattern, a `Message` clone sent per subscriber. fastwebsockets, which
//! has no `Stream`/`Sink`, as its `echo_server_split.rs`: a hyper upgrade, the
//! socket split, and a writer task that `write_frame`s every message it receives.
//!
//! Two more servers speak the same protocol outside this crate, each in its own
//! language's documented pattern: `go/fanout_gorilla` (gorilla/websocket's
//! `PreparedMessage`) and `node/fanout_ws.mjs` (the broadcast loop of ws's
//! README). `fanout.sh` runs them beside `fanout_server`.

use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::broadcast;

/// The broadcast channel's capacity: the load side keeps the publisher at most
/// [`WINDOW`] messages ahead of the slowest subscriber, so no receiver lags.
pub const CHANNEL: usize = 1024;
/// How far the publisher may run ahead of the slowest subscriber.
pub const WINDOW: u64 = 64;

/// The fan-out server names, as `fanout_server` takes them.
/// `fastws_twin` is fastws again: the control that shows how far two runs of one
/// server differ.
pub const NAMES: &[&str] = &[
    "fastws",
    "fastws_twin",
    "fastws_send",
    "tungstenite",
    "tokio_websockets",
    "fastwebsockets",
];

/// Messages of 16 bytes are binary: the sequence number and the send time.
/// Larger ones are JSON text of exactly `size` bytes with both at fixed places.
pub fn payload(size: usize, seq: u64, sent_ns: u64) -> Vec<u8> {
    if size < JSON_PREFIX + 2 {
        let mut bytes = Vec::with_capacity(size.max(16));
        bytes.extend_from_slice(&seq.to_be_bytes());
        bytes.extend_from_slice(&sent_ns.to_be_bytes());
        bytes.resize(size.max(16), 0);
        return bytes;
    }
    let mut text = format!(r#"{{"seq":{seq:010},"t":{sent_ns:020},"d":""#).into_bytes();
    debug_assert_eq!(text.len(), JSON_PREFIX);
    let mut i = 0u64;
    while text.len() < size - 2 {
        let item = format!(
            r#"{{"id":{i},"symbol":"FAST{}","bid":101.25,"ask":101.50}},"#,
            i % 97
        );
        text.extend(item.bytes().filter(|&b| b != b'"'));
        i += 1;
    }
    text.truncate(size - 2);
    text.extend_from_slice(b"\"}");
    text
}

/// The length of the JSON prefix that holds the sequence number and the time.
const JSON_PREFIX: usize = 48;

/// The sequence number and send time of a payload made by [`payload`].
pub fn parse(payload: &[u8]) -> Option<(u64, u64)> {
    if payload.len() >= JSON_PREFIX && payload.starts_with(br#"{"seq":"#) {
        let digits = |range: std::ops::Range<usize>| -> Option<u64> {
            std::str::from_utf8(payload.get(range)?).ok()?.parse().ok()
        };
        return Some((digits(7..17)?, digits(22..42)?));
    }
    let seq = u64::from_be_bytes(payload.get(..8)?.try_into().ok()?);
    let sent = u64::from_be_bytes(payload.get(8..16)?.try_into().ok()?);
    Some((seq, sent))
}

/// A message and the connection it came from.
type Published<M> = (u64, M);

/// The peers' pattern over any `Stream` + `Sink` of messages: the reader
/// publishes each data message, the writer sends every other connection's.
async fn hub<W, M, E>(ws: W, id: u64, channel: broadcast::Sender<Published<M>>, is_data: fn(&M) -> bool)
where
    W: Stream<Item = Result<M, E>> + Sink<M> + Send + 'static,
    M: Clone + Send + 'static,
{
    let mut received = channel.subscribe();
    let (mut sink, mut stream) = ws.split();
    let writer = tokio::spawn(async move {
        loop {
            match received.recv().await {
                Ok((from, _)) if from == id => {}
                Ok((_, message)) => {
                    if sink.send(message).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    eprintln!("connection {id}: {skipped} messages skipped");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    while let Some(Ok(message)) = stream.next().await {
        if is_data(&message) {
            let _ = channel.send((id, message));
        }
    }
    writer.abort();
}

/// One server's accept loop: every connection joins one broadcast.
pub async fn serve(name: &str, listener: tokio::net::TcpListener, deflate: bool) -> std::io::Result<()> {
    let fastws_channel = broadcast::channel::<Published<fastws::PreparedMessage>>(CHANNEL).0;
    let fastws_send_channel = broadcast::channel::<Published<fastws::Message>>(CHANNEL).0;
    let tungstenite_channel =
        broadcast::channel::<Published<tokio_tungstenite::tungstenite::Message>>(CHANNEL).0;
    let tws_channel = broadcast::channel::<Published<tokio_websockets::Message>>(CHANNEL).0;
    let fwss_channel = broadcast::channel::<Published<FastwebsocketsMessage>>(CHANNEL).0;
    for id in 0u64.. {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        match name {
            "fastws" | "fastws_twin" => {
                tokio::spawn(fastws_prepared(tcp, id, fastws_channel.clone(), deflate));
            }
            "fastws_send" => {
                let channel = fastws_send_channel.clone();
                tokio::spawn(async move {
                    if let Ok(ws) = fastws_acceptor(deflate, false).accept(tcp).await {
                        hub(ws, id, channel, fastws::Message::is_data).await;
                    }
                });
            }
            "tungstenite" => {
                let channel = tungstenite_channel.clone();
                tokio::spawn(async move {
                    if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                        hub(ws, id, channel, |m| m.is_text() || m.is_binary()).await;
                    }
                });
            }
            "tokio_websockets" => {
                let channel = tws_channel.clone();
                tokio::spawn(async move {
                    if let Ok((_, ws)) = tokio_websockets::ServerBuilder::new().accept(tcp).await {
                        hub(ws, id, channel, |m| m.is_text() || m.is_binary()).await;
                    }
                });
            }
            "fastwebsockets" => {
                if deflate {
                    return Err(std::io::Error::other("fastwebsockets has no permessage-deflate"));
                }
                let channel = fwss_channel.clone();
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request| fastwebsockets_upgrade(request, id, channel.clone()));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .with_upgrades()
                        .await;
                });
            }
            other => return Err(std::io::Error::other(format!("no fan-out server {other:?}"))),
        }
    }
    Ok(())
}

/// fastws's acceptor: deflate on or off; for broadcast, without context
/// takeover on the server's side (what lets one compression serve everyone).
fn fastws_acceptor(deflate: bool, for_prepared: bool) -> fastws::Acceptor {
    let deflate = if deflate {
        fastws::DeflateConfig::default().server_no_context_takeover(for_prepared)
    } else {
        fastws::DeflateConfig::disabled()
    };
    fastws::Acceptor::new().config(fastws::Config::default().deflate(deflate))
}

/// fastws as its chat example broadcasts: the reader prepares each message once;
/// each writer feeds every prepared message already waiting, then flushes once.
async fn fastws_prepared(
    tcp: TcpStream,
    id: u64,
    channel: broadcast::Sender<Published<fastws::PreparedMessage>>,
    deflate: bool,
) {
    let Ok(ws) = fastws_acceptor(deflate, true).accept(tcp).await else {
        return;
    };
    let mut received = channel.subscribe();
    let (mut sink, mut stream) = ws.split();
    let writer = tokio::spawn(async move {
        // Every message already waiting goes into the write buffer, then one
        // flush: one write for a burst instead of one per message.
        loop {
            let mut next = match received.recv().await {
                Ok(first) => Ok(first),
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    eprintln!("connection {id}: {skipped} messages skipped");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            loop {
                match next {
                    Ok((from, message)) => {
                        if from != id && sink.feed_prepared(&message).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::TryRecvError::Lagged(skipped)) => {
                        eprintln!("connection {id}: {skipped} messages skipped");
                    }
                    Err(_) => break,
                }
                next = received.try_recv();
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(message)) = stream.next().await {
        if message.is_data() {
            let _ = channel.send((id, fastws::PreparedMessage::new(message)));
        }
    }
    writer.abort();
}

/// A data message as the fastwebsockets server shares it: its opcode and payload.
type FastwebsocketsMessage = (fastwebsockets::OpCode, Bytes);

/// fastwebsockets's upgrade (its `upgrade` feature, through hyper). The
/// connection joins the broadcast before the 101 goes out, so it misses nothing
/// published after its upgrade.
async fn fastwebsockets_upgrade(
    mut request: Request<Incoming>,
    id: u64,
    channel: broadcast::Sender<Published<FastwebsocketsMessage>>,
) -> Result<Response<Empty<Bytes>>, fastwebsockets::WebSocketError> {
    let (response, upgrade) = fastwebsockets::upgrade::upgrade(&mut request)?;
    let received = channel.subscribe();
    tokio::spawn(tokio::task::unconstrained(async move {
        if let Err(err) = fastwebsockets_connection(upgrade, id, channel, received).await {
            eprintln!("connection {id}: {err}");
        }
    }));
    Ok(response)
}

/// fastwebsockets as its `echo_server_split.rs`: the socket split with
/// `tokio::io::split`, a `FragmentCollectorRead` for whole messages, and here a
/// writer task that `write_frame`s every other connection's message (one write
/// per message and subscriber).
async fn fastwebsockets_connection(
    upgrade: fastwebsockets::upgrade::UpgradeFut,
    id: u64,
    channel: broadcast::Sender<Published<FastwebsocketsMessage>>,
    mut received: broadcast::Receiver<Published<FastwebsocketsMessage>>,
) -> Result<(), fastwebsockets::WebSocketError> {
    use fastwebsockets::{Frame, OpCode, Payload, WebSocketError};

    let (rx, mut tx) = upgrade.await?.split(tokio::io::split);
    let mut rx = fastwebsockets::FragmentCollectorRead::new(rx);
    let writer = tokio::spawn(tokio::task::unconstrained(async move {
        loop {
            match received.recv().await {
                Ok((from, _)) if from == id => {}
                Ok((_, (opcode, payload))) => {
                    let frame = Frame::new(true, opcode, None, Payload::Borrowed(&payload));
                    if tx.write_frame(frame).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    eprintln!("connection {id}: {skipped} messages skipped");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }));
    loop {
        // The replies the read half owes (pong, close echo) would go to the
        // writer; the load side's subscribers neither ping nor close, so none
        // arises, and this drops them.
        let frame = rx
            .read_frame::<_, WebSocketError>(&mut |_| async { Ok(()) })
            .await;
        let Ok(frame) = frame else { break };
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => {
                let payload = match frame.payload {
                    Payload::Bytes(bytes) => bytes.freeze(),
                    other => Bytes::copy_from_slice(&other),
                };
                let _ = channel.send((id, (frame.opcode, payload)));
            }
            _ => {}
        }
    }
    writer.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_their_sequence_and_time_at_every_size() {
        for size in [16, 1024, 64 << 10] {
            let bytes = payload(size, 1234, 987_654_321);
            assert_eq!(bytes.len(), size);
            assert_eq!(parse(&bytes), Some((1234, 987_654_321)), "size {size}");
            if size > 16 {
                assert!(std::str::from_utf8(&bytes).is_ok());
            }
        }
    }
}
