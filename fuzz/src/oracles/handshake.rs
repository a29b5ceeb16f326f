//! The `handshake_request` and `handshake_response` oracles: the opening
//! handshake from the server's side and from the client's.

use super::driver::{Driver, Seen};
use super::{assert_complete_head, check_http_response, find, for_each_chunk, Spec, RFC_ACCEPT};
use edgews::protocol::accept::{accept_key, is_valid_key};
use edgews::protocol::{Connection, Event, OriginPolicy, Role, State, WsUrl};
use edgews::ProtocolConfig;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Flags of `handshake_request` (in the chunking prefix).
const FLAG_TIMEOUT: u8 = 0x01;

/// Arbitrary bytes as a client's request head to [`Connection::server`],
/// cut into chunks by the prefix. Flag 0x01 ends with the handshake timer
/// instead of EOF; flags 0x06 pick the origin policy (same host, an allow
/// list, any).
///
/// Checks: at most one of `Upgrade`/`HttpRequest`/`Rejected`, and nothing
/// else; nothing consumed past the input; an upgrade or request consumed
/// exactly its head; a rejection wrote a complete HTTP response with the
/// error's status; an accepted upgrade is answered with the right
/// `Sec-WebSocket-Accept`; and the outcome and output are the same whether
/// the head came whole or in chunks.
pub fn handshake_request(data: &[u8]) {
    let spec = Spec::parse(data);
    let whole = request_run(spec.body, &[], spec.flags);
    if !spec.sizes.is_empty() {
        let chunked = request_run(spec.body, spec.sizes, spec.flags);
        assert_eq!(whole, chunked, "chunking changed the outcome");
    }
}

fn request_config(flags: u8) -> ProtocolConfig {
    ProtocolConfig {
        max_head_size: 2048,
        max_headers: 16,
        subprotocols: vec!["chat".into(), "superchat".into()],
        origin: match (flags >> 1) & 3 {
            0 | 3 => OriginPolicy::SameHost,
            1 => {
                OriginPolicy::AllowList(vec!["http://example.com".into(), "localhost:9001".into()])
            }
            _ => OriginPolicy::AllowAny,
        },
        ..ProtocolConfig::default()
    }
}

fn request_run(body: &[u8], sizes: &[u8], flags: u8) -> (Vec<Seen>, Vec<u8>, State) {
    let config = Arc::new(request_config(flags));
    let max_head = config.max_head_size;
    let now = Instant::now();
    let mut d = Driver::new(Connection::server(now, config.clone()), now, Vec::new());
    let mut seen: Vec<Seen> = Vec::new();
    // (accept value expected, head range) of an upgrade awaiting our answer
    let mut pending_accept: Option<[u8; 28]> = None;
    let mut subprotocol: Option<String> = None;
    for_each_chunk(body, sizes, |chunk| {
        d.pump(chunk, &mut |step, event| {
            let written = step.out.len() - step.out_before;
            let kind = match event {
                Event::Upgrade(req) => {
                    assert_eq!(step.state_before, State::Connecting);
                    assert_eq!(written, 0);
                    assert_eq!(req.method, "GET");
                    let key = req
                        .header("sec-websocket-key")
                        .expect("upgrade without a key")
                        .trim_ascii();
                    assert!(is_valid_key(key), "upgrade with an invalid key");
                    if let Some(p) = req.subprotocol {
                        assert!(config.subprotocols.iter().any(|s| s == p));
                        subprotocol = Some(p.to_string());
                    }
                    pending_accept = Some(accept_key(key));
                    assert!(step.consumed.len() <= max_head);
                    Seen::Upgrade
                }
                Event::HttpRequest(req) => {
                    assert_eq!(written, 0);
                    assert!(!req.method.is_empty());
                    assert!(step.consumed.len() <= max_head);
                    Seen::Http
                }
                Event::Rejected(e) => {
                    assert_eq!(step.conn.state(), State::Closed);
                    let status = check_http_response(&step.out[step.out_before..]);
                    assert_eq!(status, e.status(), "rejection status for {e:?}");
                    assert!((400..600).contains(&status));
                    *step.closed = true;
                    Seen::Rejected(status)
                }
                other => panic!("unexpected event during the handshake: {other:?}"),
            };
            assert!(
                seen.is_empty(),
                "second handshake event {kind:?} after {seen:?}"
            );
            seen.push(kind);
        });
        if let Some(Seen::Upgrade | Seen::Http) = seen.first() {
            // the request's head was consumed whole, nothing else
            assert!(!d.conn.wants_read());
        }
        if seen.is_empty() {
            assert!(d.pending.len() <= max_head, "unbounded head buffering");
            assert_eq!(d.conn.state(), State::Connecting);
        }
    });
    let head_len = d.fed - d.pending.len();
    if matches!(seen.first(), Some(Seen::Upgrade | Seen::Http)) {
        assert_complete_head(&body[..head_len]);
    }
    match seen.first() {
        Some(Seen::Upgrade) => {
            let accept = pending_accept.expect("accept value");
            let before = d.out.len();
            d.conn.accept(&mut d.out).expect("accept refused");
            let resp = &d.out[before..];
            let mut want = Vec::new();
            want.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
            want.extend_from_slice(&accept);
            want.extend_from_slice(b"\r\n");
            if let Some(p) = &subprotocol {
                want.extend_from_slice(format!("Sec-WebSocket-Protocol: {p}\r\n").as_bytes());
            }
            want.extend_from_slice(b"\r\n");
            assert_eq!(resp, &want[..], "wrong 101 response");
            assert_eq!(d.conn.state(), State::Open);
        }
        Some(Seen::Http) => {
            let before = d.out.len();
            d.conn
                .respond(404, "text/plain", &["X-Fuzz: 1"], b"no\n", &mut d.out)
                .expect("respond refused");
            assert_eq!(check_http_response(&d.out[before..]), 404);
            assert!(d.conn.is_closed());
        }
        Some(_) => assert!(d.conn.is_closed()),
        None => {
            let before = d.out.len();
            let event = if flags & FLAG_TIMEOUT != 0 {
                d.conn
                    .handle_timeout(now + Duration::from_secs(3600), &mut d.out)
            } else {
                d.conn.handle_eof(now)
            };
            match event {
                Some(Event::Rejected(e)) => {
                    if flags & FLAG_TIMEOUT != 0 {
                        assert_eq!(check_http_response(&d.out[before..]), 408);
                    } else {
                        assert_eq!(d.out.len(), before, "response written after EOF");
                    }
                    seen.push(Seen::Rejected(e.status()));
                }
                other => panic!("handshake end gave {other:?}"),
            }
            assert!(d.conn.is_closed());
        }
    }
    (seen, d.out, d.conn.state())
}

// ---------------------------------------------------------------------------
// handshake_response

/// The subprotocols the client offers.
fn offered() -> Vec<String> {
    vec!["chat".into(), "v2.edgews".into()]
}

/// Arbitrary bytes as the server's answer to [`Connection::client`] for
/// `ws://localhost:9001/`, cut into chunks by the prefix. Every occurrence
/// of the RFC's example accept value ([`RFC_ACCEPT`]) is replaced with the
/// right one for the client's random key, so the fuzzer can get past the
/// accept check.
///
/// Checks: at most one of `Connected`/`ConnectFailed` and nothing else;
/// `Connected` only when the head contains "101", with the head consumed
/// exactly, a subprotocol we offered, and nothing written; a failed client
/// is closed and wrote nothing; the verdict does not depend on chunking.
pub fn handshake_response(data: &[u8]) {
    let spec = Spec::parse(data);
    let whole = response_run(spec.body, &[]);
    if !spec.sizes.is_empty() {
        let chunked = response_run(spec.body, spec.sizes);
        assert_eq!(whole, chunked, "chunking changed the outcome");
    }
}

/// Starts a client; returns it with its request and its accept value.
pub(super) fn start_client(
    config: ProtocolConfig,
    now: Instant,
) -> (Connection, Vec<u8>, [u8; 28]) {
    let url = WsUrl::parse("ws://localhost:9001/").unwrap();
    let mut out = Vec::new();
    let conn = Connection::client(now, Arc::new(config), &url, offered(), &[], &mut out);
    assert_eq!(conn.state(), State::Connecting);
    assert!(out.starts_with(b"GET / HTTP/1.1\r\nHost: localhost:9001\r\n"));
    assert_complete_head(&out);
    let marker = b"Sec-WebSocket-Key: ";
    let at = find(&out, marker).expect("request without a key") + marker.len();
    let end = at + find(&out[at..], b"\r\n").expect("key line");
    let key = &out[at..end];
    assert!(is_valid_key(key), "client sent an invalid key");
    let accept = accept_key(key);
    (conn, out, accept)
}

/// `message` with this run's accept value put back as the placeholder: each
/// run draws a fresh random key, and an error that quotes a header value the
/// placeholder was substituted into (say, an unoffered subprotocol) would
/// otherwise differ between the whole and the chunked run.
fn unkeyed(message: &str, accept: &[u8; 28]) -> String {
    let accept = std::str::from_utf8(accept).expect("base64 is ASCII");
    message.replace(accept, RFC_ACCEPT)
}

fn response_run(body: &[u8], sizes: &[u8]) -> Vec<Seen> {
    let now = Instant::now();
    let (conn, out, accept) = start_client(ProtocolConfig::default(), now);
    let mut input = body.to_vec();
    let placeholder = RFC_ACCEPT.as_bytes();
    let mut i = 0;
    while let Some(at) = find(&input[i..], placeholder) {
        input[i + at..i + at + placeholder.len()].copy_from_slice(&accept);
        i += at + placeholder.len();
    }
    let request_len = out.len();
    let mut d = Driver::new(conn, now, out);
    let mut seen: Vec<Seen> = Vec::new();
    let mut rest = &input[..];
    for_each_chunk(body, sizes, |chunk| {
        let (piece, after) = rest.split_at(chunk.len());
        rest = after;
        d.pump(piece, &mut |step, event| {
            if matches!(seen.first(), Some(Seen::Connected(_))) {
                // frames after the head: the connection checks apply
                return Driver::open_event(step, event, Role::Client);
            }
            assert_eq!(
                step.out.len(),
                step.out_before,
                "client wrote during handshake"
            );
            let kind = match event {
                Event::Connected { subprotocol } => {
                    assert_eq!(step.conn.state(), State::Open);
                    let head = &body[step.consumed.clone()];
                    assert_eq!(step.consumed.start, 0);
                    assert_complete_head(head);
                    assert!(find(head, b"101").is_some(), "Connected without 101");
                    if let Some(p) = &subprotocol {
                        assert!(offered().contains(p), "subprotocol {p} not offered");
                    }
                    Seen::Connected(subprotocol)
                }
                Event::ConnectFailed(e) => {
                    assert_eq!(step.conn.state(), State::Closed);
                    *step.closed = true;
                    Seen::ConnectFailed(unkeyed(&e.to_string(), &accept))
                }
                other => panic!("unexpected event during the handshake: {other:?}"),
            };
            assert!(
                seen.is_empty(),
                "second handshake event {kind:?} after {seen:?}"
            );
            seen.push(kind);
        });
    });
    if seen.is_empty() {
        assert_eq!(d.conn.state(), State::Connecting);
        match d.conn.handle_eof(now) {
            Some(Event::ConnectFailed(e)) => {
                seen.push(Seen::ConnectFailed(unkeyed(&e.to_string(), &accept)));
            }
            other => panic!("EOF during the handshake gave {other:?}"),
        }
    }
    if matches!(seen.first(), Some(Seen::Connected(_))) {
        d.out_start = request_len;
        d.finish(Role::Client, false);
    } else {
        assert_eq!(
            d.out.len(),
            request_len,
            "client wrote during the handshake"
        );
    }
    seen
}
