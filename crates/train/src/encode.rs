//! `bottleneck encode`: a trained run's encoder as a feature extractor — the codes of a
//! split of its data, or of other data given by `data.*` overrides, with labels and
//! known factors, as Parquet.

use std::path::Path;

use bottleneck_data::dataset::split_off;
use bottleneck_data::{Batcher, Factor, RawDataset, Split};
use bottleneck_models::Autoencoder;
use candle_core::Device;
use candle_nn::VarMap;
use polars::prelude::*;

use crate::config::{override_data, ExperimentConfig};
use crate::error::{Result, TrainError};
use crate::rundir::{write_table, RunDir, Table};
use crate::runner::{build_model, device, named_vars, read_data_facts, setup, DataFacts};

/// The splits `--split` names.
pub const SPLITS: [&str; 4] = ["train", "val", "test", "all"];

/// What was encoded: rows per split and the code width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// `(split, rows)` in order.
    pub rows: Vec<(String, usize)>,
    /// Code width k.
    pub k: usize,
}

/// Encodes `split` (`train`, `val`, `test` or `all`) of the run's data, or of the data
/// its config gets with `data_overrides`, into `out` (Parquet: `split`, `index` within
/// the split, `label` and `factor_<name>` where the data has them, `z0…`). The data is
/// normalised as the run's training data was (its fitted normaliser); a sample shape
/// other than the run's is an error naming both.
pub fn encode(dir: &RunDir, split: &str, data_overrides: &[String], out: &Path) -> Result<Encoded> {
    if !SPLITS.contains(&split) {
        return Err(TrainError::Config(format!("--split {split}: one of {}", SPLITS.join(", "))));
    }
    let mut cfg = dir.read_config()?;
    // On the CPU, whatever the run trained on: codes do not depend on the device, and a
    // GPU run's codes are wanted on machines without one too.
    cfg.device = "cpu".into();
    let dev = device(&cfg)?;
    let (model, varmap, splits, factors) = if data_overrides.is_empty() {
        let s = setup(&cfg)?;
        let d = s.data;
        (s.model, s.varmap, vec![("train", d.train), ("val", d.val), ("test", d.test)], d.factors)
    } else {
        other_data(dir, &cfg, data_overrides, &dev)?
    };
    let weights =
        [dir.best_checkpoint(), dir.last_checkpoint()].into_iter().find(|p| p.is_file()).ok_or_else(|| {
            TrainError::Run {
                path: dir.path.clone(),
                reason: "no checkpoint yet: nothing trained to encode with".into(),
            }
        })?;
    crate::checkpoint::load_weights(&weights, &named_vars(&varmap))?;
    let chosen: Vec<(&str, Split)> = splits.into_iter().filter(|(n, _)| split == "all" || *n == split).collect();
    let k = model.latent_dim();
    let mut names: Vec<String> = Vec::new();
    let mut index: Vec<u32> = Vec::new();
    let mut labels: Vec<Option<u32>> = Vec::new();
    let mut fac: Vec<Vec<f32>> = vec![Vec::new(); factors.len()];
    let mut zs: Vec<Vec<f32>> = vec![Vec::new(); k];
    let mut rows = Vec::new();
    for (name, sp) in &chosen {
        rows.push(((*name).to_string(), sp.len()));
        for b in Batcher::new(sp, cfg.train.eval_batch_size).device(&dev) {
            let z: Vec<Vec<f32>> = model.encode(&b?.xs)?.to_device(&Device::Cpu)?.to_vec2()?;
            for r in z {
                for (j, v) in r.into_iter().enumerate() {
                    zs[j].push(v);
                }
            }
        }
        names.extend(std::iter::repeat_n((*name).to_string(), sp.len()));
        index.extend(0..sp.len() as u32);
        match &sp.labels {
            Some(l) => labels.extend(l.iter().map(|&v| Some(v))),
            None => labels.extend(std::iter::repeat_n(None, sp.len())),
        }
        if let Some(f) = &sp.factors {
            for r in f.to_vec2::<f32>()? {
                for (j, v) in r.into_iter().enumerate().take(fac.len()) {
                    fac[j].push(v);
                }
            }
        }
    }
    let n = names.len();
    let mut cols = vec![Column::new("split".into(), names), Column::new("index".into(), index)];
    if labels.iter().any(Option::is_some) {
        cols.push(Column::new("label".into(), labels));
    }
    for (f, values) in factors.iter().zip(fac) {
        if values.len() != n {
            continue;
        }
        let name = format!("factor_{}", f.name);
        cols.push(if f.categories > 0 {
            Column::new(name.into(), values.iter().map(|v| *v as u32).collect::<Vec<u32>>())
        } else {
            Column::new(name.into(), values)
        });
    }
    for (j, z) in zs.into_iter().enumerate() {
        cols.push(Column::new(format!("z{j}").into(), z));
    }
    let mut df = DataFrame::new(n, cols).map_err(|e| TrainError::Polars { path: out.into(), source: e })?;
    write_table(out, &mut df, Table::Parquet)?;
    Ok(Encoded { rows, k })
}

/// The model and variables of the run in `dir`, and the splits and factors of the data
/// its config gets with `data_overrides`, normalised as the run's training data was. The
/// run keeps what that takes, its sample shape and fitted normaliser, in
/// `data.safetensors`: its own data is not loaded (and need not be there any more). A run
/// from before that file loads it for them.
#[allow(clippy::type_complexity)]
fn other_data(
    dir: &RunDir,
    cfg: &ExperimentConfig,
    data_overrides: &[String],
    dev: &Device,
) -> Result<(Box<dyn Autoencoder>, VarMap, Vec<(&'static str, Split)>, Vec<Factor>)> {
    let (model, varmap, facts) = if let Some(facts) = read_data_facts(dir)? {
        let (model, varmap) = build_model(cfg, &facts.sample_shape, dev)?;
        (model, varmap, facts)
    } else {
        let s = setup(cfg)?;
        let facts = DataFacts::of(&s.data);
        (s.model, s.varmap, facts)
    };
    let other = override_data(cfg, data_overrides)?;
    let raw = RawDataset::load(&other.data, cfg.seed)?;
    if raw.sample_shape != facts.sample_shape {
        return Err(TrainError::Config(format!(
            "{} has samples of shape {:?}; the run {} was trained on {:?} ({}): its encoder takes only that shape",
            raw.name,
            raw.sample_shape,
            dir.path.display(),
            facts.sample_shape,
            facts.name
        )));
    }
    let (train, val) = split_off(raw.train, other.data.val_fraction, cfg.seed)?;
    let norm = &facts.normalizer;
    let splits =
        vec![("train", train.normalized(norm)?), ("val", val.normalized(norm)?), ("test", raw.test.normalized(norm)?)];
    Ok((model, varmap, splits, raw.factors))
}
