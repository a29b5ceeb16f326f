//! `Sec-WebSocket-Accept` (RFC 6455 §1.3, §4.2.2).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The GUID that §1.3 appends to the client's key.
pub const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The length of an accept value: base64 of a 20-byte SHA-1 digest.
pub const ACCEPT_LEN: usize = 28;

/// Computes `base64(sha1(key + GUID))` for a `Sec-WebSocket-Key` value.
///
/// §4.2.2: "concatenate this with the Globally Unique Identifier ... take
/// the SHA-1 hash of this concatenated value to obtain a 20-byte value and
/// base64-encode".
pub fn accept_key(key: &[u8]) -> [u8; ACCEPT_LEN] {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    let digest = sha.finalize();
    let mut out = [0u8; ACCEPT_LEN];
    // a 20-byte digest always encodes to exactly 28 bytes
    let written = STANDARD.encode_slice(digest, &mut out).unwrap_or_default();
    debug_assert_eq!(written, ACCEPT_LEN);
    out
}

/// Whether `key` is a valid `Sec-WebSocket-Key`: base64 of exactly 16 bytes
/// (§4.1: "a randomly selected 16-byte value that has been base64-encoded").
///
/// Checked by its shape rather than by decoding it: 16 bytes are 22
/// symbols of the standard alphabet and `==` (RFC 4648 §4), and the last
/// symbol carries four bits of padding, which must be zero (§3.5: only
/// `A`, `Q`, `g` and `w` qualify), as a strict decoder requires.
pub fn is_valid_key(key: &[u8]) -> bool {
    let Ok(key) = <&[u8; 24]>::try_from(key) else {
        return false;
    };
    let (symbols, [last, b'=', b'=']) = key.split_at(21) else {
        return false;
    };
    // `&`, not `&&`: no branch per symbol
    let all_symbols = symbols
        .iter()
        .fold(true, |ok, &b| ok & BASE64_SYMBOL[usize::from(b)]);
    all_symbols && matches!(last, b'A' | b'Q' | b'g' | b'w')
}

/// Which bytes are in the standard base64 alphabet (RFC 4648 §4, Table 1).
const BASE64_SYMBOL: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
        b += 1;
    }
    table
};

/// A fresh random `Sec-WebSocket-Key` (§4.1, §10.3: from a CSPRNG seeded by
/// the operating system's entropy source).
pub fn generate_key() -> [u8; 24] {
    let nonce: [u8; 16] = rand::random();
    let mut out = [0u8; 24];
    let written = STANDARD.encode_slice(nonce, &mut out).unwrap_or_default();
    debug_assert_eq!(written, 24);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example_key_gives_rfc_example_accept() {
        // §1.3: dGhlIHNhbXBsZSBub25jZQ== -> s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
        assert_eq!(
            &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn keys_must_decode_to_sixteen_bytes() {
        assert!(is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ")); // unpadded
        assert!(!is_valid_key(b"c2hvcnQ=")); // 5 bytes
        assert!(!is_valid_key(b"!!!!IHNhbXBsZSBub25jZQ==")); // not base64
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZSE=")); // 17 bytes
    }

    /// The shape check agrees with a strict base64 decoder on every key
    /// one byte away from valid ones, and on every length up to 30.
    #[test]
    fn shape_check_agrees_with_decoding() {
        let decodes_to_16 = |key: &[u8]| {
            let mut decoded = [0u8; 18];
            matches!(STANDARD.decode_slice(key, &mut decoded), Ok(16))
        };
        let mut checked = 0;
        for seed in [
            *b"dGhlIHNhbXBsZSBub25jZQ==",
            *b"AAAAAAAAAAAAAAAAAAAAAA==",
            *b"+/+/+/+/+/+/+/+/+/+/+w==",
            generate_key(),
        ] {
            assert!(is_valid_key(&seed) && decodes_to_16(&seed));
            for at in 0..seed.len() {
                for byte in 0..=255u8 {
                    let mut key = seed;
                    key[at] = byte;
                    assert_eq!(is_valid_key(&key), decodes_to_16(&key), "{key:?}");
                    checked += 1;
                }
            }
            for len in 0..=30 {
                let key: Vec<u8> = seed.iter().copied().cycle().take(len).collect();
                assert_eq!(is_valid_key(&key), decodes_to_16(&key), "{key:?}");
            }
        }
        assert_eq!(checked, 4 * 24 * 256);
    }

    #[test]
    fn generated_keys_are_valid_and_differ() {
        let a = generate_key();
        let b = generate_key();
        assert!(is_valid_key(&a) && is_valid_key(&b));
        assert_ne!(a, b);
    }
}
