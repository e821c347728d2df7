//! The [`Autoencoder`] trait, the named loss [`Term`]s of its objective, the [`StepCtx`]
//! a step runs in, and the model summary.

use std::fmt;

use candle_core::Tensor;

use crate::config::Kernels;
use crate::error::Result;
use crate::loss::{recon_loss, ReconLoss};
use crate::noise::Noise;

/// One named, weighted part of a training objective (`recon`, `kl`, `sparsity`, ...).
/// The loss is `Σ weight · value`; a term of weight 0 is logged but not optimised.
#[derive(Debug, Clone)]
pub struct Term {
    /// Column name in `metrics.csv` (`train_<name>`, `val_<name>`).
    pub name: &'static str,
    /// The value, a scalar tensor (a mean over the batch).
    pub value: Tensor,
    /// Its weight in the loss.
    pub weight: f64,
}

impl Term {
    /// A term of weight 1.
    #[must_use]
    pub fn unit(name: &'static str, value: Tensor) -> Self {
        Self { name, value, weight: 1.0 }
    }
}

/// The loss `Σ weight · value` of `terms` (terms of weight 0 are left out of the graph).
pub fn total(terms: &[Term]) -> Result<Tensor> {
    let mut sum: Option<Tensor> = None;
    // Exact comparisons on purpose: weight 0 leaves a term out, weight 1 needs no multiply.
    #[allow(clippy::float_cmp)]
    for t in terms.iter().filter(|t| t.weight != 0.0) {
        let v = if t.weight == 1.0 { t.value.clone() } else { t.value.affine(t.weight, 0.0)? };
        sum = Some(match sum {
            Some(s) => (s + v)?,
            None => v,
        });
    }
    match sum {
        Some(s) => Ok(s),
        None => {
            Ok(terms.first().map_or_else(|| Tensor::new(0f32, &candle_core::Device::Cpu), |t| t.value.zeros_like())?)
        }
    }
}

/// What a step knows besides its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepCtx {
    /// Where train-time randomness stands: training step `i` (0-based, counted over the
    /// whole run) uses stream `i` of the model's seed; evaluation uses stream `i` for its
    /// batch `i` of a separate seed. The loop checkpoints it, so a resumed run draws the
    /// same noise as an uninterrupted one.
    pub rng_step: u64,
    /// The epoch (0-based), for KL warm-up and capacity schedules.
    pub epoch: usize,
    /// Training (input noise, sampling for the loss) or evaluation.
    pub train: bool,
    /// The reconstruction loss of kinds that have no likelihood of their own.
    pub loss: ReconLoss,
    /// Which ops compute the fused losses (the layers' own choice is in their config).
    pub kernels: Kernels,
}

impl StepCtx {
    /// Training step `rng_step` of `epoch`.
    #[must_use]
    pub fn train(rng_step: u64, epoch: usize, loss: ReconLoss) -> Self {
        Self { rng_step, epoch, train: true, loss, kernels: Kernels::Auto }
    }

    /// Evaluation batch `batch` (after `epoch` epochs of training).
    #[must_use]
    pub fn eval(batch: u64, epoch: usize, loss: ReconLoss) -> Self {
        Self { rng_step: batch, epoch, train: false, loss, kernels: Kernels::Auto }
    }

    /// The same step with its losses computed by `kernels`.
    #[must_use]
    pub fn with_kernels(self, kernels: Kernels) -> Self {
        Self { kernels, ..self }
    }
}

/// A diagonal Gaussian code distribution q(z|x) = N(mean, diag exp(logvar)).
#[derive(Debug, Clone)]
pub struct Posterior {
    /// `[b, k]`.
    pub mean: Tensor,
    /// `[b, k]`, log σ².
    pub logvar: Tensor,
}

/// An autoencoder `x -> z -> x̂`. Every kind takes and returns `[batch, ...input_shape]`,
/// so kinds are interchangeable (a denoising model wraps any of them).
pub trait Autoencoder: Send + Sync {
    /// Shape of one input sample, e.g. `[1, 28, 28]`.
    fn input_shape(&self) -> &[usize];

    /// Size of the code.
    fn latent_dim(&self) -> usize;

    /// The deterministic code of a batch, the one analysis uses (a VAE's posterior mean).
    ///
    /// # Shapes
    /// `xs: [b, ...input_shape]` → `[b, latent_dim]`.
    fn encode(&self, xs: &Tensor) -> Result<Tensor>;

    /// The reconstruction (in data space: a Bernoulli decoder's mean, not its logits)
    /// from a code.
    ///
    /// # Shapes
    /// `zs: [b, latent_dim]` → `[b, ...input_shape]`.
    fn decode(&self, zs: &Tensor) -> Result<Tensor>;

    /// The deterministic reconstruction `decode(encode(xs))`.
    ///
    /// # Shapes
    /// `xs: [b, ...input_shape]` → `[b, ...input_shape]`.
    fn reconstruct(&self, xs: &Tensor) -> Result<Tensor> {
        self.decode(&self.encode(xs)?)
    }

    /// The named terms of the objective for inputs `xs` and the targets they should be
    /// rebuilt as (the same tensor except under a denoising wrapper, which passes its
    /// corrupted inputs with the clean targets). The default is one `recon` term, the
    /// reconstruction loss `ctx.loss` of [`Autoencoder::reconstruct`].
    ///
    /// # Shapes
    /// `xs`, `target: [b, ...input_shape]`; every term's value is a scalar.
    fn objective(&self, xs: &Tensor, target: &Tensor, ctx: &StepCtx) -> Result<Vec<Term>> {
        Ok(vec![Term::unit("recon", recon_loss(&self.reconstruct(xs)?, target, ctx.loss, ctx.kernels)?)])
    }

    /// The code distribution q(z|x) of a stochastic code (its prior is N(0, I)); `None`
    /// for a deterministic one.
    fn posterior(&self, xs: &Tensor) -> Result<Option<Posterior>> {
        let _ = xs;
        Ok(None)
    }

    /// Per-sample log p(x | z) in nats, for a model with a likelihood (a VAE); `None`
    /// otherwise.
    ///
    /// # Shapes
    /// `zs: [b, latent_dim]`, `xs: [b, ...input_shape]` → `[b]`.
    fn log_likelihood(&self, zs: &Tensor, xs: &Tensor) -> Result<Option<Tensor>> {
        let _ = (zs, xs);
        Ok(None)
    }

    /// The corruption applied to inputs in training (a denoising model's), used to score
    /// it noisy → clean.
    fn input_noise(&self) -> Option<Noise> {
        None
    }

    /// Layers, output shapes and parameter counts.
    fn summary(&self) -> Summary;
}

/// One row of a [`Summary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// Parameter path, as in checkpoints (`encoder.0`).
    pub name: String,
    /// What it is (`linear + relu`).
    pub kind: String,
    /// Output shape of one sample.
    pub output: Vec<usize>,
    /// Trainable parameters.
    pub params: usize,
    /// Multiply-accumulates of one sample's forward pass (matrix products and
    /// convolutions; elementwise work is not counted).
    pub macs: usize,
}

/// A model summary: layers in order with output shapes and parameter counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Model name (`dense`, `conv`, `denoising(dense)`, `vae(conv)`).
    pub model: String,
    /// Input shape of one sample.
    pub input: Vec<usize>,
    /// Latent size.
    pub latent_dim: usize,
    /// Layers, input to output.
    pub layers: Vec<LayerInfo>,
}

impl Summary {
    /// Total trainable parameters.
    #[must_use]
    pub fn params(&self) -> usize {
        self.layers.iter().map(|l| l.params).sum()
    }

    /// Multiply-accumulates of one sample's forward pass.
    #[must_use]
    pub fn macs(&self) -> usize {
        self.layers.iter().map(|l| l.macs).sum()
    }

    /// Floating-point operations of one training step per sample: the forward pass (2 per
    /// multiply-accumulate) and the backward pass (the gradients of the weights and of the
    /// layer inputs, 2 each), so 6 × [`Summary::macs`]. Elementwise work is not counted.
    #[must_use]
    pub fn train_flops(&self) -> f64 {
        6.0 * self.macs() as f64
    }
}

fn shape(s: &[usize]) -> String {
    s.iter().map(ToString::to_string).collect::<Vec<_>>().join("×")
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} autoencoder: input {}, latent {}", self.model, shape(&self.input), self.latent_dim)?;
        writeln!(f, "  {:<14} {:<28} {:>12} {:>10}", "layer", "kind", "output", "params")?;
        for l in &self.layers {
            writeln!(f, "  {:<14} {:<28} {:>12} {:>10}", l.name, l.kind, shape(&l.output), l.params)?;
        }
        write!(
            f,
            "  total parameters: {}; {:.2} MFLOP per sample per training step ({:.2} forward)",
            self.params(),
            self.train_flops() / 1e6,
            2.0 * self.macs() as f64 / 1e6
        )
    }
}
