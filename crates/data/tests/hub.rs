//! The `hub` source on a Hugging Face cache this test builds on disk: parquet files laid
//! out as the hub's `refs/convert/parquet` branch (image structs of PNG bytes + int64
//! labels), read by candle-datasets' loaders with no network (the endpoint points at a
//! closed local port, so any attempt to download fails instead of reaching the hub).
#![cfg(feature = "hub")]

use std::fs;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use bottleneck_data::{DataConfig, DataError, RawDataset};
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Pixel (channel, row, column) of sample `i`: different along rows and columns, so a
/// transposed image cannot pass.
fn pixel(i: usize, c: usize, y: usize, x: usize) -> u8 {
    ((i * 7 + c * 80 + y * 9 + x) % 256) as u8
}

fn png(i: usize, channels: usize, side: usize) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    if channels == 1 {
        let img = image::GrayImage::from_fn(side as u32, side as u32, |x, y| {
            image::Luma([pixel(i, 0, y as usize, x as usize)])
        });
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    } else {
        let img = image::RgbImage::from_fn(side as u32, side as u32, |x, y| {
            image::Rgb([0, 1, 2].map(|c| pixel(i, c, y as usize, x as usize)))
        });
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    }
    out.into_inner()
}

fn label(i: usize) -> i64 {
    i64::try_from(i * 3 % 10).unwrap()
}

/// One parquet file in the hub's image-classification layout.
fn write_parquet(path: &Path, images: &[Vec<u8>], labels: &[i64]) {
    let schema = parse_message_type(
        "message schema {
           optional group image { optional binary bytes; optional binary path (STRING); }
           optional int64 label;
         }",
    )
    .unwrap();
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = fs::File::create(path).unwrap();
    let mut writer =
        SerializedFileWriter::new(file, Arc::new(schema), Arc::new(WriterProperties::builder().build())).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let n = images.len();
    let bytes: Vec<ByteArray> = images.iter().map(|b| ByteArray::from(b.clone())).collect();
    let mut col = group.next_column().unwrap().unwrap();
    col.typed::<ByteArrayType>().write_batch(&bytes, Some(&vec![2; n]), None).unwrap();
    col.close().unwrap();
    // image.path: null in every row (the struct present, its path not).
    let mut col = group.next_column().unwrap().unwrap();
    col.typed::<ByteArrayType>().write_batch(&[], Some(&vec![1; n]), None).unwrap();
    col.close().unwrap();
    let mut col = group.next_column().unwrap().unwrap();
    col.typed::<Int64Type>().write_batch(labels, Some(&vec![1; n]), None).unwrap();
    col.close().unwrap();
    group.close().unwrap();
    writer.close().unwrap();
}

/// Puts `repo`'s train and test files (`n_train`, `n_test` samples) into the cache.
fn populate(cache: &Path, repo: &str, files: [&str; 2], channels: usize, side: usize, counts: [usize; 2]) {
    let folder = cache.join(format!("datasets--{}", repo.replace('/', "--")));
    fs::create_dir_all(folder.join("refs/refs/convert")).unwrap();
    fs::write(folder.join("refs/refs/convert/parquet"), COMMIT).unwrap();
    let mut first = 0;
    for (file, n) in files.iter().zip(counts) {
        let images: Vec<Vec<u8>> = (first..first + n).map(|i| png(i, channels, side)).collect();
        let labels: Vec<i64> = (first..first + n).map(label).collect();
        write_parquet(&folder.join("snapshots").join(COMMIT).join(file), &images, &labels);
        first += n;
    }
}

fn hub(repo: &str) -> DataConfig {
    DataConfig { repo: repo.into(), ..DataConfig::named("hub") }
}

// Exact comparison is meant: the pixels are bytes / 255 on both sides.
#[allow(clippy::float_cmp)]
fn assert_split(split: &bottleneck_data::Split, first: usize, channels: usize, side: usize) {
    let xs: Vec<f32> = split.xs().unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let per = channels * side * side;
    assert_eq!(xs.len(), split.len() * per);
    for (k, &v) in xs.iter().enumerate() {
        let (i, rest) = (k / per, k % per);
        let (c, y, x) = (rest / (side * side), rest / side % side, rest % side);
        let want = f32::from(pixel(first + i, c, y, x)) / 255.0;
        assert_eq!(v, want, "sample {i} channel {c} pixel ({y}, {x})");
    }
    let labels: Vec<u32> = split.labels.clone().unwrap();
    let want: Vec<u32> = (first..first + split.len()).map(|i| label(i) as u32).collect();
    assert_eq!(labels, want);
}

// One test: the cache location is process-wide (HF_HUB_CACHE), and each phase sets it.
#[test]
fn the_hub_source_reads_a_hugging_face_cache_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    std::env::set_var("HF_HUB_CACHE", &cache);
    std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:9");
    std::env::set_var("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1");
    populate(
        &cache,
        "zalando-datasets/fashion_mnist",
        ["fashion_mnist/train/0000.parquet", "fashion_mnist/test/0000.parquet"],
        1,
        28,
        [12, 5],
    );
    populate(&cache, "cifar10", ["plain_text/train/0000.parquet", "plain_text/test/0000.parquet"], 3, 32, [6, 4]);

    // Fashion-MNIST: pixels, labels, shape and class names as written.
    let ds = RawDataset::load(&hub("zalando-datasets/fashion_mnist"), 0).unwrap();
    assert_eq!(ds.sample_shape, [1, 28, 28]);
    assert_eq!((ds.train.len(), ds.test.len()), (12, 5));
    assert_eq!(ds.classes[0], "T-shirt/top");
    assert!(ds.pixels);
    assert!(ds.location.starts_with(&cache), "{}", ds.location.display());
    assert_split(&ds.train, 0, 1, 28);
    assert_split(&ds.test, 12, 1, 28);
    // The subsets and the normalised dataset work as for any source.
    let cfg =
        DataConfig { train_subset: 10, test_subset: 3, val_fraction: 0.2, ..hub("zalando-datasets/fashion_mnist") };
    let ready = bottleneck_data::Dataset::load(&cfg, 0).unwrap();
    assert_eq!((ready.train.len(), ready.val.len(), ready.test.len()), (8, 2, 3));

    // CIFAR-10: channels first, rows before columns (candle-datasets' loader transposes).
    let ds = RawDataset::load(&hub("cifar10"), 0).unwrap();
    assert_eq!(ds.sample_shape, [3, 32, 32]);
    assert_eq!(ds.classes[9], "truck");
    assert_split(&ds.train, 0, 3, 32);
    assert_split(&ds.test, 6, 3, 32);

    // A dataset not in the cache: an error naming the cache and the fetch command, and
    // no download attempted (the endpoint would refuse it).
    let err = RawDataset::load(&hub("ylecun/mnist"), 0).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::NotFound { .. }), "{msg}");
    assert!(msg.contains("bottleneck data fetch hub --repo ylecun/mnist"), "{msg}");
    assert!(msg.contains(&cache.join("datasets--ylecun--mnist").display().to_string()), "{msg}");

    // A corrupt image: candle-datasets' decoder panics; the source reports it instead.
    let corrupt = tmp.path().join("corrupt");
    std::env::set_var("HF_HUB_CACHE", &corrupt);
    populate(&corrupt, "ylecun/mnist", ["mnist/train/0000.parquet", "mnist/test/0000.parquet"], 1, 28, [3, 2]);
    let test_file = corrupt.join("datasets--ylecun--mnist/snapshots").join(COMMIT).join("mnist/test/0000.parquet");
    write_parquet(&test_file, &[b"not a png".to_vec(), png(0, 1, 28)], &[1, 2]);
    let msg = RawDataset::load(&hub("ylecun/mnist"), 0).unwrap_err().to_string();
    assert!(msg.contains("could not decode") && msg.contains("datasets--ylecun--mnist"), "{msg}");
    // A label outside the classes is named with its file and row.
    write_parquet(&test_file, &[png(0, 1, 28), png(1, 1, 28)], &[1, 12]);
    let msg = RawDataset::load(&hub("ylecun/mnist"), 0).unwrap_err().to_string();
    assert!(msg.contains("mnist/test/0000.parquet: label 12 in row 1"), "{msg}");
    // The loader still works once the file is fixed (the panic hook was restored).
    write_parquet(&test_file, &[png(3, 1, 28), png(4, 1, 28)], &[label(3), label(4)]);
    let ds = RawDataset::load(&hub("ylecun/mnist"), 0).unwrap();
    assert_split(&ds.test, 3, 1, 28);
}
