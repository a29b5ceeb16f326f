//! One connection's TLS layer, between its socket and its engine, on
//! rustls' buffered API.
//!
//! Reads are shaped for an edge-triggered loop: one `recv` of up to half the
//! caller's buffer goes into the buffer's back half, rustls takes it from
//! there (no syscall of its own), and the plaintext lands in the front half;
//! the caller learns whether the socket is drained, which a plaintext count
//! cannot tell. Writes encrypt only while no ciphertext waits for the
//! socket, so what waits inside rustls is bounded (one write's worth) and
//! everything else stays in the reactor's queue, where backpressure counts it.

use rustls::Connection;
use std::io::{self, IoSlice, Read, Write};

/// Room kept in the plaintext half for a record that began in an earlier
/// read and ends in this one: a TLS record's plaintext is at most 16 KiB
/// (RFC 8446 §5.1), its ciphertext a little more.
const PARTIAL_RECORD: usize = 18 << 10;

/// Plaintext encrypted per write at most: rustls' own buffer limit, so a
/// write never takes more than the socket can be asked for at once.
const MAX_ENCRYPT: usize = 64 << 10;

/// The most pieces of a vectored write looked at in one call (the rest is
/// taken by the next call, as with a short `writev`).
const MAX_PIECES: usize = 64;

/// What a TLS record costs besides its plaintext (header, tag, content
/// type), for the estimate of ciphertext waiting.
const RECORD_OVERHEAD: usize = 22;

/// A read of the TLS layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRead {
    /// This much plaintext is at the front of the buffer; `drained`: the
    /// socket had no more (a new arrival raises a new edge).
    Data {
        /// Bytes of plaintext.
        len: usize,
        /// The socket returned less than it was asked for and rustls holds
        /// no further plaintext.
        drained: bool,
    },
    /// The peer sent `close_notify` or closed TCP: no more plaintext.
    Eof,
}

/// A TLS connection, client or server, and what it knows of its socket.
#[derive(Debug)]
pub struct TlsLayer {
    conn: Connection,
    /// Ciphertext waiting in rustls for the socket (an estimate: plaintext
    /// plus record overhead, less what the socket took).
    pending: usize,
    /// `close_notify` has been queued.
    closing: bool,
}

impl TlsLayer {
    /// A layer over a fresh rustls connection.
    pub fn new(mut conn: Connection) -> TlsLayer {
        conn.set_buffer_limit(Some(MAX_ENCRYPT));
        TlsLayer {
            conn,
            pending: 0,
            closing: false,
        }
    }

    /// The rustls connection (for its negotiated parameters).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Whether ciphertext waits for the socket.
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Bytes of ciphertext waiting for the socket (an estimate).
    pub fn pending(&self) -> usize {
        if self.conn.wants_write() {
            self.pending
        } else {
            0
        }
    }

    /// Reads what `socket` has into `buf`: see [`TlsRead`]. A TLS error
    /// (garbage, plain HTTP, a bad record) is returned as `InvalidData`,
    /// after the alert rustls queued for it, when it queued one (for some
    /// errors, such as a handshake message over its 64 KiB limit, it queues
    /// none). `WouldBlock` means no plaintext came. `buf` must be larger
    /// than 18 KiB plus a little (room for a partial record; the reactor's has at least
    /// 128 KiB free): a smaller one only hands out plaintext rustls already
    /// holds and never reads the socket, which would stall an
    /// edge-triggered caller.
    pub fn read<S: Read + Write>(&mut self, socket: &mut S, buf: &mut [u8]) -> io::Result<TlsRead> {
        let stage_len = buf.len().saturating_sub(PARTIAL_RECORD) / 2;
        let (out, stage) = buf.split_at_mut(buf.len() - stage_len);
        let (mut len, mut eof) = self.take_plaintext(out)?;
        if len > 0 || eof {
            // rustls had plaintext from an earlier read: the socket was not
            // asked, so it is not known to be drained
            return Ok(data_or_eof(len, false, eof));
        }
        if stage.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        loop {
            let got = match socket.read(stage) {
                Ok(0) => return Ok(TlsRead::Eof),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if e.kind() == io::ErrorKind::WouldBlock {
                        // drained as well: the last read may have been a
                        // full one, which did not shrink
                        self.shrink_input_buffer();
                    }
                    return Err(e);
                }
            };
            let mut input = &stage[..got];
            while !input.is_empty() && !eof {
                self.conn.read_tls(&mut input)?;
                if let Err(e) = self.conn.process_new_packets() {
                    // rustls queued the alert that tells the peer why
                    let _ = self.flush(socket);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
                let (n, closed) = self.take_plaintext(&mut out[len..])?;
                len += n;
                eof = closed;
            }
            self.flush(socket)?; // handshake messages, key updates
            let drained = got < stage.len() && !self.has_plaintext();
            if drained {
                self.shrink_input_buffer();
            }
            if len > 0 || eof {
                return Ok(data_or_eof(len, drained, eof));
            }
            if drained {
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
    }

    /// Moves decrypted bytes into `out`; `true` once the peer closed.
    fn take_plaintext(&mut self, out: &mut [u8]) -> io::Result<(usize, bool)> {
        let mut len = 0;
        while len < out.len() {
            match self.conn.reader().read(&mut out[len..]) {
                Ok(0) => return Ok((len, true)), // close_notify
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // TCP closed without close_notify: a WebSocket has its own
                // closing handshake, so truncation is the engine's to judge
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok((len, true)),
                Err(e) => return Err(e),
            }
        }
        Ok((len, false))
    }

    /// Lets rustls shrink its record buffer, which grows to hold a whole
    /// record (it keeps about 32 KiB after large messages otherwise): a
    /// `read_tls` that finds nothing to read resizes the buffer to 4 KiB
    /// when no partial record is in it, and changes nothing else.
    fn shrink_input_buffer(&mut self) {
        let _ = self.conn.read_tls(&mut NothingYet);
    }

    fn has_plaintext(&mut self) -> bool {
        self.conn
            .process_new_packets()
            .is_ok_and(|state| state.plaintext_bytes_to_read() > 0)
    }

    /// Encrypts and sends `bufs`, 64 KiB at a time, for as long
    /// as the socket takes all of it: what it returns is what the socket
    /// took or rustls holds (one write's worth at most). `WouldBlock`
    /// (nothing taken) while earlier ciphertext still waits.
    pub fn write_vectored<S: Write>(
        &mut self,
        socket: &mut S,
        bufs: &[IoSlice<'_>],
    ) -> io::Result<usize> {
        let count = bufs.len().min(MAX_PIECES);
        let mut store = [IoSlice::new(&[]); MAX_PIECES];
        store[..count].copy_from_slice(&bufs[..count]);
        let mut rest = &mut store[..count];
        let mut total = 0;
        loop {
            self.flush(socket)?;
            if self.conn.wants_write() || self.closing || rest.iter().all(|b| b.is_empty()) {
                break;
            }
            // rustls takes at most its buffer limit: the socket took all
            // before, so no edge would announce room for the rest
            let taken = self.conn.writer().write_vectored(rest)?;
            if taken == 0 {
                break;
            }
            total += taken;
            self.pending = taken + taken.div_ceil(16 << 10) * RECORD_OVERHEAD;
            IoSlice::advance_slices(&mut rest, taken);
        }
        if total == 0 && bufs.iter().any(|b| !b.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(total)
    }

    /// Writes waiting ciphertext until the socket would block.
    pub fn flush<S: Write>(&mut self, socket: &mut S) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(socket) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.pending = self.pending.saturating_sub(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pending = 0;
        Ok(())
    }

    /// Queues `close_notify` (once) and writes it; `Ok(true)` once all
    /// ciphertext, the alert included, is with the socket.
    pub fn close<S: Write>(&mut self, socket: &mut S) -> io::Result<bool> {
        if !self.closing {
            self.closing = true;
            self.conn.send_close_notify();
        }
        self.flush(socket)?;
        Ok(!self.conn.wants_write())
    }
}

fn data_or_eof(len: usize, drained: bool, eof: bool) -> TlsRead {
    if len == 0 && eof {
        TlsRead::Eof
    } else {
        TlsRead::Data { len, drained }
    }
}

/// A reader with nothing to read yet: `WouldBlock`, which rustls passes on
/// without taking it for the end of the stream (as it would `Ok(0)`).
struct NothingYet;

impl Read for NothingYet {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}
