//! Errors of query execution. The front end maps them to SQLSTATE in one place.

use datafusion::error::DataFusionError;
pub use tributary_connectors::ConnectorError;
pub use tributary_exchange::flight::{ErrorClassifier, RemoteError};

/// Why a query could not run or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Planning or execution failed inside DataFusion (syntax, unknown table, division by zero, ...).
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// The query was canceled (CancelRequest, statement timeout or client gone).
    #[error("canceling statement due to user request")]
    Canceled,
    /// A worker running one of the query's tasks was lost (retry policy NONE).
    #[error("worker {worker} was lost while running task {task}")]
    WorkerLost { worker: String, task: String },
}
