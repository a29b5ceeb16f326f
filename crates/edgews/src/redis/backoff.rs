//! When to try a lost Redis connection again: exponential back-off with
//! jitter, so that many instances that lost one Redis server together do
//! not all come back in the same millisecond.

use std::time::Duration;

/// The first retry's delay.
pub const FIRST_RETRY: Duration = Duration::from_millis(100);

/// The longest delay between two attempts; also the delay after Redis
/// refused the credentials, which only an operator can fix: one attempt
/// every 5 s is no retry storm, and notices the fix soon enough.
pub const MAX_RETRY: Duration = Duration::from_secs(5);

/// The attempts since the last success.
#[derive(Debug, Default, Clone)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// The delay before the next attempt after one more failure: doubling
    /// from [`FIRST_RETRY`] up to [`MAX_RETRY`], then a random point in its
    /// upper half (`jitter` in `[0, 1)`: "equal jitter", which keeps at
    /// least half the delay).
    pub fn fail(&mut self, jitter: f64) -> Duration {
        let exp = self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        let delay = FIRST_RETRY.saturating_mul(1 << exp).min(MAX_RETRY);
        delay / 2 + delay.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
    }

    /// The delay after a failure only an operator can fix (a wrong
    /// password): the longest one, without jitter's lower half.
    pub fn fail_hard(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        MAX_RETRY
    }

    /// A connection succeeded: the next failure starts from the shortest
    /// delay again.
    pub fn succeed(&mut self) {
        self.failures = 0;
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_keep_their_upper_half() {
        let mut b = Backoff::default();
        let top: Vec<u128> = (0..8).map(|_| b.fail(0.999_999).as_millis()).collect();
        assert_eq!(top, [99, 199, 399, 799, 1599, 3199, 4999, 4999]);
        b.succeed();
        assert_eq!(b.fail(0.0), FIRST_RETRY / 2);
        assert_eq!(b.fail(0.0), FIRST_RETRY);
    }

    #[test]
    fn a_refused_password_waits_the_longest_delay() {
        let mut b = Backoff::default();
        assert_eq!(b.fail_hard(), MAX_RETRY);
        assert_eq!(b.failures(), 1);
    }
}
