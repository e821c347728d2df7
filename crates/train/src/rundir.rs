//! Run directories: `runs/<name>/<YYYY-MM-DD_HH-MM-SS>/` with the resolved config, the
//! overrides, the manifest, metrics tables, checkpoints and latents. Every file is
//! written atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::ExperimentConfig;
use crate::error::{Result, TrainError};
use bottleneck_data::atomic::{write_atomic, write_atomic_with};

/// Run status in `manifest.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Prepared by a sweep, not started yet.
    Pending,
    /// Training or evaluating now (or killed without a chance to say otherwise).
    Running,
    /// Finished; final metrics are in the manifest.
    Done,
    /// Failed; `reason` says why.
    Failed,
    /// Stopped by Ctrl-C, SIGTERM or SIGHUP after a checkpoint, or its process died
    /// without recording an outcome (`reason` says which); `bottleneck resume` continues
    /// it from its last checkpoint.
    Interrupted,
}

/// Why a run failed: what `bottleneck sweep --resume` does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Failure {
    /// The point's values do not resolve, or its config is invalid: resolved again.
    Config,
    /// The loss became NaN or infinite: trained again from its first epoch.
    Numeric,
    /// Another error while training (data, I/O): trained again from its first epoch.
    Error,
    /// Its process kept dying without a new checkpoint (`launcher.max_retries` times):
    /// resumed from its last checkpoint.
    Lost,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Where the run stands.
    pub status: Status,
    /// Why it failed or stopped.
    pub reason: Option<String>,
    /// Experiment name.
    pub name: String,
    /// The experiment file it came from.
    pub experiment: String,
    /// Seed.
    pub seed: u64,
    /// The device it trains on: `cpu` or `cuda:N` as the training process resolved the
    /// config's `device` (the config's own text until a process has started).
    pub device: String,
    /// The GPU, when it trains on one (model, compute capability, memory, driver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<crate::device::GpuInfo>,
    /// Worker threads.
    pub threads: usize,
    /// Versions: bottleneck, candle, polars.
    pub versions: BTreeMap<String, String>,
    /// `git rev-parse HEAD` of the working directory, when it is a repository.
    pub git_commit: Option<String>,
    /// Start time (RFC 3339, local).
    pub started: String,
    /// End time, when it ended.
    pub ended: Option<String>,
    /// Epochs completed.
    pub epochs_done: usize,
    /// Seconds spent training (all sessions of a resumed run).
    pub train_seconds: f64,
    /// Final metrics (test set), once done. Non-finite values are written as the strings
    /// `"NaN"`, `"inf"` and `"-inf"` (JSON has no such numbers).
    #[serde(with = "finite")]
    pub metrics: BTreeMap<String, f64>,
    /// The process training the run while it is `running` (with `host`): how a sweep
    /// tells a live run from one whose process was killed.
    #[serde(default)]
    pub pid: Option<u32>,
    /// Short host name of that process.
    #[serde(default)]
    pub host: Option<String>,
    /// While `running`: when the training process last said it is alive (RFC 3339,
    /// every [`HEARTBEAT_SECONDS`]). Tells a live run on another node from a dead one
    /// where file locks do not cross nodes.
    #[serde(default)]
    pub heartbeat: Option<String>,
    /// Why it failed, when it did.
    #[serde(default)]
    pub failure: Option<Failure>,
    /// How many times the training process was started (`run`, `resume`, a sweep).
    #[serde(default)]
    pub starts: u32,
    /// Deaths in a row without a new checkpoint (process killed without recording an
    /// outcome); past `launcher.max_retries` the run is failed as lost.
    #[serde(default)]
    pub lost: u32,
    /// The checkpoint's optimiser step at the last such death.
    #[serde(default)]
    pub lost_step: Option<u64>,
}

/// Seconds between a training process's heartbeats in its manifest.
pub const HEARTBEAT_SECONDS: u64 = 10;

/// A `running` manifest whose heartbeat is older than this (and whose lock is free) is
/// taken to be dead.
pub const STALE_SECONDS: i64 = 60;

/// Serde for metric maps that keep non-finite values: `NaN`/`inf`/`-inf` as strings;
/// `null` (what older versions wrote for them) reads as NaN.
pub mod finite {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Num {
        F(f64),
        S(String),
        Null(()),
    }

    fn to_num(v: f64) -> Num {
        if v.is_finite() {
            Num::F(v)
        } else if v.is_nan() {
            Num::S("NaN".into())
        } else {
            Num::S(if v > 0.0 { "inf" } else { "-inf" }.into())
        }
    }

    /// Serialises the map.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(map: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        map.iter().map(|(k, v)| (k, to_num(*v))).collect::<BTreeMap<_, _>>().serialize(s)
    }

    /// Reads the map.
    ///
    /// # Errors
    /// A value that is neither a number, `null`, nor one of the strings above.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        let raw = BTreeMap::<String, Num>::deserialize(d)?;
        raw.into_iter()
            .map(|(k, v)| {
                let x = match v {
                    Num::F(x) => x,
                    Num::Null(()) => f64::NAN,
                    Num::S(s) => match s.as_str() {
                        "NaN" | "nan" => f64::NAN,
                        "inf" | "+inf" | "Infinity" => f64::INFINITY,
                        "-inf" | "-Infinity" => f64::NEG_INFINITY,
                        other => {
                            return Err(serde::de::Error::custom(format!(
                            "metric `{k}`: `{other}` is not a number (expected a number, \"NaN\", \"inf\" or \"-inf\")"
                        )))
                        }
                    },
                };
                Ok((k, x))
            })
            .collect()
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        })
    }
}

impl Manifest {
    /// A manifest of run `name` from `experiment` that has not started: `pending`, no
    /// metrics, no process. Callers fill in what they know (seed, device, versions).
    #[must_use]
    pub fn new(name: &str, experiment: &str) -> Self {
        Self {
            status: Status::Pending,
            reason: None,
            name: name.into(),
            experiment: experiment.into(),
            seed: 0,
            device: String::new(),
            gpu: None,
            threads: 0,
            versions: BTreeMap::new(),
            git_commit: None,
            started: now(),
            ended: None,
            epochs_done: 0,
            train_seconds: 0.0,
            metrics: BTreeMap::new(),
            pid: None,
            host: None,
            heartbeat: None,
            failure: None,
            starts: 0,
            lost: 0,
            lost_step: None,
        }
    }

    /// The one way a run's status changes (every writer goes through it or
    /// [`Manifest::fail`]): `running` records this process, its host and a heartbeat;
    /// `pending` clears them; an end state records the end time.
    pub fn set_status(&mut self, status: Status, reason: Option<String>) {
        self.status = status;
        self.reason = reason;
        self.failure = None;
        match status {
            Status::Running => {
                self.pid = Some(std::process::id());
                self.host = Some(hostname());
                self.heartbeat = Some(now());
                self.ended = None;
            }
            Status::Pending => {
                self.pid = None;
                self.heartbeat = None;
                self.ended = None;
            }
            Status::Done | Status::Failed | Status::Interrupted => {
                self.pid = None;
                self.heartbeat = None;
                self.ended = Some(now());
            }
        }
    }

    /// Marks the run failed for `failure` with `reason`.
    pub fn fail(&mut self, failure: Failure, reason: String) {
        self.set_status(Status::Failed, Some(reason));
        self.failure = Some(failure);
    }

    /// Seconds since the last heartbeat (none without one, or when it does not parse).
    #[must_use]
    pub fn heartbeat_age(&self) -> Option<i64> {
        let t = chrono::DateTime::parse_from_rfc3339(self.heartbeat.as_deref()?).ok()?;
        Some((chrono::Local::now().fixed_offset() - t).num_seconds())
    }

    /// `process P on HOST`, for messages.
    #[must_use]
    pub fn owner(&self) -> String {
        match (self.pid, &self.host) {
            (Some(p), Some(h)) => format!("process {p} on {h}"),
            (Some(p), None) => format!("process {p}"),
            _ => "another process".into(),
        }
    }
}

/// Overrides [`hostname`] (tests simulate a second node with it).
pub const HOST_ENV: &str = "BOTTLENECK_HOST";

/// This machine's short host name (`BOTTLENECK_HOST`, else the kernel's, else
/// `HOSTNAME`, else `localhost`).
#[must_use]
pub fn hostname() -> String {
    std::env::var(HOST_ENV)
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().split('.').next().unwrap_or_default().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// One row of `metrics.csv`: deterministic for a seed and thread count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's samples (noisy inputs for denoising).
    pub train_loss: f64,
    /// Mean validation loss (clean inputs), with the term weights of the last epoch (so
    /// that it compares across epochs under KL warm-up or capacity schedules); none
    /// without a validation split.
    pub val_loss: Option<f64>,
    /// Learning rate used.
    pub lr: f64,
    /// Wall seconds of the epoch (kept in `timings.csv`, not `metrics.csv`).
    pub epoch_seconds: f64,
    /// Training samples per second (kept in `timings.csv`).
    pub samples_per_second: f64,
    /// Mean value of each term of the objective over the epoch's training samples
    /// (unweighted), in the model's order: `train_<name>` columns.
    #[serde(default)]
    pub train_terms: Vec<(String, f64)>,
    /// The same on the validation split: `val_<name>` columns.
    #[serde(default)]
    pub val_terms: Vec<(String, f64)>,
}

impl EpochRow {
    /// The names of the terms in `rows`, in order of first appearance.
    #[must_use]
    pub fn term_names(rows: &[Self]) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for r in rows {
            for (n, _) in r.train_terms.iter().chain(&r.val_terms) {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
        names
    }
}

fn term_of(terms: &[(String, f64)], name: &str) -> Option<f64> {
    terms.iter().find(|t| t.0 == name).map(|t| t.1)
}

/// A run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The directory.
    pub path: PathBuf,
}

impl RunDir {
    /// Creates `root/<name>/<timestamp>/` (with a `_N` suffix if it exists) and its
    /// `checkpoints/` folder.
    pub fn create(root: &Path, name: &str) -> Result<Self> {
        let path = create_stamped(root, name)?;
        fs_err::create_dir_all(path.join("checkpoints"))?;
        Ok(Self { path })
    }

    /// Creates the run directory `path` (a sweep's point; it must not exist yet).
    pub fn create_at(path: &Path) -> Result<Self> {
        fs_err::create_dir(path)?;
        fs_err::create_dir_all(path.join("checkpoints"))?;
        Ok(Self { path: path.into() })
    }

    /// Deletes what training wrote (checkpoints, metrics, latents), keeping the config,
    /// overrides and logs: the run can start again from its first epoch.
    pub fn clear_results(&self) -> Result<()> {
        let ckpt = self.path.join("checkpoints");
        if ckpt.is_dir() {
            fs_err::remove_dir_all(&ckpt)?;
        }
        fs_err::create_dir_all(&ckpt)?;
        for f in ["metrics.csv", "metrics.parquet", "timings.csv", "latents.parquet"] {
            let p = self.file(f);
            if p.is_file() {
                fs_err::remove_file(p)?;
            }
        }
        Ok(())
    }

    /// An existing run directory (must hold `config.toml`).
    pub fn open(path: &Path) -> Result<Self> {
        if !path.join("config.toml").is_file() {
            return Err(TrainError::Run {
                path: path.into(),
                reason: "not a run directory: no config.toml (expected runs/<name>/<timestamp>/)".into(),
            });
        }
        Ok(Self { path: path.into() })
    }

    /// `<run>/<name>`.
    #[must_use]
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// `checkpoints/last.safetensors`.
    #[must_use]
    pub fn last_checkpoint(&self) -> PathBuf {
        self.path.join("checkpoints").join("last.safetensors")
    }

    /// `checkpoints/best.safetensors`.
    #[must_use]
    pub fn best_checkpoint(&self) -> PathBuf {
        self.path.join("checkpoints").join("best.safetensors")
    }

    /// Writes `config.toml` and `overrides.txt`.
    pub fn write_config(&self, cfg: &ExperimentConfig, overrides: &[String]) -> Result<()> {
        let text =
            toml::to_string_pretty(cfg).map_err(|e| TrainError::Config(format!("serialising the config: {e}")))?;
        write_atomic(
            &self.file("config.toml"),
            format!("# resolved config; `bottleneck resume` reads this\n{text}").as_bytes(),
        )?;
        let mut o = overrides.join("\n");
        if !o.is_empty() {
            o.push('\n');
        }
        Ok(write_atomic(&self.file("overrides.txt"), o.as_bytes())?)
    }

    /// The `key=value` lines of `overrides.txt` (none when it is missing).
    #[must_use]
    pub fn read_overrides(&self) -> Vec<String> {
        std::fs::read_to_string(self.file("overrides.txt"))
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    /// Reads `config.toml`.
    pub fn read_config(&self) -> Result<ExperimentConfig> {
        let path = self.file("config.toml");
        let text = fs_err::read_to_string(&path)?;
        toml::from_str(&text).map_err(|e| TrainError::Run { path, reason: e.to_string() })
    }

    /// Writes `manifest.json`.
    pub fn write_manifest(&self, m: &Manifest) -> Result<()> {
        let json = serde_json::to_vec_pretty(m).map_err(|e| TrainError::Config(e.to_string()))?;
        Ok(write_atomic(&self.file("manifest.json"), &json)?)
    }

    /// Reads `manifest.json`.
    pub fn read_manifest(&self) -> Result<Manifest> {
        let path = self.file("manifest.json");
        serde_json::from_slice(&fs_err::read(&path)?).map_err(|e| TrainError::Run { path, reason: e.to_string() })
    }

    /// Writes `metrics.csv` + `metrics.parquet` (losses, lr, then `train_<term>` and
    /// `val_<term>` for each term of the objective) and `timings.csv` (seconds,
    /// samples/s): the metrics are identical for a seed; timings never are.
    pub fn write_metrics(&self, rows: &[EpochRow]) -> Result<()> {
        let epoch: Vec<u32> = rows.iter().map(|r| r.epoch as u32).collect();
        let mut cols = vec![
            Column::new("epoch".into(), &epoch),
            Column::new("train_loss".into(), rows.iter().map(|r| r.train_loss).collect::<Vec<_>>()),
            Column::new("val_loss".into(), rows.iter().map(|r| r.val_loss).collect::<Vec<_>>()),
            Column::new("lr".into(), rows.iter().map(|r| r.lr).collect::<Vec<_>>()),
        ];
        for name in EpochRow::term_names(rows) {
            let train: Vec<Option<f64>> = rows.iter().map(|r| term_of(&r.train_terms, &name)).collect();
            let val: Vec<Option<f64>> = rows.iter().map(|r| term_of(&r.val_terms, &name)).collect();
            cols.push(Column::new(format!("train_{name}").into(), train));
            cols.push(Column::new(format!("val_{name}").into(), val));
        }
        let mut metrics = DataFrame::new(rows.len(), cols).map_err(|e| self.polars("metrics", e))?;
        let mut timings = DataFrame::new(
            rows.len(),
            vec![
                Column::new("epoch".into(), &epoch),
                Column::new("epoch_seconds".into(), rows.iter().map(|r| r.epoch_seconds).collect::<Vec<_>>()),
                Column::new("samples_per_second".into(), rows.iter().map(|r| r.samples_per_second).collect::<Vec<_>>()),
            ],
        )
        .map_err(|e| self.polars("timings", e))?;
        write_table(&self.file("metrics.csv"), &mut metrics, Table::Csv)?;
        write_table(&self.file("metrics.parquet"), &mut metrics, Table::Parquet)?;
        write_table(&self.file("timings.csv"), &mut timings, Table::Csv)
    }

    fn polars(&self, what: &str, source: PolarsError) -> TrainError {
        TrainError::Polars { path: self.file(what), source }
    }
}

/// Creates `root/<name>/<YYYY-MM-DD_HH-MM-SS>/`, with a `_N` suffix when that exists.
pub fn create_stamped(root: &Path, name: &str) -> Result<PathBuf> {
    let stamp = stamp();
    let base = root.join(name);
    fs_err::create_dir_all(&base)?;
    for n in 0.. {
        let path = if n == 0 { base.join(&stamp) } else { base.join(format!("{stamp}_{n}")) };
        match fs_err::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
    }
    unreachable!("an unbounded range always yields a free name")
}

/// Table formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// CSV with a header.
    Csv,
    /// Parquet.
    Parquet,
}

/// Writes a polars frame atomically.
pub fn write_table(path: &Path, df: &mut DataFrame, format: Table) -> Result<()> {
    let mut err = None;
    let res = write_atomic_with(path, |f| {
        let r = match format {
            Table::Csv => CsvWriter::new(f).finish(df),
            Table::Parquet => ParquetWriter::new(f).finish(df).map(|_| ()),
        };
        r.map_err(|e| {
            let io = std::io::Error::other(e.to_string());
            err = Some(e);
            io
        })
    });
    match (res, err) {
        (_, Some(source)) => Err(TrainError::Polars { path: path.into(), source }),
        (r, None) => Ok(r?),
    }
}

/// `git rev-parse HEAD` in the current directory, if it is a repository.
#[must_use]
pub fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Now as a directory name: `YYYY-MM-DD_HH-MM-SS`, local time.
#[must_use]
pub fn stamp() -> String {
    chrono::Local::now().format("%Y-%m-%d_%H-%M-%S").to_string()
}

/// Now, RFC 3339 local time.
#[must_use]
pub fn now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_metrics_read_back() {
        #[derive(Serialize, Deserialize)]
        struct M {
            #[serde(with = "finite")]
            m: BTreeMap<String, f64>,
        }
        let m: BTreeMap<String, f64> = [("a", 0.25), ("b", f64::NAN), ("c", f64::INFINITY), ("d", f64::NEG_INFINITY)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let json = serde_json::to_string(&M { m }).unwrap();
        assert_eq!(json, r#"{"m":{"a":0.25,"b":"NaN","c":"inf","d":"-inf"}}"#);
        let back: M = serde_json::from_str(&json).unwrap();
        assert_eq!(back.m["a"].to_bits(), 0.25f64.to_bits());
        assert!(back.m["b"].is_nan());
        assert!(back.m["c"].is_infinite() && back.m["c"] > 0.0 && back.m["d"].is_infinite() && back.m["d"] < 0.0);
        // What older versions wrote for a non-finite value.
        let old: M = serde_json::from_str(r#"{"m":{"test_psnr":null}}"#).unwrap();
        assert!(old.m["test_psnr"].is_nan());
        let bad = serde_json::from_str::<M>(r#"{"m":{"x":"many"}}"#).err().unwrap().to_string();
        assert!(bad.contains("metric `x`"), "{bad}");
    }
}
