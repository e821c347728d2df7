//! `bottleneck sweep` end to end on real Fashion-MNIST with the debug preset: the grid,
//! the summary, failing points, Ctrl-C, SIGKILL + `--resume`, and the Slurm launcher on
//! a real single-node cluster.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use polars::prelude::*;

use crate::common;
use crate::run::{cmd, experiment, text};

/// The only sweep directory under `cwd/runs/<name>/`.
pub fn sweep_dir(cwd: &Path, name: &str) -> PathBuf {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(cwd.join("runs").join(name)).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(v.len(), 1, "{v:?}");
    v.pop().unwrap()
}

pub fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

pub fn status(dir: &Path) -> String {
    manifest(dir)["status"].as_str().unwrap().to_string()
}

/// summary.parquet, checked against summary.csv (same rows, same statuses).
pub fn summary(dir: &Path) -> DataFrame {
    let df = ParquetReader::new(std::fs::File::open(dir.join("summary.parquet")).unwrap()).finish().unwrap();
    let csv = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), df.height() + 1, "{csv}");
    df
}

pub fn column_str(df: &DataFrame, name: &str) -> Vec<String> {
    let c = df.column(name).unwrap().str().unwrap();
    (0..c.len()).map(|i| c.get(i).unwrap_or_default().to_string()).collect()
}

pub fn column_i64(df: &DataFrame, name: &str) -> Vec<i64> {
    let c = df.column(name).unwrap().cast(&DataType::Int64).unwrap();
    let c = c.i64().unwrap();
    (0..c.len()).map(|i| c.get(i).unwrap()).collect()
}

pub fn column_f64(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
    let c = df.column(name).unwrap().f64().unwrap();
    (0..c.len()).map(|i| c.get(i)).collect()
}

/// Checks the six-point debug sweep over k: a done run directory per k, in order.
pub fn check_k_sweep(dir: &Path) {
    let df = summary(dir);
    assert_eq!(df.height(), 6);
    assert_eq!(column_i64(&df, "model.latent_dim"), [2, 4, 8, 16, 32, 64]);
    assert_eq!(column_str(&df, "status"), ["done"; 6], "{df}");
    assert!(column_f64(&df, "test_mse").iter().all(|v| v.is_some_and(|v| v > 0.0 && v < 0.5)), "{df}");
    for (i, k) in [2, 4, 8, 16, 32, 64].iter().enumerate() {
        let point = dir.join(format!("{i:03}"));
        let cfg = std::fs::read_to_string(point.join("config.toml")).unwrap();
        assert!(cfg.contains(&format!("latent_dim = {k}\n")), "{cfg}");
        assert!(point.join("latents.parquet").is_file() && point.join("metrics.csv").is_file());
        let o = std::fs::read_to_string(point.join("overrides.txt")).unwrap();
        assert!(o.starts_with("train=debug\n") && o.ends_with(&format!("\nmodel.latent_dim={k}\n")), "{o}");
    }
    let spec = std::fs::read_to_string(dir.join("sweep.toml")).unwrap();
    assert!(spec.contains("key = \"model.latent_dim\""), "{spec}");
}

/// A PNG that decodes and is not one flat colour.
fn check_png(path: &Path) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = &buf[..info.buffer_size()];
    let distinct: std::collections::HashSet<&[u8]> = px.chunks(info.color_type.samples()).collect();
    assert!(info.width > 100 && info.height > 100 && distinct.len() > 8, "{} looks blank", path.display());
    let svg = path.with_extension("svg");
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"), "{}", svg.display());
}

/// The figures and report.html of the k sweep and its runs.
fn check_report(dir: &Path) {
    check_png(&dir.join("plots/sweep_curve.png"));
    check_png(&dir.join("plots/probe_curve.png"));
    check_png(&dir.join("plots/dimensions_curve.png"));
    // The analysis metrics and the PCA baseline join the summary.
    let df = summary(dir);
    for col in ["linear_probe_accuracy", "knn_accuracy", "trustworthiness", "pca_probe_accuracy"] {
        let v = column_f64(&df, col);
        assert!(v.iter().all(|a| a.is_some_and(|a| a > 0.1 && a <= 1.0)), "{col}: {v:?}");
    }
    let pca_mse = column_f64(&df, "pca_test_mse");
    assert!(pca_mse.windows(2).all(|w| w[1] < w[0]), "{pca_mse:?}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("plots/sweep_curve.png") && html.contains("000/report.html"), "{html}");
    // The PCA baseline falls as k grows (more components keep more of the image).
    let pca: Vec<f64> = std::fs::read_to_string(dir.join("pca_baseline.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(pca.len(), 6);
    assert!(pca.windows(2).all(|w| w[1] < w[0]), "{pca:?}");
    // Published PCA error of Fashion-MNIST at k = 2 (scikit-learn on the same split): 0.0461.
    assert!((pca[0] - 0.0461).abs() < 5e-4, "{pca:?}");
    for (i, latent) in
        ["latent", "latent_pca", "latent_pca", "latent_pca", "latent_pca", "latent_pca"].iter().enumerate()
    {
        let plots = dir.join(format!("{i:03}/plots"));
        for stem in ["loss", latent, "reconstructions", "interpolation"] {
            check_png(&plots.join(format!("{stem}.png")));
        }
        assert_eq!(plots.join("manifold.png").is_file(), i == 0, "the decoded plane is drawn for k = 2 only");
        let page = std::fs::read_to_string(dir.join(format!("{i:03}/report.html"))).unwrap();
        assert!(page.contains("plots/reconstructions.png") && page.contains("../report.html"), "{page}");
    }
    // In a real browser: no console errors, every image decoded.
    let browser = crate::browser::Driver::start();
    assert_eq!(
        browser.check(&dir.join("report.html")),
        9,
        "three sweep curves (error, probe, dimensions) and six latent spaces"
    );
    assert_eq!(
        browser.check(&dir.join("000/report.html")),
        6,
        "loss, latent, reconstructions, interpolation, manifold, traversals"
    );
    assert_eq!(
        browser.check(&dir.join("001/report.html")),
        6,
        "loss, PCA, t-SNE, reconstructions, interpolation, traversals"
    );
}

#[test]
fn a_debug_sweep_makes_one_run_per_bottleneck_size() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let o = cmd(tmp.path(), &["sweep", &experiment("fashion-bottleneck-sweep"), "train=debug"]).output().unwrap();
    assert!(o.status.success(), "{}\n{}", text(&o.stdout), text(&o.stderr));
    let dir = sweep_dir(tmp.path(), "fashion-bottleneck-sweep");
    check_k_sweep(&dir);
    assert!(text(&o.stdout).contains("summary.csv"), "{}", text(&o.stdout));
    check_report(&dir);
    // A finished sweep resumes to nothing.
    let o = cmd(tmp.path(), &["sweep", "--resume", &dir.display().to_string()]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("0 of 6 points left"), "{}", text(&o.stdout));
}

#[test]
fn seeds_band_the_curve_of_any_numeric_axis() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    // Learning rate as x (three decades: a log axis), two seeds per value.
    let args = ["sweep", &experiment("fashion-dense"), "train=debug", "train.lr=1e-4,1e-3,1e-2", "seed=0,1"];
    let o = cmd(tmp.path(), &args).output().unwrap();
    assert!(o.status.success(), "{}\n{}", text(&o.stdout), text(&o.stderr));
    let dir = sweep_dir(tmp.path(), "fashion-dense");
    let csv = std::fs::read_to_string(dir.join("summary_seeds.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert!(rows[0].starts_with(&["series", "train.lr", "seeds", "test_mse_mean", "test_mse_sd"]), "{csv}");
    assert_eq!(rows.len(), 4, "a row per learning rate: {csv}");
    // Each row's mean, min and max agree with the two points it aggregates.
    let df = summary(&dir);
    let (lrs, mse) = (column_f64(&df, "train.lr"), column_f64(&df, "test_mse"));
    for row in &rows[1..] {
        assert_eq!(row[2], "2", "{csv}");
        let lr: f64 = row[1].parse().unwrap();
        let mine: Vec<f64> =
            lrs.iter().zip(&mse).filter(|(l, _)| (l.unwrap() - lr).abs() < 1e-12).map(|(_, m)| m.unwrap()).collect();
        assert_eq!(mine.len(), 2, "{csv}");
        let mean: f64 = row[3].parse().unwrap();
        let (min, max): (f64, f64) = (row[5].parse().unwrap(), row[6].parse().unwrap());
        assert!((mean - f64::midpoint(mine[0], mine[1])).abs() < 1e-12, "{row:?} vs {mine:?}");
        assert!((min - mine[0].min(mine[1])).abs() < 1e-12 && (max - mine[0].max(mine[1])).abs() < 1e-12);
    }
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(page.contains("Across seeds") && page.contains("(2 seeds: mean, min–max)"), "{page}");
    assert!(page.contains("against train.lr"), "the curve's x is the learning rate");
    for stem in ["sweep_curve", "probe_curve"] {
        assert!(std::fs::metadata(dir.join(format!("plots/{stem}.png"))).is_ok_and(|m| m.len() > 5_000), "{stem}");
    }
    // No PCA line: its k is not what varies.
    assert!(!dir.join("pca_baseline.csv").is_file());

    // Seeds alone: no curve, but the spread over them.
    let tmp = tempfile::tempdir().unwrap();
    let o = cmd(tmp.path(), &["sweep", &experiment("fashion-dense"), "train=debug", "seed=0,1"]).output().unwrap();
    assert!(o.status.success(), "{}\n{}", text(&o.stdout), text(&o.stderr));
    let dir = sweep_dir(tmp.path(), "fashion-dense");
    let csv = std::fs::read_to_string(dir.join("summary_seeds.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines.len() == 2 && lines[0].starts_with("series,seeds,test_mse_mean"), "{csv}");
    assert!(lines[1].starts_with("\"dense autoencoder\",2,"), "{csv}");
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(page.contains("Across seeds") && page.contains("no sweep curve"), "{page}");
    assert!(!dir.join("plots/sweep_curve.png").is_file());
}

#[test]
fn command_line_lists_ranges_and_groups_make_the_grid() {
    let tmp = tempfile::tempdir().unwrap();
    let e = experiment("fashion-dense");
    let o = cmd(
        tmp.path(),
        &["sweep", &e, "model.latent_dim=range(2,34,8)", "model=dense,conv", "train=debug", "--dry-run"],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("8 points"), "{out}");
    assert!(out.contains("007  train=debug model.latent_dim=26 model=conv"), "{out}");
    assert!(!tmp.path().join("runs").exists(), "a dry run writes nothing");
    // A bad list is an error before anything runs.
    let o = cmd(tmp.path(), &["sweep", &e, "model.latent_dim=range(2,34,0)"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("model.latent_dim=range(2,34,0)"), "{}", text(&o.stderr));
    // A bad [launcher.slurm] value is named with its source, before anything is made.
    let o = cmd(
        tmp.path(),
        &["sweep", &e, "model.latent_dim=2,4", "launcher.slurm.mem=lots", "--launcher", "slurm", "--dry-run"],
    )
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("launcher.slurm.mem") && err.contains("\"4G\""), "{err}");
    // Nothing to sweep.
    let o = cmd(tmp.path(), &["sweep", &e, "train=debug"]).output().unwrap();
    assert!(text(&o.stderr).contains("nothing to sweep"), "{}", text(&o.stderr));
    // Every point bad: no sweep directory.
    let o = cmd(tmp.path(), &["sweep", &e, "model.latent_dimm=2,4"]).output().unwrap();
    assert!(text(&o.stderr).contains("unknown key `model.latent_dimm`"), "{}", text(&o.stderr));
    assert!(!tmp.path().join("runs").exists());
}

#[test]
fn gpu_options_are_checked_before_anything_is_made() {
    let tmp = tempfile::tempdir().unwrap();
    let e = experiment("fashion-dense");
    let sweep = |extra: &[&str]| {
        let args = [&["sweep", e.as_str(), "model.latent_dim=2,4", "train=debug"][..], extra].concat();
        cmd(tmp.path(), &args).output().unwrap()
    };
    if !cfg!(feature = "cuda") {
        for gpus in ["0,1", "auto"] {
            let o = sweep(&["--gpus", gpus]);
            let err = text(&o.stderr);
            assert!(o.status.code() == Some(1) && err.contains(&format!("--gpus {gpus}")), "{err}");
            assert!(err.contains("no CUDA support") && err.contains("--features cuda"), "{err}");
        }
    }
    let o = sweep(&["--gpus", "0", "--jobs", "2"]);
    assert!(!o.status.success() && text(&o.stderr).contains("cannot be used with"), "{}", text(&o.stderr));
    let o = sweep(&["--gpus", "0", "--launcher", "slurm"]);
    assert!(o.status.code() == Some(1) && text(&o.stderr).contains("launcher.slurm.gres"), "{}", text(&o.stderr));
    assert!(!tmp.path().join("runs").exists(), "nothing is made");
    // Slurm tasks given a GPU train on the first of their allocation; without one, on
    // the device of the config.
    for (gres, device) in [("gpu:1", true), ("gpu:a100:2", true), ("", false)] {
        let g = format!("launcher.slurm.gres=\"{gres}\"");
        let o = sweep(&["--launcher", "slurm", "--dry-run", &g]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let script = text(&o.stdout);
        let line = script.lines().find(|l| l.contains(" resume --quiet ")).unwrap();
        assert_eq!(line.contains("--device cuda:0 \"$DIR\""), device, "{gres}: {line}");
        assert_eq!(script.contains(&format!("#SBATCH --gres={gres}\n")), device, "{script}");
    }
}

#[test]
fn failing_points_are_marked_and_the_others_finish() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let e = experiment("fashion-dense");
    // (k=0): a value out of range; (lr=1e30, identity output): a NaN loss.
    let args =
        ["sweep", &e, "train=debug", "model.output_activation=identity", "model.latent_dim=4,0", "train.lr=1e-3,1e30"];
    let o = cmd(tmp.path(), &args).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}\n{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stderr).contains("2 of 4 points failed") || text(&o.stderr).contains("3 of 4 points failed"));
    let dir = sweep_dir(tmp.path(), "fashion-dense");
    let df = summary(&dir);
    let status = column_str(&df, "status");
    assert_eq!(status[0], "done", "{df}");
    assert_eq!(status[1], "failed", "{df}");
    assert_eq!(status[2..], ["failed", "failed"], "{df}");
    let reasons = column_str(&df, "reason");
    assert!(reasons[1].contains("training loss became"), "{df}");
    assert!(reasons[2].contains("model.latent_dim") && reasons[2].contains("at least 1"), "{df}");
    // --resume reruns the failed points (they fail again) and leaves the done one alone.
    let before = std::fs::read_to_string(dir.join("000/manifest.json")).unwrap();
    let o = cmd(tmp.path(), &["sweep", "--resume", &dir.display().to_string()]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stdout).contains("1 of 4 points left"), "{}", text(&o.stdout));
    assert_eq!(std::fs::read_to_string(dir.join("000/manifest.json")).unwrap(), before);
    assert_eq!(status_of(&dir, 1), "failed");
    if !cfg!(feature = "cuda") {
        // GPUs this build cannot use: refused before any point is touched.
        let failed = std::fs::read_to_string(dir.join("001/manifest.json")).unwrap();
        let o = cmd(tmp.path(), &["sweep", "--resume", &dir.display().to_string(), "--gpus", "0"]).output().unwrap();
        assert!(o.status.code() == Some(1) && text(&o.stderr).contains("no CUDA support"), "{}", text(&o.stderr));
        assert_eq!(std::fs::read_to_string(dir.join("001/manifest.json")).unwrap(), failed);
    }
}

fn status_of(dir: &Path, i: usize) -> String {
    status(&dir.join(format!("{i:03}")))
}

/// Starts the six-point debug sweep one point at a time and signals it once two points
/// are done.
fn start_and_signal(cwd: &Path, signal: &str) -> (Child, PathBuf) {
    let e = experiment("fashion-bottleneck-sweep");
    // Enough batches per point that a point is mid-training when the signal comes.
    let mut child = cmd(cwd, &["sweep", &e, "train=debug", "train.epochs=2", "train.max_batches=40", "--jobs", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let dir = loop {
        let dirs: Vec<PathBuf> = std::fs::read_dir(cwd.join("runs/fashion-bottleneck-sweep"))
            .map(|rd| rd.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        if let Some(d) = dirs.first() {
            if d.join("001/manifest.json").is_file() && status_of(d, 1) == "done" {
                break d.clone();
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(300), "two points never finished");
        assert!(child.try_wait().unwrap().is_none(), "the sweep ended before the signal");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap().success());
    (child, dir)
}

/// Waits until no point of the sweep is training.
fn settle(dir: &Path) {
    let t0 = Instant::now();
    while (0..6).any(|i| status_of(dir, i) == "running") {
        assert!(t0.elapsed() < Duration::from_secs(120), "a point kept running after its sweep was killed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Resumes and checks that only the points not done before ran.
fn resume_runs_only_the_rest(cwd: &Path, dir: &Path) {
    let done_before: Vec<usize> = (0..6).filter(|&i| status_of(dir, i) == "done").collect();
    assert!(done_before.len() >= 2 && done_before.len() < 6, "{done_before:?}");
    let kept: Vec<String> = done_before
        .iter()
        .map(|i| std::fs::read_to_string(dir.join(format!("{i:03}/manifest.json"))).unwrap())
        .collect();
    let o = cmd(cwd, &["sweep", "--resume", &dir.display().to_string()]).output().unwrap();
    assert!(o.status.success(), "{}\n{}", text(&o.stdout), text(&o.stderr));
    let left = 6 - done_before.len();
    assert!(text(&o.stdout).contains(&format!("{left} of 6 points left")), "{}", text(&o.stdout));
    let started = text(&o.stderr);
    for i in &done_before {
        assert!(!started.contains(&format!("point {i:03} (model.latent_dim")), "point {i} ran again:\n{started}");
    }
    for (i, m) in done_before.iter().zip(kept) {
        assert_eq!(std::fs::read_to_string(dir.join(format!("{i:03}/manifest.json"))).unwrap(), m);
    }
    let df = summary(dir);
    assert_eq!(column_str(&df, "status"), ["done"; 6], "{df}");
    assert_eq!(column_i64(&df, "epochs_done"), [2; 6], "{df}");
}

#[test]
fn ctrl_c_keeps_finished_points_and_resume_runs_the_rest() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let (child, dir) = start_and_signal(tmp.path(), "-INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("bottleneck sweep --resume"), "{}", text(&out.stderr));
    let statuses: Vec<String> = (0..6).map(|i| status_of(&dir, i)).collect();
    assert!(!statuses.contains(&"running".to_string()), "{statuses:?}");
    assert!(statuses.contains(&"pending".to_string()), "no new point starts after Ctrl-C: {statuses:?}");
    assert!(dir.join("summary.csv").is_file());
    // What the Slurm summary job does after an array: points that recorded no outcome
    // are lost, kept to continue (from a checkpoint where they have one); --resume runs them.
    let o = cmd(tmp.path(), &["sweep", "--collect", &dir.display().to_string(), "--mark-lost"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("have not finished"), "{}", text(&o.stderr));
    let statuses: Vec<String> = (0..6).map(|i| status_of(&dir, i)).collect();
    assert!(!statuses.contains(&"pending".to_string()) && !statuses.contains(&"failed".to_string()), "{statuses:?}");
    assert!(manifest(&dir.join("005"))["reason"].as_str().unwrap().contains("Slurm task"), "{statuses:?}");
    resume_runs_only_the_rest(tmp.path(), &dir);
}

#[test]
fn a_killed_sweep_resumes_only_the_remaining_points() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, dir) = start_and_signal(tmp.path(), "-KILL");
    child.wait().unwrap();
    // The point that was training notices its sweep is gone and stops with a checkpoint.
    settle(&dir);
    resume_runs_only_the_rest(tmp.path(), &dir);
}

/// A single-node Slurm cluster from `scripts/slurm-local.sh`, stopped (by PID, through
/// the script) when dropped.
struct Cluster {
    scratch: tempfile::TempDir,
    conf: String,
}

impl Cluster {
    fn start() -> Self {
        let scratch = tempfile::Builder::new().prefix("bn-slurm").tempdir_in("/tmp").unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-local.sh");
        let o = Command::new(&script).arg("start").arg(scratch.path()).output().unwrap();
        assert!(
            o.status.success(),
            "scripts/slurm-local.sh start failed (it needs root or sudo for apt, and ports 6817/6818 free):\n{}",
            text(&o.stderr)
        );
        let conf = text(&o.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("export SLURM_CONF=").map(|v| v.trim_matches(['\'', '"']).to_string()))
            .unwrap_or_else(|| panic!("no export line from slurm-local.sh: {}", text(&o.stdout)));
        Self { scratch, conf }
    }

    fn sweep(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut c = cmd(cwd, args);
        c.env("SLURM_CONF", &self.conf);
        c
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-local.sh");
        let _ = Command::new(script).arg("stop").arg(self.scratch.path()).status();
    }
}

fn with_timeout(mut c: Command, limit: Duration) -> Output {
    let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("timed out after {limit:?}:\n{}\n{}", text(&o.stdout), text(&o.stderr));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn the_slurm_launcher_runs_the_sweep_as_a_job_array() {
    common::fashion_mnist_dir();
    let cluster = Cluster::start();
    let tmp = tempfile::tempdir().unwrap();
    let small = ["launcher.slurm.cpus_per_task=1", "launcher.slurm.mem=1G", "launcher.slurm.max_parallel=2"];

    // The six-point sweep over k, waiting for the array.
    let mut args = vec!["sweep", "--launcher", "slurm"];
    let e = experiment("fashion-bottleneck-sweep");
    args.push(&e);
    args.push("train=debug");
    args.extend(small);
    let o = with_timeout(cluster.sweep(tmp.path(), &args), Duration::from_secs(600));
    assert!(o.status.success(), "{}\n{}", text(&o.stdout), text(&o.stderr));
    let dir = sweep_dir(tmp.path(), "fashion-bottleneck-sweep");
    check_k_sweep(&dir);
    let script = std::fs::read_to_string(dir.join("slurm/array-0.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-5%2") && script.contains("#SBATCH --mem=1G"), "{script}");
    let logs: Vec<String> = std::fs::read_dir(dir.join("slurm"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| Path::new(n).extension().is_some_and(|x| x == "out"))
        .collect();
    let array_id = std::fs::read_to_string(dir.join("sweep.toml"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("array = ").map(|v| v.trim_matches('"').to_string()))
        .unwrap();
    for i in 0..6 {
        assert!(logs.contains(&format!("{array_id}_{i}.out")), "no %A_%a log for task {i}: {logs:?}");
    }
    assert!(logs.iter().any(|l| l.ends_with("-summary.out")), "the dependent summary job did not run: {logs:?}");
    for i in 0..6 {
        assert_eq!(manifest(&dir.join(format!("{i:03}")))["threads"], 1, "threads = cpus_per_task");
    }

    // A task that fails shows as failed; with --no-wait the dependent job writes the summary.
    let tmp = tempfile::tempdir().unwrap();
    let e = experiment("fashion-dense");
    let mut args = vec!["sweep", "--launcher", "slurm", "--no-wait", &e, "train=debug"];
    args.extend(["model.output_activation=identity", "train.lr=1e-3,1e30"]);
    args.extend(small);
    let o = with_timeout(cluster.sweep(tmp.path(), &args), Duration::from_secs(60));
    assert!(o.status.success(), "{}\n{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stdout).contains("not waiting"), "{}", text(&o.stdout));
    let dir = sweep_dir(tmp.path(), "fashion-dense");
    let t0 = Instant::now();
    let df = loop {
        if dir.join("summary.parquet").is_file() {
            break summary(&dir);
        }
        assert!(t0.elapsed() < Duration::from_secs(300), "the summary job never wrote summary.parquet");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(column_str(&df, "status"), ["done", "failed"], "{df}");
    assert!(column_str(&df, "reason")[1].contains("training loss became"), "{df}");

    requeued_at_the_time_limit(&cluster, &small);
    drop(cluster);
}

/// A point that needs several time limits: with `--time=1` (a minute) and the warning 15 s
/// before it, each start stops its point with a checkpoint and requeues its own task; the
/// waiting sweep follows the requeued task, and the point ends `done`, trained exactly as
/// an undisturbed run of the same config.
fn requeued_at_the_time_limit(cluster: &Cluster, small: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let e = experiment("fashion-dense");
    // More than two starts' worth of training (each start trains about 45 s before its
    // warning) however fast the machine: 24 epochs took 100 s on one core of the 2-core CI
    // machine and 66 s on a fast day, so 40 epochs take 110–170 s.
    let long = ["train=debug", "train.epochs=40", "train.max_batches=250", "model.latent_dim=8"];
    let limit = ["launcher.slurm.time=1", "launcher.slurm.signal_seconds=15"];
    // The reference trains on the other core meanwhile.
    let reference_cwd = tmp.path().join("reference");
    std::fs::create_dir_all(&reference_cwd).unwrap();
    let mut args = vec!["run", &e, "train.threads=1"];
    args.extend(long);
    let reference = cmd(&reference_cwd, &args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();

    let mut args = vec!["sweep", "--launcher", "slurm", &e, "seed=range(0,1)"];
    args.extend(long);
    args.extend(limit);
    args.extend(small);
    let t0 = Instant::now();
    let o = with_timeout(cluster.sweep(tmp.path(), &args), Duration::from_secs(900));
    let wall = t0.elapsed().as_secs_f64();
    assert!(o.status.success(), "{}\n{}", text(&o.stdout), text(&o.stderr));
    let dir = sweep_dir(tmp.path(), "fashion-dense");
    let point = dir.join("000");
    let script = std::fs::read_to_string(dir.join("slurm/array-0.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --signal=B:USR1@15") && script.contains("#SBATCH --requeue"), "{script}");
    let array = std::fs::read_to_string(dir.join("sweep.toml"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("array = ").map(|v| v.trim_matches('"').to_string()))
        .unwrap();
    let task_log = std::fs::read_to_string(dir.join(format!("slurm/{array}_0.out"))).unwrap();
    let requeues = task_log.matches("requeueing task").count();
    let starts = crate::reliability::starts(&point);
    let m = manifest(&point);
    eprintln!(
        "slurm requeue: the point trained {:.0} s in {} starts ({requeues} requeues at the time limit), {wall:.0} s for the sweep: {starts:?}",
        m["train_seconds"].as_f64().unwrap(),
        starts.len()
    );
    assert_eq!(m["status"], "done", "{task_log}");
    // A warning that came while the finished point drew its report requeues the task
    // once more, for the report alone.
    let report_only = task_log.matches("the run is done but its report was never drawn").count();
    assert_eq!(task_log.matches("point 0 on ").count(), requeues + 1, "{task_log}");
    assert!(
        report_only <= 1 && starts.len() >= 3 && requeues + 1 == starts.len() + report_only,
        "{starts:?}\n{task_log}"
    );
    assert!(point.join("report.html").is_file(), "{task_log}");
    assert_eq!(m["starts"].as_u64(), Some(starts.len() as u64), "{m}");
    assert_eq!(starts[0], (1, 0), "the first start begins at epoch 1, batch 0");
    assert!(starts.windows(2).all(|w| w[1] >= w[0]), "a start went back to an earlier batch: {starts:?}");
    assert!(task_log.matches("time limit near").count() >= requeues, "{task_log}");

    let o = reference.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let r = crate::run::run_dirs(&reference_cwd, "fashion-dense").pop().unwrap();
    assert_eq!(
        std::fs::read_to_string(point.join("metrics.csv")).unwrap(),
        std::fs::read_to_string(r.join("metrics.csv")).unwrap(),
        "the requeued point trains exactly as the undisturbed run"
    );
    assert_eq!(m["metrics"]["test_mse"], manifest(&r)["metrics"]["test_mse"]);
}

#[test]
fn compare_puts_runs_and_sweeps_in_one_report() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let e = experiment("fashion-dense");
    for k in ["4", "8"] {
        let o =
            cmd(tmp.path(), &["run", "--quiet", &e, "train=debug", "train.epochs=2", &format!("model.latent_dim={k}")])
                .output()
                .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    let o = cmd(tmp.path(), &["sweep", "--quiet", &e, "train=debug", "model.latent_dim=2,4"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let mut dirs: Vec<String> =
        crate::run::run_dirs(tmp.path(), "fashion-dense").into_iter().map(|d| d.display().to_string()).collect();
    assert_eq!(dirs.len(), 3, "two runs and a sweep: {dirs:?}");
    let out = tmp.path().join("cmp");
    let mut args = vec!["compare".to_string()];
    args.append(&mut dirs);
    args.extend(["--out".to_string(), out.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = cmd(tmp.path(), &args).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(
        page.matches("/report.html\">fashion-dense/").count(),
        3,
        "each compared directory links its report: {page}"
    );
    assert!(page.contains("<th>test_mse</th>") && page.contains("<th>linear_probe_accuracy</th>"), "{page}");
    for stem in ["loss", "sweep_curve", "probe_curve"] {
        assert!(page.contains(&format!("plots/{stem}.png")), "{stem}: {page}");
        assert!(std::fs::metadata(out.join(format!("plots/{stem}.png"))).is_ok_and(|m| m.len() > 5_000), "{stem}");
    }
    // A directory that is neither is named.
    let o = cmd(tmp.path(), &["compare", &tmp.path().display().to_string(), "--out", "x"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("neither a run directory"), "{}", text(&o.stderr));

    // `bottleneck runs`: the two runs and the sweep's two points in one table.
    let o = cmd(tmp.path(), &["runs"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "a header and four runs:\n{table}");
    assert!(lines[0].starts_with("name") && lines[0].contains("test_mse") && lines[0].contains("overrides"), "{table}");
    assert_eq!(lines.iter().filter(|l| l.contains("/000 ") || l.contains("/001 ")).count(), 2, "{table}");
    assert!(lines[1..].iter().all(|l| l.contains(" done ") && (l.contains(" 2/2 ") || l.contains(" 1/1 "))), "{table}");
    assert!(table.contains("model.latent_dim=4"), "the overrides that made each run: {table}");
    let o = cmd(tmp.path(), &["runs", "--json", "--sort", "test_mse", "--reverse"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mse: Vec<f64> = json.as_array().unwrap().iter().map(|r| r["metrics"]["test_mse"].as_f64().unwrap()).collect();
    assert_eq!(mse.len(), 4);
    assert!(mse.windows(2).all(|w| w[0] >= w[1]), "largest first: {mse:?}");
    assert_eq!(json.as_array().unwrap().iter().filter(|r| r["sweep"].is_string()).count(), 2);
    let o = cmd(tmp.path(), &["runs", "--status", "failed"]).output().unwrap();
    assert!(o.status.success() && text(&o.stdout).starts_with("no runs under"), "{}", text(&o.stdout));
    let o = cmd(tmp.path(), &["runs", "--status", "finished"]).output().unwrap();
    assert!(!o.status.success() && text(&o.stderr).contains("one of pending, running, done"), "{}", text(&o.stderr));
    let o = cmd(tmp.path(), &["runs", "--sort", "test_mes"]).output().unwrap();
    assert!(!o.status.success() && text(&o.stderr).contains("did you mean test_mse?"), "{}", text(&o.stderr));
}
