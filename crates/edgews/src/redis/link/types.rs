//! The link's public types: its configuration, what it reports, and what
//! it asks of the I/O layer.

use super::super::envelope::Kind;
use super::super::url::RedisUrl;

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

    pub(super) fn name(self) -> &'static str {
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
