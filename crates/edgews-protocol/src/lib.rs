//! # edgews-protocol
//!
//! The sans-I/O RFC 6455 engine under the `edgews` server: no sockets, no
//! clock reads, no threads. Bytes go in, events and bytes come out; time
//! comes in as `now: Instant`; buffers belong to the caller. Drive it from
//! anything: a blocking socket, tokio, io_uring, a game loop, a fuzzer.
//!
//! ```text
//!   bytes from the peer ──▶ Connection::handle_input ──▶ Event (Upgrade,
//!                                  │                      Message, Ping,
//!   Connection::send_text / ──▶    │ bytes to write       Closed, …)
//!   send_binary / close ──────────▶└──▶ your `out` buffer ──▶ the peer
//!   Connection::poll_timeout ──▶ when to call handle_timeout(now)
//! ```
//!
//! [`Connection`] is the entry point and [`ProtocolConfig`] its limits;
//! the types at the crate root are the stable surface. The engine's parts
//! (frame codec, masking, incremental UTF-8, HTTP head scanning) are public
//! only for edgews' own reactor, fuzzers and benchmarks: hidden from these
//! docs, and unstable.
//!
//! Using the engine by hand, as a server:
//!
//! ```
//! use edgews_protocol::{Connection, Event, ProtocolConfig};
//! use std::{sync::Arc, time::Instant};
//!
//! let now = Instant::now();
//! let mut conn = Connection::server(now, Arc::new(ProtocolConfig::default()));
//! let mut input = b"GET / HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
//!     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!     Sec-WebSocket-Version: 13\r\n\r\n".to_vec();
//! let mut out = Vec::new();
//! let (used, event) = conn.handle_input(now, &mut input, &mut out);
//! assert!(matches!(event, Some(Event::Upgrade(_))));
//! conn.accept(&mut out).unwrap();
//! assert!(out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
//! assert_eq!(used, input.len());
//! ```
//!
//! `examples/blocking_echo.rs` drives it over a blocking `TcpStream`.
#![deny(unsafe_code)]
// allowed in `mask`, where a benchmark shows it pays, and
// in `deflate::zlib`, zlib's C API (its memory per stream: docs/protocol.md)
#![warn(missing_docs)]

// The stable surface is the re-exports below and `config`. The modules
// marked hidden are the engine's parts, public only for edgews' own
// reactor, fuzzers, benchmarks and tests: unstable, they may change in any
// release.
#[doc(hidden)]
pub mod accept;
#[doc(hidden)]
pub mod client_handshake;
#[doc(hidden)]
pub mod close;
mod commands;
pub mod config;
mod connection;
pub mod deflate;
#[doc(hidden)]
pub mod error;
#[doc(hidden)]
pub mod frame;
#[doc(hidden)]
pub mod handshake;
mod headers;
#[doc(hidden)]
pub mod http;
#[doc(hidden)]
pub mod mask;
#[doc(hidden)]
pub mod message;
mod read;
pub mod relay;
mod shared;
mod timers;
mod upgrade_headers;
pub mod upstream;
#[doc(hidden)]
pub mod utf8;

pub use client_handshake::WsUrl;
pub use close::CloseCode;
pub use config::{ConfigError, ProtocolConfig};
pub use connection::{CloseCause, Closed, Connection, Event, Role, State};
pub use deflate::{Compression, DeflateConfig, DeflateMode, DeflateParams};
pub use error::{HandshakeError, ProtocolError, ResponseError, UsageError};
pub use frame::{FrameHeader, OpCode};
pub use handshake::{Extension, OriginPolicy, Request};
pub use headers::{Headers, Iter as HeaderIter};
pub use message::{Message, MessageKind};
pub use shared::{FrameEncoding, SharedFrame};

#[cfg(test)]
mod tests;
