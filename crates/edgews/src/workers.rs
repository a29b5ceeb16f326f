//! All cores: N single-threaded reactors in one process.
//!
//! Each worker is a thread running its own [`Reactor`]: its own `mio`
//! poll, slab, timers and buffers, and its own listener on the shared
//! address (`SO_REUSEPORT`). No lock is taken on a worker's hot path.
//! What the workers share (`reactor/process.rs`):
//!
//! - **Connections are spread evenly.** The kernel picks a listener by a
//!   hash of each connection's addresses and ports: a few hundred
//!   connections from one client split 60/40 now and then. A worker that
//!   accepts a connection while holding more than one beyond the least
//!   loaded one hands the socket to it (`edgews_connections_adopted_total`).
//! - **Messages cross workers.** [`Context::broadcast`], a pub/sub
//!   publication and a chat room event reach every worker's recipients
//!   exactly once, in the order each publisher sent them: the frame is
//!   encoded once and its `Arc` queued in each other worker's inbox, and a
//!   `mio::Waker` wakes the worker (once per drain, however many messages
//!   wait). Inboxes are bounded: see [`RELAY_BACKLOG_MESSAGES`].
//! - **Limits and counters are process-wide**: `max_connections` counts
//!   every worker's connections; the ready-made handlers share their
//!   per-IP tables and topic caps (the handler factory hands each worker a
//!   clone of the shared part); `/metrics` adds every worker's counters up
//!   and lists the connections each holds.
//! - **One server to the operator.** Signals go to worker 0, which passes
//!   them on: SIGTERM closes every connection on every worker with 1001,
//!   SIGHUP's reloaded certificate reaches every worker. A worker that
//!   panics (or fails) stops the whole process: the others shut down
//!   gracefully and [`Workers::run`] returns an error naming it.
//!
//! [`Context::broadcast`]: crate::reactor::Context::broadcast
//! [`RELAY_BACKLOG_MESSAGES`]: crate::reactor::RELAY_BACKLOG_MESSAGES

use crate::config::ServerConfig;
use crate::reactor::{listener_bind, Handler, Process, Reactor, SignalPipes};
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// Several reactors serving one address, one per thread.
///
/// ```no_run
/// use edgews::workers::Workers;
/// use edgews::server::Echo;
/// use edgews::ServerConfig;
///
/// let mut workers = Workers::new(ServerConfig::default(), 2)?;
/// let addr = workers.listen()?;
/// println!("listening on {addr}");
/// workers.handle_signals()?;
/// workers.run(|_worker| Echo)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Workers {
    config: ServerConfig,
    process: Arc<Process>,
    listeners: Vec<mio::net::TcpListener>,
    metrics: Option<mio::net::TcpListener>,
    signals: Option<SignalPipes>,
    /// The TLS configuration, loaded once for every worker.
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// Stops every worker of a [`Workers`] from another thread.
#[derive(Debug, Clone)]
pub struct WorkersHandle(Arc<Process>);

impl WorkersHandle {
    /// Asks every worker to shut down gracefully (as SIGTERM); returns at
    /// once.
    pub fn shutdown(&self) {
        self.0.shutdown(false);
    }
}

/// How a worker thread ended.
struct Exit {
    index: usize,
    /// It panicked (the panic message went to stderr).
    panicked: bool,
    error: Option<io::Error>,
}

/// Sends a worker's [`Exit`] when its thread ends, however it ends.
struct ExitNotice {
    index: usize,
    error: Option<io::Error>,
    tx: mpsc::Sender<Exit>,
    process: Arc<Process>,
}

impl Drop for ExitNotice {
    fn drop(&mut self) {
        self.process.exited(self.index);
        let _ = self.tx.send(Exit {
            index: self.index,
            panicked: std::thread::panicking(),
            error: self.error.take(),
        });
    }
}

/// How long past the shutdown timeout the others get once a worker failed.
const FAILURE_GRACE: Duration = Duration::from_secs(1);

impl Workers {
    /// `count` workers serving `config` (validated here; `count` at least 1).
    pub fn new(config: ServerConfig, count: usize) -> io::Result<Workers> {
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
        config.validate().map_err(|e| invalid(e.to_string()))?;
        if count == 0 {
            return Err(invalid("workers must be at least 1".into()));
        }
        // read once, here: refused before anything runs, and every worker
        // starts with the same pair whatever happens to the files meanwhile
        let tls = match &config.tls {
            Some(files) => Some(files.load().map_err(|e| invalid(e.to_string()))?),
            None => None,
        };
        Ok(Workers {
            config,
            process: Process::new(count),
            listeners: Vec::new(),
            metrics: None,
            signals: None,
            tls,
        })
    }

    /// How many workers.
    pub fn count(&self) -> usize {
        self.process.workers()
    }

    /// Binds one `SO_REUSEPORT` listener per worker on the configured
    /// address (the first picks the port when it is 0), and the metrics
    /// listener when one is configured (served by worker 0); returns the
    /// bound address.
    pub fn listen(&mut self) -> io::Result<SocketAddr> {
        let first = listener_bind(self.config.listen, true)?;
        let addr = first.local_addr()?;
        self.listeners = vec![first];
        for _ in 1..self.count() {
            self.listeners.push(listener_bind(addr, true)?);
        }
        if let Some(metrics) = self.config.metrics_listen {
            self.metrics = Some(listener_bind(metrics, false)?);
        }
        Ok(addr)
    }

    /// The bound address of the metrics listener, once
    /// [`listen`](Workers::listen) opened one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Lets worker 0 handle SIGINT, SIGTERM (graceful shutdown of every
    /// worker; a second signal stops at once) and SIGHUP (TLS reload for
    /// every worker), as [`Reactor::handle_signals`] does for one reactor.
    /// The handlers are in place when this returns: a signal that arrives
    /// before the workers run waits for worker 0.
    pub fn handle_signals(&mut self) -> io::Result<()> {
        self.signals = Some(SignalPipes::new()?);
        Ok(())
    }

    /// A handle that stops every worker from another thread.
    pub fn handle(&self) -> WorkersHandle {
        WorkersHandle(self.process.clone())
    }

    /// Runs the workers until they have all shut down. `factory` makes
    /// each worker's handler, on that worker's thread (so the handler need
    /// not be `Send`); what the handlers share, they share through what the
    /// factory captures. A worker that panics or fails stops the others
    /// (gracefully, within the shutdown timeout) and makes this an error.
    pub fn run<H, F>(self, factory: F) -> io::Result<()>
    where
        H: Handler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        let count = self.count();
        let factory = Arc::new(factory);
        let (tx, rx) = mpsc::channel();
        let mut listeners = self.listeners.into_iter().map(Some).collect::<Vec<_>>();
        listeners.resize_with(count, || None);
        let mut metrics = self.metrics;
        let mut signals = self.signals;
        for (index, listener) in listeners.into_iter().enumerate() {
            let setup = WorkerSetup {
                config: self.config.clone(),
                process: self.process.clone(),
                index,
                listener,
                metrics: if index == 0 { metrics.take() } else { None },
                signals: if index == 0 { signals.take() } else { None },
                tls: self.tls.clone(),
            };
            let factory = factory.clone();
            let tx = tx.clone();
            std::thread::Builder::new()
                .name(format!("edgews-worker-{index}"))
                .spawn(move || {
                    let mut notice = ExitNotice {
                        index,
                        error: None,
                        tx,
                        process: setup.process.clone(),
                    };
                    // no waiting for the others: what they send before this
                    // one can be woken waits in its inbox (see `join_process`)
                    notice.error = setup.build(&*factory).and_then(|mut r| r.run()).err();
                })?;
        }
        drop(tx);
        supervise(&self.process, &rx, count, self.config.shutdown_timeout)
    }
}

/// What one worker thread starts from.
struct WorkerSetup {
    config: ServerConfig,
    process: Arc<Process>,
    index: usize,
    listener: Option<mio::net::TcpListener>,
    metrics: Option<mio::net::TcpListener>,
    signals: Option<SignalPipes>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl WorkerSetup {
    fn build<H: Handler>(self, factory: &impl Fn(usize) -> H) -> io::Result<Reactor<H>> {
        let mut reactor = Reactor::with_tls(self.config, factory(self.index), self.tls)?;
        reactor.join_process(self.process, self.index, self.listener, self.metrics)?;
        if let Some(pipes) = self.signals {
            reactor.take_signals(pipes)?;
        }
        Ok(reactor)
    }
}

/// Waits for every worker to end. The first that panics or fails stops
/// the others, which get the shutdown timeout (and a second) to finish;
/// then the failure is returned, naming the worker.
fn supervise(
    process: &Process,
    exits: &mpsc::Receiver<Exit>,
    count: usize,
    shutdown_timeout: Duration,
) -> io::Result<()> {
    let mut failure: Option<String> = None;
    for _ in 0..count {
        let exit = match &failure {
            None => exits.recv().ok(),
            Some(_) => exits.recv_timeout(shutdown_timeout + FAILURE_GRACE).ok(),
        };
        let Some(exit) = exit else {
            break;
        };
        let what = match (exit.panicked, exit.error) {
            (true, _) => format!("worker {} panicked", exit.index),
            (false, Some(e)) => format!("worker {} failed: {e}", exit.index),
            (false, None) => continue,
        };
        if failure.is_none() {
            log::error!("{what}: stopping every worker");
            process.shutdown(false);
            failure = Some(what);
        }
    }
    match failure {
        Some(what) => Err(io::Error::other(what)),
        None => Ok(()),
    }
}
