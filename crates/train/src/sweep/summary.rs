//! `summary.csv` and `summary.parquet`: one row per point.
//!
//! The two files change together: each summary is written into a fresh folder
//! `.summary-<id>/`, and one symbolic link, `.summary`, is switched to it by a rename (the
//! only atomic step POSIX offers for a pair of files). `summary.csv` and `summary.parquet`
//! are links through `.summary`, so at every moment, a crash included, they show one
//! summary.

use std::collections::BTreeSet;
use std::path::Path;

use polars::prelude::*;

use super::Sweep;
use crate::config::parse_value;
use crate::error::{Result, TrainError};
use crate::rundir::{write_table, Table};

impl Sweep {
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
        write_pair(&self.path, &mut df)?;
        Ok(df)
    }
}

/// The link both summary files go through, and the prefix of its targets.
const CURRENT: &str = ".summary";

/// Writes `summary.csv` and `summary.parquet` of `sweep_dir` as one change (module docs).
fn write_pair(sweep_dir: &Path, df: &mut DataFrame) -> Result<()> {
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let name = format!("{CURRENT}-{stamp}-{}", std::process::id());
    let generation = sweep_dir.join(&name);
    fs_err::create_dir_all(&generation)?;
    write_table(&generation.join("summary.csv"), df, Table::Csv)?;
    write_table(&generation.join("summary.parquet"), df, Table::Parquet)?;
    let current = sweep_dir.join(CURRENT);
    let displaced = std::fs::read_link(&current).ok();
    if let Err(e) = swap_link(&current, Path::new(&name)) {
        // A filesystem without symbolic links: two plain files, each written atomically.
        tracing::warn!("{e}; writing the summary files one after the other");
        let _ = fs_err::remove_dir_all(&generation);
        for (file, table) in [("summary.csv", Table::Csv), ("summary.parquet", Table::Parquet)] {
            let path = sweep_dir.join(file);
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                fs_err::remove_file(&path)?;
            }
            write_table(&path, df, table)?;
        }
        return Ok(());
    }
    for file in ["summary.csv", "summary.parquet"] {
        let link = sweep_dir.join(file);
        let target = Path::new(CURRENT).join(file);
        // Made once; a plain file from an older version becomes the link.
        if std::fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
            swap_link(&link, &target)?;
        }
    }
    bottleneck_data::atomic::sync_dir(sweep_dir)?;
    // The summary this one replaced (only a summary folder of this sweep, never a path
    // from elsewhere).
    if let Some(old) = displaced.filter(|d| d.as_os_str() != name.as_str()) {
        let plain = old.components().count() == 1 && old.to_string_lossy().starts_with(&format!("{CURRENT}-"));
        if plain {
            let _ = fs_err::remove_dir_all(sweep_dir.join(old));
        }
    }
    Ok(())
}

/// Points `link` at `target` by renaming a new link over it.
fn swap_link(link: &Path, target: &Path) -> Result<()> {
    let dir = link.parent().unwrap_or(Path::new("."));
    let name = link.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.link", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(|e| io_at(&tmp, &e))?;
    std::fs::rename(&tmp, link).map_err(|e| io_at(link, &e))?;
    Ok(())
}

fn io_at(path: &Path, e: &std::io::Error) -> TrainError {
    TrainError::Io(std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn read_csv(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn both_summary_files_switch_in_one_rename() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        // A sweep from before the links: plain files.
        std::fs::write(dir.join("summary.csv"), "old\n").unwrap();
        std::fs::write(dir.join("summary.parquet"), "old").unwrap();
        let mut a = df!("point" => [0u32, 1], "test_mse" => [0.5, 0.25]).unwrap();
        write_pair(dir, &mut a).unwrap();
        let mut b = df!("point" => [0u32, 1], "test_mse" => [0.125, 0.0625]).unwrap();
        write_pair(dir, &mut b).unwrap();
        for file in ["summary.csv", "summary.parquet"] {
            assert_eq!(std::fs::read_link(dir.join(file)).unwrap(), Path::new(".summary").join(file));
        }
        assert!(read_csv(&dir.join("summary.csv")).contains("0.0625"));
        let back = ParquetReader::new(std::fs::File::open(dir.join("summary.parquet")).unwrap()).finish().unwrap();
        assert!(back.equals(&b), "{back}");
        // The first summary's folder is gone; only the current one is left.
        let folders: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".summary-"))
            .collect();
        assert_eq!(folders.len(), 1, "{folders:?}");
        assert_eq!(std::fs::read_link(dir.join(".summary")).unwrap(), Path::new(&folders[0]));
        // A writer that dies before its rename leaves a folder nobody links to: the files
        // still show the last whole summary, and the next writer is not confused by it.
        std::fs::create_dir(dir.join(".summary-1-1")).unwrap();
        std::fs::write(dir.join(".summary-1-1/summary.csv"), "half").unwrap();
        assert!(read_csv(&dir.join("summary.csv")).contains("0.0625"));
        write_pair(dir, &mut a).unwrap();
        assert!(read_csv(&dir.join("summary.csv")).contains("0.25"));
    }

    #[test]
    fn summary_columns_are_typed() {
        assert_eq!(typed_column("k", &["2", "4"]).dtype(), &DataType::Int64);
        assert_eq!(typed_column("lr", &["1e-3", "3e-4"]).dtype(), &DataType::Float64);
        let c = typed_column("kind", &["dense", "\"conv\""]);
        assert_eq!(c.str().unwrap().get(1), Some("conv"));
    }
}
