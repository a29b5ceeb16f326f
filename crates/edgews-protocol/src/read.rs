//! The input path of [`Connection`]: the handshake head, then frames.

use super::close::{parse_close_payload, CloseCode};
use super::connection::{CloseCause, Connection, Event, InFrame, Role, State};
use super::error::{HandshakeError, ProtocolError};
use super::frame::{decode_header, FrameHeader, OpCode};
use super::handshake::{parse_leading_head, parse_request, write_rejection, Parsed};
use super::mask::apply_mask;
use super::message::{Assembly, Message, MessageKind};
use super::utf8::Utf8Validator;
use crate::deflate::{negotiate, PerMessageDeflate};
use std::borrow::Cow;
use std::time::Instant;

impl Connection {
    /// Feeds received bytes; returns how many were consumed and the event
    /// they completed, if any. Bytes to send in answer (a pong, a close, an
    /// HTTP error) are appended to `out`.
    ///
    /// Call again with the unconsumed rest until no event comes back; then
    /// keep the unconsumed bytes and present them again, followed by the
    /// next bytes that arrive. The payload is unmasked in place, which is
    /// why `input` is mutable. Once the connection is closed, all input is
    /// consumed and ignored (§5.5.1: "after sending a Close frame ... MUST
    /// NOT send any more data frames"; what the peer sends after its own
    /// close is discarded).
    ///
    /// An empty `input` yields no event and changes nothing, so a caller
    /// whose input is used up need not call again.
    pub fn handle_input<'b>(
        &mut self,
        now: Instant,
        input: &'b mut [u8],
        out: &mut Vec<u8>,
    ) -> (usize, Option<Event<'b>>) {
        if input.is_empty() {
            return (0, None);
        }
        self.last_activity = now;
        self.awaiting_pong = false;
        match self.state {
            State::Connecting => self.read_head(input, out),
            State::Open | State::Closing => self.read_frames(input, out),
            State::Closed => (input.len(), None),
        }
    }

    fn read_head<'b>(
        &mut self,
        input: &'b mut [u8],
        out: &mut Vec<u8>,
    ) -> (usize, Option<Event<'b>>) {
        let max_head = self.config.max_head_size;
        let Some(hs) = self.handshake.as_mut() else {
            return (0, None);
        };
        if hs.awaiting_answer {
            return (0, None);
        }
        let input: &'b [u8] = input;
        // a server's first input usually holds the whole head: parsed at
        // once, not scanned for its end first (see `parse_leading_head`)
        let leading = match self.role {
            Role::Server if hs.scanner.is_fresh() => parse_leading_head(input, &self.config),
            _ => None,
        };
        let (end, parsed) = match leading {
            Some(found) => found,
            None => {
                let end = match hs.scanner.find_end(input) {
                    Some(end) if end <= max_head => end,
                    Some(_) => return self.refuse(HandshakeError::HeadTooLarge, input.len(), out),
                    None if input.len() > max_head => {
                        return self.refuse(HandshakeError::HeadTooLarge, input.len(), out)
                    }
                    None => return (0, None),
                };
                if self.role == Role::Client {
                    return self.read_response(&input[..end], input.len());
                }
                (end, parse_request(&input[..end], &self.config))
            }
        };
        let Some(hs) = self.handshake.as_mut() else {
            return (0, None);
        };
        match parsed {
            Ok(Parsed::Upgrade(request, accept)) => {
                hs.accept = Some(accept);
                hs.subprotocol = request
                    .subprotocol
                    .and_then(|p| self.config.subprotocols.iter().position(|s| s == p));
                hs.deflate = self
                    .config
                    .deflate
                    .as_ref()
                    .and_then(|config| negotiate(&request, config));
                hs.awaiting_answer = true;
                (end, Some(Event::Upgrade(request)))
            }
            Ok(Parsed::Http(request)) => {
                hs.awaiting_answer = true;
                (end, Some(Event::HttpRequest(request)))
            }
            Err(e) => self.refuse(e, input.len(), out),
        }
    }

    /// Client: the server's answer to our upgrade, `head` a whole response
    /// head; `consumed` is what a failure uses up.
    fn read_response<'b>(&mut self, head: &[u8], consumed: usize) -> (usize, Option<Event<'b>>) {
        let Some(hs) = self.handshake.as_ref() else {
            return (0, None);
        };
        let offered_deflate = self.config.deflate.is_some();
        let result =
            super::client_handshake::validate_response(head, &hs.key, &hs.offered, offered_deflate);
        match result {
            Ok(agreed) => {
                self.handshake = None;
                self.state = State::Open;
                self.deflate = agreed.deflate.map(|params| {
                    let config = self.config.deflate.clone().unwrap_or_default();
                    Box::new(PerMessageDeflate::new(params, Role::Client, &config))
                });
                let subprotocol = agreed.subprotocol;
                (head.len(), Some(Event::Connected { subprotocol }))
            }
            Err(e) => {
                self.state = State::Closed;
                (consumed, Some(Event::ConnectFailed(e)))
            }
        }
    }

    /// Refuses a request by itself: HTTP error response, then closed.
    fn refuse<'b>(
        &mut self,
        error: HandshakeError,
        consumed: usize,
        out: &mut Vec<u8>,
    ) -> (usize, Option<Event<'b>>) {
        write_rejection(out, &error);
        self.state = State::Closed;
        (consumed, Some(Event::Rejected(error)))
    }

    fn read_frames<'b>(
        &mut self,
        input: &'b mut [u8],
        out: &mut Vec<u8>,
    ) -> (usize, Option<Event<'b>>) {
        let len = input.len();
        match self.next_step(input, out) {
            Step::NeedMore(pos) => (pos, None),
            Step::Done(pos, event) => (pos, event),
            Step::Control {
                opcode,
                mask,
                start,
                end,
            } => {
                let payload = &mut input[start..end];
                if let Some(key) = mask {
                    apply_mask(payload, key, 0);
                }
                (end, Some(self.on_control(opcode, payload, out)))
            }
            Step::Whole { header, start, end } if header.rsv != 0 => {
                match self.inflate_single(header, &mut input[start..end]) {
                    Ok(message) => (end, Some(Event::Message(message))),
                    Err(e) => (len, Some(self.fail(e, out))),
                }
            }
            Step::Whole { header, start, end } => {
                match finish_single(header, &mut input[start..end]) {
                    Ok(message) => (end, Some(Event::Message(message))),
                    Err(e) => (len, Some(self.fail(e, out))),
                }
            }
        }
    }

    /// Works through `input` until something must be handed to the caller.
    /// It returns positions rather than borrows, so the caller can borrow
    /// `input` for the event once, outside the loop.
    fn next_step(&mut self, input: &mut [u8], out: &mut Vec<u8>) -> Step {
        let mut pos = 0;
        loop {
            if self.state == State::Closed {
                return Step::Done(input.len(), None);
            }
            if let Some(frame) = self.partial.as_ref().and_then(|p| p.reading) {
                let n = frame.remaining.min((input.len() - pos) as u64) as usize;
                if n == 0 && frame.remaining > 0 {
                    return Step::NeedMore(pos);
                }
                let chunk = &mut input[pos..pos + n];
                pos += n;
                match self.continue_payload(frame, chunk) {
                    Ok(None) => continue,
                    Ok(Some(message)) => return Step::Done(pos, Some(Event::Message(message))),
                    Err(e) => return Step::Done(input.len(), Some(self.fail(e, out))),
                }
            }
            // RFC 7692 §6: permessage-deflate gives RSV1 a meaning
            let allowed_rsv = if self.deflate.is_some() { RSV1 } else { 0 };
            let (header, header_len) = match decode_header(&input[pos..], allowed_rsv) {
                Ok(Some(decoded)) => decoded,
                Ok(None) => return Step::NeedMore(pos),
                Err(e) => return Step::Done(input.len(), Some(self.fail(e, out))),
            };
            if let Err(e) = self.check_mask(&header) {
                return Step::Done(input.len(), Some(self.fail(e, out)));
            }
            // RFC 7692 §6.1: RSV1 marks "the first fragment" of a compressed
            // data message; §6: never a control frame
            if header.rsv != 0
                && (header.opcode.is_control() || header.opcode == OpCode::Continuation)
            {
                let e = ProtocolError::CompressedBitMisplaced;
                return Step::Done(input.len(), Some(self.fail(e, out)));
            }
            let available = (input.len() - pos - header_len) as u64;
            let start = pos + header_len;
            if header.opcode.is_control() {
                if available < header.len {
                    return Step::NeedMore(pos); // at most 125 bytes wait for the rest
                }
                let end = start + header.len as usize;
                return Step::Control {
                    opcode: header.opcode,
                    mask: header.mask(),
                    start,
                    end,
                };
            }
            if let Err(e) = self.begin_data_frame(&header) {
                return Step::Done(input.len(), Some(self.fail(e, out)));
            }
            let whole = header.fin && !self.has_message() && available >= header.len;
            if whole && self.state == State::Open {
                // the common case: a whole message in one frame, zero-copy
                let end = start + header.len as usize;
                return Step::Whole { header, start, end };
            }
            pos = start;
            if let Err(e) = self.begin_streaming(&header) {
                return Step::Done(input.len(), Some(self.fail(e, out)));
            }
        }
    }

    /// Prepares to take a data frame's payload piece by piece into the
    /// message being assembled (or to drop it, while closing).
    fn begin_streaming(&mut self, header: &FrameHeader) -> Result<(), ProtocolError> {
        let discard = self.state == State::Closing;
        let config = &self.config;
        let partial = self.partial.get_or_insert_with(Box::default);
        if !discard {
            let compressed = header.rsv != 0;
            let message = partial.message.get_or_insert_with(|| {
                Assembly::new(kind_of(header.opcode), header.len, compressed)
            });
            message.admit_frame(header.len, config)?;
            if compressed {
                let deflate = self.deflate.as_mut();
                deflate
                    .ok_or(ProtocolError::ReservedBits(header.rsv))?
                    .begin_inflate()?;
            }
        }
        partial.reading = Some(InFrame {
            remaining: header.len,
            mask: header.mask(),
            offset: 0,
            fin: header.fin,
            discard,
        });
        Ok(())
    }

    /// Whether `header` starts or continues a compressed message.
    fn is_compressed(&self, header: &FrameHeader) -> bool {
        let continuing = self.partial.as_ref().and_then(|p| p.message.as_ref());
        header.rsv & RSV1 != 0 || continuing.is_some_and(|m| m.compressed)
    }

    /// Whether a fragmented message is being assembled.
    fn has_message(&self) -> bool {
        self.partial.as_ref().is_some_and(|p| p.message.is_some())
    }

    /// §5.1: "a client MUST mask all frames that it sends to the server"
    /// and "A server MUST NOT mask any frames that it sends to the client".
    fn check_mask(&self, header: &FrameHeader) -> Result<(), ProtocolError> {
        match (self.role, header.mask().is_some()) {
            (Role::Server, false) => Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => Err(ProtocolError::MaskedFrame),
            _ => Ok(()),
        }
    }

    /// Checks a data frame against the fragmentation rules (§5.4) and the
    /// frame limit (§10.4), before any of its payload is buffered.
    fn begin_data_frame(&mut self, header: &FrameHeader) -> Result<(), ProtocolError> {
        // a compressed frame is inflated as it arrives, never buffered:
        // its inflated size counts against the message limit, and its wire
        // size against that limit plus what deflating can add (looked at
        // only past the frame limit: the common frame pays nothing for it)
        if header.len > self.config.max_frame_size {
            let max = match self.is_compressed(header) {
                true => compressed_limit(self.config.max_message_size),
                false => self.config.max_frame_size,
            };
            if header.len > max {
                return Err(ProtocolError::FrameTooLarge {
                    len: header.len,
                    max,
                });
            }
        }
        if self.state == State::Closing {
            return Ok(()); // discarded anyway
        }
        let in_progress = self.has_message();
        match header.opcode {
            OpCode::Continuation if !in_progress => Err(ProtocolError::UnexpectedContinuation),
            OpCode::Text | OpCode::Binary if in_progress => {
                Err(ProtocolError::ExpectedContinuation)
            }
            _ if !in_progress
                && header.len > self.config.max_message_size
                && !self.is_compressed(header) =>
            {
                Err(ProtocolError::MessageTooLarge {
                    len: header.len,
                    max: self.config.max_message_size,
                })
            }
            _ => Ok(()),
        }
    }

    /// Takes the next piece of a payload that spans inputs; returns the
    /// message when its last byte has arrived.
    fn continue_payload(
        &mut self,
        mut frame: InFrame,
        chunk: &mut [u8],
    ) -> Result<Option<Message<'static>>, ProtocolError> {
        if let Some(key) = frame.mask {
            apply_mask(chunk, key, frame.offset as usize);
        }
        frame.offset += chunk.len() as u64;
        frame.remaining -= chunk.len() as u64;
        let Some(partial) = self.partial.as_mut() else {
            return Ok(None);
        };
        if !frame.discard {
            if let Some(message) = partial.message.as_mut() {
                match self.deflate.as_mut().filter(|_| message.compressed) {
                    Some(deflate) => {
                        let max = self.config.max_message_size;
                        let utf8 = (message.kind == MessageKind::Text).then_some(&mut message.utf8);
                        deflate.inflate(chunk, &mut message.data, max, utf8)?;
                        message.len += chunk.len() as u64; // compressed bytes
                    }
                    None => message.push(chunk)?,
                }
            }
        }
        if frame.remaining > 0 {
            partial.reading = Some(frame);
            return Ok(None);
        }
        partial.reading = None;
        if frame.discard || !frame.fin {
            if partial.message.is_none() {
                self.partial = None;
            }
            return Ok(None);
        }
        let message = partial.message.take();
        self.partial = None;
        let Some(mut message) = message else {
            return Ok(None);
        };
        if let Some(deflate) = self.deflate.as_mut().filter(|_| message.compressed) {
            let max = self.config.max_message_size;
            let utf8 = (message.kind == MessageKind::Text).then_some(&mut message.utf8);
            deflate.finish_inflate(&mut message.data, max, utf8)?;
        }
        message.finish().map(Some)
    }

    /// Inflates a compressed message that arrived whole in one frame
    /// (RFC 7692 §7.2.2), under the message limit as output is produced.
    fn inflate_single(
        &mut self,
        header: FrameHeader,
        payload: &mut [u8],
    ) -> Result<Message<'static>, ProtocolError> {
        if let Some(key) = header.mask() {
            apply_mask(payload, key, 0);
        }
        let max = self.config.max_message_size;
        let deflate = self
            .deflate
            .as_mut()
            .ok_or(ProtocolError::ReservedBits(header.rsv))?;
        deflate.begin_inflate()?;
        let kind = kind_of(header.opcode);
        // text is checked as it is inflated, as when the message arrives
        // in pieces: the first fault in the inflated bytes decides the code
        let mut utf8 = Utf8Validator::new();
        let mut text = (kind == MessageKind::Text).then_some(&mut utf8);
        let mut data = Vec::new();
        let inflated = deflate.inflate(payload, &mut data, max, text.as_deref_mut());
        if let Err(e) = inflated {
            deflate.release();
            return Err(e);
        }
        deflate.finish_inflate(&mut data, max, text)?;
        if kind == MessageKind::Text {
            utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(Message::validated(kind, Cow::Owned(data)))
    }

    /// Handles a whole control frame (§5.5).
    fn on_control<'b>(
        &mut self,
        opcode: OpCode,
        payload: &'b [u8],
        out: &mut Vec<u8>,
    ) -> Event<'b> {
        match opcode {
            OpCode::Ping => {
                // §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a
                // Pong frame in response, unless it already received a Close
                // frame." After sending our own close we send nothing more.
                if self.state == State::Open {
                    self.write_frame(true, OpCode::Pong, payload, out);
                }
                Event::Ping(payload)
            }
            OpCode::Pong => Event::Pong(payload),
            _ => self.on_close(payload, out),
        }
    }

    /// Handles the peer's close frame (§5.5.1, §7.1.5).
    fn on_close(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Event<'static> {
        let (code, reason) = match parse_close_payload(payload) {
            Ok(Some((code, reason))) => (code, reason),
            Ok(None) => (CloseCode::NO_STATUS, ""),
            Err(e) => return self.fail(e, out),
        };
        if self.state == State::Closing {
            return self.finish(code, reason, CloseCause::Local);
        }
        // §5.5.1: "If an endpoint receives a Close frame and did not
        // previously send a Close frame, the endpoint MUST send a Close frame
        // in response ... typically echoing the status code it received."
        let echo = if code == CloseCode::NO_STATUS {
            CloseCode::NORMAL
        } else {
            code
        };
        self.write_close(echo, reason, out);
        self.finish(code, reason, CloseCause::Peer)
    }
}

/// The most compressed bytes a message of at most `max` bytes may take on
/// the wire. Deflate grows incompressible data by a few bytes per block,
/// and zlib's blocks are short at low memLevels (2^(memLevel+6) - 1
/// literals: 3.9% more at memLevel 1, found by the `deflate` fuzz
/// target), so twice the limit leaves any sane compressor room; the bound
/// is there so that a message of empty blocks cannot go on for ever.
pub(crate) fn compressed_limit(max: u64) -> u64 {
    max.saturating_mul(2) + (64 << 10)
}

/// RSV1 in [`FrameHeader::rsv`]'s low three bits (RSV1 is the highest).
const RSV1: u8 = 0b100;

/// What the frame loop found; positions index the caller's input.
enum Step {
    /// Keep the input from this position and wait for more.
    NeedMore(usize),
    /// Consumed up to the position, with an event that borrows nothing.
    Done(usize, Option<Event<'static>>),
    /// A whole control frame at `start..end`.
    Control {
        opcode: OpCode,
        mask: Option<[u8; 4]>,
        start: usize,
        end: usize,
    },
    /// A whole single-frame message at `start..end`.
    Whole {
        header: FrameHeader,
        start: usize,
        end: usize,
    },
}

fn kind_of(opcode: OpCode) -> MessageKind {
    if opcode == OpCode::Text {
        MessageKind::Text
    } else {
        MessageKind::Binary
    }
}

/// Unmasks and checks a message that arrived whole in one frame.
fn finish_single(header: FrameHeader, payload: &mut [u8]) -> Result<Message<'_>, ProtocolError> {
    if let Some(key) = header.mask() {
        apply_mask(payload, key, 0);
    }
    let kind = kind_of(header.opcode);
    if kind == MessageKind::Text && std::str::from_utf8(payload).is_err() {
        return Err(ProtocolError::InvalidUtf8);
    }
    Ok(Message::validated(kind, Cow::Borrowed(payload)))
}
