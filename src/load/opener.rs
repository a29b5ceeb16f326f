//! Opens many outbound connections without flooding the server's backlog.

use edgews::reactor::Context;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

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
    /// Connections that opened, and that failed to.
    pub opened: usize,
    pub failed: usize,
}

impl Opener {
    /// Opens `count` connections to each `url`, batch after batch (empty
    /// batches are skipped but keep their index).
    pub fn batches(batches: Vec<(String, usize)>, concurrency: usize) -> Opener {
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
        if self.to_open == 0 && !self.later.is_empty() {
            self.count_immediate_failures(ctx);
            if self.in_progress == 0 {
                if let Some((batch, url, count)) = self.later.pop_front() {
                    (self.batch, self.url, self.to_open) = (batch, url, count);
                }
            }
        }
        while self.to_open > 0 && self.in_progress < self.concurrency {
            ctx.connect(&self.url);
            self.to_open -= 1;
            self.in_progress += 1;
        }
        self.count_immediate_failures(ctx);
    }

    fn count_immediate_failures(&mut self, ctx: &Context<'_>) {
        let immediate = ctx.stats().connect_failures as usize;
        if immediate > self.failed {
            // counted by the reactor: connections that could not even start
            self.in_progress = self.in_progress.saturating_sub(immediate - self.failed);
            self.failed = immediate;
        }
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

    /// When to pump again: soon while connections remain to be started.
    pub fn next_pump(&self, now: Instant) -> Option<Instant> {
        let next_batch = self.to_open == 0 && self.in_progress == 0 && !self.later.is_empty();
        (next_batch || (self.to_open > 0 && self.in_progress < self.concurrency))
            .then(|| now + Duration::from_millis(1))
    }
}
