//! The training loop: epochs of seeded mini-batches, validation, checkpoints, early
//! stopping, interruption and failure handling, then test metrics and latents.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bottleneck_data::{Batcher, Dataset, Normalizer, Split};
use bottleneck_models::eval::{EvalOptions, EvalReport, Evaluator};
use bottleneck_models::loss::scalar;
use bottleneck_models::{build, seeded_var_builder, total, Autoencoder, StepCtx, Term};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use polars::prelude::*;

use crate::checkpoint::{self, LoopState};
use crate::config::ExperimentConfig;
use crate::error::{Result, TrainError};
use crate::optim::Optimizer;
use crate::rundir::{write_table, EpochRow, RunDir, Table};
use crate::tensorboard::Board;

/// Seed of the fixed noise used to score denoising models noisy → clean.
pub const EVAL_NOISE_SEED: u64 = bottleneck_models::eval::EVAL_NOISE_SEED;

/// What the loop reports while it runs (a progress bar, log lines, or nothing).
pub trait Observer {
    /// Training starts (or continues from a checkpoint) at this position.
    fn start(&self, epoch: usize, batch: usize, step: u64) {
        let _ = (epoch, batch, step);
    }
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

/// The device a config asks for ([`crate::device::resolve`]: one per process).
pub fn device(cfg: &ExperimentConfig) -> Result<Device> {
    Ok(crate::device::resolve(&cfg.device)?.device)
}

/// Loads the data and builds the (seeded) model.
pub fn setup(cfg: &ExperimentConfig) -> Result<Setup> {
    let device = device(cfg)?;
    let data = Dataset::load(&cfg.data, cfg.seed)?;
    if data.train.is_empty() {
        return Err(TrainError::Config(format!(
            "the training split of {} is empty ({} samples in all): lower data.val_fraction, or give the data more samples",
            data.name,
            data.val.len() + data.test.len()
        )));
    }
    if data.test.is_empty() {
        return Err(TrainError::Config(format!(
            "the test split of {} is empty ({} training samples): a run is scored on its test split; give the data more samples or raise data.test_fraction (tables and synthetic sets split it off)",
            data.name,
            data.train.len()
        )));
    }
    let (model, varmap) = build_model(cfg, &data.sample_shape, &device)?;
    Ok(Setup { data, model, varmap, device })
}

/// [`setup`] for training the run in `dir`, which then keeps its [`DataFacts`].
fn setup_run(dir: &RunDir, cfg: &ExperimentConfig) -> Result<Setup> {
    let s = setup(cfg)?;
    write_data_facts(dir, &s.data)?;
    Ok(s)
}

/// The (seeded) model of `cfg` for samples of `sample_shape`, and its variables.
pub fn build_model(
    cfg: &ExperimentConfig,
    sample_shape: &[usize],
    device: &Device,
) -> Result<(Box<dyn Autoencoder>, VarMap)> {
    let varmap = VarMap::new();
    let vb = seeded_var_builder(&varmap, cfg.seed, DType::F32, device);
    let model = build(&cfg.model, sample_shape, cfg.seed, cfg.kernels, vb)?;
    Ok((model, varmap))
}

/// What a run's encoder needs of its training data, kept in the run directory
/// ([`DATA_FILE`]) so that new data can be encoded without loading the old.
pub struct DataFacts {
    /// The source's name.
    pub name: String,
    /// Shape of one sample.
    pub sample_shape: Vec<usize>,
    /// The normalisation fitted on the training split.
    pub normalizer: Normalizer,
}

impl DataFacts {
    /// The facts of a loaded dataset.
    #[must_use]
    pub fn of(data: &Dataset) -> Self {
        Self { name: data.name.clone(), sample_shape: data.sample_shape.clone(), normalizer: data.normalizer.clone() }
    }
}

/// The file of [`DataFacts`] in a run directory: safetensors with the sample shape
/// (`sample_shape`, u32), and the normaliser's `shift` and `scale` when it is affine; the
/// source's name in the header.
pub const DATA_FILE: &str = "data.safetensors";

/// Writes `data`'s [`DataFacts`] into `dir`, atomically.
pub fn write_data_facts(dir: &RunDir, data: &Dataset) -> Result<()> {
    let path = dir.file(DATA_FILE);
    let shape: Vec<u32> = data.sample_shape.iter().map(|&d| u32::try_from(d).unwrap_or(u32::MAX)).collect();
    let mut tensors = BTreeMap::new();
    tensors.insert("sample_shape".to_string(), Tensor::new(shape, &Device::Cpu)?);
    if let Normalizer::Affine { shift, scale } = &data.normalizer {
        tensors.insert("shift".to_string(), shift.to_device(&Device::Cpu)?);
        tensors.insert("scale".to_string(), scale.to_device(&Device::Cpu)?);
    }
    let meta = std::collections::HashMap::from([("name".to_string(), data.name.clone())]);
    checkpoint::write_tensors(&path, &tensors, meta)
}

/// The [`DataFacts`] of the run in `dir`; `None` for a run trained before they were kept.
pub fn read_data_facts(dir: &RunDir) -> Result<Option<DataFacts>> {
    let path = dir.file(DATA_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let bad = |reason: String| TrainError::Run { path: path.clone(), reason };
    let (tensors, meta) = checkpoint::read_tensors(&path)?;
    let name = meta.get("name").cloned().unwrap_or_default();
    let shape = tensors.get("sample_shape").ok_or_else(|| bad("no `sample_shape`".into()))?;
    let sample_shape: Vec<usize> = shape.to_vec1::<u32>()?.into_iter().map(|d| d as usize).collect();
    let normalizer = match (tensors.get("shift"), tensors.get("scale")) {
        (Some(shift), Some(scale)) => {
            let want: Vec<usize> = std::iter::once(1).chain(sample_shape.iter().copied()).collect();
            if shift.dims() != want.as_slice() || scale.dims() != want.as_slice() {
                return Err(bad(format!(
                    "`shift` {:?} and `scale` {:?} do not fit samples of shape {sample_shape:?}",
                    shift.dims(),
                    scale.dims()
                )));
            }
            Normalizer::Affine { shift: shift.clone(), scale: scale.clone() }
        }
        (None, None) => Normalizer::Identity,
        _ => return Err(bad("a normaliser needs both `shift` and `scale`".into())),
    };
    Ok(Some(DataFacts { name, sample_shape, normalizer }))
}

/// The variables of a `VarMap`, by name.
#[must_use]
pub fn named_vars(map: &VarMap) -> Vec<(String, Var)> {
    let data = map.data().lock().map_or_else(|p| p.into_inner().clone(), |d| d.clone());
    let mut v: Vec<(String, Var)> = data.into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Mean value of each term of an objective, by name, in the model's order.
pub type TermMeans = Vec<(String, f64)>;

/// Adds `n ×` each term's value to `sums` (named in the model's order on first use).
fn add_terms(sums: &mut Vec<(String, f64)>, terms: &[Term], n: usize) -> Result<()> {
    for t in terms {
        let v = scalar(&t.value)? * n as f64;
        match sums.iter_mut().find(|s| s.0 == t.name) {
            Some(s) => s.1 += v,
            None => sums.push((t.name.to_string(), v)),
        }
    }
    Ok(())
}

/// Mean loss of `model` over `split` and the mean of each term (no noise, no
/// gradients; a stochastic code draws evaluation stream `i` for batch `i`), with the
/// term weights of `epoch`.
pub fn eval_loss(
    model: &dyn Autoencoder,
    split: &Split,
    cfg: &ExperimentConfig,
    dev: &Device,
    epoch: usize,
) -> Result<Option<(f64, TermMeans)>> {
    if split.is_empty() {
        return Ok(None);
    }
    let mut sum = 0.0;
    let mut terms = Vec::new();
    for (i, b) in Batcher::new(split, cfg.train.eval_batch_size).device(dev).enumerate() {
        let b = b?;
        let n = b.xs.dim(0)?;
        let parts =
            model.objective(&b.xs, &b.xs, &StepCtx::eval(i as u64, epoch, cfg.train.loss).with_kernels(cfg.kernels))?;
        sum += scalar(&total(&parts)?)? * n as f64;
        add_terms(&mut terms, &parts, n)?;
    }
    let len = split.len() as f64;
    Ok(Some((sum / len, terms.into_iter().map(|(k, v)| (k, v / len)).collect())))
}

/// The factor that scales the gradients to global norm `clip` (1 when they are within it
/// or clipping is off).
fn clip_scale(opt: &Optimizer, grads: &candle_core::backprop::GradStore, clip: f64) -> Result<f64> {
    if clip <= 0.0 {
        return Ok(1.0);
    }
    let norm = opt.grad_norm(grads)?;
    Ok(if norm > clip { clip / (norm + 1e-6) } else { 1.0 })
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
    let Setup { data, model, varmap, device: dev } = setup_run(dir, cfg)?;
    // As PyTorch's set_flush_denormal(True): denormal floats are 10-100x slower on x86.
    let _ = bottleneck_kernels::flush_denormals();
    let sizes = format!("{} train / {} val / {} test", data.train.len(), data.val.len(), data.test.len());
    tracing::info!("data {}: {sizes}\n{}", data.name, model.summary());
    let tc = &cfg.train;
    let mut opt = Optimizer::new(tc, named_vars(&varmap), cfg.kernels)?;
    let mut st = start_state(dir, tc, resume, &mut opt)?;
    let augment = bottleneck_data::Augment::new(&cfg.data, &data, cfg.seed)?;
    let full = Batcher::new(&data.train, tc.batch_size).num_batches();
    let per_epoch = if tc.max_batches > 0 { full.min(tc.max_batches) } else { full };
    check_position(dir, &st, tc.batch_size, per_epoch)?;
    obs.start(st.epoch, st.batch, st.step);
    let mut board = Board::open(&dir.path, "train", tc.tensorboard);
    if st.step > 0 {
        // Events the stopped process logged past its checkpoint are superseded.
        board.restart(st.step + 1);
    }
    let mut early_stopped = false;
    let mut terms_complete = !(st.partial.1 > 0 && st.partial_terms.is_empty());
    while st.epoch < tc.epochs {
        let epoch = st.epoch;
        let lr = tc.lr_at(epoch);
        let started = Instant::now();
        obs.epoch_start(epoch, tc.epochs, per_epoch - st.batch);
        let batches = Batcher::new(&data.train, tc.batch_size)
            .shuffled(cfg.seed, epoch as u64)
            .augmented(augment.as_ref(), epoch as u64)
            .device(&dev)
            .starting_at(st.batch)
            .take(per_epoch - st.batch);
        for b in batches {
            let b = b?;
            let n = b.xs.dim(0)?;
            let terms =
                model.objective(&b.xs, &b.xs, &StepCtx::train(st.step, epoch, tc.loss).with_kernels(cfg.kernels))?;
            let loss = total(&terms)?;
            let value = scalar(&loss)?;
            if !value.is_finite() {
                return Ok(Outcome::Failed(format!(
                    "training loss became {value} at epoch {}, batch {}; the last good checkpoint is kept (try a lower train.lr or train.grad_clip)",
                    epoch + 1,
                    st.batch + 1
                )));
            }
            let grads = loss.backward()?;
            let scale = clip_scale(&opt, &grads, tc.grad_clip)?;
            opt.step(&grads, lr, scale)?;
            st.step = opt.step;
            st.batch += 1;
            st.partial.0 += value * n as f64;
            st.partial.1 += n;
            add_terms(&mut st.partial_terms, &terms, n)?;
            let secs = st.partial_seconds + started.elapsed().as_secs_f64();
            obs.batch_end(value, st.partial.1 as f64 / secs.max(1e-9));
            board.scalars(st.step, &step_scalars(value, &terms)?);
            board.flush_every(std::time::Duration::from_secs(5));
            if stop.load(Ordering::SeqCst) {
                st.partial_seconds += started.elapsed().as_secs_f64();
                st.batch_size = Some(tc.batch_size);
                st.batches_per_epoch = Some(per_epoch);
                checkpoint::save(&dir.last_checkpoint(), &opt, &st)?;
                board.flush();
                return Ok(Outcome::Interrupted);
            }
        }
        // Training time only: validation is not part of an epoch's throughput.
        let seconds = st.partial_seconds + started.elapsed().as_secs_f64();
        // With the term weights of the last epoch, so that epochs compare (and the best
        // checkpoint is chosen) on one objective even while a KL warm-up or capacity
        // schedule changes the training weights.
        let val = eval_loss(model.as_ref(), &data.val, cfg, &dev, tc.epochs.saturating_sub(1))?;
        let row = epoch_row(&st, epoch, lr, seconds, val, terms_complete);
        let val_loss = row.val_loss;
        obs.epoch_end(&row, tc.epochs);
        board.scalars(st.step, &epoch_scalars(&row));
        st.rows.push(row);
        st.epoch += 1;
        st.batch = 0;
        st.partial = (0.0, 0);
        st.partial_terms.clear();
        terms_complete = true;
        st.partial_seconds = 0.0;
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
        board.flush();
        dir.write_metrics(&st.rows)?;
        if tc.early_stopping_patience > 0 && st.bad_epochs >= tc.early_stopping_patience {
            early_stopped = st.epoch < tc.epochs;
            break;
        }
    }
    // Every epoch is checkpointed: a stop from here on resumes straight into evaluation.
    let Some(metrics) = evaluate(dir, cfg, model.as_ref(), &data, &opt, &st, &dev, stop)? else {
        return Ok(Outcome::Interrupted);
    };
    board.scalars(st.step, &metrics.iter().map(|(k, v)| (format!("test/{k}"), *v)).collect::<Vec<_>>());
    board.flush();
    Ok(Outcome::Done { metrics, early_stopped })
}

/// Where training starts: the last checkpoint when resuming; else the first step, from
/// `train.init_from`'s weights when it names a run.
fn start_state(dir: &RunDir, tc: &crate::TrainConfig, resume: bool, opt: &mut Optimizer) -> Result<LoopState> {
    if resume {
        return checkpoint::load(&dir.last_checkpoint(), opt);
    }
    if !tc.init_from.is_empty() {
        let from = checkpoint::init_from(Path::new(&tc.init_from), opt.params())?;
        tracing::info!("weights from {} (train.init_from)", from.display());
    }
    Ok(LoopState::default())
}

/// The finished epoch's row of `metrics.csv`.
fn epoch_row(
    st: &LoopState,
    epoch: usize,
    lr: f64,
    seconds: f64,
    val: Option<(f64, TermMeans)>,
    terms_complete: bool,
) -> EpochRow {
    let samples = st.partial.1.max(1) as f64;
    EpochRow {
        epoch: epoch + 1,
        train_loss: st.partial.0 / samples,
        val_loss: val.as_ref().map(|v| v.0),
        lr,
        epoch_seconds: seconds,
        samples_per_second: st.partial.1 as f64 / seconds.max(1e-9),
        // A checkpoint from before per-term sums has none for its partial epoch.
        train_terms: if terms_complete {
            st.partial_terms.iter().map(|(k, v)| (k.clone(), v / samples)).collect()
        } else {
            Vec::new()
        },
        val_terms: val.map(|v| v.1).unwrap_or_default(),
    }
}

/// A step's scalars for TensorBoard: the loss, and each term of a several-term objective.
fn step_scalars(loss: f64, terms: &[Term]) -> Result<Vec<(String, f64)>> {
    let mut v = vec![("train/loss".to_string(), loss)];
    if terms.len() > 1 {
        for t in terms {
            v.push((format!("train/{}", t.name), scalar(&t.value)?));
        }
    }
    Ok(v)
}

/// An epoch's scalars for TensorBoard, at the step that ended it.
fn epoch_scalars(row: &EpochRow) -> Vec<(String, f64)> {
    let mut v = vec![
        ("epoch".to_string(), row.epoch as f64),
        ("epoch/train_loss".to_string(), row.train_loss),
        ("epoch/lr".to_string(), row.lr),
        ("epoch/samples_per_second".to_string(), row.samples_per_second),
    ];
    if let Some(l) = row.val_loss {
        v.push(("epoch/val_loss".into(), l));
    }
    if row.train_terms.len() > 1 {
        v.extend(row.train_terms.iter().map(|(k, x)| (format!("epoch/train_{k}"), *x)));
    }
    if row.val_terms.len() > 1 {
        v.extend(row.val_terms.iter().map(|(k, x)| (format!("epoch/val_{k}"), *x)));
    }
    v
}

/// A checkpoint taken mid-epoch continues only with the batches it was cut from: the
/// same `train.batch_size`, and no fewer batches per epoch than it has done (a
/// `config.toml` edited between interrupt and resume).
fn check_position(dir: &RunDir, st: &LoopState, batch_size: usize, per_epoch: usize) -> Result<()> {
    if st.batch == 0 {
        return Ok(());
    }
    let bad = |why: String| {
        Err(TrainError::Run {
            path: dir.file("config.toml"),
            reason: format!(
                "the checkpoint stopped at batch {} of epoch {}, {why}; restore the value the run was interrupted with, or start a new run",
                st.batch,
                st.epoch + 1
            ),
        })
    };
    match (st.batch_size, st.batches_per_epoch) {
        (Some(b), _) if b != batch_size => {
            bad(format!("cut with train.batch_size = {b}, but the config now says {batch_size}"))
        }
        (_, Some(n)) if n != per_epoch => bad(format!(
            "cut from {n} batches per epoch, but train.batch_size and train.max_batches now give {per_epoch}"
        )),
        _ if st.batch > per_epoch => {
            bad(format!("but train.batch_size and train.max_batches now give {per_epoch} batches per epoch"))
        }
        _ => Ok(()),
    }
}

/// After training: test metrics of the best (or last) weights and latents; `None` when
/// `stop` was raised on the way.
#[allow(clippy::too_many_arguments)]
fn evaluate(
    dir: &RunDir,
    cfg: &ExperimentConfig,
    model: &dyn Autoencoder,
    data: &Dataset,
    opt: &Optimizer,
    st: &LoopState,
    dev: &Device,
    stop: &AtomicBool,
) -> Result<Option<BTreeMap<String, f64>>> {
    // Evaluate the best weights when there is a validation split, else the last.
    if st.best_val.is_some() && dir.best_checkpoint().is_file() {
        checkpoint::load_weights(&dir.best_checkpoint(), opt.params())?;
    }
    // The final objective's weights, as validation uses (early stopping may end sooner).
    let epoch = cfg.train.epochs.saturating_sub(1);
    let Some(report) = evaluate_split_until(model, &data.test, cfg, dev, epoch, cfg.train.nll_samples, stop)? else {
        return Ok(None);
    };
    if let Some(note) = report.collapse_note() {
        tracing::warn!("{note}");
    }
    let mut metrics = report.metrics;
    if let Some((v, e)) = st.best_val {
        metrics.insert("best_val_loss".into(), v);
        metrics.insert("best_epoch".into(), e as f64);
    }
    metrics.insert("epochs".into(), st.rows.len() as f64);
    if let Some(last) = st.rows.last() {
        metrics.insert("final_train_loss".into(), last.train_loss);
        if last.train_terms.len() > 1 {
            for (name, v) in &last.train_terms {
                metrics.insert(format!("final_train_{name}"), *v);
            }
            for (name, v) in &last.val_terms {
                metrics.insert(format!("final_val_{name}"), *v);
            }
        }
    }
    let n = st.rows.len().max(1) as f64;
    metrics.insert("mean_epoch_seconds".into(), st.rows.iter().map(|r| r.epoch_seconds).sum::<f64>() / n);
    metrics.insert("mean_samples_per_second".into(), st.rows.iter().map(|r| r.samples_per_second).sum::<f64>() / n);
    if stop.load(Ordering::SeqCst) {
        return Ok(None);
    }
    write_latents(dir, model, &data.test, &data.factors, cfg, dev)?;
    Ok(Some(metrics))
}

/// Test-set metrics ([`Evaluator`]): MSE, BCE, PSNR and per-image squared error of the
/// deterministic reconstruction for every kind; the noisy → clean MSE of denoising
/// models (fixed noise seed); each term of a multi-term objective; for a stochastic code
/// the −ELBO, the importance-weighted NLL with `nll_samples` samples (0 = none), KL per
/// unit and active units. `epoch` sets the schedules of the objective's weights.
pub fn evaluate_split(
    model: &dyn Autoencoder,
    split: &Split,
    cfg: &ExperimentConfig,
    dev: &Device,
    epoch: usize,
    nll_samples: usize,
) -> Result<EvalReport> {
    let never = AtomicBool::new(false);
    let report = evaluate_split_until(model, split, cfg, dev, epoch, nll_samples, &never)?;
    Ok(report.unwrap_or_else(|| unreachable!("nothing raises this stop flag")))
}

/// [`evaluate_split`] that gives up (`None`) when `stop` is raised between batches.
fn evaluate_split_until(
    model: &dyn Autoencoder,
    split: &Split,
    cfg: &ExperimentConfig,
    dev: &Device,
    epoch: usize,
    nll_samples: usize,
    stop: &AtomicBool,
) -> Result<Option<EvalReport>> {
    let opts = EvalOptions { loss: cfg.train.loss, nll_samples, seed: cfg.seed, epoch, kernels: cfg.kernels };
    let mut ev = Evaluator::new(model, opts);
    for (i, b) in Batcher::new(split, cfg.train.eval_batch_size).device(dev).enumerate() {
        if stop.load(Ordering::SeqCst) {
            return Ok(None);
        }
        ev.add(&b?.xs, i)?;
    }
    Ok(Some(ev.finish()))
}

/// Writes `latents.parquet`: one row per test sample, `index`, `label` (when labelled),
/// `factor_<name>` for each known factor, and `z0..z{k-1}`.
pub fn write_latents(
    dir: &RunDir,
    model: &dyn Autoencoder,
    test: &Split,
    factors: &[bottleneck_data::Factor],
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
    // Known factors: `factor_<name>`, an integer column for a categorical factor.
    if let Some(f) = &test.factors {
        let rows: Vec<Vec<f32>> = f.to_vec2()?;
        for (j, fac) in factors.iter().enumerate() {
            let name = format!("factor_{}", fac.name);
            let col = if fac.categories > 0 {
                Column::new(name.into(), rows.iter().map(|r| r[j] as u32).collect::<Vec<u32>>())
            } else {
                Column::new(name.into(), rows.iter().map(|r| r[j]).collect::<Vec<f32>>())
            };
            cols.push(col);
        }
    }
    for (j, z) in zs.into_iter().enumerate() {
        cols.push(Column::new(format!("z{j}").into(), z));
    }
    let path = dir.file("latents.parquet");
    let mut df = DataFrame::new(test.len(), cols).map_err(|e| TrainError::Polars { path: path.clone(), source: e })?;
    write_table(&path, &mut df, Table::Parquet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_facts_are_read_back_and_a_bad_file_is_an_error_naming_it() {
        let path = std::env::temp_dir().join(format!("bottleneck-data-facts-{}", std::process::id()));
        fs_err::create_dir_all(&path).unwrap();
        let dir = RunDir { path: path.clone() };
        assert!(read_data_facts(&dir).unwrap().is_none(), "no file: a run from before it");
        let write = |tensors: &[(&str, &Tensor)]| {
            let map: BTreeMap<String, Tensor> = tensors.iter().map(|(n, t)| ((*n).to_string(), (*t).clone())).collect();
            std::fs::write(dir.file(DATA_FILE), safetensors::serialize(map.iter(), None).unwrap()).unwrap();
        };
        let cpu = &Device::Cpu;
        let shape = Tensor::new(vec![2u32, 3], cpu).unwrap();
        let fits = Tensor::ones((1, 2, 3), DType::F32, cpu).unwrap();
        let wrong = Tensor::ones((1, 3, 2), DType::F32, cpu).unwrap();
        write(&[("sample_shape", &shape), ("shift", &fits), ("scale", &fits)]);
        let facts = read_data_facts(&dir).unwrap().unwrap();
        assert_eq!(facts.sample_shape, [2, 3]);
        assert!(matches!(facts.normalizer, Normalizer::Affine { .. }));
        write(&[("sample_shape", &shape)]);
        assert!(matches!(read_data_facts(&dir).unwrap().unwrap().normalizer, Normalizer::Identity));
        for (tensors, says) in [
            (vec![("sample_shape", &shape), ("shift", &wrong), ("scale", &fits)], "[1, 3, 2]"),
            (vec![("sample_shape", &shape), ("shift", &fits)], "both `shift` and `scale`"),
            (vec![("shift", &fits), ("scale", &fits)], "no `sample_shape`"),
        ] {
            write(&tensors);
            let err = read_data_facts(&dir).err().expect("a bad file is an error").to_string();
            assert!(err.contains(says) && err.contains(DATA_FILE), "{err}");
        }
        fs_err::remove_dir_all(&path).unwrap();
    }
}
