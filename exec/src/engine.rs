//! The engine a session submits queries to: planning through `planner`, execution as stages and tasks,
//! tracking in [`QueryTracker`], cancellation.

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
use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use tributary_connectors::sqlstate;
use tributary_connectors::system::{QueryState, TaskInfo, TaskState};
use tributary_exchange::flight::{ErrorClassifier, RemoteError};
use tributary_planner::config::{Config, ConfigError};
pub use tributary_planner::config::{EngineConfig, NodeConfig, NodeRole};
use tributary_planner::plan::plan_statement_sized;
use tributary_planner::registry::ReloadReport;
use tributary_planner::sizing::PartitionSizing;
use tributary_planner::{CatalogRegistry, DistributedPlan, PlannedStatement, StagePlan, explain};

use crate::ExecError;
use crate::codec::PlanCodec;
use crate::fte::TaskScheduler;
use crate::memory::node_runtime;
use crate::retry::{QueryOptions, RetryPolicy};
use crate::rpc::{NodeService, spawn_heartbeats};
use crate::scheduler::{QueryExecution, Scheduler};
use crate::subquery::{StagedRunner, run_scalar_subqueries};
use crate::task::{RuntimeOptions, TaskRuntime};
use crate::tracker::QueryTracker;
use crate::worker::{Heartbeats, WorkerPool};
use tributary_exchange::spool::{ResultBuffer, Spool};

/// The classifier used when the front end gives none: the SQLSTATE of an error that already crossed
/// a node boundary, `XX000` otherwise.
pub fn default_classifier() -> ErrorClassifier {
    Arc::new(|e: &DataFusionError| {
        let mut current: &dyn std::error::Error = e;
        loop {
            if let Some(r) = current.downcast_ref::<RemoteError>() {
                return (r.sqlstate.clone(), r.message.clone());
            }
            match current.source() {
                Some(next) => current = next,
                None => return (sqlstate::INTERNAL_ERROR.to_string(), e.to_string()),
            }
        }
    })
}

/// The query engine of one server process. Cheap to share (`Arc<Engine>`), one per process.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    registry: CatalogRegistry,
    runtime: Arc<RuntimeEnv>,
    tracker: Arc<QueryTracker>,
    workers: Arc<WorkerPool>,
    /// This node's task runtime (root stages, local tasks, and the RPC service's tasks).
    tasks: Arc<TaskRuntime>,
    /// Where `retry_policy = QUERY` results are spilled past `[query] result_buffer_mb`.
    result_spool: Spool,
}

/// A registered query that has not started: its id (for CancelRequest), cancellation token and
/// options.
#[derive(Debug)]
pub struct QueryTicket {
    /// Server-wide query id (Trino-style `YYYYMMDD_HHMMSS_NNNNN_xxxxx`).
    pub query_id: String,
    cancel: tokio_util::sync::CancellationToken,
    options: QueryOptions,
}

/// A running query's result: its schema and a stream of Arrow batches.
///
/// Dropping the stream stops the query (its tasks are canceled) and records it as canceled if it had not
/// finished.
pub struct QueryStream {
    /// Server-wide query id (Trino-style `YYYYMMDD_HHMMSS_NNNNN_xxxxx`).
    pub query_id: String,
    /// The result's columns.
    pub schema: SchemaRef,
    /// The result's batches; errors end it.
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
    /// Loads the catalogs and starts the engine with [`default_classifier`]: [`Engine::start_with`].
    pub async fn start(config: Config) -> Result<Arc<Self>, ConfigError> {
        Self::start_with(config, default_classifier()).await
    }

    /// Loads the catalogs of `config.catalog_dir()` and starts the engine in its `[node] role`:
    /// `single` builds `[engine] workers` in-process workers; `coordinator` and `worker` also serve
    /// node RPC on `[node] rpc_listen`, and a worker announces
    /// itself to its coordinator every heartbeat interval. `classify` gives errors the SQLSTATE they
    /// carry to other nodes. Errors name the bad config file, key and reason (or the RPC address that
    /// could not be bound).
    pub async fn start_with(
        config: Config,
        classify: ErrorClassifier,
    ) -> Result<Arc<Self>, ConfigError> {
        let tracker = QueryTracker::new();
        let registry =
            CatalogRegistry::load(config.catalog_dir().as_deref(), tracker.clone()).await?;
        let runtime = Arc::new(RuntimeEnv::default());
        for (_, connector) in registry.connectors() {
            for (url, store) in connector.object_stores() {
                runtime.register_object_store(&url, store);
            }
        }
        let config_error = |reason: String| ConfigError {
            file: config.file(),
            reason,
        };
        let node_memory = config.engine.max_memory_bytes();
        let runtime = node_runtime(runtime, node_memory)
            .map_err(|e| config_error(format!("[engine] max_memory_mb: {e}")))?;
        tracing::info!(
            node_mib = node_memory.map(|bytes| bytes >> 20),
            query_mib = config
                .engine
                .query_max_memory_per_node_bytes()
                .map(|bytes| bytes >> 20),
            configured = config.engine.max_memory_mb.is_some(),
            "memory limits"
        );
        let cluster = &config.node;
        let heartbeats = Heartbeats::from(cluster);
        let session = tributary_planner::session::new_session_context(
            &registry,
            runtime.clone(),
            "tpch",
            "tiny",
            config.engine.hash_partitions,
        );
        let codec = Arc::new(PlanCodec::new(registry.clone()));
        let listener = match cluster.role {
            NodeRole::Single => None,
            NodeRole::Coordinator | NodeRole::Worker => Some(
                tokio::net::TcpListener::bind(&cluster.rpc_listen)
                    .await
                    .map_err(|e| {
                        config_error(format!(
                            "[node] rpc_listen: cannot listen on {}: {e}",
                            cluster.rpc_listen
                        ))
                    })?,
            ),
        };
        let address = match &listener {
            Some(l) => l
                .local_addr()
                .map_err(|e| config_error(e.to_string()))?
                .to_string(),
            None => "in-process".to_string(),
        };
        let node_id = cluster.id.clone().unwrap_or_else(|| match cluster.role {
            NodeRole::Worker => {
                format!("worker-{}", address.rsplit(':').next().unwrap_or_default())
            }
            _ => "coordinator".to_string(),
        });
        let spool = if config.exchange.base_directories.is_empty() {
            if config.query.retry_policy == RetryPolicy::Task {
                return Err(config_error(
                    "key `query.retry_policy`: \"TASK\" needs a spool: set [exchange] \
                     base_directories"
                        .into(),
                ));
            }
            None
        } else {
            Some(Spool::new(&config.exchange).map_err(|e| config_error(e.to_string()))?)
        };
        // Where a `retry_policy = QUERY` result past its memory bound goes: the spool, else a
        // directory of the system's temporary directory, one per user (not per process: every
        // server start left one behind), whose servers keep their results apart by query id
        // (which carries a random suffix).
        let result_spool = match &spool {
            Some(spool) => spool.clone(),
            None => {
                let user = std::env::var("USER")
                    .ok()
                    .filter(|u| {
                        !u.is_empty()
                            && u.chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    })
                    .unwrap_or_else(|| "default".into());
                let dir = std::env::temp_dir().join(format!("tributary-results-{user}"));
                Spool::local(&dir, config.exchange.compression)
                    .map_err(|e| config_error(format!("result spool {}: {e}", dir.display())))?
            }
        };
        if cluster.role != NodeRole::Worker
            && let Some(spool) = &spool
        {
            spawn_spool_cleanup(spool.clone(), node_id.clone(), config.exchange.max_age_s);
        }
        let tasks = TaskRuntime::new(
            node_id,
            address.clone(),
            codec,
            session,
            classify,
            RuntimeOptions {
                query_memory: config.engine.query_max_memory_per_node_bytes(),
                task_threads: config.engine.task_threads,
                secret: cluster.shared_secret.clone(),
                tls: node_tls(cluster)?,
                spool,
            },
        );
        let workers = Arc::new(match cluster.role {
            NodeRole::Single => {
                WorkerPool::in_process(config.engine.workers).with_tracker(tracker.clone())
            }
            NodeRole::Coordinator | NodeRole::Worker => WorkerPool::cluster(
                &address,
                cluster.include_coordinator,
                heartbeats,
                tracker.clone(),
            ),
        });
        if let Some(listener) = listener {
            let membership = (cluster.role == NodeRole::Coordinator).then(|| workers.clone());
            let service = NodeService::new(tasks.clone(), membership);
            tokio::spawn(async move {
                if let Err(e) = service.serve(listener).await {
                    tracing::error!("node RPC service stopped: {e}");
                }
            });
            tracing::info!(address, role = ?cluster.role, task_threads = tasks.task_threads(), "node RPC listening");
        }
        match cluster.role {
            NodeRole::Coordinator => {
                let pool = workers.clone();
                let interval = heartbeats.interval.min(std::time::Duration::from_secs(1));
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(interval).await;
                        pool.expire();
                    }
                });
            }
            NodeRole::Worker => {
                let coordinator = cluster.coordinator.clone().ok_or_else(|| {
                    config_error(
                        "[node] coordinator: a worker needs its coordinator's address".into(),
                    )
                })?;
                spawn_heartbeats(tasks.clone(), coordinator, heartbeats.interval)
                    .map_err(|e| config_error(format!("cannot start heartbeats: {e}")))?;
            }
            NodeRole::Single => {}
        }
        let refresh = config.catalogs.refresh_interval_ms;
        let engine = Arc::new(Self {
            config,
            registry,
            runtime,
            tracker,
            workers,
            tasks,
            result_spool,
        });
        if refresh > 0 && engine.registry.dir().is_some() {
            spawn_catalog_refresh(
                Arc::downgrade(&engine),
                std::time::Duration::from_millis(refresh),
            );
        }
        Ok(engine)
    }

    /// Reads `DIR/catalog/` again and mounts what was added, changed or removed
    /// ([`CatalogRegistry::reload`]); new catalogs' object stores become known to this node's
    /// runtime. Statements planned afterwards see the new catalogs; running queries keep theirs.
    /// Runs every `[catalogs] refresh_interval_ms` on every node, and on
    /// `CALL system.reload_catalogs()`.
    ///
    /// Errors: only when the directory cannot be listed; bad files are in the report (and logged
    /// by the periodic refresh), each naming its file, key and reason, never a secret.
    pub async fn reload_catalogs(&self) -> Result<ReloadReport, ConfigError> {
        reload_catalogs(&self.registry, &self.runtime).await
    }

    /// This node's id (`coordinator`, or a worker's id).
    pub fn node_id(&self) -> &str {
        &self.tasks.node_id
    }

    /// This node's RPC address (`host:port`), or `in-process` in `single` mode.
    pub fn rpc_address(&self) -> &str {
        &self.tasks.address
    }

    /// The workers tasks are placed on.
    pub fn workers(&self) -> &Arc<WorkerPool> {
        &self.workers
    }

    /// Tasks started on this node that have not ended (in-process workers' too in `single` mode).
    pub fn running_tasks(&self) -> usize {
        self.tasks.running_tasks()
    }

    /// Bytes reserved now in this node's memory pool (every query's operators).
    pub fn memory_reserved(&self) -> usize {
        self.runtime.memory_pool.reserved()
    }

    /// The configuration the engine was started with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The mounted catalogs.
    pub fn registry(&self) -> &CatalogRegistry {
        &self.registry
    }

    /// A worker's graceful shutdown (SIGTERM; Trino's `SHUTTING_DOWN`): heartbeats say the node is
    /// draining, so the coordinator places no new tasks on it; after two heartbeat intervals (tasks
    /// placed before the coordinator heard it have arrived) it waits until no query holds tasks or
    /// task output here (the coordinator releases them when each query ends), at most `timeout`;
    /// then it tells the coordinator it leaves. The queries it served finish normally.
    pub async fn drain(&self, timeout: std::time::Duration) {
        self.tasks.set_draining();
        let interval = std::time::Duration::from_millis(self.config.node.heartbeat_interval_ms);
        tracing::info!(
            held_queries = self.tasks.held_queries(),
            "draining: no new tasks; finishing the running ones"
        );
        tokio::time::sleep(interval * 2).await;
        let deadline = tokio::time::Instant::now() + timeout;
        while self.tasks.held_queries() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let held = self.tasks.held_queries();
        if held > 0 {
            tracing::warn!(
                held,
                ?timeout,
                "drain timeout: leaving with queries still here"
            );
        }
        if let Some(coordinator) = &self.config.node.coordinator {
            let channels = tributary_exchange::flight::Channels::with_security(
                self.tasks.channels.secret().cloned(),
                self.tasks.channels.tls().cloned(),
            );
            match crate::rpc::announce(&self.tasks, &channels, coordinator, true).await {
                Ok(()) => tracing::info!("drained; left the cluster"),
                Err(e) => tracing::warn!("drained; cannot tell the coordinator: {e}"),
            }
        }
    }

    /// A coordinator's graceful shutdown: waits until no query runs, at most `timeout` (new sessions
    /// are the front end's to refuse). Returns how many still run.
    pub async fn wait_for_queries(&self, timeout: std::time::Duration) -> usize {
        let running = || {
            self.tracker
                .query_infos()
                .iter()
                .filter(|q| q.state == tributary_connectors::system::QueryState::Running)
                .count()
        };
        let deadline = tokio::time::Instant::now() + timeout;
        while running() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        running()
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
            self.config.engine.hash_partitions,
        )
    }

    /// Runs a planned statement (a query, or `EXPLAIN [ANALYZE]` of one) with the cluster's default
    /// options and streams its result: [`Engine::begin`] then [`Engine::run`].
    pub async fn execute(
        &self,
        ctx: &SessionContext,
        plan: LogicalPlan,
        sql: &str,
        user: &str,
    ) -> Result<QueryStream, ExecError> {
        let ticket = self.begin(sql, user, self.default_options());
        self.run(ticket, ctx, plan).await
    }

    /// The options of a query whose session changed nothing: `[query] retry_policy`, no failure
    /// injection, no session pid.
    pub fn default_options(&self) -> QueryOptions {
        QueryOptions {
            retry_policy: self.config.query.retry_policy,
            inject_failure: None,
            session_pid: None,
        }
    }

    /// Whether queries may run under `policy` on this node: `TASK` needs a spool (`[exchange]
    /// base_directories`). The error says what to configure.
    pub fn check_retry_policy(&self, policy: RetryPolicy) -> Result<(), String> {
        match policy {
            RetryPolicy::Task if self.tasks.spool.is_none() => Err(
                "retry_policy TASK needs a spool: set [exchange] base_directories in config.toml"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    /// Registers a new query (RUNNING in `system.runtime.queries`) and returns its id. From here on
    /// [`Engine::cancel`] with that id cancels it, including while [`Engine::run`] is still planning,
    /// running scalar subqueries, holding a `retry_policy = QUERY` result or executing an
    /// `EXPLAIN ANALYZE`: a front end stores the id for its CancelRequest before awaiting `run`.
    /// `sql` and `user` are recorded as given; `options` are the session's.
    pub fn begin(&self, sql: &str, user: &str, options: QueryOptions) -> QueryTicket {
        let query_id = new_query_id();
        let cancel = self.tracker.begin(
            &query_id,
            user,
            sql,
            options.retry_policy,
            options.session_pid,
        );
        QueryTicket {
            query_id,
            cancel,
            options,
        }
    }

    /// Runs the statement registered by `ticket` and streams its result.
    ///
    /// The plan is optimized, cut into stages and scheduled on the workers; the root stage's output is
    /// the returned stream. Errors: planning errors and cancellation before the stream exists as
    /// [`ExecError`]; execution errors arrive in the stream (a failing task's own error, as
    /// `DataFusionError::Shared`), and a cancel ends the stream with an [`ExecError::Canceled`] error.
    pub async fn run(
        &self,
        ticket: QueryTicket,
        ctx: &SessionContext,
        plan: LogicalPlan,
    ) -> Result<QueryStream, ExecError> {
        let QueryTicket {
            query_id,
            cancel,
            options,
        } = ticket;
        // Planning, scheduling and retries log under the query's id.
        let span = tracing::info_span!("query", query = %query_id);
        let starting = tracing::Instrument::instrument(
            self.start_with_retries(ctx, plan, &query_id, &options),
            span,
        );
        let started = tokio::select! {
            started = starting => started.map_err(ExecError::from),
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
                    workers: self.workers.clone(),
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
                self.tracker.finish(&query_id, QueryState::Canceled, None);
                Err(ExecError::Canceled)
            }
            Err(e) => {
                self.tracker
                    .finish(&query_id, QueryState::Failed, Some(e.to_string()));
                Err(e)
            }
        }
    }

    /// Starts a statement under its retry policy. `NONE`: [`Engine::start_query`] once. `QUERY`:
    /// each attempt is planned and run to the end with its result held
    /// ([`Engine::run_to_end`]); an attempt failing with a retryable error
    /// ([`crate::error::Failure::is_retryable`]) runs again after the backoff of `[query]`, up to
    /// `query_retry_attempts` more times, under its own key (`QUERY.rN`) so its tasks and exchange
    /// data never mix with an earlier attempt's. Only the succeeding attempt's rows reach the
    /// client.
    async fn start_with_retries(
        &self,
        ctx: &SessionContext,
        plan: LogicalPlan,
        query_id: &str,
        options: &QueryOptions,
    ) -> DfResult<(Option<QueryExecution>, SendableRecordBatchStream)> {
        if options.retry_policy != RetryPolicy::Query {
            return self.start_query(ctx, plan, query_id, options, 0).await;
        }
        let mut attempt = 0u32;
        loop {
            let key = if attempt == 0 {
                query_id.to_string()
            } else {
                format!("{query_id}.r{attempt}")
            };
            let result = async {
                let (execution, stream) = self
                    .start_query(ctx, plan.clone(), &key, options, attempt)
                    .await?;
                self.run_to_end(&key, attempt, execution, stream).await
            }
            .await;
            let error = match result {
                Ok(stream) => return Ok((None, stream)),
                Err(e) => e,
            };
            if let Some(node) = crate::scheduler::lost_node(&error) {
                self.workers.mark_dead(&node, &error.to_string());
            }
            let failure = crate::error::Failure::from((self.tasks.classify)(&error));
            if attempt >= self.config.query.query_retry_attempts || !failure.is_retryable() {
                return Err(error);
            }
            attempt += 1;
            let delay = self.config.query.retry_delay(attempt);
            tracing::info!(query = %query_id, attempt, ?delay, "retrying the query (retry_policy QUERY): {failure}");
            self.tracker.attempt_started(query_id);
            tokio::time::sleep(delay).await;
        }
    }

    /// Reads an attempt's result to the end and holds it (`retry_policy = QUERY`): the rows reach
    /// the client only once the attempt has succeeded. Returns a stream over the held rows.
    async fn run_to_end(
        &self,
        key: &str,
        attempt: u32,
        execution: Option<QueryExecution>,
        mut stream: SendableRecordBatchStream,
    ) -> DfResult<SendableRecordBatchStream> {
        let schema = stream.schema();
        let mut buffer = self.result_buffer(key, attempt, schema.clone());
        while let Some(batch) = stream.next().await {
            buffer.push(batch?).await?;
        }
        if let Some(execution) = execution {
            execution.finish();
        }
        buffer.into_stream().await
    }

    /// Where an attempt's result is held until it succeeds: memory up to `[query] result_buffer_mb`,
    /// then the spool.
    fn result_buffer(&self, key: &str, attempt: u32, schema: SchemaRef) -> ResultBuffer {
        let memory = (self.config.query.result_buffer_mb as usize).saturating_mul(1 << 20);
        ResultBuffer::new(self.result_spool.clone(), key, attempt, schema, memory)
    }

    /// The hash partitions of a query planned now on a coordinator whose `[engine]
    /// hash_partitions` is not set, by a session still at that default (`session`: its
    /// `target_partitions`): the task slots of the active workers (their task threads together,
    /// at least 4), as Trino sizes `hash_partition_count` to the cluster. `None` where nothing
    /// changes: `single` mode, a configured count, a session that set its own, or no worker that
    /// said its threads.
    fn cluster_hash_partitions(&self, session: usize) -> Option<usize> {
        let engine = &self.config.engine;
        if self.config.node.role != NodeRole::Coordinator
            || engine.hash_partitions_configured
            || session != engine.hash_partitions
        {
            return None;
        }
        let slots = self.workers.task_slots();
        (slots > 0).then(|| slots.clamp(4, tributary_planner::config::MAX_PARALLELISM))
    }

    /// Plans a statement through the planner ([`plan_statement_sized`]) and starts it: returns the
    /// running tasks (if any) and the result stream. `key` names the attempt's tasks and exchange
    /// data; `attempt` is the query attempt (0 for the first), for failure injection.
    async fn start_query(
        &self,
        ctx: &SessionContext,
        plan: LogicalPlan,
        query_id: &str,
        options: &QueryOptions,
        attempt: u32,
    ) -> DfResult<(Option<QueryExecution>, SendableRecordBatchStream)> {
        let mut state = ctx.state();
        if let Some(partitions) = self.cluster_hash_partitions(state.config().target_partitions()) {
            state.config_mut().options_mut().execution.target_partitions = partitions;
        }
        if options.retry_policy == RetryPolicy::Task {
            // Under TASK a join's build side is split by hash partition, each task holding its
            // share (more tasks when the input is large), so that a join larger than memory runs
            // in pieces: only a side DataFusion's own thresholds call tiny (1 MiB) is collected
            // whole, not the planner's 32 MiB (`tributary_planner::session`), which every task
            // would hold entire.
            let defaults = datafusion::config::OptimizerOptions::default();
            let optimizer = &mut state.config_mut().options_mut().optimizer;
            optimizer.hash_join_single_partition_threshold =
                defaults.hash_join_single_partition_threshold;
            optimizer.hash_join_single_partition_threshold_rows =
                defaults.hash_join_single_partition_threshold_rows;
        }
        let state = state;
        // Under TASK, a query scanning much gets more hash partitions (up to `[query]
        // task_hash_partitions`), so a join or aggregation larger than memory runs in pieces.
        let sizing = (options.retry_policy == RetryPolicy::Task).then(|| PartitionSizing {
            min: state.config().target_partitions(),
            max: self.config.query.task_hash_partitions,
            target_bytes: self
                .config
                .query
                .task_target_input_mb
                .saturating_mul(1 << 20),
        });
        let runner = SessionRunner {
            engine: self,
            state: &state,
            options,
        };
        match plan_statement_sized(&state, plan, sizing).await? {
            PlannedStatement::Explain(lines) => Ok((None, plan_lines_stream(lines)?)),
            PlannedStatement::Analyze(plan) => {
                run_scalar_subqueries(&runner, &plan, query_id).await?;
                let (mut execution, mut stream) = self
                    .schedule(&state, &plan.stages, query_id, options, attempt)
                    .await?;
                let started = std::time::Instant::now();
                let mut rows = 0usize;
                while let Some(batch) = stream.next().await {
                    rows += batch?.num_rows();
                }
                execution.wait_reports().await;
                let mut lines = explain::render_analyzed(&plan.stages, &execution.remote_metrics());
                lines.extend(self.task_lines(query_id));
                lines.push(format!(
                    "Execution: {rows} rows in {:.3} ms",
                    started.elapsed().as_secs_f64() * 1000.0
                ));
                Ok((None, plan_lines_stream(lines)?))
            }
            PlannedStatement::Query(plan) => {
                run_scalar_subqueries(&runner, &plan, query_id).await?;
                let (execution, stream) = self
                    .schedule(&state, &plan.stages, query_id, options, attempt)
                    .await?;
                Ok((Some(execution), stream))
            }
        }
    }

    /// Starts the tasks of `staged` on the workers; returns the guard and the root stream. Under
    /// `retry_policy = TASK` the fault-tolerant scheduler runs the stages through the spool
    /// ([`TaskScheduler`]); otherwise every task starts at once with streaming exchanges
    /// ([`Scheduler`]). `attempt` is the query attempt, for failure injection.
    async fn schedule(
        &self,
        state: &datafusion::execution::SessionState,
        staged: &StagePlan,
        query_id: &str,
        options: &QueryOptions,
        attempt: u32,
    ) -> DfResult<(QueryExecution, SendableRecordBatchStream)> {
        let inject = options.inject_failure;
        if options.retry_policy == RetryPolicy::Task {
            let scheduler = TaskScheduler {
                min_tasks: state.config().target_partitions(),
                runtime: &self.tasks,
                workers: &self.workers,
                tracker: &self.tracker,
                config: &self.config.query,
            };
            return scheduler
                .start(Arc::from(query_id), staged, state, inject)
                .await;
        }
        let scheduler = Scheduler {
            runtime: &self.tasks,
            workers: &self.workers,
            tracker: &self.tracker,
        };
        // A worker found lost before any of the query's tasks ran on it is marked dead; nothing has
        // reached the client, so the query is placed again on the workers that remain. Each attempt's
        // tasks and exchanges go by their own key (`QUERY.aN` from the second on, as Trino's task ids
        // carry an attempt), so the release of a failed attempt cannot reach the next one's.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let query: Arc<str> = if attempts == 1 {
                Arc::from(query_id)
            } else {
                Arc::from(format!("{query_id}.a{attempts}"))
            };
            match scheduler
                .start(
                    query.clone(),
                    staged,
                    TaskContext::from(state),
                    inject,
                    attempt,
                )
                .await
            {
                Ok(started) => return Ok(started),
                Err(f) if attempts < 3 && f.may_place_again => {
                    tracing::info!(query = %query, "placing the query again: {}", f.error);
                }
                Err(f) => return Err(f.error),
            }
        }
    }

    /// EXPLAIN ANALYZE lines for the tasks of `query_id`: per stage, each task's worker, rows, bytes
    /// and time.
    fn task_lines(&self, query_id: &str) -> Vec<String> {
        let tasks = self.tracker.tasks_of(query_id);
        if tasks.is_empty() {
            return Vec::new();
        }
        let mut lines = vec!["Tasks:".to_string()];
        let mut stages: Vec<i64> = tasks.iter().map(|t| t.stage).collect();
        stages.sort_unstable();
        stages.dedup();
        for stage in stages {
            let of: Vec<_> = tasks.iter().filter(|t| t.stage == stage).collect();
            let finished = |t: &&&TaskInfo| t.state == TaskState::Finished;
            let rows: i64 = of.iter().filter(finished).map(|t| t.rows).sum();
            let bytes: i64 = of.iter().filter(finished).map(|t| t.bytes).sum();
            let spooled: i64 = of.iter().map(|t| t.spooled_bytes).sum();
            let mut distinct: Vec<i64> = of.iter().map(|t| t.task).collect();
            distinct.sort_unstable();
            distinct.dedup();
            let spooled = if spooled > 0 {
                format!(", {spooled} bytes spooled")
            } else {
                String::new()
            };
            lines.push(format!(
                "  Stage {stage}: {} tasks, {} attempts, {rows} rows, {bytes} bytes{spooled}",
                distinct.len(),
                of.len()
            ));
            for t in of {
                let partitions = if t.partitions > 1 {
                    format!(" ({} partitions)", t.partitions)
                } else {
                    String::new()
                };
                lines.push(format!(
                    "    task {} attempt {} on {}{partitions}: {} rows, {} bytes, {} ms, {}",
                    t.task,
                    t.attempt,
                    t.worker,
                    t.rows,
                    t.bytes,
                    t.elapsed_ms,
                    t.state.as_str().to_lowercase()
                ));
            }
        }
        lines
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
    options: &'a QueryOptions,
}

impl StagedRunner for SessionRunner<'_> {
    fn run<'a>(
        &'a self,
        plan: &'a DistributedPlan,
        key: String,
    ) -> BoxFuture<'a, DfResult<(Box<dyn std::any::Any + Send>, SendableRecordBatchStream)>> {
        Box::pin(async move {
            let (execution, stream) = self
                .engine
                .schedule(
                    self.state,
                    &plan.stages,
                    &key,
                    &QueryOptions {
                        inject_failure: None,
                        ..self.options.clone()
                    },
                    0,
                )
                .await?;
            Ok((Box::new(execution) as Box<dyn std::any::Any + Send>, stream))
        })
    }
}

/// Removes what queries of a crashed coordinator `node` left in the spool (its journal), then sweeps
/// data older than `max_age_s` seconds, at start and every hour, in the background.
fn spawn_spool_cleanup(spool: Spool, node: String, max_age_s: u64) {
    tokio::spawn(async move {
        match spool.recover(&node).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                queries = n,
                "spool: removed what earlier runs of this node left"
            ),
            Err(e) => tracing::warn!("spool: cannot recover the journal: {e}"),
        }
        let max_age = std::time::Duration::from_secs(max_age_s);
        loop {
            match spool.sweep(max_age).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(queries = n, "spool: removed data past [exchange] max_age_s")
                }
                Err(e) => tracing::warn!("spool: sweep failed: {e}"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
    });
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

/// Wraps a query's result stream: counts rows, records the final state, and ends with an
/// [`ExecError::Canceled`] error when the query is canceled.
struct TrackedStream {
    query_id: String,
    schema: SchemaRef,
    inner: SendableRecordBatchStream,
    /// The query's running tasks; dropped (aborting them) when the stream ends or is dropped.
    execution: Option<QueryExecution>,
    tracker: Arc<QueryTracker>,
    /// Marks a worker dead when the query's error says it was lost.
    workers: Arc<WorkerPool>,
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
            self.tracker
                .finish(&self.query_id, QueryState::Canceled, None);
            return Poll::Ready(Some(Err(ExecError::Canceled.into_datafusion())));
        }
        let polled = self.inner.poll_next_unpin(cx);
        match &polled {
            Poll::Ready(Some(Ok(batch))) => self.tracker.add_rows(&self.query_id, batch.num_rows()),
            Poll::Ready(Some(Err(e))) => {
                if let Some(node) = crate::scheduler::lost_node(e) {
                    self.workers.mark_dead(&node, &e.to_string());
                }
                let error = e.to_string();
                self.done = true;
                self.execution = None;
                self.tracker
                    .finish(&self.query_id, QueryState::Failed, Some(error));
            }
            Poll::Ready(None) => {
                self.done = true;
                if let Some(execution) = self.execution.take() {
                    execution.finish();
                }
                self.tracker
                    .finish(&self.query_id, QueryState::Finished, None);
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
            self.tracker
                .finish(&self.query_id, QueryState::Canceled, None);
        }
    }
}

/// A one-column (`QUERY PLAN`, text) result with one row per line, as Postgres returns EXPLAIN.
fn plan_lines_stream(lines: Vec<String>) -> DfResult<SendableRecordBatchStream> {
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::memory::MemoryStream;
    let schema = Arc::new(Schema::new(vec![Field::new(
        explain::QUERY_PLAN_COLUMN,
        DataType::Utf8,
        false,
    )]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(lines))])?;
    Ok(Box::pin(MemoryStream::try_new(vec![batch], schema, None)?))
}

/// The node's mutual TLS material from `[node] tls_ca_file`, `tls_cert_file` and `tls_key_file`
/// (none when they are absent; the config allows all three or none). Errors name the file that
/// cannot be read or holds no PEM block.
fn node_tls(
    node: &tributary_planner::config::NodeConfig,
) -> Result<Option<Arc<tributary_exchange::flight::NodeTls>>, ConfigError> {
    let (Some(ca), Some(cert), Some(key)) =
        (&node.tls_ca_file, &node.tls_cert_file, &node.tls_key_file)
    else {
        return Ok(None);
    };
    let read = |file: &std::path::PathBuf| {
        let pem = std::fs::read(file).map_err(|e| ConfigError {
            file: file.clone(),
            reason: format!("[node] TLS file: {e}"),
        })?;
        if !pem.windows(11).any(|w| w == b"-----BEGIN ") {
            return Err(ConfigError {
                file: file.clone(),
                reason: "[node] TLS file: no PEM block".into(),
            });
        }
        Ok(pem)
    };
    Ok(Some(Arc::new(tributary_exchange::flight::NodeTls {
        ca_pem: read(ca)?,
        cert_pem: read(cert)?,
        key_pem: read(key)?,
    })))
}

/// Reloads the catalogs every `interval` while the engine lives; logs each bad catalog file once (until
/// it changes or is fixed), not at every refresh.
fn spawn_catalog_refresh(engine: std::sync::Weak<Engine>, interval: std::time::Duration) {
    tokio::spawn(async move {
        let mut reported: Vec<String> = Vec::new();
        loop {
            tokio::time::sleep(interval).await;
            let Some(engine) = engine.upgrade() else {
                return;
            };
            let errors = match engine.reload_catalogs().await {
                Ok(report) => report.errors.iter().map(|e| e.to_string()).collect(),
                Err(e) => vec![e.to_string()],
            };
            for error in errors.iter().filter(|e| !reported.contains(e)) {
                tracing::warn!(
                    "catalog file refused; the catalog keeps its previous definition: {error}"
                );
            }
            reported = errors;
        }
    });
}

/// [`CatalogRegistry::reload`], then the new catalogs' object stores registered in `runtime`; logs
/// what changed.
pub(crate) async fn reload_catalogs(
    registry: &CatalogRegistry,
    runtime: &RuntimeEnv,
) -> Result<ReloadReport, ConfigError> {
    let report = registry.reload().await?;
    for name in report.added.iter().chain(&report.changed) {
        if let Some(connector) = registry.get(name) {
            for (url, store) in connector.object_stores() {
                runtime.register_object_store(&url, store);
            }
        }
    }
    if report.changed_anything() {
        tracing::info!(
            added = ?report.added,
            changed = ?report.changed,
            removed = ?report.removed,
            "catalogs reloaded"
        );
    }
    Ok(report)
}
