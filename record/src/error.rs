//! Typed errors of a recording, so that each front end can map them: the CLI to a
//! message and an exit code, the server to an HTTP status.

pub use eprof_format::live::ErrorKind;

/// A failure of the recording API: its kind, a message naming what failed, and
/// where there is one, how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RecordError {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
    /// The run panicked (caught): the model it ran on may hold a half-done step, so
    /// a front end that keeps models loaded drops it.
    pub panicked: bool,
}

pub type Result<T, E = RecordError> = std::result::Result<T, E>;

impl RecordError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RecordError {
            kind,
            message: message.into(),
            hint: None,
            panicked: false,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl From<eprof_core::Error> for RecordError {
    fn from(e: eprof_core::Error) -> Self {
        use eprof_core::Error as E;
        let kind = match &e {
            E::Power { .. } => ErrorKind::PowerUnavailable,
            E::Model { .. } | E::Candle(_) => ErrorKind::Model,
            E::Registry(_) | E::Config(_) | E::Probe { .. } | E::Plugin { .. } => {
                ErrorKind::BadRequest
            }
            _ => ErrorKind::Io,
        };
        RecordError::new(kind, e.to_string())
    }
}

impl From<eprof_index::Error> for RecordError {
    fn from(e: eprof_index::Error) -> Self {
        let kind = match &e {
            eprof_index::Error::NotFound(_) => ErrorKind::NotFound,
            eprof_index::Error::Ambiguous(_) | eprof_index::Error::Invalid(_) => {
                ErrorKind::BadRequest
            }
            _ => ErrorKind::Io,
        };
        RecordError::new(kind, e.to_string())
    }
}

impl From<eprof_format::FormatError> for RecordError {
    fn from(e: eprof_format::FormatError) -> Self {
        RecordError::new(ErrorKind::Io, e.to_string())
    }
}
