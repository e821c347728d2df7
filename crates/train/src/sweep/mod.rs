//! Sweeps: a grid of runs over config keys (the bottleneck size above all), kept in one
//! directory.
//!
//! ```text
//! runs/<name>/<timestamp>/
//!   sweep.toml             the grid: experiment, fixed overrides, axes, one entry per point
//!   summary.csv/.parquet   one row per point: swept values, status, final metrics, epoch time
//!   000/, 001/, ...        a run directory per point (its overrides in overrides.txt)
//!   slurm/                 sbatch scripts and task logs (Slurm launcher)
//! ```
//!
//! The grid is the cartesian product of the experiment's `[sweep]` table and the
//! command line's lists (`key=a,b,c`, `key=range(start,stop,step)`, `key=choice(a,b)`,
//! `model=dense,conv`); the command line wins on a key both set. Each point is resolved
//! when the sweep is made, so `config.toml` in its directory is what it trains; a point
//! whose values do not resolve is marked failed and the others go on.

//!
//! The module's files each do one job: `grid` (the grammar of swept values and the
//! plan), `spec` (`sweep.toml`: reading, checking, writing, making the directory),
//! `resume` (what a resumed or collected sweep does with each point, and who owns a
//! point now), `summary` (`summary.csv`/`.parquet`) and `local` (the local launcher).

mod grid;
mod local;
mod resume;
mod spec;
mod summary;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::rundir::{Manifest, RunDir};

pub use grid::{axis_values, Plan};
pub use local::{gpu_budget, local_budget, run_local, Budget, StopLevel, SweepObserver, POINT_DEVICE};
pub use resume::DIED;
pub use spec::{Axis, PointSpec, SlurmJobs, SweepSpec};

/// Metrics the analysis adds to a run (`{"metrics": {...}}`), merged into the summary.
pub const ANALYSIS_FILE: &str = "analysis.json";

/// The metrics in a run directory's `analysis.json` (none when it has none).
#[must_use]
pub fn analysis_metrics(dir: &RunDir) -> BTreeMap<String, f64> {
    #[derive(Deserialize)]
    struct Analysis {
        #[serde(with = "crate::rundir::finite")]
        metrics: BTreeMap<String, f64>,
    }
    fs_err::read(dir.file(ANALYSIS_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<Analysis>(&b).ok())
        .map(|a| a.metrics)
        .unwrap_or_default()
}

/// The file that makes a directory a sweep.
pub const SWEEP_FILE: &str = "sweep.toml";

/// Set for a local sweep's point processes: the sweep's pid. A point whose sweep process
/// disappears (killed with SIGKILL) stops after its batch, with a checkpoint.
pub const PARENT_ENV: &str = "BOTTLENECK_SWEEP_PARENT";

/// A sweep directory.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The directory.
    pub path: PathBuf,
    /// Its `sweep.toml`.
    pub spec: SweepSpec,
}

/// What happened to a point.
#[derive(Debug, Clone)]
pub struct PointState {
    /// The point.
    pub point: PointSpec,
    /// Its manifest, when it has one.
    pub manifest: Option<Manifest>,
}

impl Sweep {
    /// The run directory of a point.
    #[must_use]
    pub fn run_dir(&self, p: &PointSpec) -> RunDir {
        RunDir { path: self.path.join(&p.dir) }
    }

    /// Every point with its manifest (its metrics joined by those of `analysis.json`).
    #[must_use]
    pub fn states(&self) -> Vec<PointState> {
        self.spec
            .points
            .iter()
            .map(|p| {
                let dir = self.run_dir(p);
                let mut manifest = dir.read_manifest().ok();
                if let Some(m) = manifest.as_mut() {
                    for (k, v) in analysis_metrics(&dir) {
                        m.metrics.entry(k).or_insert(v);
                    }
                }
                PointState { point: p.clone(), manifest }
            })
            .collect()
    }

    /// `name=value` pairs of a point, for messages.
    #[must_use]
    pub fn label(&self, p: &PointSpec) -> String {
        self.spec.axes.iter().zip(&p.values).map(|(a, v)| format!("{}={v}", a.key)).collect::<Vec<_>>().join(" ")
    }
}
