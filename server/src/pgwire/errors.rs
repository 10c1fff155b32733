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
        ArrowError::CastError(message) | ArrowError::ParseError(message) => cast_error(message),
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
    if let Some(info) = undefined_function(&message) {
        return info;
    }
    if message.contains("oerce") {
        return error(sqlstate::DATATYPE_MISMATCH, message);
    }
    error(sqlstate::SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION, message)
}

/// A failed cast in PostgreSQL's words: Arrow's `Cannot cast string 'a' to value of Int32 type` is
/// `22P02 invalid input syntax for type integer: "a"`, and `Can't cast value 2147483648 to type
/// Int32` is `22003 integer out of range`; other cast errors keep Arrow's message under `22P02`.
fn cast_error(message: &str) -> ErrorInfo {
    if let Some(rest) = message.strip_prefix("Cannot cast string '")
        && let Some((value, rest)) = rest.rsplit_once("' to value of ")
        && let Some(arrow) = rest.strip_suffix(" type")
    {
        return error(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            format!(
                "invalid input syntax for type {}: \"{value}\"",
                pg_type_name(arrow)
            ),
        );
    }
    if let Some(rest) = message.strip_prefix("Can't cast value ")
        && let Some((_, arrow)) = rest.rsplit_once(" to type ")
    {
        return error(
            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
            format!("{} out of range", pg_type_name(arrow)),
        );
    }
    error(sqlstate::INVALID_TEXT_REPRESENTATION, message)
}

/// PostgreSQL's `42883` for arguments no function or operator takes, from DataFusion's wording:
/// `No function matches the given name and argument types 'sum(Utf8)'` is `function sum(text) does
/// not exist` (with PostgreSQL's hint), and `Cannot coerce arithmetic expression Utf8 + Int64 to
/// valid types` is `operator does not exist: text + bigint`. Arrow types are named as PostgreSQL's
/// `format_type` prints the types they are reported as. `None` for other messages.
fn undefined_function(message: &str) -> Option<ErrorInfo> {
    const FUNCTION: &str = "No function matches the given name and argument types '";
    if let Some(start) = message.find(FUNCTION) {
        let call = &message[start + FUNCTION.len()..];
        let call = &call[..call.find("'.").or_else(|| call.rfind('\''))?];
        let (name, args) = call.split_once('(')?;
        let args = args.strip_suffix(')')?;
        let types: Vec<String> = split_types(args).iter().map(|t| pg_type_name(t)).collect();
        let mut info = error(
            sqlstate::UNDEFINED_FUNCTION,
            format!("function {name}({}) does not exist", types.join(", ")),
        );
        info.hint = Some(
            "No function matches the given name and argument types. You might need to add \
             explicit type casts."
                .into(),
        );
        return Some(info);
    }
    const OPERATOR: &str = "Cannot coerce arithmetic expression ";
    let start = message.find(OPERATOR)?;
    let expression = message[start + OPERATOR.len()..].strip_suffix(" to valid types")?;
    // `Decimal128(10, 2) + Utf8`: the operator is the token between the two types, whose names
    // may hold spaces inside parentheses.
    let mut depth = 0usize;
    let split = expression.char_indices().find_map(|(i, c)| {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ' ' if depth == 0 => return Some(i),
            _ => {}
        }
        None
    })?;
    let (left, rest) = (&expression[..split], expression[split..].trim_start());
    let (op, right) = rest.split_once(' ')?;
    let mut info = error(
        sqlstate::UNDEFINED_FUNCTION,
        format!(
            "operator does not exist: {} {op} {}",
            pg_type_name(left),
            pg_type_name(right)
        ),
    );
    info.hint = Some(
        "No operator matches the given name and argument types. You might need to add explicit \
         type casts."
            .into(),
    );
    Some(info)
}

/// `Int64, Decimal128(10, 2)` split at the top-level commas.
fn split_types(args: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in args.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(args[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if !args[start..].trim().is_empty() {
        out.push(args[start..].trim());
    }
    out
}

/// An Arrow type as DataFusion prints it (`Utf8View`), named as PostgreSQL's `format_type` names the
/// type it is reported as (`text`); `Null` is PostgreSQL's `unknown`; unparsable names as they are.
fn pg_type_name(arrow: &str) -> String {
    use std::str::FromStr;
    let Ok(data_type) = datafusion::arrow::datatypes::DataType::from_str(arrow) else {
        return arrow.to_string();
    };
    if data_type == datafusion::arrow::datatypes::DataType::Null {
        return "unknown".into();
    }
    let ty = super::catalog::types::of_arrow(&data_type);
    let (udt, _) = super::catalog::types::names(&ty);
    match udt.strip_prefix('_') {
        Some(element) => format!(
            "{}[]",
            super::catalog::types::standard_type_name(element).unwrap_or(element)
        ),
        None => super::catalog::types::standard_type_name(udt)
            .unwrap_or(udt)
            .to_string(),
    }
}

/// An execution error DataFusion reports only as text: a server fault unless typed elsewhere
/// (division by zero is Arrow's typed `DivideByZero`).
fn execution_error(message: &str) -> ErrorInfo {
    error(sqlstate::INTERNAL_ERROR, strip_prefix(message))
}

/// Drops DataFusion's category prefixes ("Error during planning: ", "sql parser error: ", ...), which
/// mean nothing to a PostgreSQL client, and the plea to file a DataFusion bug report that follows an
/// internal error's text (`\nThis issue was likely caused by a bug in DataFusion's code. ...`).
fn strip_prefix(message: &str) -> String {
    const PLEA: &str = "\nThis issue was likely caused by a bug in DataFusion's code. Please help \
                        us to resolve this by filing a bug report in our issue tracker: \
                        https://github.com/apache/datafusion/issues";
    let message = message.replace(PLEA, "");
    let message = message.as_str();
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
        let internal = datafusion_error(&DataFusionError::Internal("schema mismatch".into()));
        assert_eq!(internal.message, "schema mismatch.");
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
        let plan_error = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let e = ctx.sql(sql).await.expect_err(sql);
                let info = datafusion_error(&e);
                (info.code, info.message)
            }
        };
        // Arguments no function or operator takes: PostgreSQL's 42883, never DataFusion's wording.
        for (sql, message) in [
            (
                "select sum(a) from (values ('x')) t(a)",
                "function sum(text) does not exist",
            ),
            (
                "select avg(a) from (values (true)) t(a)",
                "function avg(boolean) does not exist",
            ),
            (
                "select abs('x', 'y')",
                "function abs(text, text) does not exist",
            ),
            ("select upper(1)", "function upper(bigint) does not exist"),
            (
                "select a + 1 from (values ('x')) t(a)",
                "operator does not exist: text + bigint",
            ),
            (
                "select a - true from (values (1)) t(a)",
                "operator does not exist: bigint - boolean",
            ),
        ] {
            assert_eq!(
                plan_error(sql).await,
                ("42883".to_string(), message.to_string()),
                "{sql}"
            );
        }
        assert_eq!(pg_type_name("Decimal128(10, 2)"), "numeric");
        assert_eq!(
            undefined_function(
                "Cannot coerce arithmetic expression Decimal128(10, 2) + Utf8 to valid types"
            )
            .map(|i| i.message),
            Some("operator does not exist: numeric + text".to_string())
        );
        let cast = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let e = ctx.sql(sql).await.unwrap().collect().await.expect_err(sql);
                let info = datafusion_error(&e);
                (info.code, info.message)
            }
        };
        assert_eq!(
            cast("select cast(a as int) from (values ('a')) t(a)").await,
            (
                "22P02".to_string(),
                "invalid input syntax for type integer: \"a\"".to_string()
            )
        );
        assert_eq!(
            cast("select cast(a as date) from (values ('x')) t(a)")
                .await
                .0,
            "22P02"
        );
        assert_eq!(
            cast("select cast(a as int) from (values (2147483648)) t(a)").await,
            ("22003".to_string(), "integer out of range".to_string())
        );
        assert_eq!(
            split_types("Int32, Decimal128(10, 2), Utf8View"),
            ["Int32", "Decimal128(10, 2)", "Utf8View"]
        );
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
