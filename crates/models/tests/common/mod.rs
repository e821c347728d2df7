//! Shared by the model tests: real Fashion-MNIST batches and model construction.
#![allow(dead_code)]

use bottleneck_data::{DataConfig, RawDataset, SearchPath};
use bottleneck_models::{build, seeded_var_builder, total, Autoencoder, Kernels, ModelConfig, ReconLoss, StepCtx};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

/// The first `n` Fashion-MNIST training images, `[n, 1, 28, 28]` in [0, 1]. Fails loudly
/// with the fix when the Debian package is missing.
pub fn fashion(n: usize) -> Tensor {
    let dir = std::path::PathBuf::from("/usr/share/datasets/fashion-mnist");
    assert!(
        dir.join("train-images-idx3-ubyte.gz").is_file(),
        "Fashion-MNIST is missing from {}: run `scripts/setup.sh --deps` (installs dataset-fashion-mnist)",
        dir.display()
    );
    let search =
        SearchPath { config_dir: Some(dir), env_dir: None, system_root: "/nonexistent".into(), cache_root: None };
    let cfg = DataConfig { train_subset: n, test_subset: 1, ..DataConfig::named("fashion-mnist") };
    RawDataset::load_from(&cfg, 0, &search).unwrap().train.xs().unwrap()
}

/// Builds `cfg` for `input_shape` with weights seeded by `seed`.
pub fn model(cfg: &ModelConfig, input_shape: &[usize], seed: u64) -> (Box<dyn Autoencoder>, VarMap) {
    model_on(cfg, input_shape, seed, Kernels::Auto)
}

/// [`model`] with its layers computed by `kernels`.
pub fn model_on(
    cfg: &ModelConfig,
    input_shape: &[usize],
    seed: u64,
    kernels: Kernels,
) -> (Box<dyn Autoencoder>, VarMap) {
    let map = VarMap::new();
    let vb = seeded_var_builder(&map, seed, DType::F32, &Device::Cpu);
    let m = build(cfg, input_shape, seed, kernels, vb).unwrap();
    (m, map)
}

/// A tensor's values, flattened.
pub fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// The training loss (weighted sum of the objective's terms) of `m` on `xs` at `step`.
pub fn loss(m: &dyn Autoencoder, xs: &Tensor, train: bool, step: u64) -> Tensor {
    loss_on(m, xs, train, step, Kernels::Auto)
}

/// [`loss`] with the fused losses computed by `kernels`.
pub fn loss_on(m: &dyn Autoencoder, xs: &Tensor, train: bool, step: u64, kernels: Kernels) -> Tensor {
    let ctx = StepCtx { rng_step: step, epoch: 0, train, loss: ReconLoss::Mse, kernels };
    total(&m.objective(xs, xs, &ctx).unwrap()).unwrap()
}
