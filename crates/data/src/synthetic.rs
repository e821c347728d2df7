//! Synthetic sets that need no files: Gaussian blobs and drawn shapes.

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::config::DataConfig;
use crate::dataset::{split_off, RawDataset, Split};
use crate::error::{DataError, Result};
use crate::source::Source;

/// Generates the synthetic source named `source.name`, seeded.
pub fn generate(source: &Source, cfg: &DataConfig, seed: u64) -> Result<RawDataset> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (all, sample_shape, classes, pixels) = match source.name {
        "blobs" => {
            let all = blobs(cfg.samples, cfg.dim, cfg.classes, &mut rng)?;
            (all, vec![cfg.dim], (0..cfg.classes).map(|c| format!("blob {c}")).collect(), false)
        }
        "shapes" => {
            let s = cfg.image_size;
            let all = shapes(cfg.samples, s, &mut rng)?;
            (all, vec![1, s, s], source.classes.iter().map(|c| (*c).to_string()).collect(), true)
        }
        other => {
            return Err(DataError::UnknownDataset { name: other.into(), known: "blobs, shapes".into() });
        }
    };
    let (train, test) = split_off(&all, cfg.test_fraction, seed)?;
    Ok(RawDataset {
        name: source.name.into(),
        sample_shape,
        classes,
        feature_names: Vec::new(),
        location: "generated".into(),
        pixels,
        train,
        test,
    })
}

/// `n` points in `dim` dimensions around `classes` centres drawn from N(0, 4²); each
/// point is its centre plus N(0, 1) noise. Labels are the centre index.
pub fn blobs(n: usize, dim: usize, classes: usize, rng: &mut ChaCha8Rng) -> Result<Split> {
    let unit = Normal::new(0.0f32, 1.0).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let centres: Vec<f32> = (0..classes * dim).map(|_| 4.0 * unit.sample(rng)).collect();
    let mut xs = Vec::with_capacity(n * dim);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % classes;
        labels.push(c as u32);
        xs.extend(centres[c * dim..(c + 1) * dim].iter().map(|m| m + unit.sample(rng)));
    }
    Split::new(Tensor::from_vec(xs, (n, dim), &Device::Cpu)?, Some(labels))
}

/// `n` grey-scale `side`×`side` images in [0, 1], one of four shapes each (label = shape):
/// 0 square outline, 1 filled disc, 2 horizontal bar, 3 vertical bar; random position,
/// size and brightness, plus a little pixel noise.
pub fn shapes(n: usize, side: usize, rng: &mut ChaCha8Rng) -> Result<Split> {
    let mut xs = vec![0f32; n * side * side];
    let mut labels = Vec::with_capacity(n);
    let s = side as f32;
    for (i, img) in xs.chunks_exact_mut(side * side).enumerate() {
        let class = (i % 4) as u32;
        labels.push(class);
        let ink = rng.random_range(0.6f32..1.0);
        let extent = rng.random_range(0.25 * s..0.5 * s);
        let cx = rng.random_range(extent / 2.0 + 1.0..s - extent / 2.0 - 1.0);
        let cy = rng.random_range(extent / 2.0 + 1.0..s - extent / 2.0 - 1.0);
        let thick = (s / 10.0).max(1.5);
        for y in 0..side {
            for x in 0..side {
                let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                let h = extent / 2.0;
                let on = match class {
                    0 => dx.abs().max(dy.abs()) <= h && dx.abs().max(dy.abs()) >= h - thick,
                    1 => dx * dx + dy * dy <= h * h,
                    2 => dx.abs() <= h && dy.abs() <= thick / 2.0,
                    _ => dy.abs() <= h && dx.abs() <= thick / 2.0,
                };
                let noise = rng.random_range(0.0f32..0.05);
                img[y * side + x] = if on { ink - noise } else { noise };
            }
        }
    }
    Split::new(Tensor::from_vec(xs, (n, 1, side, side), &Device::Cpu)?, Some(labels))
}
