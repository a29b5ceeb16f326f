//! How a proxied pair ends: close frames relayed or our own, an end that
//! vanishes or breaks the protocol, an upstream that never answers,
//! deadlines, shutdown, and the one `on_proxy_end` per client.
//!
//! The codes the client may get from the proxy itself (docs/usage.md):
//! 1012 when the upstream went away without a close frame, 1011 when it
//! broke the protocol, 1001 when the proxy shuts down, and the RFC's code
//! for the client's own violations (1002, or 1009 over `--max-message`).
//! Our close frame goes out only at a frame boundary of the bytes relayed
//! to that end; when the other end vanished in the middle of a frame, no
//! boundary will come, and the connection is closed without one (the
//! client sees 1006).

use super::conn::lookup;
use super::handler::Handler;
use super::proxy::{ProxyOutcome, Side};
use super::proxy_io::send_to;
use super::token::ConnId;
use super::Reactor;
use crate::protocol::close::truncate_reason;
use crate::protocol::frame::encode_frame;
use crate::protocol::{CloseCode, HandshakeError, OpCode, ProtocolError};
use std::net::Shutdown;
use std::time::Duration;

/// How long a finished connection waits for its peer's FIN.
const DRAIN_LINGER: Duration = Duration::from_secs(2);

impl<H: Handler> Reactor<H> {
    /// A close frame from `src` went to the other end (if there is one).
    pub(super) fn close_relayed(&mut self, src: ConnId, code: Option<CloseCode>) {
        let close_timeout = self.hub.config.protocol.close_timeout;
        let Some(end) = lookup(&mut self.hub.conns, src).and_then(|c| c.proxy.as_deref_mut())
        else {
            return;
        };
        end.close_received = true;
        log::debug!("{src}: close {code:?} relayed");
        let Some(dst) = end.other else {
            return;
        };
        if let Some(end) = lookup(&mut self.hub.conns, dst).and_then(|c| c.proxy.as_deref_mut()) {
            end.close_sent = true;
            let deadline = self.hub.now + close_timeout;
            self.set_proxy_deadline(dst, deadline);
        }
        self.settle(dst);
    }

    /// `src` broke the protocol. A client: its upstream hears the error's
    /// code at once, and the client gets it after the upstream's answer
    /// (`ProxyEnd::owed_close`), or at once when it has no upstream. An
    /// upstream: it is failed with 1002, and its client hears 1011.
    pub(super) fn stream_failed(&mut self, src: ConnId, error: &ProtocolError) {
        let Some(conn) = lookup(&mut self.hub.conns, src) else {
            return;
        };
        let peer = conn.peer.get();
        let Some(end) = conn.proxy.as_deref_mut() else {
            return;
        };
        end.close_received = true;
        let (side, other) = (end.side, end.other);
        log::info!(
            "{src} {peer}: {side:?} failed with {}: {error}",
            error.close_code()
        );
        if let (Side::Client, Some(upstream)) = (side, other) {
            // the upstream hears the code first; the client gets it after
            // everything the upstream sends before its close reply
            let code = error.close_code();
            let reason = error.to_string();
            end.owed_close = Some(Box::new((code, reason.clone())));
            return self.inject_close(upstream, code, &format!("client: {reason}"), true);
        }
        let (own, theirs, reason) = match side {
            // no upstream to hear it (its own ending is under way)
            Side::Client => (error.close_code(), CloseCode::GOING_AWAY, "client failed"),
            _ => (
                CloseCode::PROTOCOL_ERROR,
                CloseCode::INTERNAL_ERROR,
                "upstream protocol error",
            ),
        };
        let other_at_boundary = other.is_none_or(|o| self.is_at_boundary(o));
        self.inject_close(src, own, &error.to_string(), other_at_boundary);
        if let Some(other) = other {
            if side != Side::Client {
                self.mark_upstream_failed(other);
            }
            self.inject_close(other, theirs, reason, true);
        }
    }

    /// Whether what `src` sent on so far ends at a frame boundary.
    fn is_at_boundary(&mut self, src: ConnId) -> bool {
        lookup(&mut self.hub.conns, src)
            .and_then(|c| c.proxy.as_deref())
            .and_then(|e| e.tracker.as_ref())
            .is_none_or(|t| t.at_boundary())
    }

    fn mark_upstream_failed(&mut self, client: ConnId) {
        if let Some(end) = lookup(&mut self.hub.conns, client).and_then(|c| c.proxy.as_deref_mut())
        {
            end.upstream_failed = true;
        }
    }

    /// Sends our own close frame to `dst`: now if the bytes relayed to it
    /// end at a frame boundary, else at the next one; when no boundary can
    /// come (`at_boundary` false and its sender gone), `dst` is closed
    /// without one.
    pub(super) fn inject_close(
        &mut self,
        dst: ConnId,
        code: CloseCode,
        why: &str,
        at_boundary: bool,
    ) {
        let now = self.hub.now;
        let close_timeout = self.hub.config.protocol.close_timeout;
        let Some(conn) = lookup(&mut self.hub.conns, dst) else {
            return;
        };
        let Some(end) = conn.proxy.as_deref_mut() else {
            return;
        };
        if end.close_sent || end.tracker.is_none() {
            return;
        }
        let sender_gone = end.other.is_none();
        let mask = (end.side != Side::Client).then(rand::random::<[u8; 4]>);
        let reason = truncate_reason(why);
        let mut payload = code.0.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        let mut frame = Vec::with_capacity(payload.len() + 8);
        encode_frame(&mut frame, true, OpCode::Close, mask, &payload);
        end.inject = Some(frame);
        if !at_boundary && sender_gone {
            // a frame cut short: no close frame can follow it
            end.close_sent = true;
            end.close_received = true;
            end.inject = None;
            conn.queue = Default::default();
        } else if let Err(e) = send_to(&mut self.hub, dst, &[], at_boundary) {
            return self.on_io_error(dst, &e);
        }
        self.set_proxy_deadline(dst, now + close_timeout);
        self.settle(dst);
    }

    /// `src`'s peer closed its side (read returned 0).
    pub(super) fn proxy_eof(&mut self, src: ConnId) {
        if let Some(conn) = lookup(&mut self.hub.conns, src) {
            conn.peer_eof = true;
            conn.leftover = None;
        }
        self.remove(src);
    }

    /// Called first thing when a proxied connection is removed: the other
    /// end hears of it, and a client's handler gets its `on_proxy_end`.
    pub(super) fn proxy_detach(&mut self, id: ConnId) {
        let Some(conn) = lookup(&mut self.hub.conns, id) else {
            return;
        };
        let Some(end) = conn.proxy.take() else {
            return;
        };
        conn.life.end(); // no on_close: the handler hears on_proxy_end
        let vanished = !end.close_received;
        let at_boundary = end.tracker.as_ref().is_none_or(|t| t.at_boundary());
        if let Some(other) = end.other {
            self.other_gone(other, end.side, vanished, at_boundary);
        }
        match end.side {
            Side::Client => {
                let outcome = end.outcome.clone().unwrap_or(match end.tracker {
                    Some(_) => ProxyOutcome::Relayed {
                        upstream_failed: end.upstream_failed,
                    },
                    None => ProxyOutcome::Abandoned,
                });
                if let Some(conn) = lookup(&mut self.hub.conns, id) {
                    let peer = conn.peer.get();
                    log::info!("{id} {peer}: proxied connection ended: {outcome:?}");
                }
                let mut ctx = super::Context::new(&mut self.hub, None);
                self.handler
                    .on_proxy_end(&mut ctx, id, end.upstream, &outcome);
            }
            Side::Probe if end.pending.is_some() => {
                self.probe_done(end.upstream, Err("closed before answering".into()))
            }
            _ => {}
        }
    }

    /// The other end of `id` (a `gone` side) is gone; `vanished`: without a
    /// close frame; `at_boundary`: what it sent on ended at a boundary.
    fn other_gone(&mut self, id: ConnId, gone: Side, vanished: bool, at_boundary: bool) {
        let Some(end) = lookup(&mut self.hub.conns, id).and_then(|c| c.proxy.as_deref_mut()) else {
            return;
        };
        end.other = None;
        if end.side == Side::Client && end.tracker.is_none() {
            // still waiting for the upstream's answer
            return self.upstream_unreachable(id, "closed before answering".into(), false);
        }
        if end.side != Side::Client && end.tracker.is_none() {
            return self.remove(id); // a dial its client no longer waits for
        }
        if end.side != Side::Client {
            // an upstream whose client left: it hears 1001 (or nothing,
            // if the client had closed properly and its close went on)
            if !end.close_sent {
                self.inject_close(id, CloseCode::GOING_AWAY, "client went away", at_boundary);
            }
            return self.settle(id);
        }
        if let Some((code, reason)) = end.owed_close.as_deref().cloned() {
            self.inject_close(id, code, &reason, at_boundary);
            return self.settle(id);
        }
        if vanished && gone == Side::Upstream {
            end.upstream_failed = true;
            log::info!("{id}: upstream went away, closing with 1012");
            self.inject_close(
                id,
                CloseCode::SERVICE_RESTART,
                "upstream went away",
                at_boundary,
            );
        }
        self.settle(id);
    }

    /// The client's upstream could not be reached, or did not answer in
    /// time (`timed_out`): the client gets 502 or 504.
    pub(super) fn upstream_unreachable(&mut self, client: ConnId, why: String, timed_out: bool) {
        log::info!("{client}: upstream unreachable: {why}");
        let status = if timed_out { 504 } else { 502 };
        let error = HandshakeError::Refused(status, format!("upstream unreachable: {why}"));
        self.refuse_client(client, error, ProxyOutcome::Unreachable(why));
    }

    /// Answers a waiting client with `error`'s status; it ends as `outcome`.
    pub(super) fn refuse_client(
        &mut self,
        id: ConnId,
        error: HandshakeError,
        outcome: ProxyOutcome,
    ) {
        let hub = &mut self.hub;
        let Some(conn) = lookup(&mut hub.conns, id) else {
            return;
        };
        let Some(end) = conn.proxy.as_deref_mut() else {
            return;
        };
        end.outcome = Some(outcome);
        let other = end.other.take();
        hub.stats.record_handshake_failure(error.status());
        if conn.engine.reject(&error, &mut hub.scratch).is_err() {
            hub.scratch.clear();
        }
        conn.linger_until = None;
        self.flush_current(id);
        self.settle(id);
        if let Some(other) = other {
            if let Some(end) =
                lookup(&mut self.hub.conns, other).and_then(|c| c.proxy.as_deref_mut())
            {
                end.other = None;
            }
            self.remove(other);
        }
    }

    /// A proxied connection's socket failed (or its connect did).
    pub(super) fn proxy_io_error(&mut self, id: ConnId, why: &str) {
        let Some(conn) = lookup(&mut self.hub.conns, id) else {
            return;
        };
        let Some(end) = conn.proxy.as_deref_mut() else {
            return;
        };
        match (end.side, end.pending.is_some(), end.other) {
            (Side::Upstream, true, Some(client)) => {
                self.upstream_unreachable(client, why.to_string(), false)
            }
            (Side::Probe, true, _) => {
                end.pending = None;
                let upstream = end.upstream;
                self.probe_done(upstream, Err(why.to_string()));
                self.remove(id);
            }
            _ => {
                conn.queue = Default::default();
                self.remove(id);
            }
        }
    }

    /// A health check's result goes to the handler.
    pub(super) fn probe_done(&mut self, upstream: usize, result: Result<u16, String>) {
        let mut ctx = super::Context::new(&mut self.hub, None);
        self.handler.on_probe(&mut ctx, upstream, result);
    }

    /// `settle` for a proxied connection that relays: lets the other end
    /// read again once this one's output is written, and closes it once
    /// both close frames passed and its output is written.
    pub(super) fn proxy_settle(&mut self, id: ConnId) {
        let now = self.hub.now;
        let Some(conn) = lookup(&mut self.hub.conns, id) else {
            return;
        };
        let flushed = conn.queue.is_empty() && !conn.socket.wants_write();
        let Some(end) = conn.proxy.as_deref() else {
            return;
        };
        let finished = end.close_sent && end.close_received;
        let resume = end.other.filter(|_| flushed);
        if finished && flushed && !conn.life.is_draining() {
            if conn.peer_eof {
                return self.remove(id);
            }
            let said_goodbye = if end.side == Side::Client {
                conn.socket.close_tls()
            } else {
                Ok(true)
            };
            match said_goodbye {
                Ok(true) => {
                    conn.life.end();
                    conn.life.start_draining();
                    // §7.1.1: the server (here, to the client) closes TCP
                    // first; toward an upstream it is our turn as well
                    if conn.socket.tcp.shutdown(Shutdown::Write).is_err() {
                        return self.remove(id);
                    }
                    if conn.hup {
                        self.ready.push(id);
                    }
                    let linger = now + DRAIN_LINGER;
                    self.set_proxy_deadline(id, linger);
                }
                Ok(false) => {}
                Err(_) => return self.remove(id),
            }
        }
        if let Some(other) = resume {
            let waiting = lookup(&mut self.hub.conns, other)
                .and_then(|c| c.proxy.as_deref_mut())
                .filter(|e| e.waiting_on_other);
            if let Some(end) = waiting {
                end.waiting_on_other = false;
                self.ready.push(other);
            }
        }
    }

    /// A proxied connection's deadline passed: a client still waiting is
    /// answered 504; anything else (a close that got no answer, a drain
    /// that got no FIN) is dropped.
    pub(super) fn proxy_timeout(&mut self, id: ConnId) {
        let Some(end) = lookup(&mut self.hub.conns, id).and_then(|c| c.proxy.as_deref()) else {
            return self.remove(id);
        };
        match (end.side, end.pending.is_some(), end.other) {
            (Side::Upstream, true, Some(client)) => {
                self.upstream_unreachable(client, "no answer in time".into(), true)
            }
            (Side::Probe, true, _) => {
                let upstream = end.upstream;
                if let Some(end) =
                    lookup(&mut self.hub.conns, id).and_then(|c| c.proxy.as_deref_mut())
                {
                    end.pending = None;
                }
                self.probe_done(upstream, Err("no answer in time".into()));
                self.remove(id);
            }
            _ => {
                self.hub.stats.timer_closes += 1;
                self.remove(id)
            }
        }
    }

    /// Shutdown: both ends of a relayed pair hear 1001; a client still
    /// waiting for its upstream is answered 503.
    pub(super) fn proxy_shutdown(&mut self, id: ConnId) {
        let Some(end) = lookup(&mut self.hub.conns, id).and_then(|c| c.proxy.as_deref()) else {
            return;
        };
        match (end.side, end.tracker.is_some()) {
            (Side::Client, false) => {
                let error = HandshakeError::Refused(503, "the proxy is shutting down".into());
                self.refuse_client(id, error, ProxyOutcome::Abandoned);
            }
            (Side::Probe, _) => self.remove(id),
            (_, true) => {
                let at_boundary = end.other.is_none_or(|o| self.is_at_boundary(o));
                self.inject_close(
                    id,
                    CloseCode::GOING_AWAY,
                    "proxy shutting down",
                    at_boundary,
                );
            }
            (Side::Upstream, false) => {} // its client's refusal removes it
        }
    }
}
