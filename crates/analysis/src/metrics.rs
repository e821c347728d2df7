//! What a code keeps, measured: linear-probe accuracy (multinomial logistic regression on
//! training codes, scored on test codes), k-nearest-neighbour accuracy, and
//! trustworthiness (Venna & Kaski 2001): how far the code's nearest neighbours were from
//! each other in the input space.

use candle_core::{DType, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer as _, ParamsAdamW};
use rayon::prelude::*;

use crate::error::Result;
use crate::pca::sq_distances;

/// Training codes the probe and kNN use (a seeded subsample of the training split).
pub const PROBE_TRAIN: usize = 10_000;
/// Test codes the probe and kNN are scored on.
pub const PROBE_TEST: usize = 10_000;
/// Points in the trustworthiness estimate.
pub const TRUST_POINTS: usize = 1_000;
/// Neighbours for kNN accuracy and trustworthiness.
pub const NEIGHBOURS: usize = 5;

/// Labelled features: `[n, d]` and one label per row.
#[derive(Debug, Clone)]
pub struct Labelled {
    /// Features.
    pub xs: Tensor,
    /// Labels.
    pub ys: Vec<u32>,
}

/// Test accuracy of a softmax regression fitted on `train` (features standardised with
/// the training statistics; full-batch Adam, 300 steps, a small L2 penalty).
pub fn linear_probe(train: &Labelled, test: &Labelled) -> Result<f64> {
    let classes = train.ys.iter().chain(&test.ys).copied().max().map_or(1, |m| m as usize + 1);
    let dev = train.xs.device().clone();
    // Features are data: no gradient flows back into whatever produced them.
    let x = train.xs.detach().to_dtype(DType::F32)?;
    let mean = x.mean_keepdim(0)?;
    let std = (x.broadcast_sub(&mean)?.sqr()?.mean_keepdim(0)? + 1e-8)?.sqrt()?;
    let norm =
        |t: &Tensor| -> Result<Tensor> { Ok(t.to_dtype(DType::F32)?.broadcast_sub(&mean)?.broadcast_div(&std)?) };
    let (xtr, xte) = (norm(&x)?, norm(&test.xs.detach())?);
    let d = xtr.dim(1)?;
    let w = Var::zeros((d, classes), DType::F32, &dev)?;
    let b = Var::zeros(classes, DType::F32, &dev)?;
    let ytr = Tensor::new(train.ys.as_slice(), &dev)?;
    let params = ParamsAdamW { lr: 0.05, weight_decay: 0.0, ..ParamsAdamW::default() };
    let mut opt = AdamW::new(vec![w.clone(), b.clone()], params)?;
    for _ in 0..300 {
        let logits = xtr.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())?;
        let loss = (candle_nn::loss::cross_entropy(&logits, &ytr)? + (w.as_tensor().sqr()?.sum_all()? * 1e-4)?)?;
        opt.backward_step(&loss)?;
    }
    let pred: Vec<u32> = xte.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())?.argmax(D::Minus1)?.to_vec1()?;
    Ok(accuracy(&pred, &test.ys))
}

fn accuracy(pred: &[u32], truth: &[u32]) -> f64 {
    let right = pred.iter().zip(truth).filter(|(p, t)| p == t).count();
    right as f64 / truth.len().max(1) as f64
}

/// Accuracy of a majority vote among the `NEIGHBOURS` nearest training codes (ties go
/// to the nearest neighbour's class).
pub fn knn_accuracy(train: &Labelled, test: &Labelled) -> Result<f64> {
    let classes = train.ys.iter().copied().max().map_or(1, |m| m as usize + 1);
    let xtr = train.xs.to_dtype(DType::F32)?;
    let n = test.xs.dim(0)?;
    let mut pred = Vec::with_capacity(n);
    for start in (0..n).step_by(500) {
        let len = 500.min(n - start);
        let d: Vec<Vec<f32>> = sq_distances(&test.xs.narrow(0, start, len)?.to_dtype(DType::F32)?, &xtr)?.to_vec2()?;
        // The rows' votes are independent: one per rayon task, collected in order.
        pred.par_extend(d.par_iter().map(|row| {
            let near = nearest(row, NEIGHBOURS, None);
            let mut votes = vec![0usize; classes];
            for &j in &near {
                votes[train.ys[j] as usize] += 1;
            }
            let top = votes.iter().copied().max().unwrap_or(0);
            // Among the classes with the most votes, the one of the closest neighbour.
            near.iter().map(|&j| train.ys[j]).find(|&c| votes[c as usize] == top).unwrap_or(0)
        }));
    }
    Ok(accuracy(&pred, &test.ys))
}

/// Indices of the `k` smallest values of `row` (skipping `skip`), nearest first.
fn nearest(row: &[f32], k: usize, skip: Option<usize>) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).filter(|&j| Some(j) != skip).collect();
    let k = k.min(idx.len());
    if k == 0 {
        return Vec::new();
    }
    idx.select_nth_unstable_by(k - 1, |&a, &b| row[a].total_cmp(&row[b]).then(a.cmp(&b)));
    idx.truncate(k);
    idx.sort_by(|&a, &b| row[a].total_cmp(&row[b]).then(a.cmp(&b)));
    idx
}

/// Trustworthiness of the embedding `low` of the points `high` (rows of each) with `k`
/// neighbours: 1 − 2 / (n k (2n − 3k − 1)) · Σᵢ Σ_{j ∈ Uₖ(i)} (r(i, j) − k), where Uₖ(i)
/// are the embedding's k nearest neighbours of i that are not among its k nearest in the
/// input space and r(i, j) is j's rank among i's neighbours in the input space.
pub fn trustworthiness(high: &Tensor, low: &Tensor, k: usize) -> Result<f64> {
    let n = high.dim(0)?;
    if n < 3 * k + 2 {
        return Ok(f64::NAN);
    }
    let dh: Vec<Vec<f32>> = sq_distances(&high.to_dtype(DType::F32)?, &high.to_dtype(DType::F32)?)?.to_vec2()?;
    let dl: Vec<Vec<f32>> = sq_distances(&low.to_dtype(DType::F32)?, &low.to_dtype(DType::F32)?)?.to_vec2()?;
    // Each point's penalty on its own rayon task; integer sums, so the total does not
    // depend on how the points were split.
    let penalty: u64 = (0..n)
        .into_par_iter()
        .map_init(
            || vec![0usize; n],
            |rank, i| {
                // Ranks in the input space: 1 for the nearest other point.
                let mut order: Vec<usize> = (0..n).filter(|&j| j != i).collect();
                order.sort_by(|&a, &b| dh[i][a].total_cmp(&dh[i][b]).then(a.cmp(&b)));
                for (r, &j) in order.iter().enumerate() {
                    rank[j] = r + 1;
                }
                nearest(&dl[i], k, Some(i))
                    .into_iter()
                    .filter(|&j| rank[j] > k)
                    .map(|j| (rank[j] - k) as u64)
                    .sum::<u64>()
            },
        )
        .sum();
    let (nf, kf) = (n as f64, k as f64);
    Ok(1.0 - 2.0 / (nf * kf * (2.0 * nf - 3.0 * kf - 1.0)) * penalty as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn points(rows: &[[f32; 2]]) -> Tensor {
        Tensor::from_vec(rows.iter().flatten().copied().collect::<Vec<_>>(), (rows.len(), 2), &Device::Cpu).unwrap()
    }

    #[test]
    fn separable_classes_are_probed_and_voted_right() {
        let mut rows = Vec::new();
        let mut ys = Vec::new();
        for i in 0..60 {
            let c = i % 3;
            let t = (i / 3) as f32 * 0.05;
            rows.push([c as f32 * 4.0 + t, (c as f32 - 1.0) * 3.0 - t]);
            ys.push(c as u32);
        }
        let data = Labelled { xs: points(&rows), ys };
        assert!((linear_probe(&data, &data).unwrap() - 1.0).abs() < 1e-12);
        assert!((knn_accuracy(&data, &data).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn an_isometry_is_perfectly_trustworthy_and_a_shuffle_is_not() {
        let rows: Vec<[f32; 2]> =
            (0..40).map(|i| [(i as f32 * 0.37).sin() * 5.0, (i as f32 * 0.91).cos() * 3.0]).collect();
        let x = points(&rows);
        let moved: Vec<[f32; 2]> = rows.iter().map(|r| [r[0] + 10.0, r[1] - 2.0]).collect();
        assert!((trustworthiness(&x, &points(&moved), 5).unwrap() - 1.0).abs() < 1e-12);
        let mut shuffled = rows.clone();
        shuffled.reverse();
        shuffled.rotate_left(7);
        let t = trustworthiness(&x, &points(&shuffled), 5).unwrap();
        assert!(t < 0.8, "{t}");
    }

    /// Trustworthiness written out independently: ranks by counting closer points, the
    /// embedding's neighbours by a full sort.
    fn naive_trustworthiness(high: &[Vec<f64>], low: &[Vec<f64>], k: usize) -> f64 {
        let n = high.len();
        let d = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>();
        let mut sum = 0.0;
        for i in 0..n {
            let mut by_low: Vec<usize> = (0..n).filter(|&j| j != i).collect();
            by_low.sort_by(|&a, &b| d(&low[i], &low[a]).total_cmp(&d(&low[i], &low[b])));
            for &j in &by_low[..k] {
                let r = 1 + (0..n).filter(|&l| l != i && d(&high[i], &high[l]) < d(&high[i], &high[j])).count();
                if r > k {
                    sum += (r - k) as f64;
                }
            }
        }
        1.0 - 2.0 / (n as f64 * k as f64 * (2.0 * n as f64 - 3.0 * k as f64 - 1.0)) * sum
    }

    #[test]
    fn trustworthiness_matches_an_independent_computation() {
        // 60 points in 6-D, embedded by dropping four coordinates.
        let mut x = 0x2545_f491u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            f64::from(x) / f64::from(u32::MAX) - 0.5
        };
        let high: Vec<Vec<f64>> = (0..60).map(|_| (0..6).map(|_| next()).collect()).collect();
        let low: Vec<Vec<f64>> = high.iter().map(|r| r[..2].to_vec()).collect();
        let t = |rows: &[Vec<f64>], d: usize| {
            Tensor::from_vec(
                rows.iter().flatten().map(|v| *v as f32).collect::<Vec<_>>(),
                (rows.len(), d),
                &Device::Cpu,
            )
            .unwrap()
        };
        let ours = trustworthiness(&t(&high, 6), &t(&low, 2), 5).unwrap();
        let naive = naive_trustworthiness(&high, &low, 5);
        assert!((ours - naive).abs() < 1e-9, "{ours} vs {naive}");
        assert!(ours > 0.5 && ours < 0.99, "{ours}");
    }
}
