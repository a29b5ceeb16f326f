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
///
/// Shaped for the compiler and the cache (measurements in
/// `docs/benchmarks-log.md`): the 8-byte loop vectorises to 32 bytes per
/// iteration with SSE2; from 1 KiB on it starts at a 16-byte boundary,
/// because a payload sits 6, 8 or 14 bytes into its frame and wide loads
/// that straddle cache lines cost up to a third of the throughput, and it
/// runs the same loop compiled for AVX2 where the CPU has it; the key
/// is rotated in a register; and the bytes before the boundary and after
/// the loop take at most four loop-free steps (8, 4, 2, 1 bytes), which is
/// all that small messages need.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    if buf.len() < LONG_FROM {
        // small messages: the loop and its tail, inlined into the caller
        mask_body(buf, rotate(key, offset));
    } else {
        mask_long(buf, key, offset);
    }
}

/// From this length on, the bulk is aligned first and, on a CPU with AVX2,
/// masked 32 bytes per instruction instead of 16. Measured (see
/// `docs/benchmarks-log.md`): aligning costs ~1.5 ns more than it saves at
/// 512 B, is even at 1 KiB and wins from 2 KiB on (-25% at 2 KiB, -33% at
/// 16 KiB, -25% at 64 KiB); AVX2 takes 64 KiB from 51 to 114 GB/s and
/// 1 KiB from 42 to 60 GB/s (`cargo bench --bench protocol -- mask/`).
const LONG_FROM: usize = 1024;

/// [`apply_mask`] from [`LONG_FROM`] bytes on: the head up to a 16-byte
/// boundary, then the aligned body. Kept out of line, so that the small
/// path stays small where it is inlined.
#[inline(never)]
fn mask_long(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // `align_offset` is a safe query of the address; `min` covers its
    // documented right to answer "impossible" (usize::MAX).
    let head = buf.as_ptr().align_offset(16).min(buf.len());
    let (head_bytes, body) = buf.split_at_mut(head);
    mask_short(head_bytes, rotate(key, offset));
    // the body starts `head` bytes further into the payload
    let body_key = rotate(key, offset.wrapping_add(head));
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: `mask_body_avx2` only requires the CPU to support AVX2,
        // which was just detected at run time.
        #[allow(unsafe_code)]
        unsafe {
            mask_body_avx2(body, body_key)
        };
        return;
    }
    mask_body(body, body_key);
}

/// [`mask_body`] compiled for AVX2: the same code, which the compiler
/// vectorises with 256-bit registers when allowed to.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn mask_body_avx2(buf: &mut [u8], key: [u8; 4]) {
    mask_body(buf, key);
}

/// The 8-byte loop, then the tail; `key` is already rotated.
#[inline(always)]
fn mask_body(buf: &mut [u8], key: [u8; 4]) {
    let word = u32::from_ne_bytes(key);
    let wide = u64::from(word) | (u64::from(word) << 32);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        // `chunks_exact_mut(8)` guarantees the length, so `copy_from_slice`
        // cannot fail; the compiler removes the check and vectorises the loop.
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let value = u64::from_ne_bytes(bytes) ^ wide;
        chunk.copy_from_slice(&value.to_ne_bytes());
    }
    // The tail starts at a multiple of 8 past the start, so the key still
    // lines up with it.
    mask_short(chunks.into_remainder(), key);
}

/// Masks at most 15 bytes without a loop: steps of 8, 4, 2 and 1 bytes.
/// Steps of 8 and 4 keep the key lined up; `key` is already rotated.
#[inline(always)]
fn mask_short(mut buf: &mut [u8], key: [u8; 4]) {
    debug_assert!(buf.len() < 16);
    let word = u32::from_ne_bytes(key);
    if buf.len() >= 8 {
        let (eight, rest) = buf.split_at_mut(8);
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(eight);
        let wide = u64::from(word) | (u64::from(word) << 32);
        eight.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes());
        buf = rest;
    }
    if buf.len() >= 4 {
        let (four, rest) = buf.split_at_mut(4);
        let value = u32::from_ne_bytes([four[0], four[1], four[2], four[3]]) ^ word;
        four.copy_from_slice(&value.to_ne_bytes());
        buf = rest;
    }
    // 0–3 bytes left, starting at key byte 0.
    if buf.len() >= 2 {
        let (two, rest) = buf.split_at_mut(2);
        let value = u16::from_ne_bytes([two[0], two[1]]) ^ u16::from_ne_bytes([key[0], key[1]]);
        two.copy_from_slice(&value.to_ne_bytes());
        if let Some(last) = rest.first_mut() {
            *last ^= key[2];
        }
    } else if let Some(last) = buf.first_mut() {
        *last ^= key[0];
    }
}

/// The byte-at-a-time reference for [`apply_mask`]: obviously correct, slow.
pub fn apply_mask_naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(offset + i) & 3];
    }
}

/// The key as seen from byte `offset` of the payload: byte `i` of the
/// result is `key[(offset + i) % 4]`. Done as one rotate of a register
/// (little-endian order makes the byte order explicit on every target),
/// not four indexed loads from a copy on the stack.
#[inline]
fn rotate(key: [u8; 4], offset: usize) -> [u8; 4] {
    let shift = 8 * (offset & 3) as u32;
    u32::from_le_bytes(key).rotate_right(shift).to_le_bytes()
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
    fn fast_mask_equals_naive_at_every_alignment_of_long_payloads() {
        // lengths from LONG_FROM up take the aligned path: cover every
        // head length (0..16) with every key offset
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 13 + 5) as u8).collect();
        for len in [
            LONG_FROM - 1,
            LONG_FROM,
            LONG_FROM + 1,
            2 * LONG_FROM + 5,
            4099,
        ] {
            for start in 0..32 {
                for offset in 0..4 {
                    let mut fast = data[start..start + len].to_vec();
                    let mut slow = fast.clone();
                    // mask in place inside the big buffer, so `start` moves
                    // the address (a fresh Vec would be aligned)
                    let mut big = data.clone();
                    apply_mask(&mut big[start..start + len], key, offset);
                    apply_mask_naive(&mut slow, key, offset);
                    assert_eq!(
                        &big[start..start + len],
                        &slow[..],
                        "len {len} start {start} offset {offset}"
                    );
                    apply_mask(&mut fast, key, offset);
                    assert_eq!(fast, slow);
                }
            }
        }
    }

    /// The one `unsafe` call in the crate: the AVX2 build of the body loop
    /// against the portable one, on every length up to a few vectors and
    /// every key rotation (the tests above reach it through `apply_mask`
    /// from `LONG_FROM` on, on a CPU that has AVX2).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_body_equals_portable_body() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("no AVX2 on this CPU: the portable loop is the only one used");
            return;
        }
        let data: Vec<u8> = (0..700u32).map(|i| (i * 31 + 7) as u8).collect();
        for len in 0..data.len() {
            for offset in 0..4 {
                let key = rotate([0x37, 0xfa, 0x21, 0x3d], offset);
                let mut wide = data[..len].to_vec();
                let mut portable = wide.clone();
                // SAFETY: AVX2 was detected above.
                #[allow(unsafe_code)]
                unsafe {
                    mask_body_avx2(&mut wide, key)
                };
                mask_body(&mut portable, key);
                assert_eq!(wide, portable, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn rotate_matches_indexing() {
        let key = [1, 2, 3, 4];
        for offset in 0..12 {
            let expected: Vec<u8> = (0..4).map(|i| key[(offset + i) % 4]).collect();
            assert_eq!(rotate(key, offset).to_vec(), expected, "offset {offset}");
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
