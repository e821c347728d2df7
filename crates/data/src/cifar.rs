//! CIFAR-10 binary batches: records of 1 label byte + 3x32x32 pixel bytes (CHW).

use std::path::Path;

use crate::dataset::{RawDataset, Split};
use crate::error::{DataError, Result};
use crate::source::{resolve_files, Source};

/// Image side.
pub const SIDE: usize = 32;
/// Bytes per record: one label + 3 channels of 32x32.
pub const RECORD: usize = 1 + 3 * SIDE * SIDE;

/// Reads one batch file into a split.
pub fn read_batch(path: &Path, classes: usize) -> Result<Split> {
    let (pixels, labels) = read_records(path, classes)?;
    Split::from_bytes(pixels, &[labels.len(), 3, SIDE, SIDE], Some(labels))
}

/// The pixel bytes (CHW, image after image) and labels of one batch file, checked.
fn read_records(path: &Path, classes: usize) -> Result<(Vec<u8>, Vec<u32>)> {
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
    Ok((pixels, labels))
}

/// Loads the five training batches and the test batch from `dir`.
pub fn load(source: &Source, dir: &Path) -> Result<RawDataset> {
    let files = resolve_files(source, dir)?;
    let classes = source.classes.len();
    let (train_files, test_file) = files.split_at(files.len() - 1);
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for path in train_files {
        let (p, l) = read_records(path, classes)?;
        pixels.extend_from_slice(&p);
        labels.extend(l);
    }
    Ok(RawDataset {
        name: source.name.into(),
        sample_shape: vec![3, SIDE, SIDE],
        classes: source.classes.iter().map(|c| (*c).to_string()).collect(),
        feature_names: Vec::new(),
        factors: Vec::new(),
        location: dir.into(),
        pixels: true,
        train: Split::from_bytes(pixels, &[labels.len(), 3, SIDE, SIDE], Some(labels))?,
        test: read_batch(&test_file[0], classes)?,
    })
}
