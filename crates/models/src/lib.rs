//! Autoencoders for bottleneck, on candle.
//!
//! One [`Autoencoder`] trait (`encode`, `decode`, `reconstruct`, and an `objective` of
//! named, weighted [`Term`]s; a stochastic code adds `posterior` and `log_likelihood`)
//! and one file per kind: [`Dense`], [`Conv`], [`Denoising`] (wraps any kind, with input
//! [`Noise`] in training only), [`Vae`] (β-VAE, KL warm-up, capacity control), [`Sparse`]
//! and [`Contractive`]. The dense and conv bodies ([`backbone`]) are shared by every
//! kind. Each kind has a config and `new(cfg, vb)`; [`build()`] makes any kind from the
//! `[model]` section ([`ModelConfig`]). `vb.pp(..)` names are the checkpoint format.
//! [`seeded_var_builder`] makes initialisation reproducible; [`eval::Evaluator`] scores
//! a trained model on a test split. No I/O, no config files; the only workspace crate
//! below it is `bottleneck-kernels` (the CPU kernels the layers run on, a leaf that
//! depends on candle alone).

pub mod backbone;
pub mod build;
pub mod config;
pub mod contractive;
pub mod conv;
pub mod denoising;
pub mod dense;
pub mod error;
pub mod eval;
pub mod init;
pub mod layers;
pub mod loss;
pub mod model;
pub mod noise;
pub mod sparse;
pub mod terms;
pub mod vae;

pub use backbone::{BackboneConfig, Body, Decoder, Encoder};
pub use build::build;
pub use config::{
    Activation, Backbone, ConvConfig, DenseConfig, Kernels, Likelihood, ModelConfig, ModelKind, Sparsity, Wraps,
};
pub use contractive::{Contractive, ContractiveConfig};
pub use conv::Conv;
pub use denoising::{Denoising, DenoisingConfig};
pub use dense::Dense;
pub use error::{ModelError, Result};
pub use init::seeded_var_builder;
pub use loss::ReconLoss;
pub use model::{total, Autoencoder, LayerInfo, Posterior, StepCtx, Summary, Term};
pub use noise::Noise;
pub use sparse::{Sparse, SparseConfig};
pub use vae::{Vae, VaeConfig};
