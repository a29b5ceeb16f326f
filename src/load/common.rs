//! What every load scenario holds: the connection opener, the progress
//! line, and the errors seen (counted, the first one kept).

use super::opener::Opener;
use super::report::Progress;
use super::CommonArgs;
use edgews::protocol::Closed;
use edgews::reactor::ConnId;
use std::time::Instant;

/// The part of a scenario that is the same in all of them.
#[derive(Debug)]
pub struct Common {
    /// Paces the connections being opened.
    pub opener: Opener,
    /// The line on stderr, rewritten once a second.
    pub progress: Progress,
    /// Errors seen: wrong messages, failed sends, failed connections,
    /// connections closed early.
    pub errors: u64,
    /// The first of them.
    pub first_error: Option<String>,
    /// Connections the server closed before the run was done.
    pub closed_early: u64,
}

impl Common {
    /// Opens `to_open` connections to `args.url`, `args.connect_concurrency`
    /// at a time; the first progress line is due a second after `now`.
    pub fn new(args: &CommonArgs, to_open: usize, now: Instant) -> Common {
        Common::to_urls(args, vec![(args.url.clone(), to_open)], now)
    }

    /// Opens connections to several URLs, `count` to each `url`, one batch
    /// after the other (see [`Opener::batches`]).
    pub fn to_urls(args: &CommonArgs, batches: Vec<(String, usize)>, now: Instant) -> Common {
        Common {
            opener: Opener::batches(batches, args.connect_concurrency, now),
            progress: Progress::new(now),
            errors: 0,
            first_error: None,
            closed_early: 0,
        }
    }

    /// Counts an error, keeping its description if it is the first.
    pub fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }

    /// A connection could not be opened.
    pub fn connect_failed(&mut self, id: ConnId, error: &str) {
        self.opener.on_error();
        self.error(format!("{id}: connect failed: {error}"));
    }

    /// A connection closed; an error unless the run is `done`.
    pub fn closed(&mut self, id: ConnId, closed: &Closed, done: bool) {
        if !done {
            self.closed_early += 1;
            self.error(format!(
                "{id}: closed early: {} {}",
                closed.code, closed.reason
            ));
        }
    }

    /// The earliest of the scenario's own `deadlines`, the opener's next
    /// pump and the next progress line.
    pub fn next_wakeup(
        &self,
        deadlines: impl IntoIterator<Item = Option<Instant>>,
    ) -> Option<Instant> {
        deadlines
            .into_iter()
            .chain([self.opener.next_pump(), Some(self.progress.due())])
            .flatten()
            .min()
    }

    /// `Err` naming the first error, if there was one.
    pub fn check(&self) -> Result<(), String> {
        match &self.first_error {
            Some(e) => Err(format!("{} errors; first: {e}", self.errors)),
            None => Ok(()),
        }
    }
}
