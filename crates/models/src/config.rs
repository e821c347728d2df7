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
    /// Any other kind (`wraps`) trained to undo input noise.
    Denoising,
    /// Variational autoencoder (β-VAE, capacity control) over a dense or conv backbone.
    Vae,
    /// An autoencoder with a sparsity penalty on its code.
    Sparse,
    /// An autoencoder with a penalty on its encoder's Jacobian (Rifai et al. 2011).
    Contractive,
}

impl ModelKind {
    /// Lower-case name, as in configs.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Dense => "dense",
            Self::Conv => "conv",
            Self::Denoising => "denoising",
            Self::Vae => "vae",
            Self::Sparse => "sparse",
            Self::Contractive => "contractive",
        }
    }
}

/// The kind a denoising autoencoder wraps (on `backbone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Wraps {
    /// A plain autoencoder: [`crate::Dense`] or [`crate::Conv`] by `backbone`.
    #[default]
    Autoencoder,
    /// [`crate::Vae`].
    Vae,
    /// [`crate::Sparse`].
    Sparse,
    /// [`crate::Contractive`].
    Contractive,
}

/// The decoder's distribution p(x|z) of a VAE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Likelihood {
    /// Independent Bernoulli pixels: the decoder emits logits; the loss is the binary
    /// cross-entropy with logits summed over an image (targets may be grey values in [0, 1]).
    #[default]
    Bernoulli,
    /// Independent Gaussian features with mean the decoder's output and one standard
    /// deviation (`gaussian_std`, or learned): squared error summed per image, with its
    /// normalising constants, in nats.
    Gaussian,
}

/// The sparsity penalty of a sparse autoencoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sparsity {
    /// `mean |z|` over the batch and the units.
    #[default]
    L1,
    /// `Σ_j KL(ρ ‖ ρ̂_j)` between the target activation ρ and each unit's mean activation
    /// `ρ̂_j` over the batch, for a sigmoid code (Ng's sparse autoencoder notes); the code
    /// of this penalty is always `sigmoid` of the encoder's output.
    Kl,
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
    /// `dense`, `conv`, `denoising`, `vae`, `sparse` or `contractive`.
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
    /// (A Bernoulli VAE's decoder emits logits; its reconstruction is their sigmoid.)
    pub output_activation: Activation,
    /// Activation on the code of a plain, sparse or contractive autoencoder (default
    /// `identity`; Rifai et al.'s contractive autoencoder uses `sigmoid`).
    pub code_activation: Activation,
    /// Denoising, VAE, sparse, contractive: the body, `dense` or `conv`.
    pub backbone: Backbone,
    /// Denoising: the kind it wraps, `autoencoder` (plain), `vae`, `sparse` or `contractive`.
    pub wraps: Wraps,
    /// Denoising: the corruption applied to inputs in training.
    pub noise: Noise,
    /// VAE: `bernoulli` or `gaussian`.
    pub likelihood: Likelihood,
    /// VAE: weight of the KL term (β-VAE, Higgins et al. 2017), >= 0.
    pub beta: f64,
    /// VAE: epochs over which the KL weight rises linearly: epoch e (0-based) uses
    /// `β·(e + 1)/(kl_warmup_epochs + 1)` until it reaches β (0 = none).
    pub kl_warmup_epochs: usize,
    /// VAE capacity control (Burgess et al. 2018): when > 0 the loss is
    /// recon + γ·|KL − C| with C rising linearly from 0 to `capacity_max` nats over
    /// `capacity_epochs` (β is then not used).
    pub capacity_max: f64,
    /// VAE capacity control: epochs for C to reach `capacity_max` (0 = at once).
    pub capacity_epochs: usize,
    /// VAE capacity control: γ, the weight of |KL − C|.
    pub gamma: f64,
    /// VAE with a Gaussian likelihood: the standard deviation of p(x|z) (fixed, or the
    /// initial value when learned), > 0.
    pub gaussian_std: f64,
    /// VAE with a Gaussian likelihood: learn the standard deviation (one scalar,
    /// `decoder.log_std`).
    pub learn_std: bool,
    /// Sparse: `l1` or `kl`.
    pub sparsity: Sparsity,
    /// Sparse: weight λ of the penalty, >= 0.
    pub sparsity_weight: f64,
    /// Sparse with `kl`: the target mean activation ρ, in (0, 1).
    pub sparsity_target: f64,
    /// Contractive: weight λ of `‖J_f(x)‖²_F`, >= 0.
    pub contractive_weight: f64,
    /// Contractive, deeper encoders: standard deviation σ of the input perturbations of
    /// the finite-difference estimate ‖f(x + ε) − f(x)‖²/σ² of `‖J_f(x)‖²_F`.
    pub contractive_eps: f64,
    /// Contractive, deeper encoders: perturbations per sample averaged in the estimate.
    pub contractive_samples: usize,
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
            code_activation: Activation::Identity,
            backbone: Backbone::Dense,
            wraps: Wraps::Autoencoder,
            noise: Noise::default(),
            likelihood: Likelihood::Bernoulli,
            beta: 1.0,
            kl_warmup_epochs: 0,
            capacity_max: 0.0,
            capacity_epochs: 0,
            gamma: 1000.0,
            gaussian_std: 0.1,
            learn_std: false,
            sparsity: Sparsity::L1,
            sparsity_weight: 1e-3,
            sparsity_target: 0.05,
            contractive_weight: 1e-4,
            contractive_eps: 0.01,
            contractive_samples: 1,
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
        if self.body() == Backbone::Conv {
            if self.channels.is_empty() {
                return Err(invalid("model.channels", "[]", "the conv autoencoder needs at least one layer"));
            }
            if let Some(i) = self.channels.iter().position(|&c| c == 0) {
                return Err(invalid(&format!("model.channels[{i}]"), 0, "channel counts must be at least 1"));
            }
            if self.kernel_size.is_multiple_of(2) || self.kernel_size > 15 {
                return Err(invalid("model.kernel_size", self.kernel_size, "must be odd, from 1 to 15"));
            }
        }
        if self.kind == ModelKind::Denoising {
            self.noise.validate("model.noise")?;
        }
        let finite = |v: f64| v.is_finite();
        let checks: [(&str, f64, bool, &str); 8] = [
            ("model.beta", self.beta, finite(self.beta) && self.beta >= 0.0, "must be a finite number >= 0"),
            (
                "model.capacity_max",
                self.capacity_max,
                finite(self.capacity_max) && self.capacity_max >= 0.0,
                "must be a finite number of nats >= 0 (0 = no capacity control)",
            ),
            ("model.gamma", self.gamma, finite(self.gamma) && self.gamma >= 0.0, "must be a finite number >= 0"),
            (
                "model.gaussian_std",
                self.gaussian_std,
                finite(self.gaussian_std) && self.gaussian_std > 0.0,
                "must be a finite number > 0",
            ),
            (
                "model.sparsity_weight",
                self.sparsity_weight,
                finite(self.sparsity_weight) && self.sparsity_weight >= 0.0,
                "must be a finite number >= 0",
            ),
            (
                "model.sparsity_target",
                self.sparsity_target,
                self.sparsity_target > 0.0 && self.sparsity_target < 1.0,
                "must be a target activation in (0, 1), exclusive",
            ),
            (
                "model.contractive_weight",
                self.contractive_weight,
                finite(self.contractive_weight) && self.contractive_weight >= 0.0,
                "must be a finite number >= 0",
            ),
            (
                "model.contractive_eps",
                self.contractive_eps,
                finite(self.contractive_eps) && self.contractive_eps > 0.0,
                "must be a finite number > 0",
            ),
        ];
        if let Some((key, v, _, allowed)) = checks.into_iter().find(|c| !c.2) {
            return Err(invalid(key, v, allowed));
        }
        if self.contractive_samples == 0 {
            return Err(invalid("model.contractive_samples", 0, "must be at least 1"));
        }
        Ok(())
    }

    /// The kind under a denoising wrapper (else the kind itself).
    #[must_use]
    pub fn inner_kind(&self) -> ModelKind {
        match (self.kind, self.wraps) {
            (ModelKind::Denoising, Wraps::Autoencoder) => match self.backbone {
                Backbone::Dense => ModelKind::Dense,
                Backbone::Conv => ModelKind::Conv,
            },
            (ModelKind::Denoising, Wraps::Vae) => ModelKind::Vae,
            (ModelKind::Denoising, Wraps::Sparse) => ModelKind::Sparse,
            (ModelKind::Denoising, Wraps::Contractive) => ModelKind::Contractive,
            (k, _) => k,
        }
    }

    /// The body the model is built on.
    #[must_use]
    pub fn body(&self) -> Backbone {
        match self.kind {
            ModelKind::Dense => Backbone::Dense,
            ModelKind::Conv => Backbone::Conv,
            _ => self.backbone,
        }
    }

    /// Whether the model has a stochastic code (a VAE, possibly under a denoising wrapper).
    #[must_use]
    pub fn is_variational(&self) -> bool {
        self.inner_kind() == ModelKind::Vae
    }

    /// The backbone config for inputs of `input_shape`.
    #[must_use]
    pub fn backbone_config(&self, input_shape: &[usize]) -> crate::BackboneConfig {
        match self.body() {
            Backbone::Dense => crate::BackboneConfig::Dense(self.dense(input_shape)),
            Backbone::Conv => crate::BackboneConfig::Conv(self.conv(input_shape)),
        }
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
            code_activation: self.code_activation,
            kernels: Kernels::Auto,
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
            code_activation: self.code_activation,
            kernels: Kernels::Auto,
        }
    }
}

fn identity() -> Activation {
    Activation::Identity
}

/// Which ops compute the layers and the fused losses (the experiment's top-level
/// `kernels` key). Both paths compute the same functions, to float rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kernels {
    /// bottleneck-kernels' fused ops for f32 tensors on the CPU; candle's ops elsewhere.
    #[default]
    Auto,
    /// candle's own ops on every device, the CPU included (the path a GPU takes).
    Candle,
}

impl Kernels {
    /// Whether the fused CPU kernels compute on `xs`.
    #[must_use]
    pub fn fused(self, xs: &candle_core::Tensor) -> bool {
        self == Self::Auto && xs.device().is_cpu() && xs.dtype() == candle_core::DType::F32
    }

    /// Lower-case name, as in configs.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Candle => "candle",
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
    /// Activation on the code (default none).
    #[serde(default = "identity")]
    pub code_activation: Activation,
    /// Which ops compute the layers.
    #[serde(default)]
    pub kernels: Kernels,
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
    /// Activation on the code (default none).
    #[serde(default = "identity")]
    pub code_activation: Activation,
    /// Which ops compute the layers.
    #[serde(default)]
    pub kernels: Kernels,
}
