//! The client side of the opening handshake (RFC 6455 §4.1): the request
//! built from a `ws://` URL, and the validation of the server's answer.

use super::accept::{accept_key, ACCEPT_LEN};
use super::error::ResponseError;
use super::http::has_token;
use crate::deflate::{validate_response as validate_deflate, DeflateParams};
use std::fmt;

/// A parsed `ws://host[:port]/path?query` or `wss://` URL (§3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// `wss://`: the connection runs over TLS (which the caller provides;
    /// the engine sees only plaintext).
    pub secure: bool,
    /// The host: a name, an IPv4 address, or an IPv6 address without brackets.
    pub host: String,
    /// The port; 80 (`ws://`) or 443 (`wss://`) when the URL has none.
    pub port: u16,
    /// Path and query, at least `/`.
    pub resource: String,
}

/// Why a URL could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError(pub &'static str);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid WebSocket URL: {}", self.0)
    }
}

impl std::error::Error for UrlError {}

impl WsUrl {
    /// Parses a `ws://` or `wss://` URL (§3).
    pub fn parse(url: &str) -> Result<WsUrl, UrlError> {
        let (secure, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "ws://") {
            (false, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(url, "wss://") {
            (true, rest)
        } else {
            return Err(UrlError("the scheme must be ws:// or wss://"));
        };
        // §3: "Fragment identifiers ... MUST NOT be used on these URIs"
        if rest.contains('#') {
            return Err(UrlError("fragments (#) are not allowed"));
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, resource) = rest.split_at(split);
        let resource = match resource {
            "" => "/".to_string(),
            r if r.starts_with('?') => format!("/{r}"),
            r => r.to_string(),
        };
        let default_port = if secure { 443 } else { 80 };
        let (host, port) = split_host_port(authority, default_port)?;
        Ok(WsUrl {
            secure,
            host,
            port,
            resource,
        })
    }

    /// The `Host` header value: the host, bracketed if IPv6, with the port
    /// unless it is the scheme's default (80, or 443 for `wss://`).
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.secure { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn split_host_port(authority: &str, default_port: u16) -> Result<(String, u16), UrlError> {
    if authority.contains('@') {
        return Err(UrlError("user information is not supported"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or(UrlError("unclosed IPv6 bracket"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError("missing host"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p.parse().map_err(|_| UrlError("invalid port"))?,
    };
    Ok((host.to_string(), port))
}

/// Appends the opening handshake request (§4.1) for `url` with `key`,
/// offering `subprotocols`, plus `extra` headers (`Name: value`, no CRLF),
/// all but the blank line that ends the head (the caller may add headers).
pub fn write_request(
    out: &mut Vec<u8>,
    url: &WsUrl,
    key: &[u8; 24],
    subprotocols: &[String],
    extra: &[String],
) {
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(url.resource.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(url.host_header().as_bytes());
    out.extend_from_slice(b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
    out.extend_from_slice(key);
    out.extend_from_slice(b"\r\nSec-WebSocket-Version: 13\r\n");
    if !subprotocols.is_empty() {
        out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
        out.extend_from_slice(subprotocols.join(", ").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for header in extra {
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// What a valid response agreed to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Agreed {
    /// The subprotocol the server chose.
    pub subprotocol: Option<String>,
    /// The permessage-deflate parameters, when the server accepted our offer.
    pub deflate: Option<DeflateParams>,
}

/// The first header named `name` (case-insensitive) of a parsed head.
pub(crate) fn header_value<'h>(headers: &[httparse::Header<'h>], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// §4.1, the client's checks 2 to 4 on a `101` answer's headers:
/// `Upgrade: websocket`, `Connection: Upgrade`, and the accept value that
/// `key` calls for. Shared with the proxy's check of an upstream's answer
/// (`upstream.rs`).
pub(crate) fn check_switching(
    headers: &[httparse::Header<'_>],
    key: &[u8],
) -> Result<(), ResponseError> {
    // 2. and 3.: Upgrade: websocket, Connection: Upgrade
    let upgrade_ok = header_value(headers, "upgrade").is_some_and(|v| has_token(v, "websocket"));
    let connection_ok =
        header_value(headers, "connection").is_some_and(|v| has_token(v, "upgrade"));
    if !upgrade_ok || !connection_ok {
        return Err(ResponseError::NotUpgrade);
    }
    // 4. the accept value must be base64(sha1(key + GUID))
    let expected: [u8; ACCEPT_LEN] = accept_key(key);
    let accept = header_value(headers, "sec-websocket-accept").map(<[u8]>::trim_ascii);
    if accept != Some(&expected[..]) {
        return Err(ResponseError::BadAccept);
    }
    Ok(())
}

/// Validates a complete response head (§4.1, "the client MUST validate the
/// server's response as follows"), given the subprotocols we offered and
/// whether we offered permessage-deflate.
pub fn validate_response(
    head: &[u8],
    key: &[u8; 24],
    offered: &[String],
    offered_deflate: bool,
) -> Result<Agreed, ResponseError> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut slots);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(ResponseError::Malformed("incomplete head")),
        Err(_) => return Err(ResponseError::Malformed("invalid HTTP response")),
    }
    // 1. "If the status code received from the server is not 101 ..."
    let status = response.code.unwrap_or(0);
    if status != 101 {
        return Err(ResponseError::Status(status));
    }
    check_switching(response.headers, key)?;
    // 5. every extension must be one we offered (RFC 7692 §7.1 for ours)
    let extensions = response
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|h| h.value);
    let deflate = validate_deflate(extensions, offered_deflate)?;
    // 6. a subprotocol must be one we offered
    let subprotocol = match header_value(response.headers, "sec-websocket-protocol") {
        None => None,
        Some(p) => {
            let p = String::from_utf8_lossy(p.trim_ascii()).into_owned();
            if !offered.contains(&p) {
                return Err(ResponseError::UnexpectedSubprotocol(p));
            }
            Some(p)
        }
    };
    Ok(Agreed {
        subprotocol,
        deflate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8; 24] = b"dGhlIHNhbXBsZSBub25jZQ==";
    const OK: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";

    fn response(extra: &str) -> Vec<u8> {
        format!("{OK}{extra}\r\n").into_bytes()
    }

    #[test]
    fn urls_parse_with_defaults() {
        let u = WsUrl::parse("ws://example.com").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.resource.as_str()),
            ("example.com", 80, "/")
        );
        let u = WsUrl::parse("WS://127.0.0.1:9001/chat?room=a").unwrap();
        assert_eq!((u.port, u.resource.as_str()), (9001, "/chat?room=a"));
        assert_eq!(u.host_header(), "127.0.0.1:9001");
        let u = WsUrl::parse("ws://[::1]:9001?x").unwrap();
        assert_eq!((u.host.as_str(), u.resource.as_str()), ("::1", "/?x"));
        assert_eq!(u.host_header(), "[::1]:9001");
        assert!(!u.secure);
    }

    #[test]
    fn wss_urls_default_to_port_443_and_leave_it_out_of_host() {
        let u = WsUrl::parse("wss://example.com/feed").unwrap();
        assert_eq!(
            (u.secure, u.port, u.host_header().as_str()),
            (true, 443, "example.com")
        );
        let u = WsUrl::parse("WSS://example.com:80").unwrap();
        assert_eq!(u.host_header(), "example.com:80", "80 is not wss' default");
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in [
            "http://a",
            "https://a",
            "ws://",
            "ws://a:99999",
            "ws://a/#frag",
            "ws://u@a",
        ] {
            assert!(WsUrl::parse(url).is_err(), "{url}");
        }
    }

    #[test]
    fn request_has_the_required_headers() {
        let url = WsUrl::parse("ws://server.example.com/chat").unwrap();
        let mut out = Vec::new();
        write_request(
            &mut out,
            &url,
            KEY,
            &["chat".into(), "superchat".into()],
            &[],
        );
        out.extend_from_slice(b"\r\n");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("GET /chat HTTP/1.1\r\nHost: server.example.com\r\n"));
        assert!(text.contains("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
        assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
        assert!(text.contains("Sec-WebSocket-Protocol: chat, superchat\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn rfc_response_is_accepted() {
        assert_eq!(
            validate_response(&response(""), KEY, &[], false),
            Ok(Agreed::default())
        );
    }

    #[test]
    fn wrong_responses_are_refused() {
        let not_101 = b"HTTP/1.1 403 Forbidden\r\n\r\n";
        assert_eq!(
            validate_response(not_101, KEY, &[], false),
            Err(ResponseError::Status(403))
        );
        let bad_accept = OK.replace("s3pP", "AAAA") + "\r\n";
        assert_eq!(
            validate_response(bad_accept.as_bytes(), KEY, &[], false),
            Err(ResponseError::BadAccept)
        );
        let no_upgrade = OK.replace("Upgrade: websocket\r\n", "") + "\r\n";
        assert_eq!(
            validate_response(no_upgrade.as_bytes(), KEY, &[], false),
            Err(ResponseError::NotUpgrade)
        );
        let ext = response("Sec-WebSocket-Extensions: permessage-deflate\r\n");
        assert!(matches!(
            validate_response(&ext, KEY, &[], false),
            Err(ResponseError::UnexpectedExtension(_))
        ));
        assert!(validate_response(b"garbage\r\n\r\n", KEY, &[], false).is_err());
    }

    #[test]
    fn subprotocol_must_be_one_we_offered() {
        let chosen = response("Sec-WebSocket-Protocol: chat\r\n");
        assert_eq!(
            validate_response(&chosen, KEY, &["chat".into()], false).map(|a| a.subprotocol),
            Ok(Some("chat".into()))
        );
        assert!(matches!(
            validate_response(&chosen, KEY, &["other".into()], false),
            Err(ResponseError::UnexpectedSubprotocol(_))
        ));
    }
}
