//! The chat server: rooms of people who send each other text, with
//! presence, behind one self-contained web page.
//!
//! - `GET /` serves the page (`chat.html`, embedded in the binary), with a
//!   Content-Security-Policy that lets only its own inline script run.
//!   `GET /metrics` adds the room gauges to the reactor's counters.
//! - `ws://host/ws?room=ROOM&name=NAME` joins `ROOM` as `NAME`. Both are
//!   percent-decoded, trimmed of surrounding whitespace, and must then be
//!   1 to 64 characters with no control characters; otherwise the upgrade
//!   is refused with 400 and the reason. When the connection carries an
//!   authenticated user (the `sub` of a JWT, see
//!   [`Authenticated`](super::Authenticated)), that user is the name and
//!   `?name` is ignored.
//! - Duplicate names are allowed (two tabs of one person, or a reconnect
//!   seen before the old connection timed out): the member lists simply
//!   name them once per connection. Nobody can speak as someone else: the
//!   server stamps every message with the name its connection joined with.
//! - Rooms and their size are capped ([`ChatConfig`]): a join to a room
//!   with `max_room_members` members is refused at the upgrade with 403
//!   and `room ROOM is full (N members)`; a new room past `max_rooms` with
//!   503. Should the room fill between the upgrade and the open, the
//!   connection is closed at once with 1008 and the same reason.
//! - Client to server, JSON text frames:
//!   `{"type":"message","room":"ROOM","text":"…"}` (`room` must be the
//!   joined room; other fields are ignored), parsed without a JSON tree
//!   ([`parse_message`]).
//! - Server to client, JSON text frames:
//!   - `{"type":"welcome","room","name","members":[…],"max_text":N}` to a
//!     connection that has just joined: the full member list, sorted;
//!   - `{"type":"join","room","name"}` to everyone else in the room when a
//!     connection joins, and `{"type":"leave","room","name"}` to everyone
//!     left when one leaves: presence as deltas, which a client applies to
//!     the list it was welcomed with (one entry per connection, so a name
//!     may come and go several times);
//!   - `{"type":"message","room","id","from","ts","text"}` to the room, the
//!     sender included (its confirmation): `id` counts the room's messages
//!     from 1 (a room that empties is forgotten, and so is its count: the
//!     server keeps no history), `ts` is the server's clock in milliseconds
//!     since the Unix epoch;
//!   - `{"type":"error","error":"…"}` to a connection whose message was
//!     malformed, too long or for the wrong room; it stays open.
//!
//! Every event in a room is encoded once and its frame shared by all the
//! recipients, on every worker: the rooms are the process's
//! ([`ChatRooms`], whose docs say how each member sees every event once, in
//! the same order as everyone else).
//!
//! # What presence costs
//!
//! The k-th connection to join a room costs the server one welcome of
//! O(k) bytes (the k names) and one join event of O(1) bytes to each of
//! the k − 1 others, encoded once: n joins send O(n²) bytes in all (not
//! O(n³), as full lists to everyone would). Measured by
//! `two_hundred_joins_cost_quadratic_not_cubic_bytes` in `tests/chat.rs`:
//! 200 joins to one room with 10-character names send 1.23 MB of payload
//! in all, 0.28 MB of it in welcomes (full lists to everyone would be
//! ≈ 35 MB). With the default room cap (1 000 members), one join sends a
//! welcome of 13 bytes a member with such names (at most 1 000 × 259 ≈
//! 260 KB with 64-character names of 4-byte characters) plus one
//! ≈ 50-byte event, encoded once and shared by the 999 others.
//!
//! # Memory
//!
//! A member holds its room and name (each at most 64 characters, 256
//! bytes) and ≈ 300 bytes of bookkeeping here and in the registry
//! ([`Topics`] has the arithmetic); a room, its name and ≈ 350 bytes.
//! Rooms are at most `max_rooms` (10 000 by default: ≈ 6 MB with the
//! longest names), members per room at most `max_room_members`. A client
//! message over `6 × max_text + 1024` bytes is refused unparsed, and the
//! parse builds no tree: it copies only strings with escapes.

use super::chat_bridge::{room_key, RoomRecord};
use super::chat_message::parse_message;
use super::chat_rooms::ChatRooms;
pub use super::query::query_param;
use super::topics::{SubscribeError, TopicLimits, Topics};
use crate::protocol::close::truncate_reason;
use crate::protocol::{
    CloseCode, Closed, FrameEncoding, HandshakeError, Message, Request, SharedFrame,
};
use crate::reactor::{Accept, Channel, ConnId, Context, Handler, HttpResponse, OpenInfo, Relayed};
use crate::redis::link::Bridged;
use serde_json::json;
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// The page, with `__CSP_NONCE__` where each response puts its nonce.
const PAGE: &str = include_str!("chat.html");
const NONCE_PLACEHOLDER: &str = "__CSP_NONCE__";

/// The longest room or user name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// What a chat server allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatConfig {
    /// The longest message text, in bytes (UTF-8). Default 4 KiB.
    pub max_text: usize,
    /// Most connections in one room. Default 1 000: a welcome lists them
    /// all, and every message to the room is queued for each.
    pub max_room_members: usize,
    /// Most rooms with at least one member, server-wide. Default 10 000.
    pub max_rooms: usize,
    /// With `--redis`: how often this instance tells the others who is
    /// in each of its rooms. An instance not heard from in a room for
    /// three of these (and 5 s more) is taken for gone: its members leave
    /// the room here. Default 30 s.
    pub presence_interval: std::time::Duration,
}

impl ChatConfig {
    /// The largest WebSocket message the chat protocol can use with these
    /// settings (see [`parse_message`]): run the
    /// server with the engine's `max_message_size` at most this, so that a
    /// larger message is refused (1009) as it arrives instead of being
    /// assembled first.
    pub fn max_message_size(&self) -> u64 {
        super::chat_message::max_message_len(self.max_text) as u64
    }
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            max_text: 4 << 10,
            max_room_members: 1_000,
            max_rooms: 10_000,
            presence_interval: std::time::Duration::from_secs(30),
        }
    }
}

/// Who a connection is and where it talks.
#[derive(Debug)]
struct Member {
    room: String,
    name: String,
    /// The room's sequence number when this member joined: it was welcomed
    /// with the members as of then, and gets only later events.
    joined_seq: u64,
}

/// The chat handler (one per worker; the rooms are the process's).
#[derive(Debug)]
pub struct Chat {
    config: ChatConfig,
    /// Every worker's rooms: members, counters, caps.
    rooms: ChatRooms,
    /// This worker's members, by room (the topic of the same name).
    topics: Topics,
    members: HashMap<ConnId, Member>,
    /// With `--redis`, on the worker holding the link: when to publish the
    /// rooms' presence and forget silent instances next.
    pub(super) presence_at: Option<std::time::Instant>,
}

impl Chat {
    /// A chat server with no rooms yet.
    pub fn new(config: ChatConfig) -> Chat {
        Chat::with_rooms(config, ChatRooms::new())
    }

    /// A chat server for one worker among several: `rooms`, shared by every
    /// worker's handler, holds who is in each room, so presence, message
    /// numbers and the caps span the workers.
    pub fn with_rooms(config: ChatConfig, rooms: ChatRooms) -> Chat {
        // the caps are the shared rooms' to enforce; locally, one room each
        let limits = TopicLimits {
            max_topics: usize::MAX,
            max_subscriptions_per_connection: 1,
            max_subscribers_per_topic: usize::MAX,
        };
        Chat {
            config,
            rooms,
            topics: Topics::with_limits(limits),
            members: HashMap::new(),
            presence_at: None,
        }
    }

    /// This worker's members, by room (one topic per room).
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// The rooms of the whole process.
    pub fn rooms(&self) -> &ChatRooms {
        &self.rooms
    }

    /// What this server allows.
    pub fn config(&self) -> &ChatConfig {
        &self.config
    }

    /// The names in `room` (on every worker), one per connection, sorted.
    pub fn members(&self, room: &str) -> Vec<String> {
        self.rooms.names(room)
    }

    /// Handles one message from `id`; an `Err` is sent back as an error event.
    fn handle(&mut self, ctx: &mut Context<'_>, id: ConnId, text: &str) -> Result<(), String> {
        let member = self
            .members
            .get(&id)
            .ok_or_else(|| "not in a room".to_string())?;
        let message = parse_message(text, self.config.max_text)?;
        if message.room != member.room {
            return Err(format!(
                "you are in room {:?}, not {:?}",
                member.room, message.room
            ));
        }
        let mut rooms = self.rooms.lock();
        let Some(room) = rooms.get(&member.room) else {
            return Err("not in a room".to_string());
        };
        room.last_id += 1;
        let id = room.last_id;
        let ts = unix_millis();
        let event = json!({
            "type": "message",
            "room": member.room,
            "id": id,
            "from": member.name,
            "ts": ts,
            "text": message.text,
        });
        let seq = rooms.next_seq();
        // relayed under the lock: every worker gets the room's events in order
        relay_event(ctx, &member.room, &event, seq, None);
        if ctx.is_bridged() {
            let record = RoomRecord::Message {
                from: member.name.clone(),
                ts,
                text: message.text.into_owned(),
            };
            rooms.queue_record(&member.room, record);
        }
        drop(rooms);
        self.publish_records(ctx);
        Ok(())
    }

    /// The chat's gauges (the process's rooms and members) and counter.
    fn to_prometheus(&self) -> String {
        format!(
            "# HELP edgews_topics Topics with at least one subscriber.\n# TYPE edgews_topics gauge\nedgews_topics {}\n\
             # HELP edgews_subscriptions Subscriptions, all topics together.\n# TYPE edgews_subscriptions gauge\n\
             edgews_subscriptions {}\n\
             # HELP edgews_subscriptions_refused_total Joins of open connections refused by a cap on rooms or members (refusals at the upgrade count in edgews_handshake_failures_total).\n\
             # TYPE edgews_subscriptions_refused_total counter\n\
             edgews_subscriptions_refused_total {}\n",
            self.rooms.room_count(),
            self.rooms.member_count(),
            self.rooms.refused_count(),
        )
    }

    /// The page, with a fresh nonce in its Content-Security-Policy.
    fn page() -> HttpResponse {
        use base64::Engine as _;
        let nonce = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
        let body = PAGE.replace(NONCE_PLACEHOLDER, &nonce);
        HttpResponse {
            status: 200,
            content_type: "text/html; charset=utf-8",
            headers: vec![
                format!(
                    "Content-Security-Policy: default-src 'none'; script-src 'nonce-{nonce}'; \
                     style-src 'nonce-{nonce}'; connect-src 'self'; img-src data:; \
                     base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
                ),
                "Cache-Control: no-store".into(),
                "X-Content-Type-Options: nosniff".into(),
                // the page's URL may hold a token: never pass it on
                "Referrer-Policy: no-referrer".into(),
            ],
            body: Cow::Owned(body.into_bytes()),
        }
    }
}

impl Default for Chat {
    fn default() -> Self {
        Chat::new(ChatConfig::default())
    }
}

/// The HTTP status and reason for a join the room caps refuse: 403 for a
/// full room, 503 for a server with all the rooms it may hold.
fn refusal(room: &str, error: SubscribeError) -> (u16, String) {
    match error {
        SubscribeError::TopicFull(max) => (403, format!("room {room} is full ({max} members)")),
        SubscribeError::TooManyTopics(max) => (
            503,
            format!("too many rooms: the server holds at most {max}"),
        ),
        SubscribeError::TooManySubscriptions(_) => (503, error.to_string()),
    }
}

/// Relays a room event (`seq`, the room's next number) to every worker,
/// this one included: each delivers it to its members who joined before
/// it (see `on_relayed`). Call it with the rooms locked.
fn relay_event(
    ctx: &mut Context<'_>,
    room: &str,
    event: &serde_json::Value,
    seq: u64,
    except: Option<ConnId>,
) {
    let frame = SharedFrame::text(FrameEncoding::PLAIN, &[&event.to_string()]);
    ctx.relay(Channel::Topic(room.into()), frame, seq, except, true);
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Checks a room or user name (already trimmed); `what` names it in the error.
pub fn check_name(what: &str, value: &str) -> Result<(), String> {
    let chars = value.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(format!(
            "{what} must be 1 to {MAX_NAME_CHARS} characters, not {chars}"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{what} may not contain control characters"));
    }
    Ok(())
}

/// The value of `key` in `query`, decoded, trimmed and checked.
fn named(query: &str, key: &str) -> Result<String, String> {
    let value = query_param(query, key).ok_or_else(|| format!("missing ?{key}="))??;
    let value = value.trim();
    check_name(key, value)?;
    Ok(value.to_string())
}

/// Whether the request carries a token (which may name the user instead of
/// `?name`).
fn has_token(request: &Request<'_>) -> bool {
    super::query::request_token(request).is_some()
}

impl Handler for Chat {
    fn on_upgrade(
        &mut self,
        request: &Request<'_>,
        _peer: SocketAddr,
    ) -> Result<Accept, HandshakeError> {
        if request.path() != "/ws" {
            return Err(HandshakeError::Refused(
                404,
                "the chat lives at /ws?room=ROOM&name=NAME".into(),
            ));
        }
        let refuse = |reason: String| HandshakeError::Refused(400, reason);
        let query = request.query().unwrap_or("");
        let room = named(query, "room").map_err(refuse)?;
        // with a token, the user it names is the name and ?name is ignored
        if !has_token(request) {
            named(query, "name").map_err(refuse)?;
        }
        self.rooms
            .lock()
            .check_join(&self.config, &room)
            .map_err(|e| {
                let (status, reason) = refusal(&room, e);
                HandshakeError::Refused(status, reason)
            })?;
        Ok(Accept::default())
    }

    fn on_http(
        &mut self,
        ctx: &mut Context<'_>,
        request: &Request<'_>,
        _peer: SocketAddr,
    ) -> HttpResponse {
        match (request.method, request.path()) {
            ("GET", "/" | "/index.html") => Chat::page(),
            ("GET", "/metrics") => {
                HttpResponse::metrics(ctx.metrics_text() + &self.to_prometheus())
            }
            _ => HttpResponse::default_for(request),
        }
    }

    fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId, info: &OpenInfo<'_>) {
        let query = info.request.and_then(|r| r.query()).unwrap_or("");
        let joined = named(query, "room").and_then(|room| {
            let name = match info.user {
                Some(user) => {
                    let user = user.trim();
                    check_name("name", user)?;
                    user.to_string()
                }
                None => named(query, "name")?,
            };
            Ok((room, name))
        });
        let (room, name) = match joined {
            Ok(joined) => joined,
            Err(reason) => {
                // only a token whose subject is no valid name gets here (or,
                // with no token checks, a request with ?token= and a bad name)
                let _ = ctx.close(id, CloseCode::POLICY_VIOLATION, &reason);
                return;
            }
        };
        let mut rooms = self.rooms.lock();
        let joined = match rooms.join(&self.config, &room, id, &name) {
            Ok(joined) => joined,
            Err(e) => {
                // the room filled (or the rooms ran out) since the upgrade
                drop(rooms);
                self.rooms.count_refusal();
                let (_, reason) = refusal(&room, e);
                let _ = ctx.close(id, CloseCode::POLICY_VIOLATION, truncate_reason(&reason));
                return;
            }
        };
        let welcome = json!({
            "type": "welcome",
            "room": room,
            "name": name,
            "members": joined.names(),
            "max_text": self.config.max_text,
        });
        let seq = rooms.next_seq();
        let event = json!({"type": "join", "room": room, "name": name});
        relay_event(ctx, &room, &event, seq, Some(id));
        if ctx.is_bridged() {
            rooms.queue_record(&room, RoomRecord::Join { name: name.clone() });
        }
        drop(rooms);
        let _ = self.topics.subscribe(id, &room);
        if ctx.is_bridged() && self.topics.subscriber_count(&room) == 1 {
            ctx.bridge_subscribe(&room_key(&room));
        }
        self.publish_records(ctx);
        self.members.insert(
            id,
            Member {
                room,
                name,
                joined_seq: seq,
            },
        );
        // before any room event: those are relayed, delivered at the end
        // of this loop turn at the earliest
        let _ = ctx.send_text(id, &welcome.to_string());
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, message: Message<'_>) {
        let result = match message.as_text() {
            Some(text) => self.handle(ctx, id, text),
            None => Err("binary messages are not part of the chat protocol".into()),
        };
        if let Err(error) = result {
            let _ = ctx.send_text(id, &json!({"type": "error", "error": error}).to_string());
        }
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, id: ConnId, _closed: &Closed) {
        let Some(member) = self.members.remove(&id) else {
            return;
        };
        self.topics.remove_connection(id);
        let mut rooms = self.rooms.lock();
        let bridged = ctx.is_bridged();
        // with --redis, relayed even when the room emptied: the relay is
        // what tells the worker holding the link to publish the leave
        if rooms.leave(&member.room, id).is_some() || bridged {
            let seq = rooms.next_seq();
            let event = json!({"type": "leave", "room": member.room, "name": member.name});
            relay_event(ctx, &member.room, &event, seq, None);
        }
        if bridged {
            rooms.queue_record(&member.room, RoomRecord::Leave { name: member.name });
        }
        drop(rooms);
        if bridged && self.topics.subscriber_count(&member.room) == 0 {
            ctx.bridge_unsubscribe(&room_key(&member.room));
        }
        self.publish_records(ctx);
    }

    fn on_relayed(&mut self, ctx: &mut Context<'_>, relayed: &Relayed) {
        let Channel::Topic(room) = &relayed.channel else {
            return;
        };
        // only members welcomed before the event: the others' welcome
        // already reflects it
        let members = &self.members;
        let ids = self.topics.subscribers(room).filter(|id| {
            Some(*id) != relayed.except
                && members.get(id).is_some_and(|m| m.joined_seq < relayed.seq)
        });
        ctx.send_relayed(ids, relayed);
        self.publish_records(ctx);
    }

    fn on_relay_lost(&mut self, ctx: &mut Context<'_>, channel: &Channel) {
        self.topics.close_lost(ctx, channel);
    }

    fn on_bridged(&mut self, ctx: &mut Context<'_>, message: &Bridged) {
        self.on_remote(ctx, message);
    }

    fn on_bridge_subscribed(&mut self, ctx: &mut Context<'_>, key: &str) {
        self.on_room_subscribed(ctx, key);
    }

    fn poll_timeout(&self) -> Option<std::time::Instant> {
        self.presence_at
    }

    fn on_timeout(&mut self, ctx: &mut Context<'_>, now: std::time::Instant) {
        self.refresh_presence(ctx, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_1_to_64_characters_without_controls() {
        assert!(check_name("name", "a").is_ok());
        assert!(check_name("name", &"é".repeat(64)).is_ok());
        assert!(check_name("name", &"é".repeat(65)).is_err());
        assert!(check_name("name", "").is_err());
        assert!(check_name("name", "a\nb").is_err());
        assert!(check_name("name", "a\u{7f}").is_err());
    }
}
