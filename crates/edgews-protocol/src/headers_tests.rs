use super::*;
use crate::config::ProtocolConfig;
use crate::handshake::{parse_request, Parsed};
use proptest::prelude::*;

/// The headers `parse_request` hands on, as pairs.
fn parsed_headers(head: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let request = match parse_request(head, &ProtocolConfig::default()).ok()? {
        Parsed::Upgrade(request, _) | Parsed::Http(request) => request,
    };
    let fields: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_vec()))
        .collect();
    assert_eq!(
        fields.len(),
        request.headers.len(),
        "len() counts the fields"
    );
    Some(fields)
}

/// What httparse itself finds in `head`, when it accepts a complete head.
fn httparse_headers(head: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut slots);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => Some(
            request
                .headers
                .iter()
                .map(|h| (h.name.to_string(), h.value.to_vec()))
                .collect(),
        ),
        _ => None,
    }
}

fn pairs(list: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_vec()))
        .collect()
}

#[test]
fn fields_are_read_back_as_httparse_gives_them() {
    let head = b"GET /chat HTTP/1.1\r\nHost: a.example\r\nX-Empty:\r\nX-Tabs:\t \tv  a\t \r\n\
                 x-lower:v\r\nX-Obs: \xe9t\xe9\r\n\r\nbody after the head";
    let want = pairs(&[
        ("Host", b"a.example"),
        ("X-Empty", b""),
        ("X-Tabs", b"v  a"),
        ("x-lower", b"v"),
        ("X-Obs", b"\xe9t\xe9"),
    ]);
    assert_eq!(httparse_headers(head), Some(want.clone()));
    assert_eq!(parsed_headers(head), Some(want));
}

#[test]
fn bare_line_feeds_and_leading_blank_lines_are_read_like_httparse() {
    // httparse skips empty lines before the request line and takes LF
    // alone as a line's end
    let head = b"\r\n\nGET / HTTP/1.1\nHost: a\nUpgrade:  x \r\nB: 2\n\n";
    let want = pairs(&[("Host", b"a"), ("Upgrade", b"x"), ("B", b"2")]);
    assert_eq!(httparse_headers(head), Some(want.clone()));
    assert_eq!(parsed_headers(head), Some(want));
}

#[test]
fn a_head_without_headers_has_none() {
    let request = parse_request(b"GET / HTTP/1.1\r\n\r\n", &ProtocolConfig::default());
    let Ok(Parsed::Http(request)) = request else {
        panic!("{request:?}");
    };
    assert!(request.headers.is_empty());
    assert_eq!(request.headers.iter().count(), 0);
}

#[test]
fn a_list_given_by_hand_is_iterated_as_given() {
    let headers = Headers::from(vec![("A", &b"1"[..]), ("a", b"2")]);
    assert_eq!(headers.len(), 2);
    let got: Vec<_> = (&headers).into_iter().collect();
    assert_eq!(got, vec![("A", &b"1"[..]), ("a", &b"2"[..])]);
    assert!(Headers::default().is_empty());
}

#[test]
fn debug_shows_the_names_only() {
    let headers = Headers::from(vec![("Authorization", &b"Bearer secret"[..])]);
    let shown = format!("{headers:?}");
    assert_eq!(shown, r#"["Authorization"]"#);
}

#[test]
fn lines_that_are_not_fields_end_the_walk_without_a_panic() {
    // not what httparse hands on, but the walk must not panic on it
    for lines in [
        &b"no colon\r\n"[..],
        b"\xff\xfe: v\r\n",
        b":\r\n",
        b"A: b",
        b"",
    ] {
        let headers = Headers::from_head(lines, 3);
        let _ = headers.iter().count();
    }
    let fields: Vec<_> = Headers::from_head(b"A: 1\r\nB: 2\r\n\r\nC: 3\r\n", 9)
        .iter()
        .collect();
    assert_eq!(fields, vec![("A", &b"1"[..]), ("B", &b"2"[..])]);
}

/// A header line as a client might send it: a token name, optional
/// whitespace, a value of visible ASCII, spaces, tabs and obs-text, and
/// CRLF or LF.
fn field_line() -> impl Strategy<Value = Vec<u8>> {
    let name = proptest::collection::vec(
        prop::sample::select(b"!#$%&'*+-.^_`|~0123456789AZaz".to_vec()),
        1..8,
    );
    let ows = proptest::collection::vec(prop::sample::select(vec![b' ', b'\t']), 0..3);
    let value = proptest::collection::vec(
        prop_oneof![
            4 => 0x21u8..0x7f,
            1 => Just(b' '),
            1 => Just(b'\t'),
            1 => 0x80u8..=0xff,
        ],
        0..12,
    );
    let eol = prop::sample::select(vec![&b"\r\n"[..], b"\n"]);
    (name, ows.clone(), value, ows, eol).prop_map(|(name, before, value, after, eol)| {
        [name, b":".to_vec(), before, value, after, eol.to_vec()].concat()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever head httparse accepts, the fields read back from it are
    /// httparse's, in order, byte for byte.
    #[test]
    fn the_walk_agrees_with_httparse(
        lines in proptest::collection::vec(field_line(), 0..10),
        end in prop::sample::select(vec![&b"\r\n"[..], b"\n"]),
        body in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let head = [
            b"GET /x HTTP/1.1\r\n".to_vec(),
            lines.concat(),
            end.to_vec(),
            body,
        ]
        .concat();
        let want = httparse_headers(&head);
        prop_assert!(want.is_some(), "httparse refused {:?}", String::from_utf8_lossy(&head));
        prop_assert_eq!(parsed_headers(&head), want);
    }
}
