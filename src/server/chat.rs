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
//! - Client to server, JSON text frames:
//!   `{"type":"message","room":"ROOM","text":"…"}` (`room` must be the
//!   joined room; other fields are ignored).
//! - Server to client, JSON text frames:
//!   - `{"type":"welcome","room","name","members":[…],"max_text":N}` to a
//!     connection that has just joined;
//!   - `{"type":"join","room","name","members":[…]}` and
//!     `{"type":"leave","room","name","members":[…]}` to the room (the
//!     joining connection included), `members` sorted;
//!   - `{"type":"message","room","id","from","ts","text"}` to the room, the
//!     sender included (its confirmation): `id` counts the room's messages
//!     from 1 (a room that empties is forgotten, and so is its count: the
//!     server keeps no history), `ts` is the server's clock in milliseconds
//!     since the Unix epoch;
//!   - `{"type":"error","error":"…"}` to a connection whose message was
//!     malformed, too long or for the wrong room; it stays open.
//!
//! Every message to a room is encoded once and its frame shared by all the
//! recipients ([`Topics::publish`]).

use super::topics::Topics;
use crate::protocol::{CloseCode, Closed, HandshakeError, Message, MessageKind, Request};
use crate::reactor::{Accept, ConnId, Context, Handler, HttpResponse, OpenInfo};
use serde_json::{json, Value};
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
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig { max_text: 4 << 10 }
    }
}

/// Who a connection is and where it talks.
#[derive(Debug)]
struct Member {
    room: String,
    name: String,
}

/// What the server keeps about a room besides its members (who are the
/// subscribers of the topic of the same name).
#[derive(Debug, Default)]
struct Room {
    last_id: u64,
}

/// The chat handler.
#[derive(Debug, Default)]
pub struct Chat {
    config: ChatConfig,
    topics: Topics,
    members: HashMap<ConnId, Member>,
    rooms: HashMap<String, Room>,
}

impl Chat {
    /// A chat server with no rooms yet.
    pub fn new(config: ChatConfig) -> Chat {
        Chat {
            config,
            ..Chat::default()
        }
    }

    /// The room registry (one topic per room).
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// The names in `room`, one per connection, sorted.
    pub fn members(&self, room: &str) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .topics
            .subscribers(room)
            .filter_map(|id| self.members.get(&id))
            .map(|m| m.name.as_str())
            .collect();
        names.sort_by(|a, b| a.to_lowercase().cmp(&b.to_lowercase()).then(a.cmp(b)));
        names
    }

    /// Sends a presence event (`join` or `leave`) to everyone in `room`.
    fn presence(&self, ctx: &mut Context<'_>, kind: &str, room: &str, name: &str) {
        let event = json!({
            "type": kind,
            "room": room,
            "name": name,
            "members": self.members(room),
        })
        .to_string();
        let _ = self
            .topics
            .publish(ctx, room, MessageKind::Text, event.as_bytes(), None);
    }

    /// Handles one message from `id`; an `Err` is sent back as an error event.
    fn handle(&mut self, ctx: &mut Context<'_>, id: ConnId, text: &str) -> Result<(), String> {
        let member = self
            .members
            .get(&id)
            .ok_or_else(|| "not in a room".to_string())?;
        // Even escaped to the hilt (\uXXXX), valid text is at most 6 bytes
        // of JSON per byte: anything longer is refused without parsing.
        if text.len() > self.config.max_text.saturating_mul(6).saturating_add(1024) {
            return Err(too_long(text.len(), self.config.max_text));
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("malformed JSON: {e}"))?;
        let object = value
            .as_object()
            .ok_or_else(|| "expected a JSON object".to_string())?;
        match object.get("type").and_then(Value::as_str) {
            Some("message") => {}
            Some(other) => return Err(format!("unknown message type {other:?}")),
            None => return Err("missing \"type\": send {\"type\":\"message\",…}".into()),
        }
        let room = object
            .get("room")
            .and_then(Value::as_str)
            .ok_or_else(|| "missing \"room\"".to_string())?;
        if room != member.room {
            return Err(format!("you are in room {:?}, not {room:?}", member.room));
        }
        let body = object
            .get("text")
            .and_then(Value::as_str)
            .ok_or_else(|| "missing \"text\" (a string)".to_string())?;
        if body.len() > self.config.max_text {
            return Err(too_long(body.len(), self.config.max_text));
        }
        if body.trim().is_empty() {
            return Err("empty message".into());
        }
        let room = self.rooms.entry(member.room.clone()).or_default();
        room.last_id += 1;
        let event = json!({
            "type": "message",
            "room": member.room,
            "id": room.last_id,
            "from": member.name,
            "ts": unix_millis(),
            "text": body,
        })
        .to_string();
        self.topics
            .publish(ctx, &member.room, MessageKind::Text, event.as_bytes(), None)
            .map_err(|e| e.to_string())?;
        Ok(())
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

fn too_long(len: usize, max: usize) -> String {
    format!("message too long: {len} bytes, at most {max}")
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

/// The value of `key` in a query string, percent-decoded (`+` is a space);
/// `None` when absent, `Err` when it is not UTF-8.
pub fn query_param(query: &str, key: &str) -> Option<Result<String, String>> {
    let raw = query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })?;
    Some(percent_decode(raw).ok_or_else(|| format!("{key} is not valid UTF-8")))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
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
    request.header("authorization").is_some()
        || request
            .query()
            .is_some_and(|q| query_param(q, "token").is_some())
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
        named(query, "room").map_err(refuse)?;
        // with a token, the user it names is the name and ?name is ignored
        if !has_token(request) {
            named(query, "name").map_err(refuse)?;
        }
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
                HttpResponse::metrics(ctx.stats().to_prometheus() + &self.topics.to_prometheus())
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
        let _ = self.topics.subscribe(id, &room);
        self.members.insert(
            id,
            Member {
                room: room.clone(),
                name: name.clone(),
            },
        );
        let welcome = json!({
            "type": "welcome",
            "room": room,
            "name": name,
            "members": self.members(&room),
            "max_text": self.config.max_text,
        });
        let _ = ctx.send_text(id, &welcome.to_string());
        self.presence(ctx, "join", &room, &name);
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
        if self.topics.subscribers(&member.room).next().is_none() {
            self.rooms.remove(&member.room);
            return;
        }
        self.presence(ctx, "leave", &member.room, &member.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_decoded() {
        let q = "room=caf%C3%A9+au+lait&name=a%2Bb&x&token=";
        assert_eq!(query_param(q, "room"), Some(Ok("café au lait".into())));
        assert_eq!(query_param(q, "name"), Some(Ok("a+b".into())));
        assert_eq!(query_param(q, "x"), Some(Ok(String::new())));
        assert_eq!(query_param(q, "token"), Some(Ok(String::new())));
        assert_eq!(query_param(q, "nope"), None);
        assert_eq!(query_param("a=%zz%4", "a"), Some(Ok("%zz%4".into())));
        assert_eq!(query_param("a=%+1%-1", "a"), Some(Ok("% 1%-1".into())));
        assert!(query_param("a=%ff", "a").unwrap().is_err());
    }

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
