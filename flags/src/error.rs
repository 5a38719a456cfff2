use thiserror::Error as ThisError;

/// Everything that can go wrong in `flags`. Nothing in this crate panics; it returns one of these.
#[derive(Debug, Clone, PartialEq, Eq, ThisError)]
#[non_exhaustive]
pub enum Error {
    /// A percentage outside `0..=100`.
    #[error("percentage must be between 0 and 100, got {0}")]
    PercentageOutOfRange(u32),
    /// A phase name that is not `off`, `pilot`, `N%` or `100%`.
    #[error("unknown phase {0:?}: expected off, pilot, N% or 100%")]
    InvalidPhase(String),
    /// The snapshot bytes are not valid JSON for the snapshot schema.
    #[error("snapshot is not valid: {0}")]
    SnapshotJson(String),
    /// The snapshot declares a format this build does not understand.
    #[error("unsupported snapshot format {found:?}, expected {expected:?}")]
    UnsupportedFormat {
        /// The format string found in the document.
        found: String,
        /// The format string this build reads.
        expected: &'static str,
    },
    /// The snapshot parsed but breaks a rule of the model (empty key, unknown tenant in a list…).
    #[error("snapshot is inconsistent: {0}")]
    Inconsistent(String),
    /// A name that is not one of the values a field accepts.
    #[error("unknown {what} {value:?}: expected {expected}")]
    InvalidValue {
        /// The field.
        what: &'static str,
        /// What was given.
        value: String,
        /// The accepted values, in words.
        expected: &'static str,
    },
    /// A Markdown plan with nothing to import.
    #[error("plan import: {0}")]
    PlanImport(String),
}
