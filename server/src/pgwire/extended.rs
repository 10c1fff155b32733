//! The extended query protocol: Parse plans one statement (with or without parameter types), Describe
//! reports parameters and result columns from the plan, Bind decodes text or binary parameters into the
//! plan, Execute streams rows in the formats the client asked for. Named and unnamed statements and
//! portals, Sync and Close are `pgwire`'s.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::portal::{Format, Portal, PortalExecutionState};
use pgwire::api::query::ExtendedQueryHandler;
use pgwire::api::results::{
    DescribePortalResponse, DescribeStatementResponse, FieldInfo, Response,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::startup::ParameterStatus;
use pgwire::types::format::FormatOptions;

use super::Frontend;
use super::encoding;
use super::errors::{self, sqlstate};
use super::rows::{Progress, complete_tag, stream_rows};
use super::run::run;
use super::session::Session;
use super::statement::{self, Command, Statement};

/// Parses and plans the statement of a Parse message in the client's session.
#[derive(Debug)]
pub struct StatementParser;

#[async_trait]
impl QueryParser for StatementParser {
    type Statement = Statement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let session = Session::of(client)?;
        let mut statements = statement::parse(sql).map_err(errors::user_error)?;
        if statements.len() > 1 {
            return Err(errors::user_error(errors::error(
                sqlstate::SYNTAX_ERROR,
                "cannot insert multiple commands into a prepared statement",
            )));
        }
        let Some(parsed) = statements.pop_front() else {
            return Ok(None);
        };
        statement::plan(&session, parsed)
            .await
            .map(Some)
            .map_err(errors::user_error)
    }

    fn get_parameter_types(&self, statement: &Statement) -> PgWireResult<Vec<Type>> {
        match statement.plan() {
            Some(plan) => Ok(encoding::pg_parameter_types(&encoding::parameter_types(
                plan,
            )?)),
            None => Ok(vec![]),
        }
    }

    fn get_result_schema(
        &self,
        statement: &Statement,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        result_fields(statement, format.unwrap_or(&Format::UnifiedText), None)
    }
}

/// The columns a statement returns (none for commands other than `SHOW`).
fn result_fields(
    statement: &Statement,
    format: &Format,
    session: Option<&Session>,
) -> PgWireResult<Vec<FieldInfo>> {
    let options = session.map_or_else(
        || Arc::new(FormatOptions::default()),
        |s| s.format_options(),
    );
    match statement {
        Statement::Query { plan, .. } => encoding::plan_fields(plan, format, options),
        Statement::Command(Command::Show { name: None }) => Ok(encoding::text_fields(
            &["name", "setting", "description"],
            format,
        )),
        Statement::Command(Command::Show { name: Some(name) }) => {
            let column = session
                .and_then(|s| s.show(name).ok())
                .map_or_else(|| name.clone(), |(display, _)| display);
            Ok(encoding::text_fields(&[&column], format))
        }
        Statement::Command(Command::Fetch { name, .. }) => Ok(session
            .and_then(|s| s.cursor_fields(name))
            .map(|fields| {
                fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        FieldInfo::new(
                            f.name().to_string(),
                            f.table_id(),
                            f.column_id(),
                            f.datatype().clone(),
                            format.format_for(i),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()),
        Statement::Command(_)
        | Statement::Copy { .. }
        | Statement::Declare { .. }
        | Statement::Write { .. } => Ok(vec![]),
    }
}

#[async_trait]
impl ExtendedQueryHandler for Frontend {
    type Statement = Statement;
    type QueryParser = StatementParser;

    fn query_parser(&self) -> Arc<StatementParser> {
        self.parser.clone()
    }

    async fn do_describe_statement<C>(
        &self,
        client: &mut C,
        target: &StoredStatement<Statement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = Session::of(client)?;
        let inferred = self.parser.get_parameter_types(&target.statement)?;
        // The client's types win; ours fill the gaps (PostgreSQL does the same).
        let count = inferred.len().max(target.parameter_types.len());
        let parameters = (0..count)
            .map(|i| {
                target
                    .parameter_types
                    .get(i)
                    .cloned()
                    .flatten()
                    .filter(|t| *t != Type::UNKNOWN)
                    .or_else(|| inferred.get(i).cloned())
                    .unwrap_or(Type::UNKNOWN)
            })
            .collect();
        let fields = result_fields(&target.statement, &Format::UnifiedText, Some(&session))?;
        Ok(DescribeStatementResponse::new(parameters, fields))
    }

    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        portal: &Portal<Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = Session::of(client)?;
        let fields = result_fields(
            &portal.statement.statement,
            &portal.result_column_format,
            Some(&session),
        )?;
        Ok(DescribePortalResponse::new(fields))
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = Session::of(client)?;
        let statement = &portal.statement.statement;
        let bound = match statement.plan() {
            Some(plan) => Some(encoding::bind(portal, plan)?),
            None => None,
        };
        let outcome = run(
            &session,
            statement,
            bound,
            &portal.result_column_format,
            client.transaction_status(),
        )
        .await?;
        if let Statement::Declare { name, .. } = statement {
            // In PostgreSQL a cursor is a portal: clients Describe it by name before `FETCH`.
            let fetch = Statement::Command(Command::Fetch {
                name: name.clone(),
                count: None,
            });
            client
                .portal_store()
                .put_portal(Arc::new(Portal::new_cursor(
                    name.clone(),
                    Arc::new(StoredStatement::new(String::new(), fetch, vec![])),
                )));
        }
        for (name, value) in outcome.changes.reports {
            client
                .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                    name, value,
                )))
                .await?;
        }
        match outcome.response {
            // An Execute for all rows: they are sent here as they come, with progress NOTICEs when
            // asked, and the portal is left finished (a second Execute gets `SELECT 0`, as in
            // PostgreSQL). pgwire's own path collects every row before the first is sent.
            Response::Query(mut response) if max_rows == 0 => {
                let count = stream_rows(client, &mut response, Progress::of(&session)).await?;
                *portal.state().lock().await = PortalExecutionState::Finished;
                Ok(Response::Execution(complete_tag(
                    response.command_tag(),
                    count,
                )))
            }
            response => Ok(response),
        }
    }
}
