//! The lake connector over a temporary directory: Parquet, CSV, JSON, Hive partitions, bad configs.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::physical_plan::displayable;
use datafusion::prelude::SessionContext;
use tributary_connectors::lake::LakeConnector;
use tributary_connectors::{Connector, ConnectorError, build_connector};

fn write_parquet(path: &Path, ids: &[i64], names: &[&str]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names.to_vec())),
        ],
    )
    .expect("batch");
    let file = std::fs::File::create(path).expect("create parquet file");
    let mut writer = ArrowWriter::try_new(file, schema, None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

/// `shop/items.parquet`, `shop/people.csv`, `shop/events.jsonl`, `shop/sales/year=YYYY/part-0.parquet`.
fn lake_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let shop = dir.path().join("shop");
    write_parquet(
        &shop.join("items.parquet"),
        &[1, 2, 3],
        &["bolt", "nut", "gear"],
    );
    std::fs::write(shop.join("people.csv"), "id,name\n1,ann\n2,bob\n").expect("csv");
    std::fs::write(
        shop.join("events.jsonl"),
        "{\"id\": 1, \"kind\": \"click\"}\n{\"id\": 2, \"kind\": \"view\"}\n{\"id\": 3, \"kind\": \"click\"}\n",
    )
    .expect("json");
    write_parquet(
        &shop.join("sales/year=2023/part-0.parquet"),
        &[10, 11],
        &["a", "b"],
    );
    write_parquet(
        &shop.join("sales/year=2024/part-0.parquet"),
        &[20, 21, 22],
        &["c", "d", "e"],
    );
    std::fs::write(shop.join("_SUCCESS"), "").expect("marker");
    std::fs::create_dir_all(dir.path().join("empty")).expect("empty schema");
    dir
}

fn config(location: &str) -> toml::Table {
    let mut table = toml::Table::new();
    table.insert("connector".into(), toml::Value::String("lake".into()));
    table.insert("location".into(), toml::Value::String(location.into()));
    table
}

async fn open(dir: &Path) -> (SessionContext, Arc<dyn Connector>) {
    let location = format!("file://{}", dir.display());
    let connector = build_connector("lake", &config(&location))
        .await
        .expect("lake connector");
    let ctx = SessionContext::new();
    for (url, store) in connector.object_stores() {
        ctx.runtime_env().register_object_store(&url, store);
    }
    ctx.register_catalog("lake", connector.catalog());
    (ctx, connector)
}

async fn rows(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql)
        .await
        .unwrap_or_else(|e| panic!("planning {sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("running {sql}: {e}"))
}

fn count(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

fn pretty(batches: &[RecordBatch]) -> String {
    datafusion::arrow::util::pretty::pretty_format_batches(batches)
        .expect("format")
        .to_string()
}

#[tokio::test]
async fn discovers_schemas_and_tables() {
    let dir = lake_dir();
    let (_ctx, connector) = open(dir.path()).await;
    assert_eq!(connector.kind().name(), "lake");
    let catalog = connector.catalog();
    assert_eq!(catalog.schema_names(), vec!["empty", "shop"]);
    let shop = catalog.schema("shop").expect("shop");
    assert_eq!(
        shop.table_names(),
        vec!["events", "items", "people", "sales"]
    );
    let stores = connector.object_stores();
    assert_eq!(stores.len(), 1);
    assert_eq!(stores[0].0.as_str(), "lake://lake/");
}

#[tokio::test]
async fn reads_parquet_csv_and_json() {
    let dir = lake_dir();
    let (ctx, _connector) = open(dir.path()).await;
    let items = rows(
        &ctx,
        "SELECT name FROM lake.shop.items WHERE id >= 2 ORDER BY id",
    )
    .await;
    let text = pretty(&items);
    assert!(
        text.contains("nut") && text.contains("gear") && !text.contains("bolt"),
        "{text}"
    );

    let people = rows(&ctx, "SELECT id, name FROM lake.shop.people ORDER BY id").await;
    assert_eq!(count(&people), 2);
    assert!(pretty(&people).contains("bob"));

    let clicks = rows(
        &ctx,
        "SELECT count(*) FROM lake.shop.events WHERE kind = 'click'",
    )
    .await;
    assert!(pretty(&clicks).contains("| 2 "), "{}", pretty(&clicks));

    let limited = rows(&ctx, "SELECT * FROM lake.shop.items LIMIT 1").await;
    assert_eq!(count(&limited), 1);
}

#[tokio::test]
async fn hive_partitions_become_columns_and_prune_files() {
    let dir = lake_dir();
    let (ctx, _connector) = open(dir.path()).await;
    let all = rows(&ctx, "SELECT id, year FROM lake.shop.sales").await;
    assert_eq!(count(&all), 5);

    let sql = "SELECT id, name, year FROM lake.shop.sales WHERE year = '2024' ORDER BY id";
    let df = ctx.sql(sql).await.expect("plan");
    let plan = df
        .clone()
        .create_physical_plan()
        .await
        .expect("physical plan");
    let shown = displayable(plan.as_ref()).indent(true).to_string();
    assert!(shown.contains("year=2024"), "{shown}");
    assert!(
        !shown.contains("year=2023"),
        "partition 2023 not pruned:\n{shown}"
    );
    let batches = df.collect().await.expect("run");
    assert_eq!(count(&batches), 3);
    let text = pretty(&batches);
    assert!(text.contains("| 20 ") && text.contains("| 2024 "), "{text}");
    assert!(!text.contains("2023"), "{text}");
}

#[tokio::test]
async fn files_added_later_are_found_on_lookup() {
    let dir = lake_dir();
    let (ctx, _connector) = open(dir.path()).await;
    std::fs::write(dir.path().join("shop/late.csv"), "x\n1\n2\n3\n").expect("csv");
    let late = rows(&ctx, "SELECT sum(x) FROM lake.shop.late").await;
    assert!(pretty(&late).contains("| 6 "), "{}", pretty(&late));
    assert!(ctx.sql("SELECT * FROM lake.shop.missing").await.is_err());
}

#[tokio::test]
async fn bad_configs_name_the_key() {
    let mut missing = toml::Table::new();
    missing.insert("connector".into(), toml::Value::String("lake".into()));
    match LakeConnector::from_config("lake", &missing).await {
        Err(ConnectorError::Config { key, .. }) => assert_eq!(key, "location"),
        other => panic!("expected a config error on `location`, got {other:?}"),
    }
    match LakeConnector::from_config("lake", &config("ftp://host/data")).await {
        Err(ConnectorError::Config { key, reason }) => {
            assert_eq!(key, "location");
            assert!(reason.contains("ftp"), "{reason}");
        }
        other => panic!("expected a config error on `location`, got {other:?}"),
    }
    let mut wrong_type = config("s3://bucket/prefix");
    wrong_type.insert("region".into(), toml::Value::Integer(3));
    match LakeConnector::from_config("lake", &wrong_type).await {
        Err(ConnectorError::Config { key, .. }) => assert_eq!(key, "region"),
        other => panic!("expected a config error on `region`, got {other:?}"),
    }
}

#[tokio::test]
async fn unreadable_locations_are_source_errors_without_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gone = dir.path().join("does-not-exist");
    match LakeConnector::from_config("mylake", &config(&format!("file://{}", gone.display()))).await
    {
        Err(ConnectorError::Source(message)) => {
            assert!(message.contains("mylake"), "{message}");
            assert!(message.contains("does-not-exist"), "{message}");
        }
        other => panic!("expected a source error, got {other:?}"),
    }
    assert!(
        !gone.exists(),
        "opening a lake must not create its directory"
    );

    // An S3 endpoint nobody listens on.
    let secret = "s3cr3t-Value-That-Must-Not-Leak";
    let mut s3 = config("s3://bucket/prefix");
    s3.insert(
        "endpoint".into(),
        toml::Value::String("http://127.0.0.1:9".into()),
    );
    s3.insert(
        "access_key_id".into(),
        toml::Value::String("AKIDEXAMPLE".into()),
    );
    s3.insert(
        "secret_access_key".into(),
        toml::Value::String(secret.into()),
    );
    let opened = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        LakeConnector::from_config("s3lake", &s3),
    )
    .await
    .expect("listing an unreachable endpoint must fail, not hang");
    match opened {
        Err(ConnectorError::Source(message)) => {
            assert!(message.contains("s3lake"), "{message}");
            assert!(message.contains("s3://bucket/prefix"), "{message}");
            assert!(!message.contains(secret), "secret leaked: {message}");
        }
        other => panic!("expected a source error, got {other:?}"),
    }
}

#[tokio::test]
async fn store_urls_are_unique_per_catalog() {
    let plain = LakeConnector::store_url("warehouse").expect("url");
    assert_eq!(plain.as_str(), "lake://warehouse/");
    let odd = LakeConnector::store_url("My.Lake").expect("url");
    let other = LakeConnector::store_url("my-lake").expect("url");
    assert_ne!(odd, other);
    assert_eq!(odd.scheme(), "lake");
}

#[tokio::test]
async fn rewritten_files_are_read_anew() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("t/items.parquet");
    write_parquet(&file, &[1, 2, 3], &["bolt", "nut", "gear"]);
    let (ctx, _connector) = open(dir.path()).await;
    // `count(*)`, `min` and `max` are answered from the file's statistics, which are kept per
    // version of the file (its size and modification time).
    let sql = "SELECT count(*), min(id), max(id) FROM lake.t.items";
    // The one row, its values separated by single spaces.
    let answer = async || {
        let text = pretty(&rows(&ctx, sql).await);
        let line = text.lines().nth(3).expect("a row").to_string();
        line.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    assert_eq!(answer().await, "| 3 | 1 | 3 |");
    // Same size, other values.
    write_parquet(&file, &[7, 8, 9], &["bolt", "nut", "gear"]);
    assert_eq!(answer().await, "| 3 | 7 | 9 |");
    write_parquet(&file, &[1, 2, 3, 4, 5], &["a", "b", "c", "d", "e"]);
    assert_eq!(answer().await, "| 5 | 1 | 5 |");
}

#[tokio::test]
async fn statistics_answer_count_min_and_max() {
    // What `rewritten_files_are_read_anew` relies on: the answer comes from the statistics.
    let dir = tempfile::tempdir().expect("tempdir");
    write_parquet(
        &dir.path().join("t/items.parquet"),
        &[1, 2, 3],
        &["a", "b", "c"],
    );
    let (ctx, _connector) = open(dir.path()).await;
    let plan = ctx
        .sql("SELECT count(*), min(id), max(id) FROM lake.t.items")
        .await
        .expect("plan")
        .create_physical_plan()
        .await
        .expect("physical plan");
    let shown = displayable(plan.as_ref()).indent(true).to_string();
    assert!(!shown.contains("DataSourceExec"), "{shown}");
}
