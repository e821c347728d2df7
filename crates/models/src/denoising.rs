//! The denoising autoencoder: any backbone, trained to rebuild clean inputs from noisy ones.

use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::Tensor;
use candle_nn::VarBuilder;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::{ConvConfig, DenseConfig};
use crate::conv::Conv;
use crate::dense::Dense;
use crate::error::Result;
use crate::model::{Autoencoder, Summary};
use crate::noise::Noise;

/// The network a denoising autoencoder wraps, with its own config.
#[derive(Debug, Clone, PartialEq)]
pub enum BackboneConfig {
    /// A dense autoencoder.
    Dense(DenseConfig),
    /// A convolutional autoencoder.
    Conv(ConvConfig),
}

/// A denoising autoencoder.
#[derive(Debug, Clone, PartialEq)]
pub struct DenoisingConfig {
    /// What it wraps.
    pub backbone: BackboneConfig,
    /// The input corruption used in training.
    pub noise: Noise,
    /// Seed of the noise; batch `i` of training uses stream `i` of this seed.
    pub seed: u64,
}

/// Corrupts its input with `noise` in training mode only (like candle's `Dropout`); the
/// loss compares the reconstruction with the *clean* input. Parameters have the
/// backbone's own names, so a denoising checkpoint loads into the plain backbone.
pub struct Denoising {
    backbone: Box<dyn Autoencoder>,
    noise: Noise,
    seed: u64,
    step: AtomicU64,
}

impl std::fmt::Debug for Denoising {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Denoising")
            .field("backbone", &self.backbone.summary().model)
            .field("noise", &self.noise)
            .field("seed", &self.seed)
            .field("step", &self.step.load(Ordering::Relaxed))
            .finish()
    }
}

impl Denoising {
    /// Builds the backbone from its config and wraps it.
    pub fn new(cfg: &DenoisingConfig, vb: VarBuilder) -> Result<Self> {
        cfg.noise.validate("model.noise")?;
        let backbone: Box<dyn Autoencoder> = match &cfg.backbone {
            BackboneConfig::Dense(c) => Box::new(Dense::new(c, vb)?),
            BackboneConfig::Conv(c) => Box::new(Conv::new(c, vb)?),
        };
        Ok(Self { backbone, noise: cfg.noise, seed: cfg.seed, step: AtomicU64::new(0) })
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
        self.backbone.input_shape()
    }

    fn latent_dim(&self) -> usize {
        self.backbone.latent_dim()
    }

    fn encode(&self, xs: &Tensor) -> Result<Tensor> {
        self.backbone.encode(xs)
    }

    fn decode(&self, zs: &Tensor) -> Result<Tensor> {
        self.backbone.decode(zs)
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            let step = self.step.fetch_add(1, Ordering::Relaxed);
            self.backbone.forward_t(&self.corrupt(xs, step)?, true)
        } else {
            self.backbone.forward_t(xs, false)
        }
    }

    fn noise(&self) -> Option<Noise> {
        Some(self.noise)
    }

    fn noise_step(&self) -> u64 {
        self.step.load(Ordering::Relaxed)
    }

    fn set_noise_step(&self, step: u64) {
        self.step.store(step, Ordering::Relaxed);
    }

    fn summary(&self) -> Summary {
        let inner = self.backbone.summary();
        Summary { model: format!("denoising({})", inner.model), ..inner }
    }
}
