//! Training-time flips and crops: what they do to each pixel, that they depend only on
//! (seed, epoch, sample), and that they fill with the normalised black.
// Pixels are moved, not computed: they must come back bit for bit.
#![allow(clippy::float_cmp)]

use bottleneck_data::{Augment, Batcher, DataConfig, Dataset, Normalize, RawDataset, Split};
use candle_core::{Device, Tensor};

/// A dataset of `n` 2×5×6 "images" whose every value is distinct (sample·1000 + position),
/// so any moved pixel can be traced back.
fn dataset(n: usize, normalize: Normalize) -> Dataset {
    let per = 2 * 5 * 6;
    let data: Vec<f32> = (0..n * per).map(|v| ((v / per) * 1000 + v % per + 1) as f32 / 1e5).collect();
    let xs = Tensor::from_vec(data, (n, 2, 5, 6), &Device::Cpu).unwrap();
    let split = Split::new(xs, None).unwrap();
    let raw = RawDataset {
        name: "test-images".into(),
        sample_shape: vec![2, 5, 6],
        classes: Vec::new(),
        feature_names: Vec::new(),
        factors: Vec::new(),
        location: "generated".into(),
        pixels: false,
        train: split.clone(),
        test: split.clone().head(2).unwrap(),
    };
    Dataset::from_raw(raw, 0.0, normalize, 0).unwrap()
}

fn cfg(flip: bool, pad: usize) -> DataConfig {
    DataConfig { random_flip: flip, random_crop_padding: pad, ..DataConfig::named("shapes") }
}

fn sample(xs: &Tensor, i: usize) -> Vec<Vec<Vec<f32>>> {
    xs.get(i).unwrap().to_vec3().unwrap()
}

#[test]
fn a_flip_mirrors_rows_and_happens_about_half_the_time_as_drawn() {
    let ds = dataset(200, Normalize::None);
    let aug = Augment::new(&cfg(true, 0), &ds, 7).unwrap().unwrap();
    let batch: Vec<u32> = (0..200).collect();
    let out = aug.apply(&ds.train.xs().unwrap(), &batch, 3).unwrap();
    let mut flipped = 0;
    for i in 0..200 {
        let (x, y) = (sample(&ds.train.xs().unwrap(), i), sample(&out, i));
        let (f, dy, dx) = aug.draw(3, i as u32);
        assert_eq!((dy, dx), (0, 0));
        for c in 0..2 {
            for r in 0..5 {
                let mut want = x[c][r].clone();
                if f {
                    want.reverse();
                }
                assert_eq!(y[c][r], want, "sample {i} channel {c} row {r}");
            }
        }
        flipped += usize::from(f);
    }
    assert!((70..=130).contains(&flipped), "{flipped} of 200 flipped");
    // Another epoch draws again; the same epoch draws the same.
    let again = aug.apply(&ds.train.xs().unwrap(), &batch, 3).unwrap();
    assert_eq!(
        out.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        again.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    let other: usize = (0..200).filter(|&i| aug.draw(3, i).0 != aug.draw(4, i).0).count();
    assert!(other > 40, "epoch 4 differs from epoch 3 on only {other} samples");
}

#[test]
fn a_padded_crop_shifts_by_at_most_the_padding_and_fills_with_normalised_black() {
    // Standard normalisation: black (0) becomes -mean/std per position, not 0.
    let ds = dataset(50, Normalize::Standard);
    let aug = Augment::new(&cfg(false, 2), &ds, 1).unwrap().unwrap();
    let black =
        ds.normalizer.apply(&Tensor::zeros((1, 2, 5, 6), candle_core::DType::F32, &Device::Cpu).unwrap()).unwrap();
    let black = sample(&black, 0);
    let idx: Vec<u32> = (0..50).collect();
    let out = aug.apply(&ds.train.xs().unwrap(), &idx, 0).unwrap();
    let mut shifts = std::collections::BTreeSet::new();
    for i in 0..50 {
        let (x, y) = (sample(&ds.train.xs().unwrap(), i), sample(&out, i));
        let (f, dy, dx) = aug.draw(0, i as u32);
        assert!(!f && dy.abs() <= 2 && dx.abs() <= 2);
        shifts.insert((dy, dx));
        for c in 0..2 {
            for r in 0..5usize {
                for col in 0..6usize {
                    let (sr, sc) = (r.cast_signed() + dy, col.cast_signed() + dx);
                    let want = if (0..5).contains(&sr) && (0..6).contains(&sc) {
                        x[c][sr as usize][sc as usize]
                    } else {
                        black[c][r][col]
                    };
                    assert_eq!(y[c][r][col], want, "sample {i} ({dy}, {dx}) at {c},{r},{col}");
                }
            }
        }
    }
    assert!(shifts.len() > 10, "only {} distinct shifts in 50 draws", shifts.len());
    let fill = black[0][0][0];
    assert!(fill.abs() > 0.1, "the fill is the normalised black, here {fill}, not 0");
}

#[test]
fn the_batcher_transforms_by_sample_so_a_resumed_epoch_sees_the_same_batches() {
    let ds = dataset(40, Normalize::None);
    let aug = Augment::new(&cfg(true, 1), &ds, 5).unwrap().unwrap();
    let full: Vec<Vec<f32>> = Batcher::new(&ds.train, 8)
        .shuffled(5, 2)
        .augmented(Some(&aug), 2)
        .map(|b| b.unwrap().xs.flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    let resumed: Vec<Vec<f32>> = Batcher::new(&ds.train, 8)
        .shuffled(5, 2)
        .augmented(Some(&aug), 2)
        .starting_at(3)
        .map(|b| b.unwrap().xs.flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    assert_eq!(full[3..], resumed[..]);
    let plain: Vec<Vec<f32>> = Batcher::new(&ds.train, 8)
        .shuffled(5, 2)
        .map(|b| b.unwrap().xs.flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    assert_ne!(full, plain, "the transforms changed the batches");
}

#[test]
fn transforms_on_feature_vectors_or_too_much_padding_are_errors_naming_the_key() {
    let mut csv = DataConfig::named("csv");
    csv.random_flip = true;
    let e = csv.validate().unwrap_err().to_string();
    assert!(e.contains("data.random_flip") && e.contains("feature vectors"), "{e}");
    let ds = dataset(4, Normalize::None);
    let e = Augment::new(&cfg(false, 5), &ds, 0).unwrap_err().to_string();
    assert!(e.contains("data.random_crop_padding") && e.contains("5×6"), "{e}");
    assert!(Augment::new(&cfg(false, 0), &ds, 0).unwrap().is_none());
}
