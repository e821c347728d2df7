//! The crate's one error type. Every variant names the file (and column, offset or key)
//! at fault and, where it helps, what would have been accepted.

use std::path::PathBuf;

/// Result with the crate's [`DataError`].
pub type Result<T> = std::result::Result<T, DataError>;

/// Everything that can go wrong while finding, reading, fetching or transforming data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An I/O error; `fs-err` puts the path into the message.
    #[error(transparent)]
    Io(#[from] std::io::Error),

    /// The file is empty (zero bytes, or zero bytes after decompression).
    #[error("{path}: file is empty")]
    Empty {
        /// The file.
        path: PathBuf,
    },

    /// A `.gz` file that does not decompress: truncated download or corruption.
    #[error("{path}: truncated or corrupt gzip data ({reason}); delete it and fetch it again")]
    Gzip {
        /// The file.
        path: PathBuf,
        /// What the decompressor said.
        reason: String,
    },

    /// A table file in the other format than its source reads.
    #[error("{path}: this is a {found} file, but data.name = \"{source_name}\" reads {expected} files; use data.name = \"{use_name}\"")]
    WrongTable {
        /// The file.
        path: PathBuf,
        /// What the file is ("Parquet", "text (CSV?)").
        found: &'static str,
        /// What the source reads ("CSV", "Parquet").
        expected: &'static str,
        /// The source given.
        source_name: &'static str,
        /// The source that reads it.
        use_name: &'static str,
    },

    /// The first bytes are not the IDX magic number that was expected.
    #[error("{path}: not an IDX {expected} file: magic number {found:#010x} (expected {expected_magic:#010x})")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// Human name of what was expected ("images", "labels").
        expected: &'static str,
        /// The 4 bytes found, big-endian.
        found: u32,
        /// The magic number that would have been accepted.
        expected_magic: u32,
    },

    /// The file holds fewer (or more) bytes than its header declares.
    #[error("{path}: {what}: expected {expected} bytes, found {found} (at byte offset {offset})")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Which part of the file was short ("header", "data").
        what: &'static str,
        /// Bytes the header promises.
        expected: usize,
        /// Bytes present.
        found: usize,
        /// Offset (after decompression) where the short part starts.
        offset: usize,
    },

    /// Image dimensions other than the source's fixed ones.
    #[error("{path}: wrong dimensions {found:?}; {source_name} images are {expected:?}")]
    Dimensions {
        /// The file.
        path: PathBuf,
        /// The dataset source.
        source_name: String,
        /// What the header says.
        found: Vec<usize>,
        /// What the source requires.
        expected: Vec<usize>,
    },

    /// Image and label files disagree on the number of samples.
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels")]
    CountMismatch {
        /// The images file.
        images: PathBuf,
        /// Number of images.
        n_images: usize,
        /// The labels file.
        labels: PathBuf,
        /// Number of labels.
        n_labels: usize,
    },

    /// A label outside `0..classes`.
    #[error("{path}: label {label} at record {index} is out of range (expected 0..{classes})")]
    LabelRange {
        /// The file.
        path: PathBuf,
        /// Record index.
        index: usize,
        /// The label found.
        label: u32,
        /// Number of classes.
        classes: usize,
    },

    /// A CIFAR-10 batch file whose size is not a whole number of 3073-byte records.
    #[error("{path}: CIFAR-10 batch has {len} bytes, not a positive multiple of the {record}-byte record (1 label + 3x32x32 pixels)")]
    CifarSize {
        /// The file.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The record size.
        record: usize,
    },

    /// A table column that cannot be used as asked.
    #[error("{path}: column `{column}`: {reason}")]
    Column {
        /// The table file.
        path: PathBuf,
        /// The column.
        column: String,
        /// What is wrong and what is accepted.
        reason: String,
    },

    /// polars could not read the table.
    #[error("{path}: {source}")]
    Polars {
        /// The table file.
        path: PathBuf,
        /// polars' error.
        source: polars::error::PolarsError,
    },

    /// No directory in the search chain holds the dataset's files.
    #[error("dataset `{name}` not found; looked in:\n{}\n{hint}", .searched.iter().map(|p| format!("  - {}", p.display())).collect::<Vec<_>>().join("\n"))]
    NotFound {
        /// The dataset.
        name: String,
        /// Every place that was looked in, in order.
        searched: Vec<PathBuf>,
        /// How to get the files.
        hint: String,
    },

    /// A dataset directory that holds some files of the dataset but not this one.
    #[error("{dir}: dataset `{name}` is incomplete: missing {missing} (looked for {})", .candidates.join(" or "))]
    MissingFile {
        /// The dataset.
        name: String,
        /// The directory.
        dir: PathBuf,
        /// Logical name of the missing file.
        missing: String,
        /// File names that would have been accepted.
        candidates: Vec<String>,
    },

    /// A dataset name that no source knows.
    #[error("unknown dataset `{name}`; known datasets: {known}")]
    UnknownDataset {
        /// The name asked for.
        name: String,
        /// Comma-separated known names.
        known: String,
    },

    /// A configuration value out of range or of the wrong kind.
    #[error("invalid value {value} for `{key}`: {allowed}")]
    InvalidConfig {
        /// The key, e.g. `data.val_fraction`.
        key: String,
        /// The value as given.
        value: String,
        /// What would be accepted.
        allowed: String,
    },

    /// A download that failed (network, HTTP status, no mirror left).
    #[error("download {url}: {reason}")]
    Download {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },

    /// A downloaded file whose SHA-256 is not the published one.
    #[error("{url}: SHA-256 mismatch: expected {expected}, got {actual}; the file was discarded")]
    Checksum {
        /// Where it came from.
        url: String,
        /// The published digest.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },

    /// A Hugging Face dataset that could not be found, downloaded or decoded.
    #[error("Hugging Face dataset `{repo}`: {reason}")]
    Hub {
        /// The dataset id (`data.repo`).
        repo: String,
        /// What went wrong and what to do about it.
        reason: String,
    },

    /// An image file that could not be read or decoded.
    #[error("{path}: cannot read the image: {reason}; fix or delete the file, or set data.skip_bad = true to skip unreadable images")]
    Image {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },

    /// An image folder without a single image to load.
    #[error("{dir}: no images to load: {why}")]
    NoImages {
        /// The folder (`data.path`).
        dir: PathBuf,
        /// What was found instead.
        why: String,
    },

    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
