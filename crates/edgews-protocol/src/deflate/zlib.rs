//! Raw DEFLATE streams (RFC 1951, no zlib header) through zlib's C API:
//! the engine's only foreign code, confined to this module.
//!
//! Why raw zlib and not a safe Rust backend: RFC 7692 peers negotiate the
//! LZ77 window (8 to 15 bits) and a server with many connections wants
//! small compressors. Only zlib's `deflateInit2` takes both `windowBits`
//! and `memLevel`: a compressor at window 9, memLevel 1 holds about 9 KiB,
//! against about 130 KiB for flate2 (memLevel fixed at 8) whatever the
//! window. docs/protocol.md has the measured table.
//!
//! Every allocation zlib makes goes through [`zalloc`]/[`zfree`] below,
//! which count the bytes held ([`held_bytes`]), so tests and metrics can
//! see what compression costs. The wrappers own their `z_stream` in a
//! `Box` (zlib keeps a pointer back to it, so it must not move) and end it
//! in `Drop`. Output is always bounded by the caller's spare capacity.
#![allow(unsafe_code)]

use libz_sys as z;
use std::alloc::{alloc, dealloc, Layout};
use std::ffi::{c_int, c_uint, c_void};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes currently allocated by zlib streams in this process.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// Room before each allocation for its size, keeping zlib's 16-byte alignment.
const HEADER: usize = 16;

/// Bytes held by every zlib stream of the process (compressors and
/// decompressors), for tests and metrics.
pub fn held_bytes() -> usize {
    HELD.load(Ordering::Relaxed)
}

/// zlib's allocator hook: `items * size` bytes, with the size stored in a
/// header so that [`zfree`] can rebuild the layout.
unsafe extern "C" fn zalloc(_opaque: *mut c_void, items: c_uint, size: c_uint) -> *mut c_void {
    let Some(bytes) = (items as usize)
        .checked_mul(size as usize)
        .and_then(|b| b.checked_add(HEADER))
    else {
        return ptr::null_mut();
    };
    let Ok(layout) = Layout::from_size_align(bytes, HEADER) else {
        return ptr::null_mut();
    };
    // SAFETY: `layout` has a non-zero size (at least HEADER).
    let base = unsafe { alloc(layout) };
    if base.is_null() {
        return ptr::null_mut();
    }
    HELD.fetch_add(bytes, Ordering::Relaxed);
    // SAFETY: `base` is valid for `bytes >= HEADER` bytes and aligned to 16,
    // so it can hold a usize, and `base + HEADER` stays inside the block.
    unsafe {
        base.cast::<usize>().write(bytes);
        base.add(HEADER).cast()
    }
}

/// zlib's free hook, the inverse of [`zalloc`].
unsafe extern "C" fn zfree(_opaque: *mut c_void, address: *mut c_void) {
    if address.is_null() {
        return;
    }
    // SAFETY: zlib passes back only pointers `zalloc` returned, which sit
    // HEADER bytes after a block whose first word is its size; that size
    // and the alignment rebuild the exact layout it was allocated with.
    unsafe {
        let base = address.cast::<u8>().sub(HEADER);
        let bytes = base.cast::<usize>().read();
        HELD.fetch_sub(bytes, Ordering::Relaxed);
        dealloc(base, Layout::from_size_align_unchecked(bytes, HEADER));
    }
}

/// A zeroed stream with our allocator, as `deflateInit2`/`inflateInit2` want it.
fn new_stream() -> Box<z::z_stream> {
    Box::new(z::z_stream {
        next_in: ptr::null_mut(),
        avail_in: 0,
        total_in: 0,
        next_out: ptr::null_mut(),
        avail_out: 0,
        total_out: 0,
        msg: ptr::null_mut(),
        state: ptr::null_mut(),
        zalloc,
        zfree,
        opaque: ptr::null_mut(),
        data_type: 0,
        adler: 0,
        reserved: 0,
    })
}

/// zlib could not start a stream (out of memory or bad parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitError(pub c_int);

/// The stream is not valid DEFLATE data (RFC 1951).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataError;

/// Feeds `input` and appends to `out`'s spare capacity through `call`;
/// returns (bytes consumed, bytes produced, zlib's return code).
fn run(
    stream: &mut z::z_stream,
    input: &[u8],
    out: &mut Vec<u8>,
    call: impl FnOnce(&mut z::z_stream) -> c_int,
) -> (usize, usize, c_int) {
    let in_len = input.len().min(c_uint::MAX as usize);
    let spare = (out.capacity() - out.len()).min(c_uint::MAX as usize);
    stream.next_in = input.as_ptr().cast_mut();
    stream.avail_in = in_len as c_uint;
    // SAFETY: `out.len() <= out.capacity()`, so the pointer is inside (or
    // one past) the allocation, with `spare` writable bytes after it.
    stream.next_out = unsafe { out.as_mut_ptr().add(out.len()) };
    stream.avail_out = spare as c_uint;
    let code = call(stream);
    let consumed = in_len - stream.avail_in as usize;
    let produced = spare - stream.avail_out as usize;
    // SAFETY: zlib wrote exactly `produced` bytes after the old length,
    // within the spare capacity it was given.
    unsafe { out.set_len(out.len() + produced) };
    // zlib never reads `input` after the call; drop the dangling pointers
    stream.next_in = ptr::null_mut();
    stream.next_out = ptr::null_mut();
    (consumed, produced, code)
}

/// A raw DEFLATE compressor.
pub struct Deflater {
    stream: Box<z::z_stream>,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deflater")
    }
}

// SAFETY: the stream is owned, reached only through `&mut self`, and zlib
// keeps no thread-local state; moving it to another thread is sound.
unsafe impl Send for Deflater {}

impl Deflater {
    /// A compressor with a window of `window_bits` (9..=15; zlib turns a
    /// raw window of 8 into 9, so 8 is never asked for), `mem_level`
    /// (1..=9) and `level` (0..=9).
    pub fn new(level: u8, window_bits: u8, mem_level: u8) -> Result<Deflater, InitError> {
        let mut stream = new_stream();
        // SAFETY: `stream` is a zeroed z_stream with valid allocator
        // hooks, boxed so its address stays fixed; the version and size
        // are those of the linked zlib's header.
        let code = unsafe {
            z::deflateInit2_(
                &mut *stream,
                c_int::from(level.min(9)),
                z::Z_DEFLATED,
                -c_int::from(window_bits.clamp(9, 15)),
                c_int::from(mem_level.clamp(1, 9)),
                z::Z_DEFAULT_STRATEGY,
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            )
        };
        if code != z::Z_OK {
            return Err(InitError(code));
        }
        Ok(Deflater { stream })
    }

    /// Compresses `input` into `out`'s spare capacity; with `sync`, ends
    /// with a sync flush (an empty stored block, `00 00 ff ff`), once all
    /// input is taken and `out` had room. Returns (consumed, produced);
    /// call again while input remains or `out` filled up.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>, sync: bool) -> (usize, usize) {
        let flush = if sync { z::Z_SYNC_FLUSH } else { z::Z_NO_FLUSH };
        // SAFETY: `run` points the stream at live buffers for this call only.
        let (consumed, produced, _) = run(&mut self.stream, input, out, |s| unsafe {
            z::deflate(s, flush)
        });
        // deflate returns Z_OK or Z_BUF_ERROR (no progress possible) on a
        // valid stream; neither needs action beyond more room or input
        (consumed, produced)
    }

    /// Forgets the history: the next message starts a fresh LZ77 window.
    pub fn reset(&mut self) {
        // SAFETY: the stream was initialised by deflateInit2.
        unsafe { z::deflateReset(&mut *self.stream) };
    }
}

impl Drop for Deflater {
    fn drop(&mut self) {
        // SAFETY: initialised by deflateInit2 and not ended before.
        unsafe { z::deflateEnd(&mut *self.stream) };
    }
}

/// A raw DEFLATE decompressor.
pub struct Inflater {
    stream: Box<z::z_stream>,
    /// A final block (BFINAL) ended the stream: the rest of the message
    /// is ignored, and [`end_message`](Inflater::end_message) starts anew.
    ended: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inflater")
    }
}

// SAFETY: as for Deflater.
unsafe impl Send for Inflater {}

impl Inflater {
    /// A decompressor for streams with a window of up to `window_bits`
    /// (9..=15; a peer's window of 8 is read by a window of 9).
    pub fn new(window_bits: u8) -> Result<Inflater, InitError> {
        let mut stream = new_stream();
        // SAFETY: as in Deflater::new.
        let code = unsafe {
            z::inflateInit2_(
                &mut *stream,
                -c_int::from(window_bits.clamp(9, 15)),
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            )
        };
        if code != z::Z_OK {
            return Err(InitError(code));
        }
        Ok(Inflater {
            stream,
            ended: false,
        })
    }

    /// Decompresses `input` into `out`'s spare capacity, never past it.
    /// Returns (consumed, produced); call again while input remains and
    /// `out` filled up. A final block ends the stream: what follows it in
    /// the message (the `00 00 ff ff` the receiver appended) is consumed
    /// and ignored, as RFC 7692 §7.2.3.4 lets a peer end a message so.
    pub fn decompress(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(usize, usize), DataError> {
        if self.ended {
            return Ok((input.len(), 0));
        }
        // SAFETY: `run` points the stream at live buffers for this call only.
        let (consumed, produced, code) = run(&mut self.stream, input, out, |s| unsafe {
            z::inflate(s, z::Z_SYNC_FLUSH)
        });
        match code {
            z::Z_OK | z::Z_BUF_ERROR => Ok((consumed, produced)),
            z::Z_STREAM_END => {
                self.ended = true;
                Ok((input.len(), produced))
            }
            _ => Err(DataError),
        }
    }

    /// Ends a message: a stream that a final block ended starts again
    /// (its window is gone with it).
    pub fn end_message(&mut self) {
        if self.ended {
            self.reset();
        }
    }

    /// Forgets the history (and any error state).
    pub fn reset(&mut self) {
        self.ended = false;
        // SAFETY: the stream was initialised by inflateInit2.
        unsafe { z::inflateReset(&mut *self.stream) };
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: initialised by inflateInit2 and not ended before.
        unsafe { z::inflateEnd(&mut *self.stream) };
    }
}
