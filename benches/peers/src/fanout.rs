//! What the tokio fan-out peers share: the registry of open connections,
//! as tokio-tungstenite's own broadcast example (`examples/server.rs`)
//! keeps it and as a typical tokio user writes it: a map from connection
//! to the sending half of that connection's unbounded channel, behind
//! `Arc<Mutex<_>>` (on a current-thread runtime the lock is never
//! contended). Each message is cloned into every other connection's
//! channel; the peers' message types hold their payload in `Bytes`, so a
//! clone shares it rather than copy it. Each connection's task writes out
//! what its channel brings, in order.
//!
//! Unbounded, as in that example: the loader reads as fast as it can, and
//! a slow reader costs memory, never a lost message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// Every open connection's channel, by connection number.
pub struct Peers<T> {
    inner: Mutex<(u64, HashMap<u64, UnboundedSender<T>>)>,
}

impl<T: Clone> Peers<T> {
    pub fn new() -> Arc<Peers<T>> {
        Arc::new(Peers {
            inner: Mutex::new((0, HashMap::new())),
        })
    }

    /// Adds a connection: its membership (it leaves when that is dropped)
    /// and the receiving half of its channel.
    pub fn join(self: &Arc<Self>) -> (Member<T>, UnboundedReceiver<T>) {
        let (tx, rx) = unbounded_channel();
        let mut inner = self.inner.lock().unwrap();
        inner.0 += 1;
        let id = inner.0;
        inner.1.insert(id, tx.clone());
        let member = Member {
            peers: self.clone(),
            id,
            own: tx,
        };
        (member, rx)
    }
}

/// One connection's place in [`Peers`]; dropping it leaves.
pub struct Member<T> {
    peers: Arc<Peers<T>>,
    id: u64,
    own: UnboundedSender<T>,
}

impl<T: Clone> Member<T> {
    /// Queues `message` for every other open connection.
    pub fn send_others(&self, message: &T) {
        let inner = self.peers.inner.lock().unwrap();
        for (_, tx) in inner.1.iter().filter(|(id, _)| **id != self.id) {
            // A connection whose task has ended drops its receiver.
            let _ = tx.send(message.clone());
        }
    }

    /// Queues `message` for this connection itself, behind what it has.
    pub fn send_self(&self, message: T) {
        let _ = self.own.send(message);
    }
}

impl<T> Drop for Member<T> {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.peers.inner.lock() {
            inner.1.remove(&self.id);
        }
    }
}
