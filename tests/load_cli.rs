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
