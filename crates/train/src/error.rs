//! The crate's one error type.

use std::path::PathBuf;

/// Result with the crate's [`TrainError`].
pub type Result<T> = std::result::Result<T, TrainError>;

/// What can go wrong while resolving a config, training, or reading a run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A bad config: unknown key, wrong type, out of range, missing file or option. The
    /// message names the key and where it was set.
    #[error("{0}")]
    Config(String),
    /// Data loading failed.
    #[error(transparent)]
    Data(#[from] bottleneck_data::DataError),
    /// Model construction or a forward pass failed.
    #[error(transparent)]
    Model(#[from] bottleneck_models::ModelError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An I/O error (`fs-err` names the file).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Writing a table failed.
    #[error("{path}: {source}")]
    Polars {
        /// The file.
        path: PathBuf,
        /// polars' error.
        source: polars::error::PolarsError,
    },
    /// A checkpoint or run file that cannot be used.
    #[error("{path}: {reason}")]
    Run {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}
