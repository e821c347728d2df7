//! Principal component analysis, in passes over the rows a chunk at a time (the data is
//! never materialised as one f32 matrix). Up to [`EXACT_MAX_FEATURES`] features every
//! component comes from the covariance's eigendecomposition (nalgebra's symmetric
//! eigensolver, O(d³)); above that, when only the leading components are wanted (a sweep's
//! baseline needs k ≤ its largest k), they come from randomized subspace iteration
//! (Halko, Martinsson & Tropp 2011, algorithm 4.4 with a Rayleigh–Ritz step), whose passes
//! cost n·d·l instead of n·d² and whose eigenproblem is l × l. The PCA baseline of a sweep
//! is the test reconstruction error of the best linear code of each size k.

use candle_core::{DType, Device, Tensor, D};
use nalgebra::{DMatrix, SymmetricEigen};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{AnalysisError, Result};

/// Rows a pass reads at a time: at most 4,096, fewer for wide rows (about 4 Mi values a
/// chunk, at least 64 rows).
fn chunk_rows(d: usize) -> usize {
    ((1 << 22) / d.max(1)).clamp(64, 4096)
}
/// Up to this many features the PCA is exact (all components). nalgebra's eigensolver
/// took 0.3 s at 784 features and 7.8 s at 2,048 on a 2-core AMD EPYC (2026-12-05), and its
/// time grows with the cube: the exact PCA of 3,072 features (32×32 RGB) took 42 s there
/// against 4.8 s randomized, and 64×64 RGB images' 12,288 would take most of an hour.
pub const EXACT_MAX_FEATURES: usize = 2048;
/// Power iterations of the randomized PCA (each one pass over the data).
pub const POWER_ITERATIONS: usize = 8;

/// The rows of an `[n, d]` data matrix, read `[len, d]` (f32) a chunk at a time.
pub struct Rows<'a> {
    /// Rows.
    pub n: usize,
    /// Features.
    pub d: usize,
    read: Box<dyn Fn(usize, usize) -> Result<Tensor> + 'a>,
}

impl<'a> Rows<'a> {
    /// `n` rows of `d` features; `read(start, len)` gives rows `start..start + len` as a
    /// `[len, d]` tensor.
    pub fn new(n: usize, d: usize, read: impl Fn(usize, usize) -> Result<Tensor> + 'a) -> Self {
        Self { n, d, read: Box::new(read) }
    }

    /// The rows of a `[n, d]` tensor (any float type).
    pub fn of_tensor(xs: &'a Tensor) -> Result<Self> {
        let (n, d) = xs.dims2()?;
        Ok(Self::new(n, d, move |start, len| Ok(xs.narrow(0, start, len)?.to_dtype(DType::F32)?)))
    }

    /// `f(chunk)` for each chunk of rows in order, `chunk` as f32 `[len, d]` with `mean`
    /// subtracted when there is one.
    fn for_each_chunk(&self, mean: Option<&Tensor>, mut f: impl FnMut(&Tensor) -> Result<()>) -> Result<()> {
        let chunk = chunk_rows(self.d);
        for start in (0..self.n).step_by(chunk) {
            let len = chunk.min(self.n - start);
            let xs = (self.read)(start, len)?;
            if xs.dims2()? != (len, self.d) {
                return Err(pca_error(format!("rows {start}.. came back as {:?}, not [{len}, {}]", xs.dims(), self.d)));
            }
            let xs = xs.to_dtype(DType::F32)?;
            f(&match mean {
                Some(m) => xs.broadcast_sub(m)?,
                None => xs,
            })?;
        }
        Ok(())
    }

    /// The column means, `[1, d]` (summed in f64 over the chunks).
    fn mean(&self) -> Result<Tensor> {
        let mut sum = vec![0f64; self.d];
        self.for_each_chunk(None, |xs| {
            let s: Vec<f32> = xs.sum(0)?.to_vec1()?;
            sum.iter_mut().zip(s).for_each(|(t, v)| *t += f64::from(v));
            Ok(())
        })?;
        let n = self.n.max(1) as f64;
        Ok(Tensor::from_vec(sum.iter().map(|s| (s / n) as f32).collect::<Vec<_>>(), (1, self.d), &Device::Cpu)?)
    }

    /// `Σ xcᵀ (xc · V) / n` over the centred rows — the covariance times `V` (`[d, l]`),
    /// accumulated in f64 — and, with `want_total`, the total variance `Σ ‖xc‖² / n` (else 0:
    /// the randomized iteration's inner passes do not need it).
    fn covariance_times(&self, mean: &Tensor, v: Option<&Tensor>, want_total: bool) -> Result<(DMatrix<f64>, f64)> {
        let l = match v {
            Some(v) => v.dim(1)?,
            None => self.d,
        };
        let mut acc = vec![0f64; self.d * l];
        let mut total = 0f64;
        self.for_each_chunk(Some(mean), |xc| {
            let part = match v {
                Some(v) => xc.t()?.matmul(&xc.matmul(v)?)?,
                None => xc.t()?.matmul(xc)?,
            };
            let part: Vec<f32> = part.flatten_all()?.to_vec1()?;
            acc.iter_mut().zip(part).for_each(|(a, p)| *a += f64::from(p));
            if want_total {
                total += xc.sqr()?.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
            }
            Ok(())
        })?;
        let n = self.n.max(1) as f64;
        Ok((DMatrix::from_row_slice(self.d, l, &acc) / n, total / n))
    }
}

/// A fitted PCA.
#[derive(Debug, Clone)]
pub struct Pca {
    /// The training mean, `[1, d]`.
    pub mean: Tensor,
    /// The leading principal directions as columns, by decreasing variance, `[d, m]`:
    /// all `d` for an exact fit, the `keep` asked for otherwise.
    pub components: Tensor,
    /// Variance along each kept direction (decreasing).
    pub variances: Vec<f64>,
    /// The total variance (the covariance's trace), kept directions or not.
    pub total_variance: f64,
    /// Whether the components come from randomized subspace iteration.
    pub randomized: bool,
}

impl Pca {
    /// Every component of the rows of `xs` (`[n, d]`, any float type), exactly.
    pub fn fit(xs: &Tensor) -> Result<Self> {
        Self::exact(&Rows::of_tensor(xs)?)
    }

    /// The `keep` leading components of `rows` (all of them with `None`): exact up to
    /// [`EXACT_MAX_FEATURES`] features, or when `keep` is more than half of them;
    /// randomized otherwise.
    pub fn fit_rows(rows: &Rows<'_>, keep: Option<usize>) -> Result<Self> {
        match keep {
            Some(k) if rows.d > EXACT_MAX_FEATURES && 2 * k < rows.d => Self::randomized(rows, k, POWER_ITERATIONS, 0),
            _ => Self::exact(rows),
        }
    }

    /// Every component, from the eigendecomposition of the covariance (accumulated in
    /// f64 over chunks of rows).
    pub fn exact(rows: &Rows<'_>) -> Result<Self> {
        let mean = rows.mean()?;
        let (cov, total_variance) = rows.covariance_times(&mean, None, true)?;
        let eig = SymmetricEigen::new(cov);
        let (components, variances) = sorted_columns(&eig.eigenvectors, eig.eigenvalues.as_slice(), rows.d)?;
        Ok(Self { mean, components, variances, total_variance, randomized: false })
    }

    /// The `keep` leading components by randomized subspace iteration: a random
    /// `[d, l]` start (`l = keep + keep/2 + 10`, at most `d`, drawn from `seed`),
    /// `iterations` products with the covariance each followed by an orthonormalisation
    /// (QR), then the eigenvectors of the covariance restricted to that subspace. Each
    /// product is one pass over the rows. The variance captured by the first k components
    /// can only fall short of the exact PCA's, and the shortfall shrinks geometrically
    /// with the iterations.
    pub fn randomized(rows: &Rows<'_>, keep: usize, iterations: usize, seed: u64) -> Result<Self> {
        let d = rows.d;
        let keep = keep.clamp(1, d.max(1));
        let l = (keep + keep / 2 + 10).min(d);
        let mean = rows.mean()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut v = orthonormal(DMatrix::from_fn(d, l, |_, _| rng.random_range(-1.0..1.0)));
        for _ in 0..iterations {
            v = orthonormal(rows.covariance_times(&mean, Some(&to_tensor(&v)?), false)?.0);
        }
        // Rayleigh–Ritz: the covariance on span(V) is Vᵀ C V (l × l); its eigenvectors,
        // taken back through V, are the components.
        let (cv, total_variance) = rows.covariance_times(&mean, Some(&to_tensor(&v)?), true)?;
        let small = v.transpose() * cv;
        let eig = SymmetricEigen::new((&small + small.transpose()) * 0.5);
        let (components, variances) = sorted_columns(&(v * eig.eigenvectors), eig.eigenvalues.as_slice(), keep)?;
        Ok(Self { mean, components, variances, total_variance, randomized: true })
    }

    /// Components kept (`m`).
    #[must_use]
    pub fn kept(&self) -> usize {
        self.variances.len()
    }

    /// The first `k` coordinates of each row of `xs`, `[n, k]`.
    pub fn project(&self, xs: &Tensor, k: usize) -> Result<Tensor> {
        self.check_k(k)?;
        let xc = xs.to_dtype(DType::F32)?.broadcast_sub(&self.mean)?;
        Ok(xc.matmul(&self.components.narrow(1, 0, k)?.contiguous()?)?)
    }

    /// [`Pca::project`] of every row of `rows` for each `k` in `ks` (`[n, k]` each, in the
    /// order of `ks`), in one pass over the rows a chunk at a time: they are never one f32
    /// matrix (10,000 rows of 64×64 RGB pixels are 492 MB as f32, their coordinates 2.6 MB
    /// at k = 64). Each k has its own product, so the codes are those of `project` to the bit.
    pub fn project_rows(&self, rows: &Rows<'_>, ks: &[usize]) -> Result<Vec<Tensor>> {
        let directions = ks
            .iter()
            .map(|&k| {
                self.check_k(k)?;
                Ok(self.components.narrow(1, 0, k)?.contiguous()?)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut parts = vec![Vec::with_capacity(rows.n.div_ceil(chunk_rows(rows.d))); ks.len()];
        rows.for_each_chunk(Some(&self.mean), |xc| {
            for (part, c) in parts.iter_mut().zip(&directions) {
                part.push(xc.matmul(c)?);
            }
            Ok(())
        })?;
        parts
            .iter()
            .zip(ks)
            .map(|(part, &k)| {
                if part.is_empty() {
                    return Ok(Tensor::zeros((0, k), DType::F32, &Device::Cpu)?);
                }
                Ok(Tensor::cat(part, 0)?)
            })
            .collect()
    }

    /// An error unless the fit kept at least `k` components.
    fn check_k(&self, k: usize) -> Result<()> {
        if k > self.kept() {
            return Err(pca_error(format!("{k} coordinates asked of a PCA that kept {} components", self.kept())));
        }
        Ok(())
    }

    /// Mean squared reconstruction error per element of `xs` (`[n, d]`) when each row is
    /// reconstructed from its first `k` components, for every `k` in `ks`.
    pub fn mse_by_k(&self, xs: &Tensor, ks: &[usize]) -> Result<Vec<f64>> {
        self.mse_by_k_rows(&Rows::of_tensor(xs)?, ks)
    }

    /// [`Pca::mse_by_k`] over rows read a chunk at a time. A `k` past the kept
    /// components is an error unless every component was kept (then it means all of them).
    pub fn mse_by_k_rows(&self, rows: &Rows<'_>, ks: &[usize]) -> Result<Vec<f64>> {
        let d = rows.d;
        let all = self.kept() == d;
        if let Some(&k) = ks.iter().find(|&&k| k > self.kept() && !all) {
            return Err(pca_error(format!(
                "the error at k = {k} asked of a PCA that kept {} of {d} components",
                self.kept()
            )));
        }
        // Energy along each component up to the largest k; the error of a k-code is what
        // the first k miss.
        let top = ks.iter().copied().max().unwrap_or(0).min(self.kept());
        let basis = self.components.narrow(1, 0, top)?.contiguous()?;
        let (mut total, mut energy) = (0f64, vec![0f64; top]);
        rows.for_each_chunk(Some(&self.mean), |xc| {
            total += xc.sqr()?.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
            if top > 0 {
                let e: Vec<f64> = xc.matmul(&basis)?.sqr()?.to_dtype(DType::F64)?.sum(0)?.to_vec1()?;
                energy.iter_mut().zip(e).for_each(|(a, v)| *a += v);
            }
            Ok(())
        })?;
        let denom = (rows.n * d).max(1) as f64;
        Ok(ks
            .iter()
            .map(|&k| {
                let kept: f64 = energy.iter().take(k).sum();
                ((total - kept) / denom).max(0.0)
            })
            .collect())
    }
}

/// The columns of `vectors` ordered by decreasing `values`, the first `m` as an f32
/// `[d, m]` tensor, with their values (negative ones, rounding, as 0).
fn sorted_columns(vectors: &DMatrix<f64>, values: &[f64], m: usize) -> Result<(Tensor, Vec<f64>)> {
    let d = vectors.nrows();
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    order.truncate(m);
    let mut comps = vec![0f32; d * order.len()];
    for (j, &src) in order.iter().enumerate() {
        for i in 0..d {
            comps[i * order.len() + j] = vectors[(i, src)] as f32;
        }
    }
    let variances = order.iter().map(|&j| values[j].max(0.0)).collect();
    Ok((Tensor::from_vec(comps, (d, order.len()), &Device::Cpu)?, variances))
}

/// A PCA error: `pca: ` and `reason`.
fn pca_error(reason: String) -> AnalysisError {
    candle_core::Error::Msg(format!("pca: {reason}")).into()
}

/// An orthonormal basis of the columns of `m` (thin QR).
fn orthonormal(m: DMatrix<f64>) -> DMatrix<f64> {
    m.qr().q()
}

fn to_tensor(m: &DMatrix<f64>) -> Result<Tensor> {
    let (r, c) = m.shape();
    let v: Vec<f32> = (0..r).flat_map(|i| (0..c).map(move |j| (i, j))).map(|(i, j)| m[(i, j)] as f32).collect();
    Ok(Tensor::from_vec(v, (r, c), &Device::Cpu)?)
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
        // 5,000 rows: the covariance is summed over two chunks.
        let (n, d) = (5000, 7);
        assert!(n > chunk_rows(d));
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

    /// Rows `+a_j e_j` and `-a_j e_j` for each feature `j` (in a scrambled order of
    /// features): the mean is 0 and the covariance `diag(2a_j²/n)` exactly, so the rank-k
    /// error per element is the sum of all but the k largest `2a_j²` over `n·d`.
    fn planted(d: usize) -> (Tensor, Vec<f64>) {
        let n = 2 * d;
        let a = |j: usize| 1.0 / (1.0 + j as f64).sqrt();
        let mut xs = vec![0f32; n * d];
        let cols: std::collections::BTreeSet<usize> = (0..d).map(|j| (j * 7919) % d).collect();
        assert_eq!(cols.len(), d, "feature j sits in column 7919·j mod d, a permutation (7919 is prime)");
        for j in 0..d {
            let col = (j * 7919) % d;
            xs[2 * j * d + col] = a(j) as f32;
            xs[(2 * j + 1) * d + col] = -a(j) as f32;
        }
        let energy = (0..d).map(|j| 2.0 * f64::from(a(j) as f32).powi(2)).collect();
        (Tensor::from_vec(xs, (n, d), &Device::Cpu).unwrap(), energy)
    }

    #[test]
    fn wide_data_gets_its_leading_components_by_randomized_iteration() {
        let d = EXACT_MAX_FEATURES + 52;
        let (xs, energy) = planted(d);
        let pca = Pca::fit_rows(&Rows::of_tensor(&xs).unwrap(), Some(8)).unwrap();
        assert!(pca.randomized, "more than {EXACT_MAX_FEATURES} features");
        assert_eq!(pca.kept(), 8);
        let (n, total) = (2 * d, energy.iter().sum::<f64>());
        assert!((pca.total_variance - total / n as f64).abs() < 1e-6 * total, "{}", pca.total_variance);
        for (j, v) in pca.variances.iter().enumerate() {
            let want = energy[j] / n as f64;
            assert!((v - want).abs() < 1e-5 * want, "variance {j}: {v} vs {want}");
        }
        let ks = [0, 1, 4, 8];
        let got = pca.mse_by_k(&xs, &ks).unwrap();
        for (k, got) in ks.iter().zip(got) {
            let want = energy[*k..].iter().sum::<f64>() / (n * d) as f64;
            assert!((got - want).abs() < 1e-5 * want, "k = {k}: {got} vs {want}");
        }
        // Past the kept components: an error, not a silently wrong number.
        let err = pca.mse_by_k(&xs, &[9]).unwrap_err().to_string();
        assert!(err.contains("k = 9") && err.contains("kept 8"), "{err}");
        assert!(pca.project(&xs, 9).is_err());
        // A narrow set stays exact, whatever is kept.
        let narrow = xs.narrow(1, 0, 64).unwrap();
        let exact = Pca::fit_rows(&Rows::of_tensor(&narrow).unwrap(), Some(8)).unwrap();
        assert!(!exact.randomized && exact.kept() == 64);
    }

    #[test]
    fn projecting_in_chunks_matches_the_whole_matrix() {
        // 5,000 rows of 784 features: two chunks (4,096 + 904), the same codes to the bit.
        let (n, d) = (5000, 784);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let v: Vec<f32> = (0..n * d).map(|i| rng.random::<f32>() * (1.0 + (i % d) as f32 / 100.0)).collect();
        let xs = Tensor::from_vec(v, (n, d), &Device::Cpu).unwrap();
        let pca = Pca::fit(&xs).unwrap();
        let ks = [1, 16, 64];
        let chunked = pca.project_rows(&Rows::of_tensor(&xs).unwrap(), &ks).unwrap();
        for (&k, codes) in ks.iter().zip(&chunked) {
            assert_eq!(codes.dims(), &[n, k]);
            let whole: Vec<Vec<f32>> = pca.project(&xs, k).unwrap().to_vec2().unwrap();
            assert_eq!(whole, codes.to_vec2::<f32>().unwrap(), "k = {k}: chunked codes differ from whole ones");
        }
        let none = Rows::new(0, d, |_, _| unreachable!("no rows to read"));
        assert_eq!(pca.project_rows(&none, &[8]).unwrap()[0].dims(), &[0, 8]);
        let wide = pca.project_rows(&Rows::of_tensor(&xs).unwrap(), &[2, d + 1]).unwrap_err().to_string();
        assert!(wide.contains("785 coordinates") && wide.contains("kept 784"), "{wide}");
    }

    #[test]
    fn rows_of_the_wrong_shape_are_an_error_naming_them() {
        let rows = Rows::new(10, 3, |_, len| Ok(Tensor::zeros((len, 4), DType::F32, &Device::Cpu)?));
        let err = Pca::fit_rows(&rows, None).unwrap_err().to_string();
        assert!(err.contains("[10, 4]") && err.contains("not [10, 3]"), "{err}");
    }
}
