//! Following each message to its receivers: whether a delivery is in
//! sequence, and when the last receiver of a message got it.

use super::super::report::Latencies;
use std::time::Duration;

/// How one delivery's sequence number follows the last one received from
/// its sender on that connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sequence {
    /// The next one.
    InOrder,
    /// Ahead: this many messages were skipped.
    Gap(u64),
    /// At or behind the last one: a duplicate (or a late message).
    Repeat,
}

impl Sequence {
    pub fn of(seq: u64, last: Option<u64>) -> Sequence {
        let expected = last.map_or(0, |l| l + 1);
        match seq.cmp(&expected) {
            std::cmp::Ordering::Equal => Sequence::InOrder,
            std::cmp::Ordering::Greater => Sequence::Gap(seq - expected),
            std::cmp::Ordering::Less => Sequence::Repeat,
        }
    }
}

/// One message on its way to its receivers.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Receivers that have not had it yet.
    remaining: u32,
    /// The latest delivery so far, in ns after the send.
    latest_ns: u64,
}

/// The fan-out latency to the last subscriber: for each message, the time
/// from its send to its delivery at the last of its receivers to get it.
/// Only messages that reached every receiver are measured.
#[derive(Debug, Default)]
pub struct LastDelivery {
    /// Per sender, per sequence number (from 0, in the order sent).
    pending: Vec<Vec<Pending>>,
    /// One sample per message that reached every receiver.
    pub latencies: Latencies,
    /// How many those are.
    pub complete: u64,
}

impl LastDelivery {
    /// For `senders` senders.
    pub fn new(senders: usize) -> LastDelivery {
        LastDelivery {
            pending: vec![Vec::new(); senders],
            ..LastDelivery::default()
        }
    }

    /// `sender` sent its message `seq` (the next of its numbers) to
    /// `receivers` receivers.
    pub fn sent(&mut self, sender: usize, seq: u64, receivers: usize) {
        let messages = &mut self.pending[sender];
        debug_assert_eq!(
            messages.len() as u64,
            seq,
            "sequence numbers are sent in order"
        );
        messages.push(Pending {
            remaining: u32::try_from(receivers).unwrap_or(u32::MAX),
            latest_ns: 0,
        });
        if receivers == 0 {
            self.complete(sender, seq as usize);
        }
    }

    /// A receiver got message `seq` of `sender` for the first time, after
    /// `latency`. Unknown messages (never sent, by the loader's count) are
    /// ignored: the sequence check reports them.
    pub fn delivered(&mut self, sender: usize, seq: u64, latency: Duration) {
        let Some(message) = self
            .pending
            .get_mut(sender)
            .and_then(|m| m.get_mut(usize::try_from(seq).ok()?))
        else {
            return;
        };
        if message.remaining == 0 {
            return; // more deliveries than receivers: not this table's to judge
        }
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        message.latest_ns = message.latest_ns.max(ns);
        message.remaining -= 1;
        if message.remaining == 0 {
            self.complete(sender, seq as usize);
        }
    }

    /// The message reached its last receiver.
    fn complete(&mut self, sender: usize, index: usize) {
        let latest = self.pending[sender][index].latest_ns;
        self.latencies.record(Duration::from_nanos(latest));
        self.complete += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_in_order_ahead_and_behind() {
        assert_eq!(Sequence::of(0, None), Sequence::InOrder);
        assert_eq!(Sequence::of(3, None), Sequence::Gap(3));
        assert_eq!(Sequence::of(5, Some(4)), Sequence::InOrder);
        assert_eq!(Sequence::of(8, Some(4)), Sequence::Gap(3));
        assert_eq!(Sequence::of(4, Some(4)), Sequence::Repeat);
        assert_eq!(Sequence::of(1, Some(4)), Sequence::Repeat);
    }

    #[test]
    fn a_message_counts_once_its_last_receiver_has_it() {
        let us = Duration::from_micros;
        let mut last = LastDelivery::new(2);
        last.sent(0, 0, 3);
        last.sent(1, 0, 2);
        last.delivered(0, 0, us(50));
        last.delivered(0, 0, us(900));
        last.delivered(1, 0, us(10));
        assert_eq!(last.complete, 0, "nobody's last receiver yet");
        last.delivered(0, 0, us(200)); // the third: the latest of the three counts
        assert_eq!(last.complete, 1);
        assert_eq!(last.latencies.percentile_us(50.0), 900.0);
        last.delivered(0, 0, us(5000)); // one too many: ignored
        last.delivered(0, 7, us(5000)); // never sent: ignored
        assert_eq!(last.complete, 1);
        last.delivered(1, 0, us(30));
        assert_eq!(last.complete, 2);
        assert_eq!(last.latencies.percentile_us(0.0), 30.0);
    }
}
