//! The pub/sub server: topics picked by the request path and a small JSON
//! control protocol.
//!
//! - `ws://host/topics/NAME` subscribes the connection to `NAME`; `/` to
//!   `default`; other paths are refused with 404.
//! - Client to server, text frames with JSON objects:
//!   `{"op":"subscribe","topic":"t"}`, `{"op":"unsubscribe","topic":"t"}`,
//!   `{"op":"publish","topic":"t","data":ANY}` (add `"echo":true` to receive
//!   your own message when subscribed).
//! - Server to client: `{"type":"message","topic":"t","data":ANY}` for each
//!   publication, `{"type":"subscribed","topic":"t"}`,
//!   `{"type":"unsubscribed","topic":"t"}`, and `{"type":"error","error":"…"}`
//!   for a control message it cannot act on; the connection stays open.

use super::topics::Topics;
use crate::protocol::{Closed, HandshakeError, Message, MessageKind, Request};
use crate::reactor::{Accept, ConnId, Context, Handler, HttpResponse, OpenInfo};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;

/// The longest topic name, in bytes.
pub const MAX_TOPIC_LEN: usize = 200;

/// The pub/sub handler.
#[derive(Debug, Default)]
pub struct PubSub {
    topics: Topics,
}

/// A control message from a client.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
enum Control {
    Subscribe {
        topic: String,
    },
    Unsubscribe {
        topic: String,
    },
    Publish {
        topic: String,
        data: Value,
        #[serde(default)]
        echo: bool,
    },
}

impl PubSub {
    /// A server with no topics yet.
    pub fn new() -> PubSub {
        PubSub::default()
    }

    /// The topic registry.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    fn control(&mut self, ctx: &mut Context<'_>, id: ConnId, text: &str) -> Result<(), String> {
        let control: Control =
            serde_json::from_str(text).map_err(|e| format!("invalid control message: {e}"))?;
        match control {
            Control::Subscribe { topic } => {
                check_topic(&topic)?;
                self.topics.subscribe(id, &topic);
                reply(ctx, id, &json!({"type": "subscribed", "topic": topic}));
            }
            Control::Unsubscribe { topic } => {
                if !self.topics.unsubscribe(id, &topic) {
                    return Err(format!("not subscribed to {topic:?}"));
                }
                reply(ctx, id, &json!({"type": "unsubscribed", "topic": topic}));
            }
            Control::Publish { topic, data, echo } => {
                check_topic(&topic)?;
                let envelope = json!({"type": "message", "topic": topic, "data": data}).to_string();
                let except = (!echo).then_some(id);
                self.topics
                    .publish(ctx, &topic, MessageKind::Text, envelope.as_bytes(), except)
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

/// The topic a request path names: `/topics/NAME`, or `default` for `/`.
pub fn topic_from_path(path: &str) -> Option<&str> {
    match path {
        "/" | "" => Some("default"),
        p => p
            .strip_prefix("/topics/")
            .filter(|t| check_topic(t).is_ok()),
    }
}

fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN {
        return Err(format!("topic names are 1 to {MAX_TOPIC_LEN} bytes"));
    }
    if topic.chars().any(char::is_control) {
        return Err("topic names may not contain control characters".into());
    }
    Ok(())
}

fn reply(ctx: &mut Context<'_>, id: ConnId, value: &Value) {
    let _ = ctx.send_text(id, &value.to_string());
}

impl Handler for PubSub {
    fn on_upgrade(
        &mut self,
        request: &Request<'_>,
        _peer: SocketAddr,
    ) -> Result<Accept, HandshakeError> {
        match topic_from_path(request.path()) {
            Some(_) => Ok(Accept::default()),
            None => Err(HandshakeError::Refused(
                404,
                "no such topic path: use / or /topics/NAME".into(),
            )),
        }
    }

    fn on_http(
        &mut self,
        ctx: &mut Context<'_>,
        request: &Request<'_>,
        _peer: SocketAddr,
    ) -> HttpResponse {
        if request.path() == "/metrics" {
            return HttpResponse::metrics(
                ctx.stats().to_prometheus() + &self.topics.to_prometheus(),
            );
        }
        HttpResponse::default_for(request)
    }

    fn on_open(&mut self, _ctx: &mut Context<'_>, id: ConnId, info: &OpenInfo<'_>) {
        let path = info.request.map_or("/", |r| r.path());
        if let Some(topic) = topic_from_path(path) {
            self.topics.subscribe(id, topic);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, message: Message<'_>) {
        let result = match message.as_text() {
            Some(text) => self.control(ctx, id, text),
            None => Err("binary messages are not part of the control protocol".into()),
        };
        if let Err(error) = result {
            reply(ctx, id, &json!({"type": "error", "error": error}));
        }
    }

    fn on_close(&mut self, _ctx: &mut Context<'_>, id: ConnId, _closed: &Closed) {
        self.topics.remove_connection(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_topics() {
        assert_eq!(topic_from_path("/"), Some("default"));
        assert_eq!(topic_from_path("/topics/news"), Some("news"));
        assert_eq!(topic_from_path("/topics/"), None);
        assert_eq!(topic_from_path("/other"), None);
    }

    #[test]
    fn control_messages_parse_and_reject_nonsense() {
        let c: Control = serde_json::from_str(r#"{"op":"subscribe","topic":"t"}"#).unwrap();
        assert!(matches!(c, Control::Subscribe { topic } if topic == "t"));
        let c: Control =
            serde_json::from_str(r#"{"op":"publish","topic":"t","data":{"x":1}}"#).unwrap();
        assert!(matches!(c, Control::Publish { echo: false, .. }));
        assert!(serde_json::from_str::<Control>(r#"{"op":"dance"}"#).is_err());
        assert!(serde_json::from_str::<Control>(r#"{"op":"subscribe"}"#).is_err());
    }
}
