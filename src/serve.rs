//! Running a server mode: on one reactor (`--workers 1`) or on several,
//! behind token checks and rate limits when they are configured.

use crate::cli::{BadConfig, ServerArgs};
use edgews::reactor::{Handler, Reactor};
use edgews::server::{Authenticated, GuardConfig, GuardShared, Guarded, OverRate};
use edgews::workers::Workers;
use edgews::ServerConfig;

type AnyError = Box<dyn std::error::Error>;

/// What differs between the server modes around the handler.
pub struct Mode<'a> {
    name: &'a str,
    args: &'a ServerArgs,
    /// What a connection over its message rate gets.
    over_rate: OverRate,
    /// The largest message the mode's protocol can use: the engine's
    /// message (and frame) limit is lowered to it, so that a larger message
    /// is refused as it arrives, never assembled.
    message_cap: Option<u64>,
    /// `--redis`: the link to the other instances.
    redis: Option<edgews::redis::link::LinkConfig>,
    /// `--redis-ca-file` or `--upstream-ca-file`: what outbound TLS
    /// connections trust.
    client_ca_file: Option<std::path::PathBuf>,
}

impl<'a> Mode<'a> {
    pub fn new(name: &'a str, args: &'a ServerArgs, over_rate: OverRate) -> Self {
        Mode {
            name,
            args,
            over_rate,
            message_cap: None,
            redis: None,
            client_ca_file: None,
        }
    }

    /// Shares the mode's broadcasts, topics or rooms through Redis when
    /// `--redis` is given; `permanent_keys` are always subscribed.
    pub fn with_redis(
        mut self,
        args: &crate::redis_args::RedisArgs,
        permanent_keys: &[&str],
    ) -> Result<Self, BadConfig> {
        self.redis = args.link_config(permanent_keys)?;
        self.client_ca_file = args.redis_ca_file.clone();
        Ok(self)
    }

    /// Outbound TLS connections (`wss://` upstreams) trust the CA
    /// certificates in `ca_file` instead of the system's roots.
    pub fn with_client_ca(mut self, ca_file: Option<std::path::PathBuf>) -> Self {
        self.client_ca_file = ca_file;
        self
    }

    pub fn with_message_cap(mut self, cap: u64) -> Self {
        self.message_cap = Some(cap);
        self
    }

    /// The server configuration: the options, with the mode's message cap.
    fn config(&self) -> ServerConfig {
        let mut config = self.args.config();
        config.redis = self.redis.clone();
        if let Some(ca) = &self.client_ca_file {
            config.client_tls.ca_file = Some(ca.clone());
        }
        if let Some(cap) = self.message_cap {
            let protocol = &mut config.protocol;
            protocol.max_message_size = protocol.max_message_size.min(cap);
            protocol.max_frame_size = protocol.max_frame_size.min(protocol.max_message_size);
        }
        config
    }
}

/// Runs a server whose handlers `make` makes (one per worker), behind
/// token checks when a JWT secret is configured, behind rate limits when
/// any is set (outside the token checks, so a flood costs no token
/// verification). The per-IP tables are shared by every worker.
pub fn serve<H, F>(mode: &Mode<'_>, make: F) -> Result<(), AnyError>
where
    H: Handler + 'static,
    F: Fn() -> H + Send + Sync + 'static,
{
    let auth = mode.args.jwt().map_err(BadConfig)?;
    let guard = mode.args.guard(mode.over_rate).map_err(BadConfig)?;
    let off = GuardConfig {
        over_rate: mode.over_rate,
        ..GuardConfig::default()
    };
    match (auth, guard == off) {
        (None, true) => run(mode, make),
        (Some(auth), true) => run(mode, move || Authenticated::new(make(), auth.clone())),
        (None, false) => {
            let shared = GuardShared::new(&guard);
            run(mode, move || {
                Guarded::with_shared(make(), guard.clone(), shared.clone())
            })
        }
        (Some(auth), false) => {
            let shared = GuardShared::new(&guard);
            run(mode, move || {
                let inner = Authenticated::new(make(), auth.clone());
                Guarded::with_shared(inner, guard.clone(), shared.clone())
            })
        }
    }
}

/// A refused configuration is the command line's fault.
fn config_error(e: std::io::Error) -> AnyError {
    match e.kind() {
        std::io::ErrorKind::InvalidInput => {
            Box::new(BadConfig(format!("invalid configuration: {e}")))
        }
        _ => Box::new(e),
    }
}

/// Runs the server until SIGINT or SIGTERM, then shuts down gracefully:
/// one reactor on this thread with `--workers 1`, else that many workers.
fn run<H, F>(mode: &Mode<'_>, make: F) -> Result<(), AnyError>
where
    H: Handler + 'static,
    F: Fn() -> H + Send + Sync + 'static,
{
    let workers = usize::from(mode.args.workers);
    if workers == 1 {
        return run_reactor(mode, make());
    }
    let config = mode.config();
    let max_connections = config.max_connections;
    let mut server = Workers::new(config, workers).map_err(config_error)?;
    raise_fd_limit(max_connections);
    let addr = server
        .listen()
        .map_err(|e| format!("cannot listen on {}: {e}", mode.args.listen))?;
    server.handle_signals()?;
    announce(mode, addr, server.metrics_addr());
    log::info!("{workers} workers");
    server.run(move |_worker| make())?;
    log::info!("stopped");
    Ok(())
}

/// Runs one reactor on this thread.
fn run_reactor<H: Handler>(mode: &Mode<'_>, handler: H) -> Result<(), AnyError> {
    let config = mode.config();
    let max_connections = config.max_connections;
    // the reactor validates its configuration (once)
    let mut reactor = Reactor::new(config, handler).map_err(config_error)?;
    raise_fd_limit(max_connections);
    let addr = reactor
        .listen()
        .map_err(|e| format!("cannot listen on {}: {e}", mode.args.listen))?;
    reactor.handle_signals()?;
    announce(mode, addr, reactor.metrics_addr());
    reactor.run()?;
    log::info!("stopped");
    Ok(())
}

/// Says where the server listens (the line scripts and tests wait for).
fn announce(mode: &Mode<'_>, addr: std::net::SocketAddr, metrics: Option<std::net::SocketAddr>) {
    let name = mode.name;
    let scheme = if mode.args.tls_cert.is_some() {
        "wss"
    } else {
        "ws"
    };
    println!("edgews {name} listening on {scheme}://{addr}");
    if let Some(metrics) = metrics {
        println!("edgews {name} serving /metrics on http://{metrics}");
    }
}

/// Raises the soft limit on open files to the hard one, and says so.
fn raise_fd_limit(max_connections: usize) {
    match edgews::reactor::raise_fd_limit() {
        Ok(l) => {
            log::info!(
                "file descriptors: soft limit {} -> {} (hard {})",
                l.soft_before,
                l.soft,
                l.hard
            );
            if (max_connections as u64).saturating_add(16) > l.soft {
                log::warn!(
                    "--max-connections {max_connections} exceeds the {} descriptors this \
                     process may open: clients past that are answered 503",
                    l.soft
                );
            }
        }
        Err(e) => log::warn!("cannot raise the file descriptor limit: {e}"),
    }
}
