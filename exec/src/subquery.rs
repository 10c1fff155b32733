//! Running a [`DistributedPlan`]'s uncorrelated scalar subqueries before its stages.
//!
//! The planner pulls each `ScalarSubqueryExec`'s subqueries out of the plan as distributed plans of
//! their own ([`tributary_planner::plan`]); here each runs (its own subqueries first), its single
//! value is published to the expressions that read it, and only then are the main plan's stages
//! scheduled.

use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use futures::StreamExt;
use futures::future::BoxFuture;
use tributary_planner::DistributedPlan;

use crate::ExecError;

/// Runs a distributed plan whose scalar subqueries have been published and returns its result
/// stream (the engine schedules [`DistributedPlan::stages`]).
pub trait StagedRunner: Send + Sync {
    /// Runs `plan` under the exchange key `key`, returning the root stream together with whatever
    /// must stay alive while it is read.
    #[allow(clippy::type_complexity)]
    fn run<'a>(
        &'a self,
        plan: &'a DistributedPlan,
        key: String,
    ) -> BoxFuture<
        'a,
        Result<(
            Box<dyn std::any::Any + Send>,
            datafusion::execution::SendableRecordBatchStream,
        )>,
    >;
}

/// Runs every scalar subquery of `plan` (each one's own first) and publishes the values. `key`
/// prefixes the exchange keys of the subqueries' stages (`KEY.sqN`).
///
/// Errors: a subquery that fails, or returns more than one row
/// ([`ExecError::SubqueryReturnedMoreThanOneRow`]).
pub fn run_scalar_subqueries<'a>(
    runner: &'a dyn StagedRunner,
    plan: &'a DistributedPlan,
    key: &'a str,
) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        for (i, subquery) in plan.scalar_subqueries.iter().enumerate() {
            let sub_key = format!("{key}.sq{i}");
            run_scalar_subqueries(runner, &subquery.plan, &sub_key).await?;
            let value = run_scalar(runner, &subquery.plan, sub_key).await?;
            subquery.publish(value)?;
        }
        Ok(())
    })
}

/// Runs a one-column subquery and returns its single value (NULL for no rows).
async fn run_scalar(
    runner: &dyn StagedRunner,
    plan: &DistributedPlan,
    key: String,
) -> Result<ScalarValue> {
    let schema = plan.physical.schema();
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
            return Err(ExecError::SubqueryReturnedMoreThanOneRow.into_datafusion());
        }
        value = Some(ScalarValue::try_from_array(batch.column(0), 0)?);
    }
    match value {
        Some(v) => Ok(v),
        None => ScalarValue::try_from(schema.field(0).data_type()),
    }
}
