//! The per-connection write queue: what the kernel did not take yet.
//!
//! Most writes go straight from the reactor's scratch buffer to the socket
//! and never touch a queue, so a connection that was never backpressured
//! holds no queue memory; a queue keeps a small allocation (up to 16
//! chunk slots) once used, so fan-out does not reallocate per message.
//! Broadcast frames are encoded once and shared (`Rc<[u8]>`) by every
//! queue they are pushed to.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::rc::Rc;

/// The most pieces handed to one `writev`.
const MAX_IOV: usize = 64;

/// A queued piece of output.
#[derive(Debug)]
enum Chunk {
    /// Bytes only this connection sends.
    Owned(Vec<u8>),
    /// A frame shared with other connections (broadcast).
    Shared(Rc<[u8]>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(s) => s,
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
}

impl WriteQueue {
    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a copy of `bytes`, into the last owned chunk when there is one.
    pub fn push_slice(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.len += bytes.len();
        if let Some(Chunk::Owned(last)) = self.chunks.back_mut() {
            last.extend_from_slice(bytes);
        } else {
            self.chunks.push_back(Chunk::Owned(bytes.to_vec()));
        }
    }

    /// Appends a shared frame without copying it.
    pub fn push_shared(&mut self, frame: Rc<[u8]>) {
        self.len += frame.len();
        self.chunks.push_back(Chunk::Shared(frame));
    }

    /// Lets `f` append to an owned buffer at the end of the queue (the
    /// engine writes frames this way).
    pub fn append_with<R>(&mut self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        if !matches!(self.chunks.back(), Some(Chunk::Owned(_))) {
            self.chunks.push_back(Chunk::Owned(Vec::new()));
        }
        let Some(Chunk::Owned(last)) = self.chunks.back_mut() else {
            unreachable!("an owned chunk was just ensured");
        };
        let before = last.len();
        let result = f(last);
        self.len += last.len() - before;
        if last.is_empty() {
            self.chunks.pop_back();
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
            self.chunks.pop_front();
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
    pub fn push_shared(&mut self, frame: Rc<[u8]>) {
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

    #[test]
    fn queue_preserves_order_across_short_writes() {
        let mut q = WriteQueue::default();
        q.push_slice(b"hello ");
        q.push_shared(Rc::from(&b"shared "[..]));
        q.append_with(|v| v.extend_from_slice(b"world"));
        assert_eq!(q.len(), 18);
        let mut sock = Trickle {
            taken: Vec::new(),
            limit: 5,
            calls: 0,
            max_calls: usize::MAX,
        };
        while !q.is_empty() {
            q.write_to(&mut sock).unwrap();
        }
        assert_eq!(sock.taken, b"hello shared world");
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
        for _ in 0..10 {
            q.push_shared(Rc::from(&b"0123456789"[..]));
        }
        let mut sock = Trickle {
            taken: Vec::new(),
            limit: 1000,
            calls: 0,
            max_calls: usize::MAX,
        };
        q.write_to(&mut sock).unwrap();
        assert_eq!((sock.calls, sock.taken.len(), q.len()), (1, 100, 0));
    }
}
