//! Fuzzing oracles for the edgews protocol engine.
//!
//! Each `pub fn NAME(data: &[u8])` is the whole check of the fuzz target
//! `NAME`: it derives everything it needs from `data` deterministically and
//! panics when the engine misbehaves. This module is compiled twice: as
//! `edgews_fuzz::oracles` inside the fuzz crate, and by the main crate's
//! `tests/fuzz_corpus.rs` through `#[path = "../fuzz/src/oracles.rs"]`, which
//! replays the committed corpus on every `cargo test`. So it may use only
//! `std`, `edgews` and `serde_json` (a dependency of both crates), and, for
//! the `tls` oracle alone, `arbitrary` and `rcgen` (dependencies of the fuzz
//! crate and dev-dependencies of the main one).
//!
//! # Files
//!
//! This file holds the shared pieces (the limits, the chunking prefix, the
//! checks of what the engine wrote) and re-exports every oracle; the rest
//! is in `oracles/`:
//!
//! - `heap.rs`: [`CountingAlloc`] and the heap meter of the connection oracles;
//! - `driver.rs`: the `Driver` that feeds a [`Connection`] the way a reactor
//!   does, with the checks on every event once open;
//! - `frame_decode.rs`: `frame_decode`;
//! - `handshake.rs`: `handshake_request` and `handshake_response`;
//! - `connection.rs`: `server_connection` and `client_connection`;
//! - `deflate.rs`: `deflate` (permessage-deflate negotiated from the input,
//!   then the inflate paths);
//! - `forwarded.rs`: `forwarded` (client addresses behind reverse proxies,
//!   read from arbitrary header lines, and the headers written for an
//!   upstream);
//! - `utf8_incremental.rs`: `utf8_incremental`;
//! - `relay.rs`: `relay_scan` (the proxy's frame tracker, whole and in
//!   pieces);
//! - `roundtrip.rs`: `roundtrip`;
//! - `pubsub_chat.rs`: `pubsub_control` and `chat_message`;
//! - `redis.rs`: `resp_decode` (the RESP2 decoder, whole and in pieces)
//!   and `redis_envelope` (the cross-instance message format);
//! - `tls.rs`: `tls` (an in-memory rustls client, the server's TLS layer
//!   and the engine behind it, driven as the reactor drives them).
//!
//! The submodules carry `#[path]` attributes because `tests/fuzz_corpus.rs`
//! includes this file by `#[path]`, which makes rustc look for plain `mod`
//! files next to it rather than in `oracles/`.
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
//!
//! [`Connection`]: edgews::protocol::Connection

#![allow(dead_code)]

#[path = "oracles/connection.rs"]
mod connection;
#[path = "oracles/deflate.rs"]
mod deflate;
#[path = "oracles/driver.rs"]
mod driver;
#[path = "oracles/forwarded.rs"]
mod forwarded;
#[path = "oracles/frame_decode.rs"]
mod frame_decode;
#[path = "oracles/handshake.rs"]
mod handshake;
#[path = "oracles/heap.rs"]
mod heap;
#[path = "oracles/pubsub_chat.rs"]
mod pubsub_chat;
#[path = "oracles/redis.rs"]
mod redis;
#[path = "oracles/relay.rs"]
mod relay;
#[path = "oracles/roundtrip.rs"]
mod roundtrip;
#[path = "oracles/tls.rs"]
mod tls;
#[path = "oracles/utf8_incremental.rs"]
mod utf8_incremental;

pub use connection::{client_connection, server_connection};
pub use deflate::deflate;
pub use forwarded::forwarded;
pub use frame_decode::frame_decode;
pub use handshake::{handshake_request, handshake_response};
pub use heap::CountingAlloc;
pub use pubsub_chat::{chat_message, pubsub_control};
pub use redis::{redis_envelope, resp_decode};
pub use relay::relay_scan;
pub use roundtrip::roundtrip;
pub use tls::tls;
pub use utf8_incremental::utf8_incremental;

use edgews::protocol::close::parse_close_payload;
use edgews::protocol::frame::decode_header;
use edgews::protocol::mask::apply_mask;
use edgews::protocol::{OpCode, Role};
use edgews::ProtocolConfig;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

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

/// The control-message limit [`pubsub_control`] parses under.
pub const MAX_CONTROL: usize = 2048;

/// The text limit [`chat_message`] parses under (so messages over
/// `6 × 64 + 1024` bytes are refused unparsed).
pub const MAX_TEXT: usize = 64;

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
