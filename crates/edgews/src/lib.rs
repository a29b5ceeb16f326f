//! # edgews
//!
//! A WebSocket (RFC 6455) server and library. Its core is a sans-I/O
//! protocol engine: bytes in, events and bytes out, with no sockets, clocks
//! or threads inside. Above it, a single-threaded edge-triggered `mio`
//! reactor drives thousands of connections; the `edgews` binary ships echo
//! and broadcast servers on top of it.
//!
//! ```text
//!  edgews-cli (the `edgews` binary)   CLI: arguments -> config -> run a
//!         |                           handler; `load`
//!  edgews (this crate)
//!    server/            echo, broadcast, pubsub, chat, topics, JWT auth,
//!         |             rate limits: small implementations of the Handler trait
//!    reactor/           Handler trait + Context, and the only code that makes
//!         |             syscalls: mio, sockets, timers
//!  edgews-protocol      sans-I/O RFC 6455 engine (re-exported as
//!                       `edgews::protocol`): time comes in as `now`,
//!                       buffers belong to the caller
//! ```
//!
//! Using the engine directly:
//!
//! ```
//! use edgews::protocol::{Connection, Event};
//! use edgews::ProtocolConfig;
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
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod forwarded;
pub mod reactor;
pub mod redis;
pub mod server;
pub mod tls;
pub mod workers;

/// The sans-I/O engine, the `edgews-protocol` crate.
pub use edgews_protocol as protocol;

pub use config::{ConfigError, ProtocolConfig, ServerConfig};

/// The README's examples, compiled as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
