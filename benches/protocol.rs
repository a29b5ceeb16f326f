//! Micro-benchmarks of the sans-I/O protocol engine (`cargo bench --bench protocol`;
//! results and method in `docs/benchmarks.md`).
//!
//! Groups, and what one iteration is:
//!
//! - `header_decode`: `frame::decode_header` of one masked header in each of
//!   the three length forms (7-bit, 16-bit, 64-bit). Throughput: frames.
//! - `frame_decode`: one masked binary frame, as a client sends it, through
//!   a server [`Connection::handle_input`]: header decode and checks,
//!   unmasking in place, the borrowed `Message` event. Throughput: wire
//!   bytes (header + payload). The frame sits at the start of a `Vec`, so
//!   the payload is 6, 8 or 14 bytes past a 16-byte boundary, as in a real
//!   read buffer.
//! - `frame_decode_restore`: the cost of two other ways to give every
//!   iteration a masked frame again (see below).
//! - `frame_decode_text`: the same for a text frame, which adds the UTF-8
//!   check; restored by re-masking.
//! - `frame_encode`: `send_binary` of one message into a cleared, reused
//!   `out`, by a server (unmasked) and by a client (masked with a fresh
//!   random key per frame, as §5.3 requires); plus `encode_frame` with a
//!   fixed key, which separates out the cost of the random key.
//!   Throughput: payload bytes.
//! - `mask`: `apply_mask` against `apply_mask_naive` on a buffer at the start
//!   of a `Vec` (16-byte aligned), and `apply_mask_at14` on one 14 bytes
//!   past it, where a 64 KiB frame's payload starts. Throughput: bytes.
//! - `utf8`: `Utf8Validator::feed` + `finish` of a whole text, ASCII and
//!   Greek, CJK and emoji text. Throughput: bytes.
//! - `handshake`: `Connection::server`, `handle_input` of a typical browser
//!   upgrade request (to the `Upgrade` event), and `accept` (the 101 answer).
//! - `deflate`: permessage-deflate on a server that negotiated it with that
//!   browser request: `send_message` of JSON-like text (compress, frame),
//!   with context takeover (`dedicated`, the defaults: window 12, memLevel
//!   5) and without (`shared`: the per-thread compressor, reset per
//!   message); and `handle_input` of the same message compressed and
//!   masked as a client sends it (unmask, inflate, UTF-8 check), re-masked
//!   after each decode. Throughput: uncompressed bytes.
//!
//! Restoring the input. `handle_input` XORs the payload with the key in
//! place. XOR is its own inverse and the work does not depend on the bytes,
//! so `frame_decode` feeds the same buffer again: each iteration unmasks
//! what the previous one left masked, with no restoring work at all. That
//! only works for binary frames (a text payload must be UTF-8 once
//! unmasked). The alternatives, measured in `frame_decode_restore` on the
//! same binary frames so they compare directly with `frame_decode/binary`:
//! `remask` applies the mask again after each decode (one extra
//! `apply_mask` inside the measured time), `copy` uses `iter_batched_ref`
//! over fresh clones (the clone is outside the measured time, but each
//! iteration reads a different, colder buffer).
//!
//! Criterion settings (warm-up 1 s, measurement 2 s, 20 samples) keep the
//! whole suite near 2.5 minutes; command-line flags (`--measurement-time`,
//! `--sample-size`, `--warm-up-time`) override them for a careful run.

use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput,
};
use edgews::protocol::frame::{decode_header, encode_frame, encode_header, OpCode};
use edgews::protocol::mask::{apply_mask, apply_mask_naive};
use edgews::protocol::utf8::Utf8Validator;
use edgews::protocol::{Connection, DeflateConfig, Event, Message, MessageKind, Role};
use edgews::ProtocolConfig;
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A frame as a client sends it: masked with `KEY`.
fn masked_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    encode_frame(&mut frame, true, opcode, Some(KEY), payload);
    frame
}

/// A deterministic, non-constant payload.
fn payload(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 7)) as u8)
        .collect()
}

/// ASCII text of exactly `len` bytes.
fn ascii_text(len: usize) -> Vec<u8> {
    let words = b"The quick brown fox jumps over the lazy dog. ";
    words.iter().copied().cycle().take(len).collect()
}

fn label(len: usize) -> String {
    match len {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{}MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{}KiB", n >> 10),
        n => format!("{n}B"),
    }
}

/// Feeds one whole frame to an open server connection; returns the message
/// length, which proves the frame was decoded as one message.
#[inline(always)]
fn decode_one(conn: &mut Connection, now: Instant, input: &mut [u8], out: &mut Vec<u8>) -> usize {
    match conn.handle_input(now, input, out) {
        (_, Some(Event::Message(message))) => message.as_bytes().len(),
        (_, other) => panic!("expected a message, got {other:?}"),
    }
}

fn header_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("header_decode");
    group.throughput(Throughput::Elements(1));
    let cases: [(&str, u64); 3] = [("len7", 20), ("len16", 1024), ("len64", 1 << 20)];
    for (name, len) in cases {
        let mut header = Vec::new();
        encode_header(&mut header, true, OpCode::Binary, Some(KEY), len);
        // the checks are the same ones a real frame gets
        let (h, n) = decode_header(&header, 0).unwrap().unwrap();
        assert_eq!((h.len, n), (len, header.len()));
        // Fold the fields into one word, as the engine reads them from
        // registers: handing the whole `Result` to `black_box` would make it
        // spill the byte-wise-written header and reload it as words, a
        // store-forwarding stall (about 5 ns here) that no caller pays.
        group.bench_function(name, |b| {
            b.iter(|| match decode_header(black_box(&header), 0) {
                Ok(Some((h, n))) => {
                    h.len
                        ^ n as u64
                        ^ u64::from(h.opcode.as_u8())
                        ^ u64::from(h.fin)
                        ^ u64::from(h.mask().map_or(0, u32::from_ne_bytes))
                }
                _ => 0,
            })
        });
    }
    group.finish();
}

fn frame_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_decode");
    let now = Instant::now();
    let config = Arc::new(ProtocolConfig::default());
    for len in [0, 20, 125, 1 << 10, 16 << 10, 64 << 10, 1 << 20] {
        let mut frame = masked_frame(OpCode::Binary, &payload(len));
        let mut conn = Connection::open(now, config.clone(), Role::Server);
        let mut out = Vec::new();
        assert_eq!(decode_one(&mut conn, now, &mut frame, &mut out), len);
        assert!(out.is_empty());
        group.throughput(Throughput::BytesDecimal(frame.len() as u64));
        group.bench_function(BenchmarkId::new("binary", label(len)), |b| {
            // each iteration unmasks what the previous one re-masked (XOR)
            b.iter(|| decode_one(&mut conn, now, black_box(&mut frame), &mut out))
        });
    }
    group.finish();
}

fn frame_decode_restore(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_decode_restore");
    let now = Instant::now();
    let config = Arc::new(ProtocolConfig::default());
    for len in [20, 64 << 10] {
        let pristine = masked_frame(OpCode::Binary, &payload(len));
        let header_len = pristine.len() - len;
        let mut conn = Connection::open(now, config.clone(), Role::Server);
        let mut out = Vec::new();
        group.throughput(Throughput::BytesDecimal(pristine.len() as u64));

        // `frame_decode/binary` is the third way, toggling (no restore at all)
        let mut frame = pristine.clone();
        group.bench_function(BenchmarkId::new("remask", label(len)), |b| {
            b.iter(|| {
                let n = decode_one(&mut conn, now, black_box(&mut frame), &mut out);
                apply_mask(&mut frame[header_len..], KEY, 0);
                n
            })
        });
        group.bench_function(BenchmarkId::new("copy", label(len)), |b| {
            b.iter_batched_ref(
                || pristine.clone(),
                |frame| decode_one(&mut conn, now, frame, &mut out),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn frame_decode_text(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_decode_text");
    let now = Instant::now();
    let config = Arc::new(ProtocolConfig::default());
    for len in [20, 64 << 10] {
        let mut frame = masked_frame(OpCode::Text, &ascii_text(len));
        let header_len = frame.len() - len;
        let mut conn = Connection::open(now, config.clone(), Role::Server);
        let mut out = Vec::new();
        group.throughput(Throughput::BytesDecimal(frame.len() as u64));
        // unmask + UTF-8 check, then the mask again so the next iteration
        // sees a client's frame (`frame_decode_restore/remask` prices that)
        group.bench_function(BenchmarkId::new("ascii_remask", label(len)), |b| {
            b.iter(|| {
                let n = decode_one(&mut conn, now, black_box(&mut frame), &mut out);
                apply_mask(&mut frame[header_len..], KEY, 0);
                n
            })
        });
    }
    group.finish();
}

fn frame_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_encode");
    let now = Instant::now();
    let config = Arc::new(ProtocolConfig::default());
    for len in [20, 1 << 10, 64 << 10] {
        let data = payload(len);
        group.throughput(Throughput::BytesDecimal(len as u64));
        for (name, role) in [("server", Role::Server), ("client", Role::Client)] {
            let mut conn = Connection::open(now, config.clone(), role);
            let mut out = Vec::with_capacity(len + 14);
            group.bench_function(BenchmarkId::new(name, label(len)), |b| {
                b.iter(|| {
                    out.clear();
                    conn.send_binary(black_box(&data), &mut out).unwrap();
                    out.len()
                })
            });
        }
        if len != 20 {
            continue;
        }
        let mut out = Vec::with_capacity(len + 14);
        group.bench_function(BenchmarkId::new("fixed_key", label(len)), |b| {
            b.iter(|| {
                out.clear();
                encode_frame(
                    &mut out,
                    true,
                    OpCode::Binary,
                    Some(black_box(KEY)),
                    black_box(&data),
                );
                out.len()
            })
        });
    }
    group.finish();
}

fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for len in [20, 1 << 10, 64 << 10] {
        let mut buf = payload(len);
        group.throughput(Throughput::BytesDecimal(len as u64));
        group.bench_function(BenchmarkId::new("apply_mask", label(len)), |b| {
            b.iter(|| apply_mask(black_box(&mut buf), black_box(KEY), 0))
        });
        group.bench_function(BenchmarkId::new("naive", label(len)), |b| {
            b.iter(|| apply_mask_naive(black_box(&mut buf), black_box(KEY), 0))
        });
        if len >= 1 << 10 {
            // where a 64 KiB frame's payload sits: 14 bytes past the start
            let mut frame = payload(len + 14);
            group.bench_function(BenchmarkId::new("apply_mask_at14", label(len)), |b| {
                b.iter(|| apply_mask(black_box(&mut frame[14..]), black_box(KEY), 0))
            });
        }
    }
    group.finish();
}

/// Text of exactly `len` bytes made of `sample` repeated, padded with ASCII
/// spaces where the next code point would not fit.
fn text_of(sample: &str, len: usize) -> Vec<u8> {
    let mut text = String::with_capacity(len);
    for ch in sample.chars().cycle() {
        if text.len() + ch.len_utf8() > len {
            break;
        }
        text.push(ch);
    }
    while text.len() < len {
        text.push(' ');
    }
    text.into_bytes()
}

fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    let samples = [
        ("ascii", "The quick brown fox jumps over the lazy dog. "),
        ("greek", "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. κόσμε "),
        (
            "cjk",
            "いろはにほへと ちりぬるを 天地玄黄宇宙洪荒 다람쥐 헌 쳇바퀴에 ",
        ),
        ("emoji", "🦀🚀✨ ok 👍🏽 🇬🇷 🎉 "),
    ];
    for len in [1 << 10, 64 << 10] {
        group.throughput(Throughput::BytesDecimal(len as u64));
        for (name, sample) in samples {
            let text = text_of(sample, len);
            assert_eq!(text.len(), len);
            assert!(std::str::from_utf8(&text).is_ok());
            group.bench_function(BenchmarkId::new(name, label(len)), |b| {
                b.iter(|| {
                    let mut v = Utf8Validator::new();
                    v.feed(black_box(&text)).unwrap();
                    v.finish().unwrap();
                })
            });
        }
    }
    group.finish();
}

/// What Chrome sends to `ws://example.com:8080/chat` (cookies aside).
const BROWSER_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
Host: example.com:8080\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: http://example.com:8080\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
\r\n";

fn handshake(c: &mut Criterion) {
    let mut group = c.benchmark_group("handshake");
    group.throughput(Throughput::Elements(1));
    let now = Instant::now();
    let config = Arc::new(ProtocolConfig::default());
    let mut input = BROWSER_REQUEST.to_vec();
    let mut out = Vec::with_capacity(4096);
    let run = |input: &mut [u8], out: &mut Vec<u8>| {
        out.clear();
        let mut conn = Connection::server(now, config.clone());
        match conn.handle_input(now, input, out) {
            (n, Some(Event::Upgrade(request))) => {
                debug_assert_eq!(n, BROWSER_REQUEST.len());
                black_box(request.target);
            }
            (_, other) => panic!("expected an upgrade, got {other:?}"),
        }
        conn.accept(out).unwrap();
        out.len()
    };
    run(&mut input, &mut out);
    assert!(out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    assert!(out
        .windows(28)
        .any(|w| w == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    group.bench_function("browser_request_101", |b| {
        b.iter(|| run(black_box(&mut input), &mut out))
    });
    group.finish();
}

/// `len` bytes of JSON-like chat records (ASCII), the same every run.
fn json_text(len: usize) -> Vec<u8> {
    const WORDS: [&str; 8] = [
        "hello", "world", "edge", "socket", "room", "alice", "bob", "ping",
    ];
    let mut text = String::new();
    let mut seed = 7u32;
    while text.len() < len {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let word = |n: u32| WORDS[(seed >> n) as usize % WORDS.len()];
        text.push_str(&format!(
            r#"{{"id":{},"user":"{}","text":"{} {} {}"}},"#,
            seed % 10_000,
            word(3),
            word(7),
            word(11),
            word(15)
        ));
    }
    text.truncate(len);
    text.into_bytes()
}

/// A server connection that accepted the browser's deflate offer.
fn deflate_server(deflate: DeflateConfig) -> Connection {
    let now = Instant::now();
    let config = Arc::new(ProtocolConfig {
        deflate: Some(deflate),
        ..ProtocolConfig::default()
    });
    let mut conn = Connection::server(now, config);
    let mut input = BROWSER_REQUEST.to_vec();
    let mut out = Vec::new();
    conn.handle_input(now, &mut input, &mut out);
    conn.accept(&mut out).unwrap();
    assert!(conn.deflate().is_some());
    conn
}

fn deflate(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate");
    let now = Instant::now();
    for len in [1024, 16 << 10] {
        let text = json_text(len);
        let message = Message::new(MessageKind::Text, &text[..]).unwrap();
        group.throughput(Throughput::Bytes(len as u64));
        for (name, config) in [
            ("dedicated", DeflateConfig::default()),
            ("shared", DeflateConfig::shared()),
        ] {
            let mut server = deflate_server(config);
            let mut out = Vec::with_capacity(len + 64);
            group.bench_function(BenchmarkId::new(format!("send_{name}"), label(len)), |b| {
                b.iter(|| {
                    out.clear();
                    server.send_message(black_box(&message), &mut out).unwrap();
                    out.len()
                })
            });
        }
        // the message as a client sends it: compressed without context in
        // the window the server asked for (12 bits, the default), masked,
        // RSV1 set
        let mut compressed = Vec::new();
        deflate_server(DeflateConfig::default())
            .send_message(&message, &mut compressed)
            .unwrap();
        let (header, at) = decode_header(&compressed, 0b100).unwrap().unwrap();
        let mut frame = Vec::new();
        encode_header(&mut frame, true, OpCode::Text, Some(KEY), header.len);
        frame[0] |= 0x40;
        let start = frame.len();
        frame.extend_from_slice(&compressed[at..]);
        apply_mask(&mut frame[start..], KEY, 0);
        let mut server = deflate_server(DeflateConfig::default());
        let mut out = Vec::new();
        group.bench_function(BenchmarkId::new("receive", label(len)), |b| {
            b.iter(|| {
                let n = match server.handle_input(now, &mut frame, &mut out) {
                    (_, Some(Event::Message(m))) => m.as_bytes().len(),
                    (_, other) => panic!("expected a message, got {other:?}"),
                };
                apply_mask(&mut frame[start..], KEY, 0);
                n
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = header_decode, frame_decode, frame_decode_restore, frame_decode_text, frame_encode, mask, utf8, handshake, deflate
}
criterion_main!(benches);
