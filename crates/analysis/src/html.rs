//! `report.html` pages: plain HTML and CSS, images by relative path, so a report works
//! offline from its directory (and from a copy of it).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use bottleneck_train::Manifest;

use crate::run_report::Fig;

/// Escapes text for HTML.
#[must_use]
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}\
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}\
th{background:#f3f3f3}td.l,th.l{text-align:left}figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}\
figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.9em;color:#555}\
pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:.85em}.note{color:#a33}.thumbs figure img{width:280px}";

/// A page with a title and body.
#[must_use]
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(title)
    )
}

/// A figure with its caption and a link to the SVG beside the PNG.
#[must_use]
pub fn figure(fig: &Fig) -> String {
    let svg = fig.png.strip_suffix(".png").map_or_else(|| fig.png.clone(), |s| format!("{s}.svg"));
    format!(
        "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{} (<a href=\"{}\">SVG</a>)</figcaption></figure>\n",
        escape(&fig.png),
        escape(&fig.title),
        escape(&fig.title),
        escape(&svg)
    )
}

/// Formats a metric for a table.
#[must_use]
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.6}")
    }
}

/// The page of one run.
#[must_use]
pub fn run_page(
    dir: &Path,
    m: &Manifest,
    (measured, how): (&BTreeMap<String, f64>, &[String]),
    figs: &[Fig],
    notes: &[String],
    config: &str,
    in_sweep: bool,
) -> String {
    let mut b = String::new();
    let _ = writeln!(b, "<h1>{} — run report</h1>", escape(&m.name));
    if in_sweep {
        let _ = writeln!(b, "<p><a href=\"../report.html\">← the sweep this run belongs to</a></p>");
    }
    let _ = writeln!(
        b,
        "<p>Run directory <code>{}</code>; experiment <code>{}</code>; status <b>{}</b>{}; seed {}, {} thread(s); started {}{}.</p>",
        escape(&dir.display().to_string()),
        escape(&m.experiment),
        m.status,
        m.reason.as_ref().map_or_else(String::new, |r| format!(" ({})", escape(r))),
        m.seed,
        m.threads,
        escape(&m.started),
        m.ended.as_ref().map_or_else(String::new, |e| format!(", ended {}", escape(e)))
    );
    for n in notes {
        let _ = writeln!(b, "<p class=\"note\">{}</p>", escape(n));
    }
    if !m.metrics.is_empty() {
        let _ = writeln!(b, "<h2>Final metrics (test set)</h2>\n<table>");
        for (k, v) in &m.metrics {
            let _ = writeln!(b, "<tr><th class=\"l\">{}</th><td>{}</td></tr>", escape(k), number(*v));
        }
        let _ = writeln!(b, "</table>");
    }
    if !measured.is_empty() {
        // The sample sizes actually used (a small test split uses fewer).
        let _ = writeln!(b, "<h2>What the code keeps</h2>\n<p>{}.</p>\n<table>", escape(&how.join("; ")));
        for (k, v) in measured {
            let _ = writeln!(b, "<tr><th class=\"l\">{}</th><td>{v:.4}</td></tr>", escape(k));
        }
        let _ = writeln!(b, "</table>");
    }
    if !figs.is_empty() {
        let _ = writeln!(b, "<h2>Figures</h2>");
        for f in figs {
            b.push_str(&figure(f));
        }
    }
    let _ = writeln!(b, "<h2>Resolved config</h2>\n<pre>{}</pre>", escape(config));
    page(&format!("{} — run report", m.name), &b)
}
