//! The process's link to Redis, sans I/O: two connections' protocol
//! state, the subscriptions, the numbering of what goes out and the checks
//! on what comes in. The reactor owns the sockets (`reactor/bridge.rs`);
//! bytes and instants come in here, bytes and events go out.
//!
//! # Why two connections, and RESP2
//! A connection that has subscribed may only (un)subscribe and ping under
//! RESP2, so the publisher and the subscriber are two connections. RESP3
//! (Redis 6+) would let one connection do both, but then a flood of
//! incoming messages delays the replies to our publications behind it, and
//! Redis' `client-output-buffer-limit pubsub` disconnect, which hits the
//! subscribing connection, would also cut the publishing one. Two RESP2
//! connections keep the two directions apart, work with every Redis
//! version and every server speaking its protocol, and keep the codec to
//! RESP2's five types.
//!
//! # Bounds and policy
//! - A publication larger than `max_message` is not sent (counted in
//!   `oversize`); the caller delivers it locally only.
//! - The publisher's outgoing queue holds at most `queue_bytes` (an empty
//!   queue takes any one message). A publication that finds it full, or
//!   the publisher down, is dropped and counted in `lost_out`; its number
//!   is used all the same, so every subscriber elsewhere sees the gap and
//!   counts it too (`lost_in`). Queued and unanswered publications when
//!   the publisher's connection drops are counted in `lost_out` as well.
//! - Received messages are checked: a bad envelope, or a payload over
//!   `max_message`, is counted in `invalid` and dropped; our own (the instance id is ours) are
//!   skipped, since they were delivered here directly; duplicates are
//!   dropped; gaps are counted and reported with the next message.

mod input;
mod types;

pub use types::{Action, Bridged, Failure, LinkConfig, LinkEvent, LinkStats, Published, Role};

use super::backoff::Backoff;
use super::envelope::{self, Envelope, Kind};
use super::resp::{self, Limits};
use super::sequence::{Numbering, Received};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How long a connection may take to connect and answer its opening
/// commands before it is given up and tried again.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The most channels one SUBSCRIBE names when many are (re)subscribed.
const SUBSCRIBE_BATCH: usize = 256;

/// The largest reply accepted from Redis: a message as large as Redis'
/// own pub/sub output limit (32 MB) with room for the envelope.
const MAX_INPUT_BULK: usize = 33 << 20;

#[derive(Debug)]
enum State {
    Down { retry_at: Instant },
    Opening { deadline: Instant },
    Ready,
}

/// An opening command awaiting its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opening {
    Auth,
    Select,
    SetName,
}

/// One connection's protocol state and buffers.
#[derive(Debug)]
struct Side {
    state: State,
    /// Bytes for Redis; `out[sent..]` is still to write.
    out: Vec<u8>,
    sent: usize,
    /// Received bytes not yet a whole reply.
    input: Vec<u8>,
    opening: VecDeque<Opening>,
    /// Publisher: PUBLISH commands queued or sent, not yet answered.
    inflight: u64,
    backoff: Backoff,
    tried: bool,
    /// The current run of failures was logged.
    failure_logged: bool,
}

impl Side {
    fn new(now: Instant) -> Side {
        Side {
            state: State::Down { retry_at: now },
            out: Vec::new(),
            sent: 0,
            input: Vec::new(),
            opening: VecDeque::new(),
            inflight: 0,
            backoff: Backoff::default(),
            tried: false,
            failure_logged: false,
        }
    }

    /// Forgets what a previous connection left in the buffers.
    fn reset(&mut self) {
        self.out.clear();
        self.sent = 0;
        self.input.clear();
        self.opening.clear();
    }

    fn pending(&self) -> usize {
        self.out.len() - self.sent
    }
}

/// One subscribed key.
#[derive(Debug, Default)]
struct Subscription {
    /// Subscribers of it in the process (workers or topics count once each).
    refs: usize,
    received: Received,
}

/// The link: see the module docs.
#[derive(Debug)]
pub struct Link {
    config: LinkConfig,
    instance: u64,
    sides: [Side; 2],
    subscriptions: HashMap<String, Subscription>,
    numbering: Numbering,
    events: VecDeque<LinkEvent>,
    stats: LinkStats,
    up: bool,
    limits: Limits,
}

impl Link {
    /// A link for instance `instance` (random per process), which first
    /// connects at `now`.
    pub fn new(config: LinkConfig, instance: u64, now: Instant) -> Link {
        let limits = Limits {
            max_bulk: MAX_INPUT_BULK,
            ..Limits::default()
        };
        let subscriptions = config
            .permanent_keys
            .iter()
            .map(|key| {
                let subscription = Subscription {
                    refs: 1,
                    ..Subscription::default()
                };
                (key.clone(), subscription)
            })
            .collect();
        Link {
            config,
            instance,
            sides: [Side::new(now), Side::new(now)],
            subscriptions,
            numbering: Numbering::default(),
            events: VecDeque::new(),
            stats: LinkStats::default(),
            up: false,
            limits,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// This process' instance id.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// Whether both connections are open.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// The counters.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    /// The keys subscribed now.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.subscriptions.keys().map(String::as_str)
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// When [`poll_action`](Link::poll_action) has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sides
            .iter()
            .filter_map(|side| match side.state {
                State::Down { retry_at } => Some(retry_at),
                State::Opening { deadline } => Some(deadline),
                State::Ready => None,
            })
            .min()
    }

    /// What to do at `now`: a connection to open (its opening commands
    /// are queued) or to give up.
    pub fn poll_action(&mut self, now: Instant) -> Option<Action> {
        for role in Role::BOTH {
            match self.sides[role.index()].state {
                State::Down { retry_at } if retry_at <= now => {
                    self.start(role, now);
                    return Some(Action::Connect(role));
                }
                State::Opening { deadline } if deadline <= now => {
                    let failure = Failure::io("no answer within 10 s");
                    return Some(Action::Abort(role, failure));
                }
                _ => {}
            }
        }
        None
    }

    /// Queues the opening commands of `role`'s new connection.
    fn start(&mut self, role: Role, now: Instant) {
        let side = &mut self.sides[role.index()];
        if side.tried {
            self.stats.reconnects += 1;
        }
        side.tried = true;
        side.state = State::Opening {
            deadline: now + OPEN_TIMEOUT,
        };
        side.reset();
        let url = &self.config.url;
        if let Some(password) = &url.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &url.username {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            resp::encode_command(&mut side.out, &args);
            side.opening.push_back(Opening::Auth);
        }
        if url.db != 0 {
            // pub/sub ignores the database; selecting it still checks it
            let db = url.db.to_string();
            resp::encode_command(&mut side.out, &[b"SELECT", db.as_bytes()]);
            side.opening.push_back(Opening::Select);
        }
        let name = format!("edgews-{:016x}-{}", self.instance, role.name());
        resp::encode_command(&mut side.out, &[b"CLIENT", b"SETNAME", name.as_bytes()]);
        side.opening.push_back(Opening::SetName);
        if role == Role::Subscriber {
            let keys: Vec<String> = self.subscriptions.keys().cloned().collect();
            for batch in keys.chunks(SUBSCRIBE_BATCH) {
                self.send_subscription(b"SUBSCRIBE", batch);
            }
        }
    }

    /// Queues (UN)SUBSCRIBE for `keys` on the subscriber.
    fn send_subscription(&mut self, command: &[u8], keys: &[String]) {
        let channels: Vec<Vec<u8>> = keys
            .iter()
            .map(|key| [self.config.prefix.as_bytes(), key.as_bytes()].concat())
            .collect();
        let mut args: Vec<&[u8]> = vec![command];
        args.extend(channels.iter().map(Vec::as_slice));
        resp::encode_command(&mut self.sides[Role::Subscriber.index()].out, &args);
    }

    /// The bytes `role`'s connection should write now.
    pub fn pending_output(&self, role: Role) -> &[u8] {
        let side = &self.sides[role.index()];
        &side.out[side.sent..]
    }

    /// `n` bytes of [`pending_output`](Link::pending_output) were written.
    pub fn consume_output(&mut self, role: Role, n: usize) {
        let side = &mut self.sides[role.index()];
        side.sent = (side.sent + n).min(side.out.len());
        if side.sent == side.out.len() {
            side.out.clear();
            side.sent = 0;
        } else if side.sent > side.out.len() / 2 && side.sent > 64 << 10 {
            side.out.drain(..side.sent);
            side.sent = 0;
        }
    }

    /// Whether every publication queued so far was answered by Redis (or
    /// counted lost): what a shutdown waits for, so that the last events
    /// (a chat's leaves) reach the other instances.
    pub fn is_flushed(&self) -> bool {
        let side = &self.sides[Role::Publisher.index()];
        matches!(side.state, State::Down { .. }) || side.inflight == 0
    }

    /// Whether `role`'s connection is being opened or open.
    pub fn is_connecting_or_open(&self, role: Role) -> bool {
        !matches!(self.sides[role.index()].state, State::Down { .. })
    }

    /// `role`'s connection ended (refused, reset, closed, or dropped by the
    /// I/O layer after a [`Failure`]); it is tried again after a back-off.
    pub fn handle_disconnect(&mut self, role: Role, now: Instant, failure: Failure) {
        let side = &mut self.sides[role.index()];
        let was_ready = matches!(side.state, State::Ready);
        let delay = if failure.auth {
            side.backoff.fail_hard()
        } else {
            side.backoff.fail(rand::random::<f64>())
        };
        side.state = State::Down {
            retry_at: now + delay,
        };
        side.reset();
        // queued or unanswered publications: their fate is unknown
        self.stats.lost_out += std::mem::take(&mut side.inflight);
        let url = &self.config.url;
        let ms = delay.as_millis();
        if failure.auth && failure.reason.contains("NOPERM") {
            if !side.failure_logged {
                log::error!(
                    "redis: permission denied at {url} ({}): {}; check that the ACL user may use \
                     the channels under --redis-prefix; retrying every {} s",
                    role.name(),
                    failure.reason,
                    super::backoff::MAX_RETRY.as_secs()
                );
            }
        } else if failure.auth {
            if !side.failure_logged {
                log::error!(
                    "redis: authentication failed at {url} ({}): {}; check the password in \
                     --redis; retrying every {} s",
                    role.name(),
                    failure.reason,
                    super::backoff::MAX_RETRY.as_secs()
                );
            }
        } else if was_ready {
            log::warn!(
                "redis: connection lost ({}): {}; reconnecting in {ms} ms",
                role.name(),
                failure.reason
            );
        } else if !side.failure_logged {
            log::warn!(
                "redis: cannot connect to {url} ({}): {}; retrying in {ms} ms, backing off up \
                 to {} s",
                role.name(),
                failure.reason,
                super::backoff::MAX_RETRY.as_secs()
            );
        } else {
            log::debug!(
                "redis: {} still unreachable: {}",
                role.name(),
                failure.reason
            );
        }
        side.failure_logged = true;
        self.update_up();
    }

    fn update_up(&mut self) {
        let up = self
            .sides
            .iter()
            .all(|side| matches!(side.state, State::Ready));
        if up == self.up {
            return;
        }
        self.up = up;
        if up {
            log::info!(
                "redis: connected to {} (publisher and subscriber, {} channels)",
                self.config.url,
                self.subscriptions.len()
            );
            self.events.push_back(LinkEvent::Up);
        } else {
            self.events.push_back(LinkEvent::Down);
        }
    }

    /// Publishes `payload` on `key` to the other instances (see the module
    /// docs for the policy).
    pub fn publish(&mut self, key: &str, kind: Kind, payload: &[u8]) -> Published {
        if payload.len() > self.config.max_message {
            self.stats.oversize += 1;
            return Published::Oversize;
        }
        let seq = self.numbering.next(key);
        let channel_len = self.config.prefix.len() + key.len();
        let envelope_len = envelope::encoded_len(key.len(), payload.len());
        let side = &mut self.sides[Role::Publisher.index()];
        // without a publication in flight the queue takes any one (the
        // opening commands of a connection being made do not count)
        let full = side.inflight > 0
            && side.pending() + envelope_len + channel_len + 48 > self.config.queue_bytes;
        if matches!(side.state, State::Down { .. }) || full {
            self.stats.lost_out += 1;
            return Published::Lost;
        }
        let envelope = Envelope {
            instance: self.instance,
            seq,
            kind,
            topic: key,
            payload,
        };
        let out = &mut side.out;
        let mark = out.len();
        out.extend_from_slice(b"*3\r\n$7\r\nPUBLISH\r\n");
        push_bulk_header(out, channel_len);
        out.extend_from_slice(self.config.prefix.as_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\r\n");
        push_bulk_header(out, envelope_len);
        if envelope.encode(out).is_err() {
            // a key too long for the envelope (over 64 KiB): nothing sent
            out.truncate(mark);
            self.stats.oversize += 1;
            return Published::Oversize;
        }
        out.extend_from_slice(b"\r\n");
        side.inflight += 1;
        Published::Queued
    }

    /// One more subscriber of `key` in the process; the first subscribes
    /// the channel.
    pub fn subscribe(&mut self, key: &str) {
        let subscription = self.subscriptions.entry(key.to_string()).or_default();
        subscription.refs += 1;
        if subscription.refs == 1 && self.is_connecting_or_open(Role::Subscriber) {
            self.send_subscription(b"SUBSCRIBE", &[key.to_string()]);
        }
    }

    /// One subscriber of `key` fewer; the last unsubscribes the channel.
    pub fn unsubscribe(&mut self, key: &str) {
        let Some(subscription) = self.subscriptions.get_mut(key) else {
            return;
        };
        subscription.refs -= 1;
        if subscription.refs == 0 {
            self.subscriptions.remove(key);
            if self.is_connecting_or_open(Role::Subscriber) {
                self.send_subscription(b"UNSUBSCRIBE", &[key.to_string()]);
            }
        }
    }
}

fn push_bulk_header(out: &mut Vec<u8>, len: usize) {
    out.push(b'$');
    out.extend_from_slice(len.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
