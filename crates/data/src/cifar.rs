//! CIFAR-10 binary batches: records of 1 label byte + 3x32x32 pixel bytes (CHW).

use std::path::Path;

use candle_core::Tensor;

use crate::dataset::{bytes_to_unit_tensor, RawDataset, Split};
use crate::error::{DataError, Result};
use crate::source::{resolve_files, Source};

/// Image side.
pub const SIDE: usize = 32;
/// Bytes per record: one label + 3 channels of 32x32.
pub const RECORD: usize = 1 + 3 * SIDE * SIDE;

/// Reads one batch file into a split.
pub fn read_batch(path: &Path, classes: usize) -> Result<Split> {
    let bytes = fs_err::read(path)?;
    if bytes.is_empty() {
        return Err(DataError::Empty { path: path.into() });
    }
    if bytes.len() % RECORD != 0 {
        return Err(DataError::CifarSize { path: path.into(), len: bytes.len(), record: RECORD });
    }
    let n = bytes.len() / RECORD;
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * (RECORD - 1));
    for (index, rec) in bytes.chunks_exact(RECORD).enumerate() {
        let label = u32::from(rec[0]);
        if label as usize >= classes {
            return Err(DataError::LabelRange { path: path.into(), index, label, classes });
        }
        labels.push(label);
        pixels.extend_from_slice(&rec[1..]);
    }
    Split::new(bytes_to_unit_tensor(&pixels, &[n, 3, SIDE, SIDE])?, Some(labels))
}

/// Loads the five training batches and the test batch from `dir`.
pub fn load(source: &Source, dir: &Path) -> Result<RawDataset> {
    let files = resolve_files(source, dir)?;
    let classes = source.classes.len();
    let (train_files, test_file) = files.split_at(files.len() - 1);
    let parts = train_files.iter().map(|p| read_batch(p, classes)).collect::<Result<Vec<_>>>()?;
    let xs = Tensor::cat(&parts.iter().map(|s| &s.xs).collect::<Vec<_>>(), 0)?;
    let labels = parts.iter().flat_map(|s| s.labels.iter().flatten().copied()).collect();
    Ok(RawDataset {
        name: source.name.into(),
        sample_shape: vec![3, SIDE, SIDE],
        classes: source.classes.iter().map(|c| (*c).to_string()).collect(),
        feature_names: Vec::new(),
        factors: Vec::new(),
        location: dir.into(),
        pixels: true,
        train: Split::new(xs, Some(labels))?,
        test: read_batch(&test_file[0], classes)?,
    })
}
