//! The `roundtrip` oracle: valid client frames, generated from the input,
//! must come out of a server as exactly the events they encode.

use super::driver::Driver;
use super::{for_each_chunk, read_out_frame, small_config, Spec, MAX_FRAME, MAX_MESSAGE};
use edgews::protocol::frame::encode_frame;
use edgews::protocol::{CloseCause, Connection, Event, MessageKind, OpCode, Role};
use std::sync::Arc;
use std::time::Instant;

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
                Event::Message(m) => Expect::Message(m.kind(), m.into_data().into_owned()),
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
