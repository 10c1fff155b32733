//! The fragmenter: cuts an optimized DataFusion physical plan into stages at exchange boundaries.
//!
//! A boundary is any operator whose output partition `i` needs more than input partition `i`, because a
//! task of a stage runs one partition of the stage's plan (or, under `retry_policy = TASK`, several
//! in turn), possibly on another worker:
//! - `RepartitionExec` (hash or round-robin): the subtree below becomes a producer stage whose tasks
//!   partition their output the same way; the operator is replaced by an [`ExchangeReadExec`] in
//!   [`ReadMode::Gather`] (reader partition `p` = partition `p` of every producer task).
//! - `CoalescePartitionsExec` / `SortPreservingMergeExec`: the subtree below becomes a producer stage
//!   with one output partition per task; the operator stays in the consumer stage over an
//!   [`ExchangeReadExec`] in [`ReadMode::PerTask`].
//!
//! The root stage (id 0) has exactly one partition and runs on the coordinator, streaming to the client;
//! every other stage runs as tasks on workers. A source stage's partitions are its scans' splits (a
//! connector exposes one partition per split). This follows Trino's fragmenter (stages cut at exchanges, the
//! root fragment `SINGLE`-distributed on the coordinator) and Ballista's `DistributedPlanner`.

use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, PartitionMode,
};
use datafusion::physical_plan::recursive_query::RecursiveQueryExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{
    ExecutionPlan, ExecutionPlanProperties, Partitioning, replace_children_if_necessary,
};
use tributary_exchange::{ExchangeReadExec, ReadMode};

/// How a stage's tasks lay out their output for the consumer stage.
#[derive(Debug, Clone)]
pub enum StageOutput {
    /// The root stage: its single partition streams to the client.
    Client,
    /// Each task writes one output partition, read in task order by the consumer.
    PerTask,
    /// Rows are hash-partitioned on `exprs` into `n` partitions (DataFusion's `BatchPartitioner`, the
    /// same function `RepartitionExec` uses, so co-partitioned joins line up).
    Hash(Vec<Arc<dyn PhysicalExpr>>, usize),
    /// Batches are dealt round-robin into `n` partitions.
    RoundRobin(usize),
}

impl StageOutput {
    /// Number of output partitions each task writes.
    pub fn partitions(&self) -> usize {
        match self {
            StageOutput::Client | StageOutput::PerTask => 1,
            StageOutput::Hash(_, n) | StageOutput::RoundRobin(n) => *n,
        }
    }

    /// The DataFusion partitioning a task applies to its output, if it splits it.
    pub fn partitioning(&self) -> Option<Partitioning> {
        match self {
            StageOutput::Client | StageOutput::PerTask => None,
            StageOutput::Hash(exprs, n) => Some(Partitioning::Hash(exprs.clone(), *n)),
            StageOutput::RoundRobin(n) => Some(Partitioning::RoundRobinBatch(*n)),
        }
    }
}

impl std::fmt::Display for StageOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StageOutput::Client => write!(f, "single (to client)"),
            StageOutput::PerTask => write!(f, "per task"),
            StageOutput::Hash(exprs, n) => {
                let exprs: Vec<String> = exprs.iter().map(|e| e.to_string()).collect();
                write!(f, "hash({}) x {n}", exprs.join(", "))
            }
            StageOutput::RoundRobin(n) => write!(f, "round robin x {n}"),
        }
    }
}

/// One plan fragment between exchanges.
#[derive(Debug, Clone)]
pub struct Stage {
    /// 0 for the root stage; producers have larger ids than their consumers' ancestors.
    pub id: usize,
    /// The fragment; its leaves are scans (splits) or [`ExchangeReadExec`]s of input stages.
    pub plan: Arc<dyn ExecutionPlan>,
    /// Partitions of `plan`: its tasks under streaming exchanges (task `i` runs partition `i`);
    /// under `retry_policy = TASK` a task may run several of them in turn (`exec::fte`).
    pub tasks: usize,
    /// How each task lays out its output for the consumer stage.
    pub output: StageOutput,
    /// Stages this one reads from.
    pub inputs: Vec<usize>,
    /// Whether every plan instance of the consumer stage reads this stage's whole output (the build
    /// side of a `CollectLeft` hash join, or the left side of a nested-loop or cross join, is collected
    /// once per instance): a broadcast exchange, whose partitions have one reader per consumer instance.
    pub broadcast: bool,
    /// Whether all tasks must share one plan instance (one worker): the stage holds a join that
    /// collects its left side once and emits left rows only after every partition has probed
    /// (`CollectLeft` or nested-loop `Left`/`LeftSemi`/`LeftAnti`/`LeftMark`/`Full` joins keep a shared
    /// bitmap of matched left rows in the instance).
    pub single_instance: bool,
}

/// A query cut into stages, root first.
#[derive(Debug, Clone)]
pub struct StagePlan {
    /// The stages by id: `stages[0]` is the root; a producer's id is larger than its consumer's.
    pub stages: Vec<Stage>,
}

impl StagePlan {
    /// The root stage (id 0), which runs on the coordinator.
    pub fn root(&self) -> &Stage {
        &self.stages[0]
    }
}

/// Cuts `plan` into stages (a root with zero or several partitions gets a coalesce on top, so the root
/// stage has exactly one). Errors (`NotImplemented`) on an order-preserving repartition, whose merge
/// order the exchange cannot reproduce.
pub fn fragment(plan: Arc<dyn ExecutionPlan>) -> Result<StagePlan> {
    let plan = if plan.output_partitioning().partition_count() != 1 {
        Arc::new(CoalescePartitionsExec::new(plan)) as Arc<dyn ExecutionPlan>
    } else {
        plan
    };
    let mut f = Fragmenter {
        stages: Vec::new(),
        next_id: 1,
        broadcast: Vec::new(),
    };
    let (root, inputs) = f.cut(plan)?;
    f.stages.push(Stage {
        id: 0,
        tasks: 1,
        plan: root,
        output: StageOutput::Client,
        inputs,
        broadcast: false,
        single_instance: true,
    });
    let mut stages = f.stages;
    for id in f.broadcast {
        if let Some(stage) = stages.iter_mut().find(|s| s.id == id) {
            stage.broadcast = true;
        }
    }
    stages.sort_by_key(|s| s.id);
    Ok(StagePlan { stages })
}

struct Fragmenter {
    stages: Vec<Stage>,
    /// Ids are given top-down (a consumer's id is smaller than its producers'), root = 0, as Trino does.
    next_id: usize,
    /// Stages read whole by every instance of their consumer (see [`Stage::broadcast`]).
    broadcast: Vec<usize>,
}

impl Fragmenter {
    /// Rewrites `node` for the stage it belongs to, creating producer stages below each boundary.
    /// Returns the rewritten node and the ids of the stages it reads.
    fn cut(
        &mut self,
        node: Arc<dyn ExecutionPlan>,
    ) -> Result<(Arc<dyn ExecutionPlan>, Vec<usize>)> {
        if node.downcast_ref::<RecursiveQueryExec>().is_some() {
            // The recursive term is re-executed every iteration against a work table the node owns, so
            // the whole recursion stays inside one task.
            return Ok((node, Vec::new()));
        }
        if let Some(repartition) = node.downcast_ref::<RepartitionExec>() {
            let output = match repartition.partitioning() {
                Partitioning::Hash(exprs, n) => StageOutput::Hash(exprs.clone(), *n),
                Partitioning::RoundRobinBatch(n) => StageOutput::RoundRobin(*n),
                other => {
                    return Err(DataFusionError::NotImplemented(format!(
                        "exchange for partitioning {other}"
                    )));
                }
            };
            if repartition.preserve_order() {
                return Err(DataFusionError::NotImplemented(
                    "order-preserving repartition across stages".into(),
                ));
            }
            let stage = self.new_stage(repartition.input().clone(), output)?;
            let reader = ExchangeReadExec::new(
                stage.0,
                stage.1,
                ReadMode::Gather,
                node.properties().clone(),
            );
            return Ok((Arc::new(reader), vec![stage.0]));
        }
        if node.downcast_ref::<CoalescePartitionsExec>().is_some()
            || node.downcast_ref::<SortPreservingMergeExec>().is_some()
        {
            let id = self.alloc();
            let child = node.children()[0].clone();
            let (child, child_inputs) = self.cut(child)?;
            let tasks = child.output_partitioning().partition_count();
            self.push_stage(id, child.clone(), tasks, StageOutput::PerTask, child_inputs);
            let reader =
                ExchangeReadExec::new(id, tasks, ReadMode::PerTask, child.properties().clone());
            let node = replace_children_if_necessary(node, vec![Arc::new(reader)])?;
            return Ok((node, vec![id]));
        }
        let collects_left = collects_left_once(&node);
        let mut inputs = Vec::new();
        let mut children = Vec::new();
        for (i, child) in node.children().into_iter().enumerate() {
            let (child, child_inputs) = self.cut(child.clone())?;
            if i == 0 && collects_left {
                self.broadcast.extend(child_inputs.iter().copied());
            }
            inputs.extend(child_inputs);
            children.push(child);
        }
        let node = if children.is_empty() {
            node
        } else {
            replace_children_if_necessary(node, children)?
        };
        Ok((node, inputs))
    }

    /// Makes `input` (after cutting it in turn) a producer stage. Returns its id and task count.
    fn new_stage(
        &mut self,
        input: Arc<dyn ExecutionPlan>,
        output: StageOutput,
    ) -> Result<(usize, usize)> {
        let id = self.alloc();
        let (plan, inputs) = self.cut(input)?;
        let tasks = plan.output_partitioning().partition_count();
        self.push_stage(id, plan, tasks, output, inputs);
        Ok((id, tasks))
    }

    fn alloc(&mut self) -> usize {
        self.next_id += 1;
        self.next_id - 1
    }

    fn push_stage(
        &mut self,
        id: usize,
        plan: Arc<dyn ExecutionPlan>,
        tasks: usize,
        output: StageOutput,
        inputs: Vec<usize>,
    ) {
        self.stages.push(Stage {
            id,
            single_instance: needs_single_instance(&plan),
            plan,
            tasks,
            output,
            inputs,
            broadcast: false,
        });
    }
}

/// Whether some join in `plan` (within this stage) emits build-side rows only once every partition
/// of its plan instance has probed (see [`Stage::single_instance`]).
pub fn needs_single_instance(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let emits_left_at_end = |t: &JoinType| {
        matches!(
            t,
            JoinType::Left
                | JoinType::LeftSemi
                | JoinType::LeftAnti
                | JoinType::LeftMark
                | JoinType::Full
        )
    };
    if let Some(join) = plan.downcast_ref::<HashJoinExec>()
        && *join.partition_mode() == PartitionMode::CollectLeft
        && emits_left_at_end(join.join_type())
    {
        return true;
    }
    if let Some(join) = plan.downcast_ref::<NestedLoopJoinExec>()
        && emits_left_at_end(join.join_type())
    {
        return true;
    }
    if plan.downcast_ref::<ExchangeReadExec>().is_some() {
        return false;
    }
    plan.children().into_iter().any(needs_single_instance)
}

/// Whether `node` executes its first (left) child once per plan instance and shares the result
/// between its partitions: a hash join in `CollectLeft` mode, a nested-loop join, a cross join.
fn collects_left_once(node: &Arc<dyn ExecutionPlan>) -> bool {
    if let Some(join) = node.downcast_ref::<HashJoinExec>() {
        return *join.partition_mode() == PartitionMode::CollectLeft;
    }
    node.downcast_ref::<NestedLoopJoinExec>().is_some()
        || node.downcast_ref::<CrossJoinExec>().is_some()
}
