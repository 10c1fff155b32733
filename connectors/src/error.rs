//! Errors of connectors, mapped to SQLSTATE once, at the front end.

/// What can go wrong while building a connector or reading a source.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// A key of the catalog file is missing or invalid.
    #[error("catalog config key `{key}`: {reason}")]
    Config {
        /// The key as written in the file (`location`, `connector`, ...).
        key: String,
        /// Why the value is missing or invalid, without any secret it may hold.
        reason: String,
    },
    /// The source failed (cannot be reached, listed or read). The message never holds a password.
    #[error("{0}")]
    Source(String),
}
