//! The crate's one error type.

use std::path::PathBuf;

/// Result with the crate's [`AnalysisError`].
pub type Result<T> = std::result::Result<T, AnalysisError>;

/// What can go wrong while reading a run or drawing its report.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// A run or sweep file is missing or unusable.
    #[error(transparent)]
    Train(#[from] bottleneck_train::TrainError),
    /// Loading the data for a figure failed.
    #[error(transparent)]
    Data(#[from] bottleneck_data::DataError),
    /// Rebuilding the model failed.
    #[error(transparent)]
    Model(#[from] bottleneck_models::ModelError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An I/O error (`fs-err` names the file).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A table could not be read.
    #[error("{path}: {source}")]
    Polars {
        /// The file.
        path: PathBuf,
        /// polars' error.
        source: polars::error::PolarsError,
    },
    /// Drawing a figure failed.
    #[error("drawing {path}: {reason}")]
    Plot {
        /// The figure.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The directory holds neither a run nor a sweep, or lacks what a figure needs.
    #[error("{path}: {reason}")]
    Input {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}
