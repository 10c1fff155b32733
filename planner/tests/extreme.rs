//! `e = (SELECT max(e) FROM <the same rows>)` over one reading (`tributary_planner::extreme`).

mod common;

use std::path::Path;

use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::{Expr, LogicalPlan};

async fn optimized(sql: &str) -> LogicalPlan {
    let ctx = common::tpch_tiny().await;
    ctx.sql(sql)
        .await
        .expect("plans")
        .into_optimized_plan()
        .expect("optimizes")
}

/// (scalar subqueries left, window nodes) in `plan`.
fn shape(plan: &LogicalPlan) -> (usize, usize) {
    let (mut subqueries, mut windows) = (0, 0);
    let _ = plan.apply(|node| {
        if matches!(node, LogicalPlan::Window(_)) {
            windows += 1;
        }
        for e in node.expressions() {
            let _ = e.apply(|x| {
                if matches!(x, Expr::ScalarSubquery(_)) {
                    subqueries += 1;
                }
                Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
            });
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    (subqueries, windows)
}

/// q15's `total_revenue = (select max(total_revenue) from revenue0)` reads revenue0 once, through a
/// window; the same with `min`. A subquery over other rows (another date range) stays a subquery.
#[tokio::test]
async fn same_rows_become_a_window() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compat-tests/queries/q15.sql");
    let q15 = std::fs::read_to_string(path).expect("query file");
    let plan = optimized(&q15).await;
    assert_eq!(shape(&plan), (0, 1), "{}", plan.display_indent());

    let with = "with r as (select l_suppkey as s, sum(l_quantity) as q from lineitem \
                where l_shipdate < date '1995-01-01' group by l_suppkey)";
    let plan = optimized(&format!(
        "{with} select s from r where q = (select min(q) from r)"
    ))
    .await;
    assert_eq!(shape(&plan), (0, 1), "{}", plan.display_indent());

    let plan = optimized(&format!(
        "{with} select s from r where q = (select max(l_quantity) from lineitem)"
    ))
    .await;
    assert_eq!(shape(&plan), (1, 0), "{}", plan.display_indent());
    let plan = optimized(&format!(
        "{with} select s from r where q = (select avg(q) from r)"
    ))
    .await;
    assert_eq!(shape(&plan), (1, 0), "{}", plan.display_indent());
}
