//! The reactor's side of the workers (see `process.rs`): joining a
//! process, draining the inbox once per turn, delivering relayed messages,
//! adopting handed-over sockets, and publishing counters for `/metrics`.

use super::context::Context;
use super::handler::Handler;
use super::process::{Channel, Delivery, Link, Lost, Process, Relayed};
use super::token::ConnId;
use super::Reactor;
use crate::protocol::CloseCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The close reason of a connection that missed a relayed message.
pub const RELAY_LOST_REASON: &str = "server overloaded: a message for you was lost";

/// How often a worker looks whether congested inboxes drained.
pub(super) const RELAY_RETRY: std::time::Duration = std::time::Duration::from_millis(1);

impl<H: Handler> Reactor<H> {
    /// Makes this reactor worker `index` of `process`, accepting on
    /// `listener` (one of the process's `SO_REUSEPORT` listeners) and, on
    /// one worker, `metrics`.
    pub(crate) fn join_process(
        &mut self,
        process: Arc<Process>,
        index: usize,
        listener: Option<mio::net::TcpListener>,
        metrics: Option<mio::net::TcpListener>,
    ) -> std::io::Result<()> {
        process.attach(index, self.waker.clone());
        if process.is_signalled(index) {
            // pushed before this worker could be woken (a shutdown asked
            // for early): see it on the first turn
            self.waker.wake()?;
        }
        // generations ≡ index (mod workers): connection ids are unique in
        // the whole process, so shared tables may key on them
        let step = process.workers() as u32;
        self.generation_step = step;
        self.next_generation = index as u32;
        self.hub.link = Link { process, index };
        self.drop_bridge_unless_first(index);
        let registry = self.poll.registry();
        if let Some(listener) = listener {
            super::listener::register_listener(registry, &listener, super::token::LISTENER)?;
            self.listener = Some(listener);
        }
        if let Some(listener) = metrics {
            let token = super::token::METRICS_LISTENER;
            super::listener::register_listener(registry, &listener, token)?;
            self.metrics_listener = Some(listener);
        }
        Ok(())
    }

    /// Handles everything in the inbox, when something is there: one atomic
    /// load per turn otherwise.
    pub(super) fn drain_inbox(&mut self) {
        let link = &self.hub.link;
        if !link.process.is_signalled(link.index) {
            return;
        }
        let (queue, lost) = link.process.take(link.index);
        for delivery in queue {
            match delivery {
                Delivery::Relay(relayed) => self.deliver(&relayed),
                Delivery::Adopt { socket, peer } => self.adopt(socket, peer),
                Delivery::Tls(config) => self.tls_server = Some(config),
                Delivery::PublishStats => self.publish_stats(),
                Delivery::Bridge(command) => self.on_bridge_command(command),
                Delivery::Shutdown { now } => {
                    self.begin_shutdown();
                    if now {
                        self.shutdown_deadline = Some(self.hub.now);
                    }
                }
            }
        }
        if lost.count > 0 {
            self.on_lost(lost);
        }
    }

    /// Delivers one relayed message: to every open connection on
    /// [`Channel::All`], through the handler on a topic.
    fn deliver(&mut self, relayed: &Relayed) {
        self.hub.stats.relays_in += 1;
        let mut ctx = Context::new(&mut self.hub, None);
        match &relayed.channel {
            Channel::All => {
                let ids = ctx.take_recipients(relayed.except);
                ctx.send_relayed(ids.iter().copied(), relayed);
                self.hub.recipients = ids;
            }
            Channel::Topic(_) => self.handler.on_relayed(&mut ctx, relayed),
        }
    }

    /// Relays lost at the inbox's bound: counted, logged, and every
    /// connection that missed one closed with 1013, so none is lost
    /// silently.
    fn on_lost(&mut self, lost: Lost) {
        self.hub.stats.relays_lost += lost.count;
        log::warn!(
            "worker {}: {} relayed messages lost at the inbox bound ({} channels); closing their \
             recipients with 1013",
            self.hub.link.index,
            lost.count,
            lost.channels.len()
        );
        let mut ctx = Context::new(&mut self.hub, None);
        for channel in &lost.channels {
            match channel {
                Channel::All => {
                    let ids: Vec<ConnId> = ctx.open_connections().collect();
                    for id in ids {
                        let _ = ctx.close(id, CloseCode::TRY_AGAIN_LATER, RELAY_LOST_REASON);
                    }
                }
                Channel::Topic(_) => self.handler.on_relay_lost(&mut ctx, channel),
            }
        }
    }

    /// Takes over a connection another worker accepted (already counted in
    /// this worker's slot and the process's total).
    fn adopt(&mut self, socket: mio::net::TcpStream, peer: std::net::SocketAddr) {
        let link = &self.hub.link;
        // counted in the slot again as it is inserted
        link.slot().held.fetch_sub(1, Ordering::SeqCst);
        if self.shutdown_deadline.is_some() {
            link.process.connections.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        self.hub.stats.adopted += 1;
        self.admit_here(socket, peer, false, false);
    }

    /// The worker, if any, that should take a connection this one just
    /// accepted: the least loaded, when this one holds more than one
    /// connection beyond it. The kernel's `SO_REUSEPORT` hash spreads
    /// connections only statistically (a few hundred from one client split
    /// 60/40 now and then); this evens it out. The target is counted at
    /// once, so a burst of accepts does not pick the same one each time.
    pub(super) fn balance_target(&self) -> Option<usize> {
        let link = &self.hub.link;
        if !link.is_shared() || self.shutdown_deadline.is_some() {
            return None;
        }
        let held = link.process.held();
        let mine = held[link.index];
        let (target, least) = held
            .iter()
            .enumerate()
            .min_by_key(|&(_, &n)| n)
            .map(|(i, &n)| (i, n))?;
        (target != link.index && mine > least + 1).then_some(target)
    }

    /// Hands `socket` to worker `to`.
    pub(super) fn hand_over(
        &mut self,
        to: usize,
        socket: mio::net::TcpStream,
        peer: std::net::SocketAddr,
    ) {
        let link = &self.hub.link;
        // the process's count took it at accept (`admit`): only the slot's
        link.process.slot(to).held.fetch_add(1, Ordering::SeqCst);
        link.process
            .push(link.index, to, Delivery::Adopt { socket, peer });
    }

    /// Reading of connection `id` stopped after a relay found another
    /// worker's inbox over its high-water mark: it waits, its unread
    /// input kept, until the inboxes drain.
    pub(super) fn wait_for_relays(&mut self, id: ConnId) {
        if !self.relay_waiting.contains(&id) {
            self.relay_waiting.push(id);
        }
        self.relay_retry_at
            .get_or_insert(self.hub.now + RELAY_RETRY);
    }

    /// Whether `id` waits for the inboxes to drain.
    pub(super) fn is_relay_waiting(&self, id: ConnId) -> bool {
        !self.relay_waiting.is_empty() && self.relay_waiting.contains(&id)
    }

    /// Reads the waiting connections again once every other worker's inbox
    /// is under its low-water mark; otherwise looks again shortly (no
    /// worker is told when another drains: this costs a look per
    /// millisecond, and only while some publisher waits).
    pub(super) fn resume_relay_waiting(&mut self) {
        if self.relay_waiting.is_empty() && !self.bridge.paused {
            return;
        }
        let link = &self.hub.link;
        let congested = link
            .process
            .is_congested(link.index, super::process::RELAY_LOW_WATER);
        if congested && self.shutdown_deadline.is_none() {
            if self.relay_retry_at.is_none_or(|at| at <= self.hub.now) {
                self.relay_retry_at = Some(self.hub.now + RELAY_RETRY);
            }
            return;
        }
        self.relay_retry_at = None;
        let waiting = std::mem::take(&mut self.relay_waiting);
        self.ready.extend(waiting);
        self.resume_bridge();
    }

    /// Publishes this worker's counters for the others' `/metrics`: when
    /// one of them asks (see `Process::refresh_others`), and as the loop
    /// ends. A few relaxed stores; the labelled counters (a lock and a
    /// copy) only when closes or refusals were counted since.
    pub(super) fn publish_stats(&mut self) {
        let link = &self.hub.link;
        if !link.is_shared() {
            return;
        }
        let stats = &self.hub.stats;
        let labels = (stats.closed, stats.handshake_failures);
        let changed = labels != self.published_labels;
        link.process.publish_stats(link.index, stats, changed);
        self.published_labels = labels;
    }
}

impl Context<'_> {
    /// Which worker this is (0 without workers).
    pub fn worker(&self) -> usize {
        self.hub.link.index
    }

    /// How many workers the process runs (1 without workers).
    pub fn workers(&self) -> usize {
        self.hub.link.process.workers()
    }

    /// Relays `frame` on `channel` to every other worker, and to this one
    /// too when `to_self` (its handler then gets it in
    /// [`Handler::on_relayed`] at the end of this loop turn, in the same
    /// order as every other worker: what the chat server's room sequence
    /// relies on). The frame must be in the plain encoding
    /// ([`FrameEncoding::PLAIN`](crate::protocol::FrameEncoding::PLAIN)).
    /// Without other workers and without `to_self`, does nothing.
    pub fn relay(
        &mut self,
        channel: Channel,
        frame: crate::protocol::SharedFrame,
        seq: u64,
        except: Option<ConnId>,
        to_self: bool,
    ) {
        let link = &self.hub.link;
        if !link.is_shared() && !to_self {
            return;
        }
        let relayed = Relayed {
            channel,
            frame,
            seq,
            except,
            origin: link.index,
        };
        link.relay(&relayed, to_self);
        if link
            .process
            .is_congested(link.index, super::process::RELAY_HIGH_WATER)
        {
            self.hub.relay_congested = true;
        }
    }

    /// Sends a relayed message to each of `ids` (open server-side
    /// connections on this worker): its frame as it is to the plain ones,
    /// encoded again only for those with permessage-deflate. Returns how
    /// many.
    pub fn send_relayed(
        &mut self,
        ids: impl IntoIterator<Item = ConnId>,
        relayed: &Relayed,
    ) -> usize {
        let Some(message) = relayed.message() else {
            return 0;
        };
        self.share_message(ids, &message, Some(&relayed.frame))
    }

    /// The counters of every worker added up; this reactor's own without
    /// workers. With workers it asks the others to publish theirs and
    /// waits for them (at most
    /// [`FRESH_STATS_WAIT`](super::process::FRESH_STATS_WAIT), since a
    /// worker answers between two handler calls): call it to serve
    /// `/metrics`, not on a message path.
    pub fn process_stats(&self) -> super::Stats {
        let link = &self.hub.link;
        if !link.is_shared() {
            return self.hub.stats.clone();
        }
        link.process.total_stats(link.index, &self.hub.stats)
    }

    /// Connections each worker holds now (one entry without workers).
    pub fn worker_connections(&self) -> Vec<usize> {
        self.hub.link.process.held()
    }

    /// The `/metrics` text: every worker's counters added up, and with
    /// workers, how many there are and the connections each holds.
    pub fn metrics_text(&self) -> String {
        let mut text = self.process_stats().to_prometheus();
        if self.hub.link.is_shared() {
            use std::fmt::Write as _;
            let held = self.worker_connections();
            let _ = write!(
                text,
                "# HELP edgews_workers Worker threads, each with its own reactor.\n\
                 # TYPE edgews_workers gauge\nedgews_workers {}\n\
                 # HELP edgews_worker_connections Connections each worker holds now.\n\
                 # TYPE edgews_worker_connections gauge\n",
                held.len()
            );
            for (worker, n) in held.iter().enumerate() {
                let _ = writeln!(text, "edgews_worker_connections{{worker=\"{worker}\"}} {n}");
            }
        }
        text
    }
}
