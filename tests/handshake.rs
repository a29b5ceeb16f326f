//! The opening handshake over real loopback TCP, for what Autobahn does not
//! cover: every missing or wrong header gets a complete HTTP response with
//! the right status and a one-line body, then the connection is closed.

mod support;

use edgews::protocol::frame::OpCode;
use edgews::protocol::OriginPolicy;
use edgews::server::Echo;
use edgews::ServerConfig;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::{client_frame, upgrade_request, RawClient, TestServer};

/// How long any single read may block before the test fails instead of hanging.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the server has to close the TCP connection after its answer.
const EOF_WITHIN: Duration = Duration::from_secs(2);

/// A raw connection whose reads give up after [`READ_TIMEOUT`].
fn connect(addr: SocketAddr) -> RawClient {
    let client = RawClient::connect(addr);
    client.stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    client
}

/// A request head: `request_line`, `Host`, then `headers`, then the blank line.
fn head(addr: SocketAddr, request_line: &str, headers: &[&str]) -> Vec<u8> {
    let mut text = format!("{request_line}\r\nHost: {addr}\r\n");
    for h in headers {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text.into_bytes()
}

/// A complete HTTP answer as the client saw it.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
    /// The server closed the TCP connection after the answer.
    closed: bool,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    /// An error answer: the status, a `Content-Length` that matches, a body of
    /// exactly one non-empty line, `Connection: close`, and the socket closed.
    fn assert_error(&self, status: u16) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header("content-length"),
            Some(self.body.len().to_string()),
            "{self:?}"
        );
        assert!(self.body.ends_with('\n'), "{self:?}");
        assert_eq!(self.body.matches('\n').count(), 1, "{self:?}");
        assert!(self.body.trim().len() > 3, "{self:?}");
        assert_eq!(self.header("connection").as_deref(), Some("close"));
        assert!(self.closed, "connection left open after {status}");
    }
}

/// Sends `request` on a new connection and reads the whole answer.
fn exchange(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut client = connect(addr);
    client.send(request);
    read_answer(&mut client)
}

fn read_answer(client: &mut RawClient) -> Answer {
    let (head, body) = client.read_http_response().expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let closed = client.sees_eof_within(EOF_WITHIN);
    Answer {
        status,
        head,
        body: String::from_utf8(body).expect("UTF-8 body"),
        closed,
    }
}

/// Sends a text frame on an open connection and expects it echoed.
fn assert_echoes(client: &mut RawClient, text: &str) {
    client.send(&client_frame(true, OpCode::Text, text.as_bytes()));
    let frame = client.read_frame().expect("the echo");
    assert_eq!(
        (frame.opcode, frame.payload.as_slice()),
        (OpCode::Text, text.as_bytes())
    );
}

const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
const VERSION: &str = "Sec-WebSocket-Version: 13";
const UPGRADE: &str = "Upgrade: websocket";
const CONNECTION: &str = "Connection: Upgrade";

/// The default configuration, with a short shutdown so that a test that
/// ends with a connection open does not wait for its close reply.
fn config() -> ServerConfig {
    ServerConfig {
        shutdown_timeout: Duration::from_millis(200),
        ..ServerConfig::default()
    }
}

fn echo_server() -> TestServer {
    TestServer::start(config(), || Echo)
}

#[test]
fn a_request_without_upgrade_header_gets_400() {
    let server = echo_server();
    let req = head(server.addr, "GET / HTTP/1.1", &[CONNECTION, KEY, VERSION]);
    let answer = exchange(server.addr, &req);
    answer.assert_error(400);
    assert!(answer.body.contains("Upgrade"), "{answer:?}");
}

#[test]
fn a_request_without_connection_header_gets_400() {
    let server = echo_server();
    let req = head(server.addr, "GET / HTTP/1.1", &[UPGRADE, KEY, VERSION]);
    let answer = exchange(server.addr, &req);
    answer.assert_error(400);
    assert!(answer.body.contains("Connection"), "{answer:?}");
}

#[test]
fn a_key_of_the_wrong_length_gets_400() {
    let server = echo_server();
    // 20 base64 characters: 15 bytes, not 16
    let key = "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA";
    let req = head(
        server.addr,
        "GET / HTTP/1.1",
        &[UPGRADE, CONNECTION, key, VERSION],
    );
    exchange(server.addr, &req).assert_error(400);
    // 32 bytes in base64: too long
    let key = "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let req = head(
        server.addr,
        "GET / HTTP/1.1",
        &[UPGRADE, CONNECTION, key, VERSION],
    );
    exchange(server.addr, &req).assert_error(400);
}

#[test]
fn a_key_that_is_not_base64_gets_400() {
    let server = echo_server();
    let key = "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==";
    let req = head(
        server.addr,
        "GET / HTTP/1.1",
        &[UPGRADE, CONNECTION, key, VERSION],
    );
    let answer = exchange(server.addr, &req);
    answer.assert_error(400);
    assert!(answer.body.contains("Sec-WebSocket-Key"), "{answer:?}");
}

#[test]
fn a_request_without_key_gets_400() {
    let server = echo_server();
    let req = head(
        server.addr,
        "GET / HTTP/1.1",
        &[UPGRADE, CONNECTION, VERSION],
    );
    let answer = exchange(server.addr, &req);
    answer.assert_error(400);
    assert!(answer.body.contains("Sec-WebSocket-Key"), "{answer:?}");
}

#[test]
fn version_8_gets_426_naming_version_13() {
    let server = echo_server();
    let version = "Sec-WebSocket-Version: 8";
    let req = head(
        server.addr,
        "GET / HTTP/1.1",
        &[UPGRADE, CONNECTION, KEY, version],
    );
    let answer = exchange(server.addr, &req);
    answer.assert_error(426);
    assert_eq!(
        answer.header("sec-websocket-version").as_deref(),
        Some("13")
    );
}

#[test]
fn a_post_with_upgrade_headers_gets_405() {
    let server = echo_server();
    let req = head(
        server.addr,
        "POST / HTTP/1.1",
        &[UPGRADE, CONNECTION, KEY, VERSION],
    );
    exchange(server.addr, &req).assert_error(405);
}

#[test]
fn a_valid_head_sent_one_byte_per_write_still_gets_101_and_the_connection_works() {
    let server = echo_server();
    let mut client = connect(server.addr);
    let request = upgrade_request(server.addr, "/");
    for (i, byte) in request.iter().enumerate() {
        client.stream.write_all(std::slice::from_ref(byte)).unwrap();
        if i % 16 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let head = client.read_http_head().expect("response head");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    assert_echoes(&mut client, "after a slow handshake");
}

#[test]
fn an_oversized_head_gets_431_and_the_connection_is_closed() {
    let server = echo_server();
    let filler: Vec<String> = (0..2_000)
        .map(|i| format!("X-Filler-{i:04}: {}", "a".repeat(36)))
        .collect();
    let refs: Vec<&str> = filler.iter().map(String::as_str).collect();
    let mut lines = vec![UPGRADE, CONNECTION, KEY, VERSION];
    lines.extend(refs);
    let req = head(server.addr, "GET / HTTP/1.1", &lines);
    assert!(req.len() >= 100_000, "{}", req.len());
    let mut client = connect(server.addr);
    // the server may close before it has read all of it: write from a thread
    // and ignore the write error that follows
    let mut writer = client.stream.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        let _ = writer.write_all(&req);
    });
    let answer = read_answer(&mut client);
    t.join().unwrap();
    answer.assert_error(431);
}

#[test]
fn a_foreign_origin_is_refused_with_403_by_default() {
    let server = echo_server();
    let origin = "Origin: http://evil.example";
    let req = head(
        server.addr,
        "GET / HTTP/1.1",
        &[UPGRADE, CONNECTION, KEY, VERSION, origin],
    );
    exchange(server.addr, &req).assert_error(403);
}

#[test]
fn the_same_origin_is_accepted_by_default() {
    let server = echo_server();
    let origin = format!("Origin: http://{}", server.addr);
    let req = head(
        server.addr,
        "GET / HTTP/1.1",
        &[UPGRADE, CONNECTION, KEY, VERSION, &origin],
    );
    let mut client = connect(server.addr);
    client.send(&req);
    let head = client.read_http_head().unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert_echoes(&mut client, "same origin");
}

/// Upgrades with `origin` against a server with `config`: `Ok` once the
/// connection echoed a message, or the refusal.
fn upgrade_with_origin(config: ServerConfig, origin: &str) -> Result<(), Answer> {
    let server = TestServer::start(config, || Echo);
    let origin = format!("Origin: {origin}");
    let req = head(
        server.addr,
        "GET / HTTP/1.1",
        &[UPGRADE, CONNECTION, KEY, VERSION, &origin],
    );
    let mut client = connect(server.addr);
    client.send(&req);
    let answer = {
        let (head, body) = client.read_http_response().expect("an HTTP response");
        if head.starts_with("HTTP/1.1 101 ") {
            assert_echoes(&mut client, "allowed");
            return Ok(());
        }
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let closed = client.sees_eof_within(EOF_WITHIN);
        Answer {
            status,
            head,
            body: String::from_utf8(body).unwrap(),
            closed,
        }
    };
    Err(answer)
}

#[test]
fn an_origin_on_the_allow_list_is_accepted_and_others_refused() {
    let mut config = config();
    config.protocol.origin = OriginPolicy::AllowList(vec![
        "https://good.example".into(),
        "other.example:8443".into(),
    ]);
    assert!(upgrade_with_origin(config.clone(), "https://good.example").is_ok());
    assert!(upgrade_with_origin(config.clone(), "HTTPS://GOOD.EXAMPLE").is_ok());
    assert!(upgrade_with_origin(config.clone(), "https://other.example:8443").is_ok());
    upgrade_with_origin(config.clone(), "http://evil.example")
        .expect_err("refused")
        .assert_error(403);
    upgrade_with_origin(config, "null")
        .expect_err("refused")
        .assert_error(403);
}

#[test]
fn any_origin_is_accepted_with_allow_any() {
    let mut config = config();
    config.protocol.origin = OriginPolicy::AllowAny;
    assert!(upgrade_with_origin(config.clone(), "http://evil.example").is_ok());
    assert!(upgrade_with_origin(config, "null").is_ok());
}

#[test]
fn a_plain_get_gets_a_real_426_response_and_the_socket_is_closed() {
    let server = echo_server();
    let req = head(server.addr, "GET / HTTP/1.1", &["Accept: text/html"]);
    let answer = exchange(server.addr, &req);
    answer.assert_error(426);
    assert_eq!(answer.header("upgrade").as_deref(), Some("websocket"));
    assert_eq!(
        answer.header("sec-websocket-version").as_deref(),
        Some("13")
    );
}

#[test]
fn healthz_answers_200_ok() {
    let server = echo_server();
    let req = head(server.addr, "GET /healthz HTTP/1.1", &[]);
    let answer = exchange(server.addr, &req);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body, "ok\n");
    assert!(answer.closed);
}

#[test]
fn a_configured_subprotocol_is_chosen_from_the_clients_offer() {
    let mut config = config();
    config.protocol.subprotocols = vec!["chat".into()];
    let server = TestServer::start(config, || Echo);
    let offer = "Sec-WebSocket-Protocol: other, chat";
    let req = head(
        server.addr,
        "GET / HTTP/1.1",
        &[UPGRADE, CONNECTION, KEY, VERSION, offer],
    );
    let mut client = connect(server.addr);
    client.send(&req);
    let head = client.read_http_head().unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let protocol = head
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Protocol:"))
        .map(str::trim);
    assert_eq!(protocol, Some("chat"), "{head}");
    assert_echoes(&mut client, "chat works");
}

#[test]
fn no_subprotocol_header_is_sent_when_none_matches() {
    let mut config = config();
    config.protocol.subprotocols = vec!["chat".into()];
    let server = TestServer::start(config, || Echo);
    let offer = "Sec-WebSocket-Protocol: other";
    let req = head(
        server.addr,
        "GET / HTTP/1.1",
        &[UPGRADE, CONNECTION, KEY, VERSION, offer],
    );
    let mut client = connect(server.addr);
    client.send(&req);
    let head = client.read_http_head().unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(!head.to_ascii_lowercase().contains("sec-websocket-protocol"));
}

#[test]
fn every_refusal_is_answered_within_a_second() {
    // the answers above come at once, not after a timeout
    let server = echo_server();
    let req = head(server.addr, "GET / HTTP/1.1", &[CONNECTION, KEY, VERSION]);
    let start = Instant::now();
    exchange(server.addr, &req).assert_error(400);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

/// A valid upgrade head padded with one header to exactly `len` bytes.
fn padded_upgrade(addr: SocketAddr, len: usize) -> Vec<u8> {
    let bare = head(addr, "GET / HTTP/1.1", &[UPGRADE, CONNECTION, KEY, VERSION]);
    let overhead = "X-Pad: \r\n".len();
    let pad = format!("X-Pad: {}", "p".repeat(len - bare.len() - overhead));
    let req = head(
        addr,
        "GET / HTTP/1.1",
        &[UPGRADE, CONNECTION, KEY, VERSION, &pad],
    );
    assert_eq!(req.len(), len);
    req
}

#[test]
fn a_head_of_exactly_max_head_size_is_accepted_and_one_byte_more_gets_431() {
    let server = echo_server();
    let max = config().protocol.max_head_size;
    let mut client = connect(server.addr);
    client.send(&padded_upgrade(server.addr, max));
    let head = client.read_http_head().unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert_echoes(&mut client, "at the limit");
    exchange(server.addr, &padded_upgrade(server.addr, max + 1)).assert_error(431);
}

#[test]
fn more_headers_than_max_headers_get_431_even_in_a_small_head() {
    let server = echo_server();
    let max = config().protocol.max_headers;
    let extra: Vec<String> = (0..max).map(|i| format!("X-{i}: y")).collect();
    let mut lines = vec![UPGRADE, CONNECTION, KEY, VERSION];
    lines.extend(extra.iter().map(String::as_str));
    let req = head(server.addr, "GET / HTTP/1.1", &lines);
    assert!(req.len() < 2048);
    exchange(server.addr, &req).assert_error(431);
}
