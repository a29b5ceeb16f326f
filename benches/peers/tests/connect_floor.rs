//! The connect-floor yardstick answers a connection's whole life as
//! benchmarks of connection setup need it to: the upgrade with the right
//! accept key, frames echoed unmasked (whole, in pieces, several in one
//! read), a ping with its pong, a close with a close and then the end of
//! the stream; and a client's end of the stream with the server's.

use edgews::protocol::accept::accept_key;
use edgews::protocol::mask::apply_mask;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Floor(Child, String);

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start() -> Floor {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgews-peers"))
        .args(["connect-floor", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the connect floor");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .expect("announce")
        .to_string();
    Floor(child, addr)
}

fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x80 | opcode];
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
    let start = frame.len();
    frame.extend_from_slice(payload);
    apply_mask(&mut frame[start..], key, 0);
    frame
}

fn read_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(head[1] & 0x80, 0, "the floor's frames are unmasked");
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

/// Connects and upgrades, checking the 101 and its accept key.
fn upgrade(floor: &Floor) -> TcpStream {
    let mut stream = TcpStream::connect(&floor.1).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         sec-websocket-key:  {key} \r\nSec-WebSocket-Version: 13\r\n\r\n"
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
    let accept = accept_key(key.as_bytes());
    let accept = std::str::from_utf8(&accept).unwrap();
    assert!(
        head.contains(&format!("Sec-WebSocket-Accept: {accept}\r\n")),
        "{head}"
    );
    stream
}

fn assert_stream_ends(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "nothing after the close: {rest:02x?}");
}

#[test]
fn the_connect_floor_upgrades_echoes_and_answers_a_close_then_ends_the_stream() {
    let floor = start();
    let mut stream = upgrade(&floor);
    stream.write_all(&masked(0x2, &[7; 20])).unwrap();
    assert_eq!(read_frame(&mut stream), (0x82, vec![7; 20]));
    stream.write_all(&masked(0x8, &[0x03, 0xE8])).unwrap();
    assert_eq!(read_frame(&mut stream), (0x88, vec![0x03, 0xE8]));
    assert_stream_ends(&mut stream);
}

#[test]
fn the_connect_floor_echoes_frames_in_pieces_and_several_in_one_read() {
    let floor = start();
    let mut stream = upgrade(&floor);
    for size in [0, 20, 125, 126, 65535, 65536, 200_000] {
        let payload: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        let frame = masked(0x2, &payload);
        let cut = frame.len() / 2;
        stream.write_all(&frame[..cut]).unwrap();
        stream.flush().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        stream.write_all(&frame[cut..]).unwrap();
        assert_eq!(read_frame(&mut stream), (0x82, payload), "size {size}");
    }
    // text, a pong (dropped), a ping, binary, then the close: one write
    let mut batch = masked(0x1, b"first");
    batch.extend(masked(0xA, b"unsolicited"));
    batch.extend(masked(0x9, b"hi"));
    batch.extend(masked(0x2, &[9; 300]));
    batch.extend(masked(0x8, &[0x03, 0xE8]));
    stream.write_all(&batch).unwrap();
    assert_eq!(read_frame(&mut stream), (0x81, b"first".to_vec()));
    assert_eq!(read_frame(&mut stream), (0x8A, b"hi".to_vec()));
    assert_eq!(read_frame(&mut stream), (0x82, vec![9; 300]));
    assert_eq!(read_frame(&mut stream), (0x88, vec![0x03, 0xE8]));
    assert_stream_ends(&mut stream);
}

#[test]
fn the_connect_floor_closes_when_the_client_ends_its_stream() {
    let floor = start();
    let mut stream = upgrade(&floor);
    stream.write_all(&masked(0x2, b"last words")).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_frame(&mut stream), (0x82, b"last words".to_vec()));
    assert_stream_ends(&mut stream);
    // a client that just drops the connection leaves the server serving
    drop(stream);
    let mut again = upgrade(&floor);
    again.write_all(&masked(0x2, b"still here")).unwrap();
    assert_eq!(read_frame(&mut again), (0x82, b"still here".to_vec()));
}
