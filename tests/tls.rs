//! TLS (`wss://`, `https://`) end to end: echo through the blocking client
//! and a raw rustls client, the plain-HTTP endpoints over https, handshake
//! timeouts for clients that stall before or inside the TLS handshake,
//! non-TLS bytes on the TLS port, a client that floods without reading,
//! certificate reload on SIGHUP with connections open, the client's
//! certificate checks (the library client and `edgews load`), and a
//! reactor's outbound `wss://` connection.
//!
//! Every certificate is made at test time (tests/support/tls.rs) in a
//! private temp dir; nothing here uses a real key.
//!
//! `cargo test --test tls -- --nocapture` shows what was measured.

mod support;

use edgews::client::{Client, ClientError};
use edgews::protocol::frame::OpCode;
use edgews::protocol::{CloseCode, Message};
use edgews::reactor::{Context, Handler, OpenInfo, Reactor};
use edgews::server::{ConnId, Echo};
use edgews::tls::ClientTls;
use edgews::{ProtocolConfig, ServerConfig};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};
use support::measure::{wait_until, MIB};
use support::process::{start, ServerProcess};
use support::tls::{
    client_config, client_hello, https_get, insecure, read_http_response, run_edgews, sighup,
    tls_connect, trusting, wss_connect, wss_url, Ca, TestPki, TlsStream, Validity, LOCAL_NAMES,
};
use support::{client_frame, upgrade_request, RawClient, TestServer};

/// Generous bound for anything the server should do "soon" (a timeout
/// firing, a connection being closed) on a loaded machine.
const SOON: Duration = Duration::from_secs(10);

// ------------------------------------------------------------- helpers

/// An in-process echo server serving TLS with `files`.
fn tls_echo_server(files: &edgews::tls::TlsFiles, protocol: ProtocolConfig) -> TestServer {
    let config = ServerConfig {
        tls: Some(files.clone()),
        protocol,
        ..ServerConfig::default()
    };
    TestServer::start(config, || Echo)
}

/// The `edgews MODE` binary serving TLS with `files`, its metrics on a
/// plain loopback listener of their own, and `extra` arguments.
fn tls_binary(mode: &str, files: &edgews::tls::TlsFiles, extra: &[&str]) -> ServerProcess {
    let cert = files.cert.to_str().unwrap();
    let key = files.key.to_str().unwrap();
    let mut args = vec![
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    start(mode, &args)
}

/// `len` bytes that do not compress (xorshift from `seed`).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// UTF-8 text of exactly `len` bytes: Greek (two bytes a letter) and
/// ASCII, padded with ASCII.
fn text_of_len(len: usize) -> String {
    let mut text = String::with_capacity(len);
    for c in "edgews über TLS: αβγδε ζηθικ λμνξο; ".chars().cycle() {
        if text.len() + c.len_utf8() > len {
            break;
        }
        text.push(c);
    }
    while text.len() < len {
        text.push('.');
    }
    text
}

/// The sizes every echo test sends: 20 B, the frame-length boundaries,
/// one TLS record (16 KiB) and one byte over it, up to 200 KiB.
const SIZES: [usize; 11] = [
    20,
    125,
    126,
    1000,
    16 << 10,
    (16 << 10) + 1,
    65535,
    65536,
    100_000,
    150_000,
    200 << 10,
];

/// Sends each size as text and as binary and checks each echo, byte for byte.
fn echo_every_size(client: &mut Client) {
    for (i, &len) in SIZES.iter().enumerate() {
        let text = text_of_len(len);
        client.send_text(&text).expect("send text");
        let echo = client.recv_message().expect("the text echo");
        assert_eq!(echo.as_text(), Some(text.as_str()), "text of {len} bytes");

        let data = noise(i as u64, len);
        client.send_binary(&data).expect("send binary");
        let echo = client.recv_message().expect("the binary echo");
        assert!(
            echo.as_text().is_none(),
            "binary of {len} came back as text"
        );
        assert!(
            echo.as_bytes() == data.as_slice(),
            "binary of {len} bytes differs"
        );
    }
}

/// One echo of a short text, as a liveness check.
fn assert_echoes(client: &mut Client, text: &str) {
    client.send_text(text).expect("send");
    let echo = client.recv_message().expect("an echo");
    assert_eq!(echo.as_text(), Some(text));
}

/// A raw rustls client that completed the WebSocket upgrade for `/`.
fn tls_upgrade(addr: SocketAddr, tls: &ClientTls) -> TlsStream {
    let mut stream = tls_connect(addr, tls).expect("TLS handshake");
    stream
        .write_all(&upgrade_request(addr, "/"))
        .expect("write the upgrade");
    stream.flush().unwrap();
    let (head, rest) = read_http_response(&mut stream).expect("the upgrade response");
    assert!(head.starts_with("HTTP/1.1 101 "), "upgrade refused: {head}");
    assert!(rest.is_empty());
    stream
}

/// Frames read from a raw stream (the server does not mask), with the
/// bytes past the last frame kept for the next one.
struct Frames<S> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: Read> Frames<S> {
    fn new(stream: S) -> Frames<S> {
        Frames {
            stream,
            buf: Vec::new(),
        }
    }

    /// The next whole frame: its opcode and payload.
    fn next(&mut self) -> io::Result<(OpCode, Vec<u8>)> {
        let mut chunk = [0u8; 16 << 10];
        loop {
            if let Some(frame) = support::take_frame(&mut self.buf) {
                return Ok((frame.opcode, frame.payload));
            }
            match self.stream.read(&mut chunk)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Whether the stream ends (EOF, `close_notify`, or a reset) with
    /// nothing more after the frames read.
    fn ends(&mut self) -> bool {
        let mut chunk = [0u8; 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return self.buf.is_empty(),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return self.buf.is_empty(),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return self.buf.is_empty(),
                Err(_) => return false, // a timeout: still open
            }
        }
    }
}

/// Encrypts `plaintext` as a rustls client would, in records of the given
/// sizes (one `write` per piece makes one record): the TLS bytes.
fn encrypt_in_pieces(
    conn: &mut edgews::tls::rustls::ClientConnection,
    plaintext: &[u8],
    mut piece: impl FnMut() -> usize,
) -> Vec<u8> {
    let mut tls = Vec::new();
    let mut pos = 0;
    while pos < plaintext.len() {
        let end = (pos + piece().max(1)).min(plaintext.len());
        conn.writer().write_all(&plaintext[pos..end]).unwrap();
        while conn.wants_write() {
            conn.write_tls(&mut tls).unwrap();
        }
        pos = end;
    }
    tls
}

/// A small deterministic generator of sizes in `1..=max`.
fn sizes(seed: u32, max: usize) -> impl FnMut() -> usize {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        1 + x as usize % max
    }
}

/// Reads whatever `stream` receives until the server closes it (EOF or a
/// reset) or `limit` passes: the bytes received, and whether it closed.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + limit;
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (got, true), // a reset counts as closed
        }
    }
    (got, false)
}

/// Waits until the series reads `want` on the server's /metrics; the last
/// value read.
fn metric_reaches(server: &ServerProcess, series: &str, want: f64) -> Option<f64> {
    let mut last = None;
    wait_until(SOON, || {
        last = server.metric(series);
        last == Some(want)
    });
    last
}

/// Whether the error is `ClientError::Tls`, and its text.
fn tls_error_text(result: Result<Client, ClientError>) -> String {
    match result {
        Err(ClientError::Tls(e)) => e.to_string(),
        Err(other) => panic!("expected ClientError::Tls, got {other:?}"),
        Ok(_) => panic!("expected ClientError::Tls, the connection opened"),
    }
}

// ----------------------------------------------- 1. echo over wss://

#[test]
fn echo_over_wss_returns_text_and_binary_of_20_bytes_to_200_kib_verified_against_the_test_ca() {
    let pki = TestPki::new("echo");
    let server = tls_echo_server(&pki.server, ProtocolConfig::default());
    let mut client = Client::connect_with(
        &wss_url(server.addr, "/"),
        client_config(pki.client_tls(), false),
    )
    .expect("a wss client trusting the test CA connects");
    assert!(client.is_tls());
    assert!(client.deflate().is_none());
    echo_every_size(&mut client);
    let closed = client
        .close(CloseCode::NORMAL, "bye")
        .expect("a clean close");
    assert_eq!(closed.code, CloseCode::NORMAL);
    let stats = server.stop();
    assert_eq!(stats.opened, 1);
    assert_eq!(stats.messages_in, 2 * SIZES.len() as u64);
    assert_eq!(stats.tls_errors, 0);
}

#[test]
fn echo_over_wss_by_the_name_localhost_is_verified_too() {
    let pki = TestPki::new("localhost");
    let server = tls_echo_server(&pki.server, ProtocolConfig::default());
    let url = format!("wss://localhost:{}/", server.addr.port());
    let mut client = Client::connect_with(&url, client_config(pki.client_tls(), false))
        .expect("the leaf names localhost");
    assert_echoes(&mut client, "by name");
}

#[test]
fn echo_over_wss_with_permessage_deflate_returns_every_message_unchanged() {
    let pki = TestPki::new("deflate");
    let protocol = ProtocolConfig {
        deflate: Some(edgews::protocol::DeflateConfig::default()),
        ..ProtocolConfig::default()
    };
    let server = tls_echo_server(&pki.server, protocol);
    let mut client = Client::connect_with(
        &wss_url(server.addr, "/"),
        client_config(pki.client_tls(), true),
    )
    .expect("connect");
    assert!(
        client.deflate().is_some(),
        "permessage-deflate was not negotiated"
    );
    echo_every_size(&mut client);
    // text that compresses well, so compressed frames really go both ways
    let compressible = "edgews compresses this sentence over TLS; ".repeat(5000);
    assert_echoes(&mut client, &compressible);
    client.close(CloseCode::NORMAL, "bye").expect("close");
    let stats = server.stop();
    assert_eq!(stats.tls_errors, 0);
}

#[test]
fn a_raw_tls_client_negotiates_alpn_http_1_1_and_upgrades_over_it() {
    let pki = TestPki::new("alpn");
    let server = tls_echo_server(&pki.server, ProtocolConfig::default());
    let mut stream = tls_upgrade(server.addr, &pki.client_tls());
    assert_eq!(stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]), "ALPN");
    assert!(stream.conn.protocol_version().is_some());
    stream
        .write_all(&client_frame(true, OpCode::Text, b"over raw rustls"))
        .unwrap();
    stream.flush().unwrap();
    let (opcode, payload) = Frames::new(&mut stream).next().expect("the echo");
    assert_eq!(opcode, OpCode::Text);
    assert_eq!(payload, b"over raw rustls");
}

#[test]
fn a_tls_1_2_client_is_served_too() {
    use edgews::tls::rustls::pki_types::{pem::PemObject, CertificateDer};
    let pki = TestPki::new("tls12");
    let server = tls_echo_server(&pki.server, ProtocolConfig::default());
    let mut roots = edgews::tls::rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&pki.ca_file).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = edgews::tls::rustls::ClientConfig::builder_with_protocol_versions(&[
        &edgews::tls::rustls::version::TLS12,
    ])
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut stream =
        support::tls::tls_connect_with(server.addr, Arc::new(config)).expect("TLS 1.2 handshake");
    assert_eq!(
        stream.conn.protocol_version(),
        Some(edgews::tls::rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    stream
        .write_all(&upgrade_request(server.addr, "/"))
        .unwrap();
    let (head, _) = read_http_response(&mut stream).expect("the upgrade response");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let payload = noise(12, 70_000);
    stream
        .write_all(&client_frame(true, OpCode::Binary, &payload))
        .unwrap();
    let (opcode, echo) = Frames::new(&mut stream).next().expect("the echo");
    assert_eq!(opcode, OpCode::Binary);
    assert!(echo == payload, "the echo differs");
}

#[test]
fn a_message_in_tiny_tls_records_over_tiny_tcp_segments_is_echoed_whole() {
    let pki = TestPki::new("pieces");
    let server = tls_echo_server(&pki.server, ProtocolConfig::default());
    let mut stream = tls_upgrade(server.addr, &pki.client_tls());
    let payload = noise(5, 100_000);
    let frame = client_frame(true, OpCode::Binary, &payload);
    // records of 1 to 3,000 bytes, then the ciphertext in writes of 1 to
    // 5,000 bytes: records end and begin anywhere in the server's reads
    let tls = encrypt_in_pieces(&mut stream.conn, &frame, sizes(11, 3000));
    let mut next = sizes(13, 5000);
    let mut pos = 0;
    while pos < tls.len() {
        let end = (pos + next()).min(tls.len());
        stream.sock.write_all(&tls[pos..end]).unwrap();
        pos = end;
    }
    let (opcode, echo) = Frames::new(&mut stream).next().expect("the echo");
    assert_eq!(opcode, OpCode::Binary);
    assert!(echo == payload, "the echo differs");
    drop(stream);
    assert_eq!(server.stop().tls_errors, 0);
}

#[test]
fn fifty_thousand_messages_pipelined_in_one_tls_flight_are_all_echoed_in_order() {
    const COUNT: usize = 50_000;
    let pki = TestPki::new("pipelined");
    let server = tls_echo_server(&pki.server, ProtocolConfig::default());
    let mut stream = tls_upgrade(server.addr, &pki.client_tls());
    let mut flight = Vec::new();
    for i in 0..COUNT {
        flight.extend_from_slice(&client_frame(
            true,
            OpCode::Text,
            format!("{i:06}").as_bytes(),
        ));
    }
    // in full records (16 KiB), written at once: far more than one read
    // of the server and more than its per-turn message cap
    let tls = encrypt_in_pieces(&mut stream.conn, &flight, || 16 << 10);
    stream.sock.write_all(&tls).unwrap();
    let mut frames = Frames::new(&mut stream);
    for i in 0..COUNT {
        let (opcode, echo) = frames
            .next()
            .unwrap_or_else(|e| panic!("echo {i} of {COUNT} missing: {e}"));
        assert_eq!(opcode, OpCode::Text);
        assert_eq!(echo, format!("{i:06}").as_bytes(), "echo {i}");
    }
}

#[test]
fn messages_close_close_notify_and_fin_sent_at_once_are_all_answered_then_the_server_closes() {
    const COUNT: usize = 100;
    let pki = TestPki::new("goodbye");
    let server = tls_echo_server(&pki.server, ProtocolConfig::default());
    let mut stream = tls_upgrade(server.addr, &pki.client_tls());
    let mut plaintext = Vec::new();
    for i in 0..COUNT {
        plaintext.extend_from_slice(&client_frame(
            true,
            OpCode::Text,
            format!("m{i}").as_bytes(),
        ));
    }
    plaintext.extend_from_slice(&client_frame(true, OpCode::Close, &1000u16.to_be_bytes()));
    let mut tls = encrypt_in_pieces(&mut stream.conn, &plaintext, || 1 << 20);
    stream.conn.send_close_notify();
    while stream.conn.wants_write() {
        stream.conn.write_tls(&mut tls).unwrap();
    }
    stream.sock.write_all(&tls).unwrap();
    stream.sock.shutdown(Shutdown::Write).unwrap();
    let mut frames = Frames::new(&mut stream);
    for i in 0..COUNT {
        let (opcode, echo) = frames.next().unwrap_or_else(|e| panic!("echo {i}: {e}"));
        assert_eq!(opcode, OpCode::Text);
        assert_eq!(echo, format!("m{i}").as_bytes());
    }
    let (opcode, payload) = frames.next().expect("the close reply");
    assert_eq!(opcode, OpCode::Close);
    assert_eq!(payload.get(..2), Some(&1000u16.to_be_bytes()[..]));
    assert!(
        frames.ends(),
        "the server sent more after its close, or kept the connection"
    );
    drop(frames);
    drop(stream);
    let stats = server.stop();
    assert_eq!(stats.messages_in, COUNT as u64);
    assert_eq!(stats.closes_by_code.get(&1000), Some(&1));
    assert_eq!(stats.tls_errors, 0);
}

// ------------------------------------------ 2. plain HTTP over https

#[test]
fn the_chat_page_and_healthz_are_served_over_https_on_the_tls_port() {
    let pki = TestPki::new("https");
    let server = tls_binary("chat", &pki.server, &[]);
    let tls = pki.client_tls();

    let (head, body) = https_get(server.addr, &tls, "/healthz");
    assert!(head.starts_with("HTTP/1.1 200 "), "GET /healthz: {head}");
    assert_eq!(body, b"ok\n");

    let (head, body) = https_get(server.addr, &tls, "/");
    assert!(head.starts_with("HTTP/1.1 200 "), "GET /: {head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{head}"
    );
    let page = String::from_utf8_lossy(&body);
    assert!(page.contains("<html"), "not the chat page: {page:.200}");

    // the chat's WebSocket works on the same port
    let url = wss_url(server.addr, "/ws?room=tls&name=alice");
    let client = Client::connect_with(&url, client_config(tls, false));
    assert!(client.is_ok(), "chat over wss: {:?}", client.err());
}

// ---------------------------------------------- 3. handshake timeout

fn short_handshake_timeout() -> ProtocolConfig {
    ProtocolConfig {
        handshake_timeout: Duration::from_millis(500),
        ..ProtocolConfig::default()
    }
}

#[test]
fn a_client_that_opens_tcp_and_sends_nothing_is_closed_by_the_handshake_timeout() {
    let pki = TestPki::new("silent");
    let server = tls_echo_server(&pki.server, short_handshake_timeout());
    let mut silent = RawClient::connect(server.addr);
    let (got, closed) = read_until_closed(&mut silent.stream, SOON);
    assert!(
        closed,
        "the server kept a silent connection open for {SOON:?}"
    );
    assert!(
        got.is_empty() || got[0] == 0x15,
        "before closing, the server sent something other than a TLS alert: {got:02x?}"
    );
    // a real client is still served
    let mut client = wss_connect(server.addr, pki.client_tls()).expect("connect");
    assert_echoes(&mut client, "still here");
    client.close(CloseCode::NORMAL, "").unwrap();
    drop(silent);
    let stats = server.stop();
    assert_eq!(stats.timer_closes, 1, "the handshake timer closed it");
    assert_eq!(stats.handshake_failures_by_status.get(&408), Some(&1));
}

#[test]
fn a_client_that_sends_half_a_client_hello_is_closed_by_the_handshake_timeout() {
    let pki = TestPki::new("half-hello");
    let server = tls_echo_server(&pki.server, short_handshake_timeout());
    let hello = client_hello(server.addr, &pki.client_tls());
    assert!(hello.len() > 100, "a ClientHello of {} bytes", hello.len());
    let mut stalled = RawClient::connect(server.addr);
    stalled.send(&hello[..hello.len() / 2]);
    let (got, closed) = read_until_closed(&mut stalled.stream, SOON);
    assert!(
        closed,
        "the server kept a half-sent ClientHello open for {SOON:?}"
    );
    assert!(
        got.is_empty() || got[0] == 0x15,
        "before closing, the server sent something other than a TLS alert: {got:02x?}"
    );
    let mut client = wss_connect(server.addr, pki.client_tls()).expect("connect");
    assert_echoes(&mut client, "still here");
    client.close(CloseCode::NORMAL, "").unwrap();
    drop(stalled);
    let stats = server.stop();
    assert_eq!(stats.timer_closes, 1, "the handshake timer closed it");
    assert_eq!(stats.tls_errors, 0, "half a ClientHello is not an error");
}

// ------------------------------------------------ 4. not TLS at all

#[test]
fn garbage_and_plain_http_on_the_tls_port_are_cut_off_counted_and_others_are_still_served() {
    let pki = TestPki::new("garbage");
    let server = tls_binary("echo", &pki.server, &["--ping-interval", "0"]);
    assert_eq!(server.metric("edgews_tls_errors_total"), Some(0.0));
    let mut first = wss_connect(server.addr, pki.client_tls()).expect("connect");
    assert_echoes(&mut first, "before");

    let garbage: Vec<u8> = b"\x00\x01\x02\x03 this is not TLS at all \xff\xfe"
        .iter()
        .copied()
        .cycle()
        .take(300)
        .collect();
    let plain_http = upgrade_request(server.addr, "/");
    for (what, bytes) in [("garbage", &garbage), ("a plain HTTP upgrade", &plain_http)] {
        let mut raw = RawClient::connect(server.addr);
        raw.send(bytes);
        let (got, closed) = read_until_closed(&mut raw.stream, SOON);
        assert!(closed, "{what}: the connection stayed open");
        assert!(
            got.is_empty() || got[0] == 0x15,
            "{what}: the server answered with something other than a TLS alert: {:?}",
            String::from_utf8_lossy(&got)
        );
        assert!(!got.starts_with(b"HTTP/"), "{what}: answered in plain HTTP");
    }

    assert_eq!(
        metric_reaches(&server, "edgews_tls_errors_total", 2.0),
        Some(2.0),
        "each of the two counts as a TLS error"
    );
    assert_echoes(&mut first, "after");
    let mut second = wss_connect(server.addr, pki.client_tls()).expect("a new client");
    assert_echoes(&mut second, "a new client");
    let log = server.stderr_text();
    assert!(log.contains(": TLS: "), "no TLS error in the log:\n{log}");
}

// ------------------------------------- 5. a client that never reads

/// The most a socket buffer grows to by itself: `tcp_wmem` / `tcp_rmem`'s
/// third field.
fn socket_buffer_max(which: &str, default: usize) -> usize {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/{which}"))
        .ok()
        .and_then(|t| t.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(default)
}

#[test]
fn a_tls_client_that_sends_without_reading_is_paused_and_the_server_memory_stays_bounded() {
    const MSG: usize = 64 << 10;
    const BACKPRESSURE: usize = 4 << 20;
    let pki = TestPki::new("flood");
    let server = tls_binary(
        "echo",
        &pki.server,
        &["--max-backpressure", "4MiB", "--ping-interval", "0"],
    );
    // warm-up: code paged in, first TLS buffers
    let mut other = wss_connect(server.addr, pki.client_tls()).expect("connect");
    assert_echoes(&mut other, "warm-up");
    // what the kernel can hold on the way there and back, plus the cap:
    // the server may take this much before it has to stop reading
    let kernel =
        2 * (socket_buffer_max("tcp_wmem", 4 << 20) + socket_buffer_max("tcp_rmem", 6 << 20));
    let absorbable = kernel + BACKPRESSURE;
    let count = (3 * absorbable / MSG).max(2048);
    let rss_before = server.vm_rss();
    let peak_reset = server.reset_peak();

    let mut flood = tls_upgrade(server.addr, &pki.client_tls());
    flood
        .sock
        .set_write_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let killer = flood.sock.try_clone().unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (written, done) = (written.clone(), done.clone());
        thread::spawn(move || {
            let base = noise(7, MSG);
            for i in 0..count {
                let mut payload = base.clone();
                payload[..8].copy_from_slice(&(i as u64).to_le_bytes());
                flood.write_all(&client_frame(true, OpCode::Binary, &payload))?;
                flood.flush()?;
                written.fetch_add(MSG, Ordering::SeqCst);
            }
            done.store(true, Ordering::SeqCst);
            Ok::<(), io::Error>(())
        })
    };

    // wait until the writer stalls: the server stopped reading this client
    let mut rss_peak = rss_before;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = (0, Instant::now());
    while Instant::now() < deadline && !done.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(20));
        rss_peak = rss_peak.max(server.vm_rss());
        let now = written.load(Ordering::SeqCst);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    // hold the stall a little longer, sampling memory
    for _ in 0..50 {
        thread::sleep(Duration::from_millis(20));
        rss_peak = rss_peak.max(server.vm_rss());
    }
    let stalled_at = written.load(Ordering::SeqCst);
    if peak_reset {
        rss_peak = rss_peak.max(server.vm_hwm());
    }
    let growth = rss_peak.saturating_sub(rss_before);
    eprintln!(
        "TLS flood: writer stalled after {:.1} MiB of {:.1} MiB (the kernel holds up to \
         {:.1} MiB, the cap is 4 MiB); server RSS {:.1} MiB before, peak +{:.1} MiB \
         (peak reset: {peak_reset})",
        stalled_at as f64 / MIB,
        (count * MSG) as f64 / MIB,
        kernel as f64 / MIB,
        rss_before as f64 / MIB,
        growth as f64 / MIB,
    );
    assert!(
        !done.load(Ordering::SeqCst),
        "the server took all {} MiB from a TLS client that never read its echoes",
        (count * MSG) >> 20
    );
    assert!(
        stalled_at <= absorbable + (16 << 20),
        "the server took {} MiB before the writer stalled; the kernel and the cap hold {} MiB",
        stalled_at >> 20,
        absorbable >> 20
    );
    assert!(
        growth < (BACKPRESSURE + (16 << 20)) as u64,
        "the server's memory grew by {:.1} MiB for a client that did not read",
        growth as f64 / MIB
    );
    // the others are still served
    assert_echoes(&mut other, "still served");
    let mut fresh = wss_connect(server.addr, pki.client_tls()).expect("a new client");
    assert_echoes(&mut fresh, "a new client is served");
    // the flooder goes; its writer ends with an error
    let _ = killer.shutdown(Shutdown::Both);
    assert!(writer.join().unwrap().is_err());
    assert_echoes(&mut other, "after the flooder left");
}

// ------------------------------------------------- 6. reload on SIGHUP

#[test]
fn sighup_reloads_the_certificate_for_new_clients_open_ones_go_on_and_a_broken_file_keeps_the_old()
{
    let pki = TestPki::new("reload");
    let ca1 = pki.ca_file.clone();
    let ca2 = Ca::new("edgews test CA 2");
    let ca2_file = ca2.write(pki.dir.join("ca2.pem"));
    let live = pki
        .ca
        .leaf(&LOCAL_NAMES, Validity::Current)
        .write(&pki.dir, "live");
    let server = tls_binary("echo", &live, &["--ping-interval", "0"]);
    assert_eq!(server.metric("edgews_tls_reloads_total"), Some(0.0));

    let mut old = wss_connect(server.addr, trusting(&ca1)).expect("a client of CA 1");
    assert_echoes(&mut old, "before the reload");
    assert!(
        matches!(
            wss_connect(server.addr, trusting(&ca2_file)),
            Err(ClientError::Tls(_))
        ),
        "a client trusting only CA 2 connected before the reload"
    );

    // certificate B, signed by CA 2, replaces A; then SIGHUP
    ca2.leaf(&LOCAL_NAMES, Validity::Current).write_to(&live);
    sighup(server.pid);
    assert_eq!(
        metric_reaches(&server, "edgews_tls_reloads_total", 1.0),
        Some(1.0),
        "the reload was not counted:\n{}",
        server.stderr_text()
    );
    assert_echoes(&mut old, "the old connection goes on after the reload");
    let mut new = wss_connect(server.addr, trusting(&ca2_file)).expect("a client of CA 2");
    assert_echoes(&mut new, "a new client of CA 2");
    let refused = tls_error_text(wss_connect(server.addr, trusting(&ca1)));
    eprintln!("a client of CA 1 after the reload: {refused}");

    // a broken certificate file: the reload fails, certificate B stays
    support::tls::replace_file(
        &live.cert,
        b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    );
    sighup(server.pid);
    assert_eq!(
        metric_reaches(&server, "edgews_tls_reload_failures_total", 1.0),
        Some(1.0),
        "the failed reload was not counted:\n{}",
        server.stderr_text()
    );
    assert_eq!(server.metric("edgews_tls_reloads_total"), Some(1.0));
    let mut after = wss_connect(server.addr, trusting(&ca2_file))
        .expect("certificate B is still served after a failed reload");
    assert_echoes(&mut after, "still certificate B");
    tls_error_text(wss_connect(server.addr, trusting(&ca1)));
    assert_echoes(&mut old, "the first connection still goes on");
    assert_echoes(&mut new, "the second one too");
    let log = server.stderr_text();
    assert!(log.contains("TLS reload failed"), "{log}");
}

#[test]
fn a_reload_with_a_key_that_does_not_match_the_certificate_fails_and_keeps_the_old_pair() {
    let pki = TestPki::new("mismatch");
    let live = pki
        .ca
        .leaf(&LOCAL_NAMES, Validity::Current)
        .write(&pki.dir, "live");
    let server = tls_binary("echo", &live, &["--ping-interval", "0"]);
    // a renewed certificate arrives, its key not yet: the old key stays
    let ca2 = Ca::new("edgews test CA 2");
    let ca2_file = ca2.write(pki.dir.join("ca2.pem"));
    let renewed = ca2.leaf(&LOCAL_NAMES, Validity::Current);
    support::tls::replace_file(&live.cert, renewed.chain_pem.as_bytes());
    sighup(server.pid);
    assert_eq!(
        metric_reaches(&server, "edgews_tls_reload_failures_total", 1.0),
        Some(1.0),
        "a certificate with another's key was accepted:\n{}",
        server.stderr_text()
    );
    assert_eq!(server.metric("edgews_tls_reloads_total"), Some(0.0));
    let mut client = wss_connect(server.addr, pki.client_tls())
        .expect("the old certificate and key are still served");
    assert_echoes(&mut client, "old pair");
    tls_error_text(wss_connect(server.addr, trusting(&ca2_file)));
    // its key arrives: the next reload takes both
    support::tls::replace_file(&live.key, renewed.key_pem.as_bytes());
    sighup(server.pid);
    assert_eq!(
        metric_reaches(&server, "edgews_tls_reloads_total", 1.0),
        Some(1.0)
    );
    let mut renewed_client = wss_connect(server.addr, trusting(&ca2_file)).expect("renewed pair");
    assert_echoes(&mut renewed_client, "new pair");
    assert_echoes(&mut client, "the old connection goes on");
}

#[test]
fn a_missing_or_broken_certificate_at_start_is_refused_with_one_line_and_status_2() {
    let pki = TestPki::new("bad-start");
    let broken = pki.dir.join("broken.pem");
    std::fs::write(&broken, "not a certificate\n").unwrap();
    let missing = pki.dir.join("missing.pem");
    let server_key = pki.server.key.to_str().unwrap();
    let other_key = pki.other_name.key.to_str().unwrap();
    let server_cert = pki.server.cert.to_str().unwrap();
    for (what, cert, key) in [
        (
            "a missing certificate",
            missing.to_str().unwrap(),
            server_key,
        ),
        (
            "a file without a certificate",
            broken.to_str().unwrap(),
            server_key,
        ),
        ("a key of another certificate", server_cert, other_key),
        ("a certificate as the key", server_cert, server_cert),
    ] {
        let (status, text) = run_edgews(
            &[
                "echo",
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                cert,
                "--tls-key",
                key,
            ],
            Duration::from_secs(30),
        );
        let status = status.unwrap_or_else(|| panic!("{what}: the server started anyway"));
        assert_eq!(status.code(), Some(2), "{what}: {status}\n{text}");
        let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("edgews: ")).collect();
        assert_eq!(errors.len(), 1, "{what}: {text}");
        assert!(!text.contains("panicked"), "{what}: {text}");
    }
}

#[test]
fn a_server_side_close_reaches_the_tls_client_before_the_connection_ends() {
    let pki = TestPki::new("server-close");
    let protocol = ProtocolConfig {
        max_message_size: 1000,
        max_frame_size: 1000,
        ..ProtocolConfig::default()
    };
    let server = tls_echo_server(&pki.server, protocol);
    let mut client = wss_connect(server.addr, pki.client_tls()).expect("connect");
    assert_echoes(&mut client, "small");
    client.send_binary(&noise(1, 5000)).expect("send");
    match client.recv_message() {
        Err(ClientError::Closed(c)) => assert_eq!(c.code, CloseCode::MESSAGE_TOO_BIG),
        other => panic!("expected close 1009, got {other:?}"),
    }
}

#[test]
fn sigterm_closes_open_tls_connections_with_1001() {
    let pki = TestPki::new("sigterm");
    let server = tls_binary("echo", &pki.server, &["--ping-interval", "0"]);
    let mut clients: Vec<Client> = (0..3)
        .map(|_| wss_connect(server.addr, pki.client_tls()).expect("connect"))
        .collect();
    for c in &mut clients {
        assert_echoes(c, "before shutdown");
    }
    // each client waits for the server's close (and answers it) meanwhile
    let waiting: Vec<_> = clients
        .into_iter()
        .map(|mut c| thread::spawn(move || c.recv_message().map(|m| m.as_bytes().to_vec())))
        .collect();
    let (status, log) = server.terminate(Duration::from_secs(20));
    for w in waiting {
        match w.join().unwrap() {
            Err(ClientError::Closed(closed)) => assert_eq!(closed.code, CloseCode::GOING_AWAY),
            other => panic!("expected close 1001, got {other:?}"),
        }
    }
    assert!(log.contains("stopped"), "{log}");
    assert!(
        status.is_some_and(|s| s.success()),
        "the server did not stop cleanly: {status:?}\n{log}"
    );
}

// ------------------------------------------- 7. the client's checks

#[test]
fn the_client_refuses_an_expired_certificate_and_one_for_another_name_with_a_tls_error() {
    let pki = TestPki::new("refuse");
    let expired = tls_echo_server(&pki.expired, ProtocolConfig::default());
    let other = tls_echo_server(&pki.other_name, ProtocolConfig::default());

    let why = tls_error_text(wss_connect(expired.addr, pki.client_tls()));
    assert!(
        why.contains("expired"),
        "the reason does not say expired: {why}"
    );
    let why = tls_error_text(wss_connect(other.addr, pki.client_tls()));
    assert!(
        why.contains("not valid for name"),
        "the reason does not name the name: {why}"
    );
    // a client of another CA refuses the good certificate too
    let stranger = Ca::new("a stranger CA");
    let stranger_file = stranger.write(pki.dir.join("stranger.pem"));
    let good = tls_echo_server(&pki.server, ProtocolConfig::default());
    let why = tls_error_text(wss_connect(good.addr, trusting(&stranger_file)));
    assert!(why.contains("UnknownIssuer"), "{why}");

    // the servers saw a failed handshake each (the client's alert)
    for server in [expired, other, good] {
        let stats = server.stop();
        assert_eq!(stats.opened, 0);
    }
}

#[test]
fn dangerous_insecure_accepts_an_expired_certificate_and_one_for_another_name() {
    let pki = TestPki::new("insecure");
    for files in [&pki.expired, &pki.other_name] {
        let server = tls_echo_server(files, ProtocolConfig::default());
        let mut client = wss_connect(server.addr, insecure()).expect("insecure connects");
        assert_echoes(&mut client, "anything goes");
        client.close(CloseCode::NORMAL, "").unwrap();
    }
}

/// `edgews load echo` against `addr` for a second, with `tls_args`.
fn load_echo(addr: SocketAddr, tls_args: &[&str]) -> (Option<std::process::ExitStatus>, String) {
    let url = wss_url(addr, "/");
    let mut args = vec![
        "load",
        "echo",
        "--url",
        &url,
        "--connections",
        "1",
        "--duration",
        "1s",
        "--warmup",
        "0s",
    ];
    args.extend_from_slice(tls_args);
    run_edgews(&args, Duration::from_secs(60))
}

#[test]
fn edgews_load_refuses_an_expired_certificate_and_one_for_another_name_naming_the_reason() {
    let pki = TestPki::new("load");
    let ca = pki.ca_file.to_str().unwrap();
    let good = tls_echo_server(&pki.server, ProtocolConfig::default());
    let (status, text) = load_echo(good.addr, &["--ca-file", ca]);
    assert!(
        status.is_some_and(|s| s.success()),
        "load against a good certificate: {status:?}\n{text}"
    );

    for (files, reason) in [
        (&pki.expired, "expired"),
        (&pki.other_name, "not valid for name"),
    ] {
        let server = tls_echo_server(files, ProtocolConfig::default());
        let (status, text) = load_echo(server.addr, &["--ca-file", ca]);
        let status = status.expect("edgews load ended on its own");
        assert!(
            !status.success(),
            "load succeeded against a bad certificate:\n{text}"
        );
        assert!(
            text.contains(reason),
            "the output does not say {reason:?}:\n{text}"
        );

        let (status, text) = load_echo(server.addr, &["--insecure"]);
        assert!(
            status.is_some_and(|s| s.success()),
            "load --insecure: {status:?}\n{text}"
        );
    }
}

// ---------------------------------------- 8. outbound wss:// from a reactor

/// How an outbound connection ended.
#[derive(Debug)]
enum Outcome {
    /// It opened, got these echoes, and closed with this code.
    Echoed(Vec<Message<'static>>, CloseCode),
    /// It never opened.
    ConnectError(String),
}

/// Sends two messages once open, closes after their echoes, and reports.
struct OutboundEcho {
    to_send: Vec<Message<'static>>,
    echoes: Vec<Message<'static>>,
    report: mpsc::Sender<Outcome>,
}

impl Handler for OutboundEcho {
    fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId, _info: &OpenInfo<'_>) {
        for m in &self.to_send {
            ctx.send_message(id, m).expect("send");
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, message: Message<'_>) {
        self.echoes.push(message.into_owned());
        if self.echoes.len() == self.to_send.len() {
            ctx.close(id, CloseCode::NORMAL, "done").expect("close");
        }
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, _id: ConnId, closed: &edgews::protocol::Closed) {
        let echoes = std::mem::take(&mut self.echoes);
        let _ = self.report.send(Outcome::Echoed(echoes, closed.code));
        ctx.shutdown();
    }

    fn on_connect_error(&mut self, ctx: &mut Context<'_>, _id: ConnId, error: &str) {
        let _ = self.report.send(Outcome::ConnectError(error.to_string()));
        ctx.shutdown();
    }
}

/// Runs a client-only reactor that dials `url` with `client_tls`, sends
/// `to_send`, and reports how it went (within 30 s).
fn dial(url: &str, client_tls: ClientTls, to_send: Vec<Message<'static>>) -> Outcome {
    let (report, outcome) = mpsc::channel();
    let (handle_tx, handle_rx) = mpsc::channel();
    let url = url.to_string();
    let thread = thread::spawn(move || {
        let config = ServerConfig {
            client_tls,
            ..ServerConfig::default()
        };
        let handler = OutboundEcho {
            to_send,
            echoes: Vec::new(),
            report,
        };
        let mut reactor = Reactor::new(config, handler).expect("reactor");
        handle_tx.send(reactor.shutdown_handle()).unwrap();
        reactor
            .connect(&url, Vec::new())
            .expect("start the connect");
        reactor.run().expect("run");
    });
    let handle = handle_rx.recv_timeout(SOON).expect("the reactor started");
    let result = outcome.recv_timeout(Duration::from_secs(30));
    handle.shutdown();
    thread.join().expect("the client reactor");
    result.expect("the outbound connection opened or failed within 30 s")
}

#[test]
fn an_outbound_wss_connection_from_a_reactor_echoes_against_a_tls_server() {
    let pki = TestPki::new("outbound");
    let server = tls_echo_server(&pki.server, ProtocolConfig::default());
    let big = noise(42, 200 << 10);
    let to_send = vec![
        Message::text("hello over wss"),
        Message::binary(big.clone()),
    ];
    match dial(&wss_url(server.addr, "/"), pki.client_tls(), to_send) {
        Outcome::Echoed(echoes, code) => {
            assert_eq!(echoes.len(), 2);
            assert_eq!(echoes[0].as_text(), Some("hello over wss"));
            assert!(
                echoes[1].as_bytes() == big.as_slice(),
                "the binary echo differs"
            );
            assert_eq!(code, CloseCode::NORMAL);
        }
        Outcome::ConnectError(e) => panic!("the outbound wss connection failed: {e}"),
    }
    let stats = server.stop();
    assert_eq!(stats.opened, 1);
    assert_eq!(stats.messages_in, 2);
    assert_eq!(stats.tls_errors, 0);
}

#[test]
fn an_outbound_wss_connection_to_a_certificate_for_another_name_reports_why_it_failed() {
    let pki = TestPki::new("outbound-refused");
    let server = tls_echo_server(&pki.other_name, ProtocolConfig::default());
    match dial(
        &wss_url(server.addr, "/"),
        pki.client_tls(),
        vec![Message::text("never sent")],
    ) {
        Outcome::ConnectError(e) => {
            assert!(e.contains("not valid for name"), "the error: {e}")
        }
        other => panic!("connected to a certificate for another name: {other:?}"),
    }
    assert_eq!(server.stop().opened, 0);
}
