//! `WHERE e = (SELECT max(e) FROM <the same rows>)` computed over one reading of the rows.
//!
//! TPC-H q15 (`with revenue0 as (...) select ... where total_revenue = (select
//! max(total_revenue) from revenue0)`) and hand-written "the row with the largest value" queries
//! name the same subquery twice; DataFusion inlines both, and the uncorrelated scalar subquery runs
//! as a plan of its own ([`crate::plan`]), so q15 scans and aggregates lineitem twice.
//! [`ExtremeAsWindow`] rewrites the filter `e = (SELECT max(c) FROM input')`, when the
//! subquery's rows are the filter's own input (the same plan, read through an alias and a
//! projection mapping `c` to `e`), into `e = max(e) OVER ()` over that input, which is computed
//! once:
//!
//! ```text
//! Filter(e = (<subquery>: Aggregate(max(c)) <- SubqueryAlias <- Projection(e AS c) <- X)) <- X
//!   ->  Projection(X's columns) <- Filter(e = __extreme) <- Window(max(e) OVER () AS __extreme) <- X
//! ```
//!
//! Exact: over no rows the subquery is NULL and the filter keeps nothing, as the window does; NULLs
//! of `e` are skipped by both. Applies to `max` and `min`, only to plans without volatile
//! expressions (a plan with `random()` gives other rows each time it is read, and the subquery read
//! it separately).

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::expr::{AggregateFunction, WindowFunction};
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{
    BinaryExpr, Expr, Filter, LogicalPlan, Operator, Projection, Subquery, Window,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// Name of the window column the rewrite adds (dropped again by the projection above it).
const EXTREME: &str = "__tributary_extreme";

/// The optimizer rule; see the module docs.
#[derive(Debug, Default)]
pub struct ExtremeAsWindow;

impl OptimizerRule for ExtremeAsWindow {
    fn name(&self) -> &str {
        "extreme_as_window"
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        plan.transform_up(rewrite_filter)
    }
}

fn rewrite_filter(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Filter(filter) = &plan else {
        return Ok(Transformed::no(plan));
    };
    let conjuncts = split_conjunction_owned(filter.predicate.clone());
    let Some((at, function, e)) = conjuncts
        .iter()
        .enumerate()
        .find_map(|(i, c)| extreme_of_input(c, &filter.input).map(|(f, e)| (i, f, e)))
    else {
        return Ok(Transformed::no(plan));
    };
    let input = Arc::clone(&filter.input);
    let window = Expr::WindowFunction(Box::new(WindowFunction::new(function, vec![e.clone()])))
        .alias(EXTREME);
    let window = LogicalPlan::Window(Window::try_new(vec![window], Arc::clone(&input))?);
    let mut predicate: Vec<Expr> = conjuncts;
    predicate[at] = e.eq(Expr::Column(datafusion::common::Column::from_name(EXTREME)));
    let filtered = LogicalPlan::Filter(Filter::try_new(
        conjunction(predicate).expect("at least one conjunct"),
        Arc::new(window),
    )?);
    Ok(Transformed::yes(LogicalPlan::Projection(
        Projection::new_from_schema(Arc::new(filtered), Arc::clone(input.schema())),
    )))
}

/// For a conjunct `e = (SELECT max(c) FROM ...)` (either side) whose subquery reads `input` itself
/// with `c` standing for `e`: the aggregate function (`max` or `min`) and `e`.
fn extreme_of_input(
    conjunct: &Expr,
    input: &LogicalPlan,
) -> Option<(Arc<datafusion::logical_expr::AggregateUDF>, Expr)> {
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Eq,
        right,
    }) = conjunct
    else {
        return None;
    };
    let (e, subquery) = match (left.as_ref(), right.as_ref()) {
        (Expr::ScalarSubquery(s), e) | (e, Expr::ScalarSubquery(s)) => (e, s),
        _ => return None,
    };
    if e.contains_outer() || e.is_volatile() || has_volatile(input) {
        return None;
    }
    let (function, of, rows) = single_extreme(subquery)?;
    (of == *e && rows == input).then_some((function, e.clone()))
}

/// For an uncorrelated subquery `SELECT max(c) FROM <alias> <- <projection> <- X` (or `min`):
/// the function, `c` as an expression over X, and X.
fn single_extreme(
    subquery: &Subquery,
) -> Option<(
    Arc<datafusion::logical_expr::AggregateUDF>,
    Expr,
    &LogicalPlan,
)> {
    if !subquery.outer_ref_columns.is_empty() {
        return None;
    }
    let LogicalPlan::Aggregate(aggregate) = subquery.subquery.as_ref() else {
        return None;
    };
    let [only] = aggregate.aggr_expr.as_slice() else {
        return None;
    };
    if !aggregate.group_expr.is_empty() {
        return None;
    }
    let Expr::AggregateFunction(AggregateFunction { func, params }) = only.clone().unalias() else {
        return None;
    };
    let plain = !params.distinct && params.filter.is_none() && params.order_by.is_empty();
    if !plain || !matches!(func.name(), "max" | "min") {
        return None;
    }
    let [arg] = params.args.as_slice() else {
        return None;
    };
    let mut expr = arg.clone();
    let mut plan = aggregate.input.as_ref();
    // Down through aliases and projections, rewriting `expr` into the columns below.
    loop {
        match plan {
            LogicalPlan::SubqueryAlias(alias) => {
                let Expr::Column(c) = &expr else { return None };
                let index = alias.schema.index_of_column(c).ok()?;
                let (qualifier, field) = alias.input.schema().qualified_field(index);
                expr = Expr::Column(datafusion::common::Column::new(
                    qualifier.cloned(),
                    field.name(),
                ));
                plan = alias.input.as_ref();
            }
            LogicalPlan::Projection(projection) => {
                let Expr::Column(c) = &expr else { return None };
                let index = projection.schema.index_of_column(c).ok()?;
                expr = projection.expr.get(index)?.clone().unalias();
                plan = projection.input.as_ref();
            }
            _ => break,
        }
    }
    Some((func, expr, plan))
}

/// Whether any expression of `plan` is volatile (`random()`, ...): its rows differ per reading.
fn has_volatile(plan: &LogicalPlan) -> bool {
    plan.exists(|node| Ok(node.expressions().iter().any(Expr::is_volatile)))
        .unwrap_or(true)
}
