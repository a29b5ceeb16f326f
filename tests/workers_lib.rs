//! The library's workers ([`edgews::workers::Workers`]) in this process:
//! a worker that panics stops the whole server (the others close their
//! clients with 1001 and `run` names the worker), and a
//! [`WorkersHandle`](edgews::workers::WorkersHandle) stops a running
//! server from another thread.
//!
//! The handler here answers every message with the index of the worker
//! that holds the connection, which is how a test knows where a client
//! landed.

use edgews::client::{Client, ClientConfig, ClientError};
use edgews::protocol::{CloseCode, Message};
use edgews::reactor::{ConnId, Context, Handler};
use edgews::workers::{Workers, WorkersHandle};
use edgews::ServerConfig;
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Bound for anything that should happen "soon" on a loaded machine.
const SOON: Duration = Duration::from_secs(10);

/// Echoes every message as "worker I: TEXT"; panics on the text "panic".
struct WhereAmI {
    worker: usize,
}

impl Handler for WhereAmI {
    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, message: Message<'_>) {
        let text = message.as_text().unwrap_or("");
        if text == "panic" {
            panic!("worker {} was asked to panic", self.worker);
        }
        let _ = ctx.send_text(id, &format!("worker {}: {text}", self.worker));
    }
}

/// Two workers running on a thread of their own: their address, the
/// handle that stops them, and `run`'s result once they are done.
struct Running {
    addr: SocketAddr,
    handle: WorkersHandle,
    done: mpsc::Receiver<io::Result<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Starts two workers on 127.0.0.1 (an ephemeral port), every one a
    /// [`WhereAmI`].
    fn start() -> Running {
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            shutdown_timeout: Duration::from_secs(3),
            ..ServerConfig::default()
        };
        let mut workers = Workers::new(config, 2).expect("workers");
        assert_eq!(workers.count(), 2);
        let addr = workers.listen().expect("listen");
        let handle = workers.handle();
        let (tx, done) = mpsc::channel();
        let thread = thread::spawn(move || {
            let _ = tx.send(workers.run(|worker| WhereAmI { worker }));
        });
        Running {
            addr,
            handle,
            done,
            thread: Some(thread),
        }
    }

    /// What `run` returned, once it has (`None` if it did not within
    /// `limit`).
    fn result_within(&mut self, limit: Duration) -> Option<io::Result<()>> {
        let result = self.done.recv_timeout(limit).ok()?;
        self.thread.take().unwrap().join().expect("the run thread");
        Some(result)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.handle.shutdown();
            let _ = thread.join();
        }
    }
}

/// A client with bounded reads.
fn connect(addr: SocketAddr) -> Client {
    let config = ClientConfig {
        read_timeout: Some(SOON),
        ..ClientConfig::default()
    };
    Client::connect_with(&format!("ws://{addr}/"), config).expect("connect")
}

/// Sends `text`; the index of the worker that answered.
fn ask(client: &mut Client, text: &str) -> usize {
    client.send_text(text).expect("send");
    let answer = client.recv_message().expect("an answer");
    let answer = answer.as_text().expect("text");
    let (worker, echoed) = answer
        .strip_prefix("worker ")
        .and_then(|rest| rest.split_once(": "))
        .unwrap_or_else(|| panic!("unexpected answer {answer:?}"));
    assert_eq!(echoed, text);
    worker.parse().expect("a worker index")
}

/// Clients until each of the two workers holds at least two, with the
/// worker of each.
fn clients_on_both_workers(addr: SocketAddr) -> Vec<(Client, usize)> {
    let mut clients = Vec::new();
    for i in 0..40 {
        let mut client = connect(addr);
        let worker = ask(&mut client, &format!("hello {i}"));
        clients.push((client, worker));
        if (0..2).all(|w| clients.iter().filter(|(_, cw)| *cw == w).count() >= 2) {
            return clients;
        }
    }
    let placed: Vec<usize> = clients.iter().map(|(_, w)| *w).collect();
    panic!("40 clients, not two on each worker: {placed:?}");
}

/// Waits for the server's close; its code.
fn close_code(client: &mut Client, who: &str) -> CloseCode {
    match client.recv_message() {
        Err(ClientError::Closed(closed)) => closed.code,
        other => panic!("{who}: expected the server's close, got {other:?}"),
    }
}

/// Makes worker `victim` panic through one of its clients; the others'
/// clients get 1001 and `run` names `victim`.
fn a_panicking_worker_stops_the_others(victim: usize) {
    let mut server = Running::start();
    let clients = clients_on_both_workers(server.addr);
    let placed: Vec<usize> = clients.iter().map(|(_, w)| *w).collect();
    let (mut doomed, others): (Vec<_>, Vec<_>) =
        clients.into_iter().partition(|(_, w)| *w == victim);
    // each survivor waits for the server's close from its own thread
    let waiting: Vec<_> = others
        .into_iter()
        .map(|(mut client, worker)| {
            thread::spawn(move || close_code(&mut client, &format!("a client of worker {worker}")))
        })
        .collect();
    doomed[0].0.send_text("panic").expect("send");
    let result = server
        .result_within(Duration::from_secs(3) + SOON)
        .expect("run did not return after a worker panicked");
    let error = result.expect_err("run returned Ok after a worker panicked");
    println!("clients on workers {placed:?}; worker {victim} panicked; run: {error}");
    assert!(
        error
            .to_string()
            .contains(&format!("worker {victim} panicked")),
        "run's error does not name worker {victim}: {error}"
    );
    for w in waiting {
        assert_eq!(w.join().expect("a survivor"), CloseCode::GOING_AWAY);
    }
    // the panicking worker's own clients lost their connection with it
    for (client, _) in &mut doomed {
        assert!(
            client.recv_message().is_err(),
            "a client of the panicked worker still got a message"
        );
    }
}

#[test]
fn a_panic_on_worker_1_stops_every_worker_closes_the_others_clients_with_1001_and_names_it() {
    a_panicking_worker_stops_the_others(1);
}

#[test]
fn a_panic_on_worker_0_stops_every_worker_closes_the_others_clients_with_1001_and_names_it() {
    a_panicking_worker_stops_the_others(0);
}

#[test]
fn workers_handle_shutdown_closes_every_workers_clients_with_1001_and_run_returns_ok() {
    let mut server = Running::start();
    let clients = clients_on_both_workers(server.addr);
    let placed: Vec<usize> = clients.iter().map(|(_, w)| *w).collect();
    let waiting: Vec<_> = clients
        .into_iter()
        .map(|(mut client, worker)| {
            thread::spawn(move || close_code(&mut client, &format!("a client of worker {worker}")))
        })
        .collect();
    server.handle.shutdown();
    for w in waiting {
        assert_eq!(w.join().expect("a client"), CloseCode::GOING_AWAY);
    }
    let result = server
        .result_within(Duration::from_secs(3) + SOON)
        .expect("run did not return after shutdown");
    result.expect("run after a shutdown");
    println!("clients on workers {placed:?}: every one closed with 1001, run returned Ok");
}

#[test]
fn a_shutdown_asked_before_run_starts_still_stops_every_worker() {
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    let mut workers = Workers::new(config, 2).expect("workers");
    workers.listen().expect("listen");
    workers.handle().shutdown();
    let (tx, rx) = mpsc::channel();
    let thread = thread::spawn(move || {
        let _ = tx.send(workers.run(|worker| WhereAmI { worker }));
    });
    let result = rx
        .recv_timeout(SOON)
        .expect("run did not return after an early shutdown");
    thread.join().unwrap();
    result.expect("run after an early shutdown");
}

#[test]
fn zero_workers_are_refused() {
    let error = Workers::new(ServerConfig::default(), 0)
        .err()
        .expect("Workers::new accepted 0 workers");
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");
}
