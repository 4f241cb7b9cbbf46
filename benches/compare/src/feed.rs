//! An in-memory transport for counting a client's own work: reads hand out an
//! endless stream of pre-built unmasked frames, at most [`READ_LIMIT`] bytes at a
//! time and never `Pending`; writes are taken and dropped.
//!
//! Over a socket, how many reads and waits a large message takes depends on how
//! the client's and the server's threads happen to be scheduled, and under
//! callgrind the two take turns: the client role's count at 64 KiB moved between
//! 24 and 44 instructions per KiB from build to build. Over a `Feed` every run
//! reads the same bytes in the same pieces, so the count is exact; the copy out
//! of the feed, which a socket does in the kernel, is the same for every client
//! and is measured on its own by the `raw_tcp` client (read and discard).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most bytes one read returns: what a loopback socket read gives at most
/// while the sender keeps up.
pub const READ_LIMIT: usize = 64 << 10;

/// An endless stream of one unmasked binary frame of a fixed size, repeated.
pub struct Feed {
    /// Whole frames back to back, at least [`READ_LIMIT`] bytes of them, so a
    /// read never wraps more than once.
    frames: Vec<u8>,
    /// Where the next read starts in `frames`.
    at: usize,
}

impl Feed {
    /// A feed of binary frames with `size` bytes of payload each.
    pub fn new(size: usize) -> Feed {
        let frame = crate::neutral_server::unmasked_frame(size);
        let frames = frame.repeat(READ_LIMIT.div_ceil(frame.len()).max(2));
        Feed { frames, at: 0 }
    }
}

impl AsyncRead for Feed {
    fn poll_read(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let feed = self.get_mut();
        let mut left = buf.remaining().min(READ_LIMIT);
        while left > 0 {
            let take = left.min(feed.frames.len() - feed.at);
            buf.put_slice(&feed.frames[feed.at..feed.at + take]);
            feed.at = (feed.at + take) % feed.frames.len();
            left -= take;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Feed {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::EchoParser;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn reads_are_whole_frames_back_to_back_in_pieces_of_at_most_the_limit() {
        for size in [16, 1024, 65536, 1 << 20] {
            let mut feed = Feed::new(size);
            let mut parser = EchoParser::new(size, false);
            let mut buffer = vec![0u8; 3 * READ_LIMIT];
            let mut frames = 0;
            let mut bytes = 0usize;
            while frames < 40 {
                let n = feed.read(&mut buffer).await.unwrap();
                assert!(n > 0 && n <= READ_LIMIT, "a read of {n} bytes");
                bytes += n;
                frames += parser.feed(&buffer[..n]).unwrap();
            }
            let frame_len = crate::neutral_server::unmasked_frame(size).len() as u64;
            assert_eq!(frames, bytes as u64 / frame_len, "{size}-byte frames");
        }
    }
}
