//! Autoencoders for bottleneck, on candle.
//!
//! One [`Autoencoder`] trait (`encode`, `decode`, `forward_t`, `loss`) and one file per
//! kind: [`Dense`], [`Conv`], [`Denoising`] (wraps either, with input [`Noise`] in
//! training only). Each kind has a serde config and `new(cfg, vb)`; [`build()`] makes any
//! kind from the `[model]` section ([`ModelConfig`]). `vb.pp(..)` names are the checkpoint
//! format. [`seeded_var_builder`] makes initialisation reproducible. No I/O, no config
//! files; the only workspace crate below it is `bottleneck-kernels` (the CPU kernels the
//! layers run on, a leaf that depends on candle alone).

pub mod build;
pub mod config;
pub mod conv;
pub mod denoising;
pub mod dense;
pub mod error;
pub mod init;
pub mod layers;
pub mod loss;
pub mod model;
pub mod noise;

pub use build::build;
pub use config::{Activation, Backbone, ConvConfig, DenseConfig, ModelConfig, ModelKind};
pub use conv::Conv;
pub use denoising::{BackboneConfig, Denoising, DenoisingConfig};
pub use dense::Dense;
pub use error::{ModelError, Result};
pub use init::seeded_var_builder;
pub use loss::ReconLoss;
pub use model::{Autoencoder, LayerInfo, Summary};
pub use noise::Noise;
