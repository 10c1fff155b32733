//! The task runtime of one node: runs tasks of stage fragments and writes their output partitions to
//! this node's exchange, whether the task was placed here by this process's own scheduler (`single`
//! mode, or a stage that must stay on the coordinator) or arrived from the coordinator over RPC.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::metrics;
use datafusion::physical_plan::repartition::BatchPartitioner;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::task::AbortHandle;
use tracing::debug;
use tributary_exchange::flight::{
    Channels, ErrorClassifier, Location, NodeSecret, NodeTls, RoutedSource,
};
use tributary_exchange::memory::MemoryExchange;
use tributary_exchange::spool::{Spool, SpoolError, SpoolSource};
use tributary_exchange::{Exchange, ExchangeContext, ExchangeSink, ExchangeSource};

use crate::codec::PlanCodec;

/// What one task did: sent back to the scheduler when the task ends (over node RPC as
/// [`crate::rpc::messages::TaskReportMessage`]) and shown in `system.runtime.tasks` and
/// `EXPLAIN ANALYZE`.
#[derive(Debug, Clone, Default)]
pub struct TaskReport {
    /// Task number within its stage.
    pub task: usize,
    /// Rows written to the task's output partitions.
    pub rows: u64,
    /// Bytes of those rows as Arrow data ([`tributary_exchange::batch_bytes`]).
    pub bytes: u64,
    /// Bytes written to the spool (`retry_policy = TASK`; 0 for a streaming exchange).
    pub spooled_bytes: u64,
    /// Bytes of the rows written to each output partition, as Arrow data (index = partition): the
    /// input size of the consumer's partitions, by which `retry_policy = TASK` sizes its tasks.
    pub partition_bytes: Vec<u64>,
    /// Wall time from start to end, milliseconds.
    pub elapsed_ms: u64,
    /// `(SQLSTATE, message)` if the task failed.
    pub error: Option<(String, String)>,
    /// On the last report of a stage instance run on another node: the instance's per-operator
    /// metrics, for EXPLAIN ANALYZE (empty otherwise).
    pub operators: Vec<crate::operator_metrics::OperatorMetrics>,
}

/// This node's task runtime: its exchange (which holds the output of the tasks it runs), the codec that
/// decodes fragments sent to it, and the tasks it runs, by query.
pub struct TaskRuntime {
    /// This node's id, e.g. `worker-1` or `coordinator`.
    pub node_id: String,
    /// This node's RPC address (`host:port`), or `in-process` when it serves no RPC.
    pub address: String,
    /// The exchange holding the output partitions of tasks run here.
    pub exchange: Arc<MemoryExchange>,
    /// gRPC channels to the other nodes.
    pub channels: Arc<Channels>,
    /// Encodes/decodes plan fragments.
    pub codec: Arc<PlanCodec>,
    /// A plain session with this node's catalogs and functions: the base of remote tasks' contexts.
    pub session: SessionContext,
    /// Maps errors to `(SQLSTATE, message)` for other nodes.
    pub classify: ErrorClassifier,
    running: Mutex<HashMap<String, Vec<AbortHandle>>>,
    /// Memory one query may use on this node (bytes).
    query_memory: Option<usize>,
    /// Where spooled tasks (`retry_policy = TASK`) write their output and read their inputs; `None`
    /// without `[exchange] base_directories`.
    pub spool: Option<Spool>,
    /// The runtime tasks run on, apart from the one serving sessions and RPC, so that a node busy
    /// with many tasks still answers heartbeats, reads, cancels and new sessions promptly.
    executor: Executor,
    /// Set by a graceful shutdown: heartbeats tell the coordinator to place no new tasks here.
    draining: std::sync::atomic::AtomicBool,
}

/// Owns the task runtime; shuts it down without blocking when the node's runtime is dropped (which
/// may happen inside another runtime, in tests).
struct Executor {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl Executor {
    /// A runtime of `threads` worker threads (the node's cores when `None`:
    /// `tributary_planner::config::node_cores`).
    fn new(threads: Option<usize>) -> Self {
        let threads = threads
            .unwrap_or_else(tributary_planner::config::node_cores)
            .max(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("task")
            .enable_all()
            .build()
            .expect("cannot start the task runtime");
        Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for TaskRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskRuntime")
            .field("node_id", &self.node_id)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// How a node's task runtime is set up, beyond who the node is.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Memory one query may use on this node (bytes; unbounded when `None`).
    pub query_memory: Option<usize>,
    /// Threads of the runtime tasks run on (one per available core when `None`).
    pub task_threads: Option<usize>,
    /// The cluster's shared secret: sent with every request to other nodes and required on every
    /// request this node serves (none when `None`).
    pub secret: Option<NodeSecret>,
    /// Mutual TLS for node RPC and exchange reads (`[node] tls_*`; plain connections when `None`).
    pub tls: Option<Arc<NodeTls>>,
    /// The spool of `[exchange] base_directories`, if configured.
    pub spool: Option<Spool>,
}

/// How the tasks of one stage placed on this node run: everything but the plan (sent with it as
/// [`crate::rpc::messages::RunTasks`]).
#[derive(Debug, Clone, Default)]
pub struct TaskSpec {
    /// Query id.
    pub query: String,
    /// Stage id.
    pub stage: usize,
    /// The tasks to run here: task numbers within the stage, each also the plan partition it runs
    /// unless `task_partitions` says otherwise.
    pub tasks: Vec<usize>,
    /// When not empty, `task_partitions[i]` are the plan partitions task `tasks[i]` runs one after
    /// another into its one output (`retry_policy = TASK` sizes tasks by input bytes, so a task may
    /// hold several partitions; running them in turn bounds its memory to one partition's).
    pub task_partitions: Vec<Vec<usize>>,
    /// Tasks of the whole stage.
    pub stage_tasks: usize,
    /// Output partitions each task writes.
    pub output_partitions: usize,
    /// Readers of each output partition (more than 1 for a broadcast output).
    pub readers: usize,
    /// Where the tasks of the stages this one reads run, as `((stage, task), location)`.
    pub locations: Vec<((usize, usize), Location)>,
    /// The session's settings (`datafusion.*` options) as key/value pairs.
    pub config: Vec<(String, String)>,
    /// Tasks of `tasks` that must fail at once with an injected, retryable error (the session's
    /// `inject_failure` setting, for tests).
    pub fail_tasks: Vec<usize>,
    /// The attempt these tasks run as (0 for the first; `retry_policy = TASK` runs a failed task
    /// again as the next attempt).
    pub attempt: u32,
    /// Whether the tasks write their output to the spool and read their inputs from it
    /// (`retry_policy = TASK`) instead of streaming exchanges.
    pub spooled: bool,
    /// For spooled inputs: the committed attempt of every task of the stages read, as
    /// `((stage, task), attempt)`.
    pub input_attempts: Vec<((usize, usize), u32)>,
    /// Memory the tasks' plan instance may use on this node, bytes, overriding
    /// `[engine] query_max_memory_per_node_mb` (a task retried after running out of memory is granted
    /// more); `None` for the node's default.
    pub memory_limit: Option<usize>,
}

impl TaskRuntime {
    /// A runtime for this node. `session` is a plain session over the node's catalogs (its runtime
    /// environment holds the node's memory pool); `options` bound each query's memory here, size the
    /// task runtime and set the cluster's shared secret.
    pub fn new(
        node_id: String,
        address: String,
        codec: Arc<PlanCodec>,
        session: SessionContext,
        classify: ErrorClassifier,
        options: RuntimeOptions,
    ) -> Arc<Self> {
        Arc::new(Self {
            node_id,
            address,
            exchange: MemoryExchange::new(),
            channels: Channels::with_security(options.secret, options.tls),
            codec,
            session,
            classify,
            running: Mutex::new(HashMap::new()),
            query_memory: options.query_memory,
            spool: options.spool,
            executor: Executor::new(options.task_threads),
            draining: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Memory one query may use on this node, bytes (`[engine] query_max_memory_per_node_mb`).
    pub fn query_memory(&self) -> Option<usize> {
        self.query_memory
    }

    /// The spool, or the error a spooled task gets on a node without one.
    pub fn spool(&self) -> Result<&Spool> {
        self.spool.as_ref().ok_or_else(|| {
            DataFusionError::Configuration(format!(
                "node {} has no spool for retry_policy TASK: set [exchange] base_directories in \
                 its config.toml",
                self.node_id
            ))
        })
    }

    /// The task context of a query's spooled tasks on this node (`retry_policy = TASK`), run as
    /// attempt `attempt`: `base` plus a reader of the committed attempts `attempts`
    /// (`(stage, task) -> attempt`) of the stages the tasks read, and the query's memory on this
    /// node bounded by `memory_limit` bytes (else `[engine] query_max_memory_per_node_mb`).
    pub fn spool_task_context(
        &self,
        base: TaskContext,
        query: &str,
        attempt: u32,
        attempts: HashMap<(usize, usize), u32>,
        memory_limit: Option<usize>,
    ) -> Result<Arc<TaskContext>> {
        let spool = self.spool()?.clone();
        let source = Arc::new(SpoolSource { spool, attempts });
        self.context(base, query, source, attempt, memory_limit)
    }

    /// `base` with the query's memory pool on this node (bounded by `memory_limit` bytes, else the
    /// node's `[engine] query_max_memory_per_node_mb`) and the [`ExchangeContext`] its exchange
    /// reads use (`source`, and `attempt` for failure injection and the spool).
    fn context(
        &self,
        base: TaskContext,
        query: &str,
        source: Arc<dyn ExchangeSource>,
        attempt: u32,
        memory_limit: Option<usize>,
    ) -> Result<Arc<TaskContext>> {
        let limit = memory_limit.or(self.query_memory);
        let runtime = crate::memory::query_runtime(&base.runtime_env(), query, limit)?;
        let base = base.with_runtime(runtime);
        let config = base
            .session_config()
            .clone()
            .with_extension(Arc::new(ExchangeContext {
                query: query.into(),
                source,
                attempt,
            }));
        Ok(Arc::new(base.with_session_config(config)))
    }

    /// Threads of the runtime this node's tasks run on.
    pub fn task_threads(&self) -> usize {
        self.executor.handle.metrics().num_workers()
    }

    /// The task context of a query's tasks on this node: `base` (the session's settings and functions)
    /// plus an exchange source that reads each input task's output where it runs, and the query's
    /// memory pool on this node.
    pub fn task_context(
        &self,
        base: TaskContext,
        query: &str,
        locations: HashMap<(usize, usize), Location>,
    ) -> Result<Arc<TaskContext>> {
        self.task_context_with(base, query, locations, None)
    }

    /// [`TaskRuntime::task_context`] with the query's memory on this node bounded by `memory_limit`
    /// bytes instead of the node's `[engine] query_max_memory_per_node_mb` when given.
    pub fn task_context_with(
        &self,
        base: TaskContext,
        query: &str,
        locations: HashMap<(usize, usize), Location>,
        memory_limit: Option<usize>,
    ) -> Result<Arc<TaskContext>> {
        let source = Arc::new(RoutedSource {
            local_address: self.address.clone(),
            local: self.exchange.clone(),
            locations,
            channels: self.channels.clone(),
        });
        self.context(base, query, source, 0, memory_limit)
    }

    /// The context of a task that arrived over RPC: this node's session with the query's settings.
    pub fn remote_task_context(&self, spec: &TaskSpec) -> Result<Arc<TaskContext>> {
        let state = self.session.state();
        let mut config = state.config().clone();
        for (key, value) in &spec.config {
            // Settings this node does not know (another version's, or extensions) are skipped.
            let _ = config.options_mut().set(key, value);
        }
        let base = TaskContext::from(&state).with_session_config(config);
        if spec.spooled {
            return self.spool_task_context(
                base,
                &spec.query,
                spec.attempt,
                spec.input_attempts.iter().copied().collect(),
                spec.memory_limit,
            );
        }
        self.task_context_with(
            base,
            &spec.query,
            spec.locations.iter().cloned().collect(),
            spec.memory_limit,
        )
    }

    /// Creates the sinks of `spec.tasks` of a stage, then starts them; each task's report goes to
    /// `report`. `plan` is the stage fragment, `partitioning` how each task splits its output. Sinks
    /// exist when this returns, so readers may open them.
    pub fn start_tasks(
        &self,
        spec: &TaskSpec,
        plan: Arc<dyn ExecutionPlan>,
        partitioning: Option<Partitioning>,
        ctx: Arc<TaskContext>,
        report: tokio::sync::mpsc::UnboundedSender<TaskReport>,
    ) -> Result<()> {
        let query = spec.query.as_str();
        let stage = spec.stage;
        // (task, its sink, the spooled-bytes counter of a spool sink)
        type Sink = (usize, Box<dyn ExchangeSink>, Option<Arc<AtomicU64>>);
        let mut sinks: Vec<Sink> = Vec::new();
        for &task in &spec.tasks {
            let output = tributary_exchange::TaskOutputId {
                query: query.into(),
                stage,
                task,
            };
            if spec.spooled {
                let sink = self
                    .spool()?
                    .create_sink(&output, spec.attempt, spec.output_partitions)
                    .map_err(SpoolError::into_datafusion)?;
                let spooled = sink.spooled_bytes();
                sinks.push((task, Box::new(sink), Some(spooled)));
            } else {
                let sink =
                    self.exchange
                        .create_sink(&output, spec.output_partitions, spec.readers)?;
                sinks.push((task, sink, None));
            }
        }
        let mut handles = Vec::new();
        for (i, (task, sink, spooled)) in sinks.into_iter().enumerate() {
            let partitions = spec
                .task_partitions
                .get(i)
                .cloned()
                .unwrap_or_else(|| vec![task]);
            let span = tracing::info_span!("task", query, stage, task, attempt = spec.attempt, node = %self.node_id);
            let injected =
                spec.fail_tasks
                    .contains(&task)
                    .then(|| crate::ExecError::InjectedFailure {
                        stage,
                        task,
                        attempt: spec.attempt,
                    });
            let run = run_task(
                plan.clone(),
                task,
                partitions,
                spec.stage_tasks,
                partitioning.clone(),
                ctx.clone(),
                sink,
                self.classify.clone(),
                injected,
            );
            let report = report.clone();
            let handle = self.executor.handle.spawn(tracing::Instrument::instrument(
                async move {
                    let mut done = run.await;
                    crate::metrics::NODE_TASKS
                        .with_label_values(&[if done.error.is_none() {
                            "finished"
                        } else {
                            "failed"
                        }])
                        .inc();
                    if let Some(spooled) = spooled {
                        done.spooled_bytes = spooled.load(Ordering::Relaxed);
                    }
                    let _ = report.send(done);
                },
                span,
            ));
            handles.push(handle.abort_handle());
        }
        self.running
            .lock()
            .entry(query.to_string())
            .or_default()
            .extend(handles);
        Ok(())
    }

    /// Aborts every task of `query` on this node and frees its exchange data.
    pub fn release_query(&self, query: &str) {
        if let Some(handles) = self.running.lock().remove(query) {
            for h in handles {
                h.abort();
            }
        }
        self.exchange.release_query(query);
    }

    /// Marks the node draining (SIGTERM): its heartbeats say so from now on.
    pub fn set_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the node is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Queries that still hold tasks or task output on this node (released by the coordinator when
    /// they end): a draining node leaves when none is left.
    pub fn held_queries(&self) -> usize {
        self.running.lock().len()
    }

    /// Tasks started here that have not ended, over all queries.
    pub fn running_tasks(&self) -> usize {
        self.running
            .lock()
            .values()
            .map(|hs| hs.iter().filter(|h| !h.is_finished()).count())
            .sum()
    }
}

/// Runs task `task` of a stage: executes `partitions` of `plan` one after another (usually just
/// partition `task`) and writes their batches to `sink`, split into output partitions by
/// `partitioning`. Any error aborts the sink, and readers receive that error itself. The task stops
/// early when no reader wants its output any more. An `injected` failure fails the task before it
/// reads anything.
#[allow(clippy::too_many_arguments)]
async fn run_task(
    plan: Arc<dyn ExecutionPlan>,
    task: usize,
    partitions: Vec<usize>,
    stage_tasks: usize,
    partitioning: Option<Partitioning>,
    ctx: Arc<TaskContext>,
    mut sink: Box<dyn ExchangeSink>,
    classify: ErrorClassifier,
    injected: Option<crate::ExecError>,
) -> TaskReport {
    debug!("task started");
    let started = Instant::now();
    let mut rows = 0u64;
    let mut bytes = 0u64;
    let output_partitions = partitioning.as_ref().map_or(1, |p| p.partition_count());
    let mut partition_bytes = vec![0u64; output_partitions];
    let result = async {
        if let Some(e) = injected {
            return Err(e.into_datafusion());
        }
        let mut partitioner = match partitioning {
            Some(p) => Some(BatchPartitioner::try_new(
                p,
                metrics::Time::new(),
                task,
                stage_tasks,
            )?),
            None => None,
        };
        'partitions: for partition in partitions {
            let mut stream = plan.execute(partition, ctx.clone())?;
            while let Some(batch) = stream.next().await {
                let batch: RecordBatch = batch?;
                let size = tributary_exchange::batch_bytes(&batch) as u64;
                rows += batch.num_rows() as u64;
                bytes += size;
                // Yield to the runtime between batches so sessions, accepts and cancels keep being
                // served.
                tokio::task::consume_budget().await;
                match partitioner.as_mut() {
                    None => {
                        partition_bytes[0] += size;
                        sink.write(0, batch).await?;
                    }
                    Some(partitioner) => {
                        let parts: Vec<(usize, RecordBatch)> =
                            partitioner.partition_iter(batch)?.collect::<Result<_>>()?;
                        for (p, b) in parts {
                            if b.num_rows() > 0 {
                                if let Some(total) = partition_bytes.get_mut(p) {
                                    *total += tributary_exchange::batch_bytes(&b) as u64;
                                }
                                sink.write(p, b).await?;
                            }
                        }
                    }
                }
                if sink.is_abandoned() {
                    debug!("every reader has ended; stopping early");
                    break 'partitions;
                }
            }
        }
        Ok::<_, DataFusionError>(())
    }
    .await;
    let error = match result {
        Ok(()) => {
            if let Err(e) = sink.finish().await {
                debug!("task could not finish its output: {e}");
            }
            debug!("task finished");
            None
        }
        Err(e) => {
            debug!("task failed: {e}");
            let classified = classify(&e);
            sink.abort(Arc::new(e));
            Some(classified)
        }
    };
    TaskReport {
        task,
        rows,
        bytes,
        spooled_bytes: 0,
        partition_bytes,
        elapsed_ms: started.elapsed().as_millis() as u64,
        error,
        operators: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::Executor;

    #[test]
    fn the_task_runtime_has_the_configured_threads() {
        assert_eq!(Executor::new(Some(3)).handle.metrics().num_workers(), 3);
        let cores = tributary_planner::config::node_cores();
        assert_eq!(Executor::new(None).handle.metrics().num_workers(), cores);
    }
}
