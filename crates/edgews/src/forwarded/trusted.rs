//! The proxies whose headers are believed: [`TrustedProxies`], a list of
//! [`ProxyNetwork`]s, as `--trusted-proxy` gives them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// One network of trusted proxies: an address and a prefix length.
///
/// Parsed from `127.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`, `[::1]` or
/// `[fd00::]/8` (a single address is a /32 or a /128). Host bits past the
/// prefix are cleared (`10.1.2.3/8` is `10.0.0.0/8`).
/// IPv4-mapped IPv6 networks (`::ffff:10.0.0.0/104`) become the IPv4
/// network they map (`10.0.0.0/8`), and [`contains`](Self::contains)
/// reads an IPv4-mapped peer (`::ffff:127.0.0.1`, which a dual-stack
/// socket reports) as its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProxyNetwork {
    /// The network's first address (host bits cleared); never IPv4-mapped
    /// IPv6 when `prefix >= 96`.
    addr: IpAddr,
    /// At most 32 for IPv4, 128 for IPv6.
    prefix: u8,
}

impl ProxyNetwork {
    /// The network of `addr`'s first `prefix` bits, or `None` when
    /// `prefix` is past the family's length (32 or 128).
    pub fn new(addr: IpAddr, prefix: u8) -> Option<ProxyNetwork> {
        match addr {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4) & v4_mask(prefix)?;
                Some(ProxyNetwork {
                    addr: IpAddr::V4(Ipv4Addr::from(bits)),
                    prefix,
                })
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix >= 96 => ProxyNetwork::new(IpAddr::V4(v4), prefix - 96),
                _ => {
                    let bits = u128::from(v6) & v6_mask(prefix)?;
                    Some(ProxyNetwork {
                        addr: IpAddr::V6(Ipv6Addr::from(bits)),
                        prefix,
                    })
                }
            },
        }
    }

    /// The network's first address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in this network; an IPv4-mapped IPv6 `ip` is read
    /// as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = v4_mask(self.prefix).unwrap_or(u32::MAX);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = v6_mask(self.prefix).unwrap_or(u128::MAX);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }
}

/// The IPv4 netmask of `prefix` bits; `None` past 32.
fn v4_mask(prefix: u8) -> Option<u32> {
    (prefix <= 32).then(|| u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0))
}

/// The IPv6 netmask of `prefix` bits; `None` past 128.
fn v6_mask(prefix: u8) -> Option<u128> {
    (prefix <= 128).then(|| u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0))
}

impl FromStr for ProxyNetwork {
    type Err = TrustedProxyError;

    /// Parses one network; see the type's docs for the forms.
    fn from_str(s: &str) -> Result<ProxyNetwork, TrustedProxyError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr = parse_addr(addr).ok_or_else(|| TrustedProxyError::Address(s.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => parse_prefix(p, max)
                .ok_or_else(|| TrustedProxyError::PrefixLength(s.to_string()))?,
        };
        ProxyNetwork::new(addr, prefix).ok_or_else(|| TrustedProxyError::PrefixLength(s.into()))
    }
}

/// An IPv4 or IPv6 address, the IPv6 one perhaps in brackets.
fn parse_addr(s: &str) -> Option<IpAddr> {
    match s.strip_prefix('[') {
        Some(rest) => Some(IpAddr::V6(rest.strip_suffix(']')?.parse().ok()?)),
        None => s.parse().ok(),
    }
}

/// Decimal digits only (no sign, no spaces), at most `max`.
fn parse_prefix(s: &str, max: u8) -> Option<u8> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&p| p <= max)
}

impl fmt::Display for ProxyNetwork {
    /// `10.0.0.0/8`, `fd00::/8`; a single address without its prefix
    /// (`127.0.0.1`, `::1`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == full {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

/// Why a string is not a trusted proxy network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedProxyError {
    /// Nothing where a network was expected (an empty string, or an empty
    /// item in a comma-separated list).
    Empty,
    /// The part before `/` is not an IPv4 or IPv6 address (an IPv6 one
    /// may be in brackets; host names, ports and zones are refused).
    Address(String),
    /// The part after `/` is not a prefix length: decimal digits, at most
    /// 32 for IPv4 and 128 for IPv6.
    PrefixLength(String),
}

impl fmt::Display for TrustedProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustedProxyError::Empty => write!(f, "empty trusted proxy address"),
            TrustedProxyError::Address(s) => write!(
                f,
                "trusted proxy {s:?} is not an IP address or network \
                 (such as 127.0.0.1, 10.0.0.0/8, ::1 or fd00::/8)"
            ),
            TrustedProxyError::PrefixLength(s) => write!(
                f,
                "trusted proxy {s:?} has a bad prefix length \
                 (0 to 32 for IPv4, 0 to 128 for IPv6)"
            ),
        }
    }
}

impl std::error::Error for TrustedProxyError {}

/// The proxies whose `Forwarded` and `X-Forwarded-For` headers edgews
/// believes. The default is empty: trust nobody, and take every TCP peer
/// as the client.
///
/// Build it from repeated `--trusted-proxy` values by collecting
/// [`ProxyNetwork`]s, or parse a comma-separated list:
///
/// ```
/// use edgews::forwarded::{ProxyNetwork, TrustedProxies};
///
/// let args = ["127.0.0.1", "10.0.0.0/8", "[::1]"];
/// let trusted: TrustedProxies = args
///     .iter()
///     .map(|a| a.parse::<ProxyNetwork>())
///     .collect::<Result<_, _>>()
///     .unwrap();
/// assert!(trusted.contains("10.1.2.3".parse().unwrap()));
/// assert!(trusted.contains("::ffff:127.0.0.1".parse().unwrap()));
/// assert_eq!(trusted.to_string(), "127.0.0.1, 10.0.0.0/8, ::1");
/// assert_eq!(trusted, "127.0.0.1, 10.0.0.0/8, ::1".parse().unwrap());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<ProxyNetwork>,
}

impl TrustedProxies {
    /// An empty list: trust nobody.
    pub fn new() -> TrustedProxies {
        TrustedProxies::default()
    }

    /// Adds a network to the list.
    pub fn push(&mut self, network: ProxyNetwork) {
        self.networks.push(network);
    }

    /// Whether the list is empty (then no header is ever believed).
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// The networks, in the order they were given.
    pub fn networks(&self) -> &[ProxyNetwork] {
        &self.networks
    }

    /// Whether `ip` is in one of the networks; an IPv4-mapped IPv6 `ip`
    /// (`::ffff:127.0.0.1`) is read as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(ip))
    }
}

impl FromStr for TrustedProxies {
    type Err = TrustedProxyError;

    /// A comma-separated list of networks (spaces around the commas are
    /// fine); an empty string, or an empty item, is an error.
    fn from_str(s: &str) -> Result<TrustedProxies, TrustedProxyError> {
        s.split(',')
            .map(str::trim)
            .map(|item| match item {
                "" => Err(TrustedProxyError::Empty),
                _ => item.parse(),
            })
            .collect()
    }
}

impl FromIterator<ProxyNetwork> for TrustedProxies {
    fn from_iter<I: IntoIterator<Item = ProxyNetwork>>(iter: I) -> TrustedProxies {
        TrustedProxies {
            networks: iter.into_iter().collect(),
        }
    }
}

impl Extend<ProxyNetwork> for TrustedProxies {
    fn extend<I: IntoIterator<Item = ProxyNetwork>>(&mut self, iter: I) {
        self.networks.extend(iter);
    }
}

impl fmt::Display for TrustedProxies {
    /// The networks separated by `, ` (which [`FromStr`] reads back);
    /// nothing when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, network) in self.networks.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{network}")?;
        }
        Ok(())
    }
}
