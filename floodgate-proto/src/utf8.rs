//! Incremental UTF-8 validation for text messages that arrive in fragments.
//!
//! A fragment boundary may split a code point, so each fragment is checked up
//! to its last complete code point and the incomplete tail (at most 3 bytes)
//! is carried to the next fragment. An invalid byte fails at the fragment
//! that carries it, not when the message ends (Autobahn 6.4.x checks that a
//! client fails fast). The validation itself is `simdutf8`'s, which is
//! several times faster than `std::str::from_utf8` on long text.

use crate::error::ProtocolError;

/// Validates a text message one fragment at a time.
///
/// ```
/// use floodgate_proto::utf8::Utf8Validator;
/// let euro = "€".as_bytes(); // 3 bytes
/// let mut v = Utf8Validator::default();
/// v.feed(&euro[..1]).unwrap();   // incomplete, not invalid
/// v.feed(&euro[1..]).unwrap();
/// v.finish().unwrap();
/// assert!(Utf8Validator::default().feed(&[0xff]).is_err());
/// ```
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: usize,
}

impl Utf8Validator {
    /// Checks the next fragment.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::InvalidUtf8`] as soon as a byte sequence can no
    /// longer become valid UTF-8.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), ProtocolError> {
        if self.pending_len > 0 {
            // Complete the code point split by the previous boundary, one
            // byte at a time: at most 3 iterations.
            while self.pending_len > 0 {
                let Some((&byte, rest)) = data.split_first() else {
                    return Ok(());
                };
                self.pending[self.pending_len] = byte;
                self.pending_len += 1;
                data = rest;
                match simdutf8::compat::from_utf8(&self.pending[..self.pending_len]) {
                    Ok(_) => self.pending_len = 0,
                    Err(e) if e.error_len().is_some() => return Err(ProtocolError::InvalidUtf8),
                    Err(_) => {}
                }
            }
        }
        if simdutf8::basic::from_utf8(data).is_ok() {
            return Ok(());
        }
        match simdutf8::compat::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = &data[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len();
                Ok(())
            }
            Err(_) => Err(ProtocolError::InvalidUtf8),
        }
    }

    /// Checks that the message did not end inside a code point.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::InvalidUtf8`] if it did.
    pub fn finish(&self) -> Result<(), ProtocolError> {
        if self.pending_len == 0 {
            Ok(())
        } else {
            Err(ProtocolError::InvalidUtf8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn validate_in_pieces(data: &[u8], cuts: &[usize]) -> Result<(), ProtocolError> {
        let mut v = Utf8Validator::default();
        let mut start = 0;
        for &cut in cuts {
            let cut = cut.clamp(start, data.len());
            v.feed(&data[start..cut])?;
            start = cut;
        }
        v.feed(&data[start..])?;
        v.finish()
    }

    #[test]
    fn a_code_point_split_across_every_boundary_is_valid() {
        let text = "κόσμε 𝄞 €".as_bytes();
        for a in 0..text.len() {
            for b in a..text.len() {
                assert!(validate_in_pieces(text, &[a, b]).is_ok(), "cuts {a} {b}");
            }
        }
    }

    #[test]
    fn an_invalid_fragment_fails_before_the_message_ends() {
        let mut v = Utf8Validator::default();
        v.feed("κόσμε".as_bytes()).unwrap();
        // 0xED 0xA0 0x80 is a UTF-16 surrogate: invalid as soon as 0xA0 arrives.
        assert_eq!(v.feed(&[0xed, 0xa0]), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn an_invalid_continuation_after_a_split_fails_at_once() {
        let mut v = Utf8Validator::default();
        v.feed(&[0xf4]).unwrap();
        assert_eq!(v.feed(&[0x90]), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn a_message_ending_inside_a_code_point_is_invalid() {
        let mut v = Utf8Validator::default();
        v.feed(&[b'a', 0xe2, 0x82]).unwrap();
        assert_eq!(v.finish(), Err(ProtocolError::InvalidUtf8));
    }

    proptest! {
        #[test]
        fn piecewise_validation_agrees_with_std(data in proptest::collection::vec(any::<u8>(), 0..64), cuts in proptest::collection::vec(0usize..64, 0..4)) {
            let mut cuts = cuts;
            cuts.sort();
            let expected = std::str::from_utf8(&data).is_ok();
            prop_assert_eq!(validate_in_pieces(&data, &cuts).is_ok(), expected);
        }

        #[test]
        fn piecewise_validation_accepts_any_string(s in "\\PC{0,40}", cuts in proptest::collection::vec(0usize..200, 0..5)) {
            let mut cuts = cuts;
            cuts.sort();
            prop_assert!(validate_in_pieces(s.as_bytes(), &cuts).is_ok());
        }
    }
}
