//! What the senders send and the receivers read: `edgews broadcast`'s
//! binary messages, or, with `--topic`, `edgews pubsub`'s JSON control
//! messages. Either way a message carries its sender, its sequence number
//! and when it was sent, in a payload of `--size` bytes.
//!
//! - broadcast: the payload is the message: sender (u32), sequence (u64)
//!   and stamp (u64, ns since the run began), little-endian, then filler.
//! - pubsub: the payload is the publication's `data`, a JSON string of
//!   `--size` bytes: `"` sender (8 hex digits), sequence (16), stamp (16),
//!   filler `x`, `"`. The sender publishes
//!   `{"op":"publish","topic":T,"data":DATA}`; pubsub wraps each delivery
//!   as `{"type":"message","topic":T,"data":DATA}`, DATA exactly as
//!   published, which the receiver takes out of the envelope. A receiver
//!   first subscribes (`{"op":"subscribe","topic":T}`) and is ready once
//!   `{"type":"subscribed","topic":T}` comes back.

use edgews::protocol::{Message, MessageKind};

/// Payload bytes before the filler in a broadcast message.
const BINARY_FIELDS: usize = 20;
/// Payload bytes of a pubsub `data` besides the filler: quotes and hex.
const TEXT_FIELDS: usize = 2 + 8 + 16 + 16;

/// What a message says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The sender's index.
    pub sender: u32,
    /// Its sequence number among the sender's messages, from 0.
    pub seq: u64,
    /// When it was sent, in ns since the run began.
    pub sent_ns: u64,
}

/// What a receiver got.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// A message from a sender.
    Delivery(Stamp),
    /// Pubsub acknowledged the subscription to the topic.
    Subscribed,
    /// Pubsub answered with an error (`{"type":"error"}`).
    Refused(String),
    /// Anything else: wrong size, wrong kind, unreadable.
    Wrong(String),
}

/// The server's protocol, and the message each sender sends, built once:
/// every send rewrites its fields in place.
#[derive(Debug)]
pub struct Wire {
    /// `--size`: the payload's size.
    size: usize,
    /// Pubsub's topic, JSON-quoted; `None` for broadcast.
    topic_json: Option<String>,
    /// The message to send.
    out: Vec<u8>,
    /// Where the payload starts in `out`.
    payload_at: usize,
    /// What precedes the payload in a pubsub delivery.
    delivery_prefix: Vec<u8>,
}

impl Wire {
    /// `edgews broadcast`'s binary messages of `size` bytes.
    pub fn broadcast(size: usize) -> Result<Wire, String> {
        if size < BINARY_FIELDS {
            return Err(format!(
                "--size must be at least {BINARY_FIELDS} bytes (sender, sequence, timestamp)"
            ));
        }
        Ok(Wire {
            size,
            topic_json: None,
            out: vec![0x42; size],
            payload_at: 0,
            delivery_prefix: Vec::new(),
        })
    }

    /// `edgews pubsub`'s publications to `topic`, with `data` of `size`
    /// bytes.
    pub fn pubsub(topic: &str, size: usize) -> Result<Wire, String> {
        edgews::server::check_topic(topic).map_err(|e| format!("--topic: {e}"))?;
        if size < TEXT_FIELDS {
            return Err(format!(
                "with --topic, --size must be at least {TEXT_FIELDS} bytes (the data is a JSON \
                 string: quotes, sender, sequence and timestamp in hex)"
            ));
        }
        let topic_json = serde_json::Value::from(topic).to_string();
        let head = format!(r#"{{"op":"publish","topic":{topic_json},"data":"#);
        let mut out = head.clone().into_bytes();
        out.push(b'"');
        out.resize(head.len() + size - 1, b'x');
        out.extend_from_slice(b"\"}");
        let delivery_prefix = format!(r#"{{"type":"message","topic":{topic_json},"data":"#);
        Ok(Wire {
            size,
            payload_at: head.len(),
            topic_json: Some(topic_json),
            out,
            delivery_prefix: delivery_prefix.into_bytes(),
        })
    }

    /// The payload's size (`--size`).
    pub fn size(&self) -> usize {
        self.size
    }

    /// What a connection sends once open before it is ready, if anything.
    pub fn subscribe_message(&self) -> Option<String> {
        let topic = self.topic_json.as_deref()?;
        Some(format!(r#"{{"op":"subscribe","topic":{topic}}}"#))
    }

    /// The message carrying `stamp`, and its kind.
    pub fn encode(&mut self, stamp: Stamp) -> (MessageKind, &[u8]) {
        let p = &mut self.out[self.payload_at..];
        if self.topic_json.is_none() {
            p[..4].copy_from_slice(&stamp.sender.to_le_bytes());
            p[4..12].copy_from_slice(&stamp.seq.to_le_bytes());
            p[12..20].copy_from_slice(&stamp.sent_ns.to_le_bytes());
            return (MessageKind::Binary, &self.out);
        }
        put_hex(&mut p[1..9], u64::from(stamp.sender));
        put_hex(&mut p[9..25], stamp.seq);
        put_hex(&mut p[25..41], stamp.sent_ns);
        (MessageKind::Text, &self.out)
    }

    /// Reads what a receiver got.
    pub fn decode(&self, message: &Message<'_>) -> Received {
        let data = message.as_bytes();
        if self.topic_json.is_none() {
            return match self.payload_of(data) {
                Ok(payload) => binary_stamp(payload),
                Err(wrong) => wrong,
            };
        }
        if message.kind() != MessageKind::Text {
            return Received::Wrong("a binary message from pubsub".into());
        }
        let delivery = data
            .strip_prefix(self.delivery_prefix.as_slice())
            .and_then(|rest| rest.strip_suffix(b"}"));
        match delivery {
            Some(payload) => match self.payload_of(payload) {
                Ok(payload) => text_stamp(payload),
                Err(wrong) => wrong,
            },
            None => self.reply(data),
        }
    }

    /// `payload` if it has the size sent.
    fn payload_of<'a>(&self, payload: &'a [u8]) -> Result<&'a [u8], Received> {
        if payload.len() == self.size {
            Ok(payload)
        } else {
            Err(Received::Wrong(format!(
                "a payload of {} bytes, sent {}",
                payload.len(),
                self.size
            )))
        }
    }

    /// Pubsub's answer to a control message (rare: parsed as JSON).
    fn reply(&self, data: &[u8]) -> Received {
        let shown = || String::from_utf8_lossy(&data[..data.len().min(120)]).into_owned();
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
            return Received::Wrong(format!("not JSON: {}", shown()));
        };
        let topic = value["topic"].to_string();
        match value["type"].as_str() {
            Some("subscribed") if self.topic_json.as_deref() == Some(topic.as_str()) => {
                Received::Subscribed
            }
            Some("error") => Received::Refused(value["error"].as_str().unwrap_or("").into()),
            _ => Received::Wrong(format!("unexpected: {}", shown())),
        }
    }
}

/// The fields of a broadcast payload.
fn binary_stamp(p: &[u8]) -> Received {
    let field = |r: std::ops::Range<usize>| {
        let mut b = [0u8; 8];
        b[..r.len()].copy_from_slice(&p[r]);
        u64::from_le_bytes(b)
    };
    Received::Delivery(Stamp {
        sender: field(0..4) as u32,
        seq: field(4..12),
        sent_ns: field(12..20),
    })
}

/// The fields of a pubsub `data`.
fn text_stamp(p: &[u8]) -> Received {
    let fields = (p[0] == b'"' && p[p.len() - 1] == b'"')
        .then(|| Some((hex(&p[1..9])?, hex(&p[9..25])?, hex(&p[25..41])?)))
        .flatten();
    match fields {
        Some((sender, seq, sent_ns)) => Received::Delivery(Stamp {
            sender: sender as u32,
            seq,
            sent_ns,
        }),
        None => Received::Wrong("a data string that was not sent".into()),
    }
}

/// Writes `n` as lowercase hex digits filling `out` (its low digits).
fn put_hex(out: &mut [u8], mut n: u64) {
    for b in out.iter_mut().rev() {
        *b = b"0123456789abcdef"[(n & 0xf) as usize];
        n >>= 4;
    }
}

/// The number written in hex digits, if they all are.
fn hex(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |n, &d| {
        let v = (d as char).to_digit(16)?;
        Some(n << 4 | u64::from(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: Stamp = Stamp {
        sender: 3,
        seq: 0x1234_5678_9abc,
        sent_ns: u64::MAX - 5,
    };

    #[test]
    fn broadcast_messages_carry_the_stamp_in_the_size_asked() {
        let mut wire = Wire::broadcast(64).unwrap();
        let (kind, bytes) = wire.encode(STAMP);
        assert_eq!((kind, bytes.len()), (MessageKind::Binary, 64));
        let message = Message::binary(bytes.to_vec());
        assert_eq!(wire.decode(&message), Received::Delivery(STAMP));
        assert!(matches!(
            wire.decode(&Message::binary(vec![0; 63])),
            Received::Wrong(_)
        ));
        assert!(Wire::broadcast(19).is_err());
    }

    #[test]
    fn a_publication_is_valid_json_and_its_delivery_decodes() {
        let mut wire = Wire::pubsub("bench \"q\"", 64).unwrap();
        let (kind, bytes) = wire.encode(STAMP);
        assert_eq!(kind, MessageKind::Text);
        let sent = std::str::from_utf8(bytes).unwrap().to_string();
        let control = edgews::server::parse_control(&sent, 1 << 16).unwrap();
        let edgews::server::Control::Publish { topic, data, echo } = control else {
            panic!("not a publish: {sent}");
        };
        assert_eq!(
            (topic.as_ref(), data.len(), echo),
            ("bench \"q\"", 64, false)
        );
        // pubsub's envelope, as pubsub.rs builds it
        let delivered = format!(r#"{{"type":"message","topic":"bench \"q\"","data":{data}}}"#);
        assert_eq!(
            wire.decode(&Message::text(delivered)),
            Received::Delivery(STAMP)
        );
    }

    #[test]
    fn pubsub_replies_are_told_apart() {
        let wire = Wire::pubsub("t", 42).unwrap();
        let subscribe = wire.subscribe_message().unwrap();
        assert_eq!(subscribe, r#"{"op":"subscribe","topic":"t"}"#);
        let ack = Message::text(r#"{"type":"subscribed","topic":"t"}"#);
        assert_eq!(wire.decode(&ack), Received::Subscribed);
        let other = Message::text(r#"{"type":"subscribed","topic":"u"}"#);
        assert!(matches!(wire.decode(&other), Received::Wrong(_)));
        let error = Message::text(r#"{"type":"error","error":"too many"}"#);
        assert_eq!(wire.decode(&error), Received::Refused("too many".into()));
        let short = Message::text(r#"{"type":"message","topic":"t","data":"00"}"#);
        assert!(matches!(wire.decode(&short), Received::Wrong(_)));
        let not_hex = format!(
            r#"{{"type":"message","topic":"t","data":"{}"}}"#,
            "z".repeat(40)
        );
        assert!(matches!(
            wire.decode(&Message::text(not_hex)),
            Received::Wrong(_)
        ));
        assert!(Wire::pubsub("t", 41).is_err());
        assert!(Wire::pubsub("", 64).is_err());
        assert!(Wire::broadcast(20).unwrap().subscribe_message().is_none());
    }
}
