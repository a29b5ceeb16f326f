//! `edgews load broadcast`: fixed-rate senders, every connection checks
//! that it receives every other sender's messages, once and in order.
//! With `--receiver-url`, the senders connect to one server instance and
//! the other connections to others (instances sharing their topics), and
//! the deliveries that crossed instances are measured apart.

use super::common::Common;
use super::report::{thousands, Latencies};
use super::{BroadcastArgs, Scenario};
use edgews::protocol::{Closed, Message};
use edgews::reactor::{ConnId, Context, Handler, OpenInfo};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// After sending stops, how long to wait for the last deliveries.
const DRAIN: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Opening,
    Sending(Instant),
    Draining(Instant),
    Done,
}

/// What one connection received from each sender.
#[derive(Debug, Default)]
struct Inbox {
    /// The URL it connected to (an index into `BroadcastLoad::urls`).
    url: usize,
    /// Per sender index: messages received, those of them that repeated
    /// (or came late, after) an earlier sequence number, and the highest
    /// sequence number received.
    received: Vec<u64>,
    repeated: Vec<u64>,
    last: Vec<Option<u64>>,
}

/// How one delivery's sequence number follows the last one received from
/// its sender on that connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sequence {
    /// The next one.
    InOrder,
    /// Ahead: this many messages were skipped.
    Gap(u64),
    /// At or behind the last one: a duplicate (or a late message).
    Repeat,
}

impl Sequence {
    fn of(seq: u64, last: Option<u64>) -> Sequence {
        let expected = last.map_or(0, |l| l + 1);
        match seq.cmp(&expected) {
            std::cmp::Ordering::Equal => Sequence::InOrder,
            std::cmp::Ordering::Greater => Sequence::Gap(seq - expected),
            std::cmp::Ordering::Less => Sequence::Repeat,
        }
    }
}

/// The broadcast scenario.
pub struct BroadcastLoad {
    common: Common,
    senders: usize,
    size: usize,
    interval: Duration,
    duration: Duration,
    /// `--url` (the senders'), then the `--receiver-url`s.
    urls: Vec<String>,
    /// Per URL: whether it differs from the senders' (cross-instance).
    cross: Vec<bool>,
    /// Connections in the order they opened; the first `senders` send.
    order: Vec<ConnId>,
    inboxes: HashMap<ConnId, Inbox>,
    sent: Vec<u64>,
    next_send: Option<Instant>,
    next_sender: usize,
    phase: Phase,
    start: Instant,
    send_start: Option<Instant>,
    deliveries: u64,
    /// Deliveries not in sequence (gaps and repeats alike).
    out_of_order: u64,
    /// Messages skipped over, and deliveries at or behind the last one.
    gaps: u64,
    duplicates: u64,
    latencies: Latencies,
    /// Deliveries to connections on another URL than the senders'.
    cross_deliveries: u64,
    cross_latencies: Latencies,
    scratch: Vec<u8>,
}

impl BroadcastLoad {
    pub fn new(args: &BroadcastArgs) -> Result<BroadcastLoad, String> {
        let size = usize::try_from(args.size).map_err(|_| "size too large")?;
        if size < 20 {
            return Err("--size must be at least 20 bytes (sender, sequence, timestamp)".into());
        }
        if args.senders == 0 || args.senders > args.common.connections || args.rate == 0 {
            return Err("need 1 <= --senders <= --connections and --rate >= 1".into());
        }
        let now = Instant::now();
        let urls: Vec<String> = std::iter::once(args.common.url.clone())
            .chain(args.receiver_url.iter().cloned())
            .collect();
        let common = if args.receiver_url.is_empty() {
            Common::new(&args.common, args.common.connections, now)
        } else {
            // the senders first, then the others round-robin over the
            // receiver URLs, one URL after the other
            let others = args.common.connections - args.senders;
            let n = args.receiver_url.len();
            let batches = std::iter::once((args.common.url.clone(), args.senders))
                .chain((0..n).map(|r| (args.receiver_url[r].clone(), (others + n - 1 - r) / n)))
                .collect();
            Common::to_urls(&args.common, batches, now)
        };
        Ok(BroadcastLoad {
            common,
            cross: urls.iter().map(|u| *u != urls[0]).collect(),
            urls,
            senders: args.senders,
            size,
            interval: Duration::from_secs_f64(1.0 / args.rate as f64),
            duration: args.common.duration,
            order: Vec::new(),
            inboxes: HashMap::new(),
            sent: vec![0; args.senders],
            next_send: None,
            next_sender: 0,
            phase: Phase::Opening,
            start: now,
            send_start: None,
            deliveries: 0,
            out_of_order: 0,
            gaps: 0,
            duplicates: 0,
            latencies: Latencies::default(),
            cross_deliveries: 0,
            cross_latencies: Latencies::default(),
            scratch: vec![0x42; size],
        })
    }

    /// Sends every message due by `now`, round-robin over the senders.
    fn send_due(&mut self, ctx: &mut Context<'_>, now: Instant) {
        while let Some(at) = self.next_send.filter(|&t| t <= now) {
            let s = self.next_sender;
            self.next_sender = (s + 1) % self.senders;
            let seq = self.sent[s];
            self.sent[s] += 1;
            let stamp = now.duration_since(self.start).as_nanos() as u64;
            self.scratch[..4].copy_from_slice(&(s as u32).to_le_bytes());
            self.scratch[4..12].copy_from_slice(&seq.to_le_bytes());
            self.scratch[12..20].copy_from_slice(&stamp.to_le_bytes());
            if let Err(e) = ctx.send_binary(self.order[s], &self.scratch) {
                self.common.error(format!("sender {s}: {e}"));
            }
            self.next_send = Some(at + self.interval);
        }
    }

    /// Whether the first `senders` connections opened to the senders' URL.
    fn senders_open(&self) -> bool {
        self.order.len() >= self.senders
            && self.order[..self.senders]
                .iter()
                .all(|id| self.inboxes.get(id).is_some_and(|i| i.url == 0))
    }

    fn advance(&mut self, ctx: &mut Context<'_>, now: Instant) {
        match self.phase {
            Phase::Opening if self.common.opener.done() && self.senders_open() => {
                self.phase = Phase::Sending(now + self.duration);
                self.send_start = Some(now);
                self.next_send = Some(now);
                log::debug!(
                    "{} connections open to {} URLs: sending starts {:.3} s after launch",
                    self.order.len(),
                    self.urls.len(),
                    now.duration_since(self.start).as_secs_f64()
                );
            }
            Phase::Opening if self.common.opener.done() => {
                self.common
                    .error("too few connections opened to send".into());
                self.phase = Phase::Done;
                ctx.shutdown();
            }
            Phase::Sending(until) if now >= until => {
                self.next_send = None;
                self.phase = Phase::Draining(now + DRAIN);
            }
            Phase::Sending(_) => self.send_due(ctx, now),
            Phase::Draining(until) if now >= until => {
                self.phase = Phase::Done;
                ctx.shutdown();
            }
            _ => {}
        }
    }
}

impl Handler for BroadcastLoad {
    fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId, _info: &OpenInfo<'_>) {
        let url = self.common.opener.batch();
        self.common.opener.on_open();
        self.order.push(id);
        let inbox = Inbox {
            url,
            received: vec![0; self.senders],
            repeated: vec![0; self.senders],
            last: vec![None; self.senders],
        };
        self.inboxes.insert(id, inbox);
        let now = ctx.now();
        self.advance(ctx, now);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, message: Message<'_>) {
        let data = message.as_bytes();
        if data.len() != self.size {
            return self.common.error(format!(
                "{id}: message of {} bytes, sent {}",
                data.len(),
                self.size
            ));
        }
        let field = |r: std::ops::Range<usize>| {
            let mut b = [0u8; 8];
            b[..r.len()].copy_from_slice(&data[r]);
            u64::from_le_bytes(b)
        };
        let (sender, seq, stamp) = (field(0..4) as usize, field(4..12), field(12..20));
        let now = ctx.now();
        let Some(inbox) = self.inboxes.get_mut(&id).filter(|_| sender < self.senders) else {
            return self
                .common
                .error(format!("{id}: message from unknown sender {sender}"));
        };
        match Sequence::of(seq, inbox.last[sender]) {
            Sequence::InOrder => inbox.last[sender] = Some(seq),
            Sequence::Gap(skipped) => {
                self.out_of_order += 1;
                self.gaps += skipped;
                inbox.last[sender] = Some(seq);
            }
            Sequence::Repeat => {
                self.out_of_order += 1;
                self.duplicates += 1;
                inbox.repeated[sender] += 1;
            }
        }
        inbox.received[sender] += 1;
        self.deliveries += 1;
        let sent_at = self.start + Duration::from_nanos(stamp);
        let latency = now.saturating_duration_since(sent_at);
        self.latencies.record(latency);
        if self.cross[inbox.url] {
            self.cross_deliveries += 1;
            self.cross_latencies.record(latency);
        }
    }

    fn on_close(&mut self, _ctx: &mut Context<'_>, id: ConnId, closed: &Closed) {
        self.common.closed(id, closed, self.phase == Phase::Done);
    }

    fn on_connect_error(&mut self, _ctx: &mut Context<'_>, id: ConnId, error: &str) {
        self.common.connect_failed(id, error);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let phase_end = match self.phase {
            Phase::Sending(t) | Phase::Draining(t) => Some(t),
            Phase::Opening | Phase::Done => None,
        };
        self.common.next_wakeup([phase_end, self.next_send])
    }

    fn on_timeout(&mut self, ctx: &mut Context<'_>, now: Instant) {
        self.common.opener.pump(ctx);
        self.advance(ctx, now);
        let (open, deliveries, errors, phase) = (
            self.order.len(),
            self.deliveries,
            self.common.errors,
            self.phase,
        );
        self.common.progress.tick(now, || {
            format!(
                "[load broadcast] {}  open {open}  deliveries {}  errors {errors}",
                match phase {
                    Phase::Opening => "opening",
                    Phase::Sending(_) => "sending",
                    Phase::Draining(_) => "draining",
                    Phase::Done => "done",
                },
                thousands(deliveries)
            )
        });
    }
}

impl Scenario for BroadcastLoad {
    fn finish(&mut self) -> Result<(), String> {
        self.common.progress.clear();
        // every connection but the sender itself should have received each
        // message once: what it never got, after the drain, is missing
        let (mut missing, mut expected) = (0u64, 0u64);
        for (s, &count) in self.sent.iter().enumerate() {
            let sender = self.order.get(s).copied();
            for (id, inbox) in &self.inboxes {
                if Some(*id) != sender {
                    let distinct = inbox.received[s] - inbox.repeated[s];
                    missing += count.saturating_sub(distinct);
                    expected += count;
                }
            }
        }
        let secs = self.duration.as_secs_f64();
        let rate = self.deliveries as f64 / secs;
        let (p50, p99, p999) = self.latencies.p50_p99_p999();
        let sent: u64 = self.sent.iter().sum();
        println!(
            "broadcast: {} connections, {} senders, {} B, {secs:.1} s: sent {}, {} deliveries/s; \
             fan-out latency p50 {p50:.0} us, p99 {p99:.0} us, p99.9 {p999:.0} us; missing {missing}, \
             out of order {}, errors {}",
            self.order.len(),
            self.senders,
            self.size,
            thousands(sent),
            thousands(rate as u64),
            self.out_of_order,
            self.common.errors
        );
        println!(
            "broadcast sequence: {} of {} expected deliveries missing; gaps {} (messages skipped), \
             duplicates {} (repeated or late)",
            thousands(missing),
            thousands(expected),
            thousands(self.gaps),
            thousands(self.duplicates)
        );
        let split = self.urls.len() > 1;
        let (c50, c90, c99, cmax) = (
            self.cross_latencies.percentile_us(50.0),
            self.cross_latencies.percentile_us(90.0),
            self.cross_latencies.percentile_us(99.0),
            self.cross_latencies.percentile_us(100.0),
        );
        let cross_rate = self.cross_deliveries as f64 / secs;
        if split {
            let mut per_url = vec![0usize; self.urls.len()];
            for inbox in self.inboxes.values() {
                per_url[inbox.url] += 1;
            }
            let receivers: Vec<String> = self.urls[1..]
                .iter()
                .zip(&per_url[1..])
                .map(|(url, n)| format!("{n} on {url}"))
                .collect();
            println!(
                "broadcast receivers: {} senders' instance {}; {}",
                per_url[0],
                self.urls[0],
                receivers.join(", ")
            );
            println!(
                "broadcast cross-instance: {} deliveries, {} deliveries/s; cross-instance latency \
                 p50 {c50:.0} us, p90 {c90:.0} us, p99 {c99:.0} us, max {cmax:.0} us",
                thousands(self.cross_deliveries),
                thousands(cross_rate as u64)
            );
        }
        let cross_json = if split {
            format!(
                ",\"receiver_urls\":{},\"cross_deliveries\":{},\"cross_deliveries_per_s\":{cross_rate:.0},\
                 \"cross_p50_us\":{c50:.1},\"cross_p90_us\":{c90:.1},\"cross_p99_us\":{c99:.1},\
                 \"cross_max_us\":{cmax:.1}",
                self.urls.len() - 1,
                self.cross_deliveries
            )
        } else {
            String::new()
        };
        println!(
            "{{\"mode\":\"broadcast\",\"connections\":{},\"senders\":{},\"size\":{},\"sent\":{sent},\
             \"deliveries\":{},\"deliveries_per_s\":{rate:.0},\"p50_us\":{p50:.1},\"p99_us\":{p99:.1},\
             \"p999_us\":{p999:.1},\"missing\":{missing},\"out_of_order\":{},\"gaps\":{},\
             \"duplicates\":{},\"errors\":{}{cross_json}}}",
            self.order.len(),
            self.senders,
            self.size,
            self.deliveries,
            self.out_of_order,
            self.gaps,
            self.duplicates,
            self.common.errors
        );
        self.common.check()?;
        if missing > 0 || self.out_of_order > 0 {
            return Err(format!(
                "{missing} missing, {} gaps, {} duplicates ({} out-of-order deliveries)",
                self.gaps, self.duplicates, self.out_of_order
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Sequence;

    #[test]
    fn sequence_numbers_in_order_ahead_and_behind() {
        assert_eq!(Sequence::of(0, None), Sequence::InOrder);
        assert_eq!(Sequence::of(3, None), Sequence::Gap(3));
        assert_eq!(Sequence::of(5, Some(4)), Sequence::InOrder);
        assert_eq!(Sequence::of(8, Some(4)), Sequence::Gap(3));
        assert_eq!(Sequence::of(4, Some(4)), Sequence::Repeat);
        assert_eq!(Sequence::of(1, Some(4)), Sequence::Repeat);
    }
}
