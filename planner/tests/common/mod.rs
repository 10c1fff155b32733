//! What the planner's tests share: a registry's `system` catalog over nothing, and planning one SQL
//! string the way the server does (statement, logical plan, distributed plan).

use datafusion::execution::SessionState;
use tributary_connectors::system::{NodeInfo, QueryInfo, RuntimeInfo};
use tributary_planner::DistributedPlan;
use tributary_planner::PlannedStatement;
use tributary_planner::plan::{logical_plan, plan_statement};

/// The `system` catalog's view of a server that runs nothing (the tests do not read it).
#[derive(Debug)]
pub struct Idle;

impl RuntimeInfo for Idle {
    fn nodes(&self) -> Vec<NodeInfo> {
        Vec::new()
    }
    fn queries(&self) -> Vec<QueryInfo> {
        Vec::new()
    }
}

/// Plans the query `sql` (named `name` in panics) into its distributed plan.
pub async fn distributed(state: &SessionState, name: &str, sql: &str) -> DistributedPlan {
    let statement = state
        .sql_to_statement(sql, &datafusion::config::Dialect::PostgreSQL)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let logical = logical_plan(state, statement)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    match plan_statement(state, logical).await {
        Ok(PlannedStatement::Query(plan)) => plan,
        Ok(other) => panic!("{name} is not a query: {other:?}"),
        Err(e) => panic!("{name}: {e}"),
    }
}
