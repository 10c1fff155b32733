//! [`ExchangeReadExec`]: the leaf of a consumer stage's plan that reads a producer stage's output.

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::EmptyRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, ReplaceChildrenOptions,
};

use crate::{ExchangeSource, TaskOutputId};

/// How a reader's partitions map onto the producer stage's task outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Reader partition `p` is output partition `p` of every producer task, merged in arrival order
    /// (hash or round-robin exchanges).
    Gather,
    /// Reader partition `i` is the single output partition of producer task `i`, in order (under a
    /// coalesce or sort-preserving merge, which the consumer stage keeps).
    PerTask,
}

/// What a task's [`TaskContext`] carries so exchange readers find their data: the query and the
/// exchange to read from. Registered as a `SessionConfig` extension by the scheduler.
#[derive(Debug)]
pub struct ExchangeContext {
    /// The query key the task's exchange reads go by (`QUERY`, `QUERY.sqN`, `QUERY.aN`).
    pub query: Arc<str>,
    /// Where the producer stages' output partitions are read from.
    pub source: Arc<dyn ExchangeSource>,
    /// The attempt the task runs as (0 for the first; `retry_policy = TASK` runs a failed task
    /// again as the next attempt). With `query`, names what a writing task stages: attempts of one
    /// task never share a staging location.
    pub attempt: u32,
}

/// Reads producer stage `stage`'s output. Plain data (stage number, task count, mode and the plan
/// properties of the node it replaced), so it can be shipped to a worker with the rest of its stage.
#[derive(Debug, Clone)]
pub struct ExchangeReadExec {
    stage: usize,
    producer_tasks: usize,
    mode: ReadMode,
    /// The properties of the plan node this reader stands for, so parents see the same partitioning,
    /// ordering and equivalences as before the cut.
    properties: Arc<PlanProperties>,
}

impl ExchangeReadExec {
    /// A reader of `stage`'s `producer_tasks` task outputs. `properties` must be those of the node being
    /// replaced: its partition count is the reader's (`Gather`: the exchange's partitions; `PerTask`:
    /// `producer_tasks`).
    pub fn new(
        stage: usize,
        producer_tasks: usize,
        mode: ReadMode,
        properties: Arc<PlanProperties>,
    ) -> Self {
        Self {
            stage,
            producer_tasks,
            mode,
            properties,
        }
    }

    /// The producer stage.
    pub fn stage(&self) -> usize {
        self.stage
    }

    /// Partitions of the producer stage's plan: its task count as planned (a spooled producer
    /// may have run them as fewer tasks, see [`crate::ExchangeSource::producer_tasks`]).
    pub fn producer_tasks(&self) -> usize {
        self.producer_tasks
    }

    /// How the reader's partitions map onto the producer's task outputs.
    pub fn mode(&self) -> ReadMode {
        self.mode
    }
}

impl DisplayAs for ExchangeReadExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let mode = match self.mode {
            ReadMode::Gather => "gather",
            ReadMode::PerTask => "per-task",
        };
        write!(
            f,
            "ExchangeRead: stage={}, producer_tasks={}, mode={mode}, partitions={}",
            self.stage,
            self.producer_tasks,
            self.properties.output_partitioning().partition_count()
        )
    }
}

impl ExecutionPlan for ExchangeReadExec {
    fn name(&self) -> &str {
        "ExchangeReadExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let ctx = context
            .session_config()
            .get_extension::<ExchangeContext>()
            .ok_or_else(|| {
                DataFusionError::Internal(
                    "ExchangeReadExec executed outside a scheduled query".into(),
                )
            })?;
        let schema = self.schema();
        let output = |task| TaskOutputId {
            query: ctx.query.clone(),
            stage: self.stage,
            task,
        };
        match self.mode {
            ReadMode::PerTask => {
                // Partition `i` is the `i`-th producer task; a spooled producer whose tasks each
                // ran several partitions has fewer tasks than planned, and the rest read nothing.
                let tasks = ctx.source.producer_tasks(self.stage, self.producer_tasks);
                match tasks.get(partition) {
                    Some(&task) => ctx.source.read(&output(task), 0, schema),
                    None => Ok(Box::pin(EmptyRecordBatchStream::new(schema))),
                }
            }
            ReadMode::Gather => {
                let streams = ctx
                    .source
                    .producer_tasks(self.stage, self.producer_tasks)
                    .into_iter()
                    .map(|t| ctx.source.read(&output(t), partition, schema.clone()))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Box::pin(RecordBatchStreamAdapter::new(
                    schema,
                    futures::stream::select_all(streams),
                )))
            }
        }
    }
}
