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

use super::backoff::Backoff;
use super::envelope::{self, Envelope, Kind};
use super::resp::{self, Limits, Value};
use super::sequence::{Numbering, Received, Verdict};
use super::url::RedisUrl;
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

/// What the link is configured with.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// The server, its credentials and database.
    pub url: RedisUrl,
    /// Put before every key to make the Redis channel name (default
    /// `edgews:`), so that several deployments can share one server.
    pub prefix: String,
    /// The largest payload sent to Redis (default 1 MiB); larger ones stay
    /// local. Redis disconnects a subscriber whose output buffer passes
    /// 32 MB, so this must stay well below that.
    pub max_message: usize,
    /// The bound of the publisher's outgoing queue in bytes (default
    /// 8 MiB).
    pub queue_bytes: usize,
    /// Keys subscribed for the whole life of the link, whoever listens:
    /// the broadcast server's [`BROADCAST_KEY`](crate::reactor::BROADCAST_KEY).
    pub permanent_keys: Vec<String>,
}

impl LinkConfig {
    /// The configuration for `url` with the defaults.
    pub fn new(url: RedisUrl) -> LinkConfig {
        LinkConfig {
            url,
            prefix: "edgews:".into(),
            max_message: 1 << 20,
            queue_bytes: 8 << 20,
            permanent_keys: Vec::new(),
        }
    }

    /// Checks the bounds against each other.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_message == 0 || self.max_message > 16 << 20 {
            return Err(
                "--redis-max-message must be 1 B to 16 MiB (Redis cuts subscribers \
                        at 32 MB of output)"
                    .into(),
            );
        }
        if self.queue_bytes < self.max_message {
            return Err("--redis-queue must be at least --redis-max-message".into());
        }
        Ok(())
    }
}

/// One of the link's two connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends PUBLISH commands.
    Publisher,
    /// Subscribes and receives messages.
    Subscriber,
}

impl Role {
    /// Both, in a fixed order.
    pub const BOTH: [Role; 2] = [Role::Publisher, Role::Subscriber];

    /// 0 for the publisher, 1 for the subscriber.
    pub fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            Role::Publisher => "publisher",
            Role::Subscriber => "subscriber",
        }
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What happened, for the log.
    pub reason: String,
    /// Redis refused the credentials (or wants some): only an operator can
    /// fix it, so the next attempt waits the longest delay.
    pub auth: bool,
}

impl Failure {
    /// A failure that a retry may cure (a refused connection, a reset).
    pub fn io(reason: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
            auth: false,
        }
    }
}

/// What the I/O layer must do now for the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open this connection (its opening commands are queued).
    Connect(Role),
    /// Drop this connection: it took too long to open.
    Abort(Role, Failure),
}

/// A message from another instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridged {
    /// The key it was published on (the channel without the prefix).
    pub key: String,
    /// Text, binary or a chat event.
    pub kind: Kind,
    /// The message; valid UTF-8 unless `kind` is binary.
    pub payload: Vec<u8>,
    /// The instance that published it.
    pub instance: u64,
    /// Messages from that instance on this key that never came before
    /// this one (already counted in `lost_in`).
    pub missing: u64,
}

/// What the link tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A message to deliver here.
    Message(Bridged),
    /// Redis confirmed the subscription to this key (again, after a
    /// reconnection): a chat room asks the others for their members.
    Subscribed(String),
    /// Both connections are open: cross-instance delivery works.
    Up,
    /// One connection dropped: messages may be lost until it is back.
    Down,
}

/// What happened to a publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Queued toward Redis.
    Queued,
    /// Larger than `max_message`: deliver it locally only.
    Oversize,
    /// Not sent (queue full or Redis down); counted.
    Lost,
}

/// The link's counters (`edgews_redis_*` in `/metrics`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LinkStats {
    /// Connection attempts after the first one of each connection.
    pub reconnects: u64,
    /// Publications Redis accepted.
    pub published: u64,
    /// Messages from other instances accepted for delivery here.
    pub received: u64,
    /// Publications not sent, or sent but unanswered when the connection
    /// dropped.
    pub lost_out: u64,
    /// Messages from other instances that never came (sequence gaps).
    pub lost_in: u64,
    /// Publications kept local for their size.
    pub oversize: u64,
    /// Received messages that were no envelope of ours (dropped).
    pub invalid: u64,
    /// Received messages seen before (dropped).
    pub duplicates: u64,
    /// Our own messages coming back (skipped: delivered here directly).
    pub own: u64,
}

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
        side.out.clear();
        side.sent = 0;
        side.input.clear();
        side.opening.clear();
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
        side.out.clear();
        side.sent = 0;
        side.input.clear();
        side.opening.clear();
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

    /// Bytes read from `role`'s connection. An `Err` means the connection
    /// is unusable (a protocol error, refused credentials): drop it and
    /// call [`handle_disconnect`](Link::handle_disconnect).
    pub fn handle_input(&mut self, role: Role, bytes: &[u8]) -> Result<(), Failure> {
        let side = &mut self.sides[role.index()];
        if matches!(side.state, State::Down { .. }) {
            return Ok(());
        }
        side.input.extend_from_slice(bytes);
        let mut input = std::mem::take(&mut side.input);
        let mut start = 0;
        let result = loop {
            match resp::decode(&input[start..], &self.limits) {
                Ok(Some((value, used))) => {
                    start += used;
                    if let Err(failure) = self.handle_value(role, value) {
                        break Err(failure);
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(Failure::io(format!("bad reply from Redis: {e}"))),
            }
        };
        input.drain(..start);
        let side = &mut self.sides[role.index()];
        if !matches!(side.state, State::Down { .. }) {
            side.input = input;
        }
        result
    }

    /// One reply or push from `role`'s connection.
    fn handle_value(&mut self, role: Role, value: Value) -> Result<(), Failure> {
        let side = &mut self.sides[role.index()];
        if let Some(opening) = side.opening.front().copied() {
            if matches!(value, Value::Array(_)) && role == Role::Subscriber {
                return Err(Failure::io("unexpected push before the opening replies"));
            }
            side.opening.pop_front();
            if let Value::Error(e) = &value {
                let text = String::from_utf8_lossy(e).into_owned();
                let auth = opening == Opening::Auth
                    || text.starts_with("NOAUTH")
                    || text.starts_with("WRONGPASS");
                if auth || opening == Opening::Select {
                    return Err(Failure { reason: text, auth });
                }
                // CLIENT SETNAME refused (a proxy may not know it): harmless
                log::debug!("redis: CLIENT SETNAME refused: {text}");
            }
            if side.opening.is_empty() {
                side.state = State::Ready;
                side.backoff.succeed();
                side.failure_logged = false;
                self.update_up();
            }
            return Ok(());
        }
        match role {
            Role::Publisher => {
                side.inflight = side.inflight.saturating_sub(1);
                match value {
                    Value::Integer(_) => self.stats.published += 1,
                    Value::Error(e) => {
                        self.stats.lost_out += 1;
                        // once per connection: a refusal (an ACL, an
                        // out-of-memory Redis) tends to repeat for each
                        if !side.failure_logged {
                            side.failure_logged = true;
                            log::warn!(
                                "redis: PUBLISH refused: {}; refused publications are counted in \
                                 edgews_redis_lost_out_total",
                                String::from_utf8_lossy(&e)
                            );
                        }
                    }
                    _ => return Err(Failure::io("unexpected reply to PUBLISH")),
                }
                Ok(())
            }
            Role::Subscriber => self.handle_push(value),
        }
    }

    /// A push on the subscriber: a message or a (un)subscription.
    fn handle_push(&mut self, value: Value) -> Result<(), Failure> {
        let items = match value {
            Value::Array(Some(items)) => items,
            Value::Error(e) => {
                let text = String::from_utf8_lossy(&e).into_owned();
                // NOPERM: the ACL user may not use our channels, which only
                // an operator can change: retried at the slow pace
                return Err(Failure {
                    auth: text.starts_with("NOPERM") || text.starts_with("NOAUTH"),
                    reason: format!("Redis refused a subscription: {text}"),
                });
            }
            _ => return Err(Failure::io("unexpected reply on the subscriber")),
        };
        let mut items = items.into_iter();
        let (Some(kind), Some(channel)) = (items.next(), items.next()) else {
            return Err(Failure::io("short push on the subscriber"));
        };
        let key = channel
            .as_bytes()
            .and_then(|c| c.strip_prefix(self.config.prefix.as_bytes()))
            .and_then(|k| std::str::from_utf8(k).ok())
            .map(str::to_string);
        match (kind.as_bytes(), key) {
            (Some(b"message"), Some(key)) => {
                if let Some(Value::Bulk(Some(payload))) = items.next() {
                    self.handle_message(key, &payload);
                }
            }
            (Some(b"subscribe"), Some(key)) if self.subscriptions.contains_key(&key) => {
                self.events.push_back(LinkEvent::Subscribed(key));
            }
            _ => {}
        }
        Ok(())
    }

    /// A message on `key`: checked, numbered, and handed on.
    fn handle_message(&mut self, key: String, bytes: &[u8]) {
        let Some(subscription) = self.subscriptions.get_mut(&key) else {
            return; // unsubscribed meanwhile: nobody here wants it
        };
        let envelope = match Envelope::decode(bytes) {
            // over our own bound: another instance configured otherwise, or
            // a forged message (configure one --redis-max-message for all)
            Ok(e) if e.topic == key && e.payload.len() <= self.config.max_message => e,
            _ => {
                self.stats.invalid += 1;
                return;
            }
        };
        if envelope.instance == self.instance {
            self.stats.own += 1;
            return;
        }
        let missing = match subscription.received.check(envelope.instance, envelope.seq) {
            Verdict::InOrder | Verdict::Restart => 0,
            Verdict::Gap { missing } => missing,
            Verdict::Duplicate => {
                self.stats.duplicates += 1;
                return;
            }
        };
        self.stats.lost_in += missing;
        self.stats.received += 1;
        self.events.push_back(LinkEvent::Message(Bridged {
            key,
            kind: envelope.kind,
            payload: envelope.payload.to_vec(),
            instance: envelope.instance,
            missing,
        }));
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
