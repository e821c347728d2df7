//! Optimisers that own their state, so it can be checkpointed and restored exactly.
//! (candle-nn's `AdamW` keeps its moments private.) On the CPU each update is one fused
//! in-place pass per parameter (bottleneck-kernels' `AdamStep`/`SgdStep`) over moments kept
//! as host floats; on another device, or with `kernels = "candle"`, the moments are tensors
//! on the parameter's device and candle's ops compute the same update. Checkpoints hold
//! the moments as CPU tensors either way, so a run resumes on any device.

use std::cell::RefCell;

use bottleneck_kernels::{grad_sq_sum, AdamStep, SgdStep};
use bottleneck_models::Kernels;
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};

use crate::error::Result;
use crate::train_config::{OptimizerKind, TrainConfig};

/// One parameter's first and second moments (Adam; SGD keeps its momentum buffer in the
/// first and leaves the second at zero).
#[derive(Debug)]
enum Moments {
    /// Host floats that the fused CPU step updates in place.
    Host(Vec<f32>, Vec<f32>),
    /// Tensors on the parameter's device, replaced by candle's ops every step.
    Device(Tensor, Tensor),
}

impl Moments {
    /// Both moments as CPU tensors of `dims`.
    fn to_cpu(&self, dims: &[usize]) -> Result<[Tensor; 2]> {
        Ok(match self {
            Self::Host(m, v) => {
                [Tensor::from_slice(m, dims, &Device::Cpu)?, Tensor::from_slice(v, dims, &Device::Cpu)?]
            }
            Self::Device(m, v) => [m.to_device(&Device::Cpu)?, v.to_device(&Device::Cpu)?],
        })
    }
}

/// An optimiser over named parameters, with first/second moment buffers per parameter.
#[derive(Debug)]
pub struct Optimizer {
    kind: OptimizerKind,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// Parameters sorted by name (the checkpoint order).
    params: Vec<(String, Var)>,
    /// Which ops compute the update (and the gradient norm).
    kernels: Kernels,
    /// Moments per parameter, in the parameters' order.
    moments: Vec<Moments>,
    /// Updates applied so far.
    pub step: u64,
}

impl Optimizer {
    /// An optimiser for `params` (any order; kept sorted by name) with zeroed state, its
    /// updates computed by `kernels` (the fused step for f32 parameters on the CPU under
    /// `auto`, candle's ops otherwise).
    pub fn new(cfg: &TrainConfig, mut params: Vec<(String, Var)>, kernels: Kernels) -> Result<Self> {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let zeros = |(_, p): &(String, Var)| -> Result<Moments> {
            Ok(if kernels.fused(p.as_tensor()) {
                Moments::Host(vec![0f32; p.elem_count()], vec![0f32; p.elem_count()])
            } else {
                let z = p.as_tensor().zeros_like()?.detach();
                Moments::Device(z.clone(), z)
            })
        };
        let moments = params.iter().map(zeros).collect::<Result<Vec<_>>>()?;
        Ok(Self {
            kernels,
            kind: cfg.optimizer,
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps,
            weight_decay: cfg.weight_decay,
            params,
            moments,
            step: 0,
        })
    }

    /// The parameters, sorted by name.
    #[must_use]
    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    /// Global L2 norm of the gradients of the parameters.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut total = 0f64;
        for (_, p) in &self.params {
            if let Some(g) = grads.get(p.as_tensor()) {
                total += if self.kernels.fused(g) {
                    grad_sq_sum(g)?
                } else {
                    g.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?
                };
            }
        }
        Ok(total.sqrt())
    }

    /// Applies one update with learning rate `lr`; gradients are first scaled by `scale`
    /// (for clipping). Parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64, scale: f64) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let adam = Adam {
            lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            decoupled: self.kind == OptimizerKind::Adamw,
            bias_correction1: 1.0 - self.beta1.powi(t),
            bias_correction2: 1.0 - self.beta2.powi(t),
            scale,
        };
        let sgd = Sgd { lr, momentum: self.beta1, weight_decay: self.weight_decay, first: self.step == 1, scale };
        for (i, (_, p)) in self.params.iter().enumerate() {
            let Some(g) = grads.get(p.as_tensor()) else { continue };
            let g = g.detach().contiguous()?;
            match (self.kind, &mut self.moments[i]) {
                (OptimizerKind::Sgd, Moments::Host(buf, _)) => p.as_tensor().inplace_op2(&g, &sgd.fused(buf))?,
                (OptimizerKind::Sgd, Moments::Device(buf, _)) => *buf = sgd.apply(p, &g, buf)?,
                (_, Moments::Host(m, v)) => p.as_tensor().inplace_op2(&g, &adam.fused(m, v))?,
                (_, Moments::Device(m, v)) => (*m, *v) = adam.apply(p, &g, m, v)?,
            }
        }
        Ok(())
    }

    /// State tensors for a checkpoint: `optim.m.<name>` and `optim.v.<name>`.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for (i, (name, p)) in self.params.iter().enumerate() {
            let [m, v] = self.moments[i].to_cpu(p.dims())?;
            out.push((format!("optim.m.{name}"), m));
            out.push((format!("optim.v.{name}"), v));
        }
        Ok(out)
    }

    /// Restores state saved by [`Optimizer::state`]; every buffer must be present.
    pub fn load_state(&mut self, get: impl Fn(&str) -> Option<Tensor>, step: u64) -> std::result::Result<(), String> {
        for (i, (name, p)) in self.params.iter().enumerate() {
            let read = |which: &str| -> std::result::Result<Tensor, String> {
                let key = format!("optim.{which}.{name}");
                let t = get(&key).ok_or_else(|| format!("missing optimiser state `{key}`"))?;
                if t.dims() != p.dims() {
                    return Err(format!("`{key}` has shape {:?}, the parameter {:?}", t.dims(), p.dims()));
                }
                t.to_dtype(DType::F32).map_err(|e| format!("`{key}`: {e}"))
            };
            let (m, v) = (read("m")?, read("v")?);
            let host = |t: Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f32>());
            let device = |t: Tensor| t.to_device(p.device()).map(|t| t.detach());
            let loaded = match &self.moments[i] {
                Moments::Host(..) => host(m).and_then(|m| Ok(Moments::Host(m, host(v)?))),
                Moments::Device(..) => device(m).and_then(|m| Ok(Moments::Device(m, device(v)?))),
            };
            self.moments[i] = loaded.map_err(|e| format!("optimiser state of `{name}`: {e}"))?;
        }
        self.step = step;
        Ok(())
    }
}

/// The constants of one Adam step (PyTorch's `Adam`/`AdamW`, as bottleneck-kernels'
/// `AdamStep` documents them).
struct Adam {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
    bias_correction1: f64,
    bias_correction2: f64,
    scale: f64,
}

impl Adam {
    /// The fused in-place step over host moments.
    fn fused<'a>(&self, m: &'a mut [f32], v: &'a mut [f32]) -> AdamStep<'a> {
        AdamStep {
            lr: self.lr as f32,
            beta1: self.beta1 as f32,
            beta2: self.beta2 as f32,
            eps: self.eps as f32,
            weight_decay: self.weight_decay as f32,
            decoupled: self.decoupled,
            bias_correction1: self.bias_correction1 as f32,
            bias_correction2: self.bias_correction2 as f32,
            scale: self.scale as f32,
            m: RefCell::new(m),
            v: RefCell::new(v),
        }
    }

    /// The same step with candle's ops: sets `p` and returns the new moments.
    fn apply(&self, p: &Var, g: &Tensor, m: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let theta = p.as_tensor().detach();
        let mut g = g.affine(self.scale, 0.0)?;
        if !self.decoupled && self.weight_decay != 0.0 {
            g = (g + theta.affine(self.weight_decay, 0.0)?)?;
        }
        let m = (m.affine(self.beta1, 0.0)? + g.affine(1.0 - self.beta1, 0.0)?)?;
        let v = (v.affine(self.beta2, 0.0)? + g.sqr()?.affine(1.0 - self.beta2, 0.0)?)?;
        let denom = v.affine(1.0 / self.bias_correction2, 0.0)?.sqrt()?.affine(1.0, self.eps)?;
        let decay = if self.decoupled { 1.0 - self.lr * self.weight_decay } else { 1.0 };
        let update = (&m / denom)?.affine(self.lr / self.bias_correction1, 0.0)?;
        p.set(&(theta.affine(decay, 0.0)? - update)?)?;
        Ok((m, v))
    }
}

/// The constants of one SGD-with-momentum step (PyTorch's `SGD`).
struct Sgd {
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    first: bool,
    scale: f64,
}

impl Sgd {
    /// The fused in-place step over a host buffer.
    fn fused<'a>(&self, buf: &'a mut [f32]) -> SgdStep<'a> {
        SgdStep {
            lr: self.lr as f32,
            momentum: self.momentum as f32,
            weight_decay: self.weight_decay as f32,
            first: self.first,
            scale: self.scale as f32,
            buf: RefCell::new(buf),
        }
    }

    /// The same step with candle's ops: sets `p` and returns the new buffer.
    fn apply(&self, p: &Var, g: &Tensor, buf: &Tensor) -> Result<Tensor> {
        let theta = p.as_tensor().detach();
        let g = (g.affine(self.scale, 0.0)? + theta.affine(self.weight_decay, 0.0)?)?;
        let buf = if self.first { g } else { (buf.affine(self.momentum, 0.0)? + g)? };
        p.set(&(theta - buf.affine(self.lr, 0.0)?)?)?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Var};

    use super::*;

    fn quadratic_steps(kind: OptimizerKind, steps: usize, kernels: Kernels) -> (Optimizer, f32) {
        let cfg = TrainConfig { optimizer: kind, lr: 0.1, ..TrainConfig::default() };
        let w = Var::from_tensor(&Tensor::new(&[3.0f32, -2.0], &Device::Cpu).unwrap()).unwrap();
        let mut opt = Optimizer::new(&cfg, vec![("w".into(), w.clone())], kernels).unwrap();
        for _ in 0..steps {
            let loss = w.as_tensor().sqr().unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&grads, cfg.lr, 1.0).unwrap();
        }
        let norm =
            w.as_tensor().sqr().unwrap().sum_all().unwrap().to_dtype(DType::F32).unwrap().to_scalar::<f32>().unwrap();
        (opt, norm)
    }

    #[test]
    fn every_optimiser_minimises_a_quadratic() {
        for kind in [OptimizerKind::Adamw, OptimizerKind::Adam, OptimizerKind::Sgd] {
            for kernels in [Kernels::Auto, Kernels::Candle] {
                let (_, norm) = quadratic_steps(kind, 200, kernels);
                assert!(norm < 1e-2, "{kind:?} on {kernels:?}: |w|² = {norm}");
            }
        }
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// A parameter, a fixed quadratic-plus-linear loss with weight decay, and `steps`
    /// updates from `opt`'s current state (gradient scaled by 0.7, as clipping does).
    fn run(opt: &mut Optimizer, steps: usize) -> Vec<f32> {
        let target =
            Tensor::new(&[0.5f32, -1.5, 2.0, 0.25, -0.75, 1.0], &Device::Cpu).unwrap().reshape((2, 3)).unwrap();
        let w = opt.params()[0].1.clone();
        for _ in 0..steps {
            let loss = (w.as_tensor() - &target).unwrap().sqr().unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&grads, 0.05, 0.7).unwrap();
        }
        values(w.as_tensor())
    }

    #[test]
    fn candle_ops_take_the_fused_step_and_their_state_moves_between_them() {
        for kind in [OptimizerKind::Adamw, OptimizerKind::Adam, OptimizerKind::Sgd] {
            let cfg = TrainConfig { optimizer: kind, weight_decay: 0.01, ..TrainConfig::default() };
            let make = |kernels| {
                let w = Var::from_tensor(&Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap()).unwrap();
                Optimizer::new(&cfg, vec![("w".into(), w)], kernels).unwrap()
            };
            let close = |a: &[f32], b: &[f32], what: &str| {
                for (x, y) in a.iter().zip(b) {
                    assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{kind:?} {what}: {a:?} vs {b:?}");
                }
            };
            let (mut fused, mut plain) = (make(Kernels::Auto), make(Kernels::Candle));
            close(&run(&mut plain, 20), &run(&mut fused, 20), "weights after 20 steps");
            let (sf, sp) = (fused.state().unwrap(), plain.state().unwrap());
            for ((name, a), (other, b)) in sf.iter().zip(&sp) {
                assert_eq!(name, other);
                close(&values(b), &values(a), name);
            }
            // A checkpoint of either path resumes on the other: the state crosses over and
            // the next 10 steps agree with the path that kept going.
            let mut resumed = make(Kernels::Auto);
            resumed.params()[0].1.set(plain.params()[0].1.as_tensor()).unwrap();
            let state: std::collections::HashMap<String, Tensor> = sp.into_iter().collect();
            resumed.load_state(|k| state.get(k).cloned(), plain.step).unwrap();
            close(&run(&mut resumed, 10), &run(&mut plain, 10), "10 steps after a cross-path resume");
        }
    }

    #[test]
    fn state_does_not_keep_the_graph_alive() {
        // Moments built from tracked gradients would chain every step's activations.
        for kernels in [Kernels::Auto, Kernels::Candle] {
            let (opt, _) = quadratic_steps(OptimizerKind::Adamw, 3, kernels);
            for (name, t) in opt.state().unwrap() {
                assert!(!t.track_op(), "{name} tracks the graph ({kernels:?})");
            }
        }
    }
}
