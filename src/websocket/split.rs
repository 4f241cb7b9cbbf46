//! `split()`: a sending half and a receiving half of one [`WebSocket`] that work
//! from different tasks at the same time.
//!
//! Both halves share the connection behind a mutex held only for the duration of
//! one poll, never across an `.await`. Unlike `futures`' generic split, the sending
//! half has no slot of its own: `start_send` puts the message straight into the
//! connection's write buffer, so a message accepted by the sink is always written
//! before a close frame the receiving half queues later.
//!
//! Whoever releases the lock records whether the sink would accept a message now;
//! `poll_ready` reads that record and returns at once when it says yes, taking the
//! lock only when it has to wait for a write. An echo then takes two locks per
//! message instead of three (the lock's two atomic operations were 3–4 % of a
//! server's time in a 16-byte echo).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};

use super::WebSocket;
use crate::error::Error;
use crate::message::Message;
use crate::prepared::PreparedMessage;

/// The receiving half of a split [`WebSocket`]: a `Stream` of messages. It answers
/// pings on its own, so a task that only reads keeps the connection healthy.
pub struct SplitStream<S> {
    shared: Arc<Shared<S>>,
}

/// The sending half of a split [`WebSocket`]: a `Sink` of messages.
pub struct SplitSink<S> {
    shared: Arc<Shared<S>>,
}

/// The halves given to [`SplitStream::reunite`] came from different WebSockets.
#[derive(Debug)]
pub struct ReuniteError<S>(pub SplitStream<S>, pub SplitSink<S>);

impl<S> fmt::Display for ReuniteError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves of different websockets")
    }
}

impl<S: fmt::Debug> std::error::Error for ReuniteError<S> {}

/// What both halves share: the WebSocket, and whether its sink would accept a
/// message without waiting, as of the last time the lock was released.
pub(crate) struct Shared<S> {
    ws: Mutex<WebSocket<S>>,
    sink_ready: AtomicBool,
}

impl<S> Shared<S> {
    /// Locks the shared WebSocket. A panic in another half's poll leaves the state
    /// as consistent as after any poll, so a poisoned lock is still used.
    pub(crate) fn lock(&self) -> Locked<'_, S> {
        Locked {
            ws: self.ws.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
            sink_ready: &self.sink_ready,
        }
    }
}

/// The locked WebSocket; on release it records whether its sink has room.
pub(crate) struct Locked<'a, S> {
    ws: MutexGuard<'a, WebSocket<S>>,
    sink_ready: &'a AtomicBool,
}

impl<S> Drop for Locked<'_, S> {
    fn drop(&mut self) {
        // A hint, read without the lock: it publishes no data, so Relaxed is
        // enough. A stale "yes" lets one more message into the write buffer.
        self.sink_ready
            .store(self.ws.accepts_without_waiting(), Ordering::Relaxed);
    }
}

impl<S> Deref for Locked<'_, S> {
    type Target = WebSocket<S>;

    fn deref(&self) -> &WebSocket<S> {
        &self.ws
    }
}

impl<S> DerefMut for Locked<'_, S> {
    fn deref_mut(&mut self) -> &mut WebSocket<S> {
        &mut self.ws
    }
}

/// Splits `ws` into its halves.
pub(crate) fn split<S>(ws: WebSocket<S>) -> (SplitSink<S>, SplitStream<S>) {
    let shared = Arc::new(Shared {
        sink_ready: AtomicBool::new(ws.accepts_without_waiting()),
        ws: Mutex::new(ws),
    });
    (
        SplitSink {
            shared: Arc::clone(&shared),
        },
        SplitStream { shared },
    )
}

impl<S> SplitStream<S> {
    /// What both halves share.
    pub(crate) fn shared(&self) -> &Shared<S> {
        &self.shared
    }

    /// Puts the halves back together.
    ///
    /// # Errors
    ///
    /// [`ReuniteError`] with both halves if they belong to different WebSockets.
    pub fn reunite(self, sink: SplitSink<S>) -> Result<WebSocket<S>, ReuniteError<S>> {
        if !Arc::ptr_eq(&self.shared, &sink.shared) {
            return Err(ReuniteError(self, sink));
        }
        drop(sink);
        let shared = Arc::try_unwrap(self.shared).unwrap_or_else(|_| unreachable!("both halves were given"));
        Ok(shared
            .ws
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

impl<S> SplitSink<S> {
    /// What both halves share.
    pub(crate) fn shared(&self) -> &Shared<S> {
        &self.shared
    }

    /// Whether this is the other half of `stream`.
    pub(crate) fn is_paired_with(&self, stream: &SplitStream<S>) -> bool {
        Arc::ptr_eq(&self.shared, &stream.shared)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for SplitStream<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut *self.shared.lock()).poll_next(cx)
    }
}

/// As [`WebSocket`]'s: terminated once nothing more will come.
impl<S: AsyncRead + AsyncWrite + Unpin> FusedStream for SplitStream<S> {
    fn is_terminated(&self) -> bool {
        self.shared.lock().is_terminated()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> SplitSink<S> {
    /// Queues a [`PreparedMessage`] after `poll_ready`, as
    /// [`WebSocket::start_send_prepared`] does.
    ///
    /// # Errors
    ///
    /// As [`WebSocket::start_send_prepared`].
    pub fn start_send_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), Error> {
        self.shared.lock().start_send_prepared(prepared)
    }

    /// Sends a [`PreparedMessage`] and flushes, as [`WebSocket::send_prepared`]
    /// does; the receiving half may run meanwhile in another task.
    ///
    /// # Errors
    ///
    /// As [`WebSocket::send_prepared`].
    pub async fn send_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), Error> {
        self.feed_prepared(prepared).await?;
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_flush(cx)).await
    }

    /// Queues a [`PreparedMessage`] once there is room, without flushing.
    ///
    /// # Errors
    ///
    /// As [`WebSocket::feed_prepared`].
    pub async fn feed_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), Error> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_ready(cx)).await?;
        self.start_send_prepared(prepared)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for SplitSink<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.shared.sink_ready.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut *self.shared.lock()).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        Pin::new(&mut *self.shared.lock()).start_send(message)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut *self.shared.lock()).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut *self.shared.lock()).poll_close(cx)
    }
}

impl<S> fmt::Debug for Shared<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("sink_ready", &self.sink_ready)
            .finish_non_exhaustive()
    }
}

impl<S> fmt::Debug for SplitStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SplitStream").finish_non_exhaustive()
    }
}

impl<S> fmt::Debug for SplitSink<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SplitSink").finish_non_exhaustive()
    }
}
