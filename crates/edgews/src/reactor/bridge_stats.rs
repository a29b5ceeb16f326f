//! The Redis link's counters in [`Stats`], and their `/metrics` text.

use super::metrics::Stats;
use crate::redis::link::LinkStats;
use std::fmt::Write as _;

impl Stats {
    /// Copies the link's counters (on the worker holding it, where the
    /// link also counts the publications it kept local; other workers
    /// count theirs in `oversize` themselves).
    pub(crate) fn set_redis(&mut self, link: &LinkStats, up: bool) {
        self.redis.connected = u64::from(up);
        self.redis.link = link.clone();
    }

    /// The `edgews_redis_*` series, when the process has `--redis`.
    pub(crate) fn redis_prometheus(&self, out: &mut String) {
        let (r, enabled, connected) = (&self.redis.link, self.redis.enabled, self.redis.connected);
        if enabled == 0 {
            return;
        }
        let series: [(&str, &str, &str, u64); 10] = [
            (
                "connected",
                "gauge",
                "1 while both Redis connections (publisher, subscriber) are open.",
                connected,
            ),
            (
                "reconnects_total",
                "counter",
                "Redis connection attempts after the first one of each connection.",
                r.reconnects,
            ),
            (
                "published_total",
                "counter",
                "Publications Redis accepted.",
                r.published,
            ),
            (
                "received_total",
                "counter",
                "Messages from other instances accepted for delivery here.",
                r.received,
            ),
            (
                "lost_out_total",
                "counter",
                "Publications not sent to Redis (queue full, Redis down) or unanswered when the connection dropped.",
                r.lost_out,
            ),
            (
                "lost_in_total",
                "counter",
                "Messages from other instances that never came (gaps in their sequence numbers).",
                r.lost_in,
            ),
            (
                "oversize_total",
                "counter",
                "Publications over --redis-max-message, delivered on this instance only.",
                r.oversize,
            ),
            (
                "invalid_total",
                "counter",
                "Messages on our Redis channels that were no edgews envelope (dropped).",
                r.invalid,
            ),
            (
                "duplicates_total",
                "counter",
                "Messages from other instances seen before (dropped).",
                r.duplicates,
            ),
            (
                "own_total",
                "counter",
                "This instance's publications coming back through Redis (skipped: delivered here directly).",
                r.own,
            ),
        ];
        for (name, kind, help, value) in series {
            let _ = writeln!(
                out,
                "# HELP edgews_redis_{name} {help}\n# TYPE edgews_redis_{name} {kind}\nedgews_redis_{name} {value}"
            );
        }
    }
}
