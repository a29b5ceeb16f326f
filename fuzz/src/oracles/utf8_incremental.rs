//! The `utf8_incremental` oracle.

use super::{for_each_chunk, Spec};
use edgews::protocol::utf8::Utf8Validator;

/// Arbitrary bytes, cut into pieces by the prefix, through [`Utf8Validator`]
/// (`feed` each piece, then `finish`). The verdict equals
/// `std::str::from_utf8` on the whole body, an error's offset equals
/// `valid_up_to()`, and an invalid sequence is reported by the very `feed`
/// whose piece makes it invalid (fail fast), never before.
pub fn utf8_incremental(data: &[u8]) {
    let spec = Spec::parse(data);
    let body = spec.body;
    let reference = std::str::from_utf8(body);
    // the shortest prefix that std already calls invalid (not just unfinished)
    let detect_at = match reference {
        Ok(_) => None,
        Err(e) => e.error_len().map(|_| {
            (e.valid_up_to() + 1..=body.len())
                .find(|&end| {
                    std::str::from_utf8(&body[..end])
                        .err()
                        .is_some_and(|e| e.error_len().is_some())
                })
                .expect("an invalid sequence is visible in some prefix")
        }),
    };
    for pass in 0..2 {
        // the second pass reuses the validator after `finish`
        let mut v = Utf8Validator::new();
        let mut fed = 0usize;
        let mut verdict: Option<Result<(), u64>> = None;
        for_each_chunk(body, spec.sizes, |piece| {
            if verdict.is_some() {
                return;
            }
            let before = fed;
            fed += piece.len();
            match v.feed(piece) {
                Ok(()) => {
                    if let Some(at) = detect_at {
                        assert!(
                            fed < at,
                            "invalid sequence ending at {at} not reported by the feed of {before}..{fed}"
                        );
                    }
                }
                Err(e) => {
                    let at = detect_at.expect("error on a valid (or unfinished) input");
                    assert!(
                        before < at && at <= fed,
                        "error reported by the feed of {before}..{fed}, visible at {at}"
                    );
                    verdict = Some(Err(e.offset));
                }
            }
            if pass == 1 && verdict.is_none() {
                assert_eq!(
                    v.is_incomplete(),
                    std::str::from_utf8(&body[..fed])
                        .err()
                        .is_some_and(|e| e.error_len().is_none()),
                    "is_incomplete after {fed} bytes"
                );
            }
        });
        let verdict = match verdict {
            Some(v) => v,
            None => v.finish().map_err(|e| e.offset),
        };
        let expected = reference.map(|_| ()).map_err(|e| e.valid_up_to() as u64);
        assert_eq!(verdict, expected, "validator and std disagree");
        if verdict.is_ok() {
            // finish resets: the validator works again from scratch
            assert!(v.feed(body).is_ok() && v.finish().is_ok());
        }
        if pass == 0 && verdict.is_err() {
            break;
        }
    }
}
