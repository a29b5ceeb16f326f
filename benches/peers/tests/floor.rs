//! The floor yardstick answers as compare.sh needs it to: the upgrade with
//! the right accept key, every size of frame echoed unmasked and byte for
//! byte (also when a frame arrives in pieces), a ping with its pong, and a
//! close with a close.

mod common;

use common::{masked, read_frame};
use edgews::protocol::accept::accept_key;
use std::io::Write;

#[test]
fn the_floor_upgrades_echoes_pongs_and_closes() {
    let floor = common::start("floor");
    let mut stream = common::connect(&floor.addr);
    let head = common::upgrade(&mut stream, common::KEY_HEADERS);
    let accept = accept_key(common::KEY.as_bytes());
    assert!(
        head.contains(std::str::from_utf8(&accept).unwrap()),
        "{head}"
    );

    for size in [0, 20, 125, 126, 1024, 65535, 65536, 200_000] {
        let payload: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        // in two pieces, so the second completes a frame begun by the first
        common::write_in_two(&mut stream, &masked(0x82, &payload));
        assert_eq!(read_frame(&mut stream), (0x82, payload), "size {size}");
    }
    stream.write_all(&masked(0x89, b"hi")).unwrap();
    assert_eq!(read_frame(&mut stream), (0x8A, b"hi".to_vec()));
    stream.write_all(&masked(0x88, &[0x03, 0xE8])).unwrap();
    assert_eq!(read_frame(&mut stream), (0x88, vec![0x03, 0xE8]));
    common::assert_stream_ends(&mut stream);
}
