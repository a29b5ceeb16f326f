//! Tests of the server side of the opening handshake (RFC 6455 §4.2):
//! request validation, the 101 answer, rejections, origin policy,
//! subprotocols, extensions, and the handshake as the `Connection` runs it.

use super::*;
use crate::frame::encode_frame;
use crate::{Connection, Event, MessageKind, OpCode, State};
use std::mem::discriminant;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The §1.3 / §4.1 example key and the accept value §1.3 derives from it.
const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const RFC_ACCEPT: &[u8; ACCEPT_LEN] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The client's handshake exactly as RFC 6455 §1.3 shows it.
const RFC_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
Host: server.example.com\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Origin: http://example.com\r\n\
Sec-WebSocket-Protocol: chat, superchat\r\n\
Sec-WebSocket-Version: 13\r\n\
\r\n";

/// The server's handshake exactly as RFC 6455 §1.3 shows it.
const RFC_RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
Sec-WebSocket-Protocol: chat\r\n\
\r\n";

/// The headers of a minimal valid upgrade to `example.com`, without `Origin`.
const BASE: [(&str, &str); 5] = [
    ("Host", "example.com"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", RFC_KEY),
    ("Sec-WebSocket-Version", "13"),
];

/// A request head: `request_line`, then the headers, then the blank line.
fn head(request_line: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = format!("{request_line}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// The minimal valid upgrade with `changes` applied: a header already there
/// is replaced (`Some`) or removed (`None`); a new one is appended.
fn upgrade_with(changes: &[(&str, Option<&str>)]) -> Vec<u8> {
    upgrade_line_with("GET /chat HTTP/1.1", changes)
}

fn upgrade_line_with(request_line: &str, changes: &[(&str, Option<&str>)]) -> Vec<u8> {
    let mut headers: Vec<(&str, &str)> = BASE.to_vec();
    for &(name, value) in changes {
        match headers
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(i) => match value {
                Some(v) => headers[i] = (name, v),
                None => {
                    headers.remove(i);
                }
            },
            None => {
                if let Some(v) = value {
                    headers.push((name, v));
                }
            }
        }
    }
    head(request_line, &headers)
}

fn default_config() -> ProtocolConfig {
    ProtocolConfig::default()
}

fn config_with_origin(origin: OriginPolicy) -> ProtocolConfig {
    ProtocolConfig {
        origin,
        ..Default::default()
    }
}

fn config_with_subprotocols(list: &[&str]) -> ProtocolConfig {
    ProtocolConfig {
        subprotocols: list.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// Parses `head` and insists it is a valid upgrade.
fn upgrade<'a>(head: &'a [u8], config: &ProtocolConfig) -> (Request<'a>, [u8; ACCEPT_LEN]) {
    match parse_request(head, config) {
        Ok(Parsed::Upgrade(request, accept)) => (request, accept),
        other => panic!(
            "expected an upgrade for {:?}, got {other:?}",
            String::from_utf8_lossy(head)
        ),
    }
}

/// Parses `head` and insists it is a plain HTTP request.
fn plain(head: &[u8]) -> Request<'_> {
    match parse_request(head, &default_config()) {
        Ok(Parsed::Http(request)) => request,
        other => panic!(
            "expected a plain request for {:?}, got {other:?}",
            String::from_utf8_lossy(head)
        ),
    }
}

/// Parses `head` and insists it is refused; returns the error.
fn refused(head: &[u8], config: &ProtocolConfig) -> HandshakeError {
    match parse_request(head, config) {
        Err(e) => e,
        Ok(parsed) => panic!(
            "expected a refusal for {:?}, got {parsed:?}",
            String::from_utf8_lossy(head)
        ),
    }
}

/// Whether the upgrade is accepted with the given `Origin` under `policy`;
/// a refusal must be `OriginRefused`, answered 403.
fn origin_accepted(host: &str, origin: Option<&str>, policy: OriginPolicy) -> bool {
    let head = upgrade_with(&[("Host", Some(host)), ("Origin", origin)]);
    match parse_request(&head, &config_with_origin(policy)) {
        Ok(Parsed::Upgrade(..)) => true,
        Err(error @ HandshakeError::OriginRefused) => {
            assert_eq!(error.status(), 403);
            false
        }
        other => panic!("unexpected result {other:?}"),
    }
}

fn allow_list(entries: &[&str]) -> OriginPolicy {
    OriginPolicy::AllowList(entries.iter().map(|s| s.to_string()).collect())
}

/// What a row of a handshake table expects `parse_request` to make of its
/// request head.
#[derive(Debug)]
enum Expect {
    /// An upgrade, with the accept value of `RFC_KEY` (the key every row
    /// built from `BASE` sends).
    Upgrade,
    /// Refused with exactly this error, answered with this status.
    Refused(HandshakeError, u16),
    /// Refused with an error of this variant, whatever its detail text,
    /// answered with this status.
    RefusedLike(HandshakeError, u16),
    /// Refused with whatever error, answered with this status.
    Status(u16),
}

/// Parses `head` (the row `what`) under `config` and checks it against
/// `expect`; a failure names the row and shows the head.
fn check(what: &str, head: &[u8], config: &ProtocolConfig, expect: &Expect) {
    let what = format!("{what}: {:?}", String::from_utf8_lossy(head));
    match parse_request(head, config) {
        Ok(Parsed::Upgrade(_, accept)) if matches!(expect, Expect::Upgrade) => {
            assert_eq!(&accept, RFC_ACCEPT, "{what}");
        }
        Err(error) => check_refusal(&what, &error, expect),
        other => panic!("{what}: expected {expect:?}, got {other:?}"),
    }
}

/// Checks a refusal against `expect`; a failure names the row `what`.
fn check_refusal(what: &str, error: &HandshakeError, expect: &Expect) {
    let status = match expect {
        Expect::Upgrade => panic!("{what}: expected an upgrade, got {error:?}"),
        Expect::Refused(want, status) => {
            assert_eq!(error, want, "{what}");
            status
        }
        Expect::RefusedLike(like, status) => {
            assert_eq!(
                discriminant(error),
                discriminant(like),
                "{what}: expected an error like {like:?}, got {error:?}"
            );
            status
        }
        Expect::Status(status) => status,
    };
    assert_eq!(error.status(), *status, "{what}: {error:?}");
}

/// Checks each `(what, head, expect)` row under the default configuration.
fn check_rows(rows: &[(&str, Vec<u8>, Expect)]) {
    for (what, head, expect) in rows {
        check(what, head, &default_config(), expect);
    }
}

/// A rejection response taken apart: status, headers, body.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The head ended in `\r\n\r\n` and the body filled the rest exactly.
    complete: bool,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn parse_response(bytes: &[u8]) -> Response {
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut slots);
    let head_len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!(
            "not a complete response head ({other:?}): {:?}",
            String::from_utf8_lossy(bytes)
        ),
    };
    assert_eq!(response.version, Some(1), "HTTP/1.1 responses only");
    let headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8(h.value.to_vec()).unwrap(),
            )
        })
        .collect();
    let body = bytes[head_len..].to_vec();
    let complete = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .is_some_and(|(_, v)| v.parse::<usize>().ok() == Some(body.len()));
    Response {
        status: response.code.unwrap(),
        headers,
        body,
        complete,
    }
}

fn rejection_bytes(error: &HandshakeError) -> Vec<u8> {
    let mut out = Vec::new();
    write_rejection(&mut out, error);
    out
}

// ---------------------------------------------------------------------------
// The RFC example and the 101 answer

#[test]
fn rfc_example_request_is_an_upgrade_with_the_rfc_accept_value() {
    // §1.3's request comes from a page on http://example.com to
    // server.example.com: allow that origin explicitly.
    let config = ProtocolConfig {
        subprotocols: vec!["chat".into(), "superchat".into()],
        origin: OriginPolicy::AllowList(vec!["http://example.com".into()]),
        ..Default::default()
    };
    let (request, accept) = upgrade(RFC_REQUEST, &config);
    assert_eq!(&accept, RFC_ACCEPT);
    assert_eq!(request.method, "GET");
    assert_eq!(request.target, "/chat");
    assert_eq!(request.path(), "/chat");
    assert_eq!(request.query(), None);
    assert_eq!(request.header_str("host"), Some("server.example.com"));
    assert_eq!(request.header_str("origin"), Some("http://example.com"));
    assert_eq!(request.subprotocol, Some("chat"));
    assert_eq!(request.headers.len(), 7);
}

#[test]
fn write_accept_produces_the_rfc_example_response_exactly() {
    let mut out = Vec::new();
    write_accept(&mut out, RFC_ACCEPT, Some("chat"), None);
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(RFC_RESPONSE)
    );
}

#[test]
fn write_accept_without_subprotocol_omits_the_protocol_header() {
    let mut out = vec![b'x']; // appends, keeps what was there
    write_accept(&mut out, RFC_ACCEPT, None, None);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "xHTTP/1.1 101 Switching Protocols\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
         \r\n"
    );
}

#[test]
fn accept_value_is_computed_from_the_key_the_client_sent() {
    let key = "x3JJHMbDL1EzLkh9GBhXDw==";
    let head = upgrade_with(&[("Sec-WebSocket-Key", Some(key))]);
    let (_, accept) = upgrade(&head, &default_config());
    assert_eq!(&accept, b"HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    assert_eq!(accept, accept_key(key.as_bytes()));
}

#[test]
fn rfc_example_request_is_refused_by_default_because_its_origin_is_another_host() {
    // Origin http://example.com, Host server.example.com: cross-origin.
    let error = refused(RFC_REQUEST, &default_config());
    assert_eq!(error, HandshakeError::OriginRefused);
    assert_eq!(error.status(), 403);
}

#[test]
fn minimal_upgrade_without_origin_is_accepted_with_the_defaults() {
    let head = upgrade_with(&[]);
    let (request, accept) = upgrade(&head, &default_config());
    assert_eq!(&accept, RFC_ACCEPT);
    assert_eq!(request.path(), "/chat");
    assert_eq!(request.subprotocol, None);
}

#[test]
fn header_names_and_values_are_matched_case_insensitively() {
    let head = head(
        "GET /chat HTTP/1.1",
        &[
            ("HOST", "example.com"),
            ("upgrade", "WebSocket"),
            ("CONNECTION", "UPGRADE"),
            ("sec-websocket-key", RFC_KEY),
            ("SEC-WEBSOCKET-VERSION", "13"),
        ],
    );
    let (_, accept) = upgrade(&head, &default_config());
    assert_eq!(&accept, RFC_ACCEPT);
}

#[test]
fn query_string_of_an_upgrade_is_kept_in_the_target() {
    let head = upgrade_line_with("GET /chat?room=a&x=1 HTTP/1.1", &[]);
    let (request, _) = upgrade(&head, &default_config());
    assert_eq!(request.target, "/chat?room=a&x=1");
    assert_eq!(request.path(), "/chat");
    assert_eq!(request.query(), Some("room=a&x=1"));
}

#[test]
fn absolute_form_target_gives_the_resource_path_and_query() {
    // §4.2.1 item 1: the Request-URI may be "an absolute HTTP/HTTPS URI
    // containing the /resource name/"; RFC 7230 §5.3.2: a server MUST
    // accept the absolute-form.
    let head = upgrade_line_with("GET http://example.com/chat?room=a HTTP/1.1", &[]);
    let (request, _) = upgrade(&head, &default_config());
    assert_eq!(request.target, "http://example.com/chat?room=a");
    assert_eq!(request.path(), "/chat");
    assert_eq!(request.query(), Some("room=a"));
}

// ---------------------------------------------------------------------------
// The request line and the header fields §4.2.1 requires
//
// One test per rule: each row of its table changes the minimal valid upgrade
// (or sends other bytes) and says what must come of it. A request that breaks
// a rule is answered with an HTTP error such as 400 (§4.2.1, last paragraph).
// The tables are kept one row a line, out of rustfmt's way.

#[test]
fn upgrade_must_be_a_get_over_http_1_1() {
    // §4.2.1 item 1: "An HTTP/1.1 or higher GET request"
    let line = |request_line| upgrade_line_with(request_line, &[]);
    let not_get = || Expect::Refused(HandshakeError::MethodNotAllowed, 405);
    let not_1_1 = Expect::Refused(HandshakeError::HttpVersion, 400);
    #[rustfmt::skip]
    let rows = [
        ("POST with the upgrade headers", line("POST /chat HTTP/1.1"), not_get()),
        ("PUT with the upgrade headers", line("PUT /chat HTTP/1.1"), not_get()),
        ("HEAD with the upgrade headers", line("HEAD /chat HTTP/1.1"), not_get()),
        ("CONNECT with the upgrade headers", line("CONNECT /chat HTTP/1.1"), not_get()),
        ("an HTTP/1.0 upgrade", line("GET /chat HTTP/1.0"), not_1_1),
    ];
    check_rows(&rows);
}

#[test]
fn host_header_must_be_present_and_not_empty() {
    // §4.2.1 item 2: "A |Host| header field containing the server's authority"
    let host = |value| upgrade_with(&[("Host", value)]);
    let bad_host = || Expect::RefusedLike(HandshakeError::BadHeader(""), 400);
    #[rustfmt::skip]
    let rows = [
        ("Host missing", host(None), bad_host()),
        ("Host empty", host(Some("")), bad_host()),
    ];
    check_rows(&rows);
}

#[test]
fn upgrade_header_must_contain_websocket() {
    // §4.2.1 item 3: "An |Upgrade| header field containing the value
    // "websocket", treated as an ASCII case-insensitive value". The key shows
    // the client wants a WebSocket, so a request without the websocket token
    // is refused, not taken for plain HTTP.
    let upgrade_header = |value| upgrade_with(&[("Upgrade", value)]);
    let no_websocket = || {
        let message = "Upgrade header must contain websocket";
        Expect::Refused(HandshakeError::BadHeader(message), 400)
    };
    #[rustfmt::skip]
    let rows = [
        ("a token list containing WebSocket", upgrade_header(Some("h2c, WebSocket")), Expect::Upgrade),
        ("only h2c, with a key", upgrade_header(Some("h2c")), no_websocket()),
        ("Upgrade missing, with a key", upgrade_header(None), no_websocket()),
    ];
    check_rows(&rows);
}

#[test]
fn connection_header_must_contain_the_upgrade_token() {
    // §4.2.1 item 4: "A |Connection| header field that includes the token
    // "Upgrade", treated as an ASCII case-insensitive value"
    let connection = |value| upgrade_with(&[("Connection", value)]);
    let no_upgrade = || {
        let message = "Connection header must contain Upgrade";
        Expect::Refused(HandshakeError::BadHeader(message), 400)
    };
    let second_line = head(
        "GET /chat HTTP/1.1",
        &[
            ("Host", "example.com"),
            ("Upgrade", "websocket"),
            ("Connection", "keep-alive"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", RFC_KEY),
            ("Sec-WebSocket-Version", "13"),
        ],
    );
    #[rustfmt::skip]
    let rows = [
        // Firefox sends `Connection: keep-alive, Upgrade`
        ("keep-alive, then Upgrade (Firefox)", connection(Some("keep-alive, Upgrade")), Expect::Upgrade),
        ("a list without spaces, in lower case", connection(Some("keep-alive,upgrade")), Expect::Upgrade),
        ("Upgrade first", connection(Some("Upgrade, keep-alive")), Expect::Upgrade),
        ("padded with spaces, in upper case", connection(Some("  keep-alive ,  UPGRADE  ")), Expect::Upgrade),
        ("Upgrade in a second Connection header line", second_line, Expect::Upgrade),
        ("only keep-alive", connection(Some("keep-alive")), no_upgrade()),
        ("upgraded is another token", connection(Some("upgraded")), no_upgrade()),
        ("Connection empty", connection(Some("")), no_upgrade()),
        ("Connection missing", connection(None), no_upgrade()),
    ];
    check_rows(&rows);
}

#[test]
fn key_must_be_one_base64_value_of_16_bytes() {
    // §4.2.1 item 5: "A |Sec-WebSocket-Key| header field with a
    // base64-encoded value that, when decoded, is 16 bytes in length"
    let key = |value| upgrade_with(&[("Sec-WebSocket-Key", value)]);
    let bad_key = || Expect::Refused(HandshakeError::BadKey, 400);
    let missing = HandshakeError::BadHeader("missing Sec-WebSocket-Key header");
    // §11.3.1: "The |Sec-WebSocket-Key| header field MUST NOT appear more
    // than once in an HTTP request"
    let mut headers = BASE.to_vec();
    headers.push(("Sec-WebSocket-Key", "x3JJHMbDL1EzLkh9GBhXDw=="));
    let two_keys = head("GET /chat HTTP/1.1", &headers);
    #[rustfmt::skip]
    let rows = [
        ("padded with spaces, trimmed", key(Some("  dGhlIHNhbXBsZSBub25jZQ==  ")), Expect::Upgrade),
        ("wrong length: 5 bytes", key(Some("c2hvcnQ=")), bad_key()),
        ("wrong length: 17 bytes", key(Some("dGhlIHNhbXBsZSBub25jZSE=")), bad_key()),
        ("wrong length: unpadded", key(Some("dGhlIHNhbXBsZSBub25jZQ")), bad_key()),
        ("wrong length: trailing data", key(Some("dGhlIHNhbXBsZSBub25jZQ==dGhl")), bad_key()),
        ("wrong length: empty", key(Some("")), bad_key()),
        ("not base64: `!`", key(Some("!!!!IHNhbXBsZSBub25jZQ==")), bad_key()),
        ("not base64: the URL-safe alphabet", key(Some("dGhlIHNhbXBsZSBub25jZQ-_")), bad_key()),
        ("not base64: a space inside", key(Some("dGhlIHNhbXBsZSBu b25jZQ=")), bad_key()),
        ("the key missing", key(None), Expect::Refused(missing, 400)),
        ("a second key (§11.3.1)", two_keys, Expect::Status(400)),
    ];
    check_rows(&rows);
}

#[test]
fn version_must_be_13() {
    // §4.2.1 item 6: "A |Sec-WebSocket-Version| header field, with a value
    // of 13"; §4.4: another version is answered 426 (the response itself:
    // version_8_is_answered_426_with_version_13)
    let version = |value| upgrade_with(&[("Sec-WebSocket-Version", value)]);
    let unsupported = || Expect::Refused(HandshakeError::UnsupportedVersion, 426);
    let missing = HandshakeError::BadHeader("missing Sec-WebSocket-Version header");
    #[rustfmt::skip]
    let rows = [
        ("13 padded with spaces", version(Some(" 13 ")), Expect::Upgrade),
        ("the version missing", version(None), Expect::Refused(missing, 400)),
        ("version 0", version(Some("0")), unsupported()),
        ("version 7", version(Some("7")), unsupported()),
        ("version 12", version(Some("12")), unsupported()),
        ("version 14", version(Some("14")), unsupported()),
        ("a list of versions", version(Some("13, 8")), unsupported()),
        ("not a number", version(Some("thirteen")), unsupported()),
    ];
    check_rows(&rows);
}

#[test]
fn version_8_is_answered_426_with_version_13() {
    let head = upgrade_with(&[("Sec-WebSocket-Version", Some("8"))]);
    let error = refused(&head, &default_config());
    assert_eq!(error, HandshakeError::UnsupportedVersion);
    assert_eq!(error.status(), 426);
    // §4.4: the server "MUST ... send back a |Sec-WebSocket-Version| header
    // field containing the version(s) the server is capable of understanding"
    let response = parse_response(&rejection_bytes(&error));
    assert_eq!(response.status, 426);
    assert_eq!(response.header("Sec-WebSocket-Version"), Some("13"));
    assert_eq!(response.header("Upgrade"), Some("websocket"));
    let text = String::from_utf8(rejection_bytes(&error)).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{text}");
}

#[test]
fn garbage_and_incomplete_heads_are_answered_400_malformed() {
    let malformed = || Expect::RefusedLike(HandshakeError::Malformed(""), 400);
    #[rustfmt::skip]
    let rows = [
        ("a TLS ClientHello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(), malformed()),
        ("binary", b"\x00\x01\x02\x03\r\n\r\n".to_vec(), malformed()),
        ("a request line of the method alone", b"GET\r\n\r\n".to_vec(), malformed()),
        ("a header line without a colon", b"GET / HTTP/1.1\r\nno colon here\r\n\r\n".to_vec(), malformed()),
        ("a header name with a space", b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n".to_vec(), malformed()),
        ("another protocol than HTTP", b"GET / HTTX/1.1\r\n\r\n".to_vec(), malformed()),
        ("the blank line alone", b"\r\n\r\n".to_vec(), malformed()),
        ("incomplete: no blank line", b"GET /chat HTTP/1.1\r\nHost: a\r\n".to_vec(), malformed()),
    ];
    check_rows(&rows);
}

#[test]
fn too_many_headers_with_a_small_limit_are_answered_431() {
    let config = ProtocolConfig {
        max_headers: 4,
        ..Default::default()
    };
    // the minimal upgrade has five headers
    let error = refused(&upgrade_with(&[]), &config);
    assert_eq!(error, HandshakeError::TooManyHeaders);
    assert_eq!(error.status(), 431);
}

#[test]
fn exactly_max_headers_headers_are_accepted() {
    let config = ProtocolConfig {
        max_headers: 5,
        ..Default::default()
    };
    upgrade(&upgrade_with(&[]), &config);
}

fn upgrade_with_extra_headers(extra: usize) -> Vec<u8> {
    let names: Vec<String> = (0..extra).map(|i| format!("X-Filler-{i}")).collect();
    let changes: Vec<(&str, Option<&str>)> =
        names.iter().map(|n| (n.as_str(), Some("1"))).collect();
    upgrade_with(&changes)
}

#[test]
fn sixty_five_headers_exceed_the_default_limit_of_64_and_are_answered_431() {
    assert_eq!(default_config().max_headers, 64);
    let head = upgrade_with_extra_headers(65 - BASE.len());
    assert!(head.len() < default_config().max_head_size);
    let error = refused(&head, &default_config());
    assert_eq!(error, HandshakeError::TooManyHeaders);
    assert_eq!(error.status(), 431);
    // far more than the limit is refused the same way
    let head = upgrade_with_extra_headers(200);
    let error = refused(
        &head,
        &ProtocolConfig {
            max_head_size: 1 << 20,
            ..Default::default()
        },
    );
    assert_eq!(error, HandshakeError::TooManyHeaders);
}

#[test]
fn sixty_four_headers_are_within_the_default_limit() {
    let head = upgrade_with_extra_headers(64 - BASE.len());
    let (request, _) = upgrade(&head, &default_config());
    assert_eq!(request.headers.len(), 64);
}

#[test]
fn head_larger_than_max_head_size_is_answered_431() {
    // the default 8 KiB, with one big header
    let big = "a".repeat(8 << 10);
    let head = upgrade_with(&[("X-Big", Some(&big))]);
    let error = refused(&head, &default_config());
    assert_eq!(error, HandshakeError::HeadTooLarge);
    assert_eq!(error.status(), 431);
    // a small configured limit: one byte over it is refused, at it accepted
    let head = upgrade_with(&[]);
    let at_limit = ProtocolConfig {
        max_head_size: head.len(),
        ..Default::default()
    };
    upgrade(&head, &at_limit);
    let below = ProtocolConfig {
        max_head_size: head.len() - 1,
        ..Default::default()
    };
    assert_eq!(refused(&head, &below), HandshakeError::HeadTooLarge);
}

#[test]
fn every_handshake_error_maps_to_its_status() {
    let cases = [
        (HandshakeError::Malformed("x"), 400),
        (HandshakeError::HeadTooLarge, 431),
        (HandshakeError::TooManyHeaders, 431),
        (HandshakeError::MethodNotAllowed, 405),
        (HandshakeError::HttpVersion, 400),
        (HandshakeError::BadHeader("x"), 400),
        (HandshakeError::BadKey, 400),
        (HandshakeError::UnsupportedVersion, 426),
        (HandshakeError::OriginRefused, 403),
        (HandshakeError::NotUpgrade, 426),
        (HandshakeError::ServerFull, 503),
        (HandshakeError::Timeout, 408),
        (HandshakeError::Refused(401, "who are you".into()), 401),
    ];
    for (error, status) in cases {
        assert_eq!(error.status(), status, "{error:?}");
    }
}

// ---------------------------------------------------------------------------
// Plain HTTP requests

#[test]
fn plain_get_without_upgrade_or_key_is_a_plain_http_request() {
    let head = b"GET /healthz HTTP/1.1\r\nHost: example.com\r\n\r\n";
    let request = plain(head);
    assert_eq!(request.method, "GET");
    assert_eq!(request.target, "/healthz");
    assert_eq!(request.path(), "/healthz");
    assert_eq!(request.query(), None);
    assert_eq!(request.subprotocol, None);
}

#[test]
fn query_is_split_from_the_path() {
    let request = plain(b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(request.path(), "/a");
    assert_eq!(request.query(), Some("b=c"));
    // only the first `?` separates
    let request = plain(b"GET /a?b=c?d HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(request.path(), "/a");
    assert_eq!(request.query(), Some("b=c?d"));
    // an empty query is still a query
    let request = plain(b"GET /a? HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(request.path(), "/a");
    assert_eq!(request.query(), Some(""));
}

#[test]
fn header_lookup_is_case_insensitive() {
    let head = b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Token: abc\r\nx-token: def\r\n\r\n";
    let request = plain(head);
    assert_eq!(request.header("x-token"), Some(&b"abc"[..]));
    assert_eq!(request.header("X-TOKEN"), Some(&b"abc"[..]));
    assert_eq!(request.header_str("HOST"), Some("example.com"));
    assert_eq!(request.header("missing"), None);
    let all: Vec<&[u8]> = request.header_all("X-Token").collect();
    assert_eq!(all, [&b"abc"[..], &b"def"[..]]);
}

#[test]
fn header_str_is_none_for_values_that_are_not_utf8() {
    let head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Bin: \xff\xfe\r\n\r\n";
    let request = plain(head);
    assert_eq!(request.header("x-bin"), Some(&b"\xff\xfe"[..]));
    assert_eq!(request.header_str("x-bin"), None);
}

#[test]
fn plain_requests_of_other_methods_and_versions_are_left_to_the_application() {
    // only upgrades must be GET over HTTP/1.1
    let request = plain(b"POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(request.method, "POST");
    let request = plain(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(request.path(), "/");
    assert_eq!(request.header("host"), None);
}

#[test]
fn upgrade_header_for_another_protocol_without_a_key_is_plain_http() {
    let request =
        plain(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n");
    assert_eq!(request.header_str("upgrade"), Some("h2c"));
}

#[test]
fn upgrade_websocket_without_a_key_is_refused_not_plain_http() {
    let head = upgrade_with(&[("Sec-WebSocket-Key", None)]);
    assert!(matches!(
        parse_request(&head, &default_config()),
        Err(HandshakeError::BadHeader(_))
    ));
}

// ---------------------------------------------------------------------------
// Origin policy (§10.2)

#[test]
fn same_host_policy_is_the_default() {
    assert_eq!(default_config().origin, OriginPolicy::SameHost);
}

#[test]
fn same_host_policy_accepts_only_origins_on_the_requested_host_and_port() {
    // (what, Host, Origin, accepted)
    #[rustfmt::skip]
    let rows = [
        ("no Origin", "example.com", None, true),
        ("the host's http origin", "example.com", Some("http://example.com"), true),
        ("the host's https origin, in another case", "example.com", Some("https://Example.COM"), true),
        ("host and port both match", "example.com:8080", Some("http://example.com:8080"), true),
        ("an IPv6 host and port match", "[::1]:9001", Some("http://[::1]:9001"), true),
        ("another host: refused with 403", "example.com", Some("http://evil.com"), false),
        ("the host as a prefix of another", "example.com", Some("http://example.com.evil.com"), false),
        ("a subdomain of the host", "example.com", Some("http://evil.example.com"), false),
        ("the host in another origin's path", "example.com", Some("http://evil.com/http://example.com"), false),
        ("the host as another origin's userinfo", "example.com", Some("http://example.com@evil.com"), false),
        ("no scheme: not an origin", "example.com", Some("example.com"), false),
        ("a scheme without host", "example.com", Some("http://"), false),
        ("a port where the host has none", "example.com", Some("http://example.com:8080"), false),
        ("another port", "example.com:8080", Some("http://example.com:9090"), false),
        ("no port where the host has one", "example.com:8080", Some("http://example.com"), false),
        // sandboxed iframes and file: pages send `Origin: null`
        ("the null origin", "example.com", Some("null"), false),
    ];
    for (what, host, origin, accepted) in rows {
        assert_eq!(
            origin_accepted(host, origin, OriginPolicy::SameHost),
            accepted,
            "{what}: Host {host}, Origin {origin:?}"
        );
    }
}

#[test]
fn allow_list_accepts_the_listed_origins_and_requests_without_origin() {
    // a full origin: that scheme, host and port only
    const FULL: &[&str] = &["https://app.example.com"];
    // a host entry: that host and port on any scheme
    const HOST: &[&str] = &["app.example.com:8443"];
    const BOTH: &[&str] = &["https://a.example.com", "b.example.com"];
    const EMPTY: &[&str] = &[];
    let ws = "ws.example.com";
    // (what, allow list, Host, Origin, accepted)
    #[rustfmt::skip]
    let rows = [
        ("full origin entry: that origin", FULL, ws, Some("https://app.example.com"), true),
        ("full origin entry: in upper case", FULL, ws, Some("HTTPS://APP.EXAMPLE.COM"), true),
        ("full origin entry: no Origin", FULL, ws, None, true),
        ("full origin entry: another scheme", FULL, ws, Some("http://app.example.com"), false),
        ("full origin entry: another port", FULL, ws, Some("https://app.example.com:8443"), false),
        ("full origin entry: another host", FULL, ws, Some("https://evil.com"), false),
        ("full origin entry: the server's own host", FULL, ws, Some("https://ws.example.com"), false),
        ("full origin entry: the null origin", FULL, ws, Some("null"), false),
        ("host entry: https", HOST, ws, Some("https://app.example.com:8443"), true),
        ("host entry: http, host in another case", HOST, ws, Some("http://APP.example.com:8443"), true),
        ("host entry: no port", HOST, ws, Some("https://app.example.com"), false),
        ("host entry: another port", HOST, ws, Some("https://app.example.com:9443"), false),
        ("host entry: another host on that port", HOST, ws, Some("https://evil.com:8443"), false),
        ("two entries: the full origin", BOTH, "x", Some("https://a.example.com"), true),
        ("two entries: the host entry", BOTH, "x", Some("http://b.example.com"), true),
        ("two entries: an origin not listed", BOTH, "x", Some("https://c.example.com"), false),
        ("empty list: even the host's own origin", EMPTY, "example.com", Some("http://example.com"), false),
        ("empty list: no Origin", EMPTY, "example.com", None, true),
    ];
    for (what, list, host, origin, accepted) in rows {
        assert_eq!(
            origin_accepted(host, origin, allow_list(list)),
            accepted,
            "{what}: allow list {list:?}, Host {host}, Origin {origin:?}"
        );
    }
}

#[test]
fn allow_any_accepts_anything() {
    for origin in [
        None,
        Some("http://example.com"),
        Some("http://evil.com"),
        Some("null"),
        Some("not even a url"),
    ] {
        assert!(
            origin_accepted("example.com", origin, OriginPolicy::AllowAny),
            "{origin:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Subprotocols (§4.2.2 item 5)

fn chosen<'a>(head: &'a [u8], configured: &[&str]) -> Option<&'a str> {
    upgrade(head, &config_with_subprotocols(configured))
        .0
        .subprotocol
}

#[test]
fn server_chooses_the_offered_subprotocol_it_prefers_most() {
    // §4.2.2 item 5, /subprotocol/: "either a single value representing the
    // subprotocol the server is ready to use or null"
    let offer = |list| upgrade_with(&[("Sec-WebSocket-Protocol", Some(list))]);
    let two_lines = head(
        "GET /chat HTTP/1.1",
        &[
            ("Host", "example.com"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", RFC_KEY),
            ("Sec-WebSocket-Protocol", "superchat"),
            ("Sec-WebSocket-Protocol", "mqtt, chat"),
            ("Sec-WebSocket-Version", "13"),
        ],
    );
    // what, request, the server's subprotocols, the one it chooses
    type Row<'a> = (&'a str, Vec<u8>, &'a [&'a str], Option<&'a str>);
    #[rustfmt::skip]
    let rows: [Row; 10] = [
        ("the server's order: chat first", offer("superchat, chat"), &["chat", "superchat"], Some("chat")),
        ("the server's order: superchat first", offer("superchat, chat"), &["superchat", "chat"], Some("superchat")),
        ("nothing offered", upgrade_with(&[]), &["chat", "superchat"], None),
        ("only unknown ones offered", offer("mqtt, wamp.2.json"), &["chat", "superchat"], None),
        // a prefix or a superstring of a configured name is a different name
        ("a prefix and a superstring", offer("cha, chats"), &["chat"], None),
        ("the server has none", offer("chat"), &[], None),
        ("two header lines combined: chat", two_lines.clone(), &["chat", "superchat"], Some("chat")),
        ("two header lines combined: mqtt", two_lines.clone(), &["mqtt"], Some("mqtt")),
        ("two header lines combined: superchat", two_lines, &["superchat"], Some("superchat")),
        ("offers trimmed of whitespace", offer(" superchat ,   chat  "), &["chat"], Some("chat")),
    ];
    for (what, head, configured, expected) in &rows {
        assert_eq!(
            chosen(head, configured),
            *expected,
            "{what}: the server has {configured:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Extensions (§9.1)

#[test]
fn extensions_parse_into_names_and_params() {
    let head = upgrade_with(&[(
        "Sec-WebSocket-Extensions",
        Some(r#"permessage-deflate; client_max_window_bits, x-foo; a="b""#),
    )]);
    let (request, _) = upgrade(&head, &default_config());
    assert_eq!(
        request.extensions(),
        [
            Extension {
                name: "permessage-deflate",
                params: vec![("client_max_window_bits", None)],
            },
            Extension {
                name: "x-foo",
                params: vec![("a", Some("b"))],
            },
        ]
    );
}

#[test]
fn extensions_across_header_lines_with_several_params_are_all_parsed() {
    let head = head(
        "GET /chat HTTP/1.1",
        &[
            ("Host", "example.com"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", RFC_KEY),
            ("Sec-WebSocket-Version", "13"),
            (
                "Sec-WebSocket-Extensions",
                "permessage-deflate; server_no_context_takeover ; client_max_window_bits=10",
            ),
            ("sec-websocket-extensions", "x-bar"),
        ],
    );
    let (request, _) = upgrade(&head, &default_config());
    assert_eq!(
        request.extensions(),
        [
            Extension {
                name: "permessage-deflate",
                params: vec![
                    ("server_no_context_takeover", None),
                    ("client_max_window_bits", Some("10")),
                ],
            },
            Extension {
                name: "x-bar",
                params: vec![],
            },
        ]
    );
}

#[test]
fn no_extensions_header_gives_no_extensions() {
    let head = upgrade_with(&[]);
    let (request, _) = upgrade(&head, &default_config());
    assert!(request.extensions().is_empty());
    // empty list items are skipped
    let head = upgrade_with(&[("Sec-WebSocket-Extensions", Some(" , ,"))]);
    let (request, _) = upgrade(&head, &default_config());
    assert!(request.extensions().is_empty());
}

// ---------------------------------------------------------------------------
// Rejection responses

#[test]
fn write_rejection_produces_a_complete_http_response() {
    let error = HandshakeError::BadKey;
    let bytes = rejection_bytes(&error);
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    let response = parse_response(&bytes);
    assert_eq!(response.status, 400);
    assert!(
        response.complete,
        "Content-Length must match the body: {text}"
    );
    assert_eq!(response.header("Connection"), Some("close"));
    assert!(response.header("Content-Type").is_some());
    let body = String::from_utf8(response.body).unwrap();
    assert_eq!(body, format!("{error}\n"));
    assert!(body.ends_with('\n'));
    assert_eq!(body.lines().count(), 1, "{body:?}");
}

#[test]
fn every_rejection_is_a_complete_response_with_its_status() {
    let errors = [
        HandshakeError::Malformed("invalid HTTP request"),
        HandshakeError::HeadTooLarge,
        HandshakeError::TooManyHeaders,
        HandshakeError::MethodNotAllowed,
        HandshakeError::HttpVersion,
        HandshakeError::BadHeader("missing Host header"),
        HandshakeError::BadKey,
        HandshakeError::UnsupportedVersion,
        HandshakeError::OriginRefused,
        HandshakeError::NotUpgrade,
        HandshakeError::ServerFull,
        HandshakeError::Timeout,
        HandshakeError::Refused(401, "log in first".into()),
    ];
    for error in errors {
        let bytes = rejection_bytes(&error);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let response = parse_response(&bytes);
        assert_eq!(response.status, error.status(), "{text}");
        assert!(
            text.starts_with(&format!("HTTP/1.1 {} ", error.status())),
            "{text}"
        );
        assert!(response.complete, "{text}");
        assert_eq!(response.header("Connection"), Some("close"), "{text}");
        assert!(response.body.ends_with(b"\n"), "{text}");
        assert_eq!(
            response.body.iter().filter(|&&b| b == b'\n').count(),
            1,
            "{text}"
        );
        // only a 426 advertises the version
        assert_eq!(
            response.header("Sec-WebSocket-Version").is_some(),
            error.status() == 426,
            "{text}"
        );
    }
}

#[test]
fn rejection_reason_phrases_match_the_status() {
    for (error, line) in [
        (HandshakeError::OriginRefused, "HTTP/1.1 403 Forbidden\r\n"),
        (
            HandshakeError::MethodNotAllowed,
            "HTTP/1.1 405 Method Not Allowed\r\n",
        ),
        (HandshakeError::Timeout, "HTTP/1.1 408 Request Timeout\r\n"),
        (
            HandshakeError::HeadTooLarge,
            "HTTP/1.1 431 Request Header Fields Too Large\r\n",
        ),
        (
            HandshakeError::ServerFull,
            "HTTP/1.1 503 Service Unavailable\r\n",
        ),
    ] {
        let text = String::from_utf8(rejection_bytes(&error)).unwrap();
        assert!(text.starts_with(line), "{text}");
    }
}

#[test]
fn write_rejection_appends_to_what_is_already_in_out() {
    let mut out = b"earlier".to_vec();
    write_rejection(&mut out, &HandshakeError::BadKey);
    assert!(out.starts_with(b"earlierHTTP/1.1 400 "));
}

// ---------------------------------------------------------------------------
// The handshake through the Connection state machine

fn server(now: Instant) -> Connection {
    Connection::server(now, Arc::new(ProtocolConfig::default()))
}

fn server_with(now: Instant, config: ProtocolConfig) -> Connection {
    Connection::server(now, Arc::new(config))
}

fn masked_text(text: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    encode_frame(&mut frame, true, OpCode::Text, Some([1, 2, 3, 4]), text);
    frame
}

#[test]
fn request_split_byte_by_byte_yields_upgrade_only_at_the_last_byte() {
    let now = Instant::now();
    let mut conn = server(now);
    let mut buf = upgrade_with(&[]);
    let len = buf.len();
    let mut out = Vec::new();
    for n in 0..len {
        // the reactor keeps the unconsumed prefix and appends what arrives
        let (consumed, event) = conn.handle_input(now, &mut buf[..n], &mut out);
        assert_eq!(consumed, 0, "at {n}");
        assert!(event.is_none(), "event at {n}: {event:?}");
        assert_eq!(conn.state(), State::Connecting);
    }
    assert!(out.is_empty());
    let (consumed, event) = conn.handle_input(now, &mut buf[..], &mut out);
    assert_eq!(consumed, len);
    match event {
        Some(Event::Upgrade(request)) => {
            assert_eq!(request.path(), "/chat");
            assert_eq!(request.header_str("host"), Some("example.com"));
        }
        other => panic!("expected Upgrade, got {other:?}"),
    }
    assert!(
        out.is_empty(),
        "nothing is sent before the application answers"
    );
    assert_eq!(conn.state(), State::Connecting);
    assert!(!conn.wants_read());
    conn.accept(&mut out).unwrap();
    assert_eq!(conn.state(), State::Open);
    assert!(conn.wants_read());
    assert_eq!(
        String::from_utf8_lossy(&out),
        "HTTP/1.1 101 Switching Protocols\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
         \r\n"
    );
}

#[test]
fn accept_writes_the_chosen_subprotocol_in_the_101() {
    let now = Instant::now();
    let config = ProtocolConfig {
        subprotocols: vec!["chat".into(), "superchat".into()],
        origin: OriginPolicy::AllowAny,
        ..Default::default()
    };
    let mut conn = server_with(now, config);
    let mut buf = RFC_REQUEST.to_vec();
    let mut out = Vec::new();
    let (consumed, event) = conn.handle_input(now, &mut buf, &mut out);
    assert_eq!(consumed, RFC_REQUEST.len());
    match event {
        Some(Event::Upgrade(request)) => assert_eq!(request.subprotocol, Some("chat")),
        other => panic!("expected Upgrade, got {other:?}"),
    }
    conn.accept(&mut out).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(RFC_RESPONSE)
    );
    assert_eq!(conn.state(), State::Open);
}

#[test]
fn input_while_the_application_decides_is_left_unconsumed() {
    let now = Instant::now();
    let mut conn = server(now);
    let mut buf = upgrade_with(&[]);
    let head_len = buf.len();
    buf.extend_from_slice(&masked_text(b"early"));
    let mut out = Vec::new();
    let (consumed, event) = conn.handle_input(now, &mut buf, &mut out);
    assert_eq!(consumed, head_len);
    assert!(matches!(event, Some(Event::Upgrade(_))));
    let (consumed, event) = conn.handle_input(now, &mut buf[head_len..], &mut out);
    assert_eq!(consumed, 0);
    assert!(event.is_none());
    assert!(out.is_empty());
}

#[test]
fn frame_after_the_head_in_the_same_buffer_is_not_lost() {
    let now = Instant::now();
    let mut conn = server(now);
    let head = upgrade_with(&[]);
    let frame = masked_text(b"hi");
    let mut buf = [head.as_slice(), frame.as_slice()].concat();
    let mut out = Vec::new();
    let (consumed, event) = conn.handle_input(now, &mut buf, &mut out);
    assert_eq!(consumed, head.len(), "only the head is consumed");
    assert!(matches!(event, Some(Event::Upgrade(_))), "{event:?}");
    conn.accept(&mut out).unwrap();
    assert!(out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    let mut frame_out = Vec::new();
    let (consumed2, event) = conn.handle_input(now, &mut buf[consumed..], &mut frame_out);
    assert_eq!(consumed2, frame.len());
    match event {
        Some(Event::Message(message)) => {
            assert_eq!(message.kind(), MessageKind::Text);
            assert_eq!(message.as_text(), Some("hi"));
        }
        other => panic!("expected the message, got {other:?}"),
    }
    assert!(frame_out.is_empty());
    assert_eq!(conn.state(), State::Open);
}

#[test]
fn bad_request_is_rejected_with_the_http_error_already_in_out_and_closed() {
    let now = Instant::now();
    let mut conn = server(now);
    let mut buf = upgrade_with(&[("Sec-WebSocket-Version", Some("8"))]);
    let len = buf.len();
    let mut out = Vec::new();
    let (consumed, event) = conn.handle_input(now, &mut buf, &mut out);
    assert_eq!(consumed, len);
    match event {
        Some(Event::Rejected(error)) => assert_eq!(error, HandshakeError::UnsupportedVersion),
        other => panic!("expected Rejected, got {other:?}"),
    }
    let response = parse_response(&out);
    assert_eq!(response.status, 426);
    assert_eq!(response.header("Sec-WebSocket-Version"), Some("13"));
    assert!(response.complete);
    assert_eq!(conn.state(), State::Closed);
    assert!(conn.is_closed());
    assert!(!conn.wants_read());
    assert!(conn.accept(&mut out).is_err());
    // whatever follows is consumed and ignored
    let mut more = b"GET / HTTP/1.1\r\n\r\n".to_vec();
    let more_len = more.len();
    let before = out.len();
    let (consumed, event) = conn.handle_input(now, &mut more, &mut out);
    assert_eq!(consumed, more_len);
    assert!(event.is_none());
    assert_eq!(out.len(), before);
}

#[test]
fn requests_refused_through_the_connection_are_answered_and_closed() {
    let big = "a".repeat(9 << 10);
    let cross_origin = upgrade_with(&[("Origin", Some("http://evil.com"))]);
    use HandshakeError::{HeadTooLarge, Malformed, OriginRefused, TooManyHeaders};
    let refused = |error, status| Expect::Refused(error, status);
    #[rustfmt::skip]
    let rows = [
        ("garbage", b"\x00\x01\x02\x03 hello\r\n\r\n".to_vec(), Expect::RefusedLike(Malformed(""), 400)),
        ("a cross-origin request (§10.2)", cross_origin, refused(OriginRefused, 403)),
        ("too many headers", upgrade_with_extra_headers(100), refused(TooManyHeaders, 431)),
        // rejected in one read, without waiting for the end of the head
        ("a head without end over the default limit", vec![b'A'; (8 << 10) + 1], refused(HeadTooLarge, 431)),
        ("a complete head over max_head_size", upgrade_with(&[("X-Big", Some(&big))]), refused(HeadTooLarge, 431)),
    ];
    for (what, mut buf, expect) in rows {
        let now = Instant::now();
        let mut conn = server(now);
        let mut out = Vec::new();
        let (_, event) = conn.handle_input(now, &mut buf, &mut out);
        match event {
            Some(Event::Rejected(error)) => {
                check_refusal(what, &error, &expect);
                assert_eq!(parse_response(&out).status, error.status(), "{what}");
            }
            other => panic!("{what}: expected Rejected, got {other:?}"),
        }
        assert!(conn.is_closed(), "{what}");
    }
}

#[test]
fn head_without_end_larger_than_max_head_size_is_rejected_without_waiting() {
    let now = Instant::now();
    let config = ProtocolConfig {
        max_head_size: 256,
        ..Default::default()
    };
    let mut conn = server_with(now, config);
    // a head that never ends: one endless header
    let mut buf = b"GET / HTTP/1.1\r\nX-Slow: ".to_vec();
    buf.resize(256, b'a');
    let mut out = Vec::new();
    let (consumed, event) = conn.handle_input(now, &mut buf, &mut out);
    assert_eq!(consumed, 0, "at the limit it still waits");
    assert!(event.is_none());
    buf.push(b'a');
    let len = buf.len();
    let (consumed, event) = conn.handle_input(now, &mut buf, &mut out);
    assert_eq!(consumed, len);
    match event {
        Some(Event::Rejected(error)) => assert_eq!(error, HandshakeError::HeadTooLarge),
        other => panic!("expected Rejected(HeadTooLarge), got {other:?}"),
    }
    assert_eq!(parse_response(&out).status, 431);
    assert!(conn.is_closed());
}

#[test]
fn handshake_timeout_rejects_with_timeout_and_writes_a_408() {
    let now = Instant::now();
    let mut conn = server(now);
    let timeout = ProtocolConfig::default().handshake_timeout;
    assert_eq!(conn.poll_timeout(), Some(now + timeout));
    let mut out = Vec::new();
    assert!(conn
        .handle_timeout(now + timeout - Duration::from_millis(1), &mut out)
        .is_none());
    assert!(out.is_empty());
    assert_eq!(conn.state(), State::Connecting);
    match conn.handle_timeout(now + timeout, &mut out) {
        Some(Event::Rejected(error)) => assert_eq!(error, HandshakeError::Timeout),
        other => panic!("expected Rejected(Timeout), got {other:?}"),
    }
    let response = parse_response(&out);
    assert_eq!(response.status, 408);
    assert!(response.complete);
    assert_eq!(conn.state(), State::Closed);
    assert_eq!(conn.poll_timeout(), None);
    // reported once
    assert!(conn.handle_timeout(now + timeout * 2, &mut out).is_none());
}

#[test]
fn trickling_bytes_does_not_extend_the_handshake_timeout() {
    // slowloris: a byte every few seconds keeps the connection busy but
    // must not postpone the deadline set when it was accepted
    let start = Instant::now();
    let mut conn = server(start);
    let timeout = ProtocolConfig::default().handshake_timeout;
    let mut buf = upgrade_with(&[]);
    let mut out = Vec::new();
    for (i, n) in (1..5).enumerate() {
        let at = start + Duration::from_secs(2 * (i as u64 + 1));
        let (_, event) = conn.handle_input(at, &mut buf[..n], &mut out);
        assert!(event.is_none());
    }
    assert_eq!(conn.poll_timeout(), Some(start + timeout));
    assert!(matches!(
        conn.handle_timeout(start + timeout, &mut out),
        Some(Event::Rejected(HandshakeError::Timeout))
    ));
    assert_eq!(parse_response(&out).status, 408);
}

#[test]
fn plain_http_request_through_the_connection_is_answered_by_respond() {
    let now = Instant::now();
    let mut conn = server(now);
    let mut buf = b"GET /healthz HTTP/1.1\r\nHost: example.com\r\n\r\n".to_vec();
    let len = buf.len();
    let mut out = Vec::new();
    let (consumed, event) = conn.handle_input(now, &mut buf, &mut out);
    assert_eq!(consumed, len);
    match event {
        Some(Event::HttpRequest(request)) => {
            assert_eq!(request.path(), "/healthz");
            assert_eq!(request.query(), None);
        }
        other => panic!("expected HttpRequest, got {other:?}"),
    }
    assert!(out.is_empty());
    // a plain request cannot be upgraded
    assert!(conn.accept(&mut out).is_err());
    assert_eq!(conn.state(), State::Connecting);
    conn.respond(200, "text/plain", &[], b"ok\n", &mut out)
        .unwrap();
    let response = parse_response(&out);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"ok\n");
    assert!(conn.is_closed());
}

#[test]
fn application_reject_writes_the_error_and_closes() {
    let now = Instant::now();
    let mut conn = server(now);
    let mut buf = upgrade_with(&[]);
    let mut out = Vec::new();
    let (_, event) = conn.handle_input(now, &mut buf, &mut out);
    assert!(matches!(event, Some(Event::Upgrade(_))));
    conn.reject(
        &HandshakeError::Refused(401, "log in first".into()),
        &mut out,
    )
    .unwrap();
    let response = parse_response(&out);
    assert_eq!(response.status, 401);
    assert_eq!(response.body, b"log in first\n");
    assert!(conn.is_closed());
}

// ---------------------------------------------------------------------------
// The Host allowlist

fn with_allowed_hosts(hosts: &[&str]) -> ProtocolConfig {
    ProtocolConfig {
        allowed_hosts: hosts.iter().map(|h| h.to_string()).collect(),
        ..ProtocolConfig::default()
    }
}

#[test]
fn host_allowlist_decides_which_hosts_are_served() {
    const NONE: &[&str] = &[];
    const NARROW: &[&str] = &["localhost", "127.0.0.1:9001"];
    // an entry without a port matches its host with any port
    const WIDE: &[&str] = &["LocalHost", "[::1]", "127.0.0.1:9001"];
    let host = |value| upgrade_with(&[("Host", Some(value))]);
    let page = |header| head("GET / HTTP/1.1", &[header]);
    let not_allowed = || Expect::Refused(HandshakeError::HostNotAllowed, 403);
    // (what, allowed hosts, request, expected)
    #[rustfmt::skip]
    let rows = [
        ("no allowlist: any host is served", NONE, host("evil.example"), Expect::Upgrade),
        ("an upgrade to a host not listed (rebinding)", NARROW, host("evil.example:9001"), not_allowed()),
        ("a plain request to a host not listed", NARROW, page(("Host", "evil.example")), not_allowed()),
        ("a plain request without Host", NARROW, page(("Accept", "*/*")), not_allowed()),
        ("a listed host on another port", NARROW, host("127.0.0.1:9002"), not_allowed()),
        ("an entry without port: no port", WIDE, host("localhost"), Expect::Upgrade),
        ("an entry without port: a port", WIDE, host("localhost:9001"), Expect::Upgrade),
        ("an entry without port: another case", WIDE, host("LOCALHOST:1"), Expect::Upgrade),
        ("an IPv6 entry without port: a port", WIDE, host("[::1]:80"), Expect::Upgrade),
        ("an entry with a port: that port", WIDE, host("127.0.0.1:9001"), Expect::Upgrade),
    ];
    for (what, allowed, head, expect) in rows {
        check(what, &head, &with_allowed_hosts(allowed), &expect);
    }
}

#[test]
fn too_many_requests_is_429_with_retry_after() {
    let text = String::from_utf8(rejection_bytes(&HandshakeError::TooManyRequests {
        retry_after_secs: 3,
    }))
    .unwrap();
    assert!(
        text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nRetry-After: 3\r\n"), "{text}");
    let zero = String::from_utf8(rejection_bytes(&HandshakeError::TooManyRequests {
        retry_after_secs: 0,
    }))
    .unwrap();
    assert!(zero.contains("\r\nRetry-After: 1\r\n"), "{zero}");
}

#[test]
fn a_request_prints_without_its_query_or_credentials() {
    let head = head(
        "GET /chat?room=a&token=SECRET1 HTTP/1.1",
        &[
            ("Host", "example.com"),
            ("Authorization", "Bearer SECRET2"),
            ("Cookie", "session=SECRET3"),
            ("User-Agent", "test"),
        ],
    );
    let Parsed::Http(request) = parse_request(&head, &default_config()).unwrap() else {
        panic!("a plain request")
    };
    let printed = format!("{request:?} {request:#?}");
    assert!(!printed.contains("SECRET"), "{printed}");
    assert!(printed.contains("/chat?<query hidden>"), "{printed}");
    assert!(printed.contains("User-Agent"), "{printed}");
}

#[test]
fn a_limit_above_the_stack_slots_takes_that_many_headers_and_no_more() {
    let config = ProtocolConfig {
        max_headers: 100,
        max_head_size: 1 << 20,
        ..Default::default()
    };
    upgrade(&upgrade_with_extra_headers(100 - BASE.len()), &config);
    let error = refused(&upgrade_with_extra_headers(101 - BASE.len()), &config);
    assert_eq!(error, HandshakeError::TooManyHeaders);
}
