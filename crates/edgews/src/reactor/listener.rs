//! Accepting connections, and dialling out.

use super::conn::{Conn, Peer};
use super::handler::Handler;
use super::lifecycle::Lifecycle;
use super::socket::Socket;
use super::token::{self, ConnId};
use super::Reactor;
use crate::protocol::{Connection, WsUrl};
use crate::tls::TlsLayer;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustix::event::epoll::{self, EventData, EventFlags};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The listen backlog: connections the kernel queues before we accept
/// them. mio's `bind` uses 128, which drops bursts of connects (each then
/// waits a second for a SYN retransmission); the kernel caps this at
/// `net.core.somaxconn`.
const BACKLOG: i32 = 4096;

/// A non-blocking listening socket with `SO_REUSEADDR` and a deep backlog.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<mio::net::TcpListener> {
    bind_with(addr, false)
}

/// [`bind`], with `SO_REUSEPORT` when `shared`: one of several listeners on
/// the same address, one per worker, among which the kernel spreads new
/// connections by a hash of their addresses and ports.
pub(crate) fn bind_with(addr: SocketAddr, shared: bool) -> io::Result<mio::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if shared {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    // small messages must not wait for Nagle's algorithm; Linux copies
    // TCP_NODELAY to every accepted socket, which saves a `setsockopt`
    // per connection (`insert` sets it on outbound ones)
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// `EMFILE` (this process) or `ENFILE` (the whole system).
fn is_out_of_fds(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(24 | 23))
}

/// How long accepting pauses when the process is out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Connections admitted past `max_connections` only to be told 503.
const OVER_CAPACITY_SLACK: usize = 1024;

/// Registers a listening socket with the reactor's epoll instance for
/// readability, level-triggered.
///
/// mio registers every source edge-triggered, and an edge-triggered
/// listener must be accepted from until `accept` fails with `EAGAIN`, or a
/// connection could wait unseen. That failing `accept` is dear on Linux,
/// which sets up a socket and a file for the new connection before it
/// looks at the queue and tears both down when the queue is empty: 4.7-7.0
/// µs here, against 0.4-0.6 µs for an `epoll_wait` (`edgews-peers
/// syscall-costs`; docs/benchmarks.md, "Connection setup", "no `accept`
/// fails"). Level-triggered, epoll reports the listener on every turn while
/// connections wait, so one `accept` per report takes them all and none
/// fails (nginx's default, without `multi_accept`). Only the reactor's
/// listeners are registered so; see [`set_listening`] to pause them.
pub(crate) fn register_listener(
    registry: &Registry,
    listener: &mio::net::TcpListener,
    token: Token,
) -> io::Result<()> {
    epoll::add(registry, listener, event_data(token), EventFlags::IN)?;
    Ok(())
}

/// Stops (`on == false`) or resumes epoll's reports on a listener that
/// [`register_listener`] registered: level-triggered, a listener left
/// with waiting connections while accepting pauses would be reported on
/// every turn, and the loop would spin.
pub(crate) fn set_listening(
    registry: &Registry,
    listener: &mio::net::TcpListener,
    token: Token,
    on: bool,
) -> io::Result<()> {
    let flags = if on {
        EventFlags::IN
    } else {
        EventFlags::empty()
    };
    epoll::modify(registry, listener, event_data(token), flags)?;
    Ok(())
}

/// The epoll data mio reads a token from (`Token(data as usize)`).
fn event_data(token: Token) -> EventData {
    EventData::new_u64(token.0 as u64)
}

impl<H: Handler> Reactor<H> {
    /// Accepts one connection from the public listener or, with
    /// `metrics_only`, the metrics listener, which epoll reported readable
    /// (level-triggered: see [`register_listener`]; if more wait, the next
    /// turn reports it again). Out of descriptors, the waiting client is
    /// answered 503 with the reserve descriptor; if even that fails,
    /// accepting pauses briefly instead of spinning, and open connections
    /// keep being served.
    pub(super) fn accept_one(&mut self, metrics_only: bool) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let listener = if metrics_only {
                self.metrics_listener.as_ref()
            } else {
                self.listener.as_ref()
            };
            let Some(listener) = listener else {
                return;
            };
            match listener.accept() {
                Ok((socket, peer)) => return self.admit(socket, peer, metrics_only),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // nothing waits after all, or the connection was gone
                // before it was taken (ECONNABORTED): if more wait, the
                // next turn reports the listener again
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    return
                }
                Err(e) if is_out_of_fds(&e) && self.reserve.refuse_one(listener, &mut self.hub) => {
                    return
                }
                Err(e) => {
                    // ENOBUFS, ENOMEM, or no reserve: no spinning at 100% CPU
                    log::warn!("accept failed ({e}); pausing accepts for {ACCEPT_BACKOFF:?}");
                    self.accept_paused_until = Some(self.hub.now + ACCEPT_BACKOFF);
                    return self.set_listening(false);
                }
            }
        }
    }

    /// Resumes accepting once the back-off is over: the listeners are
    /// reported again, at once if connections wait.
    pub(super) fn maybe_resume_accept(&mut self) {
        if self.accept_paused_until.is_some_and(|t| t <= self.hub.now) {
            self.accept_paused_until = None;
            self.set_listening(true);
        }
    }

    /// Pauses or resumes epoll's reports on both listeners.
    fn set_listening(&mut self, on: bool) {
        let registry = self.poll.registry();
        let listeners = [
            (self.listener.as_ref(), token::LISTENER),
            (self.metrics_listener.as_ref(), token::METRICS_LISTENER),
        ];
        for (listener, token) in listeners {
            let Some(listener) = listener else { continue };
            if let Err(e) = set_listening(registry, listener, token, on) {
                log::warn!("listener: epoll_ctl failed ({e})");
            }
        }
    }

    /// Admits an accepted connection: counted among the process's at
    /// once (so workers admitting at the same time cannot both take the
    /// last place), answered 503 past `max_connections`, and kept here or
    /// handed to a less loaded worker (see `balance_target`).
    fn admit(&mut self, socket: TcpStream, peer: SocketAddr, metrics_only: bool) {
        let max = self.hub.config.max_connections;
        let connections = &self.hub.link.process.connections;
        let held = connections.fetch_add(1, Ordering::SeqCst);
        if held >= max + OVER_CAPACITY_SLACK {
            connections.fetch_sub(1, Ordering::SeqCst);
            // debug: a connect storm must not become a storm of log lines
            log::debug!("{peer}: dropped, {held} connections held");
            return;
        }
        let over_capacity = held >= max;
        if !metrics_only && !over_capacity {
            if let Some(to) = self.balance_target() {
                return self.hand_over(to, socket, peer);
            }
        }
        self.admit_here(socket, peer, metrics_only, over_capacity);
    }

    /// Takes a connection, already counted among the process's, into this
    /// reactor's slab.
    pub(super) fn admit_here(
        &mut self,
        socket: TcpStream,
        peer: SocketAddr,
        metrics_only: bool,
        over_capacity: bool,
    ) {
        let socket = match self.tls_server.as_ref().filter(|_| !metrics_only) {
            None => Socket::plain(socket),
            Some(config) => match rustls::ServerConnection::new(config.clone()) {
                Ok(tls) => Socket::tls(socket, TlsLayer::new(tls.into())),
                Err(e) => {
                    self.uncount();
                    return log::warn!("{peer}: TLS: {e}");
                }
            },
        };
        let engine = Connection::server(self.hub.now, self.hub.config.protocol.clone());
        match self.insert(socket, peer, engine, Lifecycle::inbound()) {
            Ok(id) => {
                self.hub.stats.accepted += 1;
                let conn = &mut self.hub.conns[id.index()];
                conn.over_capacity = over_capacity;
                conn.metrics_only = metrics_only;
                self.settle(id);
            }
            Err(_) => self.uncount(),
        }
    }

    /// Takes back the count of a connection that was never inserted.
    fn uncount(&self) {
        let link = &self.hub.link;
        link.process.connections.fetch_sub(1, Ordering::SeqCst);
    }

    /// Opens an outbound WebSocket connection to a `ws://` or `wss://` URL
    /// (the TCP connect, the TLS handshake and the WebSocket handshake
    /// complete in the loop; the handler hears `on_open` or
    /// `on_connect_error`). Name resolution blocks: prefer IP addresses.
    /// `wss://` verifies the server as `ServerConfig::client_tls` says.
    pub fn connect(&mut self, url: &str, subprotocols: Vec<String>) -> io::Result<ConnId> {
        let url = WsUrl::parse(url).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let addr = (url.host.as_str(), url.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "host has no address"))?;
        let tls = if url.secure {
            let name = crate::tls::server_name(&url.host).map_err(invalid_input)?;
            let config = match &self.tls_client {
                Some(config) => config.clone(),
                None => {
                    let config = self.hub.config.client_tls.build().map_err(invalid_input)?;
                    self.tls_client.insert(config).clone()
                }
            };
            let conn = rustls::ClientConnection::new(config, name).map_err(invalid_input)?;
            Some(TlsLayer::new(conn.into()))
        } else {
            None
        };
        self.hub.now = std::time::Instant::now();
        let socket = TcpStream::connect(addr)?;
        let socket = match tls {
            Some(tls) => Socket::tls(socket, tls),
            None => Socket::plain(socket),
        };
        let mut request = Vec::new();
        let engine = Connection::client(
            self.hub.now,
            self.hub.config.protocol.clone(),
            &url,
            subprotocols,
            &[],
            &mut request,
        );
        let id = self.insert(socket, addr, engine, Lifecycle::outbound())?;
        let link = &self.hub.link;
        link.process.connections.fetch_add(1, Ordering::SeqCst);
        let conn = &mut self.hub.conns[id.index()];
        conn.queue.push_slice(&request);
        self.settle(id);
        Ok(id)
    }

    pub(super) fn insert(
        &mut self,
        mut socket: Socket,
        peer: SocketAddr,
        engine: Connection,
        life: Lifecycle,
    ) -> io::Result<ConnId> {
        if life.is_dialing() {
            // accepted sockets have TCP_NODELAY from their listener (`bind_with`)
            let _ = socket.tcp.set_nodelay(true);
        }
        let entry = self.hub.conns.vacant_entry();
        let id = ConnId::new(entry.key(), self.next_generation);
        // generations stay below u32::MAX - 1 and ≡ this worker's index
        // (mod workers); see `join_process`
        let wrap = (u32::MAX - 1) / self.generation_step * self.generation_step;
        self.next_generation = (self.next_generation + self.generation_step) % wrap;
        // A plain accepted socket waits for readability alone: registered
        // for writability too, the fresh socket (writable at once) would be
        // reported before its request came, an event and often a loop turn
        // per connection with nothing to do. Writability is watched from
        // the first time output has to wait (`watch_writes`). A connect in
        // progress and TLS (whose layer writes while it reads) watch both.
        let write_interest = life.is_dialing() || socket.is_tls();
        let interest = if write_interest {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        self.poll
            .registry()
            .register(&mut socket.tcp, id.token(), interest)?;
        // the process's count is the caller's (see `admit`)
        self.hub.link.slot().held.fetch_add(1, Ordering::SeqCst);
        entry.insert(Conn {
            id,
            socket,
            engine,
            peer: Peer::new(peer),
            leftover: None,
            queue: Default::default(),
            user: None,
            timer_at: None,
            timer_phase: u8::MAX,
            linger_until: None,
            life,
            over_capacity: false,
            read_paused: false,
            dirty: false,
            peer_eof: false,
            close_received: false,
            hup: false,
            backlog: false,
            metrics_only: false,
            write_interest,
            proxy: None,
        });
        Ok(id)
    }
}

fn invalid_input(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

#[cfg(test)]
mod tests {
    use mio::{Events, Poll, Token};
    use std::io::ErrorKind;
    use std::time::Duration;

    /// Whether a poll within `wait` reports `token` readable.
    fn reported(poll: &mut Poll, token: Token, wait: Duration) -> bool {
        let mut events = Events::with_capacity(8);
        poll.poll(&mut events, Some(wait)).unwrap();
        let reported = events.iter().any(|e| e.token() == token && e.is_readable());
        reported
    }

    /// `accept_one` takes one connection per report and relies on this:
    /// registered by `register_listener`, a listener is reported on every
    /// poll while a connection waits (edge-triggered, the second poll
    /// below would report nothing and the second client would wait for a
    /// third), and not at all while `set_listening` has it paused.
    #[test]
    fn a_listener_is_reported_while_connections_wait_unless_paused() {
        let mut poll = Poll::new().unwrap();
        let listener = super::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let token = Token(7);
        super::register_listener(poll.registry(), &listener, token).unwrap();
        let addr = listener.local_addr().unwrap();
        let _clients: Vec<_> = (0..2)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let long = Duration::from_secs(5);
        let short = Duration::from_millis(50);
        assert!(reported(&mut poll, token, long));
        listener.accept().expect("the first client waits");
        assert!(reported(&mut poll, token, long), "the second waits too");
        super::set_listening(poll.registry(), &listener, token, false).unwrap();
        assert!(!reported(&mut poll, token, short), "paused, yet reported");
        super::set_listening(poll.registry(), &listener, token, true).unwrap();
        assert!(reported(&mut poll, token, long), "resumed, not reported");
        listener.accept().expect("the second client waits");
        assert!(
            !reported(&mut poll, token, short),
            "none waits, yet reported"
        );
    }

    /// `insert` relies on this for accepted connections (Linux).
    #[test]
    fn accepted_sockets_have_tcp_nodelay_from_their_listener() {
        let listener = super::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let accepted = (0..1000)
            .find_map(|_| match listener.accept() {
                Ok((stream, _)) => Some(stream),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    None
                }
                Err(e) => panic!("accept: {e}"),
            })
            .expect("the connection was accepted");
        assert!(accepted.nodelay().unwrap());
    }
}
