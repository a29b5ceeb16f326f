//! Each fan-out peer relays as `edgews broadcast` does: a message from
//! one client reaches every other open connection, with its opcode, in
//! the order sent, and never comes back to its sender; a close is
//! answered with a close and then the end of the stream.

use edgews::protocol::mask::apply_mask;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Peer(Child, String);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(name: &str) -> Peer {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgews-peers"))
        .args([name, "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the peer");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .expect("announce")
        .to_string();
    Peer(child, addr)
}

fn connect(peer: &Peer) -> TcpStream {
    let mut stream = TcpStream::connect(&peer.1).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    stream
}

fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    frame.extend_from_slice(&key);
    let start = frame.len();
    frame.extend_from_slice(payload);
    apply_mask(&mut frame[start..], key, 0);
    frame
}

fn read_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(head[1] & 0x80, 0, "server frames are unmasked");
    let len = match head[1] & 0x7f {
        126 => {
            let mut n = [0u8; 2];
            stream.read_exact(&mut n).unwrap();
            u16::from_be_bytes(n) as usize
        }
        127 => panic!("no frame here is that long"),
        n => n as usize,
    };
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).unwrap();
    (head[0], payload)
}

/// Message `i` from `who`: text for even `i`, binary for odd, some of
/// them longer than 125 bytes.
fn message(who: &str, i: usize) -> (u8, Vec<u8>) {
    let mut payload = format!("{who}{i:03}").into_bytes();
    if i % 5 == 4 {
        payload.resize(300, b'.');
    }
    (if i.is_multiple_of(2) { 0x1 } else { 0x2 }, payload)
}

const COUNT: usize = 40;

fn relays_to_every_other_connection_in_order(name: &str) {
    let peer = start(name);
    let (mut a, mut b, mut c) = (connect(&peer), connect(&peer), connect(&peer));
    // A's messages, some in one write, so several arrive in one read
    let mut batch = Vec::new();
    for i in 0..COUNT {
        let (opcode, payload) = message("a", i);
        batch.extend(masked(opcode, &payload));
        if i % 8 == 7 {
            a.write_all(&batch).unwrap();
            batch.clear();
        }
    }
    a.write_all(&batch).unwrap();
    for (who, stream) in [("b", &mut b), ("c", &mut c)] {
        for i in 0..COUNT {
            let (opcode, payload) = message("a", i);
            assert_eq!(
                read_frame(stream),
                (0x80 | opcode, payload),
                "{who} gets a{i}"
            );
        }
    }
    // B's message reaches A and C; A's own came not back to A before it
    b.write_all(&masked(0x2, b"from b")).unwrap();
    assert_eq!(read_frame(&mut a), (0x82, b"from b".to_vec()), "a");
    assert_eq!(read_frame(&mut c), (0x82, b"from b".to_vec()), "c");
    // nor after it, nor does B get its own: C's message is next for both
    c.write_all(&masked(0x1, b"from c")).unwrap();
    assert_eq!(read_frame(&mut a), (0x81, b"from c".to_vec()), "a");
    assert_eq!(read_frame(&mut b), (0x81, b"from c".to_vec()), "b");
    // A closes: answered, then the end of the stream; B and C stay
    a.write_all(&masked(0x8, &[0x03, 0xE8])).unwrap();
    assert_eq!(read_frame(&mut a), (0x88, vec![0x03, 0xE8]));
    let mut rest = Vec::new();
    a.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "nothing after the close: {rest:02x?}");
    b.write_all(&masked(0x2, b"a is gone")).unwrap();
    assert_eq!(read_frame(&mut c), (0x82, b"a is gone".to_vec()));
}

#[test]
fn fanout_tokio_tungstenite_relays_to_every_other_connection_in_order() {
    relays_to_every_other_connection_in_order("fanout-tokio-tungstenite");
}

#[test]
fn fanout_fastwebsockets_relays_to_every_other_connection_in_order() {
    relays_to_every_other_connection_in_order("fanout-fastwebsockets");
}

#[test]
fn fanout_tokio_websockets_relays_to_every_other_connection_in_order() {
    relays_to_every_other_connection_in_order("fanout-tokio-websockets");
}

#[test]
fn fanout_floor_relays_to_every_other_connection_in_order() {
    relays_to_every_other_connection_in_order("fanout-floor");
}
