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

    /// Lets the zlib contexts of a connection that has gone quiet hibernate: after
    /// [`DeflateConfig::hibernate_after`](crate::DeflateConfig::hibernate_after)
    /// without a frame arriving or a message part compressed, they go back to the
    /// thread and only their history stays. A connection that holds no context has
    /// no timer.
    #[cfg(feature = "deflate")]
    pub(super) fn poll_hibernation(&mut self, side: Side, cx: &mut Context<'_>) {
        let Some(after) = self.config.get_deflate().get_hibernate_after() else {
            return;
        };
        let inflater_holds = self
            .assembler
            .inflater_mut()
            .is_some_and(|inflater| inflater.holds_context());
        let deflater_holds = self
            .deflater
            .as_ref()
            .is_some_and(|deflater| deflater.holds_context());
        if !inflater_holds && !deflater_holds {
            self.hibernation = None;
            return;
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
        if timer.seen == seen {
            // Quiet for a whole period: contexts in the middle of a message stay.
            let deflater_asleep = self.deflater.as_mut().is_none_or(|deflater| {
                deflater.hibernate();
                !deflater.holds_context()
            });
            let inflater_asleep = self.assembler.inflater_mut().is_none_or(|inflater| {
                inflater.hibernate();
                !inflater.holds_context()
            });
            if deflater_asleep && inflater_asleep {
                self.hibernation = None;
                return;
            }
        }
        timer.rearm(after, seen);
        self.both_halves.poll_timer(side, cx, &self.wake_both, timer);
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
