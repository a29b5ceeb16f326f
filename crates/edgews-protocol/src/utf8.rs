//! Incremental UTF-8 validation for text messages (RFC 6455 §5.6, §8.1).
//!
//! A text message may arrive in many fragments, and each fragment in many
//! reads; a code point may be split anywhere. [`Utf8Validator`] checks each
//! piece as it arrives, carrying at most three bytes of an unfinished code
//! point, so an invalid sequence is reported in the read where it appears
//! ("fail fast", what Autobahn's cases 6.4.x check), not when the message ends.

use std::fmt;

/// Carries the state of a UTF-8 check across pieces of one message.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    /// The bytes of a code point whose first byte has arrived but not its
    /// last. Invariant: `carry[..carry_len]` is a valid UTF-8 prefix, and
    /// `carry_len < 4`.
    carry: [u8; 4],
    carry_len: u8,
    /// Bytes fed so far, so errors can name their offset in the message.
    fed: u64,
}

/// Where a text message stopped being valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error {
    /// The offset, from the first byte fed, where the invalid sequence starts.
    pub offset: u64,
}

impl fmt::Display for Utf8Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid UTF-8 at byte {}", self.offset)
    }
}

impl std::error::Error for Utf8Error {}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next piece of the message. An unfinished code point at the
    /// end of `bytes` is not an error yet: it is carried into the next call.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), Utf8Error> {
        if self.carry_len > 0 {
            let consumed = self.complete_carry(bytes)?;
            bytes = &bytes[consumed..];
            if self.carry_len > 0 {
                return Ok(()); // still unfinished; everything was consumed
            }
        }
        let start = self.fed;
        self.fed += bytes.len() as u64;
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) => match e.error_len() {
                Some(_) => Err(Utf8Error {
                    offset: start + e.valid_up_to() as u64,
                }),
                None => {
                    // a valid prefix of a code point ends the piece
                    let tail = &bytes[e.valid_up_to()..];
                    self.carry[..tail.len()].copy_from_slice(tail);
                    self.carry_len = tail.len() as u8;
                    Ok(())
                }
            },
        }
    }

    /// Checks that the message did not end inside a code point.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let pending = u64::from(self.carry_len);
        let fed = self.fed;
        *self = Self::default();
        if pending > 0 {
            return Err(Utf8Error {
                offset: fed - pending,
            });
        }
        Ok(())
    }

    /// Whether an unfinished code point is being carried.
    pub fn is_incomplete(&self) -> bool {
        self.carry_len > 0
    }

    /// Adds bytes from the front of `bytes` to the carried code point;
    /// returns how many it took.
    fn complete_carry(&mut self, bytes: &[u8]) -> Result<usize, Utf8Error> {
        let have = usize::from(self.carry_len);
        let carry_start = self.fed - have as u64;
        let take = bytes.len().min(4 - have);
        let mut buf = self.carry;
        buf[have..have + take].copy_from_slice(&bytes[..take]);
        let candidate = &buf[..have + take];
        let used = match std::str::from_utf8(candidate) {
            Ok(_) => have + take,
            Err(e) if e.valid_up_to() > 0 => e.valid_up_to(),
            Err(e) => match e.error_len() {
                Some(_) => {
                    return Err(Utf8Error {
                        offset: carry_start,
                    })
                }
                None => {
                    // still a valid prefix, and it used all of `bytes`
                    self.carry = buf;
                    self.carry_len = (have + take) as u8;
                    self.fed += take as u64;
                    return Ok(take);
                }
            },
        };
        // the carried code point is complete within `used` bytes
        let taken = used - have;
        self.carry_len = 0;
        self.fed += taken as u64;
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check_split(data: &[u8], splits: &[usize]) -> Result<(), Utf8Error> {
        let mut v = Utf8Validator::new();
        let mut last = 0;
        for &s in splits {
            v.feed(&data[last..s])?;
            last = s;
        }
        v.feed(&data[last..])?;
        v.finish()
    }

    fn reference(data: &[u8]) -> Result<(), Utf8Error> {
        std::str::from_utf8(data)
            .map(|_| ())
            .map_err(|e| Utf8Error {
                offset: e.valid_up_to() as u64,
            })
    }

    #[test]
    fn split_unicode_message_is_valid_at_every_split_point() {
        let text = "κόσμε, 𝄞 and €".as_bytes();
        for a in 0..=text.len() {
            for b in a..=text.len() {
                assert_eq!(check_split(text, &[a, b]), Ok(()), "splits {a} {b}");
            }
        }
    }

    #[test]
    fn invalid_byte_fails_in_the_piece_where_it_appears() {
        let mut v = Utf8Validator::new();
        assert!(v.feed(b"hello ").is_ok());
        assert_eq!(v.feed(b"wor\xffld"), Err(Utf8Error { offset: 9 }));
    }

    #[test]
    fn impossible_prefix_fails_before_the_code_point_ends() {
        // 0xF4 0x90 would encode a code point above U+10FFFF: fail at once
        let mut v = Utf8Validator::new();
        assert!(v.feed(b"ab\xf4").is_ok());
        assert_eq!(v.feed(b"\x90"), Err(Utf8Error { offset: 2 }));
    }

    #[test]
    fn message_ending_inside_a_code_point_is_invalid() {
        let mut v = Utf8Validator::new();
        assert!(v.feed("€".as_bytes().split_at(2).0).is_ok());
        assert!(v.is_incomplete());
        assert_eq!(v.finish(), Err(Utf8Error { offset: 0 }));
    }

    #[test]
    fn surrogates_and_overlong_forms_are_invalid() {
        for bad in [
            &b"\xed\xa0\x80"[..],
            b"\xc0\xaf",
            b"\xe0\x80\xaf",
            b"\xf8\x88\x80\x80\x80",
        ] {
            for split in 0..=bad.len() {
                assert!(
                    check_split(bad, &[split]).is_err(),
                    "{bad:?} split at {split}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn verdict_and_offset_match_std_at_any_split(
            data in proptest::collection::vec(any::<u8>(), 0..64),
            mut splits in proptest::collection::vec(0usize..64, 0..6),
        ) {
            splits.retain(|&s| s <= data.len());
            splits.sort_unstable();
            prop_assert_eq!(check_split(&data, &splits), reference(&data));
        }

        #[test]
        fn valid_text_passes_at_any_split(s in "\\PC{0,40}", split in 0usize..200) {
            let data = s.as_bytes();
            let split = split.min(data.len());
            prop_assert_eq!(check_split(data, &[split]), Ok(()));
        }
    }
}
