//! Timers without scanning connections: a min-heap of deadlines with lazy
//! deletion. A connection's deadline usually moves later with traffic; the
//! heap is not touched then. When an old entry comes due, the engine is
//! asked (`handle_timeout`) and decides whether the deadline still stands,
//! and the connection's current deadline is pushed again.

use super::token::ConnId;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Deadlines for connections, earliest first.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, ConnId)>>,
}

impl Timers {
    /// Schedules a wake-up for `id` at `at`.
    pub fn push(&mut self, at: Instant, id: ConnId) {
        self.heap.push(Reverse((at, id)));
    }

    /// The earliest deadline, if any.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes and returns an entry due at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, ConnId)> {
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
    use super::*;
    use std::time::Duration;

    #[test]
    fn due_entries_come_out_earliest_first() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.push(t0 + Duration::from_secs(3), ConnId::new(3, 0));
        timers.push(t0 + Duration::from_secs(1), ConnId::new(1, 0));
        timers.push(t0 + Duration::from_secs(2), ConnId::new(2, 0));
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(timers.pop_due(t0), None);
        let later = t0 + Duration::from_secs(2);
        assert_eq!(timers.pop_due(later).map(|e| e.1.index()), Some(1));
        assert_eq!(timers.pop_due(later).map(|e| e.1.index()), Some(2));
        assert_eq!(timers.pop_due(later), None);
        assert_eq!(timers.len(), 1);
    }
}
