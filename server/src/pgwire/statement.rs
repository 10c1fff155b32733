//! SQL text to statements: session statements the front end answers itself (`SET`, `SHOW`, `RESET`,
//! transaction control), and queries planned by DataFusion for the engine.

use std::collections::VecDeque;

use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::{DFParserBuilder, ResetStatement, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{self, Expr, Set, Value};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use pgwire::error::ErrorInfo;

use super::errors::{self, sqlstate};
use super::session::Session;

/// One statement of a client's query string, ready to run.
#[derive(Debug, Clone)]
pub enum Statement {
    /// Answered by the front end.
    Command(Command),
    /// Run by the engine. `plan` may hold placeholders (`$1`) until bound.
    Query { sql: String, plan: LogicalPlan },
}

/// Session statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `SET name = value`; `None` is `DEFAULT`.
    Set {
        name: String,
        value: Option<String>,
    },
    /// `RESET name`, or `RESET ALL` (`None`).
    Reset {
        name: Option<String>,
    },
    /// `SHOW name`, or `SHOW ALL` (`None`).
    Show {
        name: Option<String>,
    },
    Begin,
    Commit,
    Rollback,
    /// Accepted and ignored (`SET TRANSACTION ...`, `SET SESSION CHARACTERISTICS ...`); the tag to answer.
    Ignored(&'static str),
}

/// Splits a query string into parsed statements (none for an empty or comment-only string).
pub fn parse(sql: &str) -> Result<VecDeque<DfStatement>, Box<ErrorInfo>> {
    let dialect = PostgreSqlDialect {};
    DFParserBuilder::new(sql)
        .with_dialect(&dialect)
        .build()
        .and_then(|mut parser| parser.parse_statements())
        .map(|mut statements| {
            super::catalog::rewrite(sql, &mut statements);
            statements
        })
        .map_err(|e| Box::new(errors::datafusion_error(&e, None)))
}

/// Turns one parsed statement into a session command or a DataFusion plan, in the session's context.
pub async fn plan(session: &Session, statement: DfStatement) -> Result<Statement, Box<ErrorInfo>> {
    if let Some(command) = command(&statement)? {
        return Ok(Statement::Command(command));
    }
    let sql = statement.to_string();
    let mut statement = statement;
    if let DfStatement::Statement(inner) = &mut statement
        && let ast::Statement::Query(query) = inner.as_mut()
    {
        super::column_names::apply(query);
    }
    let ctx = session.context();
    let state = ctx.state();
    let plan = state.statement_to_plan(statement).await.map_err(|e| {
        Box::new(errors::datafusion_error(
            &e,
            Some(state.catalog_list().as_ref()),
        ))
    })?;
    check_read_only(&plan)?;
    Ok(Statement::Query { sql, plan })
}

/// Catalogs are read-only: DDL, DML and DataFusion's own session statements are refused with `0A000`.
fn check_read_only(plan: &LogicalPlan) -> Result<(), Box<ErrorInfo>> {
    let what = match plan {
        LogicalPlan::Dml(dml) => format!("{} on \"{}\"", dml.op, dml.table_name),
        LogicalPlan::Ddl(ddl) => ddl.name().to_string(),
        LogicalPlan::Copy(_) => "COPY".to_string(),
        LogicalPlan::Statement(statement) => statement.name().to_string(),
        _ => return Ok(()),
    };
    Err(errors::boxed(
        sqlstate::FEATURE_NOT_SUPPORTED,
        format!("{what} is not supported: catalogs are read-only"),
    ))
}

/// The session command a statement is, if it is one.
fn command(statement: &DfStatement) -> Result<Option<Command>, Box<ErrorInfo>> {
    let statement = match statement {
        DfStatement::Reset(ResetStatement::Variable(name)) => {
            let name = name.to_string();
            return Ok(Some(Command::Reset {
                name: (!name.eq_ignore_ascii_case("all")).then_some(name),
            }));
        }
        DfStatement::Statement(statement) => statement.as_ref(),
        _ => return Ok(None),
    };
    let command = match statement {
        ast::Statement::StartTransaction { .. } => Command::Begin,
        ast::Statement::Commit { .. } => Command::Commit,
        ast::Statement::Rollback {
            savepoint: None, ..
        } => Command::Rollback,
        ast::Statement::ShowVariable { variable } => {
            let words: Vec<String> = variable.iter().map(|i| i.value.clone()).collect();
            // `SHOW time zone` and friends are words; `SHOW myapp.flag` arrives as words too.
            let name = match words.join(" ").to_lowercase().as_str() {
                spaced
                @ ("time zone" | "transaction isolation level" | "session authorization") => {
                    spaced.to_string()
                }
                _ => words.join("."),
            };
            Command::Show {
                name: (!name.eq_ignore_ascii_case("all")).then_some(name),
            }
        }
        ast::Statement::Set(set) => match set {
            Set::SingleAssignment {
                variable, values, ..
            } => Command::Set {
                name: variable.to_string(),
                value: set_value(values),
            },
            Set::SetTimeZone { value, .. } => Command::Set {
                name: "TimeZone".into(),
                value: set_value(std::slice::from_ref(value)),
            },
            Set::SetNames { charset_name, .. } => Command::Set {
                name: "client_encoding".into(),
                value: Some(charset_name.value.clone()),
            },
            Set::SetTransaction { .. } => Command::Ignored("SET"),
            other => {
                return Err(errors::boxed(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    format!("\"{other}\" is not supported"),
                ));
            }
        },
        _ => return Ok(None),
    };
    Ok(Some(command))
}

/// A `SET` value as PostgreSQL keeps it: string literals unquoted, lists joined with `, `;
/// `DEFAULT` is `None`.
fn set_value(values: &[Expr]) -> Option<String> {
    let parts: Vec<String> = values
        .iter()
        .map(|value| match value {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                other => other.to_string(),
            },
            Expr::Identifier(ident) if ident.quote_style.is_some() => {
                format!("\"{}\"", ident.value)
            }
            Expr::Identifier(ident) => ident.value.clone(),
            other => other.to_string(),
        })
        .collect();
    match parts.as_slice() {
        [single] if single.eq_ignore_ascii_case("default") => None,
        _ => Some(parts.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands(sql: &str) -> Vec<Option<Command>> {
        parse(sql)
            .unwrap()
            .iter()
            .map(|s| command(s).unwrap())
            .collect()
    }

    fn set(name: &str, value: Option<&str>) -> Option<Command> {
        Some(Command::Set {
            name: name.into(),
            value: value.map(String::from),
        })
    }

    #[test]
    fn recognizes_session_statements() {
        assert_eq!(
            commands(
                "SET search_path TO \"$user\", public; SET TIME ZONE 'UTC'; set extra_float_digits = 3"
            ),
            vec![
                set("search_path", Some("\"$user\", public")),
                set("TimeZone", Some("UTC")),
                set("extra_float_digits", Some("3")),
            ]
        );
        assert_eq!(
            commands("SET application_name = 'x y'; SET statement_timeout TO DEFAULT"),
            vec![
                set("application_name", Some("x y")),
                set("statement_timeout", None)
            ]
        );
        assert_eq!(
            commands("show transaction isolation level; SHOW ALL; show search_path"),
            vec![
                Some(Command::Show {
                    name: Some("transaction isolation level".into())
                }),
                Some(Command::Show { name: None }),
                Some(Command::Show {
                    name: Some("search_path".into())
                }),
            ]
        );
        assert_eq!(
            commands("BEGIN; START TRANSACTION; COMMIT; ROLLBACK; RESET search_path; select 1"),
            vec![
                Some(Command::Begin),
                Some(Command::Begin),
                Some(Command::Commit),
                Some(Command::Rollback),
                Some(Command::Reset {
                    name: Some("search_path".into())
                }),
                None,
            ]
        );
    }

    #[test]
    fn empty_and_comment_only_queries_have_no_statements() {
        assert!(parse("").unwrap().is_empty());
        assert!(parse("-- ping").unwrap().is_empty());
        assert!(parse(" ; ;").unwrap().is_empty());
        assert_eq!(parse("selec 1").unwrap_err().code, "42601");
    }
}
