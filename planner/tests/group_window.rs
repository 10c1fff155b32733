//! A correlated `avg`/`min`/`max` over a table the query joins, as a window over that join
//! (`tributary_planner::group_window`).

mod common;

use std::path::Path;

use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;

/// (scans of `lineitem`, window nodes) in the optimized plan of `sql`.
async fn shape(ctx: &SessionContext, sql: &str) -> (usize, usize) {
    let plan = ctx
        .sql(sql)
        .await
        .expect("plans")
        .into_optimized_plan()
        .expect("optimizes");
    let (mut scans, mut windows) = (0, 0);
    let _ = plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) if scan.table_name.table() == "lineitem" => scans += 1,
            LogicalPlan::Window(_) => windows += 1,
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    (scans, windows)
}

async fn answer(ctx: &SessionContext, sql: &str) -> String {
    let batches = ctx
        .sql(sql)
        .await
        .expect("plans")
        .collect()
        .await
        .expect("runs");
    pretty_format_batches(&batches)
        .expect("formats")
        .to_string()
}

/// q17 reads lineitem once, through a window, and answers as the same query written with the
/// per-part averages joined explicitly (which the rule leaves alone); so do a self-correlated
/// `min` and a `max` with an outer join partner repeated per key.
#[tokio::test]
async fn q17_reads_lineitem_once() {
    let ctx = common::tpch_tiny().await;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compat-tests/queries/q17.sql");
    let q17 = std::fs::read_to_string(path).expect("query file");
    assert_eq!(shape(&ctx, &q17).await, (1, 1));
    let joined = "with a as (select l_partkey as k, 0.2 * avg(l_quantity) as v from lineitem \
                  group by l_partkey) \
                  select sum(l_extendedprice) / 7.0 as avg_yearly from lineitem, part, a \
                  where p_partkey = l_partkey and p_brand = 'Brand#23' \
                  and p_container = 'MED BOX' and k = p_partkey and l_quantity < v";
    assert_eq!(shape(&ctx, joined).await, (2, 0));
    assert_eq!(answer(&ctx, &q17).await, answer(&ctx, joined).await);
    // tpch.tiny has no MED BOX of Brand#23 below the average: the brand alone selects rows.
    let (q17, joined) = (
        q17.replace("and p_container = 'MED BOX'", ""),
        joined.replace("and p_container = 'MED BOX'", ""),
    );
    let brand = answer(&ctx, &q17).await;
    assert!(brand.contains('.'), "{brand}");
    assert_eq!(brand, answer(&ctx, &joined).await);

    // Correlated with the same table, minimum per supplier.
    let self_min = "select count(*), sum(l1.l_quantity) from lineitem l1 \
                    where l1.l_extendedprice = (select min(l2.l_extendedprice) from lineitem l2 \
                    where l2.l_suppkey = l1.l_suppkey)";
    let self_min_joined = "select count(*), sum(l1.l_quantity) from lineitem l1 \
                           join (select l_suppkey, min(l_extendedprice) as m from lineitem \
                           group by l_suppkey) l2 on l2.l_suppkey = l1.l_suppkey \
                           where l1.l_extendedprice = l2.m";
    assert_eq!(shape(&ctx, self_min).await, (1, 1));
    assert_eq!(
        answer(&ctx, self_min).await,
        answer(&ctx, self_min_joined).await
    );

    // Each lineitem row repeated by every partsupp row of its part: the maximum is unchanged.
    let repeated = "select count(*) from lineitem, partsupp where ps_partkey = l_partkey \
                    and l_quantity = (select max(l_quantity) from lineitem l2 \
                    where l2.l_partkey = ps_partkey)";
    let repeated_joined = "select count(*) from lineitem, partsupp, (select l_partkey as k, \
                           max(l_quantity) as m from lineitem group by l_partkey) a \
                           where ps_partkey = l_partkey and k = ps_partkey and l_quantity = m";
    assert_eq!(shape(&ctx, repeated).await, (1, 1));
    assert_eq!(
        answer(&ctx, repeated).await,
        answer(&ctx, repeated_joined).await
    );
}

/// Left alone: a `sum` (repeated rows would change it), another condition on the correlated
/// table's rows (the window would see fewer rows than the subquery), an outer join, and a filter
/// inside a correlated subquery.
#[tokio::test]
async fn other_shapes_stay_subqueries() {
    let ctx = common::tpch_tiny().await;
    let q17_with = |replace: &str, by: &str| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compat-tests/queries/q17.sql");
        std::fs::read_to_string(path)
            .expect("query file")
            .replace(replace, by)
    };
    let sum = q17_with("avg(l_quantity)", "sum(l_quantity)");
    assert_eq!(shape(&ctx, &sum).await, (2, 0));
    let filtered = q17_with(
        "and l_quantity <",
        "and l_shipdate > date '1995-01-01' and l_quantity <",
    );
    assert_eq!(shape(&ctx, &filtered).await, (2, 0));
    let outer = "select count(*) from part left join lineitem on p_partkey = l_partkey \
                 where l_quantity < (select avg(l_quantity) from lineitem l2 \
                 where l2.l_partkey = p_partkey)";
    assert_eq!(shape(&ctx, outer).await.1, 0);
    // Inside a correlated EXISTS: still planned (and answered) as DataFusion decorrelates it.
    let nested = "select count(*) from part where exists (select 1 from lineitem, partsupp \
                  where l_partkey = p_partkey and ps_partkey = l_partkey \
                  and l_quantity < (select avg(l_quantity) from lineitem l2 \
                  where l2.l_partkey = ps_partkey))";
    assert_eq!(shape(&ctx, nested).await.1, 0);
    assert!(answer(&ctx, nested).await.contains("count(*)"));
}
