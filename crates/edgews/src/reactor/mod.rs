//! The reactor: one thread, one `mio::Poll`, edge-triggered readiness, and
//! a slab of connections. The only code in edgews that makes syscalls.
//!
//! Discipline (see docs/architecture.md):
//! - each socket is registered once for READABLE | WRITABLE and never
//!   re-registered;
//! - reads go into one buffer shared by all connections; a read that returns
//!   less than it was offered proves the socket drained, so no read is
//!   spent on `WouldBlock` -- unless the event said the peer hung up: then
//!   its FIN waits behind the data and raises no edge of its own, so the
//!   connection reads on until 0; a connection that stops early (per-wakeup
//!   cap, per-turn message cap, backpressure) goes on a ready list, so no
//!   edge is lost;
//! - what a connection produces while it is processed goes out in one
//!   write; output for other connections is queued and flushed once per
//!   loop iteration with `writev`;
//! - the clock is read once per iteration for all the work of that
//!   iteration (and once more when the alarm must be set); timers live in a
//!   wheel with lazy deletion, so traffic costs no timer work; the wait has
//!   no timeout: a timerfd (`alarm.rs`) wakes it for the next deadline.

mod alarm;
mod bridge;
mod bridge_route;
mod bridge_stats;
mod buffer;
mod clock;
mod conn;
mod context;
mod dispatch;
mod fds;
mod handler;
mod io;
mod lifecycle;
mod listener;
mod metrics;
mod process;
mod proxy;
mod proxy_close;
mod proxy_io;
mod relay;
mod settings;
mod show;
#[doc(hidden)]
pub mod sim;
mod socket;
mod splice;
mod timer;
mod token;
mod write;

pub use bridge_route::{BROADCAST_KEY, TOPIC_KEY_PREFIX};
pub use context::{Context, SendError};
pub use fds::{raise_fd_limit, FdLimits};
pub use handler::{Accept, Handler, HttpResponse, OpenInfo};
pub(crate) use listener::bind_with as listener_bind;
pub use metrics::{RedisStats, Stats, PRIVATE_CLOSE_CODES};
pub use process::{
    Channel, Process, Relayed, FRESH_STATS_WAIT, RELAY_BACKLOG_BYTES, RELAY_BACKLOG_MESSAGES,
};
pub use proxy::{ProxyOutcome, ProxyTarget, UpstreamCounters};
pub use relay::RELAY_LOST_REASON;
pub use token::ConnId;

use crate::config::ServerConfig;
use clock::Clock;
use conn::Hub;
use mio::{Events, Interest, Poll, Waker};
use settings::Settings;
use slab::Slab;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use timer::Timers;

/// The shared read buffer: large enough that a 64 KiB message arrives in
/// one read, small enough to stay in cache-friendly territory.
const READ_BUFFER_SIZE: usize = 256 << 10;

// A kept handshake head (at most `max_head_size`) always leaves room to read.
const _: () = assert!(crate::config::MAX_HEAD_LIMIT <= READ_BUFFER_SIZE / 2);

/// A server (and client) event loop running a [`Handler`].
pub struct Reactor<H: Handler> {
    poll: Poll,
    events: Option<Events>,
    listener: Option<mio::net::TcpListener>,
    /// Serves only `/metrics` and `/healthz` (`ServerConfig::metrics_listen`).
    metrics_listener: Option<mio::net::TcpListener>,
    /// A spare descriptor for answering clients when out of descriptors.
    reserve: fds::Reserve,
    hub: Hub,
    handler: H,
    read_buf: Box<[u8]>,
    timers: Timers,
    /// Wakes the loop for the next deadline (the wait itself has none).
    alarm: alarm::Alarm,
    /// Connections to read again without waiting for an edge.
    ready: Vec<ConnId>,
    next_generation: u32,
    /// Connections whose reading waits for other workers' inboxes to
    /// drain (flow control, see `process.rs`).
    relay_waiting: Vec<ConnId>,
    /// When to look at those inboxes again.
    relay_retry_at: Option<Instant>,
    /// How far generations advance: the number of workers, so that each
    /// worker's connection ids stay apart from the others'.
    generation_step: u32,
    /// The closes and refusals counted when the labelled counters were
    /// last published (workers only).
    published_labels: (u64, u64),
    /// Accepting stopped after `EMFILE`/`ENFILE` until this instant.
    accept_paused_until: Option<Instant>,
    signals: Option<mio::net::UnixStream>,
    /// SIGHUP: reload the TLS certificate and key.
    hangup: Option<mio::net::UnixStream>,
    /// The server's TLS configuration, when it serves TLS; replaced on
    /// reload, while open connections keep the one they began with.
    tls_server: Option<Arc<rustls::ServerConfig>>,
    /// The configuration of outbound `wss://` connections, built on the
    /// first one.
    tls_client: Option<Arc<rustls::ClientConfig>>,
    waker: Arc<Waker>,
    /// The Redis link's sockets, on the worker holding the link.
    bridge: bridge::BridgeSockets,
    stop_flag: Arc<AtomicBool>,
    /// Set once shutdown begins: when it gives up waiting for close replies.
    shutdown_deadline: Option<Instant>,
}

/// Pipes that become readable when a signal arrives: SIGINT or SIGTERM on
/// one, SIGHUP on the other. Made before the server says it listens, so
/// that no signal finds the default action (which ends the process).
pub(crate) struct SignalPipes {
    signals: mio::net::UnixStream,
    hangup: mio::net::UnixStream,
}

impl SignalPipes {
    pub(crate) fn new() -> std::io::Result<SignalPipes> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        Ok(SignalPipes {
            signals: signal_pipe(&[SIGINT, SIGTERM])?,
            hangup: signal_pipe(&[SIGHUP])?,
        })
    }
}

/// A pipe that becomes readable when one of `signals` arrives.
fn signal_pipe(signals: &[i32]) -> std::io::Result<mio::net::UnixStream> {
    let (read, write) = std::os::unix::net::UnixStream::pair()?;
    read.set_nonblocking(true)?;
    write.set_nonblocking(true)?;
    for &signal in signals {
        signal_hook::low_level::pipe::register(signal, write.try_clone()?)?;
    }
    Ok(mio::net::UnixStream::from_std(read))
}

/// Stops a running reactor from another thread, gracefully (as SIGTERM).
#[derive(Clone)]
pub struct ShutdownHandle {
    waker: Arc<Waker>,
    flag: Arc<AtomicBool>,
}

impl ShutdownHandle {
    /// Asks the reactor to shut down; returns at once.
    pub fn shutdown(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

/// The most connection slots reserved up front (50 MB of address space
/// at the slot's size); a larger `max_connections` grows past it on demand.
const MAX_RESERVED_SLOTS: usize = 1 << 18;

impl<H: Handler> Reactor<H> {
    /// A reactor with no listener yet (see [`listen`](Reactor::listen)).
    pub fn new(config: ServerConfig, handler: H) -> std::io::Result<Self> {
        Reactor::with_tls(config, handler, None)
    }

    /// [`new`](Reactor::new), with the TLS configuration already loaded
    /// (workers load the files once, for all of them) when `tls` is given.
    pub(crate) fn with_tls(
        config: ServerConfig,
        handler: H,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<Self> {
        // validated here and nowhere else; `MAX_HEAD_LIMIT` keeps a kept
        // head within half the read buffer
        let config = Settings::new(config)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), token::WAKER)?);
        let alarm = alarm::Alarm::new(poll.registry(), token::ALARM)?;
        // Reserved, not touched: the kernel backs a page only once a slot
        // in it is used, so this costs address space, not memory. Growing
        // by doubling instead left each outgrown copy resident (glibc keeps
        // freed heap memory), about 100 B per connection at 5,000. Capped,
        // for a configuration that means "no limit".
        let capacity = config.max_connections.min(MAX_RESERVED_SLOTS);
        let tls_server = match (&config.tls, tls) {
            (None, _) => None,
            (Some(_), Some(loaded)) => Some(loaded),
            (Some(files), None) => Some(
                files
                    .load()
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
            ),
        };
        let now = Instant::now();
        let mut reactor = Reactor {
            poll,
            events: Some(Events::with_capacity(1024)),
            listener: None,
            metrics_listener: None,
            reserve: fds::Reserve::new(),
            hub: Hub {
                conns: Slab::with_capacity(capacity),
                scratch: Vec::new(),
                splices: Vec::new(),
                input: splice::InputSpan::none(),
                dirty: Vec::new(),
                now,
                clock: Clock::new(now),
                config,
                stats: Stats::default(),
                stop_requested: false,
                connect_requests: Vec::new(),
                proxy_dials: Vec::new(),
                recipients: Vec::new(),
                aborts: Vec::new(),
                link: process::Link::alone(),
                bridge: None,
                relay_congested: false,
            },
            handler,
            read_buf: vec![0; READ_BUFFER_SIZE].into_boxed_slice(),
            timers: Timers::with_capacity(capacity),
            alarm,
            ready: Vec::new(),
            next_generation: 0,
            generation_step: 1,
            relay_waiting: Vec::new(),
            relay_retry_at: None,
            published_labels: (0, 0),
            accept_paused_until: None,
            signals: None,
            hangup: None,
            tls_server,
            tls_client: None,
            waker,
            bridge: bridge::BridgeSockets::default(),
            stop_flag: Arc::new(AtomicBool::new(false)),
            shutdown_deadline: None,
        };
        reactor.hold_bridge()?;
        Ok(reactor)
    }

    /// Binds the configured address (and the metrics address, when one is
    /// configured) and starts accepting; returns the bound address (useful
    /// with port 0).
    pub fn listen(&mut self) -> std::io::Result<SocketAddr> {
        let listener = listener::bind(self.hub.config.listen)?;
        listener::register_listener(self.poll.registry(), &listener, token::LISTENER)?;
        let addr = listener.local_addr()?;
        self.listener = Some(listener);
        if let Some(metrics) = self.hub.config.metrics_listen {
            let listener = listener::bind(metrics)?;
            let registry = self.poll.registry();
            listener::register_listener(registry, &listener, token::METRICS_LISTENER)?;
            self.metrics_listener = Some(listener);
        }
        Ok(addr)
    }

    /// The bound address of the metrics listener, once [`listen`](Reactor::listen)
    /// opened one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Shuts down gracefully on SIGINT or SIGTERM (a second signal stops
    /// at once); reloads the TLS certificate and key on SIGHUP.
    pub fn handle_signals(&mut self) -> std::io::Result<()> {
        let pipes = SignalPipes::new()?;
        self.take_signals(pipes)
    }

    /// Handles the signals that `pipes` (made earlier, on any thread)
    /// receive, as [`handle_signals`](Reactor::handle_signals) does.
    pub(crate) fn take_signals(&mut self, pipes: SignalPipes) -> std::io::Result<()> {
        let SignalPipes {
            mut signals,
            mut hangup,
        } = pipes;
        let registry = self.poll.registry();
        registry.register(&mut signals, token::SIGNALS, Interest::READABLE)?;
        registry.register(&mut hangup, token::HANGUP, Interest::READABLE)?;
        self.signals = Some(signals);
        self.hangup = Some(hangup);
        Ok(())
    }

    /// Reads the TLS certificate and key again: new handshakes use them,
    /// open connections go on with theirs. On an error (a missing or bad
    /// file) the configuration in use stays. Without TLS, does nothing.
    pub fn reload_tls(&mut self) -> Result<(), crate::tls::TlsError> {
        let Some(files) = &self.hub.config.tls else {
            return Ok(());
        };
        let config = files.load()?;
        self.tls_server = Some(config);
        self.hub.stats.tls_reloads += 1;
        Ok(())
    }

    /// A handle that stops this reactor from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            waker: self.waker.clone(),
            flag: self.stop_flag.clone(),
        }
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.hub.stats
    }

    /// Runs until shutdown completes: every connection closed, or the
    /// shutdown timeout passed.
    pub fn run(&mut self) -> std::io::Result<()> {
        let mut events = self
            .events
            .take()
            .unwrap_or_else(|| Events::with_capacity(1024));
        let result = loop {
            if let Err(e) = self.turn(&mut events) {
                break Err(e);
            }
            if self.finished() {
                self.drop_all();
                self.flush_bridge_before_exit();
                self.publish_stats();
                break Ok(());
            }
        };
        self.events = Some(events);
        result
    }

    /// One loop iteration: wait, then handle everything that is ready.
    fn turn(&mut self, events: &mut Events) -> std::io::Result<()> {
        let timeout = if self.ready.is_empty() {
            self.wait_limit()
        } else {
            Some(Duration::ZERO)
        };
        // what this turn logged goes out now, in one write when the
        // logger batches (the edgews binary's does), not one per line
        log::logger().flush();
        match self.poll.poll(events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        self.hub.now = Instant::now();
        self.hub.stats.loop_turns += 1;
        for event in events.iter() {
            self.hub.stats.loop_events += 1;
            match event.token() {
                token::LISTENER => self.accept_one(false),
                token::METRICS_LISTENER => self.accept_one(true),
                token::SIGNALS => self.on_signal(),
                token::HANGUP => self.on_hangup(),
                token::WAKER if self.stop_flag.load(Ordering::SeqCst) => self.begin_shutdown(),
                token::WAKER => {}
                token::ALARM => self.alarm.rang(),
                token::REDIS_PUBLISHER => {
                    self.on_bridge_event(crate::redis::link::Role::Publisher, event)
                }
                token::REDIS_SUBSCRIBER => {
                    self.on_bridge_event(crate::redis::link::Role::Subscriber, event)
                }
                t => {
                    let Some(id) = ConnId::from_token(t) else {
                        continue;
                    };
                    let read_closed = event.is_read_closed() || event.is_error();
                    let readiness = io::Readiness {
                        readable: event.is_readable() || read_closed,
                        writable: event.is_writable() || event.is_error(),
                        read_closed,
                    };
                    self.on_conn_event(id, readiness);
                }
            }
        }
        self.run_ready();
        self.drain_inbox();
        self.drive_bridge();
        self.flush_dirty();
        self.run_aborts();
        self.run_timers();
        self.run_handler_timer();
        self.open_requested_connections();
        self.open_proxy_dials();
        self.flush_dirty();
        if self.hub.stop_requested {
            self.begin_shutdown();
        }
        self.maybe_resume_accept();
        self.resume_relay_waiting();
        self.drain_inbox();
        self.drive_bridge();
        self.flush_dirty();
        self.run_aborts();
        Ok(())
    }

    /// Drops the connections handlers aborted (`Context::abort`); their
    /// `on_close` may abort more.
    fn run_aborts(&mut self) {
        while let Some(id) = self.hub.aborts.pop() {
            self.remove(id);
        }
    }

    /// How long the next wait may sleep: no limit, with the alarm set for
    /// the next deadline; not at all when that deadline had passed by this
    /// turn's clock reading; or, should setting the alarm fail, until the
    /// deadline.
    fn wait_limit(&mut self) -> Option<Duration> {
        let at = self.next_wakeup()?;
        if at <= self.hub.now {
            return Some(Duration::ZERO); // due already: no alarm to set
        }
        match self.alarm.wake_by(at) {
            Ok(()) => None,
            Err(e) => {
                log::debug!("alarm: {e}; waiting with a timeout");
                Some(at.saturating_duration_since(Instant::now()))
            }
        }
    }

    /// The earliest instant the loop must wake without I/O.
    fn next_wakeup(&self) -> Option<Instant> {
        [
            self.timers.next().map(|at| self.hub.clock.instant(at)),
            self.handler.poll_timeout(),
            self.accept_paused_until,
            self.shutdown_deadline,
            self.relay_retry_at,
            self.hub.bridge.as_deref().and_then(|l| l.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn run_handler_timer(&mut self) {
        let now = self.hub.now;
        if self.handler.poll_timeout().is_some_and(|t| t <= now) {
            self.handler
                .on_timeout(&mut Context::new(&mut self.hub, None), now);
        }
    }

    /// Opens the outbound connections handlers asked for with
    /// [`Context::connect`].
    fn open_requested_connections(&mut self) {
        for url in std::mem::take(&mut self.hub.connect_requests) {
            if let Err(e) = self.connect(&url, Vec::new()) {
                log::warn!("cannot connect to {url}: {e}");
                self.hub.stats.connect_failures += 1;
            }
        }
    }

    fn on_signal(&mut self) {
        if let Some(pipe) = self.signals.as_mut() {
            let mut buf = [0u8; 64];
            while matches!(std::io::Read::read(pipe, &mut buf), Ok(n) if n > 0) {}
        }
        if self.shutdown_deadline.is_some() {
            log::warn!("second signal: stopping now");
            self.shutdown_deadline = Some(self.hub.now);
            self.hub
                .link
                .tell_others(|| process::Delivery::Shutdown { now: true });
        } else {
            self.begin_shutdown();
        }
    }

    fn on_hangup(&mut self) {
        if let Some(pipe) = self.hangup.as_mut() {
            let mut buf = [0u8; 64];
            while matches!(std::io::Read::read(pipe, &mut buf), Ok(n) if n > 0) {}
        }
        match self.reload_tls() {
            Ok(()) if self.tls_server.is_some() => {
                log::info!("SIGHUP: TLS certificate and key reloaded");
                if let Some(config) = &self.tls_server {
                    // every worker's new handshakes take the new pair
                    self.hub
                        .link
                        .tell_others(|| process::Delivery::Tls(config.clone()));
                }
            }
            Ok(()) => log::info!("SIGHUP: no TLS configured, nothing to reload"),
            Err(e) => {
                self.hub.stats.tls_reload_failures += 1;
                log::error!("SIGHUP: TLS reload failed, keeping the certificate in use: {e}")
            }
        }
    }

    /// Stops accepting and starts the closing handshake (1001) with every
    /// open connection; pending output goes out before each close frame.
    fn begin_shutdown(&mut self) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        let now = self.hub.now;
        log::info!(
            "shutting down: closing {} connections",
            self.hub.conns.len()
        );
        self.shutdown_deadline = Some(now + self.hub.config.shutdown_timeout);
        // one server to the operator: every worker shuts down with this one
        self.hub
            .link
            .tell_others(|| process::Delivery::Shutdown { now: false });
        self.listener = None;
        self.metrics_listener = None;
        let ids: Vec<ConnId> = self.hub.conns.iter().map(|(_, c)| c.id).collect();
        for id in ids {
            self.close_for_shutdown(id);
        }
        self.flush_dirty();
    }

    /// Shutdown is over when every connection is gone or only waits for
    /// its peer's FIN (all sent), or when the shutdown timeout passed.
    fn finished(&self) -> bool {
        self.shutdown_deadline.is_some_and(|deadline| {
            self.hub.now >= deadline
                || (self.hub.conns.iter().all(|(_, c)| c.life.is_draining())
                    && !self.waits_for_other_workers()
                    && !self.bridge_busy())
        })
    }

    /// The worker that holds the signal pipes stays until every other
    /// worker is done, so that a second signal still stops them at once.
    fn waits_for_other_workers(&self) -> bool {
        self.signals.is_some() && self.hub.link.process.running() > 1
    }
}
