//! Log lines written in batches: one `write(2)` per reactor loop turn
//! instead of one per line, and formatted without allocating.
//!
//! `env_logger` still decides which records pass (`EDGEWS_LOG`,
//! `RUST_LOG`), but lines are formatted here, each in its thread's
//! scratch space and then appended to one process-wide buffer. The reactor calls
//! [`log::logger().flush()`](log::Log::flush) before it blocks in
//! `epoll_wait` (see `Reactor::turn`), and that writes everything buffered
//! in one call. Every line is kept, in the order it was logged (one buffer
//! for all threads, appended under its lock):
//! - the buffer is written out at once when it passes [`FLUSH_AT`], so it
//!   never holds more than that and a burst of lines costs one write per
//!   64 KiB;
//! - [`flush_now`] is called when `main` ends, and by a panic hook before
//!   the panic message is printed, so nothing logged is lost at exit and
//!   the lines before a panic come before its message;
//! - lines logged outside a reactor turn (start-up, a thread that runs no
//!   reactor) go out at the next turn's end or at exit.
//!
//! Before this, each connection's `open` and `closed` lines cost a
//! `write(2)` each (two of the ~13 syscalls of a connection's whole life)
//! and about a third of its user-space instructions, most of them
//! env_logger's per-line buffer and colour stripping (docs/benchmarks.md,
//! "Connection setup").

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Buffered bytes past which a line is not held for the turn's end.
pub const FLUSH_AT: usize = 64 << 10;

/// How lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `[2026-12-03T19:42:46Z INFO ] message`, as env_logger writes it.
    Text {
        /// Colour the level (stderr is a terminal).
        colour: bool,
    },
    /// `{"ts":"2026-12-03T19:42:46.123Z","level":"INFO","msg":"message"}`.
    Json,
}

/// One thread's formatting space: a line is formatted here, outside the
/// lock, and only appended to [`LINES`] under it, so workers logging at
/// once wait for a copy, not for each other's formatting.
struct Pending {
    /// The line being formatted.
    lines: String,
    /// A JSON line's message before escaping.
    message: String,
    /// `seconds` formatted (`2026-12-03T19:42:46`): most lines of a busy
    /// server fall in the same second as the one before.
    stamp: String,
    seconds: u64,
}

impl Pending {
    const fn new() -> Pending {
        Pending {
            lines: String::new(),
            message: String::new(),
            stamp: String::new(),
            seconds: u64::MAX,
        }
    }
}

/// Every thread's formatted lines, in the order they were appended.
static LINES: Mutex<String> = Mutex::new(String::new());
/// Whether `LINES` may hold lines: lets an idle turn skip the lock.
static HELD: AtomicBool = AtomicBool::new(false);

thread_local! {
    static SCRATCH: std::cell::RefCell<Pending> = const { std::cell::RefCell::new(Pending::new()) };
}

/// Writes whatever is buffered to stderr, in one call.
pub fn flush_now() {
    if HELD.load(Ordering::Acquire) {
        let mut lines = LINES.lock().unwrap_or_else(|e| e.into_inner());
        write_out(&mut lines);
    }
}

/// Empties `lines` into stderr; called with the lock held, so lines
/// logged meanwhile wait and keep their order. A failed write drops the
/// batch (stderr is gone; there is nowhere else to say so).
fn write_out(lines: &mut String) {
    if !lines.is_empty() {
        let _ = io::stderr().lock().write_all(lines.as_bytes());
        lines.clear();
        if lines.capacity() > FLUSH_AT * 2 {
            lines.shrink_to(FLUSH_AT);
        }
    }
    HELD.store(false, Ordering::Release);
}

/// The process's logger: env_logger's filter, this module's lines.
pub struct Batched {
    filter: env_logger::Logger,
    style: Style,
}

impl log::Log for Batched {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &log::Record) {
        if !self.filter.matches(record) {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let append = |pending: &mut Pending| {
            pending.lines.clear();
            format_line(pending, self.style, now, record.level(), record.args());
            let mut lines = LINES.lock().unwrap_or_else(|e| e.into_inner());
            lines.push_str(&pending.lines);
            HELD.store(true, Ordering::Release);
            if lines.len() >= FLUSH_AT {
                write_out(&mut lines);
            }
        };
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut pending) => append(&mut pending),
            // a value's Display logging while its own line is formatted
            Err(_) => append(&mut Pending::new()),
        });
    }

    fn flush(&self) {
        flush_now();
    }
}

/// Appends one line to `pending.lines`.
fn format_line(
    pending: &mut Pending,
    style: Style,
    now: std::time::Duration,
    level: log::Level,
    args: &std::fmt::Arguments,
) {
    if pending.seconds != now.as_secs() {
        pending.seconds = now.as_secs();
        pending.stamp.clear();
        push_timestamp(&mut pending.stamp, pending.seconds);
    }
    let out = &mut pending.lines;
    match style {
        Style::Text { colour } => {
            out.push('[');
            out.push_str(&pending.stamp);
            out.push('Z');
            out.push(' ');
            let (on, off) = match (colour, level) {
                (false, _) => ("", ""),
                (true, log::Level::Error) => ("\x1b[31;1m", "\x1b[0m"),
                (true, log::Level::Warn) => ("\x1b[33m", "\x1b[0m"),
                (true, log::Level::Info) => ("\x1b[32m", "\x1b[0m"),
                (true, log::Level::Debug) => ("\x1b[34m", "\x1b[0m"),
                (true, log::Level::Trace) => ("\x1b[36m", "\x1b[0m"),
            };
            out.push_str(on);
            out.push_str(padded(level));
            out.push_str(off);
            out.push_str("] ");
            push_args(out, args);
        }
        Style::Json => {
            out.push_str("{\"ts\":\"");
            out.push_str(&pending.stamp);
            let ms = now.subsec_millis();
            let digits = [b'.', digit(ms / 100), digit(ms / 10), digit(ms), b'Z'];
            out.push_str(std::str::from_utf8(&digits).unwrap_or(".000Z"));
            out.push_str("\",\"level\":\"");
            out.push_str(level.as_str());
            out.push_str("\",\"msg\":");
            pending.message.clear();
            push_args(&mut pending.message, args);
            push_json_string(out, &pending.message);
            out.push('}');
        }
    }
    out.push('\n');
}

/// The level as env_logger shows it, padded to five (`{level:<5}`).
fn padded(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "ERROR",
        log::Level::Warn => "WARN ",
        log::Level::Info => "INFO ",
        log::Level::Debug => "DEBUG",
        log::Level::Trace => "TRACE",
    }
}

/// Appends a record's message: a plain string as it is, the rest through
/// `core::fmt` directly, not as an argument of another format string.
fn push_args(out: &mut String, args: &std::fmt::Arguments) {
    match args.as_str() {
        Some(text) => out.push_str(text),
        None => {
            let _ = out.write_fmt(*args);
        }
    }
}

/// `2026-12-03T19:42:46`: UTC, RFC 3339 without the zone.
fn push_timestamp(out: &mut String, secs: u64) {
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    );
}

/// The last decimal digit of `n`, as ASCII.
fn digit(n: u32) -> u8 {
    b'0' + (n % 10) as u8
}

/// Year, month, day of a day count since 1970-01-01 (proleptic Gregorian;
/// the well-known era-based conversion).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `s` as a JSON string, quoted and escaped (RFC 8259 §7).
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Installs the batched logger with `filter`'s levels, and a panic hook
/// that writes the batch out before the panic's own message.
pub fn install(filter: env_logger::Logger, style: Style) {
    let max = filter.filter();
    if log::set_boxed_logger(Box::new(Batched { filter, style })).is_ok() {
        log::set_max_level(max);
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        flush_now();
        previous(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn line(style: Style, at: Duration, level: log::Level, args: std::fmt::Arguments) -> String {
        let mut p = Pending::new();
        format_line(&mut p, style, at, level, &args);
        p.lines
    }

    #[test]
    fn levels_are_padded_as_core_fmt_pads_them() {
        for level in log::Level::iter() {
            assert_eq!(padded(level), format!("{level:<5}"));
        }
    }

    #[test]
    fn text_lines_look_as_env_loggers_did() {
        let at = Duration::from_millis(1_796_326_966_123); // 2026-12-03T19:42:46.123Z
        let plain = Style::Text { colour: false };
        assert_eq!(
            line(
                plain,
                at,
                log::Level::Info,
                format_args!("#0.1 open {}", "/")
            ),
            "[2026-12-03T19:42:46Z INFO ] #0.1 open /\n"
        );
        assert_eq!(
            line(plain, at, log::Level::Error, format_args!("x")),
            "[2026-12-03T19:42:46Z ERROR] x\n"
        );
        let coloured = line(
            Style::Text { colour: true },
            at,
            log::Level::Warn,
            format_args!("x"),
        );
        assert_eq!(coloured, "[2026-12-03T19:42:46Z \x1b[33mWARN \x1b[0m] x\n");
    }

    #[test]
    fn json_lines_are_one_escaped_object_each() {
        let at = Duration::from_millis(951_782_400_007); // 2000-02-29T00:00:00.007Z
        let text = line(
            Style::Json,
            at,
            log::Level::Warn,
            format_args!("a \"quoted\"\n\\ {}", '\u{1}'),
        );
        assert_eq!(
            text,
            "{\"ts\":\"2000-02-29T00:00:00.007Z\",\"level\":\"WARN\",\"msg\":\"a \\\"quoted\\\"\\n\\\\ \\u0001\"}\n"
        );
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["msg"], "a \"quoted\"\n\\ \u{1}");
    }

    #[test]
    fn days_convert_to_dates_across_leap_years_and_centuries() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_790), (2026, 12, 3));
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
    }

    /// One test owns the process-wide buffer (tests run in parallel).
    #[test]
    fn lines_are_held_in_order_until_flushed_and_a_large_batch_goes_at_once() {
        let logger = Batched {
            filter: env_logger::Builder::new()
                .filter_level(log::LevelFilter::Info)
                .build(),
            style: Style::Text { colour: false },
        };
        let record = |msg| {
            log::Log::log(
                &logger,
                &log::Record::builder()
                    .level(log::Level::Info)
                    .args(format_args!("{msg}"))
                    .build(),
            )
        };
        record("one");
        record("two");
        let held = LINES.lock().unwrap().clone();
        assert!(
            held.ends_with(" INFO ] one\n") || held.contains("one\n"),
            "{held}"
        );
        assert!(held.find("one").unwrap() < held.find("two").unwrap());
        flush_now();
        assert!(LINES.lock().unwrap().is_empty());
        assert!(!HELD.load(Ordering::Acquire));
        let long = "x".repeat(1000);
        for _ in 0..(FLUSH_AT / 1000 + 1) {
            record(&long);
        }
        assert!(
            LINES.lock().unwrap().len() < FLUSH_AT,
            "written out past FLUSH_AT"
        );
        flush_now();
    }
}
