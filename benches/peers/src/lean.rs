//! What `connect-floor` and `fanout-floor` share: the floors that keep no
//! buffer per connection. One read buffer serves every connection; only
//! the bytes of an incomplete head or frame are kept apart (in a `Vec`
//! that allocates nothing until a read ends mid-frame). The listener sets
//! `TCP_NODELAY`, which Linux copies to every accepted socket, so no
//! connection pays a `setsockopt`; closing a socket drops it from the
//! epoll set, so none pays an `EPOLL_CTL_DEL` either.
//!
//! `floor` borrows `frame_at`, `send` and `flush` from here (it keeps its
//! own buffers, listener and accept); the event loop that all four floors
//! share is in event_loop.rs.

use edgews::protocol::accept::{accept_key, ACCEPT_LEN};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll, Token};
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;

/// The one read buffer's size: a read that fills it is followed by
/// another, so it bounds nothing but the bytes taken per `recv`.
pub const READ_BUFFER: usize = 64 << 10;
/// The most bytes a connection may hold of an incomplete head or frame;
/// a larger frame ends the connection.
pub const MAX_PENDING: usize = 1 << 20;
/// The most bytes of an upgrade request's head.
const MAX_HEAD: usize = 16 << 10;
/// As edgews' listener: bursts of connects are queued, not dropped.
const BACKLOG: i32 = 4096;

const SWITCHING: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Accept: ";
/// The length of the 101 response.
pub const RESPONSE_LEN: usize = SWITCHING.len() + ACCEPT_LEN + 4;

/// A non-blocking listener with `SO_REUSEADDR`, `TCP_NODELAY` (inherited
/// by what it accepts) and a deep backlog.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Accepts the connection the listener was reported for (see
/// [`event_loop::accept`](crate::event_loop::accept)), registering it
/// (edge-triggered, with `interest`) under its slab key, where `make`
/// stores it.
pub fn accept_one<C>(
    poll: &Poll,
    listener: &TcpListener,
    conns: &mut slab::Slab<C>,
    interest: Interest,
    make: impl FnOnce(TcpStream) -> C,
) {
    let Some(mut stream) = crate::event_loop::accept(listener, "edgews-peers") else {
        return;
    };
    let entry = conns.vacant_entry();
    let token = Token(entry.key());
    if poll
        .registry()
        .register(&mut stream, token, interest)
        .is_ok()
    {
        entry.insert(make(stream));
    }
}

/// Once `input` holds a whole request head: the bytes it takes and the
/// 101 response, built on the stack. Only the end of the head and the
/// `Sec-WebSocket-Key` are looked for; nothing is validated.
pub fn upgrade(input: &[u8]) -> io::Result<Option<(usize, [u8; RESPONSE_LEN])>> {
    let Some(end) = input.windows(4).position(|w| w == b"\r\n\r\n") else {
        if input.len() > MAX_HEAD {
            return Err(io::ErrorKind::InvalidData.into());
        }
        return Ok(None);
    };
    let key = input[..end]
        .split(|&b| b == b'\n')
        .find_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let name = line[..colon].trim_ascii();
            name.eq_ignore_ascii_case(b"sec-websocket-key")
                .then(|| line[colon + 1..].trim_ascii())
        })
        .ok_or(io::ErrorKind::InvalidData)?;
    let mut response = [0u8; RESPONSE_LEN];
    let (head, rest) = response.split_at_mut(SWITCHING.len());
    head.copy_from_slice(SWITCHING);
    rest[..ACCEPT_LEN].copy_from_slice(&accept_key(key));
    rest[ACCEPT_LEN..].copy_from_slice(b"\r\n\r\n");
    Ok(Some((end + 4, response)))
}

/// Until `*open`, answers the upgrade once `input` holds its whole head,
/// the 101 sent behind whatever `out` holds. Where the frames in `input`
/// begin: `Some(Some(at))` (0 once open), `Some(None)` while the head is
/// incomplete, `None` to end the connection (a bad head, a failed send).
pub fn frames_start(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    open: &mut bool,
    input: &[u8],
) -> Option<Option<usize>> {
    if *open {
        return Some(Some(0));
    }
    let (used, response) = match upgrade(input) {
        Ok(Some(answer)) => answer,
        Ok(None) => return Some(None),
        Err(_) => return None,
    };
    send(stream, out, &[IoSlice::new(&response)]).ok()?;
    *open = true;
    Some(Some(used))
}

/// The header length and payload length of a whole masked frame at the
/// start of `input`, or `None` while it is incomplete.
pub fn frame_at(input: &[u8]) -> Option<(usize, usize)> {
    if input.len() < 2 {
        return None;
    }
    let (header, len): (usize, usize) = match input[1] & 0x7f {
        126 if input.len() >= 4 => (8, u16::from_be_bytes([input[2], input[3]]) as usize),
        127 if input.len() >= 10 => {
            let mut n = [0u8; 8];
            n.copy_from_slice(&input[2..10]);
            (14, u64::from_be_bytes(n) as usize)
        }
        126 | 127 => return None,
        n => (6, n as usize),
    };
    let total = header.checked_add(len)?;
    (input.len() >= total).then_some((header, len))
}

/// A server frame's header for `len` bytes of payload, and its length.
pub fn server_header(first: u8, len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = first;
    match len {
        0..=125 => {
            h[1] = len as u8;
            (h, 2)
        }
        126..=0xFFFF => {
            h[1] = 126;
            h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            (h, 4)
        }
        _ => {
            h[1] = 127;
            h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            (h, 10)
        }
    }
}

/// What a read ended with.
pub enum ReadEnd {
    /// Nothing more to read now.
    Drained,
    /// The end of the stream, an error, or `process` said so: close the
    /// connection (once what it owes is written).
    Done,
}

/// Reads `stream` until drained, into `buf` (shared by every connection),
/// handing `process` the stream (to answer on) and each run of unprocessed bytes: `pending` (the
/// connection's incomplete head or frame, if any) followed by what was
/// read. `process` returns how many bytes it used, or `None` to read no
/// more (a close answered, or bytes it refuses). A short read means drained; when `read_closed` (the event
/// said the peer's FIN is in), a short read also means the end of the
/// stream, and no read is spent learning it.
pub fn read_with(
    stream: &mut TcpStream,
    buf: &mut [u8],
    pending: &mut Vec<u8>,
    read_closed: bool,
    mut process: impl FnMut(&mut TcpStream, &mut [u8]) -> Option<usize>,
) -> ReadEnd {
    loop {
        let n = match stream.read(buf) {
            Ok(0) => return ReadEnd::Done,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadEnd::Drained,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return ReadEnd::Done,
        };
        if pending.is_empty() {
            let Some(used) = process(stream, &mut buf[..n]) else {
                return ReadEnd::Done;
            };
            pending.extend_from_slice(&buf[used..n]);
        } else {
            // a head or frame that came in pieces: the rare path
            let mut input = std::mem::take(pending);
            input.extend_from_slice(&buf[..n]);
            let Some(used) = process(stream, &mut input) else {
                return ReadEnd::Done;
            };
            input.drain(..used);
            *pending = input;
        }
        if pending.len() > MAX_PENDING {
            return ReadEnd::Done;
        }
        if n < buf.len() {
            return if read_closed {
                ReadEnd::Done
            } else {
                ReadEnd::Drained
            };
        }
    }
}

/// Writes `pieces` behind whatever `out` holds, in one `writev`; queues
/// what the kernel does not take.
pub fn send(stream: &mut TcpStream, out: &mut Vec<u8>, pieces: &[IoSlice<'_>]) -> io::Result<()> {
    if !out.is_empty() {
        for piece in pieces {
            out.extend_from_slice(piece);
        }
        return flush(stream, out);
    }
    let mut written = match stream.write_vectored(pieces) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    for piece in pieces {
        let skip = written.min(piece.len());
        out.extend_from_slice(&piece[skip..]);
        written -= skip;
    }
    Ok(())
}

/// Writes what `out` holds until done or the kernel takes no more.
pub fn flush(stream: &mut TcpStream, out: &mut Vec<u8>) -> io::Result<()> {
    while !out.is_empty() {
        match stream.write(out) {
            Ok(n) => {
                out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
