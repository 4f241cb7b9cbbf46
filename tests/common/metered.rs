//! A transport that records the sizes of the reads and writes the layers above it
//! ask for: the way a test sees a WebSocket's buffer sizes from outside.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a transport saw: its largest single read and write show the size of the
/// buffers above it.
#[derive(Debug, Default)]
pub struct IoPeaks {
    /// The most room a single read offered (the free space of the read buffer).
    pub read_room: AtomicUsize,
    /// The most bytes a single write was given (the write buffer's contents).
    pub write: AtomicUsize,
    /// All bytes written.
    pub written: AtomicUsize,
    /// Where in memory the latest read was to land (the read buffer's free space).
    pub read_at: AtomicUsize,
    /// Where in memory the latest write came from (the write buffer's contents).
    pub write_at: AtomicUsize,
}

/// A transport that records [`IoPeaks`] of the transport `inner`.
pub struct Metered<S> {
    pub inner: S,
    pub peaks: Arc<IoPeaks>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.peaks.read_room.fetch_max(buf.remaining(), Ordering::Relaxed);
        let at = buf.filled().as_ptr() as usize + buf.filled().len();
        self.peaks.read_at.store(at, Ordering::Relaxed);
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.peaks.write.fetch_max(buf.len(), Ordering::Relaxed);
        self.peaks
            .write_at
            .store(buf.as_ptr() as usize, Ordering::Relaxed);
        let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        self.peaks.written.fetch_add(n, Ordering::Relaxed);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
