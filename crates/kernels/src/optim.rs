//! Optimiser updates applied in place: one pass reads a parameter's gradient and moments
//! and writes the parameter and moments back, instead of a dozen tensor ops that each
//! allocate a parameter-sized result.

use std::cell::RefCell;

use crate::cpu::slice;
use crate::par;
use candle_core::{bail, CpuStorage, InplaceOp2, Layout, Result};

/// Parameters at least this large are updated by several threads.
const PARALLEL_ELEMS: usize = 1 << 15;
const CHUNK: usize = 1 << 13;

/// One Adam/AdamW update of a parameter, applied with
/// `param.inplace_op2(&grad, &step)`; `m` and `v` are the parameter's moment buffers
/// (updated in place too).
///
/// With `g = scale · grad` (+ `weight_decay · θ` for Adam, L2 style):
/// `m ← β₁m + (1-β₁)g`, `v ← β₂v + (1-β₂)g²`,
/// `θ ← θ(1 - lr·wd) - lr · (m / bc₁) / (√(v / bc₂) + ε)` (the decay term for AdamW only),
/// with bias corrections `bc₁ = 1 - β₁ᵗ`, `bc₂ = 1 - β₂ᵗ` — PyTorch's `AdamW`/`Adam`.
#[derive(Debug)]
pub struct AdamStep<'a> {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to the root of the second moment.
    pub eps: f32,
    /// Weight decay.
    pub weight_decay: f32,
    /// Decoupled (AdamW) decay when true, else L2 added to the gradient (Adam).
    pub decoupled: bool,
    /// `1 - β₁ᵗ` for the step `t` being applied.
    pub bias_correction1: f32,
    /// `1 - β₂ᵗ`.
    pub bias_correction2: f32,
    /// Gradient scale (for clipping by the global norm); 1 for none.
    pub scale: f32,
    /// First moment.
    pub m: RefCell<&'a mut [f32]>,
    /// Second moment.
    pub v: RefCell<&'a mut [f32]>,
}

/// The per-element constants of one Adam step.
#[derive(Clone, Copy)]
struct AdamCoef {
    b1: f32,
    b2: f32,
    step: f32,
    inv_bc2: f32,
    decay: f32,
    l2: f32,
    scale: f32,
    eps: f32,
}

impl AdamStep<'_> {
    fn coef(&self) -> AdamCoef {
        AdamCoef {
            b1: self.beta1,
            b2: self.beta2,
            step: self.lr / self.bias_correction1,
            inv_bc2: 1.0 / self.bias_correction2,
            decay: if self.decoupled { 1.0 - self.lr * self.weight_decay } else { 1.0 },
            l2: if self.decoupled { 0.0 } else { self.weight_decay },
            scale: self.scale,
            eps: self.eps,
        }
    }
}

impl AdamCoef {
    fn apply(self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        let AdamCoef { b1, b2, step, inv_bc2, decay, l2, scale, eps } = self;
        pulp::Arch::new().dispatch(|| {
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                let g = g * scale + l2 * *p;
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *p = *p * decay - step * *m / ((*v * inv_bc2).sqrt() + eps);
            }
        });
    }
}

impl InplaceOp2 for AdamStep<'_> {
    fn name(&self) -> &'static str {
        "adam-step"
    }

    fn cpu_fwd(&self, ps: &mut CpuStorage, pl: &Layout, gs: &CpuStorage, gl: &Layout) -> Result<()> {
        let g = slice(gs, gl, self.name())?;
        let mut m = self.m.borrow_mut();
        let mut v = self.v.borrow_mut();
        let p = param(ps, pl, g.len(), self.name())?;
        if m.len() != g.len() || v.len() != g.len() {
            bail!("adam-step: moments have {} and {} values, the parameter {}", m.len(), v.len(), g.len());
        }
        let c = self.coef();
        if p.len() >= PARALLEL_ELEMS {
            let (m, v) = (par::slots(&mut m, CHUNK), par::slots(&mut v, CHUNK));
            par::chunks_mut(p, CHUNK, |i, p| {
                let g = &g[i * CHUNK..i * CHUNK + p.len()];
                c.apply(p, g, &mut par::lock(&m[i]), &mut par::lock(&v[i]));
            });
        } else {
            c.apply(p, g, &mut m, &mut v);
        }
        Ok(())
    }
}

/// One SGD-with-momentum update in place: `g = scale · grad + wd · θ`,
/// `buf ← first ? g : momentum · buf + g`, `θ ← θ - lr · buf` (PyTorch's `SGD`).
#[derive(Debug)]
pub struct SgdStep<'a> {
    /// Learning rate.
    pub lr: f32,
    /// Momentum.
    pub momentum: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
    /// Whether this is the first step (the buffer starts as the gradient).
    pub first: bool,
    /// Gradient scale; 1 for none.
    pub scale: f32,
    /// Momentum buffer.
    pub buf: RefCell<&'a mut [f32]>,
}

/// `(lr, momentum, weight decay, scale, first)` of one SGD step.
#[derive(Clone, Copy)]
struct SgdCoef(f32, f32, f32, f32, bool);

impl SgdCoef {
    fn apply(self, p: &mut [f32], g: &[f32], buf: &mut [f32]) {
        let SgdCoef(lr, mu, wd, scale, first) = self;
        pulp::Arch::new().dispatch(|| {
            for ((p, &g), b) in p.iter_mut().zip(g).zip(buf.iter_mut()) {
                let g = g * scale + wd * *p;
                *b = if first { g } else { mu * *b + g };
                *p -= lr * *b;
            }
        });
    }
}

impl InplaceOp2 for SgdStep<'_> {
    fn name(&self) -> &'static str {
        "sgd-step"
    }

    fn cpu_fwd(&self, ps: &mut CpuStorage, pl: &Layout, gs: &CpuStorage, gl: &Layout) -> Result<()> {
        let g = slice(gs, gl, self.name())?;
        let mut buf = self.buf.borrow_mut();
        let p = param(ps, pl, g.len(), self.name())?;
        if buf.len() != g.len() {
            bail!("sgd-step: the momentum buffer has {} values, the parameter {}", buf.len(), g.len());
        }
        let c = SgdCoef(self.lr, self.momentum, self.weight_decay, self.scale, self.first);
        if p.len() >= PARALLEL_ELEMS {
            let b = par::slots(&mut buf, CHUNK);
            par::chunks_mut(p, CHUNK, |i, p| c.apply(p, &g[i * CHUNK..i * CHUNK + p.len()], &mut par::lock(&b[i])));
        } else {
            c.apply(p, g, &mut buf);
        }
        Ok(())
    }
}

fn param<'a>(s: &'a mut CpuStorage, l: &Layout, n: usize, op: &str) -> Result<&'a mut [f32]> {
    let CpuStorage::F32(v) = s else { bail!("{op}: parameters must be f32") };
    let Some((start, end)) = l.contiguous_offsets() else { bail!("{op}: the parameter is not contiguous") };
    if end - start != n {
        bail!("{op}: the gradient has {n} values, the parameter {}", end - start);
    }
    Ok(&mut v[start..end])
}
