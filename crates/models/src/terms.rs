//! The loss terms of the regularised and generative kinds, as pure functions of tensors
//! (any float dtype, any device), so each can be checked on its own: against finite
//! differences, a Monte-Carlo estimate or a Jacobian built column by column.

use candle_core::{DType, Device, Tensor, D};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::config::Activation;
use crate::error::Result;

/// ln(2π).
pub const LN_2PI: f64 = 1.837_877_066_409_345_3;

/// KL(N(μ, diag σ²) ‖ N(0, I)) per unit, `0.5 (μ² + σ² − 1 − log σ²)`, averaged over the
/// batch (Kingma & Welling 2014, appendix B).
///
/// # Shapes
/// `mean`, `logvar: [b, k]` → `[k]`.
pub fn gaussian_kl_per_unit(mean: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    Ok(kl_elements(mean, logvar)?.mean(0)?)
}

/// `0.5 (μ² + σ² − 1 − log σ²)` per sample and unit.
fn kl_elements(mean: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    Ok(((mean.sqr()? + logvar.exp()?)? - logvar)?.affine(0.5, -0.5)?)
}

/// KL(q(z|x) ‖ N(0, I)) in nats per sample, averaged over the batch: the sum of
/// [`gaussian_kl_per_unit`] over the units.
///
/// # Shapes
/// `mean`, `logvar: [b, k]` → scalar.
pub fn gaussian_kl(mean: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    Ok(kl_elements(mean, logvar)?.sum(D::Minus1)?.mean_all()?)
}

/// `softplus(l) = log(1 + eˡ)`, computed as `max(l, 0) + log(1 + e^(−|l|))` so it never
/// overflows (`|l| = 2 max(l, 0) − l`).
pub fn softplus(logits: &Tensor) -> Result<Tensor> {
    let r = logits.relu()?;
    let neg_abs = (logits - r.affine(2.0, 0.0)?)?;
    Ok((r + neg_abs.exp()?.affine(1.0, 1.0)?.log()?)?)
}

/// log p(x | logits) of independent Bernoulli pixels, `Σ x·l − softplus(l)`, per sample
/// (minus the binary cross-entropy with logits, summed over the sample's features; `x`
/// may be a grey value in [0, 1]).
///
/// # Shapes
/// `logits`, `xs: [b, ...]` → `[b]`.
pub fn bernoulli_log_likelihood(logits: &Tensor, xs: &Tensor) -> Result<Tensor> {
    let per = ((xs * logits)? - softplus(logits)?)?;
    Ok(per.flatten_from(1)?.sum(1)?)
}

/// log N(x; μ, σ² I) per sample with `log_std` = log σ (a scalar tensor, learned or
/// fixed): `−½ Σ (x − μ)²/σ² − D log σ − D ½ ln 2π`.
///
/// # Shapes
/// `mean`, `xs: [b, ...]`, `log_std: []` → `[b]`.
pub fn gaussian_log_likelihood(mean: &Tensor, xs: &Tensor, log_std: &Tensor) -> Result<Tensor> {
    let d = mean.elem_count() / mean.dim(0)?;
    let sse = (mean - xs)?.sqr()?.flatten_from(1)?.sum(1)?;
    let inv_var = log_std.affine(-2.0, 0.0)?.exp()?;
    let quad = sse.broadcast_mul(&inv_var)?.affine(-0.5, -(d as f64) * 0.5 * LN_2PI)?;
    Ok(quad.broadcast_sub(&log_std.affine(d as f64, 0.0)?)?)
}

/// The L1 sparsity penalty, `mean |z|` over the batch and the units.
pub fn l1_sparsity(zs: &Tensor) -> Result<Tensor> {
    Ok(zs.abs()?.mean_all()?)
}

/// The KL sparsity penalty `Σ_j ρ log(ρ/ρ̂_j) + (1 − ρ) log((1 − ρ)/(1 − ρ̂_j))` between a
/// target activation ρ and the mean activation `ρ̂_j` of each unit over the batch, for a
/// code in (0, 1) (Ng, *Sparse autoencoder*, CS294A lecture notes, 2011). ρ̂ is clamped
/// to [1e-6, 1 − 1e-6].
///
/// # Shapes
/// `zs: [b, k]` → scalar.
pub fn kl_sparsity(zs: &Tensor, rho: f64) -> Result<Tensor> {
    let hat = zs.mean(0)?.clamp(1e-6, 1.0 - 1e-6)?;
    let a = hat.log()?.affine(-rho, rho * rho.ln())?;
    let b = hat.affine(-1.0, 1.0)?.log()?.affine(-(1.0 - rho), (1.0 - rho) * (1.0 - rho).ln())?;
    Ok((a + b)?.sum_all()?)
}

/// The derivative of `act` at its pre-activation, from its output `h`, for the
/// activations whose derivative is a function of the output; `None` for GELU and `SiLU`.
pub fn activation_derivative(act: Activation, h: &Tensor) -> Result<Option<Tensor>> {
    Ok(Some(match act {
        Activation::Identity => h.ones_like()?,
        Activation::Sigmoid => (h * h.affine(-1.0, 1.0)?)?,
        Activation::Tanh => h.sqr()?.affine(-1.0, 1.0)?,
        Activation::Relu => h.gt(0.0)?.to_dtype(h.dtype())?,
        Activation::LeakyRelu => h.gt(0.0)?.to_dtype(h.dtype())?.affine(0.99, 0.01)?,
        Activation::Gelu | Activation::Silu => return Ok(None),
    }))
}

/// The squared Frobenius norm of the Jacobian of a one-layer encoder `h = act(W x + b)`,
/// in closed form (Rifai et al. 2011, eq. 3 for the sigmoid):
/// `‖J‖²_F = Σ_j act′(u_j)² Σ_i W_ji²`, averaged over the batch. `None` when `act`'s
/// derivative is not a function of its output (GELU, `SiLU`).
///
/// # Shapes
/// `h: [b, k]`, `weight: [k, d]` → scalar.
pub fn contractive_exact(h: &Tensor, weight: &Tensor, act: Activation) -> Result<Option<Tensor>> {
    let Some(d) = activation_derivative(act, h)? else { return Ok(None) };
    let rows = weight.sqr()?.sum(1)?; // [k]
    Ok(Some(d.sqr()?.broadcast_mul(&rows)?.sum(1)?.mean_all()?))
}

/// `shape` standard-normal values from stream `stream` of `seed`, on `device` as `dtype`.
pub fn standard_normal(shape: &[usize], seed: u64, stream: u64, dtype: DType, device: &Device) -> Result<Tensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?.to_dtype(dtype)?.to_device(device)?)
}
