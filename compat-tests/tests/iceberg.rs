//! `iceberg` catalogs through the built binary: the SQL catalog in PostgreSQL, the warehouse on
//! local disk or S3 (moto). `CREATE SCHEMA`, `CREATE TABLE AS` and `INSERT` commit one snapshot
//! each (seen in `"t$snapshots"` and in the catalog's own `iceberg_tables` row), data files carry
//! Iceberg field ids and column bounds that prune files (EXPLAIN shows the files left), time travel
//! reads older snapshots, a failing `CREATE TABLE AS` leaves no table and no file, `DROP` removes
//! the files; and a `CREATE TABLE AS` on a cluster under `retry_policy = TASK` survives a killed
//! worker with exactly one copy of each row.

use std::sync::Arc;
use std::time::{Duration, Instant};

use compat_tests::cluster::{Cluster, wait_running_task};
use compat_tests::results;
use compat_tests::{ConfigDir, Moto, Postgres, TempDir, Tributary, files_under, toml_string};
use tokio_postgres::{Client, SimpleQueryMessage};

const BUCKET: &str = "tributary-iceberg";

/// The catalog file of an iceberg catalog whose SQL catalog is database `db` of the shared
/// PostgreSQL, with warehouse `warehouse` (extra keys appended).
fn catalog(db: &str, warehouse: &str, extra: &str) -> String {
    format!(
        "connector = \"iceberg\"\ncatalog_uri = {}\nwarehouse = {}\n{extra}",
        toml_string(&Postgres::shared().url(db)),
        toml_string(warehouse)
    )
}

/// The S3 keys of the shared moto server.
fn s3_keys() -> String {
    let moto = Moto::shared();
    format!(
        "endpoint = {}\nregion = {}\naccess_key_id = {}\nsecret_access_key = {}\n",
        toml_string(&moto.endpoint()),
        toml_string(Moto::REGION),
        toml_string(Moto::ACCESS_KEY_ID),
        toml_string(Moto::SECRET_ACCESS_KEY),
    )
}

async fn strings(client: &Client, sql: &str) -> Vec<Vec<String>> {
    match results::query_text(client, sql).await {
        Ok(rows) => rows.strings(),
        Err(e) => panic!(
            "query failed: {sql}\n{e}{}",
            e.as_db_error()
                .map(|d| format!(" [SQLSTATE {}] {}", d.code().code(), d.message()))
                .unwrap_or_default()
        ),
    }
}

/// The row count of the command tag `sql` completes with.
async fn tag_count(client: &Client, sql: &str) -> u64 {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql}: no command tag"))
}

async fn error_code(client: &Client, sql: &str) -> String {
    match client.simple_query(sql).await {
        Ok(_) => panic!("{sql}: expected an error"),
        Err(e) => e
            .as_db_error()
            .map(|d| format!("{}: {}", d.code().code(), d.message()))
            .unwrap_or_else(|| panic!("{sql}: {e}")),
    }
}

/// The data files an EXPLAIN lists (`.parquet` names in its text).
async fn explained_files(client: &Client, sql: &str) -> usize {
    let plan = strings(client, &format!("EXPLAIN {sql}")).await;
    let text: String = plan
        .iter()
        .map(|r| r.join(" "))
        .collect::<Vec<_>>()
        .join("\n");
    text.matches(".parquet").count()
}

const ORDERS: &str = "o_orderkey, o_custkey, o_orderstatus, o_totalprice, o_orderdate, o_comment";
const AGGREGATES: &str = "count(*), sum(o_totalprice), min(o_orderdate), max(o_orderdate), \
     count(DISTINCT o_custkey), sum(length(o_comment))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iceberg_tables_are_written_as_snapshots_and_read_back_on_disk() {
    let pg = Postgres::shared();
    pg.create_database("icecat_fs").await;
    let warehouse = TempDir::new("iceberg-fs");
    let spool = TempDir::new("iceberg-spool");
    let config = ConfigDir::new()
        .config(&format!(
            "[exchange]\nbase_directories = [{}]\n",
            toml_string(&format!("file://{}", spool.path().display()))
        ))
        .catalog(
            "ice",
            &catalog(
                "icecat_fs",
                &format!("file://{}", warehouse.path().display()),
                "",
            ),
        );
    let server = Tributary::start(Some(config.path()));
    let c = server.connect("tpch").await;

    c.simple_query("CREATE SCHEMA ice.sales").await.unwrap();
    let created = tag_count(
        &c,
        &format!("CREATE TABLE ice.sales.orders AS SELECT {ORDERS} FROM tpch.tiny.orders"),
    )
    .await;
    assert_eq!(created, 15_000);
    let copy = strings(&c, &format!("SELECT {AGGREGATES} FROM ice.sales.orders")).await;
    let source = strings(&c, &format!("SELECT {AGGREGATES} FROM tpch.tiny.orders")).await;
    assert_eq!(copy, source);
    // Types as Trino's Iceberg connector keeps them; the table is listed.
    assert_eq!(
        strings(
            &c,
            "SELECT arrow_typeof(o_orderkey), arrow_typeof(o_orderstatus), \
             arrow_typeof(o_totalprice), arrow_typeof(o_orderdate) FROM ice.sales.orders LIMIT 1"
        )
        .await,
        [["Int64", "Utf8", "Decimal128(15, 2)", "Date32"]]
    );
    let in_ice = server.connect("ice").await;
    assert_eq!(
        strings(
            &in_ice,
            "SELECT table_schema, table_name FROM information_schema.tables \
             WHERE table_schema = 'sales'"
        )
        .await,
        [["sales", "orders"]]
    );

    // One snapshot per write, recorded in the SQL catalog in PostgreSQL.
    let inserted = tag_count(
        &c,
        "INSERT INTO ice.sales.orders SELECT o_orderkey + 10000000, o_custkey, o_orderstatus, \
         o_totalprice, o_orderdate, 'late' FROM tpch.tiny.orders WHERE o_orderkey <= 100",
    )
    .await;
    assert!(inserted > 0 && inserted < 100, "{inserted}");
    let snapshots = strings(
        &c,
        "SELECT snapshot_id, operation, CAST(committed_at AS VARCHAR), parent_id IS NULL \
         FROM ice.sales.\"orders$snapshots\" ORDER BY committed_at",
    )
    .await;
    assert_eq!(snapshots.len(), 2, "{snapshots:?}");
    assert_eq!(snapshots[0][1], "append");
    assert_eq!(snapshots[0][3], "t");
    assert_eq!(snapshots[1][3], "f");
    let pg_client = pg.connect("icecat_fs").await;
    let row = pg_client
        .query_one(
            "SELECT metadata_location FROM iceberg_tables \
             WHERE catalog_name = 'ice' AND table_namespace = 'sales' AND table_name = 'orders'",
            &[],
        )
        .await
        .expect("the table is in the SQL catalog");
    let metadata_location: String = row.get(0);
    assert!(
        metadata_location.starts_with(&format!(
            "file://{}/sales/orders-",
            warehouse.path().display()
        )),
        "{metadata_location}"
    );

    // Time travel to the CTAS snapshot, by id and by time.
    let first = &snapshots[0][0];
    assert_eq!(
        strings(
            &c,
            &format!("SELECT count(*) FROM ice.sales.orders FOR VERSION AS OF {first}")
        )
        .await,
        [["15000"]]
    );
    let at = &snapshots[0][2];
    assert_eq!(
        strings(
            &c,
            &format!("SELECT count(*) FROM ice.sales.orders FOR TIMESTAMP AS OF TIMESTAMP '{at}'")
        )
        .await,
        [["15000"]]
    );
    assert_eq!(
        strings(&c, "SELECT count(*) FROM ice.sales.orders").await,
        [[(15_000 + inserted).to_string()]]
    );
    let before = error_code(
        &c,
        "SELECT count(*) FROM ice.sales.orders FOR TIMESTAMP AS OF TIMESTAMP '2000-01-01 00:00:00 UTC'",
    )
    .await;
    assert!(before.starts_with("22023"), "{before}");
    let unknown = error_code(&c, "SELECT * FROM ice.sales.orders FOR VERSION AS OF 1").await;
    assert!(unknown.starts_with("22023"), "{unknown}");

    // Column bounds in the manifests prune files: only the INSERT's file can hold the new keys.
    let files = strings(&c, "SELECT count(*) FROM ice.sales.\"orders$files\"").await;
    let all_files: usize = files[0][0].parse().unwrap();
    assert!(all_files >= 2, "{files:?}");
    assert_eq!(
        explained_files(&c, "SELECT * FROM ice.sales.orders").await,
        all_files
    );
    assert_eq!(
        explained_files(
            &c,
            "SELECT * FROM ice.sales.orders WHERE o_orderkey > 10000000"
        )
        .await,
        1
    );
    assert_eq!(
        strings(
            &c,
            "SELECT count(*) FROM ice.sales.orders WHERE o_orderkey > 10000000 AND o_comment = 'late'"
        )
        .await,
        [[inserted.to_string()]]
    );

    // Data files carry Iceberg field ids (readers such as Trino and Spark resolve columns by id).
    let data_file = files_under(warehouse.path())
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .expect("a data file");
    let reader = datafusion::parquet::file::reader::SerializedFileReader::new(
        std::fs::File::open(&data_file).unwrap(),
    )
    .unwrap();
    let schema = datafusion::parquet::file::reader::FileReader::metadata(&reader)
        .file_metadata()
        .schema_descr_ptr();
    let ids: Vec<i32> = schema
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.get_basic_info().id())
        .collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);

    // Under TASK, a writer task that fails its first attempt (an injected failure) is re-run and
    // only its committed attempt's file is published: one snapshot, each row once (sf1: writer
    // tasks on a stage of their own; the keys up to 100 are the same at every scale).
    c.simple_query("SET retry_policy = 'TASK'; SET inject_failure = '1.0'")
        .await
        .unwrap();
    let again = tag_count(
        &c,
        "INSERT INTO ice.sales.orders SELECT o_orderkey + 20000000, o_custkey, o_orderstatus, \
         o_totalprice, o_orderdate, 'retried' FROM tpch.sf1.orders WHERE o_orderkey <= 100",
    )
    .await;
    assert_eq!(again, inserted);
    c.simple_query("RESET inject_failure; RESET retry_policy")
        .await
        .unwrap();
    assert_eq!(
        strings(
            &c,
            "SELECT count(*), count(*) FILTER (WHERE o_comment = 'retried') FROM ice.sales.orders"
        )
        .await,
        [[(15_000 + 2 * inserted).to_string(), inserted.to_string()]]
    );
    assert_eq!(
        strings(&c, "SELECT count(*) FROM ice.sales.\"orders$snapshots\"").await,
        [["3"]]
    );
    assert_ne!(
        strings(
            &c,
            "SELECT count(*) FROM system.runtime.tasks WHERE attempt > 0"
        )
        .await,
        [["0"]],
        "the injected failure was retried"
    );

    // A failing CREATE TABLE AS leaves no table and no file.
    let failed = error_code(
        &c,
        "CREATE TABLE ice.sales.broken AS SELECT o_orderkey, 1 / (o_orderkey - 7) AS x FROM tpch.tiny.orders",
    )
    .await;
    assert!(failed.starts_with("22012"), "{failed}");
    let missing = error_code(&c, "SELECT * FROM ice.sales.broken").await;
    assert!(missing.starts_with("42P01"), "{missing}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left: Vec<_> = files_under(warehouse.path())
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("/broken-"))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {left:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // CREATE TABLE with columns, then INSERT with VALUES; errors with PostgreSQL's SQLSTATEs.
    c.simple_query("CREATE TABLE ice.sales.notes (id bigint, note varchar, at timestamp)")
        .await
        .unwrap();
    assert_eq!(
        strings(&c, "SELECT count(*) FROM ice.sales.notes").await,
        [["0"]]
    );
    assert_eq!(
        tag_count(
            &c,
            "INSERT INTO ice.sales.notes VALUES (1, 'a''b\\c', TIMESTAMP '2026-12-05 10:00:00.123456')"
        )
        .await,
        1
    );
    assert_eq!(
        strings(
            &c,
            "SELECT id, note, CAST(at AS VARCHAR) FROM ice.sales.notes"
        )
        .await,
        [["1", "a'b\\c", "2026-12-05T10:00:00.123456"]]
    );
    let duplicate = error_code(&c, "CREATE TABLE ice.sales.notes (id bigint)").await;
    assert!(duplicate.starts_with("42P07"), "{duplicate}");
    let no_schema = error_code(&c, "CREATE TABLE ice.nowhere.t AS SELECT 1 AS x").await;
    assert!(no_schema.starts_with("3F000"), "{no_schema}");
    let partitioned = error_code(
        &c,
        "CREATE TABLE ice.sales.p WITH (partitioning = ARRAY['x']) AS SELECT 1 AS y, 2.5 AS x",
    )
    .await;
    assert!(partitioned.starts_with("0A000"), "{partitioned}");
    let unknown_column = error_code(
        &c,
        "CREATE TABLE ice.sales.p WITH (partitioning = ARRAY['z']) AS SELECT 1 AS y",
    )
    .await;
    assert!(unknown_column.starts_with("22023"), "{unknown_column}");
    let not_empty = error_code(&c, "DROP SCHEMA ice.sales").await;
    assert!(not_empty.starts_with("2BP01"), "{not_empty}");

    // Identity partitions (Trino's `partitioning`): a directory per value, the partition in each
    // manifest entry, and files pruned by it.
    assert_eq!(
        tag_count(
            &c,
            "CREATE TABLE ice.sales.by_status WITH (partitioning = ARRAY['o_orderstatus']) \
             AS SELECT o_orderkey, o_orderstatus, o_totalprice FROM tpch.tiny.orders"
        )
        .await,
        15_000
    );
    assert_eq!(
        tag_count(
            &c,
            "INSERT INTO ice.sales.by_status VALUES (99999999, 'F', 1.00), (99999998, 'X', 2.00)"
        )
        .await,
        2
    );
    let per_status = "SELECT o_orderstatus, count(*), sum(o_totalprice) FROM {} \
                      WHERE o_orderkey < 99999998 GROUP BY 1 ORDER BY 1";
    assert_eq!(
        strings(&c, &per_status.replace("{}", "ice.sales.by_status")).await,
        strings(&c, &per_status.replace("{}", "tpch.tiny.orders")).await
    );
    let everything = explained_files(&c, "SELECT * FROM ice.sales.by_status").await;
    let plan = strings(
        &c,
        "EXPLAIN SELECT count(*) FROM ice.sales.by_status WHERE o_orderstatus = 'X'",
    )
    .await
    .concat()
    .join("\n");
    assert_eq!(plan.matches(".parquet").count(), 1, "{plan}");
    assert!(plan.contains("o_orderstatus=X/"), "{plan}");
    assert!(everything >= 4, "{everything}");
    assert_eq!(
        strings(
            &c,
            "SELECT count(*) FROM ice.sales.by_status WHERE o_orderstatus IN ('F', 'X')"
        )
        .await,
        strings(
            &c,
            "SELECT count(*) + 2 FROM tpch.tiny.orders WHERE o_orderstatus = 'F'"
        )
        .await
    );

    // DROP TABLE removes its files; DROP SCHEMA CASCADE the rest.
    c.simple_query("DROP TABLE ice.sales.orders").await.unwrap();
    assert!(
        !files_under(warehouse.path())
            .iter()
            .any(|p| p.to_string_lossy().contains("/orders-")),
        "the dropped table's files are gone"
    );
    c.simple_query("DROP SCHEMA ice.sales CASCADE")
        .await
        .unwrap();
    let gone = error_code(&c, "SELECT * FROM ice.sales.notes").await;
    assert!(gone.starts_with("42P01"), "{gone}");
    assert!(
        !server.log().contains("panicked"),
        "{}",
        compat_tests::tail(&server.log(), 40)
    );
}

/// A `CREATE TABLE AS` into an Iceberg table on S3, written by the tasks of three workers under
/// `retry_policy = TASK`, one of which is killed while it writes: the table holds each row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iceberg_ctas_on_s3_under_task_survives_a_killed_worker() {
    let pg = Postgres::shared();
    pg.create_database("icecat_s3").await;
    Moto::shared().create_bucket(BUCKET);
    let prefix = format!("wh-{}", std::process::id());
    let spool = TempDir::new("spool-iceberg");
    let config = ConfigDir::new()
        .config(&format!(
            "[node]\nheartbeat_interval_ms = 200\nheartbeat_timeout_ms = 3000\n\
             [engine]\ntask_threads = 1\n\
             [query]\nretry_initial_delay_ms = 50\nretry_max_delay_ms = 200\n\
             [exchange]\nbase_directories = [{}]\n",
            toml_string(&format!("file://{}", spool.path().display()))
        ))
        .catalog(
            "ice",
            &catalog("icecat_s3", &format!("s3://{BUCKET}/{prefix}"), &s3_keys()),
        );
    let cluster = Cluster::start_with(config, &["w1", "w2", "w3"]).await;
    let c = Arc::new(cluster.coordinator.connect("tpch").await);
    c.simple_query("CREATE SCHEMA ice.etl; SET retry_policy = 'TASK'")
        .await
        .unwrap();
    let ctas = format!("CREATE TABLE ice.etl.orders AS SELECT {ORDERS} FROM tpch.sf1.orders");
    let write = {
        let c = c.clone();
        let ctas = ctas.clone();
        tokio::spawn(async move { c.simple_query(&ctas).await })
    };
    let watcher = cluster.coordinator.connect("tpch").await;
    wait_running_task(&watcher, "w2").await;
    cluster.kill_worker("w2");
    let done = tokio::time::timeout(Duration::from_secs(600), write)
        .await
        .expect("the CTAS must end")
        .unwrap()
        .expect("under TASK the CTAS survives the loss of a worker");
    let tag = done.iter().find_map(|m| match m {
        SimpleQueryMessage::CommandComplete(n) => Some(*n),
        _ => None,
    });
    assert_eq!(tag, Some(1_500_000));
    let lost = watcher
        .query(
            "SELECT count(*) FROM system.runtime.tasks WHERE worker = 'w2' AND state = 'FAILED' \
             AND query_id = (SELECT query_id FROM system.runtime.queries WHERE query = $1 \
                             ORDER BY created DESC LIMIT 1)",
            &[&ctas],
        )
        .await
        .expect("system.runtime.tasks");
    assert!(lost[0].get::<_, i64>(0) > 0, "a task was lost with w2");
    c.simple_query("RESET retry_policy").await.unwrap();
    let copy = strings(&c, &format!("SELECT {AGGREGATES} FROM ice.etl.orders")).await;
    let source = strings(&c, &format!("SELECT {AGGREGATES} FROM tpch.sf1.orders")).await;
    assert_eq!(copy, source);
    assert_eq!(copy[0][0], "1500000");
    // One snapshot, listing only the committed attempts' files; no other data file is left.
    assert_eq!(
        strings(&c, "SELECT count(*) FROM ice.etl.\"orders$snapshots\"").await,
        [["1"]]
    );
    let listed: usize = strings(&c, "SELECT count(*) FROM ice.etl.\"orders$files\"").await[0][0]
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stored = Moto::shared()
            .list_keys(BUCKET, &format!("{prefix}/etl/"))
            .into_iter()
            .filter(|k| k.ends_with(".parquet"))
            .count();
        if stored == listed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{stored} data files stored, {listed} committed"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
