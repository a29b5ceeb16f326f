//! The compression state of one connection, and the per-thread
//! compressors and decompressors that directions without context takeover
//! borrow (RFC 7692 §7.2).

use super::params::DeflateParams;
use super::zlib::{Deflater, Inflater};
use super::{DeflateConfig, DeflateMode};
use crate::connection::Role;
use crate::error::ProtocolError;
use crate::utf8::Utf8Validator;
use std::cell::RefCell;

/// §7.2.1: the sync flush's empty stored block, removed from the end of
/// every compressed message and appended again before inflating (§7.2.2).
pub(crate) const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Whether to compress one outgoing message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Compress when the connection negotiated permessage-deflate and the
    /// message is at least the configured threshold.
    #[default]
    Auto,
    /// Compress whenever the connection negotiated permessage-deflate.
    Always,
    /// Send this message uncompressed (always allowed, RFC 7692 §6).
    Never,
}

/// How a server compresses messages without context takeover: servers
/// whose connections share this value can share compressed frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeflateEncoding {
    window_bits: u8,
    level: u8,
    mem_level: u8,
    threshold: usize,
}

impl DeflateEncoding {
    /// Whether a message of `len` bytes is compressed under `choice`.
    pub(crate) fn compresses(&self, len: usize, choice: Compression) -> bool {
        // a peer that allows only 8 bits gets uncompressed messages: zlib
        // cannot compress within a 256-byte window
        self.window_bits >= 9
            && match choice {
                Compression::Auto => len >= self.threshold,
                Compression::Always => true,
                Compression::Never => false,
            }
    }

    /// Appends the compressed `parts` (one message) to `out`, with this
    /// thread's compressor for this encoding.
    pub(crate) fn compress(&self, parts: &[&[u8]], out: &mut Vec<u8>) {
        let made = SHARED_DEFLATERS.with(|cell| {
            let mut cache = cell.borrow_mut();
            let found = cache.iter().position(|(e, _)| e == self);
            let at = match found {
                Some(at) => at,
                None => {
                    let d = Deflater::new(self.level, self.window_bits, self.mem_level).ok()?;
                    cache.push((*self, d));
                    cache.len() - 1
                }
            };
            let deflater = &mut cache[at].1;
            deflate_message(deflater, parts, out);
            deflater.reset();
            Some(())
        });
        if made.is_none() {
            // zlib had no memory: a stored block is valid DEFLATE too
            stored_message(parts, out);
        }
    }
}

thread_local! {
    /// One compressor per encoding on this thread (one per reactor).
    static SHARED_DEFLATERS: RefCell<Vec<(DeflateEncoding, Deflater)>> =
        const { RefCell::new(Vec::new()) };
    /// Idle 15-bit decompressors, lent for one message at a time.
    static INFLATER_POOL: RefCell<Vec<Inflater>> = const { RefCell::new(Vec::new()) };
}

/// memLevel of the compressors without context takeover.
const SHARED_MEM_LEVEL: u8 = 8;

/// Idle decompressors a thread keeps for reuse (about 40 KiB each).
const POOL_MAX: usize = 8;

/// Appends one compressed message: `parts` in sequence, a sync flush, and
/// the flush's `00 00 ff ff` removed (§7.2.1).
fn deflate_message(deflater: &mut Deflater, parts: &[&[u8]], out: &mut Vec<u8>) {
    let start = out.len();
    for part in parts {
        let mut pos = 0;
        while pos < part.len() {
            out.reserve(part.len() - pos + 64);
            pos += deflater.compress(&part[pos..], out, false).0;
        }
    }
    // the flush is complete once a call leaves room in `out` (§7.2.1)
    loop {
        out.reserve(64);
        deflater.compress(&[], out, true);
        if out.len() < out.capacity() {
            break;
        }
    }
    if out.len() == start {
        // a flush right after another with no input in between writes
        // nothing: §7.2.1 then wants an empty stored block, which is
        // `00` once its `00 00 ff ff` is removed (found by the fuzzer:
        // without it the peer's appended tail desynchronised the stream)
        out.push(0x00);
    } else if out[start..].ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
}

/// A message as stored (uncompressed) DEFLATE blocks, for when no
/// compressor can be had: valid for any window (§7.2.3.3).
pub(crate) fn stored_message(parts: &[&[u8]], out: &mut Vec<u8>) {
    let data: Vec<u8> = parts.concat();
    for chunk in data.chunks(u16::MAX as usize) {
        let len = chunk.len() as u16;
        out.push(0x00); // BFINAL 0, BTYPE 00
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    // the empty stored block of §7.2.1, its `00 00 ff ff` removed
    out.push(0x00);
}

/// The permessage-deflate state of one connection.
#[derive(Debug)]
pub(crate) struct PerMessageDeflate {
    params: DeflateParams,
    /// How we compress what we send.
    send: DeflateEncoding,
    /// We keep our LZ77 window between messages (context takeover).
    send_takeover: bool,
    /// The peer keeps its window between messages.
    recv_takeover: bool,
    /// The window of our decompressor with context takeover.
    recv_window: u8,
    /// Our compressor, when we keep context (made on first use).
    deflater: Option<Deflater>,
    /// Our decompressor: kept with the peer's context takeover; otherwise
    /// borrowed from the pool for one message.
    inflater: Option<Inflater>,
}

impl PerMessageDeflate {
    /// The state for a connection that negotiated `params` in `role`.
    pub fn new(params: DeflateParams, role: Role, config: &DeflateConfig) -> Self {
        let (send_nct, send_bits, recv_nct, recv_bits) = match role {
            Role::Server => (
                params.server_no_context_takeover,
                params.server_max_window_bits,
                params.client_no_context_takeover,
                params.client_max_window_bits,
            ),
            // we offered client_no_context_takeover: we never keep ours
            Role::Client => (
                true,
                params.client_max_window_bits,
                params.server_no_context_takeover,
                params.server_max_window_bits,
            ),
        };
        let send_takeover = !send_nct;
        let mem_level = match config.mode {
            DeflateMode::Dedicated if send_takeover => config.mem_level,
            // a per-thread compressor: its size does not matter, and at a
            // 15-bit window memLevel 8 is faster than smaller ones (4 was
            // half as fast on 1 KiB and 16 KiB JSON: benches/protocol.rs)
            _ => SHARED_MEM_LEVEL,
        };
        PerMessageDeflate {
            params,
            send: DeflateEncoding {
                window_bits: send_bits,
                level: config.level,
                mem_level,
                threshold: config.threshold,
            },
            send_takeover,
            recv_takeover: !recv_nct,
            recv_window: recv_bits,
            deflater: None,
            inflater: None,
        }
    }

    /// The negotiated parameters.
    pub fn params(&self) -> &DeflateParams {
        &self.params
    }

    /// The encoding frames shared with other connections need, when we
    /// compress without context (a frame with context belongs to one
    /// connection's stream).
    pub fn shared_encoding(&self) -> Option<DeflateEncoding> {
        (!self.send_takeover).then_some(self.send)
    }

    /// Whether a message of `len` bytes goes out compressed under `choice`.
    pub fn compresses(&self, len: usize, choice: Compression) -> bool {
        self.send.compresses(len, choice)
    }

    /// Appends the compressed payload of one message to `out`.
    pub fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if !self.send_takeover {
            return self.send.compress(&[data], out);
        }
        if self.deflater.is_none() {
            let s = &self.send;
            self.deflater = Deflater::new(s.level, s.window_bits, s.mem_level).ok();
        }
        match self.deflater.as_mut() {
            Some(deflater) => deflate_message(deflater, &[data], out),
            // no memory for a compressor: stored blocks keep the stream valid
            None => stored_message(&[data], out),
        }
    }

    /// Gets a decompressor ready for a compressed message.
    pub fn begin_inflate(&mut self) -> Result<(), ProtocolError> {
        if self.inflater.is_some() {
            return Ok(());
        }
        let inflater = if self.recv_takeover {
            Inflater::new(self.recv_window).ok()
        } else {
            INFLATER_POOL
                .with(|pool| pool.borrow_mut().pop())
                .or_else(|| Inflater::new(15).ok())
        };
        self.inflater = Some(inflater.ok_or(ProtocolError::CompressorUnavailable)?);
        Ok(())
    }

    /// Inflates a piece of the message's payload into `data`, never past
    /// `max` bytes in all: the limit is checked as output is produced, so
    /// a small frame that would inflate to gigabytes stops at `max + 1`.
    /// With `utf8`, the inflated text is checked as it comes out, up to
    /// the limit, before the limit is: whichever fault comes first in the
    /// inflated bytes decides, however the input was split.
    pub fn inflate(
        &mut self,
        input: &[u8],
        data: &mut Vec<u8>,
        max: u64,
        utf8: Option<&mut Utf8Validator>,
    ) -> Result<(), ProtocolError> {
        let inflater = self
            .inflater
            .as_mut()
            .ok_or(ProtocolError::BadCompressedData)?;
        inflate_bounded(inflater, input, data, max, utf8)
    }

    /// Ends a compressed message: appends the tail (§7.2.2) and gives a
    /// borrowed decompressor back.
    pub fn finish_inflate(
        &mut self,
        data: &mut Vec<u8>,
        max: u64,
        utf8: Option<&mut Utf8Validator>,
    ) -> Result<(), ProtocolError> {
        let result = self.inflate(&TAIL, data, max, utf8);
        if let Some(inflater) = self.inflater.as_mut() {
            inflater.end_message();
        }
        if result.is_err() || !self.recv_takeover {
            self.release();
        }
        result
    }

    /// Whether this connection holds any zlib stream now.
    #[cfg(test)]
    pub fn holds_state(&self) -> bool {
        self.deflater.is_some() || self.inflater.is_some()
    }

    /// Drops or returns the decompressor of a message that will not end
    /// (the connection is closing, or failed).
    pub fn release(&mut self) {
        let Some(mut inflater) = self.inflater.take() else {
            return;
        };
        if self.recv_takeover {
            return; // its window is this connection's: nobody else's
        }
        inflater.reset();
        INFLATER_POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOL_MAX {
                pool.push(inflater);
            }
        });
    }
}

impl Drop for PerMessageDeflate {
    fn drop(&mut self) {
        self.release();
    }
}

/// Inflates `input` into `data` until all of it is taken and zlib has
/// nothing more to give, growing `data` geometrically but never past
/// `max + 1` bytes (one past the limit proves it crossed).
fn inflate_bounded(
    inflater: &mut Inflater,
    mut input: &[u8],
    data: &mut Vec<u8>,
    max: u64,
    mut utf8: Option<&mut Utf8Validator>,
) -> Result<(), ProtocolError> {
    let too_large = |len: usize| ProtocolError::MessageTooLarge {
        len: len as u64,
        max,
    };
    let mut checked = data.len();
    loop {
        if data.len() == data.capacity() {
            let room = (max + 1).saturating_sub(data.len() as u64);
            if room == 0 {
                return Err(too_large(data.len()));
            }
            let grow = (data.capacity().max(input.len() * 2).max(1024) as u64).min(room);
            data.reserve_exact(grow as usize);
        }
        let (used, produced) = inflater
            .decompress(input, data)
            .map_err(|_| ProtocolError::BadCompressedData)?;
        input = &input[used..];
        if let Some(validator) = utf8.as_deref_mut() {
            let end = data.len().min(usize::try_from(max).unwrap_or(usize::MAX));
            if end > checked {
                validator
                    .feed(&data[checked..end])
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
                checked = end;
            }
        }
        if data.len() as u64 > max {
            return Err(too_large(data.len()));
        }
        let room_left = data.len() < data.capacity();
        if input.is_empty() && room_left {
            return Ok(());
        }
        if used == 0 && produced == 0 && room_left {
            // zlib took nothing and gave nothing with room on both sides
            return Err(ProtocolError::BadCompressedData);
        }
    }
}
