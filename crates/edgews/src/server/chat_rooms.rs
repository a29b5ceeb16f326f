//! The chat server's rooms as the whole process sees them: who is in each
//! room (on any worker), the room's message count, and its event
//! sequence, behind one lock.
//!
//! Every room event (a join, a message, a leave) takes the next number of
//! one process-wide sequence and is relayed to every worker, this one
//! included, while the lock is held: so each worker's inbox holds a room's
//! events in sequence order, and every member sees them in the same order.
//! A member welcomed at sequence `s` was given the member list as of `s`,
//! and gets exactly the events after `s` (see [`Chat`](super::Chat)): none
//! twice, none missed. The sequence is the process's, not the room's, so
//! that a room forgotten when it empties and made again later cannot hand
//! a new member an old event still waiting in an inbox.

use super::chat::ChatConfig;
use super::chat_bridge::RoomRecord;
use super::topics::SubscribeError;
use crate::reactor::ConnId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The rooms of every worker's chat handler; clone it into each worker's
/// [`Chat`](super::Chat) ([`Chat::with_rooms`](super::Chat::with_rooms)).
#[derive(Debug, Clone, Default)]
pub struct ChatRooms {
    rooms: Arc<Mutex<Rooms>>,
    /// Joins refused by a cap after the upgrade was accepted.
    refused: Arc<AtomicU64>,
}

/// The rooms and the sequence their events are numbered in.
#[derive(Debug, Default)]
struct Rooms {
    rooms: HashMap<String, Room>,
    /// The number of the last event in any room.
    seq: u64,
    /// With `--redis`: the records for the other instances, in event
    /// order, until the worker holding the link publishes them (see
    /// `chat_bridge.rs`).
    outbox: Vec<(String, RoomRecord)>,
}

/// One room: its members on every worker and its message count.
#[derive(Debug, Default)]
pub(crate) struct Room {
    /// The number of the room's last message (the `id` clients see).
    pub last_id: u64,
    /// Who is in the room, one entry per connection.
    members: Vec<(ConnId, String)>,
    /// Who is in the room on other instances (`--redis`), by instance id.
    pub remote: Vec<(u64, String)>,
    /// When each other instance with members here was last heard from in
    /// this room.
    pub heard: Vec<(u64, std::time::Instant)>,
}

impl Room {
    /// Records that `instance` spoke in this room at `now`.
    pub fn hear(&mut self, instance: u64, now: std::time::Instant) {
        match self.heard.iter_mut().find(|(i, _)| *i == instance) {
            Some(entry) => entry.1 = now,
            None => self.heard.push((instance, now)),
        }
    }

    /// Forgets the instances not heard from since `since`; returns the
    /// names of their members (who left the room as far as this instance
    /// can tell).
    pub fn forget_silent(&mut self, since: std::time::Instant) -> Vec<String> {
        let gone: Vec<u64> = self
            .heard
            .iter()
            .filter(|(_, at)| *at < since)
            .map(|(i, _)| *i)
            .collect();
        self.heard.retain(|(i, _)| !gone.contains(i));
        let mut names = Vec::new();
        self.remote.retain(|(i, n)| {
            let silent = gone.contains(i);
            if silent {
                names.push(n.clone());
            }
            !silent
        });
        names
    }

    /// The names of the members on this instance, one per connection.
    pub fn local_names(&self) -> Vec<String> {
        self.members.iter().map(|(_, n)| n.clone()).collect()
    }

    /// The members' names, one per connection, on this instance and
    /// others, sorted.
    pub fn names(&self) -> Vec<&str> {
        let local = self.members.iter().map(|(_, n)| n.as_str());
        let remote = self.remote.iter().map(|(_, n)| n.as_str());
        let mut names: Vec<&str> = local.chain(remote).collect();
        names.sort_by_cached_key(|name| (name.to_lowercase(), *name));
        names
    }
}

/// The rooms, locked.
pub(crate) struct Locked<'a>(MutexGuard<'a, Rooms>);

impl ChatRooms {
    /// No rooms yet.
    pub fn new() -> ChatRooms {
        ChatRooms::default()
    }

    pub(crate) fn lock(&self) -> Locked<'_> {
        Locked(self.rooms.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Counts a join refused by a cap after its upgrade was accepted.
    pub(crate) fn count_refusal(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Joins refused by a cap after the upgrade was accepted.
    pub fn refused_count(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// How many rooms have members.
    pub fn room_count(&self) -> usize {
        self.lock().0.rooms.len()
    }

    /// Members of all rooms together.
    pub fn member_count(&self) -> usize {
        self.lock().0.rooms.values().map(|r| r.members.len()).sum()
    }

    /// The names in `room`, one per connection on any worker, sorted.
    pub fn names(&self, room: &str) -> Vec<String> {
        let rooms = self.lock();
        rooms.0.rooms.get(room).map_or_else(Vec::new, |r| {
            r.names().into_iter().map(str::to_string).collect()
        })
    }
}

impl Locked<'_> {
    /// The next event's number.
    pub fn next_seq(&mut self) -> u64 {
        self.0.seq += 1;
        self.0.seq
    }

    /// The cap one more member of `room` would break.
    pub fn check_join(&self, config: &ChatConfig, room: &str) -> Result<(), SubscribeError> {
        let rooms = &self.0.rooms;
        match rooms.get(room) {
            Some(r) if r.members.len() >= config.max_room_members => {
                Err(SubscribeError::TopicFull(config.max_room_members))
            }
            Some(_) => Ok(()),
            None if rooms.len() >= config.max_rooms => {
                Err(SubscribeError::TooManyTopics(config.max_rooms))
            }
            None => Ok(()),
        }
    }

    /// Adds `id` as `name` to `room`, within the caps.
    pub fn join(
        &mut self,
        config: &ChatConfig,
        room: &str,
        id: ConnId,
        name: &str,
    ) -> Result<&mut Room, SubscribeError> {
        self.check_join(config, room)?;
        let entry = self.0.rooms.entry(room.to_string()).or_default();
        entry.members.push((id, name.to_string()));
        Ok(entry)
    }

    /// Takes `id` out of `room`; the room, unless that emptied it (then it
    /// is forgotten, with its counters).
    pub fn leave(&mut self, room: &str, id: ConnId) -> Option<&mut Room> {
        let rooms = &mut self.0.rooms;
        let r = rooms.get_mut(room)?;
        r.members.retain(|(member, _)| *member != id);
        if r.members.is_empty() {
            rooms.remove(room);
            return None;
        }
        rooms.get_mut(room)
    }

    /// Every room, with its name.
    pub fn rooms_mut(&mut self) -> impl Iterator<Item = (&String, &mut Room)> {
        self.0.rooms.iter_mut()
    }

    /// Queues `record` on `room` for the other instances, in the order of
    /// the room events (call it with the event, under the same lock).
    pub fn queue_record(&mut self, room: &str, record: RoomRecord) {
        self.0.outbox.push((room.to_string(), record));
    }

    /// The queued records, oldest first.
    pub fn take_records(&mut self) -> Vec<(String, RoomRecord)> {
        std::mem::take(&mut self.0.outbox)
    }

    /// `room`, if it has members.
    pub fn get(&mut self, room: &str) -> Option<&mut Room> {
        self.0.rooms.get_mut(room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> ConnId {
        ConnId::new(n as usize, 0)
    }

    #[test]
    fn rooms_count_members_on_every_worker_within_the_caps() {
        let config = ChatConfig {
            max_room_members: 2,
            max_rooms: 1,
            ..ChatConfig::default()
        };
        let rooms = ChatRooms::new();
        let mut locked = rooms.lock();
        locked.join(&config, "a", id(1), "bo").unwrap();
        locked.join(&config, "a", id(2), "Al").unwrap();
        assert_eq!((locked.next_seq(), locked.next_seq()), (1, 2));
        assert_eq!(
            locked.join(&config, "a", id(3), "cy").err(),
            Some(SubscribeError::TopicFull(2))
        );
        assert_eq!(
            locked.check_join(&config, "b"),
            Err(SubscribeError::TooManyTopics(1))
        );
        assert_eq!(locked.get("a").unwrap().names(), ["Al", "bo"]);
        assert!(locked.leave("a", id(1)).is_some());
        assert!(locked.leave("a", id(2)).is_none(), "emptied, forgotten");
        locked.join(&config, "a", id(4), "di").unwrap();
        assert_eq!(locked.next_seq(), 3, "the sequence outlives the room");
        drop(locked);
        assert_eq!((rooms.room_count(), rooms.member_count()), (1, 1));
        assert_eq!(rooms.names("a"), ["di"]);
    }

    #[test]
    fn instances_silent_since_a_moment_are_forgotten_with_their_members() {
        let t0 = std::time::Instant::now();
        let later = t0 + std::time::Duration::from_secs(10);
        let mut room = Room {
            remote: vec![(1, "al".into()), (2, "bo".into()), (1, "cy".into())],
            ..Room::default()
        };
        room.hear(1, t0);
        room.hear(2, t0);
        room.hear(2, later);
        assert_eq!(room.forget_silent(later), ["al", "cy"]);
        assert_eq!(room.remote, [(2, "bo".to_string())]);
        assert_eq!(room.heard, [(2, later)]);
        assert!(
            room.forget_silent(later).is_empty(),
            "nothing left to forget"
        );
    }
}
