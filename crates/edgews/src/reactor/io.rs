//! Per-connection I/O: reading into the shared buffer, writing, and
//! settling a connection after it was processed (timers, backpressure,
//! removal).

use super::clock::Stamp;
use super::conn::lookup;
use super::dispatch::dispatch;
use super::handler::Handler;
use super::lifecycle::Phase;
use super::splice::InputSpan;
use super::timer;
use super::token::ConnId;
use super::Reactor;
use crate::protocol::{CloseCode, Role, State};
use crate::tls::TlsRead;
use std::io::{self, Read};
use std::net::Shutdown;
use std::time::Duration;

/// Reads one connection may do per wakeup before others get their turn.
const MAX_READS_PER_WAKEUP: usize = 4;

/// How long a closed connection waits for the peer to close its side.
const DRAIN_LINGER: Duration = Duration::from_secs(2);

/// What one readiness event says about a connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct Readiness {
    /// Data (or a FIN, or an error) may be waiting.
    pub readable: bool,
    /// The socket may take more output.
    pub writable: bool,
    /// The peer closed its side (or the socket failed): after the data
    /// that may still wait, a read returns 0 (or the error).
    pub read_closed: bool,
}

impl<H: Handler> Reactor<H> {
    pub(super) fn on_conn_event(&mut self, id: ConnId, readiness: Readiness) {
        if readiness.read_closed {
            // Sticky: the peer's FIN (or an error) is in the socket, behind
            // whatever data came with it. Edge-triggered epoll will not say
            // so again, so reading goes on until 0 or an error, whatever
            // the size of the reads before it.
            match lookup(&mut self.hub.conns, id) {
                Some(conn) => conn.hup = true,
                None => return,
            }
        }
        if readiness.writable {
            self.on_writable(id);
        }
        if readiness.readable && lookup(&mut self.hub.conns, id).is_some() {
            self.on_readable(id);
        }
    }

    /// Reads until the socket is drained, the per-wakeup cap is reached, or
    /// backpressure pauses the connection.
    pub(super) fn on_readable(&mut self, id: ConnId) {
        if lookup(&mut self.hub.conns, id).is_some_and(|c| c.proxy.is_some()) {
            return self.proxy_readable(id);
        }
        let max_messages = self.hub.config.max_messages_per_turn;
        let mut budget = max_messages;
        if self.is_relay_waiting(id) {
            return self.settle(id); // until other workers' inboxes drain
        }
        for _ in 0..MAX_READS_PER_WAKEUP {
            let Some(conn) = lookup(&mut self.hub.conns, id) else {
                return;
            };
            if conn.life.is_draining() {
                return self.drain(id);
            }
            if conn.read_paused || conn.life.is_dialing() || !conn.engine.wants_read() {
                return self.settle(id);
            }
            let kept = match conn.leftover.as_deref() {
                Some(leftover) => {
                    self.read_buf[..leftover.len()].copy_from_slice(leftover);
                    leftover.len()
                }
                None => 0,
            };
            let space = self.read_buf.len() - kept;
            // input left by the per-turn cap is processed before any read:
            // no edge may come for it (the peer may have sent it all)
            let backlog = std::mem::take(&mut conn.backlog);
            let (n, drained) = if backlog || space == 0 {
                (0, false)
            } else {
                match conn.socket.read_input(&mut self.read_buf[kept..]) {
                    Ok(TlsRead::Eof) => return self.on_eof(id),
                    Ok(TlsRead::Data { len, drained }) => (len, drained),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return self.settle(id),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return self.on_io_error(id, &e),
                }
            };
            let hup = conn.hup;
            conn.leftover = None;
            let filled = kept + n;
            let (consumed, used) = self.process_input(id, filled, budget);
            budget -= used;
            let congested = std::mem::take(&mut self.hub.relay_congested);
            if consumed < filled {
                self.keep_rest(id, consumed..filled, budget == 0 || congested);
            }
            self.flush_current(id);
            if congested {
                // flow control: another worker is behind on relays
                self.wait_for_relays(id);
                return self.settle(id);
            }
            if budget == 0 {
                break; // the per-turn message cap: the others' turn
            }
            if backlog {
                continue; // the backlog is done: now read what else came
            }
            // Drained (a new arrival raises a new edge), or paused by
            // settle. A short read proves nothing once the peer hung up: its
            // FIN raised no edge of its own, so read on to 0.
            if (drained && !hup) || self.is_over_backpressure(id) {
                return self.settle(id);
            }
        }
        // more may be waiting: come back after the others had their turn
        self.ready.push(id);
        self.settle(id);
    }

    /// Keeps the unconsumed `rest` of the read buffer for the connection's
    /// next read; `backlog`: it holds whole messages to process first.
    fn keep_rest(&mut self, id: ConnId, rest: std::ops::Range<usize>, backlog: bool) {
        if let Some(conn) = lookup(&mut self.hub.conns, id) {
            if !conn.engine.is_closed() {
                conn.leftover = Some(Box::new(Box::from(&self.read_buf[rest])));
                conn.backlog = backlog;
            }
        }
    }

    /// Whether the connection's output holds more than `max_backpressure`.
    fn is_over_backpressure(&mut self, id: ConnId) -> bool {
        let max = self.hub.config.max_backpressure;
        lookup(&mut self.hub.conns, id).is_some_and(|c| held(c) > max)
    }

    /// Runs the engine over `read_buf[..filled]`, dispatching each event,
    /// at most `budget` of them. Returns the bytes consumed and the events
    /// dispatched.
    fn process_input(&mut self, id: ConnId, filled: usize, budget: usize) -> (usize, usize) {
        let now = self.hub.now;
        self.hub.input = InputSpan::of(&self.read_buf[..filled]);
        let mut pos = 0;
        let mut events = 0;
        let consumed = loop {
            let hub = &mut self.hub;
            let Some(conn) = hub.conns.get_mut(id.index()) else {
                break filled;
            };
            let input = &mut self.read_buf[pos..filled];
            let (used, event) = conn.engine.handle_input(now, input, &mut hub.scratch);
            pos += used;
            match event {
                Some(event) => dispatch(hub, &mut self.handler, id, event),
                None => break pos,
            }
            events += 1;
            if pos == filled || events == budget || self.hub.relay_congested {
                break pos; // an empty input yields no event (`handle_input`)
            }
        };
        self.hub.input = InputSpan::none();
        (consumed, events)
    }

    /// After a connection was processed: watches for writability once
    /// output waits, removes it when closed and flushed, pauses reading
    /// over the backpressure cap, and keeps its timer in the wheel. Every
    /// path that writes ends here (directly, or through `flush_dirty`)
    /// before the loop waits again.
    pub(super) fn settle(&mut self, id: ConnId) {
        let now = self.hub.now;
        let clock = &self.hub.clock;
        let max_backpressure = self.hub.config.max_backpressure;
        let close_timeout = self.hub.config.protocol.close_timeout;
        let Some(conn) = lookup(&mut self.hub.conns, id) else {
            return;
        };
        if let Err(e) = super::write::watch_writes(self.poll.registry(), conn) {
            return self.on_io_error(id, &e);
        }
        if conn.proxy.as_deref().is_some_and(|e| e.relays_or_dials()) {
            return self.proxy_settle(id);
        }
        if conn.engine.is_closed() {
            let flushed = conn.queue.is_empty() && !conn.socket.wants_write();
            if flushed && conn.peer_eof {
                return self.remove(id);
            }
            let server = conn.engine.role() == Role::Server;
            if flushed && server && conn.close_received && !conn.socket.is_tls() {
                // §7.1.1: the server closes the TCP connection first. The
                // closing handshake is complete and nothing may follow the
                // peer's close frame (§5.5.1), so no unread input can turn
                // our FIN into a reset: close now instead of shutting down
                // and waiting for its FIN (a shutdown, a wake-up and a read
                // less per connection). TLS lingers: its peer may still
                // send a close_notify.
                return self.remove(id);
            }
            // a TLS server says close_notify before its FIN
            let said_goodbye = if server && flushed && !conn.life.is_draining() {
                conn.socket.close_tls()
            } else {
                Ok(true)
            };
            let Ok(said_goodbye) = said_goodbye else {
                return self.remove(id);
            };
            if flushed && said_goodbye && conn.life.start_draining() {
                // §7.1.1: the server closes the TCP connection first; a client
                // waits for it (and gives up after the linger)
                conn.linger_until = Some(clock.stamp(now + DRAIN_LINGER));
                if server && conn.socket.tcp.shutdown(Shutdown::Write).is_err() {
                    return self.remove(id);
                }
                if conn.hup {
                    // its FIN already came and raises no new edge: read to it
                    self.ready.push(id);
                }
            }
            conn.linger_until
                .get_or_insert_with(|| clock.stamp(now + close_timeout));
        }
        if held(conn) > max_backpressure && !conn.read_paused {
            log::debug!("{id}: {} bytes of output held, reading paused", held(conn));
            conn.read_paused = true;
        }
        timer::rearm(
            &mut self.timers,
            id,
            &mut conn.timer_at,
            &mut conn.timer_phase,
            &conn.engine,
            conn.linger_until,
            clock,
        );
    }

    /// Takes a connection out of the slab, closing its socket. A connection
    /// that opened gets its `on_close` first if it has not had it.
    pub(super) fn remove(&mut self, id: ConnId) {
        let now = self.hub.now;
        if lookup(&mut self.hub.conns, id).is_some_and(|c| c.proxy.is_some()) {
            self.proxy_detach(id);
        }
        let Some(conn) = lookup(&mut self.hub.conns, id) else {
            return;
        };
        if conn.life.is_open() {
            if let Some(event) = conn.engine.handle_eof(now) {
                dispatch(&mut self.hub, &mut self.handler, id, event);
            }
        }
        self.hub.scratch.clear();
        self.hub.conns.remove(id.index());
        let link = &self.hub.link;
        link.slot()
            .held
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        link.process
            .connections
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Reads and drops what a closed connection still receives, until the
    /// peer closes its side.
    pub(super) fn drain(&mut self, id: ConnId) {
        for _ in 0..MAX_READS_PER_WAKEUP {
            let Some(conn) = lookup(&mut self.hub.conns, id) else {
                return;
            };
            // ciphertext too is dropped unread: the TLS session is over
            match conn.socket.tcp.read(&mut self.read_buf) {
                Ok(0) => return self.remove(id),
                Ok(n) if n < self.read_buf.len() && !conn.hup => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.remove(id),
            }
        }
        self.ready.push(id);
    }

    pub(super) fn on_eof(&mut self, id: ConnId) {
        let now = self.hub.now;
        let Some(conn) = lookup(&mut self.hub.conns, id) else {
            return;
        };
        conn.leftover = None;
        conn.peer_eof = true;
        if let Some(event) = conn.engine.handle_eof(now) {
            dispatch(&mut self.hub, &mut self.handler, id, event);
        }
        self.flush_current(id);
        self.settle(id);
    }

    pub(super) fn on_io_error(&mut self, id: ConnId, error: &io::Error) {
        let Some(conn) = lookup(&mut self.hub.conns, id) else {
            return;
        };
        if conn.proxy.is_some() {
            log::debug!("{id} {}: {error}", conn.peer.get());
            return self.proxy_io_error(id, &error.to_string());
        }
        let phase = conn.life.phase();
        let dialled_out = conn.engine.role() == Role::Client;
        if dialled_out && matches!(phase, Phase::Dialing | Phase::Handshake) {
            // an outbound connection that never opened (a refused TLS
            // certificate, a reset): its handler hears why
            return self.on_connect_error(id, error);
        }
        if conn.socket.is_tls() && error.kind() == io::ErrorKind::InvalidData {
            // not TLS, or TLS gone wrong: the alert went to the peer
            log::warn!("{id} {}: TLS: {error}", conn.peer.get());
            self.hub.stats.tls_errors += 1;
        } else {
            log::debug!("{id} {}: {error}", conn.peer.get());
        }
        conn.queue = Default::default();
        self.remove(id);
    }

    pub(super) fn on_connect_error(&mut self, id: ConnId, error: &io::Error) {
        if lookup(&mut self.hub.conns, id).is_some_and(|c| c.proxy.is_some()) {
            return self.proxy_io_error(id, &error.to_string());
        }
        let mut ctx = super::Context::new(&mut self.hub, Some(id));
        self.handler
            .on_connect_error(&mut ctx, id, &error.to_string());
        self.remove(id);
    }

    pub(super) fn run_ready(&mut self) {
        let ready = std::mem::take(&mut self.ready);
        for id in ready {
            self.on_readable(id);
        }
    }

    /// Handles the due timers a batch at a time, the batch's slots loaded
    /// before any is handled (`timer::warm`): at a million connections a
    /// slot is out of cache when its timer fires, and their misses overlap.
    pub(super) fn run_timers(&mut self) {
        let now_stamp = self.hub.clock.stamp(self.hub.now);
        loop {
            let due = self.timers.take_due(now_stamp);
            if due.is_empty() {
                return self.timers.return_due(due);
            }
            timer::warm(&self.hub.conns, &due, |c| {
                (c.id, c.timer_at, c.engine.timer_phase())
            });
            for &(at, id) in &due {
                self.fire_timer(at, id, now_stamp);
            }
            self.timers.return_due(due);
        }
    }

    /// One due timer entry: nothing when superseded by an earlier one, else
    /// the connection's linger, its proxy deadline or its engine's.
    fn fire_timer(&mut self, at: Stamp, id: ConnId, now_stamp: Stamp) {
        let now = self.hub.now;
        let Some(conn) = lookup(&mut self.hub.conns, id) else {
            return;
        };
        if !timer::fire(&mut conn.timer_at, at) {
            return; // superseded by an earlier entry
        }
        if conn.proxy.is_some() {
            // proxied: the one deadline is `linger_until` (see proxy.rs)
            match conn.linger_until {
                Some(t) if t <= now_stamp => self.proxy_timeout(id),
                Some(t) => {
                    conn.timer_at = Some(t);
                    self.timers.push(t, id);
                }
                None => {}
            }
            return;
        }
        if conn.linger_until.is_some_and(|t| t <= now_stamp) {
            log::debug!("{id} {}: dropped after lingering", conn.peer.get());
            if !conn.life.is_draining() {
                // output the peer never read; a drained close is clean
                self.hub.stats.timer_closes += 1;
            }
            conn.queue = Default::default();
            return self.remove(id);
        }
        let hub = &mut self.hub;
        let conn = &mut hub.conns[id.index()];
        if let Some(event) = conn.engine.handle_timeout(now, &mut hub.scratch) {
            dispatch(hub, &mut self.handler, id, event);
        }
        self.flush_current(id);
        self.settle(id);
    }

    pub(super) fn close_for_shutdown(&mut self, id: ConnId) {
        let now = self.hub.now;
        let Some(conn) = lookup(&mut self.hub.conns, id) else {
            return;
        };
        if conn.proxy.is_some() {
            return self.proxy_shutdown(id);
        }
        match conn.engine.state() {
            State::Open => {
                let engine = &mut conn.engine;
                let _ = conn.queue.append_with(|out| {
                    engine.close(now, CloseCode::GOING_AWAY, "server shutting down", out)
                });
                self.hub.mark_dirty(id);
            }
            State::Connecting => self.remove(id),
            State::Closing | State::Closed => {}
        }
    }

    /// Ends every remaining connection (shutdown timeout reached).
    pub(super) fn drop_all(&mut self) {
        let ids: Vec<ConnId> = self.hub.conns.iter().map(|(_, c)| c.id).collect();
        for id in ids {
            self.remove(id);
        }
    }
}

/// The output a connection holds: its queue and what waits inside its TLS
/// layer. What `max_backpressure` limits.
pub(super) fn held(conn: &super::conn::Conn) -> usize {
    conn.queue.cost() + conn.socket.pending()
}
