//! The bytes a context-takeover stream may still refer back to.
//!
//! Under context takeover a deflate back-reference may reach into earlier messages,
//! as far as the window. Between messages that history is all the protocol needs
//! (RFC 7692 §7.2.1): zlib's hash chains and buffers can be dropped and rebuilt by
//! priming a fresh context with the history as its preset dictionary.

use std::collections::VecDeque;

/// The last bytes of a stream, at most one window of them.
#[derive(Debug)]
pub(crate) struct History {
    bytes: VecDeque<u8>,
    window: usize,
}

impl History {
    /// An empty history of a `2^window_bits`-byte window.
    pub(crate) fn new(window_bits: u8) -> History {
        History {
            bytes: VecDeque::new(),
            window: 1 << window_bits,
        }
    }

    /// Appends `data`, forgetting what falls out of the window.
    pub(crate) fn record(&mut self, data: &[u8]) {
        let data = &data[data.len().saturating_sub(self.window)..];
        let excess = (self.bytes.len() + data.len()).saturating_sub(self.window);
        self.bytes.drain(..excess);
        self.bytes.extend(data);
    }

    /// Forgets everything (the stream starts over).
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The history as one slice, oldest byte first.
    pub(crate) fn as_slice(&mut self) -> &[u8] {
        self.bytes.make_contiguous()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_window_of_bytes_in_order() {
        let mut history = History::new(4);
        history.record(b"0123456789");
        assert_eq!(history.as_slice(), b"0123456789");
        history.record(b"abcdefghij");
        assert_eq!(history.as_slice(), b"456789abcdefghij");
        history.record(&[b'x'; 40]);
        assert_eq!(history.as_slice(), [b'x'; 16]);
        history.clear();
        assert!(history.is_empty());
    }
}
