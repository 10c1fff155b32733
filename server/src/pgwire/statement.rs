//! SQL text to statements: session statements the front end answers itself (`SET`, `SHOW`, `RESET`,
//! transaction control), and queries planned by DataFusion for the engine.

use std::collections::VecDeque;

use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::{DFParserBuilder, ResetStatement, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{self, Expr, Set, Value};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use pgwire::error::ErrorInfo;
use tributary_planner::PlanError;

use super::errors::{self, sqlstate};
use super::session::Session;

/// One statement of a client's query string, ready to run.
#[derive(Debug, Clone)]
pub enum Statement {
    /// Answered by the front end.
    Command(Command),
    /// Run by the engine. `plan` may hold placeholders (`$1`) until bound.
    Query { sql: String, plan: LogicalPlan },
    /// `COPY (query) TO STDOUT` (or `COPY table TO STDOUT`): the query's rows as CopyData.
    Copy {
        sql: String,
        plan: LogicalPlan,
        options: CopyOptions,
    },
    /// `DECLARE name CURSOR FOR query`: the query starts, `FETCH` reads its rows.
    Declare {
        name: String,
        sql: String,
        plan: LogicalPlan,
    },
    /// A statement that writes (`INSERT`, `CREATE TABLE [AS]`, `CREATE SCHEMA`, `DROP ...`): run by
    /// the engine like a query, whose one `count` row becomes the command tag.
    Write {
        sql: String,
        plan: LogicalPlan,
        tag: WriteTag,
    },
}

/// The command tag of a write statement, as PostgreSQL sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteTag {
    /// `INSERT 0 n`.
    Insert,
    /// `SELECT n` (`CREATE TABLE ... AS`).
    CreateTableAs,
    /// A tag without a row count (`CREATE SCHEMA`, `CREATE TABLE`, `DROP TABLE`, `DROP SCHEMA`).
    Plain(&'static str),
}

impl WriteTag {
    /// The tag of `statement` if it is a write statement the planner may accept.
    fn of(statement: &DfStatement) -> Option<Self> {
        let DfStatement::Statement(statement) = statement else {
            return None;
        };
        Some(match statement.as_ref() {
            ast::Statement::Insert(_) => WriteTag::Insert,
            ast::Statement::CreateTable(create) if create.query.is_some() => {
                WriteTag::CreateTableAs
            }
            ast::Statement::CreateTable(_) => WriteTag::Plain("CREATE TABLE"),
            ast::Statement::CreateSchema { .. } => WriteTag::Plain("CREATE SCHEMA"),
            ast::Statement::Drop {
                object_type: ast::ObjectType::Table,
                ..
            } => WriteTag::Plain("DROP TABLE"),
            ast::Statement::Drop {
                object_type: ast::ObjectType::Schema,
                ..
            } => WriteTag::Plain("DROP SCHEMA"),
            _ => return None,
        })
    }
}

impl Statement {
    /// The DataFusion plan the statement runs, if any (what Bind fills in).
    pub fn plan(&self) -> Option<&LogicalPlan> {
        match self {
            Statement::Query { plan, .. }
            | Statement::Copy { plan, .. }
            | Statement::Declare { plan, .. }
            | Statement::Write { plan, .. } => Some(plan),
            Statement::Command(_) => None,
        }
    }
}

/// The format of a `COPY ... TO STDOUT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
    Binary,
}

/// `COPY` options, with PostgreSQL's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    pub format: CopyFormat,
    pub delimiter: Option<char>,
    pub null: Option<String>,
    pub header: bool,
    pub quote: Option<char>,
    pub escape: Option<char>,
}

/// Session statements.
#[derive(Debug, Clone, PartialEq)]
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
    /// `FETCH [FORWARD] n | ALL | NEXT FROM name`; `count` `None` is all remaining rows.
    Fetch {
        name: String,
        count: Option<usize>,
    },
    /// `CLOSE name`, or `CLOSE ALL` (`None`).
    CloseCursor {
        name: Option<String>,
    },
    /// `CALL system.reload_catalogs()` (also `system.runtime.reload_catalogs()`): read the catalog
    /// directory now instead of at the next `[catalogs] refresh_interval_ms`.
    ReloadCatalogs,
    /// `CREATE CATALOG [IF NOT EXISTS] name USING connector [WITH (key = value, ...)]` (Trino's
    /// dynamic catalogs; also `CALL system.create_catalog('name', 'connector', if_not_exists,
    /// key => value, ...)`, which it is rewritten to).
    CreateCatalog {
        name: String,
        connector: String,
        if_not_exists: bool,
        properties: Vec<(String, toml::Value)>,
    },
    /// `DROP CATALOG [IF EXISTS] name [CASCADE | RESTRICT]` (also `CALL
    /// system.drop_catalog('name', if_exists)`).
    DropCatalog {
        name: String,
        if_exists: bool,
    },
    /// Accepted and ignored (`SET TRANSACTION ...`, `SET SESSION CHARACTERISTICS ...`, `SAVEPOINT`,
    /// `RELEASE`, `DISCARD ALL`, `DEALLOCATE`, `UNLISTEN`); the tag to answer.
    Ignored(&'static str),
}

/// Splits a query string into parsed statements (none for an empty or comment-only string).
///
/// DataFusion's parser handles its own `COPY ... TO 'file'` syntax; when it refuses a string, sqlparser's
/// PostgreSQL grammar gets a second chance (`COPY (query) TO STDOUT`, `DECLARE ... CURSOR`).
pub fn parse(sql: &str) -> Result<VecDeque<DfStatement>, Box<ErrorInfo>> {
    // Trino's `FOR VERSION / TIMESTAMP AS OF`, which no dialect parses, as table names first.
    let sql = tributary_planner::time_travel::rewrite(sql)
        .map_err(|e| errors::boxed(e.sqlstate, e.message))?;
    let sql = sql.as_ref();
    let call = catalog_ddl(sql)
        .transpose()
        .map_err(|e| errors::boxed(sqlstate::SYNTAX_ERROR, format!("syntax error: {e}")))?;
    let sql = call.as_deref().unwrap_or(sql);
    let dialect = PostgreSqlDialect {};
    let parsed = DFParserBuilder::new(sql)
        .with_dialect(&dialect)
        .build()
        .and_then(|mut parser| parser.parse_statements());
    let mut statements = match parsed {
        Ok(statements) => statements,
        Err(e) => match Parser::parse_sql(&dialect, sql) {
            Ok(statements) => statements
                .into_iter()
                .map(|s| DfStatement::Statement(Box::new(s)))
                .collect(),
            Err(_) => return Err(Box::new(errors::datafusion_error(&e))),
        },
    };
    if let Some(placeholder) = statements
        .iter()
        .flat_map(placeholders)
        .find(|p| !p.starts_with('$'))
    {
        // sqlparser takes `:name` and `:1` for placeholders; PostgreSQL's grammar has no such token.
        let token = placeholder.get(..1).unwrap_or_default();
        return Err(errors::boxed(
            sqlstate::SYNTAX_ERROR,
            format!("syntax error at or near \"{token}\""),
        ));
    }
    super::rewrite::rewrite(sql, &mut statements);
    super::compat::rewrite(&mut statements);
    Ok(statements)
}

/// The placeholders (`$1`, and sqlparser's `:name`) `statement` holds, as written, in order of
/// appearance (repeats kept).
pub fn placeholders(statement: &DfStatement) -> Vec<String> {
    let mut found = Vec::new();
    let mut visit = |statement: &ast::Statement| {
        let _ = ast::visit_expressions(statement, |expr: &Expr| {
            if let Expr::Value(value) = expr
                && let Value::Placeholder(name) = &value.value
            {
                found.push(name.clone());
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    };
    match statement {
        DfStatement::Statement(statement) => visit(statement),
        DfStatement::Explain(explain) => return placeholders(&explain.statement),
        _ => {}
    }
    found
}

/// A simple query's statement with a `$n` parameter: PostgreSQL's `42P02 there is no parameter $n`
/// (only the extended protocol's Bind gives parameters values). `PREPARE` declares them.
pub fn check_no_parameters(statement: &DfStatement) -> Result<(), Box<ErrorInfo>> {
    if let DfStatement::Statement(inner) = statement
        && matches!(inner.as_ref(), ast::Statement::Prepare { .. })
    {
        return Ok(());
    }
    match placeholders(statement).first() {
        Some(name) => Err(errors::boxed(
            sqlstate::UNDEFINED_PARAMETER,
            format!("there is no parameter {name}"),
        )),
        None => Ok(()),
    }
}

/// Turns one parsed statement into a session command or a DataFusion plan, in the session's context.
pub async fn plan(session: &Session, statement: DfStatement) -> Result<Statement, Box<ErrorInfo>> {
    if let Some(command) = command(&statement)? {
        return Ok(Statement::Command(command));
    }
    if let DfStatement::Statement(inner) = &statement {
        match inner.as_ref() {
            ast::Statement::Copy {
                source,
                to,
                target,
                options,
                legacy_options,
                ..
            } => {
                if !*to || *target != ast::CopyTarget::Stdout {
                    return Err(errors::boxed(
                        sqlstate::FEATURE_NOT_SUPPORTED,
                        "only COPY ... TO STDOUT is supported: catalogs are read-only",
                    ));
                }
                let options = copy_options(options, legacy_options)?;
                let query = match source {
                    ast::CopySource::Query(query) => query.to_string(),
                    ast::CopySource::Table {
                        table_name,
                        columns,
                    } if columns.is_empty() => format!("SELECT * FROM {table_name}"),
                    ast::CopySource::Table {
                        table_name,
                        columns,
                    } => format!(
                        "SELECT {} FROM {table_name}",
                        columns
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                let (sql, plan) = plan_query(session, &query).await?;
                return Ok(Statement::Copy { sql, plan, options });
            }
            ast::Statement::Declare { stmts } => {
                let [declare] = stmts.as_slice() else {
                    return Err(errors::boxed(
                        sqlstate::SYNTAX_ERROR,
                        "DECLARE takes one cursor",
                    ));
                };
                let (Some(name), Some(query)) = (declare.names.first(), &declare.for_query) else {
                    return Err(errors::boxed(
                        sqlstate::FEATURE_NOT_SUPPORTED,
                        "only DECLARE name CURSOR FOR query is supported",
                    ));
                };
                let (sql, plan) = plan_query(session, &query.to_string()).await?;
                return Ok(Statement::Declare {
                    name: name.value.clone(),
                    sql,
                    plan,
                });
            }
            _ => {}
        }
    }
    let sql = statement.to_string();
    let write_tag = WriteTag::of(&statement);
    let mut statement = statement;
    if let DfStatement::Statement(inner) = &mut statement
        && let ast::Statement::Query(query) = inner.as_mut()
    {
        super::column_names::apply(query);
    }
    let ctx = session.context();
    let state = ctx.state();
    let plan = tributary_planner::plan::logical_plan(&state, statement)
        .await
        .map_err(|e| match e {
            PlanError::DataFusion(e) => Box::new(errors::datafusion_error(&e)),
            read_only @ PlanError::ReadOnly(_) => {
                errors::boxed(sqlstate::FEATURE_NOT_SUPPORTED, read_only.to_string())
            }
            PlanError::Undefined(missing) => errors::boxed(missing.sqlstate(), missing.to_string()),
        })?;
    if let Some(tag) = write_tag {
        return Ok(Statement::Write { sql, plan, tag });
    }
    Ok(Statement::Query { sql, plan })
}

/// Parses and plans the text of a query nested in another statement (`COPY`, `DECLARE`).
async fn plan_query(
    session: &Session,
    query: &str,
) -> Result<(String, LogicalPlan), Box<ErrorInfo>> {
    let mut parsed = parse(query)?;
    let (Some(statement), None) = (parsed.pop_front(), parsed.pop_front()) else {
        return Err(errors::boxed(sqlstate::SYNTAX_ERROR, "expected one query"));
    };
    match Box::pin(plan(session, statement)).await? {
        Statement::Query { sql, plan } => Ok((sql, plan)),
        _ => Err(errors::boxed(sqlstate::SYNTAX_ERROR, "expected a query")),
    }
}

/// `COPY` options, both the `WITH (FORMAT csv, ...)` and the older `WITH CSV HEADER` spellings.
fn copy_options(
    options: &[ast::CopyOption],
    legacy: &[ast::CopyLegacyOption],
) -> Result<CopyOptions, Box<ErrorInfo>> {
    let mut out = CopyOptions {
        format: CopyFormat::Text,
        delimiter: None,
        null: None,
        header: false,
        quote: None,
        escape: None,
    };
    for option in options {
        match option {
            ast::CopyOption::Format(f) => {
                out.format = match f.value.to_lowercase().as_str() {
                    "text" => CopyFormat::Text,
                    "csv" => CopyFormat::Csv,
                    "binary" => CopyFormat::Binary,
                    other => {
                        return Err(errors::boxed(
                            sqlstate::INVALID_PARAMETER_VALUE,
                            format!("COPY format \"{other}\" not recognized"),
                        ));
                    }
                }
            }
            ast::CopyOption::Delimiter(c) => out.delimiter = Some(*c),
            ast::CopyOption::Null(n) => out.null = Some(n.clone()),
            ast::CopyOption::Header(h) => out.header = *h,
            ast::CopyOption::Quote(c) => out.quote = Some(*c),
            ast::CopyOption::Escape(c) => out.escape = Some(*c),
            ast::CopyOption::Encoding(_) | ast::CopyOption::Freeze(_) => {}
            other => {
                return Err(errors::boxed(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    format!("COPY option {other} is not supported"),
                ));
            }
        }
    }
    for option in legacy {
        match option {
            ast::CopyLegacyOption::Binary => out.format = CopyFormat::Binary,
            ast::CopyLegacyOption::Csv(csv) => {
                out.format = CopyFormat::Csv;
                for o in csv {
                    match o {
                        ast::CopyLegacyCsvOption::Header => out.header = true,
                        ast::CopyLegacyCsvOption::Quote(c) => out.quote = Some(*c),
                        ast::CopyLegacyCsvOption::Escape(c) => out.escape = Some(*c),
                        _ => {}
                    }
                }
            }
            ast::CopyLegacyOption::Header => out.header = true,
            ast::CopyLegacyOption::Delimiter(c) => out.delimiter = Some(*c),
            ast::CopyLegacyOption::Null(n) => out.null = Some(n.clone()),
            other => {
                return Err(errors::boxed(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    format!("COPY option {other} is not supported"),
                ));
            }
        }
    }
    Ok(out)
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
        ast::Statement::Rollback {
            savepoint: Some(_), ..
        } => Command::Ignored("ROLLBACK"),
        ast::Statement::Savepoint { .. } => Command::Ignored("SAVEPOINT"),
        ast::Statement::ReleaseSavepoint { .. } => Command::Ignored("RELEASE"),
        ast::Statement::Discard { object_type } => match object_type {
            ast::DiscardObject::ALL => Command::Ignored("DISCARD ALL"),
            ast::DiscardObject::PLANS => Command::Ignored("DISCARD PLANS"),
            ast::DiscardObject::SEQUENCES => Command::Ignored("DISCARD SEQUENCES"),
            ast::DiscardObject::TEMP => Command::Ignored("DISCARD TEMP"),
        },
        ast::Statement::Call(function) if is_reload_catalogs(function) => Command::ReloadCatalogs,
        ast::Statement::Call(function) if is_call_of(function, "system.create_catalog") => {
            create_catalog_command(function)?
        }
        ast::Statement::Call(function) if is_call_of(function, "system.drop_catalog") => {
            drop_catalog_command(function)?
        }
        ast::Statement::Deallocate { .. } => Command::Ignored("DEALLOCATE"),
        ast::Statement::UNLISTEN { .. } => Command::Ignored("UNLISTEN"),
        ast::Statement::Fetch {
            name, direction, ..
        } => Command::Fetch {
            name: name.value.clone(),
            count: fetch_count(direction)?,
        },
        ast::Statement::Close { cursor } => Command::CloseCursor {
            name: match cursor {
                ast::CloseCursor::All => None,
                ast::CloseCursor::Specific { name } => Some(name.value.clone()),
            },
        },
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

/// Trino's `CREATE CATALOG [IF NOT EXISTS] name USING connector [WITH (key = value, ...)]` and
/// `DROP CATALOG [IF EXISTS] name [CASCADE | RESTRICT]`, which no SQL dialect parses, as the text of
/// the `CALL system.create_catalog(...)` / `CALL system.drop_catalog(...)` they run as; `None` for
/// any other statement. Unquoted names are lower-cased, as Trino does.
fn catalog_ddl(sql: &str) -> Option<Result<String, ParserError>> {
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::Token;
    let dialect = PostgreSqlDialect {};
    let mut p = Parser::new(&dialect).try_with_sql(sql).ok()?;
    let create = if p.parse_keywords(&[Keyword::CREATE, Keyword::CATALOG]) {
        true
    } else if p.parse_keywords(&[Keyword::DROP, Keyword::CATALOG]) {
        false
    } else {
        return None;
    };
    let literal = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let name = |p: &mut Parser| -> Result<String, ParserError> {
        let ident = p.parse_identifier()?;
        Ok(match ident.quote_style {
            Some(_) => ident.value,
            None => ident.value.to_lowercase(),
        })
    };
    let mut call = || -> Result<String, ParserError> {
        let call = if create {
            let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let catalog = name(&mut p)?;
            p.expect_keyword_is(Keyword::USING)?;
            let connector = name(&mut p)?;
            let mut args = vec![
                literal(&catalog),
                literal(&connector),
                if_not_exists.to_string(),
            ];
            if p.parse_keyword(Keyword::WITH) {
                p.expect_token(&Token::LParen)?;
                let properties = p.parse_comma_separated(|p| {
                    let key = name(p)?;
                    p.expect_token(&Token::Eq)?;
                    Ok((key, p.parse_expr()?))
                })?;
                p.expect_token(&Token::RParen)?;
                for (key, value) in properties {
                    args.push(format!("\"{}\" => {value}", key.replace('"', "\"\"")));
                }
            }
            format!("CALL system.create_catalog({})", args.join(", "))
        } else {
            let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let catalog = name(&mut p)?;
            let _ = p.parse_one_of_keywords(&[Keyword::CASCADE, Keyword::RESTRICT]);
            format!(
                "CALL system.drop_catalog({}, {if_exists})",
                literal(&catalog)
            )
        };
        while p.consume_token(&Token::SemiColon) {}
        if p.peek_token().token != Token::EOF {
            return p.expected("end of statement", p.peek_token());
        }
        Ok(call)
    };
    Some(call())
}

/// Whether a `CALL` names procedure `name` (`schema.procedure`, any case).
fn is_call_of(function: &ast::Function, name: &str) -> bool {
    function.name.to_string().eq_ignore_ascii_case(name)
}

/// A `CALL`'s arguments: the positional ones, then the named ones by name.
#[allow(clippy::type_complexity)]
fn call_arguments(function: &ast::Function) -> (Vec<&Expr>, Vec<(String, &Expr)>) {
    let mut positional = Vec::new();
    let mut named = Vec::new();
    if let ast::FunctionArguments::List(list) = &function.args {
        for arg in &list.args {
            match arg {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => positional.push(e),
                ast::FunctionArg::Named {
                    name,
                    arg: ast::FunctionArgExpr::Expr(e),
                    ..
                } => named.push((name.value.clone(), e)),
                // PostgreSQL's grammar: the name is an expression (an identifier here).
                ast::FunctionArg::ExprNamed {
                    name: Expr::Identifier(name),
                    arg: ast::FunctionArgExpr::Expr(e),
                    ..
                } => named.push((name.value.clone(), e)),
                _ => {}
            }
        }
    }
    (positional, named)
}

/// A literal argument as a catalog file's value: strings, integers, decimals and booleans.
fn literal_value(what: &str, expr: &Expr) -> Result<toml::Value, Box<ErrorInfo>> {
    let refuse = || {
        errors::boxed(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("{what}: expected a string, number or boolean literal"),
        )
    };
    let (negative, value) = match expr {
        Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => (true, expr.as_ref()),
        other => (false, other),
    };
    let Expr::Value(value) = value else {
        return Err(refuse());
    };
    Ok(match (&value.value, negative) {
        (Value::SingleQuotedString(s), false) => toml::Value::String(s.clone()),
        (Value::Boolean(b), false) => toml::Value::Boolean(*b),
        (Value::Number(n, _), _) => {
            let n = if negative { format!("-{n}") } else { n.clone() };
            match n.parse::<i64>() {
                Ok(i) => toml::Value::Integer(i),
                Err(_) => toml::Value::Float(n.parse::<f64>().map_err(|_| refuse())?),
            }
        }
        _ => return Err(refuse()),
    })
}

/// The text of a string argument.
fn string_argument(what: &str, expr: Option<&&Expr>) -> Result<String, Box<ErrorInfo>> {
    match expr.map(|e| literal_value(what, e)).transpose()? {
        Some(toml::Value::String(s)) => Ok(s),
        _ => Err(errors::boxed(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("{what}: expected a string"),
        )),
    }
}

/// The value of a boolean argument (absent: false).
fn flag_argument(what: &str, expr: Option<&&Expr>) -> Result<bool, Box<ErrorInfo>> {
    match expr.map(|e| literal_value(what, e)).transpose()? {
        None => Ok(false),
        Some(toml::Value::Boolean(b)) => Ok(b),
        Some(_) => Err(errors::boxed(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("{what}: expected true or false"),
        )),
    }
}

/// `CALL system.create_catalog('name', 'connector', if_not_exists, key => value, ...)`.
fn create_catalog_command(function: &ast::Function) -> Result<Command, Box<ErrorInfo>> {
    let (positional, named) = call_arguments(function);
    let properties = named
        .into_iter()
        .map(|(key, value)| {
            Ok((
                key.clone(),
                literal_value(&format!("property \"{key}\""), value)?,
            ))
        })
        .collect::<Result<Vec<_>, Box<ErrorInfo>>>()?;
    Ok(Command::CreateCatalog {
        name: string_argument("catalog name", positional.first())?,
        connector: string_argument("connector", positional.get(1))?,
        if_not_exists: flag_argument("if_not_exists", positional.get(2))?,
        properties,
    })
}

/// `CALL system.drop_catalog('name', if_exists)`.
fn drop_catalog_command(function: &ast::Function) -> Result<Command, Box<ErrorInfo>> {
    let (positional, _) = call_arguments(function);
    Ok(Command::DropCatalog {
        name: string_argument("catalog name", positional.first())?,
        if_exists: flag_argument("if_exists", positional.get(1))?,
    })
}

/// Whether a `CALL` is `system.reload_catalogs()` or `system.runtime.reload_catalogs()`, without
/// arguments.
fn is_reload_catalogs(function: &ast::Function) -> bool {
    let name = function.name.to_string().to_lowercase();
    let no_arguments = match &function.args {
        ast::FunctionArguments::None => true,
        ast::FunctionArguments::List(list) => list.args.is_empty(),
        ast::FunctionArguments::Subquery(_) => false,
    };
    no_arguments
        && matches!(
            name.as_str(),
            "system.reload_catalogs" | "system.runtime.reload_catalogs"
        )
}

/// How many rows a forward `FETCH` reads (`None`: all); backward and absolute moves are refused
/// (cursors are forward-only here, as `NO SCROLL` cursors are in PostgreSQL).
fn fetch_count(direction: &ast::FetchDirection) -> Result<Option<usize>, Box<ErrorInfo>> {
    use ast::FetchDirection as D;
    let number = |v: &ast::ValueWithSpan| -> Result<usize, Box<ErrorInfo>> {
        v.value.to_string().parse().map_err(|_| {
            errors::boxed(
                sqlstate::SYNTAX_ERROR,
                format!("invalid FETCH count {}", v.value),
            )
        })
    };
    match direction {
        D::Count { limit } | D::Forward { limit: Some(limit) } => number(limit).map(Some),
        D::Next | D::Forward { limit: None } => Ok(Some(1)),
        D::All | D::ForwardAll => Ok(None),
        _ => Err(errors::boxed(
            sqlstate::FEATURE_NOT_SUPPORTED,
            "cursor can only scan forward",
        )),
    }
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

    #[test]
    fn catalog_ddl_runs_as_a_call() {
        let command = |sql: &str| {
            let mut statements = parse(sql).unwrap();
            assert_eq!(statements.len(), 1, "{sql}");
            let statement = statements.pop_front().unwrap();
            command(&statement)
                .unwrap()
                .unwrap_or_else(|| panic!("{statement:?}"))
        };
        assert_eq!(
            command(
                "create catalog IF NOT EXISTS Lk using Lake \
                 with (location = 'file:///x''y', \"Max-Rows\" = -5, ssl = true, ratio = 0.5);"
            ),
            Command::CreateCatalog {
                name: "lk".into(),
                connector: "lake".into(),
                if_not_exists: true,
                properties: vec![
                    ("location".into(), toml::Value::String("file:///x'y".into())),
                    ("Max-Rows".into(), toml::Value::Integer(-5)),
                    ("ssl".into(), toml::Value::Boolean(true)),
                    ("ratio".into(), toml::Value::Float(0.5)),
                ],
            }
        );
        assert_eq!(
            command("DROP CATALOG IF EXISTS \"Pg\" CASCADE"),
            Command::DropCatalog {
                name: "Pg".into(),
                if_exists: true,
            }
        );
        assert_eq!(parse("CREATE CATALOG x USING").unwrap_err().code, "42601");
        assert_eq!(
            parse("CREATE CATALOG x USING tpch extra").unwrap_err().code,
            "42601"
        );
    }
}
