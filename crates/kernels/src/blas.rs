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

/// Side of the square tiles [`transpose`] copies: a 16 × 16 tile of f32 is 16 rows of one
/// 64-byte cache line each way.
const TILE: usize = 16;

/// `dst = srcᵀ`: `src` is `rows × cols` row-major, `dst` becomes `cols × rows` row-major.
/// Tiled (each tile's reads and writes stay in L1) and, with `parallel`, split by rows of
/// `dst` over the pool when the matrix is large. It exists for gemm: a product whose
/// right-hand matrix is stored transposed (`x · Wᵀ` with `W` as `[out, in]`) runs a third
/// slower than the same product from a plain copy (see `examples/gemm_shapes.rs`), and
/// copying `W` costs a quarter to a third of the difference (the dense model's forward
/// products on 2 threads: 3.9–4.2 ms reading `W` transposed, 2.6–2.7 ms + 0.4 ms of copies).
///
/// # Panics
/// When a slice is shorter than its matrix (a bug in the caller, not bad input).
pub fn transpose(rows: usize, cols: usize, src: &[f32], dst: &mut [f32], parallel: bool) {
    assert!(src.len() >= rows * cols, "transpose: src has {} values, needs {rows}×{cols}", src.len());
    assert!(dst.len() >= rows * cols, "transpose: dst has {} values, needs {cols}×{rows}", dst.len());
    if rows == 0 || cols == 0 {
        return;
    }
    let dst = &mut dst[..rows * cols];
    // A band is TILE rows of `dst` (TILE columns of `src`). Each tile goes through a
    // buffer on the stack, so that both its reads and its writes are whole rows: writing
    // `dst` a column at a time strides it by a power of two for most layers (512 floats),
    // and those lines fall into the same few cache sets.
    let band = |b: usize, out: &mut [f32]| {
        let c0 = b * TILE;
        let width = out.len() / rows;
        let mut tile = [[0f32; TILE]; TILE];
        for r0 in (0..rows).step_by(TILE) {
            let height = TILE.min(rows - r0);
            for (t, r) in tile.iter_mut().zip(r0..r0 + height) {
                t[..width].copy_from_slice(&src[r * cols + c0..r * cols + c0 + width]);
            }
            for (j, row) in out.chunks_exact_mut(rows).enumerate() {
                for (d, t) in row[r0..r0 + height].iter_mut().zip(&tile) {
                    *d = t[j];
                }
            }
        }
    };
    if parallel && rows * cols >= 1 << 15 {
        par::chunks_mut(dst, TILE * rows, band);
    } else {
        dst.chunks_mut(TILE * rows).enumerate().for_each(|(b, out)| band(b, out));
    }
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
    #[allow(clippy::float_cmp)] // values are moved, not computed: they must be equal
    fn transpose_moves_every_value_once() {
        // Tile edges, ragged last tiles, one row, one column; serial and parallel.
        for (rows, cols) in [(1, 1), (1, 70), (70, 1), (31, 33), (64, 32), (97, 200), (300, 257)] {
            let src: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
            for parallel in [false, true] {
                let mut dst = vec![-1f32; rows * cols + 3];
                transpose(rows, cols, &src, &mut dst, parallel);
                for r in 0..rows {
                    for c in 0..cols {
                        assert_eq!(dst[c * rows + r], src[r * cols + c], "{rows}×{cols} at ({r}, {c})");
                    }
                }
                assert!(dst[rows * cols..].iter().all(|&v| v == -1.0), "{rows}×{cols}: wrote past the matrix");
            }
        }
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
