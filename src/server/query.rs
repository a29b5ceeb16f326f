//! Query strings: one value, percent-decoded (shared by the server apps).

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

#[cfg(test)]
mod tests {
    use super::*;

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
