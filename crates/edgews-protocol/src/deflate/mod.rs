//! permessage-deflate (RFC 7692): negotiation in the opening handshake,
//! compression of outgoing messages, and inflation of incoming ones under
//! the message limit, as bytes arrive.
//!
//! The engine keeps it out of sight of its caller: a received
//! [`Message`](crate::Message) is inflated, and every send goes through the
//! [`Connection`](crate::Connection), which compresses when the connection
//! negotiated the extension and the message is worth it.
//!
//! Where the zlib state lives decides what a connection costs:
//!
//! - A direction without context takeover (every message starts a fresh
//!   LZ77 window) needs no state between messages. Its compressor is one
//!   per thread and window size, reset after each message; its
//!   decompressor is borrowed from a per-thread pool when a compressed
//!   message starts and given back when it ends. A connection in
//!   [`DeflateMode::Shared`] owns no zlib state at all between messages.
//! - A direction with context takeover needs its window between messages:
//!   the connection owns that compressor or decompressor, made on first
//!   use ([`DeflateMode::Dedicated`]).

mod codec;
mod params;
#[doc(hidden)]
pub mod zlib;

pub(crate) use codec::PerMessageDeflate;
pub use codec::{Compression, DeflateEncoding};
pub use params::DeflateParams;
pub(crate) use params::{negotiate, validate_response, write_offer};

use crate::config::ConfigError;

/// How a server that negotiates permessage-deflate holds compression state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeflateMode {
    /// No context takeover in either direction (the server answers with
    /// `server_no_context_takeover; client_no_context_takeover`, which
    /// RFC 7692 §7.1.1 lets it add): one compressor per thread, and
    /// inflate state only while a message is being inflated. Costs no
    /// zlib memory per idle connection; compresses less well, since each
    /// message starts from an empty window. A broadcast is compressed once
    /// for every recipient with the same window.
    Shared,
    /// Context takeover in both directions unless the client asks
    /// otherwise: each connection owns its compressor and decompressor,
    /// sized by the window and memLevel settings. Better ratios for
    /// streams of similar messages, at a memory cost per connection
    /// (docs/protocol.md has the table).
    Dedicated,
}

/// Settings of permessage-deflate for one endpoint.
///
/// A server with `ProtocolConfig::deflate` set accepts a client's offer
/// (the first one it can honour, RFC 7692 §5.1); a client with it set
/// offers `permessage-deflate; client_no_context_takeover;
/// client_max_window_bits` and uses what the server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Where compression state lives. Default [`DeflateMode::Dedicated`].
    /// A client never keeps context for what it sends (it offers
    /// `client_no_context_takeover`), whatever the mode.
    pub mode: DeflateMode,
    /// [`DeflateMode::Dedicated`]: the LZ77 window of our compressor, as
    /// a power of two: 9 to 15 (512 B to 32 KiB). Default 12, as Python
    /// `websockets`: a compressor of window 12 and memLevel 5 holds about
    /// 35 KiB, one of 15 and 8 about 262 KiB, for a ratio about 15%
    /// better (docs/protocol.md has the table). The shared compressor,
    /// one per thread, always uses 15. (8 is refused: zlib cannot
    /// compress a raw stream within a 256-byte window.)
    pub window_bits: u8,
    /// [`DeflateMode::Dedicated`], server: the window asked of a client
    /// that allows it (`client_max_window_bits`), which sizes our
    /// decompressor: 9 to 15. Default 12 (about 11 KiB of inflate state,
    /// against 39 KiB at 15).
    pub client_window_bits: u8,
    /// [`DeflateMode::Dedicated`]: zlib's memLevel for our compressor, 1
    /// to 9. Default 5. Each step down halves the hash table and the
    /// literal buffer; below 4 compression slows down.
    pub mem_level: u8,
    /// Compression level, 0 (stored) to 9 (best). Default 6, zlib's.
    pub level: u8,
    /// Messages shorter than this many bytes are sent uncompressed:
    /// deflate's block overhead makes small ones larger, and every message
    /// costs a compressor run. Default 128.
    pub threshold: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            mode: DeflateMode::Dedicated,
            window_bits: 12,
            client_window_bits: 12,
            mem_level: 5,
            level: 6,
            threshold: 128,
        }
    }
}

impl DeflateConfig {
    /// The shared mode with the other settings at their defaults.
    pub fn shared() -> Self {
        DeflateConfig {
            mode: DeflateMode::Shared,
            ..DeflateConfig::default()
        }
    }

    /// Checks the ranges the fields document.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let window = 9..=15;
        if !window.contains(&self.window_bits) || !window.contains(&self.client_window_bits) {
            return Err(ConfigError("deflate window bits must be 9 to 15"));
        }
        if !(1..=9).contains(&self.mem_level) {
            return Err(ConfigError("deflate memLevel must be 1 to 9"));
        }
        if self.level > 9 {
            return Err(ConfigError("deflate level must be 0 to 9"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
