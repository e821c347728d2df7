//! The `[train]` section.

use bottleneck_models::ReconLoss;
use serde::{Deserialize, Serialize};

/// Optimisers with checkpointable state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam with decoupled weight decay (Loshchilov & Hutter).
    #[default]
    Adamw,
    /// Adam with L2 weight decay added to the gradient.
    Adam,
    /// SGD with (heavy-ball) momentum and L2 weight decay.
    Sgd,
}

/// Learning-rate schedules (after the linear warm-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// `lr` throughout.
    #[default]
    Constant,
    /// Cosine decay from `lr` to `min_lr` over the remaining epochs.
    Cosine,
    /// Multiply by `gamma` every `step_epochs` epochs.
    Step,
}

/// The largest `train.threads` accepted.
pub const MAX_THREADS: usize = 1024;

/// `[train]`: optimisation and the loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Passes over the training split.
    pub epochs: usize,
    /// Samples per mini-batch.
    pub batch_size: usize,
    /// `adamw`, `adam` or `sgd`.
    pub optimizer: OptimizerKind,
    /// Peak learning rate.
    pub lr: f64,
    /// Weight decay (decoupled for AdamW, L2 for Adam and SGD).
    pub weight_decay: f64,
    /// Adam β₁ / SGD momentum.
    pub beta1: f64,
    /// Adam β₂.
    pub beta2: f64,
    /// Adam ε.
    pub eps: f64,
    /// `constant`, `cosine` or `step`.
    pub schedule: Schedule,
    /// Epochs of linear warm-up from `lr / (warmup_epochs + 1)` (0 = none).
    pub warmup_epochs: usize,
    /// Cosine: the final learning rate.
    pub min_lr: f64,
    /// Step: epochs between decays.
    pub step_epochs: usize,
    /// Step: the decay factor.
    pub gamma: f64,
    /// `mse` or `bce`.
    pub loss: ReconLoss,
    /// Stop after this many epochs without a better validation loss (0 = off).
    pub early_stopping_patience: usize,
    /// Clip the global gradient norm to this value (0 = off).
    pub grad_clip: f64,
    /// Stop each epoch after this many batches (0 = all); the debug preset sets a few.
    pub max_batches: usize,
    /// Worker threads for tensor ops (0 = all cores).
    pub threads: usize,
    /// Batch size for validation, test and latents.
    pub eval_batch_size: usize,
    /// Importance samples K of the test NLL estimate of a stochastic code (Burda et al.
    /// 2016); 0 = skip it.
    pub nll_samples: usize,
    /// TensorBoard event files in the run's `tb/` (loss, terms, learning rate, test
    /// metrics, the report's figures and the embedding projector).
    pub tensorboard: bool,
    /// A run directory whose weights (best checkpoint, else last) start this run instead
    /// of a fresh initialisation; every weight must match by name and shape. Empty: off.
    pub init_from: String,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch_size: 256,
            optimizer: OptimizerKind::Adamw,
            lr: 1e-3,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            schedule: Schedule::Constant,
            warmup_epochs: 0,
            min_lr: 0.0,
            step_epochs: 10,
            gamma: 0.1,
            loss: ReconLoss::Mse,
            early_stopping_patience: 0,
            grad_clip: 0.0,
            max_batches: 0,
            threads: 0,
            eval_batch_size: 1000,
            nll_samples: 100,
            tensorboard: true,
            init_from: String::new(),
        }
    }
}

impl TrainConfig {
    /// Range checks: `(key, value, allowed)` of the first bad value.
    #[must_use]
    pub fn check(&self) -> Option<(&'static str, String, &'static str)> {
        let pos = |v: f64| v > 0.0 && v.is_finite();
        let nonneg = |v: f64| v >= 0.0 && v.is_finite();
        let unit = |v: f64| (0.0..1.0).contains(&v);
        let checks: [(&'static str, String, bool, &'static str); 13] = [
            ("train.epochs", self.epochs.to_string(), self.epochs >= 1, "must be at least 1"),
            ("train.batch_size", self.batch_size.to_string(), self.batch_size >= 1, "must be at least 1"),
            ("train.lr", self.lr.to_string(), pos(self.lr), "must be a finite number > 0"),
            ("train.weight_decay", self.weight_decay.to_string(), nonneg(self.weight_decay), "must be >= 0"),
            ("train.beta1", self.beta1.to_string(), unit(self.beta1), "must be in [0, 1)"),
            ("train.beta2", self.beta2.to_string(), unit(self.beta2), "must be in [0, 1)"),
            ("train.eps", self.eps.to_string(), pos(self.eps), "must be > 0"),
            (
                "train.min_lr",
                self.min_lr.to_string(),
                nonneg(self.min_lr) && self.min_lr <= self.lr,
                "must be in [0, train.lr]",
            ),
            ("train.step_epochs", self.step_epochs.to_string(), self.step_epochs >= 1, "must be at least 1"),
            ("train.gamma", self.gamma.to_string(), pos(self.gamma), "must be > 0"),
            ("train.grad_clip", self.grad_clip.to_string(), nonneg(self.grad_clip), "must be >= 0 (0 = off)"),
            // Far more threads than cores only slows a run; a huge count cannot even be
            // spawned and used to abort the process.
            (
                "train.threads",
                self.threads.to_string(),
                self.threads <= MAX_THREADS,
                "must be 0 (all cores) or a thread count of at most 1024",
            ),
            (
                "train.eval_batch_size",
                self.eval_batch_size.to_string(),
                self.eval_batch_size >= 1,
                "must be at least 1",
            ),
        ];
        checks.into_iter().find(|c| !c.2).map(|(k, v, _, a)| (k, v, a))
    }

    /// The learning rate for `epoch` (0-based): linear warm-up, then the schedule.
    #[must_use]
    pub fn lr_at(&self, epoch: usize) -> f64 {
        if epoch < self.warmup_epochs {
            return self.lr * (epoch + 1) as f64 / (self.warmup_epochs + 1) as f64;
        }
        let e = epoch - self.warmup_epochs;
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Step => self.lr * self.gamma.powi(i32::try_from(e / self.step_epochs).unwrap_or(i32::MAX)),
            Schedule::Cosine => {
                let span = self.epochs.saturating_sub(self.warmup_epochs).max(1) as f64;
                let t = (e as f64 / span).min(1.0);
                self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        let c = TrainConfig { lr: 1.0, epochs: 10, warmup_epochs: 1, ..TrainConfig::default() };
        assert!((c.lr_at(0) - 0.5).abs() < 1e-12);
        assert!((c.lr_at(5) - 1.0).abs() < 1e-12);
        let cos = TrainConfig { schedule: Schedule::Cosine, ..c.clone() };
        assert!((cos.lr_at(1) - 1.0).abs() < 1e-12);
        assert!(cos.lr_at(9) < 0.05 && cos.lr_at(9) > 0.0);
        let step = TrainConfig { schedule: Schedule::Step, step_epochs: 3, gamma: 0.1, warmup_epochs: 0, ..c };
        assert!((step.lr_at(2) - 1.0).abs() < 1e-12 && (step.lr_at(3) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn ranges() {
        assert_eq!(TrainConfig { lr: -1.0, ..TrainConfig::default() }.check().unwrap().0, "train.lr");
        assert_eq!(TrainConfig { batch_size: 0, ..TrainConfig::default() }.check().unwrap().0, "train.batch_size");
        assert!(TrainConfig::default().check().is_none());
    }
}
