//! The permessage-deflate data path (RFC 7692 §7.2): a compressor and a
//! decompressor per connection, created when the first compressed message needs
//! them. Without context takeover they go back to the thread's pool (`pool`) after
//! every message, so such a connection holds no zlib state between messages. With
//! it they keep their history across messages, and a connection that has gone
//! quiet can [`hibernate`](Deflater::hibernate): the contexts go back to the pool
//! and only the history stays, to prime the contexts of the next message.

use bytes::Bytes;
use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};

use super::DeflateConfig;
use super::held::Held;
use super::history::History;
use super::negotiation::DeflateParams;
use super::pool::{self, CompressSettings};
use crate::codec::Role;
use crate::error::{Error, ProtocolError};

/// The empty stored block a sync flush ends with; stripped on send, appended on
/// receive (RFC 7692 §7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// How much output space to add at a time while inflating: the limit check runs
/// at least this often.
const INFLATE_STEP: usize = 32 * 1024;

/// The most history a woken compressor is primed with: 4 KiB. The peer keeps its
/// whole window, so priming with less only means fewer matches to find; measured
/// on 1 KiB JSON messages (level 6), a 4 KiB window compresses as well as 32 KiB,
/// and priming with it costs about 10 µs instead of 50.
const PRIMED_HISTORY_BITS: u8 = 12;

/// Compresses outgoing messages.
#[derive(Debug)]
pub(crate) struct Deflater {
    compress: Held<Compress>,
    settings: CompressSettings,
    parts_compressed: u64,
    min_size: usize,
}

/// Decompresses incoming messages.
#[derive(Debug)]
pub(crate) struct Inflater {
    decompress: Held<Decompress>,
    window_bits: u8,
}

/// The compressor and decompressor for `role` under the agreed `params`. Neither
/// holds a zlib context yet.
pub(crate) fn for_role(params: &DeflateParams, role: Role, config: &DeflateConfig) -> (Deflater, Inflater) {
    let (ours, theirs) = match role {
        Role::Server => (
            (params.server_no_context_takeover, params.server_max_window_bits),
            (params.client_no_context_takeover, params.client_max_window_bits),
        ),
        Role::Client => (
            (params.client_no_context_takeover, params.client_max_window_bits),
            (params.server_no_context_takeover, params.server_max_window_bits),
        ),
    };
    // zlib cannot deflate with an 8-bit window; with 9 bits it never reaches back
    // further than 512 - 262 = 250 bytes, so its output fits a 256-byte window.
    let settings = CompressSettings {
        level: config.level,
        window_bits: ours.1.max(9),
    };
    let deflater = Deflater {
        compress: Held::new((!ours.0).then(|| History::new(settings.window_bits.min(PRIMED_HISTORY_BITS)))),
        settings,
        parts_compressed: 0,
        min_size: config.min_size,
    };
    // The peer's compressor keeps to the window it agreed to (RFC 7692 §7.1.2), so
    // the decompressor's window need be no larger; zlib's raw inflate takes 9 to 15.
    let window_bits = theirs.1.clamp(9, 15);
    let inflater = Inflater {
        decompress: Held::new((!theirs.0).then(|| History::new(window_bits))),
        window_bits,
    };
    (deflater, inflater)
}

impl Deflater {
    /// Whether a message of `len` bytes is worth compressing.
    pub(crate) fn wants(&self, len: usize) -> bool {
        len >= self.min_size
    }

    /// Compresses one whole message; the result lacks the trailing `00 00 ff ff`.
    pub(crate) fn compress(&mut self, payload: &[u8]) -> Result<Bytes, Error> {
        self.compress_part(payload, true)
    }

    /// Compresses the next part of a message sent in fragments. Every part ends
    /// with a sync flush, so each fragment can go out at once; the last part lacks
    /// the trailing `00 00 ff ff` (RFC 7692 §7.2.1) and ends the message.
    pub(crate) fn compress_part(&mut self, payload: &[u8], last: bool) -> Result<Bytes, Error> {
        self.compress.in_message = !last;
        self.parts_compressed += 1;
        if payload.is_empty() {
            // zlib answers a sync flush without new input with nothing at all, and an
            // empty payload would leave the peer's inflater inside a block header. A
            // lone 0x00 starts an empty stored block the peer's appended tail ends.
            if last {
                self.end_message();
            }
            return Ok(if last {
                Bytes::from_static(&[0x00])
            } else {
                Bytes::new()
            });
        }
        let settings = self.settings;
        let (compress, history) = self.compress.get_or_wake(
            || pool::take_compressor(settings),
            |compress, history| {
                compress
                    .set_dictionary(history)
                    .map(drop)
                    .map_err(|err| Error::Io(std::io::Error::other(err)))
            },
        )?;
        let mut out = sync_flush(compress, payload)?;
        if let Some(history) = history {
            history.record(payload);
        }
        if last {
            out.truncate(out.len().saturating_sub(TAIL.len()));
            self.end_message();
        }
        Ok(Bytes::from(out))
    }

    /// The settings this side compresses each message afresh with, if it has no
    /// context takeover: then a message's compressed form depends only on them
    /// and the payload, and one compression can serve every such connection.
    pub(crate) fn fresh_compression(&self) -> Option<FreshCompression> {
        (!self.compress.keeps_history()).then_some(FreshCompression(self.settings))
    }

    fn end_message(&mut self) {
        let settings = self.settings;
        self.compress
            .end_message(|compress| pool::give_back_compressor(settings, compress));
    }

    /// Gives the zlib context back to the thread, keeping only the history the
    /// peer may refer back to; the next message primes a new context with it.
    /// Does nothing in the middle of a message. Returns whether it let go of a
    /// context.
    pub(crate) fn hibernate(&mut self) -> bool {
        let settings = self.settings;
        self.compress
            .hibernate(|compress| pool::give_back_compressor(settings, compress))
    }

    /// Whether a zlib context is held (between messages only with context takeover).
    pub(crate) fn holds_context(&self) -> bool {
        self.compress.context.is_some()
    }

    /// How many message parts were compressed so far: activity, for hibernation.
    pub(crate) fn parts_compressed(&self) -> u64 {
        self.parts_compressed
    }
}

/// The settings of a compressor that starts every message afresh (no context
/// takeover on its side): what a message compressed for one such connection
/// shares with every other that has the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FreshCompression(CompressSettings);

impl FreshCompression {
    /// Compresses one whole message as a connection with these settings would,
    /// with a reset context from the thread's pool: without the trailing
    /// `00 00 ff ff`, and an empty message as a lone `00` (see
    /// [`Deflater::compress_part`]).
    pub(crate) fn compress(self, payload: &[u8]) -> Result<Bytes, Error> {
        if payload.is_empty() {
            return Ok(Bytes::from_static(&[0x00]));
        }
        let mut compress = pool::take_compressor(self.0);
        let compressed = sync_flush(&mut compress, payload);
        pool::give_back_compressor(self.0, compress);
        let mut out = compressed?;
        out.truncate(out.len() - TAIL.len());
        Ok(Bytes::from(out))
    }
}

/// Deflates all of `payload` and ends with a sync flush, whose `00 00 ff ff`
/// the caller strips at the end of a message.
fn sync_flush(compress: &mut Compress, payload: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(payload.len() / 2 + 64);
    let start_in = compress.total_in();
    loop {
        let consumed = (compress.total_in() - start_in) as usize;
        compress
            .compress_vec(&payload[consumed..], &mut out, FlushCompress::Sync)
            .map_err(|err| Error::Io(std::io::Error::other(err)))?;
        let all_consumed = (compress.total_in() - start_in) as usize == payload.len();
        // A sync flush is complete once it stops filling the output.
        if all_consumed && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    debug_assert!(out.ends_with(&TAIL));
    Ok(out)
}

impl Drop for Deflater {
    fn drop(&mut self) {
        if let Some(compress) = self.compress.context.take() {
            pool::give_back_compressor(self.settings, compress);
        }
    }
}

impl Inflater {
    /// Inflates one fragment of a compressed message into `out`, appending the
    /// tail after the final one. Fails as soon as `out` would pass `max` bytes, so
    /// a small bomb never inflates past the limit.
    pub(crate) fn inflate(
        &mut self,
        payload: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), Error> {
        self.decompress.in_message = !fin;
        let window_bits = self.window_bits;
        let (decompress, mut history) = self.decompress.get_or_wake(
            || pool::take_decompressor(window_bits),
            |decompress, history| {
                decompress
                    .set_dictionary(history)
                    .map(drop)
                    .map_err(|_| ProtocolError::InvalidCompressedData.into())
            },
        )?;
        let inflated =
            Self::inflate_all(decompress, history.as_deref_mut(), payload, out, max).and_then(|()| {
                if fin {
                    Self::inflate_all(decompress, history, &TAIL, out, max)?;
                }
                Ok(())
            });
        if fin || inflated.is_err() {
            self.end_message(inflated.is_err());
        }
        inflated
    }

    /// A message ended (or failed, and the connection with it): without context
    /// takeover the context goes back to the thread. A failed context is dropped:
    /// its state is whatever the bad input left.
    fn end_message(&mut self, failed: bool) {
        if failed {
            self.decompress.in_message = false;
            self.decompress.context = None;
        } else {
            let window_bits = self.window_bits;
            self.decompress
                .end_message(|decompress| pool::give_back_decompressor(window_bits, decompress));
        }
    }

    /// As [`Deflater::hibernate`], for the decompressor.
    pub(crate) fn hibernate(&mut self) -> bool {
        let window_bits = self.window_bits;
        self.decompress
            .hibernate(|decompress| pool::give_back_decompressor(window_bits, decompress))
    }

    /// Whether a zlib context is held (between messages only with context takeover).
    pub(crate) fn holds_context(&self) -> bool {
        self.decompress.context.is_some()
    }

    /// Inflates all of `input` into `out`, recording what it inflates in `history`.
    fn inflate_all(
        decompress: &mut Decompress,
        mut history: Option<&mut History>,
        mut input: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), Error> {
        loop {
            if out.len() == out.capacity() {
                // Room for one byte past the limit shows the limit was crossed.
                let room = max
                    .saturating_add(1)
                    .saturating_sub(out.len())
                    .clamp(1, INFLATE_STEP);
                out.reserve_exact(room.max(input.len().min(INFLATE_STEP)));
            }
            let (before_in, before_out) = (decompress.total_in(), out.len());
            let status = decompress
                .decompress_vec(input, out, FlushDecompress::Sync)
                .map_err(|_| ProtocolError::InvalidCompressedData)?;
            if out.len() > max {
                return Err(Error::MessageTooLarge { len: out.len(), max });
            }
            let consumed = (decompress.total_in() - before_in) as usize;
            input = &input[consumed..];
            if let Some(history) = history.as_deref_mut() {
                history.record(&out[before_out..]);
            }
            if status == Status::StreamEnd {
                // The sender ended the deflate stream with a final block (allowed by
                // RFC 7692 §7.2.1); what follows starts a new one, without history.
                decompress.reset(false);
                if let Some(history) = history.as_deref_mut() {
                    history.clear();
                }
                continue;
            }
            let output_full = out.len() == out.capacity();
            if input.is_empty() && !output_full {
                return Ok(());
            }
            if consumed == 0 && out.len() == before_out && !output_full {
                // No progress with room to spare: the stream ended (a final block)
                // and the rest of the input is garbage.
                return Err(ProtocolError::InvalidCompressedData.into());
            }
        }
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        if let Some(decompress) = self.decompress.context.take() {
            pool::give_back_decompressor(self.window_bits, decompress);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_are_created_by_the_first_message_and_kept_only_with_context_takeover() {
        for no_context_takeover in [false, true] {
            let (mut deflater, mut inflater) = pair(params(15, no_context_takeover));
            assert!(!deflater.holds_context() && !inflater.holds_context());
            for _ in 0..3 {
                let message = json(3000);
                let compressed = deflater.compress(&message).unwrap();
                let mut out = Vec::new();
                inflater.inflate(&compressed, true, &mut out, usize::MAX).unwrap();
                assert_eq!(out, message);
                assert_eq!(deflater.holds_context(), !no_context_takeover);
                assert_eq!(inflater.holds_context(), !no_context_takeover);
            }
        }
    }

    /// Inflates with a plain flate2 decompressor that never hibernates and sees
    /// the whole stream, as a peer does.
    fn reference_inflate(reference: &mut Decompress, payload: &[u8]) -> Vec<u8> {
        let mut input = payload.to_vec();
        input.extend_from_slice(&TAIL);
        let mut out = Vec::with_capacity(1 << 20);
        let before = reference.total_in();
        reference
            .decompress_vec(&input, &mut out, FlushDecompress::Sync)
            .expect("a valid stream");
        assert_eq!((reference.total_in() - before) as usize, input.len());
        out
    }

    #[test]
    fn a_compressor_that_hibernates_keeps_the_stream_valid_and_its_history_useful() {
        for bits in [9, 12, 15] {
            let (mut deflater, _) = pair(params(bits, false));
            let mut reference = Decompress::new_with_window_bits(false, 15);
            for i in 0..40 {
                let message = json(500 + 97 * i);
                if i % 3 == 1 {
                    assert!(deflater.hibernate(), "bits {bits} message {i}");
                    assert!(!deflater.holds_context());
                }
                let compressed = deflater.compress(&message).unwrap();
                assert_eq!(
                    reference_inflate(&mut reference, &compressed),
                    message,
                    "bits {bits} message {i}"
                );
            }
            // Primed with its history, a woken compressor still finds a repeat
            // (within 250 bytes, the reach of the smallest window), in a message
            // that earlier ones do not predict.
            let mut seed = 0x2545_f491_u32;
            let message: Vec<u8> = (0..200)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    b'a' + (seed >> 16) as u8 % 26
                })
                .collect();
            let first = deflater.compress(&message).unwrap();
            let mut out = reference_inflate(&mut reference, &first);
            assert!(deflater.hibernate());
            let repeat = deflater.compress(&message).unwrap();
            assert!(
                repeat.len() < first.len() / 4,
                "bits {bits}: {} after {}",
                repeat.len(),
                first.len()
            );
            out.clear();
            assert_eq!(reference_inflate(&mut reference, &repeat), message);
        }
    }

    #[test]
    fn a_decompressor_that_hibernates_inflates_a_stream_that_never_paused() {
        for bits in [9, 12, 15] {
            let (_, mut inflater) = pair(params(bits, false));
            let mut reference =
                Compress::new_with_window_bits(flate2::Compression::new(6), false, bits.max(9));
            let mut out = Vec::new();
            for i in 0..40 {
                let message = json(300 + 131 * i);
                let mut compressed = Vec::with_capacity(message.len() + 64);
                reference
                    .compress_vec(&message, &mut compressed, FlushCompress::Sync)
                    .unwrap();
                assert!(compressed.ends_with(&TAIL));
                compressed.truncate(compressed.len() - TAIL.len());
                if i % 4 == 2 {
                    assert!(inflater.hibernate());
                }
                out.clear();
                inflater.inflate(&compressed, true, &mut out, usize::MAX).unwrap();
                assert_eq!(out, message, "bits {bits} message {i}");
            }
        }
    }

    #[test]
    fn nothing_hibernates_in_the_middle_of_a_message() {
        let (mut deflater, mut inflater) = pair(params(15, false));
        let first = deflater.compress_part(b"part one, ", false).unwrap();
        assert!(!deflater.hibernate());
        let mut out = Vec::new();
        inflater.inflate(&first, false, &mut out, usize::MAX).unwrap();
        assert!(!inflater.hibernate());
        let last = deflater.compress_part(b"part two", true).unwrap();
        inflater.inflate(&last, true, &mut out, usize::MAX).unwrap();
        assert_eq!(out, b"part one, part two");
        assert!(deflater.hibernate() && inflater.hibernate());
        // Nothing held, nothing to let go of.
        assert!(!deflater.hibernate() && !inflater.hibernate());
    }

    #[test]
    fn a_fragmented_message_holds_its_context_until_it_ends() {
        let (mut deflater, mut inflater) = pair(params(15, true));
        let first = deflater.compress_part(b"part one, ", false).unwrap();
        assert!(deflater.holds_context());
        let last = deflater.compress_part(b"part two", true).unwrap();
        assert!(!deflater.holds_context());
        let mut out = Vec::new();
        inflater.inflate(&first, false, &mut out, usize::MAX).unwrap();
        assert!(inflater.holds_context());
        inflater.inflate(&last, true, &mut out, usize::MAX).unwrap();
        assert!(!inflater.holds_context());
        assert_eq!(out, b"part one, part two");
    }

    fn pair(params: DeflateParams) -> (Deflater, Inflater) {
        let config = DeflateConfig::default().min_size(0);
        let (deflater, _) = for_role(&params, Role::Client, &config);
        let (_, inflater) = for_role(&params, Role::Server, &config);
        (deflater, inflater)
    }

    fn params(bits: u8, no_context_takeover: bool) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: no_context_takeover,
            client_no_context_takeover: no_context_takeover,
            server_max_window_bits: bits,
            client_max_window_bits: bits,
        }
    }

    fn json(len: usize) -> Vec<u8> {
        let mut text = Vec::new();
        let mut i = 0;
        while text.len() < len {
            text.extend_from_slice(format!("{{\"id\":{i},\"name\":\"item {i}\",\"ok\":true}},").as_bytes());
            i += 1;
        }
        text.truncate(len);
        text
    }

    #[test]
    fn messages_round_trip_for_every_window_with_and_without_context_takeover() {
        for bits in 8..=15 {
            for no_context_takeover in [false, true] {
                let (mut deflater, mut inflater) = pair(params(bits, no_context_takeover));
                for len in [0, 1, 100, 5000, 70_000] {
                    let message = json(len);
                    let compressed = deflater.compress(&message).unwrap();
                    if len > 1000 {
                        assert!(compressed.len() < message.len() / 2, "bits {bits} len {len}");
                    }
                    let mut out = Vec::new();
                    inflater.inflate(&compressed, true, &mut out, usize::MAX).unwrap();
                    assert_eq!(
                        out, message,
                        "bits {bits} takeover {no_context_takeover} len {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_message_compressed_in_parts_inflates_whole() {
        let message = json(20_000);
        let (mut deflater, mut inflater) = pair(params(15, false));
        let mut out = Vec::new();
        let parts: Vec<&[u8]> = message.chunks(3000).collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let compressed = deflater.compress_part(part, last).unwrap();
            inflater.inflate(&compressed, last, &mut out, usize::MAX).unwrap();
        }
        assert_eq!(out, message);
        // The next message still round-trips: the contexts stayed in step.
        let again = deflater.compress(&message).unwrap();
        out.clear();
        inflater.inflate(&again, true, &mut out, usize::MAX).unwrap();
        assert_eq!(out, message);
    }

    #[test]
    fn context_takeover_makes_repeats_smaller() {
        let message = json(2000);
        let (mut keep, _) = pair(params(15, false));
        let first = keep.compress(&message).unwrap().len();
        let second = keep.compress(&message).unwrap().len();
        assert!(second < first / 4, "{second} vs {first}");
        let (mut reset, _) = pair(params(15, true));
        let first = reset.compress(&message).unwrap().len();
        assert_eq!(reset.compress(&message).unwrap().len(), first);
    }

    #[test]
    fn fragments_inflate_like_the_whole() {
        let message = json(10_000);
        let (mut deflater, mut inflater) = pair(params(15, false));
        let compressed = deflater.compress(&message).unwrap();
        let mut out = Vec::new();
        for (i, piece) in compressed.chunks(7).enumerate() {
            let fin = (i + 1) * 7 >= compressed.len();
            inflater.inflate(piece, fin, &mut out, usize::MAX).unwrap();
        }
        assert_eq!(out, message);
    }

    #[test]
    fn a_bomb_is_refused_at_the_limit_with_bounded_memory() {
        let zeros = vec![0u8; 16 << 20];
        let (mut deflater, mut inflater) = pair(params(15, false));
        let bomb = deflater.compress(&zeros).unwrap();
        assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
        let mut out = Vec::new();
        let err = inflater.inflate(&bomb, true, &mut out, 1 << 20).unwrap_err();
        assert!(matches!(err, Error::MessageTooLarge { max, .. } if max == 1 << 20));
        assert!(
            out.capacity() <= (1 << 20) + INFLATE_STEP,
            "capacity {}",
            out.capacity()
        );
    }

    #[test]
    fn empty_messages_round_trip_under_context_takeover() {
        let (mut deflater, mut inflater) = pair(params(15, false));
        for message in [&b"a"[..], b"", b"", b"b", b""] {
            let compressed = deflater.compress(message).unwrap();
            assert!(!compressed.is_empty());
            let mut out = Vec::new();
            inflater.inflate(&compressed, true, &mut out, usize::MAX).unwrap();
            assert_eq!(out, message);
        }
    }

    #[test]
    fn a_message_ending_in_a_final_block_is_accepted() {
        // RFC 7692 §7.2.3.4: "Hello" compressed with BFINAL set.
        let (_, mut inflater) = pair(params(15, false));
        let mut out = Vec::new();
        inflater
            .inflate(
                &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
                true,
                &mut out,
                1024,
            )
            .unwrap();
        assert_eq!(out, b"Hello");
        out.clear();
        // The next message starts a new stream.
        inflater
            .inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], true, &mut out, 1024)
            .unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let (_, mut inflater) = pair(params(15, false));
        let mut out = Vec::new();
        let result = inflater.inflate(&[0xff, 0xff, 0xff, 0x00, 0x12], true, &mut out, 1 << 20);
        assert!(matches!(
            result,
            Err(Error::Protocol(ProtocolError::InvalidCompressedData))
        ));
    }
}
