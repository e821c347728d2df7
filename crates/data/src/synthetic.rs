//! Synthetic sets that need no files: Gaussian blobs, drawn shapes, and `sprites`, whose
//! generating factors are known and travel with the samples.

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::config::DataConfig;
use crate::dataset::{split_off, Factor, RawDataset, Split};
use crate::error::{DataError, Result};
use crate::source::Source;

/// Generates the synthetic source named `source.name`, seeded.
pub fn generate(source: &Source, cfg: &DataConfig, seed: u64) -> Result<RawDataset> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut factors = Vec::new();
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
        "sprites" => {
            let s = cfg.image_size;
            factors = sprite_factors();
            let all = sprites(cfg.samples, s, &mut rng)?;
            (all, vec![1, s, s], source.classes.iter().map(|c| (*c).to_string()).collect(), true)
        }
        other => {
            return Err(DataError::UnknownDataset { name: other.into(), known: "blobs, shapes, sprites".into() });
        }
    };
    let (train, test) = split_off(all, cfg.test_fraction, seed)?;
    Ok(RawDataset {
        name: source.name.into(),
        sample_shape,
        classes,
        feature_names: Vec::new(),
        factors,
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

/// The factors of `sprites`, in the order of its factor columns.
#[must_use]
pub fn sprite_factors() -> Vec<Factor> {
    let f = |name: &str, categories| Factor { name: name.into(), categories };
    vec![f("shape", SPRITE_SHAPES), f("scale", 0), f("orientation", 0), f("pos_x", 0), f("pos_y", 0)]
}

/// Shapes of `sprites`: square, ellipse, heart.
pub const SPRITE_SHAPES: usize = 3;

/// Sub-pixels per side when rendering a sprite (its edges are anti-aliased).
const SUPERSAMPLE: usize = 4;

/// `n` grey-scale `side`×`side` sprites in the manner of dSprites (Matthey et al. 2017):
/// a white shape on black drawn from five independent, uniformly sampled factors —
/// `shape` (0 square, 1 ellipse, 2 heart; also the label), `scale` in [0.5, 1],
/// `orientation` in [0, 2π) radians, and `pos_x`, `pos_y` in [0, 1] (0 is the left/top
/// edge of where the shape's centre may go, so that it always fits, a pixel clear of the
/// border). The factor values
/// are the split's `factors`. As in dSprites, the square looks the same every quarter
/// turn and the ellipse every half turn.
pub fn sprites(n: usize, side: usize, rng: &mut ChaCha8Rng) -> Result<Split> {
    let mut xs = vec![0f32; n * side * side];
    let mut factors = Vec::with_capacity(n * 5);
    let mut labels = Vec::with_capacity(n);
    for img in xs.chunks_exact_mut(side * side) {
        let shape = rng.random_range(0..SPRITE_SHAPES);
        let scale = rng.random_range(0.5f32..=1.0);
        let orientation = rng.random_range(0.0f32..std::f32::consts::TAU);
        let (px, py) = (rng.random_range(0.0f32..=1.0), rng.random_range(0.0f32..=1.0));
        labels.push(shape as u32);
        factors.extend([shape as f32, scale, orientation, px, py]);
        draw_sprite(img, side, shape, scale, orientation, (px, py));
    }
    let f = Tensor::from_vec(factors, (n, 5), &Device::Cpu)?;
    Split::new(Tensor::from_vec(xs, (n, 1, side, side), &Device::Cpu)?, Some(labels))?.with_factors(f)
}

/// Renders one sprite into `img` (`side`×`side`, row-major): each pixel is the share of
/// its sub-pixels inside the shape.
fn draw_sprite(img: &mut [f32], side: usize, shape: usize, scale: f32, orientation: f32, pos: (f32, f32)) {
    let s = side as f32;
    // The shape's size: a unit of `r` pixels; every shape lies within 1.15 r of its centre,
    // and its centre stays that far and a pixel more from the border.
    let r = 0.3 * s * scale;
    let reach = 1.15 * r + 1.0;
    let (cx, cy) = (reach + pos.0 * (s - 2.0 * reach), reach + pos.1 * (s - 2.0 * reach));
    let (sin, cos) = orientation.sin_cos();
    let step = 1.0 / SUPERSAMPLE as f32;
    for y in 0..side {
        for x in 0..side {
            let mut inside = 0usize;
            for sy in 0..SUPERSAMPLE {
                for sx in 0..SUPERSAMPLE {
                    let dx = x as f32 + (sx as f32 + 0.5) * step - cx;
                    let dy = y as f32 + (sy as f32 + 0.5) * step - cy;
                    // Into the shape's own frame (turned back by the orientation), in units of r.
                    let u = (cos * dx + sin * dy) / r;
                    let v = (-sin * dx + cos * dy) / r;
                    if in_shape(shape, u, v) {
                        inside += 1;
                    }
                }
            }
            img[y * side + x] = inside as f32 / (SUPERSAMPLE * SUPERSAMPLE) as f32;
        }
    }
}

/// Whether (u, v), in units of the shape's size with v pointing down, is inside `shape`.
fn in_shape(shape: usize, u: f32, v: f32) -> bool {
    match shape {
        0 => u.abs().max(v.abs()) <= 0.8,
        1 => u * u + (v / 0.5) * (v / 0.5) <= 1.0,
        _ => {
            // The heart curve (x² + y² − 1)³ = x²y³, point up: y flipped, shrunk to fit.
            let (hx, hy) = (u / 0.8, -v / 0.8 + 0.1);
            let ring = hx * hx + hy * hy - 1.0;
            ring.powi(3) - hx * hx * hy.powi(3) <= 0.0
        }
    }
}
