//! The pub/sub control messages, parsed in one flat pass that borrows from
//! the message: no JSON tree is built, and a publication's `data` stays a
//! slice of the message until it is copied, once, into the frame sent on.

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The longest topic name, in bytes.
pub const MAX_TOPIC_LEN: usize = 200;

/// A valid control message from a client, borrowed from its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control<'a> {
    /// `{"op":"subscribe","topic":T}`
    Subscribe {
        /// The topic, a valid name (see [`check_topic`]).
        topic: Cow<'a, str>,
    },
    /// `{"op":"unsubscribe","topic":T}`
    Unsubscribe {
        /// The topic, a valid name (see [`check_topic`]).
        topic: Cow<'a, str>,
    },
    /// `{"op":"publish","topic":T,"data":ANY}`, optionally `"echo":true`.
    Publish {
        /// The topic, a valid name (see [`check_topic`]).
        topic: Cow<'a, str>,
        /// The JSON text of `data`, exactly as it appears in the message
        /// (a slice of it, checked to be one valid JSON value).
        data: &'a str,
        /// Whether the publisher, when subscribed, gets its own message.
        echo: bool,
    },
}

/// The message as it comes: every field optional, checked per op after.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    #[serde(borrow)]
    op: Cow<'a, str>,
    #[serde(borrow, default)]
    topic: Option<Text<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    #[serde(default)]
    echo: Option<bool>,
}

/// A string borrowed from the message unless it has escapes (`Option`
/// alone would always copy it).
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// `data` when present, even when it is `null` (which `Option` alone would
/// take for absent).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Parses and checks one control message of at most `max_size` bytes.
///
/// A longer message is refused before any parsing. Otherwise the message
/// must be one JSON object with `op` and only the fields of that op:
/// `topic` for all three, `data` (any JSON value) and optionally `echo`
/// (a boolean) for `publish`. The error is a sentence for the client.
///
/// Memory: the parse allocates only for a string with escapes (`op` or
/// `topic`, each a copy at most the message's size); `data` is borrowed.
pub fn parse_control(text: &str, max_size: usize) -> Result<Control<'_>, String> {
    if text.len() > max_size {
        return Err(format!(
            "control message too large: {} bytes, at most {max_size}",
            text.len()
        ));
    }
    // serde would also take a struct as an array of its fields
    if !text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        return Err("invalid control message: expected a JSON object".into());
    }
    let wire: Wire<'_> =
        serde_json::from_str(text).map_err(|e| format!("invalid control message: {e}"))?;
    let op = wire.op.as_ref();
    match op {
        "subscribe" | "unsubscribe" => {
            if wire.data.is_some() || wire.echo.is_some() {
                return Err(format!("{op} takes only \"topic\""));
            }
            let topic = topic_of(wire.topic)?;
            Ok(if op == "subscribe" {
                Control::Subscribe { topic }
            } else {
                Control::Unsubscribe { topic }
            })
        }
        "publish" => {
            let topic = topic_of(wire.topic)?;
            let data = wire
                .data
                .ok_or_else(|| "publish needs \"data\"".to_string())?;
            Ok(Control::Publish {
                topic,
                data: data.get(),
                echo: wire.echo.unwrap_or(false),
            })
        }
        other => Err(format!(
            "unknown op {other:?}: use subscribe, unsubscribe or publish"
        )),
    }
}

fn topic_of(topic: Option<Text<'_>>) -> Result<Cow<'_, str>, String> {
    let Text(topic) = topic.ok_or_else(|| "missing \"topic\"".to_string())?;
    check_topic(&topic)?;
    Ok(topic)
}

/// Checks a topic name: 1 to [`MAX_TOPIC_LEN`] bytes, no control characters.
pub fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN {
        return Err(format!("topic names are 1 to {MAX_TOPIC_LEN} bytes"));
    }
    if topic.chars().any(char::is_control) {
        return Err("topic names may not contain control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 64 << 10;

    fn parse(text: &str) -> Result<Control<'_>, String> {
        parse_control(text, MAX)
    }

    #[test]
    fn the_three_ops_parse() {
        assert_eq!(
            parse(r#"{"op":"subscribe","topic":"t"}"#),
            Ok(Control::Subscribe { topic: "t".into() })
        );
        assert_eq!(
            parse(r#" {"topic":"t","op":"unsubscribe"}"#),
            Ok(Control::Unsubscribe { topic: "t".into() })
        );
        assert_eq!(
            parse(r#"{"op":"publish","topic":"t","data":{"x": [1, 2]}}"#),
            Ok(Control::Publish {
                topic: "t".into(),
                data: r#"{"x": [1, 2]}"#,
                echo: false
            })
        );
        assert_eq!(
            parse(r#"{"op":"publish","topic":"t","data":null,"echo":true}"#),
            Ok(Control::Publish {
                topic: "t".into(),
                data: "null",
                echo: true
            })
        );
    }

    #[test]
    fn publish_data_is_borrowed_from_the_message() {
        let text = format!(
            r#"{{"op":"publish","topic":"t","data":[{}0]}}"#,
            "0,".repeat(1000)
        );
        let Ok(Control::Publish { data, topic, .. }) = parse(&text) else {
            panic!("not a publish");
        };
        assert!(matches!(topic, Cow::Borrowed(_)));
        let range = text.as_bytes().as_ptr_range();
        assert!(range.contains(&data.as_ptr()), "data was copied");
    }

    #[test]
    fn escaped_topics_are_unescaped() {
        assert_eq!(
            parse(r#"{"op":"subscribe","topic":"caf\u00e9 \"x\""}"#),
            Ok(Control::Subscribe {
                topic: "café \"x\"".into()
            })
        );
    }

    #[test]
    fn nonsense_is_refused_with_a_reason() {
        for (text, reason) in [
            ("not json", "expected a JSON object"),
            (r#"["subscribe","t"]"#, "expected a JSON object"),
            (r#"{"op":"dance","topic":"t"}"#, "unknown op"),
            (r#"{"op":"subscribe"}"#, "missing \"topic\""),
            (r#"{"topic":"t"}"#, "missing field `op`"),
            (r#"{"op":"subscribe","topic":""}"#, "1 to 200 bytes"),
            (r#"{"op":"subscribe","topic":"a\nb"}"#, "control characters"),
            (
                r#"{"op":"subscribe","topic":"t","data":1}"#,
                "only \"topic\"",
            ),
            (r#"{"op":"unsubscribe","topic":"t","echo":true}"#, "only"),
            (r#"{"op":"publish","topic":"t"}"#, "needs \"data\""),
            (
                r#"{"op":"publish","topic":"t","data":1,"x":2}"#,
                "unknown field",
            ),
            (
                r#"{"op":"publish","topic":"t","data":1,"echo":1}"#,
                "invalid type",
            ),
            (
                r#"{"op":"publish","topic":"t","data":[1,}"#,
                "invalid control",
            ),
            (
                r#"{"op":"publish","op":"publish","topic":"t","data":1}"#,
                "duplicate",
            ),
            (r#"{"op":"subscribe","topic":"t"} x"#, "trailing"),
        ] {
            let error = parse(text).expect_err(text);
            assert!(error.contains(reason), "{text}: {error}");
        }
        let long = "t".repeat(MAX_TOPIC_LEN + 1);
        let text = format!(r#"{{"op":"subscribe","topic":"{long}"}}"#);
        assert!(parse(&text).unwrap_err().contains("1 to 200 bytes"));
    }

    #[test]
    fn a_message_over_the_size_limit_is_refused_unparsed() {
        let text = r#"{"op":"subscribe","topic":"t"}"#;
        assert!(parse_control(text, text.len()).is_ok());
        assert_eq!(
            parse_control(text, text.len() - 1),
            Err(format!(
                "control message too large: {} bytes, at most {}",
                text.len(),
                text.len() - 1
            ))
        );
    }
}
