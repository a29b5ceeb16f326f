//! The loop's alarm clock: a `timerfd` in the epoll set that wakes
//! `epoll_wait` when the next timer is due, so the loop can wait with no
//! timeout.
//!
//! Why not `epoll_wait`'s own timeout: each wait that sleeps with one arms
//! a kernel timer and cancels it on waking, on every wake-up, whether or
//! not the deadline moved. A connection's life wakes the loop several times
//! (its accept, its upgrade, each message, its end) while the next deadline
//! (the oldest handshake's timeout, a heartbeat) stays where it was. The
//! alarm is armed only when the loop needs waking *earlier* than it is set
//! for: one `timerfd_settime` when a nearer deadline appears, none while
//! deadlines only move later. Armed too early, it costs one turn that finds
//! nothing due, and is then set again. Measured in docs/benchmarks.md
//! ("Connection setup", "the wait has no timeout"; `edgews-peers
//! wake-costs`).

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use rustix::fd::{AsRawFd, OwnedFd};
use rustix::time::Timespec;
use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
};
use std::io;
use std::time::{Duration, Instant};

/// A one-shot `CLOCK_MONOTONIC` timer (the clock `Instant` reads on
/// Linux), registered for readability under its token.
pub(super) struct Alarm {
    fd: OwnedFd,
    /// When it is set to ring; `None` once it rang (or was never set).
    armed: Option<Instant>,
}

impl Alarm {
    /// A disarmed alarm, registered with `registry` under `token`.
    pub(super) fn new(registry: &Registry, token: Token) -> io::Result<Self> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        Ok(Alarm { fd, armed: None })
    }

    /// Makes sure the loop wakes by `at`: sets the alarm unless it is set
    /// for `at` or earlier already. Errors leave it as it was.
    pub(super) fn wake_by(&mut self, at: Instant) -> io::Result<()> {
        if self.armed.is_some_and(|armed| armed <= at) {
            return Ok(());
        }
        // relative: `Instant` does not expose its clock reading; the time
        // between reading `now` and the call only makes it ring later
        // than `at` by that much, never earlier
        let delay = at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1)); // zero would disarm it
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: delay.as_secs() as _,
                tv_nsec: delay.subsec_nanos() as _,
            },
        };
        timerfd_settime(&self.fd, TimerfdTimerFlags::empty(), &spec)?;
        self.armed = Some(at);
        Ok(())
    }

    /// Its event came: marks it disarmed. Its expiry count is left unread,
    /// which saves a `read` per ring: the registration is edge-triggered,
    /// so a readable timerfd raises no further events, and setting it
    /// again (`timerfd_settime`) clears the count, and each later expiry
    /// raises a new edge.
    pub(super) fn rang(&mut self) {
        self.armed = None;
    }

    /// When it is set to ring.
    #[cfg(test)]
    fn armed(&self) -> Option<Instant> {
        self.armed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};

    const ALARM: Token = Token(7);

    /// Waits up to `limit` for events; whether the alarm's came.
    fn rings(poll: &mut Poll, events: &mut Events, limit: Duration) -> bool {
        poll.poll(events, Some(limit)).unwrap();
        events.iter().any(|e| e.token() == ALARM)
    }

    #[test]
    fn it_rings_once_at_the_earliest_deadline_asked_for() {
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(8);
        let mut alarm = Alarm::new(poll.registry(), ALARM).unwrap();
        assert!(
            !rings(&mut poll, &mut events, Duration::from_millis(20)),
            "disarmed"
        );

        let start = Instant::now();
        let near = start + Duration::from_millis(30);
        alarm.wake_by(start + Duration::from_secs(60)).unwrap();
        alarm.wake_by(near).unwrap(); // earlier: re-armed
        alarm.wake_by(start + Duration::from_secs(30)).unwrap(); // later: kept
        assert_eq!(alarm.armed(), Some(near));

        assert!(rings(&mut poll, &mut events, Duration::from_secs(10)));
        assert!(Instant::now() >= near, "rang before its deadline");
        alarm.rang();
        assert_eq!(alarm.armed(), None);
        // one-shot and edge-triggered: no second event though unread
        assert!(!rings(&mut poll, &mut events, Duration::from_millis(50)));
    }

    #[test]
    fn a_deadline_already_past_rings_at_once() {
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(8);
        let mut alarm = Alarm::new(poll.registry(), ALARM).unwrap();
        alarm
            .wake_by(Instant::now() - Duration::from_millis(5))
            .unwrap();
        assert!(rings(&mut poll, &mut events, Duration::from_secs(10)));
    }

    #[test]
    fn set_again_after_an_unread_ring_it_rings_again_and_only_then() {
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(8);
        let mut alarm = Alarm::new(poll.registry(), ALARM).unwrap();
        for round in 0..3 {
            // far enough that a stalled test machine does not make the
            // 5 ms look below see the ring itself
            let at = Instant::now() + Duration::from_millis(200);
            alarm.wake_by(at).unwrap();
            assert!(
                !rings(&mut poll, &mut events, Duration::from_millis(5)),
                "round {round}: rang early (the last ring's count is unread)"
            );
            assert!(rings(&mut poll, &mut events, Duration::from_secs(10)));
            assert!(
                Instant::now() >= at,
                "round {round}: rang before its deadline"
            );
            alarm.rang();
        }
        assert!(!rings(&mut poll, &mut events, Duration::from_millis(50)));
    }
}
