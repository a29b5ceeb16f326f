//! `edgews load idle`: open connections and hold them, to read the
//! server's memory per idle connection.

use super::common::Common;
use super::report::{rss_of, thousands};
use super::{IdleArgs, Scenario};
use edgews::protocol::{Closed, Message};
use edgews::reactor::{ConnId, Context, Handler, OpenInfo};
use std::time::{Duration, Instant};

/// How long to let the server settle before reading its memory.
const SETTLE: Duration = Duration::from_secs(1);

/// The idle scenario: warm-up connections, a first reading of the server's
/// memory, the measured connections, a second reading after they settle.
pub struct IdleLoad {
    /// Opens the warm-up connections, then the measured ones; counts the
    /// connections closed early.
    common: Common,
    server_pid: Option<u32>,
    /// Measured connections, opened once the warm-up ones are in.
    measured_count: usize,
    /// The warm-up connections are open and the baseline has been read.
    baseline_taken: bool,
    /// When the warm-up connections were all open (the baseline is read a
    /// settling time later).
    warm_since: Option<Instant>,
    /// Connections open when the baseline was read.
    open_at_baseline: usize,
    rss_before: Option<u64>,
    rss_after: Option<u64>,
    duration: Duration,
    /// When all connections were open and the hold began.
    held_since: Option<Instant>,
    measured: bool,
    done: bool,
    /// The message each connection sends once open, if any.
    message: Option<String>,
}

impl IdleLoad {
    pub fn new(args: &IdleArgs) -> Result<IdleLoad, String> {
        let rss_before = match args.server_pid {
            Some(pid) => Some(rss_of(pid).ok_or(format!("cannot read /proc/{pid}/status"))?),
            None => None,
        };
        let warmup = args.warmup_connections;
        Ok(IdleLoad {
            common: Common::new(&args.common, warmup, Instant::now()),
            server_pid: args.server_pid,
            measured_count: args.common.connections,
            baseline_taken: false,
            warm_since: None,
            open_at_baseline: 0,
            rss_before,
            rss_after: None,
            duration: args.common.duration,
            held_since: None,
            measured: false,
            done: false,
            message: match usize::try_from(args.send).map_err(|_| "--send too large")? {
                0 => None,
                size => {
                    Some(String::from_utf8(super::echo::json(size)).map_err(|e| e.to_string())?)
                }
            },
        })
    }

    /// Reads the baseline once the warm-up connections have settled, then
    /// starts the measured ones.
    fn take_baseline(&mut self, ctx: &mut Context<'_>, now: Instant) {
        if !self.common.opener.done() {
            return;
        }
        let since = *self.warm_since.get_or_insert(now);
        let warmed_up = self.common.opener.opened > 0;
        if warmed_up && now < since + SETTLE {
            return;
        }
        if warmed_up {
            self.rss_before = self.server_pid.and_then(rss_of);
        }
        self.baseline_taken = true;
        self.open_at_baseline = self.common.opener.opened;
        self.common.opener.add(self.measured_count);
        self.common.opener.pump(ctx);
    }

    /// Connections opened after the baseline.
    fn measured_open(&self) -> usize {
        self.common.opener.opened - self.open_at_baseline
    }
}

impl Handler for IdleLoad {
    fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId, _info: &OpenInfo<'_>) {
        self.common.opener.on_open();
        if let Some(text) = &self.message {
            // the echo comes back within the settling time
            let _ = ctx.send_text(id, text);
        }
    }

    fn on_message(&mut self, _ctx: &mut Context<'_>, _id: ConnId, _message: Message<'_>) {}

    fn on_close(&mut self, _ctx: &mut Context<'_>, id: ConnId, closed: &Closed) {
        self.common.closed(id, closed, self.done);
    }

    fn on_connect_error(&mut self, _ctx: &mut Context<'_>, id: ConnId, error: &str) {
        self.common.connect_failed(id, error);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let hold = self.held_since.map(|t| {
            if self.measured {
                t + self.duration
            } else {
                t + SETTLE
            }
        });
        let baseline = self
            .warm_since
            .filter(|_| !self.baseline_taken)
            .map(|t| t + SETTLE);
        self.common.next_wakeup([hold, baseline])
    }

    fn on_timeout(&mut self, ctx: &mut Context<'_>, now: Instant) {
        self.common.opener.pump(ctx);
        if !self.baseline_taken {
            self.take_baseline(ctx, now);
        } else if self.held_since.is_none() && self.common.opener.done() {
            self.held_since = Some(now);
        }
        if let Some(since) = self.held_since {
            if !self.measured && now >= since + SETTLE {
                self.measured = true;
                self.rss_after = self.server_pid.and_then(rss_of);
            }
            if self.measured && now >= since + self.duration && !self.done {
                self.done = true;
                ctx.shutdown();
            }
        }
        let (open, failed) = (self.common.opener.opened, self.common.opener.failed);
        let phase = if self.baseline_taken {
            ""
        } else {
            " (warm-up)"
        };
        self.common.progress.tick(now, || {
            format!(
                "[load idle] open {}{phase}  failed {failed}",
                thousands(open as u64)
            )
        });
    }
}

impl Scenario for IdleLoad {
    fn finish(&mut self) -> Result<(), String> {
        self.common.progress.clear();
        let open = self.measured_open() as u64;
        let warmup = self.open_at_baseline;
        let per_conn = match (self.rss_before, self.rss_after) {
            (Some(before), Some(after)) if open > 0 => {
                Some((after.saturating_sub(before)) as f64 / open as f64)
            }
            _ => None,
        };
        match per_conn {
            Some(b) => println!(
                "idle: {} connections open after {warmup} warm-up ones, {} failed; \
                 server RSS {} -> {} bytes: {b:.0} B per connection",
                thousands(open),
                self.common.opener.failed,
                thousands(self.rss_before.unwrap_or(0)),
                thousands(self.rss_after.unwrap_or(0))
            ),
            None => println!(
                "idle: {} connections open after {warmup} warm-up ones, {} failed",
                thousands(open),
                self.common.opener.failed
            ),
        }
        println!(
            "{{\"mode\":\"idle\",\"connections\":{open},\"warmup_connections\":{warmup},\
             \"failed\":{},\"rss_before\":{},\"rss_after\":{},\
             \"bytes_per_connection\":{:.0},\"closed_early\":{}}}",
            self.common.opener.failed,
            self.rss_before.unwrap_or(0),
            self.rss_after.unwrap_or(0),
            per_conn.unwrap_or(0.0),
            self.common.closed_early
        );
        if self.common.opener.failed > 0 || self.common.closed_early > 0 {
            return Err(format!(
                "{} connections failed, {} closed early",
                self.common.opener.failed, self.common.closed_early
            ));
        }
        Ok(())
    }
}
