//! The real Fashion-MNIST from Debian's `dataset-fashion-mnist` package.

// These tests expect exact values (masks, bytes / 255), so exact float comparison is meant.
#![allow(clippy::float_cmp)]

mod common;

use std::io::Read;

use bottleneck_data::{DataConfig, Dataset, RawDataset, SearchPath};

fn search() -> SearchPath {
    SearchPath {
        config_dir: Some(common::fashion_mnist_dir()),
        env_dir: None,
        system_root: "/nonexistent".into(),
        cache_root: None,
    }
}

#[test]
fn fashion_mnist_has_the_published_shape_and_balance() {
    let ds = RawDataset::load_from(&DataConfig::named("fashion-mnist"), 0, &search()).unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (60_000, 10_000));
    assert_eq!(ds.sample_shape, [1, 28, 28]);
    assert_eq!(ds.train.xs().unwrap().dims(), [60_000, 1, 28, 28]);
    assert_eq!(ds.train.label_histogram(10), vec![6000; 10]);
    assert_eq!(ds.test.label_histogram(10), vec![1000; 10]);
    assert_eq!(ds.classes[9], "Ankle boot");

    // Mean and range, checked against the raw bytes decoded here with flate2 alone.
    let mut raw = Vec::new();
    let file = std::fs::File::open(common::fashion_mnist_dir().join("t10k-images-idx3-ubyte.gz")).unwrap();
    flate2::read::GzDecoder::new(file).read_to_end(&mut raw).unwrap();
    let pixels = &raw[16..];
    assert_eq!(pixels.len(), 10_000 * 784);
    let mean = pixels.iter().map(|&b| f64::from(b)).sum::<f64>() / pixels.len() as f64 / 255.0;
    let (min, max, ours) = ds.test.value_stats().unwrap().unwrap();
    assert!((ours - mean).abs() < 1e-5, "mean {ours} vs {mean}");
    assert_eq!((min, max), (0.0, 1.0));
}

#[test]
fn subset_split_and_standardise_real_data() {
    let cfg = DataConfig {
        train_subset: 5000,
        test_subset: 1000,
        val_fraction: 0.2,
        normalize: bottleneck_data::Normalize::Standard,
        ..DataConfig::named("fashion-mnist")
    };
    let raw = RawDataset::load_from(&cfg, 0, &search()).unwrap();
    let ds = Dataset::from_raw(raw, cfg.val_fraction, cfg.normalize, 0).unwrap();
    assert_eq!((ds.train.len(), ds.val.len(), ds.test.len()), (4000, 1000, 1000));
    let mean = ds.train.xs().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(mean.abs() < 1e-4, "standardised train mean {mean}");
}

#[test]
fn env_dir_is_searched_before_the_system_folder() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_mnist_dir(&tmp.path().join("fashion-mnist"), 12, 8, true);
    let sp = SearchPath {
        config_dir: None,
        env_dir: Some(tmp.path().into()),
        system_root: "/usr/share/datasets".into(),
        cache_root: None,
    };
    let ds = RawDataset::load_from(&DataConfig::named("fashion-mnist"), 0, &sp).unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (12, 8));
    assert_eq!(ds.location, tmp.path().join("fashion-mnist"));
}

/// The file's pixel bytes (after the 16-byte IDX header), decoded here with flate2 alone.
fn idx_pixels(file: &str) -> Vec<u8> {
    let mut raw = Vec::new();
    let f = std::fs::File::open(common::fashion_mnist_dir().join(file)).unwrap();
    flate2::read::GzDecoder::new(f).read_to_end(&mut raw).unwrap();
    raw.split_off(16)
}

#[test]
fn pixels_are_kept_as_bytes_and_every_batch_reads_them_exactly() {
    use bottleneck_data::{dataset::split_indices, Batcher, Normalize, Normalizer};
    let raw = RawDataset::load_from(&DataConfig::named("fashion-mnist"), 0, &search()).unwrap();
    // One byte a pixel: a quarter of the f32 tensor's 188,160,000 bytes.
    assert_eq!((raw.train.stored_dtype(), raw.train.stored_bytes()), ("u8", 60_000 * 784));
    assert_eq!(raw.test.stored_bytes(), 10_000 * 784);
    let file = idx_pixels("train-images-idx3-ubyte.gz");
    let (kept, held) = split_indices(60_000, 0.1, 7);

    // Batches of the split (shuffled, as training reads them) are the file's bytes / 255,
    // whichever rows the seeded validation split moved where.
    let ds = Dataset::from_raw(raw.clone(), 0.1, Normalize::Unit, 7).unwrap();
    assert_eq!((ds.train.stored_bytes(), ds.val.stored_bytes()), (54_000 * 784, 6_000 * 784));
    for (split, rows) in [(&ds.train, &kept), (&ds.val, &held)] {
        for batch in Batcher::new(split, 4096).shuffled(7, 2).take(3) {
            let batch = batch.unwrap();
            let xs: Vec<Vec<f32>> = batch.xs.flatten_from(1).unwrap().to_vec2().unwrap();
            for (x, &i) in xs.iter().zip(&batch.indices) {
                let row = rows[i as usize] as usize;
                let want: Vec<f32> = file[row * 784..(row + 1) * 784].iter().map(|&b| f32::from(b) / 255.0).collect();
                assert_eq!(x, &want, "training row {row}");
            }
        }
    }

    // Standardisation fitted from the bytes (integer sums) matches a two-pass f64
    // computation over the same training rows of the file, and batches are mapped with it.
    let std = Dataset::from_raw(raw, 0.1, Normalize::Standard, 7).unwrap();
    let Normalizer::Affine { shift, scale } = &std.normalizer else { panic!("standard is affine") };
    let m: Vec<f32> = shift.flatten_all().unwrap().to_vec1().unwrap();
    let s: Vec<f32> = scale.flatten_all().unwrap().to_vec1().unwrap();
    for j in 0..784 {
        let column: Vec<f64> = kept.iter().map(|&r| f64::from(file[r as usize * 784 + j]) / 255.0).collect();
        let mean = column.iter().sum::<f64>() / column.len() as f64;
        let sd = (column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / column.len() as f64).sqrt();
        // A constant pixel keeps scale 1.
        let sd = if sd > 1e-8 { sd } else { 1.0 };
        assert!((f64::from(m[j]) - mean).abs() < 1e-6, "pixel {j}: mean {} vs {mean}", m[j]);
        assert!((f64::from(s[j]) - sd).abs() < 1e-6 * (1.0 + sd), "pixel {j}: scale {} vs {sd}", s[j]);
    }
    let first = std.test.range(0, 2).unwrap().flatten_from(1).unwrap().to_vec2::<f32>().unwrap();
    let test = idx_pixels("t10k-images-idx3-ubyte.gz");
    for j in 0..784 {
        let want = (f32::from(test[784 + j]) / 255.0 - m[j]) / s[j];
        assert!((first[1][j] - want).abs() < 1e-5, "test sample 1 pixel {j}: {} vs {want}", first[1][j]);
    }
}
