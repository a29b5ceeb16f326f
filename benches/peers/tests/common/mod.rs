//! What the peers' tests share: a peer process started on a free port, a
//! raw client's upgrade, and masked frames written and server frames read.
//! Each test uses only some of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The RFC 6455 sample key, and the accept it calls for.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// The upgrade request's key and version headers, with `KEY`.
pub const KEY_HEADERS: &str =
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

/// A peer process, killed when dropped, and the address it announced.
pub struct Peer {
    child: Child,
    pub addr: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `edgews-peers` binary, to be given its arguments.
pub fn peers() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edgews-peers"))
}

/// Starts `edgews-peers <name> --listen 127.0.0.1:0`.
pub fn start(name: &str) -> Peer {
    spawn(peers().args([name, "--listen", "127.0.0.1:0"]))
}

/// Starts `command` and waits for its `listening <addr>` line.
pub fn spawn(command: &mut Command) -> Peer {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .expect("announce")
        .to_string();
    Peer { child, addr }
}

/// A TCP connection to `addr` whose reads give up after 10 s.
pub fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Writes an upgrade request for `host` with `headers` (each line ending
/// in CRLF; `KEY_HEADERS` or the like).
pub fn send_upgrade(stream: &mut impl Write, host: &str, headers: &str) {
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         {headers}\r\n"
    )
    .unwrap();
}

/// Reads the response's head, byte by byte so nothing after it is taken,
/// and checks that it is a 101.
pub fn read_101(stream: &mut impl Read) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    head
}

/// Sends an upgrade request (Host `x`) with `headers` and reads the 101's
/// head.
pub fn upgrade(stream: &mut (impl Read + Write), headers: &str) -> String {
    send_upgrade(stream, "x", headers);
    read_101(stream)
}

/// A masked client frame; `first` is its first byte (FIN, RSV1, opcode).
pub fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![first];
    match payload.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

/// Reads a server frame (which must be unmasked): its first byte and
/// payload.
pub fn read_frame(stream: &mut impl Read) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(head[1] & 0x80, 0, "server frames are unmasked");
    let len = match head[1] & 0x7f {
        126 => {
            let mut n = [0u8; 2];
            stream.read_exact(&mut n).unwrap();
            u16::from_be_bytes(n) as usize
        }
        127 => {
            let mut n = [0u8; 8];
            stream.read_exact(&mut n).unwrap();
            u64::from_be_bytes(n) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).unwrap();
    (head[0], payload)
}

/// Writes `frame` in two pieces with a pause between, so the second
/// completes a frame begun by the first.
pub fn write_in_two(stream: &mut impl Write, frame: &[u8]) {
    let cut = frame.len() / 2;
    stream.write_all(&frame[..cut]).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(5));
    stream.write_all(&frame[cut..]).unwrap();
    stream.flush().unwrap();
}

/// Checks that the server ends the stream with nothing more.
pub fn assert_stream_ends(stream: &mut impl Read) {
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "nothing after the close: {rest:02x?}");
}
