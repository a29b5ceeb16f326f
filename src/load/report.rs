//! Latency samples, the progress line, and number formatting.

use std::io::Write;
use std::time::{Duration, Instant};

/// Round-trip or fan-out latencies, in nanoseconds.
#[derive(Debug, Default)]
pub struct Latencies {
    samples: Vec<u64>,
}

impl Latencies {
    pub fn record(&mut self, d: Duration) {
        self.samples
            .push(d.as_nanos().min(u128::from(u64::MAX)) as u64);
    }

    /// The p-th percentile (0–100) in microseconds.
    pub fn percentile_us(&mut self, p: f64) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        self.samples.sort_unstable();
        let rank = ((p / 100.0) * (self.samples.len() - 1) as f64).round() as usize;
        self.samples[rank.min(self.samples.len() - 1)] as f64 / 1000.0
    }

    /// The 50th, 99th and 99.9th percentiles in microseconds.
    pub fn p50_p99_p999(&mut self) -> (f64, f64, f64) {
        (
            self.percentile_us(50.0),
            self.percentile_us(99.0),
            self.percentile_us(99.9),
        )
    }
}

/// A line on stderr, rewritten once a second.
#[derive(Debug)]
pub struct Progress {
    next: Instant,
}

impl Progress {
    pub fn new(now: Instant) -> Progress {
        Progress {
            next: now + Duration::from_secs(1),
        }
    }

    pub fn due(&self) -> Instant {
        self.next
    }

    /// Prints `line` if a second has passed since the last one.
    pub fn tick(&mut self, now: Instant, line: impl FnOnce() -> String) {
        if now >= self.next {
            self.next = now + Duration::from_secs(1);
            let mut err = std::io::stderr();
            let _ = write!(err, "\r\x1b[2K{}", line());
            let _ = err.flush();
        }
    }

    /// Ends the progress line.
    pub fn clear(&self) {
        eprint!("\r\x1b[2K");
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// VmRSS of a process, in bytes.
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_thousands() {
        let mut l = Latencies::default();
        for us in 1..=1000u64 {
            l.record(Duration::from_micros(us));
        }
        assert_eq!(l.percentile_us(50.0).round(), 501.0);
        assert_eq!(l.percentile_us(99.0).round(), 990.0);
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
    }
}
