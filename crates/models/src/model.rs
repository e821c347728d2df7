//! The [`Autoencoder`] trait and the model summary.

use std::fmt;

use candle_core::Tensor;

use crate::error::Result;
use crate::loss::{recon_loss, ReconLoss};
use crate::noise::Noise;

/// An autoencoder `x -> z -> x̂`. Every kind takes and returns `[batch, ...input_shape]`,
/// so kinds are interchangeable (a denoising model wraps any of them).
pub trait Autoencoder: Send + Sync {
    /// Shape of one input sample, e.g. `[1, 28, 28]`.
    fn input_shape(&self) -> &[usize];

    /// Size of the code.
    fn latent_dim(&self) -> usize;

    /// The code of a batch.
    ///
    /// # Shapes
    /// `xs: [b, ...input_shape]` → `[b, latent_dim]`.
    fn encode(&self, xs: &Tensor) -> Result<Tensor>;

    /// The reconstruction from a code.
    ///
    /// # Shapes
    /// `zs: [b, latent_dim]` → `[b, ...input_shape]`.
    fn decode(&self, zs: &Tensor) -> Result<Tensor>;

    /// Reconstruction, with train-only behaviour (input noise) when `train` is true.
    ///
    /// # Shapes
    /// `xs: [b, ...input_shape]` → `[b, ...input_shape]`.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let _ = train;
        self.decode(&self.encode(xs)?)
    }

    /// The scalar training loss: reconstruction of `xs` (through `forward_t`) against the
    /// clean `xs`.
    fn loss(&self, xs: &Tensor, kind: ReconLoss, train: bool) -> Result<Tensor> {
        recon_loss(&self.forward_t(xs, train)?, xs, kind)
    }

    /// The input noise of a denoising model (for noisy→clean evaluation).
    fn noise(&self) -> Option<Noise> {
        None
    }

    /// How many noisy batches the model has drawn (its RNG position, for checkpoints).
    fn noise_step(&self) -> u64 {
        0
    }

    /// Restores the RNG position saved by [`Autoencoder::noise_step`].
    fn set_noise_step(&self, step: u64) {
        let _ = step;
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
}

/// A model summary: layers in order with output shapes and parameter counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Model name (`dense`, `conv`, `denoising(dense)`).
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
        write!(f, "  total parameters: {}", self.params())
    }
}
