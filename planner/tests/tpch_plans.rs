//! The distributed plan of every TPC-H query on `tpch.tiny`, as `insta` snapshots
//! (`tests/snapshots/`): stages, their task counts, output partitioning, broadcast marks, inputs and
//! fragments, then each scalar subquery's own plan. A change to the optimizer settings, the fragmenter
//! or a connector's scan shows up here as a reviewable diff; accept an intended one by running
//! `INSTA_UPDATE=always cargo test -p tributary-planner --test tpch_plans` and reviewing the files.

mod common;

use std::path::Path;
use tributary_planner::{DistributedPlan, explain};

/// Renders a distributed plan and, indented below, its scalar subqueries' plans.
fn render(plan: &DistributedPlan, depth: usize, out: &mut Vec<String>) {
    let indent = "    ".repeat(depth);
    out.extend(
        explain::render(&plan.stages, false)
            .into_iter()
            .map(|line| format!("{indent}{line}")),
    );
    for (i, subquery) in plan.scalar_subqueries.iter().enumerate() {
        out.push(format!("{indent}Scalar subquery {i}:"));
        render(&subquery.plan, depth + 1, out);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_distributed_plans() {
    let ctx = common::tpch_tiny().await;
    let queries = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compat-tests/queries");
    for q in 1..=22 {
        let sql =
            std::fs::read_to_string(queries.join(format!("q{q:02}.sql"))).expect("query file");
        let state = ctx.state();
        let plan = common::distributed(&state, &format!("q{q:02}"), &sql).await;
        let mut lines = Vec::new();
        render(&plan, 0, &mut lines);
        insta::assert_snapshot!(format!("q{q:02}"), lines.join("\n"));
    }
}
