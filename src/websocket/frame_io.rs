//! Frames in and out of the transport: the read and write buffers, the codec, and
//! the system calls.
//!
//! This is what `tokio_util::codec::Framed` does, owned here so that the message
//! layer can reach the codec and both buffers at once, write a large payload after
//! the buffer without copying it, and keep the number of system calls down: the
//! write buffer goes out with one plain `write` (vectored only when a large payload
//! follows it), and a read never gets less free space than the codec asks for.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Decoder, Encoder, FramedParts};

use crate::codec::{Role, WsCodec, put_header};
use crate::error::Error;
use crate::frame::Frame;

/// Payloads at least this large are written from their own buffer (vectored)
/// instead of being copied into the write buffer.
const ZERO_COPY_MIN: usize = 64 * 1024;

/// The transport with its codec and buffers.
#[derive(Debug)]
pub(super) struct FrameIo<S> {
    pub(super) io: S,
    pub(super) codec: WsCodec,
    pub(super) read_buf: BytesMut,
    pub(super) write_buf: BytesMut,
    /// The payload of the last frame in the write buffer, written after it without
    /// being copied (see [`FrameIo::buffer`]).
    unbuffered: Option<Bytes>,
    /// Bytes arrived since the codec last asked for more: decode before reading.
    readable: bool,
    /// The transport reported the end of its input.
    eof: bool,
}

impl<S> FrameIo<S> {
    /// Takes the parts of a `Framed`. Buffers that hold no bytes are dropped, so an
    /// idle connection holds none.
    pub(super) fn from_parts(parts: FramedParts<S, WsCodec>) -> FrameIo<S> {
        let readable = !parts.read_buf.is_empty();
        let keep = |buf: BytesMut| if buf.is_empty() { BytesMut::new() } else { buf };
        FrameIo {
            io: parts.io,
            codec: parts.codec,
            read_buf: keep(parts.read_buf),
            write_buf: keep(parts.write_buf),
            unbuffered: None,
            readable,
            eof: false,
        }
    }

    /// Gives back the parts for a `Framed`, with any buffered bytes.
    pub(super) fn into_parts(mut self) -> FramedParts<S, WsCodec> {
        if let Some(payload) = self.unbuffered.take() {
            self.write_buf.extend_from_slice(&payload);
        }
        let mut parts = FramedParts::new::<Frame>(self.io, self.codec);
        parts.read_buf = self.read_buf;
        parts.write_buf = self.write_buf;
        parts
    }

    /// Puts a frame in the write buffer. A large payload is not copied: only its
    /// header is, and the payload waits to be written with a vectored write right
    /// after the buffer (a client masks it in place when it holds the only
    /// reference).
    pub(super) fn buffer(&mut self, frame: Frame) -> Result<(), Error> {
        if let Some(payload) = self.unbuffered.take() {
            // Frames must follow the large payload: this rare interleaving (a
            // control frame queued while it waits) pays one copy.
            self.write_buf.extend_from_slice(&payload);
        }
        if frame.payload().len() < ZERO_COPY_MIN || frame.opcode().is_control() {
            return self.codec.encode(frame, &mut self.write_buf);
        }
        let first_byte = frame.first_byte();
        let (payload, mask) = match self.codec.role() {
            Role::Server => (frame.into_payload(), None),
            Role::Client if frame.payload().is_unique() => {
                let mut payload = frame.into_payload().try_into_mut().expect("unique payload");
                let key = rand::random::<[u8; 4]>();
                crate::mask::apply_mask(&mut payload, key, 0);
                (payload.freeze(), Some(key))
            }
            // Shared: it cannot be masked in place, so it is masked as it is copied.
            Role::Client => return self.codec.encode(frame, &mut self.write_buf),
        };
        put_header(&mut self.write_buf, first_byte, payload.len(), mask);
        self.unbuffered = Some(payload);
        Ok(())
    }

    /// Whether the write buffer holds fewer than `limit` bytes and no large payload
    /// waits: another frame may be buffered without writing first.
    pub(super) fn has_room(&self, limit: usize) -> bool {
        self.unbuffered.is_none() && self.write_buf.len() < limit
    }

    /// The bytes of the frame being received, so far (the idle and keepalive timers
    /// count them as life).
    pub(super) fn read_buffered(&self) -> usize {
        self.read_buf.len()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> FrameIo<S> {
    /// The next frame; `None` at the end of the input with nothing buffered.
    ///
    /// # Errors
    ///
    /// What the codec refuses, the transport's errors, and `UnexpectedEof` if the
    /// input ends inside a frame.
    pub(super) fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame, Error>>> {
        loop {
            if self.readable {
                if let Some(frame) = self.codec.decode(&mut self.read_buf)? {
                    return Poll::Ready(Some(Ok(frame)));
                }
                self.readable = false;
            }
            if self.eof {
                if self.read_buf.is_empty() {
                    return Poll::Ready(None);
                }
                let cut = io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed inside a frame");
                return Poll::Ready(Some(Err(cut.into())));
            }
            rewind_if_empty(&mut self.read_buf);
            if self.read_buf.len() == self.read_buf.capacity() {
                // An emptied (or never used) buffer: give the read the space the
                // codec would have asked for.
                self.read_buf.reserve(self.codec.read_space());
            }
            let read = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut self.io),
                cx,
                &mut self.read_buf
            ))?;
            self.eof = read == 0;
            self.readable = true;
        }
    }

    /// Writes the write buffer, and the large payload that follows it, to the
    /// transport (without flushing the transport itself).
    pub(super) fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(payload) = &mut self.unbuffered {
            let slices = [IoSlice::new(&self.write_buf), IoSlice::new(payload)];
            let written = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let from_buffer = written.min(self.write_buf.len());
            self.write_buf.advance(from_buffer);
            payload.advance(written - from_buffer);
            if payload.is_empty() {
                self.unbuffered = None;
            }
        }
        while !self.write_buf.is_empty() {
            let written = ready!(Pin::new(&mut self.io).poll_write(cx, &self.write_buf))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.write_buf.advance(written);
        }
        rewind_if_empty(&mut self.write_buf);
        Poll::Ready(Ok(()))
    }

    /// Writes everything buffered and flushes the transport.
    pub(super) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_out(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Writes everything buffered, then shuts the transport's sending side down.
    pub(super) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_flush(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Moves an empty buffer back to the start of its allocation when nothing else
/// holds a part of it, without allocating or copying. A buffer left where its
/// last bytes ended walks through its whole capacity one burst after another;
/// rewound, every burst reuses the same memory, still in cache.
fn rewind_if_empty(buf: &mut BytesMut) {
    if buf.is_empty() {
        // Asking for one byte more than the free space past the current start
        // makes `try_reclaim` move the start back when it can; when a received
        // payload still shares the allocation it does nothing.
        let _rewound = buf.try_reclaim(buf.capacity() + 1);
    }
}
