//! Masking of client frame payloads (RFC 6455 §5.3).
//!
//! Every byte a client sends in a frame payload is XORed with a 4-byte key.
//! Done byte by byte this is the most expensive step of sending large
//! messages, so the loop here works on 8-byte words (which the compiler turns
//! into SIMD where the target has it) and only the tail is byte-wise.

/// XORs `buf` in place with the masking `key`, as if `buf` started at
/// byte 0 of the payload.
///
/// Masking is its own inverse: applying it twice gives the input back.
///
/// ```
/// use floodgate_proto::mask::apply_mask;
/// let key = [1, 2, 3, 4];
/// let mut data = *b"hello, world";
/// apply_mask(&mut data, key);
/// assert_ne!(&data, b"hello, world");
/// apply_mask(&mut data, key);
/// assert_eq!(&data, b"hello, world");
/// ```
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4]) {
    // A word-sized key: the 4-byte key repeated. Chunks start at multiples of
    // 8, which are multiples of 4, so every chunk lines up with key byte 0.
    let key_word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut words = buf.chunks_exact_mut(8);
    for word in &mut words {
        let value = u64::from_ne_bytes(word.try_into().expect("chunk of 8")) ^ key_word;
        word.copy_from_slice(&value.to_ne_bytes());
    }
    for (i, byte) in words.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i & 3];
    }
}

/// The byte-at-a-time definition, kept as the reference the fast version is
/// tested against.
#[cfg(test)]
pub(crate) fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4]) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[i & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn masking_matches_the_rfc_example() {
        // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
        let mut data = *b"Hello";
        apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    proptest! {
        #[test]
        fn word_masking_equals_byte_masking(data in proptest::collection::vec(any::<u8>(), 0..300), key in any::<[u8; 4]>()) {
            let mut fast = data.clone();
            let mut slow = data.clone();
            apply_mask(&mut fast, key);
            apply_mask_bytewise(&mut slow, key);
            prop_assert_eq!(fast, slow);
        }
    }
}
