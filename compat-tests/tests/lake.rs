//! The `lake` connector on local files (`file://`) and on S3 (moto), with the same files and the
//! same expected answers: Parquet, CSV (with header) and newline-delimited JSON tables, a
//! Hive-partitioned Parquet table, and a join with the `tpch` catalog.
//!
//! Layout written (schema `shop` = a directory under the catalog location):
//! ```text
//! shop/items.parquet                      id, name, price, nationkey   (5 rows)
//! shop/customers.csv                      id, name, city               (3 rows)
//! shop/events.json                        id, kind, score              (4 rows)
//! shop/sales/year=2023/part-0.parquet     id, amount                   (3 rows)
//! shop/sales/year=2024/part-0.parquet     id, amount                   (2 rows)
//! ```

use std::path::Path;
use std::sync::{Arc, OnceLock};

use compat_tests::results::{self, TextRows};
use compat_tests::{ConfigDir, Moto, TempDir, Tributary, toml_string};
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;

const BUCKET: &str = "tributary-lake";
const PREFIX: &str = "warehouse";

/// The lake directory, written once per test process.
fn lake_dir() -> &'static Path {
    static DIR: OnceLock<TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = TempDir::new("lake").remove_at_exit();
        write_parquet(
            &dir.path().join("shop/items.parquet"),
            vec![
                (
                    "id",
                    Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])) as ArrayRef,
                ),
                (
                    "name",
                    Arc::new(StringArray::from(vec![
                        "apple", "banana", "cherry", "date", "elder",
                    ])),
                ),
                (
                    "price",
                    Arc::new(Float64Array::from(vec![1.25, 0.5, 3.0, 2.75, 10.0])),
                ),
                (
                    "nationkey",
                    Arc::new(Int64Array::from(vec![0, 1, 2, 3, 24])),
                ),
            ],
        );
        dir.write(
            "shop/customers.csv",
            "id,name,city\n1,Ann,Oslo\n2,Bob,Lima\n3,Cid,Rome\n",
        );
        dir.write(
            "shop/events.json",
            concat!(
                "{\"id\": 1, \"kind\": \"click\", \"score\": 1.5}\n",
                "{\"id\": 2, \"kind\": \"view\", \"score\": 2.0}\n",
                "{\"id\": 3, \"kind\": \"click\", \"score\": 0.25}\n",
                "{\"id\": 4, \"kind\": \"buy\", \"score\": 7.0}\n",
            ),
        );
        write_parquet(
            &dir.path().join("shop/sales/year=2023/part-0.parquet"),
            vec![
                ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
                ("amount", Arc::new(Int64Array::from(vec![10, 20, 30]))),
            ],
        );
        write_parquet(
            &dir.path().join("shop/sales/year=2024/part-0.parquet"),
            vec![
                ("id", Arc::new(Int64Array::from(vec![4, 5])) as ArrayRef),
                ("amount", Arc::new(Int64Array::from(vec![40, 50]))),
            ],
        );
        dir
    })
    .path()
}

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create parquet dir");
    let batch = RecordBatch::try_from_iter(columns).expect("record batch");
    let file = std::fs::File::create(path).expect("create parquet file");
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).expect("parquet writer");
    writer.write(&batch).expect("write parquet");
    writer.close().expect("close parquet");
}

/// The same files in moto, under `s3://BUCKET/PREFIX/`, uploaded once per test process.
fn s3_lake() -> &'static Moto {
    static UPLOADED: OnceLock<()> = OnceLock::new();
    let moto = Moto::shared();
    UPLOADED.get_or_init(|| {
        moto.create_bucket(BUCKET);
        let keys = moto.upload_dir(BUCKET, PREFIX, lake_dir());
        assert_eq!(keys.len(), 5, "uploaded {keys:?}");
    });
    moto
}

#[derive(Clone, Copy, Debug)]
enum Source {
    File,
    S3,
}

/// A server with catalog `lake` on the given source and catalog `tpch` (built-in generator).
fn start(source: Source) -> (Tributary, ConfigDir) {
    let lake = match source {
        Source::File => format!(
            "connector = \"lake\"\nlocation = {}\n",
            toml_string(&format!("file://{}", lake_dir().display()))
        ),
        Source::S3 => {
            let moto = s3_lake();
            format!(
                "connector = \"lake\"\nlocation = {}\nendpoint = {}\nregion = {}\n\
                 access_key_id = {}\nsecret_access_key = {}\n",
                toml_string(&format!("s3://{BUCKET}/{PREFIX}")),
                toml_string(&moto.endpoint()),
                toml_string(Moto::REGION),
                toml_string(Moto::ACCESS_KEY_ID),
                toml_string(Moto::SECRET_ACCESS_KEY),
            )
        }
    };
    let config = ConfigDir::new()
        .catalog("lake", &lake)
        .catalog("tpch", "connector = \"tpch\"\n");
    let server = Tributary::start(Some(config.path()));
    (server, config)
}

async fn rows(client: &tokio_postgres::Client, sql: &str) -> TextRows {
    match results::query_text(client, sql).await {
        Ok(rows) => rows,
        Err(e) => panic!(
            "query failed: {sql}\n{e}{}",
            e.as_db_error()
                .map(|d| format!(" [SQLSTATE {}] {}", d.code().code(), d.message()))
                .unwrap_or_default()
        ),
    }
}

/// Asserts `sql`'s rows equal `expected` in order; cells that parse as numbers on both sides are
/// compared as numbers (so a float printed `3` or `3.0` is the same), everything else exactly.
async fn assert_rows(client: &tokio_postgres::Client, sql: &str, expected: &[&[&str]]) {
    let actual = rows(client, sql).await;
    let expected = TextRows {
        columns: actual.columns.clone(),
        rows: expected
            .iter()
            .map(|r| r.iter().map(|v| Some(v.to_string())).collect())
            .collect(),
    };
    let width = expected.rows.first().map_or(0, |r| r.len());
    if !actual.rows.is_empty() && actual.columns.len() != width {
        panic!(
            "{sql}: expected {width} columns, got {:?} with rows {:?}",
            actual.columns,
            actual.strings()
        );
    }
    let kinds = vec![results::Kind::Number; width];
    if let Err(diff) = results::compare(&expected, &actual, &kinds, true, 10) {
        panic!("{sql}\n{diff}");
    }
}

async fn counts(source: Source) {
    let (server, _config) = start(source);
    let client = server.connect("lake").await;
    assert_rows(&client, "select count(*) from lake.shop.items", &[&["5"]]).await;
    assert_rows(
        &client,
        "select count(*) from lake.shop.customers",
        &[&["3"]],
    )
    .await;
    assert_rows(&client, "select count(*) from lake.shop.events", &[&["4"]]).await;
    assert_rows(&client, "select count(*) from lake.shop.sales", &[&["5"]]).await;
    // Unqualified names through search_path, with the catalog from the startup database.
    client
        .batch_execute("SET search_path TO shop")
        .await
        .expect("SET search_path TO shop");
    assert_rows(&client, "select count(*) from items", &[&["5"]]).await;
}

async fn contents(source: Source) {
    let (server, _config) = start(source);
    let client = server.connect("lake").await;
    assert_rows(
        &client,
        "select id, name, price, nationkey from lake.shop.items order by id",
        &[
            &["1", "apple", "1.25", "0"],
            &["2", "banana", "0.5", "1"],
            &["3", "cherry", "3", "2"],
            &["4", "date", "2.75", "3"],
            &["5", "elder", "10", "24"],
        ],
    )
    .await;
    assert_rows(
        &client,
        "select id, name, city from lake.shop.customers order by id",
        &[
            &["1", "Ann", "Oslo"],
            &["2", "Bob", "Lima"],
            &["3", "Cid", "Rome"],
        ],
    )
    .await;
    assert_rows(
        &client,
        "select kind, count(*), sum(score) from lake.shop.events group by kind order by kind",
        &[
            &["buy", "1", "7"],
            &["click", "2", "1.75"],
            &["view", "1", "2"],
        ],
    )
    .await;
    assert_rows(
        &client,
        "select id, amount, year from lake.shop.sales order by id",
        &[
            &["1", "10", "2023"],
            &["2", "20", "2023"],
            &["3", "30", "2023"],
            &["4", "40", "2024"],
            &["5", "50", "2024"],
        ],
    )
    .await;
}

async fn join_with_tpch(source: Source) {
    let (server, _config) = start(source);
    let client = server.connect("lake").await;
    assert_rows(
        &client,
        "select i.name, n.n_name from lake.shop.items i \
         join tpch.tiny.nation n on i.nationkey = n.n_nationkey order by i.id",
        &[
            &["apple", "ALGERIA"],
            &["banana", "ARGENTINA"],
            &["cherry", "BRAZIL"],
            &["date", "CANADA"],
            &["elder", "UNITED STATES"],
        ],
    )
    .await;
}

async fn hive_partition_filter(source: Source) {
    let (server, _config) = start(source);
    let client = server.connect("lake").await;
    assert_rows(
        &client,
        "select id, amount, year from lake.shop.sales where year = '2024' order by id",
        &[&["4", "40", "2024"], &["5", "50", "2024"]],
    )
    .await;
    assert_rows(
        &client,
        "select year, count(*), sum(amount) from lake.shop.sales group by year order by year",
        &[&["2023", "3", "60"], &["2024", "2", "90"]],
    )
    .await;
}

/// Joins ordered by estimates (Parquet footers' row counts and value ranges, TPC-H's sizes): the
/// one-row lake table meets supplier first, though the query names lineitem first; with Trino's
/// `join_reordering_strategy = 'NONE'` the query's order stays. Same answer either way.
async fn join_order(source: Source) {
    let (server, _config) = start(source);
    let client = server.connect("lake").await;
    let sql = "select count(*), sum(l.l_quantity) from tpch.tiny.lineitem l \
               join tpch.tiny.supplier s on l.l_suppkey = s.s_suppkey \
               join lake.shop.items i on s.s_nationkey = i.nationkey where i.price > 5";
    // Where each join's line is in EXPLAIN: inner joins print after (below) the joins they feed.
    let order = |plan: &str| {
        let at = |key: &str| {
            plan.lines()
                .position(|l| l.contains("HashJoinExec") && l.contains(key))
                .unwrap_or_else(|| panic!("no join on {key}:\n{plan}"))
        };
        (at("nationkey"), at("suppkey"))
    };
    assert_rows(&client, "show join_reordering_strategy", &[&["AUTOMATIC"]]).await;
    let expected = rows(&client, sql).await;
    let plan = compat_tests::pushdown::explain(&client, sql).await;
    let (nation_join, supplier_join) = order(&plan);
    assert!(
        nation_join > supplier_join,
        "items and supplier first:\n{plan}"
    );

    client
        .batch_execute("set join_reordering_strategy = 'none'")
        .await
        .expect("set");
    assert_rows(&client, "show join_reordering_strategy", &[&["NONE"]]).await;
    let plan = compat_tests::pushdown::explain(&client, sql).await;
    let (nation_join, supplier_join) = order(&plan);
    assert!(
        nation_join < supplier_join,
        "lineitem and supplier first:\n{plan}"
    );
    assert_eq!(rows(&client, sql).await, expected);

    let error = client
        .batch_execute("set join_reordering_strategy = 'greedy'")
        .await
        .expect_err("unknown strategy");
    assert_eq!(
        error.as_db_error().map(|d| d.code().code()),
        Some("22023"),
        "{error}"
    );
}

macro_rules! lake_tests {
    ($($name:ident: $check:ident($source:expr);)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $check($source).await;
            }
        )*
    };
}

lake_tests! {
    file_counts: counts(Source::File);
    file_contents: contents(Source::File);
    file_join_with_tpch: join_with_tpch(Source::File);
    file_hive_partition_filter: hive_partition_filter(Source::File);
    file_join_order: join_order(Source::File);
    s3_counts: counts(Source::S3);
    s3_contents: contents(Source::S3);
    s3_join_with_tpch: join_with_tpch(Source::S3);
    s3_hive_partition_filter: hive_partition_filter(Source::S3);
}

/// The harness itself: moto holds exactly what was uploaded (independent of the server).
#[test]
fn moto_holds_the_uploaded_files() {
    let moto = s3_lake();
    let csv = moto
        .get_object(BUCKET, &format!("{PREFIX}/shop/customers.csv"))
        .expect("customers.csv in moto");
    assert_eq!(
        csv,
        std::fs::read(lake_dir().join("shop/customers.csv")).unwrap()
    );
    let parquet = moto
        .get_object(
            BUCKET,
            &format!("{PREFIX}/shop/sales/year=2024/part-0.parquet"),
        )
        .expect("sales/year=2024/part-0.parquet in moto");
    assert_eq!(
        parquet,
        std::fs::read(lake_dir().join("shop/sales/year=2024/part-0.parquet")).unwrap()
    );
}
