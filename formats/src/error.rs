//! The one error type of the trace reader and writer.

/// Why a trace could not be read or written. Messages name the offending thing and,
/// where there is one, the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    #[error("not an eprof trace: the file does not start with the eprof magic bytes")]
    NotATrace,
    #[error(
        "this trace is newer than this reader (format {found}, reader knows up to {known}): update eprof to open it"
    )]
    NewerVersion { found: u16, known: u16 },
    #[error("trace is truncated at byte {offset}: {what}; nothing could be recovered")]
    Truncated { offset: u64, what: String },
    #[error("corrupted trace: {what} (chunk {chunk} at byte {offset})")]
    Corrupt {
        chunk: String,
        offset: u64,
        what: String,
    },
    #[error("cannot write trace: {0}")]
    Io(#[from] std::io::Error),
}
