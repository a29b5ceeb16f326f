//! `fanout-floor`: not a WebSocket server but the kernel-work floor of
//! broadcast, as `floor` is of echo. Each data frame a client sends is
//! unmasked and re-framed once, as a server frame, into the frames of this
//! turn of the event loop; at the turn's end every other open connection
//! gets all of them that it did not send itself, in order, in one `writev`
//! straight from there (queued only when the kernel takes less). So a
//! recipient costs one system call per turn however many messages the
//! turn carried, as in edgews' own batching of writes.
//!
//! It validates nothing (opcodes, reserved bits, UTF-8, fragments: a
//! frame goes out as it came, FIN and opcode kept), answers pings and
//! close frames (closing after the answer), and keeps no buffer per
//! connection but what the kernel would not take (see lean.rs).

use crate::event_loop::{self, LISTENER};
use crate::lean::{self, ReadEnd};
use edgews::protocol::mask::apply_mask;
use mio::net::TcpStream;
use mio::Interest;
use std::io::{self, IoSlice};
use std::net::SocketAddr;

/// Runs of frames sent per `writev` at most.
const MAX_PIECES: usize = 64;

struct Conn {
    stream: TcpStream,
    /// Never reused, unlike the slab key: what a frame's sender is known by.
    id: u64,
    /// Whether the 101 is sent; only then does the connection receive.
    open: bool,
    /// An incomplete head or frame; empty (unallocated) otherwise.
    pending: Vec<u8>,
    /// Output the kernel did not take yet.
    out: Vec<u8>,
    /// Reading is over: closed once `out` is written.
    done: bool,
}

/// The data frames of one turn of the event loop.
#[derive(Default)]
struct Round {
    /// Each frame re-framed: a server header, the unmasked payload.
    bytes: Vec<u8>,
    /// Each frame's sender and range in `bytes`, in the order they came.
    frames: Vec<(u64, usize, usize)>,
    /// One recipient's share: `frames` without its own, runs merged.
    ranges: Vec<(usize, usize)>,
    /// Recipients whose socket failed.
    dead: Vec<usize>,
}

/// Serves until killed.
pub fn serve(addr: SocketAddr) -> io::Result<()> {
    let mut conns = slab::Slab::new();
    let mut buf = vec![0u8; lean::READ_BUFFER];
    let mut round = Round::default();
    let mut next_id = 0u64;
    event_loop::run(addr, lean::bind, |poll, listener, events| {
        for event in events.iter() {
            if event.token() == LISTENER {
                let interest = Interest::READABLE | Interest::WRITABLE;
                lean::accept_one(poll, listener, &mut conns, interest, |stream| {
                    next_id += 1;
                    Conn {
                        stream,
                        id: next_id,
                        open: false,
                        pending: Vec::new(),
                        out: Vec::new(),
                        done: false,
                    }
                });
                continue;
            }
            let key = event.token().0;
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            if event.is_writable() && lean::flush(&mut conn.stream, &mut conn.out).is_err() {
                (conn.done, conn.out) = (true, Vec::new());
            }
            if !conn.done && (event.is_readable() || event.is_read_closed() || event.is_error()) {
                on_readable(conn, &mut buf, &mut round, event.is_read_closed());
            }
            if conn.done && conn.out.is_empty() {
                conns.remove(key); // closing it takes it out of the epoll set
            }
        }
        if !round.frames.is_empty() {
            deliver(&mut conns, &mut round);
        }
    })
}

/// Answers the upgrade, then adds each data frame to `round` and answers
/// pings and a close on the spot.
fn on_readable(conn: &mut Conn, buf: &mut [u8], round: &mut Round, fin: bool) {
    let Conn {
        stream,
        id,
        open,
        pending,
        out,
        done,
    } = conn;
    let end = lean::read_with(stream, buf, pending, fin, |stream, input| {
        let Some(mut pos) = lean::frames_start(stream, out, open, input)? else {
            return Some(0); // the head is not all in yet
        };
        while let Some((header, len)) = lean::frame_at(&input[pos..]) {
            let payload = pos + header;
            let end = payload + len;
            let mut key = [0u8; 4];
            key.copy_from_slice(&input[payload - 4..payload]);
            let first = input[pos];
            pos = end;
            match first & 0x0f {
                0xA => {} // pong
                op @ (0x8 | 0x9) => {
                    apply_mask(&mut input[payload..end], key, 0);
                    let answer = if op == 0x8 { first } else { 0x80 | 0xA };
                    let (head, n) = lean::server_header(answer, len);
                    let pieces = [IoSlice::new(&head[..n]), IoSlice::new(&input[payload..end])];
                    lean::send(stream, out, &pieces).ok()?;
                    if op == 0x8 {
                        return None; // closed once the answer is written
                    }
                }
                _ => {
                    let (head, n) = lean::server_header(first, len);
                    let start = round.bytes.len();
                    round.bytes.extend_from_slice(&head[..n]);
                    round.bytes.extend_from_slice(&input[payload..end]);
                    apply_mask(&mut round.bytes[start + n..], key, 0);
                    round.frames.push((*id, start, round.bytes.len()));
                }
            }
        }
        Some(pos)
    });
    if let ReadEnd::Done = end {
        *done = true;
    }
}

/// Sends every open connection the round's frames it did not send itself.
fn deliver(conns: &mut slab::Slab<Conn>, round: &mut Round) {
    let Round {
        bytes,
        frames,
        ranges,
        dead,
    } = round;
    for (key, conn) in conns.iter_mut() {
        if !conn.open || conn.done {
            continue;
        }
        ranges.clear();
        for &(_, start, end) in frames.iter().filter(|f| f.0 != conn.id) {
            match ranges.last_mut() {
                Some(run) if run.1 == start => run.1 = end,
                _ => ranges.push((start, end)),
            }
        }
        for chunk in ranges.chunks(MAX_PIECES) {
            let slices: [IoSlice<'_>; MAX_PIECES] = std::array::from_fn(|i| match chunk.get(i) {
                Some(&(start, end)) => IoSlice::new(&bytes[start..end]),
                None => IoSlice::new(&[]),
            });
            if lean::send(&mut conn.stream, &mut conn.out, &slices[..chunk.len()]).is_err() {
                dead.push(key);
                break;
            }
        }
    }
    for key in dead.drain(..) {
        conns.remove(key);
    }
    bytes.clear();
    frames.clear();
}
