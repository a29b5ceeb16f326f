//! Opens many outbound connections without flooding the server's backlog.

use edgews::reactor::Context;
use std::collections::VecDeque;
use std::time::Instant;

/// Paces `ctx.connect` calls: at most `concurrency` handshakes at once.
/// Connections may go to several URLs, one batch per URL: a batch starts
/// once every connection of the one before has opened or failed, so the
/// batch being opened ([`Opener::batch`]) tells which URL a connection that
/// opens (or fails) was made to.
#[derive(Debug)]
pub struct Opener {
    url: String,
    to_open: usize,
    /// The batch being opened, and those still to come (index, URL, count).
    batch: usize,
    later: VecDeque<(usize, String, usize)>,
    in_progress: usize,
    concurrency: usize,
    /// Connections that could not even start: the reactor's
    /// `Stats::connect_failures` when last read. Kept apart from `failed`,
    /// which handshake failures add to too, so neither hides the other.
    immediate: usize,
    /// Connections were asked for since that count was last read: read it
    /// again on the next turn (they may never open nor fail otherwise).
    unconfirmed: bool,
    /// An instant already past: when a pump is wanted at once.
    created: Instant,
    /// Connections that opened, and that failed to (either way).
    pub opened: usize,
    pub failed: usize,
}

impl Opener {
    /// Opens `count` connections to each `url`, batch after batch (empty
    /// batches are skipped but keep their index); `now` is the present.
    pub fn batches(batches: Vec<(String, usize)>, concurrency: usize, now: Instant) -> Opener {
        let mut later: VecDeque<(usize, String, usize)> = batches
            .into_iter()
            .enumerate()
            .map(|(i, (url, count))| (i, url, count))
            .collect();
        let (batch, url, to_open) = later.pop_front().unwrap_or((0, String::new(), 0));
        later.retain(|&(_, _, count)| count > 0);
        Opener {
            url,
            to_open,
            batch,
            later,
            in_progress: 0,
            concurrency: concurrency.max(1),
            immediate: 0,
            unconfirmed: false,
            created: now,
            opened: 0,
            failed: 0,
        }
    }

    /// The index of the batch being opened: a connection that opens or
    /// fails now was made to its URL.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Adds `count` more connections to open.
    pub fn add(&mut self, count: usize) {
        self.to_open += count;
    }

    /// Starts as many connections as the concurrency allows.
    pub fn pump(&mut self, ctx: &mut Context<'_>) {
        // the reactor tries the connections asked for after the callback
        // that asked returns: those of the last pump are counted by now
        self.count_immediate_failures(ctx);
        self.unconfirmed = false;
        if self.to_open == 0 && self.in_progress == 0 {
            if let Some((batch, url, count)) = self.later.pop_front() {
                (self.batch, self.url, self.to_open) = (batch, url, count);
            }
        }
        while self.to_open > 0 && self.in_progress < self.concurrency {
            ctx.connect(&self.url);
            self.to_open -= 1;
            self.in_progress += 1;
            self.unconfirmed = true;
        }
    }

    /// Counts the connections the reactor could not even start (it has
    /// counted them since the last look): they will not open or fail.
    fn count_immediate_failures(&mut self, ctx: &Context<'_>) {
        let immediate = ctx.stats().connect_failures as usize;
        let new = immediate.saturating_sub(self.immediate);
        self.immediate = immediate;
        self.in_progress = self.in_progress.saturating_sub(new);
        self.failed += new;
    }

    pub fn on_open(&mut self) {
        self.in_progress = self.in_progress.saturating_sub(1);
        self.opened += 1;
    }

    pub fn on_error(&mut self) {
        self.in_progress = self.in_progress.saturating_sub(1);
        self.failed += 1;
    }

    /// Whether every connection has opened or failed.
    pub fn done(&self) -> bool {
        self.to_open == 0 && self.in_progress == 0 && self.later.is_empty()
    }

    /// When to pump again: at once (an instant already past) while
    /// connections can be started, the next batch can begin, or those just
    /// asked for may have failed to start. The reactor calls back when the
    /// deadline is at or before its own clock: one computed from the
    /// present (`Instant::now()` plus a little) would recede each time it
    /// is asked and never come due.
    pub fn next_pump(&self) -> Option<Instant> {
        let next_batch = self.to_open == 0 && self.in_progress == 0 && !self.later.is_empty();
        let can_start = self.to_open > 0 && self.in_progress < self.concurrency;
        (self.unconfirmed || next_batch || can_start).then_some(self.created)
    }
}
