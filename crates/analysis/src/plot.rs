//! Figures drawn with plotters, each saved as PNG and SVG (atomically): loss curves,
//! scatter plots, image grids, heat maps and line charts with bands on a linear, log₂
//! or log₁₀ x axis.

// Pixel coordinates: small usize values converted to plotters' i32.
#![allow(clippy::cast_possible_wrap)]

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{AnalysisError, Result};

/// Okabe & Ito's colour-blind-safe palette, then two of Paul Tol's (wine, grey) so that
/// ten classes get ten colours.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(230, 159, 0),   // orange
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(240, 228, 66),  // yellow
    RGBColor(0, 0, 0),       // black
    RGBColor(136, 34, 85),   // wine
    RGBColor(153, 153, 153), // grey
];

/// The colour of series or class `i`.
#[must_use]
pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

const FONT: &str = "sans-serif";

/// Errors from plotters, as text.
type DrawResult = std::result::Result<(), String>;

fn e<T: std::fmt::Display>(err: T) -> String {
    err.to_string()
}

/// Something that can draw itself on any plotters backend.
pub trait Figure {
    /// Pixel size.
    fn size(&self) -> (u32, u32);
    /// Draws on `root`.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult;
}

/// Saves `fig` as `<dir>/<stem>.png` and `<dir>/<stem>.svg`, each written to a temporary
/// name and renamed into place. Returns the PNG path.
pub fn save(fig: &impl Figure, dir: &Path, stem: &str) -> Result<PathBuf> {
    fs_err::create_dir_all(dir)?;
    let png = dir.join(format!("{stem}.png"));
    let fail = |path: &Path, reason: String| AnalysisError::Plot { path: path.into(), reason };
    // The bitmap backend picks the format from the extension, so the temporary name
    // keeps `.png` at its end.
    let tmp = dir.join(format!(".tmp-{}-{stem}.png", std::process::id()));
    {
        let root = BitMapBackend::new(&tmp, fig.size()).into_drawing_area();
        fig.draw(&root).map_err(|r| fail(&png, r))?;
        root.present().map_err(|r| fail(&png, r.to_string()))?;
    }
    fs_err::rename(&tmp, &png)?;
    let svg_path = dir.join(format!("{stem}.svg"));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, fig.size()).into_drawing_area();
        fig.draw(&root).map_err(|r| fail(&svg_path, r))?;
        root.present().map_err(|r| fail(&svg_path, r.to_string()))?;
    }
    bottleneck_data::atomic::write_atomic(&svg_path, svg.as_bytes())?;
    Ok(png)
}

/// One panel of [`LossCurves`]: a quantity per epoch, training and validation.
#[derive(Debug, Clone)]
pub struct LossPanel {
    /// The quantity (`loss`, `recon`, `kl`, ...).
    pub name: String,
    /// The y axis: what it is and its unit.
    pub unit: String,
    /// (epoch, training value).
    pub train: Vec<(usize, f64)>,
    /// (epoch, validation value).
    pub val: Vec<(usize, f64)>,
}

/// Loss per epoch, one panel per quantity (the total, then each term of the objective):
/// training and (when there is one) validation; log-scale y when every value is > 0.
#[derive(Debug, Clone)]
pub struct LossCurves {
    /// Title.
    pub title: String,
    /// The panels, drawn left to right, top to bottom.
    pub panels: Vec<LossPanel>,
}

impl LossCurves {
    fn grid(&self) -> (usize, usize) {
        let n = self.panels.len().max(1);
        let cols = if n == 1 { 1 } else { 2 };
        (n.div_ceil(cols), cols)
    }
}

impl Figure for LossCurves {
    fn size(&self) -> (u32, u32) {
        let (rows, cols) = self.grid();
        if cols == 1 {
            (720, 440)
        } else {
            (1080, 40 + 360 * rows as u32)
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).map_err(e)?;
        let (rows, cols) = self.grid();
        let body = if self.panels.len() > 1 { root.titled(&self.title, (FONT, 20)).map_err(e)? } else { root.clone() };
        let areas = body.split_evenly((rows, cols));
        let single = self.panels.len() == 1;
        for (panel, area) in self.panels.iter().zip(areas.iter()) {
            let caption = if single { self.title.clone() } else { panel.name.clone() };
            draw_panel(panel, &caption, area)?;
        }
        Ok(())
    }
}

/// A y tick label with as many decimals as its magnitude needs.
fn tick(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 => format!("{v:.1}"),
        a if a >= 1.0 => format!("{v:.2}"),
        _ => format!("{v:.4}"),
    }
}

fn draw_panel<DB: DrawingBackend>(p: &LossPanel, caption: &str, area: &DrawingArea<DB, Shift>) -> DrawResult {
    let values: Vec<f64> = p.train.iter().chain(&p.val).map(|v| v.1).filter(|v| v.is_finite()).collect();
    // Log scale only when the values are positive and span more than a decade: inside
    // one decade a log axis has no labelled ticks.
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let positive = !values.is_empty() && lo > 0.0 && hi / lo > 10.0;
    let last = p.train.iter().chain(&p.val).map(|r| r.0).max().unwrap_or(1).max(2);
    let c0 = colour(0);
    let c1 = colour(1);
    let mut base = ChartBuilder::on(area);
    base.caption(caption, (FONT, 18)).margin(12).x_label_area_size(40).y_label_area_size(78);
    let finite = |pts: &[(usize, f64)]| -> Vec<(f64, f64)> {
        pts.iter().filter(|r| r.1.is_finite()).map(|r| (r.0 as f64, r.1)).collect()
    };
    let (train, val) = (finite(&p.train), finite(&p.val));
    macro_rules! series {
        ($chart:expr) => {{
            let chart = $chart;
            chart
                .draw_series(LineSeries::new(train.clone(), c0.stroke_width(2)))
                .map_err(e)?
                .label("train")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c0.stroke_width(2)));
            chart.draw_series(train.iter().map(|p| Circle::new(*p, 3, c0.filled()))).map_err(e)?;
            if !val.is_empty() {
                chart
                    .draw_series(LineSeries::new(val.clone(), c1.stroke_width(2)))
                    .map_err(e)?
                    .label("validation")
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c1.stroke_width(2)));
                chart.draw_series(val.iter().map(|p| TriangleMarker::new(*p, 4, c1.filled()))).map_err(e)?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font((FONT, 14))
                .draw()
                .map_err(e)?;
        }};
    }
    if positive {
        let mut chart = base.build_cartesian_2d(1f64..last as f64, (lo / 1.2..hi * 1.2).log_scale()).map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(format!("{} (log scale)", p.unit))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| tick(*v))
            .draw()
            .map_err(e)?;
        series!(&mut chart);
    } else {
        let (lo, hi) = if values.is_empty() { (0.0, 1.0) } else { (lo, hi) };
        let pad = ((hi - lo) * 0.1).max(1e-9);
        let mut chart = base.build_cartesian_2d(1f64..last as f64, (lo - pad)..(hi + pad)).map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(p.unit.as_str())
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| tick(*v))
            .draw()
            .map_err(e)?;
        series!(&mut chart);
    }
    Ok(())
}

/// One bar per item (e.g. KL per latent unit), with an optional horizontal threshold.
#[derive(Debug, Clone)]
pub struct Bars {
    /// Title.
    pub title: String,
    /// What the bars are (`latent unit`).
    pub x_desc: String,
    /// Their value and unit.
    pub y_desc: String,
    /// One value per bar, labelled by its index.
    pub values: Vec<f64>,
}

impl Figure for Bars {
    fn size(&self) -> (u32, u32) {
        (760, 440)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).map_err(e)?;
        let n = self.values.len().max(1);
        let hi = self.values.iter().copied().filter(|v| v.is_finite()).fold(0.0, f64::max).max(1e-9) * 1.1;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((0..n).into_segmented(), 0f64..hi)
            .map_err(e)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(self.x_desc.as_str())
            .y_desc(self.y_desc.as_str())
            .x_labels(n.min(32))
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) if *i < n => format!("{i}"),
                _ => String::new(),
            })
            .y_label_formatter(&|v| format!("{v:.2}"))
            .draw()
            .map_err(e)?;
        let c = colour(0);
        chart
            .draw_series(
                Histogram::vertical(&chart)
                    .style(c.filled())
                    .margin(2)
                    .data(self.values.iter().enumerate().map(|(i, v)| (i, if v.is_finite() { *v } else { 0.0 }))),
            )
            .map_err(e)?;
        Ok(())
    }
}

/// The distribution of many values (e.g. every code activation of the test set).
#[derive(Debug, Clone)]
pub struct Distribution {
    /// Title.
    pub title: String,
    /// What the values are.
    pub x_desc: String,
    /// The values.
    pub values: Vec<f64>,
    /// Number of equal-width bins.
    pub bins: usize,
}

impl Figure for Distribution {
    fn size(&self) -> (u32, u32) {
        (760, 440)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).map_err(e)?;
        let vals: Vec<f64> = self.values.iter().copied().filter(|v| v.is_finite()).collect();
        let (mut lo, mut hi) = vals.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, &v| (a.0.min(v), a.1.max(v)));
        if vals.is_empty() {
            (lo, hi) = (0.0, 1.0);
        }
        if hi - lo < 1e-12 {
            (lo, hi) = (lo - 0.5, hi + 0.5);
        }
        let bins = self.bins.max(1);
        let width = (hi - lo) / bins as f64;
        let mut counts = vec![0usize; bins];
        for v in &vals {
            counts[(((v - lo) / width) as usize).min(bins - 1)] += 1;
        }
        let share: Vec<f64> = counts.iter().map(|&c| c as f64 / vals.len().max(1) as f64).collect();
        let top = share.iter().copied().fold(0.0, f64::max).max(1e-9) * 1.1;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(lo..hi, 0f64..top)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc(self.x_desc.as_str())
            .y_desc("share of values")
            .x_label_formatter(&|v| format!("{v:.2}"))
            .y_label_formatter(&|v| format!("{v:.2}"))
            .draw()
            .map_err(e)?;
        let c = colour(0);
        chart
            .draw_series(share.iter().enumerate().map(|(i, &h)| {
                let x0 = lo + width * i as f64;
                Rectangle::new([(x0, 0.0), (x0 + width, h)], c.filled())
            }))
            .map_err(e)?;
        Ok(())
    }
}

/// Points coloured by class, with a legend.
#[derive(Debug, Clone)]
pub struct Scatter {
    /// Title.
    pub title: String,
    /// Axis names.
    pub axes: (String, String),
    /// (x, y, class).
    pub points: Vec<(f64, f64, u32)>,
    /// Class names, index = label.
    pub classes: Vec<String>,
}

impl Figure for Scatter {
    fn size(&self) -> (u32, u32) {
        (760, 620)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).map_err(e)?;
        let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
        for &(x, y, _) in &self.points {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if !x0.is_finite() || !y0.is_finite() {
            (x0, x1, y0, y1) = (-1.0, 1.0, -1.0, 1.0);
        }
        let pad = |a: f64, b: f64| ((b - a) * 0.05).max(1e-6);
        let (px, py) = (pad(x0, x1), pad(y0, y1));
        let (left, right) = root.split_horizontally(600);
        let mut chart = ChartBuilder::on(&left)
            .caption(&self.title, (FONT, 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(x0 - px..x1 + px, y0 - py..y1 + py)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc(&self.axes.0)
            .y_desc(&self.axes.1)
            .x_label_formatter(&|v| format!("{v:.2}"))
            .y_label_formatter(&|v| format!("{v:.2}"))
            .draw()
            .map_err(e)?;
        chart
            .draw_series(
                self.points.iter().map(|&(x, y, c)| Circle::new((x, y), 2, colour(c as usize).mix(0.7).filled())),
            )
            .map_err(e)?;
        // The legend in its own panel on the right: one swatch per class.
        for (i, name) in self.classes.iter().enumerate() {
            let y = 50 + 24 * i as i32;
            right.draw(&Circle::new((14, y), 6, colour(i).filled())).map_err(e)?;
            right.draw(&Text::new(name.clone(), (26, y - 8), (FONT, 14).into_font())).map_err(e)?;
        }
        Ok(())
    }
}

/// A greyscale or RGB image with values in [0, 1].
#[derive(Debug, Clone)]
pub struct Image {
    /// Channels (1 or 3).
    pub channels: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
    /// CHW values.
    pub data: Vec<f32>,
}

impl Image {
    fn rgb(&self, y: usize, x: usize) -> RGBColor {
        let at = |c: usize| {
            let v = self.data[(c * self.height + y) * self.width + x];
            (v.clamp(0.0, 1.0) * 255.0).round() as u8
        };
        if self.channels >= 3 {
            RGBColor(at(0), at(1), at(2))
        } else {
            let v = at(0);
            RGBColor(v, v, v)
        }
    }
}

/// Rows of images with a label each (originals, reconstructions, ...).
#[derive(Debug, Clone)]
pub struct ImageGrid {
    /// Title.
    pub title: String,
    /// (row label, images).
    pub rows: Vec<(String, Vec<Image>)>,
    /// Screen pixels per image pixel.
    pub scale: usize,
}

impl ImageGrid {
    const LABEL: usize = 180;
    const GAP: usize = 4;
    const TOP: usize = 36;

    fn cell(&self) -> (usize, usize) {
        let first = self.rows.iter().find_map(|r| r.1.first());
        first.map_or((1, 1), |i| (i.height * self.scale, i.width * self.scale))
    }
}

impl Figure for ImageGrid {
    fn size(&self) -> (u32, u32) {
        let (h, w) = self.cell();
        let cols = self.rows.iter().map(|r| r.1.len()).max().unwrap_or(1);
        let width = Self::LABEL + cols * (w + Self::GAP) + Self::GAP;
        let height = Self::TOP + self.rows.len() * (h + Self::GAP) + Self::GAP;
        (width as u32, height as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).map_err(e)?;
        root.draw(&Text::new(self.title.clone(), (8, 8), (FONT, 18).into_font())).map_err(e)?;
        let (h, w) = self.cell();
        let s = self.scale as i32;
        for (r, (label, images)) in self.rows.iter().enumerate() {
            let top = (Self::TOP + r * (h + Self::GAP)) as i32;
            root.draw(&Text::new(label.clone(), (8, top + h as i32 / 2 - 8), (FONT, 14).into_font())).map_err(e)?;
            for (c, img) in images.iter().enumerate() {
                let left = (Self::LABEL + c * (w + Self::GAP)) as i32;
                for y in 0..img.height {
                    for x in 0..img.width {
                        let (px, py) = (left + x as i32 * s, top + y as i32 * s);
                        root.draw(&Rectangle::new([(px, py), (px + s, py + s)], img.rgb(y, x).filled())).map_err(e)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A matrix as coloured cells with their values (unit × factor mutual information):
/// white for 0 to dark blue for the largest value.
#[derive(Debug, Clone)]
pub struct Heatmap {
    /// Title.
    pub title: String,
    /// Row labels (top to bottom).
    pub rows: Vec<String>,
    /// Column labels (left to right).
    pub cols: Vec<String>,
    /// `values[row][col]`.
    pub values: Vec<Vec<f64>>,
}

impl Heatmap {
    const CELL: (usize, usize) = (96, 30);
    const LEFT: usize = 110;
    const TOP: usize = 70;

    fn colour(&self, v: f64) -> RGBColor {
        let hi = self.values.iter().flatten().copied().filter(|x| x.is_finite()).fold(0.0, f64::max).max(1e-12);
        let t = if v.is_finite() { (v / hi).clamp(0.0, 1.0) } else { 0.0 };
        // From white to Okabe & Ito's blue (0, 114, 178), darkened at the top end.
        let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
        RGBColor(mix(255.0, 0.0), mix(255.0, 80.0), mix(255.0, 140.0))
    }
}

impl Figure for Heatmap {
    fn size(&self) -> (u32, u32) {
        let (w, h) = Self::CELL;
        ((Self::LEFT + self.cols.len() * w + 20) as u32, (Self::TOP + self.rows.len() * h + 20) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).map_err(e)?;
        root.draw(&Text::new(self.title.clone(), (8, 8), (FONT, 18).into_font())).map_err(e)?;
        let (w, h) = (Self::CELL.0 as i32, Self::CELL.1 as i32);
        let (left, top) = (Self::LEFT as i32, Self::TOP as i32);
        for (c, name) in self.cols.iter().enumerate() {
            let x = left + c as i32 * w + 6;
            root.draw(&Text::new(name.clone(), (x, top - 22), (FONT, 14).into_font())).map_err(e)?;
        }
        for (r, (label, row)) in self.rows.iter().zip(&self.values).enumerate() {
            let y = top + r as i32 * h;
            root.draw(&Text::new(label.clone(), (8, y + h / 2 - 8), (FONT, 14).into_font())).map_err(e)?;
            for (c, &v) in row.iter().enumerate() {
                let x = left + c as i32 * w;
                let fill = self.colour(v);
                root.draw(&Rectangle::new([(x, y), (x + w - 2, y + h - 2)], fill.filled())).map_err(e)?;
                let dark = u32::from(fill.0) + u32::from(fill.1) + u32::from(fill.2) < 360;
                let ink = if dark { WHITE } else { BLACK };
                let text = if v.is_finite() { format!("{v:.2}") } else { "-".into() };
                root.draw(&Text::new(text, (x + w / 2 - 14, y + h / 2 - 8), (FONT, 14).into_font().color(&ink)))
                    .map_err(e)?;
            }
        }
        Ok(())
    }
}

/// A named line of a [`Lines`] chart.
#[derive(Debug, Clone, Default)]
pub struct Line {
    /// Legend entry.
    pub name: String,
    /// (x, y) points, sorted by x.
    pub points: Vec<(f64, f64)>,
    /// Dashed (a baseline) rather than solid.
    pub dashed: bool,
    /// A shaded band around the line: (x, low, high), e.g. the range over seeds.
    pub band: Vec<(f64, f64, f64)>,
}

/// How a [`Lines`] chart's x axis is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XScale {
    /// Linear.
    Linear,
    /// log₂ (bottleneck sizes, powers of two).
    Log2,
    /// log₁₀ (values spanning more than a decade: learning rates, β).
    Log10,
}

impl XScale {
    fn at(self, x: f64) -> f64 {
        match self {
            Self::Linear => x,
            Self::Log2 => x.log2(),
            Self::Log10 => x.log10(),
        }
    }

    /// The scale a researcher expects for these x values: log when every value is
    /// positive and they span more than a decade (log₂ when `powers_of_two`).
    #[must_use]
    pub fn for_values(xs: &[f64], powers_of_two: bool) -> Self {
        let (lo, hi) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        if powers_of_two && lo > 0.0 && hi > lo {
            Self::Log2
        } else if lo > 0.0 && hi / lo > 10.0 {
            Self::Log10
        } else {
            Self::Linear
        }
    }
}

/// Lines over an x axis (the sweep curve), each with an optional band; the x ticks sit at
/// the x values of the points.
#[derive(Debug, Clone)]
pub struct Lines {
    /// Title.
    pub title: String,
    /// Axis names.
    pub axes: (String, String),
    /// The lines.
    pub series: Vec<Line>,
    /// The x axis's scale.
    pub x_scale: XScale,
    /// Log scale on y.
    pub log_y: bool,
}

/// Evenly spaced candidate x labels of a [`Lines`] chart; those near a point are shown.
const LABEL_SLOTS: usize = 200;

fn tick_label(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-2 || v.abs() >= 1e5) {
        format!("{v:.0e}")
    } else if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round())
    } else {
        format!("{v}")
    }
}

/// The corner of a chart whose quarter (45% of the width, 40% of the height) holds the
/// fewest of `points` (in 0..1 of the axes); ties go to the upper right, then lower right.
fn legend_corner(points: &[(f64, f64)]) -> SeriesLabelPosition {
    let count = |right: bool, upper: bool| {
        points
            .iter()
            .filter(|(x, y)| (if right { *x > 0.55 } else { *x < 0.45 }) && (if upper { *y > 0.6 } else { *y < 0.4 }))
            .count()
    };
    let corners = [
        (SeriesLabelPosition::UpperRight, count(true, true)),
        (SeriesLabelPosition::LowerRight, count(true, false)),
        (SeriesLabelPosition::UpperLeft, count(false, true)),
        (SeriesLabelPosition::LowerLeft, count(false, false)),
    ];
    corners.into_iter().min_by_key(|c| c.1).map_or(SeriesLabelPosition::UpperRight, |c| c.0)
}

impl Lines {
    /// The legend's corner: the one with the fewest of the chart's points (of lines,
    /// their segments and bands), in axis units.
    fn legend_corner(&self, pts: &[(f64, f64)], (x0, x1): (f64, f64), (lo, hi): (f64, f64)) -> SeriesLabelPosition {
        let scale = self.x_scale;
        let usable = |x: f64| scale == XScale::Linear || x > 0.0;
        let y_at = |y: f64| if self.log_y { y.max(1e-300).log10() } else { y };
        let (ly0, ly1) = (y_at(lo), y_at(hi));
        let to_unit = |p: &(f64, f64)| {
            let fy = if ly1 > ly0 { (y_at(p.1) - ly0) / (ly1 - ly0) } else { 0.5 };
            ((scale.at(p.0) - x0) / (x1 - x0), fy)
        };
        let mut unit: Vec<(f64, f64)> = pts.iter().map(to_unit).collect();
        // The segments between a line's points count too (ten points each).
        for s in &self.series {
            let line: Vec<(f64, f64)> =
                s.points.iter().filter(|p| usable(p.0) && p.1.is_finite()).map(to_unit).collect();
            for w in line.windows(2) {
                unit.extend((1..10).map(|t| {
                    let f = f64::from(t) / 10.0;
                    (w[0].0 + (w[1].0 - w[0].0) * f, w[0].1 + (w[1].1 - w[0].1) * f)
                }));
            }
        }
        legend_corner(&unit)
    }
}

impl Figure for Lines {
    fn size(&self) -> (u32, u32) {
        (720, 460)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).map_err(e)?;
        let scale = self.x_scale;
        let usable = |x: f64| scale == XScale::Linear || x > 0.0;
        let pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied().chain(s.band.iter().flat_map(|b| [(b.0, b.1), (b.0, b.2)])))
            .filter(|p| usable(p.0) && p.1.is_finite())
            .collect();
        let mut raw_x: Vec<f64> = pts.iter().map(|p| p.0).collect();
        raw_x.sort_by(f64::total_cmp);
        raw_x.dedup();
        let xs: Vec<f64> = raw_x.iter().map(|&x| scale.at(x)).collect();
        let (x0, x1) = (xs.first().copied().unwrap_or(0.0), xs.last().copied().unwrap_or(1.0));
        let pad = ((x1 - x0) * 0.06).max(0.3);
        let (x0, x1) = (x0 - pad, x1 + pad);
        let lo = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let hi = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let corner = self.legend_corner(&pts, (x0, x1), (lo, hi));
        // Which x values get a label: each one at least 1/25 of the axis from the last
        // labelled (so 20 epochs are all labelled, close sizes not all).
        let mut labelled = vec![false; xs.len()];
        let mut last = f64::NEG_INFINITY;
        for (i, &x) in xs.iter().enumerate() {
            if x - last >= (x1 - x0) / 25.0 {
                labelled[i] = true;
                last = x;
            }
        }
        let mut builder = ChartBuilder::on(root);
        // A long title (a long sweep name) in a smaller font, to fit the width.
        let size = if self.title.chars().count() > 60 { 16 } else { 20 };
        builder.caption(&self.title, (FONT, size)).margin(12).x_label_area_size(40).y_label_area_size(70);
        // One body draws both y scales: the mesh and series code is the same.
        macro_rules! body {
            ($chart:ident) => {{
                $chart
                    .configure_mesh()
                    .x_desc(&self.axes.0)
                    .y_desc(&self.axes.1)
                    .disable_x_mesh()
                    .set_tick_mark_size(LabelAreaPosition::Bottom, 0)
                    .x_labels(LABEL_SLOTS)
                    .x_label_formatter(&|v| {
                        // Labels only at the points' own x values (the first of several
                        // close ones), found among many evenly spaced label slots.
                        let slot = (x1 - x0) / LABEL_SLOTS as f64;
                        match xs.iter().position(|t| (t - v).abs() <= slot / 2.0) {
                            Some(i) if labelled[i] => tick_label(raw_x[i]),
                            _ => String::new(),
                        }
                    })
                    .y_label_formatter(&|v| format!("{v:.4}"))
                    .draw()
                    .map_err(e)?;
                for (i, line) in self.series.iter().enumerate() {
                    let c = colour(i);
                    let band: Vec<(f64, f64, f64)> =
                        line.band.iter().filter(|b| usable(b.0)).map(|b| (scale.at(b.0), b.1, b.2)).collect();
                    if band.len() > 1 {
                        let outline: Vec<(f64, f64)> =
                            band.iter().map(|b| (b.0, b.2)).chain(band.iter().rev().map(|b| (b.0, b.1))).collect();
                        $chart.draw_series(std::iter::once(Polygon::new(outline, c.mix(0.18).filled()))).map_err(e)?;
                    }
                    let points: Vec<(f64, f64)> =
                        line.points.iter().filter(|p| usable(p.0)).map(|p| (scale.at(p.0), p.1)).collect();
                    let style = c.stroke_width(2);
                    if line.dashed {
                        $chart
                            .draw_series(DashedLineSeries::new(points.clone(), 8, 5, style))
                            .map_err(e)?
                            .label(line.name.as_str())
                            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
                        $chart.draw_series(points.iter().map(|p| Cross::new(*p, 4, c.stroke_width(2)))).map_err(e)?;
                    } else {
                        $chart
                            .draw_series(LineSeries::new(points.clone(), style))
                            .map_err(e)?
                            .label(line.name.as_str())
                            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
                        $chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, c.filled()))).map_err(e)?;
                    }
                }
                $chart
                    .configure_series_labels()
                    .position(corner)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .label_font((FONT, 14))
                    .draw()
                    .map_err(e)?;
            }};
        }
        if self.log_y {
            let (lo, hi) = (lo.max(1e-9) / 1.15, hi.max(1e-9) * 1.15);
            let mut chart = builder.build_cartesian_2d(x0..x1, (lo..hi).log_scale()).map_err(e)?;
            body!(chart);
        } else {
            let pad = ((hi - lo) * 0.08).max(1e-6);
            let mut chart = builder.build_cartesian_2d(x0..x1, lo - pad..hi + pad).map_err(e)?;
            body!(chart);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders `fig` to a temp dir and checks the PNG has more than one colour.
    fn not_blank(fig: &impl Figure, stem: &str) {
        let dir = tempfile::tempdir().unwrap();
        let png = save(fig, dir.path(), stem).unwrap();
        let img = std::fs::read(&png).unwrap();
        assert!(img.len() > 1000, "{stem}: {} bytes", img.len());
        let svg = std::fs::read_to_string(dir.path().join(format!("{stem}.svg"))).unwrap();
        assert!(svg.contains("<rect") || svg.contains("<polyline") || svg.contains("<path"), "{stem}: empty svg");
    }

    #[test]
    fn term_panels_bars_and_distributions_render() {
        let panel = |name: &str, f: fn(usize) -> f64| LossPanel {
            name: name.into(),
            unit: "nats per image".into(),
            train: (1..=5).map(|e| (e, f(e))).collect(),
            val: (1..=5).map(|e| (e, f(e) * 1.1)).collect(),
        };
        let curves = LossCurves {
            title: "terms".into(),
            panels: vec![
                panel("loss", |e| 300.0 / e as f64),
                panel("kl", |e| e as f64),
                panel("gauss", |e| -(e as f64)),
            ],
        };
        not_blank(&curves, "terms");
        not_blank(
            &Bars { title: "kl".into(), x_desc: "unit".into(), y_desc: "nats".into(), values: vec![3.0, 0.0, 1.5] },
            "bars",
        );
        let values: Vec<f64> = (0..500).map(|i| f64::from(i % 37) / 37.0).collect();
        not_blank(&Distribution { title: "codes".into(), x_desc: "z".into(), values, bins: 40 }, "dist");
        not_blank(
            &Distribution { title: "constant".into(), x_desc: "z".into(), values: vec![0.0; 10], bins: 40 },
            "flat",
        );
    }

    #[test]
    fn lines_with_bands_and_heat_maps_render() {
        let line = |name: &str, dashed| Line {
            name: name.into(),
            points: vec![(1e-4, 0.3), (1e-3, 0.2), (1e-2, 0.25)],
            dashed,
            band: vec![(1e-4, 0.28, 0.33), (1e-3, 0.18, 0.22), (1e-2, 0.2, 0.3)],
        };
        let xs = [1e-4, 1e-3, 1e-2];
        assert_eq!(XScale::for_values(&xs, false), XScale::Log10);
        assert_eq!(XScale::for_values(&[2.0, 4.0, 8.0], true), XScale::Log2);
        assert_eq!(XScale::for_values(&[0.0, 0.1, 0.3], false), XScale::Linear);
        let fig = Lines {
            title: "lr".into(),
            axes: ("train.lr".into(), "test MSE".into()),
            series: vec![line("seed mean", false), line("baseline", true)],
            x_scale: XScale::Log10,
            log_y: true,
        };
        not_blank(&fig, "lines");
        assert_eq!((tick_label(1e-4), tick_label(8.0), tick_label(0.5)), ("1e-4".into(), "8".into(), "0.5".into()));
        let map = Heatmap {
            title: "mi".into(),
            rows: vec!["z0".into(), "z1".into()],
            cols: vec!["shape".into(), "scale".into()],
            values: vec![vec![0.9, 0.1], vec![0.0, f64::NAN]],
        };
        not_blank(&map, "heat");
    }
}
