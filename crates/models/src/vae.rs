//! The variational autoencoder (Kingma & Welling 2014), with β (Higgins et al. 2017), KL
//! warm-up and capacity control (Burgess et al. 2018), over a dense or conv body.

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};

use crate::backbone::{BackboneConfig, Body};
use crate::config::{Activation, Likelihood};
use crate::error::{invalid, Result};
use crate::model::{Autoencoder, LayerInfo, Posterior, StepCtx, Summary, Term};
use crate::terms::{bernoulli_log_likelihood, gaussian_kl, gaussian_log_likelihood, standard_normal};

/// Salt of the seed of the training reparameterisation noise.
const TRAIN_SALT: u64 = 0x7661_6531;
/// Salt of the seed of the evaluation samples (validation ELBO).
const EVAL_SALT: u64 = 0x7661_6532;

/// A VAE's config.
#[derive(Debug, Clone, PartialEq)]
pub struct VaeConfig {
    /// The body; its encoder emits `2 · latent_dim` features (μ, log σ²) and its code
    /// activation is ignored.
    pub backbone: BackboneConfig,
    /// p(x|z).
    pub likelihood: Likelihood,
    /// KL weight, >= 0.
    pub beta: f64,
    /// Epochs of linear KL warm-up.
    pub kl_warmup_epochs: usize,
    /// Capacity control: the target KL C rises to this many nats (0 = off).
    pub capacity_max: f64,
    /// Capacity control: epochs for C to reach `capacity_max`.
    pub capacity_epochs: usize,
    /// Capacity control: weight of |KL − C|.
    pub gamma: f64,
    /// Gaussian likelihood: σ (fixed, or the initial value when learned).
    pub gaussian_std: f64,
    /// Gaussian likelihood: learn σ.
    pub learn_std: bool,
    /// Seed of the reparameterisation noise.
    pub seed: u64,
}

impl VaeConfig {
    /// The KL weight at `epoch` (0-based): β·min(1, (epoch + 1)/(warm-up + 1)).
    #[must_use]
    pub fn kl_weight(&self, epoch: usize) -> f64 {
        let w = self.kl_warmup_epochs as f64;
        self.beta * ((epoch as f64 + 1.0) / (w + 1.0)).min(1.0)
    }

    /// The capacity C at `epoch` (0-based): `capacity_max · min(1, epoch/capacity_epochs)`.
    #[must_use]
    pub fn capacity(&self, epoch: usize) -> f64 {
        if self.capacity_epochs == 0 {
            return self.capacity_max;
        }
        self.capacity_max * (epoch as f64 / self.capacity_epochs as f64).min(1.0)
    }
}

/// q(z|x) = N(μ(x), diag σ²(x)), p(z) = N(0, I), p(x|z) Bernoulli (logits) or Gaussian.
/// `encode` returns μ; training draws z = μ + σ ⊙ ε with ε from stream `rng_step` of the
/// seed. Its terms, in nats per sample: `recon` = −log p(x|z) and `kl` =
/// KL(q(z|x) ‖ p(z)) (weight β, warmed up), or under capacity control `kl` at weight 0
/// (logged) and `capacity` = |KL − C| at weight γ.
pub struct Vae {
    body: Body,
    cfg: VaeConfig,
    /// log σ of a Gaussian likelihood, `[1]` (a variable when learned).
    log_std: Tensor,
}

impl std::fmt::Debug for Vae {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vae").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl Vae {
    /// Builds the model: the body's parameters keep their names (`encoder.*`,
    /// `decoder.*`; the encoder's last layer is twice as wide, μ then log σ²), plus
    /// `decoder.log_std` when σ is learned.
    pub fn new(cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        let k = cfg.backbone.latent_dim();
        if k == 0 {
            return Err(invalid("model.latent_dim", 0, "must be at least 1"));
        }
        let backbone = cfg.backbone.clone().with_code_activation(Activation::Identity);
        let output = match cfg.likelihood {
            Likelihood::Bernoulli => Activation::Identity,
            Likelihood::Gaussian => backbone.output_activation(),
        };
        let mut body = backbone.body(2 * k, "linear (μ, log σ²)", output, vb.clone())?;
        if cfg.likelihood == Likelihood::Bernoulli {
            if let Some(last) = body.layers.last_mut() {
                last.kind = last.kind.replace("identity", "logits (σ → mean)");
            }
        }
        let init = cfg.gaussian_std.ln();
        let log_std = if cfg.likelihood == Likelihood::Gaussian && cfg.learn_std {
            // Listed where the decoder starts, so the summary still ends at the output.
            let at = body.layers.iter().position(|l| l.name.starts_with("decoder.")).unwrap_or(body.layers.len());
            body.layers.insert(
                at,
                LayerInfo {
                    name: "decoder.log_std".into(),
                    kind: "log σ of p(x|z)".into(),
                    output: vec![1],
                    params: 1,
                    macs: 0,
                },
            );
            vb.pp("decoder").get_with_hints(1, "log_std", Init::Const(init))?
        } else {
            Tensor::new(&[init as f32], vb.device())?
        };
        Ok(Self { body, cfg: cfg.clone(), log_std })
    }

    /// The config.
    #[must_use]
    pub fn config(&self) -> &VaeConfig {
        &self.cfg
    }

    fn split(&self, xs: &Tensor) -> Result<Posterior> {
        let k = self.body.latent_dim;
        let out = self.body.encoder.forward(xs)?;
        Ok(Posterior { mean: out.narrow(1, 0, k)?.contiguous()?, logvar: out.narrow(1, k, k)?.contiguous()? })
    }

    fn likelihood(&self, decoded: &Tensor, xs: &Tensor) -> Result<Tensor> {
        match self.cfg.likelihood {
            Likelihood::Bernoulli => bernoulli_log_likelihood(decoded, xs),
            Likelihood::Gaussian => gaussian_log_likelihood(decoded, xs, &self.log_std.to_dtype(decoded.dtype())?),
        }
    }
}

impl Autoencoder for Vae {
    fn input_shape(&self) -> &[usize] {
        &self.body.input_shape
    }

    fn latent_dim(&self) -> usize {
        self.body.latent_dim
    }

    fn encode(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(self.split(xs)?.mean)
    }

    fn decode(&self, zs: &Tensor) -> Result<Tensor> {
        let out = self.body.decoder.forward(zs)?;
        match self.cfg.likelihood {
            Likelihood::Bernoulli => Ok(candle_nn::ops::sigmoid(&out)?),
            Likelihood::Gaussian => Ok(out),
        }
    }

    fn objective(&self, xs: &Tensor, target: &Tensor, ctx: &StepCtx) -> Result<Vec<Term>> {
        let q = self.split(xs)?;
        let salt = if ctx.train { TRAIN_SALT } else { EVAL_SALT };
        let eps = standard_normal(q.mean.dims(), self.cfg.seed ^ salt, ctx.rng_step, q.mean.dtype(), q.mean.device())?;
        let zs = (&q.mean + (q.logvar.affine(0.5, 0.0)?.exp()? * eps)?)?;
        let decoded = self.body.decoder.forward(&zs)?;
        let fused = self.cfg.likelihood == Likelihood::Bernoulli && ctx.kernels.fused(&decoded);
        let recon = if fused {
            // One pass forward and one backward (bottleneck-kernels) instead of a chain
            // of elementwise ops: the same value to f32 rounding.
            bottleneck_kernels::bernoulli_nll(&decoded, target)?
        } else {
            self.likelihood(&decoded, target)?.mean_all()?.neg()?
        };
        let kl = gaussian_kl(&q.mean, &q.logvar)?;
        let mut terms = vec![Term::unit("recon", recon)];
        if self.cfg.capacity_max > 0.0 {
            let c = self.cfg.capacity(ctx.epoch);
            let gap = kl.affine(1.0, -c)?.abs()?;
            terms.push(Term { name: "kl", value: kl, weight: 0.0 });
            terms.push(Term { name: "capacity", value: gap, weight: self.cfg.gamma });
        } else {
            terms.push(Term { name: "kl", value: kl, weight: self.cfg.kl_weight(ctx.epoch) });
        }
        Ok(terms)
    }

    fn posterior(&self, xs: &Tensor) -> Result<Option<Posterior>> {
        Ok(Some(self.split(xs)?))
    }

    fn log_likelihood(&self, zs: &Tensor, xs: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.likelihood(&self.body.decoder.forward(zs)?, xs)?))
    }

    fn summary(&self) -> Summary {
        Summary {
            model: format!("vae({})", self.cfg.backbone.name()),
            input: self.body.input_shape.clone(),
            latent_dim: self.body.latent_dim,
            layers: self.body.layers.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(beta: f64, warmup: usize, cap: f64, cap_epochs: usize) -> VaeConfig {
        VaeConfig {
            backbone: BackboneConfig::Dense(crate::ModelConfig::default().dense(&[4])),
            likelihood: Likelihood::Bernoulli,
            beta,
            kl_warmup_epochs: warmup,
            capacity_max: cap,
            capacity_epochs: cap_epochs,
            gamma: 1000.0,
            gaussian_std: 0.1,
            learn_std: false,
            seed: 0,
        }
    }

    #[test]
    #[allow(clippy::float_cmp)] // small integers and their ratios are exact in f64
    fn kl_warm_up_and_capacity_schedules() {
        let c = cfg(4.0, 3, 0.0, 0);
        let w: Vec<f64> = (0..6).map(|e| c.kl_weight(e)).collect();
        assert_eq!(w, [1.0, 2.0, 3.0, 4.0, 4.0, 4.0]);
        assert_eq!(cfg(2.0, 0, 0.0, 0).kl_weight(0), 2.0);
        let c = cfg(1.0, 0, 25.0, 5);
        let caps: Vec<f64> = (0..7).map(|e| c.capacity(e)).collect();
        assert_eq!(caps, [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 25.0]);
        assert_eq!(cfg(1.0, 0, 25.0, 0).capacity(0), 25.0);
    }
}
