//! Work on several threads where there are (`cfg(parallel)`: natively, and the browser's
//! threaded module), one piece after another otherwise. The results never depend on which.

/// `f` run on a thread of the pool, its result handed back. Each parallel loop inside `f` then
/// starts from a pool thread, which runs its own share at once and leaves the rest to be
/// stolen. Started from outside the pool, as the page's engine worker is, every loop waits
/// instead for a sleeping worker to wake, take the job and wake the caller again: in a browser,
/// where a wake-up takes tens of microseconds, that is paid for each of a network's few
/// hundred loops.
pub(crate) fn on_threads<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(parallel)]
    {
        rayon::scope(|_| f())
    }
    #[cfg(not(parallel))]
    f()
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
