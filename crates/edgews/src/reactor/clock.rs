//! Deadlines in 8 bytes. An `Instant` takes 16 on Linux (seconds and
//! nanoseconds); every connection holds two deadlines and the timer heap one
//! entry per connection, so the reactor stores them as nanoseconds since its
//! own start instead.

use std::cell::Cell;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};

/// A point in time as nanoseconds since the reactor's epoch, plus one so that
/// `Option<Stamp>` is 8 bytes too. Ordered like the instants it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Stamp(NonZeroU64);

impl Stamp {
    /// Nanoseconds since the epoch, plus one: never 0, ordered like the
    /// stamps. The timer wheel files and packs deadlines by these bits.
    pub fn raw(self) -> u64 {
        self.0.get()
    }

    /// The stamp whose [`Stamp::raw`] is `raw`; 0, which no stamp has, is
    /// taken as 1 (the epoch).
    pub fn from_raw(raw: u64) -> Stamp {
        Stamp(NonZeroU64::new(raw).unwrap_or(NonZeroU64::MIN))
    }
}

/// Converts between instants and stamps.
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    epoch: Instant,
    /// The last two conversions. Every connection that had input in one
    /// loop iteration gets the same deadline (that iteration's clock plus
    /// the ping interval), so `settle` converts the same few instants again
    /// and again: this iteration's, and the previous one's for connections
    /// settled on a writable event. Two entries, because those alternate.
    /// Spares a subtraction of `Instant`s (~70 instructions) per message.
    recent: Cell<[(Instant, Stamp); 2]>,
}

impl Clock {
    /// A clock whose stamps count from `epoch`.
    pub fn new(epoch: Instant) -> Clock {
        Clock {
            epoch,
            recent: Cell::new([(epoch, Stamp(NonZeroU64::MIN)); 2]),
        }
    }

    /// `at` as a stamp. An instant before the epoch is the epoch (a deadline
    /// that has passed either way); one more than 584 years after it is the
    /// latest stamp.
    pub fn stamp(&self, at: Instant) -> Stamp {
        let recent = self.recent.get();
        if let Some(&(_, stamp)) = recent.iter().find(|(t, _)| *t == at) {
            return stamp;
        }
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX).min(u64::MAX - 1);
        let stamp = Stamp(NonZeroU64::MIN.saturating_add(nanos));
        self.recent.set([(at, stamp), recent[0]]);
        stamp
    }

    /// The instant a stamp stands for.
    pub fn instant(&self, stamp: Stamp) -> Instant {
        self.epoch + Duration::from_nanos(stamp.0.get() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_keep_their_order() {
        let epoch = Instant::now();
        let clock = Clock::new(epoch);
        let times = [
            epoch,
            epoch + Duration::from_nanos(1),
            epoch + Duration::from_millis(1500),
            epoch + Duration::from_secs(86_400 * 365),
        ];
        for pair in times.windows(2) {
            assert!(clock.stamp(pair[0]) < clock.stamp(pair[1]));
        }
        for t in times {
            assert_eq!(clock.instant(clock.stamp(t)), t);
        }
        // the memo of recent conversions never answers for another instant
        let (a, b, c) = (times[1], times[2], times[3]);
        let (sa, sb, sc) = (clock.stamp(a), clock.stamp(b), clock.stamp(c));
        let again = [a, b, c, a, a, c, b].map(|t| clock.stamp(t));
        assert_eq!(again, [sa, sb, sc, sa, sa, sc, sb]);
        assert_eq!(std::mem::size_of::<Option<Stamp>>(), 8);
        for t in times {
            let stamp = clock.stamp(t);
            assert_eq!(Stamp::from_raw(stamp.raw()), stamp);
        }
        assert_eq!(clock.stamp(epoch).raw(), 1);
        assert_eq!(Stamp::from_raw(0), clock.stamp(epoch));
    }

    #[test]
    fn instants_before_the_epoch_are_the_epoch() {
        let before = Instant::now();
        let clock = Clock::new(before + Duration::from_secs(5));
        assert_eq!(
            clock.stamp(before),
            clock.stamp(before + Duration::from_secs(5))
        );
        assert_eq!(
            clock.instant(clock.stamp(before)),
            before + Duration::from_secs(5)
        );
    }
}
