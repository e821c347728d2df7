//! MNIST-family datasets (fashion-mnist, mnist, kmnist) from IDX files.

use std::path::Path;

use crate::dataset::{RawDataset, Split};
use crate::error::{DataError, Result};
use crate::idx;
use crate::source::{resolve_files, Source};

/// Image side of every MNIST-family source.
pub const SIDE: usize = 28;

/// Loads the four IDX files of `source` from `dir` (train and test in parallel).
pub fn load(source: &Source, dir: &Path) -> Result<RawDataset> {
    let files = resolve_files(source, dir)?;
    let classes = source.classes.len();
    let (train, test) = std::thread::scope(|s| {
        let test = s.spawn(|| load_split(source, &files[2], &files[3], classes));
        let train = load_split(source, &files[0], &files[1], classes);
        (train, test.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    });
    Ok(RawDataset {
        name: source.name.into(),
        sample_shape: vec![1, SIDE, SIDE],
        classes: source.classes.iter().map(|c| (*c).to_string()).collect(),
        feature_names: Vec::new(),
        factors: Vec::new(),
        location: dir.into(),
        pixels: true,
        train: train?,
        test: test?,
    })
}

/// Loads one images file and its labels file, checking dimensions, counts and labels.
pub fn load_split(source: &Source, images: &Path, labels: &Path, classes: usize) -> Result<Split> {
    let imgs = idx::read_images(images)?;
    if imgs.dims[1..] != [SIDE, SIDE] {
        return Err(DataError::Dimensions {
            path: images.into(),
            source_name: source.name.into(),
            found: imgs.dims.clone(),
            expected: vec![imgs.dims[0], SIDE, SIDE],
        });
    }
    let labs = idx::read_labels(labels)?;
    let n = imgs.dims[0];
    if labs.dims[0] != n {
        return Err(DataError::CountMismatch {
            images: images.into(),
            n_images: n,
            labels: labels.into(),
            n_labels: labs.dims[0],
        });
    }
    if let Some((index, &label)) = labs.data.iter().enumerate().find(|(_, &l)| l as usize >= classes) {
        return Err(DataError::LabelRange { path: labels.into(), index, label: label.into(), classes });
    }
    let labels = labs.data.iter().map(|&l| u32::from(l)).collect();
    Split::from_bytes(imgs.data, &[n, 1, SIDE, SIDE], Some(labels))
}
