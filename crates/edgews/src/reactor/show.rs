//! Display without `core::fmt`'s per-integer padding machinery, for what
//! every connection's log lines carry (its id and its peer's address):
//! formatting those was a tenth of a connection's user-space instructions
//! (docs/benchmarks.md, "Connection setup").

use std::fmt;
use std::net::SocketAddr;

/// Writes `v` in decimal at the start of `out`; returns the digits written
/// (`out` holds at least 10 bytes).
pub(crate) fn put_u32(out: &mut [u8], mut v: u32) -> usize {
    let mut digits = [0u8; 10];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for (i, d) in digits[..n].iter().rev().enumerate() {
        out[i] = *d;
    }
    n
}

/// A socket address shown as `SocketAddr` shows it, faster for IPv4.
pub(crate) struct Addr(pub SocketAddr);

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let SocketAddr::V4(v4) = self.0 else {
            return fmt::Display::fmt(&self.0, f);
        };
        let mut buf = [0u8; 32]; // "255.255.255.255:65535" is 21
        let mut n = 0;
        for (i, octet) in v4.ip().octets().into_iter().enumerate() {
            if i > 0 {
                buf[n] = b'.';
                n += 1;
            }
            n += put_u32(&mut buf[n..], u32::from(octet));
        }
        buf[n] = b':';
        n += 1;
        n += put_u32(&mut buf[n..], u32::from(v4.port()));
        // only ASCII digits, dots and a colon were written
        f.pad(std::str::from_utf8(&buf[..n]).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_show_as_std_shows_them() {
        for addr in [
            "0.0.0.0:0",
            "127.0.0.1:9001",
            "255.255.255.255:65535",
            "10.1.20.255:80",
            "[::1]:443",
            "[2001:db8::7]:65535",
        ] {
            let a: SocketAddr = addr.parse().unwrap();
            assert_eq!(Addr(a).to_string(), a.to_string());
            assert_eq!(format!("{:>25}", Addr(a)), format!("{:>25}", a.to_string()));
        }
    }

    #[test]
    fn integers_show_in_decimal() {
        let mut buf = [0u8; 10];
        for v in [0, 7, 10, 99, 100, 65_535, 4_000_000_000, u32::MAX] {
            let n = put_u32(&mut buf, v);
            assert_eq!(&buf[..n], v.to_string().as_bytes());
        }
    }
}
