//! The scheduler: places a [`StagePlan`]'s tasks on workers, starts them, wires their outputs through
//! the exchange, and hands the root stage's stream to the session.
//!
//! Scheduling is all-at-once (Trino's policy for `retry_policy = NONE` with streaming exchanges): every
//! task of every stage starts before the root is read and blocks on its inputs, so no stage waits for a
//! slot held by its own consumer. Stages start producers first (highest id first), and each start
//! returns once the stage's output sinks exist, so a consumer never opens a partition that does not
//! exist yet. Task `i` of a stage runs partition `i` of the stage's plan; its output goes to the
//! exchange of the node it runs on, partitioned as the stage's [`StageOutput`] says.
//!
//! Placement: tasks of a stage are dealt round-robin over the active workers, each stage starting at a
//! different worker. A stage whose fragment cannot leave the coordinator (it uses something only the
//! coordinator has, see [`crate::codec`]) runs on the coordinator. The tasks of one stage on one worker
//! share one plan instance; a broadcast stage's output is read once per consumer instance.
//!
//! Lifecycle: a [`QueryExecution`] owns the tasks of one query; dropping it (query finished, failed,
//! canceled, or the client went away) aborts every task still running, on every worker, and frees the
//! query's exchange data there. A task failure, or a worker lost while running a task, ends the root
//! stream with that error (`retry_policy = NONE`).

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::repartition::RepartitionExec;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tributary_exchange::flight::{Location, RemoteError};
use tributary_planner::{Stage, StagePlan};

use crate::operator_metrics::RemoteStageMetrics;
use crate::retry::FailureInjection;
use crate::rpc::messages::RunTasks;
use crate::rpc::{release_remote, run_remote_tasks};
use crate::task::{TaskReport, TaskRuntime, TaskSpec};
use crate::tracker::QueryTracker;
use crate::worker::{Worker, WorkerKind, WorkerPool};
use tributary_exchange::spool::Spool;

/// The running tasks of one query. Dropping it aborts them and releases the query's exchange data on
/// every node involved.
pub struct QueryExecution {
    query: Arc<str>,
    runtime: Arc<TaskRuntime>,
    tracker: Arc<QueryTracker>,
    /// Remote nodes holding tasks or data of the query.
    remote: Vec<String>,
    /// Tasks following the reports of the query's tasks (local and remote).
    watchers: Vec<JoinHandle<()>>,
    /// Operator metrics of the stage instances that ran on other nodes.
    remote_metrics: Arc<parking_lot::Mutex<RemoteStageMetrics>>,
    /// The spool holding the query's task outputs (`retry_policy = TASK`): its data of the query
    /// is deleted on drop.
    spool: Option<Spool>,
}

impl QueryExecution {
    /// The guard of a query run through the spool (`retry_policy = TASK`): on drop it aborts the
    /// query's tasks here and on the nodes added with [`QueryExecution::add_remote`], and deletes
    /// the query's spool data.
    pub fn spooled(
        query: Arc<str>,
        runtime: &Arc<TaskRuntime>,
        tracker: &Arc<QueryTracker>,
        spool: Spool,
    ) -> Self {
        Self {
            query,
            runtime: runtime.clone(),
            tracker: tracker.clone(),
            remote: Vec::new(),
            watchers: Vec::new(),
            remote_metrics: Arc::default(),
            spool: Some(spool),
        }
    }

    /// Adds the operator metrics a remote instance of `stage` reported (for EXPLAIN ANALYZE).
    pub fn add_remote_metrics(
        &self,
        stage: usize,
        operators: Vec<crate::operator_metrics::OperatorMetrics>,
    ) {
        if !operators.is_empty() {
            self.remote_metrics.lock().add(stage, operators);
        }
    }

    /// Remote nodes that ran tasks of the query (released with it).
    pub fn add_remote(&mut self, addresses: impl IntoIterator<Item = String>) {
        for address in addresses {
            if !self.remote.contains(&address) {
                self.remote.push(address);
            }
        }
    }

    /// Per stage, the metrics of each operator summed over the stage's instances on other nodes
    /// (what [`tributary_planner::explain::render_analyzed`] adds to the local ones). Complete once
    /// [`QueryExecution::wait_reports`] returned.
    pub fn remote_metrics(&self) -> HashMap<usize, Vec<(String, MetricsSet)>> {
        self.remote_metrics.lock().merged()
    }

    /// Ends a query whose root stream was read to the end: lets the task reports still on their way
    /// arrive (up to a few seconds) so `system.runtime.tasks` shows them finished, then releases the
    /// query like a drop does.
    pub fn finish(self) {
        tokio::spawn(async move {
            let mut this = self;
            this.wait_reports().await;
        });
    }

    /// Waits (up to a few seconds) for the reports of tasks that have not reported yet.
    pub async fn wait_reports(&mut self) {
        let watchers = std::mem::take(&mut self.watchers);
        let wait = futures::future::join_all(watchers);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), wait).await;
    }
}

impl Drop for QueryExecution {
    fn drop(&mut self) {
        for w in &self.watchers {
            w.abort();
        }
        for address in &self.remote {
            release_remote(&self.runtime, address, &self.query);
        }
        self.runtime.release_query(&self.query);
        self.tracker.tasks_canceled(&self.query);
        if let Some(spool) = self.spool.take() {
            let query = self.query.clone();
            let release = async move {
                if let Err(e) = spool.release_query(&query).await {
                    tracing::warn!(%query, "spool: cannot delete the query's data: {e}");
                }
            };
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(release);
                }
                Err(_) => {
                    tracing::warn!(query = %self.query, "spool: no runtime to delete the query's data")
                }
            }
        }
    }
}

/// Why [`Scheduler::start`] failed.
#[derive(Debug)]
pub struct StartFailure {
    /// The error, as the client should see it.
    pub error: DataFusionError,
    /// A worker was lost before any task of the query ran on it: nothing has reached the client and
    /// no work was lost, so the query may be placed again on the workers that remain.
    pub may_place_again: bool,
}

/// Everything the scheduler needs from the engine.
pub struct Scheduler<'a> {
    /// This node's task runtime (runs local tasks and the root stage).
    pub runtime: &'a Arc<TaskRuntime>,
    /// The workers tasks are placed on.
    pub workers: &'a Arc<WorkerPool>,
    /// Where task states are recorded (`system.runtime.tasks`).
    pub tracker: &'a Arc<QueryTracker>,
}

/// Where the tasks of one stage run.
struct Placement {
    /// Worker per task.
    workers: Vec<Arc<Worker>>,
    /// The encoded fragment when the stage may run on remote workers (with whether it carries its
    /// output partitioning).
    fragment: Option<bytes::Bytes>,
}

impl Scheduler<'_> {
    /// Places and starts every non-root stage's tasks and returns the execution guard plus the root
    /// stage's output stream (which ends with the first task failure). `base` carries the session's
    /// settings and functions. The stream must be polled with the guard alive.
    ///
    /// # Errors
    /// The first error placing or starting a task. A worker found lost (unreachable, or its RunTasks
    /// call broke off) is marked dead; [`StartFailure::may_place_again`] says whether none of this
    /// query's tasks had started on it, so the caller may place the query again on the workers that
    /// remain. Once a task has run on the lost worker the query fails (`retry_policy = NONE`).
    ///
    /// `inject` makes a task fail on purpose when it fails on query attempt `attempt` (tests).
    pub async fn start(
        &self,
        query: Arc<str>,
        plan: &StagePlan,
        base: TaskContext,
        inject: Option<FailureInjection>,
        attempt: u32,
    ) -> std::result::Result<(QueryExecution, SendableRecordBatchStream), StartFailure> {
        let mut may_place_again = false;
        let fails =
            |stage: usize, task: usize| inject.is_some_and(|i| i.fails(stage, task, attempt));
        self.start_tasks(query, plan, base, &fails, &mut may_place_again)
            .await
            .map_err(|error| StartFailure {
                error,
                may_place_again,
            })
    }

    /// [`Scheduler::start`]; sets `may_place_again` when it fails on a worker that ran none of the
    /// query's tasks.
    async fn start_tasks(
        &self,
        query: Arc<str>,
        plan: &StagePlan,
        base: TaskContext,
        fails: &(dyn Fn(usize, usize) -> bool + Sync),
        may_place_again: &mut bool,
    ) -> Result<(QueryExecution, SendableRecordBatchStream)> {
        let config = session_settings(&base);
        let active = self.workers.active();
        let placements = self.place(plan, &active)?;
        let locations: HashMap<(usize, usize), Location> = placements
            .iter()
            .flat_map(|(stage, p)| {
                p.workers
                    .iter()
                    .enumerate()
                    .map(|(task, w)| ((*stage, task), self.location(w)))
            })
            .collect();
        let ctx = self.runtime.task_context(base, &query, locations.clone())?;
        let (fail_tx, fail_rx) = mpsc::unbounded_channel();
        let mut execution = QueryExecution {
            query: query.clone(),
            runtime: self.runtime.clone(),
            tracker: self.tracker.clone(),
            remote: Vec::new(),
            watchers: Vec::new(),
            remote_metrics: Arc::default(),
            spool: None,
        };
        // Producers first: a stage's sinks exist before any consumer task opens a reader.
        for stage in plan.stages.iter().rev().filter(|s| s.id != 0) {
            let placement = &placements[&stage.id];
            let readers = if stage.broadcast {
                consumer_instances(plan, stage.id, &placements)
            } else {
                1
            };
            // Group the stage's tasks by worker: one plan instance per worker (all in-process workers
            // share this process's instance).
            let mut local = Vec::new();
            let mut remote: BTreeMap<String, (Arc<Worker>, Vec<usize>)> = BTreeMap::new();
            for (task, w) in placement.workers.iter().enumerate() {
                w.add_tasks(1);
                self.tracker
                    .task_planned(&query, stage.id, task, 0, &w.id, 1);
                match &w.kind {
                    WorkerKind::Local => local.push(task),
                    WorkerKind::Remote { address } => remote
                        .entry(address.clone())
                        .or_insert_with(|| (w.clone(), Vec::new()))
                        .1
                        .push(task),
                }
            }
            let spec = |tasks: Vec<usize>| TaskSpec {
                query: query.to_string(),
                stage: stage.id,
                fail_tasks: tasks
                    .iter()
                    .copied()
                    .filter(|&t| fails(stage.id, t))
                    .collect(),
                tasks,
                task_partitions: Vec::new(),
                stage_tasks: stage.tasks,
                output_partitions: stage.output.partitions(),
                readers,
                locations: stage_input_locations(stage, &locations),
                config: config.clone(),
                attempt: 0,
                spooled: false,
                input_attempts: Vec::new(),
                memory_limit: None,
            };
            if !local.is_empty() {
                let (tx, rx) = mpsc::unbounded_channel();
                self.runtime.start_tasks(
                    &spec(local.clone()),
                    stage.plan.clone(),
                    stage.output.partitioning(),
                    ctx.clone(),
                    tx,
                )?;
                self.tracker.tasks_running(&query, stage.id, &local);
                let reports = tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
                    .take(local.len())
                    .map(Ok)
                    .boxed();
                execution.watchers.push(self.watch(
                    query.clone(),
                    stage.id,
                    None,
                    reports,
                    fail_tx.clone(),
                    execution.remote_metrics.clone(),
                ));
            }
            let starts = remote.into_iter().map(|(address, (worker, tasks))| {
                let spec = spec(tasks.clone());
                let fragment = placement.fragment.clone().unwrap_or_default();
                let partitioned = stage.output.partitioning().is_some();
                let request = RunTasks::new(&self.runtime.node_id, &spec, partitioned, fragment);
                async move {
                    let started =
                        run_remote_tasks(self.runtime, &worker.id, &address, &request).await;
                    (worker, address, tasks, started)
                }
            });
            for (worker, address, tasks, started) in futures::future::join_all(starts).await {
                // Whether an earlier stage of this query already runs tasks on this worker.
                let ran_tasks = execution.remote.contains(&address);
                execution.remote.push(address.clone());
                match started {
                    Ok(reports) => {
                        self.tracker.tasks_running(&query, stage.id, &tasks);
                        execution.watchers.push(self.watch(
                            query.clone(),
                            stage.id,
                            Some(worker),
                            reports,
                            fail_tx.clone(),
                            execution.remote_metrics.clone(),
                        ))
                    }
                    Err(e) => {
                        if is_node_lost(&e) {
                            self.workers.mark_dead(&worker.id, &e.to_string());
                            self.runtime.channels.forget(&address);
                            *may_place_again = !ran_tasks;
                        }
                        return Err(e);
                    }
                }
            }
        }
        let root = plan.root().plan.execute(0, ctx)?;
        let stream = FailFast {
            schema: root.schema(),
            inner: root,
            failures: fail_rx,
            done: false,
        };
        Ok((execution, Box::pin(stream)))
    }

    /// Decides where every task of every non-root stage runs.
    fn place(
        &self,
        plan: &StagePlan,
        active: &[Arc<Worker>],
    ) -> Result<BTreeMap<usize, Placement>> {
        let coordinator = Worker::local(&self.runtime.node_id);
        let any_remote = active
            .iter()
            .any(|w| matches!(w.kind, WorkerKind::Remote { .. }));
        let mut placements = BTreeMap::new();
        for stage in plan.stages.iter().filter(|s| s.id != 0) {
            let fragment = if any_remote {
                match self.encode(stage) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        tracing::debug!(stage = stage.id, "stage stays on the coordinator: {e}");
                        None
                    }
                }
            } else {
                None
            };
            let workers: Vec<Arc<Worker>> = match (&fragment, active.is_empty()) {
                (Some(_), false) if stage.single_instance => {
                    vec![active[stage.id % active.len()].clone(); stage.tasks]
                }
                (Some(_), false) => (0..stage.tasks)
                    .map(|t| active[(stage.id + t) % active.len()].clone())
                    .collect(),
                _ => {
                    // In-process workers only (or a stage that must stay on the coordinator).
                    let local: Vec<_> = active
                        .iter()
                        .filter(|w| w.kind == WorkerKind::Local)
                        .cloned()
                        .collect();
                    if local.is_empty() && any_remote && fragment.is_none() {
                        vec![coordinator.clone(); stage.tasks]
                    } else if local.is_empty() {
                        return Err(DataFusionError::ResourcesExhausted(
                            "no active workers to run the query on".into(),
                        ));
                    } else {
                        (0..stage.tasks)
                            .map(|t| local[(stage.id + t) % local.len()].clone())
                            .collect()
                    }
                }
            };
            placements.insert(stage.id, Placement { workers, fragment });
        }
        Ok(placements)
    }

    /// Encodes a stage's fragment for remote workers, wrapped in the repartitioning of its output.
    fn encode(&self, stage: &Stage) -> Result<bytes::Bytes> {
        encode_fragment(&self.runtime.codec, stage)
    }

    fn location(&self, worker: &Worker) -> Location {
        match &worker.kind {
            WorkerKind::Local => Location {
                node: self.runtime.node_id.clone(),
                address: self.runtime.address.clone(),
            },
            WorkerKind::Remote { address } => Location {
                node: worker.id.clone(),
                address: address.clone(),
            },
        }
    }

    /// Follows the reports of one group of tasks: records them, and turns a failed task or a lost
    /// worker into the query's failure.
    fn watch(
        &self,
        query: Arc<str>,
        stage: usize,
        worker: Option<Arc<Worker>>,
        mut reports: BoxStream<'static, Result<TaskReport>>,
        failures: mpsc::UnboundedSender<DataFusionError>,
        metrics: Arc<parking_lot::Mutex<RemoteStageMetrics>>,
    ) -> JoinHandle<()> {
        let tracker = self.tracker.clone();
        let runtime = self.runtime.clone();
        let pool = self.workers.clone();
        tokio::spawn(async move {
            while let Some(report) = reports.next().await {
                match report {
                    Ok(mut r) => {
                        tracker.task_finished(&query, stage, 0, &r);
                        if !r.operators.is_empty() {
                            metrics.lock().add(stage, std::mem::take(&mut r.operators));
                        }
                        // A local task's own error reaches the root through the exchange, whole;
                        // a remote one arrives here already mapped to its SQLSTATE.
                        if let (Some((sqlstate, message)), Some(_)) = (r.error, &worker) {
                            let _ = failures.send(
                                RemoteError {
                                    sqlstate,
                                    message,
                                    lost_node: None,
                                }
                                .into_datafusion(),
                            );
                        }
                    }
                    Err(e) => {
                        if let Some(w) = &worker {
                            pool.mark_dead(&w.id, &e.to_string());
                            runtime.channels.forget(w.address());
                        }
                        let _ = failures.send(e);
                        return;
                    }
                }
            }
        })
    }
}

/// A stage's fragment as sent to remote workers: its plan wrapped in the `RepartitionExec` of its
/// output partitioning (taken off again by [`crate::rpc::unwrap_partitioning`]), encoded by `codec`.
/// Errors when the fragment uses something only this node has.
pub fn encode_fragment(codec: &crate::codec::PlanCodec, stage: &Stage) -> Result<bytes::Bytes> {
    let plan: Arc<dyn ExecutionPlan> = match stage.output.partitioning() {
        Some(p) => Arc::new(RepartitionExec::try_new(stage.plan.clone(), p)?),
        None => stage.plan.clone(),
    };
    codec.encode(&plan)
}

/// The session settings (`datafusion.*` options that have a value) a task carries to its node.
pub fn session_settings(base: &TaskContext) -> Vec<(String, String)> {
    base.session_config()
        .options()
        .entries()
        .into_iter()
        .filter_map(|e| e.value.map(|v| (e.key, v)))
        .collect()
}

/// Whether `e` says a node was lost (rather than a task failing on it).
pub fn is_node_lost(e: &DataFusionError) -> bool {
    lost_node(e).is_some()
}

/// The node `e` (or the error it wraps) says was lost, if any.
pub fn lost_node(e: &DataFusionError) -> Option<String> {
    let mut current: &dyn std::error::Error = e;
    loop {
        if let Some(r) = current.downcast_ref::<RemoteError>() {
            return r.lost_node.clone();
        }
        if let Some(DataFusionError::Shared(inner)) = current.downcast_ref::<DataFusionError>() {
            current = inner.as_ref();
            continue;
        }
        current = current.source()?;
    }
}

/// The locations of the tasks of the stages `stage` reads.
fn stage_input_locations(
    stage: &Stage,
    locations: &HashMap<(usize, usize), Location>,
) -> Vec<((usize, usize), Location)> {
    locations
        .iter()
        .filter(|((s, _), _)| stage.inputs.contains(s))
        .map(|(k, v)| (*k, v.clone()))
        .collect()
}

/// How many plan instances of the stage consuming `producer` read it: one per remote worker running
/// consumer tasks, plus one for this process if any run here (the root stage is one instance).
fn consumer_instances(
    plan: &StagePlan,
    producer: usize,
    placements: &BTreeMap<usize, Placement>,
) -> usize {
    let Some(consumer) = plan.stages.iter().find(|s| s.inputs.contains(&producer)) else {
        return 1;
    };
    let Some(placement) = placements.get(&consumer.id) else {
        return 1;
    };
    let mut remote: Vec<&str> = Vec::new();
    let mut local = false;
    for w in &placement.workers {
        match &w.kind {
            WorkerKind::Local => local = true,
            WorkerKind::Remote { address } => {
                if !remote.contains(&address.as_str()) {
                    remote.push(address);
                }
            }
        }
    }
    remote.len() + usize::from(local)
}

/// The root stream, ended early by the first failure any task of the query reports.
struct FailFast {
    schema: SchemaRef,
    inner: SendableRecordBatchStream,
    failures: mpsc::UnboundedReceiver<DataFusionError>,
    done: bool,
}

impl Stream for FailFast {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(Some(e)) = self.failures.poll_recv(cx) {
            self.done = true;
            return Poll::Ready(Some(Err(e)));
        }
        let polled = self.inner.poll_next_unpin(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.done = true;
        }
        polled
    }
}

impl RecordBatchStream for FailFast {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}
