//! Helpers of the chat example's tests (`tests/chat*.rs`): a room's subscription
//! is made after the handshake's 101, so the tests probe it before they count
//! lines, and skip the probes that are still in flight.

use std::time::Duration;

use fastws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};

use super::within;

/// The text every probe starts with.
pub const PROBE: &str = "probe";

/// Sends probes from `from` until `to` receives one: the server (or, through a
/// broker, both servers) has `to` in the room by then.
pub async fn until_subscribed<A, B>(from: &mut WebSocket<A>, to: &mut WebSocket<B>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    within("a subscription", async {
        loop {
            from.send(Message::text(PROBE)).await.unwrap();
            if let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_millis(50), to.next()).await {
                return;
            }
        }
    })
    .await;
}

/// The next text line `client` receives that is not a probe.
pub async fn next_line<S: AsyncRead + AsyncWrite + Unpin>(client: &mut WebSocket<S>, what: &str) -> String {
    loop {
        let message = within(what, client.next()).await.unwrap().unwrap();
        let text = message.as_text().expect("a text line");
        if !text.starts_with(PROBE) {
            return text.to_owned();
        }
    }
}
