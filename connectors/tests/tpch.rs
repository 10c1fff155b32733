//! The tpch connector through a DataFusion session: row counts, joins, splits, pushdown.

use std::sync::Arc;

use datafusion::arrow::array::{Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::common::stats::Precision;
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use tributary_connectors::Connector;
use tributary_connectors::tpch::{TpchConnector, TpchScanExec, TpchTable, TpchTableProvider};

fn context() -> SessionContext {
    let ctx = SessionContext::new();
    ctx.register_catalog("tpch", TpchConnector::new().catalog());
    ctx
}

async fn query(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql)
        .await
        .unwrap_or_else(|e| panic!("planning {sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("running {sql}: {e}"))
}

fn single_i64(batches: &[RecordBatch]) -> i64 {
    let column = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("an Int64 column");
    column.value(0)
}

const TINY_ROWS: [(&str, i64); 8] = [
    ("lineitem", 60_175),
    ("orders", 15_000),
    ("customer", 1_500),
    ("part", 2_000),
    ("partsupp", 8_000),
    ("supplier", 100),
    ("nation", 25),
    ("region", 5),
];

#[tokio::test]
async fn tiny_row_counts_match_the_spec() {
    let ctx = context();
    for (table, expected) in TINY_ROWS {
        // count(*) may be answered from the exact statistics ...
        let counted =
            single_i64(&query(&ctx, &format!("SELECT count(*) FROM tpch.tiny.{table}")).await);
        assert_eq!(counted, expected, "count(*) of tiny.{table}");
        // ... so also generate every row and count what comes out.
        let batches = query(&ctx, &format!("SELECT * FROM tpch.tiny.{table}")).await;
        let generated: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(generated as i64, expected, "generated rows of tiny.{table}");
    }
}

#[tokio::test]
async fn catalog_lists_schemas_and_tables() {
    let catalog = TpchConnector::new().catalog();
    assert_eq!(
        catalog.schema_names(),
        vec!["tiny", "sf1", "sf10", "sf100", "sf1000"]
    );
    let tiny = catalog.schema("tiny").expect("tiny schema");
    let mut tables = tiny.table_names();
    tables.sort();
    assert_eq!(
        tables,
        vec![
            "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"
        ]
    );
    assert!(tiny.table_exist("lineitem"));
    assert!(!tiny.table_exist("nope"));
    assert!(tiny.table("nope").await.expect("lookup").is_none());
    assert!(catalog.schema("sf3").is_none());
}

#[tokio::test]
async fn column_types_follow_tpchgen_arrow() {
    let schema = TpchTable::LineItem.schema();
    let field = |name: &str| {
        schema
            .field_with_name(name)
            .expect(name)
            .data_type()
            .clone()
    };
    assert_eq!(field("l_orderkey"), DataType::Int64);
    assert_eq!(field("l_extendedprice"), DataType::Decimal128(15, 2));
    assert_eq!(field("l_shipdate"), DataType::Date32);
    assert!(matches!(
        field("l_comment"),
        DataType::Utf8 | DataType::Utf8View
    ));
}

#[tokio::test]
async fn joins_two_tables() {
    let ctx = context();
    let batches = query(
        &ctx,
        "SELECT r.r_name, count(*) AS nations \
         FROM tpch.tiny.nation n JOIN tpch.tiny.region r ON n.n_regionkey = r.r_regionkey \
         GROUP BY r.r_name ORDER BY r.r_name",
    )
    .await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .expect("format")
        .to_string();
    for region in ["AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"] {
        assert!(text.contains(region), "{region} missing from\n{text}");
    }
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 5);

    // Every order has a customer: a join across two multi-row tables.
    let joined = single_i64(
        &query(
            &ctx,
            "SELECT count(*) FROM tpch.tiny.orders o \
             JOIN tpch.tiny.customer c ON o.o_custkey = c.c_custkey",
        )
        .await,
    );
    assert_eq!(joined, 15_000);
}

#[tokio::test]
async fn split_counts_follow_row_counts() {
    assert_eq!(TpchTable::LineItem.split_count(0.01), 2);
    assert_eq!(TpchTable::Orders.split_count(0.01), 1);
    assert_eq!(TpchTable::Nation.split_count(1000.0), 1);
    assert_eq!(TpchTable::Region.split_count(1.0), 1);
    assert_eq!(TpchTable::LineItem.split_count(1.0), 120);
    assert_eq!(TpchTable::Orders.split_count(1.0), 30);
    assert_eq!(TpchTable::LineItem.split_count(1000.0), 4096);
    // Exact statistics for the whole table.
    let provider = TpchTableProvider::new("sf1", TpchTable::LineItem, 1.0);
    let stats = provider.statistics().expect("statistics");
    assert_eq!(stats.num_rows, Precision::Exact(6_001_215));
}

#[tokio::test]
async fn re_executing_a_partition_gives_the_same_rows() {
    let ctx = SessionContext::new();
    let scan =
        TpchScanExec::try_new("tiny", TpchTable::LineItem, 0.01, 2, None, None).expect("scan");
    assert_eq!(scan.properties().partitioning.partition_count(), 2);
    let run = |partition: usize| {
        let stream = scan.execute(partition, ctx.task_ctx()).expect("execute");
        async move { stream.try_collect::<Vec<_>>().await.expect("collect") }
    };
    let first = run(1).await;
    let second = run(1).await;
    assert_eq!(first, second, "partition 1 differs between two runs");
    let other = run(0).await;
    assert_ne!(first, other, "partitions 0 and 1 hold the same rows");
    let rows: usize = first.iter().chain(&other).map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 60_175);
    // Orders keys of split 2 come after those of split 1.
    let last_key_of = |batches: &[RecordBatch]| {
        let b = batches.last().expect("batches");
        let keys = b
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("i64");
        keys.value(keys.len() - 1)
    };
    let first_key = first[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("i64")
        .value(0);
    assert!(first_key > last_key_of(&other));
}

#[tokio::test]
async fn projection_and_limit_are_pushed_into_the_scan() {
    let ctx = context();
    let df = ctx
        .sql("SELECT l_orderkey, l_comment FROM tpch.tiny.lineitem LIMIT 7")
        .await
        .expect("plan");
    let plan = df
        .clone()
        .create_physical_plan()
        .await
        .expect("physical plan");
    let shown = displayable(plan.as_ref()).indent(true).to_string();
    assert!(
        shown.contains(
            "TpchScan: tiny.lineitem, splits=2, projection=[l_orderkey, l_comment], limit=7"
        ),
        "{shown}"
    );
    let batches = collect(plan, ctx.task_ctx()).await.expect("run");
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 7);
    assert_eq!(batches[0].num_columns(), 2);

    // Each split stops after `limit` rows.
    let scan = Arc::new(
        TpchScanExec::try_new(
            "tiny",
            TpchTable::Orders,
            0.01,
            3,
            Some(vec![0, 3]),
            Some(5),
        )
        .expect("scan"),
    );
    for partition in 0..3 {
        let batches: Vec<RecordBatch> = scan
            .execute(partition, ctx.task_ctx())
            .expect("execute")
            .try_collect()
            .await
            .expect("collect");
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 5);
        assert_eq!(batches[0].schema().field(1).name(), "o_totalprice");
    }
    assert!(scan.execute(3, ctx.task_ctx()).is_err());
}
