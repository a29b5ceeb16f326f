//! More of `--redis` end to end, with the helpers of tests/redis.rs
//! (tests/support/redis.rs): real `edgews` processes (`--workers 2`) on
//! ephemeral loopback ports and a real `redis-server` of each test's own.
//!
//! Covered: `rediss://` to a redis-server that speaks TLS only, its CA
//! given with `--redis-ca-file` (delivery across instances, ready) or not
//! (the system's roots do not verify it: not ready, the reason logged,
//! local delivery on); chat members of an instance stopped with SIGTERM
//! (their leaves reach the other instance, whether they answer the close
//! or not) or killed with SIGKILL (the other instance takes them out after
//! `--presence-interval` silence); chat presence for an instance started
//! late, and each member listed once on the other instance whichever
//! worker it joined on; a binary broadcast staying
//! binary, byte for byte, across instances; `/readyz` on the
//! `--metrics-listen` listener following Redis; a permessage-deflate
//! subscriber receiving another instance's publications intact; Redis'
//! own `client-output-buffer-limit pubsub` cutting the subscriber of an
//! instance stopped (SIGSTOP) under a flood: the instance reconnects, its
//! client stays open, gets the rest in order, and the hole is counted
//! lost.
//!
//! Every wait has a deadline of a few seconds; no test asserts a duration
//! beyond those deadlines.

mod support;

use edgews::client::{Client, ClientError, Received};
use edgews::protocol::MessageKind;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use support::measure::poll_every;
use support::process::{http_get, ServerProcess};
use support::redis::{
    assert_silent, broadcast_pair, connect, delivery, free_port, has, instance,
    instance_with_workers, logs, metric, numbered, publish, read_until, recv_text, seqs_from,
    status, stop, wait_for, wait_metric, wait_ready, wait_subscribers, Member, RedisServer,
    RECONNECT, SOON,
};

/// The status code `GET path` on `addr` is answered with.
fn status_at(addr: SocketAddr, path: &str) -> u16 {
    let (head, _) = http_get(addr, path, &[]);
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("GET {path} on {addr}: no status in {head:?}"))
}

/// The next message, which must be binary: its bytes.
fn recv_binary(client: &mut Client, who: &str) -> Vec<u8> {
    match client.recv_message() {
        Ok(m) if m.kind() == MessageKind::Binary => m.data().to_vec(),
        Ok(m) => panic!("{who}: a text message where a binary one was due: {m:?}"),
        Err(e) => panic!("{who}: no message: {e}"),
    }
}

/// Reads `client` until the server closes (answering its close), at most
/// `limit`, on a thread of its own: a well-behaved client of an instance
/// that shuts down.
fn answer_close(mut client: Client, limit: Duration) -> thread::JoinHandle<Client> {
    thread::spawn(move || {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
        {
            client.stream().set_read_timeout(Some(left)).unwrap();
            match client.recv() {
                Ok(Received::Closed(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        client
    })
}

// --------------------------------------------------------------- rediss://

#[test]
fn pubsub_over_rediss_with_the_servers_ca_file_delivers_across_instances_and_is_ready() {
    let redis = RedisServer::start_tls();
    let url = redis.url();
    assert_eq!(url, format!("rediss://localhost:{}", redis.port()));
    // the harness itself speaks TLS to it (it has no plain port)
    assert_eq!(redis.command(&["PING"]), "PONG");
    assert_eq!(redis.command(&["CONFIG", "GET", "port"]), "port\n0");
    let ca = redis.ca_file().to_str().expect("a UTF-8 path").to_string();
    let a = instance("pubsub", &url, &["--redis-ca-file", &ca]);
    let b = instance("pubsub", &url, &["--redis-ca-file", &ca]);
    let both = [&a, &b];
    wait_ready(&both, RECONNECT);

    let mut on_a = connect(&a, "/topics/from-b");
    let mut on_b = connect(&b, "/topics/from-a");
    wait_subscribers(&redis, "edgews:topic:from-a", 1, &both);
    wait_subscribers(&redis, "edgews:topic:from-b", 1, &both);
    for seq in 0..20 {
        publish(&mut on_a, "from-a", &format!("a/{seq} over TLS"));
        publish(&mut on_b, "from-b", &format!("b/{seq} over TLS"));
    }
    for seq in 0..20 {
        assert_eq!(
            delivery(&mut on_b, "subscriber on B", "from-a"),
            format!("a/{seq} over TLS")
        );
        assert_eq!(
            delivery(&mut on_a, "subscriber on A", "from-b"),
            format!("b/{seq} over TLS")
        );
    }
    assert_silent(&mut on_a, "subscriber on A");
    assert_silent(&mut on_b, "subscriber on B");
    for s in both {
        assert_eq!(status(s, "/readyz"), 200);
        assert_eq!(metric(s, "edgews_redis_connected"), 1.0);
        let log = s.stderr_text();
        assert!(
            log.contains(&format!("redis: connected to {url}")),
            "log:\n{log}"
        );
    }
}

#[test]
fn rediss_without_a_ca_file_cannot_verify_the_server_stays_unready_says_why_and_serves_locally() {
    let redis = RedisServer::start_tls();
    let a = instance("pubsub", &redis.url(), &[]);
    wait_for(SOON, "the TLS failure logged", &[&a], || {
        a.stderr_text().contains("redis: cannot connect")
    });
    let log = a.stderr_text();
    println!("the log of an instance that cannot verify Redis:\n{log}");
    let line = log
        .lines()
        .find(|l| l.contains("redis: cannot connect"))
        .unwrap();
    assert!(line.contains(&redis.url()), "{line}");
    // the reason is the certificate, not the network
    assert!(
        line.contains("certificate") || line.contains("UnknownIssuer"),
        "{line}"
    );
    assert_eq!(status(&a, "/healthz"), 200);
    // it keeps trying, and never becomes ready
    wait_metric(&a, "edgews_redis_reconnects_total", SOON, |v| v >= 2.0);
    let ready = poll_every(Duration::from_millis(100), Duration::from_secs(2), || {
        status(&a, "/readyz") != 503 || metric(&a, "edgews_redis_connected") != 0.0
    });
    assert!(
        ready.is_none(),
        "became ready with an unverified Redis\n{}",
        a.stderr_text()
    );
    // local delivery goes on
    let mut publisher = connect(&a, "/topics/p");
    let mut local = connect(&a, "/topics/news");
    publish(&mut publisher, "news", "local only");
    assert_eq!(
        delivery(&mut local, "subscriber on A", "news"),
        "local only"
    );
    assert!(
        redis.channels("*").is_empty(),
        "subscribed in Redis all the same"
    );
}

// -------------------------------------------------------------------- chat

/// The workers (of `workers`) of `server` that hold `members`'
/// connections, read from its log lines `#SLOT.GENERATION
/// 127.0.0.1:PORT: open /ws`: a worker's generations are its index modulo
/// the number of workers.
fn workers_of(server: &ServerProcess, members: &[Member], workers: u32) -> Vec<u32> {
    let opened: Vec<String> = members
        .iter()
        .map(|m| {
            let port = m
                .client
                .stream()
                .local_addr()
                .expect("local address")
                .port();
            format!(" 127.0.0.1:{port}: open /ws")
        })
        .collect();
    let mut found = Vec::new();
    wait_for(SOON, "the members' opens in the log", &[server], || {
        let log = server.stderr_text();
        found = opened
            .iter()
            .filter_map(|line_end| {
                log.lines()
                    .find(|l| l.ends_with(line_end))
                    .and_then(|l| l.split("] #").nth(1)?.split(' ').next()?.split_once('.'))
                    .and_then(|(_, g)| g.parse::<u32>().ok())
            })
            .collect();
        found.len() == opened.len()
    });
    found.iter().map(|g| g % workers).collect()
}

/// Names for members on A in the stop tests.
const NAMES_ON_A: [&str; 8] = ["al", "ann", "amy", "abe", "ada", "ari", "ava", "axel"];

/// Instances A and B of `chat --redis` with `extra` (2 workers each); bob
/// in room r on B, then at least three members on A, on both of A's
/// workers (joining more until both have one), everyone knowing everyone.
/// Returns A, B, bob, A's members and their names.
fn room_across_two(
    redis: &RedisServer,
    extra: &[&str],
) -> (
    ServerProcess,
    ServerProcess,
    Member,
    Vec<Member>,
    Vec<String>,
) {
    let a = instance("chat", &redis.url(), extra);
    let b = instance("chat", &redis.url(), extra);
    wait_ready(&[&a, &b], RECONNECT);
    let mut bob = Member::join(&b, "r", "bob");
    wait_subscribers(redis, "edgews:room:r", 1, &[&a, &b]);
    let mut on_a = Vec::new();
    let mut names = Vec::new();
    let mut workers = [0; 2];
    for name in NAMES_ON_A {
        if on_a.len() >= 3 && workers.iter().all(|&n| n > 0) {
            break;
        }
        let member = Member::join(&a, "r", name);
        workers[workers_of(&a, std::slice::from_ref(&member), 2)[0] as usize] += 1;
        on_a.push(member);
        names.push(name.to_string());
    }
    assert!(
        workers.iter().all(|&n| n > 0),
        "A's {} members all on one worker: {workers:?}\n{}",
        on_a.len(),
        a.stderr_text()
    );
    println!("A's members per worker: {workers:?}");
    bob.read_until(SOON, |r| names.iter().all(|n| r.knows(n)));
    for m in &mut on_a {
        m.read_until(SOON, |r| r.knows("bob") && names.iter().all(|n| r.knows(n)));
    }
    (a, b, bob, on_a, names)
}

/// Reads bob's events until he saw a leave of each of `names`, within
/// `limit`. (A leave each, not an empty list: a member listed twice on B
/// is the bug of
/// `chat_members_who_join_on_any_worker_are_listed_once_on_the_other_instance`.)
fn read_leaves(bob: &mut Member, names: &[String], limit: Duration) -> Result<(), String> {
    let left = |r: &support::redis::Room| {
        names.iter().all(|name| {
            r.events
                .contains(&json!({"type": "leave", "room": "r", "name": name}))
        })
    };
    bob.try_read_until(limit, left)
}

#[test]
fn chat_members_of_an_instance_stopped_with_sigterm_leave_the_room_on_the_other_instance() {
    let redis = RedisServer::start();
    let (a, b, mut bob, on_a, names) = room_across_two(&redis, &[]);
    // A's members answer the close 1001 as clients do
    let answering: Vec<_> = on_a
        .into_iter()
        .map(|m| answer_close(m.client, Duration::from_secs(10)))
        .collect();
    let started = Instant::now();
    let stopping = thread::spawn(move || a.terminate(Duration::from_secs(15)));
    let heard = read_leaves(&mut bob, &names, SOON);
    let after = started.elapsed();
    let (exit, log_a) = stopping.join().expect("terminate A");
    println!("bob heard the leaves of {names:?} ({heard:?}) {after:?} after the SIGTERM; A exited with {exit:?}");
    for client in answering {
        client.join().expect("a member of A");
    }
    if let Err(e) = heard {
        panic!(
            "{e}\nA exited with {exit:?}; its log:\n{log_a}\n{}",
            logs(&[&b])
        );
    }
    assert!(
        exit.is_some_and(|s| s.success()),
        "A exited with {exit:?}; log:\n{log_a}"
    );
    bob.assert_silent();
    assert_eq!(metric(&b, "edgews_redis_lost_in_total"), 0.0);
    // and B alone is left in the room's channel
    wait_subscribers(&redis, "edgews:room:r", 1, &[&b]);
}

#[test]
fn chat_members_of_an_instance_stopped_with_sigterm_leave_even_when_they_do_not_answer_the_close() {
    // A's members never read: A waits its --shutdown-timeout (1 s) for
    // their close, then drops them; their leaves must still reach B
    let redis = RedisServer::start();
    let (a, b, mut bob, on_a, names) = room_across_two(&redis, &["--shutdown-timeout", "1s"]);
    let stopping = thread::spawn(move || a.terminate(Duration::from_secs(15)));
    let heard = read_leaves(&mut bob, &names, SOON);
    let (exit, log_a) = stopping.join().expect("terminate A");
    drop(on_a);
    if let Err(e) = heard {
        panic!(
            "{e}\nA exited with {exit:?}; its log:\n{log_a}\n{}",
            logs(&[&b])
        );
    }
    assert!(
        exit.is_some_and(|s| s.success()),
        "A exited with {exit:?}; log:\n{log_a}"
    );
    bob.assert_silent();
}

#[test]
fn chat_members_of_an_instance_killed_with_sigkill_leave_after_the_presence_interval_silence() {
    let redis = RedisServer::start();
    let (a, b, mut bob, on_a, names) = room_across_two(&redis, &["--presence-interval", "300ms"]);
    // each listed once (a member listed twice, the race of
    // chat_members_who_join_on_any_worker_are_listed_once_on_the_other_instance,
    // is mended by A's next presence, within the interval)
    let mut expected: Vec<String> = names.iter().cloned().chain(["bob".to_string()]).collect();
    expected.sort();
    bob.read_until(SOON, |r| {
        let mut members = r.members.clone();
        members.sort();
        members == expected
    });
    // nothing is taken out while A is alive and announcing itself: over
    // twice 3 × the interval + 300 ms of margin
    bob.client
        .stream()
        .set_read_timeout(Some(Duration::from_millis(2500)))
        .unwrap();
    match bob.client.recv_message() {
        Err(ClientError::Timeout) => {}
        other => panic!("bob, while A lives: {other:?}"),
    }
    assert!(!b.stderr_text().contains("left their rooms"));

    let status = Command::new("kill")
        .args(["-KILL", &a.pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let started = Instant::now();
    bob.read_until(Duration::from_secs(5), |r| {
        names.iter().all(|n| !r.knows(n))
    });
    println!(
        "bob heard the leaves of {names:?} {:?} after the SIGKILL",
        started.elapsed()
    );
    drop(on_a);
    drop(a);
    for name in &names {
        let leave = json!({"type": "leave", "room": "r", "name": name});
        assert!(bob.seen.events.contains(&leave), "{:#?}", bob.seen);
    }
    assert_eq!(bob.seen.members, ["bob"]);
    wait_for(SOON, "B's log says they left", &[&b], || {
        b.stderr_text().contains("left their rooms")
    });
    let log = b.stderr_text();
    assert!(
        log.contains("chat members of silent instances left their rooms"),
        "log:\n{log}"
    );
    bob.assert_silent();
}

#[test]
fn chat_members_of_an_instance_started_late_and_the_earlier_members_learn_of_each_other() {
    let redis = RedisServer::start();
    let a = instance("chat", &redis.url(), &[]);
    wait_ready(&[&a], RECONNECT);
    let mut alice = Member::join(&a, "r", "alice");
    let mut ann = Member::join(&a, "r", "ann");
    alice.read_until(SOON, |r| r.knows("ann"));
    wait_subscribers(&redis, "edgews:room:r", 1, &[&a]);
    // a room only A has: B never subscribes to it
    let _zed = Member::join(&a, "elsewhere", "zed");

    let b = instance("chat", &redis.url(), &[]);
    wait_ready(&[&a, &b], RECONNECT);
    let mut bob = Member::join(&b, "r", "bob");
    bob.read_until(SOON, |r| r.knows("alice") && r.knows("ann"));
    for m in [&mut alice, &mut ann] {
        m.read_until(SOON, |r| r.knows("bob"));
    }
    // a member joining B later is welcomed with the whole room
    let carol = Member::join(&b, "r", "carol");
    for name in ["alice", "ann", "bob", "carol"] {
        assert!(carol.seen.knows(name), "{:#?}", carol.seen);
    }
    // and what B announces of its members reaches A
    alice.read_until(SOON, |r| r.knows("carol"));
    assert_eq!(redis.subscribers("edgews:room:elsewhere"), 1);
    assert_eq!(redis.subscribers("edgews:room:r"), 2);
}

#[test]
fn chat_members_who_join_on_any_worker_are_listed_once_on_the_other_instance() {
    // in each of ROOMS rooms, a member on B, then one on A (on either of
    // A's two workers): each must be listed once, with one join event, on
    // the other instance, whatever the order in which A publishes the
    // member's join and the presence its new subscription of the room
    // sends (a join on worker 1 reaches worker 0, which holds the link, in
    // a message of its own after the subscription's: a race, lost now and
    // then while worker 0 is idle, hence many rooms, joined one at a time)
    const ROOMS: usize = 480;
    let redis = RedisServer::start();
    let a = instance("chat", &redis.url(), &[]);
    let b = instance("chat", &redis.url(), &[]);
    let both = [&a, &b];
    wait_ready(&both, RECONNECT);
    let rooms: Vec<String> = (0..ROOMS).map(|k| format!("room{k}")).collect();
    let mut on_b: Vec<Member> = rooms.iter().map(|r| Member::join(&b, r, "bee")).collect();
    wait_for(RECONNECT, "B subscribed to every room", &both, || {
        redis.channels("edgews:room:*").len() == ROOMS
    });
    let mut on_a: Vec<Member> = rooms.iter().map(|r| Member::join(&a, r, "ay")).collect();
    for (bee, ay) in on_b.iter_mut().zip(on_a.iter_mut()) {
        bee.read_until(SOON, |r| r.knows("ay"));
        ay.read_until(SOON, |r| r.knows("bee"));
    }
    let workers = workers_of(&a, &on_a, 2);
    // whatever else is on its way arrives within this
    thread::sleep(Duration::from_millis(500));
    let mut twice = Vec::new();
    for (k, (bee, worker)) in on_b.iter_mut().zip(&workers).enumerate() {
        let _ = bee.try_read_until(Duration::from_millis(5), |_| false);
        let joins = bee
            .seen
            .events
            .iter()
            .filter(|e| e["type"] == "join" && e["name"] == "ay")
            .count();
        let mut members = bee.seen.members.clone();
        members.sort();
        if joins != 1 || members != ["ay", "bee"] {
            twice.push(format!(
                "room{k} (ay on A's worker {worker}): {joins} joins of ay, members {members:?}"
            ));
        }
    }
    let on_1 = workers.iter().filter(|&&w| w == 1).count();
    println!(
        "of A's {ROOMS} members, {on_1} on worker 1; listed twice: {}",
        twice.len()
    );
    assert!(
        twice.is_empty(),
        "B lists A's member more than once in {} of {ROOMS} rooms ({on_1} of A's members \
         on worker 1):\n{}",
        twice.len(),
        twice.join("\n")
    );
}

// --------------------------------------------------------------- broadcast

#[test]
fn a_binary_broadcast_arrives_on_the_other_instance_binary_and_byte_for_byte_and_text_stays_text() {
    let redis = RedisServer::start();
    let (a, b) = broadcast_pair(&redis, &[]);
    let mut sender = connect(&a, "/");
    let mut near = connect(&a, "/");
    let mut far = connect(&b, "/");

    // every byte value, invalid UTF-8, a NUL, an empty message, and bytes
    // that look like text
    let every_byte: Vec<u8> = (0..=255u8).collect();
    let bad_utf8 = b"\xff\xfe\x00EW\r\n\xc3(".to_vec();
    let large: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let binaries = [
        every_byte,
        bad_utf8,
        Vec::new(),
        b"plain ascii".to_vec(),
        large,
    ];
    for data in &binaries {
        sender.send_binary(data).expect("send binary");
    }
    sender.send_text("text stays text: é ✓").expect("send text");
    sender.send_text("").expect("send empty text");
    for (client, who) in [(&mut near, "receiver on A"), (&mut far, "receiver on B")] {
        for (i, data) in binaries.iter().enumerate() {
            let got = recv_binary(client, who);
            assert!(
                got == *data,
                "{who}: binary message {i} changed: {} bytes, not {}",
                got.len(),
                data.len()
            );
        }
        assert_eq!(recv_text(client, who), "text stays text: é ✓");
        assert_eq!(recv_text(client, who), "");
        assert_silent(client, who);
    }
    wait_metric(&b, "edgews_redis_received_total", SOON, |v| v == 7.0);
    assert_eq!(metric(&b, "edgews_redis_invalid_total"), 0.0);
}

// ------------------------------------------------------------------ /readyz

#[test]
fn readyz_on_the_metrics_listener_is_503_while_redis_is_down_and_200_while_it_is_up() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let a = support::process::Launch::new("broadcast")
        .args(["--workers", "2", "--redis", &url])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .start();
    let metrics = a.metrics_addr.expect("a metrics address");
    assert_ne!(metrics, a.addr);
    let readyz = || status_at(metrics, "/readyz");
    assert_eq!(readyz(), 503, "before Redis exists");
    assert_eq!(status_at(metrics, "/healthz"), 200);
    let (_, body) = http_get(metrics, "/readyz", &[]);
    assert_eq!(
        String::from_utf8_lossy(&body),
        "not ready: Redis is unreachable\n"
    );

    let mut redis = RedisServer::start_on_port(port, None);
    wait_for(RECONNECT, "/readyz 200 once Redis is up", &[&a], || {
        readyz() == 200
    });
    assert_eq!(metric(&a, "edgews_redis_connected"), 1.0);
    let (_, body) = http_get(metrics, "/readyz", &[]);
    assert_eq!(String::from_utf8_lossy(&body), "ready\n");

    redis.kill();
    wait_for(SOON, "/readyz 503 once Redis is gone", &[&a], || {
        readyz() == 503
    });
    assert_eq!(status_at(metrics, "/healthz"), 200);
    redis.restart();
    wait_for(RECONNECT, "/readyz 200 again", &[&a], || readyz() == 200);
    // the public listener no longer serves /metrics
    assert_eq!(status(&a, "/metrics"), 404);
}

// --------------------------------------------------------- permessage-deflate

#[test]
fn a_subscriber_that_negotiated_permessage_deflate_receives_another_instances_publications_intact()
{
    let redis = RedisServer::start();
    // A compresses with a context per connection, B with none kept
    let a = instance("pubsub", &redis.url(), &["--deflate", "dedicated"]);
    let b = instance("pubsub", &redis.url(), &["--deflate", "shared"]);
    let both = [&a, &b];
    wait_ready(&both, RECONNECT);
    // the project's client offers permessage-deflate by default
    let mut on_a = connect(&a, "/topics/t");
    let mut on_b = connect(&b, "/topics/t");
    let mut publisher_a = connect(&a, "/topics/pa");
    let mut publisher_b = connect(&b, "/topics/pb");
    for (client, who) in [(&on_a, "subscriber on A"), (&on_b, "subscriber on B")] {
        assert!(client.deflate().is_some(), "{who}: deflate not negotiated");
    }
    wait_subscribers(&redis, "edgews:topic:t", 2, &both);

    let compressible = "edgews compresses this sentence; ".repeat(300);
    let incompressible: String = (0..3000u32)
        .map(|i| char::from(b'!' + ((i * 7919 + i / 3) % 90) as u8))
        .collect();
    let payloads = [
        "short".to_string(),
        compressible.clone(),
        incompressible,
        "ünïcødé ✓ 😀".to_string(),
        compressible,
    ];
    for data in &payloads {
        publish(&mut publisher_a, "t", &format!("a:{data}"));
    }
    for data in &payloads {
        publish(&mut publisher_b, "t", &format!("b:{data}"));
    }
    // each subscriber gets A's in order and B's in order; the two
    // publishers' streams may interleave
    for (client, who) in [
        (&mut on_a, "subscriber on A"),
        (&mut on_b, "subscriber on B"),
    ] {
        let got: Vec<String> = (0..2 * payloads.len())
            .map(|_| delivery(client, who, "t"))
            .collect();
        for from in ["a", "b"] {
            let theirs: Vec<&str> = got
                .iter()
                .filter_map(|d| d.strip_prefix(from)?.strip_prefix(':'))
                .collect();
            assert!(
                theirs == payloads,
                "{who}: {} messages of {from} not as published: {:?}",
                theirs.len(),
                theirs.iter().map(|d| d.len()).collect::<Vec<_>>()
            );
        }
        assert_silent(client, who);
    }
    wait_metric(&b, "edgews_redis_received_total", SOON, |v| v == 5.0);
    wait_metric(&a, "edgews_redis_received_total", SOON, |v| v == 5.0);
}

// ------------------------------------------ Redis' output buffer limit

/// The names of the subscribing connections Redis lists (`CLIENT LIST`,
/// edgews names them `edgews-INSTANCE-subscriber`), sorted.
fn subscriber_names(redis: &RedisServer) -> Vec<String> {
    let mut names: Vec<String> = redis
        .command(&["CLIENT", "LIST"])
        .lines()
        .flat_map(|l| l.split(' '))
        .filter_map(|field| field.strip_prefix("name="))
        .filter(|name| name.ends_with("-subscriber"))
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

#[test]
fn redis_cutting_a_stopped_instances_subscriber_at_its_output_buffer_limit_is_a_loss_like_any_other(
) {
    // B stopped (SIGSTOP) while A floods the broadcast channel: Redis'
    // output buffer for B's subscriber passes its 256 KB hard limit and
    // Redis itself drops the connection (no CLIENT KILL). Continued, B
    // delivers what its socket still held, sees the end, reconnects, and
    // counts the hole as a gap when the first message after it arrives.
    const WARM: u64 = 10;
    // the flood goes in batches of 1 MB (1000 × 1 KiB) until Redis has cut
    // B, at most 32 MB: before Redis' own buffer grows, the loopback
    // socket buffers take their part (Redis' send buffer autotunes up to
    // tcp_wmem's 4 MB: about 3.7 MB of it here)
    const BATCH: u64 = 1000;
    const MAX_FLOOD: u64 = 32 * BATCH;
    const AFTER: u64 = 20;
    let redis = RedisServer::start();
    assert_eq!(
        redis.command(&[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 256kb 0 0"
        ]),
        "OK"
    );
    let limits = redis.command(&["CONFIG", "GET", "client-output-buffer-limit"]);
    assert!(limits.contains("pubsub 262144 0 0"), "{limits}");

    // B first, alone: the one subscriber Redis lists is B's
    let b = instance_with_workers("broadcast", &redis.url(), 1, &[]);
    wait_ready(&[&b], RECONNECT);
    wait_subscribers(&redis, "edgews:broadcast", 1, &[&b]);
    let names = subscriber_names(&redis);
    assert_eq!(names.len(), 1, "{names:?}");
    let b_subscriber = names[0].clone();
    let a = instance("broadcast", &redis.url(), &[]);
    let both = [&a, &b];
    wait_ready(&both, RECONNECT);
    wait_subscribers(&redis, "edgews:broadcast", 2, &both);

    let mut sender = connect(&a, "/");
    let receiver = connect(&b, "/");
    // the receiver reads on a thread of its own all along (its reads block
    // while B is stopped): until the last message (known once the flood is
    // over), each read bounded
    let last = Arc::new(AtomicU64::new(u64::MAX));
    let reading = thread::spawn({
        let last = last.clone();
        move || {
            let mut receiver = receiver;
            let got = read_until(&mut receiver, "receiver on B", RECONNECT, |g| {
                has(g, "a", last.load(Ordering::SeqCst))
            });
            (receiver, got)
        }
    });
    let pad = "p".repeat(1000);
    let send = |sender: &mut Client, seqs: std::ops::Range<u64>| {
        for seq in seqs {
            sender
                .send_text(&format!("{}/{pad}", numbered("a", seq)))
                .expect("send");
        }
    };
    // the first message crosses: B's base for A's numbers
    send(&mut sender, 0..WARM);
    wait_metric(&b, "edgews_redis_received_total", SOON, |v| {
        v == WARM as f64
    });

    // Redis logs its own disconnection, naming the client
    let cut_logged = || {
        redis
            .log()
            .lines()
            .find(|l| l.contains("output buffer limits") && l.contains(&b_subscriber))
            .map(str::to_string)
    };
    let stopped = stop(&b);
    let flood_started = Instant::now();
    let mut next = WARM;
    while next < WARM + MAX_FLOOD && cut_logged().is_none() {
        send(&mut sender, next..next + BATCH);
        next += BATCH;
    }
    let flood = next - WARM;
    let mut cut = None;
    let seen = poll_every(Duration::from_millis(50), SOON, || {
        cut = cut_logged();
        cut.is_some()
    });
    println!(
        "{flood} messages sent in {:?}; Redis: {cut:?}",
        flood_started.elapsed()
    );
    assert!(
        seen.is_some(),
        "Redis never cut B's subscriber {b_subscriber}; its clients:\n{}\nits log:\n{}",
        redis.command(&["CLIENT", "LIST"]),
        redis.log()
    );
    assert!(
        !subscriber_names(&redis).contains(&b_subscriber),
        "{b_subscriber} still listed:\n{}",
        redis.command(&["CLIENT", "LIST"])
    );
    stopped.resume();

    // B sees the loss, reconnects, and is ready again
    wait_for(SOON, "B logs the subscriber's loss", &both, || {
        b.stderr_text()
            .contains("redis: connection lost (subscriber)")
    });
    wait_metric(&b, "edgews_redis_reconnects_total", RECONNECT, |v| v >= 1.0);
    wait_ready(&both, RECONNECT);
    assert_eq!(status(&b, "/readyz"), 200);
    wait_subscribers(&redis, "edgews:broadcast", 2, &both);

    let sent = WARM + flood + AFTER;
    last.store(sent - 1, Ordering::SeqCst);
    send(&mut sender, WARM + flood..sent);
    let (mut receiver, got) = reading.join().expect("the receiver on B");
    // still open: nothing more, no close
    assert_silent(&mut receiver, "receiver on B");
    let seqs = seqs_from(&got, "a", "receiver on B");
    let delivered = seqs.len() as u64;
    let lost_in = wait_metric(&b, "edgews_redis_lost_in_total", SOON, |v| v >= 1.0);
    let received = metric(&b, "edgews_redis_received_total");
    let lost_out = metric(&a, "edgews_redis_lost_out_total");
    println!(
        "receiver on B: {delivered} of {sent}; B counted {received} received, {lost_in} lost \
         in; A {lost_out} lost out; B's log:\n{}",
        b.stderr_text()
    );
    for seq in (0..WARM).chain(WARM + flood..sent) {
        assert!(seqs.contains(&seq), "a/{seq} missing: {seqs:?}");
    }
    assert!(delivered < sent, "nothing lost: Redis never cut B");
    // Redis cut a stream: B missed one run of the flood, from where the
    // sockets' share ended to where B, reconnected, got A's publications
    // again (A may still be publishing its backlog of the flood then)
    let holes: Vec<(u64, u64)> = seqs
        .windows(2)
        .filter(|w| w[1] != w[0] + 1)
        .map(|w| (w[0] + 1, w[1] - 1))
        .collect();
    println!("missed on B: {holes:?}");
    if lost_out == 0.0 {
        assert_eq!(holes.len(), 1, "not one hole in the flood: {holes:?}");
    }
    assert_eq!(received, delivered as f64, "B's count of what it received");
    // exact: B saw A's first and last numbers, so every number between
    // that did not arrive is in a gap (A's own losses, lost_out, too:
    // their numbers are used all the same)
    assert_eq!(
        delivered as f64 + lost_in,
        sent as f64,
        "{delivered} delivered + {lost_in} counted lost on B, of {sent} sent"
    );
    assert_eq!(metric(&b, "edgews_redis_duplicates_total"), 0.0);
}

// ------------------------------------------------- what other instances send

/// A chat record from instance `from`, number `seq`, on room `room`, as
/// another instance (or a forger with access to Redis) would publish it.
fn chat_record(from: u64, seq: u64, room: &str, record: &Value) -> Vec<u8> {
    let topic = format!("room:{room}");
    let payload = record.to_string();
    let mut out = Vec::new();
    edgews::redis::envelope::Envelope {
        instance: from,
        seq,
        kind: edgews::redis::envelope::Kind::Chat,
        topic: &topic,
        payload: payload.as_bytes(),
    }
    .encode(&mut out)
    .expect("a small envelope");
    out
}

#[test]
fn chat_records_from_other_instances_are_held_to_this_instances_limits() {
    let redis = RedisServer::start();
    let b = instance(
        "chat",
        &redis.url(),
        &["--max-text", "100", "--max-room-members", "3"],
    );
    wait_ready(&[&b], RECONNECT);
    let mut bob = Member::join(&b, "r", "bob");
    wait_subscribers(&redis, "edgews:room:r", 1, &[&b]);
    const X: u64 = 0x5eed;
    let long_name = "n".repeat(65);
    let records = [
        // refused: a name no local member could have, a text over --max-text
        json!({"t": "join", "name": long_name}),
        json!({"t": "join", "name": "tab\there"}),
        json!({"t": "message", "from": "x", "ts": 1, "text": "t".repeat(101)}),
        // kept: within the limits
        json!({"t": "message", "from": "x", "ts": 1, "text": "fits"}),
        // a presence of five names: only 3 members from elsewhere are kept
        json!({"t": "presence", "names": ["p1", "p2", "p3", "p4", "p5"], "ask": false}),
        // one more join past the cap: refused
        json!({"t": "join", "name": "p6"}),
    ];
    for (i, record) in records.iter().enumerate() {
        let envelope = chat_record(X, i as u64 + 1, "r", record);
        redis.command_bytes(&[b"PUBLISH", b"edgews:room:r", &envelope]);
    }
    bob.read_until(SOON, |r| r.knows("p3"));
    assert_silent(&mut bob.client, "bob");
    let texts = bob.seen.texts_from("x");
    assert_eq!(texts, ["fits"], "only the message within --max-text");
    let mut members = bob.seen.members.clone();
    members.sort();
    assert_eq!(
        members,
        ["bob", "p1", "p2", "p3"],
        "three from elsewhere at most"
    );
    assert_eq!(
        metric(&b, "edgews_redis_received_total"),
        records.len() as f64
    );
    assert_eq!(metric(&b, "edgews_redis_lost_in_total"), 0.0);
}
