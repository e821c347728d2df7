//! `bottleneck data list | inspect | fetch` as a user runs them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

use crate::common;

/// Runs the binary with a clean dataset environment plus `env`.
fn bottleneck(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bottleneck"));
    cmd.args(args).env_remove("BOTTLENECK_DATA_DIR").env_remove("RUST_LOG").env("RUST_BACKTRACE", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failure: non-zero exit, one `error:` line, no panic or backtrace.
fn assert_clean_failure(o: &Output) -> String {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success: {}", stdout(o));
    assert_eq!(o.status.code(), Some(1), "{err}");
    // Log lines (`INFO downloading ...`) may come first; then the error, which may list places.
    let at = err.lines().position(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(err.lines().take(at).all(|l| l.contains(" INFO ") || l.contains(" WARN ")), "{err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace") && !err.contains("RUST_BACKTRACE"), "{err}");
    err
}

#[test]
fn list_shows_every_source_and_where_it_was_found() {
    let cache = tempfile::tempdir().unwrap();
    let o = bottleneck(&["data", "list"], &[("BOTTLENECK_CACHE_DIR", cache.path())]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for name in bottleneck_data::SOURCES.iter().map(|s| s.name) {
        assert!(out.lines().any(|l| l.starts_with(name)), "{name} missing from:\n{out}");
    }
    assert!(out.contains(&format!("found: {}", common::fashion_mnist_dir().display())), "{out}");
    assert!(out.contains(&cache.path().join("mnist").display().to_string()), "{out}");
    assert!(out.contains("bottleneck data fetch kmnist"), "{out}");
}

#[test]
fn inspect_fashion_mnist() {
    common::fashion_mnist_dir();
    let o = bottleneck(&["data", "inspect", "fashion-mnist"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("1×28×28"), "{out}");
    let line = |prefix: &str| out.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix}: {out}"));
    assert!(line("train ").split_whitespace().nth(1) == Some("60000"), "{out}");
    assert!(line("test ").split_whitespace().nth(1) == Some("10000"), "{out}");
    assert!(line("train ").contains("[0.0000, 1.0000]"), "{out}");
    assert!(out.contains("10 classes"), "{out}");
    let class_rows: Vec<&str> = out.lines().filter(|l| l.ends_with("    6000     1000")).collect();
    assert_eq!(class_rows.len(), 10, "{out}");
    assert!(out.contains("loaded in "), "{out}");
}

#[test]
fn inspect_reads_an_unseen_mnist_folder_from_the_env_dir() {
    let tmp = tempfile::tempdir().unwrap();
    // Raw (not gzip) files, straight in the folder.
    common::write_mnist_dir(tmp.path(), 70, 30, false);
    let o = bottleneck(&["data", "inspect", "fashion-mnist"], &[("BOTTLENECK_DATA_DIR", tmp.path())]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains(&tmp.path().display().to_string()), "{out}");
    assert!(out.lines().any(|l| l.starts_with("train ") && l.contains(" 70 ")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("test ") && l.contains(" 30 ")), "{out}");
}

#[test]
fn truncated_gzip_is_a_one_line_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_mnist_dir(tmp.path(), 200, 30, true);
    let bad = tmp.path().join("train-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&bad).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let o = bottleneck(&["data", "inspect", "fashion-mnist"], &[("BOTTLENECK_DATA_DIR", tmp.path())]);
    let err = assert_clean_failure(&o);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(&bad.display().to_string()), "{err}");
}

#[test]
fn missing_dataset_lists_where_it_looked_and_how_to_get_it() {
    let cache = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let o = bottleneck(
        &["data", "inspect", "kmnist"],
        &[("BOTTLENECK_CACHE_DIR", cache.path()), ("BOTTLENECK_DATA_DIR", empty.path())],
    );
    let err = assert_clean_failure(&o);
    for place in [empty.path().to_path_buf(), empty.path().join("kmnist"), cache.path().join("kmnist")] {
        assert!(err.contains(&place.display().to_string()), "{place:?} missing from {err}");
    }
    assert!(err.contains("/usr/share/datasets/kmnist") && err.contains("bottleneck data fetch kmnist"), "{err}");
}

#[test]
fn unknown_dataset_lists_the_known_ones() {
    let o = bottleneck(&["data", "inspect", "fashion"], &[]);
    let err = assert_clean_failure(&o);
    assert!(err.contains("`fashion`") && err.contains("fashion-mnist, mnist, kmnist, cifar10"), "{err}");
}

#[test]
fn inspect_a_csv_table_and_reject_a_text_feature() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("flowers.csv");
    let mut csv = String::from("petal_length,petal_width,species\n");
    for i in 0..40 {
        let (s, k) = if i % 2 == 0 { ("setosa", 1.0) } else { ("virginica", 5.0) };
        writeln!(csv, "{},{},{s}", k + f64::from(i) * 0.01, k / 3.0).unwrap();
    }
    std::fs::write(&p, &csv).unwrap();
    let path = p.display().to_string();
    let o = bottleneck(&["data", "inspect", "csv", "--path", &path, "--label", "species"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("sample shape 2") && out.contains("petal_length, petal_width"), "{out}");
    assert!(out.contains("setosa") && out.contains("virginica"), "{out}");
    let o = bottleneck(&["data", "inspect", "csv", "--path", &path], &[]);
    let err = assert_clean_failure(&o);
    assert!(err.contains("flowers.csv") && err.contains("`species`"), "{err}");
}

#[test]
fn fetch_with_a_wrong_checksum_fails_and_writes_nothing() {
    // The loopback mirror serves generated files, whose digests are not the published ones.
    let tmp = tempfile::tempdir().unwrap();
    common::write_mnist_dir(tmp.path(), 5, 5, true);
    let files: HashMap<String, Vec<u8>> = common::list_dir(tmp.path())
        .into_iter()
        .map(|n| (n.clone(), std::fs::read(tmp.path().join(&n)).unwrap()))
        .collect();
    let url = common::serve(files);
    let cache = tempfile::tempdir().unwrap();
    let o =
        bottleneck(&["data", "fetch", "fashion-mnist", "--mirror", &url], &[("BOTTLENECK_CACHE_DIR", cache.path())]);
    let err = assert_clean_failure(&o);
    assert!(err.contains("SHA-256 mismatch") && err.contains("train-images-idx3-ubyte.gz"), "{err}");
    assert!(err.contains("3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"), "{err}");
    assert!(common::list_dir(&cache.path().join("fashion-mnist")).is_empty());
}

/// `n` images per class of `size` pixels: a class's hue plus a per-image gradient, so
/// images differ and an autoencoder has something to learn.
fn image_folder(root: &Path, classes: &[&str], n: u32, size: (u32, u32)) {
    for (c, class) in classes.iter().enumerate() {
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..n {
            let img = image::RgbImage::from_fn(size.0 + i % 3, size.1, |x, y| {
                let base = [40 + 80 * c as u32, 200 - 60 * c as u32, 30 + 10 * i];
                image::Rgb(base.map(|b| ((b + 3 * x + 2 * y) % 256) as u8))
            });
            let ext = if i % 2 == 0 { "png" } else { "jpg" };
            img.save(dir.join(format!("{i:03}.{ext}"))).unwrap();
        }
    }
}

#[test]
fn inspect_images_shows_classes_sizes_the_decode_rate_and_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("pics");
    image_folder(&root, &["ant", "bee"], 6, (30, 36));
    let cache = tmp.path().join("cache");
    let args = ["data", "inspect", "images", "--path", root.to_str().unwrap(), "--image-size", "16"];
    let o = bottleneck(&args, &[("BOTTLENECK_CACHE_DIR", &cache)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for want in [
        "sample shape 3×16×16",
        "12 image files, listed from a walk of the folder",
        "images/s",
        "image sizes found: 30×36 (4), 31×36 (4), 32×36 (4)",
        "2 classes",
        "ant",
        "bee",
        "memory: train 0.0 MiB",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // The second look reads the cached file list.
    let o = bottleneck(&args, &[("BOTTLENECK_CACHE_DIR", &cache)]);
    assert!(stdout(&o).contains("listed from the cached file list"), "{}", stdout(&o));
    // A corrupt image: one clean error that names it and the key that would skip it.
    std::fs::write(root.join("bee/007.jpg"), b"not a jpeg at all").unwrap();
    let err = assert_clean_failure(&bottleneck(&args, &[("BOTTLENECK_CACHE_DIR", &cache)]));
    assert!(err.contains("bee/007.jpg") && err.contains("data.skip_bad = true"), "{err}");
    let mut skip = args.to_vec();
    skip.push("--skip-bad");
    let o = bottleneck(&skip, &[("BOTTLENECK_CACHE_DIR", &cache)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("skipped 1 unreadable images"), "{}", stdout(&o));
}

#[test]
fn an_image_folder_trains_a_conv_vae_end_to_end_with_its_report() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("faces");
    image_folder(&root, &["a", "b", "c"], 10, (40, 48));
    let path = format!("data.path={}", root.display());
    let exp = crate::run::experiment("images-conv-vae");
    // A small debug run of the experiment on the folder, plus `extra` overrides.
    let train = |extra: &[&str]| {
        let mut args = vec!["run", &exp, &path, "data.image_size=16", "model.latent_dim=4", "model.channels=[8,16]"];
        args.push("train=debug");
        args.extend(extra);
        let o = crate::run::run(tmp.path(), &args);
        assert!(o.status.success(), "{}", crate::run::text(&o.stderr));
    };
    train(&[]);
    let d = crate::run::run_dirs(tmp.path(), "images-conv-vae").pop().unwrap();
    let m = crate::run::manifest(&d);
    assert_eq!(m["status"], "done");
    assert!(d.join("report.html").is_file() && d.join("plots/reconstructions.png").is_file());
    // 30 images, data.test_fraction = 0.1: 3 test codes with their labels.
    let file = std::fs::File::open(d.join("latents.parquet")).unwrap();
    let df = polars::prelude::SerReader::finish(
        <polars::prelude::ParquetReader<_> as polars::prelude::SerReader<_>>::new(file),
    )
    .unwrap();
    assert_eq!((df.height(), df.width()), (3, 2 + 4));
    let cfg = std::fs::read_to_string(d.join("config.toml")).unwrap();
    assert!(cfg.contains(&format!("path = \"{}\"", root.display())), "{cfg}");
    // The same run with training-time flips and crops sees other training inputs (and the
    // same test images): its training loss differs.
    train(&["data.random_flip=true", "data.random_crop_padding=2"]);
    let aug = crate::run::manifest(&crate::run::run_dirs(tmp.path(), "images-conv-vae").pop().unwrap());
    let loss = |m: &serde_json::Value| m["metrics"]["final_train_loss"].as_f64().unwrap();
    assert!((loss(&aug) - loss(&m)).abs() > 1e-6, "{} vs {}", loss(&aug), loss(&m));
}
