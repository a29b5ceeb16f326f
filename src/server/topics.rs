//! A topic registry: connections subscribe to named topics; publishing
//! sends one shared frame to every subscriber.

use crate::protocol::MessageKind;
use crate::reactor::{ConnId, Context, SendError};
use std::collections::{BTreeSet, HashMap};

/// Which connections listen to which topics.
///
/// Subscribing, unsubscribing and dropping a connection cost O(log n) in
/// the topic's subscribers plus O(k) in the connection's own k topics;
/// nothing scans all connections. Empty topics are forgotten.
#[derive(Debug, Default)]
pub struct Topics {
    subscribers: HashMap<String, BTreeSet<ConnId>>,
    by_connection: HashMap<ConnId, Vec<String>>,
    subscriptions: usize,
}

impl Topics {
    /// An empty registry.
    pub fn new() -> Topics {
        Topics::default()
    }

    /// Subscribes `id` to `topic`; false if it already was.
    pub fn subscribe(&mut self, id: ConnId, topic: &str) -> bool {
        let added = self
            .subscribers
            .entry(topic.to_string())
            .or_default()
            .insert(id);
        if added {
            self.by_connection
                .entry(id)
                .or_default()
                .push(topic.to_string());
            self.subscriptions += 1;
        }
        added
    }

    /// Unsubscribes `id` from `topic`; false if it was not subscribed.
    pub fn unsubscribe(&mut self, id: ConnId, topic: &str) -> bool {
        let Some(set) = self.subscribers.get_mut(topic) else {
            return false;
        };
        if !set.remove(&id) {
            return false;
        }
        if set.is_empty() {
            self.subscribers.remove(topic);
        }
        if let Some(list) = self.by_connection.get_mut(&id) {
            list.retain(|t| t != topic);
            if list.is_empty() {
                self.by_connection.remove(&id);
            }
        }
        self.subscriptions -= 1;
        true
    }

    /// Removes every subscription of `id` (call it when the connection
    /// closes, whatever the reason).
    pub fn remove_connection(&mut self, id: ConnId) {
        for topic in self.by_connection.remove(&id).unwrap_or_default() {
            if let Some(set) = self.subscribers.get_mut(&topic) {
                set.remove(&id);
                self.subscriptions -= 1;
                if set.is_empty() {
                    self.subscribers.remove(&topic);
                }
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

    /// The subscribers of `topic`.
    pub fn subscribers(&self, topic: &str) -> impl Iterator<Item = ConnId> + '_ {
        self.subscribers.get(topic).into_iter().flatten().copied()
    }

    /// The topics `id` is subscribed to.
    pub fn topics_of(&self, id: ConnId) -> impl Iterator<Item = &str> + '_ {
        self.by_connection
            .get(&id)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// Whether `id` is subscribed to `topic`.
    pub fn is_subscribed(&self, id: ConnId, topic: &str) -> bool {
        self.subscribers.get(topic).is_some_and(|s| s.contains(&id))
    }

    /// Topics with at least one subscriber.
    pub fn topic_count(&self) -> usize {
        self.subscribers.len()
    }

    /// Subscriptions, all topics together.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions
    }

    /// The registry's gauges in the Prometheus text format.
    pub fn to_prometheus(&self) -> String {
        format!(
            "# HELP edgews_topics Topics with at least one subscriber.\n# TYPE edgews_topics gauge\nedgews_topics {}\n\
             # HELP edgews_subscriptions Subscriptions, all topics together.\n# TYPE edgews_subscriptions gauge\n\
             edgews_subscriptions {}\n",
            self.topic_count(),
            self.subscription_count()
        )
    }
}
