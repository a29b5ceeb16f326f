//! The pub/sub server over loopback TCP: topics from the path, the JSON
//! control protocol, cleanup on close, metrics, and JWT at the upgrade.

mod support;

use edgews::client::{Client, ClientConfig, ClientError};
use edgews::server::{Authenticated, JwtAuth, PubSub};
use edgews::ServerConfig;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::Duration;
use support::TestServer;

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
