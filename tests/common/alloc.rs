//! A counting global allocator for tests that check a path allocates nothing.
//!
//! A test file that declares `mod common;` installs [`Counting`] as its global allocator and
//! wraps the code under test in [`watch`]. Counting is per thread: the test harness runs tests
//! in parallel threads, so a global count would pick up whatever the other tests allocate.
//! Only a thread inside [`watch`] is counted, and only into its own counters.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// This thread's counters. Plain `Cell`s with a `const` initialiser: reaching them neither
/// allocates nor registers a destructor, so the allocator may touch them at any time.
struct Counters {
    /// Whether this thread is inside [`watch`].
    watched: Cell<bool>,
    /// Allocations and reallocations made while watched.
    allocs: Cell<u64>,
    /// Bytes allocated minus bytes freed while watched.
    live: Cell<i64>,
}

thread_local! {
    static COUNTERS: Counters = const {
        Counters {
            watched: Cell::new(false),
            allocs: Cell::new(0),
            live: Cell::new(0),
        }
    };
}

/// Records an allocation (`alloc` true) and a change of `bytes` in live memory, if this thread
/// is watched. Uses `try_with`, so an allocation during thread teardown is simply not counted.
fn note(alloc: bool, bytes: i64) {
    let _ = COUNTERS.try_with(|c| {
        if c.watched.get() {
            c.allocs.set(c.allocs.get() + u64::from(alloc));
            c.live.set(c.live.get() + bytes);
        }
    });
}

/// [`System`], counting allocations and live bytes on watched threads.
pub struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(true, layout.size() as i64);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(false, -(layout.size() as i64));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(true, new_size as i64 - layout.size() as i64);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` with this thread watched. Returns what `f` returned, the allocations (and
/// reallocations) made on this thread while it ran, and the net live bytes it left behind.
pub fn watch<T>(f: impl FnOnce() -> T) -> (T, u64, i64) {
    let (a0, l0, was) = COUNTERS.with(|c| (c.allocs.get(), c.live.get(), c.watched.replace(true)));
    let out = f();
    let (a1, l1) = COUNTERS.with(|c| {
        c.watched.set(was);
        (c.allocs.get(), c.live.get())
    });
    (out, a1 - a0, l1 - l0)
}
