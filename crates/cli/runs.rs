//! `bottleneck runs [DIR] [--name N] [--status S] [--sort METRIC] [--json]`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use bottleneck_train::catalog::{self, Entry, STATUSES};

/// Arguments of `bottleneck runs`.
#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    /// A runs folder, an experiment's folder, a sweep or a run (default: BOTTLENECK_RUNS_DIR, then runs/).
    pub dir: Option<PathBuf>,
    /// Only runs whose experiment name contains this.
    #[arg(long)]
    pub name: Option<String>,
    /// Only runs with this status: pending, running, done, failed, interrupted, unreadable.
    #[arg(long)]
    pub status: Option<String>,
    /// Sort by this metric, smallest first (runs without it last); shown as a column.
    #[arg(long)]
    pub sort: Option<String>,
    /// Largest first with --sort.
    #[arg(long)]
    pub reverse: bool,
    /// JSON (an array of runs with every metric) instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Metrics shown for every run, when any run has them.
const SHOWN: [&str; 3] = ["test_mse", "test_neg_elbo", "linear_probe_accuracy"];

pub fn run(args: &RunsArgs) -> Result<()> {
    let root = crate::train::runs_root(args.dir.clone());
    if !root.exists() {
        bail!("{}: no such folder (give the runs folder, a sweep or a run)", root.display());
    }
    if let Some(s) = &args.status {
        if !STATUSES.contains(&s.as_str()) {
            bail!("--status {s}: not a status; one of {}", STATUSES.join(", "));
        }
    }
    let mut entries: Vec<Entry> = catalog::list(&root)
        .into_iter()
        .filter(|e| args.name.as_ref().is_none_or(|n| e.name.contains(n.as_str())))
        .filter(|e| args.status.as_ref().is_none_or(|s| &e.status == s))
        .collect();
    if let Some(metric) = &args.sort {
        if !entries.is_empty() && !entries.iter().any(|e| e.metrics.contains_key(metric)) {
            let mut known: Vec<&String> = entries.iter().flat_map(|e| e.metrics.keys()).collect();
            known.sort();
            known.dedup();
            let near = known.iter().min_by(|a, b| strsim::levenshtein(a, metric).cmp(&strsim::levenshtein(b, metric)));
            let hint = near.map(|n| format!(" (did you mean {n}?)")).unwrap_or_default();
            bail!(
                "--sort {metric}: no listed run has this metric{hint}; they have: {}",
                known.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
        let key = |e: &Entry| e.metrics.get(metric).copied().filter(|v| !v.is_nan());
        entries.sort_by(|a, b| match (key(a), key(b)) {
            (Some(x), Some(y)) => {
                if args.reverse {
                    y.total_cmp(&x)
                } else {
                    x.total_cmp(&y)
                }
            }
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
    }
    if args.json {
        crate::out(&format!("{}\n", catalog::to_json(&entries)?));
        return Ok(());
    }
    if entries.is_empty() {
        crate::out(&format!("no runs under {}\n", root.display()));
        return Ok(());
    }
    crate::out(&table(&entries, args.sort.as_deref()));
    Ok(())
}

/// The table: one line per run, columns as wide as their widest cell.
fn table(entries: &[Entry], sort: Option<&str>) -> String {
    let mut metrics: Vec<&str> =
        SHOWN.iter().copied().filter(|m| entries.iter().any(|e| e.metrics.contains_key(*m))).collect();
    if let Some(s) = sort {
        if !metrics.contains(&s) {
            metrics.insert(0, s);
        }
    }
    let mut head: Vec<String> = ["name", "run", "status", "epochs"].iter().map(|s| (*s).to_string()).collect();
    head.extend(metrics.iter().map(|m| (*m).to_string()));
    head.extend(["overrides".to_string(), "path".to_string()]);
    let mut rows = vec![head];
    for e in entries {
        let mut r = vec![
            e.name.clone(),
            e.timestamp.clone(),
            e.status.clone(),
            match e.epochs {
                Some(n) => format!("{}/{n}", e.epochs_done),
                None => e.epochs_done.to_string(),
            },
        ];
        r.extend(metrics.iter().map(|m| e.metrics.get(*m).map_or_else(|| "-".into(), |v| format!("{v:.5}"))));
        r.push(if e.overrides.is_empty() { "-".into() } else { e.overrides.join(" ") });
        r.push(e.path.display().to_string());
        rows.push(r);
    }
    let cols = rows[0].len();
    let width: Vec<usize> = (0..cols).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, cell)| if c + 1 == cols { cell.clone() } else { format!("{cell:<w$}", w = width[c]) })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
