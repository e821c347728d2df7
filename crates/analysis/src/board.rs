//! The report's part of a run's TensorBoard folder (`tb/`): the figures as images, and
//! the embedding projector's files — test codes (`projector/tensors.tsv`), their labels,
//! class names and known factors (`projector/metadata.tsv`), a sprite of the test inputs
//! (`projector/sprite.png`) and `projector_config.pbtxt`, which TensorBoard's projector
//! reads from the run's folder.

use std::fmt::Write as _;
use std::path::Path;

use bottleneck_train::runner::Setup;
use bottleneck_train::tensorboard::{self, What};
use bottleneck_train::{checkpoint, RunDir};
use plotters::prelude::*;

use crate::error::{AnalysisError, Result};
use crate::run_report::{subsample, Fig, Latents};

/// Test codes in the projector (its sprite holds one image per code, at most 8192 px a
/// side: 2,000 images of 32×32 take 1,440).
pub const PROJECTOR_POINTS: usize = 2000;

/// Writes the report's event file and, from the run's test codes, the projector's files
/// into `dir/tb`.
pub fn write(dir: &RunDir, setup: Option<&Setup>, latents: Option<&Latents>, figs: &[Fig], seed: u64) -> Result<()> {
    let tb = dir.path.join(tensorboard::DIR);
    // At the run's last step, where its training curves end.
    let step = checkpoint::read_state(&dir.last_checkpoint()).map_or(0, |s| s.step);
    let mut events: Vec<(u64, What)> = Vec::new();
    for f in figs {
        let tag = Path::new(&f.png).file_stem().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        events.push((step, tensorboard::image(&format!("report/{tag}"), fs_err::read(dir.path.join(&f.png))?)?));
    }
    tensorboard::write_file(&tb, "report", events)?;
    if let (Some(s), Some(l)) = (setup, latents) {
        projector(&tb, s, l, seed)?;
    }
    Ok(())
}

fn projector(tb: &Path, s: &Setup, (codes, labels, k): &Latents, seed: u64) -> Result<()> {
    let (rows, k) = (labels.len(), *k);
    if rows == 0 || k == 0 {
        return Ok(());
    }
    let test = &s.data.test;
    // The codes are the test split's rows in order; the inputs and factors line up only
    // while the data is the one the run was trained on.
    let same = test.len() == rows;
    let pick = subsample(rows, PROJECTOR_POINTS, seed ^ 0x9e3);
    let mut tensors = String::new();
    for &i in &pick {
        let row: Vec<String> = codes[i * k..(i + 1) * k].iter().map(f32::to_string).collect();
        let _ = writeln!(tensors, "{}", row.join("\t"));
    }
    let factors: Vec<Vec<f32>> = match (&test.factors, same) {
        (Some(f), true) => f.to_vec2()?,
        _ => Vec::new(),
    };
    let mut meta = String::from("index\tlabel\tclass");
    if !factors.is_empty() {
        for f in &s.data.factors {
            let _ = write!(meta, "\t{}", f.name);
        }
    }
    meta.push('\n');
    for &i in &pick {
        let class = s.data.classes.get(labels[i] as usize).map_or_else(|| labels[i].to_string(), Clone::clone);
        let _ = write!(meta, "{i}\t{}\t{}", labels[i], class.replace(['\t', '\n'], " "));
        if let Some(row) = factors.get(i) {
            for v in row {
                let _ = write!(meta, "\t{v}");
            }
        }
        meta.push('\n');
    }
    let folder = tb.join("projector");
    fs_err::create_dir_all(&folder)?;
    bottleneck_data::atomic::write_atomic(&folder.join("tensors.tsv"), tensors.as_bytes())?;
    bottleneck_data::atomic::write_atomic(&folder.join("metadata.tsv"), meta.as_bytes())?;
    let mut config = format!(
        "embeddings {{\n  tensor_name: \"test codes (k = {k}, {} of {rows} test rows)\"\n  tensor_path: \"projector/tensors.tsv\"\n  metadata_path: \"projector/metadata.tsv\"\n",
        pick.len()
    );
    if same && s.data.sample_shape.len() == 3 {
        let (w, h) = sprite(&folder.join("sprite.png"), s, &pick)?;
        let _ = writeln!(
            config,
            "  sprite {{\n    image_path: \"projector/sprite.png\"\n    single_image_dim: {w}\n    single_image_dim: {h}\n  }}"
        );
    }
    config.push_str("}\n");
    bottleneck_data::atomic::write_atomic(&tb.join("projector_config.pbtxt"), config.as_bytes())?;
    Ok(())
}

/// The test inputs `pick` in a square grid, row by row (the projector's sprite); returns
/// one image's width and height.
fn sprite(path: &Path, s: &Setup, pick: &[usize]) -> Result<(usize, usize)> {
    let shape = &s.data.sample_shape;
    let (c, h, w) = (shape[0], shape[1], shape[2]);
    let side = (pick.len() as f64).sqrt().ceil().max(1.0) as usize;
    let idx: Vec<u32> = pick.iter().map(|&i| i as u32).collect();
    let xs = s.data.normalizer.invert(&s.data.test.rows(&idx)?)?;
    let px: Vec<f32> = xs.flatten_all()?.to_vec1()?;
    let tmp = path.with_file_name(format!(".tmp-{}-sprite.png", std::process::id()));
    let fail = |r: String| AnalysisError::Plot { path: path.into(), reason: r };
    {
        let root = BitMapBackend::new(&tmp, ((side * w) as u32, (side * h) as u32)).into_drawing_area();
        root.fill(&BLACK).map_err(|e| fail(e.to_string()))?;
        let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        for (n, img) in px.chunks(c * h * w).enumerate() {
            let (x0, y0) = ((n % side) * w, (n / side) * h);
            for y in 0..h {
                for x in 0..w {
                    let at = |ch: usize| byte(img[(ch.min(c - 1) * h + y) * w + x]);
                    let colour = RGBColor(at(0), at(1), at(2));
                    let pos = (i32::try_from(x0 + x).unwrap_or(i32::MAX), i32::try_from(y0 + y).unwrap_or(i32::MAX));
                    root.draw_pixel(pos, &colour).map_err(|e| fail(e.to_string()))?;
                }
            }
        }
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    fs_err::rename(&tmp, path)?;
    Ok((w, h))
}
