//! Query strings: one value, percent-decoded; and the token a request
//! carries. The one place the server apps (chat, token checks) read them, so
//! they agree on decoding and on what counts as a token.

use crate::protocol::Request;

/// The token a request carries: `Authorization: Bearer TOKEN`, else the
/// `token` query parameter (percent-decoded; browsers cannot set headers on
/// a WebSocket). An empty token, another scheme, or a value that is not
/// UTF-8 is no token.
pub fn request_token(request: &Request<'_>) -> Option<String> {
    if let Some(value) = request.header_str("authorization") {
        let (scheme, token) = value.trim().split_once(' ')?;
        let token = token.trim();
        return (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
            .then(|| token.to_string());
    }
    query_param(request.query()?, "token")?
        .ok()
        .filter(|t| !t.is_empty())
}

/// The value of `key` in a query string, percent-decoded (`+` is a space);
/// `None` when absent, `Err` when it is not UTF-8.
pub fn query_param(query: &str, key: &str) -> Option<Result<String, String>> {
    let raw = query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })?;
    Some(percent_decode(raw).ok_or_else(|| format!("{key} is not valid UTF-8")))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// A GET request for `target`, with an `Authorization` header when `auth`
/// is given (for the token tests here and in `auth.rs`).
#[cfg(test)]
pub(crate) fn request<'a>(target: &'a str, auth: Option<&'a str>) -> Request<'a> {
    Request {
        method: "GET",
        target,
        headers: auth
            .map(|a| vec![("Authorization", a.as_bytes())])
            .unwrap_or_default()
            .into(),
        subprotocol: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_comes_from_a_bearer_header_or_the_query_never_empty() {
        assert_eq!(
            request_token(&request("/", Some("Bearer a.b.c"))),
            Some("a.b.c".into())
        );
        assert_eq!(
            request_token(&request("/", Some("bearer  a.b.c "))),
            Some("a.b.c".into())
        );
        assert_eq!(
            request_token(&request("/?token=a%2Eb.c", None)),
            Some("a.b.c".into())
        );
        assert_eq!(
            request_token(&request("/?room=r&token=x", None)),
            Some("x".into())
        );
        for (target, auth) in [
            ("/?token=", None),
            ("/", None),
            ("/?tokens=x", None),
            ("/?token=%ff", None),
            ("/?token=x", Some("Basic dXNlcg==")),
            ("/", Some("Bearer ")),
        ] {
            assert_eq!(
                request_token(&request(target, auth)),
                None,
                "{target} {auth:?}"
            );
        }
    }

    #[test]
    fn query_values_are_percent_decoded() {
        let q = "room=caf%C3%A9+au+lait&name=a%2Bb&x&token=";
        assert_eq!(query_param(q, "room"), Some(Ok("café au lait".into())));
        assert_eq!(query_param(q, "name"), Some(Ok("a+b".into())));
        assert_eq!(query_param(q, "x"), Some(Ok(String::new())));
        assert_eq!(query_param(q, "token"), Some(Ok(String::new())));
        assert_eq!(query_param(q, "nope"), None);
        assert_eq!(query_param("a=%zz%4", "a"), Some(Ok("%zz%4".into())));
        assert_eq!(query_param("a=%+1%-1", "a"), Some(Ok("% 1%-1".into())));
        assert!(query_param("a=%ff", "a").unwrap().is_err());
    }
}
