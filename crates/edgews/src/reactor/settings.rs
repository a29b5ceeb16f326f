//! The reactor's settings as it keeps them: a [`ServerConfig`] validated
//! once, in `Reactor::new`, and taken apart, with the engine's limits
//! behind the one `Arc` every connection's engine shares.

use crate::config::{ConfigError, ServerConfig};
use crate::protocol::ProtocolConfig;
use crate::tls::{ClientTls, TlsFiles};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// What the reactor reads of its configuration, each value stored once.
/// Field meanings and units are [`ServerConfig`]'s.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub listen: SocketAddr,
    pub max_connections: usize,
    pub max_backpressure: usize,
    pub shutdown_timeout: Duration,
    pub max_messages_per_turn: usize,
    pub metrics_listen: Option<SocketAddr>,
    /// Shared by the reactor and every connection's engine.
    pub protocol: Arc<ProtocolConfig>,
    pub tls: Option<TlsFiles>,
    pub client_tls: ClientTls,
    /// Boxed: one pointer where most servers have no Redis.
    pub redis: Option<Box<crate::redis::link::LinkConfig>>,
    pub trusted_proxies: crate::forwarded::TrustedProxies,
}

impl Settings {
    /// Validates `config` (the one place a reactor does) and keeps it.
    pub fn new(config: ServerConfig) -> Result<Settings, ConfigError> {
        config.validate()?;
        let ServerConfig {
            listen,
            max_connections,
            max_backpressure,
            shutdown_timeout,
            max_messages_per_turn,
            metrics_listen,
            protocol,
            tls,
            client_tls,
            redis,
            trusted_proxies,
        } = config;
        Ok(Settings {
            listen,
            max_connections,
            max_backpressure,
            shutdown_timeout,
            max_messages_per_turn,
            metrics_listen,
            protocol: Arc::new(protocol),
            tls,
            client_tls,
            redis: redis.map(Box::new),
            trusted_proxies,
        })
    }
}
