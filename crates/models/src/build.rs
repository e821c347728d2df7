//! Building any kind from the `[model]` section.

use candle_nn::VarBuilder;

use crate::config::{Backbone, ModelConfig, ModelKind};
use crate::conv::Conv;
use crate::denoising::{BackboneConfig, Denoising, DenoisingConfig};
use crate::dense::Dense;
use crate::error::Result;
use crate::model::Autoencoder;

/// Builds the autoencoder `cfg` describes for samples of `input_shape`; `seed` seeds the
/// denoising noise (weights are seeded by the `VarBuilder`).
pub fn build(cfg: &ModelConfig, input_shape: &[usize], seed: u64, vb: VarBuilder) -> Result<Box<dyn Autoencoder>> {
    cfg.validate()?;
    Ok(match cfg.kind {
        ModelKind::Dense => Box::new(Dense::new(&cfg.dense(input_shape), vb)?),
        ModelKind::Conv => Box::new(Conv::new(&cfg.conv(input_shape), vb)?),
        ModelKind::Denoising => {
            let backbone = match cfg.backbone {
                Backbone::Dense => BackboneConfig::Dense(cfg.dense(input_shape)),
                Backbone::Conv => BackboneConfig::Conv(cfg.conv(input_shape)),
            };
            Box::new(Denoising::new(&DenoisingConfig { backbone, noise: cfg.noise, seed }, vb)?)
        }
    })
}
