//! Image folders (`data.name = "images"`, `data.path = DIR`): PNG and JPEG files, decoded
//! in parallel with rayon, centre-cropped and resized to `data.image_size`.
//!
//! Layout, as torchvision's `ImageFolder` reads it: when DIR has sub-folders, each one is a
//! class (sorted by name; images anywhere below it belong to it; images directly in DIR are
//! then ignored), otherwise DIR is a flat, unlabelled folder (`CelebA`'s layout). When DIR
//! holds both `train/` and `test/`, they are the two splits, each read as above with the
//! classes of both; otherwise `data.test_fraction` of the images is the seeded test split.
//! Hidden files and folders (a leading `.`) are skipped.
//!
//! The file list is cached (in the cache dir, `images-index/`) with the modification time of
//! every folder it walked, so a second load of an unchanged tree reads no directory.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Instant, UNIX_EPOCH};

use image::imageops::FilterType;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::config::{Crop, DataConfig};
use crate::dataset::{partition_rows, split_indices, RawDataset, Split};
use crate::error::{DataError, Result};
use crate::source::Source;

/// File extensions read as images (lower-cased).
pub const EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];

/// Folders deeper than this below DIR are not walked (a guard against link cycles).
const MAX_DEPTH: usize = 32;

/// First line of a cached file list; a different one (an older layout) is ignored.
const INDEX_HEADER: &str = "bottleneck image index v1";

/// The files of an image folder, as walked (or read back from the cached list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The folder (`data.path`).
    pub root: PathBuf,
    /// Every folder walked, relative to `root` (`""` is the root), with its modification
    /// time in nanoseconds since the epoch; sorted.
    pub dirs: Vec<(PathBuf, u128)>,
    /// Every image file, relative to `root`; sorted.
    pub files: Vec<PathBuf>,
    /// True when this came from the cached list rather than a walk.
    pub from_cache: bool,
}

/// What a load found and did, for `bottleneck data inspect images`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Image files found.
    pub found: usize,
    /// Files skipped as unreadable (`data.skip_bad = true`), with the reason of each.
    pub skipped: Vec<(PathBuf, String)>,
    /// Images not used: directly in a folder that has class sub-folders, or outside
    /// `train/` and `test/` when those are the splits.
    pub ignored_loose: usize,
    /// Distinct image sizes before cropping, `(width, height, count)`, most frequent first.
    pub sizes: Vec<(u32, u32, usize)>,
    /// True when the file list came from the cache.
    pub listing_cached: bool,
    /// Seconds spent listing files.
    pub list_s: f64,
    /// Seconds spent decoding, cropping and resizing.
    pub decode_s: f64,
}

impl Summary {
    /// Human-readable lines (sizes, decode rate, what was skipped).
    #[must_use]
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let rate = self.found as f64 / self.decode_s.max(1e-9);
        let how = if self.listing_cached { "the cached file list" } else { "a walk of the folder" };
        let _ = writeln!(out, "{} image files, listed from {how} in {:.3} s", self.found, self.list_s);
        let _ = writeln!(out, "decoded, cropped and resized in {:.3} s ({rate:.0} images/s)", self.decode_s);
        let sizes: Vec<String> = self.sizes.iter().take(8).map(|(w, h, n)| format!("{w}×{h} ({n})")).collect();
        let more =
            if self.sizes.len() > 8 { format!(", and {} more sizes", self.sizes.len() - 8) } else { String::new() };
        let _ = writeln!(out, "image sizes found: {}{more}", sizes.join(", "));
        if self.ignored_loose > 0 {
            let _ = writeln!(
                out,
                "{} images were not used (beside class sub-folders, or outside train/ and test/)",
                self.ignored_loose
            );
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(out, "skipped {} unreadable images (data.skip_bad = true):", self.skipped.len());
            for (p, why) in self.skipped.iter().take(5) {
                let _ = writeln!(out, "  {}: {why}", p.display());
            }
        }
        out
    }
}

/// Loads an image folder as a dataset (see the module docs for the layout).
pub fn load(source: &Source, cfg: &DataConfig, seed: u64) -> Result<RawDataset> {
    load_with_summary(source, cfg, seed).map(|(raw, _)| raw)
}

/// [`load`], also returning what was found and how long it took.
pub fn load_with_summary(source: &Source, cfg: &DataConfig, seed: u64) -> Result<(RawDataset, Summary)> {
    cfg.check_path()?;
    let root = PathBuf::from(&cfg.path);
    let t0 = Instant::now();
    let listing = list(&root)?;
    let list_s = t0.elapsed().as_secs_f64();
    let plan = Plan::of(&listing);
    if plan.entries.is_empty() {
        let why = if plan.ignored_loose > 0 {
            format!("its {} images lie beside class sub-folders, which hold none", plan.ignored_loose)
        } else {
            format!("no files named *.{} below it (hidden files and folders are skipped)", EXTENSIONS.join(", *."))
        };
        return Err(DataError::NoImages { dir: root, why });
    }
    let t1 = Instant::now();
    let decoded = decode_all(&root, &plan.entries, cfg)?;
    let decode_s = t1.elapsed().as_secs_f64();
    let c = cfg.channels;
    let s = cfg.image_size;
    let n = decoded.kept.len();
    if n == 0 {
        let (p, reason) = &decoded.skipped[0];
        let why = format!(
            "all {} images are unreadable (skipped with data.skip_bad = true); the first, {}: {reason}",
            decoded.skipped.len(),
            p.display()
        );
        return Err(DataError::NoImages { dir: root, why });
    }
    let (train_idx, test_idx) = if plan.split_folders {
        let is_test = |j: &u32| plan.entries[decoded.kept[*j as usize]].test;
        ((0..n as u32).filter(|j| !is_test(j)).collect(), (0..n as u32).filter(is_test).collect())
    } else {
        split_indices(n, cfg.test_fraction, seed)
    };
    let labelled = !plan.classes.is_empty();
    let labels = |idx: &[u32]| {
        labelled.then(|| idx.iter().map(|&j| plan.entries[decoded.kept[j as usize]].label).collect::<Vec<u32>>())
    };
    let (train_labels, test_labels) = (labels(&train_idx), labels(&test_idx));
    let Decoded { pixels, skipped, sizes, .. } = decoded;
    // The test rows are copied out and the training rows moved down in place: the bytes
    // are never held twice.
    let (train_bytes, test_bytes) = partition_rows(pixels, c * s * s, &train_idx, &test_idx);
    let train = Split::from_bytes(train_bytes, &[train_idx.len(), c, s, s], train_labels)?;
    let test = Split::from_bytes(test_bytes, &[test_idx.len(), c, s, s], test_labels)?;
    let summary = Summary {
        found: plan.entries.len(),
        skipped,
        ignored_loose: plan.ignored_loose,
        sizes,
        listing_cached: listing.from_cache,
        list_s,
        decode_s,
    };
    warn_about(&root, &summary);
    let raw = RawDataset {
        name: source.name.into(),
        sample_shape: vec![c, s, s],
        classes: plan.classes,
        feature_names: Vec::new(),
        factors: Vec::new(),
        location: root,
        pixels: true,
        train,
        test,
    };
    Ok((raw, summary))
}

/// Logs what was skipped or left out (the summary says it too).
fn warn_about(root: &Path, summary: &Summary) {
    if !summary.skipped.is_empty() {
        let (p, why) = &summary.skipped[0];
        tracing::warn!(
            "{}: skipped {} unreadable images (data.skip_bad = true), the first {}: {why}",
            root.display(),
            summary.skipped.len(),
            p.display()
        );
    }
    if summary.ignored_loose > 0 {
        tracing::warn!(
            "{}: {} images lie beside class sub-folders (or outside train/ and test/); they are not used",
            root.display(),
            summary.ignored_loose
        );
    }
}

/// One image to load: its path relative to the root, label and split.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    path: PathBuf,
    label: u32,
    test: bool,
}

/// The layout read off a listing.
#[derive(Debug, Default)]
struct Plan {
    entries: Vec<Entry>,
    classes: Vec<String>,
    split_folders: bool,
    ignored_loose: usize,
}

impl Plan {
    fn of(listing: &Listing) -> Self {
        let subdirs = |of: &Path| -> BTreeSet<String> {
            listing
                .dirs
                .iter()
                .filter(|(d, _)| d.parent() == Some(of) && !d.as_os_str().is_empty())
                .filter_map(|(d, _)| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect()
        };
        let top = subdirs(Path::new(""));
        let split_folders = top.contains("train") && top.contains("test");
        let roots: Vec<(PathBuf, bool)> = if split_folders {
            vec![(PathBuf::from("train"), false), (PathBuf::from("test"), true)]
        } else {
            vec![(PathBuf::new(), false)]
        };
        let classes: Vec<String> =
            roots.iter().flat_map(|(r, _)| subdirs(r)).collect::<BTreeSet<_>>().into_iter().collect();
        let mut plan = Self { classes, split_folders, ..Self::default() };
        for file in &listing.files {
            let Some((root, test)) = roots.iter().find(|(r, _)| file.starts_with(r)) else {
                plan.ignored_loose += 1;
                continue;
            };
            let rel = file.strip_prefix(root).unwrap_or(file);
            let mut parts = rel.components();
            let first = parts.next().map(|c| c.as_os_str().to_string_lossy().into_owned());
            let loose = parts.next().is_none();
            let label = if plan.classes.is_empty() {
                0
            } else if loose {
                plan.ignored_loose += 1;
                continue;
            } else {
                let name = first.unwrap_or_default();
                plan.classes.binary_search(&name).unwrap_or_default() as u32
            };
            plan.entries.push(Entry { path: file.clone(), label, test: *test });
        }
        plan
    }
}

fn mtime_ns(path: &Path) -> Result<u128> {
    let meta = fs_err::metadata(path)?;
    Ok(meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos()))
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

fn is_image(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Walks `root` for image files (following links, at most 32 folders down).
pub fn walk(root: &Path) -> Result<Listing> {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    let mut stack = vec![(PathBuf::new(), 0usize)];
    while let Some((rel, depth)) = stack.pop() {
        let abs = root.join(&rel);
        dirs.push((rel.clone(), mtime_ns(&abs)?));
        for entry in fs_err::read_dir(&abs)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_hidden(&name) {
                continue;
            }
            let child = rel.join(&name);
            // `metadata` follows links: a linked folder or image counts as one.
            let Ok(meta) = fs_err::metadata(entry.path()) else { continue };
            if meta.is_dir() {
                if depth < MAX_DEPTH {
                    stack.push((child, depth + 1));
                }
            } else if meta.is_file() && is_image(&child) {
                files.push(child);
            }
        }
    }
    dirs.sort();
    files.sort();
    Ok(Listing { root: root.into(), dirs, files, from_cache: false })
}

/// Where the cached file list of `root` lives (`None` without a cache dir).
#[must_use]
pub fn index_path(root: &Path) -> Option<PathBuf> {
    let canonical = fs_err::canonicalize(root).unwrap_or_else(|_| root.into());
    let digest = Sha256::digest(canonical.to_string_lossy().as_bytes());
    let hex = digest.iter().take(12).fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    });
    crate::source::cache_root().map(|c| c.join("images-index").join(format!("{hex}.tsv")))
}

/// The file list of `root`: the cached one when every folder it walked still has its
/// recorded modification time, else a fresh walk, which is then cached.
pub fn list(root: &Path) -> Result<Listing> {
    let index = index_path(root);
    if let Some(cached) = index.as_deref().and_then(|p| read_index(p, root)) {
        let fresh = cached.dirs.iter().all(|(d, t)| mtime_ns(&root.join(d)).is_ok_and(|now| now == *t));
        if fresh {
            return Ok(cached);
        }
    }
    let listing = walk(root)?;
    if let Some(path) = index {
        if let Err(e) = crate::atomic::write_atomic(&path, render_index(&listing).as_bytes()) {
            tracing::warn!("could not cache the file list of {} in {}: {e}", root.display(), path.display());
        }
    }
    Ok(listing)
}

fn render_index(listing: &Listing) -> String {
    let mut out = format!("{INDEX_HEADER}\t{}\n", listing.root.display());
    for (d, t) in &listing.dirs {
        let _ = writeln!(out, "D\t{t}\t{}", d.display());
    }
    for f in &listing.files {
        let _ = writeln!(out, "F\t{}", f.display());
    }
    out
}

fn read_index(path: &Path, root: &Path) -> Option<Listing> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let header = lines.next()?;
    if header.split('\t').next() != Some(INDEX_HEADER) {
        return None;
    }
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    for line in lines {
        let mut parts = line.splitn(3, '\t');
        match (parts.next()?, parts.next(), parts.next()) {
            ("D", Some(t), Some(d)) => dirs.push((PathBuf::from(d), t.parse().ok()?)),
            ("F", Some(f), None) => files.push(PathBuf::from(f)),
            _ => return None,
        }
    }
    // A list without its root folder was cut short: walk again.
    dirs.iter().any(|(d, _)| d.as_os_str().is_empty()).then(|| Listing {
        root: root.into(),
        dirs,
        files,
        from_cache: true,
    })
}

/// Decoded pixels of the readable images, `[n, c, s, s]` bytes, and what was skipped.
struct Decoded {
    pixels: Vec<u8>,
    /// Indices (into the plan's entries) of the images in `pixels`, in order.
    kept: Vec<usize>,
    skipped: Vec<(PathBuf, String)>,
    sizes: Vec<(u32, u32, usize)>,
}

fn decode_all(root: &Path, entries: &[Entry], cfg: &DataConfig) -> Result<Decoded> {
    let per = cfg.channels * cfg.image_size * cfg.image_size;
    let mut pixels = vec![0u8; entries.len() * per];
    let results: Vec<std::result::Result<(u32, u32), String>> = pixels
        .par_chunks_mut(per)
        .zip(entries.par_iter())
        .map(|(out, e)| decode_into(&root.join(&e.path), cfg, out))
        .collect();
    let mut kept = Vec::with_capacity(entries.len());
    let mut skipped = Vec::new();
    let mut sizes = std::collections::BTreeMap::<(u32, u32), usize>::new();
    for (i, r) in results.into_iter().enumerate() {
        let path = root.join(&entries[i].path);
        match r {
            Ok(wh) => {
                *sizes.entry(wh).or_default() += 1;
                kept.push(i);
            }
            Err(reason) if cfg.skip_bad => skipped.push((path, reason)),
            Err(reason) => return Err(DataError::Image { path, reason }),
        }
    }
    if !skipped.is_empty() {
        // Close the gaps the skipped images left.
        let rows: Vec<u32> = kept.iter().map(|&i| i as u32).collect();
        pixels = partition_rows(pixels, per, &rows, &[]).0;
    }
    let mut sizes: Vec<(u32, u32, usize)> = sizes.into_iter().map(|((w, h), n)| (w, h, n)).collect();
    sizes.sort_by(|a, b| b.2.cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
    Ok(Decoded { pixels, kept, skipped, sizes })
}

/// Decodes one image into `out` (`[c, s, s]` bytes): centre crop (or none), resize with a
/// triangle (bilinear, antialiased) filter, grey by ITU-R 601 luma as PIL's `convert("L")`.
/// Returns the size of the file's image.
#[allow(clippy::many_single_char_names)]
fn decode_into(path: &Path, cfg: &DataConfig, out: &mut [u8]) -> std::result::Result<(u32, u32), String> {
    let img = image::ImageReader::open(path)
        .map_err(|e| e.to_string())?
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .decode()
        .map_err(|e| e.to_string())?;
    let (w, h) = (img.width(), img.height());
    let (x, y, cw, ch) = match cfg.crop {
        Crop::None => (0, 0, w, h),
        Crop::Center => {
            let side = if cfg.crop_size == 0 { w.min(h) } else { cfg.crop_size as u32 };
            if side > w || side > h {
                return Err(format!("the image is {w}×{h}, smaller than data.crop_size = {side}"));
            }
            ((w - side) / 2, (h - side) / 2, side, side)
        }
    };
    let s = cfg.image_size as u32;
    let plane = (s * s) as usize;
    if cfg.channels == 1 {
        let img = if (cw, ch) == (w, h) { img } else { img.crop_imm(x, y, cw, ch) };
        let grey = if img.color().has_color() {
            let rgb = img.into_rgb8();
            let (gw, gh) = rgb.dimensions();
            let luma: Vec<u8> = rgb
                .pixels()
                .map(|p| {
                    let [r, g, b] = p.0;
                    // PIL's L = R·299/1000 + G·587/1000 + B·114/1000, rounded.
                    ((u32::from(r) * 299 + u32::from(g) * 587 + u32::from(b) * 114 + 500) / 1000) as u8
                })
                .collect();
            image::GrayImage::from_raw(gw, gh, luma).ok_or("grey conversion failed")?
        } else {
            img.into_luma8()
        };
        let resized = resize(grey, s);
        out[..plane].copy_from_slice(resized.as_raw());
    } else {
        let img = if (cw, ch) == (w, h) { img } else { img.crop_imm(x, y, cw, ch) };
        let rgb = resize(img.into_rgb8(), s);
        for (i, p) in rgb.pixels().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = p.0[c];
            }
        }
    }
    Ok((w, h))
}

fn resize<P: image::Pixel<Subpixel = u8> + 'static>(
    img: image::ImageBuffer<P, Vec<u8>>,
    s: u32,
) -> image::ImageBuffer<P, Vec<u8>> {
    if img.width() == s && img.height() == s {
        img
    } else {
        image::imageops::resize(&img, s, s, FilterType::Triangle)
    }
}
