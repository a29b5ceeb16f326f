//! permessage-deflate (RFC 7692) against the real `edgews` binary: every
//! mode compresses for a client that offers it when `--deflate` is on and
//! declines when it is off, and a decompression bomb ends in close 1009
//! with the server's peak memory bounded by the message limit.
//!
//! `cargo test --test deflate -- --nocapture` shows what was measured.

mod support;

use edgews::client::{Client, ClientConfig, Received};
use edgews::protocol::deflate::zlib::Deflater;
use edgews::protocol::frame::{encode_header, OpCode};
use edgews::protocol::mask::apply_mask;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;
use support::measure::MIB;
use support::process::start;
use support::RawClient;

/// The path a client of `mode` opens.
fn path_for(mode: &str, name: &str) -> String {
    match mode {
        "pubsub" => "/topics/t".into(),
        "chat" => format!("/ws?room=r&name={name}"),
        _ => "/".into(),
    }
}

/// A text message of `mode` carrying `text`.
fn message_for(mode: &str, text: &str) -> String {
    match mode {
        "pubsub" => format!(r#"{{"op":"publish","topic":"t","data":"{text}"}}"#),
        "chat" => format!(r#"{{"type":"message","room":"r","text":"{text}"}}"#),
        _ => text.to_string(),
    }
}

fn connect(addr: SocketAddr, path: &str) -> Client {
    let config = ClientConfig {
        read_timeout: Some(Duration::from_secs(5)),
        ..ClientConfig::default()
    };
    Client::connect_with(&format!("ws://{addr}{path}"), config).expect("connect")
}

/// Reads until a text message containing `needle` arrives (presence and
/// other messages are skipped); panics after 5 s of silence.
fn receive_containing(client: &mut Client, needle: &str) -> String {
    loop {
        match client.recv().expect("a message") {
            Received::Message(m) => {
                let text = m.as_text().expect("text").to_string();
                if text.contains(needle) {
                    return text;
                }
            }
            Received::Closed(c) => panic!("closed: {c:?}"),
            Received::Ping(_) | Received::Pong(_) => {}
        }
    }
}

/// JSON-safe text that compresses well, `len` bytes.
fn compressible(len: usize) -> String {
    "edgews compresses this sentence; ".repeat(len / 33 + 1)[..len].to_string()
}

#[test]
fn every_mode_compresses_both_ways_when_deflate_is_on() {
    for mode in ["echo", "broadcast", "pubsub", "chat"] {
        for deflate in ["shared", "dedicated"] {
            let server = start(mode, &["--deflate", deflate]);
            let mut receiver = connect(server.addr, &path_for(mode, "b"));
            let mut sender = connect(server.addr, &path_for(mode, "a"));
            for client in [&receiver, &sender] {
                let params = client.deflate().copied();
                let params = params.unwrap_or_else(|| panic!("{mode} {deflate}: not negotiated"));
                assert_eq!(
                    params.server_no_context_takeover,
                    deflate == "shared",
                    "{mode} {deflate}: {params:?}"
                );
            }
            let text = compressible(4000);
            if mode == "chat" {
                // both are in the room once the sender's join reached b
                receive_containing(&mut receiver, "\"a\"");
            }
            sender.send_text(&message_for(mode, &text)).unwrap();
            let got = if mode == "echo" {
                receive_containing(&mut sender, &text)
            } else {
                receive_containing(&mut receiver, &text)
            };
            assert!(got.contains(&text), "{mode} {deflate}");
            println!("{mode} --deflate {deflate}: negotiated and relayed 4,000 bytes");
        }
    }
}

#[test]
fn the_server_declines_deflate_by_default() {
    let server = start("echo", &[]);
    let mut client = connect(server.addr, "/");
    assert_eq!(client.deflate(), None);
    client.send_text(&compressible(1000)).unwrap();
    receive_containing(&mut client, "edgews");
}

/// A client frame (masked, RSV1 set) carrying `len` zeros compressed.
fn compressed_zeros(len: usize) -> Vec<u8> {
    let mut deflater = Deflater::new(1, 15, 8).unwrap();
    let zeros = vec![0u8; 1 << 20];
    let mut payload = Vec::with_capacity(len / 512);
    let mut left = len;
    while left > 0 {
        let chunk = &zeros[..left.min(zeros.len())];
        let mut pos = 0;
        while pos < chunk.len() {
            payload.reserve(64 << 10);
            pos += deflater.compress(&chunk[pos..], &mut payload, false).0;
        }
        left -= chunk.len();
    }
    loop {
        payload.reserve(64);
        deflater.compress(&[], &mut payload, true);
        if payload.len() < payload.capacity() {
            break;
        }
    }
    payload.truncate(payload.len() - 4); // RFC 7692 §7.2.1: the tail goes
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut frame = Vec::new();
    encode_header(
        &mut frame,
        true,
        OpCode::Binary,
        Some(key),
        payload.len() as u64,
    );
    frame[0] |= 0x40; // RSV1: compressed
    let at = frame.len();
    frame.extend_from_slice(&payload);
    apply_mask(&mut frame[at..], key, 0);
    frame
}

/// Opens a raw connection that negotiated permessage-deflate.
fn open_deflate(addr: SocketAddr) -> RawClient {
    let mut client = RawClient::connect(addr);
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    );
    client.send(request.as_bytes());
    let head = client.read_http_head().expect("a response");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.contains("Sec-WebSocket-Extensions: permessage-deflate"),
        "{head}"
    );
    client
        .stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    client
}

/// Sends `frame` from another thread (the server may close before it has
/// read it all) and returns the close code the server answered with.
fn close_code_after(client: &mut RawClient, frame: Vec<u8>) -> Option<u16> {
    let mut writer = client.stream.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        let _ = writer.write_all(&frame); // fails once the server has closed
    });
    let code = client.read_close_code();
    t.join().unwrap();
    code
}

#[test]
fn a_decompression_bomb_ends_in_1009_within_the_message_limit() {
    for (limit, bomb) in [("1MiB", 64 << 20), ("64MiB", 1 << 30)] {
        let args = [
            "--deflate",
            "shared",
            "--max-message-size",
            limit,
            "--max-frame-size",
            limit,
        ];
        let server = start("echo", &args);
        let frame = compressed_zeros(bomb);
        let mut client = open_deflate(server.addr);
        let before = server.vm_rss();
        let peak_resettable = server.reset_peak();
        let code = close_code_after(&mut client, frame.clone());
        assert_eq!(code, Some(1009), "limit {limit}");
        let grown = server.vm_hwm().saturating_sub(before) as f64 / MIB;
        println!(
            "a {:.1} MiB frame inflating to {} MiB, --max-message-size {limit}: \
             1009; server peak +{grown:.1} MiB (peak reset: {peak_resettable})",
            frame.len() as f64 / MIB,
            bomb >> 20
        );
        let limit_mib = if limit == "1MiB" { 1.0 } else { 64.0 };
        if peak_resettable {
            assert!(grown <= limit_mib + 16.0, "grew {grown:.1} MiB");
        }
    }
}

#[test]
fn dedicated_state_is_counted_in_metrics_and_freed_at_close() {
    let server = start("echo", &["--deflate", "dedicated"]);
    let held = |s: &support::process::ServerProcess| {
        s.metric("edgews_deflate_memory_bytes").expect("the gauge")
    };
    let mut clients: Vec<Client> = (0..20).map(|_| connect(server.addr, "/")).collect();
    let idle = held(&server);
    for client in &mut clients {
        client.send_text(&compressible(2000)).unwrap();
        receive_containing(client, "edgews");
    }
    let busy = held(&server);
    for mut client in clients {
        client
            .close(edgews::protocol::CloseCode::NORMAL, "")
            .unwrap();
    }
    let freed = support::measure::poll_until(Duration::from_secs(5), || held(&server) < busy);
    let after = held(&server);
    println!(
        "20 dedicated connections: zlib holds {idle:.0} B idle, {busy:.0} B after one message \
         each ({:.0} B per connection), {after:.0} B after they closed",
        (busy - idle) / 20.0
    );
    assert!(
        busy > idle,
        "compressors and decompressors are made on first use"
    );
    assert!(freed.is_some(), "still {after} B after closing");
}
