//! Semi-join reduction (`tributary_planner::semijoin`) on the built-in `tpch.tiny`: aggregates
//! joined on their grouping key read only the rows whose key the join can meet.

mod common;

use std::path::Path;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{JoinType, LogicalPlan};
use datafusion::prelude::SessionContext;

async fn optimized_on(ctx: &SessionContext, sql: &str) -> LogicalPlan {
    ctx.sql(sql)
        .await
        .expect("plans")
        .into_optimized_plan()
        .expect("optimizes")
}

fn query(q: &str) -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../compat-tests/queries/{q}.sql"));
    std::fs::read_to_string(path).expect("query file")
}

/// For each reducing semi join of `plan`: the table it reduces and the table the reducer reads.
fn reductions(plan: &LogicalPlan) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::Join(join) = node
            && join.join_type == JoinType::LeftSemi
            && let LogicalPlan::SubqueryAlias(alias) = join.right.as_ref()
            && alias
                .alias
                .table()
                .starts_with(tributary_planner::semijoin::REDUCER)
        {
            found.push((first_table(&join.left), first_table(&join.right)));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

fn first_table(plan: &LogicalPlan) -> String {
    let mut name = String::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            name = scan.table_name.table().to_string();
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    name
}

/// `SET semijoin_reduction = off` in `ctx`, as the front end does.
fn reduction_off(ctx: &SessionContext) {
    let mut ordering = tributary_planner::join_order::JoinOrdering::default();
    ordering.semijoin_reduction = false;
    ctx.state_ref()
        .write()
        .config_mut()
        .options_mut()
        .extensions
        .insert(ordering);
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

/// q17 with its per-part averages joined explicitly (q17 itself is a window:
/// `tributary_planner::group_window`): only parts of one brand and container are joined, so
/// lineitem is reduced by `part` under those filters (not by `part ⋈ lineitem`). q20 reduces
/// lineitem by the `forest%` parts of its `IN` subquery, q02 partsupp by the brass parts of size
/// 15. q18's `IN` meets every order: no reduction.
#[tokio::test]
async fn subquery_aggregates_reduced_by_the_filtered_side() {
    let ctx = common::tpch_tiny().await;
    let q17_joined = "with a as (select l_partkey as k, 0.2 * avg(l_quantity) as v from lineitem \
                      group by l_partkey) \
                      select sum(l_extendedprice) / 7.0 as avg_yearly from lineitem, part, a \
                      where p_partkey = l_partkey and p_brand = 'Brand#23' \
                      and p_container = 'MED BOX' and k = p_partkey and l_quantity < v";
    for (q, expected) in [
        ("q17", vec![pair("lineitem", "part")]),
        ("q20", vec![pair("lineitem", "part")]),
        ("q02", vec![pair("partsupp", "part")]),
        ("q18", vec![]),
        ("q13", vec![]),
    ] {
        let sql = if q == "q17" {
            q17_joined.to_string()
        } else {
            query(q)
        };
        let plan = optimized_on(&ctx, &sql).await;
        assert_eq!(
            reductions(&plan),
            expected,
            "{q}:\n{}",
            plan.display_indent()
        );
    }
}

/// The inner side of a left join and the build side of an anti join are reduced too; the
/// preserved side of a left join is not (its groups all reach the result).
#[tokio::test]
async fn outer_and_anti_joins() {
    let ctx = common::tpch_tiny().await;
    let aggregate =
        "(select l_partkey, sum(l_quantity) as total from lineitem group by l_partkey) a";
    let filter = "p_brand = 'Brand#23' and p_container = 'MED BOX'";
    for (sql, expected) in [
        (
            format!(
                "select * from part p left join {aggregate} on a.l_partkey = p_partkey where {filter}"
            ),
            vec![pair("lineitem", "part")],
        ),
        (
            format!(
                "select * from part p where {filter} and not exists (select 1 from {aggregate} where a.l_partkey = p_partkey)"
            ),
            vec![pair("lineitem", "part")],
        ),
        (
            format!(
                "select * from {aggregate} left join part p on a.l_partkey = p_partkey and {filter}"
            ),
            vec![],
        ),
        // Which rows a limit keeps can change when read again: the reducer is what is below the
        // limit (holding every key the limit can keep), here the filtered part; below a limit on
        // the whole table there is nothing narrower than the table, so no reducer.
        (
            format!(
                "select * from (select * from part where {filter} limit 5) p \
                 join {aggregate} on a.l_partkey = p_partkey"
            ),
            vec![pair("lineitem", "part")],
        ),
        (
            format!(
                "select * from (select * from part limit 5) p \
                 join {aggregate} on a.l_partkey = p_partkey"
            ),
            vec![],
        ),
    ] {
        let plan = optimized_on(&ctx, &sql).await;
        assert_eq!(
            reductions(&plan),
            expected,
            "{sql}:\n{}",
            plan.display_indent()
        );
    }
}

/// `semijoin_reduction` off (the front end's `SET semijoin_reduction = off`): no reducer.
#[tokio::test]
async fn off_by_setting() {
    let ctx = common::tpch_tiny().await;
    reduction_off(&ctx);
    let plan = optimized_on(&ctx, &query("q20")).await;
    assert_eq!(reductions(&plan), vec![], "{}", plan.display_indent());
}

/// The left input of every semi join of `plan` that is not a reducer: the table it reads, and
/// whether that input holds a join.
fn semi_join_inputs(plan: &LogicalPlan) -> Vec<(String, bool)> {
    let mut found = Vec::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::Join(join) = node
            && join.join_type == JoinType::LeftSemi
            && !matches!(join.right.as_ref(), LogicalPlan::SubqueryAlias(a)
                if a.alias.table().starts_with(tributary_planner::semijoin::REDUCER))
        {
            let has_join = join
                .left
                .exists(|n| Ok(matches!(n, LogicalPlan::Join(_))))
                .unwrap_or(true);
            found.push((first_table(&join.left), has_join));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// q18's `o_orderkey IN (...)` sits on `orders` alone, below its joins with customer and
/// lineitem; with the setting off it stays above them.
#[tokio::test]
async fn q18_semi_join_moves_onto_orders() {
    let ctx = common::tpch_tiny().await;
    let plan = optimized_on(&ctx, &query("q18")).await;
    assert_eq!(
        semi_join_inputs(&plan),
        vec![("orders".to_string(), false)],
        "{}",
        plan.display_indent()
    );
    reduction_off(&ctx);
    let plan = optimized_on(&ctx, &query("q18")).await;
    assert_eq!(
        semi_join_inputs(&plan),
        vec![("customer".to_string(), true)],
        "{}",
        plan.display_indent()
    );
}

/// q21's `EXISTS (another supplier's lineitem)` meets nearly every order: it stays above the
/// joins that narrow lineitem to one nation's suppliers.
#[tokio::test]
async fn q21_semi_join_stays() {
    let ctx = common::tpch_tiny().await;
    let plan = optimized_on(&ctx, &query("q21")).await;
    assert!(
        semi_join_inputs(&plan)
            .iter()
            .all(|(_, has_join)| *has_join),
        "{}",
        plan.display_indent()
    );
}
