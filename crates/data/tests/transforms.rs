//! Splits, normalisation and batching: seeded, disjoint, fitted on train only.

// These tests expect exact values (masks, bytes / 255), so exact float comparison is meant.
#![allow(clippy::float_cmp)]

mod common;

use std::collections::HashSet;

use bottleneck_data::{Batcher, DataConfig, Dataset, Normalize, Normalizer, RawDataset, Split};
use candle_core::{Device, Tensor};

fn blobs(samples: usize) -> DataConfig {
    DataConfig { samples, dim: 5, classes: 3, ..DataConfig::named("blobs") }
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.flatten_from(1).unwrap().to_vec2().unwrap()
}

#[test]
fn val_split_is_seeded_disjoint_and_complete() {
    let raw = RawDataset::load(&blobs(1000), 7).unwrap();
    let a = Dataset::from_raw(raw.clone(), 0.25, Normalize::None, 3).unwrap();
    let b = Dataset::from_raw(raw.clone(), 0.25, Normalize::None, 3).unwrap();
    let c = Dataset::from_raw(raw.clone(), 0.25, Normalize::None, 4).unwrap();
    assert_eq!(a.val.len(), (raw.train.len() as f64 * 0.25).round() as usize);
    assert_eq!(a.train.len() + a.val.len(), raw.train.len());
    assert_eq!(rows(&a.val.xs().unwrap()), rows(&b.val.xs().unwrap()), "same seed, same split");
    assert_ne!(rows(&a.val.xs().unwrap()), rows(&c.val.xs().unwrap()), "another seed, another split");
    let key = |r: &Vec<f32>| r.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let train: HashSet<_> = rows(&a.train.xs().unwrap()).iter().map(key).collect();
    let val: HashSet<_> = rows(&a.val.xs().unwrap()).iter().map(key).collect();
    let all: HashSet<_> = rows(&raw.train.xs().unwrap()).iter().map(key).collect();
    assert!(train.is_disjoint(&val));
    assert_eq!(train.union(&val).cloned().collect::<HashSet<_>>(), all);
}

#[test]
fn standardisation_is_fitted_on_train_only() {
    let raw = RawDataset::load(&blobs(2000), 1).unwrap();
    let ds = Dataset::from_raw(raw.clone(), 0.1, Normalize::Standard, 1).unwrap();
    let train = rows(&ds.train.xs().unwrap());
    let n = train.len() as f64;
    for j in 0..5 {
        let mean = train.iter().map(|r| f64::from(r[j])).sum::<f64>() / n;
        let var = train.iter().map(|r| (f64::from(r[j]) - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 1e-4, "feature {j}: train mean {mean}");
        assert!((var - 1.0).abs() < 1e-3, "feature {j}: train var {var}");
    }
    // The test split uses the training statistics: recompute them here from raw data.
    let (kept, _) = bottleneck_data::dataset::split_off(raw.train.clone(), 0.1, 1).unwrap();
    let kept = rows(&kept.xs().unwrap());
    let m = kept.len() as f64;
    let mean0 = kept.iter().map(|r| f64::from(r[0])).sum::<f64>() / m;
    let std0 = (kept.iter().map(|r| (f64::from(r[0]) - mean0).powi(2)).sum::<f64>() / m).sqrt();
    let raw_test = rows(&raw.test.xs().unwrap());
    let test = rows(&ds.test.xs().unwrap());
    for (r, t) in raw_test.iter().zip(&test).take(20) {
        let expect = (f64::from(r[0]) - mean0) / std0;
        assert!((f64::from(t[0]) - expect).abs() < 1e-3, "{} vs {expect}", t[0]);
    }
    // And it inverts.
    let back = rows(&ds.normalizer.invert(&ds.test.xs().unwrap()).unwrap());
    assert!((back[3][2] - raw_test[3][2]).abs() < 1e-3);
}

#[test]
fn unit_scaling_of_tables_uses_train_min_max_and_keeps_pixels() {
    let raw = RawDataset::load(&blobs(500), 2).unwrap();
    let ds = Dataset::from_raw(raw, 0.0, Normalize::Unit, 2).unwrap();
    let flat = ds.train.xs().unwrap().flatten_all().unwrap();
    assert_eq!(flat.min(0).unwrap().to_scalar::<f32>().unwrap(), 0.0);
    assert!((flat.max(0).unwrap().to_scalar::<f32>().unwrap() - 1.0).abs() < 1e-6);
    // Pixels are already [0, 1]: unit scaling is the identity for them.
    let xs = Tensor::new(&[[0.0f32, 0.5], [0.25, 0.75]], &Device::Cpu).unwrap();
    assert!(matches!(Normalizer::fit(Normalize::Unit, true, &xs).unwrap(), Normalizer::Identity));
}

#[test]
fn constant_features_keep_scale_one() {
    let xs = Tensor::new(&[[1.0f32, 3.0], [1.0, 5.0]], &Device::Cpu).unwrap();
    let n = Normalizer::fit(Normalize::Standard, false, &xs).unwrap();
    let out: Vec<Vec<f32>> = n.apply(&xs).unwrap().to_vec2().unwrap();
    assert_eq!(out, vec![vec![0.0, -1.0], vec![0.0, 1.0]]);
}

#[test]
fn batcher_visits_every_sample_once_per_epoch() {
    let xs = Tensor::arange(0f32, 103.0, &Device::Cpu).unwrap().reshape((103, 1)).unwrap();
    let split = Split::new(xs, Some((0..103).map(|i| i % 7).collect())).unwrap();
    let order = |seed, epoch| -> Vec<u32> {
        let b = Batcher::new(&split, 10).shuffled(seed, epoch);
        assert_eq!(b.num_batches(), 11);
        let mut seen = Vec::new();
        for batch in b {
            let batch = batch.unwrap();
            let vals: Vec<f32> = batch.xs.flatten_all().unwrap().to_vec1().unwrap();
            let labels: Vec<u32> = batch.labels.unwrap().to_vec1().unwrap();
            for ((v, l), i) in vals.iter().zip(&labels).zip(&batch.indices) {
                assert_eq!(*v as u32, *i, "features follow the index");
                assert_eq!(*l, i % 7, "labels follow the index");
            }
            seen.extend(batch.indices);
        }
        seen
    };
    let e0 = order(5, 0);
    let mut sorted = e0.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..103).collect::<Vec<_>>());
    assert_eq!(e0, order(5, 0), "same (seed, epoch), same order");
    assert_ne!(e0, order(5, 1), "next epoch, new order");
    assert_ne!(e0, order(6, 0), "other seed, new order");
    assert_ne!(e0, (0..103).collect::<Vec<_>>(), "shuffled");
    // Starting at batch 3 yields the same batches as skipping the first three.
    let skipped: Vec<Vec<u32>> = Batcher::new(&split, 10).shuffled(5, 0).skip(3).map(|b| b.unwrap().indices).collect();
    let started: Vec<Vec<u32>> =
        Batcher::new(&split, 10).shuffled(5, 0).starting_at(3).map(|b| b.unwrap().indices).collect();
    assert_eq!(started, skipped);
    assert_eq!(Batcher::new(&split, 10).starting_at(20).count(), 0);
    // In order, drop_last, flatten.
    let b = Batcher::new(&split, 10).drop_last(true);
    assert_eq!(b.num_batches(), 10);
    assert_eq!(b.count(), 10);
    let first = Batcher::new(&split, 4).flatten(true).next().unwrap().unwrap();
    assert_eq!(first.xs.dims(), [4, 1]);
    assert_eq!(first.indices, [0, 1, 2, 3]);
}

#[test]
fn image_batches_flatten_to_vectors() {
    let ds = RawDataset::load(&DataConfig { samples: 40, ..DataConfig::named("shapes") }, 0).unwrap();
    let b = Batcher::new(&ds.train, 8).flatten(true).next().unwrap().unwrap();
    assert_eq!(b.xs.dims(), [8, 784]);
    let b = Batcher::new(&ds.train, 8).next().unwrap().unwrap();
    assert_eq!(b.xs.dims(), [8, 1, 28, 28]);
}

#[test]
fn subsets_take_the_first_samples() {
    let cfg = DataConfig { samples: 100, train_subset: 10, test_subset: 5, ..DataConfig::named("shapes") };
    let ds = RawDataset::load(&cfg, 0).unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (10, 5));
    let full = RawDataset::load(&DataConfig { samples: 100, ..DataConfig::named("shapes") }, 0).unwrap();
    assert_eq!(rows(&ds.train.xs().unwrap()), rows(&full.train.xs().unwrap().narrow(0, 0, 10).unwrap()));
}

#[test]
fn sprites_keep_their_factors_through_splits_and_subsets() {
    use bottleneck_data::{Dataset, Normalize};
    let cfg = DataConfig { samples: 400, image_size: 32, ..DataConfig::named("sprites") };
    let raw = RawDataset::load(&cfg, 5).unwrap();
    let names: Vec<&str> = raw.factors.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["shape", "scale", "orientation", "pos_x", "pos_y"]);
    assert_eq!((raw.factors[0].categories, raw.factors[1].categories), (3, 0));
    assert_eq!(raw.train.xs().unwrap().dims(), [320, 1, 32, 32]);
    for split in [&raw.train, &raw.test] {
        let f: Vec<Vec<f32>> = split.factors.as_ref().unwrap().to_vec2().unwrap();
        let labels = split.labels.as_ref().unwrap();
        assert_eq!(f.len(), split.len());
        for (row, &label) in f.iter().zip(labels) {
            // The label is the shape; every factor lies in its documented range.
            assert_eq!(row[0], label as f32);
            assert!((0.5..=1.0).contains(&row[1]) && (0.0..std::f32::consts::TAU).contains(&row[2]), "{row:?}");
            assert!((0.0..=1.0).contains(&row[3]) && (0.0..=1.0).contains(&row[4]), "{row:?}");
        }
    }
    // Each image shows its shape: some ink, and the border pixels stay black (the
    // positions leave room for the shape at any orientation, and a pixel more).
    let imgs: Vec<Vec<f32>> = raw.train.xs().unwrap().flatten_from(1).unwrap().to_vec2().unwrap();
    let f: Vec<Vec<f32>> = raw.train.factors.as_ref().unwrap().to_vec2().unwrap();
    for (img, row) in imgs.iter().zip(&f) {
        let ink: f32 = img.iter().sum();
        assert!(ink > 20.0, "an empty sprite: {row:?}");
        for i in 0..32 {
            for (side, edge) in
                [("top", img[i]), ("bottom", img[31 * 32 + i]), ("left", img[i * 32]), ("right", img[i * 32 + 31])]
            {
                assert!(edge < 1e-6, "a sprite on the {side} border at {i} ({edge}): {row:?}");
            }
        }
    }
    // Larger scale, more ink: the area grows with the square of the scale.
    let ink_of = |keep: &dyn Fn(f32) -> bool| {
        let v: Vec<f32> = imgs.iter().zip(&f).filter(|(_, r)| keep(r[1])).map(|(i, _)| i.iter().sum()).collect();
        v.iter().sum::<f32>() / v.len() as f32
    };
    let (big, small) = (ink_of(&|s| s > 0.85), ink_of(&|s| s < 0.6));
    assert!(big > 1.5 * small, "{big} vs {small}");
    // Seeded: the same seed gives the same images and factors; another seed does not.
    let again = RawDataset::load(&cfg, 5).unwrap();
    assert_eq!(rows(&again.train.xs().unwrap()), rows(&raw.train.xs().unwrap()));
    let other = RawDataset::load(&cfg, 6).unwrap();
    assert_ne!(rows(&other.train.xs().unwrap()), rows(&raw.train.xs().unwrap()));
    // The validation split and subsets carry the same rows of factors as of images.
    let sub = RawDataset::load(&DataConfig { train_subset: 50, ..cfg.clone() }, 5).unwrap();
    assert_eq!(sub.train.factors.as_ref().unwrap().dims(), [50, 5]);
    let ds = Dataset::from_raw(raw.clone(), 0.25, Normalize::Unit, 5).unwrap();
    assert_eq!(ds.val.factors.as_ref().unwrap().dims(), [80, 5]);
    assert_eq!(ds.train.factors.as_ref().unwrap().dims(), [240, 5]);
    let shapes: Vec<u32> =
        ds.val.factors.as_ref().unwrap().to_vec2::<f32>().unwrap().iter().map(|r| r[0] as u32).collect();
    assert_eq!(&shapes, ds.val.labels.as_ref().unwrap());
}
