//! Helpers shared by the integration tests: an in-process server on an
//! ephemeral loopback port, and a raw WebSocket peer that speaks frames
//! byte by byte (to send what a well-behaved client never would).
//! [`measure`]: memory, descriptors and deadlines from /proc;
//! [`process`]: the `edgews` binary, or a test alone, in a child process.
#![allow(dead_code)]

pub mod measure;
pub mod process;
pub mod proxy;
pub mod redis;
pub mod tls;

use edgews::protocol::frame::{decode_header, encode_frame, encode_header, OpCode};
use edgews::protocol::mask::apply_mask;
use edgews::reactor::{Handler, Reactor, ShutdownHandle, Stats};
use edgews::ServerConfig;
// `support::rss_bytes` in tests/echo.rs; unused by the other test files
#[allow(unused_imports)]
pub use measure::rss_bytes;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A server running on its own thread; shut down and joined on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<Stats>>,
}

impl TestServer {
    /// Starts `handler` on 127.0.0.1 with an ephemeral port.
    pub fn start<H, F>(mut config: ServerConfig, make_handler: F) -> TestServer
    where
        H: Handler + 'static,
        F: FnOnce() -> H + Send + 'static,
    {
        config.listen = "127.0.0.1:0".parse().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut reactor = Reactor::new(config, make_handler()).expect("reactor");
            let addr = reactor.listen().expect("listen");
            tx.send((addr, reactor.shutdown_handle())).unwrap();
            reactor.run().expect("run");
            reactor.stats().clone()
        });
        let (addr, handle) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server start");
        TestServer {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    /// The `ws://` URL of the server, with `path`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Shuts down gracefully and returns the server's counters.
    pub fn stop(mut self) -> Stats {
        self.handle.shutdown();
        self.thread.take().unwrap().join().expect("server thread")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.handle.shutdown();
            let _ = thread.join();
        }
    }
}

/// A valid upgrade request for `path` on `addr`.
pub fn upgrade_request(addr: SocketAddr, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// A frame as a client sends it (masked).
pub fn client_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(
        &mut out,
        fin,
        opcode,
        Some([0x12, 0x34, 0x56, 0x78]),
        payload,
    );
    out
}

/// A masked frame header announcing `len` bytes (payload not included).
pub fn client_header(fin: bool, opcode: OpCode, len: u64) -> Vec<u8> {
    let mut out = Vec::new();
    encode_header(&mut out, fin, opcode, Some([0x12, 0x34, 0x56, 0x78]), len);
    out
}

/// A frame received from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: OpCode,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The close code of a close frame (1005 when it has none).
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == OpCode::Close).then(|| match self.payload.as_slice() {
            [a, b, ..] => u16::from_be_bytes([*a, *b]),
            _ => 1005,
        })
    }
}

/// A raw TCP peer: writes whatever bytes it is given, reads frames.
pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    /// Connects without any handshake.
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        RawClient {
            stream,
            buf: Vec::new(),
        }
    }

    /// Wraps a connected (or accepted) stream, as it is.
    pub fn from_stream(stream: TcpStream) -> RawClient {
        RawClient {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects and completes the opening handshake for `path`.
    pub fn open(addr: SocketAddr, path: &str) -> RawClient {
        let mut c = RawClient::connect(addr);
        c.send(&upgrade_request(addr, path));
        let head = c.read_http_head().expect("response head");
        assert!(head.starts_with("HTTP/1.1 101 "), "upgrade refused: {head}");
        c
    }

    /// Writes bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Reads an HTTP response head (up to the blank line); `None` at EOF.
    pub fn read_http_head(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                return Some(String::from_utf8_lossy(&head).into_owned());
            }
            if self.fill().ok()? == 0 {
                return None;
            }
        }
    }

    /// Reads a whole HTTP response (head and `Content-Length` body).
    pub fn read_http_response(&mut self) -> Option<(String, Vec<u8>)> {
        let head = self.read_http_head()?;
        let len = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap())
            })
            .unwrap_or(0);
        while self.buf.len() < len {
            if self.fill().ok()? == 0 {
                break;
            }
        }
        let body = self.buf.drain(..len.min(self.buf.len())).collect();
        Some((head, body))
    }

    /// Exactly `n` bytes, as they came (masks and all).
    pub fn read_exact_bytes(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill().expect("read") > 0, "EOF before {n} bytes");
        }
        self.buf.drain(..n).collect()
    }

    /// Reads the next frame; `None` at EOF (or on a read error).
    pub fn read_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = take_frame(&mut self.buf) {
                return Some(frame);
            }
            if self.fill().ok()? == 0 {
                return None;
            }
        }
    }

    /// Reads frames until a close frame; returns its code.
    pub fn read_close_code(&mut self) -> Option<u16> {
        loop {
            let frame = self.read_frame()?;
            if let Some(code) = frame.close_code() {
                return Some(code);
            }
        }
    }

    /// Whether the server closes the TCP connection within `limit`.
    pub fn sees_eof_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        self.stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut sink = [0u8; 4096];
        while Instant::now() < deadline {
            match self.stream.read(&mut sink) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return true, // reset counts as closed
            }
        }
        false
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 64 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }
}

/// Takes the first whole frame off the front of `buf` (unmasked), if one
/// is there.
pub fn take_frame(buf: &mut Vec<u8>) -> Option<Frame> {
    let (h, n) = decode_header(buf, 0).ok()??;
    let total = n + h.len as usize;
    if buf.len() < total {
        return None;
    }
    let mut payload = buf[n..total].to_vec();
    if let Some(key) = h.mask() {
        apply_mask(&mut payload, key, 0);
    }
    buf.drain(..total);
    Some(Frame {
        fin: h.fin,
        opcode: h.opcode,
        payload,
    })
}
