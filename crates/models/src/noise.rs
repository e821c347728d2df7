//! Input corruptions for denoising autoencoders, deterministic for a given seed.
//!
//! They live here, not in `bottleneck-data`, because the denoising model applies them in
//! `forward_t(xs, train = true)` (as candle's `Dropout` does) and this crate depends on no
//! other workspace crate.

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};

/// A corruption `x -> x̃`, written in configs as `{ kind = "gaussian", std = 0.3 }`,
/// `{ kind = "masking", fraction = 0.3 }` or `{ kind = "salt_and_pepper", fraction = 0.1 }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Noise {
    /// Adds independent N(0, std²) noise to every feature (no clipping).
    Gaussian {
        /// Standard deviation, >= 0.
        std: f64,
    },
    /// Sets each feature to 0 with probability `fraction`.
    Masking {
        /// Probability in [0, 1].
        fraction: f64,
    },
    /// Sets each feature with probability `fraction` to 0 or 1 (equally likely).
    SaltAndPepper {
        /// Probability in [0, 1].
        fraction: f64,
    },
}

impl Default for Noise {
    fn default() -> Self {
        Self::Gaussian { std: 0.3 }
    }
}

impl Noise {
    /// Checks the parameter range; `key` is where the corruption was configured.
    pub fn validate(&self, key: &str) -> Result<()> {
        let (field, v, ok, allowed) = match *self {
            Self::Gaussian { std } => ("std", std, std >= 0.0 && std.is_finite(), "a finite number >= 0"),
            Self::Masking { fraction } | Self::SaltAndPepper { fraction } => {
                ("fraction", fraction, (0.0..=1.0).contains(&fraction), "a probability in [0, 1]")
            }
        };
        if ok {
            Ok(())
        } else {
            Err(invalid(&format!("{key}.{field}"), v, allowed))
        }
    }

    /// Corrupts `xs` (f32, any shape, any device) with noise drawn from `rng`.
    pub fn apply(&self, xs: &Tensor, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let n = xs.elem_count();
        let dev = xs.device();
        let on = |values: Vec<f32>| -> Result<Tensor> {
            Ok(Tensor::from_vec(values, xs.shape(), &Device::Cpu)?.to_device(dev)?.to_dtype(xs.dtype())?)
        };
        match *self {
            Self::Gaussian { std } => {
                let normal = Normal::new(0.0f32, std as f32).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                let noise: Vec<f32> = (0..n).map(|_| normal.sample(rng)).collect();
                Ok((xs + on(noise)?)?)
            }
            Self::Masking { fraction } => {
                let keep: Vec<f32> = (0..n).map(|_| if rng.random_bool(fraction) { 0.0 } else { 1.0 }).collect();
                Ok((xs * on(keep)?)?)
            }
            Self::SaltAndPepper { fraction } => {
                // keep = 0 where a pixel is replaced; value = the replacement (0 or 1).
                let mut keep = vec![1f32; n];
                let mut value = vec![0f32; n];
                for i in 0..n {
                    if rng.random_bool(fraction) {
                        keep[i] = 0.0;
                        value[i] = if rng.random_bool(0.5) { 1.0 } else { 0.0 };
                    }
                }
                Ok(((xs * on(keep)?)? + on(value)?)?)
            }
        }
    }

    /// Corrupts `xs` with a fresh generator seeded by `seed`.
    pub fn apply_seeded(&self, xs: &Tensor, seed: u64) -> Result<Tensor> {
        self.apply(xs, &mut ChaCha8Rng::seed_from_u64(seed))
    }
}
