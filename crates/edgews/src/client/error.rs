//! Client errors.

use crate::protocol::client_handshake::UrlError;
use crate::protocol::{Closed, ResponseError, UsageError};
use std::fmt;
use std::io;

/// Why a client operation failed.
#[derive(Debug)]
pub enum ClientError {
    /// The URL is not a usable `ws://` or `wss://` URL.
    Url(UrlError),
    /// The network failed.
    Io(io::Error),
    /// TLS failed: no trust anchors, or the server's certificate was not
    /// trusted, expired, or for another name.
    Tls(crate::tls::TlsError),
    /// The server's answer to the upgrade was not valid.
    Handshake(ResponseError),
    /// The call is not allowed now (e.g. sending after close).
    Usage(UsageError),
    /// The connection was closed, with this code and reason.
    Closed(Closed),
    /// The connection had already ended.
    AlreadyClosed,
    /// Nothing arrived within the read timeout.
    Timeout,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Url(e) => e.fmt(f),
            ClientError::Io(e) => write!(f, "network error: {e}"),
            ClientError::Tls(e) => e.fmt(f),
            ClientError::Handshake(e) => write!(f, "handshake failed: {e}"),
            ClientError::Usage(e) => e.fmt(f),
            ClientError::Closed(c) => write!(f, "connection closed with {} {:?}", c.code, c.reason),
            ClientError::AlreadyClosed => f.write_str("connection already closed"),
            ClientError::Timeout => f.write_str("timed out"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

impl From<UrlError> for ClientError {
    fn from(e: UrlError) -> Self {
        ClientError::Url(e)
    }
}

impl From<UsageError> for ClientError {
    fn from(e: UsageError) -> Self {
        ClientError::Usage(e)
    }
}
