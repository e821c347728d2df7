//! Optimisers that own their state, so it can be checkpointed and restored exactly.
//! (candle-nn's `AdamW` keeps its moments private.)

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

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
    m: Vec<Tensor>,
    /// Adam: second moments (unused by SGD).
    v: Vec<Tensor>,
    /// Updates applied so far.
    pub step: u64,
}

impl Optimizer {
    /// An optimiser for `params` (any order; kept sorted by name) with zeroed state.
    pub fn new(cfg: &TrainConfig, mut params: Vec<(String, Var)>) -> Result<Self> {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let zeros = |p: &Var| p.as_tensor().zeros_like();
        let m = params.iter().map(|(_, p)| zeros(p)).collect::<candle_core::Result<Vec<_>>>()?;
        let v = params.iter().map(|(_, p)| zeros(p)).collect::<candle_core::Result<Vec<_>>>()?;
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
                total += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
            }
        }
        Ok(total.sqrt())
    }

    /// Applies one update with learning rate `lr`; gradients are first scaled by `scale`
    /// (for clipping). Parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64, scale: f64) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        for (i, (_, p)) in self.params.iter().enumerate() {
            let Some(g) = grads.get(p.as_tensor()) else { continue };
            // Gradients carry the graph of the step that made them; detach so the moments
            // (kept across steps) do not keep every step's activations alive.
            let g = g.detach();
            let mut g = if (scale - 1.0).abs() > 0.0 { g.affine(scale, 0.0)? } else { g };
            let theta = &p.as_tensor().detach();
            match self.kind {
                OptimizerKind::Adamw | OptimizerKind::Adam => {
                    if self.kind == OptimizerKind::Adam && self.weight_decay > 0.0 {
                        g = (g + theta.affine(self.weight_decay, 0.0)?)?;
                    }
                    let m = ((&self.m[i] * b1)? + (&g * (1.0 - b1))?)?;
                    let v = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
                    let m_hat = (&m / (1.0 - b1.powi(t)))?;
                    let v_hat = (&v / (1.0 - b2.powi(t)))?;
                    let update = (m_hat / (v_hat.sqrt()? + self.eps)?)?;
                    let base = if self.kind == OptimizerKind::Adamw && self.weight_decay > 0.0 {
                        theta.affine(1.0 - lr * self.weight_decay, 0.0)?
                    } else {
                        theta.clone()
                    };
                    p.set(&(base - (update * lr)?)?)?;
                    self.m[i] = m;
                    self.v[i] = v;
                }
                OptimizerKind::Sgd => {
                    if self.weight_decay > 0.0 {
                        g = (g + theta.affine(self.weight_decay, 0.0)?)?;
                    }
                    let buf = if self.step == 1 { g } else { ((&self.m[i] * b1)? + g)? };
                    p.set(&(theta - (&buf * lr)?)?)?;
                    self.m[i] = buf;
                }
            }
        }
        Ok(())
    }

    /// State tensors for a checkpoint: `optim.m.<name>` and `optim.v.<name>`.
    #[must_use]
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.push((format!("optim.m.{name}"), self.m[i].clone()));
            out.push((format!("optim.v.{name}"), self.v[i].clone()));
        }
        out
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
                *buf = t;
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
        for (name, t) in opt.state() {
            assert!(!t.track_op(), "{name} tracks the graph");
        }
    }
}
