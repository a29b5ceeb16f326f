//! The ratchet peer negotiates permessage-deflate as ratchet.rs says
//! (context takeover kept unless the client asks otherwise, the window
//! answered, a bad offer declined for the next), echoes compressed and
//! plain messages with their kind, answers a ping and a close, and
//! refuses text that is not UTF-8.

mod common;

use common::{masked, read_frame, Peer};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use std::io::Write;
use std::net::TcpStream;

const TAIL: [u8; 4] = [0, 0, 0xFF, 0xFF];

/// Connects, offering `extensions` (if any); returns the stream and the
/// Sec-WebSocket-Extensions answer (if any).
fn connect(peer: &Peer, extensions: Option<&str>) -> (TcpStream, Option<String>) {
    let mut stream = common::connect(&peer.addr);
    let offer = extensions
        .map(|e| format!("Sec-WebSocket-Extensions: {e}\r\n"))
        .unwrap_or_default();
    let head = common::upgrade(&mut stream, &format!("{}{offer}", common::KEY_HEADERS));
    assert!(head.contains(common::ACCEPT), "{head}");
    let answer = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("sec-websocket-extensions")
            .then(|| value.trim().to_string())
    });
    (stream, answer)
}

/// One message through `c`, as RFC 7692 7.2.1 has it (tail removed).
fn deflate(c: &mut Compress, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let start = c.total_in();
    while c.total_in() - start < message.len() as u64 || !out.ends_with(&TAIL) {
        out.reserve(4096);
        let at = (c.total_in() - start) as usize;
        c.compress_vec(&message[at..], &mut out, FlushCompress::Sync)
            .unwrap();
    }
    out.truncate(out.len() - TAIL.len());
    out
}

/// One message through `d`, the tail put back.
fn inflate(d: &mut Decompress, payload: &[u8]) -> Vec<u8> {
    let input = [payload, &TAIL].concat();
    let mut out = Vec::with_capacity(input.len() * 4);
    let start = d.total_in();
    while d.total_in() - start < input.len() as u64 {
        out.reserve(64 << 10);
        let at = (d.total_in() - start) as usize;
        d.decompress_vec(&input[at..], &mut out, FlushDecompress::Sync)
            .unwrap();
    }
    out
}

/// Some JSON-like text of about `n` bytes.
fn json(n: usize) -> Vec<u8> {
    let mut s = String::from("[");
    let mut i = 0;
    while s.len() < n {
        s.push_str(&format!(
            r#"{{"id":{i},"name":"user{i}","tags":["a","b"],"score":{}}},"#,
            i * 3 / 2
        ));
        i += 1;
    }
    s.truncate(n);
    s.into_bytes()
}

fn close(stream: &mut TcpStream) {
    stream.write_all(&masked(0x88, &[0x03, 0xE8])).unwrap();
    assert_eq!(read_frame(stream), (0x88, vec![0x03, 0xE8]));
    common::assert_stream_ends(stream);
}

#[test]
fn keeps_context_both_ways_by_default() {
    let peer = common::start("ratchet");
    let (mut stream, answer) = connect(&peer, Some("permessage-deflate; client_max_window_bits"));
    assert_eq!(answer.as_deref(), Some("permessage-deflate"));
    let mut c = Compress::new_with_window_bits(Compression::new(6), false, 15);
    let mut d = Decompress::new_with_window_bits(false, 15);
    let message = json(8 << 10);
    let mut sizes = Vec::new();
    for _ in 0..3 {
        // The client keeps its context too: the second message on refers
        // back into the first, which the peer must still have.
        stream
            .write_all(&masked(0xC1, &deflate(&mut c, &message)))
            .unwrap();
        let (first, payload) = read_frame(&mut stream);
        assert_eq!(first, 0xC1, "compressed text");
        assert_eq!(inflate(&mut d, &payload), message);
        sizes.push(payload.len());
    }
    assert!(
        sizes[1] * 4 < sizes[0],
        "the second echo refers back to the first: {sizes:?}"
    );

    // An uncompressed binary message, and a big one, echoed as binary.
    for size in [0, 300, 100 << 10, 3 << 20] {
        let binary: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        stream.write_all(&masked(0x82, &binary)).unwrap();
        let (first, payload) = read_frame(&mut stream);
        if size == 0 {
            assert_eq!((first & 0x8F, payload.len()), (0x82, 0));
        } else {
            assert_eq!(first, 0xC2, "compressed binary");
            assert_eq!(inflate(&mut d, &payload), binary, "size {size}");
        }
    }

    stream.write_all(&masked(0x89, b"hi")).unwrap();
    assert_eq!(read_frame(&mut stream), (0x8A, b"hi".to_vec()));
    close(&mut stream);
}

#[test]
fn no_context_takeover_and_windows_as_asked() {
    let peer = common::start("ratchet");
    let (mut stream, answer) = connect(
        &peer,
        Some(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=12",
        ),
    );
    let answer = answer.expect("compression agreed");
    for param in [
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits=10",
        "client_max_window_bits=12",
    ] {
        assert!(answer.contains(param), "{param} in {answer}");
    }
    let message = json(20 << 10);
    for _ in 0..2 {
        let mut c = Compress::new_with_window_bits(Compression::new(6), false, 12);
        stream
            .write_all(&masked(0xC1, &deflate(&mut c, &message)))
            .unwrap();
        let (first, payload) = read_frame(&mut stream);
        assert_eq!(first, 0xC1);
        // Each echo stands alone, within a 10-bit window.
        let mut d = Decompress::new_with_window_bits(false, 10);
        assert_eq!(inflate(&mut d, &payload), message);
    }
    close(&mut stream);
}

#[test]
fn a_bad_offer_is_declined_for_the_next() {
    let peer = common::start("ratchet");
    let (mut stream, answer) = connect(
        &peer,
        Some(
            "permessage-deflate; server_max_window_bits=8, permessage-deflate; x=1, \
             permessage-deflate; server_max_window_bits=11",
        ),
    );
    assert_eq!(
        answer.as_deref(),
        Some("permessage-deflate; server_max_window_bits=11")
    );
    close(&mut stream);

    // Nothing acceptable: no extension, plain frames.
    let (mut stream, answer) = connect(&peer, Some("permessage-deflate; x=1, x-webkit-deflate"));
    assert_eq!(answer, None);
    stream.write_all(&masked(0x81, b"plain")).unwrap();
    assert_eq!(read_frame(&mut stream), (0x81, b"plain".to_vec()));
    close(&mut stream);
}

#[test]
fn text_that_is_not_utf8_is_refused() {
    let peer = common::start("ratchet");
    let (mut stream, _) = connect(&peer, None);
    stream.write_all(&masked(0x81, &[0xC3, 0x28])).unwrap();
    let (first, payload) = read_frame(&mut stream);
    assert_eq!((first, &payload[..2]), (0x88, &[0x03, 0xEF][..]), "1007");
}
