//! Rate limits for any server mode: [`Guarded`] wraps a handler and enforces
//! a [`GuardConfig`]. Every limit is off by default; a limit that is off
//! keeps no table and costs nothing per connection.
//!
//! | limit | bounds | over it | memory while on |
//! |---|---|---|---|
//! | [`message_rate`](GuardConfig::message_rate) | messages one connection sends: a token bucket, `per_second` on average, `burst` back to back | see [`OverRate`] | one bucket per open connection: 40 bytes (id and [`TokenBucket`]) plus hash-table slack |
//! | [`max_connections_per_ip`](GuardConfig::max_connections_per_ip) | WebSocket connections open at once from one client IP | 429 with `Retry-After: 1` | 28 bytes per open connection and 24 per IP with one open, plus slack |
//! | [`max_upgrades_per_ip`](GuardConfig::max_upgrades_per_ip) | upgrade requests per second from one client IP (a token bucket whose burst is the rate) | 429 with `Retry-After` in seconds until the next token | 56 bytes per IP that upgraded within about the last second, plus slack; at most [`MAX_TRACKED_IPS`] IPs, then new IPs get 503 |
//!
//! "Slack" is what a hash table holds beyond its entries: a control byte per
//! slot, and between 1/8 and 9/16 of its slots empty. The per-IP checks run
//! before the wrapped handler's own `on_upgrade`, so a flood does not cost
//! it anything (wrap [`Authenticated`](super::Authenticated), not the other
//! way round). The server's own `--max-connections` stays answered with 503
//! before any of this runs.
//!
//! Not limited here: plain HTTP requests (`/metrics`, `/healthz`), pings
//! (the engine answers them), and outbound connections (a handler's own
//! [`Context::connect`]). The client IP is the TCP peer's, an IPv4-mapped
//! IPv6 address counting as its IPv4 address; `client_ip` is the one place
//! that decides it.
//!
//! Counted in `/metrics`: `edgews_rate_limited_messages_total`,
//! `edgews_ip_connection_refusals_total`, `edgews_ip_upgrade_refusals_total`
//! and the gauge `edgews_tracked_ips`.

use super::limits::{
    ConnectionsPerIp, RateLimit, TokenBucket, UpgradeRefusal, UpgradesPerIp, MAX_TRACKED_IPS,
};
use crate::config::ConfigError;
use crate::protocol::{CloseCode, Closed, HandshakeError, Message, Request};
use crate::reactor::{Accept, Channel, ConnId, Context, Handler, HttpResponse, OpenInfo, Relayed};
use std::collections::HashMap;
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The most often the "IP table full" warning is logged.
const TABLE_FULL_WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The close reason of a connection closed for its message rate.
pub const RATE_LIMIT_CLOSE_REASON: &str = "message rate limit exceeded";

/// The reply to a message dropped for its rate, under [`OverRate::ErrorReply`].
pub const RATE_LIMIT_ERROR_REPLY: &str =
    r#"{"type":"error","error":"rate limit exceeded: message dropped"}"#;

/// What a connection that sends faster than
/// [`message_rate`](GuardConfig::message_rate) gets. Either way the message
/// is dropped, not passed on, and counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OverRate {
    /// A close with 1008 (policy violation) and
    /// [`RATE_LIMIT_CLOSE_REASON`]: for echo and broadcast, whose protocol
    /// has no way to say "dropped".
    #[default]
    Close,
    /// A text reply, [`RATE_LIMIT_ERROR_REPLY`]; the connection stays open:
    /// for pub/sub and chat, whose clients already handle
    /// `{"type":"error",…}` replies.
    ErrorReply,
}

/// The limits a [`Guarded`] handler enforces; every one off (`None`) by
/// default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuardConfig {
    /// Messages per second per connection, and the burst (token bucket).
    /// Default none.
    pub message_rate: Option<RateLimit>,
    /// What a connection over `message_rate` gets. Default
    /// [`OverRate::Close`].
    pub over_rate: OverRate,
    /// Most open WebSocket connections per client IP. Default none.
    pub max_connections_per_ip: Option<u32>,
    /// Most upgrades per second per client IP (a token bucket with a burst
    /// equal to the rate). Default none.
    pub max_upgrades_per_ip: Option<u32>,
}

impl GuardConfig {
    /// Checks that every limit that is on is at least 1 (a limit of 0 would
    /// refuse everything: leave it `None` to turn it off).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(rate) = self.message_rate {
            if rate.per_second == 0 || rate.burst == 0 {
                return Err(ConfigError(
                    "the message rate and its burst must be at least 1",
                ));
            }
        }
        if self.max_connections_per_ip == Some(0) {
            return Err(ConfigError("max_connections_per_ip must be at least 1"));
        }
        if self.max_upgrades_per_ip == Some(0) {
            return Err(ConfigError("max_upgrades_per_ip must be at least 1"));
        }
        Ok(())
    }
}

/// What the limits have refused so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardStats {
    /// Messages dropped for their connection's rate.
    pub rate_limited_messages: u64,
    /// Upgrades refused because their IP had its most connections open.
    pub ip_connection_refusals: u64,
    /// Upgrades refused because their IP upgraded too often (or, with the
    /// IP table full, was new).
    pub ip_upgrade_refusals: u64,
}

/// The per-IP tables and the counters of the limits, which every worker
/// of a process shares (behind one lock, taken per upgrade and per close,
/// never per message) so that the limits hold process-wide. Make one with
/// [`GuardShared::new`] and hand each worker's [`Guarded`] a clone.
#[derive(Debug, Clone)]
pub struct GuardShared(Arc<Mutex<PerIp>>);

#[derive(Debug, Default)]
struct PerIp {
    /// While `max_connections_per_ip` is on.
    connections: Option<ConnectionsPerIp>,
    /// While `max_upgrades_per_ip` is on.
    upgrades: Option<UpgradesPerIp>,
    stats: GuardStats,
    /// When the "table full" warning was last logged: at most once a
    /// minute, so a flood of new addresses is not a flood of log lines.
    table_full_warned_at: Option<Instant>,
}

impl GuardShared {
    /// Empty tables for the limits of `config`.
    pub fn new(config: &GuardConfig) -> GuardShared {
        GuardShared(Arc::new(Mutex::new(PerIp {
            connections: config
                .max_connections_per_ip
                .map(|_| ConnectionsPerIp::default()),
            upgrades: config.max_upgrades_per_ip.map(UpgradesPerIp::new),
            ..PerIp::default()
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PerIp> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Wraps a handler to enforce the limits of a [`GuardConfig`]; forwards
/// everything else to it unchanged.
#[derive(Debug)]
pub struct Guarded<H> {
    /// The wrapped handler.
    pub inner: H,
    config: GuardConfig,
    /// A bucket per open server-side connection, while `message_rate` is on.
    messages: HashMap<ConnId, TokenBucket>,
    /// The per-IP tables and the counters, shared with the other workers.
    shared: GuardShared,
}

impl<H: Handler> Guarded<H> {
    /// `inner`, behind the limits of `config`.
    pub fn new(inner: H, config: GuardConfig) -> Self {
        let shared = GuardShared::new(&config);
        Guarded::with_shared(inner, config, shared)
    }

    /// `inner`, behind the limits of `config`, with per-IP tables and
    /// counters shared with other workers' handlers (made by
    /// [`GuardShared::new`] from the same `config`).
    pub fn with_shared(inner: H, config: GuardConfig, shared: GuardShared) -> Self {
        Guarded {
            inner,
            messages: HashMap::new(),
            config,
            shared,
        }
    }

    /// The limits enforced.
    pub fn config(&self) -> &GuardConfig {
        &self.config
    }

    /// What the limits have refused so far (every worker's refusals).
    pub fn stats(&self) -> GuardStats {
        self.shared.lock().stats
    }

    /// How many client IPs the per-IP limits hold state for: those with a
    /// connection open, and those with an upgrade bucket (a bucket is
    /// forgotten at the first sweep after it fills up again).
    pub fn tracked_ips(&self) -> usize {
        let shared = self.shared.lock();
        let open = shared.connections.as_ref();
        let with_connections = open.map_or(0, ConnectionsPerIp::ip_count);
        let only_upgrading = shared.upgrades.as_ref().map_or(0, |upgrades| {
            upgrades
                .ips()
                .filter(|ip| open.is_none_or(|o| o.open_from(**ip) == 0))
                .count()
        });
        with_connections + only_upgrading
    }

    /// Runs the per-IP checks for an upgrade from `ip`, and on success
    /// counts it among the IP's open connections (a reservation that
    /// `on_open` binds to the connection, or `on_upgrade` releases if the
    /// wrapped handler refuses): checking and counting under one lock is
    /// what keeps the limit exact when workers admit at the same time.
    fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<(), HandshakeError> {
        let mut shared = self.shared.lock();
        let shared = &mut *shared;
        if let Some(upgrades) = &mut shared.upgrades {
            let refusal = match upgrades.try_upgrade(ip, now) {
                Ok(()) => None,
                Err(UpgradeRefusal::TooFast { retry_after_secs }) => {
                    Some(HandshakeError::TooManyRequests { retry_after_secs })
                }
                Err(UpgradeRefusal::TableFull) => {
                    let quiet = shared.table_full_warned_at.is_some_and(|at| {
                        now.saturating_duration_since(at) < TABLE_FULL_WARN_EVERY
                    });
                    if !quiet {
                        shared.table_full_warned_at = Some(now);
                        log::warn!("{MAX_TRACKED_IPS} client IPs tracked: refusing new ones");
                    }
                    Some(HandshakeError::ServerFull)
                }
            };
            if let Some(e) = refusal {
                shared.stats.ip_upgrade_refusals += 1;
                return Err(e);
            }
        }
        if let (Some(max), Some(open)) =
            (self.config.max_connections_per_ip, &mut shared.connections)
        {
            if open.open_from(ip) >= max {
                shared.stats.ip_connection_refusals += 1;
                return Err(HandshakeError::TooManyRequests {
                    retry_after_secs: 1,
                });
            }
            open.reserve(ip);
        }
        Ok(())
    }

    /// Drops a message over its connection's rate, as `over_rate` says.
    fn refuse_message(&mut self, ctx: &mut Context<'_>, id: ConnId) {
        self.shared.lock().stats.rate_limited_messages += 1;
        let sent = match self.config.over_rate {
            OverRate::Close => ctx.close(id, CloseCode::POLICY_VIOLATION, RATE_LIMIT_CLOSE_REASON),
            OverRate::ErrorReply => ctx.send_text(id, RATE_LIMIT_ERROR_REPLY),
        };
        if sent.is_ok() {
            // counted in /metrics; one line per dropped message would let a
            // client flood the log
            log::debug!("{id}: message dropped: over its rate limit");
        }
    }

    /// The guard's counters, in the Prometheus text format.
    fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let s = self.stats();
        metric(
            "edgews_rate_limited_messages_total",
            "counter",
            "Messages dropped for their connection's message rate.",
            s.rate_limited_messages,
        );
        metric(
            "edgews_ip_connection_refusals_total",
            "counter",
            "Upgrades refused (429) for their client IP's open connections.",
            s.ip_connection_refusals,
        );
        metric(
            "edgews_ip_upgrade_refusals_total",
            "counter",
            "Upgrades refused for their client IP's upgrade rate.",
            s.ip_upgrade_refusals,
        );
        metric(
            "edgews_tracked_ips",
            "gauge",
            "Client IPs the per-IP limits hold state for.",
            self.tracked_ips() as u64,
        );
        out
    }
}

/// The address a client's per-IP limits apply to: today the TCP peer's,
/// with an IPv4-mapped IPv6 address as its IPv4 address. The request is
/// where a trusted proxy's `X-Forwarded-For` will be read.
pub(crate) fn client_ip(peer: SocketAddr, request: Option<&Request<'_>>) -> IpAddr {
    let _ = request;
    peer.ip().to_canonical()
}

impl<H: Handler> Handler for Guarded<H> {
    fn on_upgrade(
        &mut self,
        request: &Request<'_>,
        peer: SocketAddr,
    ) -> Result<Accept, HandshakeError> {
        // a clock read: `on_upgrade` has no context, and buckets need the time
        let ip = client_ip(peer, Some(request));
        self.admit(ip, Instant::now())?;
        let decision = self.inner.on_upgrade(request, peer);
        if decision.is_err() {
            if let Some(open) = &mut self.shared.lock().connections {
                open.release(ip);
            }
        }
        decision
    }

    fn on_http(
        &mut self,
        ctx: &mut Context<'_>,
        request: &Request<'_>,
        peer: SocketAddr,
    ) -> HttpResponse {
        let mut response = self.inner.on_http(ctx, request, peer);
        if request.method == "GET" && request.path() == "/metrics" && response.status == 200 {
            let mut body = std::mem::take(&mut response.body).into_owned();
            body.extend_from_slice(self.to_prometheus().as_bytes());
            response.body = body.into();
        }
        response
    }

    fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId, info: &OpenInfo<'_>) {
        // server side only: outbound connections are the handler's own
        if let Some(request) = info.request {
            if let Some(open) = &mut self.shared.lock().connections {
                // reserved by `admit`, which every upgrade passed
                open.bind(id, client_ip(info.peer, Some(request)));
            }
            if let Some(rate) = self.config.message_rate {
                let bucket = TokenBucket::new(rate.per_second, rate.burst, ctx.now());
                self.messages.insert(id, bucket);
            }
        }
        self.inner.on_open(ctx, id, info)
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, message: Message<'_>) {
        if let Some(bucket) = self.messages.get_mut(&id) {
            if !bucket.try_take(ctx.now()) {
                return self.refuse_message(ctx, id);
            }
        }
        self.inner.on_message(ctx, id, message)
    }

    fn on_ping(&mut self, ctx: &mut Context<'_>, id: ConnId, payload: &[u8]) {
        self.inner.on_ping(ctx, id, payload)
    }

    fn on_pong(&mut self, ctx: &mut Context<'_>, id: ConnId, payload: &[u8]) {
        self.inner.on_pong(ctx, id, payload)
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, id: ConnId, closed: &Closed) {
        self.messages.remove(&id);
        if let Some(open) = &mut self.shared.lock().connections {
            open.remove(id);
        }
        self.inner.on_close(ctx, id, closed)
    }

    fn on_connect_error(&mut self, ctx: &mut Context<'_>, id: ConnId, error: &str) {
        self.inner.on_connect_error(ctx, id, error)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn on_timeout(&mut self, ctx: &mut Context<'_>, now: Instant) {
        self.inner.on_timeout(ctx, now)
    }

    fn on_relayed(&mut self, ctx: &mut Context<'_>, relayed: &Relayed) {
        self.inner.on_relayed(ctx, relayed)
    }

    fn on_relay_lost(&mut self, ctx: &mut Context<'_>, channel: &Channel) {
        self.inner.on_relay_lost(ctx, channel)
    }

    fn on_bridged(&mut self, ctx: &mut Context<'_>, message: &crate::redis::link::Bridged) {
        self.inner.on_bridged(ctx, message)
    }

    fn on_bridge_subscribed(&mut self, ctx: &mut Context<'_>, key: &str) {
        self.inner.on_bridge_subscribed(ctx, key)
    }

    fn on_proxy_end(
        &mut self,
        ctx: &mut Context<'_>,
        id: ConnId,
        upstream: usize,
        outcome: &crate::reactor::ProxyOutcome,
    ) {
        // a proxied connection never opens here: its place, reserved by
        // `admit`, is given back when the relay ends
        if let Some(peer) = ctx.peer_addr(id) {
            if let Some(open) = &mut self.shared.lock().connections {
                open.release(client_ip(peer, None));
            }
        }
        self.inner.on_proxy_end(ctx, id, upstream, outcome)
    }

    fn on_probe(&mut self, ctx: &mut Context<'_>, upstream: usize, result: Result<u16, String>) {
        self.inner.on_probe(ctx, upstream, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    struct Nothing;

    impl Handler for Nothing {
        fn on_message(&mut self, _: &mut Context<'_>, _: ConnId, _: Message<'_>) {}
    }

    fn request() -> Request<'static> {
        Request {
            method: "GET",
            target: "/",
            headers: Default::default(),
            subprotocol: None,
        }
    }

    fn peer(ip: [u8; 4]) -> SocketAddr {
        SocketAddr::from((ip, 40000))
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_their_ipv4_address() {
        let mapped = Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped();
        let peer = SocketAddr::from((mapped, 1234));
        assert_eq!(
            client_ip(peer, None),
            IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))
        );
        let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 1234));
        assert_eq!(client_ip(v6, None), IpAddr::V6(Ipv6Addr::LOCALHOST));
    }

    #[test]
    fn the_default_config_limits_nothing_and_tracks_nothing() {
        let mut guard = Guarded::new(Nothing, GuardConfig::default());
        assert_eq!(GuardConfig::default().validate(), Ok(()));
        for _ in 0..1000 {
            assert!(guard.on_upgrade(&request(), peer([127, 0, 0, 1])).is_ok());
        }
        assert_eq!(guard.tracked_ips(), 0);
        assert_eq!(guard.stats(), GuardStats::default());
    }

    #[test]
    fn upgrades_past_the_rate_are_429_with_a_retry_hint() {
        let config = GuardConfig {
            max_upgrades_per_ip: Some(3),
            ..GuardConfig::default()
        };
        let mut guard = Guarded::new(Nothing, config);
        for _ in 0..3 {
            assert!(guard.on_upgrade(&request(), peer([10, 0, 0, 1])).is_ok());
        }
        let refused = guard.on_upgrade(&request(), peer([10, 0, 0, 1]));
        assert!(matches!(
            refused,
            Err(HandshakeError::TooManyRequests { retry_after_secs }) if retry_after_secs >= 1
        ));
        assert!(guard.on_upgrade(&request(), peer([10, 0, 0, 2])).is_ok());
        assert_eq!(guard.stats().ip_upgrade_refusals, 1);
        assert_eq!(guard.tracked_ips(), 2);
    }

    #[test]
    fn zero_limits_are_rejected_by_validate() {
        let zero_rate = GuardConfig {
            message_rate: Some(RateLimit {
                per_second: 0,
                burst: 5,
            }),
            ..GuardConfig::default()
        };
        let zero_open = GuardConfig {
            max_connections_per_ip: Some(0),
            ..GuardConfig::default()
        };
        let zero_upgrades = GuardConfig {
            max_upgrades_per_ip: Some(0),
            ..GuardConfig::default()
        };
        for config in [zero_rate, zero_open, zero_upgrades] {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }
}
