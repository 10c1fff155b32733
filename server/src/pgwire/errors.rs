//! Every error a client sees, mapped to an SQLSTATE: the one place where DataFusion, engine and front-end
//! errors become PostgreSQL `ErrorResponse`s.
//!
//! Codes follow PostgreSQL (Appendix A of its manual): a client that handles `42P01` or `57014` from
//! PostgreSQL handles ours the same way.

use datafusion::arrow::error::ArrowError;
use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use pgwire::error::{ErrorInfo, PgWireError};
use tributary_exec::ExecError;
use tributary_exec::error::{ConnectorError, ErrorClassifier, RemoteError};

/// SQLSTATE codes the front end produces: the workspace's one table.
pub use tributary_exec::sqlstate;

/// An error a catalog function raises with PostgreSQL's own SQLSTATE and message (`function "f" does
/// not exist`, 42883): it travels through DataFusion as an external error and is reported as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogError {
    /// Five-character SQLSTATE (one of [`sqlstate`]).
    pub sqlstate: &'static str,
    /// The message, as PostgreSQL words it.
    pub message: String,
}

impl CatalogError {
    /// An error with `sqlstate` and `message`.
    pub fn new(sqlstate: &'static str, message: impl Into<String>) -> Self {
        Self {
            sqlstate,
            message: message.into(),
        }
    }

    /// The error as a DataFusion error (what a function returns).
    pub fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }
}

impl std::fmt::Display for CatalogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CatalogError {}

/// An `ERROR`-severity response.
pub fn error(code: &str, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo::new("ERROR".into(), code.into(), message.into())
}

/// [`error`], boxed (what `Result`s carry: an `ErrorInfo` is large).
pub fn boxed(code: &str, message: impl Into<String>) -> Box<ErrorInfo> {
    Box::new(error(code, message))
}

/// A front-end error as the `PgWireError` the `pgwire` handlers return.
pub fn user_error(info: impl Into<Box<ErrorInfo>>) -> PgWireError {
    PgWireError::UserError(info.into())
}

/// Maps an engine error.
pub fn exec_error(err: &ExecError) -> ErrorInfo {
    match err {
        ExecError::DataFusion(e) => datafusion_error(e),
        ExecError::Canceled => error(sqlstate::QUERY_CANCELED, err.to_string()),
        ExecError::SubqueryReturnedMoreThanOneRow => {
            error(sqlstate::CARDINALITY_VIOLATION, err.to_string())
        }
        ExecError::InjectedFailure { .. } => error(sqlstate::SYSTEM_ERROR, err.to_string()),
        ExecError::TaskFailed { sqlstate, .. } => error(sqlstate, err.to_string()),
    }
}

/// Maps a DataFusion error (planning or execution) to SQLSTATE and a PostgreSQL-style message.
pub fn datafusion_error(err: &DataFusionError) -> ErrorInfo {
    let root = root_cause(err);
    match root {
        DataFusionError::SQL(parser_error, _) => error(
            sqlstate::SYNTAX_ERROR,
            format!("syntax error: {}", strip_prefix(&parser_error.to_string())),
        ),
        DataFusionError::SchemaError(schema_error, _) => match schema_error.as_ref() {
            SchemaError::FieldNotFound { field, .. } => error(
                sqlstate::UNDEFINED_COLUMN,
                format!("column \"{}\" does not exist", field.flat_name()),
            ),
            SchemaError::AmbiguousReference { field } => error(
                sqlstate::AMBIGUOUS_COLUMN,
                format!("column reference \"{}\" is ambiguous", field.flat_name()),
            ),
            other => error(sqlstate::DUPLICATE_COLUMN, other.to_string()),
        },
        DataFusionError::ArrowError(arrow_error, _) => arrow_error_info(arrow_error),
        DataFusionError::Plan(message) => plan_error(message),
        DataFusionError::Execution(message) => execution_error(message),
        DataFusionError::NotImplemented(message) => {
            error(sqlstate::FEATURE_NOT_SUPPORTED, strip_prefix(message))
        }
        DataFusionError::Configuration(message) => {
            error(sqlstate::INVALID_PARAMETER_VALUE, strip_prefix(message))
        }
        DataFusionError::ResourcesExhausted(message) => {
            error(sqlstate::OUT_OF_MEMORY, format!("out of memory: {message}"))
        }
        DataFusionError::IoError(e) => error(sqlstate::IO_ERROR, format!("I/O error: {e}")),
        DataFusionError::ObjectStore(e) => match e.as_ref() {
            datafusion::object_store::Error::NotFound { .. } => {
                error(sqlstate::UNDEFINED_FILE, format!("storage error: {e}"))
            }
            _ => error(sqlstate::IO_ERROR, format!("storage error: {e}")),
        },
        DataFusionError::External(inner) => {
            if let Some(exec) = inner.downcast_ref::<ExecError>() {
                exec_error(exec)
            } else if let Some(catalog) = inner.downcast_ref::<CatalogError>() {
                error(catalog.sqlstate, catalog.message.clone())
            } else if let Some(remote) = inner.downcast_ref::<RemoteError>() {
                // Already mapped on the node where it happened.
                error(&remote.sqlstate, remote.message.clone())
            } else if let Some(ConnectorError::Remote { sqlstate, message }) =
                inner.downcast_ref::<ConnectorError>()
            {
                error(sqlstate, message.clone())
            } else {
                execution_error(&inner.to_string())
            }
        }
        other => error(
            sqlstate::INTERNAL_ERROR,
            strip_prefix(&other.strip_backtrace()),
        ),
    }
}

/// The classifier the engine uses to send an error to another node with the SQLSTATE and message a
/// client would see here ([`datafusion_error`]).
pub fn classifier() -> ErrorClassifier {
    std::sync::Arc::new(|e: &DataFusionError| {
        let info = datafusion_error(e);
        (info.code, info.message)
    })
}

/// The innermost error: through contexts, diagnostics, shared and collected errors.
fn root_cause(err: &DataFusionError) -> &DataFusionError {
    match err {
        DataFusionError::Collection(errors) if !errors.is_empty() => root_cause(&errors[0]),
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            root_cause(inner)
        }
        DataFusionError::Shared(inner) => root_cause(inner),
        DataFusionError::ArrowError(arrow_error, _) => match arrow_error.as_ref() {
            ArrowError::ExternalError(inner) => match inner.downcast_ref::<DataFusionError>() {
                Some(inner) => root_cause(inner),
                None => err,
            },
            _ => err,
        },
        _ => err,
    }
}

fn arrow_error_info(err: &ArrowError) -> ErrorInfo {
    match err {
        ArrowError::DivideByZero => error(sqlstate::DIVISION_BY_ZERO, "division by zero"),
        ArrowError::ArithmeticOverflow(message) => {
            error(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, message.clone())
        }
        ArrowError::CastError(message) | ArrowError::ParseError(message) => {
            error(sqlstate::INVALID_TEXT_REPRESENTATION, message.clone())
        }
        ArrowError::ExternalError(inner) => execution_error(&inner.to_string()),
        other => error(sqlstate::INTERNAL_ERROR, other.to_string()),
    }
}

/// A planning error DataFusion reports only as text (`DataFusionError::Plan`). Missing relations and
/// functions do not come here: the planner finds which is missing itself
/// (`tributary_planner::plan::UndefinedObject`), and a missing column is DataFusion's typed
/// `SchemaError`. Two kinds have no type in DataFusion 55 and are told by its wording: a column
/// neither grouped nor aggregated (`42803`), and arguments no signature or coercion accepts
/// (`42804`). Each is pinned by a test of what DataFusion really produces, so an upgrade that
/// rewords them fails that test. Anything else is about the statement the client wrote: `42000`.
fn plan_error(message: &str) -> ErrorInfo {
    let message = strip_prefix(message);
    if message.contains("must appear in the GROUP BY clause") {
        return error(sqlstate::GROUPING_ERROR, message);
    }
    if message.contains("oerce") || message.contains("No function matches") {
        return error(sqlstate::DATATYPE_MISMATCH, message);
    }
    error(sqlstate::SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION, message)
}

/// An execution error DataFusion reports only as text: a server fault unless typed elsewhere
/// (division by zero is Arrow's typed `DivideByZero`).
fn execution_error(message: &str) -> ErrorInfo {
    error(sqlstate::INTERNAL_ERROR, strip_prefix(message))
}

/// Drops DataFusion's category prefixes ("Error during planning: ", "sql parser error: ", ...), which
/// mean nothing to a PostgreSQL client.
fn strip_prefix(message: &str) -> String {
    const PREFIXES: &[&str] = &[
        "Error during planning: ",
        "Execution error: ",
        "sql parser error: ",
        "SQL error: ",
        "ParserError(\"",
        "This feature is not implemented: ",
        "Invalid or Unsupported Configuration: ",
        "Internal error: ",
        "Arrow error: ",
        "External error: ",
    ];
    let mut message = message.trim();
    while let Some(rest) = PREFIXES.iter().find_map(|p| message.strip_prefix(p)) {
        message = rest;
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::common::{Column, DataFusionError};
    use datafusion::prelude::SessionContext;
    use datafusion::sql::sqlparser::parser::ParserError;

    use super::*;

    fn code(err: DataFusionError) -> String {
        datafusion_error(&err).code
    }

    #[test]
    fn maps_error_variants() {
        assert_eq!(
            code(DataFusionError::SQL(
                Box::new(ParserError::ParserError("Expected: an expression".into())),
                None
            )),
            "42601"
        );
        let missing = DataFusionError::SchemaError(
            Box::new(SchemaError::FieldNotFound {
                field: Box::new(Column::from_name("nope")),
                valid_fields: vec![],
            }),
            Box::new(None),
        );
        let info = datafusion_error(&missing);
        assert_eq!(info.code, "42703");
        assert_eq!(info.message, "column \"nope\" does not exist");
        assert_eq!(
            code(DataFusionError::ArrowError(
                Box::new(ArrowError::DivideByZero),
                None
            )),
            "22012"
        );
        assert_eq!(code(ExecError::Canceled.into_datafusion()), "57014");
        assert_eq!(code(DataFusionError::NotImplemented("x".into())), "0A000");
        assert_eq!(code(DataFusionError::Configuration("x".into())), "22023");
        assert_eq!(code(DataFusionError::Internal("x".into())), "XX000");
        assert_eq!(exec_error(&ExecError::Canceled).code, "57014");
        let ambiguous = CatalogError::new(
            sqlstate::AMBIGUOUS_FUNCTION,
            "more than one function named \"abs\"",
        );
        let info = datafusion_error(&ambiguous.clone().into_datafusion());
        assert_eq!(
            (info.code.as_str(), info.message),
            ("42725", ambiguous.message)
        );
    }

    #[tokio::test]
    async fn planning_errors_datafusion_really_produces() {
        let ctx = datafusion::prelude::SessionContext::new();
        let plan_code = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let e = ctx.sql(sql).await.expect_err(sql);
                datafusion_error(&e).code
            }
        };
        assert_eq!(
            plan_code("select a, count(*) from (values (1, 2)) t(a, b) group by b").await,
            "42803"
        );
        assert_eq!(
            plan_code("select a from (values (1, 2)) t(a, b) having b > 1").await,
            "42803"
        );
        assert_eq!(plan_code("select 'a' + 1").await, "42804");
        assert_eq!(plan_code("select abs('x', 'y')").await, "42804");
        assert_eq!(
            code(ExecError::SubqueryReturnedMoreThanOneRow.into_datafusion()),
            "21000"
        );
    }

    #[test]
    fn looks_through_wrappers() {
        let inner = DataFusionError::ArrowError(Box::new(ArrowError::DivideByZero), None);
        let wrapped = DataFusionError::Context(
            "Optimizer rule 'simplify_expressions' failed".into(),
            Box::new(DataFusionError::Shared(Arc::new(inner))),
        );
        assert_eq!(code(wrapped), "22012");
        let external = DataFusionError::ArrowError(
            Box::new(ArrowError::ExternalError(Box::new(
                ExecError::Canceled.into_datafusion(),
            ))),
            None,
        );
        assert_eq!(code(external), "57014");
    }

    #[tokio::test]
    async fn maps_what_datafusion_really_produces() {
        let ctx = SessionContext::new();
        let plan_error = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                match ctx.sql(sql).await {
                    Ok(df) => df.collect().await.map(|_| ()).unwrap_err(),
                    Err(e) => e,
                }
            }
        };
        assert_eq!(code(plan_error("selec 1").await), "42601");
        // Missing relations are the planner's typed error (`PlanError::Undefined`), not text.
        assert_eq!(
            code(plan_error("select nope from (values (1)) t(a)").await),
            "42703"
        );
        assert_eq!(code(plan_error("select 1/0").await), "22012");
        assert_eq!(code(plan_error("select 5 % 0").await), "22012");
        assert_eq!(
            code(plan_error("select 1/a from (values (0)) t(a)").await),
            "22012"
        );
    }
}
