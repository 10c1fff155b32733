//! Errors of query execution. The front end maps them to SQLSTATE in one place.

use datafusion::error::DataFusionError;
pub use tributary_connectors::ConnectorError;
pub use tributary_exchange::flight::{ErrorClassifier, RemoteError};

/// Why a query could not run or stopped.
///
/// Inside a result stream, which carries `DataFusionError`s, these travel as
/// `DataFusionError::External(Box<ExecError>)` ([`ExecError::into_datafusion`]); the front end finds
/// them by type, never by message text.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Planning or execution failed inside DataFusion (syntax, unknown table, division by zero, ...).
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// The query was canceled (CancelRequest, statement timeout or client gone). PostgreSQL's
    /// message for SQLSTATE 57014.
    #[error("canceling statement due to user request")]
    Canceled,
    /// A scalar subquery used as an expression returned more than one row (PostgreSQL's message for
    /// SQLSTATE 21000, cardinality_violation).
    #[error("more than one row returned by a subquery used as an expression")]
    SubqueryReturnedMoreThanOneRow,
}

impl ExecError {
    /// The error as the `DataFusionError` a result stream carries.
    pub fn into_datafusion(self) -> DataFusionError {
        match self {
            ExecError::DataFusion(e) => e,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}
