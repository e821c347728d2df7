//! The sweep curve and `report.html` of a sweep: reconstruction error against the size
//! of the bottleneck for each model, with the PCA baseline at the same k computed on the
//! same data, a table of the points and a picture of each point's latent space.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bottleneck_data::{Dataset, Split};
use bottleneck_train::sweep::{PointState, Sweep};
use bottleneck_train::{ExperimentConfig, Status};

use crate::error::Result;
use crate::html::{self, escape, number};
use crate::metrics::{linear_probe, Labelled, PROBE_TEST, PROBE_TRAIN};
use crate::pca::{Pca, Rows, EXACT_MAX_FEATURES, POWER_ITERATIONS};
use crate::plot::{save, Line, Lines, XScale};
use crate::run_report::{report_run, subsample, Fig};

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
/// (normalised as the runs saw it), scored on its test split; with a note on how the
/// components were found when they are not exact (data of more than
/// [`EXACT_MAX_FEATURES`] features).
pub fn pca_baseline(cfg: &ExperimentConfig, ks: &[usize]) -> Result<(Vec<Baseline>, Option<String>)> {
    let data = Dataset::load(&cfg.data, cfg.seed)?;
    let pca = Pca::fit_rows(&split_rows(&data.train), ks.iter().copied().max())?;
    let mse = pca.mse_by_k_rows(&split_rows(&data.test), ks)?;
    let note = pca.randomized.then(|| {
        format!(
            "PCA baseline: the leading {} of {} components by randomized subspace iteration ({POWER_ITERATIONS} power \
             iterations; exact PCA, all components, up to {EXACT_MAX_FEATURES} features)",
            pca.kept(),
            data.train.features()
        )
    });
    // The probes' samples are projected a chunk at a time, every k in one pass.
    let probe_sets = match (&data.train.labels, &data.test.labels) {
        (Some(ty), Some(sy)) => {
            let tr = subsample(data.train.len(), PROBE_TRAIN, cfg.seed ^ 0x9e37);
            let te = subsample(data.test.len(), PROBE_TEST, cfg.seed ^ 0x7f4a);
            Some((
                pca.project_rows(&subsample_rows(&data.train, &tr), ks)?,
                tr.iter().map(|&i| ty[i]).collect::<Vec<_>>(),
                pca.project_rows(&subsample_rows(&data.test, &te), ks)?,
                te.iter().map(|&i| sy[i]).collect::<Vec<_>>(),
            ))
        }
        _ => None,
    };
    let points = mse
        .into_iter()
        .enumerate()
        .map(|(j, test_mse)| {
            let probe_accuracy = match &probe_sets {
                Some((trx, try_, tex, tey)) => Some(linear_probe(
                    &Labelled { xs: trx[j].clone(), ys: try_.clone() },
                    &Labelled { xs: tex[j].clone(), ys: tey.clone() },
                )?),
                None => None,
            };
            Ok(Baseline { test_mse, probe_accuracy })
        })
        .collect::<Result<_>>()?;
    Ok((points, note))
}

/// A split's samples as rows of features, read a chunk at a time (the split stays as
/// stored: bytes for pixels).
fn split_rows(s: &Split) -> Rows<'_> {
    Rows::new(s.len(), s.features(), move |start, len| Ok(s.range(start, len)?.flatten_from(1)?))
}

/// The samples `idx` of a split as rows of features, read a chunk at a time.
fn subsample_rows<'a>(s: &'a Split, idx: &[usize]) -> Rows<'a> {
    let ids: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
    Rows::new(ids.len(), s.features(), move |start, len| Ok(s.rows(&ids[start..start + len])?.flatten_from(1)?))
}

pub(crate) struct Point {
    /// The line it belongs to: the other swept values (not the x axis, not the seed).
    pub(crate) series: String,
    /// Its value on the x axis.
    pub(crate) x: f64,
    /// Its metrics.
    pub(crate) metrics: BTreeMap<String, f64>,
}

/// The x axis of the sweep curve: `model.latent_dim` when swept, else the first other
/// numeric axis but the seed. (axis index, key, whether it is the bottleneck size)
pub(crate) fn x_axis(sweep: &Sweep) -> Option<(usize, String, bool)> {
    let keys: Vec<&str> = sweep.spec.axes.iter().map(|a| a.key.trim_start_matches('+')).collect();
    if let Some(i) = keys.iter().position(|k| *k == "model.latent_dim") {
        return Some((i, keys[i].to_string(), true));
    }
    sweep.spec.axes.iter().enumerate().find_map(|(i, a)| {
        let numeric = a.values.iter().all(|v| v.trim().parse::<f64>().is_ok_and(f64::is_finite));
        (keys[i] != "seed" && numeric && a.values.len() > 1).then(|| (i, keys[i].to_string(), false))
    })
}

/// The index of a `seed` axis.
pub(crate) fn seed_axis(sweep: &Sweep) -> Option<usize> {
    sweep.spec.axes.iter().position(|a| a.key.trim_start_matches('+') == "seed")
}

/// Mean, sample standard deviation, minimum and maximum of a metric over seeds.
#[derive(Debug, Clone, Copy)]
struct Spread {
    mean: f64,
    sd: f64,
    min: f64,
    max: f64,
    n: usize,
}

fn spread(values: &[f64]) -> Option<Spread> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let sd = if n > 1 { (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
    let (min, max) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    Some(Spread { mean, sd, min, max, n })
}

/// Points grouped by (line, x): the seeds of one setting.
fn groups(points: &[Point]) -> BTreeMap<(String, u64), Vec<&Point>> {
    let mut out: BTreeMap<(String, u64), Vec<&Point>> = BTreeMap::new();
    for p in points {
        out.entry((p.series.clone(), p.x.to_bits())).or_default().push(p);
    }
    out
}

/// One line per model (the points' other swept values), the mean over seeds at each x,
/// with the min–max band when there are several seeds.
pub(crate) fn lines_of(points: &[Point], metric: &str) -> Vec<Line> {
    let mut lines: BTreeMap<String, Line> = BTreeMap::new();
    for ((series, _), group) in groups(points) {
        let values: Vec<f64> = group.iter().filter_map(|p| p.metrics.get(metric).copied()).collect();
        let Some(sp) = spread(&values) else { continue };
        let line = lines.entry(series.clone()).or_insert_with(|| Line { name: series.clone(), ..Line::default() });
        let x = group[0].x;
        line.points.push((x, sp.mean));
        if sp.n > 1 {
            line.band.push((x, sp.min, sp.max));
        }
    }
    lines
        .into_values()
        .map(|mut l| {
            l.points.sort_by(|a, b| a.0.total_cmp(&b.0));
            l.band.sort_by(|a, b| a.0.total_cmp(&b.0));
            if l.band.len() == 1 {
                // A band needs two x values to be an area; one is shown by the table.
                l.band.clear();
            }
            l
        })
        .collect()
}

/// Metrics aggregated over seeds in `summary_seeds.csv` and the report's table.
const SEED_METRICS: [&str; 8] = [
    "test_mse",
    "test_neg_elbo",
    "linear_probe_accuracy",
    "knn_accuracy",
    "trustworthiness",
    "mig",
    "dci_disentanglement",
    "sap",
];

/// `summary_seeds.csv`: one row per setting of the other axes, with the number of seeds
/// and each metric's mean, standard deviation, minimum and maximum over them.
fn seed_table(sweep: &Sweep, points: &[Point], x_key: &str) -> Result<Option<String>> {
    let groups = groups(points);
    if groups.values().all(|g| g.len() < 2) {
        return Ok(None);
    }
    let metrics: Vec<&str> =
        SEED_METRICS.iter().copied().filter(|m| points.iter().any(|p| p.metrics.contains_key(*m))).collect();
    // A sweep over seeds alone has no x column.
    let with_x = !x_key.is_empty();
    let mut csv = if with_x { format!("series,{x_key},seeds") } else { "series,seeds".to_string() };
    for m in &metrics {
        let _ = write!(csv, ",{m}_mean,{m}_sd,{m}_min,{m}_max");
    }
    csv.push('\n');
    let mut html = format!(
        "<h2>Across seeds</h2>\n<p>Mean ± standard deviation over the seeds of each setting (also in <a href=\"summary_seeds.csv\">summary_seeds.csv</a>, with minimum and maximum).</p>\n<table>\n<tr><th class=\"l\">line</th>{}<th>seeds</th>",
        if with_x { format!("<th>{}</th>", escape(x_key)) } else { String::new() }
    );
    for m in &metrics {
        let _ = write!(html, "<th>{}</th>", escape(m));
    }
    html.push_str("</tr>\n");
    for ((series, _), group) in &groups {
        let x = group[0].x;
        let (x_csv, x_html) =
            if with_x { (format!(",{x}"), format!("<td>{x}</td>")) } else { (String::new(), String::new()) };
        let _ = write!(csv, "\"{}\"{x_csv},{}", series.replace('"', "\"\""), group.len());
        let _ = write!(html, "<tr><td class=\"l\">{}</td>{x_html}<td>{}</td>", escape(series), group.len());
        for m in &metrics {
            let values: Vec<f64> = group.iter().filter_map(|p| p.metrics.get(*m).copied()).collect();
            if let Some(sp) = spread(&values) {
                let _ = write!(csv, ",{},{},{},{}", sp.mean, sp.sd, sp.min, sp.max);
                let _ = write!(html, "<td>{} ± {}</td>", number(sp.mean), number(sp.sd));
            } else {
                csv.push_str(",,,,");
                html.push_str("<td>–</td>");
            }
        }
        csv.push('\n');
        html.push_str("</tr>\n");
    }
    html.push_str("</table>\n");
    bottleneck_data::atomic::write_atomic(&sweep.path.join("summary_seeds.csv"), csv.as_bytes())?;
    Ok(Some(html))
}

/// Draws every point's report, on as many threads as cores; returns the failures.
fn redraw(sweep: &Sweep, states: &[PointState]) -> Vec<String> {
    // The runs' reports are independent: draw them on as many threads as cores. Plain
    // threads rather than rayon tasks: a report blocks in pools of its own (the t-SNE's),
    // and a rayon worker blocked there steals other reports onto its stack, so more than
    // `cores` reports (and their memory) would be in flight at once.
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

/// The done points with their x and line, the bottleneck sizes seen, and the first
/// point's config (for the PCA baseline).
pub(crate) fn collect_points(
    sweep: &Sweep,
    states: &[PointState],
    axis: Option<&(usize, String, bool)>,
    seed: Option<usize>,
) -> (Vec<Point>, Vec<usize>, Option<ExperimentConfig>) {
    let mut points = Vec::new();
    let mut ks: Vec<usize> = Vec::new();
    let mut first_cfg = None;
    for s in states {
        let Some(m) = s.manifest.as_ref().filter(|m| m.status == Status::Done) else { continue };
        let Ok(cfg) = sweep.run_dir(&s.point).read_config() else { continue };
        // Without an x axis (a sweep over seeds alone) every point sits at x = 0: the
        // seed table still aggregates them; no curve is drawn.
        let xi = axis.map(|a| a.0);
        let x = match axis {
            Some((_, _, true)) => cfg.model.latent_dim as f64,
            Some((i, _, false)) => {
                let Ok(x) = s.point.values[*i].trim().parse::<f64>() else { continue };
                x
            }
            None => 0.0,
        };
        let others: Vec<String> = sweep
            .spec
            .axes
            .iter()
            .zip(&s.point.values)
            .enumerate()
            .filter(|(i, _)| Some(*i) != xi && Some(*i) != seed)
            .map(|(_, (a, v))| format!("{}={v}", a.key))
            .collect();
        let series = if others.is_empty() {
            format!("{} autoencoder", format!("{:?}", cfg.model.kind).to_lowercase())
        } else {
            others.join(" ")
        };
        ks.push(cfg.model.latent_dim);
        points.push(Point { series, x, metrics: m.metrics.clone() });
        first_cfg.get_or_insert(cfg);
    }
    (points, ks, first_cfg)
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
    let axis = x_axis(&sweep);
    let seed = seed_axis(&sweep);
    let (points, mut ks, first_cfg) = collect_points(&sweep, &states, axis.as_ref(), seed);
    if axis.is_none() && !sweep.spec.axes.is_empty() {
        notes.push("no sweep curve: no swept key has numeric values other than the seed".into());
    }
    let is_k = axis.as_ref().is_some_and(|a| a.2);
    let x_key = axis.as_ref().map_or_else(String::new, |a| a.1.clone());
    ks.sort_unstable();
    ks.dedup();
    let mut baseline: BTreeMap<usize, Baseline> = BTreeMap::new();
    // The PCA baseline where the curve's x is k.
    if let Some(cfg) = first_cfg.as_ref().filter(|_| is_k) {
        match pca_baseline(cfg, &ks) {
            Ok((v, note)) => {
                baseline = ks.iter().copied().zip(v).collect();
                notes.extend(note);
            }
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
    let xs: Vec<f64> = points.iter().map(|p| p.x).collect();
    let x_scale = XScale::for_values(&xs, is_k);
    let x_desc = if is_k {
        format!("bottleneck size k (latent dimensions{})", if x_scale == XScale::Log2 { ", log2 scale" } else { "" })
    } else {
        format!("{x_key}{}", if x_scale == XScale::Log10 { " (log scale)" } else { "" })
    };
    let seeds = seed.map_or(0, |i| sweep.spec.axes[i].values.len());
    let band_note = if seeds > 1 { format!(" ({seeds} seeds: mean, min–max)") } else { String::new() };
    let curves: &[Point] = if axis.is_some() { &points } else { &[] };
    if !curves.is_empty() {
        let mut lines = lines_of(curves, "test_mse");
        if !baseline.is_empty() {
            lines.push(Line {
                name: "PCA (same data, same k)".into(),
                points: baseline.iter().map(|(k, b)| (*k as f64, b.test_mse)).collect(),
                dashed: true,
                band: Vec::new(),
            });
        }
        let fig = Lines {
            title: format!("{}: test MSE vs {}{band_note}", sweep.spec.name, if is_k { "k" } else { &x_key }),
            axes: (x_desc.clone(), "test MSE per pixel (log scale)".into()),
            series: lines,
            x_scale,
            log_y: true,
        };
        let png = save(&fig, &sweep.path.join("plots"), "sweep_curve")?;
        let with = if baseline.is_empty() { "" } else { ", with PCA" };
        figs.push(Fig {
            title: format!("Sweep curve: reconstruction error against {x_key}{with}{band_note}"),
            png: png.strip_prefix(&sweep.path).unwrap_or(&png).display().to_string(),
        });
    }
    let probe = probe_figure(&sweep, curves, &baseline, (x_scale, &x_desc, &x_key));
    if let Some(fig) = probe? {
        figs.push(fig);
    }
    figs.extend(factor_curves(&sweep, curves, x_scale, (&x_desc, &x_key), &band_note)?);
    figs.extend(dimension_figure(&sweep, curves, x_scale, (&x_desc, &x_key), &band_note, is_k)?);
    let seed_html = if seeds > 1 { seed_table(&sweep, &points, &x_key)? } else { None };
    let page = sweep_page(&sweep, &states, &figs, &baseline, &notes, seed_html.as_deref());
    let out = sweep.path.join("report.html");
    bottleneck_data::atomic::write_atomic(&out, page.as_bytes())?;
    Ok(out)
}

/// On known factors: MIG, DCI disentanglement and SAP against the curve's x.
fn factor_curves(
    sweep: &Sweep,
    points: &[Point],
    x_scale: XScale,
    (x_desc, x_key): (&str, &str),
    band_note: &str,
) -> Result<Vec<Fig>> {
    let mut figs = Vec::new();
    for (metric, what) in [("mig", "MIG"), ("dci_disentanglement", "DCI disentanglement"), ("sap", "SAP")] {
        let lines = lines_of(points, metric);
        if lines.is_empty() {
            continue;
        }
        let fig = Lines {
            title: format!("{}: {what} of the code vs {x_key}{band_note}", sweep.spec.name),
            axes: (x_desc.to_string(), format!("{what} (test codes against the known factors)")),
            series: lines,
            x_scale,
            log_y: false,
        };
        let png = save(&fig, &sweep.path.join("plots"), &format!("{metric}_curve"))?;
        figs.push(Fig {
            title: format!("{what} against {x_key}"),
            png: png.strip_prefix(&sweep.path).unwrap_or(&png).display().to_string(),
        });
    }
    Ok(figs)
}

/// How many dimensions the code uses against the curve's x — its active units and the
/// `TwoNN` intrinsic dimension of its test codes — beside the `TwoNN` dimension of the data
/// (and k itself when x is k): how wide a bottleneck this data needs.
fn dimension_figure(
    sweep: &Sweep,
    points: &[Point],
    x_scale: XScale,
    (x_desc, x_key): (&str, &str),
    band_note: &str,
    is_k: bool,
) -> Result<Option<Fig>> {
    let mut series = Vec::new();
    for (metric, what) in [("active_units", "active units"), ("intrinsic_dim_codes", "TwoNN of the codes")] {
        for mut line in lines_of(points, metric) {
            line.name = format!("{what}: {}", line.name);
            series.push(line);
        }
    }
    if series.is_empty() {
        return Ok(None);
    }
    let mut xs: Vec<f64> = points.iter().map(|p| p.x).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let data: Vec<f64> =
        points.iter().filter_map(|p| p.metrics.get("intrinsic_dim_data").copied()).filter(|v| v.is_finite()).collect();
    if !data.is_empty() {
        let mean = data.iter().sum::<f64>() / data.len() as f64;
        series.push(Line {
            name: format!("TwoNN of the data ({mean:.1})"),
            points: xs.iter().map(|&x| (x, mean)).collect(),
            dashed: true,
            band: Vec::new(),
        });
    }
    if is_k {
        series.push(Line {
            name: "k, the code's width".into(),
            points: xs.iter().map(|&x| (x, x)).collect(),
            dashed: true,
            band: Vec::new(),
        });
    }
    let fig = Lines {
        title: format!("{}: dimensions the code uses vs {x_key}{band_note}", sweep.spec.name),
        axes: (x_desc.to_string(), "dimensions".into()),
        series,
        x_scale,
        log_y: false,
    };
    let png = save(&fig, &sweep.path.join("plots"), "dimensions_curve")?;
    Ok(Some(Fig {
        title: format!("Active units and intrinsic dimension against {x_key}"),
        png: png.strip_prefix(&sweep.path).unwrap_or(&png).display().to_string(),
    }))
}

/// The second panel: linear-probe accuracy on the codes against the same x, with PCA's.
fn probe_figure(
    sweep: &Sweep,
    points: &[Point],
    baseline: &BTreeMap<usize, Baseline>,
    (x_scale, x_desc, x_key): (XScale, &str, &str),
) -> Result<Option<Fig>> {
    let mut lines = lines_of(points, "linear_probe_accuracy");
    if lines.is_empty() {
        return Ok(None);
    }
    let pca: Vec<(f64, f64)> = baseline.iter().filter_map(|(k, b)| b.probe_accuracy.map(|a| (*k as f64, a))).collect();
    if !pca.is_empty() {
        lines.push(Line { name: "PCA (same data, same k)".into(), points: pca, dashed: true, band: Vec::new() });
    }
    let fig = Lines {
        title: format!("{}: linear-probe accuracy vs {x_key}", sweep.spec.name),
        axes: (x_desc.to_string(), "test accuracy of a linear probe".into()),
        series: lines,
        x_scale,
        log_y: false,
    };
    let png = save(&fig, &sweep.path.join("plots"), "probe_curve")?;
    let with = if baseline.is_empty() { "" } else { ", with PCA" };
    Ok(Some(Fig {
        title: format!("Linear-probe accuracy on the codes against {x_key}{with}"),
        png: png.strip_prefix(&sweep.path).unwrap_or(&png).display().to_string(),
    }))
}

fn sweep_page(
    sweep: &Sweep,
    states: &[PointState],
    figs: &[Fig],
    baseline: &BTreeMap<usize, Baseline>,
    notes: &[String],
    seed_table: Option<&str>,
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
    if let Some(t) = seed_table {
        b.push_str(t);
    }
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
