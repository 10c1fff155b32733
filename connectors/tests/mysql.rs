//! The mysql connector against a real MariaDB started by the test through the test kit
//! (mariadb-install-db into a temp dir, mariadbd on a free port with --skip-name-resolve).
//! `scripts/test.sh` installs MariaDB (scripts/deps/mariadb.sh).

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{
    Array, AsArray, BinaryArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int8Array, Int16Array, Int32Array, Int64Array, IntervalMonthDayNanoArray, RecordBatch,
    StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Int64Type, IntervalMonthDayNano, TimeUnit};
use datafusion::common::DataFusionError;
use datafusion::physical_plan::{collect, displayable};
use datafusion::prelude::SessionContext;
use mysql_async::prelude::Queryable;
use tributary_connectors::mysql::MySqlConnector;
use tributary_connectors::{Connector, ConnectorError};
use tributary_testkit::{Mariadb, MariadbOptions, TlsFiles, free_port};

mod common;
use common::{KEYED_COLUMNS, TestCerts, check_keyed};

const PASSWORD: &str = "My-Secret-7z!q";

/// A MariaDB server of this test's own (stopped when dropped), with a password user `tester` for
/// TCP connections.
struct TestMariadb {
    server: Mariadb,
}

impl TestMariadb {
    fn start() -> TestMariadb {
        Self::start_with(None)
    }

    /// With `tls`, the server takes only TLS connections over TCP (`require_secure_transport`).
    fn start_with(tls: Option<&TestCerts>) -> TestMariadb {
        let server = Mariadb::dedicated_with(MariadbOptions {
            tls: tls.map(|certs| TlsFiles {
                cert: certs.server_cert.clone(),
                key: certs.server_key.clone(),
            }),
        });
        // A password user for TCP (with --skip-name-resolve: both 127.0.0.1 and localhost).
        server.execute(&format!(
            "CREATE USER 'tester'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; \
             CREATE USER 'tester'@'localhost' IDENTIFIED BY '{PASSWORD}'; \
             GRANT ALL ON *.* TO 'tester'@'127.0.0.1'; GRANT ALL ON *.* TO 'tester'@'localhost';"
        ));
        TestMariadb { server }
    }

    async fn conn(&self) -> mysql_async::Conn {
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.server.port())
            .user(Some("tester"))
            .pass(Some(PASSWORD))
            .prefer_socket(false)
            .init(vec!["SET time_zone = '+00:00'"]);
        mysql_async::Conn::new(opts)
            .await
            .expect("connect to test MariaDB")
    }

    fn catalog_config(&self, password: &str, extra: &str) -> toml::Table {
        toml::from_str(&format!(
            "connector = \"mysql\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"tester\"\n\
             password = \"{password}\"\nsplits = 4\nsplit_min_rows = 1000\n{extra}",
            self.server.port()
        ))
        .expect("catalog toml")
    }
}

const SETUP: &[&str] = &[
    "CREATE DATABASE shop",
    "CREATE TABLE shop.types (
        id int PRIMARY KEY,
        ti tinyint, tiu tinyint unsigned, si smallint, siu smallint unsigned,
        mi mediumint, miu mediumint unsigned, i int, iu int unsigned, bi bigint, biu bigint unsigned,
        d10 decimal(10,2), d38 decimal(38,10), d65 decimal(65,30), f float, dbl double,
        c char(5), vc varchar(20), tx text, bn binary(3), vb varbinary(10), bl blob,
        dt date, dtm datetime(6), ts timestamp(6) NULL, tm time(6), yr year,
        js json, en enum('sad','happy'), st set('a','b','c'), b1 bit(1), b10 bit(10), b64 bit(64),
        u uuid, ip inet6
    )",
    "INSERT INTO shop.types VALUES
     (1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
      -12345678.99, 1234567890123456789012345678.0123456789,
      -12345678901234567890123456789012345.123456789012345678901234567890,
      1.5, 1.7976931348623157e308, 'ab', 'héllo ''q''', 'some text', X'00ff00', X'', X'deadbeef',
      '1000-01-01', '1000-01-01 00:00:00', '1970-01-01 00:00:01', '00:00:00', 1901,
      '{\"a\": [1, 2]}', 'sad', 'a,c', b'0', b'0', b'0',
      '123e4567-e89b-12d3-a456-426655440000', '::1'),
     (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
      NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
      NULL, NULL, NULL),
     (3, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295,
      9223372036854775807, 18446744073709551615,
      99999999.99, -9999999999999999999999999999.9999999999, 0.5,
      -0.25, -1e-300, 'xyz', '', '', X'000000', X'ff', X'',
      '9999-12-31', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999',
      '23:59:59.999999', 2155, '[]', 'happy', '', b'1', b'1111111111',
      b'1111111111111111111111111111111111111111111111111111111111111111',
      '00000000-0000-0000-0000-000000000000', '2001:db8::ff00:42:8329')",
    "CREATE TABLE shop.big (id bigint PRIMARY KEY, v int NOT NULL, s varchar(32), d date,
                            amt decimal(12,2))",
    "INSERT INTO shop.big SELECT seq, seq % 1000, md5(seq), DATE '2020-01-01' + INTERVAL (seq % 365) DAY,
                                 seq / 100 FROM shop.seq_1_to_200000",
    "ANALYZE TABLE shop.big",
    "CREATE VIEW shop.small_v AS SELECT id, v FROM shop.big WHERE v < 10",
    "CREATE TABLE shop.times (id int PRIMARY KEY, t time)",
    "INSERT INTO shop.times VALUES (1, '-838:59:59'), (2, '838:59:59'), (3, '12:00:00')",
    "CREATE TABLE shop.gone (x int)",
    "CREATE DATABASE `we``ird`",
    "CREATE TABLE `we``ird`.`T t` (`Mixed Case` int)",
    "INSERT INTO `we``ird`.`T t` VALUES (42)",
];

struct Ran {
    plan: String,
    batches: Vec<RecordBatch>,
}

async fn run_df(ctx: &SessionContext, sql: &str) -> Ran {
    let df = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("planning {sql}: {e}"));
    let plan = df
        .create_physical_plan()
        .await
        .unwrap_or_else(|e| panic!("physical plan of {sql}: {e}"));
    let text = displayable(plan.as_ref()).indent(true).to_string();
    let batches = collect(plan, ctx.task_ctx())
        .await
        .unwrap_or_else(|e| panic!("running {sql}: {e}\nplan:\n{text}"));
    Ran {
        plan: text,
        batches,
    }
}

/// The error of running `sql` (planning or execution).
async fn run_err(ctx: &SessionContext, sql: &str) -> DataFusionError {
    match ctx.sql(sql).await {
        Ok(df) => df.collect().await.expect_err(sql),
        Err(e) => e,
    }
}

/// The SQLSTATE of a connector error inside `e`, if any.
fn sqlstate(e: &DataFusionError) -> Option<String> {
    match e.find_root() {
        DataFusionError::External(inner) => match inner.downcast_ref::<ConnectorError>() {
            Some(ConnectorError::Remote { sqlstate, .. }) => Some(sqlstate.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// The first column of all batches as i64 (cast), sorted.
fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    let mut out = Vec::new();
    for b in batches {
        let col = cast(b.column(0), &DataType::Int64).expect("cast to Int64");
        let col = col.as_primitive::<Int64Type>();
        out.extend(col.iter().map(|v| v.expect("non-null id")));
    }
    out.sort_unstable();
    out
}

/// The `MySqlScan` lines of a plan.
fn scan_lines(plan: &str) -> Vec<&str> {
    plan.lines().filter(|l| l.contains("MySqlScan")).collect()
}

async fn my_ids(conn: &mut mysql_async::Conn, sql: &str) -> Vec<i64> {
    let mut out: Vec<i64> = conn
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("MariaDB {sql}: {e}"));
    out.sort_unstable();
    out
}

/// `SELECT id FROM shop.table WHERE pred` through DataFusion equals MariaDB's rows for
/// `my_pred`, and the scan's remote SQL contains `pushed` (or, with `None`, has no WHERE on the
/// predicate column `column`).
async fn check_filter(
    ctx: &SessionContext,
    conn: &mut mysql_async::Conn,
    table: &str,
    pred: &str,
    my_pred: &str,
    pushed: Option<&str>,
    column: &str,
) {
    let ran = run_df(ctx, &format!("SELECT id FROM my.shop.{table} WHERE {pred}")).await;
    let expected = my_ids(
        conn,
        &format!("SELECT CAST(id AS SIGNED) FROM shop.{table} WHERE {my_pred}"),
    )
    .await;
    assert_eq!(ids(&ran.batches), expected, "rows of {pred}");
    let scans = scan_lines(&ran.plan);
    assert_eq!(scans.len(), 1, "one scan in:\n{}", ran.plan);
    match pushed {
        Some(fragment) => assert!(
            scans[0].contains(fragment),
            "{pred}: expected {fragment} in the remote SQL:\n{}",
            ran.plan
        ),
        None => {
            let where_part = scans[0].split("WHERE").nth(1).unwrap_or("");
            assert!(
                !where_part.contains(&format!("`{column}`")),
                "{pred} must not be pushed:\n{}",
                ran.plan
            );
        }
    }
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| {
            panic!(
                "column {name} type {}",
                batch
                    .schema()
                    .field_with_name(name)
                    .map(|f| f.data_type().to_string())
                    .unwrap_or_default()
            )
        })
}

async fn check_types(ctx: &SessionContext) {
    let ran = run_df(ctx, "SELECT * FROM my.shop.types ORDER BY id").await;
    let batch = concat_batches(&ran.batches[0].schema(), &ran.batches).expect("concat");
    assert_eq!(batch.num_rows(), 3);
    // Unmappable types are read through a cast to text at the source.
    assert!(
        ran.plan.contains("CAST(`u` AS CHAR)") && ran.plan.contains("CAST(`ip` AS CHAR)"),
        "{}",
        ran.plan
    );
    let schema = batch.schema();
    let ty = |name: &str| {
        schema
            .field_with_name(name)
            .expect(name)
            .data_type()
            .clone()
    };
    let expected_types = [
        ("ti", DataType::Int8),
        ("tiu", DataType::Int16),
        ("si", DataType::Int16),
        ("siu", DataType::Int32),
        ("mi", DataType::Int32),
        ("miu", DataType::Int32),
        ("i", DataType::Int32),
        ("iu", DataType::Int64),
        ("bi", DataType::Int64),
        ("biu", DataType::Decimal128(20, 0)),
        ("d10", DataType::Decimal128(10, 2)),
        ("d38", DataType::Decimal128(38, 10)),
        ("d65", DataType::Utf8),
        ("f", DataType::Float32),
        ("dbl", DataType::Float64),
        ("c", DataType::Utf8),
        ("tx", DataType::Utf8),
        ("bn", DataType::Binary),
        ("bl", DataType::Binary),
        ("dt", DataType::Date32),
        ("dtm", DataType::Timestamp(TimeUnit::Microsecond, None)),
        (
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ),
        ("tm", DataType::Time64(TimeUnit::Microsecond)),
        ("yr", DataType::Int16),
        ("js", DataType::Utf8),
        ("en", DataType::Utf8),
        ("st", DataType::Utf8),
        ("b1", DataType::Int64),
        ("b10", DataType::Int64),
        ("b64", DataType::Binary),
        ("u", DataType::Utf8),
        ("ip", DataType::Utf8),
    ];
    for (name, expected) in expected_types {
        assert_eq!(ty(name), expected, "type of {name}");
    }
    // Row 2 is all NULL.
    for (i, field) in schema.fields().iter().enumerate() {
        if field.name() != "id" {
            assert!(
                batch.column(i).is_null(1),
                "{} of row 2 is NULL",
                field.name()
            );
        }
    }
    let ends = |name: &str| -> (i64, i64) {
        let col = cast(batch.column_by_name(name).expect(name), &DataType::Int64).expect("cast");
        let col = col.as_primitive::<Int64Type>();
        (col.value(0), col.value(2))
    };
    assert_eq!(column::<Int8Array>(&batch, "ti").value(0), i8::MIN);
    assert_eq!(ends("ti"), (-128, 127));
    assert_eq!(ends("tiu"), (0, 255));
    assert_eq!(column::<Int16Array>(&batch, "si").value(2), i16::MAX);
    assert_eq!(ends("siu"), (0, 65535));
    assert_eq!(ends("mi"), (-8_388_608, 8_388_607));
    assert_eq!(ends("miu"), (0, 16_777_215));
    assert_eq!(column::<Int32Array>(&batch, "i").value(0), i32::MIN);
    assert_eq!(ends("iu"), (0, 4_294_967_295));
    let bi = column::<Int64Array>(&batch, "bi");
    assert_eq!((bi.value(0), bi.value(2)), (i64::MIN, i64::MAX));
    let biu = column::<Decimal128Array>(&batch, "biu");
    assert_eq!((biu.value(0), biu.value(2)), (0, i128::from(u64::MAX)));
    let d10 = column::<Decimal128Array>(&batch, "d10");
    assert_eq!(
        (d10.value(0), d10.value(2)),
        (-1_234_567_899, 9_999_999_999)
    );
    let d38 = column::<Decimal128Array>(&batch, "d38");
    assert_eq!(
        d38.value_as_string(0),
        "1234567890123456789012345678.0123456789"
    );
    assert_eq!(
        d38.value_as_string(2),
        "-9999999999999999999999999999.9999999999"
    );
    let text = |name: &str, row: usize| column::<StringArray>(&batch, name).value(row).to_string();
    assert_eq!(
        text("d65", 0),
        "-12345678901234567890123456789012345.123456789012345678901234567890"
    );
    assert_eq!(text("d65", 2), "0.500000000000000000000000000000");
    let f = column::<Float32Array>(&batch, "f");
    assert_eq!((f.value(0), f.value(2)), (1.5, -0.25));
    let dbl = column::<Float64Array>(&batch, "dbl");
    assert_eq!((dbl.value(0), dbl.value(2)), (f64::MAX, -1e-300));
    assert_eq!(text("c", 0), "ab");
    assert_eq!(text("vc", 0), "héllo 'q'");
    assert_eq!(text("vc", 2), "");
    assert_eq!(text("tx", 0), "some text");
    let bn = column::<BinaryArray>(&batch, "bn");
    assert_eq!(bn.value(0), &[0u8, 0xff, 0][..]);
    assert_eq!(bn.value(2), &[0u8, 0, 0][..]);
    let vb = column::<BinaryArray>(&batch, "vb");
    assert_eq!((vb.value(0), vb.value(2)), (&[][..], &[0xffu8][..]));
    let bl = column::<BinaryArray>(&batch, "bl");
    assert_eq!(bl.value(0), &[0xde, 0xad, 0xbe, 0xef][..]);
    let dt = column::<Date32Array>(&batch, "dt");
    assert_eq!((dt.value(0), dt.value(2)), (-354_285, 2_932_896));
    let dtm = column::<TimestampMicrosecondArray>(&batch, "dtm");
    assert_eq!(dtm.value(0), -30_610_224_000_000_000);
    assert_eq!(dtm.value(2), 253_402_300_799_999_999);
    let ts = column::<TimestampMicrosecondArray>(&batch, "ts");
    assert_eq!(
        (ts.value(0), ts.value(2)),
        (1_000_000, 2_147_483_647_999_999)
    );
    let tm = column::<Time64MicrosecondArray>(&batch, "tm");
    assert_eq!((tm.value(0), tm.value(2)), (0, 86_399_999_999));
    assert_eq!(ends("yr"), (1901, 2155));
    assert_eq!(text("js", 0), "{\"a\": [1, 2]}");
    assert_eq!(text("en", 0), "sad");
    assert_eq!(text("en", 2), "happy");
    assert_eq!(text("st", 0), "a,c");
    assert_eq!(text("st", 2), "");
    assert_eq!(ends("b1"), (0, 1));
    assert_eq!(ends("b10"), (0, 1023));
    let b64 = column::<BinaryArray>(&batch, "b64");
    assert_eq!(b64.value(0), &[0u8; 8][..]);
    assert_eq!(b64.value(2), &[0xffu8; 8][..]);
    assert_eq!(text("u", 0), "123e4567-e89b-12d3-a456-426655440000");
    assert_eq!(text("ip", 0), "::1");
    assert_eq!(text("ip", 2), "2001:db8::ff00:42:8329");
}

/// The MariaDB the tests that only read share: [`SETUP`] loaded once per test process (stopped at
/// process exit). Tests that change the source's tables start a server of their own.
async fn source() -> &'static TestMariadb {
    static SOURCE: tokio::sync::OnceCell<TestMariadb> = tokio::sync::OnceCell::const_new();
    SOURCE
        .get_or_init(|| async {
            let db = TestMariadb::start();
            let mut conn = db.conn().await;
            for statement in SETUP {
                conn.query_drop(*statement)
                    .await
                    .unwrap_or_else(|e| panic!("setup {statement}: {e}"));
            }
            db
        })
        .await
}

/// A `mysql` catalog `my` over `db` (catalog file plus `extra`), and a session it is registered
/// in.
async fn my_catalog(db: &TestMariadb, extra: &str) -> (MySqlConnector, SessionContext) {
    let connector = MySqlConnector::from_config("my", &db.catalog_config(PASSWORD, extra))
        .await
        .expect("connector");
    let ctx = SessionContext::new();
    ctx.register_catalog("my", connector.catalog());
    (connector, ctx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metadata_lists_databases_tables_and_odd_identifiers() {
    let db = source().await;
    let (connector, ctx) = my_catalog(db, "").await;
    assert_eq!(connector.kind().name(), "mysql");
    // Metadata: databases are schemas (system ones excluded), tables and views, odd identifiers.
    connector.refresh_metadata().await.expect("metadata");
    let catalog = connector.catalog();
    let mut schemas = catalog.schema_names();
    schemas.sort();
    assert_eq!(schemas, vec!["shop".to_string(), "we`ird".to_string()]);
    let mut tables = catalog.schema("shop").expect("shop").table_names();
    tables.sort();
    assert_eq!(tables, vec!["big", "gone", "small_v", "times", "types"]);
    let odd = run_df(&ctx, "SELECT \"Mixed Case\" FROM my.\"we`ird\".\"T t\"").await;
    assert_eq!(ids(&odd.batches), vec![42]);
    assert!(
        odd.plan
            .contains("SELECT `Mixed Case` FROM `we``ird`.`T t`"),
        "{}",
        odd.plan
    );
    // `database` alone limits the catalog to that schema.
    let only = MySqlConnector::from_config(
        "only",
        &db.catalog_config(PASSWORD, "database = \"shop\"\n"),
    )
    .await
    .expect("connector");
    only.refresh_metadata().await.expect("metadata");
    assert_eq!(only.catalog().schema_names(), vec!["shop".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_type_reads_as_mariadb_sends_it() {
    let (_connector, ctx) = my_catalog(source().await, "").await;
    check_types(&ctx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn times_outside_a_day_fail_or_read_as_intervals() {
    let db = source().await;
    let (_connector, ctx) = my_catalog(db, "").await;
    // time outside 0..24h: an error naming the column and the fix; intervals with time_type.
    let err = run_err(&ctx, "SELECT t FROM my.shop.times")
        .await
        .to_string();
    assert!(err.contains("\"t\"") && err.contains("time_type"), "{err}");
    let iv = MySqlConnector::from_config(
        "iv",
        &db.catalog_config(PASSWORD, "time_type = \"interval\"\n"),
    )
    .await
    .expect("connector");
    ctx.register_catalog("iv", iv.catalog());
    let ran = run_df(&ctx, "SELECT id, t FROM iv.shop.times ORDER BY id").await;
    let b = concat_batches(&ran.batches[0].schema(), &ran.batches).expect("concat");
    let t = column::<IntervalMonthDayNanoArray>(&b, "t");
    let hours = |h: i64| 3_600_000_000_000 * h;
    let max = hours(838) + 59 * 60_000_000_000 + 59_000_000_000;
    assert_eq!(t.value(0), IntervalMonthDayNano::new(0, 0, -max));
    assert_eq!(t.value(1), IntervalMonthDayNano::new(0, 0, max));
    assert_eq!(t.value(2), IntervalMonthDayNano::new(0, 0, hours(12)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn big_table_splits_by_key_ranges_and_sums_match_mariadb() {
    let db = source().await;
    let mut conn = db.conn().await;
    let (_connector, ctx) = my_catalog(db, "").await;
    // Splits: a 200k-row table is cut into 4 key ranges; count and sums equal MariaDB's.
    let ran = run_df(
        &ctx,
        "SELECT count(*), sum(v), sum(id), sum(amt) FROM my.shop.big",
    )
    .await;
    let scans = scan_lines(&ran.plan);
    assert!(scans[0].contains("splits=4"), "{}", ran.plan);
    assert!(scans[0].contains("WHERE (`id` < 50000)"), "{}", ran.plan);
    let row: (i64, i64, i64, String) = conn
        .query_first(
            "SELECT count(*), CAST(sum(v) AS SIGNED), CAST(sum(id) AS SIGNED), \
             CAST(sum(amt) AS CHAR) FROM shop.big",
        )
        .await
        .expect("sums")
        .expect("one row");
    let b = &ran.batches[0];
    let as_i64 = |i: usize| {
        cast(b.column(i), &DataType::Int64)
            .expect("cast")
            .as_primitive::<Int64Type>()
            .value(0)
    };
    assert_eq!(as_i64(0), row.0);
    assert_eq!(as_i64(0), 200_000);
    assert_eq!(as_i64(1), row.1);
    assert_eq!(as_i64(2), row.2);
    let amt = b
        .column(3)
        .as_primitive::<datafusion::arrow::datatypes::Decimal128Type>();
    assert_eq!(amt.value_as_string(0), row.3);
    // count(*) reads no column.
    let ran = run_df(&ctx, "SELECT count(*) FROM my.shop.big WHERE v = 3").await;
    assert!(
        scan_lines(&ran.plan)[0].contains("sql=\"SELECT 1 FROM `shop`.`big` WHERE (`v` = 3)"),
        "{}",
        ran.plan
    );
    assert_eq!(ids(&ran.batches), vec![200]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn projection_selects_only_the_needed_columns() {
    let (_connector, ctx) = my_catalog(source().await, "").await;
    // Projection: only the needed columns are selected.
    let ran = run_df(&ctx, "SELECT s, id FROM my.shop.big WHERE id = 77").await;
    let scan = scan_lines(&ran.plan)[0];
    assert!(
        scan.contains("sql=\"SELECT `id`, `s` FROM `shop`.`big` WHERE (`id` = 77)")
            || scan.contains("sql=\"SELECT `s`, `id` FROM `shop`.`big` WHERE (`id` = 77)"),
        "{}",
        ran.plan
    );
    assert_eq!(ran.batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushed_filters_are_in_the_remote_sql_and_rows_match_mariadb() {
    let db = source().await;
    let mut conn = db.conn().await;
    let (_connector, ctx) = my_catalog(db, "").await;
    // Each pushed filter kind: in the remote SQL, rows equal MariaDB's.
    let pushed: [(&str, &str, &str, &str); 13] = [
        ("big", "v = 7", "(`v` = 7)", "v"),
        ("big", "id <> 5 AND id < 100", "(`id` <> 5)", "id"),
        ("big", "amt >= 1999.50", "(`amt` >= 1999.50)", "amt"),
        (
            "big",
            "d > DATE '2020-12-25'",
            "(`d` > DATE '2020-12-25')",
            "d",
        ),
        ("big", "id > 199990 OR v <= 1", " OR ", "id"),
        ("big", "NOT (v > 3 OR id > 100)", "(`v` <= 3)", "v"),
        (
            "big",
            "v IN (1, 2, 3, 4, 5) AND id < 5000",
            "(`v` IN (1, 2, 3, 4, 5))",
            "v",
        ),
        (
            "big",
            "v NOT IN (1, 2, 3, 4, 5) AND id < 50",
            "NOT IN (1, 2, 3, 4, 5)",
            "v",
        ),
        ("big", "v BETWEEN 10 AND 12", "(`v` >= 10)", "v"),
        ("types", "bi IS NULL", "(`bi` IS NULL)", "bi"),
        ("types", "bi IS NOT NULL", "(`bi` IS NOT NULL)", "bi"),
        ("types", "iu = 4294967295", "(`iu` = 4294967295)", "iu"),
        ("types", "d38 < 0", "(`d38` < ", "d38"),
    ];
    for (table, pred, fragment, col) in pushed {
        check_filter(&ctx, &mut conn, table, pred, pred, Some(fragment), col).await;
    }
    check_filter(
        &ctx,
        &mut conn,
        "types",
        "biu > 10",
        "biu > 10",
        Some("(`biu` > 10)"),
        "biu",
    )
    .await;
    check_filter(
        &ctx,
        &mut conn,
        "types",
        "dtm < TIMESTAMP '2000-01-01 00:00:00'",
        "dtm < TIMESTAMP '2000-01-01 00:00:00'",
        Some("(`dtm` < TIMESTAMP '2000-01-01 00:00:00.000000')"),
        "dtm",
    )
    .await;
    check_filter(
        &ctx,
        &mut conn,
        "types",
        "ts > '2000-01-01T00:00:00Z'",
        "ts > TIMESTAMP '2000-01-01 00:00:00'",
        Some("(`ts` > TIMESTAMP '2000-01-01 00:00:00.000000')"),
        "ts",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filters_kept_local_still_give_mariadb_rows() {
    let db = source().await;
    let mut conn = db.conn().await;
    let (_connector, ctx) = my_catalog(db, "").await;
    // Not pushed, still right: string equality and ranges, floats, year, enum, text-cast types.
    let kept: [(&str, &str, &str); 6] = [
        ("big", "s = 'c4ca4238a0b923820dcc509a6f75849b'", "s"),
        ("big", "s > 'fff' AND id < 3000", "s"),
        ("types", "f > 0", "f"),
        ("types", "yr = 2155", "yr"),
        ("types", "en = 'happy'", "en"),
        ("types", "u = '123e4567-e89b-12d3-a456-426655440000'", "u"),
    ];
    for (table, pred, col) in kept {
        check_filter(&ctx, &mut conn, table, pred, pred, None, col).await;
    }
    // The collation case: MariaDB's default says 'HÉLLO ''Q''' = 'héllo ''q''' (one row); kept
    // local, DataFusion's byte equality finds none, as MariaDB's binary comparison does.
    let ran = run_df(
        &ctx,
        "SELECT id FROM my.shop.types WHERE vc = 'HÉLLO ''Q'''",
    )
    .await;
    assert!(!scan_lines(&ran.plan)[0].contains("WHERE"), "{}", ran.plan);
    assert_eq!(ids(&ran.batches), Vec::<i64>::new());
    let default_collation = my_ids(
        &mut conn,
        "SELECT CAST(id AS SIGNED) FROM shop.types WHERE vc = 'HÉLLO ''Q'''",
    )
    .await;
    assert_eq!(
        default_collation,
        vec![1],
        "MariaDB compares case-insensitively"
    );
    let binary = my_ids(
        &mut conn,
        "SELECT CAST(id AS SIGNED) FROM shop.types WHERE BINARY vc = 'HÉLLO ''Q'''",
    )
    .await;
    assert_eq!(ids(&ran.batches), binary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limit_is_pushed_into_each_split_and_leaves_the_pool_usable() {
    let (_connector, ctx) = my_catalog(source().await, "").await;
    // LIMIT is pushed into each split's SQL; the unread rest of each split is cancelled.
    let ran = run_df(&ctx, "SELECT id FROM my.shop.big LIMIT 5").await;
    assert!(
        scan_lines(&ran.plan)[0].contains(" LIMIT 5\""),
        "{}",
        ran.plan
    );
    assert_eq!(ids(&ran.batches).len(), 5);

    // The connections killed by LIMIT left the server and the pool usable.
    let ran = run_df(&ctx, "SELECT count(*) FROM my.shop.big WHERE id <= 10").await;
    assert_eq!(ids(&ran.batches), vec![10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_view_is_one_split() {
    let db = source().await;
    let mut conn = db.conn().await;
    let (_connector, ctx) = my_catalog(db, "").await;
    // A view is one split.
    let ran = run_df(&ctx, "SELECT count(*) FROM my.shop.small_v").await;
    assert!(
        scan_lines(&ran.plan)[0].contains("splits=1"),
        "{}",
        ran.plan
    );
    let expected = my_ids(&mut conn, "SELECT count(*) FROM shop.small_v").await;
    assert_eq!(ids(&ran.batches), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rerunning_a_partition_reads_the_same_rows() {
    let (_connector, ctx) = my_catalog(source().await, "").await;
    // Re-running a partition reads the same rows (split SQL is fixed at planning).
    let df = ctx
        .sql("SELECT id FROM my.shop.big WHERE v = 9")
        .await
        .expect("plan");
    let plan = df.create_physical_plan().await.expect("physical");
    let first = ids(&collect(Arc::clone(&plan), ctx.task_ctx())
        .await
        .expect("run 1"));
    let second = ids(&collect(plan, ctx.task_ctx()).await.expect("run 2"));
    assert_eq!(first, second);
    assert_eq!(first.len(), 200);
}

/// On a server of its own: this test creates and drops tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn later_tables_are_found_dropped_ones_fail_and_zero_dates_name_the_column() {
    let db = TestMariadb::start();
    let mut conn = db.conn().await;
    for statement in ["CREATE DATABASE shop", "CREATE TABLE shop.gone (x int)"] {
        conn.query_drop(statement)
            .await
            .unwrap_or_else(|e| panic!("setup {statement}: {e}"));
    }
    let (connector, ctx) = my_catalog(&db, "").await;
    connector.refresh_metadata().await.expect("metadata");

    // A table created after the first metadata load is found on lookup.
    conn.query_drop("CREATE TABLE shop.later (id bigint)")
        .await
        .expect("create later");
    conn.query_drop("INSERT INTO shop.later VALUES (1), (2)")
        .await
        .expect("insert later");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let ran = run_df(&ctx, "SELECT id FROM my.shop.later").await;
    assert_eq!(ids(&ran.batches), vec![1, 2]);

    // A remote SQL error carries the source's message, a mapped SQLSTATE and the catalog name.
    conn.query_drop("DROP TABLE shop.gone").await.expect("drop");
    let err = run_err(&ctx, "SELECT x FROM my.shop.gone").await;
    assert_eq!(sqlstate(&err).as_deref(), Some("42P01"), "{err}");
    let err = err.to_string();
    assert!(err.contains("catalog \"my\""), "{err}");
    assert!(err.contains("doesn't exist"), "{err}");

    // Zero dates (non-strict sql_mode only) fail the query naming the column, never a crash.
    conn.query_drop("SET SESSION sql_mode = ''")
        .await
        .expect("sql_mode");
    conn.query_drop("CREATE TABLE shop.zero (id int PRIMARY KEY, d date)")
        .await
        .expect("create zero");
    conn.query_drop("INSERT INTO shop.zero VALUES (1, '0000-00-00')")
        .await
        .expect("insert zero date");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let err = run_err(&ctx, "SELECT d FROM my.shop.zero")
        .await
        .to_string();
    assert!(err.contains("\"d\"") && err.contains("zero date"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_password_is_28p01_without_the_password() {
    let db = source().await;
    // Wrong password: 28P01, a clear error, without the password.
    let bad = MySqlConnector::from_config("badpw", &db.catalog_config("wrong-pass-123", ""))
        .await
        .expect("loads without connecting");
    let ctx2 = SessionContext::new();
    ctx2.register_catalog("badpw", bad.catalog());
    let err = run_err(&ctx2, "SELECT * FROM badpw.shop.types").await;
    assert_eq!(sqlstate(&err).as_deref(), Some("28P01"), "{err}");
    let err = err.to_string();
    assert!(err.contains("catalog \"badpw\""), "{err}");
    assert!(err.contains("Access denied"), "{err}");
    assert!(!err.contains("wrong-pass-123"), "{err}");
}

#[tokio::test]
async fn source_down_at_startup_loads_and_fails_clearly() {
    let port = free_port();
    let config: toml::Table = toml::from_str(&format!(
        "connector = \"mysql\"\nhost = \"127.0.0.1\"\nport = {port}\ndatabase = \"db\"\n\
         user = \"u\"\npassword = \"{PASSWORD}\"\nconnect_timeout_secs = 2\n"
    ))
    .expect("toml");
    let connector = MySqlConnector::from_config("down", &config)
        .await
        .expect("a source that is down still loads");
    let ctx = SessionContext::new();
    ctx.register_catalog("down", connector.catalog());
    let err = run_err(&ctx, "SELECT * FROM down.db.t").await;
    assert_eq!(sqlstate(&err).as_deref(), Some("08001"), "{err}");
    let err = err.to_string();
    assert!(err.contains("catalog \"down\""), "{err}");
    assert!(
        err.contains(&format!("cannot connect to MySQL at 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");
    let debug = format!("{connector:?}");
    assert!(!debug.contains(PASSWORD), "{debug}");
}

#[tokio::test]
async fn bad_config_names_the_key() {
    let config: toml::Table =
        toml::from_str("connector = \"mysql\"\nhost = \"h\"\n").expect("toml");
    let err = MySqlConnector::from_config("x", &config)
        .await
        .expect_err("user is missing")
        .to_string();
    assert!(err.contains("user"), "{err}");
    for bad in ["pool_size = 0", "time_type = \"clock\"", "port = 70000"] {
        let config: toml::Table = toml::from_str(&format!(
            "connector = \"mysql\"\nhost = \"h\"\nuser = \"u\"\n{bad}\n"
        ))
        .expect("toml");
        let key = bad.split(' ').next().unwrap_or_default();
        let err = MySqlConnector::from_config("x", &config)
            .await
            .expect_err(bad)
            .to_string();
        assert!(err.contains(key), "{err}");
    }
}

/// The provider of `my.SCHEMA.NAME`.
async fn provider(
    connector: &MySqlConnector,
    schema: &str,
    name: &str,
) -> Arc<dyn datafusion::catalog::TableProvider> {
    connector
        .catalog()
        .schema(schema)
        .expect("schema")
        .table(name)
        .await
        .expect("lookup")
        .unwrap_or_else(|| panic!("table {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_keys_comments_and_front_end_types() {
    let my = TestMariadb::start();
    let mut conn = my.conn().await;
    for sql in [
        "CREATE DATABASE k".to_string(),
        format!("CREATE TABLE k.keyed ({KEYED_COLUMNS}, j json) COMMENT 'a keyed table'"),
        "ALTER TABLE k.keyed MODIFY b varchar(10) COMMENT 'the b column'".to_string(),
        "INSERT INTO k.keyed VALUES (1, 'x', 10, NULL, '[]'), (2, 'y', 10, NULL, NULL)".to_string(),
        "CREATE VIEW k.keyed_v AS SELECT * FROM k.keyed".to_string(),
        "CREATE TABLE k.unkeyed (a int NOT NULL, UNIQUE KEY (a))".to_string(),
    ] {
        conn.query_drop(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let config = my.catalog_config(PASSWORD, "database = \"k\"\n");
    let connector = MySqlConnector::from_config("my", &config)
        .await
        .expect("connector");
    let keyed = provider(&connector, "k", "keyed").await;
    check_keyed(
        &keyed,
        &provider(&connector, "k", "keyed_v").await,
        &provider(&connector, "k", "unkeyed").await,
    );
    // MariaDB's json is a checked longtext; clients see json.
    let schema = keyed.schema();
    let j = schema.field_with_name("j").expect("j");
    assert_eq!(
        j.metadata().get("tributary.pg_type").map(String::as_str),
        Some("json")
    );

    // DataFusion sees the key: columns determined by it may be selected when grouping by it.
    let ctx = SessionContext::new();
    ctx.register_catalog("my", connector.catalog());
    let ran = run_df(
        &ctx,
        "SELECT c, a, b FROM my.k.keyed GROUP BY c, a ORDER BY a",
    )
    .await;
    assert_eq!(ids(&ran.batches), vec![10, 10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_modes_against_a_tls_only_mariadb() {
    let dir = tempfile::Builder::new()
        .prefix("tributary-mycerts-")
        .tempdir()
        .expect("temp dir");
    let certs = TestCerts::make(dir.path());
    let my = TestMariadb::start_with(Some(&certs));

    /// Counts the rows of `mysql.db` through a catalog with `extra` settings, or the error.
    async fn attempt(my: &TestMariadb, name: &str, extra: &str) -> Result<usize, String> {
        let config = my.catalog_config(
            PASSWORD,
            &format!("database = \"mysql\"\nconnect_timeout_secs = 5\n{extra}"),
        );
        let connector = MySqlConnector::from_config(name, &config)
            .await
            .map_err(|e| e.to_string())?;
        let ctx = SessionContext::new();
        ctx.register_catalog(name, connector.catalog());
        let df = ctx
            .sql(&format!("SELECT 1 FROM {name}.mysql.db"))
            .await
            .map_err(|e| e.to_string())?;
        let batches = df.collect().await.map_err(|e| e.to_string())?;
        Ok(batches.iter().map(RecordBatch::num_rows).sum())
    }

    let ca = certs.ca.display().to_string();
    let other = certs.other_ca.display().to_string();
    // The server rejects plain connections: `disable` fails, every TLS mode gets through.
    let err = attempt(&my, "plain", "ssl_mode = \"disable\"\n")
        .await
        .expect_err("plain TCP is rejected");
    // (MariaDB answers an insecure connection with "access denied".)
    assert!(err.contains("catalog \"plain\": cannot connect"), "{err}");
    assert!(
        attempt(&my, "dflt", "").await.is_ok(),
        "prefer is the default"
    );
    assert!(
        attempt(&my, "req", "ssl_mode = \"require\"\n")
            .await
            .is_ok()
    );
    // verify-full checks the host name: the certificate is for db.example, not 127.0.0.1.
    let err = attempt(
        &my,
        "full",
        &format!("ssl_mode = \"verify-full\"\nssl_root_cert = \"{ca}\"\n"),
    )
    .await
    .expect_err("wrong host name");
    assert!(err.contains("catalog \"full\""), "{err}");
    assert!(err.contains("not valid for name"), "{err}");
    // A certificate from another authority is refused.
    let err = attempt(
        &my,
        "other",
        &format!("ssl_mode = \"verify-full\"\nssl_root_cert = \"{other}\"\n"),
    )
    .await
    .expect_err("unknown issuer");
    assert!(err.contains("UnknownIssuer"), "{err}");
    // verify-ca cannot be had from the MySQL client library: refused, naming the key.
    let err = attempt(
        &my,
        "ca",
        &format!("ssl_mode = \"verify-ca\"\nssl_root_cert = \"{ca}\"\n"),
    )
    .await
    .expect_err("verify-ca is refused");
    assert!(err.contains("ssl_mode"), "{err}");

    // Against a server without TLS, `prefer` connects plainly and `require` fails.
    let plain = TestMariadb::start();
    assert!(attempt(&plain, "dflt", "").await.is_ok());
    let err = attempt(&plain, "req", "ssl_mode = \"require\"\n")
        .await
        .expect_err("no TLS at the server");
    assert!(err.contains("catalog \"req\""), "{err}");
}
