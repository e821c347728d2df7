//! The regularised and generative kinds: every loss term's gradient against finite
//! differences, the closed-form KL against Monte Carlo, the exact contractive penalty
//! against a Jacobian built column by column and the estimator against the exact value,
//! the importance-weighted NLL against the ELBO, and what the penalties do to a trained
//! code.

// The names of the maths: x, w, b, h, d, k.
#![allow(clippy::many_single_char_names)]

mod common;

use bottleneck_models::eval::{EvalOptions, Evaluator};
use bottleneck_models::loss::scalar;
use bottleneck_models::terms::{
    bernoulli_log_likelihood, contractive_exact, gaussian_kl, gaussian_kl_per_unit, gaussian_log_likelihood,
    kl_sparsity, l1_sparsity, LN_2PI,
};
use bottleneck_models::{
    seeded_var_builder, Activation, Autoencoder, BackboneConfig, Contractive, ContractiveConfig, DenseConfig, Kernels,
    ModelConfig, ModelKind, ReconLoss, Sparsity,
};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use common::{fashion, loss, model, values};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

fn randn(shape: &[usize], seed: u64, scale: f64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    (0..n).map(|_| scale * Distribution::<f64>::sample(&StandardNormal, &mut rng)).collect()
}

fn var(v: Vec<f64>, shape: &[usize]) -> Var {
    Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
}

/// Checks the autograd gradient of `f` with respect to each of `vars` against central
/// differences at every coordinate (f64 throughout).
fn check_gradient(name: &str, vars: &[&Var], f: &dyn Fn() -> Tensor) {
    let grads = f().backward().unwrap();
    for (vi, v) in vars.iter().enumerate() {
        // No gradient means no dependence (the identity's penalty has none on the bias).
        let g: Vec<f64> = grads
            .get(v.as_tensor())
            .map_or_else(|| vec![0.0; v.elem_count()], |g| g.flatten_all().unwrap().to_vec1().unwrap());
        let x0: Vec<f64> = v.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let h = 1e-5;
        for i in 0..x0.len() {
            let at = |d: f64| {
                let mut x = x0.clone();
                x[i] += d;
                v.set(&Tensor::from_vec(x, v.shape(), &Device::Cpu).unwrap()).unwrap();
                f().to_scalar::<f64>().unwrap()
            };
            let numeric = (at(h) - at(-h)) / (2.0 * h);
            let tol = 1e-6 * (1.0 + numeric.abs());
            assert!((g[i] - numeric).abs() < tol, "{name}: d/dvar{vi}[{i}] autograd {} vs numeric {numeric}", g[i]);
        }
        v.set(&Tensor::from_vec(x0, v.shape(), &Device::Cpu).unwrap()).unwrap();
    }
}

#[test]
fn every_new_term_has_the_gradient_of_finite_differences() {
    let mean = var(randn(&[3, 4], 1, 1.0), &[3, 4]);
    let logvar = var(randn(&[3, 4], 2, 0.5), &[3, 4]);
    check_gradient("gaussian_kl", &[&mean, &logvar], &|| gaussian_kl(&mean, &logvar).unwrap());
    let logits = var(randn(&[2, 5], 3, 3.0), &[2, 5]);
    let xs: Tensor = Tensor::new(&[[0.0f64, 0.3, 1.0, 0.5, 0.9], [1.0, 0.0, 0.2, 0.7, 0.1]], &Device::Cpu).unwrap();
    check_gradient("bernoulli_log_likelihood", &[&logits], &|| {
        bernoulli_log_likelihood(logits.as_tensor(), &xs).unwrap().sum_all().unwrap()
    });
    let mu = var(randn(&[2, 5], 4, 0.5), &[2, 5]);
    let log_std = var(vec![-1.2], &[1]);
    check_gradient("gaussian_log_likelihood", &[&mu, &log_std], &|| {
        gaussian_log_likelihood(mu.as_tensor(), &xs, log_std.as_tensor()).unwrap().sum_all().unwrap()
    });
    let zs = var(randn(&[4, 3], 5, 1.0), &[4, 3]);
    check_gradient("l1_sparsity", &[&zs], &|| l1_sparsity(zs.as_tensor()).unwrap());
    let pre = var(randn(&[4, 3], 6, 1.0), &[4, 3]);
    check_gradient("kl_sparsity", &[&pre], &|| {
        kl_sparsity(&candle_nn::ops::sigmoid(pre.as_tensor()).unwrap(), 0.05).unwrap()
    });
    // The contractive penalty of h = act(x Wᵀ + b), through W and b (h depends on both).
    let x = Tensor::from_vec(randn(&[3, 5], 7, 1.0), (3, 5), &Device::Cpu).unwrap();
    let w = var(randn(&[4, 5], 8, 0.5), &[4, 5]);
    let b = var(randn(&[4], 9, 0.5), &[4]);
    for act in [Activation::Sigmoid, Activation::Tanh, Activation::Identity] {
        check_gradient(&format!("contractive_exact({})", act.name()), &[&w, &b], &|| {
            let h = act.apply(&x.matmul(&w.as_tensor().t().unwrap()).unwrap().broadcast_add(b.as_tensor()).unwrap());
            contractive_exact(&h.unwrap(), w.as_tensor(), act).unwrap().unwrap()
        });
    }
}

#[test]
fn closed_form_gaussian_kl_matches_a_monte_carlo_estimate() {
    let mean = [0.5f64, -1.0, 2.0];
    let logvar = [-1.0f64, 0.3, -2.5];
    let t = |v: &[f64]| Tensor::new(v, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let closed = scalar(&gaussian_kl(&t(&mean), &t(&logvar)).unwrap()).unwrap();
    let per_unit: Vec<f64> = gaussian_kl_per_unit(&t(&mean), &t(&logvar)).unwrap().to_vec1().unwrap();
    assert!((per_unit.iter().sum::<f64>() - closed).abs() < 1e-12);
    // E_q[log q(z) − log p(z)] with 400k samples of z ~ q.
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let n = 400_000;
    let mut sum = 0.0;
    for _ in 0..n {
        for j in 0..3 {
            let e: f64 = StandardNormal.sample(&mut rng);
            let s = (0.5 * logvar[j]).exp();
            let z = mean[j] + s * e;
            let log_q = -0.5 * (e * e + logvar[j] + LN_2PI);
            let log_p = -0.5 * (z * z + LN_2PI);
            sum += log_q - log_p;
        }
    }
    let mc = sum / f64::from(n);
    assert!((mc - closed).abs() < 0.01 * closed, "closed form {closed} vs Monte Carlo {mc}");
}

fn contractive(input: usize, hidden: Vec<usize>, k: usize, act: Activation, seed: u64) -> (Contractive, VarMap) {
    contractive_with(input, hidden, k, act, 1.0, seed)
}

/// A one-sigmoid-layer contractive autoencoder with penalty weight `weight`.
fn contractive_weighted(input: usize, k: usize, weight: f64, seed: u64) -> (Contractive, VarMap) {
    contractive_with(input, vec![], k, Activation::Sigmoid, weight, seed)
}

fn contractive_with(
    input: usize,
    hidden: Vec<usize>,
    k: usize,
    act: Activation,
    weight: f64,
    seed: u64,
) -> (Contractive, VarMap) {
    let map = VarMap::new();
    let vb = seeded_var_builder(&map, seed, DType::F32, &Device::Cpu);
    let cfg = ContractiveConfig {
        backbone: BackboneConfig::Dense(DenseConfig {
            input_shape: vec![input],
            hidden,
            latent_dim: k,
            activation: Activation::Relu,
            output_activation: Activation::Sigmoid,
            code_activation: act,
            kernels: Kernels::Auto,
        }),
        weight,
        eps: 0.01,
        samples: 1,
        seed,
    };
    (Contractive::new(&cfg, vb).unwrap(), map)
}

#[test]
fn the_exact_contractive_penalty_is_the_jacobian_built_column_by_column() {
    let d = 20;
    let xs =
        Tensor::from_vec(randn(&[3, d], 11, 1.0).iter().map(|&v| v as f32).collect(), (3, d), &Device::Cpu).unwrap();
    for act in [Activation::Sigmoid, Activation::Tanh, Activation::Relu, Activation::Identity] {
        let (m, _) = contractive(d, vec![], 6, act, 1);
        assert!(m.is_exact());
        let zs = m.encode(&xs).unwrap();
        let exact = scalar(&m.exact_penalty(&zs).unwrap().unwrap()).unwrap();
        // ‖J‖²_F per sample from central differences along each input coordinate.
        let x: Vec<Vec<f32>> = xs.to_vec2().unwrap();
        let h = 1e-3f32;
        let mut total = 0.0;
        for row in &x {
            for i in 0..d {
                let at = |dx: f32| {
                    let mut r = row.clone();
                    r[i] += dx;
                    values(&m.encode(&Tensor::from_vec(r, (1, d), &Device::Cpu).unwrap()).unwrap())
                };
                let (a, b) = (at(h), at(-h));
                total += a.iter().zip(&b).map(|(p, q)| f64::from((p - q) / (2.0 * h)).powi(2)).sum::<f64>();
            }
        }
        let columns = total / x.len() as f64;
        assert!((exact - columns).abs() < 0.01 * columns, "{}: exact {exact} vs columns {columns}", act.name());
    }
}

#[test]
fn the_estimator_averages_to_the_exact_penalty_on_a_one_layer_encoder() {
    let d = 30;
    let xs = fashion(4).flatten_from(1).unwrap().narrow(1, 300, d).unwrap().contiguous().unwrap();
    let (m, _) = contractive(d, vec![], 8, Activation::Sigmoid, 2);
    let zs = m.encode(&xs).unwrap();
    let exact = scalar(&m.exact_penalty(&zs).unwrap().unwrap()).unwrap();
    let est = scalar(&m.estimated_penalty(&xs, &zs, 5, 0, 20_000).unwrap()).unwrap();
    assert!((est - exact).abs() < 0.03 * exact, "estimate {est} vs exact {exact}");
    // One perturbation is a noisy but unbiased draw: the mean of many such draws agrees too.
    let draws: Vec<f64> =
        (0..200).map(|s| scalar(&m.estimated_penalty(&xs, &zs, 5, s + 1, 1).unwrap()).unwrap()).collect();
    let mean = draws.iter().sum::<f64>() / draws.len() as f64;
    assert!((mean - exact).abs() < 0.1 * exact, "mean of single draws {mean} vs exact {exact}");
    // A deeper encoder has no closed form: the model says so and estimates.
    let (deep, _) = contractive(d, vec![16], 8, Activation::Sigmoid, 2);
    assert!(!deep.is_exact() && deep.exact_penalty(&deep.encode(&xs).unwrap()).unwrap().is_none());
}

/// Trains `m` for `steps` AdamW steps on batches of 128 of `xs`.
fn train(m: &dyn Autoencoder, map: &VarMap, xs: &Tensor, steps: usize) {
    let mut opt =
        AdamW::new(map.all_vars(), ParamsAdamW { lr: 2e-3, weight_decay: 0.0, ..Default::default() }).unwrap();
    let n = xs.dim(0).unwrap();
    for step in 0..steps {
        let at = (step * 128) % (n - 127);
        opt.backward_step(&loss(m, &xs.narrow(0, at, 128).unwrap(), true, step as u64)).unwrap();
    }
}

#[test]
fn importance_weighted_nll_is_below_the_elbo_and_falls_with_k() {
    let all = fashion(2304);
    let (train_xs, test_xs) = (all.narrow(0, 0, 2048).unwrap(), all.narrow(0, 2048, 256).unwrap());
    let cfg = ModelConfig { kind: ModelKind::Vae, hidden: vec![128], latent_dim: 8, ..ModelConfig::default() };
    let (m, map) = model(&cfg, &[1, 28, 28], 3);
    train(m.as_ref(), &map, &train_xs, 200);
    let score = |k: usize| {
        let opts = EvalOptions { loss: ReconLoss::Mse, nll_samples: k, seed: 9, epoch: 0, kernels: Kernels::Auto };
        let mut ev = Evaluator::new(m.as_ref(), opts);
        for (i, b) in [0, 128].into_iter().enumerate() {
            ev.add(&test_xs.narrow(0, b, 128).unwrap(), i).unwrap();
        }
        ev.finish().metrics
    };
    let (m1, m10, m100) = (score(1), score(10), score(100));
    let elbo = m100["test_neg_elbo"];
    let (k1, k10, k100) = (m1["test_is_nll"], m10["test_is_nll"], m100["test_is_nll"]);
    eprintln!("-ELBO {elbo:.3}, IS-NLL K=1 {k1:.3}, K=10 {k10:.3}, K=100 {k100:.3}");
    assert!(k100 <= elbo, "IS-NLL {k100} above -ELBO {elbo}");
    assert!(k100 <= k10 && k10 <= k1, "IS-NLL does not fall with K: {k1}, {k10}, {k100}");
    // K = 1 estimates the ELBO itself (same expectation; different samples).
    assert!((k1 - elbo).abs() < 0.02 * elbo, "K=1 {k1} vs -ELBO {elbo}");
    assert!((m100["test_neg_elbo"] - (m100["test_recon"] + m100["test_kl"])).abs() < 1e-9);
    assert!(m100["test_active_units"] >= 1.0 && m100["test_active_units"] <= 8.0);
}

#[test]
fn a_sparse_code_is_smaller_than_the_same_autoencoders_code() {
    let all = fashion(2304);
    let (train_xs, test_xs) = (all.narrow(0, 0, 2048).unwrap(), all.narrow(0, 2048, 256).unwrap());
    let base = ModelConfig { hidden: vec![64], latent_dim: 16, sparsity_weight: 0.1, ..ModelConfig::default() };
    let mean_abs = |kind: ModelKind, sparsity: Sparsity| {
        let cfg = ModelConfig { kind, sparsity, ..base.clone() };
        let (m, map) = model(&cfg, &[1, 28, 28], 4);
        train(m.as_ref(), &map, &train_xs, 150);
        let z = values(&m.encode(&test_xs).unwrap());
        z.iter().map(|v| f64::from(v.abs())).sum::<f64>() / z.len() as f64
    };
    let plain = mean_abs(ModelKind::Dense, Sparsity::L1);
    let sparse = mean_abs(ModelKind::Sparse, Sparsity::L1);
    eprintln!("mean |z|: plain {plain:.4}, sparse {sparse:.4}");
    assert!(sparse < 0.5 * plain, "sparse mean |z| {sparse} vs plain {plain}");
    // KL sparsity: the sigmoid code's mean activation moves towards ρ = 0.05.
    let kl = mean_abs(ModelKind::Sparse, Sparsity::Kl);
    eprintln!("mean activation of the KL-sparse code: {kl:.4}");
    assert!(kl < 0.25, "KL-sparse mean activation {kl}");
}

#[test]
fn a_contractive_encoder_has_a_smaller_jacobian_than_the_same_autoencoder() {
    let all = fashion(2304);
    let flat = all.flatten_from(1).unwrap();
    let (train_xs, test_xs) = (flat.narrow(0, 0, 2048).unwrap(), flat.narrow(0, 2048, 256).unwrap());
    let measure = |weight: f64| {
        let (m, map) = contractive_weighted(784, 32, weight, 5);
        train(&m, &map, &train_xs, 200);
        scalar(&m.exact_penalty(&m.encode(&test_xs).unwrap()).unwrap().unwrap()).unwrap()
    };
    // Weight 0 is the plain autoencoder of the same architecture.
    let (plain, cae) = (measure(0.0), measure(0.1));
    eprintln!("‖J‖²_F on held-out images: plain {plain:.4}, contractive {cae:.4}");
    assert!(cae < 0.5 * plain, "contractive {cae} vs plain {plain}");
}

#[test]
fn capacity_control_logs_the_kl_and_optimises_the_gap() {
    let xs = fashion(16);
    let cfg = ModelConfig {
        kind: ModelKind::Vae,
        hidden: vec![32],
        latent_dim: 4,
        capacity_max: 20.0,
        capacity_epochs: 4,
        gamma: 100.0,
        ..ModelConfig::default()
    };
    let (m, _) = model(&cfg, &[1, 28, 28], 1);
    let ctx =
        bottleneck_models::StepCtx { rng_step: 0, epoch: 2, train: true, loss: ReconLoss::Mse, kernels: Kernels::Auto };
    let terms = m.objective(&xs, &xs, &ctx).unwrap();
    let names: Vec<&str> = terms.iter().map(|t| t.name).collect();
    assert_eq!(names, ["recon", "kl", "capacity"]);
    let (kl, gap) = (scalar(&terms[1].value).unwrap(), scalar(&terms[2].value).unwrap());
    // At epoch 2 of 4, C = 10 nats.
    assert!((gap - (kl - 10.0).abs()).abs() < 1e-4, "kl {kl}, gap {gap}");
    assert!(terms[1].weight.abs() < f64::EPSILON && (terms[2].weight - 100.0).abs() < f64::EPSILON);
    let total = scalar(&bottleneck_models::total(&terms).unwrap()).unwrap();
    let recon = scalar(&terms[0].value).unwrap();
    assert!((total - (recon + 100.0 * gap)).abs() < 1e-3 * total, "{total} vs {recon} + 100·{gap}");
}
