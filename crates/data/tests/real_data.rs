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
    assert_eq!(ds.train.xs.dims(), [60_000, 1, 28, 28]);
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
    let mean = ds.train.xs.mean_all().unwrap().to_scalar::<f32>().unwrap();
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
