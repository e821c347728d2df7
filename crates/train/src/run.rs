//! One run from start to finish: create the run directory, save the resolved config
//! before the first step, train, and keep `manifest.json` true at every moment.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Resolved;
use crate::error::{Result, TrainError};
use crate::lock::{Heartbeat, RunLock};
use crate::rundir::{git_commit, now, Failure, Manifest, RunDir, Status};
use crate::runner::{self, Observer, Outcome};

/// Creates the run directory for `resolved` under `root` with a `pending` manifest (the
/// first file), `config.toml` and `overrides.txt`; [`execute`] takes it to `running`.
pub fn prepare(resolved: &Resolved, root: &Path, threads: usize) -> Result<RunDir> {
    let dir = RunDir::create(root, &resolved.config.name)?;
    write_new(&dir, resolved, threads, Status::Pending)?;
    Ok(dir)
}

/// Writes a fresh manifest with `status` into `dir`, then `config.toml` and
/// `overrides.txt` (the manifest first: a directory without one is not a run).
pub fn write_new(dir: &RunDir, resolved: &Resolved, threads: usize, status: Status) -> Result<()> {
    let cfg = &resolved.config;
    let mut versions = BTreeMap::new();
    versions.insert("bottleneck".into(), env!("CARGO_PKG_VERSION").into());
    // The exact versions this binary was built with (crates/train/build.rs, Cargo.lock).
    versions.insert("candle".into(), env!("BOTTLENECK_VERSION_CANDLE_CORE").into());
    versions.insert("candle-nn".into(), env!("BOTTLENECK_VERSION_CANDLE_NN").into());
    versions.insert("polars".into(), env!("BOTTLENECK_VERSION_POLARS").into());
    versions.insert("safetensors".into(), env!("BOTTLENECK_VERSION_SAFETENSORS").into());
    let mut m = Manifest {
        seed: cfg.seed,
        device: cfg.device.clone(),
        threads,
        versions,
        git_commit: git_commit(),
        ..Manifest::new(&cfg.name, &resolved.experiment.display().to_string())
    };
    m.set_status(status, None);
    dir.write_manifest(&m)?;
    dir.write_config(cfg, &resolved.overrides)
}

/// Records that the process training `dir` ended without recording an outcome (killed,
/// out of memory, node lost, time limit): the run is `interrupted` and resumes from its
/// last checkpoint, unless it died `launcher.max_retries` times in a row without a new
/// checkpoint, then it is failed as lost (a later `sweep --resume` still continues it from
/// that checkpoint). The caller has made sure no process holds the run.
pub fn record_lost(dir: &RunDir, m: &mut Manifest, why: &str) -> Result<()> {
    let max = dir.read_config().map_or(crate::launcher::DEFAULT_MAX_RETRIES, |c| c.launcher.max_retries);
    let state = crate::checkpoint::read_state(&dir.last_checkpoint()).ok();
    let step = state.as_ref().map(|s| s.step);
    if m.lost > 0 && m.lost_step == step {
        m.lost += 1;
    } else {
        m.lost = 1;
        m.lost_step = step;
    }
    if let Some(s) = &state {
        m.epochs_done = s.epoch;
    }
    let at = state.map_or_else(
        || "from its first epoch (no checkpoint yet)".to_string(),
        |s| format!("from its checkpoint (epoch {}, batch {})", s.epoch + usize::from(s.batch > 0), s.batch),
    );
    if m.lost > max {
        m.fail(
            Failure::Lost,
            format!(
                "{why}; it died {} times in a row without a new checkpoint (launcher.max_retries = {max}); `bottleneck sweep --resume` tries again {at}",
                m.lost
            ),
        );
    } else {
        m.set_status(Status::Interrupted, Some(format!("{why}; resumes {at}")));
    }
    dir.write_manifest(m)
}

/// Set (to anything) by `--no-report`: a run, resume or sweep point skips drawing its
/// report, and a sweep its own; a sweep sets it for its points (local processes inherit
/// it, a Slurm sweep's scripts export it).
pub const NO_REPORT_ENV: &str = "BOTTLENECK_NO_REPORT";

/// Whether [`NO_REPORT_ENV`] is set.
#[must_use]
pub fn no_report() -> bool {
    std::env::var_os(NO_REPORT_ENV).is_some()
}

/// `bottleneck resume RUN --epochs N`: sets `train.epochs = N` in the run's
/// `config.toml` (and `overrides.txt`), so that the next resume trains on from the last
/// checkpoint to N epochs, the learning-rate schedule recomputed for N; a finished run
/// becomes `interrupted` for it. N must exceed the epochs done; a run that is being
/// trained is left alone. Returns the epochs the config had.
pub fn extend(dir: &RunDir, epochs: usize) -> Result<usize> {
    let mut manifest = dir.read_manifest()?;
    if manifest.status == Status::Running {
        return Err(TrainError::Run {
            path: dir.path.clone(),
            reason: format!("the run is being trained ({}); extend it once it has stopped", manifest.owner()),
        });
    }
    let done = crate::checkpoint::read_state(&dir.last_checkpoint())
        .map_err(|_| TrainError::Run {
            path: dir.path.clone(),
            reason: "no checkpoint to continue from: `--epochs` extends a run that has trained".into(),
        })?
        .epoch;
    if epochs <= done {
        return Err(TrainError::Config(format!(
            "--epochs {epochs}: the run has done {done} epochs; give more than that to train on"
        )));
    }
    let mut cfg = dir.read_config()?;
    let before = cfg.train.epochs;
    cfg.train.epochs = epochs;
    crate::config::check_saved(&cfg, &dir.file("config.toml"))?;
    let mut overrides: Vec<String> =
        dir.read_overrides().into_iter().filter(|l| !l.starts_with("train.epochs=")).collect();
    overrides.push(format!("train.epochs={epochs}"));
    dir.write_config(&cfg, &overrides)?;
    if manifest.status == Status::Done {
        manifest.set_status(
            Status::Interrupted,
            Some(format!("extended from {before} to {epochs} epochs; `bottleneck resume` continues")),
        );
        dir.write_manifest(&manifest)?;
    }
    Ok(before)
}

/// Trains the run in `dir`, then records the outcome in the manifest.
///
/// The process first takes the run's lock (a run another process trains is refused,
/// naming it), checks `config.toml` again (it may have been edited), then marks the run
/// `running` with a heartbeat. With `resume`, a run with a checkpoint continues from it;
/// a `pending` run, or one killed before its first checkpoint, starts from its first
/// epoch. `threads` is recorded in the manifest (the caller applies it). `device`, when
/// given, replaces the config's `device` for this process (`resume --device`, a sweep's
/// point on its GPU); the manifest records the device actually used (and which GPU). A
/// device that is not there is an error that leaves the run as it was.
pub fn execute(
    dir: &RunDir,
    resume: bool,
    threads: usize,
    device: Option<&str>,
    stop: &Arc<AtomicBool>,
    obs: &dyn Observer,
) -> Result<Outcome> {
    let _lock = RunLock::acquire(dir)?;
    let mut manifest = dir.read_manifest()?;
    if resume && manifest.status == Status::Done {
        return Err(TrainError::Run {
            path: dir.path.clone(),
            reason: "the run is already done; nothing to resume".into(),
        });
    }
    // An edited config that no longer checks out leaves the run as it was (its
    // checkpoint included): fix the file and resume again.
    let mut cfg = dir.read_config()?;
    crate::config::check_saved(&cfg, &dir.file("config.toml"))?;
    if let Some(d) = device {
        cfg.device = d.to_string();
    }
    let used = crate::device::resolve(&cfg.device).map_err(|e| match device {
        Some(_) => TrainError::Config(format!("{e} (--device)")),
        None => TrainError::Config(format!("{e} (`device` in {})", dir.file("config.toml").display())),
    })?;
    let from_checkpoint = resume && manifest.status != Status::Pending && dir.last_checkpoint().is_file();
    if resume && !from_checkpoint {
        if manifest.status != Status::Pending {
            tracing::info!("no checkpoint yet: training from the first epoch");
        }
        dir.clear_results()?;
        manifest.epochs_done = 0;
        manifest.train_seconds = 0.0;
        manifest.metrics.clear();
        manifest.started = now();
    }
    manifest.threads = threads;
    if resume {
        tracing::info!("device: {}", used.describe());
    }
    manifest.device = used.name;
    manifest.gpu = used.gpu;
    manifest.starts += 1;
    manifest.set_status(Status::Running, None);
    dir.write_manifest(&manifest)?;
    let beat = Heartbeat::start(dir, manifest);
    let t0 = Instant::now();
    let result = runner::train(dir, &cfg, from_checkpoint, stop, obs);
    let mut manifest = beat.stop();
    manifest.train_seconds += t0.elapsed().as_secs_f64();
    // Epochs done, from the checkpoint the run would resume from.
    if let Ok(state) = crate::checkpoint::read_state(&dir.last_checkpoint()) {
        manifest.epochs_done = state.epoch;
    }
    match &result {
        Ok(Outcome::Done { metrics, early_stopped }) => {
            manifest.set_status(
                Status::Done,
                early_stopped.then(|| "early stopping: validation loss stopped improving".into()),
            );
            manifest.metrics.clone_from(metrics);
            manifest.lost = 0;
            manifest.lost_step = None;
        }
        Ok(Outcome::Interrupted) => manifest.set_status(
            Status::Interrupted,
            Some("interrupted (Ctrl-C, SIGTERM or SIGHUP) after a checkpoint; `bottleneck resume` continues".into()),
        ),
        Ok(Outcome::Failed(why)) => manifest.fail(Failure::Numeric, why.clone()),
        Err(e @ TrainError::Config(_)) => manifest.fail(Failure::Config, e.to_string()),
        Err(e) => manifest.fail(Failure::Error, e.to_string()),
    }
    dir.write_manifest(&manifest)?;
    result
}
