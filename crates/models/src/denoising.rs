//! The denoising autoencoder: any kind, trained to rebuild clean inputs from noisy ones.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::backbone::BackboneConfig;
use crate::conv::Conv;
use crate::dense::Dense;
use crate::error::Result;
use crate::model::{Autoencoder, Posterior, StepCtx, Summary, Term};
use crate::noise::Noise;

/// A denoising autoencoder over a plain dense or conv body.
#[derive(Debug, Clone, PartialEq)]
pub struct DenoisingConfig {
    /// What it wraps.
    pub backbone: BackboneConfig,
    /// The input corruption used in training.
    pub noise: Noise,
    /// Seed of the noise; training step `i` uses stream `i` of this seed.
    pub seed: u64,
}

/// Corrupts its input with `noise` in training only (like candle's `Dropout`); the
/// wrapped model's objective compares its output with the *clean* input. Parameters have
/// the wrapped model's own names, so a denoising checkpoint loads into the plain model.
pub struct Denoising {
    inner: Box<dyn Autoencoder>,
    noise: Noise,
    seed: u64,
}

impl std::fmt::Debug for Denoising {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Denoising")
            .field("inner", &self.inner.summary().model)
            .field("noise", &self.noise)
            .field("seed", &self.seed)
            .finish()
    }
}

impl Denoising {
    /// Builds a plain backbone from its config and wraps it.
    pub fn new(cfg: &DenoisingConfig, vb: VarBuilder) -> Result<Self> {
        let inner: Box<dyn Autoencoder> = match &cfg.backbone {
            BackboneConfig::Dense(c) => Box::new(Dense::new(c, vb)?),
            BackboneConfig::Conv(c) => Box::new(Conv::new(c, vb)?),
        };
        Self::wrap(inner, cfg.noise, cfg.seed)
    }

    /// Wraps any autoencoder.
    pub fn wrap(inner: Box<dyn Autoencoder>, noise: Noise, seed: u64) -> Result<Self> {
        noise.validate("model.noise")?;
        Ok(Self { inner, noise, seed })
    }

    /// The noisy version of `xs` that training step `step` sees.
    pub fn corrupt(&self, xs: &Tensor, step: u64) -> Result<Tensor> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(step);
        self.noise.apply(xs, &mut rng)
    }
}

impl Autoencoder for Denoising {
    fn input_shape(&self) -> &[usize] {
        self.inner.input_shape()
    }

    fn latent_dim(&self) -> usize {
        self.inner.latent_dim()
    }

    fn encode(&self, xs: &Tensor) -> Result<Tensor> {
        self.inner.encode(xs)
    }

    fn decode(&self, zs: &Tensor) -> Result<Tensor> {
        self.inner.decode(zs)
    }

    fn reconstruct(&self, xs: &Tensor) -> Result<Tensor> {
        self.inner.reconstruct(xs)
    }

    fn objective(&self, xs: &Tensor, target: &Tensor, ctx: &StepCtx) -> Result<Vec<Term>> {
        if ctx.train {
            self.inner.objective(&self.corrupt(xs, ctx.rng_step)?, target, ctx)
        } else {
            self.inner.objective(xs, target, ctx)
        }
    }

    fn posterior(&self, xs: &Tensor) -> Result<Option<Posterior>> {
        self.inner.posterior(xs)
    }

    fn log_likelihood(&self, zs: &Tensor, xs: &Tensor) -> Result<Option<Tensor>> {
        self.inner.log_likelihood(zs, xs)
    }

    fn input_noise(&self) -> Option<Noise> {
        Some(self.noise)
    }

    fn summary(&self) -> Summary {
        let inner = self.inner.summary();
        Summary { model: format!("denoising({})", inner.model), ..inner }
    }
}
