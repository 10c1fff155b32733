//! The order in which a filter's conjuncts are evaluated: cheap, selective ones first.
//!
//! DataFusion evaluates `a AND b` by computing `a` over the whole batch and then `b`, over the
//! whole batch too unless `a` kept at most a fifth of its rows (then over those rows alone:
//! `BinaryExpr`'s pre-selection). Conjuncts stay in the order the query wrote them, so TPC-H q12's
//! `l_shipmode IN ('MAIL', 'SHIP') AND l_commitdate < l_receiptdate AND l_shipdate < l_commitdate
//! AND l_receiptdate >= date '1994-01-01' AND l_receiptdate < date '1995-01-01'` compares two
//! strings in each of lineitem's 6 million rows (most of the filter's 150 ms of CPU) before the
//! date range that keeps 15% of them. [`ConjunctOrder`] sorts each `FilterExec`'s conjuncts by
//! the fraction of rows they drop per unit of cost, as DuckDB's filter reordering and PostgreSQL's
//! `order_qual_clauses` (by cost) do, so that the range comes first and the string comparisons
//! run over the rows it keeps.
//!
//! Selectivity: DataFusion's interval analysis over the input's column statistics (min/max, the
//! lake's Parquet footers) for conjuncts over one numeric or temporal column, taken together for
//! conjuncts on the same column (a range `>= x AND < y`, which stay next to each other); else the
//! fixed guesses of [`crate::join_order`] (`= constant` 1/10, a range 1/3, `LIKE` 1/4, ...).
//! Cost, relative to comparing a date column with a constant (measured over lineitem's 6M rows,
//! SF1, release build: 0.7 ns a row): 1.5 for a decimal column, 6 for a string or binary one
//! (comparing string views branches per row: `l_shipmode = 'MAIL'` 5 ns a row), more for `LIKE`
//! and function calls. Orders of up to six groups are costed as DataFusion will evaluate them
//! (see [`simulated`]); longer filters go by rows dropped per unit of cost.
//!
//! Where the conjuncts so far keep at most a fifth of the rows and two or more follow, the filter is
//! cut in two, the later conjuncts in a filter of their own over the earlier one (see
//! [`split_points`]): DataFusion would otherwise copy the kept rows and scatter each later
//! conjunct's answer back, once per conjunct. q06's lineitem filter is the date range, then the
//! discount and quantity conjuncts over the 15% of rows it keeps (q06 0.107 -> 0.089 s, q12 0.114
//! -> 0.094 s).
//!
//! `AND` is commutative in SQL's three-valued logic, and PostgreSQL leaves the evaluation order of
//! a WHERE clause's conjuncts undefined. Still, only filters made of expressions that cannot fail
//! (columns, constants, comparisons, `AND`/`OR`/`NOT`, `IN` lists, `LIKE`, `IS [NOT] NULL`) are
//! reordered, so that a guard such as `x <> 0 AND 10 / x > 1` keeps protecting what follows it.
//!
//! And it does protect it: PostgreSQL and Trino evaluate a row's conjuncts left to right and stop
//! at the first false one, so that query answers there, where DataFusion divided every row by `x`
//! and failed with "division by zero". In a filter whose conjunct after the first can fail, that
//! conjunct and the ones after it are evaluated only over the rows the conjuncts before it keep:
//! `p AND CASE WHEN p THEN rest ELSE false END` (DataFusion's `CASE` evaluates its `THEN` over the
//! rows its `WHEN` selects; `p` also stays a conjunct of its own, so that what DataFusion derived
//! from it, constant columns or orderings, still holds). A row passes exactly when every conjunct
//! is true, as before.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::analysis::{AnalysisContext, analyze};
use datafusion::physical_expr::expressions::{
    BinaryExpr, CaseExpr, CastExpr, Column, InListExpr, IsNotNullExpr, IsNullExpr, LikeExpr,
    Literal, NotExpr, lit,
};
use datafusion::physical_expr::scalar_subquery::ScalarSubqueryExpr;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::{PhysicalExpr, conjunction, split_conjunction};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};

/// The physical optimizer rule; see the module docs. It runs last, once filters sit where they
/// apply.
#[derive(Debug, Default)]
pub struct ConjunctOrder;

impl PhysicalOptimizerRule for ConjunctOrder {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(filter) = node.downcast_ref::<FilterExec>() else {
                return Ok(Transformed::no(node));
            };
            // What the plan above was built on (constant and equal columns, orderings) must still
            // hold; a guard can hide a fallible conjunct's equalities inside its `CASE`.
            let same =
                |plan: &dyn ExecutionPlan| plan.properties().equivalence_properties().to_string();
            if let Some(ordered) = ordered(filter.predicate(), filter.input()) {
                let splits = split_points(&ordered.kept_after);
                let mut attempts = Vec::new();
                if !splits.is_empty() {
                    attempts.push(splits);
                }
                if ordered.changed {
                    attempts.push(Vec::new());
                }
                for splits in attempts {
                    let rebuilt = cascade(filter, &ordered.conjuncts, &splits)?;
                    if same(rebuilt.as_ref()) == same(filter) {
                        return Ok(Transformed::yes(rebuilt));
                    }
                }
                return Ok(Transformed::no(node));
            }
            let Some(predicate) = guarded(filter.predicate(), &filter.input().schema())? else {
                return Ok(Transformed::no(node));
            };
            let rebuilt = FilterExecBuilder::from(filter)
                .with_predicate(predicate)
                .build()?;
            if same(&rebuilt) != same(filter) {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(Arc::new(rebuilt) as _))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "conjunct_order"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// A group of conjuncts placed together: one conjunct, or the conjuncts on one numeric or temporal
/// column (in their written order).
struct Group<'a> {
    members: Vec<&'a Arc<dyn PhysicalExpr>>,
    /// Estimated fraction of rows each member keeps on its own, in [0, 1].
    member_kept: Vec<f64>,
    /// Estimated fraction of rows the whole group keeps, in [0, 1].
    kept: f64,
    /// Each member's cost per row (see [`cost`]).
    member_cost: Vec<f64>,
}

impl Group<'_> {
    /// Rows dropped per unit of cost: the higher, the earlier (the order for many groups).
    fn rank(&self) -> f64 {
        (1.0 - self.kept) / self.member_cost.iter().sum::<f64>().max(0.5)
    }
}

/// The largest share of a batch's rows for which DataFusion evaluates the right side of an `AND`
/// over the selected rows only (`BinaryExpr`'s `PRE_SELECTION_THRESHOLD`).
const PRE_SELECTION: f64 = 0.2;

/// Up to this many groups every order is costed; beyond, groups go by [`Group::rank`].
const EXHAUSTIVE: usize = 6;

/// For each member of the groups in `order`, in that order: its cost per row and the estimated
/// fraction of the filter's input rows left after it (within a group each member's own fraction
/// multiplies in; after a group's last member, the group's joint estimate).
fn cascaded(groups: &[Group], order: &[usize]) -> Vec<(f64, f64)> {
    let mut steps = Vec::new();
    let mut kept = 1.0;
    for &g in order {
        let group = &groups[g];
        let before = kept;
        let members = group.member_cost.iter().zip(&group.member_kept);
        for (i, (cost, member_kept)) in members.enumerate() {
            kept = if i + 1 == group.members.len() {
                before * group.kept
            } else {
                kept * member_kept
            };
            steps.push((*cost, kept));
        }
    }
    steps
}

/// Estimated cost per input row of evaluating the groups in `order` as DataFusion does: each
/// conjunct over the whole batch, or over the rows kept so far once they are at most
/// [`PRE_SELECTION`] of it.
fn simulated(groups: &[Group], order: &[usize]) -> f64 {
    let share = |kept: f64| if kept <= PRE_SELECTION { kept } else { 1.0 };
    let mut total = 0.0;
    let mut kept = 1.0;
    for (cost, after) in cascaded(groups, order) {
        total += cost * share(kept);
        kept = after;
    }
    total
}

/// The order of `groups` with the lowest [`simulated`] cost, preferring the written order (and
/// orders closer to it) unless another is at least 1% cheaper.
fn cheapest(groups: &[Group]) -> Vec<usize> {
    fn search(
        groups: &[Group],
        prefix: &mut Vec<usize>,
        used: &mut Vec<bool>,
        best: &mut (f64, Vec<usize>),
    ) {
        if prefix.len() == groups.len() {
            let cost = simulated(groups, prefix);
            if cost < best.0 * 0.99 {
                *best = (cost, prefix.clone());
            }
            return;
        }
        for g in 0..groups.len() {
            if !used[g] {
                used[g] = true;
                prefix.push(g);
                search(groups, prefix, used, best);
                prefix.pop();
                used[g] = false;
            }
        }
    }
    let written: Vec<usize> = (0..groups.len()).collect();
    if groups.len() > EXHAUSTIVE {
        let mut order = written;
        order.sort_by(|&a, &b| {
            groups[b]
                .rank()
                .partial_cmp(&groups[a].rank())
                .unwrap_or(Ordering::Equal)
        });
        return order;
    }
    let mut best = (simulated(groups, &written), written);
    search(
        groups,
        &mut Vec::new(),
        &mut vec![false; groups.len()],
        &mut best,
    );
    best.1
}

/// A filter's conjuncts in the order to evaluate them.
struct Ordered<'a> {
    conjuncts: Vec<&'a Arc<dyn PhysicalExpr>>,
    /// For each conjunct, the estimated fraction of the filter's input rows left after it and the
    /// ones before it, in [0, 1].
    kept_after: Vec<f64>,
    /// Whether the order differs from the written one.
    changed: bool,
}

/// `predicate`'s conjuncts in the order to evaluate them, or `None` when it has one conjunct or a
/// conjunct that could fail.
fn ordered<'a>(
    predicate: &'a Arc<dyn PhysicalExpr>,
    input: &Arc<dyn ExecutionPlan>,
) -> Option<Ordered<'a>> {
    let conjuncts = split_conjunction(predicate);
    let schema = input.schema();
    if conjuncts.len() < 2 || !conjuncts.iter().all(|c| infallible(c.as_ref(), &schema)) {
        return None;
    }
    let statistics = StatisticsContext::new()
        .compute(input.as_ref(), &StatisticsArgs::new())
        .ok();
    let analyzed = |exprs: &[&Arc<dyn PhysicalExpr>]| -> Option<f64> {
        let statistics = statistics.as_ref()?;
        let context =
            AnalysisContext::try_from_statistics(&schema, &statistics.column_statistics).ok()?;
        let expr = conjunction(exprs.iter().map(|e| Arc::clone(*e)));
        analyze(&expr, context, &schema).ok()?.selectivity
    };

    // Conjuncts over one numeric or temporal column with known bounds (else the analysis keeps
    // every row), by column, with the fraction each keeps on its own.
    let mut by_column: BTreeMap<usize, Vec<(usize, f64)>> = BTreeMap::new();
    let bounded = |column: usize| {
        statistics
            .as_ref()
            .and_then(|s| s.column_statistics.get(column))
            .is_some_and(|c| c.min_value.get_value().is_some() && c.max_value.get_value().is_some())
    };
    for (i, c) in conjuncts.iter().enumerate() {
        if let Some(column) = single_ordered_column(c, &schema)
            && bounded(column)
            && let Some(kept) = analyzed(&[c])
        {
            by_column.entry(column).or_default().push((i, kept));
        }
    }
    // Groups in the written order of their first conjunct.
    let mut groups: Vec<(usize, Group)> = Vec::new();
    let mut grouped = vec![false; conjuncts.len()];
    for members in by_column.values() {
        let exprs: Vec<_> = members.iter().map(|&(i, _)| conjuncts[i]).collect();
        let kept = analyzed(&exprs).unwrap_or_else(|| members.iter().map(|m| m.1).product());
        for &(i, _) in members {
            grouped[i] = true;
        }
        groups.push((
            members[0].0,
            Group {
                member_cost: exprs.iter().map(|e| cost(e.as_ref(), &schema)).collect(),
                member_kept: members.iter().map(|m| m.1.clamp(0.0, 1.0)).collect(),
                kept: kept.clamp(0.0, 1.0),
                members: exprs,
            },
        ));
    }
    for (i, c) in conjuncts.iter().enumerate() {
        if !grouped[i] {
            let kept = guessed(c.as_ref());
            groups.push((
                i,
                Group {
                    members: vec![c],
                    member_kept: vec![kept],
                    kept,
                    member_cost: vec![cost(c.as_ref(), &schema)],
                },
            ));
        }
    }
    groups.sort_by_key(|(first, _)| *first);
    let groups: Vec<Group> = groups.into_iter().map(|(_, g)| g).collect();
    let order = cheapest(&groups);
    let kept_after = cascaded(&groups, &order)
        .into_iter()
        .map(|(_, kept)| kept)
        .collect();
    let order: Vec<&Arc<dyn PhysicalExpr>> = order
        .into_iter()
        .flat_map(|g| groups[g].members.iter().copied())
        .collect();
    let changed = !order.iter().zip(&conjuncts).all(|(a, b)| Arc::ptr_eq(a, b));
    Some(Ordered {
        conjuncts: order,
        kept_after,
        changed,
    })
}

/// Where to cut a filter's ordered conjuncts into a cascade of filters, as positions (a cut at `i`
/// starts a new filter at conjunct `i`), from each conjunct's estimated `kept_after` (see
/// [`Ordered`]).
///
/// Once the conjuncts before keep at most [`PRE_SELECTION`] of a batch, DataFusion evaluates each
/// later `AND` over a copy of the kept rows (all the batch's columns) and scatters the answer back
/// into a mask as long as the batch (`BinaryExpr`'s `pre_selection_scatter`, a row at a time): once
/// per later conjunct. A filter of its own for the later conjuncts, over the rows the earlier ones
/// keep, copies those rows once and evaluates the later conjuncts over them with no scatter. TPC-H
/// q06's `l_shipdate` range keeps 15% of lineitem; three conjuncts on `l_discount` and
/// `l_quantity` follow. A cut is made where at least two conjuncts follow (with one, the one copy
/// and scatter DataFusion makes cost about what the second filter does).
fn split_points(kept_after: &[f64]) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut base = 1.0;
    for (i, kept) in kept_after.iter().enumerate() {
        let rest = kept_after.len() - (i + 1);
        if rest >= 2 && *kept <= base * PRE_SELECTION {
            cuts.push(i + 1);
            base = *kept;
        }
    }
    cuts
}

/// `filter` rebuilt over `conjuncts` (its own, in the order given) as a cascade: one filter per
/// range between `cuts` (see [`split_points`]), each over the one before; the last one keeps
/// `filter`'s projection and fetch.
///
/// Errors: DataFusion's, building a filter.
fn cascade(
    filter: &FilterExec,
    conjuncts: &[&Arc<dyn PhysicalExpr>],
    cuts: &[usize],
) -> Result<Arc<dyn ExecutionPlan>> {
    let of = |range: &[&Arc<dyn PhysicalExpr>]| conjunction(range.iter().map(|c| Arc::clone(*c)));
    let mut input = Arc::clone(filter.input());
    let mut start = 0;
    for &cut in cuts {
        input = Arc::new(
            FilterExecBuilder::new(of(&conjuncts[start..cut]), input)
                .with_batch_size(filter.batch_size())
                .with_default_selectivity(filter.default_selectivity())
                .build()?,
        );
        start = cut;
    }
    Ok(Arc::new(
        FilterExecBuilder::from(filter)
            .with_input(input)
            .with_predicate(of(&conjuncts[start..]))
            .build()?,
    ))
}

/// `predicate` with each conjunct that can fail, after the first, evaluated only over the rows the
/// conjuncts before it keep (see the module docs), or `None` when it has no such conjunct.
///
/// Shape: the conjuncts that are evaluated over every row anyway (those before the first guarded
/// one, and every infallible one) stay top-level conjuncts, so that what DataFusion derives from
/// them (constant columns, equal columns) is unchanged, followed by `CASE WHEN <conjuncts before
/// the first guarded one> THEN <the rest, guarded alike> ELSE false END`.
///
/// Errors: building the `CASE` (its branches are boolean, so it does not fail).
fn guarded(
    predicate: &Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> Result<Option<Arc<dyn PhysicalExpr>>> {
    fn chain(
        conjuncts: &[&Arc<dyn PhysicalExpr>],
        schema: &Schema,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        let Some(k) = first_fallible(conjuncts, schema) else {
            return Ok(conjunction(conjuncts.iter().map(|c| Arc::clone(*c))));
        };
        let before = conjunction(conjuncts[..k].iter().map(|c| Arc::clone(*c)));
        let rest = chain(&conjuncts[k..], schema)?;
        Ok(Arc::new(CaseExpr::try_new(
            None,
            vec![(before, rest)],
            Some(lit(ScalarValue::Boolean(Some(false)))),
        )?))
    }
    let conjuncts = split_conjunction(predicate);
    // Already guarded (the rule applied twice): the last conjunct is a `CASE` whose condition is
    // the conjunction of the first others.
    let guarded_before = conjuncts.split_last().is_some_and(|(last, before)| {
        last.downcast_ref::<CaseExpr>().is_some_and(|case| {
            case.when_then_expr().first().is_some_and(|(w, _)| {
                (1..=before.len()).any(|n| {
                    let when = conjunction(before[..n].iter().map(|c| Arc::clone(*c)));
                    w.as_ref() == when.as_ref()
                })
            })
        })
    });
    let Some(k) = first_fallible(&conjuncts, schema) else {
        return Ok(None);
    };
    if guarded_before {
        return Ok(None);
    }
    let top = conjuncts
        .iter()
        .enumerate()
        .filter(|(i, c)| *i < k || infallible(c.as_ref(), schema))
        .map(|(_, c)| Arc::clone(*c));
    let case = chain(&conjuncts, schema)?;
    Ok(Some(conjunction(top.chain([case]))))
}

/// The position of the first conjunct after the first that can fail over `schema`'s rows.
fn first_fallible(conjuncts: &[&Arc<dyn PhysicalExpr>], schema: &Schema) -> Option<usize> {
    conjuncts
        .iter()
        .skip(1)
        .position(|c| !infallible(c.as_ref(), schema))
        .map(|i| i + 1)
}

/// The one column `e` reads, when its type is numeric or temporal (interval analysis applies).
fn single_ordered_column(e: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Option<usize> {
    let columns = collect_columns(e);
    let [column] = columns.iter().collect::<Vec<_>>()[..] else {
        return None;
    };
    let ty = schema.field(column.index()).data_type();
    (ty.is_numeric() || ty.is_temporal()).then_some(column.index())
}

/// Whether evaluating `e` over `schema`'s rows cannot fail whatever the row: columns, constants,
/// computed scalar subqueries, casts that lose nothing, comparisons, `AND`/`OR`/`NOT`, `IN` lists,
/// `LIKE` and `IS [NOT] NULL` of such.
fn infallible(e: &dyn PhysicalExpr, schema: &Schema) -> bool {
    let node_ok = if let Some(b) = e.downcast_ref::<BinaryExpr>() {
        matches!(
            b.op(),
            Operator::And
                | Operator::Or
                | Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq
                | Operator::IsDistinctFrom
                | Operator::IsNotDistinctFrom
        )
    } else if let Some(cast) = e.downcast_ref::<CastExpr>() {
        cast.expr()
            .data_type(schema)
            .is_ok_and(|from| lossless_cast(&from, cast.cast_type()))
    } else {
        e.is::<Column>()
            || e.is::<Literal>()
            || e.is::<ScalarSubqueryExpr>()
            || e.is::<InListExpr>()
            || e.is::<LikeExpr>()
            || e.is::<IsNullExpr>()
            || e.is::<IsNotNullExpr>()
            || e.is::<NotExpr>()
    };
    node_ok && e.children().iter().all(|c| infallible(c.as_ref(), schema))
}

/// Whether every value of type `from` has a value of type `to` (no overflow, no parse error): a
/// wider integer, a decimal with at least as many integral and fractional digits, a float from an
/// integer or decimal (rounded, never failing), one string or binary type from another. (Not a
/// timestamp from a date: a date past 2262 has no nanosecond timestamp.)
fn lossless_cast(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let binaries = |t: &DataType| matches!(t, Binary | LargeBinary | BinaryView);
    let decimal = |t: &DataType| match t {
        Decimal32(p, s) | Decimal64(p, s) | Decimal128(p, s) | Decimal256(p, s) => {
            Some((i16::from(*p) - i16::from(*s), i16::from(*s)))
        }
        Int8 | UInt8 => Some((3, 0)),
        Int16 | UInt16 => Some((5, 0)),
        Int32 | UInt32 => Some((10, 0)),
        Int64 => Some((19, 0)),
        UInt64 => Some((20, 0)),
        _ => None,
    };
    if from == to || (from.is_string() && to.is_string()) || (binaries(from) && binaries(to)) {
        return true;
    }
    match (from, to) {
        (_, Float32 | Float64) => from.is_integer() || decimal(from).is_some(),
        (_, Decimal32(..) | Decimal64(..) | Decimal128(..) | Decimal256(..)) => {
            match (decimal(from), decimal(to)) {
                (Some((fi, fs)), Some((ti, ts))) => ti >= fi && ts >= fs,
                _ => false,
            }
        }
        _ if from.is_signed_integer() && to.is_signed_integer() => {
            to.primitive_width() >= from.primitive_width()
        }
        _ if from.is_unsigned_integer() && to.is_integer() => {
            to.primitive_width() > from.primitive_width()
                || (to.is_unsigned_integer() && to.primitive_width() >= from.primitive_width())
        }
        _ => false,
    }
}

/// Fraction of rows `e` keeps by fixed guesses, as [`crate::join_order`] estimates filters.
fn guessed(e: &dyn PhysicalExpr) -> f64 {
    let s = if let Some(b) = e.downcast_ref::<BinaryExpr>() {
        match b.op() {
            Operator::And => guessed(b.left().as_ref()) * guessed(b.right().as_ref()),
            Operator::Or => {
                let (l, r) = (guessed(b.left().as_ref()), guessed(b.right().as_ref()));
                l + r - l * r
            }
            Operator::Eq | Operator::IsNotDistinctFrom => 0.1,
            Operator::NotEq | Operator::IsDistinctFrom => 0.9,
            Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => 1.0 / 3.0,
            _ => 0.5,
        }
    } else if let Some(list) = e.downcast_ref::<InListExpr>() {
        let s = (0.1 * list.list().len() as f64).min(0.5);
        if list.negated() { 1.0 - s } else { s }
    } else if let Some(like) = e.downcast_ref::<LikeExpr>() {
        if like.negated() { 0.75 } else { 0.25 }
    } else if e.is::<IsNullExpr>() {
        0.1
    } else if e.is::<IsNotNullExpr>() {
        0.9
    } else if let Some(not) = e.downcast_ref::<NotExpr>() {
        1.0 - guessed(not.arg().as_ref())
    } else {
        0.5
    };
    s.clamp(0.0, 1.0)
}

/// Relative cost per row of evaluating `e` over `schema`'s columns.
fn cost(e: &dyn PhysicalExpr, schema: &Schema) -> f64 {
    let own = if let Some(column) = e.downcast_ref::<Column>() {
        let ty = schema.field(column.index()).data_type();
        if ty.is_string()
            || matches!(
                ty,
                DataType::Binary
                    | DataType::LargeBinary
                    | DataType::BinaryView
                    | DataType::Dictionary(..)
            )
        {
            6.0
        } else if ty.is_decimal() {
            1.5
        } else {
            1.0
        }
    } else if e.is::<Literal>() || e.is::<BinaryExpr>() || e.is::<NotExpr>() {
        0.0
    } else if e.is::<IsNullExpr>() || e.is::<IsNotNullExpr>() {
        0.25
    } else if e.is::<InListExpr>() {
        2.0
    } else if e.is::<LikeExpr>() {
        12.0
    } else {
        8.0
    };
    own + e
        .children()
        .iter()
        .map(|c| cost(c.as_ref(), schema))
        .sum::<f64>()
}

/// `rules` (a physical optimizer's, in order) with [`ConjunctOrder`] before DataFusion's final
/// `SanityCheckPlan` (at the end when there is none).
pub fn before_sanity_check(
    rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>,
) -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let at = rules
        .iter()
        .position(|r| r.name() == "SanityCheckPlan")
        .unwrap_or(rules.len());
    let mut rules = rules;
    rules.insert(at, Arc::new(ConjunctOrder));
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;
    use datafusion::common::stats::Precision;
    use datafusion::common::{ColumnStatistics, ScalarValue, Statistics};
    use datafusion::datasource::physical_plan::{FileScanConfigBuilder, ParquetSource};
    use datafusion::datasource::source::DataSourceExec;
    use datafusion::execution::object_store::ObjectStoreUrl;
    use datafusion::physical_expr::expressions::{col, lit};

    /// `year`-01-01 as a date.
    fn jan_first(year: i32) -> ScalarValue {
        ScalarValue::Utf8(Some(format!("{year}-01-01")))
            .cast_to(&DataType::Date32)
            .unwrap()
    }

    /// A scan of q12's lineitem columns, 6M rows, dates from 1992 to 1999 when `bounded`.
    fn lineitem(bounded: bool) -> Arc<dyn ExecutionPlan> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("l_orderkey", DataType::Int64, false),
            Field::new("l_shipdate", DataType::Date32, false),
            Field::new("l_commitdate", DataType::Date32, false),
            Field::new("l_receiptdate", DataType::Date32, false),
            Field::new("l_shipmode", DataType::Utf8View, false),
        ]));
        let column = |date: bool| {
            let mut c = ColumnStatistics::new_unknown();
            if bounded && date {
                c.min_value = Precision::Exact(jan_first(1992));
                c.max_value = Precision::Exact(jan_first(1999));
            }
            c
        };
        let statistics = Statistics {
            num_rows: Precision::Exact(6_000_000),
            total_byte_size: Precision::Absent,
            column_statistics: vec![
                column(false),
                column(true),
                column(true),
                column(true),
                column(false),
            ],
        };
        let config = FileScanConfigBuilder::new(
            ObjectStoreUrl::local_filesystem(),
            Arc::new(ParquetSource::new(Arc::clone(&schema))),
        )
        .with_statistics(statistics)
        .build();
        DataSourceExec::from_data_source(config)
    }

    fn binary(
        l: Arc<dyn PhysicalExpr>,
        op: Operator,
        r: Arc<dyn PhysicalExpr>,
    ) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(l, op, r))
    }

    /// The filter's predicate after the rule, as EXPLAIN prints it; a cascade of filters as their
    /// predicates in the order they run (the first over the input), separated by ` | `.
    fn optimized(predicate: Arc<dyn PhysicalExpr>, input: Arc<dyn ExecutionPlan>) -> String {
        let plan = Arc::new(FilterExec::try_new(predicate, input).unwrap());
        let mut plan = ConjunctOrder
            .optimize(plan, &ConfigOptions::default())
            .unwrap();
        let mut filters = Vec::new();
        while let Some(filter) = plan.downcast_ref::<FilterExec>() {
            filters.push(filter.predicate().to_string());
            plan = Arc::clone(filter.input());
        }
        filters.reverse();
        filters.join(" | ")
    }

    /// q12's filter as written: the string comparisons first, the receipt-date range last.
    fn q12(input: &Arc<dyn ExecutionPlan>) -> Arc<dyn PhysicalExpr> {
        let schema = input.schema();
        let c = |name: &str| col(name, &schema).unwrap();
        let mode = binary(
            binary(
                c("l_shipmode"),
                Operator::Eq,
                lit(ScalarValue::Utf8View(Some("MAIL".into()))),
            ),
            Operator::Or,
            binary(
                c("l_shipmode"),
                Operator::Eq,
                lit(ScalarValue::Utf8View(Some("SHIP".into()))),
            ),
        );
        conjunction([
            mode,
            binary(c("l_receiptdate"), Operator::Gt, c("l_commitdate")),
            binary(c("l_shipdate"), Operator::Lt, c("l_commitdate")),
            binary(c("l_receiptdate"), Operator::GtEq, lit(jan_first(1994))),
            binary(c("l_receiptdate"), Operator::Lt, lit(jan_first(1995))),
        ])
    }

    /// With the receipt dates' bounds, the one-year range (a seventh of the rows) comes first,
    /// its two halves together, and the string comparisons last; without bounds too (a range
    /// is guessed to keep a third, and dates cost less to compare than strings). The range keeps
    /// less than a fifth of the rows and three conjuncts follow: a filter of its own.
    #[test]
    fn selective_cheap_conjuncts_first() {
        let expected = "l_receiptdate@3 >= 1994-01-01 AND l_receiptdate@3 < 1995-01-01 \
                        | l_receiptdate@3 > l_commitdate@2 AND l_shipdate@1 < l_commitdate@2 \
                        AND (l_shipmode@4 = MAIL OR l_shipmode@4 = SHIP)";
        for bounded in [true, false] {
            let input = lineitem(bounded);
            assert_eq!(
                optimized(q12(&input), input),
                expected,
                "bounded: {bounded}"
            );
        }
    }

    /// A conjunct that can fail (a division) keeps the filter in its written order, and runs only
    /// where the conjuncts before it hold; a filter already in its cheapest order stays as it is.
    #[test]
    fn fallible_or_ordered_filters_stay() {
        let input = lineitem(true);
        let schema = input.schema();
        let c = |name: &str| col(name, &schema).unwrap();
        let guarded = conjunction([
            binary(
                c("l_shipmode"),
                Operator::Eq,
                lit(ScalarValue::Utf8View(Some("MAIL".into()))),
            ),
            binary(
                binary(
                    c("l_orderkey"),
                    Operator::Divide,
                    lit(ScalarValue::Int64(Some(0))),
                ),
                Operator::Gt,
                lit(ScalarValue::Int64(Some(1))),
            ),
        ]);
        assert_eq!(
            optimized(guarded, Arc::clone(&input)),
            "l_shipmode@4 = MAIL AND CASE WHEN l_shipmode@4 = MAIL \
             THEN l_orderkey@0 / 0 > 1 ELSE false END"
        );

        let ordered = conjunction([
            binary(c("l_receiptdate"), Operator::GtEq, lit(jan_first(1994))),
            binary(c("l_receiptdate"), Operator::Lt, lit(jan_first(1995))),
            binary(
                c("l_shipmode"),
                Operator::Eq,
                lit(ScalarValue::Utf8View(Some("MAIL".into()))),
            ),
        ]);
        let written = ordered.to_string();
        assert_eq!(optimized(ordered, input), written);
    }

    /// `x <> 0 AND 10 / x > 1` over x = 0, 1, 2, 5: DataFusion alone divides every row and fails;
    /// guarded, it answers as PostgreSQL does (x = 1, 2, 5), whether or not the guard keeps at most
    /// a fifth of the rows.
    #[tokio::test]
    async fn guard_protects_what_follows() {
        use datafusion::arrow::array::{Array, Int64Array};
        use datafusion::arrow::record_batch::RecordBatch;
        use datafusion::datasource::memory::MemorySourceConfig;
        use datafusion::execution::TaskContext;

        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(vec![0, 1, 2, 5]))],
        )
        .unwrap();
        let input = MemorySourceConfig::try_new_exec(&[vec![batch]], Arc::clone(&schema), None)
            .unwrap() as Arc<dyn ExecutionPlan>;
        let x = col("x", &schema).unwrap();
        let predicate = conjunction([
            binary(
                Arc::clone(&x),
                Operator::NotEq,
                lit(ScalarValue::Int64(Some(0))),
            ),
            binary(
                binary(lit(ScalarValue::Int64(Some(10))), Operator::Divide, x),
                Operator::Gt,
                lit(ScalarValue::Int64(Some(1))),
            ),
        ]);
        let plan =
            Arc::new(FilterExec::try_new(predicate, input).unwrap()) as Arc<dyn ExecutionPlan>;
        let ctx = Arc::new(TaskContext::default());
        let written = datafusion::physical_plan::collect(Arc::clone(&plan), Arc::clone(&ctx)).await;
        assert!(written.unwrap_err().to_string().contains("Divide by zero"));

        let plan = ConjunctOrder
            .optimize(plan, &ConfigOptions::default())
            .unwrap();
        let batches = datafusion::physical_plan::collect(plan, ctx).await.unwrap();
        let kept: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                (0..a.len()).map(|i| a.value(i)).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(kept, vec![1, 2, 5]);
    }

    /// Cuts come where the rows kept so far fall to a fifth of the last cut's (DataFusion's
    /// pre-selection) with at least two conjuncts after; none with one after, or none selective.
    #[test]
    fn cuts_where_pre_selection_repeats() {
        // q06: the date range keeps 15%, then l_discount's two halves and l_quantity.
        assert_eq!(split_points(&[0.7, 0.15, 0.08, 0.04, 0.02]), vec![2]);
        assert_eq!(split_points(&[0.1, 0.09, 0.015, 0.012, 0.011]), vec![1, 3]);
        assert!(split_points(&[0.7, 0.15, 0.08]).is_empty());
        assert!(split_points(&[0.9, 0.5, 0.3, 0.25]).is_empty());
        assert!(split_points(&[0.1]).is_empty());
    }

    /// A cascade answers as the one filter did: the same rows, the written filter's projection
    /// and fetch on the last filter only.
    #[tokio::test]
    async fn cascade_answers_as_one_filter() {
        use datafusion::arrow::array::{Int64Array, RecordBatch};
        use datafusion::arrow::util::pretty::pretty_format_batches;
        use datafusion::datasource::memory::MemorySourceConfig;
        use datafusion::execution::TaskContext;

        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Int64, false),
            Field::new("y", DataType::Int64, false),
        ]));
        let xs: Vec<i64> = (0..1000).collect();
        let ys: Vec<i64> = xs.iter().map(|x| x % 7).collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(xs)),
                Arc::new(Int64Array::from(ys)),
            ],
        )
        .unwrap();
        let input = MemorySourceConfig::try_new_exec(&[vec![batch]], Arc::clone(&schema), None)
            .unwrap() as Arc<dyn ExecutionPlan>;
        let (x, y) = (col("x", &schema).unwrap(), col("y", &schema).unwrap());
        let int = |v: i64| lit(ScalarValue::Int64(Some(v)));
        let conjuncts = [
            binary(Arc::clone(&x), Operator::Lt, int(100)),
            binary(Arc::clone(&y), Operator::NotEq, int(3)),
            binary(Arc::clone(&y), Operator::Gt, int(0)),
            binary(x, Operator::GtEq, int(10)),
        ];
        let filter = FilterExecBuilder::new(
            conjunction(conjuncts.iter().map(Arc::clone)),
            Arc::clone(&input),
        )
        .apply_projection(Some(vec![0]))
        .unwrap()
        .with_fetch(Some(20))
        .build()
        .unwrap();
        let refs: Vec<_> = conjuncts.iter().collect();
        let cascaded = cascade(&filter, &refs, &[1, 2]).unwrap();
        let first = cascaded.downcast_ref::<FilterExec>().unwrap();
        assert_eq!(first.fetch(), Some(20));
        assert_eq!(first.schema().fields().len(), 1);
        let below = first.input().downcast_ref::<FilterExec>().unwrap();
        assert_eq!(below.fetch(), None);
        assert!(below.projection().is_none());

        let ctx = Arc::new(TaskContext::default());
        let run = |plan: Arc<dyn ExecutionPlan>| {
            let ctx = Arc::clone(&ctx);
            async move {
                let batches = datafusion::physical_plan::collect(plan, ctx).await.unwrap();
                pretty_format_batches(&batches).unwrap().to_string()
            }
        };
        let expected = run(Arc::new(filter)).await;
        assert_eq!(expected.lines().count(), 20 + 4);
        assert_eq!(run(cascaded).await, expected);
    }

    /// Casts that cannot fail widen; narrowing, parsing and date-to-timestamp casts can.
    #[test]
    fn lossless_casts() {
        use datafusion::arrow::datatypes::TimeUnit;
        for (from, to, lossless) in [
            (
                DataType::Decimal128(15, 2),
                DataType::Decimal128(38, 16),
                true,
            ),
            (
                DataType::Decimal128(15, 2),
                DataType::Decimal128(15, 1),
                false,
            ),
            (
                DataType::Decimal128(38, 2),
                DataType::Decimal128(38, 4),
                false,
            ),
            (DataType::Int32, DataType::Int64, true),
            (DataType::Int64, DataType::Int32, false),
            (DataType::UInt32, DataType::Int64, true),
            (DataType::UInt64, DataType::Int64, false),
            (DataType::Int64, DataType::Decimal128(38, 16), true),
            (DataType::Int64, DataType::Float64, true),
            (DataType::Utf8, DataType::Utf8View, true),
            (DataType::Utf8, DataType::Int64, false),
            (
                DataType::Date32,
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                false,
            ),
        ] {
            assert_eq!(lossless_cast(&from, &to), lossless, "{from} -> {to}");
        }
    }
}
