//! The server's first look at its input (`parse_leading_head`) gives what
//! the scanner's path gives: the same head length and the same answer.

use super::*;
use crate::http::HeadScanner;
use crate::{Connection, Event};
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Instant;

/// Everything a parse produced, to compare two parses by.
fn describe(parsed: &Result<Parsed<'_>, HandshakeError>) -> String {
    let request = |r: &Request<'_>| {
        let headers: Vec<_> = r.headers.iter().collect();
        format!(
            "{} {} {:?} {:?}",
            r.method, r.target, headers, r.subprotocol
        )
    };
    match parsed {
        Ok(Parsed::Upgrade(r, accept)) => format!("upgrade {} {accept:?}", request(r)),
        Ok(Parsed::Http(r)) => format!("http {}", request(r)),
        Err(e) => format!("error {e:?}"),
    }
}

/// The scanner's path: where the first `\r\n\r\n` ends, then that head parsed.
fn scanner_path(input: &[u8], config: &ProtocolConfig) -> Option<(usize, String)> {
    let end = HeadScanner::default().find_end(input)?;
    Some((end, describe(&parse_request(&input[..end], config))))
}

fn leading(input: &[u8], config: &ProtocolConfig) -> Option<(usize, String)> {
    parse_leading_head(input, config).map(|(end, parsed)| (end, describe(&parsed)))
}

const UPGRADE: &[u8] = b"GET /chat?x=1 HTTP/1.1\r\nHost: a.example\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

#[test]
fn a_whole_head_is_parsed_once_and_ends_where_the_scanner_says() {
    let config = ProtocolConfig::default();
    let input = [UPGRADE, b"\x81\x80abcd"].concat();
    let got = leading(&input, &config).expect("taken at once");
    assert_eq!(got.0, UPGRADE.len());
    assert!(got.1.starts_with("upgrade GET /chat?x=1"), "{}", got.1);
    assert_eq!(Some(got), scanner_path(&input, &config));
}

#[test]
fn heads_the_scanner_would_read_otherwise_are_left_to_it() {
    let config = ProtocolConfig::default();
    let cases: [&[u8]; 5] = [
        // an empty line first: httparse skips it, the scanner does not
        b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        // bare line feeds end httparse's head, not the scanner's
        b"GET / HTTP/1.1\nHost: a\n\n",
        // incomplete, and invalid
        b"GET / HTTP/1.1\r\nHost: a\r\n",
        b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n",
    ];
    for input in cases {
        assert_eq!(
            leading(input, &config),
            None,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    // over max_head_size: the scanner's path refuses it
    let small = ProtocolConfig {
        max_head_size: 64,
        ..ProtocolConfig::default()
    };
    assert_eq!(leading(UPGRADE, &small), None);
}

#[test]
fn the_connection_answers_the_same_whole_or_byte_by_byte() {
    let config = Arc::new(ProtocolConfig::default());
    let input = [UPGRADE, b"\x81\x80abcd"].concat();
    let now = Instant::now();
    // whole: the leading-head path
    let mut whole = Connection::server(now, config.clone());
    let mut buf = input.clone();
    let (used, event) = whole.handle_input(now, &mut buf, &mut Vec::new());
    assert_eq!(used, UPGRADE.len());
    let Some(Event::Upgrade(request)) = event else {
        panic!("{event:?}");
    };
    let whole_headers: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_vec()))
        .collect();
    // a byte at a time: the scanner's path
    let mut split = Connection::server(now, config);
    let mut held = Vec::new();
    for &b in &input {
        held.push(b);
        let mut buf = held.clone();
        let (used, event) = split.handle_input(now, &mut buf, &mut Vec::new());
        if let Some(Event::Upgrade(request)) = event {
            assert_eq!(used, UPGRADE.len());
            let headers: Vec<(String, Vec<u8>)> = request
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_vec()))
                .collect();
            assert_eq!(headers, whole_headers);
            return;
        }
        assert_eq!((used, event.is_none()), (0, true));
    }
    panic!("the byte-by-byte head never completed");
}

/// Pieces a request head, or something like one, is made of.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    let fixed: Vec<&'static [u8]> = vec![
        b"GET /a?b HTTP/1.1",
        b"POST / HTTP/1.0",
        b"\r\n",
        b"\n",
        b"\r",
        b"Host: a.example",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        b"Sec-WebSocket-Version: 13",
        b"X-A:\t v \t",
        b" ",
        b":",
        b"\x81\x85",
        // whole lines, so that many inputs are whole heads
        b"Host: a.example\r\n",
        b"Upgrade: websocket\r\n",
        b"Connection: Upgrade\r\n",
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        b"Sec-WebSocket-Version: 13\r\n",
        b"Origin: http://b.example\r\n",
    ];
    prop_oneof![
        6 => prop::sample::select(fixed).prop_map(<[u8]>::to_vec),
        1 => any::<u8>().prop_map(|b| vec![b]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Whenever the leading-head path answers, the scanner's path gives the
    /// same head length and the same answer.
    #[test]
    fn the_leading_head_path_agrees_with_the_scanner(
        lead in any::<bool>(),
        pieces in proptest::collection::vec(piece(), 0..24),
        small in any::<bool>(),
    ) {
        let config = ProtocolConfig {
            max_head_size: if small { 96 } else { 8192 },
            ..ProtocolConfig::default()
        };
        // half the inputs start as a request does, so that many are heads
        let start: &[u8] = if lead { b"GET / HTTP/1.1\r\n" } else { b"" };
        let input = [start, &pieces.concat()].concat();
        if let Some(found) = leading(&input, &config) {
            prop_assert_eq!(Some(found), scanner_path(&input, &config));
        }
    }

    /// Well-formed heads, with or without bytes after them, are taken at
    /// once, and agree with the scanner.
    #[test]
    fn well_formed_heads_are_taken_at_once(
        lines in proptest::collection::vec(
            prop::sample::select(vec!["Host: a", "Upgrade: websocket", "X: y", "Connection: Upgrade"]),
            0..6,
        ),
        after in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut input = b"GET / HTTP/1.1\r\n".to_vec();
        for line in &lines {
            input.extend_from_slice(line.as_bytes());
            input.extend_from_slice(b"\r\n");
        }
        input.extend_from_slice(b"\r\n");
        let head_len = input.len();
        input.extend_from_slice(&after);
        let config = ProtocolConfig::default();
        let found = leading(&input, &config);
        prop_assert_eq!(found.as_ref().map(|f| f.0), Some(head_len));
        prop_assert_eq!(found, scanner_path(&input, &config));
    }
}
