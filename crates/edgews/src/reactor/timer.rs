//! Timers without scanning connections: a min-heap of deadlines with lazy
//! deletion. A connection's deadline usually moves later with traffic; the
//! heap is not touched then. When an old entry comes due, the engine is
//! asked (`handle_timeout`) and decides whether the deadline still stands,
//! and the connection's current deadline is pushed again.

use super::clock::Stamp;
use super::token::ConnId;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Deadlines for connections, earliest first; 16 bytes an entry.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Stamp, ConnId)>>,
}

impl Timers {
    /// Room for `n` entries without growing.
    pub fn with_capacity(n: usize) -> Self {
        Timers {
            heap: BinaryHeap::with_capacity(n),
        }
    }

    /// Schedules a wake-up for `id` at `at`.
    pub fn push(&mut self, at: Stamp, id: ConnId) {
        self.heap.push(Reverse((at, id)));
    }

    /// The earliest deadline, if any.
    pub fn next(&self) -> Option<Stamp> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes and returns an entry due at `now`, if any.
    pub fn pop_due(&mut self, now: Stamp) -> Option<(Stamp, ConnId)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Entries held, stale ones included.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::clock::Clock;
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn due_entries_come_out_earliest_first() {
        let t0 = Instant::now();
        let clock = Clock::new(t0);
        let at = |secs| clock.stamp(t0 + Duration::from_secs(secs));
        let mut timers = Timers::default();
        timers.push(at(3), ConnId::new(3, 0));
        timers.push(at(1), ConnId::new(1, 0));
        timers.push(at(2), ConnId::new(2, 0));
        assert_eq!(timers.next(), Some(at(1)));
        assert_eq!(timers.pop_due(at(0)), None);
        let later = at(2);
        assert_eq!(timers.pop_due(later).map(|e| e.1.index()), Some(1));
        assert_eq!(timers.pop_due(later).map(|e| e.1.index()), Some(2));
        assert_eq!(timers.pop_due(later), None);
        assert_eq!(timers.len(), 1);
    }
}
