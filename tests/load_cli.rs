//! The load generator runs against the real server binary: it is itself a
//! reactor with a client-side configuration, which must pass the same
//! validation as a server's.

mod support;

use std::process::Command;
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
