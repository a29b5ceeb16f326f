//! One upstream's place in the proxy's rotation: in, or out until a retry
//! that backs off from 1 s to 30 s; and whose turn it is to check its
//! health. No I/O and no clock reads: time comes in.

use std::time::{Duration, Instant};

/// The first wait before an upstream that failed is tried again.
pub(crate) const FIRST_RETRY: Duration = Duration::from_secs(1);

/// The longest wait between retries.
pub(crate) const MAX_RETRY: Duration = Duration::from_secs(30);

/// An upstream's health.
#[derive(Debug)]
pub(crate) struct Health {
    up: bool,
    /// Failures since the last success.
    failures: u32,
    /// Out of rotation: when the next trial connection may go.
    retry_at: Instant,
    /// When the next health check is due.
    next_probe: Instant,
    /// A health check is under way (on some worker).
    probing: bool,
}

/// What a result changed, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Taken out of rotation; retried after this long.
    WentDown(Duration),
    /// Out of rotation still; retried after this long.
    StillDown(Duration),
    /// Back in rotation.
    CameBack,
    /// Nothing changed.
    Same,
}

impl Health {
    /// An upstream in rotation, due for its first health check.
    pub fn new(now: Instant) -> Health {
        Health {
            up: true,
            failures: 0,
            retry_at: now,
            next_probe: now,
            probing: false,
        }
    }

    /// In rotation.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Out of rotation and due for a retry: this connection is the trial,
    /// and the next waits another back-off (if this one never reports).
    pub fn take_trial(&mut self, now: Instant) -> bool {
        if self.up || now < self.retry_at {
            return false;
        }
        self.retry_at = now + self.backoff();
        true
    }

    /// A connection or health check succeeded (`ok`) or failed.
    pub fn record(&mut self, ok: bool, now: Instant) -> Verdict {
        if ok {
            let was_down = !self.up;
            self.up = true;
            self.failures = 0;
            return if was_down {
                Verdict::CameBack
            } else {
                Verdict::Same
            };
        }
        self.failures = self.failures.saturating_add(1);
        let wait = self.backoff();
        self.retry_at = now + wait;
        if std::mem::replace(&mut self.up, false) {
            Verdict::WentDown(wait)
        } else {
            Verdict::StillDown(wait)
        }
    }

    /// Whether this caller runs the health check due now (at most one at
    /// a time, whichever worker asks first).
    pub fn claim_probe(&mut self, now: Instant, interval: Duration) -> bool {
        if self.probing || now < self.next_probe {
            return false;
        }
        self.probing = true;
        self.next_probe = now + interval;
        true
    }

    /// The health check claimed has reported.
    pub fn probe_done(&mut self) {
        self.probing = false;
    }

    /// 1 s after the first failure, doubling, at most 30 s.
    fn backoff(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(5);
        (FIRST_RETRY * (1 << doublings)).min(MAX_RETRY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_takes_the_upstream_out_and_a_success_brings_it_back() {
        let now = Instant::now();
        let mut health = Health::new(now);
        assert!(health.is_up());
        assert_eq!(health.record(false, now), Verdict::WentDown(FIRST_RETRY));
        assert!(!health.is_up());
        assert_eq!(health.record(true, now), Verdict::CameBack);
        assert!(health.is_up());
        assert_eq!(health.record(true, now), Verdict::Same);
    }

    #[test]
    fn retries_back_off_from_one_second_to_thirty() {
        let now = Instant::now();
        let mut health = Health::new(now);
        let waits: Vec<Verdict> = (0..8).map(|_| health.record(false, now)).collect();
        let secs = [1, 2, 4, 8, 16, 30, 30, 30].map(Duration::from_secs);
        assert_eq!(waits[0], Verdict::WentDown(secs[0]));
        for (verdict, wait) in waits[1..].iter().zip(&secs[1..]) {
            assert_eq!(*verdict, Verdict::StillDown(*wait));
        }
    }

    #[test]
    fn one_trial_connection_goes_per_back_off() {
        let now = Instant::now();
        let mut health = Health::new(now);
        health.record(false, now);
        assert!(!health.take_trial(now), "not before the back-off");
        let later = now + FIRST_RETRY;
        assert!(health.take_trial(later));
        assert!(!health.take_trial(later), "one at a time");
        assert!(
            health.take_trial(later + FIRST_RETRY),
            "unless it never reports"
        );
    }

    #[test]
    fn one_health_check_runs_at_a_time_and_each_interval() {
        let now = Instant::now();
        let interval = Duration::from_secs(5);
        let mut health = Health::new(now);
        assert!(health.claim_probe(now, interval));
        assert!(
            !health.claim_probe(now + interval, interval),
            "still under way"
        );
        health.probe_done();
        assert!(!health.claim_probe(now + Duration::from_secs(1), interval));
        assert!(health.claim_probe(now + interval, interval));
    }
}
