//! Writing `lake` catalogs through the built binary, on local disk and on S3 (moto): `CREATE SCHEMA`,
//! `CREATE TABLE ... AS` (partitioned and not), `CREATE TABLE (columns)`, `INSERT`, `DROP TABLE`,
//! `DROP SCHEMA`, with PostgreSQL's command tags (checked through psql); a failing or canceled
//! `CREATE TABLE AS` leaves no table and no files; partition columns keep their types (from a managed
//! table's metadata, inferred for plain Hive directories, or text with inference off); and a
//! coordinator with two workers copies `tpch.tiny.lineitem` exactly.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use compat_tests::cluster::Cluster;
use compat_tests::results::{self, TextRows};
use compat_tests::{ConfigDir, Moto, TempDir, Tributary, files_under, toml_string};
use datafusion::arrow::array::{ArrayRef, Int64Array};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;

const BUCKET: &str = "tributary-lake-write";

/// Where a test's lake lives: its own directory, or its own prefix of the moto bucket.
enum Lake {
    File(TempDir),
    S3 { prefix: String },
}

impl Lake {
    fn file() -> Lake {
        Lake::File(TempDir::new("lake-write"))
    }

    fn s3(test: &str) -> Lake {
        Moto::shared().create_bucket(BUCKET);
        Lake::S3 {
            prefix: format!("{test}-{}", std::process::id()),
        }
    }

    /// The catalog file of a lake catalog over this location.
    fn catalog(&self, extra: &str) -> String {
        match self {
            Lake::File(dir) => format!(
                "connector = \"lake\"\nlocation = {}\n{extra}",
                toml_string(&format!("file://{}", dir.path().display()))
            ),
            Lake::S3 { prefix } => {
                let moto = Moto::shared();
                format!(
                    "connector = \"lake\"\nlocation = {}\nendpoint = {}\nregion = {}\n\
                     access_key_id = {}\nsecret_access_key = {}\n{extra}",
                    toml_string(&format!("s3://{BUCKET}/{prefix}")),
                    toml_string(&moto.endpoint()),
                    toml_string(Moto::REGION),
                    toml_string(Moto::ACCESS_KEY_ID),
                    toml_string(Moto::SECRET_ACCESS_KEY),
                )
            }
        }
    }

    /// Every file (object) under `relative` (a directory of the lake), sorted, relative to the lake.
    fn files(&self, relative: &str) -> Vec<String> {
        match self {
            Lake::File(dir) => {
                let mut out: Vec<String> = files_under(&dir.path().join(relative))
                    .iter()
                    .map(|path| {
                        path.strip_prefix(dir.path())
                            .expect("under the lake")
                            .to_string_lossy()
                            .into_owned()
                    })
                    .collect();
                out.sort();
                out
            }
            Lake::S3 { prefix } => Moto::shared()
                .list_keys(BUCKET, &format!("{prefix}/{relative}"))
                .into_iter()
                .map(|k| k[prefix.len() + 1..].to_string())
                .filter(|k| !k.ends_with('/'))
                .collect(),
        }
    }
}

fn start(lake: &Lake) -> (Tributary, ConfigDir) {
    let config = ConfigDir::new()
        .catalog("lake", &lake.catalog(""))
        .catalog("tpch", "connector = \"tpch\"\n");
    let server = Tributary::start(Some(config.path()));
    (server, config)
}

/// Runs `commands` in one psql session; returns stdout and stderr (psql prints each command tag).
fn psql(server: &Tributary, commands: &[&str]) -> (String, String) {
    let psql = compat_tests::which("psql").expect("psql (PostgreSQL client) on PATH");
    let mut command = Command::new(psql);
    command
        .args(["-X", "-h", "127.0.0.1", "-U", "tester", "-d", "lake", "-p"])
        .arg(server.port().to_string())
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGPASSWORD");
    for c in commands {
        command.args(["-c", c]);
    }
    let output = command.output().expect("psql runs");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs one statement through psql and asserts its command tag.
fn assert_tag(server: &Tributary, sql: &str, tag: &str) {
    let (stdout, stderr) = psql(server, &[sql]);
    assert!(
        stdout.lines().any(|l| l.trim() == tag) && !stderr.contains("ERROR"),
        "{sql}: expected tag `{tag}`\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver log:\n{}",
        compat_tests::tail(&server.log(), 40)
    );
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

/// The rows of `sql` as strings (NULL as `NULL`).
async fn strings(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<String>> {
    rows(client, sql)
        .await
        .rows
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|c| c.unwrap_or_else(|| "NULL".into()))
                .collect()
        })
        .collect()
}

async fn assert_rows(client: &tokio_postgres::Client, sql: &str, expected: &[&[&str]]) {
    let actual = strings(client, sql).await;
    let expected: Vec<Vec<String>> = expected
        .iter()
        .map(|r| r.iter().map(|v| v.to_string()).collect())
        .collect();
    assert_eq!(actual, expected, "{sql}");
}

/// The SQLSTATE `sql` fails with.
async fn error_code(client: &tokio_postgres::Client, sql: &str) -> String {
    match client.simple_query(sql).await {
        Ok(_) => panic!("{sql}: expected an error"),
        Err(e) => e
            .as_db_error()
            .map(|d| d.code().code().to_string())
            .unwrap_or_else(|| panic!("{sql}: {e}")),
    }
}

/// lineitem's columns with the partition column `l_returnflag` last.
const LINEITEM_FLAG_LAST: &str = "l_orderkey, l_partkey, l_suppkey, l_linenumber, l_quantity, l_extendedprice, l_discount, l_tax, l_linestatus, l_shipdate, l_commitdate, l_receiptdate, l_shipinstruct, l_shipmode, l_comment, l_returnflag";

/// The aggregates both copies of lineitem must agree on.
const LINEITEM_AGGREGATES: &str = "count(*), sum(l_quantity), sum(l_extendedprice), \
     sum(l_discount), min(l_shipdate), max(l_receiptdate), count(distinct l_orderkey), \
     sum(length(l_comment)), count(distinct l_returnflag || l_linestatus)";

async fn round_trip(lake: Lake) {
    let (server, _config) = start(&lake);
    assert_tag(&server, "CREATE SCHEMA lake.etl", "CREATE SCHEMA");
    assert_tag(
        &server,
        "CREATE TABLE lake.etl.orders AS SELECT * FROM tpch.tiny.orders",
        "SELECT 15000",
    );
    assert_tag(
        &server,
        "CREATE TABLE lake.etl.nation WITH (format = 'PARQUET', partitioned_by = ARRAY['n_regionkey']) \
         AS SELECT n_nationkey, n_name, n_comment, n_regionkey FROM tpch.tiny.nation",
        "SELECT 25",
    );
    let client = server.connect("lake").await;
    // As in Trino, the partition columns must be the last columns.
    assert_eq!(
        error_code(
            &client,
            "CREATE TABLE lake.etl.wrong WITH (partitioned_by = ARRAY['n_regionkey']) \
             AS SELECT * FROM tpch.tiny.nation"
        )
        .await,
        "22023"
    );
    assert_eq!(
        error_code(
            &client,
            "CREATE TABLE lake.etl.wrong WITH (format = 'ORC') AS SELECT 1 AS a"
        )
        .await,
        "0A000"
    );
    let source = strings(
        &client,
        "SELECT count(*), sum(o_totalprice), min(o_orderdate), max(o_comment) FROM tpch.tiny.orders",
    )
    .await;
    let copy = strings(
        &client,
        "SELECT count(*), sum(o_totalprice), min(o_orderdate), max(o_comment) FROM lake.etl.orders",
    )
    .await;
    assert_eq!(copy, source);

    // The partition column keeps its type: arithmetic, numeric comparison (`10 > 3`).
    assert_rows(
        &client,
        "SELECT count(*), sum(n_regionkey), sum(n_nationkey) FROM lake.etl.nation",
        &[&["25", "50", "300"]],
    )
    .await;
    assert_rows(
        &client,
        "SELECT count(*) FROM lake.etl.nation WHERE n_regionkey >= 3",
        &[&["10"]],
    )
    .await;
    assert_rows(
        &client,
        "SELECT n_name, n_regionkey + 1 FROM lake.etl.nation WHERE n_nationkey = 24",
        &[&["UNITED STATES", "2"]],
    )
    .await;
    let dirs = lake.files("etl/nation/");
    for region in 0..5 {
        assert!(
            dirs.iter().any(
                |f| f.starts_with(&format!("etl/nation/n_regionkey={region}/"))
                    && f.ends_with(".parquet")
            ),
            "no Hive directory for region {region}: {dirs:?}"
        );
    }

    // INSERT appends; the partitioned table takes rows into existing and new directories.
    assert_tag(
        &server,
        "INSERT INTO lake.etl.orders SELECT * FROM tpch.tiny.orders WHERE o_orderkey < 100",
        "INSERT 0 27",
    );
    assert_rows(
        &client,
        "SELECT count(*) FROM lake.etl.orders",
        &[&["15027"]],
    )
    .await;
    assert_tag(
        &server,
        "INSERT INTO lake.etl.nation SELECT n_nationkey + 100, n_name, n_comment, n_regionkey + 10 \
         FROM tpch.tiny.nation WHERE n_nationkey < 3",
        "INSERT 0 3",
    );
    assert_rows(
        &client,
        "SELECT n_regionkey, count(*) FROM lake.etl.nation WHERE n_regionkey >= 4 GROUP BY 1 ORDER BY 1",
        &[&["4", "5"], &["10", "1"], &["11", "2"]],
    )
    .await;

    // CREATE TABLE with columns, then INSERT ... VALUES (a date partition column).
    assert_tag(
        &server,
        "CREATE TABLE lake.etl.events (id bigint, kind varchar, day date) \
         WITH (partitioned_by = ARRAY['day'])",
        "CREATE TABLE",
    );
    assert_rows(&client, "SELECT count(*) FROM lake.etl.events", &[&["0"]]).await;
    assert_tag(
        &server,
        "INSERT INTO lake.etl.events VALUES (1, 'click', DATE '2024-01-01'), \
         (2, 'view', DATE '2024-01-02'), (3, 'buy', DATE '2024-01-02')",
        "INSERT 0 3",
    );
    assert_rows(
        &client,
        "SELECT day, count(*) FROM lake.etl.events WHERE day > DATE '2024-01-01' GROUP BY day",
        &[&["2024-01-02", "2"]],
    )
    .await;

    // Partition values with characters a path may hold are written and read back as they are; a
    // value that cannot be a directory name is refused.
    assert_tag(
        &server,
        "CREATE TABLE lake.etl.odd WITH (partitioned_by = ARRAY['k', 'ts']) AS SELECT * FROM \
         (VALUES (1, 'a=b', TIMESTAMP '2024-01-01 10:00:00'), (2, 'c:d%e f', TIMESTAMP '2024-01-01 11:30:00')) \
         AS t(id, k, ts)",
        "SELECT 2",
    );
    assert_rows(
        &client,
        "SELECT id, k, ts FROM lake.etl.odd WHERE ts > TIMESTAMP '2024-01-01 11:00:00'",
        &[&["2", "c:d%e f", "2024-01-01 11:30:00"]],
    )
    .await;
    assert_eq!(
        error_code(
            &client,
            "CREATE TABLE lake.etl.slash WITH (partitioned_by = ARRAY['k']) AS SELECT 1 AS id, 'a/b' AS k"
        )
        .await,
        "22023"
    );

    // DROP TABLE removes data and metadata.
    assert_tag(&server, "DROP TABLE lake.etl.orders", "DROP TABLE");
    assert_eq!(
        error_code(&client, "SELECT count(*) FROM lake.etl.orders").await,
        "42P01"
    );
    assert_eq!(lake.files("etl/orders/"), Vec::<String>::new());
    assert_eq!(
        error_code(&client, "DROP SCHEMA lake.etl").await,
        "2BP01",
        "a schema with tables is not dropped without CASCADE"
    );
    assert_tag(&server, "DROP SCHEMA lake.etl CASCADE", "DROP SCHEMA");
    assert_eq!(lake.files("etl/"), Vec::<String>::new());
    assert_eq!(
        error_code(&client, "CREATE TABLE lake.etl.x AS SELECT 1 AS a").await,
        "3F000"
    );
}

async fn failed_ctas_leaves_nothing(lake: Lake) {
    let (server, _config) = start(&lake);
    let client = server.connect("lake").await;
    client
        .batch_execute("CREATE SCHEMA lake.etl")
        .await
        .expect("CREATE SCHEMA");
    // Fails mid-query, in one of the writer tasks, after others may have written files.
    assert_eq!(
        error_code(
            &client,
            "CREATE TABLE lake.etl.bad AS SELECT l_orderkey, 1 / (l_linenumber - 7) AS x \
             FROM tpch.tiny.lineitem"
        )
        .await,
        "22012"
    );
    assert_eq!(
        error_code(&client, "SELECT * FROM lake.etl.bad").await,
        "42P01"
    );
    assert_eq!(lake.files("etl/bad/"), Vec::<String>::new());
    // The name is free: the same statement without the failure works.
    client
        .batch_execute(
            "CREATE TABLE lake.etl.bad AS SELECT l_orderkey FROM tpch.tiny.lineitem \
             WHERE l_orderkey < 100",
        )
        .await
        .expect("CTAS after a failed one");
    assert_rows(&client, "SELECT count(*) FROM lake.etl.bad", &[&["105"]]).await;
    // A failing INSERT leaves the table as it was.
    assert_eq!(
        error_code(
            &client,
            "INSERT INTO lake.etl.bad SELECT 1 / (l_linenumber - 7) FROM tpch.tiny.lineitem"
        )
        .await,
        "22012"
    );
    assert_rows(&client, "SELECT count(*) FROM lake.etl.bad", &[&["105"]]).await;
    let files = lake.files("etl/bad/");
    let data: Vec<_> = files.iter().filter(|f| f.ends_with(".parquet")).collect();
    let committed = files.iter().filter(|f| f.contains("/commits/")).count();
    assert_eq!(committed, 1, "{files:?}");
    assert!(!data.is_empty(), "{files:?}");
    // Every data file is one the commit lists: the failed INSERT left none behind.
    let commit = files
        .iter()
        .find(|f| f.contains("/commits/"))
        .expect("commit");
    let commit = match &lake {
        Lake::File(dir) => std::fs::read_to_string(dir.path().join(commit)).expect("commit file"),
        Lake::S3 { prefix } => String::from_utf8(
            Moto::shared()
                .get_object(BUCKET, &format!("{prefix}/{commit}"))
                .expect("commit object"),
        )
        .expect("utf-8"),
    };
    for file in data {
        let relative = file.strip_prefix("etl/bad/").expect("in the table");
        assert!(commit.contains(relative), "{file} not in {commit}");
    }
}

macro_rules! write_tests {
    ($($name:ident: $check:ident($lake:expr);)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $check($lake).await;
            }
        )*
    };
}

write_tests! {
    file_round_trip: round_trip(Lake::file());
    s3_round_trip: round_trip(Lake::s3("round-trip"));
    file_failed_ctas_leaves_nothing: failed_ctas_leaves_nothing(Lake::file());
    s3_failed_ctas_leaves_nothing: failed_ctas_leaves_nothing(Lake::s3("failed-ctas"));
}

/// A canceled `CREATE TABLE AS` leaves no table, and (once its cleanup ran) no files.
/// `EXPLAIN CREATE TABLE ... AS` shows the write (writers, commit) and creates nothing;
/// `EXPLAIN ANALYZE` runs it, as PostgreSQL's does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_ctas_shows_the_write_and_writes_nothing() {
    let lake = Lake::file();
    let (server, _config) = start(&lake);
    let client = server.connect("lake").await;
    client
        .batch_execute("CREATE SCHEMA lake.etl")
        .await
        .expect("CREATE SCHEMA");
    let ctas = "CREATE TABLE lake.etl.n WITH (partitioned_by = ARRAY['n_regionkey']) AS \
                SELECT n_nationkey, n_name, n_regionkey FROM tpch.tiny.nation";
    let plan = strings(&client, &format!("EXPLAIN {ctas}"))
        .await
        .concat()
        .join("\n");
    assert!(
        plan.contains("LakeCommit: lake.etl.n (create)")
            && plan.contains("LakeWrite: lake.etl.n, format=parquet, partitioned_by=[n_regionkey]"),
        "{plan}"
    );
    assert!(lake.files("etl").is_empty(), "{:?}", lake.files("etl"));
    assert_eq!(
        error_code(&client, "SELECT * FROM lake.etl.n").await,
        "42P01"
    );
    strings(&client, &format!("EXPLAIN ANALYZE {ctas}")).await;
    assert_rows(&client, "SELECT count(*) FROM lake.etl.n", &[&["25"]]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceled_ctas_leaves_nothing() {
    let lake = Lake::file();
    let (server, _config) = start(&lake);
    let client = Arc::new(server.connect("lake").await);
    client
        .batch_execute("CREATE SCHEMA lake.etl")
        .await
        .expect("CREATE SCHEMA");
    let cancel = client.cancel_token();
    let running = {
        let client = Arc::clone(&client);
        tokio::spawn(async move {
            client
                .batch_execute("CREATE TABLE lake.etl.big AS SELECT * FROM tpch.sf1.lineitem")
                .await
        })
    };
    // Wait until a writer has begun a data file (not only the `_tributary/creating` marker, which
    // comes first; a file being written is staged as `NAME.parquet#N`), then cancel.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lake
        .files("etl/big/")
        .iter()
        .any(|f| f.contains(".parquet"))
    {
        assert!(Instant::now() < deadline, "the CTAS wrote no data in 60 s");
        assert!(
            !running.is_finished(),
            "the CTAS ended before it was canceled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Files are there, but no table yet (asked on another connection: this one is busy).
    let reader = server.connect("lake").await;
    assert_eq!(
        error_code(&reader, "SELECT count(*) FROM lake.etl.big").await,
        "42P01"
    );
    cancel
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("cancel request");
    let result = running.await.expect("join");
    let code = result
        .expect_err("the CTAS was canceled")
        .as_db_error()
        .map(|d| d.code().code().to_string());
    assert_eq!(code.as_deref(), Some("57014"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lake.files("etl/big/").is_empty() {
        assert!(
            Instant::now() < deadline,
            "files left 30 s after the cancel: {:?}",
            lake.files("etl/big/")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        error_code(&client, "SELECT count(*) FROM lake.etl.big").await,
        "42P01"
    );
}

fn write_parquet(path: &Path, column: &str, values: Vec<i64>) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create parquet dir");
    let batch = RecordBatch::try_from_iter(vec![(
        column,
        Arc::new(Int64Array::from(values)) as ArrayRef,
    )])
    .expect("record batch");
    let file = std::fs::File::create(path).expect("create parquet file");
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).expect("parquet writer");
    writer.write(&batch).expect("write parquet");
    writer.close().expect("close parquet");
}

/// Plain Hive directories (not written by Tributary): partition types are inferred from the values
/// (integer, date), or text with `infer_partition_types = false`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_hive_partition_types_are_inferred() {
    let lake = Lake::file();
    let Lake::File(dir) = &lake else {
        unreachable!()
    };
    for (n, day, values) in [
        (3, "2024-01-01", vec![1, 2]),
        (10, "2024-01-02", vec![3]),
        (25, "2024-01-02", vec![4, 5, 6]),
    ] {
        write_parquet(
            &dir.path()
                .join(format!("raw/sales/n={n}/day={day}/part-0.parquet")),
            "id",
            values,
        );
    }
    let config = ConfigDir::new()
        .catalog("lake", &lake.catalog(""))
        .catalog("text", &lake.catalog("infer_partition_types = false\n"));
    let server = Tributary::start(Some(config.path()));
    let client = server.connect("lake").await;
    assert_rows(
        &client,
        "SELECT sum(n), count(*) FROM lake.raw.sales WHERE n >= 10",
        &[&["85", "4"]],
    )
    .await;
    assert_rows(
        &client,
        "SELECT count(*) FROM lake.raw.sales WHERE day = DATE '2024-01-02'",
        &[&["4"]],
    )
    .await;
    assert_rows(
        &client,
        "SELECT arrow_typeof(n), arrow_typeof(day) FROM lake.raw.sales LIMIT 1",
        &[&["Int64", "Date32"]],
    )
    .await;
    // As text, '10' < '3': what inference is for.
    assert_rows(
        &client,
        "SELECT count(*) FROM text.raw.sales WHERE n >= '3'",
        &[&["2"]],
    )
    .await;
    assert_rows(
        &client,
        "SELECT arrow_typeof(n) FROM text.raw.sales LIMIT 1",
        &[&["Utf8"]],
    )
    .await;
}

/// A coordinator with two workers: the CTAS writers run as tasks on the workers, and the copy of
/// `tpch.tiny.lineitem` holds exactly its rows (unpartitioned and partitioned).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ctas_copies_lineitem_exactly() {
    let lake = Lake::file();
    let config = ConfigDir::new()
        .config("[engine]\ntask_threads = 1\n")
        .catalog("lake", &lake.catalog(""))
        .catalog("tpch", "connector = \"tpch\"\n");
    let cluster = Cluster::start_with(config, &["w1", "w2"]).await;
    let server = &cluster.coordinator;
    assert_tag(server, "CREATE SCHEMA lake.etl", "CREATE SCHEMA");
    assert_tag(
        server,
        "CREATE TABLE lake.etl.lineitem AS SELECT * FROM tpch.tiny.lineitem",
        "SELECT 60175",
    );
    let client = server.connect("lake").await;
    let plan = strings(
        &client,
        "EXPLAIN INSERT INTO lake.etl.lineitem SELECT * FROM tpch.tiny.lineitem",
    )
    .await;
    let plan: Vec<String> = plan.into_iter().flatten().collect();
    let writer_stage = plan
        .iter()
        .position(|l| l.contains("LakeWrite"))
        .and_then(|i| plan[..i].iter().rev().find(|l| l.contains("Stage ")))
        .unwrap_or_else(|| panic!("no writer stage in {plan:#?}"));
    assert!(writer_stage.contains("workers"), "{plan:#?}");
    assert_tag(
        server,
        &format!(
            "CREATE TABLE lake.etl.lineitem_by_flag WITH (partitioned_by = ARRAY['l_returnflag']) \
             AS SELECT {LINEITEM_FLAG_LAST} FROM tpch.tiny.lineitem"
        ),
        "SELECT 60175",
    );
    let source = strings(
        &client,
        &format!("SELECT {LINEITEM_AGGREGATES} FROM tpch.tiny.lineitem"),
    )
    .await;
    for table in ["lineitem", "lineitem_by_flag"] {
        let copy = strings(
            &client,
            &format!("SELECT {LINEITEM_AGGREGATES} FROM lake.etl.{table}"),
        )
        .await;
        assert_eq!(copy, source, "lake.etl.{table}");
    }
    assert_eq!(source[0][0], "60175");
    // Two writer tasks, one per split: more than one data file.
    let files = lake.files("etl/lineitem/");
    assert!(
        files.iter().filter(|f| f.ends_with(".parquet")).count() >= 2,
        "{files:?}"
    );
}

/// Writes under `retry_policy = TASK` (writer outputs through the spool, the commit reads the
/// committed attempt of each writer) and `QUERY` (the result buffered until the attempt succeeds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_under_retry_policies() {
    let lake = Lake::file();
    let spool = TempDir::new("lake-write-spool");
    let config = ConfigDir::new()
        .config(&format!(
            "[exchange]\nbase_directories = [{}]\n",
            toml_string(&format!("file://{}", spool.path().display()))
        ))
        .catalog("lake", &lake.catalog(""))
        .catalog("tpch", "connector = \"tpch\"\n");
    let server = Tributary::start(Some(config.path()));
    let client = server.connect("lake").await;
    client
        .batch_execute("CREATE SCHEMA lake.etl")
        .await
        .expect("CREATE SCHEMA");
    for policy in ["TASK", "QUERY"] {
        let table = format!("lake.etl.li_{}", policy.to_lowercase());
        client
            .batch_execute(&format!("SET retry_policy = '{policy}'"))
            .await
            .expect("SET retry_policy");
        let created = client
            .execute(
                &format!(
                    "CREATE TABLE {table} WITH (partitioned_by = ARRAY['l_returnflag']) \
                     AS SELECT {LINEITEM_FLAG_LAST} FROM tpch.tiny.lineitem"
                ),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("CTAS under {policy}: {e:?}"));
        assert_eq!(created, 60175, "{policy}");
        let inserted = client
            .execute(
                &format!(
                    "INSERT INTO {table} SELECT {LINEITEM_FLAG_LAST} FROM tpch.tiny.lineitem \
                     WHERE l_orderkey < 1000"
                ),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("INSERT under {policy}: {e:?}"));
        let expected = strings(
            &client,
            "SELECT count(*) FROM tpch.tiny.lineitem WHERE l_orderkey < 1000",
        )
        .await[0][0]
            .parse::<u64>()
            .expect("a count");
        assert_eq!(inserted, expected, "{policy}");
        let total = (60175 + expected).to_string();
        assert_rows(
            &client,
            &format!("SELECT count(*) FROM {table}"),
            &[&[total.as_str()]],
        )
        .await;
        assert_eq!(
            error_code(
                &client,
                &format!("INSERT INTO {table} SELECT {LINEITEM_FLAG_LAST} FROM tpch.tiny.lineitem WHERE 1 / (l_linenumber - 7) > 0")
            )
            .await,
            "22012",
            "{policy}"
        );
        assert_rows(
            &client,
            &format!("SELECT count(*) FROM {table}"),
            &[&[total.as_str()]],
        )
        .await;
    }
}

/// A reader sees a table's committed rows only: not the files of a running `INSERT`, and not those
/// of one that was canceled (which are removed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_only_committed_writes() {
    let lake = Lake::file();
    let (server, _config) = start(&lake);
    let client = Arc::new(server.connect("lake").await);
    client
        .batch_execute(
            "CREATE SCHEMA lake.etl; \
             CREATE TABLE lake.etl.li AS SELECT * FROM tpch.tiny.lineitem",
        )
        .await
        .expect("CREATE TABLE AS");
    let before = lake.files("etl/li/");
    let reader = server.connect("lake").await;
    let cancel = client.cancel_token();
    let running = {
        let client = Arc::clone(&client);
        tokio::spawn(async move {
            client
                .batch_execute("INSERT INTO lake.etl.li SELECT * FROM tpch.sf1.lineitem")
                .await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while lake.files("etl/li/").len() == before.len() {
        assert!(
            Instant::now() < deadline,
            "the INSERT wrote nothing in 60 s"
        );
        assert!(!running.is_finished(), "the INSERT ended too early");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_rows(&reader, "SELECT count(*) FROM lake.etl.li", &[&["60175"]]).await;
    cancel
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("cancel request");
    assert!(
        running.await.expect("join").is_err(),
        "the INSERT was canceled"
    );
    assert_rows(&reader, "SELECT count(*) FROM lake.etl.li", &[&["60175"]]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while lake.files("etl/li/") != before {
        assert!(
            Instant::now() < deadline,
            "files of the canceled INSERT left after 30 s: {:?}",
            lake.files("etl/li/")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
