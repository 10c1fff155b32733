//! Fault-tolerant execution (`retry_policy = TASK`, Trino's Project Tardigrade): every task attempt
//! writes its output to the spool ([`tributary_exchange::spool`]), and a failed or lost task runs
//! again alone.
//!
//! Scheduling is stage by stage (Trino's fault-tolerant scheduler): a stage starts once every stage
//! it reads has all its tasks committed, so a consumer only ever reads committed attempts, and
//! independent stages (the two sides of a join) run at the same time. Each task is a unit of retry
//! running its own plan instance; a stage that must keep all its tasks in one instance
//! ([`tributary_planner::Stage::single_instance`]) is one unit. Task size follows input bytes: a
//! task runs as many of the stage's partitions as fit `[query] task_target_input_mb`, one after
//! another into its one output ([`group_partitions`]), so tasks are numbered within the stage
//! independently of partitions. The root stage runs on the coordinator once every other stage has
//! committed, reading the spool.
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

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, SessionState, TaskContext};
use datafusion::physical_plan::ExecutionPlanProperties;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tributary_exchange::flight::RemoteError;
use tributary_exchange::{ExchangeReadExec, ReadMode};
use tributary_planner::{Stage, StageOutput, StagePlan};

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
    /// The fewest tasks a stage is cut into when it has that many partitions (`[engine]
    /// hash_partitions`), so that a small input keeps the cluster's parallelism.
    pub min_tasks: usize,
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
    /// `(stage, task) -> its committed attempt`.
    committed: Mutex<HashMap<(usize, usize), Committed>>,
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
        let units = self.units(run, stage);
        let stage_tasks = units.iter().map(|u| u.tasks.len()).sum();
        let attempts = units
            .into_iter()
            .map(|unit| self.run_unit(run, stage, fragment.as_ref(), unit, stage_tasks));
        futures::future::try_join_all(attempts).await?;
        Ok(())
    }

    /// The units of retry of `stage`. A stage that must keep one plan instance is one unit of a
    /// task per partition. A stage whose partitions' input bytes are known
    /// ([`partition_weights`]) gets tasks sized by bytes ([`group_partitions`]: `[query]
    /// task_target_input_mb` each, at least [`TaskScheduler::min_tasks`]), each running its
    /// partitions one after another into one output. Any other stage (a broadcast, sorted output
    /// read task by task for a merge, inputs of unknown size) has a task per partition.
    fn units(&self, run: &Run<'_>, stage: &Stage) -> Vec<Unit> {
        if stage.single_instance {
            return vec![Unit {
                tasks: (0..stage.tasks).collect(),
                partitions: Vec::new(),
            }];
        }
        // A task's partitions run in turn into one output: fine for a partitioned output, and
        // for one read task by task unless its reader merges sorted outputs.
        let sized = !stage.broadcast
            && match stage.output {
                StageOutput::Hash(..) | StageOutput::RoundRobin(_) => true,
                StageOutput::PerTask => stage.plan.output_ordering().is_none(),
                StageOutput::Client => false,
            };
        let weights = sized
            .then(|| partition_weights(stage, run.plan, &run.committed.lock()))
            .flatten();
        let Some(weights) = weights else {
            return (0..stage.tasks)
                .map(|t| Unit {
                    tasks: vec![t],
                    partitions: Vec::new(),
                })
                .collect();
        };
        let target = self.config.task_target_input_mb.saturating_mul(1 << 20);
        group_partitions(&weights, target, self.min_tasks)
            .into_iter()
            .enumerate()
            .map(|(task, partitions)| Unit {
                tasks: vec![task],
                partitions: vec![partitions],
            })
            .collect()
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

    /// Runs one unit of retry (its tasks of `stage`, in one plan instance) until it commits or is
    /// out of attempts. `stage_tasks` is the stage's task count.
    async fn run_unit(
        &self,
        run: &Run<'_>,
        stage: &Stage,
        fragment: Option<&Bytes>,
        unit: Unit,
        stage_tasks: usize,
    ) -> Result<()> {
        let Unit { tasks, partitions } = unit;
        let mut attempt = 0u32;
        let mut memory_limit: Option<usize> = None;
        let mut failed_on: Vec<String> = Vec::new();
        loop {
            let worker = self.pick(stage, &tasks, attempt, &failed_on, fragment.is_some())?;
            for (i, &task) in tasks.iter().enumerate() {
                let runs = partitions.get(i).map_or(1, Vec::len);
                self.tracker
                    .task_planned(&run.query, stage.id, task, attempt, &worker.id, runs);
            }
            worker.add_tasks(tasks.len());
            let spec = TaskSpec {
                query: run.query.to_string(),
                stage: stage.id,
                tasks: tasks.clone(),
                task_partitions: partitions.clone(),
                stage_tasks,
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
                            let remote = matches!(worker.kind, WorkerKind::Remote { .. });
                            let mut committed = run.committed.lock();
                            let mut metrics = run.metrics.lock();
                            for r in reports {
                                if let Entry::Vacant(e) = committed.entry((stage.id, r.task)) {
                                    e.insert(Committed {
                                        attempt,
                                        partition_bytes: r.partition_bytes,
                                    });
                                }
                                if remote {
                                    metrics.push((stage.id, r.operators));
                                }
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
            .map(|(k, c)| (*k, c.attempt))
            .collect()
    }
}

/// The attempt of a task that committed, and what it wrote.
#[derive(Debug)]
struct Committed {
    attempt: u32,
    /// Arrow bytes the attempt wrote to each output partition: the input size of the consumer's
    /// partitions.
    partition_bytes: Vec<u64>,
}

/// One unit of retry of a stage: tasks run in one plan instance, committed together.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Unit {
    /// Task numbers within the stage.
    tasks: Vec<usize>,
    /// The plan partitions each task runs in turn (`partitions[i]` for `tasks[i]`); empty when
    /// each task runs the partition of its own number.
    partitions: Vec<Vec<usize>>,
}

/// Cuts partitions `0..weights.len()` (in order) into tasks of contiguous partitions:
/// `ceil(total / target)` tasks, at least `min_tasks` and at most one per partition, whose weights
/// (input bytes) are as even as contiguous cuts allow. Trino sizes fault-tolerant tasks the same
/// way (`fault-tolerant-execution-*-task-target-size`), by split weight for source stages and by
/// the bytes of each hash partition for the others. Returns one list of partitions per task; empty
/// for no partitions.
pub fn group_partitions(weights: &[u64], target: u64, min_tasks: usize) -> Vec<Vec<usize>> {
    let n = weights.len();
    if n == 0 {
        return Vec::new();
    }
    let total: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    let by_size = total.div_ceil(u128::from(target.max(1)));
    let wanted = usize::try_from(by_size)
        .unwrap_or(n)
        .max(min_tasks)
        .clamp(1, n);
    let mut tasks: Vec<Vec<usize>> = Vec::with_capacity(wanted);
    let mut current = Vec::new();
    let mut seen: u128 = 0;
    for (p, &w) in weights.iter().enumerate() {
        current.push(p);
        seen += u128::from(w);
        let closed = tasks.len() + 1;
        if closed == wanted {
            continue;
        }
        // Close the task once it reaches its share of the total, or when every partition left
        // must make a task of its own.
        let share_reached = seen * (wanted as u128) >= total * (closed as u128);
        let left = n - p - 1;
        if share_reached || left == wanted - closed {
            tasks.push(std::mem::take(&mut current));
        }
    }
    tasks.push(current);
    tasks
}

/// Input bytes of each partition of `stage`, when all are known: the Arrow bytes of that
/// partition in the committed attempts (`committed`) of each stage it gathers from, plus the whole
/// output of the tasks it reads under [`ReadMode::PerTask`] (only in a stage of one partition),
/// plus its scan's split size ([`tributary_planner::sizing::split_bytes`]). `None` when the stage
/// scans more than one source, or a scan whose partitions it does not map one to one, or one that
/// knows no sizes (a SQL source), or reads task by task into several partitions. A broadcast input
/// is read whole by every partition and adds nothing.
fn partition_weights(
    stage: &Stage,
    plan: &StagePlan,
    committed: &HashMap<(usize, usize), Committed>,
) -> Option<Vec<u64>> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};

    let n = stage.tasks;
    let mut weights = vec![0u64; n];
    // (input stage, read mode, reader partitions)
    let mut readers: Vec<(usize, ReadMode, usize)> = Vec::new();
    let mut scans = Vec::new();
    stage
        .plan
        .apply(|node| {
            if let Some(read) = node.downcast_ref::<ExchangeReadExec>() {
                readers.push((
                    read.stage(),
                    read.mode(),
                    node.output_partitioning().partition_count(),
                ));
            } else if node.children().is_empty() {
                scans.push(node.clone());
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .ok()?;
    for (input, mode, reader_partitions) in readers {
        if plan.stages.iter().any(|s| s.id == input && s.broadcast) {
            continue;
        }
        // A gathering reader feeds the stage's partition of its own number; a per-task reader
        // feeds a coalesce or a merge, so all of it goes to one partition, known only when the
        // stage has one.
        let maps = match mode {
            ReadMode::Gather => reader_partitions == n || n == 1,
            ReadMode::PerTask => n == 1,
        };
        if !maps {
            return None;
        }
        for ((s, task), output) in committed {
            let bytes = &output.partition_bytes;
            if *s != input {
                continue;
            }
            let mut add = |partition: usize, b: u64| {
                let p = if n == 1 { 0 } else { partition };
                if let Some(w) = weights.get_mut(p) {
                    *w += b;
                }
            };
            match mode {
                ReadMode::Gather => {
                    for (partition, &b) in bytes.iter().enumerate() {
                        add(partition, b);
                    }
                }
                ReadMode::PerTask => add(*task, bytes.iter().sum()),
            }
        }
    }
    match scans.as_slice() {
        [] => {}
        [scan] => {
            let sizes = tributary_planner::sizing::split_bytes(scan.as_ref())?;
            if sizes.len() != n {
                return None;
            }
            for (w, b) in weights.iter_mut().zip(sizes) {
                *w += b;
            }
        }
        _ => return None,
    }
    Some(weights)
}

#[cfg(test)]
mod tests {
    use super::group_partitions;

    #[test]
    fn tasks_follow_input_bytes() {
        // 16 partitions of 10 bytes: 160 bytes in tasks of 40 -> 4 tasks of 4 partitions.
        let tasks = group_partitions(&[10; 16], 40, 1);
        assert_eq!(tasks.len(), 4);
        assert!(tasks.iter().all(|t| t.len() == 4), "{tasks:?}");
        // Every partition once, in order.
        let flat: Vec<usize> = tasks.concat();
        assert_eq!(flat, (0..16).collect::<Vec<_>>());
        // Twice the input, twice the tasks.
        assert_eq!(group_partitions(&[20; 16], 40, 1).len(), 8);
        // More input than partitions can split: a task per partition.
        assert_eq!(group_partitions(&[1000; 5], 40, 1).len(), 5);
    }

    #[test]
    fn a_small_input_keeps_the_minimum_parallelism() {
        let tasks = group_partitions(&[1; 16], 1 << 30, 4);
        assert_eq!(tasks.len(), 4);
        assert_eq!(group_partitions(&[1; 3], 1 << 30, 4).len(), 3);
        // Nothing at all still runs every partition.
        let empty = group_partitions(&[0; 6], 100, 2);
        assert_eq!(empty.len(), 2);
        assert_eq!(empty.concat(), (0..6).collect::<Vec<_>>());
        assert!(group_partitions(&[], 100, 2).is_empty());
    }

    #[test]
    fn a_heavy_partition_gets_a_task_of_its_own() {
        let tasks = group_partitions(&[1, 1, 100, 1, 1, 1], 60, 1);
        assert_eq!(tasks.len(), 2);
        assert!(tasks[0].contains(&2), "{tasks:?}");
        assert_eq!(tasks.concat(), (0..6).collect::<Vec<_>>());
        let tasks = group_partitions(&[1, 1, 100, 1, 1, 1], 40, 1);
        assert_eq!(tasks.len(), 3);
        assert_eq!(tasks[1], vec![3]);
    }
}
