//! Reconstruction losses and metrics.

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::Kernels;
use crate::error::Result;

/// The training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReconLoss {
    /// Mean squared error per element.
    #[default]
    Mse,
    /// Binary cross-entropy per element, for targets in [0, 1].
    Bce,
}

/// Probabilities are clamped to `[EPS, 1 - EPS]` inside the BCE logarithms.
const EPS: f64 = 1e-7;

/// Mean squared error per element (one fused op for f32 CPU tensors when `kernels` allows).
pub fn mse(xs_hat: &Tensor, xs: &Tensor, kernels: Kernels) -> Result<Tensor> {
    if kernels.fused(xs_hat) && xs.dtype() == DType::F32 {
        return Ok(bottleneck_kernels::mse(xs_hat, xs)?);
    }
    Ok((xs_hat - xs)?.sqr()?.mean_all()?)
}

/// Binary cross-entropy per element: `-[x log x̂ + (1 - x) log(1 - x̂)]`.
pub fn bce(xs_hat: &Tensor, xs: &Tensor) -> Result<Tensor> {
    let p = xs_hat.clamp(EPS, 1.0 - EPS)?;
    let pos = (xs * p.log()?)?;
    let neg = (xs.affine(-1.0, 1.0)? * p.affine(-1.0, 1.0)?.log()?)?;
    Ok((pos + neg)?.neg()?.mean_all()?)
}

/// The loss `kind` between a reconstruction and its target.
pub fn recon_loss(xs_hat: &Tensor, xs: &Tensor, kind: ReconLoss, kernels: Kernels) -> Result<Tensor> {
    match kind {
        ReconLoss::Mse => mse(xs_hat, xs, kernels),
        ReconLoss::Bce => bce(xs_hat, xs),
    }
}

/// Squared error summed over each sample's features, averaged over the batch (the scale
/// Hinton & Salakhutdinov 2006 report).
pub fn per_sample_sse(xs_hat: &Tensor, xs: &Tensor) -> Result<Tensor> {
    Ok((xs_hat - xs)?.sqr()?.flatten_from(1)?.sum(1)?.mean_all()?)
}

/// Peak signal-to-noise ratio in dB for data of range `peak` (1 for [0, 1] images).
#[must_use]
pub fn psnr(mse: f64, peak: f64) -> f64 {
    10.0 * (peak * peak / mse).log10()
}

/// A scalar tensor as f64.
pub fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}
