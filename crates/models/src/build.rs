//! Building any kind from the `[model]` section.

use candle_nn::VarBuilder;

use crate::config::{ConvConfig, DenseConfig, Kernels, ModelConfig, ModelKind};
use crate::contractive::{Contractive, ContractiveConfig};
use crate::conv::Conv;
use crate::denoising::Denoising;
use crate::dense::Dense;
use crate::error::Result;
use crate::model::Autoencoder;
use crate::sparse::{Sparse, SparseConfig};
use crate::vae::{Vae, VaeConfig};

/// Builds the autoencoder `cfg` describes for samples of `input_shape`, its layers
/// computed by `kernels`; `seed` seeds the train-time randomness (input noise,
/// reparameterisation, perturbations; weights are seeded by the `VarBuilder`).
pub fn build(
    cfg: &ModelConfig,
    input_shape: &[usize],
    seed: u64,
    kernels: Kernels,
    vb: VarBuilder,
) -> Result<Box<dyn Autoencoder>> {
    cfg.validate()?;
    let inner = build_kind(cfg, cfg.inner_kind(), input_shape, seed, kernels, vb)?;
    if cfg.kind == ModelKind::Denoising {
        return Ok(Box::new(Denoising::wrap(inner, cfg.noise, seed)?));
    }
    Ok(inner)
}

fn build_kind(
    cfg: &ModelConfig,
    kind: ModelKind,
    input_shape: &[usize],
    seed: u64,
    kernels: Kernels,
    vb: VarBuilder,
) -> Result<Box<dyn Autoencoder>> {
    let backbone = cfg.backbone_config(input_shape).with_kernels(kernels);
    Ok(match kind {
        // `inner_kind` never returns Denoising: a denoising wrapper's plain inside is dense
        // or conv.
        ModelKind::Dense | ModelKind::Denoising => {
            Box::new(Dense::new(&DenseConfig { kernels, ..cfg.dense(input_shape) }, vb)?)
        }
        ModelKind::Conv => Box::new(Conv::new(&ConvConfig { kernels, ..cfg.conv(input_shape) }, vb)?),
        ModelKind::Vae => Box::new(Vae::new(
            &VaeConfig {
                backbone,
                likelihood: cfg.likelihood,
                beta: cfg.beta,
                kl_warmup_epochs: cfg.kl_warmup_epochs,
                capacity_max: cfg.capacity_max,
                capacity_epochs: cfg.capacity_epochs,
                gamma: cfg.gamma,
                gaussian_std: cfg.gaussian_std,
                learn_std: cfg.learn_std,
                seed,
            },
            vb,
        )?),
        ModelKind::Sparse => Box::new(Sparse::new(
            &SparseConfig {
                backbone,
                sparsity: cfg.sparsity,
                weight: cfg.sparsity_weight,
                target: cfg.sparsity_target,
            },
            vb,
        )?),
        ModelKind::Contractive => Box::new(Contractive::new(
            &ContractiveConfig {
                backbone,
                weight: cfg.contractive_weight,
                eps: cfg.contractive_eps,
                samples: cfg.contractive_samples,
                seed,
            },
            vb,
        )?),
    })
}
