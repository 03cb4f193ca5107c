//! Heap accounting: every allocation and free of the server's Rust code in, the bytes live now out (`steno_heap_live_bytes`).
//!
//! The `steno` binary installs [`CountingAllocator`] as its global
//! allocator; a library user (the in-process tests) does not, and then
//! [`live_bytes`] is `None`. Live bytes, unlike RSS, do not climb to an
//! allocator's high-water mark and stay there, so two windows of a soak
//! compare like with like: a leak shows as growth, a busy minute does not.
//! whisper.cpp's own buffers (C `malloc`) are not counted; they are sized at
//! start-up.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// Bytes allocated and not yet freed through [`CountingAllocator`].
static LIVE: AtomicIsize = AtomicIsize::new(0);

/// The system allocator, counting what it hands out. One relaxed atomic add
/// per allocation: nothing next to a Whisper inference.
pub struct CountingAllocator;

// SAFETY: every call is forwarded unchanged to `System`; the counter only
// observes sizes.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `alloc`; on failure the old block stays allocated.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

/// Bytes of Rust heap live now; `None` when [`CountingAllocator`] is not
/// the global allocator (nothing was ever counted).
pub fn live_bytes() -> Option<u64> {
    let live = LIVE.load(Ordering::Relaxed);
    (live > 0).then_some(live as u64)
}
