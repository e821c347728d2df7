//! Datasets for bottleneck.
//!
//! Sources by name ([`source::SOURCES`]): the MNIST family from IDX files (gzip or raw),
//! CIFAR-10 binary batches, CSV/Parquet tables through polars, folders of PNG/JPEG images
//! ([`images`]), and synthetic sets. Data
//! directories resolve `data.dir` → `BOTTLENECK_DATA_DIR` → `/usr/share/datasets/<name>`
//! → the user cache dir. A loaded [`Dataset`] has seeded train/validation/test splits
//! (pixel sources keep their bytes, tables f32), read as f32 tensors normalised with
//! statistics fitted on the training split; [`Batcher`] yields seeded shuffled mini-batches. (Input noise for denoising lives with the model,
//! in `bottleneck-models`, which applies it in training mode only.)
//! Downloads ([`fetch()`]) are explicit and checksummed, never a side effect of loading.

pub mod atomic;
pub mod augment;
pub mod batcher;
pub mod cifar;
pub mod config;
pub mod dataset;
pub mod error;
pub mod fetch;
pub mod hub;
pub mod idx;
pub mod images;
pub mod mnist;
pub mod source;
pub mod synthetic;
pub mod table;
pub mod transform;

pub use augment::Augment;
pub use batcher::{Batch, Batcher};
pub use config::{Crop, DataConfig, Normalize};
pub use dataset::{Dataset, Factor, RawDataset, Split};
pub use error::{DataError, Result};
pub use fetch::{fetch, FetchReport};
pub use source::{find as find_source, Format, SearchPath, Source, SOURCES};
pub use transform::Normalizer;
