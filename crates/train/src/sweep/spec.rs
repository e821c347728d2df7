//! `sweep.toml`: the grid a sweep directory was made with, read back and checked, and
//! the directory itself.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Plan, Sweep, SWEEP_FILE};
use crate::config::Resolved;
use crate::error::{Result, TrainError};
use crate::run::write_new;
use crate::rundir::{create_stamped, now, Failure, Manifest, RunDir, Status};

/// One swept key and its values (as override text: `8`, `"relu"`, `conv`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Axis {
    /// Dotted key, or a group (`model`).
    pub key: String,
    /// The values, in order.
    pub values: Vec<String>,
    /// Where the list came from.
    pub source: String,
}

/// One point of the grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointSpec {
    /// 0-based index (the Slurm array index).
    pub index: usize,
    /// Its run directory, relative to the sweep directory.
    pub dir: String,
    /// The value of each axis, in axis order.
    pub values: Vec<String>,
    /// Every override the point was resolved with: the fixed ones, then its values.
    pub overrides: Vec<String>,
}

/// A submission to Slurm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmJobs {
    /// The array job's id.
    pub array: String,
    /// The dependent job that writes the summary.
    pub summary: String,
    /// When.
    pub submitted: String,
    /// The points it runs.
    pub points: Vec<usize>,
}

/// `sweep.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepSpec {
    /// Experiment name.
    pub name: String,
    /// The experiment file (absolute).
    pub experiment: PathBuf,
    /// The working directory points run in (relative data paths resolve from it).
    pub cwd: PathBuf,
    /// When the sweep was made.
    pub created: String,
    /// `local` or `slurm`: the launcher last used.
    pub launcher: String,
    /// Overrides applied to every point.
    pub overrides: Vec<String>,
    /// The swept keys.
    pub axes: Vec<Axis>,
    /// The points, in grid order (last axis fastest).
    pub points: Vec<PointSpec>,
    /// Slurm submissions, oldest first.
    #[serde(default)]
    pub slurm_jobs: Vec<SlurmJobs>,
}

impl SweepSpec {
    /// What a sweep command relies on: point `i` has index `i`, one value per axis, and a
    /// plain directory name of its own; Slurm submissions name existing points.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.points.is_empty() {
            return Err("it lists no points".into());
        }
        if !["local", "slurm"].contains(&self.launcher.as_str()) {
            return Err(format!("launcher = \"{}\" is not \"local\" or \"slurm\"", self.launcher));
        }
        let mut dirs = std::collections::BTreeSet::new();
        for (i, p) in self.points.iter().enumerate() {
            if p.index != i {
                return Err(format!("point {i} in order has index = {} (points must be listed 0, 1, 2, ...)", p.index));
            }
            if p.values.len() != self.axes.len() {
                return Err(format!(
                    "point {i} has {} values for {} axes ({})",
                    p.values.len(),
                    self.axes.len(),
                    self.axes.iter().map(|a| a.key.as_str()).collect::<Vec<_>>().join(", ")
                ));
            }
            let plain = !p.dir.is_empty() && p.dir != "." && p.dir != ".." && !p.dir.contains(['/', '\\']);
            if !plain {
                return Err(format!("point {i} has dir = \"{}\"; expected a folder name such as \"{i:03}\"", p.dir));
            }
            if !dirs.insert(p.dir.as_str()) {
                return Err(format!("two points share dir = \"{}\"", p.dir));
            }
        }
        for (k, job) in self.slurm_jobs.iter().enumerate() {
            if let Some(bad) = job.points.iter().find(|&&i| i >= self.points.len()) {
                return Err(format!(
                    "Slurm submission {k} (array {}) names point {bad}, but there are {} points",
                    job.array,
                    self.points.len()
                ));
            }
        }
        Ok(())
    }
}

impl Sweep {
    /// Makes the sweep directory under `root/<name>/` with a run directory per point of
    /// `points` (from [`Plan::resolve_points`]). A point whose overrides do not resolve is
    /// written as failed; if none resolves the sweep is not made and the first point's
    /// error is returned.
    pub fn create(
        plan: &Plan,
        points: Vec<(PointSpec, Result<Resolved>)>,
        root: &Path,
        launcher: &str,
    ) -> Result<Self> {
        if let Some((_, Err(first))) =
            points.iter().find(|(_, r)| r.is_err()).filter(|_| points.iter().all(|(_, r)| r.is_err()))
        {
            return Err(TrainError::Config(format!("no point of the sweep resolves; the first: {first}")));
        }
        let path = create_stamped(root, &plan.name)?;
        let spec = Self::planned(plan, &path, launcher)?.spec;
        let sweep = Self { path, spec };
        sweep.save()?;
        for (p, r) in points {
            let dir = RunDir::create_at(&sweep.path.join(&p.dir))?;
            match r {
                Ok(resolved) => write_new(&dir, &resolved, 0, Status::Pending)?,
                Err(e) => sweep.write_unresolved(&dir, &p, &e)?,
            }
        }
        Ok(sweep)
    }

    /// The sweep `plan` would make at `path`, without touching the disk (`--dry-run`).
    pub fn planned(plan: &Plan, path: &Path, launcher: &str) -> Result<Self> {
        let spec = SweepSpec {
            name: plan.name.clone(),
            experiment: plan.experiment.clone(),
            cwd: std::env::current_dir()?,
            created: now(),
            launcher: launcher.into(),
            overrides: plan.fixed.clone(),
            axes: plan.axes.clone(),
            points: plan.points(),
            slurm_jobs: Vec::new(),
        };
        Ok(Self { path: path.into(), spec })
    }

    /// A point that did not resolve: its overrides and a failed manifest with the reason.
    pub(super) fn write_unresolved(&self, dir: &RunDir, p: &PointSpec, err: &TrainError) -> Result<()> {
        bottleneck_data::atomic::write_atomic(
            &dir.file("overrides.txt"),
            format!("{}\n", p.overrides.join("\n")).as_bytes(),
        )?;
        let mut m = Manifest::new(&self.spec.name, &self.spec.experiment.display().to_string());
        m.fail(Failure::Config, format!("config: {err}"));
        dir.write_manifest(&m)
    }

    /// Opens a sweep directory (must hold `sweep.toml`).
    pub fn open(path: &Path) -> Result<Self> {
        let file = path.join(SWEEP_FILE);
        if !file.is_file() {
            let hint = if path.join("config.toml").is_file() {
                "; this is a run directory: continue it with `bottleneck resume`"
            } else {
                "; expected runs/<name>/<timestamp>/ made by `bottleneck sweep`"
            };
            return Err(TrainError::Run {
                path: path.into(),
                reason: format!("not a sweep directory: no {SWEEP_FILE}{hint}"),
            });
        }
        let text = fs_err::read_to_string(&file)?;
        let spec: SweepSpec =
            toml::from_str(&text).map_err(|e| TrainError::Run { path: file.clone(), reason: e.to_string() })?;
        if let Err(why) = spec.check() {
            return Err(TrainError::Run {
                path: file,
                reason: format!(
                    "{why}; was it edited by hand? `bottleneck sweep` writes it, and --resume needs it whole"
                ),
            });
        }
        Ok(Self { path: path.into(), spec })
    }

    /// Writes `sweep.toml`.
    pub fn save(&self) -> Result<()> {
        let text =
            toml::to_string_pretty(&self.spec).map_err(|e| TrainError::Config(format!("writing {SWEEP_FILE}: {e}")))?;
        let text = format!("# written by `bottleneck sweep`; `bottleneck sweep --resume` reads it\n{text}");
        Ok(bottleneck_data::atomic::write_atomic(&self.path.join(SWEEP_FILE), text.as_bytes())?)
    }
}
