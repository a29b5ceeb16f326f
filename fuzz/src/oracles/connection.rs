//! The `server_connection` and `client_connection` oracles: one run of
//! checks over an open connection, for either role.

use super::driver::Driver;
use super::handshake::start_client;
use super::heap::HeapMeter;
use super::{
    expect_one_frame, find, for_each_chunk, small_config, Spec, MAX_UNCONSUMED_OPEN, RFC_ACCEPT,
    RFC_KEY, RFC_REQUEST,
};
use edgews::protocol::accept::accept_key;
use edgews::protocol::{CloseCode, Connection, Event, OpCode, Role, State};
use std::sync::Arc;
use std::time::Instant;

/// Flags of the connection oracles (in the chunking prefix).
const FLAG_END_WITH_TIMERS: u8 = 0x01;
const FLAG_ECHO: u8 = 0x02;
const FLAG_CLOSE_AFTER_FIRST_CHUNK: u8 = 0x04;

/// A server, past a valid handshake (the RFC key), fed arbitrary bytes in
/// chunks cut by the prefix, under [`small_config`]. Flag 0x01 ends with the
/// keep-alive timers instead of EOF; 0x02 echoes every message back; 0x04
/// makes the application close (1000) after the first chunk.
///
/// Checks: no panic or endless loop; every event is consistent with the
/// state and with what was written (a pong per ping while open, a close
/// echo, a failure's close code); messages within `max_message_size`, text
/// in UTF-8; at most one `Closed` and nothing after it; at most a header and
/// a control frame left unconsumed; the engine's heap within the limits
/// (when [`CountingAlloc`] is installed); output bounded by input; the
/// output is a sequence of valid unmasked frames; and, unless the
/// application closes, the same events and output whether the input came
/// whole or in chunks.
///
/// [`CountingAlloc`]: super::CountingAlloc
pub fn server_connection(data: &[u8]) {
    connection(data, Role::Server);
}

/// [`server_connection`] for the client role: past a valid `101` computed
/// from the key the client sent; its output frames must be masked.
pub fn client_connection(data: &[u8]) {
    connection(data, Role::Client);
}

fn connection(data: &[u8], role: Role) {
    let spec = Spec::parse(data);
    let chunked = connection_run(&spec, spec.sizes, role);
    if !spec.sizes.is_empty() && !spec.flag(FLAG_CLOSE_AFTER_FIRST_CHUNK) {
        let whole = connection_run(&spec, &[], role);
        assert_eq!(whole, chunked, "chunking changed the events or the output");
    }
}

/// An open connection of `role`, with the handshake checked.
fn open_connection(role: Role, now: Instant) -> Driver {
    let config = small_config();
    let mut d = match role {
        Role::Server => {
            let conn = Connection::server(now, Arc::new(config));
            Driver::new(conn, now, Vec::new())
        }
        Role::Client => {
            let (conn, out, _) = start_client(config, now);
            Driver::new(conn, now, out)
        }
    };
    let answer = match role {
        Role::Server => RFC_REQUEST.to_string(),
        Role::Client => {
            let at = find(&d.out, b"Sec-WebSocket-Key: ").unwrap() + 19;
            let accept = accept_key(&d.out[at..at + 24]);
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                std::str::from_utf8(&accept).unwrap()
            )
        }
    };
    let mut outcome = None;
    d.pump(answer.as_bytes(), &mut |step, event| {
        assert!(outcome.is_none());
        outcome = Some(match event {
            Event::Upgrade(req) => {
                assert_eq!(req.header("sec-websocket-key"), Some(RFC_KEY.as_bytes()));
                assert_eq!(step.consumed.len(), answer.len());
                "upgrade"
            }
            Event::Connected { subprotocol: None } => "connected",
            other => panic!("handshake gave {other:?}"),
        });
    });
    assert!(d.pending.is_empty());
    if role == Role::Server {
        assert_eq!(outcome, Some("upgrade"));
        d.conn.accept(&mut d.out).expect("accept");
        let want = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {RFC_ACCEPT}\r\n\r\n");
        assert_eq!(d.out, want.as_bytes());
    } else {
        assert_eq!(outcome, Some("connected"));
    }
    assert_eq!(d.conn.state(), State::Open);
    d.out_start = d.out.len();
    d.fed = 0;
    d
}

fn connection_run(spec: &Spec<'_>, sizes: &[u8], role: Role) -> (u64, u64) {
    let now = Instant::now();
    let mut d = open_connection(role, now);
    d.echo = spec.flag(FLAG_ECHO);
    d.pending.reserve(MAX_UNCONSUMED_OPEN + 8192 * 2);
    d.out.reserve(4096);
    d.meter = Some(HeapMeter::start());
    let mut first = true;
    for_each_chunk(spec.body, sizes, |chunk| {
        let was_closed = d.closed;
        let out_before = d.out.len();
        d.pump(chunk, &mut |step, event| {
            Driver::open_event(step, event, role)
        });
        if was_closed {
            assert_eq!(d.out.len(), out_before, "closed engine wrote");
        }
        match d.conn.state() {
            State::Open | State::Closing => {
                assert!(!d.closed);
                assert!(
                    d.pending.len() <= MAX_UNCONSUMED_OPEN,
                    "{} bytes left unconsumed",
                    d.pending.len()
                );
            }
            State::Closed => assert!(d.closed, "closed without a Closed event"),
            State::Connecting => panic!("back to connecting"),
        }
        if first && spec.flag(FLAG_CLOSE_AFTER_FIRST_CHUNK) && d.conn.state() == State::Open {
            let before = d.out.len();
            d.conn
                .close(now, CloseCode::NORMAL, "bye", &mut d.out)
                .expect("close refused");
            let p = expect_one_frame(&d.out[before..], role, OpCode::Close, None);
            assert_eq!(p, b"\x03\xe8bye");
            assert_eq!(d.conn.state(), State::Closing);
        }
        first = false;
    });
    d.check_heap();
    d.meter = None;
    d.finish(role, spec.flag(FLAG_END_WITH_TIMERS))
}
