//! `connect-floor`: not a WebSocket server but the kernel-work floor of a
//! connection's whole life, as `floor` is of an echo: accept, read the
//! upgrade (only the end of the head and the `Sec-WebSocket-Key` are
//! looked for), write the 101, echo data frames (unmasked in place with
//! edgews' unmasking, sent from where they lie), answer a close frame with
//! a close frame and then close the TCP connection (the server closes
//! first, RFC 6455 §7.1.1), and close on the end of the stream.
//!
//! Unlike `floor` it keeps no buffer per connection: one read buffer
//! serves all (see lean.rs), the 101 is built on the stack, and the socket
//! is registered for readability alone (writability only once a write
//! falls short). What a connection costs is its slab entry and these
//! system calls, per life:
//!
//! ```text
//! accept4, epoll_ctl(ADD)          the connection (TCP_NODELAY inherited)
//! read, write                      the upgrade and the 101
//! read, write                      one echo
//! read, write, close               the close frame, its answer, the end
//!   or: read (0), close            a client that just drops TCP
//! ```
//!
//! plus its share of `epoll_wait` (the listener is level-triggered, so no
//! `accept4` finds the backlog empty: see event_loop.rs). No timers, no
//! validation, no logging.

use crate::event_loop::{self, LISTENER};
use crate::lean::{self, ReadEnd};
use edgews::protocol::mask::apply_mask;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::ops::Range;

struct Conn {
    stream: TcpStream,
    /// Whether the 101 is sent.
    open: bool,
    /// An incomplete head or frame; empty (unallocated) otherwise.
    pending: Vec<u8>,
    /// Output the kernel did not take yet; while any is left the socket is
    /// registered for writability too.
    out: Vec<u8>,
    /// Reading is over: closed once `out` is written.
    done: bool,
}

/// Serves until killed.
pub fn serve(addr: SocketAddr) -> io::Result<()> {
    let mut conns = slab::Slab::new();
    let mut buf = vec![0u8; lean::READ_BUFFER];
    event_loop::run(addr, lean::bind, |poll, listener, events| {
        for event in events.iter() {
            if event.token() == LISTENER {
                lean::accept_one(poll, listener, &mut conns, Interest::READABLE, |stream| {
                    Conn {
                        stream,
                        open: false,
                        pending: Vec::new(),
                        out: Vec::new(),
                        done: false,
                    }
                });
                continue;
            }
            let token = event.token();
            let Some(conn) = conns.get_mut(token.0) else {
                continue;
            };
            if event.is_writable() && lean::flush(&mut conn.stream, &mut conn.out).is_err() {
                (conn.done, conn.out) = (true, Vec::new());
            }
            if !conn.done && (event.is_readable() || event.is_read_closed() || event.is_error()) {
                let read_closed = event.is_read_closed();
                on_readable(poll.registry(), token, conn, &mut buf, read_closed);
            }
            if conn.done && conn.out.is_empty() {
                // Dropping the socket closes it, which also takes it out
                // of the epoll set.
                conns.remove(token.0);
            }
        }
    })
}

/// Answers the upgrade and echoes what came, until drained or done.
fn on_readable(registry: &Registry, token: Token, conn: &mut Conn, buf: &mut [u8], fin: bool) {
    let Conn {
        stream,
        open,
        pending,
        out,
        done,
    } = conn;
    let end = lean::read_with(stream, buf, pending, fin, |stream, input| {
        let was_idle = out.is_empty();
        let Some(pos) = lean::frames_start(stream, out, open, input)? else {
            return Some(0); // the head is not all in yet
        };
        let (reply, used, closing) = echo_frames(input, pos);
        if !reply.is_empty() {
            lean::send(stream, out, &[IoSlice::new(&input[reply])]).ok()?;
        }
        if was_idle && !out.is_empty() {
            let interest = Interest::READABLE | Interest::WRITABLE;
            registry.reregister(stream, token, interest).ok()?;
        }
        (!closing).then_some(used)
    });
    if let ReadEnd::Done = end {
        *done = true;
    }
}

/// Unmasks every whole frame in `input` from `pos` on and makes the
/// answers one run of bytes: each frame's server header is written over
/// its mask key, and frames after the first are moved up behind it.
/// Pongs are dropped, pings answered, a close echoed as the last answer.
/// Returns the answers' range, the bytes used, and whether a close came.
fn echo_frames(input: &mut [u8], mut pos: usize) -> (Range<usize>, usize, bool) {
    let mut reply = pos..pos;
    while let Some((header, len)) = lean::frame_at(&input[pos..]) {
        let payload = pos + header;
        let end = payload + len;
        let mut key = [0u8; 4];
        key.copy_from_slice(&input[payload - 4..payload]);
        apply_mask(&mut input[payload..end], key, 0);
        let first = match input[pos] & 0x0f {
            0x9 => 0x80 | 0xA, // ping: pong
            0xA => {
                pos = end; // pong: nothing to answer
                continue;
            }
            _ => input[pos],
        };
        let (head, n) = lean::server_header(first, len);
        let start = payload - n;
        input[start..payload].copy_from_slice(&head[..n]);
        if reply.is_empty() {
            reply = start..end;
        } else {
            input.copy_within(start..end, reply.end);
            reply.end += end - start;
        }
        pos = end;
        if first & 0x0f == 0x8 {
            return (reply, pos, true);
        }
    }
    (reply, pos, false)
}
