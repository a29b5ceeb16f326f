//! The sans-I/O RFC 6455 engine: no sockets, no clock reads, no threads.
//! Time comes in as `now: Instant`; buffers belong to the caller.
//!
//! [`Connection`] is the entry point; the other modules are its parts and
//! are public for the fuzzers, benchmarks and anyone building their own
//! transport.

pub mod accept;
pub mod client_handshake;
pub mod close;
mod commands;
mod connection;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod http;
pub mod mask;
pub mod message;
mod read;
mod timers;
pub mod utf8;

pub use client_handshake::WsUrl;
pub use close::CloseCode;
pub use connection::{CloseCause, Closed, Connection, Event, Role, State};
pub use error::{HandshakeError, ProtocolError, ResponseError, UsageError};
pub use frame::{FrameHeader, OpCode};
pub use handshake::{Extension, OriginPolicy, Request};
pub use message::{Message, MessageKind};

#[cfg(test)]
mod tests;
