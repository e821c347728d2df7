//! `bottleneck runs`: every run and sweep point under a folder, read from their
//! `manifest.json`, `config.toml` and `overrides.txt`, for one table (or JSON).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::rundir::RunDir;
use crate::sweep::SWEEP_FILE;

/// One run (or sweep point) as `bottleneck runs` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// The experiment's name.
    pub name: String,
    /// The run's folder name (`2026-11-26_23-04-01`), or `<sweep folder>/<point>`.
    pub timestamp: String,
    /// `pending`, `running`, `done`, `failed`, `interrupted`, or `unreadable` (its
    /// manifest could not be read; `reason` says why).
    pub status: String,
    /// Why it failed or stopped.
    pub reason: Option<String>,
    /// The sweep folder it is a point of.
    pub sweep: Option<PathBuf>,
    /// The `key=value` overrides that made it (a sweep point: the sweep's and its own).
    pub overrides: Vec<String>,
    /// Epochs completed.
    pub epochs_done: usize,
    /// `train.epochs` of its config.
    pub epochs: Option<usize>,
    /// Its test metrics (and those of `analysis.json`, prefixed as in the sweep summary).
    pub metrics: BTreeMap<String, f64>,
    /// Started (RFC 3339).
    pub started: String,
    /// The run folder.
    pub path: PathBuf,
}

/// The statuses an entry can have (for `--status`).
pub const STATUSES: [&str; 6] = ["pending", "running", "done", "failed", "interrupted", "unreadable"];

/// Every run under `root` (a runs folder, an experiment's folder, a sweep or a run),
/// sorted by path. Folders are searched four levels deep; a sweep's points are listed
/// with the sweep.
#[must_use]
pub fn list(root: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    walk(root, 0, None, &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn walk(dir: &Path, depth: usize, sweep: Option<&Path>, out: &mut Vec<Entry>) {
    if dir.join("manifest.json").is_file() {
        out.push(entry(dir, sweep));
        return;
    }
    if depth >= 4 {
        return;
    }
    let in_sweep = dir.join(SWEEP_FILE).is_file();
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut children: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    children.sort();
    for c in children {
        // Hidden folders (a summary's `.summary-<id>/`) and the event files' `tb/` are
        // not runs.
        if c.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            continue;
        }
        walk(&c, depth + 1, if in_sweep { Some(dir) } else { sweep }, out);
    }
}

fn entry(path: &Path, sweep: Option<&Path>) -> Entry {
    let dir = RunDir { path: path.to_path_buf() };
    let folder = |p: &Path| p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let timestamp = match sweep {
        Some(s) => format!("{}/{}", folder(s), folder(path)),
        None => folder(path),
    };
    let overrides = dir.read_overrides();
    let epochs = dir.read_config().ok().map(|c| c.train.epochs);
    match dir.read_manifest() {
        Ok(m) => {
            let mut metrics = m.metrics.clone();
            // The report's metrics, as the sweep summary joins them.
            metrics.extend(crate::sweep::analysis_metrics(&dir));
            Entry {
                name: m.name,
                timestamp,
                status: m.status.to_string(),
                reason: m.reason,
                sweep: sweep.map(Path::to_path_buf),
                overrides,
                epochs_done: m.epochs_done,
                epochs,
                metrics,
                started: m.started,
                path: path.to_path_buf(),
            }
        }
        Err(e) => Entry {
            name: path.parent().map(folder).unwrap_or_default(),
            timestamp,
            status: "unreadable".into(),
            reason: Some(e.to_string()),
            sweep: sweep.map(Path::to_path_buf),
            overrides,
            epochs_done: 0,
            epochs,
            metrics: BTreeMap::new(),
            started: String::new(),
            path: path.to_path_buf(),
        },
    }
}

/// The entries as a JSON array (non-finite metrics as `null`).
pub fn to_json(entries: &[Entry]) -> serde_json::Result<String> {
    serde_json::to_string_pretty(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_points_and_broken_manifests_are_listed() {
        let tmp = tempfile::tempdir().unwrap();
        let write = |rel: &str, name: &str, text: &str| {
            let d = tmp.path().join(rel);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(name), text).unwrap();
        };
        let manifest = |status: &str, mse: f64| {
            format!(
                r#"{{"status":"{status}","reason":null,"name":"exp","experiment":"e.toml","seed":0,"device":"cpu","threads":1,
                "versions":{{}},"git_commit":null,"started":"2026-12-01T10:00:00+00:00","ended":null,"epochs_done":3,
                "train_seconds":1.0,"metrics":{{"test_mse":{mse}}}}}"#
            )
        };
        write("exp/2026-12-01_10-00-00", "manifest.json", &manifest("done", 0.5));
        write("exp/2026-12-01_10-00-00", "overrides.txt", "model.latent_dim=4\n");
        write("exp/2026-12-01_10-00-00", "analysis.json", r#"{"metrics":{"probe_accuracy":0.75}}"#);
        write("exp/2026-12-02_10-00-00", SWEEP_FILE, "");
        write("exp/2026-12-02_10-00-00/000", "manifest.json", &manifest("failed", 0.25));
        write("exp/2026-12-02_10-00-00/001", "manifest.json", "{ not json");
        write("exp/2026-12-02_10-00-00/.summary-1", "manifest.json", &manifest("done", 0.0));
        let all = list(tmp.path());
        assert_eq!(all.len(), 3, "{all:#?}");
        assert_eq!(all[0].timestamp, "2026-12-01_10-00-00");
        assert_eq!(all[0].overrides, ["model.latent_dim=4"]);
        assert!((all[0].metrics["probe_accuracy"] - 0.75).abs() < 1e-12);
        assert_eq!(all[0].sweep, None);
        assert_eq!(all[1].timestamp, "2026-12-02_10-00-00/000");
        assert_eq!(all[1].status, "failed");
        assert_eq!(all[1].sweep.as_deref(), Some(tmp.path().join("exp/2026-12-02_10-00-00").as_path()));
        assert_eq!(all[2].status, "unreadable");
        assert!(all[2].reason.as_deref().unwrap_or("").contains("manifest.json"), "{:?}", all[2].reason);
        // A run folder itself, and a sweep folder, list just what they hold.
        assert_eq!(list(&tmp.path().join("exp/2026-12-01_10-00-00")).len(), 1);
        assert_eq!(list(&tmp.path().join("exp/2026-12-02_10-00-00")).len(), 2);
    }
}
