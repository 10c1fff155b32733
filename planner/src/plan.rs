//! From a statement to a distributed plan: the one path every query takes before `exec` runs it.
//!
//! 1. [`logical_plan`]: a parsed SQL statement to a DataFusion logical plan in the session's catalogs
//!    (write statements on writable catalogs through [`crate::write`]; refusing any other statement
//!    that would write).
//! 2. [`plan_statement`]: a logical plan to what `exec` runs, a [`PlannedStatement`]: DataFusion's
//!    optimizer (with [`SqlSourcePushdown`](crate::pushdown::SqlSourcePushdown) among its rules),
//!    physical planning, then the [fragmenter](crate::fragment) cuts the physical plan into stages.
//!
//! Uncorrelated scalar subqueries (`WHERE x = (SELECT max(y) FROM t)`) are pulled out of the plan
//! here: DataFusion plans them as a `ScalarSubqueryExec` that runs each subquery when it is first
//! executed and publishes the values to `ScalarSubqueryExpr`s in its input. Once the input is cut into
//! stages, those expressions may be evaluated by tasks of other stages before that node ever runs, so
//! each subquery becomes its own [`DistributedPlan`] ([`DistributedPlan::scalar_subqueries`]) that
//! `exec` runs first, publishing its value, before scheduling the stages that read it (Trino likewise
//! runs such subqueries as separate sub-plans whose single value feeds the main plan).
//!
//! The planner decides *what* runs where; it runs nothing itself.

use std::sync::Arc;

use datafusion::common::Column;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::physical_planning_context::{ScalarSubqueryResults, SubqueryIndex};
use datafusion::logical_expr::{Expr, LogicalPlan, Projection};
use datafusion::physical_plan::scalar_subquery::ScalarSubqueryExec;
use datafusion::physical_plan::{ExecutionPlan, replace_children_if_necessary};
use datafusion::sql::parser::Statement;

use tributary_connectors::sqlstate;

use crate::explain;
use crate::fragment::{StagePlan, fragment};
use crate::sizing::{PartitionSizing, scanned_bytes, split_file_scans};

/// Why a statement could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// DataFusion refused the statement (syntax it cannot plan, unknown table or column, type error).
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// The statement would write or change a catalog that is read-only (anything but `lake`
    /// catalogs; in a lake catalog, a table not written by Tributary), or is one of DataFusion's
    /// own session statements; the message names it. Front ends report SQLSTATE `0A000`
    /// (feature_not_supported), as PostgreSQL does for what it cannot do.
    #[error("{0} is not supported: the catalog or table is read-only")]
    ReadOnly(String),
    /// A relation the statement names does not exist; found by looking the statement's
    /// references up in the catalogs after DataFusion refused it, not by reading its message.
    #[error(transparent)]
    Undefined(#[from] UndefinedObject),
}

/// What is missing of a relation a statement names, PostgreSQL's way: the catalog (`3D000`
/// invalid_catalog_name, `catalog "c" does not exist`), the schema (`3F000`, `schema "s" does not
/// exist`) or the table (`42P01` undefined_table, `relation "c.s.t" does not exist`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UndefinedObject {
    /// No catalog of this name.
    #[error("catalog \"{0}\" does not exist")]
    Catalog(String),
    /// The catalog has no schema of this name.
    #[error("schema \"{0}\" does not exist")]
    Schema(String),
    /// The schema has no table of this name (the name fully qualified).
    #[error("relation \"{0}\" does not exist")]
    Table(String),
    /// No scalar, aggregate, window or higher-order function of this name (`42883`
    /// undefined_function, `function "f" does not exist`; PostgreSQL also names the argument types).
    #[error("function \"{0}\" does not exist")]
    Function(String),
}

impl UndefinedObject {
    /// The SQLSTATE PostgreSQL reports for it.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            UndefinedObject::Catalog(_) => sqlstate::INVALID_CATALOG_NAME,
            UndefinedObject::Schema(_) => sqlstate::UNDEFINED_SCHEMA,
            UndefinedObject::Table(_) => sqlstate::UNDEFINED_TABLE,
            UndefinedObject::Function(_) => sqlstate::UNDEFINED_FUNCTION,
        }
    }
}

/// DataFusion's `statement_to_plan`, with integer literals typed as PostgreSQL types them
/// ([`crate::integers::type_integer_literals`]), except that when it fails and one of the
/// relations or functions the statement names is missing, the error is that object as an
/// [`UndefinedObject`] (DataFusion reports them only as planning text). CTE names are not
/// relations (DataFusion's reference resolution skips them).
pub async fn statement_to_plan(
    state: &SessionState,
    mut statement: Statement,
) -> std::result::Result<LogicalPlan, PlanError> {
    let references = state.resolve_table_references(&statement)?;
    let called = called_functions(&statement);
    crate::integers::type_integer_literals(&mut statement);
    match state.statement_to_plan(statement).await {
        Ok(plan) => Ok(plan),
        Err(e) => match missing_relation(state, references).await {
            Some(missing) => Err(missing.into()),
            None => match missing_function(state, called) {
                Some(missing) => Err(missing.into()),
                None => Err(e.into()),
            },
        },
    }
}

/// The names of the functions `statement` calls with parentheses, as DataFusion's SQL planner looks
/// them up: a one-part name normalized (lower case unless quoted), a qualified one as written. A
/// name without parentheses (`current_date`) may be a column, so it is left out.
fn called_functions(statement: &Statement) -> Vec<String> {
    use datafusion::sql::sqlparser::ast::{Expr, FunctionArguments, visit_expressions};
    let statement = match statement {
        Statement::Statement(statement) => statement.as_ref(),
        Statement::Explain(explain) => return called_functions(&explain.statement),
        _ => return Vec::new(),
    };
    let mut names = Vec::new();
    let _ = visit_expressions(statement, |expr: &Expr| {
        if let Expr::Function(function) = expr
            && !matches!(function.args, FunctionArguments::None)
        {
            let parts = &function.name.0;
            let name = match (parts.len(), parts.first().and_then(|p| p.as_ident())) {
                (1, Some(ident)) if ident.quote_style.is_some() => ident.value.clone(),
                (1, Some(ident)) => ident.value.to_lowercase(),
                _ => function.name.to_string(),
            };
            names.push(name);
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    names
}

/// The first of `names` that is no function of `state` (scalar, higher-order, aggregate, window, or
/// one DataFusion's SQL planner builds itself: `unnest`).
fn missing_function(state: &SessionState, names: Vec<String>) -> Option<UndefinedObject> {
    const PLANNED_BY_DATAFUSION: &[&str] = &["unnest", "unnest_outer"];
    names
        .into_iter()
        .find(|name| {
            let name = name.as_str();
            !(PLANNED_BY_DATAFUSION.contains(&name)
                || state.scalar_functions().contains_key(name)
                || state.higher_order_functions().contains_key(name)
                || state.aggregate_functions().contains_key(name)
                || state.window_functions().contains_key(name))
        })
        .map(UndefinedObject::Function)
}

/// The first of `references` that does not resolve in `state`'s catalogs, if any.
async fn missing_relation(
    state: &SessionState,
    references: Vec<datafusion::common::TableReference>,
) -> Option<UndefinedObject> {
    let catalogs = state.catalog_list();
    for reference in references {
        let defaults = &state.config_options().catalog;
        let resolved = reference.resolve(&defaults.default_catalog, &defaults.default_schema);
        if *resolved.schema == *datafusion::catalog::information_schema::INFORMATION_SCHEMA
            && state.config().information_schema()
        {
            continue;
        }
        let Some(catalog) = catalogs.catalog(&resolved.catalog) else {
            return Some(UndefinedObject::Catalog(resolved.catalog.to_string()));
        };
        let Some(schema) = catalog.schema(&resolved.schema) else {
            return Some(UndefinedObject::Schema(resolved.schema.to_string()));
        };
        // `table`, not `table_exist`: some catalogs only know a table once they looked it up. A
        // lookup that fails (a source down, no snapshot at that time) is DataFusion's error already.
        if matches!(schema.table(&resolved.table).await, Ok(None)) {
            return Some(UndefinedObject::Table(
                datafusion::common::TableReference::from(resolved).to_string(),
            ));
        }
    }
    None
}

/// Plans one parsed statement in `state`'s catalogs (DataFusion's `statement_to_plan`). A query
/// DataFusion refuses (or whose subqueries its analyzer refuses) runs whole at its SQL source when
/// [`crate::statement_pushdown`] applies.
///
/// Errors: [`PlanError::DataFusion`] for what DataFusion refuses, [`PlanError::ReadOnly`] for DDL,
/// DML, `COPY ... TO 'file'` and DataFusion's session statements (`SET` and transactions are the
/// front end's, before they reach here) except the writes [`crate::write`] plans.
pub async fn logical_plan(
    state: &SessionState,
    statement: Statement,
) -> std::result::Result<LogicalPlan, PlanError> {
    if let Some(plan) = crate::write::plan_write(state, &statement).await? {
        return Ok(plan);
    }
    // Kept for statement pushdown (a clone of the syntax tree, small beside planning).
    let original = statement.clone();
    let plan = match statement_to_plan(state, statement).await {
        Ok(plan) => plan,
        Err(e) => {
            return match crate::statement_pushdown::plan_at_source(state, &original).await {
                Some(plan) => Ok(plan),
                None => Err(e),
            };
        }
    };
    check_read_only(&plan)?;
    // DataFusion's SQL planner takes some subqueries that its analyzer, or physical planning, then
    // refuse (a correlated scalar subquery that is no aggregate; a reference two levels up: the
    // apply runs them, `crate::apply::refused_by_datafusion`, but PostgreSQL runs them better).
    // Only worth finding out here when the statement could run whole at a SQL
    // source, as it is then planned twice (cheaply when it is pushed whole: no splits to list).
    // (DataFusion plans an EXPLAIN whose plan fails as lines saying so: the plan itself is tried.)
    let query = match &plan {
        LogicalPlan::Explain(explain) => explain.plan.as_ref(),
        LogicalPlan::Analyze(analyze) => analyze.input.as_ref(),
        plan => plan,
    };
    if crate::statement_pushdown::may_run_at_source(query)
        && (crate::apply::refused_by_datafusion(query)
            || state.create_physical_plan(query).await.is_err())
        && let Some(at_source) = crate::statement_pushdown::plan_at_source(state, &original).await
    {
        return Ok(at_source);
    }
    Ok(settle_result_types(state, plan))
}

/// `plan` (a query) with the output types its analysis will give it, so that what clients are told
/// (a prepared statement's Describe uses the planned schema) is what the rows carry. DataFusion's
/// SQL planner gives a union its first input's types and a CASE its first branch's; type coercion
/// later makes them the common type (`SELECT int4_col UNION ALL SELECT int8_col` was described as
/// `integer` while its rows were `bigint`). When a type differs, a projection casting to the
/// optimized plan's types is put on top (type coercion then makes those casts no-ops). A plan the
/// analyzer refuses as it is (parameters of unknown type) is returned unchanged.
fn settle_result_types(state: &SessionState, plan: LogicalPlan) -> LogicalPlan {
    if !matches!(
        plan,
        LogicalPlan::Projection(_)
            | LogicalPlan::Union(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::Distinct(_)
            | LogicalPlan::Aggregate(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::Window(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::RecursiveQuery(_)
    ) {
        return plan;
    }
    // Whether `other` has the plan's columns with some of another type.
    let types_differ = |other: &LogicalPlan| {
        let (planned, other) = (plan.schema().fields(), other.schema().fields());
        planned.len() == other.len()
            && planned
                .iter()
                .zip(other)
                .any(|(p, o)| p.data_type() != o.data_type())
    };
    // Analysis alone is cheap and settles most plans; a type it changes may still change back
    // once constants are folded (`round(x, 1)`'s scale needs its literal), so the optimized
    // plan's types decide.
    match state
        .analyzer()
        .execute_and_check(plan.clone(), state.config_options(), |_, _| {})
    {
        Ok(analyzed) if types_differ(&analyzed) => {}
        _ => return plan,
    }
    let Ok(optimized) = state.optimize(&plan) else {
        return plan;
    };
    if !types_differ(&optimized) {
        return plan;
    }
    let planned = plan.schema();
    let settled = optimized.schema();
    let exprs: Vec<Expr> = planned
        .iter()
        .zip(settled.fields())
        .map(|((qualifier, field), settled)| {
            let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
            let column = if field.data_type() == settled.data_type() {
                column
            } else {
                Expr::Cast(datafusion::logical_expr::Cast::new(
                    Box::new(column),
                    settled.data_type().clone(),
                ))
            };
            column.alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    match Projection::try_new(exprs, Arc::new(plan.clone())) {
        Ok(projection) => LogicalPlan::Projection(projection),
        Err(_) => plan,
    }
}

/// Refuses plans that would write, except into a writable table: see [`PlanError::ReadOnly`].
pub fn check_read_only(plan: &LogicalPlan) -> std::result::Result<(), PlanError> {
    if crate::write::is_writable_target(plan) {
        return Ok(());
    }
    let what = match plan {
        LogicalPlan::Dml(dml) => format!("{} on \"{}\"", dml.op, dml.table_name),
        LogicalPlan::Ddl(ddl) => ddl.name().to_string(),
        LogicalPlan::Copy(_) => "COPY".to_string(),
        LogicalPlan::Statement(statement) => statement.name().to_string(),
        _ => return Ok(()),
    };
    Err(PlanError::ReadOnly(what))
}

/// What `exec` runs for one statement.
#[derive(Debug)]
pub enum PlannedStatement {
    /// A query: run the plan's stages and stream the root stage's rows to the client.
    Query(DistributedPlan),
    /// `EXPLAIN [VERBOSE]`: nothing runs; the result is these lines, one `QUERY PLAN` row each.
    Explain(Vec<String>),
    /// `EXPLAIN ANALYZE`: run the plan, drop its rows, then render it with the metrics gathered
    /// ([`explain::render_analyzed`]).
    Analyze(DistributedPlan),
}

/// A query cut into stages, with the scalar subqueries that must run before them.
#[derive(Debug)]
pub struct DistributedPlan {
    /// The physical plan the stages were cut from, without its scalar subqueries (for tests and
    /// tools that run a plan in one piece; `exec` runs [`DistributedPlan::stages`]).
    pub physical: Arc<dyn ExecutionPlan>,
    /// The stages, root first: see [`StagePlan`].
    pub stages: StagePlan,
    /// Uncorrelated scalar subqueries the stages read, in the order they must run (a subquery's own
    /// subqueries are inside its plan). Empty for most queries.
    pub scalar_subqueries: Vec<ScalarSubquery>,
}

/// One uncorrelated scalar subquery: a plan of one column and at most one row whose value the
/// stages of the enclosing [`DistributedPlan`] read.
#[derive(Debug)]
pub struct ScalarSubquery {
    /// The subquery's own distributed plan.
    pub plan: DistributedPlan,
    /// Where the value goes: the container the plan's `ScalarSubqueryExpr`s read, and the slot.
    results: ScalarSubqueryResults,
    index: SubqueryIndex,
}

impl ScalarSubquery {
    /// Publishes the subquery's value (NULL of the column's type for no rows) to the expressions of
    /// the enclosing plan that read it. Call once, before the enclosing plan's stages run.
    pub fn publish(&self, value: ScalarValue) -> Result<()> {
        self.results.set(self.index, value)
    }
}

/// Optimizes and physically plans `plan`, then cuts it into stages: see the module docs.
///
/// `EXPLAIN` renders the stages (with the optimized logical plan first when `VERBOSE`), keeping
/// scalar subqueries in place so they show. Errors: DataFusion's planning errors, and
/// `NotImplemented` from [`fragment`] for a plan the exchanges cannot run.
pub async fn plan_statement(state: &SessionState, plan: LogicalPlan) -> Result<PlannedStatement> {
    plan_statement_sized(state, plan, None).await
}

/// [`plan_statement`] whose hash partition count follows the bytes the statement scans when
/// `sizing` is given (`retry_policy = TASK`): planned once with the session's partitions, and
/// again with [`PartitionSizing::partitions`] of its [`scanned_bytes`] when that differs; then its
/// file scans are cut into splits of the target size ([`split_file_scans`]).
pub async fn plan_statement_sized(
    state: &SessionState,
    plan: LogicalPlan,
    sizing: Option<PartitionSizing>,
) -> Result<PlannedStatement> {
    match plan {
        LogicalPlan::Explain(explain) => {
            // Planned with a fresh notebook for the join pushdown decisions, shown at the end.
            let notes = crate::pushdown::JoinPushdownNotes::default();
            let mut noted = state.clone();
            noted
                .config_mut()
                .options_mut()
                .extensions
                .insert(notes.clone());
            let state = &noted;
            let physical = physical_plan(state, &explain.plan, sizing).await?;
            let staged = fragment(physical)?;
            let mut lines = Vec::new();
            if explain.verbose {
                lines.push("Optimized logical plan:".to_string());
                let optimized = state.optimize(&explain.plan)?;
                lines.extend(
                    optimized
                        .display_indent()
                        .to_string()
                        .lines()
                        .map(|l| format!("  {l}")),
                );
            }
            lines.extend(explain::render(&staged, false));
            let notes = notes.take();
            if !notes.is_empty() {
                lines.push("Pushdown decisions:".to_string());
                lines.extend(notes.into_iter().map(|n| format!("  {n}")));
            }
            Ok(PlannedStatement::Explain(lines))
        }
        LogicalPlan::Analyze(analyze) => {
            let physical = physical_plan(state, &analyze.input, sizing).await?;
            Ok(PlannedStatement::Analyze(distribute(physical)?))
        }
        plan => {
            check_read_only(&plan).map_err(|e| DataFusionError::NotImplemented(e.to_string()))?;
            let physical = physical_plan(state, &plan, sizing).await?;
            Ok(PlannedStatement::Query(distribute(physical)?))
        }
    }
}

/// DataFusion's physical plan of `plan`, with as many hash partitions as `sizing` gives for the
/// bytes it scans (the session's `target_partitions` without `sizing`).
async fn physical_plan(
    state: &SessionState,
    plan: &LogicalPlan,
    sizing: Option<PartitionSizing>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let physical = state.create_physical_plan(plan).await?;
    let Some(sizing) = sizing else {
        return Ok(physical);
    };
    let partitions = sizing.partitions(scanned_bytes(&physical));
    let physical = if partitions == state.config().target_partitions() {
        physical
    } else {
        let mut sized = state.clone();
        sized.config_mut().options_mut().execution.target_partitions = partitions;
        sized.create_physical_plan(plan).await?
    };
    split_file_scans(physical, sizing.target_bytes, state.config_options())
}

/// Pulls the scalar subqueries out of `physical` and cuts the rest into stages.
pub fn distribute(physical: Arc<dyn ExecutionPlan>) -> Result<DistributedPlan> {
    let mut scalar_subqueries = Vec::new();
    let main = extract_scalar_subqueries(physical, &mut scalar_subqueries)?;
    Ok(DistributedPlan {
        stages: fragment(main.clone())?,
        physical: main,
        scalar_subqueries,
    })
}

/// Removes every `ScalarSubqueryExec` of `plan`, appending its subqueries (each distributed in
/// turn) to `out` in the order DataFusion would run them, and returns the plan without those nodes.
fn extract_scalar_subqueries(
    plan: Arc<dyn ExecutionPlan>,
    out: &mut Vec<ScalarSubquery>,
) -> Result<Arc<dyn ExecutionPlan>> {
    if let Some(node) = plan.downcast_ref::<ScalarSubqueryExec>() {
        for link in node.subqueries() {
            out.push(ScalarSubquery {
                plan: distribute(link.plan.clone())?,
                results: node.results().clone(),
                index: link.index,
            });
        }
        return extract_scalar_subqueries(node.input().clone(), out);
    }
    let children = plan
        .children()
        .into_iter()
        .map(|child| extract_scalar_subqueries(child.clone(), out))
        .collect::<Result<Vec<_>>>()?;
    if children.is_empty() {
        Ok(plan)
    } else {
        replace_children_if_necessary(plan, children)
    }
}

#[cfg(test)]
mod undefined_tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn plan(ctx: &SessionContext, sql: &str) -> std::result::Result<LogicalPlan, PlanError> {
        let state = ctx.state();
        let statement = state
            .sql_to_statement(sql, &datafusion::config::Dialect::PostgreSQL)
            .unwrap();
        statement_to_plan(&state, statement).await
    }

    /// Which part of a missing relation is missing comes from the catalogs, with PostgreSQL's codes;
    /// CTE names and other planning errors are left alone.
    #[tokio::test]
    async fn missing_relations_are_typed() {
        let ctx = SessionContext::new();
        ctx.sql("create table t as values (1)").await.unwrap();
        let undefined = |r: std::result::Result<LogicalPlan, PlanError>| match r {
            Err(PlanError::Undefined(u)) => (u.sqlstate(), u.to_string()),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            undefined(plan(&ctx, "select * from t join nope on true").await),
            (
                "42P01",
                "relation \"datafusion.public.nope\" does not exist".into()
            )
        );
        assert_eq!(
            undefined(plan(&ctx, "select * from nosuch.t").await),
            ("3F000", "schema \"nosuch\" does not exist".into())
        );
        assert_eq!(
            undefined(plan(&ctx, "select * from nocat.s.t").await),
            ("3D000", "catalog \"nocat\" does not exist".into())
        );
        assert!(
            plan(&ctx, "with nope as (select 1) select * from nope")
                .await
                .is_ok()
        );
        assert!(matches!(
            plan(&ctx, "select nope_column from t").await,
            Err(PlanError::DataFusion(_))
        ));
    }
}
