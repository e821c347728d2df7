//! Loaded datasets: splits as candle tensors, seeded train/validation split, subsets.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::{DataConfig, Normalize};
use crate::error::{DataError, Result};
use crate::source::{self, Format, SearchPath, Source};
use crate::transform::Normalizer;

/// One split: features as an f32 tensor `[n, ...sample_shape]`, optional labels and, for
/// a set with known generating factors, the factor values of every sample.
#[derive(Debug, Clone)]
pub struct Split {
    /// Features, `[n, ...sample_shape]`, f32, on the CPU.
    pub xs: Tensor,
    /// Class labels, one per sample, when the source has them.
    pub labels: Option<Vec<u32>>,
    /// Generating factors, `[n, factors]` f32 (a categorical factor as its index), in the
    /// order of the dataset's [`Factor`] list; `None` when the source has none.
    pub factors: Option<Tensor>,
}

/// A known generating factor of a synthetic set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Factor {
    /// Its name (`shape`, `scale`, `orientation`, `pos_x`, `pos_y`).
    pub name: String,
    /// Number of categories of a categorical factor; 0 for a continuous one.
    pub categories: usize,
}

impl Split {
    /// Builds a split, checking that `xs` has `n` rows to match `labels`.
    pub fn new(xs: Tensor, labels: Option<Vec<u32>>) -> Result<Self> {
        if let Some(l) = &labels {
            let n = xs.dim(0)?;
            if l.len() != n {
                return Err(DataError::Candle(candle_core::Error::Msg(format!(
                    "split has {n} samples but {} labels",
                    l.len()
                ))));
            }
        }
        Ok(Self { xs, labels, factors: None })
    }

    /// This split with its samples' factor values (`[n, factors]`).
    pub fn with_factors(self, factors: Tensor) -> Result<Self> {
        let (n, rows) = (self.len(), factors.dim(0)?);
        if rows != n {
            return Err(DataError::Candle(candle_core::Error::Msg(format!(
                "split has {n} samples but {rows} rows of factors"
            ))));
        }
        Ok(Self { factors: Some(factors), ..self })
    }

    /// Number of samples.
    #[must_use]
    pub fn len(&self) -> usize {
        self.xs.dims().first().copied().unwrap_or(0)
    }

    /// True when the split holds no samples.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples at `indices`, in that order.
    pub fn select(&self, indices: &[u32]) -> Result<Self> {
        let idx = Tensor::from_slice(indices, indices.len(), &Device::Cpu)?;
        let xs = self.xs.index_select(&idx, 0)?;
        let labels = self.labels.as_ref().map(|l| indices.iter().map(|&i| l[i as usize]).collect());
        let factors = self.factors.as_ref().map(|f| f.index_select(&idx, 0)).transpose()?;
        Ok(Self { xs, labels, factors })
    }

    /// The first `n` samples (all when `n` is 0 or larger than the split).
    pub fn head(&self, n: usize) -> Result<Self> {
        if n == 0 || n >= self.len() {
            return Ok(self.clone());
        }
        Ok(Self {
            xs: self.xs.narrow(0, 0, n)?,
            labels: self.labels.as_ref().map(|l| l[..n].to_vec()),
            factors: self.factors.as_ref().map(|f| f.narrow(0, 0, n)).transpose()?,
        })
    }

    /// Features flattened to `[n, features]` (a view; no copy for contiguous data).
    pub fn flat(&self) -> Result<Tensor> {
        Ok(self.xs.flatten_from(1)?)
    }

    /// Minimum, maximum and mean over every feature value (`None` for an empty split).
    /// The mean sums rows in f32 and rows in f64, so it stays exact enough for 47M values.
    pub fn value_stats(&self) -> Result<Option<(f32, f32, f64)>> {
        if self.is_empty() {
            return Ok(None);
        }
        let flat = self.xs.flatten_from(1)?;
        let min = flat.min(1)?.min(0)?.to_scalar::<f32>()?;
        let max = flat.max(1)?.max(0)?.to_scalar::<f32>()?;
        let sum = flat.sum(1)?.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
        Ok(Some((min, max, sum / self.xs.elem_count() as f64)))
    }

    /// Count of each label `0..classes` (empty without labels).
    #[must_use]
    pub fn label_histogram(&self, classes: usize) -> Vec<usize> {
        let mut h = vec![0; classes];
        for &l in self.labels.iter().flatten() {
            if let Some(c) = h.get_mut(l as usize) {
                *c += 1;
            }
        }
        h
    }
}

/// A dataset as its source provides it: a training and a test split.
#[derive(Debug, Clone)]
pub struct RawDataset {
    /// Source name.
    pub name: String,
    /// Shape of one sample: `[c, h, w]` for images, `[features]` for tables.
    pub sample_shape: Vec<usize>,
    /// Class names, index = label (empty when unlabelled).
    pub classes: Vec<String>,
    /// Feature names (tables) — empty for images.
    pub feature_names: Vec<String>,
    /// Known generating factors (synthetic sets such as `sprites`); their values are the
    /// splits' `factors`.
    pub factors: Vec<Factor>,
    /// Where the data came from (a directory, a file or "generated").
    pub location: PathBuf,
    /// True when features are pixels already scaled from bytes to [0, 1].
    pub pixels: bool,
    /// The training split.
    pub train: Split,
    /// The test split.
    pub test: Split,
}

impl RawDataset {
    /// Loads the source named in `cfg` from wherever the search path finds it.
    pub fn load(cfg: &DataConfig, seed: u64) -> Result<Self> {
        Self::load_from(cfg, seed, &SearchPath::from_env(&cfg.dir))
    }

    /// Like [`RawDataset::load`] with an explicit search path.
    pub fn load_from(cfg: &DataConfig, seed: u64, search: &SearchPath) -> Result<Self> {
        cfg.validate()?;
        let src: &Source = source::find(&cfg.name)?;
        let raw = match src.format {
            Format::Idx => crate::mnist::load(src, &search.locate(src)?)?,
            Format::Cifar10 => crate::cifar::load(src, &search.locate(src)?)?,
            Format::Csv | Format::Parquet => crate::table::load(src, cfg, seed)?,
            Format::Synthetic => crate::synthetic::generate(src, cfg, seed)?,
            Format::Hub => crate::hub::load(src, &cfg.repo)?,
            Format::Images => crate::images::load(src, cfg, seed)?,
        };
        Ok(Self { train: raw.train.head(cfg.train_subset)?, test: raw.test.head(cfg.test_subset)?, ..raw })
    }
}

/// A dataset ready for training: seeded train/validation split, features normalised with
/// statistics fitted on the training split only.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Source name.
    pub name: String,
    /// Shape of one sample.
    pub sample_shape: Vec<usize>,
    /// Class names, index = label.
    pub classes: Vec<String>,
    /// Known generating factors (their values are the splits' `factors`).
    pub factors: Vec<Factor>,
    /// Training split (after the validation hold-out).
    pub train: Split,
    /// Validation split (`data.val_fraction` of the source's training split).
    pub val: Split,
    /// Test split.
    pub test: Split,
    /// The fitted normalisation (apply it to new data; invert it for display).
    pub normalizer: Normalizer,
}

impl Dataset {
    /// Loads, splits and normalises the dataset described by `cfg`.
    pub fn load(cfg: &DataConfig, seed: u64) -> Result<Self> {
        Self::from_raw(RawDataset::load(cfg, seed)?, cfg.val_fraction, cfg.normalize, seed)
    }

    /// Splits and normalises an already loaded dataset.
    pub fn from_raw(raw: RawDataset, val_fraction: f64, normalize: Normalize, seed: u64) -> Result<Self> {
        let (train, val) = split_off(&raw.train, val_fraction, seed)?;
        let normalizer = Normalizer::fit(normalize, raw.pixels, &train.xs)?;
        Ok(Self {
            name: raw.name,
            sample_shape: raw.sample_shape,
            classes: raw.classes,
            factors: raw.factors,
            train: normalizer.apply_split(&train)?,
            val: normalizer.apply_split(&val)?,
            test: normalizer.apply_split(&raw.test)?,
            normalizer,
        })
    }

    /// Number of features per sample (product of the sample shape).
    #[must_use]
    pub fn features(&self) -> usize {
        self.sample_shape.iter().product()
    }
}

/// A seeded permutation of `0..n`.
#[must_use]
pub fn permutation(n: usize, seed: u64) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..n as u32).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    idx
}

/// Splits `split` into (kept, held out) with `fraction` of the samples held out, chosen
/// by a seeded permutation; both parts keep the original order.
pub fn split_off(split: &Split, fraction: f64, seed: u64) -> Result<(Split, Split)> {
    let n = split.len();
    let (kept, out) = split_indices(n, fraction, seed);
    if out.is_empty() {
        let empty = split.select(&[])?;
        return Ok((split.clone(), empty));
    }
    Ok((split.select(&kept)?, split.select(&out)?))
}

/// The indices [`split_off`] keeps and holds out of `n` samples, each in ascending order.
#[must_use]
pub fn split_indices(n: usize, fraction: f64, seed: u64) -> (Vec<u32>, Vec<u32>) {
    let n_out = ((n as f64) * fraction).round() as usize;
    if n_out == 0 {
        return ((0..n as u32).collect(), Vec::new());
    }
    let perm = permutation(n, seed ^ 0x005e_ed0f_5b1d);
    let mut out: Vec<u32> = perm[..n_out].to_vec();
    let mut kept: Vec<u32> = perm[n_out..].to_vec();
    out.sort_unstable();
    kept.sort_unstable();
    (kept, out)
}

/// Builds an f32 tensor `[n, ...shape]` from bytes, scaled to [0, 1].
pub fn bytes_to_unit_tensor(bytes: &[u8], shape: &[usize]) -> Result<Tensor> {
    let lut: [f32; 256] = std::array::from_fn(|i| i as f32 / 255.0);
    let data: Vec<f32> = bytes.iter().map(|&b| lut[b as usize]).collect();
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
}
