//! The image-folder source on folders these tests write: PNG and JPEG, mixed sizes, class
//! sub-folders (nested), `train/` + `test/`, flat folders, a corrupt file, the file-list
//! cache. Expected pixels are worked out by hand from the images drawn.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bottleneck_data::images::{self, Summary};
use bottleneck_data::{find_source, Crop, DataConfig, DataError, RawDataset};
use image::{Rgb, RgbImage};

/// One cache dir for the whole test binary (the variable is process-wide; every test sets
/// the same value, and the file lists are named by their folder).
fn cache_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("BOTTLENECK_CACHE_DIR", dir.path());
        dir
    })
    .path()
}

fn solid(w: u32, h: u32, rgb: [u8; 3]) -> RgbImage {
    RgbImage::from_pixel(w, h, Rgb(rgb))
}

fn save(img: &RgbImage, path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save(path).unwrap();
}

fn cfg(path: &Path, size: usize) -> DataConfig {
    DataConfig { path: path.display().to_string(), image_size: size, ..DataConfig::named("images") }
}

fn load(cfg: &DataConfig) -> Result<(RawDataset, Summary), DataError> {
    cache_dir();
    cfg.validate()?;
    images::load_with_summary(find_source("images").unwrap(), cfg, 0)
}

/// Pixel `(c, y, x)` of sample `i` of `[n, c, s, s]` values, as a byte (×255, rounded).
#[allow(clippy::many_single_char_names)]
fn px(xs: &candle_core::Tensor, i: usize, c: usize, y: usize, x: usize) -> u8 {
    let v: f32 = xs.get(i).unwrap().get(c).unwrap().get(y).unwrap().get(x).unwrap().to_scalar().unwrap();
    (v * 255.0).round() as u8
}

const RED: [u8; 3] = [220, 30, 40];
const GREEN: [u8; 3] = [20, 200, 60];
const BLUE: [u8; 3] = [30, 50, 210];

/// `root/{cat,dog,zebra}` with PNG and JPEG of mixed sizes, a nested folder, a hidden file,
/// a text file and a loose image beside the class folders.
fn class_tree(root: &Path) {
    save(&solid(40, 30, RED), &root.join("cat/a.png"));
    save(&solid(64, 64, RED), &root.join("cat/deeper/b.PNG"));
    save(&solid(50, 70, GREEN), &root.join("dog/c.jpg"));
    save(&solid(33, 33, GREEN), &root.join("dog/d.jpeg"));
    save(&solid(16, 16, BLUE), &root.join("zebra/e.png"));
    save(&solid(16, 16, BLUE), &root.join("zebra/.hidden.png"));
    save(&solid(16, 16, BLUE), &root.join(".thumbs/f.png"));
    save(&solid(16, 16, BLUE), &root.join("loose.png"));
    std::fs::write(root.join("dog/notes.txt"), "not an image").unwrap();
}

#[test]
fn class_folders_give_sorted_classes_labels_and_the_pixels_of_each_file() {
    let tmp = tempfile::tempdir().unwrap();
    class_tree(tmp.path());
    let mut c = cfg(tmp.path(), 8);
    c.test_fraction = 0.2;
    let (raw, summary) = load(&c).unwrap();
    assert_eq!(raw.classes, ["cat", "dog", "zebra"]);
    assert_eq!(raw.sample_shape, [3, 8, 8]);
    assert!(raw.pixels);
    assert_eq!(summary.found, 5, "{summary:?}");
    assert_eq!(summary.ignored_loose, 1);
    assert_eq!(raw.train.len() + raw.test.len(), 5);
    assert_eq!(raw.test.len(), 1, "round(0.2 × 5)");
    let sizes: Vec<(u32, u32)> = summary.sizes.iter().map(|&(w, h, _)| (w, h)).collect();
    assert!(sizes.contains(&(50, 70)) && sizes.contains(&(40, 30)) && sizes.len() == 5, "{sizes:?}");
    // Each image is one colour, so every pixel after crop and resize is that colour
    // (exactly for PNG, within JPEG's rounding for JPEG) and tells the label it must have.
    for split in [&raw.train, &raw.test] {
        let labels = split.labels.as_ref().unwrap();
        for (i, &label) in labels.iter().enumerate() {
            let want = [RED, GREEN, BLUE][label as usize];
            for (y, x) in [(0, 0), (3, 4), (7, 7)] {
                for (ch, &w) in want.iter().enumerate() {
                    let got = px(&split.xs().unwrap(), i, ch, y, x);
                    let tol = if label == 1 { 4 } else { 0 };
                    assert!(got.abs_diff(w) <= tol, "sample {i} (label {label}) channel {ch}: {got} vs {w}");
                }
            }
        }
    }
}

#[test]
fn the_centre_crop_keeps_the_middle_and_none_stretches_the_whole_image() {
    let tmp = tempfile::tempdir().unwrap();
    // 60×40: 10 red columns, 40 green, 10 blue. The centred 40×40 square is all green.
    let mut img = solid(60, 40, GREEN);
    for y in 0..40 {
        for x in 0..10 {
            img.put_pixel(x, y, Rgb(RED));
            img.put_pixel(59 - x, y, Rgb(BLUE));
        }
    }
    save(&img, &tmp.path().join("stripes.png"));
    save(&img, &tmp.path().join("stripes2.png"));
    let mut c = cfg(tmp.path(), 8);
    c.test_fraction = 0.5;
    let (raw, _) = load(&c).unwrap();
    assert!(raw.classes.is_empty() && raw.train.labels.is_none(), "a flat folder has no labels");
    for x in 0..8 {
        assert_eq!([0, 1, 2].map(|ch| px(&raw.train.xs().unwrap(), 0, ch, 4, x)), GREEN, "column {x}");
    }
    // A 20-pixel crop of the middle: green too.
    c.crop_size = 20;
    let (raw, _) = load(&c).unwrap();
    assert_eq!([0, 1, 2].map(|ch| px(&raw.train.xs().unwrap(), 0, ch, 4, 0)), GREEN);
    // No crop: the 60 columns squeeze into 8, mostly red at the left edge (the filter also
    // reaches a little of the green), blue at the right, green in the middle.
    c.crop = Crop::None;
    c.crop_size = 0;
    let (raw, _) = load(&c).unwrap();
    let (left, right) = (px(&raw.train.xs().unwrap(), 0, 0, 0, 0), px(&raw.train.xs().unwrap(), 0, 2, 0, 7));
    assert!(left > 150 && right > 150, "left red {left}, right blue {right}");
    assert!(px(&raw.train.xs().unwrap(), 0, 0, 0, 0) > px(&raw.train.xs().unwrap(), 0, 0, 0, 4) + 100);
    assert_eq!([0, 1, 2].map(|ch| px(&raw.train.xs().unwrap(), 0, ch, 0, 4)), GREEN);
    // A crop larger than the image is an error naming the file and the key.
    c.crop = Crop::Center;
    c.crop_size = 41;
    let e = load(&c).unwrap_err().to_string();
    assert!(e.contains("stripes.png") && e.contains("60×40") && e.contains("data.crop_size = 41"), "{e}");
}

#[test]
fn grey_is_pils_luma_and_train_test_folders_are_the_splits() {
    let tmp = tempfile::tempdir().unwrap();
    let colour = [200, 100, 50];
    for (split, n) in [("train", 3), ("test", 2)] {
        for class in ["a", "b"] {
            for i in 0..n {
                save(&solid(20, 24, colour), &tmp.path().join(format!("{split}/{class}/{i}.png")));
            }
        }
    }
    // Only test/ has class c: the classes are those of both splits.
    save(&solid(20, 24, colour), &tmp.path().join("test/c/0.png"));
    let mut c = cfg(tmp.path(), 8);
    c.channels = 1;
    let (raw, _) = load(&c).unwrap();
    assert_eq!(raw.classes, ["a", "b", "c"]);
    assert_eq!(raw.sample_shape, [1, 8, 8]);
    assert_eq!((raw.train.len(), raw.test.len()), (6, 5));
    assert_eq!(raw.train.labels.as_deref(), Some(&[0, 0, 0, 1, 1, 1][..]));
    assert_eq!(raw.test.labels.as_deref(), Some(&[0, 0, 1, 1, 2][..]));
    // L = (200·299 + 100·587 + 50·114) / 1000 = 124.2 → 124.
    assert_eq!(px(&raw.test.xs().unwrap(), 4, 0, 3, 3), 124);
    c.channels = 2;
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("data.channels") && e.contains("1 (grey) or 3 (RGB)"), "{e}");
}

#[test]
fn a_corrupt_image_is_an_error_naming_it_or_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..4 {
        save(&solid(10, 10, RED), &tmp.path().join(format!("ok{i}.png")));
    }
    let bad = tmp.path().join("broken.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff\xe0 this is not the rest of a JPEG").unwrap();
    let mut c = cfg(tmp.path(), 8);
    let e = load(&c).unwrap_err().to_string();
    assert!(e.contains(&bad.display().to_string()) && e.contains("data.skip_bad = true"), "{e}");
    c.skip_bad = true;
    let (raw, summary) = load(&c).unwrap();
    assert_eq!(raw.train.len() + raw.test.len(), 4);
    assert_eq!(summary.found, 5);
    assert_eq!(summary.skipped.len(), 1);
    assert_eq!(summary.skipped[0].0, bad);
    assert!(summary.describe().contains("skipped 1 unreadable"), "{}", summary.describe());
    // Every pixel of the kept images is the colour drawn: the gap was closed, not zeroed.
    let (min, _, _) = raw.train.value_stats().unwrap().unwrap();
    assert!((min - 30.0 / 255.0).abs() < 1e-6, "{min}");
    // Nothing readable at all is an error too.
    let only_bad = tempfile::tempdir().unwrap();
    std::fs::copy(&bad, only_bad.path().join("x.jpg")).unwrap();
    let e = load(&cfg(only_bad.path(), 8)).unwrap_err().to_string();
    assert!(e.contains("x.jpg"), "{e}");
    let mut c2 = cfg(only_bad.path(), 8);
    c2.skip_bad = true;
    let e = load(&c2).unwrap_err().to_string();
    assert!(e.contains("all 1 images are unreadable"), "{e}");
}

#[test]
fn empty_folders_and_missing_paths_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("readme.txt"), "no images here").unwrap();
    let e = load(&cfg(tmp.path(), 8)).unwrap_err().to_string();
    assert!(e.contains("no images to load") && e.contains("*.png, *.jpg, *.jpeg"), "{e}");
    let e = load(&cfg(&tmp.path().join("nope"), 8)).unwrap_err().to_string();
    assert!(e.contains("data.path") && e.contains("nope"), "{e}");
    let e = load(&DataConfig::named("images")).unwrap_err().to_string();
    assert!(e.contains("data.path") && e.contains("folder of images"), "{e}");
}

#[test]
fn the_file_list_is_cached_and_renewed_when_a_folder_changes() {
    let tmp = tempfile::tempdir().unwrap();
    class_tree(tmp.path());
    let c = cfg(tmp.path(), 8);
    let (_, first) = load(&c).unwrap();
    assert!(!first.listing_cached);
    let index: PathBuf = images::index_path(tmp.path()).unwrap();
    assert!(index.starts_with(cache_dir()) && index.is_file(), "{}", index.display());
    let (_, second) = load(&c).unwrap();
    assert!(second.listing_cached, "an unchanged tree is not walked again");
    assert_eq!(second.found, first.found);
    // A new file in a nested folder changes that folder's time: the list is walked again.
    std::thread::sleep(std::time::Duration::from_millis(20));
    save(&solid(12, 12, BLUE), &tmp.path().join("cat/deeper/new.png"));
    let (raw, third) = load(&c).unwrap();
    assert!(!third.listing_cached);
    assert_eq!(third.found, first.found + 1);
    assert_eq!(raw.train.len() + raw.test.len(), 6);
    // A damaged list is ignored, not trusted.
    std::fs::write(&index, "bottleneck image index v1\nF\tghost.png\n").unwrap();
    let (_, fourth) = load(&c).unwrap();
    assert!(!fourth.listing_cached && fourth.found == 6);
}
