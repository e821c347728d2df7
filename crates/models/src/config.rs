//! The `[model]` section of an experiment config and the per-kind configs built from it.

use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};
use crate::noise::Noise;

/// Which autoencoder to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Fully connected encoder and mirrored decoder.
    #[default]
    Dense,
    /// Strided convolutions down, transposed convolutions up.
    Conv,
    /// A dense or conv backbone trained to undo input noise.
    Denoising,
}

/// The network a denoising autoencoder wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backbone {
    /// [`crate::Dense`].
    #[default]
    Dense,
    /// [`crate::Conv`].
    Conv,
}

/// Element-wise activation functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `max(0, x)`.
    Relu,
    /// `x` (a linear layer).
    Identity,
    /// Logistic sigmoid, output in (0, 1).
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Gaussian error linear unit (erf form).
    Gelu,
    /// `x * sigmoid(x)`.
    Silu,
    /// `max(0.01 x, x)`.
    LeakyRelu,
}

impl Activation {
    /// Applies the activation.
    pub fn apply(self, xs: &candle_core::Tensor) -> candle_core::Result<candle_core::Tensor> {
        match self {
            Self::Relu => xs.relu(),
            Self::Identity => Ok(xs.clone()),
            Self::Sigmoid => candle_nn::ops::sigmoid(xs),
            Self::Tanh => xs.tanh(),
            Self::Gelu => xs.gelu_erf(),
            Self::Silu => xs.silu(),
            Self::LeakyRelu => candle_nn::ops::leaky_relu(xs, 0.01),
        }
    }

    /// Lower-case name, as in configs.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Relu => "relu",
            Self::Identity => "identity",
            Self::Sigmoid => "sigmoid",
            Self::Tanh => "tanh",
            Self::Gelu => "gelu",
            Self::Silu => "silu",
            Self::LeakyRelu => "leaky_relu",
        }
    }
}

/// `[model]`: every key of every kind; keys a kind does not use are ignored by it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// `dense`, `conv` or `denoising`.
    pub kind: ModelKind,
    /// Size of the code z (the bottleneck).
    pub latent_dim: usize,
    /// Dense: encoder layer widths, input side first; the decoder mirrors them.
    pub hidden: Vec<usize>,
    /// Conv: encoder channels per stride-2 convolution; the decoder mirrors them.
    pub channels: Vec<usize>,
    /// Conv: square kernel size (odd; padding is `kernel_size / 2`).
    pub kernel_size: usize,
    /// Activation between layers.
    pub activation: Activation,
    /// Activation of the reconstruction: `sigmoid` for [0, 1] data, `identity` otherwise.
    pub output_activation: Activation,
    /// Denoising: the autoencoder it wraps.
    pub backbone: Backbone,
    /// Denoising: the corruption applied to inputs in training.
    pub noise: Noise,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            kind: ModelKind::Dense,
            latent_dim: 32,
            hidden: vec![512, 256],
            channels: vec![32, 64],
            kernel_size: 3,
            activation: Activation::Relu,
            output_activation: Activation::Sigmoid,
            backbone: Backbone::Dense,
            noise: Noise::default(),
        }
    }
}

impl ModelConfig {
    /// Checks ranges serde cannot; errors name the key and what is allowed.
    pub fn validate(&self) -> Result<()> {
        if self.latent_dim == 0 {
            return Err(invalid("model.latent_dim", 0, "must be at least 1"));
        }
        if let Some(i) = self.hidden.iter().position(|&h| h == 0) {
            return Err(invalid(&format!("model.hidden[{i}]"), 0, "layer widths must be at least 1"));
        }
        let uses_conv =
            self.kind == ModelKind::Conv || (self.kind == ModelKind::Denoising && self.backbone == Backbone::Conv);
        if uses_conv {
            if self.channels.is_empty() {
                return Err(invalid("model.channels", "[]", "the conv autoencoder needs at least one layer"));
            }
            if let Some(i) = self.channels.iter().position(|&c| c == 0) {
                return Err(invalid(&format!("model.channels[{i}]"), 0, "channel counts must be at least 1"));
            }
            if self.kernel_size % 2 == 0 || self.kernel_size > 15 {
                return Err(invalid("model.kernel_size", self.kernel_size, "must be odd, from 1 to 15"));
            }
        }
        if self.kind == ModelKind::Denoising {
            self.noise.validate("model.noise")?;
        }
        Ok(())
    }

    /// The dense config for inputs of `input_shape` (one sample).
    #[must_use]
    pub fn dense(&self, input_shape: &[usize]) -> DenseConfig {
        DenseConfig {
            input_shape: input_shape.to_vec(),
            hidden: self.hidden.clone(),
            latent_dim: self.latent_dim,
            activation: self.activation,
            output_activation: self.output_activation,
        }
    }

    /// The conv config for images of `input_shape` (`[c, h, w]`).
    #[must_use]
    pub fn conv(&self, input_shape: &[usize]) -> ConvConfig {
        ConvConfig {
            input_shape: input_shape.to_vec(),
            channels: self.channels.clone(),
            kernel_size: self.kernel_size,
            latent_dim: self.latent_dim,
            activation: self.activation,
            output_activation: self.output_activation,
        }
    }
}

/// A dense autoencoder: `input -> hidden... -> latent -> reversed hidden... -> input`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseConfig {
    /// Shape of one input sample (flattened inside the model).
    pub input_shape: Vec<usize>,
    /// Encoder widths, input side first.
    pub hidden: Vec<usize>,
    /// Code size.
    pub latent_dim: usize,
    /// Activation between layers (none on the code itself).
    pub activation: Activation,
    /// Activation of the reconstruction.
    pub output_activation: Activation,
}

/// A convolutional autoencoder over `[c, h, w]` images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvConfig {
    /// `[channels, height, width]` of one image.
    pub input_shape: Vec<usize>,
    /// Output channels of each stride-2 convolution.
    pub channels: Vec<usize>,
    /// Square kernel size (odd).
    pub kernel_size: usize,
    /// Code size.
    pub latent_dim: usize,
    /// Activation between layers.
    pub activation: Activation,
    /// Activation of the reconstruction.
    pub output_activation: Activation,
}
