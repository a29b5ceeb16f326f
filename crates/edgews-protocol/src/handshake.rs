//! The server side of the opening handshake (RFC 6455 §4.2): a validated
//! request, the `101 Switching Protocols` answer, or an HTTP rejection.

use super::accept::{accept_key, is_valid_key, ACCEPT_LEN};
use super::error::HandshakeError;
use super::headers::Headers;
use super::http::write_response;
use super::upgrade_headers::UpgradeHeaders;
use crate::config::ProtocolConfig;
use std::fmt;
use std::mem::MaybeUninit;

/// Which `Origin` headers the server accepts. RFC 6455 §10.2: the origin
/// model protects against "unauthorized cross-origin use of a WebSocket
/// server by scripts using the WebSocket API in a web browser".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum OriginPolicy {
    /// The default: a request without `Origin` (a non-browser client) is
    /// accepted; with one, the origin's host and port must equal the `Host`
    /// header's, as gorilla/websocket does. This stops cross-site WebSocket
    /// hijacking by pages on other sites.
    #[default]
    SameHost,
    /// Only these origins (`https://example.com`, compared without regard to
    /// case) or hosts (`example.com:8080`) are accepted; requests without
    /// `Origin` are accepted too.
    AllowList(Vec<String>),
    /// Any origin is accepted. Only for servers that authenticate each
    /// connection some other way.
    AllowAny,
}

/// An HTTP request head, borrowed from the bytes it was parsed from.
///
/// Its `Debug` form is safe to log: it shows the path without the query
/// (which may carry `?token=`) and hides the values of credential headers
/// (`Authorization`, `Cookie`, `Proxy-Authorization`).
#[derive(Clone)]
pub struct Request<'a> {
    /// The method, e.g. `GET`.
    pub method: &'a str,
    /// The request target: path and query, e.g. `/chat?room=a`.
    pub target: &'a str,
    /// The headers in arrival order, names as sent.
    pub headers: Headers<'a>,
    /// For an upgrade: the subprotocol the server chose (the first of its
    /// configured list that the client offered), if any.
    pub subprotocol: Option<&'a str>,
}

/// Headers whose values are credentials, never printed.
const SECRET_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match self.query() {
            Some(_) => format!("{}?<query hidden>", self.path()),
            None => self.path().to_string(),
        };
        let headers: Vec<(&str, String)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = if SECRET_HEADERS.iter().any(|s| name.eq_ignore_ascii_case(s)) {
                    "<hidden>".to_string()
                } else {
                    String::from_utf8_lossy(value).into_owned()
                };
                (name, shown)
            })
            .collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("target", &target)
            .field("headers", &headers)
            .field("subprotocol", &self.subprotocol)
            .finish()
    }
}

impl<'a> Request<'a> {
    /// The path, without the query. An absolute-form target
    /// (`http://host/chat`, allowed by §4.2.1 item 1) gives its path.
    pub fn path(&self) -> &'a str {
        let target = self.target;
        let lower = target
            .get(..8)
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let resource = if lower.starts_with("http://") || lower.starts_with("https://") {
            let after_scheme = &target[target.find("://").map_or(0, |i| i + 3)..];
            match after_scheme.find(['/', '?']) {
                Some(i) if after_scheme[i..].starts_with('/') => &after_scheme[i..],
                _ => "/",
            }
        } else {
            target
        };
        resource.split('?').next().unwrap_or(resource)
    }

    /// The query string after `?`, if any.
    pub fn query(&self) -> Option<&'a str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The first header named `name` as text, if it is UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&'a str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// All values of the headers named `name`.
    pub fn header_all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The extensions the client offered (`Sec-WebSocket-Extensions`, §9.1).
    pub fn extensions(&self) -> Vec<Extension<'a>> {
        self.header_all("sec-websocket-extensions")
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .filter_map(Extension::parse)
            .collect()
    }
}

/// One offered extension: its name and parameters (`permessage-deflate;
/// client_max_window_bits`). edgews accepts permessage-deflate when its
/// configuration enables it (`ProtocolConfig::deflate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension<'a> {
    /// The extension token.
    pub name: &'a str,
    /// Parameters as `(name, value)`; values lose their quotes.
    pub params: Vec<(&'a str, Option<&'a str>)>,
}

impl<'a> Extension<'a> {
    pub(crate) fn parse(item: &'a str) -> Option<Self> {
        let mut parts = item.split(';').map(str::trim);
        let name = parts.next().filter(|n| !n.is_empty())?;
        let params = parts
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
                None => (p, None),
            })
            .collect();
        Some(Extension { name, params })
    }
}

/// What a complete request head turned out to be.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// A valid WebSocket upgrade, with the `Sec-WebSocket-Accept` value.
    Upgrade(Request<'a>, [u8; ACCEPT_LEN]),
    /// A plain HTTP request (no `Upgrade: websocket`, no key).
    Http(Request<'a>),
}

/// Header slots `parse_request` keeps on the stack: the default
/// `max_headers` (2 KiB). Left uninitialized: httparse writes the ones it
/// fills, so an upgrade does not clear 2 KiB first.
const STACK_HEADERS: usize = 64;

/// Parses and validates a complete request head (ending in `\r\n\r\n`).
pub fn parse_request<'a>(
    head: &'a [u8],
    config: &ProtocolConfig,
) -> Result<Parsed<'a>, HandshakeError> {
    if head.len() > config.max_head_size {
        return Err(HandshakeError::HeadTooLarge);
    }
    match parse_prefix(head, config) {
        Ok(Some((_, parsed))) => parsed,
        Ok(None) => Err(HandshakeError::Malformed("incomplete head")),
        Err(e) => Err(e),
    }
}

/// A server's first look at its input: when `input` starts with a whole
/// head, parsed and validated in one go, without looking for its end
/// first (`HeadScanner`). Returns the head's length and what it is.
///
/// Only where the answer is the one the scanner's path gives: the head
/// ends in `\r\n\r\n`, and no empty line comes before the request line
/// (which httparse skips, RFC 7230 §3.5). Then this `\r\n\r\n` is the
/// first in `input`: before the head's end, a CR appears only as a line's
/// end (httparse allows it nowhere else in a request head), and a line
/// end followed by another is the end. `None` otherwise (an incomplete or
/// invalid head, one ending in bare line feeds, one over
/// `max_head_size`): the caller takes the scanner's path.
pub(crate) fn parse_leading_head<'a>(
    input: &'a [u8],
    config: &ProtocolConfig,
) -> Option<WholeHead<'a>> {
    if matches!(input.first(), None | Some(b'\r' | b'\n')) {
        return None;
    }
    match parse_prefix(input, config) {
        Ok(Some((len, parsed)))
            if len <= config.max_head_size && input[..len].ends_with(b"\r\n\r\n") =>
        {
            Some((len, parsed))
        }
        _ => None,
    }
}

/// A whole head's length and what it is (or why it is refused).
type WholeHead<'a> = (usize, Result<Parsed<'a>, HandshakeError>);

/// Parses the head at the start of `input` with httparse: `Ok(None)` while
/// incomplete, `Err` when httparse refuses it, and for a whole head its
/// length and the validated request (or why it is refused).
fn parse_prefix<'a>(
    input: &'a [u8],
    config: &ProtocolConfig,
) -> Result<Option<WholeHead<'a>>, HandshakeError> {
    // the header slots on the stack at the default limit (no allocation
    // per upgrade); a larger configured limit gets them from the heap
    let mut on_stack = [const { MaybeUninit::<httparse::Header<'a>>::uninit() }; STACK_HEADERS];
    let mut on_heap = Vec::new();
    let slots = if config.max_headers <= STACK_HEADERS {
        &mut on_stack[..config.max_headers]
    } else {
        on_heap.resize_with(config.max_headers, MaybeUninit::uninit);
        &mut on_heap[..]
    };
    let mut parsed = httparse::Request::new(&mut []);
    let head_len = match parsed.parse_with_uninit_headers(input, slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
        Err(_) => return Err(HandshakeError::Malformed("invalid HTTP request")),
    };
    Ok(Some((head_len, validate(input, head_len, &parsed, config))))
}

/// What a whole head parsed by httparse is: an upgrade, checked, or a
/// plain request.
fn validate<'a>(
    input: &'a [u8],
    head_len: usize,
    parsed: &httparse::Request<'_, 'a>,
    config: &ProtocolConfig,
) -> Result<Parsed<'a>, HandshakeError> {
    // the checked headers straight from httparse's slots; the request
    // keeps only where its header lines lie (no list per request)
    let found = UpgradeHeaders::scan(parsed.headers.iter().map(|h| (h.name, h.value)));
    let lines = match parsed.headers.first() {
        Some(first) => (first.name.as_ptr() as usize)
            .checked_sub(input.as_ptr() as usize)
            .and_then(|at| input.get(at..head_len))
            .unwrap_or_default(),
        None => &[],
    };
    let mut request = Request {
        method: parsed.method.unwrap_or_default(),
        target: parsed.path.unwrap_or_default(),
        headers: Headers::from_head(lines, parsed.headers.len()),
        subprotocol: None,
    };
    check_host(&found, &config.allowed_hosts)?;
    if !found.first_upgrade_websocket && found.key.is_none() {
        return Ok(Parsed::Http(request));
    }
    // §4.2.1: "An HTTP/1.1 or higher GET request"
    if request.method != "GET" {
        return Err(HandshakeError::MethodNotAllowed);
    }
    if parsed.version != Some(1) {
        return Err(HandshakeError::HttpVersion);
    }
    let accept = validate_upgrade(&found, config)?;
    request.subprotocol = choose_subprotocol(&request, &config.subprotocols);
    Ok(Parsed::Upgrade(request, accept))
}

/// Checks the headers §4.2.1 requires; returns the accept value.
fn validate_upgrade(
    found: &UpgradeHeaders<'_>,
    config: &ProtocolConfig,
) -> Result<[u8; ACCEPT_LEN], HandshakeError> {
    // §11.3.1: Sec-WebSocket-Key "MUST NOT appear more than once";
    // RFC 7230 §5.4: more than one Host is answered with 400.
    if found.keys > 1 {
        return Err(HandshakeError::BadHeader(
            "duplicate Sec-WebSocket-Key header",
        ));
    }
    if found.hosts > 1 {
        return Err(HandshakeError::BadHeader("duplicate Host header"));
    }
    // §4.2.1 item 2: "A |Host| header field containing the server's authority."
    let host = found
        .host
        .filter(|h| !h.is_empty())
        .ok_or(HandshakeError::BadHeader("missing Host header"))?;
    // item 3: "An |Upgrade| header field containing the value "websocket""
    if !found.upgrade_websocket {
        return Err(HandshakeError::BadHeader(
            "Upgrade header must contain websocket",
        ));
    }
    // item 4: "A |Connection| header field that includes the token "Upgrade""
    if !found.connection_upgrade {
        return Err(HandshakeError::BadHeader(
            "Connection header must contain Upgrade",
        ));
    }
    // item 6: "A |Sec-WebSocket-Version| header field, with a value of 13."
    match found.version {
        None => {
            return Err(HandshakeError::BadHeader(
                "missing Sec-WebSocket-Version header",
            ))
        }
        Some(v) if v.trim_ascii() != b"13" => return Err(HandshakeError::UnsupportedVersion),
        Some(_) => {}
    }
    // item 5: "a base64-encoded value that, when decoded, is 16 bytes in length"
    let key = found
        .key
        .ok_or(HandshakeError::BadHeader(
            "missing Sec-WebSocket-Key header",
        ))?
        .trim_ascii();
    if !is_valid_key(key) {
        return Err(HandshakeError::BadKey);
    }
    if let Some(origin) = found.origin {
        if !origin_allowed(origin, host, &config.origin) {
            return Err(HandshakeError::OriginRefused);
        }
    }
    Ok(accept_key(key))
}

/// Applies the `Host` allowlist (`ProtocolConfig::allowed_hosts`) to any
/// request, upgrade or not: an entry with a port must equal the `Host`
/// header; one without matches that host on any port (case-insensitive).
fn check_host(found: &UpgradeHeaders<'_>, allowed: &[String]) -> Result<(), HandshakeError> {
    if allowed.is_empty() {
        return Ok(());
    }
    let (Some(host), 1) = (found.host, found.hosts) else {
        return Err(HandshakeError::HostNotAllowed);
    };
    let host = host.trim_ascii();
    let name = host_without_port(host);
    let matches = |entry: &String| {
        let entry = entry.trim().as_bytes();
        entry.eq_ignore_ascii_case(host)
            || (host_without_port(entry) == entry && entry.eq_ignore_ascii_case(name))
    };
    if allowed.iter().any(matches) {
        Ok(())
    } else {
        Err(HandshakeError::HostNotAllowed)
    }
}

/// `host:port` without `:port`; `[v6]:port` without `:port`.
fn host_without_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        return match host.iter().position(|&b| b == b']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(colon) => &host[..colon],
        None => host,
    }
}

/// Applies the origin policy to an `Origin` header value.
fn origin_allowed(origin: &[u8], host: &[u8], policy: &OriginPolicy) -> bool {
    let authority = origin_authority(origin);
    match policy {
        OriginPolicy::AllowAny => true,
        OriginPolicy::SameHost => {
            authority.is_some_and(|a| a.eq_ignore_ascii_case(host.trim_ascii()))
        }
        OriginPolicy::AllowList(list) => list.iter().any(|allowed| {
            let allowed = allowed.as_bytes();
            allowed.eq_ignore_ascii_case(origin.trim_ascii())
                || authority.is_some_and(|a| a.eq_ignore_ascii_case(allowed))
        }),
    }
}

/// The `host[:port]` part of `scheme://host[:port]`; `None` for `null`.
fn origin_authority(origin: &[u8]) -> Option<&[u8]> {
    let origin = origin.trim_ascii();
    let start = origin.windows(3).position(|w| w == b"://")? + 3;
    let rest = &origin[start..];
    let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
    Some(&rest[..end]).filter(|a| !a.is_empty())
}

/// The first configured subprotocol that the client offered (§4.2.2 item 5).
fn choose_subprotocol<'a>(request: &Request<'a>, configured: &[String]) -> Option<&'a str> {
    if configured.is_empty() {
        return None; // no need to look for the client's offer
    }
    let offered: Vec<&'a str> = request
        .header_all("sec-websocket-protocol")
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    configured
        .iter()
        .find_map(|want| offered.iter().copied().find(|o| o == want))
}

/// Appends the `101 Switching Protocols` answer (§4.2.2 item 5).
/// With `extensions`, the `Sec-WebSocket-Extensions` answer (§9.1).
pub fn write_accept(
    out: &mut Vec<u8>,
    accept: &[u8; ACCEPT_LEN],
    subprotocol: Option<&str>,
    extensions: Option<&str>,
) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept);
    out.extend_from_slice(b"\r\n");
    if let Some(p) = subprotocol {
        out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
        out.extend_from_slice(p.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(e) = extensions {
        out.extend_from_slice(b"Sec-WebSocket-Extensions: ");
        out.extend_from_slice(e.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends the HTTP response that refuses a handshake: the error's status,
/// a one-line reason as the body, and for 426 the version we speak (§4.4).
pub fn write_rejection(out: &mut Vec<u8>, error: &HandshakeError) {
    let status = error.status();
    let retry_after;
    let retry_header: [&str; 1];
    let extra: &[&str] = match error {
        _ if status == 426 => &["Upgrade: websocket", "Sec-WebSocket-Version: 13"],
        // RFC 6585 §4: a 429 "MAY include a Retry-After header"
        HandshakeError::TooManyRequests { retry_after_secs } => {
            retry_after = format!("Retry-After: {}", (*retry_after_secs).max(1));
            retry_header = [retry_after.as_str()];
            &retry_header
        }
        _ => &[],
    };
    let body = format!("{error}\n");
    write_response(
        out,
        status,
        "text/plain; charset=utf-8",
        extra,
        body.as_bytes(),
    );
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "leading_head_tests.rs"]
mod leading_head_tests;
