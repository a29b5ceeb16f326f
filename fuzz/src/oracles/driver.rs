//! A connection driven the way a reactor drives it: the [`Driver`] the
//! handshake, connection and roundtrip oracles feed the engine through,
//! with the checks that hold for every event once the connection is open.

use super::heap::HeapMeter;
use super::{check_output, close_code_of, expect_one_frame, ENGINE_HEAP_LIMIT, MAX_MESSAGE};
use edgews::protocol::{
    CloseCause, CloseCode, Connection, Event, MessageKind, OpCode, Role, State,
};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

/// Owned facts of one event, for differential comparison.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Seen {
    Upgrade,
    Http,
    Rejected(u16),
    Connected(Option<String>),
    ConnectFailed(String),
    Message(bool, Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Closed(u16, String, String),
}

/// A connection, its unconsumed input and its output, with the checks that
/// hold for every event once the connection is open.
pub(super) struct Driver {
    pub(super) conn: Connection,
    pub(super) now: Instant,
    pub(super) pending: Vec<u8>,
    pub(super) out: Vec<u8>,
    /// Where the frames start in `out` (after the handshake).
    pub(super) out_start: usize,
    /// Echo every message back, as the echo server does.
    pub(super) echo: bool,
    pub(super) closed: bool,
    pub(super) events: DefaultHasher,
    pub(super) fed: usize,
    pub(super) meter: Option<HeapMeter>,
}

impl Driver {
    pub(super) fn new(conn: Connection, now: Instant, out: Vec<u8>) -> Driver {
        Driver {
            conn,
            now,
            pending: Vec::new(),
            out,
            out_start: 0,
            echo: false,
            closed: false,
            events: DefaultHasher::new(),
            fed: 0,
            meter: None,
        }
    }

    /// Appends `chunk` to the unconsumed input and calls the engine until
    /// it returns no event, handing each event to `on_event`.
    pub(super) fn pump(
        &mut self,
        chunk: &[u8],
        on_event: &mut dyn FnMut(&mut Step<'_>, Event<'_>),
    ) {
        self.pending.extend_from_slice(chunk);
        self.fed += chunk.len();
        let mut pos = 0;
        let mut events = 0usize;
        let total = self.pending.len();
        loop {
            let state_before = self.conn.state();
            let out_before = self.out.len();
            let available = self.pending.len() - pos;
            let (used, event) =
                self.conn
                    .handle_input(self.now, &mut self.pending[pos..], &mut self.out);
            assert!(
                used <= available,
                "consumed {used} of {available} bytes of input"
            );
            let start = pos;
            pos += used;
            let Some(event) = event else { break };
            events += 1;
            assert!(
                events <= total + 1,
                "engine returns events without consuming input"
            );
            let mut step = Step {
                conn: &mut self.conn,
                out: &mut self.out,
                state_before,
                out_before,
                consumed: start..pos,
                closed: &mut self.closed,
                echo: self.echo,
                hash: &mut self.events,
            };
            on_event(&mut step, event);
        }
        self.pending.drain(..pos);
        if self.closed {
            assert!(
                self.pending.is_empty(),
                "closed engine left input unconsumed"
            );
        }
        // output is bounded by input: a pong is no longer than its ping (plus
        // the client's mask), and there is one close frame
        assert!(
            self.out.len() - self.out_start <= 3 * self.fed + 512 || self.echo,
            "engine wrote {} bytes for {} bytes of input",
            self.out.len() - self.out_start,
            self.fed
        );
        self.check_heap();
    }

    pub(super) fn check_heap(&self) {
        let Some(meter) = &self.meter else { return };
        if !HeapMeter::active() {
            return;
        }
        let ours = (self.pending.capacity() + self.out.capacity()) as isize;
        let live = meter.live() - ours;
        assert!(
            live <= ENGINE_HEAP_LIMIT,
            "engine holds {live} heap bytes (limit {ENGINE_HEAP_LIMIT})"
        );
        let peak = meter.peak() - ours;
        assert!(
            peak <= ENGINE_HEAP_LIMIT + MAX_MESSAGE as isize,
            "engine heap peaked at {peak} bytes"
        );
    }

    /// The checks after open, on each frame-level event.
    pub(super) fn open_event(step: &mut Step<'_>, event: Event<'_>, role: Role) {
        let added = step.out.len() - step.out_before;
        assert!(!*step.closed, "event after Closed: {event:?}");
        let seen = match event {
            Event::Message(m) => {
                assert!(
                    m.as_bytes().len() as u64 <= MAX_MESSAGE,
                    "message of {} bytes over the limit",
                    m.as_bytes().len()
                );
                if m.kind() == MessageKind::Text {
                    assert!(m.as_text().is_some(), "text message is not UTF-8");
                }
                assert_eq!(added, 0, "engine wrote while delivering a message");
                assert!(matches!(step.state_before, State::Open | State::Closing));
                if step.echo && step.conn.state() == State::Open {
                    let before = step.out.len();
                    step.conn
                        .send(m.kind(), m.as_bytes(), step.out)
                        .expect("echo of a received message refused");
                    let op = match m.kind() {
                        MessageKind::Text => OpCode::Text,
                        MessageKind::Binary => OpCode::Binary,
                    };
                    expect_one_frame(&step.out[before..], role, op, Some(m.as_bytes()));
                }
                Seen::Message(m.kind() == MessageKind::Text, m.into_data().into_owned())
            }
            Event::Ping(p) => {
                assert!(p.len() <= 125);
                if step.state_before == State::Open {
                    let written = &step.out[step.out_before..];
                    expect_one_frame(written, role, OpCode::Pong, Some(p));
                } else {
                    assert_eq!(added, 0, "pong after our close");
                }
                Seen::Ping(p.to_vec())
            }
            Event::Pong(p) => {
                assert!(p.len() <= 125);
                assert_eq!(added, 0, "engine wrote on a pong");
                Seen::Pong(p.to_vec())
            }
            Event::Closed(c) => {
                *step.closed = true;
                assert_eq!(step.conn.state(), State::Closed);
                assert!(step.conn.is_closed() && !step.conn.wants_read());
                let written = &step.out[step.out_before..];
                match &c.cause {
                    CloseCause::Peer => {
                        assert_eq!(step.state_before, State::Open);
                        assert!(c.code.is_valid_on_wire() || c.code == CloseCode::NO_STATUS);
                        let echo = if c.code == CloseCode::NO_STATUS {
                            CloseCode::NORMAL
                        } else {
                            c.code
                        };
                        let p = expect_one_frame(written, role, OpCode::Close, None);
                        assert_eq!(close_code_of(&p), echo.0, "close not echoed");
                        // the echo carries no reason or the peer's
                        let reason = &p[2..];
                        assert!(
                            reason.is_empty() || reason == c.reason.as_bytes(),
                            "close echo with another reason"
                        );
                    }
                    CloseCause::Local => {
                        assert_eq!(step.state_before, State::Closing);
                        assert_eq!(added, 0, "second close frame");
                    }
                    CloseCause::Failed(e) => {
                        assert_eq!(c.code, e.close_code());
                        if step.state_before == State::Open {
                            let p = expect_one_frame(written, role, OpCode::Close, None);
                            assert_eq!(close_code_of(&p), c.code.0);
                        } else {
                            assert_eq!(added, 0, "second close frame");
                        }
                    }
                    other => panic!("input produced a close by {other:?}"),
                }
                Seen::Closed(c.code.0, c.reason.clone(), format!("{:?}", c.cause))
            }
            other => panic!("handshake event after the handshake: {other:?}"),
        };
        seen.hash(step.hash);
    }

    /// Ends the run: a timer or EOF, then checks that a closed connection
    /// stays quiet, and checks the whole output. Returns (events, output).
    pub(super) fn finish(mut self, role: Role, timeout: bool) -> (u64, u64) {
        if timeout {
            // a keep-alive ping, then its timeout (or the close timeout)
            for hours in 1..=2 {
                let later = self.now + Duration::from_secs(3600 * hours);
                let before = self.out.len();
                let state = self.conn.state();
                let event = self.conn.handle_timeout(later, &mut self.out);
                let written = &self.out[before..];
                match (state, event) {
                    (State::Closed, e) => {
                        assert!(e.is_none() && written.is_empty(), "timer after close")
                    }
                    (State::Open, None) => {
                        expect_one_frame(written, role, OpCode::Ping, Some(b""));
                    }
                    (State::Open, Some(Event::Closed(c))) => {
                        assert_eq!(c.cause, CloseCause::PingTimeout);
                        let p = expect_one_frame(written, role, OpCode::Close, None);
                        assert_eq!(close_code_of(&p), 1011);
                        self.closed = true;
                    }
                    (State::Closing, Some(Event::Closed(c))) => {
                        assert_eq!(c.cause, CloseCause::CloseTimeout);
                        assert!(written.is_empty());
                        self.closed = true;
                    }
                    (state, event) => panic!("timer in {state:?} gave {event:?}"),
                }
            }
        }
        match self.conn.handle_eof(self.now) {
            None => assert!(self.closed, "EOF on an open connection reported nothing"),
            Some(Event::Closed(c)) => {
                assert!(!self.closed, "second Closed at EOF");
                assert_eq!(c.cause, CloseCause::Eof);
                assert_eq!(c.code, CloseCode::ABNORMAL);
                self.closed = true;
            }
            Some(other) => panic!("EOF gave {other:?}"),
        }
        assert!(self.conn.is_closed());
        // closed: everything is ignored
        let before = self.out.len();
        let mut junk = *b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
        let (used, event) = self.conn.handle_input(self.now, &mut junk, &mut self.out);
        assert!(
            event.is_none() && used == junk.len(),
            "closed engine took input"
        );
        assert!(self.conn.handle_eof(self.now).is_none());
        let later = self.now + Duration::from_secs(86_400);
        assert!(self.conn.handle_timeout(later, &mut self.out).is_none());
        assert_eq!(self.out.len(), before, "closed engine wrote");
        assert!(self.conn.poll_timeout().is_none());
        let out_hash = check_output(&self.out[self.out_start..], role);
        (self.events.finish(), out_hash)
    }
}

/// What an event handler may look at and act on.
pub(super) struct Step<'d> {
    pub(super) conn: &'d mut Connection,
    pub(super) out: &'d mut Vec<u8>,
    pub(super) state_before: State,
    pub(super) out_before: usize,
    pub(super) consumed: std::ops::Range<usize>,
    pub(super) closed: &'d mut bool,
    pub(super) echo: bool,
    pub(super) hash: &'d mut DefaultHasher,
}
