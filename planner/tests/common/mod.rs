//! What the planner's tests share: a registry's `system` catalog over nothing, a session on the
//! built-in `tpch.tiny`, and planning one SQL string the way the server does (statement, logical
//! plan, distributed plan).
// Each test file uses a part of this module.
#![allow(dead_code)]

use std::sync::Arc;

use datafusion::execution::SessionState;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::SessionContext;
use tributary_connectors::system::{NodeInfo, QueryInfo, RuntimeInfo};
use tributary_planner::CatalogRegistry;
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

/// A session over the built-in catalogs with `tpch.tiny` as the default schema and 4 hash
/// partitions, as the server makes one.
pub async fn tpch_tiny() -> SessionContext {
    let registry = CatalogRegistry::load(None, Arc::new(Idle))
        .await
        .expect("built-in catalogs");
    tributary_planner::session::new_session_context(
        &registry,
        Arc::new(RuntimeEnv::default()),
        "tpch",
        "tiny",
        4,
    )
}
