//! A sans-I/O RESP2 codec: commands out ([`encode_command`]), replies and
//! pub/sub pushes in ([`decode`]).
//!
//! RESP2 (the Redis serialization protocol, version 2) has five types, each
//! introduced by its first byte, every line ended by CRLF:
//!
//! | byte | type          | examples                                 |
//! |------|---------------|------------------------------------------|
//! | `+`  | simple string | `+OK\r\n`                                |
//! | `-`  | error         | `-ERR unknown command\r\n`               |
//! | `:`  | integer       | `:1000\r\n`                              |
//! | `$`  | bulk string   | `$5\r\nhello\r\n`; null: `$-1\r\n`       |
//! | `*`  | array         | `*2\r\n:1\r\n:2\r\n`; null: `*-1\r\n`    |
//!
//! We speak RESP2 on purpose, over two connections: one publishes and reads
//! replies, the other subscribes and reads pushes (`*3\r\n$7\r\nmessage\r\n…`).
//! RESP3 would multiplex both on one connection, at the cost of more types.
//!
//! [`decode`] is stateless: give it everything received and not yet
//! consumed. `Ok(None)` means the value has not arrived whole yet, which is
//! not an error (httparse's `Status::Partial`). It first walks the value
//! without building it, checking every declared length against [`Limits`]
//! before anything is allocated, and builds it only once it is complete; a
//! large bulk string still arriving costs a length comparison, not a copy or
//! a scan of its body. No input makes it panic or recurse.

use std::fmt;

/// One RESP2 value. `None` stands for RESP's null (`$-1` and `*-1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `+`: a simple string (a line without CR or LF, such as `OK`).
    Simple(Vec<u8>),
    /// `-`: an error reply (a line, such as `ERR unknown command`).
    Error(Vec<u8>),
    /// `:`: a signed 64-bit integer.
    Integer(i64),
    /// `$`: a binary-safe bulk string; `None` is the null bulk string `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*`: an array of values; `None` is the null array `*-1`.
    Array(Option<Vec<Value>>),
}

impl Value {
    /// The bytes of a simple string or a non-null bulk string; `None` for
    /// any other value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Simple(bytes) | Value::Bulk(Some(bytes)) => Some(bytes),
            _ => None,
        }
    }

    /// The elements of a non-null array; `None` for any other value.
    pub fn into_array(self) -> Option<Vec<Value>> {
        match self {
            Value::Array(items) => items,
            _ => None,
        }
    }
}

/// What [`decode`] accepts. A value past any limit is an error, found as
/// soon as its header arrives, before anything is allocated for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest bulk string, in bytes. Default 64 MiB: Redis itself
    /// allows 512 MiB (`proto-max-bulk-len`), but a relayed WebSocket
    /// message is far smaller, and this bounds what one reply can hold.
    pub max_bulk: usize,
    /// The most elements one array may declare. Default 1024: a pub/sub
    /// push has 3 or 4, a reply to our commands a few.
    pub max_elements: usize,
    /// The deepest nesting of arrays: a top-level array is depth 1. Default
    /// 4: pub/sub pushes are flat arrays (depth 1); 0 refuses every array.
    pub max_depth: usize,
    /// The longest simple string or error line, in bytes without its CRLF.
    /// Default 64 KiB: Redis' status and error lines are short, and this
    /// bounds how far [`decode`] scans for a CRLF that may never come.
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk: 64 << 20,
            max_elements: 1024,
            max_depth: 4,
            max_line: 64 << 10,
        }
    }
}

/// Why bytes are not RESP2 within the [`Limits`]. Any of these means the
/// stream can no longer be trusted: close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespError {
    /// The first byte of a value is none of `+ - : $ *`.
    UnknownType(u8),
    /// A `$` or `*` length is not a number, or negative other than `-1`.
    BadLength,
    /// A bulk string declares more bytes than [`Limits::max_bulk`].
    BulkTooLong(usize),
    /// An array declares more elements than [`Limits::max_elements`].
    TooManyElements(usize),
    /// Arrays nest deeper than [`Limits::max_depth`].
    TooDeep,
    /// A simple string or error line is longer than [`Limits::max_line`].
    LineTooLong,
    /// A `:` integer is not a number in the range of `i64`.
    BadInteger,
    /// The bytes after a bulk string's body are not CRLF.
    MissingCrlf,
    /// A line holds a CR not followed by LF, or a bare LF.
    BadLineEnding,
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::UnknownType(b) => write!(f, "unknown RESP type byte 0x{b:02x}"),
            RespError::BadLength => f.write_str("bad RESP length (not a number, or below -1)"),
            RespError::BulkTooLong(n) => write!(f, "RESP bulk string of {n} bytes is too long"),
            RespError::TooManyElements(n) => write!(f, "RESP array of {n} elements is too long"),
            RespError::TooDeep => f.write_str("RESP arrays nest too deep"),
            RespError::LineTooLong => f.write_str("RESP line too long"),
            RespError::BadInteger => f.write_str("bad RESP integer"),
            RespError::MissingCrlf => f.write_str("RESP bulk string not followed by CRLF"),
            RespError::BadLineEnding => f.write_str("RESP line with a bare CR or LF"),
        }
    }
}

impl std::error::Error for RespError {}

/// Decodes the value at the front of `buf`.
///
/// Returns `Ok(Some((value, consumed)))` for a whole value, where
/// `consumed` is how many bytes of `buf` it took (the caller drops them and
/// calls again with the rest); `Ok(None)` when the value has not arrived
/// whole yet; an error when the bytes can never become a valid value.
/// Feeding the bytes in any number of pieces gives the same results as
/// feeding them at once.
pub fn decode(buf: &[u8], limits: &Limits) -> Result<Option<(Value, usize)>, RespError> {
    let Some(end) = measure(buf, limits)? else {
        return Ok(None);
    };
    build(&buf[..end], limits)
}

/// Appends a command as Redis expects it from a client: an array of bulk
/// strings, `*N\r\n` then `$len\r\narg\r\n` for each argument.
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    push_header(out, b'*', args.len());
    for arg in args {
        push_header(out, b'$', arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends `kind`, `n` in decimal and CRLF.
fn push_header(out: &mut Vec<u8>, kind: u8, n: usize) {
    let mut digits = [0u8; 20]; // u64::MAX has 20 digits
    let mut n = n as u64;
    let mut start = digits.len();
    for slot in digits.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        start -= 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push(kind);
    out.extend_from_slice(&digits[start..]);
    out.extend_from_slice(b"\r\n");
}

/// One value's header, or a whole value other than a non-empty array,
/// borrowed from the input.
enum Token<'a> {
    Simple(&'a [u8]),
    Error(&'a [u8]),
    Integer(i64),
    Bulk(Option<&'a [u8]>),
    /// An array's header: its elements follow.
    Array(Option<usize>),
}

impl Token<'_> {
    /// The value of a leaf token (an array's header gives an empty array).
    fn into_value(self) -> Value {
        match self {
            Token::Simple(s) => Value::Simple(s.to_vec()),
            Token::Error(s) => Value::Error(s.to_vec()),
            Token::Integer(n) => Value::Integer(n),
            Token::Bulk(b) => Value::Bulk(b.map(<[u8]>::to_vec)),
            Token::Array(None) => Value::Array(None),
            Token::Array(Some(_)) => Value::Array(Some(Vec::new())),
        }
    }
}

/// Walks the value at the front of `buf` without building it, checking
/// every limit; returns where it ends, or `None` if it is not whole yet.
/// Allocates only the stack of open arrays, at most `max_depth` deep.
fn measure(buf: &[u8], limits: &Limits) -> Result<Option<usize>, RespError> {
    // for each open array, how many elements it still expects
    let mut pending: Vec<usize> = Vec::new();
    let mut pos = 0;
    loop {
        let Some((token, next)) = read_token(buf, pos, limits)? else {
            return Ok(None);
        };
        pos = next;
        if let Token::Array(len) = token {
            if pending.len() >= limits.max_depth {
                return Err(RespError::TooDeep);
            }
            if let Some(n @ 1..) = len {
                pending.push(n);
                continue;
            }
        }
        // a value is complete: it may complete its parents in turn
        loop {
            let Some(left) = pending.last_mut() else {
                return Ok(Some(pos));
            };
            *left -= 1;
            if *left > 0 {
                break;
            }
            pending.pop();
        }
    }
}

/// Builds the value at the front of `buf`, which [`measure`] found whole
/// and within the limits (so every array's elements are present).
fn build(buf: &[u8], limits: &Limits) -> Result<Option<(Value, usize)>, RespError> {
    let mut open: Vec<(Vec<Value>, usize)> = Vec::new();
    let mut pos = 0;
    loop {
        let Some((token, next)) = read_token(buf, pos, limits)? else {
            return Ok(None);
        };
        pos = next;
        let mut value = match token {
            Token::Array(Some(n @ 1..)) => {
                open.push((Vec::with_capacity(n), n));
                continue;
            }
            leaf => leaf.into_value(),
        };
        loop {
            match open.last_mut() {
                None => return Ok(Some((value, pos))),
                Some((items, n)) => {
                    items.push(value);
                    if items.len() < *n {
                        break;
                    }
                }
            }
            let Some((items, _)) = open.pop() else { break };
            value = Value::Array(Some(items));
        }
    }
}

/// Reads the token at `buf[pos..]`; returns it and where the next begins,
/// or `None` if it is not whole yet.
fn read_token<'a>(
    buf: &'a [u8],
    pos: usize,
    limits: &Limits,
) -> Result<Option<(Token<'a>, usize)>, RespError> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let start = pos + 1;
    let token = match kind {
        b'+' | b'-' => line(buf, start, limits.max_line)?.map(|(line, next)| {
            let token = match kind {
                b'+' => Token::Simple(line),
                _ => Token::Error(line),
            };
            (token, next)
        }),
        b':' => match number_line(buf, start, RespError::BadInteger)? {
            Some((line, next)) => {
                let n = parse_i64(line).ok_or(RespError::BadInteger)?;
                Some((Token::Integer(n), next))
            }
            None => None,
        },
        b'$' => match length(buf, start)? {
            Some((None, next)) => Some((Token::Bulk(None), next)),
            Some((Some(len), next)) => bulk(buf, next, len, limits.max_bulk)?,
            None => None,
        },
        b'*' => match length(buf, start)? {
            Some((Some(n), _)) if n > limits.max_elements => {
                return Err(RespError::TooManyElements(n))
            }
            Some((len, next)) => Some((Token::Array(len), next)),
            None => None,
        },
        other => return Err(RespError::UnknownType(other)),
    };
    Ok(token)
}

/// The body of a bulk string of `len` bytes starting at `buf[pos..]`, and
/// its CRLF. The length is checked against `max_bulk` first; while the body
/// is incomplete only lengths are compared, so it is neither copied nor
/// scanned.
fn bulk(
    buf: &[u8],
    pos: usize,
    len: usize,
    max_bulk: usize,
) -> Result<Option<(Token<'_>, usize)>, RespError> {
    if len > max_bulk {
        return Err(RespError::BulkTooLong(len));
    }
    let end = pos.checked_add(len).ok_or(RespError::BulkTooLong(len))?;
    match buf.get(end..) {
        None | Some([]) => Ok(None),
        Some([b'\r']) => Ok(None),
        Some([b'\r', b'\n', ..]) => Ok(Some((Token::Bulk(Some(&buf[pos..end])), end + 2))),
        Some(_) => Err(RespError::MissingCrlf),
    }
}

/// A line at `buf[pos..]` up to its CRLF, at most `max_line` bytes: the
/// line (without CRLF) and where the next token begins.
fn line(buf: &[u8], pos: usize, max_line: usize) -> Result<Option<(&[u8], usize)>, RespError> {
    let rest = buf.get(pos..).unwrap_or_default();
    let window = &rest[..rest.len().min(max_line.saturating_add(1))];
    match window.iter().position(|&b| b == b'\r' || b == b'\n') {
        Some(i) if window[i] == b'\r' => Ok(crlf(buf, pos + i)?.map(|next| (&rest[..i], next))),
        Some(_) => Err(RespError::BadLineEnding),
        None if window.len() > max_line => Err(RespError::LineTooLong),
        None => Ok(None),
    }
}

/// The most bytes a number line holds: `-9223372036854775808` has 20.
const MAX_NUMBER_LEN: usize = 20;

/// A decimal line at `buf[pos..]`: an optional `-` then digits, then CRLF.
/// Any other byte is refused with `bad` as soon as it arrives, so garbage
/// never waits for a CRLF.
fn number_line(
    buf: &[u8],
    pos: usize,
    bad: RespError,
) -> Result<Option<(&[u8], usize)>, RespError> {
    let rest = buf.get(pos..).unwrap_or_default();
    for (i, &b) in rest.iter().enumerate() {
        match b {
            b'\r' => return Ok(crlf(buf, pos + i)?.map(|next| (&rest[..i], next))),
            b'0'..=b'9' if i < MAX_NUMBER_LEN => {}
            b'-' if i == 0 => {}
            _ => return Err(bad),
        }
    }
    Ok(None)
}

/// Given a CR at `buf[at]`, where the next token begins, once its LF is here.
fn crlf(buf: &[u8], at: usize) -> Result<Option<usize>, RespError> {
    match buf.get(at + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some(at + 2)),
        Some(_) => Err(RespError::BadLineEnding),
    }
}

/// The length line of a bulk string or an array: `None` for `-1` (null).
fn length(buf: &[u8], pos: usize) -> Result<Option<(Option<usize>, usize)>, RespError> {
    let Some((line, next)) = number_line(buf, pos, RespError::BadLength)? else {
        return Ok(None);
    };
    match parse_i64(line).ok_or(RespError::BadLength)? {
        -1 => Ok(Some((None, next))),
        n if n < 0 => Err(RespError::BadLength),
        n => Ok(Some((Some(usize::try_from(n).unwrap_or(usize::MAX)), next))),
    }
}

/// Parses an optional `-` then one or more ASCII digits as an `i64`
/// (`i64::MIN` included); `None` for anything else or an overflow.
fn parse_i64(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        n = n.checked_mul(10)?;
        n = if negative {
            n.checked_sub(d)?
        } else {
            n.checked_add(d)?
        };
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bulk(s: &[u8]) -> Value {
        Value::Bulk(Some(s.to_vec()))
    }

    fn decode_default(buf: &[u8]) -> Result<Option<(Value, usize)>, RespError> {
        decode(buf, &Limits::default())
    }

    /// Decodes `buf`, which must be exactly one whole value.
    fn one(buf: &[u8]) -> Value {
        let (value, used) = decode_default(buf).unwrap().expect("a whole value");
        assert_eq!(used, buf.len());
        value
    }

    /// Test-only: any value as RESP2, as Redis would send it.
    fn encode_value(out: &mut Vec<u8>, value: &Value) {
        match value {
            Value::Simple(s) | Value::Error(s) => {
                out.push(if matches!(value, Value::Simple(_)) {
                    b'+'
                } else {
                    b'-'
                });
                out.extend_from_slice(s);
                out.extend_from_slice(b"\r\n");
            }
            Value::Integer(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
            Value::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
            Value::Bulk(Some(b)) => {
                push_header(out, b'$', b.len());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Value::Array(None) => out.extend_from_slice(b"*-1\r\n"),
            Value::Array(Some(items)) => {
                push_header(out, b'*', items.len());
                for item in items {
                    encode_value(out, item);
                }
            }
        }
    }

    #[test]
    fn decodes_every_type() {
        assert_eq!(one(b"+OK\r\n"), Value::Simple(b"OK".to_vec()));
        assert_eq!(one(b"+\r\n"), Value::Simple(Vec::new()));
        assert_eq!(
            one(b"-ERR unknown command\r\n"),
            Value::Error(b"ERR unknown command".to_vec())
        );
        assert_eq!(one(b":1000\r\n"), Value::Integer(1000));
        assert_eq!(one(b":-42\r\n"), Value::Integer(-42));
        assert_eq!(one(b":9223372036854775807\r\n"), Value::Integer(i64::MAX));
        assert_eq!(one(b":-9223372036854775808\r\n"), Value::Integer(i64::MIN));
        assert_eq!(one(b"$5\r\nhello\r\n"), bulk(b"hello"));
        assert_eq!(one(b"$0\r\n\r\n"), bulk(b""));
        assert_eq!(one(b"$4\r\na\r\nb\r\n"), bulk(b"a\r\nb"));
        assert_eq!(one(b"*0\r\n"), Value::Array(Some(vec![])));
        assert_eq!(
            one(b"*2\r\n:1\r\n$1\r\nx\r\n"),
            Value::Array(Some(vec![Value::Integer(1), bulk(b"x")]))
        );
    }

    #[test]
    fn null_bulk_and_null_array_are_none() {
        assert_eq!(one(b"$-1\r\n"), Value::Bulk(None));
        assert_eq!(one(b"*-1\r\n"), Value::Array(None));
        assert_eq!(Value::Bulk(None).as_bytes(), None);
        assert_eq!(Value::Array(None).into_array(), None);
    }

    #[test]
    fn nested_arrays_decode_in_order() {
        let value = one(b"*3\r\n*2\r\n:1\r\n*0\r\n*1\r\n*-1\r\n+end\r\n");
        let expected = Value::Array(Some(vec![
            Value::Array(Some(vec![Value::Integer(1), Value::Array(Some(vec![]))])),
            Value::Array(Some(vec![Value::Array(None)])),
            Value::Simple(b"end".to_vec()),
        ]));
        assert_eq!(value, expected);
    }

    #[test]
    fn pubsub_message_push_decodes_to_its_parts() {
        let push = b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n";
        let parts = one(push).into_array().unwrap();
        let parts: Vec<_> = parts.iter().map(|v| v.as_bytes().unwrap()).collect();
        assert_eq!(parts, [&b"message"[..], b"news", b"hello"]);
    }

    #[test]
    fn decode_consumes_one_value_and_leaves_the_rest() {
        let buf = b":1\r\n+OK\r\n$3\r\nab";
        assert_eq!(decode_default(buf), Ok(Some((Value::Integer(1), 4))));
        assert_eq!(
            decode_default(&buf[4..]),
            Ok(Some((Value::Simple(b"OK".to_vec()), 5)))
        );
        assert_eq!(decode_default(&buf[9..]), Ok(None));
    }

    #[test]
    fn every_prefix_of_a_value_needs_more_bytes() {
        let vectors: &[&[u8]] = &[
            b"+OK\r\n",
            b"-ERR x\r\n",
            b":-123\r\n",
            b"$5\r\nhello\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n",
            b"*2\r\n*1\r\n:1\r\n*0\r\n",
        ];
        for whole in vectors {
            let expected = one(whole);
            for cut in 0..whole.len() {
                assert_eq!(
                    decode_default(&whole[..cut]),
                    Ok(None),
                    "{whole:?} cut at {cut}"
                );
            }
            assert_eq!(decode_default(whole), Ok(Some((expected, whole.len()))));
        }
    }

    #[test]
    fn limits_are_checked_on_the_header_before_the_body_arrives() {
        let limits = Limits::default();
        let over_bulk = format!("${}\r\n", limits.max_bulk + 1);
        assert_eq!(
            decode_default(over_bulk.as_bytes()),
            Err(RespError::BulkTooLong(limits.max_bulk + 1))
        );
        assert_eq!(
            decode_default(b"$99999999999999999999\r\n"),
            Err(RespError::BadLength)
        );
        assert_eq!(
            decode_default(b"$9223372036854775807\r\n"),
            Err(RespError::BulkTooLong(usize::try_from(i64::MAX).unwrap()))
        );
        assert_eq!(
            decode_default(b"*1025\r\n"),
            Err(RespError::TooManyElements(1025))
        );
        assert_eq!(
            decode_default(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n"),
            Err(RespError::TooDeep)
        );
        assert!(decode_default(b"*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n").is_ok());
        let long_line = [&b"+"[..], &vec![b'a'; limits.max_line + 1]].concat();
        assert_eq!(decode_default(&long_line), Err(RespError::LineTooLong));
        let max_line = [&b"+"[..], &vec![b'a'; limits.max_line], b"\r\n"].concat();
        assert!(decode_default(&max_line).unwrap().is_some());
    }

    #[test]
    fn a_partial_large_bulk_needs_more_bytes() {
        let mut buf = format!("${}\r\n", Limits::default().max_bulk).into_bytes();
        buf.extend_from_slice(&[7; 1000]);
        assert_eq!(decode_default(&buf), Ok(None));
        let small = Limits {
            max_bulk: 10,
            ..Limits::default()
        };
        assert_eq!(decode(b"$10\r\n", &small), Ok(None));
        assert_eq!(decode(b"$11\r\n", &small), Err(RespError::BulkTooLong(11)));
    }

    #[test]
    fn a_depth_limit_of_zero_refuses_every_array() {
        let flat = Limits {
            max_depth: 0,
            ..Limits::default()
        };
        assert_eq!(decode(b"*0\r\n", &flat), Err(RespError::TooDeep));
        assert_eq!(decode(b"*-1\r\n", &flat), Err(RespError::TooDeep));
        assert_eq!(decode(b":1\r\n", &flat), Ok(Some((Value::Integer(1), 4))));
    }

    #[test]
    fn negative_lengths_other_than_minus_one_are_rejected() {
        for buf in [
            &b"$-2\r\n"[..],
            b"*-2\r\n",
            b"$-9223372036854775808\r\n",
            b"*-\r\n",
        ] {
            assert_eq!(decode_default(buf), Err(RespError::BadLength), "{buf:?}");
        }
    }

    #[test]
    fn garbage_is_rejected() {
        let cases: &[(&[u8], RespError)] = &[
            (b"hello\r\n", RespError::UnknownType(b'h')),
            (b"\x00", RespError::UnknownType(0)),
            (b"$abc", RespError::BadLength),
            (b"$\r\n", RespError::BadLength),
            (b"$1-\r\n", RespError::BadLength),
            (b"$1 \r\n", RespError::BadLength),
            (b":12a", RespError::BadInteger),
            (b":\r\n", RespError::BadInteger),
            (b":-\r\n", RespError::BadInteger),
            (b":+1\r\n", RespError::BadInteger),
            (b":9223372036854775808\r\n", RespError::BadInteger),
            (b":000000000000000000001", RespError::BadInteger),
            (b"+OK\n", RespError::BadLineEnding),
            (b"+O\rK\r\n", RespError::BadLineEnding),
            (b":1\rx", RespError::BadLineEnding),
            (b"$3\r\nabcXY", RespError::MissingCrlf),
            (b"$3\r\nabc\rX", RespError::MissingCrlf),
            (b"*2\r\n:1\r\n?", RespError::UnknownType(b'?')),
        ];
        for (buf, error) in cases {
            assert_eq!(decode_default(buf), Err(*error), "{buf:?}");
        }
    }

    #[test]
    fn errors_display_a_human_message() {
        assert_eq!(
            RespError::UnknownType(b'h').to_string(),
            "unknown RESP type byte 0x68"
        );
        assert_eq!(
            RespError::BulkTooLong(9).to_string(),
            "RESP bulk string of 9 bytes is too long"
        );
    }

    #[test]
    fn encode_command_writes_an_array_of_bulk_strings() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"PING"]);
        assert_eq!(out, b"*1\r\n$4\r\nPING\r\n");
        out.clear();
        encode_command(&mut out, &[b"SUBSCRIBE", b"edgews:news"]);
        assert_eq!(out, b"*2\r\n$9\r\nSUBSCRIBE\r\n$11\r\nedgews:news\r\n");
        out.clear();
        encode_command(&mut out, &[b"PUBLISH", b"t", b"", b"a\r\nb"]);
        assert_eq!(
            out,
            b"*4\r\n$7\r\nPUBLISH\r\n$1\r\nt\r\n$0\r\n\r\n$4\r\na\r\nb\r\n"
        );
        out.clear();
        encode_command(&mut out, &[]);
        assert_eq!(out, b"*0\r\n");
        let arg = vec![b'x'; 1234567];
        out.clear();
        encode_command(&mut out, &[&arg]);
        assert!(out.starts_with(b"*1\r\n$1234567\r\nxxx"));
    }

    #[test]
    fn an_encoded_command_decodes_as_an_array_of_bulk_strings() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"SET", b"k", b"\x00\xff"]);
        let expected = Value::Array(Some(vec![bulk(b"SET"), bulk(b"k"), bulk(b"\x00\xff")]));
        assert_eq!(one(&out), expected);
    }

    /// Any value within the default limits: lines without CR or LF, arrays
    /// at most 3 deep.
    fn any_value() -> impl Strategy<Value = Value> {
        let line = proptest::collection::vec(
            any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
            0..20,
        );
        let leaf = prop_oneof![
            line.clone().prop_map(Value::Simple),
            line.prop_map(Value::Error),
            any::<i64>().prop_map(Value::Integer),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40))
                .prop_map(Value::Bulk),
        ];
        leaf.prop_recursive(3, 40, 6, |inner| {
            proptest::option::of(proptest::collection::vec(inner, 0..6)).prop_map(Value::Array)
        })
    }

    proptest! {
        #[test]
        fn encoded_values_decode_back_at_every_split_point(
            first in any_value(),
            second in any_value(),
        ) {
            let mut buf = Vec::new();
            encode_value(&mut buf, &first);
            let first_len = buf.len();
            encode_value(&mut buf, &second);
            for cut in 0..first_len {
                prop_assert_eq!(decode_default(&buf[..cut]), Ok(None));
            }
            for cut in first_len..=buf.len() {
                prop_assert_eq!(
                    decode_default(&buf[..cut]),
                    Ok(Some((first.clone(), first_len)))
                );
            }
            prop_assert_eq!(
                decode_default(&buf[first_len..]),
                Ok(Some((second, buf.len() - first_len)))
            );
        }
    }
}
