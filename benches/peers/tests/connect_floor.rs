//! The connect-floor yardstick answers a connection's whole life as
//! benchmarks of connection setup need it to: the upgrade with the right
//! accept key, frames echoed unmasked (whole, in pieces, several in one
//! read), a ping with its pong, a close with a close and then the end of
//! the stream; and a client's end of the stream with the server's.

mod common;

use common::{assert_stream_ends, masked, read_frame, Peer};
use edgews::protocol::accept::accept_key;
use std::io::Write;
use std::net::Shutdown;

/// Connects and upgrades, checking the 101 and its accept key; the key's
/// header in lower case, with spaces around the key.
fn upgrade(floor: &Peer) -> std::net::TcpStream {
    let mut stream = common::connect(&floor.addr);
    let key = common::KEY;
    let headers = format!("sec-websocket-key:  {key} \r\nSec-WebSocket-Version: 13\r\n");
    let head = common::upgrade(&mut stream, &headers);
    let accept = accept_key(key.as_bytes());
    let accept = std::str::from_utf8(&accept).unwrap();
    assert!(
        head.contains(&format!("Sec-WebSocket-Accept: {accept}\r\n")),
        "{head}"
    );
    stream
}

#[test]
fn the_connect_floor_upgrades_echoes_and_answers_a_close_then_ends_the_stream() {
    let floor = common::start("connect-floor");
    let mut stream = upgrade(&floor);
    stream.write_all(&masked(0x82, &[7; 20])).unwrap();
    assert_eq!(read_frame(&mut stream), (0x82, vec![7; 20]));
    stream.write_all(&masked(0x88, &[0x03, 0xE8])).unwrap();
    assert_eq!(read_frame(&mut stream), (0x88, vec![0x03, 0xE8]));
    assert_stream_ends(&mut stream);
}

#[test]
fn the_connect_floor_echoes_frames_in_pieces_and_several_in_one_read() {
    let floor = common::start("connect-floor");
    let mut stream = upgrade(&floor);
    for size in [0, 20, 125, 126, 65535, 65536, 200_000] {
        let payload: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        common::write_in_two(&mut stream, &masked(0x82, &payload));
        assert_eq!(read_frame(&mut stream), (0x82, payload), "size {size}");
    }
    // text, a pong (dropped), a ping, binary, then the close: one write
    let mut batch = masked(0x81, b"first");
    batch.extend(masked(0x8A, b"unsolicited"));
    batch.extend(masked(0x89, b"hi"));
    batch.extend(masked(0x82, &[9; 300]));
    batch.extend(masked(0x88, &[0x03, 0xE8]));
    stream.write_all(&batch).unwrap();
    assert_eq!(read_frame(&mut stream), (0x81, b"first".to_vec()));
    assert_eq!(read_frame(&mut stream), (0x8A, b"hi".to_vec()));
    assert_eq!(read_frame(&mut stream), (0x82, vec![9; 300]));
    assert_eq!(read_frame(&mut stream), (0x88, vec![0x03, 0xE8]));
    assert_stream_ends(&mut stream);
}

#[test]
fn the_connect_floor_closes_when_the_client_ends_its_stream() {
    let floor = common::start("connect-floor");
    let mut stream = upgrade(&floor);
    stream.write_all(&masked(0x82, b"last words")).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_frame(&mut stream), (0x82, b"last words".to_vec()));
    assert_stream_ends(&mut stream);
    // a client that just drops the connection leaves the server serving
    drop(stream);
    let mut again = upgrade(&floor);
    again.write_all(&masked(0x82, b"still here")).unwrap();
    assert_eq!(read_frame(&mut again), (0x82, b"still here".to_vec()));
}
