//! Helpers of the chat example's tests (`tests/chat*.rs`): a room's subscription
//! is made after the handshake's 101, so the tests probe it before they count
//! lines, and skip the probes that are still in flight; numbered lines and skip
//! notices parsed; and a `redis-server` of the test's own.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fastws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

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

/// A numbered text line, `#<seq> <text>`: its number and its text.
pub fn numbered(line: &str) -> Option<(u64, &str)> {
    let (seq, text) = line.strip_prefix('#')?.split_once(' ')?;
    Some((seq.parse().ok()?, text))
}

/// A numbered binary line (the number in 8 bytes, big endian, then the payload):
/// its number and its payload.
pub fn numbered_binary(message: &Message) -> Option<(u64, &[u8])> {
    if !message.is_binary() {
        return None;
    }
    let (seq, payload) = message.payload().split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*seq), payload))
}

/// The count of a skip notice, `* K lines skipped`.
pub fn skipped(line: &str) -> Option<u64> {
    line.strip_prefix("* ")?
        .strip_suffix(" lines skipped")?
        .parse()
        .ok()
}

/// A `redis-server` of the test's own on a free loopback port, killed (by PID)
/// when dropped.
pub struct Redis {
    child: Child,
    pub url: String,
}

impl Redis {
    /// Whether `redis-server` is on the PATH.
    pub fn installed() -> bool {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Starts one, and waits until it accepts connections.
    pub async fn start() -> Redis {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot start redis-server ({err}): install it (Debian: apt-get install redis-server)")
            });
        let redis = Redis {
            child,
            url: format!("redis://127.0.0.1:{port}/"),
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        redis
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
