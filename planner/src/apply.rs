//! Correlated subqueries that DataFusion cannot decorrelate, run by a nested-loop apply (Trino's
//! `CorrelatedJoin` evaluated as an apply, PostgreSQL's SubPlan): for every distinct binding of the
//! outer columns a subquery reads, the subquery is run once and its result cached for the other
//! rows with the same binding. Each partition plans the subquery once and re-executes it per binding
//! ([`reuse`]); one reading a SQL source is planned per binding with the values as literals, which
//! the source then gets in its SQL.
//!
//! DataFusion's optimizer turns most subqueries into joins (equality correlation under an
//! aggregate, `EXISTS`/`IN` conjuncts of a WHERE). What is left in a filter or a select list,
//! `(SELECT count(*) FROM t1 AS x WHERE x.b < t1.b)`, `CASE WHEN EXISTS (...)`, `a IN (SELECT ...) OR
//! ...`, has no physical plan in DataFusion (`Physical plan does not support logical expression
//! ScalarSubquery`). [`CorrelatedApplyRule`], right after DataFusion's decorrelation rules (and
//! [`TributaryQueryPlanner`] before physical planning, for anything left), rewrites the plan: each
//! such subquery of a `Filter`, `Projection` or `Aggregate` becomes a column `__subquery_N` that an
//! [`ApplyNode`] below adds to its input, planned as [`CorrelatedApplyExec`]. Subqueries where
//! DataFusion takes none (ORDER BY, windows, GROUP BY, a join's ON) are first moved where it
//! does ([`SubqueriesComputedBelow`]). Uncorrelated scalar
//! subqueries stay DataFusion's (run once before the query). A `postgres` catalog never gets here
//! for a statement it can run whole (see `pushdown`).
//!
//! The apply runs where its input is, in the same stage, like any other operator that keeps its
//! input's partitioning. Its subqueries are logical plans (their outer references as placeholders
//! `$1..$n`), planned per binding where the task runs: a stage holding an apply ships to a worker
//! with each subquery's logical plan encoded (the worker's codec, `tributary_exec::codec`, rebuilds
//! it through a [`SubqueryLoader`] from the worker's own catalogs), and stays on the coordinator
//! only when a subquery reads what a worker does not have (see that codec).
//!
//! Semantics follow PostgreSQL: a scalar subquery of no rows is NULL and of more than one row is
//! an error (21000); `x IN (subquery)` is NULL when x is NULL and the subquery has rows, or when no
//! row equals x and some row is NULL.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, UInt32Array, new_empty_array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::catalog::Session;
use datafusion::common::JoinSide;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{
    Column, DFSchema, DFSchemaRef, ParamValues, Result, ScalarValue, internal_err,
};
use datafusion::execution::context::{QueryPlanner, SessionState};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::expr::{Exists, InSubquery};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::utils::{conjunction, split_conjunction, split_conjunction_owned};
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, Expr, ExprSchemable, Extension, Filter, Join, JoinType, LogicalPlan,
    LogicalPlanBuilder, Operator, Projection, Sort, Subquery, UserDefinedLogicalNode,
    UserDefinedLogicalNodeCore, Window, expr::Placeholder,
};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{AnalyzerRule, OptimizerConfig, OptimizerRule};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
    ReplaceChildrenOptions,
};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use futures::StreamExt;
use tributary_connectors::error::ConnectorError;
use tributary_connectors::sqlstate;

mod reuse;

/// The session's query planner: [`rewrite`] the optimized plan's correlated subqueries into
/// [`ApplyNode`]s, then DataFusion's physical planner with [`ApplyPlanner`].
#[derive(Debug, Default)]
pub struct TributaryQueryPlanner;

#[async_trait]
impl QueryPlanner for TributaryQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = rewrite(logical_plan.clone())?;
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(ApplyPlanner)])
            .create_physical_plan(&plan, session)
            .await
    }
}

/// One subquery an [`ApplyNode`] evaluates per row of its input.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
enum Correlated {
    /// `(SELECT ...)` as a value.
    Scalar(Subquery),
    /// `[NOT] EXISTS (SELECT ...)`.
    Exists { subquery: Subquery, negated: bool },
    /// `expr [NOT] IN (SELECT ...)`; `expr` is over the apply's input.
    In {
        expr: Box<Expr>,
        subquery: Subquery,
        negated: bool,
    },
}

impl Correlated {
    fn subquery(&self) -> &Subquery {
        match self {
            Correlated::Scalar(s) => s,
            Correlated::Exists { subquery, .. } | Correlated::In { subquery, .. } => subquery,
        }
    }

    /// The type of the column it adds.
    fn field(&self, name: String) -> Field {
        match self {
            Correlated::Scalar(s) => {
                let ty = s.subquery.schema().field(0).data_type().clone();
                Field::new(name, ty, true)
            }
            Correlated::Exists { .. } => Field::new(name, DataType::Boolean, false),
            Correlated::In { .. } => Field::new(name, DataType::Boolean, true),
        }
    }
}

/// A logical node adding one column per subquery (`__subquery_N`) to its input's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApplyNode {
    input: Arc<LogicalPlan>,
    subqueries: Vec<Correlated>,
    names: Vec<String>,
    schema: DFSchemaRef,
}

impl PartialOrd for ApplyNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (&self.input, &self.subqueries, &self.names).partial_cmp(&(
            &other.input,
            &other.subqueries,
            &other.names,
        ))
    }
}

impl UserDefinedLogicalNodeCore for ApplyNode {
    fn name(&self) -> &str {
        "CorrelatedApply"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    /// None: the node is made after the optimizer has run, and its subqueries are planned at run
    /// time.
    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "CorrelatedApply: {}", self.names.join(", "))
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        let [input] = <[LogicalPlan; 1]>::try_from(inputs).map_err(|_| {
            datafusion::common::DataFusionError::Internal("apply: one input".into())
        })?;
        // The input's columns as they are now (an optimizer pass may have changed their
        // nullability), then the subqueries' own.
        let added = self.schema.fields().len() - self.input.schema().fields().len();
        let own: Vec<_> = self
            .schema
            .iter()
            .skip(self.input.schema().fields().len())
            .take(added)
            .map(|(q, f)| (q.cloned(), Arc::clone(f)))
            .collect();
        let schema = input
            .schema()
            .join(&DFSchema::new_with_metadata(own, HashMap::new())?)?;
        Ok(Self {
            input: Arc::new(input),
            schema: Arc::new(schema),
            ..self.clone()
        })
    }
}

/// The names of DataFusion's optimizer rules that turn subqueries into joins, and whose failure
/// leaves a subquery the apply runs as written.
const DECORRELATING_RULES: &[&str] = &["decorrelate_predicate_subquery", "scalar_subquery_to_join"];

/// `rules` (an optimizer's, in order) with DataFusion's subquery decorrelation rules made
/// tolerant, and [`CorrelatedApplyRule`] right after the last of them.
///
/// Tolerant: where one fails on a node (DataFusion 55 cannot pull a correlated filter on an
/// aggregate's alias out of a derived table: `(SELECT count(*) FROM (SELECT v, max(id) AS m FROM t
/// GROUP BY v) g WHERE g.m > outer.x)` fails with `No field named g."max(t.id)"`), the node is left
/// as it was and its subquery runs by the apply, as PostgreSQL's SubPlan would. Other rules'
/// failures stay errors.
pub fn with_correlated_apply(
    rules: Vec<Arc<dyn OptimizerRule + Send + Sync>>,
) -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let last = rules
        .iter()
        .rposition(|r| DECORRELATING_RULES.contains(&r.name()));
    let mut out = Vec::with_capacity(rules.len() + 1);
    for (i, rule) in rules.into_iter().enumerate() {
        if DECORRELATING_RULES.contains(&rule.name()) {
            out.push(Arc::new(Tolerant(rule)) as Arc<dyn OptimizerRule + Send + Sync>);
        } else {
            out.push(rule);
        }
        if Some(i) == last {
            out.push(Arc::new(CorrelatedApplyRule));
        }
    }
    out
}

/// The optimizer rule running [`rewrite`] right after DataFusion's decorrelation: what is still a
/// correlated subquery then becomes an [`ApplyNode`] before the filter pushdown runs, which would
/// otherwise push `r.k = (SELECT min(x.k) FROM x WHERE x.k >= n.k)` into `r`'s side of a join (it
/// does not see the outer reference inside the subquery) where `n.k` does not exist. The subquery
/// plans inside the node are optimized again per binding when they run.
#[derive(Debug, Default)]
pub struct CorrelatedApplyRule;

impl OptimizerRule for CorrelatedApplyRule {
    fn name(&self) -> &str {
        "correlated_apply"
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        rewrite_below(plan)
    }
}

/// A decorrelation rule whose failure on a node leaves the node unchanged.
#[derive(Debug)]
struct Tolerant(Arc<dyn OptimizerRule + Send + Sync>);

impl OptimizerRule for Tolerant {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        self.0.apply_order()
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        // A copy to fall back to, when the rule can act here: a node holding a subquery (the
        // optimizer visits each node), or any plan for a rule recursing by itself.
        let unchanged = (self.0.apply_order().is_none()
            || plan.expressions().iter().any(has_subquery))
        .then(|| plan.clone());
        match (self.0.rewrite(plan, config), unchanged) {
            (Ok(rewritten), _) => Ok(rewritten),
            (Err(e), Some(unchanged)) => {
                tracing::debug!(rule = self.0.name(), "subquery left to the apply: {e}");
                Ok(Transformed::no(unchanged))
            }
            (Err(e), None) => Err(e),
        }
    }
}

/// The analyzer rule letting subqueries stand where DataFusion's analyzer refuses them and
/// PostgreSQL takes them: in `ORDER BY`, in window functions' arguments and windows, in `GROUP BY`
/// (`Correlated scalar subquery can only be used in Projection, Filter, Aggregate plan nodes`,
/// `... in the GROUP BY clause must also be in the aggregate expressions`), and in a join's `ON`.
/// Each subquery of a sort key, window expression or grouping key is computed by a projection
/// below the node (`__computed_N`, beside the input's columns), the node reads that column, and a
/// projection above restores the node's own output columns and names; an inner join's condition
/// holding one becomes a filter above the join, an outer or semi join's has its subqueries computed
/// below the one side they are correlated with (one reading both sides: [`joined_by_subqueries`]). DataFusion then decorrelates the
/// subquery or [`rewrite`] applies it like any select-list subquery.
#[derive(Debug, Default)]
pub struct SubqueriesComputedBelow;

impl AnalyzerRule for SubqueriesComputedBelow {
    fn name(&self) -> &str {
        "subqueries_computed_below"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(compute_subqueries_below)
            .map(|t| t.data)
    }
}

/// The analyzer rule (the session's last) making an apply of each correlated subquery that
/// DataFusion would refuse or mis-plan and PostgreSQL runs: one whose nested subqueries reference a
/// query two or more levels up ([`deep_references`]: DataFusion's decorrelation leaves the
/// reference where it cannot be read), and one DataFusion's analyzer check refuses
/// (`check_subquery_expr`: a correlated scalar subquery that is no aggregate, `Correlated scalar
/// subquery must be aggregated to return at most one row`; outer references where DataFusion does
/// not take them, such as an outer join's condition inside the subquery). The apply runs the
/// subquery per binding with the outer values as literals, where DataFusion plans it like any
/// uncorrelated query (a scalar subquery of two rows then fails with 21000, as in PostgreSQL).
/// Only in a `Filter`, `Projection` or `Aggregate` (where [`SubqueriesComputedBelow`] moved the
/// others), and only when every column the subquery reads from outside is this node's input's.
/// A scalar subquery of more than one column keeps DataFusion's error.
#[derive(Debug, Default)]
pub struct SubqueriesDataFusionRefuses;

impl AnalyzerRule for SubqueriesDataFusionRefuses {
    fn name(&self) -> &str {
        "subqueries_datafusion_refuses"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let refused = refused_subqueries(&node);
            if refused.is_empty() {
                return Ok(Transformed::no(node));
            }
            rewrite_node(node, &|e| refused.contains(e))
        })
        .map(|t| t.data)
    }
}

/// Whether `plan` (as DataFusion's SQL planner gives it, subqueries included) holds a subquery
/// [`SubqueriesDataFusionRefuses`] makes an apply of: one DataFusion alone would refuse, which a
/// SQL source taking the whole statement should run instead (`crate::statement_pushdown`).
pub fn refused_by_datafusion(plan: &LogicalPlan) -> bool {
    any_node(plan, &|node| {
        !refused_subqueries(node).is_empty() || outer_join_reading_both_sides(node)
    })
}

/// Whether `pick` holds for a node of `plan` or of a subquery in it.
fn any_node(plan: &LogicalPlan, pick: &dyn Fn(&LogicalPlan) -> bool) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        found = pick(node);
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// Whether `node` is an outer, semi or anti join whose condition holds a subquery reading both of
/// its sides ([`joined_by_subqueries`]).
fn outer_join_reading_both_sides(node: &LogicalPlan) -> bool {
    match node {
        LogicalPlan::Join(join) if join.join_type != JoinType::Inner => join
            .filter
            .as_ref()
            .is_some_and(|f| has_subquery(f) && correlated_side(join, f).is_none()),
        _ => false,
    }
}

/// The one side of `join` holding every column `condition`'s subqueries read (and an `IN`'s tested
/// expression), the left one when both do; `None` when they read both sides.
fn correlated_side(join: &Join, condition: &Expr) -> Option<JoinSide> {
    let outer = outer_columns(std::slice::from_ref(condition));
    let on = |input: &LogicalPlan| outer.iter().all(|c| input.schema().has_column(c));
    if on(&join.left) {
        Some(JoinSide::Left)
    } else if on(&join.right) {
        Some(JoinSide::Right)
    } else {
        None
    }
}

/// The subquery expressions of `node` (a `Filter`, `Projection` or `Aggregate`) that
/// [`SubqueriesDataFusionRefuses`] applies.
fn refused_subqueries(node: &LogicalPlan) -> Vec<Expr> {
    if !matches!(
        node,
        LogicalPlan::Filter(_) | LogicalPlan::Projection(_) | LogicalPlan::Aggregate(_)
    ) {
        return Vec::new();
    }
    let mut refused = Vec::new();
    let _ = node.apply_expressions(|e| {
        e.apply(|e| {
            let (s, scalar) = match e {
                Expr::ScalarSubquery(s) => (s, true),
                Expr::Exists(Exists { subquery, .. }) => (subquery, false),
                // The tested expression reading an outer query (inside a subquery) would be
                // hidden in the apply from DataFusion's decorrelation of that subquery.
                Expr::InSubquery(InSubquery { subquery, expr, .. }) if !expr.contains_outer() => {
                    (subquery, false)
                }
                _ => return Ok(TreeNodeRecursion::Continue),
            };
            let deep = deep_references(&s.subquery);
            let bound = with_deep(s, deep.clone());
            if bound.is_empty()
                || !bound.iter().all(|c| in_scope(node, c))
                || (scalar && s.subquery.schema().fields().len() != 1)
            {
                return Ok(TreeNodeRecursion::Continue);
            }
            if !deep.is_empty()
                || aggregates_outer_references(&s.subquery)
                || datafusion::logical_expr::logical_plan::check_subquery_expr(node, &s.subquery, e)
                    .is_err()
            {
                refused.push(e.clone());
            }
            Ok(TreeNodeRecursion::Continue)
        })
    });
    if let LogicalPlan::Filter(filter) = node {
        for e in in_subqueries_without_nulls(filter) {
            if !refused.contains(&e) {
                refused.push(e);
            }
        }
    }
    refused
}

/// Whether an aggregate of `plan` (a subquery's, its own nested subqueries left out) reads an outer
/// reference in its arguments or keys (`max(x.b + t1.b)`): DataFusion's decorrelation then plans a
/// join reading a column that does not exist (`column "max(x.b + outer_ref(t1.b))" does not exist`);
/// per binding the reference is a literal.
fn aggregates_outer_references(plan: &LogicalPlan) -> bool {
    plan.exists(|node| {
        Ok(
            matches!(node, LogicalPlan::Aggregate(aggregate) if aggregate
            .aggr_expr
            .iter()
            .chain(&aggregate.group_expr)
            .any(|e| e.contains_outer())),
        )
    })
    .unwrap_or(true)
}

/// Where a `Filter` is in a predicate: a top-level conjunct, under AND/OR only (where NULL and
/// false both drop the row), or anywhere else (under NOT, CASE, IS, a comparison).
#[derive(Clone, Copy, PartialEq)]
enum Position {
    Conjunct,
    Positive,
    Other,
}

/// The `IN (subquery)` tests of `filter` that DataFusion's decorrelation answers without SQL's NULLs
/// and that may meet one (the tested expression or the subquery's column nullable): a mark join
/// (what an IN under OR or NOT becomes) gives false where the answer is NULL (`NOT (c IN (...))`
/// kept rows whose c is NULL), and the null-aware anti join of a correlated `NOT IN` looks for a
/// NULL in the whole subquery instead of the rows of each binding (no row kept when some binding
/// had one). PostgreSQL's answers need the apply, which computes each binding's NULL. Left to
/// DataFusion: a positive IN under AND/OR (NULL and false both drop the row), and an uncorrelated
/// `NOT IN` conjunct (its null-aware anti join is right).
fn in_subqueries_without_nulls(filter: &Filter) -> Vec<Expr> {
    fn visit(e: &Expr, position: Position, input: &DFSchema, found: &mut Vec<Expr>) {
        match e {
            Expr::InSubquery(InSubquery {
                expr,
                subquery,
                negated,
            }) => {
                let correlated = !bound_columns(subquery).is_empty();
                let safe = match position {
                    Position::Conjunct => !*negated || !correlated,
                    Position::Positive => !*negated,
                    Position::Other => false,
                };
                let nullable = expr.nullable(input).unwrap_or(true)
                    || subquery
                        .subquery
                        .schema()
                        .fields()
                        .first()
                        .is_none_or(|f| f.is_nullable());
                if !safe && nullable && !expr.contains_outer() {
                    found.push(e.clone());
                }
            }
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::And | Operator::Or,
                right,
            }) if position != Position::Other => {
                visit(left, Position::Positive, input, found);
                visit(right, Position::Positive, input, found);
            }
            _ => {
                let _ = e.apply_children(|child| {
                    visit(child, Position::Other, input, found);
                    Ok(TreeNodeRecursion::Continue)
                });
            }
        }
    }
    let mut found = Vec::new();
    for conjunct in split_conjunction(&filter.predicate) {
        visit(
            conjunct,
            Position::Conjunct,
            filter.input.schema(),
            &mut found,
        );
    }
    found
        .into_iter()
        .filter(|e| {
            let Expr::InSubquery(InSubquery { subquery, .. }) = e else {
                return false;
            };
            bound_columns(subquery)
                .iter()
                .all(|c| filter.input.schema().has_column(c))
        })
        .collect()
}

/// One node of [`SubqueriesComputedBelow`].
fn compute_subqueries_below(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    match node {
        LogicalPlan::Sort(sort) if sort.expr.iter().any(|s| has_subquery(&s.expr)) => {
            let own = columns_of(sort.input.schema());
            let (exprs, below) = computed_below(
                sort.expr.iter().map(|s| s.expr.clone()).collect(),
                &sort.input,
            )?;
            let keys = sort
                .expr
                .into_iter()
                .zip(exprs)
                .map(|(key, e)| key.with_expr(e))
                .collect();
            let sorted = LogicalPlan::Sort(Sort {
                expr: keys,
                input: Arc::new(below),
                fetch: sort.fetch,
            });
            let above = Projection::try_new(own, Arc::new(sorted))?;
            Ok(Transformed::yes(LogicalPlan::Projection(above)))
        }
        LogicalPlan::Window(w) if w.window_expr.iter().any(has_subquery) => {
            let inputs = w.input.schema().fields().len();
            let (exprs, below) = computed_below(w.window_expr.clone(), &w.input)?;
            let added = below.schema().fields().len() - inputs;
            let window = LogicalPlan::Window(Window::try_new(exprs, Arc::new(below))?);
            // The input's columns, then each window column under its own name.
            let restored = restore_names(&window, w.schema.as_ref(), |i| {
                if i < inputs { i } else { i + added }
            });
            let above = Projection::try_new(restored, Arc::new(window))?;
            Ok(Transformed::yes(LogicalPlan::Projection(above)))
        }
        LogicalPlan::Aggregate(a) if a.group_expr.iter().any(has_subquery) => {
            let (groups, below) = computed_below(a.group_expr.clone(), &a.input)?;
            let aggregate = LogicalPlan::Aggregate(Aggregate::try_new(
                Arc::new(below),
                groups,
                a.aggr_expr.clone(),
            )?);
            let restored = restore_names(&aggregate, a.schema.as_ref(), |i| i);
            let above = Projection::try_new(restored, Arc::new(aggregate))?;
            Ok(Transformed::yes(LogicalPlan::Projection(above)))
        }
        LogicalPlan::Join(mut join)
            if join.join_type == JoinType::Inner
                && join.filter.as_ref().is_some_and(has_subquery) =>
        {
            let Some(condition) = join.filter.take() else {
                return Ok(Transformed::no(LogicalPlan::Join(join)));
            };
            let filter = Filter::try_new(condition, Arc::new(LogicalPlan::Join(join)))?;
            Ok(Transformed::yes(LogicalPlan::Filter(filter)))
        }
        LogicalPlan::Join(mut join) if join.filter.as_ref().is_some_and(has_subquery) => {
            // An outer or semi join: a condition whose subqueries are correlated with one side
            // only has them computed on that side; one reading both sides is rewritten.
            let Some(condition) = join.filter.take() else {
                return Ok(Transformed::no(LogicalPlan::Join(join)));
            };
            let old = Arc::clone(&join.schema);
            match correlated_side(&join, &condition) {
                Some(JoinSide::Left) => {
                    let (mut exprs, left) = computed_here(vec![condition], &join.left)?;
                    join.left = Arc::new(left);
                    join.filter = exprs.pop();
                }
                Some(JoinSide::Right) => {
                    let (mut exprs, right) = computed_here(vec![condition], &join.right)?;
                    join.right = Arc::new(right);
                    join.filter = exprs.pop();
                }
                _ => return joined_by_subqueries(join, condition),
            }
            let joined = LogicalPlan::Join(join).recompute_schema()?;
            let above = Projection::try_new(columns_of(&old), Arc::new(joined))?;
            Ok(Transformed::yes(LogicalPlan::Projection(above)))
        }
        other => Ok(Transformed::no(other)),
    }
}

/// An outer, semi or anti join whose condition holds a subquery reading both sides (which
/// DataFusion takes in no join), as the inner join it contains and `[NOT] EXISTS` subqueries of one
/// side over the other: `L LEFT JOIN R ON c` is the rows of `L` cross `R` where `c`, then each row
/// of `L` for which no row of `R` satisfies `c`, its `R` columns NULL; a semi join is `L WHERE
/// EXISTS (SELECT FROM R WHERE c)`, an anti join `NOT EXISTS`. In those `EXISTS` subqueries `c`'s
/// references to `L` are outer references (two levels up for the subquery inside `c`, which
/// [`SubqueriesDataFusionRefuses`] binds). Both sides are read twice and `c` evaluated twice (as a
/// nested loop re-scans), so a join with a volatile function in `c` or either side is left as it
/// is (DataFusion's refusal stands), as are mark joins (DataFusion's own, never a user's). Two reads
/// of a source written meanwhile may see different rows.
fn joined_by_subqueries(join: Join, condition: Expr) -> Result<Transformed<LogicalPlan>> {
    // Each side is read twice and the condition evaluated twice: only when both give the same
    // answers each time (no volatile function), else DataFusion's refusal stands.
    let volatile = |plan: &LogicalPlan| {
        plan.exists(|n| Ok(n.expressions().iter().any(|e| e.is_volatile())))
            .unwrap_or(true)
    };
    let mark = matches!(join.join_type, JoinType::LeftMark | JoinType::RightMark);
    if mark || condition.is_volatile() || volatile(&join.left) || volatile(&join.right) {
        let mut join = join;
        join.filter = Some(condition);
        return Ok(Transformed::no(LogicalPlan::Join(join)));
    }
    let old = Arc::clone(&join.schema);
    let condition = join
        .on
        .iter()
        .fold(condition, |c, (l, r)| c.and(l.clone().eq(r.clone())));
    let (left, right) = (Arc::clone(&join.left), Arc::clone(&join.right));
    // `[NOT] EXISTS (SELECT FROM other WHERE c)` for the rows of `this`.
    let exists = |this: &Arc<LogicalPlan>, other: &Arc<LogicalPlan>, negated: bool| {
        let schema = Arc::clone(this.schema());
        let c = condition
            .clone()
            .transform_up(|e| match e {
                Expr::Column(c) if schema.has_column(&c) => {
                    let field = Arc::clone(schema.qualified_field_from_column(&c)?.1);
                    Ok(Transformed::yes(Expr::OuterReferenceColumn(field, c)))
                }
                other => Ok(Transformed::no(other)),
            })?
            .data;
        let plan = LogicalPlanBuilder::from(other.as_ref().clone())
            .filter(c)?
            .build()?;
        let subquery = Subquery {
            outer_ref_columns: plan.all_out_ref_exprs(),
            subquery: Arc::new(plan),
            spans: Default::default(),
        };
        LogicalPlanBuilder::from(this.as_ref().clone())
            .filter(Expr::Exists(Exists { subquery, negated }))?
            .build()
    };
    // `this`'s rows without a match, the other side's columns NULL (in the join's column order).
    let unmatched = |this: &Arc<LogicalPlan>, other: &Arc<LogicalPlan>, this_first: bool| {
        let rows = exists(this, other, true)?;
        let nulls = other
            .schema()
            .iter()
            .map(|(q, f)| {
                Ok(Expr::Literal(ScalarValue::try_from(f.data_type())?, None)
                    .alias_qualified(q.cloned(), f.name()))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut columns = columns_of(this.schema());
        if this_first {
            columns.extend(nulls);
        } else {
            columns = nulls.into_iter().chain(columns).collect();
        }
        LogicalPlanBuilder::from(rows).project(columns)?.build()
    };
    let joined = match join.join_type {
        JoinType::LeftSemi => exists(&left, &right, false)?,
        JoinType::LeftAnti => exists(&left, &right, true)?,
        JoinType::RightSemi => exists(&right, &left, false)?,
        JoinType::RightAnti => exists(&right, &left, true)?,
        JoinType::Left | JoinType::Right | JoinType::Full => {
            // The union's inputs under names of their own: both sides may have a column of the
            // same name (a self-join), which a union's physical schema cannot tell apart.
            let names: Vec<String> = (0..old.fields().len())
                .map(|_| fresh_name("__joined"))
                .collect();
            let renamed = |plan: LogicalPlan| {
                let columns = columns_of(plan.schema())
                    .into_iter()
                    .zip(&names)
                    .map(|(c, n)| c.alias(n))
                    .collect::<Vec<_>>();
                LogicalPlanBuilder::from(plan).project(columns)?.build()
            };
            let matched = LogicalPlanBuilder::from(left.as_ref().clone())
                .cross_join(right.as_ref().clone())?
                .filter(condition.clone())?
                .build()?;
            let mut union = LogicalPlanBuilder::from(renamed(matched)?);
            if matches!(join.join_type, JoinType::Left | JoinType::Full) {
                union = union.union(renamed(unmatched(&left, &right, true)?)?)?;
            }
            if matches!(join.join_type, JoinType::Right | JoinType::Full) {
                union = union.union(renamed(unmatched(&right, &left, false)?)?)?;
            }
            union.build()?
        }
        JoinType::Inner | JoinType::LeftMark | JoinType::RightMark => {
            return internal_err!("apply: {} join by subqueries", join.join_type);
        }
    };
    let restored = restore_names(&joined, old.as_ref(), |i| i);
    let above = Projection::try_new(restored, Arc::new(joined))?;
    Ok(Transformed::yes(LogicalPlan::Projection(above)))
}

/// The columns the subqueries of `exprs` take from an outer query.
fn outer_columns(exprs: &[Expr]) -> Vec<Column> {
    let mut refs = Vec::new();
    for e in exprs {
        let _ = e.apply(|e| {
            if let Expr::ScalarSubquery(s)
            | Expr::Exists(Exists { subquery: s, .. })
            | Expr::InSubquery(InSubquery { subquery: s, .. }) = e
            {
                refs.extend(bound_columns(s));
            }
            // `x IN (SELECT ...)` reads x where the subquery is computed.
            if let Expr::InSubquery(InSubquery { expr, .. }) = e {
                refs.extend(expr.column_refs().into_iter().cloned());
            }
            Ok(TreeNodeRecursion::Continue)
        });
    }
    refs
}

fn has_subquery(e: &Expr) -> bool {
    e.exists(|e| Ok(is_subquery(e))).unwrap_or(false)
}

fn is_subquery(e: &Expr) -> bool {
    matches!(
        e,
        Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
    )
}

/// Every column of `schema`, as column expressions.
fn columns_of(schema: &DFSchema) -> Vec<Expr> {
    schema
        .iter()
        .map(|(q, f)| Expr::Column(Column::new(q.cloned(), f.name())))
        .collect()
}

/// `exprs` with each subquery expression replaced by a column `__computed_N`, and the projection
/// over `input` giving its columns then those. When `input` is a projection (a select list under
/// its `ORDER BY`) without a column the subqueries correlate on (DataFusion's SQL planner adds
/// the sort keys' missing columns, but not those only an outer reference names), they are computed
/// below that projection, which passes them up.
fn computed_below(exprs: Vec<Expr>, input: &Arc<LogicalPlan>) -> Result<(Vec<Expr>, LogicalPlan)> {
    if let LogicalPlan::Projection(p) = input.as_ref() {
        let outer = outer_columns(&exprs);
        let here = |schema: &DFSchema| outer.iter().all(|c| schema.has_column(c));
        if !here(p.schema.as_ref()) && here(p.input.schema().as_ref()) {
            let (exprs, below) = computed_here(exprs, &p.input)?;
            let added = below.schema().fields().len() - p.input.schema().fields().len();
            let mut passed = p.expr.clone();
            passed.extend(
                below
                    .schema()
                    .iter()
                    .skip(p.input.schema().fields().len())
                    .take(added)
                    .map(|(q, f)| Expr::Column(Column::new(q.cloned(), f.name()))),
            );
            let projection = Projection::try_new(passed, Arc::new(below))?;
            return Ok((exprs, LogicalPlan::Projection(projection)));
        }
    }
    computed_here(exprs, input)
}

/// [`computed_below`] right over `input`.
fn computed_here(exprs: Vec<Expr>, input: &Arc<LogicalPlan>) -> Result<(Vec<Expr>, LogicalPlan)> {
    let mut computed = columns_of(input.schema());
    let exprs = exprs
        .into_iter()
        .map(|e| {
            e.transform_up(|e| {
                if !is_subquery(&e) {
                    return Ok(Transformed::no(e));
                }
                let name = fresh_name("__computed");
                computed.push(e.alias(name.clone()));
                Ok(Transformed::yes(Expr::Column(Column::from_name(name))))
            })
            .map(|t| t.data)
        })
        .collect::<Result<Vec<_>>>()?;
    let below = Projection::try_new(computed, Arc::clone(input))?;
    Ok((exprs, LogicalPlan::Projection(below)))
}

/// For each field `i` of `old` (a node's schema before the rewrite), field `position(i)` of `new`'s
/// output under field `i`'s qualifier and name.
fn restore_names(
    new: &LogicalPlan,
    old: &DFSchema,
    position: impl Fn(usize) -> usize,
) -> Vec<Expr> {
    let now = new.schema();
    old.iter()
        .enumerate()
        .map(|(i, (q, f))| {
            let (nq, nf) = now.qualified_field(position(i));
            let column = Expr::Column(Column::new(nq.cloned(), nf.name()));
            if nq == q && nf.name() == f.name() {
                column
            } else {
                column.alias_qualified(q.cloned(), f.name())
            }
        })
        .collect()
}

/// Gives every apply column a name of its own within the process.
static NEXT_COLUMN: AtomicUsize = AtomicUsize::new(0);

/// `PREFIX_N`, N unique within the process.
fn fresh_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        NEXT_COLUMN.fetch_add(1, AtomicOrdering::Relaxed)
    )
}

/// `plan` with each correlated subquery of a `Filter`, `Projection` or `Aggregate` (and every
/// `EXISTS` or `IN (SELECT ...)` left there, which DataFusion cannot plan either) computed by an
/// [`ApplyNode`] below it. The nodes keep their output column names exactly; a scalar subquery's column becomes
/// nullable (no row is NULL, whatever DataFusion typed it as), and the nodes above recompute their
/// schemas, as DataFusion's physical planner checks an aggregate's input against the physical one.
pub fn rewrite(plan: LogicalPlan) -> Result<LogicalPlan> {
    rewrite_below(plan).map(|t| t.data)
}

fn rewrite_below(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let children = plan.map_children(rewrite_below)?;
    let mut changed_below = children.transformed;
    // DataFusion physical-plans an uncorrelated scalar subquery on its own (without this
    // planner): what it holds is rewritten here.
    let node = children.data.map_expressions(|e| {
        e.transform_up(|e| match e {
            Expr::ScalarSubquery(s) if !is_correlated(&s) => {
                let inner = rewrite(s.subquery.as_ref().clone())?;
                Ok(Transformed::yes(Expr::ScalarSubquery(Subquery {
                    subquery: Arc::new(inner),
                    ..s
                })))
            }
            other => Ok(Transformed::no(other)),
        })
    })?;
    changed_below |= node.transformed;
    let rewritten = rewrite_node(node.data, &|_| true)?;
    if rewritten.transformed || !changed_below {
        return Ok(rewritten);
    }
    Ok(Transformed::yes(recompute_schema(rewritten.data)?))
}

/// `node`'s schema recomputed from its (rewritten) inputs. DataFusion keeps a union's schema when
/// its width is unchanged; here each of its columns is nullable when any input's is (as the
/// physical union is).
fn recompute_schema(node: LogicalPlan) -> Result<LogicalPlan> {
    match node {
        LogicalPlan::Union(mut union) => {
            let fields = union
                .schema
                .iter()
                .enumerate()
                .map(|(i, (q, f))| {
                    let nullable = union
                        .inputs
                        .iter()
                        .any(|input| input.schema().field(i).is_nullable());
                    (
                        q.cloned(),
                        Arc::new(f.as_ref().clone().with_nullable(nullable)),
                    )
                })
                .collect();
            let schema = DFSchema::new_with_metadata(fields, union.schema.metadata().clone())?;
            union.schema = Arc::new(schema);
            Ok(LogicalPlan::Union(union))
        }
        other => other.recompute_schema(),
    }
}

/// One node of [`rewrite`]: a Filter, Projection or Aggregate holding subqueries gets its apply,
/// for those of its subquery expressions `pick` takes.
fn rewrite_node(
    node: LogicalPlan,
    pick: &dyn Fn(&Expr) -> bool,
) -> Result<Transformed<LogicalPlan>> {
    let needs_apply = |e: &Expr| needs_apply(e, pick);
    match node {
        LogicalPlan::Projection(p) if p.expr.iter().any(needs_apply) => {
            let (exprs, apply) = extract(p.expr.clone(), &p.input, pick)?;
            // Each expression keeps its name (later optimizer passes recompute names from them).
            let exprs: Vec<Expr> = exprs
                .into_iter()
                .zip(p.schema.iter())
                .map(|(e, (q, f))| {
                    if e.schema_name().to_string() == *f.name() {
                        e
                    } else {
                        e.alias_qualified(q.cloned(), f.name())
                    }
                })
                .collect();
            // The same names, each nullable as its new expression is.
            let fields = p
                .schema
                .iter()
                .zip(&exprs)
                .map(|((q, f), e)| {
                    let nullable = f.is_nullable() || e.nullable(apply.schema().as_ref())?;
                    Ok((
                        q.cloned(),
                        Arc::new(f.as_ref().clone().with_nullable(nullable)),
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            let schema = DFSchema::new_with_metadata(fields, p.schema.metadata().clone())?
                .with_functional_dependencies(p.schema.functional_dependencies().clone())?;
            let projection =
                Projection::try_new_with_schema(exprs, Arc::new(apply), Arc::new(schema))?;
            Ok(Transformed::yes(LogicalPlan::Projection(projection)))
        }
        LogicalPlan::Aggregate(a) if a.group_expr.iter().chain(&a.aggr_expr).any(needs_apply) => {
            // `sum((SELECT ...))`: the subquery's column below, the aggregate over it, then the
            // aggregate's own output names back.
            let groups = a.group_expr.len();
            let exprs = a.group_expr.iter().chain(&a.aggr_expr).cloned().collect();
            let (mut exprs, apply) = extract(exprs, &a.input, pick)?;
            let aggr = exprs.split_off(groups);
            let aggregate = Aggregate::try_new(Arc::new(apply), exprs, aggr)?;
            let columns = aggregate
                .schema
                .iter()
                .zip(a.schema.iter())
                .map(|((nq, nf), (q, f))| {
                    Expr::Column(Column::new(nq.cloned(), nf.name()))
                        .alias_qualified(q.cloned(), f.name())
                })
                .collect();
            let projection =
                Projection::try_new(columns, Arc::new(LogicalPlan::Aggregate(aggregate)))?;
            Ok(Transformed::yes(LogicalPlan::Projection(projection)))
        }
        LogicalPlan::Filter(f) if needs_apply(&f.predicate) => {
            // The conjuncts without a subquery filter the rows first, so the apply runs its
            // subqueries only for rows they keep (DataFusion pushes no filter through the apply).
            let (applied, plain): (Vec<Expr>, Vec<Expr>) =
                split_conjunction_owned(f.predicate.clone())
                    .into_iter()
                    .partition(needs_apply);
            let input = match conjunction(plain) {
                Some(plain) => Arc::new(LogicalPlan::Filter(Filter::try_new(
                    plain,
                    Arc::clone(&f.input),
                )?)),
                None => Arc::clone(&f.input),
            };
            let Some(predicate) = conjunction(applied) else {
                return internal_err!("apply: a filter without its subquery");
            };
            let (mut exprs, apply) = extract(vec![predicate], &input, pick)?;
            let filter = Filter::try_new(exprs.remove(0), Arc::new(apply))?;
            // Back to the filter's own columns.
            let columns = f
                .input
                .schema()
                .iter()
                .map(|(q, field)| Expr::Column(Column::new(q.cloned(), field.name())))
                .collect();
            let projection = Projection::try_new_with_schema(
                columns,
                Arc::new(LogicalPlan::Filter(filter)),
                Arc::clone(f.input.schema()),
            )?;
            Ok(Transformed::yes(LogicalPlan::Projection(projection)))
        }
        other => Ok(Transformed::no(other)),
    }
}

/// Whether `e` holds a subquery expression DataFusion has no physical plan for, which `pick`
/// takes.
fn needs_apply(e: &Expr, pick: &dyn Fn(&Expr) -> bool) -> bool {
    e.exists(|e| Ok(applied(e) && pick(e))).unwrap_or(false)
}

fn applied(e: &Expr) -> bool {
    match e {
        // Correlated, if only through a subquery inside it (a reference two levels up).
        Expr::ScalarSubquery(s) => is_correlated(s),
        Expr::Exists(_) | Expr::InSubquery(_) => true,
        _ => false,
    }
}

/// `exprs` with their applied subqueries that `pick` takes replaced by columns, and the apply node
/// over `input` that computes those columns.
fn extract(
    exprs: Vec<Expr>,
    input: &Arc<LogicalPlan>,
    pick: &dyn Fn(&Expr) -> bool,
) -> Result<(Vec<Expr>, LogicalPlan)> {
    let mut subqueries = Vec::new();
    let mut names = Vec::new();
    let exprs = exprs
        .into_iter()
        .map(|e| {
            e.transform_up(|e| {
                if !applied(&e) || !pick(&e) {
                    return Ok(Transformed::no(e));
                }
                let correlated = match e {
                    Expr::ScalarSubquery(s) => Correlated::Scalar(s),
                    Expr::Exists(Exists { subquery, negated }) => {
                        Correlated::Exists { subquery, negated }
                    }
                    Expr::InSubquery(InSubquery {
                        expr,
                        subquery,
                        negated,
                    }) => Correlated::In {
                        expr,
                        subquery,
                        negated,
                    },
                    other => return Ok(Transformed::no(other)),
                };
                let name = fresh_name("__subquery");
                subqueries.push(correlated);
                names.push(name.clone());
                Ok(Transformed::yes(Expr::Column(Column::from_name(name))))
            })
            .map(|t| t.data)
        })
        .collect::<Result<Vec<_>>>()?;
    let added = Schema::new(
        subqueries
            .iter()
            .zip(&names)
            .map(|(s, n)| s.field(n.clone()))
            .collect::<Vec<_>>(),
    );
    let schema = input.schema().join(&DFSchema::try_from(added)?)?;
    let node = ApplyNode {
        input: Arc::clone(input),
        subqueries,
        names,
        schema: Arc::new(schema),
    };
    Ok((
        exprs,
        LogicalPlan::Extension(Extension {
            node: Arc::new(node),
        }),
    ))
}

/// Plans an [`ApplyNode`] as a [`CorrelatedApplyExec`].
#[derive(Debug)]
pub struct ApplyPlanner;

#[async_trait]
impl ExtensionPlanner for ApplyPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<ApplyNode>() else {
            return Ok(None);
        };
        let Some(state) = session.as_any().downcast_ref::<SessionState>() else {
            return internal_err!("correlated subqueries need a SessionState");
        };
        let [input] = physical_inputs else {
            return internal_err!("CorrelatedApply has one input");
        };
        let outer = node.input.schema();
        let mut subqueries = Vec::new();
        for s in &node.subqueries {
            let bindings = bound_columns(s.subquery())
                .into_iter()
                .map(|c| Ok((outer.index_of_column(&c)?, c)))
                .collect::<Result<Vec<_>>>()?;
            let kind = match s {
                Correlated::Scalar(_) => ApplyKind::Scalar,
                Correlated::Exists { negated, .. } => ApplyKind::Exists { negated: *negated },
                Correlated::In { expr, negated, .. } => {
                    let expr = planner.create_physical_expr(expr, outer, session, planning_ctx)?;
                    ApplyKind::In {
                        ty: expr.data_type(outer.as_arrow())?,
                        expr,
                        negated: *negated,
                    }
                }
            };
            let plan = with_placeholders(&s.subquery().subquery, &bindings)?;
            subqueries.push(ApplySubquery {
                kind,
                plan: SubqueryPlan::Planned(Arc::new(plan)),
                bindings,
            });
        }
        Ok(Some(Arc::new(CorrelatedApplyExec::new(
            Arc::clone(input),
            Arc::new(subqueries),
            Arc::new(node.schema.as_arrow().clone()),
            Arc::new(state.clone()),
        ))))
    }
}

/// `plan` with each outer reference named in `bindings` replaced by the placeholder `$i` (`i`:
/// its 1-based position there), typed as the reference: in `plan`'s own expressions, and in its
/// nested subqueries for the references reaching past `plan` ([`deep_references`]); the nested
/// subqueries' lists of outer references are recomputed. Other references of nested subqueries
/// (to `plan`'s own columns) are left as they are.
fn with_placeholders(plan: &LogicalPlan, bindings: &[(usize, Column)]) -> Result<LogicalPlan> {
    let ids: HashMap<&Column, String> = bindings
        .iter()
        .enumerate()
        .map(|(i, (_, c))| (c, format!("${}", i + 1)))
        .collect();
    let deep: HashSet<Column> = deep_references(plan).into_iter().collect();
    substitute(plan.clone(), &ids, &deep, false)
}

/// [`with_placeholders`] of `plan`, a nested subquery's when `nested` (only `deep` references
/// replaced there).
fn substitute(
    plan: LogicalPlan,
    ids: &HashMap<&Column, String>,
    deep: &HashSet<Column>,
    nested: bool,
) -> Result<LogicalPlan> {
    Ok(plan
        .transform_up(|node| {
            // Below this node, a reference to a column its inputs give is theirs, not ours.
            let deep: HashSet<Column> = deep
                .iter()
                .filter(|c| !in_scope(&node, c))
                .cloned()
                .collect();
            let node = if deep.is_empty() {
                Transformed::no(node)
            } else {
                node.map_subqueries(|sub| match sub {
                    LogicalPlan::Subquery(s) => {
                        let inner = substitute(s.subquery.as_ref().clone(), ids, &deep, true)?;
                        Ok(Transformed::yes(LogicalPlan::Subquery(Subquery {
                            outer_ref_columns: inner.all_out_ref_exprs(),
                            subquery: Arc::new(inner),
                            spans: s.spans,
                        })))
                    }
                    other => Ok(Transformed::no(other)),
                })?
            };
            node.transform_data(|node| {
                // Output names kept: a projection above an aggregate reads `max(x.b +
                // outer_ref(t1.b))` by that name.
                let names = NamePreserver::new(&node);
                node.map_expressions(|e| {
                    let name = names.save(&e);
                    e.transform_up(|e| match &e {
                        Expr::OuterReferenceColumn(field, c) if !nested || deep.contains(c) => {
                            match ids.get(c) {
                                Some(id) => Ok(Transformed::yes(Expr::Placeholder(
                                    Placeholder::new_with_field(
                                        id.clone(),
                                        Some(Arc::clone(field)),
                                    ),
                                ))),
                                None => Ok(Transformed::no(e)),
                            }
                        }
                        _ => Ok(Transformed::no(e)),
                    })?
                    .map_data(|e| Ok(name.restore(e)))
                })
            })
        })?
        .data)
}

/// The outer references of `plan`'s nested subqueries (at any depth) that reach past `plan`: a
/// nested subquery's reference to a column that the node holding it does not read from its inputs
/// (the scope DataFusion's SQL planner resolved it in first), at each level down (`y.c > t1.c` in
/// `... FROM t1 WHERE EXISTS (SELECT ... FROM t1 AS x WHERE EXISTS (SELECT ... FROM t1 AS y WHERE
/// y.c > t1.c))`, for the middle subquery). DataFusion lists them in no subquery's outer
/// references and its decorrelation leaves them where they cannot be read (`column "t1.c" does not
/// exist`); an apply binds them like the subquery's own.
fn deep_references(plan: &LogicalPlan) -> Vec<Column> {
    let mut deep = Vec::new();
    let _ = plan.apply(|node| {
        node.apply_subqueries(|sub| {
            if let LogicalPlan::Subquery(s) = sub {
                for c in bound_columns(s) {
                    if !in_scope(node, &c) && !deep.contains(&c) {
                        deep.push(c);
                    }
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })
    });
    deep
}

/// Whether `c` is a column the expressions of `node` read from its inputs (its own schema for a
/// leaf): the scope DataFusion's SQL planner resolves a name in before the outer queries'.
fn in_scope(node: &LogicalPlan, c: &Column) -> bool {
    let inputs = node.inputs();
    if inputs.is_empty() {
        node.schema().has_column(c)
    } else {
        inputs.iter().any(|i| i.schema().has_column(c))
    }
}

/// The outer columns a subquery reads: its own outer references, then its nested subqueries'
/// references past it ([`deep_references`]).
fn bound_columns(s: &Subquery) -> Vec<Column> {
    with_deep(s, deep_references(&s.subquery))
}

/// [`bound_columns`] of `s`, its [`deep_references`] being `deep`.
fn with_deep(s: &Subquery, deep: Vec<Column>) -> Vec<Column> {
    let mut columns: Vec<Column> = s
        .outer_ref_columns
        .iter()
        .filter_map(|e| match e {
            Expr::OuterReferenceColumn(_, c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    for c in deep {
        if !columns.contains(&c) {
            columns.push(c);
        }
    }
    columns
}

/// Whether `s` reads an outer query, if only through a subquery inside it (a reference two levels
/// up); its own outer references are looked at first.
fn is_correlated(s: &Subquery) -> bool {
    !s.outer_ref_columns.is_empty() || !deep_references(&s.subquery).is_empty()
}

/// What a subquery of a [`CorrelatedApplyExec`] gives for each input row.
#[derive(Debug)]
pub enum ApplyKind {
    /// Its one value, NULL for no row, an error (21000) for more than one.
    Scalar,
    /// Whether it has a row (`negated`: that it has none).
    Exists {
        /// `NOT EXISTS`.
        negated: bool,
    },
    /// Whether `expr` (over the apply's input) is among its values, with SQL's NULL rules.
    In {
        /// The tested expression, over the apply's input schema.
        expr: Arc<dyn PhysicalExpr>,
        /// The tested expression's type, which the subquery's values are cast to.
        ty: DataType,
        /// `NOT IN`.
        negated: bool,
    },
}

/// One subquery as the apply runs it.
#[derive(Debug)]
pub struct ApplySubquery {
    /// What it gives per row.
    pub kind: ApplyKind,
    /// Input column index and the outer reference it fills: the i-th (from 0) is the plan's
    /// placeholder `$i+1`.
    pub bindings: Vec<(usize, Column)>,
    plan: SubqueryPlan,
}

/// Where a subquery's logical plan comes from.
#[derive(Debug)]
enum SubqueryPlan {
    /// Planned in this process (the coordinator).
    Planned(Arc<LogicalPlan>),
    /// Encoded elsewhere, rebuilt on first use (a worker).
    Loaded {
        loader: Arc<dyn SubqueryLoader>,
        plan: tokio::sync::OnceCell<Arc<LogicalPlan>>,
    },
}

/// Rebuilds, in another process, the logical plan of a subquery another process planned (what a
/// worker's plan codec decodes into): its tables resolved through this process's catalogs, which is
/// asynchronous, hence not done while the stage's plan is decoded.
#[async_trait]
pub trait SubqueryLoader: fmt::Debug + Send + Sync {
    /// The plan, its outer references as placeholders `$1..$n` ([`ApplySubquery::bindings`]
    /// order), with `state`'s catalogs. Called on the first binding the apply runs (shared by its
    /// partitions), again after a failure.
    ///
    /// Errors: a table the process does not have, or has with another schema.
    async fn load(&self, state: &SessionState) -> Result<LogicalPlan>;
}

impl ApplySubquery {
    /// A subquery whose plan `loader` rebuilds on first use.
    pub fn loaded(
        kind: ApplyKind,
        bindings: Vec<(usize, Column)>,
        loader: Arc<dyn SubqueryLoader>,
    ) -> Self {
        Self {
            kind,
            bindings,
            plan: SubqueryPlan::Loaded {
                loader,
                plan: tokio::sync::OnceCell::new(),
            },
        }
    }

    /// The logical plan when it was planned in this process (outer references as placeholders
    /// `$1..$n`); `None` for a loaded one.
    pub fn planned(&self) -> Option<&Arc<LogicalPlan>> {
        match &self.plan {
            SubqueryPlan::Planned(plan) => Some(plan),
            SubqueryPlan::Loaded { .. } => None,
        }
    }

    async fn plan(&self, state: &SessionState) -> Result<Arc<LogicalPlan>> {
        match &self.plan {
            SubqueryPlan::Planned(plan) => Ok(Arc::clone(plan)),
            SubqueryPlan::Loaded { loader, plan } => plan
                .get_or_try_init(|| async { loader.load(state).await.map(Arc::new) })
                .await
                .cloned(),
        }
    }
}

/// What a subquery gave for one binding.
#[derive(Debug, Clone)]
enum Outcome {
    Value(ScalarValue),
    Exists(bool),
    /// The subquery's values (of the tested expression's type), and whether one is NULL.
    Values(HashSet<ScalarValue>, bool),
}

/// One subquery's outcomes by outer binding, for one partition. A binding is looked up in Arrow's
/// row format (its bytes), so a row whose binding was seen allocates nothing.
struct Cache {
    /// Encodes the binding columns; `None` for an uncorrelated subquery (one binding).
    converter: Option<RowConverter>,
    slots: HashMap<Box<[u8]>, usize>,
    outcomes: Vec<Outcome>,
    /// Planned once or per binding ([`reuse`]).
    runner: reuse::Runner,
}

impl Cache {
    fn new(s: &ApplySubquery, input: &Schema) -> Result<Self> {
        let converter = if s.bindings.is_empty() {
            None
        } else {
            let fields = s
                .bindings
                .iter()
                .map(|(index, _)| SortField::new(input.field(*index).data_type().clone()))
                .collect();
            Some(RowConverter::new(fields)?)
        };
        Ok(Self {
            converter,
            slots: HashMap::new(),
            outcomes: Vec::new(),
            runner: reuse::Runner::default(),
        })
    }
}

/// Adds one column per subquery to each batch of its input: see the module docs.
#[derive(Debug)]
pub struct CorrelatedApplyExec {
    input: Arc<dyn ExecutionPlan>,
    subqueries: Arc<Vec<ApplySubquery>>,
    schema: SchemaRef,
    state: Arc<SessionState>,
    properties: Arc<PlanProperties>,
}

impl CorrelatedApplyExec {
    /// An apply adding one column per subquery (of `schema`, which is the input's columns then
    /// those) to `input`'s rows, planning the subqueries with `state` (its catalogs, functions
    /// and rules).
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        subqueries: Arc<Vec<ApplySubquery>>,
        schema: SchemaRef,
        state: Arc<SessionState>,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            datafusion::physical_expr::EquivalenceProperties::new(Arc::clone(&schema)),
            input.output_partitioning().clone(),
            input.pipeline_behavior(),
            input.boundedness(),
        ));
        Self {
            input,
            subqueries,
            schema,
            state,
            properties,
        }
    }

    /// Its subqueries, in the order of the columns it adds.
    pub fn subqueries(&self) -> &Arc<Vec<ApplySubquery>> {
        &self.subqueries
    }

    /// The session its subqueries are planned with.
    pub fn session(&self) -> &SessionState {
        &self.state
    }
}

impl DisplayAs for CorrelatedApplyExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let kinds: Vec<String> = self
            .subqueries
            .iter()
            .map(|s| {
                let kind = match &s.kind {
                    ApplyKind::Scalar => "scalar".to_string(),
                    ApplyKind::Exists { negated: false } => "exists".to_string(),
                    ApplyKind::Exists { negated: true } => "not exists".to_string(),
                    ApplyKind::In { expr, negated, .. } => {
                        format!("{expr}{} in", if *negated { " not" } else { "" })
                    }
                };
                let on: Vec<String> = s.bindings.iter().map(|(_, c)| c.flat_name()).collect();
                format!("{kind} subquery on [{}]", on.join(", "))
            })
            .collect();
        write!(f, "CorrelatedApplyExec: {}", kinds.join("; "))
    }
}

impl ExecutionPlan for CorrelatedApplyExec {
    fn name(&self) -> &'static str {
        "CorrelatedApplyExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for s in self.subqueries.iter() {
            if let ApplyKind::In { expr, .. } = &s.kind
                && f(expr)? == TreeNodeRecursion::Stop
            {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [input] = <[Arc<dyn ExecutionPlan>; 1]>::try_from(children).map_err(|_| {
            datafusion::common::DataFusionError::Internal(
                "CorrelatedApplyExec takes one child".into(),
            )
        })?;
        Ok(Arc::new(Self::new(
            input,
            Arc::clone(&self.subqueries),
            Arc::clone(&self.schema),
            Arc::clone(&self.state),
        )))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(
                datafusion::physical_plan::ChildrenPropertiesMode::Recompute,
            ),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, Arc::clone(&context))?;
        let subqueries = Arc::clone(&self.subqueries);
        let state = Arc::clone(&self.state);
        let schema = Arc::clone(&self.schema);
        let input_schema = self.input.schema();
        let caches = subqueries
            .iter()
            .map(|s| Cache::new(s, &input_schema))
            .collect::<Result<Vec<_>>>()?;
        let out_schema = Arc::clone(&schema);
        let stream = futures::stream::unfold((input, caches), move |(mut input, mut caches)| {
            let subqueries = Arc::clone(&subqueries);
            let state = Arc::clone(&state);
            let context = Arc::clone(&context);
            let schema = Arc::clone(&schema);
            async move {
                let batch = match input.next().await? {
                    Ok(batch) => batch,
                    Err(e) => return Some((Err(e), (input, caches))),
                };
                let result =
                    apply_batch(&batch, &subqueries, &mut caches, &state, &context, &schema).await;
                Some((result, (input, caches)))
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(out_schema, stream)))
    }
}

/// `batch` with one column per subquery appended.
async fn apply_batch(
    batch: &RecordBatch,
    subqueries: &[ApplySubquery],
    caches: &mut [Cache],
    state: &SessionState,
    context: &Arc<TaskContext>,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for (i, (s, cache)) in subqueries.iter().zip(caches.iter_mut()).enumerate() {
        let field = schema.field(batch.num_columns() + i);
        // Each row's outcome slot; a binding not seen yet runs the subquery.
        let keys = match &cache.converter {
            Some(converter) => {
                let columns: Vec<ArrayRef> = s
                    .bindings
                    .iter()
                    .map(|(index, _)| Arc::clone(batch.column(*index)))
                    .collect();
                Some(converter.convert_columns(&columns)?)
            }
            None => None,
        };
        let mut slots = Vec::with_capacity(rows);
        for row in 0..rows {
            let key: &[u8] = keys.as_ref().map_or(&[], |k| k.row(row).data());
            let slot = match cache.slots.get(key) {
                Some(&slot) => slot,
                None => {
                    let values = s
                        .bindings
                        .iter()
                        .map(|(index, _)| ScalarValue::try_from_array(batch.column(*index), row))
                        .collect::<Result<Vec<_>>>()?;
                    let outcome =
                        match run_subquery(s, &values, &mut cache.runner, state, context).await? {
                            // One type for the whole column (a NULL of the plan's type beside the
                            // values' type).
                            Outcome::Value(v) if v.data_type() != *field.data_type() => {
                                Outcome::Value(v.cast_to(field.data_type())?)
                            }
                            other => other,
                        };
                    cache.outcomes.push(outcome);
                    cache.slots.insert(key.into(), cache.outcomes.len() - 1);
                    cache.outcomes.len() - 1
                }
            };
            slots.push(slot);
        }
        let array: ArrayRef = match &s.kind {
            ApplyKind::Scalar => {
                // The batch's distinct values once, then taken for every row.
                let mut local = HashMap::new();
                let mut values = Vec::new();
                let indices: UInt32Array = slots
                    .iter()
                    .map(|slot| {
                        let next = values.len() as u32;
                        Some(*local.entry(*slot).or_insert_with(|| {
                            values.push(match &cache.outcomes[*slot] {
                                Outcome::Value(v) => v.clone(),
                                _ => ScalarValue::Null,
                            });
                            next
                        }))
                    })
                    .collect();
                if values.is_empty() {
                    new_empty_array(field.data_type())
                } else {
                    take(&ScalarValue::iter_to_array(values)?, &indices, None)?
                }
            }
            ApplyKind::Exists { negated } => Arc::new(
                slots
                    .iter()
                    .map(|slot| match cache.outcomes[*slot] {
                        Outcome::Exists(found) => Some(found != *negated),
                        _ => None,
                    })
                    .collect::<BooleanArray>(),
            ),
            ApplyKind::In { expr, negated, .. } => {
                let tested = expr.evaluate(batch)?.into_array(rows)?;
                let mut found = Vec::with_capacity(rows);
                for (row, slot) in slots.iter().enumerate() {
                    let Outcome::Values(set, has_null) = &cache.outcomes[*slot] else {
                        return internal_err!("apply: outcome of another kind");
                    };
                    // SQL's IN: NULL when nothing is equal and a NULL is involved.
                    let in_set = if set.is_empty() && !*has_null {
                        Some(false)
                    } else if tested.is_null(row) {
                        None
                    } else if set.contains(&ScalarValue::try_from_array(&tested, row)?) {
                        Some(true)
                    } else if *has_null {
                        None
                    } else {
                        Some(false)
                    };
                    found.push(in_set.map(|f| f != *negated));
                }
                Arc::new(BooleanArray::from(found))
            }
        };
        columns.push(array);
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// Runs `s` with its placeholders set to `key` (in `s.bindings` order): the plan `runner` keeps
/// for the partition when there is one (planned on the first binding), else planned for `key`.
async fn run_subquery(
    s: &ApplySubquery,
    key: &[ScalarValue],
    runner: &mut reuse::Runner,
    state: &SessionState,
    context: &Arc<TaskContext>,
) -> Result<Outcome> {
    let logical = s.plan(state).await?;
    if matches!(runner, reuse::Runner::Untried) {
        *runner = match reuse::prepare(&logical, state).await {
            Ok(Some(reusable)) => reuse::Runner::Reused(reusable),
            // Planned per binding, with the values as literals: as before, with its errors.
            Ok(None) | Err(_) => reuse::Runner::PerBinding,
        };
    }
    let physical = match runner {
        reuse::Runner::Reused(reusable) => reusable.bind(key)?,
        _ => {
            // The values are of their placeholders' types: each placeholder is typed as the
            // outer column its binding reads (`with_placeholders`).
            let plan = logical
                .as_ref()
                .clone()
                .replace_params_with_values(&ParamValues::from(key.to_vec()))?;
            state.create_physical_plan(&plan).await?
        }
    };
    let mut stream = datafusion::physical_plan::execute_stream(physical, Arc::clone(context))?;
    match s.kind {
        ApplyKind::Exists { .. } => {
            while let Some(batch) = stream.next().await {
                if batch?.num_rows() > 0 {
                    return Ok(Outcome::Exists(true));
                }
            }
            Ok(Outcome::Exists(false))
        }
        ApplyKind::Scalar => {
            let mut value = None;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                for row in 0..batch.num_rows() {
                    if value.is_some() {
                        return Err(ConnectorError::sql(
                            sqlstate::CARDINALITY_VIOLATION,
                            "more than one row returned by a subquery used as an expression",
                        ));
                    }
                    value = Some(ScalarValue::try_from_array(batch.column(0), row)?);
                }
            }
            match value {
                Some(v) => Ok(Outcome::Value(v)),
                None => Ok(Outcome::Value(ScalarValue::try_from(
                    logical.schema().field(0).data_type(),
                )?)),
            }
        }
        ApplyKind::In { .. } => {
            let mut set = HashSet::new();
            let mut has_null = false;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                for row in 0..batch.num_rows() {
                    let v = ScalarValue::try_from_array(batch.column(0), row)?;
                    let v = match &s.kind {
                        ApplyKind::In { ty, .. } if v.data_type() != *ty && !v.is_null() => {
                            v.cast_to(ty)?
                        }
                        _ => v,
                    };
                    if v.is_null() {
                        has_null = true;
                    } else {
                        set.insert(v);
                    }
                }
            }
            Ok(Outcome::Values(set, has_null))
        }
    }
}
