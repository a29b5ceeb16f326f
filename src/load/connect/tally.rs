//! What a connect run counts (upgrades, cycles, failures by kind) and how
//! it reports them: the human line and the JSON line.

use super::super::report::{thousands, Latencies};
use std::time::Duration;

/// The ways a cycle fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The TCP connect failed (refused, reset, no port left, ...).
    Connect,
    /// The server refused the upgrade or answered it wrongly.
    Handshake,
    /// The echo differs from the message sent (or is another cycle's).
    WrongEcho,
    /// The close handshake did not complete: no close frame from the
    /// server, another code, or no end of the stream after it.
    UncleanClose,
    /// The connection closed before its time, or something arrived that
    /// the cycle did not expect.
    Unexpected,
}

impl Failure {
    /// Every kind, in the order they are reported.
    pub const ALL: [Failure; 5] = [
        Failure::Connect,
        Failure::Handshake,
        Failure::WrongEcho,
        Failure::UncleanClose,
        Failure::Unexpected,
    ];

    /// The kind's key in the JSON line (and, with spaces, in the human one).
    pub fn key(self) -> &'static str {
        match self {
            Failure::Connect => "connect_failed",
            Failure::Handshake => "handshake_failed",
            Failure::WrongEcho => "wrong_echo",
            Failure::UncleanClose => "unclean_close",
            Failure::Unexpected => "unexpected",
        }
    }

    /// The kind of an outbound connection's failure before it opened. The
    /// reactor hands the handler only a description: an I/O error names
    /// the OS error, the handshake's own errors do not.
    pub fn of_connect_error(error: &str) -> Failure {
        if error.contains("(os error") {
            Failure::Connect
        } else {
            Failure::Handshake
        }
    }
}

/// What a run counted: upgrades and cycles inside the window, failures
/// throughout (warm-up included).
#[derive(Debug, Default)]
pub struct Tally {
    /// Upgrades completed inside the window.
    pub upgrades: u64,
    /// Cycles whose upgrade and end both fell inside the window.
    pub cycles: u64,
    /// Connect start to 101 checked, for each upgrade counted.
    upgrade_latency: Latencies,
    /// Connect start to the end of the connection, for each cycle counted.
    cycle_latency: Latencies,
    /// Failures by kind, indexed like [`Failure::ALL`].
    failures: [u64; Failure::ALL.len()],
    /// The first failure's description.
    first_error: Option<String>,
}

/// What the report says about the run besides the counts.
#[derive(Debug)]
pub struct RunInfo {
    /// Clients run side by side (`--connections`).
    pub clients: usize,
    /// Message size in bytes.
    pub size: usize,
    /// Cycles ended without a close frame (`--abrupt`).
    pub abrupt: bool,
    /// Length of the window measured.
    pub seconds: f64,
}

impl RunInfo {
    /// `n` events over the window, per second.
    fn per_s(&self, n: u64) -> f64 {
        if self.seconds > 0.0 {
            n as f64 / self.seconds
        } else {
            0.0
        }
    }
}

impl Tally {
    /// Counts an upgrade inside the window.
    pub fn upgrade(&mut self, took: Duration) {
        self.upgrades += 1;
        self.upgrade_latency.record(took);
    }

    /// Counts a cycle inside the window.
    pub fn cycle(&mut self, took: Duration) {
        self.cycles += 1;
        self.cycle_latency.record(took);
    }

    /// Counts a failure, keeping its description if it is the first.
    pub fn fail(&mut self, kind: Failure, what: String) {
        let index = Failure::ALL.iter().position(|&k| k == kind).unwrap_or(0);
        self.failures[index] += 1;
        self.first_error.get_or_insert(what);
    }

    /// Failures of every kind together.
    pub fn errors(&self) -> u64 {
        self.failures.iter().sum()
    }

    /// The failures that happened, as `connect failed 3, wrong echo 1`.
    fn failure_summary(&self) -> String {
        let parts: Vec<String> = Failure::ALL
            .iter()
            .zip(self.failures)
            .filter(|&(_, n)| n > 0)
            .map(|(kind, n)| format!("{} {n}", kind.key().replace('_', " ")))
            .collect();
        parts.join(", ")
    }

    /// The JSON line: rates, percentiles, errors, and the failures by kind.
    fn json(&mut self, run: &RunInfo) -> String {
        let secs = run.seconds;
        let (u50, u99, u999) = self.upgrade_latency.p50_p99_p999();
        let (c50, c99, c999) = self.cycle_latency.p50_p99_p999();
        let failures: Vec<String> = Failure::ALL
            .iter()
            .zip(self.failures)
            .map(|(kind, n)| format!("\"{}\":{n}", kind.key()))
            .collect();
        format!(
            "{{\"mode\":\"connect\",\"connections\":{},\"size\":{},\"abrupt\":{},\"seconds\":{secs:.3},\
             \"upgrades\":{},\"upgrades_per_s\":{:.0},\"cycles\":{},\"cycles_per_s\":{:.0},\
             \"upgrade_p50_us\":{u50:.1},\"upgrade_p99_us\":{u99:.1},\"upgrade_p999_us\":{u999:.1},\
             \"cycle_p50_us\":{c50:.1},\"cycle_p99_us\":{c99:.1},\"cycle_p999_us\":{c999:.1},\
             \"errors\":{},\"failures\":{{{}}}}}",
            run.clients,
            run.size,
            run.abrupt,
            self.upgrades,
            run.per_s(self.upgrades),
            self.cycles,
            run.per_s(self.cycles),
            self.errors(),
            failures.join(",")
        )
    }

    /// Prints the human line and the JSON line; `Err` when a cycle failed
    /// or none was measured.
    pub fn report(&mut self, run: &RunInfo) -> Result<(), String> {
        let (u50, u99, u999) = self.upgrade_latency.p50_p99_p999();
        let (c50, c99, c999) = self.cycle_latency.p50_p99_p999();
        let ending = if run.abrupt {
            "abrupt end (no close frame)"
        } else {
            "close handshake"
        };
        let summary = self.failure_summary();
        println!(
            "connect: {} clients x {} B, {ending}, {:.1} s: {} upgrades/s, {} cycles/s; \
             upgrade p50 {u50:.0} us, p99 {u99:.0} us, p99.9 {u999:.0} us; \
             cycle p50 {c50:.0} us, p99 {c99:.0} us, p99.9 {c999:.0} us; errors {}{}",
            run.clients,
            run.size,
            run.seconds,
            thousands(run.per_s(self.upgrades) as u64),
            thousands(run.per_s(self.cycles) as u64),
            self.errors(),
            if summary.is_empty() {
                String::new()
            } else {
                format!(" ({summary})")
            }
        );
        println!("{}", self.json(run));
        if let Some(first) = &self.first_error {
            return Err(format!("{} errors; first: {first}", self.errors()));
        }
        if self.cycles == 0 {
            return Err("no cycle was measured".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_errors_are_told_apart_by_their_description() {
        let refused = std::io::Error::from_raw_os_error(111).to_string();
        assert_eq!(Failure::of_connect_error(&refused), Failure::Connect);
        let status = edgews::protocol::ResponseError::Status(403).to_string();
        assert_eq!(Failure::of_connect_error(&status), Failure::Handshake);
    }

    #[test]
    fn the_json_line_has_every_field_and_the_failures_by_kind() {
        let mut tally = Tally::default();
        tally.upgrade(Duration::from_micros(100));
        tally.cycle(Duration::from_micros(300));
        tally.fail(Failure::WrongEcho, "first".into());
        tally.fail(Failure::Connect, "second".into());
        let run = RunInfo {
            clients: 3,
            size: 20,
            abrupt: true,
            seconds: 2.0,
        };
        let json: serde_json::Value = serde_json::from_str(&tally.json(&run)).unwrap();
        assert_eq!(json["mode"], "connect");
        assert_eq!(json["abrupt"], true);
        assert_eq!(json["upgrades"], 1);
        assert_eq!(json["cycle_p50_us"], 300.0);
        assert_eq!(json["errors"], 2);
        assert_eq!(json["failures"]["wrong_echo"], 1);
        assert_eq!(json["failures"]["unclean_close"], 0);
        assert_eq!(tally.first_error.as_deref(), Some("first"));
        assert_eq!(tally.failure_summary(), "connect failed 1, wrong echo 1");
    }

    #[test]
    fn the_json_keys_come_in_the_order_they_always_had() {
        let run = RunInfo {
            clients: 1,
            size: 20,
            abrupt: false,
            seconds: 1.0,
        };
        let line = Tally::default().json(&run);
        let keys = [
            "mode",
            "connections",
            "size",
            "abrupt",
            "seconds",
            "upgrades",
            "upgrades_per_s",
            "cycles",
            "cycles_per_s",
            "upgrade_p50_us",
            "upgrade_p99_us",
            "upgrade_p999_us",
            "cycle_p50_us",
            "cycle_p99_us",
            "cycle_p999_us",
            "errors",
            "failures",
        ];
        let at: Vec<usize> = keys
            .iter()
            .map(|k| line.find(&format!("\"{k}\":")).expect(k))
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{line}");
        assert!(line.ends_with("\"unexpected\":0}}"), "{line}");
    }
}
