//! `--redis URL` end to end: several real `edgews` processes (the binary,
//! `--workers 2` unless a test says otherwise, each on an ephemeral
//! loopback port) share topics through a real `redis-server` (Debian's
//! redis-server 7.0, installed by `scripts/install-redis.sh`, which
//! `scripts/test-all.sh` runs first). Each test starts its own
//! redis-server on a free loopback port with its own temporary directory
//! and no persistence (tests/support/redis.rs), and kills it at the end.
//! The helpers (instances, waits, clients, chat members) are in
//! tests/support/redis.rs too, shared with tests/redis_more.rs.
//! Clients are the project's own `edgews::client`; what Redis sees is read
//! from Redis itself (`PUBSUB CHANNELS`, `PUBSUB NUMSUB`), what an instance
//! counts from its `/metrics`, its health from `/healthz` and `/readyz`.
//!
//! Covered: broadcast across three instances (every message once, in each
//! sender's order, the sender's own copy not twice); pub/sub and chat
//! across two (only the channels with local subscribers are subscribed in
//! Redis; presence, messages, leaves, a gap announced as `lost`, a replayed
//! envelope dropped as a duplicate); Redis killed and restarted on the same
//! port, its subscriber connections killed (`CLIENT KILL TYPE pubsub`), a
//! Redis that is not there yet at start, a wrong password, a stalled Redis
//! filling the bounded queue (`--redis-queue`); `--redis-max-message`;
//! garbage published on an instance's channel; `--workers 1`, a password
//! and `--redis-prefix`; `echo --redis` refused.
//!
//! Every wait has a deadline of a few seconds (a reconnection: ten, as the
//! back-off is capped at 5 s plus jitter); no test asserts a duration.

mod support;

use edgews::client::Client;
use edgews::protocol::CloseCode;
use serde_json::json;
use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};
use support::process::{Launch, ServerProcess};
use support::redis::{
    assert_losses_counted, assert_silent, broadcast_pair, connect, delivery, free_port, has,
    instance, instance_with_workers, metric, numbered, publish, read_until, recv_json, recv_text,
    send_numbered, seqs_from, status, wait_for, wait_metric, wait_ready, wait_subscribers, Member,
    RedisServer, RECONNECT, SOON,
};
// ------------------------------------------------------------ the harness

#[test]
fn the_harness_starts_a_redis_server_that_answers_and_restarts_on_the_same_port() {
    let mut redis = RedisServer::start();
    assert_eq!(redis.command(&["PING"]), "PONG");
    assert_eq!(
        redis.command(&["SET", "k", "v"]),
        "OK",
        "log:\n{}",
        redis.log()
    );
    assert_eq!(redis.command(&["GET", "k"]), "v");
    assert_eq!(redis.command(&["PUBLISH", "nobody", "x"]), "0");
    let url = redis.url();
    assert_eq!(url, format!("redis://127.0.0.1:{}", redis.port()));

    // a subscriber shows in PUBSUB, and hears a PUBLISH byte for byte
    let mut sub = redis.subscriber(&["edgews:test"]);
    assert_eq!(redis.channels("edgews:*"), ["edgews:test"]);
    assert_eq!(redis.subscribers("edgews:test"), 1);
    let reply = redis.command_bytes(&[b"PUBLISH", b"edgews:test", b"EW\x00\xff\r\n"]);
    assert_eq!(reply.text(), "1");
    assert_eq!(
        sub.next(SOON),
        Some(("edgews:test".to_string(), b"EW\x00\xff\r\n".to_vec()))
    );
    assert!(redis.command(&["CLIENT", "LIST"]).contains("sub=1"));
    assert_eq!(redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]), "1");
    assert!(redis.channels("*").is_empty());

    // killed: the port refuses; restarted: the same port, empty (no --save)
    let port = redis.port();
    redis.kill();
    assert!(!redis.is_running());
    assert!(redis.try_command(&["PING"]).is_err(), "still answering");
    redis.restart();
    assert_eq!(redis.port(), port);
    assert_eq!(redis.url(), url);
    assert_eq!(redis.command(&["PING"]), "PONG");
    assert_eq!(redis.command(&["GET", "k"]), "(nil)");

    // stopped (SIGSTOP) it answers nothing; continued, it answers again
    redis.pause();
    assert!(
        redis.try_command(&["PING"]).is_err(),
        "answered while stopped"
    );
    redis.resume();
    assert_eq!(redis.command(&["PING"]), "PONG");
}

#[test]
fn the_harness_starts_a_redis_server_with_a_password_on_a_port_of_our_choosing() {
    let port = free_port();
    let mut redis = RedisServer::start_on_port(port, Some("s3cret"));
    assert_eq!(redis.port(), port);
    assert_eq!(redis.url(), format!("redis://:s3cret@127.0.0.1:{port}"));
    assert_eq!(redis.command(&["PING"]), "PONG");
    assert_eq!(
        redis.command(&["CONFIG", "GET", "requirepass"]),
        "requirepass\ns3cret"
    );
    // without the password, Redis refuses
    let addr = redis.addr();
    let refused = || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(SOON)).unwrap();
        s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
        let mut reply = [0u8; 7];
        s.read_exact(&mut reply).unwrap();
        reply == *b"-NOAUTH"
    };
    assert!(refused());
    // the same password after a restart
    redis.restart();
    assert_eq!(redis.port(), port);
    assert_eq!(redis.command(&["PING"]), "PONG");
    assert!(refused());
}

// -------------------------------------------------------------- broadcast

#[test]
fn broadcast_across_three_instances_reaches_every_client_once_in_each_senders_order() {
    const COUNT: u64 = 500;
    let redis = RedisServer::start();
    let instances: Vec<ServerProcess> = (0..3)
        .map(|_| instance("broadcast", &redis.url(), &["--include-sender"]))
        .collect();
    let all: Vec<&ServerProcess> = instances.iter().collect();
    wait_ready(&all, RECONNECT);
    wait_subscribers(&redis, "edgews:broadcast", 3, &all);

    // on each instance a sender (client 0) and two receivers; every client
    // connected before anyone sends
    let mut clients = Vec::new();
    for (i, inst) in instances.iter().enumerate() {
        for c in 0..3 {
            clients.push((i, c, connect(inst, "/")));
        }
    }
    let senders = ["i0", "i1", "i2"];
    let threads: Vec<_> = clients
        .into_iter()
        .map(|(i, c, mut client)| {
            thread::spawn(move || {
                let who = format!("client {c} on instance {i}");
                if c == 0 {
                    // COUNT messages, then one more as the end mark
                    send_numbered(&mut client, senders[i], 0..=COUNT);
                }
                let total = senders.len() * (COUNT as usize + 1);
                let got = read_until(&mut client, &who, SOON, |got| got.len() >= total);
                assert_silent(&mut client, &who);
                for s in senders {
                    let seqs = seqs_from(&got, s, &who);
                    assert_eq!(
                        seqs,
                        (0..=COUNT).collect::<Vec<_>>(),
                        "{who}: what {s} sent"
                    );
                }
                client
            })
        })
        .collect();
    let _clients: Vec<Client> = threads
        .into_iter()
        .map(|t| {
            t.join()
                .expect("a client got other than every message once")
        })
        .collect();

    // each instance published its sender's messages and accepted the two
    // others'; nothing lost, doubled, invalid or too big
    for inst in &instances {
        wait_metric(inst, "edgews_redis_published_total", SOON, |v| {
            v == (COUNT + 1) as f64
        });
        wait_metric(inst, "edgews_redis_received_total", SOON, |v| {
            v == 2.0 * (COUNT + 1) as f64
        });
        for zero in [
            "edgews_redis_lost_out_total",
            "edgews_redis_lost_in_total",
            "edgews_redis_duplicates_total",
            "edgews_redis_invalid_total",
            "edgews_redis_oversize_total",
            "edgews_redis_reconnects_total",
        ] {
            assert_eq!(metric(inst, zero), 0.0, "{zero} on {}", inst.addr);
        }
        assert_eq!(metric(inst, "edgews_redis_connected"), 1.0);
    }
}

#[test]
fn broadcast_without_include_sender_never_returns_the_senders_own_message_through_redis() {
    const COUNT: u64 = 100;
    let redis = RedisServer::start();
    let (a, b) = broadcast_pair(&redis, &[]);
    let mut sender = connect(&a, "/");
    let mut near = connect(&a, "/");
    let mut far = connect(&b, "/");
    send_numbered(&mut sender, "a", 0..COUNT);
    for (client, who) in [(&mut near, "receiver on A"), (&mut far, "receiver on B")] {
        let got = read_until(client, who, SOON, |got| got.len() as u64 >= COUNT);
        assert_eq!(seqs_from(&got, "a", who), (0..COUNT).collect::<Vec<_>>());
        assert_silent(client, who);
    }
    assert_silent(&mut sender, "the sender on A");
    // and the sender does hear the others, from the other instance too
    send_numbered(&mut far, "b", [0]);
    assert_eq!(recv_text(&mut sender, "the sender on A"), "b/0");
    assert_eq!(recv_text(&mut near, "receiver on A"), "b/0");
    assert_silent(&mut far, "the sender on B");
}

// ----------------------------------------------------------------- pubsub

#[test]
fn pubsub_reaches_subscribers_on_another_instance_once_in_order_and_only_needed_channels_are_subscribed(
) {
    const COUNT: u64 = 300;
    let redis = RedisServer::start();
    let a = instance("pubsub", &redis.url(), &[]);
    let b = instance("pubsub", &redis.url(), &[]);
    let both = [&a, &b];
    wait_ready(&both, RECONNECT);

    // A: the publisher (subscribed to a topic of its own) and a local
    // subscriber of news; B: two subscribers of news
    let mut publisher = connect(&a, "/topics/a-only");
    let mut local = connect(&a, "/topics/news");
    let mut far1 = connect(&b, "/topics/news");
    let mut far2 = connect(&b, "/topics/news");
    wait_subscribers(&redis, "edgews:topic:news", 2, &both);
    wait_subscribers(&redis, "edgews:topic:a-only", 1, &both);
    assert_eq!(
        redis.channels("edgews:*"),
        ["edgews:topic:a-only", "edgews:topic:news"],
        "only the topics with local subscribers are subscribed"
    );

    for seq in 0..COUNT {
        publish(&mut publisher, "news", &numbered("a", seq));
    }
    // a topic nobody subscribes to: published, yet subscribed nowhere
    publish(&mut publisher, "nobody", "lost in space");
    publish(&mut publisher, "news", "the end");
    for (client, who) in [
        (&mut local, "subscriber on A"),
        (&mut far1, "subscriber 1 on B"),
        (&mut far2, "subscriber 2 on B"),
    ] {
        for seq in 0..COUNT {
            assert_eq!(delivery(client, who, "news"), numbered("a", seq), "{who}");
        }
        assert_eq!(delivery(client, who, "news"), "the end", "{who}");
        assert_silent(client, who);
    }
    assert_silent(&mut publisher, "the publisher");
    assert_eq!(
        redis.channels("edgews:*"),
        ["edgews:topic:a-only", "edgews:topic:news"]
    );
    wait_metric(&a, "edgews_redis_published_total", SOON, |v| {
        v == (COUNT + 2) as f64
    });
    wait_metric(&b, "edgews_redis_received_total", SOON, |v| {
        v == (COUNT + 1) as f64
    });
    assert_eq!(metric(&a, "edgews_redis_received_total"), 0.0);
    for s in both {
        assert_eq!(metric(s, "edgews_redis_lost_in_total"), 0.0);
        assert_eq!(metric(s, "edgews_redis_duplicates_total"), 0.0);
    }

    // B's subscribers go, one by unsubscribing, one by closing: B leaves
    // the channel, A (still a subscriber) stays
    far2.send_text(&json!({"op": "unsubscribe", "topic": "news"}).to_string())
        .unwrap();
    assert_eq!(
        recv_json(&mut far2, "subscriber 2 on B"),
        json!({"type": "unsubscribed", "topic": "news"})
    );
    assert_eq!(redis.subscribers("edgews:topic:news"), 2, "B still has one");
    far1.close(CloseCode::NORMAL, "bye").unwrap();
    wait_subscribers(&redis, "edgews:topic:news", 1, &both);
    // and publishing on A still reaches A's own subscriber, once
    publish(&mut publisher, "news", "after B left");
    assert_eq!(
        delivery(&mut local, "subscriber on A", "news"),
        "after B left"
    );
    assert_silent(&mut local, "subscriber on A");
    // the last subscriber of news goes: the channel disappears
    local.close(CloseCode::NORMAL, "bye").unwrap();
    wait_for(SOON, "edgews:topic:news unsubscribed", &both, || {
        redis.channels("edgews:*") == ["edgews:topic:a-only"]
    });
    drop(far2);
    wait_for(SOON, "edgews:topic:a-only stays alone", &both, || {
        redis.channels("edgews:*") == ["edgews:topic:a-only"]
    });
}

#[test]
fn one_worker_and_two_workers_share_topics_with_a_password_and_a_prefix() {
    const COUNT: u64 = 100;
    let redis = RedisServer::start_with_password("s3cret");
    let url = redis.url();
    let a = instance_with_workers("pubsub", &url, 1, &["--redis-prefix", "app1:"]);
    let b = instance("pubsub", &url, &["--redis-prefix", "app1:"]);
    let both = [&a, &b];
    wait_ready(&both, RECONNECT);
    let mut on_a = connect(&a, "/topics/t");
    let mut on_b = connect(&b, "/topics/t");
    wait_subscribers(&redis, "app1:topic:t", 2, &both);
    assert_eq!(redis.channels("*"), ["app1:topic:t"], "the prefix is used");

    for seq in 0..COUNT {
        publish(&mut on_a, "t", &numbered("a", seq));
        publish(&mut on_b, "t", &numbered("b", seq));
    }
    // each hears the other's (a publisher does not get its own)
    let got_b: Vec<String> = (0..COUNT)
        .map(|_| delivery(&mut on_b, "subscriber on B", "t"))
        .collect();
    let got_a: Vec<String> = (0..COUNT)
        .map(|_| delivery(&mut on_a, "subscriber on A", "t"))
        .collect();
    assert_eq!(seqs_from(&got_b, "a", "B"), (0..COUNT).collect::<Vec<_>>());
    assert_eq!(seqs_from(&got_a, "b", "A"), (0..COUNT).collect::<Vec<_>>());
    assert_silent(&mut on_a, "subscriber on A");
    assert_silent(&mut on_b, "subscriber on B");
}

#[test]
fn a_message_over_redis_max_message_is_delivered_locally_only_and_counted() {
    let redis = RedisServer::start();
    let a = instance("pubsub", &redis.url(), &["--redis-max-message", "1KiB"]);
    let b = instance("pubsub", &redis.url(), &["--redis-max-message", "1KiB"]);
    let both = [&a, &b];
    wait_ready(&both, RECONNECT);
    let mut publisher = connect(&a, "/topics/p");
    let mut near = connect(&a, "/topics/big");
    let mut far = connect(&b, "/topics/big");
    wait_subscribers(&redis, "edgews:topic:big", 2, &both);

    let big = "x".repeat(2048);
    publish(&mut publisher, "big", &big);
    publish(&mut publisher, "big", "small");
    assert_eq!(delivery(&mut near, "subscriber on A", "big"), big);
    assert_eq!(delivery(&mut near, "subscriber on A", "big"), "small");
    // on B, the first thing to arrive is the small one
    assert_eq!(delivery(&mut far, "subscriber on B", "big"), "small");
    assert_silent(&mut far, "subscriber on B");
    wait_metric(&a, "edgews_redis_oversize_total", SOON, |v| v == 1.0);
    wait_metric(&a, "edgews_redis_published_total", SOON, |v| v == 1.0);
    assert_eq!(metric(&a, "edgews_redis_lost_out_total"), 0.0);
    assert_eq!(metric(&b, "edgews_redis_oversize_total"), 0.0);
    assert_eq!(metric(&b, "edgews_redis_lost_in_total"), 0.0);
}

// ------------------------------------------------------------------- chat

#[test]
fn chat_members_on_two_instances_see_each_others_presence_messages_and_leaves() {
    const COUNT: u64 = 100;
    let redis = RedisServer::start();
    let a = instance("chat", &redis.url(), &[]);
    let b = instance("chat", &redis.url(), &[]);
    let both = [&a, &b];
    wait_ready(&both, RECONNECT);

    let mut alice = Member::join(&a, "lobby", "alice");
    assert_eq!(alice.seen.members, ["alice"]);
    wait_subscribers(&redis, "edgews:room:lobby", 1, &both);

    // bob joins on B: he learns of alice (welcome or join), she of him
    let mut bob = Member::join(&b, "lobby", "bob");
    assert!(bob.seen.knows("bob"), "{:?}", bob.seen);
    bob.read_until(SOON, |r| r.knows("alice"));
    wait_subscribers(&redis, "edgews:room:lobby", 2, &both);
    alice.read_until(SOON, |r| r.knows("bob"));
    assert!(
        alice
            .seen
            .events
            .contains(&json!({"type": "join", "room": "lobby", "name": "bob"})),
        "{:?}",
        alice.seen.events
    );

    // a message from B reaches A (and its sender), stamped
    bob.say("hello from B");
    alice.read_until(SOON, |r| !r.messages.is_empty());
    bob.read_until(SOON, |r| !r.messages.is_empty());
    let m = &alice.seen.messages[0];
    assert_eq!(
        (&m["room"], &m["from"], &m["text"]),
        (&json!("lobby"), &json!("bob"), &json!("hello from B")),
        "{m}"
    );

    // many from A reach B once, in order; ids rise on each instance
    for seq in 0..COUNT {
        alice.say(&numbered("alice", seq));
    }
    let said: Vec<String> = (0..COUNT).map(|s| numbered("alice", s)).collect();
    for member in [&mut alice, &mut bob] {
        member.read_until(SOON, |r| r.texts_from("alice").len() as u64 >= COUNT);
        assert_eq!(member.seen.texts_from("alice"), said, "{}", member.who);
        assert_eq!(
            member.seen.texts_from("bob"),
            ["hello from B"],
            "{}",
            member.who
        );
        let ids = member.seen.ids();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{}: ids not rising: {ids:?}",
            member.who
        );
        member.assert_silent();
    }

    // carol joins on A: she learns of bob too; bob hears of her
    let mut carol = Member::join(&a, "lobby", "carol");
    carol.read_until(SOON, |r| {
        ["alice", "bob", "carol"].iter().all(|n| r.knows(n))
    });
    bob.read_until(SOON, |r| r.knows("carol"));
    // a room only B has a member in is subscribed by B only
    let _dave = Member::join(&b, "elsewhere", "dave");
    wait_subscribers(&redis, "edgews:room:elsewhere", 1, &both);
    assert_eq!(redis.subscribers("edgews:room:lobby"), 2);

    // alice leaves A: bob (B) and carol (A) hear it
    alice.client.close(CloseCode::NORMAL, "bye").unwrap();
    let leave = json!({"type": "leave", "room": "lobby", "name": "alice"});
    for member in [&mut bob, &mut carol] {
        member.read_until(SOON, |r| !r.knows("alice"));
        assert!(member.seen.events.contains(&leave), "{:?}", member.seen);
    }
    // bob leaves B (abruptly): carol hears it; B leaves the room's channel
    drop(bob);
    carol.read_until(SOON, |r| !r.knows("bob"));
    assert_eq!(carol.seen.members, ["carol"]);
    wait_subscribers(&redis, "edgews:room:lobby", 1, &both);
    carol.assert_silent();
}

#[test]
fn a_gap_in_a_rooms_sequence_is_announced_as_lost_and_a_replayed_envelope_is_dropped() {
    // what instance A publishes for a room is recorded from Redis; A is
    // then stopped, and B's member gets the recording replayed with one
    // message left out and one sent twice
    let redis = RedisServer::start();
    let mut recorder = redis.subscriber(&["edgews:room:gap"]);
    let a = instance("chat", &redis.url(), &[]);
    wait_ready(&[&a], RECONNECT);
    let mut alice = Member::join(&a, "gap", "alice");
    for k in 1..=3 {
        alice.say(&format!("gap-message-{k}"));
    }
    alice.read_until(SOON, |r| r.messages.len() >= 3);
    let mut recorded: Vec<Vec<u8>> = Vec::new();
    let contains = |env: &[u8], text: &str| env.windows(text.len()).any(|w| w == text.as_bytes());
    while !recorded
        .last()
        .is_some_and(|env| contains(env, "gap-message-3"))
    {
        let (channel, envelope) = recorder
            .next(SOON)
            .unwrap_or_else(|| panic!("A published {} envelopes only", recorded.len()));
        assert_eq!(channel, "edgews:room:gap");
        assert!(envelope.starts_with(b"EW"), "not an envelope: {envelope:?}");
        recorded.push(envelope);
    }
    let find = |text: &str| {
        recorded
            .iter()
            .position(|env| contains(env, text))
            .unwrap_or_else(|| panic!("no envelope carries {text}"))
    };
    let (first, second) = (find("gap-message-1"), find("gap-message-2"));
    assert!(first < second, "A published its messages out of order");
    drop(a);

    let b = instance("chat", &redis.url(), &[]);
    wait_ready(&[&b], RECONNECT);
    let mut bob = Member::join(&b, "gap", "bob");
    wait_subscribers(&redis, "edgews:room:gap", 2, &[&b]);
    let mut replay: Vec<&Vec<u8>> = recorded.iter().take(first + 1).collect();
    replay.push(&recorded[first]); // twice
    replay.extend(
        recorded
            .iter()
            .skip(first + 1)
            .filter(|env| !contains(env, "gap-message-2")),
    );
    for envelope in replay {
        redis.command_bytes(&[b"PUBLISH", b"edgews:room:gap", envelope]);
    }
    bob.read_until(SOON, |r| {
        r.texts_from("alice").len() >= 2 && !r.lost.is_empty()
    });
    assert_eq!(
        bob.seen.texts_from("alice"),
        ["gap-message-1", "gap-message-3"]
    );
    assert!(
        bob.seen
            .events
            .contains(&json!({"type": "lost", "room": "gap", "count": 1})),
        "{:?}",
        bob.seen.events
    );
    bob.assert_silent();
    wait_metric(&b, "edgews_redis_lost_in_total", SOON, |v| v == 1.0);
    wait_metric(&b, "edgews_redis_duplicates_total", SOON, |v| v == 1.0);
    assert_eq!(metric(&b, "edgews_redis_invalid_total"), 0.0);
}

// ------------------------------------------------------- Redis going away

#[test]
fn redis_killed_mid_stream_and_restarted_on_the_same_port_local_delivery_goes_on_and_cross_delivery_resumes(
) {
    const N: u64 = 50;
    let mut redis = RedisServer::start();
    let (a, b) = broadcast_pair(&redis, &[]);
    let both = [&a, &b];
    let mut sa = connect(&a, "/");
    let mut ra = connect(&a, "/");
    let mut sb = connect(&b, "/");
    let mut rb = connect(&b, "/");
    let mut got_a = Vec::new();
    let mut got_b = Vec::new();

    // before: 0..N from each side reach both
    send_numbered(&mut sa, "a", 0..N);
    send_numbered(&mut sb, "b", 0..N);
    for (r, got, who) in [
        (&mut ra, &mut got_a, "receiver on A"),
        (&mut rb, &mut got_b, "receiver on B"),
    ] {
        got.extend(read_until(r, who, SOON, |g| {
            has(g, "a", N - 1) && has(g, "b", N - 1)
        }));
    }

    // Redis dies: each instance sees it, keeps serving, not ready
    redis.kill();
    for s in both {
        wait_metric(s, "edgews_redis_connected", RECONNECT, |v| v == 0.0);
        wait_for(SOON, "/readyz 503 while Redis is down", &both, || {
            status(s, "/readyz") == 503
        });
        assert_eq!(status(s, "/healthz"), 200);
    }
    // during: local delivery goes on; the publications are lost, counted
    send_numbered(&mut sa, "a", 100..100 + N);
    send_numbered(&mut sb, "b", 100..100 + N);
    got_a.extend(read_until(&mut ra, "receiver on A", SOON, |g| {
        has(g, "a", 100 + N - 1)
    }));
    got_b.extend(read_until(&mut rb, "receiver on B", SOON, |g| {
        has(g, "b", 100 + N - 1)
    }));
    for s in both {
        wait_metric(s, "edgews_redis_lost_out_total", SOON, |v| v >= 1.0);
        assert_eq!(metric(s, "edgews_redis_connected"), 0.0);
    }

    // Redis is back on the same port: reconnected, resubscribed, ready
    redis.restart();
    wait_ready(&both, RECONNECT);
    wait_subscribers(&redis, "edgews:broadcast", 2, &both);
    for s in both {
        wait_metric(s, "edgews_redis_reconnects_total", SOON, |v| v >= 1.0);
        assert_eq!(status(s, "/readyz"), 200);
    }
    send_numbered(&mut sa, "a", 200..200 + N);
    send_numbered(&mut sb, "b", 200..200 + N);
    got_a.extend(read_until(&mut ra, "receiver on A", SOON, |g| {
        has(g, "a", 200 + N - 1) && has(g, "b", 200 + N - 1)
    }));
    got_b.extend(read_until(&mut rb, "receiver on B", SOON, |g| {
        has(g, "a", 200 + N - 1) && has(g, "b", 200 + N - 1)
    }));
    assert_silent(&mut ra, "receiver on A");
    assert_silent(&mut rb, "receiver on B");

    // each message at most once, in order; every one sent while Redis was
    // up arrived; the local ones all arrived
    let up: Vec<u64> = (0..N).chain(200..200 + N).collect();
    let all: Vec<u64> = (0..N).chain(100..100 + N).chain(200..200 + N).collect();
    for (got, local, remote, who) in [
        (&got_a, "a", "b", "receiver on A"),
        (&got_b, "b", "a", "receiver on B"),
    ] {
        assert_eq!(seqs_from(got, local, who), all, "{who}: its own instance's");
        let from_far = seqs_from(got, remote, who);
        assert!(
            up.iter().all(|s| from_far.contains(s)),
            "{who}: {from_far:?}"
        );
    }
    for s in both {
        let log = s.stderr_text();
        assert!(log.contains("redis: connection lost"), "log:\n{log}");
        assert!(log.contains("redis: connected"), "log:\n{log}");
        assert_eq!(metric(s, "edgews_redis_duplicates_total"), 0.0);
    }
}

#[test]
fn killing_the_subscriber_connections_in_redis_makes_instances_reconnect_resume_and_count_losses() {
    const N: u64 = 400;
    let redis = RedisServer::start();
    let (a, b) = broadcast_pair(&redis, &[]);
    let both = [&a, &b];
    let sender = connect(&a, "/");
    let mut near = connect(&a, "/");
    let mut far = connect(&b, "/");

    // A streams (a message every 2 ms); in the middle, Redis drops every
    // subscribed connection, as at its client-output-buffer-limit
    let streaming = thread::spawn(move || {
        let mut sender = sender;
        for seq in 0..N {
            send_numbered(&mut sender, "a", [seq]);
            thread::sleep(Duration::from_millis(2));
        }
        sender
    });
    wait_metric(&b, "edgews_redis_received_total", SOON, |v| v >= 50.0);
    println!(
        "Redis's clients before the kill:\n{}",
        redis.command(&["CLIENT", "LIST"])
    );
    let killed: u64 = redis
        .command(&["CLIENT", "KILL", "TYPE", "pubsub"])
        .parse()
        .expect("CLIENT KILL answers a count");
    assert!(killed >= 2, "{killed} subscriber connections killed");
    let mut sender = streaming.join().expect("the sender");

    for s in both {
        wait_metric(s, "edgews_redis_reconnects_total", RECONNECT, |v| v >= 1.0);
    }
    wait_ready(&both, RECONNECT);
    wait_subscribers(&redis, "edgews:broadcast", 2, &both);
    send_numbered(&mut sender, "a", [1000]);
    let got_far = read_until(&mut far, "receiver on B", SOON, |g| has(g, "a", 1000));
    let got_near = read_until(&mut near, "receiver on A", SOON, |g| has(g, "a", 1000));
    assert_silent(&mut far, "receiver on B");
    let all: Vec<u64> = (0..N).chain([1000]).collect();
    assert_eq!(seqs_from(&got_near, "a", "receiver on A"), all);
    let delivered = seqs_from(&got_far, "a", "receiver on B").len() as u64 - 1;
    // every message either crossed once or was counted lost
    assert_losses_counted(&a, &b, delivered, N);
    assert_eq!(metric(&b, "edgews_redis_duplicates_total"), 0.0);
}

#[test]
fn an_instance_started_before_redis_serves_locally_and_becomes_ready_when_redis_comes() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let a = instance("broadcast", &url, &[]);
    let b = instance("broadcast", &url, &[]);
    let both = [&a, &b];
    for s in both {
        assert_eq!(status(s, "/healthz"), 200);
        assert_eq!(status(s, "/readyz"), 503);
        assert_eq!(metric(s, "edgews_redis_connected"), 0.0);
        // it keeps trying (back-off from about 100 ms)
        wait_metric(s, "edgews_redis_reconnects_total", SOON, |v| v >= 2.0);
    }
    let mut sa = connect(&a, "/");
    let mut ra = connect(&a, "/");
    let mut rb = connect(&b, "/");
    sa.send_text("local only").unwrap();
    assert_eq!(recv_text(&mut ra, "receiver on A"), "local only");
    assert_silent(&mut rb, "receiver on B");

    let redis = RedisServer::start_on_port(port, None);
    wait_ready(&both, RECONNECT);
    wait_subscribers(&redis, "edgews:broadcast", 2, &both);
    sa.send_text("across").unwrap();
    assert_eq!(recv_text(&mut ra, "receiver on A"), "across");
    assert_eq!(recv_text(&mut rb, "receiver on B"), "across");
    for s in both {
        assert_eq!(status(s, "/readyz"), 200);
        assert!(s.stderr_text().contains("redis: connected"));
    }
}

#[test]
fn a_wrong_password_is_logged_clearly_retried_slowly_and_local_delivery_goes_on() {
    let redis = RedisServer::start_with_password("right");
    let url = format!("redis://:wrong@127.0.0.1:{}", redis.port());
    let started = Instant::now();
    let a = instance("broadcast", &url, &[]);
    wait_for(SOON, "the authentication failure logged", &[&a], || {
        a.stderr_text().contains("redis: authentication failed")
    });
    assert_eq!(status(&a, "/readyz"), 503);
    assert_eq!(status(&a, "/healthz"), 200);
    assert_eq!(metric(&a, "edgews_redis_connected"), 0.0);
    let mut s = connect(&a, "/");
    let mut r = connect(&a, "/");
    s.send_text("still here").unwrap();
    assert_eq!(recv_text(&mut r, "receiver"), "still here");
    // no retry storm: 3 s after the start, only the capped interval's few
    if let Some(left) = Duration::from_secs(3).checked_sub(started.elapsed()) {
        thread::sleep(left);
    }
    let reconnects = metric(&a, "edgews_redis_reconnects_total");
    assert!(
        reconnects <= 3.0,
        "{reconnects} reconnections within 3 s; log:\n{}",
        a.stderr_text()
    );
    assert_eq!(status(&a, "/readyz"), 503);
}

#[test]
fn a_stalled_redis_fills_the_bounded_queue_and_what_does_not_fit_is_counted_lost() {
    // Redis stopped (SIGSTOP): the connection stays, nothing is read;
    // 12 MiB of publications against a 64 KiB queue (and at most 4 MiB of
    // kernel send buffer, tcp_wmem) cannot all wait
    const N: u64 = 1500;
    let redis = RedisServer::start();
    // the queue holds at least one largest message
    let (a, b) = broadcast_pair(
        &redis,
        &["--redis-queue", "64KiB", "--redis-max-message", "16KiB"],
    );
    let both = [&a, &b];
    let mut sender = connect(&a, "/");
    let near = connect(&a, "/");
    let far = connect(&b, "/");
    let pad = "p".repeat(8 << 10);
    let reader = |mut client: Client, who: &'static str, done: fn(&[String]) -> bool| {
        thread::spawn(move || {
            let got = read_until(&mut client, who, RECONNECT, done);
            (client, got)
        })
    };
    let near = reader(near, "receiver on A", |g| has(g, "a", N - 1));

    redis.pause();
    for seq in 0..N {
        sender.send_text(&format!("a/{seq}/{pad}")).expect("send");
    }
    let (_near, got_near) = near.join().expect("the receiver on A");
    assert_eq!(
        seqs_from(&got_near, "a", "receiver on A"),
        (0..N).collect::<Vec<_>>()
    );
    wait_metric(&a, "edgews_redis_lost_out_total", SOON, |v| v >= 1.0);
    redis.resume();

    // whatever was queued goes out; then the link is whole again
    wait_ready(&both, RECONNECT);
    wait_subscribers(&redis, "edgews:broadcast", 2, &both);
    let far = reader(far, "receiver on B", |g| has(g, "a", 5000));
    sender.send_text("a/5000").unwrap();
    let (mut far, got_far) = far.join().expect("the receiver on B");
    assert_silent(&mut far, "receiver on B");
    let delivered = seqs_from(&got_far, "a", "receiver on B").len() as u64 - 1;
    assert!(delivered < N, "all {N} crossed: the queue held 12 MiB");
    assert_losses_counted(&a, &b, delivered, N);
    assert_eq!(metric(&b, "edgews_redis_duplicates_total"), 0.0);
}

// ------------------------------------------------------- what is refused

#[test]
fn garbage_published_on_the_broadcast_channel_is_ignored_and_counted_invalid() {
    let redis = RedisServer::start();
    let (a, b) = broadcast_pair(&redis, &[]);
    let both = [&a, &b];
    let mut ra = connect(&a, "/");
    let mut rb = connect(&b, "/");
    for garbage in ["garbage", "", "EW"] {
        let heard = redis.command(&["PUBLISH", "edgews:broadcast", garbage]);
        assert_eq!(heard, "2", "both instances subscribe");
    }
    for s in both {
        wait_metric(s, "edgews_redis_invalid_total", SOON, |v| v == 3.0);
        assert_eq!(metric(s, "edgews_redis_received_total"), 0.0);
        assert_eq!(metric(s, "edgews_redis_connected"), 1.0);
    }
    assert_silent(&mut ra, "receiver on A");
    assert_silent(&mut rb, "receiver on B");
    // the clients and the link are unaffected
    let mut sa = connect(&a, "/");
    sa.send_text("after the garbage").unwrap();
    assert_eq!(recv_text(&mut ra, "receiver on A"), "after the garbage");
    assert_eq!(recv_text(&mut rb, "receiver on B"), "after the garbage");
    assert_eq!(metric(&a, "edgews_redis_reconnects_total"), 0.0);
}

#[test]
fn echo_with_redis_is_refused_as_a_usage_error() {
    let (status, stdout, stderr) = Launch::new("echo")
        .args(["--redis", "redis://127.0.0.1:6379"])
        .run_to_exit(SOON);
    let status = status.expect("edgews echo --redis did not exit");
    assert_eq!(
        status.code(),
        Some(2),
        "stdout {stdout:?}, stderr:\n{stderr}"
    );
    assert!(stderr.contains("redis"), "stderr:\n{stderr}");
}
