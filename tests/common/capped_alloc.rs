//! A global allocator for test binaries that meet hostile files: it counts live bytes, records
//! their peak, and refuses any allocation that would take the live total past `CAP` (the
//! allocation fails and the process aborts, so a runaway cannot take the machine with it and
//! the test cannot pass).
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct CappedAlloc<const CAP: usize>;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl<const CAP: usize> GlobalAlloc for CappedAlloc<CAP> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        if live > CAP {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            return std::ptr::null_mut();
        }
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Run `f` and return the peak of live bytes above what was live before, in MiB (meaningful
/// when nothing else allocates meanwhile).
pub fn peak_mib<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (
        out,
        (PEAK.load(Ordering::Relaxed).saturating_sub(base)) >> 20,
    )
}
