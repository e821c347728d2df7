//! One run from start to finish: create the run directory, save the resolved config
//! before the first step, train, and keep `manifest.json` true at every moment.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Resolved;
use crate::error::{Result, TrainError};
use crate::rundir::{git_commit, hostname, now, Manifest, RunDir, Status};
use crate::runner::{self, Observer, Outcome};

/// Creates the run directory for `resolved` under `root` and writes `config.toml`,
/// `overrides.txt` and a `running` manifest.
pub fn prepare(resolved: &Resolved, root: &Path, threads: usize) -> Result<RunDir> {
    let dir = RunDir::create(root, &resolved.config.name)?;
    write_new(&dir, resolved, threads, Status::Running)?;
    Ok(dir)
}

/// Writes `config.toml`, `overrides.txt` and a fresh manifest with `status` into `dir`.
pub fn write_new(dir: &RunDir, resolved: &Resolved, threads: usize, status: Status) -> Result<()> {
    let cfg = &resolved.config;
    dir.write_config(cfg, &resolved.overrides)?;
    let mut versions = BTreeMap::new();
    versions.insert("bottleneck".into(), env!("CARGO_PKG_VERSION").into());
    versions.insert("candle".into(), "0.11".into());
    versions.insert("polars".into(), "0.55".into());
    dir.write_manifest(&Manifest {
        status,
        reason: None,
        name: cfg.name.clone(),
        experiment: resolved.experiment.display().to_string(),
        seed: cfg.seed,
        device: cfg.device.clone(),
        threads,
        versions,
        git_commit: git_commit(),
        started: now(),
        ended: None,
        epochs_done: 0,
        train_seconds: 0.0,
        metrics: BTreeMap::new(),
        pid: (status == Status::Running).then(std::process::id),
        host: (status == Status::Running).then(hostname),
    })
}

/// Trains the run in `dir`, then records the outcome in the manifest.
///
/// With `resume`, a run with a checkpoint continues from it; a run without one (a
/// sweep's `pending` point, or a run killed before its first checkpoint) starts from its
/// first epoch. `threads` is recorded in the manifest (the caller applies it).
pub fn execute(
    dir: &RunDir,
    resume: bool,
    threads: usize,
    stop: &Arc<AtomicBool>,
    obs: &dyn Observer,
) -> Result<Outcome> {
    let cfg = dir.read_config()?;
    let mut manifest = dir.read_manifest()?;
    if resume && manifest.status == Status::Done {
        return Err(TrainError::Run {
            path: dir.path.clone(),
            reason: "the run is already done; nothing to resume".into(),
        });
    }
    if resume
        && manifest.status == Status::Running
        && manifest.process_alive()
        && manifest.pid != Some(std::process::id())
    {
        return Err(TrainError::Run {
            path: dir.path.clone(),
            reason: format!("the run is being trained by process {} on this machine", manifest.pid.unwrap_or_default()),
        });
    }
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
    manifest.status = Status::Running;
    manifest.reason = None;
    manifest.ended = None;
    manifest.threads = threads;
    manifest.pid = Some(std::process::id());
    manifest.host = Some(hostname());
    dir.write_manifest(&manifest)?;
    let t0 = Instant::now();
    let result = runner::train(dir, &cfg, from_checkpoint, stop, obs);
    manifest.train_seconds += t0.elapsed().as_secs_f64();
    manifest.ended = Some(now());
    // Epochs done, from the checkpoint the run would resume from.
    if let Ok(state) = crate::checkpoint::read_state(&dir.last_checkpoint()) {
        manifest.epochs_done = state.epoch;
    }
    match &result {
        Ok(Outcome::Done { metrics, early_stopped }) => {
            manifest.status = Status::Done;
            manifest.metrics.clone_from(metrics);
            manifest.reason = early_stopped.then(|| "early stopping: validation loss stopped improving".into());
        }
        Ok(Outcome::Interrupted) => {
            manifest.status = Status::Interrupted;
            manifest.reason =
                Some("interrupted (Ctrl-C or SIGTERM) after a checkpoint; `bottleneck resume` continues".into());
        }
        Ok(Outcome::Failed(why)) => {
            manifest.status = Status::Failed;
            manifest.reason = Some(why.clone());
        }
        Err(e) => {
            manifest.status = Status::Failed;
            manifest.reason = Some(e.to_string());
        }
    }
    manifest.pid = None;
    dir.write_manifest(&manifest)?;
    result
}
