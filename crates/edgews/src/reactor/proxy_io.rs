//! Relaying a proxied pair's bytes: reading one end into the shared
//! buffer, tracking its frames, and writing them to the other end at once.
//!
//! Each direction holds at most one read's worth: what the other end's
//! socket does not take is queued there, and the reader waits
//! (`waiting_on_other`) until that queue is written, so a slow client stops
//! the proxy reading from its upstream, not the proxy's memory.

use super::conn::{lookup, Hub};
use super::handler::Handler;
use super::proxy::Side;
use super::token::ConnId;
use super::write::write_or_queue;
use super::Reactor;
use crate::protocol::relay::Tracker;
use crate::protocol::upstream::{allowed_rsv, read_answer, Answer};
use crate::protocol::{HandshakeError, Role};
use crate::tls::TlsRead;
use std::io;

/// The most one read of a proxied connection takes: what one direction
/// holds at most while its reader waits.
pub(super) const RELAY_READ: usize = 64 << 10;

/// Reads per wakeup before other connections get their turn.
const MAX_READS: usize = 4;

impl<H: Handler> Reactor<H> {
    /// `on_readable` for a proxied connection.
    pub(super) fn proxy_readable(&mut self, id: ConnId) {
        for _ in 0..MAX_READS {
            let Some(conn) = lookup(&mut self.hub.conns, id) else {
                return;
            };
            if conn.life.is_draining() {
                return self.drain(id);
            }
            let Some(end) = conn.proxy.as_deref() else {
                return;
            };
            // a client waiting for the upstream's answer is read only to
            // notice its leaving: what it sends is kept (one read at most)
            // and relayed once the upstream has answered
            let unanswered = end.side == Side::Client && end.tracker.is_none();
            if end.waiting_on_other || conn.life.is_dialing() {
                return self.settle(id);
            }
            let kept = match conn.leftover.take() {
                Some(leftover) => {
                    self.read_buf[..leftover.len()].copy_from_slice(&leftover);
                    leftover.len()
                }
                None => 0,
            };
            if unanswered && kept >= RELAY_READ {
                self.keep_proxy_rest(id, 0..kept);
                return self.settle(id);
            }
            let limit = (kept + RELAY_READ).min(self.read_buf.len());
            let (n, drained) = match conn.socket.read_input(&mut self.read_buf[kept..limit]) {
                Ok(TlsRead::Eof) => return self.proxy_eof(id),
                Ok(TlsRead::Data { len, drained }) => (len, drained),
                // what was kept is still to be relayed
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => (0, true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    self.keep_proxy_rest(id, 0..kept);
                    continue;
                }
                Err(e) => return self.on_io_error(id, &e),
            };
            let hup = conn.hup;
            let filled = kept + n;
            let consumed = match (unanswered, filled) {
                (true, _) | (_, 0) => 0,
                _ => self.proxy_input(id, filled),
            };
            self.keep_proxy_rest(id, consumed..filled);
            if drained && !hup {
                return self.settle(id);
            }
        }
        self.ready.push(id);
        self.settle(id);
    }

    /// Keeps `rest` of the read buffer (a partial header, a partial close
    /// frame, a partial answer) for the connection's next read.
    fn keep_proxy_rest(&mut self, id: ConnId, rest: std::ops::Range<usize>) {
        if rest.is_empty() {
            return;
        }
        if let Some(conn) = lookup(&mut self.hub.conns, id) {
            conn.leftover = Some(Box::new(Box::from(&self.read_buf[rest])));
        }
    }

    /// Handles `read_buf[..filled]` from connection `id`; returns how much
    /// of it is done with.
    fn proxy_input(&mut self, id: ConnId, filled: usize) -> usize {
        let Some(conn) = lookup(&mut self.hub.conns, id) else {
            return filled;
        };
        match conn.proxy.as_deref() {
            Some(end) if end.pending.is_some() => self.upstream_answered(id, filled),
            Some(_) => self.relay_from(id, 0, filled),
            None => filled,
        }
    }

    /// Tracks `read_buf[start..filled]` from `src` and writes what may go
    /// on to the other end; returns the end of what is done with.
    pub(super) fn relay_from(&mut self, src: ConnId, start: usize, filled: usize) -> usize {
        let hub = &mut self.hub;
        let Some(end) = lookup(&mut hub.conns, src).and_then(|c| c.proxy.as_deref_mut()) else {
            return filled;
        };
        let Some(tracker) = end.tracker.as_mut() else {
            return filled;
        };
        let scanned = tracker.scan(&self.read_buf[start..filled]);
        let at_boundary = tracker.at_boundary();
        let other = end.other;
        end.count(scanned.forward);
        // a client that failed gets our close in place of the upstream's
        let owed = scanned
            .close
            .and(other)
            .and_then(|dst| owed_close(hub, dst));
        let forward = match owed {
            Some(_) => scanned.close_at,
            None => scanned.forward,
        };
        let bytes = &self.read_buf[start..start + forward];
        let full = match other {
            Some(dst) => send_to(hub, dst, bytes, at_boundary),
            None => Ok(false),
        };
        match full {
            Ok(full) => {
                if let Some(end) = lookup(&mut hub.conns, src).and_then(|c| c.proxy.as_deref_mut())
                {
                    end.waiting_on_other = full;
                }
            }
            Err(e) => {
                if let Some(dst) = other {
                    self.on_io_error(dst, &e);
                }
            }
        }
        if let (Some((code, reason)), Some(dst)) = (owed, other) {
            self.inject_close(dst, code, &reason, true);
        }
        if let Some(code) = scanned.close {
            self.close_relayed(src, code);
        }
        if let Some(error) = scanned.error {
            self.stream_failed(src, &error);
        }
        start + scanned.consumed
    }

    /// The upstream's (or a health check's) answer in `read_buf[..filled]`.
    fn upstream_answered(&mut self, id: ConnId, filled: usize) -> usize {
        let max_head = self.hub.config.protocol.max_head_size;
        let Some(end) = lookup(&mut self.hub.conns, id).and_then(|c| c.proxy.as_deref_mut()) else {
            return filled;
        };
        let Some(pending) = end.pending.as_deref() else {
            return filled;
        };
        let offered: Vec<&str> = pending.offered.iter().map(String::as_str).collect();
        let answer = match read_answer(&self.read_buf[..filled], &pending.key, &offered) {
            Answer::Partial if filled <= max_head => return 0,
            Answer::Partial => Answer::Invalid("response head too large"),
            answer => answer,
        };
        let (side, client, upstream) = (end.side, end.other, end.upstream);
        end.pending = None;
        if side == Side::Probe {
            let status = match answer {
                Answer::Switching { .. } => Ok(101),
                Answer::Status(status) => Ok(status),
                Answer::Invalid(why) => Err(why.to_string()),
                Answer::Partial => unreachable!("handled above"),
            };
            self.probe_done(upstream, status);
            self.remove(id);
            return filled;
        }
        let Some(client) = client else {
            self.remove(id);
            return filled;
        };
        match answer {
            Answer::Switching {
                head_len,
                subprotocol,
                extensions,
            } => {
                self.switch(client, id, subprotocol.as_deref(), extensions.as_deref());
                self.relay_from(id, head_len, filled)
            }
            Answer::Status(status) => {
                let reason = format!("the upstream answered {status}");
                let outcome = super::proxy::ProxyOutcome::Refused(status);
                self.refuse_client(client, HandshakeError::Refused(status, reason), outcome);
                self.remove(id);
                filled
            }
            Answer::Invalid(why) => {
                let outcome = super::proxy::ProxyOutcome::Invalid(why.to_string());
                let error = HandshakeError::Refused(502, format!("bad gateway: {why}"));
                self.refuse_client(client, error, outcome);
                self.remove(id);
                filled
            }
            Answer::Partial => filled,
        }
    }

    /// The upstream accepted: the client gets its 101, and both ends relay.
    fn switch(&mut self, client: ConnId, up: ConnId, protocol: Option<&str>, ext: Option<&str>) {
        let rsv = allowed_rsv(ext);
        let max_message = self.hub.config.protocol.max_message_size;
        let hub = &mut self.hub;
        let Some(conn) = lookup(&mut hub.conns, client) else {
            return;
        };
        if conn
            .engine
            .accept_relayed(protocol, ext, &mut hub.scratch)
            .is_err()
        {
            hub.scratch.clear();
            return;
        }
        conn.life.open();
        conn.linger_until = None;
        let peer = conn.peer.get();
        if let Some(end) = conn.proxy.as_deref_mut() {
            end.tracker = Some(Tracker::new(Role::Client, rsv, max_message));
            log::info!("{client} {peer}: relayed to upstream {}", end.upstream);
        }
        self.flush_current(client);
        self.ready.push(client); // what the client sent behind its request
        if let Some(conn) = lookup(&mut self.hub.conns, up) {
            conn.life.open();
            conn.linger_until = None;
            if let Some(end) = conn.proxy.as_deref_mut() {
                end.tracker = Some(Tracker::new(Role::Server, rsv, u64::MAX));
            }
        }
    }
}

/// Writes `bytes` to `dst`, behind what it holds; returns whether it now
/// holds some (its writer must wait). Our own close frame for `dst` goes
/// out right after them when they end at a frame boundary.
pub(super) fn send_to(
    hub: &mut Hub,
    dst: ConnId,
    bytes: &[u8],
    at_boundary: bool,
) -> io::Result<bool> {
    let Some(conn) = lookup(&mut hub.conns, dst) else {
        return Ok(false);
    };
    let Some(end) = conn.proxy.as_deref_mut() else {
        return Ok(false);
    };
    if end.close_sent {
        return Ok(false); // §5.5.1: nothing after a close frame
    }
    let inject = if at_boundary { end.inject.take() } else { None };
    if inject.is_some() {
        end.close_sent = true;
    }
    for piece in [Some(bytes), inject.as_deref()].into_iter().flatten() {
        if conn.queue.is_empty() && !conn.life.is_dialing() {
            write_or_queue(conn, piece)?;
        } else {
            conn.queue.push_slice(piece);
        }
    }
    let full = !conn.queue.is_empty() || conn.socket.wants_write();
    if full {
        hub.mark_dirty(dst);
    }
    Ok(full)
}

/// The close `dst` is owed (see `ProxyEnd::owed_close`), if any.
fn owed_close(hub: &mut Hub, dst: ConnId) -> Option<(crate::protocol::CloseCode, String)> {
    let end = lookup(&mut hub.conns, dst)?.proxy.as_deref()?;
    end.owed_close.as_deref().cloned()
}
