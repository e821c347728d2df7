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

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{parse_override, parse_value, resolve, Override, GROUPS};
use crate::error::{Result, TrainError};
use crate::run::write_new;
use crate::rundir::{create_stamped, now, write_table, Manifest, RunDir, Status, Table};

/// Metrics the analysis adds to a run (`{"metrics": {...}}`), merged into the summary.
pub const ANALYSIS_FILE: &str = "analysis.json";

/// The metrics in a run directory's `analysis.json` (none when it has none).
#[must_use]
pub fn analysis_metrics(dir: &RunDir) -> BTreeMap<String, f64> {
    #[derive(Deserialize)]
    struct Analysis {
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

/// Splits `text` at commas that are not inside brackets, parentheses or quotes.
fn split_top_level(text: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth, mut quote) = (Vec::new(), String::new(), 0i32, None);
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '(' | '{') => depth += 1,
            (None, ']' | ')' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            (Some(_) | None, _) => {}
        }
        cur.push(c);
    }
    out.push(cur.trim().to_string());
    out
}

/// `range(start, stop[, step])`: integers or decimals from `start` up to (not including)
/// `stop`, as Python's `range` and Hydra's sweeper do.
fn range_values(args: &str) -> std::result::Result<Vec<String>, String> {
    let parts = split_top_level(args);
    if !(2..=3).contains(&parts.len()) {
        return Err("range takes (start, stop) or (start, stop, step)".into());
    }
    let ints: Option<Vec<i64>> = parts.iter().map(|p| p.parse().ok()).collect();
    if let Some(v) = ints {
        let step = v.get(2).copied().unwrap_or(1);
        if step == 0 {
            return Err("the step of range must not be 0".into());
        }
        let mut out = Vec::new();
        let mut x = v[0];
        while (step > 0 && x < v[1]) || (step < 0 && x > v[1]) {
            out.push(x.to_string());
            x += step;
            if out.len() > 100_000 {
                return Err("range gives more than 100000 values".into());
            }
        }
        return Ok(out);
    }
    let f: Vec<f64> = parts
        .iter()
        .map(|p| p.parse::<f64>().map_err(|_| format!("`{p}` is not a number")))
        .collect::<std::result::Result<_, _>>()?;
    let step = f.get(2).copied().unwrap_or(1.0);
    if step == 0.0 || !step.is_finite() {
        return Err("the step of range must be a non-zero number".into());
    }
    let n = ((f[1] - f[0]) / step - 1e-9).ceil().max(0.0) as usize;
    if n > 100_000 {
        return Err("range gives more than 100000 values".into());
    }
    Ok((0..n)
        .map(|i| {
            let x = f[0] + step * i as f64;
            // Twelve significant digits hide the float steps' rounding (0.30000000000000004).
            let s = format!("{x:.12e}").parse::<f64>().unwrap_or(x).to_string();
            if s.contains(['.', 'e', 'E']) || s.contains("inf") || s.contains("NaN") {
                s
            } else {
                format!("{s}.0")
            }
        })
        .collect())
}

/// The values of a command-line override when it is a list (`a,b`, `range(...)`,
/// `choice(...)`); `None` for a single value. A TOML list (`[512, 256]`) is one value.
pub fn axis_values(value: &str) -> std::result::Result<Option<Vec<String>>, String> {
    let v = value.trim();
    if let Some(args) = v.strip_prefix("range(").and_then(|r| r.strip_suffix(')')) {
        let out = range_values(args)?;
        return if out.is_empty() { Err(format!("`{v}` is empty")) } else { Ok(Some(out)) };
    }
    if let Some(args) = v.strip_prefix("choice(").and_then(|r| r.strip_suffix(')')) {
        let out = split_top_level(args);
        return if out.iter().any(String::is_empty) {
            Err(format!("`{v}` has an empty choice"))
        } else {
            Ok(Some(out))
        };
    }
    let parts = split_top_level(v);
    if parts.len() == 1 {
        return Ok(None);
    }
    if parts.iter().any(String::is_empty) {
        return Err(format!("`{v}` has an empty value; write values as a,b,c"));
    }
    Ok(Some(parts))
}

/// An axis from an entry of the `[sweep]` table.
fn axis_from_toml(key: &str, value: &toml::Value, source: &str) -> Result<Axis> {
    let bad = |why: &str| TrainError::Config(format!("[sweep] `\"{key}\"` (set in {source}): {why}"));
    let group = GROUPS.contains(&key);
    let values = match value {
        toml::Value::Array(items) if items.is_empty() => return Err(bad("the list is empty")),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| match (group, v) {
                (true, toml::Value::String(s)) => Ok(s.clone()),
                (true, _) => Err(bad("a group takes option names, e.g. \"model\" = [\"dense\", \"conv\"]")),
                (false, v) => Ok(v.to_string()),
            })
            .collect::<Result<Vec<_>>>()?,
        toml::Value::String(s) if s.starts_with("range(") || s.starts_with("choice(") => {
            axis_values(s).map_err(|e| bad(&e))?.ok_or_else(|| bad("expected a list"))?
        }
        _ => return Err(bad("expected a list of values like [2, 4, 8] or \"range(2, 34, 8)\"")),
    };
    Ok(Axis { key: key.to_string(), values, source: source.to_string() })
}

/// A sweep before it has a directory: the experiment, fixed overrides and axes.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The experiment file (absolute).
    pub experiment: PathBuf,
    /// Experiment name.
    pub name: String,
    /// Overrides for every point.
    pub fixed: Vec<String>,
    /// The swept keys.
    pub axes: Vec<Axis>,
}

impl Plan {
    /// Reads the grid from the experiment's `[sweep]` table and the command line.
    pub fn new(experiment: &Path, overrides: &[String]) -> Result<Self> {
        let mut fixed = Vec::new();
        let mut cli_axes = Vec::new();
        let mut cli_keys = BTreeSet::new();
        for text in overrides {
            let (key, value) = match parse_override(text)? {
                Override::Set { key, value, .. } => (key, value),
                Override::Group { group, option } => (group, option),
            };
            cli_keys.insert(key.clone());
            match axis_values(&value) {
                Ok(Some(values)) => {
                    let prefix = if text.starts_with('+') { "+" } else { "" };
                    cli_axes.push(Axis {
                        key: format!("{prefix}{key}"),
                        values,
                        source: format!("command line `{text}`"),
                    });
                }
                Ok(None) => fixed.push(text.clone()),
                Err(why) => return Err(TrainError::Config(format!("command-line override `{text}`: {why}"))),
            }
        }
        let base = resolve(experiment, &fixed)?;
        let source = base.source_of("sweep");
        let mut axes = Vec::new();
        for (key, value) in &base.config.sweep {
            if !cli_keys.contains(key) {
                axes.push(axis_from_toml(key, value, &source)?);
            }
        }
        axes.extend(cli_axes);
        if axes.is_empty() {
            return Err(TrainError::Config(format!(
                "nothing to sweep: {} has no [sweep] table and no override is a list; give one, e.g. model.latent_dim=2,4,8 or 'model.latent_dim=range(2,34,8)'",
                experiment.display()
            )));
        }
        let experiment = fs_err::canonicalize(experiment)?;
        Ok(Self { experiment, name: base.config.name, fixed, axes })
    }

    /// The points: the cartesian product of the axes, the last axis varying fastest.
    #[must_use]
    pub fn points(&self) -> Vec<PointSpec> {
        let total: usize = self.axes.iter().map(|a| a.values.len()).product();
        let width = total.saturating_sub(1).to_string().len().max(3);
        (0..total)
            .map(|index| {
                let mut rest = index;
                let mut picks = vec![0; self.axes.len()];
                for (a, axis) in self.axes.iter().enumerate().rev() {
                    picks[a] = rest % axis.values.len();
                    rest /= axis.values.len();
                }
                let values: Vec<String> =
                    self.axes.iter().zip(&picks).map(|(axis, &i)| axis.values[i].clone()).collect();
                let mut overrides = self.fixed.clone();
                overrides.extend(self.axes.iter().zip(&values).map(|(axis, v)| format!("{}={v}", axis.key)));
                PointSpec { index, dir: format!("{index:0width$}"), values, overrides }
            })
            .collect()
    }
}

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
    /// Makes the sweep directory under `root/<name>/` with a run directory per point.
    /// A point whose overrides do not resolve is written as failed; if none resolves the
    /// sweep is not made and the first point's error is returned.
    pub fn create(plan: &Plan, root: &Path, launcher: &str) -> Result<Self> {
        let points = plan.points();
        let resolved: Vec<_> = points.iter().map(|p| resolve(&plan.experiment, &p.overrides)).collect();
        if let Some(Err(first)) = resolved.iter().find(|r| r.is_err()).filter(|_| resolved.iter().all(Result::is_err)) {
            return Err(TrainError::Config(format!("no point of the sweep resolves; the first: {first}")));
        }
        let path = create_stamped(root, &plan.name)?;
        let spec = Self::planned(plan, &path, launcher)?.spec;
        let sweep = Self { path, spec };
        sweep.save()?;
        for (p, r) in points.iter().zip(resolved) {
            let dir = RunDir::create_at(&sweep.path.join(&p.dir))?;
            match r {
                Ok(resolved) => write_new(&dir, &resolved, 0, Status::Pending)?,
                Err(e) => sweep.write_unresolved(&dir, p, &e)?,
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
    fn write_unresolved(&self, dir: &RunDir, p: &PointSpec, err: &TrainError) -> Result<()> {
        bottleneck_data::atomic::write_atomic(
            &dir.file("overrides.txt"),
            format!("{}\n", p.overrides.join("\n")).as_bytes(),
        )?;
        let mut m = failed_manifest(&self.spec);
        m.reason = Some(format!("config: {err}"));
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
        let spec = toml::from_str(&text).map_err(|e| TrainError::Run { path: file, reason: e.to_string() })?;
        Ok(Self { path: path.into(), spec })
    }

    /// Writes `sweep.toml`.
    pub fn save(&self) -> Result<()> {
        let text =
            toml::to_string_pretty(&self.spec).map_err(|e| TrainError::Config(format!("writing {SWEEP_FILE}: {e}")))?;
        let text = format!("# written by `bottleneck sweep`; `bottleneck sweep --resume` reads it\n{text}");
        Ok(bottleneck_data::atomic::write_atomic(&self.path.join(SWEEP_FILE), text.as_bytes())?)
    }

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

    /// Gets the sweep ready to continue and returns the points left to train: done
    /// points are skipped, interrupted ones keep their checkpoints (they resume), failed
    /// ones are cleared to start again, and points that did not resolve are resolved
    /// again (the experiment may have been fixed). Errors if a point is still training.
    pub fn prepare_resume(&self) -> Result<Vec<usize>> {
        let mut todo = Vec::new();
        for s in self.states() {
            let dir = self.run_dir(&s.point);
            let status = s.manifest.as_ref().map(|m| m.status);
            if let Some(m) = s.manifest.as_ref().filter(|m| m.status == Status::Running && m.process_alive()) {
                return Err(TrainError::Run {
                    path: dir.path,
                    reason: format!(
                        "point {} is still being trained by process {}; wait for it or stop it first",
                        s.point.dir,
                        m.pid.unwrap_or_default()
                    ),
                });
            }
            match status {
                Some(Status::Done) => continue,
                Some(Status::Failed) | None => {
                    if dir.file("config.toml").is_file() {
                        dir.clear_results()?;
                        let mut m = dir.read_manifest()?;
                        m.status = Status::Pending;
                        m.reason = None;
                        m.ended = None;
                        m.metrics.clear();
                        m.epochs_done = 0;
                        m.train_seconds = 0.0;
                        dir.write_manifest(&m)?;
                    } else {
                        match resolve(&self.spec.experiment, &s.point.overrides) {
                            Ok(r) => {
                                fs_err::create_dir_all(dir.path.join("checkpoints"))?;
                                write_new(&dir, &r, 0, Status::Pending)?;
                            }
                            Err(e) => {
                                self.write_unresolved(&dir, &s.point, &e)?;
                                continue;
                            }
                        }
                    }
                }
                Some(Status::Pending | Status::Running | Status::Interrupted) => {}
            }
            todo.push(s.point.index);
        }
        Ok(todo)
    }

    /// After the launcher: points that never recorded an outcome (a task killed by the
    /// scheduler, a crashed process) are marked failed with `why`.
    pub fn mark_lost(&self, points: &[usize], why: &str) -> Result<()> {
        for s in self.states() {
            if !points.contains(&s.point.index) {
                continue;
            }
            let dir = self.run_dir(&s.point);
            match s.manifest {
                Some(mut m) if matches!(m.status, Status::Running | Status::Pending) && !m.process_alive() => {
                    m.status = Status::Failed;
                    m.reason = Some(why.to_string());
                    m.ended = Some(now());
                    m.pid = None;
                    dir.write_manifest(&m)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Builds `summary.csv` and `summary.parquet`: one row per point with the swept
    /// values (typed), status, reason, epochs, training time, mean epoch time and the
    /// final metrics.
    pub fn write_summary(&self) -> Result<DataFrame> {
        self.write_summary_with(&[])
    }

    /// [`Sweep::write_summary`] with more columns (one value per point), e.g. the PCA
    /// baseline at each point's k.
    pub fn write_summary_with(&self, extra: &[(String, Vec<Option<f64>>)]) -> Result<DataFrame> {
        let states = self.states();
        let n = states.len();
        let mut cols = vec![
            Column::new("point".into(), states.iter().map(|s| s.point.index as u32).collect::<Vec<_>>()),
            Column::new("dir".into(), states.iter().map(|s| s.point.dir.clone()).collect::<Vec<_>>()),
        ];
        for (a, axis) in self.spec.axes.iter().enumerate() {
            let raw: Vec<&str> = states.iter().map(|s| s.point.values[a].as_str()).collect();
            cols.push(typed_column(axis.key.trim_start_matches('+'), &raw));
        }
        let statuses: Vec<String> = states
            .iter()
            .map(|s| s.manifest.as_ref().map_or_else(|| "missing".to_string(), |m| m.status.to_string()))
            .collect();
        cols.push(Column::new("status".into(), statuses));
        cols.push(Column::new(
            "reason".into(),
            states.iter().map(|s| s.manifest.as_ref().and_then(|m| m.reason.clone())).collect::<Vec<_>>(),
        ));
        cols.push(Column::new(
            "epochs_done".into(),
            states.iter().map(|s| s.manifest.as_ref().map(|m| m.epochs_done as u32)).collect::<Vec<_>>(),
        ));
        cols.push(Column::new(
            "train_seconds".into(),
            states.iter().map(|s| s.manifest.as_ref().map(|m| m.train_seconds)).collect::<Vec<_>>(),
        ));
        cols.push(Column::new(
            "threads".into(),
            states.iter().map(|s| s.manifest.as_ref().map(|m| m.threads as u32)).collect::<Vec<_>>(),
        ));
        let mut keys: Vec<String> = Vec::new();
        for k in FIRST_METRICS {
            if states.iter().any(|s| s.manifest.as_ref().is_some_and(|m| m.metrics.contains_key(k))) {
                keys.push(k.to_string());
            }
        }
        let rest: BTreeSet<&String> = states
            .iter()
            .filter_map(|s| s.manifest.as_ref())
            .flat_map(|m| m.metrics.keys())
            .filter(|k| !FIRST_METRICS.contains(&k.as_str()))
            .collect();
        keys.extend(rest.into_iter().cloned());
        for k in &keys {
            cols.push(Column::new(
                k.as_str().into(),
                states.iter().map(|s| s.manifest.as_ref().and_then(|m| m.metrics.get(k).copied())).collect::<Vec<_>>(),
            ));
        }
        for (name, values) in extra {
            cols.push(Column::new(name.as_str().into(), values.clone()));
        }
        let mut df =
            DataFrame::new(n, cols).map_err(|source| TrainError::Polars { path: self.path.join("summary"), source })?;
        write_table(&self.path.join("summary.csv"), &mut df, Table::Csv)?;
        write_table(&self.path.join("summary.parquet"), &mut df, Table::Parquet)?;
        Ok(df)
    }
}

/// Metrics shown first in the summary, when present.
const FIRST_METRICS: [&str; 11] = [
    "test_mse",
    "test_noisy_mse",
    "test_neg_elbo",
    "test_is_nll",
    "test_active_units",
    "linear_probe_accuracy",
    "knn_accuracy",
    "trustworthiness",
    "test_bce",
    "test_psnr",
    "mean_epoch_seconds",
];

/// A summary column for an axis: integers, floats or booleans when every value is one,
/// else text (strings without their quotes).
fn typed_column(name: &str, raw: &[&str]) -> Column {
    let parsed: Vec<figment::value::Value> = raw.iter().map(|r| parse_value(r)).collect();
    if let Some(v) =
        parsed.iter().map(|p| p.to_i128().and_then(|i| i64::try_from(i).ok())).collect::<Option<Vec<i64>>>()
    {
        return Column::new(name.into(), v);
    }
    if let Some(v) = parsed.iter().map(figment::value::Value::to_f64).collect::<Option<Vec<f64>>>() {
        return Column::new(name.into(), v);
    }
    if let Some(v) = parsed.iter().map(figment::value::Value::to_bool).collect::<Option<Vec<bool>>>() {
        return Column::new(name.into(), v);
    }
    let text: Vec<String> =
        parsed.iter().zip(raw).map(|(p, r)| p.as_str().map_or_else(|| (*r).to_string(), ToString::to_string)).collect();
    Column::new(name.into(), text)
}

/// A manifest for a point that never ran.
fn failed_manifest(spec: &SweepSpec) -> Manifest {
    Manifest {
        status: Status::Failed,
        reason: None,
        name: spec.name.clone(),
        experiment: spec.experiment.display().to_string(),
        seed: 0,
        device: String::new(),
        threads: 0,
        versions: BTreeMap::new(),
        git_commit: None,
        started: now(),
        ended: Some(now()),
        epochs_done: 0,
        train_seconds: 0.0,
        metrics: BTreeMap::new(),
        pid: None,
        host: None,
    }
}

/// How many points run at once and with how many threads each, so that
/// `jobs × threads ≤ cores` (jobs are capped at the cores and the points). Without
/// `--jobs`: one thread per point, as many points as cores (measured fastest for these
/// models; see the README's performance table).
#[must_use]
pub fn local_budget(jobs: Option<usize>, points: usize, cores: usize) -> (usize, usize) {
    let cores = cores.max(1);
    let jobs = jobs.unwrap_or(cores).clamp(1, cores).min(points.max(1));
    (jobs, (cores / jobs).max(1))
}

/// What the local launcher reports.
pub trait SweepObserver {
    /// A point's process started.
    fn started(&self, sweep: &Sweep, p: &PointSpec, threads: usize) {
        let _ = (sweep, p, threads);
    }
    /// A point ended (its manifest says how).
    fn finished(&self, sweep: &Sweep, p: &PointSpec, m: Option<&Manifest>) {
        let _ = (sweep, p, m);
    }
    /// About once a second while points run: (point, epochs written so far, epochs).
    fn tick(&self, sweep: &Sweep, running: &[(usize, usize, usize)]) {
        let _ = (sweep, running);
    }
}

/// Stop levels for [`run_local`]: 0 run on, 1 stop cleanly (points checkpoint), 2 now.
pub type StopLevel = AtomicUsize;

/// Epochs written to a point's `metrics.csv` so far.
fn epochs_written(dir: &RunDir) -> usize {
    fs_err::read_to_string(dir.file("metrics.csv")).map_or(0, |t| t.lines().count().saturating_sub(1))
}

/// Sends SIGTERM to a process (the `kill` command: no unsafe code for one signal).
fn terminate(child: &Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
}

/// Runs the points `todo` on this machine, `jobs` at a time with `threads` threads each
/// (or the point's `train.threads` when that is smaller), each as a `program resume`
/// process in its own process group. A point that fails does not stop the others. On a
/// stop request every running point is sent SIGTERM (it checkpoints and is marked
/// interrupted) and no new point starts; at level 2 they are killed.
pub fn run_local(
    sweep: &Sweep,
    todo: &[usize],
    jobs: usize,
    threads: usize,
    program: &Path,
    stop: &StopLevel,
    obs: &dyn SweepObserver,
) -> Result<()> {
    use std::os::unix::process::CommandExt as _;
    let mut queue: std::collections::VecDeque<usize> = todo.iter().copied().collect();
    let mut running: Vec<(usize, Child)> = Vec::new();
    let mut signalled = 0;
    let mut last_tick = Instant::now();
    while !running.is_empty() || (!queue.is_empty() && stop.load(Ordering::SeqCst) == 0) {
        let level = stop.load(Ordering::SeqCst);
        if level > signalled {
            for (_, child) in &mut running {
                if level >= 2 {
                    let _ = child.kill();
                } else {
                    terminate(child);
                }
            }
            signalled = level;
        }
        while level == 0 && running.len() < jobs {
            let Some(i) = queue.pop_front() else { break };
            let p = &sweep.spec.points[i];
            let dir = sweep.run_dir(p);
            let cfg = dir.read_config()?;
            let t = if cfg.train.threads == 0 { threads } else { cfg.train.threads.min(threads) };
            let log = fs_err::OpenOptions::new().create(true).append(true).open(dir.file("task.log"))?;
            let child = Command::new(program)
                .args(["resume", "--quiet", "--threads", &t.to_string()])
                .arg(&dir.path)
                .current_dir(&sweep.spec.cwd)
                .env(PARENT_ENV, std::process::id().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log.into_parts().0))
                .process_group(0)
                .spawn()
                .map_err(|e| TrainError::Run { path: program.into(), reason: format!("starting a point: {e}") })?;
            obs.started(sweep, p, t);
            running.push((i, child));
        }
        let mut k = 0;
        while k < running.len() {
            if let Some(code) = running[k].1.try_wait()? {
                let (i, _) = running.remove(k);
                let p = &sweep.spec.points[i];
                let dir = sweep.run_dir(p);
                if let Ok(mut m) = dir.read_manifest() {
                    if m.status == Status::Running {
                        // The process ended without recording an outcome.
                        let stopped = stop.load(Ordering::SeqCst) > 0;
                        m.status = if stopped { Status::Interrupted } else { Status::Failed };
                        m.reason = Some(format!(
                            "the point's process exited ({code}) without recording an outcome; see task.log"
                        ));
                        m.pid = None;
                        m.ended = Some(now());
                        dir.write_manifest(&m)?;
                    }
                }
                obs.finished(sweep, p, dir.read_manifest().ok().as_ref());
            } else {
                k += 1;
            }
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            let rows: Vec<(usize, usize, usize)> = running
                .iter()
                .map(|(i, _)| {
                    let dir = sweep.run_dir(&sweep.spec.points[*i]);
                    let epochs = dir.read_config().map_or(0, |c| c.train.epochs);
                    (*i, epochs_written(&dir), epochs)
                })
                .collect();
            obs.tick(sweep, &rows);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_ranges_and_choices_parse() {
        assert_eq!(axis_values("2,4,8").unwrap(), Some(vec!["2".into(), "4".into(), "8".into()]));
        assert_eq!(axis_values("8").unwrap(), None);
        assert_eq!(axis_values("[512, 256]").unwrap(), None);
        assert_eq!(axis_values("[512,256],[256,128]").unwrap(), Some(vec!["[512,256]".into(), "[256,128]".into()]));
        assert_eq!(
            axis_values("range(2,34,8)").unwrap(),
            Some(vec!["2".into(), "10".into(), "18".into(), "26".into()])
        );
        assert_eq!(axis_values("range(3)").unwrap_err(), "range takes (start, stop) or (start, stop, step)");
        assert_eq!(axis_values("range(0, 3)").unwrap(), Some(vec!["0".into(), "1".into(), "2".into()]));
        assert_eq!(axis_values("range(10,0,-5)").unwrap(), Some(vec!["10".into(), "5".into()]));
        assert_eq!(axis_values("range(0.1,0.4,0.1)").unwrap(), Some(vec!["0.1".into(), "0.2".into(), "0.3".into()]));
        assert_eq!(axis_values("range(0,1,0.5)").unwrap(), Some(vec!["0.0".into(), "0.5".into()]));
        assert!(axis_values("range(1,2,0)").is_err());
        assert!(axis_values("range(5,2)").is_err(), "an empty range is an error");
        assert_eq!(axis_values("choice(relu, \"a,b\")").unwrap(), Some(vec!["relu".into(), "\"a,b\"".into()]));
        assert!(axis_values("2,,4").is_err());
    }

    #[test]
    fn the_grid_is_a_cartesian_product_with_the_last_axis_fastest() {
        let axis = |k: &str, v: &[&str]| Axis {
            key: k.into(),
            values: v.iter().map(ToString::to_string).collect(),
            source: String::new(),
        };
        let plan = Plan {
            experiment: PathBuf::from("x.toml"),
            name: "x".into(),
            fixed: vec!["train=debug".into()],
            axes: vec![axis("model", &["dense", "conv"]), axis("model.latent_dim", &["2", "4", "8"])],
        };
        let points = plan.points();
        assert_eq!(points.len(), 6);
        assert_eq!(points[1].overrides, ["train=debug", "model=dense", "model.latent_dim=4"]);
        assert_eq!(points[3].values, ["conv", "2"]);
        assert_eq!(points[5].dir, "005");
    }

    #[test]
    fn the_budget_keeps_jobs_times_threads_within_the_cores() {
        assert_eq!(local_budget(None, 6, 2), (2, 1));
        assert_eq!(local_budget(Some(1), 6, 2), (1, 2));
        assert_eq!(local_budget(Some(4), 6, 2), (2, 1), "no more jobs than cores");
        assert_eq!(local_budget(None, 1, 16), (1, 16));
        assert_eq!(local_budget(Some(3), 6, 16), (3, 5));
    }

    #[test]
    fn summary_columns_are_typed() {
        assert_eq!(typed_column("k", &["2", "4"]).dtype(), &DataType::Int64);
        assert_eq!(typed_column("lr", &["1e-3", "3e-4"]).dtype(), &DataType::Float64);
        let c = typed_column("kind", &["dense", "\"conv\""]);
        assert_eq!(c.str().unwrap().get(1), Some("conv"));
    }
}
