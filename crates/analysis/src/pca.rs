//! Principal component analysis: the covariance from candle's matrix product, its
//! eigenvectors from nalgebra's symmetric eigensolver. The PCA baseline of a sweep is the
//! test reconstruction error of the best linear code of each size k.

use candle_core::{DType, Tensor, D};
use nalgebra::{DMatrix, SymmetricEigen};

use crate::error::Result;

/// A fitted PCA.
#[derive(Debug, Clone)]
pub struct Pca {
    /// The training mean, `[1, d]`.
    pub mean: Tensor,
    /// Principal directions as columns, by decreasing variance, `[d, d]`.
    pub components: Tensor,
    /// Variance along each direction (decreasing).
    pub variances: Vec<f64>,
}

impl Pca {
    /// Fits on the rows of `xs` (`[n, d]`, any float type).
    pub fn fit(xs: &Tensor) -> Result<Self> {
        let xs = xs.to_dtype(DType::F32)?;
        let (n, d) = xs.dims2()?;
        let mean = xs.mean_keepdim(0)?;
        let xc = xs.broadcast_sub(&mean)?;
        let cov = (xc.t()?.matmul(&xc)? / n.max(1) as f64)?;
        let values: Vec<f64> = cov.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        let eig = SymmetricEigen::new(DMatrix::from_row_slice(d, d, &values));
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
        let mut comps = vec![0f32; d * d];
        for (j, &src) in order.iter().enumerate() {
            for i in 0..d {
                comps[i * d + j] = eig.eigenvectors[(i, src)] as f32;
            }
        }
        let components = Tensor::from_vec(comps, (d, d), xs.device())?;
        let variances = order.iter().map(|&j| eig.eigenvalues[j].max(0.0)).collect();
        Ok(Self { mean, components, variances })
    }

    /// The first `k` coordinates of each row of `xs`, `[n, k]`.
    pub fn project(&self, xs: &Tensor, k: usize) -> Result<Tensor> {
        let xc = xs.to_dtype(DType::F32)?.broadcast_sub(&self.mean)?;
        Ok(xc.matmul(&self.components.narrow(1, 0, k)?.contiguous()?)?)
    }

    /// Mean squared reconstruction error per element of `xs` (`[n, d]`) when each row is
    /// reconstructed from its first `k` components, for every `k` in `ks`.
    pub fn mse_by_k(&self, xs: &Tensor, ks: &[usize]) -> Result<Vec<f64>> {
        let xc = xs.to_dtype(DType::F32)?.broadcast_sub(&self.mean)?;
        let (n, d) = xc.dims2()?;
        let total: f64 = xc.sqr()?.to_dtype(DType::F64)?.sum_all()?.to_scalar()?;
        // Energy along each component; the error of a k-code is what the first k miss.
        let energy: Vec<f64> = xc.matmul(&self.components)?.sqr()?.to_dtype(DType::F64)?.sum(0)?.to_vec1()?;
        let denom = (n * d).max(1) as f64;
        Ok(ks
            .iter()
            .map(|&k| {
                let kept: f64 = energy.iter().take(k.min(d)).sum();
                ((total - kept) / denom).max(0.0)
            })
            .collect())
    }
}

/// Squared Euclidean distances between the rows of `a` (`[n, d]`) and `b` (`[m, d]`).
pub fn sq_distances(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let an = a.sqr()?.sum_keepdim(D::Minus1)?;
    let bn = b.sqr()?.sum_keepdim(D::Minus1)?.t()?;
    let ab = a.matmul(&b.t()?)?;
    Ok(an.broadcast_add(&bn)?.broadcast_sub(&(ab * 2.0)?)?.relu()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn pca_recovers_a_planted_direction_and_its_error() {
        // Points on a line along (3, 4)/5 plus a small orthogonal wiggle.
        let n = 200;
        let mut v = Vec::new();
        for i in 0..n {
            let t = i as f32 / 10.0 - 10.0;
            let w = if i % 2 == 0 { 0.1 } else { -0.1 };
            v.extend([0.6 * t - 0.8 * w + 1.0, 0.8 * t + 0.6 * w - 2.0]);
        }
        let xs = Tensor::from_vec(v, (n, 2), &Device::Cpu).unwrap();
        let pca = Pca::fit(&xs).unwrap();
        let c: Vec<Vec<f32>> = pca.components.to_vec2().unwrap();
        assert!((c[0][0].abs() - 0.6).abs() < 1e-3 && (c[1][0].abs() - 0.8).abs() < 1e-3, "{c:?}");
        let mse = pca.mse_by_k(&xs, &[0, 1, 2]).unwrap();
        // Keeping the line leaves the wiggle: 0.1² per point over 2 elements.
        assert!((mse[1] - 0.005).abs() < 1e-4, "{mse:?}");
        assert!(mse[2].abs() < 1e-6 && mse[0] > mse[1], "{mse:?}");
    }

    #[test]
    fn the_pca_error_matches_the_singular_values() {
        // Error of a rank-k reconstruction = the squared singular values beyond k of the
        // centred data, per element (Eckart–Young), computed here with nalgebra's SVD.
        let (n, d) = (50, 7);
        let mut s = 17u32;
        let vals: Vec<f32> = (0..n * d)
            .map(|i| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 * (1.0 + (i % d) as f32)
            })
            .collect();
        let xs = Tensor::from_vec(vals.clone(), (n, d), &Device::Cpu).unwrap();
        let ours = Pca::fit(&xs).unwrap().mse_by_k(&xs, &[1, 3, 5]).unwrap();
        let m = DMatrix::from_row_slice(n, d, &vals.iter().map(|v| f64::from(*v)).collect::<Vec<_>>());
        let mean = m.row_mean();
        let centred = DMatrix::from_fn(n, d, |i, j| m[(i, j)] - mean[j]);
        let mut sv: Vec<f64> = centred.svd(false, false).singular_values.iter().copied().collect();
        sv.sort_by(|a, b| b.total_cmp(a));
        for (k, got) in [1, 3, 5].iter().zip(&ours) {
            let want: f64 = sv[*k..].iter().map(|s| s * s).sum::<f64>() / (n * d) as f64;
            assert!((got - want).abs() < 1e-4 * want.max(1e-6), "k={k}: {got} vs {want}");
        }
    }
}
