//! The `tls` oracle: the path from TLS to the engine. An in-memory rustls
//! client talks to a server-side [`TlsLayer`] over byte pipes; the server
//! side is driven the way the reactor drives a connection
//! (`crates/edgews/src/reactor/io.rs`: `on_readable`, `process_input`,
//! `keep_rest`, `flush_current`, `settle`), on edge-triggered readiness.
//!
//! Unlike the other oracles this one decodes its input with
//! [`arbitrary::Unstructured`] and builds its certificate with `rcgen`, so
//! the crate that compiles it needs both (`rcgen` is already a dev-dependency
//! of the main crate; `arbitrary` must be one too).

use super::heap::HeapMeter;
use super::{chunk_len, small_config, ENGINE_HEAP_LIMIT, RFC_REQUEST};
use arbitrary::Unstructured;
use edgews::protocol::{Connection, Event, State};
use edgews::tls::rustls::client::Resumption;
use edgews::tls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use edgews::tls::rustls::server::NoServerSessionStorage;
use edgews::tls::rustls::{
    self, ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection,
};
use edgews::tls::{TlsLayer, TlsRead, ALPN_HTTP1};
use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The reactor's read buffer (`READ_BUFFER_SIZE`).
const MAX_READ_BUF: usize = 256 << 10;

/// The smallest read buffer tried: the layer keeps 18 KiB of any buffer
/// for plaintext and reads into half of the rest, and the reactor hands it
/// its buffer less the leftover, which is at most a request head (8 KiB by
/// default) before the upgrade. A buffer under 18 KiB + 2 bytes makes
/// [`TlsLayer::read`] return `WouldBlock` without asking the socket.
const MIN_READ_BUF: usize = (18 << 10) + 2 + (8 << 10) + 1024;

/// The reactor's reads per wakeup (`MAX_READS_PER_WAKEUP`).
const MAX_READS_PER_WAKEUP: usize = 4;

/// Ciphertext arrives in about this many pieces at most (smaller pieces
/// are scaled up), and the client writes in this many pieces at most.
const MAX_ARRIVALS: usize = 4096;
const MAX_WRITES: usize = 256;

/// Turns of the simulation before it is declared a livelock.
const MAX_TURNS: usize = 50_000;

/// What the layer may say waits inside rustls: one write's worth
/// (64 KiB) and its record overhead.
const MAX_PENDING: usize = (64 << 10) + 5 * 22;

// Flags, the first byte of the input.
/// Bits 0–1: the client's versions (0 or 3: 1.3 and 1.2; 1: 1.3; 2: 1.2).
const VERSIONS: u8 = 0x03;
/// The client's plaintext starts with the RFC upgrade request.
const FLAG_UPGRADE: u8 = 0x04;
/// The server echoes every message.
const FLAG_ECHO: u8 = 0x08;
/// The client sends `close_notify` after its data.
const FLAG_CLOSE_NOTIFY: u8 = 0x10;
/// The client closes TCP after its data.
const FLAG_FIN: u8 = 0x20;
/// The server's socket takes at most the write room per turn.
const FLAG_WRITE_ROOM: u8 = 0x40;
/// The per-turn message budget is small (1 to 4), exercising the backlog.
const FLAG_SMALL_BUDGET: u8 = 0x80;

/// The test certificate and the configurations built on it, made once.
struct Keys {
    server: Arc<ServerConfig>,
    /// TLS 1.3 and 1.2, 1.3 only, 1.2 only.
    clients: [Arc<ClientConfig>; 3],
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        // a throwaway certificate made here, for this oracle only; Ed25519
        // so that signatures, and with them record lengths, are the same
        // on every run
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        // as `TlsFiles::load` builds it, without session state kept between
        // runs (so every run is a full handshake)
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key_der)
            .expect("server config");
        server.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        server.session_storage = Arc::new(NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
        let mut roots = RootCertStore::empty();
        roots.add(cert.der().clone()).expect("root");
        let client = |versions: &[&'static rustls::SupportedProtocolVersion]| {
            let mut c = ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(versions)
                .expect("versions")
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            c.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
            c.resumption = Resumption::disabled();
            Arc::new(c)
        };
        Keys {
            server: Arc::new(server),
            clients: [
                client(&[&rustls::version::TLS13, &rustls::version::TLS12]),
                client(&[&rustls::version::TLS13]),
                client(&[&rustls::version::TLS12]),
            ],
        }
    })
}

/// What the input asks for.
struct Plan<'a> {
    flags: u8,
    /// Sizes in which the client's ciphertext arrives in the server's
    /// socket, cyclically (empty: all of it at once).
    arrivals: Vec<usize>,
    /// Read buffer sizes, one per read, cyclically.
    read_bufs: Vec<usize>,
    /// Bytes the server's socket takes per turn.
    write_room: usize,
    /// Faults in the client's ciphertext, by stream offset.
    faults: Vec<Fault>,
    /// The client's plaintext writes, in order.
    writes: Vec<&'a [u8]>,
    budget: usize,
}

#[derive(Debug, Clone, Copy)]
struct Fault {
    at: usize,
    kind: FaultKind,
}

#[derive(Debug, Clone, Copy)]
enum FaultKind {
    /// XOR the byte with a non-zero value.
    Flip(u8),
    /// Insert this many bytes of garbage before it.
    Insert(u8, usize),
    /// Drop it and everything after it, then close TCP.
    Truncate,
}

/// Decodes the input (all fields little-endian, as `arbitrary` reads them):
///
/// - `u8` flags (see the `FLAG_` constants);
/// - `u8` n, then `n & 7` bytes: arrival sizes (as in the chunking prefix:
///   `b + 1` below 0x80, `((b & 0x7f) + 1) * 64` from 0x80);
/// - `u8` m, then `m & 3` bytes: read buffer sizes
///   (`MIN_READ_BUF + b * 1 KiB`, at most 256 KiB);
/// - `u8` write room per turn (as an arrival size);
/// - `u8` budget (flag 0x80: `1 + b % 4`);
/// - `u8` k, then `k & 3` faults of four bytes: `u16` offset into the
///   ciphertext the client sends, `u8` kind (`% 3`: flip, insert, truncate),
///   `u8` value;
/// - `u8` w, then `w & 7` bytes: the sizes the client's plaintext is cut
///   into for its writes (cyclically; none: one write);
/// - the rest: the client's plaintext (after the upgrade request, with
///   flag 0x04).
fn plan(data: &[u8]) -> Plan<'_> {
    let mut u = Unstructured::new(data);
    let byte = |u: &mut Unstructured<'_>| u.arbitrary::<u8>().unwrap_or(0);
    let flags = byte(&mut u);
    let n = byte(&mut u) & 7;
    let arrivals = (0..n).map(|_| chunk_len(byte(&mut u))).collect();
    let m = byte(&mut u) & 3;
    let read_bufs = (0..m)
        .map(|_| (MIN_READ_BUF + usize::from(byte(&mut u)) * 1024).min(MAX_READ_BUF))
        .collect::<Vec<_>>();
    let room = chunk_len(byte(&mut u));
    let budget = byte(&mut u);
    let k = byte(&mut u) & 3;
    let mut faults = Vec::new();
    for _ in 0..k {
        let at = usize::from(u.arbitrary::<u16>().unwrap_or(0));
        let kind = byte(&mut u);
        let value = byte(&mut u);
        let kind = match kind % 3 {
            0 => FaultKind::Flip(value | 1),
            1 => FaultKind::Insert(value, usize::from(value % 32) + 1),
            _ => FaultKind::Truncate,
        };
        faults.push(Fault { at, kind });
    }
    faults.sort_by_key(|f| f.at);
    let w = byte(&mut u) & 7;
    let sizes: Vec<usize> = (0..w).map(|_| chunk_len(byte(&mut u))).collect();
    let body = u.take_rest();
    let mut writes = Vec::new();
    if flags & FLAG_UPGRADE != 0 {
        writes.push(RFC_REQUEST.as_bytes());
    }
    if sizes.is_empty() {
        if !body.is_empty() {
            writes.push(body);
        }
    } else {
        let mut rest = body;
        let mut i = 0;
        let scale = scale_for(body.len(), &sizes, MAX_WRITES);
        while !rest.is_empty() {
            let n = (sizes[i % sizes.len()] * scale).min(rest.len());
            writes.push(&rest[..n]);
            rest = &rest[n..];
            i += 1;
        }
    }
    Plan {
        flags,
        arrivals,
        read_bufs: if read_bufs.is_empty() {
            vec![MAX_READ_BUF]
        } else {
            read_bufs
        },
        write_room: if flags & FLAG_WRITE_ROOM != 0 {
            room
        } else {
            usize::MAX
        },
        faults,
        writes,
        budget: if flags & FLAG_SMALL_BUDGET != 0 {
            1 + usize::from(budget % 4)
        } else {
            1024 // the reactor's default max_messages_per_turn
        },
    }
}

/// How much to multiply `sizes` by so that `total` bytes take about `max`
/// pieces at most.
fn scale_for(total: usize, sizes: &[usize], max: usize) -> usize {
    let cycle: usize = sizes.iter().sum();
    (total * sizes.len() / cycle.max(1)).div_ceil(max).max(1)
}

/// One direction of a TCP connection: bytes sent but not yet arrived, and
/// bytes arrived and not yet read. A read returns what has arrived, so a
/// short read means the socket is empty, as with TCP.
#[derive(Default)]
struct Pipe {
    in_flight: VecDeque<u8>,
    arrived: VecDeque<u8>,
    fin_sent: bool,
    fin_arrived: bool,
    /// Bytes ever sent.
    sent: usize,
}

impl Pipe {
    /// Moves up to `n` bytes (and then the FIN) to the readable side;
    /// whether anything arrived (an edge).
    fn deliver(&mut self, n: usize) -> bool {
        let n = n.min(self.in_flight.len());
        self.arrived.extend(self.in_flight.drain(..n));
        if self.in_flight.is_empty() && self.fin_sent && !self.fin_arrived {
            self.fin_arrived = true;
            return true;
        }
        n > 0
    }
}

/// The client's ciphertext on its way out, with the faults applied.
struct Faults {
    faults: Vec<Fault>,
    next: usize,
    /// Stream offset of the next byte the client produces.
    pos: usize,
    /// A fault changed the stream.
    applied: bool,
    truncated: bool,
}

impl Faults {
    fn send(&mut self, bytes: &[u8], pipe: &mut Pipe) {
        for &b in bytes {
            if self.truncated {
                return;
            }
            let mut b = b;
            while let Some(f) = self.faults.get(self.next).filter(|f| f.at == self.pos) {
                self.next += 1;
                self.applied = true;
                match f.kind {
                    FaultKind::Flip(x) => b ^= x,
                    FaultKind::Insert(v, n) => {
                        pipe.in_flight
                            .extend((0..n).map(|i| v.wrapping_add((i as u8).wrapping_mul(37))));
                        pipe.sent += n;
                    }
                    FaultKind::Truncate => {
                        self.truncated = true;
                        pipe.fin_sent = true;
                        return;
                    }
                }
            }
            pipe.in_flight.push_back(b);
            pipe.sent += 1;
            self.pos += 1;
        }
    }
}

/// The server's socket: reads the client's pipe, writes into the
/// client's, at most `room` bytes a turn.
struct Socket<'a> {
    c2s: &'a mut Pipe,
    s2c: &'a mut Pipe,
    room: &'a mut usize,
}

impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        assert!(!buf.is_empty(), "TLS layer read the socket into no room");
        if self.c2s.arrived.is_empty() {
            return match self.c2s.fin_arrived {
                true => Ok(0),
                false => Err(io::ErrorKind::WouldBlock.into()),
            };
        }
        self.c2s.arrived.read(buf)
    }
}

impl Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        assert!(!self.s2c.fin_sent, "TLS layer wrote after the server's FIN");
        if buf.is_empty() {
            return Ok(0);
        }
        if *self.room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(*self.room);
        *self.room -= n;
        self.s2c.in_flight.extend(&buf[..n]);
        self.s2c.sent += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The rustls client and what it did.
struct Client<'a> {
    conn: ClientConnection,
    writes: VecDeque<&'a [u8]>,
    /// Plaintext rustls took from the client, in order.
    sent: Vec<u8>,
    /// Plaintext the client decrypted from the server.
    received: Vec<u8>,
    error: Option<rustls::Error>,
    close_notify: bool,
    fin: bool,
}

impl Client<'_> {
    fn turn(&mut self, flags: u8, faults: &mut Faults, c2s: &mut Pipe, s2c: &mut Pipe) {
        if self.error.is_none() {
            while let Some(piece) = self.writes.front_mut() {
                let n = self.conn.writer().write(piece).expect("client write");
                if n == 0 {
                    break; // rustls' buffer is full until the handshake ends
                }
                self.sent.extend_from_slice(&piece[..n]);
                *piece = &piece[n..];
                if piece.is_empty() {
                    self.writes.pop_front();
                }
            }
            let done = self.writes.is_empty() && !self.conn.is_handshaking();
            if done && flags & FLAG_CLOSE_NOTIFY != 0 && !self.close_notify {
                self.close_notify = true;
                self.conn.send_close_notify();
            }
        }
        while self.conn.wants_write() && !faults.truncated {
            let mut out = Vec::new();
            self.conn.write_tls(&mut out).expect("client write_tls");
            faults.send(&out, c2s);
        }
        if self.error.is_none() {
            let arrived: Vec<u8> = s2c.arrived.drain(..).collect();
            let mut rd = &arrived[..];
            while !rd.is_empty() {
                match self.conn.read_tls(&mut rd) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => panic!("client read_tls: {e}"),
                }
                if let Err(e) = self.conn.process_new_packets() {
                    self.error = Some(e);
                    break;
                }
                self.take_plaintext();
            }
        } else {
            s2c.arrived.clear();
        }
        // a client that failed sends its alert and hangs up; one that is
        // done hangs up if asked to
        let done = self.writes.is_empty() && !self.conn.is_handshaking();
        let hang_up = self.error.is_some() || (done && flags & FLAG_FIN != 0);
        if hang_up && !self.conn.wants_write() && !self.fin {
            self.fin = true;
            c2s.fin_sent = true;
        }
    }

    fn take_plaintext(&mut self) {
        let mut buf = [0u8; 4096];
        loop {
            match self.conn.reader().read(&mut buf) {
                Ok(0) => return,
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return,
                Err(e) => panic!("client plaintext read: {e}"),
            }
        }
    }
}

/// The server's connection, as the reactor keeps it.
struct Server {
    tls: TlsLayer,
    engine: Connection,
    now: Instant,
    read_buf: Vec<u8>,
    read_bufs: Vec<usize>,
    reads: usize,
    leftover: Option<Vec<u8>>,
    backlog: bool,
    /// The engine's output not yet taken by the layer (the reactor's queue).
    queue: Vec<u8>,
    scratch: Vec<u8>,
    /// The plaintext the layer delivered, in order.
    plain: Vec<u8>,
    /// The engine's output the layer took, in order.
    written: Vec<u8>,
    echo: bool,
    budget: usize,
    /// Readiness: an edge came, or the reactor re-queued the connection.
    edge: bool,
    ready: bool,
    hup: bool,
    peer_eof: bool,
    draining: bool,
    removed: bool,
    /// The one TLS error (the reactor's warning and `tls_errors` count).
    tls_errors: usize,
    tls_error: Option<io::Error>,
    closed: bool,
}

impl Server {
    /// `on_readable`: reads until drained, the per-wakeup cap or the budget.
    fn on_readable(&mut self, sock: &mut Socket<'_>, client_sent: &[u8]) {
        let mut budget = self.budget;
        for _ in 0..MAX_READS_PER_WAKEUP {
            if self.removed || self.draining {
                return;
            }
            if !self.engine.wants_read() {
                return self.settle(sock);
            }
            let kept = match self.leftover.as_deref() {
                Some(leftover) => {
                    self.read_buf[..leftover.len()].copy_from_slice(leftover);
                    leftover.len()
                }
                None => 0,
            };
            let size = self.read_bufs[self.reads % self.read_bufs.len()];
            let space = size.saturating_sub(kept);
            let backlog = std::mem::take(&mut self.backlog);
            let (n, drained) = if backlog || space == 0 {
                (0, false)
            } else {
                self.reads += 1;
                let buf = &mut self.read_buf[kept..size];
                match self.tls.read(sock, buf) {
                    Ok(TlsRead::Eof) => return self.on_eof(sock),
                    Ok(TlsRead::Data { len, drained }) => {
                        assert!(len <= space, "TLS layer returned {len} bytes into {space}");
                        assert!(
                            len > 0 || drained,
                            "TLS layer returned nothing, not drained"
                        );
                        if drained {
                            assert!(
                                sock.c2s.arrived.is_empty(),
                                "TLS layer said drained with {} bytes in the socket",
                                sock.c2s.arrived.len()
                            );
                        }
                        (len, drained)
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        assert!(
                            sock.c2s.arrived.is_empty(),
                            "WouldBlock with {} bytes in the socket (no edge will come)",
                            sock.c2s.arrived.len()
                        );
                        return self.settle(sock);
                    }
                    Err(e) => return self.on_io_error(e),
                }
            };
            self.plain.extend_from_slice(&self.read_buf[kept..kept + n]);
            assert!(
                client_sent.starts_with(&self.plain),
                "the server's plaintext ({} bytes) is not a prefix of what the client sent ({} bytes)",
                self.plain.len(),
                client_sent.len()
            );
            self.leftover = None;
            let filled = kept + n;
            let (consumed, used) = self.process_input(filled, budget);
            budget -= used;
            if consumed < filled && !self.engine.is_closed() {
                self.leftover = Some(self.read_buf[consumed..filled].to_vec());
                self.backlog = budget == 0;
            }
            self.flush_current(sock);
            if self.removed {
                return;
            }
            if budget == 0 {
                break;
            }
            if backlog {
                continue;
            }
            if drained && !self.hup {
                return self.settle(sock);
            }
        }
        self.ready = true;
        self.settle(sock);
    }

    /// `process_input`: the engine over `read_buf[..filled]`, at most
    /// `budget` events.
    fn process_input(&mut self, filled: usize, budget: usize) -> (usize, usize) {
        let mut pos = 0;
        let mut events = 0;
        loop {
            let input = &mut self.read_buf[pos..filled];
            let available = input.len();
            let (used, event) = self.engine.handle_input(self.now, input, &mut self.scratch);
            assert!(used <= available, "engine consumed {used} of {available}");
            pos += used;
            let Some(event) = event else { break };
            match event {
                Event::Upgrade(_) => self.engine.accept(&mut self.scratch).expect("accept"),
                Event::HttpRequest(_) => self
                    .engine
                    .respond(404, "text/plain", &[], b"not here\n", &mut self.scratch)
                    .expect("respond"),
                Event::Rejected(_) | Event::Ping(_) | Event::Pong(_) => {}
                Event::Message(m) => {
                    if self.echo && self.engine.state() == State::Open {
                        self.engine
                            .send(m.kind(), m.as_bytes(), &mut self.scratch)
                            .expect("echo refused");
                    }
                }
                Event::Closed(_) => {
                    assert!(!self.closed, "second Closed");
                    self.closed = true;
                }
                other => panic!("server engine gave {other:?}"),
            }
            events += 1;
            assert!(events <= filled + 1, "events without input");
            if pos == filled || events == budget {
                break;
            }
        }
        (pos, events)
    }

    /// `flush_current`: the scratch output, behind what is queued.
    fn flush_current(&mut self, sock: &mut Socket<'_>) {
        self.queue.extend_from_slice(&self.scratch);
        self.scratch.clear();
        self.write_queue(sock);
    }

    /// `on_writable`: flush the layer, then the queue.
    fn on_writable(&mut self, sock: &mut Socket<'_>) {
        if self.removed || self.draining {
            return;
        }
        if self.queue.is_empty() && !self.tls.wants_write() {
            return;
        }
        if let Err(e) = self.tls.flush(sock) {
            return self.on_io_error(e);
        }
        self.write_queue(sock);
        if !self.removed {
            self.settle(sock);
        }
    }

    fn write_queue(&mut self, sock: &mut Socket<'_>) {
        let mut calls = 0;
        while !self.queue.is_empty() {
            calls += 1;
            assert!(calls < 10_000, "write_vectored loops");
            // the queue as the reactor's does it: several slices
            let (a, b) = self.queue.split_at(self.queue.len() / 2);
            let slices = [IoSlice::new(a), IoSlice::new(b)];
            match self.tls.write_vectored(sock, &slices) {
                Ok(0) => panic!("TLS layer took 0 of {} bytes", self.queue.len()),
                Ok(n) => {
                    assert!(n <= self.queue.len());
                    self.written.extend(self.queue.drain(..n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return self.on_io_error(e),
            }
            assert!(
                self.tls.pending() <= MAX_PENDING,
                "TLS layer holds {} bytes of ciphertext",
                self.tls.pending()
            );
        }
    }

    /// `settle`: a closed engine's goodbye (flush, `close_notify`, FIN).
    fn settle(&mut self, sock: &mut Socket<'_>) {
        if self.removed || !self.engine.is_closed() {
            return;
        }
        let flushed = self.queue.is_empty() && !self.tls.wants_write();
        if flushed && self.peer_eof {
            return self.remove(sock);
        }
        let said_goodbye = match flushed && !self.draining {
            true => self.tls.close(sock),
            false => Ok(true),
        };
        let Ok(said_goodbye) = said_goodbye else {
            return self.remove(sock);
        };
        if flushed && said_goodbye && !self.draining {
            self.draining = true;
            sock.s2c.fin_sent = true;
        }
    }

    fn on_eof(&mut self, sock: &mut Socket<'_>) {
        self.leftover = None;
        self.peer_eof = true;
        if let Some(event) = self.engine.handle_eof(self.now) {
            match event {
                Event::Closed(_) => {
                    assert!(!self.closed, "second Closed");
                    self.closed = true;
                }
                // an upgrade request cut short by the end of the stream
                Event::Rejected(_) => assert!(self.engine.is_closed()),
                other => panic!("EOF gave {other:?}"),
            }
        }
        self.flush_current(sock);
        self.settle(sock);
    }

    /// `on_io_error`: a TLS error is `InvalidData`, warned about and
    /// counted once; the connection is removed.
    fn on_io_error(&mut self, e: io::Error) {
        assert_eq!(
            e.kind(),
            io::ErrorKind::InvalidData,
            "TLS layer reported {e} as {:?}, not InvalidData",
            e.kind()
        );
        assert!(!self.removed);
        self.tls_errors += 1;
        self.tls_error = Some(e);
        self.queue.clear();
        self.removed = true;
    }

    fn remove(&mut self, sock: &mut Socket<'_>) {
        self.removed = true;
        sock.s2c.fin_sent = true;
    }
}

/// An in-memory rustls client (TLS 1.3 and/or 1.2, chosen by the input)
/// talks to a server-side [`TlsLayer`] driven as the reactor drives it,
/// the engine behind it under [`small_config`](super::small_config). The
/// input chooses the client's plaintext (flag 0x04 puts the RFC upgrade
/// request first, so frames reach the engine), how it is cut into writes,
/// the sizes in which ciphertext arrives in the server's socket (a short
/// read means an empty socket, as with TCP, and readiness is
/// edge-triggered), the read buffer sizes, how much the server's socket
/// takes per turn, and up to three faults in the ciphertext (a flipped
/// byte, inserted garbage, a truncation). See [`plan`] for the layout.
///
/// Checks: no panic; no livelock (the exchange settles within a bounded
/// number of turns); the plaintext the layer delivers is always a prefix of
/// what the client sent, and, with no fault, all of it once everything
/// arrived (nothing stuck inside rustls behind a "drained" read or a
/// `WouldBlock`) and at `close_notify`; `WouldBlock` and "drained" only
/// with an empty socket; every error of the layer is `InvalidData`, comes
/// at most once and never without a fault (or a client that failed); the
/// client decrypts a prefix of what the layer took from the engine, and
/// all of it when nothing failed; the ciphertext the layer holds within
/// one write's worth; and the heap bounded.
pub fn tls(data: &[u8]) {
    let keys = keys();
    let p = plan(data);
    let version = match p.flags & VERSIONS {
        1 => 1,
        2 => 2,
        _ => 0,
    };
    let meter = HeapMeter::start();
    let now = Instant::now();
    let server_name = ServerName::try_from("localhost").expect("name");
    let mut client = Client {
        conn: ClientConnection::new(keys.clients[version].clone(), server_name).expect("client"),
        writes: p.writes.iter().copied().collect(),
        sent: Vec::new(),
        received: Vec::new(),
        error: None,
        close_notify: false,
        fin: false,
    };
    let server_conn = ServerConnection::new(keys.server.clone()).expect("server");
    let mut server = Server {
        tls: TlsLayer::new(rustls::Connection::Server(server_conn)),
        engine: Connection::server(now, Arc::new(small_config())),
        now,
        read_buf: vec![0; *p.read_bufs.iter().max().unwrap()],
        read_bufs: p.read_bufs.clone(),
        reads: 0,
        leftover: None,
        backlog: false,
        queue: Vec::new(),
        scratch: Vec::new(),
        plain: Vec::new(),
        written: Vec::new(),
        echo: p.flags & FLAG_ECHO != 0,
        budget: p.budget,
        edge: false,
        ready: false,
        hup: false,
        peer_eof: false,
        draining: false,
        removed: false,
        tls_errors: 0,
        tls_error: None,
        closed: false,
    };
    let mut faults = Faults {
        faults: p.faults.clone(),
        next: 0,
        pos: 0,
        applied: false,
        truncated: false,
    };
    let mut c2s = Pipe::default();
    let mut s2c = Pipe::default();
    let total: usize = p.writes.iter().map(|w| w.len()).sum::<usize>() + (8 << 10);
    let scale = match p.arrivals.is_empty() {
        true => 1,
        false => scale_for(total, &p.arrivals, MAX_ARRIVALS),
    };
    let mut arrival = 0;
    let mut turns = 0;
    let mut last = None;
    loop {
        turns += 1;
        assert!(
            turns <= MAX_TURNS,
            "no end after {MAX_TURNS} turns (livelock)"
        );
        client.turn(p.flags, &mut faults, &mut c2s, &mut s2c);
        // ciphertext arrives
        let n = match p.arrivals.is_empty() {
            true => usize::MAX,
            false => p.arrivals[arrival % p.arrivals.len()] * scale,
        };
        if !c2s.in_flight.is_empty() {
            arrival += 1;
        }
        if c2s.deliver(n) {
            server.edge = true;
            server.hup |= c2s.fin_arrived;
        }
        let mut room = p.write_room;
        let mut sock = Socket {
            c2s: &mut c2s,
            s2c: &mut s2c,
            room: &mut room,
        };
        if server.removed {
            // the reactor dropped the connection: no more readiness
            server.edge = false;
            server.ready = false;
        } else {
            // the client read what came: the socket is writable
            server.on_writable(&mut sock);
            if std::mem::take(&mut server.edge) | std::mem::take(&mut server.ready) {
                server.on_readable(&mut sock, &client.sent);
            }
        }
        s2c.deliver(usize::MAX);
        let state = (
            c2s.sent,
            c2s.in_flight.len(),
            s2c.sent,
            s2c.arrived.len(),
            client.sent.len(),
            server.plain.len(),
            server.written.len(),
            [
                c2s.fin_arrived,
                s2c.fin_sent,
                client.error.is_some(),
                server.removed,
                server.draining,
                server.tls.wants_write(),
            ],
        );
        let idle = !server.edge && !server.ready && c2s.in_flight.is_empty();
        if idle && last == Some(state) {
            break;
        }
        last = Some(state);
    }

    // the end: everything that could move has
    assert!(server.tls_errors <= 1, "more than one TLS error");
    let clean = !faults.applied && client.error.is_none();
    if let Some(e) = &server.tls_error {
        assert!(!clean, "TLS error without a fault: {e}");
    }
    if clean {
        assert!(server.tls_error.is_none());
        let all_written = client.writes.is_empty() && !client.conn.wants_write();
        if all_written && (server.engine.wants_read() || server.peer_eof) {
            assert!(
                server.plain == client.sent,
                "the server's plaintext stopped at {} of {} bytes (stuck in the layer)",
                server.plain.len(),
                client.sent.len()
            );
        }
    }
    assert!(
        server.written.starts_with(&client.received),
        "the client decrypted {} bytes the engine never wrote",
        client.received.len()
    );
    if client.error.is_none() && server.tls_error.is_none() && server.queue.is_empty() {
        assert!(
            client.received == server.written,
            "the client decrypted {} of the {} bytes the layer took",
            client.received.len(),
            server.written.len()
        );
    }
    // (no check that the client heard an alert: rustls queues none for
    // some errors, e.g. a handshake message over its size limit, whose
    // peer sees only the TCP close)
    if HeapMeter::active() {
        let limit = ENGINE_HEAP_LIMIT + (2 << 20) + 16 * data.len() as isize;
        assert!(
            meter.peak() <= limit,
            "heap peaked at {} bytes (limit {limit})",
            meter.peak()
        );
    }
}
