//! A safe, bounds-checked front to `gemm` for row-major `f32` matrices.

use std::mem::MaybeUninit;

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
    let s = Strides::checked(m, n, k, a, ta, b, tb);
    assert!(c.len() >= m * n, "sgemm: dst has {} values, needs {m}×{n}", c.len());
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: `[MaybeUninit<f32>]` has the layout of `[f32]`, and the product below writes
    // only finite-or-not `f32` values (never uninitialised ones) through the view.
    #[allow(unsafe_code)]
    let c = unsafe { &mut *(std::ptr::from_mut::<[f32]>(&mut c[..m * n]) as *mut [MaybeUninit<f32>]) };
    split(m, n, k, parallel, c, |i0, c| raw(n, k, &a[i0 * s.a_rs..], b, s, c, accumulate));
}

/// A new `m × n` matrix: `a · b` (operands as in [`sgemm`]), or `bias + a · b` with `bias`
/// (`n` values) added to every row, then `then` applied to each thread's block of whole
/// rows in place while it is in cache (an activation). The result is written straight into
/// fresh memory: no pass zeroes it first, and the bias rows are laid down by the thread
/// that multiplies onto them. Call at a kernel's top level (parallel loops do not nest).
///
/// # Panics
/// When a slice is shorter than its matrix, or `bias` is not `n` long (bugs in the caller).
#[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)]
pub(crate) fn sgemm_new(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    ta: bool,
    b: &[f32],
    tb: bool,
    bias: Option<&[f32]>,
    parallel: bool,
    then: impl Fn(&mut [f32]) + Sync,
) -> Vec<f32> {
    let s = Strides::checked(m, n, k, a, ta, b, tb);
    assert!(bias.is_none_or(|v| v.len() == n), "sgemm: bias must have {n} values");
    let mut out: Vec<f32> = Vec::with_capacity(m * n);
    if m == 0 || n == 0 {
        return out;
    }
    split(m, n, k, parallel, &mut out.spare_capacity_mut()[..m * n], |i0, c| {
        if let Some(bias) = bias {
            for row in c.chunks_exact_mut(n) {
                for (d, &v) in row.iter_mut().zip(bias) {
                    d.write(v);
                }
            }
        }
        raw(n, k, &a[i0 * s.a_rs..], b, s, c, bias.is_some());
        // SAFETY: `raw` wrote every element of `c` (gemm writes the whole block, reading
        // it only when the bias rows were laid down first), and `MaybeUninit<f32>` has the
        // layout of `f32`.
        #[allow(unsafe_code)]
        let c = unsafe { &mut *(std::ptr::from_mut::<[MaybeUninit<f32>]>(c) as *mut [f32]) };
        then(c);
    });
    // SAFETY: the capacity is `m · n` or more, and `split` ran the closure above, which
    // initialises its block, over blocks covering `0..m · n` (a panic propagates before here).
    #[allow(unsafe_code)]
    unsafe {
        out.set_len(m * n);
    }
    out
}

/// Runs `f(first_row, block)` over blocks of whole rows of the `m × n` result `c` that
/// together cover it: one block on this thread for a small product or without `parallel`,
/// else one per thread of the pool (at least [`MIN_ROWS`] rows each, a multiple of 8).
fn split(
    m: usize,
    n: usize,
    k: usize,
    parallel: bool,
    c: &mut [MaybeUninit<f32>],
    f: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) {
    let parts = if parallel && m * n * k >= PARALLEL_FLOPS { par::threads().min(m / MIN_ROWS) } else { 1 };
    if parts <= 1 {
        f(0, c);
        return;
    }
    let rows = m.div_ceil(parts).next_multiple_of(8);
    par::chunks_mut(c, rows * n, |t, c| f(t * rows, c));
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
    assert!(dst.len() >= rows * cols, "transpose: dst has {} values, needs {cols}×{rows}", dst.len());
    // SAFETY: `[MaybeUninit<f32>]` has the layout of `[f32]`, and `transpose_into` writes
    // only values read from `src` through the view.
    #[allow(unsafe_code)]
    let dst = unsafe { &mut *(std::ptr::from_mut::<[f32]>(&mut dst[..rows * cols]) as *mut [MaybeUninit<f32>]) };
    transpose_into(rows, cols, src, dst, parallel);
}

/// `srcᵀ` as a new `cols × rows` matrix ([`transpose`] into fresh memory, not zeroed first).
pub(crate) fn transposed(rows: usize, cols: usize, src: &[f32], parallel: bool) -> Vec<f32> {
    let mut out: Vec<f32> = Vec::with_capacity(rows * cols);
    transpose_into(rows, cols, src, &mut out.spare_capacity_mut()[..rows * cols], parallel);
    // SAFETY: the capacity is at least `rows · cols`, and `transpose_into` wrote every
    // element of `dst` (its bands cover it; a panic propagates before here).
    #[allow(unsafe_code)]
    unsafe {
        out.set_len(rows * cols);
    }
    out
}

/// [`transpose`] into `dst`, exactly `rows · cols` long, writing every element of it.
fn transpose_into(rows: usize, cols: usize, src: &[f32], dst: &mut [MaybeUninit<f32>], parallel: bool) {
    assert!(src.len() >= rows * cols, "transpose: src has {} values, needs {rows}×{cols}", src.len());
    assert_eq!(dst.len(), rows * cols, "transpose: dst must hold {cols}×{rows}");
    if rows == 0 || cols == 0 {
        return;
    }
    // A band is TILE rows of `dst` (TILE columns of `src`). Each tile goes through a
    // buffer on the stack, so that both its reads and its writes are whole rows: writing
    // `dst` a column at a time strides it by a power of two for most layers (512 floats),
    // and those lines fall into the same few cache sets.
    let band = |b: usize, out: &mut [MaybeUninit<f32>]| {
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
                    d.write(t[j]);
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

/// Where element (i, p) of `a` is, `i·a_rs + p·a_cs`, and (p, j) of `b`, `p·b_rs + j·b_cs`,
/// for the operands of an `m × n × k` product as [`sgemm`] takes them.
#[derive(Clone, Copy)]
struct Strides {
    a_rs: usize,
    a_cs: usize,
    b_rs: usize,
    b_cs: usize,
}

impl Strides {
    /// The strides of `a` and `b`, after checking that each slice holds its matrix.
    ///
    /// # Panics
    /// When `a` or `b` is shorter than its matrix (a bug in the caller).
    fn checked(m: usize, n: usize, k: usize, a: &[f32], ta: bool, b: &[f32], tb: bool) -> Self {
        assert!(a.len() >= m * k, "sgemm: lhs has {} values, needs {m}×{k}", a.len());
        assert!(b.len() >= k * n, "sgemm: rhs has {} values, needs {k}×{n}", b.len());
        let (a_rs, a_cs) = if ta { (1, m) } else { (k, 1) };
        let (b_rs, b_cs) = if tb { (1, k) } else { (n, 1) };
        Self { a_rs, a_cs, b_rs, b_cs }
    }
}

/// One single-threaded gemm call, bounds-checked: the `c.len() / n` rows of `a · b` whose
/// first row of `a` starts `a` (strides `s`) into `c`, added onto `c` with `read_dst`, else
/// written without reading it (then `c` may be uninitialised). With `k = 0` the product is
/// zero.
fn raw(n: usize, k: usize, a: &[f32], b: &[f32], s: Strides, c: &mut [MaybeUninit<f32>], read_dst: bool) {
    let mt = c.len() / n.max(1);
    assert!(c.len() == mt * n, "sgemm: dst block has {} values, not whole rows of {n}", c.len());
    if mt == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !read_dst {
            c.fill(MaybeUninit::new(0.0));
        }
        return;
    }
    assert!((mt - 1) * s.a_rs + (k - 1) * s.a_cs < a.len(), "sgemm: lhs block out of bounds");
    assert!((k - 1) * s.b_rs + (n - 1) * s.b_cs < b.len(), "sgemm: rhs block out of bounds");
    // SAFETY: the asserts above keep every index gemm forms inside its slice (the largest
    // is (mt-1)·rs + (k-1)·cs for `a`, likewise `b`; `c` is mt × n row-major); `c` is a
    // unique borrow, so it aliases neither input. Without `read_dst` gemm zeroes its
    // `alpha` and stores `a·b` without reading `c` (gemm-common 0.19's generic kernel and
    // its gemv and gevv paths all test for a zero alpha before reading the destination),
    // so `c` may be uninitialised then.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            mt,
            n,
            k,
            c.as_mut_ptr().cast::<f32>(),
            1,
            n as isize,
            read_dst,
            a.as_ptr(),
            s.a_cs as isize,
            s.a_rs as isize,
            b.as_ptr(),
            s.b_cs as isize,
            s.b_rs as isize,
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
    #[allow(clippy::float_cmp)] // the transpose moves values: they must be equal
    fn products_overwrite_without_reading_the_destination() {
        // A destination full of NaN: a product that read it (0 · NaN, or an add) would
        // return NaN. Shapes cover gemm's outer-product (k = 1, 2), vector (m or n = 1)
        // and blocked paths, k = 0, and the split over threads (m ≥ 32, m·n·k ≥ 2^17).
        for (m, n, k) in [(1, 1, 1), (1, 9, 5), (9, 1, 5), (6, 7, 1), (6, 7, 2), (5, 4, 0), (17, 33, 65), (256, 64, 40)]
        {
            let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
            let bias: Vec<f32> = (0..n).map(|j| j as f32 - 2.5).collect();
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let want = naive(m, n, k, &a, ta, &b, tb);
                let close = |x: f32, y: f32| (x - y).abs() <= 1e-4 * (1.0 + y.abs());
                for parallel in [false, true] {
                    let mut c = vec![f32::NAN; m * n];
                    sgemm(m, n, k, &a, ta, &b, tb, &mut c, false, parallel);
                    assert!(c.iter().zip(&want).all(|(&x, &y)| close(x, y)), "sgemm {m}×{n}×{k} ta={ta} tb={tb}");
                    let fresh = sgemm_new(m, n, k, &a, ta, &b, tb, None, parallel, |_| {});
                    assert!(fresh.len() == m * n && fresh.iter().zip(&want).all(|(&x, &y)| close(x, y)));
                    // With the bias rows and an epilogue that sees every row once.
                    let fused = sgemm_new(m, n, k, &a, ta, &b, tb, Some(&bias), parallel, |rows| {
                        assert_eq!(rows.len() % n, 0);
                        for v in rows.iter_mut() {
                            *v = v.max(0.0);
                        }
                    });
                    for (idx, (&x, &y)) in fused.iter().zip(&want).enumerate() {
                        assert!(close(x, (y + bias[idx % n]).max(0.0)), "fused {m}×{n}×{k} at {idx}: {x} vs {y}");
                    }
                }
            }
        }
        assert!(transposed(3, 5, &(0..15).map(|v| v as f32).collect::<Vec<_>>(), true)
            .iter()
            .enumerate()
            .all(|(i, &v)| v == ((i % 3) * 5 + i / 3) as f32));
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
