//! The engine's configuration: [`ProtocolConfig`] holds the per-connection
//! limits and timeouts [`Connection`](crate::Connection) enforces, with a
//! `Default` chosen for a public server and a `validate()` that reports
//! nonsense (and values past the `MAX_*` bounds) instead of panicking later.

use crate::deflate::DeflateConfig;
use crate::handshake::OriginPolicy;
use std::fmt;
use std::time::Duration;

/// Limits and timeouts of one WebSocket connection, shared by all
/// connections of a server (behind an `Arc`).
#[derive(Debug, Clone)]
pub struct ProtocolConfig {
    /// Largest frame payload accepted, in bytes. Default 16 MiB. Checked
    /// against the frame header before any payload is buffered (§10.4);
    /// over it the connection is closed with 1009. A compressed frame
    /// (permessage-deflate) is inflated as it arrives and never buffered,
    /// so its inflated size counts against `max_message_size` instead.
    pub max_frame_size: u64,
    /// Largest message accepted (all fragments together), in bytes.
    /// Default 64 MiB; over it the connection is closed with 1009.
    pub max_message_size: u64,
    /// Most frames one message may be split into, empty ones included
    /// (1009 past it). Default [`MAX_FRAGMENTS_LIMIT`]: fragments are
    /// appended into one buffer bounded by `max_message_size`, and a
    /// fragment costs the reader what a small message costs, so a lower
    /// cap buys no safety; it is there for applications that want one.
    pub max_fragments: u32,
    /// Largest opening handshake head, in bytes. Default 8 KiB (431 past it).
    pub max_head_size: usize,
    /// Most headers in the opening handshake. Default 64 (431 past it).
    pub max_headers: usize,
    /// How long a client has to complete its opening handshake. Default
    /// 10 s; a slowloris client is dropped after it (with a 408 response).
    pub handshake_timeout: Duration,
    /// Silence after which the server sends a ping. Default 30 s; `None`
    /// disables keep-alive pings (and with them the pong timeout).
    pub ping_interval: Option<Duration>,
    /// How long to wait for any sign of life after a keep-alive ping before
    /// failing the connection with 1011. Default 30 s.
    pub pong_timeout: Duration,
    /// How long to wait for the peer's close frame after sending ours
    /// before dropping the TCP connection. Default 5 s.
    pub close_timeout: Duration,
    /// Subprotocols the server speaks, in order of preference. Default none.
    pub subprotocols: Vec<String>,
    /// Which `Origin`s may open a connection. Default [`OriginPolicy::SameHost`].
    pub origin: OriginPolicy,
    /// `Host` values the server answers to (every request, upgrade or
    /// plain HTTP); others get 403. Empty (the default) accepts any. An
    /// entry without a port matches that host on any port. Against DNS
    /// rebinding of a server that listens on loopback without
    /// authentication (a page on `evil.example` that resolves to
    /// 127.0.0.1 sends `Host: evil.example`).
    pub allowed_hosts: Vec<String>,
    /// permessage-deflate (RFC 7692). A server with `Some` accepts a
    /// client's offer; a client with `Some` makes one. Default `None`:
    /// compression costs CPU and, with context takeover, memory per
    /// connection, so a server turns it on knowingly.
    pub deflate: Option<DeflateConfig>,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        ProtocolConfig {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            max_fragments: MAX_FRAGMENTS_LIMIT,
            max_head_size: 8 << 10,
            max_headers: 64,
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Some(Duration::from_secs(30)),
            pong_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(5),
            subprotocols: Vec::new(),
            origin: OriginPolicy::SameHost,
            allowed_hosts: Vec::new(),
            deflate: None,
        }
    }
}

/// The longest any configured duration may be: one day. Longer values
/// are mistakes, and unbounded ones overflow `Instant` arithmetic.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// The largest message or frame limit: 1 GiB.
pub const MAX_MESSAGE_LIMIT: u64 = 1 << 30;

/// The most fragments a message may be allowed: 2^24.
pub const MAX_FRAGMENTS_LIMIT: u32 = 1 << 24;

/// The largest handshake head limit: 128 KiB (half the reactor's read buffer).
pub const MAX_HEAD_LIMIT: usize = 128 << 10;

/// The most headers a handshake may be allowed.
pub const MAX_HEADERS_LIMIT: usize = 1024;

/// An error unless `value` is at most [`MAX_DURATION`]; `what` says which.
pub fn check_duration(value: Duration, what: &'static str) -> Result<(), ConfigError> {
    if value > MAX_DURATION {
        return Err(ConfigError(what));
    }
    Ok(())
}

impl ProtocolConfig {
    /// Checks that the values make sense together and lie within their
    /// upper bounds (the `MAX_*` constants of this module).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_frame_size == 0 || self.max_message_size == 0 {
            return Err(ConfigError("max frame and message sizes must be positive"));
        }
        if self.max_frame_size > self.max_message_size {
            return Err(ConfigError(
                "max_frame_size must not exceed max_message_size",
            ));
        }
        if self.max_fragments == 0 {
            return Err(ConfigError("max_fragments must be at least 1"));
        }
        if self.max_head_size < 64 || self.max_headers < 4 {
            return Err(ConfigError(
                "the head limits are too small for any handshake",
            ));
        }
        let zero = Duration::ZERO;
        if self.handshake_timeout == zero || self.pong_timeout == zero || self.close_timeout == zero
        {
            return Err(ConfigError("timeouts must be positive"));
        }
        if self.ping_interval == Some(zero) {
            return Err(ConfigError("ping_interval must be positive (or None)"));
        }
        if self.max_message_size > MAX_MESSAGE_LIMIT {
            return Err(ConfigError("max_message_size must be at most 1 GiB"));
        }
        if self.max_fragments > MAX_FRAGMENTS_LIMIT {
            return Err(ConfigError("max_fragments must be at most 16777216"));
        }
        if self.max_head_size > MAX_HEAD_LIMIT || self.max_headers > MAX_HEADERS_LIMIT {
            return Err(ConfigError(
                "the head limits must be at most 128 KiB and 1024 headers",
            ));
        }
        check_duration(
            self.handshake_timeout,
            "handshake_timeout must be at most 24 h",
        )?;
        check_duration(self.pong_timeout, "pong_timeout must be at most 24 h")?;
        check_duration(self.close_timeout, "close_timeout must be at most 24 h")?;
        check_duration(
            self.ping_interval.unwrap_or_default(),
            "ping_interval must be at most 24 h",
        )?;
        if self.allowed_hosts.iter().any(|h| h.trim().is_empty()) {
            return Err(ConfigError("allowed hosts must not be empty"));
        }
        if let Some(deflate) = &self.deflate {
            deflate.validate()?;
        }
        Ok(())
    }
}

/// A configuration value that cannot work, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub &'static str);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ConfigError {}
