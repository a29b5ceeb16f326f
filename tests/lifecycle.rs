//! A connection's life around its messages, over real loopback TCP: the
//! handshake timeout, keep-alive pings, the closing handshake, plain HTTP
//! answers and the connection limit (in-process servers), then graceful
//! shutdown on SIGTERM and running out of file descriptors (the real
//! `edgews` binary).
//!
//! Every blocking read has a timeout, and every child process is killed on
//! drop, so a broken server fails a test instead of hanging it.

mod support;

use edgews::protocol::frame::OpCode;
use edgews::server::Echo;
use edgews::{ProtocolConfig, ServerConfig};
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use support::{client_frame, upgrade_request, RawClient, TestServer};

fn close_frame(code: u16) -> Vec<u8> {
    client_frame(true, OpCode::Close, &code.to_be_bytes())
}

fn with_protocol(protocol: ProtocolConfig) -> ServerConfig {
    ServerConfig {
        protocol,
        ..ServerConfig::default()
    }
}

/// Sends `text` and expects its echo, answering pings on the way.
fn assert_echo(raw: &mut RawClient, text: &str) {
    raw.send(&client_frame(true, OpCode::Text, text.as_bytes()));
    loop {
        let frame = raw.read_frame().expect("echo before EOF/timeout");
        match frame.opcode {
            OpCode::Ping => raw.send(&client_frame(true, OpCode::Pong, &frame.payload)),
            OpCode::Text => {
                assert_eq!(frame.payload, text.as_bytes());
                return;
            }
            _ => panic!("expected the echo of {text:?}, got {frame:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// In-process servers
// ---------------------------------------------------------------------------

#[test]
fn a_client_sending_one_byte_per_second_gets_408_and_is_disconnected_after_the_handshake_timeout() {
    let server = TestServer::start(
        with_protocol(ProtocolConfig {
            handshake_timeout: Duration::from_secs(2),
            ..ProtocolConfig::default()
        }),
        || Echo,
    );
    let request = upgrade_request(server.addr, "/");
    let mut raw = RawClient::connect(server.addr);
    raw.stream
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut stream = raw.stream.try_clone().unwrap();
        let stop = stop.clone();
        thread::spawn(move || {
            use std::io::Write;
            for (i, byte) in request.iter().enumerate() {
                // one byte per second, half a second off the deadline's beat
                let at = started + Duration::from_millis(500 + 1000 * i as u64);
                while Instant::now() < at {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    thread::sleep(Duration::from_millis(20));
                }
                if stream.write_all(&[*byte]).is_err() {
                    return;
                }
            }
        })
    };
    let response = raw.read_http_response();
    let elapsed = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let (head, _) = response.expect("an HTTP response before EOF/timeout");
    assert!(head.starts_with("HTTP/1.1 408 "), "{head}");
    assert!(
        elapsed >= Duration::from_millis(1800) && elapsed < Duration::from_secs(3),
        "408 after {elapsed:?}, expected about 2 s"
    );
    assert!(
        raw.sees_eof_within(Duration::from_secs(1)),
        "the connection stayed open after the 408"
    );
    writer.join().unwrap();
    drop(raw); // a client closes its side once the server has closed
    let stats = server.stop();
    assert_eq!((stats.opened, stats.handshake_failures), (0, 1));
}

fn keepalive_server() -> TestServer {
    TestServer::start(
        with_protocol(ProtocolConfig {
            ping_interval: Some(Duration::from_millis(300)),
            pong_timeout: Duration::from_millis(300),
            ..ProtocolConfig::default()
        }),
        || Echo,
    )
}

#[test]
fn an_idle_client_that_answers_the_keepalive_pings_stays_connected_across_several_intervals() {
    let server = keepalive_server();
    let mut raw = RawClient::open(server.addr, "/");
    raw.stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut last = Instant::now();
    for i in 0..5 {
        let frame = raw.read_frame().expect("a keep-alive ping");
        let gap = last.elapsed();
        assert_eq!(frame.opcode, OpCode::Ping, "frame {i}: {frame:?}");
        assert!(
            gap >= Duration::from_millis(250) && gap < Duration::from_secs(2),
            "ping {i} came {gap:?} after the last activity, expected about 300 ms"
        );
        raw.send(&client_frame(true, OpCode::Pong, &frame.payload));
        last = Instant::now();
    }
    // five intervals later the connection still works
    assert_echo(&mut raw, "still here");
    raw.send(&close_frame(1000));
    loop {
        let frame = raw.read_frame().expect("close reply");
        if let Some(code) = frame.close_code() {
            assert_eq!(code, 1000);
            break;
        }
        assert_eq!(frame.opcode, OpCode::Ping, "{frame:?}");
    }
    drop(raw);
    let stats = server.stop();
    assert_eq!(stats.timer_closes, 0, "a timer closed the connection");
}

#[test]
fn a_client_that_stops_answering_pings_is_closed_with_1011_after_the_pong_timeout() {
    let server = keepalive_server();
    let mut raw = RawClient::open(server.addr, "/");
    raw.stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    // answer the first ping, then go silent
    let frame = raw.read_frame().expect("a keep-alive ping");
    assert_eq!(frame.opcode, OpCode::Ping);
    raw.send(&client_frame(true, OpCode::Pong, &frame.payload));
    let frame = raw.read_frame().expect("a second keep-alive ping");
    assert_eq!(frame.opcode, OpCode::Ping);
    let pinged = Instant::now();
    let frame = raw.read_frame().expect("a close frame");
    let waited = pinged.elapsed();
    assert_eq!(frame.close_code(), Some(1011), "{frame:?}");
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
        "closed {waited:?} after the unanswered ping, expected about 300 ms"
    );
    assert!(
        raw.sees_eof_within(Duration::from_secs(2)),
        "TCP stayed open after the 1011"
    );
    drop(raw);
    let stats = server.stop();
    assert_eq!(stats.timer_closes, 1);
}

#[test]
fn after_the_close_handshake_the_server_closes_tcp_and_ignores_data_sent_after_the_close() {
    let server = TestServer::start(ServerConfig::default(), || Echo);
    let mut raw = RawClient::open(server.addr, "/");
    let mut bytes = client_frame(true, OpCode::Text, b"before");
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"done");
    bytes.extend(client_frame(true, OpCode::Close, &close));
    bytes.extend(client_frame(true, OpCode::Text, b"after"));
    bytes.extend(client_frame(true, OpCode::Ping, b"after"));
    raw.send(&bytes);
    let frame = raw.read_frame().expect("echo of the message before close");
    assert_eq!(
        (frame.opcode, frame.payload.as_slice()),
        (OpCode::Text, &b"before"[..])
    );
    let frame = raw.read_frame().expect("close reply");
    assert_eq!(frame.close_code(), Some(1000), "{frame:?}");
    assert_eq!(&frame.payload[2..], b"done", "the reason is echoed");
    // nothing follows the close reply, and TCP ends promptly
    raw.stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let started = Instant::now();
    let after = raw.read_frame();
    assert!(
        after.is_none(),
        "the server answered after the close: {after:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the server did not close TCP after the close handshake"
    );
    drop(raw);
    let stats = server.stop();
    assert_eq!((stats.opened, stats.closed, stats.messages_in), (1, 1, 1));
}

#[test]
fn get_healthz_is_answered_200_ok_and_closed() {
    let server = TestServer::start(ServerConfig::default(), || Echo);
    let mut raw = RawClient::connect(server.addr);
    raw.send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let (head, body) = raw.read_http_response().expect("a response");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(body, b"ok\n");
    assert!(raw.sees_eof_within(Duration::from_secs(2)));
}

#[test]
fn a_plain_get_without_upgrade_is_answered_426() {
    let server = TestServer::start(ServerConfig::default(), || Echo);
    let mut raw = RawClient::connect(server.addr);
    raw.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let (head, _) = raw.read_http_response().expect("a response");
    assert!(head.starts_with("HTTP/1.1 426 "), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    assert!(raw.sees_eof_within(Duration::from_secs(2)));
}

#[test]
fn an_upgrade_past_max_connections_is_answered_503_and_a_freed_slot_is_reused() {
    let config = ServerConfig {
        max_connections: 2,
        ..ServerConfig::default()
    };
    let server = TestServer::start(config, || Echo);
    let mut first = RawClient::open(server.addr, "/");
    let mut second = RawClient::open(server.addr, "/");
    let mut third = RawClient::connect(server.addr);
    third.send(&upgrade_request(server.addr, "/"));
    let head = third.read_http_head().expect("a response");
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    assert!(third.sees_eof_within(Duration::from_secs(2)));
    drop(third);
    // the two open connections are unaffected
    assert_echo(&mut first, "one");
    assert_echo(&mut second, "two");
    // closing one frees its slot
    first.send(&close_frame(1000));
    assert_eq!(first.read_close_code(), Some(1000));
    assert!(first.sees_eof_within(Duration::from_secs(2)));
    drop(first);
    // the server learns of the slot when it sees our side close: retry briefly
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut fourth = loop {
        let mut raw = RawClient::connect(server.addr);
        raw.send(&upgrade_request(server.addr, "/"));
        let head = raw.read_http_head().expect("a response");
        if head.starts_with("HTTP/1.1 101 ") {
            break raw;
        }
        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        assert!(
            Instant::now() < deadline,
            "the closed connection's slot was never freed"
        );
        drop(raw);
        thread::sleep(Duration::from_millis(50));
    };
    assert_echo(&mut fourth, "four");
}

// ---------------------------------------------------------------------------
// The real binary
// ---------------------------------------------------------------------------

/// An `edgews` process: its stdout's first line gives the address; its
/// stderr (the log) is kept for failure messages. Killed on drop.
struct Daemon {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    /// Runs `command` (which must exec `edgews`, printing its banner).
    fn spawn(mut command: Command) -> Daemon {
        command
            .env("EDGEWS_LOG", "info")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn edgews");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {} // keep draining
        });
        let mut daemon = Daemon {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            log,
        };
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => panic!("no banner from edgews; log:\n{}", daemon.log()),
        };
        let url = line
            .split_once(" listening on ws://")
            .map(|(_, a)| a.trim())
            .unwrap_or_else(|| panic!("unexpected banner {line:?}"));
        daemon.addr = url.parse().expect("address in the banner");
        daemon
    }

    /// `edgews echo --listen 127.0.0.1:0` with extra arguments.
    fn echo(args: &[&str]) -> Daemon {
        let mut command = Command::new(env!("CARGO_BIN_EXE_edgews"));
        command.args(["echo", "--listen", "127.0.0.1:0"]).args(args);
        Daemon::spawn(command)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// The exit status, if the process ends within `limit`.
    fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// CPU time (user + system) the process has used so far.
    fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("read /proc/PID/stat");
        // fields after the parenthesised command name; utime and stime are
        // fields 14 and 15 of the whole line, 12 and 13 after the name
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // USER_HZ is 100 on Linux
        Duration::from_millis(ticks * 10)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads the 1001 close every client gets on shutdown.
fn expect_going_away(raw: &mut RawClient, who: usize, daemon: &Daemon) {
    let frame = raw.read_frame();
    let code = frame.as_ref().and_then(|f| f.close_code());
    assert_eq!(
        code,
        Some(1001),
        "client {who}: got {frame:?}; log:\n{}",
        daemon.log()
    );
}

#[test]
fn sigterm_closes_every_client_with_1001_and_the_process_exits_0_once_they_answer() {
    let mut daemon = Daemon::echo(&["--shutdown-timeout", "2s"]);
    let mut clients: Vec<RawClient> = (0..5).map(|_| RawClient::open(daemon.addr, "/")).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_echo(c, &format!("hello {i}"));
    }
    let signalled = Instant::now();
    daemon.sigterm();
    for (i, c) in clients.iter_mut().enumerate() {
        expect_going_away(c, i, &daemon);
    }
    // shutdown stopped accepting before it sent the closes
    assert!(
        TcpStream::connect(daemon.addr).is_err(),
        "the server still accepts connections while shutting down"
    );
    for c in clients.iter_mut() {
        c.send(&close_frame(1001));
    }
    for (i, c) in clients.iter_mut().enumerate() {
        assert!(
            c.sees_eof_within(Duration::from_secs(2)),
            "client {i}: TCP stayed open after the close handshake"
        );
    }
    drop(clients); // as a client does once the server has closed TCP
    let status = daemon.wait_for_exit(Duration::from_secs(2));
    let elapsed = signalled.elapsed();
    let log = daemon.log();
    let status = status.unwrap_or_else(|| panic!("still running 2 s after SIGTERM; log:\n{log}"));
    assert!(status.success(), "exit status {status}; log:\n{log}");
    assert!(
        elapsed < Duration::from_secs(2),
        "exit took {elapsed:?}, more than the shutdown timeout"
    );
}

#[test]
fn sigterm_with_a_client_that_never_answers_the_close_still_exits_0_within_the_shutdown_timeout() {
    let mut daemon = Daemon::echo(&["--shutdown-timeout", "2s"]);
    let mut polite = RawClient::open(daemon.addr, "/");
    let mut mute = RawClient::open(daemon.addr, "/");
    assert_echo(&mut polite, "polite");
    assert_echo(&mut mute, "mute");
    let signalled = Instant::now();
    daemon.sigterm();
    expect_going_away(&mut polite, 0, &daemon);
    expect_going_away(&mut mute, 1, &daemon);
    polite.send(&close_frame(1001));
    assert!(polite.sees_eof_within(Duration::from_secs(2)));
    drop(polite);
    // `mute` keeps its TCP connection open and says nothing
    let status = daemon.wait_for_exit(Duration::from_secs(3) + Duration::from_millis(500));
    let elapsed = signalled.elapsed();
    let log = daemon.log();
    let status = status.unwrap_or_else(|| panic!("still running 3.5 s after SIGTERM; log:\n{log}"));
    assert!(status.success(), "exit status {status}; log:\n{log}");
    assert!(
        elapsed < Duration::from_secs(3),
        "exit took {elapsed:?}: more than shutdown-timeout + 1 s"
    );
    assert!(
        elapsed >= Duration::from_millis(1500),
        "exited after {elapsed:?} without waiting for the close reply"
    );
    assert!(
        mute.sees_eof_within(Duration::from_secs(2)),
        "the silent client's connection outlived the process"
    );
}

#[test]
fn out_of_file_descriptors_the_server_neither_spins_nor_drops_open_clients_and_recovers() {
    let mut command = Command::new("bash");
    command.arg("-c").arg(format!(
        // one worker: with several, each refuses from its own accept queue
        // with its own reserve descriptor, so which of the crowd wait and
        // which are told 503 depends on the kernel's spread over them
        "ulimit -n 64 && exec '{}' echo --workers 1 --listen 127.0.0.1:0 --handshake-timeout 60s",
        env!("CARGO_BIN_EXE_edgews")
    ));
    let daemon = Daemon::spawn(command);
    let mut veteran = RawClient::open(daemon.addr, "/");
    assert_echo(&mut veteran, "before");

    // more connections than descriptors: the kernel completes them all, the
    // server can accept only some
    let mut crowd: Vec<TcpStream> = (0..80)
        .map(|i| {
            TcpStream::connect(daemon.addr).unwrap_or_else(|e| panic!("connection {i} failed: {e}"))
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let before = daemon.cpu_time();
    let window = Instant::now();
    thread::sleep(Duration::from_secs(2));
    let used = daemon.cpu_time().saturating_sub(before);
    let window = window.elapsed();
    eprintln!("out of descriptors: {used:?} of CPU in {window:?}");
    let log = daemon.log();
    // out of descriptors, the reserve answers the crowd past the limit 503
    // (the listener is reported while they wait); before the listeners
    // were level-triggered, the drain's last `accept` also failed, with
    // EMFILE on an empty backlog, and paused accepting
    assert!(
        log.contains("out of file descriptors") || log.contains("accept failed"),
        "the server never ran out of descriptors; log:\n{log}"
    );
    assert!(
        used < Duration::from_millis(500),
        "the server used {used:?} of CPU in {window:?} while out of descriptors"
    );
    // the connection it already had still works
    assert_echo(&mut veteran, "during");

    // free descriptors: closing most of the crowd lets the server recover
    crowd.truncate(10);
    let recovering = Instant::now();
    let mut newcomer = RawClient::open(daemon.addr, "/");
    newcomer
        .stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_echo(&mut newcomer, "after");
    let took = recovering.elapsed();
    assert!(took < Duration::from_secs(5), "recovery took {took:?}");
    assert_echo(&mut veteran, "still");
    // the ten left waiting are served too: each gets an answer to a request
    for (i, stream) in crowd.iter_mut().enumerate() {
        use std::io::Write;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        assert!(
            response.starts_with(b"HTTP/1.1 200 "),
            "waiting connection {i} got {:?}",
            String::from_utf8_lossy(&response)
        );
    }
}
