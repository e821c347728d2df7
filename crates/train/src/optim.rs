//! Optimisers that own their state, so it can be checkpointed and restored exactly.
//! (candle-nn's `AdamW` keeps its moments private.) Each update is one fused in-place
//! pass per parameter (bottleneck-kernels' `AdamStep`/`SgdStep`).

use std::cell::RefCell;

use bottleneck_kernels::{grad_sq_sum, AdamStep, SgdStep};
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};

use crate::error::Result;
use crate::train_config::{OptimizerKind, TrainConfig};

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
    /// Adam: first moments; SGD: momentum buffers.
    m: Vec<Vec<f32>>,
    /// Adam: second moments (unused by SGD).
    v: Vec<Vec<f32>>,
    /// Updates applied so far.
    pub step: u64,
}

impl Optimizer {
    /// An optimiser for `params` (any order; kept sorted by name) with zeroed state.
    pub fn new(cfg: &TrainConfig, mut params: Vec<(String, Var)>) -> Result<Self> {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let m: Vec<Vec<f32>> = params.iter().map(|(_, p)| vec![0f32; p.elem_count()]).collect();
        let v = m.clone();
        Ok(Self {
            kind: cfg.optimizer,
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps,
            weight_decay: cfg.weight_decay,
            params,
            m,
            v,
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
                total += grad_sq_sum(g)?;
            }
        }
        Ok(total.sqrt())
    }

    /// Applies one update with learning rate `lr`; gradients are first scaled by `scale`
    /// (for clipping). Parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64, scale: f64) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        for (i, (_, p)) in self.params.iter().enumerate() {
            let Some(g) = grads.get(p.as_tensor()) else { continue };
            let g = g.detach().contiguous()?;
            match self.kind {
                OptimizerKind::Adamw | OptimizerKind::Adam => {
                    let step = AdamStep {
                        lr: lr as f32,
                        beta1: self.beta1 as f32,
                        beta2: self.beta2 as f32,
                        eps: self.eps as f32,
                        weight_decay: self.weight_decay as f32,
                        decoupled: self.kind == OptimizerKind::Adamw,
                        bias_correction1: (1.0 - self.beta1.powi(t)) as f32,
                        bias_correction2: (1.0 - self.beta2.powi(t)) as f32,
                        scale: scale as f32,
                        m: RefCell::new(&mut self.m[i]),
                        v: RefCell::new(&mut self.v[i]),
                    };
                    p.as_tensor().inplace_op2(&g, &step)?;
                }
                OptimizerKind::Sgd => {
                    let step = SgdStep {
                        lr: lr as f32,
                        momentum: self.beta1 as f32,
                        weight_decay: self.weight_decay as f32,
                        first: self.step == 1,
                        scale: scale as f32,
                        buf: RefCell::new(&mut self.m[i]),
                    };
                    p.as_tensor().inplace_op2(&g, &step)?;
                }
            }
        }
        Ok(())
    }

    /// State tensors for a checkpoint: `optim.m.<name>` and `optim.v.<name>`.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for (i, (name, p)) in self.params.iter().enumerate() {
            for (buf, which) in [(&self.m[i], "m"), (&self.v[i], "v")] {
                out.push((format!("optim.{which}.{name}"), Tensor::from_slice(buf, p.dims(), &Device::Cpu)?));
            }
        }
        Ok(out)
    }

    /// Restores state saved by [`Optimizer::state`]; every buffer must be present.
    pub fn load_state(&mut self, get: impl Fn(&str) -> Option<Tensor>, step: u64) -> std::result::Result<(), String> {
        for (i, (name, p)) in self.params.iter().enumerate() {
            for (buf, which) in [(&mut self.m[i], "m"), (&mut self.v[i], "v")] {
                let key = format!("optim.{which}.{name}");
                let t = get(&key).ok_or_else(|| format!("missing optimiser state `{key}`"))?;
                if t.dims() != p.dims() {
                    return Err(format!("`{key}` has shape {:?}, the parameter {:?}", t.dims(), p.dims()));
                }
                let values =
                    t.flatten_all().and_then(|t| t.to_dtype(candle_core::DType::F32)).and_then(|t| t.to_vec1());
                *buf = values.map_err(|e| format!("`{key}`: {e}"))?;
            }
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Var};

    use super::*;

    fn quadratic_steps(kind: OptimizerKind, steps: usize) -> (Optimizer, f32) {
        let cfg = TrainConfig { optimizer: kind, lr: 0.1, ..TrainConfig::default() };
        let w = Var::from_tensor(&Tensor::new(&[3.0f32, -2.0], &Device::Cpu).unwrap()).unwrap();
        let mut opt = Optimizer::new(&cfg, vec![("w".into(), w.clone())]).unwrap();
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
            let (_, norm) = quadratic_steps(kind, 200);
            assert!(norm < 1e-2, "{kind:?}: |w|² = {norm}");
        }
    }

    #[test]
    fn state_does_not_keep_the_graph_alive() {
        // Moments built from tracked gradients would chain every step's activations.
        let (opt, _) = quadratic_steps(OptimizerKind::Adamw, 3);
        for (name, t) in opt.state().unwrap() {
            assert!(!t.track_op(), "{name} tracks the graph");
        }
    }
}
