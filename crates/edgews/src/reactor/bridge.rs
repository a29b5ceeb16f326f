//! The reactor's side of the Redis link (see `crate::redis::link`): its
//! two sockets in the same poll as the clients, their reads and writes,
//! and what arrives through them handed to the connections here and to
//! the other workers.
//!
//! One process holds one link, on worker 0 (or the only reactor): two
//! Redis connections whatever the number of workers. Redis then sends each
//! message once per process, not once per worker, and the process-wide
//! state (which keys are subscribed, the chat rooms) has one owner. Other
//! workers hand their publications and (un)subscriptions to worker 0
//! through its inbox; what comes from Redis reaches them as relays.

use super::context::Context;
use super::handler::Handler;
use super::socket::Socket;
use super::Reactor;
use crate::redis::link::{Action, Failure, Link, LinkEvent, Role};
use crate::tls::{TlsLayer, TlsRead};
use mio::net::TcpStream;
use mio::{Interest, Token};
use std::io::{ErrorKind, Write};
use std::net::SocketAddr;

/// How long, at most, the worker holding the link stays after the
/// shutdown deadline to hand the last publications to Redis.
const FINAL_FLUSH: std::time::Duration = std::time::Duration::from_millis(500);

/// The link's sockets, on the worker that holds it.
#[derive(Debug, Default)]
pub(crate) struct BridgeSockets {
    sockets: [Option<BridgeSocket>; 2],
    /// Reading the subscriber stopped because another worker's inbox is
    /// over its high-water mark (flow control, as for a publishing
    /// client): Redis holds the messages meanwhile, up to its own
    /// `client-output-buffer-limit pubsub`, past which it disconnects us
    /// (a counted loss).
    pub paused: bool,
    /// The server's addresses, resolved once at start (no DNS lookups in
    /// the loop); attempts go round them.
    pub addrs: Vec<SocketAddr>,
    next_addr: usize,
}

#[derive(Debug)]
struct BridgeSocket {
    socket: Socket,
    /// TCP connected (a non-blocking connect completes later).
    established: bool,
}

/// How long a Redis connection may stay silent before the kernel probes
/// it, and then between probes: a Redis host that vanished (no reset, no
/// FIN) is noticed within 10 + 3 × 5 s instead of never, for a subscriber
/// that waits for messages.
const KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(10);
const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
const KEEPALIVE_PROBES: u32 = 3;

/// How long written data may stay unacknowledged before the kernel drops
/// the connection (`TCP_USER_TIMEOUT`), instead of retransmitting for
/// about 15 minutes: publications to an unreachable Redis count as lost
/// after 30 s at most.
const UNACKED_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Sets keepalive probes and the unacknowledged-data timeout on a Redis
/// connection; a failure leaves the defaults (logged).
fn watch_for_dead_peer(tcp: &TcpStream) {
    let socket = socket2::SockRef::from(tcp);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    let result = socket
        .set_tcp_keepalive(&keepalive)
        .and_then(|()| socket.set_tcp_user_timeout(Some(UNACKED_TIMEOUT)));
    if let Err(e) = result {
        log::debug!("redis: keepalive not set: {e}");
    }
}

/// The token of `role`'s socket.
fn token(role: Role) -> Token {
    match role {
        Role::Publisher => super::token::REDIS_PUBLISHER,
        Role::Subscriber => super::token::REDIS_SUBSCRIBER,
    }
}

impl<H: Handler> Reactor<H> {
    /// With `--redis`, makes this reactor hold the process's link (made
    /// with a random instance id); workers other than 0 drop it when they
    /// join their process (`drop_bridge_unless_first`). The server's name
    /// is resolved here, once: no DNS lookup ever blocks the loop (a
    /// changed address needs a restart).
    pub(super) fn hold_bridge(&mut self) -> std::io::Result<()> {
        use std::net::ToSocketAddrs;
        let Some(config) = self.hub.config.redis.as_deref() else {
            return Ok(());
        };
        let host = &config.url.host;
        let addrs: Vec<SocketAddr> = config
            .url
            .addr_string()
            .to_socket_addrs()
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("redis: cannot resolve {host}: {e}"))
            })?
            .collect();
        if addrs.is_empty() {
            return Err(std::io::Error::new(
                ErrorKind::NotFound,
                format!("redis: {} has no address", config.url.host),
            ));
        }
        let link = Link::new(config.clone(), rand::random(), self.hub.now);
        self.hub.bridge = Some(Box::new(link));
        self.hub.stats.redis.enabled = 1;
        self.bridge.addrs = addrs;
        self.hub.link.process.set_bridge_up(false);
        Ok(())
    }

    /// On joining a process: only worker 0 keeps the link.
    pub(super) fn drop_bridge_unless_first(&mut self, index: usize) {
        if index != 0 {
            self.hub.bridge = None;
            self.bridge.addrs.clear();
        } else if self.hub.bridge.is_some() {
            self.hub.link.process.set_bridge_up(false);
        }
    }

    /// While shutting down, the worker holding the link stays until Redis
    /// answered every publication (the leaves of the connections just
    /// closed, here and on the other workers, whose requests may still
    /// wait in the inbox), or the shutdown timeout passes.
    pub(super) fn bridge_busy(&self) -> bool {
        let Some(link) = self.hub.bridge.as_deref() else {
            return false;
        };
        let inbox = &self.hub.link;
        !link.is_flushed() || inbox.process.is_signalled(inbox.index)
    }

    /// After the last connections were dropped (at the shutdown deadline,
    /// their handlers' last publications queued: a chat's leaves), the
    /// worker holding the link goes on for at most [`FINAL_FLUSH`]: until
    /// the other workers ended (their last requests in its inbox) and Redis
    /// answered every publication.
    pub(super) fn flush_bridge_before_exit(&mut self) {
        if self.hub.bridge.is_none() {
            return;
        }
        let until = std::time::Instant::now() + FINAL_FLUSH;
        let mut events = mio::Events::with_capacity(16);
        loop {
            self.hub.now = std::time::Instant::now();
            self.drain_inbox();
            self.drive_bridge();
            let others = self.hub.link.process.running() > 1;
            if (!others && !self.bridge_busy()) || self.hub.now >= until {
                return;
            }
            let wait = Some(std::time::Duration::from_millis(5));
            if self.poll.poll(&mut events, wait).is_err() {
                return;
            }
            for event in events.iter() {
                match event.token() {
                    super::token::REDIS_PUBLISHER => self.on_bridge_event(Role::Publisher, event),
                    super::token::REDIS_SUBSCRIBER => self.on_bridge_event(Role::Subscriber, event),
                    _ => {}
                }
            }
        }
    }

    /// A readiness event on one of the link's sockets.
    pub(super) fn on_bridge_event(&mut self, role: Role, event: &mio::event::Event) {
        let Some(entry) = self.bridge.sockets[role.index()].as_mut() else {
            return;
        };
        if !entry.established {
            let failed = event.is_error() || event.is_read_closed();
            match entry.socket.tcp.take_error() {
                Ok(Some(e)) => return self.drop_bridge_socket(role, Failure::io(e.to_string())),
                Err(e) => return self.drop_bridge_socket(role, Failure::io(e.to_string())),
                Ok(None) if failed => {
                    return self.drop_bridge_socket(role, Failure::io("connection refused"))
                }
                Ok(None) => {}
            }
            match entry.socket.tcp.peer_addr() {
                Ok(_) => entry.established = true,
                Err(e) if e.kind() == ErrorKind::NotConnected => return,
                Err(e) => return self.drop_bridge_socket(role, Failure::io(e.to_string())),
            }
        }
        // a FIN behind data raises no edge of its own: read on until 0
        let hung_up = event.is_read_closed() || event.is_error();
        self.read_bridge(role, hung_up);
        self.write_bridge(role);
    }

    /// Reads everything `role`'s socket holds into the link; with
    /// `hung_up`, until the end of the stream however short the reads.
    fn read_bridge(&mut self, role: Role, hung_up: bool) {
        loop {
            if role == Role::Subscriber && !hung_up && self.relays_congested() {
                self.bridge.paused = true;
                self.relay_retry_at
                    .get_or_insert(self.hub.now + super::relay::RELAY_RETRY);
                return;
            }
            let Some(entry) = self.bridge.sockets[role.index()].as_mut() else {
                return;
            };
            let Some(link) = self.hub.bridge.as_deref_mut() else {
                return;
            };
            match entry.socket.read_input(&mut self.read_buf) {
                Ok(TlsRead::Data { len, drained }) => {
                    if let Err(failure) = link.handle_input(role, &self.read_buf[..len]) {
                        return self.drop_bridge_socket(role, failure);
                    }
                    if drained && !hung_up {
                        return;
                    }
                }
                Ok(TlsRead::Eof) => {
                    return self.drop_bridge_socket(role, Failure::io("closed by Redis"))
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return self.drop_bridge_socket(role, Failure::io(e.to_string())),
            }
        }
    }

    /// Writes what the link has for `role` until the socket blocks.
    fn write_bridge(&mut self, role: Role) {
        let (Some(entry), Some(link)) = (
            self.bridge.sockets[role.index()].as_mut(),
            self.hub.bridge.as_deref_mut(),
        ) else {
            return;
        };
        if !entry.established {
            return;
        }
        loop {
            let pending = link.pending_output(role);
            if pending.is_empty() {
                break;
            }
            match entry.socket.write(pending) {
                Ok(0) => return self.drop_bridge_socket(role, Failure::io("write returned 0")),
                Ok(n) => link.consume_output(role, n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return self.drop_bridge_socket(role, Failure::io(e.to_string())),
            }
        }
        if let Err(e) = entry.socket.flush_tls() {
            if e.kind() != ErrorKind::WouldBlock {
                self.drop_bridge_socket(role, Failure::io(e.to_string()));
            }
        }
    }

    /// Whether another worker's inbox is over its high-water mark.
    fn relays_congested(&self) -> bool {
        let link = &self.hub.link;
        link.is_shared()
            && link
                .process
                .is_congested(link.index, super::process::RELAY_HIGH_WATER)
    }

    /// Reads the subscriber again once the inboxes drained (called where
    /// waiting publishers are resumed).
    pub(super) fn resume_bridge(&mut self) {
        if !self.bridge.paused {
            return;
        }
        self.bridge.paused = false;
        self.read_bridge(Role::Subscriber, false);
    }

    /// Closes `role`'s socket; the link retries after its back-off.
    fn drop_bridge_socket(&mut self, role: Role, failure: Failure) {
        if let Some(mut entry) = self.bridge.sockets[role.index()].take() {
            let _ = self.poll.registry().deregister(&mut entry.socket.tcp);
        }
        if let Some(link) = self.hub.bridge.as_deref_mut() {
            link.handle_disconnect(role, self.hub.now, failure);
        }
    }

    /// Once per loop turn on the worker holding the link: connections to
    /// open or give up, output to write, events to hand on.
    pub(super) fn drive_bridge(&mut self) {
        if self.hub.bridge.is_none() {
            return;
        }
        let now = self.hub.now;
        while let Some(action) = self
            .hub
            .bridge
            .as_deref_mut()
            .and_then(|l| l.poll_action(now))
        {
            match action {
                Action::Connect(role) => {
                    if let Err(e) = self.open_bridge_socket(role) {
                        self.drop_bridge_socket(role, Failure::io(e.to_string()));
                    }
                }
                Action::Abort(role, failure) => self.drop_bridge_socket(role, failure),
            }
        }
        for role in Role::BOTH {
            self.write_bridge(role);
        }
        while let Some(event) = self.hub.bridge.as_deref_mut().and_then(Link::poll_event) {
            match event {
                LinkEvent::Message(message) => {
                    self.deliver_bridged(message);
                    // no connection is being processed: nobody to stop
                    self.hub.relay_congested = false;
                }
                LinkEvent::Subscribed(key) => {
                    let mut ctx = Context::new(&mut self.hub, None);
                    self.handler.on_bridge_subscribed(&mut ctx, &key);
                }
                LinkEvent::Up => self.hub.link.process.set_bridge_up(true),
                LinkEvent::Down => self.hub.link.process.set_bridge_up(false),
            }
        }
        // what the handler published in answer goes out this turn
        for role in Role::BOTH {
            self.write_bridge(role);
        }
        if let Some(link) = self.hub.bridge.as_deref() {
            self.hub.stats.set_redis(link.stats(), link.is_up());
        }
    }

    /// Starts connecting `role`'s socket (non-blocking).
    fn open_bridge_socket(&mut self, role: Role) -> std::io::Result<()> {
        let sockets = &mut self.bridge;
        if sockets.addrs.is_empty() {
            return Err(std::io::Error::new(ErrorKind::NotFound, "no address"));
        }
        let addr = sockets.addrs[sockets.next_addr % sockets.addrs.len()];
        sockets.next_addr = sockets.next_addr.wrapping_add(1);
        let url = &self.hub.bridge.as_deref().expect("held").config().url;
        let tls = if url.tls {
            let name = crate::tls::server_name(&url.host)
                .map_err(|e| std::io::Error::new(ErrorKind::InvalidInput, e))?;
            let config = match &self.tls_client {
                Some(config) => config.clone(),
                None => {
                    let config = self
                        .hub
                        .config
                        .client_tls
                        .build()
                        .map_err(|e| std::io::Error::new(ErrorKind::InvalidInput, e))?;
                    self.tls_client.insert(config).clone()
                }
            };
            let conn = rustls::ClientConnection::new(config, name)
                .map_err(|e| std::io::Error::new(ErrorKind::InvalidInput, e))?;
            Some(TlsLayer::new(conn.into()))
        } else {
            None
        };
        let mut tcp = TcpStream::connect(addr)?;
        let _ = tcp.set_nodelay(true);
        watch_for_dead_peer(&tcp);
        self.poll.registry().register(
            &mut tcp,
            token(role),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let socket = match tls {
            Some(layer) => Socket::tls(tcp, layer),
            None => Socket::plain(tcp),
        };
        self.bridge.sockets[role.index()] = Some(BridgeSocket {
            socket,
            established: false,
        });
        Ok(())
    }
}
