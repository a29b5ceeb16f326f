//! Configuration: [`ProtocolConfig`] holds the per-connection limits and
//! timeouts the engine enforces; [`ServerConfig`] wraps it with what the
//! reactor needs. Both have `Default`s chosen for a public server and a
//! `validate()` that reports nonsense instead of panicking later.

use crate::protocol::OriginPolicy;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Limits and timeouts of one WebSocket connection, shared by all
/// connections of a server (behind an `Arc`).
#[derive(Debug, Clone)]
pub struct ProtocolConfig {
    /// Largest frame payload accepted, in bytes. Default 16 MiB. Checked
    /// against the frame header before any payload is buffered (§10.4);
    /// over it the connection is closed with 1009.
    pub max_frame_size: u64,
    /// Largest message accepted (all fragments together), in bytes.
    /// Default 64 MiB; over it the connection is closed with 1009.
    pub max_message_size: u64,
    /// Most frames one message may be split into, empty ones included.
    /// Default 1,024: a flood of tiny fragments costs a constant per
    /// fragment, and this bounds how many there can be (1009 past it).
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
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        ProtocolConfig {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            max_fragments: 1024,
            max_head_size: 8 << 10,
            max_headers: 64,
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Some(Duration::from_secs(30)),
            pong_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(5),
            subprotocols: Vec::new(),
            origin: OriginPolicy::SameHost,
        }
    }
}

impl ProtocolConfig {
    /// Checks that the values make sense together.
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
        Ok(())
    }
}

/// Settings of a server: where it listens, how many connections it takes,
/// how much it buffers for each, and how it shuts down.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on. Default 127.0.0.1:9001.
    pub listen: SocketAddr,
    /// Most open connections; past it upgrades are answered with 503.
    /// Default 10,000.
    pub max_connections: usize,
    /// Most bytes queued for one connection, in bytes. Default 16 MiB. Over
    /// it, echo stops reading from that connection until it drains; a
    /// broadcast receiver is closed with 1008 as too slow.
    pub max_backpressure: usize,
    /// How long shutdown waits for close replies. Default 5 s.
    pub shutdown_timeout: Duration,
    /// The per-connection protocol limits.
    pub protocol: ProtocolConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9001)),
            max_connections: 10_000,
            max_backpressure: 16 << 20,
            shutdown_timeout: Duration::from_secs(5),
            protocol: ProtocolConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Checks that the values make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.protocol.validate()?;
        if self.max_connections == 0 {
            return Err(ConfigError("max_connections must be at least 1"));
        }
        if self.max_backpressure < 1024 {
            return Err(ConfigError("max_backpressure must be at least 1 KiB"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(ServerConfig::default().validate(), Ok(()));
    }

    #[test]
    fn nonsense_is_reported_not_panicked() {
        let mut c = ProtocolConfig {
            max_frame_size: 10,
            max_message_size: 5,
            ..Default::default()
        };
        assert!(c.validate().is_err());
        c.max_message_size = 10;
        c.ping_interval = Some(Duration::ZERO);
        assert!(c.validate().is_err());
        let s = ServerConfig {
            max_connections: 0,
            ..Default::default()
        };
        assert!(s.validate().is_err());
    }
}
