//! The bookkeeping behind [`Guarded`](super::Guarded)'s limits, without a
//! handler and without a clock: every method takes the time as `now`, so
//! the arithmetic is tested with made-up instants.
//!
//! - [`TokenBucket`]: `rate` tokens a second, at most `burst` saved up.
//! - `ConnectionsPerIp`: open connections counted per client IP.
//! - `UpgradesPerIp`: one upgrade bucket per client IP, forgotten once full
//!   again, in a table of at most [`MAX_TRACKED_IPS`] addresses.

use crate::reactor::ConnId;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A rate with a burst: `per_second` on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// The sustained rate, per second; at least 1.
    pub per_second: u32,
    /// How many may come back to back after a quiet spell; at least 1.
    pub burst: u32,
}

/// A token bucket: `rate` tokens per second, at most `burst` saved up; an
/// action takes one token or is refused.
///
/// Kept as the instant the bucket will be full again (the "theoretical
/// arrival time" of GCRA), which is equivalent and needs no division:
/// every token taken pushes that instant one interval (`1 / rate`) later,
/// and the bucket holds a token while that instant is at most `burst - 1`
/// intervals away. 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// Nanoseconds per token: 10⁹ / rate.
    interval_nanos: u64,
    /// How far ahead `full_at` may be while a token remains:
    /// `(burst - 1) * interval_nanos`.
    tolerance_nanos: u64,
    /// When the bucket will hold `burst` tokens again, if nothing is taken;
    /// in the past (or now) when it is full.
    full_at: Instant,
}

impl TokenBucket {
    /// A full bucket. A `rate` or `burst` of 0 counts as 1 (so a bucket
    /// never refuses forever); [`GuardConfig::validate`] rejects them.
    ///
    /// [`GuardConfig::validate`]: super::GuardConfig::validate
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let interval_nanos = 1_000_000_000 / u64::from(rate.max(1));
        TokenBucket {
            interval_nanos,
            tolerance_nanos: interval_nanos * u64::from(burst.max(1) - 1),
            full_at: now,
        }
    }

    /// Takes a token if there is one; `false` (and nothing changes) if not.
    pub fn try_take(&mut self, now: Instant) -> bool {
        if self.ahead_nanos(now) > self.tolerance_nanos {
            return false;
        }
        self.full_at = self.full_at.max(now) + Duration::from_nanos(self.interval_nanos);
        true
    }

    /// How long until the next token: zero when one is there now.
    pub fn time_to_next(&self, now: Instant) -> Duration {
        Duration::from_nanos(self.ahead_nanos(now).saturating_sub(self.tolerance_nanos))
    }

    /// [`time_to_next`](TokenBucket::time_to_next) in whole seconds, rounded
    /// up and at least 1: the value of a `Retry-After` header.
    pub fn retry_after_secs(&self, now: Instant) -> u32 {
        let wait = self.time_to_next(now);
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        u32::try_from(secs).unwrap_or(u32::MAX).max(1)
    }

    /// Whether the bucket holds `burst` tokens, so forgetting it and
    /// starting a new one later changes nothing.
    pub fn is_full(&self, now: Instant) -> bool {
        self.full_at <= now
    }

    /// How far `full_at` lies after `now`, in nanoseconds.
    fn ahead_nanos(&self, now: Instant) -> u64 {
        let ahead = self.full_at.saturating_duration_since(now).as_nanos();
        u64::try_from(ahead).unwrap_or(u64::MAX)
    }
}

/// Open server-side connections per client IP. Memory: one `ConnId → IP`
/// entry (28 bytes) per counted connection and one `IP → count` entry (24
/// bytes) per IP with a connection open, plus the hash tables' slack (a
/// control byte each, at most 1/8 empty slots before growing, and up to
/// half empty after growing).
#[derive(Debug, Default)]
pub(crate) struct ConnectionsPerIp {
    ip_of: HashMap<ConnId, IpAddr>,
    open: HashMap<IpAddr, u32>,
}

impl ConnectionsPerIp {
    /// How many connections `ip` has open.
    pub fn open_from(&self, ip: IpAddr) -> u32 {
        self.open.get(&ip).copied().unwrap_or(0)
    }

    /// Counts a connection from `ip` that has no id yet (its upgrade is
    /// being accepted); [`bind`](Self::bind) gives it one, or
    /// [`release`](Self::release) takes it back.
    pub fn reserve(&mut self, ip: IpAddr) {
        *self.open.entry(ip).or_insert(0) += 1;
    }

    /// Gives a reserved connection from `ip` its id.
    pub fn bind(&mut self, id: ConnId, ip: IpAddr) {
        if let Some(old) = self.ip_of.insert(id, ip) {
            // already counted: the reservation was one too many
            self.release(old);
        }
    }

    /// Takes back a reservation from `ip`.
    pub fn release(&mut self, ip: IpAddr) {
        if let Some(count) = self.open.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                self.open.remove(&ip);
            }
        }
    }

    /// Stops counting `id`; forgets its IP when that was its last one.
    pub fn remove(&mut self, id: ConnId) {
        let Some(ip) = self.ip_of.remove(&id) else {
            return;
        };
        if let Some(count) = self.open.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                self.open.remove(&ip);
            }
        }
    }

    /// How many IPs have a connection open.
    pub fn ip_count(&self) -> usize {
        self.open.len()
    }
}

/// The most IPs the upgrade rate limit tracks at once. A bucket is forgotten once
/// it is full again (within a second of the IP's last upgrade, since the
/// burst equals the rate), so the table reaches this only when more IPs
/// upgrade within about a second; then a new IP is refused (503, as for a
/// full server) until a sweep frees room, while IPs already tracked keep
/// their own limit. Bounds the table to 131,072 slots of 57 bytes: 7.5 MiB.
pub const MAX_TRACKED_IPS: usize = 65_536;

/// The table size below which no sweep is worth it.
const MIN_SWEEP: usize = 1024;

/// Why an upgrade was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpgradeRefusal {
    /// The IP's bucket is empty: try again after this many seconds.
    TooFast {
        /// Seconds until the bucket has a token again, at least 1.
        retry_after_secs: u32,
    },
    /// The table is at [`MAX_TRACKED_IPS`] and this IP is not in it.
    TableFull,
}

/// Upgrades per second per client IP: a [`TokenBucket`] per IP whose burst
/// is the rate. Memory: one `IP → bucket` entry (56 bytes) per IP that
/// upgraded within about the last second, plus the table's slack; at most
/// [`MAX_TRACKED_IPS`] entries.
#[derive(Debug)]
pub(crate) struct UpgradesPerIp {
    rate: u32,
    buckets: HashMap<IpAddr, TokenBucket>,
    /// The size at which the next sweep of full buckets happens: twice the
    /// size left by the last one, so sweeps cost O(1) per upgrade.
    sweep_at: usize,
    /// When the table, at its cap, was last swept: at most one sweep a
    /// second then, so a flood of new IPs cannot make every upgrade pay one.
    capped_sweep: Option<Instant>,
}

impl UpgradesPerIp {
    /// A table for `rate` upgrades per second per IP.
    pub fn new(rate: u32) -> Self {
        UpgradesPerIp {
            rate,
            buckets: HashMap::new(),
            sweep_at: MIN_SWEEP,
            capped_sweep: None,
        }
    }

    /// Takes a token from `ip`'s bucket, or says why not.
    pub fn try_upgrade(&mut self, ip: IpAddr, now: Instant) -> Result<(), UpgradeRefusal> {
        if !self.buckets.contains_key(&ip) {
            self.make_room(now)?;
        }
        let rate = self.rate;
        let bucket = self
            .buckets
            .entry(ip)
            .or_insert_with(|| TokenBucket::new(rate, rate, now));
        if bucket.try_take(now) {
            Ok(())
        } else {
            Err(UpgradeRefusal::TooFast {
                retry_after_secs: bucket.retry_after_secs(now),
            })
        }
    }

    /// Sweeps before a new IP is added when the table has grown enough
    /// since the last sweep, or is at its cap; refuses when it stays full.
    fn make_room(&mut self, now: Instant) -> Result<(), UpgradeRefusal> {
        if self.buckets.len() >= MAX_TRACKED_IPS {
            let due = self
                .capped_sweep
                .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
            if due {
                self.capped_sweep = Some(now);
                self.sweep(now);
            }
            if self.buckets.len() >= MAX_TRACKED_IPS {
                return Err(UpgradeRefusal::TableFull);
            }
        } else if self.buckets.len() >= self.sweep_at {
            self.sweep(now);
        }
        Ok(())
    }

    /// Forgets every full bucket.
    fn sweep(&mut self, now: Instant) {
        self.buckets.retain(|_, bucket| !bucket.is_full(now));
        self.sweep_at = (self.buckets.len() * 2).max(MIN_SWEEP);
    }

    /// The IPs with a bucket.
    pub fn ips(&self) -> impl Iterator<Item = &IpAddr> {
        self.buckets.keys()
    }

    /// How many IPs have a bucket.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    fn conn(index: usize) -> ConnId {
        ConnId::new(index, 0)
    }

    #[test]
    fn a_new_bucket_allows_a_burst_then_refuses() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1, 5, t0);
        assert!((0..5).all(|_| bucket.try_take(t0)));
        assert!(!bucket.try_take(t0));
        assert!(!bucket.try_take(t0 + ms(999)));
    }

    #[test]
    fn an_empty_bucket_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10, 2, t0);
        assert!(bucket.try_take(t0) && bucket.try_take(t0));
        assert!(!bucket.try_take(t0 + ms(99)));
        assert!(bucket.try_take(t0 + ms(100)));
        assert!(!bucket.try_take(t0 + ms(100)));
        assert!(bucket.try_take(t0 + ms(300)) && bucket.try_take(t0 + ms(300)));
        assert!(!bucket.try_take(t0 + ms(300)));
    }

    #[test]
    fn a_quiet_bucket_saves_up_no_more_than_its_burst() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(100, 3, t0);
        let later = t0 + Duration::from_secs(3600);
        assert!(bucket.is_full(later));
        assert!((0..3).all(|_| bucket.try_take(later)));
        assert!(!bucket.try_take(later));
        assert!(!bucket.is_full(later));
    }

    #[test]
    fn the_retry_hint_is_the_time_to_the_next_token_rounded_up() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1, 1, t0);
        assert_eq!(bucket.time_to_next(t0), Duration::ZERO);
        assert!(bucket.try_take(t0));
        assert_eq!(bucket.time_to_next(t0 + ms(250)), ms(750));
        assert_eq!(bucket.retry_after_secs(t0 + ms(250)), 1);
        let mut slow = TokenBucket::new(1, 3, t0);
        assert!((0..3).all(|_| slow.try_take(t0)));
        assert_eq!(slow.retry_after_secs(t0), 1);
        assert!(!slow.try_take(t0));
        let mut fast = TokenBucket::new(1000, 1, t0);
        assert!(fast.try_take(t0));
        assert_eq!(fast.retry_after_secs(t0), 1, "never 0");
    }

    #[test]
    fn zero_rates_and_bursts_count_as_one() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(0, 0, t0);
        assert!(bucket.try_take(t0));
        assert!(!bucket.try_take(t0));
        assert!(bucket.try_take(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn the_documented_memory_costs_are_the_entry_sizes() {
        use std::mem::size_of;
        assert_eq!(size_of::<TokenBucket>(), 32);
        assert_eq!(size_of::<(ConnId, TokenBucket)>(), 40);
        assert_eq!(size_of::<(ConnId, IpAddr)>(), 28);
        assert_eq!(size_of::<(IpAddr, u32)>(), 24);
        assert_eq!(size_of::<(IpAddr, TokenBucket)>(), 56);
    }

    #[test]
    fn connections_are_counted_per_ip_and_ips_forgotten_at_zero() {
        let mut table = ConnectionsPerIp::default();
        for (id, from) in [(1, 1), (2, 1), (2, 1), (3, 2)] {
            table.reserve(ip(from));
            table.bind(conn(id), ip(from));
        }
        // conn 2 bound twice: counted once
        assert_eq!((table.open_from(ip(1)), table.open_from(ip(2))), (2, 1));
        table.reserve(ip(2));
        table.release(ip(2)); // a refused upgrade gives its place back
        assert_eq!(table.open_from(ip(2)), 1);
        table.remove(conn(1));
        table.remove(conn(1)); // no effect
        assert_eq!(table.open_from(ip(1)), 1);
        table.remove(conn(2));
        table.remove(conn(3));
        assert_eq!(table.open_from(ip(1)), 0);
        assert_eq!(table.ip_count(), 0);
    }

    #[test]
    fn upgrades_are_limited_per_ip_with_a_retry_hint() {
        let t0 = Instant::now();
        let mut table = UpgradesPerIp::new(2);
        assert_eq!(table.try_upgrade(ip(1), t0), Ok(()));
        assert_eq!(table.try_upgrade(ip(1), t0), Ok(()));
        assert_eq!(
            table.try_upgrade(ip(1), t0),
            Err(UpgradeRefusal::TooFast {
                retry_after_secs: 1
            })
        );
        assert_eq!(table.try_upgrade(ip(2), t0), Ok(()), "another IP");
        assert_eq!(table.try_upgrade(ip(1), t0 + ms(500)), Ok(()));
    }

    #[test]
    fn full_upgrade_buckets_are_swept_as_the_table_grows() {
        let t0 = Instant::now();
        let mut table = UpgradesPerIp::new(1);
        for n in 0..MIN_SWEEP as u32 {
            table.try_upgrade(ip(n), t0).unwrap();
        }
        assert_eq!(table.len(), MIN_SWEEP);
        let later = t0 + Duration::from_secs(1);
        table.try_upgrade(ip(u32::MAX), later).unwrap();
        assert_eq!(table.len(), 1, "the full buckets were forgotten");
    }

    #[test]
    fn a_full_table_refuses_new_ips_but_not_tracked_ones() {
        let t0 = Instant::now();
        let mut table = UpgradesPerIp::new(2);
        for n in 0..MAX_TRACKED_IPS as u32 {
            table.try_upgrade(ip(n), t0 + ms(1)).unwrap();
        }
        assert_eq!(table.len(), MAX_TRACKED_IPS);
        let new = ip(u32::MAX);
        assert_eq!(
            table.try_upgrade(new, t0 + ms(2)),
            Err(UpgradeRefusal::TableFull)
        );
        assert_eq!(table.try_upgrade(ip(7), t0 + ms(2)), Ok(()));
        let after = t0 + Duration::from_secs(2);
        assert_eq!(table.try_upgrade(new, after), Ok(()), "swept");
        assert!(table.len() < MAX_TRACKED_IPS);
    }
}
