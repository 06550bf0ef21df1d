//! What can go wrong with the index.

use std::path::PathBuf;

/// What went wrong with the index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("run index {path}: {message}")]
    Index { path: PathBuf, message: String },
    /// No run has this id or id prefix.
    #[error("{0}")]
    NotFound(String),
    /// A prefix matches several runs.
    #[error("{0}")]
    Ambiguous(String),
    /// A request the index cannot answer (an unknown sort key).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
