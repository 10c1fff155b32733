//! A correlated subquery planned once per apply partition and re-executed for every binding, instead
//! of planned anew per binding with the binding's values as literals (analysis, optimization and
//! physical planning were ~85% of a binding's cost: ~9 ms in a debug build for a count over `nation`).
//!
//! The subquery's logical plan (outer references as placeholders `$1..$n`) is optimized once with
//! the placeholders in it; each placeholder then becomes a call of a nullary function reading the
//! binding from a slot the apply writes before each run ([`BoundValue`], named `$i` as the
//! placeholder so that no output name changes), and the plan is planned physically once. Each run
//! takes a copy with every node's state reset (DataFusion's `reset_plan_states`, what recursive
//! queries use), so hash tables and repartition channels of one binding never serve the next.
//! Dynamic filters are off in that plan: a reset join would leave its previous run's filter on the
//! scan (the limitation `reset_plan_states` documents).
//!
//! Not reused, planned per binding as before, when the values matter to planning: a subquery reading
//! a SQL source (the binding is pushed into the remote SQL as a literal: `WHERE x.b < 5` at
//! PostgreSQL instead of the whole table here per binding), a scan that took a filter holding a
//! binding (a connector may act on a literal), an extension node other than a nested apply, or a
//! nested apply whose own subqueries read this one's bindings (a reference two levels up).

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, ScalarValue, internal_err};
use datafusion::datasource::source_as_provider;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use tributary_connectors::sql_source::as_sql_table;

use super::{ApplyNode, any_node};

/// The values of one binding, in placeholder order (`$1` first); written by the apply before each
/// run, read by every [`BoundValue`] of the plan.
type Slot = Arc<Mutex<Vec<ScalarValue>>>;

/// How one apply partition runs one subquery.
#[derive(Debug, Default)]
pub(super) enum Runner {
    /// Before the first binding.
    #[default]
    Untried,
    /// Planned once; see the module docs.
    Reused(Reusable),
    /// Planned anew per binding with its values as literals.
    PerBinding,
}

/// A subquery's physical plan whose bindings are read from a slot.
#[derive(Debug)]
pub(super) struct Reusable {
    plan: Arc<dyn ExecutionPlan>,
    slot: Slot,
}

impl Reusable {
    /// The plan, with its state reset, ready to run once with `values` as its bindings (one per
    /// placeholder, in order). The previous run's stream must be done with: the slot is shared.
    pub(super) fn bind(&self, values: &[ScalarValue]) -> Result<Arc<dyn ExecutionPlan>> {
        match self.slot.lock() {
            Ok(mut slot) => *slot = values.to_vec(),
            Err(_) => return internal_err!("apply: a binding slot was poisoned"),
        }
        reset_plan_states(Arc::clone(&self.plan))
    }
}

/// Plans `plan` (outer references as placeholders) once for re-execution, or `None` when its
/// bindings matter to planning (see the module docs). `state` is the session's; dynamic filters
/// are turned off in a copy.
///
/// Errors: what optimizing or planning the subquery gives (the caller then plans per binding,
/// which may succeed where the placeholders could not: a literal folds where a function call
/// does not).
pub(super) async fn prepare(plan: &LogicalPlan, state: &SessionState) -> Result<Option<Reusable>> {
    if reads_sql_source(plan) {
        return Ok(None);
    }
    let mut state = state.clone();
    let optimizer = &mut state.config_mut().options_mut().optimizer;
    optimizer.enable_dynamic_filter_pushdown = false;
    optimizer.enable_join_dynamic_filter_pushdown = false;
    optimizer.enable_topk_dynamic_filter_pushdown = false;
    optimizer.enable_aggregate_dynamic_filter_pushdown = false;
    let optimized = state.optimize(plan)?;
    if !placeholders_only_in_expressions(&optimized) {
        return Ok(None);
    }
    let slot: Slot = Arc::new(Mutex::new(Vec::new()));
    let bound = optimized
        .transform_up_with_subqueries(|node| {
            node.map_expressions(|e| {
                e.transform(|e| match e {
                    Expr::Placeholder(p) => {
                        let Some(index) =
                            p.id.strip_prefix('$')
                                .and_then(|n| n.parse::<usize>().ok())
                                .and_then(|n| n.checked_sub(1))
                        else {
                            return internal_err!("apply: placeholder {}", p.id);
                        };
                        let Some(field) = p.field else {
                            return internal_err!("apply: placeholder {} has no type", p.id);
                        };
                        let udf = ScalarUDF::new_from_impl(BoundValue {
                            index,
                            field,
                            slot: Arc::clone(&slot),
                            signature: Signature::nullary(Volatility::Volatile),
                        });
                        Ok(Transformed::yes(udf.call(Vec::new())))
                    }
                    other => Ok(Transformed::no(other)),
                })
            })
        })?
        .data;
    let physical = state
        .query_planner()
        .create_physical_plan(&bound, &state)
        .await?;
    if holds_scalar_subquery_exec(&physical) {
        return Ok(None);
    }
    Ok(Some(Reusable {
        plan: physical,
        slot,
    }))
}

/// Whether `plan` runs uncorrelated scalar subqueries (DataFusion's `ScalarSubqueryExec`): a reset
/// keeps their shared result slots, which a task of an abandoned run (an EXISTS answered by its first
/// row) may still fill after the next run cleared them (`already populated`).
fn holds_scalar_subquery_exec(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.exists(|node| Ok(node.name() == "ScalarSubqueryExec"))
        .unwrap_or(true)
}

/// Whether `plan` or a subquery in it scans a SQL source's table.
fn reads_sql_source(plan: &LogicalPlan) -> bool {
    any_node(plan, &|node| {
        matches!(node, LogicalPlan::TableScan(scan)
            if source_as_provider(&scan.source)
                .ok()
                .is_some_and(|p| as_sql_table(p.as_ref()).is_some()))
    })
}

/// Whether every placeholder of `plan` (optimized) sits where [`prepare`] replaces it: not in a
/// scan's pushed filters, not inside an extension node (a nested apply's subqueries are not among
/// its expressions; one whose subqueries hold no placeholder is fine).
fn placeholders_only_in_expressions(plan: &LogicalPlan) -> bool {
    let mut ok = true;
    let _ = plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) if scan.filters.iter().any(has_placeholder) => {
                ok = false;
            }
            // The physical planner takes only literals there (`LIMIT 1 OFFSET o.k`).
            LogicalPlan::Limit(limit)
                if limit
                    .skip
                    .iter()
                    .chain(limit.fetch.iter())
                    .any(|e| has_placeholder(e)) =>
            {
                ok = false;
            }
            LogicalPlan::Extension(extension) => {
                match extension.node.as_any().downcast_ref::<ApplyNode>() {
                    Some(apply)
                        if apply.subqueries.iter().all(|s| {
                            !any_node(&s.subquery().subquery, &|n| {
                                n.expressions().iter().any(has_placeholder)
                                    || matches!(n, LogicalPlan::Extension(_))
                            })
                        }) => {}
                    _ => ok = false,
                }
            }
            _ => {}
        }
        Ok(if ok {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    ok
}

fn has_placeholder(e: &Expr) -> bool {
    e.exists(|e| Ok(matches!(e, Expr::Placeholder(_))))
        .unwrap_or(true)
}

/// The value of placeholder `$index+1` in the current binding: a nullary function returning a
/// scalar of the placeholder's type, named as the placeholder.
#[derive(Debug)]
struct BoundValue {
    index: usize,
    /// The placeholder's field: its type, nullability and metadata, as the plan was optimized
    /// with (a non-null binding computed into a column must stay non-null for the physical
    /// schema checks).
    field: FieldRef,
    slot: Slot,
    signature: Signature,
}

impl PartialEq for BoundValue {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index
            && self.field == other.field
            && Arc::ptr_eq(&self.slot, &other.slot)
    }
}

impl Eq for BoundValue {}

impl Hash for BoundValue {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.index.hash(state);
        self.field.data_type().hash(state);
    }
}

impl ScalarUDFImpl for BoundValue {
    fn name(&self) -> &str {
        "__apply_binding"
    }

    fn display_name(&self, _args: &[Expr]) -> Result<String> {
        Ok(format!("${}", self.index + 1))
    }

    fn schema_name(&self, _args: &[Expr]) -> Result<String> {
        Ok(format!("${}", self.index + 1))
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.field.data_type().clone())
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::clone(&self.field))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let value = match self.slot.lock() {
            Ok(slot) => slot.get(self.index).cloned(),
            Err(_) => return internal_err!("apply: a binding slot was poisoned"),
        };
        match value {
            Some(value) => Ok(ColumnarValue::Scalar(value)),
            None => internal_err!("apply: binding ${} not set", self.index + 1),
        }
    }
}
