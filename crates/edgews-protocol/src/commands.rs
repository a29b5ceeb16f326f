//! The commands of [`Connection`]: sending messages, pings and closes, and
//! answering the opening handshake.

use super::close::{truncate_reason, CloseCode};
use super::connection::{Connection, Handshake, Outgoing, Role, State};
use super::error::{HandshakeError, UsageError};
use super::frame::{encode_frame, encode_header, OpCode};
use super::http::write_response;
use super::message::Message;
use crate::deflate::{Compression, PerMessageDeflate};
use std::cell::RefCell;
use std::time::Instant;

impl Connection {
    /// Sends a text message (§5.6).
    pub fn send_text(&mut self, text: &str, out: &mut Vec<u8>) -> Result<(), UsageError> {
        self.send_data(OpCode::Text, text.as_bytes(), out)
    }

    /// Sends a binary message (§5.6).
    pub fn send_binary(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), UsageError> {
        self.send_data(OpCode::Binary, data, out)
    }

    /// Sends a message of either kind; text must be valid UTF-8.
    pub fn send(
        &mut self,
        kind: super::MessageKind,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), UsageError> {
        self.send_message(&Message::new(kind, data)?, out)
    }

    /// Sends a [`Message`]: one received (an echo, a relay) or made with
    /// [`Message::text`] or [`Message::binary`]. Its text is valid by
    /// construction, so it is not checked again.
    #[inline]
    pub fn send_message(
        &mut self,
        message: &Message<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), UsageError> {
        self.send_data(message.kind().into(), message.as_bytes(), out)
    }

    /// [`send_message`](Connection::send_message), choosing whether to
    /// compress this one message when the connection negotiated
    /// permessage-deflate (otherwise `choice` changes nothing).
    pub fn send_message_with(
        &mut self,
        message: &Message<'_>,
        choice: Compression,
        out: &mut Vec<u8>,
    ) -> Result<(), UsageError> {
        self.check_data()?;
        let data = message.as_bytes();
        let Some(deflate) = self
            .deflate
            .as_mut()
            .filter(|d| d.compresses(data.len(), choice))
        else {
            self.write_frame(true, message.kind().into(), data, out);
            return Ok(());
        };
        let mut payload = PAYLOAD.with(RefCell::take);
        payload.clear();
        deflate.compress(data, &mut payload);
        let at = out.len();
        self.write_frame(true, message.kind().into(), &payload, out);
        out[at] |= RSV1_BIT; // RFC 7692 §6: "the message is compressed"
        if payload.capacity() <= PAYLOAD_KEEP {
            PAYLOAD.with(|cell| cell.replace(payload));
        }
        Ok(())
    }

    /// Whether a message of `len` bytes would go out compressed
    /// ([`Compression::Auto`]). A caller that sends payloads itself after
    /// [`send_message_header`](Connection::send_message_header) can use
    /// this to prefer [`send_message`](Connection::send_message) then.
    #[inline]
    pub fn would_compress(&self, len: usize) -> bool {
        self.deflate
            .as_ref()
            .is_some_and(|d| d.compresses(len, Compression::Auto))
    }

    /// Appends only the frame header of a whole message carrying `data`,
    /// for a caller that sends `data` itself right after it (from its read
    /// buffer with vectored I/O, say, instead of copying it into `out`).
    /// The checks are [`send`](Connection::send)'s. Returns the key the
    /// caller must mask `data` with when sending it: `Some` for a client
    /// (§5.3), `None` for a server, whose payload goes out as it is.
    pub fn send_header(
        &mut self,
        kind: super::MessageKind,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<[u8; 4]>, UsageError> {
        self.send_message_header(&Message::new(kind, data)?, out)
    }

    /// [`send_header`](Connection::send_header) for a [`Message`], whose
    /// text needs no second check. The message goes out uncompressed, even
    /// on a connection with permessage-deflate (RFC 7692 §6 allows that
    /// for any message).
    pub fn send_message_header(
        &mut self,
        message: &Message<'_>,
        out: &mut Vec<u8>,
    ) -> Result<Option<[u8; 4]>, UsageError> {
        self.check_data()?;
        let mask = self.mask_key();
        let len = message.as_bytes().len() as u64;
        encode_header(out, true, message.kind().into(), mask, len);
        Ok(mask)
    }

    /// Sends one fragment of a message (§5.4): the first with `Text` or
    /// `Binary`, the rest with `Continuation`, the last with `fin` set.
    pub fn send_fragment(
        &mut self,
        opcode: OpCode,
        fin: bool,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), UsageError> {
        self.check_open()?;
        // §5.4: a message's fragments are a first frame, then continuations,
        // with no other data frame between them
        let mut state = match (opcode, self.sending.take()) {
            (OpCode::Text | OpCode::Binary, None) => Box::new(Outgoing {
                utf8: (opcode == OpCode::Text).then(super::utf8::Utf8Validator::new),
            }),
            (OpCode::Continuation, Some(state)) => state,
            (OpCode::Continuation, None) => {
                return Err(UsageError::Fragmentation(
                    "no fragmented message in progress",
                ))
            }
            (_, Some(state)) if !opcode.is_control() => {
                self.sending = Some(state);
                return Err(UsageError::Fragmentation(
                    "a fragmented message is in progress",
                ));
            }
            (_, state) => {
                self.sending = state;
                return Err(UsageError::Fragmentation(
                    "control frames cannot be fragmented",
                ));
            }
        };
        if let Some(utf8) = state.utf8.as_mut() {
            let checked = utf8
                .feed(data)
                .and_then(|()| if fin { utf8.finish() } else { Ok(()) });
            if checked.is_err() {
                self.sending = Some(state);
                return Err(UsageError::InvalidUtf8);
            }
        }
        if !fin {
            self.sending = Some(state);
        }
        self.write_frame(fin, opcode, data, out);
        Ok(())
    }

    /// Sends a ping (§5.5.2); at most 125 bytes of payload.
    pub fn send_ping(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), UsageError> {
        self.send_control(OpCode::Ping, payload, out)
    }

    /// Sends an unsolicited pong (§5.5.3), e.g. as a one-way heartbeat.
    pub fn send_pong(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), UsageError> {
        self.send_control(OpCode::Pong, payload, out)
    }

    /// Starts the closing handshake (§7.1.2): sends a close frame with
    /// `code` and `reason` (at most 123 bytes) and waits, up to
    /// `close_timeout` from `now`, for the peer's close.
    pub fn close(
        &mut self,
        now: Instant,
        code: CloseCode,
        reason: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), UsageError> {
        if !code.is_valid_on_wire() {
            return Err(UsageError::InvalidCloseCode(code.0));
        }
        if reason.len() > super::close::MAX_REASON_LEN {
            return Err(UsageError::CloseReasonTooLong);
        }
        self.check_open()?;
        self.write_close(code, reason, out);
        self.state = State::Closing;
        self.timer_start = now;
        // from now on data is discarded, including a message half received
        if let Some(deflate) = self.deflate.as_mut() {
            deflate.release();
        }
        if let Some(partial) = self.partial.as_mut() {
            partial.message = None;
            if let Some(frame) = partial.reading.as_mut() {
                frame.discard = true;
            }
        }
        Ok(())
    }

    fn check_open(&self) -> Result<(), UsageError> {
        match self.state {
            State::Open => Ok(()),
            State::Closing | State::Closed if self.handshake.is_none() => {
                Err(UsageError::AlreadyClosing)
            }
            _ => Err(UsageError::NotOpen),
        }
    }

    #[inline]
    fn send_data(
        &mut self,
        opcode: OpCode,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), UsageError> {
        if self.deflate.is_some() {
            return self.send_data_deflate(opcode, data, out);
        }
        self.check_data()?;
        self.write_frame(true, opcode, data, out);
        Ok(())
    }

    /// [`send_data`](Connection::send_data) on a connection with
    /// permessage-deflate; kept out of line so that the plain path stays
    /// as small as it was.
    #[inline(never)]
    fn send_data_deflate(
        &mut self,
        opcode: OpCode,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), UsageError> {
        let message = match opcode {
            // text was checked by every caller
            OpCode::Text => Message::validated(super::MessageKind::Text, data.into()),
            _ => Message::binary(data),
        };
        self.send_message_with(&message, Compression::Auto, out)
    }

    /// A whole data message may be sent now.
    #[inline]
    fn check_data(&self) -> Result<(), UsageError> {
        self.check_open()?;
        if self.sending.is_some() {
            return Err(UsageError::Fragmentation(
                "a fragmented message is in progress",
            ));
        }
        Ok(())
    }

    fn send_control(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), UsageError> {
        if payload.len() > 125 {
            return Err(UsageError::ControlPayloadTooLong);
        }
        self.check_open()?;
        self.write_frame(true, opcode, payload, out);
        Ok(())
    }

    /// Encodes one frame, masked with a fresh key in the client role (§5.3:
    /// "The masking key MUST be derived from a strong source of entropy").
    #[inline]
    pub(crate) fn write_frame(&self, fin: bool, opcode: OpCode, payload: &[u8], out: &mut Vec<u8>) {
        encode_frame(out, fin, opcode, self.mask_key(), payload);
    }

    /// §5.3: a client masks every frame with a fresh, unpredictable key; a
    /// server never masks. Inlined so that a server's sends do not pay a
    /// call to learn that.
    #[inline]
    fn mask_key(&self) -> Option<[u8; 4]> {
        match self.role {
            Role::Client => Some(fresh_mask_key()),
            Role::Server => None,
        }
    }

    /// Encodes a close frame (§5.5.1: code in network order, then reason).
    pub(crate) fn write_close(&self, code: CloseCode, reason: &str, out: &mut Vec<u8>) {
        let reason = truncate_reason(reason);
        let mut payload = [0u8; 125];
        payload[..2].copy_from_slice(&code.0.to_be_bytes());
        payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
        self.write_frame(true, OpCode::Close, &payload[..2 + reason.len()], out);
    }

    /// Server: answers the pending upgrade request with `101 Switching
    /// Protocols`; the connection is open.
    pub fn accept(&mut self, out: &mut Vec<u8>) -> Result<(), UsageError> {
        let hs = self.pending_request()?;
        let accept = hs.accept.ok_or(UsageError::NoPendingRequest)?;
        let subprotocol = hs.subprotocol.and_then(|i| self.config.subprotocols.get(i));
        let deflate = hs.deflate.as_ref();
        let extensions = deflate.map(|(_, answer)| answer.as_str());
        super::handshake::write_accept(out, &accept, subprotocol.map(String::as_str), extensions);
        if let (Some((params, _)), Some(config)) = (deflate, self.config.deflate.as_ref()) {
            let state = PerMessageDeflate::new(*params, Role::Server, config);
            self.deflate = Some(Box::new(state));
        }
        self.handshake = None;
        self.state = State::Open;
        Ok(())
    }

    /// Server, in front of an upstream (a proxy, see [`crate::upstream`]):
    /// answers the pending upgrade with `101 Switching Protocols` carrying
    /// the subprotocol and extensions the upstream agreed to, as they are
    /// (§4.2.2 item 5). The connection is open; its frames are relayed by
    /// the caller (see [`crate::relay`]), not read or written by this
    /// engine, which negotiated nothing itself.
    pub fn accept_relayed(
        &mut self,
        subprotocol: Option<&str>,
        extensions: Option<&str>,
        out: &mut Vec<u8>,
    ) -> Result<(), UsageError> {
        let hs = self.pending_request()?;
        let accept = hs.accept.ok_or(UsageError::NoPendingRequest)?;
        super::handshake::write_accept(out, &accept, subprotocol, extensions);
        self.handshake = None;
        self.state = State::Open;
        Ok(())
    }

    /// Server: refuses the pending request with the error's HTTP status.
    pub fn reject(&mut self, error: &HandshakeError, out: &mut Vec<u8>) -> Result<(), UsageError> {
        self.pending_request()?;
        super::handshake::write_rejection(out, error);
        self.state = State::Closed;
        Ok(())
    }

    /// Server: answers the pending request with a plain HTTP response
    /// (`extra` headers as `Name: value`), then the connection is closed.
    pub fn respond(
        &mut self,
        status: u16,
        content_type: &str,
        extra: &[&str],
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), UsageError> {
        self.pending_request()?;
        write_response(out, status, content_type, extra, body);
        self.state = State::Closed;
        Ok(())
    }

    fn pending_request(&self) -> Result<&Handshake, UsageError> {
        match &self.handshake {
            Some(hs) if hs.awaiting_answer && self.state == State::Connecting => Ok(hs),
            _ => Err(UsageError::NoPendingRequest),
        }
    }
}

/// RSV1 in a frame's first byte (RFC 6455 §5.2).
const RSV1_BIT: u8 = 0x40;

thread_local! {
    /// Where a message is compressed before its frame is encoded.
    static PAYLOAD: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The largest compression buffer a thread keeps between messages.
const PAYLOAD_KEEP: usize = 256 << 10;

/// A masking key from the thread's cryptographically secure generator.
fn fresh_mask_key() -> [u8; 4] {
    rand::random::<[u8; 4]>()
}
