//! `--workers N` end to end: the real `edgews` binary with two (or three)
//! worker threads, each its own reactor with its own `SO_REUSEPORT`
//! listener, against raw loopback clients.
//!
//! Which worker holds a client is read from outside: `/metrics` lists the
//! connections each worker holds (`edgews_worker_connections`). With
//! `--metrics-listen`, the metrics request's own connection is always on
//! worker 0 (which serves that listener, and never hands its connections
//! over), so the clients each worker holds are the listed counts, less one
//! on worker 0; opening one client at a time and reading them after each
//! tells where each client landed ([`Fleet`]).
//!
//! Covered: the spread of 200 connections from one address; broadcast,
//! pub/sub and chat across workers (every message exactly once, in each
//! publisher's order; chat presence and room-wide message ids); the
//! process-wide limits (`--max-connections`, per-IP limits, topic and room
//! caps); `/metrics` adding up every worker; SIGTERM with every worker
//! busy; the thread count; and SIGHUP's reloaded certificate on every
//! worker.
//!
//! `cargo nextest run --test workers --no-capture` shows what was measured.

mod support;

use edgews::client::{Client, ClientError};
use edgews::protocol::frame::OpCode;
use edgews::tls::ClientTls;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};
use support::measure::wait_until;
use support::process::{http_exchange, metric_value, Launch, ServerProcess};
use support::tls::{replace_file, sighup, trusting, wss_connect, Ca, TestPki, Validity};
use support::{client_frame, upgrade_request, Frame, RawClient};

/// Generous bound for anything that should happen "soon" on a loaded
/// 2-core machine (a count settling, a message arriving).
const SOON: Duration = Duration::from_secs(10);

// ------------------------------------------------------------- helpers

/// `edgews MODE --workers 2`, no keep-alive pings, `/metrics` on a
/// listener of its own (served by worker 0), and `extra` arguments.
fn two_workers(mode: &str, extra: &[&str]) -> ServerProcess {
    Launch::new(mode)
        .args([
            "--workers",
            "2",
            "--ping-interval",
            "0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .args(extra)
        .start()
}

/// `edgews_worker_connections{worker="i"}` for i = 0, 1, … in one
/// `/metrics` text (empty when there is no such line).
fn worker_connections(metrics: &str) -> Vec<u64> {
    (0..)
        .map_while(|w| {
            metric_value(
                metrics,
                &format!("edgews_worker_connections{{worker=\"{w}\"}}"),
            )
        })
        .map(|n| n as u64)
        .collect()
}

/// The connections each worker holds besides the metrics request's own
/// (on worker 0, which serves `--metrics-listen`), read until they add up
/// to `total`: a connection the server is still letting go of (an earlier
/// metrics request, a refused upgrade) counts until it is gone.
fn clients_per_worker(server: &ServerProcess, total: u64) -> Vec<u64> {
    let mut held = Vec::new();
    let settled = wait_until(SOON, || {
        held = worker_connections(&server.metrics());
        if let Some(first) = held.first_mut() {
            *first = first.saturating_sub(1);
        }
        held.iter().sum::<u64>() == total
    });
    assert!(
        settled,
        "the workers hold {held:?} connections besides /metrics', not {total} in all; log:\n{}",
        server.stderr_text()
    );
    held
}

/// Clients opened one at a time, each placed on the worker that took it
/// (read from `/metrics` after each; see the module docs).
struct Fleet<'a> {
    server: &'a ServerProcess,
    /// Clients (of this fleet) each worker holds.
    held: Vec<u64>,
}

impl<'a> Fleet<'a> {
    /// A fleet on a server that holds no client yet.
    fn new(server: &'a ServerProcess) -> Fleet<'a> {
        let held = clients_per_worker(server, 0);
        assert!(held.len() > 1, "no worker lines in /metrics: {held:?}");
        Fleet { server, held }
    }

    /// Runs `open` (which must leave exactly one more connection open on
    /// the server) and says which worker holds it.
    fn place<T>(&mut self, open: impl FnOnce() -> T) -> (T, usize) {
        let opened = open();
        let total = self.held.iter().sum::<u64>() + 1;
        let now = clients_per_worker(self.server, total);
        let grew: Vec<usize> = (0..now.len()).filter(|&w| now[w] > self.held[w]).collect();
        assert_eq!(
            grew.len(),
            1,
            "one more connection, yet the workers went from {:?} to {now:?}",
            self.held
        );
        self.held = now;
        (opened, grew[0])
    }

    /// Opens a WebSocket connection to `path`; returns it and its worker.
    fn open(&mut self, path: &str) -> (RawClient, usize) {
        let addr = self.server.addr;
        let (client, worker) = self.place(|| RawClient::open(addr, path));
        client.stream.set_read_timeout(Some(SOON)).unwrap();
        client.stream.set_write_timeout(Some(SOON)).unwrap();
        (client, worker)
    }
}

/// A masked text frame.
fn text_frame(text: &str) -> Vec<u8> {
    client_frame(true, OpCode::Text, text.as_bytes())
}

/// A masked close frame with `code`.
fn close_frame(code: u16) -> Vec<u8> {
    client_frame(true, OpCode::Close, &code.to_be_bytes())
}

/// The next frame, which must be text.
fn read_text(client: &mut RawClient, who: &str) -> String {
    match client.read_frame() {
        Some(Frame {
            opcode: OpCode::Text,
            payload,
            ..
        }) => String::from_utf8(payload).expect("UTF-8 text"),
        other => panic!("{who}: expected a text frame, got {other:?}"),
    }
}

/// The next frame, which must be a JSON text.
fn read_json(client: &mut RawClient, who: &str) -> Value {
    let text = read_text(client, who);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{who}: {e}: {text}"))
}

/// The status line an upgrade request to `path` is answered with, and the
/// body (the connection is dropped: use it for refusals).
fn upgrade_answer(addr: SocketAddr, path: &str) -> (String, String) {
    let (head, body) = http_exchange(addr, &upgrade_request(addr, path));
    let status = head.lines().next().unwrap_or("").to_string();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Closes `client` cleanly (close 1000, the server's close, its FIN).
fn leave(mut client: RawClient, who: &str) {
    client.send(&close_frame(1000));
    assert_eq!(
        client.read_close_code(),
        Some(1000),
        "{who}: the close reply"
    );
    assert!(
        client.sees_eof_within(SOON),
        "{who}: TCP stayed open after the close handshake"
    );
}

/// What the server holds, for a failure message: the connections each
/// worker holds, the open and handed-over counts, and its log.
fn server_state(server: &ServerProcess) -> String {
    let m = server.metrics();
    format!(
        "the workers hold {:?} connections (the /metrics request's included); \
         edgews_open_connections {:?}, edgews_connections_adopted_total {:?}; log:\n{}",
        worker_connections(&m),
        metric_value(&m, "edgews_open_connections"),
        metric_value(&m, "edgews_connections_adopted_total"),
        server.stderr_text()
    )
}

/// Opens a WebSocket connection to `path` that must be accepted at once.
fn open_or_explain(server: &ServerProcess, path: &str, who: &str) -> RawClient {
    let mut raw = RawClient::connect(server.addr);
    raw.send(&upgrade_request(server.addr, path));
    let head = raw.read_http_head().unwrap_or_default();
    if !head.starts_with("HTTP/1.1 101 ") {
        panic!(
            "{who}: refused with {:?}\n{}",
            head.lines().next().unwrap_or(""),
            server_state(server)
        );
    }
    raw.stream.set_read_timeout(Some(SOON)).unwrap();
    raw
}

/// Retries an upgrade to `path` until it is accepted (a place the server
/// frees once it has seen a client go); the open connection.
fn upgrade_once_freed(server: &ServerProcess, path: &str, who: &str) -> RawClient {
    let mut last = String::new();
    let mut accepted = None;
    wait_until(SOON, || {
        let mut raw = RawClient::connect(server.addr);
        raw.send(&upgrade_request(server.addr, path));
        last = raw.read_http_head().unwrap_or_default();
        if last.starts_with("HTTP/1.1 101 ") {
            accepted = Some(raw);
        }
        accepted.is_some()
    });
    let raw = accepted.unwrap_or_else(|| {
        panic!(
            "{who}: {path} was never accepted within {SOON:?}; last answer: {:?}\n{}",
            last.lines().next().unwrap_or(""),
            server_state(server)
        )
    });
    raw.stream.set_read_timeout(Some(SOON)).unwrap();
    raw
}

/// Sends `text` and expects it back.
fn assert_echo(client: &mut RawClient, text: &str) {
    client.send(&text_frame(text));
    assert_eq!(read_text(client, text), text);
}

/// The threads of process `pid` (entries of /proc/PID/task).
fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("read /proc/PID/task")
        .count()
}

/// `"p{publisher}-{seq}"` back into its numbers.
fn parse_numbered(text: &str) -> (usize, usize) {
    let (p, seq) = text
        .strip_prefix('p')
        .and_then(|rest| rest.split_once('-'))
        .unwrap_or_else(|| panic!("not a numbered message: {text:?}"));
    (p.parse().unwrap(), seq.parse().unwrap())
}

/// Checks that `received` (the texts one client got, in order) holds
/// `0..count` from every publisher in `from`, each exactly once and in
/// order, and nothing else.
fn assert_every_message_once_in_order(
    who: &str,
    received: &[String],
    from: &[usize],
    count: usize,
) {
    let mut by_publisher: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for text in received {
        let (p, seq) = parse_numbered(text);
        by_publisher.entry(p).or_default().push(seq);
    }
    let publishers: Vec<usize> = by_publisher.keys().copied().collect();
    assert_eq!(
        publishers, from,
        "{who}: messages from the wrong publishers"
    );
    let expected: Vec<usize> = (0..count).collect();
    for (p, seqs) in &by_publisher {
        if *seqs != expected {
            let first_bad = seqs
                .iter()
                .zip(&expected)
                .position(|(a, b)| a != b)
                .unwrap_or(seqs.len().min(expected.len()));
            panic!(
                "{who}: publisher {p}'s messages arrived as {} messages, first out of place at \
                 position {first_bad}: {:?}",
                seqs.len(),
                &seqs[first_bad.saturating_sub(2)..(first_bad + 3).min(seqs.len())]
            );
        }
    }
}

/// The clients each worker holds, as a string ("w0 10, w1 10").
fn split(held: &[u64]) -> String {
    held.iter()
        .enumerate()
        .map(|(w, n)| format!("worker {w}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Asserts that every worker holds at least `min` of the clients listed
/// with their workers.
fn assert_on_every_worker(placed: &[usize], workers: usize, min: usize, what: &str) {
    for w in 0..workers {
        let n = placed.iter().filter(|&&p| p == w).count();
        assert!(
            n >= min,
            "{what}: worker {w} holds {n} (placement {placed:?}), wanted at least {min}"
        );
    }
}

// ----------------------------------- 1. the spread of connections

#[test]
fn two_hundred_connections_from_one_address_are_split_at_most_60_40_between_two_workers() {
    const CLIENTS: usize = 200;
    let server = two_workers("echo", &[]);
    // a burst: every TCP connection first, then every handshake
    let mut clients: Vec<RawClient> = (0..CLIENTS)
        .map(|_| RawClient::connect(server.addr))
        .collect();
    for c in &mut clients {
        c.stream.set_read_timeout(Some(SOON)).unwrap();
        c.send(&upgrade_request(server.addr, "/"));
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let head = c.read_http_head().expect("an answer");
        assert!(head.starts_with("HTTP/1.1 101 "), "client {i}: {head}");
    }
    let held = clients_per_worker(&server, CLIENTS as u64);
    let adopted = server.metric("edgews_connections_adopted_total").unwrap();
    println!(
        "{CLIENTS} connections from 127.0.0.1 over 2 workers: {} ({adopted} handed over by the \
         worker that accepted them)",
        split(&held)
    );
    for (w, &n) in held.iter().enumerate() {
        assert!(
            n as usize * 100 <= CLIENTS * 60,
            "worker {w} holds {n} of {CLIENTS} connections: {}",
            split(&held)
        );
    }
    // every one of them is served
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(&text_frame(&format!("hello {i}")));
    }
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(read_text(c, "echo"), format!("hello {i}"));
    }
}

// -------------------------------------------- 2. broadcast across workers

/// Clients on both workers; the publishers among them (indexes into the
/// clients), two on each worker.
fn spread_clients(fleet: &mut Fleet<'_>, path: &str, count: usize) -> (Vec<RawClient>, Vec<usize>) {
    let (clients, placed): (Vec<RawClient>, Vec<usize>) =
        (0..count).map(|_| fleet.open(path)).unzip();
    assert_on_every_worker(&placed, 2, 2, "clients");
    let mut publishers = Vec::new();
    for w in 0..2 {
        publishers.extend((0..count).filter(|&i| placed[i] == w).take(2));
    }
    println!(
        "{count} clients: {}; publishers: clients {publishers:?} (workers {:?})",
        split(&fleet.held),
        publishers.iter().map(|&i| placed[i]).collect::<Vec<_>>()
    );
    (clients, publishers)
}

/// Runs the publishers (`frames(p, seq)` is what publisher `p` sends as its
/// `seq`-th message) and a reader per client, which reads `expect(i)`
/// messages and decodes each with `decode`. Returns every client with what
/// it received, in order.
fn publish_and_receive(
    clients: Vec<RawClient>,
    publishers: &[usize],
    count: usize,
    frame: impl Fn(usize, usize) -> Vec<u8> + Send + Sync + 'static,
    expect: impl Fn(usize) -> usize,
    decode: impl Fn(&mut RawClient, &str) -> String + Send + Sync + 'static,
) -> Vec<(RawClient, Vec<String>)> {
    let frame = Arc::new(frame);
    let decode = Arc::new(decode);
    let start = Arc::new(Barrier::new(publishers.len()));
    let writers: Vec<_> = publishers
        .iter()
        .enumerate()
        .map(|(p, &i)| {
            let mut stream = clients[i].stream.try_clone().unwrap();
            let (frame, start) = (frame.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                for seq in 0..count {
                    stream.write_all(&frame(p, seq)).expect("publish");
                }
            })
        })
        .collect();
    let readers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            let expected = expect(i);
            let decode = decode.clone();
            thread::spawn(move || {
                let who = format!("client {i}");
                let got: Vec<String> = (0..expected).map(|_| decode(&mut client, &who)).collect();
                (client, got)
            })
        })
        .collect();
    for w in writers {
        w.join().expect("publisher");
    }
    readers
        .into_iter()
        .map(|r| r.join().expect("a reader got less than it should"))
        .collect()
}

#[test]
fn a_publisher_flooding_a_broadcast_loses_nothing_on_either_worker() {
    // one connection writes 100,000 messages as fast as the kernel takes
    // them; whether flow control kicks in depends on how the two workers
    // are scheduled (here they keep up without it): what holds either way
    // is that every receiver gets every message, in order
    const MESSAGES: usize = 100_000;
    let server = two_workers("broadcast", &[]);
    let mut fleet = Fleet::new(&server);
    let (clients, placed): (Vec<RawClient>, Vec<usize>) = (0..5).map(|_| fleet.open("/")).unzip();
    assert_on_every_worker(&placed, 2, 1, "clients");
    let mut clients = clients.into_iter();
    let publisher = clients.next().unwrap();
    let readers: Vec<_> = clients
        .enumerate()
        .map(|(i, mut client)| {
            thread::spawn(move || {
                let who = format!("receiver {i}");
                for seq in 0..MESSAGES {
                    assert_eq!(read_text(&mut client, &who), format!("m{seq}"), "{who}");
                }
            })
        })
        .collect();
    let flood: Vec<u8> = (0..MESSAGES)
        .flat_map(|seq| text_frame(&format!("m{seq}")))
        .collect();
    let mut stream = publisher.stream.try_clone().unwrap();
    for chunk in flood.chunks(64 << 10) {
        stream.write_all(chunk).expect("flood");
    }
    for reader in readers {
        reader.join().expect("a receiver missed a message");
    }
    let metrics = server.metrics();
    let lost = metric_value(&metrics, "edgews_relays_lost_total");
    let relayed = metric_value(&metrics, "edgews_relays_in_total");
    println!(
        "flood of {MESSAGES} from worker {}: receivers on workers {:?}, relays in {relayed:?}, lost {lost:?}",
        placed[0],
        &placed[1..]
    );
    assert_eq!(lost, Some(0.0));
    assert_eq!(relayed, Some(MESSAGES as f64));
    drop(publisher);
}

#[test]
fn broadcast_reaches_every_other_client_on_both_workers_once_in_each_publishers_order() {
    const CLIENTS: usize = 20;
    const COUNT: usize = 200;
    let server = two_workers("broadcast", &[]);
    let mut fleet = Fleet::new(&server);
    let (clients, publishers) = spread_clients(&mut fleet, "/", CLIENTS);
    let role = {
        let publishers = publishers.clone();
        move |i: usize| publishers.iter().position(|&c| c == i)
    };
    let n = publishers.len();
    let results = publish_and_receive(
        clients,
        &publishers,
        COUNT,
        |p, seq| text_frame(&format!("p{p}-{seq}")),
        |i| COUNT * (n - usize::from(role(i).is_some())),
        read_text,
    );
    for (i, (_, got)) in results.iter().enumerate() {
        let from: Vec<usize> = (0..n).filter(|&p| Some(p) != role(i)).collect();
        assert_every_message_once_in_order(&format!("client {i}"), got, &from, COUNT);
    }
    // nothing more is on its way: the next message anyone gets is this one
    let mut clients: Vec<RawClient> = results.into_iter().map(|(c, _)| c).collect();
    clients[publishers[0]].send(&text_frame("the end"));
    for (i, c) in clients.iter_mut().enumerate() {
        if i != publishers[0] {
            assert_eq!(read_text(c, &format!("client {i}")), "the end");
        }
    }
    // every publication crossed to the other worker once (the counters
    // as the workers last published them: whether they are up to date at
    // once is for the /metrics test below)
    let mut relays_in = 0.0;
    wait_until(SOON, || {
        relays_in = server.metric("edgews_relays_in_total").unwrap();
        relays_in >= (n * COUNT) as f64
    });
    let lost = server.metric("edgews_relays_lost_total").unwrap();
    println!("{relays_in} relays delivered, {lost} lost");
    assert_eq!(lost, 0.0);
    assert!(relays_in >= (n * COUNT) as f64, "{relays_in} relays");
}

// ---------------------------------------------- 3. pub/sub across workers

/// A publication of `data` on `topic`.
fn publish_frame(topic: &str, data: &str) -> Vec<u8> {
    text_frame(&json!({"op": "publish", "topic": topic, "data": data}).to_string())
}

/// The data of the next delivery, which must be on `topic`.
fn read_delivery(client: &mut RawClient, who: &str, topic: &str) -> String {
    let v = read_json(client, who);
    assert_eq!(v["type"], "message", "{who}: {v}");
    assert_eq!(v["topic"], topic, "{who}: {v}");
    v["data"]
        .as_str()
        .unwrap_or_else(|| panic!("{who}: {v}"))
        .to_string()
}

#[test]
fn pubsub_publications_reach_every_subscriber_on_both_workers_once_in_order_and_no_other_topic() {
    const CLIENTS: usize = 16;
    const COUNT: usize = 200;
    let server = two_workers("pubsub", &[]);
    let mut fleet = Fleet::new(&server);
    let (clients, publishers) = spread_clients(&mut fleet, "/topics/t", CLIENTS);
    // subscribers of another topic, on both workers
    let mut others: Vec<(RawClient, usize)> = Vec::new();
    while others.len() < 12 {
        others.push(fleet.open("/topics/u"));
        let placed: Vec<usize> = others.iter().map(|(_, w)| *w).collect();
        if (0..2).all(|w| placed.contains(&w)) && placed.len() >= 3 {
            break;
        }
    }
    let placed: Vec<usize> = others.iter().map(|(_, w)| *w).collect();
    assert_on_every_worker(&placed, 2, 1, "subscribers of u");
    println!("subscribers of u on workers {placed:?}");

    let role = {
        let publishers = publishers.clone();
        move |i: usize| publishers.iter().position(|&c| c == i)
    };
    let n = publishers.len();
    let results = publish_and_receive(
        clients,
        &publishers,
        COUNT,
        |p, seq| publish_frame("t", &format!("p{p}-{seq}")),
        |i| COUNT * (n - usize::from(role(i).is_some())),
        |c, who| read_delivery(c, who, "t"),
    );
    for (i, (_, got)) in results.iter().enumerate() {
        let from: Vec<usize> = (0..n).filter(|&p| Some(p) != role(i)).collect();
        assert_every_message_once_in_order(&format!("subscriber {i} of t"), got, &from, COUNT);
    }
    let mut clients: Vec<RawClient> = results.into_iter().map(|(c, _)| c).collect();
    // nothing more on t, and nothing of t on u: the first message the
    // subscribers of u get is the one published on u after all of t's
    clients[publishers[0]].send(&publish_frame("t", "the end"));
    for (i, c) in clients.iter_mut().enumerate() {
        if i != publishers[0] {
            assert_eq!(
                read_delivery(c, &format!("subscriber {i} of t"), "t"),
                "the end"
            );
        }
    }
    clients[publishers[1]].send(&publish_frame("u", "only for u"));
    for (i, (c, w)) in others.iter_mut().enumerate() {
        let who = format!("subscriber {i} of u (worker {w})");
        assert_eq!(read_delivery(c, &who, "u"), "only for u");
    }
    assert_eq!(
        server.metric("edgews_relays_lost_total"),
        Some(0.0),
        "relays were lost"
    );
}

// --------------------------------------------------- 4. chat across workers

fn chat_path(room: &str, name: &str) -> String {
    format!("/ws?room={room}&name={name}")
}

/// Joins room `r` as `name`: the connection and the welcome's members.
fn join(addr: SocketAddr, name: &str) -> (RawClient, Vec<String>) {
    let mut client = RawClient::open(addr, &chat_path("r", name));
    client.stream.set_read_timeout(Some(SOON)).unwrap();
    let welcome = read_json(&mut client, name);
    assert_eq!(welcome["type"], "welcome", "{name}: {welcome}");
    assert_eq!(welcome["name"], name, "{name}: {welcome}");
    let members: Vec<String> = welcome["members"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: {welcome}"))
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    assert!(members.contains(&name.to_string()), "{name}: {welcome}");
    (client, members)
}

/// Joins every name at once, each from its own thread.
fn join_all(addr: SocketAddr, names: &[String]) -> Vec<(String, RawClient, Vec<String>)> {
    let start = Arc::new(Barrier::new(names.len()));
    let joins: Vec<_> = names
        .iter()
        .cloned()
        .map(|name| {
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                let (client, members) = join(addr, &name);
                (name, client, members)
            })
        })
        .collect();
    joins.into_iter().map(|j| j.join().expect("join")).collect()
}

/// What one member saw: its member list (the welcome's, with the join and
/// leave events applied) and the messages (id, from, text), in order.
#[derive(Debug, Default)]
struct Seen {
    members: Vec<String>,
    messages: Vec<(u64, String, String)>,
}

/// Reads room events until `count` messages came, applying presence to
/// `seen`.
fn read_room(client: &mut RawClient, who: &str, count: usize, seen: &mut Seen) {
    while seen.messages.len() < count {
        let v = read_json(client, who);
        let name = || {
            v["name"]
                .as_str()
                .unwrap_or_else(|| panic!("{who}: {v}"))
                .to_string()
        };
        match v["type"].as_str() {
            Some("join") => seen.members.push(name()),
            Some("leave") => {
                let gone = name();
                let at = seen.members.iter().position(|m| *m == gone);
                let at =
                    at.unwrap_or_else(|| panic!("{who}: {gone} left but was not listed: {seen:?}"));
                seen.members.remove(at);
            }
            Some("message") => seen.messages.push((
                v["id"].as_u64().unwrap_or_else(|| panic!("{who}: {v}")),
                v["from"].as_str().unwrap().to_string(),
                v["text"].as_str().unwrap().to_string(),
            )),
            _ => panic!("{who}: unexpected event {v}"),
        }
    }
}

fn chat_message(text: &str) -> Vec<u8> {
    text_frame(&json!({"type": "message", "room": "r", "text": text}).to_string())
}

#[test]
fn chat_members_on_both_workers_agree_on_the_members_and_get_every_message_once_with_rising_ids() {
    const FIRST: usize = 10;
    const EACH: usize = 20;
    let server = two_workers("chat", &[]);
    let addr = server.addr;
    let names: Vec<String> = (0..FIRST).map(|i| format!("m{i}")).collect();
    let mut members = join_all(addr, &names);
    let held = clients_per_worker(&server, FIRST as u64);
    println!("{FIRST} members joined at once: {}", split(&held));
    assert!(held.iter().all(|&n| n > 0), "{}", split(&held));

    // two leave while two others join
    let leaving: Vec<_> = members.drain(..2).collect();
    let leavers = thread::spawn(move || {
        for (name, client, _) in leaving {
            leave(client, &name);
        }
    });
    members.extend(join_all(addr, &["m10".to_string(), "m11".to_string()]));
    leavers.join().expect("the leavers");
    let expected: BTreeSet<String> = members.iter().map(|(n, _, _)| n.clone()).collect();
    assert!(
        wait_until(SOON, || server.metric("edgews_subscriptions")
            == Some(expected.len() as f64)),
        "the room never settled at {} members",
        expected.len()
    );
    let held = clients_per_worker(&server, expected.len() as u64);
    println!("after two left and two joined: {}", split(&held));
    assert!(held.iter().all(|&n| n > 0), "{}", split(&held));

    // everyone talks at once
    let total = expected.len() * EACH;
    let start = Arc::new(Barrier::new(members.len()));
    let talkers: Vec<_> = members
        .into_iter()
        .map(|(name, mut client, welcome)| {
            let mut writer = client.stream.try_clone().unwrap();
            let start = start.clone();
            thread::spawn(move || {
                let sender = {
                    let name = name.clone();
                    thread::spawn(move || {
                        start.wait();
                        for k in 0..EACH {
                            writer
                                .write_all(&chat_message(&format!("{name}-{k}")))
                                .unwrap();
                        }
                    })
                };
                let mut seen = Seen {
                    members: welcome,
                    messages: Vec::new(),
                };
                read_room(&mut client, &name, total, &mut seen);
                sender.join().expect("sender");
                (name, client, seen)
            })
        })
        .collect();
    let results: Vec<(String, RawClient, Seen)> = talkers
        .into_iter()
        .map(|t| t.join().expect("a member missed messages"))
        .collect();

    let first_ids: Vec<u64> = results[0].2.messages.iter().map(|m| m.0).collect();
    for (name, _, seen) in &results {
        let mut listed = seen.members.clone();
        listed.sort();
        let want: Vec<String> = expected.iter().cloned().collect();
        assert_eq!(listed, want, "{name}'s member list");
        let ids: Vec<u64> = seen.messages.iter().map(|m| m.0).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{name}: ids not strictly increasing: {ids:?}"
        );
        assert_eq!(ids, first_ids, "{name} and {} saw other ids", results[0].0);
        for sender in &expected {
            let texts: Vec<&str> = seen
                .messages
                .iter()
                .filter(|m| m.1 == *sender)
                .map(|m| m.2.as_str())
                .collect();
            let sent: Vec<String> = (0..EACH).map(|k| format!("{sender}-{k}")).collect();
            assert_eq!(texts, sent, "{name}: what {sender} said");
        }
    }
    // one id per message, room-wide, counted from 1
    assert_eq!(first_ids, (1..=total as u64).collect::<Vec<_>>());
    // and the same message behind each id for everyone
    for (name, _, seen) in &results[1..] {
        assert_eq!(seen.messages, results[0].2.messages, "{name}");
    }
    // nothing more on its way: the next event is the next message
    let mut clients: Vec<(String, RawClient)> =
        results.into_iter().map(|(n, c, _)| (n, c)).collect();
    clients[0].1.send(&chat_message("the end"));
    for (name, c) in &mut clients {
        let v = read_json(c, name);
        assert_eq!(
            (v["type"].as_str(), v["id"].as_u64(), v["text"].as_str()),
            (Some("message"), Some(total as u64 + 1), Some("the end")),
            "{name}: {v}"
        );
    }
    println!(
        "{} members each received all {total} messages, ids 1..={total}",
        clients.len()
    );
}

// --------------------------------------------- 5. process-wide limits

#[test]
fn max_connections_counts_every_workers_connections() {
    let server = two_workers("echo", &["--max-connections", "10"]);
    let mut clients: Vec<RawClient> = (0..10)
        .map(|i| open_or_explain(&server, "/", &format!("upgrade {} of 10", i + 1)))
        .collect();
    let held = clients_per_worker(&server, 10);
    println!("10 connections: {}", split(&held));
    assert!(held.iter().all(|&n| n > 0), "{}", split(&held));
    for attempt in 0..6 {
        let (status, body) = upgrade_answer(server.addr, "/");
        assert!(
            status.starts_with("HTTP/1.1 503 "),
            "upgrade {} with 10 open: {status} {body}",
            11 + attempt
        );
    }
    for (i, c) in clients.iter_mut().enumerate() {
        assert_echo(c, &format!("still served {i}"));
    }
    // a place freed on either worker takes a new connection
    leave(clients.remove(0), "client 0");
    let mut newcomer = upgrade_once_freed(&server, "/", "a newcomer");
    assert_echo(&mut newcomer, "in the freed place");
}

#[test]
fn connections_handed_to_another_worker_count_once_toward_max_connections() {
    const MAX: usize = 8;
    const HANDED: f64 = 5.0;
    let server = two_workers("echo", &["--max-connections", &MAX.to_string()]);
    // rounds of MAX connections at once, until enough were handed over
    // (the kernel's hash decides how many a round needs)
    let mut adopted = 0.0;
    let mut rounds = 0;
    while adopted < HANDED && rounds < 100 {
        // retried while the last round's are still being let go of
        let clients: Vec<RawClient> = (0..MAX)
            .map(|i| upgrade_once_freed(&server, "/", &format!("round {rounds}, client {i}")))
            .collect();
        for (i, c) in clients.into_iter().enumerate() {
            leave(c, &format!("round {rounds}, client {i}"));
        }
        rounds += 1;
        adopted = server.metric("edgews_connections_adopted_total").unwrap();
    }
    println!("{rounds} rounds of {MAX} connections: {adopted} handed to the other worker");
    assert!(
        adopted >= HANDED,
        "{adopted} connections handed over in {rounds} rounds"
    );
    assert_eq!(
        server.metric("edgews_open_connections"),
        Some(0.0),
        "{}",
        server_state(&server)
    );
}

/// Opens TCP from `source` (a loopback address of this host) to `addr`
/// and sends an upgrade request; the answer's status line and the stream.
fn upgrade_from(source: &str, addr: SocketAddr, path: &str) -> (String, TcpStream) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&from.into()).expect("bind a loopback source");
    socket.connect(&addr.into()).expect("connect");
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(SOON)).unwrap();
    stream.write_all(&upgrade_request(addr, path)).unwrap();
    let head = support::tls::read_http_response(&mut stream)
        .map(|(head, _)| head)
        .unwrap_or_default();
    (head.lines().next().unwrap_or("").to_string(), stream)
}

#[test]
fn max_connections_per_ip_counts_the_ips_connections_on_every_worker() {
    let server = two_workers("echo", &["--max-connections-per-ip", "4"]);
    let mut clients: Vec<RawClient> = (0..4).map(|_| RawClient::open(server.addr, "/")).collect();
    let held = clients_per_worker(&server, 4);
    println!("4 connections from 127.0.0.1: {}", split(&held));
    assert!(held.iter().all(|&n| n > 0), "{}", split(&held));
    for attempt in 0..6 {
        let (status, body) = upgrade_answer(server.addr, "/");
        assert!(
            status.starts_with("HTTP/1.1 429 "),
            "upgrade {} from 127.0.0.1 with 4 open: {status} {body}",
            5 + attempt
        );
    }
    // another address is not this one's limit
    let (status, _other) = upgrade_from("127.0.0.2", server.addr, "/");
    assert!(
        status.starts_with("HTTP/1.1 101 "),
        "from 127.0.0.2: {status}"
    );
    for (i, c) in clients.iter_mut().enumerate() {
        assert_echo(c, &format!("still served {i}"));
    }
    leave(clients.pop().unwrap(), "client 3");
    let mut newcomer = upgrade_once_freed(&server, "/", "a newcomer");
    assert_echo(&mut newcomer, "in the freed place");
}

#[test]
fn max_upgrades_per_ip_is_one_budget_for_every_worker() {
    const RATE: usize = 5;
    let server = two_workers("echo", &["--max-upgrades-per-ip", &RATE.to_string()]);
    let started = Instant::now();
    let mut accepted = Vec::new();
    let mut refused = 0;
    for _ in 0..4 * RATE {
        let mut raw = RawClient::connect(server.addr);
        raw.send(&upgrade_request(server.addr, "/"));
        let head = raw.read_http_head().expect("an answer");
        if head.starts_with("HTTP/1.1 101 ") {
            accepted.push(raw);
        } else {
            assert!(head.starts_with("HTTP/1.1 429 "), "{head}");
            refused += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // the bucket holds RATE and refills at RATE a second: one budget for
    // the process (two workers with one each would let 2 × RATE through)
    let budget = RATE + (RATE as f64 * elapsed).ceil() as usize;
    println!(
        "{} upgrades in {elapsed:.3} s: {} accepted, {refused} refused with 429 (budget {budget})",
        4 * RATE,
        accepted.len()
    );
    assert!(accepted.len() >= RATE, "only {} accepted", accepted.len());
    assert!(
        accepted.len() <= budget,
        "{} accepted, more than one bucket allows ({budget})",
        accepted.len()
    );
    let held = clients_per_worker(&server, accepted.len() as u64);
    println!("the accepted ones: {}", split(&held));
    assert!(held.iter().all(|&n| n > 0), "{}", split(&held));
}

#[test]
fn pubsub_max_topics_counts_the_topics_of_every_worker() {
    let server = two_workers("pubsub", &["--max-topics", "3"]);
    let mut clients: Vec<(String, RawClient)> = Vec::new();
    for topic in ["a", "b", "c", "a", "b", "c"] {
        let c = RawClient::open(server.addr, &format!("/topics/{topic}"));
        c.stream.set_read_timeout(Some(SOON)).unwrap();
        clients.push((topic.to_string(), c));
    }
    let held = clients_per_worker(&server, 6);
    println!("6 subscribers of 3 topics: {}", split(&held));
    assert!(held.iter().all(|&n| n > 0), "{}", split(&held));
    for _ in 0..6 {
        let (status, body) = upgrade_answer(server.addr, "/topics/d");
        assert!(
            status.starts_with("HTTP/1.1 503 "),
            "a 4th topic: {status} {body}"
        );
    }
    // an existing topic still takes subscribers
    let mut more = RawClient::open(server.addr, "/topics/a");
    more.stream.set_read_timeout(Some(SOON)).unwrap();
    // a subscription to a 4th topic is refused on every connection
    for (topic, c) in &mut clients {
        c.send(&text_frame(r#"{"op":"subscribe","topic":"d"}"#));
        let v = read_json(c, topic);
        assert_eq!(v["type"], "error", "subscriber of {topic}: {v}");
    }
    // once c is gone from every worker, d has room
    let (gone, mut staying): (Vec<_>, Vec<_>) = clients.into_iter().partition(|(t, _)| t == "c");
    for (topic, c) in gone {
        leave(c, &topic);
    }
    assert!(
        wait_until(SOON, || server.metric("edgews_topics") == Some(2.0)),
        "topic c outlived its subscribers: {}",
        server.metrics()
    );
    let mut d = upgrade_once_freed(&server, "/topics/d", "a subscriber of d");
    more.send(&publish_frame("d", "to d"));
    assert_eq!(read_delivery(&mut d, "subscriber of d", "d"), "to d");
    // the others are still subscribed where they were
    more.send(&publish_frame("a", "to a"));
    for (topic, c) in staying.iter_mut().filter(|(t, _)| t == "a") {
        assert_eq!(
            read_delivery(c, &format!("subscriber of {topic}"), "a"),
            "to a"
        );
    }
}

#[test]
fn chat_room_and_rooms_caps_count_the_members_of_every_worker() {
    let server = two_workers("chat", &["--max-room-members", "3", "--max-rooms", "2"]);
    let mut members: Vec<RawClient> = ["a", "b", "c"]
        .iter()
        .map(|name| join(server.addr, name).0)
        .collect();
    let held = clients_per_worker(&server, 3);
    println!("3 members of r: {}", split(&held));
    assert!(held.iter().all(|&n| n > 0), "{}", split(&held));
    for _ in 0..6 {
        let (status, body) = upgrade_answer(server.addr, &chat_path("r", "d"));
        assert!(
            status.starts_with("HTTP/1.1 403 "),
            "a 4th member: {status} {body}"
        );
        assert!(body.contains("room r is full (3 members)"), "{body}");
    }
    let mut other_room = RawClient::open(server.addr, &chat_path("s", "e"));
    other_room.stream.set_read_timeout(Some(SOON)).unwrap();
    assert_eq!(read_json(&mut other_room, "e")["type"], "welcome");
    for _ in 0..4 {
        let (status, body) = upgrade_answer(server.addr, &chat_path("t", "f"));
        assert!(
            status.starts_with("HTTP/1.1 503 "),
            "a 3rd room: {status} {body}"
        );
    }
    // a member leaves: r takes one more
    leave(members.remove(0), "a");
    let mut d = upgrade_once_freed(&server, &chat_path("r", "d"), "member d");
    let welcome = read_json(&mut d, "d");
    assert_eq!(welcome["members"], json!(["b", "c", "d"]), "{welcome}");
}

// ----------------------------------------- 6. /metrics adds up the workers

/// `GET /metrics` on the server's own port until both workers have
/// answered. The worker that serves a request holds its connection, so an
/// answer whose counts add up to the clients + 1 shows who served it, once
/// two different ones are in. A worker that holds two clients more than
/// the other hands every new connection over, the /metrics request's too:
/// then one more (idle) client evens them out. Returns the clients each
/// worker holds and every such answer with the worker that served it.
fn metrics_from_each_worker(
    server: &ServerProcess,
    clients: &mut Vec<RawClient>,
) -> (Vec<u64>, Vec<(usize, String)>) {
    let mut seen = BTreeSet::new();
    for _ in 0..4 {
        let mut answers: Vec<(Vec<u64>, String)> = Vec::new();
        for _ in 0..40 {
            let text = server.metrics();
            let held = worker_connections(&text);
            if held.iter().sum::<u64>() != clients.len() as u64 + 1 {
                continue; // an earlier request's connection is still held
            }
            seen.insert(held.clone());
            answers.push((held, text));
            let distinct: BTreeSet<&Vec<u64>> = answers.iter().map(|(h, _)| h).collect();
            if distinct.len() >= 2 {
                return served_by(answers);
            }
        }
        clients.push(RawClient::open(server.addr, "/"));
    }
    panic!("every /metrics answer came from one worker: {seen:?}");
}

/// Which worker served each answer (the one holding one more connection
/// than the least it held in any answer), and the clients each holds.
fn served_by(answers: Vec<(Vec<u64>, String)>) -> (Vec<u64>, Vec<(usize, String)>) {
    let workers = answers[0].0.len();
    let base: Vec<u64> = (0..workers)
        .map(|w| answers.iter().map(|(h, _)| h[w]).min().unwrap())
        .collect();
    let served = answers
        .into_iter()
        .map(|(held, text)| {
            let by = (0..workers).find(|&w| held[w] > base[w]).unwrap();
            (by, text)
        })
        .collect();
    (base, served)
}

#[test]
fn metrics_from_either_worker_add_up_every_workers_counters() {
    const CLIENTS: usize = 8;
    const EACH: usize = 25;
    // /metrics on the WebSocket port: either worker may serve it
    let server = Launch::new("echo")
        .args(["--workers", "2", "--ping-interval", "0"])
        .start();
    let mut clients: Vec<RawClient> = (0..CLIENTS)
        .map(|_| RawClient::open(server.addr, "/"))
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.stream.set_read_timeout(Some(SOON)).unwrap();
        for k in 0..EACH {
            c.send(&text_frame(&format!("{i}-{k}")));
        }
    }
    for (i, c) in clients.iter_mut().enumerate() {
        for k in 0..EACH {
            assert_eq!(read_text(c, "echo"), format!("{i}-{k}"));
        }
    }
    let (held, answers) = metrics_from_each_worker(&server, &mut clients);
    let opened = clients.len();
    let by: Vec<usize> = answers.iter().map(|(w, _)| *w).collect();
    println!(
        "{opened} clients ({}), {} messages; /metrics answered by workers {by:?}",
        split(&held),
        CLIENTS * EACH
    );
    assert!(held.iter().all(|&n| n > 0), "{}", split(&held));
    let n = (CLIENTS * EACH) as f64;
    for (worker, text) in &answers {
        for (series, want) in [
            ("edgews_messages_in_total", n),
            ("edgews_messages_out_total", n),
            ("edgews_opened_total", opened as f64),
            ("edgews_open_connections", opened as f64),
            ("edgews_workers", 2.0),
        ] {
            assert_eq!(
                metric_value(text, series),
                Some(want),
                "{series} as worker {worker} tells it, asked after every echo had come back \
                 (the other worker's counters should be in):\n{text}"
            );
        }
    }
}

// --------------------------------------- 7. shutdown with every worker busy

/// One streaming echo client: what it saw when the server closed.
struct Streamed {
    echoed: usize,
    close_code: Option<u16>,
    eof: bool,
}

/// Streams numbered messages to `client` from one thread and checks their
/// echoes from another until the server's close; answers that close.
fn stream_echoes(
    mut client: RawClient,
    i: usize,
    echoed: Arc<AtomicUsize>,
) -> thread::JoinHandle<Streamed> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut writer = client.stream.try_clone().unwrap();
    let writing = {
        let stop = stop.clone();
        thread::spawn(move || {
            let pad = "x".repeat(200);
            let mut seq = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let frame = text_frame(&format!("{i}-{seq}-{pad}"));
                if writer.write_all(&frame).is_err() {
                    break;
                }
                seq += 1;
            }
        })
    };
    thread::spawn(move || {
        let pad = "x".repeat(200);
        let mut n = 0usize;
        let close_code = loop {
            match client.read_frame() {
                Some(f) if f.opcode == OpCode::Text => {
                    let text = String::from_utf8(f.payload).unwrap();
                    assert_eq!(text, format!("{i}-{n}-{pad}"), "client {i}: echo {n}");
                    n += 1;
                    echoed.store(n, Ordering::SeqCst);
                }
                Some(f) if f.opcode == OpCode::Close => break f.close_code(),
                other => panic!("client {i}: after {n} echoes, {other:?}"),
            }
        };
        stop.store(true, Ordering::SeqCst);
        writing.join().unwrap();
        client.send(&close_frame(1001));
        let eof = client.sees_eof_within(SOON);
        Streamed {
            echoed: n,
            close_code,
            eof,
        }
    })
}

#[test]
fn sigterm_with_every_worker_streaming_closes_every_client_with_1001_and_exits_0() {
    const CLIENTS: usize = 8;
    let timeout = Duration::from_secs(5);
    let server = two_workers("echo", &["--shutdown-timeout", "5s"]);
    let mut fleet = Fleet::new(&server);
    let (clients, placed): (Vec<RawClient>, Vec<usize>) =
        (0..CLIENTS).map(|_| fleet.open("/")).unzip();
    assert_on_every_worker(&placed, 2, 1, "clients");
    let counters: Vec<Arc<AtomicUsize>> = (0..CLIENTS).map(|_| Arc::default()).collect();
    let streams: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, c)| stream_echoes(c, i, counters[i].clone()))
        .collect();
    // every client, on either worker, is in the middle of its stream
    assert!(
        wait_until(SOON, || counters
            .iter()
            .all(|c| c.load(Ordering::SeqCst) >= 100)),
        "the streams did not get going: {:?}",
        counters
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .collect::<Vec<_>>()
    );
    // gone within the shutdown timeout (and a grace for a loaded machine)
    let (status, log) = server.terminate(timeout + Duration::from_secs(2));
    let results: Vec<Streamed> = streams
        .into_iter()
        .map(|s| s.join().expect("a client"))
        .collect();
    println!(
        "echoes before the close, clients on workers {placed:?}: {:?}",
        results.iter().map(|r| r.echoed).collect::<Vec<_>>()
    );
    for (i, r) in results.iter().enumerate() {
        assert_eq!(
            r.close_code,
            Some(1001),
            "client {i} (worker {}); log:\n{log}",
            placed[i]
        );
        assert!(
            r.eof,
            "client {i}: TCP stayed open after the close handshake"
        );
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?} (None: killed, still running); log:\n{log}"
    );
    assert!(log.contains("stopped"), "{log}");
    // every connection ended with its close handshake, none by the timeout
    assert!(!log.contains("closed by timeout"), "{log}");
}

// --------------------------------------------------- 8. worker threads

#[test]
fn three_workers_are_three_threads_besides_main_and_one_worker_is_the_main_thread_alone() {
    let three = Launch::new("echo")
        .args(["--workers", "3", "--ping-interval", "0"])
        .start();
    let mut tasks = 0;
    assert!(
        wait_until(SOON, || {
            tasks = thread_count(three.pid);
            tasks == 4
        }),
        "--workers 3: {tasks} threads"
    );
    let mut clients: Vec<RawClient> = (0..6).map(|_| RawClient::open(three.addr, "/")).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.stream.set_read_timeout(Some(SOON)).unwrap();
        assert_echo(c, &format!("three {i}"));
    }
    let metrics = three.metrics();
    assert_eq!(
        metric_value(&metrics, "edgews_workers"),
        Some(3.0),
        "{metrics}"
    );
    let held = worker_connections(&metrics);
    assert_eq!(held.len(), 3, "{metrics}");
    assert_eq!(
        held.iter().sum::<u64>(),
        7,
        "6 clients and /metrics: {held:?}"
    );
    assert_eq!(thread_count(three.pid), 4, "after serving clients");
    println!("--workers 3: 4 threads; 6 clients and /metrics held as {held:?}");

    let one = Launch::new("echo")
        .args(["--workers", "1", "--ping-interval", "0"])
        .start();
    let mut client = RawClient::open(one.addr, "/");
    client.stream.set_read_timeout(Some(SOON)).unwrap();
    assert_echo(&mut client, "one");
    assert_eq!(thread_count(one.pid), 1, "--workers 1");
    let metrics = one.metrics();
    assert_eq!(metric_value(&metrics, "edgews_open_connections"), Some(1.0));
    assert!(
        !metrics.contains("edgews_workers") && !metrics.contains("edgews_worker_connections"),
        "--workers 1 lists workers:\n{metrics}"
    );
}

// ----------------------------------------- 9. SIGHUP reaches every worker

/// Sends `text` over `client` and expects it back.
fn assert_tls_echo(client: &mut Client, text: &str) {
    client.send_text(text).expect("send");
    let echoed = client.recv_message().expect("the echo");
    assert_eq!(echoed.as_text(), Some(text));
}

/// A `wss://` client trusting `tls`: one more connection on the server.
fn tls_client(addr: SocketAddr, tls: ClientTls, who: &str) -> Client {
    wss_connect(addr, tls).unwrap_or_else(|e| panic!("{who}: {e:?}"))
}

#[test]
fn sighup_reloads_the_certificate_on_every_worker() {
    const CLIENTS: usize = 6;
    let pki = TestPki::new("workers-reload");
    let ca2 = Ca::new("edgews test CA 2");
    let ca2_file = ca2.write(pki.dir.join("ca2.pem"));
    let live = pki
        .ca
        .leaf(&support::tls::LOCAL_NAMES, Validity::Current)
        .write(&pki.dir, "live");
    let server = two_workers(
        "echo",
        &[
            "--tls-cert",
            live.cert.to_str().unwrap(),
            "--tls-key",
            live.key.to_str().unwrap(),
        ],
    );
    let addr = server.addr;
    let mut fleet = Fleet::new(&server);
    let (mut old, old_on): (Vec<Client>, Vec<usize>) = (0..CLIENTS)
        .map(|i| fleet.place(|| tls_client(addr, pki.client_tls(), &format!("old {i}"))))
        .unzip();
    assert_on_every_worker(&old_on, 2, 1, "clients of CA 1");
    for (i, c) in old.iter_mut().enumerate() {
        assert_tls_echo(c, &format!("old {i} before the reload"));
    }

    // certificate B, signed by CA 2, replaces A; then SIGHUP
    let renewed = ca2.leaf(&support::tls::LOCAL_NAMES, Validity::Current);
    replace_file(&live.key, renewed.key_pem.as_bytes());
    replace_file(&live.cert, renewed.chain_pem.as_bytes());
    sighup(server.pid);
    assert!(
        wait_until(SOON, || server.metric("edgews_tls_reloads_total")
            == Some(1.0)),
        "the reload was not counted; log:\n{}",
        server.stderr_text()
    );
    let (mut new, new_on): (Vec<Client>, Vec<usize>) = (0..CLIENTS)
        .map(|i| {
            fleet.place(|| {
                let who = format!("new {i} (trusting CA 2 only)");
                tls_client(addr, trusting(&ca2_file), &who)
            })
        })
        .unzip();
    println!("clients of CA 1 on workers {old_on:?}; of CA 2, after SIGHUP, on {new_on:?}");
    assert_on_every_worker(&new_on, 2, 1, "clients of CA 2");
    for (i, c) in new.iter_mut().enumerate() {
        assert_tls_echo(c, &format!("new {i}"));
    }
    for (i, c) in old.iter_mut().enumerate() {
        assert_tls_echo(c, &format!("old {i} after the reload"));
    }
    // the old certificate is gone from every worker
    for i in 0..CLIENTS {
        match wss_connect(addr, pki.client_tls()) {
            Err(ClientError::Tls(_)) => {}
            Err(other) => panic!("attempt {i} trusting CA 1: {other:?}"),
            Ok(_) => panic!("attempt {i} trusting CA 1 was served the old certificate"),
        }
    }
}
