//! The opening handshake as a proxy relays it: the client's upgrade
//! request passed on to an upstream server, and the upstream's answer read
//! back (RFC 6455 §4.1, §4.2.2).
//!
//! The client's `Sec-WebSocket-Key` goes upstream unchanged, so the
//! upstream's `Sec-WebSocket-Accept` is the one the client expects; the
//! offered subprotocols and extensions go unchanged too, so both are
//! negotiated end to end and the frames between need no re-encoding.

use super::client_handshake::{check_switching, header_value};
use super::error::ResponseError;
use super::handshake::Request;

/// Headers not passed upstream: the forwarding headers (the proxy writes
/// them again, extended with its own hop) and the proxy's own credentials.
const DROPPED: [&str; 4] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "forwarded",
    "proxy-authorization",
];

/// The most headers an upstream's answer may have.
const MAX_HEADERS: usize = 64;

/// Appends the request to send upstream: the client's request line and
/// headers (less [`DROPPED`]), then `forwarding` (whole header lines, each
/// ending in CRLF), then the blank line.
pub fn write_request(out: &mut Vec<u8>, request: &Request<'_>, forwarding: &[u8]) {
    out.extend_from_slice(request.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(request.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &request.headers {
        if DROPPED.iter().any(|d| name.eq_ignore_ascii_case(d)) {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(forwarding);
    out.extend_from_slice(b"\r\n");
}

/// What the upstream answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The head has not fully arrived.
    Partial,
    /// `101 Switching Protocols`, valid for the client's key; the head is
    /// `head_len` bytes, and frames may follow it.
    Switching {
        /// The length of the response head.
        head_len: usize,
        /// The subprotocol the upstream chose (one the client offered).
        subprotocol: Option<String>,
        /// The upstream's `Sec-WebSocket-Extensions`, as sent (joined).
        extensions: Option<String>,
    },
    /// Any other status: the upstream refused the upgrade (or answered a
    /// plain request, such as a health check).
    Status(u16),
    /// Not a valid answer to the client's request: a proxy says 502.
    Invalid(&'static str),
}

/// Reads the upstream's answer from the front of `buf`, for a request
/// whose key was `key` and which offered `offered` subprotocols.
pub fn read_answer(buf: &[u8], key: &[u8], offered: &[&str]) -> Answer {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Answer::Partial,
        Err(_) => return Answer::Invalid("malformed HTTP response"),
    };
    let status = response.code.unwrap_or(0);
    if status != 101 {
        return Answer::Status(status);
    }
    // §4.1, the client's checks 2 to 4
    match check_switching(response.headers, key) {
        Ok(()) => {}
        Err(ResponseError::BadAccept) => return Answer::Invalid("wrong Sec-WebSocket-Accept"),
        Err(_) => return Answer::Invalid("101 without Upgrade: websocket"),
    }
    // check 6: a subprotocol must be one the client offered
    let protocol = header_value(response.headers, "sec-websocket-protocol");
    let subprotocol = match protocol.map(std::str::from_utf8) {
        None => None,
        Some(Ok(p)) if offered.contains(&p.trim()) => Some(p.trim().to_string()),
        Some(_) => return Answer::Invalid("a subprotocol the client did not offer"),
    };
    let extensions: Vec<&str> = response
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .collect();
    let extensions = (!extensions.is_empty()).then(|| extensions.join(", "));
    Answer::Switching {
        head_len,
        subprotocol,
        extensions,
    }
}

/// The RSV bits frames may carry under the agreed `extensions` (§5.2):
/// RSV1 for permessage-deflate (RFC 7692 §6); all three for an extension
/// the relay does not know, whose frames only the endpoints can judge.
pub fn allowed_rsv(extensions: Option<&str>) -> u8 {
    let Some(extensions) = extensions else {
        return 0;
    };
    let mut rsv = 0;
    for extension in extensions.split(',') {
        let name = extension.split(';').next().unwrap_or("").trim();
        rsv |= if name.eq_ignore_ascii_case("permessage-deflate") {
            0x4
        } else if name.is_empty() {
            0
        } else {
            0x7
        };
    }
    rsv
}

#[cfg(test)]
#[path = "upstream_tests.rs"]
mod tests;
