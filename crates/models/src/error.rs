//! The crate's one error type.

/// Result with the crate's [`ModelError`].
pub type Result<T> = std::result::Result<T, ModelError>;

/// What can go wrong when building or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A configuration value out of range or not valid for the input.
    #[error("invalid value {value} for `{key}`: {allowed}")]
    InvalidConfig {
        /// The key, e.g. `model.latent_dim`.
        key: String,
        /// The value as given.
        value: String,
        /// What would be accepted.
        allowed: String,
    },
    /// A tensor operation failed (shapes, devices, dtypes).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub(crate) fn invalid(key: &str, value: impl std::fmt::Display, allowed: impl Into<String>) -> ModelError {
    ModelError::InvalidConfig { key: key.into(), value: value.to_string(), allowed: allowed.into() }
}
