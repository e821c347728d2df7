//! The `[data]` section of an experiment config.

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// How features are scaled. Statistics are always fitted on the training split only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    /// Scale to [0, 1]: pixels divide by 255; table features use the training min/max.
    #[default]
    Unit,
    /// Per-feature zero mean and unit variance (population std; constant features keep scale 1).
    Standard,
    /// Leave values as loaded (pixels still become [0, 1]).
    None,
}

/// How an image folder's images are cropped before they are resized to `data.image_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Crop {
    /// The centred square of side `data.crop_size` (0: the shorter side), as torchvision's
    /// `CenterCrop`; then resized, so the aspect ratio is kept.
    #[default]
    Center,
    /// No crop: the whole image is resized to a square (stretched when not square).
    None,
}

/// `[data]`: which dataset, where its files are, and how it is split and scaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Source name: `fashion-mnist`, `mnist`, `kmnist`, `cifar10`, `csv`, `parquet`,
    /// `images`, `hub`, `blobs`, `shapes` or `sprites` (see `bottleneck data list`).
    pub name: String,
    /// Directory holding the files. Empty: `BOTTLENECK_DATA_DIR`, then
    /// `/usr/share/datasets/<name>`, then the user cache dir.
    pub dir: String,
    /// Fraction of the training split held out for validation (seeded), in [0, 1).
    pub val_fraction: f64,
    /// Feature scaling: `unit`, `standard` or `none`.
    pub normalize: Normalize,
    /// Use only the first N training samples (0 = all); for quick runs on real data.
    pub train_subset: usize,
    /// Use only the first N test samples (0 = all).
    pub test_subset: usize,
    /// Tables: the CSV or Parquet file; `images`: the folder of images.
    pub path: String,
    /// Tables: feature columns (empty = every column except `label`); all must be numeric.
    pub features: Vec<String>,
    /// Tables: optional label column (integers or strings); empty = no labels.
    pub label: String,
    /// Tables, image folders without `train/` and `test/`, and synthetic sets: fraction of samples in the test split, in (0, 1).
    pub test_fraction: f64,
    /// Synthetic sets: number of samples (train + test).
    pub samples: usize,
    /// `blobs`: dimension of each point.
    pub dim: usize,
    /// `blobs`: number of clusters (classes).
    pub classes: usize,
    /// `shapes`, `sprites`: side of the square images in pixels; `images`: the side the
    /// images are resized to.
    pub image_size: usize,
    /// `images`: `center` (crop the centred square, then resize) or `none` (resize all).
    pub crop: Crop,
    /// `images`: side of the centre crop in pixels of the file (0 = the shorter side).
    pub crop_size: usize,
    /// `images`: 3 (RGB) or 1 (grey, by ITU-R 601 luma).
    pub channels: usize,
    /// `images`: skip unreadable images (counted and reported) instead of failing.
    pub skip_bad: bool,
    /// Image sources: mirror training images left-right at random (seeded per sample and
    /// epoch; never the validation or test split).
    pub random_flip: bool,
    /// Image sources: shift training images by up to this many pixels at random, filling
    /// with black, as torchvision's `RandomCrop(size, padding)` (0 = off).
    pub random_crop_padding: usize,
    /// `hub`: the Hugging Face dataset id, e.g. `zalando-datasets/fashion_mnist`.
    pub repo: String,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            name: "fashion-mnist".into(),
            dir: String::new(),
            val_fraction: 0.1,
            normalize: Normalize::Unit,
            train_subset: 0,
            test_subset: 0,
            path: String::new(),
            features: Vec::new(),
            label: String::new(),
            test_fraction: 0.2,
            samples: 6000,
            dim: 16,
            classes: 4,
            image_size: 28,
            crop: Crop::Center,
            crop_size: 0,
            channels: 3,
            skip_bad: false,
            random_flip: false,
            random_crop_padding: 0,
            repo: String::new(),
        }
    }
}

impl DataConfig {
    /// A config for the named source with every other key at its default.
    #[must_use]
    pub fn named(name: &str) -> Self {
        Self { name: name.into(), ..Self::default() }
    }

    /// Checks ranges that serde cannot; the error names the key and what is allowed.
    pub fn validate(&self) -> Result<()> {
        fn bad(key: &str, value: impl std::fmt::Display, allowed: &str) -> DataError {
            DataError::InvalidConfig { key: key.into(), value: value.to_string(), allowed: allowed.into() }
        }
        let format = crate::source::find(&self.name)?.format;
        if format == crate::source::Format::Hub {
            crate::hub::check_config(&self.repo)?;
        } else if !self.repo.is_empty() {
            return Err(bad("data.repo", &self.repo, "is read only by data.name = \"hub\""));
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return Err(bad("data.val_fraction", self.val_fraction, "must be in [0, 1)"));
        }
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return Err(bad("data.test_fraction", self.test_fraction, "must be in (0, 1)"));
        }
        if self.samples < 2 {
            return Err(bad("data.samples", self.samples, "must be at least 2"));
        }
        if self.dim == 0 {
            return Err(bad("data.dim", self.dim, "must be at least 1"));
        }
        if self.classes == 0 {
            return Err(bad("data.classes", self.classes, "must be at least 1"));
        }
        if !(8..=256).contains(&self.image_size) {
            return Err(bad("data.image_size", self.image_size, "must be in 8..=256"));
        }
        let tabular =
            matches!(format, crate::source::Format::Csv | crate::source::Format::Parquet) || self.name == "blobs";
        if tabular && (self.random_flip || self.random_crop_padding > 0) {
            let (key, value) = if self.random_flip {
                ("data.random_flip", "true".to_string())
            } else {
                ("data.random_crop_padding", self.random_crop_padding.to_string())
            };
            return Err(bad(
                key,
                value,
                &format!("flips and crops are for images; `{}` has feature vectors", self.name),
            ));
        }
        if !matches!(self.channels, 1 | 3) {
            return Err(bad("data.channels", self.channels, "must be 1 (grey) or 3 (RGB)"));
        }
        Ok(())
    }

    /// For the sources read from `data.path` (tables, image folders): that the path is
    /// given and is a file (a folder for images). Run before a run directory exists, so a
    /// missing file is an error there and then, not a failed run.
    pub fn check_path(&self) -> Result<()> {
        let (what, folder) = match crate::source::find(&self.name)?.format {
            crate::source::Format::Csv | crate::source::Format::Parquet => ("the table's file", false),
            crate::source::Format::Images => ("the folder of images", true),
            _ => return Ok(()),
        };
        let bad = |value: String, allowed: String| DataError::InvalidConfig { key: "data.path".into(), value, allowed };
        if self.path.is_empty() {
            return Err(bad("\"\"".into(), format!("the `{}` source needs {what} in data.path", self.name)));
        }
        let path = std::path::Path::new(&self.path);
        let found = if folder { path.is_dir() } else { path.is_file() };
        if !found {
            let is = match (path.exists(), folder) {
                (false, _) => "does not exist",
                (true, true) => "is not a folder",
                (true, false) => "is not a file",
            };
            return Err(bad(format!("\"{}\"", self.path), format!("{is}; give {what}")));
        }
        Ok(())
    }
}
