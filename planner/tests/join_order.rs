//! Join order from estimates (`tributary_planner::join_order`): on the built-in `tpch.tiny`, the
//! first join of TPC-H queries whose FROM order starts with the largest tables is between the
//! small, filtered ones.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{JoinType, LogicalPlan};

/// The tables each inner join without joins below it reads, for every such join of `plan`.
fn first_joins(plan: &LogicalPlan) -> Vec<BTreeSet<String>> {
    let mut found = Vec::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::Join(join) = node
            && join.join_type == JoinType::Inner
            && !node.inputs().iter().any(|i| has_join(i))
        {
            found.push(tables(node));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

fn has_join(plan: &LogicalPlan) -> bool {
    plan.exists(|n| Ok(matches!(n, LogicalPlan::Join(_))))
        .unwrap_or(false)
}

fn tables(plan: &LogicalPlan) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            names.insert(scan.table_name.table().to_string());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    names
}

async fn optimized(q: &str) -> LogicalPlan {
    let ctx = common::tpch_tiny().await;
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../compat-tests/queries/{q}.sql"));
    let sql = std::fs::read_to_string(path).expect("query file");
    ctx.sql(&sql)
        .await
        .expect("plans")
        .into_optimized_plan()
        .expect("optimizes")
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// q21 names `supplier, lineitem l1, orders, nation`: in FROM order the 6,000-row lineitem scan
/// (tiny) joins every supplier before `n_name = 'SAUDI ARABIA'` applies. Ordered, the nation filter
/// meets the suppliers first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q21_joins_the_filtered_nation_first() {
    let plan = optimized("q21").await;
    assert_eq!(
        first_joins(&plan),
        vec![set(&["nation", "supplier"])],
        "{}",
        plan.display_indent()
    );
}

/// q05 names `customer, orders, lineitem, supplier, nation, region`: ordered, the region filter
/// (`r_name = 'ASIA'`) and nation come first, customer joins nation through the equality implied by
/// `c_nationkey = s_nationkey AND s_nationkey = n_nationkey`, and lineitem joins last but one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q05_starts_from_region_and_uses_implied_keys() {
    let plan = optimized("q05").await;
    assert_eq!(
        first_joins(&plan),
        vec![set(&["nation", "region"])],
        "{}",
        plan.display_indent()
    );
    let text = plan.display_indent().to_string();
    assert!(
        text.contains("nation.n_nationkey = customer.c_nationkey"),
        "implied key missing:\n{text}"
    );
}
