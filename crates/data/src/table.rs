//! Tables (CSV or Parquet) read with polars: numeric feature columns, optional labels.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use polars::prelude::*;

use crate::config::DataConfig;
use crate::dataset::{split_off, RawDataset, Split};
use crate::error::{DataError, Result};
use crate::source::{Format, Source};

fn polars_err(path: &Path) -> impl FnOnce(PolarsError) -> DataError + '_ {
    move |source| DataError::Polars { path: path.into(), source }
}

/// Reads a CSV (with a header row) or Parquet file into a polars `DataFrame`.
pub fn read_table(format: Format, path: &Path) -> Result<DataFrame> {
    let meta = fs_err::metadata(path)?;
    if meta.len() == 0 {
        return Err(DataError::Empty { path: path.into() });
    }
    // Parquet files begin (and end) with the magic `PAR1`; a CSV never does.
    let mut head = [0u8; 4];
    let n = std::io::Read::read(&mut fs_err::File::open(path)?, &mut head)?;
    let parquet = n == 4 && &head == b"PAR1";
    // The file decides where it can: Parquet's magic, else a text extension; a
    // `.parquet` file without the magic, or a text file of another name under
    // `parquet`, is an error.
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let text_name = matches!(ext.as_deref(), Some("csv" | "tsv" | "txt"));
    let format = match (format, parquet) {
        (Format::Csv, true) => {
            tracing::warn!(
                "{}: a Parquet file (it starts with PAR1) under data.name = \"csv\": reading it as Parquet",
                path.display()
            );
            Format::Parquet
        }
        (Format::Parquet, false) if text_name => {
            tracing::warn!("{}: a text file under data.name = \"parquet\": reading it as CSV", path.display());
            Format::Csv
        }
        (Format::Parquet, false) => {
            return Err(DataError::WrongTable {
                path: path.into(),
                found: "text (CSV?), not Parquet (no PAR1 magic)",
                expected: "Parquet",
                source_name: "parquet",
                use_name: "csv",
            })
        }
        (f, _) => f,
    };
    let df = match format {
        Format::Parquet => {
            let (file, _) = fs_err::File::open(path)?.into_parts();
            ParquetReader::new(file).finish().map_err(polars_err(path))?
        }
        _ => CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(10_000))
            .try_into_reader_with_file_path(Some(path.into()))
            .map_err(polars_err(path))?
            .finish()
            .map_err(polars_err(path))?,
    };
    if df.height() == 0 {
        return Err(DataError::Empty { path: path.into() });
    }
    Ok(df)
}

fn column<'a>(df: &'a DataFrame, path: &Path, name: &str) -> Result<&'a Column> {
    df.column(name).map_err(|_| DataError::Column {
        path: path.into(),
        column: name.into(),
        reason: format!(
            "no such column; the table has: {}",
            df.get_column_names().iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
        ),
    })
}

/// Extracts the feature matrix (row-major `[rows, features]`) from numeric columns.
/// An empty `features` list means every column except `label`.
pub fn feature_matrix(
    df: &DataFrame,
    path: &Path,
    features: &[String],
    label: &str,
) -> Result<(Vec<f32>, Vec<String>)> {
    let names: Vec<String> = if features.is_empty() {
        df.get_column_names().iter().map(ToString::to_string).filter(|c| c != label).collect()
    } else {
        features.to_vec()
    };
    if names.is_empty() {
        return Err(DataError::InvalidConfig {
            key: "data.features".into(),
            value: "[]".into(),
            allowed: format!("{}: the table has no feature columns besides the label", path.display()),
        });
    }
    let (rows, width) = (df.height(), names.len());
    let mut xs = vec![0f32; rows * width];
    for (j, name) in names.iter().enumerate() {
        let col = column(df, path, name)?;
        if !col.dtype().is_primitive_numeric() {
            return Err(DataError::Column {
                path: path.into(),
                column: name.clone(),
                reason: format!(
                    "has type {}; feature columns must be numeric (integer or float): list the numeric ones in data.features, or name this one as data.label",
                    col.dtype()
                ),
            });
        }
        let nulls = col.null_count();
        if nulls > 0 {
            return Err(DataError::Column {
                path: path.into(),
                column: name.clone(),
                reason: format!("has {nulls} null (missing) values; fill or drop them before training"),
            });
        }
        let cast = col.cast(&DataType::Float32).map_err(polars_err(path))?;
        let values = cast.f32().map_err(polars_err(path))?;
        for (i, v) in values.into_no_null_iter().enumerate() {
            if !v.is_finite() {
                return Err(DataError::Column {
                    path: path.into(),
                    column: name.clone(),
                    reason: format!("row {i} holds {v}; features must be finite numbers"),
                });
            }
            xs[i * width + j] = v;
        }
    }
    Ok((xs, names))
}

/// Extracts class labels: integer columns (values >= 0) or string columns (classes are
/// the sorted distinct strings).
pub fn label_column(df: &DataFrame, path: &Path, label: &str) -> Result<(Vec<u32>, Vec<String>)> {
    let col = column(df, path, label)?;
    let bad = |reason: String| DataError::Column { path: path.into(), column: label.into(), reason };
    let nulls = col.null_count();
    if nulls > 0 {
        return Err(bad(format!("label column has {nulls} null (missing) values")));
    }
    if col.dtype().is_string() {
        let ca = col.str().map_err(polars_err(path))?;
        let names: BTreeSet<&str> = ca.iter().flatten().collect();
        let names: Vec<String> = names.into_iter().map(str::to_string).collect();
        let labels = ca
            .iter()
            .flatten()
            .map(|s| names.binary_search_by(|n| n.as_str().cmp(s)).unwrap_or_default() as u32)
            .collect();
        Ok((labels, names))
    } else if col.dtype().is_integer() {
        let cast = col.cast(&DataType::Int64).map_err(polars_err(path))?;
        let ca = cast.i64().map_err(polars_err(path))?;
        let mut labels = Vec::with_capacity(ca.len());
        for (i, v) in ca.into_no_null_iter().enumerate() {
            if !(0..i64::from(u16::MAX)).contains(&v) {
                return Err(bad(format!("row {i} holds label {v}; integer labels must be in 0..65535")));
            }
            labels.push(v as u32);
        }
        let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
        Ok((labels, (0..classes).map(|c| c.to_string()).collect()))
    } else {
        Err(bad(format!("has type {}; labels must be integers or strings", col.dtype())))
    }
}

/// Loads a table source: features, labels, and a seeded train/test split
/// (`data.test_fraction`).
pub fn load(source: &Source, cfg: &DataConfig, seed: u64) -> Result<RawDataset> {
    cfg.check_path()?;
    let path = PathBuf::from(&cfg.path);
    let df = read_table(source.format, &path)?;
    let (xs, feature_names) = feature_matrix(&df, &path, &cfg.features, &cfg.label)?;
    let (labels, classes) = if cfg.label.is_empty() {
        (None, Vec::new())
    } else {
        let (l, c) = label_column(&df, &path, &cfg.label)?;
        (Some(l), c)
    };
    let width = feature_names.len();
    let all = Split::new(Tensor::from_vec(xs, (df.height(), width), &Device::Cpu)?, labels)?;
    let (train, test) = split_off(all, cfg.test_fraction, seed)?;
    Ok(RawDataset {
        name: source.name.into(),
        sample_shape: vec![width],
        classes,
        feature_names,
        factors: Vec::new(),
        location: path,
        pixels: false,
        train,
        test,
    })
}
