//! Each fan-out peer relays as `edgews broadcast` does: a message from
//! one client reaches every other open connection, with its opcode, in
//! the order sent, and never comes back to its sender; a close is
//! answered with a close and then the end of the stream.

mod common;

use common::{masked, read_frame, Peer};
use std::io::Write;
use std::net::TcpStream;

/// Connects (without Nagle's delay) and upgrades.
fn connect(peer: &Peer) -> TcpStream {
    let mut stream = common::connect(&peer.addr);
    stream.set_nodelay(true).unwrap();
    let head = common::upgrade(&mut stream, common::KEY_HEADERS);
    assert!(head.contains(common::ACCEPT), "{head}");
    stream
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
    let peer = common::start(name);
    let (mut a, mut b, mut c) = (connect(&peer), connect(&peer), connect(&peer));
    // A's messages, some in one write, so several arrive in one read
    let mut batch = Vec::new();
    for i in 0..COUNT {
        let (opcode, payload) = message("a", i);
        batch.extend(masked(0x80 | opcode, &payload));
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
    b.write_all(&masked(0x82, b"from b")).unwrap();
    assert_eq!(read_frame(&mut a), (0x82, b"from b".to_vec()), "a");
    assert_eq!(read_frame(&mut c), (0x82, b"from b".to_vec()), "c");
    // nor after it, nor does B get its own: C's message is next for both
    c.write_all(&masked(0x81, b"from c")).unwrap();
    assert_eq!(read_frame(&mut a), (0x81, b"from c".to_vec()), "a");
    assert_eq!(read_frame(&mut b), (0x81, b"from c".to_vec()), "b");
    // A closes: answered, then the end of the stream; B and C stay
    a.write_all(&masked(0x88, &[0x03, 0xE8])).unwrap();
    assert_eq!(read_frame(&mut a), (0x88, vec![0x03, 0xE8]));
    common::assert_stream_ends(&mut a);
    b.write_all(&masked(0x82, b"a is gone")).unwrap();
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
