//! The figures and `report.html` of one run, from what the run wrote: `metrics.csv`,
//! `latents.parquet`, the checkpoint (to decode test images; nothing is trained).

use std::path::{Path, PathBuf};

use bottleneck_data::Split;
use bottleneck_models::Autoencoder;
use bottleneck_train::runner::{named_vars, setup, Setup, EVAL_NOISE_SEED};
use bottleneck_train::{checkpoint, ExperimentConfig, RunDir, Status};
use candle_core::{Device, Tensor};
use polars::prelude::*;
use rand::seq::SliceRandom as _;
use rand::SeedableRng as _;

use std::collections::BTreeMap;

use crate::error::{AnalysisError, Result};
use crate::html;
use crate::metrics::{
    knn_accuracy, linear_probe, trustworthiness, Labelled, NEIGHBOURS, PROBE_TEST, PROBE_TRAIN, TRUST_POINTS,
};
use crate::pca::Pca;
use crate::plot::{save, Bars, Distribution, Image, ImageGrid, LossCurves, Scatter};

/// Metrics the report computes from a run's codes, beside its manifest (the sweep
/// summary reads them too).
pub const ANALYSIS_FILE: &str = bottleneck_train::sweep::ANALYSIS_FILE;

/// Test points drawn in a latent scatter (a seeded subsample).
pub const SCATTER_POINTS: usize = 3000;
/// Test points embedded with t-SNE.
pub const TSNE_POINTS: usize = 1000;

/// A figure in a report: its title and PNG path relative to the report.
#[derive(Debug, Clone)]
pub struct Fig {
    /// Caption.
    pub title: String,
    /// `plots/<stem>.png`, relative to the report's directory.
    pub png: String,
}

fn rel(dir: &Path, png: &Path) -> String {
    png.strip_prefix(dir).unwrap_or(png).display().to_string()
}

/// `metrics.csv` as columns: `epoch`, then every other column by name (`train_loss`,
/// `val_loss`, `lr`, `train_<term>`, `val_<term>`, ...), empty cells as `None`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricsTable {
    /// 1-based epochs.
    pub epochs: Vec<usize>,
    /// The other columns, in file order.
    pub columns: Vec<(String, Vec<Option<f64>>)>,
}

impl MetricsTable {
    /// A column by name.
    #[must_use]
    pub fn column(&self, name: &str) -> Option<&[Option<f64>]> {
        self.columns.iter().find(|c| c.0 == name).map(|c| c.1.as_slice())
    }

    /// The objective's terms: names of the `train_<term>` columns, in file order.
    #[must_use]
    pub fn terms(&self) -> Vec<String> {
        self.columns
            .iter()
            .filter_map(|c| c.0.strip_prefix("train_"))
            .filter(|n| *n != "loss")
            .map(ToString::to_string)
            .collect()
    }

    /// (epoch, value) of the cells of `name` that hold a number.
    #[must_use]
    pub fn series(&self, name: &str) -> Vec<(usize, f64)> {
        self.column(name)
            .map_or_else(Vec::new, |c| self.epochs.iter().zip(c).filter_map(|(&e, v)| v.map(|v| (e, v))).collect())
    }
}

/// Reads `metrics.csv` (`epoch,train_loss,val_loss,lr[,train_<term>,val_<term>...]`).
pub fn read_metrics(path: &Path) -> Result<MetricsTable> {
    let text = fs_err::read_to_string(path)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').map(str::trim).collect();
    let bad = |why: String| AnalysisError::Input { path: path.into(), reason: why };
    let (Some(e), true) = (header.iter().position(|h| *h == "epoch"), header.contains(&"train_loss")) else {
        return Err(bad("expected the columns epoch,train_loss,val_loss,lr".into()));
    };
    let mut t = MetricsTable {
        epochs: Vec::new(),
        columns: header
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != e)
            .map(|(_, h)| ((*h).to_string(), Vec::new()))
            .collect(),
    };
    for (i, l) in lines.filter(|l| !l.trim().is_empty()).enumerate() {
        let f: Vec<&str> = l.split(',').collect();
        let num = |j: usize| f.get(j).and_then(|s| s.trim().parse::<f64>().ok());
        t.epochs.push(num(e).ok_or_else(|| bad(format!("row {}: no epoch", i + 2)))? as usize);
        for (c, j) in (0..header.len()).filter(|&j| j != e).enumerate() {
            t.columns[c].1.push(num(j));
        }
    }
    if t.column("train_loss").is_some_and(|c| c.iter().any(Option::is_none)) {
        return Err(bad("a row has no train_loss".into()));
    }
    Ok(t)
}

/// What a term's values are, for the y axis of its loss panel.
#[must_use]
pub fn term_unit(cfg: &bottleneck_train::ExperimentConfig, term: &str) -> String {
    use bottleneck_models::{ReconLoss, Sparsity};
    let per_pixel = match cfg.train.loss {
        ReconLoss::Mse => "MSE per feature",
        ReconLoss::Bce => "BCE per feature",
    };
    let vae = cfg.model.is_variational();
    match term {
        "loss" if vae => "loss (nats per sample)".into(),
        "loss"
            if cfg.model.inner_kind() == bottleneck_models::ModelKind::Dense
                || cfg.model.inner_kind() == bottleneck_models::ModelKind::Conv =>
        {
            format!("loss ({per_pixel})")
        }
        "loss" => "weighted sum of the terms".into(),
        "recon" if vae => "−log p(x|z) (nats per sample)".into(),
        "recon" => per_pixel.into(),
        "kl" => "KL(q(z|x) ‖ p(z)) (nats per sample)".into(),
        "capacity" => "|KL − C| (nats)".into(),
        "sparsity" => match cfg.model.sparsity {
            Sparsity::L1 => "mean |z|".into(),
            Sparsity::Kl => "Σ_j KL(ρ ‖ ρ̂_j) (nats)".into(),
        },
        "contractive" => "‖J_f(x)‖²_F".into(),
        other => other.into(),
    }
}

/// The loss-curve panels: the total, then each term when there are several.
#[must_use]
pub fn loss_panels(t: &MetricsTable, cfg: &bottleneck_train::ExperimentConfig) -> Vec<crate::plot::LossPanel> {
    let mut panels = vec![crate::plot::LossPanel {
        name: "loss (total)".into(),
        unit: term_unit(cfg, "loss"),
        train: t.series("train_loss"),
        val: t.series("val_loss"),
    }];
    let terms = t.terms();
    if terms.len() > 1 {
        for name in terms {
            panels.push(crate::plot::LossPanel {
                unit: term_unit(cfg, &name),
                train: t.series(&format!("train_{name}")),
                val: t.series(&format!("val_{name}")),
                name,
            });
        }
    }
    panels
}

/// A run's test codes as read from `latents.parquet`: (codes `[n, k]` row-major, labels, k).
pub type Latents = (Vec<f32>, Vec<u32>, usize);

/// `latents.parquet` as (codes `[n, k]` row-major, labels, k).
pub fn read_latents(path: &Path) -> Result<(Vec<f32>, Vec<u32>, usize)> {
    let file = fs_err::File::open(path)?;
    let df = ParquetReader::new(file.into_parts().0)
        .finish()
        .map_err(|source| AnalysisError::Polars { path: path.into(), source })?;
    let pe = |source| AnalysisError::Polars { path: path.into(), source };
    let n = df.height();
    let labels: Vec<u32> = match df.column("label") {
        Ok(c) => {
            let c = c.cast(&DataType::UInt32).map_err(pe)?;
            let ca = c.u32().map_err(pe)?;
            (0..n).map(|i| ca.get(i).unwrap_or(0)).collect()
        }
        Err(_) => vec![0; n],
    };
    let zcols: Vec<&Column> = (0..).map_while(|j| df.column(&format!("z{j}")).ok()).collect();
    let k = zcols.len();
    let mut z = vec![0f32; n * k];
    for (j, c) in zcols.iter().enumerate() {
        let c = c.cast(&DataType::Float32).map_err(pe)?;
        let ca = c.f32().map_err(pe)?;
        for i in 0..n {
            z[i * k + j] = ca.get(i).unwrap_or(f32::NAN);
        }
    }
    Ok((z, labels, k))
}

/// A seeded subsample of `0..n`, at most `m` indices, sorted.
#[must_use]
pub fn subsample(n: usize, m: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    if n > m {
        idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        idx.truncate(m);
        idx.sort_unstable();
    }
    idx
}

/// The fewest codes t-SNE is run on (its perplexity needs `n - 1 ≥ 3 × perplexity`).
pub const TSNE_MIN_POINTS: usize = 10;

/// The fewest codes trustworthiness at k = 5 is computed on (it needs `n ≥ 3k + 2`).
pub const TRUST_MIN_POINTS: usize = 3 * NEIGHBOURS + 2;

/// A 2-D t-SNE embedding (Barnes–Hut, perplexity up to 30) of the rows of `rows`
/// (`[n, k]`); `None` for fewer than [`TSNE_MIN_POINTS`] rows. The starting layout is
/// drawn from `seed` (N(0, 10⁻⁸) per coordinate, as bhtsne's own), so a seed gives one
/// layout.
#[must_use]
pub fn tsne(rows: &[f32], k: usize, seed: u64) -> Option<Vec<(f64, f64)>> {
    let samples: Vec<&[f32]> = rows.chunks(k).collect();
    if k == 0 || samples.len() < TSNE_MIN_POINTS {
        return None;
    }
    let perplexity = (samples.len() as f32 / 4.0).clamp(2.0, 30.0);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let start: Vec<f32> = (0..samples.len() * 2)
        .map(|_| {
            // Box–Muller: a standard normal from two uniforms, scaled to σ = 1e-4.
            let (u1, u2): (f32, f32) =
                (rand::Rng::random_range(&mut rng, f32::EPSILON..1.0), rand::Rng::random(&mut rng));
            1e-4 * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        })
        .collect();
    let fit = || {
        let mut t = bhtsne::tSNE::new(&samples);
        t.embedding_dim(2)
            .perplexity(perplexity)
            .epochs(500)
            .initial_embedding(start)
            .barnes_hut(0.5, |a: &&[f32], b: &&[f32]| {
                a.iter().zip(b.iter()).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt()
            });
        t.embedding()
    };
    // bhtsne sums in parallel, in an order that changes from run to run: on one thread
    // the sums, and so the layout, are the same every time.
    let embedding = match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
        Ok(pool) => pool.install(fit),
        Err(_) => fit(),
    };
    Some(embedding.chunks(2).map(|p| (f64::from(p[0]), f64::from(p[1]))).collect())
}

fn class_names(names: &[String], labels: &[u32]) -> Vec<String> {
    if !names.is_empty() {
        return names.to_vec();
    }
    let max = labels.iter().copied().max().map_or(0, |m| m as usize + 1);
    (0..max).map(|c| format!("class {c}")).collect()
}

/// Latent scatter plots: the code itself for k = 2, else PCA and t-SNE projections (with
/// a note in `notes` for a figure there are too few codes for).
fn latent_figures(
    dir: &Path,
    (z, labels, k): &Latents,
    name: &str,
    classes: &[String],
    seed: u64,
    notes: &mut Vec<String>,
) -> Result<Vec<Fig>> {
    let (n, k) = (labels.len(), *k);
    if k == 0 || n == 0 {
        return Ok(Vec::new());
    }
    let classes = class_names(classes, labels);
    let plots = dir.join("plots");
    let pick = subsample(n, SCATTER_POINTS, seed);
    let rows: Vec<f32> = pick.iter().flat_map(|&i| z[i * k..(i + 1) * k].iter().copied()).collect();
    let mut figs = Vec::new();
    if k <= 2 {
        let points = pick
            .iter()
            .enumerate()
            .map(|(r, &i)| (f64::from(rows[r * k]), if k == 2 { f64::from(rows[r * k + 1]) } else { 0.0 }, labels[i]))
            .collect();
        let fig = Scatter {
            title: format!("{name}: latent space (k = {k}), {} test images", pick.len()),
            axes: ("z0".into(), if k == 2 { "z1".into() } else { "-".into() }),
            points,
            classes: classes.clone(),
        };
        figs.push(Fig { title: "Latent space".into(), png: rel(dir, &save(&fig, &plots, "latent")?) });
        return Ok(figs);
    }
    if pick.len() < 3 {
        notes.push(format!("latent scatter plots: only {} test codes", pick.len()));
        return Ok(figs);
    }
    let sample = Tensor::from_vec(rows.clone(), (pick.len(), k), &Device::Cpu)?;
    let pca = Pca::fit(&sample)?;
    let p: Vec<Vec<f32>> = pca.project(&sample, 2)?.to_vec2()?;
    let total = pca.total_variance.max(1e-12);
    let share = |j: usize| 100.0 * pca.variances[j] / total;
    let fig = Scatter {
        title: format!("{name}: latent space (k = {k}) by PCA, {} test images", pick.len()),
        axes: (format!("PC1 ({:.0}% of variance)", share(0)), format!("PC2 ({:.0}%)", share(1))),
        points: pick.iter().zip(&p).map(|(&i, r)| (f64::from(r[0]), f64::from(r[1]), labels[i])).collect(),
        classes: classes.clone(),
    };
    figs.push(Fig { title: "Latent space, PCA projection".into(), png: rel(dir, &save(&fig, &plots, "latent_pca")?) });
    let tpick = subsample(n, TSNE_POINTS, seed ^ 0x75e);
    let trows: Vec<f32> = tpick.iter().flat_map(|&i| z[i * k..(i + 1) * k].iter().copied()).collect();
    let Some(emb) = tsne(&trows, k, seed ^ 0x75e) else {
        notes.push(format!("t-SNE skipped: {} test codes, it needs at least {TSNE_MIN_POINTS}", tpick.len()));
        return Ok(figs);
    };
    let fig = Scatter {
        title: format!("{name}: latent space (k = {k}) by t-SNE, {} test images", tpick.len()),
        axes: ("t-SNE 1".into(), "t-SNE 2".into()),
        points: tpick.iter().zip(&emb).map(|(&i, e)| (e.0, e.1, labels[i])).collect(),
        classes,
    };
    figs.push(Fig { title: "Latent space, t-SNE".into(), png: rel(dir, &save(&fig, &plots, "latent_tsne")?) });
    Ok(figs)
}

fn images(xs: &Tensor) -> Result<Vec<Image>> {
    let dims = xs.dims().to_vec();
    let (c, h, w) = (dims[1], dims[2], dims[3]);
    let v: Vec<f32> = xs.flatten_all()?.to_vec1()?;
    Ok(v.chunks(c * h * w).map(|d| Image { channels: c, height: h, width: w, data: d.to_vec() }).collect())
}

/// One test image per class (the first of each), else the first ten.
fn pick_test(labels: Option<&Vec<u32>>, n: usize) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    if let Some(l) = labels {
        let classes = l.iter().copied().max().map_or(0, |m| m + 1);
        for c in 0..classes.min(10) {
            if let Some(i) = l.iter().position(|&x| x == c) {
                out.push(i as u32);
            }
        }
    }
    if out.len() < 2 {
        out = (0..n.min(10) as u32).collect();
    }
    out
}

/// Reconstruction grid (and noisy / denoised / clean for denoising models) from the best
/// (else last) checkpoint, for image data.
fn image_figures(dir: &RunDir, s: &Setup, name: &str, latents: Option<&Latents>) -> Result<Vec<Fig>> {
    if s.data.sample_shape.len() != 3 {
        return Ok(Vec::new());
    }
    let pick = pick_test(s.data.test.labels.as_ref(), s.data.test.len());
    let xs = s.data.test.rows(&pick)?.to_device(&s.device)?;
    let model: &dyn Autoencoder = s.model.as_ref();
    let shown = |t: &Tensor| -> Result<Vec<Image>> { images(&s.data.normalizer.invert(&t.to_device(&Device::Cpu)?)?) };
    let plots = dir.path.join("plots");
    let mut figs = Vec::new();
    let recon = model.reconstruct(&xs)?;
    let grid = ImageGrid {
        title: format!("{name}: test images (top) and their reconstructions (bottom)"),
        rows: vec![("original".into(), shown(&xs)?), ("reconstructed".into(), shown(&recon)?)],
        scale: if s.data.sample_shape[1] <= 32 { 3 } else { 1 },
    };
    figs.push(Fig { title: "Reconstructions".into(), png: rel(&dir.path, &save(&grid, &plots, "reconstructions")?) });
    figs.extend(interpolation_figure(dir, s, name, &xs, &pick, grid.scale)?);
    if let Some(latents) = latents.filter(|_| model.latent_dim() == 2) {
        figs.extend(manifold_figure(dir, s, name, latents)?);
    }
    if let Some(noise) = model.input_noise() {
        let noisy = noise.apply_seeded(&xs, EVAL_NOISE_SEED)?;
        let denoised = model.reconstruct(&noisy)?;
        let grid = ImageGrid {
            title: format!("{name}: noisy input, denoised output, clean original"),
            rows: vec![
                ("noisy".into(), shown(&noisy)?),
                ("denoised".into(), shown(&denoised)?),
                ("clean".into(), shown(&xs)?),
            ],
            scale: grid.scale,
        };
        figs.push(Fig { title: "Denoising".into(), png: rel(&dir.path, &save(&grid, &plots, "denoising")?) });
    }
    Ok(figs)
}

/// Straight lines in latent space between pairs of test images of different classes,
/// decoded at evenly spaced points.
fn interpolation_figure(
    dir: &RunDir,
    s: &Setup,
    name: &str,
    xs: &Tensor,
    pick: &[u32],
    scale: usize,
) -> Result<Vec<Fig>> {
    const STEPS: usize = 9;
    let n = pick.len();
    if n < 2 {
        return Ok(Vec::new());
    }
    let z = s.model.encode(xs)?.to_device(&Device::Cpu)?;
    let label = |i: usize| {
        let l = s.data.test.labels.as_ref().map_or(i as u32, |l| l[pick[i] as usize]);
        s.data.classes.get(l as usize).cloned().unwrap_or_else(|| format!("#{}", pick[i]))
    };
    let pairs: Vec<(usize, usize)> =
        [(0, 1), (2, 9), (5, 7), (4, 8)].into_iter().filter(|&(a, b)| a < n && b < n).collect();
    let mut rows = Vec::new();
    for (a, b) in pairs {
        let (za, zb) = (z.get(a)?, z.get(b)?);
        let steps: Vec<Tensor> = (0..STEPS)
            .map(|t| {
                let w = t as f64 / (STEPS - 1) as f64;
                ((&za * (1.0 - w))? + (&zb * w)?).map_err(crate::error::AnalysisError::from)
            })
            .collect::<Result<_>>()?;
        let decoded = s.model.decode(&Tensor::stack(&steps, 0)?.to_device(&s.device)?)?;
        let shown = s.data.normalizer.invert(&decoded.to_device(&Device::Cpu)?)?;
        rows.push((format!("{} → {}", label(a), label(b)), images(&shown)?));
    }
    let grid = ImageGrid {
        title: format!("{name}: decoded points on straight lines between two test images' codes"),
        rows,
        scale,
    };
    let png = save(&grid, &dir.path.join("plots"), "interpolation")?;
    Ok(vec![Fig { title: "Latent interpolation".into(), png: rel(&dir.path, &png) }])
}

/// Two percentiles (fractions in [0, 1]) of unit `j` over the finite values of `codes`
/// (`[n, k]` row-major); `None` when it has none.
fn unit_percentiles(codes: &[f32], k: usize, j: usize, (lo, hi): (f64, f64)) -> Option<(f32, f32)> {
    let mut v: Vec<f32> = codes.iter().skip(j).step_by(k).copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f32::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    Some((q(lo), q(hi)))
}

/// For a 2-D code: the decoder's output over a grid spanning the test codes (5th to
/// 95th percentile of each coordinate).
fn manifold_figure(dir: &RunDir, s: &Setup, name: &str, (codes, _, k): &Latents) -> Result<Vec<Fig>> {
    const SIDE: usize = 12;
    if *k != 2 || codes.is_empty() {
        return Ok(Vec::new());
    }
    let (Some((x0, x1)), Some((y0, y1))) =
        (unit_percentiles(codes, 2, 0, (0.05, 0.95)), unit_percentiles(codes, 2, 1, (0.05, 0.95)))
    else {
        return Ok(Vec::new());
    };
    let at = |lo: f32, hi: f32, i: usize| lo + (hi - lo) * i as f32 / (SIDE - 1) as f32;
    let mut rows = Vec::new();
    for r in 0..SIDE {
        let y = at(y1, y0, r); // top row = largest z1
        let codes: Vec<f32> = (0..SIDE).flat_map(|c| [at(x0, x1, c), y]).collect();
        let decoded = s.model.decode(&Tensor::from_vec(codes, (SIDE, 2), &s.device)?)?;
        let shown = s.data.normalizer.invert(&decoded.to_device(&Device::Cpu)?)?;
        rows.push((format!("z1 = {y:.2}"), images(&shown)?));
    }
    let grid = ImageGrid { title: format!("{name}: decoded latent plane"), rows, scale: 1 };
    let png = save(&grid, &dir.path.join("plots"), "manifold")?;
    Ok(vec![Fig {
        title: format!("Decoded latent plane: z0 from {x0:.2} to {x1:.2} left to right, z1 per row (5th–95th percentile of the test codes)"),
        png: rel(&dir.path, &png),
    }])
}

/// Units shown in the traversal grid (those of largest test variance).
pub const TRAVERSAL_UNITS: usize = 10;
/// Steps along each traversed unit.
pub const TRAVERSAL_STEPS: usize = 9;

/// Latent traversals: a row per unit (the [`TRAVERSAL_UNITS`] of largest variance over
/// the test codes), decoding the first test image's code with that unit swept across its
/// 2nd–98th percentile of test codes (±3, the prior's ±3σ, for a VAE) and the others held.
fn traversal_figure(
    dir: &RunDir,
    s: &Setup,
    cfg: &bottleneck_train::ExperimentConfig,
    latents: Option<&Latents>,
) -> Result<Vec<Fig>> {
    let Some((codes, _, k)) = latents.filter(|_| s.data.sample_shape.len() == 3) else {
        return Ok(Vec::new());
    };
    let k = *k;
    if codes.len().checked_div(k).unwrap_or(0) == 0 {
        return Ok(Vec::new());
    }
    let wide: Vec<f64> = codes.iter().map(|&v| f64::from(v)).collect();
    let variances = crate::disentangle::unit_variances(crate::disentangle::Codes { values: &wide, k });
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| variances[b].total_cmp(&variances[a]));
    order.truncate(TRAVERSAL_UNITS);
    let base = &codes[..k];
    let vae = cfg.model.is_variational();
    let mut rows = Vec::new();
    for &j in &order {
        let (lo, hi) = if vae {
            (-3.0, 3.0)
        } else {
            let Some(range) = unit_percentiles(codes, k, j, (0.02, 0.98)) else { continue };
            range
        };
        let steps: Vec<f32> = (0..TRAVERSAL_STEPS)
            .flat_map(|t| {
                let mut code = base.to_vec();
                code[j] = lo + (hi - lo) * t as f32 / (TRAVERSAL_STEPS - 1) as f32;
                code
            })
            .collect();
        let decoded = s.model.decode(&Tensor::from_vec(steps, (TRAVERSAL_STEPS, k), &s.device)?)?;
        let shown = s.data.normalizer.invert(&decoded.to_device(&Device::Cpu)?)?;
        rows.push((format!("z{j} {lo:.2} … {hi:.2}"), images(&shown)?));
    }
    let span = if vae { "−3 to 3 (the prior's ±3σ)" } else { "its 2nd to 98th test percentile" };
    let grid = ImageGrid {
        title: format!("{}: latent traversals, each unit from {span}", cfg.name),
        rows,
        scale: if s.data.sample_shape[1] <= 32 { 2 } else { 1 },
    };
    let png = save(&grid, &dir.path.join("plots"), "traversals")?;
    let shown = order.len();
    Ok(vec![Fig {
        title: format!(
            "Latent traversals: {shown} of {k} units (largest test variance first), the others held at the first test image's code"
        ),
        png: rel(&dir.path, &png),
    }])
}

/// On data with known factors: the unit × factor mutual information as a heat map.
fn factor_map(dir: &RunDir, name: &str, detail: &serde_json::Value) -> Result<Vec<Fig>> {
    let (Some(mi), Some(factors)) = (detail["mutual_info"].as_array(), detail["factors"].as_array()) else {
        return Ok(Vec::new());
    };
    let values: Vec<Vec<f64>> = mi
        .iter()
        .map(|r| r.as_array().map_or_else(Vec::new, |r| r.iter().filter_map(serde_json::Value::as_f64).collect()))
        .collect();
    let fig = crate::plot::Heatmap {
        title: format!("{name}: mutual information (nats) of each code unit with each factor"),
        rows: (0..values.len()).map(|j| format!("z{j}")).collect(),
        cols: factors.iter().filter_map(|f| f.as_str().map(str::to_string)).collect(),
        values,
    };
    let png = save(&fig, &dir.path.join("plots"), "factor_map")?;
    Ok(vec![Fig {
        title: "What each unit encodes: mutual information with the known factors (MIG's matrix)".into(),
        png: rel(&dir.path, &png),
    }])
}

/// Figures of what the code holds: for a stochastic code, decoded samples from the prior
/// (image data) and KL per latent unit; for a sparse model, the distribution of its code
/// activations over the test set. Also returns notes (posterior collapse).
fn code_figures(
    dir: &RunDir,
    s: &Setup,
    cfg: &bottleneck_train::ExperimentConfig,
    latents: Option<&Latents>,
) -> Result<(Vec<Fig>, Vec<String>)> {
    const PRIOR_ROWS: usize = 4;
    const PRIOR_COLS: usize = 10;
    let name = &cfg.name;
    let plots = dir.path.join("plots");
    let model: &dyn Autoencoder = s.model.as_ref();
    let (mut figs, mut notes) = (Vec::new(), Vec::new());
    figs.extend(traversal_figure(dir, s, cfg, latents)?);
    let k = model.latent_dim();
    if cfg.model.is_variational() && !s.data.test.is_empty() {
        if s.data.sample_shape.len() == 3 {
            let zs = bottleneck_models::terms::standard_normal(
                &[PRIOR_ROWS * PRIOR_COLS, k],
                cfg.seed ^ 0x5a3d,
                0,
                candle_core::DType::F32,
                &s.device,
            )?;
            let decoded = s.data.normalizer.invert(&model.decode(&zs)?.to_device(&Device::Cpu)?)?;
            let all = images(&decoded)?;
            let rows = all
                .chunks(PRIOR_COLS)
                .enumerate()
                .map(|(r, c)| (format!("z ~ N(0, I), row {}", r + 1), c.to_vec()))
                .collect();
            let scale = if s.data.sample_shape[1] <= 32 { 3 } else { 1 };
            let grid = ImageGrid { title: format!("{name}: decoded samples from the prior"), rows, scale };
            figs.push(Fig {
                title: "Samples from the prior".into(),
                png: rel(&dir.path, &save(&grid, &plots, "prior_samples")?),
            });
        }
        let last = cfg.train.epochs.saturating_sub(1);
        let report = bottleneck_train::runner::evaluate_split(model, &s.data.test, cfg, &s.device, last, 0)?;
        let fig = Bars {
            title: format!("{name}: KL per latent unit ({} of {k} active)", report.active_units()),
            x_desc: "latent unit".into(),
            y_desc: "KL of the unit to N(0, 1), nats (test mean)".into(),
            values: report.kl_per_unit.clone(),
        };
        figs.push(Fig { title: "KL per latent unit".into(), png: rel(&dir.path, &save(&fig, &plots, "kl_per_unit")?) });
        notes.extend(report.collapse_note());
    }
    if let Some((z, _, _)) = latents.filter(|_| cfg.model.inner_kind() == bottleneck_models::ModelKind::Sparse) {
        let values: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
        let mean_abs = values.iter().map(|v| v.abs()).sum::<f64>() / values.len().max(1) as f64;
        let fig = Distribution {
            title: format!("{name}: code activations of the test set (mean |z| = {mean_abs:.4})"),
            x_desc: "activation of a code unit (all units pooled)".into(),
            values,
            bins: 60,
        };
        figs.push(Fig {
            title: "Code activations".into(),
            png: rel(&dir.path, &save(&fig, &plots, "code_activations")?),
        });
    }
    Ok((figs, notes))
}

/// Loads the best (else last) checkpoint's weights into the model; false without one.
fn load_trained(dir: &RunDir, s: &Setup) -> Result<bool> {
    let ckpt = if dir.best_checkpoint().is_file() { dir.best_checkpoint() } else { dir.last_checkpoint() };
    if !ckpt.is_file() {
        return Ok(false);
    }
    checkpoint::load_weights(&ckpt, &named_vars(&s.varmap))?;
    Ok(true)
}

/// The rows `idx` of a split as a flat `[len, features]` tensor (f32, normalised).
fn flat_rows(split: &Split, idx: &[usize]) -> Result<Tensor> {
    let ids: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
    Ok(split.rows(&ids)?.flatten_from(1)?)
}

/// Codes of the rows `idx` of a split, encoded in batches.
pub fn encode_rows(
    model: &dyn Autoencoder,
    split: &Split,
    idx: &[usize],
    batch: usize,
    dev: &Device,
) -> Result<Tensor> {
    let mut parts = Vec::new();
    for chunk in idx.chunks(batch.max(1)) {
        let ids: Vec<u32> = chunk.iter().map(|&i| i as u32).collect();
        let b = split.rows(&ids)?.to_device(dev)?;
        // Detached: the codes are data here, not a path back into the encoder's weights.
        parts.push(model.encode(&b)?.detach().to_device(&Device::Cpu)?);
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// Test codes the unit and factor metrics use (a seeded subsample).
pub const FACTOR_POINTS: usize = 5_000;
/// Points in the `TwoNN` intrinsic-dimension estimates (it compares every pair).
pub const TWO_NN_POINTS: usize = 2_000;

/// What each unit of the code holds, from a seeded subsample of test codes: per-unit
/// variance, active units, the `TwoNN` intrinsic dimension of the codes and of the inputs,
/// and, when the data has known factors, MIG, DCI and SAP with the unit × factor mutual
/// information and importance matrices. Returns (metrics, the `units`/`factors` detail
/// for `analysis.json`).
fn unit_metrics(
    s: &Setup,
    seed: u64,
    batch: usize,
    skipped: &mut Vec<String>,
    how: &mut Vec<String>,
) -> Result<(BTreeMap<String, f64>, serde_json::Value)> {
    use crate::disentangle::{self as dis, Codes, FactorValues};
    let mut out = BTreeMap::new();
    let test = &s.data.test;
    let pick = subsample(test.len(), FACTOR_POINTS, seed ^ 0xfac7);
    if pick.len() < 2 {
        skipped.push(format!("unit and factor metrics: {} test samples, they need at least 2", pick.len()));
        return Ok((out, serde_json::Value::Null));
    }
    let codes = encode_rows(s.model.as_ref(), test, &pick, batch, &s.device)?;
    let k = codes.dim(1)?;
    let z32: Vec<f32> = codes.flatten_all()?.to_vec1()?;
    let z: Vec<f64> = z32.iter().map(|&v| f64::from(v)).collect();
    let view = Codes { values: &z, k };
    let variances = dis::unit_variances(view);
    out.insert("active_units".into(), dis::active_units(&variances) as f64);
    let few = &pick[..pick.len().min(TWO_NN_POINTS)];
    how.push(format!("unit metrics: {} test codes; TwoNN: {} codes and their inputs", pick.len(), few.len()));
    match dis::two_nn(&z32[..few.len() * k], k) {
        Some(d) => {
            out.insert("intrinsic_dim_codes".into(), d);
        }
        None => skipped.push("intrinsic dimension of the codes: fewer than 10 distinct codes".into()),
    }
    let inputs = flat_rows(test, few)?;
    let width = inputs.dim(1)?;
    if let Some(d) = dis::two_nn(&inputs.flatten_all()?.to_vec1::<f32>()?, width) {
        out.insert("intrinsic_dim_data".into(), d);
    }
    let mut detail = serde_json::json!({ "unit_variance": variances });
    if let Some(f) = &test.factors {
        let ids: Vec<u32> = pick.iter().map(|&i| i as u32).collect();
        let rows: Vec<Vec<f32>> = f.index_select(&Tensor::new(ids.as_slice(), &Device::Cpu)?, 0)?.to_vec2()?;
        let factors: Vec<FactorValues> = s
            .data
            .factors
            .iter()
            .enumerate()
            .map(|(j, fac)| FactorValues {
                name: fac.name.clone(),
                categories: fac.categories,
                values: rows.iter().map(|r| f64::from(r[j])).collect(),
            })
            .collect();
        if let Some(m) = dis::mig(view, &factors) {
            out.insert("mig".into(), m);
        } else {
            skipped.push("MIG: it needs at least 2 code units".into());
        }
        if let Some(m) = dis::sap(view, &factors) {
            out.insert("sap".into(), m);
        }
        if let Some(d) = dis::dci(view, &factors) {
            out.insert("dci_disentanglement".into(), d.disentanglement);
            out.insert("dci_completeness".into(), d.completeness);
            out.insert("dci_informativeness".into(), d.informativeness);
            detail["dci_importance"] = serde_json::json!(d.importance);
        }
        detail["factors"] = serde_json::json!(factors.iter().map(|f| &f.name).collect::<Vec<_>>());
        detail["mutual_info"] = serde_json::json!(dis::mutual_info_matrix(view, &factors));
    }
    Ok((keep_finite(out, skipped), detail))
}

/// Linear-probe and kNN accuracy of the codes (seeded subsamples of the training and
/// test splits), and trustworthiness at k = 5 of 1,000 test codes against the images.
/// A metric there are too few samples for is skipped with a note in `skipped`; a
/// non-finite value is left out the same way.
fn latent_metrics(
    s: &Setup,
    seed: u64,
    batch: usize,
    skipped: &mut Vec<String>,
    how: &mut Vec<String>,
) -> Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    let model: &dyn Autoencoder = s.model.as_ref();
    let (ntr, nte) = (s.data.train.len(), s.data.test.len());
    if nte >= TRUST_MIN_POINTS {
        let few = subsample(nte, TRUST_POINTS, seed ^ 0x1234);
        let high = flat_rows(&s.data.test, &few)?;
        let low = encode_rows(model, &s.data.test, &few, batch, &s.device)?;
        out.insert("trustworthiness".into(), trustworthiness(&high, &low, NEIGHBOURS)?);
        how.push(format!("trustworthiness: {NEIGHBOURS} neighbours, {} test images", few.len()));
    } else {
        skipped.push(format!("trustworthiness: {nte} test samples, it needs at least {TRUST_MIN_POINTS}"));
    }
    let (Some(train_y), Some(test_y)) = (s.data.train.labels.as_ref(), s.data.test.labels.as_ref()) else {
        skipped.push("linear probe and kNN accuracy: the data has no labels".into());
        return Ok(keep_finite(out, skipped));
    };
    if ntr <= NEIGHBOURS || nte == 0 {
        skipped.push(format!(
            "linear probe and kNN accuracy: {ntr} training and {nte} test samples; they need more than {NEIGHBOURS} and at least 1"
        ));
        return Ok(keep_finite(out, skipped));
    }
    let tr = subsample(s.data.train.len(), PROBE_TRAIN, seed ^ 0x9e37);
    let te = subsample(s.data.test.len(), PROBE_TEST, seed ^ 0x7f4a);
    let train = Labelled {
        xs: encode_rows(model, &s.data.train, &tr, batch, &s.device)?,
        ys: tr.iter().map(|&i| train_y[i]).collect(),
    };
    let test = Labelled {
        xs: encode_rows(model, &s.data.test, &te, batch, &s.device)?,
        ys: te.iter().map(|&i| test_y[i]).collect(),
    };
    out.insert("linear_probe_accuracy".into(), linear_probe(&train, &test)?);
    out.insert("knn_accuracy".into(), knn_accuracy(&train, &test)?);
    how.insert(
        0,
        format!(
            "linear probe: softmax regression on {} training codes, scored on {} test codes; kNN: {NEIGHBOURS} nearest of those training codes",
            tr.len(),
            te.len()
        ),
    );
    Ok(keep_finite(out, skipped))
}

/// The finite metrics; each other one becomes a note.
fn keep_finite(metrics: BTreeMap<String, f64>, skipped: &mut Vec<String>) -> BTreeMap<String, f64> {
    metrics
        .into_iter()
        .filter(|(k, v)| {
            if !v.is_finite() {
                skipped.push(format!("{k}: came out {v}; left out"));
            }
            v.is_finite()
        })
        .collect()
}

/// The loss curves (with each term of a several-term objective) from `metrics.csv`, when
/// the run has finished an epoch.
fn loss_figure(dir: &RunDir, cfg: &ExperimentConfig) -> Result<Option<Fig>> {
    let metrics_csv = dir.file("metrics.csv");
    if !metrics_csv.is_file() {
        return Ok(None);
    }
    let table = read_metrics(&metrics_csv)?;
    if table.epochs.is_empty() {
        return Ok(None);
    }
    let name = &cfg.name;
    let panels = loss_panels(&table, cfg);
    let title = if panels.len() > 1 {
        format!("{name}: loss and its terms per epoch")
    } else {
        format!("{name}: loss per epoch")
    };
    let fig = LossCurves { title, panels };
    Ok(Some(Fig { title: "Loss curves".into(), png: rel(&dir.path, &save(&fig, &dir.path.join("plots"), "loss")?) }))
}

/// Draws the run's figures into `plots/` and writes `report.html`; returns its path.
/// A figure that cannot be drawn (no checkpoint yet, data missing) is left out with a
/// note in the report rather than failing the rest.
pub fn report_run(path: &Path) -> Result<PathBuf> {
    let dir = RunDir::open(path)?;
    let cfg = dir.read_config()?;
    let manifest = dir.read_manifest()?;
    let name = cfg.name.clone();
    let t0 = std::time::Instant::now();
    let lap =
        |what: &str| tracing::debug!("report {}: {what} after {:.2} s", dir.path.display(), t0.elapsed().as_secs_f64());
    let mut figs = Vec::new();
    let mut notes = Vec::new();
    figs.extend(loss_figure(&dir, &cfg)?);
    lap("loss curves");
    // Figures are computed on the CPU whatever the run trained on: a report of a GPU run
    // is drawn on a machine without one too, and the figures' code keeps its tensors there.
    let setup_result = setup(&ExperimentConfig { device: "cpu".into(), ..cfg.clone() });
    lap("data and model");
    let classes = setup_result.as_ref().map(|s| s.data.classes.clone()).unwrap_or_default();
    // The test codes, read once for every figure and file drawn from them.
    let path = dir.file("latents.parquet");
    let latents = path
        .is_file()
        .then(|| read_latents(&path).map_err(|e| notes.push(format!("latent space: {e}"))).ok())
        .flatten();
    if let Some(l) = &latents {
        match latent_figures(&dir.path, l, &name, &classes, cfg.seed, &mut notes) {
            Ok(f) => figs.extend(f),
            Err(e) => notes.push(format!("latent space: {e}")),
        }
    }
    lap("latent space");
    let mut measured = BTreeMap::new();
    let mut skipped = Vec::new();
    let mut units = serde_json::Value::Null;
    // How the metrics were measured (sample sizes), for the report's text.
    let mut how: Vec<String> = Vec::new();
    match &setup_result {
        Ok(s) => match load_trained(&dir, s) {
            Ok(true) => {
                match image_figures(&dir, s, &name, latents.as_ref()) {
                    Ok(f) => figs.extend(f),
                    Err(e) => notes.push(format!("reconstructions: {e}")),
                }
                match code_figures(&dir, s, &cfg, latents.as_ref()) {
                    Ok((f, n)) => {
                        figs.extend(f);
                        notes.extend(n);
                    }
                    Err(e) => notes.push(format!("code figures: {e}")),
                }
                lap("image grids");
                match latent_metrics(s, cfg.seed, cfg.train.eval_batch_size, &mut skipped, &mut how) {
                    Ok(m) => measured = m,
                    Err(e) => notes.push(format!("probe, kNN and trustworthiness: {e}")),
                }
                lap("probe, kNN and trustworthiness");
                match unit_metrics(s, cfg.seed, cfg.train.eval_batch_size, &mut skipped, &mut how) {
                    Ok((m, d)) => {
                        measured.extend(m);
                        match factor_map(&dir, &name, &d) {
                            Ok(f) => figs.extend(f),
                            Err(e) => notes.push(format!("unit × factor map: {e}")),
                        }
                        units = d;
                    }
                    Err(e) => notes.push(format!("unit and factor metrics: {e}")),
                }
                lap("unit and factor metrics");
            }
            Ok(false) => notes.push("no checkpoint yet: no reconstructions or latent metrics".into()),
            Err(e) => notes.push(format!("loading the checkpoint: {e}")),
        },
        Err(e) => notes.push(format!("reconstructions need the data and model: {e}")),
    }
    if !measured.is_empty() || !skipped.is_empty() {
        let json = serde_json::json!({ "metrics": measured, "skipped": skipped, "units": units });
        bottleneck_data::atomic::write_atomic(&dir.file(ANALYSIS_FILE), json.to_string().as_bytes())?;
    }
    if cfg.train.tensorboard {
        if let Err(e) = crate::board::write(&dir, setup_result.as_ref().ok(), latents.as_ref(), &figs, cfg.seed) {
            notes.push(format!("TensorBoard files: {e}"));
        }
    }
    lap("TensorBoard files");
    notes.extend(skipped.iter().map(|s| format!("skipped: {s}")));
    if manifest.status != Status::Done {
        notes.push(format!("the run is {}; figures show what it has written so far", manifest.status));
    }
    let config_text = fs_err::read_to_string(dir.file("config.toml")).unwrap_or_default();
    let in_sweep = dir.path.parent().is_some_and(|p| p.join(bottleneck_train::sweep::SWEEP_FILE).is_file());
    let page = html::run_page(&dir.path, &manifest, (&measured, &how), &figs, &notes, &config_text, in_sweep);
    let out = dir.file("report.html");
    bottleneck_data::atomic::write_atomic(&out, page.as_bytes())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tsne_seed_gives_one_layout() {
        // Three separated clusters of 40 points in 5-D.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let rows: Vec<f32> = (0..120)
            .flat_map(|i| {
                let centre = (i % 3) as f32 * 5.0;
                (0..5).map(|_| centre + rand::Rng::random_range(&mut rng, 0.0f32..1.0)).collect::<Vec<_>>()
            })
            .collect();
        let a = tsne(&rows, 5, 7).unwrap();
        // Parallel sums in another order gave other layouts on some of such repeats.
        for _ in 0..4 {
            assert_eq!(a, tsne(&rows, 5, 7).unwrap(), "the same seed, the same layout");
        }
        let c = tsne(&rows, 5, 8).unwrap();
        assert_ne!(a, c, "another seed starts elsewhere");
    }
}
