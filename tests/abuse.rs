//! Hostile input against the echo server over real loopback TCP, each with
//! the bound it must respect: time (slowloris, half-open peers), memory
//! (floods, huge announced lengths, readers that never read) and file
//! descriptors (abandoned connections, connection storms).
//!
//! The server runs in the test's process, so its memory is that process's
//! VmRSS and its sockets are entries of /proc/self/fd. Each test therefore
//! runs alone in a fresh process (see [`ran_in_child`]) and measures before
//! and after. RSS only counts
//! pages that were touched: memory reserved but never written does not show,
//! which is why the huge-length tests also rely on the process surviving (an
//! allocation of 2^62 bytes would abort it).
//!
//! Run with `cargo test --test abuse -- --nocapture` to see the figures.

mod support;

use edgews::protocol::frame::OpCode;
use edgews::protocol::{Closed, Message};
use edgews::reactor::{ConnId, Context, Handler, OpenInfo};
use edgews::server::Echo;
use edgews::ServerConfig;
use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::measure::{fd_count, fds_return_to, rss, wait_until, RssWatch, MIB};
use support::process::ran_in_child;
use support::{client_frame, client_header, upgrade_request, RawClient, TestServer};

/// How long any single read may block before the test fails instead of hanging.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The default configuration, with a short shutdown so that a test that
/// ends with a connection open does not wait for its close reply.
fn config() -> ServerConfig {
    ServerConfig {
        shutdown_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    }
}

/// An open WebSocket connection whose reads give up after [`READ_TIMEOUT`].
fn open(addr: SocketAddr) -> RawClient {
    let client = RawClient::open(addr, "/");
    client.stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    client
}

/// Checks that the server still echoes, and warms up its buffers so that
/// they do not count as growth later.
fn assert_echoes(addr: SocketAddr) -> Duration {
    let start = Instant::now();
    let mut client = open(addr);
    client.send(&client_frame(true, OpCode::Text, b"still serving"));
    let frame = client.read_frame().expect("the echo");
    assert_eq!(frame.payload, b"still serving");
    start.elapsed()
}

/// Lets the server finish closing what a test just dropped, before a baseline.
fn quiesce() {
    std::thread::sleep(Duration::from_millis(100));
}

/// Reads until EOF (or a reset) within `limit`: what arrived, and whether
/// the connection ended.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + limit;
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (data, false);
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => return (data, true),
            Ok(n) => data.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return (data, true),
        }
    }
}

/// One frame from the server (unmasked): opcode and payload.
fn read_server_frame(r: &mut impl Read) -> io::Result<(OpCode, Vec<u8>)> {
    let mut h = [0u8; 2];
    r.read_exact(&mut h)?;
    let opcode = OpCode::from_u8(h[0] & 0x0f).expect("a defined opcode");
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            r.read_exact(&mut b)?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload)?;
    Ok((opcode, payload))
}

/// Waits while a writer makes progress; returns once `done` is set or the
/// byte count has not moved for `quiet`.
fn wait_for_writer_stall(written: &AtomicU64, done: &AtomicBool, quiet: Duration) -> bool {
    let mut last = written.load(Ordering::SeqCst);
    let mut still_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        if done.load(Ordering::SeqCst) {
            return false;
        }
        let now = written.load(Ordering::SeqCst);
        if now != last {
            last = now;
            still_since = Instant::now();
        } else if still_since.elapsed() >= quiet {
            return true;
        }
    }
    false
}

/// Open and close counts, visible while the server runs.
#[derive(Default)]
struct Counters {
    opened: AtomicU64,
    closed: AtomicU64,
}

/// The echo server, counting opens and closes.
struct CountingEcho(Arc<Counters>);

impl Handler for CountingEcho {
    fn on_open(&mut self, _ctx: &mut Context<'_>, _id: ConnId, _info: &OpenInfo<'_>) {
        self.0.opened.fetch_add(1, Ordering::SeqCst);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, message: Message<'_>) {
        Echo.on_message(ctx, id, message);
    }

    fn on_close(&mut self, _ctx: &mut Context<'_>, _id: ConnId, _closed: &Closed) {
        self.0.closed.fetch_add(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------- slowloris

#[test]
fn a_slowloris_handshake_at_one_byte_per_second_gets_408_and_eof_at_the_timeout() {
    if ran_in_child("a_slowloris_handshake_at_one_byte_per_second_gets_408_and_eof_at_the_timeout")
    {
        return;
    }
    let mut config = config();
    config.protocol.handshake_timeout = Duration::from_secs(2);
    let server = TestServer::start(config, || Echo);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writer = stream.try_clone().unwrap();
    let request = upgrade_request(server.addr, "/");
    let writer_stop = stop.clone();
    let t = std::thread::spawn(move || {
        for byte in request {
            if writer.write_all(&[byte]).is_err() {
                return;
            }
            for _ in 0..10 {
                if writer_stop.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    let (data, closed) = read_until_closed(&mut stream, Duration::from_secs(8));
    let elapsed = start.elapsed();
    stop.store(true, Ordering::SeqCst);
    t.join().unwrap();
    let text = String::from_utf8_lossy(&data);
    println!("slowloris (1 byte/s, handshake_timeout 2 s): 408 + EOF after {elapsed:?}");
    assert!(text.starts_with("HTTP/1.1 408 "), "{text:?}");
    assert!(closed, "not closed");
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_millis(3000),
        "closed after {elapsed:?}"
    );
}

#[test]
fn two_thousand_slowloris_sockets_do_not_stop_a_normal_client_and_are_all_closed_at_the_timeout() {
    if ran_in_child("two_thousand_slowloris_sockets_do_not_stop_a_normal_client_and_are_all_closed_at_the_timeout") {
        return;
    }
    const SOCKETS: usize = 2_000;
    let timeout = Duration::from_secs(2);
    let mut config = config();
    config.protocol.handshake_timeout = timeout;
    let server = TestServer::start(config, || Echo);
    assert_echoes(server.addr);
    quiesce();
    let fds_before = fd_count();
    let memory = RssWatch::start();
    let opening = Instant::now();
    // paced by what the server has accepted (its socket fds appear here), so
    // that the listen backlog does not overflow and no connect waits a
    // second for a SYN retransmission (see the burst test below)
    let mut sockets: Vec<(TcpStream, Instant)> = Vec::with_capacity(SOCKETS);
    while sockets.len() < SOCKETS {
        for _ in 0..64.min(SOCKETS - sockets.len()) {
            let mut s = TcpStream::connect(server.addr).expect("connect");
            s.write_all(b"GET / HTTP/1.1\r\nHost: exa").unwrap();
            sockets.push((s, Instant::now()));
        }
        let accepted = wait_until(Duration::from_secs(5), || {
            fd_count() >= fds_before + 2 * sockets.len()
        });
        assert!(
            accepted,
            "the server stopped accepting at {}",
            sockets.len()
        );
    }
    let opened_in = opening.elapsed();
    // a normal client, while all of them hang in their handshakes
    let normal = assert_echoes(server.addr);
    let held = memory.now();
    println!(
        "slowloris x{SOCKETS}: opened in {opened_in:?}; a normal client connected and \
         echoed in {normal:?}; RSS +{held:.2} MiB while held ({:.0} bytes per socket)",
        held * MIB / SOCKETS as f64
    );
    assert!(
        normal < Duration::from_secs(1),
        "normal client took {normal:?}"
    );
    // every one is answered 408 and closed, around the timeout
    let mut earliest = Duration::MAX;
    let mut latest = Duration::ZERO;
    for (i, (s, opened)) in sockets.iter_mut().enumerate() {
        let (data, closed) = read_until_closed(s, Duration::from_secs(8));
        let after = opened.elapsed();
        assert!(data.starts_with(b"HTTP/1.1 408 "), "socket {i}: {data:?}");
        assert!(closed, "socket {i} not closed");
        earliest = earliest.min(after);
        latest = latest.max(after);
    }
    println!(
        "slowloris x{SOCKETS}: all got 408 + EOF, {earliest:?} to {latest:?} after their connect"
    );
    assert!(
        earliest >= timeout - Duration::from_millis(100),
        "{earliest:?}"
    );
    assert!(latest < timeout + Duration::from_millis(1500), "{latest:?}");
    drop(sockets);
    let reclaimed = fds_return_to(fds_before, Duration::from_secs(5));
    assert!(reclaimed.is_some(), "fds {} > {fds_before}", fd_count());
    let peak = memory.peak();
    println!("slowloris x{SOCKETS}: RSS peak +{peak:.2} MiB, client sockets included");
    // a partial head is kept per connection: at most max_head_size (8 KiB)
    // each, 16 MiB for 2,000; a few bytes each here
    assert!(peak < 4.0, "RSS grew by {peak:.2} MiB");
    let stats = server.stop();
    assert_eq!(stats.timer_closes, SOCKETS as u64, "{stats:?}");
}

// ------------------------------------------------------------ header flood

#[test]
fn a_header_flood_gets_431_and_close_without_growing_memory() {
    if ran_in_child("a_header_flood_gets_431_and_close_without_growing_memory") {
        return;
    }
    const FLOODS: usize = 100;
    let server = TestServer::start(config(), || Echo);
    assert_echoes(server.addr);
    let mut head = b"GET / HTTP/1.1\r\nHost: flood\r\n".to_vec();
    let mut i = 0;
    while head.len() < 100_000 {
        head.extend_from_slice(format!("X-Flood-{i}: {}\r\n", "z".repeat(40)).as_bytes());
        i += 1;
    }
    let fds_before = fd_count();
    let memory = RssWatch::start();
    let start = Instant::now();
    let mut streams: Vec<TcpStream> = (0..FLOODS)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    for s in &mut streams {
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        // the server may refuse and close before taking it all
        let _ = s.write_all(&head);
    }
    for (i, s) in streams.iter_mut().enumerate() {
        let (data, closed) = read_until_closed(s, Duration::from_secs(5));
        assert!(
            data.starts_with(b"HTTP/1.1 431 "),
            "flood {i}: {:?}",
            String::from_utf8_lossy(&data)
        );
        assert!(closed, "flood {i} left open");
    }
    let elapsed = start.elapsed();
    drop(streams);
    assert!(fds_return_to(fds_before, Duration::from_secs(5)).is_some());
    let grown = memory.peak();
    println!(
        "header flood: {FLOODS} x {} KB heads -> 431 + close in {elapsed:?}; RSS peak \
         +{grown:.2} MiB, +{:.2} MiB after",
        head.len() / 1000,
        memory.now()
    );
    // buffering the heads would take 10 MB
    assert!(grown < 3.0, "RSS grew by {grown:.2} MiB");
    assert_echoes(server.addr);
}

// ----------------------------------------------------------- huge lengths

#[test]
fn frames_announcing_huge_lengths_are_closed_at_once_without_allocating_the_payload() {
    if ran_in_child(
        "frames_announcing_huge_lengths_are_closed_at_once_without_allocating_the_payload",
    ) {
        return;
    }
    const PER_LENGTH: usize = 10;
    let server = TestServer::start(config(), || Echo);
    assert_echoes(server.addr);
    let limit = config().protocol.max_frame_size;
    let cases: [(&str, u64, u16); 5] = [
        ("2^63-1", (1 << 63) - 1, 1009),
        ("2^62", 1 << 62, 1009),
        ("2^40", 1 << 40, 1009),
        ("limit+1", limit + 1, 1009),
        ("2^63 (top bit set)", 1 << 63, 1002),
    ];
    let memory = RssWatch::start();
    let mut slowest = Duration::ZERO;
    for (name, len, code) in cases {
        for opcode in [OpCode::Binary, OpCode::Text] {
            let mut clients: Vec<RawClient> = (0..PER_LENGTH).map(|_| open(server.addr)).collect();
            let mut bytes = client_header(true, opcode, len);
            bytes.extend_from_slice(&[b'x'; 4096]);
            let start = Instant::now();
            for c in &mut clients {
                // the server may close before taking the payload
                let _ = c.stream.write_all(&bytes);
            }
            for c in &mut clients {
                let frame = c.read_frame().expect("a close frame");
                assert_eq!(frame.close_code(), Some(code), "{name}: {frame:?}");
                assert!(c.sees_eof_within(Duration::from_secs(2)), "{name}: no EOF");
            }
            let took = start.elapsed();
            slowest = slowest.max(took);
            assert!(took < Duration::from_secs(1), "{name}: {took:?}");
        }
    }
    let grown = memory.peak();
    println!(
        "huge lengths (2^63-1, 2^62, 2^40, limit+1 -> 1009; top bit -> 1002), \
         {PER_LENGTH} connections x 2 opcodes each: closed within {slowest:?} per group; \
         RSS peak +{grown:.2} MiB"
    );
    assert!(grown < 2.0, "RSS grew by {grown:.2} MiB");
    assert_echoes(server.addr);
}

// --------------------------------------------------------------- fragments

/// One binary message of `count` one-byte fragments (masked), unfinished
/// when `fin` is false. Byte `i` of the message is `i % 251`.
fn one_byte_fragments(count: usize, fin: bool) -> Vec<u8> {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut out = Vec::with_capacity(count * 7);
    for i in 0..count {
        let first = i == 0;
        let last = i == count - 1 && fin;
        let b0 = (u8::from(last) << 7) | if first { 0x2 } else { 0x0 };
        out.extend_from_slice(&[b0, 0x80 | 1]);
        out.extend_from_slice(&mask);
        out.push((i % 251) as u8 ^ mask[0]);
    }
    out
}

#[test]
fn a_message_in_a_million_one_byte_fragments_is_echoed_whole_with_bounded_memory() {
    if ran_in_child("a_message_in_a_million_one_byte_fragments_is_echoed_whole_with_bounded_memory")
    {
        return;
    }
    const FRAGMENTS: usize = 1_000_000;
    let mut config = config();
    config.protocol.max_fragments = 2_000_000;
    let server = TestServer::start(config, || Echo);
    assert_echoes(server.addr);
    let stream = one_byte_fragments(FRAGMENTS, true);
    let mut client = open(server.addr);
    let memory = RssWatch::start();
    let start = Instant::now();
    client.send(&stream);
    let mut reader = BufReader::with_capacity(1 << 16, client.stream.try_clone().unwrap());
    let (opcode, payload) = read_server_frame(&mut reader).expect("the echo");
    let elapsed = start.elapsed();
    let grown = memory.peak();
    assert_eq!(opcode, OpCode::Binary);
    assert_eq!(payload.len(), FRAGMENTS);
    assert!(payload
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (i % 251) as u8));
    println!(
        "1,000,000 one-byte fragments ({} MB on the wire): echoed whole in {elapsed:?}; \
         RSS peak +{grown:.2} MiB (1 MB message, the client's copy included)",
        stream.len() / 1_000_000
    );
    // the message itself is 1 MB; a per-fragment cost of even 16 bytes
    // would add 16 MB
    assert!(grown < 12.0, "RSS grew by {grown:.2} MiB");
}

#[test]
fn a_million_one_byte_fragments_get_1009_after_1024_with_max_fragments_1024() {
    if ran_in_child("a_million_one_byte_fragments_get_1009_after_1024_with_max_fragments_1024") {
        return;
    }
    let mut config = config();
    config.protocol.max_fragments = 1024;
    let server = TestServer::start(config, || Echo);
    let stream = one_byte_fragments(1_000_000, true);
    let mut client = open(server.addr);
    let mut writer = client.stream.try_clone().unwrap();
    let start = Instant::now();
    let t = std::thread::spawn(move || {
        // fails once the server has closed
        let _ = writer.write_all(&stream);
    });
    let frame = client.read_frame().expect("a close frame");
    let elapsed = start.elapsed();
    assert_eq!(frame.close_code(), Some(1009), "{frame:?}");
    assert!(String::from_utf8_lossy(&frame.payload).contains("1024 fragments"));
    assert!(client.sees_eof_within(Duration::from_secs(2)));
    t.join().unwrap();
    println!("1,000,000 fragments, max_fragments 1024: 1009 after {elapsed:?}");
    let stats = server.stop();
    assert_eq!(stats.messages_in, 0);
}

#[test]
fn fragments_that_together_exceed_the_message_limit_get_1009() {
    if ran_in_child("fragments_that_together_exceed_the_message_limit_get_1009") {
        return;
    }
    let mut config = config();
    config.protocol.max_frame_size = 1 << 20;
    config.protocol.max_message_size = 4 << 20;
    let server = TestServer::start(config, || Echo);
    assert_echoes(server.addr);
    let mut client = open(server.addr);
    let chunk = vec![0xabu8; 1 << 20];
    let first = client_frame(false, OpCode::Binary, &chunk);
    let next = client_frame(false, OpCode::Continuation, &chunk);
    let memory = RssWatch::start();
    let mut writer = client.stream.try_clone().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let sent_by_writer = sent.clone();
    let t = std::thread::spawn(move || {
        if writer.write_all(&first).is_err() {
            return;
        }
        sent_by_writer.fetch_add(1, Ordering::SeqCst);
        for _ in 0..12 {
            if writer.write_all(&next).is_err() {
                return;
            }
            sent_by_writer.fetch_add(1, Ordering::SeqCst);
        }
    });
    let frame = client.read_frame().expect("a close frame");
    assert_eq!(frame.close_code(), Some(1009), "{frame:?}");
    assert!(client.sees_eof_within(Duration::from_secs(2)));
    t.join().unwrap();
    let grown = memory.peak();
    println!(
        "1 MiB fragments against a 4 MiB message limit: 1009 after {} fragments written; \
         RSS peak +{grown:.2} MiB (the 4 MiB being assembled included)",
        sent.load(Ordering::SeqCst)
    );
    // what was assembled is at most the limit, plus a reallocation's copy
    assert!(grown < 12.0, "RSS grew by {grown:.2} MiB");
    assert_echoes(server.addr);
}

// -------------------------------------------------------------- ping flood

#[test]
fn a_ping_flood_from_a_client_that_does_not_read_keeps_the_servers_output_bounded() {
    if ran_in_child(
        "a_ping_flood_from_a_client_that_does_not_read_keeps_the_servers_output_bounded",
    ) {
        return;
    }
    // 100,000 pings (13 MB) fit almost whole in the loopback socket buffers
    // (up to ~10 MB each way here), which would hide whether the server
    // pauses; 200,000 cannot
    const PINGS: usize = 200_000;
    const PER_WRITE: usize = 1_000;
    let mut config = config();
    config.max_backpressure = 1 << 20;
    let server = TestServer::start(config, || Echo);
    assert_echoes(server.addr);
    let payload = [0x5au8; 125];
    let ping = client_frame(true, OpCode::Ping, &payload);
    assert_eq!(ping.len(), 131);
    let batch = ping.repeat(PER_WRITE);
    let mut client = open(server.addr);
    let memory = RssWatch::start();
    let written = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let mut writer = client.stream.try_clone().unwrap();
    let (w, d) = (written.clone(), done.clone());
    let start = Instant::now();
    let t = std::thread::spawn(move || {
        for _ in 0..PINGS / PER_WRITE {
            writer.write_all(&batch).expect("write pings");
            w.fetch_add(batch.len() as u64, Ordering::SeqCst);
        }
        d.store(true, Ordering::SeqCst);
    });
    let stalled = wait_for_writer_stall(&written, &done, Duration::from_millis(500));
    let unread = memory.peak();
    let at_stall = written.load(Ordering::SeqCst);
    // now read: every ping gets its pong, in order, and then an echo
    let mut reader = BufReader::with_capacity(1 << 16, client.stream.try_clone().unwrap());
    for i in 0..PINGS {
        let (opcode, data) = read_server_frame(&mut reader).expect("a pong");
        assert_eq!(opcode, OpCode::Pong, "frame {i}");
        assert_eq!(data, payload, "pong {i}");
    }
    t.join().unwrap();
    let elapsed = start.elapsed();
    client.send(&client_frame(true, OpCode::Text, b"after the flood"));
    let (opcode, data) = read_server_frame(&mut reader).expect("the echo");
    assert_eq!(
        (opcode, data.as_slice()),
        (OpCode::Text, &b"after the flood"[..])
    );
    let grown = memory.peak();
    println!(
        "ping flood: {PINGS} pings ({:.1} MiB, {:.1} MiB of pongs), max_backpressure 1 MiB: \
         writer {} after {:.1} MiB; RSS peak +{unread:.2} MiB while unread, +{grown:.2} MiB \
         in all; all pongs and the echo arrived, {elapsed:?} in all",
        (PINGS * 131) as f64 / MIB,
        (PINGS * 127) as f64 / MIB,
        if stalled { "stalled" } else { "finished" },
        at_stall as f64 / MIB
    );
    // the writer stops only if the server stops reading; reading on, it
    // would keep the pongs the kernel does not take (over 10 MiB here)
    assert!(stalled, "all pings went through unread: no backpressure?");
    assert!(unread < 6.0, "RSS grew by {unread:.2} MiB");
}

// ------------------------------------------------------- reader that never reads

#[test]
fn a_client_that_never_reads_its_echoes_is_paused_with_bounded_memory_and_loses_nothing() {
    if ran_in_child(
        "a_client_that_never_reads_its_echoes_is_paused_with_bounded_memory_and_loses_nothing",
    ) {
        return;
    }
    const SIZE: usize = 64 << 10;
    const COUNT: usize = 512; // 32 MiB
    let mut config = config();
    config.max_backpressure = 1 << 20;
    let server = TestServer::start(config, || Echo);
    assert_echoes(server.addr);
    let base: Arc<Vec<u8>> = Arc::new((0..SIZE).map(|j| (j * 7 + j / 251) as u8).collect());
    let message = move |base: &[u8], i: usize| -> Vec<u8> {
        let mut m = base.to_vec();
        m.rotate_left(i * 97 % SIZE);
        m[..8].copy_from_slice(&(i as u64).to_le_bytes());
        m
    };
    let client = open(server.addr);
    let memory = RssWatch::start();
    let written = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let mut writer = client.stream.try_clone().unwrap();
    let (w, d, b) = (written.clone(), done.clone(), base.clone());
    let start = Instant::now();
    let t = std::thread::spawn(move || {
        for i in 0..COUNT {
            let frame = client_frame(true, OpCode::Binary, &message(&b, i));
            writer.write_all(&frame).expect("write");
            w.fetch_add(frame.len() as u64, Ordering::SeqCst);
        }
        d.store(true, Ordering::SeqCst);
    });
    let stalled = wait_for_writer_stall(&written, &done, Duration::from_millis(500));
    let unread = memory.peak();
    let at_stall = written.load(Ordering::SeqCst);
    let mut reader = BufReader::with_capacity(1 << 16, client.stream.try_clone().unwrap());
    for i in 0..COUNT {
        let (opcode, data) = read_server_frame(&mut reader).expect("an echo");
        assert_eq!(opcode, OpCode::Binary, "message {i}");
        let index = u64::from_le_bytes(data[..8].try_into().unwrap());
        assert_eq!(index, i as u64, "out of order");
        assert!(data == message(&base, i), "message {i} corrupted");
    }
    t.join().unwrap();
    let elapsed = start.elapsed();
    let grown = memory.peak();
    println!(
        "never-reading client: {COUNT} x 64 KiB = 32 MiB sent, max_backpressure 1 MiB: \
         writer {} after {:.1} MiB; RSS peak +{unread:.2} MiB while unread, +{grown:.2} MiB \
         in all; all {COUNT} echoes in order and intact, {elapsed:?} in all",
        if stalled { "stalled" } else { "finished" },
        at_stall as f64 / MIB
    );
    assert!(
        stalled,
        "32 MiB went through without the reader: no backpressure?"
    );
    assert!(grown < 8.0, "RSS grew by {grown:.2} MiB");
}

// --------------------------------------------------------------- half-open

#[test]
fn a_peer_that_vanishes_is_closed_with_1011_after_ping_interval_plus_pong_timeout() {
    if ran_in_child(
        "a_peer_that_vanishes_is_closed_with_1011_after_ping_interval_plus_pong_timeout",
    ) {
        return;
    }
    let mut config = config();
    config.protocol.ping_interval = Some(Duration::from_millis(300));
    config.protocol.pong_timeout = Duration::from_millis(300);
    let server = TestServer::start(config, || Echo);
    let mut client = open(server.addr);
    let start = Instant::now();
    // the client reads but never answers, as a vanished peer would
    let ping = client.read_frame().expect("a keep-alive ping");
    let ping_at = start.elapsed();
    assert_eq!(ping.opcode, OpCode::Ping);
    let close = client.read_frame().expect("a close frame");
    let close_at = start.elapsed();
    assert_eq!(close.close_code(), Some(1011), "{close:?}");
    assert!(client.sees_eof_within(Duration::from_secs(2)));
    let eof_at = start.elapsed();
    println!(
        "half-open peer (ping 300 ms, pong timeout 300 ms): ping at {ping_at:?}, \
         1011 at {close_at:?}, EOF at {eof_at:?}"
    );
    assert!(ping_at >= Duration::from_millis(250), "{ping_at:?}");
    assert!(close_at >= Duration::from_millis(550), "{close_at:?}");
    assert!(eof_at < Duration::from_millis(1200), "{eof_at:?}");
    let stats = server.stop();
    assert_eq!((stats.opened, stats.closed, stats.timer_closes), (1, 1, 1));
}

// ------------------------------------------------- abandoned connections

/// Opens `n` WebSocket connections (handshake complete), 64 at a time.
fn open_many(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let request = upgrade_request(addr, "/");
    let mut all = Vec::with_capacity(n);
    while all.len() < n {
        let group: Vec<TcpStream> = (0..64.min(n - all.len()))
            .map(|_| {
                let mut s = TcpStream::connect(addr).expect("connect");
                s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
                s.write_all(&request).unwrap();
                s
            })
            .collect();
        for mut s in group {
            let head = read_head(&mut s);
            assert!(head.starts_with(b"HTTP/1.1 101 "), "{head:?}");
            all.push(s);
        }
    }
    all
}

/// Reads an HTTP response head byte by byte (nothing past it is consumed).
fn read_head(s: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    head
}

#[test]
fn ten_thousand_abandoned_connections_are_all_reclaimed() {
    if ran_in_child("ten_thousand_abandoned_connections_are_all_reclaimed") {
        return;
    }
    // client and server ends are both in this process: 2 fds per connection
    const BATCHES: [usize; 3] = [4_000, 4_000, 2_000];
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    let server = TestServer::start(config(), move || CountingEcho(c));
    assert_echoes(server.addr);
    quiesce();
    let fds_idle = fd_count();
    let rss_idle = rss();
    let memory = RssWatch::start();
    let start = Instant::now();
    for (b, &n) in BATCHES.iter().enumerate() {
        let t = Instant::now();
        let conns = open_many(server.addr, n);
        let opened_in = t.elapsed();
        let fds_held = fd_count();
        drop(conns); // no close frame, no goodbye
        let reclaimed = fds_return_to(fds_idle, Duration::from_secs(10));
        let all_closed = wait_until(Duration::from_secs(5), || {
            counters.closed.load(Ordering::SeqCst) == counters.opened.load(Ordering::SeqCst)
        });
        println!(
            "abandoned batch {b}: {n} opened in {opened_in:?} ({fds_held} fds held); \
             reclaimed in {reclaimed:?}"
        );
        assert!(reclaimed.is_some(), "fds {} > idle {fds_idle}", fd_count());
        assert!(all_closed, "on_close missing");
    }
    let elapsed = start.elapsed();
    assert!(assert_echoes(server.addr) < Duration::from_secs(1));
    std::thread::sleep(Duration::from_millis(200));
    let fds_after = fd_count();
    let (peak, after) = (memory.peak(), memory.now());
    println!(
        "10,000 abandoned connections in {elapsed:?}: fds {fds_idle} idle -> {fds_after} after; \
         RSS idle {:.1} MiB, peak +{peak:.2} MiB (4,000 held, client ends included), \
         after +{after:.2} MiB",
        rss_idle as f64 / MIB,
    );
    assert!(
        fds_after <= fds_idle + 2,
        "fd leak: {fds_idle} -> {fds_after}"
    );
    // what stays is the slab's capacity (no shrinking), not the connections
    assert!(after < 8.0, "RSS stayed {after:.2} MiB above idle");
    let stats = server.stop();
    // the two echo connections (warm-up and check) count too
    let total: u64 = BATCHES.iter().sum::<usize>() as u64 + 2;
    assert_eq!(stats.accepted, total, "{stats:?}");
    assert_eq!(stats.opened, total, "{stats:?}");
    assert_eq!(stats.closed, stats.opened, "{stats:?}");
    assert_eq!(counters.closed.load(Ordering::SeqCst), total);
}

// ------------------------------------------------------ connection storm

#[test]
fn a_burst_of_1000_simultaneous_connects_waits_for_no_syn_retransmission() {
    if ran_in_child("a_burst_of_1000_simultaneous_connects_waits_for_no_syn_retransmission") {
        return;
    }
    const THREADS: usize = 4;
    const PER_THREAD: usize = 250;
    let server = TestServer::start(config(), || Echo);
    assert_echoes(server.addr);
    quiesce();
    let fds_before = fd_count();
    let addr = server.addr;
    let barrier = Arc::new(std::sync::Barrier::new(THREADS));
    let start = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                (0..PER_THREAD)
                    .map(|_| {
                        let t = Instant::now();
                        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
                            .expect("connect");
                        (s, t.elapsed())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut streams = Vec::new();
    let mut slowest = Duration::ZERO;
    let mut retransmitted = 0;
    for w in workers {
        for (s, took) in w.join().expect("connect worker") {
            slowest = slowest.max(took);
            // the first SYN retransmission comes after 1 s
            if took >= Duration::from_millis(900) {
                retransmitted += 1;
            }
            streams.push(s);
        }
    }
    let elapsed = start.elapsed();
    // they are all served nonetheless
    let request = upgrade_request(addr, "/");
    for s in &mut streams {
        s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        s.write_all(&request).unwrap();
    }
    for s in &mut streams {
        let head = read_head(s);
        assert!(head.starts_with(b"HTTP/1.1 101 "), "{head:?}");
    }
    println!(
        "burst of {} connects from {THREADS} threads: {elapsed:?}, slowest connect \
         {slowest:?}, {retransmitted} waited for a SYN retransmission (listen backlog overflow)",
        THREADS * PER_THREAD
    );
    drop(streams);
    assert!(fds_return_to(fds_before, Duration::from_secs(10)).is_some());
    assert_eq!(
        retransmitted,
        0,
        "{retransmitted} of {} connects were dropped by a full listen backlog and waited \
         {slowest:?}",
        THREADS * PER_THREAD
    );
}

#[test]
fn a_storm_of_5000_handshakes_over_max_connections_is_served_or_refused_with_503() {
    if ran_in_child("a_storm_of_5000_handshakes_over_max_connections_is_served_or_refused_with_503")
    {
        return;
    }
    const BATCHES: usize = 2;
    const PER_BATCH: usize = 2_500;
    const THREADS: usize = 4;
    const MAX: usize = 1_000;
    let mut config = config();
    config.max_connections = MAX;
    let server = TestServer::start(config, || Echo);
    assert_echoes(server.addr);
    let addr = server.addr;
    let fds_before = fd_count();
    let memory = RssWatch::start();
    let (mut served_total, mut refused_total) = (0, 0);
    let start = Instant::now();
    for b in 0..BATCHES {
        let t = Instant::now();
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                std::thread::spawn(move || {
                    let request = upgrade_request(addr, "/");
                    let mut kept = Vec::new();
                    let mut refused = 0usize;
                    for _ in 0..PER_BATCH / THREADS {
                        let mut s = TcpStream::connect(addr).expect("connect");
                        s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
                        s.write_all(&request).unwrap();
                        let head = read_head(&mut s);
                        if head.starts_with(b"HTTP/1.1 101 ") {
                            kept.push(s);
                        } else {
                            let text = String::from_utf8_lossy(&head).into_owned();
                            assert!(text.starts_with("HTTP/1.1 503 "), "{text:?}");
                            let (_, closed) = read_until_closed(&mut s, Duration::from_secs(2));
                            assert!(closed, "503 left open");
                            refused += 1;
                        }
                    }
                    (kept, refused)
                })
            })
            .collect();
        let mut kept = Vec::new();
        let mut refused = 0;
        for w in workers {
            let (k, r) = w.join().expect("storm worker");
            kept.extend(k);
            refused += r;
        }
        let took = t.elapsed();
        let served = kept.len();
        println!(
            "storm batch {b}: {PER_BATCH} handshakes in {took:?} ({:.0}/s): {served} served, \
             {refused} refused with 503",
            PER_BATCH as f64 / took.as_secs_f64()
        );
        assert_eq!(served + refused, PER_BATCH);
        assert!(served <= MAX, "{served} served over the limit of {MAX}");
        // in-flight handshakes count against the limit too: a few short
        assert!(served >= MAX - 2 * THREADS, "only {served} served");
        served_total += served;
        refused_total += refused;
        drop(kept);
        assert!(
            fds_return_to(fds_before, Duration::from_secs(10)).is_some(),
            "fds {} > {fds_before}",
            fd_count()
        );
    }
    let elapsed = start.elapsed();
    let fds_after = fd_count();
    let grown = memory.peak();
    println!(
        "storm: {} handshakes in {elapsed:?}, {served_total} served, {refused_total} refused; \
         fds {fds_before} -> {fds_after}; RSS peak +{grown:.2} MiB, +{:.2} MiB after",
        BATCHES * PER_BATCH,
        memory.now()
    );
    assert!(fds_after <= fds_before + 2);
    assert!(assert_echoes(server.addr) < Duration::from_secs(1));
    let stats = server.stop();
    assert_eq!(
        stats.accepted as usize,
        BATCHES * PER_BATCH + 2,
        "{stats:?}"
    );
    assert_eq!(stats.opened as usize, served_total + 2, "{stats:?}");
    assert_eq!(
        stats.handshake_failures as usize, refused_total,
        "{stats:?}"
    );
}
