//! `summary.csv` and `summary.parquet`: one row per point.

use std::collections::BTreeSet;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_columns_are_typed() {
        assert_eq!(typed_column("k", &["2", "4"]).dtype(), &DataType::Int64);
        assert_eq!(typed_column("lr", &["1e-3", "3e-4"]).dtype(), &DataType::Float64);
        let c = typed_column("kind", &["dense", "\"conv\""]);
        assert_eq!(c.str().unwrap().get(1), Some("conv"));
    }
}
