//! A million connections, by simulation: the reactor's per-connection state
//! (slab slots, timers, the clock, the protocol engine) for 10,000, 100,000
//! and 1,000,000 simulated connections driven through keep-alive
//! heartbeats without sockets (`edgews::reactor::sim`). Prints a table and
//! one JSON line:
//!
//! - bytes/conn: heap bytes the server's state holds per connection (a
//!   counting global allocator: slab slots, timer entries, what the engines
//!   allocate; the simulated clients' pongs in flight subtracted), plus
//!   what a real slot adds (its socket);
//! - ns/conn/interval: CPU time of the loop per connection per ping
//!   interval (each connection pings, reads its pong and is re-armed once
//!   per interval), the best of a few timed windows;
//! - ratio: that figure over the 10,000-connection one.
//!
//! Three ways to run the timers, in one sitting: `heap-pop` (before: the
//! binary heap, one entry popped and handled at a time), `wheel-pop` (the
//! timer wheel alone) and `wheel-batch` (after: the wheel, the due entries
//! taken a batch at a time and their slots loaded before any is handled).
//!
//! `cargo bench -p edgews --bench million` (about a minute);
//! `MILLION_SIZES=10000,100000` picks other sizes, `MILLION_ROUNDS` the
//! timed windows per size (3, the best counts), `MILLION_VARIANTS` the ways
//! (`heap-pop,wheel-pop,wheel-batch`; `heap-batch` too).

use edgews::reactor::sim::{self, SimConfig, Simulation, TimerKind};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Counts the bytes allocated and not yet freed.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call goes to the system allocator unchanged; the counter
// only observes the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// This thread's CPU time in nanoseconds (the scheduler's own count), or
/// the wall clock where /proc does not say: the loop never sleeps.
fn cpu_nanos(wall: Instant) -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| wall.elapsed().as_nanos() as u64)
}

/// A way to run the timers: the structure, and one at a time or batched.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Variant {
    name: &'static str,
    timers: TimerKind,
    batch: bool,
}

/// Before: the heap, one entry at a time (the reactor's `run_timers` as
/// it was); the wheel alone; after: the wheel, a batch at a time with the
/// batch's slots loaded first. `heap-batch` on request.
const VARIANTS: [Variant; 4] = [
    Variant {
        name: "heap-pop",
        timers: TimerKind::Heap,
        batch: false,
    },
    Variant {
        name: "wheel-pop",
        timers: TimerKind::Wheel,
        batch: false,
    },
    Variant {
        name: "wheel-batch",
        timers: TimerKind::Wheel,
        batch: true,
    },
    Variant {
        name: "heap-batch",
        timers: TimerKind::Heap,
        batch: true,
    },
];

/// One size's figures.
struct Row {
    variant: Variant,
    connections: usize,
    /// Heap bytes per connection after setup and a warm-up interval.
    heap_per_conn: f64,
    /// Of `heap_per_conn`, the timer structure's bytes.
    timer_per_conn: f64,
    /// `heap_per_conn` plus what a real slot adds (its socket).
    bytes_per_conn: f64,
    ns_per_conn_interval: f64,
    intervals: u32,
    wakeups_per_interval: f64,
    stale_per_conn_interval: f64,
    setup_secs: f64,
}

/// Simulated intervals per timed window: enough work to time well at
/// every size, little enough to keep the whole run short.
fn intervals_for(n: usize) -> u32 {
    (3_000_000 / n.max(1)).clamp(3, 100) as u32
}

fn measure(variant: Variant, n: usize, rounds: u32) -> Row {
    let base = LIVE.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut sim = Simulation::new(&SimConfig {
        connections: n,
        timers: variant.timers,
        batch: variant.batch,
        ..SimConfig::default()
    });
    let setup_secs = started.elapsed().as_secs_f64();
    sim.run_intervals(1); // the handshake deadlines, and the first pings
    let held = LIVE.load(Ordering::Relaxed) - base - sim.client_bytes();
    let heap_per_conn = held as f64 / n as f64;
    let timer_per_conn = sim.timer_bytes() as f64 / n as f64;
    let bytes_per_conn = heap_per_conn + sim::socket_size() as f64;
    let intervals = intervals_for(n);
    let mut best = f64::INFINITY;
    let mut wakeups = 0.0;
    let mut stale = 0.0;
    for _ in 0..rounds.max(1) {
        sim.reset_stats();
        let wall = Instant::now();
        let cpu = cpu_nanos(wall);
        sim.run_intervals(intervals);
        let spent = cpu_nanos(wall) - cpu;
        let per = spent as f64 / (n as f64 * f64::from(intervals));
        assert!(sim.stats().closed.is_empty(), "no connection may fail");
        assert_eq!(sim.len(), n);
        if per < best {
            best = per;
            let stats = sim.stats();
            wakeups = stats.wakeups as f64 / f64::from(intervals);
            stale = stats.stale_pops as f64 / (n as f64 * f64::from(intervals));
        }
    }
    Row {
        variant,
        connections: n,
        heap_per_conn,
        timer_per_conn,
        bytes_per_conn,
        ns_per_conn_interval: best,
        intervals,
        wakeups_per_interval: wakeups,
        stale_per_conn_interval: stale,
        setup_secs,
    }
}

fn variants() -> Vec<Variant> {
    let names = std::env::var("MILLION_VARIANTS")
        .unwrap_or_else(|_| "heap-pop,wheel-pop,wheel-batch".into());
    names
        .split(',')
        .filter_map(|name| VARIANTS.iter().find(|v| v.name == name.trim()).copied())
        .collect()
}

fn sizes() -> Vec<usize> {
    if smoke() {
        return vec![1_000];
    }
    std::env::var("MILLION_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000])
}

/// Run by `cargo test --all-targets` (no `--bench` argument, as
/// `cargo bench` passes), in a debug build: one small size, one round,
/// to show the bench still runs, not a measurement.
fn smoke() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

fn main() {
    let rounds = if smoke() {
        println!("not run by `cargo bench`: a smoke run of 1,000 connections, no figures");
        1
    } else {
        std::env::var("MILLION_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(3)
    };
    println!(
        "slot: real {} B (sim {} B + socket {} B: the fd and the TLS pointer); timer entry {} B",
        sim::real_slot_size(),
        sim::sim_slot_size(),
        sim::socket_size(),
        sim::timer_entry_size(),
    );
    println!(
        "{:>11} {:>9} {:>11} {:>8} {:>8} {:>17} {:>7} {:>4} {:>10} {:>8}",
        "timers",
        "N",
        "heap B/conn",
        "timer B",
        "B/conn",
        "ns/conn/interval",
        "ratio",
        "K",
        "wakeups/K",
        "setup s"
    );
    let mut rows: Vec<Row> = Vec::new();
    for variant in variants() {
        let first = rows.len();
        for n in sizes() {
            let row = measure(variant, n, rounds);
            let base = rows.get(first).unwrap_or(&row).ns_per_conn_interval;
            println!(
                "{:>11} {:>9} {:>11.1} {:>8.1} {:>8.1} {:>17.1} {:>7.2} {:>4} {:>10.0} {:>8.2}",
                variant.name,
                row.connections,
                row.heap_per_conn,
                row.timer_per_conn,
                row.bytes_per_conn,
                row.ns_per_conn_interval,
                row.ns_per_conn_interval / base,
                row.intervals,
                row.wakeups_per_interval,
                row.setup_secs,
            );
            rows.push(row);
        }
    }
    let json: Vec<String> = rows
        .iter()
        .map(|r| {
            let base = rows
                .iter()
                .find(|b| b.variant == r.variant)
                .map_or(1.0, |b| b.ns_per_conn_interval);
            format!(
                "{{\"timers\":\"{}\",\"connections\":{},\"heap_bytes_per_conn\":{:.1},\
                 \"timer_bytes_per_conn\":{:.1},\"bytes_per_conn\":{:.1},\"ns_per_conn_per_interval\":{:.1},\
                 \"ratio_to_first\":{:.3},\"intervals\":{},\"wakeups_per_interval\":{:.0},\
                 \"stale_pops_per_conn_per_interval\":{:.3}}}",
                r.variant.name,
                r.connections,
                r.heap_per_conn,
                r.timer_per_conn,
                r.bytes_per_conn,
                r.ns_per_conn_interval,
                r.ns_per_conn_interval / base,
                r.intervals,
                r.wakeups_per_interval,
                r.stale_per_conn_interval,
            )
        })
        .collect();
    println!(
        "{{\"bench\":\"million\",\"real_slot_bytes\":{},\"sim_slot_bytes\":{},\"socket_bytes\":{},\"rows\":[{}]}}",
        sim::real_slot_size(),
        sim::sim_slot_size(),
        sim::socket_size(),
        json.join(",")
    );
}
