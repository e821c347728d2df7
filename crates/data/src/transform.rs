//! Feature normalisation fitted on the training split and applied to every split.

use candle_core::{Device, Tensor};

use crate::config::Normalize;
use crate::dataset::Split;
use crate::error::{DataError, Result};

/// Scales below this are treated as constant features and left unscaled (scale 1).
const MIN_SCALE: f32 = 1e-8;

/// `x' = (x - shift) / scale` per feature, or the identity.
#[derive(Debug, Clone)]
pub enum Normalizer {
    /// Leave features as they are.
    Identity,
    /// Per-feature affine map; `shift` and `scale` have shape `[1, ...sample_shape]`.
    Affine {
        /// Subtracted first (min or mean).
        shift: Tensor,
        /// Divided by next (range or standard deviation; 1 for constant features).
        scale: Tensor,
    },
}

impl Normalizer {
    /// Fits the normalisation `how` on training features `xs` (`[n, ...]`). Pixels are
    /// already in [0, 1], so `unit` leaves them alone.
    pub fn fit(how: Normalize, pixels: bool, xs: &Tensor) -> Result<Self> {
        let (shift, scale) = match how {
            Normalize::None => return Ok(Self::Identity),
            Normalize::Unit if pixels => return Ok(Self::Identity),
            _ if xs.dim(0)? == 0 => {
                return Err(DataError::InvalidConfig {
                    key: "data.val_fraction".into(),
                    value: "(leaves no training samples)".into(),
                    allowed: "normalisation needs at least one training sample".into(),
                })
            }
            Normalize::Unit => {
                let lo = xs.min_keepdim(0)?;
                let hi = xs.max_keepdim(0)?;
                let range = (&hi - &lo)?;
                (lo, range)
            }
            Normalize::Standard => {
                let mean = xs.mean_keepdim(0)?;
                let std = xs.broadcast_sub(&mean)?.sqr()?.mean_keepdim(0)?.sqrt()?;
                (mean, std)
            }
        };
        let dims = scale.dims().to_vec();
        let fixed: Vec<f32> =
            scale.flatten_all()?.to_vec1::<f32>()?.into_iter().map(|s| if s > MIN_SCALE { s } else { 1.0 }).collect();
        Ok(Self::Affine { shift, scale: Tensor::from_vec(fixed, dims, &Device::Cpu)? })
    }

    /// Applies the map to features `[n, ...]` on any device.
    pub fn apply(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Self::Identity => Ok(xs.clone()),
            Self::Affine { shift, scale } => {
                Ok(xs.broadcast_sub(&shift.to_device(xs.device())?)?.broadcast_div(&scale.to_device(xs.device())?)?)
            }
        }
    }

    /// Maps normalised features back to the original scale (for display).
    pub fn invert(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Self::Identity => Ok(xs.clone()),
            Self::Affine { shift, scale } => {
                Ok(xs.broadcast_mul(&scale.to_device(xs.device())?)?.broadcast_add(&shift.to_device(xs.device())?)?)
            }
        }
    }

    /// Fits the normalisation `how` on a training split: [`Normalizer::fit`] on f32
    /// features; for pixel bytes the statistics come exactly from the bytes (integer
    /// sums), without building the split as f32. `unit` leaves pixels alone.
    pub fn fit_split(how: Normalize, pixels: bool, train: &Split) -> Result<Self> {
        let Some(st) = train.byte_stats() else { return Self::fit(how, pixels, &train.xs()?) };
        let n = st.n as f64;
        let (shift, scale): (Vec<f32>, Vec<f32>) = match how {
            Normalize::None | Normalize::Unit => return Ok(Self::Identity),
            _ if st.n == 0 => return Self::fit(how, pixels, &train.xs()?),
            Normalize::Standard => st
                .sum
                .iter()
                .zip(&st.sum_sq)
                .map(|(&s, &sq)| {
                    let mean = s as f64 / n;
                    let var = (sq as f64 / n - mean * mean).max(0.0);
                    ((mean / 255.0) as f32, (var.sqrt() / 255.0) as f32)
                })
                .unzip(),
        };
        let mut dims = train.dims().to_vec();
        dims[0] = 1;
        let scale = scale.into_iter().map(|s| if s > MIN_SCALE { s } else { 1.0 }).collect();
        Ok(Self::Affine {
            shift: Tensor::from_vec(shift, dims.clone(), &Device::Cpu)?,
            scale: Tensor::from_vec(scale, dims, &Device::Cpu)?,
        })
    }
}
