//! Display without `core::fmt`'s per-integer padding machinery, for what
//! every connection's log lines start with (its id and its peer's
//! address): formatting those with `core::fmt` was a tenth of a
//! connection's user-space instructions, and a quarter with the rest of
//! its two log lines (docs/benchmarks.md, "Connection setup").

use super::token::ConnId;
use std::fmt::{self, Write as _};
use std::net::SocketAddr;

/// Pairs of decimal digits, "00" to "99".
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Writes `v` in decimal at the start of `out`; returns the digits written
/// (`out` holds at least 10 bytes).
pub(crate) fn put_u32(out: &mut [u8], mut v: u32) -> usize {
    // right to left, two digits at a time
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if v >= 10 {
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[v as usize * 2..v as usize * 2 + 2]);
    } else {
        at -= 1;
        digits[at] = b'0' + v as u8;
    }
    let n = digits.len() - at;
    out[..n].copy_from_slice(&digits[at..]);
    n
}

/// Room for the longest tag: `#4294967295.4294967295 ` (23) and the
/// longest socket address std shows, `[ffff:…:ffff%4294967295]:65535` (58).
const TAG_MAX: usize = 96;

/// What a connection's log lines start with, its id and its peer:
/// `#3.17 127.0.0.1:50312`, as `format!("{id} {peer}")` shows them.
/// Made on the stack in one pass and shown with one `write_str`.
pub(crate) struct Tag {
    buf: [u8; TAG_MAX],
    len: usize,
}

impl Tag {
    /// The tag of connection `id` whose peer is `peer`.
    pub(crate) fn new(id: ConnId, peer: SocketAddr) -> Tag {
        let mut tag = Tag {
            buf: [0; TAG_MAX],
            len: 0,
        };
        tag.len = put_id(&mut tag.buf, id);
        tag.buf[tag.len] = b' ';
        tag.len += 1;
        tag.len += put_addr(&mut tag.buf[tag.len..], peer);
        tag
    }

    fn as_str(&self) -> &str {
        // only ASCII was written (digits, dots, colons, brackets, hex, '%')
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Writes `#index.generation` at the start of `out` (at least 22 bytes);
/// returns the bytes written.
pub(crate) fn put_id(out: &mut [u8], id: ConnId) -> usize {
    out[0] = b'#';
    let mut n = 1 + put_u32(&mut out[1..], id.index);
    out[n] = b'.';
    n += 1;
    n + put_u32(&mut out[n..], id.generation)
}

/// Writes `addr` as `SocketAddr` shows it at the start of `out` (at least
/// 58 bytes), IPv4 by hand; returns the bytes written.
fn put_addr(out: &mut [u8], addr: SocketAddr) -> usize {
    let SocketAddr::V4(v4) = addr else {
        let mut cursor = Cursor { out, len: 0 };
        // a SocketAddrV6 shows in at most 58 bytes: this cannot fail
        let _ = write!(cursor, "{addr}");
        return cursor.len;
    };
    let mut n = 0;
    for (i, octet) in v4.ip().octets().into_iter().enumerate() {
        if i > 0 {
            out[n] = b'.';
            n += 1;
        }
        n += put_u32(&mut out[n..], u32::from(octet));
    }
    out[n] = b':';
    n += 1;
    n + put_u32(&mut out[n..], u32::from(v4.port()))
}

/// `fmt::Write` into a byte slice; fails when it is full.
struct Cursor<'a> {
    out: &'a mut [u8],
    len: usize,
}

impl fmt::Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.out
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_show_as_std_shows_id_and_address() {
        let ids = [
            ConnId {
                index: 0,
                generation: 0,
            },
            ConnId {
                index: 3,
                generation: 17,
            },
            ConnId {
                index: u32::MAX,
                generation: u32::MAX,
            },
        ];
        for addr in [
            "0.0.0.0:0",
            "127.0.0.1:9001",
            "255.255.255.255:65535",
            "10.1.20.255:80",
            "[::1]:443",
            "[2001:db8::7]:65535",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535",
            "[::ffff:255.255.255.255%4294967295]:65535",
        ] {
            let a: SocketAddr = addr.parse().unwrap();
            for id in ids {
                let tag = Tag::new(id, a);
                let want = format!("#{}.{} {a}", id.index, id.generation);
                assert_eq!(tag.to_string(), want);
                assert_eq!(format!("{tag:>100}"), format!("{want:>100}"));
            }
        }
    }

    #[test]
    fn integers_show_in_decimal() {
        let mut buf = [0u8; 10];
        let mut values = vec![0, 7, 9, 10, 99, 100, 101, 999, 1000, 65_535];
        values.extend([4_000_000_000, 1_000_000_000, 999_999_999, u32::MAX]);
        for v in values.into_iter().chain((0..100_000).step_by(7)) {
            let n = put_u32(&mut buf, v);
            assert_eq!(&buf[..n], v.to_string().as_bytes());
        }
    }
}
