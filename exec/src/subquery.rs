//! Uncorrelated scalar subqueries (`WHERE x = (SELECT max(y) FROM t)`).
//!
//! DataFusion plans them as a `ScalarSubqueryExec` that runs each subquery when the node is first executed
//! and publishes the values to `ScalarSubqueryExpr`s in its input. Once the input is cut into stages, the
//! expressions may be evaluated by tasks of other stages before that node ever runs, so the engine runs
//! the subqueries first, each as its own staged execution, publishes their values, and removes the
//! `ScalarSubqueryExec` nodes before the query's stages are scheduled (Trino likewise runs such
//! subqueries as separate sub-plans whose single value feeds the main plan).

use std::sync::Arc;

use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::scalar_subquery::ScalarSubqueryExec;
use datafusion::physical_plan::{ExecutionPlan, replace_children_if_necessary};
use futures::StreamExt;
use futures::future::BoxFuture;

/// Runs a plan through stages and returns its result stream (the engine's scheduling entry point).
pub trait StagedRunner: Send + Sync {
    /// Fragments and schedules `plan` under the exchange key `key`, returning the root stream together
    /// with whatever must stay alive while it is read.
    #[allow(clippy::type_complexity)]
    fn run(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        key: String,
    ) -> BoxFuture<
        '_,
        Result<(
            Box<dyn std::any::Any + Send>,
            datafusion::execution::SendableRecordBatchStream,
        )>,
    >;
}

/// Executes every `ScalarSubqueryExec` of `plan` (innermost first), publishes the values, and returns the
/// plan without those nodes. `key` prefixes the exchange keys of the subqueries' own stages.
///
/// Errors: a subquery that fails, or returns more than one row (Postgres: "more than one row returned by
/// a subquery used as an expression").
pub fn resolve_scalar_subqueries<'a>(
    runner: &'a dyn StagedRunner,
    plan: Arc<dyn ExecutionPlan>,
    key: &'a str,
) -> BoxFuture<'a, Result<Arc<dyn ExecutionPlan>>> {
    Box::pin(async move {
        if let Some(node) = plan.downcast_ref::<ScalarSubqueryExec>() {
            for (i, link) in node.subqueries().iter().enumerate() {
                let sub_key = format!("{key}.sq{i}");
                let sub = resolve_scalar_subqueries(runner, link.plan.clone(), &sub_key).await?;
                let value = run_scalar(runner, sub, sub_key).await?;
                node.results().set(link.index, value)?;
            }
            return resolve_scalar_subqueries(runner, node.input().clone(), key).await;
        }
        let mut children = Vec::new();
        for child in plan.children() {
            children.push(resolve_scalar_subqueries(runner, child.clone(), key).await?);
        }
        if children.is_empty() {
            Ok(plan)
        } else {
            replace_children_if_necessary(plan, children)
        }
    })
}

/// Runs a one-column subquery and returns its single value (NULL for no rows).
async fn run_scalar(
    runner: &dyn StagedRunner,
    plan: Arc<dyn ExecutionPlan>,
    key: String,
) -> Result<ScalarValue> {
    let schema = plan.schema();
    if schema.fields().len() != 1 {
        return Err(DataFusionError::Plan(format!(
            "subquery must return only one column, got {}",
            schema.fields().len()
        )));
    }
    let (_guard, mut stream) = runner.run(plan, key).await?;
    let mut value = None;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        if value.is_some() || batch.num_rows() > 1 {
            return Err(DataFusionError::Execution(
                "more than one row returned by a subquery used as an expression".into(),
            ));
        }
        value = Some(ScalarValue::try_from_array(batch.column(0), 0)?);
    }
    match value {
        Some(v) => Ok(v),
        None => ScalarValue::try_from(schema.field(0).data_type()),
    }
}
