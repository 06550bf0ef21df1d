//! The error type of eprof's libraries.

use std::path::PathBuf;

/// What went wrong, naming the thing involved and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Trace {
        path: PathBuf,
        #[source]
        source: eprof_format::FormatError,
    },
    #[error("run index {path}: {message}")]
    Index { path: PathBuf, message: String },
    #[error("power source {source_name}: {message}")]
    Power {
        source_name: String,
        message: String,
    },
    #[error("model {what}: {message}")]
    Model { what: String, message: String },
    #[error("probe {probe}: {message}")]
    Probe { probe: String, message: String },
    #[error("plugin {path}: {message}")]
    Plugin { path: PathBuf, message: String },
    #[error("registry: {0}")]
    Registry(String),
    #[error("{0}")]
    Config(String),
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub fn power(source_name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Power {
            source_name: source_name.into(),
            message: message.into(),
        }
    }
    pub fn model(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Model {
            what: what.into(),
            message: message.into(),
        }
    }
}
