//! Tests of the connection state machine, in memory: a client and a server
//! engine fed each other's bytes with a simulated clock (quinn's `Pair`).

use super::frame::{encode_frame, encode_header};
use super::*;
use crate::config::ProtocolConfig;
use proptest::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// An event with owned data, easy to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Upgrade(String),
    Http(String),
    Rejected(u16),
    Connected(Option<String>),
    ConnectFailed,
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Closed(u16, CloseCause),
}

fn own(event: Event<'_>) -> Ev {
    match event {
        Event::Upgrade(r) => Ev::Upgrade(r.target.to_string()),
        Event::HttpRequest(r) => Ev::Http(r.target.to_string()),
        Event::Rejected(e) => Ev::Rejected(e.status()),
        Event::Connected { subprotocol } => Ev::Connected(subprotocol),
        Event::ConnectFailed(_) => Ev::ConnectFailed,
        Event::Message(m) => match m.kind() {
            MessageKind::Text => Ev::Text(m.as_text().unwrap().to_string()),
            MessageKind::Binary => Ev::Binary(m.into_data().into_owned()),
        },
        Event::Ping(p) => Ev::Ping(p.to_vec()),
        Event::Pong(p) => Ev::Pong(p.to_vec()),
        Event::Closed(c) => Ev::Closed(c.code.0, c.cause),
    }
}

/// Feeds `bytes` the way a reactor does: unconsumed bytes are kept and
/// presented again with what follows. Returns the events and the output.
struct Feeder {
    conn: Connection,
    pending: Vec<u8>,
    now: Instant,
}

impl Feeder {
    fn new(conn: Connection, now: Instant) -> Self {
        Feeder {
            conn,
            pending: Vec::new(),
            now,
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> (Vec<Ev>, Vec<u8>) {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut out = Vec::new();
        let mut buf = std::mem::take(&mut self.pending);
        let mut pos = 0;
        loop {
            let (used, event) = self.conn.handle_input(self.now, &mut buf[pos..], &mut out);
            pos += used;
            match event {
                Some(e) => events.push(own(e)),
                None => break,
            }
            if pos == buf.len() {
                // the reactor stops here; hold the engine to its word that
                // an empty input yields nothing, in every state reached
                let written = out.len();
                let (used, event) = self.conn.handle_input(self.now, &mut [], &mut out);
                assert_eq!((used, event.map(own)), (0, None));
                assert_eq!(out.len(), written, "output for an empty input");
                break;
            }
        }
        self.pending = buf.split_off(pos);
        (events, out)
    }
}

fn config() -> Arc<ProtocolConfig> {
    Arc::new(ProtocolConfig::default())
}

fn open_server(cfg: Arc<ProtocolConfig>) -> Feeder {
    let now = Instant::now();
    Feeder::new(Connection::open(now, cfg, Role::Server), now)
}

fn open_client() -> Feeder {
    let now = Instant::now();
    Feeder::new(Connection::open(now, config(), Role::Client), now)
}

/// A frame as a client sends it (masked).
fn masked(fin: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, fin, op, Some(KEY), payload);
    out
}

fn unmasked(fin: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, fin, op, None, payload);
    out
}

fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    [&code.to_be_bytes()[..], reason.as_bytes()].concat()
}

/// Decodes the frames a server wrote (unmasked): (opcode, payload).
fn frames(mut out: &[u8]) -> Vec<(OpCode, Vec<u8>)> {
    let mut frames = Vec::new();
    while !out.is_empty() {
        let (h, n) = frame::decode_header(out, 0).unwrap().unwrap();
        let mut payload = out[n..n + h.len as usize].to_vec();
        if let Some(k) = h.mask() {
            mask::apply_mask(&mut payload, k, 0);
        }
        frames.push((h.opcode, payload));
        out = &out[n + h.len as usize..];
    }
    frames
}

fn failed_with(events: &[Ev]) -> Option<u16> {
    match events.last() {
        Some(Ev::Closed(code, CloseCause::Failed(_))) => Some(*code),
        _ => None,
    }
}

/// The close frame's code in `out`, if the last frame is a close.
fn sent_close(out: &[u8]) -> Option<u16> {
    let (op, payload) = frames(out).pop()?;
    (op == OpCode::Close).then(|| u16::from_be_bytes([payload[0], payload[1]]))
}

fn assert_fails(input: &[u8], code: u16) {
    let mut s = open_server(config());
    let (events, out) = s.feed(input);
    assert_eq!(failed_with(&events), Some(code), "{events:?}");
    assert_eq!(sent_close(&out), Some(code));
    assert!(s.conn.is_closed());
}

#[test]
fn server_echoes_nothing_but_reports_a_masked_text_message() {
    let mut s = open_server(config());
    let (events, out) = s.feed(&masked(true, OpCode::Text, b"Hello"));
    assert_eq!(events, [Ev::Text("Hello".into())]);
    assert!(out.is_empty());
}

#[test]
fn server_fails_on_unmasked_frame() {
    assert_fails(&unmasked(true, OpCode::Text, b"Hello"), 1002);
}

#[test]
fn client_fails_on_masked_frame() {
    let mut c = open_client();
    let (events, out) = c.feed(&masked(true, OpCode::Text, b"Hello"));
    assert_eq!(failed_with(&events), Some(1002));
    assert_eq!(sent_close(&out), Some(1002));
}

#[test]
fn client_receives_unmasked_frames_and_masks_what_it_sends() {
    let mut c = open_client();
    let (events, _) = c.feed(&unmasked(true, OpCode::Binary, &[1, 2, 3]));
    assert_eq!(events, [Ev::Binary(vec![1, 2, 3])]);
    let mut out = Vec::new();
    c.conn.send_text("Hello", &mut out).unwrap();
    let (h, _) = frame::decode_header(&out, 0).unwrap().unwrap();
    assert!(h.mask().is_some());
    assert_eq!(frames(&out), [(OpCode::Text, b"Hello".to_vec())]);
}

#[test]
fn reserved_opcode_rsv_bits_and_bad_lengths_fail_with_1002() {
    let mut reserved = masked(true, OpCode::Binary, b"x");
    reserved[0] = 0x83;
    assert_fails(&reserved, 1002);
    let mut rsv = masked(true, OpCode::Binary, b"x");
    rsv[0] |= 0x40;
    assert_fails(&rsv, 1002);
    assert_fails(&[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0], 1002);
    assert_fails(&[0x82, 0xFE, 0, 5], 1002);
    assert_fails(&masked(false, OpCode::Ping, b""), 1002);
    assert_fails(&masked(true, OpCode::Ping, &[0; 126]), 1002);
}

#[test]
fn continuation_without_a_message_fails() {
    assert_fails(&masked(true, OpCode::Continuation, b"x"), 1002);
}

#[test]
fn new_data_frame_inside_a_fragmented_message_fails() {
    let input = [
        masked(false, OpCode::Text, b"a"),
        masked(true, OpCode::Text, b"b"),
    ]
    .concat();
    assert_fails(&input, 1002);
}

#[test]
fn fragments_are_reassembled_with_control_frames_between_them() {
    let input = [
        masked(false, OpCode::Text, b"Hel"),
        masked(true, OpCode::Ping, b"p1"),
        masked(false, OpCode::Continuation, b""),
        masked(true, OpCode::Pong, b"unsolicited"),
        masked(true, OpCode::Continuation, b"lo"),
    ]
    .concat();
    let mut s = open_server(config());
    let (events, out) = s.feed(&input);
    assert_eq!(
        events,
        [
            Ev::Ping(b"p1".to_vec()),
            Ev::Pong(b"unsolicited".to_vec()),
            Ev::Text("Hello".into())
        ]
    );
    assert_eq!(frames(&out), [(OpCode::Pong, b"p1".to_vec())]);
}

#[test]
fn ping_is_answered_with_the_same_payload() {
    let mut s = open_server(config());
    let payload = [7u8; 125];
    let (events, out) = s.feed(&masked(true, OpCode::Ping, &payload));
    assert_eq!(events, [Ev::Ping(payload.to_vec())]);
    assert_eq!(frames(&out), [(OpCode::Pong, payload.to_vec())]);
}

#[test]
fn frame_announcing_a_huge_length_fails_with_1009_before_any_payload() {
    let mut header = Vec::new();
    encode_header(&mut header, true, OpCode::Binary, Some(KEY), 1 << 40);
    assert_fails(&header, 1009);
    let small = Arc::new(ProtocolConfig {
        max_frame_size: 100,
        max_message_size: 1000,
        ..Default::default()
    });
    let mut s = open_server(small);
    let mut header = Vec::new();
    encode_header(&mut header, true, OpCode::Binary, Some(KEY), 101);
    let (events, _) = s.feed(&header);
    assert_eq!(failed_with(&events), Some(1009));
}

#[test]
fn message_over_the_limit_across_fragments_fails_with_1009() {
    let cfg = Arc::new(ProtocolConfig {
        max_frame_size: 100,
        max_message_size: 150,
        ..Default::default()
    });
    let mut s = open_server(cfg);
    let (events, _) = s.feed(&masked(false, OpCode::Binary, &[0; 100]));
    assert!(events.is_empty());
    let (events, out) = s.feed(&masked(true, OpCode::Continuation, &[0; 51])[..8]);
    assert_eq!(failed_with(&events), Some(1009));
    assert_eq!(sent_close(&out), Some(1009));
}

#[test]
fn too_many_fragments_fail_with_1009_even_when_empty() {
    let cfg = Arc::new(ProtocolConfig {
        max_fragments: 10,
        ..Default::default()
    });
    let mut s = open_server(cfg);
    let mut input = masked(false, OpCode::Binary, b"");
    for _ in 0..9 {
        input.extend(masked(false, OpCode::Continuation, b""));
    }
    let (events, _) = s.feed(&input);
    assert!(events.is_empty(), "ten fragments are allowed");
    let (events, _) = s.feed(&masked(false, OpCode::Continuation, b""));
    assert_eq!(failed_with(&events), Some(1009));
}

#[test]
fn invalid_utf8_in_an_unfinished_first_fragment_fails_at_once() {
    let mut s = open_server(config());
    let (events, out) = s.feed(&masked(false, OpCode::Text, b"ok \xff more"));
    assert_eq!(failed_with(&events), Some(1007));
    assert_eq!(sent_close(&out), Some(1007));
}

#[test]
fn invalid_utf8_in_a_partly_arrived_frame_fails_before_the_frame_ends() {
    let mut s = open_server(config());
    let frame = masked(
        true,
        OpCode::Text,
        b"abc\xf4\x90\x80\x80 and a long tail that has not arrived",
    );
    let (events, _) = s.feed(&frame[..6 + 5]);
    assert_eq!(failed_with(&events), Some(1007));
}

#[test]
fn code_point_split_across_fragments_is_valid() {
    let euro = "€".as_bytes();
    let input = [
        masked(false, OpCode::Text, &euro[..1]),
        masked(false, OpCode::Continuation, &euro[1..2]),
        masked(true, OpCode::Continuation, &euro[2..]),
    ]
    .concat();
    let mut s = open_server(config());
    assert_eq!(s.feed(&input).0, [Ev::Text("€".into())]);
}

#[test]
fn text_ending_inside_a_code_point_fails_with_1007() {
    let euro = "€".as_bytes();
    let input = [
        masked(false, OpCode::Text, &euro[..2]),
        masked(true, OpCode::Continuation, b""),
    ]
    .concat();
    assert_fails(&input, 1007);
    assert_fails(&masked(true, OpCode::Text, &euro[..2]), 1007);
}

#[test]
fn events_before_an_error_come_out_before_the_close() {
    let input = [
        masked(true, OpCode::Text, b"first"),
        unmasked(true, OpCode::Text, b"bad"),
    ]
    .concat();
    let mut s = open_server(config());
    let mut out = Vec::new();
    let mut buf = input.clone();
    let (used, event) = s.conn.handle_input(s.now, &mut buf, &mut out);
    assert_eq!(own(event.unwrap()), Ev::Text("first".into()));
    // the application echoes before the engine sees the bad frame
    s.conn.send_text("first", &mut out).unwrap();
    let (_, event) = s.conn.handle_input(s.now, &mut buf[used..], &mut out);
    assert_eq!(failed_with(&[own(event.unwrap())]), Some(1002));
    let sent = frames(&out);
    assert_eq!(sent[0], (OpCode::Text, b"first".to_vec()));
    assert_eq!(sent[1].0, OpCode::Close);
}

#[test]
fn peer_close_is_echoed_and_later_data_ignored() {
    let mut s = open_server(config());
    let input = [
        masked(true, OpCode::Close, &close_payload(4000, "bye")),
        masked(true, OpCode::Text, b"after close"),
    ]
    .concat();
    let (events, out) = s.feed(&input);
    assert_eq!(events, [Ev::Closed(4000, CloseCause::Peer)]);
    assert_eq!(sent_close(&out), Some(4000));
    assert_eq!(s.conn.state(), State::Closed);
    assert!(
        s.pending.is_empty(),
        "input after close is consumed and dropped"
    );
    let mut more = Vec::new();
    assert_eq!(
        s.conn.send_text("x", &mut more),
        Err(UsageError::AlreadyClosing)
    );
    assert!(more.is_empty());
}

#[test]
fn empty_close_is_answered_with_1000() {
    let mut s = open_server(config());
    let (events, out) = s.feed(&masked(true, OpCode::Close, b""));
    assert_eq!(events, [Ev::Closed(1005, CloseCause::Peer)]);
    assert_eq!(sent_close(&out), Some(1000));
}

#[test]
fn bad_close_payloads_fail_with_the_right_code() {
    assert_fails(&masked(true, OpCode::Close, &[3]), 1002);
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 2999, 5000] {
        assert_fails(&masked(true, OpCode::Close, &close_payload(code, "")), 1002);
    }
    assert_fails(&masked(true, OpCode::Close, &[0x03, 0xe8, 0xff]), 1007);
}

#[test]
fn after_our_close_data_is_discarded_until_the_peers_close() {
    let mut s = open_server(config());
    let mut out = Vec::new();
    s.conn
        .close(s.now, CloseCode::GOING_AWAY, "shutdown", &mut out)
        .unwrap();
    assert_eq!(s.conn.state(), State::Closing);
    assert_eq!(
        frames(&out),
        [(OpCode::Close, close_payload(1001, "shutdown"))]
    );
    let input = [
        masked(true, OpCode::Text, b"late"),
        masked(false, OpCode::Binary, b"late fragment"),
        masked(true, OpCode::Ping, b"no pong now"),
        masked(true, OpCode::Close, &close_payload(1001, "")),
    ]
    .concat();
    let (events, out) = s.feed(&input);
    assert_eq!(
        events,
        [
            Ev::Ping(b"no pong now".to_vec()),
            Ev::Closed(1001, CloseCause::Local)
        ]
    );
    assert!(out.is_empty(), "nothing is sent after our close");
}

#[test]
fn wrong_calls_are_usage_errors_not_panics() {
    let now = Instant::now();
    let mut out = Vec::new();
    let mut connecting = Connection::server(now, config());
    assert_eq!(
        connecting.send_text("x", &mut out),
        Err(UsageError::NotOpen)
    );
    assert_eq!(
        connecting.accept(&mut out),
        Err(UsageError::NoPendingRequest)
    );
    let mut s = open_server(config());
    assert_eq!(
        s.conn.send_ping(&[0; 126], &mut out),
        Err(UsageError::ControlPayloadTooLong)
    );
    assert_eq!(
        s.conn.close(now, CloseCode::NO_STATUS, "", &mut out),
        Err(UsageError::InvalidCloseCode(1005))
    );
    assert_eq!(
        s.conn
            .close(now, CloseCode::NORMAL, &"x".repeat(124), &mut out),
        Err(UsageError::CloseReasonTooLong)
    );
    assert!(out.is_empty());
    s.conn.close(now, CloseCode::NORMAL, "", &mut out).unwrap();
    assert_eq!(
        s.conn.close(now, CloseCode::NORMAL, "", &mut out),
        Err(UsageError::AlreadyClosing)
    );
    assert_eq!(
        s.conn.send_binary(b"x", &mut out),
        Err(UsageError::AlreadyClosing)
    );
}

#[test]
fn eof_reports_an_abnormal_close_once() {
    let mut s = open_server(config());
    let event = s.conn.handle_eof(s.now).map(own);
    assert_eq!(event, Some(Ev::Closed(1006, CloseCause::Eof)));
    assert_eq!(s.conn.handle_eof(s.now).map(own), None);
}

#[test]
fn keepalive_ping_then_pong_timeout_fails_with_1011() {
    let mut s = open_server(config());
    let start = s.now;
    let mut out = Vec::new();
    assert_eq!(s.conn.poll_timeout(), Some(start + Duration::from_secs(30)));
    assert!(s
        .conn
        .handle_timeout(start + Duration::from_secs(29), &mut out)
        .is_none());
    assert!(out.is_empty(), "early call does nothing");
    let t1 = start + Duration::from_secs(30);
    assert!(s.conn.handle_timeout(t1, &mut out).is_none());
    assert_eq!(frames(&out), [(OpCode::Ping, vec![])]);
    assert_eq!(s.conn.poll_timeout(), Some(t1 + Duration::from_secs(30)));
    out.clear();
    let event = s
        .conn
        .handle_timeout(t1 + Duration::from_secs(30), &mut out)
        .map(own);
    assert_eq!(event, Some(Ev::Closed(1011, CloseCause::PingTimeout)));
    assert_eq!(sent_close(&out), Some(1011));
}

#[test]
fn traffic_postpones_the_keepalive_ping_without_timer_work() {
    let mut s = open_server(config());
    let start = s.now;
    s.now = start + Duration::from_secs(20);
    s.feed(&masked(true, OpCode::Text, b"hi"));
    let mut out = Vec::new();
    assert!(s
        .conn
        .handle_timeout(start + Duration::from_secs(30), &mut out)
        .is_none());
    assert!(out.is_empty());
    assert_eq!(s.conn.poll_timeout(), Some(start + Duration::from_secs(50)));
}

#[test]
fn any_input_answers_a_keepalive_ping() {
    let mut s = open_server(config());
    let t1 = s.now + Duration::from_secs(30);
    let mut out = Vec::new();
    s.conn.handle_timeout(t1, &mut out);
    s.now = t1 + Duration::from_secs(1);
    s.feed(&masked(true, OpCode::Pong, b""));
    assert_eq!(s.conn.poll_timeout(), Some(s.now + Duration::from_secs(30)));
}

#[test]
fn unanswered_close_times_out() {
    let mut s = open_server(config());
    let mut out = Vec::new();
    s.conn
        .close(s.now, CloseCode::NORMAL, "", &mut out)
        .unwrap();
    let due = s.now + Duration::from_secs(5);
    assert_eq!(s.conn.poll_timeout(), Some(due));
    let event = s.conn.handle_timeout(due, &mut out).map(own);
    assert_eq!(event, Some(Ev::Closed(1006, CloseCause::CloseTimeout)));
    assert_eq!(s.conn.poll_timeout(), None);
}

/// A client and a server engine talking through memory.
fn pair(subprotocols: &[&str]) -> (Feeder, Feeder) {
    let now = Instant::now();
    let server_cfg = Arc::new(ProtocolConfig {
        subprotocols: subprotocols.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    });
    let url = WsUrl::parse("ws://localhost:9001/chat").unwrap();
    let mut request = Vec::new();
    let offered = vec!["chat".to_string()];
    let client = Connection::client(now, config(), &url, offered, &[], &mut request);
    let mut client = Feeder::new(client, now);
    let mut server = Feeder::new(Connection::server(now, server_cfg), now);
    let (events, _) = server.feed(&request);
    assert_eq!(events, [Ev::Upgrade("/chat".into())]);
    let mut response = Vec::new();
    server.conn.accept(&mut response).unwrap();
    let expected = subprotocols.contains(&"chat").then(|| "chat".to_string());
    assert_eq!(client.feed(&response).0, [Ev::Connected(expected)]);
    (client, server)
}

#[test]
fn client_and_server_exchange_messages_and_close_cleanly() {
    let (mut client, mut server) = pair(&["chat"]);
    let mut wire = Vec::new();
    client.conn.send_text("hello server", &mut wire).unwrap();
    client.conn.send_binary(&[0u8; 70_000], &mut wire).unwrap();
    let (events, _) = server.feed(&wire);
    assert_eq!(
        events,
        [Ev::Text("hello server".into()), Ev::Binary(vec![0; 70_000])]
    );
    let mut back = Vec::new();
    server.conn.send_text("hello client", &mut back).unwrap();
    server
        .conn
        .close(server.now, CloseCode::NORMAL, "done", &mut back)
        .unwrap();
    let (events, reply) = client.feed(&back);
    assert_eq!(
        events,
        [
            Ev::Text("hello client".into()),
            Ev::Closed(1000, CloseCause::Peer)
        ]
    );
    let (events, _) = server.feed(&reply);
    assert_eq!(events, [Ev::Closed(1000, CloseCause::Local)]);
    assert!(client.conn.is_closed() && server.conn.is_closed());
}

#[test]
fn client_refuses_a_response_that_is_not_an_upgrade() {
    let now = Instant::now();
    let url = WsUrl::parse("ws://localhost/").unwrap();
    let mut out = Vec::new();
    let conn = Connection::client(now, config(), &url, vec![], &[], &mut out);
    let mut client = Feeder::new(conn, now);
    let (events, _) = client.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(events, [Ev::ConnectFailed]);
    assert!(client.conn.is_closed());
}

/// One frame of a generated sequence.
#[derive(Debug, Clone)]
struct GenFrame {
    op: OpCode,
    fin: bool,
    payload: Vec<u8>,
}

/// A valid sequence of messages: each either whole or fragmented, with
/// control frames between fragments.
fn message_sequence() -> impl Strategy<Value = Vec<GenFrame>> {
    let message = (
        any::<bool>(),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..4),
        proptest::collection::vec(0..125usize, 0..3),
    );
    proptest::collection::vec(message, 0..6).prop_map(|messages| {
        let mut frames = Vec::new();
        for (binary, pieces, pings) in messages {
            let n = pieces.len();
            for (i, piece) in pieces.into_iter().enumerate() {
                let op = match (i, binary) {
                    (0, true) => OpCode::Binary,
                    (0, false) => OpCode::Text,
                    _ => OpCode::Continuation,
                };
                let payload = if binary {
                    piece
                } else {
                    String::from_utf8_lossy(&piece).into_owned().into_bytes()
                };
                frames.push(GenFrame {
                    op,
                    fin: i + 1 == n,
                    payload,
                });
                if let Some(&len) = pings.get(i) {
                    frames.push(GenFrame {
                        op: OpCode::Ping,
                        fin: true,
                        payload: vec![0x55; len],
                    });
                }
            }
        }
        frames
    })
}

fn expected_events(frames: &[GenFrame]) -> Vec<Ev> {
    let mut events = Vec::new();
    let mut current: Option<(OpCode, Vec<u8>)> = None;
    for f in frames {
        if f.op == OpCode::Ping {
            events.push(Ev::Ping(f.payload.clone()));
            continue;
        }
        let (op, data) = current.get_or_insert_with(|| (f.op, Vec::new()));
        data.extend_from_slice(&f.payload);
        if f.fin {
            let (op, data) = (*op, std::mem::take(data));
            current = None;
            events.push(match op {
                OpCode::Text => Ev::Text(String::from_utf8(data).unwrap()),
                _ => Ev::Binary(data),
            });
        }
    }
    events
}

proptest! {
    #[test]
    fn encoded_frame_sequences_decode_to_the_same_messages(frames in message_sequence(), key in any::<[u8; 4]>()) {
        let mut wire = Vec::new();
        for f in &frames {
            encode_frame(&mut wire, f.fin, f.op, Some(key), &f.payload);
        }
        let mut s = open_server(config());
        let (events, _) = s.feed(&wire);
        prop_assert_eq!(events, expected_events(&frames));
    }

    #[test]
    fn splitting_the_input_anywhere_gives_the_same_events(
        frames in message_sequence(),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..8),
    ) {
        let mut wire = Vec::new();
        for f in &frames {
            encode_frame(&mut wire, f.fin, f.op, Some(KEY), &f.payload);
        }
        let mut positions: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
        positions.sort_unstable();
        let mut s = open_server(config());
        let mut events = Vec::new();
        let mut last = 0;
        for p in positions.into_iter().chain([wire.len()]) {
            events.extend(s.feed(&wire[last..p]).0);
            last = p;
        }
        prop_assert_eq!(events, expected_events(&frames));
    }
}

#[test]
fn every_single_split_point_of_a_mixed_stream_gives_the_same_events() {
    let wire = [
        masked(true, OpCode::Text, b"Hello"),
        masked(false, OpCode::Binary, &[9; 200]),
        masked(true, OpCode::Ping, b"ping"),
        masked(true, OpCode::Continuation, &[8; 70_000]),
        masked(true, OpCode::Text, "κόσμε".as_bytes()),
    ]
    .concat();
    let mut whole = open_server(config());
    let expected = whole.feed(&wire).0;
    assert_eq!(expected.len(), 4);
    for split in (0..wire.len()).step_by(97).chain(0..300) {
        let mut s = open_server(config());
        let mut events = s.feed(&wire[..split]).0;
        events.extend(s.feed(&wire[split..]).0);
        assert_eq!(events, expected, "split at {split}");
    }
}

#[test]
fn sending_fragments_out_of_order_is_a_usage_error() {
    let mut s = open_server(config());
    let mut out = Vec::new();
    let frag = |e| UsageError::Fragmentation(e);
    assert_eq!(
        s.conn
            .send_fragment(OpCode::Continuation, true, b"x", &mut out),
        Err(frag("no fragmented message in progress"))
    );
    assert_eq!(
        s.conn.send_fragment(OpCode::Ping, true, b"x", &mut out),
        Err(frag("control frames cannot be fragmented"))
    );
    s.conn
        .send_fragment(OpCode::Text, false, "€".as_bytes().split_at(1).0, &mut out)
        .unwrap();
    assert_eq!(
        s.conn.send_binary(b"x", &mut out),
        Err(frag("a fragmented message is in progress"))
    );
    assert_eq!(
        s.conn.send_fragment(OpCode::Binary, false, b"x", &mut out),
        Err(frag("a fragmented message is in progress"))
    );
    // a ping between fragments is fine
    s.conn.send_ping(b"p", &mut out).unwrap();
    s.conn
        .send_fragment(
            OpCode::Continuation,
            true,
            "€".as_bytes().split_at(1).1,
            &mut out,
        )
        .unwrap();
    s.conn.send_text("after", &mut out).unwrap();
    let sent = frames(&out);
    assert_eq!(sent.len(), 4);
    assert_eq!(sent[1].0, OpCode::Ping);
}

#[test]
fn text_fragments_must_be_utf8_across_fragment_boundaries() {
    let mut s = open_server(config());
    let mut out = Vec::new();
    s.conn
        .send_fragment(OpCode::Text, false, b"ok", &mut out)
        .unwrap();
    assert_eq!(
        s.conn
            .send_fragment(OpCode::Continuation, false, b"\xff", &mut out),
        Err(UsageError::InvalidUtf8)
    );
    // a message cannot end inside a code point
    s.conn
        .send_fragment(OpCode::Continuation, false, &"€".as_bytes()[..2], &mut out)
        .unwrap();
    assert_eq!(
        s.conn
            .send_fragment(OpCode::Continuation, true, b"", &mut out),
        Err(UsageError::InvalidUtf8)
    );
}

#[test]
fn a_message_half_received_when_we_close_is_discarded() {
    let mut s = open_server(config());
    let frame = masked(true, OpCode::Binary, &[7; 1000]);
    let (events, _) = s.feed(&frame[..500]);
    assert!(events.is_empty());
    let mut out = Vec::new();
    s.conn
        .close(s.now, CloseCode::NORMAL, "", &mut out)
        .unwrap();
    let input = [
        &frame[500..],
        &masked(true, OpCode::Close, &close_payload(1000, ""))[..],
    ]
    .concat();
    let (events, _) = s.feed(&input);
    assert_eq!(events, [Ev::Closed(1000, CloseCause::Local)]);
}

#[test]
fn send_header_writes_what_send_would_without_the_payload() {
    let mut s = open_server(config());
    let data = vec![7u8; 70_000];
    let (mut whole, mut header) = (Vec::new(), Vec::new());
    s.conn.send_binary(&data, &mut whole).unwrap();
    assert_eq!(
        s.conn.send_header(MessageKind::Binary, &data, &mut header),
        Ok(None)
    );
    header.extend_from_slice(&data);
    assert_eq!(header, whole);

    // a client gets the key to mask with; masked, the frame decodes back
    let mut c = open_client();
    let mut out = Vec::new();
    let key = c
        .conn
        .send_header(MessageKind::Text, "héllo".as_bytes(), &mut out)
        .unwrap()
        .expect("a client masks");
    let mut payload = "héllo".as_bytes().to_vec();
    mask::apply_mask(&mut payload, key, 0);
    out.extend_from_slice(&payload);
    assert_eq!(
        frames(&out),
        vec![(OpCode::Text, "héllo".as_bytes().to_vec())]
    );
}

#[test]
fn send_header_refuses_what_send_refuses() {
    let mut s = open_server(config());
    let mut out = Vec::new();
    assert_eq!(
        s.conn.send_header(MessageKind::Text, &[0xff], &mut out),
        Err(UsageError::InvalidUtf8)
    );
    s.conn
        .send_fragment(OpCode::Binary, false, b"x", &mut out)
        .unwrap();
    out.clear();
    assert!(matches!(
        s.conn.send_header(MessageKind::Binary, b"y", &mut out),
        Err(UsageError::Fragmentation(_))
    ));
    s.conn
        .send_fragment(OpCode::Continuation, true, b"z", &mut out)
        .unwrap();
    s.conn
        .close(s.now, CloseCode::NORMAL, "", &mut out)
        .unwrap();
    out.clear();
    assert_eq!(
        s.conn.send_header(MessageKind::Binary, b"y", &mut out),
        Err(UsageError::AlreadyClosing)
    );
    assert!(out.is_empty(), "nothing is written when refused");
}

/// One step of a connection's life, for the timer-phase property.
#[derive(Debug, Clone)]
enum LifeStep {
    Wait(u64),
    Message,
    Ping,
    PeerClose,
    Timeout,
    LocalClose,
    Eof,
}

fn life_step() -> impl Strategy<Value = LifeStep> {
    prop_oneof![
        4 => (0u64..40).prop_map(LifeStep::Wait),
        3 => Just(LifeStep::Message),
        1 => Just(LifeStep::Ping),
        1 => Just(LifeStep::PeerClose),
        4 => Just(LifeStep::Timeout),
        1 => Just(LifeStep::LocalClose),
        1 => Just(LifeStep::Eof),
    ]
}

/// The order in which a deadline comes: any instant before "never".
fn deadline_order(deadline: Option<Instant>) -> (bool, Option<Instant>) {
    (deadline.is_none(), deadline)
}

proptest! {
    /// The reactor skips `poll_timeout` while `timer_phase` is unchanged
    /// (reactor/io.rs `settle`): that is only sound if, within a phase, the
    /// deadline never comes earlier.
    #[test]
    fn the_deadline_never_comes_earlier_within_a_timer_phase(
        steps in proptest::collection::vec(life_step(), 1..40),
        handshake_first in any::<bool>(), // a server still waiting for its request
        ping_interval in proptest::option::of(1u64..40),
        pong_timeout in 1u64..60,
    ) {
        let cfg = Arc::new(ProtocolConfig {
            ping_interval: ping_interval.map(Duration::from_secs),
            pong_timeout: Duration::from_secs(pong_timeout),
            ..ProtocolConfig::default()
        });
        let mut s = if handshake_first {
            let now = Instant::now();
            Feeder::new(Connection::server(now, cfg), now)
        } else {
            open_server(cfg)
        };
        let mut out = Vec::new();
        for step in steps {
            let phase = s.conn.timer_phase();
            let before = s.conn.poll_timeout();
            match step {
                LifeStep::Wait(secs) => s.now += Duration::from_secs(secs),
                LifeStep::Message => drop(s.feed(&masked(true, OpCode::Binary, b"m"))),
                LifeStep::Ping => drop(s.feed(&masked(true, OpCode::Ping, b"p"))),
                LifeStep::PeerClose => drop(s.feed(&masked(true, OpCode::Close, &close_payload(1000, "")))),
                LifeStep::Timeout => drop(s.conn.handle_timeout(s.now, &mut out)),
                LifeStep::LocalClose => drop(s.conn.close(s.now, CloseCode::NORMAL, "", &mut out)),
                LifeStep::Eof => drop(s.conn.handle_eof(s.now)),
            }
            if s.conn.timer_phase() == phase {
                let after = s.conn.poll_timeout();
                prop_assert!(
                    deadline_order(after) >= deadline_order(before),
                    "{:?} -> {:?} in phase {}", before, after, phase
                );
            }
        }
    }
}
