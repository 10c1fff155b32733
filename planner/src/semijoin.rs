//! Semi-join reduction of aggregates joined on their grouping keys.
//!
//! A correlated subquery decorrelates into an aggregate over a whole table joined back on its
//! grouping key: TPC-H q17 (`l_quantity < (select 0.2 * avg(l_quantity) from lineitem where
//! l_partkey = p_partkey)`) averages all 6 million lineitem rows in 200,000 groups and then keeps
//! the ~200 groups whose part passed `p_brand = 'Brand#23' AND p_container = 'MED BOX'`. Groups
//! whose key the join never meets are wasted work, so [`SemiJoinReduction`] filters the
//! aggregate's input first, by a semi join with the keys the other side can have (DuckDB's
//! "delim join" does the same for subqueries; in the literature, Bernstein's semi-join reducers):
//!
//! ```text
//! Join(part', Aggregate(lineitem) group by l_partkey) on p_partkey = l_partkey
//!   ->  Join(part', Aggregate(lineitem LEFT SEMI JOIN part'' on l_partkey = p_partkey) ...)
//! ```
//!
//! Exact for any aggregate: a group's rows all share its key, so a group either keeps all its rows
//! or none, and the groups dropped are those no row of the other side matches (an inner join, the
//! inner side of an outer join, the build side of a semi or anti join). The reducer (`part''`) is
//! the smallest input of the other side whose column the join key equals: the other side itself,
//! or, through inner joins and semi joins, one of its inputs (for q17, `part` under its filters,
//! not `part ⋈ lineitem`); it is computed a second time, so only plain inputs qualify (a table scan
//! under filters and projections, no volatile expression, with statistics: a Kafka topic or a
//! system table could give other rows the second time; no row limit), and not from the
//! PostgreSQL or MySQL catalog the aggregate reads (that source's pushdown decides how its tables
//! combine).
//!
//! Applied when it pays by the estimates of [`crate::join_order`]: the aggregate groups by a key
//! with more than [`MIN_GROUPS`] distinct values, the reducer has at most half as many rows (so
//! at least half the groups go) and its filters keep at most half its table (an unfiltered table,
//! such as the key side of a foreign key, holds every key the aggregate has). Off with the session's `semijoin_reduction` off
//! ([`JoinOrdering::semijoin_reduction`]). The reducer sits under an alias named
//! [`REDUCER`]`_n`, which also keeps the rule from reducing an aggregate twice over the optimizer's
//! passes.
//!
//! [`SemiJoinPushdown`], the same idea for a semi join written above inner joins: TPC-H q18's
//! `o_orderkey IN (select l_orderkey ... having sum(l_quantity) > 300)` is decorrelated into a
//! semi join over `customer ⋈ orders ⋈ lineitem`, filtering the six million joined rows down to a
//! few hundred; moved onto `orders`, the only input its condition reads, it leaves 57 orders to
//! join. Moved when the estimates say it keeps at most half the rows of that input.

use std::cell::Cell;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, NullEquality, Result};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, Expr, Filter, Join, JoinConstraint, JoinType, LogicalPlan, Operator,
    Projection, SubqueryAlias,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use crate::join_order::{
    JoinOrdering, column_ndv, estimated_rows, shares_sql_source, unfiltered_rows,
};

/// The alias prefix of a reducer (`__semijoin_reducer_1`, ...).
pub const REDUCER: &str = "__semijoin_reducer";

/// Fewest distinct grouping keys (estimated) for an aggregate to be reduced: under it, grouping is
/// about as cheap per row as the semi join's probe.
pub const MIN_GROUPS: f64 = 1000.0;

/// The optimizer rule; see the module docs. Placed after [`crate::join_order::JoinReorder`].
#[derive(Debug, Default)]
pub struct SemiJoinReduction;

impl OptimizerRule for SemiJoinReduction {
    fn name(&self) -> &str {
        "semijoin_reduction"
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        if !enabled(config) {
            return Ok(Transformed::no(plan));
        }
        // Reducer aliases unique in the plan: numbered after those already in it.
        let mut existing = 0;
        plan.apply(|node| {
            if is_reducer(node) {
                existing += 1;
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        let next = Cell::new(existing);
        plan.transform_down(|node| reduce_join(node, &next))
    }
}

fn is_reducer(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::SubqueryAlias(a) if a.alias.table().starts_with(REDUCER))
}

/// `plan` with the aggregate on one side reduced by the other side's keys, when `plan` is such a
/// join and the estimates say it pays.
fn reduce_join(plan: LogicalPlan, next: &Cell<usize>) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Join(join) = &plan else {
        return Ok(Transformed::no(plan));
    };
    if join.null_equality != NullEquality::NullEqualsNothing || join.null_aware {
        return Ok(Transformed::no(plan));
    }
    // Which sides only matter where the other side has their key.
    let (left_reducible, right_reducible) = match join.join_type {
        JoinType::Inner => (true, true),
        JoinType::Left | JoinType::LeftSemi | JoinType::LeftAnti => (false, true),
        JoinType::Right | JoinType::RightSemi | JoinType::RightAnti => (true, false),
        JoinType::Full | JoinType::LeftMark | JoinType::RightMark => (false, false),
    };
    // The best reduction: (fraction of groups kept, aggregate side is right, the join key on that
    // side, reducer, its column).
    let mut best: Option<(f64, bool, Column, LogicalPlan, Column)> = None;
    for (l, r) in &join.on {
        let (Expr::Column(l), Expr::Column(r)) = (l, r) else {
            continue;
        };
        let sides = [
            (right_reducible, true, &join.right, r, &join.left, l),
            (left_reducible, false, &join.left, l, &join.right, r),
        ];
        for (reducible, is_right, side, key, other, other_key) in sides {
            if !reducible {
                continue;
            }
            let Some((_, groups)) = group_key(side, key) else {
                continue;
            };
            if groups <= MIN_GROUPS {
                continue;
            }
            let mut candidates = Vec::new();
            reducers(other, other_key, &mut candidates);
            let Ok((_, side_field)) = side.schema().qualified_field_from_column(key) else {
                continue;
            };
            let side_type = side_field.data_type().clone();
            for (reducer, column) in candidates {
                let Some(rows) = estimated_rows(&reducer) else {
                    continue;
                };
                // A reducer its filters do not narrow (q18's `orders` for lineitem's orderkeys)
                // holds every key a foreign key can have: it would remove nothing.
                if unfiltered_rows(&reducer).is_none_or(|all| rows > all * 0.5) {
                    continue;
                }
                // Tables of one PostgreSQL or MySQL catalog: its pushdown decides how they are
                // combined (as for join order), and the reducer would read the source again.
                if shares_sql_source(&[Arc::clone(side), Arc::new(reducer.clone())]) {
                    continue;
                }
                let same_type = reducer
                    .schema()
                    .qualified_field_from_column(&column)
                    .is_ok_and(|(_, f)| *f.data_type() == side_type);
                let kept = rows / groups;
                if same_type && kept <= 0.5 && best.as_ref().is_none_or(|b| kept < b.0) {
                    best = Some((kept, is_right, key.clone(), reducer, column));
                }
            }
        }
    }
    let Some((_, is_right, side_key, reducer, column)) = best else {
        return Ok(Transformed::no(plan));
    };
    let n = next.get() + 1;
    next.set(n);
    let alias = format!("{REDUCER}_{n}");
    let reducer = LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(
        Arc::new(LogicalPlan::Projection(Projection::try_new(
            vec![Expr::Column(column.clone())],
            Arc::new(reducer),
        )?)),
        alias.as_str(),
    )?);
    let reducer_column = Column::new(Some(alias.as_str()), column.name.clone());
    let LogicalPlan::Join(join) = plan else {
        unreachable!("matched above")
    };
    let reduce =
        |side: &LogicalPlan, key: &Column| reduce_side(side, key, &reducer, &reducer_column);
    let (left, right) = if is_right {
        (
            Arc::clone(&join.left),
            Arc::new(reduce(&join.right, &side_key)?),
        )
    } else {
        (
            Arc::new(reduce(&join.left, &side_key)?),
            Arc::clone(&join.right),
        )
    };
    Ok(Transformed::yes(with_sides(&join, left, right)?))
}

/// Whether the session's `semijoin_reduction` is on (the default).
fn enabled(config: &dyn OptimizerConfig) -> bool {
    config
        .options()
        .extensions
        .get::<JoinOrdering>()
        .is_none_or(|o| o.semijoin_reduction)
}

/// `join` with inputs `left` and `right` (of the same schemas as its own).
fn with_sides(join: &Join, left: Arc<LogicalPlan>, right: Arc<LogicalPlan>) -> Result<LogicalPlan> {
    Ok(LogicalPlan::Join(Join::try_new(
        left,
        right,
        join.on.clone(),
        join.filter.clone(),
        join.join_type,
        join.join_constraint,
        join.null_equality,
        join.null_aware,
    )?))
}

/// For output column `column` of `plan`, when it is a grouping key of an aggregate below
/// projections, aliases and filters (`HAVING`): the aggregate input's column and its estimated
/// distinct values. `None` for computed keys, grouping sets, an aggregate already reduced, or
/// no estimate.
fn group_key(plan: &LogicalPlan, column: &Column) -> Option<(Column, f64)> {
    match plan {
        LogicalPlan::Projection(p) => group_key(&p.input, &projected(p, column)?),
        LogicalPlan::SubqueryAlias(a) => group_key(&a.input, &aliased(a, column)?),
        LogicalPlan::Filter(f) => group_key(&f.input, column),
        LogicalPlan::Aggregate(a) => {
            let index = a.schema.index_of_column(column).ok()?;
            let Expr::Column(c) = a.group_expr.get(index)?.clone().unalias() else {
                return None;
            };
            if a.input.exists(|n| Ok(is_reducer(n))).unwrap_or(true) {
                return None;
            }
            Some((c.clone(), column_ndv(&a.input, &c)?))
        }
        _ => None,
    }
}

/// The input column projection `p`'s output `column` is, when it is one.
fn projected(p: &Projection, column: &Column) -> Option<Column> {
    let index = p.schema.index_of_column(column).ok()?;
    match p.expr.get(index)?.clone().unalias() {
        Expr::Column(c) => Some(c),
        _ => None,
    }
}

/// The input column alias `a`'s output `column` is.
fn aliased(a: &SubqueryAlias, column: &Column) -> Option<Column> {
    let index = a.schema.index_of_column(column).ok()?;
    let (qualifier, field) = a.input.schema().qualified_field(index);
    Some(Column::new(qualifier.cloned(), field.name()))
}

/// `plan` (the path [`group_key`] took to an aggregate) with the aggregate's input reduced by
/// `reducer` on `reducer_column`.
fn reduce_side(
    plan: &LogicalPlan,
    column: &Column,
    reducer: &LogicalPlan,
    reducer_column: &Column,
) -> Result<LogicalPlan> {
    let missing =
        || datafusion::common::internal_datafusion_err!("semi-join reduction lost {column}");
    Ok(match plan {
        LogicalPlan::Projection(p) => {
            let input = reduce_side(
                &p.input,
                &projected(p, column).ok_or_else(missing)?,
                reducer,
                reducer_column,
            )?;
            LogicalPlan::Projection(Projection::try_new_with_schema(
                p.expr.clone(),
                Arc::new(input),
                Arc::clone(&p.schema),
            )?)
        }
        LogicalPlan::SubqueryAlias(a) => {
            let input = reduce_side(
                &a.input,
                &aliased(a, column).ok_or_else(missing)?,
                reducer,
                reducer_column,
            )?;
            LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(Arc::new(input), a.alias.clone())?)
        }
        LogicalPlan::Filter(f) => {
            let input = reduce_side(&f.input, column, reducer, reducer_column)?;
            LogicalPlan::Filter(Filter::try_new(f.predicate.clone(), Arc::new(input))?)
        }
        LogicalPlan::Aggregate(a) => {
            let index = a.schema.index_of_column(column)?;
            let Some(Expr::Column(c)) = a.group_expr.get(index).map(|e| e.clone().unalias()) else {
                return Err(missing());
            };
            let input = attach(&a.input, &c, reducer, reducer_column)?;
            LogicalPlan::Aggregate(Aggregate::try_new_with_schema(
                Arc::new(input),
                a.group_expr.clone(),
                a.aggr_expr.clone(),
                Arc::clone(&a.schema),
            )?)
        }
        _ => return Err(missing()),
    })
}

/// `plan` semi-joined with `reducer` on `column = reducer_column`, the semi join placed on the
/// input of `plan`'s inner joins that `column` comes from (fewer rows to join as well).
fn attach(
    plan: &LogicalPlan,
    column: &Column,
    reducer: &LogicalPlan,
    reducer_column: &Column,
) -> Result<LogicalPlan> {
    match plan {
        LogicalPlan::Join(join)
            if join.join_type == JoinType::Inner
                && join.null_equality == NullEquality::NullEqualsNothing =>
        {
            let on_left = join.left.schema().has_column(column);
            let side = if on_left { &join.left } else { &join.right };
            let reduced = Arc::new(attach(side, column, reducer, reducer_column)?);
            let (left, right) = if on_left {
                (reduced, Arc::clone(&join.right))
            } else {
                (Arc::clone(&join.left), reduced)
            };
            return with_sides(join, left, right);
        }
        LogicalPlan::Projection(p) => {
            if let Some(inner) = projected(p, column) {
                let input = attach(&p.input, &inner, reducer, reducer_column)?;
                return Ok(LogicalPlan::Projection(Projection::try_new_with_schema(
                    p.expr.clone(),
                    Arc::new(input),
                    Arc::clone(&p.schema),
                )?));
            }
        }
        LogicalPlan::Filter(f) => {
            let input = attach(&f.input, column, reducer, reducer_column)?;
            return Ok(LogicalPlan::Filter(Filter::try_new(
                f.predicate.clone(),
                Arc::new(input),
            )?));
        }
        _ => {}
    }
    Ok(LogicalPlan::Join(Join::try_new(
        Arc::new(plan.clone()),
        Arc::new(reducer.clone()),
        vec![(
            Expr::Column(column.clone()),
            Expr::Column(reducer_column.clone()),
        )],
        None,
        JoinType::LeftSemi,
        JoinConstraint::On,
        NullEquality::NullEqualsNothing,
        false,
    )?))
}

/// Plain inputs of `plan` whose column holds every value (but NULL) `plan`'s `column` can have:
/// `plan` itself when plain ([`plain`]), else, through projections, aliases, filters, inner joins
/// (any input holding a column the joins equate with `column`) and semi joins (both sides), the
/// plain inputs below.
fn reducers(plan: &LogicalPlan, column: &Column, out: &mut Vec<(LogicalPlan, Column)>) {
    if plain(plan) {
        out.push((plan.clone(), column.clone()));
        return;
    }
    match plan {
        LogicalPlan::Projection(p) => {
            if let Some(c) = projected(p, column) {
                reducers(&p.input, &c, out);
            }
        }
        LogicalPlan::SubqueryAlias(a) => {
            if let Some(c) = aliased(a, column) {
                reducers(&a.input, &c, out);
            }
        }
        LogicalPlan::Filter(f) => reducers(&f.input, column, out),
        LogicalPlan::Sort(s) => reducers(&s.input, column, out),
        LogicalPlan::Limit(l) => reducers(&l.input, column, out),
        LogicalPlan::Join(join) if join.null_equality == NullEquality::NullEqualsNothing => {
            match join.join_type {
                JoinType::Inner => {
                    let mut inputs = Vec::new();
                    let mut pairs = Vec::new();
                    region(plan, &mut inputs, &mut pairs);
                    // The columns equated with `column`, transitively.
                    let mut class = vec![column.clone()];
                    let mut grew = true;
                    while grew {
                        grew = false;
                        for (a, b) in &pairs {
                            for (x, y) in [(a, b), (b, a)] {
                                if class.contains(x) && !class.contains(y) {
                                    class.push(y.clone());
                                    grew = true;
                                }
                            }
                        }
                    }
                    for input in inputs {
                        for c in class.iter().filter(|c| input.schema().has_column(c)) {
                            reducers(input, c, out);
                        }
                    }
                }
                JoinType::LeftSemi | JoinType::RightSemi => {
                    let left_semi = join.join_type == JoinType::LeftSemi;
                    let (kept, other) = if left_semi {
                        (&join.left, &join.right)
                    } else {
                        (&join.right, &join.left)
                    };
                    reducers(kept, column, out);
                    for (l, r) in &join.on {
                        let (k, o) = if left_semi { (l, r) } else { (r, l) };
                        if let (Expr::Column(k), Expr::Column(o)) = (k, o)
                            && k == column
                        {
                            reducers(other, o, out);
                        }
                    }
                }
                JoinType::Left | JoinType::LeftAnti if join.left.schema().has_column(column) => {
                    reducers(&join.left, column, out)
                }
                JoinType::Right | JoinType::RightAnti if join.right.schema().has_column(column) => {
                    reducers(&join.right, column, out)
                }
                _ => {}
            }
        }
        _ => {}
    }
}

/// The inputs and column equalities (`ON` pairs and `a = b` filter conjuncts) of the region of
/// inner joins topped by `plan`, looking through projections of plain columns.
fn region<'a>(
    plan: &'a LogicalPlan,
    inputs: &mut Vec<&'a LogicalPlan>,
    pairs: &mut Vec<(Column, Column)>,
) {
    match plan {
        LogicalPlan::Join(join)
            if join.join_type == JoinType::Inner
                && join.null_equality == NullEquality::NullEqualsNothing =>
        {
            for (l, r) in &join.on {
                if let (Expr::Column(l), Expr::Column(r)) = (l, r) {
                    pairs.push((l.clone(), r.clone()));
                }
            }
            for conjunct in join.filter.iter().flat_map(split_conjunction) {
                if let Expr::BinaryExpr(BinaryExpr {
                    left,
                    op: Operator::Eq,
                    right,
                }) = conjunct
                    && let (Expr::Column(l), Expr::Column(r)) = (left.as_ref(), right.as_ref())
                {
                    pairs.push((l.clone(), r.clone()));
                }
            }
            region(&join.left, inputs, pairs);
            region(&join.right, inputs, pairs);
        }
        LogicalPlan::Projection(p)
            if p.expr.iter().all(|e| matches!(e, Expr::Column(_)))
                && matches!(p.input.as_ref(), LogicalPlan::Join(_)) =>
        {
            region(&p.input, inputs, pairs)
        }
        _ => inputs.push(plan),
    }
}

/// Whether `plan` can be computed again to the same rows: a table scan with statistics under
/// filters, projections and aliases, without volatile expressions or a row limit (which rows a
/// limit keeps can differ from one run to the next).
fn plain(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::TableScan(scan) => {
            scan.fetch.is_none()
                && !scan.filters.iter().any(Expr::is_volatile)
                && estimated_rows(plan).is_some()
        }
        LogicalPlan::Filter(f) => !f.predicate.is_volatile() && plain(&f.input),
        LogicalPlan::Projection(p) => !p.expr.iter().any(Expr::is_volatile) && plain(&p.input),
        LogicalPlan::SubqueryAlias(a) => plain(&a.input),
        _ => false,
    }
}

/// The optimizer rule moving a selective semi join below inner joins; see the module docs. Placed
/// before [`crate::join_order::JoinReorder`], which then orders the region with the reduced input.
/// Off with the session's `semijoin_reduction` off.
#[derive(Debug, Default)]
pub struct SemiJoinPushdown;

impl OptimizerRule for SemiJoinPushdown {
    fn name(&self) -> &str {
        "semijoin_pushdown"
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        if !enabled(config) {
            return Ok(Transformed::no(plan));
        }
        plan.transform_down(push_semi_join)
    }
}

/// `plan` with its semi join moved onto the input of the inner joins below that its condition
/// reads, when `plan` is such a semi join and the estimates say it keeps at most half that input.
fn push_semi_join(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Join(semi) = &plan else {
        return Ok(Transformed::no(plan));
    };
    if semi.join_type != JoinType::LeftSemi
        || semi.null_equality != NullEquality::NullEqualsNothing
        || semi.null_aware
        || !region_below(&semi.left)
    {
        return Ok(Transformed::no(plan));
    }
    // The left columns the condition reads.
    let left_schema = semi.left.schema();
    let mut read: Vec<Column> = Vec::new();
    for (l, _) in &semi.on {
        read.extend(l.column_refs().into_iter().cloned());
    }
    if let Some(filter) = &semi.filter {
        read.extend(
            filter
                .column_refs()
                .into_iter()
                .filter(|c| left_schema.has_column(c))
                .cloned(),
        );
    }
    let mut inputs = Vec::new();
    let mut pairs = Vec::new();
    region(semi.left.as_ref(), &mut inputs, &mut pairs);
    let Some(input) = inputs
        .into_iter()
        .find(|i| read.iter().all(|c| i.schema().has_column(c)))
    else {
        return Ok(Transformed::no(plan));
    };
    // Kept fraction: the other side's rows over the distinct keys of the input (one key column).
    let kept = match semi.on.as_slice() {
        [(Expr::Column(key), _)] => match (estimated_rows(&semi.right), column_ndv(input, key)) {
            (Some(rows), Some(ndv)) => rows / ndv.max(1.0),
            _ => 1.0,
        },
        _ => 1.0,
    };
    if kept > 0.5 {
        return Ok(Transformed::no(plan));
    }
    let target: *const LogicalPlan = input;
    let LogicalPlan::Join(semi) = plan else {
        unreachable!("matched above")
    };
    let pushed = place(&semi.left, target, &|input| {
        Ok(LogicalPlan::Join(Join::try_new(
            Arc::new(input.clone()),
            Arc::clone(&semi.right),
            semi.on.clone(),
            semi.filter.clone(),
            JoinType::LeftSemi,
            semi.join_constraint,
            semi.null_equality,
            false,
        )?))
    })?;
    Ok(Transformed::yes(pushed))
}

/// Whether `plan` tops a region of inner joins (through projections of plain columns).
fn region_below(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Join(join) => {
            join.join_type == JoinType::Inner
                && join.null_equality == NullEquality::NullEqualsNothing
        }
        LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
            matches!(p.input.as_ref(), LogicalPlan::Join(_)) && region_below(&p.input)
        }
        _ => false,
    }
}

/// The region topped by `plan` ([`region`]'s walk) with its input `target` replaced by
/// `make(target)` (same schema).
fn place(
    plan: &LogicalPlan,
    target: *const LogicalPlan,
    make: &dyn Fn(&LogicalPlan) -> Result<LogicalPlan>,
) -> Result<LogicalPlan> {
    if std::ptr::eq(plan, target) {
        return make(plan);
    }
    match plan {
        LogicalPlan::Join(join)
            if join.join_type == JoinType::Inner
                && join.null_equality == NullEquality::NullEqualsNothing =>
        {
            with_sides(
                join,
                Arc::new(place(&join.left, target, make)?),
                Arc::new(place(&join.right, target, make)?),
            )
        }
        LogicalPlan::Projection(p)
            if p.expr.iter().all(|e| matches!(e, Expr::Column(_)))
                && matches!(p.input.as_ref(), LogicalPlan::Join(_)) =>
        {
            Ok(LogicalPlan::Projection(Projection::try_new_with_schema(
                p.expr.clone(),
                Arc::new(place(&p.input, target, make)?),
                Arc::clone(&p.schema),
            )?))
        }
        _ => Ok(plan.clone()),
    }
}
