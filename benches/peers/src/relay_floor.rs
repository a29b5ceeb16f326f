//! `relay-floor`: not a proxy but a yardstick for `benches/proxy.sh`, as
//! `floor` is for the echo benchmarks. It does only what no WebSocket
//! reverse proxy can avoid on this machine: one edge-triggered epoll loop
//! (mio) on one thread, a client accepted and an upstream connection opened
//! (non-blocking) for it, then bytes relayed both ways with one `read` and
//! one `write` per chunk, the write straight from the read buffer. It parses
//! nothing (the HTTP upgrade and the frames pass as bytes), keeps no timers
//! and sets no limits.
//!
//! Each direction is read until a short read (less than the 64 KiB buffer,
//! shared by all connections) proves the socket drained, so no read is spent
//! on `WouldBlock` unless the socket reported its end (then it is read to
//! EOF, which no new edge would announce). What the kernel does not take
//! waits in that direction's own buffer, and the direction's reader pauses
//! until it is written, as `edgews proxy` does. TCP_NODELAY is on at both
//! ends, as nginx and edgews set it. When either end reads EOF (or fails),
//! both sockets are closed; nothing read is lost, as a direction only reads
//! once what it read before is all in the kernel.
//!
//! Its µs per message in `benches/proxy.sh` is what a proxy whose own code
//! cost nothing would spend in the kernel: the bound on nginx and edgews.

use crate::event_loop::{self, LISTENER};
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddr;

/// The read buffer, one for all connections.
const READ_BUFFER: usize = 64 << 10;

/// A pair's two sockets.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Client,
    Upstream,
}

impl Side {
    /// The token of this side of the pair at `key`.
    fn token(self, key: usize) -> Token {
        Token(2 * key + self as usize)
    }

    /// The pair's key and the side a token stands for.
    fn of(token: Token) -> (usize, Side) {
        match token.0 % 2 {
            0 => (token.0 / 2, Side::Client),
            _ => (token.0 / 2, Side::Upstream),
        }
    }

    fn other(self) -> Side {
        match self {
            Side::Client => Side::Upstream,
            Side::Upstream => Side::Client,
        }
    }
}

/// One direction of a pair: the bytes its writer has not taken yet.
#[derive(Default)]
struct Direction {
    /// `pending[at..]` waits for the writer; while it does, the reader
    /// pauses. `at` is 0 while `pending` is empty.
    pending: Vec<u8>,
    at: usize,
    /// The reader reported its end (or an error): read it to EOF, as no
    /// edge will come again.
    hup: bool,
}

/// A client and its upstream connection.
struct Pair {
    client: TcpStream,
    upstream: TcpStream,
    /// The upstream's non-blocking connect has completed.
    connected: bool,
    /// Client to upstream.
    up: Direction,
    /// Upstream to client.
    down: Direction,
}

impl Pair {
    /// The reading socket, the writing socket and the direction from
    /// `from`.
    fn from(&mut self, from: Side) -> (&mut TcpStream, &mut TcpStream, &mut Direction) {
        match from {
            Side::Client => (&mut self.client, &mut self.upstream, &mut self.up),
            Side::Upstream => (&mut self.upstream, &mut self.client, &mut self.down),
        }
    }

    fn direction(&mut self, from: Side) -> &mut Direction {
        self.from(from).2
    }
}

/// Relays between clients of `addr` and `upstream` until killed.
pub fn serve(addr: SocketAddr, upstream: SocketAddr) -> io::Result<()> {
    let mut pairs: slab::Slab<Pair> = slab::Slab::new();
    let mut buf = vec![0u8; READ_BUFFER].into_boxed_slice();
    event_loop::run(addr, TcpListener::bind, |poll, listener, events| {
        for event in events.iter() {
            if event.token() == LISTENER {
                accept_one(poll, listener, upstream, &mut pairs);
                continue;
            }
            let (key, side) = Side::of(event.token());
            let Some(pair) = pairs.get_mut(key) else {
                continue;
            };
            if on_event(pair, side, event, &mut buf).is_err() {
                let mut pair = pairs.remove(key);
                let _ = poll.registry().deregister(&mut pair.client);
                let _ = poll.registry().deregister(&mut pair.upstream);
            }
        }
    })
}

/// Accepts the client the listener was reported for and starts its
/// upstream connection.
fn accept_one(
    poll: &Poll,
    listener: &TcpListener,
    upstream: SocketAddr,
    pairs: &mut slab::Slab<Pair>,
) {
    let Some(client) = event_loop::accept(listener, "relay-floor") else {
        return;
    };
    if let Err(e) = start_pair(poll, client, upstream, pairs) {
        eprintln!("relay-floor: {upstream}: {e}");
    }
}

/// Connects to the upstream for `client` and registers both; on an error
/// the client is dropped (closed).
fn start_pair(
    poll: &Poll,
    mut client: TcpStream,
    upstream: SocketAddr,
    pairs: &mut slab::Slab<Pair>,
) -> io::Result<()> {
    client.set_nodelay(true)?;
    let mut upstream = TcpStream::connect(upstream)?;
    let entry = pairs.vacant_entry();
    let interest = Interest::READABLE | Interest::WRITABLE;
    let registry = poll.registry();
    registry.register(&mut client, Side::Client.token(entry.key()), interest)?;
    if let Err(e) = registry.register(&mut upstream, Side::Upstream.token(entry.key()), interest) {
        let _ = registry.deregister(&mut client);
        return Err(e);
    }
    entry.insert(Pair {
        client,
        upstream,
        connected: false,
        up: Direction::default(),
        down: Direction::default(),
    });
    Ok(())
}

/// Handles one event on `side` of `pair`; `Err` (an EOF too) ends the pair.
fn on_event(pair: &mut Pair, side: Side, event: &Event, buf: &mut [u8]) -> io::Result<()> {
    if event.is_read_closed() || event.is_error() {
        pair.direction(side).hup = true;
    }
    if !pair.connected {
        // the client waits (its bytes in its socket) until the upstream is
        // there; then it is read whether a new edge came or not
        if side == Side::Client
            || !upstream_connected(&pair.upstream)
                .inspect_err(|e| eprintln!("relay-floor: upstream: {e}"))?
        {
            return Ok(());
        }
        pair.connected = true;
        pair.upstream.set_nodelay(true)?;
        relay(pair, Side::Client, buf)?;
    } else if event.is_writable() && flush(pair, side.other())? {
        // the writer took all that waited: the paused reader goes on
        relay(pair, side.other(), buf)?;
    }
    if event.is_readable() || pair.direction(side).hup {
        relay(pair, side, buf)?;
    }
    Ok(())
}

/// Whether the upstream's non-blocking connect has completed (mio's
/// recipe: `take_error`, then `peer_addr`, which says ENOTCONN while Linux
/// still connects); `Err` if it failed.
fn upstream_connected(upstream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = upstream.take_error()? {
        return Err(e);
    }
    match upstream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads from `from` and writes each chunk to the other side until a short
/// read (or, after a hang-up, EOF) or until the writer leaves bytes; EOF
/// is `Err`.
fn relay(pair: &mut Pair, from: Side, buf: &mut [u8]) -> io::Result<()> {
    let (reader, writer, dir) = pair.from(from);
    while dir.pending.is_empty() {
        let n = match reader.read(buf) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let written = write_once(writer, &buf[..n])?;
        if written < n {
            dir.pending.extend_from_slice(&buf[written..n]);
        }
        if n < buf.len() && !dir.hup {
            return Ok(()); // drained: the next edge says when there is more
        }
    }
    Ok(())
}

/// Writes what waits in the direction from `from`; true if that emptied it
/// (false if nothing waited, or the kernel still leaves bytes).
fn flush(pair: &mut Pair, from: Side) -> io::Result<bool> {
    let (_, writer, dir) = pair.from(from);
    if dir.pending.is_empty() {
        return Ok(false);
    }
    dir.at += write_once(writer, &dir.pending[dir.at..])?;
    if dir.at < dir.pending.len() {
        return Ok(false); // the kernel is full: the next writable edge
    }
    dir.pending.clear();
    dir.at = 0;
    Ok(true)
}

/// One `write`: the bytes the kernel took (0 on `WouldBlock`).
fn write_once(writer: &mut TcpStream, bytes: &[u8]) -> io::Result<usize> {
    loop {
        match writer.write(bytes) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
