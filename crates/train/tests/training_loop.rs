//! The loop's own units on a generated dataset (no files): early stopping and gradient
//! clipping.

// Epoch counts are stored as exact small integers in f64 metrics.
#![allow(clippy::float_cmp)]

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bottleneck_models::{Activation, ModelConfig};
use bottleneck_train::checkpoint;
use bottleneck_train::config::ExperimentConfig;
use bottleneck_train::runner::{self, named_vars, setup};
use bottleneck_train::{OptimizerKind, Outcome, RunDir, Silent, TrainConfig};
use candle_core::Tensor;

fn blobs_config(train: TrainConfig) -> ExperimentConfig {
    let mut cfg = ExperimentConfig { name: "loop".into(), ..ExperimentConfig::default() };
    cfg.data = bottleneck_data::DataConfig {
        samples: 400,
        dim: 6,
        classes: 3,
        val_fraction: 0.25,
        ..bottleneck_data::DataConfig::named("blobs")
    };
    cfg.data.normalize = bottleneck_data::Normalize::Standard;
    cfg.model = ModelConfig {
        hidden: vec![16],
        latent_dim: 2,
        output_activation: Activation::Identity,
        ..ModelConfig::default()
    };
    cfg.train = train;
    cfg
}

fn train(cfg: &ExperimentConfig) -> (RunDir, Outcome, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = RunDir::create(tmp.path(), &cfg.name).unwrap();
    dir.write_config(cfg, &[]).unwrap();
    let out = runner::train(&dir, cfg, false, &Arc::new(AtomicBool::new(false)), &Silent).unwrap();
    (dir, out, tmp)
}

#[test]
fn early_stopping_ends_training_when_validation_stalls() {
    // A learning rate too small to change any f32 weight: the validation loss repeats,
    // so it stops improving after epoch 1 and patience 2 ends the run after epoch 3.
    let cfg = blobs_config(TrainConfig {
        epochs: 50,
        lr: 1e-30,
        early_stopping_patience: 2,
        batch_size: 50,
        ..TrainConfig::default()
    });
    let (dir, out, _tmp) = train(&cfg);
    let Outcome::Done { metrics, early_stopped } = out else { panic!("{out:?}") };
    assert!(early_stopped);
    assert_eq!(metrics["epochs"], 3.0);
    assert_eq!(metrics["best_epoch"], 1.0);
    assert_eq!(std::fs::read_to_string(dir.file("metrics.csv")).unwrap().lines().count(), 4);
    // Without patience, all epochs run.
    let cfg = blobs_config(TrainConfig { epochs: 4, lr: 1e-30, batch_size: 50, ..TrainConfig::default() });
    let (_, out, _tmp) = train(&cfg);
    assert!(matches!(out, Outcome::Done { early_stopped: false, ref metrics } if metrics["epochs"] == 4.0), "{out:?}");
}

/// L2 distance between the weights of a checkpoint and the seeded initial weights.
fn moved(cfg: &ExperimentConfig, dir: &RunDir) -> f64 {
    let init = setup(cfg).unwrap();
    let before: Vec<Tensor> = named_vars(&init.varmap).iter().map(|(_, v)| v.as_tensor().copy().unwrap()).collect();
    let vars = named_vars(&init.varmap);
    checkpoint::load_weights(&dir.last_checkpoint(), &vars).unwrap();
    let mut sq = 0f64;
    for (b, (_, v)) in before.iter().zip(&vars) {
        let d = (v.as_tensor() - b).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        sq += f64::from(d);
    }
    sq.sqrt()
}

#[test]
fn gradient_clipping_bounds_each_update() {
    // Plain SGD (no momentum), lr 1, one batch: the update is the (clipped) gradient.
    let base = TrainConfig {
        epochs: 1,
        max_batches: 1,
        optimizer: OptimizerKind::Sgd,
        beta1: 0.0,
        lr: 1.0,
        batch_size: 50,
        ..TrainConfig::default()
    };
    let clipped = blobs_config(TrainConfig { grad_clip: 1e-3, ..base.clone() });
    let (dir, _, _tmp) = train(&clipped);
    let step = moved(&clipped, &dir);
    assert!(step <= 1e-3 * 1.001 && step > 0.9e-3, "clipped update norm {step}");
    let free = blobs_config(base);
    let (dir, _, _tmp2) = train(&free);
    let step = moved(&free, &dir);
    assert!(step > 1e-2, "unclipped update norm {step}");
}
