//! `bottleneck run | resume | config` on real Fashion-MNIST with the debug preset.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use polars::prelude::{ChunkCompareEq as _, ParquetReader, SerReader};

use crate::{board, common};

pub fn experiment(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments").join(format!("{name}.toml")).display().to_string()
}

pub fn cmd(cwd: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bottleneck"));
    c.args(args)
        .current_dir(cwd)
        .env_remove("BOTTLENECK_DATA_DIR")
        .env_remove("BOTTLENECK_RUNS_DIR")
        .env("RUST_LOG", "warn");
    c
}

pub fn run(cwd: &Path, args: &[&str]) -> Output {
    cmd(cwd, args).output().unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The only run directory under `cwd/runs/<name>/`.
pub fn run_dirs(cwd: &Path, name: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cwd.join("runs").join(name))
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

pub fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn a_debug_run_writes_a_complete_run_directory() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let o = run(
        tmp.path(),
        &["run", &experiment("fashion-dense"), "train=debug", "model.latent_dim=8", "data.val_fraction=0.1"],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("test_mse"), "{}", text(&o.stdout));
    let dirs = run_dirs(tmp.path(), "fashion-dense");
    assert_eq!(dirs.len(), 1);
    let d = &dirs[0];
    for f in [
        "config.toml",
        "overrides.txt",
        "manifest.json",
        "metrics.csv",
        "metrics.parquet",
        "timings.csv",
        "latents.parquet",
        "train.log",
        "checkpoints/last.safetensors",
        "checkpoints/best.safetensors",
    ] {
        assert!(d.join(f).is_file(), "missing {f}");
    }
    assert_eq!(
        std::fs::read_to_string(d.join("overrides.txt")).unwrap(),
        "train=debug\nmodel.latent_dim=8\ndata.val_fraction=0.1\n"
    );
    let m = manifest(d);
    assert_eq!(m["status"], "done");
    assert_eq!(m["seed"], 0);
    assert_eq!(m["metrics"]["best_epoch"], 1.0, "the validation split picks the best checkpoint");
    let mse = m["metrics"]["test_mse"].as_f64().unwrap();
    assert!(mse > 0.0 && mse < 0.2, "test_mse {mse}");
    // The saved config is the resolved one, and it loads back.
    let cfg = std::fs::read_to_string(d.join("config.toml")).unwrap();
    assert!(cfg.contains("latent_dim = 8") && cfg.contains("max_batches = 5"), "{cfg}");
    // metrics.csv: one row for the one epoch.
    let csv = std::fs::read_to_string(d.join("metrics.csv")).unwrap();
    // One term, `recon`, for a plain autoencoder: its columns repeat the totals.
    assert_eq!(csv.lines().next().unwrap(), "epoch,train_loss,val_loss,lr,train_recon,val_recon");
    assert_eq!(csv.lines().count(), 2, "{csv}");
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    assert_eq!((row[1], row[2]), (row[4], row[5]), "{csv}");
    // latents.parquet: 10000 test rows, a label column and 8 latent columns.
    let df = ParquetReader::new(std::fs::File::open(d.join("latents.parquet")).unwrap()).finish().unwrap();
    assert_eq!(df.height(), 10_000);
    let names: Vec<String> = df.get_column_names().iter().map(ToString::to_string).collect();
    assert_eq!(names, ["index", "label", "z0", "z1", "z2", "z3", "z4", "z5", "z6", "z7"]);
    // The checkpoint is a plain safetensors file with the model's weights by name.
    let bytes = std::fs::read(d.join("checkpoints/last.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("encoder.0.weight").unwrap().shape(), [512, 784]);
    assert_eq!(st.tensor("decoder.2.weight").unwrap().shape(), [784, 512]);
    assert!(st.tensor("optim.m.encoder.0.weight").is_ok());
}

#[test]
fn same_seed_same_metrics() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let o = run(tmp.path(), &["run", &experiment("fashion-dense"), "train=debug", "train.epochs=2", "--quiet"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    let dirs = run_dirs(tmp.path(), "fashion-dense");
    assert_eq!(dirs.len(), 2, "two run directories, even within one second");
    let a = std::fs::read(dirs[0].join("metrics.csv")).unwrap();
    let b = std::fs::read(dirs[1].join("metrics.csv")).unwrap();
    assert_eq!(text(&a), text(&b));
    assert_eq!(manifest(&dirs[0])["metrics"]["test_mse"], manifest(&dirs[1])["metrics"]["test_mse"]);
}

/// Starts a 3-epoch run of `fashion-dense` and signals it once its first epoch is on disk.
fn start_and_signal(cwd: &Path, signal: &str, extra: &[&str]) -> (Child, PathBuf) {
    start_and_signal_exp(cwd, "fashion-dense", signal, extra)
}

/// Starts a 3-epoch run of experiment `name` and signals it once its first epoch is on disk.
pub fn start_and_signal_exp(cwd: &Path, name: &str, signal: &str, extra: &[&str]) -> (Child, PathBuf) {
    let mut args = vec!["run", "--quiet"];
    let e = experiment(name);
    args.push(&e);
    args.extend(["train=debug", "train.epochs=3", "train.max_batches=60"]);
    args.extend(extra);
    let mut child = cmd(cwd, &args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let t0 = Instant::now();
    let dir = loop {
        if let Some(d) = run_dirs(cwd, name).pop() {
            if d.join("metrics.csv").is_file() {
                break d;
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(300), "the run never finished an epoch");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before the signal");
        std::thread::sleep(Duration::from_millis(20));
    };
    let ok = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
    (child, dir)
}

#[test]
fn interrupt_then_resume_ends_as_an_uninterrupted_run() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let (child, dir) = start_and_signal(tmp.path(), "-INT", &[]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("bottleneck resume"), "{}", text(&out.stderr));
    let m = manifest(&dir);
    assert_eq!(m["status"], "interrupted");
    let o = run(tmp.path(), &["resume", "--quiet", &dir.display().to_string()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(manifest(&dir)["status"], "done");

    // The same run without interruption.
    let other = tempfile::tempdir().unwrap();
    let e = experiment("fashion-dense");
    let o = run(other.path(), &["run", "--quiet", &e, "train=debug", "train.epochs=3", "train.max_batches=60"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let plain = run_dirs(other.path(), "fashion-dense").pop().unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("metrics.csv")).unwrap(),
        std::fs::read_to_string(plain.join("metrics.csv")).unwrap()
    );
    assert_eq!(manifest(&dir)["metrics"]["test_mse"], manifest(&plain)["metrics"]["test_mse"]);

    // TensorBoard sees one curve: the resumed process's file starts with a restart that
    // drops what the stopped one logged past its checkpoint, and what is left is the
    // uninterrupted run's curve, step for step.
    let all = board::events(&dir);
    let files: std::collections::BTreeSet<&str> = all.iter().map(|(f, _)| f.as_str()).collect();
    let suffix = |f: &&&str| f.rsplit('.').next().unwrap_or("").to_string();
    assert_eq!(files.iter().filter(|f| suffix(f) == "train").count(), 2, "{files:?}");
    assert!(files.iter().any(|f| suffix(&f) == "report"), "{files:?}");
    let (resumed, reference) = (board::kept(&all), board::kept(&board::events(&plain)));
    let loss = board::scalars(&resumed, "train/loss");
    assert_eq!(loss.len(), 180, "3 epochs of 60 steps");
    assert!(loss.iter().zip(1..).all(|((step, _), i)| *step == i));
    assert_eq!(loss, board::scalars(&reference, "train/loss"));
    assert_eq!(board::scalars(&resumed, "epoch").iter().map(|e| e.1).collect::<Vec<_>>(), [1.0, 2.0, 3.0]);
    assert_eq!(board::scalars(&resumed, "epoch/lr").len(), 3);
    let test_mse = board::scalars(&resumed, "test/test_mse");
    assert_eq!(test_mse, [(180, manifest(&dir)["metrics"]["test_mse"].as_f64().unwrap() as f32)]);
    let images = board::images(&resumed);
    for tag in ["report/loss", "report/reconstructions", "report/traversals"] {
        assert!(images.iter().any(|i| i.0 == tag && i.1 > 0 && i.2 > 0), "{tag} in {images:?}");
    }
    board::check_projector(&dir, 32);
    // A finished run is not resumed again.
    let o = run(tmp.path(), &["resume", &dir.display().to_string()]);
    assert!(!o.status.success() && text(&o.stderr).contains("already done"), "{}", text(&o.stderr));
}

#[test]
fn an_interrupt_during_the_report_keeps_the_results_and_resume_draws_it() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let e = experiment("fashion-dense");
    let args =
        ["run", "--quiet", &e, "train=debug", "train.epochs=1", "train.max_batches=20", "train.tensorboard=false"];
    let child = cmd(tmp.path(), &args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let t0 = Instant::now();
    // Signalled once the manifest records the run done: the report is being drawn.
    let dir = loop {
        if let Some(d) = run_dirs(tmp.path(), "fashion-dense").pop() {
            if d.join("manifest.json").is_file() && manifest(&d)["status"] == "done" {
                break d;
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(300), "the run never finished");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!dir.join("report.html").exists(), "the report was drawn before the signal");
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("the results are saved; skipping the report"), "{}", text(&out.stderr));
    let before = manifest(&dir);
    assert_eq!(before["status"], "done");
    assert!(!dir.join("report.html").exists());
    // Resuming draws the report it skipped and leaves the results as they were.
    let o = run(tmp.path(), &["resume", "--quiet", &dir.display().to_string()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("its report was never drawn"), "{}", text(&o.stderr));
    assert!(dir.join("report.html").is_file() && dir.join("plots/loss.png").is_file());
    assert_eq!(manifest(&dir), before);
    assert!(!dir.join("tb").exists(), "train.tensorboard=false writes no event files");
    let o = run(tmp.path(), &["resume", &dir.display().to_string()]);
    assert!(!o.status.success() && text(&o.stderr).contains("already done"), "{}", text(&o.stderr));
}

#[test]
fn no_report_skips_the_figures_until_asked() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let e = experiment("fashion-dense");
    let o = run(tmp.path(), &["run", "--quiet", "--no-report", &e, "train=debug"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let dir = run_dirs(tmp.path(), "fashion-dense").pop().unwrap();
    assert_eq!(manifest(&dir)["status"], "done");
    assert!(dir.join("metrics.csv").is_file() && dir.join("latents.parquet").is_file());
    assert!(!dir.join("report.html").exists() && !dir.join("plots").exists());
    // The manifest's versions are the ones built in, as Cargo.lock has them.
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock")).unwrap();
    let locked = |name: &str| {
        let head = format!("name = \"{name}\"\nversion = \"");
        let at = lock.find(&head).unwrap() + head.len();
        lock[at..].split('"').next().unwrap().to_string()
    };
    let versions = &manifest(&dir)["versions"];
    assert_eq!(versions["candle"].as_str().unwrap(), locked("candle-core"), "{versions}");
    assert_eq!(versions["polars"].as_str().unwrap(), locked("polars"), "{versions}");
    assert_eq!(versions["bottleneck"].as_str().unwrap(), env!("CARGO_PKG_VERSION"));
    // `resume` of the finished run draws the report it skipped.
    let o = run(tmp.path(), &["resume", "--quiet", &dir.display().to_string()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(dir.join("report.html").is_file() && dir.join("plots/loss.png").is_file());

    let runs = tmp.path().join("swept");
    let o = run(
        tmp.path(),
        &[
            "sweep",
            "--quiet",
            "--no-report",
            "--runs",
            &runs.display().to_string(),
            &e,
            "train=debug",
            "model.latent_dim=2,4",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let sweep = std::fs::read_dir(runs.join("fashion-dense")).unwrap().next().unwrap().unwrap().path();
    assert!(sweep.join("summary.csv").exists(), "the summary is still written");
    assert!(!sweep.join("report.html").exists() && !sweep.join("000/report.html").exists());
    assert!(manifest(&sweep.join("001"))["status"] == "done");
    let o = run(tmp.path(), &["report", &sweep.display().to_string()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(sweep.join("report.html").is_file() && sweep.join("000/report.html").is_file());
}

/// Every column of a Parquet file as f64 (numbers) or strings.
fn parquet(path: &Path) -> polars::prelude::DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap()
}

#[test]
fn encode_writes_the_codes_of_any_split_or_other_data() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let e = experiment("fashion-dense");
    let o = run(
        tmp.path(),
        &["run", "--quiet", "--no-report", &e, "train=debug", "model.latent_dim=4", "data.val_fraction=0.1"],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let dir = run_dirs(tmp.path(), "fashion-dense").pop().unwrap();
    let d = dir.display().to_string();
    let out = tmp.path().join("codes.parquet");
    let o = run(tmp.path(), &["encode", &d, "--split", "all", "--out", &out.display().to_string()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("train 54000, val 6000, test 10000 rows (k = 4)"), "{}", text(&o.stdout));
    let df = parquet(&out);
    let names: Vec<String> = df.get_column_names().iter().map(ToString::to_string).collect();
    assert_eq!(names, ["split", "index", "label", "z0", "z1", "z2", "z3"]);
    assert_eq!(df.height(), 70_000);
    // The test rows are the codes the run itself wrote to latents.parquet.
    let latents = parquet(&dir.join("latents.parquet"));
    let test = df.filter(&df.column("split").unwrap().str().unwrap().equal("test")).unwrap();
    for c in ["label", "z0", "z3"] {
        assert!(test.column(c).unwrap().equals(latents.column(c).unwrap()), "{c}");
    }

    // Other data through data.* overrides, normalised as the run's: sprites at 28 x 28
    // have the run's sample shape; at 32 x 32 they do not.
    let o = run(
        tmp.path(),
        &[
            "encode",
            &d,
            "--out",
            &tmp.path().join("s.parquet").display().to_string(),
            "data.name=sprites",
            "data.samples=500",
            "data.image_size=28",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let s = parquet(&tmp.path().join("s.parquet"));
    let names: Vec<String> = s.get_column_names().iter().map(ToString::to_string).collect();
    assert!(names.contains(&"factor_shape".to_string()) && names.contains(&"factor_pos_x".to_string()), "{names:?}");
    assert!(s.height() > 0 && s.height() < 500, "the test split of 500 sprites: {}", s.height());
    let o = run(
        tmp.path(),
        &["encode", &d, "--out", "x.parquet", "data.name=sprites", "data.samples=500", "data.image_size=32"],
    );
    assert!(
        !o.status.success() && text(&o.stderr).contains("shape [1, 32, 32]") && text(&o.stderr).contains("[1, 28, 28]"),
        "{}",
        text(&o.stderr)
    );
    let o = run(tmp.path(), &["encode", &d, "--out", "x.parquet", "model.latent_dim=8"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("only data.<key>=<value> overrides"),
        "{}",
        text(&o.stderr)
    );
    let o = run(tmp.path(), &["encode", &d, "--split", "validation", "--out", "x.parquet"]);
    assert!(!o.status.success() && text(&o.stderr).contains("one of train, val, test, all"), "{}", text(&o.stderr));
    assert!(!tmp.path().join("x.parquet").exists());
}

#[test]
fn encoding_other_data_needs_not_the_runs_own() {
    // A table run whose file then moves: encoding the moved file with data.path needs
    // only what the run kept of its data (sample shape, fitted normaliser), and gives the
    // run's own test codes for the same rows.
    let tmp = tempfile::tempdir().unwrap();
    let table = tmp.path().join("blobs.csv");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/blobs8.csv"), &table).unwrap();
    let path = format!("data.path=\"{}\"", table.display());
    let o = run(tmp.path(), &["run", "--quiet", "--no-report", &experiment("csv-tabular"), &path, "train.epochs=2"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let dir = run_dirs(tmp.path(), "csv-tabular").pop().unwrap();
    assert!(dir.join("data.safetensors").is_file());
    let d = dir.display().to_string();
    let moved = tmp.path().join("moved.csv");
    std::fs::rename(&table, &moved).unwrap();
    let out = tmp.path().join("codes.parquet");
    let other = format!("data.path=\"{}\"", moved.display());
    let o = run(tmp.path(), &["encode", &d, "--split", "test", "--out", &out.display().to_string(), &other]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // The standard normaliser was fitted on the run's training rows: the codes match the
    // run's latents only if encode applied that one.
    let (codes, latents) = (parquet(&out), parquet(&dir.join("latents.parquet")));
    assert_eq!(codes.height(), 60);
    for c in ["label", "z0", "z1"] {
        assert!(codes.column(c).unwrap().equals(latents.column(c).unwrap()), "{c}");
    }
    // Its own splits still need its own data, and the error names the missing file.
    let o = run(tmp.path(), &["encode", &d, "--out", "x.parquet"]);
    assert!(!o.status.success() && text(&o.stderr).contains("blobs.csv"), "{}", text(&o.stderr));
    // A run from before data.safetensors loads its own data for them: the same codes.
    std::fs::copy(&moved, &table).unwrap();
    std::fs::remove_file(dir.join("data.safetensors")).unwrap();
    let again = tmp.path().join("again.parquet");
    let o = run(tmp.path(), &["encode", &d, "--split", "test", "--out", &again.display().to_string(), &other]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(parquet(&again).equals(&codes));
    // A damaged file of the run's data facts is an error naming it, not a panic.
    std::fs::write(dir.join("data.safetensors"), b"not safetensors").unwrap();
    let o = run(tmp.path(), &["encode", &d, "--out", "x.parquet", &other]);
    assert!(
        !o.status.success()
            && text(&o.stderr).contains("data.safetensors")
            && text(&o.stderr).contains("not a safetensors"),
        "{}",
        text(&o.stderr)
    );
    assert!(!tmp.path().join("x.parquet").exists());
}

#[test]
fn resume_epochs_trains_a_finished_run_on() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let e = experiment("fashion-dense");
    let base = ["--quiet", "--no-report", &e, "train=debug", "model.latent_dim=4"];
    let o = run(tmp.path(), &[&["run"][..], &base, &["train.epochs=2", "device=auto"]].concat());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let dir = run_dirs(tmp.path(), "fashion-dense").pop().unwrap();
    let d = dir.display().to_string();
    // The manifest records the device `auto` resolved to (no GPU here), not the config's text.
    let m = manifest(&dir);
    assert_eq!((m["device"].as_str(), m.get("gpu")), (Some("cpu"), None), "{m}");
    let o = run(tmp.path(), &["resume", "--quiet", "--no-report", "--epochs", "2", &d]);
    assert!(!o.status.success() && text(&o.stderr).contains("has done 2 epochs"), "{}", text(&o.stderr));
    // A device that is not there: an error naming it, before the config is touched.
    let o = run(tmp.path(), &["resume", "--quiet", "--no-report", "--epochs", "3", "--device", "cuda:7", &d]);
    let err = text(&o.stderr);
    assert!(o.status.code() == Some(1) && err.contains("\"cuda:7\"") && err.contains("--device"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(std::fs::read_to_string(dir.join("config.toml")).unwrap().contains("epochs = 2"));
    assert_eq!(manifest(&dir)["status"], "done");
    let o = run(tmp.path(), &["resume", "--quiet", "--no-report", "--epochs", "3", "--device", "cpu", &d]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let m = manifest(&dir);
    assert_eq!((m["status"].as_str(), m["epochs_done"].as_u64()), (Some("done"), Some(3)), "{m}");
    assert_eq!(m["device"], "cpu");
    assert!(std::fs::read_to_string(dir.join("config.toml")).unwrap().contains("epochs = 3"));
    assert!(std::fs::read_to_string(dir.join("overrides.txt")).unwrap().ends_with("train.epochs=3\n"));
    // The same as three epochs in one go (a constant learning rate).
    let other = tempfile::tempdir().unwrap();
    let o = run(other.path(), &[&["run"][..], &base, &["train.epochs=3"]].concat());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let plain = run_dirs(other.path(), "fashion-dense").pop().unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("metrics.csv")).unwrap(),
        std::fs::read_to_string(plain.join("metrics.csv")).unwrap()
    );
    assert_eq!(m["metrics"]["test_mse"], manifest(&plain)["metrics"]["test_mse"]);

    // train.init_from: a new run starts from these weights; another k does not fit.
    let first_loss = |d: &Path| -> f64 {
        let csv = std::fs::read_to_string(d.join("metrics.csv")).unwrap();
        csv.lines().nth(1).unwrap().split(',').nth(1).unwrap().parse().unwrap()
    };
    let warm = tempfile::tempdir().unwrap();
    let init = format!("train.init_from={d}");
    let o = run(warm.path(), &[&["run"][..], &base, &[&init]].concat());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let started = run_dirs(warm.path(), "fashion-dense").pop().unwrap();
    assert!(
        first_loss(&started) < first_loss(&dir),
        "a warm start's first epoch ({}) beats the cold start's ({})",
        first_loss(&started),
        first_loss(&dir)
    );
    let o = run(warm.path(), &["run", "--quiet", "--no-report", &e, "train=debug", "model.latent_dim=8", &init]);
    let err = text(&o.stderr);
    assert!(
        !o.status.success() && err.contains("train.init_from") && err.contains("[4, 256]") && err.contains("[8, 256]"),
        "{err}"
    );
}

#[test]
fn a_killed_run_keeps_its_files_and_resumes() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, dir) = start_and_signal(tmp.path(), "-KILL", &["model.latent_dim=4"]);
    child.wait().unwrap();
    // Whatever had been written is complete: the metrics parse, the checkpoint loads.
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert!(csv.lines().count() >= 2, "{csv}");
    safetensors::SafeTensors::deserialize(&std::fs::read(dir.join("checkpoints/last.safetensors")).unwrap()).unwrap();
    assert_eq!(manifest(&dir)["status"], "running", "SIGKILL leaves no chance to write more");
    let o = run(tmp.path(), &["resume", "--quiet", &dir.display().to_string()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_to_string(dir.join("metrics.csv")).unwrap().lines().count(), 4);
}

#[test]
fn a_non_finite_loss_fails_the_run_with_the_reason() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let e = experiment("fashion-dense");
    let o = run(tmp.path(), &["run", &e, "train=debug", "model.output_activation=identity", "train.lr=1e30"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("run failed") && err.contains("training loss became"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let d = run_dirs(tmp.path(), "fashion-dense").pop().unwrap();
    let m = manifest(&d);
    assert_eq!(m["status"], "failed");
    assert!(m["reason"].as_str().unwrap().contains("train.lr"), "{m}");
}

#[test]
fn bad_overrides_fail_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let e = experiment("fashion-dense");
    for (o, key) in [
        ("model.latent_dimm=3", "model.latent_dimm"),
        ("train.lr=abc", "train.lr"),
        ("device=cuda:0", "device"),
        ("kernels=fused", "kernels"),
        ("train.threads=100000", "train.threads"),
    ] {
        let out = run(tmp.path(), &["run", &e, o]);
        assert_eq!(out.status.code(), Some(1));
        let err = text(&out.stderr);
        assert!(err.starts_with("error: ") && err.contains(&format!("`{key}`")), "{err}");
        assert!(!tmp.path().join("runs").exists(), "nothing is created before the config is valid");
    }
    // A table or image folder that is not there: an error naming data.path and where it
    // was set, before any run or sweep directory (`config` still prints the experiment).
    let missing = tmp.path().join("nope.csv");
    let csv = format!("data.path={}", missing.display());
    let file = tempfile::NamedTempFile::new().unwrap();
    let not_a_folder = format!("data.path={}", file.path().display());
    for (args, want) in [
        (vec!["run", &experiment("images-conv-vae")], "needs the folder of images in data.path"),
        (vec!["run", &experiment("csv-tabular"), csv.as_str()], "does not exist; give the table's file"),
        (vec!["sweep", &experiment("csv-tabular"), csv.as_str(), "model.latent_dim=2,3"], "does not exist"),
        (vec!["run", &experiment("images-conv-vae"), not_a_folder.as_str()], "is not a folder"),
    ] {
        let out = run(tmp.path(), &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains("`data.path`") && err.contains(want), "{args:?}: {err}");
        assert!(!tmp.path().join("runs").exists(), "{args:?} made a directory");
    }
    assert!(run(tmp.path(), &["config", &experiment("images-conv-vae")]).status.success());
    // Someone else's BOTTLENECK_ variable (scripts/slurm-local.sh documents this one) is
    // not a config key.
    let out = cmd(tmp.path(), &["config", &e]).env("BOTTLENECK_SLURM_DIR", "/tmp/slurm").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// The last epoch's training and validation loss (`metrics.csv`) and the test MSE.
fn final_losses(dir: &Path) -> [f64; 3] {
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    let col = |name: &str| -> f64 {
        let j = rows[0].iter().position(|h| *h == name).unwrap_or_else(|| panic!("no {name} in {:?}", rows[0]));
        rows.last().unwrap()[j].parse().unwrap()
    };
    [col("train_loss"), col("val_loss"), manifest(dir)["metrics"]["test_mse"].as_f64().unwrap()]
}

#[test]
fn kernels_candle_trains_to_the_losses_of_the_fused_kernels() {
    // candle's own ops on the CPU (the path a GPU takes) against the fused CPU kernels:
    // the same 2 epochs from the same seed end within 1% of each other.
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    for name in ["fashion-dense", "fashion-conv", "fashion-vae"] {
        let mut got = Vec::new();
        for kernels in ["auto", "candle"] {
            let cwd = tmp.path().join(name).join(kernels);
            std::fs::create_dir_all(&cwd).unwrap();
            let k = format!("kernels={kernels}");
            let args =
                ["run", &experiment(name), &k, "train.epochs=2", "data.train_subset=4000", "data.test_subset=500"];
            let o = run(
                &cwd,
                &[&args[..], &["data.val_fraction=0.1", "train.nll_samples=0", "--no-report", "--quiet"]].concat(),
            );
            assert!(o.status.success(), "{name} {k}: {}", text(&o.stderr));
            let d = run_dirs(&cwd, name).pop().unwrap();
            let config = std::fs::read_to_string(d.join("config.toml")).unwrap();
            assert!(config.contains(&format!("kernels = \"{kernels}\"")), "{config}");
            got.push(final_losses(&d));
        }
        for (what, (a, b)) in ["train loss", "validation loss", "test MSE"].iter().zip(got[0].iter().zip(&got[1])) {
            assert!((a - b).abs() <= 0.01 * a.abs(), "{name}: {what} {a} (kernels) vs {b} (candle)");
        }
    }
}

#[test]
fn config_prints_values_and_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(tmp.path(), &["config", &experiment("fashion-denoising"), "train.lr=3e-4"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let line = out.lines().find(|l| l.starts_with("train.lr = ")).unwrap();
    assert!(line.contains("0.0003") && line.contains("command-line override `train.lr=3e-4`"), "{line}");
    let line = out.lines().find(|l| l.starts_with("model.kind = ")).unwrap();
    assert!(line.contains("\"denoising\"") && line.contains("configs/model/denoising.toml:2"), "{line}");
}

#[test]
fn a_csv_table_trains_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/blobs8.csv");
    let path = format!("data.path=\"{}\"", csv.display());
    let o = run(tmp.path(), &["run", &experiment("csv-tabular"), &path, "train.epochs=3", "--quiet"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let d = run_dirs(tmp.path(), "csv-tabular").pop().unwrap();
    let m = manifest(&d);
    assert_eq!(m["status"], "done");
    // 300 rows, 20% test: 60 test latents with the string labels mapped to 3 classes.
    let df = ParquetReader::new(std::fs::File::open(d.join("latents.parquet")).unwrap()).finish().unwrap();
    assert_eq!((df.height(), df.width()), (60, 4));
}

#[test]
fn a_denoising_run_draws_its_denoising_grid_and_report_redraws_it() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let o = run(tmp.path(), &["run", "--quiet", &experiment("fashion-denoising"), "train=debug"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("report.html"), "{}", text(&o.stdout));
    let d = run_dirs(tmp.path(), "fashion-denoising").pop().unwrap();
    let page = std::fs::read_to_string(d.join("report.html")).unwrap();
    assert!(page.contains("plots/denoising.png") && page.contains("linear_probe_accuracy"), "{page}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("analysis.json")).unwrap()).unwrap();
    for k in ["linear_probe_accuracy", "knn_accuracy", "trustworthiness"] {
        let v = json["metrics"][k].as_f64().unwrap();
        assert!(v > 0.1 && v <= 1.0, "{k} = {v}");
    }
    // Every code gets its unit metrics; only data with known factors gets MIG and DCI.
    let k = json["units"]["unit_variance"].as_array().unwrap().len();
    assert_eq!(k, 32, "{json}");
    let active = json["metrics"]["active_units"].as_f64().unwrap();
    assert!((1.0..=32.0).contains(&active), "{json}");
    let (dc, dd) = (
        json["metrics"]["intrinsic_dim_codes"].as_f64().unwrap(),
        json["metrics"]["intrinsic_dim_data"].as_f64().unwrap(),
    );
    assert!(dc > 1.0 && dc < 32.0 && dd > 2.0 && dd < 784.0, "{json}");
    assert!(json["metrics"].get("mig").is_none() && json["units"].get("mutual_info").is_none(), "{json}");
    // `bottleneck report` redraws from what is on disk.
    std::fs::remove_dir_all(d.join("plots")).unwrap();
    let o = run(tmp.path(), &["report", &d.display().to_string()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for stem in ["loss", "latent_pca", "latent_tsne", "reconstructions", "denoising", "interpolation", "traversals"] {
        let png = d.join(format!("plots/{stem}.png"));
        assert!(std::fs::metadata(&png).is_ok_and(|m| m.len() > 2_000), "{}", png.display());
        assert!(d.join(format!("plots/{stem}.svg")).is_file());
    }
    // Not a run or sweep directory: a clear error.
    let o = run(tmp.path(), &["report", &tmp.path().display().to_string()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("neither a run directory"), "{}", text(&o.stderr));
}

#[test]
fn a_run_on_known_factors_scores_its_code_against_them() {
    let tmp = tempfile::tempdir().unwrap();
    let e = experiment("sprites-vae");
    let o = run(tmp.path(), &["run", "--quiet", &e, "train=debug", "data.samples=1200", "train.max_batches=15"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let d = run_dirs(tmp.path(), "sprites-vae").pop().unwrap();
    // The test codes keep their factors: an integer column for the shape, floats else.
    let df = ParquetReader::new(std::fs::File::open(d.join("latents.parquet")).unwrap()).finish().unwrap();
    assert_eq!(df.height(), 240);
    assert_eq!(df.column("factor_shape").unwrap().dtype(), &polars::prelude::DataType::UInt32);
    for f in ["factor_scale", "factor_orientation", "factor_pos_x", "factor_pos_y"] {
        assert_eq!(df.column(f).unwrap().dtype(), &polars::prelude::DataType::Float32, "{f}");
    }
    assert!(df.column("z9").is_ok());
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("analysis.json")).unwrap()).unwrap();
    for k in ["mig", "sap", "dci_disentanglement", "dci_completeness", "dci_informativeness"] {
        let v = json["metrics"][k].as_f64().unwrap_or_else(|| panic!("no {k}: {json}"));
        assert!((0.0..=1.0).contains(&v), "{k} = {v}");
    }
    let names: Vec<&str> = json["units"]["factors"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(names, ["shape", "scale", "orientation", "pos_x", "pos_y"]);
    let mi = json["units"]["mutual_info"].as_array().unwrap();
    assert_eq!((mi.len(), mi[0].as_array().unwrap().len()), (10, 5), "one row per unit, one column per factor");
    let page = std::fs::read_to_string(d.join("report.html")).unwrap();
    assert!(page.contains("dci_disentanglement"), "the report shows the factor metrics");
    for stem in ["traversals", "factor_map"] {
        assert!(page.contains(&format!("plots/{stem}.png")), "{stem} not in the report");
        assert!(std::fs::metadata(d.join(format!("plots/{stem}.png"))).is_ok_and(|m| m.len() > 2_000), "{stem}");
    }
}
