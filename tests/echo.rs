//! The echo server over real loopback TCP: message sizes around every
//! length-encoding boundary, fragments with pings between them, frames
//! pipelined behind the handshake, a thousand concurrent connections, and a
//! client that never reads (backpressure).
//!
//! Every blocking read has a timeout, so a broken server fails a test
//! instead of hanging it.

mod support;

use edgews::client::{Client, ClientConfig};
use edgews::protocol::frame::OpCode;
use edgews::protocol::MessageKind;
use edgews::server::Echo;
use edgews::ServerConfig;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};
use support::{client_frame, upgrade_request, RawClient, TestServer};

/// The memory test measures this whole process's RSS, so it runs alone:
/// it takes this lock for writing, every other test for reading.
static MEMORY_LOCK: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    MEMORY_LOCK.read().unwrap_or_else(PoisonError::into_inner)
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    MEMORY_LOCK.write().unwrap_or_else(PoisonError::into_inner)
}

const SIZES: [usize; 6] = [0, 125, 126, 65_535, 65_536, 16 << 20];

/// A client with a read timeout, so no `recv` can block forever.
fn client(server: &TestServer) -> Client {
    let config = ClientConfig {
        read_timeout: Some(Duration::from_secs(30)),
        write_timeout: Some(Duration::from_secs(30)),
        ..ClientConfig::default()
    };
    Client::connect_with(&server.url("/"), config).expect("client connects")
}

/// Deterministic bytes: message `seed`, `len` long, every byte depending on
/// both its position and the seed.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&x.to_le_bytes()[..take]);
    }
    out
}

/// Valid UTF-8 of exactly `len` bytes, mixing 1-, 2-, 3- and 4-byte characters.
fn text_of_len(len: usize) -> String {
    let mut s = String::with_capacity(len);
    let alphabet = ['a', 'é', '✓', '𝄞', ' ', 'Z', 'ж'];
    let mut i = 0;
    loop {
        let c = alphabet[i % alphabet.len()];
        if s.len() + c.len_utf8() > len {
            break;
        }
        s.push(c);
        i += 1;
    }
    while s.len() < len {
        s.push('x');
    }
    s
}

#[test]
fn text_messages_of_every_boundary_size_come_back_unchanged() {
    let _g = shared();
    let server = TestServer::start(ServerConfig::default(), || Echo);
    let mut c = client(&server);
    for len in SIZES {
        let text = text_of_len(len);
        c.send_text(&text).unwrap();
        let reply = c.recv_message().unwrap();
        assert_eq!(reply.kind(), MessageKind::Text, "kind of the {len} B echo");
        assert_eq!(reply.as_bytes().len(), len, "length of the {len} B echo");
        assert!(
            reply.as_text() == Some(text.as_str()),
            "{len} B text differs"
        );
    }
}

#[test]
fn binary_messages_of_every_boundary_size_come_back_unchanged() {
    let _g = shared();
    let server = TestServer::start(ServerConfig::default(), || Echo);
    let mut c = client(&server);
    for (i, len) in SIZES.into_iter().enumerate() {
        let data = pattern(i as u64, len);
        c.send_binary(&data).unwrap();
        let reply = c.recv_message().unwrap();
        assert_eq!(
            reply.kind(),
            MessageKind::Binary,
            "kind of the {len} B echo"
        );
        assert_eq!(reply.as_bytes().len(), len, "length of the {len} B echo");
        assert!(
            reply.as_bytes() == data.as_slice(),
            "{len} B binary differs"
        );
    }
}

/// Reads until the end of an HTTP head, byte by byte (so nothing after it
/// is consumed).
fn read_head_exactly(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("response head");
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[test]
fn echoed_frames_use_the_shortest_length_encoding_at_each_boundary() {
    let _g = shared();
    let server = TestServer::start(ServerConfig::default(), || Echo);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .write_all(&upgrade_request(server.addr, "/"))
        .unwrap();
    assert!(read_head_exactly(&mut stream).starts_with("HTTP/1.1 101 "));
    // (payload length, expected header bytes after the first)
    let cases: [(usize, Vec<u8>); 5] = [
        (0, vec![0]),
        (125, vec![125]),
        (126, vec![126, 0, 126]),
        (65_535, vec![126, 0xff, 0xff]),
        (65_536, vec![127, 0, 0, 0, 0, 0, 1, 0, 0]),
    ];
    for (len, expected) in cases {
        let payload = pattern(len as u64, len);
        stream
            .write_all(&client_frame(true, OpCode::Binary, &payload))
            .unwrap();
        let mut header = vec![0u8; 1 + expected.len()];
        stream.read_exact(&mut header).unwrap();
        assert_eq!(header[0], 0x82, "FIN + binary for {len} B");
        assert_eq!(&header[1..], &expected[..], "length encoding for {len} B");
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).unwrap();
        assert!(body == payload, "payload of {len} B");
    }
}

fn expect_frame(raw: &mut RawClient, opcode: OpCode, payload: &[u8]) {
    let frame = raw.read_frame().expect("a frame before EOF/timeout");
    assert_eq!(
        (frame.opcode, frame.payload.as_slice()),
        (opcode, payload),
        "unexpected frame"
    );
    assert!(frame.fin, "the server sent a fragment");
}

#[test]
fn a_fragmented_message_with_pings_between_its_fragments_is_pong_ed_then_echoed_whole() {
    let _g = shared();
    let server = TestServer::start(ServerConfig::default(), || Echo);
    let mut raw = RawClient::open(server.addr, "/");
    // "Hello, wörld": the 'ö' (0xC3 0xB6) is split across two fragments
    let text = "Hello, wörld".as_bytes();
    let split = text.iter().position(|&b| b == 0xC3).unwrap() + 1;
    raw.send(&client_frame(false, OpCode::Text, &text[..3]));
    raw.send(&client_frame(true, OpCode::Ping, b"p1"));
    // the pong comes at once, in the middle of the message
    expect_frame(&mut raw, OpCode::Pong, b"p1");
    raw.send(&client_frame(false, OpCode::Continuation, &text[3..split]));
    raw.send(&client_frame(true, OpCode::Ping, b"p2"));
    expect_frame(&mut raw, OpCode::Pong, b"p2");
    raw.send(&client_frame(false, OpCode::Continuation, &[]));
    raw.send(&client_frame(true, OpCode::Continuation, &text[split..]));
    expect_frame(&mut raw, OpCode::Text, text);
}

#[test]
fn fragments_and_pings_arriving_in_one_write_give_the_pongs_then_the_whole_message() {
    let _g = shared();
    let server = TestServer::start(ServerConfig::default(), || Echo);
    let mut raw = RawClient::open(server.addr, "/");
    let data = pattern(7, 200_000);
    let mut bytes = Vec::new();
    bytes.extend(client_frame(false, OpCode::Binary, &data[..70_000]));
    bytes.extend(client_frame(true, OpCode::Ping, b"a"));
    bytes.extend(client_frame(
        false,
        OpCode::Continuation,
        &data[70_000..70_001],
    ));
    bytes.extend(client_frame(true, OpCode::Ping, b"b"));
    bytes.extend(client_frame(true, OpCode::Ping, b"c"));
    bytes.extend(client_frame(true, OpCode::Continuation, &data[70_001..]));
    bytes.extend(client_frame(true, OpCode::Text, b"next"));
    raw.send(&bytes);
    expect_frame(&mut raw, OpCode::Pong, b"a");
    expect_frame(&mut raw, OpCode::Pong, b"b");
    expect_frame(&mut raw, OpCode::Pong, b"c");
    expect_frame(&mut raw, OpCode::Binary, &data);
    expect_frame(&mut raw, OpCode::Text, b"next");
}

#[test]
fn frames_pipelined_with_the_handshake_are_all_answered_in_order() {
    let _g = shared();
    let server = TestServer::start(ServerConfig::default(), || Echo);
    let mut raw = RawClient::connect(server.addr);
    let big = pattern(3, 70_000);
    let mut bytes = upgrade_request(server.addr, "/");
    bytes.extend(client_frame(true, OpCode::Text, b"one"));
    bytes.extend(client_frame(true, OpCode::Binary, &[0, 1, 2, 255]));
    bytes.extend(client_frame(true, OpCode::Ping, b"ping"));
    bytes.extend(client_frame(false, OpCode::Text, b"fr"));
    bytes.extend(client_frame(true, OpCode::Continuation, b"agmented"));
    bytes.extend(client_frame(true, OpCode::Binary, &big));
    bytes.extend(client_frame(true, OpCode::Text, b""));
    bytes.extend(client_frame(true, OpCode::Close, &1000u16.to_be_bytes()));
    raw.send(&bytes);
    let head = raw.read_http_head().expect("response head");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    expect_frame(&mut raw, OpCode::Text, b"one");
    expect_frame(&mut raw, OpCode::Binary, &[0, 1, 2, 255]);
    expect_frame(&mut raw, OpCode::Pong, b"ping");
    expect_frame(&mut raw, OpCode::Text, b"fragmented");
    expect_frame(&mut raw, OpCode::Binary, &big);
    expect_frame(&mut raw, OpCode::Text, b"");
    let close = raw.read_frame().expect("close reply");
    assert_eq!(close.close_code(), Some(1000));
    assert!(raw.sees_eof_within(Duration::from_secs(3)));
}

/// The payload of message `n` of connection `conn`: sizes vary across the
/// 125/126 boundary, and the bytes name the connection and the message.
fn concurrent_payload(conn: usize, n: usize) -> Vec<u8> {
    let mut p = format!("conn {conn} msg {n} ").into_bytes();
    let extra = (conn * 31 + n * 17) % 160;
    p.extend(std::iter::repeat_n(b'a' + (n % 26) as u8, extra));
    p
}

#[test]
fn a_thousand_concurrent_connections_each_get_their_hundred_echoes_in_order() {
    const CONNS: usize = 1000;
    const THREADS: usize = 4;
    const ROUNDS: usize = 10;
    const PER_ROUND: usize = 10; // ROUNDS * PER_ROUND = 100 messages each
    let _g = shared();
    let started = Instant::now();
    let server = TestServer::start(ServerConfig::default(), || Echo);
    let addr = server.addr;
    let mut groups: Vec<Vec<(usize, RawClient)>> = (0..THREADS).map(|_| Vec::new()).collect();
    for i in 0..CONNS {
        groups[i % THREADS].push((i, RawClient::open(addr, "/")));
    }
    let opened = started.elapsed();
    let threads: Vec<_> = groups
        .into_iter()
        .map(|mut group| {
            thread::spawn(move || {
                for round in 0..ROUNDS {
                    // every connection gets a batch in flight before any is read
                    for (conn, raw) in group.iter_mut() {
                        let mut bytes = Vec::new();
                        for k in 0..PER_ROUND {
                            let n = round * PER_ROUND + k;
                            let opcode = if n % 2 == 0 {
                                OpCode::Text
                            } else {
                                OpCode::Binary
                            };
                            bytes.extend(client_frame(true, opcode, &concurrent_payload(*conn, n)));
                        }
                        raw.send(&bytes);
                    }
                    for (conn, raw) in group.iter_mut() {
                        for k in 0..PER_ROUND {
                            let n = round * PER_ROUND + k;
                            let frame = raw
                                .read_frame()
                                .unwrap_or_else(|| panic!("conn {conn}: message {n} lost"));
                            let want = concurrent_payload(*conn, n);
                            assert!(
                                frame.payload == want,
                                "conn {conn}: expected message {n}, got {:?}",
                                String::from_utf8_lossy(&frame.payload)
                            );
                        }
                    }
                }
                group.len() * ROUNDS * PER_ROUND
            })
        })
        .collect();
    let echoed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(echoed, CONNS * ROUNDS * PER_ROUND);
    let elapsed = started.elapsed();
    eprintln!("{CONNS} connections opened in {opened:?}, {echoed} echoes in {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(45),
        "took {elapsed:?}: far too slow"
    );
    let stats = server.stop();
    assert_eq!(stats.opened, CONNS as u64);
    assert_eq!(stats.messages_in, echoed as u64);
}

/// The payload of message `i` of the backpressure test: `base` rotated by
/// an amount that depends on `i` (so no two messages are alike), with its
/// index in the first eight bytes. Cheap to build, even unoptimised.
fn flood_payload(base: &[u8], i: usize) -> Vec<u8> {
    let split = (i * 4099 + 1) % base.len();
    let mut p = Vec::with_capacity(base.len());
    p.extend_from_slice(&base[split..]);
    p.extend_from_slice(&base[..split]);
    p[..8].copy_from_slice(&(i as u64).to_le_bytes());
    p
}

#[test]
fn a_client_that_sends_64_mib_without_reading_is_paused_with_bounded_memory_and_loses_nothing() {
    const MSG: usize = 64 << 10;
    const COUNT: usize = 1024; // 64 MiB in all
    const TOTAL: usize = MSG * COUNT;
    let _g = exclusive();
    let config = ServerConfig {
        max_backpressure: 1 << 20,
        ..ServerConfig::default()
    };
    let server = TestServer::start(config, || Echo);
    let mut raw = RawClient::open(server.addr, "/");
    let mut writer = raw.stream.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let pid = std::process::id();
    let rss_before = support::rss_bytes(pid);
    assert!(rss_before > 0, "cannot read VmRSS");

    let base: Arc<[u8]> = pattern(1000, MSG).into();
    let written = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let writer_thread = {
        let (written, done, base) = (written.clone(), done.clone(), base.clone());
        thread::spawn(move || {
            for i in 0..COUNT {
                let frame = client_frame(true, OpCode::Binary, &flood_payload(&base, i));
                writer.write_all(&frame)?;
                written.fetch_add(MSG, Ordering::SeqCst);
            }
            done.store(true, Ordering::SeqCst);
            Ok::<(), std::io::Error>(())
        })
    };

    // Wait until the writer stalls: the server stopped reading this client.
    let mut rss_peak = rss_before;
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last = (0, Instant::now());
    while Instant::now() < deadline && !done.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(20));
        rss_peak = rss_peak.max(support::rss_bytes(pid));
        let now = written.load(Ordering::SeqCst);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_millis(1500) {
            break;
        }
    }
    let stalled_at = written.load(Ordering::SeqCst);
    assert!(
        !done.load(Ordering::SeqCst),
        "the server took all {TOTAL} bytes from a client that never read its echoes"
    );
    // hold the stall a little longer, sampling memory
    for _ in 0..25 {
        thread::sleep(Duration::from_millis(20));
        rss_peak = rss_peak.max(support::rss_bytes(pid));
    }
    assert_eq!(
        written.load(Ordering::SeqCst),
        stalled_at,
        "the writer made progress while the client read nothing"
    );
    let growth = rss_peak.saturating_sub(rss_before);
    eprintln!(
        "writer stalled after {} MiB; RSS {} MiB -> peak {} MiB (+{} KiB)",
        stalled_at >> 20,
        rss_before >> 20,
        rss_peak >> 20,
        growth >> 10
    );
    assert!(
        growth < 32 << 20,
        "memory grew by {} MiB while the client did not read",
        growth >> 20
    );

    // Now read: every echo arrives, in order, byte for byte.
    for i in 0..COUNT {
        let frame = raw
            .read_frame()
            .unwrap_or_else(|| panic!("echo {i} of {COUNT} missing"));
        assert_eq!(frame.opcode, OpCode::Binary);
        assert!(
            frame.payload == flood_payload(&base, i),
            "echo {i} differs (starts with index {:?})",
            frame.payload.get(..8)
        );
    }
    writer_thread
        .join()
        .unwrap()
        .expect("the writer finished once the client read");
    assert_eq!(written.load(Ordering::SeqCst), TOTAL);
    drop(raw); // gone, so shutdown need not wait for its close reply
    let stats = server.stop();
    assert_eq!(stats.bytes_in, TOTAL as u64);
}

#[test]
fn large_echoes_sent_from_the_read_buffer_keep_their_bytes_and_order_through_partial_writes() {
    let _g = shared();
    let server = TestServer::start(ServerConfig::default(), || Echo);
    let mut raw = RawClient::open(server.addr, "/");
    // around the zero-copy threshold (1 KiB) and up to most of the read
    // buffer, text and binary, with pings and small messages between them
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    for i in 0..120u64 {
        let (opcode, payload) = match i % 6 {
            0 => (OpCode::Binary, pattern(i, 1023)),
            1 => (OpCode::Binary, pattern(i, 1024)),
            2 => (OpCode::Text, text_of_len(5000 + i as usize).into_bytes()),
            3 => (OpCode::Ping, b"p".to_vec()),
            4 => (OpCode::Binary, pattern(i, 200_000)),
            _ => (OpCode::Text, b"small".to_vec()),
        };
        bytes.extend(client_frame(true, opcode, &payload));
        let answer = if opcode == OpCode::Ping {
            OpCode::Pong
        } else {
            opcode
        };
        expected.push((answer, payload));
    }
    // 4 MB written in one go while nobody reads for a while: the server's
    // socket buffer fills, so its writes are partial and the rest queues
    let mut writer = raw.stream.try_clone().unwrap();
    let sender = thread::spawn(move || writer.write_all(&bytes).unwrap());
    thread::sleep(Duration::from_millis(300));
    for (opcode, payload) in &expected {
        expect_frame(&mut raw, *opcode, payload);
    }
    sender.join().unwrap();
    raw.send(&client_frame(true, OpCode::Close, &1000u16.to_be_bytes()));
    assert_eq!(raw.read_close_code(), Some(1000));
    drop(raw);
    let stats = server.stop();
    assert!(
        stats.messages_out_zero_copy > 0,
        "no echo went out without a copy: {stats:?}"
    );
    assert!(
        stats.messages_out_zero_copy < stats.messages_out,
        "small messages are copied"
    );
}
