//! What the reactors of one process share when they run as workers (see
//! [`crate::workers`]): a slot per worker with its inbox, its waker, its
//! connection count and its last published counters, and the process-wide
//! connection count that `max_connections` bounds.
//!
//! A reactor that runs alone has a process of one slot: the same code, with
//! nobody to relay to. Workers never touch each other's connections; they
//! exchange [`Relayed`] messages (a frame encoded once, behind an `Arc`),
//! adopted sockets, a reloaded TLS configuration and shutdown requests
//! through the inboxes, and wake each other with `mio::Waker`.
//!
//! # Bounds
//!
//! A publisher is slowed before any bound is hit: once another worker's
//! inbox holds more than [`RELAY_HIGH_WATER`] deliveries, the publishing
//! worker stops reading the connection whose message made the relay (its
//! unread input waits, as under the write backpressure) and goes on with
//! it once every inbox is under [`RELAY_LOW_WATER`]. So one fast
//! publisher cannot outrun a busy worker; only many publishers at once,
//! or a worker stalled in a long turn, can reach the bound below.
//!
//! An inbox holds at most [`RELAY_BACKLOG_MESSAGES`] relays or
//! [`RELAY_BACKLOG_BYTES`] bytes of their frames, whichever comes first
//! (an empty inbox takes any one message, so the largest message the
//! server accepts can always cross). A relay past the bound is not
//! queued, nor is any later relay on the same channel until the worker
//! drains its inbox: at the bound the publisher's worker does not wait and
//! does not grow, and a recipient never sees a gap followed by more
//! messages. The receiving worker counts the loss
//! (`edgews_relays_lost_total`), logs it, and closes the connections that
//! missed a message with 1013 (try again later), so no message is lost
//! silently.

use super::metrics::{Stats, SCALARS};
use super::token::ConnId;
use crate::protocol::{Message, MessageKind, SharedFrame};
use mio::Waker;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

/// The most relays one worker's inbox holds.
pub const RELAY_BACKLOG_MESSAGES: usize = 65_536;

/// The most frame bytes the relays in one worker's inbox refer to (frames
/// are shared, so this bounds what the inbox keeps alive, not a copy).
pub const RELAY_BACKLOG_BYTES: usize = 64 << 20;

/// The longest a worker serving `/metrics` waits for the others to
/// publish their counters (a worker in a long turn answers late; then its
/// counters as of its last publication are taken).
pub const FRESH_STATS_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Flow control: once another worker's inbox holds more than this many
/// deliveries, a worker stops reading the connection that is publishing
/// (its input waits, whole messages kept) ...
pub const RELAY_HIGH_WATER: usize = RELAY_BACKLOG_MESSAGES / 4;

/// ... until every other worker's inbox is back under this many.
pub const RELAY_LOW_WATER: usize = RELAY_BACKLOG_MESSAGES / 16;

/// The most distinct channels an inbox remembers losing a relay on between
/// two drains; past it, the loss counts as on [`Channel::All`].
const LOST_CHANNELS: usize = 64;

/// Where a relayed message goes on the worker that receives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Every open server-side connection (what
    /// [`Context::broadcast`](super::Context::broadcast) reaches): the
    /// reactor delivers it itself.
    All,
    /// The subscribers of a topic (or a chat room): the handler delivers it,
    /// in [`Handler::on_relayed`](super::Handler::on_relayed).
    Topic(Arc<str>),
}

/// A message one worker passes to others: one frame, encoded once for the
/// whole process and shared.
#[derive(Debug, Clone)]
pub struct Relayed {
    /// Who receives it.
    pub channel: Channel,
    /// The message as an unmasked, uncompressed frame (the encoding every
    /// plain connection takes as is).
    pub frame: SharedFrame,
    /// A number the publisher attached (the chat server's room sequence);
    /// 0 when none.
    pub seq: u64,
    /// A connection that must not receive it (its publisher), if any.
    pub except: Option<ConnId>,
    /// The worker that published it.
    pub origin: usize,
}

impl Relayed {
    /// The message's payload.
    pub fn payload(&self) -> &[u8] {
        self.frame.plain_payload().unwrap_or_default()
    }

    /// The message's kind.
    pub fn kind(&self) -> MessageKind {
        self.frame.kind()
    }

    /// The message, borrowed from the frame (no second UTF-8 check: a
    /// shared frame is only ever built from valid text); `None` if the
    /// frame is not in the plain encoding.
    pub fn message(&self) -> Option<Message<'_>> {
        self.frame.plain_message()
    }
}

/// What one worker's inbox carries.
pub(crate) enum Delivery {
    /// A message for this worker's connections.
    Relay(Relayed),
    /// A connection another worker accepted and hands over (see
    /// `balance` in listener.rs); already counted in this worker's slot.
    Adopt {
        socket: mio::net::TcpStream,
        peer: SocketAddr,
    },
    /// A reloaded TLS configuration for new handshakes.
    Tls(Arc<rustls::ServerConfig>),
    /// Shut down gracefully (`now: false`), or give up waiting at once.
    Shutdown { now: bool },
    /// Another worker is serving `/metrics`: publish the counters now.
    PublishStats,
    /// For the worker holding the Redis link: publish, (un)subscribe.
    Bridge(super::bridge_route::BridgeCommand),
}

/// Relays refused at the bound since the last drain.
#[derive(Debug, Default)]
pub(crate) struct Lost {
    pub count: u64,
    /// The channels they were on; `Channel::All` once more than
    /// `LOST_CHANNELS` distinct ones.
    pub channels: Vec<Channel>,
}

#[derive(Default)]
struct Inbox {
    queue: VecDeque<Delivery>,
    /// Frame bytes the queued relays refer to.
    bytes: usize,
    lost: Lost,
}

/// One worker's place in the process.
#[derive(Default)]
pub(crate) struct Slot {
    inbox: Mutex<Inbox>,
    /// Something waits in the inbox (set by pushers, cleared by the drain).
    signalled: AtomicBool,
    waker: OnceLock<Arc<Waker>>,
    /// Connections this worker holds (handshaking and closing included),
    /// plus sockets handed to it and not yet adopted.
    pub held: AtomicUsize,
    /// The worker's plain counters, as it last published them (on
    /// a request: see `Process::refresh_others`), read by the others.
    scalars: [AtomicU64; SCALARS],
    /// Its labelled counters (closes by code, refusals by status), as of
    /// their last change.
    labelled: Mutex<Stats>,
    /// How many times it published its counters (`Release` after the
    /// stores, so a reader that sees it advance sees them).
    published: AtomicU64,
    /// Its loop has ended: nobody will answer a request to publish.
    done: AtomicBool,
    /// How many deliveries wait in the inbox (read without the lock, for
    /// flow control).
    queued: AtomicUsize,
}

/// The state the workers of one process share. Opaque: made by
/// [`Workers`](crate::workers::Workers).
pub struct Process {
    slots: Vec<Slot>,
    /// Connections held by all workers together.
    pub(crate) connections: AtomicUsize,
    /// Workers whose loop has not ended yet.
    running: AtomicUsize,
    /// The Redis link: 0 none, 1 down, 2 up (`/readyz`).
    bridge: std::sync::atomic::AtomicU8,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("workers", &self.slots.len())
            .field("connections", &self.connections)
            .finish()
    }
}

/// A lock that survives a panic elsewhere: what it guards stays
/// consistent (each critical section here leaves it whole), and the
/// process is going down anyway.
pub(crate) fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Process {
    /// A process of `workers` slots.
    pub(crate) fn new(workers: usize) -> Arc<Process> {
        Arc::new(Process {
            slots: (0..workers.max(1)).map(|_| Slot::default()).collect(),
            connections: AtomicUsize::new(0),
            running: AtomicUsize::new(workers.max(1)),
            bridge: std::sync::atomic::AtomicU8::new(0),
        })
    }

    /// Records whether the Redis link is up (both connections open).
    pub(crate) fn set_bridge_up(&self, up: bool) {
        self.bridge.store(1 + u8::from(up), Ordering::SeqCst);
    }

    /// Whether this process can serve its share of the cluster: `false`
    /// only while its Redis link is down (`/readyz`).
    pub(crate) fn is_ready(&self) -> bool {
        self.bridge.load(Ordering::SeqCst) != 1
    }

    /// How many workers.
    pub(crate) fn workers(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn slot(&self, index: usize) -> &Slot {
        &self.slots[index]
    }

    /// Registers worker `index`'s waker.
    pub(crate) fn attach(&self, index: usize, waker: Arc<Waker>) {
        let _ = self.slots[index].waker.set(waker);
    }

    /// Puts `delivery` in worker `to`'s inbox and wakes it (once per drain)
    /// unless it is `from`, which drains at the end of its turn anyway.
    /// A relay past the bound is not queued but recorded as lost; returns
    /// whether it was queued.
    pub(crate) fn push(&self, from: usize, to: usize, delivery: Delivery) -> bool {
        let slot = &self.slots[to];
        {
            let mut inbox = locked(&slot.inbox);
            if let Delivery::Relay(relay) = &delivery {
                let len = relay.frame.len();
                // an empty inbox takes any one message (the largest one
                // included); past a loss on a channel, that channel's
                // later messages are lost too, so no recipient sees a gap
                // and then more messages before its close
                let full = !inbox.queue.is_empty()
                    && (inbox.queue.len() >= RELAY_BACKLOG_MESSAGES
                        || inbox.bytes + len > RELAY_BACKLOG_BYTES);
                if full || inbox.lost.covers(&relay.channel) {
                    inbox.lost.record(&relay.channel);
                    drop(inbox);
                    self.signal(from, to);
                    return false;
                }
                inbox.bytes += len;
            }
            inbox.queue.push_back(delivery);
            slot.queued.store(inbox.queue.len(), Ordering::Relaxed);
        }
        self.signal(from, to);
        true
    }

    fn signal(&self, from: usize, to: usize) {
        let slot = &self.slots[to];
        if !slot.signalled.swap(true, Ordering::SeqCst) && from != to {
            if let Some(waker) = slot.waker.get() {
                let _ = waker.wake();
            }
        }
    }

    /// Whether some worker other than `index` that still runs has more
    /// than `level` deliveries waiting.
    pub(crate) fn is_congested(&self, index: usize, level: usize) -> bool {
        self.slots.iter().enumerate().any(|(i, slot)| {
            i != index
                && slot.queued.load(Ordering::Relaxed) > level
                && !slot.done.load(Ordering::Relaxed)
        })
    }

    /// Whether worker `index` has something in its inbox.
    pub(crate) fn is_signalled(&self, index: usize) -> bool {
        self.slots[index].signalled.load(Ordering::SeqCst)
    }

    /// Takes everything in worker `index`'s inbox, and what it lost.
    pub(crate) fn take(&self, index: usize) -> (VecDeque<Delivery>, Lost) {
        let slot = &self.slots[index];
        slot.signalled.store(false, Ordering::SeqCst);
        let mut inbox = locked(&slot.inbox);
        inbox.bytes = 0;
        slot.queued.store(0, Ordering::Relaxed);
        (
            std::mem::take(&mut inbox.queue),
            std::mem::take(&mut inbox.lost),
        )
    }

    /// Worker `index`'s loop has ended: worker 0 (which holds the signal
    /// pipes, and stays until the others are done so that a second signal
    /// still reaches them) is woken to see it.
    pub(crate) fn exited(&self, index: usize) {
        self.slots[index].done.store(true, Ordering::SeqCst);
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.signal(index, 0);
    }

    /// How many workers' loops have not ended.
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Asks every worker to shut down (gracefully, or `now`).
    pub fn shutdown(&self, now: bool) {
        for to in 0..self.slots.len() {
            self.push(usize::MAX, to, Delivery::Shutdown { now });
        }
    }

    /// Keeps worker `index`'s counters for the others to read: the plain
    /// ones (a few relaxed stores: plain moves on x86), and the labelled
    /// ones when `labels_changed`.
    pub(crate) fn publish_stats(&self, index: usize, stats: &Stats, labels_changed: bool) {
        let slot = &self.slots[index];
        for (cell, value) in slot.scalars.iter().zip(stats.scalars()) {
            cell.store(value, Ordering::Relaxed);
        }
        if labels_changed {
            let mut labelled = locked(&slot.labelled);
            labelled.closes_by_code.clone_from(&stats.closes_by_code);
            labelled
                .handshake_failures_by_status
                .clone_from(&stats.handshake_failures_by_status);
        }
        slot.published.fetch_add(1, Ordering::Release);
    }

    /// Asks every other worker to publish its counters and waits (at most
    /// [`FRESH_STATS_WAIT`]) until each has: a worker publishes when it
    /// drains its inbox, after every write it made before it saw the
    /// request. So what a client saw happen before it asked `/metrics`
    /// is counted, and the workers pay nothing for it on their message
    /// path. Worker `index` publishes its own (`live`) first: two workers
    /// serving `/metrics` at once then never wait for each other.
    fn refresh_others(&self, index: usize, live: &Stats) {
        self.publish_stats(index, live, true);
        let asked: Vec<(usize, u64)> = (0..self.slots.len())
            .filter(|&i| i != index && !self.slots[i].done.load(Ordering::SeqCst))
            .map(|i| (i, self.slots[i].published.load(Ordering::Acquire)))
            .collect();
        for &(i, _) in &asked {
            self.push(index, i, Delivery::PublishStats);
        }
        let deadline = std::time::Instant::now() + FRESH_STATS_WAIT;
        for (i, before) in asked {
            let slot = &self.slots[i];
            while slot.published.load(Ordering::Acquire) == before
                && !slot.done.load(Ordering::SeqCst)
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
        }
    }

    /// Every worker's counters added up, worker `index`'s own (`live`)
    /// taken as they are now, the others' as they last published them.
    pub(crate) fn total_stats(&self, index: usize, live: &Stats) -> Stats {
        self.refresh_others(index, live);
        let mut total = live.clone();
        for (i, slot) in self.slots.iter().enumerate() {
            if i != index {
                let mut theirs = Stats::default();
                {
                    let labelled = locked(&slot.labelled);
                    theirs.closes_by_code.clone_from(&labelled.closes_by_code);
                    theirs
                        .handshake_failures_by_status
                        .clone_from(&labelled.handshake_failures_by_status);
                }
                theirs.set_scalars(std::array::from_fn(|k| {
                    slot.scalars[k].load(Ordering::Relaxed)
                }));
                total.add(&theirs);
            }
        }
        total
    }

    /// Connections each worker holds now.
    pub(crate) fn held(&self) -> Vec<usize> {
        self.slots
            .iter()
            .map(|s| s.held.load(Ordering::Relaxed))
            .collect()
    }
}

impl Lost {
    /// Whether a relay on `channel` would follow a lost one.
    fn covers(&self, channel: &Channel) -> bool {
        self.channels
            .iter()
            .any(|lost| *lost == Channel::All || lost == channel)
    }

    fn record(&mut self, channel: &Channel) {
        self.count += 1;
        if self.channels.first() == Some(&Channel::All) || self.channels.contains(channel) {
            return;
        }
        if self.channels.len() >= LOST_CHANNELS || *channel == Channel::All {
            self.channels = vec![Channel::All];
        } else {
            self.channels.push(channel.clone());
        }
    }
}

/// A reactor's place among the workers: its index and the process.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub process: Arc<Process>,
    pub index: usize,
}

impl Link {
    /// A reactor on its own: a process of one.
    pub fn alone() -> Link {
        Link {
            process: Process::new(1),
            index: 0,
        }
    }

    pub fn slot(&self) -> &Slot {
        self.process.slot(self.index)
    }

    /// Whether there are other workers to relay to.
    pub fn is_shared(&self) -> bool {
        self.process.workers() > 1
    }

    /// Sends `delivery` (made per worker) to every other worker, and to
    /// this one too when `to_self`.
    pub fn relay(&self, relayed: &Relayed, to_self: bool) {
        for to in 0..self.process.workers() {
            if to != self.index || to_self {
                self.process
                    .push(self.index, to, Delivery::Relay(relayed.clone()));
            }
        }
    }

    /// Tells every other worker.
    pub fn tell_others(&self, make: impl Fn() -> Delivery) {
        for to in 0..self.process.workers() {
            if to != self.index {
                self.process.push(self.index, to, make());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::FrameEncoding;

    fn relay(channel: Channel, len: usize) -> Relayed {
        Relayed {
            channel,
            frame: SharedFrame::message(FrameEncoding::PLAIN, &Message::binary(vec![0; len])),
            seq: 0,
            except: None,
            origin: 0,
        }
    }

    #[test]
    fn an_inbox_keeps_order_and_is_emptied_by_take() {
        let process = Process::new(2);
        for seq in 1..=3 {
            let mut r = relay(Channel::All, 1);
            r.seq = seq;
            assert!(process.push(0, 1, Delivery::Relay(r)));
        }
        assert!(process.is_signalled(1));
        let (queue, lost) = process.take(1);
        let seqs: Vec<u64> = queue
            .iter()
            .map(|d| match d {
                Delivery::Relay(r) => r.seq,
                _ => 0,
            })
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert_eq!(lost.count, 0);
        assert!(!process.is_signalled(1));
    }

    #[test]
    fn a_full_inbox_refuses_and_records_the_channels_lost() {
        let process = Process::new(2);
        let big = RELAY_BACKLOG_BYTES / 2;
        assert!(process.push(0, 1, Delivery::Relay(relay(Channel::All, big))));
        let topic = Channel::Topic("news".into());
        assert!(!process.push(0, 1, Delivery::Relay(relay(topic.clone(), big))));
        // a small one would fit, but would follow the lost one: lost too
        assert!(!process.push(0, 1, Delivery::Relay(relay(topic.clone(), 1))));
        let other = Channel::Topic("other".into());
        assert!(process.push(0, 1, Delivery::Relay(relay(other, 1))));
        let (queue, lost) = process.take(1);
        assert_eq!(queue.len(), 2);
        assert_eq!((lost.count, lost.channels), (2, vec![topic]));
        // the drain made room again
        assert!(process.push(0, 1, Delivery::Relay(relay(Channel::All, big))));
    }

    #[test]
    fn an_empty_inbox_takes_a_message_larger_than_the_bound() {
        let process = Process::new(2);
        let huge = RELAY_BACKLOG_BYTES + 100;
        assert!(process.push(0, 1, Delivery::Relay(relay(Channel::All, huge))));
        assert!(!process.push(0, 1, Delivery::Relay(relay(Channel::All, 1))));
    }

    #[test]
    fn losses_on_many_channels_become_a_loss_on_all() {
        let mut lost = Lost::default();
        for i in 0..=LOST_CHANNELS {
            lost.record(&Channel::Topic(i.to_string().into()));
        }
        assert_eq!(lost.channels, vec![Channel::All]);
        assert_eq!(lost.count, LOST_CHANNELS as u64 + 1);
    }

    #[test]
    fn a_relayed_frame_gives_back_its_message() {
        let r = Relayed {
            frame: SharedFrame::message(FrameEncoding::PLAIN, &Message::text("héllo")),
            ..relay(Channel::All, 0)
        };
        assert_eq!(r.kind(), MessageKind::Text);
        assert_eq!(r.message().unwrap().as_text(), Some("héllo"));
    }
}
