//! Rate limits over loopback TCP: a connection over its message rate is
//! closed (echo) or told and kept (pub/sub); one IP's connections and
//! upgrades past their limits get 429 with `Retry-After`; the default
//! limits nothing; `/metrics` counts what was refused.
//!
//! Rates and bursts are chosen so that no plausible slowness of the test
//! machine changes an outcome: a burst of 5 at 1 a second, then 20 messages
//! back to back in one write.

mod support;

use edgews::protocol::frame::OpCode;
use edgews::server::guard::{RATE_LIMIT_CLOSE_REASON, RATE_LIMIT_ERROR_REPLY};
use edgews::server::{Echo, GuardConfig, Guarded, OverRate, PubSub, RateLimit};
use edgews::ServerConfig;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use support::{client_frame, upgrade_request, RawClient, TestServer};

/// One message a second, five back to back.
const SLOW: RateLimit = RateLimit {
    per_second: 1,
    burst: 5,
};

fn echo_with(config: GuardConfig) -> TestServer {
    TestServer::start(ServerConfig::default(), move || Guarded::new(Echo, config))
}

/// `texts` as client text frames, in one write.
fn send_texts(client: &mut RawClient, texts: impl IntoIterator<Item = String>) {
    let bytes: Vec<u8> = texts
        .into_iter()
        .flat_map(|t| client_frame(true, OpCode::Text, t.as_bytes()))
        .collect();
    client.send(&bytes);
}

fn read_text(client: &mut RawClient) -> String {
    let frame = client.read_frame().expect("a frame");
    assert_eq!(frame.opcode, OpCode::Text, "{frame:?}");
    String::from_utf8(frame.payload).unwrap()
}

/// Sends an upgrade request from a new connection; returns the response
/// head and the connection (open when the head is a 101).
fn try_upgrade(addr: SocketAddr) -> (String, RawClient) {
    let mut client = RawClient::connect(addr);
    client.send(&upgrade_request(addr, "/"));
    let head = client.read_http_head().expect("a response head");
    (head, client)
}

fn retry_after(head: &str) -> Option<u32> {
    head.lines()
        .find_map(|l| l.strip_prefix("Retry-After: "))
        .map(|v| v.trim().parse().expect("Retry-After in seconds"))
}

fn metrics(addr: SocketAddr) -> String {
    let mut client = RawClient::connect(addr);
    client.send(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes());
    let (head, body) = client.read_http_response().expect("a response");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    String::from_utf8(body).unwrap()
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .unwrap()
}

#[test]
fn a_client_over_its_message_rate_is_closed_with_1008_after_its_earlier_messages_are_echoed() {
    let server = echo_with(GuardConfig {
        message_rate: Some(SLOW),
        ..GuardConfig::default()
    });
    let mut client = RawClient::open(server.addr, "/");
    send_texts(&mut client, (0..20).map(|i| format!("m{i}")));
    let mut echoed = Vec::new();
    let close = loop {
        let frame = client.read_frame().expect("a frame");
        if frame.opcode == OpCode::Close {
            break frame;
        }
        echoed.push(String::from_utf8(frame.payload).unwrap());
    };
    assert_eq!(close.close_code(), Some(1008));
    assert_eq!(&close.payload[2..], RATE_LIMIT_CLOSE_REASON.as_bytes());
    assert!(echoed.len() >= 5 && echoed.len() < 20, "{echoed:?}");
    let expected: Vec<String> = (0..echoed.len()).map(|i| format!("m{i}")).collect();
    assert_eq!(echoed, expected, "the earlier messages, in order");
}

#[test]
fn a_pubsub_client_over_its_rate_gets_an_error_reply_and_stays_open_until_its_bucket_refills() {
    let config = GuardConfig {
        message_rate: Some(RateLimit {
            per_second: 1,
            burst: 3,
        }),
        over_rate: OverRate::ErrorReply,
        ..GuardConfig::default()
    };
    let server = TestServer::start(ServerConfig::default(), move || {
        Guarded::new(PubSub::new(), config)
    });
    let mut client = RawClient::open(server.addr, "/topics/t");
    let publish = |i: u32| json!({"op": "publish", "topic": "t", "data": i, "echo": true});
    send_texts(&mut client, (0..10).map(|i| publish(i).to_string()));
    let replies: Vec<String> = (0..10).map(|_| read_text(&mut client)).collect();
    for (i, reply) in replies.iter().take(3).enumerate() {
        let value: Value = serde_json::from_str(reply).unwrap();
        assert_eq!(value, json!({"type": "message", "topic": "t", "data": i}));
    }
    let errors = replies.iter().filter(|r| *r == RATE_LIMIT_ERROR_REPLY);
    assert!(errors.count() >= 6, "{replies:?}");

    std::thread::sleep(Duration::from_millis(1500)); // at least one token
    send_texts(&mut client, [publish(100).to_string()]);
    let value: Value = serde_json::from_str(&read_text(&mut client)).unwrap();
    assert_eq!(value, json!({"type": "message", "topic": "t", "data": 100}));
}

#[test]
fn one_ip_past_its_open_connections_gets_429_until_one_of_them_closes() {
    let server = echo_with(GuardConfig {
        max_connections_per_ip: Some(3),
        ..GuardConfig::default()
    });
    let mut open: Vec<RawClient> = (0..3).map(|_| RawClient::open(server.addr, "/")).collect();
    let (head, _) = try_upgrade(server.addr);
    assert!(head.starts_with("HTTP/1.1 429 "), "{head}");
    assert_eq!(retry_after(&head), Some(1), "{head}");

    let mut leaving = open.pop().unwrap();
    leaving.send(&client_frame(true, OpCode::Close, &1000u16.to_be_bytes()));
    assert_eq!(leaving.read_close_code(), Some(1000));
    let accepted = (0..250).any(|_| {
        let (head, _) = try_upgrade(server.addr);
        let ok = head.starts_with("HTTP/1.1 101 ");
        if !ok {
            std::thread::sleep(Duration::from_millis(20));
        }
        ok
    });
    assert!(accepted, "a fourth connection once one of three closed");
}

#[test]
fn upgrades_past_one_ips_rate_get_429_with_retry_after() {
    let server = echo_with(GuardConfig {
        max_upgrades_per_ip: Some(5),
        ..GuardConfig::default()
    });
    let heads: Vec<String> = (0..20).map(|_| try_upgrade(server.addr).0).collect();
    assert!(
        heads[..5].iter().all(|h| h.starts_with("HTTP/1.1 101 ")),
        "{heads:?}"
    );
    let refused = heads.iter().find(|h| h.starts_with("HTTP/1.1 429 "));
    let refused = refused.unwrap_or_else(|| panic!("no 429 in {heads:?}"));
    assert!(retry_after(refused).is_some_and(|s| s >= 1), "{refused}");
}

#[test]
fn the_default_config_lets_200_connections_and_their_bursts_through_untouched() {
    let server = echo_with(GuardConfig::default());
    let mut clients: Vec<RawClient> = (0..200)
        .map(|_| RawClient::open(server.addr, "/"))
        .collect();
    for (c, client) in clients.iter_mut().enumerate() {
        send_texts(client, (0..50).map(|i| format!("{c}:{i}")));
    }
    for (c, client) in clients.iter_mut().enumerate() {
        for i in 0..50 {
            assert_eq!(read_text(client), format!("{c}:{i}"));
        }
    }
    let text = metrics(server.addr);
    assert_eq!(metric(&text, "edgews_rate_limited_messages_total"), 0);
    assert_eq!(metric(&text, "edgews_ip_connection_refusals_total"), 0);
    assert_eq!(metric(&text, "edgews_ip_upgrade_refusals_total"), 0);
    assert_eq!(metric(&text, "edgews_tracked_ips"), 0);
}

#[test]
fn metrics_count_dropped_messages_refused_upgrades_and_tracked_ips() {
    let server = echo_with(GuardConfig {
        message_rate: Some(SLOW),
        max_connections_per_ip: Some(2),
        max_upgrades_per_ip: Some(3),
        ..GuardConfig::default()
    });
    let mut first = RawClient::open(server.addr, "/");
    let _second = RawClient::open(server.addr, "/");
    // a token left for one of these (refused: two open), none for most
    let refused = (0..20)
        .map(|_| try_upgrade(server.addr).0)
        .filter(|h| h.starts_with("HTTP/1.1 429 "))
        .count();
    assert_eq!(refused, 20);
    send_texts(&mut first, (0..20).map(|i| format!("m{i}")));
    assert_eq!(first.read_close_code(), Some(1008));

    let text = metrics(server.addr);
    let by_connections = metric(&text, "edgews_ip_connection_refusals_total");
    let by_upgrades = metric(&text, "edgews_ip_upgrade_refusals_total");
    assert!(by_connections >= 1 && by_upgrades >= 1, "{text}");
    assert_eq!(by_connections + by_upgrades, 20, "{text}");
    assert!(metric(&text, "edgews_rate_limited_messages_total") >= 1);
    assert_eq!(metric(&text, "edgews_tracked_ips"), 1, "127.0.0.1");
    assert!(
        text.contains("edgews_open_connections "),
        "the inner metrics"
    );
    // every accepted connection here sent bytes: at least one readiness
    // event of its own, in at least one turn of the loop
    let accepted = metric(&text, "edgews_accepted_total");
    assert!(
        metric(&text, "edgews_loop_events_total") >= accepted,
        "{text}"
    );
    assert!(metric(&text, "edgews_loop_turns_total") >= 1, "{text}");
}
