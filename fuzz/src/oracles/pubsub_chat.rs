//! The `pubsub_control` and `chat_message` oracles: the server's JSON
//! message parsers checked against a full JSON parse.

use super::{MAX_CONTROL, MAX_TEXT};
use edgews::server::{check_topic, parse_control, parse_message, Control};
use serde_json::Value;

/// Whether `part` is a slice of `whole` (the same memory, not a copy).
fn is_slice_of(part: &str, whole: &str) -> bool {
    let range = whole.as_bytes().as_ptr_range();
    let part = part.as_bytes().as_ptr_range();
    range.start <= part.start && part.end <= range.end
}

/// The JSON tree of an accepted message, to compare with what the parser
/// returned; `None` when the message is valid JSON that serde_json will
/// not build: the parsers skip what they do not use (checking its syntax
/// only), and that may nest deeper than serde_json's recursion limit or
/// hold a string with a lone surrogate escape (`"\ud800"`).
fn tree_of(text: &str) -> Option<Value> {
    match serde_json::from_str(text) {
        Ok(value) => Some(value),
        Err(e) => {
            let syntax = serde_json::from_str::<serde::de::IgnoredAny>(text);
            assert!(syntax.is_ok(), "accepted, yet not JSON: {e}");
            None
        }
    }
}

/// The input as text: the handlers only ever see UTF-8, so other bytes are
/// replaced (which still lets the fuzzer reach every string).
fn as_text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Arbitrary text through [`parse_control`], checked against a full JSON
/// parse: never a panic; over [`MAX_CONTROL`] bytes always refused, and
/// the limit is exact (the same verdict with the input's own length as the
/// limit, refusal with one byte less); an accepted message is one JSON
/// object with only the op's fields, which the [`Control`] agrees with, a
/// valid topic, and for a publication `data` that is valid JSON, a slice of
/// the input, equal to the object's `data` (see `tree_of` for when there is
/// no tree to compare with).
pub fn pubsub_control(data: &[u8]) {
    let text = as_text(data);
    let result = parse_control(&text, MAX_CONTROL);
    if text.len() > MAX_CONTROL {
        let error = result.expect_err("a control message over the limit was accepted");
        assert!(error.starts_with("control message too large"), "{error}");
        return;
    }
    assert_eq!(
        parse_control(&text, text.len()),
        result,
        "the verdict depends on the limit"
    );
    if !text.is_empty() {
        assert!(parse_control(&text, text.len() - 1).is_err());
    }
    let Ok(control) = result else { return };
    let (topic, data) = match &control {
        Control::Subscribe { topic } | Control::Unsubscribe { topic } => (topic, None),
        Control::Publish { topic, data, .. } => (topic, Some(*data)),
    };
    assert!(check_topic(topic).is_ok());
    assert!(!topic.is_empty() && topic.len() <= 200 && !topic.chars().any(char::is_control));
    if let Some(data) = data {
        assert!(is_slice_of(data, &text), "data was copied");
        assert!(serde_json::from_str::<serde::de::IgnoredAny>(data).is_ok());
    }
    // `data` is checked for syntax, not built into a tree
    let Some(value) = tree_of(&text) else { return };
    let object = value.as_object().expect("accepted, yet not an object");
    assert_eq!(object["topic"], topic.as_ref());
    let (op, allowed): (&str, &[&str]) = match control {
        Control::Subscribe { .. } => ("subscribe", &["op", "topic"]),
        Control::Unsubscribe { .. } => ("unsubscribe", &["op", "topic"]),
        Control::Publish { data, echo, .. } => {
            assert_eq!(serde_json::from_str::<Value>(data).unwrap(), object["data"]);
            assert_eq!(echo, object.get("echo") == Some(&Value::Bool(true)));
            ("publish", &["op", "topic", "data", "echo"])
        }
    };
    assert_eq!(object["op"], op);
    assert!(
        object.keys().all(|k| allowed.contains(&k.as_str())),
        "accepted with fields {:?}",
        object.keys().collect::<Vec<_>>()
    );
}

/// Arbitrary text through [`parse_message`] with [`MAX_TEXT`], checked
/// against a full JSON parse: never a panic; a message over `6 × MAX_TEXT +
/// 1024` bytes always refused; an accepted one is a JSON object of type
/// `message` whose `room` and `text` are the ones returned, the text at
/// most [`MAX_TEXT`] bytes and not only whitespace.
pub fn chat_message(data: &[u8]) {
    let text = as_text(data);
    let result = parse_message(&text, MAX_TEXT);
    if text.len() > 6 * MAX_TEXT + 1024 {
        let error = result.expect_err("a chat message over the limit was accepted");
        assert!(error.starts_with("message too long"), "{error}");
        return;
    }
    let Ok(message) = result else { return };
    assert!(message.text.len() <= MAX_TEXT);
    assert!(!message.text.trim().is_empty());
    // unknown fields are checked for syntax, not built into a tree
    let Some(value) = tree_of(&text) else { return };
    let object = value.as_object().expect("accepted, yet not an object");
    assert_eq!(object["type"], "message");
    assert_eq!(object["room"], message.room.as_ref());
    assert_eq!(object["text"], message.text.as_ref());
    for part in [&message.room, &message.text] {
        if let std::borrow::Cow::Borrowed(s) = part {
            assert!(is_slice_of(s, &text));
        }
    }
}
