//! Frames in and out of the transport: the read and write buffers, the codec, and
//! the system calls.
//!
//! This is what `tokio_util::codec::Framed` does, owned here so that the message
//! layer can reach the codec and both buffers at once, write large payloads between
//! the buffered bytes without copying them, and keep the number of system calls
//! down: the write buffer goes out with one plain `write` (vectored only when large
//! payloads are queued), a read between frames never gets less free space than
//! the codec asks for, and queued payloads go out before a read, so that an echo's
//! payloads stop sharing the read buffer and the next read reuses it. A read of a
//! frame too large for several per buffer counts toward tokio's cooperative
//! budget by its size, so one connection streaming such frames cannot keep its
//! thread from the others for long.
//!
//! Buffers that are empty go back to the thread: a connection whose read has to
//! wait, or whose writes are all out, lends its empty buffer to the next connection
//! the thread serves (if the thread's slot is free). A waiting connection then
//! usually holds no buffer at all, and the first read after a wait gets the room
//! of the buffer it borrows (at least [`FIRST_READ`] bytes).

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use std::thread::LocalKey;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Encoder, FramedParts};

use crate::codec::{Role, WsCodec, put_header};
use crate::error::Error;
use crate::frame::{Frame, OpCode};

/// Payloads at least this large are written from their own buffer (vectored)
/// instead of being copied into the write buffer. Below it copying costs less:
/// measured on a 1 KiB echo, one slice per payload made the kernel's copy slower
/// than our copy into one contiguous buffer.
const ZERO_COPY_MIN: usize = 64 * 1024;

/// The buffer a read gets when the connection has none and its thread has no
/// spare to lend. Measured with 5,000 idle connections: 8.0 KiB of resident memory
/// per connection with the codec's 4 KiB read space, 4.6 KiB with this; 4.0 KiB
/// since a waiting connection lends its empty buffer back to the thread.
const FIRST_READ: usize = 512;

/// The most payloads waiting to be written uncopied; past it the write buffer
/// counts as full, so `poll_ready` writes before accepting more.
const MAX_QUEUED_PAYLOADS: usize = 64;

/// The most slices one vectored write hands to the transport: every queued
/// payload with the buffered bytes before it, and the bytes after the last.
const MAX_SLICES: usize = 2 * MAX_QUEUED_PAYLOADS + 1;

/// The bytes of a large read that count as one operation to tokio's
/// cooperative budget (see [`poll_charge_budget`]): a turn of 128 operations then
/// carries at most 16 MiB of a connection's frames.
const BUDGET_UNIT: usize = 128 * 1024;

/// The largest buffer a connection lends back to its thread (see [`lend_back`]);
/// a larger one stays with its connection, for the idle shrink to free.
const MAX_LENT_BACK: usize = 256 * 1024;

thread_local! {
    /// An empty read buffer and an empty write buffer per thread, taken by whichever
    /// connection on the thread needs one and has none, and given back when it is
    /// empty again (the read buffer when a read has to wait, the write buffer when
    /// everything is written). Connections that a thread serves one after another
    /// then read into and write from the same memory instead of each keeping
    /// buffers of its own between bursts.
    static SPARE_READ_BUF: Cell<BytesMut> = Cell::new(BytesMut::new());
    static SPARE_WRITE_BUF: Cell<BytesMut> = Cell::new(BytesMut::new());
}

/// The thread's spare buffer from `spare`, if it has one: otherwise an empty,
/// unallocated buffer.
fn take_spare(spare: &'static LocalKey<Cell<BytesMut>>) -> BytesMut {
    spare.try_with(Cell::take).unwrap_or_default()
}

/// Rewinds an empty buffer and gives it to the thread's `spare` slot if that slot
/// is free and the buffer is worth lending (from [`FIRST_READ`] to
/// [`MAX_LENT_BACK`] bytes); otherwise the buffer stays where it is.
fn lend_back(buf: &mut BytesMut, spare: &'static LocalKey<Cell<BytesMut>>) {
    debug_assert!(buf.is_empty());
    rewind_if_empty(buf);
    if !(FIRST_READ..=MAX_LENT_BACK).contains(&buf.capacity()) {
        return;
    }
    let _ = spare.try_with(|slot| {
        let held = slot.take();
        if held.capacity() == 0 {
            slot.set(std::mem::take(buf));
        } else {
            slot.set(held);
        }
    });
}

/// The transport with its codec and buffers.
#[derive(Debug)]
pub(super) struct FrameIo<S> {
    pub(super) io: S,
    pub(super) codec: WsCodec,
    pub(super) read_buf: BytesMut,
    /// Frame headers and copied payloads, in the order they go out; uncopied
    /// payloads are written between its bytes, where `payloads` says.
    pub(super) write_buf: BytesMut,
    /// Payloads written without being copied (see [`FrameIo::buffer`]), in order.
    payloads: VecDeque<Uncopied>,
    /// The `write_buf` bytes that go out before the last queued payload.
    bytes_before_last_payload: usize,
    /// The bytes of all queued payloads.
    payload_bytes: usize,
    /// Bytes arrived since the codec last asked for more: decode before reading.
    readable: bool,
    /// The transport reported the end of its input.
    eof: bool,
    /// An error of a write the read path made ahead of the sending side, kept for
    /// whoever writes or reads next: the system reports a connection reset only
    /// once, so dropping it would turn a reset into a plain end of input.
    write_error: Option<io::Error>,
}

/// A payload that goes out from its own buffer after `after_buffered` more bytes
/// of the write buffer (counted from the previous uncopied payload).
#[derive(Debug)]
struct Uncopied {
    after_buffered: usize,
    payload: Bytes,
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
            payloads: VecDeque::new(),
            bytes_before_last_payload: 0,
            payload_bytes: 0,
            readable,
            eof: false,
            write_error: None,
        }
    }

    /// Gives back the parts for a `Framed`, with any buffered bytes (uncopied
    /// payloads copied in their place).
    pub(super) fn into_parts(mut self) -> FramedParts<S, WsCodec> {
        let write_buf = if self.payloads.is_empty() {
            self.write_buf
        } else {
            let mut flat = BytesMut::with_capacity(self.write_buf.len() + self.payload_bytes);
            for Uncopied {
                after_buffered,
                payload,
            } in self.payloads.drain(..)
            {
                flat.extend_from_slice(&self.write_buf.split_to(after_buffered));
                flat.extend_from_slice(&payload);
            }
            flat.extend_from_slice(&self.write_buf);
            flat
        };
        let mut parts = FramedParts::new::<Frame>(self.io, self.codec);
        parts.read_buf = self.read_buf;
        parts.write_buf = write_buf;
        parts
    }

    /// Whether the write buffer and the queued payloads hold fewer than `limit`
    /// bytes (and few enough payloads for one vectored write): another frame may be
    /// buffered without writing first.
    pub(super) fn has_room(&self, limit: usize) -> bool {
        self.payloads.len() < MAX_QUEUED_PAYLOADS && self.write_buf.len() + self.payload_bytes < limit
    }

    /// Whether nothing waits to be written.
    pub(super) fn is_empty(&self) -> bool {
        self.write_buf.is_empty() && self.payloads.is_empty()
    }

    /// The bytes of the frame being received, so far (the idle and keepalive timers
    /// count them as life).
    pub(super) fn read_buffered(&self) -> usize {
        self.read_buf.len()
    }

    /// Queues `payload` to be written uncopied after what the write buffer holds now.
    fn queue_uncopied(&mut self, payload: Bytes) {
        let after_buffered = self.write_buf.len() - self.bytes_before_last_payload;
        self.bytes_before_last_payload = self.write_buf.len();
        self.payload_bytes += payload.len();
        self.payloads.push_back(Uncopied {
            after_buffered,
            payload,
        });
    }

    /// Takes `written` bytes off the front of what is queued: write buffer bytes
    /// and uncopied payloads, in their order on the wire.
    fn consume_written(&mut self, mut written: usize) {
        while let Some(next) = self.payloads.front_mut() {
            let from_buffer = written.min(next.after_buffered);
            self.write_buf.advance(from_buffer);
            next.after_buffered -= from_buffer;
            self.bytes_before_last_payload -= from_buffer;
            written -= from_buffer;
            let from_payload = written.min(next.payload.len());
            next.payload.advance(from_payload);
            self.payload_bytes -= from_payload;
            written -= from_payload;
            if !next.payload.is_empty() {
                return;
            }
            self.payloads.pop_front();
        }
        // Every payload is out: what is left of `written` came from the buffer
        // after the last one.
        debug_assert_eq!(self.bytes_before_last_payload, 0);
        self.write_buf.advance(written);
    }

    /// Puts a frame encoded elsewhere in the write buffer: the header is copied,
    /// and the payload too unless it is large enough to go out uncopied (as in
    /// [`FrameIo::buffer`]).
    pub(super) fn buffer_encoded(&mut self, header: &[u8], payload: &Bytes) {
        if self.write_buf.capacity() == 0 && self.payloads.is_empty() {
            self.write_buf = take_spare(&SPARE_WRITE_BUF);
        }
        self.write_buf.extend_from_slice(header);
        if payload.len() < ZERO_COPY_MIN {
            self.write_buf.extend_from_slice(payload);
        } else {
            self.queue_uncopied(payload.clone());
        }
    }

    /// Puts a frame in the write buffer. A large payload is not copied: only its
    /// header is, and the payload is written from its own buffer after the bytes
    /// buffered before it (a client masks it in place when it holds the only
    /// reference; a shared one is masked as it is copied).
    pub(super) fn buffer(&mut self, frame: Frame) -> Result<(), Error> {
        if self.write_buf.capacity() == 0 && self.payloads.is_empty() {
            self.write_buf = take_spare(&SPARE_WRITE_BUF);
        }
        let len = frame.payload().len();
        let client = self.codec.role() == Role::Client;
        if len < ZERO_COPY_MIN || frame.opcode().is_control() || (client && !frame.payload().is_unique()) {
            return self.codec.encode(frame, &mut self.write_buf);
        }
        let first_byte = frame.first_byte();
        let (payload, mask) = if client {
            let mut payload = frame.into_payload().try_into_mut().expect("unique payload");
            let key = rand::random::<[u8; 4]>();
            crate::mask::apply_mask(&mut payload, key, 0);
            (payload.freeze(), Some(key))
        } else {
            (frame.into_payload(), None)
        };
        put_header(&mut self.write_buf, first_byte, payload.len(), mask);
        self.queue_uncopied(payload);
        Ok(())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> FrameIo<S> {
    /// The next frame; `None` at the end of the input with nothing buffered.
    ///
    /// Before it reads, it writes out queued uncopied payloads with `write_waker`
    /// (an echo's payloads share the read buffer: written, they let the next read
    /// reuse the same memory instead of a new allocation). A write that cannot
    /// finish now is left to the sending side.
    ///
    /// # Errors
    ///
    /// What the codec refuses, the transport's errors, and `UnexpectedEof` if the
    /// input ends inside a frame.
    pub(super) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
        write_waker: &Waker,
    ) -> Poll<Option<Result<Frame, Error>>> {
        loop {
            if self.readable {
                if let Some(frame) = self.codec.decode_frame(&mut self.read_buf)? {
                    return Poll::Ready(Some(Ok(frame)));
                }
                self.readable = false;
                if !self.eof {
                    if !self.payloads.is_empty() {
                        // A full socket is for the sending side to meet on its own
                        // flush, and so is an error (kept for it, or for the next
                        // read); this write only gets ahead of it.
                        if let Poll::Ready(Err(error)) =
                            self.poll_write_out(&mut Context::from_waker(write_waker))
                        {
                            self.write_error = Some(error);
                        }
                    }
                    rewind_if_empty(&mut self.read_buf);
                    self.codec.reserve_for_read(&mut self.read_buf);
                }
            } else if self.read_buf.capacity() == 0 && !self.eof {
                // Lent back while waiting, never used, or freed while idle: borrow
                // the thread's spare buffer, or start small. The first frames that
                // arrive make the codec reserve its read space for the reads after.
                self.read_buf = take_spare(&SPARE_READ_BUF);
                if self.read_buf.capacity() == 0 {
                    self.read_buf.reserve(FIRST_READ);
                }
            }
            if self.eof {
                if self.read_buf.is_empty() {
                    return Poll::Ready(None);
                }
                let cut = io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed inside a frame");
                return Poll::Ready(Some(Err(cut.into())));
            }
            let read = match self.poll_read_buf(cx) {
                // The end of input after a failed write: the write's error says why.
                Poll::Ready(Ok(0) | Err(_)) if self.write_error.is_some() => {
                    return Poll::Ready(Some(Err(self.write_error.take().expect("checked").into())));
                }
                Poll::Ready(read) => read?,
                Poll::Pending => {
                    if self.read_buf.is_empty() {
                        // Nothing to keep while waiting: another connection on this
                        // thread may read into the same memory meanwhile.
                        lend_back(&mut self.read_buf, &SPARE_READ_BUF);
                    }
                    return Poll::Pending;
                }
            };
            self.eof = read == 0;
            self.readable = true;
            if let Some(header) = self.codec.pending_mut() {
                // Unmasked now, while the bytes the kernel just copied are still
                // in cache, instead of in one pass over the whole payload at the end.
                header.unmask_arrived(&mut self.read_buf);
            }
        }
    }

    /// The next frame if it is already buffered and a whole message in the
    /// commonest form (see [`WsCodec::decode_whole_message`]); otherwise `None`,
    /// with nothing consumed, for [`FrameIo::poll_frame`] to handle.
    #[inline]
    pub(super) fn next_whole_message(&mut self) -> Option<(OpCode, Bytes)> {
        if !self.readable {
            return None;
        }
        self.codec.decode_whole_message(&mut self.read_buf)
    }

    /// Reads into the read buffer, no more than the codec's read limit.
    fn poll_read_buf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let io = Pin::new(&mut self.io);
        let Some(limit) = self.codec.read_limit(&self.read_buf) else {
            return tokio_util::io::poll_read_buf(io, cx, &mut self.read_buf);
        };
        if self.codec.frame_outgrows_buffer() {
            let room = self.read_buf.capacity() - self.read_buf.len();
            ready!(poll_charge_budget(cx, limit.min(room)));
        }
        let read = ready!(tokio_util::io::poll_read_buf(
            io,
            cx,
            &mut (&mut self.read_buf).limit(limit)
        ));
        if let Ok(read) = read {
            self.codec.note_large_read(limit, read);
        }
        Poll::Ready(read)
    }

    /// Writes the write buffer, and the uncopied payloads between its bytes, to the
    /// transport (without flushing the transport itself).
    pub(super) fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(error) = self.write_error.take() {
            return Poll::Ready(Err(error));
        }
        while !self.payloads.is_empty() {
            let written = ready!(self.poll_write_vectored(cx))?;
            self.consume_written(written);
        }
        while !self.write_buf.is_empty() {
            let written = ready!(Pin::new(&mut self.io).poll_write(cx, &self.write_buf))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.write_buf.advance(written);
        }
        lend_back(&mut self.write_buf, &SPARE_WRITE_BUF);
        Poll::Ready(Ok(()))
    }

    /// One vectored write of the queued payloads and the write buffer bytes
    /// around them, as many as fit in [`MAX_SLICES`] slices.
    fn poll_write_vectored(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let mut count = 0;
        let mut buffered = &self.write_buf[..];
        for next in &self.payloads {
            let (before, rest) = buffered.split_at(next.after_buffered);
            if count + 3 > MAX_SLICES {
                // The rest goes out in the next write; only the bytes before this
                // payload may go out in this one.
                buffered = before;
                break;
            }
            if !before.is_empty() {
                slices[count] = IoSlice::new(before);
                count += 1;
            }
            slices[count] = IoSlice::new(&next.payload);
            count += 1;
            buffered = rest;
        }
        if !buffered.is_empty() {
            slices[count] = IoSlice::new(buffered);
            count += 1;
        }
        let written = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]))?;
        if written == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        Poll::Ready(Ok(written))
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

/// Charges tokio's cooperative budget for a read of up to `bytes`: one unit per
/// [`BUDGET_UNIT`] beyond the first, which the transport's own read counts.
/// `Pending` when the budget is spent: tokio wakes the task again once the other
/// tasks of its thread have had their turn.
///
/// To tokio one read is one operation, whatever its size. A connection
/// streaming 1 MiB frames reads up to 1 MiB at a time, so without this it could
/// keep its thread for 128 MiB before another connection ran. Measured, 16
/// connections × 16 messages of 1 MiB in flight: p99 round trip 418 ms without,
/// 202 ms with (16 alternating rounds), for about 5 % of the throughput in rounds
/// run back to back (BENCHMARKS.md). Outside a tokio runtime, or in
/// `tokio::task::unconstrained`, it charges nothing.
fn poll_charge_budget(cx: &mut Context<'_>, bytes: usize) -> Poll<()> {
    for _ in 1..bytes / BUDGET_UNIT {
        ready!(tokio::task::coop::poll_proceed(cx)).made_progress();
    }
    Poll::Ready(())
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
