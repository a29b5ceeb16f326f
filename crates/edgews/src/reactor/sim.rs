//! Simulated connections without sockets, for the million-connection
//! benchmark (`benches/million.rs`): the reactor's per-connection state
//! (slab slots, the timer structure, the clock, the protocol engine) driven
//! through keep-alive heartbeats on a simulated clock, with no sockets and
//! no sleeping.
//!
//! A slot (`SimConn`) carries what a real slot (`conn::Conn`) carries
//! except the socket: the descriptor and the TLS layer's pointer
//! ([`socket_size`] bytes). Each engine is a server-role
//! [`Connection`] upgraded the way the reactor upgrades one: it is fed a
//! client's upgrade request and accepts it. The driver does what the
//! reactor's loop does about timers, with the reactor's own timer code
//! (the timer wheel, `timer::rearm`, `timer::fire`; or, to compare, the
//! binary heap the wheel replaced: [`TimerKind`]):
//!
//! - it wakes where `mio::Poll` would: at the earliest timer, the timeout
//!   rounded up to a whole millisecond as mio rounds it, or at once when a
//!   client's pong arrives;
//! - it reads the pongs that arrived, each a masked pong frame fed to the
//!   engine as a read would present it, then settles the connection;
//! - it handles the due timers as `run_timers` does: a batch at a time,
//!   the batch's slots loaded first (`timer::warm`; or one entry at a time,
//!   to compare: `SimConfig::batch`); a superseded entry is skipped, a
//!   current one asks the engine (`handle_timeout`), whose ping goes to a
//!   scratch buffer that is then cleared, as a socket write would take it;
//!   the client answers that ping after the configured delay.
//!
//! What it leaves out: the syscalls (`epoll_wait`, `read`, `write`), the
//! handler's callbacks, and lingering: a simulated connection that fails is
//! counted and dropped at once, where the reactor would flush its close
//! frame and wait for the peer's FIN first.

use super::buffer::LazyQueue;
use super::clock::{Clock, Stamp};
use super::conn::Peer;
use super::lifecycle::Lifecycle;
use super::timer::{self, HeapTimers, TimerQueue, Timers};
use super::token::ConnId;
use crate::protocol::{Connection, Event, ProtocolConfig};
use slab::Slab;
use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A client's upgrade request, as a browser would send it.
const UPGRADE_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\n\
    Upgrade: websocket\r\nConnection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// A client's answer to an empty ping: FIN + pong, masked, no payload, the
/// masking key.
const MASKED_PONG: [u8; 6] = [0x8a, 0x80, 0x37, 0xfa, 0x21, 0x3d];

/// The first byte of the server's keep-alive ping: FIN + ping.
const PING_FIRST_BYTE: u8 = 0x89;

/// Which timer structure holds the deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimerKind {
    /// The reactor's: the hierarchical timer wheel.
    #[default]
    Wheel,
    /// The binary min-heap the wheel replaced (the "before").
    Heap,
}

/// The timer structure a simulation runs.
#[derive(Debug)]
enum Queue {
    Wheel(Timers),
    Heap(HeapTimers),
}

impl TimerQueue for Queue {
    #[inline]
    fn push(&mut self, at: Stamp, id: ConnId) {
        match self {
            Queue::Wheel(t) => t.push(at, id),
            Queue::Heap(t) => t.push(at, id),
        }
    }

    #[inline]
    fn next(&self) -> Option<Stamp> {
        match self {
            Queue::Wheel(t) => t.next(),
            Queue::Heap(t) => t.next(),
        }
    }

    #[inline]
    fn pop_due(&mut self, now: Stamp) -> Option<(Stamp, ConnId)> {
        match self {
            Queue::Wheel(t) => t.pop_due(now),
            Queue::Heap(t) => t.pop_due(now),
        }
    }

    #[inline]
    fn take_due(&mut self, now: Stamp) -> VecDeque<(Stamp, ConnId)> {
        match self {
            Queue::Wheel(t) => t.take_due(now),
            Queue::Heap(t) => t.take_due(now),
        }
    }

    #[inline]
    fn return_due(&mut self, batch: VecDeque<(Stamp, ConnId)>) {
        match self {
            Queue::Wheel(t) => t.return_due(batch),
            Queue::Heap(t) => t.return_due(batch),
        }
    }
}

/// How the simulation is set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Connections to simulate.
    pub connections: usize,
    /// The engine's keep-alive ping interval (`ProtocolConfig::ping_interval`).
    pub ping_interval: Duration,
    /// How long the engine waits for the pong (`ProtocolConfig::pong_timeout`).
    pub pong_timeout: Duration,
    /// How long after a ping the client's pong arrives; `None`: clients
    /// never answer, and every connection fails once its pong is overdue.
    pub pong_delay: Option<Duration>,
    /// Seeds the deadlines' spread over the interval.
    pub seed: u64,
    /// The timer structure.
    pub timers: TimerKind,
    /// Handle the due timers a batch at a time, the batch's slots loaded
    /// first (`timer::warm`), as the reactor does; `false`: one entry at a
    /// time, each slot loaded as it is handled, as `run_timers` did before.
    pub batch: bool,
    /// Count every connection's pings (see [`Simulation::pings_of_each`]);
    /// off for measurements.
    pub count_each: bool,
}

impl Default for SimConfig {
    /// 10,000 connections with the engine's default heartbeat (a ping after
    /// 30 s of silence, 30 s for the pong), answered after 20 ms.
    fn default() -> Self {
        let protocol = ProtocolConfig::default();
        SimConfig {
            connections: 10_000,
            ping_interval: protocol.ping_interval.unwrap_or(Duration::from_secs(30)),
            pong_timeout: protocol.pong_timeout,
            pong_delay: Some(Duration::from_millis(20)),
            seed: 1,
            timers: TimerKind::Wheel,
            batch: true,
            count_each: false,
        }
    }
}

/// What happened since the simulation started (or its counts were reset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Keep-alive pings the engines sent.
    pub pings: u64,
    /// Pongs the engines received.
    pub pongs: u64,
    /// Connections the engines closed, by close code.
    pub closed: BTreeMap<u16, u64>,
    /// Loop iterations: the times the simulated reactor woke.
    pub wakeups: u64,
    /// Entries taken out of the timer structure.
    pub timer_pops: u64,
    /// Of those, entries superseded by an earlier one (lazy deletion).
    pub stale_pops: u64,
}

/// One simulated connection: a real slot's fields (`conn::Conn`) without
/// the socket. Most are held, never read: they stand for the memory a real
/// slot carries.
#[derive(Debug)]
#[allow(dead_code)]
pub(crate) struct SimConn {
    id: ConnId,
    engine: Connection,
    peer: Peer,
    #[allow(clippy::redundant_allocation)]
    leftover: Option<Box<Box<[u8]>>>,
    queue: LazyQueue,
    #[allow(clippy::box_collection)]
    user: Option<Box<String>>,
    timer_at: Option<Stamp>,
    timer_phase: u8,
    linger_until: Option<Stamp>,
    life: Lifecycle,
    over_capacity: bool,
    read_paused: bool,
    dirty: bool,
    peer_eof: bool,
    backlog: bool,
    metrics_only: bool,
    hup: bool,
    proxy: Option<Box<super::proxy::ProxyEnd>>,
}

/// N simulated connections, the reactor's timers and clock, and a
/// simulated clock to drive them with (see the module docs).
#[derive(Debug)]
pub struct Simulation {
    conns: Slab<SimConn>,
    timers: Queue,
    clock: Clock,
    /// The simulated loop iteration's clock.
    now: Instant,
    protocol: Arc<ProtocolConfig>,
    next_generation: u32,
    /// The engines' output; cleared as a socket write would take it.
    scratch: Vec<u8>,
    /// The clients' side: pongs on their way, in order of arrival.
    pongs: VecDeque<(Stamp, ConnId)>,
    pong_delay: Option<Duration>,
    interval: Duration,
    /// See `SimConfig::batch`.
    batch: bool,
    /// The reactor's default `max_backpressure`, read once.
    max_backpressure: usize,
    /// Pings per slot, when counted (`SimConfig::count_each`).
    each: Vec<u32>,
    stats: SimStats,
}

impl Simulation {
    /// Opens `config.connections` simulated connections, each accepted at
    /// a random point of one ping interval (so that their deadlines spread
    /// over the interval as connections arriving and talking at random
    /// times spread them), and sets the clock at the end of that interval.
    pub fn new(config: &SimConfig) -> Simulation {
        let protocol = ProtocolConfig {
            ping_interval: Some(config.ping_interval),
            pong_timeout: config.pong_timeout,
            ..ProtocolConfig::default()
        };
        let epoch = Instant::now();
        let n = config.connections;
        let mut sim = Simulation {
            conns: Slab::with_capacity(n),
            timers: match config.timers {
                // as `Reactor::new` makes them
                TimerKind::Wheel => Queue::Wheel(Timers::with_capacity(n)),
                TimerKind::Heap => Queue::Heap(HeapTimers::with_capacity(n)),
            },
            clock: Clock::new(epoch),
            now: epoch + config.ping_interval,
            protocol: Arc::new(protocol),
            next_generation: 0,
            scratch: Vec::new(),
            pongs: VecDeque::new(),
            pong_delay: config.pong_delay,
            interval: config.ping_interval,
            batch: config.batch,
            max_backpressure: crate::config::ServerConfig::default().max_backpressure,
            each: if config.count_each {
                vec![0; n]
            } else {
                Vec::new()
            },
            stats: SimStats::default(),
        };
        let span = u64::try_from(config.ping_interval.as_nanos()).unwrap_or(u64::MAX);
        let mut rng = SplitMix64(config.seed);
        for _ in 0..n {
            let phase = Duration::from_nanos(rng.next() % span.max(1));
            sim.accept(epoch + phase);
        }
        sim
    }

    /// Accepts one connection at `at` and upgrades it, as the reactor's
    /// `admit_here`, `insert` and `upgrade_requested` do.
    fn accept(&mut self, at: Instant) {
        let engine = Connection::server(at, self.protocol.clone());
        let entry = self.conns.vacant_entry();
        let id = ConnId::new(entry.key(), self.next_generation);
        self.next_generation = (self.next_generation + 1) % (u32::MAX - 1);
        entry.insert(SimConn {
            id,
            engine,
            peer: Peer::new(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::LOCALHOST,
                40_000,
            ))),
            leftover: None,
            queue: LazyQueue::default(),
            user: None,
            timer_at: None,
            timer_phase: u8::MAX,
            linger_until: None,
            life: Lifecycle::inbound(),
            over_capacity: false,
            read_paused: false,
            dirty: false,
            peer_eof: false,
            backlog: false,
            metrics_only: false,
            hup: false,
            proxy: None,
        });
        self.settle(id); // the handshake deadline
        let conn = &mut self.conns[id.index()];
        let mut request = UPGRADE_REQUEST.to_vec();
        let (_, event) = conn
            .engine
            .handle_input(at, &mut request, &mut self.scratch);
        if matches!(event, Some(Event::Upgrade(_))) && conn.engine.accept(&mut self.scratch).is_ok()
        {
            conn.life.open();
        }
        self.scratch.clear(); // the 101 response, written
        self.settle(id);
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// The counts so far.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// Starts the counts again from zero.
    pub fn reset_stats(&mut self) {
        self.stats = SimStats::default();
    }

    /// Each slot's pings so far, when `SimConfig::count_each` asked for them.
    pub fn pings_of_each(&self) -> &[u32] {
        &self.each
    }

    /// Heap bytes the simulated clients hold (pongs on their way): not part
    /// of the server's state, to subtract from a measurement.
    pub fn client_bytes(&self) -> usize {
        self.pongs.capacity() * std::mem::size_of::<(Stamp, ConnId)>()
            + self.each.capacity() * std::mem::size_of::<u32>()
    }

    /// Heap bytes the timer structure holds (part of the server's state).
    pub fn timer_bytes(&self) -> usize {
        match &self.timers {
            Queue::Wheel(t) => t.heap_bytes(),
            Queue::Heap(t) => t.heap_bytes(),
        }
    }

    /// Runs the loop for `intervals` ping intervals of simulated time.
    pub fn run_intervals(&mut self, intervals: u32) {
        self.run_for(self.interval * intervals);
    }

    /// Runs the loop for `span` of simulated time.
    pub fn run_for(&mut self, span: Duration) {
        let end = self.now + span;
        while self.turn(end) {}
        self.now = end;
    }

    /// One loop iteration, if the loop wakes before `end`.
    fn turn(&mut self, end: Instant) -> bool {
        let now = self.now;
        let timer = self.timers.next().map(|at| {
            let wait = self.clock.instant(at).saturating_duration_since(now);
            now + round_up_to_millis(wait)
        });
        let pong = self.pongs.front().map(|&(at, _)| self.clock.instant(at));
        match [timer, pong].into_iter().flatten().min() {
            Some(wake) if wake <= end => self.now = wake.max(now),
            _ => return false,
        }
        self.stats.wakeups += 1;
        self.read_pongs();
        self.run_timers();
        true
    }

    /// Reads the pongs that arrived by now.
    fn read_pongs(&mut self) {
        let now = self.clock.stamp(self.now);
        while let Some(&(at, id)) = self.pongs.front() {
            if at > now {
                break;
            }
            self.pongs.pop_front();
            self.read_pong(id);
        }
    }

    /// One connection reads a masked pong, as `process_input` would present
    /// it to the engine, then is settled.
    fn read_pong(&mut self, id: ConnId) {
        let Some(conn) = lookup(&mut self.conns, id) else {
            return;
        };
        let mut input = MASKED_PONG;
        let mut pos = 0;
        while pos < input.len() {
            let (used, event) =
                conn.engine
                    .handle_input(self.now, &mut input[pos..], &mut self.scratch);
            pos += used;
            match event {
                Some(event) => note(&mut self.stats, &event),
                None => break,
            }
        }
        self.scratch.clear();
        self.settle(id);
    }

    /// Handles the due timers as the reactor's `run_timers` does: a batch
    /// at a time, the batch's slots loaded first (or one at a time: see
    /// `SimConfig::batch`).
    fn run_timers(&mut self) {
        let now = self.now;
        let now_stamp = self.clock.stamp(now);
        if !self.batch {
            while let Some((at, id)) = self.timers.pop_due(now_stamp) {
                self.fire(at, id);
            }
            return;
        }
        loop {
            let due = self.timers.take_due(now_stamp);
            if due.is_empty() {
                self.timers.return_due(due);
                return;
            }
            timer::warm(&self.conns, &due, |c| {
                (c.id, c.timer_at, c.engine.timer_phase())
            });
            for &(at, id) in &due {
                self.fire(at, id);
            }
            self.timers.return_due(due);
        }
    }

    /// One due entry, as the body of the reactor's `run_timers` loop.
    fn fire(&mut self, at: Stamp, id: ConnId) {
        let now = self.now;
        self.stats.timer_pops += 1;
        let Some(conn) = lookup(&mut self.conns, id) else {
            return;
        };
        if !timer::fire(&mut conn.timer_at, at) {
            self.stats.stale_pops += 1;
            return; // superseded by an earlier entry
        }
        if let Some(event) = conn.engine.handle_timeout(now, &mut self.scratch) {
            note(&mut self.stats, &event);
        }
        if self.scratch.first() == Some(&PING_FIRST_BYTE) {
            self.stats.pings += 1;
            if let Some(count) = self.each.get_mut(id.index()) {
                *count += 1;
            }
            if let Some(delay) = self.pong_delay {
                self.pongs.push_back((self.clock.stamp(now + delay), id));
            }
        }
        self.scratch.clear(); // the socket write takes it
        self.settle(id);
    }

    /// After a connection was processed, as the reactor's `settle`: drops
    /// it once closed (without lingering), pauses it over the backpressure
    /// cap, and re-arms its timer.
    fn settle(&mut self, id: ConnId) {
        let Some(conn) = lookup(&mut self.conns, id) else {
            return;
        };
        if conn.engine.is_closed() {
            self.conns.remove(id.index());
            return;
        }
        if conn.queue.len() > self.max_backpressure && !conn.read_paused {
            conn.read_paused = true;
        }
        timer::rearm(
            &mut self.timers,
            id,
            &mut conn.timer_at,
            &mut conn.timer_phase,
            &conn.engine,
            conn.linger_until,
            &self.clock,
        );
    }
}

/// Counts what an engine's event says.
fn note(stats: &mut SimStats, event: &Event<'_>) {
    match event {
        Event::Pong(_) => stats.pongs += 1,
        Event::Closed(closed) => *stats.closed.entry(closed.code.0).or_default() += 1,
        _ => {}
    }
}

/// The connection `id` names, if it is still open.
fn lookup(conns: &mut Slab<SimConn>, id: ConnId) -> Option<&mut SimConn> {
    conns.get_mut(id.index()).filter(|c| c.id == id)
}

/// `d` rounded up to a whole millisecond, as `mio::Poll` rounds a timeout
/// (so that it never wakes before the deadline only to sleep again).
fn round_up_to_millis(d: Duration) -> Duration {
    let millis = d.as_nanos().div_ceil(1_000_000);
    Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
}

/// The size of a real connection slot (`conn::Conn`) in the reactor's slab.
#[doc(hidden)]
pub fn real_slot_size() -> usize {
    std::mem::size_of::<super::conn::Conn>()
}

/// The size of a simulated slot (a real one without its socket).
#[doc(hidden)]
pub fn sim_slot_size() -> usize {
    std::mem::size_of::<SimConn>()
}

/// What a real slot has and a simulated one lacks: the socket (the
/// descriptor and the TLS layer's pointer).
#[doc(hidden)]
pub fn socket_size() -> usize {
    std::mem::size_of::<super::socket::Socket>()
}

/// Bytes of the timer structure per entry.
#[doc(hidden)]
pub fn timer_entry_size() -> usize {
    std::mem::size_of::<(Stamp, ConnId)>()
}

/// A small, fast, seeded generator (SplitMix64): the spread must be the
/// same from run to run.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(n: usize) -> SimConfig {
        SimConfig {
            connections: n,
            count_each: true,
            ..SimConfig::default()
        }
    }

    /// Both timer structures, each handled in batches and one at a time.
    fn every_way() -> [(TimerKind, bool); 4] {
        [
            (TimerKind::Wheel, true),
            (TimerKind::Wheel, false),
            (TimerKind::Heap, true),
            (TimerKind::Heap, false),
        ]
    }

    #[test]
    fn every_connection_pings_once_per_interval() {
        for (timers, batch) in every_way() {
            let mut sim = Simulation::new(&SimConfig {
                timers,
                batch,
                ..config(2_000)
            });
            assert_eq!(sim.len(), 2_000);
            // a wake-up may come up to a millisecond late (mio's rounding);
            // the second pings are an interval and the pong's delay away
            sim.run_for(Duration::from_secs(30) + Duration::from_millis(10));
            assert!(
                sim.pings_of_each().iter().all(|&n| n == 1),
                "{timers:?} {batch}"
            );
            assert_eq!(sim.stats().pings, 2_000);
            // answered, or the pong is on its way
            assert_eq!(sim.stats().pongs + sim.pongs.len() as u64, 2_000);
        }
    }

    #[test]
    fn no_connection_fails_when_the_pongs_come() {
        let mut sim = Simulation::new(&config(2_000));
        sim.run_intervals(5);
        assert_eq!(sim.len(), 2_000);
        assert!(sim.stats().closed.is_empty());
        // the period is the interval plus the pong's delay: 4 or 5 pings
        assert!(sim.pings_of_each().iter().all(|&n| n == 4 || n == 5));
        let in_flight = sim.pongs.len() as u64;
        assert_eq!(sim.stats().pongs + in_flight, sim.stats().pings);
        // each interval: the ping, and the pong's deadline (early by then)
        assert_eq!(sim.stats().stale_pops, 0);
    }

    #[test]
    fn every_connection_fails_with_1011_when_no_pong_comes() {
        for (timers, batch) in every_way() {
            let mut sim = Simulation::new(&SimConfig {
                pong_delay: None,
                timers,
                batch,
                ..config(2_000)
            });
            // each connection pings within the first interval, and fails
            // one pong timeout (30 s) later
            sim.run_for(Duration::from_secs(61));
            assert_eq!(sim.stats().pings, 2_000);
            assert!(sim.is_empty());
            assert_eq!(sim.stats().closed, BTreeMap::from([(1011, 2_000)]));
            assert_eq!(sim.stats().pongs, 0);
        }
    }

    #[test]
    fn a_simulated_slot_is_a_real_one_without_its_socket() {
        assert!(sim_slot_size() < real_slot_size());
        assert!(sim_slot_size() + socket_size() >= real_slot_size());
    }
}
