//! What crosses between the Redis link and the handlers: the keys of
//! broadcasts and topics, the requests other workers send to the worker
//! holding the link, the delivery of what arrives, and the
//! [`Context`] side (publish, subscribe).

use super::context::Context;
use super::handler::Handler;
use super::process::{Channel, Delivery, Relayed};
use super::Reactor;
use crate::protocol::{FrameEncoding, Message, SharedFrame};
use crate::redis::envelope::Kind;
use crate::redis::link::{Bridged, Published};

/// The key of broadcasts ([`Channel::All`]) on Redis.
pub const BROADCAST_KEY: &str = "broadcast";

/// The prefix of a pub/sub topic's key on Redis.
pub const TOPIC_KEY_PREFIX: &str = "topic:";

/// A request from another worker to the one holding the link.
#[derive(Debug)]
pub(crate) enum BridgeCommand {
    Publish {
        key: String,
        kind: Kind,
        payload: Vec<u8>,
    },
    Subscribe(String),
    Unsubscribe(String),
}

/// The Redis key of `channel`.
pub(crate) fn channel_key(channel: &Channel) -> String {
    match channel {
        Channel::All => BROADCAST_KEY.to_string(),
        Channel::Topic(topic) => format!("{TOPIC_KEY_PREFIX}{topic}"),
    }
}

impl<H: Handler> Reactor<H> {
    /// A message from another instance: broadcasts and topics go to this
    /// worker's connections and are relayed to the others, as if published
    /// here (but not back to Redis); other keys go to the handler.
    pub(super) fn deliver_bridged(&mut self, bridged: Bridged) {
        let channel = if bridged.key == BROADCAST_KEY {
            Some(Channel::All)
        } else {
            bridged
                .key
                .strip_prefix(TOPIC_KEY_PREFIX)
                .map(|topic| Channel::Topic(topic.into()))
        };
        let mut ctx = Context::new(&mut self.hub, None);
        let (Some(channel), Kind::Text | Kind::Binary) = (channel, bridged.kind) else {
            self.handler.on_bridged(&mut ctx, &bridged);
            return;
        };
        let kind = match bridged.kind {
            Kind::Text => crate::protocol::MessageKind::Text,
            _ => crate::protocol::MessageKind::Binary,
        };
        // the envelope's decoding checked a text payload's UTF-8 already;
        // `new` checks it again (cheap next to the delivery) rather than
        // trusting it unchecked
        let Ok(message) = Message::new(kind, bridged.payload) else {
            return;
        };
        let frame = SharedFrame::message(FrameEncoding::PLAIN, &message);
        ctx.relay(channel.clone(), frame.clone(), 0, None, false);
        match channel {
            Channel::All => {
                let ids = ctx.take_recipients(None);
                ctx.share_message(ids.iter().copied(), &message, Some(&frame));
                ctx.hub.recipients = ids;
            }
            Channel::Topic(_) => {
                let origin = ctx.worker();
                let relayed = Relayed {
                    channel,
                    frame,
                    seq: 0,
                    except: None,
                    origin,
                };
                self.handler.on_relayed(&mut ctx, &relayed);
            }
        }
    }

    /// A command another worker sent to the link's holder.
    pub(super) fn on_bridge_command(&mut self, command: BridgeCommand) {
        let Some(link) = self.hub.bridge.as_deref_mut() else {
            return;
        };
        match command {
            BridgeCommand::Publish { key, kind, payload } => {
                link.publish(&key, kind, &payload);
            }
            BridgeCommand::Subscribe(key) => link.subscribe(&key),
            BridgeCommand::Unsubscribe(key) => link.unsubscribe(&key),
        }
    }
}

impl Context<'_> {
    /// Whether this process shares its topics with other instances through
    /// Redis (`--redis`).
    pub fn is_bridged(&self) -> bool {
        self.hub.config.redis.is_some()
    }

    /// Whether this worker holds the process's Redis link (worker 0 with
    /// `--redis`): where a handler's process-wide publications are best
    /// ordered.
    pub fn holds_bridge(&self) -> bool {
        self.hub.bridge.is_some()
    }

    /// Publishes `payload` on `key` to the other instances through Redis
    /// (from any worker); does nothing without `--redis`. The caller
    /// delivers it to this process's connections itself. A payload over
    /// `--redis-max-message` stays here ([`Published::Oversize`], counted);
    /// the other outcomes are counted by the link (see
    /// `crate::redis::link`), on the worker holding it.
    pub fn bridge_publish(&mut self, key: &str, kind: Kind, payload: &[u8]) -> Published {
        let Some(config) = &self.hub.config.redis else {
            return Published::Lost;
        };
        if let Some(link) = self.hub.bridge.as_deref_mut() {
            return link.publish(key, kind, payload);
        }
        if payload.len() > config.max_message {
            self.hub.stats.redis.link.oversize += 1;
            return Published::Oversize;
        }
        self.tell_bridge(BridgeCommand::Publish {
            key: key.to_string(),
            kind,
            payload: payload.to_vec(),
        });
        Published::Queued
    }

    /// One more subscriber of `key` here: the process subscribes its
    /// channel on Redis while it has any. Pair each with
    /// [`bridge_unsubscribe`](Context::bridge_unsubscribe).
    pub fn bridge_subscribe(&mut self, key: &str) {
        if !self.is_bridged() {
            return;
        }
        match self.hub.bridge.as_deref_mut() {
            Some(link) => link.subscribe(key),
            None => self.tell_bridge(BridgeCommand::Subscribe(key.to_string())),
        }
    }

    /// One subscriber of `key` fewer here.
    pub fn bridge_unsubscribe(&mut self, key: &str) {
        if !self.is_bridged() {
            return;
        }
        match self.hub.bridge.as_deref_mut() {
            Some(link) => link.unsubscribe(key),
            None => self.tell_bridge(BridgeCommand::Unsubscribe(key.to_string())),
        }
    }

    /// Sends `command` to worker 0, which holds the link.
    fn tell_bridge(&mut self, command: BridgeCommand) {
        let link = &self.hub.link;
        link.process.push(link.index, 0, Delivery::Bridge(command));
    }

    /// Publishes `message` on `channel` through Redis, when bridged.
    pub(super) fn bridge_message(&mut self, channel: &Channel, message: &Message<'_>) {
        if !self.is_bridged() {
            return;
        }
        let kind = match message.kind() {
            crate::protocol::MessageKind::Text => Kind::Text,
            crate::protocol::MessageKind::Binary => Kind::Binary,
        };
        self.bridge_publish(&channel_key(channel), kind, message.data());
    }
}
