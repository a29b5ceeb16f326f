//! Fuzzing oracles for the edgews protocol engine.
//!
//! Each `pub fn NAME(data: &[u8])` is the whole check of the fuzz target
//! `NAME`: it derives everything it needs from `data` deterministically and
//! panics when the engine misbehaves. This file is compiled twice: as
//! `edgews_fuzz::oracles` inside the fuzz crate, and by the main crate's
//! `tests/fuzz_corpus.rs` through `#[path = "../fuzz/src/oracles.rs"]`, which
//! replays the committed corpus on every `cargo test`. So it may use only
//! `std`, `edgews` and `serde_json` (a dependency of both crates).
//!
//! # The chunking prefix
//!
//! The targets that feed a [`Connection`] (and `utf8_incremental`) read the
//! first byte of their input as a small header:
//!
//! - bits 0–2: `n`, how many chunk-size bytes follow (0: feed everything at once);
//! - bits 3–7: flags, whose meaning each oracle documents;
//!
//! then `n` bytes of chunk sizes (used in turn, cyclically; a byte `b` below
//! 0x80 means `b + 1` bytes, from 0x80 up `((b & 0x7f) + 1) * 64` bytes),
//! then the body. A corpus file that starts with `0x00` is fed whole.
//!
//! # Heap accounting
//!
//! [`CountingAlloc`] counts live heap bytes per thread. The binaries that
//! run these oracles install it as their global allocator (the fuzz crate's
//! `lib.rs` and `tests/fuzz_corpus.rs` both do); the connection oracles then
//! check that what the engine keeps on the heap stays within the limits of
//! [`small_config`]. Without it, that check is skipped.

#![allow(dead_code)]

use edgews::protocol::accept::{accept_key, is_valid_key};
use edgews::protocol::close::parse_close_payload;
use edgews::protocol::frame::{decode_header, encode_frame, encode_header, header_len};
use edgews::protocol::mask::apply_mask;
use edgews::protocol::utf8::Utf8Validator;
use edgews::protocol::{
    CloseCause, CloseCode, Connection, Event, MessageKind, OpCode, OriginPolicy, ProtocolError,
    Role, State, WsUrl,
};
use edgews::server::{check_topic, parse_control, parse_message, Control};
use edgews::ProtocolConfig;
use serde_json::Value;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Heap accounting

/// A global allocator that forwards to [`System`] and counts, per thread,
/// the bytes live and their peak.
pub struct CountingAlloc;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

static COUNTING: AtomicBool = AtomicBool::new(false);

fn note(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| {
            if now > peak.get() {
                peak.set(now)
            }
        });
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments; the
// bookkeeping touches only const-initialised thread-locals without
// destructors, which never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
            if !COUNTING.load(Ordering::Relaxed) {
                COUNTING.store(true, Ordering::Relaxed);
            }
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        note(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Heap growth on this thread since it was started.
struct HeapMeter {
    base: isize,
}

impl HeapMeter {
    fn start() -> HeapMeter {
        let base = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(base));
        HeapMeter { base }
    }

    fn active() -> bool {
        COUNTING.load(Ordering::Relaxed)
    }

    fn live(&self) -> isize {
        LIVE.with(Cell::get) - self.base
    }

    fn peak(&self) -> isize {
        PEAK.with(Cell::get) - self.base
    }
}

// ---------------------------------------------------------------------------
// Shared pieces

/// The limits the connection oracles run under.
pub const MAX_FRAME: u64 = 64 << 10;
/// See [`MAX_FRAME`].
pub const MAX_MESSAGE: u64 = 256 << 10;
/// See [`MAX_FRAME`].
pub const MAX_FRAGMENTS: u32 = 64;

/// The engine may keep an assembling message (its `Vec` at most doubling
/// past the limit) plus small fixed state; this is the ceiling checked.
const ENGINE_HEAP_LIMIT: isize = 2 * MAX_MESSAGE as isize + (128 << 10);

/// Bytes the engine may leave unconsumed once open: a frame header
/// (at most 14) or a control frame waiting for its payload (at most 6 + 125).
const MAX_UNCONSUMED_OPEN: usize = 14 + 125;

/// The small limits of the connection oracles.
pub fn small_config() -> ProtocolConfig {
    ProtocolConfig {
        max_frame_size: MAX_FRAME,
        max_message_size: MAX_MESSAGE,
        max_fragments: MAX_FRAGMENTS,
        ..ProtocolConfig::default()
    }
}

/// The RFC 6455 §1.3 example key and its accept value.
pub const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// See [`RFC_KEY`].
pub const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The upgrade request the connection oracles open with.
pub const RFC_REQUEST: &str = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// The chunking prefix (see the module docs).
struct Spec<'a> {
    flags: u8,
    sizes: &'a [u8],
    body: &'a [u8],
}

impl<'a> Spec<'a> {
    fn parse(data: &'a [u8]) -> Spec<'a> {
        match data.split_first() {
            None => Spec {
                flags: 0,
                sizes: &[],
                body: &[],
            },
            Some((&first, rest)) => {
                let n = usize::from(first & 7).min(rest.len());
                Spec {
                    flags: first >> 3,
                    sizes: &rest[..n],
                    body: &rest[n..],
                }
            }
        }
    }

    fn flag(&self, bit: u8) -> bool {
        self.flags & bit != 0
    }
}

fn chunk_len(b: u8) -> usize {
    if b & 0x80 != 0 {
        (usize::from(b & 0x7f) + 1) * 64
    } else {
        usize::from(b) + 1
    }
}

/// At most about this many chunks per body: smaller chunks are scaled up,
/// so a large body cut byte by byte does not make an input take seconds.
const MAX_CHUNKS: usize = 4096;

/// Calls `f` with successive pieces of `body` cut as `sizes` say; with no
/// sizes, once with the whole body (even when it is empty).
fn for_each_chunk(body: &[u8], sizes: &[u8], mut f: impl FnMut(&[u8])) {
    if sizes.is_empty() {
        f(body);
        return;
    }
    let cycle: usize = sizes.iter().map(|&b| chunk_len(b)).sum();
    let chunks = body.len() * sizes.len() / cycle;
    let scale = chunks.div_ceil(MAX_CHUNKS).max(1);
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = (chunk_len(sizes[i % sizes.len()]) * scale).min(rest.len());
        f(&rest[..n]);
        rest = &rest[n..];
        i += 1;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A complete head ends with the first `\r\n\r\n` in it.
fn assert_complete_head(head: &[u8]) {
    assert!(
        head.ends_with(b"\r\n\r\n"),
        "consumed head does not end with CRLFCRLF: {:?}",
        String::from_utf8_lossy(head)
    );
    assert_eq!(
        find(head, b"\r\n\r\n"),
        Some(head.len() - 4),
        "consumed head goes past the first CRLFCRLF"
    );
}

/// Checks an HTTP response the engine wrote: status line, complete head,
/// and a body of exactly `Content-Length` bytes. Returns the status.
fn check_http_response(resp: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(resp);
    assert!(
        resp.starts_with(b"HTTP/1.1 "),
        "response does not start with HTTP/1.1: {text:?}"
    );
    let head_end = find(resp, b"\r\n\r\n").expect("response head is not complete") + 4;
    let status: u16 = std::str::from_utf8(&resp[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("response status is not 3 digits");
    assert_eq!(
        resp.get(12),
        Some(&b' '),
        "no space after the status: {text:?}"
    );
    let head = String::from_utf8_lossy(&resp[..head_end]);
    let content_length = head
        .split("\r\n")
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map(|v| v.parse::<usize>().expect("Content-Length is not a number"));
    if let Some(len) = content_length {
        assert_eq!(
            resp.len() - head_end,
            len,
            "body length differs from Content-Length: {text:?}"
        );
    }
    status
}

/// One frame as decoded from what the engine wrote, payload unmasked.
struct OutFrame {
    fin: bool,
    opcode: OpCode,
    payload: Vec<u8>,
    len: usize,
}

/// Decodes the frame at the front of `bytes`, checking that it is one the
/// engine may write in `role`.
fn read_out_frame(bytes: &[u8], role: Role) -> OutFrame {
    let (h, n) = match decode_header(bytes, 0) {
        Ok(Some(decoded)) => decoded,
        Ok(None) => panic!("engine wrote a truncated frame header: {bytes:02x?}"),
        Err(e) => panic!("engine wrote an invalid frame header ({e}): {bytes:02x?}"),
    };
    match role {
        Role::Server => assert!(h.mask().is_none(), "server wrote a masked frame"),
        Role::Client => assert!(h.mask().is_some(), "client wrote an unmasked frame"),
    }
    assert_eq!(h.rsv, 0, "engine set RSV bits");
    let len = usize::try_from(h.len).expect("frame length");
    assert!(
        bytes.len() - n >= len,
        "engine wrote a truncated frame: header says {len}, {} follow",
        bytes.len() - n
    );
    let mut payload = bytes[n..n + len].to_vec();
    if let Some(key) = h.mask() {
        apply_mask(&mut payload, key, 0);
    }
    if h.opcode.is_control() {
        assert!(h.fin && len <= 125, "bad control frame written");
    }
    if h.opcode == OpCode::Close {
        match parse_close_payload(&payload) {
            Ok(Some(_)) => {}
            Ok(None) => panic!("engine wrote a close frame without a code"),
            Err(e) => panic!("engine wrote an invalid close payload ({e}): {payload:02x?}"),
        }
    }
    OutFrame {
        fin: h.fin,
        opcode: h.opcode,
        payload,
        len: n + len,
    }
}

/// Checks that `bytes` is exactly one frame of `opcode` with `payload`
/// (`None`: any payload); returns its payload.
fn expect_one_frame(bytes: &[u8], role: Role, opcode: OpCode, payload: Option<&[u8]>) -> Vec<u8> {
    let f = read_out_frame(bytes, role);
    assert_eq!(f.opcode, opcode, "engine wrote the wrong frame");
    assert_eq!(f.len, bytes.len(), "engine wrote more than one frame");
    if let Some(p) = payload {
        assert_eq!(f.payload, p, "{opcode:?} frame with the wrong payload");
    }
    f.payload
}

/// Checks everything the engine wrote after the opening handshake: a
/// sequence of valid whole frames for `role`, nothing after a close frame,
/// whole data messages, text in UTF-8. Returns a hash of the frames with
/// their payloads unmasked (so runs of a client, whose masks are random,
/// can be compared).
fn check_output(mut out: &[u8], role: Role) -> u64 {
    let mut hash = DefaultHasher::new();
    let mut closed = false;
    while !out.is_empty() {
        assert!(!closed, "engine wrote after its close frame");
        let f = read_out_frame(out, role);
        match f.opcode {
            OpCode::Close => closed = true,
            OpCode::Text => {
                assert!(f.fin, "engine fragmented a message it was not asked to");
                assert!(
                    std::str::from_utf8(&f.payload).is_ok(),
                    "engine sent text that is not UTF-8"
                );
            }
            OpCode::Binary => assert!(f.fin, "engine fragmented a message"),
            OpCode::Continuation => panic!("engine wrote an unexpected continuation frame"),
            OpCode::Ping | OpCode::Pong => {}
        }
        (f.fin, f.opcode.as_u8(), &f.payload).hash(&mut hash);
        out = &out[f.len..];
    }
    hash.finish()
}

fn close_code_of(payload: &[u8]) -> u16 {
    u16::from_be_bytes([payload[0], payload[1]])
}

// ---------------------------------------------------------------------------
// frame_decode

/// Arbitrary bytes through [`decode_header`], frame after frame while a
/// whole header decodes: the length it reports is between 2 and 14 and
/// within the input, equals [`header_len`], and re-encoding the header gives
/// the same bytes; every shorter prefix of a valid header is "need more";
/// and allowing all RSV bits changes nothing but the RSV verdict.
pub fn frame_decode(data: &[u8]) {
    let mut pos = 0;
    while pos < data.len() {
        let buf = &data[pos..];
        let strict = decode_header(buf, 0);
        let lenient = decode_header(buf, 0x7);
        match (&strict, &lenient) {
            (Err(ProtocolError::ReservedBits(bits)), _) => {
                assert!(*bits != 0);
                assert!(
                    !matches!(lenient, Err(ProtocolError::ReservedBits(_))),
                    "RSV bits refused although allowed"
                );
            }
            _ => assert_eq!(strict, lenient, "allowing RSV bits changed another verdict"),
        }
        let (header, n) = match strict {
            Ok(Some(decoded)) => decoded,
            Ok(None) => {
                assert!(buf.len() < 14, "need more bytes with {} at hand", buf.len());
                return;
            }
            Err(_) => return,
        };
        assert!((2..=14).contains(&n), "header length {n}");
        assert!(
            n <= buf.len(),
            "header length {n} past the input ({})",
            buf.len()
        );
        assert_eq!(n, header_len(header.len, header.mask().is_some()));
        assert_eq!(header.rsv, 0);
        if header.opcode.is_control() {
            assert!(header.fin && header.len <= 125);
        }
        assert!(header.len >> 63 == 0);
        let mut again = Vec::with_capacity(14);
        encode_header(
            &mut again,
            header.fin,
            header.opcode,
            header.mask(),
            header.len,
        );
        assert_eq!(&again[..], &buf[..n], "re-encoded header differs");
        for cut in 0..n {
            assert_eq!(
                decode_header(&buf[..cut], 0),
                Ok(None),
                "prefix of {cut} bytes of a valid header"
            );
        }
        let payload = usize::try_from(header.len).unwrap_or(usize::MAX);
        if buf.len() - n < payload {
            return;
        }
        pos += n + payload;
    }
}

// ---------------------------------------------------------------------------
// A connection driven the way a reactor drives it

/// Owned facts of one event, for differential comparison.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Seen {
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
struct Driver {
    conn: Connection,
    now: Instant,
    pending: Vec<u8>,
    out: Vec<u8>,
    /// Where the frames start in `out` (after the handshake).
    out_start: usize,
    /// Echo every message back, as the echo server does.
    echo: bool,
    closed: bool,
    events: DefaultHasher,
    fed: usize,
    meter: Option<HeapMeter>,
}

impl Driver {
    fn new(conn: Connection, now: Instant, out: Vec<u8>) -> Driver {
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
    fn pump(&mut self, chunk: &[u8], on_event: &mut dyn FnMut(&mut Step<'_>, Event<'_>)) {
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

    fn check_heap(&self) {
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
    fn open_event(step: &mut Step<'_>, event: Event<'_>, role: Role) {
        let added = step.out.len() - step.out_before;
        assert!(!*step.closed, "event after Closed: {event:?}");
        let seen = match event {
            Event::Message(m) => {
                assert!(
                    m.data.len() as u64 <= MAX_MESSAGE,
                    "message of {} bytes over the limit",
                    m.data.len()
                );
                if m.kind == MessageKind::Text {
                    assert!(m.as_text().is_some(), "text message is not UTF-8");
                }
                assert_eq!(added, 0, "engine wrote while delivering a message");
                assert!(matches!(step.state_before, State::Open | State::Closing));
                if step.echo && step.conn.state() == State::Open {
                    let before = step.out.len();
                    step.conn
                        .send(m.kind, &m.data, step.out)
                        .expect("echo of a received message refused");
                    let op = match m.kind {
                        MessageKind::Text => OpCode::Text,
                        MessageKind::Binary => OpCode::Binary,
                    };
                    expect_one_frame(&step.out[before..], role, op, Some(&m.data));
                }
                Seen::Message(m.kind == MessageKind::Text, m.data.into_owned())
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
    fn finish(mut self, role: Role, timeout: bool) -> (u64, u64) {
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
struct Step<'d> {
    conn: &'d mut Connection,
    out: &'d mut Vec<u8>,
    state_before: State,
    out_before: usize,
    consumed: std::ops::Range<usize>,
    closed: &'d mut bool,
    echo: bool,
    hash: &'d mut DefaultHasher,
}

// ---------------------------------------------------------------------------
// handshake_request

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
fn start_client(config: ProtocolConfig, now: Instant) -> (Connection, Vec<u8>, [u8; 28]) {
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

// ---------------------------------------------------------------------------
// server_connection / client_connection

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

// ---------------------------------------------------------------------------
// utf8_incremental

/// Arbitrary bytes, cut into pieces by the prefix, through [`Utf8Validator`]
/// (`feed` each piece, then `finish`). The verdict equals
/// `std::str::from_utf8` on the whole body, an error's offset equals
/// `valid_up_to()`, and an invalid sequence is reported by the very `feed`
/// whose piece makes it invalid (fail fast), never before.
pub fn utf8_incremental(data: &[u8]) {
    let spec = Spec::parse(data);
    let body = spec.body;
    let reference = std::str::from_utf8(body);
    // the shortest prefix that std already calls invalid (not just unfinished)
    let detect_at = match reference {
        Ok(_) => None,
        Err(e) => e.error_len().map(|_| {
            (e.valid_up_to() + 1..=body.len())
                .find(|&end| {
                    std::str::from_utf8(&body[..end])
                        .err()
                        .is_some_and(|e| e.error_len().is_some())
                })
                .expect("an invalid sequence is visible in some prefix")
        }),
    };
    for pass in 0..2 {
        // the second pass reuses the validator after `finish`
        let mut v = Utf8Validator::new();
        let mut fed = 0usize;
        let mut verdict: Option<Result<(), u64>> = None;
        for_each_chunk(body, spec.sizes, |piece| {
            if verdict.is_some() {
                return;
            }
            let before = fed;
            fed += piece.len();
            match v.feed(piece) {
                Ok(()) => {
                    if let Some(at) = detect_at {
                        assert!(
                            fed < at,
                            "invalid sequence ending at {at} not reported by the feed of {before}..{fed}"
                        );
                    }
                }
                Err(e) => {
                    let at = detect_at.expect("error on a valid (or unfinished) input");
                    assert!(
                        before < at && at <= fed,
                        "error reported by the feed of {before}..{fed}, visible at {at}"
                    );
                    verdict = Some(Err(e.offset));
                }
            }
            if pass == 1 && verdict.is_none() {
                assert_eq!(
                    v.is_incomplete(),
                    std::str::from_utf8(&body[..fed])
                        .err()
                        .is_some_and(|e| e.error_len().is_none()),
                    "is_incomplete after {fed} bytes"
                );
            }
        });
        let verdict = match verdict {
            Some(v) => v,
            None => v.finish().map_err(|e| e.offset),
        };
        let expected = reference.map(|_| ()).map_err(|e| e.valid_up_to() as u64);
        assert_eq!(verdict, expected, "validator and std disagree");
        if verdict.is_ok() {
            // finish resets: the validator works again from scratch
            assert!(v.feed(body).is_ok() && v.finish().is_ok());
        }
        if pass == 0 && verdict.is_err() {
            break;
        }
    }
}

// ---------------------------------------------------------------------------
// roundtrip

/// Reads the structure of a roundtrip case from bytes; zeros past the end.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(b)
    }

    fn u8(&mut self) -> u8 {
        self.byte().unwrap_or(0)
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }
}

/// A small deterministic generator for payload contents.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `len` bytes: random up to [`Rng::BLOCK`], then that block repeated
    /// (large payloads are for the length paths, not for their contents).
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let block: Vec<u8> = (0..len.min(Self::BLOCK))
            .map(|_| (self.next() >> 56) as u8)
            .collect();
        block.iter().copied().cycle().take(len).collect()
    }

    const BLOCK: usize = 4096;

    /// UTF-8 text of at least `len` bytes (up to 3 more), or at most `len`
    /// when `at_most`.
    fn text(&mut self, len: usize, at_most: bool) -> Vec<u8> {
        const CHARS: [char; 16] = [
            'a',
            'Z',
            ' ',
            '~',
            '\0',
            '\u{7f}',
            '\u{80}',
            'é',
            '\u{7ff}',
            '\u{800}',
            '€',
            '\u{d7ff}',
            '\u{e000}',
            '\u{ffff}',
            '𝄞',
            '\u{10ffff}',
        ];
        let mut s = String::with_capacity(len + 4);
        let target = if at_most { len } else { len.min(Self::BLOCK) };
        loop {
            let c = CHARS[(self.next() % 16) as usize];
            if at_most && s.len() + c.len_utf8() > len {
                // fill up with ASCII when the next char does not fit
                if s.len() < len {
                    s.push('x');
                    continue;
                }
                break;
            }
            if !at_most && s.len() >= target {
                break;
            }
            s.push(c);
        }
        if s.len() < len {
            // repeat the random block, then cut at the first char boundary
            // at or past `len`
            let block = s.clone();
            while s.len() < len {
                s.push_str(&block);
            }
            let mut end = len;
            while !s.is_char_boundary(end) {
                end += 1;
            }
            s.truncate(end);
        }
        s.into_bytes()
    }
}

/// What the server must report, in order.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    Message(MessageKind, Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Closed(u16, String, CloseCause),
}

/// Valid close codes a client may send.
const CODES: [u16; 16] = [
    1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999,
];

/// A sequence of valid client frames, built from the body (after the
/// chunking prefix) and encoded with [`encode_frame`] (masked), fed to a
/// server [`Connection::open`]ed under [`small_config`]: the events must be
/// exactly the messages, pings, pongs and close that were encoded, and the
/// output exactly a pong per ping and the echo of the close.
///
/// The body is a list of operations, each a tag byte and its arguments
/// (missing bytes read as zero):
///
/// - tag & 7 in 0..=3 or 7: a message. Tag bit 0x08: text (else binary);
///   then a u16 length (modulo 4096; for op 7, 60,000 + length % 10,000,
///   or with tag bit 0x80 length times 4 up to the message limit), a
///   fragment count byte (1 + b % 4, or 1 + b % 64 with
///   tag bit 0x10), a byte whose bits put a ping after fragment i (read
///   only with tag bit 0x20), the 4-byte masking key (zeros with tag bit
///   0x40), and one byte per fragment boundary that moves bytes between
///   neighbouring fragments. Fragments may split a code point.
/// - 4: a ping of b % 126 bytes; 5: an unsolicited pong of b % 126 bytes.
/// - 6: a close: b % 17 == 16 for no code, else a code from [`CODES`] and a
///   reason of at most b' % 124 bytes; the rest of the body follows it as
///   junk that must be ignored.
///
/// Generation stops once the encoded frames pass 512 KiB.
pub fn roundtrip(data: &[u8]) {
    let spec = Spec::parse(data);
    let mut r = Reader { bytes: spec.body };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ spec.body.len() as u64);
    let mut wire: Vec<u8> = Vec::new();
    let mut expect: Vec<Expect> = Vec::new();
    let mut expect_out: Vec<(OpCode, Vec<u8>)> = Vec::new();
    let mut closed = false;
    let key_for = |r: &mut Reader<'_>, zero: bool| -> [u8; 4] {
        let key = [r.u8(), r.u8(), r.u8(), r.u8()];
        if zero {
            [0; 4]
        } else {
            key
        }
    };
    while let Some(tag) = r.byte() {
        if wire.len() > (512 << 10) {
            break;
        }
        match tag & 7 {
            4 | 5 => {
                let len = usize::from(r.u8() % 126);
                let payload = rng.bytes(len);
                let key = key_for(&mut r, tag & 0x40 != 0);
                if tag & 7 == 4 {
                    encode_frame(&mut wire, true, OpCode::Ping, Some(key), &payload);
                    expect.push(Expect::Ping(payload.clone()));
                    expect_out.push((OpCode::Pong, payload));
                } else {
                    encode_frame(&mut wire, true, OpCode::Pong, Some(key), &payload);
                    expect.push(Expect::Pong(payload));
                }
            }
            6 => {
                let sel = r.u8();
                let key = key_for(&mut r, tag & 0x40 != 0);
                if sel % 17 == 16 {
                    encode_frame(&mut wire, true, OpCode::Close, Some(key), b"");
                    expect.push(Expect::Closed(1005, String::new(), CloseCause::Peer));
                    expect_out.push((OpCode::Close, 1000u16.to_be_bytes().to_vec()));
                } else {
                    let code = CODES[usize::from(sel % 17) % 16];
                    let reason_len = usize::from(r.u8() % 124);
                    let reason = rng.text(reason_len, true);
                    assert!(reason.len() <= 123);
                    let payload = [&code.to_be_bytes()[..], &reason].concat();
                    encode_frame(&mut wire, true, OpCode::Close, Some(key), &payload);
                    let reason = String::from_utf8(reason).unwrap();
                    expect.push(Expect::Closed(code, reason, CloseCause::Peer));
                    expect_out.push((OpCode::Close, code.to_be_bytes().to_vec()));
                }
                wire.extend_from_slice(r.rest());
                closed = true;
                break;
            }
            op => {
                let text = tag & 0x08 != 0;
                let raw = usize::from(r.u16());
                let len = match op {
                    // up to the message limit
                    7 if tag & 0x80 != 0 => (raw * 4).min(MAX_MESSAGE as usize - 3),
                    // around the 16-bit length encoding and the frame limit
                    7 => 60_000 + raw % 10_000,
                    _ => raw % 4096,
                };
                let payload = if text {
                    rng.text(len, false)
                } else {
                    rng.bytes(len)
                };
                let max_frags = if tag & 0x10 != 0 { 64 } else { 4 };
                let frame_max = MAX_FRAME as usize;
                let frags = (1 + usize::from(r.u8()) % max_frags)
                    .max(payload.len().div_ceil(frame_max))
                    .max(1);
                let pings = if tag & 0x20 != 0 { r.u8() } else { 0 };
                let key = key_for(&mut r, tag & 0x40 != 0);
                let mut sizes = vec![payload.len() / frags; frags];
                for s in sizes.iter_mut().take(payload.len() % frags) {
                    *s += 1;
                }
                for i in 0..frags - 1 {
                    let shift = usize::from(r.u8()) % (sizes[i] + 1);
                    let shift = shift.min(frame_max - sizes[i + 1]);
                    sizes[i] -= shift;
                    sizes[i + 1] += shift;
                }
                let mut at = 0;
                for (i, &size) in sizes.iter().enumerate() {
                    let op = match (i, text) {
                        (0, true) => OpCode::Text,
                        (0, false) => OpCode::Binary,
                        _ => OpCode::Continuation,
                    };
                    let fin = i == frags - 1;
                    encode_frame(&mut wire, fin, op, Some(key), &payload[at..at + size]);
                    at += size;
                    if !fin && i < 8 && pings & (1 << i) != 0 {
                        let p = vec![i as u8; i];
                        encode_frame(&mut wire, true, OpCode::Ping, Some(key), &p);
                        expect.push(Expect::Ping(p.clone()));
                        expect_out.push((OpCode::Pong, p));
                    }
                }
                assert_eq!(at, payload.len());
                let kind = if text {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                expect.push(Expect::Message(kind, payload));
            }
        }
    }
    if !closed {
        expect.push(Expect::Closed(1006, String::new(), CloseCause::Eof));
    }

    let now = Instant::now();
    let conn = Connection::open(now, Arc::new(small_config()), Role::Server);
    let mut d = Driver::new(conn, now, Vec::new());
    let mut got = 0usize;
    for_each_chunk(&wire, spec.sizes, |chunk| {
        d.pump(chunk, &mut |step, event| {
            let actual = match event {
                Event::Message(m) => Expect::Message(m.kind, m.data.into_owned()),
                Event::Ping(p) => Expect::Ping(p.to_vec()),
                Event::Pong(p) => Expect::Pong(p.to_vec()),
                Event::Closed(c) => {
                    *step.closed = true;
                    Expect::Closed(c.code.0, c.reason, c.cause)
                }
                other => panic!("unexpected event {other:?}"),
            };
            assert!(got < expect.len(), "extra event {actual:?}");
            assert_eq!(actual, expect[got], "event {got} differs");
            got += 1;
        });
    });
    if !closed {
        match d.conn.handle_eof(now) {
            Some(Event::Closed(c)) => {
                assert!(got < expect.len(), "extra Closed at EOF");
                assert_eq!(
                    Expect::Closed(c.code.0, c.reason, c.cause),
                    expect[got],
                    "event {got} differs"
                );
                got += 1;
            }
            other => panic!("EOF gave {other:?}"),
        }
    }
    assert_eq!(got, expect.len(), "missing events: {:?}", &expect[got..]);
    let mut out = &d.out[..];
    for (i, (op, payload)) in expect_out.iter().enumerate() {
        let f = read_out_frame(out, Role::Server);
        if *op == OpCode::Close {
            // the echo of a close has its code; its reason is empty or the peer's
            let peer_reason = match expect.last() {
                Some(Expect::Closed(_, reason, _)) => reason.as_bytes(),
                _ => b"",
            };
            assert_eq!(f.opcode, OpCode::Close, "output frame {i}");
            assert_eq!(&f.payload[..2], &payload[..], "close echo code");
            assert!(
                f.payload.len() == 2 || &f.payload[2..] == peer_reason,
                "close echo with another reason"
            );
        } else {
            assert_eq!((f.opcode, &f.payload), (*op, payload), "output frame {i}");
        }
        out = &out[f.len..];
    }
    assert!(
        out.is_empty(),
        "unexpected output after the expected frames"
    );
}

// ---------------------------------------------------------------------------
// pubsub_control / chat_message

/// The control-message limit [`pubsub_control`] parses under.
pub const MAX_CONTROL: usize = 2048;

/// The text limit [`chat_message`] parses under (so messages over
/// `6 × 64 + 1024` bytes are refused unparsed).
pub const MAX_TEXT: usize = 64;

/// Whether `part` is a slice of `whole` (the same memory, not a copy).
fn is_slice_of(part: &str, whole: &str) -> bool {
    let range = whole.as_bytes().as_ptr_range();
    let part = part.as_bytes().as_ptr_range();
    range.start <= part.start && part.end <= range.end
}

/// The JSON tree of an accepted message, to compare with what the parser
/// returned; `None` when the message is valid JSON that serde_json will
/// not build: the parsers skip what they do not use (checking its syntax
/// only), and that may nest deeper than serde_json's recursion limit or
/// hold a string with a lone surrogate escape (`"\ud800"`).
fn tree_of(text: &str) -> Option<Value> {
    match serde_json::from_str(text) {
        Ok(value) => Some(value),
        Err(e) => {
            let syntax = serde_json::from_str::<serde::de::IgnoredAny>(text);
            assert!(syntax.is_ok(), "accepted, yet not JSON: {e}");
            None
        }
    }
}

/// The input as text: the handlers only ever see UTF-8, so other bytes are
/// replaced (which still lets the fuzzer reach every string).
fn as_text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Arbitrary text through [`parse_control`], checked against a full JSON
/// parse: never a panic; over [`MAX_CONTROL`] bytes always refused, and
/// the limit is exact (the same verdict with the input's own length as the
/// limit, refusal with one byte less); an accepted message is one JSON
/// object with only the op's fields, which the [`Control`] agrees with, a
/// valid topic, and for a publication `data` that is valid JSON, a slice of
/// the input, equal to the object's `data` (see `tree_of` for when there is
/// no tree to compare with).
pub fn pubsub_control(data: &[u8]) {
    let text = as_text(data);
    let result = parse_control(&text, MAX_CONTROL);
    if text.len() > MAX_CONTROL {
        let error = result.expect_err("a control message over the limit was accepted");
        assert!(error.starts_with("control message too large"), "{error}");
        return;
    }
    assert_eq!(
        parse_control(&text, text.len()),
        result,
        "the verdict depends on the limit"
    );
    if !text.is_empty() {
        assert!(parse_control(&text, text.len() - 1).is_err());
    }
    let Ok(control) = result else { return };
    let (topic, data) = match &control {
        Control::Subscribe { topic } | Control::Unsubscribe { topic } => (topic, None),
        Control::Publish { topic, data, .. } => (topic, Some(*data)),
    };
    assert!(check_topic(topic).is_ok());
    assert!(!topic.is_empty() && topic.len() <= 200 && !topic.chars().any(char::is_control));
    if let Some(data) = data {
        assert!(is_slice_of(data, &text), "data was copied");
        assert!(serde_json::from_str::<serde::de::IgnoredAny>(data).is_ok());
    }
    // `data` is checked for syntax, not built into a tree
    let Some(value) = tree_of(&text) else { return };
    let object = value.as_object().expect("accepted, yet not an object");
    assert_eq!(object["topic"], topic.as_ref());
    let (op, allowed): (&str, &[&str]) = match control {
        Control::Subscribe { .. } => ("subscribe", &["op", "topic"]),
        Control::Unsubscribe { .. } => ("unsubscribe", &["op", "topic"]),
        Control::Publish { data, echo, .. } => {
            assert_eq!(serde_json::from_str::<Value>(data).unwrap(), object["data"]);
            assert_eq!(echo, object.get("echo") == Some(&Value::Bool(true)));
            ("publish", &["op", "topic", "data", "echo"])
        }
    };
    assert_eq!(object["op"], op);
    assert!(
        object.keys().all(|k| allowed.contains(&k.as_str())),
        "accepted with fields {:?}",
        object.keys().collect::<Vec<_>>()
    );
}

/// Arbitrary text through [`parse_message`] with [`MAX_TEXT`], checked
/// against a full JSON parse: never a panic; a message over `6 × MAX_TEXT +
/// 1024` bytes always refused; an accepted one is a JSON object of type
/// `message` whose `room` and `text` are the ones returned, the text at
/// most [`MAX_TEXT`] bytes and not only whitespace.
pub fn chat_message(data: &[u8]) {
    let text = as_text(data);
    let result = parse_message(&text, MAX_TEXT);
    if text.len() > 6 * MAX_TEXT + 1024 {
        let error = result.expect_err("a chat message over the limit was accepted");
        assert!(error.starts_with("message too long"), "{error}");
        return;
    }
    let Ok(message) = result else { return };
    assert!(message.text.len() <= MAX_TEXT);
    assert!(!message.text.trim().is_empty());
    // unknown fields are checked for syntax, not built into a tree
    let Some(value) = tree_of(&text) else { return };
    let object = value.as_object().expect("accepted, yet not an object");
    assert_eq!(object["type"], "message");
    assert_eq!(object["room"], message.room.as_ref());
    assert_eq!(object["text"], message.text.as_ref());
    for part in [&message.room, &message.text] {
        if let std::borrow::Cow::Borrowed(s) = part {
            assert!(is_slice_of(s, &text));
        }
    }
}
