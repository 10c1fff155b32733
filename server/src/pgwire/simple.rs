//! The simple query protocol: a query string of zero or more statements, each planned and run in turn
//! (so `SET search_path ...; SELECT ...` sees the new schema), every result in text format.
//!
//! The first error stops the string (PostgreSQL runs it as one implicit transaction) and is answered
//! with ErrorResponse and ReadyForQuery by `pgwire`.

use std::fmt::Debug;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::copy::send_copy_out_response;
use pgwire::api::portal::Format;
use pgwire::api::query::{SimpleQueryHandler, send_execution_response, send_ready_for_query};
use pgwire::api::results::{QueryResponse, Response};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireConnectionState};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::RowDescription;
use pgwire::messages::response::EmptyQueryResponse;
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::ParameterStatus;

use super::Frontend;
use super::errors;
use super::rows::{Progress, complete_tag, stream_rows};
use super::run::run;
use super::session::Session;
use super::statement;

#[async_trait]
impl SimpleQueryHandler for Frontend {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        let result = run_query_string(client, &query.query).await;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        result?;
        let status = client.transaction_status();
        send_ready_for_query(client, status).await
    }

    /// Unused: [`Self::on_query`] runs statements one by one instead of answering the whole string at once.
    async fn do_query<C>(&self, _client: &mut C, _query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Ok(vec![])
    }
}

async fn run_query_string<C>(client: &mut C, sql: &str) -> PgWireResult<()>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let session = Session::of(client)?;
    let statements = statement::parse(sql).map_err(errors::user_error)?;
    if statements.is_empty() {
        client
            .feed(PgWireBackendMessage::EmptyQueryResponse(
                EmptyQueryResponse::new(),
            ))
            .await?;
        return Ok(());
    }
    for parsed in statements {
        statement::check_no_parameters(&parsed).map_err(errors::user_error)?;
        let planned = statement::plan(&session, parsed)
            .await
            .map_err(errors::user_error)?;
        let outcome = run(
            &session,
            &planned,
            None,
            &Format::UnifiedText,
            client.transaction_status(),
        )
        .await?;
        let status = client.transaction_status();
        match outcome.response {
            Response::Query(response) => {
                send_rows(client, response, Progress::of(&session)).await?
            }
            Response::TransactionStart(tag) => {
                send_execution_response(client, tag).await?;
                client.set_transaction_status(status.to_in_transaction_state());
            }
            Response::TransactionEnd(tag) => {
                send_execution_response(client, tag).await?;
                client.set_transaction_status(status.to_idle_state());
            }
            Response::Execution(tag) => send_execution_response(client, tag).await?,
            Response::CopyOut(copy) => send_copy_out_response(client, copy).await?,
            Response::EmptyQuery => {
                client
                    .feed(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await?
            }
            _ => {}
        }
        for (name, value) in outcome.changes.reports {
            client
                .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                    name, value,
                )))
                .await?;
        }
    }
    Ok(())
}

/// RowDescription, the rows as they stream (with progress NOTICEs when asked), CommandComplete
/// (`SELECT n`; `SHOW` and `EXPLAIN` without a count, like PostgreSQL).
async fn send_rows<C>(
    client: &mut C,
    mut response: QueryResponse,
    progress: Option<Progress<'_>>,
) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    client
        .feed(PgWireBackendMessage::RowDescription(RowDescription::new(
            response.row_schema().iter().map(Into::into).collect(),
        )))
        .await?;
    let count = stream_rows(client, &mut response, progress).await?;
    client
        .feed(PgWireBackendMessage::CommandComplete(
            complete_tag(response.command_tag(), count).into(),
        ))
        .await?;
    Ok(())
}
