//! [`SpoolError`]: what went wrong in the spool, where, and its SQLSTATE.

use datafusion::error::DataFusionError;

/// A spool failure. Locations are URLs without credentials (`s3://bucket/prefix/q1/2/0/0/manifest`,
/// `file:///var/spool/tributary/...`); no variant ever holds the S3 secret key.
///
/// Inside result streams (which carry `DataFusionError`s) it travels as
/// `DataFusionError::External(Box<SpoolError>)` ([`SpoolError::into_datafusion`]), so callers find it
/// by type.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A key of the `[exchange]` section is missing or malformed (or none of `base_directories` is
    /// configured). `key` is `exchange.KEY`.
    #[error("key `{key}`: {reason}")]
    Config {
        /// The key, as `exchange.base_directories`.
        key: String,
        /// Why it was refused.
        reason: String,
    },
    /// A read, write, list or delete failed in the store.
    #[error("spool {operation} of {location} failed: {source}")]
    Storage {
        /// What was being done: `read`, `write`, `list`, `delete`, `open`.
        operation: &'static str,
        /// The object or directory, as a URL.
        location: String,
        /// OpenDAL's error (its kind says e.g. `NotFound`); boxed, it is large.
        #[source]
        source: Box<opendal::Error>,
    },
    /// The attempt has no manifest: it never finished (or was deleted), so its output must not be
    /// read.
    #[error("spool attempt at {location} is not committed (no manifest)")]
    NotCommitted {
        /// The manifest that does not exist.
        location: String,
    },
    /// A manifest or data segment could not be decoded (or the manifest has a format version this
    /// build does not read).
    #[error("spool data at {location} is corrupt: {reason}")]
    Corrupt {
        /// The object.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A caller error: a query id or node name that is not a plain path segment, or a partition
    /// number out of range.
    #[error("spool: {0}")]
    Invalid(String),
}

impl SpoolError {
    /// The SQLSTATE a client sees: `58030` (io_error; retryable in the fault-tolerance sense: re-run
    /// the producing task) for [`SpoolError::Storage`] and [`SpoolError::NotCommitted`], `XX001`
    /// (data_corrupted) for [`SpoolError::Corrupt`], `F0000` (config_file_error) for
    /// [`SpoolError::Config`], `XX000` (internal_error) for [`SpoolError::Invalid`].
    pub fn sqlstate(&self) -> &'static str {
        match self {
            SpoolError::Storage { .. } | SpoolError::NotCommitted { .. } => "58030",
            SpoolError::Corrupt { .. } => "XX001",
            SpoolError::Config { .. } => "F0000",
            SpoolError::Invalid(_) => "XX000",
        }
    }

    /// The error as a result stream carries it: `DataFusionError::External(Box<SpoolError>)`.
    pub fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }

    pub(crate) fn config(key: &str, reason: impl Into<String>) -> Self {
        SpoolError::Config {
            key: format!("exchange.{key}"),
            reason: reason.into(),
        }
    }
}

impl From<SpoolError> for DataFusionError {
    fn from(e: SpoolError) -> Self {
        e.into_datafusion()
    }
}
