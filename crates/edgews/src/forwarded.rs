//! Client addresses behind reverse proxies: reading them from `Forwarded`
//! (RFC 7239) and `X-Forwarded-For`, and writing those headers when
//! edgews is the proxy. Sans-I/O: addresses and header bytes in, an address
//! or header bytes out.
//!
//! # Reading: [`client_addr`]
//!
//! A server started with `--trusted-proxy` takes the client's address from
//! the request's headers, but only when the TCP peer is one of the
//! [`TrustedProxies`]; anyone else's headers are ignored. The headers are a
//! list of hops, each appended by the proxy that received the request from
//! the hop before it; the list's left part is whatever the client sent, so
//! only its right part can be believed. edgews walks it right to left and
//! takes the first address that is not itself a trusted proxy (the
//! "rightmost untrusted" rule): a client that prepends made-up entries only
//! adds hops left of the one its first proxy wrote, which are never reached.
//!
//! ```
//! use edgews::forwarded::{client_addr, TrustedProxies};
//! use std::net::SocketAddr;
//!
//! let trusted: TrustedProxies = "10.0.0.0/8".parse().unwrap();
//! let peer: SocketAddr = "10.0.0.2:40000".parse().unwrap();
//! let headers = [("X-Forwarded-For", &b"6.6.6.6, 203.0.113.9, 10.0.0.1"[..])];
//! // 6.6.6.6 is what the client claimed; 203.0.113.9 is what 10.0.0.1 saw.
//! let client = client_addr(peer, headers, &trusted);
//! assert_eq!(client, "203.0.113.9:0".parse().unwrap());
//! ```
//!
//! The rules, in the order they apply:
//!
//! - a peer outside [`TrustedProxies`] (and every peer when it is empty,
//!   the default) is the client, whatever the headers say;
//! - `X-Forwarded-For` is read when the request has at least one such
//!   line, else `Forwarded`; all lines of the chosen header, in
//!   order, form one list (RFC 7230 §3.2.2); empty list elements are
//!   skipped (RFC 7230 §7);
//! - the walk stops at the first hop that is not a plain address: an
//!   obfuscated identifier (`_hidden`, RFC 7239 §6.3), `unknown` (§6.2), a
//!   `Forwarded` element without exactly one `for` (§4: "Each parameter MUST
//!   NOT occur more than once per forwarded-element"), or anything that does
//!   not parse. The result is then the last address the walk accepted,
//!   which is a trusted proxy, or the peer when there is none;
//! - when every hop is a trusted proxy, the leftmost is the client;
//! - at most [`MAX_HOPS`] hops are looked at (from the right), in at most
//!   the last [`MAX_HOPS`] lines of the header; the walk then ends as if
//!   the list did.
//!
//! An address read from a header has no port unless the hop carries one
//! (`"192.0.2.43:47011"`, `"[2001:db8::1]:4711"`); without one, or with an
//! obfuscated port (`"192.0.2.43:_p1"`), the port is 0: the TCP peer's port
//! is the proxy's, and saying nothing beats saying something wrong.
//!
//! The parser is lenient in one way: a `for` value that RFC 7239 §4
//! requires quoted (it holds `:` or `[]`) is accepted unquoted too, since
//! some proxies write `for=192.0.2.43:47011`. It is strict about IPv6:
//! `Forwarded` needs the brackets of §6.1 (a bare `2001:db8::1:80` is
//! ambiguous), while `X-Forwarded-For`, which has no standard, takes a bare
//! IPv6 address (without a port), bracketed ones, and IPv4 with or without
//! a port.
//!
//! ## What the proxies must do
//!
//! `X-Forwarded-For` wins whenever it is present, since it is what nearly
//! every proxy writes (nginx, HAProxy, Envoy, edgews itself, which writes
//! both): such a proxy needs nothing more. A trusted proxy that writes
//! only `Forwarded` must remove any `X-Forwarded-For` the client sent;
//! else the client's `X-Forwarded-For` is read as if a proxy had written
//! it.
//!
//! ## Untrusted input
//!
//! Headers are the client's: any bytes, of any length. [`client_addr`]
//! never panics and never allocates (the lines it keeps are in a ring on
//! the stack), and its work is linear in the bytes of those lines. Quoted
//! strings are matched from the right, so a client's unterminated quote
//! cannot swallow the entries a proxy appended to the same line. The
//! `forwarded` fuzz target checks all of this.
//!
//! # Writing: [`forward_headers`]
//!
//! `edgews proxy` adds `X-Forwarded-For`, `X-Forwarded-Proto` and
//! `Forwarded` to the upgrade request it sends upstream, extending the
//! lists the request already had; see [`forward_headers`].

mod build;
mod trusted;

pub use build::{forward_headers, is_forwarding_header};
pub use trusted::{ProxyNetwork, TrustedProxies, TrustedProxyError};

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The most hops [`client_addr`] looks at, and the most header lines it
/// keeps per header, counting from the right (the newest).
pub const MAX_HOPS: usize = 64;

/// The longest node (`for` value once unquoted, or `X-Forwarded-For`
/// entry) that can be an address; longer ones are not.
const MAX_NODE: usize = 128;

/// The client's address for a request that came from `peer` with
/// `headers` (name, value) in their order: `peer` itself unless it is one
/// of the `trusted` proxies, else the rightmost untrusted hop of
/// `Forwarded` or `X-Forwarded-For`. The module docs give the rules; the
/// port is 0 when the hop carries none.
pub fn client_addr<'h, I>(peer: SocketAddr, headers: I, trusted: &TrustedProxies) -> SocketAddr
where
    I: IntoIterator<Item = (&'h str, &'h [u8])>,
{
    if !trusted.contains(peer.ip()) {
        return peer;
    }
    let mut forwarded = LastLines::default();
    let mut xff = LastLines::default();
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("forwarded") {
            forwarded.push(value);
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            xff.push(value);
        }
    }
    if xff.pushed > 0 {
        let hops = xff
            .newest_first()
            .flat_map(|line| RevSplit::new(line, b',', false))
            .map(trim_ows)
            .filter(|entry| !entry.is_empty())
            .map(|entry| parse_node(entry, true));
        walk(peer, hops, trusted)
    } else {
        let hops = forwarded
            .newest_first()
            .flat_map(|line| RevSplit::new(line, b',', true))
            .map(trim_ows)
            .filter(|element| !element.is_empty())
            .map(forwarded_for);
        walk(peer, hops, trusted)
    }
}

/// The rightmost untrusted hop of `hops` (given right to left; `None` for
/// one that is not an address); see the module docs.
fn walk(
    peer: SocketAddr,
    hops: impl Iterator<Item = Option<SocketAddr>>,
    trusted: &TrustedProxies,
) -> SocketAddr {
    let mut client = peer;
    for hop in hops.take(MAX_HOPS) {
        let Some(addr) = hop else { break };
        client = addr;
        if !trusted.contains(addr.ip()) {
            break;
        }
    }
    client
}

/// The last [`MAX_HOPS`] values of one header, in a ring on the stack.
struct LastLines<'h> {
    /// `ring[i % MAX_HOPS]` is the `i`th value pushed, for the last
    /// `min(pushed, MAX_HOPS)` values of `i`.
    ring: [&'h [u8]; MAX_HOPS],
    /// How many values were pushed in all.
    pushed: usize,
}

impl Default for LastLines<'_> {
    fn default() -> Self {
        LastLines {
            ring: [&[]; MAX_HOPS],
            pushed: 0,
        }
    }
}

impl<'h> LastLines<'h> {
    fn push(&mut self, value: &'h [u8]) {
        self.ring[self.pushed % MAX_HOPS] = value;
        self.pushed += 1;
    }

    fn newest_first(&self) -> impl Iterator<Item = &'h [u8]> + '_ {
        let kept = self.pushed.min(MAX_HOPS);
        (1..=kept).map(move |back| self.ring[(self.pushed - back) % MAX_HOPS])
    }
}

/// Splits a header value at `sep`, from the right; with `quotes`, a `sep`
/// inside a quoted string (RFC 7230 §3.2.6) does not split. A quote
/// preceded by an odd number of backslashes is escaped (a quoted-pair),
/// which reads a well-formed suffix the way a left-to-right parser would.
struct RevSplit<'a> {
    rest: Option<&'a [u8]>,
    sep: u8,
    quotes: bool,
}

impl<'a> RevSplit<'a> {
    fn new(value: &'a [u8], sep: u8, quotes: bool) -> Self {
        RevSplit {
            rest: Some(value),
            sep,
            quotes,
        }
    }
}

impl<'a> Iterator for RevSplit<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        let mut quoted = false;
        for i in (0..rest.len()).rev() {
            let b = rest[i];
            if self.quotes && b == b'"' {
                // Outside, a quote closes a string that runs leftwards;
                // inside, an unescaped one opens it.
                quoted = !quoted || is_escaped(rest, i);
            } else if b == self.sep && !quoted {
                self.rest = Some(&rest[..i]);
                return Some(&rest[i + 1..]);
            }
        }
        self.rest = None;
        Some(rest)
    }
}

/// Whether the byte at `i` is preceded by an odd run of backslashes. The
/// runs checked for different quotes are disjoint, so a whole scan stays
/// linear.
fn is_escaped(bytes: &[u8], i: usize) -> bool {
    let run = bytes[..i].iter().rev().take_while(|&&b| b == b'\\');
    run.count() % 2 == 1
}

/// `bytes` without leading and trailing spaces and tabs (OWS).
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// The address in the `for` parameter of one `Forwarded` element
/// (RFC 7239 §4, §5.2), or `None` when the element has no `for`, has two,
/// has a malformed pair, or its node is not an address.
fn forwarded_for(element: &[u8]) -> Option<SocketAddr> {
    let mut node = None;
    for pair in RevSplit::new(element, b';', true).map(trim_ows) {
        if pair.is_empty() {
            continue; // §4: forwarded-element = [ pair ] *( ";" [ pair ] )
        }
        let eq = pair.iter().position(|&b| b == b'=')?;
        if pair[..eq].eq_ignore_ascii_case(b"for") {
            if node.is_some() {
                return None; // §4: "MUST NOT occur more than once"
            }
            node = Some(&pair[eq + 1..]);
        }
    }
    let mut buf = [0; MAX_NODE];
    parse_node(unquote(node?, &mut buf)?, false)
}

/// A parameter value: a quoted-string unescaped into `buf` (RFC 7230
/// §3.2.6), or else the raw value, which may hold no quote, backslash,
/// space or control byte. `None` when malformed or longer than `buf`.
fn unquote<'a>(value: &'a [u8], buf: &'a mut [u8; MAX_NODE]) -> Option<&'a [u8]> {
    let Some(inner) = value.strip_prefix(b"\"") else {
        let plain = |&b: &u8| b > b' ' && b != 0x7f && b != b'"' && b != b'\\';
        return (!value.is_empty() && value.iter().all(plain)).then_some(value);
    };
    let inner = inner.strip_suffix(b"\"")?;
    let mut len = 0;
    let mut bytes = inner.iter();
    while let Some(&b) = bytes.next() {
        let c = match b {
            b'\\' => *bytes.next()?,
            b'"' => return None,
            _ => b,
        };
        *buf.get_mut(len)? = c;
        len += 1;
    }
    Some(&buf[..len])
}

/// A node as RFC 7239 §6 writes it: `IPv4[:port]` or `"[" IPv6 "]"[:port]`,
/// the port digits or obfuscated (§6.3, read as 0); with `bare_v6`, also
/// an IPv6 address alone (as `X-Forwarded-For` has it). `unknown` (§6.2),
/// obfuscated names and anything else are `None`.
fn parse_node(node: &[u8], bare_v6: bool) -> Option<SocketAddr> {
    if node.len() > MAX_NODE {
        return None;
    }
    let node = std::str::from_utf8(node).ok()?;
    let (ip, port): (IpAddr, &str) = if let Some(rest) = node.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        (IpAddr::V6(v6.parse::<Ipv6Addr>().ok()?), after)
    } else if bare_v6 && node.bytes().filter(|&b| b == b':').count() > 1 {
        (IpAddr::V6(node.parse::<Ipv6Addr>().ok()?), "")
    } else {
        let (v4, after) = node.find(':').map_or((node, ""), |i| node.split_at(i));
        (IpAddr::V4(v4.parse().ok()?), after)
    };
    let port = match port {
        "" => 0,
        _ => parse_port(port.strip_prefix(':')?)?,
    };
    Some(SocketAddr::new(ip, port))
}

/// RFC 7239 §6: `port = 1*5DIGIT` (at most 65535), or an obfuscated
/// `obfport = "_" 1*(ALPHA / DIGIT / "." / "_" / "-")`, read as 0.
fn parse_port(port: &str) -> Option<u16> {
    if let Some(obfuscated) = port.strip_prefix('_') {
        let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        return (!obfuscated.is_empty() && obfuscated.bytes().all(ok)).then_some(0);
    }
    let digits = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| port.parse().ok()).flatten()
}

#[cfg(test)]
mod tests;
