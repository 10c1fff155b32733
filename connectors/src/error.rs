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
    /// The source failed with a known SQLSTATE for the client: `08001` cannot connect, `08006` connection
    /// lost, `28P01` authentication failed, or the source's own code for a remote SQL error. The
    /// message names the catalog and never holds a password.
    #[error("{message}")]
    Remote {
        /// Five-character SQLSTATE the front end reports.
        sqlstate: String,
        /// The message, naming the catalog.
        message: String,
    },
}

/// A connector error as DataFusion carries it (`External`), keeping its SQLSTATE for the front end.
impl From<ConnectorError> for datafusion::error::DataFusionError {
    fn from(e: ConnectorError) -> Self {
        datafusion::error::DataFusionError::External(Box::new(e))
    }
}

impl ConnectorError {
    /// A [`ConnectorError::Remote`] with `sqlstate` and `message`, as the `DataFusionError` a
    /// table provider or plan returns (the front end reports the SQLSTATE).
    pub fn sql(sqlstate: &str, message: impl Into<String>) -> datafusion::error::DataFusionError {
        datafusion::error::DataFusionError::External(Box::new(ConnectorError::Remote {
            sqlstate: sqlstate.into(),
            message: message.into(),
        }))
    }
}
