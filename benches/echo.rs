//! Criterion bench of the message layer's own cost per echoed message, without a
//! kernel: the README's echo (`split()`, then `stream.forward(sink)`) over an
//! in-memory transport that serves bursts of pre-built masked frames and swallows
//! what is written. It times what fastws adds to every message (both halves' locks,
//! decode, unmask, reassembly, encode, reference counts), which loopback
//! throughput (benches/compare) mixes with the kernel's TCP work.
//!
//! Run with `cargo bench --bench echo`. On a machine whose timings wander (this
//! VM's pinned runs of one binary differed by up to 48 %), count instructions instead:
//! with `ECHO_BURSTS=N` set, the binary skips criterion and echoes exactly N bursts
//! (of the size `ECHO_SIZE` names, `16B` or `1KiB`; both if unset), so under
//! `valgrind --tool=cachegrind --cache-sim=no` the difference between two values of
//! N, divided by the messages it adds, is the instructions per message, the same in
//! every run.
//!
//! Each iteration makes one burst of `BURST` frames readable and polls the echo
//! once: it reads the burst, echoes every message, flushes, and waits for the next.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fastws::{Config, Frame, Role, WebSocket, WsCodec};
use futures::Future;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::codec::Encoder;

/// Messages per burst, as the load generator keeps 16 in flight per connection.
const BURST: usize = 16;

const SIZES: [(usize, &str); 2] = [(16, "16B"), (1 << 10, "1KiB")];

/// A transport that replays one burst of client frames each time it is allowed
/// to, and counts the bytes written to it.
struct Replay {
    burst: Bytes,
    offset: usize,
    bursts_allowed: Arc<AtomicUsize>,
    written: Arc<AtomicU64>,
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.offset == self.burst.len() {
            // Polled by hand: nothing needs waking when the next burst is allowed.
            if self.bursts_allowed.load(Ordering::Relaxed) == 0 {
                return Poll::Pending;
            }
            self.bursts_allowed.fetch_sub(1, Ordering::Relaxed);
            self.offset = 0;
        }
        let n = buf.remaining().min(self.burst.len() - self.offset);
        buf.put_slice(&self.burst[self.offset..self.offset + n]);
        self.offset += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Replay {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.written.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|buf| buf.len()).sum::<usize>();
        self.written.fetch_add(len as u64, Ordering::Relaxed);
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// `BURST` binary messages of `size` bytes, masked as a client sends them.
fn client_burst(size: usize) -> Bytes {
    let mut codec = WsCodec::client();
    let mut wire = BytesMut::new();
    for i in 0..BURST {
        let payload = Bytes::from(vec![i as u8; size]);
        codec.encode(Frame::binary(payload), &mut wire).expect("encodes");
    }
    wire.freeze()
}

/// The bytes of a server's unmasked echo of one `size`-byte binary message.
fn echoed_len(size: usize) -> u64 {
    let header = match size {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    };
    (header + size) as u64
}

fn forward(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _inside = runtime.enter();
    let fixed_bursts = std::env::var("ECHO_BURSTS")
        .ok()
        .map(|bursts| bursts.parse::<u64>().expect("ECHO_BURSTS is a number"));
    let mut group = c.benchmark_group("echo");
    group.throughput(Throughput::Elements(BURST as u64));
    let only_size = std::env::var("ECHO_SIZE").ok();
    for (size, label) in SIZES {
        if only_size.as_deref().is_some_and(|only| only != label) {
            continue;
        }
        let bursts_allowed = Arc::new(AtomicUsize::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let burst = client_burst(size);
        let transport = Replay {
            offset: burst.len(),
            burst,
            bursts_allowed: Arc::clone(&bursts_allowed),
            written: Arc::clone(&written),
        };
        let (sink, stream) = WebSocket::from_raw_socket(transport, Role::Server, Config::default()).split();
        let mut echo = std::pin::pin!(stream.forward(sink));
        let mut cx = Context::from_waker(Waker::noop());
        let mut one_burst = || {
            bursts_allowed.store(1, Ordering::Relaxed);
            assert!(
                echo.as_mut().poll(&mut cx).is_pending(),
                "the echo ended: {:?}",
                echo.as_mut().poll(&mut cx)
            );
        };
        // Check the echo before timing it: every message goes back, flushed.
        one_burst();
        assert_eq!(written.load(Ordering::Relaxed), BURST as u64 * echoed_len(size));
        if let Some(bursts) = fixed_bursts {
            for _ in 0..bursts {
                one_burst();
            }
            assert_eq!(
                written.load(Ordering::Relaxed),
                (bursts + 1) * BURST as u64 * echoed_len(size)
            );
            continue;
        }
        group.bench_function(BenchmarkId::new("forward", label), |b| {
            b.iter_custom(|iters| {
                let before = written.load(Ordering::Relaxed);
                let start = Instant::now();
                for _ in 0..iters {
                    one_burst();
                }
                let elapsed = start.elapsed();
                assert_eq!(
                    written.load(Ordering::Relaxed) - before,
                    iters * BURST as u64 * echoed_len(size),
                    "every message echoed"
                );
                elapsed
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = forward
}
criterion_main!(benches);
