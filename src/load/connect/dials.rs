//! Which connect asked for became which connection, to know when each
//! cycle started.

use edgews::reactor::{ConnId, Context};
use std::collections::HashMap;
use std::time::Instant;

/// Matches the connections the reactor opens to the connects asked for.
/// [`Context::connect`] returns no id; but the reactor tries the connects
/// of one callback in order once it returns, numbers the connections it
/// inserts with consecutive generations (one reactor and no listener: no
/// other connection takes a number), and counts those that fail at once
/// in `Stats::connect_failures`, unnumbered.
#[derive(Debug, Default)]
pub struct Dials {
    /// The last connects asked for (when, how many), not matched yet.
    asked: Option<(Instant, usize)>,
    /// The generation the next connection inserted gets.
    next_generation: u32,
    /// `Stats::connect_failures` when last read.
    failures_seen: u64,
    /// When each connection being opened was asked for, by generation.
    started: HashMap<u32, Instant>,
}

impl Dials {
    /// Asks the reactor for `count` connections to `url`, once the
    /// callback returns (right after `on_timeout`, in the same loop turn).
    pub fn ask(&mut self, ctx: &mut Context<'_>, url: &str, count: usize) {
        debug_assert!(self.asked.is_none(), "settle before asking again");
        for _ in 0..count {
            ctx.connect(url);
        }
        self.asked = Some((Instant::now(), count));
    }

    /// When the connects asked for last were asked for, while they are not
    /// matched yet.
    pub fn unsettled(&self) -> Option<Instant> {
        self.asked.map(|(at, _)| at)
    }

    /// Matches the connects asked for last, which the reactor has tried by
    /// any later callback; returns how many of them failed at once, and
    /// when they were asked for.
    pub fn settle(&mut self, ctx: &Context<'_>) -> Option<(usize, Instant)> {
        let (at, count) = self.asked.take()?;
        let total = ctx.stats().connect_failures;
        let failed = usize::try_from(total - self.failures_seen).map_or(count, |f| f.min(count));
        self.failures_seen = total;
        for _ in failed..count {
            self.started.insert(self.next_generation, at);
            // as the reactor numbers them: generations stay below u32::MAX - 1
            self.next_generation = (self.next_generation + 1) % (u32::MAX - 1);
        }
        Some((failed, at))
    }

    /// When the connection `id` was asked for (forgotten after).
    pub fn take(&mut self, id: ConnId) -> Option<Instant> {
        // `as_u64` is the generation and the slab index together
        self.started.remove(&((id.as_u64() >> 32) as u32))
    }

    /// Connections asked for that have neither opened nor failed yet.
    pub fn opening(&self) -> usize {
        self.started.len()
    }
}
