//! The chat server over real loopback TCP: the page, rooms, presence as
//! deltas, server-stamped messages, errors that keep the connection,
//! refusals at the upgrade (names, full rooms, too many rooms), what
//! presence costs in bytes, JWT names and the metrics.

mod support;

use edgews::client::{Client, ClientConfig, ClientError};
use edgews::protocol::CloseCode;
use edgews::server::{Authenticated, Chat, ChatConfig, JwtAuth};
use edgews::ServerConfig;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::{upgrade_request, RawClient, TestServer};

const SECRET: &[u8] = b"a test secret of 32 bytes, quite";

fn chat_server(max_text: usize) -> TestServer {
    configured_server(ChatConfig {
        max_text,
        ..ChatConfig::default()
    })
}

fn configured_server(config: ChatConfig) -> TestServer {
    TestServer::start(ServerConfig::default(), move || Chat::new(config))
}

fn jwt_server() -> TestServer {
    TestServer::start(ServerConfig::default(), || {
        Authenticated::new(Chat::new(ChatConfig::default()), JwtAuth::hs256(SECRET))
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One plain HTTP exchange: the status, the head and the body.
fn http(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read response");
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {response:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_string(), body.to_string())
}

fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    http(addr, request.as_bytes())
}

/// The status and body with which an upgrade to `path` is answered.
fn upgrade(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = http(addr, &upgrade_request(addr, path));
    (status, body)
}

fn ws_path(room: &str, name: &str) -> String {
    format!("/ws?room={room}&name={name}")
}

fn connect(server: &TestServer, path: &str) -> Client {
    let config = ClientConfig {
        read_timeout: Some(Duration::from_secs(10)),
        ..ClientConfig::default()
    };
    Client::connect_with(&server.url(path), config).expect("connect")
}

fn recv(client: &mut Client) -> Value {
    let message = client.recv_message().expect("a message");
    serde_json::from_str(message.as_text().expect("text")).expect("JSON")
}

fn send(client: &mut Client, value: &Value) {
    client.send_text(&value.to_string()).unwrap();
}

/// Nothing arrives within a short while.
fn assert_silent(client: &mut Client) {
    client
        .stream()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    match client.recv_message() {
        Err(ClientError::Timeout) => {}
        other => panic!("expected silence, got {other:?}"),
    }
    client
        .stream()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
}

/// Joins `room` as `name`; checks and consumes the welcome; returns the
/// members it listed.
fn join(server: &TestServer, room: &str, name: &str) -> (Client, Vec<String>) {
    let mut client = connect(server, &ws_path(room, name));
    let (welcome, members) = welcomed(&mut client);
    assert_eq!(welcome["name"], name);
    assert_eq!(welcome["room"], room);
    (client, members)
}

fn welcomed(client: &mut Client) -> (Value, Vec<String>) {
    let welcome = recv(client);
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let members = members_of(&welcome);
    (welcome, members)
}

fn members_of(event: &Value) -> Vec<String> {
    event["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect()
}

fn token(sub: &str, exp: u64) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "exp": exp}),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

#[test]
fn the_page_is_served_at_the_root() {
    let server = chat_server(4096);
    let (status, head, body) = get(server.addr, "/");
    assert_eq!(status, 200, "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("content-type: text/html"), "{head}");
    assert!(body.starts_with("<!doctype html>"), "{body:.100}");
    assert!(body.contains("<title>edgews chat</title>"));
    // one nonce in the policy and on the inline script and style
    let csp = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Security-Policy: "))
        .expect("a Content-Security-Policy");
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce");
    assert!(body.contains(&format!("<script nonce=\"{nonce}\">")));
    assert!(!body.contains("__CSP_NONCE__"));
    assert!(csp.contains("default-src 'none'"), "{csp}");
    // every response has its own nonce
    let (_, head2, _) = get(server.addr, "/");
    assert!(!head2.contains(nonce));
    // what the page needs and no more: no external assets
    assert!(!body.contains("src=\"http"), "external script or image");
    assert!(!body.contains("href=\"http"), "external stylesheet");
    // other paths keep the defaults
    assert_eq!(get(server.addr, "/healthz").0, 200);
    assert_eq!(get(server.addr, "/ws").0, 426);
}

#[test]
fn two_people_talk_and_a_third_room_hears_nothing() {
    let server = chat_server(4096);
    let (mut alice, members) = join(&server, "lobby", "alice");
    assert_eq!(members, ["alice"]);
    let (mut carol, members) = join(&server, "other", "carol");
    assert_eq!(members, ["carol"]);
    let (mut bob, members) = join(&server, "lobby", "bob");
    assert_eq!(members, ["alice", "bob"]);
    // the others hear of a join as a delta, without the list
    assert_eq!(
        recv(&mut alice),
        json!({"type": "join", "room": "lobby", "name": "bob"})
    );

    // alice to bob, trying to pass as someone else: the server names her
    let before = now_ms();
    send(
        &mut alice,
        &json!({"type": "message", "room": "lobby", "text": "hi <b>bob</b>", "from": "mallory", "id": 99, "ts": 1}),
    );
    let to_bob = recv(&mut bob);
    let to_alice = recv(&mut alice);
    let after = now_ms();
    assert_eq!(to_bob, to_alice, "the sender gets the same event");
    assert_eq!(to_bob["type"], "message");
    assert_eq!(to_bob["room"], "lobby");
    assert_eq!(to_bob["from"], "alice");
    assert_eq!(to_bob["text"], "hi <b>bob</b>");
    assert_eq!(to_bob["id"], 1);
    let ts = to_bob["ts"].as_u64().expect("ts in ms");
    assert!(before <= ts && ts <= after, "{before} <= {ts} <= {after}");

    // and back
    send(
        &mut bob,
        &json!({"type": "message", "room": "lobby", "text": "hello alice"}),
    );
    for client in [&mut alice, &mut bob] {
        let m = recv(client);
        assert_eq!(
            (&m["from"], &m["text"], &m["id"]),
            (&json!("bob"), &json!("hello alice"), &json!(2))
        );
    }

    // another room counts its own messages and hears none of lobby's
    assert_silent(&mut carol);
    send(
        &mut carol,
        &json!({"type": "message", "room": "other", "text": "anyone?"}),
    );
    let m = recv(&mut carol);
    assert_eq!((&m["from"], &m["id"]), (&json!("carol"), &json!(1)));
    assert_silent(&mut alice);
    assert_silent(&mut bob);

    // bob leaves cleanly; alice sees it, carol does not
    bob.close(CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(
        recv(&mut alice),
        json!({"type": "leave", "room": "lobby", "name": "bob"})
    );
    assert_silent(&mut carol);
}

#[test]
fn a_vanished_connection_leaves_too() {
    let server = chat_server(4096);
    let (mut alice, _) = join(&server, "r", "alice");
    let (dave, _) = join(&server, "r", "dave");
    assert_eq!(recv(&mut alice)["name"], "dave");
    // no close handshake: the TCP connection just goes
    drop(dave);
    assert_eq!(
        recv(&mut alice),
        json!({"type": "leave", "room": "r", "name": "dave"})
    );
}

#[test]
fn duplicate_names_are_listed_once_per_connection() {
    let server = chat_server(4096);
    let (mut first, _) = join(&server, "r", "sam");
    let (second, members) = join(&server, "r", "sam");
    assert_eq!(members, ["sam", "sam"]);
    assert_eq!(
        recv(&mut first),
        json!({"type": "join", "room": "r", "name": "sam"})
    );
    drop(second);
    assert_eq!(
        recv(&mut first),
        json!({"type": "leave", "room": "r", "name": "sam"})
    );
    let (_third, members) = join(&server, "r", "sam");
    assert_eq!(members, ["sam", "sam"]);
}

#[test]
fn names_are_decoded_and_trimmed() {
    let server = chat_server(4096);
    let mut client = connect(
        &server,
        "/ws?room=caf%C3%A9+au+lait&name=%20Ada%20Lovelace+",
    );
    let (welcome, _) = welcomed(&mut client);
    assert_eq!(welcome["room"], "café au lait");
    assert_eq!(welcome["name"], "Ada Lovelace");
    assert_eq!(welcome["max_text"], 4096);
    let mut longest = connect(&server, &ws_path(&"%C3%A9".repeat(64), "b"));
    let (welcome, _) = welcomed(&mut longest);
    assert_eq!(welcome["room"], "é".repeat(64));
}

#[test]
fn bad_messages_get_errors_and_the_connection_stays() {
    let server = chat_server(100);
    let (mut alice, _) = join(&server, "lobby", "alice");
    let (mut bob, _) = join(&server, "lobby", "bob");
    recv(&mut alice); // bob's join
    let long = "x".repeat(101);
    let far_too_long = "y".repeat(100_000);
    let cases: Vec<(String, &str)> = vec![
        (
            json!({"type": "message", "room": "lobby", "text": long}).to_string(),
            "too long",
        ),
        (
            json!({"type": "message", "room": "lobby", "text": far_too_long}).to_string(),
            "too long",
        ),
        ("{\"type\":\"message\",".into(), "malformed JSON"),
        ("not json at all".into(), "malformed JSON"),
        ("[1,2,3]".into(), "JSON object"),
        (json!({"room": "lobby", "text": "hi"}).to_string(), "type"),
        (
            json!({"type": "shout", "room": "lobby", "text": "hi"}).to_string(),
            "unknown message type",
        ),
        (
            json!({"type": "message", "room": "other", "text": "hi"}).to_string(),
            "you are in room",
        ),
        (json!({"type": "message", "text": "hi"}).to_string(), "room"),
        (
            json!({"type": "message", "room": "lobby", "text": 5}).to_string(),
            "text",
        ),
        (
            json!({"type": "message", "room": "lobby", "text": " \n "}).to_string(),
            "empty",
        ),
    ];
    for (sent, expected) in &cases {
        alice.send_text(sent).unwrap();
        let reply = recv(&mut alice);
        assert_eq!(reply["type"], "error", "{sent:.80}: {reply}");
        let error = reply["error"].as_str().unwrap();
        assert!(error.contains(expected), "{sent:.80}: {error}");
    }
    alice.send_binary(b"\x00\x01").unwrap();
    let reply = recv(&mut alice);
    assert_eq!(reply["type"], "error");
    assert!(reply["error"].as_str().unwrap().contains("binary"));
    // nothing reached bob, and alice can still talk: exactly max_text bytes
    assert_silent(&mut bob);
    let exact = "é".repeat(50);
    send(
        &mut alice,
        &json!({"type": "message", "room": "lobby", "text": exact}),
    );
    for client in [&mut bob, &mut alice] {
        let m = recv(client);
        assert_eq!((&m["text"], &m["id"]), (&json!(exact), &json!(1)));
    }
}

#[test]
fn invalid_rooms_and_names_are_refused_with_400() {
    let server = chat_server(4096);
    let long = "n".repeat(65);
    let cases = [
        ("/ws?name=a".to_string(), "room"),
        ("/ws?room=r".to_string(), "name"),
        ("/ws".to_string(), "room"),
        ("/ws?room=&name=a".to_string(), "room must be 1 to 64"),
        ("/ws?room=r&name=".to_string(), "name must be 1 to 64"),
        ("/ws?room=r&name=+++".to_string(), "name must be 1 to 64"),
        (format!("/ws?room=r&name={long}"), "name must be 1 to 64"),
        (format!("/ws?room={long}&name=a"), "room must be 1 to 64"),
        ("/ws?room=r&name=a%0Ab".to_string(), "control"),
        ("/ws?room=r%01&name=a".to_string(), "control"),
        ("/ws?room=r&name=%FF".to_string(), "UTF-8"),
    ];
    for (path, reason) in &cases {
        let (status, body) = upgrade(server.addr, path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(reason), "{path}: {body}");
    }
    let (status, body) = upgrade(server.addr, "/chat?room=r&name=a");
    assert_eq!(status, 404, "{body}");
    // the server is fine after all that
    let (_, members) = join(&server, "r", "a");
    assert_eq!(members, ["a"]);
}

#[test]
fn with_jwt_the_token_names_the_person() {
    let server = jwt_server();
    let now = now_ms() / 1000;
    // the page itself needs no token
    assert_eq!(get(server.addr, "/").0, 200);
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "mallory", "exp": now + 60}),
        &EncodingKey::from_secret(b"another secret, 32 bytes long..."),
    )
    .unwrap();
    let expired = token("alice", now - 10);
    for path in [
        ws_path("r", "alice"),
        format!("{}&token=not.a.jwt", ws_path("r", "alice")),
        format!("{}&token={forged}", ws_path("r", "mallory")),
        format!("{}&token={expired}", ws_path("r", "alice")),
    ] {
        let (status, body) = upgrade(server.addr, &path);
        assert_eq!(status, 401, "{path}: {body}");
        assert!(body.contains("token"), "{body}");
    }

    // a valid token: its subject is the name, whatever ?name says
    let alice = token("alice", now + 60);
    let mut a = connect(
        &server,
        &format!("{}&token={alice}", ws_path("r", "mallory")),
    );
    let (welcome, members) = welcomed(&mut a);
    assert_eq!(welcome["name"], "alice");
    assert_eq!(members, ["alice"]);
    // ?name may be missing, or even invalid: it is ignored
    let bob = token("bob", now + 60);
    let long = "n".repeat(100);
    for path in [
        format!("/ws?room=r&token={bob}"),
        format!("/ws?room=r&name={long}&token={bob}"),
    ] {
        let mut b = connect(&server, &path);
        let (welcome, _) = welcomed(&mut b);
        assert_eq!(welcome["name"], "bob");
        assert_eq!(recv(&mut a)["name"], "bob");
        send(
            &mut b,
            &json!({"type": "message", "room": "r", "text": "hi", "from": "alice"}),
        );
        assert_eq!(recv(&mut a)["from"], "bob");
        b.close(CloseCode::NORMAL, "").unwrap();
        assert_eq!(recv(&mut a)["type"], "leave");
    }
    // the room is still checked
    let (status, _) = upgrade(server.addr, &format!("/ws?room=&token={bob}"));
    assert_eq!(status, 400);
    // a subject that is no valid name: the connection opens, then closes 1008
    let bad = token(&"z".repeat(65), now + 60);
    let mut c = connect(&server, &format!("/ws?room=r&token={bad}"));
    match c.recv_message() {
        Err(ClientError::Closed(closed)) => assert_eq!(closed.code, CloseCode::POLICY_VIOLATION),
        other => panic!("expected a close, got {other:?}"),
    }
    assert_silent(&mut a);
}

#[test]
fn metrics_show_the_rooms() {
    let server = chat_server(4096);
    let gauge = |name: &str| -> u64 {
        let (status, _, body) = get(server.addr, "/metrics");
        assert_eq!(status, 200);
        assert!(body.contains("# TYPE edgews_"), "{body}");
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {body}"))
            .parse()
            .unwrap()
    };
    assert_eq!(
        (gauge("edgews_topics"), gauge("edgews_subscriptions")),
        (0, 0)
    );
    let (mut a, _) = join(&server, "one", "a");
    let (_b, _) = join(&server, "one", "b");
    let (c, _) = join(&server, "two", "c");
    assert_eq!(
        (gauge("edgews_topics"), gauge("edgews_subscriptions")),
        (2, 3)
    );
    drop(c);
    // a close is seen by the server soon, not at once: wait for it
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while gauge("edgews_topics") != 1 {
        assert!(std::time::Instant::now() < deadline, "the room did not go");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(gauge("edgews_subscriptions"), 2);
    assert_eq!(recv(&mut a)["type"], "join");
}

/// Connects to `path`, retrying a refused upgrade for up to 10 s (the
/// server may not have seen an expected leave yet).
fn connect_when_accepted(server: &TestServer, path: &str) -> Client {
    let config = ClientConfig {
        read_timeout: Some(Duration::from_secs(10)),
        ..ClientConfig::default()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match Client::connect_with(&server.url(path), config.clone()) {
            Ok(client) => return client,
            Err(e) => assert!(std::time::Instant::now() < deadline, "{e}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_full_room_refuses_one_more_member_with_403() {
    let server = configured_server(ChatConfig {
        max_room_members: 3,
        ..ChatConfig::default()
    });
    let (mut first, _) = join(&server, "r", "a");
    let (_second, _) = join(&server, "r", "b");
    let (_third, members) = join(&server, "r", "c");
    assert_eq!(members, ["a", "b", "c"]);
    let (status, body) = upgrade(server.addr, &ws_path("r", "d"));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("room r is full (3 members)"), "{body}");
    // nobody heard of the refused one; other rooms are open
    recv(&mut first);
    recv(&mut first);
    assert_silent(&mut first);
    let (_elsewhere, members) = join(&server, "s", "d");
    assert_eq!(members, ["d"]);
    // one leaves, and there is room again
    first.close(CloseCode::NORMAL, "").unwrap();
    let mut fourth = connect_when_accepted(&server, &ws_path("r", "d"));
    let (_, members) = welcomed(&mut fourth);
    assert_eq!(members, ["b", "c", "d"]);
}

#[test]
fn past_the_room_cap_a_new_room_is_refused_with_503() {
    let server = configured_server(ChatConfig {
        max_rooms: 2,
        ..ChatConfig::default()
    });
    let (_one, _) = join(&server, "one", "a");
    let (two, _) = join(&server, "two", "b");
    let (status, body) = upgrade(server.addr, &ws_path("three", "c"));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("at most 2"), "{body}");
    // existing rooms still take members; an emptied room frees its place
    let (_also_one, members) = join(&server, "one", "c");
    assert_eq!(members, ["a", "c"]);
    drop(two);
    let mut three = connect_when_accepted(&server, &ws_path("three", "c"));
    assert_eq!(welcomed(&mut three).1, ["c"]);
}

#[test]
fn two_hundred_joins_cost_quadratic_not_cubic_bytes() {
    const N: usize = 200;
    let server = chat_server(4096);
    let name = |i: usize| format!("member-{i:03}");
    let mut clients = Vec::new();
    let mut received = 0usize;
    let mut welcomes = 0usize;
    for i in 0..N {
        let mut client = RawClient::open(server.addr, &ws_path("big", &name(i)));
        let frame = client.read_frame().expect("a welcome");
        let welcome: Value = serde_json::from_slice(&frame.payload).unwrap();
        assert_eq!(welcome["type"], "welcome");
        assert_eq!(members_of(&welcome).len(), i + 1);
        received += frame.payload.len();
        welcomes += frame.payload.len();
        clients.push(client);
    }
    // the i-th heard of each of the N - 1 - i joins after its own
    for (i, client) in clients.iter_mut().enumerate() {
        for j in i + 1..N {
            let frame = client.read_frame().expect("a join");
            let join: Value = serde_json::from_slice(&frame.payload).unwrap();
            assert_eq!(
                join,
                json!({"type": "join", "room": "big", "name": name(j)})
            );
            received += frame.payload.len();
        }
    }
    let stats = server.stop();
    eprintln!(
        "{N} joins: {received} bytes received ({welcomes} in welcomes), {} sent in all",
        stats.bytes_out
    );
    // full lists to everyone would be about 2.7 MB of welcomes plus
    // N^3 / 3 × 13 bytes ≈ 35 MB of joins
    assert!(received <= 8_000_000, "{received} bytes received");
    assert!(
        stats.bytes_out <= 8_000_000,
        "{} bytes sent",
        stats.bytes_out
    );
    assert!(stats.bytes_out >= received as u64);
}
