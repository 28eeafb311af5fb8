//! The engine's error type.

use datafusion::error::DataFusionError;
use moltres_connectors::secrets::scrub;

/// Everything the Moltres engine can fail with. Its messages never show a
/// password this process has seen in a URL or statement (see
/// [`secrets`](crate::secrets)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting (environment variable, config file key or builder value) is invalid.
    #[error("invalid setting {setting}: {}", scrub(message))]
    Config {
        /// The setting, e.g. `MOLTRES_MEMORY_LIMIT` or `batch_size in moltres.toml`.
        setting: String,
        /// What is wrong with it.
        message: String,
    },
    /// An `ATTACH`, `DETACH` or other Moltres statement is malformed or refers
    /// to something that does not exist.
    #[error("{}", scrub(.0))]
    Statement(String),
    /// Planning or running a query failed (the message names the table, file
    /// or source where one is known).
    #[error("{}", scrub(&.0.to_string()))]
    DataFusion(#[from] DataFusionError),
}

impl Error {
    /// The innermost DataFusion error, if this is one.
    pub fn as_datafusion(&self) -> Option<&DataFusionError> {
        match self {
            Error::DataFusion(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Error> for DataFusionError {
    fn from(e: Error) -> Self {
        match e {
            Error::DataFusion(e) => e,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}

/// `Result<T, moltres::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
