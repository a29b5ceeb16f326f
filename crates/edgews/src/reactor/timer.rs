//! Timers without scanning connections: a hierarchical timer wheel with
//! lazy deletion. A connection's deadline usually moves later with traffic;
//! the wheel is not touched then. When an old entry comes due, the engine
//! is asked (`handle_timeout`) and decides whether the deadline still
//! stands, and the connection's current deadline is pushed again
//! ([`rearm`], the rule `settle` applies; [`fire`], the check `run_timers`
//! applies to a popped entry).
//!
//! Why a wheel: the binary heap it replaced sifted every pop down ~20
//! levels of a 16 MB array at a million connections, a cache miss a level.
//! The million-connection benchmark (`benches/million.rs`, which drives
//! this code for simulated connections) measured the heartbeat's CPU per
//! connection per interval at 1,000,000 connections 4.3 to 6.4 times the
//! 10,000-connection figure, two thirds of it in the sift. A wheel files an
//! entry by its deadline's bits in O(1) and moves it at most once a level,
//! through contiguous vectors: 1.4 to 1.6 times. The rest was the slot
//! each firing timer touches, out of cache at a million: `run_timers` takes
//! the due entries a batch at a time ([`Timers::take_due`]) and loads
//! their slots together first ([`warm`]), so the misses overlap: 0.8 times
//! (the per-wake-up cost is shared by more connections). [`HeapTimers`],
//! the heap, stays as the tests' model and the benchmark's "before".
//!
//! The wheel: time in ticks of 2^20 ns (~1.05 ms, mio's resolution), eight
//! levels of 64 slots, six bits of the tick each, which covers every
//! [`Stamp`] (2^64 ns), so no deadline is too far. An entry goes to the
//! level of the highest six-bit group in which its tick differs from the
//! wheel's current tick; when the current tick reaches a slot of a higher
//! level, the slot's entries move down. Entries of a slot come out in no
//! particular order, but never before they are due: the current tick's
//! slot is sorted out entry by entry. Each slot knows its earliest
//! deadline, so [`Timers::next`], asked every loop turn, is exact and O(1).
//!
//! Memory: the heap took 16 bytes an entry. A slot of levels 0 to 2 spans
//! at most 2^32 ns, aligned, so its entries ([`Near`]) keep only the low
//! 32 bits of their deadline: 12 bytes. Levels 3 to 7 (deadlines that
//! cross a 2^38 ns boundary, 4.6 minutes, or lie further ahead) keep whole
//! entries, in slots allocated only while the level holds any. A long
//! vector grows by an eighth; a slot's entries moving down are counted
//! first, so each destination grows once, to size; drained vectors are
//! freed (but tiny ones of level 0). Fixed: the near slots' headers, 6 KiB,
//! and the far levels' five empty vectors.
//! `heap_bytes`: 5,000 heartbeat deadlines filed over half a second, in
//! two slots, take 15.1 bytes an entry, the headers included (the heap:
//! 16; 17.5 in the rare case that most cross a level-3 boundary); the
//! million-connection benchmark 13.4, 13.0 and 12.1 bytes a connection at
//! 10,000, 100,000 and 1,000,000 connections (before, 16-byte entries,
//! doubling to 1,024 and 512 fixed slots: 26.5, 19.6, 19.1).

use super::clock::{Clock, Stamp};
use super::token::ConnId;
use crate::protocol::Connection;
use slab::Slab;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// One timer: a deadline and the connection it belongs to; 16 bytes.
type Entry = (Stamp, ConnId);

/// A tick is 2^TICK_SHIFT nanoseconds.
const TICK_SHIFT: u32 = 20;
/// Bits of the tick per level.
const LEVEL_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << LEVEL_BITS;
/// Levels: 8 x 6 bits cover the 44 bits of a tick.
const LEVELS: usize = 8;
const _: () = assert!(LEVELS as u32 * LEVEL_BITS + TICK_SHIFT >= 64);
const _: () = assert!(LEVELS as u32 * LEVEL_BITS < 64);
/// The levels whose entries are [`Near`] (12 bytes): a slot of level 2
/// spans 2^32 ns, aligned, so the low 32 bits of a stamp are all its slot
/// does not tell. Levels 0 to 2 reach 4.6 s to 5 minutes ahead: heartbeats,
/// handshake and close timeouts.
const NEAR_LEVELS: usize = 3;
const _: () = assert!(TICK_SHIFT + (NEAR_LEVELS as u32 - 1) * LEVEL_BITS <= 32);
/// A slot's vector past this many entries grows by an eighth at a time,
/// not by doubling: a near slot holds a few seconds of deadlines (5,000
/// idle connections opened together, 143,000 entries at a million
/// connections), and doubling left it up to half empty.
const GROW_GENTLY_FROM: usize = 1024;
/// A drained level-0 slot keeps its vector for reuse up to this many
/// entries (48 bytes; 3 KiB for the level): with few connections a slot
/// gets an entry or two a turn, and an allocation each cost more than the
/// rest of filing them. A larger one is freed.
const KEEP_CAPACITY: usize = 4;
/// The ready queue keeps its memory up to this many entries (4 KiB, a few
/// times a heartbeat batch at a million connections); a burst's (a stall,
/// many connections opened at once) is freed.
const KEEP_READY: usize = 256;

/// What the reactor asks of its timer structure.
pub(crate) trait TimerQueue {
    /// Schedules a wake-up for `id` at `at`.
    fn push(&mut self, at: Stamp, id: ConnId);
    /// The earliest deadline held, if any: never later than the true
    /// earliest (the reactor sleeps until it).
    fn next(&self) -> Option<Stamp>;
    /// Removes and returns an entry due at `now` (its deadline is at or
    /// before `now`), if any. `now` never goes back.
    fn pop_due(&mut self, now: Stamp) -> Option<Entry>;

    /// Removes and returns every entry due at `now` (see `pop_due`),
    /// earliest ticks first. Give the batch back with
    /// [`return_due`](TimerQueue::return_due) once handled, so that the
    /// next batch reuses its memory.
    fn take_due(&mut self, now: Stamp) -> VecDeque<Entry> {
        std::iter::from_fn(|| self.pop_due(now)).collect()
    }

    /// Takes back a batch from [`take_due`](TimerQueue::take_due).
    fn return_due(&mut self, _batch: VecDeque<Entry>) {}
}

/// Deadlines for connections: a hierarchical timer wheel (see the module
/// docs); 12 bytes an entry due within minutes, 16 beyond.
#[derive(Debug)]
pub(crate) struct Timers {
    /// `NEAR_LEVELS * SLOTS` slots, level by level.
    near: Box<[Slot<Near>]>,
    /// The slots of each level above, `SLOTS` of them, or none
    /// (unallocated) while the level holds no entry.
    far: Box<[Vec<Slot<Entry>>]>,
    /// A bit per non-empty slot, a word per level.
    occupied: [u64; LEVELS],
    /// The current tick: every slot before it has been emptied.
    elapsed: u64,
    /// Entries due (at or before the `now` of the last `pop_due`), in tick
    /// order.
    ready: VecDeque<Entry>,
    /// Entries held, stale ones included.
    len: usize,
}

/// A slot: its entries and the earliest of their deadlines.
#[derive(Debug)]
struct Slot<T> {
    /// The entries, in no order.
    entries: Vec<T>,
    /// The earliest deadline among `entries`, as [`Stamp::raw`]; 0 (no stamp's)
    /// when there are none: the earliest of all is found without looking
    /// into a slot.
    min: u64,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            entries: Vec::new(),
            min: 0,
        }
    }
}

impl<T> Slot<T> {
    /// Adds an entry for the deadline `raw` (as [`Stamp::raw`]); a long vector
    /// grows by an eighth (`GROW_GENTLY_FROM`).
    fn add(&mut self, raw: u64, entry: T) {
        let entries = &mut self.entries;
        if entries.len() == entries.capacity() && entries.len() >= GROW_GENTLY_FROM {
            entries.reserve_exact(entries.len() / 8);
        }
        entries.push(entry);
        if self.min == 0 || raw < self.min {
            self.min = raw;
        }
    }
}

/// An entry of a near level: the low 32 bits of its deadline (as
/// [`Stamp::raw`]; its slot tells the rest) and its connection; 12 bytes,
/// where an [`Entry`] takes 16 (a `Stamp` aligns it to 8).
#[derive(Debug, Clone, Copy)]
struct Near {
    /// The deadline's low 32 bits.
    low: u32,
    /// The connection.
    id: ConnId,
}

impl Near {
    fn new(raw: u64, id: ConnId) -> Near {
        Near {
            low: raw as u32,
            id,
        }
    }

    /// The deadline, given the bits above 32 shared by its slot.
    fn raw(self, high: u64) -> u64 {
        high | u64::from(self.low)
    }
}

/// The bits above 32 shared by the deadlines of a near slot that starts at
/// tick `start`.
fn high_bits(start: u64) -> u64 {
    (start << TICK_SHIFT) & !u64::from(u32::MAX)
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            near: (0..NEAR_LEVELS * SLOTS).map(|_| Slot::default()).collect(),
            far: (NEAR_LEVELS..LEVELS).map(|_| Vec::new()).collect(),
            occupied: [0; LEVELS],
            elapsed: 0,
            ready: VecDeque::new(),
            len: 0,
        }
    }
}

/// The level an entry for tick `when` goes to when the current tick is
/// `elapsed` (`when >= elapsed`): its highest six-bit group that differs.
fn level_for(elapsed: u64, when: u64) -> usize {
    let differ = (elapsed ^ when) | (SLOTS as u64 - 1);
    ((63 - differ.leading_zeros()) / LEVEL_BITS) as usize
}

/// The slot of tick `when` at `level`.
fn slot_for(when: u64, level: usize) -> usize {
    ((when >> (level as u32 * LEVEL_BITS)) & (SLOTS as u64 - 1)) as usize
}

impl Timers {
    /// A wheel for about `n` connections. The wheel's vectors grow with the
    /// entries filed in them, so nothing is reserved up front.
    pub fn with_capacity(_n: usize) -> Self {
        Timers::default()
    }

    /// Schedules a wake-up for `id` at `at`.
    pub fn push(&mut self, at: Stamp, id: ConnId) {
        self.len += 1;
        self.file(at, id);
    }

    /// Files an entry in its slot (or as ready, when its tick has passed).
    fn file(&mut self, at: Stamp, id: ConnId) {
        let raw = at.raw();
        let when = raw >> TICK_SHIFT;
        if when < self.elapsed {
            return self.ready.push_back((at, id));
        }
        let level = level_for(self.elapsed, when);
        let slot = slot_for(when, level);
        if level < NEAR_LEVELS {
            self.near[level * SLOTS + slot].add(raw, Near::new(raw, id));
        } else {
            let far = &mut self.far[level - NEAR_LEVELS];
            if far.is_empty() {
                *far = (0..SLOTS).map(|_| Slot::default()).collect();
            }
            far[slot].add(raw, (at, id));
        }
        self.occupied[level] |= 1 << slot;
    }

    /// The index in `near` of the slot for the deadline `raw`, which lies
    /// within the current tick's near levels (`raw`'s tick is not before
    /// it, and not a level-3 slot away).
    fn near_index(&self, raw: u64) -> usize {
        let when = raw >> TICK_SHIFT;
        let level = level_for(self.elapsed, when);
        debug_assert!(level < NEAR_LEVELS && when >= self.elapsed);
        level * SLOTS + slot_for(when, level)
    }

    /// The earliest deadline in a slot, as [`Stamp::raw`] (0: none).
    fn min_of(&self, level: usize, slot: usize) -> u64 {
        if level < NEAR_LEVELS {
            self.near[level * SLOTS + slot].min
        } else {
            self.far[level - NEAR_LEVELS][slot].min
        }
    }

    /// The earliest deadline held, if any; exact. O(1) (a few bit
    /// operations) but for entries already due and not taken yet, which
    /// `run_timers` leaves none of: the earliest among those due, the
    /// current tick's slot, and the first non-empty slot after it (any slot
    /// of a lower level comes before every slot of a higher one).
    pub fn next(&self) -> Option<Stamp> {
        let current = self.min_of(0, slot_for(self.elapsed, 0));
        let later = self.next_slot_after_current();
        let later = later.map_or(0, |(level, slot, _)| self.min_of(level, slot));
        let filed = [current, later].into_iter().filter(|&m| m != 0).min();
        let filed = filed.map(Stamp::from_raw);
        let due = self.ready.iter().map(|e| e.0);
        due.chain(filed).min()
    }

    /// The earliest non-empty slot other than the current tick's.
    fn next_slot_after_current(&self) -> Option<(usize, usize, u64)> {
        let current = slot_for(self.elapsed, 0);
        let above = self.occupied[0] & !(2u64 << current).wrapping_sub(1);
        if above != 0 {
            let slot = above.trailing_zeros() as usize;
            return Some((0, slot, (self.elapsed & !(SLOTS as u64 - 1)) | slot as u64));
        }
        self.next_slot_from(1)
    }

    /// The earliest non-empty slot, the current tick's included, as
    /// (level, slot, the tick it starts at).
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        let current = slot_for(self.elapsed, 0);
        let from_current = self.occupied[0] & !((1u64 << current) - 1);
        if from_current != 0 {
            let slot = from_current.trailing_zeros() as usize;
            return Some((0, slot, (self.elapsed & !(SLOTS as u64 - 1)) | slot as u64));
        }
        self.next_slot_from(1)
    }

    /// The earliest non-empty slot at `level` or above. A level's entries
    /// all lie after its current slot and within the level above's.
    fn next_slot_from(&self, level: usize) -> Option<(usize, usize, u64)> {
        (level..LEVELS).find_map(|level| {
            let shift = level as u32 * LEVEL_BITS;
            let current = slot_for(self.elapsed, level);
            // the slots after the current one (none after the last)
            let after = self.occupied[level] & !(2u64 << current).wrapping_sub(1);
            (after != 0).then(|| {
                let slot = after.trailing_zeros() as usize;
                let window = !((1u64 << (shift + LEVEL_BITS)) - 1);
                (
                    level,
                    slot,
                    (self.elapsed & window) | ((slot as u64) << shift),
                )
            })
        })
    }

    /// Removes and returns an entry due at `now`, if any. `now` never goes
    /// back (the reactor's clock is monotonic).
    pub fn pop_due(&mut self, now: Stamp) -> Option<(Stamp, ConnId)> {
        if self.ready.is_empty() {
            self.advance(now);
        }
        let Some(entry) = self.ready.pop_front() else {
            if self.ready.capacity() > KEEP_READY {
                self.ready = VecDeque::new(); // a burst's
            }
            return None;
        };
        debug_assert!(entry.0 <= now);
        self.len -= 1;
        Some(entry)
    }

    /// Removes and returns every entry due at `now`, earliest ticks first
    /// (an entry pushed meanwhile that is due already comes with the next
    /// batch). Give the batch back with [`return_due`](Timers::return_due).
    pub fn take_due(&mut self, now: Stamp) -> VecDeque<Entry> {
        self.advance(now);
        let batch = std::mem::take(&mut self.ready);
        self.len -= batch.len();
        batch
    }

    /// Takes back a batch from [`take_due`](Timers::take_due): its memory
    /// serves the next one.
    pub fn return_due(&mut self, mut batch: VecDeque<Entry>) {
        let bigger = batch.capacity() > self.ready.capacity();
        // not a burst's (a stall, a mass of connections opened together)
        if self.ready.is_empty() && bigger && batch.capacity() <= KEEP_READY {
            batch.clear();
            self.ready = batch;
        }
    }

    /// Heap bytes held: the slots (their vectors and minimums), the ready
    /// queue, the far levels' boxes.
    pub fn heap_bytes(&self) -> usize {
        let near: usize = self.near.iter().map(|s| s.entries.capacity()).sum();
        let far = self.far.iter().flatten();
        let far_slots = far.clone().count();
        let far: usize = far.map(|s| s.entries.capacity()).sum();
        near * std::mem::size_of::<Near>()
            + (far + self.ready.capacity()) * std::mem::size_of::<Entry>()
            + self.near.len() * std::mem::size_of::<Slot<Near>>()
            + far_slots * std::mem::size_of::<Slot<Entry>>()
            + self.far.len() * std::mem::size_of::<Vec<Slot<Entry>>>()
    }

    /// Moves the current tick to `now`'s: slots passed on the way are
    /// emptied (due entries to `ready`, a higher level's down a level),
    /// then the due entries of `now`'s own slot join `ready`.
    fn advance(&mut self, now: Stamp) {
        let target = now.raw() >> TICK_SHIFT;
        while let Some((level, slot, start)) = self.next_slot() {
            if start > target || (level == 0 && start == target) {
                break;
            }
            self.elapsed = start;
            self.occupied[level] &= !(1 << slot);
            if level >= NEAR_LEVELS {
                self.cascade_far(level, slot);
            } else {
                let emptied = std::mem::take(&mut self.near[level * SLOTS + slot]);
                if level == 0 {
                    let high = high_bits(start);
                    let mut entries = emptied.entries;
                    let due = entries.iter();
                    self.ready
                        .extend(due.map(|e| (Stamp::from_raw(e.raw(high)), e.id)));
                    if entries.capacity() <= KEEP_CAPACITY {
                        entries.clear();
                        self.near[slot].entries = entries;
                    }
                } else {
                    self.cascade_near(emptied.entries, start);
                }
            }
        }
        if target < self.elapsed {
            return; // `now` went back: nothing more is due
        }
        self.elapsed = target;
        let index = slot_for(target, 0);
        let min = self.near[index].min;
        if min == 0 || min > now.raw() {
            return;
        }
        self.take_due_of_current(index, now);
    }

    /// Files the entries of a near slot of level 1 or 2 that starts at the
    /// current tick (`start`) down to the levels below. Each destination
    /// grows once, to its size: the entries are counted first.
    fn cascade_near(&mut self, entries: Vec<Near>, start: u64) {
        let high = high_bits(start);
        let mut counts = [0u32; NEAR_LEVELS * SLOTS];
        for e in &entries {
            counts[self.near_index(e.raw(high))] += 1;
        }
        for (slot, &n) in self.near.iter_mut().zip(&counts) {
            if n != 0 {
                slot.entries.reserve_exact(n as usize);
            }
        }
        for e in entries {
            let raw = e.raw(high);
            let index = self.near_index(raw);
            self.near[index].add(raw, e);
            self.occupied[index / SLOTS] |= 1 << (index % SLOTS);
        }
    }

    /// Files the entries of a far slot that starts at the current tick
    /// down; frees the level's slots once none holds an entry.
    fn cascade_far(&mut self, level: usize, slot: usize) {
        let emptied = std::mem::take(&mut self.far[level - NEAR_LEVELS][slot]);
        for (at, id) in emptied.entries {
            self.file(at, id);
        }
        if self.occupied[level] == 0 {
            self.far[level - NEAR_LEVELS] = Vec::new();
        }
    }

    /// Moves the entries of the current tick's slot that are due at `now`
    /// to `ready`.
    fn take_due_of_current(&mut self, index: usize, now: Stamp) {
        let (now_raw, high) = (now.raw(), high_bits(self.elapsed));
        let current = &mut self.near[index];
        let mut min = 0;
        let mut i = 0;
        while i < current.entries.len() {
            let raw = current.entries[i].raw(high);
            if raw <= now_raw {
                let e = current.entries.swap_remove(i);
                self.ready.push_back((Stamp::from_raw(raw), e.id));
            } else {
                min = if min == 0 { raw } else { min.min(raw) };
                i += 1;
            }
        }
        current.min = min;
        if current.entries.is_empty() {
            if current.entries.capacity() > KEEP_CAPACITY {
                current.entries = Vec::new();
            }
            self.occupied[0] &= !(1 << index);
        }
    }

    /// Entries held, stale ones included.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }
}

impl TimerQueue for Timers {
    fn push(&mut self, at: Stamp, id: ConnId) {
        Timers::push(self, at, id);
    }

    fn next(&self) -> Option<Stamp> {
        Timers::next(self)
    }

    fn pop_due(&mut self, now: Stamp) -> Option<Entry> {
        Timers::pop_due(self, now)
    }

    fn take_due(&mut self, now: Stamp) -> VecDeque<Entry> {
        Timers::take_due(self, now)
    }

    fn return_due(&mut self, batch: VecDeque<Entry>) {
        Timers::return_due(self, batch);
    }
}

/// Loads the slot of every connection in a batch of due entries (`probe`
/// reads what handling the entry reads first) before any is handled. At a
/// million connections a slot is out of cache when its timer fires, and
/// one miss at a time cost more than all the rest of a heartbeat; loaded
/// together, their misses overlap. The loads change nothing; a slot that
/// is gone or reused is simply loaded for nothing.
pub(crate) fn warm<T, R>(conns: &Slab<T>, due: &VecDeque<Entry>, probe: impl Fn(&T) -> R) {
    for &(_, id) in due {
        std::hint::black_box(conns.get(id.index()).map(&probe));
    }
}

/// The min-heap the wheel replaced, with lazy deletion as well: the tests'
/// model and the million-connection benchmark's "before".
#[derive(Debug, Default)]
pub(crate) struct HeapTimers {
    heap: BinaryHeap<Reverse<Entry>>,
}

impl HeapTimers {
    /// Room for `n` entries without growing.
    pub fn with_capacity(n: usize) -> Self {
        HeapTimers {
            heap: BinaryHeap::with_capacity(n),
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.heap.capacity() * std::mem::size_of::<Entry>()
    }
}

impl TimerQueue for HeapTimers {
    fn push(&mut self, at: Stamp, id: ConnId) {
        self.heap.push(Reverse((at, id)));
    }

    fn next(&self) -> Option<Stamp> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    fn pop_due(&mut self, now: Stamp) -> Option<Entry> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }
}

/// The re-arm rule of `settle`: keeps a connection's one armed deadline
/// (`armed`, with the engine's `timer_phase` when it was last looked at)
/// up to date after the connection was processed. While the phase stays
/// the same and nothing lingers, the engine's deadline can only have moved
/// later and the armed entry will see to it, so nothing is asked;
/// otherwise the earlier of the engine's deadline and `linger_until` is
/// pushed if it comes before the armed one.
pub(crate) fn rearm(
    timers: &mut impl TimerQueue,
    id: ConnId,
    armed: &mut Option<Stamp>,
    phase: &mut u8,
    engine: &Connection,
    linger_until: Option<Stamp>,
    clock: &Clock,
) {
    let now_phase = engine.timer_phase();
    if armed.is_some() && linger_until.is_none() && now_phase == *phase {
        // the common case, after a message: the engine's deadline can
        // only have moved later, and the armed timer will see to it
        return;
    }
    *phase = now_phase;
    let engine_next = engine.poll_timeout().map(|t| clock.stamp(t));
    let next = [engine_next, linger_until].into_iter().flatten().min();
    if let Some(next) = next {
        if armed.is_none_or(|at| next < at) {
            *armed = Some(next);
            timers.push(next, id);
        }
    }
}

/// Whether an entry popped for `at` is the connection's armed deadline
/// (`armed`); if so the connection is disarmed (its timer fires now). A
/// different `armed` means the entry was superseded by an earlier one: it
/// is stale and ignored.
pub(crate) fn fire(armed: &mut Option<Stamp>, at: Stamp) -> bool {
    if *armed != Some(at) {
        return false;
    }
    *armed = None;
    true
}

#[cfg(test)]
mod tests {
    use super::super::clock::Clock;
    use super::*;
    use proptest::prelude::*;
    use std::time::{Duration, Instant};

    /// Stamps `nanos` after a clock's epoch.
    struct Times {
        epoch: Instant,
        clock: Clock,
    }

    impl Times {
        fn new() -> Times {
            let epoch = Instant::now();
            Times {
                epoch,
                clock: Clock::new(epoch),
            }
        }

        fn at(&self, nanos: u64) -> Stamp {
            self.clock.stamp(self.epoch + Duration::from_nanos(nanos))
        }
    }

    #[test]
    fn a_batch_holds_everything_due_and_its_memory_is_reused() {
        let t = Times::new();
        let mut timers = Timers::default();
        for i in 0..100 {
            timers.push(t.at(i * 1_000_000), ConnId::new(i as usize, 0));
        }
        let due = timers.take_due(t.at(49_000_000));
        assert_eq!(due.len(), 50);
        assert!(due.iter().all(|e| e.0 <= t.at(49_000_000)));
        let capacity = due.capacity();
        timers.return_due(due);
        assert_eq!(timers.len(), 50);
        assert_eq!(timers.next(), Some(t.at(50_000_000)));
        let due = timers.take_due(t.at(99_000_000));
        assert_eq!((due.len(), due.capacity()), (50, capacity));
    }

    /// The wheel's heap bytes with no entry: the near slots' headers, the
    /// far levels' boxes.
    const EMPTY: usize = NEAR_LEVELS * SLOTS * std::mem::size_of::<Slot<Near>>()
        + (LEVELS - NEAR_LEVELS) * std::mem::size_of::<Vec<Slot<Entry>>>();
    const _: () = assert!(EMPTY < 6 * 1024 + 256);
    /// The most the drained slots of level 0 keep.
    const KEPT: usize = SLOTS * KEEP_CAPACITY * std::mem::size_of::<Near>();

    #[test]
    fn near_entries_take_twelve_bytes_and_a_slot_thirty_two() {
        assert_eq!(std::mem::size_of::<Near>(), 12);
        assert_eq!(std::mem::size_of::<Entry>(), 16);
        assert_eq!(std::mem::size_of::<Slot<Near>>(), 32);
        assert_eq!(Timers::default().heap_bytes(), EMPTY);
    }

    #[test]
    fn stamps_are_made_of_their_nanoseconds() {
        let t = Times::new();
        for n in [0, 1, 999, 1 << 32, u64::MAX / 2, u64::MAX - 2] {
            assert_eq!(Stamp::from_raw(n + 1), t.at(n));
        }
        assert_eq!(Stamp::from_raw(u64::MAX).raw(), u64::MAX); // the latest
    }

    /// A wheel holding a heartbeat deadline, 30 s ahead, for each of `n`
    /// connections opened over `over_ms`, from `from_ns`.
    fn opened(t: &Times, n: u64, from_ns: u64, over_ms: u64) -> Timers {
        let mut timers = Timers::default();
        let _ = timers.take_due(t.at(from_ns));
        for i in 0..n {
            let opened_at = from_ns + i * over_ms * 1_000_000 / n;
            let at = t.at(opened_at + 30_000_000_000);
            timers.push(at, ConnId::new(i as usize, 0));
        }
        timers
    }

    #[test]
    fn idle_connections_cost_less_than_in_the_heap() {
        let t = Times::new();
        let heap = 5_000 * std::mem::size_of::<Entry>();
        // 5,000 opened together, their deadlines in one or two level-2
        // slots: 12 bytes each, the growth room, the slots' headers
        for from_ns in [0, 1 << 33, 3 << 32] {
            let bytes = opened(&t, 5_000, from_ns, 500).heap_bytes();
            assert!(bytes < heap * 95 / 100, "{bytes}");
        }
        // past a level-3 boundary (every 2^38 ns, 4.6 minutes) deadlines
        // are filed far, in 16 bytes: then about the heap's cost
        let boundary = (1u64 << 38) - 30_000_000_000 - 100_000_000;
        let bytes = opened(&t, 5_000, boundary, 500).heap_bytes();
        let level = SLOTS * std::mem::size_of::<Slot<Entry>>();
        assert!(bytes <= EMPTY + level + heap * 9 / 8, "{bytes}");
        // 100,000 opened over 30 s: each vector at most an eighth over
        let bytes = opened(&t, 100_000, 0, 30_000).heap_bytes() - EMPTY;
        assert!(bytes <= 100_000 * 12 * 9 / 8, "{bytes}");
    }

    #[test]
    fn a_cascade_sizes_its_destinations_to_their_entries() {
        let t = Times::new();
        let mut timers = opened(&t, 5_000, 0, 500);
        // the current tick passes the level-2 slots: their entries move
        // down, into vectors sized exactly; the current tick's slot keeps
        // the room of those taken out of it (about ten)
        let due = timers.take_due(t.at(30_300_000_000));
        assert!(!due.is_empty());
        let held = timers.len();
        timers.return_due(due);
        let ready = timers.ready.capacity() * std::mem::size_of::<Entry>();
        let slack = timers.heap_bytes() - ready - EMPTY - held * 12;
        assert!(slack <= 16 * 12, "{slack}");
        // all gone: the near slots' headers stay, and small vectors of
        // level 0
        let due = timers.take_due(t.at(31_000_000_000));
        assert_eq!((due.len(), timers.len()), (held, 0));
        assert!(timers.heap_bytes() <= EMPTY + KEPT);
    }

    #[test]
    fn far_slots_exist_only_while_they_hold_entries() {
        let t = Times::new();
        let mut timers = Timers::default();
        let hour = 3_600_000_000_000;
        timers.push(t.at(hour), ConnId::new(1, 0));
        // level 4 (2^44 ns, aligned, is 4.9 hours)
        let level = SLOTS * std::mem::size_of::<Slot<Entry>>();
        assert_eq!(timers.heap_bytes(), EMPTY + level + 4 * 16);
        assert_eq!(timers.take_due(t.at(hour - 1)).len(), 0);
        assert!(timers.far.iter().all(Vec::is_empty)); // filed near by now
        assert_eq!(timers.take_due(t.at(hour)).len(), 1);
        assert!(timers.heap_bytes() <= EMPTY + KEPT);
    }

    /// Everything due at `now`, sorted.
    fn drain(timers: &mut impl TimerQueue, now: Stamp) -> Vec<Entry> {
        let mut out: Vec<Entry> = std::iter::from_fn(|| timers.pop_due(now)).collect();
        out.sort();
        out
    }

    #[test]
    fn due_entries_come_out_and_no_others() {
        let t = Times::new();
        let secs = |s: u64| t.at(s * 1_000_000_000);
        let mut timers = Timers::default();
        timers.push(secs(3), ConnId::new(3, 0));
        timers.push(secs(1), ConnId::new(1, 0));
        timers.push(secs(2), ConnId::new(2, 0));
        assert_eq!(timers.next(), Some(secs(1)));
        assert_eq!(timers.pop_due(secs(0)), None);
        let popped: Vec<usize> = drain(&mut timers, secs(2))
            .iter()
            .map(|e| e.1.index())
            .collect();
        assert_eq!(popped, [1, 2]);
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.next(), Some(secs(3)));
    }

    #[test]
    fn stamps_are_read_as_their_nanoseconds() {
        let t = Times::new();
        for n in [0, 1, 999, 1 << 20, (1 << 20) + 1, u64::MAX / 2] {
            assert_eq!(t.at(n).raw(), n + 1);
        }
    }

    #[test]
    fn entries_of_one_tick_come_out_only_once_due() {
        let t = Times::new();
        let mut timers = Timers::default();
        // the same ~1 ms tick, in no order
        for (i, ns) in [500_000, 100_000, 900_000, 100_000].into_iter().enumerate() {
            timers.push(t.at(ns), ConnId::new(i, 0));
        }
        assert_eq!(timers.next(), Some(t.at(100_000)));
        let first = drain(&mut timers, t.at(100_000));
        assert_eq!(
            first.iter().map(|e| e.1.index()).collect::<Vec<_>>(),
            [1, 3]
        );
        assert_eq!(timers.next(), Some(t.at(500_000)));
        assert_eq!(drain(&mut timers, t.at(499_999)), []);
        assert_eq!(drain(&mut timers, t.at(900_000)).len(), 2);
        assert_eq!(timers.next(), None);
    }

    #[test]
    fn far_future_deadlines_wait_and_then_come_out() {
        let t = Times::new();
        let year = 365 * 86_400 * 1_000_000_000u64;
        let mut timers = Timers::default();
        let far = [500 * year, 100 * year, year, u64::MAX]; // the last: the latest stamp
        for (i, &ns) in far.iter().enumerate() {
            timers.push(t.at(ns), ConnId::new(i, 0));
        }
        timers.push(t.at(1_000), ConnId::new(9, 0));
        assert_eq!(drain(&mut timers, t.at(1_000)).len(), 1);
        assert_eq!(timers.next(), Some(t.at(year)));
        assert_eq!(drain(&mut timers, t.at(year - 1)), []);
        assert_eq!(drain(&mut timers, t.at(year))[0].1.index(), 2);
        assert_eq!(timers.next(), Some(t.at(100 * year)));
        assert_eq!(drain(&mut timers, t.at(200 * year)).len(), 1);
        assert_eq!(drain(&mut timers, t.at(u64::MAX)).len(), 2);
        assert_eq!((timers.len(), timers.next()), (0, None));
    }

    #[test]
    fn deadlines_already_passed_come_out_at_once() {
        let t = Times::new();
        let mut timers = Timers::default();
        timers.push(t.at(5_000_000_000), ConnId::new(1, 0));
        assert_eq!(drain(&mut timers, t.at(3_000_000_000)), []);
        timers.push(t.at(1_000), ConnId::new(2, 0)); // before the wheel's tick
        assert_eq!(timers.next(), Some(t.at(1_000)));
        let popped = drain(&mut timers, t.at(3_000_000_000));
        assert_eq!(popped, [(t.at(1_000), ConnId::new(2, 0))]);
    }

    /// A step of the model test: push at `now + offset` (which may lie
    /// before `now`), or move `now` on and take out everything due.
    #[derive(Debug, Clone)]
    enum Op {
        Push(i64),
        /// Move on; take the due entries a batch at a time (`take_due`),
        /// or one at a time.
        Advance(u64, bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        let ms = 1_000_000i64;
        prop_oneof![
            3 => (-5 * ms..5 * ms).prop_map(Op::Push),
            3 => (0..40_000 * ms).prop_map(Op::Push),
            1 => (0..i64::MAX).prop_map(Op::Push),
            1 => (0u64..3_000_000, any::<bool>()).prop_map(|(by, b)| Op::Advance(by, b)),
            2 => (0u64..100_000_000, any::<bool>()).prop_map(|(by, b)| Op::Advance(by, b)),
            1 => (0u64..50_000_000_000, any::<bool>()).prop_map(|(by, b)| Op::Advance(by, b)),
            1 => (0u64..u64::MAX / 4, any::<bool>()).prop_map(|(by, b)| Op::Advance(by, b)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The wheel holds and hands out what a binary heap would: the same
        /// entries due at each `now`, the same earliest deadline, and after
        /// a drain an earliest deadline still to come (the reactor's sleep
        /// never spins).
        #[test]
        fn the_wheel_agrees_with_a_heap(start in 0u64..1 << 50, ops in prop::collection::vec(op(), 1..300)) {
            let t = Times::new();
            let mut now = start;
            let (mut wheel, mut heap) = (Timers::default(), HeapTimers::default());
            for (i, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Push(offset) => {
                        let at = t.at(now.saturating_add_signed(offset));
                        wheel.push(at, ConnId::new(i, 0));
                        TimerQueue::push(&mut heap, at, ConnId::new(i, 0));
                    }
                    Op::Advance(by, batch) => {
                        now = now.saturating_add(by);
                        let stamp = t.at(now);
                        let from_wheel = if batch {
                            let due = wheel.take_due(stamp);
                            let mut taken: Vec<Entry> = due.iter().copied().collect();
                            wheel.return_due(due);
                            taken.sort();
                            taken
                        } else {
                            drain(&mut wheel, stamp)
                        };
                        prop_assert_eq!(from_wheel, drain(&mut heap, stamp));
                        prop_assert!(wheel.next().is_none_or(|next| next > stamp));
                    }
                }
                prop_assert_eq!(wheel.next(), heap.next());
            }
        }
    }
}
