//! What arrives from Redis: replies to the opening commands and to
//! PUBLISH, and the subscriber's pushes (messages, confirmations).

use super::super::envelope::Envelope;
use super::super::resp::{self, Value};
use super::super::sequence::Verdict;
use super::{Bridged, Failure, Link, LinkEvent, Opening, Role, State};

impl Link {
    /// Bytes read from `role`'s connection. An `Err` means the connection
    /// is unusable (a protocol error, refused credentials): drop it and
    /// call [`handle_disconnect`](Link::handle_disconnect).
    pub fn handle_input(&mut self, role: Role, bytes: &[u8]) -> Result<(), Failure> {
        let side = &mut self.sides[role.index()];
        if matches!(side.state, State::Down { .. }) {
            return Ok(());
        }
        side.input.extend_from_slice(bytes);
        let mut input = std::mem::take(&mut side.input);
        let mut start = 0;
        let result = loop {
            match resp::decode(&input[start..], &self.limits) {
                Ok(Some((value, used))) => {
                    start += used;
                    if let Err(failure) = self.handle_value(role, value) {
                        break Err(failure);
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(Failure::io(format!("bad reply from Redis: {e}"))),
            }
        };
        input.drain(..start);
        let side = &mut self.sides[role.index()];
        if !matches!(side.state, State::Down { .. }) {
            side.input = input;
        }
        result
    }

    /// One reply or push from `role`'s connection.
    fn handle_value(&mut self, role: Role, value: Value) -> Result<(), Failure> {
        let side = &mut self.sides[role.index()];
        if let Some(opening) = side.opening.front().copied() {
            if matches!(value, Value::Array(_)) && role == Role::Subscriber {
                return Err(Failure::io("unexpected push before the opening replies"));
            }
            side.opening.pop_front();
            if let Value::Error(e) = &value {
                let text = String::from_utf8_lossy(e).into_owned();
                let auth = opening == Opening::Auth
                    || text.starts_with("NOAUTH")
                    || text.starts_with("WRONGPASS");
                if auth || opening == Opening::Select {
                    return Err(Failure { reason: text, auth });
                }
                // CLIENT SETNAME refused (a proxy may not know it): harmless
                log::debug!("redis: CLIENT SETNAME refused: {text}");
            }
            if side.opening.is_empty() {
                side.state = State::Ready;
                side.backoff.succeed();
                side.failure_logged = false;
                self.update_up();
            }
            return Ok(());
        }
        match role {
            Role::Publisher => {
                side.inflight = side.inflight.saturating_sub(1);
                match value {
                    Value::Integer(_) => self.stats.published += 1,
                    Value::Error(e) => {
                        self.stats.lost_out += 1;
                        // once per connection: a refusal (an ACL, an
                        // out-of-memory Redis) tends to repeat for each
                        if !side.failure_logged {
                            side.failure_logged = true;
                            log::warn!(
                                "redis: PUBLISH refused: {}; refused publications are counted in \
                                 edgews_redis_lost_out_total",
                                String::from_utf8_lossy(&e)
                            );
                        }
                    }
                    _ => return Err(Failure::io("unexpected reply to PUBLISH")),
                }
                Ok(())
            }
            Role::Subscriber => self.handle_push(value),
        }
    }

    /// A push on the subscriber: a message or a (un)subscription.
    fn handle_push(&mut self, value: Value) -> Result<(), Failure> {
        let items = match value {
            Value::Array(Some(items)) => items,
            Value::Error(e) => {
                let text = String::from_utf8_lossy(&e).into_owned();
                // NOPERM: the ACL user may not use our channels, which only
                // an operator can change: retried at the slow pace
                return Err(Failure {
                    auth: text.starts_with("NOPERM") || text.starts_with("NOAUTH"),
                    reason: format!("Redis refused a subscription: {text}"),
                });
            }
            _ => return Err(Failure::io("unexpected reply on the subscriber")),
        };
        let mut items = items.into_iter();
        let (Some(kind), Some(channel)) = (items.next(), items.next()) else {
            return Err(Failure::io("short push on the subscriber"));
        };
        let key = channel
            .as_bytes()
            .and_then(|c| c.strip_prefix(self.config.prefix.as_bytes()))
            .and_then(|k| std::str::from_utf8(k).ok())
            .map(str::to_string);
        match (kind.as_bytes(), key) {
            (Some(b"message"), Some(key)) => {
                if let Some(Value::Bulk(Some(payload))) = items.next() {
                    self.handle_message(key, &payload);
                }
            }
            (Some(b"subscribe"), Some(key)) if self.subscriptions.contains_key(&key) => {
                self.events.push_back(LinkEvent::Subscribed(key));
            }
            _ => {}
        }
        Ok(())
    }

    /// A message on `key`: checked, numbered, and handed on.
    fn handle_message(&mut self, key: String, bytes: &[u8]) {
        let Some(subscription) = self.subscriptions.get_mut(&key) else {
            return; // unsubscribed meanwhile: nobody here wants it
        };
        let envelope = match Envelope::decode(bytes) {
            // over our own bound: another instance configured otherwise, or
            // a forged message (configure one --redis-max-message for all)
            Ok(e) if e.topic == key && e.payload.len() <= self.config.max_message => e,
            _ => {
                self.stats.invalid += 1;
                return;
            }
        };
        if envelope.instance == self.instance {
            self.stats.own += 1;
            return;
        }
        let missing = match subscription.received.check(envelope.instance, envelope.seq) {
            Verdict::InOrder | Verdict::Restart => 0,
            Verdict::Gap { missing } => missing,
            Verdict::Duplicate => {
                self.stats.duplicates += 1;
                return;
            }
        };
        self.stats.lost_in += missing;
        self.stats.received += 1;
        self.events.push_back(LinkEvent::Message(Bridged {
            key,
            kind: envelope.kind,
            payload: envelope.payload.to_vec(),
            instance: envelope.instance,
            missing,
        }));
    }
}
