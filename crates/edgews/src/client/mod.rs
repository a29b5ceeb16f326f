//! A blocking WebSocket client on `std::net::TcpStream`, driving the same
//! protocol engine as the server (client role: masked frames, response
//! validation).
//!
//! ```no_run
//! use edgews::client::Client;
//! let mut client = Client::connect("ws://127.0.0.1:9001/")?;
//! client.send_text("hello")?;
//! let reply = client.recv_message()?;
//! assert_eq!(reply.as_text(), Some("hello"));
//! client.close(edgews::protocol::CloseCode::NORMAL, "bye")?;
//! # Ok::<(), edgews::client::ClientError>(())
//! ```

mod error;
mod stream;

pub use error::ClientError;

use crate::config::ProtocolConfig;
use crate::protocol::{
    CloseCode, Closed, Connection, DeflateConfig, DeflateParams, Event, Message, OpCode, WsUrl,
};
use crate::tls::ClientTls;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stream::Stream;

/// How a [`Client`] connects and what it accepts.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Limits applied to what the server sends, and the permessage-deflate
    /// offer (made by default: `client_no_context_takeover;
    /// client_max_window_bits`; `deflate: None` offers nothing). The blocking client runs
    /// no timers of the engine: keep-alive pings (`ping_interval`) are not
    /// sent, and the handshake and reads are bounded by the socket timeouts
    /// below; `close_timeout` bounds the wait for the server's close.
    pub protocol: ProtocolConfig,
    /// Time allowed for the TCP connect. Default 10 s.
    pub connect_timeout: Duration,
    /// Time allowed for the opening handshake. Default 10 s.
    pub handshake_timeout: Duration,
    /// How long `recv` blocks before [`ClientError::Timeout`]; `None` waits
    /// forever. Default `None`.
    pub read_timeout: Option<Duration>,
    /// How long a send may block. Default 30 s.
    pub write_timeout: Option<Duration>,
    /// Subprotocols to offer, in order of preference.
    pub subprotocols: Vec<String>,
    /// Extra request headers, as `Name: value`.
    pub headers: Vec<String>,
    /// How a `wss://` server is verified. Default: the system's roots.
    pub tls: ClientTls,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            protocol: ProtocolConfig {
                ping_interval: None,
                deflate: Some(DeflateConfig::default()),
                ..ProtocolConfig::default()
            },
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            read_timeout: None,
            write_timeout: Some(Duration::from_secs(30)),
            subprotocols: Vec::new(),
            headers: Vec::new(),
            tls: ClientTls::default(),
        }
    }
}

/// Something the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A complete message.
    Message(Message<'static>),
    /// A ping (already answered with a pong).
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// The connection ended; nothing more will arrive.
    Closed(Closed),
}

/// A blocking WebSocket client connection.
#[derive(Debug)]
pub struct Client {
    stream: Stream,
    engine: Connection,
    /// Received bytes not consumed yet: `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    out: Vec<u8>,
    subprotocol: Option<String>,
    close_timeout: Duration,
}

const READ_CHUNK: usize = 64 << 10;

impl Client {
    /// Connects to a `ws://` or `wss://` URL with the default configuration.
    pub fn connect(url: &str) -> Result<Client, ClientError> {
        Client::connect_with(url, ClientConfig::default())
    }

    /// Connects to a `ws://` or `wss://` URL and completes the opening
    /// handshake (after the TLS handshake, for `wss://`).
    pub fn connect_with(url: &str, config: ClientConfig) -> Result<Client, ClientError> {
        let parsed = WsUrl::parse(url)?;
        let addrs = (parsed.host.as_str(), parsed.port).to_socket_addrs()?;
        let mut last_error = io::Error::new(io::ErrorKind::NotFound, "host has no address");
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, config.connect_timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_error = e,
            }
        }
        let stream = stream.ok_or(last_error)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(config.write_timeout)?;
        let stream = if parsed.secure {
            stream.set_read_timeout(Some(config.handshake_timeout))?;
            Stream::tls(stream, &parsed.host, &config.tls).map_err(ClientError::Tls)?
        } else {
            Stream::Plain(stream)
        };
        let mut out = Vec::new();
        let protocol = Arc::new(config.protocol.clone());
        let engine = Connection::client(
            Instant::now(),
            protocol,
            &parsed,
            config.subprotocols,
            &config.headers,
            &mut out,
        );
        let close_timeout = config.protocol.close_timeout;
        let mut client = Client {
            stream,
            engine,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            out,
            subprotocol: None,
            close_timeout,
        };
        client.flush()?;
        client
            .stream
            .tcp()
            .set_read_timeout(Some(config.handshake_timeout))?;
        client.handshake()?;
        client.stream.tcp().set_read_timeout(config.read_timeout)?;
        Ok(client)
    }

    fn handshake(&mut self) -> Result<(), ClientError> {
        loop {
            let input = &mut self.buf[self.start..self.end];
            let (used, event) = self
                .engine
                .handle_input(Instant::now(), input, &mut self.out);
            self.start += used;
            match event {
                Some(Event::Connected { subprotocol }) => {
                    self.subprotocol = subprotocol;
                    return Ok(());
                }
                Some(Event::ConnectFailed(e)) => return Err(ClientError::Handshake(e)),
                Some(_) => continue,
                None => {
                    if self.fill()? == 0 {
                        return Err(ClientError::Io(io::ErrorKind::UnexpectedEof.into()));
                    }
                }
            }
        }
    }

    /// The subprotocol the server chose.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// The permessage-deflate parameters, when the server accepted our
    /// offer (RFC 7692); messages are then compressed and inflated for us.
    pub fn deflate(&self) -> Option<&DeflateParams> {
        self.engine.deflate()
    }

    /// The underlying TCP stream (for timeouts and addresses).
    pub fn stream(&self) -> &TcpStream {
        self.stream.tcp()
    }

    /// Whether the connection runs over TLS (`wss://`).
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.engine.send_text(text, &mut self.out)?;
        self.flush()
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), ClientError> {
        self.engine.send_binary(data, &mut self.out)?;
        self.flush()
    }

    /// Sends a message of either kind (its text is valid by construction).
    pub fn send(&mut self, message: &Message<'_>) -> Result<(), ClientError> {
        self.engine.send_message(message, &mut self.out)?;
        self.flush()
    }

    /// Sends one fragment (§5.4): `Text`/`Binary` first, then `Continuation`.
    pub fn send_fragment(
        &mut self,
        opcode: OpCode,
        fin: bool,
        data: &[u8],
    ) -> Result<(), ClientError> {
        self.engine
            .send_fragment(opcode, fin, data, &mut self.out)?;
        self.flush()
    }

    /// Sends a ping.
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        self.engine.send_ping(payload, &mut self.out)?;
        self.flush()
    }

    /// Waits for the next thing the server sends. Pings are answered on the
    /// way. After [`Received::Closed`], returns [`ClientError::Closed`].
    pub fn recv(&mut self) -> Result<Received, ClientError> {
        loop {
            let input = &mut self.buf[self.start..self.end];
            let (used, event) = self
                .engine
                .handle_input(Instant::now(), input, &mut self.out);
            self.start += used;
            let received = match event {
                Some(Event::Message(m)) => Some(Received::Message(m.into_owned())),
                Some(Event::Ping(p)) => Some(Received::Ping(p.to_vec())),
                Some(Event::Pong(p)) => Some(Received::Pong(p.to_vec())),
                Some(Event::Closed(c)) => Some(Received::Closed(c)),
                Some(_) => None,
                None if self.engine.is_closed() => return Err(ClientError::AlreadyClosed),
                None => {
                    self.flush()?;
                    match self.fill() {
                        Ok(0) => self.engine.handle_eof(Instant::now()).map(|e| match e {
                            Event::Closed(c) => Received::Closed(c),
                            _ => Received::Closed(abnormal()),
                        }),
                        Ok(_) => None,
                        Err(ClientError::Io(e)) if is_timeout(&e) => {
                            return Err(ClientError::Timeout)
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            if let Some(received) = received {
                self.flush()?;
                if matches!(received, Received::Closed(_)) {
                    self.await_server_close();
                }
                return Ok(received);
            }
        }
    }

    /// Waits for the next message, skipping pings and pongs. A close
    /// becomes `Err(ClientError::Closed)` with the code and reason.
    pub fn recv_message(&mut self) -> Result<Message<'static>, ClientError> {
        loop {
            match self.recv()? {
                Received::Message(m) => return Ok(m),
                Received::Closed(c) => return Err(ClientError::Closed(c)),
                Received::Ping(_) | Received::Pong(_) => {}
            }
        }
    }

    /// Closes cleanly (§7.1.2): sends a close frame, discards messages
    /// until the server's close arrives, and waits for the server to close
    /// TCP. Returns how the connection ended.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<Closed, ClientError> {
        self.engine
            .close(Instant::now(), code, reason, &mut self.out)?;
        self.flush()?;
        self.stream
            .tcp()
            .set_read_timeout(Some(self.close_timeout))?;
        loop {
            match self.recv() {
                Ok(Received::Closed(c)) => return Ok(c),
                Ok(_) => {}
                Err(ClientError::Timeout) => return Ok(abnormal()),
                Err(e) => return Err(e),
            }
        }
    }

    fn flush(&mut self) -> Result<(), ClientError> {
        if !self.out.is_empty() {
            let result = self.stream.write_all(&self.out);
            self.out.clear();
            result?;
        }
        Ok(())
    }

    /// Reads more bytes after the unconsumed ones; returns 0 at EOF.
    fn fill(&mut self) -> Result<usize, ClientError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.end < READ_CHUNK / 2 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() - self.end < READ_CHUNK / 2 {
                self.buf.resize(self.end + READ_CHUNK, 0);
            }
        }
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// §7.1.1: the client waits for the server to close TCP first; it gives
    /// up after the close timeout.
    fn await_server_close(&mut self) {
        let _ = self.stream.tcp().set_read_timeout(Some(self.close_timeout));
        let mut sink = [0u8; 1024];
        let deadline = Instant::now() + self.close_timeout;
        while Instant::now() < deadline {
            match self.stream.read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        self.stream.shutdown();
    }
}

fn abnormal() -> Closed {
    Closed {
        code: CloseCode::ABNORMAL,
        reason: String::new(),
        cause: crate::protocol::CloseCause::Eof,
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
