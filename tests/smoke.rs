//! A first end-to-end check: the echo server over real loopback TCP.

mod support;

use edgews::client::Client;
use edgews::protocol::frame::OpCode;
use edgews::server::Echo;
use edgews::ServerConfig;
use support::{client_frame, RawClient, TestServer};

#[test]
fn echo_server_echoes_text_and_binary_through_the_client() {
    let server = TestServer::start(ServerConfig::default(), || Echo);
    let mut client = Client::connect(&server.url("/")).unwrap();
    client.send_text("hello").unwrap();
    assert_eq!(client.recv_message().unwrap().as_text(), Some("hello"));
    client.send_binary(&[1, 2, 3]).unwrap();
    assert_eq!(client.recv_message().unwrap().as_bytes(), [1, 2, 3]);
    let closed = client
        .close(edgews::protocol::CloseCode::NORMAL, "bye")
        .unwrap();
    assert_eq!(closed.code.0, 1000);
    let stats = server.stop();
    assert_eq!((stats.opened, stats.closed), (1, 1));
}

#[test]
fn frame_sent_with_the_handshake_is_echoed() {
    let server = TestServer::start(ServerConfig::default(), || Echo);
    let mut raw = RawClient::connect(server.addr);
    let mut bytes = support::upgrade_request(server.addr, "/");
    bytes.extend(client_frame(true, OpCode::Text, b"early"));
    raw.send(&bytes);
    assert!(raw.read_http_head().unwrap().starts_with("HTTP/1.1 101"));
    let frame = raw.read_frame().unwrap();
    assert_eq!(
        (frame.opcode, frame.payload.as_slice()),
        (OpCode::Text, &b"early"[..])
    );
}
