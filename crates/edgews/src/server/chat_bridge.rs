//! The chat server across instances (`--redis`): room events go to the
//! other instances as small JSON records on the room's key (`room:NAME`),
//! and come back from them as the same events a local member would cause.
//!
//! - A join, a message or a leave here is published as
//!   `{"t":"join","name"}`, `{"t":"message","from","ts","text"}` or
//!   `{"t":"leave","name"}`.
//! - When Redis confirms the room's subscription (the first member here,
//!   or again after a reconnection), this instance publishes its members
//!   as `{"t":"presence","names":[…],"ask":true}`; every other instance
//!   with members in the room answers with its own (`"ask":false`). A
//!   presence replaces what was known of that instance's members: the
//!   difference reaches the members here as join and leave events.
//! - On the worker holding the link, each record from another instance
//!   becomes a room event under the rooms' lock, numbered and relayed
//!   like a local one (see [`ChatRooms`](super::ChatRooms)): the `id` of
//!   a message is this instance's count for the room.
//! - Messages an instance missed (a gap in the sender's numbers) are
//!   announced in the room as `{"type":"lost","room","count"}` before the
//!   next event from that sender.
//! - Every `presence_interval` (30 s by default, `--presence-interval`)
//!   each instance publishes its members of each room again
//!   (`"ask":false`). An instance not heard from in a room for three
//!   intervals (and at most 5 s more) is taken for gone: its members leave
//!   the room here, with leave events. So an instance killed before its
//!   leaves reached Redis is listed for at most that long. The cost: one
//!   small publication per room and interval per instance.

use super::chat::{check_name, Chat};
use super::chat_rooms::Locked;
use crate::protocol::{FrameEncoding, SharedFrame};
use crate::reactor::{Channel, Context};
use crate::redis::envelope::Kind;
use crate::redis::link::Bridged;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::{Duration, Instant};

/// Beyond three presence intervals, how much longer (at most one more
/// interval) an instance may stay silent before its members are taken out:
/// delays in Redis, a busy loop.
const SILENCE_MARGIN: Duration = Duration::from_secs(5);

/// The prefix of a chat room's key on Redis.
pub const ROOM_KEY_PREFIX: &str = "room:";

/// A room event as it travels between instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub(crate) enum RoomRecord {
    Join { name: String },
    Leave { name: String },
    Message { from: String, ts: u64, text: String },
    Presence { names: Vec<String>, ask: bool },
}

/// The key of `room`.
pub(crate) fn room_key(room: &str) -> String {
    format!("{ROOM_KEY_PREFIX}{room}")
}

/// Publishes `record` on `room` to the other instances; on the worker
/// holding the link, with the rooms locked, after the queued records (see
/// [`Chat::publish_records`]).
fn send(ctx: &mut Context<'_>, room: &str, record: &RoomRecord) {
    if let Ok(json) = serde_json::to_vec(record) {
        ctx.bridge_publish(&room_key(room), Kind::Chat, &json);
    }
}

/// Publishes the queued records, oldest first (the rooms locked, on the
/// worker holding the link).
fn send_queued(ctx: &mut Context<'_>, rooms: &mut Locked<'_>) {
    for (room, record) in rooms.take_records() {
        send(ctx, &room, &record);
    }
}

/// Relays a room event to every worker (this one included), as
/// `chat.rs` does for local ones. Call it with the rooms locked.
fn relay(ctx: &mut Context<'_>, room: &str, event: &serde_json::Value, seq: u64) {
    let frame = SharedFrame::text(FrameEncoding::PLAIN, &[&event.to_string()]);
    ctx.relay(Channel::Topic(room.into()), frame, seq, None, true);
}

impl Chat {
    /// A record from another instance (on the worker holding the link).
    pub(super) fn on_remote(&mut self, ctx: &mut Context<'_>, bridged: &Bridged) {
        let Some(room) = bridged.key.strip_prefix(ROOM_KEY_PREFIX) else {
            return;
        };
        let record = match serde_json::from_slice::<RoomRecord>(&bridged.payload) {
            Ok(record) if self.acceptable(&record) => record,
            _ => {
                log::debug!("redis: a bad or over-limit record on room {room:?}: dropped");
                return;
            }
        };
        let from = bridged.instance;
        let mut rooms = self.rooms().lock();
        if rooms.get(room).is_none() {
            return; // nobody here any more
        }
        if bridged.missing > 0 {
            let seq = rooms.next_seq();
            let event = json!({"type": "lost", "room": room, "count": bridged.missing});
            relay(ctx, room, &event, seq);
        }
        let mut events = Vec::new();
        let mut answer = None;
        let Some(r) = rooms.get(room) else { return };
        r.hear(from, ctx.now());
        let max_remote = self.config().max_room_members;
        match record {
            RoomRecord::Join { name } => {
                if r.remote.len() >= max_remote {
                    return; // bounded whatever the others send
                }
                r.remote.push((from, name.clone()));
                events.push(json!({"type": "join", "room": room, "name": name}));
            }
            RoomRecord::Leave { name } => {
                if let Some(i) = r.remote.iter().position(|(i, n)| *i == from && *n == name) {
                    r.remote.remove(i);
                    events.push(json!({"type": "leave", "room": room, "name": name}));
                }
            }
            RoomRecord::Message {
                from: who,
                ts,
                text,
            } => {
                r.last_id += 1;
                events.push(json!({
                    "type": "message",
                    "room": room,
                    "id": r.last_id,
                    "from": who,
                    "ts": ts,
                    "text": text,
                }));
            }
            RoomRecord::Presence { names, ask } => {
                let mut old: Vec<String> = Vec::new();
                r.remote.retain(|(i, n)| {
                    let theirs = *i == from;
                    if theirs {
                        old.push(n.clone());
                    }
                    !theirs
                });
                let room_left = max_remote.saturating_sub(r.remote.len());
                let names: Vec<String> = names.into_iter().take(room_left).collect();
                r.remote.extend(names.iter().map(|n| (from, n.clone())));
                for (kind, name) in differences(&old, &names) {
                    events.push(json!({"type": kind, "room": room, "name": name}));
                }
                if ask {
                    answer = Some(r.local_names());
                }
            }
        }
        for event in &events {
            let seq = rooms.next_seq();
            relay(ctx, room, event, seq);
        }
        if let Some(names) = answer {
            send_queued(ctx, &mut rooms);
            send(ctx, room, &RoomRecord::Presence { names, ask: false });
        }
    }

    /// On the worker holding the link: publishes the records every
    /// worker queued with its room events, in event order. The others
    /// queue theirs under the rooms' lock and relay the event, which
    /// brings the holder here; a presence is published under the same
    /// lock after the queue is empty. So what the other instances read
    /// follows the events here in order: a presence never overtakes the
    /// join of a member it already lists (which would list it twice), nor
    /// a leave (which would list it after it left).
    pub(super) fn publish_records(&mut self, ctx: &mut Context<'_>) {
        if !ctx.holds_bridge() {
            return;
        }
        let mut rooms = self.rooms().lock();
        send_queued(ctx, &mut rooms);
    }

    /// Whether a record from another instance keeps this server's own
    /// limits: names as a local member's, text no longer than `max_text`.
    /// Redis access is the trust boundary, yet a record over the limits
    /// (another instance configured otherwise, or a forged one) must not
    /// reach members here.
    fn acceptable(&self, record: &RoomRecord) -> bool {
        let name_ok = |name: &str| check_name("name", name).is_ok();
        match record {
            RoomRecord::Join { name } | RoomRecord::Leave { name } => name_ok(name),
            RoomRecord::Message { from, text, .. } => {
                name_ok(from) && text.len() <= self.config().max_text
            }
            RoomRecord::Presence { names, .. } => names.iter().all(|n| name_ok(n)),
        }
    }

    /// Redis confirmed `key`'s subscription: ask the other instances who
    /// is in the room, telling them who is here.
    pub(super) fn on_room_subscribed(&mut self, ctx: &mut Context<'_>, key: &str) {
        let Some(room) = key.strip_prefix(ROOM_KEY_PREFIX) else {
            return;
        };
        let mut rooms = self.rooms().lock();
        send_queued(ctx, &mut rooms);
        let Some(r) = rooms.get(room) else {
            return;
        };
        let names = r.local_names();
        send(ctx, room, &RoomRecord::Presence { names, ask: true });
        drop(rooms);
        let interval = self.config().presence_interval;
        self.presence_at.get_or_insert(ctx.now() + interval);
    }

    /// Every presence interval (on the worker holding the link): tells the
    /// other instances who is in each room here, and takes the members of
    /// instances silent for three intervals out of the rooms, with leave
    /// events, so that an instance that died without its leaves does not
    /// stay listed.
    pub(super) fn refresh_presence(&mut self, ctx: &mut Context<'_>, now: Instant) {
        let interval = self.config().presence_interval;
        self.presence_at = Some(now + interval);
        let silent_since = now.checked_sub(interval * 3 + SILENCE_MARGIN.min(interval));
        let mut presences = Vec::new();
        let mut rooms = self.rooms().lock();
        send_queued(ctx, &mut rooms);
        let mut gone = Vec::new();
        for (room, r) in rooms.rooms_mut() {
            presences.push((room.clone(), r.local_names()));
            if let Some(since) = silent_since {
                for name in r.forget_silent(since) {
                    gone.push(json!({"type": "leave", "room": room, "name": name}));
                }
            }
        }
        for event in &gone {
            let seq = rooms.next_seq();
            let room = event["room"].as_str().unwrap_or_default().to_string();
            relay(ctx, &room, event, seq);
        }
        for (room, names) in presences {
            send(ctx, &room, &RoomRecord::Presence { names, ask: false });
        }
        drop(rooms);
        if !gone.is_empty() {
            log::info!(
                "redis: {} chat members of silent instances left their rooms",
                gone.len()
            );
        }
    }
}

/// What turns member list `old` into `new` (one entry per connection):
/// `("leave", name)` for each one fewer, `("join", name)` for each more.
fn differences<'a>(old: &'a [String], new: &'a [String]) -> Vec<(&'static str, &'a str)> {
    let mut left: Vec<&str> = old.iter().map(String::as_str).collect();
    let mut joined = Vec::new();
    for name in new {
        match left.iter().position(|n| n == name) {
            Some(i) => {
                left.swap_remove(i);
            }
            None => joined.push(("join", name.as_str())),
        }
    }
    let mut out: Vec<(&str, &str)> = left.into_iter().map(|n| ("leave", n)).collect();
    out.extend(joined);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_travel_as_small_tagged_json() {
        let record = RoomRecord::Message {
            from: "al".into(),
            ts: 5,
            text: "hi".into(),
        };
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(json, r#"{"t":"message","from":"al","ts":5,"text":"hi"}"#);
        assert_eq!(serde_json::from_str::<RoomRecord>(&json).unwrap(), record);
        assert!(serde_json::from_str::<RoomRecord>(r#"{"t":"nope"}"#).is_err());
    }

    #[test]
    fn a_presence_differs_from_the_last_by_joins_and_leaves() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let old = s(&["al", "bo", "bo"]);
        let new = s(&["bo", "cy"]);
        assert_eq!(
            differences(&old, &new),
            [("leave", "al"), ("leave", "bo"), ("join", "cy")]
        );
        assert!(differences(&new, &new).is_empty());
    }
}
