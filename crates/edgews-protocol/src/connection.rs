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
use super::close::CloseCode;
use super::error::{HandshakeError, ProtocolError, ResponseError};
use super::handshake::Request;
use super::http::HeadScanner;
use super::message::{Assembly, Message};
use crate::config::ProtocolConfig;
use crate::deflate::{DeflateParams, PerMessageDeflate};
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
    pub utf8: Option<super::utf8::Utf8Validator>,
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
    /// Server: the permessage-deflate offer we accept, with its answer.
    pub deflate: Option<(DeflateParams, String)>,
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
            deflate: None,
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
    /// permessage-deflate, when negotiated (RFC 7692); dropped at close.
    pub(crate) deflate: Option<Box<PerMessageDeflate>>,
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
        if config.deflate.is_some() {
            crate::deflate::write_offer(out);
        }
        out.extend_from_slice(b"\r\n");
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
            deflate: None,
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

    /// The permessage-deflate parameters in effect, when the handshake
    /// negotiated the extension (RFC 7692).
    pub fn deflate(&self) -> Option<&DeflateParams> {
        self.deflate.as_ref().map(|d| d.params())
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
}
