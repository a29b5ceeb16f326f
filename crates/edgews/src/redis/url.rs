//! Redis URLs: `redis://[[user]:password@]host[:port][/db]`, and `rediss://`
//! for TLS (the scheme of the IANA registration and of redis-cli's `-u`).
//!
//! ```text
//! redis://localhost                     host localhost, port 6379, db 0
//! redis://:s3cret@10.0.0.5:6380/2       password "s3cret", db 2
//! rediss://app:p%40ss@cache.example/1   TLS, user "app", password "p@ss"
//! redis://[::1]:6380                    IPv6
//! ```
//!
//! The user name and password may be percent-encoded (`%40` for `@`).
//! Query strings, fragments and whitespace are refused rather than ignored.
//! [`RedisUrl`]'s `Display` and `Debug` write `***` for the password, so a
//! URL can be logged.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// The port Redis listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 6379;

/// Where a Redis server is and how to log in to it.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// `rediss://`: connect with TLS.
    pub tls: bool,
    /// A host name or an IP address; an IPv6 address without its brackets.
    pub host: String,
    /// The TCP port; [`DEFAULT_PORT`] when the URL has none.
    pub port: u16,
    /// The user for `AUTH user password` (Redis 6 ACLs); `None` for the
    /// `default` user.
    pub username: Option<String>,
    /// The password for `AUTH`, percent-decoded; `None` for no `AUTH`.
    pub password: Option<String>,
    /// The database for `SELECT`; 0 when the URL has none.
    pub db: u32,
}

impl RedisUrl {
    /// `host:port`, with brackets around an IPv6 address (`[::1]:6379`),
    /// as [`std::net::ToSocketAddrs`] takes it.
    pub fn addr_string(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Why a string is not a Redis URL we accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// Neither `redis://` nor `rediss://`.
    Scheme,
    /// A space, tab or newline anywhere.
    Whitespace,
    /// A `?query` (such as `?db=1` or `?protocol=3`).
    Query,
    /// A `#fragment`.
    Fragment,
    /// Nothing between `//` (or `@`) and the port or path.
    EmptyHost,
    /// A host with characters no host name or IP address has.
    BadHost,
    /// A port that is not a number from 1 to 65535.
    BadPort,
    /// A path that is not `/` followed by a database number.
    BadDb,
    /// A `%` not followed by two hex digits, or an escape that is not UTF-8.
    BadEscape,
    /// A user name without a password: `AUTH` needs both.
    UsernameWithoutPassword,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlError::Scheme => "redis URL must start with redis:// or rediss://",
            UrlError::Whitespace => "redis URL must not contain whitespace",
            UrlError::Query => "redis URL query strings (?...) are not supported",
            UrlError::Fragment => "redis URL fragments (#...) are not supported",
            UrlError::EmptyHost => "redis URL has no host",
            UrlError::BadHost => "redis URL host is not a host name or an IP address",
            UrlError::BadPort => "redis URL port must be a number from 1 to 65535",
            UrlError::BadDb => "redis URL path must be /N, a database number",
            UrlError::BadEscape => {
                "redis URL has a bad percent escape (% must be followed by two hex digits, UTF-8)"
            }
            UrlError::UsernameWithoutPassword => {
                "redis URL has a user name but no password (write redis://user:password@host)"
            }
        })
    }
}

impl std::error::Error for UrlError {}

impl FromStr for RedisUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.chars().any(char::is_whitespace) {
            return Err(UrlError::Whitespace);
        }
        let (tls, rest) = if let Some(rest) = strip_prefix_ignore_case(s, "redis://") {
            (false, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(s, "rediss://") {
            (true, rest)
        } else {
            return Err(UrlError::Scheme);
        };
        if rest.contains('?') {
            return Err(UrlError::Query);
        }
        if rest.contains('#') {
            return Err(UrlError::Fragment);
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        // a password may hold an unescaped '@'; the host never does
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let (username, password) = parse_userinfo(userinfo)?;
        let (host, port) = parse_hostport(hostport)?;
        Ok(RedisUrl {
            tls,
            host,
            port,
            username,
            password,
            db: parse_db(path)?,
        })
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `user:password`, `:password`, or nothing; empty parts are absent.
type Credentials = (Option<String>, Option<String>);

fn parse_userinfo(userinfo: Option<&str>) -> Result<Credentials, UrlError> {
    let Some(userinfo) = userinfo else {
        return Ok((None, None));
    };
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (userinfo, None),
    };
    let nonempty = |s: &str| -> Result<Option<String>, UrlError> {
        Ok(Some(percent_decode(s)?).filter(|s| !s.is_empty()))
    };
    let username = nonempty(user)?;
    let password = match password {
        Some(p) => nonempty(p)?,
        None => None,
    };
    if username.is_some() && password.is_none() {
        return Err(UrlError::UsernameWithoutPassword);
    }
    Ok((username, password))
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn parse_hostport(hostport: &str) -> Result<(String, u16), UrlError> {
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (v6, after) = bracketed.split_once(']').ok_or(UrlError::BadHost)?;
        v6.parse::<Ipv6Addr>().map_err(|_| UrlError::BadHost)?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(UrlError::BadHost)?),
        };
        (v6, port)
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::EmptyHost);
    }
    let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    if !hostport.starts_with('[') && !host.chars().all(name_char) {
        return Err(UrlError::BadHost);
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => parse_digits(p)
            .and_then(|n| u16::try_from(n).ok())
            .filter(|&n| n != 0)
            .ok_or(UrlError::BadPort)?,
    };
    Ok((host.to_string(), port))
}

/// `""`, `"/"` or `"/N"`, with an optional trailing `/`.
fn parse_db(path: &str) -> Result<u32, UrlError> {
    if path.is_empty() || path == "/" {
        return Ok(0);
    }
    let digits = path.strip_prefix('/').unwrap_or(path);
    let digits = digits.strip_suffix('/').unwrap_or(digits);
    parse_digits(digits)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(UrlError::BadDb)
}

/// ASCII digits only (no sign, no space), at most `u64`.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn percent_decode(s: &str) -> Result<String, UrlError> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let hi = bytes.next().and_then(hex_value);
        let lo = bytes.next().and_then(hex_value);
        match (hi, lo) {
            (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
            _ => return Err(UrlError::BadEscape),
        }
    }
    String::from_utf8(out).map_err(|_| UrlError::BadEscape)
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn percent_encode(s: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            write!(f, "{}", char::from(b))?;
        } else {
            write!(f, "%{b:02X}")?;
        }
    }
    Ok(())
}

/// `redis://user:***@host:port/db`: the password is never written.
impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.tls { "rediss://" } else { "redis://" })?;
        if let Some(user) = &self.username {
            percent_encode(user, f)?;
        }
        if self.password.is_some() {
            f.write_str(":***")?;
        }
        if self.username.is_some() || self.password.is_some() {
            f.write_str("@")?;
        }
        write!(f, "{}/{}", self.addr_string(), self.db)
    }
}

/// Like `Display`: the password shows as `***`.
impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisUrl")
            .field("tls", &self.tls)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("db", &self.db)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> RedisUrl {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn refuse(s: &str) -> UrlError {
        s.parse::<RedisUrl>().expect_err(s)
    }

    #[test]
    fn a_bare_host_gets_the_default_port_and_db_0() {
        let url = parse("redis://localhost");
        assert_eq!(
            (url.tls, url.host.as_str(), url.port, url.db),
            (false, "localhost", 6379, 0)
        );
        assert_eq!((url.username, url.password), (None, None));
        assert_eq!(parse("redis://localhost/"), parse("redis://localhost"));
    }

    #[test]
    fn port_and_db_are_read() {
        let url = parse("redis://10.0.0.5:6380/2");
        assert_eq!((url.host.as_str(), url.port, url.db), ("10.0.0.5", 6380, 2));
        assert_eq!(parse("redis://h:1/3/").db, 3);
        assert_eq!(parse("redis://h:65535").port, 65535);
    }

    #[test]
    fn a_password_alone_and_a_user_with_a_password_are_read() {
        let url = parse("redis://:s3cret@cache:6380/1");
        assert_eq!(
            (url.username, url.password.as_deref()),
            (None, Some("s3cret"))
        );
        let url = parse("redis://app:pw@cache:6380/3");
        assert_eq!(url.username.as_deref(), Some("app"));
        assert_eq!((url.password.as_deref(), url.db), (Some("pw"), 3));
        assert_eq!(parse("redis://:@h").password, None);
    }

    #[test]
    fn user_and_password_are_percent_decoded() {
        let url = parse("redis://a%20b:p%40ss%3Aw%2f%C3%A9@h");
        assert_eq!(url.username.as_deref(), Some("a b"));
        assert_eq!(url.password.as_deref(), Some("p@ss:w/é"));
        assert_eq!(parse("redis://:p@ss@h").password.as_deref(), Some("p@ss"));
    }

    #[test]
    fn rediss_means_tls() {
        let url = parse("rediss://:pw@cache.example.com:6380/0");
        assert!(url.tls);
        assert_eq!(url.host, "cache.example.com");
        assert!(parse("REDIS://h").port == 6379 && !parse("Redis://h").tls);
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        let url = parse("redis://[::1]:6380");
        assert_eq!((url.host.as_str(), url.port), ("::1", 6380));
        assert_eq!(url.addr_string(), "[::1]:6380");
        assert_eq!(parse("redis://[fe80::1]").addr_string(), "[fe80::1]:6379");
        assert_eq!(parse("redis://h:7").addr_string(), "h:7");
    }

    #[test]
    fn addr_string_resolves_with_to_socket_addrs() {
        use std::net::ToSocketAddrs;
        for s in ["redis://127.0.0.1:6380", "redis://[::1]:6380"] {
            let addr = parse(s)
                .addr_string()
                .to_socket_addrs()
                .unwrap()
                .next()
                .unwrap();
            assert_eq!(addr.port(), 6380);
        }
    }

    #[test]
    fn other_schemes_are_refused() {
        for s in [
            "http://h",
            "redis:/h",
            "h:6379",
            "",
            "unix:///tmp/redis.sock",
            "redis+tls://h",
        ] {
            assert_eq!(refuse(s), UrlError::Scheme, "{s}");
        }
        assert_eq!(
            UrlError::Scheme.to_string(),
            "redis URL must start with redis:// or rediss://"
        );
    }

    #[test]
    fn an_empty_host_is_refused() {
        for s in [
            "redis://",
            "redis:///1",
            "redis://:6379",
            "redis://:pw@",
            "redis://:pw@:1/0",
        ] {
            assert_eq!(refuse(s), UrlError::EmptyHost, "{s}");
        }
    }

    #[test]
    fn bad_hosts_are_refused() {
        for s in [
            "redis://[::1",
            "redis://[nope]:1",
            "redis://[::1]x",
            "redis://a:1:2",
            "redis://a%41",
        ] {
            assert!(
                matches!(refuse(s), UrlError::BadHost | UrlError::BadPort),
                "{s}"
            );
        }
        assert_eq!(refuse("redis://h,i"), UrlError::BadHost);
    }

    #[test]
    fn bad_ports_are_refused() {
        for s in [
            "redis://h:",
            "redis://h:0",
            "redis://h:65536",
            "redis://h:-1",
            "redis://h:+1",
            "redis://h:x",
        ] {
            assert_eq!(refuse(s), UrlError::BadPort, "{s}");
        }
    }

    #[test]
    fn a_db_that_is_not_a_number_is_refused() {
        for s in [
            "redis://h/x",
            "redis://h/-1",
            "redis://h/1/2",
            "redis://h//",
            "redis://h/4294967296",
        ] {
            assert_eq!(refuse(s), UrlError::BadDb, "{s}");
        }
    }

    #[test]
    fn query_strings_fragments_and_whitespace_are_refused() {
        assert_eq!(refuse("redis://h/0?protocol=3"), UrlError::Query);
        assert_eq!(refuse("redis://h?db=1"), UrlError::Query);
        assert!(UrlError::Query.to_string().contains("not supported"));
        assert_eq!(refuse("redis://h#x"), UrlError::Fragment);
        for s in [
            " redis://h",
            "redis://h ",
            "redis://h\n",
            "redis://:p w@h",
            "redis://h\t:1",
        ] {
            assert_eq!(refuse(s), UrlError::Whitespace, "{s:?}");
        }
    }

    #[test]
    fn bad_escapes_and_a_user_without_password_are_refused() {
        for s in [
            "redis://:%4@h",
            "redis://:%zz@h",
            "redis://:%ff@h",
            "redis://:%@h",
        ] {
            assert_eq!(refuse(s), UrlError::BadEscape, "{s}");
        }
        assert_eq!(refuse("redis://app@h"), UrlError::UsernameWithoutPassword);
        assert_eq!(refuse("redis://app:@h"), UrlError::UsernameWithoutPassword);
    }

    #[test]
    fn display_and_debug_never_show_the_password() {
        let url = parse("rediss://app:s3cret@cache:6380/3");
        assert_eq!(url.to_string(), "rediss://app:***@cache:6380/3");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(
            parse("redis://:s3cret@h:1/2").to_string(),
            "redis://:***@h:1/2"
        );
        assert_eq!(parse("redis://[::1]").to_string(), "redis://[::1]:6379/0");
    }

    #[test]
    fn display_parses_back_with_the_password_masked() {
        for s in [
            "redis://h",
            "rediss://a%40b:pw@[::1]:7/9",
            "redis://:pw@h/1",
        ] {
            let url = parse(s);
            let shown = parse(&url.to_string());
            assert_eq!(shown.username, url.username);
            assert_eq!(
                shown.password,
                url.password.as_ref().map(|_| "***".to_string())
            );
            assert_eq!(
                (shown.tls, shown.host, shown.port, shown.db),
                (url.tls, url.host, url.port, url.db)
            );
        }
    }
}
