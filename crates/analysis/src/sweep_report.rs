//! The sweep curve and `report.html` of a sweep: reconstruction error against the size
//! of the bottleneck for each model, with the PCA baseline at the same k computed on the
//! same data, a table of the points and a picture of each point's latent space.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bottleneck_data::Dataset;
use bottleneck_train::sweep::Sweep;
use bottleneck_train::{ExperimentConfig, Status};

use crate::error::Result;
use crate::html::{self, escape, number};
use crate::pca::{flat, Pca};
use crate::plot::{save, Log2Lines, Series};
use crate::run_report::{report_run, Fig};

/// The PCA baseline: test MSE per element of the best rank-k linear code, fitted on the
/// training split that `cfg` loads (normalised as the runs saw it), for each k.
pub fn pca_baseline(cfg: &ExperimentConfig, ks: &[usize]) -> Result<Vec<f64>> {
    let data = Dataset::load(&cfg.data, cfg.seed)?;
    let pca = Pca::fit(&flat(&data.train.xs)?)?;
    pca.mse_by_k(&flat(&data.test.xs)?, ks)
}

struct Point {
    series: String,
    k: usize,
    test_mse: f64,
}

/// Writes the summary, the sweep curve (`plots/sweep_curve.png|svg`), `pca_baseline.csv`
/// and `report.html` of the sweep at `path`; with `redraw_runs`, each point's report too.
pub fn report_sweep(path: &Path, redraw_runs: bool) -> Result<PathBuf> {
    let sweep = Sweep::open(path)?;
    sweep.write_summary()?;
    let states = sweep.states();
    let mut notes = Vec::new();
    if redraw_runs {
        for s in &states {
            let dir = sweep.run_dir(&s.point);
            if dir.file("config.toml").is_file() && s.manifest.is_some() {
                if let Err(e) = report_run(&dir.path) {
                    notes.push(format!("point {}: {e}", s.point.dir));
                }
            }
        }
    }
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
        points.push(Point { series, k: cfg.model.latent_dim, test_mse });
        first_cfg.get_or_insert(cfg);
    }
    let mut ks: Vec<usize> = points.iter().map(|p| p.k).collect();
    ks.sort_unstable();
    ks.dedup();
    let mut baseline: BTreeMap<usize, f64> = BTreeMap::new();
    if let Some(cfg) = &first_cfg {
        match pca_baseline(cfg, &ks) {
            Ok(v) => baseline = ks.iter().copied().zip(v).collect(),
            Err(e) => notes.push(format!("PCA baseline: {e}")),
        }
    }
    if !baseline.is_empty() {
        let mut csv = String::from("k,pca_test_mse\n");
        for (k, v) in &baseline {
            let _ = writeln!(csv, "{k},{v}");
        }
        bottleneck_data::atomic::write_atomic(&sweep.path.join("pca_baseline.csv"), csv.as_bytes())?;
    }
    let mut figs = Vec::new();
    if !points.is_empty() {
        let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for p in &points {
            series.entry(p.series.clone()).or_default().push((p.k as f64, p.test_mse));
        }
        let mut lines: Vec<Series> = series
            .into_iter()
            .map(|(name, mut pts)| {
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                (name, pts, false)
            })
            .collect();
        if !baseline.is_empty() {
            lines.push((
                "PCA (same data, same k)".into(),
                baseline.iter().map(|(k, v)| (*k as f64, *v)).collect(),
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
    let page = sweep_page(&sweep, &figs, &baseline, &notes);
    let out = sweep.path.join("report.html");
    bottleneck_data::atomic::write_atomic(&out, page.as_bytes())?;
    Ok(out)
}

fn sweep_page(sweep: &Sweep, figs: &[Fig], baseline: &BTreeMap<usize, f64>, notes: &[String]) -> String {
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
    let _ = writeln!(b, "<th class=\"l\">status</th><th>test MSE</th><th>PCA MSE at k</th><th>epochs</th><th>s/epoch</th><th>train s</th></tr>");
    for s in sweep.states() {
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
        let status = m.map_or_else(|| "missing".into(), |m| m.status.to_string());
        let reason =
            m.and_then(|m| m.reason.clone()).map_or_else(String::new, |r| format!(" title=\"{}\"", escape(&r)));
        let _ = writeln!(
            b,
            "<td class=\"l\"{reason}>{status}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            metric("test_mse"),
            k.and_then(|k| baseline.get(&k)).map_or_else(|| "–".into(), |v| number(*v)),
            m.map_or_else(|| "–".into(), |m| m.epochs_done.to_string()),
            m.and_then(|m| m.metrics.get("mean_epoch_seconds")).map_or_else(|| "–".into(), |v| format!("{v:.1}")),
            m.map_or_else(|| "–".into(), |m| format!("{:.0}", m.train_seconds)),
        );
    }
    let _ = writeln!(b, "</table>\n<p>Also as <a href=\"summary.csv\">summary.csv</a> and summary.parquet.</p>");
    let _ = writeln!(b, "<h2>Latent space of each point</h2>\n<div class=\"thumbs\">");
    for s in sweep.states() {
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
    html::page(&format!("{} — sweep report", spec.name), &b)
}
