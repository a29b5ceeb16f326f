//! `floor`: not a WebSocket library but a yardstick. It does only what no
//! echo server can avoid on this machine: one edge-triggered epoll loop
//! (mio), one `recv` and one `send` (or `writev`) per batch of frames,
//! unmasking the payload in place (with edgews' own unmasking, the fastest
//! this crate knows) and sending it from where it lies. It validates
//! nothing a real server must (UTF-8, opcodes, reserved bits, lengths, the
//! handshake's headers beyond the key), keeps no timers, and gives every
//! connection a 256 KiB buffer: a larger frame ends the connection, and the
//! idle-memory test would mean nothing.
//!
//! Its figures in `benches/compare.sh` are what a server whose own code cost
//! nothing would reach with the same kernel work: the bound on every real
//! server's msg/s and user-space share in the same run.

use crate::event_loop::{self, LISTENER};
use crate::lean;
use edgews::protocol::accept::accept_key;
use edgews::protocol::mask::apply_mask;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll, Token};
use std::io::{self, IoSlice, Read};
use std::net::SocketAddr;

/// Each connection's input buffer: room for a 64 KiB frame and more.
const READ_BUFFER: usize = 256 << 10;
/// Frames echoed per `writev` at most.
const MAX_PIECES: usize = 8;

struct Conn {
    stream: TcpStream,
    /// Received bytes; `input[start..end]` is not processed yet (an
    /// incomplete frame or handshake).
    input: Box<[u8]>,
    start: usize,
    end: usize,
    /// Output the kernel did not take yet.
    out: Vec<u8>,
    open: bool,
    closing: bool,
}

/// Serves until killed.
pub fn serve(addr: SocketAddr) -> io::Result<()> {
    let mut conns: slab::Slab<Conn> = slab::Slab::new();
    event_loop::run(addr, TcpListener::bind, |poll, listener, events| {
        for event in events.iter() {
            if event.token() == LISTENER {
                accept_one(poll, listener, &mut conns);
                continue;
            }
            let key = event.token().0;
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            let mut done = false;
            if event.is_writable() && !conn.out.is_empty() {
                done = flush(conn).is_err();
            }
            if !done && (event.is_readable() || event.is_read_closed() || event.is_error()) {
                done = on_readable(conn).is_err();
            }
            if done || (conn.closing && conn.out.is_empty()) {
                let mut conn = conns.remove(key);
                let _ = poll.registry().deregister(&mut conn.stream);
            }
        }
    })
}

fn accept_one(poll: &Poll, listener: &TcpListener, conns: &mut slab::Slab<Conn>) {
    let Some(mut stream) = event_loop::accept(listener, "floor") else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let entry = conns.vacant_entry();
    let token = Token(entry.key());
    let interest = Interest::READABLE | Interest::WRITABLE;
    if poll
        .registry()
        .register(&mut stream, token, interest)
        .is_ok()
    {
        entry.insert(Conn {
            stream,
            input: vec![0; READ_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            out: Vec::new(),
            open: false,
            closing: false,
        });
    }
}

/// Reads until drained, straight into the connection's own buffer, so a
/// frame that arrives in pieces is never copied; `Err` ends the connection.
fn on_readable(conn: &mut Conn) -> io::Result<()> {
    loop {
        if conn.start == conn.end {
            (conn.start, conn.end) = (0, 0);
        } else if conn.end == conn.input.len() {
            // an incomplete frame at the end: move it to the front
            conn.input.copy_within(conn.start..conn.end, 0);
            (conn.start, conn.end) = (0, conn.end - conn.start);
            if conn.end == conn.input.len() {
                return Err(io::ErrorKind::InvalidData.into()); // larger than the buffer
            }
        }
        let space = conn.input.len() - conn.end;
        let n = match conn.stream.read(&mut conn.input[conn.end..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        conn.end += n;
        let mut input = std::mem::take(&mut conn.input);
        let range = conn.start..conn.end;
        let result = if conn.open {
            echo_frames(conn, &mut input[range])
        } else {
            handshake(conn, &input[range])
        };
        conn.input = input;
        conn.start += result?;
        if n < space || conn.closing {
            return Ok(());
        }
    }
}

/// Answers the upgrade once its head is complete. Returns the bytes used.
fn handshake(conn: &mut Conn, input: &[u8]) -> io::Result<usize> {
    let Some(end) = input.windows(4).position(|w| w == b"\r\n\r\n") else {
        if input.len() > 16 << 10 {
            return Err(io::ErrorKind::InvalidData.into());
        }
        return Ok(0);
    };
    let head = std::str::from_utf8(&input[..end]).map_err(|_| io::ErrorKind::InvalidData)?;
    let key = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-key"))
        .map(|(_, value)| value.trim())
        .ok_or(io::ErrorKind::InvalidData)?;
    let accept = accept_key(key.as_bytes());
    let accept = std::str::from_utf8(&accept).map_err(|_| io::ErrorKind::InvalidData)?;
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    conn.open = true;
    send(conn, &[IoSlice::new(response.as_bytes())])?;
    Ok(end + 4)
}

/// Unmasks every whole frame in `input` and sends them back unmasked in
/// one `writev`, each frame's new header written over its mask key.
/// Returns the bytes used.
fn echo_frames(conn: &mut Conn, input: &mut [u8]) -> io::Result<usize> {
    let mut pieces = [(0, 0); MAX_PIECES];
    let mut count = 0;
    let mut pos = 0;
    while let Some((header, len)) = lean::frame_at(&input[pos..]) {
        let payload = pos + header;
        let end = payload + len;
        let mut key = [0u8; 4];
        key.copy_from_slice(&input[payload - 4..payload]);
        apply_mask(&mut input[payload..end], key, 0);
        let first = input[pos];
        let opcode = first & 0x0f;
        let reply = match opcode {
            0x9 => 0x80 | 0xA, // ping: pong
            0xA => {
                pos = end; // pong: nothing to answer
                continue;
            }
            0x8 => {
                conn.closing = true;
                first
            }
            _ => first,
        };
        // header without the mask key, written to end just before the payload
        let start = match len {
            0..=125 => {
                input[payload - 2..payload].copy_from_slice(&[reply, len as u8]);
                payload - 2
            }
            126..=0xFFFF => {
                input[payload - 4] = reply;
                input[payload - 3] = 126;
                input[payload - 2..payload].copy_from_slice(&(len as u16).to_be_bytes());
                payload - 4
            }
            _ => {
                // 2 + 8 header bytes: 10 in front of the payload, where the
                // masked header had 14
                input[payload - 10] = reply;
                input[payload - 9] = 127;
                input[payload - 8..payload].copy_from_slice(&(len as u64).to_be_bytes());
                payload - 10
            }
        };
        pieces[count] = (start, end);
        count += 1;
        pos = end;
        if count == MAX_PIECES {
            send_pieces(conn, input, &pieces[..count])?;
            count = 0;
        }
        if conn.closing {
            break;
        }
    }
    send_pieces(conn, input, &pieces[..count])?;
    Ok(pos)
}

/// Sends `input[start..end]` of every piece in one `writev`.
fn send_pieces(conn: &mut Conn, input: &[u8], pieces: &[(usize, usize)]) -> io::Result<()> {
    match pieces {
        [] => return Ok(()),
        &[(start, end)] => return send(conn, &[IoSlice::new(&input[start..end])]),
        _ => {}
    }
    let slices: [IoSlice<'_>; MAX_PIECES] = std::array::from_fn(|i| match pieces.get(i) {
        Some(&(start, end)) => IoSlice::new(&input[start..end]),
        None => IoSlice::new(&[]),
    });
    send(conn, &slices[..pieces.len()])
}

/// Writes `pieces` behind anything queued; queues what the kernel leaves.
fn send(conn: &mut Conn, pieces: &[IoSlice<'_>]) -> io::Result<()> {
    lean::send(&mut conn.stream, &mut conn.out, pieces)
}

/// Writes what is queued until done or the kernel takes no more.
fn flush(conn: &mut Conn) -> io::Result<()> {
    lean::flush(&mut conn.stream, &mut conn.out)
}
