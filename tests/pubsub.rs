//! The pub/sub server over loopback TCP: topics from the path, the JSON
//! control protocol, its caps, cleanup on close, metrics, and JWT at the
//! upgrade.

mod support;

use edgews::client::{Client, ClientConfig, ClientError};
use edgews::protocol::OpCode;
use edgews::server::{Authenticated, JwtAuth, PubSub, PubSubConfig, TopicLimits};
use edgews::ServerConfig;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::Duration;
use support::{client_frame, upgrade_request, RawClient, TestServer};

fn capped_server(max_control_size: usize, limits: TopicLimits) -> TestServer {
    TestServer::start(ServerConfig::default(), move || {
        PubSub::with_config(PubSubConfig {
            max_control_size,
            limits,
        })
    })
}

fn connect(server: &TestServer, path: &str) -> Client {
    let config = ClientConfig {
        read_timeout: Some(Duration::from_secs(10)),
        ..ClientConfig::default()
    };
    Client::connect_with(&server.url(path), config).expect("connect")
}

fn send(client: &mut Client, value: Value) {
    client.send_text(&value.to_string()).unwrap();
}

fn recv(client: &mut Client) -> Value {
    let message = client.recv_message().unwrap();
    serde_json::from_str(message.as_text().unwrap()).unwrap()
}

/// Whether nothing arrives within a short wait.
fn silent(client: &mut Client) -> bool {
    client
        .stream()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let quiet = matches!(client.recv(), Err(ClientError::Timeout));
    client
        .stream()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    quiet
}

fn http_get(server: &TestServer, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn the_path_picks_the_topic_and_publishing_reaches_its_subscribers_only() {
    let server = TestServer::start(ServerConfig::default(), PubSub::new);
    let mut news1 = connect(&server, "/topics/news");
    let mut news2 = connect(&server, "/topics/news");
    let mut other = connect(&server, "/");
    send(
        &mut news1,
        json!({"op": "publish", "topic": "news", "data": {"headline": "hi"}}),
    );
    assert_eq!(
        recv(&mut news2),
        json!({"type": "message", "topic": "news", "data": {"headline": "hi"}})
    );
    assert!(
        silent(&mut news1),
        "the publisher does not get its own message by default"
    );
    assert!(
        silent(&mut other),
        "a subscriber of another topic gets nothing"
    );
    // `/` is the topic `default`
    send(
        &mut news1,
        json!({"op": "publish", "topic": "default", "data": 1}),
    );
    assert_eq!(recv(&mut other)["topic"], "default");
}

#[test]
fn subscribe_unsubscribe_and_echo_work_as_documented() {
    let server = TestServer::start(ServerConfig::default(), PubSub::new);
    let mut a = connect(&server, "/");
    send(&mut a, json!({"op": "subscribe", "topic": "sports"}));
    assert_eq!(
        recv(&mut a),
        json!({"type": "subscribed", "topic": "sports"})
    );
    send(
        &mut a,
        json!({"op": "publish", "topic": "sports", "data": "goal", "echo": true}),
    );
    assert_eq!(recv(&mut a)["data"], "goal");
    send(&mut a, json!({"op": "unsubscribe", "topic": "sports"}));
    assert_eq!(
        recv(&mut a),
        json!({"type": "unsubscribed", "topic": "sports"})
    );
    send(
        &mut a,
        json!({"op": "publish", "topic": "sports", "data": "again", "echo": true}),
    );
    assert!(silent(&mut a));
}

#[test]
fn invalid_control_messages_get_an_error_naming_the_problem_and_the_connection_stays() {
    let server = TestServer::start(ServerConfig::default(), PubSub::new);
    let mut a = connect(&server, "/");
    for bad in [
        "not json".to_string(),
        json!({"op": "dance"}).to_string(),
        json!({"op": "subscribe"}).to_string(),
        json!({"op": "unsubscribe", "topic": "never"}).to_string(),
        json!({"op": "subscribe", "topic": ""}).to_string(),
    ] {
        a.send_text(&bad).unwrap();
        let reply = recv(&mut a);
        assert_eq!(reply["type"], "error", "{bad}: {reply}");
        assert!(reply["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    a.send_binary(b"\x00").unwrap();
    assert_eq!(recv(&mut a)["type"], "error");
    send(&mut a, json!({"op": "subscribe", "topic": "still-open"}));
    assert_eq!(recv(&mut a)["type"], "subscribed");
}

#[test]
fn other_paths_are_refused_with_404() {
    let server = TestServer::start(ServerConfig::default(), PubSub::new);
    let err = Client::connect(&server.url("/nope")).unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
}

#[test]
fn closing_removes_subscriptions_and_metrics_show_topics() {
    let server = TestServer::start(ServerConfig::default(), PubSub::new);
    let mut a = connect(&server, "/topics/a");
    let mut b = connect(&server, "/topics/b");
    send(&mut b, json!({"op": "subscribe", "topic": "a"}));
    recv(&mut b);
    let metrics = http_get(&server, "/metrics");
    assert!(metrics.contains("edgews_topics 2\n"), "{metrics}");
    assert!(metrics.contains("edgews_subscriptions 3\n"), "{metrics}");
    assert!(metrics.contains("edgews_open_connections 2\n"), "{metrics}");
    drop(b); // vanishes without a close handshake
    a.close(edgews::protocol::CloseCode::NORMAL, "").unwrap();
    let mut after = String::new();
    for _ in 0..50 {
        after = http_get(&server, "/metrics");
        if after.contains("edgews_subscriptions 0\n") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        after.contains("edgews_topics 0\n") && after.contains("edgews_subscriptions 0\n"),
        "{after}"
    );
    assert!(
        after.contains("edgews_closes_total{code=\"1000\"} 1\n"),
        "{after}"
    );
}

#[test]
fn with_a_jwt_secret_upgrades_need_a_valid_token() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let secret = b"0123456789abcdef0123";
    let server = TestServer::start(ServerConfig::default(), move || {
        Authenticated::new(PubSub::new(), JwtAuth::hs256(secret))
    });
    let err = Client::connect(&server.url("/")).unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    let claims = json!({"sub": "alice", "exp": exp});
    let token = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap();
    let mut ok = connect(&server, &format!("/?token={token}"));
    send(&mut ok, json!({"op": "subscribe", "topic": "t"}));
    assert_eq!(recv(&mut ok)["type"], "subscribed");
    let forged = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(b"wrong-secret-16b"),
    )
    .unwrap();
    let err = Client::connect(&server.url(&format!("/?token={forged}"))).unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
}

#[test]
fn json_log_format_writes_one_object_per_line() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_edgews"))
        .args(["--log-format", "json", "pubsub", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    let n = stdout.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).contains("listening on ws://"));
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let logs = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<&str> = logs.lines().collect();
    assert!(!lines.is_empty());
    for line in lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(
            v["level"].is_string() && v["msg"].is_string() && v["ts"].is_string(),
            "{line}"
        );
    }
}

/// The text of the next message `client` receives.
fn recv_text(client: &mut Client) -> String {
    let message = client.recv_message().unwrap();
    message.as_text().unwrap().to_string()
}

#[test]
fn publications_pass_data_through_byte_for_byte_in_an_escaped_envelope() {
    let server = TestServer::start(ServerConfig::default(), PubSub::new);
    let mut sub = connect(&server, "/");
    let mut publisher = connect(&server, "/");
    let topic = r#"a "quoted" \ topic é"#;
    send(&mut sub, json!({"op": "subscribe", "topic": topic}));
    assert_eq!(recv(&mut sub)["type"], "subscribed");
    let data = r#"{ "a" : [1, 2.50, "\u00e9", null] , "b":{} }"#;
    let control = format!(
        r#"{{"op":"publish","topic":{},"data":{data}}}"#,
        json!(topic)
    );
    publisher.send_text(&control).unwrap();
    assert_eq!(
        recv_text(&mut sub),
        format!(r#"{{"type":"message","topic":"a \"quoted\" \\ topic é","data":{data}}}"#)
    );
}

#[test]
fn a_control_message_over_the_size_limit_gets_an_error_and_the_connection_stays() {
    let server = capped_server(100, TopicLimits::default());
    let mut a = connect(&server, "/");
    let padding = "x".repeat(100 - r#"{"op":"subscribe","topic":""}"#.len());
    let fits = json!({"op": "subscribe", "topic": padding}).to_string();
    assert_eq!(fits.len(), 100);
    a.send_text(&fits).unwrap();
    assert_eq!(recv(&mut a)["type"], "subscribed");
    let over = json!({"op": "subscribe", "topic": format!("{padding}y")}).to_string();
    a.send_text(&over).unwrap();
    assert_eq!(
        recv(&mut a),
        json!({"type": "error", "error": "control message too large: 101 bytes, at most 100"})
    );
    // refused before parsing: not even JSON matters
    a.send_text(&"{".repeat(101)).unwrap();
    assert!(recv(&mut a)["error"]
        .as_str()
        .unwrap()
        .starts_with("control message too large: 101 bytes"));
    send(&mut a, json!({"op": "subscribe", "topic": "still-open"}));
    assert_eq!(recv(&mut a)["type"], "subscribed");
}

#[test]
fn a_hundred_thousand_subscriptions_on_one_connection_stop_at_the_cap() {
    const ATTEMPTS: usize = 100_000;
    const BATCH: usize = 1_000;
    let server = TestServer::start(ServerConfig::default(), PubSub::new);
    let cap = TopicLimits::default().max_subscriptions_per_connection;
    let mut client = RawClient::open(server.addr, "/topics/first");
    let name = |i: usize| format!("{i:06}{}", "t".repeat(194));
    let (mut subscribed, mut refused) = (0, 0);
    for start in (0..ATTEMPTS).step_by(BATCH) {
        let mut wire = Vec::new();
        for i in start..start + BATCH {
            let control = json!({"op": "subscribe", "topic": name(i)}).to_string();
            wire.extend(client_frame(true, OpCode::Text, control.as_bytes()));
        }
        client.send(&wire);
        for i in start..start + BATCH {
            let frame = client.read_frame().expect("a reply");
            let reply: Value = serde_json::from_slice(&frame.payload).unwrap();
            if i < cap - 1 {
                assert_eq!(reply, json!({"type": "subscribed", "topic": name(i)}));
                subscribed += 1;
            } else {
                assert_eq!(reply["type"], "error", "{i}: {reply}");
                let error = reply["error"].as_str().unwrap();
                assert!(error.contains(&format!("at most {cap}")), "{error}");
                refused += 1;
            }
        }
    }
    // the path's topic is the first of the `cap`
    assert_eq!((subscribed, refused), (cap - 1, ATTEMPTS - cap + 1));
    let metrics = http_get(&server, "/metrics");
    assert!(
        metrics.contains(&format!("edgews_subscriptions {cap}\n")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("edgews_subscriptions_refused_total {refused}\n")),
        "{metrics}"
    );
    // still usable: unsubscribing one makes room for another
    let mut say = |value: Value| -> Value {
        client.send(&client_frame(
            true,
            OpCode::Text,
            value.to_string().as_bytes(),
        ));
        serde_json::from_slice(&client.read_frame().unwrap().payload).unwrap()
    };
    let unsubscribed = say(json!({"op": "unsubscribe", "topic": name(0)}));
    assert_eq!(unsubscribed["type"], "unsubscribed");
    let late = say(json!({"op": "subscribe", "topic": name(ATTEMPTS - 1)}));
    assert_eq!(late["type"], "subscribed");
    let echoed = say(json!({"op": "publish", "topic": "first", "data": 1, "echo": true}));
    assert_eq!(
        echoed,
        json!({"type": "message", "topic": "first", "data": 1})
    );
}

#[test]
fn past_the_topic_cap_upgrades_get_503_and_subscriptions_an_error() {
    let limits = TopicLimits {
        max_topics: 1,
        max_subscribers_per_topic: 2,
        ..TopicLimits::default()
    };
    let server = capped_server(64 << 10, limits);
    let mut a = connect(&server, "/topics/a");
    let refused = |path: &str| {
        let mut raw = RawClient::connect(server.addr);
        raw.send(&upgrade_request(server.addr, path));
        raw.read_http_response().expect("a response")
    };
    let (head, body) = refused("/topics/b");
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    assert!(
        String::from_utf8_lossy(&body).contains("too many topics"),
        "{body:?}"
    );
    send(&mut a, json!({"op": "subscribe", "topic": "b"}));
    let reply = recv(&mut a);
    assert_eq!(reply["type"], "error");
    assert!(
        reply["error"].as_str().unwrap().contains("at most 1"),
        "{reply}"
    );
    // the topic that exists takes one more subscriber, then it is full
    let mut b = connect(&server, "/topics/a");
    let (head, body) = refused("/topics/a");
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    assert!(
        String::from_utf8_lossy(&body).contains("at most 2 subscribers"),
        "{body:?}"
    );
    // a subscriber that leaves makes room
    send(&mut b, json!({"op": "unsubscribe", "topic": "a"}));
    assert_eq!(recv(&mut b)["type"], "unsubscribed");
    let _c = connect(&server, "/topics/a");
}
