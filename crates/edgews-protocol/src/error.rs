//! Errors, one type per party at fault (the rustls habit):
//!
//! - [`ProtocolError`]: the peer broke RFC 6455 after the handshake. It maps
//!   to the close code that goes on the wire ([`ProtocolError::close_code`]).
//! - [`HandshakeError`]: a client's upgrade request was refused. It maps to
//!   the HTTP status that answers it ([`HandshakeError::status`]).
//! - [`ResponseError`]: a server's answer to our client's upgrade was wrong.
//! - [`UsageError`]: the application called the engine at the wrong time.

use super::close::CloseCode;
use std::fmt;

/// A peer's violation of RFC 6455, detected after the opening handshake.
/// The engine fails the connection with [`ProtocolError::close_code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// RSV1–3 set without an extension that defines them (§5.2).
    ReservedBits(u8),
    /// Opcodes 3–7 and 11–15 are reserved (§5.2).
    ReservedOpcode(u8),
    /// A control frame with FIN clear (§5.5).
    FragmentedControlFrame,
    /// A control frame payload over 125 bytes (§5.5).
    ControlFrameTooLong(u64),
    /// A 64-bit payload length with its most significant bit set (§5.2).
    LengthMsbSet,
    /// A payload length not in its minimal encoding (§5.2).
    NonMinimalLength,
    /// A client sent an unmasked frame (§5.1).
    UnmaskedFrame,
    /// A server sent a masked frame (§5.1).
    MaskedFrame,
    /// A continuation frame with no message in progress (§5.4).
    UnexpectedContinuation,
    /// A new data frame while a fragmented message was in progress (§5.4).
    ExpectedContinuation,
    /// A frame longer than `max_frame_size` (§10.4).
    FrameTooLarge {
        /// The length the frame header announced.
        len: u64,
        /// The configured limit.
        max: u64,
    },
    /// A message longer than `max_message_size` (§10.4).
    MessageTooLarge {
        /// The message length so far, with the frame that crossed the limit.
        len: u64,
        /// The configured limit.
        max: u64,
    },
    /// A message in more than `max_fragments` frames (§10.4).
    TooManyFragments {
        /// The configured limit.
        max: u32,
    },
    /// A text message that is not UTF-8 (§8.1).
    InvalidUtf8,
    /// A close frame with a one-byte payload (§5.5.1).
    CloseFrameTooShort,
    /// A close code not allowed on the wire (§7.4).
    InvalidCloseCode(u16),
    /// A close reason that is not UTF-8 (§5.5.1).
    InvalidCloseReason,
    /// RSV1 on a control or continuation frame: RFC 7692 §6 lets
    /// permessage-deflate mark only the first frame of a data message.
    CompressedBitMisplaced,
    /// A compressed message that is not valid DEFLATE data (RFC 7692 §6.2).
    BadCompressedData,
    /// This endpoint could not get memory for a decompressor.
    CompressorUnavailable,
}

impl ProtocolError {
    /// The close code this error is answered with (§7.4.1).
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::FrameTooLarge { .. }
            | ProtocolError::MessageTooLarge { .. }
            | ProtocolError::TooManyFragments { .. } => CloseCode::MESSAGE_TOO_BIG,
            ProtocolError::InvalidUtf8
            | ProtocolError::InvalidCloseReason
            | ProtocolError::BadCompressedData => CloseCode::INVALID_PAYLOAD,
            ProtocolError::CompressorUnavailable => CloseCode::INTERNAL_ERROR,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedBits(bits) => {
                write!(f, "reserved bits {bits:#x} set without an extension")
            }
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::FragmentedControlFrame => f.write_str("fragmented control frame"),
            ProtocolError::ControlFrameTooLong(len) => {
                write!(f, "control frame of {len} bytes (at most 125)")
            }
            ProtocolError::LengthMsbSet => f.write_str("64-bit length with its top bit set"),
            ProtocolError::NonMinimalLength => f.write_str("length not minimally encoded"),
            ProtocolError::UnmaskedFrame => f.write_str("unmasked frame from a client"),
            ProtocolError::MaskedFrame => f.write_str("masked frame from a server"),
            ProtocolError::UnexpectedContinuation => {
                f.write_str("continuation frame with no message in progress")
            }
            ProtocolError::ExpectedContinuation => {
                f.write_str("new data frame inside a fragmented message")
            }
            ProtocolError::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the limit of {max}")
            }
            ProtocolError::MessageTooLarge { len, max } => {
                write!(f, "message of {len}+ bytes exceeds the limit of {max}")
            }
            ProtocolError::TooManyFragments { max } => {
                write!(f, "message in more than {max} fragments")
            }
            ProtocolError::InvalidUtf8 => f.write_str("text message is not valid UTF-8"),
            ProtocolError::CloseFrameTooShort => f.write_str("close frame with a 1-byte payload"),
            ProtocolError::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            ProtocolError::InvalidCloseReason => f.write_str("close reason is not valid UTF-8"),
            ProtocolError::CompressedBitMisplaced => {
                f.write_str("RSV1 on a control or continuation frame")
            }
            ProtocolError::BadCompressedData => {
                f.write_str("compressed message is not valid DEFLATE")
            }
            ProtocolError::CompressorUnavailable => f.write_str("no memory for a decompressor"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Why a client's opening handshake was refused (RFC 6455 §4.2.1, §4.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The head is not valid HTTP/1.1 (400).
    Malformed(&'static str),
    /// The head is longer than `max_head_size` (431).
    HeadTooLarge,
    /// The head has more than `max_headers` headers (431).
    TooManyHeaders,
    /// The method is not GET (405).
    MethodNotAllowed,
    /// The request is not HTTP/1.1 or later (400; §4.1 requires 1.1).
    HttpVersion,
    /// A required header is missing or wrong (400).
    BadHeader(&'static str),
    /// `Sec-WebSocket-Key` does not base64-decode to 16 bytes (400).
    BadKey,
    /// `Sec-WebSocket-Version` is not 13 (426, §4.4).
    UnsupportedVersion,
    /// The `Origin` is not allowed (403, §10.2).
    OriginRefused,
    /// A plain HTTP request, not an upgrade (426); the default answer of
    /// `HttpResponse::default_for`.
    NotUpgrade,
    /// The server is at `max_connections` (503).
    ServerFull,
    /// The handshake did not complete within `handshake_timeout` (408).
    Timeout,
    /// The `Host` is not among the configured allowed hosts (403).
    HostNotAllowed,
    /// Too many connections or upgrades from one client (429), to be tried
    /// again after this many seconds (sent as `Retry-After`).
    TooManyRequests {
        /// Seconds until a retry may succeed, at least 1.
        retry_after_secs: u32,
    },
    /// The application refused the upgrade with this status and reason.
    Refused(u16, String),
}

impl HandshakeError {
    /// Appends the complete HTTP response that refuses a request with this
    /// error (status, `Connection: close`, the reason as the body; 426
    /// adds `Sec-WebSocket-Version: 13`, 429 `Retry-After`): for a caller
    /// that must answer a request no engine read, e.g. a server out of
    /// descriptors.
    pub fn write_response(&self, out: &mut Vec<u8>) {
        super::handshake::write_rejection(out, self);
    }

    /// The HTTP status that answers this error.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::Malformed(_)
            | HandshakeError::HttpVersion
            | HandshakeError::BadHeader(_)
            | HandshakeError::BadKey => 400,
            HandshakeError::HeadTooLarge | HandshakeError::TooManyHeaders => 431,
            HandshakeError::MethodNotAllowed => 405,
            HandshakeError::UnsupportedVersion | HandshakeError::NotUpgrade => 426,
            HandshakeError::OriginRefused | HandshakeError::HostNotAllowed => 403,
            HandshakeError::TooManyRequests { .. } => 429,
            HandshakeError::ServerFull => 503,
            HandshakeError::Timeout => 408,
            HandshakeError::Refused(status, _) => *status,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Malformed(why) => write!(f, "malformed request: {why}"),
            HandshakeError::HeadTooLarge => f.write_str("request head too large"),
            HandshakeError::TooManyHeaders => f.write_str("too many request headers"),
            HandshakeError::MethodNotAllowed => f.write_str("method not allowed: use GET"),
            HandshakeError::HttpVersion => f.write_str("HTTP/1.1 or later is required"),
            HandshakeError::BadHeader(why) => f.write_str(why),
            HandshakeError::BadKey => f.write_str("Sec-WebSocket-Key must be 16 bytes in base64"),
            HandshakeError::UnsupportedVersion => {
                f.write_str("unsupported WebSocket version: use 13")
            }
            HandshakeError::OriginRefused => f.write_str("origin not allowed"),
            HandshakeError::HostNotAllowed => f.write_str("host not allowed"),
            HandshakeError::TooManyRequests { .. } => {
                f.write_str("too many connections or upgrades from your address")
            }
            HandshakeError::NotUpgrade => f.write_str("this is a WebSocket endpoint"),
            HandshakeError::ServerFull => f.write_str("server at its connection limit"),
            HandshakeError::Timeout => f.write_str("handshake timed out"),
            HandshakeError::Refused(_, reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// Why a server's answer to our client's upgrade request was refused (§4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// The head is not valid HTTP or is too large.
    Malformed(&'static str),
    /// The status is not 101; carries the status code.
    Status(u16),
    /// `Upgrade: websocket` or `Connection: Upgrade` is missing.
    NotUpgrade,
    /// `Sec-WebSocket-Accept` does not match our key.
    BadAccept,
    /// The server chose a subprotocol we did not offer.
    UnexpectedSubprotocol(String),
    /// The server answered with an extension we did not offer.
    UnexpectedExtension(String),
    /// The server's permessage-deflate answer breaks RFC 7692 §7.1
    /// (an unknown, duplicated or out-of-range parameter).
    BadExtension(&'static str),
    /// The handshake did not complete within `handshake_timeout`.
    Timeout,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Malformed(why) => write!(f, "malformed response: {why}"),
            ResponseError::Status(s) => write!(f, "server answered {s} instead of 101"),
            ResponseError::NotUpgrade => f.write_str("response lacks Upgrade/Connection headers"),
            ResponseError::BadAccept => f.write_str("Sec-WebSocket-Accept does not match"),
            ResponseError::UnexpectedSubprotocol(p) => {
                write!(f, "server chose subprotocol {p:?}, which we did not offer")
            }
            ResponseError::UnexpectedExtension(e) => {
                write!(f, "server chose extension {e:?}, which we did not offer")
            }
            ResponseError::BadExtension(why) => write!(f, "bad permessage-deflate answer: {why}"),
            ResponseError::Timeout => f.write_str("handshake timed out"),
        }
    }
}

impl std::error::Error for ResponseError {}

/// The application called the engine in a way the protocol does not allow.
/// Nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageError {
    /// Data and pings can only be sent while the connection is open.
    NotOpen,
    /// A close was already sent; nothing more may be sent (§5.5.1).
    AlreadyClosing,
    /// A control frame payload (ping, pong) is over 125 bytes (§5.5).
    ControlPayloadTooLong,
    /// The close code may not be sent (§7.4: 1005, 1006, 1015, reserved).
    InvalidCloseCode(u16),
    /// The close reason is over 123 bytes.
    CloseReasonTooLong,
    /// `accept`/`reject`/`respond` was called with no request waiting.
    NoPendingRequest,
    /// A text message that is not valid UTF-8.
    InvalidUtf8,
    /// Fragments sent out of order (§5.4), or a fragmented control frame.
    Fragmentation(&'static str),
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::NotOpen => f.write_str("connection is not open"),
            UsageError::AlreadyClosing => f.write_str("connection is closing"),
            UsageError::ControlPayloadTooLong => {
                f.write_str("control frame payload over 125 bytes")
            }
            UsageError::InvalidCloseCode(c) => write!(f, "close code {c} may not be sent"),
            UsageError::CloseReasonTooLong => f.write_str("close reason over 123 bytes"),
            UsageError::NoPendingRequest => f.write_str("no upgrade request is waiting"),
            UsageError::InvalidUtf8 => f.write_str("text is not valid UTF-8"),
            UsageError::Fragmentation(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for UsageError {}
