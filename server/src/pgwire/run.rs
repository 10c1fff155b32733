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
use super::session::{Changes, Session};
use super::statement::{Command, Statement};

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
        Statement::Command(command) => command_outcome(session, command, format, transaction),
        Statement::Query { sql, plan: unbound } => {
            let plan = plan.unwrap_or_else(|| unbound.clone());
            query(session, sql, plan, format)
                .await
                .map(|rows| Response::Query(rows).into())
        }
    }
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
    }
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
    let ctx = session.context();
    let started = session
        .engine
        .execute(&ctx, plan, sql, &session.user)
        .await
        .map_err(|e| {
            errors::user_error(errors::exec_error(
                &e,
                Some(ctx.state().catalog_list().as_ref()),
            ))
        })?;
    let guard = session.running().begin(
        &session.engine,
        &started.query_id,
        session.statement_timeout(),
    );
    tracing::debug!(query_id = %started.query_id, %sql, "query started");
    let options = session.format_options();
    let fields = if explain {
        encoding::text_fields(&[encoding::EXPLAIN_COLUMN], format)
    } else {
        encoding::fields(&started.schema, format, options)?
    };
    let fields = Arc::new(fields);
    let mut response = pgwire::api::results::QueryResponse::new(
        fields.clone(),
        encoding::rows(fields, started.stream, guard, explain),
    );
    if explain {
        response.set_command_tag("EXPLAIN");
    }
    Ok(response)
}
