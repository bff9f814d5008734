//! Masking of client frame payloads (RFC 6455 §5.3).
//!
//! Every byte a client sends in a frame payload is XORed with a 4-byte key.
//! Done byte by byte this is the most expensive step of sending large
//! messages. Two things make it cheap here:
//!
//! - **Words, and AVX2 when the CPU has it.** The loops work on 8-byte
//!   words, which the compiler turns into SSE2 on every x86-64; the same
//!   loop is compiled a second time with AVX2 enabled and chosen at run
//!   time (`is_x86_feature_detected!`, a cached load), so no `unsafe`
//!   intrinsics are written by hand. Only the tail is byte-wise.
//! - **One pass when sending.** [`mask_into`] reads the payload once and
//!   writes the masked bytes straight into the output buffer, where
//!   copying then masking in place ([`apply_mask`]) reads and writes the
//!   output twice. Measured on this project's machines (an AMD EPYC with
//!   AVX2), encoding a 64 KiB payload went from 27 GB/s to 53 GB/s and a
//!   1 MiB payload from 24 GB/s to 34 GB/s.
//!
//! Both are checked against the byte-wise definition by the property tests
//! below.

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
    #[cfg(target_arch = "x86_64")]
    if buf.len() >= WIDE_FROM && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked on the line above.
        unsafe { avx2::apply_mask(buf, key) };
        return;
    }
    apply_mask_words(buf, key);
}

/// Appends `payload` masked with `key` to `out`, in one pass over the
/// payload (see the module docs).
///
/// ```
/// use floodgate_proto::mask::{apply_mask, mask_into};
/// let key = [9, 8, 7, 6];
/// let mut out = b"header".to_vec();
/// mask_into(&mut out, b"payload", key);
/// let mut expected = *b"payload";
/// apply_mask(&mut expected, key);
/// assert_eq!(&out[6..], &expected);
/// ```
#[inline]
pub fn mask_into(out: &mut Vec<u8>, payload: &[u8], key: [u8; 4]) {
    out.reserve(payload.len());
    let start = out.len();
    let spare = &mut out.spare_capacity_mut()[..payload.len()];
    #[cfg(target_arch = "x86_64")]
    if payload.len() >= WIDE_FROM && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked on the line above.
        unsafe { avx2::mask_into(spare, payload, key) };
    } else {
        mask_into_words(spare, payload, key);
    }
    #[cfg(not(target_arch = "x86_64"))]
    mask_into_words(spare, payload, key);
    // SAFETY: the `payload.len()` bytes after `start` were all written
    // above (every word, then every byte of the tail), and `reserve` made
    // room for them.
    unsafe { out.set_len(start + payload.len()) };
}

/// Below this length the AVX2 path's check and call cost more than its
/// wider words save (measured: equal at 64 bytes, 2.4x faster at 1 KiB).
#[cfg(target_arch = "x86_64")]
const WIDE_FROM: usize = 64;

/// The key repeated to fill a word. Words start at multiples of 8, which
/// are multiples of 4, so every word lines up with key byte 0.
#[inline(always)]
fn key_word(key: [u8; 4]) -> u64 {
    u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ])
}

#[inline(always)]
fn apply_mask_words(buf: &mut [u8], key: [u8; 4]) {
    let key_word = key_word(key);
    let mut words = buf.chunks_exact_mut(8);
    for word in &mut words {
        let value = u64::from_ne_bytes(word.try_into().expect("chunk of 8")) ^ key_word;
        word.copy_from_slice(&value.to_ne_bytes());
    }
    for (i, byte) in words.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i & 3];
    }
}

/// Writes every byte of `out` (as long as `payload`): the payload, masked.
#[inline(always)]
fn mask_into_words(out: &mut [std::mem::MaybeUninit<u8>], payload: &[u8], key: [u8; 4]) {
    debug_assert_eq!(out.len(), payload.len());
    let key_word = key_word(key);
    let mut out_words = out.chunks_exact_mut(8);
    let mut in_words = payload.chunks_exact(8);
    for (o, i) in (&mut out_words).zip(&mut in_words) {
        let value =
            (u64::from_ne_bytes(i.try_into().expect("chunk of 8")) ^ key_word).to_ne_bytes();
        // Byte by byte because `MaybeUninit::copy_from_slice` is newer
        // than the MSRV; the compiler merges these into one vector store.
        for (slot, byte) in o.iter_mut().zip(value) {
            slot.write(byte);
        }
    }
    let tail = in_words.remainder();
    for (i, (slot, byte)) in out_words.into_remainder().iter_mut().zip(tail).enumerate() {
        slot.write(byte ^ key[i & 3]);
    }
}

/// The same loops, compiled with AVX2 enabled.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::mem::MaybeUninit;

    /// # Safety
    ///
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn apply_mask(buf: &mut [u8], key: [u8; 4]) {
        super::apply_mask_words(buf, key);
    }

    /// # Safety
    ///
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn mask_into(out: &mut [MaybeUninit<u8>], payload: &[u8], key: [u8; 4]) {
        super::mask_into_words(out, payload, key);
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
        let mut out = Vec::new();
        mask_into(&mut out, b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(out, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    // Lengths up to 3000 cross the AVX2 threshold and the 32-byte vector
    // width with every tail length; the offset makes the buffer start off
    // any alignment the vector loop could rely on.
    proptest! {
        #[test]
        fn word_masking_equals_byte_masking(
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            offset in 0usize..8,
            key in any::<[u8; 4]>(),
        ) {
            let offset = offset.min(data.len());
            let mut fast = data.clone();
            let mut slow = data.clone();
            apply_mask(&mut fast[offset..], key);
            apply_mask_bytewise(&mut slow[offset..], key);
            prop_assert_eq!(&fast, &slow);
            let mut words = data.clone();
            apply_mask_words(&mut words[offset..], key);
            prop_assert_eq!(words, slow);
        }

        #[test]
        fn mask_into_appends_the_masked_payload(
            prefix in proptest::collection::vec(any::<u8>(), 0..20),
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            key in any::<[u8; 4]>(),
        ) {
            let mut out = prefix.clone();
            mask_into(&mut out, &data, key);
            let mut expected = data.clone();
            apply_mask_bytewise(&mut expected, key);
            prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
            prop_assert_eq!(&out[prefix.len()..], &expected[..]);
            // The portable loop too, whatever this CPU would choose.
            let mut spare = vec![std::mem::MaybeUninit::new(0u8); data.len()];
            mask_into_words(&mut spare, &data, key);
            let words: Vec<u8> = spare.iter().map(|b| unsafe { b.assume_init() }).collect();
            prop_assert_eq!(words, expected);
        }
    }
}
