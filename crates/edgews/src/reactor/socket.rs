//! A connection's transport: its TCP socket, and the TLS layer on it when
//! the connection is `wss://`. Everything above reads plaintext from it and
//! writes plaintext to it; only here does it matter which kind it is.

use crate::tls::{TlsLayer, TlsRead};
use mio::net::TcpStream;
use std::io::{self, IoSlice, Read, Write};

/// The socket, and its TLS layer when there is one. The layer is boxed: a
/// plain connection pays one null pointer for it.
#[derive(Debug)]
pub(crate) struct Socket {
    pub tcp: TcpStream,
    tls: Option<Box<TlsLayer>>,
}

impl Socket {
    /// A plain TCP transport.
    pub fn plain(tcp: TcpStream) -> Socket {
        Socket { tcp, tls: None }
    }

    /// A TLS transport over `tcp`.
    pub fn tls(tcp: TcpStream, layer: TlsLayer) -> Socket {
        Socket {
            tcp,
            tls: Some(Box::new(layer)),
        }
    }

    /// Whether this transport is TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Reads plaintext into `buf`. `WouldBlock`: none came. A TLS read
    /// uses the back half of `buf` for ciphertext, so it returns at most
    /// about half of `buf`; `drained` says whether the socket is empty.
    pub fn read_input(&mut self, buf: &mut [u8]) -> io::Result<TlsRead> {
        match self.tls.as_deref_mut() {
            Some(tls) => tls.read(&mut self.tcp, buf),
            None => match self.tcp.read(buf)? {
                0 => Ok(TlsRead::Eof),
                len => Ok(TlsRead::Data {
                    len,
                    drained: len < buf.len(),
                }),
            },
        }
    }

    /// Whether TLS output waits for the socket.
    pub fn wants_write(&self) -> bool {
        self.tls.as_deref().is_some_and(TlsLayer::wants_write)
    }

    /// Bytes waiting inside the TLS layer (counted by backpressure).
    pub fn pending(&self) -> usize {
        self.tls.as_deref().map_or(0, TlsLayer::pending)
    }

    /// Writes what waits inside the TLS layer, until the socket blocks.
    pub fn flush_tls(&mut self) -> io::Result<()> {
        match self.tls.as_deref_mut() {
            Some(tls) => tls.flush(&mut self.tcp),
            None => Ok(()),
        }
    }

    /// Before the server closes TCP: sends TLS' `close_notify`. `Ok(true)`
    /// once it (and everything before it) is with the kernel; at once for
    /// plain TCP.
    pub fn close_tls(&mut self) -> io::Result<bool> {
        match self.tls.as_deref_mut() {
            Some(tls) => tls.close(&mut self.tcp),
            None => Ok(true),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.tls.as_deref_mut() {
            Some(tls) => tls.write_vectored(&mut self.tcp, &[IoSlice::new(buf)]),
            None => self.tcp.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self.tls.as_deref_mut() {
            Some(tls) => tls.write_vectored(&mut self.tcp, bufs),
            None => self.tcp.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_tls()
    }
}
