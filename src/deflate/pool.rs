//! zlib contexts lent to the thread between the messages that need them.
//!
//! A zlib compressor costs about 300 KiB once zlib has zero-filled its window and
//! hash tables, a decompressor about 40 KiB, whatever the traffic. A connection
//! takes one when a compressed message starts and, when it need not keep the
//! context's history (no context takeover, or the connection is ending), resets it
//! and gives it back here, where the next message on the same thread finds it.
//! Connections served one after another on a thread then share one context of each
//! kind instead of each holding its own.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress};

/// The most spare contexts of one setting a thread keeps.
const MAX_SPARE_PER_SETTING: usize = 2;

/// The most spare contexts of each kind a thread keeps, all settings together:
/// settings rarely differ between the connections of one server.
const MAX_SPARE: usize = 8;

/// A compressor's settings: contexts are only lent to connections that use the
/// same ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompressSettings {
    pub(crate) level: u32,
    pub(crate) window_bits: u8,
}

thread_local! {
    static SPARE_COMPRESSORS: RefCell<Vec<(CompressSettings, Compress)>> = const { RefCell::new(Vec::new()) };
    static SPARE_DECOMPRESSORS: RefCell<Vec<(u8, Decompress)>> = const { RefCell::new(Vec::new()) };
}

/// A reset raw-deflate compressor with `settings`: the thread's spare, or a new one.
pub(crate) fn take_compressor(settings: CompressSettings) -> Compress {
    let spare = SPARE_COMPRESSORS
        .try_with(|spares| take_matching(&mut spares.borrow_mut(), &settings))
        .ok()
        .flatten();
    spare.unwrap_or_else(|| {
        Compress::new_with_window_bits(Compression::new(settings.level), false, settings.window_bits)
    })
}

/// Resets `compress` and keeps it for the next connection on this thread that
/// compresses with `settings` (dropped if the thread already keeps enough:
/// [`MAX_SPARE_PER_SETTING`] of a setting, [`MAX_SPARE`] in all).
pub(crate) fn give_back_compressor(settings: CompressSettings, mut compress: Compress) {
    compress.reset();
    let _ = SPARE_COMPRESSORS.try_with(|spares| keep(&mut spares.borrow_mut(), settings, compress));
}

/// A reset raw-inflate decompressor with a `window_bits` window: the thread's
/// spare, or a new one.
pub(crate) fn take_decompressor(window_bits: u8) -> Decompress {
    let spare = SPARE_DECOMPRESSORS
        .try_with(|spares| take_matching(&mut spares.borrow_mut(), &window_bits))
        .ok()
        .flatten();
    spare.unwrap_or_else(|| Decompress::new_with_window_bits(false, window_bits))
}

/// Resets `decompress` and keeps it for the next connection on this thread.
pub(crate) fn give_back_decompressor(window_bits: u8, mut decompress: Decompress) {
    decompress.reset(false);
    let _ = SPARE_DECOMPRESSORS.try_with(|spares| keep(&mut spares.borrow_mut(), window_bits, decompress));
}

fn take_matching<K: PartialEq, T>(spares: &mut Vec<(K, T)>, key: &K) -> Option<T> {
    let at = spares.iter().position(|(settings, _)| settings == key)?;
    Some(spares.swap_remove(at).1)
}

fn keep<K: PartialEq, T>(spares: &mut Vec<(K, T)>, key: K, context: T) {
    let same = spares.iter().filter(|(settings, _)| *settings == key).count();
    if same < MAX_SPARE_PER_SETTING && spares.len() < MAX_SPARE {
        spares.push((key, context));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::FlushCompress;

    fn settings(window_bits: u8) -> CompressSettings {
        CompressSettings {
            level: 6,
            window_bits,
        }
    }

    #[test]
    fn a_context_given_back_is_lent_again_only_for_the_same_settings() {
        let mut compress = take_compressor(settings(10));
        let mut out = Vec::with_capacity(64);
        compress
            .compress_vec(b"some history", &mut out, FlushCompress::Sync)
            .unwrap();
        give_back_compressor(settings(10), compress);
        // Other settings get a new context; the spare stays.
        let other = take_compressor(settings(11));
        assert_eq!(other.total_in(), 0);
        let again = take_compressor(settings(10));
        // Reset: it carries nothing of the message it compressed before.
        assert_eq!(again.total_in(), 0);
        assert!(SPARE_COMPRESSORS.with(|spares| spares.borrow().is_empty()));
        give_back_compressor(settings(10), again);
        give_back_compressor(settings(11), other);
        assert_eq!(SPARE_COMPRESSORS.with(|spares| spares.borrow().len()), 2);
    }

    #[test]
    fn a_thread_keeps_a_bounded_number_of_spares() {
        for _ in 0..4 {
            give_back_decompressor(15, Decompress::new_with_window_bits(false, 15));
        }
        let spares = || SPARE_DECOMPRESSORS.with(|spares| spares.borrow().len());
        assert_eq!(spares(), MAX_SPARE_PER_SETTING);
        for bits in 9..=15 {
            for _ in 0..2 {
                give_back_decompressor(bits, Decompress::new_with_window_bits(false, bits));
            }
        }
        assert_eq!(spares(), MAX_SPARE);
    }
}
