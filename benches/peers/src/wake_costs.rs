//! `wake-costs`: what a loop pays, per wake-up, for how it waits. A
//! waiter thread (CPU 0) sleeps in `epoll_wait` on a socket; a waker
//! thread (CPU 1) writes one byte, the waiter reads it and answers, and the
//! waker waits for the answer before the next byte: every wake-up is a
//! sleep and a wake, as in a server that is mostly idle, or in a
//! connection's life (accept, upgrade, message, end).
//!
//! Three ways of waiting, alternated round by round:
//! - `no timeout`: `epoll_wait(-1)`, as a loop with no timers;
//! - `epoll timeout`: `epoll_wait` with a 10 s timeout, as a loop whose next
//!   timer is 10 s away: the kernel arms a timer for each wait that sleeps
//!   and cancels it when woken;
//! - `timerfd`: a `timerfd` set 10 s ahead sits in the epoll set and the
//!   wait has no timeout: what edgews does (`reactor/alarm.rs`).
//!
//! Each line: the waiter's CPU time (user and kernel, its thread's clock)
//! per wake-up, the median of the rounds, and the median over the rounds
//! of its ratio to `no timeout` in the same round.
//! `edgews-peers wake-costs` (it pins its own two threads).

use mio::net::UnixStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rustix::fd::AsRawFd;
use rustix::thread::{sched_setaffinity, CpuSet};
use rustix::time::{clock_gettime, timerfd_create, timerfd_settime, ClockId};
use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
use std::io::{self, Read, Write};
use std::time::Duration;

/// Wake-ups per round and way.
const WAKES: u32 = 50_000;
/// Rounds; each runs every way once.
const ROUNDS: usize = 9;
/// How far the timer of the two ways with one is.
const FAR: Duration = Duration::from_secs(10);

#[derive(Clone, Copy)]
enum Way {
    NoTimeout,
    EpollTimeout,
    Timerfd,
}

const WAYS: [(Way, &str); 3] = [
    (Way::NoTimeout, "no timeout"),
    (Way::EpollTimeout, "epoll timeout (10 s)"),
    (Way::Timerfd, "timerfd (10 s) and no timeout"),
];

/// Measures and prints the table.
pub fn run() -> io::Result<()> {
    let mut per_way: Vec<Vec<f64>> = vec![Vec::new(); WAYS.len()];
    for _ in 0..ROUNDS {
        for (i, (way, _)) in WAYS.iter().enumerate() {
            per_way[i].push(round(*way)?);
        }
    }
    println!("how the waiter waits                ns of its CPU per wake-up, median of {ROUNDS} x {WAKES}; / no timeout (median of rounds)");
    for (i, (_, name)) in WAYS.iter().enumerate() {
        let ratios: Vec<f64> = per_way[i]
            .iter()
            .zip(&per_way[0])
            .map(|(a, b)| a / b)
            .collect();
        println!(
            "{name:<36}{:>8.0}{:>10.3}",
            median(per_way[i].clone()),
            median(ratios)
        );
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Pins the calling thread to `cpu`, where the machine has it.
fn pin(cpu: usize) {
    let mut set = CpuSet::new();
    set.set(cpu);
    let _ = sched_setaffinity(None, &set);
}

fn thread_cpu_ns() -> f64 {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    t.tv_sec as f64 * 1e9 + t.tv_nsec as f64
}

/// One round of `WAKES` wake-ups waited for `way`; the waiter's CPU
/// nanoseconds per wake-up.
fn round(way: Way) -> io::Result<f64> {
    let (waiter_end, waker_end) = std::os::unix::net::UnixStream::pair()?;
    waker_end.set_nonblocking(false)?;
    let waker = std::thread::spawn(move || -> io::Result<()> {
        pin(1);
        let mut sock = waker_end;
        let mut byte = [1u8];
        for _ in 0..WAKES {
            sock.write_all(&byte)?;
            sock.read_exact(&mut byte)?;
        }
        Ok(())
    });
    pin(0);
    waiter_end.set_nonblocking(true)?;
    let mut waiter = UnixStream::from_std(waiter_end);
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(8);
    poll.registry()
        .register(&mut waiter, Token(0), Interest::READABLE)?;
    let timeout = match way {
        Way::EpollTimeout => Some(FAR),
        Way::NoTimeout | Way::Timerfd => None,
    };
    let _alarm = match way {
        Way::Timerfd => {
            let fd = timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::NONBLOCK)?;
            let spec = Itimerspec {
                it_interval: Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: Timespec {
                    tv_sec: FAR.as_secs() as _,
                    tv_nsec: 0,
                },
            };
            timerfd_settime(&fd, TimerfdTimerFlags::empty(), &spec)?;
            let raw = fd.as_raw_fd();
            poll.registry()
                .register(&mut SourceFd(&raw), Token(1), Interest::READABLE)?;
            Some(fd)
        }
        Way::NoTimeout | Way::EpollTimeout => None,
    };
    let start = thread_cpu_ns();
    let mut byte = [0u8];
    let mut done = 0;
    while done < WAKES {
        poll.poll(&mut events, timeout)?;
        // one byte per wake-up (the waker waits for the answer before it
        // writes again), so one read drains the socket, as a short read
        // does in a server
        match waiter.read(&mut byte) {
            Ok(0) => return Err(io::Error::other("the waker hung up")),
            Ok(_) => {
                waiter.write_all(&byte)?;
                done += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    let spent = thread_cpu_ns() - start;
    waker
        .join()
        .map_err(|_| io::Error::other("the waker panicked"))??;
    Ok(spent / f64::from(WAKES))
}
