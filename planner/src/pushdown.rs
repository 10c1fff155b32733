//! Whole-subplan pushdown into SQL sources (PostgreSQL and MySQL / MariaDB, through the same
//! traits).
//!
//! [`SqlSourcePushdown`] is a logical optimizer rule appended after DataFusion's own (so filters,
//! projections and limits already sit in the table scans). Walking the plan top-down, it takes the
//! largest subtree that reads only tables of one [`SqlSource`] and whose every operator and
//! expression keeps its meaning at the source, and replaces it, when it holds an aggregate, a join,
//! a top-N or a limit, with a scan of ONE remote statement (one split): `TableScan(__remote)` under a
//! projection that restores the subtree's column names and qualifiers.
//!
//! The statement nests one derived table per operator, each naming its columns `c0..cn`; every
//! computed column is cast to the Arrow type DataFusion gives it, so the source returns exactly the
//! values Tributary would compute. What is pushed (see [`SqlKind`] for per-type rules):
//! - scans with their pushed filters, projections of columns, literals, decimal `+ - *`, integer
//!   `+ - * / %` (operands of one type, on sources where they mean the same:
//!   [`SqlDialect::integer_arithmetic`]), widening numeric casts, comparisons (ordered ones never on
//!   strings or floats), AND/OR/NOT, IS NULL, BETWEEN, IN lists, LIKE without escapes on
//!   byte-comparable strings, CASE;
//! - subqueries in a filter or a select list (`EXISTS`, `IN (SELECT ...)`, scalar), correlated or
//!   not, when they read the same source and follow the same rules, on sources whose dialect allows
//!   outer references inside derived tables ([`SqlDialect::correlated_subqueries`]: PostgreSQL).
//!   This is how a correlated subquery DataFusion cannot decorrelate (`x.b < t1.b`) still runs: whole,
//!   at the source. The relation around a subquery is aliased `oN` (N: nesting depth) so that the
//!   subquery's own derived tables (`t`, `l`, `r`) never hide it;
//! - aggregates count, count(distinct), sum, min, max, avg, stddev/variance with GROUP BY;
//!   avg of integers and decimals is `round(sum * 10^s / count) * 10^-s` (s: 16, or a decimal's
//!   larger scale, as [`crate::avg`] rounds), stddev of integers is
//!   computed on float8 like DataFusion;
//! - ORDER BY ... LIMIT (explicit null placement, in the dialect's syntax; keys never strings or
//!   floats), LIMIT/OFFSET;
//! - inner, left, right, full, semi and anti joins on byte-comparable keys (not null-aware anti),
//!   as the catalog's `join_pushdown` decides; `automatic` weighs the source's own estimates of the
//!   joined statement and of its inputs (`EXPLAIN`), as Trino's automatic join pushdown does.
//!
//! Scalar functions are never pushed (the source may lack them or differ).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, NullEquality, Result, ScalarValue};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::logical_expr::expr::{
    AggregateFunction, Alias, Between, Case, Cast, Exists, InList, InSubquery, Like,
};
use datafusion::logical_expr::{
    BinaryExpr, Expr, ExprSchemable, FetchType, JoinType, LogicalPlan, LogicalPlanBuilder,
    Operator, Projection, SkipType, Sort, SortExpr, TableType,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;
use tributary_connectors::sql_source::{
    Estimate, JoinPushdown, READ_ONLY_MARKER, SqlDialect, SqlKind, SqlSource, as_sql_table,
};

/// The optimizer rule; see the module docs.
#[derive(Debug, Default)]
pub struct SqlSourcePushdown;

impl OptimizerRule for SqlSourcePushdown {
    fn name(&self) -> &str {
        "sql_source_pushdown"
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let notes = config
            .options()
            .extensions
            .get::<JoinPushdownNotes>()
            .cloned();
        NOTES.with(|n| *n.borrow_mut() = notes);
        let rewritten = rewrite(plan);
        NOTES.with(|n| *n.borrow_mut() = None);
        rewritten
    }
}

thread_local! {
    /// The notes of the plan being rewritten on this thread (the rule runs synchronously).
    static NOTES: std::cell::RefCell<Option<JoinPushdownNotes>> = const { std::cell::RefCell::new(None) };
}

/// What `EXPLAIN` tells about each join between tables of one SQL source (pushed to the source or
/// kept here) and each aggregate kept here by estimates, and which rule of the catalog's
/// `join_pushdown` decided (Trino shows the same choice as a join in, or above, the remote query).
/// Recorded by [`SqlSourcePushdown`] when the session's options carry one (EXPLAIN plans with a
/// fresh one); each note once.
#[derive(Debug, Clone, Default)]
pub struct JoinPushdownNotes(Arc<std::sync::Mutex<Vec<String>>>);

impl JoinPushdownNotes {
    /// The notes so far, in the order the joins were first decided.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Adds the note `note` makes, when this plan is noted (EXPLAIN); other plans skip making it.
    fn record(note: impl FnOnce() -> String) {
        NOTES.with(|n| {
            if let Some(notes) = n.borrow().as_ref() {
                let note = note();
                let mut notes = notes.0.lock().unwrap_or_else(|e| e.into_inner());
                if !notes.contains(&note) {
                    notes.push(note);
                }
            }
        });
    }
}

impl datafusion::common::config::ExtensionOptions for JoinPushdownNotes {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn cloned(&self) -> Box<dyn datafusion::common::config::ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, _value: &str) -> Result<()> {
        datafusion::common::config_err!(
            "no setting {key} in {}",
            <Self as datafusion::common::config::ConfigExtension>::PREFIX
        )
    }

    fn entries(&self) -> Vec<datafusion::common::config::ConfigEntry> {
        Vec::new()
    }
}

impl datafusion::common::config::ConfigExtension for JoinPushdownNotes {
    const PREFIX: &'static str = "tributary_join_pushdown_notes";
}

fn rewrite(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    if let Some(rel) = translate(&plan, None).filter(|r| r.worth)
        && let Some(replaced) = replace(&plan, rel)
    {
        return Ok(Transformed::yes(replaced));
    }
    plan.map_children(rewrite)?
        .transform_data(|p| p.map_subqueries(rewrite))
}

/// A subplan written as one SELECT whose columns are named `c0..cn` (the subplan's output order).
struct Rel {
    source: Arc<dyn SqlSource>,
    id: String,
    sql: String,
    kinds: Vec<SqlKind>,
    /// Holds an aggregate, join, top-N or limit: worth a single-split remote statement.
    worth: bool,
    /// The rows come out in this order (a top-N at the top); nothing may be put above but a limit.
    order: Option<Vec<SortExpr>>,
    /// Per column: a table column that leads an index at the source, reached through filters,
    /// projections and joins only (so the source can still look rows up by it).
    indexed: Vec<bool>,
}

fn cname(d: &dyn SqlDialect, i: usize) -> String {
    d.quote_ident(&format!("c{i}"))
}

/// `alias.cI` for each column of a relation.
fn col_ref(d: &dyn SqlDialect, alias: &str, i: usize) -> String {
    format!("{alias}.{}", cname(d, i))
}

fn translate(plan: &LogicalPlan, outer: Option<&Scope<'_>>) -> Option<Rel> {
    let ctx = Ctx { outer, here: None };
    match plan {
        LogicalPlan::TableScan(scan) => {
            let provider = source_as_provider(&scan.source).ok()?;
            let table = as_sql_table(provider.as_ref())?;
            let source = table.sql_source();
            let d = source.dialect();
            let indices: Vec<usize> = match &scan.projection {
                Some(p) => p.clone(),
                None => (0..provider.schema().fields().len()).collect(),
            };
            let mut items = Vec::with_capacity(indices.len());
            let mut kinds = Vec::with_capacity(indices.len());
            let mut indexed = Vec::with_capacity(indices.len());
            for (k, &i) in indices.iter().enumerate() {
                let (e, kind) = table.column(i)?;
                items.push(format!("{e} AS {}", cname(d, k)));
                kinds.push(kind);
                indexed.push(table.indexed(i));
            }
            if items.is_empty() && !d.empty_select() {
                items.push(format!("1 AS {}", d.quote_ident("c_")));
            }
            let mut sql = format!("SELECT {} FROM {}", items.join(", "), table.relation());
            let conditions = scan
                .filters
                .iter()
                .map(|f| table.filter_sql(f))
                .collect::<Option<Vec<_>>>()?;
            if !conditions.is_empty() {
                write!(sql, " WHERE {}", conditions.join(" AND ")).ok()?;
            }
            sql.push_str(&d.limit(scan.fetch, 0));
            Some(Rel {
                id: source.id(),
                source,
                sql,
                kinds,
                worth: false,
                order: None,
                indexed,
            })
        }
        LogicalPlan::SubqueryAlias(a) => {
            let rel = translate(&a.input, outer)?;
            rel.order.is_none().then_some(rel)
        }
        LogicalPlan::Projection(p) => {
            let input = unordered(translate(&p.input, outer)?)?;
            let d = input.source.dialect();
            let schema = p.input.schema();
            let (alias, ctx) = subquery_alias(&p.expr, &input, outer)?;
            let cols = |i: usize| Some((col_ref(d, &alias, i), *input.kinds.get(i)?));
            let mut items = Vec::new();
            let mut kinds = Vec::new();
            let indexed = p
                .expr
                .iter()
                .map(|e| indexed_column(e, schema, &input.indexed))
                .collect();
            for (i, e) in p.expr.iter().enumerate() {
                let (sql, kind) = expr_sql(d, e, schema, &cols, ctx)?;
                let sql = if matches!(unalias(e), Expr::Column(_)) {
                    sql
                } else {
                    d.cast(&sql, p.schema.field(i).data_type())?
                };
                items.push(format!("{sql} AS {}", cname(d, i)));
                kinds.push(kind);
            }
            if items.is_empty() && !d.empty_select() {
                items.push(format!("1 AS {}", d.quote_ident("c_")));
            }
            let sql = format!(
                "SELECT {} FROM ({}) AS {alias}",
                items.join(", "),
                input.sql
            );
            Some(Rel {
                sql,
                kinds,
                worth: input.worth || ctx.here.is_some(),
                indexed,
                ..input
            })
        }
        LogicalPlan::Filter(f) => {
            let input = unordered(translate(&f.input, outer)?)?;
            let d = input.source.dialect();
            let (alias, ctx) = subquery_alias(std::slice::from_ref(&f.predicate), &input, outer)?;
            let cols = |i: usize| Some((col_ref(d, &alias, i), *input.kinds.get(i)?));
            let (pred, _) = expr_sql(d, &f.predicate, f.input.schema(), &cols, ctx)?;
            let sql = format!("SELECT * FROM ({}) AS {alias} WHERE {pred}", input.sql);
            Some(Rel {
                sql,
                worth: input.worth || ctx.here.is_some(),
                ..input
            })
        }
        LogicalPlan::Aggregate(a) => {
            let input = translate(&a.input, outer)?;
            let d = input.source.dialect();
            let schema = a.input.schema();
            let cols = |i: usize| Some((col_ref(d, "t", i), *input.kinds.get(i)?));
            let mut items = Vec::new();
            let mut kinds = Vec::new();
            let mut groups = Vec::new();
            for (i, e) in a.group_expr.iter().enumerate() {
                let (sql, kind) = expr_sql(d, e, schema, &cols, ctx)?;
                if !kind.group_safe() {
                    return None;
                }
                let out = if matches!(unalias(e), Expr::Column(_)) {
                    sql.clone()
                } else {
                    d.cast(&sql, a.schema.field(i).data_type())?
                };
                items.push(format!("{out} AS {}", cname(d, i)));
                kinds.push(kind);
                groups.push(sql);
            }
            let n = a.group_expr.len();
            for (j, e) in a.aggr_expr.iter().enumerate() {
                let out = a.schema.field(n + j).data_type();
                let (sql, kind) = aggregate_sql(d, unalias(e), schema, &cols, out, ctx)?;
                items.push(format!("{sql} AS {}", cname(d, n + j)));
                kinds.push(kind);
            }
            if items.is_empty() && !d.empty_select() {
                items.push(format!("1 AS {}", d.quote_ident("c_")));
            }
            let mut sql = format!("SELECT {} FROM ({}) AS t", items.join(", "), input.sql);
            if !groups.is_empty() {
                write!(sql, " GROUP BY {}", groups.join(", ")).ok()?;
            }
            if !aggregate_worth_pushing(a, &input, &sql, outer.is_some()) {
                return None;
            }
            Some(Rel {
                indexed: vec![false; kinds.len()],
                sql,
                kinds,
                worth: true,
                order: None,
                ..input
            })
        }
        LogicalPlan::Sort(s) => {
            let fetch = s.fetch?;
            top_n(&s.input, &s.expr, Some(fetch), 0, outer)
        }
        LogicalPlan::Limit(l) => {
            let SkipType::Literal(skip) = l.get_skip_type().ok()? else {
                return None;
            };
            let FetchType::Literal(fetch) = l.get_fetch_type().ok()? else {
                return None;
            };
            if let LogicalPlan::Sort(s) = l.input.as_ref() {
                // Rows [skip, skip + fetch) of the sort's first `s.fetch` rows.
                let fetch = match (fetch, s.fetch) {
                    (Some(f), Some(sf)) => Some(f.min(sf.saturating_sub(skip))),
                    (Some(f), None) => Some(f),
                    (None, Some(sf)) => Some(sf.saturating_sub(skip)),
                    (None, None) => None,
                };
                return top_n(&s.input, &s.expr, fetch, skip, outer);
            }
            let input = unordered(translate(&l.input, outer)?)?;
            let d = input.source.dialect();
            let sql = format!("SELECT * FROM ({}) AS t{}", input.sql, d.limit(fetch, skip));
            Some(Rel {
                sql,
                worth: true,
                indexed: vec![false; input.kinds.len()],
                ..input
            })
        }
        LogicalPlan::Join(j) => join(j, outer),
        _ => None,
    }
}

/// The enclosing query of a correlated subquery being translated: its relation's columns (under an
/// alias of its own, `oN`, so no derived table of the subquery hides it), and its own enclosing
/// query. An outer reference resolves to the innermost scope whose schema has the column.
struct Scope<'a> {
    schema: &'a DFSchema,
    cols: &'a Cols<'a>,
    depth: usize,
    parent: Option<&'a Scope<'a>>,
}

/// What an expression is translated within: the enclosing queries' columns (for outer
/// references), and where subqueries may appear (a filter's predicate or a projection's list),
/// the relation's source id and nesting depth.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    outer: Option<&'a Scope<'a>>,
    here: Option<(&'a str, usize)>,
}

/// The alias of a filter's or projection's input and the context of its expressions: `t` and no
/// subqueries when `exprs` hold none; `oN` (N: the nesting depth) when they do, which the source
/// must be able to correlate (None otherwise).
fn subquery_alias<'a>(
    exprs: &[Expr],
    input: &'a Rel,
    outer: Option<&'a Scope<'a>>,
) -> Option<(String, Ctx<'a>)> {
    let has = exprs
        .iter()
        .any(|e| e.exists(|e| Ok(is_subquery(e))).unwrap_or(true));
    if !has {
        return Some(("t".into(), Ctx { outer, here: None }));
    }
    if !input.source.dialect().correlated_subqueries() {
        return None;
    }
    let depth = outer.map_or(1, |s| s.depth + 1);
    Some((
        format!("o{depth}"),
        Ctx {
            outer,
            here: Some((&input.id, depth)),
        },
    ))
}

fn is_subquery(e: &Expr) -> bool {
    matches!(
        e,
        Expr::Exists(_) | Expr::InSubquery(_) | Expr::ScalarSubquery(_) | Expr::SetComparison(_)
    )
}

/// `subquery` written at the source as a correlated subquery of the relation whose columns are
/// `schema`/`cols` (within `ctx`): its SQL and kinds, when the whole subquery reads the same source.
fn subquery_sql(
    subquery: &LogicalPlan,
    schema: &DFSchema,
    cols: &Cols<'_>,
    ctx: Ctx<'_>,
) -> Option<Rel> {
    let (id, depth) = ctx.here?;
    let scope = Scope {
        schema,
        cols,
        depth,
        parent: ctx.outer,
    };
    let rel = translate(subquery, Some(&scope))?;
    (rel.id == id).then_some(rel)
}

fn unordered(rel: Rel) -> Option<Rel> {
    rel.order.is_none().then_some(rel)
}

fn top_n(
    input: &LogicalPlan,
    order: &[SortExpr],
    fetch: Option<usize>,
    skip: usize,
    outer: Option<&Scope<'_>>,
) -> Option<Rel> {
    let ctx = Ctx { outer, here: None };
    let rel = unordered(translate(input, outer)?)?;
    let d = rel.source.dialect();
    let cols = |i: usize| Some((col_ref(d, "t", i), *rel.kinds.get(i)?));
    let mut items = Vec::new();
    for s in order {
        let (sql, kind) = expr_sql(d, &s.expr, input.schema(), &cols, ctx)?;
        if !kind.order_safe() {
            return None;
        }
        items.push(d.order_item(&sql, s.asc, s.nulls_first));
    }
    let sql = format!(
        "SELECT * FROM ({}) AS t ORDER BY {}{}",
        rel.sql,
        items.join(", "),
        d.limit(fetch, skip)
    );
    Some(Rel {
        sql,
        worth: true,
        order: Some(order.to_vec()),
        indexed: vec![false; rel.kinds.len()],
        ..rel
    })
}

fn join(j: &datafusion::logical_expr::Join, outer: Option<&Scope<'_>>) -> Option<Rel> {
    let ctx = Ctx { outer, here: None };
    if j.null_aware || j.null_equality != NullEquality::NullEqualsNothing {
        return None;
    }
    let left = unordered(translate(&j.left, outer)?)?;
    let right = unordered(translate(&j.right, outer)?)?;
    if left.id != right.id {
        return None;
    }
    let d = left.source.dialect();
    let (ls, rs) = (j.left.schema(), j.right.schema());
    let lcols = |i: usize| Some((col_ref(d, "l", i), *left.kinds.get(i)?));
    let rcols = |i: usize| Some((col_ref(d, "r", i), *right.kinds.get(i)?));
    let mut conditions = Vec::new();
    for (le, re) in &j.on {
        let (lsql, lk) = expr_sql(d, le, ls, &lcols, ctx)?;
        let (rsql, rk) = expr_sql(d, re, rs, &rcols, ctx)?;
        if !lk.eq_safe() || !rk.eq_safe() || le.get_type(ls).ok()? != re.get_type(rs).ok()? {
            return None;
        }
        conditions.push(format!("{lsql} = {rsql}"));
    }
    if let Some(filter) = &j.filter {
        let both = ls.join(rs).ok()?;
        let nl = left.kinds.len();
        let cols = |i: usize| {
            if i < nl { lcols(i) } else { rcols(i - nl) }
        };
        conditions.push(expr_sql(d, filter, &both, &cols, ctx)?.0);
    }
    let on = if conditions.is_empty() {
        "TRUE".to_string()
    } else {
        conditions.join(" AND ")
    };
    let mut indexed = left.indexed.clone();
    let (sql, kinds) = match j.join_type {
        JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full => {
            let word = match j.join_type {
                JoinType::Inner => "INNER",
                JoinType::Left => "LEFT",
                JoinType::Right => "RIGHT",
                _ if d.full_join() => "FULL",
                _ => return None,
            };
            let nl = left.kinds.len();
            let mut items: Vec<String> = (0..nl)
                .map(|i| format!("{} AS {}", col_ref(d, "l", i), cname(d, i)))
                .collect();
            items.extend(
                (0..right.kinds.len())
                    .map(|i| format!("{} AS {}", col_ref(d, "r", i), cname(d, nl + i))),
            );
            if items.is_empty() && !d.empty_select() {
                items.push(format!("1 AS {}", d.quote_ident("c_")));
            }
            let mut kinds = left.kinds.clone();
            kinds.extend(right.kinds.iter().copied());
            indexed.extend(right.indexed.iter().copied());
            (
                format!(
                    "SELECT {} FROM ({}) AS l {word} JOIN ({}) AS r ON {on}",
                    items.join(", "),
                    left.sql,
                    right.sql
                ),
                kinds,
            )
        }
        JoinType::LeftSemi | JoinType::LeftAnti => {
            let not = if j.join_type == JoinType::LeftAnti {
                "NOT "
            } else {
                ""
            };
            (
                format!(
                    "SELECT l.* FROM ({}) AS l WHERE {not}EXISTS (SELECT 1 FROM ({}) AS r WHERE {on})",
                    left.sql, right.sql
                ),
                left.kinds.clone(),
            )
        }
        JoinType::RightSemi | JoinType::RightAnti => {
            let not = if j.join_type == JoinType::RightAnti {
                "NOT "
            } else {
                ""
            };
            (
                {
                    indexed = right.indexed.clone();
                    format!(
                        "SELECT r.* FROM ({}) AS r WHERE {not}EXISTS (SELECT 1 FROM ({}) AS l WHERE {on})",
                        right.sql, left.sql
                    )
                },
                right.kinds.clone(),
            )
        }
        _ => return None,
    };
    let (push, why) = join_worth_pushing(j, &left, &right, &sql, outer.is_some());
    if !push {
        JoinPushdownNotes::record(|| format!("{}: kept here ({why})", join_label(j)));
        return None;
    }
    JoinPushdownNotes::record(|| format!("{}: pushed ({why})", join_label(j)));
    Some(Rel {
        source: left.source,
        id: left.id,
        sql,
        kinds,
        worth: true,
        order: None,
        indexed,
    })
}

/// Whether `j` between `left` and `right` (one source), written as `sql`, should run at the
/// source, by the catalog's `join_pushdown`: `never`, `eager`, or `automatic`, which weighs the
/// source planner's estimates (not asked inside a correlated subquery, whose SQL names the outer
/// query's columns) as Trino's automatic join pushdown does: pushed when answering `sql`
/// there costs at most [`MAX_JOIN_TO_INPUTS_RATIO`] times answering `left` and `right` apart
/// (PostgreSQL: bytes sent, so a join that multiplies rows stays here; MariaDB: rows read by its
/// nested loops, weighted by how, plus rows sent; see [`SqlSource::estimate`]), and, for a join on
/// equality keys (a hash join here), its work there at most [`MAX_JOIN_WORK_RATIO`] times theirs.
/// Without estimates (the source refused the EXPLAIN, or did not answer within
/// [`ESTIMATE_TIMEOUT`]), by rule: pushed to a source that hashes joins (PostgreSQL), kept here
/// from one that joins by nested loops (MariaDB: `scripts/bench-mysql.sh`, TPC-H 0.1 with the keys
/// indexed, found pushed joins up to 14x slower, none faster by more than 5%). With the reason, as
/// EXPLAIN shows it.
fn join_worth_pushing(
    j: &datafusion::logical_expr::Join,
    left: &Rel,
    right: &Rel,
    sql: &str,
    correlated: bool,
) -> (bool, String) {
    match left.source.join_pushdown() {
        JoinPushdown::Never => return (false, "join_pushdown = never".into()),
        JoinPushdown::Eager => return (true, "join_pushdown = eager".into()),
        JoinPushdown::Automatic => {}
    }
    // Inside a correlated subquery the SQL names the outer query's columns: it cannot be
    // explained on its own.
    let estimates = (!correlated)
        .then(|| estimate(&left.source, sql))
        .flatten()
        .and_then(|joined| {
            Some((
                joined,
                estimate(&left.source, &left.sql)?,
                estimate(&left.source, &right.sql)?,
            ))
        });
    if let Some((joined, l, r)) = estimates {
        let apart = l.cost + r.cost;
        // Without equality keys the join is a nested loop here too, so the source's is no worse.
        let push = joined.cost <= MAX_JOIN_TO_INPUTS_RATIO * apart
            && (j.on.is_empty() || joined.work <= MAX_JOIN_WORK_RATIO * (l.work + r.work));
        return (
            push,
            format!(
                "join_pushdown = automatic: the source estimates cost {} and {} rows joined there, \
                 against cost {} for its inputs of {} and {} rows",
                round(joined.cost),
                round(joined.rows),
                round(apart),
                round(l.rows),
                round(r.rows)
            ),
        );
    }
    if left.source.dialect().hash_joins() {
        return (
            true,
            "join_pushdown = automatic, no estimate: the source hashes joins".into(),
        );
    }
    let (ls, rs) = (j.left.schema(), j.right.schema());
    if j.on.iter().any(|(le, re)| {
        indexed_column(le, ls, &left.indexed) || indexed_column(re, rs, &right.indexed)
    }) {
        (
            false,
            "join_pushdown = automatic, no estimate: the source joins by nested loops; a join key \
             leads an index there, but looking rows up one by one is slower than a hash join here"
                .into(),
        )
    } else {
        (
            false,
            "join_pushdown = automatic, no estimate: the source joins by nested loops and no join \
             key leads an index there: it would rescan a table per row"
                .into(),
        )
    }
}

/// How much more than its inputs apart a pushed join may cost: Trino's default
/// `join-pushdown.automatic.max-join-to-tables-ratio`.
const MAX_JOIN_TO_INPUTS_RATIO: f64 = 1.25;

/// How much more work than its inputs apart a pushed join may cost the source, by its planner's
/// own measure: a hash join costs PostgreSQL about its inputs' scans again at most, a nested loop
/// over them far more.
const MAX_JOIN_WORK_RATIO: f64 = 3.0;

/// How long planning waits for one estimate from a source before deciding without it.
const ESTIMATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long an estimate is reused for the same SQL of the same source.
const ESTIMATE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Estimates (or their absence) of recent SQL, by source id and SQL text: the optimizer decides
/// the same join more than once per query, and a query is often run more than once. An absent
/// estimate (an error, a timeout) is kept [`NO_ESTIMATE_TTL`] only.
type EstimateCache = HashMap<(String, String), (std::time::Instant, Option<Estimate>)>;

/// How long the absence of an estimate is remembered.
const NO_ESTIMATE_TTL: std::time::Duration = std::time::Duration::from_secs(5);
static ESTIMATES: std::sync::LazyLock<parking_lot::Mutex<EstimateCache>> =
    std::sync::LazyLock::new(Default::default);

/// The source's estimate of `sql` ([`SqlSource::estimate`]), asked from this synchronous rule by
/// blocking its thread (tokio's `block_in_place`, so other tasks move on), at most
/// [`ESTIMATE_TIMEOUT`]. `None` when the source gives none, fails, or planning runs outside a
/// multi-threaded runtime (unit tests).
fn estimate(source: &Arc<dyn SqlSource>, sql: &str) -> Option<Estimate> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let key = (source.id(), sql.to_string());
    let now = std::time::Instant::now();
    {
        let cache = ESTIMATES.lock();
        if let Some((at, hit)) = cache.get(&key)
            && now.duration_since(*at) < ttl(hit)
        {
            return *hit;
        }
    }
    let handle = Handle::try_current().ok()?;
    if handle.runtime_flavor() != RuntimeFlavor::MultiThread {
        return None;
    }
    let asked = tokio::task::block_in_place(|| {
        handle.block_on(tokio::time::timeout(ESTIMATE_TIMEOUT, source.estimate(sql)))
    });
    let found = match asked {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => {
            tracing::debug!("no estimate from {}: {e}", source.id());
            None
        }
        Err(_) => {
            tracing::debug!(
                "no estimate from {} within {ESTIMATE_TIMEOUT:?}",
                source.id()
            );
            None
        }
    };
    let mut cache = ESTIMATES.lock();
    if cache.len() >= 4096 {
        cache.retain(|_, (at, hit)| now.duration_since(*at) < ttl(hit));
        if cache.len() >= 4096 {
            cache.clear();
        }
    }
    cache.insert(key, (now, found));
    found
}

/// How long `hit` is kept in [`ESTIMATES`].
fn ttl(hit: &Option<Estimate>) -> std::time::Duration {
    if hit.is_some() {
        ESTIMATE_TTL
    } else {
        NO_ESTIMATE_TTL
    }
}

/// `x` rounded to a whole number, as the notes print estimates.
fn round(x: f64) -> String {
    format!("{:.0}", x.max(0.0))
}

/// Whether aggregate `a` over `input`, written as `sql`, should run at the source. Under
/// `join_pushdown = "automatic"`, by the source's estimates: pushed unless answering `sql` both costs
/// more than [`MAX_JOIN_TO_INPUTS_RATIO`] times sending `input` here and is more than
/// [`MAX_JOIN_WORK_RATIO`] times `input`'s work there. MariaDB groups by walking a secondary index
/// row by row when one leads with the grouping key: TPC-H q17's `avg(l_quantity) ... GROUP BY
/// l_partkey` took 2.5 s that way against 0.24 s to send the rows. PostgreSQL hashes or sorts, a
/// few times its scan's work at most, so its aggregates are pushed without asking (`hash_joins`
/// sources). Pushed when the source gives no estimate, inside a correlated subquery, and under
/// `eager` and `never` (which are about joins).
fn aggregate_worth_pushing(
    a: &datafusion::logical_expr::Aggregate,
    input: &Rel,
    sql: &str,
    correlated: bool,
) -> bool {
    // Inside a correlated subquery the SQL cannot be explained on its own; a source that hashes
    // (PostgreSQL) is not asked.
    if input.source.join_pushdown() != JoinPushdown::Automatic
        || correlated
        || input.source.dialect().hash_joins()
    {
        return true;
    }
    let Some((grouped, apart)) = estimate(&input.source, sql)
        .and_then(|grouped| Some((grouped, estimate(&input.source, &input.sql)?)))
    else {
        return true;
    };
    if grouped.cost <= MAX_JOIN_TO_INPUTS_RATIO * apart.cost
        || grouped.work <= MAX_JOIN_WORK_RATIO * apart.work
    {
        return true;
    }
    JoinPushdownNotes::record(|| {
        let keys: Vec<String> = a.group_expr.iter().map(ToString::to_string).collect();
        format!(
            "Aggregate by [{}]: kept here (join_pushdown = automatic: the source estimates cost {} \
             and work {} for it, against cost {} and work {} for its input of {} rows)",
            keys.join(", "),
            round(grouped.cost),
            round(grouped.work),
            round(apart.cost),
            round(apart.work),
            round(apart.rows)
        )
    });
    false
}

/// `Inner join on a.x = b.y AND ...`, as EXPLAIN names a join in its notes.
fn join_label(j: &datafusion::logical_expr::Join) -> String {
    let keys: Vec<String> = j.on.iter().map(|(l, r)| format!("{l} = {r}")).collect();
    let keys = if keys.is_empty() {
        j.filter
            .as_ref()
            .map_or_else(|| "TRUE".to_string(), |f| f.to_string())
    } else {
        keys.join(" AND ")
    };
    format!("{} join on {keys}", j.join_type)
}

/// Whether `e` is a plain column of `schema` whose flag in `indexed` is set.
fn indexed_column(e: &Expr, schema: &DFSchema, indexed: &[bool]) -> bool {
    match unalias(e) {
        Expr::Column(c) => schema
            .index_of_column(c)
            .ok()
            .and_then(|i| indexed.get(i).copied())
            .unwrap_or(false),
        _ => false,
    }
}

fn unalias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(Alias { expr, .. }) => unalias(expr),
        e => e,
    }
}

fn kind_of_type(ty: &DataType) -> SqlKind {
    match ty {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => SqlKind::Integer,
        DataType::Decimal128(..) => SqlKind::Decimal,
        DataType::Float32 | DataType::Float64 => SqlKind::Float,
        DataType::Boolean => SqlKind::Bool,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => SqlKind::Text {
            eq: true,
            group: true,
        },
        DataType::Date32 | DataType::Timestamp(..) => SqlKind::Temporal,
        _ => SqlKind::Other,
    }
}

type Cols<'a> = dyn Fn(usize) -> Option<(String, SqlKind)> + 'a;

/// The SQL of `e` (over a relation of `schema` whose column `i` is `cols(i)`), if it has the same
/// value at the source, and what may be done with that value.
fn expr_sql(
    d: &dyn SqlDialect,
    e: &Expr,
    schema: &DFSchema,
    cols: &Cols<'_>,
    ctx: Ctx<'_>,
) -> Option<(String, SqlKind)> {
    let ty = |e: &Expr| e.get_type(schema).ok();
    match e {
        Expr::Column(c) => cols(schema.index_of_column(c).ok()?),
        Expr::OuterReferenceColumn(_, c) => {
            let mut scope = ctx.outer;
            while let Some(s) = scope {
                if let Ok(i) = s.schema.index_of_column(c) {
                    return (s.cols)(i);
                }
                scope = s.parent;
            }
            None
        }
        Expr::Exists(Exists { subquery, negated }) => {
            let rel = subquery_sql(&subquery.subquery, schema, cols, ctx)?;
            let not = if *negated { "NOT " } else { "" };
            Some((format!("({not}EXISTS ({}))", rel.sql), SqlKind::Bool))
        }
        Expr::ScalarSubquery(subquery) => {
            let rel = subquery_sql(&subquery.subquery, schema, cols, ctx)?;
            let [kind] = rel.kinds.as_slice() else {
                return None;
            };
            Some((format!("({})", rel.sql), *kind))
        }
        Expr::InSubquery(InSubquery {
            expr,
            subquery,
            negated,
        }) => {
            let (x, xk) = expr_sql(d, expr, schema, cols, ctx)?;
            let rel = subquery_sql(&subquery.subquery, schema, cols, ctx)?;
            let [kind] = rel.kinds.as_slice() else {
                return None;
            };
            let field = subquery.subquery.schema().field(0).data_type().clone();
            if !xk.eq_safe() || !kind.eq_safe() || ty(expr)? != field {
                return None;
            }
            let not = if *negated { "NOT " } else { "" };
            Some((format!("({x} {not}IN ({}))", rel.sql), SqlKind::Bool))
        }
        Expr::Alias(Alias { expr, .. }) => expr_sql(d, expr, schema, cols, ctx),
        // The value itself (only its type is nullable).
        Expr::ScalarFunction(f) if crate::nullable::is_marker(f) => {
            expr_sql(d, &f.args[0], schema, cols, ctx)
        }
        Expr::Literal(v, _) => {
            if v.is_null() {
                return None;
            }
            Some((d.literal(v)?, kind_of_type(&v.data_type())))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (l, lk) = expr_sql(d, left, schema, cols, ctx)?;
            let (r, rk) = expr_sql(d, right, schema, cols, ctx)?;
            let same_type = ty(left)? == ty(right)?;
            let word = match op {
                Operator::And => "AND",
                Operator::Or => "OR",
                Operator::Eq | Operator::NotEq => {
                    if !(lk.eq_safe() && rk.eq_safe() && same_type) {
                        return None;
                    }
                    if *op == Operator::Eq { "=" } else { "<>" }
                }
                Operator::IsDistinctFrom | Operator::IsNotDistinctFrom => {
                    if !(lk.eq_safe() && rk.eq_safe() && same_type) {
                        return None;
                    }
                    return Some((
                        d.distinct_from(&l, &r, *op == Operator::IsDistinctFrom),
                        SqlKind::Bool,
                    ));
                }
                Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => {
                    if !(lk.order_safe() && rk.order_safe() && same_type) {
                        return None;
                    }
                    match op {
                        Operator::Lt => "<",
                        Operator::LtEq => "<=",
                        Operator::Gt => ">",
                        _ => ">=",
                    }
                }
                // Exact on both sides for decimals; the result is cast to DataFusion's type.
                // Integers of one type: the same value, truncating division and remainder with
                // the dividend's sign on both sides (only overflow differs: an error at the source,
                // as in PostgreSQL).
                Operator::Plus | Operator::Minus | Operator::Multiply => {
                    let decimals = lk == SqlKind::Decimal && rk == SqlKind::Decimal;
                    let integers = lk == SqlKind::Integer
                        && rk == SqlKind::Integer
                        && same_type
                        && d.integer_arithmetic();
                    if !(decimals || integers) {
                        return None;
                    }
                    match op {
                        Operator::Plus => "+",
                        Operator::Minus => "-",
                        _ => "*",
                    }
                }
                Operator::Divide | Operator::Modulo => {
                    if !(lk == SqlKind::Integer
                        && rk == SqlKind::Integer
                        && same_type
                        && d.integer_arithmetic())
                    {
                        return None;
                    }
                    if *op == Operator::Divide { "/" } else { "%" }
                }
                _ => return None,
            };
            let kind = match op {
                Operator::Plus
                | Operator::Minus
                | Operator::Multiply
                | Operator::Divide
                | Operator::Modulo => {
                    let out = ty(e)?;
                    let kind = match out {
                        DataType::Decimal128(..) if lk == SqlKind::Decimal => SqlKind::Decimal,
                        DataType::Int16 | DataType::Int32 | DataType::Int64
                            if lk == SqlKind::Integer && ty(left)? == out =>
                        {
                            SqlKind::Integer
                        }
                        _ => return None,
                    };
                    return Some((d.cast(&format!("({l} {word} {r})"), &out)?, kind));
                }
                _ => SqlKind::Bool,
            };
            Some((format!("({l} {word} {r})"), kind))
        }
        Expr::Not(inner) => Some((
            format!("(NOT {})", expr_sql(d, inner, schema, cols, ctx)?.0),
            SqlKind::Bool,
        )),
        Expr::IsNull(inner) => Some((
            format!("({} IS NULL)", expr_sql(d, inner, schema, cols, ctx)?.0),
            SqlKind::Bool,
        )),
        Expr::IsNotNull(inner) => Some((
            format!("({} IS NOT NULL)", expr_sql(d, inner, schema, cols, ctx)?.0),
            SqlKind::Bool,
        )),
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) => {
            let (x, xk) = expr_sql(d, expr, schema, cols, ctx)?;
            let (lo, lk) = expr_sql(d, low, schema, cols, ctx)?;
            let (hi, hk) = expr_sql(d, high, schema, cols, ctx)?;
            let t = ty(expr)?;
            if !(xk.order_safe() && lk.order_safe() && hk.order_safe())
                || ty(low)? != t
                || ty(high)? != t
            {
                return None;
            }
            let not = if *negated { "NOT " } else { "" };
            Some((format!("({x} {not}BETWEEN {lo} AND {hi})"), SqlKind::Bool))
        }
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) => {
            let (x, xk) = expr_sql(d, expr, schema, cols, ctx)?;
            let t = ty(expr)?;
            if !xk.eq_safe() || list.is_empty() {
                return None;
            }
            let mut items = Vec::new();
            for item in list {
                let (s, k) = expr_sql(d, item, schema, cols, ctx)?;
                if !k.eq_safe() || ty(item)? != t {
                    return None;
                }
                items.push(s);
            }
            let not = if *negated { "NOT " } else { "" };
            Some((
                format!("({x} {not}IN ({}))", items.join(", ")),
                SqlKind::Bool,
            ))
        }
        Expr::Like(Like {
            negated,
            expr,
            pattern,
            escape_char: None,
            case_insensitive: false,
        }) => {
            let (x, xk) = expr_sql(d, expr, schema, cols, ctx)?;
            let Expr::Literal(
                ScalarValue::Utf8(Some(p))
                | ScalarValue::LargeUtf8(Some(p))
                | ScalarValue::Utf8View(Some(p)),
                _,
            ) = pattern.as_ref()
            else {
                return None;
            };
            // A backslash is an escape at the source; keep those patterns local.
            if !matches!(xk, SqlKind::Text { eq: true, .. }) || p.contains('\\') {
                return None;
            }
            let (p, _) = expr_sql(d, pattern, schema, cols, ctx)?;
            let not = if *negated { "NOT " } else { "" };
            Some((format!("({x} {not}LIKE {p})"), SqlKind::Bool))
        }
        Expr::Case(Case {
            expr,
            when_then_expr,
            else_expr,
        }) => {
            let mut sql = String::from("(CASE");
            if let Some(x) = expr {
                let (x, xk) = expr_sql(d, x, schema, cols, ctx)?;
                if !xk.eq_safe() {
                    return None;
                }
                write!(sql, " {x}").ok()?;
            }
            let out = ty(e)?;
            for (w, t) in when_then_expr {
                let (w, _) = expr_sql(d, w, schema, cols, ctx)?;
                let (t, _) = expr_sql(d, t, schema, cols, ctx)?;
                write!(sql, " WHEN {w} THEN {}", d.cast(&t, &out)?).ok()?;
            }
            if let Some(x) = else_expr {
                let (x, _) = expr_sql(d, x, schema, cols, ctx)?;
                write!(sql, " ELSE {}", d.cast(&x, &out)?).ok()?;
            }
            sql.push_str(" END)");
            Some((sql, kind_of_type(&out)))
        }
        Expr::Cast(Cast { expr, field }) => {
            let to = field.data_type();
            let from = ty(expr)?;
            let (x, _) = expr_sql(d, expr, schema, cols, ctx)?;
            if &from == to {
                return expr_sql(d, expr, schema, cols, ctx);
            }
            let int_width = |t: &DataType| match t {
                DataType::Int8 => Some(1),
                DataType::Int16 => Some(2),
                DataType::Int32 => Some(4),
                DataType::Int64 => Some(8),
                _ => None,
            };
            let exact = match (&from, to) {
                (a, b) if int_width(a).is_some() && int_width(b).is_some() => {
                    int_width(a) <= int_width(b)
                }
                (a, DataType::Decimal128(..)) if int_width(a).is_some() => true,
                // Round to nearest on both sides.
                (DataType::Int16 | DataType::Int32 | DataType::Int64, DataType::Float64) => true,
                (DataType::Decimal128(_, s1), DataType::Decimal128(_, s2)) => s2 >= s1,
                // At most one ulp apart (PostgreSQL rounds correctly, arrow divides by 10^s).
                (DataType::Decimal128(..), DataType::Float64) => true,
                _ => false,
            };
            if !exact {
                return None;
            }
            Some((d.cast(&x, to)?, kind_of_type(to)))
        }
        _ => None,
    }
}

/// The SQL of one aggregate, cast to DataFusion's result type `out`.
fn aggregate_sql(
    d: &dyn SqlDialect,
    e: &Expr,
    schema: &DFSchema,
    cols: &Cols<'_>,
    out: &DataType,
    ctx: Ctx<'_>,
) -> Option<(String, SqlKind)> {
    let Expr::AggregateFunction(AggregateFunction { func, params }) = e else {
        return None;
    };
    if params.filter.is_some() || !params.order_by.is_empty() || params.null_treatment.is_some() {
        return None;
    }
    let name = d.aggregate(func.name())?;
    let [arg] = params.args.as_slice() else {
        return None;
    };
    let out_kind = kind_of_type(out);
    if func.name() == "count" {
        if let Expr::Literal(v, _) = arg
            && !v.is_null()
            && !params.distinct
        {
            return Some((d.cast("count(*)", out)?, out_kind));
        }
        let (x, k) = expr_sql(d, arg, schema, cols, ctx)?;
        if params.distinct && !k.group_safe() {
            return None;
        }
        let distinct = if params.distinct { "DISTINCT " } else { "" };
        return Some((d.cast(&format!("{name}({distinct}{x})"), out)?, out_kind));
    }
    if params.distinct {
        return None;
    }
    // sum of a bigint is summed as numeric here (`crate::numeric`); the source's own sum of the
    // bigint is already exact (PostgreSQL's numeric, MariaDB's DECIMAL) and faster than of its
    // numeric cast.
    let arg = match arg {
        Expr::Cast(Cast { expr, field })
            if func.name() == "sum"
                && field.data_type() == &DataType::Decimal128(38, 0)
                && expr.get_type(schema).ok()? == DataType::Int64 =>
        {
            expr.as_ref()
        }
        arg => arg,
    };
    let (x, k) = expr_sql(d, arg, schema, cols, ctx)?;
    let float8 = DataType::Float64;
    let sql = match func.name() {
        "sum" => match k {
            SqlKind::Integer | SqlKind::Decimal => format!("{name}({x})"),
            SqlKind::Float => format!("{name}({})", d.cast(&x, &float8)?),
            _ => return None,
        },
        "min" | "max" => {
            if !k.order_safe() {
                return None;
            }
            format!("{name}({x})")
        }
        "avg" => match (k, out) {
            (SqlKind::Integer | SqlKind::Float, DataType::Float64) => {
                format!("{name}({})", d.cast(&x, &float8)?)
            }
            // Integers (`crate::avg`): the exact sum scaled by 10^s, divided by the count and
            // rounded to an integer (PostgreSQL and MySQL round halves away from zero), then
            // scaled back: exact for any sum, where dividing a decimal of scale s would overflow
            // it (10^(38-s)) or leave the quotient's digits to the source's division scale.
            (SqlKind::Integer, DataType::Decimal128(_, s)) => {
                let sum = d.cast(&format!("sum({x})"), &DataType::Decimal128(38, 0))?;
                let (up, down) = scaling(*s)?;
                format!("(round({sum} * {up} / NULLIF(count({x}), 0)) * {down})")
            }
            // Decimals (`crate::avg`, at least 16 decimals): the same, the sum at its own scale.
            (SqlKind::Decimal, DataType::Decimal128(_, s2)) => {
                let DataType::Decimal128(_, s1) = ty_of(arg, schema)? else {
                    return None;
                };
                if s2 < &s1 {
                    return None;
                }
                let (up, down) = scaling(*s2)?;
                format!("(round(sum({x}) * {up} / NULLIF(count({x}), 0)) * {down})")
            }
            _ => return None,
        },
        "stddev" | "stddev_pop" | "var" | "var_pop" => match k {
            SqlKind::Integer | SqlKind::Decimal | SqlKind::Float => {
                format!("{name}({})", d.cast(&x, &float8)?)
            }
            _ => return None,
        },
        _ => return None,
    };
    let kind = if matches!(func.name(), "min" | "max") {
        k
    } else {
        out_kind
    };
    Some((d.cast(&sql, out)?, kind))
}

/// The literals `10^scale` and `10^-scale` (`1000`, `0.001`), for a scale of 0 to 38.
fn scaling(scale: i8) -> Option<(String, String)> {
    let scale = usize::try_from(scale).ok().filter(|s| *s <= 38)?;
    let up = format!("1{}", "0".repeat(scale));
    let down = match scale {
        0 => "1".to_string(),
        _ => format!("0.{}1", "0".repeat(scale - 1)),
    };
    Some((up, down))
}

fn ty_of(e: &Expr, schema: &DFSchema) -> Option<DataType> {
    e.get_type(schema).ok()
}

/// Table name of the replacement scans.
const REMOTE: &str = "__remote";

/// `plan` replaced by a scan of `rel`'s statement, under a projection giving back its columns'
/// names and qualifiers (and, for a top-N, a local sort of those few rows to restore the order).
fn replace(plan: &LogicalPlan, rel: Rel) -> Option<LogicalPlan> {
    let d = rel.source.dialect();
    let schema = plan.schema();
    let mut items = Vec::new();
    let mut fields = Vec::new();
    for (i, (_, field)) in schema.iter().enumerate() {
        items.push(format!(
            "{} AS {}",
            d.cast(&col_ref(d, "t", i), field.data_type())?,
            cname(d, i)
        ));
        fields.push(Field::new(
            format!("c{i}"),
            field.data_type().clone(),
            field.is_nullable(),
        ));
    }
    let sql = format!("SELECT {} FROM ({}) AS t", items.join(", "), rel.sql);
    let table = RemoteQueryTable {
        source: Arc::clone(&rel.source),
        sql,
        schema: Arc::new(Schema::new(fields)),
    };
    let scan = LogicalPlanBuilder::scan(REMOTE, provider_as_source(Arc::new(table)), None)
        .ok()?
        .build()
        .ok()?;
    let exprs = schema
        .iter()
        .enumerate()
        .map(|(i, (q, f))| {
            Expr::Column(Column::new(Some(REMOTE), format!("c{i}")))
                .alias_qualified(q.cloned(), f.name())
        })
        .collect();
    let projection = LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(scan)).ok()?);
    Some(match rel.order {
        Some(expr) => LogicalPlan::Sort(Sort {
            expr,
            input: Arc::new(projection),
            fetch: None,
        }),
        None => projection,
    })
}

/// A statement pushed to a SQL source, as a table: its scan is one split running the statement.
#[derive(Debug)]
pub struct RemoteQueryTable {
    source: Arc<dyn SqlSource>,
    sql: String,
    schema: SchemaRef,
}

impl RemoteQueryTable {
    /// A table whose scan runs `sql` at `source`, reading its columns as `schema` (see
    /// [`SqlSource::query_scan`]).
    pub fn new(source: Arc<dyn SqlSource>, sql: String, schema: SchemaRef) -> Self {
        Self {
            source,
            sql,
            schema,
        }
    }

    /// The statement sent to the source.
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

#[async_trait]
impl TableProvider for RemoteQueryTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let d = self.source.dialect();
        // A statement's read-only marker stays in front of whatever is wrapped around it.
        let (marker, inner) = match self.sql.strip_prefix(READ_ONLY_MARKER) {
            Some(inner) => (READ_ONLY_MARKER, inner),
            None => ("", self.sql.as_str()),
        };
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let (mut sql, schema) = match projection {
            Some(p) if *p != all => {
                let mut items: Vec<String> = p.iter().map(|&i| cname(d, i)).collect();
                if items.is_empty() && !d.empty_select() {
                    items.push(format!("1 AS {}", d.quote_ident("c_")));
                }
                (
                    format!("SELECT {} FROM ({inner}) AS q", items.join(", ")),
                    Arc::new(self.schema.project(p)?),
                )
            }
            _ => (inner.to_string(), Arc::clone(&self.schema)),
        };
        if limit.is_some() {
            sql = format!("SELECT * FROM ({sql}) AS q{}", d.limit(limit, 0));
        }
        self.source.query_scan(format!("{marker}{sql}"), schema)
    }
}
