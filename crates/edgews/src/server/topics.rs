//! A topic registry: connections subscribe to named topics; publishing
//! sends one shared frame to every subscriber.
//!
//! # Cost and bounds
//!
//! Subscribing, unsubscribing and checking a subscription cost O(1)
//! (hash lookups); dropping a connection costs O(k) in its own k topics;
//! nothing scans all connections or all topics. Empty topics are forgotten.
//!
//! Each topic name is stored once, as an `Rc<str>` shared by both maps.
//! With 8-byte [`ConnId`]s and hashbrown tables (at most 7/8 full, growing
//! by doubling), the heap held is about:
//!
//! - per topic: its name (16 + name bytes), its entry in the topic map
//!   (16-byte key + 48-byte set, with slack ≈ 150 bytes) and its smallest
//!   subscriber set (≈ 60 bytes): ≈ 230 bytes + the name;
//! - per subscription: an 8-byte id in the topic's set and a 16-byte `Rc`
//!   in the connection's set, 26 bytes with their control bytes, ≈ 55
//!   bytes with slack;
//! - per subscribed connection: its entry in the connection map (56 bytes,
//!   ≈ 120 with slack) and the smallest set (≈ 90 bytes) it may not fill.
//!
//! Measured (same structures, counting allocator): 1 000 new topics of 200
//! bytes on one connection hold 436 KB, 436 bytes each; 1 000 connections
//! on the same 1 000 topics, 54 bytes a subscription; 100 000 connections
//! on one topic, 170 bytes each (their own overhead included); a lone
//! subscription to a lone topic, 872 bytes (every table at its smallest).
//!
//! So [`TopicLimits`] bounds the whole: at most `max_topics × (230 + the
//! longest name)` bytes for the topics, plus ≈ 55 bytes a subscription
//! (at most connections × `max_subscriptions_per_connection` of them),
//! plus ≈ 200 bytes a subscribed connection.

use crate::protocol::MessageKind;
use crate::reactor::{ConnId, Context, SendError};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::rc::Rc;

/// Caps on what connections may make the registry hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicLimits {
    /// Most topics with at least one subscriber, server-wide. Default 100_000.
    pub max_topics: usize,
    /// Most topics one connection may subscribe to. Default 128 (as
    /// Centrifugo's per-client channel limit): with the default 10,000
    /// connections that bounds subscriptions to 1.28 million.
    pub max_subscriptions_per_connection: usize,
    /// Most subscribers one topic may have. Default 100_000 (chat uses this
    /// as its room-size cap).
    pub max_subscribers_per_topic: usize,
}

impl Default for TopicLimits {
    fn default() -> Self {
        TopicLimits {
            max_topics: 100_000,
            max_subscriptions_per_connection: 128,
            max_subscribers_per_topic: 100_000,
        }
    }
}

/// Why a subscription was refused: which cap it would have broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeError {
    /// The topic is new and the server already has `max_topics` topics
    /// (the cap is carried).
    TooManyTopics(usize),
    /// The connection already has `max_subscriptions_per_connection`
    /// subscriptions (the cap is carried).
    TooManySubscriptions(usize),
    /// The topic already has `max_subscribers_per_topic` subscribers (the
    /// cap is carried).
    TopicFull(usize),
}

impl fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubscribeError::TooManyTopics(max) => {
                write!(f, "too many topics: the server holds at most {max}")
            }
            SubscribeError::TooManySubscriptions(max) => write!(
                f,
                "too many subscriptions: a connection may have at most {max}"
            ),
            SubscribeError::TopicFull(max) => {
                write!(f, "topic full: a topic may have at most {max} subscribers")
            }
        }
    }
}

impl std::error::Error for SubscribeError {}

/// Which connections listen to which topics, within [`TopicLimits`].
///
/// Every operation but [`remove_connection`](Topics::remove_connection)
/// (O(k) in the connection's k topics) costs O(1); see the module docs for
/// the memory each subscription holds.
#[derive(Debug, Default)]
pub struct Topics {
    limits: TopicLimits,
    /// Every topic with at least one subscriber; never an empty set.
    subscribers: HashMap<Rc<str>, HashSet<ConnId>>,
    /// The same subscriptions by connection, keys shared with
    /// `subscribers`; never an empty set.
    by_connection: HashMap<ConnId, HashSet<Rc<str>>>,
    subscriptions: usize,
    refused: u64,
}

impl Topics {
    /// An empty registry with the default limits.
    pub fn new() -> Topics {
        Topics::default()
    }

    /// An empty registry with `limits`.
    pub fn with_limits(limits: TopicLimits) -> Topics {
        Topics {
            limits,
            ..Topics::default()
        }
    }

    /// The limits this registry enforces.
    pub fn limits(&self) -> TopicLimits {
        self.limits
    }

    /// Subscribes `id` to `topic`: `Ok(false)` if it already was, an error
    /// (and nothing changed) if that would break a cap.
    pub fn subscribe(&mut self, id: ConnId, topic: &str) -> Result<bool, SubscribeError> {
        if self.is_subscribed(id, topic) {
            return Ok(false);
        }
        let own = self.by_connection.get(&id).map_or(0, HashSet::len);
        let refusal = if own >= self.limits.max_subscriptions_per_connection {
            Err(SubscribeError::TooManySubscriptions(
                self.limits.max_subscriptions_per_connection,
            ))
        } else {
            self.check_new_subscriber(topic)
        };
        if let Err(error) = refusal {
            self.refused += 1;
            return Err(error);
        }
        let key = match self.subscribers.get_key_value(topic) {
            Some((key, _)) => Rc::clone(key),
            None => Rc::from(topic),
        };
        self.subscribers
            .entry(Rc::clone(&key))
            .or_default()
            .insert(id);
        self.by_connection.entry(id).or_default().insert(key);
        self.subscriptions += 1;
        Ok(true)
    }

    /// Whether a connection with no subscription yet could subscribe to
    /// `topic` now: the error [`subscribe`](Topics::subscribe) would give.
    /// Lets a server refuse an upgrade instead of opening a connection it
    /// must close at once.
    pub fn check_new_subscriber(&self, topic: &str) -> Result<(), SubscribeError> {
        match self.subscribers.get(topic) {
            Some(set) if set.len() >= self.limits.max_subscribers_per_topic => Err(
                SubscribeError::TopicFull(self.limits.max_subscribers_per_topic),
            ),
            Some(_) => Ok(()),
            None if self.subscribers.len() >= self.limits.max_topics => {
                Err(SubscribeError::TooManyTopics(self.limits.max_topics))
            }
            None if self.limits.max_subscribers_per_topic == 0 => Err(SubscribeError::TopicFull(
                self.limits.max_subscribers_per_topic,
            )),
            None => Ok(()),
        }
    }

    /// Unsubscribes `id` from `topic`; false if it was not subscribed.
    pub fn unsubscribe(&mut self, id: ConnId, topic: &str) -> bool {
        let Some(own) = self.by_connection.get_mut(&id) else {
            return false;
        };
        if !own.remove(topic) {
            return false;
        }
        if own.is_empty() {
            self.by_connection.remove(&id);
        }
        self.forget(id, topic);
        true
    }

    /// Removes every subscription of `id` (call it when the connection
    /// closes, whatever the reason).
    pub fn remove_connection(&mut self, id: ConnId) {
        for topic in self.by_connection.remove(&id).unwrap_or_default() {
            self.forget(id, &topic);
        }
    }

    /// Takes `id` out of `topic`'s subscribers (its own set is already
    /// updated), forgetting the topic once empty.
    fn forget(&mut self, id: ConnId, topic: &str) {
        if let Some(set) = self.subscribers.get_mut(topic) {
            if set.remove(&id) {
                self.subscriptions -= 1;
            }
            if set.is_empty() {
                self.subscribers.remove(topic);
            }
        }
    }

    /// Sends a message to every subscriber of `topic` except `except`. The
    /// frame is encoded once and shared. Returns the number of recipients.
    pub fn publish(
        &self,
        ctx: &mut Context<'_>,
        topic: &str,
        kind: MessageKind,
        data: &[u8],
        except: Option<ConnId>,
    ) -> Result<usize, SendError> {
        let Some(set) = self.subscribers.get(topic) else {
            return Ok(0);
        };
        ctx.send_shared(
            set.iter().copied().filter(|&id| Some(id) != except),
            kind,
            data,
        )
    }

    /// Sends one text message, the concatenation of `parts`, to every
    /// subscriber of `topic` except `except`. The frame is built in place
    /// from the parts and shared ([`Context::send_shared_text`]): an
    /// envelope around a large payload costs one copy of the payload, not
    /// two. Returns the number of recipients.
    pub fn publish_text_parts(
        &self,
        ctx: &mut Context<'_>,
        topic: &str,
        parts: &[&str],
        except: Option<ConnId>,
    ) -> Result<usize, SendError> {
        let Some(set) = self.subscribers.get(topic) else {
            return Ok(0);
        };
        ctx.send_shared_text(set.iter().copied().filter(|&id| Some(id) != except), parts)
    }

    /// The subscribers of `topic`, in no particular order.
    pub fn subscribers(&self, topic: &str) -> impl Iterator<Item = ConnId> + '_ {
        self.subscribers.get(topic).into_iter().flatten().copied()
    }

    /// How many subscribers `topic` has.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.subscribers.get(topic).map_or(0, HashSet::len)
    }

    /// The topics `id` is subscribed to, in no particular order.
    pub fn topics_of(&self, id: ConnId) -> impl Iterator<Item = &str> + '_ {
        self.by_connection
            .get(&id)
            .into_iter()
            .flatten()
            .map(|topic| &**topic)
    }

    /// Whether `id` is subscribed to `topic`.
    pub fn is_subscribed(&self, id: ConnId, topic: &str) -> bool {
        self.by_connection
            .get(&id)
            .is_some_and(|own| own.contains(topic))
    }

    /// Topics with at least one subscriber.
    pub fn topic_count(&self) -> usize {
        self.subscribers.len()
    }

    /// Subscriptions, all topics together.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions
    }

    /// Subscriptions refused by a cap since the registry was made (by
    /// [`subscribe`](Topics::subscribe); a refusal at the upgrade, after
    /// [`check_new_subscriber`](Topics::check_new_subscriber), is an HTTP
    /// status and counted with the handshake failures).
    pub fn refused_count(&self) -> u64 {
        self.refused
    }

    /// The registry's gauges and counter in the Prometheus text format.
    pub fn to_prometheus(&self) -> String {
        format!(
            "# HELP edgews_topics Topics with at least one subscriber.\n# TYPE edgews_topics gauge\nedgews_topics {}\n\
             # HELP edgews_subscriptions Subscriptions, all topics together.\n# TYPE edgews_subscriptions gauge\n\
             edgews_subscriptions {}\n\
             # HELP edgews_subscriptions_refused_total Subscriptions of open connections refused by a cap on topics, subscriptions or subscribers (refusals at the upgrade count in edgews_handshake_failures_total).\n\
             # TYPE edgews_subscriptions_refused_total counter\n\
             edgews_subscriptions_refused_total {}\n",
            self.topic_count(),
            self.subscription_count(),
            self.refused_count()
        )
    }
}

#[cfg(test)]
#[path = "topics_tests.rs"]
mod tests;
