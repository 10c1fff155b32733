//! Errors of query execution. The front end maps them to SQLSTATE in one place.

use datafusion::error::DataFusionError;
pub use tributary_connectors::ConnectorError;
use tributary_connectors::sqlstate;
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
    /// A failure injected for tests by the session's `inject_failure` setting (Trino's failure
    /// injection): retryable, SQLSTATE 58000.
    #[error("injected failure of task {stage}.{task} (attempt {attempt})")]
    InjectedFailure {
        /// The stage of the failing task.
        stage: usize,
        /// The task within the stage.
        task: usize,
        /// The attempt that failed (0 for the first).
        attempt: u32,
    },
    /// Under `retry_policy = TASK`, a task failed on every attempt it was allowed (or with an error
    /// not worth retrying): the query fails with the last cause's SQLSTATE.
    #[error("task {stage}.{task} failed after {attempts} attempt(s): {message}")]
    TaskFailed {
        /// The stage of the task.
        stage: usize,
        /// The task within the stage.
        task: usize,
        /// How many attempts ran.
        attempts: u32,
        /// SQLSTATE of the last attempt's error.
        sqlstate: String,
        /// Message of the last attempt's error.
        message: String,
    },
}

/// A failure's SQLSTATE and message as the node it happened on reported it, and whether a fault-tolerant
/// retry policy should run the work again ([`sqlstate::is_retryable`]: the class of the code decides,
/// never the message text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Five-character SQLSTATE.
    pub sqlstate: String,
    /// The message.
    pub message: String,
}

impl Failure {
    /// A failure with this code and message.
    pub fn new(sqlstate: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            sqlstate: sqlstate.into(),
            message: message.into(),
        }
    }

    /// Whether running the work again may succeed (a lost worker, a dropped source connection, a
    /// failed exchange read).
    pub fn is_retryable(&self) -> bool {
        sqlstate::is_retryable(&self.sqlstate)
    }

    /// Whether memory ran out (worth a retry with more memory under `retry_policy = TASK`).
    pub fn is_out_of_memory(&self) -> bool {
        sqlstate::is_out_of_memory(&self.sqlstate)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<(String, String)> for Failure {
    fn from((sqlstate, message): (String, String)) -> Self {
        Self { sqlstate, message }
    }
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
