//! `edgews proxy`: a WebSocket reverse proxy and load balancer. The edge
//! checks (origin policy, tokens, rate and connection limits, handshake
//! timeout, TLS) are the other modes' own, around this handler; it picks an
//! upstream for each accepted upgrade, and the reactor relays the rest (see
//! `reactor/proxy.rs`).
//!
//! Balancing is round robin or least connections over the upstreams in
//! rotation. An upstream that fails (a refused or timed-out connect, a 5xx
//! answer, a broken answer, vanishing or breaking the protocol while it
//! relays, a failed health check) leaves the rotation, and is tried again
//! after a back-off that doubles from 1 s to 30 s: one connection (or one
//! health check) at a time, until one succeeds. The state is shared by all
//! workers.

use super::proxy_health::{Health, Verdict};
use crate::protocol::{HandshakeError, Message, Request};
use crate::reactor::ConnId;
use crate::reactor::{
    Accept, Context, Handler, HttpResponse, ProxyOutcome, ProxyTarget, UpstreamCounters,
};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How connections are spread over the upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// Each new connection to the next upstream in rotation.
    #[default]
    RoundRobin,
    /// Each new connection to the upstream relaying the fewest.
    LeastConnections,
}

/// One upstream: where it is, and how it is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// As given (`ws://host:port`, `wss://host:port`), for logs and metrics.
    pub url: String,
    /// Its address (resolved once, at start).
    pub addr: SocketAddr,
    /// `wss://`: the name its certificate must carry.
    pub tls_name: Option<String>,
}

/// The proxy's configuration.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The upstreams, at least one.
    pub upstreams: Vec<Upstream>,
    /// How connections are spread.
    pub balance: Balance,
    /// How often each upstream's health is checked (`GET health_path`);
    /// `None`: only relayed connections tell (passive checks).
    pub health_interval: Option<Duration>,
    /// The path health checks ask for. Any answer below 500 means the
    /// upstream is up: a server that speaks only WebSocket answers a plain
    /// GET with 400 or 426, and is alive all the same.
    pub health_path: String,
}

/// An upstream's state, shared by the workers.
#[derive(Debug)]
struct UpstreamState {
    target: ProxyTarget,
    url: String,
    /// Connections relayed (or being set up) now.
    active: AtomicUsize,
    connections_total: AtomicU64,
    failures_total: AtomicU64,
    health: Mutex<Health>,
}

/// The state every worker's [`Proxy`] shares.
#[derive(Debug)]
pub struct ProxyShared {
    upstreams: Vec<UpstreamState>,
    balance: Balance,
    next: AtomicUsize,
    health_interval: Option<Duration>,
    health_path: String,
}

impl ProxyShared {
    /// The shared state for `config`.
    pub fn new(config: &ProxyConfig) -> Arc<ProxyShared> {
        let now = Instant::now();
        let upstreams = config
            .upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| UpstreamState {
                target: ProxyTarget {
                    upstream: i,
                    addr: u.addr,
                    tls_name: u.tls_name.clone(),
                    counters: Arc::new(UpstreamCounters::default()),
                },
                url: u.url.clone(),
                active: AtomicUsize::new(0),
                connections_total: AtomicU64::new(0),
                failures_total: AtomicU64::new(0),
                health: Mutex::new(Health::new(now)),
            });
        Arc::new(ProxyShared {
            upstreams: upstreams.collect(),
            balance: config.balance,
            next: AtomicUsize::new(0),
            health_interval: config.health_interval,
            health_path: config.health_path.clone(),
        })
    }

    /// The upstream for a new connection, counted as active; `None` when
    /// every upstream is out of rotation and none is due for a retry.
    fn pick(&self, now: Instant) -> Option<&UpstreamState> {
        let n = self.upstreams.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let order = (0..n).map(|i| &self.upstreams[(start + i) % n]);
        // an upstream out of rotation and due for its retry gets this
        // connection as its trial (one per back-off), whatever else is up
        let trial = order.clone().find(|u| u.lock().take_trial(now));
        let chosen = trial.or_else(|| match self.balance {
            Balance::RoundRobin => order.clone().find(|u| u.lock().is_up()),
            Balance::LeastConnections => order
                .clone()
                .filter(|u| u.lock().is_up())
                .min_by_key(|u| u.active.load(Ordering::Relaxed)),
        })?;
        chosen.active.fetch_add(1, Ordering::Relaxed);
        chosen.connections_total.fetch_add(1, Ordering::Relaxed);
        Some(chosen)
    }

    /// Records how a connection to `upstream` went.
    fn record(&self, upstream: usize, ok: bool, why: &str, now: Instant) {
        let Some(u) = self.upstreams.get(upstream) else {
            return;
        };
        if !ok {
            u.failures_total.fetch_add(1, Ordering::Relaxed);
        }
        let verdict = u.lock().record(ok, now);
        match verdict {
            Verdict::WentDown(retry) => log::warn!(
                "upstream {} out of rotation: {why}; retrying in {retry:?}",
                u.url
            ),
            Verdict::StillDown(retry) => {
                log::debug!(
                    "upstream {} still down: {why}; retrying in {retry:?}",
                    u.url
                )
            }
            Verdict::CameBack => log::info!("upstream {} back in rotation", u.url),
            Verdict::Same => {}
        }
    }

    /// Per-upstream metrics, in Prometheus text.
    fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let families: [(&str, &str, &str); 6] = [
            ("up", "gauge", "1 while the upstream is in rotation."),
            (
                "connections",
                "gauge",
                "Connections relayed to the upstream now.",
            ),
            (
                "connections_total",
                "counter",
                "Connections sent to the upstream.",
            ),
            (
                "failures_total",
                "counter",
                "Failed connects, answers, relays and health checks.",
            ),
            (
                "to_upstream_bytes_total",
                "counter",
                "Bytes relayed from clients to the upstream.",
            ),
            (
                "from_upstream_bytes_total",
                "counter",
                "Bytes relayed from the upstream to clients.",
            ),
        ];
        for (name, kind, help) in families {
            let _ = writeln!(out, "# HELP edgews_proxy_upstream_{name} {help}");
            let _ = writeln!(out, "# TYPE edgews_proxy_upstream_{name} {kind}");
            for u in &self.upstreams {
                let counters = &u.target.counters;
                let value = match name {
                    "up" => u64::from(u.lock().is_up()),
                    "connections" => u.active.load(Ordering::Relaxed) as u64,
                    "connections_total" => u.connections_total.load(Ordering::Relaxed),
                    "failures_total" => u.failures_total.load(Ordering::Relaxed),
                    "to_upstream_bytes_total" => counters.bytes_to_upstream.load(Ordering::Relaxed),
                    _ => counters.bytes_from_upstream.load(Ordering::Relaxed),
                };
                let _ = writeln!(
                    out,
                    "edgews_proxy_upstream_{name}{{upstream=\"{}\"}} {value}",
                    u.url
                );
            }
        }
        out
    }
}

impl UpstreamState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Health> {
        // a worker that panicked while holding it left plain data behind
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The proxy mode's handler, one per worker.
#[derive(Debug)]
pub struct Proxy {
    shared: Arc<ProxyShared>,
    /// When this worker next looks for health checks that are due.
    next_check: Option<Instant>,
}

impl Proxy {
    /// A handler over the shared state.
    pub fn new(shared: Arc<ProxyShared>) -> Proxy {
        let next_check = shared.health_interval.map(|_| Instant::now());
        Proxy { shared, next_check }
    }
}

impl Handler for Proxy {
    fn on_upgrade(&mut self, _: &Request<'_>, _: SocketAddr) -> Result<Accept, HandshakeError> {
        let Some(upstream) = self.shared.pick(Instant::now()) else {
            return Err(HandshakeError::Refused(503, "no upstream available".into()));
        };
        Ok(Accept {
            user: None,
            proxy: Some(Box::new(upstream.target.clone())),
        })
    }

    fn on_http(
        &mut self,
        ctx: &mut Context<'_>,
        request: &Request<'_>,
        _: SocketAddr,
    ) -> HttpResponse {
        if request.path() == "/metrics" && request.method == "GET" {
            let mut text = ctx.metrics_text();
            text.push_str(&self.shared.to_prometheus());
            return HttpResponse::metrics(text);
        }
        HttpResponse::default_for(request)
    }

    fn on_message(&mut self, _: &mut Context<'_>, _: ConnId, _: Message<'_>) {
        // proxied connections' frames are relayed, never delivered here
    }

    fn on_proxy_end(
        &mut self,
        ctx: &mut Context<'_>,
        _: ConnId,
        upstream: usize,
        outcome: &ProxyOutcome,
    ) {
        if let Some(u) = self.shared.upstreams.get(upstream) {
            u.active.fetch_sub(1, Ordering::Relaxed);
        }
        if matches!(outcome, ProxyOutcome::Abandoned) {
            return; // says nothing about the upstream
        }
        let failed = outcome.is_upstream_failure();
        self.shared
            .record(upstream, !failed, &format!("{outcome:?}"), ctx.now());
    }

    fn on_probe(&mut self, ctx: &mut Context<'_>, upstream: usize, result: Result<u16, String>) {
        let (ok, why) = match result {
            Ok(status) if status < 500 => (true, String::new()),
            Ok(status) => (false, format!("health check answered {status}")),
            Err(e) => (false, format!("health check: {e}")),
        };
        if let Some(u) = self.shared.upstreams.get(upstream) {
            u.lock().probe_done();
        }
        self.shared.record(upstream, ok, &why, ctx.now());
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.next_check
    }

    fn on_timeout(&mut self, ctx: &mut Context<'_>, now: Instant) {
        let Some(interval) = self.shared.health_interval else {
            return;
        };
        for u in &self.shared.upstreams {
            if u.lock().claim_probe(now, interval) {
                ctx.probe(&u.target, &self.shared.health_path);
            }
        }
        // every worker looks; the first to claim an upstream's check runs it
        self.next_check = Some(now + interval.min(Duration::from_secs(1)));
    }
}
