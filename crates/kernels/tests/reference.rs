//! Gradient checks: every kernel against candle's reference ops on seeded random inputs,
//! forward and backward, to 1e-4 relative (normwise: max |ours - ref| / max |ref|).

use bottleneck_kernels::{
    bernoulli_nll, conv2d, conv_transpose2d, linear, linear_to, mse, Act, AdamStep, Conv2dParams,
    ConvTranspose2dParams, SgdStep,
};
use candle_core::{Device, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TOL: f32 = 1e-4;
const ACTS: [Act; 5] = [Act::Identity, Act::Relu, Act::LeakyRelu, Act::Sigmoid, Act::Tanh];

fn random(rng: &mut ChaCha8Rng, dims: &[usize]) -> Tensor {
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
}

fn var(rng: &mut ChaCha8Rng, dims: &[usize]) -> Var {
    Var::from_tensor(&random(rng, dims)).unwrap()
}

/// Normwise relative difference of two tensors of the same shape.
fn rel(ours: &Tensor, reference: &Tensor) -> f32 {
    assert_eq!(ours.dims(), reference.dims(), "shapes differ");
    let diff = (ours - reference).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    let scale = reference.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1e-6);
    diff / scale
}

fn reference_act(xs: &Tensor, act: Act) -> Result<Tensor> {
    match act {
        Act::Identity => Ok(xs.clone()),
        Act::Relu => xs.relu(),
        Act::LeakyRelu => candle_nn::ops::leaky_relu(xs, 0.01),
        Act::Sigmoid => candle_nn::ops::sigmoid(xs),
        Act::Tanh => xs.tanh(),
    }
}

/// Runs `ours` and `reference` on the same variables, checks the outputs, then the
/// gradients of `sum(out ⊙ r)` for a random `r` with respect to every variable.
fn check(what: &str, vars: &[&Var], ours: &Tensor, reference: &Tensor, rng: &mut ChaCha8Rng) {
    let r = rel(ours, reference);
    assert!(r < TOL, "{what}: forward differs by {r}");
    let weights = random(rng, ours.dims());
    let g_ours = (ours * &weights).unwrap().sum_all().unwrap().backward().unwrap();
    let g_ref = (reference * &weights).unwrap().sum_all().unwrap().backward().unwrap();
    for (i, v) in vars.iter().enumerate() {
        let a = g_ours.get(v.as_tensor()).unwrap_or_else(|| panic!("{what}: no gradient for input {i}"));
        let b = g_ref.get(v.as_tensor()).unwrap_or_else(|| panic!("{what}: candle gives no gradient for input {i}"));
        let r = rel(a, b);
        assert!(r < TOL, "{what}: gradient of input {i} differs by {r}");
    }
}

#[test]
fn linear_matches_candle_forward_and_backward() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for act in ACTS {
        let (x, w, b) = (var(&mut rng, &[37, 23]), var(&mut rng, &[11, 23]), var(&mut rng, &[11]));
        let ours = linear(&x, &w, &b, act).unwrap();
        let reference = reference_act(&x.matmul(&w.t().unwrap()).unwrap().broadcast_add(&b).unwrap(), act).unwrap();
        check(&format!("linear {act:?}"), &[&x, &w, &b], &ours, &reference, &mut rng);
    }
}

#[test]
fn linear_flattens_its_input_and_lays_out_its_output_as_asked() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    // A `[n, c, h, w]` input taken as `[n, c·h·w]`, the output as `[n, 2, 3, 2]`: the
    // same values and gradients (the input's in its own shape) as flatten → linear → reshape.
    let (x, w, b) = (var(&mut rng, &[9, 2, 3, 4]), var(&mut rng, &[12, 24]), var(&mut rng, &[12]));
    let ours = linear_to(&x, &w, &b, Act::Tanh, (9, 2, 3, 2)).unwrap();
    let flat = x.flatten_from(1).unwrap().matmul(&w.t().unwrap()).unwrap().broadcast_add(&b).unwrap();
    let reference = reference_act(&flat, Act::Tanh).unwrap().reshape((9, 2, 3, 2)).unwrap();
    check("linear_to", &[&x, &w, &b], &ours, &reference, &mut rng);
    assert_eq!(linear(&x, &w, &b, Act::Tanh).unwrap().dims(), &[9, 12]);
    let err = linear_to(&x, &w, &b, Act::Tanh, (9, 13)).unwrap_err().to_string();
    assert!(err.contains("does not hold [9, 12]"), "{err}");
    let err = linear(&x, &var(&mut rng, &[12, 23]), &b, Act::Tanh).unwrap_err().to_string();
    assert!(err.contains("do not fit"), "{err}");
}

#[test]
fn linear_skips_the_gradient_of_an_input_that_needs_none() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let data = random(&mut rng, &[8, 5]);
    let (w, b) = (var(&mut rng, &[3, 5]), var(&mut rng, &[3]));
    let grads = linear(&data, &w, &b, Act::Relu).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&data).is_none());
    assert!(grads.get(w.as_tensor()).is_some() && grads.get(b.as_tensor()).is_some());
}

#[test]
fn conv2d_matches_candle_forward_and_backward() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // (input [n, c, h, w], out channels, kernel, stride, padding): odd sizes, partial
    // groups, stride 1, 2 and 3, kernels 1, 3, 5. (Candle's own conv2d backward cannot do
    // heights and widths whose strided sizes differ in parity, e.g. 9×8 at stride 2.)
    let cases = [
        ([5, 3, 9, 7], 4, 3, 2, 1),
        ([3, 2, 7, 7], 5, 3, 1, 1),
        ([4, 3, 11, 9], 2, 5, 2, 2),
        ([2, 4, 6, 5], 3, 1, 1, 0),
        ([70, 1, 28, 28], 8, 3, 2, 1),
        ([3, 2, 10, 10], 3, 3, 3, 1),
    ];
    for (i, (xd, o, k, stride, padding)) in cases.into_iter().enumerate() {
        let act = ACTS[i % ACTS.len()];
        let (x, w, b) = (var(&mut rng, &xd), var(&mut rng, &[o, xd[1], k, k]), var(&mut rng, &[o]));
        let ours = conv2d(&x, &w, &b, Conv2dParams { stride, padding, act }).unwrap();
        let conv = x.conv2d(&w, padding, stride, 1, 1).unwrap();
        let reference = reference_act(&conv.broadcast_add(&b.reshape((1, o, 1, 1)).unwrap()).unwrap(), act).unwrap();
        check(&format!("conv2d case {i} {act:?}"), &[&x, &w, &b], &ours, &reference, &mut rng);
    }
}

#[test]
fn conv_transpose2d_matches_candle_forward_and_backward() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    // (input, out channels, kernel, stride, padding, output padding): strides 1, 2 and 3
    let cases = [
        ([5, 4, 5, 4], 3, 3, 2, 1, 1),
        ([3, 2, 7, 7], 5, 3, 2, 1, 0),
        ([4, 3, 4, 6], 2, 5, 2, 2, 1),
        ([2, 3, 5, 5], 4, 3, 1, 1, 0),
        ([70, 8, 14, 14], 1, 3, 2, 1, 1),
        ([2, 3, 4, 4], 2, 3, 3, 1, 2),
    ];
    for (i, (xd, co, k, stride, padding, output_padding)) in cases.into_iter().enumerate() {
        let act = ACTS[(i + 2) % ACTS.len()];
        let (x, w, b) = (var(&mut rng, &xd), var(&mut rng, &[xd[1], co, k, k]), var(&mut rng, &[co]));
        let p = ConvTranspose2dParams { stride, padding, output_padding, act };
        let ours = conv_transpose2d(&x, &w, &b, p).unwrap();
        let conv = x.conv_transpose2d(&w, padding, output_padding, stride, 1).unwrap();
        let reference = reference_act(&conv.broadcast_add(&b.reshape((1, co, 1, 1)).unwrap()).unwrap(), act).unwrap();
        check(&format!("conv_transpose2d case {i} {act:?}"), &[&x, &w, &b], &ours, &reference, &mut rng);
    }
}

#[test]
fn convolutions_reject_shapes_that_do_not_fit() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (x, w, b) = (random(&mut rng, &[2, 3, 8, 8]), random(&mut rng, &[4, 2, 3, 3]), random(&mut rng, &[4]));
    let err = conv2d(&x, &w, &b, Conv2dParams { stride: 1, padding: 1, act: Act::Relu }).unwrap_err();
    assert!(err.to_string().contains("do not fit"), "{err}");
    let w = random(&mut rng, &[3, 4, 3, 3]);
    let p = ConvTranspose2dParams { stride: 2, padding: 1, output_padding: 2, act: Act::Relu };
    let err = conv_transpose2d(&x, &w, &b, p).unwrap_err();
    assert!(err.to_string().contains("smaller than the stride"), "{err}");
}

#[test]
fn mse_matches_candle_forward_and_backward() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let (a, b) = (var(&mut rng, &[9, 1, 4, 4]), var(&mut rng, &[9, 1, 4, 4]));
    let ours = mse(&a, &b).unwrap();
    let reference = (a.as_tensor() - b.as_tensor()).unwrap().sqr().unwrap().mean_all().unwrap();
    check("mse", &[&a, &b], &ours, &reference, &mut rng);
}

#[test]
fn bernoulli_nll_matches_candle_forward_and_backward() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // A small batch (one partial run of SIMD lanes) and one of several parallel blocks
    // with a ragged last one.
    for dims in [[6, 1, 5, 5], [5, 3, 61, 67]] {
        // Logits of either sign and size, grey targets in [0, 1].
        let l = Var::from_tensor(&(random(&mut rng, &dims) * 8.0).unwrap()).unwrap();
        let x = Var::from_tensor(&random(&mut rng, &dims).affine(0.5, 0.5).unwrap()).unwrap();
        let ours = bernoulli_nll(&l, &x).unwrap();
        // softplus(l) − x·l with candle's ops: max(l, 0) + log(1 + e^(−|l|)) − x·l.
        let lt = l.as_tensor();
        let softplus = (lt.relu().unwrap()
            + lt.abs().unwrap().neg().unwrap().exp().unwrap().affine(1.0, 1.0).unwrap().log().unwrap())
        .unwrap();
        let per = (softplus - (x.as_tensor() * lt).unwrap()).unwrap();
        let reference = per.flatten_from(1).unwrap().sum(1).unwrap().mean_all().unwrap();
        check("bernoulli_nll", &[&l, &x], &ours, &reference, &mut rng);
    }
}

/// The textbook updates in f64, for comparison.
fn adam_reference(p: &[f32], g: &[f32], steps: i32, decoupled: bool) -> Vec<f64> {
    let (lr, b1, b2, eps, wd) = (1e-2f64, 0.9f64, 0.999f64, 1e-8f64, 0.1f64);
    let mut theta: Vec<f64> = p.iter().map(|&x| f64::from(x)).collect();
    let (mut m, mut v) = (vec![0f64; p.len()], vec![0f64; p.len()]);
    for t in 1..=steps {
        for i in 0..p.len() {
            let mut gi = f64::from(g[i]) * 0.5;
            if !decoupled {
                gi += wd * theta[i];
            }
            m[i] = b1 * m[i] + (1.0 - b1) * gi;
            v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
            let upd = (m[i] / (1.0 - b1.powi(t))) / ((v[i] / (1.0 - b2.powi(t))).sqrt() + eps);
            if decoupled {
                theta[i] *= 1.0 - lr * wd;
            }
            theta[i] -= lr * upd;
        }
    }
    theta
}

#[test]
fn adam_and_adamw_steps_match_the_textbook_update() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // Large enough for the parallel path.
    for n in [10, 100_000] {
        let p0 = random(&mut rng, &[n]);
        let g = random(&mut rng, &[n]);
        for decoupled in [true, false] {
            let p = Var::from_tensor(&p0.copy().unwrap()).unwrap();
            let (mut m, mut v) = (vec![0f32; n], vec![0f32; n]);
            for t in 1..=3 {
                let step = AdamStep {
                    lr: 1e-2,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.1,
                    decoupled,
                    bias_correction1: 1.0 - 0.9f32.powi(t),
                    bias_correction2: 1.0 - 0.999f32.powi(t),
                    scale: 0.5,
                    m: (&mut m[..]).into(),
                    v: (&mut v[..]).into(),
                };
                p.as_tensor().inplace_op2(&g, &step).unwrap();
            }
            let want = adam_reference(&p0.to_vec1().unwrap(), &g.to_vec1().unwrap(), 3, decoupled);
            let got: Vec<f32> = p.as_tensor().to_vec1().unwrap();
            for (a, b) in got.iter().zip(&want) {
                assert!((f64::from(*a) - b).abs() < 1e-5, "decoupled={decoupled} n={n}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn sgd_step_matches_the_textbook_update() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let p0 = random(&mut rng, &[50_000]);
    let g = random(&mut rng, &[50_000]);
    let p = Var::from_tensor(&p0.copy().unwrap()).unwrap();
    let mut buf = vec![0f32; 50_000];
    for first in [true, false] {
        let step =
            SgdStep { lr: 0.1, momentum: 0.9, weight_decay: 0.01, first, scale: 1.0, buf: (&mut buf[..]).into() };
        p.as_tensor().inplace_op2(&g, &step).unwrap();
    }
    let (p0, g): (Vec<f32>, Vec<f32>) = (p0.to_vec1().unwrap(), g.to_vec1().unwrap());
    let got: Vec<f32> = p.as_tensor().to_vec1().unwrap();
    for i in 0..p0.len() {
        let g1 = g[i] + 0.01 * p0[i];
        let p1 = p0[i] - 0.1 * g1;
        let b2 = 0.9 * g1 + g[i] + 0.01 * p1;
        let want = p1 - 0.1 * b2;
        assert!((got[i] - want).abs() < 1e-5, "{} vs {want}", got[i]);
    }
}
