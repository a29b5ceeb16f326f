//! `edgews load connect` against the real server binary: connection cycles
//! with the close handshake and with an abrupt end (`Context::abort`: no
//! close frame), both on the loader's reactor, each checked from the
//! server's side too (its close codes); and runs that must fail because
//! the server refuses the upgrade or is not there.

mod support;

use std::process::Command;
use std::time::Duration;
use support::measure::wait_until;
use support::process::{start, ServerProcess, BIN};

/// Runs `edgews load connect ARGS`: whether it succeeded, its JSON line,
/// and everything it printed (for the assertion messages).
fn load_connect(args: &[&str]) -> (bool, serde_json::Value, String) {
    let out = Command::new(BIN)
        .args(["load", "connect"])
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("EDGEWS_LOG")
        .output()
        .expect("run edgews load connect");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .rfind(|l| l.starts_with("{\"mode\":"))
        .unwrap_or_else(|| panic!("no JSON line in:\n{text}"));
    let json = serde_json::from_str(line).expect("the JSON line parses");
    (out.status.success(), json, text)
}

/// A short run against `url`: four clients, no warm-up, one second.
fn short_run(url: &str, abrupt: bool) -> (bool, serde_json::Value, String) {
    let mut args = vec![
        "--url",
        url,
        "--connections",
        "4",
        "--duration",
        "1s",
        "--warmup",
        "0s",
    ];
    if abrupt {
        args.push("--abrupt");
    }
    load_connect(&args)
}

/// The unsigned number `json[key]` (panics naming it if it is missing).
fn count(json: &serde_json::Value, key: &str) -> u64 {
    json[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {json}"))
}

/// A run that went well: cycles measured, each after an upgrade measured,
/// and no failure of any kind.
fn assert_clean(ok: bool, json: &serde_json::Value, text: &str, abrupt: bool) {
    assert!(ok, "{text}");
    assert_eq!(json["mode"], "connect", "{text}");
    assert_eq!(json["abrupt"], abrupt, "{text}");
    assert_eq!(count(json, "connections"), 4, "{text}");
    assert_eq!(count(json, "size"), 20, "{text}");
    assert!(count(json, "cycles") > 0, "{text}");
    assert!(count(json, "upgrades") >= count(json, "cycles"), "{text}");
    assert_eq!(count(json, "errors"), 0, "{text}");
    let failures = json["failures"].as_object().expect("failures by kind");
    assert!(failures.values().all(|n| n == 0), "{text}");
    for key in ["upgrade_p50_us", "cycle_p999_us", "cycles_per_s", "seconds"] {
        assert!(json[key].as_f64().is_some(), "{key}: {text}");
    }
}

/// The server's count of closes with `code` (0 when it has none).
fn server_closes(server: &ServerProcess, code: u16) -> u64 {
    let series = format!("edgews_closes_total{{code=\"{code}\"}}");
    server.metric(&series).unwrap_or(0.0) as u64
}

/// Waits (a bound against hanging, not a measurement) until the server has
/// counted at least `n` closes with `code`; whether it did.
fn server_counts(server: &ServerProcess, code: u16, n: u64) -> bool {
    wait_until(Duration::from_secs(10), || server_closes(server, code) >= n)
}

/// Close 1000, the server's close frame, the end of the stream: every
/// cycle clean, and the server saw a close 1000 for each.
#[test]
fn connect_cycles_with_the_close_handshake_against_the_echo_server() {
    let server = start("echo", &["--ping-interval", "0"]);
    let (ok, json, text) = short_run(&format!("ws://{}/", server.addr), false);
    assert_clean(ok, &json, &text, false);
    let cycles = count(&json, "cycles");
    assert!(
        server_counts(&server, 1000, cycles),
        "{text}\n{}",
        server.metrics()
    );
}

/// TCP ends right after the echo, without a close frame: the server takes
/// it (1006 on its side, and never a close 1000) and the next cycles go on.
#[test]
fn connect_cycles_ending_abruptly_against_the_echo_server() {
    let server = start("echo", &["--ping-interval", "0"]);
    let (ok, json, text) = short_run(&format!("ws://{}/", server.addr), true);
    assert_clean(ok, &json, &text, true);
    let cycles = count(&json, "cycles");
    assert!(
        server_counts(&server, 1006, cycles),
        "{text}\n{}",
        server.metrics()
    );
    assert_eq!(server_closes(&server, 1000), 0, "{}", server.metrics());
}

/// `--allowed-host` that is not the URL's: every upgrade gets 403, which
/// both modes count as handshake failures, and the run fails.
#[test]
fn a_server_refusing_the_upgrade_fails_the_run_with_handshake_failures() {
    let server = start("echo", &["--allowed-host", "elsewhere.example"]);
    let url = format!("ws://{}/", server.addr);
    for abrupt in [false, true] {
        let (ok, json, text) = short_run(&url, abrupt);
        assert!(!ok, "{text}");
        assert_eq!(count(&json, "cycles"), 0, "{text}");
        assert_eq!(count(&json, "upgrades"), 0, "{text}");
        assert!(count(&json, "errors") > 0, "{text}");
        assert_eq!(
            json["failures"]["handshake_failed"], json["errors"],
            "{text}"
        );
        assert!(text.contains("403"), "{text}");
    }
}

/// Nobody listens on the port: connects are refused, counted as connect
/// failures, and the run fails.
#[test]
fn a_port_nobody_listens_on_fails_the_run_with_connect_failures() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let url = format!("ws://127.0.0.1:{port}/");
    for abrupt in [false, true] {
        let (ok, json, text) = short_run(&url, abrupt);
        assert!(!ok, "{text}");
        assert_eq!(count(&json, "cycles"), 0, "{text}");
        assert!(count(&json, "errors") > 0, "{text}");
        assert_eq!(json["failures"]["connect_failed"], json["errors"], "{text}");
    }
}
