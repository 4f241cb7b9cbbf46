//! A transport that misbehaves on purpose, driven by a seeded generator: it splits
//! reads and writes at random points, returns `Pending` at random, and at a planned
//! point fails for good (an error on read or write, or an early end of input). It
//! records every byte written through it, and whether anything was written after
//! `poll_shutdown`.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// SplitMix64: a tiny, seedable generator (Steele, Lea and Flood, 2014), good
/// enough to pick split points and plans, and the same on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: usize, high: usize) -> usize {
        low + self.below((high - low) as u64 + 1) as usize
    }

    /// True `percent` times in a hundred.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The failure a [`Faulty`] transport injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Reads fail with `ConnectionReset`.
    ReadError,
    /// Writes (and flushes and the shutdown) fail with `BrokenPipe`.
    WriteError,
    /// Reads end (`Ok` with nothing read) as if the peer had closed.
    EarlyEof,
}

/// A failure planned after `after` bytes in its direction (read for
/// [`FaultKind::ReadError`] and [`FaultKind::EarlyEof`], written for
/// [`FaultKind::WriteError`]); once it fires it stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub after: u64,
}

/// How a [`Faulty`] transport misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The most bytes one read or write passes through (each takes a random
    /// 1..=this, and no more than the caller offered).
    pub max_chunk: usize,
    /// The chance, in percent, that a poll returns a spurious `Pending`.
    pub pending_percent: u64,
    /// The failure to inject, if any.
    pub fault: Option<Fault>,
}

/// What a [`Faulty`] transport saw.
#[derive(Debug, Default)]
pub struct Recording {
    /// Every byte the inner transport accepted, in order.
    pub written: Vec<u8>,
    /// `poll_shutdown` was called.
    pub shut_down: bool,
    /// Bytes offered to `poll_write` after `poll_shutdown` was called.
    pub offered_after_shutdown: usize,
    /// The planned failure happened (it was returned to the caller at least once).
    pub fired: bool,
    /// Reads and writes that passed on fewer bytes than the caller offered.
    pub splits: u64,
    /// Spurious `Pending`s returned.
    pub pendings: u64,
}

/// A transport wrapping `inner` that misbehaves as its [`Plan`] says.
#[derive(Debug)]
pub struct Faulty<S> {
    inner: S,
    rng: Rng,
    plan: Plan,
    read: u64,
    written: u64,
    broken: bool,
    scratch: Vec<u8>,
    recording: Arc<Mutex<Recording>>,
}

impl<S> Faulty<S> {
    /// Wraps `inner`; the generator seeded with `seed` picks every split point and
    /// spurious `Pending`. Returns the transport and what it records.
    pub fn new(inner: S, seed: u64, plan: Plan) -> (Faulty<S>, Arc<Mutex<Recording>>) {
        let recording = Arc::new(Mutex::new(Recording::default()));
        let faulty = Faulty {
            inner,
            rng: Rng::new(seed),
            plan,
            read: 0,
            written: 0,
            broken: false,
            scratch: Vec::new(),
            recording: Arc::clone(&recording),
        };
        (faulty, recording)
    }

    /// A spurious `Pending`, with a wake-up so that nobody waits for it.
    fn spurious_pending(&mut self, cx: &Context<'_>) -> bool {
        let pending = self.plan.pending_percent > 0 && self.rng.percent(self.plan.pending_percent);
        if pending {
            cx.waker().wake_by_ref();
            self.recording.lock().unwrap().pendings += 1;
        }
        pending
    }

    /// How many of `offered` bytes to pass on, with `done` bytes already through
    /// in this direction; `None` if the fault of `kinds` fires now.
    fn chunk(&mut self, offered: usize, done: u64, kinds: &[FaultKind]) -> Option<usize> {
        let mut limit = offered.min(self.plan.max_chunk);
        if let Some(fault) = self.plan.fault.filter(|fault| kinds.contains(&fault.kind)) {
            if self.broken || done >= fault.after {
                self.broken = true;
                self.recording.lock().unwrap().fired = true;
                return None;
            }
            // Stop exactly at the planned byte, so the next call fails there.
            limit = limit.min((fault.after - done) as usize);
        }
        let len = match limit {
            0 => 0,
            limit => 1 + self.rng.below(limit as u64) as usize,
        };
        if len < offered {
            self.recording.lock().unwrap().splits += 1;
        }
        Some(len)
    }

    /// The write error, if it has fired.
    fn write_failed(&self) -> Option<io::Error> {
        let failed = self.broken && self.plan.fault.is_some_and(|f| f.kind == FaultKind::WriteError);
        failed.then(|| io::Error::new(io::ErrorKind::BrokenPipe, "injected write failure"))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Faulty<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.spurious_pending(cx) {
            return Poll::Pending;
        }
        let this = &mut *self;
        let read = this.read;
        let Some(len) = this.chunk(
            buf.remaining(),
            read,
            &[FaultKind::ReadError, FaultKind::EarlyEof],
        ) else {
            return match this.plan.fault.map(|f| f.kind) {
                Some(FaultKind::EarlyEof) => Poll::Ready(Ok(())),
                _ => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "injected read failure",
                ))),
            };
        };
        // Read into scratch space of `len` bytes (grown, never shrunk, so it is
        // zeroed once), then copy: a limited view of `buf` would need `unsafe`.
        if this.scratch.len() < len {
            this.scratch.resize(len, 0);
        }
        let mut part = ReadBuf::new(&mut this.scratch[..len]);
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut part))?;
        let got = part.filled().len();
        buf.put_slice(&this.scratch[..got]);
        this.read += got as u64;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> Faulty<S> {
    /// Writes a prefix of `bufs` (taken as one byte string) to the inner transport,
    /// vectored, so that a write may end anywhere in any slice.
    fn poll_write_parts(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.spurious_pending(cx) {
            return Poll::Pending;
        }
        let offered: usize = bufs.iter().map(|buf| buf.len()).sum();
        {
            let mut recording = self.recording.lock().unwrap();
            if recording.shut_down {
                recording.offered_after_shutdown += offered;
            }
        }
        let written = self.written;
        let Some(len) = self.chunk(offered, written, &[FaultKind::WriteError]) else {
            return Poll::Ready(Err(self.write_failed().expect("the write fault fired")));
        };
        let parts = prefix(bufs, len);
        let n = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, &parts))?;
        let mut recording = self.recording.lock().unwrap();
        for part in prefix(&parts, n) {
            recording.written.extend_from_slice(&part);
        }
        self.written += n as u64;
        Poll::Ready(Ok(n))
    }
}

/// The first `len` bytes of `bufs`, as slices (no copy).
fn prefix<'a>(bufs: &'a [io::IoSlice<'_>], mut len: usize) -> Vec<io::IoSlice<'a>> {
    let mut parts = Vec::new();
    for buf in bufs {
        if len == 0 {
            break;
        }
        let take = buf.len().min(len);
        parts.push(io::IoSlice::new(&buf[..take]));
        len -= take;
    }
    parts
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Faulty<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_parts(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_parts(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.spurious_pending(cx) {
            return Poll::Pending;
        }
        if let Some(error) = self.write_failed() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.recording.lock().unwrap().shut_down = true;
        if self.spurious_pending(cx) {
            return Poll::Pending;
        }
        if let Some(error) = self.write_failed() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
