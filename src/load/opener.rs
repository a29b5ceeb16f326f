//! Opens many outbound connections without flooding the server's backlog.

use edgews::reactor::Context;
use std::time::{Duration, Instant};

/// Paces `ctx.connect` calls: at most `concurrency` handshakes at once.
#[derive(Debug)]
pub struct Opener {
    url: String,
    to_open: usize,
    in_progress: usize,
    concurrency: usize,
    /// Connections that opened, and that failed to.
    pub opened: usize,
    pub failed: usize,
}

impl Opener {
    pub fn new(url: &str, count: usize, concurrency: usize) -> Opener {
        Opener {
            url: url.to_string(),
            to_open: count,
            in_progress: 0,
            concurrency: concurrency.max(1),
            opened: 0,
            failed: 0,
        }
    }

    /// Adds `count` more connections to open.
    pub fn add(&mut self, count: usize) {
        self.to_open += count;
    }

    /// Starts as many connections as the concurrency allows.
    pub fn pump(&mut self, ctx: &mut Context<'_>) {
        while self.to_open > 0 && self.in_progress < self.concurrency {
            ctx.connect(&self.url);
            self.to_open -= 1;
            self.in_progress += 1;
        }
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
        self.to_open == 0 && self.in_progress == 0
    }

    /// When to pump again: soon while connections remain to be started.
    pub fn next_pump(&self, now: Instant) -> Option<Instant> {
        (self.to_open > 0 && self.in_progress < self.concurrency)
            .then(|| now + Duration::from_millis(1))
    }
}
