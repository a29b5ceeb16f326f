//! `edgews proxy` over several upstreams and at its edges: round robin and
//! least connections, upstreams leaving the rotation and coming back
//! (health checks, and passive retries after the back-off), SIGTERM, a
//! reader that does not read (the proxy's memory stays bounded while the
//! other side floods, either way), the edge checks made before any
//! upstream is touched (Origin, JWT, per-IP limits), permessage-deflate
//! negotiated end to end, TLS on either side of the proxy, and
//! `--trusted-proxy` on the servers behind a proxy.
//!
//! Upstreams are real `edgews echo` processes, or raw ones scripted by the
//! test (tests/support/proxy.rs). Clients from other loopback addresses
//! (127.0.0.2, 127.0.0.3) stand for different client IPs. Everything is on
//! loopback; each wait has a deadline, and no test asserts a duration.
//! The handshake and relaying one connection are in tests/proxy.rs.

mod support;

use edgews::client::{Client, ClientConfig, Received};
use edgews::protocol::frame::OpCode;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;
use support::measure::wait_until;
use support::process::{http_exchange, start, Launch, ServerProcess};
use support::proxy::{
    close_cleanly, close_payload, connect_from, flood_is_held_back, gauges, logs, proxy,
    proxy_launch, refusing_addr, relayed_pair, server_frame, start_tls, status_of, token,
    upgrade_from, upgrade_status, upgrade_with, upstream_metric, upstream_metric_becomes, ws_url,
    FixedEcho, RawUpstream, SOON,
};
use support::tls::{read_http_response, tls_connect, TestPki};
use support::{client_frame, upgrade_request, RawClient};

// ----------------------------------------------------------- balancing

#[test]
fn round_robin_spreads_thirty_connections_ten_to_each_of_three_upstreams() {
    let echoes: Vec<ServerProcess> = (0..3).map(|_| start("echo", &[])).collect();
    let addrs: Vec<SocketAddr> = echoes.iter().map(|e| e.addr).collect();
    let proxy = proxy(&addrs, &["--balance", "round-robin"]);
    let clients: Vec<RawClient> = (0..30).map(|_| RawClient::open(proxy.addr, "/")).collect();
    for (echo, addr) in echoes.iter().zip(&addrs) {
        let opened = || echo.metric("edgews_opened_total") == Some(10.0);
        assert!(
            wait_until(SOON, opened),
            "{addr}: {:?}",
            echo.metric("edgews_opened_total")
        );
        let sent = upstream_metric(&proxy, "connections_total", *addr);
        assert_eq!(sent, Some(10.0));
    }
    assert_eq!(gauges(&proxy, &addrs), [10.0, 10.0, 10.0]);
    drop(clients);
    assert!(wait_until(SOON, || gauges(&proxy, &addrs) == [0.0, 0.0, 0.0]));
}

#[test]
fn least_connections_sends_new_connections_away_from_the_busiest_upstream() {
    let echoes: Vec<ServerProcess> = (0..3).map(|_| start("echo", &[])).collect();
    let addrs: Vec<SocketAddr> = echoes.iter().map(|e| e.addr).collect();
    let proxy = proxy(&addrs, &["--balance", "least-connections"]);
    // which upstream each client went to, read off the gauges
    let mut on: Vec<(usize, RawClient)> = Vec::new();
    let open_one = |on: &mut Vec<(usize, RawClient)>| {
        let before = gauges(&proxy, &addrs);
        let client = RawClient::open(proxy.addr, "/");
        let after = gauges(&proxy, &addrs);
        let went = (0..3)
            .find(|&i| after[i] == before[i] + 1.0)
            .expect("one gauge went up");
        on.push((went, client));
        went
    };
    for _ in 0..3 {
        open_one(&mut on);
    }
    assert_eq!(gauges(&proxy, &addrs), [1.0; 3], "one each, while they tie");
    let busy = open_one(&mut on); // a tie: any; it now holds two
    let (kept, others): (Vec<_>, Vec<_>) = on.into_iter().partition(|(i, _)| *i == busy);
    for (_, client) in others {
        close_cleanly(client);
    }
    let mut expected = [0.0; 3];
    expected[busy] = 2.0;
    assert!(wait_until(SOON, || gauges(&proxy, &addrs) == expected));

    let mut fresh = Vec::new();
    for _ in 0..4 {
        let went = open_one(&mut fresh);
        assert_ne!(went, busy, "a new connection went to the busiest upstream");
    }
    assert_eq!(gauges(&proxy, &addrs), [2.0, 2.0, 2.0]);
    drop(kept);
}

// ------------------------------------------------------------- health

#[test]
fn health_checks_take_a_dead_upstream_out_before_any_client_hits_it() {
    let echo = start("echo", &[]);
    let dead = refusing_addr();
    let proxy = proxy(&[dead, echo.addr], &["--health-interval", "200ms"]);
    assert!(upstream_metric_becomes(&proxy, "up", dead, 0.0));
    assert!(upstream_metric(&proxy, "failures_total", dead) >= Some(1.0));
    let line = format!("upstream ws://{dead} out of rotation");
    assert!(logs(&proxy, &line));
    let metric = |name, upstream| upstream_metric(&proxy, name, upstream);
    assert_eq!(metric("up", echo.addr), Some(1.0));
    let clients: Vec<RawClient> = (0..4).map(|_| RawClient::open(proxy.addr, "/")).collect();
    assert_eq!(metric("connections_total", dead), Some(0.0));
    assert_eq!(metric("connections_total", echo.addr), Some(4.0));
    drop(clients);
}

#[test]
fn health_checks_get_the_health_path_and_count_any_status_below_500_as_up() {
    let upstream = RawUpstream::start();
    let args = ["--health-path", "/custom/health", "--health-interval"];
    let proxy = proxy(&[upstream.addr], &[&args[..], &["200ms"]].concat());
    let mut check = upstream.next();
    assert_eq!(check.request_line(), "GET /custom/health HTTP/1.1");
    assert_eq!(check.header("Upgrade"), None, "a plain GET");
    check.send(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n");
    let mut check = upstream.next();
    let up = || upstream_metric(&proxy, "up", upstream.addr);
    assert_eq!(up(), Some(1.0), "426 is up");
    check.send(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n");
    assert!(wait_until(SOON, || up() == Some(0.0)), "500 is down");
    let mut check = upstream.next();
    check.send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    assert!(wait_until(SOON, || up() == Some(1.0)), "404 is up");
    let line = format!("upstream ws://{} back in rotation", upstream.addr);
    assert!(logs(&proxy, &line));
}

#[test]
fn an_upstream_that_was_killed_comes_back_into_rotation_after_its_restart() {
    let steady = start("echo", &[]);
    let addr = refusing_addr();
    let restarted = FixedEcho::start(addr);
    let proxy = proxy(&[steady.addr, addr], &["--health-interval", "200ms"]);
    drop(restarted);
    assert!(upstream_metric_becomes(&proxy, "up", addr, 0.0));
    assert!(logs(
        &proxy,
        &format!("upstream ws://{addr} out of rotation")
    ));
    let metric = |name| upstream_metric(&proxy, name, addr);
    let before = metric("connections_total");
    let clients: Vec<RawClient> = (0..4).map(|_| RawClient::open(proxy.addr, "/")).collect();
    assert_eq!(metric("connections_total"), before, "none sent to it");

    let _restarted = FixedEcho::start(addr);
    assert!(upstream_metric_becomes(&proxy, "up", addr, 1.0));
    assert!(logs(
        &proxy,
        &format!("upstream ws://{addr} back in rotation")
    ));
    let more: Vec<RawClient> = (0..4).map(|_| RawClient::open(proxy.addr, "/")).collect();
    assert_eq!(metric("connections"), Some(2.0), "round robin again");
    drop((clients, more));
}

#[test]
fn without_health_checks_an_upstream_out_of_rotation_is_retried_after_its_back_off() {
    let steady = start("echo", &[]);
    let addr = refusing_addr();
    let proxy = proxy(&[addr, steady.addr], &["--health-interval", "0"]);
    // the first connection goes to the dead one and fails
    let statuses: Vec<u16> = (0..2).map(|_| upgrade_status(proxy.addr)).collect();
    assert!(statuses.contains(&502), "{statuses:?}");
    assert!(upstream_metric_becomes(&proxy, "up", addr, 0.0));

    let _restarted = FixedEcho::start(addr);
    // the back-off is 1 s after one failure: within a few seconds of
    // steady traffic, one connection is its trial and brings it back
    let came_back = wait_until(Duration::from_secs(6), || {
        let client = RawClient::open(proxy.addr, "/");
        drop(client);
        upstream_metric(&proxy, "up", addr) == Some(1.0)
    });
    assert!(
        came_back,
        "never retried while another upstream was up: connections_total {:?}, log:\n{}",
        upstream_metric(&proxy, "connections_total", addr),
        proxy.stderr_text()
    );
}

// ----------------------------------------------------------- shutdown

#[test]
fn sigterm_closes_both_sides_with_1001_and_exits_0() {
    let upstream = RawUpstream::start();
    let proxy = proxy(&[upstream.addr], &["--shutdown-timeout", "5s"]);
    let mut client = RawClient::connect(proxy.addr);
    client.send(&upgrade_request(proxy.addr, "/"));
    let mut peer = upstream.next_accepted(&[]);
    assert_eq!(status_of(&client.read_http_head().unwrap()), 101);

    let stopping = thread::spawn(move || proxy.terminate(SOON));
    assert_eq!(client.read_close_code(), Some(1001));
    assert_eq!(peer.read_close_code(), Some(1001));
    client.send(&client_frame(true, OpCode::Close, &close_payload(1001, "")));
    peer.send(&server_frame(true, OpCode::Close, &close_payload(1001, "")));
    assert!(client.sees_eof_within(SOON));
    assert!(peer.sees_eof_within(SOON));
    let (status, log) = stopping.join().unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{log}");
}

#[test]
fn sigterm_exits_0_when_neither_side_answers_its_close() {
    let echo = start("echo", &[]);
    let proxy = proxy(&[echo.addr], &["--shutdown-timeout", "1s"]);
    let mut client = RawClient::open(proxy.addr, "/");
    let stopping = thread::spawn(move || proxy.terminate(SOON));
    assert_eq!(client.read_close_code(), Some(1001)); // and no answer
    let (status, log) = stopping.join().unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{log}");
}

#[test]
fn sigterm_answers_503_to_a_client_still_waiting_for_its_upstream() {
    let upstream = RawUpstream::start();
    let proxy = proxy(&[upstream.addr], &["--shutdown-timeout", "2s"]);
    let mut client = RawClient::connect(proxy.addr);
    client.send(&upgrade_request(proxy.addr, "/"));
    let mut peer = upstream.next(); // never answered
    let stopping = thread::spawn(move || proxy.terminate(SOON));
    let (head, _) = client.read_http_response().expect("an answer");
    assert_eq!(status_of(&head), 503, "{head}");
    assert!(
        peer.sees_eof_within(SOON),
        "the upstream's connection is dropped"
    );
    let (status, log) = stopping.join().unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{log}");
}

// ------------------------------------------------------- backpressure

#[test]
fn a_client_that_does_not_read_stops_the_proxy_reading_its_upstream() {
    let upstream = RawUpstream::start();
    let proxy = proxy(&[upstream.addr], &["--workers", "1"]);
    let (mut client, peer) = relayed_pair(proxy.addr, &upstream);
    let writer = peer.stream.try_clone().unwrap();
    flood_is_held_back(&proxy, writer, false, || client.read_frame());
}

#[test]
fn an_upstream_that_does_not_read_stops_the_proxy_reading_its_client() {
    let upstream = RawUpstream::start();
    let proxy = proxy(&[upstream.addr], &["--workers", "1"]);
    let (client, mut peer) = relayed_pair(proxy.addr, &upstream);
    let writer = client.stream.try_clone().unwrap();
    flood_is_held_back(&proxy, writer, true, || peer.read_frame());
}

// --------------------------------------------------------- edge checks

#[test]
fn a_foreign_origin_is_refused_with_403_before_the_upstream_is_touched() {
    let upstream = RawUpstream::start();
    let good_only = ["--allowed-origin", "https://good.example"];
    let proxy = proxy(&[upstream.addr], &good_only);
    let evil = upgrade_with(proxy.addr, "/", &["Origin: https://evil.example"]);
    assert_eq!(status_of(&http_exchange(proxy.addr, &evil).0), 403);

    // the upstream's first connection is the allowed client's
    let good = upgrade_with(proxy.addr, "/", &["Origin: https://good.example"]);
    let mut client = RawClient::connect(proxy.addr);
    client.send(&good);
    let peer = upstream.next_accepted(&[]);
    assert_eq!(peer.header("Origin").as_deref(), Some(good_only[1]));
    assert_eq!(status_of(&client.read_http_head().unwrap()), 101);
    assert_eq!(
        upstream.accepted(),
        1,
        "the refused client never reached it"
    );
}

const SECRET: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn a_missing_or_bad_token_is_refused_with_401_before_the_upstream_is_touched() {
    let upstream = RawUpstream::start();
    let proxy = proxy(&[upstream.addr], &["--jwt-secret", SECRET]);
    let none = upgrade_request(proxy.addr, "/");
    assert_eq!(status_of(&http_exchange(proxy.addr, &none).0), 401);
    let forged = upgrade_request(proxy.addr, "/?token=eyJhbGciOiJIUzI1NiJ9.e30.AAAA");
    assert_eq!(status_of(&http_exchange(proxy.addr, &forged).0), 401);

    let path = format!("/?token={}", token("ann", SECRET));
    let mut client = RawClient::connect(proxy.addr);
    client.send(&upgrade_request(proxy.addr, &path));
    let peer = upstream.next_accepted(&[]);
    assert_eq!(peer.request_line(), format!("GET {path} HTTP/1.1"));
    assert_eq!(status_of(&client.read_http_head().unwrap()), 101);
    assert_eq!(
        upstream.accepted(),
        1,
        "the refused clients never reached it"
    );
}

#[test]
fn the_proxys_per_ip_limit_counts_each_client_ip_and_spares_the_upstream() {
    let upstream = RawUpstream::start();
    let proxy = proxy(&[upstream.addr], &["--max-connections-per-ip", "1"]);
    let mut first = connect_from("127.0.0.2", proxy.addr);
    first.write_all(&upgrade_request(proxy.addr, "/")).unwrap();
    let _a = upstream.next_accepted(&[]);
    let mut other = connect_from("127.0.0.3", proxy.addr);
    other.write_all(&upgrade_request(proxy.addr, "/")).unwrap();
    let _b = upstream.next_accepted(&[]);
    let (again, _c) = upgrade_from("127.0.0.2", proxy.addr, &[]);
    assert_eq!(again, 429);
    assert_eq!(upstream.accepted(), 2);
    drop((first, other));
}

#[test]
fn the_proxys_per_ip_place_is_given_back_when_a_relayed_connection_ends() {
    let echo = start("echo", &[]);
    let proxy = proxy(&[echo.addr], &["--max-connections-per-ip", "1"]);
    // an upgrade from this host that gets its 101, kept open
    let reopen = || {
        let mut kept = None;
        wait_until(SOON, || {
            let mut client = RawClient::connect(proxy.addr);
            client.send(&upgrade_request(proxy.addr, "/"));
            let head = client.read_http_head().unwrap_or_default();
            kept = head.starts_with("HTTP/1.1 101 ").then_some(client);
            kept.is_some()
        });
        kept
    };
    close_cleanly(RawClient::open(proxy.addr, "/"));
    let _kept = reopen().expect("a place after a clean close");
    // the kept one still counts: a second is refused
    assert_eq!(upgrade_status(proxy.addr), 429);
}

// ---------------------------------------------------- deflate, end to end

#[test]
fn permessage_deflate_is_negotiated_end_to_end_and_crosses_the_proxy_compressed() {
    let echo = start("echo", &["--deflate", "dedicated"]);
    let proxy = proxy(&[echo.addr], &[]);
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits";
    let request = upgrade_with(proxy.addr, "/", &[offer]);
    let (head, _) = http_exchange(proxy.addr, &request);
    assert_eq!(status_of(&head), 101, "{head}");
    let ext = support::proxy::header_of(&head, "Sec-WebSocket-Extensions").expect("accepted");
    assert!(ext.starts_with("permessage-deflate"), "{ext}");

    let config = ClientConfig {
        read_timeout: Some(SOON),
        ..ClientConfig::default()
    };
    let url = format!("ws://{}/", proxy.addr);
    let mut client = Client::connect_with(&url, config).expect("connect through the proxy");
    assert!(
        client.deflate().is_some(),
        "the upstream's deflate reached the client"
    );
    let text = "edgews relays this compressed; ".repeat(1000);
    client.send_text(&text).unwrap();
    match client.recv().expect("the echo") {
        Received::Message(m) => assert_eq!(m.as_text(), Some(text.as_str())),
        other => panic!("{other:?}"),
    }
    let up = echo.addr;
    let to = upstream_metric(&proxy, "to_upstream_bytes_total", up).unwrap();
    let from = upstream_metric(&proxy, "from_upstream_bytes_total", up).unwrap();
    println!("{} bytes of text: {to} bytes up, {from} down", text.len());
    assert!(to < text.len() as f64 / 4.0 && from < text.len() as f64 / 4.0);
}

// ------------------------------------------------------------- TLS

#[test]
fn a_client_over_tls_is_forwarded_as_https() {
    let pki = TestPki::new("proxy-https");
    let upstream = RawUpstream::start();
    let url = ws_url(upstream.addr);
    let proxy = start_tls(
        "proxy",
        &pki,
        &["--upstream", &url, "--health-interval", "0"],
    );
    let mut tls = tls_connect(proxy.addr, &pki.client_tls()).expect("TLS");
    tls.write_all(&upgrade_request(proxy.addr, "/")).unwrap();
    let mut peer = upstream.next_accepted(&[]);
    let (head, _) = read_http_response(&mut tls).expect("the 101");
    assert_eq!(status_of(&head), 101, "{head}");
    assert_eq!(peer.header("X-Forwarded-Proto").as_deref(), Some("https"));
    let forwarded = peer.header("Forwarded").unwrap();
    assert!(forwarded.contains(";proto=https;"), "{forwarded}");
    let frame = client_frame(true, OpCode::Binary, b"through TLS, then plain");
    tls.write_all(&frame).unwrap();
    assert_eq!(peer.read_exact_bytes(frame.len()), frame);
}

#[test]
fn a_wss_upstream_is_reached_over_tls_verified_with_the_upstream_ca_file() {
    let pki = TestPki::new("proxy-wss");
    let echo = start_tls("echo", &pki, &["--metrics-listen", "127.0.0.1:0"]);
    let url = format!("wss://{}", echo.addr);
    let ca = pki.ca_file.to_str().unwrap();
    let args = ["--upstream", &url, "--upstream-ca-file", ca];
    let proxy = Launch::new("proxy")
        .args(args)
        .args(["--health-interval", "200ms"])
        .start();
    let mut client = RawClient::open(proxy.addr, "/");
    client.send(&client_frame(true, OpCode::Text, b"over a wss upstream"));
    let echoed = client.read_frame().expect("the echo").payload;
    assert_eq!(echoed, b"over a wss upstream");
    // health checks over TLS too: two have run (one at a time), none failed
    let checked = || echo.metric("edgews_accepted_total") >= Some(3.0);
    assert!(wait_until(SOON, checked));
    let series = |name| {
        proxy.metric(&format!(
            "edgews_proxy_upstream_{name}{{upstream=\"{url}\"}}"
        ))
    };
    assert_eq!(series("up"), Some(1.0));
    assert_eq!(
        series("failures_total"),
        Some(0.0),
        "{}",
        proxy.stderr_text()
    );
}

#[test]
fn a_wss_upstream_whose_certificate_is_not_trusted_gets_502() {
    let pki = TestPki::new("proxy-wss-untrusted");
    let echo = start_tls("echo", &pki, &[]);
    let url = format!("wss://{}", echo.addr);
    let args = ["--upstream", &url, "--health-interval", "0"];
    let proxy = Launch::new("proxy").args(args).start();
    assert_eq!(upgrade_status(proxy.addr), 502);
}

// ------------------------------------------------------ --trusted-proxy

/// An upgrade to `server` with `X-Forwarded-For: xff`: the status (the
/// connection kept in `kept`).
fn forwarded_for(server: SocketAddr, xff: &str, kept: &mut Vec<TcpStream>) -> u16 {
    let line = format!("X-Forwarded-For: {xff}");
    let (status, stream) = upgrade_from("127.0.0.1", server, &[&line]);
    kept.push(stream);
    status
}

#[test]
fn behind_a_trusted_proxy_clients_are_told_apart_by_their_forwarded_address() {
    let echo = Launch::new("echo")
        .args([
            "--trusted-proxy",
            "127.0.0.1",
            "--max-connections-per-ip",
            "1",
        ])
        .env("EDGEWS_LOG", "debug")
        .start();
    let mut kept = Vec::new();
    assert_eq!(forwarded_for(echo.addr, "203.0.113.1", &mut kept), 101);
    assert_eq!(forwarded_for(echo.addr, "203.0.113.2", &mut kept), 101);
    assert_eq!(forwarded_for(echo.addr, "203.0.113.1", &mut kept), 429);
    // rightmost untrusted: a made-up entry on the left changes nothing
    assert_eq!(
        forwarded_for(echo.addr, "198.51.100.1, 203.0.113.2", &mut kept),
        429
    );
    assert!(
        logs(&echo, "client 203.0.113.1:0 (forwarded)"),
        "{}",
        echo.stderr_text()
    );
}

#[test]
fn a_trusted_proxys_x_forwarded_for_wins_over_forwarded_which_counts_without_it() {
    let echo = Launch::new("echo")
        .args(["--trusted-proxy", "127.0.0.1"])
        .env("EDGEWS_LOG", "debug")
        .start();
    let both = [
        "X-Forwarded-For: 203.0.113.5",
        "Forwarded: for=198.51.100.5",
    ];
    let (status, _a) = upgrade_from("127.0.0.1", echo.addr, &both);
    assert_eq!(status, 101);
    assert!(
        logs(&echo, "client 203.0.113.5:0 (forwarded)"),
        "{}",
        echo.stderr_text()
    );
    let only = ["Forwarded: for=\"198.51.100.9:4711\";proto=https"];
    let (status, _b) = upgrade_from("127.0.0.1", echo.addr, &only);
    assert_eq!(status, 101);
    assert!(
        logs(&echo, "client 198.51.100.9:4711 (forwarded)"),
        "{}",
        echo.stderr_text()
    );
    assert!(
        !echo.stderr_text().contains("198.51.100.5"),
        "Forwarded was read over XFF"
    );
}

#[test]
fn without_trusted_proxies_forwarding_headers_are_ignored() {
    for trusted in [&[][..], &["--trusted-proxy", "10.0.0.0/8"][..]] {
        let mut args = vec!["--max-connections-per-ip", "1"];
        args.extend_from_slice(trusted);
        let echo = Launch::new("echo")
            .args(&args)
            .env("EDGEWS_LOG", "debug")
            .start();
        let mut kept = Vec::new();
        assert_eq!(forwarded_for(echo.addr, "203.0.113.1", &mut kept), 101);
        assert_eq!(
            forwarded_for(echo.addr, "203.0.113.2", &mut kept),
            429,
            "{args:?}"
        );
        let (_, log) = echo.terminate(SOON);
        assert!(!log.contains("(forwarded)"), "{args:?}: {log}");
    }
}

#[test]
fn a_server_behind_edgews_proxy_applies_its_per_ip_limit_per_real_client() {
    let echo = start(
        "echo",
        &[
            "--trusted-proxy",
            "127.0.0.1",
            "--max-connections-per-ip",
            "1",
        ],
    );
    let proxy = proxy(&[echo.addr], &[]);
    let open = |from: &str, extra: &[&str]| upgrade_from(from, proxy.addr, extra);
    let (a, _a) = open("127.0.0.2", &[]);
    let (b, _b) = open("127.0.0.3", &[]);
    assert_eq!((a, b), (101, 101), "two clients, two addresses");
    let (again, _c) = open("127.0.0.2", &[]);
    assert_eq!(again, 429, "the upstream's refusal, relayed");
    let (spoofed, _d) = open("127.0.0.2", &["X-Forwarded-For: 192.0.2.99"]);
    assert_eq!(
        spoofed, 429,
        "a made-up X-Forwarded-For gets no one past the limit"
    );
    assert_eq!(
        upstream_metric(&proxy, "up", echo.addr),
        Some(1.0),
        "429 is no failure"
    );

    // without --trusted-proxy, the upstream sees one client: the proxy
    let plain = start("echo", &["--max-connections-per-ip", "1"]);
    let proxy = proxy_launch(&[plain.addr], &[]).start();
    let (first, _a) = upgrade_from("127.0.0.2", proxy.addr, &[]);
    let (second, _b) = upgrade_from("127.0.0.3", proxy.addr, &[]);
    assert_eq!((first, second), (101, 429));
}
