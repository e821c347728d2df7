//! Every kind of bad input file gives a typed error that names the file (and the column
//! or offset) — never a panic. Each case is a generated bad file.

// These tests expect exact values (masks, bytes / 255), so exact float comparison is meant.
#![allow(clippy::float_cmp)]

mod common;

use std::path::Path;

use bottleneck_data::{source, DataConfig, DataError, RawDataset, SearchPath};
use common::{gz, idx_bytes, pattern, write_mnist_dir};

fn search(dir: &Path) -> SearchPath {
    SearchPath { config_dir: Some(dir.into()), env_dir: None, system_root: "/nonexistent".into(), cache_root: None }
}

fn load_mnist(dir: &Path) -> Result<RawDataset, DataError> {
    RawDataset::load_from(&DataConfig::named("mnist"), 0, &search(dir))
}

#[test]
fn good_fixture_loads_gz_and_raw() {
    for gzip in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let [(train_x, train_y), _] = write_mnist_dir(tmp.path(), 30, 20, gzip);
        let ds = load_mnist(tmp.path()).unwrap();
        assert_eq!((ds.train.len(), ds.test.len()), (30, 20));
        assert_eq!(ds.sample_shape, [1, 28, 28]);
        let first: Vec<f32> = ds.train.xs().unwrap().get(0).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let expect: Vec<f32> = train_x[..784].iter().map(|&b| f32::from(b) / 255.0).collect();
        assert_eq!(first, expect);
        assert_eq!(ds.train.labels.unwrap(), train_y.iter().map(|&l| u32::from(l)).collect::<Vec<_>>());
    }
}

#[test]
fn wrong_magic_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist_dir(tmp.path(), 10, 10, false);
    // A labels file where the images should be.
    std::fs::write(tmp.path().join("train-images-idx3-ubyte"), idx_bytes(&[10], &[0; 10])).unwrap();
    let e = load_mnist(tmp.path()).unwrap_err();
    assert!(matches!(e, DataError::BadMagic { found: 0x801, .. }), "{e:?}");
    assert!(e.to_string().contains("train-images-idx3-ubyte"), "{e}");
}

#[test]
fn truncated_gzip_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist_dir(tmp.path(), 50, 10, true);
    let p = tmp.path().join("train-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_mnist(tmp.path()).unwrap_err();
    assert!(matches!(e, DataError::Gzip { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&p.display().to_string()) && !msg.contains('\n'), "{msg}");
}

#[test]
fn corrupt_gzip_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist_dir(tmp.path(), 50, 10, true);
    let p = tmp.path().join("t10k-labels-idx1-ubyte.gz");
    let mut bytes = std::fs::read(&p).unwrap();
    for b in &mut bytes[12..20] {
        *b ^= 0xA5;
    }
    std::fs::write(&p, &bytes).unwrap();
    let e = load_mnist(tmp.path()).unwrap_err();
    assert!(matches!(e, DataError::Gzip { .. }), "{e:?}");
    assert!(e.to_string().contains("t10k-labels-idx1-ubyte.gz"), "{e}");
}

#[test]
fn truncated_raw_data_reports_offset() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist_dir(tmp.path(), 10, 10, false);
    let p = tmp.path().join("t10k-images-idx3-ubyte");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    let e = load_mnist(tmp.path()).unwrap_err();
    assert!(matches!(e, DataError::Truncated { offset: 16, expected: 7840, found: 7740, .. }), "{e:?}");
    assert!(e.to_string().contains("t10k-images-idx3-ubyte"), "{e}");
}

#[test]
fn count_mismatch_names_both_files() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist_dir(tmp.path(), 10, 10, false);
    std::fs::write(tmp.path().join("train-labels-idx1-ubyte"), idx_bytes(&[9], &[1; 9])).unwrap();
    let e = load_mnist(tmp.path()).unwrap_err();
    assert!(matches!(e, DataError::CountMismatch { n_images: 10, n_labels: 9, .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("train-images-idx3-ubyte") && msg.contains("train-labels-idx1-ubyte"), "{msg}");
}

#[test]
fn wrong_dimensions() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist_dir(tmp.path(), 10, 10, false);
    std::fs::write(tmp.path().join("train-images-idx3-ubyte"), idx_bytes(&[10, 32, 32], &pattern(10240, 3))).unwrap();
    let e = load_mnist(tmp.path()).unwrap_err();
    assert!(matches!(e, DataError::Dimensions { .. }), "{e:?}");
    assert!(e.to_string().contains("[10, 32, 32]"), "{e}");
}

#[test]
fn empty_files_raw_and_gz() {
    for (name, content) in [("train-labels-idx1-ubyte", Vec::new()), ("train-labels-idx1-ubyte.gz", gz(&[]))] {
        let tmp = tempfile::tempdir().unwrap();
        write_mnist_dir(tmp.path(), 10, 10, false);
        std::fs::remove_file(tmp.path().join("train-labels-idx1-ubyte")).unwrap();
        std::fs::write(tmp.path().join(name), content).unwrap();
        let e = load_mnist(tmp.path()).unwrap_err();
        assert!(matches!(e, DataError::Empty { .. }), "{name}: {e:?}");
        assert!(e.to_string().contains(name), "{e}");
    }
}

#[test]
fn label_out_of_range() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist_dir(tmp.path(), 10, 10, false);
    let mut labels = vec![1u8; 10];
    labels[7] = 12;
    std::fs::write(tmp.path().join("t10k-labels-idx1-ubyte"), idx_bytes(&[10], &labels)).unwrap();
    let e = load_mnist(tmp.path()).unwrap_err();
    assert!(matches!(e, DataError::LabelRange { index: 7, label: 12, .. }), "{e:?}");
}

#[test]
fn incomplete_folder_names_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist_dir(tmp.path(), 10, 10, true);
    std::fs::remove_file(tmp.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let e = load_mnist(tmp.path()).unwrap_err();
    assert!(matches!(e, DataError::MissingFile { .. }), "{e:?}");
    assert!(e.to_string().contains("test labels") && e.to_string().contains("t10k-labels-idx1-ubyte.gz"), "{e}");
}

fn cifar_record(label: u8, salt: u32) -> Vec<u8> {
    let mut r = vec![label];
    r.extend(pattern(3072, salt));
    r
}

fn write_cifar(dir: &Path, per_batch: usize) {
    let bin = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (i, name) in source::cifar_batches().iter().enumerate() {
        let bytes: Vec<u8> = (0..per_batch).flat_map(|j| cifar_record((j % 10) as u8, (i * 100 + j) as u32)).collect();
        std::fs::write(bin.join(name), bytes).unwrap();
    }
}

#[test]
fn cifar_loads_chw() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar(tmp.path(), 7);
    let ds = RawDataset::load_from(&DataConfig::named("cifar10"), 0, &search(tmp.path())).unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (35, 7));
    assert_eq!(ds.sample_shape, [3, 32, 32]);
    // Record 0 of batch 1: red plane first.
    let rec = cifar_record(0, 0);
    let px: Vec<f32> = ds.train.xs().unwrap().get(0).unwrap().get(0).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(px[5], f32::from(rec[6]) / 255.0);
    // 7 records per batch with labels j % 10: label 3 once in each of the 5 training batches.
    assert_eq!(ds.train.label_histogram(10)[3], 5);
}

#[test]
fn cifar_batch_of_wrong_size() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar(tmp.path(), 3);
    let p = tmp.path().join("cifar-10-batches-bin/data_batch_3.bin");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.truncate(3073 * 2 + 100);
    std::fs::write(&p, bytes).unwrap();
    let e = RawDataset::load_from(&DataConfig::named("cifar10"), 0, &search(tmp.path())).unwrap_err();
    assert!(matches!(e, DataError::CifarSize { len: 6246, .. }), "{e:?}");
    assert!(e.to_string().contains("data_batch_3.bin"), "{e}");
}

fn table_cfg(name: &str, path: &Path, label: &str) -> DataConfig {
    DataConfig { path: path.display().to_string(), label: label.into(), ..DataConfig::named(name) }
}

#[test]
fn csv_with_text_column_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("t.csv");
    std::fs::write(&p, "a,colour,b\n1,red,2\n3,blue,4\n5,red,6\n").unwrap();
    let e = RawDataset::load(&table_cfg("csv", &p, ""), 0).unwrap_err();
    assert!(matches!(&e, DataError::Column { column, .. } if column == "colour"), "{e:?}");
    assert!(e.to_string().contains("t.csv") && e.to_string().contains("numeric"), "{e}");
    // As a label it is fine: classes are the sorted distinct strings.
    let ds = RawDataset::load(&DataConfig { test_fraction: 0.34, ..table_cfg("csv", &p, "colour") }, 0).unwrap();
    assert_eq!(ds.classes, ["blue", "red"]);
    assert_eq!(ds.sample_shape, [2]);
    assert_eq!(ds.feature_names, ["a", "b"]);
}

#[test]
fn csv_with_nulls_names_column() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("n.csv");
    std::fs::write(&p, "x,y\n1.0,2.0\n,3.0\n4.0,5.0\n").unwrap();
    let e = RawDataset::load(&table_cfg("csv", &p, ""), 0).unwrap_err();
    assert!(matches!(&e, DataError::Column { column, .. } if column == "x"), "{e:?}");
    assert!(e.to_string().contains("1 null"), "{e}");
}

#[test]
fn csv_unknown_feature_lists_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("u.csv");
    std::fs::write(&p, "x,y\n1,2\n3,4\n").unwrap();
    let cfg = DataConfig { features: vec!["z".into()], ..table_cfg("csv", &p, "") };
    let e = RawDataset::load(&cfg, 0).unwrap_err();
    assert!(e.to_string().contains("`z`") && e.to_string().contains("x, y"), "{e}");
}

#[test]
fn empty_csv_and_missing_path() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("e.csv");
    std::fs::write(&p, "").unwrap();
    let e = RawDataset::load(&table_cfg("csv", &p, ""), 0).unwrap_err();
    assert!(matches!(e, DataError::Empty { .. }), "{e:?}");
    let e = RawDataset::load(&DataConfig::named("csv"), 0).unwrap_err();
    assert!(e.to_string().contains("data.path"), "{e}");
    let e = RawDataset::load(&table_cfg("csv", &tmp.path().join("nope.csv"), ""), 0).unwrap_err();
    assert!(e.to_string().contains("nope.csv"), "{e}");
}

#[test]
fn parquet_round_trip_through_polars() {
    use polars::prelude::*;
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("t.parquet");
    let mut df =
        df!("f1" => [1.0f64, 2.0, 3.0, 4.0, 5.0], "f2" => [10i32, 20, 30, 40, 50], "y" => [0i64, 1, 0, 1, 2]).unwrap();
    ParquetWriter::new(std::fs::File::create(&p).unwrap()).finish(&mut df).unwrap();
    let ds = RawDataset::load(&DataConfig { test_fraction: 0.4, ..table_cfg("parquet", &p, "y") }, 0).unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (3, 2));
    assert_eq!(ds.classes, ["0", "1", "2"]);
    // Every row keeps f2 = 10 * f1 and its label, whatever the split.
    for split in [&ds.train, &ds.test] {
        let rows: Vec<Vec<f32>> = split.xs().unwrap().to_vec2().unwrap();
        for (row, &label) in rows.iter().zip(split.labels.as_ref().unwrap()) {
            assert_eq!(row[1], 10.0 * row[0]);
            let expect = [0, 1, 0, 1, 2][row[0] as usize - 1];
            assert_eq!(label, expect);
        }
    }
}

#[test]
fn unknown_dataset_and_bad_ranges() {
    let e = RawDataset::load(&DataConfig::named("fashion"), 0).unwrap_err();
    assert!(matches!(e, DataError::UnknownDataset { .. }), "{e:?}");
    let e = DataConfig { val_fraction: 1.0, ..DataConfig::default() }.validate().unwrap_err();
    assert!(e.to_string().contains("data.val_fraction") && e.to_string().contains("[0, 1)"), "{e}");
    let e = DataConfig { test_fraction: 0.0, ..DataConfig::default() }.validate().unwrap_err();
    assert!(e.to_string().contains("data.test_fraction"), "{e}");
}

#[test]
fn the_table_format_comes_from_the_file_where_the_name_disagrees() {
    use polars::prelude::*;
    let tmp = tempfile::tempdir().unwrap();
    let mut df = df!("f1" => [1.0f64, 2.0, 3.0, 4.0, 5.0], "y" => [0i64, 1, 0, 1, 2]).unwrap();
    // A Parquet file under the csv source (and a misleading name) reads as Parquet.
    let pq = tmp.path().join("actually-parquet.csv");
    ParquetWriter::new(std::fs::File::create(&pq).unwrap()).finish(&mut df).unwrap();
    let ds = RawDataset::load(&table_cfg("csv", &pq, "y"), 0).unwrap();
    assert_eq!(ds.train.len() + ds.test.len(), 5);
    // A .csv file under the parquet source reads as CSV.
    let csv = tmp.path().join("t.csv");
    std::fs::write(&csv, "f1,y\n1,0\n2,1\n3,0\n4,1\n5,2\n").unwrap();
    let ds = RawDataset::load(&table_cfg("parquet", &csv, "y"), 0).unwrap();
    assert_eq!(ds.train.len() + ds.test.len(), 5);
    // Text named .parquet: no way to tell what was meant.
    let fake = tmp.path().join("t.parquet");
    std::fs::write(&fake, "f1,y\n1,0\n").unwrap();
    let e = RawDataset::load(&table_cfg("parquet", &fake, "y"), 0).unwrap_err().to_string();
    assert!(e.contains("t.parquet") && e.contains("no PAR1 magic") && e.contains("data.name = \"csv\""), "{e}");
}

#[test]
fn the_hub_source_names_its_repo_key_and_its_build_feature() {
    let hub = |repo: &str| DataConfig { repo: repo.into(), ..DataConfig::named("hub") };
    let msg = hub("").validate().unwrap_err().to_string();
    assert!(
        msg.contains("`data.repo`") && msg.contains("zalando-datasets/fashion_mnist, ylecun/mnist, cifar10"),
        "{msg}"
    );
    let msg = hub("someone/else").validate().unwrap_err().to_string();
    assert!(msg.contains("\"someone/else\""), "{msg}");
    // data.repo on any other source is a mistake, not silently ignored.
    let cfg = DataConfig { repo: "ylecun/mnist".into(), ..DataConfig::named("mnist") };
    let msg = cfg.validate().unwrap_err().to_string();
    assert!(msg.contains("data.repo") && msg.contains("only by data.name = \"hub\""), "{msg}");
    let known = hub("zalando-datasets/fashion_mnist").validate();
    if cfg!(feature = "hub") {
        known.unwrap();
    } else {
        let msg = known.unwrap_err().to_string();
        assert!(msg.contains("--features hub"), "{msg}");
    }
}
