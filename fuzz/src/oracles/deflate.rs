//! The `deflate` oracle: permessage-deflate (RFC 7692) negotiated for real
//! with parameters drawn from the input, then compressed frames, valid and
//! not, fed to the engine's inflate paths.
//!
//! # Input
//!
//! The chunking prefix (see the parent module; flag 0x01: echo every
//! message back compressed), then eight parameter bytes (zeros past the
//! end of the input):
//!
//! - `p0`: bit 0 the fuzzed engine is a client (else a server); bit 1 its
//!   mode is [`DeflateMode::Shared`] (else dedicated); bits 2 to 5 the
//!   parameters of the offer (server role) or the answer (client role):
//!   `server_no_context_takeover`, `client_no_context_takeover`,
//!   `server_max_window_bits=S`, `client_max_window_bits`; bit 6 gives the
//!   latter its value `=C` (always given in an answer, RFC 7692 §7.1.2.2);
//!   bit 7: no `Sec-WebSocket-Extensions` at all.
//! - `p1`: bits 0–2 `S - 8`, bits 3–5 `C - 8` (so 8 to 15 each); bit 6 the
//!   peer engine's mode is shared.
//! - `p2`: the fuzzed engine's `window_bits` (low nibble) and
//!   `client_window_bits` (high nibble), each `9 + n % 7`.
//! - `p3`: its `level` (`lo % 10`) and `mem_level` (`1 + hi % 9`).
//! - `p4`: the same for the peer engine; `p5`: the peer's `window_bits`
//!   (low nibble) and `max_fragments` (high nibble; 0 means 64).
//! - `p6 p7`: `max_message_size`, from the big-endian `v`: with `u = v ^
//!   0x8000`, `1 + u² / 16384`, so 1 byte (0x8000) to 256 KiB - 15
//!   (0x7fff); zeros give 64 KiB + 1, and a random `v` 64 KiB or less half
//!   of the time.
//!
//! Then operations, each a tag byte (`t & 7` is the operation) and its
//! arguments:
//!
//! - 0, 1, 2, *round trip*: a message compressed by the peer engine with
//!   [`Compression::Always`], cut into fragments. Tag bits: 0x08 text,
//!   0x10 incompressible content (else the seed repeated), 0x20 up to 64
//!   fragments (else 4), 0x40 pings between the first fragments, 0x80
//!   length around `max_message_size` (else below 4096). Arguments: a u16
//!   length, a seed length byte (`% 64`) and the seed, the fragment count
//!   byte, with 0x40 the ping bits, then one byte per fragment boundary.
//! - 3, *arbitrary compressed*: a message of 1 to 4 fragments whose
//!   payloads are input bytes. Tag bits: 0x08 text, 0x10 no RSV1 (an
//!   uncompressed message), 0x20 RSV1 on the last continuation too, 0x40
//!   a zero masking key, 0x80 u16 lengths (`% 16384`, else one byte).
//! - 4, a ping (0x08: a pong) of `b % 126` input bytes; 0x10 sets RSV1.
//! - 5, *raw*: `b` input bytes as they are.
//! - 6, a close frame (code from `b`); the rest of the input follows it.
//! - 7, an uncompressed single-frame message of `b` input bytes (0x08:
//!   text, as `from_utf8_lossy` makes it).
//!
//! Frames are masked when the fuzzed engine is a server (the RFC 6455
//! §5.7 key unless the tag says zero; a generated one for round trips),
//! unmasked when it is a client.
//!
//! # Checks
//!
//! - The handshake negotiates as RFC 7692 §7.1 says (see
//!   [`check_server_answer`] and [`client_role`]).
//! - No panic; every `Message` is at most `max_message_size` bytes (and an
//!   owned one's buffer at most twice that plus 64 KiB); text is UTF-8.
//! - Every `Closed` is one of: the peer's close (`CloseCause::Peer`, with
//!   the code the peer sent, 1005 without one); a failure (`Failed(e)`,
//!   with `e.close_code()`) whose code is 1002 (framing: RSV1 where
//!   RFC 7692 §6 does not allow it, masking, fragmentation, opcodes), 1007
//!   (not DEFLATE data, text that is not UTF-8 once inflated, a bad close
//!   reason) or 1009 (a frame, message or fragment count over its limit,
//!   inflated output past `max_message_size`); or 1006 at the EOF the
//!   oracle ends with. 1011 is the engine's code for
//!   `CompressorUnavailable`, i.e. zlib out of memory: it cannot happen
//!   under the fuzzer's memory limit, so it is reported as a finding.
//! - Nothing after `Closed`; a closed engine consumes all input and writes
//!   nothing; at most a frame header and a control frame are left
//!   unconsumed while open.
//! - Each `handle_input` call writes less than 1 MiB.
//! - The output is valid for a second engine with matching parameters
//!   (the *receiver*): a pong per ping, the close, and with flag 0x01
//!   every message echoed compressed, each coming back identical.
//! - Round trip: as long as every operation so far has a known outcome
//!   (round trips, pings, plain messages, a close), the events are
//!   exactly those the operations encode: a message within the limits
//!   comes back identical, one over a limit (size or fragments) closes
//!   with 1009. A failure says when the peer's compressed message was
//!   larger than the engine admits on the wire (read.rs
//!   `compressed_limit`).
//! - The same events (close codes included) whether the input came in
//!   chunks or whole, as for the other connection targets.
//! - zlib memory ([`held_bytes`]) is unchanged by dropping a closed
//!   connection (it frees its streams at `Closed`), and returns to its
//!   starting value once every connection of the run is dropped. The
//!   per-thread compressors (one per window and level) and the pool of 8
//!   decompressors stay cached by design, so the first call on a thread
//!   warms them all up before the baseline is taken. The oracle runs under
//!   a process-wide lock; where other threads may end meanwhile (their
//!   caches freed: `cargo test`), only "no more than the baseline" is
//!   checked, exactly equal under `cargo fuzz` (`cfg(fuzzing)`).

use super::{find, for_each_chunk, Spec, MAX_UNCONSUMED_OPEN, RFC_REQUEST};
use edgews::protocol::accept::accept_key;
use edgews::protocol::deflate::zlib::held_bytes;
use edgews::protocol::frame::{decode_header, encode_header};
use edgews::protocol::mask::apply_mask;
use edgews::protocol::{
    CloseCause, CloseCode, Compression, Connection, DeflateConfig, DeflateMode, DeflateParams,
    Event, Message, MessageKind, OpCode, ProtocolError, Role, State, WsUrl,
};
use edgews::ProtocolConfig;
use std::borrow::Cow;
use std::cell::Cell;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// Flag of the chunking prefix: echo every message, compressed.
const FLAG_ECHO: u8 = 0x01;

/// Every engine here compresses only with [`Compression::Always`], so the
/// threshold does not matter; it is fixed because it is part of the key of
/// the per-thread compressor cache (see [`warm_up`]).
const THRESHOLD: usize = 128;

/// The receiver's limit: above any `max_message_size` drawn.
const RECEIVER_MAX: u64 = 1 << 20;

/// Generation stops past this much wire.
const MAX_WIRE: usize = 1 << 20;

/// The most operations read from one input.
const MAX_OPS: usize = 512;

/// What one `handle_input` may write: the brief's bound (an echo of the
/// largest message, compressed, is far below it).
const MAX_OUT_PER_STEP: usize = 1 << 20;

/// The RFC 6455 §5.7 masking key.
const RFC_MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Serialises the oracle across threads: [`held_bytes`] is process-wide.
static ZLIB_LOCK: Mutex<()> = Mutex::new(());

thread_local! {
    static WARM: Cell<bool> = const { Cell::new(false) };
}

/// Exact zlib balance where nothing else can free zlib memory meanwhile.
#[allow(unexpected_cfgs)]
const EXACT_BALANCE: bool = cfg!(fuzzing);

/// See the module docs.
pub fn deflate(data: &[u8]) {
    let _lock = ZLIB_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    if !WARM.with(Cell::get) {
        warm_up();
        WARM.with(|w| w.set(true));
    }
    let baseline = held_bytes();
    check(data);
    let after = held_bytes();
    if EXACT_BALANCE {
        assert_eq!(after, baseline, "zlib memory not returned");
    } else {
        assert!(after <= baseline, "zlib memory grew: {baseline} -> {after}");
    }
}

// ---------------------------------------------------------------------------
// Parameters

/// The negotiation and limits drawn from the input.
#[derive(Debug, Clone)]
struct Params {
    role: Role,
    /// The fuzzed engine's settings.
    ours: DeflateConfig,
    /// The peer engine's (sender and receiver).
    peer: DeflateConfig,
    /// `Sec-WebSocket-Extensions` in the request (server role) or the
    /// response (client role).
    extension: bool,
    server_nct: bool,
    client_nct: bool,
    server_bits: Option<u8>,
    /// `Some(None)`: `client_max_window_bits` without a value.
    client_bits: Option<Option<u8>>,
    max_message: u64,
    max_fragments: u32,
}

fn window(nibble: u8) -> u8 {
    9 + nibble % 7
}

impl Params {
    fn read(r: &mut Reader<'_>) -> Params {
        let p: [u8; 8] = std::array::from_fn(|_| r.u8());
        let role = if p[0] & 0x01 != 0 {
            Role::Client
        } else {
            Role::Server
        };
        let mode = |shared: bool| match shared {
            true => DeflateMode::Shared,
            false => DeflateMode::Dedicated,
        };
        let s = 8 + (p[1] & 7);
        let c = 8 + ((p[1] >> 3) & 7);
        // quadratic, so that most inputs get small limits (fast runs)
        let u = u64::from(u16::from_be_bytes([p[6], p[7]]) ^ 0x8000);
        let max_message = 1 + u * u / 16384;
        let max_fragments = match p[5] >> 4 {
            0 => 64,
            n => u32::from(n),
        };
        Params {
            role,
            ours: DeflateConfig {
                mode: mode(p[0] & 0x02 != 0),
                window_bits: window(p[2] & 0xf),
                client_window_bits: window(p[2] >> 4),
                mem_level: 1 + (p[3] >> 4) % 9,
                level: (p[3] & 0xf) % 10,
                threshold: THRESHOLD,
            },
            peer: DeflateConfig {
                mode: mode(p[1] & 0x40 != 0),
                window_bits: window(p[5] & 0xf),
                client_window_bits: 15,
                mem_level: 1 + (p[4] >> 4) % 9,
                level: (p[4] & 0xf) % 10,
                threshold: THRESHOLD,
            },
            extension: p[0] & 0x80 == 0,
            server_nct: p[0] & 0x04 != 0,
            client_nct: p[0] & 0x08 != 0,
            server_bits: (p[0] & 0x10 != 0).then_some(s),
            client_bits: (p[0] & 0x20 != 0)
                .then_some((p[0] & 0x40 != 0 || role == Role::Client).then_some(c)),
            max_message,
            max_fragments,
        }
    }

    /// The offer (server role) or answer (client role) header value.
    fn extension_value(&self) -> String {
        let mut s = String::from("permessage-deflate");
        if self.server_nct {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_nct {
            s.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_bits {
            s.push_str(&format!("; server_max_window_bits={bits}"));
        }
        match self.client_bits {
            None => {}
            Some(None) => s.push_str("; client_max_window_bits"),
            Some(Some(bits)) => s.push_str(&format!("; client_max_window_bits={bits}")),
        }
        s
    }

    fn config(&self) -> ProtocolConfig {
        let config = ProtocolConfig {
            max_frame_size: self.max_message,
            max_message_size: self.max_message,
            max_fragments: self.max_fragments,
            deflate: Some(self.ours.clone()),
            ..ProtocolConfig::default()
        };
        config.validate().expect("the fuzzed config is valid");
        config
    }
}

/// Reads bytes; zeros past the end.
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

    /// Up to `n` bytes.
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.bytes.split_at(n.min(self.bytes.len()));
        self.bytes = rest;
        taken
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }
}

/// xorshift64*, for masking keys and incompressible payloads.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn key(&mut self) -> [u8; 4] {
        (self.next() as u32).to_be_bytes()
    }
}

// ---------------------------------------------------------------------------
// What happened

/// How a connection ended, as compared between runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Peer,
    Failed,
    Eof,
}

/// Owned facts of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Message(bool, Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Closed(u16, Cause),
}

impl Seen {
    fn message(kind: MessageKind, data: Vec<u8>) -> Seen {
        Seen::Message(kind == MessageKind::Text, data)
    }
}

/// Short descriptions for assertion messages (payloads can be 256 KiB).
fn brief(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .map(|s| match s {
            Seen::Message(text, d) => format!(
                "Message(text={text}, {} bytes, {:02x?})",
                d.len(),
                &d[..d.len().min(16)]
            ),
            other => format!("{other:?}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Negotiation

fn url() -> WsUrl {
    WsUrl::parse("ws://localhost:9001/").unwrap()
}

/// The `Sec-WebSocket-Extensions` value of a head, if any.
fn extensions_header(head: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(head).expect("head is ASCII");
    text.split("\r\n")
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Extensions: "))
        .map(str::to_string)
}

/// RFC_REQUEST with a `Sec-WebSocket-Extensions` line, if given.
fn request_with(extension: Option<&str>) -> String {
    let head = RFC_REQUEST.strip_suffix("\r\n").unwrap();
    match extension {
        Some(e) => format!("{head}Sec-WebSocket-Extensions: {e}\r\n\r\n"),
        None => RFC_REQUEST.to_string(),
    }
}

/// A `101` for a client whose request is `request`, with `extension`.
fn response_for(request: &[u8], extension: Option<&str>) -> String {
    let at = find(request, b"Sec-WebSocket-Key: ").expect("request without a key") + 19;
    let accept = accept_key(&request[at..at + 24]);
    let mut head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        std::str::from_utf8(&accept).unwrap()
    );
    if let Some(e) = extension {
        head.push_str(&format!("Sec-WebSocket-Extensions: {e}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Feeds a whole handshake head, which must upgrade (server: an `Upgrade`
/// event; client: `Connected`).
fn feed_head(conn: &mut Connection, head: &str, out: &mut Vec<u8>, now: Instant) {
    let mut input = head.as_bytes().to_vec();
    let (used, event) = conn.handle_input(now, &mut input, out);
    match event {
        Some(Event::Upgrade(_)) | Some(Event::Connected { subprotocol: None }) => {}
        other => panic!("handshake gave {other:?} for {head:?}"),
    }
    assert_eq!(used, input.len(), "head not consumed whole");
}

/// An open fuzzed engine, negotiated as `p` says, with its output so far
/// (the handshake) and the parameters in effect.
fn open_fuzzed(p: &Params, now: Instant) -> (Connection, Vec<u8>, Option<DeflateParams>) {
    let config = Arc::new(p.config());
    let value = p.extension.then(|| p.extension_value());
    let mut out = Vec::new();
    let conn = match p.role {
        Role::Server => {
            let mut conn = Connection::server(now, config);
            feed_head(&mut conn, &request_with(value.as_deref()), &mut out, now);
            conn.accept(&mut out).expect("accept");
            let params = conn.deflate().copied();
            check_server_answer(p, params, extensions_header(&out).as_deref());
            conn
        }
        Role::Client => {
            let mut conn = Connection::client(now, config, &url(), Vec::new(), &[], &mut out);
            let answer = response_for(&out, value.as_deref());
            feed_head(&mut conn, &answer, &mut out, now);
            client_role(p, conn.deflate().copied());
            conn
        }
    };
    assert_eq!(conn.state(), State::Open);
    let params = conn.deflate().copied();
    (conn, out, params)
}

/// Server role: the engine's answer to the offer `p`, against RFC 7692
/// §7.1: every valid offer is accepted (but one limiting our window to 8
/// bits, which zlib cannot compress with, as documented); parameters it
/// accepts are in the answer (§7.1.1.1, §7.1.2.1); it limits the client's
/// window only when offered (§7.1.2.2) and tells it so; shared mode adds
/// both no-context-takeover parameters (§7.1.1); the parameters in effect
/// are what the answer says.
fn check_server_answer(p: &Params, params: Option<DeflateParams>, answer: Option<&str>) {
    let declined = !p.extension || p.server_bits == Some(8);
    let Some(params) = params else {
        assert!(declined, "offer {:?} declined", p.extension_value());
        assert_eq!(answer, None, "an answer without deflate in effect");
        return;
    };
    assert!(!declined, "no offer, or an 8-bit server window, accepted");
    let answer = answer.expect("deflate in effect without an answer");
    let mut parts = answer.split(';').map(str::trim);
    assert_eq!(parts.next(), Some("permessage-deflate"), "{answer}");
    let mut got: Vec<(&str, Option<&str>)> = parts
        .map(|part| match part.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim())),
            None => (part, None),
        })
        .collect();
    let count = got.len();
    got.sort();
    got.dedup_by_key(|(name, _)| *name);
    assert_eq!(got.len(), count, "a parameter twice in {answer}");
    let param = |name: &str| got.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let bits = |name: &str| {
        param(name).map(|v| {
            let v = v.expect("window bits without a value in an answer");
            let bits: u8 = v.parse().expect("window bits not a number");
            assert!((8..=15).contains(&bits) && !v.starts_with('0'));
            bits
        })
    };
    for (name, _) in &got {
        assert!(
            [
                "server_no_context_takeover",
                "client_no_context_takeover",
                "server_max_window_bits",
                "client_max_window_bits"
            ]
            .contains(name),
            "unknown parameter in {answer}"
        );
    }
    let shared = p.ours.mode == DeflateMode::Shared;
    let snct = param("server_no_context_takeover").is_some();
    let cnct = param("client_no_context_takeover").is_some();
    assert_eq!(snct, params.server_no_context_takeover, "{answer}");
    assert_eq!(cnct, params.client_no_context_takeover, "{answer}");
    assert!(
        !p.server_nct || snct,
        "server_no_context_takeover not honoured"
    );
    assert!(!shared || (snct && cnct), "shared mode keeps context");
    // the server's window: at most the offer's, and 9 or more
    let server = params.server_max_window_bits;
    assert!((9..=15).contains(&server), "server window {server}");
    match (p.server_bits, bits("server_max_window_bits")) {
        (Some(offered), Some(answered)) => {
            assert_eq!(answered, server);
            assert!(server <= offered, "server window over the offer");
        }
        (Some(_), None) => panic!("server_max_window_bits offered, not answered"),
        (None, answered) => assert!(answered.is_none_or(|a| a == server)),
    }
    // the client's window: limited only if offered, and then answered
    let client = params.client_max_window_bits;
    match (p.client_bits, bits("client_max_window_bits")) {
        (None, answered) => {
            assert_eq!(answered, None, "client_max_window_bits answered unasked");
            assert_eq!(client, 15, "client window limited unasked");
        }
        (Some(limit), Some(answered)) => {
            assert_eq!(answered, client);
            assert!(client <= limit.unwrap_or(15));
        }
        (Some(limit), None) => assert_eq!(client, limit.unwrap_or(15), "limit not told"),
    }
}

/// Client role: the parameters in effect are the answer's, with the
/// defaults of RFC 7692 §7.1.2 (15 bits) and `client_no_context_takeover`,
/// which our client always offers.
fn client_role(p: &Params, params: Option<DeflateParams>) {
    let want = p.extension.then(|| DeflateParams {
        server_no_context_takeover: p.server_nct,
        client_no_context_takeover: true,
        server_max_window_bits: p.server_bits.unwrap_or(15),
        client_max_window_bits: p.client_bits.flatten().unwrap_or(15),
    });
    assert_eq!(params, want, "client took {:?}", p.extension_value());
}

/// A peer of the fuzzed engine (the other role) whose parameters match
/// `params`, the fuzzed engine's: it compresses what the fuzzed engine can
/// inflate, and (`receiver`) inflates what it sends. Returns it with the
/// window it compresses with (`None`: it does not).
///
/// A client engine told `server_max_window_bits=8` reads with a window of
/// 9 (zlib has no raw window of 8), and a server engine declines to send
/// with 8: the sender gets an offer of 8 and sends uncompressed, the
/// receiver one of 9, so that it takes the client's compressed echoes.
fn open_peer(
    p: &Params,
    params: Option<DeflateParams>,
    receiver: bool,
    now: Instant,
) -> (Connection, Option<u8>) {
    let config = Arc::new(ProtocolConfig {
        max_frame_size: RECEIVER_MAX,
        max_message_size: RECEIVER_MAX,
        deflate: params.map(|_| p.peer.clone()),
        ..ProtocolConfig::default()
    });
    let mut out = Vec::new();
    match p.role {
        // the peer is a client: it takes an answer made of `params`
        Role::Server => {
            let mut peer = Connection::client(now, config, &url(), Vec::new(), &[], &mut out);
            let answer = params.map(|d| {
                let mut a = String::from("permessage-deflate");
                if d.server_no_context_takeover {
                    a.push_str("; server_no_context_takeover");
                }
                a.push_str(&format!(
                    "; server_max_window_bits={}; client_max_window_bits={}",
                    d.server_max_window_bits, d.client_max_window_bits
                ));
                a
            });
            let response = response_for(&out, answer.as_deref());
            feed_head(&mut peer, &response, &mut out, now);
            let got = peer.deflate().copied();
            let want = params.map(|d| DeflateParams {
                client_no_context_takeover: true,
                ..d
            });
            assert_eq!(got, want, "the peer client took other parameters");
            let sends = got.map(|d| d.client_max_window_bits);
            (peer, sends.filter(|&bits| bits >= 9))
        }
        // the peer is a server: it gets the offer a client with `params`
        // makes
        Role::Client => {
            let mut peer = Connection::server(now, config);
            let bits = |d: DeflateParams| match receiver {
                true => d.server_max_window_bits.max(9),
                false => d.server_max_window_bits,
            };
            let offer = params.map(|d| {
                let mut o = String::from("permessage-deflate; client_no_context_takeover");
                if d.server_no_context_takeover {
                    o.push_str("; server_no_context_takeover");
                }
                o.push_str(&format!(
                    "; server_max_window_bits={}; client_max_window_bits={}",
                    bits(d),
                    d.client_max_window_bits
                ));
                o
            });
            feed_head(&mut peer, &request_with(offer.as_deref()), &mut out, now);
            peer.accept(&mut out).expect("peer accept");
            let got = peer.deflate().copied();
            if let (Some(got), Some(ours)) = (got, params) {
                // what it sends, we can inflate
                assert!(got.server_max_window_bits <= bits(ours));
                assert!(got.server_no_context_takeover || !ours.server_no_context_takeover);
            }
            assert_eq!(got.is_some(), params.is_some_and(|d| bits(d) >= 9));
            (peer, got.map(|d| d.server_max_window_bits))
        }
    }
}

// ---------------------------------------------------------------------------
// The wire

/// The frames to feed, and what they must produce while known.
struct Wire {
    bytes: Vec<u8>,
    expect: Vec<Seen>,
    /// Every operation so far has a known outcome.
    clean: bool,
    /// A known close was generated: nothing after it matters.
    ended: bool,
    /// The masking of the fuzzed engine's input (server role).
    masked: bool,
    /// What may explain a difference from `expect`.
    notes: Vec<String>,
}

impl Wire {
    fn key(&self, key: [u8; 4]) -> Option<[u8; 4]> {
        self.masked.then_some(key)
    }

    fn frame(&mut self, fin: bool, rsv1: bool, op: OpCode, key: [u8; 4], payload: &[u8]) {
        let at = self.bytes.len();
        let mask = self.key(key);
        encode_header(&mut self.bytes, fin, op, mask, payload.len() as u64);
        if rsv1 {
            self.bytes[at] |= 0x40;
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        if let Some(key) = self.key(key) {
            apply_mask(&mut self.bytes[start..], key, 0);
        }
    }

    fn expect(&mut self, seen: Seen) {
        if self.clean {
            if matches!(seen, Seen::Closed(..)) {
                self.ended = true;
            }
            self.expect.push(seen);
        }
    }
}

/// Characters for generated text, of every UTF-8 length.
const CHARS: [char; 12] = [
    'a',
    'Z',
    ' ',
    '{',
    '\0',
    '\u{7f}',
    'é',
    '\u{7ff}',
    '€',
    '\u{ffff}',
    '𝄞',
    '\u{10ffff}',
];

/// A payload of exactly `len` bytes (text: UTF-8, padded with ASCII).
fn payload(text: bool, noise: bool, seed: &[u8], len: usize, rng: &mut Rng) -> Vec<u8> {
    if !text {
        if noise {
            let mut v = Vec::with_capacity(len + 8);
            while v.len() < len {
                v.extend_from_slice(&rng.next().to_le_bytes());
            }
            v.truncate(len);
            return v;
        }
        if seed.is_empty() {
            return vec![0; len];
        }
        return seed.iter().copied().cycle().take(len).collect();
    }
    let seed: Vec<char> = String::from_utf8_lossy(seed).chars().collect();
    let mut s = String::with_capacity(len);
    let mut i = 0usize;
    loop {
        let c = if noise {
            CHARS[(rng.next() % CHARS.len() as u64) as usize]
        } else if seed.is_empty() {
            'x'
        } else {
            seed[i % seed.len()]
        };
        i += 1;
        if s.len() + c.len_utf8() > len {
            break;
        }
        s.push(c);
    }
    while s.len() < len {
        s.push('x');
    }
    s.into_bytes()
}

/// The peer's frame for `message` (one frame, compressed when it can):
/// its payload unmasked and whether RSV1 was set.
fn compress(peer: &mut Connection, sends: Option<u8>, message: &Message<'_>) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    peer.send_message_with(message, Compression::Always, &mut out)
        .expect("peer send");
    let (h, n) = decode_header(&out, 0b100)
        .expect("peer wrote an invalid frame")
        .expect("peer wrote a truncated frame");
    assert!(h.fin && h.opcode == OpCode::from(message.kind()));
    assert_eq!(n as u64 + h.len, out.len() as u64, "peer wrote one frame");
    let rsv1 = h.rsv == 0b100;
    assert_eq!(rsv1, sends.is_some(), "Compression::Always not obeyed");
    let mut body = out[n..].to_vec();
    if let Some(key) = h.mask() {
        apply_mask(&mut body, key, 0);
    }
    if !rsv1 {
        assert_eq!(body, message.as_bytes());
    }
    (body, rsv1)
}

/// The most compressed bytes the engine takes for a message of at most
/// `max` bytes (read.rs `compressed_limit`), for the report of a refusal.
fn compressed_limit(max: u64) -> u64 {
    max + max / 256 + 1024
}

/// Builds the wire from the operations in `r`.
fn build(r: &mut Reader<'_>, p: &Params, params: Option<DeflateParams>, now: Instant) -> Wire {
    let (mut peer, sends) = open_peer(p, params, false, now);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ p.max_message);
    let mut w = Wire {
        bytes: Vec::new(),
        expect: Vec::new(),
        clean: true,
        ended: false,
        masked: p.role == Role::Server,
        notes: Vec::new(),
    };
    let max = p.max_message;
    let mut ops = 0;
    while let Some(t) = r.byte() {
        ops += 1;
        if w.ended || w.bytes.len() > MAX_WIRE || ops > MAX_OPS {
            break;
        }
        let text = t & 0x08 != 0;
        let zero_key = t & 0x40 != 0;
        let fixed_key = if zero_key { [0; 4] } else { RFC_MASK };
        let kind = if text {
            MessageKind::Text
        } else {
            MessageKind::Binary
        };
        let first_op = if text { OpCode::Text } else { OpCode::Binary };
        match t & 7 {
            0..=2 => {
                let noise = t & 0x10 != 0;
                let many = t & 0x20 != 0;
                let pings = t & 0x40 != 0;
                let near = t & 0x80 != 0;
                let raw = u64::from(r.u16());
                let seed_len = usize::from(r.u8() % 64);
                let seed = r.take(seed_len);
                let len = match near {
                    true => (max + raw % 64).saturating_sub(32),
                    false => raw % 4096,
                };
                let data = payload(text, noise, seed, len as usize, &mut rng);
                let message = Message::new(kind, data.as_slice()).expect("generated text");
                let (body, rsv1) = compress(&mut peer, sends, &message);
                let frags = 1 + usize::from(r.u8()) % if many { 64 } else { 4 };
                let ping_bits = if pings { r.u8() } else { 0 };
                let mut sizes = vec![body.len() / frags; frags];
                for s in sizes.iter_mut().take(body.len() % frags) {
                    *s += 1;
                }
                for i in 0..frags - 1 {
                    let shift = usize::from(r.u8()) % (sizes[i] + 1);
                    sizes[i] -= shift;
                    sizes[i + 1] += shift;
                }
                let over = data.len() as u64 > max || frags as u64 > u64::from(p.max_fragments);
                let key = rng.key();
                let mut at = 0;
                for (i, &size) in sizes.iter().enumerate() {
                    let op = if i == 0 {
                        first_op
                    } else {
                        OpCode::Continuation
                    };
                    let fin = i == frags - 1;
                    w.frame(fin, rsv1 && i == 0, op, key, &body[at..at + size]);
                    at += size;
                    // pings only where the message arrives: a refused one
                    // may be refused at any of its frames
                    if !fin && !over && i < 8 && ping_bits & (1 << i) != 0 {
                        let ping = vec![i as u8; i];
                        w.frame(true, false, OpCode::Ping, key, &ping);
                        w.expect(Seen::Ping(ping));
                    }
                }
                if over {
                    w.expect(Seen::Closed(1009, Cause::Failed));
                } else {
                    let limit = compressed_limit(max);
                    if rsv1 && w.clean && body.len() as u64 > limit {
                        w.notes.push(format!(
                            "message {} of {} bytes (limit {max}), compressed by the peer \
                             ({:?}, sending with a window of {} bits), takes {} bytes in {frags} \
                             fragments: over the {limit} compressed bytes the engine admits \
                             (read.rs compressed_limit)",
                            w.expect.len(),
                            data.len(),
                            p.peer,
                            sends.unwrap_or(0),
                            body.len(),
                        ));
                    }
                    w.expect(Seen::message(kind, data));
                }
            }
            3 => {
                w.clean = false;
                let no_rsv1 = t & 0x10 != 0;
                let rsv1_cont = t & 0x20 != 0;
                let long = t & 0x80 != 0;
                let frags = 1 + usize::from(r.u8() % 4);
                for i in 0..frags {
                    let len = match long {
                        true => usize::from(r.u16()) % 16384,
                        false => usize::from(r.u8()),
                    };
                    let body = r.take(len);
                    let op = if i == 0 {
                        first_op
                    } else {
                        OpCode::Continuation
                    };
                    let last = i == frags - 1;
                    let rsv1 = if i == 0 { !no_rsv1 } else { rsv1_cont && last };
                    w.frame(last, rsv1, op, fixed_key, body);
                }
            }
            4 => {
                let op = if text { OpCode::Pong } else { OpCode::Ping };
                let rsv1 = t & 0x10 != 0;
                let n = usize::from(r.u8() % 126);
                let body = r.take(n);
                w.frame(true, rsv1, op, fixed_key, body);
                w.expect(match (rsv1, text) {
                    // RFC 7692 §6, or RFC 6455 §5.2 without the extension
                    (true, _) => Seen::Closed(1002, Cause::Failed),
                    (false, true) => Seen::Pong(body.to_vec()),
                    (false, false) => Seen::Ping(body.to_vec()),
                });
            }
            5 => {
                w.clean = false;
                let n = usize::from(r.u8());
                w.bytes.extend_from_slice(r.take(n));
            }
            6 => {
                let sel = r.u8();
                let code = [
                    Some(1000u16),
                    Some(1001),
                    Some(1011),
                    Some(3000),
                    Some(4999),
                    None,
                ][usize::from(sel % 6)];
                let reason = &b"goodbye, and thanks for all the frames"[..usize::from(sel >> 3)];
                let body = match code {
                    Some(code) => [&code.to_be_bytes()[..], reason].concat(),
                    None => Vec::new(),
                };
                w.frame(true, false, OpCode::Close, fixed_key, &body);
                w.expect(Seen::Closed(code.unwrap_or(1005), Cause::Peer));
                // ignored once closed
                w.bytes.extend_from_slice(r.rest());
                break;
            }
            _ => {
                let n = usize::from(r.u8());
                let body = r.take(n);
                let data = match text {
                    true => String::from_utf8_lossy(body).into_owned().into_bytes(),
                    false => body.to_vec(),
                };
                w.frame(true, false, first_op, fixed_key, &data);
                w.expect(match data.len() as u64 > max {
                    true => Seen::Closed(1009, Cause::Failed),
                    false => Seen::message(kind, data),
                });
            }
        }
    }
    w
}

// ---------------------------------------------------------------------------
// Feeding

/// One run: the fuzzed engine fed the wire in chunks (re-presenting what
/// it left unconsumed, as a reactor does), then EOF. Returns its events
/// and what it wrote after the handshake.
fn run(p: &Params, wire: &[u8], sizes: &[u8], echo: bool, now: Instant) -> (Vec<Seen>, Vec<u8>) {
    let (mut conn, mut out, _) = open_fuzzed(p, now);
    let out_start = out.len();
    let max = p.max_message;
    let mut pending: Vec<u8> = Vec::new();
    let mut seen: Vec<Seen> = Vec::new();
    let mut closed = false;
    for_each_chunk(wire, sizes, |chunk| {
        pending.extend_from_slice(chunk);
        let total = pending.len();
        let mut pos = 0;
        let mut events = 0usize;
        loop {
            let state_before = conn.state();
            let out_before = out.len();
            let available = pending.len() - pos;
            let (used, event) = conn.handle_input(now, &mut pending[pos..], &mut out);
            assert!(used <= available, "consumed {used} of {available} bytes");
            pos += used;
            let written = out.len() - out_before;
            assert!(
                written < MAX_OUT_PER_STEP,
                "one input wrote {written} bytes"
            );
            let Some(event) = event else { break };
            events += 1;
            assert!(events <= total + 1, "events without consuming input");
            assert!(!closed, "event after Closed: {event:?}");
            let s = match event {
                Event::Message(m) => {
                    let bytes = m.as_bytes();
                    assert!(
                        bytes.len() as u64 <= max,
                        "message of {} bytes over the limit {max}",
                        bytes.len()
                    );
                    if m.kind() == MessageKind::Text {
                        assert!(std::str::from_utf8(bytes).is_ok(), "text is not UTF-8");
                        assert!(m.as_text().is_some());
                    }
                    if let Cow::Owned(v) = m.data() {
                        assert!(
                            v.capacity() as u64 <= 2 * max + (64 << 10),
                            "a message of {} bytes holds {} (limit {max})",
                            v.len(),
                            v.capacity()
                        );
                    }
                    assert_eq!(written, 0, "engine wrote while delivering a message");
                    assert_eq!(state_before, State::Open);
                    if echo {
                        conn.send_message_with(&m, Compression::Always, &mut out)
                            .expect("echo refused");
                        let added = out.len() - out_before;
                        assert!(added < MAX_OUT_PER_STEP, "echo of {added} bytes");
                    }
                    Seen::message(m.kind(), m.into_data().into_owned())
                }
                Event::Ping(payload) => Seen::Ping(payload.to_vec()),
                Event::Pong(payload) => {
                    assert_eq!(written, 0, "engine wrote on a pong");
                    Seen::Pong(payload.to_vec())
                }
                Event::Closed(c) => {
                    closed = true;
                    assert_eq!(conn.state(), State::Closed);
                    assert!(!conn.wants_read());
                    let cause = match &c.cause {
                        CloseCause::Peer => {
                            assert!(c.code.is_valid_on_wire() || c.code == CloseCode::NO_STATUS);
                            Cause::Peer
                        }
                        CloseCause::Failed(ProtocolError::CompressorUnavailable) => {
                            panic!("1011: no memory for a decompressor")
                        }
                        CloseCause::Failed(e) => {
                            assert_eq!(c.code, e.close_code());
                            assert!(
                                matches!(c.code.0, 1002 | 1007 | 1009),
                                "failed with {}: {e}",
                                c.code.0
                            );
                            Cause::Failed
                        }
                        other => panic!("input closed by {other:?}"),
                    };
                    if conn.deflate().is_some() {
                        panic!("a closed connection keeps its deflate state");
                    }
                    Seen::Closed(c.code.0, cause)
                }
                other => panic!("handshake event after the handshake: {other:?}"),
            };
            seen.push(s);
        }
        pending.drain(..pos);
        if closed {
            assert!(pending.is_empty(), "closed engine left input unconsumed");
        } else {
            assert!(
                pending.len() <= MAX_UNCONSUMED_OPEN,
                "{} bytes left unconsumed",
                pending.len()
            );
        }
    });
    if !closed {
        match conn.handle_eof(now) {
            Some(Event::Closed(c)) => {
                assert_eq!((c.code, c.cause), (CloseCode::ABNORMAL, CloseCause::Eof));
                seen.push(Seen::Closed(1006, Cause::Eof));
            }
            other => panic!("EOF gave {other:?}"),
        }
    }
    // closed: everything is ignored, nothing written
    let before = out.len();
    let mut junk = *b"\xc1\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    let (used, event) = conn.handle_input(now, &mut junk, &mut out);
    assert!(
        event.is_none() && used == junk.len(),
        "closed engine took input"
    );
    assert_eq!(out.len(), before, "closed engine wrote");
    // the zlib streams went at Closed: dropping the connection frees none
    let held = held_bytes();
    drop(conn);
    if EXACT_BALANCE {
        assert_eq!(held_bytes(), held, "a closed connection held zlib memory");
    }
    (seen, out.split_off(out_start))
}

/// What the receiver must report for the fuzzed engine's output.
fn receiver_expects(seen: &[Seen], echo: bool) -> Vec<Seen> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Ping(p) => Some(Seen::Pong(p.clone())),
            Seen::Message(..) if echo => Some(s.clone()),
            Seen::Closed(code, Cause::Failed) => Some(Seen::Closed(*code, Cause::Peer)),
            Seen::Closed(code, Cause::Peer) => {
                let echoed = if *code == 1005 { 1000 } else { *code };
                Some(Seen::Closed(echoed, Cause::Peer))
            }
            _ => None,
        })
        .collect()
}

/// Feeds the fuzzed engine's output to a matching peer: it must take it
/// all as valid frames and report `expect`.
fn receive(
    p: &Params,
    params: Option<DeflateParams>,
    output: &[u8],
    expect: &[Seen],
    now: Instant,
) {
    let (mut peer, _) = open_peer(p, params, true, now);
    let mut input = output.to_vec();
    let mut pos = 0;
    let mut out = Vec::new();
    let mut got = Vec::new();
    loop {
        let (used, event) = peer.handle_input(now, &mut input[pos..], &mut out);
        pos += used;
        let s = match event {
            None => break,
            Some(Event::Message(m)) => Seen::message(m.kind(), m.into_data().into_owned()),
            Some(Event::Ping(p)) => Seen::Ping(p.to_vec()),
            Some(Event::Pong(p)) => Seen::Pong(p.to_vec()),
            Some(Event::Closed(c)) => match c.cause {
                CloseCause::Peer => Seen::Closed(c.code.0, Cause::Peer),
                other => panic!("the receiver failed on the engine's output: {other:?}"),
            },
            Some(other) => panic!("the receiver got {other:?}"),
        };
        got.push(s);
    }
    assert_eq!(pos, input.len(), "the engine's output ends mid-frame");
    assert!(
        got == expect,
        "the receiver saw {:?}, expected {:?}",
        brief(&got),
        brief(expect)
    );
}

fn check(data: &[u8]) {
    let spec = Spec::parse(data);
    let echo = spec.flag(FLAG_ECHO);
    let mut r = Reader { bytes: spec.body };
    let p = Params::read(&mut r);
    let now = Instant::now();
    let params = {
        let (conn, _, params) = open_fuzzed(&p, now);
        drop(conn);
        params
    };
    let wire = build(&mut r, &p, params, now);

    let (seen, output) = run(&p, &wire.bytes, spec.sizes, echo, now);
    // the known prefix of the events, and all of them when all is known
    let known = &wire.expect;
    assert!(
        seen.len() >= known.len() && seen[..known.len()] == known[..],
        "events {:?}, expected {:?} first; {:?}",
        brief(&seen),
        brief(known),
        wire.notes
    );
    if wire.clean && !wire.ended {
        assert!(
            seen.len() == known.len() + 1 && seen[known.len()] == Seen::Closed(1006, Cause::Eof),
            "events {:?}, expected {:?} then EOF; {:?}",
            brief(&seen),
            brief(known),
            wire.notes
        );
    }
    receive(&p, params, &output, &receiver_expects(&seen, echo), now);

    if !spec.sizes.is_empty() {
        let (whole, output) = run(&p, &wire.bytes, &[], echo, now);
        assert!(
            whole == seen,
            "chunking changed the events: whole {:?}, chunked {:?}",
            brief(&whole),
            brief(&seen)
        );
        receive(&p, params, &output, &receiver_expects(&whole, echo), now);
    }
}

// ---------------------------------------------------------------------------
// Warm-up

/// Fills this thread's caches the engine keeps by design, so that a run
/// leaves zlib's memory where it found it: a shared compressor for every
/// window (9 to 15) and level (0 to 9) with the engine's shared memLevel and [`THRESHOLD`]
/// (the only encodings an engine here compresses with when it keeps no
/// context), and the pool of 8 decompressors, each with its window
/// allocated (zlib allocates it on first output, and keeps it across
/// resets).
fn warm_up() {
    let now = Instant::now();
    let shared = |level: u8| {
        Arc::new(ProtocolConfig {
            deflate: Some(DeflateConfig {
                level,
                threshold: THRESHOLD,
                ..DeflateConfig::shared()
            }),
            ..ProtocolConfig::default()
        })
    };
    for bits in 9..=15 {
        for level in 0..=9 {
            let mut server = Connection::server(now, shared(level));
            let offer = format!("permessage-deflate; server_max_window_bits={bits}");
            let mut out = Vec::new();
            feed_head(&mut server, &request_with(Some(&offer)), &mut out, now);
            server.accept(&mut out).unwrap();
            let before = out.len();
            server
                .send_message_with(
                    &Message::binary(&b"warm"[..]),
                    Compression::Always,
                    &mut out,
                )
                .unwrap();
            assert_eq!(out[before] & 0x40, 0x40, "warm-up message not compressed");
        }
    }
    // eight connections in the middle of a compressed message (the first
    // fragment of one, RFC 7692 §7.2.3.1's "Hello") each borrow a pooled
    // decompressor
    let mut servers = Vec::new();
    for _ in 0..8 {
        let mut server = Connection::server(now, shared(6));
        let mut out = Vec::new();
        feed_head(
            &mut server,
            &request_with(Some("permessage-deflate")),
            &mut out,
            now,
        );
        server.accept(&mut out).unwrap();
        let mut frame = vec![
            0x41, 0x87, 0, 0, 0, 0, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00,
        ];
        let len = frame.len();
        let (used, event) = server.handle_input(now, &mut frame, &mut out);
        assert!(used == len && event.is_none());
        servers.push(server);
    }
    drop(servers);
}
