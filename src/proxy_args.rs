//! The options of `edgews proxy`: its upstreams, how connections are
//! spread over them, and how their health is checked.

use crate::cli::{parse_duration, BadConfig};
use clap::{Args, ValueEnum};
use edgews::protocol::WsUrl;
use edgews::server::{Balance, ProxyConfig, Upstream};
use std::net::ToSocketAddrs;
use std::time::Duration;

/// How connections are spread over the upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BalanceArg {
    /// The next upstream in rotation.
    RoundRobin,
    /// The upstream relaying the fewest connections.
    LeastConnections,
}

/// Options of the proxy mode.
#[derive(Debug, Clone, Args)]
pub struct ProxyArgs {
    /// An upstream WebSocket server, ws://HOST:PORT or wss://HOST:PORT
    /// (repeatable). Requests keep their path and query. The host name is
    /// resolved once, at start.
    #[arg(long = "upstream", value_name = "URL", required = true)]
    pub upstreams: Vec<String>,
    /// How new connections are spread over the upstreams in rotation.
    #[arg(long, value_enum, default_value = "round-robin")]
    pub balance: BalanceArg,
    /// How often each upstream's health is checked with GET
    /// --health-path (any answer below 500 is healthy); 0: only relayed
    /// connections tell. A failing upstream leaves the rotation and is
    /// retried after 1 s, doubling to 30 s.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub health_interval: Duration,
    /// The path health checks ask for.
    #[arg(long, default_value = "/healthz", value_name = "PATH")]
    pub health_path: String,
    /// wss:// upstreams: trust the CA certificates in this PEM file instead
    /// of the system's roots.
    #[arg(long, value_name = "PATH")]
    pub upstream_ca_file: Option<std::path::PathBuf>,
}

impl ProxyArgs {
    /// The proxy's configuration; each upstream's name resolved now.
    pub fn config(&self) -> Result<ProxyConfig, BadConfig> {
        let upstreams = self
            .upstreams
            .iter()
            .map(|url| upstream(url))
            .collect::<Result<Vec<_>, _>>()?;
        if !self.health_path.starts_with('/') || self.health_path.contains(char::is_whitespace) {
            return Err(BadConfig(
                "--health-path must be a path such as /healthz".into(),
            ));
        }
        Ok(ProxyConfig {
            upstreams,
            balance: match self.balance {
                BalanceArg::RoundRobin => Balance::RoundRobin,
                BalanceArg::LeastConnections => Balance::LeastConnections,
            },
            health_interval: (!self.health_interval.is_zero()).then_some(self.health_interval),
            health_path: self.health_path.clone(),
        })
    }
}

/// One `--upstream` URL, checked and resolved.
fn upstream(url: &str) -> Result<Upstream, BadConfig> {
    let bad = |why: &str| BadConfig(format!("--upstream {url}: {why}"));
    let parsed = WsUrl::parse(url).map_err(|e| bad(&e.to_string()))?;
    if parsed.resource != "/" {
        return Err(bad("give no path: requests keep their own"));
    }
    let addr = (parsed.host.as_str(), parsed.port)
        .to_socket_addrs()
        .map_err(|e| bad(&format!("cannot resolve: {e}")))?
        .next()
        .ok_or_else(|| bad("the host has no address"))?;
    Ok(Upstream {
        url: url.trim_end_matches('/').to_string(),
        addr,
        tls_name: parsed.secure.then(|| parsed.host.clone()),
    })
}
