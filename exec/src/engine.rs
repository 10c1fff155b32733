//! The engine a session submits queries to: planning through `planner`, execution as stages and tasks,
//! tracking in [`QueryTracker`], cancellation.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use futures::{Stream, StreamExt};
use tributary_exchange::Exchange;
use tributary_exchange::memory::MemoryExchange;
use tributary_planner::config::ConfigError;
use tributary_planner::{CatalogRegistry, StagePlan, explain, fragment};

use crate::ExecError;
use crate::scheduler::{self, QueryExecution};
use crate::subquery::{StagedRunner, resolve_scalar_subqueries};
use crate::tracker::QueryTracker;
use crate::worker::WorkerPool;

/// Settings of the engine, from `config.toml` and the CLI.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `DIR/catalog`, holding one `NAME.toml` per catalog; `None` mounts only the built-ins.
    pub catalog_dir: Option<PathBuf>,
    /// In-process workers in `single` mode (at least 1).
    pub workers: usize,
    /// Hash partitions of a repartitioned stage (Trino's `hash_partition_count`).
    pub hash_partitions: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            catalog_dir: None,
            workers: 2,
            hash_partitions: 4,
        }
    }
}

/// The query engine of one server process. Cheap to share (`Arc<Engine>`), one per process.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    registry: CatalogRegistry,
    runtime: Arc<RuntimeEnv>,
    tracker: Arc<QueryTracker>,
    workers: WorkerPool,
    exchange: Arc<dyn Exchange>,
}

/// A registered query that has not started: its id (for CancelRequest) and cancellation token.
#[derive(Debug)]
pub struct QueryTicket {
    /// Server-wide query id (Trino-style `YYYYMMDD_HHMMSS_NNNNN_xxxxx`).
    pub query_id: String,
    cancel: tokio_util::sync::CancellationToken,
}

/// A running query's result: its schema and a stream of Arrow batches.
///
/// Dropping the stream stops the query (its tasks are canceled) and records it as canceled if it had not
/// finished.
pub struct QueryStream {
    /// Server-wide query id (Trino-style `YYYYMMDD_HHMMSS_NNNNN_xxxxx`).
    pub query_id: String,
    pub schema: SchemaRef,
    pub stream: SendableRecordBatchStream,
}

impl std::fmt::Debug for QueryStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryStream")
            .field("query_id", &self.query_id)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Loads the catalogs and starts the engine. Errors name the bad config file, key and reason.
    pub async fn start(config: EngineConfig) -> Result<Arc<Self>, ConfigError> {
        let tracker = QueryTracker::new();
        let registry =
            CatalogRegistry::load(config.catalog_dir.as_deref(), tracker.clone()).await?;
        let runtime = Arc::new(RuntimeEnv::default());
        for (_, connector) in registry.connectors() {
            for (url, store) in connector.object_stores() {
                runtime.register_object_store(&url, store);
            }
        }
        let workers = WorkerPool::in_process(config.workers);
        tracker.set_nodes(workers.nodes());
        Ok(Arc::new(Self {
            config,
            registry,
            runtime,
            tracker,
            workers,
            exchange: MemoryExchange::new(),
        }))
    }

    /// The mounted catalogs.
    pub fn registry(&self) -> &CatalogRegistry {
        &self.registry
    }

    /// The query tracker behind `system.runtime.*`.
    pub fn tracker(&self) -> &Arc<QueryTracker> {
        &self.tracker
    }

    /// A DataFusion context for one client session with `catalog.schema` as the default namespace.
    pub fn new_session_context(&self, catalog: &str, schema: &str) -> SessionContext {
        tributary_planner::session::new_session_context(
            &self.registry,
            self.runtime.clone(),
            catalog,
            schema,
            self.config.hash_partitions,
        )
    }

    /// Runs a planned statement (a query, or `EXPLAIN [ANALYZE]` of one) and streams its result:
    /// [`Engine::begin`] then [`Engine::run`].
    pub async fn execute(
        &self,
        ctx: &SessionContext,
        plan: LogicalPlan,
        sql: &str,
        user: &str,
    ) -> Result<QueryStream, ExecError> {
        let ticket = self.begin(sql, user);
        self.run(ticket, ctx, plan).await
    }

    /// Registers a new query (RUNNING in `system.runtime.queries`) and returns its id. From here on
    /// [`Engine::cancel`] with that id cancels it, including while [`Engine::run`] is still planning,
    /// running scalar subqueries or executing an `EXPLAIN ANALYZE`: a front end stores the id for its
    /// CancelRequest before awaiting `run`. `sql` and `user` are recorded as given.
    pub fn begin(&self, sql: &str, user: &str) -> QueryTicket {
        let query_id = new_query_id();
        let cancel = self.tracker.begin(&query_id, user, sql);
        QueryTicket { query_id, cancel }
    }

    /// Runs the statement registered by `ticket` and streams its result.
    ///
    /// The plan is optimized, cut into stages and scheduled on the workers; the root stage's output is
    /// the returned stream. Errors: planning errors and cancellation before the stream exists as
    /// [`ExecError`]; execution errors arrive in the stream (a failing task's own error, as
    /// `DataFusionError::Shared`), and a cancel ends the stream with a [`CANCELED_MESSAGE`] error.
    pub async fn run(
        &self,
        ticket: QueryTicket,
        ctx: &SessionContext,
        plan: LogicalPlan,
    ) -> Result<QueryStream, ExecError> {
        let QueryTicket { query_id, cancel } = ticket;
        let started = tokio::select! {
            started = self.start_query(ctx, plan, &query_id) => started.map_err(ExecError::from),
            // Planning, scalar subqueries and EXPLAIN ANALYZE run before the result stream exists.
            _ = cancel.cancelled() => Err(ExecError::Canceled),
        };
        match started {
            Ok((execution, inner)) => {
                let schema = inner.schema();
                let stream = Box::pin(TrackedStream {
                    query_id: query_id.clone(),
                    schema: schema.clone(),
                    inner,
                    execution,
                    tracker: self.tracker.clone(),
                    cancel: Box::pin(cancel.cancelled_owned()),
                    done: false,
                });
                Ok(QueryStream {
                    query_id,
                    schema,
                    stream,
                })
            }
            Err(ExecError::Canceled) => {
                self.tracker.finish(&query_id, "CANCELED", None);
                Err(ExecError::Canceled)
            }
            Err(e) => {
                self.tracker
                    .finish(&query_id, "FAILED", Some(e.to_string()));
                Err(e)
            }
        }
    }

    /// Plans and starts a statement: returns the running tasks (if any) and the result stream.
    async fn start_query(
        &self,
        ctx: &SessionContext,
        plan: LogicalPlan,
        query_id: &str,
    ) -> DfResult<(Option<QueryExecution>, SendableRecordBatchStream)> {
        let state = ctx.state();
        match plan {
            LogicalPlan::Explain(explain) => {
                let physical = state.create_physical_plan(&explain.plan).await?;
                let staged = fragment(physical)?;
                let mut lines = Vec::new();
                if explain.verbose {
                    lines.push("Optimized logical plan:".to_string());
                    let optimized = state.optimize(&explain.plan)?;
                    lines.extend(
                        optimized
                            .display_indent()
                            .to_string()
                            .lines()
                            .map(|l| format!("  {l}")),
                    );
                }
                lines.extend(explain::render(&staged, false));
                Ok((None, plan_lines_stream(lines)?))
            }
            LogicalPlan::Analyze(analyze) => {
                let physical = state.create_physical_plan(&analyze.input).await?;
                let runner = SessionRunner {
                    engine: self,
                    state: &state,
                };
                let physical = resolve_scalar_subqueries(&runner, physical, query_id).await?;
                let staged = fragment(physical)?;
                let (_execution, mut stream) = self.schedule(&state, &staged, query_id)?;
                let started = std::time::Instant::now();
                let mut rows = 0usize;
                while let Some(batch) = stream.next().await {
                    match batch {
                        Ok(b) => rows += b.num_rows(),
                        Err(e) => return Err(e),
                    }
                }
                let mut lines = explain::render(&staged, true);
                lines.push(format!(
                    "Execution: {rows} rows in {:.3} ms",
                    started.elapsed().as_secs_f64() * 1000.0
                ));
                Ok((None, plan_lines_stream(lines)?))
            }
            LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Copy(_) => {
                Err(DataFusionError::NotImplemented(
                    "Tributary catalogs are read-only: only queries are supported".into(),
                ))
            }
            LogicalPlan::Statement(s) => Err(DataFusionError::NotImplemented(format!(
                "statement {}",
                s.name()
            ))),
            plan => {
                let physical = state.create_physical_plan(&plan).await?;
                let runner = SessionRunner {
                    engine: self,
                    state: &state,
                };
                let physical = resolve_scalar_subqueries(&runner, physical, query_id).await?;
                let staged = fragment(physical)?;
                let (execution, stream) = self.schedule(&state, &staged, query_id)?;
                Ok((Some(execution), stream))
            }
        }
    }

    /// Starts the tasks of `staged` on the workers; returns the guard and the root stream.
    fn schedule(
        &self,
        state: &datafusion::execution::SessionState,
        staged: &StagePlan,
        query_id: &str,
    ) -> DfResult<(QueryExecution, SendableRecordBatchStream)> {
        let query: Arc<str> = Arc::from(query_id);
        let base = TaskContext::from(state);
        let ctx = scheduler::task_context(base, &query, self.exchange.clone());
        scheduler::start(query, staged, ctx, self.exchange.clone(), &self.workers)
    }

    /// Cancels a running query (CancelRequest). Returns whether it was running.
    pub fn cancel(&self, query_id: &str) -> bool {
        self.tracker.cancel(query_id)
    }
}

/// Schedules sub-plans (scalar subqueries) of a query with the session's settings.
struct SessionRunner<'a> {
    engine: &'a Engine,
    state: &'a datafusion::execution::SessionState,
}

impl StagedRunner for SessionRunner<'_> {
    fn run(
        &self,
        plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
        key: String,
    ) -> DfResult<(Box<dyn std::any::Any + Send>, SendableRecordBatchStream)> {
        let staged = fragment(plan)?;
        let (execution, stream) = self.engine.schedule(self.state, &staged, &key)?;
        Ok((Box::new(execution), stream))
    }
}

/// A query id in Trino's shape: `YYYYMMDD_HHMMSS_NNNNN_xxxxx` (a counter and a random suffix).
fn new_query_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..5];
    format!(
        "{}_{:05}_{suffix}",
        chrono::Utc::now().format("%Y%m%d_%H%M%S"),
        n % 100_000
    )
}

/// The message of the error a canceled query's stream ends with (Postgres's text for SQLSTATE 57014).
pub const CANCELED_MESSAGE: &str = "canceling statement due to user request";

/// Wraps a query's result stream: counts rows, records the final state, and ends with a
/// [`CANCELED_MESSAGE`] error when the query is canceled.
struct TrackedStream {
    query_id: String,
    schema: SchemaRef,
    inner: SendableRecordBatchStream,
    /// The query's running tasks; dropped (aborting them) when the stream ends or is dropped.
    execution: Option<QueryExecution>,
    tracker: Arc<QueryTracker>,
    cancel: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    done: bool,
}

impl Stream for TrackedStream {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.cancel.as_mut().poll(cx).is_ready() {
            self.done = true;
            self.execution = None;
            self.tracker.finish(&self.query_id, "CANCELED", None);
            return Poll::Ready(Some(Err(DataFusionError::Execution(
                CANCELED_MESSAGE.to_string(),
            ))));
        }
        let polled = self.inner.poll_next_unpin(cx);
        match &polled {
            Poll::Ready(Some(Ok(batch))) => self.tracker.add_rows(&self.query_id, batch.num_rows()),
            Poll::Ready(Some(Err(e))) => {
                let error = e.to_string();
                self.done = true;
                self.execution = None;
                self.tracker.finish(&self.query_id, "FAILED", Some(error));
            }
            Poll::Ready(None) => {
                self.done = true;
                self.execution = None;
                self.tracker.finish(&self.query_id, "FINISHED", None);
            }
            Poll::Pending => {}
        }
        polled
    }
}

impl RecordBatchStream for TrackedStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        if !self.done {
            self.tracker.finish(&self.query_id, "CANCELED", None);
        }
    }
}

/// A one-column (`QUERY PLAN`, text) result with one row per line, as Postgres returns EXPLAIN.
fn plan_lines_stream(lines: Vec<String>) -> DfResult<SendableRecordBatchStream> {
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::memory::MemoryStream;
    let schema = Arc::new(Schema::new(vec![Field::new(
        "QUERY PLAN",
        DataType::Utf8,
        false,
    )]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(lines))])?;
    Ok(Box::pin(MemoryStream::try_new(vec![batch], schema, None)?))
}
