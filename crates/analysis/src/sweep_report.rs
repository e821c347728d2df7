//! The sweep curve and `report.html` of a sweep: reconstruction error against the size
//! of the bottleneck for each model, with the PCA baseline at the same k computed on the
//! same data, a table of the points and a picture of each point's latent space.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bottleneck_data::Dataset;
use bottleneck_train::sweep::{PointState, Sweep};
use bottleneck_train::{ExperimentConfig, Status};

use crate::error::Result;
use crate::html::{self, escape, number};
use crate::metrics::{linear_probe, Labelled, PROBE_TEST, PROBE_TRAIN};
use crate::pca::{flat, Pca};
use crate::plot::{save, Log2Lines, Series};
use crate::run_report::{report_run, subsample, Fig};
use candle_core::Tensor;

/// The PCA baseline at one k.
#[derive(Debug, Clone, Copy)]
pub struct Baseline {
    /// Test MSE per element of the best rank-k linear code.
    pub test_mse: f64,
    /// Linear-probe accuracy on the first k principal components (same subsamples and
    /// probe as the runs' codes), when the data has labels.
    pub probe_accuracy: Option<f64>,
}

/// The PCA baseline for each k: fitted on the training split that `cfg` loads
/// (normalised as the runs saw it), scored on its test split.
pub fn pca_baseline(cfg: &ExperimentConfig, ks: &[usize]) -> Result<Vec<Baseline>> {
    let data = Dataset::load(&cfg.data, cfg.seed)?;
    let (train, test) = (flat(&data.train.xs)?, flat(&data.test.xs)?);
    let pca = Pca::fit(&train)?;
    let mse = pca.mse_by_k(&test, ks)?;
    let probe_sets = match (&data.train.labels, &data.test.labels) {
        (Some(ty), Some(sy)) => {
            let tr = subsample(data.train.len(), PROBE_TRAIN, cfg.seed ^ 0x9e37);
            let te = subsample(data.test.len(), PROBE_TEST, cfg.seed ^ 0x7f4a);
            let rows = |xs: &Tensor, idx: &[usize]| -> Result<Tensor> {
                let ids: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
                Ok(xs.index_select(&Tensor::new(ids.as_slice(), xs.device())?, 0)?)
            };
            Some((
                rows(&train, &tr)?,
                tr.iter().map(|&i| ty[i]).collect::<Vec<_>>(),
                rows(&test, &te)?,
                te.iter().map(|&i| sy[i]).collect::<Vec<_>>(),
            ))
        }
        _ => None,
    };
    ks.iter()
        .zip(mse)
        .map(|(&k, test_mse)| {
            let probe_accuracy = match &probe_sets {
                Some((trx, try_, tex, tey)) => Some(linear_probe(
                    &Labelled { xs: pca.project(trx, k)?, ys: try_.clone() },
                    &Labelled { xs: pca.project(tex, k)?, ys: tey.clone() },
                )?),
                None => None,
            };
            Ok(Baseline { test_mse, probe_accuracy })
        })
        .collect()
}

struct Point {
    series: String,
    k: usize,
    test_mse: f64,
    probe: Option<f64>,
}

/// Draws every point's report, on as many threads as cores; returns the failures.
fn redraw(sweep: &Sweep, states: &[PointState]) -> Vec<String> {
    // The runs' reports are independent: draw them on as many threads as cores.
    let todo: Vec<(String, PathBuf)> = states
        .iter()
        .filter(|s| s.manifest.is_some())
        .map(|s| (s.point.dir.clone(), sweep.run_dir(&s.point).path))
        .filter(|(_, p)| p.join("config.toml").is_file())
        .collect();
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get).min(todo.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some((name, path)) = todo.get(i) else { break };
                if let Err(e) = report_run(path) {
                    if let Ok(mut f) = failed.lock() {
                        f.push(format!("point {name}: {e}"));
                    }
                }
            });
        }
    });
    let mut failed = failed.into_inner().unwrap_or_default();
    failed.sort();
    failed
}

/// Writes the summary, the sweep curve (`plots/sweep_curve.png|svg`), `pca_baseline.csv`
/// and `report.html` of the sweep at `path`; with `redraw_runs`, each point's report too.
pub fn report_sweep(path: &Path, redraw_runs: bool) -> Result<PathBuf> {
    let sweep = Sweep::open(path)?;
    let mut notes = Vec::new();
    if redraw_runs {
        notes.extend(redraw(&sweep, &sweep.states()));
    }
    // Read after the runs' reports: their analysis.json files join the metrics.
    let states = sweep.states();
    let k_axis = sweep.spec.axes.iter().position(|a| a.key.trim_start_matches('+') == "model.latent_dim");
    let mut points = Vec::new();
    let mut first_cfg = None;
    for s in &states {
        let Some(m) = s.manifest.as_ref().filter(|m| m.status == Status::Done) else { continue };
        let Ok(cfg) = sweep.run_dir(&s.point).read_config() else { continue };
        let Some(&test_mse) = m.metrics.get("test_mse") else { continue };
        let others: Vec<String> = sweep
            .spec
            .axes
            .iter()
            .zip(&s.point.values)
            .enumerate()
            .filter(|(i, _)| Some(*i) != k_axis)
            .map(|(_, (a, v))| format!("{}={v}", a.key))
            .collect();
        let series = if others.is_empty() {
            format!("{} autoencoder", format!("{:?}", cfg.model.kind).to_lowercase())
        } else {
            others.join(" ")
        };
        let probe = m.metrics.get("linear_probe_accuracy").copied();
        points.push(Point { series, k: cfg.model.latent_dim, test_mse, probe });
        first_cfg.get_or_insert(cfg);
    }
    let mut ks: Vec<usize> = points.iter().map(|p| p.k).collect();
    ks.sort_unstable();
    ks.dedup();
    let mut baseline: BTreeMap<usize, Baseline> = BTreeMap::new();
    if let Some(cfg) = &first_cfg {
        match pca_baseline(cfg, &ks) {
            Ok(v) => baseline = ks.iter().copied().zip(v).collect(),
            Err(e) => notes.push(format!("PCA baseline: {e}")),
        }
    }
    if !baseline.is_empty() {
        let mut csv = String::from("k,pca_test_mse,pca_probe_accuracy\n");
        for (k, b) in &baseline {
            let probe = b.probe_accuracy.map_or_else(String::new, |p| p.to_string());
            let _ = writeln!(csv, "{k},{},{probe}", b.test_mse);
        }
        bottleneck_data::atomic::write_atomic(&sweep.path.join("pca_baseline.csv"), csv.as_bytes())?;
    }
    // The summary, once, with the baseline at each point's k when there is one.
    let mut extra = Vec::new();
    if !baseline.is_empty() {
        let at_k: Vec<Option<Baseline>> = states
            .iter()
            .map(|s| {
                sweep.run_dir(&s.point).read_config().ok().and_then(|c| baseline.get(&c.model.latent_dim).copied())
            })
            .collect();
        extra.push(("pca_test_mse".to_string(), at_k.iter().map(|b| b.map(|b| b.test_mse)).collect()));
        extra.push(("pca_probe_accuracy".to_string(), at_k.iter().map(|b| b.and_then(|b| b.probe_accuracy)).collect()));
    }
    sweep.write_summary_with(&extra)?;
    let mut figs = Vec::new();
    if !points.is_empty() {
        let mut lines = series_of(&points, |p| Some(p.test_mse));
        if !baseline.is_empty() {
            lines.push((
                "PCA (same data, same k)".into(),
                baseline.iter().map(|(k, b)| (*k as f64, b.test_mse)).collect(),
                true,
            ));
        }
        let fig = Log2Lines {
            title: format!("{}: test reconstruction error vs bottleneck size", sweep.spec.name),
            axes: ("bottleneck size k (latent dimensions, log2 scale)".into(), "test MSE per pixel (log scale)".into()),
            series: lines,
            log_y: true,
        };
        let png = save(&fig, &sweep.path.join("plots"), "sweep_curve")?;
        figs.push(Fig {
            title: "Sweep curve: reconstruction error against k, with PCA".into(),
            png: png.strip_prefix(&sweep.path).unwrap_or(&png).display().to_string(),
        });
    }
    if let Some(fig) = probe_figure(&sweep, &points, &baseline)? {
        figs.push(fig);
    }
    let page = sweep_page(&sweep, &states, &figs, &baseline, &notes);
    let out = sweep.path.join("report.html");
    bottleneck_data::atomic::write_atomic(&out, page.as_bytes())?;
    Ok(out)
}

/// One line per model (the points' other swept values), points sorted by k.
fn series_of(points: &[Point], value: impl Fn(&Point) -> Option<f64>) -> Vec<Series> {
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for p in points {
        if let Some(v) = value(p) {
            series.entry(p.series.clone()).or_default().push((p.k as f64, v));
        }
    }
    series
        .into_iter()
        .map(|(name, mut pts)| {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            (name, pts, false)
        })
        .collect()
}

/// The second panel: linear-probe accuracy on the codes against k, with PCA's.
fn probe_figure(sweep: &Sweep, points: &[Point], baseline: &BTreeMap<usize, Baseline>) -> Result<Option<Fig>> {
    let mut lines = series_of(points, |p| p.probe);
    if lines.is_empty() {
        return Ok(None);
    }
    let pca: Vec<(f64, f64)> = baseline.iter().filter_map(|(k, b)| b.probe_accuracy.map(|a| (*k as f64, a))).collect();
    if !pca.is_empty() {
        lines.push(("PCA (same data, same k)".into(), pca, true));
    }
    let fig = Log2Lines {
        title: format!("{}: linear-probe accuracy vs bottleneck size", sweep.spec.name),
        axes: ("bottleneck size k (latent dimensions, log2 scale)".into(), "test accuracy of a linear probe".into()),
        series: lines,
        log_y: false,
    };
    let png = save(&fig, &sweep.path.join("plots"), "probe_curve")?;
    Ok(Some(Fig {
        title: "Linear-probe accuracy on the codes against k, with PCA".into(),
        png: png.strip_prefix(&sweep.path).unwrap_or(&png).display().to_string(),
    }))
}

fn sweep_page(
    sweep: &Sweep,
    states: &[PointState],
    figs: &[Fig],
    baseline: &BTreeMap<usize, Baseline>,
    notes: &[String],
) -> String {
    let spec = &sweep.spec;
    let mut b = String::new();
    let _ = writeln!(b, "<h1>{} — sweep report</h1>", escape(&spec.name));
    let axes: Vec<String> = spec
        .axes
        .iter()
        .map(|a| format!("<code>{}</code> ∈ {{{}}}", escape(&a.key), escape(&a.values.join(", "))))
        .collect();
    let _ = writeln!(
        b,
        "<p>Sweep directory <code>{}</code>; experiment <code>{}</code>; {} points over {}; fixed overrides: <code>{}</code>; made {}.</p>",
        escape(&sweep.path.display().to_string()),
        escape(&spec.experiment.display().to_string()),
        spec.points.len(),
        axes.join(" × "),
        escape(&spec.overrides.join(" ")),
        escape(&spec.created)
    );
    for n in notes {
        let _ = writeln!(b, "<p class=\"note\">{}</p>", escape(n));
    }
    for f in figs {
        b.push_str(&html::figure(f));
    }
    let _ = writeln!(b, "<h2>Points</h2>\n<table>\n<tr><th class=\"l\">point</th>");
    for a in &spec.axes {
        let _ = write!(b, "<th>{}</th>", escape(&a.key));
    }
    let _ = writeln!(
        b,
        "<th class=\"l\">status</th><th>test MSE</th><th>PCA MSE at k</th><th>probe acc.</th><th>PCA probe acc.</th><th>kNN acc.</th><th>trustworthiness</th><th>epochs</th><th>s/epoch</th><th>train s</th></tr>"
    );
    for s in states {
        let m = s.manifest.as_ref();
        let k = sweep.run_dir(&s.point).read_config().ok().map(|c| c.model.latent_dim);
        let metric = |key: &str| m.and_then(|m| m.metrics.get(key)).map_or_else(|| "–".into(), |v| number(*v));
        let link = if sweep.path.join(&s.point.dir).join("report.html").is_file() {
            format!("<a href=\"{0}/report.html\">{0}</a>", escape(&s.point.dir))
        } else {
            escape(&s.point.dir)
        };
        let _ = write!(b, "<tr><td class=\"l\">{link}</td>");
        for v in &s.point.values {
            let _ = write!(b, "<td>{}</td>", escape(v));
        }
        let outcome = m.map_or_else(|| "missing".into(), |m| m.status.to_string());
        let reason =
            m.and_then(|m| m.reason.clone()).map_or_else(String::new, |r| format!(" title=\"{}\"", escape(&r)));
        let _ = writeln!(
            b,
            "<td class=\"l\"{reason}>{outcome}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            metric("test_mse"),
            k.and_then(|k| baseline.get(&k)).map_or_else(|| "–".into(), |b| number(b.test_mse)),
            metric("linear_probe_accuracy"),
            k.and_then(|k| baseline.get(&k)).and_then(|b| b.probe_accuracy).map_or_else(|| "–".into(), number),
            metric("knn_accuracy"),
            metric("trustworthiness"),
            m.map_or_else(|| "–".into(), |m| m.epochs_done.to_string()),
            m.and_then(|m| m.metrics.get("mean_epoch_seconds")).map_or_else(|| "–".into(), |v| format!("{v:.1}")),
            m.map_or_else(|| "–".into(), |m| format!("{:.0}", m.train_seconds)),
        );
    }
    let _ = writeln!(b, "</table>\n<p>Also as <a href=\"summary.csv\">summary.csv</a> and summary.parquet.</p>");
    let _ = writeln!(b, "<h2>Latent space of each point</h2>\n<div class=\"thumbs\">");
    for s in states {
        for stem in ["latent", "latent_pca"] {
            let rel = format!("{}/plots/{stem}.png", s.point.dir);
            if sweep.path.join(&rel).is_file() {
                let _ = writeln!(
                    b,
                    "<figure><a href=\"{0}/report.html\"><img src=\"{1}\" alt=\"latent space of point {0}\"></a><figcaption>{0}: {2}</figcaption></figure>",
                    escape(&s.point.dir),
                    escape(&rel),
                    escape(&sweep.label(&s.point))
                );
                break;
            }
        }
    }
    let _ = writeln!(b, "</div>");
    // The grid as recorded; each point's resolved config is in its own report.
    let spec_text = fs_err::read_to_string(sweep.path.join(bottleneck_train::sweep::SWEEP_FILE)).unwrap_or_default();
    let _ = writeln!(
        b,
        "<h2>The sweep (sweep.toml)</h2>\n<p>Each point's full resolved config is in its report.</p>\n<pre>{}</pre>",
        escape(&spec_text)
    );
    html::page(&format!("{} — sweep report", spec.name), &b)
}
