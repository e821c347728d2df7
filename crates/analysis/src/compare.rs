//! `bottleneck compare DIR… --out OUT`: several runs and sweeps in one offline report —
//! their metrics side by side, the runs' loss curves on one plot, and the sweeps' curves
//! (test MSE and linear-probe accuracy against their x, with seed bands) on one plot each,
//! with the first sweep's PCA baseline when it has one. Nothing is trained or redrawn in
//! the compared directories; they are only read.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bottleneck_train::sweep::{analysis_metrics, Sweep, SWEEP_FILE};
use bottleneck_train::RunDir;

use crate::error::{AnalysisError, Result};
use crate::html::{self, escape, number};
use crate::plot::{save, Line, Lines, XScale};
use crate::run_report::{read_metrics, Fig};
use crate::sweep_report::{collect_points, lines_of, seed_axis, x_axis};

/// Metrics shown side by side, in this order, when any compared directory has them.
const SHOWN: [&str; 14] = [
    "test_mse",
    "test_neg_elbo",
    "test_is_nll",
    "test_kl",
    "linear_probe_accuracy",
    "knn_accuracy",
    "trustworthiness",
    "active_units",
    "intrinsic_dim_codes",
    "mig",
    "dci_disentanglement",
    "sap",
    "mean_epoch_seconds",
    "train_seconds",
];

/// (x, y) points of a line.
type Points = Vec<(f64, f64)>;

/// A short name for a directory: its last two components (`fashion-dense/2026-…`); a
/// sweep point adds the swept values that made it (`…/000 model.beta=1.0 seed=0`).
fn label(dir: &Path) -> String {
    let parts: Vec<String> =
        dir.components().rev().take(2).map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    let name = parts.into_iter().rev().collect::<Vec<_>>().join("/");
    let in_sweep = dir.parent().is_some_and(|p| p.join(SWEEP_FILE).is_file());
    let swept = RunDir { path: dir.to_path_buf() }.read_overrides();
    if in_sweep && !swept.is_empty() {
        format!("{name} {}", swept.join(" "))
    } else {
        name
    }
}

/// One compared run: its label, report, metrics and loss per epoch.
struct RunRow {
    label: String,
    report: Option<PathBuf>,
    metrics: BTreeMap<String, f64>,
    train: Vec<(f64, f64)>,
    val: Vec<(f64, f64)>,
}

fn read_run(dir: &Path) -> Result<RunRow> {
    let run = RunDir::open(dir)?;
    let manifest = run.read_manifest()?;
    let mut metrics = manifest.metrics.clone();
    metrics.extend(analysis_metrics(&run));
    metrics.insert("train_seconds".into(), manifest.train_seconds);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    if run.file("metrics.csv").is_file() {
        let t = read_metrics(&run.file("metrics.csv"))?;
        train = t.series("train_loss").into_iter().map(|(e, v)| (e as f64, v)).collect();
        val = t.series("val_loss").into_iter().map(|(e, v)| (e as f64, v)).collect();
    }
    let report = Some(run.file("report.html")).filter(|p| p.is_file());
    Ok(RunRow { label: label(dir), report, metrics, train, val })
}

/// The compared directories: runs and sweeps, in the order given.
fn open_all(dirs: &[PathBuf], out: &Path) -> Result<(Vec<RunRow>, Vec<Sweep>)> {
    if dirs.is_empty() {
        return Err(AnalysisError::Input {
            path: out.into(),
            reason: "nothing to compare: name run or sweep directories".into(),
        });
    }
    let (mut runs, mut sweeps) = (Vec::new(), Vec::new());
    for d in dirs {
        let d = fs_err::canonicalize(d)?;
        if d.join(SWEEP_FILE).is_file() {
            sweeps.push(Sweep::open(&d)?);
        } else if d.join("config.toml").is_file() {
            runs.push(read_run(&d)?);
        } else {
            return Err(AnalysisError::Input {
                path: d,
                reason: "neither a run directory (config.toml) nor a sweep directory (sweep.toml)".into(),
            });
        }
    }
    Ok((runs, sweeps))
}

/// Writes `OUT/report.html` (and `OUT/plots/`) comparing `dirs`; returns its path. Each
/// directory must be a run (`config.toml`) or a sweep (`sweep.toml`).
pub fn compare(dirs: &[PathBuf], out: &Path) -> Result<PathBuf> {
    let (runs, sweeps) = open_all(dirs, out)?;
    let plots = out.join("plots");
    let mut figs = Vec::new();
    let mut notes = Vec::new();
    let rel = |png: &Path| png.strip_prefix(out).unwrap_or(png).display().to_string();

    if let Some(fig) = loss_figure(&runs, &plots, out)? {
        figs.push(fig);
    }

    // The sweeps' curves against the first sweep's x axis.
    let mut sweep_rows = Vec::new();
    let first_axis = sweeps.first().and_then(|s| x_axis(s).map(|a| a.1));
    let mut mse_lines = Vec::new();
    let mut probe_lines = Vec::new();
    let mut xs = Vec::new();
    let mut is_k = false;
    for (i, s) in sweeps.iter().enumerate() {
        let name = label(&s.path);
        let states = s.states();
        let done = states
            .iter()
            .filter(|p| p.manifest.as_ref().is_some_and(|m| m.status == bottleneck_train::Status::Done))
            .count();
        sweep_rows.push((name.clone(), s.path.join("report.html"), states.len(), done));
        let Some(axis) = x_axis(s) else {
            notes.push(format!("{name}: no numeric swept key for a curve"));
            continue;
        };
        if Some(&axis.1) != first_axis.as_ref() {
            notes.push(format!(
                "{name}: its curve runs over {}, not {}; left out of the curves",
                axis.1,
                first_axis.as_deref().unwrap_or("-")
            ));
            continue;
        }
        is_k = axis.2;
        let (points, _, _) = collect_points(s, &states, Some(&axis), seed_axis(s));
        xs.extend(points.iter().map(|p| p.x));
        let named = |mut lines: Vec<Line>| -> Vec<Line> {
            for l in &mut lines {
                l.name = format!("{name}: {}", l.name);
            }
            lines
        };
        mse_lines.extend(named(lines_of(&points, "test_mse")));
        probe_lines.extend(named(lines_of(&points, "linear_probe_accuracy")));
        if i == 0 && is_k {
            if let Some((mse, probe)) = read_baseline(&s.path.join("pca_baseline.csv")) {
                mse_lines.push(Line { name: format!("PCA ({name})"), points: mse, dashed: true, band: Vec::new() });
                if !probe.is_empty() {
                    probe_lines.push(Line {
                        name: format!("PCA ({name})"),
                        points: probe,
                        dashed: true,
                        band: Vec::new(),
                    });
                }
            }
        }
    }
    let x_key = first_axis.unwrap_or_default();
    let x_scale = XScale::for_values(&xs, is_k);
    for (lines, stem, what, log_y) in [
        (mse_lines, "sweep_curve", "test MSE per pixel", true),
        (probe_lines, "probe_curve", "linear-probe accuracy", false),
    ] {
        if lines.is_empty() {
            continue;
        }
        let fig = Lines {
            title: format!("{what} vs {x_key}"),
            axes: (x_key.clone(), what.to_string()),
            series: lines,
            x_scale,
            log_y,
        };
        figs.push(Fig { title: format!("The sweeps' {what} against {x_key}"), png: rel(&save(&fig, &plots, stem)?) });
    }

    let page = page(&runs, &sweep_rows, &figs, &notes);
    let path = out.join("report.html");
    bottleneck_data::atomic::write_atomic(&path, page.as_bytes())?;
    Ok(path)
}

/// The runs' loss curves on one plot, training solid and validation dashed.
fn loss_figure(runs: &[RunRow], plots: &Path, out: &Path) -> Result<Option<Fig>> {
    let mut loss: Vec<Line> = Vec::new();
    for r in runs {
        if !r.train.is_empty() {
            loss.push(Line { name: format!("{} train", r.label), points: r.train.clone(), ..Line::default() });
        }
        if !r.val.is_empty() {
            loss.push(Line { name: format!("{} val", r.label), points: r.val.clone(), dashed: true, band: Vec::new() });
        }
    }
    if loss.is_empty() {
        return Ok(None);
    }
    let positive = loss.iter().flat_map(|l| &l.points).all(|p| p.1 > 0.0);
    let fig = Lines {
        title: "Loss per epoch".into(),
        axes: ("epoch".into(), format!("loss{}", if positive { " (log scale)" } else { "" })),
        series: loss,
        x_scale: XScale::Linear,
        log_y: positive,
    };
    let png = save(&fig, plots, "loss")?;
    Ok(Some(Fig {
        title: "Loss curves of the compared runs".into(),
        png: png.strip_prefix(out).unwrap_or(&png).display().to_string(),
    }))
}

/// `pca_baseline.csv` (`k,pca_test_mse,pca_probe_accuracy`) as (MSE, probe) lines.
fn read_baseline(path: &Path) -> Option<(Points, Points)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (mut mse, mut probe) = (Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let k: f64 = cells.first()?.parse().ok()?;
        mse.push((k, cells.get(1)?.parse().ok()?));
        if let Some(p) = cells.get(2).and_then(|c| c.parse().ok()) {
            probe.push((k, p));
        }
    }
    Some((mse, probe))
}

fn page(runs: &[RunRow], sweeps: &[(String, PathBuf, usize, usize)], figs: &[Fig], notes: &[String]) -> String {
    let mut b = String::from("<h1>bottleneck compare</h1>\n");
    for n in notes {
        let _ = writeln!(b, "<p class=\"note\">{}</p>", escape(n));
    }
    if !runs.is_empty() {
        let shown: Vec<&str> =
            SHOWN.iter().copied().filter(|k| runs.iter().any(|r| r.metrics.contains_key(*k))).collect();
        let _ = write!(b, "<h2>Runs</h2>\n<table>\n<tr><th class=\"l\">run</th>");
        for k in &shown {
            let _ = write!(b, "<th>{}</th>", escape(k));
        }
        b.push_str("</tr>\n");
        for r in runs {
            let name = r.report.as_ref().map_or_else(
                || escape(&r.label),
                |p| format!("<a href=\"{}\">{}</a>", escape(&p.display().to_string()), escape(&r.label)),
            );
            let _ = write!(b, "<tr><td class=\"l\">{name}</td>");
            for k in &shown {
                let _ = write!(b, "<td>{}</td>", r.metrics.get(*k).map_or_else(|| "–".into(), |v| number(*v)));
            }
            b.push_str("</tr>\n");
        }
        b.push_str("</table>\n");
    }
    if !sweeps.is_empty() {
        b.push_str("<h2>Sweeps</h2>\n<table>\n<tr><th class=\"l\">sweep</th><th>points</th><th>done</th></tr>\n");
        for (name, report, n, done) in sweeps {
            let link = if report.is_file() {
                format!("<a href=\"{}\">{}</a>", escape(&report.display().to_string()), escape(name))
            } else {
                escape(name)
            };
            let _ = writeln!(b, "<tr><td class=\"l\">{link}</td><td>{n}</td><td>{done}</td></tr>");
        }
        b.push_str("</table>\n");
    }
    for f in figs {
        b.push_str(&html::figure(f));
    }
    html::page("bottleneck compare", &b)
}
