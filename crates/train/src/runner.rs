//! The training loop: epochs of seeded mini-batches, validation, checkpoints, early
//! stopping, interruption and failure handling, then test metrics and latents.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bottleneck_data::{Batcher, Dataset, Split};
use bottleneck_models::loss::{bce, mse, per_sample_sse, psnr, scalar};
use bottleneck_models::{build, seeded_var_builder, Autoencoder};
use candle_core::{DType, Device, Var};
use candle_nn::VarMap;
use polars::prelude::*;

use crate::checkpoint::{self, LoopState};
use crate::config::ExperimentConfig;
use crate::error::{Result, TrainError};
use crate::optim::Optimizer;
use crate::rundir::{write_table, EpochRow, RunDir, Table};

/// Seed of the fixed noise used to score denoising models noisy → clean.
pub const EVAL_NOISE_SEED: u64 = 0x0000_e7a1;

/// What the loop reports while it runs (a progress bar, log lines, or nothing).
pub trait Observer {
    /// An epoch starts with `batches` batches (after any already done).
    fn epoch_start(&self, epoch: usize, epochs: usize, batches: usize) {
        let _ = (epoch, epochs, batches);
    }
    /// A batch finished with this training loss.
    fn batch_end(&self, loss: f64, samples_per_second: f64) {
        let _ = (loss, samples_per_second);
    }
    /// An epoch finished.
    fn epoch_end(&self, row: &EpochRow, epochs: usize) {
        let _ = (row, epochs);
    }
}

/// An observer that reports nothing.
#[derive(Debug, Default)]
pub struct Silent;
impl Observer for Silent {}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// All epochs (or early stopping) and the test evaluation finished.
    Done {
        /// Final metrics.
        metrics: BTreeMap<String, f64>,
        /// Whether early stopping ended training.
        early_stopped: bool,
    },
    /// Stopped on request after writing a checkpoint.
    Interrupted,
    /// A non-finite loss; the last good checkpoint is kept.
    Failed(String),
}

/// The model, its variables and the data, built from a config.
pub struct Setup {
    /// The dataset (splits normalised on train).
    pub data: Dataset,
    /// The model.
    pub model: Box<dyn Autoencoder>,
    /// The model's variables.
    pub varmap: VarMap,
    /// Where tensors live.
    pub device: Device,
}

/// The device a config asks for (this build runs on the CPU).
pub fn device(cfg: &ExperimentConfig) -> Result<Device> {
    match cfg.device.as_str() {
        "cpu" | "auto" => Ok(Device::Cpu),
        other => Err(TrainError::Config(format!(
            "invalid value \"{other}\" for `device`: this build has no CUDA support; use \"cpu\" or \"auto\""
        ))),
    }
}

/// Loads the data and builds the (seeded) model.
pub fn setup(cfg: &ExperimentConfig) -> Result<Setup> {
    let device = device(cfg)?;
    let data = Dataset::load(&cfg.data, cfg.seed)?;
    if data.train.is_empty() {
        return Err(TrainError::Config(
            "the training split is empty: lower data.val_fraction or raise data.train_subset".into(),
        ));
    }
    let varmap = VarMap::new();
    let vb = seeded_var_builder(&varmap, cfg.seed, DType::F32, &device);
    let model = build(&cfg.model, &data.sample_shape, cfg.seed, vb)?;
    Ok(Setup { data, model, varmap, device })
}

/// The variables of a `VarMap`, by name.
#[must_use]
pub fn named_vars(map: &VarMap) -> Vec<(String, Var)> {
    let data = map.data().lock().map_or_else(|p| p.into_inner().clone(), |d| d.clone());
    let mut v: Vec<(String, Var)> = data.into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Mean loss of `model` over `split` (no noise, no gradients).
pub fn eval_loss(model: &dyn Autoencoder, split: &Split, cfg: &ExperimentConfig, dev: &Device) -> Result<Option<f64>> {
    if split.is_empty() {
        return Ok(None);
    }
    let mut sum = 0.0;
    for b in Batcher::new(split, cfg.train.eval_batch_size).device(dev) {
        let b = b?;
        let n = b.xs.dim(0)?;
        sum += scalar(&model.loss(&b.xs, cfg.train.loss, false)?)? * n as f64;
    }
    Ok(Some(sum / split.len() as f64))
}

/// Trains (or continues) the run in `dir` per `cfg`. `resume` continues from
/// `checkpoints/last.safetensors`. `stop` is polled after every batch.
pub fn train(
    dir: &RunDir,
    cfg: &ExperimentConfig,
    resume: bool,
    stop: &Arc<AtomicBool>,
    obs: &dyn Observer,
) -> Result<Outcome> {
    let Setup { data, model, varmap, device: dev } = setup(cfg)?;
    // As PyTorch's set_flush_denormal(True): denormal floats are 10-100x slower on x86.
    let _ = bottleneck_kernels::flush_denormals();
    tracing::info!(
        "data {}: {} train / {} val / {} test\n{}",
        data.name,
        data.train.len(),
        data.val.len(),
        data.test.len(),
        model.summary()
    );
    let tc = &cfg.train;
    let mut opt = Optimizer::new(tc, named_vars(&varmap))?;
    let mut st = if resume { checkpoint::load(&dir.last_checkpoint(), &mut opt)? } else { LoopState::default() };
    model.set_noise_step(st.noise_step);
    let full = Batcher::new(&data.train, tc.batch_size).num_batches();
    let per_epoch = if tc.max_batches > 0 { full.min(tc.max_batches) } else { full };
    let mut early_stopped = false;
    while st.epoch < tc.epochs {
        let epoch = st.epoch;
        let lr = tc.lr_at(epoch);
        let started = Instant::now();
        obs.epoch_start(epoch, tc.epochs, per_epoch - st.batch);
        let batches = Batcher::new(&data.train, tc.batch_size)
            .shuffled(cfg.seed, epoch as u64)
            .device(&dev)
            .starting_at(st.batch)
            .take(per_epoch - st.batch);
        for b in batches {
            let b = b?;
            let n = b.xs.dim(0)?;
            let loss = model.loss(&b.xs, tc.loss, true)?;
            let value = scalar(&loss)?;
            if !value.is_finite() {
                return Ok(Outcome::Failed(format!(
                    "training loss became {value} at epoch {}, batch {}; the last good checkpoint is kept (try a lower train.lr or train.grad_clip)",
                    epoch + 1,
                    st.batch + 1
                )));
            }
            let grads = loss.backward()?;
            let scale = if tc.grad_clip > 0.0 {
                let norm = opt.grad_norm(&grads)?;
                if norm > tc.grad_clip {
                    tc.grad_clip / (norm + 1e-6)
                } else {
                    1.0
                }
            } else {
                1.0
            };
            opt.step(&grads, lr, scale)?;
            st.step = opt.step;
            st.batch += 1;
            st.partial.0 += value * n as f64;
            st.partial.1 += n;
            let secs = st.partial_seconds + started.elapsed().as_secs_f64();
            obs.batch_end(value, st.partial.1 as f64 / secs.max(1e-9));
            if stop.load(Ordering::SeqCst) {
                st.partial_seconds += started.elapsed().as_secs_f64();
                st.noise_step = model.noise_step();
                checkpoint::save(&dir.last_checkpoint(), &opt, &st)?;
                return Ok(Outcome::Interrupted);
            }
        }
        // Training time only: validation is not part of an epoch's throughput.
        let seconds = st.partial_seconds + started.elapsed().as_secs_f64();
        let val_loss = eval_loss(model.as_ref(), &data.val, cfg, &dev)?;
        let row = EpochRow {
            epoch: epoch + 1,
            train_loss: st.partial.0 / st.partial.1.max(1) as f64,
            val_loss,
            lr,
            epoch_seconds: seconds,
            samples_per_second: st.partial.1 as f64 / seconds.max(1e-9),
        };
        obs.epoch_end(&row, tc.epochs);
        st.rows.push(row);
        st.epoch += 1;
        st.batch = 0;
        st.partial = (0.0, 0);
        st.partial_seconds = 0.0;
        st.noise_step = model.noise_step();
        if let Some(v) = val_loss {
            if st.best_val.is_none_or(|(b, _)| v < b) {
                st.best_val = Some((v, epoch + 1));
                st.bad_epochs = 0;
                checkpoint::save(&dir.best_checkpoint(), &opt, &st)?;
            } else {
                st.bad_epochs += 1;
            }
        }
        checkpoint::save(&dir.last_checkpoint(), &opt, &st)?;
        dir.write_metrics(&st.rows)?;
        if tc.early_stopping_patience > 0 && st.bad_epochs >= tc.early_stopping_patience {
            early_stopped = st.epoch < tc.epochs;
            break;
        }
    }
    let metrics = evaluate(dir, cfg, model.as_ref(), &data, &opt, &st, &dev)?;
    Ok(Outcome::Done { metrics, early_stopped })
}

/// After training: test metrics of the best (or last) weights, summary figures, latents.
fn evaluate(
    dir: &RunDir,
    cfg: &ExperimentConfig,
    model: &dyn Autoencoder,
    data: &Dataset,
    opt: &Optimizer,
    st: &LoopState,
    dev: &Device,
) -> Result<BTreeMap<String, f64>> {
    // Evaluate the best weights when there is a validation split, else the last.
    if st.best_val.is_some() && dir.best_checkpoint().is_file() {
        checkpoint::load_weights(&dir.best_checkpoint(), opt.params())?;
    }
    let mut metrics = test_metrics(model, &data.test, cfg, dev)?;
    if let Some((v, e)) = st.best_val {
        metrics.insert("best_val_loss".into(), v);
        metrics.insert("best_epoch".into(), e as f64);
    }
    metrics.insert("epochs".into(), st.rows.len() as f64);
    if let Some(last) = st.rows.last() {
        metrics.insert("final_train_loss".into(), last.train_loss);
    }
    let n = st.rows.len().max(1) as f64;
    metrics.insert("mean_epoch_seconds".into(), st.rows.iter().map(|r| r.epoch_seconds).sum::<f64>() / n);
    metrics.insert("mean_samples_per_second".into(), st.rows.iter().map(|r| r.samples_per_second).sum::<f64>() / n);
    write_latents(dir, model, &data.test, cfg, dev)?;
    Ok(metrics)
}

/// Test-set reconstruction metrics: MSE, BCE, PSNR, per-image squared error and, for
/// denoising models, the noisy → clean MSE under a fixed noise seed.
pub fn test_metrics(
    model: &dyn Autoencoder,
    test: &Split,
    cfg: &ExperimentConfig,
    dev: &Device,
) -> Result<BTreeMap<String, f64>> {
    let mut sums = [0f64; 4];
    for (i, b) in Batcher::new(test, cfg.train.eval_batch_size).device(dev).enumerate() {
        let b = b?;
        let n = b.xs.dim(0)? as f64;
        let out = model.forward_t(&b.xs, false)?;
        sums[0] += scalar(&mse(&out, &b.xs)?)? * n;
        sums[1] += scalar(&bce(&out.clamp(0.0, 1.0)?, &b.xs.clamp(0.0, 1.0)?)?)? * n;
        sums[2] += scalar(&per_sample_sse(&out, &b.xs)?)? * n;
        if let Some(noise) = model.noise() {
            let noisy = noise.apply_seeded(&b.xs, EVAL_NOISE_SEED + i as u64)?;
            sums[3] += scalar(&mse(&model.forward_t(&noisy, false)?, &b.xs)?)? * n;
        }
    }
    let n = test.len().max(1) as f64;
    let mut m = BTreeMap::new();
    m.insert("test_mse".into(), sums[0] / n);
    m.insert("test_bce".into(), sums[1] / n);
    m.insert("test_psnr".into(), psnr(sums[0] / n, 1.0));
    m.insert("test_sse_per_image".into(), sums[2] / n);
    if model.noise().is_some() {
        m.insert("test_noisy_mse".into(), sums[3] / n);
    }
    Ok(m)
}

/// Writes `latents.parquet`: one row per test sample, `index`, `label` (when labelled)
/// and `z0..z{k-1}`.
pub fn write_latents(
    dir: &RunDir,
    model: &dyn Autoencoder,
    test: &Split,
    cfg: &ExperimentConfig,
    dev: &Device,
) -> Result<()> {
    let k = model.latent_dim();
    let mut zs: Vec<Vec<f32>> = vec![Vec::with_capacity(test.len()); k];
    for b in Batcher::new(test, cfg.train.eval_batch_size).device(dev) {
        let z = model.encode(&b?.xs)?.to_device(&Device::Cpu)?;
        let rows: Vec<Vec<f32>> = z.to_vec2()?;
        for r in rows {
            for (j, v) in r.into_iter().enumerate() {
                zs[j].push(v);
            }
        }
    }
    let mut cols = vec![Column::new("index".into(), (0..test.len() as u32).collect::<Vec<_>>())];
    if let Some(l) = &test.labels {
        cols.push(Column::new("label".into(), l));
    }
    for (j, z) in zs.into_iter().enumerate() {
        cols.push(Column::new(format!("z{j}").into(), z));
    }
    let path = dir.file("latents.parquet");
    let mut df = DataFrame::new(test.len(), cols).map_err(|e| TrainError::Polars { path: path.clone(), source: e })?;
    write_table(&path, &mut df, Table::Parquet)
}
