use super::*;

/// RFC 6455 §1.3's key and its accept value.
const KEY: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn request<'a>(headers: Vec<(&'a str, &'a [u8])>) -> Request<'a> {
    Request {
        method: "GET",
        target: "/chat?room=a",
        headers: headers.into(),
        subprotocol: None,
    }
}

fn switching(extra: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {ACCEPT}\r\n{extra}\r\n"
    )
}

#[test]
fn the_request_goes_upstream_as_the_client_sent_it_with_the_forwarding_headers_replaced() {
    let request = request(vec![
        ("Host", b"example.com"),
        ("Upgrade", b"websocket"),
        ("X-Forwarded-For", b"6.6.6.6"),
        ("Sec-WebSocket-Key", KEY),
        ("Forwarded", b"for=6.6.6.6"),
        ("Sec-WebSocket-Extensions", b"permessage-deflate"),
        ("Proxy-Authorization", b"secret"),
    ]);
    let mut out = Vec::new();
    write_request(
        &mut out,
        &request,
        b"X-Forwarded-For: 6.6.6.6, 10.0.0.1\r\n",
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "GET /chat?room=a HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Extensions: permessage-deflate\r\n\
         X-Forwarded-For: 6.6.6.6, 10.0.0.1\r\n\r\n"
    );
}

#[test]
fn a_valid_101_switches_and_reports_the_agreed_subprotocol_and_extensions() {
    let head = switching(
        "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: permessage-deflate; \
         server_no_context_takeover\r\n",
    );
    let mut buf = head.clone().into_bytes();
    buf.extend_from_slice(&[0x81, 0x00]); // a frame right behind the head
    assert_eq!(
        read_answer(&buf, KEY, &["chat", "superchat"]),
        Answer::Switching {
            head_len: head.len(),
            subprotocol: Some("chat".into()),
            extensions: Some("permessage-deflate; server_no_context_takeover".into()),
        }
    );
}

#[test]
fn a_partial_head_waits_and_another_status_is_reported() {
    let head = switching("");
    assert_eq!(
        read_answer(&head.as_bytes()[..20], KEY, &[]),
        Answer::Partial
    );
    let refused = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(read_answer(refused, KEY, &[]), Answer::Status(403));
}

#[test]
fn an_answer_the_client_would_refuse_is_invalid() {
    let wrong_key = switching("").replace(ACCEPT, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    assert!(matches!(
        read_answer(wrong_key.as_bytes(), KEY, &[]),
        Answer::Invalid(_)
    ));
    let unoffered = switching("Sec-WebSocket-Protocol: mqtt\r\n");
    assert!(matches!(
        read_answer(unoffered.as_bytes(), KEY, &["chat"]),
        Answer::Invalid(_)
    ));
    let no_upgrade = switching("").replace("Upgrade: websocket\r\n", "");
    assert!(matches!(
        read_answer(no_upgrade.as_bytes(), KEY, &[]),
        Answer::Invalid(_)
    ));
    assert!(matches!(
        read_answer(b"garbage\r\n\r\n", KEY, &[]),
        Answer::Invalid(_)
    ));
}

#[test]
fn rsv_bits_follow_the_agreed_extensions() {
    assert_eq!(allowed_rsv(None), 0);
    assert_eq!(
        allowed_rsv(Some("permessage-deflate; client_max_window_bits=10")),
        0x4
    );
    assert_eq!(allowed_rsv(Some("x-unknown")), 0x7);
}
