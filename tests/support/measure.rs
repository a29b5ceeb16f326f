//! Measuring a process from /proc (Linux): its resident memory
//! (/proc/PID/status), its open descriptors (/proc/PID/fd), and waiting for
//! a condition with a deadline. The `pid` functions measure any process (a
//! server started by [`process`](super::process)); the others measure this
//! one, which is the server's own memory and descriptors when the server
//! runs in the test's process.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes in a MiB, for printing figures.
pub const MIB: f64 = (1 << 20) as f64;

/// Difference in MiB, signed.
pub fn mib_delta(after: u64, before: u64) -> f64 {
    (after as f64 - before as f64) / MIB
}

/// A `kB` field of /proc/PID/status (e.g. `"VmRSS:"`), in KiB; 0 when it
/// cannot be read.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The resident set size of process `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:") * 1024
}

/// This process's resident set size (the server's memory included when it
/// runs in this process).
pub fn rss() -> u64 {
    rss_bytes(std::process::id())
}

/// Open file descriptors of process `pid` (entries of /proc/PID/fd).
pub fn fd_count_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Open file descriptors of this process (the server's sockets included
/// when it runs in this process).
pub fn fd_count() -> usize {
    fd_count_of(std::process::id())
}

/// Polls `cond` every `every` until it holds or `limit` passes; how long it
/// took, `None` if it never held.
pub fn poll_every(
    every: Duration,
    limit: Duration,
    mut cond: impl FnMut() -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Polls `cond` every 20 ms until it holds or `limit` passes; how long it
/// took, `None` if it never held.
pub fn poll_until(limit: Duration, cond: impl FnMut() -> bool) -> Option<Duration> {
    poll_every(Duration::from_millis(20), limit, cond)
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, cond: impl FnMut() -> bool) -> bool {
    poll_every(Duration::from_millis(10), limit, cond).is_some()
}

/// Waits until this process's descriptor count is back to `baseline` (give
/// or take a couple); returns how long it took, `None` if it never came back.
pub fn fds_return_to(baseline: usize, limit: Duration) -> Option<Duration> {
    poll_every(Duration::from_millis(10), limit, || {
        fd_count() <= baseline + 2
    })
}

/// This process's RSS, sampled every 2 ms from a background thread, so that
/// a transient peak shows and not only what is left at the end.
pub struct RssWatch {
    start: u64,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RssWatch {
    /// Starts sampling; the RSS now is the start.
    pub fn start() -> RssWatch {
        let start = rss();
        let peak = Arc::new(AtomicU64::new(start));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                p.fetch_max(rss(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        RssWatch {
            start,
            peak,
            stop,
            thread: Some(thread),
        }
    }

    /// The highest RSS seen so far, in MiB above the start.
    pub fn peak(&self) -> f64 {
        let peak = self.peak.fetch_max(rss(), Ordering::SeqCst).max(rss());
        mib_delta(peak, self.start)
    }

    /// The RSS now, in MiB above the start.
    pub fn now(&self) -> f64 {
        mib_delta(rss(), self.start)
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
