//! Seeded parameter initialisation.
//!
//! candle's CPU random number generator cannot be seeded, so a [`VarMap`] filled through
//! the usual `VarBuilder` differs run to run. [`seeded_var_builder`] fills the same
//! `VarMap` from a generator seeded by `(seed, variable name)`: the same seed gives the
//! same weights whatever the order in which layers are built.

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::{FanInOut, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

struct Seeded {
    map: VarMap,
    seed: u64,
}

/// FNV-1a, to turn a variable name into part of its seed.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn sample(init: Init, shape: &Shape, rng: &mut ChaCha8Rng) -> candle_core::Result<Vec<f32>> {
    let n = shape.elem_count();
    let err = |e: String| candle_core::Error::Msg(format!("initialiser: {e}"));
    let uniform = |lo: f64, up: f64, rng: &mut ChaCha8Rng| -> candle_core::Result<Vec<f32>> {
        if lo >= up {
            return Ok(vec![lo as f32; n]);
        }
        let d = Uniform::new(lo, up).map_err(|e| err(e.to_string()))?;
        Ok((0..n).map(|_| d.sample(rng) as f32).collect())
    };
    let normal = |mean: f64, std: f64, rng: &mut ChaCha8Rng| -> candle_core::Result<Vec<f32>> {
        let d = Normal::new(mean, std).map_err(|e| err(e.to_string()))?;
        Ok((0..n).map(|_| d.sample(rng) as f32).collect())
    };
    match init {
        Init::Const(c) => Ok(vec![c as f32; n]),
        Init::Uniform { lo, up } => uniform(lo, up, rng),
        Init::Randn { mean, stdev } => normal(mean, stdev, rng),
        Init::Kaiming { dist, fan, non_linearity } => {
            let fan = match fan {
                FanInOut::FanIn => FanInOut::FanIn.for_shape(shape),
                FanInOut::FanOut => FanInOut::FanOut.for_shape(shape),
            };
            let std = non_linearity.gain() / (fan as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => uniform(-(3f64.sqrt()) * std, 3f64.sqrt() * std, rng),
                NormalOrUniform::Normal => normal(0.0, std, rng),
            }
        }
    }
}

impl SimpleBackend for Seeded {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let mut map = self.map.data().lock().map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))?;
        if let Some(var) = map.get(name) {
            if var.shape() != &s {
                candle_core::bail!("shape mismatch for {name}: existing {:?}, requested {s:?}", var.shape());
            }
            return Ok(var.as_tensor().clone());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ name_hash(name));
        let values = sample(h, &s, &mut rng)?;
        let var = Var::from_tensor(&Tensor::from_vec(values, s, &Device::Cpu)?.to_dtype(dtype)?.to_device(dev)?)?;
        let t = var.as_tensor().clone();
        map.insert(name.to_string(), var);
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("`{name}` must be created with a shape (seeded VarMap)")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map.data().lock().is_ok_and(|m| m.contains_key(name))
    }
}

/// A `VarBuilder` that creates its variables in `map`, initialised from `seed`.
#[must_use]
pub fn seeded_var_builder(map: &VarMap, seed: u64, dtype: DType, device: &Device) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(Seeded { map: map.clone(), seed }), dtype, device.clone())
}
