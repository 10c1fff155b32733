//! Fault-tolerant execution (`retry_policy = TASK`, Trino's Project Tardigrade): every task attempt
//! writes its output to the spool ([`tributary_exchange::spool`]), and a failed or lost task runs
//! again alone.
//!
//! Scheduling is stage by stage (Trino's fault-tolerant scheduler): a stage starts once every stage
//! it reads has all its tasks committed, so a consumer only ever reads committed attempts, and
//! independent stages (the two sides of a join) run at the same time. Each task is a unit of retry
//! running its own plan instance; a stage that must keep all its tasks in one instance
//! ([`tributary_planner::Stage::single_instance`]) is one unit. The root stage runs on the
//! coordinator once every other stage has committed, reading the spool.
//!
//! Retries: an attempt that fails with a retryable error ([`Failure::is_retryable`]: a lost worker,
//! a dropped source connection, a spool read failure, an injected failure) runs again as the next
//! attempt, on another live worker when there is one, on exactly the same splits or input
//! partitions, after the `[query]` backoff; one that ran out of memory (53200) runs again with three
//! times the memory (Trino's growth factor). The other tasks keep running. A task out of attempts
//! (`[query] task_retry_attempts_per_task`), or failing with an error not worth retrying, fails the
//! query with [`ExecError::TaskFailed`] naming the stage, the task and the last cause.
//!
//! Commit: the scheduler records the first attempt of each task that reports success; consumers
//! are told exactly which attempt to read ([`tributary_exchange::spool::SpoolSource`]), so a
//! half-written or duplicate attempt is never read. The spool data of the query is deleted when the
//! query ends, however it ends ([`QueryExecution`] drop), and journaled before the first task
//! writes so a restarted coordinator can delete what a crashed one left.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, SessionState, TaskContext};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tributary_exchange::flight::RemoteError;
use tributary_planner::{Stage, StagePlan};

use crate::ExecError;
use crate::error::Failure;
use crate::operator_metrics::OperatorMetrics;
use crate::retry::{FailureInjection, QueryConfig};
use crate::rpc::messages::RunTasks;
use crate::rpc::run_remote_tasks;
use crate::scheduler::{QueryExecution, encode_fragment, lost_node, session_settings};
use crate::task::{TaskReport, TaskRuntime, TaskSpec};
use crate::tracker::QueryTracker;
use crate::worker::{Worker, WorkerKind, WorkerPool};

/// Growth of a task's memory limit after it ran out of memory (Trino's
/// `fault-tolerant-execution-task-memory-growth-factor`).
pub const MEMORY_GROWTH_FACTOR: usize = 3;

/// How often a running remote attempt checks that its worker is still active.
const LIVENESS_CHECK: std::time::Duration = std::time::Duration::from_millis(250);

/// Everything the fault-tolerant scheduler needs from the engine.
pub struct TaskScheduler<'a> {
    /// This node's task runtime (its spool, the root stage, and tasks that stay here).
    pub runtime: &'a Arc<TaskRuntime>,
    /// The workers tasks are placed on.
    pub workers: &'a Arc<WorkerPool>,
    /// Where task attempts are recorded (`system.runtime.tasks`).
    pub tracker: &'a Arc<QueryTracker>,
    /// Retry attempts and delays.
    pub config: &'a QueryConfig,
}

/// The state of one query's run: committed attempts, the nodes involved.
struct Run<'a> {
    query: Arc<str>,
    /// The session: its settings and functions are every task's.
    state: &'a SessionState,
    settings: Vec<(String, String)>,
    inject: Option<FailureInjection>,
    /// `(stage, task) -> committed attempt`.
    committed: Mutex<HashMap<(usize, usize), u32>>,
    /// Remote nodes that ran tasks of the query (released at its end).
    remote: Mutex<BTreeSet<String>>,
    /// Operator metrics of committed remote attempts, by stage (for EXPLAIN ANALYZE).
    metrics: Mutex<Vec<(usize, Vec<OperatorMetrics>)>>,
    plan: &'a StagePlan,
}

impl TaskScheduler<'_> {
    /// Runs every non-root stage of `plan` through the spool, retrying failed tasks, then starts the
    /// root stage on this node reading the committed attempts. Returns the execution guard (its drop
    /// deletes the query's spool data and aborts whatever still runs) and the root stream.
    ///
    /// `state` is the session's (settings and functions); `inject` makes a task fail on purpose
    /// on its first attempts (tests).
    ///
    /// # Errors
    /// No spool on this node ([`TaskRuntime::spool`]); a task out of attempts or failing for a
    /// reason not worth retrying ([`ExecError::TaskFailed`]); no active worker left.
    pub async fn start(
        &self,
        query: Arc<str>,
        plan: &StagePlan,
        state: &SessionState,
        inject: Option<FailureInjection>,
    ) -> Result<(QueryExecution, SendableRecordBatchStream)> {
        let base = TaskContext::from(state);
        let spool = self.runtime.spool()?.clone();
        spool
            .journal_begin(&self.runtime.node_id, &query)
            .await
            .map_err(|e| e.into_datafusion())?;
        let settings = session_settings(&base);
        let run = Run {
            query: query.clone(),
            state,
            settings,
            inject,
            committed: Mutex::new(HashMap::new()),
            remote: Mutex::new(BTreeSet::new()),
            metrics: Mutex::new(Vec::new()),
            plan,
        };
        // From here on, however this ends, the guard releases the spool and the remote nodes.
        let mut execution =
            QueryExecution::spooled(query.clone(), self.runtime, self.tracker, spool);
        let result = self.run_stages(&run).await;
        execution.add_remote(run.remote.lock().iter().cloned());
        for (stage, operators) in std::mem::take(&mut *run.metrics.lock()) {
            execution.add_remote_metrics(stage, operators);
        }
        result?;
        let root = plan.root();
        let ctx = self.runtime.spool_task_context(
            TaskContext::from(run.state),
            &query,
            0,
            run.input_attempts(root),
            None,
        )?;
        let stream = root.plan.execute(0, ctx)?;
        Ok((execution, stream))
    }

    /// Runs the non-root stages, each as soon as the stages it reads have committed.
    async fn run_stages(&self, run: &Run<'_>) -> Result<()> {
        let stages: Vec<&Stage> = run.plan.stages.iter().filter(|s| s.id != 0).collect();
        let mut done: HashSet<usize> = HashSet::new();
        let mut started: HashSet<usize> = HashSet::new();
        let mut running = FuturesUnordered::new();
        loop {
            for stage in &stages {
                if !started.contains(&stage.id) && stage.inputs.iter().all(|i| done.contains(i)) {
                    started.insert(stage.id);
                    running
                        .push(async move { self.run_stage(run, stage).await.map(|()| stage.id) });
                }
            }
            match running.next().await {
                None => return Ok(()),
                Some(Ok(id)) => {
                    done.insert(id);
                }
                // Dropping the other stages' futures aborts their attempts.
                Some(Err(e)) => return Err(e),
            }
        }
    }

    /// Runs every task of `stage` until each has a committed attempt.
    async fn run_stage(&self, run: &Run<'_>, stage: &Stage) -> Result<()> {
        let fragment = self.encode(stage);
        let units: Vec<Vec<usize>> = if stage.single_instance {
            vec![(0..stage.tasks).collect()]
        } else {
            (0..stage.tasks).map(|t| vec![t]).collect()
        };
        let attempts = units
            .into_iter()
            .map(|tasks| self.run_unit(run, stage, fragment.as_ref(), tasks));
        futures::future::try_join_all(attempts).await?;
        Ok(())
    }

    /// The stage's fragment encoded for remote workers (with its output partitioning), or `None`
    /// when it must stay on this node (or there are no remote workers).
    fn encode(&self, stage: &Stage) -> Option<Bytes> {
        let any_remote = self
            .workers
            .active()
            .iter()
            .any(|w| matches!(w.kind, WorkerKind::Remote { .. }));
        if !any_remote {
            return None;
        }
        match encode_fragment(&self.runtime.codec, stage) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::debug!(stage = stage.id, "stage stays on the coordinator: {e}");
                None
            }
        }
    }

    /// Runs one unit of retry (`tasks` of `stage`, in one plan instance) until it commits or is out
    /// of attempts.
    async fn run_unit(
        &self,
        run: &Run<'_>,
        stage: &Stage,
        fragment: Option<&Bytes>,
        tasks: Vec<usize>,
    ) -> Result<()> {
        let mut attempt = 0u32;
        let mut memory_limit: Option<usize> = None;
        let mut failed_on: Vec<String> = Vec::new();
        loop {
            let worker = self.pick(stage, &tasks, attempt, &failed_on, fragment.is_some())?;
            for &task in &tasks {
                self.tracker
                    .task_planned(&run.query, stage.id, task, attempt, &worker.id);
            }
            worker.add_tasks(tasks.len());
            let spec = TaskSpec {
                query: run.query.to_string(),
                stage: stage.id,
                tasks: tasks.clone(),
                stage_tasks: stage.tasks,
                output_partitions: stage.output.partitions(),
                readers: 1,
                locations: Vec::new(),
                config: run.settings.clone(),
                fail_tasks: tasks
                    .iter()
                    .copied()
                    .filter(|&t| run.inject.is_some_and(|i| i.fails(stage.id, t, attempt)))
                    .collect(),
                attempt,
                spooled: true,
                input_attempts: run.input_attempts(stage).into_iter().collect(),
                memory_limit,
            };
            let outcome = match &worker.kind {
                WorkerKind::Local => self.run_local(run, stage, &spec).await,
                WorkerKind::Remote { address } => {
                    run.remote.lock().insert(address.clone());
                    self.run_remote(&worker, address, stage, &spec, fragment)
                        .await
                }
            };
            let failure = match outcome {
                Ok(reports) => {
                    let mut failure = None;
                    for r in &reports {
                        self.tracker.task_finished(&run.query, stage.id, attempt, r);
                        if failure.is_none()
                            && let Some(e) = &r.error
                        {
                            failure = Some(Failure::from(e.clone()));
                        }
                    }
                    match failure {
                        None => {
                            if matches!(worker.kind, WorkerKind::Remote { .. }) {
                                let mut metrics = run.metrics.lock();
                                for r in reports {
                                    metrics.push((stage.id, r.operators));
                                }
                            }
                            let mut committed = run.committed.lock();
                            for &task in &tasks {
                                committed.entry((stage.id, task)).or_insert(attempt);
                            }
                            return Ok(());
                        }
                        Some(f) => f,
                    }
                }
                Err(e) => {
                    if let Some(node) = lost_node(&e) {
                        self.workers.mark_dead(&node, &e.to_string());
                        self.runtime.channels.forget(worker.address());
                    }
                    let failure = Failure::from((self.runtime.classify)(&e));
                    for &task in &tasks {
                        self.tracker.task_lost(
                            &run.query,
                            stage.id,
                            task,
                            attempt,
                            &failure.message,
                        );
                    }
                    failure
                }
            };
            attempt += 1;
            let worth_it = failure.is_retryable() || failure.is_out_of_memory();
            if attempt > self.config.task_retry_attempts_per_task || !worth_it {
                return Err(ExecError::TaskFailed {
                    stage: stage.id,
                    task: tasks[0],
                    attempts: attempt,
                    sqlstate: failure.sqlstate,
                    message: failure.message,
                }
                .into_datafusion());
            }
            if failure.is_out_of_memory() {
                memory_limit = memory_limit
                    .or(self.runtime.query_memory())
                    .map(|m| m.saturating_mul(MEMORY_GROWTH_FACTOR));
            }
            failed_on.push(worker.id.clone());
            let delay = self.config.retry_delay(attempt);
            tracing::info!(
                query = %run.query, stage = stage.id, task = tasks[0], attempt, ?delay, ?memory_limit,
                "retrying the task (retry_policy TASK): {failure}"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Where the next attempt of `tasks` runs: an active worker that has not failed them yet when
    /// there is one (else any active worker), spread over the workers by stage, task and attempt;
    /// this node when the stage cannot leave it (`remote` false).
    fn pick(
        &self,
        stage: &Stage,
        tasks: &[usize],
        attempt: u32,
        failed_on: &[String],
        remote: bool,
    ) -> Result<Arc<Worker>> {
        let active = self.workers.active();
        let candidates: Vec<Arc<Worker>> = if remote {
            active
                .into_iter()
                .filter(|w| matches!(w.kind, WorkerKind::Remote { .. }))
                .collect()
        } else {
            let local: Vec<_> = active
                .into_iter()
                .filter(|w| w.kind == WorkerKind::Local)
                .collect();
            if local.is_empty() {
                vec![Worker::local(&self.runtime.node_id)]
            } else {
                local
            }
        };
        if candidates.is_empty() {
            return Err(DataFusionError::ResourcesExhausted(
                "no active workers to run the query on".into(),
            ));
        }
        let fresh: Vec<&Arc<Worker>> = candidates
            .iter()
            .filter(|w| !failed_on.contains(&w.id))
            .collect();
        let pool: Vec<&Arc<Worker>> = if fresh.is_empty() {
            candidates.iter().collect()
        } else {
            fresh
        };
        let i = (stage.id + tasks[0] + attempt as usize) % pool.len();
        Ok(pool[i].clone())
    }

    /// Runs an attempt on this node's task runtime; returns its reports.
    async fn run_local(
        &self,
        run: &Run<'_>,
        stage: &Stage,
        spec: &TaskSpec,
    ) -> Result<Vec<TaskReport>> {
        let ctx = self.runtime.spool_task_context(
            TaskContext::from(run.state),
            &spec.query,
            spec.attempt,
            spec.input_attempts.iter().copied().collect(),
            spec.memory_limit,
        )?;
        let (tx, rx) = mpsc::unbounded_channel();
        self.runtime.start_tasks(
            spec,
            stage.plan.clone(),
            stage.output.partitioning(),
            ctx,
            tx,
        )?;
        self.tracker
            .tasks_running(&spec.query, stage.id, &spec.tasks);
        let reports: Vec<TaskReport> = tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
            .take(spec.tasks.len())
            .collect()
            .await;
        if reports.len() < spec.tasks.len() {
            return Err(DataFusionError::Internal(format!(
                "stage {} attempt {} ended without reporting every task",
                stage.id, spec.attempt
            )));
        }
        Ok(reports)
    }

    /// Runs an attempt on a remote worker; returns its reports, or the error of a lost worker: its
    /// connection broke (killed), or the coordinator marked it dead while the attempt ran (no
    /// heartbeat: a hung or partitioned worker whose connection stays open).
    async fn run_remote(
        &self,
        worker: &Worker,
        address: &str,
        stage: &Stage,
        spec: &TaskSpec,
        fragment: Option<&Bytes>,
    ) -> Result<Vec<TaskReport>> {
        let attempt = async {
            let partitioned = stage.output.partitioning().is_some();
            let fragment = fragment.cloned().unwrap_or_default();
            let request = RunTasks::new(&self.runtime.node_id, spec, partitioned, fragment);
            let mut reports = run_remote_tasks(self.runtime, &worker.id, address, &request).await?;
            self.tracker
                .tasks_running(&spec.query, stage.id, &spec.tasks);
            let mut done = Vec::new();
            while done.len() < spec.tasks.len() {
                match reports.next().await {
                    Some(report) => done.push(report?),
                    None => {
                        return Err(RemoteError::node_lost(
                            &worker.id,
                            address,
                            "its task reports ended early",
                        )
                        .into_datafusion());
                    }
                }
            }
            Ok(done)
        };
        let marked_dead = async {
            loop {
                tokio::time::sleep(LIVENESS_CHECK).await;
                if !self.workers.active().iter().any(|w| w.id == worker.id) {
                    return;
                }
            }
        };
        tokio::select! {
            done = attempt => done,
            () = marked_dead => Err(RemoteError::node_lost(
                &worker.id,
                address,
                "marked dead (no heartbeat) while running the task",
            )
            .into_datafusion()),
        }
    }
}

impl Run<'_> {
    /// The committed attempt of every task of the stages `stage` reads.
    fn input_attempts(&self, stage: &Stage) -> HashMap<(usize, usize), u32> {
        self.committed
            .lock()
            .iter()
            .filter(|((s, _), _)| stage.inputs.contains(s))
            .map(|(k, v)| (*k, *v))
            .collect()
    }
}
