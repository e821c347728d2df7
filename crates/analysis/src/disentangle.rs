//! What each code unit encodes, scored against known generating factors — MIG (Chen et
//! al. 2018), DCI disentanglement / completeness / informativeness (Eastwood & Williams
//! 2018) and SAP (Kumar et al. 2018) — and, for any code, per-unit variance, active units
//! and the `TwoNN` intrinsic dimension (Facco et al. 2017).
//!
//! The definitions follow `disentanglement_lib` (`evaluation/metrics/{mig,dci,sap_score}.py`)
//! with these differences, all because our factors may be continuous:
//! - MIG discretises every continuous factor as it discretises the codes (20 equal-width
//!   bins over the observed range, `histogram_discretize`); categorical factors are used
//!   as they are. Mutual information and entropy are in nats, as sklearn's.
//! - DCI's importances come from a lasso per factor (standardised codes and target,
//!   α = [`LASSO_ALPHA`]; importance = |weight|), as in Eastwood & Williams' paper, not from
//!   gradient-boosted trees; a categorical factor is fitted one-vs-rest and its
//!   importances summed over its categories. Informativeness is the held-out R² (clamped
//!   to [0, 1]) for a continuous factor and, for a categorical one, the held-out accuracy
//!   of the one-vs-rest argmax above chance, `(acc − p)/(1 − p)` with `p` the commonest
//!   category's share; averaged over factors (higher is better; 0 for a code of noise). A
//!   linear read-out undervalues a categorical factor held in one unit as ordered levels.
//! - SAP's score of a code unit for a continuous factor is the squared correlation (as
//!   `disentanglement_lib`'s continuous branch); for a categorical factor it is the
//!   correlation ratio η² (the share of the unit's variance between categories) instead
//!   of a per-unit SVM's accuracy.

use rayon::prelude::*;

/// Bins per code unit (and continuous factor) in MIG, as `disentanglement_lib`'s default.
pub const MIG_BINS: usize = 20;
/// The lasso penalty of DCI's regressors (on standardised codes and targets).
pub const LASSO_ALPHA: f64 = 0.01;
/// A unit is active when its variance over the test codes exceeds this (Burda et al. 2016).
pub const ACTIVE_VARIANCE: f64 = 0.01;

/// Known factor values of the scored samples.
#[derive(Debug, Clone)]
pub struct FactorValues {
    /// Factor name.
    pub name: String,
    /// Categories of a categorical factor (values are 0..categories); 0 when continuous.
    pub categories: usize,
    /// One value per sample.
    pub values: Vec<f64>,
}

/// Codes as `n` rows of `k` values.
#[derive(Debug, Clone, Copy)]
pub struct Codes<'a> {
    /// Row-major `[n, k]`.
    pub values: &'a [f64],
    /// Units per code.
    pub k: usize,
}

impl Codes<'_> {
    fn n(&self) -> usize {
        self.values.len().checked_div(self.k).unwrap_or(0)
    }

    fn unit(&self, j: usize) -> Vec<f64> {
        self.values.iter().skip(j).step_by(self.k).copied().collect()
    }
}

/// Per-unit variance of the codes (population variance, one per unit).
#[must_use]
pub fn unit_variances(codes: Codes<'_>) -> Vec<f64> {
    (0..codes.k).map(|j| variance(&codes.unit(j))).collect()
}

/// Units whose variance exceeds [`ACTIVE_VARIANCE`].
#[must_use]
pub fn active_units(variances: &[f64]) -> usize {
    variances.iter().filter(|&&v| v > ACTIVE_VARIANCE).count()
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len().max(1) as f64
}

fn variance(x: &[f64]) -> f64 {
    let m = mean(x);
    x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / x.len().max(1) as f64
}

/// Equal-width bins over the observed range, as `np.digitize(x, np.histogram(x, bins)[1][:-1])`
/// less one: bin indices 0..bins, the maximum in the last bin.
#[must_use]
pub fn histogram_discretize(x: &[f64], bins: usize) -> Vec<usize> {
    let (lo, hi) = x.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return vec![0; x.len()];
    }
    let width = (hi - lo) / bins as f64;
    x.iter().map(|&v| (((v - lo) / width).floor() as usize).min(bins - 1)).collect()
}

/// Entropy of a discrete variable in nats.
#[must_use]
pub fn entropy(a: &[usize]) -> f64 {
    let n = a.len() as f64;
    let mut counts = std::collections::HashMap::new();
    for &v in a {
        *counts.entry(v).or_insert(0usize) += 1;
    }
    counts.values().map(|&c| c as f64 / n).map(|p| -p * p.ln()).sum()
}

/// Mutual information of two discrete variables in nats (sklearn's `mutual_info_score`).
#[must_use]
pub fn mutual_info(a: &[usize], b: &[usize]) -> f64 {
    let n = a.len() as f64;
    let mut joint = std::collections::HashMap::new();
    let (mut pa, mut pb) = (std::collections::HashMap::new(), std::collections::HashMap::new());
    for (&x, &y) in a.iter().zip(b) {
        *joint.entry((x, y)).or_insert(0usize) += 1;
        *pa.entry(x).or_insert(0usize) += 1;
        *pb.entry(y).or_insert(0usize) += 1;
    }
    joint
        .iter()
        .map(|(&(x, y), &c)| {
            let pxy = c as f64 / n;
            pxy * (pxy * n * n / (pa[&x] as f64 * pb[&y] as f64)).ln()
        })
        .sum::<f64>()
        .max(0.0)
}

fn discrete(f: &FactorValues) -> Vec<usize> {
    if f.categories > 0 {
        f.values.iter().map(|&v| v.max(0.0) as usize).collect()
    } else {
        histogram_discretize(&f.values, MIG_BINS)
    }
}

/// The unit × factor mutual-information matrix (`[k][factors]`, nats) of MIG.
#[must_use]
pub fn mutual_info_matrix(codes: Codes<'_>, factors: &[FactorValues]) -> Vec<Vec<f64>> {
    let ys: Vec<Vec<usize>> = factors.iter().map(discrete).collect();
    (0..codes.k)
        .into_par_iter()
        .map(|j| {
            let z = histogram_discretize(&codes.unit(j), MIG_BINS);
            ys.iter().map(|y| mutual_info(&z, y)).collect()
        })
        .collect()
}

/// MIG: for each factor, the gap between the two units sharing most information with it,
/// over the factor's entropy, averaged over factors (constant factors left out). `None`
/// with fewer than two units or no varying factor.
#[must_use]
pub fn mig(codes: Codes<'_>, factors: &[FactorValues]) -> Option<f64> {
    if codes.k < 2 {
        return None;
    }
    let m = mutual_info_matrix(codes, factors);
    let gaps: Vec<f64> = factors
        .iter()
        .enumerate()
        .filter_map(|(f, fv)| {
            let h = entropy(&discrete(fv));
            if h <= 0.0 {
                return None;
            }
            let mut col: Vec<f64> = m.iter().map(|row| row[f]).collect();
            col.sort_by(|a, b| b.total_cmp(a));
            Some((col[0] - col[1]) / h)
        })
        .collect();
    (!gaps.is_empty()).then(|| mean(&gaps))
}

/// SAP: for each factor, the gap between the two units that predict it best (module docs),
/// averaged over factors. `None` with fewer than two units.
#[must_use]
pub fn sap(codes: Codes<'_>, factors: &[FactorValues]) -> Option<f64> {
    if codes.k < 2 || factors.is_empty() {
        return None;
    }
    let units: Vec<Vec<f64>> = (0..codes.k).map(|j| codes.unit(j)).collect();
    let gaps: Vec<f64> = factors
        .iter()
        .map(|f| {
            let mut scores: Vec<f64> = units.iter().map(|z| unit_score(z, f)).collect();
            scores.sort_by(|a, b| b.total_cmp(a));
            scores[0] - scores[1]
        })
        .collect();
    Some(mean(&gaps))
}

/// How well one unit alone predicts a factor: r² (continuous) or η² (categorical).
fn unit_score(z: &[f64], f: &FactorValues) -> f64 {
    let vz = variance(z);
    if vz <= 0.0 {
        return 0.0;
    }
    if f.categories > 0 {
        let m = mean(z);
        let mut sums = vec![(0.0, 0usize); f.categories];
        for (&v, &c) in z.iter().zip(&f.values) {
            let s = &mut sums[(c.max(0.0) as usize).min(f.categories - 1)];
            s.0 += v;
            s.1 += 1;
        }
        let between: f64 =
            sums.iter().filter(|s| s.1 > 0).map(|&(s, c)| c as f64 * (s / c as f64 - m).powi(2)).sum::<f64>();
        return between / (z.len() as f64 * vz);
    }
    let vy = variance(&f.values);
    if vy <= 0.0 {
        return 0.0;
    }
    let (mz, my) = (mean(z), mean(&f.values));
    let cov = z.iter().zip(&f.values).map(|(a, b)| (a - mz) * (b - my)).sum::<f64>() / z.len() as f64;
    cov * cov / (vz * vy)
}

/// DCI scores and the importance matrix they came from.
#[derive(Debug, Clone)]
pub struct Dci {
    /// Disentanglement: how much each unit is about one factor, weighted by importance.
    pub disentanglement: f64,
    /// Completeness: how much each factor is captured by one unit.
    pub completeness: f64,
    /// Informativeness: held-out R² or accuracy above chance, averaged over factors.
    pub informativeness: f64,
    /// `[k][factors]` importances (|lasso weight|).
    pub importance: Vec<Vec<f64>>,
}

/// DCI with lasso regressors fitted on the first half of the samples and scored on the
/// second (module docs). `None` with fewer than 4 samples, no unit or no factor.
#[must_use]
pub fn dci(codes: Codes<'_>, factors: &[FactorValues]) -> Option<Dci> {
    let (rows, units) = (codes.n(), codes.k);
    if rows < 4 || units == 0 || factors.is_empty() {
        return None;
    }
    let half = rows / 2;
    let xs = standardise(codes, half);
    // Each factor's regressions on their own, factors in parallel.
    let per_factor: Vec<(Vec<f64>, f64)> = factors.par_iter().map(|f| dci_factor(f, &xs, rows, units, half)).collect();
    let mut importance = vec![vec![0.0; factors.len()]; units];
    for (fi, (imp, _)) in per_factor.iter().enumerate() {
        for (j, v) in imp.iter().enumerate() {
            importance[j][fi] = *v;
        }
    }
    let informative: Vec<f64> = per_factor.iter().map(|p| p.1).collect();
    let (disentanglement, completeness) = dci_scores(&importance);
    Some(Dci { disentanglement, completeness, informativeness: mean(&informative), importance })
}

/// One factor of DCI: the importance of each unit and the held-out score.
fn dci_factor(f: &FactorValues, xs: &[f64], rows: usize, units: usize, half: usize) -> (Vec<f64>, f64) {
    let mut importance = vec![0.0; units];
    let targets: Vec<Vec<f64>> = if f.categories > 0 {
        (0..f.categories).map(|c| f.values.iter().map(|&v| f64::from(u8::from(v as usize == c))).collect()).collect()
    } else {
        vec![f.values.clone()]
    };
    let mut predictions = Vec::with_capacity(targets.len());
    for target in &targets {
        let (weights, bias) = lasso(&xs[..half * units], &target[..half], units, LASSO_ALPHA);
        for (j, wj) in weights.iter().enumerate() {
            importance[j] += wj.abs();
        }
        predictions.push(
            (half..rows)
                .map(|i| bias + (0..units).map(|j| weights[j] * xs[i * units + j]).sum::<f64>())
                .collect::<Vec<f64>>(),
        );
    }
    let score = if f.categories > 0 {
        let right = (half..rows)
            .filter(|&i| {
                let best = (0..targets.len())
                    .max_by(|&a, &c| predictions[a][i - half].total_cmp(&predictions[c][i - half]))
                    .unwrap_or(0);
                best == f.values[i] as usize
            })
            .count();
        // Above chance: 0 for guessing the commonest category, 1 when always right.
        let mut counts = vec![0usize; f.categories];
        for &v in &f.values[half..] {
            counts[(v.max(0.0) as usize).min(f.categories - 1)] += 1;
        }
        let chance = counts.iter().copied().max().unwrap_or(0) as f64 / (rows - half) as f64;
        let accuracy = right as f64 / (rows - half) as f64;
        if chance < 1.0 {
            ((accuracy - chance) / (1.0 - chance)).max(0.0)
        } else {
            0.0
        }
    } else {
        let held_out = &f.values[half..];
        let spread = variance(held_out);
        let sse =
            held_out.iter().zip(&predictions[0]).map(|(a, p)| (a - p).powi(2)).sum::<f64>() / held_out.len() as f64;
        if spread > 0.0 {
            (1.0 - sse / spread).clamp(0.0, 1.0)
        } else {
            0.0
        }
    };
    (importance, score)
}

/// Disentanglement and completeness of an importance matrix `[k][factors]`, exactly as
/// `disentanglement_lib`'s `disentanglement` and `completeness`.
#[must_use]
pub fn dci_scores(importance: &[Vec<f64>]) -> (f64, f64) {
    let k = importance.len();
    let f = importance.first().map_or(0, Vec::len);
    let total: f64 = importance.iter().flatten().sum();
    // All zero: every unit and factor weighs the same (`disentanglement_lib`'s `ones_like`).
    let weight = |v: f64| if total > 0.0 { v / total } else { 1.0 / (k * f).max(1) as f64 };
    let d = (0..k)
        .map(|i| {
            let row: Vec<f64> = importance[i].clone();
            (1.0 - entropy_base(&row, f)) * weight(row.iter().sum())
        })
        .sum::<f64>();
    let c = (0..f)
        .map(|j| {
            let col: Vec<f64> = importance.iter().map(|r| r[j]).collect();
            (1.0 - entropy_base(&col, k)) * weight(col.iter().sum())
        })
        .sum::<f64>();
    (d, c)
}

/// `scipy.stats.entropy(p + 1e-11, base)`: the entropy of `p` normalised, in base `base`.
fn entropy_base(p: &[f64], base: usize) -> f64 {
    if base < 2 {
        return 0.0;
    }
    let q: Vec<f64> = p.iter().map(|v| v + 1e-11).collect();
    let s: f64 = q.iter().sum();
    -q.iter().map(|v| v / s).map(|v| v * v.ln()).sum::<f64>() / (base as f64).ln()
}

/// Codes with each unit standardised by the statistics of the first `fit` rows.
fn standardise(codes: Codes<'_>, fit: usize) -> Vec<f64> {
    let k = codes.k;
    let mut out = codes.values.to_vec();
    for j in 0..k {
        let head: Vec<f64> = codes.values[..fit * k].iter().skip(j).step_by(k).copied().collect();
        let (m, sd) = (mean(&head), variance(&head).sqrt());
        for v in out.iter_mut().skip(j).step_by(k) {
            *v = if sd > 0.0 { (*v - m) / sd } else { 0.0 };
        }
    }
    out
}

/// Lasso by cyclic coordinate descent on `x` (`[n, k]`, standardised columns) and `y`
/// (standardised here): minimises ½·mean((y − b − xw)²) + α‖w‖₁. Returns (w, b) in the
/// units of `y`.
#[must_use]
pub fn lasso(xs: &[f64], target: &[f64], units: usize, alpha: f64) -> (Vec<f64>, f64) {
    let rows = target.len();
    let (centre, scale) = (mean(target), variance(target).sqrt());
    if rows == 0 || scale <= 0.0 {
        return (vec![0.0; units], centre);
    }
    let col = |j: usize| (0..rows).map(move |i| xs[i * units + j]);
    let col_sq: Vec<f64> = (0..units).map(|j| col(j).map(|v| v * v).sum::<f64>() / rows as f64).collect();
    let mut weights = vec![0.0; units];
    // Residuals of the standardised target.
    let mut resid: Vec<f64> = target.iter().map(|v| (v - centre) / scale).collect();
    for _ in 0..500 {
        let mut change = 0.0f64;
        for j in 0..units {
            if col_sq[j] <= 0.0 {
                continue;
            }
            let rho = col(j).zip(&resid).map(|(v, r)| v * (r + weights[j] * v)).sum::<f64>() / rows as f64;
            let new = rho.signum() * (rho.abs() - alpha).max(0.0) / col_sq[j];
            let delta = new - weights[j];
            if delta != 0.0 {
                for (r, v) in resid.iter_mut().zip(col(j)) {
                    *r -= delta * v;
                }
                weights[j] = new;
                change = change.max(delta.abs());
            }
        }
        if change < 1e-7 {
            break;
        }
    }
    (weights.iter().map(|v| v * scale).collect(), centre)
}

/// `TwoNN` intrinsic dimension (Facco et al. 2017) of `points` (`[n, d]` row-major): the
/// ratio μ = r₂/r₁ of each point's two nearest distances, and the slope through the
/// origin of −ln(1 − F(μ)) against ln μ over the 90% smallest ratios. Duplicate points
/// (r₁ = 0) are left out. `None` with fewer than 10 usable points.
#[must_use]
pub fn two_nn(points: &[f32], dim: usize) -> Option<f64> {
    let count = points.len().checked_div(dim)?;
    let row = |i: usize| &points[i * dim..(i + 1) * dim];
    // Every point's two nearest neighbours, points in parallel (each scan is sequential,
    // so the result does not depend on the threads).
    let mut ratios: Vec<f64> = (0..count)
        .into_par_iter()
        .filter_map(|i| {
            let (mut r1, mut r2) = (f64::INFINITY, f64::INFINITY);
            for j in (0..count).filter(|&j| j != i) {
                let dist: f64 = row(i).iter().zip(row(j)).map(|(a, b)| f64::from(a - b).powi(2)).sum();
                if dist < r1 {
                    r2 = r1;
                    r1 = dist;
                } else if dist < r2 {
                    r2 = dist;
                }
            }
            (r1 > 0.0 && r2.is_finite()).then(|| (r2 / r1).sqrt())
        })
        .collect();
    if ratios.len() < 10 {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let usable = ratios.len() as f64;
    let keep = (usable * 0.9) as usize;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, &mu) in ratios.iter().take(keep).enumerate() {
        let (lx, ly) = (mu.ln(), -(1.0 - i as f64 / usable).ln());
        sxy += lx * ly;
        sxx += lx * lx;
    }
    (sxx > 0.0).then(|| sxy / sxx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Five independent uniform factors, the first categorical with 3 categories.
    fn factors(n: usize, rng: &mut ChaCha8Rng) -> Vec<FactorValues> {
        let mut out = vec![FactorValues {
            name: "shape".into(),
            categories: 3,
            values: (0..n).map(|_| f64::from(rng.random_range(0..3u8))).collect(),
        }];
        for name in ["scale", "orientation", "pos_x", "pos_y"] {
            out.push(FactorValues {
                name: name.into(),
                categories: 0,
                values: (0..n).map(|_| rng.random_range(0.0..1.0)).collect(),
            });
        }
        out
    }

    /// Rows of codes from per-unit columns.
    fn rows(units: &[Vec<f64>]) -> Vec<f64> {
        let n = units[0].len();
        (0..n).flat_map(|i| units.iter().map(move |u| u[i])).collect()
    }

    #[test]
    fn mutual_information_matches_a_hand_computed_table() {
        // Joint counts [[3, 1], [1, 3]] over 8 samples: p(x, y) = 3/8 on the diagonal,
        // 1/8 off it, marginals 1/2. MI = 2·(3/8)ln(3/2) + 2·(1/8)ln(1/2), worked by hand.
        let a = [0, 0, 0, 0, 1, 1, 1, 1];
        let b = [0, 0, 0, 1, 1, 1, 1, 0];
        let expected = 0.75 * (1.5f64).ln() + 0.25 * (0.5f64).ln();
        assert!((mutual_info(&a, &b) - expected).abs() < 1e-12, "{}", mutual_info(&a, &b));
        assert!((entropy(&a) - 2f64.ln()).abs() < 1e-12);
        assert!((mutual_info(&a, &a) - entropy(&a)).abs() < 1e-12);
    }

    #[test]
    fn histogram_bins_follow_numpy() {
        // np.digitize(x, np.histogram(x, 4)[1][:-1]) - 1 for x = 0, 1, ..., 8.
        let x: Vec<f64> = (0..9).map(f64::from).collect();
        assert_eq!(histogram_discretize(&x, 4), [0, 0, 1, 1, 2, 2, 3, 3, 3]);
        assert_eq!(histogram_discretize(&[2.0, 2.0], 4), [0, 0]);
    }

    #[test]
    fn the_factors_themselves_score_one_and_noise_scores_zero() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let samples = 4000;
        let truth = factors(samples, &mut rng);
        // The factors, permuted and scaled, with an offset: a perfectly disentangled code.
        let order = [3, 0, 4, 1, 2];
        let units: Vec<Vec<f64>> =
            order.iter().map(|&i| truth[i].values.iter().map(|v| 2.5 * v - 1.0).collect()).collect();
        let code = rows(&units);
        let codes = Codes { values: &code, k: 5 };
        let (m, d, s) = (mig(codes, &truth).unwrap(), dci(codes, &truth).unwrap(), sap(codes, &truth).unwrap());
        assert!(m > 0.95, "MIG of the factors {m}");
        assert!(d.disentanglement > 0.95 && d.completeness > 0.95, "{d:?}");
        // A linear read-out of the categorical `shape`, held in one unit as three levels,
        // gets the two outer levels right and the middle one only partly: informativeness
        // stays below 1 for it (a documented limit of the lasso), 1 for the others.
        assert!(d.informativeness > 0.9, "{d:?}");
        assert!(s > 0.8, "SAP of the factors {s}");

        // Independent noise: nothing to find.
        let noise: Vec<Vec<f64>> =
            (0..5).map(|_| (0..samples).map(|_| rng.random_range(-1.0..1.0)).collect()).collect();
        let code = rows(&noise);
        let codes = Codes { values: &code, k: 5 };
        let (m, d, s) = (mig(codes, &truth).unwrap(), dci(codes, &truth).unwrap(), sap(codes, &truth).unwrap());
        assert!(m < 0.05, "MIG of noise {m}");
        assert!(d.disentanglement < 0.4 && d.informativeness < 0.05, "{d:?}");
        assert!(s < 0.05, "SAP of noise {s}");
    }

    #[test]
    fn a_unit_mixing_two_factors_scores_in_between() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let samples = 4000;
        let truth: Vec<FactorValues> = factors(samples, &mut rng).into_iter().skip(1).take(3).collect();
        let (a, b, c) = (&truth[0].values, &truth[1].values, &truth[2].values);
        let clean = rows(&[a.clone(), b.clone(), c.clone()]);
        // One unit per factor, except that the second unit carries two factors at once.
        let mixed = rows(&[a.clone(), b.iter().zip(c).map(|(x, y)| x + y).collect(), vec![0.0; samples]]);
        let noise: Vec<f64> = (0..3 * samples).map(|_| rng.random_range(0.0..1.0)).collect();
        let score = |z: &[f64]| {
            let codes = Codes { values: z, k: 3 };
            (mig(codes, &truth).unwrap(), dci(codes, &truth).unwrap().disentanglement)
        };
        let (clean, mixed, noise) = (score(&clean), score(&mixed), score(&noise));
        assert!(noise.0 < mixed.0 && mixed.0 < clean.0, "MIG {noise:?} {mixed:?} {clean:?}");
        assert!(noise.1 < mixed.1 && mixed.1 < clean.1, "DCI {noise:?} {mixed:?} {clean:?}");
        assert!(mixed.0 > 0.2 && mixed.0 < 0.8 && mixed.1 > 0.3 && mixed.1 < 0.9, "{mixed:?}");
    }

    #[test]
    fn dci_scores_match_disentanglement_lib_on_a_fixed_matrix() {
        // `disentanglement_lib`'s dci_test.py: a diagonal importance matrix scores 1 and 1;
        // a matrix whose every unit weighs each factor the same scores 0 disentanglement.
        let diag = vec![vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0], vec![0.0, 0.0, 1.0]];
        let (d, c) = dci_scores(&diag);
        assert!((d - 1.0).abs() < 1e-6 && (c - 1.0).abs() < 1e-6, "{d} {c}");
        let flat = vec![vec![1.0, 1.0], vec![1.0, 1.0]];
        let (d, c) = dci_scores(&flat);
        assert!(d.abs() < 1e-6 && c.abs() < 1e-6, "{d} {c}");
        // One unit carrying two factors, one factor per unit otherwise, computed by hand:
        // rows [1, 1, 0], [0, 0, 1]: unit 0 has entropy ln2/ln3 and weight 2/3, unit 1 is
        // pure (weight 1/3); every factor is complete.
        let (d, c) = dci_scores(&[vec![1.0, 1.0, 0.0], vec![0.0, 0.0, 1.0]]);
        let expected = (2.0 / 3.0) * (1.0 - 2f64.ln() / 3f64.ln()) + 1.0 / 3.0;
        assert!((d - expected).abs() < 1e-6 && (c - 1.0).abs() < 1e-6, "{d} {c} vs {expected}");
    }

    #[test]
    fn two_nn_finds_the_dimension_of_a_plane_in_ten_dimensions() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (true_d, lo, hi) in [(2usize, 1.8, 2.2), (5, 4.4, 5.6)] {
            // Uniform in a true_d-dimensional cube, embedded in 10-D by a fixed rotation-free lift.
            let points: Vec<f32> = (0..1500)
                .flat_map(|_| {
                    let u: Vec<f32> = (0..true_d).map(|_| rng.random_range(0.0..1.0)).collect();
                    (0..10).map(move |j| if j < true_d { u[j] } else { 0.0 }).collect::<Vec<f32>>()
                })
                .collect();
            let estimate = two_nn(&points, 10).unwrap();
            assert!(estimate > lo && estimate < hi, "TwoNN of a {true_d}-d cube: {estimate}");
        }
        assert_eq!(two_nn(&[0.0; 20], 2), None, "ten copies of one point");
    }

    #[test]
    fn active_units_count_varying_units() {
        let z = rows(&[vec![0.0, 1.0, 0.0, 1.0], vec![0.5, 0.5, 0.5, 0.5], vec![0.0, 0.1, 0.0, 0.1]]);
        let v = unit_variances(Codes { values: &z, k: 3 });
        assert!((v[0] - 0.25).abs() < 1e-12 && v[1] == 0.0 && (v[2] - 0.0025).abs() < 1e-12, "{v:?}");
        assert_eq!(active_units(&v), 1);
    }
}
