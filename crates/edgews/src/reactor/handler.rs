//! The application interface: a [`Handler`] reacts to connection events and
//! acts through a [`Context`](super::Context).

use super::context::Context;
use super::token::ConnId;
use crate::protocol::{Closed, HandshakeError, Message, Request};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Instant;

/// What the application does with connections. Every method but
/// [`on_message`](Handler::on_message) has a default.
///
/// Every connection that opens ([`on_open`](Handler::on_open)) ends in
/// exactly one [`on_close`](Handler::on_close), whatever ends it: a close
/// handshake, a protocol error, a timeout, shutdown, or the peer vanishing.
pub trait Handler {
    /// Decides whether to accept a valid upgrade request (after the
    /// protocol's own checks and the origin policy). The request shows the
    /// path, query and headers: the place for token checks. Return
    /// `Err(HandshakeError::Refused(status, reason))` to refuse it; an
    /// accepted connection may carry a `user` (an authenticated identity)
    /// that [`OpenInfo`] and [`Context::user`] report later.
    fn on_upgrade(
        &mut self,
        request: &Request<'_>,
        peer: SocketAddr,
    ) -> Result<Accept, HandshakeError> {
        let _ = (request, peer);
        Ok(Accept::default())
    }

    /// Answers a plain HTTP request (not an upgrade). The default serves
    /// `GET /healthz` (`200 ok`) and `GET /metrics` (Prometheus text; any
    /// client that reaches the port can read it) and answers other GETs
    /// with 426, other methods with 405. `GET /readyz` never comes here:
    /// the reactor answers it (503 while the Redis link is down, else 200).
    fn on_http(
        &mut self,
        ctx: &mut Context<'_>,
        request: &Request<'_>,
        peer: SocketAddr,
    ) -> HttpResponse {
        let _ = peer;
        if request.path() == "/metrics" && request.method == "GET" {
            return HttpResponse::metrics(ctx.metrics_text());
        }
        HttpResponse::default_for(request)
    }

    /// A connection opened (server: the upgrade was accepted; client: the
    /// server accepted ours).
    fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId, info: &OpenInfo<'_>) {
        let _ = (ctx, id, info);
    }

    /// A complete message arrived. Its payload may borrow the read buffer:
    /// copy it (`into_owned`) to keep it.
    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, message: Message<'_>);

    /// A ping arrived; the pong has already been queued.
    fn on_ping(&mut self, ctx: &mut Context<'_>, id: ConnId, payload: &[u8]) {
        let _ = (ctx, id, payload);
    }

    /// A pong arrived.
    fn on_pong(&mut self, ctx: &mut Context<'_>, id: ConnId, payload: &[u8]) {
        let _ = (ctx, id, payload);
    }

    /// A connection that opened has ended; called exactly once.
    fn on_close(&mut self, ctx: &mut Context<'_>, id: ConnId, closed: &Closed) {
        let _ = (ctx, id, closed);
    }

    /// An outbound connection failed before it opened.
    fn on_connect_error(&mut self, ctx: &mut Context<'_>, id: ConnId, error: &str) {
        let _ = (ctx, id, error);
    }

    /// Another worker relayed a message on a topic
    /// ([`Context::publish_message`], [`Context::relay`]): deliver it to
    /// this worker's subscribers with [`Context::send_relayed`]. Messages
    /// on [`Channel::All`](super::Channel::All) (a broadcast) never come
    /// here: the reactor delivers them itself. The default drops it:
    /// a handler without topics has nobody to give it to.
    fn on_relayed(&mut self, ctx: &mut Context<'_>, relayed: &super::Relayed) {
        let _ = (ctx, relayed);
    }

    /// Relayed messages on `channel` were lost at this worker's full inbox
    /// (see `RELAY_BACKLOG_MESSAGES`): close the connections that would
    /// have received them (the ready-made servers close the topic's
    /// subscribers with 1013), so that none misses a message silently.
    fn on_relay_lost(&mut self, ctx: &mut Context<'_>, channel: &super::Channel) {
        let _ = (ctx, channel);
    }

    /// A message from another instance through Redis (`--redis`), on a
    /// key that is neither the broadcast nor a topic (those the reactor
    /// delivers itself, as if published here): a chat room's events.
    /// Called on the worker holding the link (worker 0), which relays
    /// what it delivers to the others. The default drops it.
    fn on_bridged(&mut self, ctx: &mut Context<'_>, message: &crate::redis::link::Bridged) {
        let _ = (ctx, message);
    }

    /// Redis confirmed the subscription to `key`, the first time or again
    /// after a reconnection (on the worker holding the link): a chat room
    /// asks the other instances who is in it.
    fn on_bridge_subscribed(&mut self, ctx: &mut Context<'_>, key: &str) {
        let _ = (ctx, key);
    }

    /// A proxied connection ([`Accept::proxy`]) ended, however it ended
    /// (called exactly once for each accepted with a target): what a
    /// balancer counts connections and failures with.
    fn on_proxy_end(
        &mut self,
        ctx: &mut Context<'_>,
        id: ConnId,
        upstream: usize,
        outcome: &super::ProxyOutcome,
    ) {
        let _ = (ctx, id, upstream, outcome);
    }

    /// A health check ([`Context::probe`]) of `upstream` finished: the
    /// HTTP status it answered, or why it could not.
    fn on_probe(&mut self, ctx: &mut Context<'_>, upstream: usize, result: Result<u16, String>) {
        let _ = (ctx, upstream, result);
    }

    /// When the handler next wants [`on_timeout`](Handler::on_timeout).
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// The handler's own deadline passed.
    fn on_timeout(&mut self, ctx: &mut Context<'_>, now: Instant) {
        let _ = (ctx, now);
    }
}

/// The decision to accept an upgrade.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accept {
    /// Who the connection belongs to, when the upgrade authenticated it.
    pub user: Option<String>,
    /// Relay the connection to this upstream (`edgews proxy`) instead of
    /// opening it here: the request goes upstream, the client is answered
    /// with the upstream's answer, and then the frames are relayed as they
    /// are. The handler hears [`Handler::on_proxy_end`] instead of
    /// `on_open` and `on_close`.
    pub proxy: Option<Box<super::ProxyTarget>>,
}

/// What [`Handler::on_open`] learns about a new connection.
#[derive(Debug)]
pub struct OpenInfo<'a> {
    /// The peer's address.
    pub peer: SocketAddr,
    /// Server side: the upgrade request (path, query, headers).
    pub request: Option<&'a Request<'a>>,
    /// The negotiated subprotocol, if any.
    pub subprotocol: Option<&'a str>,
    /// The identity [`Handler::on_upgrade`] attached, if any.
    pub user: Option<&'a str>,
    /// The connection runs over TLS (`wss://`).
    pub secure: bool,
}

/// A plain HTTP response, sent with `Connection: close`.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// Extra headers, as `Name: value`.
    pub headers: Vec<String>,
    /// The body.
    pub body: Cow<'static, [u8]>,
}

impl HttpResponse {
    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<Cow<'static, str>>) -> HttpResponse {
        let body = match body.into() {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        };
        HttpResponse {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body,
        }
    }

    /// A Prometheus text exposition.
    pub fn metrics(text: String) -> HttpResponse {
        HttpResponse {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            headers: Vec::new(),
            body: Cow::Owned(text.into_bytes()),
        }
    }

    /// The default answer: `GET /healthz` is `200 ok`; another GET is 426
    /// (this is a WebSocket endpoint); other methods are 405 (so HEAD never
    /// gets a body it should not have).
    pub fn default_for(request: &Request<'_>) -> HttpResponse {
        match (request.method, request.path()) {
            ("GET", "/healthz") => HttpResponse::text(200, "ok\n"),
            ("GET", _) => {
                let not_upgrade = HandshakeError::NotUpgrade;
                let mut r = HttpResponse::text(not_upgrade.status(), format!("{not_upgrade}\n"));
                r.headers = vec![
                    "Upgrade: websocket".into(),
                    "Sec-WebSocket-Version: 13".into(),
                ];
                r
            }
            _ => HttpResponse::text(405, "method not allowed\n"),
        }
    }
}
