//! Where a training step's time goes (forward + loss, backward, optimiser), for the dense,
//! conv, vae, sparse or contractive default (`configs/model/<kind>.toml`) on random data, batch 256,
//! with the model's FLOP count (`Summary::train_flops`) and the rate it implies
//! (`step_profile KIND 0` prints the count alone); a third argument `candle` times
//! candle's own ops instead of the fused CPU kernels (`kernels = "candle"`):
//! `cargo build --release --workspace --examples && target/release/examples/step_profile [dense|conv|vae|...] [steps] [auto|candle]`.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use bottleneck_models::{build, seeded_var_builder, Kernels, ModelConfig, ReconLoss, StepCtx};
use bottleneck_train::optim::Optimizer;
use bottleneck_train::runner::named_vars;
use bottleneck_train::train_config::TrainConfig;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

// As the bottleneck binary: glibc's malloc maps and unmaps the large buffers every step.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// As the binary's `keep_freed_memory` (crates/cli/main.rs): mimalloc's purge delay
/// option (index 15) set to −1, freed memory kept mapped (`MIMALLOC_PURGE_DELAY` in the environment
/// overrides it).
#[allow(unsafe_code)]
fn keep_freed_memory() {
    // SAFETY: called first in `main`, before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set_default(15, -1) }
}

fn main() -> anyhow::Result<()> {
    keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map_or("dense", String::as_str);
    let steps: usize = args.get(2).map_or(Ok(100), |s| s.parse())?;
    let kernels = match args.get(3).map_or("auto", String::as_str) {
        "auto" => Kernels::Auto,
        "candle" => Kernels::Candle,
        other => anyhow::bail!("kernels `{other}`: use auto or candle"),
    };
    let _ = bottleneck_kernels::flush_denormals();
    let file = format!("configs/model/{kind}.toml");
    let cfg: ModelConfig = toml::from_str(&std::fs::read_to_string(file)?)?;
    let map = VarMap::new();
    let vb = seeded_var_builder(&map, 0, DType::F32, &Device::Cpu);
    let model = build(&cfg, &[1, 28, 28], 0, kernels, vb)?;
    if steps == 0 {
        println!("{kind}: {:.4} MFLOP per sample per step", model.summary().train_flops() / 1e6);
        return Ok(());
    }
    let mut opt = Optimizer::new(&TrainConfig::default(), named_vars(&map), kernels)?;
    let xs = Tensor::rand(0f32, 1f32, (256, 1, 28, 28), &Device::Cpu)?;
    let (mut fwd, mut bwd, mut step) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let total = Instant::now();
    for i in 0..steps {
        let t = Instant::now();
        let ctx = StepCtx::train(i as u64, 0, ReconLoss::Mse).with_kernels(kernels);
        let loss = bottleneck_models::total(&model.objective(&xs, &xs, &ctx)?)?;
        let _ = loss.to_scalar::<f32>()?;
        fwd += t.elapsed();
        let t = Instant::now();
        let grads = loss.backward()?;
        bwd += t.elapsed();
        let t = Instant::now();
        opt.step(&grads, 1e-3, 1.0)?;
        drop(grads);
        step += t.elapsed();
    }
    let per = |d: Duration| d.as_secs_f64() * 1e3 / steps as f64;
    let all = total.elapsed();
    let flops = model.summary().train_flops();
    println!(
        "{kind}: {:.2} ms/step (forward+loss {:.2}, backward {:.2}, optimiser {:.2}); x235 = {:.2} s/epoch; \
         {:.2} MFLOP per sample per step, {:.1} GFLOP/s",
        per(all),
        per(fwd),
        per(bwd),
        per(step),
        all.as_secs_f64() / steps as f64 * 235.0,
        flops / 1e6,
        flops * 256.0 / (per(all) * 1e-3) / 1e9
    );
    Ok(())
}
