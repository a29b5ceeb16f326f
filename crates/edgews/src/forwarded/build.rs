//! The headers `edgews proxy` adds to the upgrade request it forwards:
//! [`forward_headers`].

use std::net::SocketAddr;

/// The request headers [`forward_headers`] writes: `Forwarded`,
/// `X-Forwarded-For` and `X-Forwarded-Proto` (case-insensitive). A proxy
/// copies every other header of the request and drops these, since
/// [`forward_headers`] writes their extended values.
pub fn is_forwarding_header(name: &str) -> bool {
    ["forwarded", "x-forwarded-for", "x-forwarded-proto"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// Appends to `out` the forwarding headers for a request that came from
/// `peer` (over TLS when `secure`) with `headers` (name, value, in order),
/// each line ending in CRLF:
///
/// ```text
/// X-Forwarded-For: <the request's X-Forwarded-For lines, ", ">peer-ip
/// X-Forwarded-Proto: http | https
/// Forwarded: <the request's Forwarded lines, ", ">for=...;proto=...;host=...
/// ```
///
/// - Both lists are extended, not replaced: the request's lines are joined
///   by `, ` (one list, RFC 7230 §3.2.2) and this hop is appended, so an
///   upstream walking right to left from its own trusted proxies (as
///   [`client_addr`](super::client_addr) does) finds the client, and a
///   client's made-up entries stay on the left where they are not believed.
/// - `X-Forwarded-For` gets the bare IP (`192.0.2.43`, `2001:db8::1`), as
///   is customary. `Forwarded` gets the node of RFC 7239 §6 with the port,
///   quoted since `:` and `[]` are not token characters (§4, §6.1):
///   `for="192.0.2.43:47011"`, `for="[2001:db8::1]:4711"` (without the
///   port when it is 0). An IPv4-mapped peer is written as IPv4.
/// - `proto` (§5.4) and `X-Forwarded-Proto` say `https` or `http`: the
///   scheme of the connection this proxy accepted. Any `X-Forwarded-Proto`
///   the request had is replaced.
/// - `host` (§5.3) is the request's first `Host`, as a token when it is
///   one and else a quoted-string (`host="example.com:8080"`); left out
///   when the request has none or it is not visible ASCII.
/// - A request line that could break the output is dropped rather than
///   copied: one holding a control byte (CR, LF, NUL, DEL, ...) or a byte
///   past ASCII, and a `Forwarded` line whose quotes do not balance (the
///   `, for=...` appended to it would be read as part of its string).
///
/// The proxy must leave the request's own `Forwarded`, `X-Forwarded-For`
/// and `X-Forwarded-Proto` lines out of what it forwards
/// ([`is_forwarding_header`]).
///
/// ```
/// use edgews::forwarded::forward_headers;
///
/// let headers = [
///     ("Host", &b"example.com"[..]),
///     ("X-Forwarded-For", b"203.0.113.9"),
/// ];
/// let mut out = Vec::new();
/// forward_headers("192.0.2.43:47011".parse().unwrap(), true, headers, &mut out);
/// assert_eq!(
///     out,
///     b"X-Forwarded-For: 203.0.113.9, 192.0.2.43\r\n\
///       X-Forwarded-Proto: https\r\n\
///       Forwarded: for=\"192.0.2.43:47011\";proto=https;host=example.com\r\n"
/// );
/// ```
pub fn forward_headers<'h, I>(peer: SocketAddr, secure: bool, headers: I, out: &mut Vec<u8>)
where
    I: IntoIterator<Item = (&'h str, &'h [u8])>,
{
    let mut host = None;
    let mut xff = Vec::new();
    let mut forwarded = Vec::new();
    for (name, value) in headers {
        let value = super::trim_ows(value);
        if name.eq_ignore_ascii_case("host") {
            host = host.or(Some(value));
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            xff.extend(Some(value).filter(|v| is_safe_line(v)));
        } else if name.eq_ignore_ascii_case("forwarded") {
            forwarded.extend(Some(value).filter(|v| is_safe_line(v) && quotes_balance(v)));
        }
    }
    let ip = peer.ip().to_canonical();
    let proto: &[u8] = if secure { b"https" } else { b"http" };

    out.extend_from_slice(b"X-Forwarded-For: ");
    extend_list(out, &xff);
    out.extend_from_slice(ip.to_string().as_bytes());
    out.extend_from_slice(b"\r\nX-Forwarded-Proto: ");
    out.extend_from_slice(proto);

    out.extend_from_slice(b"\r\nForwarded: ");
    extend_list(out, &forwarded);
    out.extend_from_slice(b"for=");
    let node = match (ip, peer.port()) {
        (ip, 0) if ip.is_ipv4() => ip.to_string(),
        (ip, 0) => format!("\"[{ip}]\""),
        (ip, port) => format!("\"{}\"", SocketAddr::new(ip, port)),
    };
    out.extend_from_slice(node.as_bytes());
    out.extend_from_slice(b";proto=");
    out.extend_from_slice(proto);
    if let Some(host) = host.filter(|h| !h.is_empty() && h.iter().all(u8::is_ascii_graphic)) {
        out.extend_from_slice(b";host=");
        extend_value(out, host);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends each of `lines` followed by `, `.
fn extend_list(out: &mut Vec<u8>, lines: &[&[u8]]) {
    for line in lines {
        out.extend_from_slice(line);
        out.extend_from_slice(b", ");
    }
}

/// Appends `value` (visible ASCII) as a token if it is one, else as a
/// quoted-string with `"` and `\` escaped (RFC 7230 §3.2.6).
fn extend_value(out: &mut Vec<u8>, value: &[u8]) {
    if value.iter().all(|&b| is_tchar(b)) {
        out.extend_from_slice(value);
        return;
    }
    out.push(b'"');
    for &b in value {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// RFC 7230 §3.2.6: the characters of a token.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A non-empty line of visible ASCII, spaces and tabs only.
fn is_safe_line(line: &[u8]) -> bool {
    !line.is_empty()
        && line
            .iter()
            .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// Whether a left-to-right read of `line` ends outside a quoted string
/// (a backslash inside one escapes the next byte).
fn quotes_balance(line: &[u8]) -> bool {
    let mut quoted = false;
    let mut bytes = line.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'"' => quoted = !quoted,
            b'\\' if quoted => {
                bytes.next();
            }
            _ => {}
        }
    }
    !quoted
}
