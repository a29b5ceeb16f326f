//! `edgews load connect`: connection setup under load. Each of N clients
//! runs cycles back to back: TCP connect and upgrade, one stamped binary
//! message and its echo (checked byte for byte), then the end of the
//! connection, and at once the next cycle.
//!
//! Both ways to end a cycle run on the reactor, one thread for every
//! client, like the server measured ([`Ending`]):
//! - the close handshake (the default): close 1000, the server's close
//!   frame, the end of the stream (the server closes TCP first; see
//!   `ends.rs` for how its end is noticed);
//! - `--abrupt`: [`Context::abort`] right after the echo: TCP closed, no
//!   close frame (the client closes first); `on_close` follows at once
//!   with 1006.
//!
//! Files: `cycle.rs` (a connection's cycle and its message), `dials.rs`
//! (which connect became which connection), `ends.rs` (the end of the
//! stream), `tally.rs` (the counts and the report).

mod cycle;
mod dials;
mod ends;
mod tally;

use super::report::{thousands, Progress};
use super::{ConnectArgs, Scenario};
use cycle::{payload, stamp, Cycle, Ending, Stage};
use dials::Dials;
use edgews::protocol::{CloseCause, CloseCode, Closed, Message, MessageKind};
use edgews::reactor::{ConnId, Context, Handler, OpenInfo};
use ends::{StreamEnds, STREAM_END_LIMIT};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tally::{Failure, RunInfo, Tally};

/// How long a client waits after a failed connect or upgrade before it
/// tries again, so that a server that is down is not dialled in a tight
/// loop; also how long connects asked for may go unmatched (see
/// [`Dials`]) when none of them opens or fails with a callback.
const RETRY_PAUSE: Duration = Duration::from_millis(10);

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Not started: the first timeout starts the clock.
    Starting,
    /// Running, not counted, until the instant.
    Warmup(Instant),
    /// Counted, until the instant.
    Measuring(Instant),
    /// Stopped; the reactor is closing what is left.
    Done,
}

/// The connect scenario.
pub struct ConnectLoad {
    /// The server's URL.
    url: String,
    /// Clients run side by side, each with one connection at a time.
    clients: usize,
    /// How cycles end after the echo.
    ending: Ending,
    /// Time run before the window.
    warmup: Duration,
    /// The window's length.
    duration: Duration,
    /// The message, stamped with the number of the cycle at hand.
    payload: Vec<u8>,
    /// The number the next cycle stamps into its message.
    next_number: u64,
    /// When each client without a connection may dial: now, or after a
    /// pause that follows a failed connect.
    idle: Vec<Instant>,
    /// When the connections being opened were asked for.
    dials: Dials,
    /// The cycles of the connections that are open (or closing).
    cycles: HashMap<ConnId, Cycle>,
    /// Connections whose close handshake is done, until they leave.
    ends: StreamEnds,
    /// Those that left, gathered by each look (kept for its capacity).
    ended: Vec<(ConnId, Instant)>,
    /// Where the run is.
    phase: Phase,
    /// When the window began.
    window_start: Option<Instant>,
    /// Cycles completed, warm-up included (for the progress line).
    completed: u64,
    /// What the window counted, and the failures.
    tally: Tally,
    /// The line on stderr, rewritten once a second.
    progress: Progress,
    /// An instant already past: a deadline that is due at once.
    created: Instant,
}

impl ConnectLoad {
    /// A run as `args` describe it.
    pub fn new(args: &ConnectArgs) -> Result<ConnectLoad, String> {
        let clients = args.common.connections;
        if clients == 0 {
            return Err("--connections must be at least 1".into());
        }
        let now = Instant::now();
        Ok(ConnectLoad {
            url: args.common.url.clone(),
            clients,
            ending: if args.abrupt {
                Ending::Abrupt
            } else {
                Ending::Handshake
            },
            warmup: args.warmup,
            duration: args.common.duration,
            payload: payload(args.size)?,
            next_number: 0,
            idle: vec![now; clients],
            dials: Dials::default(),
            cycles: HashMap::new(),
            ends: StreamEnds::default(),
            ended: Vec::new(),
            phase: Phase::Starting,
            window_start: None,
            completed: 0,
            tally: Tally::default(),
            progress: Progress::new(now),
            created: now,
        })
    }

    /// Whether the window is open.
    fn measuring(&self) -> bool {
        matches!(self.phase, Phase::Measuring(_))
    }

    /// Matches the last connects asked for; those that failed at once are
    /// connect failures, and their clients dial again after a pause.
    fn settle_dials(&mut self, ctx: &Context<'_>) {
        let Some((failed, asked_at)) = self.dials.settle(ctx) else {
            return;
        };
        for _ in 0..failed {
            self.tally.fail(
                Failure::Connect,
                "connect failed at once (logged above; EADDRNOTAVAIL: no ephemeral port left)"
                    .into(),
            );
            self.idle.push(asked_at + RETRY_PAUSE);
        }
    }

    /// Ends the cycle of `id` with a failure; its client dials again.
    fn abandon(&mut self, id: ConnId, kind: Failure, what: String, now: Instant) {
        self.tally.fail(kind, what);
        if self.cycles.remove(&id).is_some() {
            self.idle.push(now);
        }
    }

    /// Completes the cycle of `id`, whose connection ended at `end`; its
    /// client dials again.
    fn complete(&mut self, id: ConnId, end: Instant, now: Instant) {
        let Some(cycle) = self.cycles.remove(&id) else {
            return;
        };
        self.idle.push(now);
        self.completed += 1;
        if cycle.counted && !cycle.failed && self.measuring() {
            self.tally
                .cycle(end.saturating_duration_since(cycle.started));
        }
    }

    /// Starts, then ends, the warm-up and the window.
    fn advance(&mut self, ctx: &mut Context<'_>, now: Instant) {
        if self.phase == Phase::Starting {
            self.phase = Phase::Warmup(now + self.warmup);
        }
        if let Phase::Warmup(until) = self.phase {
            if now >= until {
                self.phase = Phase::Measuring(now + self.duration);
                self.window_start = Some(now);
            }
        }
        if let Phase::Measuring(until) = self.phase {
            if now >= until {
                self.phase = Phase::Done;
                self.ends.clear();
                ctx.shutdown();
            }
        }
    }

    /// Completes the cycles whose connection has left the reactor since
    /// the last look (the server ended the stream).
    fn finish_drained(&mut self, ctx: &Context<'_>, now: Instant) {
        let mut ended = std::mem::take(&mut self.ended);
        self.ends.sweep(ctx, now, &mut ended);
        let end = Instant::now();
        for (id, closed_at) in ended.drain(..) {
            if now.saturating_duration_since(closed_at) > STREAM_END_LIMIT {
                let what = format!("{id}: the server did not end the stream after its close");
                self.tally.fail(Failure::UncleanClose, what);
                if let Some(cycle) = self.cycles.get_mut(&id) {
                    cycle.failed = true;
                }
            }
            self.complete(id, end, now);
        }
        self.ended = ended;
    }

    /// Asks for a connection for every client whose time to dial has come.
    fn dial_idle(&mut self, ctx: &mut Context<'_>, now: Instant) {
        let before = self.idle.len();
        self.idle.retain(|&at| at > now);
        let ready = before - self.idle.len();
        if ready > 0 {
            self.dials.ask(ctx, &self.url, ready);
        }
    }

    /// The echo of `id`'s message was checked: end the connection.
    fn end_cycle(&mut self, ctx: &mut Context<'_>, id: ConnId) {
        let Some(cycle) = self.cycles.get_mut(&id) else {
            return;
        };
        match self.ending {
            Ending::Abrupt => {
                cycle.stage = Stage::Aborted;
                ctx.abort(id);
            }
            Ending::Handshake => {
                cycle.stage = Stage::Closing;
                if let Err(e) = ctx.close(id, CloseCode::NORMAL, "") {
                    let what = format!("{id}: close failed: {e}");
                    self.abandon(id, Failure::Unexpected, what, ctx.now());
                }
            }
        }
    }
}

impl Handler for ConnectLoad {
    fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId, _info: &OpenInfo<'_>) {
        let upgraded = Instant::now();
        self.settle_dials(ctx);
        if self.phase == Phase::Done {
            return;
        }
        let Some(started) = self.dials.take(id) else {
            let what = format!("{id}: opened, but was never asked for (numbering changed?)");
            return self.tally.fail(Failure::Unexpected, what);
        };
        let counted = self.measuring();
        if counted {
            self.tally
                .upgrade(upgraded.saturating_duration_since(started));
        }
        let number = self.next_number;
        self.next_number += 1;
        stamp(&mut self.payload, number);
        let cycle = Cycle {
            started,
            number,
            counted,
            failed: false,
            stage: Stage::Echo,
        };
        self.cycles.insert(id, cycle);
        if let Err(e) = ctx.send_binary(id, &self.payload) {
            let what = format!("{id}: send failed: {e}");
            self.abandon(id, Failure::Unexpected, what, ctx.now());
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, message: Message<'_>) {
        let Some(cycle) = self.cycles.get_mut(&id) else {
            let what = format!("{id}: a message outside any cycle");
            return self.tally.fail(Failure::Unexpected, what);
        };
        if cycle.stage != Stage::Echo {
            let what = format!("{id}: a message after the echo");
            return self.tally.fail(Failure::Unexpected, what);
        }
        stamp(&mut self.payload, cycle.number);
        if message.kind() != MessageKind::Binary || message.as_bytes() != self.payload {
            cycle.failed = true;
            let what = format!("{id}: the echo of cycle {} differs from it", cycle.number);
            self.tally.fail(Failure::WrongEcho, what);
        }
        self.end_cycle(ctx, id);
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, id: ConnId, closed: &Closed) {
        let now = ctx.now();
        let Some(cycle) = self.cycles.get_mut(&id) else {
            return; // its failure was counted already
        };
        if self.phase == Phase::Done {
            self.cycles.remove(&id);
            return;
        }
        let stage = cycle.stage;
        let (code, cause) = (closed.code, &closed.cause);
        match stage {
            Stage::Closing if code == CloseCode::NORMAL && *cause == CloseCause::Local => {
                cycle.stage = Stage::Draining;
                return self.ends.wait(id, now);
            }
            // the socket is closed as soon as this returns
            Stage::Aborted if code == CloseCode::ABNORMAL && *cause == CloseCause::Eof => {
                return self.complete(id, Instant::now(), now);
            }
            _ => {}
        }
        let kind = match (stage, cause) {
            (Stage::Closing, CloseCause::Local | CloseCause::CloseTimeout | CloseCause::Eof) => {
                Failure::UncleanClose
            }
            _ => Failure::Unexpected,
        };
        let what = format!(
            "{id}: closed {} {:?} ({cause:?}) in stage {stage:?}",
            code, closed.reason
        );
        self.abandon(id, kind, what, now);
    }

    fn on_connect_error(&mut self, ctx: &mut Context<'_>, id: ConnId, error: &str) {
        self.settle_dials(ctx);
        self.dials.take(id);
        if self.phase != Phase::Done {
            let kind = Failure::of_connect_error(error);
            self.tally.fail(kind, format!("{id}: {error}"));
            self.idle.push(ctx.now() + RETRY_PAUSE);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let phase_end = match self.phase {
            Phase::Starting => Some(self.created),
            Phase::Warmup(t) | Phase::Measuring(t) => Some(t),
            Phase::Done => return None,
        };
        // connects asked for that may all have failed unannounced
        let unsettled = self.dials.unsettled().map(|at| at + RETRY_PAUSE);
        let idle = self.idle.iter().min().copied();
        [
            phase_end,
            unsettled,
            idle,
            self.ends.due(),
            Some(self.progress.due()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn on_timeout(&mut self, ctx: &mut Context<'_>, now: Instant) {
        self.settle_dials(ctx);
        self.advance(ctx, now);
        if self.phase != Phase::Done {
            self.finish_drained(ctx, now);
            self.dial_idle(ctx, now);
        }
        let (phase, open, done) = (self.phase, self.cycles.len(), self.completed);
        let (opening, errors) = (self.dials.opening(), self.tally.errors());
        let (ending, closing) = (self.ending, self.ends.len());
        self.progress.tick(now, || {
            let phase = match phase {
                Phase::Starting | Phase::Warmup(_) => "warm-up",
                Phase::Measuring(_) => "measuring",
                Phase::Done => "done",
            };
            let mode = match ending {
                Ending::Handshake => "",
                Ending::Abrupt => " --abrupt",
            };
            format!(
                "[load connect{mode}] {phase}  opening {opening}  open {open}  \
                 awaiting end {closing}  cycles {}  errors {errors}",
                thousands(done)
            )
        });
    }
}

impl Scenario for ConnectLoad {
    fn finish(&mut self) -> Result<(), String> {
        self.progress.clear();
        if self.ending == Ending::Handshake {
            log::debug!(
                "ends of the stream: {} seen in the close frame's turn, {} later",
                self.ends.on_time,
                self.ends.late
            );
        }
        let seconds = self.window_start.map_or(0.0, |s| {
            s.elapsed().as_secs_f64().min(self.duration.as_secs_f64())
        });
        let run = RunInfo {
            clients: self.clients,
            size: self.payload.len(),
            abrupt: self.ending == Ending::Abrupt,
            seconds,
        };
        self.tally.report(&run)
    }
}
