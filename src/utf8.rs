//! Incremental UTF-8 validation for text messages that arrive in fragments.
//!
//! RFC 6455 §8.1 lets an endpoint fail a connection as soon as a text message
//! holds an invalid sequence; Autobahn case group 6.4 checks that we do so at the
//! fragment where it appears. A code point split across fragments is valid.

/// Validates a text message fragment by fragment, keeping the (at most 3) bytes of
/// a code point that the last fragment cut off.
#[derive(Debug, Default, Clone)]
pub(crate) struct Utf8Validator {
    partial: [u8; 4],
    partial_len: usize,
}

/// The fragments so far are not a prefix of any valid UTF-8 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidUtf8;

impl Utf8Validator {
    /// Validates the next fragment. Fails as soon as the bytes seen so far cannot
    /// start valid UTF-8, even if the offending code point is not complete yet.
    pub(crate) fn feed(&mut self, mut chunk: &[u8]) -> Result<(), InvalidUtf8> {
        if self.partial_len > 0 {
            let width = char_width(self.partial[0]);
            let take = (width - self.partial_len).min(chunk.len());
            self.partial[self.partial_len..self.partial_len + take].copy_from_slice(&chunk[..take]);
            self.partial_len += take;
            chunk = &chunk[take..];
            let code_point = &self.partial[..self.partial_len];
            if self.partial_len < width {
                // Still cut off: it must at least be a valid prefix.
                return match simdutf8::compat::from_utf8(code_point) {
                    Err(err) if err.error_len().is_none() => Ok(()),
                    _ => Err(InvalidUtf8),
                };
            }
            simdutf8::basic::from_utf8(code_point).map_err(|_| InvalidUtf8)?;
            self.partial_len = 0;
        }
        if simdutf8::basic::from_utf8(chunk).is_ok() {
            return Ok(());
        }
        // The slow path runs only for invalid or cut-off input.
        match simdutf8::compat::from_utf8(chunk) {
            Ok(_) => Ok(()),
            Err(err) if err.error_len().is_none() => {
                let tail = &chunk[err.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len();
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// The bytes of a code point cut off at the end of what was fed (0 to 3).
    pub(crate) fn pending_len(&self) -> usize {
        self.partial_len
    }

    /// Ends the message: fails if it stopped inside a code point. The validator is
    /// then ready for the next message; after a failure it stays failed.
    pub(crate) fn finish(&mut self) -> Result<(), InvalidUtf8> {
        if self.partial_len == 0 {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }
}

/// The length of the UTF-8 sequence a lead byte starts (1 for an invalid lead, so
/// the validator reports it at once).
fn char_width(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate_in_pieces(bytes: &[u8], split: &[usize]) -> Result<(), InvalidUtf8> {
        let mut validator = Utf8Validator::default();
        let mut start = 0;
        for &end in split.iter().chain(std::iter::once(&bytes.len())) {
            validator.feed(&bytes[start..end])?;
            start = end;
        }
        validator.finish()
    }

    #[test]
    fn code_point_split_at_every_byte_is_valid() {
        let text = "κόσμε€𝄞a".as_bytes();
        for i in 0..=text.len() {
            for j in i..=text.len() {
                assert_eq!(validate_in_pieces(text, &[i, j]), Ok(()), "split {i} {j}");
            }
        }
    }

    #[test]
    fn invalid_sequence_fails_in_the_fragment_where_it_appears() {
        let mut validator = Utf8Validator::default();
        assert_eq!(validator.feed("κόσμε".as_bytes()), Ok(()));
        // 0xED 0xA0 starts a surrogate: invalid before the code point completes.
        assert_eq!(validator.feed(&[0xED, 0xA0]), Err(InvalidUtf8));
        let mut validator = Utf8Validator::default();
        assert_eq!(validator.feed(&[0xF4]), Ok(()));
        assert_eq!(validator.feed(&[0x90]), Err(InvalidUtf8));
        let mut validator = Utf8Validator::default();
        assert_eq!(validator.feed(&[b'a', 0xFF, b'b']), Err(InvalidUtf8));
    }

    #[test]
    fn message_ending_inside_a_code_point_is_invalid() {
        let mut validator = Utf8Validator::default();
        assert_eq!(validator.feed(&[0xE2, 0x82]), Ok(()));
        assert_eq!(validator.finish(), Err(InvalidUtf8));
        // A failed message stays failed.
        assert_eq!(validator.finish(), Err(InvalidUtf8));
        let mut validator = Utf8Validator::default();
        assert_eq!(validator.feed(b"ok"), Ok(()));
        assert_eq!(validator.finish(), Ok(()));
        assert_eq!(validator.feed(b"next"), Ok(()));
        assert_eq!(validator.finish(), Ok(()));
    }

    #[test]
    fn agrees_with_std_on_every_split_of_mixed_input() {
        let samples: [&[u8]; 5] = [
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
            b"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf",
            b"\xf4\x90\x80\x80",
            b"\xc0\xaf",
            b"\xe0\x80\xaf",
        ];
        for sample in samples {
            let expected = std::str::from_utf8(sample).is_ok();
            for i in 0..=sample.len() {
                assert_eq!(
                    validate_in_pieces(sample, &[i]).is_ok(),
                    expected,
                    "{sample:?} at {i}"
                );
            }
        }
    }
}
