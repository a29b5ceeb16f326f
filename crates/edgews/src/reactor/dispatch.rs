//! Turning engine events into handler calls.

use super::conn::{lookup, Hub};
use super::context::Context;
use super::handler::{Handler, HttpResponse, OpenInfo};
use super::show::Tag;
use super::token::ConnId;
use crate::protocol::{CloseCause, Closed, Event, HandshakeError, Message, Request};
use std::net::SocketAddr;

/// What an upgrade on the metrics listener is told.
const METRICS_ONLY: &str = "this listener serves /metrics, /healthz and /readyz only";

/// Hands one event of connection `id` to the handler, answering handshake
/// requests on the way. Output goes to the hub's scratch buffer. One
/// function per event below.
pub(crate) fn dispatch<H: Handler>(hub: &mut Hub, handler: &mut H, id: ConnId, event: Event<'_>) {
    match event {
        Event::Message(message) => message_arrived(hub, handler, id, message),
        Event::Upgrade(request) => upgrade_requested(hub, handler, id, &request),
        Event::HttpRequest(request) => http_requested(hub, handler, id, &request),
        Event::Rejected(e) => handshake_rejected(hub, id, &e),
        Event::Connected { subprotocol } => connected(hub, handler, id, subprotocol.as_deref()),
        Event::ConnectFailed(e) => {
            handler.on_connect_error(&mut Context::new(hub, Some(id)), id, &e.to_string());
        }
        Event::Ping(payload) => handler.on_ping(&mut Context::new(hub, Some(id)), id, payload),
        Event::Pong(payload) => handler.on_pong(&mut Context::new(hub, Some(id)), id, payload),
        Event::Closed(closed) => closed_after_open(hub, handler, id, &closed),
    }
}

/// A complete message: counted, then handed over. A text `Message` carries
/// its validity with it (its fields are private), so sending it back needs
/// no second check.
#[inline]
fn message_arrived<H: Handler>(hub: &mut Hub, handler: &mut H, id: ConnId, message: Message<'_>) {
    hub.stats.messages_in += 1;
    hub.stats.bytes_in += message.as_bytes().len() as u64;
    handler.on_message(&mut Context::new(hub, Some(id)), id, message);
}

/// A valid upgrade request: refused by the listener's or the server's
/// limits or by the handler, or accepted and opened (`on_open`).
fn upgrade_requested<H: Handler>(
    hub: &mut Hub,
    handler: &mut H,
    id: ConnId,
    request: &Request<'_>,
) {
    if lookup(&mut hub.conns, id).is_none() {
        return;
    }
    let peer = client_addr(hub, id, request);
    let Some(conn) = lookup(&mut hub.conns, id) else {
        return;
    };
    let decision = if conn.metrics_only {
        Err(HandshakeError::Refused(404, METRICS_ONLY.into()))
    } else if conn.over_capacity {
        Err(HandshakeError::ServerFull)
    } else {
        handler.on_upgrade(request, peer)
    };
    let accept = match decision {
        Ok(accept) => accept,
        Err(e) => return upgrade_refused(hub, id, peer, &e),
    };
    if let Some(target) = accept.proxy {
        return super::proxy::hold_for_upstream(hub, id, request, *target, accept.user);
    }
    let conn = &mut hub.conns[id.index()];
    if conn.engine.accept(&mut hub.scratch).is_err() {
        return;
    }
    conn.life.open();
    conn.user = accept.user.map(Box::new);
    hub.stats.opened += 1;
    // the path only: the query may carry a token (`?token=`)
    log::info!("{}: open {}", Tag::new(id, peer), request.path());
    // a copy: the handler gets the hub mutably through its context
    let user = conn.user.clone();
    let secure = conn.socket.is_tls();
    let info = OpenInfo {
        peer,
        request: Some(request),
        subprotocol: request.subprotocol,
        user: user.as_deref().map(String::as_str),
        secure,
    };
    handler.on_open(&mut Context::new(hub, Some(id)), id, &info);
}

/// The client's address: the TCP peer's, or from a trusted proxy the one
/// its forwarding headers name (`ServerConfig::trusted_proxies`), which then
/// stands for the peer everywhere (limits, logs, `Context::peer_addr`).
fn client_addr(hub: &mut Hub, id: ConnId, request: &Request<'_>) -> SocketAddr {
    let trusted = &hub.config.trusted_proxies;
    let Some(conn) = lookup(&mut hub.conns, id) else {
        return SocketAddr::from(([0, 0, 0, 0], 0));
    };
    let peer = conn.peer.get();
    if trusted.is_empty() {
        return peer;
    }
    let client = crate::forwarded::client_addr(peer, request.headers.iter(), trusted);
    if client != peer {
        log::debug!("{id} {peer}: client {client} (forwarded)");
        conn.peer = super::conn::Peer::new(client);
    }
    client
}

/// Answers a refused upgrade with its HTTP status.
fn upgrade_refused(hub: &mut Hub, id: ConnId, peer: SocketAddr, e: &HandshakeError) {
    // refusals under load (429, 503) are counted, not logged one by one: a
    // flood must not become a flood of log lines
    let level = match e.status() {
        429 | 503 => log::Level::Debug,
        _ => log::Level::Info,
    };
    log::log!(
        level,
        "{id} {peer}: upgrade refused with {}: {e}",
        e.status()
    );
    hub.stats.record_handshake_failure(e.status());
    if let Some(conn) = lookup(&mut hub.conns, id) {
        let _ = conn.engine.reject(e, &mut hub.scratch);
    }
}

/// A plain HTTP request: the handler's answer, or 404 where this listener
/// does not serve the path.
fn http_requested<H: Handler>(hub: &mut Hub, handler: &mut H, id: ConnId, request: &Request<'_>) {
    let Some(conn) = lookup(&mut hub.conns, id) else {
        return;
    };
    let peer = conn.peer.get();
    // the metrics listener serves only these two; with one configured, the
    // public listener no longer serves /metrics
    let served = match request.path() {
        "/metrics" | "/healthz" | "/readyz" if conn.metrics_only => true,
        _ if conn.metrics_only => false,
        "/metrics" => hub.config.metrics_listen.is_none(),
        _ => true,
    };
    let response = if served && request.method == "GET" && request.path() == "/readyz" {
        readiness(hub)
    } else if served {
        handler.on_http(&mut Context::new(hub, Some(id)), request, peer)
    } else {
        HttpResponse::text(404, "not found\n")
    };
    let headers: Vec<&str> = response.headers.iter().map(String::as_str).collect();
    log::debug!(
        "{id} {peer}: {} {} -> {}",
        request.method,
        request.path(),
        response.status
    );
    if let Some(conn) = lookup(&mut hub.conns, id) {
        let _ = conn.engine.respond(
            response.status,
            response.content_type,
            &headers,
            &response.body,
            &mut hub.scratch,
        );
    }
}

/// The engine refused a handshake itself (malformed, too large, timed out).
fn handshake_rejected(hub: &mut Hub, id: ConnId, e: &HandshakeError) {
    let peer = lookup(&mut hub.conns, id).map(|c| c.peer.get());
    hub.stats.record_handshake_failure(e.status());
    if *e == HandshakeError::Timeout {
        hub.stats.timer_closes += 1;
    }
    log::info!("{id} {peer:?}: handshake refused with {}: {e}", e.status());
}

/// Client side: the server accepted our upgrade.
fn connected<H: Handler>(hub: &mut Hub, handler: &mut H, id: ConnId, subprotocol: Option<&str>) {
    let Some(conn) = lookup(&mut hub.conns, id) else {
        return;
    };
    conn.life.open();
    hub.stats.opened += 1;
    let info = OpenInfo {
        peer: conn.peer.get(),
        request: None,
        subprotocol,
        user: None,
        secure: conn.socket.is_tls(),
    };
    handler.on_open(&mut Context::new(hub, Some(id)), id, &info);
}

/// A connection that opened has ended: counted, logged, `on_close` once.
fn closed_after_open<H: Handler>(hub: &mut Hub, handler: &mut H, id: ConnId, closed: &Closed) {
    let Some(conn) = lookup(&mut hub.conns, id) else {
        return;
    };
    conn.close_received = matches!(closed.cause, CloseCause::Peer | CloseCause::Local);
    if !conn.life.end() {
        return; // never opened, or its on_close was called already
    }
    let peer = conn.peer.get();
    hub.stats.record_close(closed.code.0);
    // `Tag` shows `{id} {peer}` in one piece: these lines come with every
    // connection (docs/benchmarks.md, "Connection setup")
    match &closed.cause {
        CloseCause::Failed(e) => {
            log::warn!("{}: failed with {}: {e}", Tag::new(id, peer), closed.code)
        }
        CloseCause::PingTimeout | CloseCause::CloseTimeout => {
            hub.stats.timer_closes += 1;
            log::info!(
                "{}: closed by timeout ({:?}), code {}",
                Tag::new(id, peer),
                closed.cause,
                closed.code
            )
        }
        cause => log::info!(
            "{}: closed ({cause:?}), code {} {:?}",
            Tag::new(id, peer),
            closed.code,
            closed.reason
        ),
    }
    handler.on_close(&mut Context::new(hub, Some(id)), id, closed);
}

/// `GET /readyz`: 503 while the process's Redis link is down, so that an
/// operator may take the instance out of rotation; 200 otherwise (and
/// always without `--redis`). `/healthz` stays 200 meanwhile: the instance
/// serves its own clients, and an orchestrator must not kill it for
/// Redis' sake.
fn readiness(hub: &Hub) -> HttpResponse {
    if hub.link.process.is_ready() {
        HttpResponse::text(200, "ready\n")
    } else {
        HttpResponse::text(503, "not ready: Redis is unreachable\n")
    }
}
