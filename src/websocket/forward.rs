//! `SplitStream::forward`: every received message into a sink, as `StreamExt::forward`
//! does, with the README's echo (`stream.forward(sink)` into the stream's own half)
//! as its fast path.
//!
//! Forwarded to its own half, the stream and the sink are one connection behind one
//! lock: futures' `Forward` takes that lock twice per message (`poll_next`, then
//! `start_send`) and once more per flush. This one takes it once per poll and runs
//! the same loop (`poll_ready`, `start_send`, `poll_next`, `poll_flush` when nothing
//! more has arrived, `poll_close` at the end) on the `WebSocket` inside. Any other
//! sink goes through futures' `Forward` unchanged.

use std::any::Any;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use futures_sink::Sink;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{SplitSink, SplitStream, WebSocket};
use crate::error::Error;
use crate::message::Message;

/// The future of [`SplitStream::forward`]: done when the stream has ended and the
/// sink is closed, or at the first error of either.
#[must_use = "futures do nothing unless polled"]
pub struct Forward<S, K>
where
    S: AsyncRead + AsyncWrite + Unpin,
    K: Sink<Message, Error = Error>,
{
    route: Route<S, K>,
}

enum Route<S, K>
where
    S: AsyncRead + AsyncWrite + Unpin,
    K: Sink<Message, Error = Error>,
{
    /// Into the stream's own half: one lock per poll.
    Paired {
        stream: SplitStream<S>,
        /// `None` once the future has completed.
        sink: Option<SplitSink<S>>,
        /// Received, waiting for the sink to have room.
        buffered: Option<Message>,
        stream_ended: bool,
    },
    /// Into any other sink. Boxed, because futures' `Forward` may be `!Unpin`.
    Other(Pin<Box<futures_util::stream::Forward<SplitStream<S>, K>>>),
}

impl<S, K> Forward<S, K>
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
    K: Sink<Message, Error = Error> + 'static,
{
    pub(super) fn new(stream: SplitStream<S>, sink: K) -> Forward<S, K> {
        let mut sink = Some(sink);
        let own_half = (&mut sink as &mut dyn Any)
            .downcast_mut::<Option<SplitSink<S>>>()
            .and_then(|half| half.take_if(|half| half.is_paired_with(&stream)));
        let route = match own_half {
            Some(half) => Route::Paired {
                stream,
                sink: Some(half),
                buffered: None,
                stream_ended: false,
            },
            None => Route::Other(Box::pin(StreamExt::forward(stream, sink.expect("not taken")))),
        };
        Forward { route }
    }
}

impl<S, K> Future for Forward<S, K>
where
    S: AsyncRead + AsyncWrite + Unpin,
    K: Sink<Message, Error = Error>,
{
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // Every field is either `Unpin` or pinned in its own box.
        match &mut self.get_mut().route {
            Route::Paired {
                stream,
                sink,
                buffered,
                stream_ended,
            } => {
                assert!(sink.is_some(), "Forward polled after completion");
                ready!(poll_paired(stream, buffered, stream_ended, cx))?;
                *sink = None;
                Poll::Ready(Ok(()))
            }
            Route::Other(forward) => forward.as_mut().poll(cx),
        }
    }
}

/// futures' `Forward` loop, on the `WebSocket` both halves share, under one lock.
fn poll_paired<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &SplitStream<S>,
    buffered: &mut Option<Message>,
    stream_ended: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<Result<(), Error>> {
    let mut locked = stream.shared().lock();
    let mut ws = Pin::new(&mut *locked);
    if let Some(message) = buffered.take() {
        ready!(poll_send(ws.as_mut(), message, buffered, cx))?;
    }
    loop {
        if *stream_ended {
            return ws.as_mut().poll_close(cx);
        }
        match ws.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(message))) => ready!(poll_send(ws.as_mut(), message, buffered, cx))?,
            Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(error)),
            Poll::Ready(None) => *stream_ended = true,
            Poll::Pending => {
                ready!(ws.as_mut().poll_flush(cx))?;
                return Poll::Pending;
            }
        }
    }
}

/// Sends `message` once the sink is ready; until then it waits in `held`.
///
/// `poll_ready` is skipped when it would return at once: what else it does (queue
/// the control frames the read path owes) `start_send` does too.
fn poll_send<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: Pin<&mut WebSocket<S>>,
    message: Message,
    held: &mut Option<Message>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), Error>> {
    if !ws.accepts_without_waiting() && ws.as_mut().poll_ready(cx)?.is_pending() {
        *held = Some(message);
        return Poll::Pending;
    }
    Poll::Ready(ws.start_send(message))
}

impl<S, K> fmt::Debug for Forward<S, K>
where
    S: AsyncRead + AsyncWrite + Unpin,
    K: Sink<Message, Error = Error>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let route = match self.route {
            Route::Paired { .. } => "own half",
            Route::Other(_) => "other sink",
        };
        f.debug_struct("Forward")
            .field("into", &route)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + 'static> SplitStream<S> {
    /// Sends every received message into `sink`, flushing whenever no received
    /// message is waiting, and closes `sink` when the stream ends: what
    /// [`StreamExt::forward`] does, which this method shadows.
    ///
    /// Into this stream's own [`SplitSink`] (an echo), the two halves' shared lock
    /// is taken once per poll instead of twice per message. Any other sink goes
    /// through `StreamExt::forward`. For a sink that borrows (not `'static`), call
    /// `StreamExt::forward(stream, sink)` directly.
    ///
    /// ```no_run
    /// # async fn run(tcp: tokio::net::TcpStream) -> Result<(), fastws::Error> {
    /// let (sink, stream) = fastws::accept(tcp).await?.split();
    /// stream.forward(sink).await // the echo
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// The first error of the stream or the sink.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a dropped future drops a received message that was waiting
    /// for room in the sink, as `StreamExt::forward` does.
    pub fn forward<K>(self, sink: K) -> Forward<S, K>
    where
        K: Sink<Message, Error = Error> + 'static,
    {
        Forward::new(self, sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route<S, K>(forward: &Forward<S, K>) -> &'static str
    where
        S: AsyncRead + AsyncWrite + Unpin,
        K: Sink<Message, Error = Error>,
    {
        match forward.route {
            Route::Paired { .. } => "paired",
            Route::Other(_) => "other",
        }
    }

    fn halves() -> (
        SplitSink<tokio::io::DuplexStream>,
        SplitStream<tokio::io::DuplexStream>,
    ) {
        let (io, _peer) = tokio::io::duplex(64);
        crate::WebSocket::from_raw_socket(io, crate::Role::Server, crate::Config::default()).split()
    }

    #[tokio::test]
    async fn only_the_streams_own_half_takes_the_shared_lock_path() {
        let (sink, stream) = halves();
        assert_eq!(route(&stream.forward(sink)), "paired");

        let (_, stream) = halves();
        let (other_sink, _other_stream) = halves();
        assert_eq!(route(&stream.forward(other_sink)), "other");

        let (sink, stream) = halves();
        let mapped = futures_util::SinkExt::sink_map_err(sink, |error: Error| error);
        assert_eq!(route(&stream.forward(mapped)), "other");
    }
}
