//! One connection's cycle: the stamped message it sends, and where it is
//! between its upgrade and its end.

use std::time::Instant;

/// How a cycle ends once its echo is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Close 1000, the server's close frame, then the end of the stream
    /// (the server closes TCP first).
    Handshake,
    /// `Context::abort`: TCP closed at once, no close frame (`--abrupt`).
    Abrupt,
}

/// Where one connection is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The message is sent; its echo is awaited.
    Echo,
    /// Close 1000 is sent; the server's close frame is awaited.
    Closing,
    /// The server's close frame came; the end of the stream is awaited
    /// (the connection leaves the reactor then: see `ends.rs`).
    Draining,
    /// Aborted after the echo; `on_close` (1006, no close frame) is
    /// awaited, in the same loop turn.
    Aborted,
}

/// One connection's cycle.
#[derive(Debug)]
pub struct Cycle {
    /// When its connect was asked for.
    pub started: Instant,
    /// The number stamped into its message.
    pub number: u64,
    /// Its upgrade was counted (inside the window): its end may count too.
    pub counted: bool,
    /// A failure was counted already: its end does not count.
    pub failed: bool,
    /// Where the cycle is.
    pub stage: Stage,
}

/// The payload of `size` bytes every cycle sends, before its stamp.
pub fn payload(size: u64) -> Result<Vec<u8>, String> {
    let size = usize::try_from(size).map_err(|_| "--size too large")?;
    Ok((0..size).map(|i| b'a' + (i % 26) as u8).collect())
}

/// Writes the cycle's number into the first 8 bytes of the payload (as
/// many as fit): numbers are unique in a run, so an echo meant for another
/// connection, or a stale one, differs from what the cycle sent.
pub fn stamp(payload: &mut [u8], number: u64) {
    let n = payload.len().min(8);
    payload[..n].copy_from_slice(&number.to_le_bytes()[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_of_different_cycles_differ_at_any_size_from_one() {
        for size in 1..12 {
            let (mut a, mut b) = (payload(size).unwrap(), payload(size).unwrap());
            stamp(&mut a, 41);
            stamp(&mut b, 42);
            assert_ne!(a, b, "size {size}");
        }
        let mut empty = payload(0).unwrap();
        stamp(&mut empty, 7);
        assert!(empty.is_empty());
    }
}
