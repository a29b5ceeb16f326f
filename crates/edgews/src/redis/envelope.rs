//! The message one edgews instance publishes on Redis for the others.
//!
//! Binary, big-endian, [`HEADER_LEN`] bytes of header then the topic and
//! the payload:
//!
//! ```text
//! offset  size  field
//!      0     3  magic and version: b"EW", 1
//!      3     8  instance id (u64): who published, so it skips its own
//!     11     8  sequence number (u64), from 1: per instance and topic
//!     19     1  kind: 1 text, 2 binary, 3 chat event (JSON text)
//!     20     2  topic length (u16)
//!     22     n  topic (UTF-8)
//!   22+n  rest  payload
//! ```
//!
//! Anyone who can reach the Redis server can publish on the channel, so
//! [`Envelope::decode`] trusts nothing: it checks the magic and version,
//! every length, the kind, the topic's UTF-8, and the UTF-8 of a text or
//! chat payload, which will go out in a text frame ("a text frame MUST
//! contain valid UTF-8", RFC 6455 §8.1).

use std::fmt;

/// The first bytes of every envelope: `EW` and the format version, 1.
const MAGIC: [u8; 3] = *b"EW\x01";

/// The length of an envelope with an empty topic and an empty payload.
pub const HEADER_LEN: usize = MAGIC.len() + 8 + 8 + 1 + 2;

/// The length of the envelope of a `topic_len`-byte topic and a
/// `payload_len`-byte payload.
pub fn encoded_len(topic_len: usize, payload_len: usize) -> usize {
    HEADER_LEN
        .saturating_add(topic_len)
        .saturating_add(payload_len)
}

/// What the payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A text message for the topic's subscribers; the payload is UTF-8.
    Text = 1,
    /// A binary message for the topic's subscribers.
    Binary = 2,
    /// A chat room event; the payload is JSON text.
    Chat = 3,
}

impl Kind {
    /// The kind with this wire value, if there is one.
    pub fn from_u8(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::Text),
            2 => Some(Kind::Binary),
            3 => Some(Kind::Chat),
            _ => None,
        }
    }

    /// Whether the payload must be UTF-8.
    pub fn is_text(self) -> bool {
        matches!(self, Kind::Text | Kind::Chat)
    }
}

/// One cross-instance message, borrowing its topic and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The publishing instance's id (random at startup).
    pub instance: u64,
    /// The publisher's sequence number for this topic, from 1; a gap tells
    /// a receiver that Redis dropped messages.
    pub seq: u64,
    /// What the payload is.
    pub kind: Kind,
    /// The topic (or chat room) it is for.
    pub topic: &'a str,
    /// The message itself.
    pub payload: &'a [u8],
}

/// Why bytes are not an envelope, or an envelope cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Shorter than its header, or than the topic length it declares.
    Truncated,
    /// Does not start with `EW`: not an edgews envelope.
    BadMagic,
    /// An envelope format version this build does not know.
    UnsupportedVersion(u8),
    /// A kind byte that is not a [`Kind`].
    UnknownKind(u8),
    /// Sequence number 0 (they start at 1).
    ZeroSeq,
    /// The topic is not UTF-8.
    TopicNotUtf8,
    /// A text or chat payload is not UTF-8.
    PayloadNotUtf8,
    /// A topic longer than 65535 bytes, which its u16 length cannot hold.
    TopicTooLong(usize),
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::Truncated => f.write_str("envelope truncated"),
            EnvelopeError::BadMagic => f.write_str("not an edgews envelope (bad magic)"),
            EnvelopeError::UnsupportedVersion(v) => write!(f, "envelope version {v} unsupported"),
            EnvelopeError::UnknownKind(k) => write!(f, "envelope of unknown kind {k}"),
            EnvelopeError::ZeroSeq => f.write_str("envelope with sequence number 0"),
            EnvelopeError::TopicNotUtf8 => f.write_str("envelope topic is not UTF-8"),
            EnvelopeError::PayloadNotUtf8 => f.write_str("envelope text payload is not UTF-8"),
            EnvelopeError::TopicTooLong(n) => {
                write!(f, "envelope topic of {n} bytes is over 65535")
            }
        }
    }
}

impl std::error::Error for EnvelopeError {}

impl<'a> Envelope<'a> {
    /// Appends the envelope to `out`.
    ///
    /// Refuses a topic over 65535 bytes and sequence number 0, appending
    /// nothing. A text or chat payload is not checked for UTF-8 here (it
    /// comes from a text frame the engine has validated); [`decode`] checks
    /// it.
    ///
    /// [`decode`]: Envelope::decode
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EnvelopeError> {
        let topic_len = u16::try_from(self.topic.len())
            .map_err(|_| EnvelopeError::TopicTooLong(self.topic.len()))?;
        if self.seq == 0 {
            return Err(EnvelopeError::ZeroSeq);
        }
        out.reserve(encoded_len(self.topic.len(), self.payload.len()));
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.instance.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.push(self.kind as u8);
        out.extend_from_slice(&topic_len.to_be_bytes());
        out.extend_from_slice(self.topic.as_bytes());
        out.extend_from_slice(self.payload);
        Ok(())
    }

    /// Reads an envelope, borrowing its topic and payload from `bytes`.
    pub fn decode(bytes: &'a [u8]) -> Result<Envelope<'a>, EnvelopeError> {
        let Some((header, rest)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(if bytes.len() >= 2 && bytes[..2] != MAGIC[..2] {
                EnvelopeError::BadMagic
            } else {
                EnvelopeError::Truncated
            });
        };
        let (magic, header) = header.split_at(MAGIC.len());
        if magic[..2] != MAGIC[..2] {
            return Err(EnvelopeError::BadMagic);
        }
        if magic[2] != MAGIC[2] {
            return Err(EnvelopeError::UnsupportedVersion(magic[2]));
        }
        let (instance, header) = split_u64(header);
        let (seq, header) = split_u64(header);
        let &[kind, len_hi, len_lo] = header else {
            return Err(EnvelopeError::Truncated);
        };
        if seq == 0 {
            return Err(EnvelopeError::ZeroSeq);
        }
        let kind = Kind::from_u8(kind).ok_or(EnvelopeError::UnknownKind(kind))?;
        let topic_len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
        if rest.len() < topic_len {
            return Err(EnvelopeError::Truncated);
        }
        let (topic, payload) = rest.split_at(topic_len);
        let topic = std::str::from_utf8(topic).map_err(|_| EnvelopeError::TopicNotUtf8)?;
        // RFC 6455 §8.1: "a text frame MUST contain valid UTF-8"
        if kind.is_text() && std::str::from_utf8(payload).is_err() {
            return Err(EnvelopeError::PayloadNotUtf8);
        }
        Ok(Envelope {
            instance,
            seq,
            kind,
            topic,
            payload,
        })
    }
}

/// A big-endian `u64` from the front of `bytes` (0 if shorter) and the rest.
fn split_u64(bytes: &[u8]) -> (u64, &[u8]) {
    match bytes.split_first_chunk::<8>() {
        Some((n, rest)) => (u64::from_be_bytes(*n), rest),
        None => (0, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: Kind, payload: &[u8]) -> Envelope<'_> {
        Envelope {
            instance: 0x0102_0304_0506_0708,
            seq: 42,
            kind,
            topic: "news",
            payload,
        }
    }

    fn encoded(envelope: &Envelope<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        envelope.encode(&mut out).unwrap();
        out
    }

    #[test]
    fn the_header_has_the_documented_layout() {
        let bytes = encoded(&sample(Kind::Binary, b"\x00\xff"));
        let expected = [
            &b"EW\x01"[..],
            &[1, 2, 3, 4, 5, 6, 7, 8],
            &[0, 0, 0, 0, 0, 0, 0, 42],
            &[2],
            &[0, 4],
            b"news",
            b"\x00\xff",
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(HEADER_LEN, 22);
        assert_eq!(bytes.len(), encoded_len(4, 2));
    }

    #[test]
    fn every_kind_roundtrips() {
        for (kind, payload) in [
            (Kind::Text, "héllo".as_bytes()),
            (Kind::Binary, &[0xff, 0, 0xfe][..]),
            (Kind::Chat, br#"{"type":"message","text":"hi"}"#),
            (Kind::Text, b""),
        ] {
            let envelope = sample(kind, payload);
            assert_eq!(Envelope::decode(&encoded(&envelope)), Ok(envelope));
        }
    }

    #[test]
    fn an_empty_topic_and_extreme_numbers_roundtrip() {
        let envelope = Envelope {
            instance: u64::MAX,
            seq: u64::MAX,
            kind: Kind::Binary,
            topic: "",
            payload: b"x",
        };
        assert_eq!(Envelope::decode(&encoded(&envelope)), Ok(envelope));
    }

    #[test]
    fn encode_appends_after_what_is_there() {
        let mut out = b"prefix".to_vec();
        sample(Kind::Text, b"a").encode(&mut out).unwrap();
        assert_eq!(Envelope::decode(&out[6..]), Ok(sample(Kind::Text, b"a")));
    }

    #[test]
    fn a_topic_over_65535_bytes_is_not_encoded() {
        let topic = "t".repeat(65536);
        let mut envelope = sample(Kind::Text, b"a");
        envelope.topic = &topic;
        let mut out = Vec::new();
        assert_eq!(
            envelope.encode(&mut out),
            Err(EnvelopeError::TopicTooLong(65536))
        );
        assert!(out.is_empty());
        envelope.topic = &topic[1..];
        assert_eq!(Envelope::decode(&encoded(&envelope)), Ok(envelope));
    }

    #[test]
    fn sequence_number_0_is_refused_both_ways() {
        let mut envelope = sample(Kind::Text, b"a");
        envelope.seq = 0;
        assert_eq!(
            envelope.encode(&mut Vec::new()),
            Err(EnvelopeError::ZeroSeq)
        );
        let mut bytes = encoded(&sample(Kind::Text, b"a"));
        bytes[11..19].fill(0);
        assert_eq!(Envelope::decode(&bytes), Err(EnvelopeError::ZeroSeq));
    }

    #[test]
    fn bad_magic_version_and_kind_are_refused() {
        let good = encoded(&sample(Kind::Text, b"a"));
        let with = |at: usize, byte: u8| {
            let mut bytes = good.clone();
            bytes[at] = byte;
            Envelope::decode(&bytes).err()
        };
        assert_eq!(with(0, b'X'), Some(EnvelopeError::BadMagic));
        assert_eq!(with(1, b'X'), Some(EnvelopeError::BadMagic));
        assert_eq!(with(2, 2), Some(EnvelopeError::UnsupportedVersion(2)));
        assert_eq!(with(19, 0), Some(EnvelopeError::UnknownKind(0)));
        assert_eq!(with(19, 4), Some(EnvelopeError::UnknownKind(4)));
        assert_eq!(
            Envelope::decode(b"+OK\r\n"),
            Err(EnvelopeError::BadMagic),
            "a short foreign message is not an envelope"
        );
    }

    #[test]
    fn a_topic_that_is_not_utf8_is_refused() {
        let mut bytes = encoded(&sample(Kind::Binary, b"a"));
        bytes[HEADER_LEN] = 0xff;
        assert_eq!(Envelope::decode(&bytes), Err(EnvelopeError::TopicNotUtf8));
    }

    #[test]
    fn text_and_chat_payloads_must_be_utf8_binary_need_not() {
        for kind in [Kind::Text, Kind::Chat] {
            let bytes = encoded(&sample(kind, b"ok \xed\xa0\x80"));
            assert_eq!(Envelope::decode(&bytes), Err(EnvelopeError::PayloadNotUtf8));
        }
        let bytes = encoded(&sample(Kind::Binary, b"ok \xed\xa0\x80"));
        assert!(Envelope::decode(&bytes).is_ok());
    }

    #[test]
    fn a_topic_length_past_the_end_is_refused() {
        let mut bytes = encoded(&sample(Kind::Binary, b""));
        bytes[20..22].copy_from_slice(&5u16.to_be_bytes());
        assert_eq!(Envelope::decode(&bytes), Err(EnvelopeError::Truncated));
    }

    #[test]
    fn every_truncation_of_a_valid_envelope_is_refused_or_shorter() {
        let envelope = sample(Kind::Chat, "{\"text\":\"κόσμε\"}".as_bytes());
        let bytes = encoded(&envelope);
        for cut in 0..bytes.len() {
            match Envelope::decode(&bytes[..cut]) {
                // cutting the payload of a chat event leaves a shorter event
                // or breaks its UTF-8
                Ok(shorter) => {
                    assert!(cut >= HEADER_LEN + 4);
                    assert_eq!(shorter.payload, &envelope.payload[..cut - HEADER_LEN - 4]);
                }
                Err(e) => assert!(
                    matches!(e, EnvelopeError::Truncated | EnvelopeError::PayloadNotUtf8),
                    "cut at {cut}: {e}"
                ),
            }
        }
        for cut in 0..HEADER_LEN + 4 {
            assert_eq!(
                Envelope::decode(&bytes[..cut]),
                Err(EnvelopeError::Truncated)
            );
        }
    }

    #[test]
    fn errors_display_a_human_message() {
        assert_eq!(
            EnvelopeError::UnknownKind(9).to_string(),
            "envelope of unknown kind 9"
        );
        assert_eq!(
            EnvelopeError::TopicTooLong(70000).to_string(),
            "envelope topic of 70000 bytes is over 65535"
        );
    }
}
