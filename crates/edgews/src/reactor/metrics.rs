//! Counters, kept on the reactor thread (plain integers, no locks), and
//! their Prometheus text rendering for `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The key under which [`Stats::closes_by_code`] counts every close code
/// in 3000-4999 (labelled `code="3000-4999"`).
pub const PRIVATE_CLOSE_CODES: u16 = 3000;

/// How many plain (unlabelled) counters [`Stats`] has.
pub(crate) const SCALARS: usize = 32;

/// `Stats::scalars` and `Stats::set_scalars` over one list of the plain
/// counters, so the two cannot disagree on the order.
macro_rules! plain_counters {
    ($($($field:ident).+),* $(,)?) => {
        /// The plain counters, in a fixed order (see `set_scalars`): what
        /// a worker publishes for the others' `/metrics` at every write.
        pub(crate) fn scalars(&self) -> [u64; SCALARS] {
            [$(self.$($field).+),*]
        }

        /// Sets the plain counters from `scalars`' order.
        pub(crate) fn set_scalars(&mut self, values: [u64; SCALARS]) {
            [$(self.$($field).+),*] = values;
        }
    };
}

/// What the reactor counted since it started.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// TCP connections accepted.
    pub accepted: u64,
    /// WebSocket connections opened.
    pub opened: u64,
    /// WebSocket connections closed (after opening).
    pub closed: u64,
    /// Handshakes refused, all statuses together.
    pub handshake_failures: u64,
    /// Handshakes refused, by HTTP status.
    pub handshake_failures_by_status: BTreeMap<u16, u64>,
    /// Closes by close code (1006 when no close frame arrived); 3000-4999
    /// together under [`PRIVATE_CLOSE_CODES`].
    pub closes_by_code: BTreeMap<u16, u64>,
    /// Messages received.
    pub messages_in: u64,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// Messages sent (a broadcast counts once per recipient).
    pub messages_out: u64,
    /// Payload bytes sent.
    pub bytes_out: u64,
    /// Messages (among `messages_out`) whose payload was written straight
    /// from the read buffer, without a copy: echoes and replies that quote
    /// a message that arrived whole.
    pub messages_out_zero_copy: u64,
    /// Receivers closed with 1008 for falling behind.
    pub slow_consumer_closes: u64,
    /// Connections closed by a timer (handshake, ping, close, linger).
    pub timer_closes: u64,
    /// Outbound connections that could not even start (bad URL, no route).
    pub connect_failures: u64,
    /// Connections accepted while out of file descriptors only to be
    /// answered 503 and closed at once (with the reserve descriptor).
    pub fd_exhaustion_refusals: u64,
    /// TLS connections ended by a TLS error (garbage, plain HTTP on the
    /// TLS port, a bad record, a failed handshake).
    pub tls_errors: u64,
    /// Successful reloads of the TLS certificate and key.
    pub tls_reloads: u64,
    /// Reloads that failed (the certificate in use stayed).
    pub tls_reload_failures: u64,
    /// Messages other workers relayed to this one (and this worker's own
    /// relays to itself: the chat server's room events).
    pub relays_in: u64,
    /// Relays this worker lost because its inbox was at its bound (their
    /// recipients were closed with 1013).
    pub relays_lost: u64,
    /// Connections another worker accepted and handed to this one, to
    /// even out the spread.
    pub adopted: u64,
    /// Turns of the event loop (each one `epoll_wait`).
    pub loop_turns: u64,
    /// Readiness events the loop handled (sockets, signals, wake-ups).
    pub loop_events: u64,
    /// The Redis link's counters (`--redis`; see `bridge_stats.rs`).
    pub redis: RedisStats,
}

/// The Redis link's counters, as `/metrics` shows them: set by the worker
/// holding the link, except `link.oversize`, which every worker counts for
/// the publications it kept local.
#[derive(Debug, Default, Clone)]
pub struct RedisStats {
    /// Workers with `--redis` (the block shows only when non-zero).
    pub enabled: u64,
    /// 1 while both Redis connections are open.
    pub connected: u64,
    /// The link's own counters.
    pub link: crate::redis::link::LinkStats,
}

impl Stats {
    /// Counts a refused handshake.
    pub(crate) fn record_handshake_failure(&mut self, status: u16) {
        self.handshake_failures += 1;
        *self.handshake_failures_by_status.entry(status).or_default() += 1;
    }

    /// Counts a closed connection. The codes a peer may pick itself
    /// (3000-4999, RFC 6455 §7.4.2) share one series, keyed
    /// [`PRIVATE_CLOSE_CODES`]: a label is never taken from what a client
    /// chose, so the metrics cannot grow with attacker input.
    pub(crate) fn record_close(&mut self, code: u16) {
        self.closed += 1;
        let key = if (3000..=4999).contains(&code) {
            PRIVATE_CLOSE_CODES
        } else {
            code
        };
        *self.closes_by_code.entry(key).or_default() += 1;
    }

    /// Counts a message sent.
    pub(crate) fn record_sent(&mut self, bytes: usize) {
        self.messages_out += 1;
        self.bytes_out += bytes as u64;
    }

    plain_counters!(
        accepted,
        opened,
        closed,
        handshake_failures,
        messages_in,
        bytes_in,
        messages_out,
        bytes_out,
        messages_out_zero_copy,
        slow_consumer_closes,
        timer_closes,
        connect_failures,
        fd_exhaustion_refusals,
        tls_errors,
        tls_reloads,
        tls_reload_failures,
        relays_in,
        relays_lost,
        adopted,
        loop_turns,
        loop_events,
        redis.enabled,
        redis.connected,
        redis.link.reconnects,
        redis.link.published,
        redis.link.received,
        redis.link.lost_out,
        redis.link.lost_in,
        redis.link.oversize,
        redis.link.invalid,
        redis.link.duplicates,
        redis.link.own,
    );

    /// Adds `other`'s counts to these (the workers of one process).
    pub fn add(&mut self, other: &Stats) {
        let mut mine = self.scalars();
        for (m, theirs) in mine.iter_mut().zip(other.scalars()) {
            *m += theirs;
        }
        self.set_scalars(mine);
        for (map, theirs) in [
            (
                &mut self.handshake_failures_by_status,
                &other.handshake_failures_by_status,
            ),
            (&mut self.closes_by_code, &other.closes_by_code),
        ] {
            for (key, count) in theirs {
                *map.entry(*key).or_default() += count;
            }
        }
    }

    /// Connections open now.
    pub fn open_connections(&self) -> u64 {
        self.opened.saturating_sub(self.closed)
    }

    /// The counters in the Prometheus text exposition format (0.0.4).
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "edgews_open_connections",
            "gauge",
            "WebSocket connections open now.",
            self.open_connections(),
        );
        metric(
            "edgews_accepted_total",
            "counter",
            "TCP connections accepted.",
            self.accepted,
        );
        metric(
            "edgews_opened_total",
            "counter",
            "WebSocket connections opened.",
            self.opened,
        );
        metric(
            "edgews_messages_in_total",
            "counter",
            "Messages received.",
            self.messages_in,
        );
        metric(
            "edgews_bytes_in_total",
            "counter",
            "Payload bytes received.",
            self.bytes_in,
        );
        metric(
            "edgews_messages_out_total",
            "counter",
            "Messages sent.",
            self.messages_out,
        );
        metric(
            "edgews_bytes_out_total",
            "counter",
            "Payload bytes sent.",
            self.bytes_out,
        );
        metric(
            "edgews_messages_out_zero_copy_total",
            "counter",
            "Messages sent from the read buffer without a copy.",
            self.messages_out_zero_copy,
        );
        metric(
            "edgews_tls_errors_total",
            "counter",
            "TLS connections ended by a TLS error.",
            self.tls_errors,
        );
        metric(
            "edgews_tls_reloads_total",
            "counter",
            "Successful reloads of the TLS certificate and key.",
            self.tls_reloads,
        );
        metric(
            "edgews_tls_reload_failures_total",
            "counter",
            "Failed reloads of the TLS certificate and key (the old one stayed).",
            self.tls_reload_failures,
        );
        metric(
            "edgews_slow_consumer_closes_total",
            "counter",
            "Receivers closed with 1008 for falling behind.",
            self.slow_consumer_closes,
        );
        metric(
            "edgews_timer_closes_total",
            "counter",
            "Connections closed by a timer (handshake, idle ping, close, linger).",
            self.timer_closes,
        );
        metric(
            "edgews_fd_exhaustion_refusals_total",
            "counter",
            "Connections refused with 503 because the process was out of file descriptors.",
            self.fd_exhaustion_refusals,
        );
        metric(
            "edgews_relays_in_total",
            "counter",
            "Messages delivered through a worker's inbox (relayed by another worker, or a chat room event).",
            self.relays_in,
        );
        metric(
            "edgews_relays_lost_total",
            "counter",
            "Relayed messages lost at a full worker inbox (their recipients were closed with 1013).",
            self.relays_lost,
        );
        metric(
            "edgews_connections_adopted_total",
            "counter",
            "Connections one worker accepted and handed to a less loaded one.",
            self.adopted,
        );
        metric(
            "edgews_loop_turns_total",
            "counter",
            "Turns of the event loops (one epoll_wait each).",
            self.loop_turns,
        );
        metric(
            "edgews_loop_events_total",
            "counter",
            "Readiness events the event loops handled.",
            self.loop_events,
        );
        metric(
            "edgews_deflate_memory_bytes",
            "gauge",
            "Bytes held by permessage-deflate's zlib streams (every compressor and decompressor).",
            crate::protocol::deflate::zlib::held_bytes() as u64,
        );
        self.redis_prometheus(&mut out);
        labelled(
            &mut out,
            "edgews_handshake_failures_total",
            "Handshakes refused, by HTTP status.",
            "status",
            &self.handshake_failures_by_status,
        );
        labelled(
            &mut out,
            "edgews_closes_total",
            "Connections closed, by close code.",
            "code",
            &self.closes_by_code,
        );
        out
    }
}

fn labelled(out: &mut String, name: &str, help: &str, label: &str, values: &BTreeMap<u16, u64>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (key, value) in values {
        if label == "code" && *key == PRIVATE_CLOSE_CODES {
            let _ = writeln!(out, "{name}{{{label}=\"3000-4999\"}} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{label}=\"{key}\"}} {value}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_every_counter_and_labels() {
        let mut s = Stats {
            opened: 3,
            ..Stats::default()
        };
        s.record_close(1000);
        s.record_close(1006);
        s.record_handshake_failure(403);
        s.record_sent(5);
        let text = s.to_prometheus();
        assert!(text.contains("edgews_open_connections 1\n"));
        assert!(text.contains("edgews_closes_total{code=\"1006\"} 1\n"));
        assert!(text.contains("edgews_handshake_failures_total{status=\"403\"} 1\n"));
        assert!(text.contains("edgews_bytes_out_total 5\n"));
        assert!(text.contains("# TYPE edgews_accepted_total counter\n"));
    }

    #[test]
    fn close_codes_peers_pick_share_one_series() {
        let mut s = Stats::default();
        for code in 3000..=4999 {
            s.record_close(code);
        }
        s.record_close(1000);
        assert_eq!(s.closes_by_code.len(), 2);
        let text = s.to_prometheus();
        assert!(
            text.contains("edgews_closes_total{code=\"3000-4999\"} 2000\n"),
            "{text}"
        );
        assert!(
            text.contains("edgews_closes_total{code=\"1000\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn workers_counters_add_up_labels_included() {
        let mut a = Stats {
            opened: 3,
            relays_in: 2,
            ..Stats::default()
        };
        a.record_close(1000);
        let mut b = Stats {
            opened: 4,
            adopted: 1,
            ..Stats::default()
        };
        b.record_close(1000);
        b.record_close(1001);
        b.record_handshake_failure(503);
        a.add(&b);
        assert_eq!((a.opened, a.closed, a.relays_in, a.adopted), (7, 3, 2, 1));
        assert_eq!(a.closes_by_code[&1000], 2);
        assert_eq!(a.closes_by_code[&1001], 1);
        assert_eq!(a.handshake_failures_by_status[&503], 1);
    }

    #[test]
    fn scalars_go_out_and_back_in_order() {
        let mut s = Stats::default();
        let values: [u64; SCALARS] = std::array::from_fn(|i| i as u64 + 1);
        s.set_scalars(values);
        assert_eq!(s.scalars(), values);
        assert_eq!((s.accepted, s.redis.link.own), (1, SCALARS as u64));
    }
}
