//! Every kind: shapes, learning on a real batch, save → load, seeded init, denoising
//! semantics, config errors.

mod common;

use bottleneck_models::loss::{bce, mse, per_sample_sse, psnr, scalar};
use bottleneck_models::{
    Activation, Autoencoder, Backbone, Kernels, Likelihood, ModelConfig, ModelKind, Noise, ReconLoss, StepCtx, Wraps,
};
use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use common::{fashion, loss, model, values};

fn kinds() -> Vec<(&'static str, ModelConfig)> {
    let small = ModelConfig { hidden: vec![64, 32], channels: vec![8, 16], latent_dim: 6, ..ModelConfig::default() };
    let kind = |kind, backbone| ModelConfig { kind, backbone, ..small.clone() };
    vec![
        ("dense", kind(ModelKind::Dense, Backbone::Dense)),
        ("conv", kind(ModelKind::Conv, Backbone::Dense)),
        ("denoising(dense)", kind(ModelKind::Denoising, Backbone::Dense)),
        ("denoising(conv)", kind(ModelKind::Denoising, Backbone::Conv)),
        ("vae(dense)", kind(ModelKind::Vae, Backbone::Dense)),
        ("vae(conv)", kind(ModelKind::Vae, Backbone::Conv)),
        (
            "vae(dense, gaussian, learned σ)",
            ModelConfig { likelihood: Likelihood::Gaussian, learn_std: true, ..kind(ModelKind::Vae, Backbone::Dense) },
        ),
        ("sparse(dense)", kind(ModelKind::Sparse, Backbone::Dense)),
        ("sparse(conv)", kind(ModelKind::Sparse, Backbone::Conv)),
        ("contractive(dense)", kind(ModelKind::Contractive, Backbone::Dense)),
        ("contractive(conv)", kind(ModelKind::Contractive, Backbone::Conv)),
        ("denoising(vae(dense))", ModelConfig { wraps: Wraps::Vae, ..kind(ModelKind::Denoising, Backbone::Dense) }),
    ]
}

#[test]
fn output_shape_is_input_shape_for_every_kind_and_image_shape() {
    for shape in [[1usize, 28, 28], [3, 32, 32], [2, 13, 9], [1, 14, 13]] {
        let xs = Tensor::rand(0f32, 1.0, (5, shape[0], shape[1], shape[2]), &Device::Cpu).unwrap();
        for (name, cfg) in kinds() {
            let (m, map) = model(&cfg, &shape, 0);
            let zs = m.encode(&xs).unwrap();
            assert_eq!(zs.dims(), [5, 6], "{name} {shape:?} latent");
            assert_eq!(m.decode(&zs).unwrap().dims(), xs.dims(), "{name} {shape:?} decode");
            for train in [false, true] {
                let terms = m
                    .objective(
                        &xs,
                        &xs,
                        &StepCtx { rng_step: 0, epoch: 0, train, loss: ReconLoss::Mse, kernels: Kernels::Auto },
                    )
                    .unwrap();
                assert_eq!(terms[0].name, "recon", "{name}");
                for t in &terms {
                    assert!(t.value.dims().is_empty(), "{name}: term {} is not a scalar", t.name);
                    assert!(scalar(&t.value).unwrap().is_finite(), "{name}: term {}", t.name);
                }
            }
            let v = values(&m.reconstruct(&xs).unwrap());
            assert!(v.iter().all(|&p| (0.0..=1.0).contains(&p)), "{name}: sigmoid output in [0, 1]");
            // The summary's parameter count is what the VarMap holds.
            let held: usize = map.all_vars().iter().map(|v| v.elem_count()).sum();
            let s = m.summary();
            assert_eq!(s.params(), held, "{name} {shape:?}\n{s}");
            assert_eq!(s.layers.last().unwrap().output, shape.to_vec(), "{name}\n{s}");
        }
    }
}

#[test]
fn dense_accepts_vectors_and_conv_explains_why_not() {
    let xs = Tensor::rand(0f32, 1.0, (4, 10), &Device::Cpu).unwrap();
    let cfg = ModelConfig { hidden: vec![8], latent_dim: 2, ..ModelConfig::default() };
    let (m, _) = model(&cfg, &[10], 0);
    assert_eq!(m.reconstruct(&xs).unwrap().dims(), [4, 10]);
    let map = candle_nn::VarMap::new();
    let vb = bottleneck_models::seeded_var_builder(&map, 0, candle_core::DType::F32, &Device::Cpu);
    let Err(e) = bottleneck_models::build(&ModelConfig { kind: ModelKind::Conv, ..cfg }, &[10], 0, Kernels::Auto, vb)
    else {
        panic!("conv on vectors must fail")
    };
    assert!(e.to_string().contains("[channels, height, width]") && e.to_string().contains("dense"), "{e}");
}

#[test]
fn deep_stacks_shrink_to_one_pixel_and_come_back() {
    // 28 -> 14 -> 7 -> 4 -> 2 -> 1 -> 1 with k3: every step keeps at least one pixel.
    let cfg = ModelConfig { kind: ModelKind::Conv, channels: vec![4; 6], ..ModelConfig::default() };
    let (m, _) = model(&cfg, &[1, 28, 28], 0);
    let s = m.summary();
    assert_eq!(s.layers[5].output, [4, 1, 1], "{s}");
    let xs = Tensor::rand(0f32, 1.0, (2, 1, 28, 28), &Device::Cpu).unwrap();
    assert_eq!(m.reconstruct(&xs).unwrap().dims(), [2, 1, 28, 28]);
}

#[test]
fn bad_config_values_name_the_key() {
    let cases = [
        (ModelConfig { latent_dim: 0, ..ModelConfig::default() }, "model.latent_dim"),
        (ModelConfig { hidden: vec![16, 0], ..ModelConfig::default() }, "model.hidden[1]"),
        (ModelConfig { kind: ModelKind::Conv, channels: vec![], ..ModelConfig::default() }, "model.channels"),
        (ModelConfig { kind: ModelKind::Conv, kernel_size: 4, ..ModelConfig::default() }, "model.kernel_size"),
        (
            ModelConfig {
                kind: ModelKind::Denoising,
                noise: Noise::Masking { fraction: 2.0 },
                ..ModelConfig::default()
            },
            "model.noise.fraction",
        ),
    ];
    for (cfg, key) in cases {
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains(&format!("`{key}`")), "{key}: {e}");
    }
    let e = serde_json::from_str::<ModelConfig>(r#"{"latent_dimm": 3}"#).unwrap_err().to_string();
    assert!(e.contains("latent_dimm"), "{e}");
    let e = serde_json::from_str::<ModelConfig>(r#"{"activation": "swish"}"#).unwrap_err().to_string();
    assert!(e.contains("swish") && e.contains("relu"), "{e}");
}

/// A few AdamW steps on one fixed real batch lower the loss, for every kind.
#[test]
fn a_few_steps_lower_the_loss_on_a_real_batch() {
    let xs = fashion(64);
    for (name, cfg) in kinds() {
        let (m, map) = model(&cfg, &[1, 28, 28], 1);
        let mut opt =
            AdamW::new(map.all_vars(), ParamsAdamW { lr: 3e-3, weight_decay: 0.0, ..Default::default() }).unwrap();
        // Evaluate clean → clean (no noise) before and after.
        let eval = |m: &dyn Autoencoder| scalar(&loss(m, &xs, false, 0)).unwrap();
        let before = eval(m.as_ref());
        for step in 0..60 {
            opt.backward_step(&loss(m.as_ref(), &xs, true, step)).unwrap();
        }
        let after = eval(m.as_ref());
        assert!(after < 0.8 * before, "{name}: loss {before} -> {after}");
    }
}

#[test]
fn save_then_load_gives_bit_identical_outputs() {
    let xs = fashion(8);
    let dir = tempfile::tempdir().unwrap();
    for (name, cfg) in kinds() {
        let (m, map) = model(&cfg, &[1, 28, 28], 3);
        // Move the weights away from their seeded init first.
        let mut opt = AdamW::new(map.all_vars(), ParamsAdamW::default()).unwrap();
        opt.backward_step(&loss(m.as_ref(), &xs, true, 0)).unwrap();
        let path = dir.path().join(format!("{name}.safetensors"));
        map.save(&path).unwrap();
        let (fresh, mut fresh_map) = model(&cfg, &[1, 28, 28], 99);
        assert_ne!(values(&fresh.reconstruct(&xs).unwrap()), values(&m.reconstruct(&xs).unwrap()));
        fresh_map.load(&path).unwrap();
        let a = values(&m.reconstruct(&xs).unwrap());
        let b = values(&fresh.reconstruct(&xs).unwrap());
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{name}: outputs differ after load");
        assert_eq!(values(&m.encode(&xs).unwrap()), values(&fresh.encode(&xs).unwrap()));
    }
}

#[test]
fn a_denoising_checkpoint_loads_into_its_plain_backbone() {
    let xs = fashion(4);
    let dir = tempfile::tempdir().unwrap();
    let cfg = ModelConfig { kind: ModelKind::Denoising, hidden: vec![32], latent_dim: 4, ..ModelConfig::default() };
    let (den, map) = model(&cfg, &[1, 28, 28], 5);
    map.save(dir.path().join("d.safetensors")).unwrap();
    let (plain, mut plain_map) = model(&ModelConfig { kind: ModelKind::Dense, ..cfg }, &[1, 28, 28], 6);
    plain_map.load(dir.path().join("d.safetensors")).unwrap();
    assert_eq!(values(&den.reconstruct(&xs).unwrap()), values(&plain.reconstruct(&xs).unwrap()));
}

#[test]
fn same_seed_same_weights_other_seed_other_weights() {
    let xs = fashion(4);
    for (name, cfg) in kinds() {
        let a = values(&model(&cfg, &[1, 28, 28], 7).0.reconstruct(&xs).unwrap());
        let b = values(&model(&cfg, &[1, 28, 28], 7).0.reconstruct(&xs).unwrap());
        let c = values(&model(&cfg, &[1, 28, 28], 8).0.reconstruct(&xs).unwrap());
        assert_eq!(a, b, "{name}");
        assert_ne!(a, c, "{name}");
    }
}

/// The `recon` value of `m`'s objective on `xs` (clean targets) at `step`.
fn recon(m: &dyn Autoencoder, xs: &Tensor, train: bool, step: u64) -> f32 {
    let ctx = StepCtx { rng_step: step, epoch: 0, train, loss: ReconLoss::Mse, kernels: Kernels::Auto };
    let terms = m.objective(xs, xs, &ctx).unwrap();
    scalar(&terms[0].value).unwrap() as f32
}

#[test]
#[allow(clippy::float_cmp)] // the same computation must give the same bits
fn denoising_noise_only_in_training_and_reproducible() {
    let xs = fashion(16);
    let cfg = ModelConfig {
        kind: ModelKind::Denoising,
        hidden: vec![32],
        latent_dim: 4,
        noise: Noise::Gaussian { std: 0.3 },
        ..ModelConfig::default()
    };
    let (m, _) = model(&cfg, &[1, 28, 28], 11);
    let plain = ModelConfig { kind: ModelKind::Dense, ..cfg.clone() };
    let (backbone, _) = model(&plain, &[1, 28, 28], 11);
    // Evaluation: exactly the backbone on clean input, whatever the step.
    let eval = recon(m.as_ref(), &xs, false, 0);
    assert_eq!(eval, recon(backbone.as_ref(), &xs, false, 0));
    assert_eq!(eval, recon(m.as_ref(), &xs, false, 5));
    assert_eq!(values(&m.reconstruct(&xs).unwrap()), values(&backbone.reconstruct(&xs).unwrap()));
    // Training: the backbone on the noisy input of step 0, then of step 1, against the
    // clean input.
    let t0 = recon(m.as_ref(), &xs, true, 0);
    assert_ne!(t0, eval, "training sees noise");
    let t1 = recon(m.as_ref(), &xs, true, 1);
    assert_ne!(t0, t1, "each step draws new noise");
    let noise = m.input_noise().unwrap();
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(11);
    rng.set_stream(1);
    let noisy1 = noise.apply(&xs, &mut rng).unwrap();
    let want = mse(&backbone.reconstruct(&noisy1).unwrap(), &xs, Kernels::Auto).unwrap();
    assert_eq!(t1, scalar(&want).unwrap() as f32, "step 1 = the backbone on stream 1's noise vs clean");
    // Same seed and step, same noise: a fresh model replays step 0; the step, not a
    // counter, decides.
    let (again, _) = model(&cfg, &[1, 28, 28], 11);
    assert_eq!(recon(again.as_ref(), &xs, true, 0), t0);
    assert_eq!(recon(m.as_ref(), &xs, true, 1), t1);
    // The loss is against the clean input: with zero noise it equals the backbone's loss.
    let (quiet, _) = model(&ModelConfig { noise: Noise::Gaussian { std: 0.0 }, ..cfg }, &[1, 28, 28], 11);
    let (l_quiet, l_plain) = (recon(quiet.as_ref(), &xs, true, 3), recon(backbone.as_ref(), &xs, true, 3));
    assert!((l_quiet - l_plain).abs() < 1e-7, "{l_quiet} vs {l_plain}");
}

/// The parameter names of the existing kinds are their checkpoint format: they must not
/// change.
#[test]
fn checkpoint_names_of_the_existing_kinds_are_stable() {
    let names = |cfg: &ModelConfig| {
        let (_, map) = model(cfg, &[1, 28, 28], 0);
        let mut n: Vec<String> = map.data().lock().unwrap().keys().cloned().collect();
        n.sort();
        n
    };
    let wb = |prefixes: &[&str]| {
        let mut v: Vec<String> = prefixes.iter().flat_map(|p| [format!("{p}.bias"), format!("{p}.weight")]).collect();
        v.sort();
        v
    };
    let dense = ModelConfig { hidden: vec![16, 8], latent_dim: 2, ..ModelConfig::default() };
    let want = wb(&["encoder.0", "encoder.1", "encoder.2", "decoder.0", "decoder.1", "decoder.2"]);
    assert_eq!(names(&dense), want);
    assert_eq!(names(&ModelConfig { kind: ModelKind::Denoising, ..dense.clone() }), want);
    let conv = ModelConfig { kind: ModelKind::Conv, channels: vec![4, 8], latent_dim: 2, ..ModelConfig::default() };
    let want =
        wb(&["encoder.conv0", "encoder.conv1", "encoder.fc", "decoder.fc", "decoder.deconv0", "decoder.deconv1"]);
    assert_eq!(names(&conv), want);
    // The new kinds reuse the same names (a VAE's last encoder layer is twice as wide).
    let vae = ModelConfig { kind: ModelKind::Vae, ..dense };
    assert_eq!(names(&vae), wb(&["encoder.0", "encoder.1", "encoder.2", "decoder.0", "decoder.1", "decoder.2"]));
    let (_, map) = model(&vae, &[1, 28, 28], 0);
    assert_eq!(map.data().lock().unwrap()["encoder.2.weight"].dims(), [4, 8]);
}

#[test]
fn losses_and_metrics_match_their_definitions() {
    let x = Tensor::new(&[[0.0f32, 1.0, 0.5, 0.25], [1.0, 0.0, 0.5, 0.75]], &Device::Cpu).unwrap();
    let y = Tensor::new(&[[0.1f32, 0.8, 0.5, 0.25], [0.9, 0.3, 0.4, 0.75]], &Device::Cpu).unwrap();
    let (xv, yv) = (values(&x), values(&y));
    let sq: Vec<f64> = xv.iter().zip(&yv).map(|(a, b)| f64::from(a - b).powi(2)).collect();
    let want_mse = sq.iter().sum::<f64>() / 8.0;
    assert!((scalar(&mse(&y, &x, Kernels::Auto).unwrap()).unwrap() - want_mse).abs() < 1e-7);
    assert!((scalar(&per_sample_sse(&y, &x).unwrap()).unwrap() - want_mse * 4.0).abs() < 1e-6);
    let want_bce = xv
        .iter()
        .zip(&yv)
        .map(|(&t, &p)| {
            -(f64::from(t) * f64::from(p.max(1e-7)).ln() + (1.0 - f64::from(t)) * (1.0 - f64::from(p)).max(1e-7).ln())
        })
        .sum::<f64>()
        / 8.0;
    assert!((scalar(&bce(&y, &x).unwrap()).unwrap() - want_bce).abs() < 1e-4);
    assert!((psnr(0.01, 1.0) - 20.0).abs() < 1e-12);
    let _ = (Activation::Identity, ReconLoss::Bce);
}

#[test]
fn the_flop_count_matches_a_hand_count() {
    // Dense 784-512-256-32 and back: the multiply-accumulates of its six products.
    let dense = ModelConfig { hidden: vec![512, 256], latent_dim: 32, ..ModelConfig::default() };
    let (m, _) = model(&ModelConfig { kind: ModelKind::Dense, ..dense.clone() }, &[1, 28, 28], 0);
    let hand = 784 * 512 + 512 * 256 + 256 * 32 + 32 * 256 + 256 * 512 + 512 * 784;
    assert_eq!(m.summary().macs(), hand);
    assert!((m.summary().train_flops() - 6.0 * hand as f64).abs() < 0.5);
    assert!(m.summary().to_string().contains("6.49 MFLOP per sample per training step (2.16 forward)"));
    // The VAE's code layer emits μ and log σ² (2k outputs); the rest is the same.
    let (v, _) = model(&ModelConfig { kind: ModelKind::Vae, backbone: Backbone::Dense, ..dense }, &[1, 28, 28], 0);
    assert_eq!(v.summary().macs(), hand + 256 * 32);
    // Conv 1→32→64, 3×3 stride 2 on 28×28 (maps of 14×14, then 7×7), a linear layer to 32
    // and back, two transposed convolutions: each output pixel of a convolution (input
    // pixel of a transposed one) meets c_in × c_out × 9 weights.
    let conv = ModelConfig { channels: vec![32, 64], kernel_size: 3, latent_dim: 32, ..ModelConfig::default() };
    let (c, _) = model(&ModelConfig { kind: ModelKind::Conv, ..conv.clone() }, &[1, 28, 28], 0);
    let hand = 32 * 14 * 14 * 9
        + 64 * 7 * 7 * 32 * 9
        + 64 * 7 * 7 * 32
        + 32 * 64 * 7 * 7
        + 64 * 7 * 7 * 32 * 9
        + 32 * 14 * 14 * 9;
    assert_eq!(c.summary().macs(), hand);
    assert_eq!(hand, 2_119_936, "12.7 MFLOP per training step, the figure the speed issue works from");
    // An odd RGB size: 15×17 → 8×9 → 4×5 (stride 2 rounds up).
    let (c, _) = model(&ModelConfig { kind: ModelKind::Conv, ..conv }, &[3, 15, 17], 0);
    let hand = 32 * 8 * 9 * 3 * 9
        + 64 * 4 * 5 * 32 * 9
        + 64 * 4 * 5 * 32
        + 32 * 64 * 4 * 5
        + 64 * 4 * 5 * 32 * 9
        + 32 * 8 * 9 * 3 * 9;
    assert_eq!(c.summary().macs(), hand);
}

/// Normwise relative difference: max |a - b| / max |b|.
fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let d = values(&(a - b).unwrap()).iter().fold(0f32, |m, v| m.max(v.abs()));
    d / values(b).iter().fold(1e-6f32, |m, v| m.max(v.abs()))
}

/// Weights by name.
fn named(map: &candle_nn::VarMap) -> std::collections::BTreeMap<String, candle_core::Var> {
    map.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[test]
fn kernels_and_candle_ops_compute_the_same_forward_and_backward() {
    // Every kind and backbone, two image sizes (one odd, RGB), and every activation on a
    // dense and a conv body: the fused CPU kernels against candle's own ops (the path a
    // GPU takes), from the same weights.
    let mut cases: Vec<(String, ModelConfig, [usize; 3])> = Vec::new();
    for (name, cfg) in kinds() {
        for shape in [[1, 28, 28], [3, 15, 17]] {
            cases.push((format!("{name} on {shape:?}"), cfg.clone(), shape));
        }
    }
    let acts = [
        Activation::Identity,
        Activation::Relu,
        Activation::LeakyRelu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Gelu,
        Activation::Silu,
    ];
    for act in acts {
        for kind in [ModelKind::Dense, ModelKind::Conv] {
            let cfg = ModelConfig {
                kind,
                hidden: vec![24],
                channels: vec![4, 8],
                latent_dim: 5,
                activation: act,
                output_activation: act,
                ..ModelConfig::default()
            };
            cases.push((format!("{kind:?} with {}", act.name()), cfg, [2, 13, 9]));
        }
    }
    for (what, cfg, shape) in cases {
        let xs = Tensor::rand(0f32, 1.0, (6, shape[0], shape[1], shape[2]), &Device::Cpu).unwrap();
        let (fused, fused_map) = common::model_on(&cfg, &shape, 11, Kernels::Auto);
        let (plain, plain_map) = common::model_on(&cfg, &shape, 11, Kernels::Candle);
        let r = rel_diff(&fused.encode(&xs).unwrap(), &plain.encode(&xs).unwrap());
        assert!(r < 1e-4, "{what}: codes differ by {r}");
        let r = rel_diff(&fused.reconstruct(&xs).unwrap(), &plain.reconstruct(&xs).unwrap());
        assert!(r < 1e-4, "{what}: reconstructions differ by {r}");
        let lf = common::loss_on(fused.as_ref(), &xs, true, 3, Kernels::Auto);
        let lp = common::loss_on(plain.as_ref(), &xs, true, 3, Kernels::Candle);
        let r = rel_diff(&lf, &lp);
        assert!(r < 1e-4, "{what}: training loss {lf} vs {lp}");
        let (gf, gp) = (lf.backward().unwrap(), lp.backward().unwrap());
        let (vf, vp) = (named(&fused_map), named(&plain_map));
        assert_eq!(vf.keys().collect::<Vec<_>>(), vp.keys().collect::<Vec<_>>(), "{what}: the same weights");
        for (name, v) in &vf {
            let a = gf.get(v.as_tensor()).unwrap_or_else(|| panic!("{what}: no kernel gradient for {name}"));
            let b = gp.get(vp[name].as_tensor()).unwrap_or_else(|| panic!("{what}: no candle gradient for {name}"));
            let r = rel_diff(a, b);
            assert!(r < 1e-4, "{what}: gradient of {name} differs by {r}");
        }
    }
}
