//! `edgews load echo`: closed-loop echo with byte-for-byte verification.

use super::common::Common;
use super::report::{thousands, Latencies};
use super::{EchoArgs, Scenario};
use edgews::protocol::{Closed, Message, MessageKind};
use edgews::reactor::{ConnId, Context, Handler, OpenInfo};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Opening connections.
    Opening,
    /// Running, not counted, until the instant.
    Warmup(Instant),
    /// Counted, until the instant.
    Measuring(Instant),
    /// Stopped; the reactor is closing connections.
    Done,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Opening => "opening",
            Phase::Warmup(_) => "warm-up",
            Phase::Measuring(_) => "measuring",
            Phase::Done => "done",
        }
    }
}

/// One connection's messages in flight: sequence number and send time.
#[derive(Debug, Default)]
struct Flight {
    next_seq: u64,
    in_flight: VecDeque<(u64, Instant)>,
}

/// The echo scenario.
pub struct EchoLoad {
    common: Common,
    connections: usize,
    pipeline: usize,
    warmup: Duration,
    duration: Duration,
    template: Vec<u8>,
    /// Binary, or text with `--text`.
    kind: MessageKind,
    scratch: Vec<u8>,
    flights: HashMap<ConnId, Flight>,
    phase: Phase,
    measure_start: Option<Instant>,
    measured: u64,
    total: u64,
    latencies: Latencies,
}

impl EchoLoad {
    pub fn new(args: &EchoArgs) -> Result<EchoLoad, String> {
        let size = usize::try_from(args.size).map_err(|_| "size too large")?;
        if args.pipeline == 0 {
            return Err("--pipeline must be at least 1".into());
        }
        let template = if args.json {
            json(size)
        } else if args.text {
            greek(size)
        } else {
            (0..size).map(|i| b'a' + (i % 26) as u8).collect()
        };
        Ok(EchoLoad {
            common: Common::new(&args.common, args.common.connections, Instant::now()),
            connections: args.common.connections,
            pipeline: args.pipeline,
            warmup: args.warmup,
            duration: args.common.duration,
            scratch: template.clone(),
            template,
            kind: if args.text || args.json {
                MessageKind::Text
            } else {
                MessageKind::Binary
            },
            flights: HashMap::new(),
            phase: Phase::Opening,
            measure_start: None,
            measured: 0,
            total: 0,
            latencies: Latencies::default(),
        })
    }

    /// Sends the next message of `id`: the template with the sequence
    /// number in its first bytes, so a reordered echo is caught too.
    fn send_next(&mut self, ctx: &mut Context<'_>, id: ConnId) {
        let Some(flight) = self.flights.get_mut(&id) else {
            return;
        };
        let seq = flight.next_seq;
        flight.next_seq += 1;
        stamp(&mut self.scratch, seq, self.kind);
        flight.in_flight.push_back((seq, ctx.now()));
        if let Err(e) = ctx.send(id, self.kind, &self.scratch) {
            self.common.error(format!("{id}: send failed: {e}"));
        }
    }

    fn advance(&mut self, ctx: &mut Context<'_>, now: Instant) {
        match self.phase {
            Phase::Opening if self.common.opener.done() => {
                self.phase = Phase::Warmup(now + self.warmup);
                let ids: Vec<ConnId> = self.flights.keys().copied().collect();
                for id in ids {
                    for _ in 0..self.pipeline {
                        self.send_next(ctx, id);
                    }
                }
            }
            Phase::Warmup(until) if now >= until => {
                self.phase = Phase::Measuring(now + self.duration);
                self.measure_start = Some(now);
            }
            Phase::Measuring(until) if now >= until => {
                self.phase = Phase::Done;
                ctx.shutdown();
            }
            _ => {}
        }
    }
}

/// Writes `seq` into the first bytes of the payload (as many as fit): its
/// bytes for binary, its last hex digits for text (which `greek` leaves
/// ASCII room for).
fn stamp(buf: &mut [u8], seq: u64, kind: MessageKind) {
    match kind {
        MessageKind::Binary => {
            let n = buf.len().min(8);
            buf[..n].copy_from_slice(&seq.to_le_bytes()[..n]);
        }
        MessageKind::Text => {
            let n = buf.len().min(TEXT_STAMP);
            for (i, byte) in buf[..n].iter_mut().enumerate() {
                let digit = (seq >> (4 * (n - 1 - i))) & 0xF;
                *byte = b"0123456789abcdef"[digit as usize];
            }
        }
    }
}

/// ASCII bytes at the start of a text payload, for the sequence number.
const TEXT_STAMP: usize = 16;

/// `len` bytes of JSON-like ASCII text (chat records with a user, words
/// and numbers from a fixed seed), after room for the stamp: it compresses
/// about as real chat traffic does (to about a quarter with context).
pub fn json(len: usize) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "hello", "world", "edge", "socket", "message", "room", "alice", "bob", "ping", "frame",
        "deflate", "window", "server", "client", "quick", "brown",
    ];
    let mut text = vec![b'0'; len.min(TEXT_STAMP)];
    let mut seed = 0x2545_f491_u32;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    while text.len() < len {
        let (id, user, ts) = (
            next() % 10_000,
            WORDS[next() as usize % 16],
            1_700_000_000 + next() % 1000,
        );
        let words: Vec<&str> = (0..3 + next() % 6)
            .map(|_| WORDS[next() as usize % 16])
            .collect();
        let record = format!(
            ",{{\"id\":{id},\"user\":\"{user}\",\"text\":\"{}\",\"ts\":{ts}}}",
            words.join(" ")
        );
        text.extend_from_slice(record.as_bytes());
    }
    text.truncate(len);
    text
}

/// `len` bytes of UTF-8: room for the stamp, then Greek letters (two bytes
/// each), and one ASCII byte to make up an odd length.
fn greek(len: usize) -> Vec<u8> {
    let mut text = vec![b'0'; len.min(TEXT_STAMP)];
    let mut letters = "αβγδεζηθικλμνξοπρστυφχψω".chars().cycle();
    let mut letter = [0u8; 4];
    while text.len() + 2 <= len {
        let next = letters.next().unwrap_or('α');
        text.extend_from_slice(next.encode_utf8(&mut letter).as_bytes());
    }
    if text.len() < len {
        text.push(b'.');
    }
    text
}

impl Handler for EchoLoad {
    fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId, _info: &OpenInfo<'_>) {
        self.common.opener.on_open();
        self.flights.insert(id, Flight::default());
        if self.phase != Phase::Opening && self.phase != Phase::Done {
            for _ in 0..self.pipeline {
                self.send_next(ctx, id);
            }
        }
        // the last connection to open starts the run without waiting for a tick
        let now = ctx.now();
        self.advance(ctx, now);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, message: Message<'_>) {
        let now = ctx.now();
        let Some((seq, sent)) = self
            .flights
            .get_mut(&id)
            .and_then(|f| f.in_flight.pop_front())
        else {
            return self.common.error(format!("{id}: unexpected message"));
        };
        stamp(&mut self.scratch, seq, self.kind);
        if message.kind() != self.kind || message.as_bytes() != self.scratch.as_slice() {
            self.common.error(format!(
                "{id}: echo of message {seq} differs from what was sent"
            ));
        }
        self.total += 1;
        if matches!(self.phase, Phase::Measuring(_)) {
            self.measured += 1;
            self.latencies.record(now.saturating_duration_since(sent));
        }
        if self.phase != Phase::Done {
            self.send_next(ctx, id);
        }
    }

    fn on_close(&mut self, _ctx: &mut Context<'_>, id: ConnId, closed: &Closed) {
        self.common.closed(id, closed, self.phase == Phase::Done);
        self.flights.remove(&id);
    }

    fn on_connect_error(&mut self, _ctx: &mut Context<'_>, id: ConnId, error: &str) {
        self.common.connect_failed(id, error);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let phase_end = match self.phase {
            Phase::Warmup(t) | Phase::Measuring(t) => Some(t),
            Phase::Opening | Phase::Done => None,
        };
        self.common.next_wakeup([phase_end])
    }

    fn on_timeout(&mut self, ctx: &mut Context<'_>, now: Instant) {
        self.common.opener.pump(ctx);
        if self.phase == Phase::Opening && self.common.opener.failed >= self.connections {
            self.phase = Phase::Done;
            ctx.shutdown();
        }
        self.advance(ctx, now);
        let (total, open, errors) = (self.total, self.flights.len(), self.common.errors);
        let phase = self.phase;
        self.common.progress.tick(now, || {
            format!(
                "[load echo] {}  open {open}  messages {}  errors {errors}",
                phase.name(),
                thousands(total)
            )
        });
    }
}

impl Scenario for EchoLoad {
    fn finish(&mut self) -> Result<(), String> {
        self.common.progress.clear();
        let size = self.template.len();
        let secs = self.measure_start.map_or(0.0, |s| {
            s.elapsed().as_secs_f64().min(self.duration.as_secs_f64())
        });
        let rate = if secs > 0.0 {
            self.measured as f64 / secs
        } else {
            0.0
        };
        let mb = rate * size as f64 / 1e6;
        let (p50, p99, p999) = self.latencies.p50_p99_p999();
        println!(
            "echo: {} connections x {size} B, pipeline {}, {secs:.1} s: {} msg/s, {mb:.2} MB/s; \
             round trip p50 {p50:.0} us, p99 {p99:.0} us, p99.9 {p999:.0} us; errors {}",
            self.common.opener.opened,
            self.pipeline,
            thousands(rate as u64),
            self.common.errors
        );
        println!(
            "{{\"mode\":\"echo\",\"connections\":{},\"size\":{size},\"pipeline\":{},\"seconds\":{secs:.3},\
             \"messages\":{},\"msg_per_s\":{rate:.0},\"mb_per_s\":{mb:.3},\"p50_us\":{p50:.1},\"p99_us\":{p99:.1},\
             \"p999_us\":{p999:.1},\"errors\":{}}}",
            self.common.opener.opened, self.pipeline, self.measured, self.common.errors
        );
        self.common.check()?;
        if self.measured == 0 {
            return Err("no message was measured".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_payloads_are_utf8_of_the_asked_length_with_any_stamp() {
        for len in 0..200 {
            let mut text = greek(len);
            assert_eq!(text.len(), len);
            for seq in [0, 1, 0xABCD, u64::MAX] {
                stamp(&mut text, seq, MessageKind::Text);
                assert!(std::str::from_utf8(&text).is_ok(), "len {len} seq {seq}");
            }
        }
        assert!(greek(100).len() > TEXT_STAMP && !greek(100).is_ascii());
    }

    #[test]
    fn stamps_of_different_sequence_numbers_differ() {
        for kind in [MessageKind::Binary, MessageKind::Text] {
            let (mut a, mut b) = (greek(40), greek(40));
            stamp(&mut a, 41, kind);
            stamp(&mut b, 42, kind);
            assert_ne!(a, b, "{kind:?}");
        }
    }
}
