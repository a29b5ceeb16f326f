//! The chat's one client message, `{"type":"message","room","text"}`,
//! parsed in one flat pass that borrows from the message: unknown fields
//! are skipped without building anything, and no JSON tree is made.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::error::Category;
use std::borrow::Cow;
use std::fmt;

/// A valid chat message from a client, borrowed from its text (a string
/// with escapes is the only copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage<'a> {
    /// The room it is for (the server checks it is the sender's).
    pub room: Cow<'a, str>,
    /// What it says: at most `max_text` bytes, not only whitespace.
    pub text: Cow<'a, str>,
}

/// The longest chat message (JSON) that may carry `max_text` bytes of text:
/// `6 × max_text + 1024`.
pub fn max_message_len(max_text: usize) -> usize {
    max_text.saturating_mul(6).saturating_add(1024)
}

/// Parses and checks one chat message whose text may be `max_text` bytes.
///
/// A message longer than `6 × max_text + 1024` bytes is refused before any
/// parsing: even escaped to the hilt (`\uXXXX`), valid text is at most 6
/// bytes of JSON per byte. Otherwise it must be one JSON object with
/// `"type":"message"` and string fields `room` and `text` (other fields are
/// ignored, each at most once). The error is a sentence for the client.
pub fn parse_message(text: &str, max_text: usize) -> Result<ChatMessage<'_>, String> {
    if text.len() > max_message_len(max_text) {
        return Err(too_long(text.len(), max_text));
    }
    let fields: Fields<'_> = serde_json::from_str(text).map_err(|e| match e.classify() {
        Category::Data => e.to_string(),
        Category::Syntax | Category::Eof | Category::Io => format!("malformed JSON: {e}"),
    })?;
    match fields.kind {
        Field::Str(kind) if kind == "message" => {}
        Field::Str(other) => return Err(format!("unknown message type {other:?}")),
        _ => return Err("missing \"type\": send {\"type\":\"message\",…}".into()),
    }
    let Field::Str(room) = fields.room else {
        return Err("missing \"room\"".into());
    };
    let Field::Str(body) = fields.text else {
        return Err("missing \"text\" (a string)".into());
    };
    if body.len() > max_text {
        return Err(too_long(body.len(), max_text));
    }
    if body.trim().is_empty() {
        return Err("empty message".into());
    }
    Ok(ChatMessage { room, text: body })
}

fn too_long(len: usize, max: usize) -> String {
    format!("message too long: {len} bytes, at most {max}")
}

/// The fields the chat reads; the rest are skipped.
#[derive(Default)]
struct Fields<'a> {
    kind: Field<'a>,
    room: Field<'a>,
    text: Field<'a>,
}

/// One field's value: a string, or anything else (skipped).
#[derive(Default)]
enum Field<'a> {
    #[default]
    Absent,
    Str(Cow<'a, str>),
    Other,
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FieldsVisitor)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Fields::default();
        // a key is always a string (borrowed when it has no escapes)
        while let Some(key) = map.next_key::<Field<'de>>()? {
            let Field::Str(key) = key else {
                return Err(de::Error::custom("a key that is not a string"));
            };
            let slot = match key.as_ref() {
                "type" => &mut fields.kind,
                "room" => &mut fields.room,
                "text" => &mut fields.text,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if !matches!(slot, Field::Absent) {
                return Err(de::Error::custom(format_args!("duplicate field {key:?}")));
            }
            *slot = map.next_value()?;
        }
        Ok(fields)
    }
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor)
    }
}

/// Takes a string, borrowed when it has no escapes; skips anything else.
struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v)))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ChatMessage<'_>, String> {
        parse_message(text, 10)
    }

    #[test]
    fn a_message_parses_with_other_fields_ignored() {
        let m = parse(r#"{"from":{"x":[1,{}]},"type":"message","room":"r","text":"hi","id":9}"#)
            .unwrap();
        assert_eq!((m.room.as_ref(), m.text.as_ref()), ("r", "hi"));
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let m = parse(r#"{"type":"message","room":"r","text":"caf\u00e9"}"#).unwrap();
        assert!(matches!(m.room, Cow::Borrowed("r")));
        assert_eq!(m.text, Cow::<str>::Owned("café".into()));
    }

    #[test]
    fn nonsense_is_refused_with_a_reason() {
        for (text, reason) in [
            ("not json", "malformed JSON"),
            (r#"{"type":"message","#, "malformed JSON"),
            ("[1,2,3]", "JSON object"),
            ("5", "JSON object"),
            (r#"{"room":"r","text":"hi"}"#, "missing \"type\""),
            (r#"{"type":1,"room":"r","text":"hi"}"#, "missing \"type\""),
            (
                r#"{"type":"shout","room":"r","text":"hi"}"#,
                "unknown message type",
            ),
            (r#"{"type":"message","text":"hi"}"#, "missing \"room\""),
            (
                r#"{"type":"message","room":"r","text":5}"#,
                "\"text\" (a string)",
            ),
            (r#"{"type":"message","room":"r","text":" \n "}"#, "empty"),
            (
                r#"{"type":"message","room":"r","text":"12345678901"}"#,
                "too long",
            ),
            (
                r#"{"type":"message","room":"r","room":"s","text":"hi"}"#,
                "duplicate",
            ),
            (
                r#"{"type":"message","room":"r","text":"hi"} {}"#,
                "trailing",
            ),
        ] {
            let error = parse(text).expect_err(text);
            assert!(error.contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn the_size_check_comes_before_parsing() {
        let limit = 6 * 10 + 1024;
        let padding = format!("{{{}", " ".repeat(limit));
        assert_eq!(
            parse(&padding),
            Err(format!("message too long: {} bytes, at most 10", limit + 1))
        );
        assert!(parse(&padding[..limit])
            .unwrap_err()
            .contains("malformed JSON"));
    }
}
