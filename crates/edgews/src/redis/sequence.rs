//! Sequence numbers across instances: what a publisher numbers, and what
//! a subscriber concludes from the numbers it sees (a gap, a duplicate, a
//! restart).
//!
//! Each instance numbers its publications per key (topic) from 1. A
//! subscriber remembers, per key it subscribes and per sending instance,
//! the last number it accepted: the next one must be one more. Per key, not
//! per instance, because a subscriber sees only the keys it subscribes: a
//! number per instance would show gaps for every message on other keys.

use std::collections::HashMap;

/// The most keys a publisher numbers at once. Past it the numbering starts
/// again at 1 for every key, which subscribers take as a restart (see
/// [`Verdict::Restart`]): bounded memory however many topics clients
/// publish to, at the price of one undetectable gap per key at that moment.
pub const MAX_NUMBERED_KEYS: usize = 65_536;

/// The most sending instances a subscriber tracks per key; past it the
/// key's table starts afresh (every instance's next message is a restart).
pub const MAX_SENDERS_PER_KEY: usize = 4_096;

/// The publisher's side: the next number for each key.
#[derive(Debug, Default)]
pub struct Numbering {
    last: HashMap<String, u64>,
}

impl Numbering {
    /// The next number on `key`, from 1.
    pub fn next(&mut self, key: &str) -> u64 {
        if let Some(last) = self.last.get_mut(key) {
            *last += 1;
            return *last;
        }
        if self.last.len() >= MAX_NUMBERED_KEYS {
            self.last.clear();
        }
        self.last.insert(key.to_string(), 1);
        1
    }
}

/// What a subscriber makes of the number on a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The next one (or the first seen from this sender on this key).
    InOrder,
    /// Accepted, after `missing` messages that never came.
    Gap {
        /// How many numbers were skipped.
        missing: u64,
    },
    /// Number 1 after higher ones: the sender restarted its numbering
    /// (a restart of the process makes a new instance id instead, so this
    /// is [`MAX_NUMBERED_KEYS`] at work). Accepted.
    Restart,
    /// Already seen (or older than the last one): dropped, so that nobody
    /// gets a message twice.
    Duplicate,
}

/// The subscriber's side for one key: the last number from each sender.
#[derive(Debug, Default)]
pub struct Received {
    last: HashMap<u64, u64>,
}

impl Received {
    /// Judges number `seq` from `sender`, and remembers it unless it is a
    /// duplicate.
    pub fn check(&mut self, sender: u64, seq: u64) -> Verdict {
        if !self.last.contains_key(&sender) && self.last.len() >= MAX_SENDERS_PER_KEY {
            self.last.clear();
        }
        let last = self.last.entry(sender).or_insert(0);
        let verdict = match *last {
            0 => Verdict::InOrder,
            l if seq == l + 1 => Verdict::InOrder,
            l if seq > l + 1 => Verdict::Gap {
                missing: seq - l - 1,
            },
            _ if seq == 1 => Verdict::Restart,
            _ => return Verdict::Duplicate,
        };
        *last = seq;
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publisher_numbers_each_key_from_one() {
        let mut n = Numbering::default();
        assert_eq!(
            [n.next("a"), n.next("a"), n.next("b"), n.next("a")],
            [1, 2, 1, 3]
        );
    }

    #[test]
    fn a_publisher_past_the_key_bound_starts_again_at_one() {
        let mut n = Numbering::default();
        for i in 0..MAX_NUMBERED_KEYS {
            n.next(&i.to_string());
        }
        assert_eq!(n.next("0"), 2, "known keys go on");
        assert_eq!(n.next("new"), 1);
        assert_eq!(n.next("0"), 1, "the table started afresh");
    }

    #[test]
    fn a_subscriber_sees_order_gaps_duplicates_and_restarts() {
        let mut r = Received::default();
        assert_eq!(
            r.check(7, 5),
            Verdict::InOrder,
            "the first seen sets the base"
        );
        assert_eq!(r.check(7, 6), Verdict::InOrder);
        assert_eq!(r.check(7, 9), Verdict::Gap { missing: 2 });
        assert_eq!(r.check(7, 9), Verdict::Duplicate);
        assert_eq!(r.check(7, 4), Verdict::Duplicate);
        assert_eq!(
            r.check(7, 10),
            Verdict::InOrder,
            "a duplicate changes nothing"
        );
        assert_eq!(r.check(8, 1), Verdict::InOrder, "senders are apart");
        assert_eq!(r.check(7, 1), Verdict::Restart);
        assert_eq!(r.check(7, 2), Verdict::InOrder);
    }

    #[test]
    fn a_subscriber_tracks_a_bounded_number_of_senders() {
        let mut r = Received::default();
        for sender in 0..MAX_SENDERS_PER_KEY as u64 {
            r.check(sender, 3);
        }
        assert_eq!(r.check(0, 4), Verdict::InOrder);
        assert_eq!(
            r.check(u64::MAX, 3),
            Verdict::InOrder,
            "table started afresh"
        );
        assert_eq!(r.check(0, 9), Verdict::InOrder, "forgotten: a new base");
    }
}
