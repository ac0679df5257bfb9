//! Work on several threads where there are (`cfg(parallel)`: natively, and the browser's
//! threaded module), one piece after another otherwise. The results never depend on which.

/// `f` run on a thread of the pool, its result handed back. Each parallel loop inside `f` then
/// starts from a pool thread, which runs its own share at once and leaves the rest to be
/// stolen. Started from outside the pool, as the page's engine worker is, every loop waits
/// instead for a sleeping worker to wake, take the job and wake the caller again: in a browser,
/// where a wake-up takes tens of microseconds, that is paid for each of a network's few
/// hundred loops. In the browser the other threads also stay awake while `f` runs (see
/// [`with_threads_awake`]); natively, where a wake-up is a few microseconds and tests call in
/// from many threads at once, they sleep between loops.
pub(crate) fn on_threads<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(all(parallel, target_family = "wasm"))]
    {
        with_threads_awake(f)
    }
    #[cfg(all(parallel, not(target_family = "wasm")))]
    {
        rayon::scope(|_| f())
    }
    #[cfg(not(parallel))]
    f()
}

/// `f` on one thread of the pool while every other one looks for work to steal until `f`
/// returns, instead of going to sleep between `f`'s parallel loops: each loop's share is taken
/// at once, with no wake-up. The threads spin (a core each) only while `f` runs. Inside the
/// pool already, `f` runs as it is. One caller at a time: the pool's threads serve the first
/// such call until it returns. Natively for the tests only.
#[cfg(all(parallel, any(test, target_family = "wasm")))]
pub(crate) fn with_threads_awake<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    if rayon::current_thread_index().is_some() {
        return f();
    }
    /// Sets the flag when dropped: the other threads stop even if `f` panics.
    struct Done<'a>(&'a AtomicBool);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }
    let done = AtomicBool::new(false);
    let work = Mutex::new(Some(f));
    let out = rayon::broadcast(|_| {
        // The first thread to arrive runs `f`; the others steal its loops' shares.
        let f = work.lock().ok().and_then(|mut w| w.take());
        if let Some(f) = f {
            let _done = Done(&done);
            return Some(f());
        }
        while !done.load(Ordering::Acquire) {
            if !matches!(rayon::yield_now(), Some(rayon::Yield::Executed)) {
                std::hint::spin_loop();
            }
        }
        None
    });
    out.into_iter()
        .flatten()
        .next()
        .expect("one thread of the pool ran the work")
}

/// `(a(), b())`, on two threads where there are.
pub(crate) fn join<A: Send, B: Send>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    #[cfg(parallel)]
    {
        rayon::join(a, b)
    }
    #[cfg(not(parallel))]
    (a(), b())
}

/// `f` of each item, in the items' order: on several threads where there are, else one after
/// another. For independent pieces of work each large enough to pay for a thread's wake-up.
pub(crate) fn map_each<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
    #[cfg(parallel)]
    {
        use rayon::prelude::*;
        items.par_iter().map(f).collect()
    }
    #[cfg(not(parallel))]
    items.iter().map(f).collect()
}

/// `f` run on a pool of its own with `threads` threads: for tests that compare thread counts.
#[cfg(test)]
pub(crate) fn on_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool")
        .install(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With the other threads awake (called from outside the pool, as the page's engine worker
    /// calls in): the same sum as one after another, the loop's pieces on several threads, and
    /// a panic in the work reaches the caller instead of leaving the threads spinning.
    #[test]
    fn work_with_the_threads_awake_is_shared_and_ends() {
        use rayon::prelude::*;
        let values: Vec<u64> = (0..200_000).collect();
        let serial: u64 = values.iter().map(|v| v * v % 7).sum();
        let outside = |f: &(dyn Fn() -> (u64, usize) + Sync)| {
            std::thread::scope(|s| s.spawn(|| with_threads_awake(f)).join())
        };
        let (sum, threads) = outside(&|| {
            let seen = std::sync::Mutex::new(std::collections::BTreeSet::new());
            let sum = values
                .par_chunks(1000)
                .map(|c| {
                    if let (Some(i), Ok(mut seen)) = (rayon::current_thread_index(), seen.lock()) {
                        seen.insert(i);
                    }
                    // Long enough that one thread cannot take every piece.
                    std::thread::sleep(std::time::Duration::from_micros(200));
                    c.iter().map(|v| v * v % 7).sum::<u64>()
                })
                .sum::<u64>();
            (sum, seen.into_inner().map_or(0, |s| s.len()))
        })
        .expect("no panic");
        assert_eq!(sum, serial);
        if rayon::current_num_threads() > 1 {
            assert!(threads > 1, "the loop ran on {threads} thread(s)");
        }
        assert!(outside(&|| panic!("in the work")).is_err());
        // The pool still serves work: its threads stopped spinning.
        assert_eq!((0..10u32).into_par_iter().sum::<u32>(), 45);
    }
}
