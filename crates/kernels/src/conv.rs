//! 2-D convolution and transposed convolution (NCHW, square kernels, bias and activation
//! fused) as im2col/col2im + gemm, parallel over groups of samples.
//!
//! A group of `S` samples is unfolded into one column matrix `[c·k·k, S·h·w]`, so each
//! gemm is wide enough to run near the machine's peak; groups run on the pool, each
//! with a single-threaded gemm. The backward pass recomputes the columns instead of
//! keeping them, sums the weight gradient over groups, and computes the input's gradient
//! only when the input needs one.

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use crate::act::Act;
use crate::blas::sgemm;
use crate::cpu::{slice, tensor, with_f32, zeros};
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
/// get loops without the division that `step_by` spends on its length, which was a sixth
/// of the unfolding's time for a row of 7 or 14 pixels.
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
    let Geom { k, stride, pad } = g;
    let (rows_at, cols_at) = taps(g, (gh, gw), (h, w));
    for ch in 0..c {
        let plane = &img[ch * h * w..(ch + 1) * h * w];
        for (ki, rows) in rows_at.iter().enumerate() {
            let rows = rows.clone();
            for (kj, cols) in cols_at.iter().enumerate() {
                let cols = cols.clone();
                let row = (ch * k + ki) * k + kj;
                let dst = &mut col[row * ld + off..row * ld + off + gh * gw];
                dst[..rows.start * gw].fill(0.0);
                dst[rows.end * gw..].fill(0.0);
                for oy in rows.clone() {
                    let d = &mut dst[oy * gw..(oy + 1) * gw];
                    d[..cols.start].fill(0.0);
                    d[cols.end..].fill(0.0);
                    if cols.is_empty() {
                        continue;
                    }
                    let iy = oy * stride + ki - pad;
                    let src = &plane[iy * w + cols.start * stride + kj - pad..(iy + 1) * w];
                    gather_strided(&mut d[cols.clone()], src, stride);
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds every column entry back onto the pixel it came from.
#[allow(clippy::too_many_arguments)]
fn col2im(
    col: &[f32],
    ld: usize,
    off: usize,
    c: usize,
    h: usize,
    w: usize,
    g: Geom,
    (gh, gw): (usize, usize),
    img: &mut [f32],
) {
    let Geom { k, stride, pad } = g;
    let (rows_at, cols_at) = taps(g, (gh, gw), (h, w));
    for ch in 0..c {
        let plane = &mut img[ch * h * w..(ch + 1) * h * w];
        for (ki, rows) in rows_at.iter().enumerate() {
            for (kj, cols) in cols_at.iter().enumerate() {
                let cols = cols.clone();
                if cols.is_empty() {
                    continue;
                }
                let row = (ch * k + ki) * k + kj;
                let src = &col[row * ld + off..row * ld + off + gh * gw];
                for oy in rows.clone() {
                    let iy = oy * stride + ki - pad;
                    let dst = &mut plane[iy * w + cols.start * stride + kj - pad..(iy + 1) * w];
                    let s = &src[oy * gw + cols.start..oy * gw + cols.end];
                    add_strided(dst, s, stride);
                }
            }
        }
    }
}

thread_local! {
    /// Per-thread scratch for column matrices and gathered blocks, kept between calls so
    /// that each step neither allocates nor zeroes (nor page-faults) megabytes afresh.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Calls `f` with two scratch slices of lengths `a` and `b`. Their contents are
/// unspecified: callers overwrite every entry they read.
fn with_scratch<R>(a: usize, b: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| {
        if let Ok(mut buf) = cell.try_borrow_mut() {
            if buf.len() < a + b {
                buf.resize(a + b, 0.0);
            }
            let (x, y) = buf.split_at_mut(a);
            f(x, &mut y[..b])
        } else {
            // Re-entered on this thread (a task run while another waits): fresh buffers.
            let (mut x, mut y) = (vec![0f32; a], vec![0f32; b]);
            f(&mut x, &mut y)
        }
    })
}

/// Samples per group for `hw` columns per sample and `n` samples: about
/// [`TARGET_COLUMNS`] columns, but at least as many groups as threads.
fn group_size(n: usize, hw: usize) -> usize {
    let threads = par::threads();
    (TARGET_COLUMNS / hw.max(1)).clamp(1, n.div_ceil(threads).max(1))
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

/// The inverse of [`gather`].
fn scatter(src: &[f32], s: usize, rows: usize, hw: usize, dst: &mut [f32]) {
    for si in 0..s {
        for r in 0..rows {
            let to = &mut dst[(si * rows + r) * hw..(si * rows + r + 1) * hw];
            to.copy_from_slice(&src[r * s * hw + si * hw..r * s * hw + (si + 1) * hw]);
        }
    }
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

/// Runs `work(group, its slice of g, its slice of dx)` for every group of `g` (pieces of
/// `g_size` elements) in parallel and returns the groups' results (weight-gradient parts
/// and plane sums) in order; `dx`, when the input needs a gradient, is split into one
/// `dx_size` piece per group.
fn per_group<R: Send>(
    g: &[f32],
    g_size: usize,
    dx: Option<(&mut [f32], usize)>,
    work: impl Fn(usize, &[f32], Option<&mut [f32]>) -> R + Sync,
) -> Vec<R> {
    let chunk = |gi: usize| &g[gi * g_size..((gi + 1) * g_size).min(g.len())];
    let groups = g.len().div_ceil(g_size.max(1));
    match dx {
        Some((dx, dx_size)) => {
            let pieces = par::slots(dx, dx_size);
            par::map(groups, |gi| work(gi, chunk(gi), Some(&mut par::lock(&pieces[gi]))))
        }
        None => par::map(groups, |gi| work(gi, chunk(gi), None)),
    }
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
        let mut out = zeros(n * o * hw);
        par::chunks_mut(&mut out, gs * o * hw, |gi, yg| {
            let s = yg.len() / (o * hw);
            let ld = s * hw;
            with_scratch(ckk * ld, o * ld, |col, tmp| {
                for si in 0..s {
                    let img = &x[(gi * gs + si) * c * h * wd..(gi * gs + si + 1) * c * h * wd];
                    im2col(img, c, h, wd, g, (oh, ow), col, ld, si * hw);
                }
                sgemm(o, ld, ckk, w, false, col, false, tmp, false, false);
                scatter(tmp, s, o, hw, yg);
            });
            add_bias(yg, b, hw);
            self.0.act.forward_serial(yg);
        });
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
        let g = self.0.act.backward_at(res, grad, CONV)?;
        let need_db = b.track_op();
        let need_dx = x.track_op();
        let gs = group_size(n, hw);
        let mut dx = if need_dx { zeros(n * c * h * wd) } else { Vec::new() };
        let dw = with_f32(x, CONV, |x| {
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
                        // dW part = g [o, S·hw] · colᵀ [S·hw, c·k·k]
                        sgemm(o, ckk, ld, gt, false, col, true, &mut dw, false, false);
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
                let dxs = need_dx.then_some((&mut dx[..], gs * c * h * wd));
                sum_partials(per_group(&g, gs * o * hw, dxs, work), o * ckk, o, need_db)
            })
        })??;
        let (dw, db) = dw;
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
        let mut out = zeros(n * co * ohw);
        par::chunks_mut(&mut out, gs * co * ohw, |gi, yg| {
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
        let g = self.0.act.backward_at(res, grad, CONVT)?;
        let need_db = b.track_op();
        let need_dx = x.track_op();
        let gs = group_size(n, hw);
        let mut dx = if need_dx { zeros(n * ci * hw) } else { Vec::new() };
        let dw = with_f32(x, CONVT, |x| {
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
                        // dW part = x [ci, S·hw] · gcolᵀ [S·hw, co·k·k]
                        sgemm(ci, cokk, ld, xt, false, gcol, true, &mut dw, false, false);
                        if let Some(dxg) = dxg {
                            // dx = W [ci, co·k·k] · gcol [co·k·k, S·hw]
                            sgemm(ci, ld, cokk, w, false, gcol, false, xt, false, false);
                            scatter(xt, s, ci, hw, dxg);
                        }
                    });
                    (dw, sums)
                };
                let dxs = need_dx.then_some((&mut dx[..], gs * ci * hw));
                sum_partials(per_group(&g, gs * co * ohw, dxs, work), ci * cokk, co, need_db)
            })
        })??;
        let (dw, db) = dw;
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
