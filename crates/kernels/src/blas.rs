//! A safe, bounds-checked front to `gemm` for row-major `f32` matrices.

use gemm::Parallelism;

use crate::par;

/// Below this many multiply-adds a product runs on the calling thread.
const PARALLEL_FLOPS: usize = 1 << 17;
/// Fewest rows of the result a thread gets (two of gemm's 8-float register rows).
const MIN_ROWS: usize = 16;

/// `c = a · b` (or `c += a · b` with `accumulate`), all row-major: `c` is `m × n`, `a` is
/// `m × k` stored as is (`ta = false`) or as its transpose `k × m` (`ta = true`), `b` is
/// `k × n` stored as is or as its transpose `n × k` (`tb = true`). With `parallel`, large
/// products are split by rows of `c` over the pool, one single-threaded gemm per
/// thread (gemm's own rayon threading scales poorly at these sizes: 1.3× on 2 cores).
///
/// # Panics
/// When a slice is shorter than its matrix (a bug in the caller, not bad input).
#[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    ta: bool,
    b: &[f32],
    tb: bool,
    c: &mut [f32],
    accumulate: bool,
    parallel: bool,
) {
    assert!(a.len() >= m * k, "sgemm: lhs has {} values, needs {m}×{k}", a.len());
    assert!(b.len() >= k * n, "sgemm: rhs has {} values, needs {k}×{n}", b.len());
    assert!(c.len() >= m * n, "sgemm: dst has {} values, needs {m}×{n}", c.len());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    // Element (i, p) of `a` is at i·a_rs + p·a_cs; (p, j) of `b` at p·b_rs + j·b_cs.
    let (a_rs, a_cs) = if ta { (1, m) } else { (k, 1) };
    let (b_rs, b_cs) = if tb { (1, k) } else { (n, 1) };
    let threads = par::threads();
    let parts = if parallel && m * n * k >= PARALLEL_FLOPS { threads.min(m / MIN_ROWS) } else { 1 };
    if parts <= 1 {
        raw(m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, &mut c[..m * n], accumulate);
        return;
    }
    let rows = m.div_ceil(parts).next_multiple_of(8);
    par::chunks_mut(&mut c[..m * n], rows * n, |t, c| {
        let i0 = t * rows;
        let mt = c.len() / n;
        raw(mt, n, k, &a[i0 * a_rs..], a_rs, a_cs, b, b_rs, b_cs, c, accumulate);
    });
}

/// One single-threaded gemm call with explicit strides, bounds-checked.
#[allow(clippy::too_many_arguments)]
fn raw(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
    c: &mut [f32],
    accumulate: bool,
) {
    assert!((m - 1) * a_rs + (k - 1) * a_cs < a.len(), "sgemm: lhs block out of bounds");
    assert!((k - 1) * b_rs + (n - 1) * b_cs < b.len(), "sgemm: rhs block out of bounds");
    assert!(c.len() == m * n, "sgemm: dst block has {} values, needs {m}×{n}", c.len());
    // SAFETY: the asserts above keep every index gemm forms inside its slice (the largest
    // is (m-1)·rs + (k-1)·cs for `a`, likewise `b`; `c` is m × n row-major); `c` is a
    // unique borrow, so it aliases neither input.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: &[f32], ta: bool, b: &[f32], tb: bool) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    let av = if ta { a[p * m + i] } else { a[i * k + p] };
                    let bv = if tb { b[j * k + p] } else { b[p * n + j] };
                    c[i * n + j] += av * bv;
                }
            }
        }
        c
    }

    #[test]
    fn every_transpose_matches_the_naive_product() {
        let (m, n, k) = (7, 5, 9);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        for ta in [false, true] {
            for tb in [false, true] {
                let want = naive(m, n, k, &a, ta, &b, tb);
                let mut c = vec![1f32; m * n];
                sgemm(m, n, k, &a, ta, &b, tb, &mut c, false, true);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-5, "ta={ta} tb={tb}: {x} vs {y}");
                }
                let mut acc = vec![1f32; m * n];
                sgemm(m, n, k, &a, ta, &b, tb, &mut acc, true, false);
                for (x, y) in acc.iter().zip(&want) {
                    assert!((x - (y + 1.0)).abs() < 1e-5, "accumulate ta={ta} tb={tb}");
                }
            }
        }
    }
}
