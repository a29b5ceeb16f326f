//! Proxied connections (`edgews proxy`): a client's upgrade passed on to an
//! upstream server, then the frames of both directions relayed as they are.
//!
//! ```text
//!  client ──upgrade──▶ edge checks, on_upgrade picks a ProxyTarget
//!                      │ (the engine holds the request unanswered)
//!                      ▼
//!             upstream dialled (same slab, same poll), the request
//!             forwarded with X-Forwarded-For / -Proto / Forwarded
//!                      │
//!      101 ◀───────────┤ the upstream's answer: 101 relayed with its
//!   (or its status)    │ subprotocol and extensions; another status as is
//!                      ▼
//!             Relaying: each direction's frames tracked (relay::Tracker),
//!             bytes written on at once, the rest held, the reader paused
//! ```
//!
//! Both connections are ordinary slots in the slab with a [`ProxyEnd`]; the
//! reactor's paths branch to `proxy_io.rs` for them, since their bytes do
//! not go through an engine. This file holds the types and the dial; the
//! relaying is in `proxy_io.rs`, the endings in `proxy_close.rs`.

use super::conn::{lookup, Hub};
use super::handler::Handler;
use super::lifecycle::Lifecycle;
use super::socket::Socket;
use super::token::ConnId;
use super::Reactor;
use crate::protocol::relay::Tracker;
use crate::protocol::{Connection, Request, Role};
use crate::tls::TlsLayer;
use mio::net::TcpStream;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Where a proxied connection goes: [`Handler::on_upgrade`] names it in
/// [`Accept::proxy`](super::Accept::proxy).
#[derive(Debug, Clone)]
pub struct ProxyTarget {
    /// The handler's number for the upstream, given back in
    /// [`Handler::on_proxy_end`].
    pub upstream: usize,
    /// The upstream's address.
    pub addr: SocketAddr,
    /// `wss://`: TLS to the upstream, verified for this name (as
    /// `ServerConfig::client_tls` says); `None` for `ws://`.
    pub tls_name: Option<String>,
    /// Counters the reactor keeps for the upstream (shared by workers).
    pub counters: Arc<UpstreamCounters>,
}

impl PartialEq for ProxyTarget {
    fn eq(&self, other: &ProxyTarget) -> bool {
        (self.upstream, self.addr, &self.tls_name) == (other.upstream, other.addr, &other.tls_name)
    }
}

impl Eq for ProxyTarget {}

/// Bytes relayed through one upstream, counted as they go.
#[derive(Debug, Default)]
pub struct UpstreamCounters {
    /// Bytes from clients to the upstream (frames as sent, masked).
    pub bytes_to_upstream: AtomicU64,
    /// Bytes from the upstream to clients.
    pub bytes_from_upstream: AtomicU64,
}

impl UpstreamCounters {
    fn add(&self, to_upstream: bool, n: usize) {
        let counter = match to_upstream {
            true => &self.bytes_to_upstream,
            false => &self.bytes_from_upstream,
        };
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// How a proxied connection ended, for [`Handler::on_proxy_end`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyOutcome {
    /// The upstream could not be reached or did not answer in time: the
    /// client was answered 502 or 504.
    Unreachable(String),
    /// The upstream answered the upgrade with another status, which the
    /// client got too.
    Refused(u16),
    /// The upstream's answer was not a valid one for the client (502).
    Invalid(String),
    /// The client went away before the upstream answered.
    Abandoned,
    /// The connection was relayed and is over; `upstream_failed`: the
    /// upstream vanished or broke the protocol (the client got 1012 or
    /// 1011).
    Relayed {
        /// The upstream's fault, not the client's or a clean close.
        upstream_failed: bool,
    },
}

impl ProxyOutcome {
    /// Whether the upstream is to blame: what takes it out of rotation.
    pub fn is_upstream_failure(&self) -> bool {
        match self {
            ProxyOutcome::Unreachable(_) | ProxyOutcome::Invalid(_) => true,
            ProxyOutcome::Refused(status) => *status >= 500,
            ProxyOutcome::Relayed { upstream_failed } => *upstream_failed,
            ProxyOutcome::Abandoned => false,
        }
    }
}

/// Which end of a proxied pair a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The accepted connection from the client.
    Client,
    /// The connection to the upstream.
    Upstream,
    /// A health check of an upstream (`Context::probe`): no client.
    Probe,
}

/// The proxy state of one connection of a pair.
#[derive(Debug)]
pub(crate) struct ProxyEnd {
    pub side: Side,
    /// The other connection of the pair, while it exists.
    pub other: Option<ConnId>,
    /// The handler's number for the upstream, and its counters.
    pub upstream: usize,
    pub counters: Arc<UpstreamCounters>,
    /// The frames this connection sends, tracked; `None` until relaying.
    pub tracker: Option<Tracker>,
    /// Upstream side during the handshake: the client's key and offered
    /// subprotocols, to check the answer with.
    pub pending: Option<Box<PendingAnswer>>,
    /// Reading waits for the other end to write what it holds.
    pub waiting_on_other: bool,
    /// A close frame went toward this connection (relayed or our own):
    /// nothing more may be written to it but its TCP close.
    pub close_sent: bool,
    /// A close frame came from this connection (or it failed): nothing
    /// more it sends is relayed.
    pub close_received: bool,
    /// Our own close frame for this connection, written once the other
    /// direction is at a frame boundary.
    pub inject: Option<Vec<u8>>,
    /// Client side, after it broke the protocol: the close it is owed, sent
    /// once the upstream has answered our close (so that what the upstream
    /// said before, replies to the client's earlier messages, still
    /// reaches it, as from a server that failed the connection itself).
    #[allow(clippy::box_collection)]
    pub owed_close: Option<Box<(crate::protocol::CloseCode, String)>>,
    /// Client side: the upstream failed (what `on_proxy_end` reports).
    pub upstream_failed: bool,
    /// Client side: how it ended, once known before the end.
    pub outcome: Option<ProxyOutcome>,
}

impl ProxyEnd {
    pub fn new(side: Side, other: Option<ConnId>, target: &ProxyTarget) -> ProxyEnd {
        ProxyEnd {
            side,
            other,
            upstream: target.upstream,
            counters: target.counters.clone(),
            tracker: None,
            pending: None,
            waiting_on_other: false,
            close_sent: false,
            close_received: false,
            inject: None,
            owed_close: None,
            upstream_failed: false,
            outcome: None,
        }
    }

    /// Relaying, or the upstream side of a pair (or a health check): the
    /// proxy's own paths settle it. A client not yet answered settles as
    /// any connection in its handshake.
    pub fn relays_or_dials(&self) -> bool {
        self.tracker.is_some() || self.side != Side::Client
    }

    /// Counts `n` bytes this connection sent on to the other end.
    pub fn count(&self, n: usize) {
        self.counters.add(self.side == Side::Client, n);
    }
}

/// What the upstream's answer is checked against.
#[derive(Debug)]
pub(crate) struct PendingAnswer {
    pub key: Vec<u8>,
    pub offered: Vec<String>,
}

/// A dial the handler's decision asked for, made after its callback.
#[derive(Debug)]
pub(crate) struct ProxyDial {
    /// The client waiting for it; `None` for a health check.
    pub client: Option<ConnId>,
    pub target: ProxyTarget,
    /// The request head to send.
    pub request: Vec<u8>,
    pub answer: PendingAnswer,
}

/// An upgrade the handler sent to `target`: the client waits, unanswered,
/// while its request goes upstream (dialled after the callback).
pub(crate) fn hold_for_upstream(
    hub: &mut Hub,
    id: ConnId,
    request: &Request<'_>,
    target: ProxyTarget,
    user: Option<String>,
) {
    let Some(conn) = lookup(&mut hub.conns, id) else {
        return;
    };
    let peer = conn.peer.get();
    let mut forwarding = Vec::new();
    let headers = request.headers.iter();
    crate::forwarded::forward_headers(peer, conn.socket.is_tls(), headers, &mut forwarding);
    let mut head = Vec::with_capacity(512);
    crate::protocol::upstream::write_request(&mut head, request, &forwarding);
    let offered = request
        .header_all("sec-websocket-protocol")
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    let key = request
        .header("sec-websocket-key")
        .unwrap_or_default()
        .to_vec();
    conn.user = user.map(Box::new);
    conn.proxy = Some(Box::new(ProxyEnd::new(Side::Client, None, &target)));
    log::debug!(
        "{id} {peer}: {} to upstream {}",
        request.path(),
        target.upstream
    );
    hub.proxy_dials.push(ProxyDial {
        client: Some(id),
        target,
        request: head,
        answer: PendingAnswer { key, offered },
    });
}

impl<H: Handler> Reactor<H> {
    /// Dials the upstreams asked for during this turn.
    pub(super) fn open_proxy_dials(&mut self) {
        for dial in std::mem::take(&mut self.hub.proxy_dials) {
            let client = dial.client;
            let upstream = dial.target.upstream;
            if let Err(e) = self.dial(dial) {
                let reason = format!("cannot connect: {e}");
                match client {
                    Some(client) => self.upstream_unreachable(client, reason, false),
                    None => self.probe_done(upstream, Err(reason)),
                }
            }
        }
    }

    fn dial(&mut self, dial: ProxyDial) -> std::io::Result<()> {
        let target = &dial.target;
        let tls = match &target.tls_name {
            Some(name) => Some(self.client_tls_layer(name)?),
            None => None,
        };
        let tcp = TcpStream::connect(target.addr)?;
        let socket = match tls {
            Some(layer) => Socket::tls(tcp, layer),
            None => Socket::plain(tcp),
        };
        let now = self.hub.now;
        let config = self.hub.config.protocol.clone();
        let engine = Connection::open(now, config, Role::Client);
        let id = self.insert(socket, target.addr, engine, Lifecycle::outbound())?;
        self.hub
            .link
            .process
            .connections
            .fetch_add(1, Ordering::SeqCst);
        let side = match dial.client {
            Some(_) => Side::Upstream,
            None => Side::Probe,
        };
        let mut end = ProxyEnd::new(side, dial.client, target);
        end.pending = Some(Box::new(dial.answer));
        let conn = &mut self.hub.conns[id.index()];
        conn.proxy = Some(Box::new(end));
        conn.queue.push_slice(&dial.request);
        if let Some(client) = dial.client.and_then(|c| lookup(&mut self.hub.conns, c)) {
            if let Some(end) = client.proxy.as_deref_mut() {
                end.other = Some(id);
            }
        }
        let deadline = now + self.hub.config.protocol.handshake_timeout;
        self.set_proxy_deadline(id, deadline);
        self.settle(id);
        Ok(())
    }

    /// A TLS client session for `name`, with the configuration built on
    /// first use (as `connect` does).
    fn client_tls_layer(&mut self, name: &str) -> std::io::Result<TlsLayer> {
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        let server_name = crate::tls::server_name(name).map_err(|e| invalid(e.to_string()))?;
        let config = match &self.tls_client {
            Some(config) => config.clone(),
            None => {
                let built = self.hub.config.client_tls.build();
                let config = built.map_err(|e| invalid(e.to_string()))?;
                self.tls_client.insert(config).clone()
            }
        };
        let session = rustls::ClientConnection::new(config, server_name)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(TlsLayer::new(session.into()))
    }

    /// Makes `deadline` the connection's proxy deadline (see `proxy_timeout`).
    pub(super) fn set_proxy_deadline(&mut self, id: ConnId, deadline: std::time::Instant) {
        let stamp = self.hub.clock.stamp(deadline);
        if let Some(conn) = lookup(&mut self.hub.conns, id) {
            conn.linger_until = Some(stamp);
            if conn.timer_at.is_none_or(|at| stamp < at) {
                conn.timer_at = Some(stamp);
                self.timers.push(stamp, id);
            }
        }
    }
}
