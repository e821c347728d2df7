//! Loaded datasets: splits as candle tensors, seeded train/validation split, subsets.

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::{DataConfig, Normalize};
use crate::error::{DataError, Result};
use crate::source::{self, Format, SearchPath, Source};
use crate::transform::Normalizer;

/// How a split holds its features.
#[derive(Clone)]
enum Store {
    /// f32 values, read as they are (tables and generated sets, normalised when the
    /// dataset is built).
    F32(Tensor),
    /// Pixel bytes, one per value (a value is `byte / 255`), with the normalisation
    /// applied when they are read: a quarter of the memory of f32.
    U8 {
        /// `n × features` bytes, row-major.
        bytes: Arc<Vec<u8>>,
        /// `[n, ...sample_shape]`.
        shape: Vec<usize>,
        /// Applied to the `[0, 1]` values on every read.
        norm: Normalizer,
    },
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::F32(xs) => write!(f, "F32({:?})", xs.dims()),
            Self::U8 { shape, norm, .. } => write!(f, "U8({shape:?}, {norm:?})"),
        }
    }
}

/// One split: the features of `n` samples (`[n, ...sample_shape]`, read as f32 through
/// [`Split::xs`], [`Split::rows`] or [`Split::range`]), optional labels and, for a set
/// with known generating factors, the factor values of every sample. Pixel sources keep
/// their bytes ([`Split::from_bytes`]) and turn them into f32 (and normalise them) only
/// when they are read, a batch at a time.
#[derive(Debug, Clone)]
pub struct Split {
    store: Store,
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

/// Values read at a time by the whole-split passes ([`Split::value_stats`]).
const CHUNK_VALUES: usize = 1 << 22;

/// `byte / 255` for every byte value (IEEE division, as the f32 loaders always did).
fn unit_lut() -> [f32; 256] {
    std::array::from_fn(|i| i as f32 / 255.0)
}

fn mismatch(what: String) -> DataError {
    DataError::Candle(candle_core::Error::Msg(what))
}

/// Gathers rows `indices` (each `per` bytes) of `bytes` into a new buffer.
fn gather_rows(bytes: &[u8], per: usize, indices: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(indices.len() * per);
    for &i in indices {
        out.extend_from_slice(&bytes[i as usize * per..(i as usize + 1) * per]);
    }
    out
}

/// Splits the rows (each `per` bytes) of `bytes` into (`kept`, `out`): the `out` rows are
/// copied out first and the kept ones moved down in place, so the peak is the buffer plus
/// the `out` rows, never two copies of everything. `kept` must be ascending and every
/// index in range (the callers' invariant: [`split_indices`] and the image loader's lists).
#[must_use]
pub(crate) fn partition_rows(mut bytes: Vec<u8>, per: usize, kept: &[u32], out: &[u32]) -> (Vec<u8>, Vec<u8>) {
    let held = gather_rows(&bytes, per, out);
    for (dst, &src) in kept.iter().enumerate() {
        let src = src as usize;
        // Ascending indices: a row only ever moves down onto rows already consumed.
        debug_assert!(dst <= src);
        if dst != src {
            bytes.copy_within(src * per..(src + 1) * per, dst * per);
        }
    }
    bytes.truncate(kept.len() * per);
    (bytes, held)
}

impl Split {
    /// Builds a split of f32 features `xs` (`[n, ...]`), checking that it has a row per label.
    pub fn new(xs: Tensor, labels: Option<Vec<u32>>) -> Result<Self> {
        Self::checked(Store::F32(xs.to_dtype(DType::F32)?), labels)
    }

    /// Builds a split of pixel bytes (`shape = [n, ...sample_shape]`, row-major), read as
    /// `byte / 255`; checks that the bytes fill the shape and that there is a row per label.
    pub fn from_bytes(bytes: Vec<u8>, shape: &[usize], labels: Option<Vec<u32>>) -> Result<Self> {
        let want: usize = shape.iter().product();
        if shape.is_empty() || bytes.len() != want {
            return Err(mismatch(format!("{} bytes do not fill a split of shape {shape:?}", bytes.len())));
        }
        Self::checked(Store::U8 { bytes: Arc::new(bytes), shape: shape.to_vec(), norm: Normalizer::Identity }, labels)
    }

    fn checked(store: Store, labels: Option<Vec<u32>>) -> Result<Self> {
        let split = Self { store, labels, factors: None };
        if let Some(l) = &split.labels {
            if l.len() != split.len() {
                return Err(mismatch(format!("split has {} samples but {} labels", split.len(), l.len())));
            }
        }
        Ok(split)
    }

    /// This split with its samples' factor values (`[n, factors]`).
    pub fn with_factors(self, factors: Tensor) -> Result<Self> {
        let (n, rows) = (self.len(), factors.dim(0)?);
        if rows != n {
            return Err(mismatch(format!("split has {n} samples but {rows} rows of factors")));
        }
        Ok(Self { factors: Some(factors), ..self })
    }

    /// `[n, ...sample_shape]`.
    #[must_use]
    pub fn dims(&self) -> &[usize] {
        match &self.store {
            Store::F32(xs) => xs.dims(),
            Store::U8 { shape, .. } => shape,
        }
    }

    /// Number of samples.
    #[must_use]
    pub fn len(&self) -> usize {
        self.dims().first().copied().unwrap_or(0)
    }

    /// True when the split holds no samples.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values per sample.
    #[must_use]
    pub fn features(&self) -> usize {
        self.dims()[1..].iter().product()
    }

    /// Bytes the features take in memory.
    #[must_use]
    pub fn stored_bytes(&self) -> usize {
        match &self.store {
            Store::F32(xs) => xs.elem_count() * DType::F32.size_in_bytes(),
            Store::U8 { bytes, .. } => bytes.len(),
        }
    }

    /// How the features are stored: `"u8"` (pixel bytes) or `"f32"`.
    #[must_use]
    pub fn stored_dtype(&self) -> &'static str {
        match &self.store {
            Store::F32(_) => "f32",
            Store::U8 { .. } => "u8",
        }
    }

    /// Every sample's features as f32, normalised: `[n, ...sample_shape]` (for pixel
    /// bytes this builds the whole f32 tensor; batches use [`Split::rows`]).
    pub fn xs(&self) -> Result<Tensor> {
        match &self.store {
            Store::F32(xs) => Ok(xs.clone()),
            Store::U8 { .. } => self.range(0, self.len()),
        }
    }

    /// Features flattened to `[n, features]`.
    pub fn flat(&self) -> Result<Tensor> {
        Ok(self.xs()?.flatten_from(1)?)
    }

    /// An error naming the first of `indices` past the end of the split.
    fn check_indices(&self, indices: &[u32]) -> Result<()> {
        let n = self.len();
        match indices.iter().find(|&&i| i as usize >= n) {
            Some(&bad) => Err(mismatch(format!("sample {bad} asked of a split of {n}"))),
            None => Ok(()),
        }
    }

    /// The features of samples `indices`, in that order, as f32: `[len, ...sample_shape]`.
    pub fn rows(&self, indices: &[u32]) -> Result<Tensor> {
        self.check_indices(indices)?;
        match &self.store {
            Store::F32(xs) => Ok(xs.index_select(&Tensor::from_slice(indices, indices.len(), &Device::Cpu)?, 0)?),
            Store::U8 { bytes, norm, .. } => {
                let per = self.features();
                let lut = unit_lut();
                let mut out = Vec::with_capacity(indices.len() * per);
                for &i in indices {
                    out.extend(bytes[i as usize * per..(i as usize + 1) * per].iter().map(|&b| lut[b as usize]));
                }
                self.finish(out, indices.len(), norm)
            }
        }
    }

    /// The features of samples `start..start + len` as f32 (a view for f32 storage).
    pub fn range(&self, start: usize, len: usize) -> Result<Tensor> {
        let n = self.len();
        if start + len > n {
            return Err(mismatch(format!("samples {start}..{} asked of a split of {n}", start + len)));
        }
        match &self.store {
            Store::F32(xs) => Ok(xs.narrow(0, start, len)?),
            Store::U8 { bytes, norm, .. } => {
                let per = self.features();
                let lut = unit_lut();
                let out = bytes[start * per..(start + len) * per].iter().map(|&b| lut[b as usize]).collect();
                self.finish(out, len, norm)
            }
        }
    }

    /// `len` rows of `[0, 1]` values as a normalised tensor of this split's sample shape.
    fn finish(&self, values: Vec<f32>, len: usize, norm: &Normalizer) -> Result<Tensor> {
        let mut shape = self.dims().to_vec();
        shape[0] = len;
        norm.apply(&Tensor::from_vec(values, shape, &Device::Cpu)?)
    }

    /// The samples at `indices`, in that order (a copy).
    pub fn select(&self, indices: &[u32]) -> Result<Self> {
        let labels = self.labels.as_ref().map(|l| indices.iter().map(|&i| l[i as usize]).collect());
        let idx = Tensor::from_slice(indices, indices.len(), &Device::Cpu)?;
        let factors = self.factors.as_ref().map(|f| f.index_select(&idx, 0)).transpose()?;
        let store = match &self.store {
            Store::F32(_) => Store::F32(self.rows(indices)?),
            Store::U8 { bytes, shape, norm } => {
                self.check_indices(indices)?;
                let mut shape = shape.clone();
                shape[0] = indices.len();
                Store::U8 { bytes: Arc::new(gather_rows(bytes, self.features(), indices)), shape, norm: norm.clone() }
            }
        };
        Ok(Self { store, labels, factors })
    }

    /// The first `n` samples (all when `n` is 0 or larger than the split); pixel bytes
    /// are cut in place when nothing else shares them.
    pub fn head(self, n: usize) -> Result<Self> {
        if n == 0 || n >= self.len() {
            return Ok(self);
        }
        let labels = self.labels.map(|mut l| {
            l.truncate(n);
            l
        });
        let factors = self.factors.map(|f| f.narrow(0, 0, n)).transpose()?;
        let store = match self.store {
            Store::F32(xs) => Store::F32(xs.narrow(0, 0, n)?),
            Store::U8 { bytes, mut shape, norm } => {
                let per: usize = shape[1..].iter().product();
                let mut bytes = Arc::unwrap_or_clone(bytes);
                bytes.truncate(n * per);
                bytes.shrink_to_fit();
                shape[0] = n;
                Store::U8 { bytes: Arc::new(bytes), shape, norm }
            }
        };
        Ok(Self { store, labels, factors })
    }

    /// Splits into the samples `kept` and `out`, each in the order given. When `kept` is
    /// ascending and the two hold every sample once (as [`split_off`] makes them), pixel
    /// bytes not shared with another split are moved in place, so splitting costs the
    /// memory of the `out` part only; otherwise both parts are copies.
    pub fn partition(self, kept: &[u32], out: &[u32]) -> Result<(Self, Self)> {
        self.check_indices(kept)?;
        self.check_indices(out)?;
        let in_place = kept.len() + out.len() == self.len() && kept.windows(2).all(|w| w[0] < w[1]);
        let part = |idx: &[u32]| -> Result<(Option<Vec<u32>>, Option<Tensor>)> {
            let labels = self.labels.as_ref().map(|l| idx.iter().map(|&i| l[i as usize]).collect());
            let t = Tensor::from_slice(idx, idx.len(), &Device::Cpu)?;
            Ok((labels, self.factors.as_ref().map(|f| f.index_select(&t, 0)).transpose()?))
        };
        let ((kl, kf), (ol, of)) = (part(kept)?, part(out)?);
        let (ks, os) = match self.store {
            Store::U8 { bytes, shape, norm } if in_place => {
                let per: usize = shape[1..].iter().product();
                let (kb, ob) = partition_rows(Arc::unwrap_or_clone(bytes), per, kept, out);
                let with_rows = |rows: usize| {
                    let mut s = shape.clone();
                    s[0] = rows;
                    s
                };
                (
                    Store::U8 { bytes: Arc::new(kb), shape: with_rows(kept.len()), norm: norm.clone() },
                    Store::U8 { bytes: Arc::new(ob), shape: with_rows(out.len()), norm },
                )
            }
            store => {
                let whole = Self { store, labels: None, factors: None };
                (whole.select(kept)?.store, whole.select(out)?.store)
            }
        };
        Ok((Self { store: ks, labels: kl, factors: kf }, Self { store: os, labels: ol, factors: of }))
    }

    /// This split read through `norm` (fitted elsewhere, on a training split): f32
    /// features are mapped now, pixel bytes keep their bytes and map every read.
    pub fn normalized(&self, norm: &Normalizer) -> Result<Self> {
        let store = match &self.store {
            Store::F32(xs) => Store::F32(norm.apply(xs)?),
            Store::U8 { bytes, shape, norm: Normalizer::Identity } => {
                Store::U8 { bytes: bytes.clone(), shape: shape.clone(), norm: norm.clone() }
            }
            Store::U8 { .. } => {
                return Err(mismatch("a split of pixel bytes is normalised once, not twice".into()));
            }
        };
        Ok(Self { store, labels: self.labels.clone(), factors: self.factors.clone() })
    }

    /// Per-feature sums and sums of squares of the stored bytes (exact integers), or
    /// `None` for f32 storage.
    pub(crate) fn byte_stats(&self) -> Option<ByteStats> {
        let Store::U8 { bytes, .. } = &self.store else { return None };
        let per = self.features();
        let mut st = ByteStats { sum: vec![0; per], sum_sq: vec![0; per], n: self.len() };
        for row in bytes.chunks_exact(per.max(1)) {
            for (j, &b) in row.iter().enumerate() {
                st.sum[j] += u64::from(b);
                st.sum_sq[j] += u64::from(b) * u64::from(b);
            }
        }
        Some(st)
    }

    /// Minimum, maximum and mean over every feature value (`None` for an empty split),
    /// read a few million values at a time. The mean sums rows in f32 and rows in f64, so
    /// it stays exact enough for 47M values.
    pub fn value_stats(&self) -> Result<Option<(f32, f32, f64)>> {
        let n = self.len();
        if n == 0 {
            return Ok(None);
        }
        let chunk = (CHUNK_VALUES / self.features().max(1)).max(1);
        let (mut min, mut max, mut sum) = (f32::INFINITY, f32::NEG_INFINITY, 0f64);
        for start in (0..n).step_by(chunk) {
            let flat = self.range(start, chunk.min(n - start))?.flatten_from(1)?;
            min = min.min(flat.min(1)?.min(0)?.to_scalar::<f32>()?);
            max = max.max(flat.max(1)?.max(0)?.to_scalar::<f32>()?);
            sum += flat.sum(1)?.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
        }
        Ok(Some((min, max, sum / (n * self.features()) as f64)))
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

/// Exact per-feature statistics of a split of pixel bytes.
#[derive(Debug, Clone)]
pub(crate) struct ByteStats {
    /// Σ byte per feature.
    pub sum: Vec<u64>,
    /// Σ byte² per feature.
    pub sum_sq: Vec<u64>,
    /// Samples summed.
    pub n: usize,
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
        let (train, val) = split_off(raw.train, val_fraction, seed)?;
        let normalizer = Normalizer::fit_split(normalize, raw.pixels, &train)?;
        Ok(Self {
            name: raw.name,
            sample_shape: raw.sample_shape,
            classes: raw.classes,
            factors: raw.factors,
            train: train.normalized(&normalizer)?,
            val: val.normalized(&normalizer)?,
            test: raw.test.normalized(&normalizer)?,
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
pub fn split_off(split: Split, fraction: f64, seed: u64) -> Result<(Split, Split)> {
    let (kept, out) = split_indices(split.len(), fraction, seed);
    if out.is_empty() {
        let empty = split.select(&[])?;
        return Ok((split, empty));
    }
    split.partition(&kept, &out)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// The same 7 samples of 2×3 pixels twice: as bytes, and as the f32 tensor of
    /// `byte / 255` that the loaders built before bytes were kept.
    fn pair() -> (Split, Split) {
        let bytes: Vec<u8> = (0..7 * 6).map(|i| (i * 37 % 256) as u8).collect();
        let labels: Vec<u32> = (0..7).map(|i| i % 3).collect();
        let f: Vec<f32> = bytes.iter().map(|&b| f32::from(b) / 255.0).collect();
        let f32s = Split::new(Tensor::from_vec(f, (7, 1, 2, 3), &Device::Cpu).unwrap(), Some(labels.clone())).unwrap();
        (Split::from_bytes(bytes, &[7, 1, 2, 3], Some(labels)).unwrap(), f32s)
    }

    #[test]
    fn bytes_read_exactly_as_the_f32_split() {
        let (u8s, f32s) = pair();
        assert_eq!((u8s.stored_dtype(), u8s.stored_bytes(), f32s.stored_bytes()), ("u8", 42, 168));
        assert_eq!(u8s.dims(), f32s.dims());
        assert_eq!(values(&u8s.xs().unwrap()), values(&f32s.xs().unwrap()));
        assert_eq!(values(&u8s.rows(&[6, 0, 3, 3]).unwrap()), values(&f32s.rows(&[6, 0, 3, 3]).unwrap()));
        assert_eq!(u8s.rows(&[6, 0]).unwrap().dims(), [2, 1, 2, 3]);
        assert_eq!(values(&u8s.range(2, 3).unwrap()), values(&f32s.range(2, 3).unwrap()));
        for (a, b) in [
            (u8s.select(&[5, 1]).unwrap(), f32s.select(&[5, 1]).unwrap()),
            (u8s.clone().head(4).unwrap(), f32s.clone().head(4).unwrap()),
        ] {
            assert_eq!((a.dims(), &a.labels), (b.dims(), &b.labels));
            assert_eq!(values(&a.xs().unwrap()), values(&b.xs().unwrap()));
        }
        assert!(u8s.rows(&[7]).is_err(), "a sample past the end is an error");
        assert!(u8s.range(5, 3).is_err());
        assert!(Split::from_bytes(vec![0; 5], &[1, 2, 3], None).is_err(), "5 bytes cannot fill 1×2×3");
    }

    #[test]
    fn partition_moves_rows_in_place_and_keeps_shared_bytes_intact() {
        let rows: Vec<u8> = (0..15).collect();
        let (kept, out) = partition_rows(rows, 3, &[0, 2, 4], &[1, 3]);
        assert_eq!(kept, [0, 1, 2, 6, 7, 8, 12, 13, 14]);
        assert_eq!(out, [3, 4, 5, 9, 10, 11]);
        // Dropping rows only (the images loader closes the gaps of skipped files this way).
        assert_eq!(partition_rows((0..6).collect(), 2, &[1, 2], &[]), (vec![2, 3, 4, 5], vec![]));

        let (u8s, f32s) = pair();
        let shared = u8s.clone();
        let (a, b) = u8s.partition(&[0, 1, 4, 6], &[2, 3, 5]).unwrap();
        let (c, d) = f32s.partition(&[0, 1, 4, 6], &[2, 3, 5]).unwrap();
        for (x, y) in [(&a, &c), (&b, &d)] {
            assert_eq!((x.stored_dtype(), x.dims(), &x.labels), ("u8", y.dims(), &y.labels));
            assert_eq!(values(&x.xs().unwrap()), values(&y.xs().unwrap()));
        }
        assert_eq!(values(&shared.xs().unwrap()), values(&pair().1.xs().unwrap()), "a clone keeps its rows");
        // Any other order is copied, not moved; a sample past the end is an error.
        let (a, b) = shared.clone().partition(&[4, 0], &[6]).unwrap();
        assert_eq!(values(&a.xs().unwrap()), values(&shared.rows(&[4, 0]).unwrap()));
        assert_eq!(values(&b.xs().unwrap()), values(&shared.rows(&[6]).unwrap()));
        assert!(shared.partition(&[0, 1, 2, 3, 4, 5], &[7]).is_err());
    }

    #[test]
    fn pixel_bytes_are_normalised_once_on_read() {
        let (u8s, f32s) = pair();
        let norm = Normalizer::fit_split(Normalize::Standard, true, &u8s).unwrap();
        let from_f32 = Normalizer::fit(Normalize::Standard, true, &f32s.xs().unwrap()).unwrap();
        let (Normalizer::Affine { shift: a, scale: b }, Normalizer::Affine { shift: c, scale: d }) = (&norm, &from_f32)
        else {
            panic!("standard is affine")
        };
        for (x, y) in values(a).iter().chain(&values(b)).zip(values(c).iter().chain(&values(d))) {
            assert!((x - y).abs() < 1e-6, "{x} vs {y}");
        }
        let read = u8s.normalized(&norm).unwrap();
        let want = values(&norm.apply(&f32s.rows(&[3, 1]).unwrap()).unwrap());
        assert_eq!(values(&read.rows(&[3, 1]).unwrap()), want);
        assert!(read.normalized(&norm).is_err(), "bytes are normalised once");
        assert!(matches!(Normalizer::fit_split(Normalize::Unit, true, &u8s).unwrap(), Normalizer::Identity));
    }
}
