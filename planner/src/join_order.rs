//! Join order for regions of inner joins, from estimated row counts.
//!
//! DataFusion joins tables in the order the query names them: `EliminateCrossJoin` rebuilds
//! `FROM a, b, c WHERE ...` left-deep in FROM order, and the physical `JoinSelection` only swaps the
//! two inputs of one join. TPC-H q21 (`supplier, lineitem, orders, nation`) then joins 3.8 million
//! lineitem rows with suppliers of every nation, exchanging them between stages, before the
//! `n_name = 'SAUDI ARABIA'` filter applies through the last join. [`JoinReorder`] orders each
//! region of inner joins greedily, as Trino's and DuckDB's planners do when estimates are all they
//! have: the smallest input first, then always the input connected by a join condition that gives
//! the smallest intermediate result, the smaller side of each join on the left (the build side of
//! a hash join).
//!
//! Estimates ([`estimated_rows`]): a table's row count from its provider's statistics
//! (`TableProvider::statistics`: the lake's file footers, PostgreSQL's `reltuples`, TPC-H's
//! sizes), times a fixed selectivity per filter conjunct (`= constant` one over the column's
//! distinct values or 1/10, a range 1/3, `LIKE` 1/4, ...). An equi-join of `L` and `R` on `l = r`
//! gives `|L| * |R| / min(ndv(l), ndv(r))`, `ndv` being a column's distinct values in its whole
//! table (the statistics' distinct count, else an integer column's value range, else the table's
//! rows): a foreign key joined with the key it references keeps one row per referencing row
//! (`lineitem ⋈ orders` on `orderkey`: lineitem's rows times the fraction of orders kept), and a
//! join on a column with few values multiplies (`customer ⋈ supplier` on `nationkey`: 25 values).
//!
//! A region is left as written when it has fewer than three inputs, when an input has no estimate
//! (a Kafka topic, a system table, an input whose operator is not estimated), or when two of its
//! inputs are tables of one SQL source (`crate::pushdown` then decides whether that join runs at the
//! source, on the query's own order). The new tree sits under a projection restoring the region's
//! column order; a region already in the chosen order is left untouched, so the rule is stable
//! across the optimizer's passes.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, NullEquality, Result, ScalarValue};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::expr::{Between, InList, Like};
use datafusion::logical_expr::utils::{conjunction, split_conjunction, split_conjunction_owned};
use datafusion::logical_expr::{
    BinaryExpr, Expr, Join, JoinConstraint, JoinType, LogicalPlan, Operator, Projection,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use tributary_connectors::sql_source::as_sql_table;

datafusion::common::extensions_options! {
    /// The session's join ordering, as Trino's `join_reordering_strategy` session property:
    /// `AUTOMATIC` orders regions by estimates ([`JoinReorder`]); `ELIMINATE_CROSS_JOINS` and
    /// `NONE` keep the query's order (DataFusion still turns a filtered cross join into joins in
    /// FROM order). Registered in every session ([`crate::session::new_session_context`]); the
    /// front end's `SET join_reordering_strategy` sets it.
    pub struct JoinOrdering {
        /// `AUTOMATIC`, `ELIMINATE_CROSS_JOINS` or `NONE`.
        pub strategy: String, default = "AUTOMATIC".to_string()
        /// Whether aggregates joined on their grouping keys are first reduced to the keys the
        /// join can meet ([`crate::semijoin`]); the front end's `SET semijoin_reduction`.
        pub semijoin_reduction: bool, default = true
    }
}

impl datafusion::common::config::ConfigExtension for JoinOrdering {
    const PREFIX: &'static str = "tributary_join_ordering";
}

impl JoinOrdering {
    /// The values `strategy` takes, as Trino spells them.
    pub const STRATEGIES: &[&str] = &["AUTOMATIC", "ELIMINATE_CROSS_JOINS", "NONE"];

    fn automatic(&self) -> bool {
        self.strategy == "AUTOMATIC"
    }
}

/// The optimizer rule; see the module docs. Placed after DataFusion's `push_down_filter`, when
/// every filter sits on the input it restricts and every join condition on its join. Off when the
/// session's [`JoinOrdering`] is not `AUTOMATIC`.
#[derive(Debug, Default)]
pub struct JoinReorder;

impl OptimizerRule for JoinReorder {
    fn name(&self) -> &str {
        "join_reorder"
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let options = config.options();
        if options
            .extensions
            .get::<JoinOrdering>()
            .is_some_and(|o| !o.automatic())
        {
            return Ok(Transformed::no(plan));
        }
        reorder(plan)
    }
}

/// `rules` (an optimizer's, in order) with [`crate::semijoin::SemiJoinPushdown`],
/// [`JoinReorder`] and [`crate::semijoin::SemiJoinReduction`] right after DataFusion's
/// `push_down_filter` (at the end when there is none).
pub fn after_filter_pushdown(
    rules: Vec<Arc<dyn OptimizerRule + Send + Sync>>,
) -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let at = rules
        .iter()
        .position(|r| r.name() == "push_down_filter")
        .map_or(rules.len(), |i| i + 1);
    let mut rules = rules;
    rules.insert(at, Arc::new(crate::semijoin::SemiJoinPushdown));
    rules.insert(at + 1, Arc::new(JoinReorder));
    rules.insert(at + 2, Arc::new(crate::semijoin::SemiJoinReduction));
    rules
}

/// Most inputs a region is ordered with (orders are searched over all its subsets).
const MAX_INPUTS: usize = 12;

/// Orders every region of `plan`, inner ones (inside a region's inputs) first.
fn reorder(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    if !in_region(&plan) {
        return plan.map_children(reorder);
    }
    let region = map_inputs(plan)?;
    match ordered(&region.data)? {
        Some(ordered) => Ok(Transformed::yes(ordered)),
        None => Ok(region),
    }
}

/// `plan` (a region's top) with [`reorder`] applied to each of the region's inputs.
fn map_inputs(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    if region_join(&plan).is_some() {
        plan.map_children(map_inputs)
    } else {
        reorder(plan)
    }
}

/// Whether `plan` is a join of a region: an inner join comparing keys as SQL does (NULL matches
/// nothing).
fn in_region(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::Join(join)
        if join.join_type == JoinType::Inner
            && join.null_equality == NullEquality::NullEqualsNothing
            && !join.null_aware)
}

/// A join condition of a region, with the inputs (bit masks) each side reads.
#[derive(Debug)]
struct Condition {
    /// `left = right` of an `ON` clause, or one conjunct of a join filter (`right` unused).
    left: Expr,
    right: Option<Expr>,
    left_inputs: u64,
    right_inputs: u64,
    /// Distinct values of each side's column in its table (see the module docs).
    left_ndv: Option<f64>,
    right_ndv: Option<f64>,
    /// Already placed on a join being built.
    used: bool,
}

impl Condition {
    fn inputs(&self) -> u64 {
        self.left_inputs | self.right_inputs
    }
}

/// The region topped by `plan` in the order the module docs give, under a projection restoring its
/// columns; `None` when it is left as written.
fn ordered(plan: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    let mut inputs = Vec::new();
    let mut on = Vec::new();
    let mut filters = Vec::new();
    let shape = flatten(plan, &mut inputs, &mut on, &mut filters);
    if inputs.len() < 3 || inputs.len() > MAX_INPUTS || shares_sql_source(&inputs) {
        return Ok(None);
    }
    let Some(estimates) = inputs
        .iter()
        .map(|i| estimated_rows(i))
        .collect::<Option<Vec<_>>>()
    else {
        return Ok(None);
    };
    let owner = |e: &Expr| -> Option<u64> {
        let mut mask = 0;
        for column in e.column_refs() {
            let i = inputs
                .iter()
                .position(|input| input.schema().has_column(column))?;
            mask |= 1 << i;
        }
        Some(mask)
    };
    let ndv = |e: &Expr, mask: u64| match e {
        Expr::Column(c) if mask.count_ones() == 1 => {
            column_ndv(&inputs[mask.trailing_zeros() as usize], c)
        }
        _ => None,
    };
    // An equality of two disjoint sets of inputs, as a join condition.
    let equality = |l: Expr, r: Expr| -> Option<Condition> {
        let (lm, rm) = (owner(&l)?, owner(&r)?);
        (lm != 0 && rm != 0 && lm & rm == 0).then(|| Condition {
            left_ndv: ndv(&l, lm),
            right_ndv: ndv(&r, rm),
            left: l,
            right: Some(r),
            left_inputs: lm,
            right_inputs: rm,
            used: false,
        })
    };
    let mut conditions = Vec::new();
    // ON pairs, and the filter conjuncts of the form `a = b` that compare two sets of inputs; the
    // other conjuncts are placed where their inputs are.
    let filters = on.into_iter().map(|(l, r)| l.eq(r)).chain(filters);
    for f in filters {
        let Some(mask) = owner(&f) else {
            return Ok(None);
        };
        if let Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) = &f
            && let Some(condition) = equality(left.as_ref().clone(), right.as_ref().clone())
        {
            conditions.push(condition);
            continue;
        }
        conditions.push(Condition {
            left: f,
            right: None,
            left_inputs: mask,
            right_inputs: 0,
            left_ndv: None,
            right_ndv: None,
            used: false,
        });
    }
    // Conditions in one order whatever order the region had, so that ordering it again builds the
    // same tree.
    conditions.sort_by_cached_key(|c| {
        format!(
            "{}{}",
            c.left,
            c.right
                .as_ref()
                .map(|r| format!(" = {r}"))
                .unwrap_or_default()
        )
    });
    // Ties between inputs go to the one whose columns sort first (not to positions, which this
    // rule changes).
    let keys: Vec<String> = inputs
        .iter()
        .map(|i| {
            let mut names: Vec<String> =
                i.schema().columns().iter().map(|c| c.flat_name()).collect();
            names.sort();
            names.join(",")
        })
        .collect();
    let better = |a: (f64, usize), b: (f64, usize)| {
        a.0 < b.0 || (a.0 == b.0 && (keys[a.1].as_str(), a.1) < (keys[b.1].as_str(), b.1))
    };

    let n = inputs.len();
    let full: u64 = (1 << n) - 1;
    // What each input keeps of its table(s): estimate over rows before filters.
    let kept: Vec<f64> = inputs
        .iter()
        .zip(&estimates)
        .map(|(input, rows)| (rows / unfiltered_rows(input).unwrap_or(*rows)).min(1.0))
        .collect();
    let classes = Classes::new(&conditions, &estimates);
    let rows_of = |set: u64| classes.rows(set, &estimates, &kept);
    // Left-deep orders by dynamic programming over sets of inputs (Selinger's): the cheapest order
    // of a set extends the cheapest order of the set without one input joined to it by a
    // condition; cost is the sum of the estimated rows of every join. Cross joins only when the
    // conditions do not connect the region.
    let mut best: Vec<Option<(f64, usize)>> = vec![None; 1 << n];
    for cross in [false, true] {
        for i in 0..n {
            best[1 << i] = Some((0.0, i));
        }
        for set in 1..=full {
            if set.count_ones() < 2 {
                continue;
            }
            let rows = rows_of(set);
            let mut chosen: Option<(f64, usize)> = None;
            for i in (0..n).filter(|i| set & (1 << i) != 0) {
                let rest = set & !(1 << i);
                let Some((rest_cost, _)) = best[rest as usize] else {
                    continue;
                };
                if !cross && !connected(&conditions, rest, i) && classes.pairs(rest, i).is_empty() {
                    continue;
                }
                let cost = rest_cost + rows;
                if chosen.is_none_or(|(c, j)| better((cost, i), (c, j))) {
                    chosen = Some((cost, i));
                }
            }
            best[set as usize] = chosen;
        }
        if best[full as usize].is_some() {
            break;
        }
    }
    let mut order = Vec::with_capacity(n);
    let mut set = full;
    while set != 0 {
        let Some((_, last)) = best[set as usize] else {
            return Ok(None);
        };
        order.push((last, rows_of(set)));
        set &= !(1 << last);
    }
    order.reverse();

    let first = order[0].0;
    let mut tree = Arc::clone(&inputs[first]);
    let mut tree_shape = first.to_string();
    let mut joined: u64 = 1 << first;
    let mut tree_rows = estimates[first];
    for &(next, out) in &order[1..] {
        let next_mask = 1u64 << next;
        let mut join_on = Vec::new();
        let mut join_filter = Vec::new();
        for c in conditions.iter_mut().filter(|c| !c.used) {
            if c.inputs() & !(joined | next_mask) != 0 {
                continue;
            }
            c.used = true;
            match &c.right {
                Some(r) if c.left_inputs & !joined == 0 && c.right_inputs & !next_mask == 0 => {
                    join_on.push((c.left.clone(), r.clone()))
                }
                Some(r) if c.left_inputs & !next_mask == 0 && c.right_inputs & !joined == 0 => {
                    join_on.push((r.clone(), c.left.clone()))
                }
                Some(r) => join_filter.push(c.left.clone().eq(r.clone())),
                None => join_filter.push(c.left.clone()),
            }
        }
        // Equalities implied by the classes and not given (`c_nationkey = n_nationkey` from
        // `c_nationkey = s_nationkey AND s_nationkey = n_nationkey`).
        for (class, joined_column, column) in classes.pairs(joined, next) {
            let given = join_on.iter().any(|(a, b)| {
                classes.class_of(a) == Some(class) && classes.class_of(b) == Some(class)
            });
            if !given {
                join_on.push((joined_column, column));
            }
        }
        let input = Arc::clone(&inputs[next]);
        // The smaller side builds: on the left.
        let (left, right) = if estimates[next] < tree_rows {
            join_on = join_on.into_iter().map(|(a, b)| (b, a)).collect();
            tree_shape = format!("({next} {tree_shape} )");
            (input, tree)
        } else {
            tree_shape = format!("({tree_shape} {next} )");
            (tree, input)
        };
        tree = Arc::new(LogicalPlan::Join(Join::try_new(
            left,
            right,
            join_on,
            conjunction(join_filter),
            JoinType::Inner,
            JoinConstraint::On,
            NullEquality::NullEqualsNothing,
            false,
        )?));
        joined |= next_mask;
        tree_rows = out;
    }
    if conditions.iter().any(|c| !c.used) || tree_shape == shape {
        return Ok(None);
    }
    Ok(Some(LogicalPlan::Projection(Projection::new_from_schema(
        tree,
        Arc::clone(plan.schema()),
    ))))
}

/// Collects the inputs, equi-join pairs and filter conjuncts of the region topped by `plan` (a join
/// of the region, or a projection of columns over one), and returns the region's shape: `(l r)`
/// per join, an input's position in `inputs` for an input.
fn flatten(
    plan: &LogicalPlan,
    inputs: &mut Vec<Arc<LogicalPlan>>,
    on: &mut Vec<(Expr, Expr)>,
    filters: &mut Vec<Expr>,
) -> String {
    let join = match region_join(plan) {
        Some(LogicalPlan::Join(join)) => join,
        _ => return String::new(),
    };
    let mut shape = String::from("(");
    for side in [&join.left, &join.right] {
        if region_join(side).is_some() {
            shape.push_str(&flatten(side, inputs, on, filters));
        } else {
            shape.push_str(&inputs.len().to_string());
            inputs.push(Arc::clone(side));
        }
        shape.push(' ');
    }
    shape.push(')');
    on.extend(join.on.iter().cloned());
    if let Some(filter) = &join.filter {
        filters.extend(split_conjunction_owned(filter.clone()));
    }
    shape
}

/// The join of a region `plan` is, or stands for: `plan` itself, or the join below projections of
/// plain columns (DataFusion's projection pushdown puts them between joins to drop columns; the
/// region's columns are restored above it and pruned again).
fn region_join(plan: &LogicalPlan) -> Option<&LogicalPlan> {
    match plan {
        _ if in_region(plan) => Some(plan),
        LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
            region_join(&p.input)
        }
        _ => None,
    }
}

/// Whether two of `inputs` read tables of one SQL source.
pub(crate) fn shares_sql_source(inputs: &[Arc<LogicalPlan>]) -> bool {
    let mut seen = HashSet::new();
    let mut shared = false;
    for input in inputs {
        let mut here = HashSet::new();
        let _ = input.apply(|node| {
            if let LogicalPlan::TableScan(scan) = node
                && let Ok(provider) = source_as_provider(&scan.source)
                && let Some(table) = as_sql_table(provider.as_ref())
            {
                here.insert(table.sql_source().id());
            }
            Ok(TreeNodeRecursion::Continue)
        });
        for id in here {
            shared |= !seen.insert(id);
        }
    }
    shared
}

/// Whether input `i` is joined to the inputs `set` by an equality given between them.
fn connected(conditions: &[Condition], set: u64, i: usize) -> bool {
    let mask = 1u64 << i;
    conditions.iter().any(|c| {
        c.right.is_some()
            && ((c.left_inputs & !set == 0 && c.right_inputs == mask)
                || (c.right_inputs & !set == 0 && c.left_inputs == mask))
    })
}

/// The columns a region's equalities equate, in classes (`c_nationkey = s_nationkey AND
/// s_nationkey = n_nationkey`: one class of three), and the equalities of computed values.
struct Classes {
    /// Each equated column: its input, the column, its distinct values, its class.
    members: Vec<(usize, Expr, f64, usize)>,
    /// The inputs (bit masks) of each equality of computed values.
    computed: Vec<u64>,
}

impl Classes {
    fn new(conditions: &[Condition], estimates: &[f64]) -> Self {
        // Union-find over the equated columns.
        let mut members: Vec<(usize, Expr, f64, usize)> = Vec::new();
        let mut computed = Vec::new();
        fn root(members: &mut [(usize, Expr, f64, usize)], mut x: usize) -> usize {
            while members[x].3 != x {
                members[x].3 = members[members[x].3].3;
                x = members[x].3;
            }
            x
        }
        for c in conditions {
            let Some(right) = &c.right else { continue };
            let sides = [
                (&c.left, c.left_inputs, c.left_ndv),
                (right, c.right_inputs, c.right_ndv),
            ];
            if !sides
                .iter()
                .all(|(e, m, _)| matches!(e, Expr::Column(_)) && m.count_ones() == 1)
            {
                computed.push(c.inputs());
                continue;
            }
            let ids = sides.map(|(e, m, ndv)| {
                let input = m.trailing_zeros() as usize;
                match members.iter().position(|(i, x, ..)| *i == input && x == e) {
                    Some(id) => id,
                    None => {
                        let id = members.len();
                        members.push((input, e.clone(), ndv.unwrap_or(estimates[input]), id));
                        id
                    }
                }
            });
            let (a, b) = (root(&mut members, ids[0]), root(&mut members, ids[1]));
            members[a].3 = b;
        }
        for x in 0..members.len() {
            let r = root(&mut members, x);
            members[x].3 = r;
        }
        Self { members, computed }
    }

    /// The estimated rows of joining a set of inputs (a bit mask), whatever the order: the
    /// product of the inputs' estimates divided, for each class, by the distinct values of all
    /// its columns in the set but the one with the most (two columns: by the fewer, see the module
    /// docs; `c_nationkey = s_nationkey = n_nationkey` by 25 twice). An equality of computed
    /// values keeps 1/10; other conditions are not counted.
    ///
    /// Never fewer than the rows the largest input would keep if every join were a lookup of a key
    /// in another input (a foreign key meeting its key: lineitem's rows times what the filters of
    /// part and partsupp keep, `kept`): equalities on several columns of one key (`l_partkey =
    /// ps_partkey AND l_suppkey = ps_suppkey`) are not independent, and dividing by both would
    /// make lineitem's 6M rows 600.
    fn rows(&self, set: u64, estimates: &[f64], kept: &[f64]) -> f64 {
        let mut rows: f64 = (0..estimates.len())
            .filter(|i| set & (1 << i) != 0)
            .map(|i| estimates[i])
            .product();
        let mut classes: Vec<(usize, f64)> = self
            .members
            .iter()
            .filter(|(input, ..)| set & (1 << input) != 0)
            .map(|(_, _, ndv, class)| (*class, ndv.max(1.0)))
            .collect();
        // By class, the most distinct values first.
        classes.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
        for (k, (class, ndv)) in classes.iter().enumerate() {
            if k > 0 && classes[k - 1].0 == *class {
                rows /= ndv;
            }
        }
        for mask in &self.computed {
            if mask & !set == 0 {
                rows *= 0.1;
            }
        }
        let members = || (0..estimates.len()).filter(|i| set & (1 << i) != 0);
        let lookups = members()
            .map(|i| {
                estimates[i]
                    * members()
                        .filter(|j| *j != i)
                        .map(|j| kept[j])
                        .product::<f64>()
            })
            .fold(0.0, f64::max);
        rows.max(lookups).max(1.0)
    }

    /// For each class with columns in the inputs `set` and in input `i`, one column of each: the
    /// equalities joining `i` to `set` (given or implied).
    fn pairs(&self, set: u64, i: usize) -> Vec<(usize, Expr, Expr)> {
        let mut pairs: Vec<(usize, Expr, Expr)> = Vec::new();
        for (input, column, _, class) in &self.members {
            if *input != i || pairs.iter().any(|(c, ..)| c == class) {
                continue;
            }
            if let Some((_, joined, ..)) = self
                .members
                .iter()
                .find(|(other, _, _, c)| c == class && set & (1 << other) != 0)
            {
                pairs.push((*class, joined.clone(), column.clone()));
            }
        }
        pairs
    }

    /// The class of column `e` (qualified: a column belongs to one input).
    fn class_of(&self, e: &Expr) -> Option<usize> {
        self.members.iter().find(|(_, x, ..)| x == e).map(|m| m.3)
    }
}

/// The estimated rows of `plan`; `None` where an input has no statistics or an operator is not
/// estimated.
pub(crate) fn estimated_rows(plan: &LogicalPlan) -> Option<f64> {
    let rows = match plan {
        LogicalPlan::TableScan(scan) => {
            let provider = source_as_provider(&scan.source).ok()?;
            let statistics = provider.statistics()?;
            let mut rows = *statistics.num_rows.get_value()? as f64;
            for filter in &scan.filters {
                rows *= selectivity(filter, Some(plan));
            }
            if let Some(fetch) = scan.fetch {
                rows = rows.min(fetch as f64);
            }
            rows
        }
        LogicalPlan::Filter(filter) => {
            let input = estimated_rows(&filter.input)?;
            // Filters a table's scan also holds (inexact pushdown) count once.
            let pushed: &[Expr] = match filter.input.as_ref() {
                LogicalPlan::TableScan(scan) => &scan.filters,
                _ => &[],
            };
            split_conjunction(&filter.predicate)
                .into_iter()
                .filter(|c| !pushed.contains(c))
                .fold(input, |rows, c| {
                    rows * selectivity(c, Some(filter.input.as_ref()))
                })
        }
        LogicalPlan::Projection(p) => estimated_rows(&p.input)?,
        LogicalPlan::SubqueryAlias(a) => estimated_rows(&a.input)?,
        LogicalPlan::Repartition(r) => estimated_rows(&r.input)?,
        LogicalPlan::Window(w) => estimated_rows(&w.input)?,
        LogicalPlan::Sort(s) => match s.fetch {
            Some(fetch) => estimated_rows(&s.input)?.min(fetch as f64),
            None => estimated_rows(&s.input)?,
        },
        LogicalPlan::Limit(l) => match l.get_fetch_type().ok()? {
            datafusion::logical_expr::FetchType::Literal(Some(fetch)) => {
                estimated_rows(&l.input)?.min(fetch as f64)
            }
            _ => estimated_rows(&l.input)?,
        },
        LogicalPlan::Aggregate(a) if a.group_expr.is_empty() => 1.0,
        LogicalPlan::Aggregate(a) => estimated_rows(&a.input)? / 10.0,
        LogicalPlan::Distinct(d) => estimated_rows(d.input())?,
        LogicalPlan::Union(u) => u
            .inputs
            .iter()
            .map(|i| estimated_rows(i))
            .sum::<Option<f64>>()?,
        LogicalPlan::Values(v) => v.values.len() as f64,
        LogicalPlan::EmptyRelation(e) => f64::from(u8::from(e.produce_one_row)),
        LogicalPlan::Join(join) => {
            let (left, right) = (estimated_rows(&join.left)?, estimated_rows(&join.right)?);
            match join.join_type {
                JoinType::Inner => {
                    let divisor = join
                        .on
                        .iter()
                        .map(|(l, r)| {
                            let ndv = |e: &Expr, side: &LogicalPlan, rows: f64| match e {
                                Expr::Column(c) => column_ndv(side, c).unwrap_or(rows),
                                _ => rows,
                            };
                            ndv(l, &join.left, left).min(ndv(r, &join.right, right))
                        })
                        .fold(None, |d: Option<f64>, x| Some(d.map_or(x, |d| d.max(x))));
                    match divisor {
                        Some(d) => left * right / d.max(1.0),
                        None => left * right,
                    }
                }
                JoinType::Left | JoinType::LeftMark => left,
                JoinType::Right | JoinType::RightMark => right,
                JoinType::Full => left + right,
                // A semi join on one key keeps as many of the left's keys as the right has rows
                // (at most all of them).
                JoinType::LeftSemi => match join.on.as_slice() {
                    [(Expr::Column(key), _)] => match column_ndv(&join.left, key) {
                        Some(ndv) => left * (right / ndv.max(1.0)).min(1.0),
                        None => left / 2.0,
                    },
                    _ => left / 2.0,
                },
                JoinType::LeftAnti => left / 2.0,
                JoinType::RightSemi | JoinType::RightAnti => right / 2.0,
            }
        }
        _ => return None,
    };
    Some(rows.max(1.0))
}

/// The rows of `plan` before its filters: a table's rows under filters, projections and aliases;
/// the estimate of anything else.
pub(crate) fn unfiltered_rows(plan: &LogicalPlan) -> Option<f64> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let provider = source_as_provider(&scan.source).ok()?;
            Some(*provider.statistics()?.num_rows.get_value()? as f64)
        }
        LogicalPlan::Filter(f) => unfiltered_rows(&f.input),
        LogicalPlan::Projection(p) => unfiltered_rows(&p.input),
        LogicalPlan::SubqueryAlias(a) => unfiltered_rows(&a.input),
        _ => estimated_rows(plan),
    }
}

/// The distinct values of `column` (an output column of `plan`) in the table it comes from, before
/// filters: the statistics' distinct count, else an integer or date column's value range, else the
/// table's rows; an aggregate's grouping column has as many as the aggregate's rows. `None` when
/// the column is computed.
pub(crate) fn column_ndv(plan: &LogicalPlan, column: &Column) -> Option<f64> {
    distinct_values(plan, column).map(Ndv::value)
}

/// A column's distinct values: known from statistics, or only bounded by its table's rows.
#[derive(Debug, Clone, Copy)]
enum Ndv {
    Known(f64),
    AtMost(f64),
}

impl Ndv {
    fn value(self) -> f64 {
        match self {
            Ndv::Known(v) | Ndv::AtMost(v) => v,
        }
    }
}

/// [`column_ndv`], saying whether statistics gave it.
fn distinct_values(plan: &LogicalPlan, column: &Column) -> Option<Ndv> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let provider = source_as_provider(&scan.source).ok()?;
            let statistics = provider.statistics()?;
            let table_rows = *statistics.num_rows.get_value()? as f64;
            if column
                .relation
                .as_ref()
                .is_some_and(|r| !r.resolved_eq(&scan.table_name))
            {
                return None;
            }
            let known = scan
                .source
                .schema()
                .index_of(&column.name)
                .ok()
                .and_then(|index| statistics.column_statistics.get(index))
                .and_then(|stats| match stats.distinct_count.get_value() {
                    Some(distinct) => Some(*distinct as f64),
                    None => match (stats.min_value.get_value(), stats.max_value.get_value()) {
                        (Some(min), Some(max)) => integer(max)
                            .zip(integer(min))
                            .map(|(max, min)| (max - min + 1) as f64),
                        _ => None,
                    },
                });
            match known {
                Some(ndv) => Some(Ndv::Known(ndv.min(table_rows).max(1.0))),
                None => Some(Ndv::AtMost(table_rows.max(1.0))),
            }
        }
        LogicalPlan::Projection(p) => {
            let index = p.schema.index_of_column(column).ok()?;
            match p.expr.get(index)?.clone().unalias() {
                Expr::Column(c) => distinct_values(&p.input, &c),
                _ => None,
            }
        }
        LogicalPlan::SubqueryAlias(a) => {
            let index = a.schema.index_of_column(column).ok()?;
            let (qualifier, field) = a.input.schema().qualified_field(index);
            distinct_values(&a.input, &Column::new(qualifier.cloned(), field.name()))
        }
        LogicalPlan::Aggregate(a) => {
            let index = a.schema.index_of_column(column).ok()?;
            (index < a.group_expr.len())
                .then(|| estimated_rows(plan).map(Ndv::Known))
                .flatten()
        }
        LogicalPlan::Join(j) => [&j.left, &j.right]
            .into_iter()
            .find(|side| side.schema().has_column(column))
            .and_then(|side| distinct_values(side, column)),
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Repartition(_)
        | LogicalPlan::Distinct(_)
        | LogicalPlan::Window(_) => {
            let input = plan.inputs().into_iter().next()?;
            distinct_values(input, column)
        }
        _ => None,
    }
}

/// An integer or date value as an `i64` (Arrow's cast; other types have no countable range).
fn integer(value: &ScalarValue) -> Option<i64> {
    let ty = value.data_type();
    if !(ty.is_integer() || ty == DataType::Date32) {
        return None;
    }
    match value.cast_to(&DataType::Int64).ok()? {
        ScalarValue::Int64(v) => v,
        _ => None,
    }
}

/// The fraction of rows a filter conjunct keeps (fixed guesses, as planners without histograms
/// use); `input` gives distinct counts for `column = constant`.
fn selectivity(e: &Expr, input: Option<&LogicalPlan>) -> f64 {
    let s = match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => selectivity(left, input) * selectivity(right, input),
            Operator::Or => {
                let (a, b) = (selectivity(left, input), selectivity(right, input));
                a + b - a * b
            }
            Operator::Eq => match (left.as_ref(), right.as_ref()) {
                (Expr::Column(c), Expr::Literal(..)) | (Expr::Literal(..), Expr::Column(c)) => {
                    match input.and_then(|i| distinct_values(i, c)) {
                        Some(Ndv::Known(ndv)) => 1.0 / ndv,
                        _ => 0.1,
                    }
                }
                _ => 0.1,
            },
            Operator::NotEq => 0.9,
            Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => 1.0 / 3.0,
            _ => 0.5,
        },
        Expr::Between(Between { negated, .. }) => negate(0.25, *negated),
        Expr::InList(InList { list, negated, .. }) => {
            negate((0.1 * list.len() as f64).min(0.5), *negated)
        }
        Expr::Like(Like { negated, .. }) | Expr::SimilarTo(Like { negated, .. }) => {
            negate(0.25, *negated)
        }
        Expr::IsNull(_) => 0.1,
        Expr::IsNotNull(_) => 0.9,
        Expr::Not(inner) => 1.0 - selectivity(inner, input),
        Expr::Literal(ScalarValue::Boolean(Some(true)), _) => 1.0,
        Expr::Literal(ScalarValue::Boolean(Some(false)), _) => 0.0,
        _ => 0.5,
    };
    s.clamp(0.0, 1.0)
}

fn negate(s: f64, negated: bool) -> f64 {
    if negated { 1.0 - s } else { s }
}
