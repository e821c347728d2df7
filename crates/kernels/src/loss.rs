//! Losses as one op each, one pass forward and one backward: the mean squared error and
//! the Bernoulli negative log-likelihood of logits (a VAE's reconstruction term).

use std::mem::MaybeUninit;

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use crate::cpu::{slice, tensor, with_f32};
use crate::math::{exp, ln_1p_unit};
use crate::par;

const NAME: &str = "mse";
/// Elements per block of the mean squared error's sum (the sums' grouping, and so the
/// result's last bit, depend on it).
const MSE_BLOCK: usize = 4096;

struct Mse;

impl CustomOp2 for Mse {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(&self, a: &CpuStorage, al: &Layout, b: &CpuStorage, bl: &Layout) -> Result<(CpuStorage, Shape)> {
        if al.dims() != bl.dims() {
            bail!("{NAME}: reconstruction {:?} and target {:?} differ in shape", al.dims(), bl.dims());
        }
        let (a, b) = (slice(a, al, NAME)?, slice(b, bl, NAME)?);
        // f64 partial sums per block keep the mean exact to f32 rounding for any size; the
        // blocks run in parallel and their sums are added in order (the same value on any
        // number of threads).
        let sum: f64 = par::map(a.len().div_ceil(MSE_BLOCK), |i| {
            let r = i * MSE_BLOCK..((i + 1) * MSE_BLOCK).min(a.len());
            let s: f32 = a[r.clone()].iter().zip(&b[r]).map(|(x, y)| (x - y) * (x - y)).sum();
            f64::from(s)
        })
        .into_iter()
        .sum();
        let mean = if a.is_empty() { f64::NAN } else { sum / a.len() as f64 };
        Ok((CpuStorage::F32(vec![mean as f32]), Shape::from(())))
    }

    fn bwd(&self, a: &Tensor, b: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if a.dims() != b.dims() {
            bail!("{NAME}: reconstruction {:?} and target {:?} differ in shape", a.dims(), b.dims());
        }
        let scale = 2.0 * grad.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()? / a.elem_count() as f32;
        let d = with_f32(a, NAME, |a| {
            with_f32(b, NAME, |b| {
                let piece = |i: usize, d: &mut [MaybeUninit<f32>]| {
                    let r = i * BLOCK..i * BLOCK + d.len();
                    d.iter_mut().zip(a[r.clone()].iter().zip(&b[r])).for_each(|(d, (x, y))| {
                        d.write(scale * (x - y));
                    });
                };
                // SAFETY: `piece` writes every element of `d` (zipped with slices of `a`
                // and `b` as long as `d`: `a` and `b` have one shape, checked above).
                #[allow(unsafe_code)]
                unsafe {
                    crate::cpu::build_uninit(a.len(), BLOCK, piece).0
                }
            })
        })??;
        let db = if b.track_op() { Some(tensor(d.iter().map(|v| -v).collect(), b.shape().clone())?) } else { None };
        let da = if a.track_op() { Some(tensor(d, a.shape().clone())?) } else { None };
        Ok((da, db))
    }
}

/// Mean over all elements of `(a - b)²`, a scalar; differentiable in both.
pub fn mse(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.contiguous()?.apply_op2(&b.contiguous()?, Mse)
}

const BCE: &str = "bernoulli_nll";
/// Elements per parallel block.
const BLOCK: usize = 16_384;

/// `softplus(l) = log(1 + eˡ)` without overflow, vectorisable.
#[inline(always)] // into the vectorised loops of `bce_sum`
#[allow(clippy::inline_always)]
fn softplus(l: f32) -> f32 {
    l.max(0.0) + ln_1p_unit(exp(-l.abs()))
}

/// `Σ softplus(l) − x·l` over a block, on this thread with the CPU's widest SIMD: sixteen
/// running sums, one per lane, added at the end (a single running sum would keep the
/// compiler from vectorising the loop, since it must not reorder float additions).
fn bce_sum(l: &[f32], x: &[f32]) -> f32 {
    pulp::Arch::new().dispatch(BceSum { l, x })
}

/// `scale · (σ(l) − x)` into `out`, vectorised.
fn bce_grad(l: &[f32], x: &[f32], scale: f32, out: &mut [f32]) {
    pulp::Arch::new().dispatch(BceGrad { l, x, scale, out });
}

// The loops live in `with_simd` bodies marked `inline(always)`, which pulp inlines into its
// functions compiled for AVX-512 / AVX2: a closure handed to `dispatch` is a function of
// its own, and one as long as these is not inlined, so it was compiled for plain x86-64
// (scalar, `floor` a libm call), 10% of a VAE training step in `perf`.
struct BceSum<'a> {
    l: &'a [f32],
    x: &'a [f32],
}

impl pulp::WithSimd for BceSum<'_> {
    type Output = f32;

    #[inline(always)]
    #[allow(clippy::inline_always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> f32 {
        const LANES: usize = 16;
        let mut acc = [0f32; LANES];
        let (lc, xc) = (self.l.chunks_exact(LANES), self.x.chunks_exact(LANES));
        let tail: f32 = lc.remainder().iter().zip(xc.remainder()).map(|(&l, &x)| softplus(l) - x * l).sum();
        for (l, x) in lc.zip(xc) {
            for k in 0..LANES {
                acc[k] += softplus(l[k]) - x[k] * l[k];
            }
        }
        acc.iter().sum::<f32>() + tail
    }
}

struct BceGrad<'a> {
    l: &'a [f32],
    x: &'a [f32],
    scale: f32,
    out: &'a mut [f32],
}

impl pulp::WithSimd for BceGrad<'_> {
    type Output = ();

    #[inline(always)]
    #[allow(clippy::inline_always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let scale = self.scale;
        for (o, (&l, &x)) in self.out.iter_mut().zip(self.l.iter().zip(self.x)) {
            *o = scale * (1.0 / (1.0 + exp(-l)) - x);
        }
    }
}

struct BernoulliNll;

impl CustomOp2 for BernoulliNll {
    fn name(&self) -> &'static str {
        BCE
    }

    fn cpu_fwd(&self, a: &CpuStorage, al: &Layout, b: &CpuStorage, bl: &Layout) -> Result<(CpuStorage, Shape)> {
        if al.dims() != bl.dims() || al.dims().is_empty() {
            bail!("{BCE}: logits {:?} and targets {:?} must have one shape [batch, ...]", al.dims(), bl.dims());
        }
        let rows = al.dims()[0];
        let (l, x) = (slice(a, al, BCE)?, slice(b, bl, BCE)?);
        // Blocks in parallel (transcendentals dominate), their f64 sums added in order:
        // the same value for any thread count.
        let blocks = l.len().div_ceil(BLOCK);
        let sum: f64 = par::map(blocks, |i| {
            let r = i * BLOCK..((i + 1) * BLOCK).min(l.len());
            f64::from(bce_sum(&l[r.clone()], &x[r]))
        })
        .into_iter()
        .sum();
        let mean = if rows == 0 { f64::NAN } else { sum / rows as f64 };
        Ok((CpuStorage::F32(vec![mean as f32]), Shape::from(())))
    }

    fn bwd(&self, a: &Tensor, b: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let scale = grad.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()? / a.dim(0)?.max(1) as f32;
        let da = if a.track_op() {
            let d = with_f32(a, BCE, |l| {
                with_f32(b, BCE, |x| {
                    crate::cpu::build_zeroed(l.len(), BLOCK, |i, d| {
                        let r = i * BLOCK..i * BLOCK + d.len();
                        bce_grad(&l[r.clone()], &x[r], scale, d);
                    })
                    .0
                })
            })??;
            Some(tensor(d, a.shape().clone())?)
        } else {
            None
        };
        let db = if b.track_op() {
            Some(tensor(with_f32(a, BCE, |l| l.iter().map(|&l| -scale * l).collect::<Vec<f32>>())?, b.shape().clone())?)
        } else {
            None
        };
        Ok((da, db))
    }
}

/// The Bernoulli negative log-likelihood of targets `x` in [0, 1] under `logits`, summed
/// over each sample's features and averaged over the batch: mean over the rows of
/// `Σ softplus(l) − x·l` (binary cross-entropy with logits, summed per sample), a scalar;
/// differentiable in both.
pub fn bernoulli_nll(logits: &Tensor, x: &Tensor) -> Result<Tensor> {
    logits.contiguous()?.apply_op2(&x.contiguous()?, BernoulliNll)
}
