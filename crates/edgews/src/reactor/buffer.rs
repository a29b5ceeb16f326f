//! The per-connection write queue: what the kernel did not take yet.
//!
//! Most writes go straight from the reactor's scratch buffer to the socket
//! and never touch a queue, so a connection that was never backpressured
//! holds no queue memory; a queue keeps a small allocation (up to 16
//! chunk slots) once used, so fan-out does not reallocate per message.
//! Broadcast frames are encoded once by the engine and shared (`SharedFrame`, an `Arc`) by every queue they
//! are pushed to; small ones are copied, which costs less than a reference.
//! Every queue knows what it holds in memory ([`WriteQueue::cost`]), not
//! only in bytes, and that is what `max_backpressure` limits.

use crate::protocol::SharedFrame;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

/// The most pieces handed to one `writev`.
const MAX_IOV: usize = 64;

/// An owned chunk stops growing at this size and a new one starts: no
/// reallocation ever copies more than this, and no chunk's spare capacity
/// exceeds it.
const MAX_OWNED_CHUNK: usize = 64 << 10;

/// Shared frames up to this size are copied into the queue's owned tail
/// instead of holding a reference each, once the queue backs up: a
/// reference costs a queue slot and an `Arc` header, more than the bytes of
/// a small frame.
const COPY_SHARED_UP_TO: usize = 64;

/// From this many queued pieces on, small shared frames are copied. Below
/// it (a queue flushed every loop iteration, the usual case) a reference
/// costs no allocation, where a copy would allocate an owned chunk per
/// message.
const COPY_WHEN_PIECES: usize = 16;

/// The capacity of an owned chunk started for copied small frames.
const SMALL_FRAMES_CHUNK: usize = 4 << 10;

/// What one queued piece costs besides its bytes: its slot in the queue and
/// the allocator's bookkeeping of its buffer (an upper bound, in bytes).
pub(crate) const PIECE_OVERHEAD: usize = std::mem::size_of::<Chunk>() + 16;

/// What a shared frame's `Arc<Vec<u8>>` box costs (counts, `Vec` header,
/// allocator bookkeeping), charged to every queue that holds the frame.
const SHARED_OVERHEAD: usize = 2 * std::mem::size_of::<usize>() + 24 + 16;

/// A queued piece of output.
#[derive(Debug)]
enum Chunk {
    /// Bytes only this connection sends.
    Owned(Vec<u8>),
    /// A frame shared with other connections (broadcast).
    Shared(SharedFrame),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(s) => s,
        }
    }

    /// The memory this piece holds: what `WriteQueue::cost` charges for it.
    fn cost(&self) -> usize {
        PIECE_OVERHEAD
            + match self {
                Chunk::Owned(v) => v.capacity(),
                Chunk::Shared(s) => s.len() + SHARED_OVERHEAD,
            }
    }
}

/// Bytes waiting for the socket, in order.
#[derive(Debug, Default)]
pub(crate) struct WriteQueue {
    chunks: VecDeque<Chunk>,
    /// Bytes of the first chunk already written.
    head_offset: usize,
    /// Bytes queued, not yet written. Invariant: the sum of the chunks'
    /// lengths minus `head_offset`.
    len: usize,
    /// The memory the queued pieces hold. Invariant: the sum of the
    /// chunks' [`Chunk::cost`]s (written bytes of the first chunk included:
    /// they are freed only when the whole chunk is).
    cost: usize,
}

impl WriteQueue {
    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The memory held: bytes (owned buffers at their capacity) plus
    /// [`PIECE_OVERHEAD`] per piece. What `max_backpressure` limits.
    pub fn cost(&self) -> usize {
        self.cost
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a copy of `bytes`, into the last owned chunk when it has
    /// room under [`MAX_OWNED_CHUNK`].
    pub fn push_slice(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.len += bytes.len();
        if let Some(Chunk::Owned(last)) = self.chunks.back_mut() {
            let needed = last.len() + bytes.len();
            if needed <= MAX_OWNED_CHUNK {
                let before = last.capacity();
                if needed > before {
                    // grow by doubling, but never past the chunk limit
                    let target = (2 * before).clamp(needed, MAX_OWNED_CHUNK);
                    last.reserve_exact(target - last.len());
                }
                last.extend_from_slice(bytes);
                self.cost += last.capacity() - before;
                return;
            }
        }
        self.push_chunk(Chunk::Owned(bytes.to_vec()));
    }

    /// Appends a shared frame by reference; a small one (see
    /// [`COPY_SHARED_UP_TO`]) is copied instead when the owned tail has
    /// room for it or the queue has backed up ([`COPY_WHEN_PIECES`]), so
    /// that a flood of tiny frames costs its bytes, not a slot each.
    pub fn push_shared(&mut self, frame: &SharedFrame) {
        if frame.len() <= COPY_SHARED_UP_TO {
            if let Some(Chunk::Owned(last)) = self.chunks.back_mut() {
                if last.len() + frame.len() <= last.capacity() {
                    last.extend_from_slice(frame);
                    self.len += frame.len();
                    return;
                }
            }
            if self.chunks.len() >= COPY_WHEN_PIECES {
                let mut chunk = Vec::with_capacity(SMALL_FRAMES_CHUNK);
                chunk.extend_from_slice(frame);
                self.len += frame.len();
                return self.push_chunk(Chunk::Owned(chunk));
            }
        }
        self.len += frame.len();
        self.push_chunk(Chunk::Shared(frame.clone()));
    }

    fn push_chunk(&mut self, chunk: Chunk) {
        self.cost += chunk.cost();
        self.chunks.push_back(chunk);
    }

    /// Lets `f` append to an owned buffer at the end of the queue (the
    /// engine writes frames this way).
    pub fn append_with<R>(&mut self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let has_room =
            matches!(self.chunks.back(), Some(Chunk::Owned(v)) if v.len() < MAX_OWNED_CHUNK);
        if !has_room {
            self.push_chunk(Chunk::Owned(Vec::new()));
        }
        let Some(Chunk::Owned(last)) = self.chunks.back_mut() else {
            unreachable!("an owned chunk was just ensured");
        };
        let (before, before_cap) = (last.len(), last.capacity());
        let result = f(last);
        self.len += last.len() - before;
        self.cost = self.cost + last.capacity() - before_cap;
        if last.is_empty() {
            let chunk = self.chunks.pop_back().expect("the chunk just used");
            self.cost -= chunk.cost();
        }
        result
    }

    /// Writes as much as the socket takes, with one `writev` per up to 64
    /// pieces. Stops at the first short write: the socket's buffer is full
    /// and a writable event will say when it has room again. Returns the
    /// bytes written.
    pub fn write_to<W: Write>(&mut self, socket: &mut W) -> io::Result<usize> {
        let mut total = 0;
        while !self.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let mut count = 0;
            let mut offered = 0;
            for (i, chunk) in self.chunks.iter().take(MAX_IOV).enumerate() {
                let bytes = if i == 0 {
                    &chunk.bytes()[self.head_offset..]
                } else {
                    chunk.bytes()
                };
                slices[i] = IoSlice::new(bytes);
                offered += bytes.len();
                count += 1;
            }
            let written = match socket.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            };
            self.consume(written);
            total += written;
            if written < offered {
                break;
            }
        }
        if self.is_empty() && self.chunks.capacity() > 16 {
            self.chunks = VecDeque::new();
        }
        Ok(total)
    }

    /// Drops `n` written bytes from the front.
    fn consume(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                break;
            };
            let left = front.bytes().len() - self.head_offset;
            if n < left {
                self.head_offset += n;
                return;
            }
            n -= left;
            self.head_offset = 0;
            let chunk = self.chunks.pop_front().expect("the front chunk");
            self.cost -= chunk.cost();
        }
    }
}

/// A [`WriteQueue`] allocated on first use: an idle connection carries a
/// null pointer instead of an empty queue. Once allocated it stays, so a
/// broadcast receiver does not allocate per message.
#[derive(Debug, Default)]
pub(crate) struct LazyQueue(Option<Box<WriteQueue>>);

impl LazyQueue {
    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.len())
    }

    /// See [`WriteQueue::cost`]; the queue's own box included once allocated.
    pub fn cost(&self) -> usize {
        self.0
            .as_ref()
            .map_or(0, |q| q.cost() + std::mem::size_of::<WriteQueue>())
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&mut self) -> &mut WriteQueue {
        self.0.get_or_insert_with(Box::default)
    }

    /// See [`WriteQueue::push_slice`].
    pub fn push_slice(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.get().push_slice(bytes);
        }
    }

    /// See [`WriteQueue::push_shared`].
    pub fn push_shared(&mut self, frame: &SharedFrame) {
        self.get().push_shared(frame);
    }

    /// See [`WriteQueue::append_with`].
    pub fn append_with<R>(&mut self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        self.get().append_with(f)
    }

    /// See [`WriteQueue::write_to`].
    pub fn write_to<W: Write>(&mut self, socket: &mut W) -> io::Result<usize> {
        match self.0.as_mut() {
            Some(q) => q.write_to(socket),
            None => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket that takes at most `limit` bytes per call, then blocks.
    struct Trickle {
        taken: Vec<u8>,
        limit: usize,
        calls: usize,
        max_calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.calls == self.max_calls {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls += 1;
            let mut n = 0;
            for b in bufs {
                let take = (self.limit - n).min(b.len());
                self.taken.extend_from_slice(&b[..take]);
                n += take;
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A shared binary frame of `payload` (its header is 2, 4 or 10 bytes).
    fn shared(payload: &[u8]) -> SharedFrame {
        use crate::protocol::{Connection, Message, ProtocolConfig, Role};
        let server = Connection::open(
            std::time::Instant::now(),
            std::sync::Arc::new(ProtocolConfig::default()),
            Role::Server,
        );
        let encoding = server.shared_encoding().expect("an open server");
        SharedFrame::message(encoding, &Message::binary(payload))
    }

    #[test]
    fn queue_preserves_order_across_short_writes() {
        let mut q = WriteQueue::default();
        q.push_slice(b"hello ");
        q.push_shared(&shared(b"shared "));
        q.append_with(|v| v.extend_from_slice(b"world"));
        assert_eq!(q.len(), 20);
        let mut sock = Trickle {
            taken: Vec::new(),
            limit: 5,
            calls: 0,
            max_calls: usize::MAX,
        };
        while !q.is_empty() {
            q.write_to(&mut sock).unwrap();
        }
        assert_eq!(sock.taken, b"hello \x82\x07shared world");
    }

    #[test]
    fn would_block_keeps_everything_queued() {
        let mut q = WriteQueue::default();
        q.push_slice(b"abc");
        let mut sock = Trickle {
            taken: Vec::new(),
            limit: 100,
            calls: 0,
            max_calls: 0,
        };
        assert_eq!(q.write_to(&mut sock).unwrap(), 0);
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn one_writev_takes_many_chunks() {
        let mut q = WriteQueue::default();
        let frame = shared(&[7u8; 98]);
        for _ in 0..10 {
            q.push_shared(&frame);
        }
        let mut sock = Trickle {
            taken: Vec::new(),
            limit: 1000,
            calls: 0,
            max_calls: usize::MAX,
        };
        q.write_to(&mut sock).unwrap();
        assert_eq!((sock.calls, sock.taken.len(), q.len()), (1, 1000, 0));
    }

    fn sink() -> Trickle {
        Trickle {
            taken: Vec::new(),
            limit: usize::MAX,
            calls: 0,
            max_calls: usize::MAX,
        }
    }

    #[test]
    fn small_shared_frames_are_copied_so_they_cost_their_bytes() {
        let mut q = WriteQueue::default();
        let empty = shared(b"");
        for _ in 0..100_000 {
            q.push_shared(&empty);
        }
        assert_eq!(q.len(), 200_000);
        // a few references, then 4 KiB chunks of copies: not 100,000 references
        let chunks = 200_000 / SMALL_FRAMES_CHUNK + 1;
        assert!(
            q.chunks.len() <= COPY_WHEN_PIECES + chunks,
            "{} chunks",
            q.chunks.len()
        );
        let references = COPY_WHEN_PIECES * (PIECE_OVERHEAD + 2 + SHARED_OVERHEAD);
        assert!(q.cost() <= references + chunks * (SMALL_FRAMES_CHUNK + PIECE_OVERHEAD));
        assert_eq!(empty.holders(), 1 + COPY_WHEN_PIECES);
        let mut sock = sink();
        q.write_to(&mut sock).unwrap();
        assert_eq!(sock.taken, [0x82, 0x00].repeat(100_000));
    }

    #[test]
    fn every_piece_is_charged_its_overhead_and_the_cost_returns_to_zero() {
        let mut q = WriteQueue::default();
        let big = shared(&[1u8; 996]); // 1,000 bytes with its header
        for _ in 0..10 {
            q.push_shared(&big);
        }
        assert_eq!(q.len(), 10_000);
        assert_eq!(q.cost(), 10 * (1000 + PIECE_OVERHEAD + SHARED_OVERHEAD));
        q.append_with(|v| v.extend_from_slice(b"tail"));
        assert!(q.cost() >= 10 * (1000 + PIECE_OVERHEAD) + 4 + PIECE_OVERHEAD);
        let mut sock = sink();
        q.write_to(&mut sock).unwrap();
        assert_eq!((q.len(), q.cost()), (0, 0));
        assert_eq!(sock.taken.len(), 10_004);
    }

    #[test]
    fn a_partly_written_chunk_is_charged_until_it_is_gone() {
        let mut q = WriteQueue::default();
        q.push_slice(&[5u8; 100]);
        let full = q.cost();
        let mut sock = Trickle {
            taken: Vec::new(),
            limit: 60,
            calls: 0,
            max_calls: 1,
        };
        q.write_to(&mut sock).unwrap();
        assert_eq!((q.len(), q.cost()), (40, full));
    }

    #[test]
    fn owned_chunks_stop_growing_at_64_kib() {
        let mut q = WriteQueue::default();
        for _ in 0..100 {
            q.push_slice(&[9u8; 10_000]);
        }
        assert!(q.chunks.iter().all(|c| c.bytes().len() <= MAX_OWNED_CHUNK));
        let mut sock = sink();
        while !q.is_empty() {
            q.write_to(&mut sock).unwrap();
        }
        assert_eq!((sock.taken.len(), q.cost()), (1_000_000, 0));
    }
}
