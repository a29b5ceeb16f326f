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

use crate::protocol::{CloseCode, Message, MessageKind};
use crate::reactor::{Channel, ConnId, Context, Relayed, SendError, RELAY_LOST_REASON};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Subscriber counts per topic for a whole process: what keeps the caps of
/// [`TopicLimits`] (topics, subscribers per topic) process-wide when each
/// worker holds its own [`Topics`]. One lock, taken per subscribe and
/// unsubscribe, never per message. Costs per topic its name once more
/// (≈ 60 bytes + the name).
#[derive(Debug, Clone, Default)]
pub struct TopicCensus(Arc<Mutex<Census>>);

#[derive(Debug, Default)]
struct Census {
    subscribers: HashMap<Box<str>, usize>,
    subscriptions: usize,
    refused: u64,
}

impl TopicCensus {
    /// An empty census.
    pub fn new() -> TopicCensus {
        TopicCensus::default()
    }

    fn lock(&self) -> MutexGuard<'_, Census> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Census {
    fn check(&self, limits: &TopicLimits, topic: &str) -> Result<(), SubscribeError> {
        check_counts(
            limits,
            self.subscribers.get(topic).copied(),
            self.subscribers.len(),
        )
    }

    fn forget(&mut self, topic: &str) {
        self.subscriptions -= 1;
        if let Some(n) = self.subscribers.get_mut(topic) {
            *n -= 1;
            if *n == 0 {
                self.subscribers.remove(topic);
            }
        }
    }
}

/// The cap a new subscriber to a topic with `subscribers` (none: a new
/// topic) would break, among `topics` topics.
fn check_counts(
    limits: &TopicLimits,
    subscribers: Option<usize>,
    topics: usize,
) -> Result<(), SubscribeError> {
    match subscribers {
        Some(n) if n >= limits.max_subscribers_per_topic => {
            Err(SubscribeError::TopicFull(limits.max_subscribers_per_topic))
        }
        Some(_) => Ok(()),
        None if topics >= limits.max_topics => {
            Err(SubscribeError::TooManyTopics(limits.max_topics))
        }
        None if limits.max_subscribers_per_topic == 0 => {
            Err(SubscribeError::TopicFull(limits.max_subscribers_per_topic))
        }
        None => Ok(()),
    }
}

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
    /// The process-wide counts, when workers share the caps.
    census: Option<TopicCensus>,
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

    /// An empty registry with `limits` enforced process-wide: every
    /// worker's registry made with a clone of the same `census` counts
    /// against the same caps, and reports the process's gauges.
    pub fn with_census(limits: TopicLimits, census: TopicCensus) -> Topics {
        Topics {
            limits,
            census: Some(census),
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
            self.count_in(topic)
        };
        if let Err(error) = refusal {
            match &self.census {
                Some(census) => census.lock().refused += 1,
                None => self.refused += 1,
            }
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
        match &self.census {
            Some(census) => census.lock().check(&self.limits, topic),
            None => check_counts(
                &self.limits,
                self.subscribers.get(topic).map(HashSet::len),
                self.subscribers.len(),
            ),
        }
    }

    /// Checks the caps for one more subscriber of `topic` and, with a
    /// census, counts it there under the same lock (so two workers cannot
    /// both take the last place).
    fn count_in(&self, topic: &str) -> Result<(), SubscribeError> {
        let Some(census) = &self.census else {
            return self.check_new_subscriber(topic);
        };
        let mut census = census.lock();
        census.check(&self.limits, topic)?;
        *census.subscribers.entry(topic.into()).or_insert(0) += 1;
        census.subscriptions += 1;
        Ok(())
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
                if let Some(census) = &self.census {
                    census.lock().forget(topic);
                }
            }
            if set.is_empty() {
                self.subscribers.remove(topic);
            }
        }
    }

    /// Sends a message to every subscriber of `topic` except `except` (with
    /// workers, every worker's subscribers: see
    /// [`deliver_relayed`](Topics::deliver_relayed)). The frame is encoded
    /// once and shared. Returns the number of recipients on this worker.
    pub fn publish(
        &self,
        ctx: &mut Context<'_>,
        topic: &str,
        kind: MessageKind,
        data: &[u8],
        except: Option<ConnId>,
    ) -> Result<usize, SendError> {
        let message = Message::new(kind, data)?;
        let ids = self.recipients(topic, except);
        if ctx.workers() > 1 || ctx.is_bridged() {
            return Ok(ctx.publish_message(ids, Channel::Topic(topic.into()), &message, except));
        }
        ctx.send_shared_message(ids, &message)
    }

    /// Sends one text message, the concatenation of `parts`, to every
    /// subscriber of `topic` except `except` (every worker's, as
    /// [`publish`](Topics::publish)). The frame is built in place from the
    /// parts and shared ([`Context::send_shared_text`]): an envelope around
    /// a large payload costs one copy of the payload, not two. Returns the
    /// number of recipients on this worker.
    pub fn publish_text_parts(
        &self,
        ctx: &mut Context<'_>,
        topic: &str,
        parts: &[&str],
        except: Option<ConnId>,
    ) -> Result<usize, SendError> {
        let ids = self.recipients(topic, except);
        if ctx.workers() > 1 || ctx.is_bridged() {
            return Ok(ctx.publish_text(ids, Channel::Topic(topic.into()), parts, except));
        }
        ctx.send_shared_text(ids, parts)
    }

    fn recipients(&self, topic: &str, except: Option<ConnId>) -> impl Iterator<Item = ConnId> + '_ {
        self.subscribers(topic)
            .filter(move |&id| Some(id) != except)
    }

    /// Delivers a message another worker published on a topic to this
    /// worker's subscribers of it (call it from
    /// [`Handler::on_relayed`](crate::reactor::Handler::on_relayed)).
    /// Returns how many.
    pub fn deliver_relayed(&self, ctx: &mut Context<'_>, relayed: &Relayed) -> usize {
        let Channel::Topic(topic) = &relayed.channel else {
            return 0;
        };
        ctx.send_relayed(self.recipients(topic, relayed.except), relayed)
    }

    /// Closes this worker's subscribers of `channel`'s topic with 1013: they
    /// missed a relayed message (call it from
    /// [`Handler::on_relay_lost`](crate::reactor::Handler::on_relay_lost)).
    pub fn close_lost(&self, ctx: &mut Context<'_>, channel: &Channel) {
        let Channel::Topic(topic) = channel else {
            return;
        };
        let ids: Vec<ConnId> = self.subscribers(topic).collect();
        for id in ids {
            let _ = ctx.close(id, CloseCode::TRY_AGAIN_LATER, RELAY_LOST_REASON);
        }
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

    /// Topics with at least one subscriber (in the whole process, with a
    /// census).
    pub fn topic_count(&self) -> usize {
        match &self.census {
            Some(census) => census.lock().subscribers.len(),
            None => self.subscribers.len(),
        }
    }

    /// Subscriptions, all topics together (in the whole process, with a
    /// census).
    pub fn subscription_count(&self) -> usize {
        match &self.census {
            Some(census) => census.lock().subscriptions,
            None => self.subscriptions,
        }
    }

    /// Subscriptions refused by a cap since the registry was made (by
    /// [`subscribe`](Topics::subscribe); a refusal at the upgrade, after
    /// [`check_new_subscriber`](Topics::check_new_subscriber), is an HTTP
    /// status and counted with the handshake failures).
    pub fn refused_count(&self) -> u64 {
        match &self.census {
            Some(census) => census.lock().refused,
            None => self.refused,
        }
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
