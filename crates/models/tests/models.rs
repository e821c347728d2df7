//! Every kind: shapes, learning on a real batch, save → load, seeded init, denoising
//! semantics, config errors.

mod common;

use bottleneck_models::loss::{bce, mse, per_sample_sse, psnr, scalar};
use bottleneck_models::{Activation, Backbone, ModelConfig, ModelKind, Noise, ReconLoss};
use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use common::{fashion, model, values};

fn kinds() -> Vec<(&'static str, ModelConfig)> {
    let small = ModelConfig { hidden: vec![64, 32], channels: vec![8, 16], latent_dim: 6, ..ModelConfig::default() };
    vec![
        ("dense", ModelConfig { kind: ModelKind::Dense, ..small.clone() }),
        ("conv", ModelConfig { kind: ModelKind::Conv, ..small.clone() }),
        ("denoising(dense)", ModelConfig { kind: ModelKind::Denoising, backbone: Backbone::Dense, ..small.clone() }),
        ("denoising(conv)", ModelConfig { kind: ModelKind::Denoising, backbone: Backbone::Conv, ..small }),
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
            for train in [false, true] {
                let out = m.forward_t(&xs, train).unwrap();
                assert_eq!(out.dims(), xs.dims(), "{name} {shape:?} train={train}");
            }
            let v = values(&m.forward_t(&xs, false).unwrap());
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
    assert_eq!(m.forward_t(&xs, true).unwrap().dims(), [4, 10]);
    let map = candle_nn::VarMap::new();
    let vb = bottleneck_models::seeded_var_builder(&map, 0, candle_core::DType::F32, &Device::Cpu);
    let Err(e) = bottleneck_models::build(&ModelConfig { kind: ModelKind::Conv, ..cfg }, &[10], 0, vb) else {
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
    assert_eq!(m.forward_t(&xs, false).unwrap().dims(), [2, 1, 28, 28]);
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
        let eval =
            |m: &dyn bottleneck_models::Autoencoder| scalar(&m.loss(&xs, ReconLoss::Mse, false).unwrap()).unwrap();
        let before = eval(m.as_ref());
        for _ in 0..30 {
            let loss = m.loss(&xs, ReconLoss::Mse, true).unwrap();
            opt.backward_step(&loss).unwrap();
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
        opt.backward_step(&m.loss(&xs, ReconLoss::Mse, true).unwrap()).unwrap();
        let path = dir.path().join(format!("{name}.safetensors"));
        map.save(&path).unwrap();
        let (fresh, mut fresh_map) = model(&cfg, &[1, 28, 28], 99);
        assert_ne!(values(&fresh.forward_t(&xs, false).unwrap()), values(&m.forward_t(&xs, false).unwrap()));
        fresh_map.load(&path).unwrap();
        let a = values(&m.forward_t(&xs, false).unwrap());
        let b = values(&fresh.forward_t(&xs, false).unwrap());
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
    assert_eq!(values(&den.forward_t(&xs, false).unwrap()), values(&plain.forward_t(&xs, false).unwrap()));
}

#[test]
fn same_seed_same_weights_other_seed_other_weights() {
    let xs = fashion(4);
    for (name, cfg) in kinds() {
        let a = values(&model(&cfg, &[1, 28, 28], 7).0.forward_t(&xs, false).unwrap());
        let b = values(&model(&cfg, &[1, 28, 28], 7).0.forward_t(&xs, false).unwrap());
        let c = values(&model(&cfg, &[1, 28, 28], 8).0.forward_t(&xs, false).unwrap());
        assert_eq!(a, b, "{name}");
        assert_ne!(a, c, "{name}");
    }
}

#[test]
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
    // Evaluation: exactly the backbone on clean input, every time.
    let eval = values(&m.forward_t(&xs, false).unwrap());
    assert_eq!(eval, values(&backbone.forward_t(&xs, false).unwrap()));
    assert_eq!(eval, values(&m.forward_t(&xs, false).unwrap()));
    assert_eq!(m.noise_step(), 0, "evaluation draws no noise");
    // Training: the backbone on the noisy input of step 0, then of step 1.
    let t0 = values(&m.forward_t(&xs, true).unwrap());
    let noisy0 = m.noise().unwrap().apply_seeded(&xs, 0);
    assert!(noisy0.is_ok());
    assert_ne!(t0, eval, "training sees noise");
    let t1 = values(&m.forward_t(&xs, true).unwrap());
    assert_ne!(t0, t1, "each step draws new noise");
    assert_eq!(m.noise_step(), 2);
    // Same seed and step, same noise: a fresh model replays step 0, and rewinding replays step 1.
    let (again, _) = model(&cfg, &[1, 28, 28], 11);
    assert_eq!(values(&again.forward_t(&xs, true).unwrap()), t0);
    m.set_noise_step(1);
    assert_eq!(values(&m.forward_t(&xs, true).unwrap()), t1);
    // The loss is against the clean input: with zero noise it equals the backbone's loss.
    let (quiet, _) = model(&ModelConfig { noise: Noise::Gaussian { std: 0.0 }, ..cfg }, &[1, 28, 28], 11);
    let l_quiet = scalar(&quiet.loss(&xs, ReconLoss::Mse, true).unwrap()).unwrap();
    let l_plain = scalar(&backbone.loss(&xs, ReconLoss::Mse, true).unwrap()).unwrap();
    assert!((l_quiet - l_plain).abs() < 1e-7, "{l_quiet} vs {l_plain}");
}

#[test]
fn losses_and_metrics_match_their_definitions() {
    let x = Tensor::new(&[[0.0f32, 1.0, 0.5, 0.25], [1.0, 0.0, 0.5, 0.75]], &Device::Cpu).unwrap();
    let y = Tensor::new(&[[0.1f32, 0.8, 0.5, 0.25], [0.9, 0.3, 0.4, 0.75]], &Device::Cpu).unwrap();
    let (xv, yv) = (values(&x), values(&y));
    let sq: Vec<f64> = xv.iter().zip(&yv).map(|(a, b)| f64::from(a - b).powi(2)).collect();
    let want_mse = sq.iter().sum::<f64>() / 8.0;
    assert!((scalar(&mse(&y, &x).unwrap()).unwrap() - want_mse).abs() < 1e-7);
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
    let _ = Activation::Identity;
}
