//! The scheduler: runs a [`StagePlan`] as tasks on workers, wires their outputs through the exchange, and
//! hands the root stage's stream to the session.
//!
//! Scheduling is all-at-once (Trino's policy for `retry_policy = NONE` with streaming exchanges): every
//! task of every stage starts immediately and blocks on its inputs, so no stage waits for a slot held by
//! its own consumer. Task `i` of a stage runs partition `i` of the stage's plan on the worker the task is
//! placed on; its output goes to an [`ExchangeSink`] partitioned as the stage's [`StageOutput`] says.
//!
//! Lifecycle: a [`QueryExecution`] owns the tasks of one query; dropping it (query finished, failed,
//! canceled, or the client went away) aborts every task still running and frees the query's exchange data.

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::metrics;
use datafusion::physical_plan::repartition::BatchPartitioner;
use futures::StreamExt;
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info_span};
use tributary_exchange::{Exchange, ExchangeContext, ExchangeSink, TaskOutputId};
use tributary_planner::{Stage, StagePlan};

use crate::worker::WorkerPool;

/// The running tasks of one query. Dropping it aborts them and releases the query's exchange data.
pub struct QueryExecution {
    query: Arc<str>,
    exchange: Arc<dyn Exchange>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for QueryExecution {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.exchange.release_query(&self.query);
    }
}

/// A [`TaskContext`] for the tasks of `query`: the session's settings and functions plus the exchange
/// the readers of its stages read from.
pub fn task_context(
    base: TaskContext,
    query: &Arc<str>,
    exchange: Arc<dyn Exchange>,
) -> Arc<TaskContext> {
    let config = base
        .session_config()
        .clone()
        .with_extension(Arc::new(ExchangeContext {
            query: query.clone(),
            source: exchange,
        }));
    Arc::new(base.with_session_config(config))
}

/// Starts every non-root stage's tasks on `workers` and returns the execution guard plus the root stage's
/// output stream. The stream must be polled with the guard alive.
pub fn start(
    query: Arc<str>,
    plan: &StagePlan,
    ctx: Arc<TaskContext>,
    exchange: Arc<dyn Exchange>,
    workers: &WorkerPool,
) -> Result<(QueryExecution, SendableRecordBatchStream)> {
    let mut execution = QueryExecution {
        query: query.clone(),
        exchange: exchange.clone(),
        tasks: Vec::new(),
    };
    // Every sink exists before any task (or the root) opens a reader of it.
    let mut tasks = Vec::new();
    for stage in plan.stages.iter().filter(|s| s.id != 0) {
        for task in 0..stage.tasks {
            let output = TaskOutputId {
                query: query.clone(),
                stage: stage.id,
                task,
            };
            tasks.push((
                stage,
                task,
                exchange.create_sink(&output, stage.output.partitions())?,
            ));
        }
    }
    for (stage, task, sink) in tasks {
        let worker = workers.place(stage.id, task);
        let span = info_span!("task", query = %query, stage = stage.id, task, worker = %worker.id);
        let fut = run_task(stage.clone(), task, ctx.clone(), sink);
        execution.tasks.push(worker.spawn(fut.instrument(span)));
    }
    let root = plan.root().plan.execute(0, ctx)?;
    Ok((execution, root))
}

/// Runs task `task` of `stage`: executes partition `task` of the stage's plan and writes its batches to
/// `sink`, split into output partitions as the stage's output says. Any error aborts the sink, and readers
/// receive that error itself. The task stops early when no reader wants its output any more.
async fn run_task(
    stage: Stage,
    task: usize,
    ctx: Arc<TaskContext>,
    mut sink: Box<dyn ExchangeSink>,
) {
    debug!("task started");
    let result = async {
        let mut stream = stage.plan.execute(task, ctx)?;
        let mut partitioner = match stage.output.partitioning() {
            Some(p) => Some(BatchPartitioner::try_new(
                p,
                metrics::Time::new(),
                task,
                stage.tasks,
            )?),
            None => None,
        };
        while let Some(batch) = stream.next().await {
            let batch: RecordBatch = batch?;
            // Yield to the runtime between batches so sessions, accepts and cancels keep being served.
            tokio::task::consume_budget().await;
            match partitioner.as_mut() {
                None => sink.write(0, batch).await?,
                Some(partitioner) => {
                    let parts: Vec<(usize, RecordBatch)> =
                        partitioner.partition_iter(batch)?.collect::<Result<_>>()?;
                    for (p, b) in parts {
                        if b.num_rows() > 0 {
                            sink.write(p, b).await?;
                        }
                    }
                }
            }
            if sink.is_abandoned() {
                debug!("every reader has ended; stopping early");
                break;
            }
        }
        Ok::<_, DataFusionError>(())
    }
    .await;
    match result {
        Ok(()) => {
            if let Err(e) = sink.finish().await {
                debug!("task could not finish its output: {e}");
            }
            debug!("task finished");
        }
        Err(e) => {
            debug!("task failed: {e}");
            sink.abort(Arc::new(e));
        }
    }
}
