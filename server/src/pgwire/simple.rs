//! The simple query protocol: a query string of zero or more statements, each planned and run in turn
//! (so `SET search_path ...; SELECT ...` sees the new schema), every result in text format.
//!
//! The first error stops the string (PostgreSQL runs it as one implicit transaction) and is answered
//! with ErrorResponse and ReadyForQuery by `pgwire`.

use std::fmt::Debug;

use async_trait::async_trait;
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::copy::send_copy_out_response;
use pgwire::api::portal::Format;
use pgwire::api::query::{SimpleQueryHandler, send_execution_response, send_ready_for_query};
use pgwire::api::results::{QueryResponse, Response, Tag};
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
                let progress = session.progress_interval().map(|every| Progress {
                    every,
                    session: &session,
                });
                send_rows(client, response, progress).await?
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

/// RowDescription, the rows as they stream, CommandComplete (`SELECT n`; `SHOW` and `EXPLAIN` without a
/// count, like PostgreSQL).
/// `SET progress_notices = on`: what [`send_rows`] reports while it waits for rows.
struct Progress<'a> {
    every: std::time::Duration,
    session: &'a Session,
}

impl Progress<'_> {
    /// The session's running query's progress, from `system.runtime.queries` and its tasks as
    /// `system.runtime.tasks` has them: `query Q: 4.2 s, 1/3 stages finished, 118/240 tasks
    /// finished, 3100000 rows out` (without the stages and tasks while it has none: a query of one
    /// stage runs on the coordinator alone); `None` when no query runs.
    fn message(&self) -> Option<String> {
        let query_id = self.session.running().current()?;
        let tracker = self.session.engine.tracker();
        let elapsed_ms = tracker
            .query_infos()
            .into_iter()
            .find(|q| q.query_id == query_id)
            .map_or(0, |q| q.elapsed_ms);
        let elapsed = elapsed_ms as f64 / 1000.0;
        let tasks = tracker.tasks_of(&query_id);
        if tasks.is_empty() {
            return Some(format!(
                "query {query_id}: {elapsed:.1} s, running on the coordinator"
            ));
        }
        let mut stages: std::collections::BTreeMap<i64, (usize, usize)> = Default::default();
        let mut rows = 0;
        for task in &tasks {
            let (done, all) = stages.entry(task.stage).or_default();
            *all += 1;
            if !task.state.is_live() {
                *done += 1;
            }
            // Source stages have the highest numbers; their rows are the input read so far.
            rows += task.rows;
        }
        let finished_stages = stages.values().filter(|(done, all)| done == all).count();
        let done: usize = stages.values().map(|(done, _)| done).sum();
        Some(format!(
            "query {query_id}: {elapsed:.1} s, {finished_stages}/{} stages finished, \
             {done}/{} tasks finished, {rows} rows out",
            stages.len(),
            tasks.len()
        ))
    }
}

/// Sends a query's rows; with `progress`, a NOTICE with the query's progress every
/// `progress.every` while it runs (psql prints NOTICEs as they arrive, so a long query is no longer
/// silent until its first row).
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
    let mut count = 0;
    let mut ticks = progress
        .as_ref()
        .map(|p| tokio::time::interval_at(tokio::time::Instant::now() + p.every, p.every));
    loop {
        let next = match (&mut ticks, &progress) {
            (Some(ticks), Some(progress)) => tokio::select! {
                row = response.data_rows().next() => row,
                _ = ticks.tick() => {
                    if let Some(message) = progress.message() {
                        let notice = errors::error("00000", message);
                        let mut notice = pgwire::messages::response::NoticeResponse::from(notice);
                        // Severity NOTICE, not ERROR.
                        for (code, value) in &mut notice.fields {
                            if *code == b'S' || *code == b'V' {
                                *value = "NOTICE".into();
                            }
                        }
                        client
                            .send(PgWireBackendMessage::NoticeResponse(notice))
                            .await?;
                    }
                    continue;
                }
            },
            _ => response.data_rows().next().await,
        };
        let Some(row) = next else {
            break;
        };
        client.feed(PgWireBackendMessage::DataRow(row?)).await?;
        count += 1;
    }
    let tag = match response.command_tag() {
        "SELECT" | "FETCH" => Tag::new(response.command_tag()).with_rows(count),
        other => Tag::new(other),
    };
    client
        .feed(PgWireBackendMessage::CommandComplete(tag.into()))
        .await?;
    Ok(())
}
