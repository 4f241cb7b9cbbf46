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
//! peers' pattern, a `Message` clone sent per subscriber.

use futures::{Sink, SinkExt, Stream, StreamExt};
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
