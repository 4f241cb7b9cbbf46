//! The permessage-deflate data path (RFC 7692 §7.2): one compressor and one
//! decompressor per connection, their state reused across messages.

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::DeflateConfig;
use super::negotiation::DeflateParams;
use crate::codec::Role;
use crate::error::{Error, ProtocolError};

/// The empty stored block a sync flush ends with; stripped on send, appended on
/// receive (RFC 7692 §7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// How much output space to add at a time while inflating: the limit check runs
/// at least this often.
const INFLATE_STEP: usize = 32 * 1024;

/// Compresses outgoing messages.
#[derive(Debug)]
pub(crate) struct Deflater {
    compress: Compress,
    no_context_takeover: bool,
    min_size: usize,
}

/// Decompresses incoming messages.
#[derive(Debug)]
pub(crate) struct Inflater {
    decompress: Decompress,
    no_context_takeover: bool,
}

/// The compressor and decompressor for `role` under the agreed `params`.
pub(crate) fn for_role(params: &DeflateParams, role: Role, config: &DeflateConfig) -> (Deflater, Inflater) {
    let (ours, theirs) = match role {
        Role::Server => (
            (params.server_no_context_takeover, params.server_max_window_bits),
            params.client_no_context_takeover,
        ),
        Role::Client => (
            (params.client_no_context_takeover, params.client_max_window_bits),
            params.server_no_context_takeover,
        ),
    };
    // zlib cannot deflate with an 8-bit window; with 9 bits it never reaches back
    // further than 512 - 262 = 250 bytes, so its output fits a 256-byte window.
    let window = ours.1.max(9);
    let deflater = Deflater {
        compress: Compress::new_with_window_bits(Compression::new(config.level), false, window),
        no_context_takeover: ours.0,
        min_size: config.min_size,
    };
    // A 15-bit window inflates anything the peer may send, whatever it agreed to.
    let inflater = Inflater {
        decompress: Decompress::new_with_window_bits(false, 15),
        no_context_takeover: theirs,
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
        if payload.is_empty() {
            // zlib answers a sync flush without new input with nothing at all, and an
            // empty payload would leave the peer's inflater inside a block header. A
            // lone 0x00 starts an empty stored block the peer's appended tail ends.
            if last && self.no_context_takeover {
                self.compress.reset();
            }
            return Ok(if last {
                Bytes::from_static(&[0x00])
            } else {
                Bytes::new()
            });
        }
        let mut out = Vec::with_capacity(payload.len() / 2 + 64);
        let start_in = self.compress.total_in();
        loop {
            let consumed = (self.compress.total_in() - start_in) as usize;
            self.compress
                .compress_vec(&payload[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|err| Error::Io(std::io::Error::other(err)))?;
            let all_consumed = (self.compress.total_in() - start_in) as usize == payload.len();
            // A sync flush is complete once it stops filling the output.
            if all_consumed && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        debug_assert!(out.ends_with(&TAIL));
        if last {
            out.truncate(out.len().saturating_sub(TAIL.len()));
            if self.no_context_takeover {
                self.compress.reset();
            }
        }
        Ok(Bytes::from(out))
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
        self.inflate_all(payload, out, max)?;
        if fin {
            self.inflate_all(&TAIL, out, max)?;
            if self.no_context_takeover {
                self.decompress.reset(false);
            }
        }
        Ok(())
    }

    fn inflate_all(&mut self, mut input: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), Error> {
        loop {
            if out.len() == out.capacity() {
                // Room for one byte past the limit shows the limit was crossed.
                let room = max
                    .saturating_add(1)
                    .saturating_sub(out.len())
                    .clamp(1, INFLATE_STEP);
                out.reserve_exact(room.max(input.len().min(INFLATE_STEP)));
            }
            let (before_in, before_out) = (self.decompress.total_in(), out.len());
            let status = self
                .decompress
                .decompress_vec(input, out, FlushDecompress::Sync)
                .map_err(|_| ProtocolError::InvalidCompressedData)?;
            if out.len() > max {
                return Err(Error::MessageTooLarge { len: out.len(), max });
            }
            let consumed = (self.decompress.total_in() - before_in) as usize;
            input = &input[consumed..];
            if status == Status::StreamEnd {
                // The sender ended the deflate stream with a final block (allowed by
                // RFC 7692 §7.2.1); what follows starts a new one.
                self.decompress.reset(false);
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

#[cfg(test)]
mod tests {
    use super::*;

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
