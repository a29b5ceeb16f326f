//! The end of the stream after the closing handshake. A client's
//! `on_close` comes with the server's close frame; the server's FIN is read
//! after it (in the same loop turn when it came with the frame, the usual
//! case now that the server closes TCP as soon as the handshake is done),
//! and the reactor then drops the connection without a callback. So the
//! scenario looks, at the end of a turn (`on_timeout`), for the connections
//! that left: [`Context::peer_addr`] is `None` once a connection is gone.
//!
//! Cost: no turn of its own in the usual case. `on_timeout` is asked for
//! at the instant of the turn in which a close frame came, which the
//! reactor takes as due at the end of that same turn, where the scenario
//! dials the client's next connection anyway. Only for a connection whose
//! FIN had not come by then (a few in a hundred; the server was between its
//! write and its close) is it looked for again: at the end of every turn
//! for [`SPIN_FOR`] after its close frame (the FIN is microseconds behind,
//! and a later look would add to the cycle's time), then every
//! [`LATE_RECHECK`] (or at any earlier `on_timeout`).

use edgews::reactor::{ConnId, Context};
use std::time::{Duration, Instant};

/// How long after the server's close frame its end of the stream may come.
/// Past it the cycle is counted as a close that was not clean (the reactor
/// gives up waiting after 2 s and drops the connection).
pub const STREAM_END_LIMIT: Duration = Duration::from_secs(1);

/// How long after its close frame a connection whose end of the stream has
/// not come yet is looked for at the end of every loop turn.
const SPIN_FOR: Duration = Duration::from_micros(250);

/// Past [`SPIN_FOR`], how long until such a connection is looked for again
/// (the loop's timer has a millisecond's resolution).
const LATE_RECHECK: Duration = Duration::from_millis(1);

/// Connections whose closing handshake is done, until they leave the
/// reactor.
#[derive(Debug, Default)]
pub struct StreamEnds {
    /// Each connection, and when the server's close frame came.
    waiting: Vec<(ConnId, Instant)>,
    /// When to look for those that left: the clock of the turn in which one
    /// started waiting (due at the end of that turn); after a look that
    /// found some still there, that look's clock (due at the end of the
    /// next turn, which then does not wait in `epoll_wait`) while
    /// [`SPIN_FOR`] lasts, then [`LATE_RECHECK`] later.
    check_at: Option<Instant>,
    /// Ends seen in the close frame's own turn, and later (for the log).
    pub on_time: u64,
    pub late: u64,
}

impl StreamEnds {
    /// `id` had its closing handshake at `now` (`Context::now`, the turn's
    /// clock): look for its end at the end of this turn.
    pub fn wait(&mut self, id: ConnId, now: Instant) {
        self.waiting.push((id, now));
        self.check_at = Some(self.check_at.map_or(now, |t| t.min(now)));
    }

    /// When the scenario's `on_timeout` should look next.
    pub fn due(&self) -> Option<Instant> {
        self.check_at
    }

    /// Connections waiting for their end of the stream.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Moves the connections that left the reactor into `ended`, each with
    /// when its close frame came, and schedules the next look.
    pub fn sweep(&mut self, ctx: &Context<'_>, now: Instant, ended: &mut Vec<(ConnId, Instant)>) {
        self.waiting.retain(|&(id, closed_at)| {
            let gone = ctx.peer_addr(id).is_none();
            if gone {
                ended.push((id, closed_at));
                *if closed_at == now {
                    &mut self.on_time
                } else {
                    &mut self.late
                } += 1;
            }
            !gone
        });
        self.check_at = self
            .waiting
            .iter()
            .map(|&(_, closed_at)| {
                if now < closed_at + SPIN_FOR {
                    now
                } else {
                    now + LATE_RECHECK
                }
            })
            .min();
    }

    /// Forgets every connection (the run is over).
    pub fn clear(&mut self) {
        self.waiting.clear();
        self.check_at = None;
    }
}
