//! Baldi & Hornik (1989): a linear autoencoder's optimum spans the top-k principal
//! subspace, so its reconstruction error converges to PCA's. The PCA here is computed in
//! the test with nalgebra's symmetric eigendecomposition, not taken from our own output.

mod common;

use bottleneck_data::{Batcher, Split};
use bottleneck_models::loss::scalar;
use bottleneck_models::{Activation, ModelConfig};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use common::{fashion, loss, model, values};
use nalgebra::{DMatrix, SymmetricEigen};

const N: usize = 5000;
const K: usize = 8;
const D: usize = 784;

/// Mean squared error per element of the best rank-K affine reconstruction: the sum of
/// the covariance eigenvalues beyond the K largest, over D.
fn pca_mse(data: &[f32]) -> f64 {
    let x = DMatrix::<f64>::from_row_iterator(N, D, data.iter().map(|&v| f64::from(v)));
    let mean = x.row_mean();
    let mut centred = x;
    for mut row in centred.row_iter_mut() {
        row -= &mean;
    }
    let cov = centred.transpose() * &centred / N as f64;
    let mut eig: Vec<f64> = SymmetricEigen::new(cov).eigenvalues.iter().copied().collect();
    eig.sort_by(|a, b| b.total_cmp(a));
    eig[K..].iter().sum::<f64>() / D as f64
}

#[test]
fn linear_autoencoder_reaches_the_pca_error() {
    let xs = fashion(N);
    let t = std::time::Instant::now();
    let pca = pca_mse(&values(&xs));
    eprintln!("PCA in {:.1} s", t.elapsed().as_secs_f64());
    let cfg = ModelConfig {
        hidden: vec![],
        latent_dim: K,
        activation: Activation::Identity,
        output_activation: Activation::Identity,
        ..ModelConfig::default()
    };
    let (ae, map) = model(&cfg, &[1, 28, 28], 0);
    let split = Split::new(xs.clone(), None).unwrap();
    let mut opt =
        AdamW::new(map.all_vars(), ParamsAdamW { lr: 3e-3, weight_decay: 0.0, ..Default::default() }).unwrap();
    for epoch in 0..80 {
        // Step the learning rate down at the end so the last steps settle.
        opt.set_learning_rate(match epoch {
            0..60 => 3e-3,
            60..70 => 1e-3,
            _ => 3e-4,
        });
        for batch in Batcher::new(&split, 250).shuffled(0, epoch as u64) {
            let loss = loss(ae.as_ref(), &batch.unwrap().xs, true, 0);
            opt.backward_step(&loss).unwrap();
        }
    }
    let ours = scalar(&loss(ae.as_ref(), &xs, false, 0)).unwrap();
    let ratio = ours / pca;
    eprintln!("linear AE MSE {ours:.6}, PCA MSE {pca:.6}, ratio {ratio:.4}");
    assert!(ratio <= 1.03, "linear AE {ours} is not within 3% of PCA {pca}");
    // Nothing linear beats PCA on its own data; a ratio well below 1 means a wrong PCA.
    assert!(ratio >= 0.999, "linear AE {ours} below the PCA optimum {pca}?");
}
