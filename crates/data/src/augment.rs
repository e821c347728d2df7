//! Training-time transforms of image batches: random horizontal flip and random crop with
//! padding (torchvision's `RandomHorizontalFlip()` and `RandomCrop(size, padding=p)`).
//!
//! Each sample's draw depends only on (seed, epoch, its index in the training split), so a
//! run is reproducible and a resumed epoch sees the same transforms. The batcher applies
//! them to training batches only; validation and test data are never transformed.

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::DataConfig;
use crate::dataset::Dataset;
use crate::error::{DataError, Result};

/// The transforms of `data.random_flip` and `data.random_crop_padding`.
#[derive(Debug, Clone, PartialEq)]
pub struct Augment {
    /// Mirror left-right with probability 1/2.
    pub flip: bool,
    /// Shift by up to this many pixels in each direction, filling with black.
    pub pad: usize,
    /// `[c, h, w]` of a sample.
    shape: [usize; 3],
    /// What a black pixel becomes after the dataset's normalisation, per position
    /// (`c·h·w` values): the fill of the padding, as torchvision pads before normalising.
    fill: Vec<f32>,
    seed: u64,
}

impl Augment {
    /// The transforms `cfg` asks for on `data` (`None` when it asks for none). An error
    /// names the key when the samples are not images or the padding does not fit.
    pub fn new(cfg: &DataConfig, data: &Dataset, seed: u64) -> Result<Option<Self>> {
        if !cfg.random_flip && cfg.random_crop_padding == 0 {
            return Ok(None);
        }
        let key = if cfg.random_flip { "data.random_flip" } else { "data.random_crop_padding" };
        let &[c, h, w] = data.sample_shape.as_slice() else {
            return Err(DataError::InvalidConfig {
                key: key.into(),
                value: format!("for `{}`", data.name),
                allowed: format!(
                    "training transforms need image samples [c, h, w]; `{}` has samples of shape {:?}",
                    data.name, data.sample_shape
                ),
            });
        };
        let pad = cfg.random_crop_padding;
        if pad >= h.min(w) {
            return Err(DataError::InvalidConfig {
                key: "data.random_crop_padding".into(),
                value: pad.to_string(),
                allowed: format!("must be smaller than the image side ({h}×{w})"),
            });
        }
        let black = Tensor::zeros((1, c, h, w), candle_core::DType::F32, &Device::Cpu)?;
        let fill = data.normalizer.apply(&black)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(Some(Self { flip: cfg.random_flip, pad, shape: [c, h, w], fill, seed }))
    }

    /// The draw of sample `index` in `epoch`: (flipped, dy, dx).
    #[must_use]
    pub fn draw(&self, epoch: u64, index: u32) -> (bool, isize, isize) {
        let mixed = self.seed
            ^ epoch.wrapping_add(1).wrapping_mul(0xA076_1D64_78BD_642F)
            ^ u64::from(index).wrapping_add(1).wrapping_mul(0xE703_7ED1_A0B4_28DB);
        let mut rng = ChaCha8Rng::seed_from_u64(mixed);
        let flip = self.flip && rng.random_bool(0.5);
        let p = self.pad;
        let mut shift = || rng.random_range(0..=2 * p).cast_signed() - p.cast_signed();
        let (dy, dx) = if p > 0 { (shift(), shift()) } else { (0, 0) };
        (flip, dy, dx)
    }

    /// Transforms a batch `[b, c, h, w]` (on the CPU) whose rows are the training samples
    /// `indices`: output pixel (y, x) is input (y + dy, x + dx) of the (mirrored) image, or
    /// the fill where that falls outside.
    #[allow(clippy::many_single_char_names)]
    pub fn apply(&self, xs: &Tensor, indices: &[u32], epoch: u64) -> Result<Tensor> {
        let [c, h, w] = self.shape;
        let plane = h * w;
        let per = c * plane;
        let src = xs.flatten_all()?.to_vec1::<f32>()?;
        let mut out = vec![0f32; src.len()];
        for (i, &index) in indices.iter().enumerate() {
            let (flip, dy, dx) = self.draw(epoch, index);
            let (s, o) = (&src[i * per..(i + 1) * per], &mut out[i * per..(i + 1) * per]);
            for y in 0..h {
                for x in 0..w {
                    let (sy, sx) = (y.cast_signed() + dy, x.cast_signed() + dx);
                    let inside = (0..h.cast_signed()).contains(&sy) && (0..w.cast_signed()).contains(&sx);
                    for ch in 0..c {
                        let at = ch * plane + y * w + x;
                        o[at] = if inside {
                            let sx = if flip { w - 1 - sx as usize } else { sx as usize };
                            s[ch * plane + sy as usize * w + sx]
                        } else {
                            self.fill[at]
                        };
                    }
                }
            }
        }
        Ok(Tensor::from_vec(out, xs.dims(), &Device::Cpu)?)
    }
}
