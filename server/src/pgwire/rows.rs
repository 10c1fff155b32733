//! Sending a query's rows, shared by the simple and the extended protocol: DataRows as the plan
//! produces them (never collected first), with `SET progress_notices = on` a NOTICE with the query's
//! progress every `progress_interval` while the client waits, and PostgreSQL's CommandComplete tag.

use std::fmt::Debug;

use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::results::{QueryResponse, Tag};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;

use super::errors;
use super::session::Session;

/// `SET progress_notices = on`: what [`stream_rows`] reports while it waits for rows.
pub struct Progress<'a> {
    /// How often a NOTICE is sent.
    pub every: std::time::Duration,
    /// The session whose running query is reported.
    pub session: &'a Session,
}

impl<'a> Progress<'a> {
    /// The session's progress reporter when it `SET progress_notices = on`, else `None`.
    pub fn of(session: &'a Session) -> Option<Self> {
        session
            .progress_interval()
            .map(|every| Progress { every, session })
    }

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
        let p = tracker.progress(&query_id);
        if p.tasks == 0 {
            return Some(format!(
                "query {query_id}: {elapsed:.1} s, running on the coordinator"
            ));
        }
        Some(format!(
            "query {query_id}: {elapsed:.1} s, {}/{} stages finished, {}/{} tasks finished, {} rows out",
            p.finished_stages, p.stages, p.finished_tasks, p.tasks, p.rows
        ))
    }
}

/// Sends `response`'s rows as DataRows (fed, not flushed) until its stream ends, and with `progress`
/// a NOTICE (flushed, with the rows before it) every `progress.every` while no row comes. Returns how
/// many rows were sent; a row's error ends the stream with that error.
pub async fn stream_rows<C>(
    client: &mut C,
    response: &mut QueryResponse,
    progress: Option<Progress<'_>>,
) -> PgWireResult<usize>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
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
    Ok(count)
}

/// PostgreSQL's CommandComplete tag for `count` rows of a statement whose tag is `command`: `SELECT n`
/// and `FETCH n` carry the count; `SHOW`, `EXPLAIN` and the like do not.
pub fn complete_tag(command: &str, count: usize) -> Tag {
    match command {
        "SELECT" | "FETCH" => Tag::new(command).with_rows(count),
        other => Tag::new(other),
    }
}
