//! A correlated `avg`/`min`/`max` subquery over the rows of a table the query already joins,
//! computed as a window over that join: the table is read once.
//!
//! TPC-H q17 (`... from lineitem, part where p_partkey = l_partkey and <part filters> and
//! l_quantity < (select 0.2 * avg(l_quantity) from lineitem where l_partkey = p_partkey)`) reads
//! lineitem twice once DataFusion decorrelates it (the per-part averages, then the join), and
//! probes 6M rows against the selected parts each time. [`GroupAggregateAsWindow`] rewrites the
//! filter, before decorrelation, into
//!
//! ```text
//! Projection(the input's columns)
//!   Filter(l_quantity < 0.2 * __tributary_group_0)
//!     Window(avg(l_quantity) OVER (PARTITION BY l_partkey) AS __tributary_group_0)
//!       Filter(p_partkey = l_partkey AND <part filters>) <- input
//! ```
//!
//! as Hyper's and DuckDB's planners turn such subqueries into windows. Exact when: the subquery is
//! `[SELECT f(aggregates)] FROM T WHERE T.k = outer.o` with only `avg`, `min` and `max` (plain, one
//! argument each); the filter's input is a tree of inner joins with exactly one plain scan of the
//! same table T (no filter, no limit, optionally aliased) among its inputs; `o` is that scan's
//! `k` or is equated with it by a conjunct; and no other conjunct or join condition reads that
//! scan's columns other than `k`. Then every other input and condition keeps or drops whole
//! groups of T's rows by `k`, and multiplies the rows it keeps by one factor per group (a join
//! partner repeated `m` times repeats each row of the group `m` times), which leaves an average,
//! a minimum and a maximum unchanged; each row's own group is never empty. A row whose key is NULL
//! gets the aggregates of no rows (NULL), as the subquery's `T.k = NULL` gives, not its window
//! partition's. `avg` only of integers and decimals (summed exactly; a float sum over repeated rows
//! could round differently). Not for plans with volatile
//! expressions, nor for tables of SQL sources (their pushdown decides how such a query runs there).

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, Result, ScalarValue, TableReference};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::expr::{AggregateFunction, WindowFunction};
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{
    BinaryExpr, Expr, ExprSchemable, Filter, JoinType, LogicalPlan, Operator, Projection, Subquery,
    TableScan, Window, when,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use tributary_connectors::sql_source::as_sql_table;

/// Prefix of the window columns the rewrite adds (dropped again by the projection above them).
const GROUP: &str = "__tributary_group_";

/// The optimizer rule; see the module docs. It runs first, before DataFusion decorrelates.
#[derive(Debug, Default)]
pub struct GroupAggregateAsWindow;

impl OptimizerRule for GroupAggregateAsWindow {
    fn name(&self) -> &str {
        "group_aggregate_as_window"
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        plan.transform_up_with_subqueries(rewrite_filter)
    }
}

/// `rules` (an optimizer's, in order) with [`GroupAggregateAsWindow`] first.
pub fn first(
    rules: Vec<Arc<dyn OptimizerRule + Send + Sync>>,
) -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let mut rules = rules;
    rules.insert(0, Arc::new(GroupAggregateAsWindow));
    rules
}

/// What a matching subquery computes.
struct GroupAggregate {
    /// The aggregates, as window functions over the outer scan's columns (partition to be set).
    windows: Vec<WindowFunction>,
    /// The subquery's value over the window columns `__tributary_group_<i>`.
    value: Expr,
    /// The correlated table's key column, by name, and the outer column it is equated with.
    key: String,
    outer: Column,
    /// The correlated table's scan.
    table: TableReference,
}

fn rewrite_filter(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Filter(filter) = &plan else {
        return Ok(Transformed::no(plan));
    };
    let Some(rewritten) = rewritten(filter)? else {
        return Ok(Transformed::no(plan));
    };
    Ok(Transformed::yes(rewritten))
}

fn rewritten(filter: &Filter) -> Result<Option<LogicalPlan>> {
    let conjuncts = split_conjunction(&filter.predicate);
    let input = filter.input.as_ref();
    // The one conjunct with a subquery, which must be a matching scalar subquery.
    let mut with_subquery = conjuncts
        .iter()
        .enumerate()
        .filter(|(_, c)| has_subquery(c));
    let (Some((at, conjunct)), None) = (with_subquery.next(), with_subquery.next()) else {
        return Ok(None);
    };
    let Some(subquery) = only_scalar_subquery(conjunct) else {
        return Ok(None);
    };
    let Some(group) = group_aggregate(subquery) else {
        return Ok(None);
    };
    // Not inside a correlated subquery either: references to an enclosing query would sit under
    // the window, where decorrelation cannot lift them.
    let volatile_or_outer = |e: &Expr| e.is_volatile() || e.contains_outer();
    if conjuncts.iter().any(|c| volatile_or_outer(c))
        || input
            .exists(|node| Ok(node.expressions().iter().any(volatile_or_outer)))
            .unwrap_or(true)
    {
        return Ok(None);
    }
    let Some((leaves, conditions)) = inner_join_tree(input) else {
        return Ok(None);
    };
    // Exactly one input of the joins is a plain scan of the subquery's table.
    let mut scans = leaves
        .iter()
        .filter(|leaf| plain_scan(leaf).is_some_and(|s| s.table_name == group.table));
    let (Some(scan_leaf), None) = (scans.next(), scans.next()) else {
        return Ok(None);
    };
    if plain_scan(scan_leaf).is_some_and(reads_sql_source) {
        return Ok(None);
    }
    let scan_schema = scan_leaf.schema();
    let Ok((qualifier, _)) = scan_schema.qualified_field_with_unqualified_name(&group.key) else {
        return Ok(None);
    };
    let key = Column::new(qualifier.cloned(), &group.key);
    // No other conjunct or join condition reads the scan's columns other than the key.
    let others: Vec<&Expr> = conjuncts
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != at)
        .map(|(_, c)| *c)
        .collect();
    let reads_beyond_key = |e: &Expr| {
        e.column_refs()
            .into_iter()
            .any(|c| scan_schema.has_column(c) && *c != key)
    };
    if others.iter().any(|e| reads_beyond_key(e)) || conditions.iter().any(reads_beyond_key) {
        return Ok(None);
    }
    // The correlated column is the key, or equated with it.
    let linked = group.outer == key
        || others.iter().any(|e| match e {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) => matches!(
                (left.as_ref(), right.as_ref()),
                (Expr::Column(a), Expr::Column(b))
                    if (*a == key && *b == group.outer) || (*b == key && *a == group.outer)
            ),
            _ => false,
        });
    if !linked || !input.schema().has_column(&group.outer) {
        return Ok(None);
    }
    // Re-qualify the aggregates' arguments to the outer scan.
    let requalify = |e: Expr| -> Result<Expr> {
        e.transform(|e| match e {
            Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::new(
                qualifier.cloned(),
                c.name,
            )))),
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
    };
    let mut windows = Vec::with_capacity(group.windows.len());
    for (i, mut window) in group.windows.into_iter().enumerate() {
        window.params.args = window
            .params
            .args
            .into_iter()
            .map(requalify)
            .collect::<Result<_>>()?;
        window.params.partition_by = vec![Expr::Column(key.clone())];
        windows.push(Expr::WindowFunction(Box::new(window)).alias(format!("{GROUP}{i}")));
    }

    let lower = match conjunction(others.into_iter().cloned()) {
        Some(predicate) => Arc::new(LogicalPlan::Filter(Filter::try_new(
            predicate,
            Arc::clone(&filter.input),
        )?)),
        None => Arc::clone(&filter.input),
    };
    let window = Window::try_new(windows, lower)?;
    // A row whose key is NULL meets no row of the subquery (`T.k = NULL`): its aggregates are
    // those of no rows, NULL, not its window partition's (all NULL-key rows).
    let window_schema = Arc::clone(&window.schema);
    let value = group
        .value
        .transform(|e| match e {
            Expr::Column(c) if c.relation.is_none() && c.name.starts_with(GROUP) => {
                let ty = window_schema
                    .field_with_unqualified_name(&c.name)?
                    .data_type()
                    .clone();
                let none = Expr::Literal(ScalarValue::try_from(&ty)?, None);
                Ok(Transformed::yes(
                    when(Expr::Column(key.clone()).is_null(), none).otherwise(Expr::Column(c))?,
                ))
            }
            other => Ok(Transformed::no(other)),
        })?
        .data;
    let window = LogicalPlan::Window(window);
    let upper = (*conjunct)
        .clone()
        .transform(|e| match e {
            Expr::ScalarSubquery(_) => Ok(Transformed::yes(value.clone())),
            other => Ok(Transformed::no(other)),
        })?
        .data;
    let upper = LogicalPlan::Filter(Filter::try_new(upper, Arc::new(window))?);
    Ok(Some(LogicalPlan::Projection(Projection::new_from_schema(
        Arc::new(upper),
        Arc::clone(input.schema()),
    ))))
}

fn has_subquery(e: &Expr) -> bool {
    e.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_)
                | Expr::Exists(_)
                | Expr::InSubquery(_)
                | Expr::SetComparison(_)
        ))
    })
    .unwrap_or(true)
}

/// The scalar subquery of `conjunct`, when it has exactly one and no other kind.
fn only_scalar_subquery(conjunct: &Expr) -> Option<&Subquery> {
    let mut found = None;
    let mut count = 0;
    let _ = conjunct.apply(|e| {
        if let Expr::ScalarSubquery(s) = e {
            found = Some(s);
            count += 1;
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    if count != 1 {
        return None;
    }
    found
}

/// `[Projection(value)] <- Aggregate(avg/min/max, no grouping) <- Filter(T.k = outer.o) <- T`
/// with T a plain scan (optionally aliased).
fn group_aggregate(subquery: &Subquery) -> Option<GroupAggregate> {
    let (value, aggregate) = match subquery.subquery.as_ref() {
        LogicalPlan::Projection(p) => match (p.expr.as_slice(), p.input.as_ref()) {
            ([value], LogicalPlan::Aggregate(a)) => (Some(value.clone().unalias()), a),
            _ => return None,
        },
        LogicalPlan::Aggregate(a) => (None, a),
        _ => return None,
    };
    if !aggregate.group_expr.is_empty() || aggregate.aggr_expr.is_empty() {
        return None;
    }
    let LogicalPlan::Filter(correlation) = aggregate.input.as_ref() else {
        return None;
    };
    let scan = plain_scan(correlation.input.as_ref())?;
    let table_schema = correlation.input.schema();
    let [
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }),
    ] = split_conjunction(&correlation.predicate)[..]
    else {
        return None;
    };
    let (key, outer) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(k), Expr::OuterReferenceColumn(_, o))
        | (Expr::OuterReferenceColumn(_, o), Expr::Column(k)) => (k, o),
        _ => return None,
    };
    if !table_schema.has_column(key) {
        return None;
    }
    let mut windows = Vec::new();
    for e in &aggregate.aggr_expr {
        let Expr::AggregateFunction(AggregateFunction { func, params }) = e.clone().unalias()
        else {
            return None;
        };
        let plain = !params.distinct && params.filter.is_none() && params.order_by.is_empty();
        let [arg] = params.args.as_slice() else {
            return None;
        };
        let exact = || {
            arg.get_type(table_schema.as_ref())
                .is_ok_and(|t| t.is_integer() || t.is_decimal())
        };
        if !plain
            || !matches!(func.name(), "avg" | "min" | "max")
            || (func.name() == "avg" && !exact())
            || arg.contains_outer()
            || has_subquery(arg)
            || !arg.column_refs().iter().all(|c| table_schema.has_column(c))
        {
            return None;
        }
        windows.push(WindowFunction::new(func, vec![arg.clone()]));
    }
    // The value over the window columns, which stand for the aggregate's outputs.
    let window_column = |index: usize| Expr::Column(Column::from_name(format!("{GROUP}{index}")));
    let value = match value {
        None if windows.len() == 1 => window_column(0),
        None => return None,
        Some(value) => {
            if value.contains_outer() || has_subquery(&value) {
                return None;
            }
            let mut mapped = true;
            let value = value
                .transform(|e| match e {
                    Expr::Column(c) => match aggregate.schema.index_of_column(&c) {
                        Ok(i) => Ok(Transformed::yes(window_column(i))),
                        Err(_) => {
                            mapped = false;
                            Ok(Transformed::no(Expr::Column(c)))
                        }
                    },
                    other => Ok(Transformed::no(other)),
                })
                .ok()?
                .data;
            if !mapped {
                return None;
            }
            value
        }
    };
    Some(GroupAggregate {
        windows,
        value,
        key: key.name.clone(),
        outer: outer.clone(),
        table: scan.table_name.clone(),
    })
}

/// A scan without filters or limit, directly or under an alias.
fn plain_scan(plan: &LogicalPlan) -> Option<&TableScan> {
    let plan = match plan {
        LogicalPlan::SubqueryAlias(alias) => alias.input.as_ref(),
        other => other,
    };
    match plan {
        LogicalPlan::TableScan(scan) if scan.filters.is_empty() && scan.fetch.is_none() => {
            Some(scan)
        }
        _ => None,
    }
}

fn reads_sql_source(scan: &TableScan) -> bool {
    source_as_provider(&scan.source)
        .map(|p| as_sql_table(p.as_ref()).is_some())
        .unwrap_or(true)
}

/// The inputs of a tree of inner joins (a plan that is no inner join is its own one input) and
/// the joins' conditions (equalities as `l = r`, and filters).
fn inner_join_tree(plan: &LogicalPlan) -> Option<(Vec<&LogicalPlan>, Vec<Expr>)> {
    fn walk<'a>(
        plan: &'a LogicalPlan,
        leaves: &mut Vec<&'a LogicalPlan>,
        conditions: &mut Vec<Expr>,
    ) -> bool {
        match plan {
            LogicalPlan::Join(join) => {
                if join.join_type != JoinType::Inner {
                    return false;
                }
                for (l, r) in &join.on {
                    conditions.push(l.clone().eq(r.clone()));
                }
                conditions.extend(join.filter.iter().cloned());
                walk(&join.left, leaves, conditions) && walk(&join.right, leaves, conditions)
            }
            other => {
                leaves.push(other);
                true
            }
        }
    }
    let (mut leaves, mut conditions) = (Vec::new(), Vec::new());
    walk(plan, &mut leaves, &mut conditions).then_some((leaves, conditions))
}
