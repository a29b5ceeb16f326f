//! The client's transport: TCP, or TLS over TCP for `wss://`.

use crate::tls::{server_name, ClientTls, TlsError};
use rustls::{ClientConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::TcpStream;

/// A blocking stream, plain or TLS.
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// Runs the TLS handshake over `tcp` with `host`'s name, within the
    /// socket's read timeout; an untrusted, expired or mismatched
    /// certificate is a [`TlsError`] naming rustls' reason.
    pub fn tls(tcp: TcpStream, host: &str, tls: &ClientTls) -> Result<Stream, TlsError> {
        let config = tls.build()?;
        let mut conn = ClientConnection::new(config, server_name(host)?)
            .map_err(|e| TlsError(format!("TLS: {e}")))?;
        let mut tcp = tcp;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)
                .map_err(|e| TlsError(format!("TLS handshake with {host}: {e}")))?;
        }
        Ok(Stream::Tls(Box::new(StreamOwned::new(conn, tcp))))
    }

    /// The TCP socket under it.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }

    /// Ends the stream: TLS' `close_notify` (best effort), then TCP.
    pub fn shutdown(&mut self) {
        if let Stream::Tls(s) = self {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        let _ = self.tcp().shutdown(std::net::Shutdown::Both);
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => match s.read(buf) {
                // TCP closed without close_notify: the WebSocket's own close
                // handshake says whether anything was lost
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}
