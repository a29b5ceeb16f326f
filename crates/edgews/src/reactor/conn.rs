//! One connection's slot in the reactor's slab, and the hub that holds
//! them together with what a [`Context`](super::Context) may touch.

use super::buffer::LazyQueue;
use super::clock::{Clock, Stamp};
use super::lifecycle::Lifecycle;
use super::metrics::Stats;
use super::settings::Settings;
use super::socket::Socket;
use super::splice::{InputSpan, Splice};
use super::token::ConnId;
use crate::protocol::Connection;
use crate::redis::link::Link as RedisLink;
use slab::Slab;
use std::net::SocketAddr;
use std::time::Instant;

/// A connection: socket, protocol engine, and what waits to be written.
/// While idle it owns no buffer: `leftover` and `queue` are empty.
#[derive(Debug)]
pub(crate) struct Conn {
    pub id: ConnId,
    /// TCP, or TLS over TCP.
    pub socket: Socket,
    pub engine: Connection,
    pub peer: Peer,
    /// Received bytes the engine has not consumed yet: a partial header or
    /// control frame, a partial handshake head, or (after the per-turn
    /// message cap) the rest of one read; less than the read buffer.
    /// Boxed twice: a thin pointer in every slot, since few connections
    /// have any.
    #[allow(clippy::redundant_allocation)]
    pub leftover: Option<Box<Box<[u8]>>>,
    /// Output the kernel did not take yet.
    pub queue: LazyQueue,
    /// The identity the upgrade attached (see `Accept::user`); a thin
    /// pointer, since most connections have none.
    #[allow(clippy::box_collection)] // 8 bytes in every slot instead of 24
    pub user: Option<Box<String>>,
    /// The earliest deadline this connection has in the timer wheel.
    pub timer_at: Option<Stamp>,
    /// The engine's [`timer_phase`](Connection::timer_phase) when its
    /// deadline was last looked at.
    pub timer_phase: u8,
    /// Closed, flushing its last bytes; dropped at this deadline regardless.
    pub linger_until: Option<Stamp>,
    /// Where the connection is in its life; changed only by
    /// [`Lifecycle`]'s transitions.
    pub life: Lifecycle,
    /// Admitted past `max_connections`: its upgrade is answered with 503.
    pub over_capacity: bool,
    /// Reading stopped because the output queue is over `max_backpressure`.
    pub read_paused: bool,
    /// In the reactor's dirty list (has queued output to flush).
    pub dirty: bool,
    /// The peer closed its side (read returned 0).
    pub peer_eof: bool,
    /// The closing handshake is complete: the peer's close frame came
    /// (it started the handshake, or answered ours).
    pub close_received: bool,
    /// `leftover` holds whole messages the per-turn cap left unprocessed:
    /// process them before reading again.
    pub backlog: bool,
    /// Accepted on the metrics listener: serves `/metrics` and `/healthz`
    /// only, never an upgrade.
    pub metrics_only: bool,
    /// An event said the peer hung up (or the socket failed): reads go on
    /// until 0 however short they are, since no further edge will come.
    pub hup: bool,
    /// The socket is registered for writability as well as readability
    /// (see `write::watch_writes`).
    pub write_interest: bool,
    /// A proxied connection's side of its pair (`edgews proxy`); its bytes
    /// go through `proxy_io.rs`, not the engine.
    pub proxy: Option<Box<super::proxy::ProxyEnd>>,
}

/// A peer address in 16 bytes instead of `SocketAddr`'s 32: IPv6 peers,
/// rarer, pay a small allocation.
#[derive(Debug, Clone)]
pub(crate) enum Peer {
    V4(std::net::SocketAddrV4),
    V6(Box<std::net::SocketAddrV6>),
}

impl Peer {
    pub fn new(addr: SocketAddr) -> Peer {
        match addr {
            SocketAddr::V4(a) => Peer::V4(a),
            SocketAddr::V6(a) => Peer::V6(Box::new(a)),
        }
    }

    pub fn get(&self) -> SocketAddr {
        match self {
            Peer::V4(a) => SocketAddr::V4(*a),
            Peer::V6(a) => SocketAddr::V6(**a),
        }
    }
}

/// The hub: the connections and the per-iteration state shared with
/// handlers (what a `Context` may touch). Not `Registry`, which names
/// mio's registration handle.
#[derive(Debug)]
pub(crate) struct Hub {
    pub conns: Slab<Conn>,
    /// Output of the connection being processed, written to its socket
    /// when its processing ends; empty between connections.
    pub scratch: Vec<u8>,
    /// Payloads in the read buffer that go out between the bytes of
    /// `scratch` (see `splice.rs`); empty between connections.
    pub splices: Vec<Splice>,
    /// Where the input being processed lies; none outside `process_input`.
    pub input: InputSpan,
    /// Connections with queued output from this iteration.
    pub dirty: Vec<ConnId>,
    /// The clock, read once per loop iteration.
    pub now: Instant,
    /// Converts deadlines to and from their 8-byte form.
    pub clock: Clock,
    /// The settings, validated once.
    pub config: Settings,
    pub stats: Stats,
    /// The handler asked the reactor to stop.
    pub stop_requested: bool,
    /// Outbound connections the handler asked for, opened after its callback.
    pub connect_requests: Vec<String>,
    /// This reactor's place among the workers (a process of one when it
    /// runs alone).
    pub link: super::process::Link,
    /// A relay found another worker's inbox over its high-water mark: the
    /// connection being processed stops after this message.
    pub relay_congested: bool,
    /// The process's link to Redis, on the worker that holds it (see
    /// `bridge.rs`).
    pub bridge: Option<Box<RedisLink>>,
    /// Upstream connections (and health checks) to open after the
    /// handler's callback (see `proxy.rs`).
    pub proxy_dials: Vec<super::proxy::ProxyDial>,
    /// A broadcast's recipients, kept between broadcasts (see
    /// `Context::broadcast_message`); empty, with its capacity, in between.
    pub recipients: Vec<ConnId>,
    /// Connections a handler asked to drop without a close frame
    /// (`Context::abort`), removed after this turn's writes.
    pub aborts: Vec<ConnId>,
}

impl Hub {
    /// Marks a connection as having queued output to flush this iteration.
    pub fn mark_dirty(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(id.index()).filter(|c| c.id == id) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(id);
            }
        }
    }
}

/// The connection `id` names in `conns`, if it still exists. A free
/// function so that the hub's other fields stay borrowable.
pub(crate) fn lookup(conns: &mut Slab<Conn>, id: ConnId) -> Option<&mut Conn> {
    conns.get_mut(id.index()).filter(|c| c.id == id)
}

#[cfg(test)]
mod size_tests {
    #[test]
    fn print_sizes() {
        eprintln!(
            "Conn {} Connection {} LazyQueue {} SocketAddr {} Option<Instant> {} Instant {} Peer {} ConnId {} TcpStream {}",
            std::mem::size_of::<super::Conn>(),
            std::mem::size_of::<crate::protocol::Connection>(),
            std::mem::size_of::<super::LazyQueue>(),
            std::mem::size_of::<std::net::SocketAddr>(),
            std::mem::size_of::<Option<std::time::Instant>>(),
            std::mem::size_of::<std::time::Instant>(),
            std::mem::size_of::<super::Peer>(),
            std::mem::size_of::<super::ConnId>(),
            std::mem::size_of::<super::Socket>(),
        );
    }
}
