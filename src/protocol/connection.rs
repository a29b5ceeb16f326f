//! The per-connection state machine (RFC 6455 §4–§7), for both roles.
//!
//! A [`Connection`] does no I/O. The caller feeds it what arrived and hands
//! it a buffer to append what must be sent:
//!
//! - getters: [`state`](Connection::state), [`role`](Connection::role),
//!   [`is_closed`](Connection::is_closed), [`wants_read`](Connection::wants_read);
//! - inputs: [`handle_input`](Connection::handle_input),
//!   [`handle_eof`](Connection::handle_eof),
//!   [`handle_timeout`](Connection::handle_timeout);
//! - commands: [`send_text`](Connection::send_text),
//!   [`send_binary`](Connection::send_binary), [`send_ping`](Connection::send_ping),
//!   [`close`](Connection::close), and during the handshake
//!   [`accept`](Connection::accept), [`reject`](Connection::reject),
//!   [`respond`](Connection::respond);
//! - outputs: the [`Event`] each input returns, the bytes appended to `out`,
//!   and [`poll_timeout`](Connection::poll_timeout).
//!
//! Events borrow the caller's input buffer, so a message that arrived whole
//! reaches the application without a copy; that is why an input returns at
//! most one event and is called again with the rest, instead of queueing
//! events inside. Bytes to send go straight into the caller's `out`, in the
//! order the protocol needs them (a pong after the echo of the message
//! before its ping, a close after everything sent before it).
//!
//! A peer's violation never comes back as `Err`: the engine fails the
//! connection (§7.1.7), appends the close frame, and returns
//! [`Event::Closed`] with the code. `Err` is only for the caller's misuse.

use super::accept::ACCEPT_LEN;
use super::close::{truncate_reason, CloseCode};
use super::error::{HandshakeError, ProtocolError, ResponseError, UsageError};
use super::frame::{encode_frame, OpCode};
use super::handshake::Request;
use super::http::{write_response, HeadScanner};
use super::message::{Assembly, Message};
use crate::config::ProtocolConfig;
use std::sync::Arc;
use std::time::Instant;

/// Which end of the connection this engine plays (§5.1: clients mask, servers do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends the upgrade request; masks every frame it sends.
    Client,
    /// Answers the upgrade request; never masks.
    Server,
}

/// The connection states RFC 6455 names (§4.1 `CONNECTING`, §4.2.2 `OPEN`,
/// §7.1.3 `CLOSING`, §7.1.4 `CLOSED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The opening handshake is in progress.
    Connecting,
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's.
    Closing,
    /// Nothing more will be sent or received; the transport may be closed
    /// once everything appended to `out` has been written.
    Closed,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseCause {
    /// The peer started the closing handshake; we answered it.
    Peer,
    /// We started the closing handshake and the peer answered it.
    Local,
    /// The peer broke the protocol; we failed the connection (§7.1.7).
    Failed(ProtocolError),
    /// The peer did not answer a keep-alive ping in time (closed with 1011).
    PingTimeout,
    /// The peer did not answer our close frame in time.
    CloseTimeout,
    /// The transport ended without a closing handshake.
    Eof,
}

/// The end of a connection: reported exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The code that describes the close: the peer's for a close it sent or
    /// answered ([`CloseCode::NO_STATUS`] if it gave none), ours for a
    /// failure, [`CloseCode::ABNORMAL`] when no close frame arrived.
    pub code: CloseCode,
    /// The reason that came with the code.
    pub reason: String,
    /// What happened.
    pub cause: CloseCause,
}

/// What an input produced.
#[derive(Debug)]
pub enum Event<'a> {
    /// Server: a valid upgrade request. Answer with
    /// [`Connection::accept`] or [`Connection::reject`].
    Upgrade(Request<'a>),
    /// Server: a plain HTTP request. Answer with [`Connection::respond`].
    HttpRequest(Request<'a>),
    /// Server: the request was refused; the HTTP error response has been
    /// appended to `out`, and the connection is closed.
    Rejected(HandshakeError),
    /// Client: the server accepted the upgrade.
    Connected {
        /// The subprotocol the server chose, if any.
        subprotocol: Option<String>,
    },
    /// Client: the server's answer was not a valid upgrade; closed.
    ConnectFailed(ResponseError),
    /// A complete message.
    Message(Message<'a>),
    /// A ping; the pong has already been appended to `out`.
    Ping(&'a [u8]),
    /// A pong (solicited or not).
    Pong(&'a [u8]),
    /// The connection is closed; no more events will come.
    Closed(Closed),
}

/// A fragmented message being sent (§5.4).
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// For text, checks the fragments as they go; `None` for binary.
    utf8: Option<super::utf8::Utf8Validator>,
}

/// State of the opening handshake.
#[derive(Debug)]
pub(crate) struct Handshake {
    pub scanner: HeadScanner,
    pub started: Instant,
    /// Server: the request was handed to the application and awaits its answer.
    pub awaiting_answer: bool,
    /// Server: the accept value, when the request was a valid upgrade.
    pub accept: Option<[u8; ACCEPT_LEN]>,
    /// Server: index of the chosen subprotocol in the configured list.
    pub subprotocol: Option<usize>,
    /// Client: the key we sent and the subprotocols we offered.
    pub key: [u8; 24],
    pub offered: Vec<String>,
}

impl Handshake {
    /// A handshake started at `now`; `key` and `offered` are the client's.
    fn new(now: Instant, key: [u8; 24], offered: Vec<String>) -> Self {
        Handshake {
            scanner: HeadScanner::default(),
            started: now,
            awaiting_answer: false,
            accept: None,
            subprotocol: None,
            key,
            offered,
        }
    }
}

/// A data frame whose payload is arriving across several inputs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InFrame {
    pub remaining: u64,
    pub mask: Option<[u8; 4]>,
    /// Payload bytes already read, for the mask's offset.
    pub offset: u64,
    pub fin: bool,
    /// The payload is dropped (we sent a close and wait for the peer's).
    pub discard: bool,
}

/// The middle of a message.
#[derive(Debug, Default)]
pub(crate) struct Partial {
    /// The data frame whose payload is being read, if it spans inputs.
    pub reading: Option<InFrame>,
    /// The message being assembled from fragments, if any.
    pub message: Option<Assembly>,
}

/// One WebSocket connection's protocol state, without I/O.
#[derive(Debug)]
pub struct Connection {
    pub(crate) config: Arc<ProtocolConfig>,
    pub(crate) role: Role,
    pub(crate) state: State,
    /// The opening handshake; `None` once it is over.
    pub(crate) handshake: Option<Box<Handshake>>,
    /// Read state that exists only in the middle of a message (a payload
    /// spanning inputs, fragments being assembled); boxed so that a
    /// connection between messages carries none of it.
    pub(crate) partial: Option<Box<Partial>>,
    /// When input last arrived (the caller's clock, passed in).
    pub(crate) last_activity: Instant,
    /// When the pending timer started: our keep-alive ping, or our close.
    pub(crate) timer_start: Instant,
    /// A keep-alive ping was sent and nothing has arrived since.
    pub(crate) awaiting_pong: bool,
    /// A fragmented message we are sending: its kind, and for text the
    /// UTF-8 state carried between fragments. `None` between messages.
    pub(crate) sending: Option<Box<Outgoing>>,
}

impl Connection {
    /// A server-side connection, waiting for the client's upgrade request.
    pub fn server(now: Instant, config: Arc<ProtocolConfig>) -> Connection {
        let handshake = Handshake::new(now, [0; 24], Vec::new());
        Connection::new(
            now,
            config,
            Role::Server,
            State::Connecting,
            Some(handshake),
        )
    }

    /// A client-side connection; appends the upgrade request for `url` to
    /// `out`. `extra_headers` are `Name: value` lines (no CRLF).
    pub fn client(
        now: Instant,
        config: Arc<ProtocolConfig>,
        url: &super::WsUrl,
        subprotocols: Vec<String>,
        extra_headers: &[String],
        out: &mut Vec<u8>,
    ) -> Connection {
        let key = super::accept::generate_key();
        super::client_handshake::write_request(out, url, &key, &subprotocols, extra_headers);
        let handshake = Handshake::new(now, key, subprotocols);
        Connection::new(
            now,
            config,
            Role::Client,
            State::Connecting,
            Some(handshake),
        )
    }

    /// A connection whose handshake happened elsewhere, already open.
    pub fn open(now: Instant, config: Arc<ProtocolConfig>, role: Role) -> Connection {
        Connection::new(now, config, role, State::Open, None)
    }

    fn new(
        now: Instant,
        config: Arc<ProtocolConfig>,
        role: Role,
        state: State,
        hs: Option<Handshake>,
    ) -> Self {
        Connection {
            config,
            role,
            state,
            handshake: hs.map(Box::new),
            partial: None,
            last_activity: now,
            timer_start: now,
            awaiting_pong: false,
            sending: None,
        }
    }

    /// The RFC state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The limits this connection enforces.
    pub fn config(&self) -> &ProtocolConfig {
        &self.config
    }

    /// Whether the connection is over: once `out` is written, close the transport.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether input is useful now (false while a request awaits the
    /// application's answer, and once closed).
    pub fn wants_read(&self) -> bool {
        match self.state {
            State::Closed => false,
            State::Connecting => !self.handshake.as_ref().is_some_and(|h| h.awaiting_answer),
            State::Open | State::Closing => true,
        }
    }

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
        match kind {
            super::MessageKind::Text => {
                let text = std::str::from_utf8(data).map_err(|_| UsageError::InvalidUtf8)?;
                self.send_text(text, out)
            }
            super::MessageKind::Binary => self.send_binary(data, out),
        }
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

    fn send_data(
        &mut self,
        opcode: OpCode,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), UsageError> {
        self.check_open()?;
        if self.sending.is_some() {
            return Err(UsageError::Fragmentation(
                "a fragmented message is in progress",
            ));
        }
        self.write_frame(true, opcode, data, out);
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
    pub(crate) fn write_frame(&self, fin: bool, opcode: OpCode, payload: &[u8], out: &mut Vec<u8>) {
        let mask = match self.role {
            Role::Client => Some(rand::random::<[u8; 4]>()),
            Role::Server => None,
        };
        encode_frame(out, fin, opcode, mask, payload);
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
        super::handshake::write_accept(out, &accept, subprotocol.map(String::as_str));
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

    /// When [`handle_timeout`](Connection::handle_timeout) should next be
    /// called: the handshake deadline, the keep-alive ping or its pong
    /// deadline, or the close deadline. `None` when no timer runs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let c = &self.config;
        match self.state {
            State::Connecting => self
                .handshake
                .as_ref()
                .map(|h| h.started + c.handshake_timeout),
            State::Open => c.ping_interval.map(|interval| {
                if self.awaiting_pong {
                    self.timer_start + c.pong_timeout
                } else {
                    self.last_activity + interval
                }
            }),
            State::Closing => Some(self.timer_start + c.close_timeout),
            State::Closed => None,
        }
    }

    /// Acts on timers due at `now`: fails a handshake that took too long
    /// (a server answers 408), sends a keep-alive ping after silence, fails
    /// the connection with 1011 when that ping goes unanswered, and gives up
    /// on a closing handshake the peer does not finish. Calling it early is
    /// harmless: traffic since the timer was set makes it do nothing.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<u8>) -> Option<Event<'static>> {
        if self.poll_timeout().is_none_or(|due| now < due) {
            return None;
        }
        match self.state {
            State::Connecting => {
                self.state = State::Closed;
                Some(match self.role {
                    Role::Server => {
                        let hs = self.handshake.as_ref().is_some_and(|h| !h.awaiting_answer);
                        if hs {
                            super::handshake::write_rejection(out, &HandshakeError::Timeout);
                        }
                        Event::Rejected(HandshakeError::Timeout)
                    }
                    Role::Client => Event::ConnectFailed(ResponseError::Timeout),
                })
            }
            State::Open if self.awaiting_pong => {
                let code = CloseCode::INTERNAL_ERROR;
                self.write_close(code, "ping timeout", out);
                Some(self.finish(code, "ping timeout", CloseCause::PingTimeout))
            }
            State::Open => {
                self.write_frame(true, OpCode::Ping, b"", out);
                self.awaiting_pong = true;
                self.timer_start = now;
                None
            }
            State::Closing => Some(self.finish(CloseCode::ABNORMAL, "", CloseCause::CloseTimeout)),
            State::Closed => None,
        }
    }

    /// The transport ended (the peer closed TCP, or it broke).
    pub fn handle_eof(&mut self, _now: Instant) -> Option<Event<'static>> {
        match self.state {
            State::Closed => None,
            State::Connecting => {
                self.state = State::Closed;
                Some(match self.role {
                    Role::Server => Event::Rejected(HandshakeError::Malformed(
                        "connection closed during handshake",
                    )),
                    Role::Client => Event::ConnectFailed(ResponseError::Malformed(
                        "connection closed during handshake",
                    )),
                })
            }
            State::Open | State::Closing => {
                Some(self.finish(CloseCode::ABNORMAL, "", CloseCause::Eof))
            }
        }
    }

    /// Enters `Closed` and builds the one `Closed` event.
    pub(crate) fn finish(
        &mut self,
        code: CloseCode,
        reason: &str,
        cause: CloseCause,
    ) -> Event<'static> {
        self.state = State::Closed;
        self.partial = None;
        Event::Closed(Closed {
            code,
            reason: reason.to_string(),
            cause,
        })
    }

    /// Fails the connection (§7.1.7): sends the close frame the error
    /// deserves, unless ours was already sent, and closes.
    pub(crate) fn fail(&mut self, error: ProtocolError, out: &mut Vec<u8>) -> Event<'static> {
        let code = error.close_code();
        let reason = error.to_string();
        if self.state == State::Open {
            self.write_close(code, &reason, out);
        }
        self.finish(code, &reason, CloseCause::Failed(error))
    }
}
