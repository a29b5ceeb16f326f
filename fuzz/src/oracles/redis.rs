//! The `resp_decode` and `redis_envelope` oracles: the Redis link's codecs
//! (`edgews::redis::resp` and `edgews::redis::envelope`).

use super::heap::HeapMeter;
use edgews::redis::envelope::{encoded_len, Envelope, Kind, HEADER_LEN};
use edgews::redis::resp::{decode, Limits, RespError, Value};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

/// The limits [`resp_decode`] decodes under: small, so that the fuzzer
/// reaches every one of them.
pub const RESP_LIMITS: Limits = Limits {
    max_bulk: 1024,
    max_elements: 16,
    max_depth: 4,
    max_line: 64,
};

/// What a stream of bytes decodes to, value after value: the values, then
/// the error that stopped it or how many bytes wait for more.
#[derive(Debug, PartialEq)]
struct Outcome {
    values: Vec<Value>,
    end: Result<usize, RespError>,
}

/// Arbitrary bytes through [`decode`] under [`RESP_LIMITS`], value after
/// value: never a panic; each value's length is within the input, it
/// decodes alike from exactly its own bytes and needs more with one byte
/// less, it respects the limits, and it re-encodes (canonically, so never
/// longer) to bytes that decode to it; the bytes fed in pieces of
/// data-derived sizes (consumed values dropped, the rest kept) give the
/// same values and the same end as fed whole; the default limits accept
/// what the small ones do, and their declared 64 MiB never get allocated.
pub fn resp_decode(data: &[u8]) {
    let whole = decode_whole(data);
    let pieces = decode_in_pieces(data);
    assert_eq!(pieces, whole, "fed in pieces, the bytes decode differently");
    if let Some(first) = whole.values.first() {
        let meter = HeapMeter::start();
        let default = decode(data, &Limits::default());
        if HeapMeter::active() {
            let bound = 64 * data.len() as isize + 4096;
            assert!(
                meter.peak() <= bound,
                "decoding {} bytes took {} heap bytes",
                data.len(),
                meter.peak()
            );
        }
        let (value, _) = default
            .expect("accepted under small limits only")
            .expect("whole");
        assert_eq!(&value, first, "the limits change the value");
    }
}

fn decode_whole(data: &[u8]) -> Outcome {
    let mut values = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &data[pos..];
        match decode(rest, &RESP_LIMITS) {
            Ok(Some((value, used))) => {
                check_value(rest, &value, used);
                values.push(value);
                pos += used;
            }
            Ok(None) => {
                return Outcome {
                    values,
                    end: Ok(rest.len()),
                }
            }
            Err(e) => {
                return Outcome {
                    values,
                    end: Err(e),
                }
            }
        }
    }
}

/// Feeds `data` as a reader would: pieces of sizes drawn from a generator
/// seeded by the data, each decoded as far as it goes.
fn decode_in_pieces(data: &[u8]) -> Outcome {
    let mut hasher = DefaultHasher::new();
    data.hash(&mut hasher);
    let mut state = hasher.finish() | 1;
    let mut buf = Vec::new();
    let mut values = Vec::new();
    let mut rest = data;
    loop {
        // xorshift64: mostly 1 to 16 bytes, sometimes up to 256
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let size = if state % 8 == 0 {
            state >> 8 & 0xff
        } else {
            state >> 8 & 0xf
        } as usize
            + 1;
        let (piece, after) = rest.split_at(size.min(rest.len()));
        buf.extend_from_slice(piece);
        rest = after;
        loop {
            match decode(&buf, &RESP_LIMITS) {
                Ok(Some((value, used))) => {
                    values.push(value);
                    buf.drain(..used);
                }
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        values,
                        end: Err(e),
                    }
                }
            }
        }
        if rest.is_empty() {
            return Outcome {
                values,
                end: Ok(buf.len()),
            };
        }
    }
}

/// The checks on one value decoded from the front of `buf`, `used` bytes.
fn check_value(buf: &[u8], value: &Value, used: usize) {
    assert!(
        (3..=buf.len()).contains(&used),
        "consumed {used} of {} bytes",
        buf.len()
    );
    let own = &buf[..used];
    assert_eq!(decode(own, &RESP_LIMITS), Ok(Some((value.clone(), used))));
    assert_eq!(
        decode(&own[..used - 1], &RESP_LIMITS),
        Ok(None),
        "a value one byte short"
    );
    check_limits(value, 0);
    let mut again = Vec::new();
    encode(&mut again, value);
    assert!(
        again.len() <= used,
        "re-encoded {} bytes as {}",
        used,
        again.len()
    );
    assert_eq!(
        decode(&again, &RESP_LIMITS),
        Ok(Some((value.clone(), again.len()))),
        "the re-encoded value decodes differently: {again:?}"
    );
}

/// `value`, found inside `depth` arrays, is within [`RESP_LIMITS`].
fn check_limits(value: &Value, depth: usize) {
    match value {
        Value::Simple(line) | Value::Error(line) => {
            assert!(line.len() <= RESP_LIMITS.max_line);
            assert!(
                !line.contains(&b'\r') && !line.contains(&b'\n'),
                "CR or LF in a line"
            );
        }
        Value::Integer(_) | Value::Bulk(None) => {}
        Value::Bulk(Some(bytes)) => assert!(bytes.len() <= RESP_LIMITS.max_bulk),
        Value::Array(items) => {
            assert!(
                depth < RESP_LIMITS.max_depth,
                "arrays nested {} deep",
                depth + 1
            );
            let items = items.as_deref().unwrap_or_default();
            assert!(items.len() <= RESP_LIMITS.max_elements);
            for item in items {
                check_limits(item, depth + 1);
            }
        }
    }
}

/// The oracle's own RESP2 encoder, canonical: no leading zeros, no `-0`.
fn encode(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Simple(line) | Value::Error(line) => {
            out.push(if matches!(value, Value::Simple(_)) {
                b'+'
            } else {
                b'-'
            });
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
        Value::Integer(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
        Value::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
        Value::Bulk(Some(bytes)) => {
            out.extend_from_slice(format!("${}\r\n", bytes.len()).as_bytes());
            out.extend_from_slice(bytes);
            out.extend_from_slice(b"\r\n");
        }
        Value::Array(None) => out.extend_from_slice(b"*-1\r\n"),
        Value::Array(Some(items)) => {
            out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
            for item in items {
                encode(out, item);
            }
        }
    }
}

/// Arbitrary bytes through [`Envelope::decode`]: never a panic; accepted
/// exactly when a plain reading of the documented layout says valid; an
/// accepted envelope borrows its topic and payload from the input, and
/// encodes back to the very same bytes.
pub fn redis_envelope(data: &[u8]) {
    let result = Envelope::decode(data);
    assert_eq!(result.is_ok(), reference_valid(data), "verdict {result:?}");
    let Ok(envelope) = result else { return };
    assert_ne!(envelope.seq, 0);
    let range = data.as_ptr_range();
    for part in [envelope.topic.as_bytes(), envelope.payload] {
        let part = part.as_ptr_range();
        assert!(range.start <= part.start && part.end <= range.end, "copied");
    }
    let mut again = Vec::new();
    envelope
        .encode(&mut again)
        .expect("a decoded envelope encodes");
    assert_eq!(again, data, "re-encoded envelope differs");
    assert_eq!(
        encoded_len(envelope.topic.len(), envelope.payload.len()),
        data.len()
    );
}

/// The envelope layout (see `edgews::redis::envelope`), read plainly.
fn reference_valid(data: &[u8]) -> bool {
    if data.len() < HEADER_LEN || &data[..3] != b"EW\x01" {
        return false;
    }
    let seq = u64::from_be_bytes(data[11..19].try_into().unwrap());
    let kind = match data[19] {
        1 => Kind::Text,
        2 => Kind::Binary,
        3 => Kind::Chat,
        _ => return false,
    };
    let topic_end = HEADER_LEN + usize::from(u16::from_be_bytes([data[20], data[21]]));
    if seq == 0
        || topic_end > data.len()
        || std::str::from_utf8(&data[HEADER_LEN..topic_end]).is_err()
    {
        return false;
    }
    kind == Kind::Binary || std::str::from_utf8(&data[topic_end..]).is_ok()
}
