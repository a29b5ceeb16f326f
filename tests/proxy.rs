//! `edgews proxy`, one upstream at a time: the opening handshake passed on
//! (the forwarded request, the upstream's answer relayed, or the status a
//! proxy owes when the upstream refuses, breaks, is not there or is
//! silent), frames relayed byte for byte both ways, and every way a
//! relayed connection ends (either side's close, the upstream vanishing
//! or breaking the protocol, the client breaking it or sending too much).
//!
//! The upstream is the real `edgews echo` where its behaviour is all that
//! matters, and a raw upstream written here (tests/support/proxy.rs)
//! where the test must see the exact bytes the proxy sent it, or make the
//! upstream misbehave. Everything is on loopback; each wait has a deadline
//! of a few seconds, and no test asserts a duration.
//! Balancing, health, shutdown, memory, TLS and the edge checks are in
//! tests/proxy_more.rs.

mod support;

use edgews::protocol::frame::OpCode;
use std::io::Read;
use std::time::Duration;
use support::measure::wait_until;
use support::process::{http_exchange, start};
use support::proxy::{
    answered_with, close_payload, header_of, open_through, proxy, refusing_addr, relayed_pair,
    server_frame, status_of, upgrade_with, upstream_metric, upstream_metric_becomes, RawUpstream,
    SOON,
};
use support::{client_frame, upgrade_request, RawClient};

// ------------------------------------------------------------ relaying

#[test]
fn text_binary_fragmented_and_ping_messages_come_back_through_the_proxy() {
    let echo = start("echo", &[]);
    let proxy = proxy(&[echo.addr], &[]);
    let mut client = RawClient::open(proxy.addr, "/");

    client.send(&client_frame(true, OpCode::Text, "héllo".as_bytes()));
    let reply = client.read_frame().expect("the text back");
    assert_eq!(
        (reply.opcode, reply.payload),
        (OpCode::Text, "héllo".into())
    );

    let binary: Vec<u8> = (0..=255).collect();
    client.send(&client_frame(true, OpCode::Binary, &binary));
    let reply = client.read_frame().expect("the binary back");
    assert_eq!((reply.opcode, reply.payload), (OpCode::Binary, binary));

    // one message in three fragments, a ping between them
    let mut fragments = client_frame(false, OpCode::Text, b"frag");
    fragments.extend(client_frame(true, OpCode::Ping, b"are you there"));
    fragments.extend(client_frame(false, OpCode::Continuation, b"men"));
    fragments.extend(client_frame(true, OpCode::Continuation, b"ted"));
    client.send(&fragments);
    let pong = client.read_frame().expect("the pong");
    assert_eq!(
        (pong.opcode, pong.payload),
        (OpCode::Pong, b"are you there".to_vec())
    );
    let mut message = Vec::new();
    loop {
        let frame = client.read_frame().expect("the message back");
        message.extend(frame.payload);
        if frame.fin {
            break;
        }
    }
    assert_eq!(message, b"fragmented");
}

#[test]
fn a_one_mib_message_round_trips_through_the_proxy() {
    let echo = start("echo", &[]);
    let proxy = proxy(&[echo.addr], &[]);
    let mut client = RawClient::open(proxy.addr, "/");
    let payload: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 + i / 251) as u8).collect();
    client.send(&client_frame(true, OpCode::Binary, &payload));
    let mut back = Vec::new();
    while back.len() < payload.len() {
        let frame = client.read_frame().expect("the message back");
        assert_ne!(frame.opcode, OpCode::Close, "{:?}", frame.close_code());
        back.extend(frame.payload);
    }
    assert!(back == payload, "the 1 MiB came back different");
}

#[test]
fn frames_are_relayed_byte_for_byte_both_ways_with_masks_untouched() {
    let upstream = RawUpstream::start();
    let proxy = proxy(&[upstream.addr], &[]);
    let (mut client, mut peer) = relayed_pair(proxy.addr, &upstream);

    // client to upstream: masked as the client masked them
    let mut sent = client_frame(true, OpCode::Text, b"hello upstream");
    sent.extend(client_frame(false, OpCode::Binary, &[0u8, 1, 2, 255]));
    sent.extend(client_frame(true, OpCode::Ping, b"ping from the client"));
    sent.extend(client_frame(true, OpCode::Continuation, &vec![7u8; 70_000]));
    sent.extend(client_frame(true, OpCode::Pong, b"unsolicited"));
    client.send(&sent);
    assert!(
        peer.read_exact_bytes(sent.len()) == sent,
        "changed on the way up"
    );

    // upstream to client: a ping in the middle of a fragmented message
    let mut back = server_frame(false, OpCode::Text, b"hello ");
    back.extend(server_frame(true, OpCode::Ping, b"ping from the upstream"));
    back.extend(server_frame(true, OpCode::Continuation, b"client"));
    back.extend(server_frame(true, OpCode::Binary, &vec![9u8; 200_000]));
    peer.send(&back);
    let mut got = vec![0u8; back.len()];
    client
        .stream
        .read_exact(&mut got)
        .expect("the upstream's bytes");
    assert!(got == back, "changed on the way down");

    // neither end answered the other's ping: the proxy answers none itself
    let pong = client_frame(true, OpCode::Pong, b"ping from the upstream");
    client.send(&pong);
    assert_eq!(peer.read_exact_bytes(pong.len()), pong);

    // and the proxy counted exactly those bytes for this upstream
    let metric = |name| upstream_metric(&proxy, name, upstream.addr);
    let to_upstream = Some((sent.len() + pong.len()) as f64);
    assert!(wait_until(SOON, || metric("to_upstream_bytes_total") == to_upstream));
    let from_upstream = Some(back.len() as f64);
    assert!(wait_until(SOON, || metric("from_upstream_bytes_total")
        == from_upstream));
    assert_eq!(metric("connections"), Some(1.0));
    assert_eq!(metric("connections_total"), Some(1.0));
    assert_eq!(metric("up"), Some(1.0));
}

// ------------------------------------------------------- the handshake

#[test]
fn the_forwarded_request_keeps_path_key_and_offers_and_adds_the_forwarding_headers() {
    let upstream = RawUpstream::start();
    let proxy = proxy(&[upstream.addr], &[]);
    let request = upgrade_with(
        proxy.addr,
        "/rooms/42?user=ann&x=%20y",
        &[
            "Sec-WebSocket-Protocol: superchat, chat",
            "Sec-WebSocket-Extensions: x-made-up; p=1",
            "X-Forwarded-For: 198.51.100.7",
            "X-Custom: kept as it is",
            "Proxy-Authorization: Basic cHJveHk6c2VjcmV0",
        ],
    );
    let answer = [
        "Sec-WebSocket-Protocol: chat",
        "Sec-WebSocket-Extensions: x-made-up; p=1",
    ];
    let (client, peer, head) = open_through(proxy.addr, &upstream, &request, &answer);
    let client_port = client.stream.local_addr().unwrap().port();

    assert_eq!(
        peer.request_line(),
        "GET /rooms/42?user=ann&x=%20y HTTP/1.1"
    );
    let header = |name| {
        peer.header(name)
            .unwrap_or_else(|| panic!("{name} in\n{}", peer.head))
    };
    assert_eq!(header("Host"), proxy.addr.to_string());
    assert_eq!(header("Sec-WebSocket-Key"), "dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(header("Sec-WebSocket-Version"), "13");
    assert_eq!(header("Sec-WebSocket-Protocol"), "superchat, chat");
    assert_eq!(header("Sec-WebSocket-Extensions"), "x-made-up; p=1");
    assert_eq!(header("X-Custom"), "kept as it is");
    assert_eq!(
        peer.header("Proxy-Authorization"),
        None,
        "the proxy's, not passed on"
    );
    assert_eq!(header("X-Forwarded-For"), "198.51.100.7, 127.0.0.1");
    assert_eq!(header("X-Forwarded-Proto"), "http");
    assert_eq!(
        header("Forwarded"),
        format!(
            "for=\"127.0.0.1:{client_port}\";proto=http;host=\"{}\"",
            proxy.addr
        )
    );
    assert_eq!(
        peer.head.matches("X-Forwarded-For").count(),
        1,
        "the client's line is replaced, not kept beside ours:\n{}",
        peer.head
    );

    // the client's 101 carries the upstream's choices and its key's accept
    assert_eq!(status_of(&head), 101, "{head}");
    assert_eq!(
        header_of(&head, "Sec-WebSocket-Protocol").as_deref(),
        Some("chat")
    );
    assert_eq!(
        header_of(&head, "Sec-WebSocket-Extensions").as_deref(),
        Some("x-made-up; p=1")
    );
    assert_eq!(
        header_of(&head, "Sec-WebSocket-Accept").as_deref(),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "RFC 6455 §1.3's key and accept"
    );
}

#[test]
fn the_subprotocol_the_upstream_chose_reaches_the_client() {
    let echo = start("echo", &["--subprotocol", "chat"]);
    let proxy = proxy(&[echo.addr], &[]);
    let mut client = RawClient::connect(proxy.addr);
    let offer = "Sec-WebSocket-Protocol: superchat, chat";
    client.send(&upgrade_with(proxy.addr, "/", &[offer]));
    let head = client.read_http_head().expect("an answer");
    assert_eq!(status_of(&head), 101, "{head}");
    assert_eq!(
        header_of(&head, "Sec-WebSocket-Protocol").as_deref(),
        Some("chat")
    );
    client.send(&client_frame(true, OpCode::Text, b"in chat"));
    assert_eq!(client.read_frame().expect("the echo").payload, b"in chat");
}

#[test]
fn the_upstreams_refusal_reaches_the_client_with_its_status_and_keeps_it_in_rotation() {
    let answer = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope";
    let (status, body, upstream, proxy) = answered_with(answer);
    assert_eq!(status, 403);
    assert!(body.contains("the upstream answered 403"), "{body:?}");
    // a refusal is the upstream's decision, not its failure
    assert_eq!(upstream_metric(&proxy, "up", upstream.addr), Some(1.0));
    let failures = upstream_metric(&proxy, "failures_total", upstream.addr);
    assert_eq!(failures, Some(0.0));
}

#[test]
fn an_upstream_answering_503_passes_it_on_and_leaves_the_rotation() {
    let answer = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
    let (status, body, upstream, proxy) = answered_with(answer);
    assert_eq!(status, 503);
    assert!(body.contains("the upstream answered 503"), "{body:?}");
    assert!(upstream_metric_becomes(&proxy, "up", upstream.addr, 0.0));
    let failures = upstream_metric(&proxy, "failures_total", upstream.addr);
    assert_eq!(failures, Some(1.0));
}

#[test]
fn an_answer_that_is_not_http_or_has_the_wrong_accept_key_gets_502() {
    let wrong_accept = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                        Connection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n";
    for answer in ["SSH-2.0-OpenSSH_9.6\r\n\r\n", wrong_accept] {
        let (status, _, upstream, proxy) = answered_with(answer.as_bytes());
        assert_eq!(status, 502, "{answer:?}");
        assert!(upstream_metric_becomes(&proxy, "up", upstream.addr, 0.0));
    }
}

#[test]
fn a_101_with_a_subprotocol_the_client_did_not_offer_gets_502() {
    let upstream = RawUpstream::start();
    let proxy = proxy(&[upstream.addr], &[]);
    let request = upgrade_with(proxy.addr, "/", &["Sec-WebSocket-Protocol: chat"]);
    let answer = ["Sec-WebSocket-Protocol: superchat"];
    let (_client, _peer, head) = open_through(proxy.addr, &upstream, &request, &answer);
    assert_eq!(status_of(&head), 502, "{head}");
}

#[test]
fn an_unreachable_upstream_gets_502_then_leaves_the_rotation_and_503_follows() {
    let dead = refusing_addr();
    let proxy = proxy(&[dead], &[]);
    let (head, body) = http_exchange(proxy.addr, &upgrade_request(proxy.addr, "/"));
    assert_eq!(status_of(&head), 502, "{head}");
    assert!(
        String::from_utf8_lossy(&body).contains("upstream unreachable"),
        "{body:?}"
    );
    assert!(upstream_metric_becomes(&proxy, "up", dead, 0.0));
    assert_eq!(upstream_metric(&proxy, "failures_total", dead), Some(1.0));
    let line = format!("upstream ws://{dead} out of rotation");
    assert!(
        wait_until(SOON, || proxy.stderr_text().contains(&line)),
        "no {line:?} in:\n{}",
        proxy.stderr_text()
    );
    // out of rotation, and its retry waits a back-off: within a few
    // attempts, one is answered 503 without a dial
    let statuses: Vec<u16> = (0..10)
        .map(|_| {
            let request = upgrade_request(proxy.addr, "/");
            status_of(&http_exchange(proxy.addr, &request).0)
        })
        .collect();
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [502, 503].contains(s)),
        "{statuses:?}"
    );
}

#[test]
fn a_silent_upstream_gets_504_after_the_handshake_timeout() {
    let upstream = RawUpstream::start();
    let proxy = proxy(&[upstream.addr], &["--handshake-timeout", "1s"]);
    let mut client = RawClient::connect(proxy.addr);
    client.send(&upgrade_request(proxy.addr, "/"));
    let mut peer = upstream.next(); // and never answer
    let (head, _) = client.read_http_response().expect("an answer");
    assert_eq!(status_of(&head), 504, "{head}");
    assert!(
        peer.sees_eof_within(SOON),
        "the silent upstream is hung up on"
    );
    assert!(upstream_metric_becomes(&proxy, "up", upstream.addr, 0.0));
}

// ------------------------------------------------------------- endings

#[test]
fn a_close_started_by_the_client_completes_end_to_end() {
    let upstream = RawUpstream::start();
    let proxy = proxy(&[upstream.addr], &[]);
    let (mut client, mut peer) = relayed_pair(proxy.addr, &upstream);
    let close = client_frame(true, OpCode::Close, &close_payload(1000, "bye"));
    client.send(&close);
    assert_eq!(
        peer.read_exact_bytes(close.len()),
        close,
        "the close, as sent"
    );
    peer.send(&server_frame(
        true,
        OpCode::Close,
        &close_payload(1000, "bye too"),
    ));
    let reply = client.read_frame().expect("the upstream's close");
    assert_eq!(reply.payload, close_payload(1000, "bye too"));
    assert!(
        client.sees_eof_within(SOON),
        "the proxy closes the client's TCP"
    );
    assert!(peer.sees_eof_within(SOON), "and the upstream's");
    assert!(upstream_metric_becomes(
        &proxy,
        "connections",
        upstream.addr,
        0.0
    ));
    assert_eq!(upstream_metric(&proxy, "up", upstream.addr), Some(1.0));
}

#[test]
fn a_close_started_by_the_upstream_completes_end_to_end() {
    let upstream = RawUpstream::start();
    let proxy = proxy(&[upstream.addr], &[]);
    let (mut client, mut peer) = relayed_pair(proxy.addr, &upstream);
    peer.send(&server_frame(
        true,
        OpCode::Close,
        &close_payload(1001, "restart"),
    ));
    let close = client.read_frame().expect("the upstream's close");
    assert_eq!(close.payload, close_payload(1001, "restart"));
    client.send(&client_frame(true, OpCode::Close, &close_payload(1001, "")));
    assert_eq!(peer.read_close_code(), Some(1001), "the client's answer");
    assert!(
        client.sees_eof_within(SOON),
        "the proxy closes the client's TCP"
    );
    assert!(peer.sees_eof_within(SOON), "and the upstream's");
    assert_eq!(upstream_metric(&proxy, "up", upstream.addr), Some(1.0));
}

#[test]
fn a_client_that_vanishes_while_relayed_gets_its_upstream_a_1001() {
    let upstream = RawUpstream::start();
    let proxy = proxy(&[upstream.addr], &[]);
    let (client, mut peer) = relayed_pair(proxy.addr, &upstream);
    drop(client); // TCP closed, no close frame
    assert_eq!(peer.read_close_code(), Some(1001));
    peer.send(&server_frame(true, OpCode::Close, &close_payload(1001, "")));
    assert!(peer.sees_eof_within(SOON));
    assert!(upstream_metric_becomes(
        &proxy,
        "connections",
        upstream.addr,
        0.0
    ));
    assert_eq!(
        upstream_metric(&proxy, "up", upstream.addr),
        Some(1.0),
        "not its fault"
    );
}

#[test]
fn a_client_that_leaves_before_the_upstream_answers_gets_the_dial_dropped() {
    let upstream = RawUpstream::start();
    // a slow upstream may take its time; a client that left is not waited for
    let proxy = proxy(&[upstream.addr], &["--handshake-timeout", "60s"]);
    let mut client = RawClient::connect(proxy.addr);
    client.send(&upgrade_request(proxy.addr, "/"));
    let mut peer = upstream.next();
    drop(client);
    assert!(
        peer.sees_eof_within(SOON),
        "the dial is kept for a client that left"
    );
    assert!(upstream_metric_becomes(
        &proxy,
        "connections",
        upstream.addr,
        0.0
    ));
    assert_eq!(
        upstream_metric(&proxy, "failures_total", upstream.addr),
        Some(0.0),
        "a client leaving is no failure of the upstream's:\n{}",
        proxy.stderr_text()
    );
    assert_eq!(upstream_metric(&proxy, "up", upstream.addr), Some(1.0));
}

#[test]
fn a_killed_upstream_closes_the_client_with_1012() {
    let echo = start("echo", &[]);
    let proxy = proxy(&[echo.addr], &[]);
    let mut client = RawClient::open(proxy.addr, "/");
    client.send(&client_frame(true, OpCode::Text, b"still there?"));
    assert_eq!(
        client.read_frame().expect("the echo").payload,
        b"still there?"
    );
    let upstream = echo.addr;
    drop(echo); // SIGKILL: no close frame
    assert_eq!(client.read_close_code(), Some(1012));
    client.send(&client_frame(true, OpCode::Close, &close_payload(1012, "")));
    assert!(client.sees_eof_within(SOON));
    assert!(upstream_metric_becomes(&proxy, "up", upstream, 0.0));
}

#[test]
fn an_upstream_that_drops_its_tcp_between_frames_closes_the_client_with_1012() {
    let upstream = RawUpstream::start();
    let proxy = proxy(&[upstream.addr], &[]);
    let (mut client, mut peer) = relayed_pair(proxy.addr, &upstream);
    peer.send(&server_frame(true, OpCode::Text, b"last words"));
    drop(peer);
    assert_eq!(
        client.read_frame().expect("the last frame").payload,
        b"last words"
    );
    assert_eq!(client.read_close_code(), Some(1012));
    assert!(client.sees_eof_within(SOON));
}

#[test]
fn an_upstream_sending_a_masked_frame_gets_1002_and_the_client_1011() {
    let upstream = RawUpstream::start();
    let proxy = proxy(&[upstream.addr], &[]);
    let (mut client, mut peer) = relayed_pair(proxy.addr, &upstream);
    peer.send(&server_frame(true, OpCode::Text, b"fine"));
    peer.send(&client_frame(true, OpCode::Text, b"masked, from a server"));
    let first = client.read_frame().expect("the good frame");
    assert_eq!(first.payload, b"fine");
    let next = client.read_frame().expect("a close");
    assert_eq!(
        next.close_code(),
        Some(1011),
        "{next:?}: the masked frame is not relayed"
    );
    assert_eq!(peer.read_close_code(), Some(1002));
    assert!(upstream_metric_becomes(&proxy, "up", upstream.addr, 0.0));
}

#[test]
fn an_upstream_sending_a_reserved_opcode_gets_1002_and_the_client_1011() {
    let upstream = RawUpstream::start();
    let proxy = proxy(&[upstream.addr], &[]);
    let (mut client, mut peer) = relayed_pair(proxy.addr, &upstream);
    peer.send(&[0x83, 0x02, b'h', b'i']); // FIN, opcode 3
    assert_eq!(client.read_close_code(), Some(1011));
    assert_eq!(peer.read_close_code(), Some(1002));
}

#[test]
fn a_client_sending_an_unmasked_frame_gets_1002_after_the_upstream_heard_of_it() {
    let upstream = RawUpstream::start();
    let proxy = proxy(&[upstream.addr], &[]);
    let (mut client, mut peer) = relayed_pair(proxy.addr, &upstream);
    client.send(&server_frame(
        true,
        OpCode::Text,
        b"unmasked, from a client",
    ));
    peer.hears_the_clients_fault(1002);
    assert_eq!(client.read_close_code(), Some(1002));
    assert!(client.sees_eof_within(SOON));
    assert!(peer.sees_eof_within(SOON));
    assert_eq!(upstream_metric(&proxy, "up", upstream.addr), Some(1.0));
}

#[test]
fn a_message_over_the_limit_across_fragments_gets_1009_after_the_upstreams_last_words() {
    let upstream = RawUpstream::start();
    let limits = ["--max-message-size", "1KiB", "--max-frame-size", "1KiB"];
    let proxy = proxy(&[upstream.addr], &limits);
    let (mut client, mut peer) = relayed_pair(proxy.addr, &upstream);
    let first = client_frame(false, OpCode::Binary, &[1u8; 600]);
    client.send(&first);
    assert_eq!(
        peer.read_exact_bytes(first.len()),
        first,
        "600 bytes are within 1 KiB"
    );
    client.send(&client_frame(true, OpCode::Continuation, &[2u8; 600]));
    // what the upstream says before its close reply still reaches the client
    peer.send(&server_frame(true, OpCode::Text, b"got 600 bytes"));
    peer.hears_the_clients_fault(1009);
    let said = client.read_frame().expect("the upstream's last words");
    assert_eq!(said.payload, b"got 600 bytes");
    assert_eq!(client.read_close_code(), Some(1009));
    assert!(client.sees_eof_within(SOON));
}

#[test]
fn a_client_that_broke_the_protocol_gets_its_close_even_when_the_upstream_never_answers() {
    let upstream = RawUpstream::start();
    let proxy = proxy(&[upstream.addr], &[]);
    let (mut client, mut peer) = relayed_pair(proxy.addr, &upstream);
    client.send(&server_frame(true, OpCode::Binary, b"unmasked"));
    assert_eq!(peer.read_close_code(), Some(1002)); // and no answer
    assert_eq!(client.read_close_code(), Some(1002));
    assert!(client.sees_eof_within(SOON));
}

#[test]
fn an_upstream_that_dies_in_the_middle_of_a_frame_leaves_the_client_no_broken_frame() {
    let upstream = RawUpstream::start();
    let proxy = proxy(&[upstream.addr], &[]);
    let (mut client, mut peer) = relayed_pair(proxy.addr, &upstream);
    let whole = server_frame(true, OpCode::Binary, &[5u8; 100]);
    peer.send(&whole[..40]); // the header and 38 of 100 bytes
    drop(peer);
    // no close frame can follow a frame cut short (docs/usage.md): the
    // client gets what came, then the end of the connection
    let mut got = vec![0u8; 40];
    client
        .stream
        .read_exact(&mut got)
        .expect("the bytes that came");
    assert_eq!(got, whole[..40]);
    assert!(client.sees_eof_within(SOON));
}

// ------------------------------------------------- early bytes, and TLS

#[test]
fn frames_the_upstream_sends_with_its_101_reach_the_client() {
    let upstream = RawUpstream::start();
    let proxy = proxy(&[upstream.addr], &[]);
    let mut client = RawClient::connect(proxy.addr);
    client.send(&upgrade_request(proxy.addr, "/"));
    let mut peer = upstream.next();
    peer.accept_with(&[], &server_frame(true, OpCode::Text, b"sent with the 101"));
    assert_eq!(status_of(&client.read_http_head().unwrap()), 101);
    assert_eq!(
        client.read_frame().expect("the upstream's").payload,
        b"sent with the 101"
    );
}

#[test]
fn a_frame_the_client_sends_in_the_same_segment_as_its_request_is_relayed() {
    let upstream = RawUpstream::start();
    let proxy = proxy(&[upstream.addr], &[]);
    let early = client_frame(true, OpCode::Text, b"sent with the request");
    let mut request = upgrade_request(proxy.addr, "/");
    request.extend_from_slice(&early);
    let mut client = RawClient::connect(proxy.addr);
    client.send(&request); // one write: one segment on loopback
    let mut peer = upstream.next_accepted(&[]);
    assert_eq!(status_of(&client.read_http_head().unwrap()), 101);
    peer.stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let frame = peer.read_frame();
    assert_eq!(
        frame.map(|f| f.payload),
        Some(b"sent with the request".to_vec()),
        "the bytes behind the client's request never reached the upstream"
    );
}
