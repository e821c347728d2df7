//! Parallel loops on candle's own persistent thread pool (`candle_core::utils::barrier_pool`,
//! `threads - 1` workers plus the calling thread), the one candle's elementwise ops use.
//! Its workers spin briefly between ops before they park, as OpenMP's do for PyTorch, so
//! back-to-back kernels do not pay a wake-up each; and kernels and candle's ops share one
//! set of threads instead of two pools contending for the cores.
//!
//! Calls must not nest (a task must not start another parallel loop): the pool runs one
//! loop at a time. Every kernel calls these at its top level only.

use std::sync::{Mutex, MutexGuard, PoisonError};

use candle_core::utils::barrier_pool;

/// Threads a loop runs on (workers + the caller).
pub(crate) fn threads() -> usize {
    barrier_pool().n_workers() + 1
}

/// Runs `f(i)` for every `i` in `0..n`, spread over the pool (dynamic chunks), inline
/// when there is one task or no worker.
pub(crate) fn for_each(n: usize, f: impl Fn(usize) + Sync) {
    if n <= 1 || threads() == 1 {
        (0..n).for_each(f);
        return;
    }
    barrier_pool().execute_chunked(n, |range| range.for_each(&f));
}

/// `size`-element pieces of `buf`, one lock each, for loops in which task `i` alone uses
/// piece `i` (so the locks are never contended; they only hand the pieces over).
pub(crate) fn slots<T>(buf: &mut [T], size: usize) -> Vec<Mutex<&mut [T]>> {
    buf.chunks_mut(size.max(1)).map(Mutex::new).collect()
}

/// Locks a piece from [`slots`] (a panicked task's piece stays usable: the panic itself
/// reaches the caller through the pool).
pub(crate) fn lock<'a, 'b, T>(m: &'a Mutex<&'b mut [T]>) -> MutexGuard<'a, &'b mut [T]> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f(i, chunk)` for the `size`-element chunks of `data` in parallel.
pub(crate) fn chunks_mut<T: Send>(data: &mut [T], size: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let pieces = slots(data, size);
    for_each(pieces.len(), |i| f(i, &mut lock(&pieces[i])));
}

/// `f(0), …, f(n - 1)` computed in parallel, in order.
pub(crate) fn map<R: Send>(n: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let out: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
    for_each(n, |i| *out[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(f(i)));
    out.into_iter().map(|m| m.into_inner().unwrap_or_else(PoisonError::into_inner).expect("every index ran")).collect()
}

/// Runs `f` once on every thread of the pool (workers and the caller).
pub(crate) fn on_every_thread(f: impl Fn() + Sync) {
    barrier_pool().execute(|_| f());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_cover_every_index_once() {
        let mut v = vec![0u32; 1000];
        chunks_mut(&mut v, 7, |i, c| c.iter_mut().for_each(|x| *x += i as u32 + 1));
        assert!(v.iter().enumerate().all(|(j, &x)| x == (j / 7) as u32 + 1));
        assert_eq!(map(100, |i| i * i), (0..100).map(|i| i * i).collect::<Vec<_>>());
    }
}
