//! Heap accounting: [`CountingAlloc`] and the per-thread [`HeapMeter`]
//! the connection oracles read it through (see the parent module's docs).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

/// A global allocator that forwards to [`System`] and counts, per thread,
/// the bytes live and their peak.
pub struct CountingAlloc;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

static COUNTING: AtomicBool = AtomicBool::new(false);

fn note(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| {
            if now > peak.get() {
                peak.set(now)
            }
        });
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments; the
// bookkeeping touches only const-initialised thread-locals without
// destructors, which never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
            if !COUNTING.load(Ordering::Relaxed) {
                COUNTING.store(true, Ordering::Relaxed);
            }
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        note(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Heap growth on this thread since it was started.
pub(super) struct HeapMeter {
    base: isize,
}

impl HeapMeter {
    pub(super) fn start() -> HeapMeter {
        let base = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(base));
        HeapMeter { base }
    }

    pub(super) fn active() -> bool {
        COUNTING.load(Ordering::Relaxed)
    }

    pub(super) fn live(&self) -> isize {
        LIVE.with(Cell::get) - self.base
    }

    pub(super) fn peak(&self) -> isize {
        PEAK.with(Cell::get) - self.base
    }
}
