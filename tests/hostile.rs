//! Hostile clients against the real `edgews` binary: one child process per
//! test on an ephemeral loopback port, attacked over real TCP and measured
//! from outside: its peak memory (VmHWM), its descriptors (/proc/PID/fd),
//! its `/metrics` and its log.
//!
//! Each test prints what it measured; see them with
//! `cargo test --test hostile -- --nocapture`.

mod support;

use edgews::protocol::frame::OpCode;
use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::measure::{poll_until, MIB};
use support::process::{
    http_exchange, http_get, metric_value, series_of, start, Launch, ServerProcess,
};
use support::proxy::token;
use support::{client_frame, upgrade_request, RawClient};

/// Every mode of the binary.
const MODES: [&str; 4] = ["echo", "broadcast", "pubsub", "chat"];
/// What "promptly" means for reclaiming a connection: the goal is 1 s.
const RECLAIM_DEADLINE: Duration = Duration::from_secs(3);

// ------------------------------------------------------------ helpers

/// The path a client of `mode` opens (chat: room `r` as `name`).
fn path_for(mode: &str, name: &str) -> String {
    match mode {
        "pubsub" => "/topics/t".into(),
        "chat" => format!("/ws?room=r&name={name}"),
        _ => "/".into(),
    }
}

/// One ordinary message of `mode`, its text `size` bytes or so.
fn message_for(mode: &str, size: usize) -> Vec<u8> {
    let text = "x".repeat(size);
    let message = match mode {
        "pubsub" => json!({"op": "publish", "topic": "t", "data": text}).to_string(),
        "chat" => json!({"type": "message", "room": "r", "text": text}).to_string(),
        _ => text,
    };
    client_frame(true, OpCode::Text, message.as_bytes())
}

/// A close frame with `code`.
fn close_frame(code: u16) -> Vec<u8> {
    client_frame(true, OpCode::Close, &code.to_be_bytes())
}

/// An open WebSocket connection whose reads give up after 5 s.
fn open(addr: SocketAddr, path: &str) -> RawClient {
    let client = RawClient::open(addr, path);
    client
        .stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client
}

/// Checks that the server still serves `mode`: a message from one new
/// client reaches the other end (itself for echo, a second client else).
fn assert_still_serves(server: &ServerProcess, mode: &str) {
    let mut a = open(server.addr, &path_for(mode, "probe-a"));
    let mut b = match mode {
        "echo" => None,
        _ => Some(open(server.addr, &path_for(mode, "probe-b"))),
    };
    if mode == "chat" {
        // wait until b has joined, so that a's message reaches it
        let b = b.as_mut().unwrap();
        assert!(read_json_until(b, |v| v["type"] == "welcome").is_some());
    }
    a.send(&message_for(mode, 5));
    let receiver = b.as_mut().unwrap_or(&mut a);
    let got = read_text_until(receiver, |text| text.contains("xxxxx"));
    assert!(got.is_some(), "{mode}: a new client's message went nowhere");
}

/// Reads text frames until one satisfies `want`; `None` at EOF or timeout.
fn read_text_until(c: &mut RawClient, want: impl Fn(&str) -> bool) -> Option<String> {
    for _ in 0..1000 {
        let frame = c.read_frame()?;
        if frame.opcode == OpCode::Text {
            let text = String::from_utf8(frame.payload).expect("UTF-8");
            if want(&text) {
                return Some(text);
            }
        }
    }
    None
}

/// Reads JSON text frames until one satisfies `want`.
fn read_json_until(c: &mut RawClient, want: impl Fn(&Value) -> bool) -> Option<Value> {
    let text = read_text_until(c, |t| {
        serde_json::from_str::<Value>(t).is_ok_and(|v| want(&v))
    })?;
    serde_json::from_str(&text).ok()
}

/// Waits until the server holds no connection and no more descriptors
/// than `fds`; how long that took, `None` if not within `limit`.
fn reclaimed_within(server: &ServerProcess, fds: usize, limit: Duration) -> Option<Duration> {
    // descriptors first: the previous round's /metrics connection is gone by then
    poll_until(limit, || {
        server.fd_count() <= fds && server.metric("edgews_open_connections") == Some(0.0)
    })
}

/// The descriptor count once the server is idle (no connection open).
fn idle_fds(server: &ServerProcess) -> usize {
    let idle = poll_until(Duration::from_secs(5), || {
        server.metric("edgews_open_connections") == Some(0.0)
    });
    assert!(idle.is_some(), "the server never became idle");
    std::thread::sleep(Duration::from_millis(100));
    server.fd_count()
}

/// Reads an HTTP response head within `limit`: `Ok(head)`, or `Err` with
/// "eof", "reset" or "hang".
fn response_head(s: &mut TcpStream, limit: Duration) -> Result<String, &'static str> {
    let deadline = Instant::now() + limit;
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    while !data.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("hang");
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut chunk) {
            Ok(0) if data.is_empty() => return Err("eof"),
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Err("reset"),
        }
    }
    Ok(String::from_utf8_lossy(&data).into_owned())
}

// ------------------------------------------------------ 1. ghost connections

/// How a ghost leaves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Goodbye {
    /// One small message, and FIN right behind it.
    MessageThenFin,
    /// A message, a close frame and FIN, all at once.
    MessageCloseAndFin,
    /// A message that makes the server write more than the socket holds
    /// (echo: 1 MiB back; else 64 KiB to each of the others), then FIN.
    FinWhileBeingWritten,
}

/// `n` clients of `mode` open, then each sends one message, says goodbye
/// the `goodbye` way without reading, and is gone. The server must
/// notice every one of them within the deadline.
fn ghosts_are_reclaimed(mode: &str, goodbye: Goodbye, n: usize) {
    let big = goodbye == Goodbye::FinWhileBeingWritten;
    let mut args = vec!["--ping-interval", "0"];
    if big && mode == "chat" {
        args.extend(["--max-text", "64KiB"]);
    }
    let server = start(mode, &args);
    assert_still_serves(&server, mode); // warm-up
    let fds = idle_fds(&server);
    let ghosts: Vec<RawClient> = (0..n)
        .map(|i| open(server.addr, &path_for(mode, &format!("ghost{i}"))))
        .collect();
    let size = match (big, mode) {
        (false, _) => 2,
        (true, "echo") => 1 << 20,
        (true, _) => 64 << 10,
    };
    let mut last_words = message_for(mode, size);
    if goodbye == Goodbye::MessageCloseAndFin {
        last_words.extend(close_frame(1000));
    }
    for mut ghost in ghosts {
        // data and FIN together; the reply is never read
        ghost.stream.write_all(&last_words).expect("write");
        let _ = ghost.stream.shutdown(Shutdown::Write);
    }
    let gone = reclaimed_within(&server, fds, RECLAIM_DEADLINE);
    let (open_now, fds_now) = (server.metric("edgews_open_connections"), server.fd_count());
    eprintln!(
        "ghosts, {mode}, {goodbye:?}: {n} clients ({size}-byte messages) reclaimed in \
         {gone:?} (open {open_now:?}, fds {fds_now}, idle {fds})"
    );
    assert!(
        gone.is_some(),
        "{mode}: after {RECLAIM_DEADLINE:?}, open connections {open_now:?}, fds {fds_now} \
         (idle {fds})"
    );
    if mode == "chat" {
        let mut late = open(server.addr, &path_for(mode, "late"));
        let welcome = read_json_until(&mut late, |v| v["type"] == "welcome").expect("welcome");
        eprintln!("ghosts, chat, {goodbye:?}: a late member's welcome: {welcome}");
        assert_eq!(welcome["members"], json!(["late"]), "ghosts in the room");
    }
    assert_still_serves(&server, mode);
}

#[test]
fn ghosts_that_send_one_message_and_fin_are_reclaimed_in_every_mode() {
    for mode in MODES {
        ghosts_are_reclaimed(mode, Goodbye::MessageThenFin, 200);
    }
}

#[test]
fn ghosts_that_send_message_close_and_fin_at_once_are_reclaimed_in_every_mode() {
    for mode in MODES {
        ghosts_are_reclaimed(mode, Goodbye::MessageCloseAndFin, 200);
    }
}

#[test]
fn ghosts_that_leave_while_the_server_is_still_writing_to_them_are_reclaimed_in_every_mode() {
    for mode in MODES {
        ghosts_are_reclaimed(mode, Goodbye::FinWhileBeingWritten, 50);
    }
}

#[test]
fn a_half_closed_client_that_never_reads_is_let_go_within_the_close_timeout() {
    // FIN sent, socket kept open, 1 MiB of echo never read: the server
    // may try to deliver it, but only for the close timeout (5 s default)
    const CLIENTS: usize = 20;
    let server = start("echo", &["--ping-interval", "0"]);
    assert_still_serves(&server, "echo");
    let fds = idle_fds(&server);
    let mut kept = Vec::new();
    for _ in 0..CLIENTS {
        let mut c = open(server.addr, "/");
        c.send(&message_for("echo", 1 << 20));
        c.stream.shutdown(Shutdown::Write).unwrap();
        kept.push(c);
    }
    let gone = reclaimed_within(&server, fds, Duration::from_secs(5) + RECLAIM_DEADLINE);
    let timer_closes = server.metric("edgews_timer_closes_total");
    eprintln!(
        "half-closed non-readers: {CLIENTS} with 1 MiB of echo pending let go in {gone:?} \
         (timer closes {timer_closes:?})"
    );
    assert!(gone.is_some(), "still held: fds {}", server.fd_count());
    drop(kept);
    assert_still_serves(&server, "echo");
}

// ----------------------------------------------- 2. broadcast backpressure

/// Waits until the counter `series` reaches `target`. Fails fast when it
/// stops moving for `stall` (work left undone, not slowness), and at
/// `limit` in any case. How long it took, or where it stopped.
fn counter_reaches(
    server: &ServerProcess,
    series: &str,
    target: f64,
    stall: Duration,
    limit: Duration,
) -> Result<Duration, String> {
    let start = Instant::now();
    let (mut last, mut moved_at) = (f64::NAN, Instant::now());
    loop {
        let now = server.metric(series).unwrap_or(f64::NAN);
        if now >= target {
            return Ok(start.elapsed());
        }
        if now != last {
            (last, moved_at) = (now, Instant::now());
        } else if moved_at.elapsed() >= stall {
            return Err(format!(
                "{series} stalled at {now} of {target} for {stall:?}"
            ));
        }
        if start.elapsed() >= limit {
            return Err(format!("{series} at {now} of {target} after {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The masked empty text frames `81 80 MASK4`, `count` of them in one buffer.
fn empty_frames(count: usize) -> Vec<u8> {
    (0..count)
        .flat_map(|i| {
            let m = (i as u32).wrapping_mul(2_654_435_761).to_be_bytes();
            [0x81, 0x80, m[0], m[1], m[2], m[3]]
        })
        .collect()
}

#[test]
fn a_burst_of_100000_pipelined_messages_is_processed_to_the_last_one() {
    // more than fit in one read, and than the per-turn cap (1,024) lets
    // through at once: the tail must not wait for the client's next write
    const FRAMES: usize = 100_000;
    let server = start("broadcast", &["--ping-interval", "0"]);
    let mut sender = open(server.addr, "/");
    let started = Instant::now();
    sender.send(&empty_frames(FRAMES));
    let done = counter_reaches(
        &server,
        "edgews_messages_in_total",
        FRAMES as f64,
        Duration::from_secs(3),
        Duration::from_secs(60),
    );
    eprintln!(
        "pipelined burst: {FRAMES} empty frames in one write: {done:?} (from the write: {:?})",
        started.elapsed()
    );
    done.unwrap();
}

/// A WebSocket client with a receive buffer of `rcvbuf` bytes (as the
/// kernel rounds it) that will never read: its stream and that size.
fn tiny_reader(addr: SocketAddr, rcvbuf: usize) -> (TcpStream, usize) {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket.set_recv_buffer_size(rcvbuf).unwrap();
    socket.connect(&addr.into()).expect("connect");
    let size = socket.recv_buffer_size().unwrap();
    let mut stream = TcpStream::from(socket);
    stream.write_all(&upgrade_request(addr, "/")).unwrap();
    let head = response_head(&mut stream, Duration::from_secs(5)).expect("a response");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    (stream, size)
}

/// The most a socket's send buffer grows to by itself (tcp_wmem's third
/// field): what the kernel can hold for a receiver that never reads, on
/// top of the server's queue. (A server that set SO_SNDBUF would be
/// bounded by 2 x net.core.wmem_max instead.)
fn kernel_send_buffer_max() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|t| t.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4 << 20)
}

#[test]
fn broadcast_to_three_receivers_that_never_read_stays_within_memory_and_closes_them() {
    const RECEIVERS: usize = 3;
    const BACKPRESSURE: usize = 4 << 20;
    let server = start(
        "broadcast",
        &["--max-backpressure", "4MiB", "--ping-interval", "0"],
    );
    assert_still_serves(&server, "broadcast"); // warm-up
    idle_fds(&server);
    let messages_before = server.metric("edgews_messages_in_total").unwrap();
    let rss_before = server.vm_rss();
    let peak_reset = server.reset_peak();
    let receivers: Vec<(TcpStream, usize)> = (0..RECEIVERS)
        .map(|_| tiny_reader(server.addr, 4096))
        .collect();
    // each frame goes out as 2 bytes; send enough that what the kernel can
    // hold for a receiver (its buffer and the server's send buffer) plus
    // the 4 MiB cap is a quarter short of it, and at least 3,000,000
    let absorbable = kernel_send_buffer_max() + receivers[0].1 + BACKPRESSURE;
    let count = (absorbable / 2 * 5 / 4).max(3_000_000);
    let frames = empty_frames(count);
    let mut sender = open(server.addr, "/");
    let started = Instant::now();
    for chunk in frames.chunks(64 << 10) {
        sender.stream.write_all(chunk).expect("write");
    }
    let written_in = started.elapsed();
    let processed = counter_reaches(
        &server,
        "edgews_messages_in_total",
        messages_before + count as f64,
        Duration::from_secs(5),
        Duration::from_secs(120),
    );
    let peak = (server.vm_hwm() as f64 - rss_before as f64) / MIB;
    let slow = server.metric("edgews_slow_consumer_closes_total");
    let messages_out = server.metric("edgews_messages_out_total");
    eprintln!(
        "broadcast flood: {count} empty frames ({:.1} MiB) to {RECEIVERS} non-readers \
         (receive buffer {} B; the kernel holds up to {:.1} MiB each), max-backpressure 4 MiB: \
         written in {written_in:?}, processed: {processed:?}; RSS {:.1} MiB before, peak \
         +{peak:.2} MiB (peak reset: {peak_reset}); slow consumer closes {slow:?}; messages \
         out {messages_out:?}",
        frames.len() as f64 / MIB,
        receivers[0].1,
        kernel_send_buffer_max() as f64 / MIB,
        rss_before as f64 / MIB,
    );
    assert!(peak <= 48.0, "peak RSS grew by {peak:.2} MiB");
    assert_eq!(slow, Some(RECEIVERS as f64));
    processed.unwrap();
    drop((receivers, sender));
    assert_still_serves(&server, "broadcast");
}

// ------------------------------------------------------------- 4. secrets

const SECRET: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn tokens_never_reach_the_log_nor_a_refusal_even_at_debug_level() {
    const MARKER: &str = "MARKER123";
    let server = Launch::new("chat")
        .args(["--jwt-secret", SECRET])
        .env("EDGEWS_LOG", "debug")
        .start();
    let good = token("alice", SECRET);
    let bad = format!("eyJhbGciOiJIUzI1NiJ9.{MARKER}.c2lnbmF0dXJl");
    // a valid token in the query: alice joins and speaks
    let mut alice = open(server.addr, &format!("/ws?room=r&token={good}"));
    let welcome = read_json_until(&mut alice, |v| v["type"] == "welcome").expect("welcome");
    assert_eq!(welcome["name"], "alice");
    alice.send(&message_for("chat", 5));
    assert!(read_json_until(&mut alice, |v| v["type"] == "message").is_some());
    alice.send(&close_frame(1000));
    assert_eq!(alice.read_close_code(), Some(1000));
    // the same in a header
    let mut bob = RawClient::connect(server.addr);
    let request = String::from_utf8(upgrade_request(server.addr, "/ws?room=r"))
        .unwrap()
        .replace(
            "\r\n\r\n",
            &format!("\r\nAuthorization: Bearer {good}\r\n\r\n"),
        );
    bob.send(request.as_bytes());
    let head = bob.read_http_head().expect("a response");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    drop(bob);
    // the chat page, opened from a link that carries a token
    let (head, _) = http_get(server.addr, &format!("/?room=r&token={good}"), &[]);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    // a bad token, in the query and in a header
    let mut refusals = Vec::new();
    for request in [
        upgrade_request(server.addr, &format!("/ws?room=r&token={bad}")),
        String::from_utf8(upgrade_request(server.addr, "/ws?room=r"))
            .unwrap()
            .replace(
                "\r\n\r\n",
                &format!("\r\nAuthorization: Bearer {bad}\r\n\r\n"),
            )
            .into_bytes(),
    ] {
        let (head, body) = http_exchange(server.addr, &request);
        let body = String::from_utf8_lossy(&body).into_owned();
        assert!(head.starts_with("HTTP/1.1 401 "), "{head}");
        assert!(
            !head.contains(MARKER) && !body.contains(MARKER),
            "{head}{body}"
        );
        refusals.push(body.trim().to_string());
    }
    let (_, log) = server.terminate(Duration::from_secs(10));
    let lines = log.lines().count();
    eprintln!(
        "secrets: {lines} log lines at debug level; 401 bodies {refusals:?}; token in log: {}, \
         marker: {}, \"token=\": {}",
        log.contains(&good),
        log.contains(MARKER),
        log.contains("token=")
    );
    assert!(lines > 3, "debug logging did not happen:\n{log}");
    assert!(!log.contains(&good), "the valid token was logged:\n{log}");
    // the signature alone is secret enough to leak
    assert!(!log.contains(good.rsplit('.').next().unwrap()), "{log}");
    assert!(!log.contains(MARKER), "the bad token was logged:\n{log}");
    assert!(
        !log.contains("token="),
        "a query with a token was logged:\n{log}"
    );
}

/// Starts chat with the secret in a file of `mode`; returns its log.
fn log_with_secret_file(mode: u32) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("hostile-secret-{mode:o}-{}", std::process::id()));
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    let server = Launch::new("chat")
        .args(["--jwt-secret-file", path.to_str().unwrap()])
        .start();
    // the secret works: a token signed with it is accepted
    let mut alice = open(
        server.addr,
        &format!("/ws?room=r&token={}", token("alice", SECRET)),
    );
    assert!(read_json_until(&mut alice, |v| v["type"] == "welcome").is_some());
    drop(alice);
    let (_, log) = server.terminate(Duration::from_secs(10));
    let _ = std::fs::remove_file(&path);
    log
}

#[test]
fn a_secret_file_readable_by_others_is_warned_about_and_a_private_one_is_not() {
    let open_log = log_with_secret_file(0o644);
    let private_log = log_with_secret_file(0o600);
    let warning = |log: &str| {
        log.lines()
            .find(|l| l.contains("readable by others"))
            .map(str::to_string)
    };
    eprintln!(
        "secret file: mode 644 -> {:?}; mode 600 -> {:?}",
        warning(&open_log),
        warning(&private_log)
    );
    assert!(
        warning(&open_log).is_some_and(|l| l.contains("WARN")),
        "{open_log}"
    );
    assert!(warning(&private_log).is_none(), "{private_log}");
    assert!(!open_log.contains(SECRET) && !private_log.contains(SECRET));
}

// ------------------------------------------------------- 5. absurd settings

#[test]
fn absurd_settings_are_refused_with_one_line_and_status_2_never_a_panic() {
    // these parse, and are refused by our validation: one `edgews:` line
    let validated: &[&[&str]] = &[
        &["echo", "--handshake-timeout", "18446744073709551615s"],
        &["echo", "--ping-interval", "99999999999m"],
        &["broadcast", "--max-backpressure", "100GiB"],
        &["echo", "--max-message-size", "1000GiB"],
        &["pubsub", "--max-connections", "100000000"],
        &["echo", "--shutdown-timeout", "1441m"],
        &["echo", "--pong-timeout", "0"],
        &["echo", "--handshake-timeout", "0"],
        &["echo", "--max-frame-size", "0"],
        &[
            "echo",
            "--max-frame-size",
            "1GiB",
            "--max-message-size",
            "1MiB",
        ],
        &["echo", "--max-fragments", "0"],
        &["echo", "--max-fragments", "4294967295"],
        &["echo", "--max-connections", "0"],
        &["echo", "--max-backpressure", "0"],
        &["chat", "--jwt-secret", "short"],
        &["chat", "--jwt-secret-file", "/nonexistent/edgews-secret"],
        &["echo", "--jwt-audience", "a"],
        &["echo", "--allowed-host", " "],
    ];
    // these do not parse: clap's own `error:` message (several lines)
    let unparsable: &[&[&str]] = &[
        &["echo", "--shutdown-timeout", "2d"],
        &["echo", "--max-message-size", "18446744073709551615GiB"],
        &["echo", "--ping-interval", "18446744073709551615m"],
        &["echo", "--max-connections", "-1"],
        &["echo", "--max-fragments", "99999999999999999999"],
    ];
    let run = |args: &[&str]| {
        let started = Instant::now();
        let (status, stdout, stderr) = Launch::new(args[0])
            .args(&args[1..])
            .run_to_exit(Duration::from_secs(10));
        (status, stdout, stderr, started.elapsed())
    };
    let mut slowest = Duration::ZERO;
    for &args in validated {
        let (status, stdout, stderr, took) = run(args);
        slowest = slowest.max(took);
        eprintln!("absurd {args:?}: {status:?} in {took:?}: {}", stderr.trim());
        assert_eq!(status.and_then(|s| s.code()), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("edgews: "), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stdout.contains("listening"), "{args:?} started: {stdout}");
    }
    for &args in unparsable {
        let (status, stdout, stderr, took) = run(args);
        slowest = slowest.max(took);
        eprintln!(
            "unparsable {args:?}: {status:?} in {took:?}: {}",
            stderr.lines().next().unwrap_or("")
        );
        assert_eq!(status.and_then(|s| s.code()), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stdout.contains("listening"), "{args:?} started: {stdout}");
    }
    eprintln!(
        "absurd settings: {} refused by validation, {} by the parser; slowest exit {slowest:?}",
        validated.len(),
        unparsable.len()
    );
}

// ------------------------------------------ 6. metrics bounded by our labels

#[test]
fn three_hundred_private_close_codes_share_one_metrics_series() {
    const CLIENTS: u32 = 300;
    let server = start("echo", &["--ping-interval", "0"]);
    let mut codes = Vec::new();
    for i in 0..CLIENTS {
        let code = (3000 + i * 1999 / (CLIENTS - 1)) as u16;
        let mut c = open(server.addr, "/");
        c.send(&close_frame(code));
        assert_eq!(c.read_close_code(), Some(code), "the close echoed");
        codes.push(code);
    }
    let distinct = {
        let mut d = codes.clone();
        d.dedup();
        d.len()
    };
    let done = poll_until(Duration::from_secs(5), || {
        server.metric("edgews_open_connections") == Some(0.0)
    });
    assert!(done.is_some());
    let text = server.metrics();
    let close_series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("edgews_closes_total{"))
        .collect();
    let private = metric_value(&text, "edgews_closes_total{code=\"3000-4999\"}");
    eprintln!(
        "close codes: {CLIENTS} clients, {distinct} distinct codes {}..={}: series \
         {close_series:?}",
        codes[0],
        codes[codes.len() - 1]
    );
    assert_eq!((codes[0], codes[codes.len() - 1]), (3000, 4999));
    assert_eq!(private, Some(f64::from(CLIENTS)));
    assert_eq!(
        close_series,
        [format!(
            "edgews_closes_total{{code=\"3000-4999\"}} {CLIENTS}"
        )]
    );
}

/// Requests that carry attacker-chosen text in every place a label could
/// be taken from: path, query, method, headers, origin, topic, room, name.
fn odd_requests(addr: SocketAddr, mode: &str, tag: &str) {
    let raw = |text: String| {
        let _ = http_exchange(addr, text.as_bytes());
    };
    raw(format!(
        "GET /{tag}-path?q={tag} HTTP/1.1\r\nHost: {tag}\r\nX-{tag}: {tag}\r\n\r\n"
    ));
    raw(format!("{tag} / HTTP/1.1\r\nHost: {addr}\r\n\r\n"));
    raw(format!("GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {tag}\r\n\r\n"));
    raw(format!("GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://{tag}.example\r\n\r\n"));
    raw(format!("\u{1}\u{2}{tag}\r\n\r\n"));
    raw(format!(
        "GET /metrics?{tag}=1 HTTP/1.1\r\nHost: {addr}\r\n\r\n"
    ));
    let _ = http_get(addr, &format!("/topics/{tag}"), &[]);
    // and a real connection with attacker-chosen names
    let path = match mode {
        "pubsub" => format!("/topics/{tag}"),
        "chat" => format!("/ws?room={tag}&name={tag}"),
        _ => format!("/{tag}"),
    };
    let mut c = open(addr, &path);
    let message = match mode {
        "pubsub" => json!({"op": "subscribe", "topic": format!("{tag}2")}).to_string(),
        "chat" => json!({"type": "message", "room": tag, "text": tag}).to_string(),
        _ => tag.to_string(),
    };
    c.send(&client_frame(true, OpCode::Text, message.as_bytes()));
    if mode != "broadcast" {
        assert!(c.read_frame().is_some(), "{mode}: no reply");
    }
    c.send(&close_frame(4321));
    let _ = c.read_close_code();
}

#[test]
fn requests_full_of_attacker_text_add_no_metrics_series_in_any_mode() {
    for mode in MODES {
        let server = start(mode, &["--ping-interval", "0"]);
        // the first round brings every status and close code these requests earn
        odd_requests(server.addr, mode, "ATTACKfirst");
        poll_until(Duration::from_secs(5), || {
            server.metric("edgews_open_connections") == Some(0.0)
        });
        let first = server.metrics();
        // the second varies only the attacker's text
        odd_requests(server.addr, mode, "ATTACKsecond");
        poll_until(Duration::from_secs(5), || {
            server.metric("edgews_open_connections") == Some(0.0)
        });
        let second = server.metrics();
        let (a, b) = (series_of(&first), series_of(&second));
        eprintln!(
            "metrics series, {mode}: {} after the first round of odd requests, {} after the \
             second; attacker text in them: {}",
            a.len(),
            b.len(),
            second.contains("ATTACK")
        );
        assert!(!second.contains("ATTACK"), "{second}");
        assert_eq!(a, b, "{mode}: new series");
    }
}

// ------------------------------------------------- 7. a metrics listener

#[test]
fn a_metrics_listener_serves_only_metrics_and_health_and_the_public_port_hides_them() {
    let server = start("echo", &["--metrics-listen", "127.0.0.1:0"]);
    let metrics = server.metrics_addr.expect("a metrics address");
    eprintln!("metrics listener: stdout {:?}", server.stdout);
    assert_eq!(
        server.stdout.get(1).map(String::as_str),
        Some(format!("edgews echo serving /metrics on http://{metrics}").as_str())
    );
    assert_ne!(metrics, server.addr);
    let status = |addr, path: &str| {
        let (head, body) = http_get(addr, path, &[]);
        let code = head.split(' ').nth(1).unwrap_or("").to_string();
        (code, String::from_utf8_lossy(&body).into_owned())
    };
    let public_metrics = status(server.addr, "/metrics");
    let private_metrics = status(metrics, "/metrics");
    let health = status(metrics, "/healthz");
    let (upgrade_head, _) = http_exchange(metrics, &upgrade_request(metrics, "/"));
    let others: Vec<String> = ["/", "/ws", "/metrics/x", "/healthz/../metrics"]
        .iter()
        .map(|p| status(metrics, p).0)
        .collect();
    eprintln!(
        "metrics listener: public /metrics {}, private /metrics {}, /healthz {}, upgrade {:?}, \
         other paths {others:?}",
        public_metrics.0,
        private_metrics.0,
        health.0,
        upgrade_head.lines().next()
    );
    assert_eq!(public_metrics.0, "404");
    assert!(!public_metrics.1.contains("edgews_"));
    assert_eq!(private_metrics.0, "200");
    assert!(private_metrics.1.contains("edgews_open_connections "));
    assert_eq!(health.0, "200");
    assert!(upgrade_head.starts_with("HTTP/1.1 404 "), "{upgrade_head}");
    assert!(others.iter().all(|c| c == "404"), "{others:?}");
    // and the public port still upgrades
    assert_still_serves(&server, "echo");
}

// ------------------------------------------------------------ 8. descriptors

#[test]
fn out_of_descriptors_clients_get_503_or_eof_promptly_and_the_server_recovers() {
    const CLIENTS: usize = 100;
    const LIMIT: u64 = 64;
    // one worker: the reserve descriptor and the accept back-off are a
    // reactor's; with several, each has its own, over its own share of
    // the accept queue, and their fixed descriptors eat into the 64
    let server = Launch::new("echo")
        .args(["--ping-interval", "0", "--workers", "1"])
        .nofile(LIMIT)
        .start();
    let idle = idle_fds(&server);
    let startup = server.stderr_text();
    let limits = startup.lines().find(|l| l.contains("file descriptors:"));
    assert!(
        limits.is_some_and(|l| l.contains(&format!("hard {LIMIT}"))),
        "{startup}"
    );
    let attack = Instant::now();
    let request = upgrade_request(server.addr, "/");
    let mut streams: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).expect("connect");
            let _ = s.write_all(&request);
            s
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut served, mut refused, mut ended, mut hung) = (0, 0, 0, 0);
    let mut slowest = Duration::ZERO;
    for s in &mut streams {
        let outcome = response_head(s, deadline.saturating_duration_since(Instant::now()));
        slowest = slowest.max(attack.elapsed());
        match outcome {
            Ok(h) if h.starts_with("HTTP/1.1 101 ") => served += 1,
            Ok(h) if h.starts_with("HTTP/1.1 503 ") => refused += 1,
            Ok(h) => panic!("unexpected answer {h:?}"),
            Err("hang") => hung += 1,
            Err(_) => ended += 1,
        }
    }
    let fds_full = server.fd_count();
    let attack_took = attack.elapsed();
    drop(streams);
    let recovered = poll_until(Duration::from_secs(5), || {
        server.fd_count() <= idle && server.metric("edgews_open_connections") == Some(0.0)
    });
    let refusals = server.metric("edgews_fd_exhaustion_refusals_total");
    let log = server.stderr_text();
    let warnings = log
        .lines()
        .filter(|l| l.contains("out of file descriptors"))
        .count();
    eprintln!(
        "descriptors (nofile {LIMIT}, {idle} fds idle): {CLIENTS} upgrades: {served} served, \
         {refused} refused with 503, {ended} EOF/reset, {hung} hung; all answered after \
         {slowest:?}; fds at the peak {fds_full}; refusals counted {refusals:?}; {warnings} \
         warnings in {attack_took:?}; recovered in {recovered:?}; limits logged: {:?}",
        limits.unwrap()
    );
    assert_eq!(hung, 0, "{hung} clients got no answer within 5 s");
    assert!(served > 0 && served + refused + ended == CLIENTS);
    assert!(
        refused + ended > 0,
        "all {CLIENTS} fit in {LIMIT} descriptors?"
    );
    assert!(refusals.is_some_and(|n| n > 0.0), "{refusals:?}");
    let allowed = 1 + attack_took.as_secs() as usize + 1;
    assert!(
        (1..=allowed).contains(&warnings),
        "{warnings} warnings in {attack_took:?}:\n{log}"
    );
    assert!(recovered.is_some(), "fds {}", server.fd_count());
    assert_still_serves(&server, "echo");
}

// ------------------------------------------------------------ 9. host check

#[test]
fn an_allowed_host_list_refuses_other_hosts_with_403_and_admits_its_own() {
    let server = start("chat", &["--allowed-host", "localhost"]);
    let port = server.addr.port();
    let upgrade = |host: &str| {
        let request = String::from_utf8(upgrade_request(server.addr, "/ws?room=r&name=n"))
            .unwrap()
            .replace(&format!("Host: {}", server.addr), &format!("Host: {host}"));
        let (head, _) = http_exchange(server.addr, request.as_bytes());
        head.lines().next().unwrap_or("").to_string()
    };
    let page = |host: &str| {
        let (head, _) = http_get(server.addr, "/", &[&format!("Host: {host}")]);
        head.lines().next().unwrap_or("").to_string()
    };
    let evil_upgrade = upgrade("evil.example");
    let evil_page = page("evil.example");
    let lookalike = upgrade("localhost.evil.example");
    let good_upgrade = upgrade(&format!("localhost:{port}"));
    let good_page = page(&format!("localhost:{port}"));
    eprintln!(
        "allowed host localhost: evil.example upgrade {evil_upgrade:?}, page {evil_page:?}; \
         localhost.evil.example {lookalike:?}; localhost:{port} upgrade {good_upgrade:?}, page \
         {good_page:?}"
    );
    assert!(evil_upgrade.starts_with("HTTP/1.1 403 "));
    assert!(evil_page.starts_with("HTTP/1.1 403 "));
    assert!(lookalike.starts_with("HTTP/1.1 403 "));
    assert!(good_upgrade.starts_with("HTTP/1.1 101 "));
    assert!(good_page.starts_with("HTTP/1.1 200 "));
}

// ------------------------------------------------------- 10. message rate

/// Sends `n` messages in one write, right after the upgrade.
fn burst(c: &mut RawClient, n: usize, message: impl Fn(usize) -> String) {
    let bytes: Vec<u8> = (0..n)
        .flat_map(|i| client_frame(true, OpCode::Text, message(i).as_bytes()))
        .collect();
    c.send(&bytes);
}

#[test]
fn echo_closes_a_client_over_its_message_rate_with_1008() {
    const SENT: usize = 20;
    let server = start("echo", &["--message-rate", "5", "--message-burst", "5"]);
    let mut c = open(server.addr, "/");
    let opened = Instant::now();
    burst(&mut c, SENT, |i| format!("m{i}"));
    let (mut echoes, mut last_frame) = (0, Instant::now());
    let close = loop {
        let frame = c.read_frame();
        if frame.is_some() {
            last_frame = Instant::now();
        }
        match frame {
            Some(f) if f.opcode == OpCode::Text => echoes += 1,
            Some(f) if f.opcode == OpCode::Close => break f.close_code(),
            Some(_) => {}
            None => break None,
        }
    };
    // the bucket refills at 5 per second while the burst is handled
    let allowed = 5 + ((last_frame - opened).as_secs_f64() * 5.0).ceil() as usize;
    eprintln!(
        "echo --message-rate 5 --message-burst 5: {SENT} sent at once, {echoes} echoed, then \
         close {close:?} (at most {allowed} allowed)"
    );
    assert!((5..=allowed).contains(&echoes), "{echoes} echoes");
    assert_eq!(close, Some(1008));
}

/// What a client that sends `SENT` messages at once to a server run with
/// `--message-rate 5 --message-burst 5` got back, and what one more message
/// got 1.2 s later.
struct OverRate {
    delivered: usize,
    errors: Vec<String>,
    /// The most deliveries the bucket allows in the time the burst took.
    allowed: usize,
    later: Option<Value>,
}

const SENT_OVER_RATE: usize = 20;

/// Sends `SENT_OVER_RATE` messages made by `make` at once, counts
/// deliveries (`type` message, `echo` on) and error replies, then sends one
/// more after the bucket refilled.
fn send_over_rate(c: &mut RawClient, make: impl Fn(usize) -> Value) -> OverRate {
    let opened = Instant::now();
    burst(c, SENT_OVER_RATE, |i| make(i).to_string());
    let (mut delivered, mut errors) = (0, Vec::new());
    while delivered + errors.len() < SENT_OVER_RATE {
        let Some(reply) = read_json_until(c, |_| true) else {
            break;
        };
        match reply["type"].as_str() {
            Some("message") => delivered += 1,
            Some("error") => errors.push(reply["error"].as_str().unwrap_or("").to_string()),
            _ => {}
        }
    }
    // the bucket refills at 5 per second while the burst is handled
    let allowed = 5 + (opened.elapsed().as_secs_f64() * 5.0).ceil() as usize;
    std::thread::sleep(Duration::from_millis(1200));
    let one_more = make(SENT_OVER_RATE).to_string();
    c.send(&client_frame(true, OpCode::Text, one_more.as_bytes()));
    let later = read_json_until(c, |_| true);
    OverRate {
        delivered,
        errors,
        allowed,
        later,
    }
}

impl OverRate {
    /// Between the burst and the allowance delivered, the rest refused
    /// with the rate-limit error, nothing unanswered.
    fn assert_limited(&self) {
        let OverRate {
            delivered,
            errors,
            allowed,
            ..
        } = self;
        assert!((5..=*allowed).contains(delivered), "{delivered} delivered");
        assert_eq!(
            delivered + errors.len(),
            SENT_OVER_RATE,
            "some got no answer"
        );
        assert!(
            errors.iter().all(|e| e.contains("rate limit exceeded")),
            "{errors:?}"
        );
    }
}

#[test]
fn pubsub_answers_publications_over_the_message_rate_with_errors_and_stays_open() {
    let server = start("pubsub", &["--message-rate", "5", "--message-burst", "5"]);
    let mut c = open(server.addr, "/topics/t");
    let outcome = send_over_rate(
        &mut c,
        |i| json!({"op": "publish", "topic": "t", "data": i, "echo": true}),
    );
    eprintln!(
        "pubsub --message-rate 5 --message-burst 5: {SENT_OVER_RATE} sent at once, {} \
         delivered, {} errors (first {:?}), at most {} allowed; a second later: {:?}",
        outcome.delivered,
        outcome.errors.len(),
        outcome.errors.first(),
        outcome.allowed,
        outcome.later
    );
    outcome.assert_limited();
    assert_eq!(
        outcome.later.map(|v| v["type"].clone()),
        Some(json!("message"))
    );
}

// ------------------------------------------- 11. the largest publication

/// A publication to topic `t` of exactly `size` bytes of JSON: its data an
/// array of zeros (one space after `[` when the parity needs it). The
/// message and its `data`, as the subscriber must receive it.
fn publication_of_size(size: usize) -> (String, String) {
    const HEAD: &str = r#"{"op":"publish","topic":"t","data":"#;
    // the zeros and their commas: 2 × zeros − 1 bytes, and the brackets
    let room = size - HEAD.len() - "[]}".len();
    let zeros = room.div_ceil(2);
    let pad = " ".repeat(room - (2 * zeros - 1));
    let data = format!("[{pad}{}0]", "0,".repeat(zeros - 1));
    let message = format!("{HEAD}{data}}}");
    assert_eq!(message.len(), size);
    (message, data)
}

/// Sends `message` from `publisher`; `subscriber` must receive it whole:
/// `{"type":"message","topic":"t","data":DATA}` with `data` byte for byte.
fn publish_and_receive(
    publisher: &mut RawClient,
    subscriber: &mut RawClient,
    message: &str,
    data: &str,
) {
    publisher.send(&client_frame(true, OpCode::Text, message.as_bytes()));
    let frame = subscriber.read_frame().expect("the publication");
    let expected = format!(r#"{{"type":"message","topic":"t","data":{data}}}"#);
    assert_eq!(frame.opcode, OpCode::Text);
    assert_eq!(
        frame.payload.len(),
        expected.len(),
        "the publication's size"
    );
    assert!(
        frame.payload == expected.as_bytes(),
        "the publication arrived altered"
    );
}

/// What publishing costs the server at peak: its RSS before, and how far
/// its peak grew over that (bytes), with whether the peak could be reset.
#[derive(Debug)]
struct PeakGrowth {
    rss_before: u64,
    growth: u64,
    reset: bool,
}

/// The server's peak memory watched from a point on: its RSS then, and
/// whether its peak could be reset to it.
struct PeakWatch {
    rss_before: u64,
    reset: bool,
}

impl PeakWatch {
    /// Resets the server's peak to its RSS now.
    fn start(server: &ServerProcess) -> PeakWatch {
        let rss_before = server.vm_rss();
        let reset = server.reset_peak();
        PeakWatch { rss_before, reset }
    }

    /// How far the peak grew since the start.
    fn finish(self, server: &ServerProcess) -> PeakGrowth {
        PeakGrowth {
            rss_before: self.rss_before,
            growth: server.vm_hwm().saturating_sub(self.rss_before),
            reset: self.reset,
        }
    }
}

/// Starts pubsub with `args`, a subscriber on `t` and a publisher; warms
/// up with three publications of a quarter of `size`, then publishes
/// `size` bytes `times` times, each received whole. The peak's growth.
fn peak_of_largest_publish(args: &[&str], size: usize, times: usize) -> PeakGrowth {
    let mut all_args = vec!["--ping-interval", "0"];
    all_args.extend(args);
    let server = start("pubsub", &all_args);
    let mut subscriber = open(server.addr, "/topics/t");
    subscriber
        .stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut publisher = open(server.addr, "/topics/p");
    let (warm, warm_data) = publication_of_size(size / 4);
    for _ in 0..3 {
        publish_and_receive(&mut publisher, &mut subscriber, &warm, &warm_data);
    }
    let (message, data) = publication_of_size(size);
    let started = Instant::now();
    let watch = PeakWatch::start(&server);
    for _ in 0..times {
        publish_and_receive(&mut publisher, &mut subscriber, &message, &data);
    }
    let growth = watch.finish(&server);
    let zeros = data.bytes().filter(|&b| b == b'0').count();
    eprintln!(
        "largest publish, pubsub {args:?}: {size} bytes ({zeros} zeros) published {times} times \
         in {:?}, each received whole; RSS {:.2} MiB before, peak +{} KiB = {:.2} x the \
         message (peak reset: {})",
        started.elapsed(),
        growth.rss_before as f64 / MIB,
        growth.growth >> 10,
        growth.growth as f64 / size as f64,
        growth.reset
    );
    assert!(server.metric("edgews_open_connections") == Some(2.0));
    growth
}

#[test]
fn a_pubsub_publish_of_the_default_largest_size_costs_at_most_four_times_its_size_at_peak() {
    const SIZE: usize = 64 << 10;
    let peak = peak_of_largest_publish(&[], SIZE, 5);
    assert!(peak.reset, "the peak could not be reset");
    assert!(
        peak.growth <= 4 * SIZE as u64,
        "a {SIZE}-byte publish grew the peak by {} bytes",
        peak.growth
    );
}

#[test]
fn an_8_mib_pubsub_publish_costs_at_most_four_times_its_size_at_peak() {
    // the issue: one 8 MiB array of zeros used to cost ≈ 270 MiB
    const SIZE: usize = 8 << 20;
    let peak = peak_of_largest_publish(&["--max-control-size", "8MiB"], SIZE, 2);
    assert!(peak.reset, "the peak could not be reset");
    assert!(
        peak.growth <= 4 * SIZE as u64,
        "an 8 MiB publish grew the peak by {:.1} MiB",
        peak.growth as f64 / MIB
    );
}

/// Sends `frames` (one message in all) and expects the engine's 1009;
/// the close code and the peak's growth meanwhile.
fn closed_over_the_cap(
    server: &ServerProcess,
    path: &str,
    frames: &[Vec<u8>],
) -> (Option<u16>, u64) {
    let mut c = open(server.addr, path);
    let watch = PeakWatch::start(server);
    for frame in frames {
        // the server may close (and drain) before the last byte is written
        let _ = c.stream.write_all(frame);
    }
    let code = c.read_close_code();
    let growth = watch.finish(server);
    assert!(growth.reset, "the peak could not be reset");
    (code, growth.growth)
}

#[test]
fn a_pubsub_message_one_byte_over_max_control_size_is_closed_with_1009_and_costs_at_most_the_cap() {
    for (args, cap) in [
        (&[][..], 64usize << 10),
        (&["--max-control-size", "8MiB"][..], 8 << 20),
    ] {
        // one worker: the peak is one connection's cost, not a second
        // worker's first use of its own read buffer
        let mut all_args = vec!["--ping-interval", "0", "--workers", "1"];
        all_args.extend(args);
        let server = start("pubsub", &all_args);
        assert_still_serves(&server, "pubsub"); // warm-up
        let over = "x".repeat(cap + 1);
        // in one frame: refused at its header
        let whole = [client_frame(true, OpCode::Text, over.as_bytes())];
        // the first refusal pages in what any first use does (the read
        // buffer's pages up to the frame's size, the refusal's code): 64
        // to 192 KiB once, 0 for each later connection; measured here is
        // what a connection costs, so that first use is not counted
        let _ = closed_over_the_cap(&server, "/topics/t", &whole);
        let (one_frame, one_growth) = closed_over_the_cap(&server, "/topics/t", &whole);
        // in two, each under the cap: refused at the second's header
        let half = cap / 2 + 1;
        let halves = [
            client_frame(false, OpCode::Text, &over.as_bytes()[..half]),
            client_frame(true, OpCode::Continuation, &over.as_bytes()[half..]),
        ];
        let (two_frames, two_growth) = closed_over_the_cap(&server, "/topics/t", &halves);
        let closes = server.metric("edgews_closes_total{code=\"1009\"}");
        eprintln!(
            "one byte over, pubsub {args:?}: a {}-byte message in one frame: close \
             {one_frame:?}, peak +{} KiB; in two frames: close {two_frames:?}, peak +{} KiB \
             (cap {} KiB); 1009 closes counted {closes:?}",
            cap + 1,
            one_growth >> 10,
            two_growth >> 10,
            cap >> 10
        );
        assert_eq!(one_frame, Some(1009));
        assert_eq!(two_frames, Some(1009));
        assert_eq!(closes, Some(3.0), "the warm-up's refusal, then these two");
        // "about the cap": the first fragment is held (≤ the cap), with
        // one read buffer's worth of slack at the smallest cap
        let allowed = cap as u64 + (64 << 10);
        assert!(one_growth <= allowed, "one frame: peak +{one_growth} bytes");
        assert!(
            two_growth <= allowed,
            "two frames: peak +{two_growth} bytes"
        );
        assert_still_serves(&server, "pubsub");
    }
}

// ------------------------------------- 12. subscriptions past their cap

/// A distinct topic name of exactly 200 bytes (the longest allowed).
fn long_topic(i: usize) -> String {
    format!("{i:07}{}", "x".repeat(193))
}

/// A control message `{"op":OP,"topic":TOPIC}` as a client frame.
fn control(op: &str, topic: &str) -> Vec<u8> {
    client_frame(
        true,
        OpCode::Text,
        json!({"op": op, "topic": topic}).to_string().as_bytes(),
    )
}

#[test]
fn a_hundred_thousand_subscribe_attempts_on_one_connection_grow_the_server_by_at_most_16_mib() {
    const ATTEMPTS: usize = 100_000;
    const CAP: usize = 128;
    let server = start("pubsub", &[]);
    let client = open(server.addr, "/topics/t"); // its path is one subscription
    let mut writer = client.stream.try_clone().expect("a second handle");
    let watch = PeakWatch::start(&server);
    let started = Instant::now();
    // the replies are read as they come, so that none waits in the server
    let reader = std::thread::spawn(move || {
        let mut client = client;
        let (mut subscribed, mut errors, mut first_error) = (0usize, 0usize, None);
        let deadline = Instant::now() + Duration::from_secs(120);
        while subscribed + errors < ATTEMPTS && Instant::now() < deadline {
            let Some(frame) = client.read_frame() else {
                break;
            };
            if frame.opcode != OpCode::Text {
                continue;
            }
            let reply: Value = serde_json::from_slice(&frame.payload).expect("JSON");
            match reply["type"].as_str() {
                Some("subscribed") => subscribed += 1,
                Some("error") => {
                    errors += 1;
                    let error = reply["error"].as_str().unwrap_or("").to_string();
                    first_error.get_or_insert(error);
                }
                _ => panic!("unexpected reply {reply}"),
            }
        }
        (client, subscribed, errors, first_error)
    });
    let mut written = 0;
    for batch in (0..ATTEMPTS).collect::<Vec<_>>().chunks(1000) {
        let bytes: Vec<u8> = batch
            .iter()
            .flat_map(|&i| control("subscribe", &long_topic(i)))
            .collect();
        writer.write_all(&bytes).expect("write");
        written += bytes.len();
    }
    let (mut client, subscribed, errors, first_error) = reader.join().expect("the reader");
    let took = started.elapsed();
    let growth = watch.finish(&server);
    // the cap is not a hole: one out, and one new in; the next refused
    client.send(&control("unsubscribe", &long_topic(0)));
    let unsubscribed = read_json_until(&mut client, |_| true);
    client.send(&control("subscribe", &long_topic(ATTEMPTS)));
    let resubscribed = read_json_until(&mut client, |_| true);
    client.send(&control("subscribe", &long_topic(ATTEMPTS + 1)));
    let refused = read_json_until(&mut client, |_| true);
    let metrics = server.metrics();
    let gauge = |series| metric_value(&metrics, series);
    let (subscriptions, topics, refusals) = (
        gauge("edgews_subscriptions"),
        gauge("edgews_topics"),
        gauge("edgews_subscriptions_refused_total"),
    );
    eprintln!(
        "subscribe flood: {ATTEMPTS} subscribes to 200-byte topics ({:.1} MiB) on one \
         connection in {took:?}: {subscribed} subscribed, {errors} errors (first \
         {first_error:?}); RSS {:.2} MiB before, peak +{:.2} MiB (peak reset: {}); then \
         unsubscribe {:?}, subscribe {:?}, one more {:?}; metrics: subscriptions \
         {subscriptions:?}, topics {topics:?}, refused {refusals:?}",
        written as f64 / MIB,
        growth.rss_before as f64 / MIB,
        growth.growth as f64 / MIB,
        growth.reset,
        unsubscribed.as_ref().map(|v| v["type"].clone()),
        resubscribed.as_ref().map(|v| v["type"].clone()),
        refused.as_ref().map(|v| v["error"].clone()),
    );
    // the path's topic counts toward the cap
    assert_eq!(subscribed, CAP - 1, "subscriptions granted");
    assert_eq!(errors, ATTEMPTS - (CAP - 1), "refusals answered");
    assert!(growth.reset, "the peak could not be reset");
    assert!(
        growth.growth <= 16 << 20,
        "peak grew by {:.1} MiB",
        growth.growth as f64 / MIB
    );
    assert_eq!(
        unsubscribed,
        Some(json!({"type": "unsubscribed", "topic": long_topic(0)}))
    );
    assert_eq!(
        resubscribed,
        Some(json!({"type": "subscribed", "topic": long_topic(ATTEMPTS)}))
    );
    assert_eq!(refused.map(|v| v["type"].clone()), Some(json!("error")));
    assert_eq!(subscriptions, Some(CAP as f64));
    assert_eq!(topics, Some(CAP as f64));
    assert_eq!(refusals, Some((ATTEMPTS - (CAP - 1) + 1) as f64));
}

// ------------------------------------------------ 13. a crowded chat room

#[test]
fn two_hundred_members_joining_one_chat_room_make_the_server_send_at_most_8_mb() {
    const N: usize = 200;
    let server = start("chat", &[]);
    let started = Instant::now();
    let mut members = Vec::new();
    let mut received = 0usize;
    let mut welcomes = 0usize;
    for i in 0..N {
        let mut member = open(server.addr, &format!("/ws?room=r&name=u{i}"));
        let frame = member.read_frame().expect("a welcome");
        let welcome: Value = serde_json::from_slice(&frame.payload).expect("JSON");
        assert_eq!(welcome["type"], "welcome");
        assert_eq!(welcome["members"].as_array().map(Vec::len), Some(i + 1));
        received += frame.payload.len();
        welcomes += frame.payload.len();
        members.push(member);
    }
    // the i-th hears of the N − 1 − i joins after its own
    for (i, member) in members.iter_mut().enumerate() {
        for j in i + 1..N {
            let frame = member.read_frame().expect("a join");
            let join: Value = serde_json::from_slice(&frame.payload).expect("JSON");
            assert_eq!(
                join,
                json!({"type": "join", "room": "r", "name": format!("u{j}")})
            );
            received += frame.payload.len();
        }
    }
    let took = started.elapsed();
    let sent = server.metric("edgews_bytes_out_total").expect("bytes out");
    let messages = server.metric("edgews_messages_out_total");
    eprintln!(
        "crowded room: {N} members joined one chat room in {took:?}: {received} payload bytes \
         received ({welcomes} in welcomes, {} frames); the server counts {sent} bytes sent, \
         {messages:?} messages",
        N + N * (N - 1) / 2
    );
    assert!(received <= 8_000_000, "{received} bytes received");
    assert!(sent <= 8e6, "{sent} bytes sent");
    // nothing else was sent (no pings within 30 s): the count is exact
    assert_eq!(sent, received as f64, "the server's count of bytes sent");
}

#[test]
fn a_chat_room_at_max_room_members_refuses_the_next_member_with_403() {
    const CAP: usize = 5;
    let server = start("chat", &["--max-room-members", "5"]);
    let mut members: Vec<RawClient> = (0..CAP)
        .map(|i| open(server.addr, &format!("/ws?room=r&name=u{i}")))
        .collect();
    for member in &mut members {
        assert!(read_json_until(member, |v| v["type"] == "welcome").is_some());
    }
    let (head, body) = http_exchange(
        server.addr,
        &upgrade_request(server.addr, "/ws?room=r&name=late"),
    );
    let body = String::from_utf8_lossy(&body).into_owned();
    let other_room = http_exchange(
        server.addr,
        &upgrade_request(server.addr, "/ws?room=other&name=late"),
    )
    .0;
    let refused = server.metric("edgews_handshake_failures_total{status=\"403\"}");
    eprintln!(
        "full room (--max-room-members {CAP}): member {} gets {:?} {:?}; another room gets \
         {:?}; 403 refusals counted {refused:?}",
        CAP + 1,
        head.lines().next(),
        body.trim(),
        other_room.lines().next()
    );
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    assert!(body.contains("room r is full (5 members)"), "{body}");
    assert!(other_room.starts_with("HTTP/1.1 101 "), "{other_room}");
    assert_eq!(refused, Some(1.0));
}

// ------------------------------------ 14. messages capped before parsing

#[test]
fn chat_and_pubsub_close_a_message_over_their_cap_with_1009_before_parsing_it() {
    // not even JSON: at the cap it is parsed and answered with an error;
    // one byte over, the engine closes it with 1009 unread
    let chat_cap = 6 * 4096 + 1024;
    let pubsub_cap = 64 << 10;
    for (mode, path, cap) in [
        ("chat", "/ws?room=r&name=big", chat_cap),
        ("pubsub", "/topics/t", pubsub_cap),
    ] {
        let server = start(mode, &[]);
        let mut c = open(server.addr, path);
        if mode == "chat" {
            assert!(read_json_until(&mut c, |v| v["type"] == "welcome").is_some());
        }
        c.send(&client_frame(
            true,
            OpCode::Text,
            "x".repeat(cap).as_bytes(),
        ));
        let at_cap = read_json_until(&mut c, |_| true);
        let over = client_frame(true, OpCode::Text, "x".repeat(cap + 1).as_bytes());
        let _ = c.stream.write_all(&over); // it may be closed before the end
        let code = c.read_close_code();
        let parse_errors = at_cap.iter().count();
        eprintln!(
            "capped before parsing, {mode}: {cap} bytes of garbage -> {:?}; {} bytes -> close \
             {code:?}",
            at_cap.as_ref().map(|v| v.to_string()),
            cap + 1
        );
        assert_eq!(parse_errors, 1, "no answer to the message at the cap");
        assert_eq!(at_cap.unwrap()["type"], "error");
        assert_eq!(code, Some(1009));
    }
}

// ----------------------------------------------- 15. chat message rate

#[test]
fn chat_answers_messages_over_the_message_rate_with_errors_and_stays_open() {
    let server = start("chat", &["--message-rate", "5", "--message-burst", "5"]);
    let mut c = open(server.addr, "/ws?room=r&name=fast");
    assert!(read_json_until(&mut c, |v| v["type"] == "welcome").is_some());
    let outcome = send_over_rate(
        &mut c,
        |i| json!({"type": "message", "room": "r", "text": format!("m{i}")}),
    );
    eprintln!(
        "chat --message-rate 5 --message-burst 5: {SENT_OVER_RATE} sent at once, {} delivered, \
         {} errors (first {:?}), at most {} allowed; a second later: {:?}",
        outcome.delivered,
        outcome.errors.len(),
        outcome.errors.first(),
        outcome.allowed,
        outcome.later
    );
    outcome.assert_limited();
    assert_eq!(
        outcome.later.map(|v| v["text"].clone()),
        Some(json!(format!("m{SENT_OVER_RATE}")))
    );
}
