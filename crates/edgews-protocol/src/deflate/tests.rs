//! permessage-deflate in memory: negotiation (RFC 7692 §7.1), the RFC's
//! own examples (§7.2.3), limits while inflating, and shared frames.

use super::*;
use crate::frame::{decode_header, encode_header};
use crate::mask::apply_mask;
use crate::{
    CloseCode, Connection, Event, FrameEncoding, Message, MessageKind, OpCode, ProtocolConfig,
    SharedFrame, WsUrl,
};
use std::sync::Arc;
use std::time::Instant;

const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

fn server_config(deflate: Option<DeflateConfig>) -> Arc<ProtocolConfig> {
    Arc::new(ProtocolConfig {
        deflate,
        ..ProtocolConfig::default()
    })
}

fn request(offers: &[&str]) -> Vec<u8> {
    let mut head = String::from(
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
    );
    for offer in offers {
        head.push_str(&format!("Sec-WebSocket-Extensions: {offer}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// A server that got `offers` and accepted the upgrade, with its answer's
/// `Sec-WebSocket-Extensions` value.
fn accepted(config: Option<DeflateConfig>, offers: &[&str]) -> (Connection, Option<String>) {
    let now = Instant::now();
    let mut server = Connection::server(now, server_config(config));
    let mut input = request(offers);
    let mut out = Vec::new();
    let (_, event) = server.handle_input(now, &mut input, &mut out);
    assert!(matches!(event, Some(Event::Upgrade(_))));
    server.accept(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let answer = text
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Extensions: "))
        .map(str::to_string);
    (server, answer)
}

fn answer(config: DeflateConfig, offers: &[&str]) -> Option<String> {
    accepted(Some(config), offers).1
}

/// A client that offered deflate (or not) and got `extensions` back.
fn client_with(extensions: Option<&str>, offer: bool) -> (Connection, Option<Event<'static>>) {
    let now = Instant::now();
    let config = server_config(offer.then(DeflateConfig::default));
    let url = WsUrl::parse("ws://a/").unwrap();
    let mut request = Vec::new();
    let mut client = Connection::client(now, config, &url, Vec::new(), &[], &mut request);
    let text = String::from_utf8(request).unwrap();
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap();
    let accept = crate::accept::accept_key(key.as_bytes());
    let mut head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        std::str::from_utf8(&accept).unwrap()
    );
    if let Some(e) = extensions {
        head.push_str(&format!("Sec-WebSocket-Extensions: {e}\r\n"));
    }
    head.push_str("\r\n");
    let mut input = head.into_bytes();
    let mut out = Vec::new();
    let (_, event) = client.handle_input(now, &mut input, &mut out);
    let event = event.map(|e| match e {
        Event::Connected { subprotocol } => Event::Connected { subprotocol },
        Event::ConnectFailed(e) => Event::ConnectFailed(e),
        other => panic!("unexpected {other:?}"),
    });
    (client, event)
}

fn client(extensions: &str) -> Connection {
    let (client, event) = client_with(Some(extensions), true);
    assert!(matches!(event, Some(Event::Connected { .. })), "{event:?}");
    client
}

/// Everything `conn` makes of `input`: messages as (kind, bytes), or the
/// close code it failed with.
fn receive(conn: &mut Connection, input: &[u8]) -> Result<Vec<(MessageKind, Vec<u8>)>, u16> {
    let mut buf = input.to_vec();
    let mut pos = 0;
    let mut out = Vec::new();
    let mut messages = Vec::new();
    loop {
        let (used, event) = conn.handle_input(Instant::now(), &mut buf[pos..], &mut out);
        pos += used;
        match event {
            Some(Event::Message(m)) => messages.push((m.kind(), m.as_bytes().to_vec())),
            Some(Event::Closed(c)) => return Err(c.code.0),
            Some(_) => {}
            None => return Ok(messages),
        }
    }
}

/// [`receive`], one byte at a time; unconsumed bytes are presented again
/// with the next, as a reactor does.
fn receive_bytewise(
    conn: &mut Connection,
    input: &[u8],
) -> Result<Vec<(MessageKind, Vec<u8>)>, u16> {
    let mut pending = Vec::new();
    let mut messages = Vec::new();
    let mut out = Vec::new();
    for &byte in input {
        pending.push(byte);
        loop {
            let (used, event) = conn.handle_input(Instant::now(), &mut pending, &mut out);
            let more = match event {
                Some(Event::Message(m)) => {
                    messages.push((m.kind(), m.as_bytes().to_vec()));
                    true
                }
                Some(Event::Closed(c)) => return Err(c.code.0),
                Some(_) => true,
                None => false,
            };
            pending.drain(..used);
            if !more {
                break;
            }
        }
    }
    Ok(messages)
}

/// A masked frame with RSV1 as given, as a client sends it.
fn client_frame(rsv1: bool, fin: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
    let key = [1, 2, 3, 4];
    let mut out = Vec::new();
    encode_header(&mut out, fin, op, Some(key), payload.len() as u64);
    if rsv1 {
        out[0] |= 0x40;
    }
    let at = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[at..], key, 0);
    out
}

fn text(bytes: &[u8]) -> (MessageKind, Vec<u8>) {
    (MessageKind::Text, bytes.to_vec())
}

// --- negotiation, server side (§7.1) ---------------------------------------

#[test]
fn a_server_without_deflate_ignores_offers() {
    let (server, answer) = accepted(None, &["permessage-deflate"]);
    assert_eq!((server.deflate(), answer), (None, None));
}

#[test]
fn dedicated_mode_keeps_context_unless_asked() {
    let dedicated = DeflateConfig::default();
    assert_eq!(
        answer(dedicated.clone(), &["permessage-deflate"]).as_deref(),
        Some("permessage-deflate")
    );
    assert_eq!(
        answer(
            dedicated.clone(),
            &["permessage-deflate; server_no_context_takeover; server_max_window_bits=10"]
        )
        .as_deref(),
        Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=10")
    );
    let (server, answer) = accepted(
        Some(dedicated),
        &["permessage-deflate; client_no_context_takeover; client_max_window_bits"],
    );
    let params = server.deflate().copied().unwrap();
    assert!(params.client_no_context_takeover && !params.server_no_context_takeover);
    assert_eq!(params.client_max_window_bits, 12, "the default asks for 12");
    assert_eq!(
        answer.as_deref(),
        Some("permessage-deflate; client_no_context_takeover; client_max_window_bits=12")
    );
}

#[test]
fn shared_mode_adds_both_no_context_takeover_parameters() {
    // RFC 7692 §7.1.1.1 and §7.1.1.2 let a server include both unasked
    assert_eq!(
        answer(DeflateConfig::shared(), &["permessage-deflate"]).as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
}

#[test]
fn a_smaller_configured_window_is_asked_of_a_client_that_allows_it() {
    let config = DeflateConfig {
        window_bits: 10,
        client_window_bits: 11,
        ..DeflateConfig::default()
    };
    assert_eq!(
        answer(
            config.clone(),
            &["permessage-deflate; client_max_window_bits"]
        )
        .as_deref(),
        Some("permessage-deflate; client_max_window_bits=11")
    );
    // without the parameter in the offer the client's window is its own
    let (server, answer) = accepted(Some(config.clone()), &["permessage-deflate"]);
    assert_eq!(answer.as_deref(), Some("permessage-deflate"));
    let params = server.deflate().copied().unwrap();
    assert_eq!(
        (params.server_max_window_bits, params.client_max_window_bits),
        (10, 15)
    );
    // an offered value below ours stands, unanswered
    let (server, answer) = accepted(
        Some(config),
        &["permessage-deflate; client_max_window_bits=9"],
    );
    assert_eq!(answer.as_deref(), Some("permessage-deflate"));
    assert_eq!(server.deflate().unwrap().client_max_window_bits, 9);
}

#[test]
fn invalid_offers_are_declined_and_the_next_is_taken() {
    // §7.1: unknown or duplicated parameters and invalid values
    for bad in [
        "permessage-deflate; foo",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover=true",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=1a",
        "permessage-deflate; client_max_window_bits=0",
        "permessage-deflate; client_max_window_bits=\"16\"",
    ] {
        assert_eq!(answer(DeflateConfig::default(), &[bad]), None, "{bad}");
        let two = format!("{bad}, permessage-deflate; client_max_window_bits");
        assert_eq!(
            answer(DeflateConfig::default(), &[&two]).as_deref(),
            Some("permessage-deflate; client_max_window_bits=12"),
            "{two}"
        );
    }
    // a quoted value is a value (RFC 6455 §9.1 quoted-string)
    assert_eq!(
        answer(
            DeflateConfig::default(),
            &["permessage-deflate; server_max_window_bits=\"11\""]
        )
        .as_deref(),
        Some("permessage-deflate; server_max_window_bits=11")
    );
}

#[test]
fn an_offer_limiting_the_server_to_8_bits_is_declined() {
    // zlib turns a raw window of 8 into 9, which such a client could not read
    let offers = ["permessage-deflate; server_max_window_bits=8, permessage-deflate"];
    assert_eq!(
        answer(DeflateConfig::default(), &offers).as_deref(),
        Some("permessage-deflate")
    );
    let only = ["permessage-deflate; server_max_window_bits=8"];
    assert_eq!(answer(DeflateConfig::default(), &only), None);
}

#[test]
fn other_extensions_are_ignored() {
    assert_eq!(
        answer(
            DeflateConfig::default(),
            &["x-webkit-deflate-frame", "permessage-deflate"]
        )
        .as_deref(),
        Some("permessage-deflate")
    );
}

// --- negotiation, client side (§7.1) ---------------------------------------

#[test]
fn the_client_offers_no_context_takeover_and_window_bits() {
    let now = Instant::now();
    let url = WsUrl::parse("ws://a/").unwrap();
    let mut out = Vec::new();
    let config = server_config(Some(DeflateConfig::default()));
    Connection::client(now, config, &url, Vec::new(), &[], &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(
        "\r\nSec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; client_max_window_bits\r\n"
    ));
    assert!(text.ends_with("\r\n\r\n"));
}

#[test]
fn the_client_takes_a_valid_answer() {
    let conn = client("permessage-deflate; server_no_context_takeover; client_max_window_bits=10");
    let params = conn.deflate().copied().unwrap();
    assert!(params.server_no_context_takeover && params.client_no_context_takeover);
    assert_eq!(params.client_max_window_bits, 10);
    let (conn, event) = client_with(None, true);
    assert!(matches!(event, Some(Event::Connected { .. })));
    assert_eq!(conn.deflate(), None, "declined: no compression");
}

#[test]
fn the_client_fails_on_a_bad_answer() {
    for (bad, offered) in [
        ("permessage-deflate", false),
        ("x-other", true),
        ("permessage-deflate, permessage-deflate", true),
        ("permessage-deflate; foo", true),
        ("permessage-deflate; client_max_window_bits", true),
        ("permessage-deflate; server_max_window_bits=16", true),
        (
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            true,
        ),
    ] {
        let (_, event) = client_with(Some(bad), offered);
        assert!(
            matches!(event, Some(Event::ConnectFailed(_))),
            "{bad}: {event:?}"
        );
    }
}

// --- RFC 7692 §7.2.3's examples --------------------------------------------

#[test]
fn rfc_examples_are_received() {
    let hello = Ok(vec![text(b"Hello")]);
    // §7.2.3.1 a message compressed in one frame
    let mut c = client("permessage-deflate");
    let one = [&[0xc1, 0x07][..], &HELLO].concat();
    assert_eq!(receive(&mut c, &one), hello);
    // §7.2.3.2 the same message again, with the window of the first
    assert_eq!(
        receive(&mut c, &[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]),
        hello
    );
    // §7.2.3.1 fragmented: RSV1 on the first frame only
    let fragmented = [
        0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00,
    ];
    assert_eq!(receive(&mut c, &fragmented), hello);
    // §7.2.3.3 a stored (uncompressed) DEFLATE block
    let stored = [
        0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    assert_eq!(receive(&mut c, &stored), hello);
    // §7.2.3.4 BFINAL set; the tail we append is ignored
    let mut c = client("permessage-deflate");
    let last = [0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    assert_eq!(receive(&mut c, &last), hello);
    assert_eq!(receive(&mut c, &one), hello, "the stream starts again");
    // §7.2.3.5 two DEFLATE blocks in one message
    let two = [
        0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];
    assert_eq!(receive(&mut c, &two), hello);
}

#[test]
fn rfc_examples_are_sent() {
    let mut out = Vec::new();
    let hello = Message::text("Hello");
    // with context takeover: §7.2.3.2's second frame reuses the first
    let (mut server, _) = accepted(Some(DeflateConfig::default()), &["permessage-deflate"]);
    for _ in 0..2 {
        server
            .send_message_with(&hello, Compression::Always, &mut out)
            .unwrap();
    }
    let takeover = [
        &[0xc1, 0x07][..],
        &HELLO,
        &[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00],
    ];
    assert_eq!(out, takeover.concat());
    // without: every message starts afresh
    out.clear();
    let (mut server, _) = accepted(Some(DeflateConfig::shared()), &["permessage-deflate"]);
    for _ in 0..2 {
        server
            .send_message_with(&hello, Compression::Always, &mut out)
            .unwrap();
    }
    assert_eq!(
        out,
        [&[0xc1, 0x07][..], &HELLO, &[0xc1, 0x07], &HELLO].concat()
    );
}

#[test]
fn small_messages_and_never_go_uncompressed() {
    let (mut server, _) = accepted(Some(DeflateConfig::default()), &["permessage-deflate"]);
    let mut out = Vec::new();
    server.send_text("Hello", &mut out).unwrap(); // under the 128-byte threshold
    assert_eq!(out, b"\x81\x05Hello");
    assert!(!server.would_compress(127) && server.would_compress(128));
    out.clear();
    let big = Message::text("a".repeat(1000));
    server
        .send_message_with(&big, Compression::Never, &mut out)
        .unwrap();
    assert_eq!(out[0], 0x81);
    out.clear();
    server.send_message(&big, &mut out).unwrap();
    assert_eq!(out[0], 0xc1, "RSV1 set");
    assert!(out.len() < 100, "1000 a's compress");
}

// --- what the receiver enforces --------------------------------------------

#[test]
fn rsv1_is_refused_where_it_has_no_meaning() {
    let (mut server, _) = accepted(Some(DeflateConfig::default()), &["permessage-deflate"]);
    // §6.1: only the first frame of a message carries RSV1
    let first = client_frame(true, false, OpCode::Text, &HELLO[..3]);
    let cont = client_frame(true, true, OpCode::Continuation, &HELLO[3..]);
    assert_eq!(receive(&mut server, &[first, cont].concat()), Err(1002));
    // §6: never on a control frame
    let (mut server, _) = accepted(Some(DeflateConfig::default()), &["permessage-deflate"]);
    assert_eq!(
        receive(&mut server, &client_frame(true, true, OpCode::Ping, b"")),
        Err(1002)
    );
    // and without the extension, RSV1 is reserved (RFC 6455 §5.2)
    let (mut server, _) = accepted(None, &["permessage-deflate"]);
    assert_eq!(
        receive(&mut server, &client_frame(true, true, OpCode::Text, &HELLO)),
        Err(1002)
    );
}

#[test]
fn an_uncompressed_message_passes_through() {
    let (mut server, _) = accepted(Some(DeflateConfig::default()), &["permessage-deflate"]);
    let frame = client_frame(false, true, OpCode::Text, b"plain");
    assert_eq!(receive(&mut server, &frame), Ok(vec![text(b"plain")]));
}

#[test]
fn invalid_deflate_data_fails_with_1007() {
    let (mut server, _) = accepted(Some(DeflateConfig::default()), &["permessage-deflate"]);
    // BTYPE 11 is reserved (RFC 1951 §3.2.3)
    let frame = client_frame(true, true, OpCode::Binary, &[0xff, 0xff, 0xff]);
    assert_eq!(receive(&mut server, &frame), Err(1007));
}

#[test]
fn inflated_text_is_checked_as_utf8() {
    let (mut sender, _) = accepted(Some(DeflateConfig::shared()), &["permessage-deflate"]);
    let mut out = Vec::new();
    let bad = Message::binary(vec![0xff; 300]);
    sender.send_message(&bad, &mut out).unwrap();
    out[0] = 0xc1; // the same compressed bytes, sent as text
    let mut c = client("permessage-deflate; server_no_context_takeover");
    assert_eq!(receive(&mut c, &out), Err(1007));
}

/// A compressed message of `len` zeros, as a server with `config` sends it.
fn zeros(len: usize) -> Vec<u8> {
    let (mut sender, _) = accepted(Some(DeflateConfig::shared()), &["permessage-deflate"]);
    let mut out = Vec::new();
    sender
        .send_message(&Message::binary(vec![0; len]), &mut out)
        .unwrap();
    out
}

#[test]
fn a_decompression_bomb_stops_at_the_message_limit() {
    // 64 MiB of zeros compress to about 64 KiB; the limit is 1 MiB
    let bomb = zeros(64 << 20);
    let (header, _) = decode_header(&bomb, 4).unwrap().unwrap();
    assert!(header.len < 128 << 10, "{} bytes on the wire", header.len);
    let mut c = client("permessage-deflate; server_no_context_takeover");
    c.config = Arc::new(ProtocolConfig {
        max_message_size: 1 << 20,
        deflate: Some(DeflateConfig::default()),
        ..ProtocolConfig::default()
    });
    assert_eq!(receive(&mut c, &bomb), Err(CloseCode::MESSAGE_TOO_BIG.0));
    // within the limit it arrives whole, one byte at a time as well
    let mut c = client("permessage-deflate; server_no_context_takeover");
    let fits = zeros(1 << 20);
    let got = receive_bytewise(&mut c, &fits).unwrap();
    assert!(got == vec![(MessageKind::Binary, vec![0; 1 << 20])]);
}

// --- shared frames ----------------------------------------------------------

#[test]
fn shared_mode_connections_share_one_compressed_frame() {
    let (a, _) = accepted(Some(DeflateConfig::shared()), &["permessage-deflate"]);
    let (b, _) = accepted(Some(DeflateConfig::shared()), &["permessage-deflate"]);
    let small = ["permessage-deflate; server_max_window_bits=9"];
    let (c, _) = accepted(Some(DeflateConfig::shared()), &small);
    let encoding = a.shared_encoding().unwrap();
    assert_eq!(b.shared_encoding(), Some(encoding));
    assert_ne!(c.shared_encoding(), Some(encoding), "another window");
    let json = "{\"user\":\"alice\",\"text\":\"hello hello hello\"}".repeat(20);
    let frame = SharedFrame::message(encoding, &Message::text(json.as_str()));
    assert_eq!(frame[0], 0xc1);
    let mut client = client("permessage-deflate; server_no_context_takeover");
    assert_eq!(
        receive(&mut client, &frame),
        Ok(vec![text(json.as_bytes())])
    );
    // the parts of a text frame are compressed in sequence
    let parts = SharedFrame::text(encoding, &[&json[..100], &json[100..]]);
    assert_eq!(&parts[..], &frame[..]);
}

#[test]
fn context_takeover_connections_take_no_shared_frames() {
    let (a, _) = accepted(Some(DeflateConfig::default()), &["permessage-deflate"]);
    assert_eq!(a.shared_encoding(), None);
    let (plain, _) = accepted(None, &[]);
    let plain = plain.shared_encoding().unwrap();
    let (shared, _) = accepted(Some(DeflateConfig::shared()), &["permessage-deflate"]);
    assert_ne!(shared.shared_encoding(), Some(plain));
    let frame: FrameEncoding = plain;
    assert_eq!(SharedFrame::message(frame, &Message::text("é"))[0], 0x81);
}

// --- both ends of the engine ------------------------------------------------

#[test]
fn client_and_server_round_trip_every_mode() {
    for mode in [DeflateConfig::default(), DeflateConfig::shared()] {
        let (mut server, answer) = accepted(
            Some(mode),
            &["permessage-deflate; client_no_context_takeover; client_max_window_bits"],
        );
        let mut client = client(&answer.unwrap());
        let mut seed = 7u32;
        for round in 0..40 {
            let len = [0, 1, 127, 128, 1000, 70_000][round % 6];
            let payload: Vec<u8> = (0..len)
                .map(|i| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    if round % 2 == 0 {
                        b"abcab"[i % 5]
                    } else {
                        (seed >> 16) as u8
                    }
                })
                .collect();
            let message = Message::binary(payload.clone());
            let mut wire = Vec::new();
            client.send_message(&message, &mut wire).unwrap();
            let got = receive(&mut server, &wire).unwrap();
            assert_eq!(got, vec![(MessageKind::Binary, payload.clone())]);
            wire.clear();
            server.send_message(&message, &mut wire).unwrap();
            assert_eq!(receive(&mut client, &wire).unwrap(), got);
        }
    }
}

#[test]
fn shared_mode_holds_no_zlib_state_between_messages() {
    let (mut server, _) = accepted(Some(DeflateConfig::shared()), &["permessage-deflate"]);
    let mut sender =
        client("permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    let mut wire = Vec::new();
    let message = Message::text("x".repeat(5000));
    sender.send_message(&message, &mut wire).unwrap();
    let half = wire.len() / 2;
    assert_eq!(receive(&mut server, &wire[..half]), Ok(vec![]));
    assert!(
        server.deflate.as_ref().unwrap().holds_state(),
        "mid-message"
    );
    let rest = receive(&mut server, &wire[half..]);
    assert_eq!(rest.map(|m| m.len()), Ok(1));
    assert!(!server.deflate.as_ref().unwrap().holds_state());
    let mut out = Vec::new();
    server.send_message(&message, &mut out).unwrap();
    assert!(!server.deflate.as_ref().unwrap().holds_state());
}

#[test]
fn a_compressed_frame_is_bounded_by_the_message_limit_not_the_frame_limit() {
    // random bytes grow a little when deflated: a 4 KiB message becomes a
    // frame a few bytes over a 4 KiB frame limit, and must still arrive
    let mut seed = 1u32;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as u8
        })
        .collect();
    let (mut sender, _) = accepted(Some(DeflateConfig::shared()), &["permessage-deflate"]);
    let mut wire = Vec::new();
    sender
        .send_message_with(
            &Message::binary(noise.clone()),
            Compression::Always,
            &mut wire,
        )
        .unwrap();
    let (header, _) = decode_header(&wire, 4).unwrap().unwrap();
    assert!(header.len > 4096, "{} bytes", header.len);
    let mut c = client("permessage-deflate; server_no_context_takeover");
    c.config = Arc::new(ProtocolConfig {
        max_frame_size: 4096,
        max_message_size: 4096,
        deflate: Some(DeflateConfig::default()),
        ..ProtocolConfig::default()
    });
    assert_eq!(
        receive(&mut c, &wire),
        Ok(vec![(MessageKind::Binary, noise)])
    );
}

#[test]
fn empty_messages_with_context_takeover_keep_the_stream_in_step() {
    // found by the `deflate` fuzz target: a sync flush right after another
    // writes nothing, and §7.2.1 then wants an empty stored block
    let (mut server, _) = accepted(Some(DeflateConfig::default()), &["permessage-deflate"]);
    let mut wire = Vec::new();
    let messages = ["", "", "hello hello", "", "hello hello hello"];
    for text in messages {
        server
            .send_message_with(&Message::text(text), Compression::Always, &mut wire)
            .unwrap();
    }
    let mut c = client("permessage-deflate");
    let expected: Vec<_> = messages.iter().map(|t| text(t.as_bytes())).collect();
    assert_eq!(receive(&mut c, &wire), Ok(expected));
}

#[test]
fn stored_blocks_end_with_the_empty_block_the_tail_completes() {
    for data in [&b""[..], b"Hello", &[7u8; 70_000][..]] {
        let mut payload = Vec::new();
        super::codec::stored_message(&[data], &mut payload);
        payload.extend_from_slice(&super::codec::TAIL);
        let mut inflater = super::zlib::Inflater::new(15).unwrap();
        let mut out = Vec::with_capacity(data.len() + 16);
        let (used, _) = inflater.decompress(&payload, &mut out).unwrap();
        assert_eq!((used, &out[..]), (payload.len(), data));
    }
}

#[test]
fn incompressible_data_from_a_small_compressor_fits_the_compressed_bound() {
    // found by the fuzzer: zlib at memLevel 1 grows random bytes by 3.9%
    let mut seed = 9u32;
    let noise: Vec<u8> = (0..65_505)
        .map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as u8
        })
        .collect();
    let small = DeflateConfig {
        window_bits: 9,
        mem_level: 1,
        ..DeflateConfig::default()
    };
    let (mut sender, _) = accepted(Some(small), &["permessage-deflate"]);
    let mut wire = Vec::new();
    sender
        .send_message_with(
            &Message::binary(noise.clone()),
            Compression::Always,
            &mut wire,
        )
        .unwrap();
    let mut c = client("permessage-deflate");
    c.config = Arc::new(ProtocolConfig {
        max_frame_size: 65_537,
        max_message_size: 65_537,
        deflate: Some(DeflateConfig::default()),
        ..ProtocolConfig::default()
    });
    assert_eq!(
        receive(&mut c, &wire),
        Ok(vec![(MessageKind::Binary, noise)])
    );
}

#[test]
fn the_first_fault_in_the_inflated_bytes_decides_the_code_however_split() {
    // found by the fuzzer: invalid UTF-8 early in a text message that also
    // inflates past the limit gave 1009 whole and 1007 in pieces
    let mut bad = vec![0xffu8];
    bad.extend(std::iter::repeat_n(b'a', 5000));
    let (mut sender, _) = accepted(Some(DeflateConfig::shared()), &["permessage-deflate"]);
    let mut wire = Vec::new();
    sender
        .send_message_with(&Message::binary(bad), Compression::Always, &mut wire)
        .unwrap();
    wire[0] = (wire[0] & 0xf0) | 0x01; // the same bytes, as text
    let limited = || {
        let mut c = client("permessage-deflate; server_no_context_takeover");
        c.config = Arc::new(ProtocolConfig {
            max_frame_size: 1000,
            max_message_size: 1000,
            deflate: Some(DeflateConfig::default()),
            ..ProtocolConfig::default()
        });
        c
    };
    assert_eq!(receive(&mut limited(), &wire), Err(1007));
    assert_eq!(receive_bytewise(&mut limited(), &wire), Err(1007));
}
