//! 2-D convolution and transposed convolution (NCHW, square kernels, bias and activation
//! fused) as im2col/col2im + gemm, parallel over groups of samples.
//!
//! A group of `S` samples is unfolded into one column matrix `[c·k·k, S·h·w]`, so each
//! gemm is wide enough to run near the machine's peak; groups run on the pool, each
//! with a single-threaded gemm. The backward pass recomputes the columns instead of
//! keeping them, sums the weight gradient over groups, and computes the input's gradient
//! only when the input needs one.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::thread::LocalKey;

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use crate::act::Act;
use crate::blas::sgemm;
use crate::cpu::{build_uninit, build_zeroed, slice, tensor, with_f32};
use crate::par;

/// Columns per group the grouping aims at (wide enough for gemm's kernels, small enough
/// that a group's buffers stay in cache).
const TARGET_COLUMNS: usize = 1024;

/// Kernel geometry shared by both ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geom {
    k: usize,
    stride: usize,
    pad: usize,
}

/// The range of grid positions `o` whose tap `o·stride + tap - pad` lands inside
/// `0..size`, clipped to `0..grid`.
fn valid(grid: usize, size: usize, tap: usize, g: Geom) -> std::ops::Range<usize> {
    let lo = g.pad.saturating_sub(tap).div_ceil(g.stride);
    let hi = if size + g.pad > tap { ((size + g.pad - tap - 1) / g.stride + 1).min(grid) } else { 0 };
    lo.min(hi)..hi
}

/// `d[i] = src[i·stride]` for every `i` of `d`. Strides 1 and 2 (every layer of the zoo)
/// get loops without the division that `step_by` spends on its length.
fn gather_strided(d: &mut [f32], src: &[f32], stride: usize) {
    match stride {
        1 => d.copy_from_slice(&src[..d.len()]),
        2 => d.iter_mut().zip(src.chunks(2)).for_each(|(d, s)| *d = s[0]),
        _ => d.iter_mut().enumerate().for_each(|(i, d)| *d = src[i * stride]),
    }
}

/// `dst[i·stride] += s[i]` for every `i` of `s` (the adjoint of [`gather_strided`]).
fn add_strided(dst: &mut [f32], s: &[f32], stride: usize) {
    match stride {
        1 => dst.iter_mut().zip(s).for_each(|(d, &v)| *d += v),
        2 => dst.chunks_mut(2).zip(s).for_each(|(d, &v)| d[0] += v),
        _ => s.iter().enumerate().for_each(|(i, &v)| dst[i * stride] += v),
    }
}

/// For each kernel row `ki` and column `kj`, the grid rows and columns whose tap lands
/// inside the image ([`valid`]): the same for every channel, so computed once per image
/// rather than once per channel.
type Taps = (Vec<std::ops::Range<usize>>, Vec<std::ops::Range<usize>>);

fn taps(g: Geom, (gh, gw): (usize, usize), (h, w): (usize, usize)) -> Taps {
    ((0..g.k).map(|ki| valid(gh, h, ki, g)).collect(), (0..g.k).map(|kj| valid(gw, w, kj, g)).collect())
}

/// The phase planes of `h × w` images for stride `s`: pixel `(py + s·r, px + s·q)` of a
/// channel goes to row `r`, column `q` of plane `(py, px)`, a row-major
/// `rows[py] × cols[px]` block inside the channel's `h·w` values. Kernel tap `t` at grid
/// position `o` reads pixel `o·s + t − pad`, which is position `o + ⌊(t − pad)/s⌋` of phase
/// `(t − pad) mod s`: a fixed shift inside one plane, so a tap's values are contiguous
/// runs of a plane (and, when a plane is as wide as the grid, one run for the whole tap)
/// instead of every `s`-th pixel of short image rows. For stride 1 the one plane is the
/// image itself.
struct Phases {
    s: usize,
    h: usize,
    w: usize,
    rows: Vec<usize>,
    cols: Vec<usize>,
    /// Start of plane `(py, px)` (index `py·s + px`) in a channel's values.
    starts: Vec<usize>,
}

impl Phases {
    fn new(s: usize, h: usize, w: usize) -> Self {
        let len = |n: usize, p: usize| if p < n { (n - p).div_ceil(s) } else { 0 };
        let rows: Vec<usize> = (0..s).map(|p| len(h, p)).collect();
        let cols: Vec<usize> = (0..s).map(|p| len(w, p)).collect();
        let mut starts = Vec::with_capacity(s * s);
        let mut above = 0;
        for &r in &rows {
            let mut left = 0;
            for &c in &cols {
                starts.push(above * w + r * left);
                left += c;
            }
            above += r;
        }
        Self { s, h, w, rows, cols, starts }
    }

    /// The phase and shift that kernel tap `t` reads with padding `pad`.
    fn tap(&self, t: usize, pad: usize) -> (usize, isize) {
        let (d, s) = (t as isize - pad as isize, self.s as isize);
        (d.rem_euclid(s) as usize, d.div_euclid(s))
    }

    /// Where plane `(py, px)` of channel `ch` lies, and its width.
    fn plane(&self, ch: usize, py: usize, px: usize) -> (std::ops::Range<usize>, usize) {
        let start = ch * self.h * self.w + self.starts[py * self.s + px];
        (start..start + self.rows[py] * self.cols[px], self.cols[px])
    }

    /// Where, in a channel's planes, the pixels of image row `iy` in column phase `px` go
    /// (one row of plane `(iy mod s, px)`).
    fn row(&self, iy: usize, px: usize) -> std::ops::Range<usize> {
        let o = self.starts[(iy % self.s) * self.s + px] + (iy / self.s) * self.cols[px];
        o..o + self.cols[px]
    }

    /// Writes the planes of every channel of `img` into `out` (both `c·h·w` long).
    fn split(&self, img: &[f32], out: &mut [f32]) {
        let (s, h, w) = (self.s, self.h, self.w);
        for (plane, dst) in img.chunks_exact(h * w).zip(out.chunks_exact_mut(h * w)) {
            for (iy, row) in plane.chunks_exact(w).enumerate() {
                if s == 2 && w > 1 {
                    let (even, odd) = (self.row(iy, 0), self.row(iy, 1));
                    let (head, tail) = dst.split_at_mut(odd.start);
                    deinterleave(row, &mut head[even], &mut tail[..odd.len()]);
                    continue;
                }
                for px in 0..s.min(w) {
                    gather_strided(&mut dst[self.row(iy, px)], &row[px..], s);
                }
            }
        }
    }

    /// The adjoint of [`Phases::split`]: adds the planes in `planes` onto `img`.
    fn merge_add(&self, planes: &[f32], img: &mut [f32]) {
        let (s, h, w) = (self.s, self.h, self.w);
        for (plane, src) in img.chunks_exact_mut(h * w).zip(planes.chunks_exact(h * w)) {
            for (iy, row) in plane.chunks_exact_mut(w).enumerate() {
                if s == 2 && w > 1 {
                    interleave_add(&src[self.row(iy, 0)], &src[self.row(iy, 1)], row);
                    continue;
                }
                for px in 0..s.min(w) {
                    add_strided(&mut row[px..], &src[self.row(iy, px)], s);
                }
            }
        }
    }
}

/// `row`'s even pixels into `even`, odd ones into `odd` (the two column phases of stride
/// 2) in one pass over the row, instead of a strided gather per phase (the compiler
/// vectorises the loop for rows of 16 pixels and more; the zoo's rows of 7 and 14 stay
/// scalar).
fn deinterleave(row: &[f32], even: &mut [f32], odd: &mut [f32]) {
    let (pairs, rest) = row.as_chunks::<2>();
    let (e, o) = (&mut even[..pairs.len()], &mut odd[..pairs.len()]);
    for i in 0..pairs.len() {
        e[i] = pairs[i][0];
        o[i] = pairs[i][1];
    }
    if let [last] = rest {
        even[pairs.len()] = *last;
    }
}

/// The adjoint of [`deinterleave`]: adds `even` and `odd` onto the even and odd pixels of
/// `row`.
fn interleave_add(even: &[f32], odd: &[f32], row: &mut [f32]) {
    let (pairs, rest) = row.as_chunks_mut::<2>();
    let (e, o) = (&even[..pairs.len()], &odd[..pairs.len()]);
    for i in 0..pairs.len() {
        pairs[i][0] += e[i];
        pairs[i][1] += o[i];
    }
    if let [last] = rest {
        *last += even[pairs.len()];
    }
}

/// The run `lo..hi` of the block `rows` (grid rows of `gw` entries) whose entries, moved by
/// `shift`, land inside a plane of `len` values; entries of the block outside it are
/// outside the valid columns.
fn run(rows: &std::ops::Range<usize>, gw: usize, shift: isize, len: usize) -> (usize, usize) {
    let (a, b) = ((rows.start * gw) as isize, (rows.end * gw) as isize);
    let lo = (-shift).clamp(a, b);
    let hi = (len as isize - shift).clamp(lo, b);
    (lo as usize, hi as usize)
}

/// Zeroes the columns outside `cols` in every `gw`-wide row of `block`: one strided pass
/// per such column (a tap misses one or two columns of the grid), instead of two `fill`
/// calls per row, which for the zoo's 7- and 14-pixel rows cost more in calls than in
/// stores.
fn zero_columns(block: &mut [f32], gw: usize, cols: &std::ops::Range<usize>) {
    for j in (0..cols.start).chain(cols.end..gw) {
        block[j..].iter_mut().step_by(gw).for_each(|v| *v = 0.0);
    }
}

/// One tap of [`im2col`]: `dst[oy·gw + ox] = plane[(oy + dy)·pw + ox + dx]` for `oy` in
/// `rows`, `ox` in `cols`, and zero everywhere else in `dst` (`gh × gw`).
fn unfold_tap(
    plane: &[f32],
    pw: usize,
    (dy, dx): (isize, isize),
    (rows, cols): (std::ops::Range<usize>, std::ops::Range<usize>),
    gw: usize,
    dst: &mut [f32],
) {
    dst[..rows.start * gw].fill(0.0);
    dst[rows.end * gw..].fill(0.0);
    if pw == gw {
        // The block's valid entries sit at one shift in the plane: one copy for the block,
        // then the columns outside `cols` (filled from neighbouring rows, or not at all)
        // zeroed.
        let shift = dy * gw as isize + dx;
        let (lo, hi) = run(&rows, gw, shift, plane.len());
        dst[rows.start * gw..lo].fill(0.0);
        dst[hi..rows.end * gw].fill(0.0);
        if hi > lo {
            let from = (lo as isize + shift) as usize;
            dst[lo..hi].copy_from_slice(&plane[from..from + (hi - lo)]);
        }
        zero_columns(&mut dst[rows.start * gw..rows.end * gw], gw, &cols);
    } else {
        for oy in rows {
            let d = &mut dst[oy * gw..(oy + 1) * gw];
            d[..cols.start].fill(0.0);
            d[cols.end..].fill(0.0);
            if !cols.is_empty() {
                let from = (oy as isize + dy) as usize * pw + (cols.start as isize + dx) as usize;
                d[cols.clone()].copy_from_slice(&plane[from..from + cols.len()]);
            }
        }
    }
}

/// One tap of [`col2im`], the adjoint of [`unfold_tap`]:
/// `plane[(oy + dy)·pw + ox + dx] += src[oy·gw + ox]` for `oy` in `rows`, `ox` in `cols`.
/// Entries of `src` outside `cols` may be overwritten with zeros (adding a zero leaves
/// every sum as it is, −0.0 aside).
fn fold_tap(
    src: &mut [f32],
    (rows, cols): (std::ops::Range<usize>, std::ops::Range<usize>),
    gw: usize,
    (dy, dx): (isize, isize),
    plane: &mut [f32],
    pw: usize,
) {
    if cols.is_empty() || rows.is_empty() {
        return;
    }
    if pw == gw {
        zero_columns(&mut src[rows.start * gw..rows.end * gw], gw, &cols);
        let shift = dy * gw as isize + dx;
        let (lo, hi) = run(&rows, gw, shift, plane.len());
        if hi > lo {
            let to = (lo as isize + shift) as usize;
            plane[to..to + (hi - lo)].iter_mut().zip(&src[lo..hi]).for_each(|(p, &v)| *p += v);
        }
    } else {
        for oy in rows {
            let to = (oy as isize + dy) as usize * pw + (cols.start as isize + dx) as usize;
            let s = &src[oy * gw + cols.start..oy * gw + cols.end];
            plane[to..to + cols.len()].iter_mut().zip(s).for_each(|(p, &v)| *p += v);
        }
    }
}

/// Calls `f(row, (plane, width), shift, (rows, cols))` for every kernel tap `(ch, ki, kj)`
/// of `c` channels, in that order (col2im's sums rely on it): the tap's row of the column
/// matrix, where its phase plane lies and how wide it is, its shift in the plane, and the
/// grid rows and columns it covers ([`taps`]).
#[allow(clippy::type_complexity)]
fn for_each_tap(
    c: usize,
    g: Geom,
    ph: &Phases,
    (rows_at, cols_at): &Taps,
    mut f: impl FnMut(
        usize,
        (std::ops::Range<usize>, usize),
        (isize, isize),
        (std::ops::Range<usize>, std::ops::Range<usize>),
    ),
) {
    for ch in 0..c {
        for (ki, rows) in rows_at.iter().enumerate() {
            let (py, dy) = ph.tap(ki, g.pad);
            for (kj, cols) in cols_at.iter().enumerate() {
                let (px, dx) = ph.tap(kj, g.pad);
                f((ch * g.k + ki) * g.k + kj, ph.plane(ch, py, px), (dy, dx), (rows.clone(), cols.clone()));
            }
        }
    }
}

/// Unfolds image `img` (`[c, h, w]`) for a `(gh × gw)` grid of kernel positions: row
/// `(ch, ki, kj)` of `col` (row stride `ld`, starting at column `off`) gets the pixels
/// under kernel tap `(ki, kj)`, zero where the tap falls into the padding. Every entry of
/// the block is written.
#[allow(clippy::too_many_arguments)]
fn im2col(
    img: &[f32],
    c: usize,
    h: usize,
    w: usize,
    g: Geom,
    (gh, gw): (usize, usize),
    col: &mut [f32],
    ld: usize,
    off: usize,
) {
    let (at, ph) = (taps(g, (gh, gw), (h, w)), Phases::new(g.stride, h, w));
    let unfold = |planes: &[f32], col: &mut [f32]| {
        for_each_tap(c, g, &ph, &at, |row, (plane, pw), shift, covered| {
            let dst = &mut col[row * ld + off..row * ld + off + gh * gw];
            unfold_tap(&planes[plane], pw, shift, covered, gw, dst);
        });
    };
    if g.stride == 1 {
        unfold(img, col);
    } else {
        with_buffer(&PHASES, c * h * w, |planes| {
            ph.split(img, planes);
            unfold(planes, col);
        });
    }
}

/// The adjoint of [`im2col`]: adds every column entry back onto the pixel it came from
/// (overwriting entries of `col` that fall into the padding with zeros).
#[allow(clippy::too_many_arguments)]
fn col2im(
    col: &mut [f32],
    ld: usize,
    off: usize,
    c: usize,
    h: usize,
    w: usize,
    g: Geom,
    (gh, gw): (usize, usize),
    img: &mut [f32],
) {
    let (at, ph) = (taps(g, (gh, gw), (h, w)), Phases::new(g.stride, h, w));
    let fold = |col: &mut [f32], planes: &mut [f32]| {
        for_each_tap(c, g, &ph, &at, |row, (plane, pw), shift, covered| {
            let src = &mut col[row * ld + off..row * ld + off + gh * gw];
            fold_tap(src, covered, gw, shift, &mut planes[plane], pw);
        });
    };
    if g.stride == 1 {
        fold(col, img);
    } else {
        // Planes summed from zero in the same tap order as the pixels would be, then added
        // onto the (zeroed) image: the same sums to the last bit.
        with_buffer(&PHASES, c * h * w, |planes| {
            planes.fill(0.0);
            fold(col, planes);
            ph.merge_add(planes, img);
        });
    }
}

thread_local! {
    /// Per-thread scratch for column matrices and gathered blocks, kept between calls so
    /// that each step neither allocates nor zeroes (nor page-faults) megabytes afresh.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Per-thread scratch for one image's phase planes ([`Phases`]).
    static PHASES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Per-thread scratch for a group's gradient at the pre-activation ([`per_group`]).
    static GRAD: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Calls `f` with two scratch slices of lengths `a` and `b`. Their contents are
/// unspecified: callers overwrite every entry they read.
fn with_scratch<R>(a: usize, b: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    with_buffer(&SCRATCH, a + b, |buf| {
        let (x, y) = buf.split_at_mut(a);
        f(x, y)
    })
}

/// Calls `f` with `len` values of the per-thread buffer `cell` (contents unspecified), or
/// with a fresh buffer when the thread is already using that one (a task run while
/// another waits).
fn with_buffer<R>(cell: &'static LocalKey<RefCell<Vec<f32>>>, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    cell.with(|cell| {
        if let Ok(mut buf) = cell.try_borrow_mut() {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            f(&mut buf[..len])
        } else {
            f(&mut vec![0f32; len])
        }
    })
}

/// Samples per group for `hw` columns per sample and `n` samples: about
/// [`TARGET_COLUMNS`] columns, at least as many groups as threads, and groups that keep
/// every thread equally busy. Groups run as dynamic tasks, so a step takes as long as the
/// busiest thread's share: 256 samples of 7×7 pixels in 13 groups of 20 leave one of two
/// threads idle for a group's time (140 samples against 116), 16 groups of 16 do not.
/// Among group counts that are multiples of the thread count, from the one the target
/// gives to twice that, the one whose busiest share is smallest (then the fewest groups).
fn group_size(n: usize, hw: usize) -> usize {
    let threads = par::threads();
    let s0 = (TARGET_COLUMNS / hw.max(1)).clamp(1, n.div_ceil(threads).max(1));
    let first = n.div_ceil(s0).next_multiple_of(threads);
    let busiest = |s: usize| n.div_ceil(s).div_ceil(threads) * s;
    (first..=2 * first)
        .step_by(threads)
        .map(|groups| n.div_ceil(groups.max(1)).max(1))
        .min_by_key(|&s| (busiest(s), n.div_ceil(s)))
        .unwrap_or(s0)
}

/// Copies `[S, rows, hw]` (sample-major) into `[rows, S·hw]` (row-major over the group).
fn gather(src: &[f32], s: usize, rows: usize, hw: usize, dst: &mut [f32]) {
    for si in 0..s {
        for r in 0..rows {
            let from = &src[(si * rows + r) * hw..(si * rows + r + 1) * hw];
            dst[r * s * hw + si * hw..r * s * hw + (si + 1) * hw].copy_from_slice(from);
        }
    }
}

/// Copies `[S·hw, rows]` (a gemm's result with one row per pixel) into `[S, rows, hw]`,
/// transposing each sample's `hw × rows` block.
fn scatter_transposed(src: &[f32], s: usize, rows: usize, hw: usize, dst: &mut [f32]) {
    for (block, out) in src.chunks_exact(hw * rows).zip(dst.chunks_exact_mut(rows * hw)).take(s) {
        for (r, plane) in out.chunks_exact_mut(hw).enumerate() {
            plane.iter_mut().zip(block[r..].iter().step_by(rows)).for_each(|(d, &v)| *d = v);
        }
    }
}

/// [`scatter_transposed`] with `bias[r]` added to every value of row `r`, into fresh
/// memory: writes all of `dst` (`s · rows · hw` values) without reading it.
fn scatter_transposed_bias(src: &[f32], s: usize, rows: usize, hw: usize, bias: &[f32], dst: &mut [MaybeUninit<f32>]) {
    assert!(
        dst.len() == s * rows * hw && src.len() >= s * rows * hw && bias.len() == rows,
        "scatter: sizes do not fit"
    );
    for (block, out) in src.chunks_exact(hw * rows).zip(dst.chunks_exact_mut(rows * hw)) {
        for (r, plane) in out.chunks_exact_mut(hw).enumerate() {
            let b = bias[r];
            plane.iter_mut().zip(block[r..].iter().step_by(rows)).for_each(|(d, &v)| {
                d.write(v + b);
            });
        }
    }
}

/// The transpose of the `r × c` matrix `src` (row-major), `c × r`, on this thread.
fn transpose(src: &[f32], r: usize, c: usize) -> Vec<f32> {
    crate::blas::transposed(r, c, src, false)
}

/// Adds `b[c]` to every pixel of channel `c` of each sample in `ys` (`[S, c, hw]`).
fn add_bias(ys: &mut [f32], b: &[f32], hw: usize) {
    for (i, plane) in ys.chunks_exact_mut(hw).enumerate() {
        let bias = b[i % b.len()];
        for y in plane.iter_mut() {
            *y += bias;
        }
    }
}

/// The sum of each `hw`-pixel plane of `g` (`[S, c, hw]` → `S·c` sums), computed per group
/// in parallel; [`bias_grad`] folds them.
fn plane_sums(g: &[f32], hw: usize) -> Vec<f32> {
    g.chunks_exact(hw).map(|plane| plane.iter().sum::<f32>()).collect()
}

/// Per-channel sums of the groups' [`plane_sums`] in sample order: the bias gradient, the
/// same to the last bit as summing `g` (`[n, c, hw]`) plane by plane on one thread.
fn bias_grad<'a>(sums: impl Iterator<Item = &'a [f32]>, c: usize) -> Vec<f32> {
    let mut db = vec![0f32; c];
    for (i, s) in sums.flatten().enumerate() {
        db[i % c] += s;
    }
    db
}

/// Runs `work(group, g, dx)` for every group of `g_size` output values in parallel and
/// returns the results (weight-gradient parts and plane sums) in order, with the input's
/// gradient. `g` is the group's gradient at the pre-activation, `act`'s backward of `grad`
/// at the outputs `res`, computed by the thread that runs the group into its scratch
/// (while it is in cache, instead of a pass over the whole batch first); `dx`, when
/// `dx = Some((len, size))`, is the group's `size`-value piece of the `len`-value input
/// gradient, zeroed.
#[allow(clippy::type_complexity)]
fn per_group<R: Send>(
    act: Act,
    (grad, res): (&Tensor, &Tensor),
    g_size: usize,
    dx: Option<(usize, usize)>,
    op: &str,
    work: impl Fn(usize, &[f32], Option<&mut [f32]>) -> R + Sync,
) -> Result<(Vec<R>, Vec<f32>)> {
    with_f32(grad, op, |grad| {
        with_f32(res, op, |res| {
            if grad.len() != res.len() {
                bail!("{op}: the gradient has {} values, the output {}", grad.len(), res.len());
            }
            let groups = grad.len().div_ceil(g_size.max(1));
            let run = |gi: usize, dxg: Option<&mut [f32]>| {
                let r = gi * g_size..((gi + 1) * g_size).min(grad.len());
                with_buffer(&GRAD, r.len(), |gg| {
                    act.backward_serial(&grad[r.clone()], &res[r], gg);
                    work(gi, gg, dxg)
                })
            };
            Ok(match dx {
                Some((len, size)) => {
                    let (dx, parts) = build_zeroed(len, size, |gi, d| run(gi, Some(d)));
                    (parts, dx)
                }
                None => (par::map(groups, |gi| run(gi, None)), Vec::new()),
            })
        })?
    })?
}

/// Sums per-group partial weight gradients (and folds the plane sums into the bias
/// gradient when `bias`).
fn sum_partials(parts: Vec<(Vec<f32>, Vec<f32>)>, len: usize, c: usize, bias: bool) -> (Vec<f32>, Option<Vec<f32>>) {
    let db = bias.then(|| bias_grad(parts.iter().map(|(_, s)| s.as_slice()), c));
    let mut it = parts.into_iter().map(|(dw, _)| dw);
    let mut total = it.next().unwrap_or_else(|| vec![0f32; len]);
    for p in it {
        total.iter_mut().zip(&p).for_each(|(t, v)| *t += v);
    }
    (total, db)
}

/// Stride, padding and activation of a [`conv2d`] (square kernel; size from the weight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dParams {
    /// Step between kernel positions.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
    /// Applied after the bias.
    pub act: Act,
}

struct Conv2dOp(Conv2dParams);

/// `[n, c, h, w]`, `[o, c, k, k]`, `[o]` → `(n, c, h, w, o, k, oh, ow)`.
type ConvDims = (usize, usize, usize, usize, usize, usize, usize, usize);

const CONV: &str = "conv2d";

impl Conv2dOp {
    fn dims(&self, x: &[usize], w: &[usize], b: &[usize]) -> Result<ConvDims> {
        let Conv2dParams { stride, padding, .. } = self.0;
        let (&[n, c, h, wd], &[o, wc, k, k2], &[bo]) = (x, w, b) else {
            bail!("{CONV}: input {x:?}, weight {w:?}, bias {b:?} do not fit [n, c, h, w], [o, c, k, k], [o]")
        };
        if wc != c || k != k2 || bo != o || k == 0 || stride == 0 {
            bail!("{CONV}: input {x:?}, weight {w:?}, bias {b:?} do not fit [n, c, h, w], [o, c, k, k], [o] (stride {stride})");
        }
        if h + 2 * padding < k || wd + 2 * padding < k {
            bail!("{CONV}: a {k}×{k} kernel does not fit a {h}×{wd} input with padding {padding}");
        }
        let (oh, ow) = ((h + 2 * padding - k) / stride + 1, (wd + 2 * padding - k) / stride + 1);
        Ok((n, c, h, wd, o, k, oh, ow))
    }

    fn geom(&self, k: usize) -> Geom {
        Geom { k, stride: self.0.stride, pad: self.0.padding }
    }
}

impl CustomOp3 for Conv2dOp {
    fn name(&self) -> &'static str {
        CONV
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, wd, o, k, oh, ow) = self.dims(xl.dims(), wl.dims(), bl.dims())?;
        let (x, w, b) = (slice(xs, xl, CONV)?, slice(ws, wl, CONV)?, slice(bs, bl, CONV)?);
        let (ckk, hw, g) = (c * k * k, oh * ow, self.geom(k));
        let gs = group_size(n, hw);
        let group = |gi: usize, yg: &mut [MaybeUninit<f32>]| {
            let s = yg.len() / (o * hw);
            let ld = s * hw;
            with_scratch(ckk * ld, o * ld, |col, tmp| {
                for si in 0..s {
                    let img = &x[(gi * gs + si) * c * h * wd..(gi * gs + si + 1) * c * h * wd];
                    im2col(img, c, h, wd, g, (oh, ow), col, ld, si * hw);
                }
                // outᵀ [S·hw, o] = colᵀ · Wᵀ: gemm runs this orientation a quarter faster
                // than W [o, c·k·k] · col (its kernels want the long side as rows).
                sgemm(ld, o, ckk, col, true, w, true, tmp, false, false);
                scatter_transposed_bias(tmp, s, o, hw, b, yg);
            });
            // SAFETY: `scatter_transposed_bias` wrote every element of `yg` (its `s`
            // samples of `o` planes of `hw` pixels), and `MaybeUninit<f32>` has the layout
            // of `f32`.
            #[allow(unsafe_code)]
            let yg = unsafe { &mut *(std::ptr::from_mut::<[MaybeUninit<f32>]>(yg) as *mut [f32]) };
            self.0.act.forward_serial(yg);
        };
        // SAFETY: `group` writes every element of its piece (above).
        #[allow(unsafe_code)]
        let (out, _) = unsafe { build_uninit(n * o * hw, gs * o * hw, group) };
        Ok((CpuStorage::F32(out), Shape::from((n, o, oh, ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, c, h, wd, o, k, oh, ow) = self.dims(x.dims(), w.dims(), b.dims())?;
        let (ckk, hw, geom) = (c * k * k, oh * ow, self.geom(k));
        let need_db = b.track_op();
        let need_dx = x.track_op();
        let gs = group_size(n, hw);
        let (parts, dx) = with_f32(x, CONV, |x| {
            with_f32(w, CONV, |w| {
                // One group: its slice of g, and of dx when wanted; returns its dW part.
                let work = |gi: usize, gg: &[f32], dxg: Option<&mut [f32]>| {
                    let s = gg.len() / (o * hw);
                    let ld = s * hw;
                    let mut dw = vec![0f32; o * ckk];
                    let sums = if need_db { plane_sums(gg, hw) } else { Vec::new() };
                    with_scratch(o * ld, ckk * ld, |gt, col| {
                        gather(gg, s, o, hw, gt);
                        for si in 0..s {
                            let img = &x[(gi * gs + si) * c * h * wd..(gi * gs + si + 1) * c * h * wd];
                            im2col(img, c, h, wd, geom, (oh, ow), col, ld, si * hw);
                        }
                        // dWᵀ part [c·k·k, o] = col [c·k·k, S·hw] · gᵀ (a quarter faster than
                        // dW = g · colᵀ), transposed once after the groups are summed.
                        sgemm(ckk, o, ld, col, false, gt, true, &mut dw, false, false);
                        if let Some(dxg) = dxg {
                            // dcol = Wᵀ [c·k·k, o] · g [o, S·hw], folded back onto the images.
                            sgemm(ckk, ld, o, w, true, gt, false, col, false, false);
                            for (si, img) in dxg.chunks_exact_mut(c * h * wd).enumerate() {
                                col2im(col, ld, si * hw, c, h, wd, geom, (oh, ow), img);
                            }
                        }
                    });
                    (dw, sums)
                };
                let dxs = need_dx.then_some((n * c * h * wd, gs * c * h * wd));
                per_group(self.0.act, (grad, res), gs * o * hw, dxs, CONV, work)
            })
        })???;
        let (dw, db) = sum_partials(parts, o * ckk, o, need_db);
        let dw = transpose(&dw, ckk, o);
        let dx = if need_dx { Some(tensor(dx, (n, c, h, wd))?) } else { None };
        let dw = if w.track_op() { Some(tensor(dw, (o, c, k, k))?) } else { None };
        Ok((dx, dw, db.map(|v| tensor(v, o)).transpose()?))
    }
}

/// `act(conv2d(x, w) + b)` for `x: [n, c, h, w]`, `w: [o, c, k, k]`, `b: [o]` (PyTorch's
/// `Conv2d` layout; cross-correlation, zero padding), differentiable in all three.
pub fn conv2d(x: &Tensor, w: &Tensor, b: &Tensor, p: Conv2dParams) -> Result<Tensor> {
    x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, Conv2dOp(p))
}

/// Stride, padding, output padding and activation of a [`conv_transpose2d`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvTranspose2dParams {
    /// Step between input pixels in the output.
    pub stride: usize,
    /// Rows/columns cropped from each side of the full output.
    pub padding: usize,
    /// Rows/columns added at the bottom/right (less than `stride`).
    pub output_padding: usize,
    /// Applied after the bias.
    pub act: Act,
}

struct ConvT2dOp(ConvTranspose2dParams);

const CONVT: &str = "conv_transpose2d";

impl ConvT2dOp {
    /// `[n, ci, h, w]`, `[ci, co, k, k]`, `[co]` → `(n, ci, h, w, co, k, oh, ow)`.
    fn dims(&self, x: &[usize], w: &[usize], b: &[usize]) -> Result<ConvDims> {
        let ConvTranspose2dParams { stride, padding, output_padding, .. } = self.0;
        let (&[n, ci, h, wd], &[wci, co, k, k2], &[bo]) = (x, w, b) else {
            bail!("{CONVT}: input {x:?}, weight {w:?}, bias {b:?} do not fit [n, ci, h, w], [ci, co, k, k], [co]")
        };
        if wci != ci || k != k2 || bo != co || k == 0 || stride == 0 {
            bail!("{CONVT}: input {x:?}, weight {w:?}, bias {b:?} do not fit [n, ci, h, w], [ci, co, k, k], [co] (stride {stride})");
        }
        if output_padding >= stride {
            bail!("{CONVT}: output padding {output_padding} must be smaller than the stride {stride}");
        }
        let full = |s: usize| (s.max(1) - 1) * stride + k + output_padding;
        if h == 0 || wd == 0 || full(h) <= 2 * padding || full(wd) <= 2 * padding {
            bail!("{CONVT}: padding {padding} leaves no output for a {h}×{wd} input and a {k}×{k} kernel");
        }
        Ok((n, ci, h, wd, co, k, full(h) - 2 * padding, full(wd) - 2 * padding))
    }

    fn geom(&self, k: usize) -> Geom {
        Geom { k, stride: self.0.stride, pad: self.0.padding }
    }
}

impl CustomOp3 for ConvT2dOp {
    fn name(&self) -> &'static str {
        CONVT
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, ci, h, wd, co, k, oh, ow) = self.dims(xl.dims(), wl.dims(), bl.dims())?;
        let (x, w, b) = (slice(xs, xl, CONVT)?, slice(ws, wl, CONVT)?, slice(bs, bl, CONVT)?);
        let (cokk, hw, ohw, geom) = (co * k * k, h * wd, oh * ow, self.geom(k));
        let gs = group_size(n, hw);
        let (out, _) = build_zeroed(n * co * ohw, gs * co * ohw, |gi, yg| {
            let s = yg.len() / (co * ohw);
            let ld = s * hw;
            with_scratch(ci * ld, cokk * ld, |xt, col| {
                gather(&x[gi * gs * ci * hw..(gi * gs + s) * ci * hw], s, ci, hw, xt);
                // col = Wᵀ [co·k·k, ci] · x [ci, S·hw], each sample's columns folded onto its output.
                sgemm(cokk, ld, ci, w, true, xt, false, col, false, false);
                for (si, img) in yg.chunks_exact_mut(co * ohw).enumerate() {
                    col2im(col, ld, si * hw, co, oh, ow, geom, (h, wd), img);
                }
            });
            add_bias(yg, b, ohw);
            self.0.act.forward_serial(yg);
        });
        Ok((CpuStorage::F32(out), Shape::from((n, co, oh, ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, ci, h, wd, co, k, oh, ow) = self.dims(x.dims(), w.dims(), b.dims())?;
        let (cokk, hw, ohw, geom) = (co * k * k, h * wd, oh * ow, self.geom(k));
        let need_db = b.track_op();
        let need_dx = x.track_op();
        let gs = group_size(n, hw);
        let (parts, dx) = with_f32(x, CONVT, |x| {
            with_f32(w, CONVT, |w| {
                let work = |gi: usize, gg: &[f32], dxg: Option<&mut [f32]>| {
                    let s = gg.len() / (co * ohw);
                    let ld = s * hw;
                    let mut dw = vec![0f32; ci * cokk];
                    let sums = if need_db { plane_sums(gg, ohw) } else { Vec::new() };
                    with_scratch(cokk * ld, ci * ld, |gcol, xt| {
                        // gcol: the output gradient unfolded on the input's grid.
                        for (si, img) in gg.chunks_exact(co * ohw).enumerate() {
                            im2col(img, co, oh, ow, geom, (h, wd), gcol, ld, si * hw);
                        }
                        gather(&x[gi * gs * ci * hw..(gi * gs + s) * ci * hw], s, ci, hw, xt);
                        // dWᵀ part [co·k·k, ci] = gcol [co·k·k, S·hw] · xᵀ, transposed once after
                        // the groups are summed (gemm runs it a quarter faster than x · gcolᵀ).
                        sgemm(cokk, ci, ld, gcol, false, xt, true, &mut dw, false, false);
                        if let Some(dxg) = dxg {
                            // dxᵀ [S·hw, ci] = gcolᵀ · Wᵀ (likewise faster than W · gcol)
                            sgemm(ld, ci, cokk, gcol, true, w, true, xt, false, false);
                            scatter_transposed(xt, s, ci, hw, dxg);
                        }
                    });
                    (dw, sums)
                };
                let dxs = need_dx.then_some((n * ci * hw, gs * ci * hw));
                per_group(self.0.act, (grad, res), gs * co * ohw, dxs, CONVT, work)
            })
        })???;
        let (dw, db) = sum_partials(parts, ci * cokk, co, need_db);
        let dw = transpose(&dw, cokk, ci);
        let dx = if need_dx { Some(tensor(dx, (n, ci, h, wd))?) } else { None };
        let dw = if w.track_op() { Some(tensor(dw, (ci, co, k, k))?) } else { None };
        Ok((dx, dw, db.map(|v| tensor(v, co)).transpose()?))
    }
}

/// `act(conv_transpose2d(x, w) + b)` for `x: [n, ci, h, w]`, `w: [ci, co, k, k]`,
/// `b: [co]` (PyTorch's `ConvTranspose2d` layout), output
/// `(h - 1)·stride - 2·padding + k + output_padding` high (likewise wide), differentiable
/// in all three.
pub fn conv_transpose2d(x: &Tensor, w: &Tensor, b: &Tensor, p: ConvTranspose2dParams) -> Result<Tensor> {
    x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, ConvT2dOp(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Geometries `(c, h, w, k, stride, pad)`: strides 1–3, planes as wide as the grid and
    /// not, kernels 1–5, padding 0–2, images smaller than the stride, one-pixel images.
    const GEOMS: [(usize, usize, usize, usize, usize, usize); 15] = [
        (2, 28, 28, 3, 2, 1),
        (3, 14, 14, 3, 2, 1),
        (2, 9, 7, 3, 2, 1),
        (1, 8, 9, 3, 2, 0),
        (2, 11, 9, 5, 2, 2),
        (2, 7, 7, 3, 1, 1),
        (1, 6, 5, 1, 1, 0),
        (2, 10, 10, 3, 3, 1),
        (1, 9, 11, 5, 3, 2),
        (2, 6, 6, 4, 2, 1),
        (1, 1, 3, 3, 2, 1),
        (1, 5, 6, 2, 2, 0),
        (2, 1, 1, 3, 2, 1),
        (1, 2, 2, 3, 2, 1),
        (1, 1, 2, 3, 2, 1),
    ];

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// The pixel row (or column) that grid position `o` reads through tap `t`, if inside.
    fn pixel(o: usize, t: usize, g: Geom, size: usize) -> Option<usize> {
        (o * g.stride + t).checked_sub(g.pad).filter(|&i| i < size)
    }

    fn grid(size: usize, g: Geom) -> usize {
        (size + 2 * g.pad - g.k) / g.stride + 1
    }

    #[test]
    fn groups_cover_the_batch_and_share_it_evenly() {
        let threads = par::threads();
        for n in [0, 1, 3, 96, 255, 256, 1000] {
            for hw in [1, 49, 196, 1024, 5000] {
                let s = group_size(n, hw);
                assert!(s >= 1 && s <= n.max(1), "n {n}, hw {hw}: {s}");
                // The busiest thread's share is never larger than with the plain target size.
                let busiest = |s: usize| n.div_ceil(s).div_ceil(threads) * s;
                let plain = (TARGET_COLUMNS / hw).clamp(1, n.div_ceil(threads).max(1));
                assert!(busiest(s) <= busiest(plain), "n {n}, hw {hw}: {s} against {plain}");
            }
        }
        if threads == 2 {
            // 16 groups of 16 on two threads, not 13 of 20 (one thread idle for a group).
            assert_eq!(group_size(256, 49), 16);
        }
    }

    #[test]
    fn im2col_and_col2im_match_the_definition_to_the_bit() {
        for (i, &(c, h, w, k, stride, pad)) in GEOMS.iter().enumerate() {
            let g = Geom { k, stride, pad };
            let (gh, gw) = (grid(h, g), grid(w, g));
            let (n, rows) = (gh * gw, c * k * k);
            // The block sits inside a wider matrix: entries outside it must stay as they are.
            let (ld, off) = (2 * n + 3, n + 1);
            let img = values(c * h * w, i as u32);
            let mut col = vec![f32::NAN; rows * ld];
            im2col(&img, c, h, w, g, (gh, gw), &mut col, ld, off);
            let dcol = values(rows * ld, 100 + i as u32);
            let mut dimg = vec![0f32; c * h * w];
            col2im(&mut dcol.clone(), ld, off, c, h, w, g, (gh, gw), &mut dimg);
            let mut want = vec![0f32; c * h * w];
            for ch in 0..c {
                for ki in 0..k {
                    for kj in 0..k {
                        let row = (ch * k + ki) * k + kj;
                        for oy in 0..gh {
                            for ox in 0..gw {
                                let j = row * ld + off + oy * gw + ox;
                                let at =
                                    pixel(oy, ki, g, h).zip(pixel(ox, kj, g, w)).map(|(y, x)| (ch * h + y) * w + x);
                                let expect = at.map_or(0.0, |p| img[p]);
                                assert_eq!(
                                    col[j].to_bits(),
                                    expect.to_bits(),
                                    "geometry {i}: col row {row} ({oy}, {ox})"
                                );
                                if let Some(p) = at {
                                    want[p] += dcol[j];
                                }
                            }
                        }
                    }
                }
            }
            let outside = col.iter().enumerate().filter(|&(j, _)| !(off..off + n).contains(&(j % ld)));
            assert!(outside.clone().all(|(_, v)| v.is_nan()), "geometry {i}: im2col wrote outside its block");
            let got: Vec<u32> = dimg.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "geometry {i}: col2im");
        }
    }
}
