//! Helpers for `edgews proxy` (tests/proxy.rs, tests/proxy_more.rs): the
//! proxy in front of given upstreams, a raw upstream the test scripts by
//! hand (it answers what the test says, sends what a real server never
//! would, and shows the exact bytes the proxy relayed), an `edgews echo`
//! on a fixed port (to restart one where it was), clients from other
//! loopback addresses (127.0.0.2, ...) for per-IP limits, and a flood
//! toward a side that does not read (the proxy's memory measured).

use super::measure::{mib_delta, wait_until, MIB};
use super::process::{http_exchange, Launch, ServerProcess, BIN};
use super::{client_frame, upgrade_request, Frame, RawClient};
use edgews::protocol::accept::accept_key;
use edgews::protocol::frame::{encode_frame, encode_header, OpCode};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Generous bound for anything expected to happen "soon".
pub const SOON: Duration = Duration::from_secs(10);

/// `ws://ADDR`, as an `--upstream` and as the metrics' label.
pub fn ws_url(addr: SocketAddr) -> String {
    format!("ws://{addr}")
}

/// `edgews proxy` in front of `upstreams`, with `args`; health checks off
/// unless `args` set `--health-interval` (a raw upstream would see them).
pub fn proxy(upstreams: &[SocketAddr], args: &[&str]) -> ServerProcess {
    proxy_launch(upstreams, args).start()
}

/// The [`Launch`] of [`proxy`], to add an environment variable.
pub fn proxy_launch(upstreams: &[SocketAddr], args: &[&str]) -> Launch {
    let mut all: Vec<String> = Vec::new();
    for addr in upstreams {
        all.push("--upstream".into());
        all.push(ws_url(*addr));
    }
    if !args.contains(&"--health-interval") {
        all.extend(["--health-interval".into(), "0".into()]);
    }
    all.extend(args.iter().map(|a| a.to_string()));
    Launch::new("proxy").args(all)
}

/// The proxy's series `edgews_proxy_upstream_NAME{upstream="ws://ADDR"}`.
pub fn upstream_metric(proxy: &ServerProcess, name: &str, upstream: SocketAddr) -> Option<f64> {
    let series = format!(
        "edgews_proxy_upstream_{name}{{upstream=\"{}\"}}",
        ws_url(upstream)
    );
    proxy.metric(&series)
}

/// Waits until `upstream_metric` is `value`.
pub fn upstream_metric_becomes(
    proxy: &ServerProcess,
    name: &str,
    upstream: SocketAddr,
    value: f64,
) -> bool {
    wait_until(SOON, || {
        upstream_metric(proxy, name, upstream) == Some(value)
    })
}

/// `edgews MODE` serving TLS with `pki`'s good leaf, with `args`.
pub fn start_tls(mode: &str, pki: &super::tls::TestPki, args: &[&str]) -> ServerProcess {
    let (cert, key) = (&pki.server.cert, &pki.server.key);
    let tls = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    Launch::new(mode).args(tls).args(args).start()
}

/// A loopback address that refuses connections (a port just freed).
pub fn refusing_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The status code of a response head.
pub fn status_of(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a status line: {head:?}"))
}

/// A header's value in a head (the first, case-insensitive name).
pub fn header_of(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// A valid upgrade request for `path` on `addr`, with `extra` header lines.
pub fn upgrade_with(addr: SocketAddr, path: &str, extra: &[&str]) -> Vec<u8> {
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for line in extra {
        request += line;
        request += "\r\n";
    }
    request += "\r\n";
    request.into_bytes()
}

/// A frame as a server sends it (unmasked).
pub fn server_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, fin, opcode, None, payload);
    out
}

/// A close payload: the code, then the reason.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    payload
}

/// A raw upstream: a loopback listener whose connections the test takes
/// one by one ([`next`](Self::next)) and answers by hand.
pub struct RawUpstream {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    incoming: Receiver<TcpStream>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RawUpstream {
    /// Listens on an ephemeral loopback port.
    pub fn start() -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        RawUpstream::on(listener)
    }

    /// Serves `listener`.
    pub fn on(listener: TcpListener) -> RawUpstream {
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, incoming) = mpsc::channel();
        let (count, stopped) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        count.fetch_add(1, Ordering::SeqCst);
                        let _ = tx.send(stream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        RawUpstream {
            addr,
            accepted,
            incoming,
            stop,
            thread: Some(thread),
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The next connection and its request head (within [`SOON`]).
    pub fn next(&self) -> UpstreamPeer {
        self.try_next(SOON)
            .expect("the proxy connects to the upstream")
    }

    /// The next connection and its request head, if one comes in `limit`.
    pub fn try_next(&self, limit: Duration) -> Option<UpstreamPeer> {
        let stream = self.incoming.recv_timeout(limit).ok()?;
        stream.set_read_timeout(Some(SOON)).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut conn = RawClient::from_stream(stream);
        let head = conn.read_http_head().expect("a request head");
        Some(UpstreamPeer { head, conn })
    }

    /// The next connection, answered 101 (with `extra` header lines).
    pub fn next_accepted(&self, extra: &[&str]) -> UpstreamPeer {
        let mut peer = self.next();
        peer.accept(extra);
        peer
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One connection the proxy made to a [`RawUpstream`].
pub struct UpstreamPeer {
    /// The request head the proxy sent.
    pub head: String,
    /// The connection, read and written as a raw peer.
    conn: RawClient,
}

impl std::ops::Deref for UpstreamPeer {
    type Target = RawClient;
    fn deref(&self) -> &RawClient {
        &self.conn
    }
}

impl std::ops::DerefMut for UpstreamPeer {
    fn deref_mut(&mut self) -> &mut RawClient {
        &mut self.conn
    }
}

impl UpstreamPeer {
    /// The request line (`GET /path HTTP/1.1`).
    pub fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }

    /// A request header's value (the first line of that name).
    pub fn header(&self, name: &str) -> Option<String> {
        header_of(&self.head, name)
    }

    /// Answers 101 for the request's key, with `extra` header lines.
    pub fn accept(&mut self, extra: &[&str]) {
        self.accept_with(extra, &[]);
    }

    /// Answers 101 with `extra` header lines and `frames` in one write.
    pub fn accept_with(&mut self, extra: &[&str], frames: &[u8]) {
        let key = self.header("sec-websocket-key").expect("a key");
        let accept = accept_key(key.as_bytes());
        let mut answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n",
            String::from_utf8_lossy(&accept)
        );
        for line in extra {
            answer += line;
            answer += "\r\n";
        }
        answer += "\r\n";
        let mut bytes = answer.into_bytes();
        bytes.extend_from_slice(frames);
        self.send(&bytes);
    }

    /// A client broke the protocol: the proxy's close names the client's
    /// fault (its code, reason `client: ...`), and nothing of the bad frame
    /// came before it. Answers it with the same code.
    pub fn hears_the_clients_fault(&mut self, code: u16) {
        let frame = self
            .read_frame()
            .expect("a close, and nothing of the bad frame");
        assert_eq!(frame.close_code(), Some(code), "{frame:?}");
        let reason = String::from_utf8_lossy(&frame.payload[2..]).into_owned();
        assert!(reason.starts_with("client: "), "{reason:?}");
        self.send(&server_frame(true, OpCode::Close, &close_payload(code, "")));
    }
}

/// A TCP connection to `addr` from the loopback address `from`
/// (127.0.0.2, ...: all of 127/8 is local on Linux).
pub fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&local.into()).expect("bind a loopback address");
    socket.connect(&addr.into()).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(SOON)).unwrap();
    stream
}

/// Sends `request` on `stream` and reads the response head (byte by byte,
/// so that nothing after it is taken).
pub fn exchange_head(stream: &mut TcpStream, request: &[u8]) -> String {
    stream.write_all(request).expect("write the request");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// `edgews echo` on a fixed loopback port (the harness's `Launch` always
/// takes an ephemeral one): to restart an upstream where it was. Killed
/// on drop.
pub struct FixedEcho {
    child: Child,
}

impl FixedEcho {
    /// Starts it on `addr` and waits until it accepts connections.
    pub fn start(addr: SocketAddr) -> FixedEcho {
        let child = Command::new(BIN)
            .args(["echo", "--workers", "1", "--listen", &addr.to_string()])
            .env_remove("RUST_LOG")
            .env_remove("EDGEWS_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn edgews echo");
        let echo = FixedEcho { child };
        assert!(
            wait_until(SOON, || TcpStream::connect(addr).is_ok()),
            "edgews echo did not start on {addr}"
        );
        echo
    }
}

impl Drop for FixedEcho {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------- clients and the proxy

/// The client's upgrade `request` sent through `proxy_addr`; the
/// upstream's connection answered 101 with `answer` header lines; the
/// client's response head read.
pub fn open_through(
    proxy_addr: SocketAddr,
    upstream: &RawUpstream,
    request: &[u8],
    answer: &[&str],
) -> (RawClient, UpstreamPeer, String) {
    let mut client = RawClient::connect(proxy_addr);
    client.send(request);
    let peer = upstream.next_accepted(answer);
    let head = client.read_http_head().expect("the proxy answers");
    (client, peer, head)
}

/// A relayed pair through `proxy_addr`: the client has its 101.
pub fn relayed_pair(proxy_addr: SocketAddr, upstream: &RawUpstream) -> (RawClient, UpstreamPeer) {
    let request = upgrade_request(proxy_addr, "/");
    let (client, peer, head) = open_through(proxy_addr, upstream, &request, &[]);
    assert_eq!(status_of(&head), 101, "{head}");
    (client, peer)
}

/// A client's upgrade through a new proxy, answered by its raw upstream
/// with `answer` (raw bytes): the status and body the client gets.
pub fn answered_with(answer: &[u8]) -> (u16, String, RawUpstream, ServerProcess) {
    let upstream = RawUpstream::start();
    let proxy = proxy(&[upstream.addr], &[]);
    let mut client = RawClient::connect(proxy.addr);
    client.send(&upgrade_request(proxy.addr, "/"));
    let mut peer = upstream.next();
    peer.send(answer);
    drop(peer);
    let (head, body) = client.read_http_response().expect("an answer");
    let body = String::from_utf8_lossy(&body).into_owned();
    (status_of(&head), body, upstream, proxy)
}

/// Closes a relayed client cleanly: close 1000, the other end's close
/// (an echo's), the proxy's EOF.
pub fn close_cleanly(mut client: RawClient) {
    client.send(&client_frame(true, OpCode::Close, &close_payload(1000, "")));
    assert_eq!(client.read_close_code(), Some(1000));
    assert!(client.sees_eof_within(SOON));
}

/// The status a server answers a fresh upgrade with.
pub fn upgrade_status(addr: SocketAddr) -> u16 {
    status_of(&http_exchange(addr, &upgrade_request(addr, "/")).0)
}

/// An upgrade from the loopback address `from` with `headers`: the status,
/// and the connection (open when it is 101).
pub fn upgrade_from(from: &str, server: SocketAddr, headers: &[&str]) -> (u16, TcpStream) {
    let mut stream = connect_from(from, server);
    let head = exchange_head(&mut stream, &upgrade_with(server, "/", headers));
    (status_of(&head), stream)
}

/// The proxy's `connections` gauge of each upstream.
pub fn gauges(proxy: &ServerProcess, upstreams: &[SocketAddr]) -> Vec<f64> {
    let one = |u| upstream_metric(proxy, "connections", u).expect("the gauge");
    upstreams.iter().map(|u| one(*u)).collect()
}

/// Whether the server's log gets a line containing `text` (soon).
pub fn logs(server: &ServerProcess, text: &str) -> bool {
    wait_until(SOON, || server.stderr_text().contains(text))
}

/// An HS256 token for `sub` signed with `secret`, valid for an hour.
pub fn token(sub: &str, secret: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": sub, "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("a token")
}

// ------------------------------------------------------------- floods

/// Frames of a flood, and their payload size: 50 MiB.
pub const FLOOD_FRAMES: usize = 800;
pub const FLOOD_FRAME: usize = 64 << 10;

/// Writes the flood on `stream` from a thread (frame `i` is filled with
/// `i as u8`; masked as a client's when `masked`); the bytes written so far.
fn flood(mut stream: TcpStream, masked: bool) -> (JoinHandle<()>, Arc<AtomicU64>) {
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    let mask = masked.then_some([0x12, 0x34, 0x56, 0x78]);
    let thread = std::thread::spawn(move || {
        for i in 0..FLOOD_FRAMES {
            let mut frame = Vec::with_capacity(FLOOD_FRAME + 14);
            encode_header(&mut frame, true, OpCode::Binary, mask, FLOOD_FRAME as u64);
            // `i` repeated, masked: `i ^ key[k % 4]` at offset k
            let key = mask.unwrap_or([0; 4]);
            frame.extend((0..FLOOD_FRAME).map(|k| i as u8 ^ key[k % 4]));
            stream.write_all(&frame).expect("the flood");
            counter.fetch_add(frame.len() as u64, Ordering::SeqCst);
        }
    });
    (thread, written)
}

/// Waits until the flood's writes stall (nothing more taken for three
/// looks 200 ms apart, or all written); how much was written.
fn stalled(written: &AtomicU64) -> u64 {
    let (mut last, mut still) = (u64::MAX, 0);
    wait_until(SOON, || {
        std::thread::sleep(Duration::from_millis(200));
        let now = written.load(Ordering::SeqCst);
        still = if now == last { still + 1 } else { 0 };
        last = now;
        still >= 3
    });
    last
}

/// A flood written on `writer` toward a reader that does not read: the
/// writer stalls well before the end, the proxy's memory stays within
/// 16 MiB of what it was, and once `read` reads, every frame arrives whole
/// and in order, the proxy's peak still within 16 MiB.
pub fn flood_is_held_back(
    proxy: &ServerProcess,
    writer: TcpStream,
    masked: bool,
    mut read: impl FnMut() -> Option<Frame>,
) {
    let base = proxy.vm_rss();
    let (thread, written) = flood(writer, masked);
    let out = stalled(&written);
    let total = (FLOOD_FRAMES * (FLOOD_FRAME + 10 + 4 * masked as usize)) as u64;
    let grew = mib_delta(proxy.vm_rss(), base);
    let (out_mib, total_mib) = (out as f64 / MIB, total as f64 / MIB);
    println!(
        "{out_mib:.1} of {total_mib:.1} MiB written, then a stall; the proxy grew {grew:.1} MiB"
    );
    assert!(out < total, "the proxy took the whole flood");
    assert!(grew < 16.0, "the proxy holds what its reader does not read");
    proxy.reset_peak();
    for i in 0..FLOOD_FRAMES {
        let frame = read().expect("the flood's frame");
        assert_eq!(frame.payload.len(), FLOOD_FRAME);
        let intact = frame.payload.iter().all(|b| *b == i as u8);
        assert!(intact, "frame {i} damaged");
    }
    thread.join().unwrap();
    let peak = mib_delta(proxy.vm_hwm(), base);
    assert!(peak < 16.0, "the peak while draining: {peak:.1} MiB");
}
