//! Every way output reaches a socket: the current connection's from the
//! scratch buffer (`write_or_queue`) or with payloads spliced from the read
//! buffer (`write_spliced`), queued output with `writev` on a writable edge
//! or at the end of a loop iteration (`flush_dirty`), and the completion of
//! an outbound connect.

use super::conn::{lookup, Conn};
use super::handler::Handler;
use super::splice::{Splice, MAX_SPLICES};
use super::token::ConnId;
use super::Reactor;
use mio::{Interest, Registry};
use std::io::{self, IoSlice, Write};

impl<H: Handler> Reactor<H> {
    /// Writes the current connection's output: straight from the scratch
    /// buffer when nothing is queued (the common case, no copy), otherwise
    /// behind what is queued.
    pub(super) fn flush_current(&mut self, id: ConnId) {
        let hub = &mut self.hub;
        let Some(conn) = hub.conns.get_mut(id.index()).filter(|c| c.id == id) else {
            hub.scratch.clear();
            hub.splices.clear();
            return;
        };
        let result = if !hub.splices.is_empty() {
            let result = write_spliced(conn, &hub.scratch, &hub.splices, &self.read_buf);
            hub.splices.clear();
            result
        } else if conn.life.is_dialing() {
            conn.queue.push_slice(&hub.scratch);
            Ok(())
        } else if conn.queue.is_empty() {
            write_or_queue(conn, &hub.scratch)
        } else {
            conn.queue.push_slice(&hub.scratch);
            conn.queue.write_to(&mut conn.socket).map(drop)
        };
        hub.scratch.clear();
        if let Err(e) = result {
            self.on_io_error(id, &e);
        }
    }

    pub(super) fn on_writable(&mut self, id: ConnId) {
        let Some(conn) = lookup(&mut self.hub.conns, id) else {
            return;
        };
        let tls_waits = conn.socket.wants_write();
        if conn.queue.is_empty() && !tls_waits && !conn.life.is_dialing() && !conn.read_paused {
            // Edge-triggered epoll reports "writable" whenever the peer's
            // ACKs free send-buffer space, i.e. after nearly every write.
            // With nothing queued there is nothing to write or resume, and
            // nothing changed since the connection was last settled.
            return;
        }
        if conn.life.is_dialing() {
            match connect_result(conn) {
                Ok(true) => conn.life.connected(),
                Ok(false) => return, // spurious
                Err(e) => return self.on_connect_error(id, &e),
            }
        }
        if let Err(e) = conn.socket.flush_tls() {
            return self.on_io_error(id, &e);
        }
        if let Err(e) = conn.queue.write_to(&mut conn.socket) {
            return self.on_io_error(id, &e);
        }
        if conn.read_paused && super::io::held(conn) <= self.hub.config.max_backpressure / 2 {
            conn.read_paused = false;
            self.ready.push(id); // the kernel may hold data no edge will announce
        }
        self.settle(id);
    }

    /// Writes every connection that has queued output, one `writev` each.
    pub(super) fn flush_dirty(&mut self) {
        while let Some(id) = self.hub.dirty.pop() {
            let Some(conn) = lookup(&mut self.hub.conns, id) else {
                continue;
            };
            conn.dirty = false;
            if !conn.life.is_dialing() {
                if let Err(e) = conn.queue.write_to(&mut conn.socket) {
                    self.on_io_error(id, &e);
                    continue;
                }
            }
            self.settle(id);
        }
    }
}

/// Writes `bytes` to an idle connection; queues what the kernel did not take.
#[inline]
pub(super) fn write_or_queue(conn: &mut Conn, bytes: &[u8]) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    loop {
        return match conn.socket.write(bytes) {
            Ok(n) => {
                if n < bytes.len() {
                    conn.queue.push_slice(&bytes[n..]);
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                conn.queue.push_slice(bytes);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
    }
}

/// Registers a connection for writability the first time output waits
/// for the kernel (its queue, or its TLS layer, holds bytes): accepted
/// plain sockets start out watching readability alone (`insert`). Once
/// registered it stays so: under edge triggering an idle writable socket
/// raises no events, and dropping the interest again would cost a system
/// call each time output waits. `reregister` reports a socket that is
/// writable already at once, so no edge is missed in between.
pub(super) fn watch_writes(registry: &Registry, conn: &mut Conn) -> io::Result<()> {
    if conn.write_interest || (conn.queue.is_empty() && !conn.socket.wants_write()) {
        return Ok(());
    }
    let interest = Interest::READABLE | Interest::WRITABLE;
    registry.reregister(&mut conn.socket.tcp, conn.id.token(), interest)?;
    conn.write_interest = true;
    Ok(())
}

/// Whether an outbound TCP connect completed (`Ok(false)`: not yet).
fn connect_result(conn: &mut Conn) -> io::Result<bool> {
    if let Some(e) = conn.socket.tcp.take_error()? {
        return Err(e);
    }
    match conn.socket.tcp.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes `scratch` with the spliced payloads of `input` in their places,
/// in one `writev`; queues what the kernel did not take (all of it while
/// something is queued already, or the connection is not yet connected).
fn write_spliced(
    conn: &mut Conn,
    scratch: &[u8],
    splices: &[Splice],
    input: &[u8],
) -> io::Result<()> {
    if splices.len() > MAX_SPLICES {
        // `Context::send` never splices more; were it to, nothing is lost:
        // everything is queued in order and written from the queue
        let mut from = 0;
        for splice in splices {
            conn.queue.push_slice(&scratch[from..splice.at]);
            conn.queue.push_slice(&input[splice.range.clone()]);
            from = splice.at;
        }
        conn.queue.push_slice(&scratch[from..]);
        if conn.life.is_dialing() {
            return Ok(());
        }
        return conn.queue.write_to(&mut conn.socket).map(drop);
    }
    let mut pieces = [IoSlice::new(&[]); 2 * MAX_SPLICES + 1];
    let mut n = 0;
    let mut from = 0;
    for splice in splices {
        pieces[n] = IoSlice::new(&scratch[from..splice.at]);
        pieces[n + 1] = IoSlice::new(&input[splice.range.clone()]);
        n += 2;
        from = splice.at;
    }
    pieces[n] = IoSlice::new(&scratch[from..]);
    let pieces = &pieces[..=n];
    let written = if conn.life.is_dialing() || !conn.queue.is_empty() {
        0
    } else {
        loop {
            match conn.socket.write_vectored(pieces) {
                Ok(k) => break k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break 0,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    };
    let mut skip = written;
    for piece in pieces {
        if skip >= piece.len() {
            skip -= piece.len();
            continue;
        }
        conn.queue.push_slice(&piece[skip..]);
        skip = 0;
    }
    Ok(())
}
