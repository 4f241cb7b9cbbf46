//! `split()`: a sending half and a receiving half of one [`WebSocket`] that work
//! from different tasks at the same time.
//!
//! Both halves share the connection behind a mutex held only for the duration of
//! one poll, never across an `.await`. Unlike `futures`' generic split, the sending
//! half has no slot of its own: `start_send` puts the message straight into the
//! connection's write buffer, so a message accepted by the sink is always written
//! before a close frame the receiving half queues later.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::Error;
use crate::message::Message;
use crate::websocket::WebSocket;

/// The receiving half of a split [`WebSocket`]: a `Stream` of messages. It answers
/// pings on its own, so a task that only reads keeps the connection healthy.
pub struct SplitStream<S> {
    shared: Arc<Mutex<WebSocket<S>>>,
}

/// The sending half of a split [`WebSocket`]: a `Sink` of messages.
pub struct SplitSink<S> {
    shared: Arc<Mutex<WebSocket<S>>>,
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

/// Splits `ws` into its halves.
pub(crate) fn split<S>(ws: WebSocket<S>) -> (SplitSink<S>, SplitStream<S>) {
    let shared = Arc::new(Mutex::new(ws));
    (
        SplitSink {
            shared: Arc::clone(&shared),
        },
        SplitStream { shared },
    )
}

/// Locks the shared WebSocket. A panic in another half's poll leaves the state
/// as consistent as after any poll, so a poisoned lock is still used.
fn lock<S>(shared: &Mutex<WebSocket<S>>) -> MutexGuard<'_, WebSocket<S>> {
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<S> SplitStream<S> {
    /// The WebSocket both halves share.
    pub(crate) fn shared(&self) -> &Mutex<WebSocket<S>> {
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
        let mutex = Arc::try_unwrap(self.shared).unwrap_or_else(|_| unreachable!("both halves were given"));
        Ok(mutex
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

impl<S> SplitSink<S> {
    /// The WebSocket both halves share.
    pub(crate) fn shared(&self) -> &Mutex<WebSocket<S>> {
        &self.shared
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for SplitStream<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut *lock(&self.shared)).poll_next(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for SplitSink<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut *lock(&self.shared)).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        Pin::new(&mut *lock(&self.shared)).start_send(message)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut *lock(&self.shared)).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut *lock(&self.shared)).poll_close(cx)
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
