//! Payload masking (RFC 6455 §5.3).
//!
//! A masked payload is XORed with a 4-byte key, byte `i` with `key[i % 4]`.
//! Unmasking is the same operation. [`apply_mask`] works eight bytes at a
//! time on any alignment and length; [`apply_mask_naive`] is the byte-at-a-time
//! reference that the tests (and the benchmarks) compare it against.

/// XORs `buf` with the masking `key` in place, as if `buf` started at byte
/// `offset` of the payload (so a payload can be unmasked in pieces).
///
/// RFC 6455 §5.3: "Octet i of the transformed data ("transformed-octet-i")
/// is the XOR of octet i of the original data ("original-octet-i") with
/// octet at index i modulo 4 of the masking key ("masking-key-octet-j")".
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate(key, offset);
    let word = u32::from_ne_bytes(key);
    let wide = u64::from(word) | (u64::from(word) << 32);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        // `chunks_exact_mut(8)` guarantees the length, so `try_into` cannot
        // fail; the compiler removes the check and vectorises the loop.
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let value = u64::from_ne_bytes(bytes) ^ wide;
        chunk.copy_from_slice(&value.to_ne_bytes());
    }
    // The tail starts at a multiple of 8 past `offset`, so the rotated key
    // still lines up with it.
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i & 3];
    }
}

/// The byte-at-a-time reference for [`apply_mask`]: obviously correct, slow.
pub fn apply_mask_naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(offset + i) & 3];
    }
}

/// The key as seen from byte `offset` of the payload.
#[inline]
fn rotate(key: [u8; 4], offset: usize) -> [u8; 4] {
    let s = offset & 3;
    [key[s], key[(s + 1) & 3], key[(s + 2) & 3], key[(s + 3) & 3]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fast_mask_equals_naive_at_every_length_and_offset() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..data.len() {
            for offset in 0..8 {
                // also vary the start address, so every alignment is covered
                for start in 0..8.min(data.len() - len + 1) {
                    let mut fast = data[start..start + len].to_vec();
                    let mut slow = fast.clone();
                    apply_mask(&mut fast, key, offset);
                    apply_mask_naive(&mut slow, key, offset);
                    assert_eq!(fast, slow, "len {len} offset {offset} start {start}");
                }
            }
        }
    }

    #[test]
    fn masking_twice_restores_the_payload() {
        let mut data = b"Hello".to_vec();
        apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
        // RFC 6455 §5.7: masked "Hello" with key 37 fa 21 3d
        assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
        apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(data, b"Hello");
    }

    #[test]
    fn masking_in_pieces_equals_masking_at_once() {
        let key = [1, 2, 3, 250];
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        for split in 0..data.len() {
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(split);
            apply_mask(a, key, 0);
            apply_mask(b, key, split);
            assert_eq!(pieces, whole, "split at {split}");
        }
    }

    proptest! {
        #[test]
        fn fast_mask_equals_naive_on_random_input(
            data in proptest::collection::vec(any::<u8>(), 0..2048),
            key in any::<[u8; 4]>(),
            offset in 0usize..16,
        ) {
            let mut fast = data.clone();
            let mut slow = data;
            apply_mask(&mut fast, key, offset);
            apply_mask_naive(&mut slow, key, offset);
            prop_assert_eq!(fast, slow);
        }
    }
}
