//! Test-set metrics of a trained model, accumulated batch by batch: the reconstruction
//! metrics of every kind, each term of its objective, and for a stochastic code the
//! −ELBO, an importance-weighted NLL estimate, KL per unit and active units.

use std::collections::BTreeMap;

use candle_core::{DType, Tensor, D};

use crate::config::Kernels;
use crate::error::Result;
use crate::loss::{bce, mse, per_sample_sse, psnr, scalar, ReconLoss};
use crate::model::{Autoencoder, StepCtx};
use crate::terms::{gaussian_kl_per_unit, standard_normal, LN_2PI};

/// Seed of the fixed noise used to score denoising models noisy → clean (batch `i` adds
/// `i`).
pub const EVAL_NOISE_SEED: u64 = 0x0000_e7a1;
/// Salt of the importance samples' seed.
const IS_SALT: u64 = 0x1500_0001;
/// Importance samples decoded at once, at most (rows of a batch × samples): the
/// decoder's intermediate tensors of one chunk stay alive together (they carry the
/// autograd graph of the weights), ≈ 50 bytes × features each.
const IS_ROWS: usize = 4_096;
/// A unit is active when the variance over the data of its posterior mean exceeds this
/// (Burda et al. 2016, section 5.2).
pub const ACTIVE_UNIT_THRESHOLD: f64 = 0.01;

/// How to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalOptions {
    /// The reconstruction loss of kinds without a likelihood.
    pub loss: ReconLoss,
    /// Importance samples K of the NLL estimate (0 = skip it).
    pub nll_samples: usize,
    /// Seed of the importance samples.
    pub seed: u64,
    /// Epochs trained (the objective's schedules: KL warm-up, capacity).
    pub epoch: usize,
    /// Which ops compute the losses and the MSE.
    pub kernels: Kernels,
}

/// What [`Evaluator::finish`] returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EvalReport {
    /// `test_*` metrics, one number each.
    pub metrics: BTreeMap<String, f64>,
    /// Stochastic codes: `KL(q(z_j|x) ‖ N(0, 1))` per unit, nats, mean over the samples.
    pub kl_per_unit: Vec<f64>,
    /// Stochastic codes: the variance over the samples of each unit's posterior mean
    /// (Burda et al.'s activity statistic).
    pub mean_variance: Vec<f64>,
}

impl EvalReport {
    /// Units whose posterior mean varies over the data by more than
    /// [`ACTIVE_UNIT_THRESHOLD`] (0 for a deterministic code).
    #[must_use]
    pub fn active_units(&self) -> usize {
        self.mean_variance.iter().filter(|&&v| v > ACTIVE_UNIT_THRESHOLD).count()
    }

    /// For a stochastic code of which fewer than half the units are active: a note that
    /// the posterior has collapsed, for the log and the report.
    #[must_use]
    pub fn collapse_note(&self) -> Option<String> {
        let (active, k) = (self.active_units(), self.mean_variance.len());
        (k > 0 && active * 2 < k).then(|| {
            format!(
                "posterior collapse: only {active} of {k} latent units are active (variance of their posterior mean over the test set > {ACTIVE_UNIT_THRESHOLD}); the others carry no information about the input (try a lower model.beta, model.kl_warmup_epochs or a smaller model.latent_dim)"
            )
        })
    }
}

/// Accumulates test metrics over batches.
pub struct Evaluator<'a> {
    model: &'a dyn Autoencoder,
    opts: EvalOptions,
    n: usize,
    mse: f64,
    bce: f64,
    sse: f64,
    noisy_mse: f64,
    terms: Vec<(&'static str, f64)>,
    is_nll: f64,
    mu_sum: Vec<f64>,
    mu_sq: Vec<f64>,
    kl_unit: Vec<f64>,
    stochastic: bool,
}

impl<'a> Evaluator<'a> {
    /// A fresh accumulator for `model`.
    #[must_use]
    pub fn new(model: &'a dyn Autoencoder, opts: EvalOptions) -> Self {
        let k = model.latent_dim();
        Self {
            model,
            opts,
            n: 0,
            mse: 0.0,
            bce: 0.0,
            sse: 0.0,
            noisy_mse: 0.0,
            terms: Vec::new(),
            is_nll: 0.0,
            mu_sum: vec![0.0; k],
            mu_sq: vec![0.0; k],
            kl_unit: vec![0.0; k],
            stochastic: false,
        }
    }

    /// Adds batch `index` (`xs: [b, ...input_shape]`, normalised like the training data).
    pub fn add(&mut self, xs: &Tensor, index: usize) -> Result<()> {
        let b = xs.dim(0)?;
        if b == 0 {
            return Ok(());
        }
        let nb = b as f64;
        let m = self.model;
        let out = m.reconstruct(xs)?;
        self.mse += scalar(&mse(&out, xs, self.opts.kernels)?)? * nb;
        self.bce += scalar(&bce(&out.clamp(0.0, 1.0)?, &xs.clamp(0.0, 1.0)?)?)? * nb;
        self.sse += scalar(&per_sample_sse(&out, xs)?)? * nb;
        if let Some(noise) = m.input_noise() {
            let noisy = noise.apply_seeded(xs, EVAL_NOISE_SEED + index as u64)?;
            self.noisy_mse += scalar(&mse(&m.reconstruct(&noisy)?, xs, self.opts.kernels)?)? * nb;
        }
        let ctx = StepCtx::eval(index as u64, self.opts.epoch, self.opts.loss).with_kernels(self.opts.kernels);
        let terms = m.objective(xs, xs, &ctx)?;
        if self.terms.is_empty() {
            self.terms = terms.iter().map(|t| (t.name, 0.0)).collect();
        }
        for (t, acc) in terms.iter().zip(self.terms.iter_mut()) {
            acc.1 += scalar(&t.value)? * nb;
        }
        if let Some(q) = m.posterior(xs)? {
            self.stochastic = true;
            let mu: Vec<Vec<f32>> = q.mean.to_dtype(DType::F32)?.to_vec2()?;
            for row in &mu {
                for (j, &v) in row.iter().enumerate() {
                    self.mu_sum[j] += f64::from(v);
                    self.mu_sq[j] += f64::from(v) * f64::from(v);
                }
            }
            let kl: Vec<f32> = gaussian_kl_per_unit(&q.mean, &q.logvar)?.to_dtype(DType::F32)?.to_vec1()?;
            for (j, v) in kl.into_iter().enumerate() {
                self.kl_unit[j] += f64::from(v) * nb;
            }
            if self.opts.nll_samples > 0 {
                let nll = importance_nll(m, xs, &q.mean, &q.logvar, self.opts.nll_samples, self.opts.seed, index)?;
                self.is_nll += nll.iter().sum::<f64>();
            }
        }
        self.n += b;
        Ok(())
    }

    /// The metrics (empty for an empty split: nothing was measured).
    #[must_use]
    pub fn finish(self) -> EvalReport {
        let mut r = EvalReport::default();
        if self.n == 0 {
            return r;
        }
        let n = self.n as f64;
        let m = &mut r.metrics;
        m.insert("test_mse".into(), self.mse / n);
        m.insert("test_bce".into(), self.bce / n);
        m.insert("test_psnr".into(), psnr(self.mse / n, 1.0));
        m.insert("test_sse_per_image".into(), self.sse / n);
        if self.model.input_noise().is_some() {
            m.insert("test_noisy_mse".into(), self.noisy_mse / n);
        }
        if self.terms.len() > 1 {
            for (name, v) in &self.terms {
                m.insert(format!("test_{name}"), v / n);
            }
        }
        if self.stochastic {
            let get = |name: &str| self.terms.iter().find(|t| t.0 == name).map(|t| t.1 / n);
            if let (Some(recon), Some(kl)) = (get("recon"), get("kl")) {
                m.insert("test_neg_elbo".into(), recon + kl);
            }
            if self.opts.nll_samples > 0 {
                m.insert("test_is_nll".into(), self.is_nll / n);
            }
            r.kl_per_unit = self.kl_unit.iter().map(|v| v / n).collect();
            r.mean_variance =
                self.mu_sum.iter().zip(&self.mu_sq).map(|(s, q)| (q / n - (s / n) * (s / n)).max(0.0)).collect();
            let active = r.active_units() as f64;
            r.metrics.insert("test_active_units".into(), active);
        }
        r
    }
}

/// The importance-weighted estimate of −log p(x) per sample (Burda et al. 2016, eq. 8):
/// `−log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x)`, `z_k ~ q(z|x)`, with a standard-normal
/// prior; K = 1 is a one-sample ELBO, and the estimate falls towards −log p(x) as K grows.
pub fn importance_nll(
    model: &dyn Autoencoder,
    xs: &Tensor,
    mean: &Tensor,
    logvar: &Tensor,
    samples: usize,
    seed: u64,
    batch: usize,
) -> Result<Vec<f64>> {
    let (b, k) = mean.dims2()?;
    let std = logvar.affine(0.5, 0.0)?.exp()?;
    let chunk = (IS_ROWS / b.max(1)).clamp(1, samples);
    let mut lse = vec![f64::NEG_INFINITY; b];
    let mut weights: Vec<Vec<f64>> = vec![Vec::with_capacity(samples); b];
    let log_norm = 0.5 * k as f64 * LN_2PI;
    let mut done = 0;
    while done < samples {
        let kc = chunk.min(samples - done);
        // Sample s of batch `batch` always comes from the same stream, whatever the chunking.
        let draws = (done..done + kc)
            .map(|s| {
                standard_normal(
                    &[1, b, k],
                    seed ^ IS_SALT,
                    ((batch as u64) << 20) | s as u64,
                    mean.dtype(),
                    mean.device(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let eps = Tensor::cat(&draws, 0)?;
        let zs = mean.unsqueeze(0)?.broadcast_add(&std.unsqueeze(0)?.broadcast_mul(&eps)?)?;
        let mut rep = vec![kc, b];
        rep.extend(&xs.dims()[1..]);
        let mut flat = vec![kc * b];
        flat.extend(&xs.dims()[1..]);
        let xs_rep = xs.unsqueeze(0)?.broadcast_as(rep.as_slice())?.contiguous()?.reshape(flat)?;
        let z_flat = zs.reshape((kc * b, k))?;
        let Some(ll) = model.log_likelihood(&z_flat, &xs_rep)? else {
            return Ok(vec![f64::NAN; b]);
        };
        let log_prior = zs.sqr()?.sum(D::Minus1)?.affine(-0.5, -log_norm)?;
        let log_post = eps.sqr()?.broadcast_add(&logvar.unsqueeze(0)?)?.sum(D::Minus1)?.affine(-0.5, -log_norm)?;
        let w = ((ll.reshape((kc, b))? + log_prior)? - log_post)?;
        let w: Vec<Vec<f32>> = w.to_dtype(DType::F32)?.to_vec2()?;
        for row in &w {
            for (i, &v) in row.iter().enumerate() {
                weights[i].push(f64::from(v));
            }
        }
        done += kc;
    }
    for (i, ws) in weights.iter().enumerate() {
        let max = ws.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        lse[i] = max + ws.iter().map(|w| (w - max).exp()).sum::<f64>().ln();
    }
    Ok(lse.into_iter().map(|l| -(l - (samples as f64).ln())).collect())
}
