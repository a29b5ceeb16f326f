//! TLS (`wss://`, `https://`) on rustls, as a layer between a socket and
//! the protocol engine: the engine never sees ciphertext, and the reactor
//! stays the only code that makes syscalls (the layer reads and writes the
//! socket it is handed).
//!
//! ```text
//!   socket --recv--> [TlsLayer: rustls decrypts] --plaintext--> engine
//!   socket <-send--- [TlsLayer: rustls encrypts] <--frames----- engine
//! ```
//!
//! - [`TlsFiles`]: the server's certificate and key, read at start and on
//!   every reload (SIGHUP); a bad file is reported and the old
//!   configuration kept.
//! - [`ClientTls`]: how clients (the blocking [`Client`](crate::client::Client),
//!   outbound reactor connections, `edgews load`) verify servers.
//! - [`TlsLayer`]: one connection's state, shaped for an edge-triggered loop.

mod config;
mod layer;
#[cfg(test)]
mod tests;

pub use config::{server_name, ClientTls, TlsError, TlsFiles, ALPN_HTTP1};
pub use layer::{TlsLayer, TlsRead};
pub use rustls;
