//! Timers and wake-ups: the close timeout, keepalive pings, the idle timeout, and
//! the proxy waker through which both halves of a split connection are woken.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;

use super::{Side, WebSocket};
use crate::error::Error;

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Runs the keepalive and idle timers while the read path waits. Returns
    /// `Ok(true)` when a keepalive ping was queued (to be sent at once).
    ///
    /// # Errors
    ///
    /// [`Error::IdleTimeout`] or [`Error::KeepaliveTimeout`] when the peer stayed
    /// silent too long.
    pub(super) fn poll_keepalive(&mut self, cx: &mut Context<'_>) -> Result<bool, Error> {
        // Life is a new frame or more bytes of one still arriving: a large frame
        // that takes long to arrive does not count as silence.
        let seen = (self.frames_received, self.frames.read_buffered());
        if let Some(timeout) = self.config.get_idle_timeout() {
            let timer = self
                .keepalive
                .idle
                .get_or_insert_with(|| Timer::new(timeout, seen));
            if self
                .both_halves
                .poll_timer(Side::Read, cx, &self.wake_both, timer)
            {
                if timer.seen == seen {
                    return Err(Error::IdleTimeout);
                }
                timer.rearm(timeout, seen);
                self.both_halves
                    .poll_timer(Side::Read, cx, &self.wake_both, timer);
            }
        }
        let Some(interval) = self.config.get_ping_interval() else {
            return Ok(false);
        };
        let timer = self
            .keepalive
            .ping
            .get_or_insert_with(|| Timer::new(interval, seen));
        if self.keepalive.ping_outstanding && timer.seen != seen {
            // Answered: the next ping is due one interval from now, not when the
            // ping timeout would have expired.
            self.keepalive.ping_outstanding = false;
            timer.rearm(interval, seen);
        }
        if !self
            .both_halves
            .poll_timer(Side::Read, cx, &self.wake_both, timer)
        {
            return Ok(false);
        }
        let ping_due = if timer.seen != seen {
            self.keepalive.ping_outstanding = false;
            timer.rearm(interval, seen);
            false
        } else if self.keepalive.ping_outstanding {
            return Err(Error::KeepaliveTimeout);
        } else {
            self.keepalive.ping_outstanding = true;
            timer.rearm(self.config.get_ping_timeout(), seen);
            true
        };
        self.both_halves
            .poll_timer(Side::Read, cx, &self.wake_both, timer);
        self.owed_ping |= ping_due;
        Ok(ping_due)
    }

    /// Lets the zlib contexts of a connection that has gone quiet hibernate: they
    /// go back to the thread and only their history stays.
    ///
    /// When is a connection quiet? A connection whose contexts had hibernated for
    /// at least [`DeflateConfig::hibernate_after`](crate::DeflateConfig::hibernate_after)
    /// before this message (or that never had contexts before) is one that
    /// messages now and then, as most browser connections do: its contexts go back
    /// as soon as it waits, so a burst of such connections never holds a context
    /// each (measured: 2,000 connections sending one message each held 160 KiB of
    /// resident memory apiece a second later, when their contexts waited out a
    /// timer). A connection that woke sooner than that is busy: its contexts stay
    /// until it has gone `hibernate_after` without a frame arriving or a message
    /// part compressed. A connection that holds no context has no timer.
    #[cfg(feature = "deflate")]
    pub(super) fn poll_hibernation(&mut self, side: Side, cx: &mut Context<'_>) {
        let Some(after) = self.config.get_deflate().get_hibernate_after() else {
            return;
        };
        if !self.holds_deflate_contexts() {
            self.hibernation = None;
            return;
        }
        if self.hibernation.is_none() {
            // The contexts woke (or were created) since they last hibernated.
            let now = tokio::time::Instant::now();
            let sporadic = self.hibernated_at.is_none_or(|at| now - at >= after);
            if sporadic && self.hibernate_deflate_contexts() {
                self.hibernated_at = Some(now);
                return;
            }
        }
        let compressed = self
            .deflater
            .as_ref()
            .map_or(0, |deflater| deflater.parts_compressed());
        let seen = (self.frames_received, compressed as usize);
        let timer = self.hibernation.get_or_insert_with(|| Timer::new(after, seen));
        if !self.both_halves.poll_timer(side, cx, &self.wake_both, timer) {
            return;
        }
        // Quiet for a whole period: contexts in the middle of a message stay.
        if timer.seen == seen && self.hibernate_deflate_contexts() {
            self.hibernation = None;
            self.hibernated_at = Some(tokio::time::Instant::now());
            return;
        }
        let timer = self.hibernation.as_mut().expect("armed above");
        timer.rearm(after, seen);
        self.both_halves.poll_timer(side, cx, &self.wake_both, timer);
    }

    /// Whether the compressor or the decompressor holds a zlib context.
    #[cfg(feature = "deflate")]
    fn holds_deflate_contexts(&mut self) -> bool {
        let inflater_holds = self
            .assembler
            .inflater_mut()
            .is_some_and(|inflater| inflater.holds_context());
        inflater_holds
            || self
                .deflater
                .as_ref()
                .is_some_and(|deflater| deflater.holds_context())
    }

    /// Hibernates both contexts; true if neither holds one now (one in the middle
    /// of a message stays).
    #[cfg(feature = "deflate")]
    fn hibernate_deflate_contexts(&mut self) -> bool {
        if let Some(deflater) = &mut self.deflater {
            deflater.hibernate();
        }
        if let Some(inflater) = self.assembler.inflater_mut() {
            inflater.hibernate();
        }
        !self.holds_deflate_contexts()
    }

    pub(super) fn start_close_timer(&mut self) {
        if self.close_deadline.is_none() {
            self.close_deadline = Some(Box::pin(tokio::time::sleep(self.config.get_close_timeout())));
        }
    }

    pub(super) fn close_timer_expired(&mut self, side: Side, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = &mut self.close_deadline else {
            return false;
        };
        self.both_halves.register(side, cx.waker());
        deadline
            .as_mut()
            .poll(&mut Context::from_waker(&self.wake_both))
            .is_ready()
    }
}

/// The keepalive and idle timers.
#[derive(Debug, Default)]
pub(super) struct Keepalive {
    ping: Option<Timer>,
    idle: Option<Timer>,
    /// A keepalive ping went out and no frame has arrived since.
    ping_outstanding: bool,
}

/// A timer and the peer's activity (frames received, bytes of a frame still
/// arriving) when it was armed: if that moved when it fires, the peer was heard
/// from meanwhile.
#[derive(Debug)]
pub(super) struct Timer {
    sleep: Pin<Box<Sleep>>,
    seen: (u64, usize),
}

impl Timer {
    fn new(after: Duration, seen: (u64, usize)) -> Timer {
        Timer {
            sleep: Box::pin(tokio::time::sleep(after)),
            seen,
        }
    }

    fn rearm(&mut self, after: Duration, seen: (u64, usize)) {
        self.sleep.as_mut().reset(tokio::time::Instant::now() + after);
        self.seen = seen;
    }
}

/// The wakers of the tasks that last polled through `wake_both`, one per half.
#[derive(Debug, Default)]
pub(super) struct BothHalves {
    read: AtomicWaker,
    write: AtomicWaker,
}

impl BothHalves {
    /// Polls `timer` so that its expiry wakes both halves; true if it expired.
    pub(super) fn poll_timer(
        &self,
        side: Side,
        cx: &Context<'_>,
        wake_both: &Waker,
        timer: &mut Timer,
    ) -> bool {
        self.register(side, cx.waker());
        timer
            .sleep
            .as_mut()
            .poll(&mut Context::from_waker(wake_both))
            .is_ready()
    }

    /// Lock-free; clones the waker only when a different task polls.
    pub(super) fn register(&self, side: Side, waker: &Waker) {
        match side {
            Side::Read => self.read.register(waker),
            Side::Write => self.write.register(waker),
        }
    }
}

impl Wake for BothHalves {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.read.wake();
        self.write.wake();
    }
}
