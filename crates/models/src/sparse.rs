//! The sparse autoencoder: a plain body with a sparsity penalty on its code.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::backbone::{BackboneConfig, Body};
use crate::config::{Activation, Sparsity};
use crate::dense::plain_body;
use crate::error::Result;
use crate::loss::recon_loss;
use crate::model::{Autoencoder, StepCtx, Summary, Term};
use crate::terms::{kl_sparsity, l1_sparsity};

/// A sparse autoencoder's config.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseConfig {
    /// The body (with `kl`, its code activation is replaced by `sigmoid`).
    pub backbone: BackboneConfig,
    /// `l1` or `kl`.
    pub sparsity: Sparsity,
    /// λ, the penalty's weight.
    pub weight: f64,
    /// ρ, the target activation of `kl`.
    pub target: f64,
}

/// Terms: `recon` (the configured reconstruction loss) and `sparsity` at weight λ —
/// `mean |z|` ([`l1_sparsity`]) or `Σ_j KL(ρ ‖ ρ̂_j)` of a sigmoid code ([`kl_sparsity`]).
#[derive(Debug, Clone)]
pub struct Sparse {
    body: Body,
    cfg: SparseConfig,
}

impl Sparse {
    /// Builds the model; parameters have the body's names.
    pub fn new(cfg: &SparseConfig, vb: VarBuilder) -> Result<Self> {
        let backbone = match cfg.sparsity {
            Sparsity::Kl => cfg.backbone.clone().with_code_activation(Activation::Sigmoid),
            Sparsity::L1 => cfg.backbone.clone(),
        };
        Ok(Self { body: plain_body(&backbone, vb)?, cfg: cfg.clone() })
    }

    /// The penalty of codes `zs` (unweighted).
    pub fn penalty(&self, zs: &Tensor) -> Result<Tensor> {
        match self.cfg.sparsity {
            Sparsity::L1 => l1_sparsity(zs),
            Sparsity::Kl => kl_sparsity(zs, self.cfg.target),
        }
    }
}

impl Autoencoder for Sparse {
    crate::dense::body_methods!();

    fn objective(&self, xs: &Tensor, target: &Tensor, ctx: &StepCtx) -> Result<Vec<Term>> {
        let zs = self.encode(xs)?;
        let recon = recon_loss(&self.decode(&zs)?, target, ctx.loss, ctx.kernels)?;
        Ok(vec![
            Term::unit("recon", recon),
            Term { name: "sparsity", value: self.penalty(&zs)?, weight: self.cfg.weight },
        ])
    }

    fn summary(&self) -> Summary {
        Summary {
            model: format!("sparse({})", self.cfg.backbone.name()),
            input: self.body.input_shape.clone(),
            latent_dim: self.body.latent_dim,
            layers: self.body.layers.clone(),
        }
    }
}
