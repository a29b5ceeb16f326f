//! Zero-copy sends from the read buffer. A message that arrived whole is
//! handed to the handler as a slice of the reactor's read buffer; when the
//! handler sends those bytes back to the same connection (an echo, a reply
//! that quotes the request), only the frame header goes into the scratch
//! buffer, and the payload is written from where it lies with one `writev`,
//! instead of being copied. What the kernel does not take is copied into the
//! connection's queue then, as any output is.
//!
//! Only while a server-side connection's input is being processed, only to
//! that connection, and only while its queue is empty: the read buffer is
//! not touched again before that connection's output is written.

use super::conn::Conn;
use std::io::{self, IoSlice, Write};
use std::ops::Range;

/// Payloads smaller than this are copied: the copy costs less than an
/// extra piece in the `writev`.
pub(crate) const SPLICE_MIN: usize = 1024;

/// The most spliced payloads in one write; further sends are copied.
pub(crate) const MAX_SPLICES: usize = 16;

/// A payload sent from the read buffer: `input[range]` goes out after
/// `scratch[..at]`.
#[derive(Debug, Clone)]
pub(crate) struct Splice {
    pub at: usize,
    pub range: Range<usize>,
}

/// The part of the read buffer the current input occupies, as addresses,
/// to tell whether a payload the handler sends lies in it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct InputSpan {
    base: usize,
    len: usize,
}

impl InputSpan {
    /// The span of `input`, the filled part of the read buffer.
    pub fn of(input: &[u8]) -> InputSpan {
        InputSpan {
            base: input.as_ptr() as usize,
            len: input.len(),
        }
    }

    /// No input is being processed.
    pub fn none() -> InputSpan {
        InputSpan::default()
    }

    /// Where `data` lies in the input, if it lies wholly in it.
    pub fn range_of(&self, data: &[u8]) -> Option<Range<usize>> {
        let start = (data.as_ptr() as usize).checked_sub(self.base)?;
        let end = start.checked_add(data.len())?;
        (self.len > 0 && end <= self.len).then_some(start..end)
    }
}

/// Writes `scratch` with the spliced payloads of `input` in their places,
/// in one `writev`; queues what the kernel did not take (all of it while
/// something is queued already, or the connection is not yet connected).
pub(crate) fn write_spliced(
    conn: &mut Conn,
    scratch: &[u8],
    splices: &[Splice],
    input: &[u8],
) -> io::Result<()> {
    if splices.len() > MAX_SPLICES {
        // `Context::send` never splices more; were it to, nothing is lost:
        // everything is queued in order and written from the queue
        let mut from = 0;
        for splice in splices {
            conn.queue.push_slice(&scratch[from..splice.at]);
            conn.queue.push_slice(&input[splice.range.clone()]);
            from = splice.at;
        }
        conn.queue.push_slice(&scratch[from..]);
        if conn.connecting {
            return Ok(());
        }
        return conn.queue.write_to(&mut conn.socket).map(drop);
    }
    let mut pieces = [IoSlice::new(&[]); 2 * MAX_SPLICES + 1];
    let mut n = 0;
    let mut from = 0;
    for splice in splices {
        pieces[n] = IoSlice::new(&scratch[from..splice.at]);
        pieces[n + 1] = IoSlice::new(&input[splice.range.clone()]);
        n += 2;
        from = splice.at;
    }
    pieces[n] = IoSlice::new(&scratch[from..]);
    let pieces = &pieces[..=n];
    let written = if conn.connecting || !conn.queue.is_empty() {
        0
    } else {
        loop {
            match conn.socket.write_vectored(pieces) {
                Ok(k) => break k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break 0,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    };
    let mut skip = written;
    for piece in pieces {
        if skip >= piece.len() {
            skip -= piece.len();
            continue;
        }
        conn.queue.push_slice(&piece[skip..]);
        skip = 0;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_data_wholly_inside_the_input_has_a_range() {
        let buf = [0u8; 100];
        let span = InputSpan::of(&buf[..60]);
        assert_eq!(span.range_of(&buf[10..20]), Some(10..20));
        assert_eq!(span.range_of(&buf[0..60]), Some(0..60));
        assert_eq!(span.range_of(&buf[50..70]), None, "past the filled part");
        let elsewhere = vec![0u8; 10];
        assert_eq!(span.range_of(&elsewhere), None);
        assert_eq!(InputSpan::none().range_of(&buf[..1]), None);
    }
}
