//! The load generator runs against the real server binary: it is itself a
//! reactor with a client-side configuration, which must pass the same
//! validation as a server's.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::process::{start, BIN};

fn load(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("load")
        .args(args)
        .output()
        .expect("run edgews load");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn load_echo_and_load_idle_run_against_the_server() {
    let server = start("echo", &[]);
    let url = format!("ws://{}/", server.addr);
    let (ok, text) = load(&[
        "echo",
        "--url",
        &url,
        "--connections",
        "4",
        "--duration",
        "1s",
    ]);
    assert!(ok, "{text}");
    let (ok, text) = load(&[
        "idle",
        "--url",
        &url,
        "--connections",
        "50",
        "--duration",
        "1s",
        "--warmup-connections",
        "10",
    ]);
    assert!(ok, "{text}");
}

/// Runs `edgews load ARGS` with the load's own debug log on, killing it
/// if it has not exited within `limit`: success, and stdout with stderr.
fn load_within(args: &[&str], limit: Duration) -> (bool, String) {
    let mut child = Command::new(BIN)
        .arg("load")
        .args(args)
        .env_remove("RUST_LOG")
        .env("EDGEWS_LOG", "info,edgews::load=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run edgews load");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for edgews load") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut text = String::new();
    let _ = child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut text);
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut text);
    let Some(status) = status else {
        panic!("edgews load {args:?} still running after {limit:?}:\n{text}");
    };
    (status.success(), text)
}

/// The JSON line `edgews load` prints last (`{"mode":…}`).
fn json_line(text: &str) -> serde_json::Value {
    let line = text
        .lines()
        .rfind(|l| l.starts_with("{\"mode\":"))
        .unwrap_or_else(|| panic!("no JSON line in:\n{text}"));
    serde_json::from_str(line).expect("the JSON line parses")
}

fn load_broadcast(url: &str, receiver_url: &str) -> (bool, String) {
    load(&[
        "broadcast",
        "--url",
        url,
        "--receiver-url",
        receiver_url,
        "--connections",
        "6",
        "--senders",
        "2",
        "--rate",
        "50",
        "--duration",
        "1s",
    ])
}

/// Two `edgews broadcast` processes share nothing (no Redis): receivers
/// on the second never hear the senders on the first, and the load says
/// so (missing messages, a failed run); pointed at the same instance
/// through another URL, everything arrives, once and in order, and the
/// cross-instance deliveries are measured.
#[test]
fn load_broadcast_checks_delivery_across_instances() {
    let a = start("broadcast", &[]);
    let b = start("broadcast", &[]);
    let (url_a, url_b) = (format!("ws://{}/", a.addr), format!("ws://{}/", b.addr));

    let (ok, text) = load_broadcast(&url_a, &url_b);
    assert!(
        !ok,
        "receivers on an unconnected instance must fail:\n{text}"
    );
    let report = json_line(&text);
    let sent = report["sent"].as_u64().unwrap();
    assert!(sent > 0, "{text}");
    // 4 receivers on b got none of the 2 senders' messages (the senders
    // still hear each other on a)
    assert_eq!(report["missing"].as_u64(), Some(4 * sent), "{text}");
    assert_eq!(report["cross_deliveries"].as_u64(), Some(0), "{text}");
    assert!(text.contains("missing"), "{text}");

    // the same instance as a, under another URL: "cross-instance" by URL
    let same_a = format!("ws://{}/other-instance", a.addr);
    let (ok, text) = load_broadcast(&url_a, &same_a);
    assert!(ok, "{text}");
    let report = json_line(&text);
    assert_eq!(report["missing"].as_u64(), Some(0), "{text}");
    assert_eq!(report["gaps"].as_u64(), Some(0), "{text}");
    assert_eq!(report["duplicates"].as_u64(), Some(0), "{text}");
    assert_eq!(report["receiver_urls"].as_u64(), Some(1), "{text}");
    let sent = report["sent"].as_u64().unwrap();
    // each of the 4 receivers hears every message; each sender the other's
    assert_eq!(
        report["cross_deliveries"].as_u64(),
        Some(4 * sent),
        "{text}"
    );
    assert_eq!(
        report["deliveries"].as_u64(),
        Some(4 * sent + sent),
        "{text}"
    );
    assert!(text.contains("cross-instance latency p50"), "{text}");
    assert!(text.contains("gaps 0"), "{text}");
    assert!(text.contains("duplicates 0"), "{text}");
}

/// Each batch of connections (one per URL) starts as soon as the one
/// before has opened: sending starts well within the first second, however
/// many receiver URLs (it used to wait for the once-a-second progress line
/// before each batch, four seconds here).
#[test]
fn load_broadcast_opens_batch_after_batch_without_waiting() {
    let server = start("broadcast", &[]);
    let url = format!("ws://{}/", server.addr);
    let receivers: Vec<String> = (1..=3)
        .map(|r| format!("ws://{}/receivers-{r}", server.addr))
        .collect();
    let mut args = vec!["broadcast", "--url", &url];
    for r in &receivers {
        args.extend(["--receiver-url", r.as_str()]);
    }
    args.extend(["--connections", "8", "--senders", "2", "--duration", "1s"]);
    let (ok, text) = load_within(&args, Duration::from_secs(30));
    assert!(ok, "{text}");
    let after: f64 = text
        .split("sending starts ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|secs| secs.parse().ok())
        .unwrap_or_else(|| panic!("no 'sending starts' in:\n{text}"));
    assert!(
        after < 2.0,
        "sending started {after} s after launch:\n{text}"
    );
    assert_eq!(json_line(&text)["connections"].as_u64(), Some(8), "{text}");
}

/// Connections that fail their handshake (refused) and connections that
/// cannot even start (not a ws:// URL) are counted apart: opening ends and
/// the run fails at once. (One count for both missed the second kind after
/// the first, and the run never left its opening.)
#[test]
fn load_broadcast_ends_when_connections_fail_both_ways() {
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let url = format!("ws://{refused}/");
    let (ok, text) = load_within(
        &[
            "broadcast",
            "--url",
            &url,
            "--receiver-url",
            "http://127.0.0.1:1/",
            "--connections",
            "6",
            "--senders",
            "2",
            "--duration",
            "1s",
        ],
        Duration::from_secs(20),
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("connect failed: Connection refused"),
        "{text}"
    );
    let report = json_line(&text);
    assert_eq!(report["connections"].as_u64(), Some(0), "{text}");
    // the 2 refused, and too few connections opened to send
    assert_eq!(report["errors"].as_u64(), Some(3), "{text}");
}

/// Connections in the `--topic` runs, and how many of them send.
const TOPIC_CONNECTIONS: u64 = 20;

/// `edgews load broadcast --topic bench` against `url`: 20 connections, 2
/// of them senders, 50 messages a second for a second. The limit only
/// keeps a hung run from hanging the test (a server that never
/// acknowledges is given up on after 10 s).
fn load_topic(url: &str) -> (bool, String) {
    let connections = TOPIC_CONNECTIONS.to_string();
    load_within(
        &[
            "broadcast",
            "--topic",
            "bench",
            "--url",
            url,
            "--connections",
            &connections,
            "--senders",
            "2",
            "--rate",
            "50",
            "--duration",
            "1s",
        ],
        Duration::from_secs(60),
    )
}

/// With `--topic`, the load drives `edgews pubsub`: every connection
/// subscribes and is acknowledged before sending starts, the senders
/// publish, and every other connection receives each publication once and
/// in order (pubsub does not send a publisher its own message). Every
/// message reached every receiver, so each counts in the latency to the
/// last subscriber.
#[test]
fn load_broadcast_topic_runs_against_pubsub() {
    let server = start("pubsub", &[]);
    let url = format!("ws://{}/", server.addr);
    let (ok, text) = load_topic(&url);
    assert!(ok, "{text}");
    let report = json_line(&text);
    assert_eq!(report["mode"], "broadcast", "{text}");
    assert_eq!(report["topic"], "bench", "{text}");
    assert_eq!(
        report["connections"].as_u64(),
        Some(TOPIC_CONNECTIONS),
        "{text}"
    );
    assert_eq!(report["senders"].as_u64(), Some(2), "{text}");
    for key in ["errors", "missing", "out_of_order", "gaps", "duplicates"] {
        assert_eq!(report[key].as_u64(), Some(0), "{key}: {text}");
    }
    let sent = report["sent"].as_u64().unwrap();
    assert!(sent > 0, "{text}");
    // every connection but the message's sender receives it
    assert_eq!(
        report["deliveries"].as_u64(),
        Some((TOPIC_CONNECTIONS - 1) * sent),
        "{text}"
    );
    let last_messages = report["last_messages"].as_u64().unwrap();
    assert!(last_messages > 0, "{text}");
    assert_eq!(last_messages, sent, "{text}");
    for key in ["last_p50_us", "last_p99_us", "last_p999_us"] {
        assert!(report[key].as_f64().is_some(), "{key}: {text}");
    }
    assert!(text.contains("pubsub topic \"bench\""), "{text}");
    assert!(text.contains("to the last subscriber p50"), "{text}");
    assert!(
        text.contains("connections subscribed to 1 URLs: sending starts"),
        "{text}"
    );
}

/// `edgews broadcast` never acknowledges a subscription (it relays the
/// subscribe message to the other connections as it would any message):
/// the load waits for the acknowledgements, gives up, never sends, and
/// fails.
#[test]
fn load_broadcast_topic_fails_against_broadcast() {
    let server = start("broadcast", &[]);
    let url = format!("ws://{}/", server.addr);
    let (ok, text) = load_topic(&url);
    assert!(
        !ok,
        "subscriptions are never acknowledged, the run must fail:\n{text}"
    );
    let report = json_line(&text);
    assert_eq!(report["topic"], "bench", "{text}");
    assert_eq!(report["sent"].as_u64(), Some(0), "{text}");
    assert_eq!(report["deliveries"].as_u64(), Some(0), "{text}");
    assert!(report["errors"].as_u64().unwrap() > 0, "{text}");
    assert!(text.contains("errors; first: "), "{text}");
}
