//! The contractive autoencoder (Rifai et al. 2011): a plain body with a penalty on the
//! squared Frobenius norm of its encoder's Jacobian.

use candle_core::{Tensor, D};
use candle_nn::VarBuilder;

use crate::backbone::{BackboneConfig, Body, Encoder};
use crate::config::Activation;
use crate::dense::plain_body;
use crate::error::Result;
use crate::loss::recon_loss;
use crate::model::{Autoencoder, StepCtx, Summary, Term};
use crate::terms::{contractive_exact, standard_normal};

/// Salt of the seed of the training perturbations.
const TRAIN_SALT: u64 = 0xcae0_0001;
/// Salt of the seed of the evaluation perturbations.
const EVAL_SALT: u64 = 0xcae0_0002;

/// A contractive autoencoder's config.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractiveConfig {
    /// The body.
    pub backbone: BackboneConfig,
    /// λ, the weight of `‖J_f(x)‖²_F`.
    pub weight: f64,
    /// σ of the estimator's input perturbations.
    pub eps: f64,
    /// Perturbations per sample in the estimator.
    pub samples: usize,
    /// Seed of the perturbations.
    pub seed: u64,
}

/// Terms: `recon` and `contractive` = `‖J_f(x)‖²_F` (mean over the batch) at weight λ.
///
/// The penalty is exact and closed-form ([`contractive_exact`]) for a dense encoder
/// without hidden layers (`hidden = []`, `z = act(W x + b)` with `code_activation` one
/// of identity, sigmoid, tanh, relu, `leaky_relu`). For any other encoder it is the
/// stochastic finite-difference estimate
/// `‖J‖²_F ≈ (1/S) Σ_s ‖f(x + ε_s) − f(x)‖² / σ²`, `ε_s ~ N(0, σ² I)`: since
/// `E‖J ε‖² = σ² tr(JᵀJ)`, it is unbiased for a linear encoder and has an O(σ²)
/// curvature bias otherwise (σ = `contractive_eps`, S = `contractive_samples`).
#[derive(Debug, Clone)]
pub struct Contractive {
    body: Body,
    cfg: ContractiveConfig,
    code_activation: Activation,
}

impl Contractive {
    /// Builds the model; parameters have the body's names.
    pub fn new(cfg: &ContractiveConfig, vb: VarBuilder) -> Result<Self> {
        let code_activation = cfg.backbone.code_activation();
        Ok(Self { body: plain_body(&cfg.backbone, vb)?, cfg: cfg.clone(), code_activation })
    }

    /// Whether the penalty is computed exactly (else estimated).
    #[must_use]
    pub fn is_exact(&self) -> bool {
        let single = matches!(&self.body.encoder, Encoder::Dense(e) if e.single_layer().is_some());
        single && !matches!(self.code_activation, Activation::Gelu | Activation::Silu)
    }

    /// The exact `‖J_f(x)‖²_F` averaged over the batch, given the codes `zs = f(xs)`; `None`
    /// when the encoder has hidden layers or a GELU or `SiLU` code.
    pub fn exact_penalty(&self, zs: &Tensor) -> Result<Option<Tensor>> {
        let Encoder::Dense(e) = &self.body.encoder else { return Ok(None) };
        let Some(layer) = e.single_layer() else { return Ok(None) };
        contractive_exact(zs, layer.weight(), self.code_activation)
    }

    /// The finite-difference estimate of `‖J_f(x)‖²_F` averaged over the batch, with the
    /// perturbations of stream `stream` of `seed` and `samples` of them per input.
    pub fn estimated_penalty(
        &self,
        xs: &Tensor,
        zs: &Tensor,
        seed: u64,
        stream: u64,
        samples: usize,
    ) -> Result<Tensor> {
        let sigma = self.cfg.eps;
        let mut dims = vec![samples];
        dims.extend(xs.dims());
        let eps = standard_normal(&dims, seed, stream, xs.dtype(), xs.device())?.affine(sigma, 0.0)?;
        let rep = xs.unsqueeze(0)?.broadcast_as(dims.as_slice())?;
        let mut flat = vec![samples * xs.dim(0)?];
        flat.extend(&xs.dims()[1..]);
        let moved = self.body.encoder.forward(&(rep + eps)?.reshape(flat)?)?;
        let (b, k) = zs.dims2()?;
        let diff = moved.reshape((samples, b, k))?.broadcast_sub(&zs.unsqueeze(0)?)?;
        Ok(diff.sqr()?.sum(D::Minus1)?.mean_all()?.affine(1.0 / (sigma * sigma), 0.0)?)
    }

    /// The penalty the model trains with: exact when possible, else estimated.
    pub fn penalty(&self, xs: &Tensor, zs: &Tensor, ctx: &StepCtx) -> Result<Tensor> {
        if let Some(p) = self.exact_penalty(zs)? {
            return Ok(p);
        }
        let salt = if ctx.train { TRAIN_SALT } else { EVAL_SALT };
        self.estimated_penalty(xs, zs, self.cfg.seed ^ salt, ctx.rng_step, self.cfg.samples)
    }
}

impl Autoencoder for Contractive {
    crate::dense::body_methods!();

    fn objective(&self, xs: &Tensor, target: &Tensor, ctx: &StepCtx) -> Result<Vec<Term>> {
        let zs = self.encode(xs)?;
        let recon = recon_loss(&self.decode(&zs)?, target, ctx.loss, ctx.kernels)?;
        let penalty = self.penalty(xs, &zs, ctx)?;
        Ok(vec![Term::unit("recon", recon), Term { name: "contractive", value: penalty, weight: self.cfg.weight }])
    }

    fn summary(&self) -> Summary {
        let how = if self.is_exact() { "exact" } else { "estimated" };
        Summary {
            model: format!("contractive({}, {how} Jacobian)", self.cfg.backbone.name()),
            input: self.body.input_shape.clone(),
            latent_dim: self.body.latent_dim,
            layers: self.body.layers.clone(),
        }
    }
}
