//! Frame boundaries in a stream that is relayed as it is: what a proxy
//! between a client and an upstream server needs to know about each
//! direction without decoding it.
//!
//! A [`Tracker`] reads the headers of one direction's frames (RFC 6455
//! §5.2) and counts payload bytes past them. It never copies, unmasks or
//! validates a payload: masking stays as the sender made it (§5.3: the
//! client's mask is as good toward the upstream as it was toward us), and
//! the endpoints check UTF-8 and decompress (extensions are negotiated end
//! to end). What it does check is what a relay must enforce to stay in
//! step and to protect what is behind it: the header rules of §5.2 and
//! §5.5, the mask direction (§5.1), the order of fragments (§5.4), and the
//! message size limit (§10.4) counted in bytes on the wire.
//!
//! A close frame (at most 125 bytes of payload, §5.5) is held until it is
//! whole, so its code can be read; anything after it is dropped (§5.5.1:
//! "the endpoint MUST NOT send any more data frames after sending a Close
//! frame").

use super::close::{parse_close_payload, CloseCode};
use super::connection::Role;
use super::error::ProtocolError;
use super::frame::{decode_header, OpCode};
use super::mask::apply_mask;

/// Tracks the frames of one direction of a relayed connection.
#[derive(Debug, Clone)]
pub struct Tracker {
    /// Who sends this direction: a client's frames must be masked, a
    /// server's must not (§5.1).
    sender: Role,
    /// The RSV bits the negotiated extensions define (§5.2).
    allowed_rsv: u8,
    /// The largest message, in payload bytes on the wire.
    max_message: u64,
    /// Payload bytes of the current frame not yet seen.
    remaining: u64,
    /// A fragmented data message is in progress (§5.4).
    in_message: bool,
    /// Payload bytes of the current message so far.
    message_len: u64,
    /// A close frame went through: the direction is over.
    closed: bool,
}

/// What one [`Tracker::scan`] found in its input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scanned {
    /// The first `forward` bytes of the input go on to the other side.
    pub forward: usize,
    /// The first `consumed` bytes are done with (forwarded, or dropped
    /// after a close frame); the rest is a partial header or close frame
    /// to present again with more bytes.
    pub consumed: usize,
    /// A close frame ends the forwarded bytes: its code (`None` when it had
    /// none, or an invalid payload the receiving endpoint will judge).
    pub close: Option<Option<CloseCode>>,
    /// With `close`: where the close frame starts in the input (it ends at
    /// `forward`), for a relay that answers with a close of its own.
    pub close_at: usize,
    /// The stream broke a rule at `forward`: nothing from there on may be
    /// forwarded; fail the sender's connection with the error's code.
    pub error: Option<ProtocolError>,
}

impl Tracker {
    /// A tracker for frames sent by `sender`, with the RSV bits the
    /// extensions agreed on and a message limit (`u64::MAX` for none).
    pub fn new(sender: Role, allowed_rsv: u8, max_message: u64) -> Tracker {
        Tracker {
            sender,
            allowed_rsv,
            max_message,
            remaining: 0,
            in_message: false,
            message_len: 0,
            closed: false,
        }
    }

    /// Whether everything forwarded so far ends at a frame boundary, so a
    /// frame of the relay's own (a close) may be written after it.
    pub fn at_boundary(&self) -> bool {
        self.remaining == 0
    }

    /// Whether a close frame went through (or the stream failed).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Reads as much of `input` as can be judged; see [`Scanned`].
    pub fn scan(&mut self, input: &[u8]) -> Scanned {
        let mut pos = 0;
        let mut scanned = Scanned::default();
        while pos < input.len() {
            if self.closed {
                // §5.5.1: nothing follows a close frame; drop it
                scanned.consumed = input.len();
                return scanned;
            }
            if self.remaining > 0 {
                let take = self.remaining.min((input.len() - pos) as u64);
                self.remaining -= take;
                pos += take as usize;
                scanned.forward = pos;
                continue;
            }
            match self.frame_at(&input[pos..]) {
                Ok(Some(FrameStart::Payload { header_len })) => pos += header_len,
                Ok(Some(FrameStart::Close { frame_len, code })) => {
                    scanned.close_at = pos;
                    pos += frame_len;
                    scanned.close = Some(code);
                    self.closed = true;
                }
                Ok(None) => break, // a partial header: wait for the rest
                Err(e) => {
                    self.closed = true;
                    scanned.error = Some(e);
                    break;
                }
            }
            scanned.forward = pos;
        }
        scanned.consumed = match scanned.error {
            Some(_) => input.len(),
            None => pos,
        };
        scanned
    }

    /// Judges the frame whose header starts `buf`.
    fn frame_at(&mut self, buf: &[u8]) -> Result<Option<FrameStart>, ProtocolError> {
        let Some((header, header_len)) = decode_header(buf, self.allowed_rsv)? else {
            return Ok(None);
        };
        // §5.1: a server MUST close on an unmasked frame from a client; a
        // client MUST close on a masked frame from a server
        match (self.sender, header.masked) {
            (Role::Client, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Server, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if header.opcode == OpCode::Close {
            let frame_len = header_len + header.len as usize;
            let Some(payload) = buf.get(header_len..frame_len) else {
                return Ok(None); // held until whole: at most 139 bytes
            };
            let mut copy = [0u8; 125];
            let copy = &mut copy[..payload.len()];
            copy.copy_from_slice(payload);
            if let Some(key) = header.mask() {
                apply_mask(copy, key, 0);
            }
            let code = parse_close_payload(copy).ok().flatten().map(|(c, _)| c);
            return Ok(Some(FrameStart::Close { frame_len, code }));
        }
        if !header.opcode.is_control() {
            self.data_frame(header.opcode, header.fin, header.len)?;
        }
        self.remaining = header.len;
        Ok(Some(FrameStart::Payload { header_len }))
    }

    /// §5.4's order of fragments and §10.4's message limit.
    fn data_frame(&mut self, opcode: OpCode, fin: bool, len: u64) -> Result<(), ProtocolError> {
        match (opcode, self.in_message) {
            (OpCode::Continuation, false) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Continuation, true) => {}
            (_, true) => return Err(ProtocolError::ExpectedContinuation),
            (_, false) => self.message_len = 0,
        }
        self.message_len = self.message_len.saturating_add(len);
        if self.message_len > self.max_message {
            return Err(ProtocolError::MessageTooLarge {
                len: self.message_len,
                max: self.max_message,
            });
        }
        self.in_message = !fin;
        Ok(())
    }
}

/// The start of a frame, judged.
enum FrameStart {
    /// A header of `header_len` bytes; its payload follows.
    Payload { header_len: usize },
    /// A whole close frame.
    Close {
        frame_len: usize,
        code: Option<CloseCode>,
    },
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
