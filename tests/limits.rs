//! Frame and message limits, and the closing handshake, over real loopback
//! TCP against the echo server: each violation is answered with the right
//! close code at once (not after a timeout, not after the payload), and the
//! server then closes the TCP connection.

mod support;

use edgews::protocol::frame::OpCode;
use edgews::server::Echo;
use edgews::ServerConfig;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::{client_frame, client_header, RawClient, TestServer};

/// How long any single read may block before the test fails instead of hanging.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// What "at once" means on a loaded 2-core machine running tests in parallel.
const PROMPTLY: Duration = Duration::from_millis(1500);
/// How long the server has to close TCP after its close frame.
const EOF_WITHIN: Duration = Duration::from_secs(2);

/// The default configuration, with a short shutdown so that a test that
/// ends with a connection open does not wait for its close reply.
fn config() -> ServerConfig {
    ServerConfig {
        shutdown_timeout: Duration::from_millis(200),
        ..ServerConfig::default()
    }
}

/// An open WebSocket connection whose reads give up after [`READ_TIMEOUT`].
fn open(addr: SocketAddr) -> RawClient {
    let client = RawClient::open(addr, "/");
    client.stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    client
}

/// Sends `bytes` on a fresh connection and expects, promptly, a close frame
/// with `code` as the first frame, then EOF. Returns the close reason.
fn expect_close_after(server: &TestServer, bytes: &[u8], code: u16) -> String {
    let mut client = open(server.addr);
    let start = Instant::now();
    client.send(bytes);
    expect_close(&mut client, start, code)
}

/// Reads the next frame: a close with `code`, within [`PROMPTLY`] of
/// `start`, then EOF. Returns the close reason.
fn expect_close(client: &mut RawClient, start: Instant, code: u16) -> String {
    let frame = client.read_frame().expect("a close frame");
    let elapsed = start.elapsed();
    assert_eq!(frame.close_code(), Some(code), "{frame:?}");
    assert!(elapsed < PROMPTLY, "close came after {elapsed:?}");
    assert!(
        client.sees_eof_within(EOF_WITHIN),
        "no EOF after the close frame"
    );
    String::from_utf8(frame.payload[2..].to_vec()).expect("UTF-8 reason")
}

fn masked_close(payload: &[u8]) -> Vec<u8> {
    client_frame(true, OpCode::Close, payload)
}

#[test]
fn a_frame_announcing_2_pow_40_bytes_is_closed_with_1009_before_any_payload() {
    let server = TestServer::start(config(), || Echo);
    // only the header: the server must not wait for the payload
    let reason = expect_close_after(&server, &client_header(true, OpCode::Binary, 1 << 40), 1009);
    assert!(reason.contains("1099511627776"), "{reason}");
}

#[test]
fn a_64_bit_length_with_its_top_bit_set_is_closed_with_1002() {
    let server = TestServer::start(config(), || Echo);
    let header = client_header(true, OpCode::Binary, (1 << 63) | 5);
    assert_eq!(header[1] & 0x7f, 127);
    expect_close_after(&server, &header, 1002);
}

#[test]
fn a_non_minimal_length_is_closed_with_1002() {
    let server = TestServer::start(config(), || Echo);
    // 126 (16-bit length follows) with the value 5: must have been a 7-bit length
    let mut frame = vec![0x82, 0x80 | 126, 0, 5, 1, 2, 3, 4];
    frame.extend_from_slice(b"hello");
    expect_close_after(&server, &frame, 1002);
    // 127 (64-bit length follows) with a value that fits in 16 bits
    let mut frame = vec![0x82, 0x80 | 127];
    frame.extend_from_slice(&300u64.to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    expect_close_after(&server, &frame, 1002);
}

#[test]
fn more_fragments_than_max_fragments_are_closed_with_1009() {
    let mut config = config();
    config.protocol.max_fragments = 16;
    let server = TestServer::start(config, || Echo);
    // 16 fragments are fine...
    let mut client = open(server.addr);
    let mut bytes = client_frame(false, OpCode::Text, b"");
    for _ in 0..14 {
        bytes.extend(client_frame(false, OpCode::Continuation, b""));
    }
    bytes.extend(client_frame(true, OpCode::Continuation, b"16"));
    client.send(&bytes);
    let echo = client.read_frame().unwrap();
    assert_eq!(
        (echo.opcode, echo.payload.as_slice()),
        (OpCode::Text, &b"16"[..])
    );
    // ...17 are not, even empty and before the message ends
    let mut bytes = client_frame(false, OpCode::Text, b"");
    for _ in 0..16 {
        bytes.extend(client_frame(false, OpCode::Continuation, b""));
    }
    let reason = expect_close_after(&server, &bytes, 1009);
    assert!(reason.contains("16 fragments"), "{reason}");
}

#[test]
fn a_message_over_max_message_size_across_fragments_is_closed_with_1009() {
    let mut config = config();
    config.protocol.max_frame_size = 1000;
    config.protocol.max_message_size = 2500;
    let server = TestServer::start(config, || Echo);
    // exactly at the limit: echoed
    let mut client = open(server.addr);
    let mut bytes = client_frame(false, OpCode::Binary, &[1; 1000]);
    bytes.extend(client_frame(false, OpCode::Continuation, &[2; 1000]));
    bytes.extend(client_frame(true, OpCode::Continuation, &[3; 500]));
    client.send(&bytes);
    assert_eq!(client.read_frame().unwrap().payload.len(), 2500);
    // one byte over, announced by the third header before its payload
    let mut bytes = client_frame(false, OpCode::Binary, &[1; 1000]);
    bytes.extend(client_frame(false, OpCode::Continuation, &[2; 1000]));
    bytes.extend(client_header(true, OpCode::Continuation, 501));
    let reason = expect_close_after(&server, &bytes, 1009);
    assert!(reason.contains("2501"), "{reason}");
}

#[test]
fn invalid_utf8_in_the_first_fragment_of_an_unfinished_message_fails_fast_with_1007() {
    let server = TestServer::start(config(), || Echo);
    // a complete first fragment, FIN clear, and the rest never sent
    let mut invalid = b"valid, then ".to_vec();
    invalid.extend_from_slice(&[0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce]);
    invalid.extend_from_slice(&[0xb5, 0xed, 0xa0, 0x80, b'x']); // a surrogate: never valid
    expect_close_after(&server, &client_frame(false, OpCode::Text, &invalid), 1007);
    // inside a frame whose payload has only partly arrived: 100 bytes
    // announced, 4 sent, the fourth (0xff) invalid in any position
    let mut frame = client_frame(true, OpCode::Text, &[b'a', b'b', b'c', 0xff]);
    frame[1] = 0x80 | 100;
    expect_close_after(&server, &frame, 1007);
}

#[test]
fn invalid_utf8_in_a_close_reason_is_closed_with_1007() {
    let server = TestServer::start(config(), || Echo);
    expect_close_after(
        &server,
        &masked_close(&[0x03, 0xe8, b'o', 0xff, 0xfe]),
        1007,
    );
}

#[test]
fn a_close_frame_with_one_byte_is_closed_with_1002() {
    let server = TestServer::start(config(), || Echo);
    expect_close_after(&server, &masked_close(&[0x03]), 1002);
}

#[test]
fn close_codes_that_must_never_be_sent_are_closed_with_1002() {
    let server = TestServer::start(config(), || Echo);
    for code in [1005u16, 1006, 1015, 999, 1004, 2999, 5000] {
        let frame = masked_close(&code.to_be_bytes());
        let mut client = open(server.addr);
        let start = Instant::now();
        client.send(&frame);
        let frame = client.read_frame().expect("a close frame");
        assert_eq!(frame.close_code(), Some(1002), "code {code}: {frame:?}");
        assert!(start.elapsed() < PROMPTLY, "code {code}");
        assert!(client.sees_eof_within(EOF_WITHIN), "code {code}");
    }
}

#[test]
fn the_server_closes_tcp_after_the_close_handshake() {
    let server = TestServer::start(config(), || Echo);
    let mut client = open(server.addr);
    let start = Instant::now();
    client.send(&masked_close(&[0x03, 0xe8, b'b', b'y', b'e']));
    let frame = client.read_frame().expect("the close echo");
    assert_eq!(frame.close_code(), Some(1000));
    assert_eq!(&frame.payload[2..], b"bye");
    assert!(client.sees_eof_within(EOF_WITHIN));
    println!("close handshake + EOF in {:?}", start.elapsed());
    // an empty close is answered with 1000 too
    let mut client = open(server.addr);
    client.send(&masked_close(&[]));
    assert_eq!(client.read_frame().unwrap().close_code(), Some(1000));
    assert!(client.sees_eof_within(EOF_WITHIN));
    let stats = server.stop();
    assert_eq!((stats.opened, stats.closed), (2, 2));
}

#[test]
fn data_after_the_peers_close_is_ignored() {
    let server = TestServer::start(config(), || Echo);
    let mut client = open(server.addr);
    let mut bytes = masked_close(&1000u16.to_be_bytes());
    bytes.extend(client_frame(true, OpCode::Text, b"too late"));
    bytes.extend(client_frame(true, OpCode::Ping, b"too late"));
    client.stream.write_all(&bytes).unwrap();
    let frame = client.read_frame().expect("the close echo");
    assert_eq!(frame.close_code(), Some(1000), "{frame:?}");
    // nothing else: no echo, no pong, just EOF (not a read timeout)
    client
        .stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let start = Instant::now();
    assert_eq!(client.read_frame(), None);
    assert!(start.elapsed() < Duration::from_secs(2), "no EOF");
    let stats = server.stop();
    assert_eq!(stats.messages_in, 0);
}

#[test]
fn a_frame_just_under_the_limits_is_still_echoed() {
    // the limits above are not off by one the other way
    let mut config = config();
    config.protocol.max_frame_size = 4096;
    config.protocol.max_message_size = 4096;
    let server = TestServer::start(config, || Echo);
    let mut client = open(server.addr);
    let payload: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
    client.send(&client_frame(true, OpCode::Binary, &payload));
    assert_eq!(client.read_frame().unwrap().payload, payload);
    client.send(&client_header(true, OpCode::Binary, 4097));
    let frame = client.read_frame().unwrap();
    assert_eq!(frame.close_code(), Some(1009));
}
