//! What a handler can do: send to one connection, broadcast to all, close
//! one, stop the server.

use super::conn::{lookup, Hub};
use super::metrics::Stats;
use super::process::Channel;
use super::splice::{Splice, MAX_SPLICES, SPLICE_MIN};
use super::token::ConnId;
use crate::protocol::{
    CloseCode, Compression, Connection, FrameEncoding, Message, MessageKind, Role, SharedFrame,
    State, UsageError,
};
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

/// Why a send did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The connection no longer exists (or is proxied: its bytes are
    /// relayed, not written by the handler).
    UnknownConnection,
    /// The protocol does not allow it now (closing, not open, bad payload).
    Usage(UsageError),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::UnknownConnection => f.write_str("no such connection"),
            SendError::Usage(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SendError {}

impl From<UsageError> for SendError {
    fn from(e: UsageError) -> Self {
        SendError::Usage(e)
    }
}

/// The handler's view of the reactor during a callback.
///
/// Output to the connection being processed goes out in one write when its
/// processing ends; output to others is queued and flushed, one `writev`
/// per connection, at the end of the loop iteration.
pub struct Context<'a> {
    pub(crate) hub: &'a mut Hub,
    /// The connection whose event is being handled, if any.
    pub(crate) current: Option<ConnId>,
}

impl<'a> Context<'a> {
    pub(crate) fn new(hub: &'a mut Hub, current: Option<ConnId>) -> Self {
        Context { hub, current }
    }

    /// The loop iteration's clock.
    pub fn now(&self) -> Instant {
        self.hub.now
    }

    /// Sends a text message to `id`.
    pub fn send_text(&mut self, id: ConnId, text: &str) -> Result<(), SendError> {
        self.send_message(id, &Message::text(text))
    }

    /// Sends a binary message to `id`.
    pub fn send_binary(&mut self, id: ConnId, data: &[u8]) -> Result<(), SendError> {
        self.send_message(id, &Message::binary(data))
    }

    /// Sends a message of either kind to `id`; text must be UTF-8 (checked).
    pub fn send(&mut self, id: ConnId, kind: MessageKind, data: &[u8]) -> Result<(), SendError> {
        self.send_message(id, &Message::new(kind, data)?)
    }

    /// Sends a [`Message`] to `id`: the one being handled (an echo), or one
    /// made with `Message::text`/`binary`. Its text is valid by
    /// construction, so it is not checked again; a payload that lies in
    /// the input being handled, sent back to its own connection, is not
    /// copied either (see `splice.rs`).
    pub fn send_message(&mut self, id: ConnId, message: &Message<'_>) -> Result<(), SendError> {
        let data = message.as_bytes();
        match self.splice_range(id, data) {
            Some(range) => {
                let hub = &mut *self.hub;
                let conn = lookup(&mut hub.conns, id).ok_or(SendError::UnknownConnection)?;
                let before = hub.scratch.len();
                match conn.engine.send_message_header(message, &mut hub.scratch)? {
                    None => {
                        let at = hub.scratch.len();
                        hub.splices.push(Splice { at, range });
                        hub.stats.messages_out_zero_copy += 1;
                    }
                    Some(_) => {
                        // not reached (only servers splice, and they do not
                        // mask): take the header back and let the engine
                        // write the whole masked frame
                        hub.scratch.truncate(before);
                        conn.engine.send_message(message, &mut hub.scratch)?;
                    }
                }
            }
            None => self.with_output(id, |engine, out| engine.send_message(message, out))?,
        }
        self.hub.stats.record_sent(data.len());
        Ok(())
    }

    /// [`send_message`](Context::send_message), choosing whether to
    /// compress this one message on a connection that negotiated
    /// permessage-deflate: [`Compression::Always`] for a small message
    /// worth it, [`Compression::Never`] for data already compressed (an
    /// image, say). Without the extension `choice` changes nothing.
    pub fn send_message_with(
        &mut self,
        id: ConnId,
        message: &Message<'_>,
        choice: Compression,
    ) -> Result<(), SendError> {
        if choice == Compression::Auto {
            return self.send_message(id, message);
        }
        self.with_output(id, |engine, out| {
            engine.send_message_with(message, choice, out)
        })?;
        self.hub.stats.record_sent(message.as_bytes().len());
        Ok(())
    }

    /// Where `data` lies in the input being processed, when it can be sent
    /// from there: to the current, server-side connection, with nothing
    /// queued before it, large enough to be worth a piece of its own.
    fn splice_range(&self, id: ConnId, data: &[u8]) -> Option<std::ops::Range<usize>> {
        if self.current != Some(id)
            || data.len() < SPLICE_MIN
            || self.hub.splices.len() >= MAX_SPLICES
        {
            return None;
        }
        let range = self.hub.input.range_of(data)?;
        let conn = self.hub.conns.get(id.index()).filter(|c| c.id == id)?;
        let direct = conn.queue.is_empty() && !conn.life.is_dialing();
        // a message the engine compresses is encoded there, not spliced
        let plain = !conn.engine.would_compress(data.len());
        (direct && plain && conn.engine.role() == Role::Server).then_some(range)
    }

    /// Sends a ping to `id`.
    pub fn send_ping(&mut self, id: ConnId, payload: &[u8]) -> Result<(), SendError> {
        self.with_output(id, |engine, out| engine.send_ping(payload, out))
    }

    /// Ends `id` without a closing handshake: no close frame, the TCP
    /// connection closed once this turn's output has had its write. The
    /// handler's `on_close` follows, as for a peer that vanished (1006,
    /// [`CloseCause::Eof`](crate::protocol::CloseCause::Eof)). For clients
    /// and tests that must behave like a dropped peer (`edgews load connect
    /// --abrupt`); a server should [`close`](Context::close).
    pub fn abort(&mut self, id: ConnId) {
        if lookup(&mut self.hub.conns, id).is_some() && !self.hub.aborts.contains(&id) {
            self.hub.aborts.push(id);
        }
    }

    /// Starts the closing handshake with `id`.
    pub fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) -> Result<(), SendError> {
        let now = self.hub.now;
        self.with_output(id, |engine, out| engine.close(now, code, reason, out))
    }

    /// Sends one message to every open server-side connection except
    /// `except`; text must be UTF-8 (checked). The frame is encoded once;
    /// every recipient's queue shares its bytes. With workers, every
    /// worker's connections receive it (relayed, the same frame). Returns
    /// the number of recipients on this worker. A recipient whose queue exceeds `max_backpressure` is
    /// closed with 1008 (too slow).
    pub fn broadcast(
        &mut self,
        kind: MessageKind,
        data: &[u8],
        except: Option<ConnId>,
    ) -> Result<usize, SendError> {
        self.broadcast_message(&Message::new(kind, data)?, except)
    }

    /// [`broadcast`](Context::broadcast) of a [`Message`] (no second UTF-8
    /// check: a relay of the message being handled costs one encoding).
    /// With `--redis` ([`ServerConfig::redis`](crate::ServerConfig::redis))
    /// it also goes to every other instance's connections, through Redis
    /// ([`BROADCAST_KEY`](super::BROADCAST_KEY)).
    pub fn broadcast_message(
        &mut self,
        message: &Message<'_>,
        except: Option<ConnId>,
    ) -> Result<usize, SendError> {
        self.bridge_message(&Channel::All, message);
        let ids = self.take_recipients(except);
        let sent = if self.hub.link.is_shared() {
            // every worker's connections: one frame for the whole process
            let plain = SharedFrame::message(FrameEncoding::PLAIN, message);
            self.relay(Channel::All, plain.clone(), 0, except, false);
            self.share_message(ids.iter().copied(), message, Some(&plain))
        } else {
            self.share_message(ids.iter().copied(), message, None)
        };
        self.hub.recipients = ids;
        Ok(sent)
    }

    /// The open connections but `except`, gathered into a vector kept from
    /// one broadcast to the next (no allocation per message, whatever the
    /// audience); give it back to `hub.recipients` when done.
    pub(super) fn take_recipients(&mut self, except: Option<ConnId>) -> Vec<ConnId> {
        let mut ids = std::mem::take(&mut self.hub.recipients);
        ids.clear();
        ids.extend(self.open_connections().filter(|&id| Some(id) != except));
        ids
    }

    /// Sends `message` to each of `ids` (open server-side connections on
    /// this worker) and relays it on `channel` to every other worker (see
    /// [`Handler::on_relayed`](super::Handler::on_relayed)), with one frame
    /// encoded for the whole process; text must be UTF-8 (checked by
    /// [`Message`]'s constructors). Without workers, the same as
    /// [`send_shared_message`](Context::send_shared_message). With
    /// `--redis`, also published to the other instances (on
    /// [`Channel::All`]: the broadcast key; on a topic: `topic:NAME`; see
    /// [`bridge_publish`](Context::bridge_publish)). Returns the number of
    /// recipients here.
    pub fn publish_message(
        &mut self,
        ids: impl IntoIterator<Item = ConnId>,
        channel: Channel,
        message: &Message<'_>,
        except: Option<ConnId>,
    ) -> usize {
        self.bridge_message(&channel, message);
        if !self.hub.link.is_shared() {
            return self.share_message(ids, message, None);
        }
        let plain = SharedFrame::message(FrameEncoding::PLAIN, message);
        self.relay(channel, plain.clone(), 0, except, false);
        self.share_message(ids, message, Some(&plain))
    }

    /// [`publish_message`](Context::publish_message) of a text message made
    /// of `parts`, built in place as
    /// [`send_shared_text`](Context::send_shared_text) does.
    pub fn publish_text(
        &mut self,
        ids: impl IntoIterator<Item = ConnId>,
        channel: Channel,
        parts: &[&str],
        except: Option<ConnId>,
    ) -> usize {
        if self.is_bridged() {
            let text = parts.concat();
            self.bridge_message(&channel, &Message::text(text));
        }
        let plain = self.hub.link.is_shared().then(|| {
            let plain = SharedFrame::text(FrameEncoding::PLAIN, parts);
            self.relay(channel, plain.clone(), 0, except, false);
            plain
        });
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let frame = |encoding| match &plain {
            Some(frame) if encoding == FrameEncoding::PLAIN => frame.clone(),
            _ => SharedFrame::text(encoding, parts),
        };
        let alone = |engine: &mut Connection, out: &mut Vec<u8>| {
            engine.send_message(&Message::text(parts.concat()), out)
        };
        self.share_frame(ids, frame, alone, len)
    }

    /// Queues `message` for each open connection among `ids`, taking
    /// `plain` (its frame in the plain encoding, when already made) for
    /// those that use that encoding.
    pub(super) fn share_message(
        &mut self,
        ids: impl IntoIterator<Item = ConnId>,
        message: &Message<'_>,
        plain: Option<&SharedFrame>,
    ) -> usize {
        let frame = |encoding| match plain {
            Some(frame) if encoding == FrameEncoding::PLAIN => frame.clone(),
            _ => SharedFrame::message(encoding, message),
        };
        let alone = |engine: &mut Connection, out: &mut Vec<u8>| engine.send_message(message, out);
        self.share_frame(ids, frame, alone, message.as_bytes().len())
    }

    /// Sends one message to each of `ids` (open server-side connections;
    /// others are skipped), sharing one encoded frame as
    /// [`broadcast`](Context::broadcast) does; text must be UTF-8 (checked).
    pub fn send_shared(
        &mut self,
        ids: impl IntoIterator<Item = ConnId>,
        kind: MessageKind,
        data: &[u8],
    ) -> Result<usize, SendError> {
        self.send_shared_message(ids, &Message::new(kind, data)?)
    }

    /// [`send_shared`](Context::send_shared) of a [`Message`].
    pub fn send_shared_message(
        &mut self,
        ids: impl IntoIterator<Item = ConnId>,
        message: &Message<'_>,
    ) -> Result<usize, SendError> {
        Ok(self.share_message(ids, message, None))
    }

    /// Sends one text message, the concatenation of `parts`, to each of
    /// `ids`, as [`send_shared`](Context::send_shared) does. The frame is
    /// built in place from the parts: a message made of a small envelope
    /// around a large payload (pub/sub) is copied once, into the frame, and
    /// never assembled anywhere else.
    pub fn send_shared_text(
        &mut self,
        ids: impl IntoIterator<Item = ConnId>,
        parts: &[&str],
    ) -> Result<usize, SendError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let frame = |encoding| SharedFrame::text(encoding, parts);
        // joined only for a recipient that compresses with its own context
        let alone = |engine: &mut Connection, out: &mut Vec<u8>| {
            engine.send_message(&Message::text(parts.concat()), out)
        };
        Ok(self.share_frame(ids, frame, alone, len))
    }

    /// Queues a message (`payload_len` bytes of payload) for each open
    /// connection among `ids`: encoded by `encode` once per distinct
    /// encoding for those that take shared frames (the engine decides:
    /// [`Connection::shared_encoding`]), and by `alone` for each open one
    /// that does not (permessage-deflate with context takeover); returns
    /// how many.
    fn share_frame(
        &mut self,
        ids: impl IntoIterator<Item = ConnId>,
        encode: impl Fn(FrameEncoding) -> SharedFrame,
        alone: impl Fn(&mut Connection, &mut Vec<u8>) -> Result<(), UsageError>,
        payload_len: usize,
    ) -> usize {
        // one frame per distinct encoding: one entry today, one per set of
        // negotiated extension parameters with permessage-deflate
        let mut frames: Vec<(FrameEncoding, SharedFrame)> = Vec::with_capacity(1);
        let mut sent = 0;
        for id in ids {
            let current = self.current == Some(id);
            let hub = &mut *self.hub;
            let Some(conn) = lookup(&mut hub.conns, id) else {
                continue;
            };
            // a proxied connection's bytes are relayed, never written here
            if !conn.life.is_open() || conn.engine.role() == Role::Client || conn.proxy.is_some() {
                continue;
            }
            let Some(encoding) = conn.engine.shared_encoding() else {
                // its own encoding, or none now (closing, mid-fragment)
                if self.with_output(id, &alone).is_ok() {
                    self.hub.stats.record_sent(payload_len);
                    sent += 1;
                }
                continue;
            };
            let frame = match frames.iter().find(|(e, _)| *e == encoding) {
                Some((_, frame)) => frame,
                None => {
                    frames.push((encoding, encode(encoding)));
                    &frames[frames.len() - 1].1
                }
            };
            if current && !hub.splices.is_empty() {
                // its output refers to the read buffer and must go out first,
                // from there: this frame follows it in the scratch buffer
                hub.scratch.extend_from_slice(frame);
                hub.stats.record_sent(payload_len);
                sent += 1;
                continue;
            }
            if current && !hub.scratch.is_empty() {
                // keep the order: what this connection produced before goes first
                conn.queue.push_slice(&hub.scratch);
                hub.scratch.clear();
            }
            conn.queue.push_shared(frame);
            hub.stats.record_sent(payload_len);
            sent += 1;
            self.after_queueing(id);
        }
        sent
    }

    /// The open connections (opened and not yet closed).
    pub fn open_connections(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.hub
            .conns
            .iter()
            .filter(|(_, c)| {
                c.life.is_open() && c.engine.state() == State::Open && c.proxy.is_none()
            })
            .map(|(_, c)| c.id)
    }

    /// The number of connections held, handshaking and closing ones included.
    pub fn connection_count(&self) -> usize {
        self.hub.conns.len()
    }

    /// The identity attached to `id` when its upgrade was accepted.
    pub fn user(&self, id: ConnId) -> Option<&str> {
        self.hub
            .conns
            .get(id.index())
            .filter(|c| c.id == id)
            .and_then(|c| c.user.as_deref())
            .map(String::as_str)
    }

    /// The peer address of `id`.
    pub fn peer_addr(&self, id: ConnId) -> Option<SocketAddr> {
        self.hub
            .conns
            .get(id.index())
            .filter(|c| c.id == id)
            .map(|c| c.peer.get())
    }

    /// Bytes queued for `id` that the kernel has not taken yet (payload and
    /// frame headers, and on TLS what waits encrypted in the TLS layer; what
    /// that holds in memory may be more: see `ServerConfig::max_backpressure`).
    pub fn queued_bytes(&self, id: ConnId) -> usize {
        self.hub
            .conns
            .get(id.index())
            .filter(|c| c.id == id)
            .map_or(0, |c| c.queue.len() + c.socket.pending())
    }

    /// The reactor's counters.
    pub fn stats(&self) -> &Stats {
        &self.hub.stats
    }

    /// Asks the reactor to open an outbound connection to a `ws://` URL once
    /// this callback returns; the handler hears `on_open` or
    /// `on_connect_error` (a connection that cannot even start is counted in
    /// [`Stats::connect_failures`]).
    pub fn connect(&mut self, url: &str) {
        self.hub.connect_requests.push(url.to_string());
    }

    /// Asks the reactor to check an upstream's health once this callback
    /// returns: `GET path` over a new connection (TLS for a `wss://`
    /// target), answered in [`Handler::on_probe`](super::Handler::on_probe)
    /// with the status, or why there was none (within the handshake
    /// timeout).
    pub fn probe(&mut self, target: &super::ProxyTarget, path: &str) {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: edgews-proxy\r\nConnection: close\r\n\r\n",
            target.addr
        );
        self.hub.proxy_dials.push(super::proxy::ProxyDial {
            client: None,
            target: target.clone(),
            request: request.into_bytes(),
            answer: super::proxy::PendingAnswer {
                key: Vec::new(),
                offered: Vec::new(),
            },
        });
    }

    /// Asks the reactor to shut down gracefully, as on SIGTERM.
    pub fn shutdown(&mut self) {
        self.hub.stop_requested = true;
    }

    /// Runs `f` with the engine of `id` and the buffer its output belongs in.
    fn with_output<R>(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&mut Connection, &mut Vec<u8>) -> Result<R, UsageError>,
    ) -> Result<R, SendError> {
        let current = self.current == Some(id);
        let hub = &mut *self.hub;
        // a proxied connection is not the handler's to write to: its bytes
        // are relayed as they are (see `proxy.rs`)
        let conn = lookup(&mut hub.conns, id)
            .filter(|c| c.proxy.is_none())
            .ok_or(SendError::UnknownConnection)?;
        // While a splice is pending, scratch refers to the read buffer and
        // cannot move to the queue: new output follows it in scratch, and
        // `write_spliced` keeps the order either way.
        if current && (conn.queue.is_empty() || !hub.splices.is_empty()) {
            return Ok(f(&mut conn.engine, &mut hub.scratch)?);
        }
        if current {
            conn.queue.push_slice(&hub.scratch);
            hub.scratch.clear();
        }
        let engine = &mut conn.engine;
        let result = conn.queue.append_with(|out| f(engine, out))?;
        self.after_queueing(id);
        Ok(result)
    }

    /// Schedules the flush of `id` and applies the slow-consumer policy to
    /// connections other than the current one (the current one is paused
    /// instead, when its processing ends).
    fn after_queueing(&mut self, id: ConnId) {
        self.hub.mark_dirty(id);
        if self.current == Some(id) {
            return;
        }
        let max = self.hub.config.max_backpressure;
        let now = self.hub.now;
        let Some(conn) = lookup(&mut self.hub.conns, id) else {
            return;
        };
        let pending = super::io::held(conn);
        if pending <= max || conn.engine.state() != State::Open {
            return;
        }
        let reason = format!("too slow: {pending} bytes of output held");
        let engine = &mut conn.engine;
        let closed = conn
            .queue
            .append_with(|out| engine.close(now, CloseCode::POLICY_VIOLATION, &reason, out));
        if closed.is_ok() {
            log::warn!(
                "{id} {}: closed as a slow consumer ({pending} bytes of output held)",
                conn.peer.get()
            );
            self.hub.stats.slow_consumer_closes += 1;
        }
    }
}
