//! Allocation counts on the engine's hot path.
//!
//! A counting global allocator wraps the system one. Counts are kept per
//! thread (a `const` thread-local, which itself never allocates), so the
//! test harness, other tests running in parallel, and their output capture
//! cannot disturb a measurement: only allocations made by the measuring
//! thread, between `start` and `stop`, are counted.
//!
//! The claim under test: once a server connection is warmed up, echoing
//! small messages that arrive whole (the common case) allocates nothing —
//! the message is borrowed from the caller's input buffer, unmasked in
//! place, and the answer is encoded into the caller's reused `out`. The
//! second test shows the known cost of the other case, a message split
//! across reads: it is assembled into an owned buffer, and that allocates.
//! It also proves that the counter counts.

use edgews::protocol::frame::{decode_header, encode_frame, OpCode};
use edgews::protocol::{Connection, Event, MessageKind};
use edgews::ProtocolConfig;
use std::alloc::{GlobalAlloc, Layout, System};
use std::borrow::Cow;
use std::cell::Cell;
use std::sync::Arc;
use std::time::Instant;

struct CountingAllocator;

thread_local! {
    /// Whether this thread is measuring.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// Allocations (alloc, alloc_zeroed, realloc) this thread made while measuring.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: never panic inside the allocator, even during thread
    // teardown (const thread-locals without `Drop` are not torn down, but
    // this costs nothing).
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; the bookkeeping only touches
// `Cell`s in const thread-locals, which neither allocate nor unwind.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: `ptr` and `layout` come from this allocator, which is
        // `System`; forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Counts this thread's allocations while `f` runs.
fn allocations_in<R>(f: impl FnOnce() -> R) -> (usize, R) {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    let result = f();
    COUNTING.with(|c| c.set(false));
    (ALLOCATIONS.with(Cell::get), result)
}

const REQUEST: &[u8] = b"GET /echo HTTP/1.1\r\n\
Host: localhost:9001\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\
Origin: http://localhost:9001\r\n\
\r\n";

/// A server connection that has gone through the opening handshake.
fn accepted_server(now: Instant) -> Connection {
    let mut conn = Connection::server(now, Arc::new(ProtocolConfig::default()));
    let mut input = REQUEST.to_vec();
    let mut out = Vec::new();
    let (used, event) = conn.handle_input(now, &mut input, &mut out);
    assert!(matches!(event, Some(Event::Upgrade(_))), "{event:?}");
    assert_eq!(used, REQUEST.len());
    conn.accept(&mut out).unwrap();
    assert!(out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    conn
}

/// A frame as a client sends it: masked, with a key that changes per frame.
fn client_frame(opcode: OpCode, payload: &[u8], seed: u8) -> Vec<u8> {
    let key = [
        seed,
        seed.wrapping_mul(7) ^ 0x5a,
        0xc3 ^ seed,
        seed.wrapping_add(99),
    ];
    let mut frame = Vec::new();
    encode_frame(&mut frame, true, opcode, Some(key), payload);
    frame
}

/// Feeds one read to the server the way a reactor does (call again with the
/// rest until no event) and echoes every message into `out`. Returns the
/// number of messages echoed. Allocates nothing by itself.
fn echo_read(conn: &mut Connection, now: Instant, input: &mut [u8], out: &mut Vec<u8>) -> usize {
    let mut pos = 0;
    let mut echoed = 0;
    loop {
        let (used, event) = conn.handle_input(now, &mut input[pos..], out);
        pos += used;
        match event {
            Some(Event::Message(message)) => {
                match message.kind() {
                    MessageKind::Text => conn.send_text(message.as_text().unwrap(), out),
                    MessageKind::Binary => conn.send_binary(message.as_bytes(), out),
                }
                .unwrap();
                echoed += 1;
            }
            Some(other) => panic!("unexpected event {other:?}"),
            None => break,
        }
    }
    assert_eq!(pos, input.len(), "every whole frame is consumed");
    echoed
}

/// Checks, without allocating, that `out` holds the unmasked echo of
/// `text` then `binary`.
fn assert_echo(out: &[u8], text: &[u8], binary: &[u8]) {
    let (h, n) = decode_header(out, 0).unwrap().unwrap();
    assert_eq!(
        (h.opcode, h.mask(), h.len),
        (OpCode::Text, None, text.len() as u64)
    );
    assert_eq!(&out[n..n + text.len()], text);
    let out = &out[n + text.len()..];
    let (h, n) = decode_header(out, 0).unwrap().unwrap();
    assert_eq!(
        (h.opcode, h.mask(), h.len),
        (OpCode::Binary, None, binary.len() as u64)
    );
    assert_eq!(&out[n..], binary);
}

#[test]
fn echoing_whole_small_messages_allocates_nothing() {
    const WARM_UP_ROUNDS: usize = 300;
    const MEASURED_ROUNDS: usize = 10_000;
    let now = Instant::now();
    let mut conn = accepted_server(now);

    let text = b"twenty bytes of text"; // 20 B
    assert_eq!(text.len(), 20);
    let binary: Vec<u8> = (0..1024u32).map(|i| (i * 31 + 7) as u8).collect(); // 1 KiB
                                                                              // Eight different reads, each a text frame followed by a binary frame
                                                                              // (two messages per read, as a pipelining client would send them).
    let reads: Vec<Vec<u8>> = (0..8u8)
        .map(|seed| {
            let mut read = client_frame(OpCode::Text, text, seed);
            read.extend_from_slice(&client_frame(OpCode::Binary, &binary, seed ^ 0x80));
            read
        })
        .collect();

    // The caller's buffers, reused every round as a reactor reuses them.
    let mut input: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut round = |i: usize| {
        input.clear();
        input.extend_from_slice(&reads[i % reads.len()]);
        out.clear();
        let echoed = echo_read(&mut conn, now, &mut input, &mut out);
        assert_eq!(echoed, 2);
        assert_echo(&out, text, &binary);
    };

    for i in 0..WARM_UP_ROUNDS {
        round(i);
    }
    let (allocations, ()) = allocations_in(|| {
        for i in 0..MEASURED_ROUNDS {
            round(i);
        }
    });
    assert_eq!(
        allocations,
        0,
        "{allocations} allocations while echoing {} messages (20 B text + 1 KiB binary)",
        2 * MEASURED_ROUNDS
    );
}

#[test]
fn a_message_split_across_two_reads_is_assembled_and_allocates() {
    let now = Instant::now();
    let mut conn = accepted_server(now);
    let payload: Vec<u8> = (0..1024u32).map(|i| (i * 13 + 1) as u8).collect();
    let frame = client_frame(OpCode::Binary, &payload, 42);
    let split = frame.len() / 2;
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut first: Vec<u8> = Vec::with_capacity(4096);
    let mut second: Vec<u8> = Vec::with_capacity(4096);

    // warm up the whole-message path, so only the split itself is counted
    for seed in 0..100u8 {
        first.clear();
        first.extend_from_slice(&client_frame(OpCode::Binary, &payload, seed));
        out.clear();
        assert_eq!(echo_read(&mut conn, now, &mut first, &mut out), 1);
    }

    let mut owned = false;
    let (allocations, ()) = allocations_in(|| {
        first.clear();
        first.extend_from_slice(&frame[..split]);
        second.clear();
        second.extend_from_slice(&frame[split..]);
        // the first read holds the header and half the payload: consumed
        // into the message being assembled, no event yet
        let (used, event) = conn.handle_input(now, &mut first, &mut out);
        assert!(event.is_none(), "{event:?}");
        assert_eq!(used, split);
        let second_len = second.len();
        match conn.handle_input(now, &mut second, &mut out) {
            (used, Some(Event::Message(message))) => {
                assert_eq!(used, second_len);
                assert_eq!(message.as_bytes(), &payload[..]);
                owned = matches!(message.data(), Cow::Owned(_));
            }
            (_, other) => panic!("expected the message, got {other:?}"),
        }
    });
    assert!(owned, "a message assembled across reads is owned");
    // Today: the boxed assembly state and its payload buffer.
    assert!(
        allocations >= 1,
        "assembling a split message must allocate (got {allocations}): is the counter counting?"
    );
}
