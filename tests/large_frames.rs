//! Large payloads take the zero-copy write path (header buffered, payload written
//! with a vectored write); what arrives must be exactly what was sent.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

use fastws::{Config, DeflateConfig, Message};

const LIMIT: Duration = Duration::from_secs(20);

fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

/// An echo server without compression, so payloads reach the write path as sent.
async fn echo_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let acceptor = fastws::Acceptor::new().config(Config::default().deflate(DeflateConfig::disabled()));
        let (sink, stream) = acceptor.accept(tcp).await.unwrap().split();
        let _ = stream.forward(sink).await;
    });
    format!("ws://{addr}/")
}

#[tokio::test]
async fn large_messages_pipelined_with_small_ones_arrive_intact_and_in_order() {
    let url = echo_server().await;
    let request =
        fastws::ClientRequest::new(url).config(Config::default().deflate(DeflateConfig::disabled()));
    let (ws, _) = timeout(LIMIT, fastws::connect(request)).await.unwrap().unwrap();
    let (mut sink, mut stream) = ws.split();
    let sizes = [70_000, 10, 1 << 20, 65_536, 3, 200_000, 65_535];
    let sent: Vec<Bytes> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| pattern(len, i as u8))
        .collect();
    let expected = sent.clone();
    let writer = tokio::spawn(async move {
        for payload in sent {
            // Feed without flushing so large and small frames queue behind each other.
            sink.feed(Message::Binary(payload)).await.unwrap();
        }
        sink.flush().await.unwrap();
        sink
    });
    for payload in &expected {
        let echo = timeout(LIMIT, stream.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(echo.payload().len(), payload.len());
        assert!(
            echo.payload() == &payload[..],
            "payload of {} bytes differs",
            payload.len()
        );
    }
    let _ = writer.await.unwrap();
}

#[tokio::test]
async fn a_client_never_masks_a_payload_the_caller_still_holds() {
    let url = echo_server().await;
    let request =
        fastws::ClientRequest::new(url).config(Config::default().deflate(DeflateConfig::disabled()));
    let (mut ws, _) = timeout(LIMIT, fastws::connect(request)).await.unwrap().unwrap();
    let kept = pattern(300_000, 7);
    let copy_before = kept.to_vec();
    ws.send(Message::Binary(kept.clone())).await.unwrap();
    let echo = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(
        kept.to_vec(),
        copy_before,
        "the caller's bytes were masked in place"
    );
    assert!(echo.payload() == &copy_before[..]);
}
