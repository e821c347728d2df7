//! `bottleneck run | resume | config`.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use bottleneck_train::config::ExperimentConfig;
use bottleneck_train::run::{execute, prepare};
use bottleneck_train::rundir::EpochRow;
use bottleneck_train::{resolve, Observer, Outcome, RunDir};
use indicatif::{ProgressBar, ProgressStyle};

use crate::logging;

/// Where runs go: `--runs`, else `BOTTLENECK_RUNS_DIR`, else `runs/`.
pub fn runs_root(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("BOTTLENECK_RUNS_DIR").map(PathBuf::from)).unwrap_or_else(|| PathBuf::from("runs"))
}

/// Cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Applies `train.threads` (0 = all cores) before any worker pool starts.
pub fn apply_threads(cfg: &ExperimentConfig) -> usize {
    set_threads(if cfg.train.threads == 0 { cores() } else { cfg.train.threads })
}

/// Sets the worker threads of candle/gemm and polars; returns `threads`.
pub fn set_threads(threads: usize) -> usize {
    // Read by candle/gemm (RAYON_NUM_THREADS) and polars when their pools first start,
    // which is after this point: the config is resolved before any tensor work.
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    std::env::set_var("POLARS_MAX_THREADS", threads.to_string());
    threads
}

/// Ctrl-C / SIGTERM: the first asks the loop to stop after its batch; the second exits.
fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        crate::exit_if_reporting();
        if s.swap(true, Ordering::SeqCst) {
            eprintln!("second interrupt: exiting now");
            std::process::exit(130);
        }
        eprintln!("interrupt: finishing the batch and writing a checkpoint (again to quit at once)");
    })
    .context("installing the Ctrl-C handler")?;
    Ok(stop)
}

/// Progress: a bar per epoch on a terminal, one log line per epoch otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Progress {
    fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b
        });
        Self { bar, quiet }
    }
}

impl Observer for Progress {
    fn start(&self, epoch: usize, batch: usize, step: u64) {
        let line = format!("training starts at epoch {}, batch {batch} (step {step})", epoch + 1);
        if self.quiet {
            logging::to_file_only(&line);
        } else {
            tracing::info!("{line}");
        }
    }

    fn epoch_start(&self, epoch: usize, epochs: usize, batches: usize) {
        if let Some(b) = &self.bar {
            b.reset();
            b.set_length(batches as u64);
            b.set_prefix(format!("epoch {}/{epochs}", epoch + 1));
        }
    }

    fn batch_end(&self, loss: f64, sps: f64) {
        if let Some(b) = &self.bar {
            b.inc(1);
            b.set_message(format!("loss {loss:.5}  {sps:.0} samples/s"));
        }
    }

    fn epoch_end(&self, row: &EpochRow, epochs: usize) {
        if self.quiet {
            logging::to_file_only(&epoch_line(row, epochs));
            return;
        }
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        tracing::info!("{}", epoch_line(row, epochs));
    }
}

fn epoch_line(row: &EpochRow, epochs: usize) -> String {
    let val = row.val_loss.map_or_else(|| "-".into(), |v| format!("{v:.6}"));
    // Each term of a multi-term objective, train (val).
    let mut terms = String::new();
    if row.train_terms.len() > 1 {
        for (n, v) in &row.train_terms {
            let vv = row.val_terms.iter().find(|t| t.0 == *n).map_or_else(String::new, |t| format!(" ({:.4})", t.1));
            let _ = write!(terms, " {n} {v:.4}{vv}");
        }
    }
    format!(
        "epoch {}/{epochs}: train_loss {:.6} val_loss {val}{terms} lr {:.2e} {:.1} s {:.0} samples/s",
        row.epoch, row.train_loss, row.lr, row.epoch_seconds, row.samples_per_second
    )
}

fn finish(dir: &RunDir, outcome: Result<Outcome, bottleneck_train::TrainError>) -> Result<()> {
    match outcome? {
        Outcome::Done { metrics, early_stopped } => {
            if early_stopped {
                tracing::info!("early stopping: validation loss stopped improving");
            }
            let shown: Vec<String> = [
                "test_mse",
                "test_noisy_mse",
                "test_bce",
                "test_psnr",
                "test_sse_per_image",
                "test_neg_elbo",
                "test_is_nll",
                "test_recon",
                "test_kl",
                "test_active_units",
                "test_sparsity",
                "test_contractive",
            ]
            .iter()
            .filter_map(|k| metrics.get(*k).map(|v| format!("{k} {v:.6}")))
            .collect();
            crate::out(&format!("{}\n", shown.join("  ")));
            crate::out(&format!("run dir: {}\n", dir.path.display()));
            if bottleneck_train::run::no_report() {
                tracing::info!("no report (--no-report): `bottleneck report {}` draws it", dir.path.display());
                return Ok(());
            }
            // The figures are a view of what the run wrote: a failure to draw them is
            // reported, and `bottleneck report` can redraw them, but the run is done.
            crate::REPORTING.store(true, Ordering::SeqCst);
            match bottleneck_analysis::report_run(&dir.path) {
                Ok(page) => crate::out(&format!("report: {}\n", page.display())),
                Err(e) => tracing::warn!(
                    "drawing the report failed: {e}; retry with `bottleneck report {}`",
                    dir.path.display()
                ),
            }
            Ok(())
        }
        Outcome::Interrupted => {
            eprintln!("interrupted; continue with: bottleneck resume {}", dir.path.display());
            std::process::exit(130);
        }
        Outcome::Failed(why) => bail!("run failed: {why} (run dir {})", dir.path.display()),
    }
}

/// `bottleneck run EXPERIMENT [overrides...]`.
pub fn run(experiment: &Path, overrides: &[String], runs: Option<PathBuf>, quiet: bool) -> Result<()> {
    let resolved = resolve(experiment, overrides)?;
    bottleneck_train::config::check_files(&resolved)?;
    // A device that is not there is an error before the run directory exists.
    let device = bottleneck_train::config::check_device(&resolved)?;
    let threads = apply_threads(&resolved.config);
    let dir = prepare(&resolved, &runs_root(runs), threads)?;
    logging::attach_file(&dir.file("train.log"))?;
    tracing::info!("run dir {} ({threads} threads, {})", dir.path.display(), device.describe());
    let stop = stop_flag()?;
    let outcome = execute(&dir, false, threads, None, &stop, &Progress::new(quiet));
    finish(&dir, outcome)
}

/// `bottleneck resume RUN_DIR [--threads N] [--epochs N] [--device D]`: continues a run
/// from its last checkpoint, or trains a sweep's pending point from its first epoch;
/// `device` replaces the config's for this process (checkpoints load on any device).
pub fn resume(
    path: &Path,
    threads: Option<usize>,
    epochs: Option<usize>,
    device: Option<&str>,
    quiet: bool,
) -> Result<()> {
    let dir = RunDir::open(path)?;
    if let Some(d) = device {
        // Before anything is changed (`--epochs` edits the config).
        bottleneck_train::device::resolve(d).map_err(|e| anyhow::anyhow!("{e} (--device)"))?;
    }
    if let Some(n) = epochs {
        let before = bottleneck_train::run::extend(&dir, n)?;
        tracing::info!("train.epochs {before} -> {n} in {}", dir.file("config.toml").display());
    }
    let cfg = dir.read_config()?;
    // A hand-edited config.toml is not resolved again: the resolve-time checks (the
    // thread count among them) run on it before any worker pool starts.
    bottleneck_train::config::check_saved(&cfg, &dir.file("config.toml"))?;
    let threads = match threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(n) if n > bottleneck_train::train_config::MAX_THREADS => {
            bail!("--threads {n} is too many: at most {}", bottleneck_train::train_config::MAX_THREADS)
        }
        Some(n) => set_threads(n),
        None => apply_threads(&cfg),
    };
    logging::attach_file(&dir.file("train.log"))?;
    let drawn_later = bottleneck_train::run::no_report();
    if dir.read_manifest()?.status == bottleneck_train::rundir::Status::Done && report_missing(&dir) && !drawn_later {
        // Interrupted while drawing its report (a Slurm task warned of its time limit
        // then requeues itself): the results are saved, only the report is left.
        eprintln!("the run is done but its report was never drawn: drawing it");
        crate::REPORTING.store(true, Ordering::SeqCst);
        let _stop = stop_flag()?;
        match bottleneck_analysis::report_run(&dir.path) {
            Ok(page) => crate::out(&format!("report: {}\n", page.display())),
            Err(e) => {
                tracing::warn!("drawing the report failed: {e}; retry with `bottleneck report {}`", dir.path.display());
            }
        }
        return Ok(());
    }
    tracing::info!("resuming {} ({threads} threads)", dir.path.display());
    let stop = stop_flag()?;
    watch_sweep_parent(&stop);
    let outcome = execute(&dir, true, threads, device, &stop, &Progress::new(quiet));
    finish(&dir, outcome)
}

/// `--no-report`: sets [`bottleneck_train::run::NO_REPORT_ENV`] for this process and
/// the sweep points it starts (before any thread exists).
pub fn skip_report(skip: bool) {
    if skip {
        std::env::set_var(bottleneck_train::run::NO_REPORT_ENV, "1");
    }
}

/// Whether a done run's `report.html` (written last by the report) is missing or older
/// than the manifest that recorded the run done.
fn report_missing(dir: &RunDir) -> bool {
    let modified = |name: &str| std::fs::metadata(dir.file(name)).and_then(|m| m.modified()).ok();
    match (modified("report.html"), modified("manifest.json")) {
        (Some(report), Some(manifest)) => report < manifest,
        _ => true,
    }
}

/// A local sweep's point: when the sweep process disappears (killed with SIGKILL), stop
/// after the batch with a checkpoint instead of training on unsupervised.
fn watch_sweep_parent(stop: &Arc<AtomicBool>) {
    let Some(parent) = std::env::var(bottleneck_train::sweep::PARENT_ENV).ok().and_then(|p| p.parse::<u32>().ok())
    else {
        return;
    };
    let stop = Arc::clone(stop);
    std::thread::spawn(move || loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        if std::os::unix::process::parent_id() != parent {
            tracing::warn!("the sweep process {parent} is gone: stopping after this batch");
            stop.store(true, Ordering::SeqCst);
            return;
        }
    });
}

/// `bottleneck encode RUN_DIR --split S --out FILE [data.key=value...]`.
pub fn encode(path: &Path, split: &str, overrides: &[String], out: &Path) -> Result<()> {
    let dir = RunDir::open(path)?;
    let cfg = dir.read_config()?;
    bottleneck_train::config::check_saved(&cfg, &dir.file("config.toml"))?;
    apply_threads(&cfg);
    let t0 = std::time::Instant::now();
    let done = bottleneck_train::encode::encode(&dir, split, overrides, out)?;
    let rows: Vec<String> = done.rows.iter().map(|(s, n)| format!("{s} {n}")).collect();
    crate::out(&format!(
        "encoded {} rows (k = {}) in {:.1} s: {}\n",
        rows.join(", "),
        done.k,
        t0.elapsed().as_secs_f64(),
        out.display()
    ));
    Ok(())
}

/// `bottleneck report DIR`: redraws a run's or a sweep's figures and report.html.
pub fn report(dir: &Path) -> Result<()> {
    let t0 = std::time::Instant::now();
    let page = bottleneck_analysis::report(dir)?;
    crate::out(&format!("report: {} ({:.1} s)\n", page.display(), t0.elapsed().as_secs_f64()));
    Ok(())
}

/// `bottleneck compare DIR... --out OUT`.
pub fn compare(dirs: &[PathBuf], out: &Path) -> Result<()> {
    let page = bottleneck_analysis::compare(dirs, out)?;
    crate::out(&format!("report: {}\n", page.display()));
    Ok(())
}

/// `bottleneck config EXPERIMENT [overrides...]`: the resolved config and each value's source.
pub fn config(experiment: &Path, overrides: &[String]) -> Result<()> {
    let resolved = resolve(experiment, overrides)?;
    let rows = resolved.provenance()?;
    let width = rows.iter().map(|(k, v, _)| k.len() + v.len() + 3).max().unwrap_or(0).min(60);
    let d = &resolved.config.defaults;
    crate::out(&format!("# {} with data={} model={} train={}\n", experiment.display(), d.data, d.model, d.train));
    for (k, v, src) in rows {
        let kv = format!("{k} = {v}");
        crate::out(&format!("{kv:<width$}  # {src}\n"));
    }
    Ok(())
}
