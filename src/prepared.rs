//! [`PreparedMessage`]: one message framed once, and compressed once per set of
//! compression settings, for sending to many connections (a broadcast).

use std::fmt;
use std::sync::Arc;
#[cfg(feature = "deflate")]
use std::sync::{Mutex, PoisonError};

use bytes::{Bytes, BytesMut};

use crate::codec::put_header;
#[cfg(feature = "deflate")]
use crate::deflate::compression::FreshCompression;
#[cfg(feature = "deflate")]
use crate::error::Error;
use crate::message::Message;

/// A message encoded once, to be sent to many server connections: a chat room, a
/// price feed, a live dashboard.
///
/// Built once from a [`Message`], it holds the frame a server sends as shared
/// [`Bytes`]. [`WebSocket::send_prepared`](crate::WebSocket::send_prepared) and
/// [`SplitSink::send_prepared`](crate::SplitSink::send_prepared) put it on a
/// connection without re-encoding it: the header is copied, the payload is copied
/// below 64 KiB and written from the shared buffer above. Clones share
/// everything (one reference count).
///
/// With permessage-deflate it is compressed once per distinct set of compression
/// settings (level and window), on the first connection that needs that set, and
/// reused by every other: valid whenever the sending side has **no context
/// takeover**, since each message is then compressed from a fresh state. Set
/// [`DeflateConfig::server_no_context_takeover`](crate::DeflateConfig::server_no_context_takeover)
/// on broadcast endpoints. Otherwise the message is sent as
/// [`send`](futures_util::SinkExt::send) sends it:
///
/// - with context takeover, it is compressed per connection, against that
///   connection's history;
/// - a client masks every frame with a fresh key (RFC 6455 §5.3), so a client
///   connection encodes it as usual;
/// - a connection whose [`fragment_size`](crate::Config::fragment_size) the
///   payload exceeds fragments it as usual;
/// - a control message (ping, pong, close) takes the ordinary path, so a close
///   still starts the close handshake.
///
/// In every case it goes out in order with the connection's other messages and
/// its owed control frames.
///
/// ```no_run
/// use fastws::{Message, PreparedMessage};
/// use tokio::sync::broadcast;
///
/// # async fn run(mut sink: fastws::SplitSink<tokio::net::TcpStream>) -> Result<(), fastws::Error> {
/// let (feed, _) = broadcast::channel::<PreparedMessage>(64);
/// // Each subscriber's task:
/// let mut updates = feed.subscribe();
/// tokio::spawn(async move {
///     while let Ok(update) = updates.recv().await {
///         if sink.send_prepared(&update).await.is_err() {
///             break;
///         }
///     }
/// });
/// // The publisher frames (and compresses) each update once:
/// let _ = feed.send(PreparedMessage::new(Message::text(r#"{"price": 101.5}"#)));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PreparedMessage {
    inner: Arc<Inner>,
}

struct Inner {
    message: Message,
    /// The frame without compression: the header, and the message's own payload.
    plain: Encoded,
    /// The compressed frames made so far, one per distinct settings.
    #[cfg(feature = "deflate")]
    compressed: Mutex<Vec<(FreshCompression, Encoded)>>,
}

/// A server frame as it goes on the wire: header, then payload.
#[derive(Debug, Clone)]
pub(crate) struct Encoded {
    pub(crate) header: Bytes,
    pub(crate) payload: Bytes,
}

impl Encoded {
    /// A final, unmasked frame with `first_byte` (FIN, RSV and opcode) and `payload`.
    fn new(first_byte: u8, payload: Bytes) -> Encoded {
        let mut header = BytesMut::with_capacity(10);
        put_header(&mut header, first_byte, payload.len(), None);
        Encoded {
            header: header.freeze(),
            payload,
        }
    }
}

impl PreparedMessage {
    /// Prepares `message`: frames it now; compression waits for the first
    /// connection that needs it.
    pub fn new(message: Message) -> PreparedMessage {
        let first_byte = message.clone().into_frame().first_byte();
        let plain = Encoded::new(first_byte, message.clone().into_payload());
        PreparedMessage {
            inner: Arc::new(Inner {
                message,
                plain,
                #[cfg(feature = "deflate")]
                compressed: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The message it was prepared from.
    pub fn message(&self) -> &Message {
        &self.inner.message
    }

    /// The uncompressed server frame.
    pub(crate) fn plain(&self) -> &Encoded {
        &self.inner.plain
    }

    /// The server frame compressed with `compression` (RSV1 set): made on the
    /// first call for these settings, shared by every call after.
    #[cfg(feature = "deflate")]
    pub(crate) fn compressed(&self, compression: FreshCompression) -> Result<Encoded, Error> {
        // Held while compressing, so a message is compressed once per settings
        // however many connections ask at the same time.
        let mut compressed = self
            .inner
            .compressed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, encoded)) = compressed.iter().find(|(made_with, _)| *made_with == compression) {
            return Ok(encoded.clone());
        }
        let payload = compression.compress(self.inner.message.payload())?;
        let encoded = Encoded::new(self.inner.plain.header[0] | 0x40, payload);
        compressed.push((compression, encoded.clone()));
        Ok(encoded)
    }

    /// How many compressed forms were made so far (one per distinct settings).
    #[cfg(all(test, feature = "deflate"))]
    pub(crate) fn compressions(&self) -> usize {
        self.inner.compressed.lock().unwrap().len()
    }
}

impl From<Message> for PreparedMessage {
    fn from(message: Message) -> PreparedMessage {
        PreparedMessage::new(message)
    }
}

impl fmt::Debug for PreparedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedMessage")
            .field("message", &self.inner.message)
            .finish_non_exhaustive()
    }
}
