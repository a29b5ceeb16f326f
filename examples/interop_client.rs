//! Checks the edgews client against an independent echo server (the
//! interop run uses Python's `websockets` and Node's `ws`):
//!
//! `interop_client ws://127.0.0.1:PORT/`
//! `interop_client wss://localhost:PORT/ --ca-file ca.pem` (or `--insecure`)
//!
//! For `wss://`, `--ca-file PEM` trusts only the certificates in PEM (the
//! run's throwaway test CA) instead of the system's roots; `--insecure`
//! accepts any certificate (tests only). Every connection of a `wss://` run
//! must then actually be TLS (the `tls` check).
//!
//! Prints `ok NAME` or `FAIL NAME: why` per check; exits 1 on any failure.

use edgews::client::{Client, ClientConfig, ClientError, Received};
use edgews::protocol::{CloseCode, MessageKind, OpCode};
use edgews::tls::ClientTls;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

type Check = fn(&str) -> Result<(), String>;

/// How `wss://` servers are verified, from the command line.
static TLS: OnceLock<ClientTls> = OnceLock::new();

fn usage(why: &str) -> ! {
    eprintln!("interop_client: {why}");
    eprintln!("usage: interop_client [ws://|wss://]HOST:PORT/ [--ca-file PEM | --insecure]");
    std::process::exit(2);
}

fn main() {
    let mut url = None;
    let mut tls = ClientTls::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--ca-file" => {
                let path = args
                    .next()
                    .unwrap_or_else(|| usage("--ca-file needs a PEM file"));
                tls.ca_file = Some(PathBuf::from(path));
            }
            "--insecure" => tls.dangerous_insecure = true,
            a if !a.starts_with("--") && url.is_none() => url = Some(a.to_string()),
            a => usage(&format!("unexpected argument {a}")),
        }
    }
    let url = url.unwrap_or_else(|| "ws://127.0.0.1:9003/".into());
    let secure = url.starts_with("wss://");
    if !secure && (tls.ca_file.is_some() || tls.dangerous_insecure) {
        usage("--ca-file and --insecure are for wss:// URLs");
    }
    TLS.set(tls).expect("set once");
    let mut checks: Vec<(&str, Check)> = vec![
        ("text", text),
        ("binary", binary),
        ("fragmented", fragmented),
        ("binary-16MiB", big),
        ("ping", ping),
        ("close-1000", |u| close_with(u, 1000)),
        ("close-4000", |u| close_with(u, 4000)),
    ];
    if secure {
        checks.insert(0, ("tls", tls_in_use));
    }
    let mut failed = 0;
    for &(name, check) in &checks {
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
        tls: TLS.get().cloned().unwrap_or_default(),
        ..ClientConfig::default()
    };
    Client::connect_with(url, config).map_err(|e| format!("connect: {e}"))
}

/// A `wss://` connection runs over TLS (and one round trip works on it).
fn tls_in_use(url: &str) -> Result<(), String> {
    let mut c = connect(url)?;
    expect(c.is_tls(), "wss:// connection is not TLS")?;
    c.send_text("over tls").map_err(err)?;
    let m = c.recv_message().map_err(err)?;
    expect(m.as_text() == Some("over tls"), "text echo differs")
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
