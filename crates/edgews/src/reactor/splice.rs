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
//! not touched again before that connection's output is written. The
//! writer itself, `write_spliced`, is in `write.rs` with the others.

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
