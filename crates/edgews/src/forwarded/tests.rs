//! Client addresses behind proxies: reading, trust lists, writing.

use super::*;
use proptest::prelude::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn trust(s: &str) -> TrustedProxies {
    s.parse().unwrap()
}

/// The proxy in front of the server in most tests.
const PROXY: &str = "10.0.0.1:40000";

/// `client_addr` from `PROXY`, trusting 10.0.0.0/8 and fd00::/8.
fn behind_proxy(headers: &[(&str, &str)]) -> SocketAddr {
    from(PROXY, headers)
}

fn from(peer: &str, headers: &[(&str, &str)]) -> SocketAddr {
    let headers = headers.iter().map(|(n, v)| (*n, v.as_bytes()));
    client_addr(addr(peer), headers, &trust("10.0.0.0/8, fd00::/8"))
}

fn built(peer: &str, secure: bool, headers: &[(&str, &str)]) -> String {
    let mut out = Vec::new();
    let headers = headers.iter().map(|(n, v)| (*n, v.as_bytes()));
    forward_headers(addr(peer), secure, headers, &mut out);
    String::from_utf8(out).unwrap()
}

// ---------------------------------------------------------------------------
// Who is trusted

#[test]
fn untrusted_peer_is_the_client_whatever_the_headers_say() {
    let headers = [
        ("X-Forwarded-For", "203.0.113.9"),
        ("Forwarded", "for=1.2.3.4"),
    ];
    assert_eq!(from("192.0.2.1:5000", &headers), addr("192.0.2.1:5000"));
}

#[test]
fn empty_trust_list_trusts_nobody() {
    let trusted = TrustedProxies::default();
    assert!(trusted.is_empty());
    assert!(!trusted.contains("127.0.0.1".parse().unwrap()));
    let headers = [("X-Forwarded-For", &b"203.0.113.9"[..])];
    assert_eq!(client_addr(addr(PROXY), headers, &trusted), addr(PROXY));
}

#[test]
fn trusted_peer_without_headers_is_the_client() {
    assert_eq!(behind_proxy(&[("Host", "example.com")]), addr(PROXY));
}

#[test]
fn ipv4_mapped_peer_matches_an_ipv4_network() {
    let headers = [("X-Forwarded-For", "203.0.113.9")];
    assert_eq!(
        from("[::ffff:10.0.0.1]:4000", &headers),
        addr("203.0.113.9:0")
    );
    let trusted = trust("127.0.0.1");
    assert!(trusted.contains("::ffff:127.0.0.1".parse().unwrap()));
    assert!(!trusted.contains("::1".parse().unwrap()));
}

#[test]
fn ipv4_mapped_network_is_the_ipv4_network() {
    let net: ProxyNetwork = "::ffff:10.0.0.0/104".parse().unwrap();
    assert_eq!(net, "10.0.0.0/8".parse().unwrap());
    assert!(net.contains("10.9.9.9".parse().unwrap()));
}

#[test]
fn networks_parse_in_every_documented_form() {
    let cases = [
        ("127.0.0.1", "127.0.0.1", 32),
        ("10.0.0.0/8", "10.0.0.0", 8),
        ("::1", "::1", 128),
        ("fd00::/8", "fd00::", 8),
        ("[::1]", "::1", 128),
        ("[fd00::]/8", "fd00::", 8),
        ("0.0.0.0/0", "0.0.0.0", 0),
        ("::/0", "::", 0),
    ];
    for (text, ip, prefix) in cases {
        let net: ProxyNetwork = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(net.addr(), ip.parse::<IpAddr>().unwrap(), "{text}");
        assert_eq!(net.prefix_len(), prefix, "{text}");
    }
}

#[test]
fn host_bits_past_the_prefix_are_cleared() {
    let net: ProxyNetwork = "10.1.2.3/8".parse().unwrap();
    assert_eq!(net.to_string(), "10.0.0.0/8");
    let net: ProxyNetwork = "fd12:3456::1/16".parse().unwrap();
    assert_eq!(net.to_string(), "fd12::/16");
}

#[test]
fn bad_prefix_lengths_are_refused() {
    for text in [
        "10.0.0.0/33",
        "::/129",
        "10.0.0.0/",
        "10.0.0.0/+8",
        "10.0.0.0/-1",
        "10.0.0.0/ 8",
        "10.0.0.0/8/8",
        "10.0.0.0/0008",
        "10.0.0.0/x",
        "[::1]/200",
    ] {
        let err = text.parse::<ProxyNetwork>().unwrap_err();
        assert_eq!(err, TrustedProxyError::PrefixLength(text.into()), "{text}");
    }
}

#[test]
fn garbage_networks_are_refused() {
    for text in [
        "",
        "localhost",
        "[10.0.0.1]",
        "[::1",
        "::1]",
        "1.2.3.4:80",
        "[::1]:80",
        "fe80::1%eth0",
        " 10.0.0.1",
        "10.0.0",
        "/8",
    ] {
        let err = text.parse::<ProxyNetwork>().unwrap_err();
        assert_eq!(err, TrustedProxyError::Address(text.into()), "{text}");
    }
}

#[test]
fn errors_say_what_is_wrong() {
    let err = "10.0.0.0/33".parse::<TrustedProxies>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "trusted proxy \"10.0.0.0/33\" has a bad prefix length (0 to 32 for IPv4, 0 to 128 for IPv6)"
    );
    let err = "proxy.local".parse::<TrustedProxies>().unwrap_err();
    assert!(err.to_string().contains("is not an IP address"), "{err}");
    let boxed: Box<dyn std::error::Error> = Box::new(err);
    assert!(!boxed.to_string().is_empty());
}

#[test]
fn lists_are_comma_separated_and_print_back() {
    let list = trust(" 127.0.0.1 ,10.0.0.0/8, [::1], fd00::/8");
    assert_eq!(list.networks().len(), 4);
    assert_eq!(list.to_string(), "127.0.0.1, 10.0.0.0/8, ::1, fd00::/8");
    assert_eq!(trust(&list.to_string()), list);
    assert_eq!("".parse::<TrustedProxies>(), Err(TrustedProxyError::Empty));
    assert_eq!(
        "10.0.0.1,".parse::<TrustedProxies>(),
        Err(TrustedProxyError::Empty)
    );
}

#[test]
fn networks_contain_exactly_their_range() {
    let list = trust("10.0.0.0/8, fd00::/8");
    for inside in ["10.0.0.0", "10.255.255.255", "fd00::1", "fdff:ffff::"] {
        assert!(list.contains(inside.parse().unwrap()), "{inside}");
    }
    for outside in ["9.255.255.255", "11.0.0.0", "fe00::", "::ffff:11.0.0.1"] {
        assert!(!list.contains(outside.parse().unwrap()), "{outside}");
    }
    let everything = trust("0.0.0.0/0");
    assert!(everything.contains("255.255.255.255".parse().unwrap()));
    assert!(!everything.contains("::2".parse().unwrap()));
}

// ---------------------------------------------------------------------------
// Reading X-Forwarded-For

#[test]
fn x_forwarded_for_gives_the_client_behind_a_trusted_proxy() {
    let headers = [("X-Forwarded-For", "203.0.113.9")];
    assert_eq!(behind_proxy(&headers), addr("203.0.113.9:0"));
}

#[test]
fn spoofed_leftmost_entries_are_ignored() {
    let headers = [("X-Forwarded-For", "6.6.6.6, 7.7.7.7,203.0.113.9")];
    assert_eq!(behind_proxy(&headers), addr("203.0.113.9:0"));
}

#[test]
fn a_chain_of_trusted_proxies_is_skipped() {
    let headers = [(
        "x-forwarded-for",
        "6.6.6.6, 203.0.113.9, 10.0.0.7, 10.0.0.8",
    )];
    assert_eq!(behind_proxy(&headers), addr("203.0.113.9:0"));
}

#[test]
fn when_every_hop_is_trusted_the_leftmost_is_the_client() {
    let headers = [("X-Forwarded-For", "10.0.0.5, 10.0.0.7")];
    assert_eq!(behind_proxy(&headers), addr("10.0.0.5:0"));
}

#[test]
fn several_lines_are_one_list_in_order() {
    let headers = [
        ("X-Forwarded-For", "6.6.6.6"),
        ("Host", "example.com"),
        ("X-FORWARDED-FOR", "203.0.113.9, 10.0.0.7"),
    ];
    assert_eq!(behind_proxy(&headers), addr("203.0.113.9:0"));
    let headers = [
        ("X-Forwarded-For", "203.0.113.9"),
        ("X-Forwarded-For", "10.0.0.7"),
    ];
    assert_eq!(behind_proxy(&headers), addr("203.0.113.9:0"));
}

#[test]
fn x_forwarded_for_takes_ports_and_every_ipv6_form() {
    let cases = [
        ("1.2.3.4:5", "1.2.3.4:5"),
        ("2001:db8::1", "[2001:db8::1]:0"),
        ("[2001:db8::1]", "[2001:db8::1]:0"),
        ("[2001:db8::1]:4711", "[2001:db8::1]:4711"),
        ("\t2001:db8::1 ", "[2001:db8::1]:0"),
        ("::ffff:1.2.3.4", "[::ffff:1.2.3.4]:0"),
    ];
    for (value, client) in cases {
        let headers = [("X-Forwarded-For", value)];
        assert_eq!(behind_proxy(&headers), addr(client), "{value}");
    }
}

#[test]
fn empty_list_elements_are_skipped() {
    let headers = [
        ("X-Forwarded-For", " ,203.0.113.9 ,, , "),
        ("X-Forwarded-For", ""),
    ];
    assert_eq!(behind_proxy(&headers), addr("203.0.113.9:0"));
}

#[test]
fn an_unparsable_entry_stops_at_the_last_good_address() {
    let headers = [("X-Forwarded-For", "203.0.113.9, unknown, 10.0.0.7")];
    assert_eq!(behind_proxy(&headers), addr("10.0.0.7:0"));
    for bad in [
        "unknown",
        "_hidden",
        "1.2.3",
        "1.2.3.4:",
        "1.2.3.4:65536",
        "01.2.3.4",
        "[::1",
    ] {
        let headers = [("X-Forwarded-For", bad)];
        assert_eq!(behind_proxy(&headers), addr(PROXY), "{bad}");
    }
}

// ---------------------------------------------------------------------------
// Reading Forwarded

#[test]
fn forwarded_gives_the_client_behind_a_trusted_proxy() {
    let headers = [("Forwarded", "for=192.0.2.43;proto=https;by=10.0.0.1")];
    assert_eq!(behind_proxy(&headers), addr("192.0.2.43:0"));
}

#[test]
fn x_forwarded_for_is_preferred_over_forwarded() {
    let headers = [
        ("X-Forwarded-For", "198.51.100.1"),
        ("Forwarded", "for=192.0.2.43"),
    ];
    assert_eq!(behind_proxy(&headers), addr("198.51.100.1:0"));
}

#[test]
fn spoofed_forwarded_elements_are_ignored() {
    let headers = [
        ("Forwarded", "for=6.6.6.6"),
        (
            "Forwarded",
            "for=7.7.7.7, for=\"192.0.2.43:47011\", for=10.0.0.9",
        ),
    ];
    assert_eq!(behind_proxy(&headers), addr("192.0.2.43:47011"));
}

#[test]
fn names_and_parameters_are_case_insensitive() {
    let headers = [("FORWARDED", "proto=http;For=192.0.2.43")];
    assert_eq!(behind_proxy(&headers), addr("192.0.2.43:0"));
}

#[test]
fn quoted_and_bracketed_ipv6_is_read_with_its_port() {
    let cases = [
        (
            "For=\"[2001:db8:cafe::17]:4711\"",
            "[2001:db8:cafe::17]:4711",
        ),
        ("for=\"[2001:db8::1]\"", "[2001:db8::1]:0"),
        ("for=[2001:db8::1]:80", "[2001:db8::1]:80"),
        ("for=\"192.0.2.43:47011\"", "192.0.2.43:47011"),
        ("for=192.0.2.43:47011", "192.0.2.43:47011"),
        ("for=\"192.0.2.43\"", "192.0.2.43:0"),
        ("for=\"[::ffff:192.0.2.1]\"", "[::ffff:192.0.2.1]:0"),
        ("for=\"192.0.2.43:_p1\"", "192.0.2.43:0"),
        ("for=\"19\\2.0.2.43\"", "192.0.2.43:0"),
    ];
    for (value, client) in cases {
        let headers = [("Forwarded", value)];
        assert_eq!(behind_proxy(&headers), addr(client), "{value}");
    }
}

#[test]
fn obfuscated_and_unknown_nodes_stop_the_walk() {
    for node in ["_hidden", "\"_gazonk\"", "unknown", "UNKNOWN", "\"[_x]\""] {
        let value = format!("for=203.0.113.9, for={node}, for=10.0.0.7");
        let headers = [("Forwarded", value.as_str())];
        assert_eq!(behind_proxy(&headers), addr("10.0.0.7:0"), "{node}");
        let value = format!("for=203.0.113.9, for={node}");
        let headers = [("Forwarded", value.as_str())];
        assert_eq!(behind_proxy(&headers), addr(PROXY), "{node}");
    }
}

#[test]
fn malformed_elements_stop_the_walk() {
    for element in [
        "proto=http",
        "for=1.2.3.4;for=5.6.7.8",
        "for",
        "for=",
        "for=\"1.2.3.4",
        "for=\"1.2.3.4\\\"",
        "for=2001:db8::1",
        "for=\"2001:db8::1\"",
        "for=1.2.3.4 5",
        "for=1.2.3.4;proto",
        "for=\"1.2\"3.4\"",
    ] {
        let value = format!("for=203.0.113.9, {element}");
        let headers = [("Forwarded", value.as_str())];
        assert_eq!(behind_proxy(&headers), addr(PROXY), "{element}");
    }
}

#[test]
fn separators_inside_quotes_do_not_split() {
    let headers = [("Forwarded", "for=192.0.2.43;host=\"a,b;c\\\",d\"")];
    assert_eq!(behind_proxy(&headers), addr("192.0.2.43:0"));
}

#[test]
fn a_clients_unterminated_quote_cannot_hide_the_proxys_entry() {
    let headers = [("Forwarded", "for=\"_x, for=\"192.0.2.43:1\"")];
    assert_eq!(behind_proxy(&headers), addr("192.0.2.43:1"));
    let headers = [("Forwarded", "for=\"\\\", for=192.0.2.43")];
    assert_eq!(behind_proxy(&headers), addr("192.0.2.43:0"));
}

#[test]
fn an_empty_x_forwarded_for_line_still_wins_over_forwarded() {
    let headers = [("X-Forwarded-For", " "), ("Forwarded", "for=203.0.113.9")];
    assert_eq!(behind_proxy(&headers), addr(PROXY));
}

#[test]
fn ipv6_proxies_are_trusted_by_network() {
    let headers = [("Forwarded", "for=\"[2001:db8::9]:1\", for=\"[fd00::2]\"")];
    assert_eq!(from("[fd00::1]:443", &headers), addr("[2001:db8::9]:1"));
}

// ---------------------------------------------------------------------------
// Bounds

#[test]
fn at_most_max_hops_are_walked() {
    let mut list = String::from("203.0.113.9");
    for i in 0..MAX_HOPS + 6 {
        list.push_str(&format!(", 10.0.{}.{}", i / 256, i % 256));
    }
    let headers = [("X-Forwarded-For", list.as_str())];
    // 70 proxies: the 64th from the right, 10.0.0.6, is as far as it goes.
    let last = 6;
    assert_eq!(behind_proxy(&headers), addr(&format!("10.0.0.{last}:0")));
}

#[test]
fn at_most_max_hops_lines_are_kept() {
    let mut headers = vec![("X-Forwarded-For", "6.6.6.6")];
    headers.extend(std::iter::repeat_n(
        ("X-Forwarded-For", "10.0.0.5"),
        MAX_HOPS,
    ));
    assert_eq!(behind_proxy(&headers), addr("10.0.0.5:0"));
    headers.pop();
    assert_eq!(behind_proxy(&headers), addr("6.6.6.6:0"));
}

#[test]
fn huge_headers_are_read_without_trouble() {
    let junk = "\"\\,;=[]:_".repeat(100_000);
    let commas = ",".repeat(1_000_000) + "203.0.113.9";
    for value in [junk.as_str(), commas.as_str()] {
        for name in ["Forwarded", "X-Forwarded-For"] {
            let _ = behind_proxy(&[(name, value)]);
        }
    }
    assert_eq!(
        behind_proxy(&[("X-Forwarded-For", &commas)]),
        addr("203.0.113.9:0")
    );
}

// ---------------------------------------------------------------------------
// Writing

#[test]
fn headers_for_a_plain_ipv4_request_are_byte_exact() {
    assert_eq!(
        built("192.0.2.43:47011", false, &[("Host", "example.com")]),
        "X-Forwarded-For: 192.0.2.43\r\n\
         X-Forwarded-Proto: http\r\n\
         Forwarded: for=\"192.0.2.43:47011\";proto=http;host=example.com\r\n"
    );
}

#[test]
fn headers_for_an_ipv6_tls_request_extend_the_lists() {
    let headers = [
        ("host", "example.com:8443"),
        ("X-Forwarded-For", "203.0.113.9"),
        ("X-Forwarded-For", " 198.51.100.7 "),
        ("Forwarded", "for=203.0.113.9;proto=http"),
        ("forwarded", "for=\"[2001:db8::2]\""),
        ("X-Forwarded-Proto", "http"),
    ];
    assert_eq!(
        built("[2001:db8::1]:4711", true, &headers),
        "X-Forwarded-For: 203.0.113.9, 198.51.100.7, 2001:db8::1\r\n\
         X-Forwarded-Proto: https\r\n\
         Forwarded: for=203.0.113.9;proto=http, for=\"[2001:db8::2]\", \
         for=\"[2001:db8::1]:4711\";proto=https;host=\"example.com:8443\"\r\n"
    );
}

#[test]
fn ipv4_mapped_peers_are_written_as_ipv4_and_port_0_is_left_out() {
    assert_eq!(
        built("[::ffff:192.0.2.43]:0", false, &[]),
        "X-Forwarded-For: 192.0.2.43\r\n\
         X-Forwarded-Proto: http\r\n\
         Forwarded: for=192.0.2.43;proto=http\r\n"
    );
    assert!(built("[2001:db8::1]:0", false, &[]).contains("for=\"[2001:db8::1]\";"));
}

#[test]
fn hosts_that_need_quoting_are_escaped() {
    let out = built("192.0.2.43:1", false, &[("Host", "a\"b\\c")]);
    assert!(out.ends_with(";host=\"a\\\"b\\\\c\"\r\n"), "{out}");
}

#[test]
fn lines_that_could_break_the_output_are_dropped() {
    let headers = [
        ("Host", "evil\r\nX-Injected: 1"),
        ("X-Forwarded-For", "1.1.1.1\r\nX-Injected: 1"),
        ("X-Forwarded-For", "2.2.2.2\n"),
        ("X-Forwarded-For", "3.3.3.3\0"),
        ("X-Forwarded-For", "4.4.4.4 é"),
        ("X-Forwarded-For", "5.5.5.5"),
        ("Forwarded", "for=\"1.1.1.1"),
        ("Forwarded", "for=\"1.1.1.1\\\""),
        ("Forwarded", "for=2.2.2.2\r"),
        ("Forwarded", "for=\"5.5.5.5\""),
    ];
    assert_eq!(
        built("192.0.2.43:1", false, &headers),
        "X-Forwarded-For: 5.5.5.5, 192.0.2.43\r\n\
         X-Forwarded-Proto: http\r\n\
         Forwarded: for=\"5.5.5.5\", for=\"192.0.2.43:1\";proto=http\r\n"
    );
    let out = built("192.0.2.43:1", false, &[("Host", "a b")]);
    assert!(!out.contains("host="), "{out}");
}

#[test]
fn forwarding_headers_are_named() {
    for name in ["Forwarded", "x-forwarded-for", "X-FORWARDED-PROTO"] {
        assert!(is_forwarding_header(name), "{name}");
    }
    for name in ["Host", "X-Forwarded-Host", "Via", "forwarded-for"] {
        assert!(!is_forwarding_header(name), "{name}");
    }
}

// ---------------------------------------------------------------------------
// Properties

/// Parses what `forward_headers` wrote back into (name, value) lines.
fn lines(out: &[u8]) -> Vec<(String, Vec<u8>)> {
    let text = std::str::from_utf8(out).unwrap();
    assert!(text.ends_with("\r\n"));
    text.split_terminator("\r\n")
        .map(|line| {
            let (name, value) = line.split_once(": ").unwrap();
            (name.to_string(), value.as_bytes().to_vec())
        })
        .collect()
}

fn header_strategy() -> impl Strategy<Value = (String, Vec<u8>)> {
    let name = prop_oneof![
        Just("Forwarded".to_string()),
        Just("X-Forwarded-For".to_string()),
        Just("Host".to_string()),
        "[a-zA-Z-]{1,12}",
    ];
    let value = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        "[0-9a-f.:\\[\\]\",;= _\\\\]{0,64}".prop_map(String::into_bytes),
    ];
    (name, value)
}

fn peer_strategy() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| (ip, port).into()),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| (ip, port).into()),
    ]
}

proptest! {
    #[test]
    fn garbage_headers_give_the_peer_or_a_trusted_chain(
        headers in proptest::collection::vec(header_strategy(), 0..8),
        peer in peer_strategy(),
    ) {
        let trusted = trust("0.0.0.0/1, ::/1");
        let got = client_addr(peer, headers.iter().map(|(n, v)| (n.as_str(), &v[..])), &trusted);
        if !trusted.contains(peer.ip()) {
            prop_assert_eq!(got, peer);
        }
    }

    #[test]
    fn the_built_headers_lead_an_upstream_back_to_the_peer(
        headers in proptest::collection::vec(header_strategy(), 0..8),
        peer in peer_strategy(),
        secure in any::<bool>(),
    ) {
        let mut out = Vec::new();
        forward_headers(peer, secure, headers.iter().map(|(n, v)| (n.as_str(), &v[..])), &mut out);
        let written = lines(&out);
        prop_assert_eq!(written.len(), 3);
        let upstream = trust("10.0.0.1");
        let proxy = addr(PROXY);
        let read = |only: &str| {
            let kept = written.iter().filter(|(n, _)| n.as_str() != only);
            client_addr(proxy, kept.map(|(n, v)| (n.as_str(), &v[..])), &upstream)
        };
        let ip = peer.ip().to_canonical();
        if !upstream.contains(ip) {
            prop_assert_eq!(read(""), SocketAddr::new(ip, 0));
            prop_assert_eq!(read("X-Forwarded-For"), SocketAddr::new(ip, peer.port()));
        }
    }
}
