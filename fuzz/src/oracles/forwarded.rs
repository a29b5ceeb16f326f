//! The `forwarded` oracle: client addresses behind reverse proxies
//! (`edgews::forwarded`), read from arbitrary header lines and written for
//! an upstream.

use super::heap::HeapMeter;
use edgews::forwarded::{client_addr, forward_headers, TrustedProxies};
use std::net::{IpAddr, SocketAddr};

/// The proxies the oracle's server trusts.
const TRUSTED: &str = "10.0.0.0/8, 192.0.2.0/24, ::1, fd00::/8";

/// The TCP peers the input's first byte picks from: trusted and not, IPv4,
/// IPv6 and IPv4-mapped.
const PEERS: [&str; 8] = [
    "10.0.0.1:40000",
    "192.0.2.7:443",
    "[::1]:8080",
    "[fd00::2]:1",
    "[::ffff:10.1.2.3]:9",
    "203.0.113.9:5000",
    "[2001:db8::1]:4711",
    "[::ffff:198.51.100.1]:2",
];

/// The only proxy the upstream of the written headers trusts (none of
/// [`PEERS`]).
const UPSTREAM_PROXY: &str = "127.0.0.2:1";

/// A line a client could put before everything else.
const SPOOF: &[u8] = b"for=6.6.6.6, 6.6.6.6, \"";

/// Arbitrary header lines through [`client_addr`] and [`forward_headers`].
///
/// The input: byte 0 picks the peer from [`PEERS`] (bits 0–2) and whether
/// the connection was TLS (bit 3); the rest is split at `\n` (a `\r`
/// before it is dropped) into lines `name:value` (no `:`: a name with an
/// empty value; a name that is not UTF-8 is empty).
///
/// Checked: never a panic; [`client_addr`] allocates nothing; an untrusted
/// peer is the client; otherwise the client is the peer or an address
/// (and port, unless 0) that appears in the input; an untrusted client read
/// from the headers stays the client when a spoofed line is put before them;
/// [`forward_headers`] writes exactly three lines of visible ASCII in a
/// bounded heap, which lead an upstream trusting only this proxy back to the
/// peer, through `Forwarded` with its port and through `X-Forwarded-For`
/// alone with port 0.
pub fn forwarded(data: &[u8]) {
    let (first, body) = data.split_first().map_or((0, &[][..]), |(&b, r)| (b, r));
    let peer: SocketAddr = PEERS[usize::from(first & 7)].parse().unwrap();
    let secure = first & 8 != 0;
    let headers = header_lines(body);
    let trusted: TrustedProxies = TRUSTED.parse().unwrap();

    let meter = HeapMeter::start();
    let client = client_addr(peer, headers.iter().copied(), &trusted);
    if HeapMeter::active() {
        assert_eq!(meter.peak(), 0, "client_addr allocated");
    }
    if !trusted.contains(peer.ip()) {
        assert_eq!(client, peer, "an untrusted peer's headers were believed");
    } else if client != peer {
        assert!(
            appears(client, body),
            "{client} is neither the peer nor in the input"
        );
        if !trusted.contains(client.ip()) {
            check_spoof_resistance(peer, &headers, &trusted, client);
        }
    }
    check_written(peer, secure, &headers, body.len());
}

/// The input's header lines, as the handshake parser would give them.
fn header_lines(body: &[u8]) -> Vec<(&str, &[u8])> {
    body.split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .map(|line| match line.iter().position(|&b| b == b':') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &[][..]),
        })
        .map(|(name, value)| (std::str::from_utf8(name).unwrap_or(""), value))
        .collect()
}

/// Whether `addr`'s IP is written in `input` (quoted-pair backslashes
/// removed), as any run of address characters, and its port, unless 0,
/// too.
fn appears(addr: SocketAddr, input: &[u8]) -> bool {
    let text: Vec<u8> = input.iter().copied().filter(|&b| b != b'\\').collect();
    let text = String::from_utf8_lossy(&text);
    let is_addr_char = |c: char| c.is_ascii_hexdigit() || c == '.' || c == ':';
    // The longest IP text, `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`.
    const LONGEST: usize = 45;
    let ip_found = text.split(|c: char| !is_addr_char(c)).any(|token| {
        (0..token.len()).any(|start| {
            let ends = start + 1..=token.len().min(start + LONGEST);
            ends.into_iter()
                .any(|end| token[start..end].parse::<IpAddr>().ok() == Some(addr.ip()))
        })
    });
    ip_found && (addr.port() == 0 || text.contains(&addr.port().to_string()))
}

/// A client prepending a line of made-up hops to the header the client was
/// read from changes nothing.
fn check_spoof_resistance(
    peer: SocketAddr,
    headers: &[(&str, &[u8])],
    trusted: &TrustedProxies,
    client: SocketAddr,
) {
    let uses_forwarded = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("forwarded"));
    let name = if uses_forwarded {
        "Forwarded"
    } else {
        "X-Forwarded-For"
    };
    let spoofed = std::iter::once((name, SPOOF)).chain(headers.iter().copied());
    assert_eq!(
        client_addr(peer, spoofed, trusted),
        client,
        "a line put before the others changed the client"
    );
}

/// [`forward_headers`]' output: its shape, its heap, and what an upstream
/// reads from it.
fn check_written(peer: SocketAddr, secure: bool, headers: &[(&str, &[u8])], input_len: usize) {
    let mut out = Vec::new();
    let meter = HeapMeter::start();
    forward_headers(peer, secure, headers.iter().copied(), &mut out);
    if HeapMeter::active() {
        let bound = 32 * input_len as isize + 4096;
        assert!(
            meter.peak() <= bound,
            "forward_headers took {} heap bytes",
            meter.peak()
        );
    }
    let text = std::str::from_utf8(&out).expect("written headers are not UTF-8");
    let lines: Vec<(&str, &str)> = text
        .strip_suffix("\r\n")
        .expect("written headers do not end in CRLF")
        .split("\r\n")
        .map(|line| line.split_once(": ").expect("a written line has no name"))
        .collect();
    let names: Vec<&str> = lines.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["X-Forwarded-For", "X-Forwarded-Proto", "Forwarded"]);
    for (_, value) in &lines {
        assert!(
            value
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b)),
            "a written value holds a control byte: {value:?}"
        );
    }
    assert_eq!(lines[1].1, if secure { "https" } else { "http" });

    let upstream: TrustedProxies = "127.0.0.2".parse().unwrap();
    let proxy: SocketAddr = UPSTREAM_PROXY.parse().unwrap();
    let read = |skip: &str| {
        let kept = lines.iter().filter(|(n, _)| *n != skip);
        client_addr(proxy, kept.map(|(n, v)| (*n, v.as_bytes())), &upstream)
    };
    let ip = peer.ip().to_canonical();
    assert_eq!(read(""), SocketAddr::new(ip, 0), "via X-Forwarded-For");
    assert_eq!(
        read("X-Forwarded-For"),
        SocketAddr::new(ip, peer.port()),
        "via Forwarded"
    );
}
