//! `edgews load broadcast`: fixed-rate senders, every connection checks
//! that it receives every other sender's messages, once and in order.
//! Against `edgews broadcast` by default; with `--topic NAME` against
//! `edgews pubsub`: every connection subscribes to NAME and is ready once
//! pubsub acknowledges it, and the senders publish to NAME (see `wire.rs`).
//! With `--receiver-url`, the senders connect to one server instance and
//! the other connections to others (instances sharing their topics), and
//! the deliveries that crossed instances are measured apart.
//!
//! Files: `wire.rs` (the messages), `fanout.rs` (sequence checks, the
//! latency to the last subscriber), `summary.rs` (the report).

mod fanout;
mod summary;
mod wire;

use super::common::Common;
use super::report::{thousands, Latencies};
use super::{BroadcastArgs, Scenario};
use edgews::protocol::{Closed, Message};
use edgews::reactor::{ConnId, Context, Handler, OpenInfo};
use fanout::{LastDelivery, Sequence};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use wire::{Received, Stamp, Wire};

/// After sending stops, how long to wait for the last deliveries.
const DRAIN: Duration = Duration::from_secs(2);

/// With `--topic`, how long after the last connection opened pubsub may
/// take to acknowledge every subscription (a server that is not pubsub
/// never does).
const SUBSCRIBE_LIMIT: Duration = Duration::from_secs(10);

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
    /// Ready to receive: open, and with `--topic`, subscribed.
    ready: bool,
    /// Per sender index: messages received, those of them that repeated
    /// (or came late, after) an earlier sequence number, and the highest
    /// sequence number received.
    received: Vec<u64>,
    repeated: Vec<u64>,
    last: Vec<Option<u64>>,
}

/// The broadcast scenario.
pub struct BroadcastLoad {
    common: Common,
    senders: usize,
    /// The server's protocol, and the message being sent.
    wire: Wire,
    /// `--topic`, when the server is pubsub.
    topic: Option<String>,
    interval: Duration,
    duration: Duration,
    /// `--url` (the senders'), then the `--receiver-url`s.
    urls: Vec<String>,
    /// Per URL: whether it differs from the senders' (cross-instance).
    cross: Vec<bool>,
    /// Connections in the order they opened; the first `senders` send.
    order: Vec<ConnId>,
    inboxes: HashMap<ConnId, Inbox>,
    /// Connections ready to receive (see [`Inbox::ready`]).
    ready: usize,
    /// With `--topic`: when every connection had opened, while some
    /// subscriptions are not acknowledged yet.
    subscribing_since: Option<Instant>,
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
    /// Each message's latency to the last receiver to get it.
    last: LastDelivery,
    /// Deliveries to connections on another URL than the senders'.
    cross_deliveries: u64,
    cross_latencies: Latencies,
}

impl BroadcastLoad {
    pub fn new(args: &BroadcastArgs) -> Result<BroadcastLoad, String> {
        let size = usize::try_from(args.size).map_err(|_| "size too large")?;
        let wire = match &args.topic {
            Some(topic) => Wire::pubsub(topic, size)?,
            None => Wire::broadcast(size)?,
        };
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
            wire,
            topic: args.topic.clone(),
            interval: Duration::from_secs_f64(1.0 / args.rate as f64),
            duration: args.common.duration,
            order: Vec::new(),
            inboxes: HashMap::new(),
            ready: 0,
            subscribing_since: None,
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
            last: LastDelivery::new(args.senders),
            cross_deliveries: 0,
            cross_latencies: Latencies::default(),
        })
    }

    /// Sends every message due by `now`, round-robin over the senders.
    fn send_due(&mut self, ctx: &mut Context<'_>, now: Instant) {
        // every connection but the sender itself receives each message
        let receivers = self.order.len() - 1;
        while let Some(at) = self.next_send.filter(|&t| t <= now) {
            let s = self.next_sender;
            self.next_sender = (s + 1) % self.senders;
            let seq = self.sent[s];
            self.sent[s] += 1;
            let stamp = Stamp {
                sender: s as u32,
                seq,
                sent_ns: now.duration_since(self.start).as_nanos() as u64,
            };
            self.last.sent(s, seq, receivers);
            let (kind, message) = self.wire.encode(stamp);
            if let Err(e) = ctx.send(self.order[s], kind, message) {
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
        let opened = self.common.opener.done();
        match self.phase {
            Phase::Opening if opened && self.ready < self.order.len() => {
                let since = *self.subscribing_since.get_or_insert(now);
                if now >= since + SUBSCRIBE_LIMIT {
                    let waiting = self.order.len() - self.ready;
                    self.common.error(format!(
                        "{waiting} subscriptions not acknowledged within {SUBSCRIBE_LIMIT:?} \
                         (is the server edgews pubsub?)"
                    ));
                    self.phase = Phase::Done;
                    ctx.shutdown();
                }
            }
            Phase::Opening if opened && self.senders_open() => {
                self.phase = Phase::Sending(now + self.duration);
                self.send_start = Some(now);
                self.next_send = Some(now);
                log::debug!(
                    "{} connections {} to {} URLs: sending starts {:.3} s after launch",
                    self.order.len(),
                    if self.topic.is_some() {
                        "subscribed"
                    } else {
                        "open"
                    },
                    self.urls.len(),
                    now.duration_since(self.start).as_secs_f64()
                );
            }
            Phase::Opening if opened => {
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

    /// `id` is ready to receive.
    fn set_ready(&mut self, ctx: &mut Context<'_>, id: ConnId) {
        if let Some(inbox) = self.inboxes.get_mut(&id).filter(|i| !i.ready) {
            inbox.ready = true;
            self.ready += 1;
            let now = ctx.now();
            self.advance(ctx, now);
        }
    }

    /// Checks and counts one delivery to `id`.
    fn deliver(&mut self, id: ConnId, stamp: Stamp, now: Instant) {
        let sender = stamp.sender as usize;
        let Some(inbox) = self.inboxes.get_mut(&id).filter(|_| sender < self.senders) else {
            return self
                .common
                .error(format!("{id}: message from unknown sender {sender}"));
        };
        let first = match Sequence::of(stamp.seq, inbox.last[sender]) {
            Sequence::InOrder => {
                inbox.last[sender] = Some(stamp.seq);
                true
            }
            Sequence::Gap(skipped) => {
                self.out_of_order += 1;
                self.gaps += skipped;
                inbox.last[sender] = Some(stamp.seq);
                true
            }
            Sequence::Repeat => {
                self.out_of_order += 1;
                self.duplicates += 1;
                inbox.repeated[sender] += 1;
                false
            }
        };
        inbox.received[sender] += 1;
        self.deliveries += 1;
        let sent_at = self.start + Duration::from_nanos(stamp.sent_ns);
        let latency = now.saturating_duration_since(sent_at);
        self.latencies.record(latency);
        if first && self.order.get(sender) != Some(&id) {
            self.last.delivered(sender, stamp.seq, latency);
        }
        if self.cross[inbox.url] {
            self.cross_deliveries += 1;
            self.cross_latencies.record(latency);
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
            ready: false,
            received: vec![0; self.senders],
            repeated: vec![0; self.senders],
            last: vec![None; self.senders],
        };
        self.inboxes.insert(id, inbox);
        match self.wire.subscribe_message() {
            Some(subscribe) => {
                if let Err(e) = ctx.send_text(id, &subscribe) {
                    self.common.error(format!("{id}: subscribe: {e}"));
                }
                let now = ctx.now();
                self.advance(ctx, now);
            }
            None => self.set_ready(ctx, id),
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, message: Message<'_>) {
        match self.wire.decode(&message) {
            Received::Delivery(stamp) => self.deliver(id, stamp, ctx.now()),
            Received::Subscribed => self.set_ready(ctx, id),
            Received::Refused(error) => {
                self.common.error(format!("{id}: pubsub refused: {error}"));
                // not to wait for it: it will miss every message
                self.set_ready(ctx, id);
            }
            Received::Wrong(what) => self.common.error(format!("{id}: {what}")),
        }
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, id: ConnId, closed: &Closed) {
        self.common.closed(id, closed, self.phase == Phase::Done);
        if self.phase == Phase::Opening {
            self.set_ready(ctx, id); // not to wait for its subscription
        }
    }

    fn on_connect_error(&mut self, _ctx: &mut Context<'_>, id: ConnId, error: &str) {
        self.common.connect_failed(id, error);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let phase_end = match self.phase {
            Phase::Sending(t) | Phase::Draining(t) => Some(t),
            Phase::Opening => self.subscribing_since.map(|t| t + SUBSCRIBE_LIMIT),
            Phase::Done => None,
        };
        self.common.next_wakeup([phase_end, self.next_send])
    }

    fn on_timeout(&mut self, ctx: &mut Context<'_>, now: Instant) {
        self.common.opener.pump(ctx);
        self.advance(ctx, now);
        let (open, ready, deliveries, errors, phase) = (
            self.order.len(),
            self.ready,
            self.deliveries,
            self.common.errors,
            self.phase,
        );
        let subscribing = self.topic.is_some() && phase == Phase::Opening;
        self.common.progress.tick(now, || {
            format!(
                "[load broadcast] {}  open {open}{}  deliveries {}  errors {errors}",
                match phase {
                    Phase::Opening => "opening",
                    Phase::Sending(_) => "sending",
                    Phase::Draining(_) => "draining",
                    Phase::Done => "done",
                },
                if subscribing {
                    format!("  subscribed {ready}")
                } else {
                    String::new()
                },
                thousands(deliveries)
            )
        });
    }
}

impl Scenario for BroadcastLoad {
    fn finish(&mut self) -> Result<(), String> {
        self.common.progress.clear();
        self.report()
    }
}
