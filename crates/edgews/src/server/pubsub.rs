//! The pub/sub server: topics picked by the request path and a small JSON
//! control protocol, with bounded memory.
//!
//! # Protocol
//!
//! - `ws://host/topics/NAME` subscribes the connection to `NAME`; `/` to
//!   `default`; other paths are refused with 404. When that subscription
//!   would break a cap of [`TopicLimits`] (a new topic past `max_topics`, a
//!   topic at `max_subscribers_per_topic`), the upgrade is refused with 503
//!   and the reason; should the cap be reached between the upgrade and the
//!   open, the connection is closed at once with 1008 and the reason.
//! - Client to server, text frames with one JSON object each
//!   ([`parse_control`]): `{"op":"subscribe","topic":"t"}`,
//!   `{"op":"unsubscribe","topic":"t"}`,
//!   `{"op":"publish","topic":"t","data":ANY}` (add `"echo":true` to receive
//!   your own message when subscribed). Topic names are 1 to
//!   [`MAX_TOPIC_LEN`] bytes without control characters; other fields are
//!   refused.
//! - Server to client: `{"type":"message","topic":"t","data":ANY}` for each
//!   publication (`ANY` exactly as published), `{"type":"subscribed",
//!   "topic":"t"}`, `{"type":"unsubscribed","topic":"t"}`, and
//!   `{"type":"error","error":"…"}` for a control message it cannot act on
//!   (malformed, over `max_control_size`, or a subscription past a cap);
//!   the connection stays open.
//!
//! # Memory
//!
//! - One message: a control message over
//!   [`max_control_size`](PubSubConfig::max_control_size) (64 KiB by
//!   default) is refused unparsed. The parse builds no tree: it allocates
//!   only to unescape `op` or `topic` (each at most the message's size),
//!   and `data` is a slice of the message. A publication is copied once,
//!   into one frame of at most `max_control_size + 450` bytes (the envelope
//!   plus the topic escaped, ≤ 2 × 200 + 2 bytes), shared by every recipient
//!   (each queue holds a reference; a queue past the reactor's
//!   `max_backpressure` closes its connection as too slow).
//! - The registry ([`Topics`], whose docs have the arithmetic and the
//!   measurements): a subscription that creates its topic costs ≈ 230
//!   bytes + the name (≤ 200), one to an existing topic ≈ 55 bytes, and a
//!   subscribed connection ≈ 200 bytes more.
//! - Per connection: at most `max_subscriptions_per_connection` (128)
//!   subscriptions, the path's topic included: 128 new 200-byte topics hold ≈ 56 KB (436 B each, the
//!   worst case); ≈ 7 KB when the topics exist.
//! - Per server: topics ≤ `max_topics` (100 000) × ≈ 440 B (200-byte
//!   names) ≈ 44 MB, plus ≈ 55 B a subscription: with the defaults and
//!   10 000 connections (the reactor's default), 1.28 million
//!   subscriptions ≈ 70 MB at worst. Lower `max_subscriptions_per_connection`
//!   (or the connection limit) to lower that product.
//!
//! The error replies may quote serde's message about the client's own
//! input; they go to that client only and are never logged.

use super::pubsub_control::{check_topic, parse_control, Control};
use super::topics::{TopicCensus, TopicLimits, Topics};
use crate::protocol::close::truncate_reason;
use crate::protocol::{CloseCode, Closed, HandshakeError, Message, Request};
use crate::reactor::{
    Accept, Channel, ConnId, Context, Handler, HttpResponse, OpenInfo, Relayed, TOPIC_KEY_PREFIX,
};
use serde_json::{json, Value};
use std::net::SocketAddr;

pub use super::pubsub_control::MAX_TOPIC_LEN;

/// What a pub/sub server allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubSubConfig {
    /// Largest control message (any client message), in bytes, checked
    /// before parsing. Default 64 KiB.
    pub max_control_size: usize,
    /// Caps on topics and subscriptions.
    pub limits: TopicLimits,
}

impl PubSubConfig {
    /// The largest WebSocket message the control protocol can use: run the
    /// server with the engine's `max_message_size` at most this, so that a
    /// larger message is refused (1009) as it arrives instead of being
    /// assembled first.
    pub fn max_message_size(&self) -> u64 {
        self.max_control_size as u64
    }
}

impl Default for PubSubConfig {
    fn default() -> Self {
        PubSubConfig {
            max_control_size: 64 << 10,
            limits: TopicLimits::default(),
        }
    }
}

/// The pub/sub handler.
#[derive(Debug, Default)]
pub struct PubSub {
    config: PubSubConfig,
    topics: Topics,
}

impl PubSub {
    /// A server with no topics yet and the default configuration.
    pub fn new() -> PubSub {
        PubSub::default()
    }

    /// A server with no topics yet and `config`.
    pub fn with_config(config: PubSubConfig) -> PubSub {
        PubSub {
            topics: Topics::with_limits(config.limits),
            config,
        }
    }

    /// A server for one worker among several: the caps of `config.limits`
    /// hold for the whole process through `census`, shared by every
    /// worker's handler; publications reach every worker's subscribers.
    pub fn with_census(config: PubSubConfig, census: TopicCensus) -> PubSub {
        PubSub {
            topics: Topics::with_census(config.limits, census),
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PubSubConfig {
        &self.config
    }

    /// The topic registry.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// With `--redis`: the first subscriber of `topic` on this worker
    /// subscribes its channel (the link counts workers).
    fn bridge_added(&self, ctx: &mut Context<'_>, added: bool, topic: &str) {
        if added && ctx.is_bridged() && self.topics.subscriber_count(topic) == 1 {
            ctx.bridge_subscribe(&format!("{TOPIC_KEY_PREFIX}{topic}"));
        }
    }

    /// With `--redis`: the last subscriber of `topic` on this worker gone.
    fn bridge_removed(&self, ctx: &mut Context<'_>, topic: &str) {
        if ctx.is_bridged() && self.topics.subscriber_count(topic) == 0 {
            ctx.bridge_unsubscribe(&format!("{TOPIC_KEY_PREFIX}{topic}"));
        }
    }

    fn control(&mut self, ctx: &mut Context<'_>, id: ConnId, text: &str) -> Result<(), String> {
        match parse_control(text, self.config.max_control_size)? {
            Control::Subscribe { topic } => {
                let added = self
                    .topics
                    .subscribe(id, &topic)
                    .map_err(|e| e.to_string())?;
                self.bridge_added(ctx, added, &topic);
                reply(ctx, id, &json!({"type": "subscribed", "topic": topic}));
            }
            Control::Unsubscribe { topic } => {
                if !self.topics.unsubscribe(id, &topic) {
                    return Err(format!("not subscribed to {topic:?}"));
                }
                self.bridge_removed(ctx, &topic);
                reply(ctx, id, &json!({"type": "unsubscribed", "topic": topic}));
            }
            Control::Publish { topic, data, echo } => {
                // a topic is at most 200 bytes: escaping it costs little
                let topic_json = Value::from(topic.as_ref()).to_string();
                let parts = [
                    r#"{"type":"message","topic":"#,
                    &topic_json,
                    r#","data":"#,
                    data,
                    "}",
                ];
                let except = (!echo).then_some(id);
                self.topics
                    .publish_text_parts(ctx, &topic, &parts, except)
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

fn reply(ctx: &mut Context<'_>, id: ConnId, value: &Value) {
    let _ = ctx.send_text(id, &value.to_string());
}

impl Handler for PubSub {
    fn on_upgrade(
        &mut self,
        request: &Request<'_>,
        _peer: SocketAddr,
    ) -> Result<Accept, HandshakeError> {
        let Some(topic) = topic_from_path(request.path()) else {
            return Err(HandshakeError::Refused(
                404,
                "no such topic path: use / or /topics/NAME".into(),
            ));
        };
        self.topics
            .check_new_subscriber(topic)
            .map_err(|e| HandshakeError::Refused(503, e.to_string()))?;
        Ok(Accept::default())
    }

    fn on_http(
        &mut self,
        ctx: &mut Context<'_>,
        request: &Request<'_>,
        _peer: SocketAddr,
    ) -> HttpResponse {
        if request.path() == "/metrics" {
            return HttpResponse::metrics(ctx.metrics_text() + &self.topics.to_prometheus());
        }
        HttpResponse::default_for(request)
    }

    fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId, info: &OpenInfo<'_>) {
        let path = info.request.map_or("/", |r| r.path());
        let Some(topic) = topic_from_path(path) else {
            return;
        };
        match self.topics.subscribe(id, topic) {
            Ok(added) => self.bridge_added(ctx, added, topic),
            Err(error) => {
                // the cap was reached after this upgrade was accepted
                let reason = error.to_string();
                let _ = ctx.close(id, CloseCode::POLICY_VIOLATION, truncate_reason(&reason));
            }
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

    fn on_close(&mut self, ctx: &mut Context<'_>, id: ConnId, _closed: &Closed) {
        let topics: Vec<String> = if ctx.is_bridged() {
            self.topics.topics_of(id).map(str::to_string).collect()
        } else {
            Vec::new()
        };
        self.topics.remove_connection(id);
        for topic in topics {
            self.bridge_removed(ctx, &topic);
        }
    }

    fn on_relayed(&mut self, ctx: &mut Context<'_>, relayed: &Relayed) {
        self.topics.deliver_relayed(ctx, relayed);
    }

    fn on_relay_lost(&mut self, ctx: &mut Context<'_>, channel: &Channel) {
        self.topics.close_lost(ctx, channel);
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
    fn the_configured_limits_reach_the_registry() {
        let limits = TopicLimits {
            max_topics: 7,
            ..TopicLimits::default()
        };
        let pubsub = PubSub::with_config(PubSubConfig {
            max_control_size: 10,
            limits,
        });
        assert_eq!(pubsub.topics().limits(), limits);
        assert_eq!(PubSub::new().config(), &PubSubConfig::default());
    }
}
