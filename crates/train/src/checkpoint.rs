//! Checkpoints: one safetensors file with the weights (under their model names, so any
//! safetensors reader loads them), the optimiser moments (`optim.m.*`, `optim.v.*`) and
//! the loop state as string metadata. Written atomically.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};

use crate::error::{Result, TrainError};
use crate::optim::Optimizer;
use crate::rundir::EpochRow;
use bottleneck_data::atomic::write_atomic;

/// Where the loop stands: everything besides tensors that a resume needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoopState {
    /// The epoch in progress (0-based) or, when `batch == 0`, the next to start.
    pub epoch: usize,
    /// Batches of `epoch` already done.
    pub batch: usize,
    /// Optimiser updates so far; also the position of the train-time randomness (step
    /// `i` draws stream `i`: input noise, reparameterisation, perturbations).
    pub step: u64,
    /// Best validation loss so far and its epoch.
    pub best_val: Option<(f64, usize)>,
    /// Epochs since the best validation loss (early stopping).
    pub bad_epochs: usize,
    /// Partial sums of the epoch in progress: (loss × samples, samples).
    pub partial: (f64, usize),
    /// Partial sums of each term of the objective (value × samples), in the model's order.
    pub partial_terms: Vec<(String, f64)>,
    /// Seconds spent in the epoch in progress before the interruption.
    pub partial_seconds: f64,
    /// Metrics rows of the finished epochs (the checkpoint is their source of truth).
    pub rows: Vec<EpochRow>,
    /// `train.batch_size` of a mid-epoch checkpoint (its batches continue only with it).
    pub batch_size: Option<usize>,
    /// Batches per epoch of a mid-epoch checkpoint (from `train.batch_size` and
    /// `train.max_batches`), likewise.
    pub batches_per_epoch: Option<usize>,
}

impl LoopState {
    fn to_meta(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        m.insert("format".into(), "bottleneck-checkpoint-1".into());
        m.insert("epoch".into(), self.epoch.to_string());
        m.insert("batch".into(), self.batch.to_string());
        m.insert("step".into(), self.step.to_string());
        // Where the train-time randomness stands (the step itself, named for readers).
        m.insert("rng_step".into(), self.step.to_string());
        if let Some((v, e)) = self.best_val {
            // Exact round trip of the f64.
            m.insert("best_val_bits".into(), v.to_bits().to_string());
            m.insert("best_val".into(), v.to_string());
            m.insert("best_epoch".into(), e.to_string());
        }
        m.insert("bad_epochs".into(), self.bad_epochs.to_string());
        m.insert("partial_loss_bits".into(), self.partial.0.to_bits().to_string());
        m.insert("partial_samples".into(), self.partial.1.to_string());
        // Exact round trip of the f64 sums, as their bits.
        let terms: Vec<(&str, u64)> = self.partial_terms.iter().map(|(n, v)| (n.as_str(), v.to_bits())).collect();
        m.insert("partial_terms".into(), serde_json::to_string(&terms).unwrap_or_default());
        m.insert("partial_seconds".into(), self.partial_seconds.to_string());
        m.insert("rows".into(), serde_json::to_string(&self.rows).unwrap_or_default());
        if let Some(b) = self.batch_size {
            m.insert("batch_size".into(), b.to_string());
        }
        if let Some(b) = self.batches_per_epoch {
            m.insert("batches_per_epoch".into(), b.to_string());
        }
        m
    }

    fn from_meta(m: &HashMap<String, String>) -> std::result::Result<Self, String> {
        fn get<T: std::str::FromStr>(m: &HashMap<String, String>, k: &str) -> std::result::Result<T, String> {
            m.get(k)
                .ok_or_else(|| format!("missing `{k}` in the checkpoint metadata"))?
                .parse()
                .map_err(|_| format!("bad `{k}`"))
        }
        let best_val = match m.get("best_val_bits") {
            Some(_) => Some((f64::from_bits(get(m, "best_val_bits")?), get(m, "best_epoch")?)),
            None => None,
        };
        Ok(Self {
            epoch: get(m, "epoch")?,
            batch: get(m, "batch")?,
            step: get(m, "step")?,
            best_val,
            bad_epochs: get(m, "bad_epochs")?,
            partial: (f64::from_bits(get(m, "partial_loss_bits")?), get(m, "partial_samples")?),
            partial_terms: serde_json::from_str::<Vec<(String, u64)>>(
                m.get("partial_terms").map_or("[]", String::as_str),
            )
            .map_err(|e| format!("bad `partial_terms`: {e}"))?
            .into_iter()
            .map(|(n, b)| (n, f64::from_bits(b)))
            .collect(),
            partial_seconds: get(m, "partial_seconds")?,
            rows: serde_json::from_str(m.get("rows").map_or("[]", String::as_str))
                .map_err(|e| format!("bad `rows`: {e}"))?,
            batch_size: m.get("batch_size").map(|_| get(m, "batch_size")).transpose()?,
            batches_per_epoch: m.get("batches_per_epoch").map(|_| get(m, "batches_per_epoch")).transpose()?,
        })
    }
}

/// Writes `tensors` with the string `meta` in the header to `path` as safetensors,
/// atomically.
pub(crate) fn write_tensors(
    path: &Path,
    tensors: &BTreeMap<String, Tensor>,
    meta: HashMap<String, String>,
) -> Result<()> {
    let bytes = safetensors::serialize(tensors.iter(), Some(meta))
        .map_err(|e| TrainError::Run { path: path.into(), reason: e.to_string() })?;
    Ok(write_atomic(path, &bytes)?)
}

/// The tensors (on the CPU) of the safetensors file `path` and the string metadata of its
/// header; a file that is not safetensors is an error naming it.
pub(crate) fn read_tensors(path: &Path) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let bytes = fs_err::read(path)?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| TrainError::Run { path: path.into(), reason: format!("not a safetensors file: {e}") })?;
    let info = meta.metadata().clone().unwrap_or_default();
    Ok((candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)?, info))
}

/// Saves weights, optimiser state and loop state to `path`, atomically.
pub fn save(path: &Path, opt: &Optimizer, state: &LoopState) -> Result<()> {
    let mut tensors: BTreeMap<String, Tensor> =
        opt.params().iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
    tensors.extend(opt.state()?);
    write_tensors(path, &tensors, state.to_meta())
}

/// Loads a checkpoint into the optimiser's parameters and state; returns the loop state.
pub fn load(path: &Path, opt: &mut Optimizer) -> Result<LoopState> {
    let bad = |reason: String| TrainError::Run { path: path.into(), reason };
    let (tensors, info) = read_tensors(path)?;
    let state = LoopState::from_meta(&info).map_err(bad)?;
    for (name, var) in opt.params() {
        let t = tensors
            .get(name)
            .ok_or_else(|| bad(format!("missing weight `{name}`; is this a checkpoint of the same model?")))?;
        if t.dims() != var.dims() {
            return Err(bad(format!("weight `{name}` has shape {:?}, the model {:?}", t.dims(), var.dims())));
        }
        var.set(&t.to_device(var.device())?)?;
    }
    opt.load_state(|k| tensors.get(k).cloned(), state.step).map_err(bad)?;
    Ok(state)
}

/// Reads only the loop state of a checkpoint (its header), e.g. the epochs it holds.
pub fn read_state(path: &Path) -> Result<LoopState> {
    let bytes = fs_err::read(path)?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| TrainError::Run { path: path.into(), reason: format!("not a safetensors file: {e}") })?;
    LoopState::from_meta(&meta.metadata().clone().unwrap_or_default())
        .map_err(|reason| TrainError::Run { path: path.into(), reason })
}

/// Loads only the weights of a checkpoint into `vars` (for evaluation and analysis).
pub fn load_weights(path: &Path, vars: &[(String, Var)]) -> Result<()> {
    let bytes = fs_err::read(path)?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)?;
    for (name, var) in vars {
        let t = tensors
            .get(name)
            .ok_or_else(|| TrainError::Run { path: path.into(), reason: format!("missing weight `{name}`") })?;
        var.set(&t.to_device(var.device())?)?;
    }
    Ok(())
}

/// `train.init_from`: copies another run's weights (its best checkpoint, else its last)
/// into `vars`. Every weight of the model must be there with its shape; the error names
/// those that are not (the optimiser starts afresh).
pub fn init_from(run: &Path, vars: &[(String, Var)]) -> Result<PathBuf> {
    let bad = |reason: String| TrainError::Config(format!("train.init_from = \"{}\": {reason}", run.display()));
    let ckpt = [run.join("checkpoints/best.safetensors"), run.join("checkpoints/last.safetensors")]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| bad("no checkpoints/best.safetensors or last.safetensors there (expected a run directory runs/NAME/TIMESTAMP that has trained)".into()))?;
    let bytes = fs_err::read(&ckpt)?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)?;
    let mut wrong = Vec::new();
    for (name, var) in vars {
        match tensors.get(name) {
            None => wrong.push(format!("`{name}` is missing")),
            Some(t) if t.dims() != var.dims() => {
                wrong.push(format!("`{name}` has shape {:?} there, {:?} here", t.dims(), var.dims()));
            }
            Some(_) => {}
        }
    }
    if !wrong.is_empty() {
        let n = wrong.len();
        wrong.truncate(6);
        return Err(bad(format!(
            "{n} of the model's {} weights do not match ({}{}); warm starts need the same model kind and sizes",
            vars.len(),
            wrong.join("; "),
            if n > 6 { "; ..." } else { "" }
        )));
    }
    for (name, var) in vars {
        var.set(&tensors[name].to_device(var.device())?)?;
    }
    Ok(ckpt)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loop state, rows included, comes back bit for bit: a resumed run rewrites the
    /// finished epochs' rows from it. 382.64418640136716 is a value a run wrote that
    /// `serde_json`'s default float parser reads one ulp off.
    #[test]
    fn loop_state_round_trips_exactly() {
        let row = |e: usize, v: f64| EpochRow {
            epoch: e,
            train_loss: v,
            val_loss: Some(v / 3.0),
            lr: 1e-3,
            epoch_seconds: 0.1,
            samples_per_second: 1e4 / 7.0,
            train_terms: vec![("recon".into(), v * 0.99), ("kl".into(), v / 97.0)],
            val_terms: vec![("recon".into(), v / 1.01)],
        };
        let st = LoopState {
            epoch: 2,
            batch: 7,
            step: 1234,
            best_val: Some((0.1 + 0.2, 1)),
            bad_epochs: 1,
            partial: (1.0 / 3.0, 448),
            partial_terms: vec![("recon".into(), 2.0f64.sqrt()), ("kl".into(), std::f64::consts::PI)],
            partial_seconds: 1.5,
            rows: vec![row(1, 382.644_186_401_367_16), row(2, 304.691_173_299_153_66)],
            batch_size: Some(64),
            batches_per_epoch: Some(938),
        };
        let back = LoopState::from_meta(&st.to_meta()).unwrap();
        assert_eq!(back, st);
        for (a, b) in back.rows.iter().zip(&st.rows) {
            assert_eq!(a.train_loss.to_bits(), b.train_loss.to_bits());
        }
    }
}
