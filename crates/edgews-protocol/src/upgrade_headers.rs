//! The headers the opening handshake checks, found in one pass over a
//! request's headers (RFC 6455 §4.2.1, RFC 7230 §5.4) instead of one scan
//! per header name: a name is told by its length first, and compared
//! (case-insensitively) only with the one checked name of that length.
//! The scans this replaces were a tenth of a connection's user-space
//! instructions (docs/benchmarks.md, "Connection setup").

use super::http::has_token;

/// What `parse_request` needs to know of the headers: the first value of
/// each header it checks and how often `Host` and `Sec-WebSocket-Key`
/// came (each may come only once).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UpgradeHeaders<'a> {
    /// The first `Host`.
    pub host: Option<&'a [u8]>,
    /// How many `Host` headers came.
    pub hosts: u32,
    /// The first `Sec-WebSocket-Key`.
    pub key: Option<&'a [u8]>,
    /// How many `Sec-WebSocket-Key` headers came.
    pub keys: u32,
    /// The first `Upgrade` header lists `websocket`.
    pub first_upgrade_websocket: bool,
    /// Some `Upgrade` header lists `websocket` (§4.2.1 item 3).
    pub upgrade_websocket: bool,
    /// Some `Connection` header lists `Upgrade` (§4.2.1 item 4).
    pub connection_upgrade: bool,
    /// The first `Sec-WebSocket-Version` (§4.2.1 item 6).
    pub version: Option<&'a [u8]>,
    /// The first `Origin` (§4.2.1 item 7, §10.2).
    pub origin: Option<&'a [u8]>,
}

impl<'a> UpgradeHeaders<'a> {
    /// Looks at each header once.
    pub(crate) fn scan(headers: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Self {
        let mut found = UpgradeHeaders::default();
        let mut upgrades = 0u32;
        for (name, value) in headers {
            let is = |checked: &str| is_name(name, checked);
            match name.len() {
                4 if is("host") => {
                    found.hosts += 1;
                    found.host.get_or_insert(value);
                }
                6 if is("origin") => {
                    found.origin.get_or_insert(value);
                }
                7 if is("upgrade") => {
                    let websocket = has_token(value, "websocket");
                    if upgrades == 0 {
                        found.first_upgrade_websocket = websocket;
                    }
                    upgrades += 1;
                    found.upgrade_websocket |= websocket;
                }
                10 if is("connection") => {
                    found.connection_upgrade =
                        found.connection_upgrade || has_token(value, "upgrade");
                }
                17 if is("sec-websocket-key") => {
                    found.keys += 1;
                    found.key.get_or_insert(value);
                }
                21 if is("sec-websocket-version") => {
                    found.version.get_or_insert(value);
                }
                _ => {}
            }
        }
        found
    }
}

/// Whether the header name `name` is `lower` in any case, where `lower` is
/// lowercase letters and `-`, and `name` a token (RFC 7230 §3.2.6, as
/// httparse parses it). Among token bytes only `A`-`Z` and `a`-`z` become a
/// lowercase letter when bit 0x20 is set, and only `-` itself becomes `-`
/// (the other is CR), so setting that bit in the name compares exactly,
/// eight bytes at a time.
fn is_name(name: &str, lower: &str) -> bool {
    let (name, lower) = (name.as_bytes(), lower.as_bytes());
    if name.len() != lower.len() {
        return false;
    }
    let fold = |b: u8| b | 0x20;
    if name.len() < 8 {
        return name.iter().zip(lower).all(|(&n, &l)| fold(n) == l);
    }
    let word = |bytes: &[u8], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[at..at + 8]);
        u64::from_ne_bytes(w)
    };
    let folded = |at: usize| word(name, at) | 0x2020_2020_2020_2020 == word(lower, at);
    // whole words, then the last eight bytes (overlapping the one before)
    (0..name.len() / 8).all(|i| folded(i * 8)) && folded(name.len() - 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the per-name scans this pass replaced found.
    fn by_name_scans<'a>(headers: &[(&'a str, &'a [u8])]) -> UpgradeHeaders<'a> {
        let all = |name: &'static str| {
            headers
                .iter()
                .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        };
        UpgradeHeaders {
            host: all("host").next(),
            hosts: all("host").count() as u32,
            key: all("sec-websocket-key").next(),
            keys: all("sec-websocket-key").count() as u32,
            first_upgrade_websocket: all("upgrade")
                .next()
                .is_some_and(|v| has_token(v, "websocket")),
            upgrade_websocket: all("upgrade").any(|v| has_token(v, "websocket")),
            connection_upgrade: all("connection").any(|v| has_token(v, "upgrade")),
            version: all("sec-websocket-version").next(),
            origin: all("origin").next(),
        }
    }

    /// `is_name` agrees with `eq_ignore_ascii_case` on each checked name
    /// with any one byte replaced by any token byte, in any case.
    #[test]
    fn names_compare_as_case_insensitive_equality() {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        let checked = [
            "host",
            "origin",
            "upgrade",
            "connection",
            "sec-websocket-key",
            "sec-websocket-version",
        ];
        for lower in checked {
            for spelled in [lower.to_string(), lower.to_ascii_uppercase()] {
                for at in 0..spelled.len() {
                    for b in (0..=255u8).filter(|&b| token(b)) {
                        let mut name = spelled.clone().into_bytes();
                        name[at] = b;
                        let name = String::from_utf8(name).unwrap();
                        assert_eq!(
                            is_name(&name, lower),
                            name.eq_ignore_ascii_case(lower),
                            "{name}"
                        );
                    }
                }
            }
            for other in checked {
                assert_eq!(is_name(other, lower), other == lower);
            }
        }
    }

    #[test]
    fn one_pass_finds_what_a_scan_per_name_finds() {
        let names = [
            "Host",
            "HOST",
            "hosts",
            "Origin",
            "Upgrade",
            "upgradE",
            "Connection",
            "Sec-WebSocket-Key",
            "sec-websocket-key1",
            "Sec-WebSocket-Version",
            "Sec-WebSocket-Protocol",
            "X-Other",
        ];
        let values: [&[u8]; 5] = [b"websocket", b"keep-alive, Upgrade", b"h2c", b"", b"13"];
        // every sequence of up to three headers drawn from these
        let pairs: Vec<(&str, &[u8])> = names
            .iter()
            .flat_map(|&n| values.iter().map(move |&v| (n, v)))
            .collect();
        let mut seen = 0;
        for a in &pairs {
            for b in &pairs {
                for c in pairs.iter().step_by(7) {
                    for len in 0..=3 {
                        let headers = &[*a, *b, *c][..len];
                        assert_eq!(
                            UpgradeHeaders::scan(headers.iter().copied()),
                            by_name_scans(headers),
                            "{headers:?}"
                        );
                        seen += 1;
                    }
                }
            }
        }
        assert!(seen > 100_000);
    }
}
