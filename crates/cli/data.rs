//! `bottleneck data list | inspect NAME | fetch NAME`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use bottleneck_data::{
    fetch, find_source, hub, source, DataConfig, DataError, Format, Normalize, RawDataset, SearchPath, SOURCES,
};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Every dataset source, where its files are expected, and whether they were found.
    List,
    /// Load a dataset and print its splits, shape, value range, mean and label histogram.
    Inspect {
        /// Source name (see `bottleneck data list`).
        name: String,
        /// Folder holding the files (default: BOTTLENECK_DATA_DIR, then
        /// /usr/share/datasets/NAME, then the cache dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Tables: the CSV or Parquet file; images: the folder.
        #[arg(long)]
        path: Option<PathBuf>,
        /// Images (and the synthetic image sets): the side images are resized to.
        #[arg(long)]
        image_size: Option<usize>,
        /// Images: 3 (RGB) or 1 (grey).
        #[arg(long)]
        channels: Option<usize>,
        /// Images: skip unreadable files instead of failing.
        #[arg(long)]
        skip_bad: bool,
        /// Tables: the label column.
        #[arg(long)]
        label: Option<String>,
        /// Tables: feature columns, comma-separated (default: all but the label).
        #[arg(long, value_delimiter = ',')]
        features: Vec<String>,
        /// Hub: the Hugging Face dataset id (see `bottleneck data list`).
        #[arg(long)]
        repo: Option<String>,
        /// Seed for generated sets and table splits.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Download a dataset from its canonical mirrors into the cache dir, checking SHA-256;
    /// `fetch hub --repo ID` downloads a Hugging Face dataset into the hub cache.
    Fetch {
        /// Source name.
        name: String,
        /// Use this mirror (base URL) instead of the canonical ones.
        #[arg(long)]
        mirror: Vec<String>,
        /// Hub: the Hugging Face dataset id.
        #[arg(long)]
        repo: Option<String>,
    },
}

pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::List => list(),
        DataCommand::Inspect { name, dir, path, image_size, channels, skip_bad, label, features, repo, seed } => {
            let defaults = DataConfig::default();
            let cfg = DataConfig {
                image_size: image_size.unwrap_or(defaults.image_size),
                channels: channels.unwrap_or(defaults.channels),
                skip_bad,
                name,
                repo: repo.unwrap_or_default(),
                dir: dir.map(|d| d.display().to_string()).unwrap_or_default(),
                path: path.map(|p| p.display().to_string()).unwrap_or_default(),
                label: label.unwrap_or_default(),
                features,
                normalize: Normalize::None,
                ..DataConfig::default()
            };
            inspect(&cfg, seed)
        }
        DataCommand::Fetch { name, mirror, repo } => {
            let src = find_source(&name)?;
            if src.format == Format::Hub {
                let repo = repo.context("`data fetch hub` needs --repo ID (see `bottleneck data list`)")?;
                for path in hub::fetch(&repo)? {
                    crate::out(&format!("{}\n", path.display()));
                }
                crate::out(&format!("{repo} is in the Hugging Face cache\n"));
                return Ok(());
            }
            let root = source::cache_root().context("no cache directory: set BOTTLENECK_CACHE_DIR")?;
            let report = fetch(src, &root, &mirror)?;
            for f in &report.present {
                crate::out(&format!("{f}: already present, checksum ok\n"));
            }
            for f in &report.downloaded {
                crate::out(&format!("{f}: downloaded, checksum ok\n"));
            }
            crate::out(&format!("{} is in {}\n", src.name, report.dir.display()));
            Ok(())
        }
    }
}

fn list() -> Result<()> {
    let search = SearchPath::from_env("");
    let mut out = String::new();
    for src in SOURCES {
        writeln!(out, "{:<14} {:<16} {}", src.name, src.format.label(), src.description)?;
        match src.format {
            Format::Idx | Format::Cifar10 => {
                match search.locate(src) {
                    Ok(dir) => writeln!(out, "{:<14} found: {}", "", dir.display())?,
                    Err(_) => writeln!(out, "{:<14} not found; {}", "", source::how_to_get(src))?,
                }
                let places: Vec<String> = search.candidates(src).iter().map(|p| p.display().to_string()).collect();
                writeln!(out, "{:<14} looked in: {}", "", places.join(", "))?;
            }
            Format::Csv | Format::Parquet => writeln!(out, "{:<14} file: data.path", "")?,
            Format::Images => writeln!(out, "{:<14} folder: data.path", "")?,
            Format::Synthetic => writeln!(out, "{:<14} generated, needs no files", "")?,
            Format::Hub => list_hub(&mut out)?,
        }
    }
    crate::out(&out);
    Ok(())
}

/// The hub's datasets and whether the local Hugging Face cache holds them.
fn list_hub(out: &mut String) -> Result<()> {
    for repo in hub::HUB_REPOS {
        let state = match hub::cached_files(repo.id) {
            Ok(files) => format!("in the cache: {}", files[0].display()),
            Err(DataError::NotFound { .. }) => {
                format!("not in the cache; bottleneck data fetch hub --repo {}", repo.id)
            }
            Err(_) if !cfg!(feature = "hub") => "needs a binary built with --features hub".into(),
            Err(e) => e.to_string(),
        };
        writeln!(out, "{:<14} data.repo = {:<32} {state}", "", repo.id)?;
    }
    Ok(())
}

fn inspect(cfg: &DataConfig, seed: u64) -> Result<()> {
    let t0 = Instant::now();
    let src = find_source(&cfg.name)?;
    let (ds, images) = if src.format == Format::Images {
        cfg.validate()?;
        let (ds, summary) = bottleneck_data::images::load_with_summary(src, cfg, seed)?;
        (ds, Some(summary))
    } else {
        (RawDataset::load(cfg, seed)?, None)
    };
    let load_s = t0.elapsed().as_secs_f64();
    let shape = ds.sample_shape.iter().map(ToString::to_string).collect::<Vec<_>>().join("×");
    let features: usize = ds.sample_shape.iter().product();
    let unit = if ds.pixels { "pixel values in [0, 1]" } else { "feature values" };
    let mut out = String::new();
    writeln!(out, "{}  ({})", ds.name, ds.location.display())?;
    writeln!(out, "loaded in {load_s:.3} s")?;
    if let Some(summary) = &images {
        out.push_str(&summary.describe());
    }
    writeln!(out, "sample shape {shape} ({features} features)")?;
    if !ds.feature_names.is_empty() {
        writeln!(out, "features: {}", ds.feature_names.join(", "))?;
    }
    writeln!(out, "{:<6} {:>8}  {:<26} {:>8}", "split", "samples", unit, "mean")?;
    for (name, split) in [("train", &ds.train), ("test", &ds.test)] {
        match split.value_stats()? {
            Some((min, max, mean)) => {
                let range = format!("[{min:.4}, {max:.4}]");
                writeln!(out, "{name:<6} {:>8}  {range:<26} {mean:>8.4}", split.len())?;
            }
            None => writeln!(out, "{name:<6} {:>8}  (empty)", 0)?,
        }
    }
    let mib = |s: &bottleneck_data::Split| s.stored_bytes() as f64 / (1024.0 * 1024.0);
    writeln!(
        out,
        "memory: train {:.1} MiB, test {:.1} MiB ({} features)",
        mib(&ds.train),
        mib(&ds.test),
        ds.train.stored_dtype()
    )?;
    if let Some(f) = &ds.train.factors {
        writeln!(out, "known factors (training split):")?;
        let cols: Vec<Vec<f32>> = f.t()?.to_vec2()?;
        for (fac, values) in ds.factors.iter().zip(&cols) {
            let (lo, hi) = values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
            let kind = if fac.categories > 0 {
                format!("categorical, {} categories", fac.categories)
            } else {
                "continuous".into()
            };
            writeln!(out, "  {:<12} {kind:<28} [{lo:.4}, {hi:.4}]", fac.name)?;
        }
    }
    if ds.classes.is_empty() {
        writeln!(out, "no labels")?;
    } else {
        let k = ds.classes.len();
        writeln!(out, "{k} classes; label histogram:")?;
        writeln!(out, "  {:>5}  {:<14} {:>8} {:>8}", "label", "name", "train", "test")?;
        let (tr, te) = (ds.train.label_histogram(k), ds.test.label_histogram(k));
        for (c, name) in ds.classes.iter().enumerate() {
            writeln!(out, "  {c:>5}  {name:<14} {:>8} {:>8}", tr[c], te[c])?;
        }
    }
    let val = (ds.train.len() as f64 * cfg.val_fraction).round() as usize;
    writeln!(
        out,
        "training holds out data.val_fraction = {} for validation: {} train / {val} val / {} test",
        cfg.val_fraction,
        ds.train.len() - val,
        ds.test.len()
    )?;
    crate::out(&out);
    Ok(())
}
