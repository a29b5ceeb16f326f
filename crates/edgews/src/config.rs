//! Configuration: the engine's [`ProtocolConfig`] (from `edgews-protocol`,
//! re-exported here) inside the reactor's [`ServerConfig`]. Both have
//! `Default`s chosen for a public server and a `validate()` that reports
//! nonsense instead of panicking later.

pub use crate::protocol::config::{
    check_duration, ConfigError, ProtocolConfig, MAX_DURATION, MAX_FRAGMENTS_LIMIT,
    MAX_HEADERS_LIMIT, MAX_HEAD_LIMIT, MAX_MESSAGE_LIMIT,
};
use crate::tls::{ClientTls, TlsFiles};
use std::net::SocketAddr;
use std::time::Duration;

/// The most connections one reactor may be configured for: 2^24.
pub const MAX_CONNECTIONS_LIMIT: usize = 1 << 24;

/// The largest `max_backpressure`: 1 GiB.
pub const MAX_BACKPRESSURE_LIMIT: usize = 1 << 30;

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
    /// Most messages the reactor hands to the handler from one connection
    /// before the other ready connections get their turn. Default 1,024: a
    /// client that pipelines millions of small messages cannot starve the
    /// others, nor make fan-out queue more than this many messages between
    /// two flushes.
    pub max_messages_per_turn: usize,
    /// A second listener of the same reactor that serves only `GET
    /// /metrics` and `GET /healthz` (no upgrades), e.g. on loopback for the
    /// scraper. When set, the public listener answers `/metrics` with 404.
    /// Default none: `/metrics` is served on the public listener.
    pub metrics_listen: Option<SocketAddr>,
    /// The per-connection protocol limits.
    pub protocol: ProtocolConfig,
    /// Serve TLS (`wss://`, and `https://` for the plain-HTTP endpoints)
    /// on the public listener with this certificate and key, read at start
    /// and again on [`Reactor::reload_tls`](crate::reactor::Reactor::reload_tls)
    /// (SIGHUP). The metrics listener stays plain. Default none: plain TCP.
    pub tls: Option<TlsFiles>,
    /// How outbound `wss://` connections verify their server. Default: the
    /// system's roots.
    pub client_tls: ClientTls,
    /// Share broadcasts, topics and rooms with other instances through
    /// this Redis server (`--redis`; see `crate::redis`). Default none.
    /// `rediss://` verifies the server as `client_tls` says.
    pub redis: Option<crate::redis::link::LinkConfig>,
    /// Reverse proxies (`--trusted-proxy`) whose `Forwarded` or
    /// `X-Forwarded-For` headers name the client: from these addresses only,
    /// an upgrade's client address (for per-IP limits, logs and
    /// [`Context::peer_addr`](crate::reactor::Context::peer_addr)) is taken
    /// from those headers. Default: none, the TCP peer is the client.
    pub trusted_proxies: crate::forwarded::TrustedProxies,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9001)),
            max_connections: 10_000,
            max_backpressure: 16 << 20,
            shutdown_timeout: Duration::from_secs(5),
            max_messages_per_turn: 1024,
            metrics_listen: None,
            protocol: ProtocolConfig::default(),
            tls: None,
            client_tls: ClientTls::default(),
            redis: None,
            trusted_proxies: Default::default(),
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
        if let Some(redis) = &self.redis {
            if redis.validate().is_err() {
                return Err(ConfigError(
                    "redis: max_message must be 1 B to 16 MiB, and queue_bytes at least max_message",
                ));
            }
        }
        if self.max_connections > MAX_CONNECTIONS_LIMIT {
            return Err(ConfigError("max_connections must be at most 16777216"));
        }
        if self.max_backpressure > MAX_BACKPRESSURE_LIMIT {
            return Err(ConfigError("max_backpressure must be at most 1 GiB"));
        }
        if self.max_messages_per_turn == 0 {
            return Err(ConfigError("max_messages_per_turn must be at least 1"));
        }
        check_duration(
            self.shutdown_timeout,
            "shutdown_timeout must be at most 24 h",
        )?;
        if self.metrics_listen == Some(self.listen) && self.listen.port() != 0 {
            return Err(ConfigError(
                "the metrics listener needs an address of its own",
            ));
        }
        Ok(())
    }
}

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

    #[test]
    fn durations_and_sizes_past_their_bounds_are_refused() {
        let huge = Duration::from_secs(u64::MAX);
        let protocol = |f: fn(&mut ProtocolConfig)| {
            let mut c = ProtocolConfig::default();
            f(&mut c);
            c
        };
        let refused = [
            protocol(|c| c.handshake_timeout = Duration::from_secs(u64::MAX)),
            protocol(|c| c.pong_timeout = MAX_DURATION + Duration::from_millis(1)),
            protocol(|c| c.close_timeout = Duration::from_secs(u64::MAX)),
            protocol(|c| c.ping_interval = Some(Duration::from_secs(u64::MAX))),
            protocol(|c| {
                c.max_message_size = u64::MAX;
                c.max_frame_size = u64::MAX
            }),
            protocol(|c| c.max_fragments = u32::MAX),
            protocol(|c| c.max_head_size = usize::MAX),
            protocol(|c| c.allowed_hosts = vec![" ".into()]),
        ];
        for c in refused {
            assert!(c.validate().is_err(), "{c:?}");
        }
        let at_bounds = protocol(|c| {
            c.handshake_timeout = MAX_DURATION;
            c.ping_interval = Some(MAX_DURATION);
            c.max_message_size = MAX_MESSAGE_LIMIT;
        });
        assert_eq!(at_bounds.validate(), Ok(()));
        for s in [
            ServerConfig {
                shutdown_timeout: huge,
                ..Default::default()
            },
            ServerConfig {
                max_backpressure: usize::MAX,
                ..Default::default()
            },
            ServerConfig {
                max_connections: usize::MAX,
                ..Default::default()
            },
            ServerConfig {
                max_messages_per_turn: 0,
                ..Default::default()
            },
        ] {
            assert!(s.validate().is_err(), "{s:?}");
        }
    }
}
