//! Checks the edgews client against an independent echo server (the
//! interop run uses Python's `websockets`):
//!
//! `interop_client ws://127.0.0.1:PORT/`
//!
//! Prints `ok NAME` or `FAIL NAME: why` per check; exits 1 on any failure.

use edgews::client::{Client, ClientConfig, ClientError, Received};
use edgews::protocol::{CloseCode, MessageKind, OpCode};
use std::time::Duration;

type Check = fn(&str) -> Result<(), String>;

fn main() {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9003/".into());
    let checks: [(&str, Check); 7] = [
        ("text", text),
        ("binary", binary),
        ("fragmented", fragmented),
        ("binary-16MiB", big),
        ("ping", ping),
        ("close-1000", |u| close_with(u, 1000)),
        ("close-4000", |u| close_with(u, 4000)),
    ];
    let mut failed = 0;
    for (name, check) in checks {
        match check(&url) {
            Ok(()) => println!("ok {name}"),
            Err(e) => {
                failed += 1;
                println!("FAIL {name}: {e}");
            }
        }
    }
    println!(
        "interop_client: {} passed, {failed} failed",
        checks.len() - failed
    );
    std::process::exit(i32::from(failed > 0));
}

fn connect(url: &str) -> Result<Client, String> {
    let config = ClientConfig {
        read_timeout: Some(Duration::from_secs(20)),
        ..ClientConfig::default()
    };
    Client::connect_with(url, config).map_err(|e| format!("connect: {e}"))
}

fn err(e: ClientError) -> String {
    e.to_string()
}

fn text(url: &str) -> Result<(), String> {
    let mut c = connect(url)?;
    c.send_text("héllo, wörld ✓").map_err(err)?;
    let m = c.recv_message().map_err(err)?;
    expect(m.as_text() == Some("héllo, wörld ✓"), "text echo differs")
}

fn binary(url: &str) -> Result<(), String> {
    let mut c = connect(url)?;
    let data: Vec<u8> = (0..=255).collect();
    c.send_binary(&data).map_err(err)?;
    let m = c.recv_message().map_err(err)?;
    expect(
        m.kind() == MessageKind::Binary && m.as_bytes() == data,
        "binary echo differs",
    )
}

fn fragmented(url: &str) -> Result<(), String> {
    let mut c = connect(url)?;
    c.send_fragment(OpCode::Text, false, "frag".as_bytes())
        .map_err(err)?;
    c.send_fragment(OpCode::Continuation, false, "men".as_bytes())
        .map_err(err)?;
    c.send_fragment(OpCode::Continuation, true, "ted".as_bytes())
        .map_err(err)?;
    let m = c.recv_message().map_err(err)?;
    expect(m.as_text() == Some("fragmented"), "fragmented echo differs")
}

fn big(url: &str) -> Result<(), String> {
    let mut c = connect(url)?;
    let data: Vec<u8> = (0..16 << 20).map(|i: u32| (i % 251) as u8).collect();
    c.send_binary(&data).map_err(err)?;
    let m = c.recv_message().map_err(err)?;
    expect(m.as_bytes() == data, "16 MiB echo differs")
}

fn ping(url: &str) -> Result<(), String> {
    let mut c = connect(url)?;
    c.send_ping(b"are you there").map_err(err)?;
    match c.recv().map_err(err)? {
        Received::Pong(p) => expect(p == b"are you there", "pong payload differs"),
        other => Err(format!("expected a pong, got {other:?}")),
    }
}

fn close_with(url: &str, code: u16) -> Result<(), String> {
    let mut c = connect(url)?;
    let closed = c.close(CloseCode(code), "done").map_err(err)?;
    expect(
        closed.code == CloseCode(code),
        &format!("server answered {}", closed.code),
    )
}

fn expect(ok: bool, why: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(why.to_string())
    }
}
