//! Running one statement for either sub-protocol: session commands answered here, queries through the
//! engine with their result streamed as rows.

use std::sync::Arc;

use datafusion::logical_expr::LogicalPlan;
use pgwire::api::portal::Format;
use pgwire::api::results::{Response, Tag};
use pgwire::error::PgWireResult;
use pgwire::messages::response::TransactionStatus;

use super::encoding;
use super::errors::{self, sqlstate};
use futures::StreamExt;

use super::session::{Changes, Cursor, Session};
use super::statement::{Command, Statement, WriteTag};

/// What running a statement produced: the response and the parameters to report.
pub struct Outcome {
    pub response: Response,
    pub changes: Changes,
}

impl From<Response> for Outcome {
    fn from(response: Response) -> Self {
        Self {
            response,
            changes: Changes::default(),
        }
    }
}

/// Runs a statement whose parameters, if any, are bound. In a failed transaction only `COMMIT` and
/// `ROLLBACK` run (`25P02` otherwise), as in PostgreSQL.
pub async fn run(
    session: &Session,
    statement: &Statement,
    plan: Option<LogicalPlan>,
    format: &Format,
    transaction: TransactionStatus,
) -> PgWireResult<Outcome> {
    if transaction == TransactionStatus::Error
        && !matches!(
            statement,
            Statement::Command(Command::Commit | Command::Rollback)
        )
    {
        return Err(errors::user_error(errors::error(
            sqlstate::IN_FAILED_TRANSACTION,
            "current transaction is aborted, commands ignored until end of transaction block",
        )));
    }
    match statement {
        Statement::Command(Command::Fetch { name, count }) => {
            fetch(session, name, *count).await.map(Into::into)
        }
        Statement::Command(Command::CloseCursor { name }) => {
            session
                .close_cursor(name.as_deref())
                .map_err(errors::user_error)?;
            Ok(Response::Execution(Tag::new(if name.is_some() {
                "CLOSE CURSOR"
            } else {
                "CLOSE CURSOR ALL"
            }))
            .into())
        }
        Statement::Command(Command::ReloadCatalogs) => {
            reload_catalogs(session).await.map(Into::into)
        }
        Statement::Command(
            command @ (Command::CreateCatalog { .. } | Command::DropCatalog { .. }),
        ) => catalog_ddl(session, command).await.map(Into::into),
        Statement::Command(command) => command_outcome(session, command, format, transaction),
        Statement::Query { sql, plan: unbound } => {
            let plan = plan.unwrap_or_else(|| unbound.clone());
            query(session, sql, plan, format)
                .await
                .map(|rows| Response::Query(rows).into())
        }
        Statement::Write {
            sql,
            plan: unbound,
            tag,
        } => {
            let plan = plan.unwrap_or_else(|| unbound.clone());
            write(session, sql, plan, *tag).await.map(Into::into)
        }
        Statement::Copy {
            sql,
            plan: unbound,
            options,
        } => {
            let plan = plan.unwrap_or_else(|| unbound.clone());
            super::copy::copy_out(session, sql, plan, options)
                .await
                .map(|copy| Response::CopyOut(copy).into())
        }
        Statement::Declare {
            name,
            sql,
            plan: unbound,
        } => {
            let plan = plan.unwrap_or_else(|| unbound.clone());
            let rows = query(session, sql, plan, &Format::UnifiedText).await?;
            let fields = rows.row_schema();
            session
                .open_cursor(
                    name,
                    Cursor {
                        fields,
                        rows: rows.data_rows,
                    },
                )
                .map_err(errors::user_error)?;
            Ok(Response::Execution(Tag::new("DECLARE CURSOR")).into())
        }
    }
}

/// Runs a write statement to its end and answers its command tag with the rows written (the sum of
/// the plan's `count` column).
async fn write(
    session: &Session,
    sql: &str,
    plan: LogicalPlan,
    tag: WriteTag,
) -> PgWireResult<Response> {
    use datafusion::arrow::array::{Array, UInt64Array};
    let (_schema, mut stream, _guard) = start(session, sql, plan).await?;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| errors::user_error(errors::datafusion_error(&e)))?;
        if let Some(count) = batch
            .columns()
            .first()
            .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
        {
            rows += count.iter().flatten().sum::<u64>();
        }
    }
    let rows = usize::try_from(rows).unwrap_or(usize::MAX);
    Ok(Response::Execution(match tag {
        WriteTag::Insert => Tag::new("INSERT").with_oid(0).with_rows(rows),
        WriteTag::CreateTableAs => Tag::new("SELECT").with_rows(rows),
        WriteTag::Plain(name) => Tag::new(name),
    }))
}

/// `CALL system.reload_catalogs()`: reads the catalog directory now
/// (`tributary_exec::Engine::reload_catalogs`), tagged `CALL`. A file that cannot be mounted fails
/// the statement with `F0000` (config_file_error) naming the file, key and reason; its catalog keeps
/// its previous definition and the other files still apply.
async fn reload_catalogs(session: &Session) -> PgWireResult<Response> {
    let config_error =
        |message: String| errors::user_error(errors::error(sqlstate::CONFIG_FILE_ERROR, message));
    let report = session
        .engine
        .reload_catalogs()
        .await
        .map_err(|e| config_error(e.to_string()))?;
    if !report.errors.is_empty() {
        let refused: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
        return Err(config_error(format!(
            "catalog files refused (their catalogs are unchanged): {}",
            refused.join("; ")
        )));
    }
    Ok(Response::Execution(Tag::new("CALL")))
}

/// `CREATE CATALOG` / `DROP CATALOG`: refused (`0A000`) unless `[catalogs] management = "dynamic"`,
/// and (`42501`) with a password method unless the user is one of `[auth] admin_users`; then the
/// catalog file is written or removed (`CatalogRegistry::create_catalog_file`) and the directory
/// read again, so the catalog is there (or gone) for this node's next statement. Other nodes see it
/// when they next read the directory (a directory shared by every node, as on one machine).
async fn catalog_ddl(session: &Session, command: &Command) -> PgWireResult<Response> {
    let fail = |code: &str, message: String| errors::user_error(errors::error(code, message));
    let config = session.engine.config();
    let what = match command {
        Command::CreateCatalog { .. } => "CREATE CATALOG",
        _ => "DROP CATALOG",
    };
    if config.catalogs.management != tributary_planner::config::CatalogManagement::Dynamic {
        return Err(fail(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!(
                "{what} needs [catalogs] management = \"dynamic\" in config.toml; catalogs are \
                 otherwise files of catalog/"
            ),
        ));
    }
    let password_auth = !matches!(
        config.auth.method,
        None | Some(tributary_planner::config::AuthMethod::Trust)
    );
    if password_auth && !config.auth.is_admin(&session.user) {
        return Err(fail(
            sqlstate::INSUFFICIENT_PRIVILEGE,
            format!("permission denied for {what}: only [auth] admin_users may change catalogs"),
        ));
    }
    let registry = session.engine.registry();
    let ddl_error =
        |e: tributary_planner::registry::CatalogDdlError| fail(e.sqlstate(), e.to_string());
    let (name, changed) = match command {
        Command::CreateCatalog {
            name,
            connector,
            if_not_exists,
            properties,
        } => (
            name,
            registry
                .create_catalog_file(name, connector, properties, *if_not_exists)
                .await
                .map_err(ddl_error)?,
        ),
        Command::DropCatalog { name, if_exists } => (
            name,
            registry
                .drop_catalog_file(name, *if_exists)
                .map_err(ddl_error)?,
        ),
        _ => {
            return Err(fail(
                sqlstate::INTERNAL_ERROR,
                "not a catalog command".into(),
            ));
        }
    };
    if changed {
        let report = session
            .engine
            .reload_catalogs()
            .await
            .map_err(|e| fail(sqlstate::CONFIG_FILE_ERROR, e.to_string()))?;
        let mounted = registry.get(name).is_some();
        if mounted != matches!(command, Command::CreateCatalog { .. }) {
            let refused: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
            return Err(fail(
                sqlstate::CONFIG_FILE_ERROR,
                format!(
                    "{what} {name}: the catalog directory did not take it: {}",
                    refused.join("; ")
                ),
            ));
        }
        tracing::info!(catalog = %name, user = %session.user, "{what}");
    }
    Ok(Response::Execution(Tag::new(what)))
}

/// `FETCH`: up to `count` (or all) of the cursor's remaining rows, tagged `FETCH n`.
async fn fetch(session: &Session, name: &str, count: Option<usize>) -> PgWireResult<Response> {
    let mut cursor = session.take_cursor(name).map_err(errors::user_error)?;
    let mut rows = Vec::new();
    let mut failed = None;
    while count.is_none_or(|n| rows.len() < n) {
        match cursor.rows.next().await {
            Some(Ok(row)) => rows.push(Ok(row)),
            Some(Err(e)) => {
                failed = Some(e);
                break;
            }
            None => break,
        }
    }
    let fields = cursor.fields.clone();
    if let Some(e) = failed {
        return Err(e);
    }
    session.return_cursor(name, cursor);
    let mut response =
        pgwire::api::results::QueryResponse::new(fields, futures::stream::iter(rows));
    response.set_command_tag("FETCH");
    Ok(Response::Query(response))
}

fn command_outcome(
    session: &Session,
    command: &Command,
    format: &Format,
    transaction: TransactionStatus,
) -> PgWireResult<Outcome> {
    let set = |changes: Result<Changes, _>| -> PgWireResult<Outcome> {
        Ok(Outcome {
            response: Response::Execution(Tag::new("SET")),
            changes: changes.map_err(errors::user_error)?,
        })
    };
    match command {
        Command::Set { name, value } => set(session.set(name, value.as_deref())),
        Command::Reset { name } => {
            let changes = session.reset(name.as_deref()).map_err(errors::user_error)?;
            Ok(Outcome {
                response: Response::Execution(Tag::new("RESET")),
                changes,
            })
        }
        Command::Show { name: Some(name) } => {
            let (display, value) = session.show(name).map_err(errors::user_error)?;
            let response = encoding::text_rows(&[&display], vec![vec![value]], format, "SHOW")?;
            Ok(Response::Query(response).into())
        }
        Command::Show { name: None } => {
            let rows = session
                .show_all()
                .into_iter()
                .map(|(name, value)| vec![name, value, String::new()])
                .collect();
            let response =
                encoding::text_rows(&["name", "setting", "description"], rows, format, "SHOW")?;
            Ok(Response::Query(response).into())
        }
        Command::Begin => Ok(Response::TransactionStart(Tag::new("BEGIN")).into()),
        Command::Commit if transaction == TransactionStatus::Error => {
            Ok(Response::TransactionEnd(Tag::new("ROLLBACK")).into())
        }
        Command::Commit => Ok(Response::TransactionEnd(Tag::new("COMMIT")).into()),
        Command::Rollback => Ok(Response::TransactionEnd(Tag::new("ROLLBACK")).into()),
        Command::Ignored(tag) => Ok(Response::Execution(Tag::new(tag)).into()),
        // Answered by `run` (they need the cursor, or await its rows).
        Command::Fetch { .. }
        | Command::CloseCursor { .. }
        | Command::ReloadCatalogs
        | Command::CreateCatalog { .. }
        | Command::DropCatalog { .. } => Err(errors::user_error(errors::error(
            sqlstate::INTERNAL_ERROR,
            "cursor or catalog command out of place",
        ))),
    }
}

/// Starts a query on the engine: its schema and batches, registered for cancel and
/// `statement_timeout` until the returned guard is dropped.
pub async fn start(
    session: &Session,
    sql: &str,
    plan: LogicalPlan,
) -> PgWireResult<(
    datafusion::arrow::datatypes::SchemaRef,
    datafusion::execution::SendableRecordBatchStream,
    super::cancel::RunningGuard,
)> {
    let ctx = session.context();
    // Registered for CancelRequest and statement_timeout before it starts: planning, scalar subqueries
    // and EXPLAIN ANALYZE all run inside `run`.
    let ticket = session
        .engine
        .begin(sql, &session.user, session.query_options());
    let guard = session.running().begin(
        &session.engine,
        &ticket.query_id,
        session.statement_timeout(),
    );
    let started = session
        .engine
        .run(ticket, &ctx, plan)
        .await
        .map_err(|e| errors::user_error(errors::exec_error(&e)))?;
    tracing::debug!(query_id = %started.query_id, %sql, "query started");
    Ok((started.schema, started.stream, guard))
}

/// Starts a query on the engine and returns its rows as a stream; the query stays cancelable (and
/// subject to `statement_timeout`) until the stream is done or dropped.
async fn query(
    session: &Session,
    sql: &str,
    plan: LogicalPlan,
    format: &Format,
) -> PgWireResult<pgwire::api::results::QueryResponse> {
    let explain = encoding::is_explain(&plan);
    let (schema, stream, guard) = start(session, sql, plan).await?;
    let options = session.format_options();
    let fields = if explain {
        encoding::text_fields(&[encoding::EXPLAIN_COLUMN], format)
    } else {
        encoding::fields(&schema, format, options)?
    };
    let fields = Arc::new(fields);
    let mut response = pgwire::api::results::QueryResponse::new(
        fields.clone(),
        encoding::rows(fields, stream, guard, explain),
    );
    if explain {
        response.set_command_tag("EXPLAIN");
    }
    Ok(response)
}
