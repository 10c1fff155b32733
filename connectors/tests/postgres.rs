//! The postgres connector against a real PostgreSQL 15 started by the test through the test kit
//! (initdb into a temp dir, free port, fsync off; as the `postgres` OS user when running as root).
//! The TLS test gives it a certificate made with the `openssl` command line tool.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array,
    Int16Array, Int32Array, Int64Array, IntervalMonthDayNanoArray, ListArray, RecordBatch,
    StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int32Type, IntervalMonthDayNano, TimeUnit};
use datafusion::physical_plan::{collect, displayable};
use datafusion::prelude::SessionContext;
use tributary_connectors::Connector;
use tributary_connectors::postgres::PostgresConnector;
use tributary_testkit::{Postgres, PostgresOptions, TlsFiles, free_port};

mod common;
use common::{KEYED_COLUMNS, TestCerts, check_keyed};

const PASSWORD: &str = "Pg-Secret-9x7!";

/// A PostgreSQL server of this test's own (stopped when dropped): superuser `postgres` with
/// [`PASSWORD`] over TCP; with `tls`, TCP connections must use TLS.
fn start_postgres(tls: Option<&TestCerts>) -> Postgres {
    Postgres::dedicated(PostgresOptions {
        password: Some(PASSWORD.to_string()),
        tls: tls.map(|certs| TlsFiles {
            cert: certs.server_cert.clone(),
            key: certs.server_key.clone(),
        }),
    })
}

/// The catalog file of a `postgres` catalog on `pg`'s database `postgres`, logging in with
/// `password`.
fn catalog_config(pg: &Postgres, password: &str) -> toml::Table {
    toml::from_str(&format!(
        "connector = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"postgres\"\n\
         user = \"postgres\"\npassword = \"{password}\"\nsplits = 4\n",
        pg.port()
    ))
    .expect("catalog toml")
}

const SETUP: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE types (
    id int4 PRIMARY KEY,
    b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8,
    n numeric(38, 10), n2 numeric(10, 2), nu numeric,
    t text, vc varchar(20), c char(5), nm name, by bytea,
    d date, tm time, ts timestamp, tstz timestamptz, iv interval,
    u uuid, j json, jb jsonb, m mood,
    ai int4[], at text[], an numeric(10, 2)[], au uuid[]
);
INSERT INTO types VALUES
 (1, true, -32768, -2147483648, -9223372036854775808, 1.5, 1.7976931348623157e308,
  1234567890123456789012345678.0123456789, -12345678.99, 3.14159265358979323846264338327950288419716939937510,
  'héllo ''quoted''', 'abc', 'ab', 'nm', '\x00ff00'::bytea,
  '0001-01-01', '23:59:59.999999', '0001-01-01 00:00:00', '2024-02-29 12:34:56.789+05',
  '1 year 2 months 3 days 04:05:06.789',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": 1}', '{"b": [1, 2]}', 'happy',
  '{1,NULL,3}', '{"x","y z"}', '{1.50,-2.25}', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, false, 32767, 2147483647, 9223372036854775807, -0.25, -1e-300,
  -9999999999999999999999999999.9999999999, 0, -0.5,
  '', '', '', '', ''::bytea,
  '9999-12-31', '00:00:00', '9999-12-31 23:59:59.999999', '1970-01-01 00:00:00+00', '-1 days',
  '00000000-0000-0000-0000-000000000000', '[]', 'null', 'sad',
  '{}', '{}', '{}', '{}');
CREATE TABLE big AS
  SELECT g::int8 AS id, (g % 1000)::int4 AS v, md5(g::text) AS s,
         (DATE '2020-01-01' + (g % 365)) AS d, (g::numeric / 100)::numeric(12, 2) AS amt
  FROM generate_series(1, 200000) g;
ANALYZE big;
CREATE VIEW small_v AS SELECT id, v FROM big WHERE v < 10;
CREATE SCHEMA "Odd ""Schema""";
CREATE TABLE "Odd ""Schema""".t ("Mixed Case" int4);
INSERT INTO "Odd ""Schema""".t VALUES (42);
CREATE TABLE gone (x int4);
"#;

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

/// The first column of all batches as i64 (cast), sorted.
fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    let mut out = Vec::new();
    for b in batches {
        let col = cast(b.column(0), &DataType::Int64).expect("cast to Int64");
        let col = col.as_any().downcast_ref::<Int64Array>().expect("Int64");
        out.extend(col.iter().map(|v| v.expect("non-null id")));
    }
    out.sort_unstable();
    out
}

/// The `PostgresScan` lines of a plan.
fn scan_lines(plan: &str) -> Vec<&str> {
    plan.lines()
        .filter(|l| l.contains("PostgresScan"))
        .collect()
}

async fn pg_ids(client: &tokio_postgres::Client, sql: &str) -> Vec<i64> {
    let mut out: Vec<i64> = client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL {sql}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect();
    out.sort_unstable();
    out
}

/// `SELECT id FROM table WHERE df_pred` through DataFusion equals PostgreSQL's `pg_pred`, and the
/// scan's remote SQL contains `pushed` (or, with `None`, no WHERE for the predicate column `column`).
async fn check_filter(
    ctx: &SessionContext,
    client: &tokio_postgres::Client,
    table: &str,
    df_pred: &str,
    pg_pred: &str,
    pushed: Option<&str>,
    column: &str,
) {
    let ran = run_df(
        ctx,
        &format!("SELECT id FROM pg.public.{table} WHERE {df_pred}"),
    )
    .await;
    let expected = pg_ids(
        client,
        &format!("SELECT id::int8 FROM public.{table} WHERE {pg_pred}"),
    )
    .await;
    assert_eq!(ids(&ran.batches), expected, "rows of {df_pred}");
    let scans = scan_lines(&ran.plan);
    assert_eq!(scans.len(), 1, "one scan in:\n{}", ran.plan);
    match pushed {
        Some(fragment) => assert!(
            scans[0].contains(fragment),
            "{df_pred}: expected {fragment} in the remote SQL:\n{}",
            ran.plan
        ),
        None => {
            let quoted = format!("\\\"{column}\\\" ");
            let where_part = scans[0].split("WHERE").nth(1).unwrap_or("");
            assert!(
                !where_part.contains(&quoted),
                "{df_pred} must not be pushed:\n{}",
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
    let ran = run_df(ctx, "SELECT * FROM pg.public.types ORDER BY id").await;
    let batch = datafusion::arrow::compute::concat_batches(&ran.batches[0].schema(), &ran.batches)
        .expect("concat");
    assert_eq!(batch.num_rows(), 3);
    let schema = batch.schema();
    let ty = |name: &str| {
        schema
            .field_with_name(name)
            .expect(name)
            .data_type()
            .clone()
    };
    assert_eq!(ty("n"), DataType::Decimal128(38, 10));
    assert_eq!(ty("nu"), DataType::Utf8);
    assert_eq!(ty("ts"), DataType::Timestamp(TimeUnit::Microsecond, None));
    assert_eq!(
        ty("tstz"),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(ty("u"), DataType::Utf8);
    assert!(matches!(ty("an"), DataType::List(f) if *f.data_type() == DataType::Decimal128(10, 2)));

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
    let b = column::<BooleanArray>(&batch, "b");
    assert!(b.value(0) && !b.value(2));
    let i2 = column::<Int16Array>(&batch, "i2");
    assert_eq!((i2.value(0), i2.value(2)), (i16::MIN, i16::MAX));
    let i4 = column::<Int32Array>(&batch, "i4");
    assert_eq!((i4.value(0), i4.value(2)), (i32::MIN, i32::MAX));
    let i8 = column::<Int64Array>(&batch, "i8");
    assert_eq!((i8.value(0), i8.value(2)), (i64::MIN, i64::MAX));
    let f8 = column::<Float64Array>(&batch, "f8");
    assert_eq!((f8.value(0), f8.value(2)), (f64::MAX, -1e-300));
    let n = column::<Decimal128Array>(&batch, "n");
    assert_eq!(
        n.value(0),
        12_345_678_901_234_567_890_123_456_780_123_456_789
    );
    assert_eq!(
        n.value(2),
        -99_999_999_999_999_999_999_999_999_999_999_999_999
    );
    assert_eq!(
        n.value_as_string(0),
        "1234567890123456789012345678.0123456789"
    );
    let n2 = column::<Decimal128Array>(&batch, "n2");
    assert_eq!((n2.value(0), n2.value(2)), (-1_234_567_899, 0));
    let text = |name: &str, row: usize| column::<StringArray>(&batch, name).value(row).to_string();
    assert_eq!(
        text("nu", 0),
        "3.14159265358979323846264338327950288419716939937510"
    );
    assert_eq!(text("nu", 2), "-0.5");
    assert_eq!(text("t", 0), "héllo 'quoted'");
    assert_eq!(text("t", 2), "");
    assert_eq!(text("vc", 0), "abc");
    // char(n) is read without its blank padding (as PostgreSQL compares it).
    assert_eq!(text("c", 0), "ab");
    assert_eq!(text("nm", 0), "nm");
    assert_eq!(text("u", 0), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    assert_eq!(text("j", 0), "{\"a\": 1}");
    assert_eq!(text("jb", 0), "{\"b\": [1, 2]}");
    assert_eq!(text("m", 0), "happy");
    let by = column::<BinaryArray>(&batch, "by");
    assert_eq!(by.value(0), &[0u8, 0xff, 0][..]);
    assert_eq!(by.value(2), &[] as &[u8]);
    let d = column::<Date32Array>(&batch, "d");
    assert_eq!((d.value(0), d.value(2)), (-719_162, 2_932_896));
    let tm = column::<Time64MicrosecondArray>(&batch, "tm");
    assert_eq!((tm.value(0), tm.value(2)), (86_399_999_999, 0));
    let ts = column::<TimestampMicrosecondArray>(&batch, "ts");
    assert_eq!(ts.value(0), -62_135_596_800_000_000);
    assert_eq!(ts.value(2), 253_402_300_799_999_999);
    let tstz = column::<TimestampMicrosecondArray>(&batch, "tstz");
    // 2024-02-29 12:34:56.789+05 = 07:34:56.789 UTC
    assert_eq!(tstz.value(0), 1_709_192_096_789_000);
    assert_eq!(tstz.value(2), 0);
    let iv = column::<IntervalMonthDayNanoArray>(&batch, "iv");
    assert_eq!(
        iv.value(0),
        IntervalMonthDayNano::new(14, 3, 14_706_789_000_000)
    );
    assert_eq!(iv.value(2), IntervalMonthDayNano::new(0, -1, 0));
    let ai = column::<ListArray>(&batch, "ai");
    let first = ai.value(0);
    let first = first.as_primitive::<Int32Type>();
    assert_eq!(
        first.iter().collect::<Vec<_>>(),
        vec![Some(1), None, Some(3)]
    );
    assert_eq!(ai.value(2).len(), 0);
    assert!(!ai.is_null(2));
    let at = column::<ListArray>(&batch, "at");
    let at0 = at.value(0);
    let at0 = at0.as_string::<i32>();
    assert_eq!(at0.iter().collect::<Vec<_>>(), vec![Some("x"), Some("y z")]);
    let an = column::<ListArray>(&batch, "an");
    let an0 = an.value(0);
    let an0 = an0.as_primitive::<datafusion::arrow::datatypes::Decimal128Type>();
    assert_eq!(an0.values().to_vec(), vec![150, -225]);
    let au = column::<ListArray>(&batch, "au");
    assert_eq!(
        au.value(0).as_string::<i32>().value(0),
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    );
}

/// The PostgreSQL the tests that only read share: [`SETUP`] loaded once per test process (stopped
/// at process exit). Tests that change the source's tables start a server of their own.
async fn source() -> &'static Postgres {
    static SOURCE: tokio::sync::OnceCell<Postgres> = tokio::sync::OnceCell::const_new();
    SOURCE
        .get_or_init(|| async {
            let pg = start_postgres(None);
            pg.connect("postgres")
                .await
                .batch_execute(SETUP)
                .await
                .expect("setup SQL");
            pg
        })
        .await
}

/// A `postgres` catalog `pg` over `pg`'s database `postgres`, and a session it is registered in.
async fn pg_catalog(pg: &Postgres) -> (PostgresConnector, SessionContext) {
    let connector = PostgresConnector::from_config("pg", &catalog_config(pg, PASSWORD))
        .await
        .expect("connector");
    let ctx = SessionContext::new();
    ctx.register_catalog("pg", connector.catalog());
    (connector, ctx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metadata_lists_schemas_tables_and_odd_identifiers() {
    let (connector, ctx) = pg_catalog(source().await).await;
    assert_eq!(connector.kind().name(), "postgres");

    // Metadata: schemas (system ones excluded), tables and views, odd identifiers.
    connector.refresh_metadata().await.expect("metadata");
    let catalog = connector.catalog();
    let mut schemas = catalog.schema_names();
    schemas.sort();
    assert_eq!(
        schemas,
        vec!["Odd \"Schema\"".to_string(), "public".to_string()]
    );
    let mut tables = catalog.schema("public").expect("public").table_names();
    tables.sort();
    assert_eq!(tables, vec!["big", "gone", "small_v", "types"]);
    let odd = run_df(
        &ctx,
        "SELECT \"Mixed Case\" FROM pg.\"Odd \"\"Schema\"\"\".t",
    )
    .await;
    assert_eq!(ids(&odd.batches), vec![42]);
    assert!(
        odd.plan
            .contains(r#"SELECT \"Mixed Case\" FROM \"Odd \"\"Schema\"\"\".\"t\""#),
        "{}",
        odd.plan
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_type_reads_as_postgres_sends_it() {
    let (_connector, ctx) = pg_catalog(source().await).await;
    check_types(&ctx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn big_table_splits_by_ctid_and_sums_match_postgres() {
    let pg = source().await;
    let client = pg.connect("postgres").await;
    let (_connector, ctx) = pg_catalog(pg).await;

    // Splits: a 200k-row table is cut into 4 ctid ranges; count and sums equal PostgreSQL's.
    let ran = run_df(
        &ctx,
        "SELECT count(*), sum(v), sum(id), sum(amt) FROM pg.public.big",
    )
    .await;
    let scans = scan_lines(&ran.plan);
    assert!(scans[0].contains("splits=4"), "{}", ran.plan);
    assert!(scans[0].contains("ctid < '("), "{}", ran.plan);
    let row = client
        .query_one(
            "SELECT count(*), sum(v)::int8, sum(id)::int8, sum(amt)::text FROM big",
            &[],
        )
        .await
        .expect("pg sums");
    let b = &ran.batches[0];
    let as_i64 = |i: usize| {
        cast(b.column(i), &DataType::Int64)
            .expect("cast")
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0)
    };
    assert_eq!(as_i64(0), row.get::<_, i64>(0));
    assert_eq!(as_i64(0), 200_000);
    assert_eq!(as_i64(1), row.get::<_, i64>(1));
    assert_eq!(as_i64(2), row.get::<_, i64>(2));
    let amt = b
        .column(3)
        .as_primitive::<datafusion::arrow::datatypes::Decimal128Type>();
    assert_eq!(amt.value_as_string(0), row.get::<_, String>(3));
    // count(*) reads no column.
    let ran = run_df(&ctx, "SELECT count(*) FROM pg.public.big WHERE v = 3").await;
    assert!(
        scan_lines(&ran.plan)[0]
            .contains(r#"sql="SELECT FROM \"public\".\"big\" WHERE (\"v\" = 3)"#),
        "{}",
        ran.plan
    );
    assert_eq!(ids(&ran.batches), vec![200]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn projection_selects_only_the_needed_columns() {
    let (_connector, ctx) = pg_catalog(source().await).await;
    let ran = run_df(&ctx, "SELECT s, id FROM pg.public.big WHERE id = 77").await;
    assert!(
        scan_lines(&ran.plan)[0]
            .contains(r#"sql="SELECT \"id\", \"s\" FROM \"public\".\"big\" WHERE (\"id\" = 77)"#)
            || scan_lines(&ran.plan)[0].contains(
                r#"sql="SELECT \"s\", \"id\" FROM \"public\".\"big\" WHERE (\"id\" = 77)"#
            ),
        "{}",
        ran.plan
    );
    assert_eq!(ran.batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushed_filters_are_in_the_remote_sql_and_rows_match_postgres() {
    let pg = source().await;
    let client = pg.connect("postgres").await;
    let (_connector, ctx) = pg_catalog(pg).await;
    // Each pushed filter kind: in the remote SQL, rows equal PostgreSQL's.
    let pushed: [(&str, &str, &str, &str, &str); 13] = [
        ("big", "v = 7", "v = 7", r#"(\"v\" = 7)"#, "v"),
        (
            "big",
            "id <> 5 AND id < 100",
            "id <> 5 AND id < 100",
            r#"(\"id\" <> 5)"#,
            "id",
        ),
        (
            "big",
            "amt >= 1999.50",
            "amt >= 1999.50",
            r#"(\"amt\" >= 1999.50)"#,
            "amt",
        ),
        (
            "big",
            "d > DATE '2020-12-25'",
            "d > DATE '2020-12-25'",
            r#"(\"d\" > DATE '2020-12-25')"#,
            "d",
        ),
        (
            "big",
            "id > 199990 OR v <= 1",
            "id > 199990 OR v <= 1",
            " OR ",
            "id",
        ),
        (
            "big",
            "NOT (v > 3 OR id > 100)",
            "NOT (v > 3 OR id > 100)",
            r#"\"v\""#,
            "v",
        ),
        (
            "big",
            "v IN (1, 2, 3, 4, 5) AND id < 5000",
            "v IN (1, 2, 3, 4, 5) AND id < 5000",
            r#"(\"v\" IN (1, 2, 3, 4, 5))"#,
            "v",
        ),
        (
            "big",
            "v NOT IN (1, 2, 3, 4, 5) AND id < 50",
            "v NOT IN (1, 2, 3, 4, 5) AND id < 50",
            r#"NOT IN (1, 2, 3, 4, 5)"#,
            "v",
        ),
        (
            "big",
            "v BETWEEN 10 AND 12",
            "v BETWEEN 10 AND 12",
            r#"(\"v\" >= 10) AND (\"v\" <= 12)"#,
            "v",
        ),
        (
            "big",
            "s = 'c4ca4238a0b923820dcc509a6f75849b'",
            "s = 'c4ca4238a0b923820dcc509a6f75849b'",
            r#"(\"s\" = 'c4ca4238a0b923820dcc509a6f75849b')"#,
            "s",
        ),
        (
            "types",
            "i8 IS NULL",
            "i8 IS NULL",
            r#"(\"i8\" IS NULL)"#,
            "i8",
        ),
        (
            "types",
            "i8 IS NOT NULL AND b",
            "i8 IS NOT NULL AND b",
            r#"(\"i8\" IS NOT NULL)"#,
            "i8",
        ),
        ("types", "b = false", "b = false", r#"\"b\""#, "b"),
    ];
    for (table, df_pred, pg_pred, fragment, col) in pushed {
        check_filter(&ctx, &client, table, df_pred, pg_pred, Some(fragment), col).await;
    }
    check_filter(
        &ctx,
        &client,
        "types",
        "ts < TIMESTAMP '2000-01-01 00:00:00'",
        "ts < TIMESTAMP '2000-01-01 00:00:00'",
        Some(r#"(\"ts\" < TIMESTAMP '2000-01-01 00:00:00.000000')"#),
        "ts",
    )
    .await;
    check_filter(
        &ctx,
        &client,
        "types",
        "tstz > '2000-01-01T00:00:00Z'",
        "tstz > TIMESTAMPTZ '2000-01-01 00:00:00+00'",
        Some(r#"(\"tstz\" > TIMESTAMPTZ '2000-01-01 00:00:00.000000+00')"#),
        "tstz",
    )
    .await;
    check_filter(
        &ctx,
        &client,
        "types",
        "t = 'héllo ''quoted'''",
        "t = 'héllo ''quoted'''",
        Some(r#"(\"t\" = 'héllo ''quoted''')"#),
        "t",
    )
    .await;
    check_filter(
        &ctx,
        &client,
        "types",
        "n < 0",
        "n < 0",
        Some(r#"(\"n\" < "#),
        "n",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filters_kept_local_still_give_postgres_rows() {
    let pg = source().await;
    let client = pg.connect("postgres").await;
    let (_connector, ctx) = pg_catalog(pg).await;
    // Not pushed, still right: string ranges, floats, text-cast types, char(n).
    let kept: [(&str, &str, &str); 5] = [
        ("big", "s > 'fff' AND id < 3000", "s"),
        ("types", "t >= 'a'", "t"),
        ("types", "f8 > 0", "f8"),
        ("types", "u = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "u"),
        ("types", "vc < 'b'", "vc"),
    ];
    for (table, pred, col) in kept {
        check_filter(&ctx, &client, table, pred, pred, None, col).await;
    }
    let ran = run_df(&ctx, "SELECT id FROM pg.public.types WHERE t >= 'a'").await;
    assert!(!scan_lines(&ran.plan)[0].contains("WHERE"), "{}", ran.plan);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limit_is_pushed_into_each_split() {
    let (_connector, ctx) = pg_catalog(source().await).await;
    let ran = run_df(&ctx, "SELECT id FROM pg.public.big LIMIT 5").await;
    assert!(
        scan_lines(&ran.plan)[0].contains(" LIMIT 5\""),
        "{}",
        ran.plan
    );
    assert_eq!(ids(&ran.batches).len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_view_is_one_split() {
    let pg = source().await;
    let client = pg.connect("postgres").await;
    let (_connector, ctx) = pg_catalog(pg).await;
    let ran = run_df(&ctx, "SELECT count(*) FROM pg.public.small_v").await;
    assert!(
        scan_lines(&ran.plan)[0].contains("splits=1"),
        "{}",
        ran.plan
    );
    let expected: i64 = client
        .query_one("SELECT count(*) FROM small_v", &[])
        .await
        .expect("count view")
        .get(0);
    assert_eq!(ids(&ran.batches), vec![expected]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rerunning_a_partition_reads_the_same_rows() {
    let (_connector, ctx) = pg_catalog(source().await).await;
    // Split SQL is fixed at planning.
    let df = ctx
        .sql("SELECT id FROM pg.public.big WHERE v = 9")
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
async fn later_tables_are_found_and_dropped_ones_fail_with_the_source_error() {
    let pg = start_postgres(None);
    let client = pg.connect("postgres").await;
    client
        .batch_execute("CREATE TABLE gone (x int4);")
        .await
        .expect("setup SQL");
    let (connector, ctx) = pg_catalog(&pg).await;
    connector.refresh_metadata().await.expect("metadata");

    // A table created after the first metadata load is found on lookup.
    client
        .batch_execute("CREATE TABLE later (id int8); INSERT INTO later VALUES (1), (2);")
        .await
        .expect("create later");
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let ran = run_df(&ctx, "SELECT id FROM pg.public.later").await;
    assert_eq!(ids(&ran.batches), vec![1, 2]);

    // A remote SQL error carries the source's message and the catalog name.
    client.batch_execute("DROP TABLE gone").await.expect("drop");
    let err = ctx
        .sql("SELECT x FROM pg.public.gone")
        .await
        .expect("planned from cached metadata")
        .collect()
        .await
        .expect_err("the table is gone")
        .to_string();
    assert!(err.contains("catalog \"pg\""), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(err.contains("42P01"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_password_is_a_clear_error_without_the_password() {
    let pg = source().await;
    let bad = PostgresConnector::from_config("badpw", &catalog_config(pg, "wrong-pass-123"))
        .await
        .expect("loads without connecting");
    let ctx2 = SessionContext::new();
    ctx2.register_catalog("badpw", bad.catalog());
    let err = match ctx2.sql("SELECT * FROM badpw.public.types").await {
        Ok(df) => df.collect().await.expect_err("bad password").to_string(),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("catalog \"badpw\""), "{err}");
    assert!(err.contains("authentication failed"), "{err}");
    assert!(!err.contains("wrong-pass-123"), "{err}");
}

#[tokio::test]
async fn source_down_at_startup_loads_and_fails_clearly() {
    let port = free_port();
    let config: toml::Table = toml::from_str(&format!(
        "connector = \"postgres\"\nhost = \"127.0.0.1\"\nport = {port}\ndatabase = \"db\"\n\
         user = \"u\"\npassword = \"{PASSWORD}\"\nconnect_timeout_secs = 2\n"
    ))
    .expect("toml");
    let connector = PostgresConnector::from_config("down", &config)
        .await
        .expect("a source that is down still loads");
    let ctx = SessionContext::new();
    ctx.register_catalog("down", connector.catalog());
    let err = match ctx.sql("SELECT * FROM down.public.t").await {
        Ok(df) => df.collect().await.expect_err("source is down").to_string(),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("catalog \"down\""), "{err}");
    assert!(
        err.contains(&format!("cannot connect to PostgreSQL at 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");
    let debug = format!("{connector:?}");
    assert!(!debug.contains(PASSWORD), "{debug}");
}

#[tokio::test]
async fn bad_config_names_the_key() {
    let config: toml::Table =
        toml::from_str("connector = \"postgres\"\nhost = \"h\"\nuser = \"u\"\n").expect("toml");
    let err = PostgresConnector::from_config("x", &config)
        .await
        .expect_err("database is missing")
        .to_string();
    assert!(err.contains("database"), "{err}");
    let config: toml::Table = toml::from_str(
        "connector = \"postgres\"\nhost = \"h\"\nuser = \"u\"\ndatabase = \"d\"\npool_size = 0\n",
    )
    .expect("toml");
    let err = PostgresConnector::from_config("x", &config)
        .await
        .expect_err("pool_size 0")
        .to_string();
    assert!(err.contains("pool_size"), "{err}");
}

/// The provider of `pg.public.NAME`.
async fn provider(
    connector: &PostgresConnector,
    name: &str,
) -> Arc<dyn datafusion::catalog::TableProvider> {
    connector
        .catalog()
        .schema("public")
        .expect("public")
        .table(name)
        .await
        .expect("lookup")
        .unwrap_or_else(|| panic!("table {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_keys_comments_and_front_end_types() {
    let pg = start_postgres(None);
    let client = pg.connect("postgres").await;
    client
        .batch_execute(&format!(
            "CREATE TABLE keyed ({KEYED_COLUMNS});
             COMMENT ON TABLE keyed IS 'a keyed table';
             COMMENT ON COLUMN keyed.b IS 'the b column';
             INSERT INTO keyed VALUES (1, 'x', 10, NULL), (2, 'y', 10, NULL);
             CREATE VIEW keyed_v AS SELECT * FROM keyed;
             CREATE TABLE unkeyed (a int4 NOT NULL UNIQUE);"
        ))
        .await
        .expect("setup");
    let connector = PostgresConnector::from_config("pg", &catalog_config(&pg, PASSWORD))
        .await
        .expect("connector");
    check_keyed(
        &provider(&connector, "keyed").await,
        &provider(&connector, "keyed_v").await,
        &provider(&connector, "unkeyed").await,
    );

    // DataFusion sees the key: columns determined by it may be selected when grouping by it.
    let ctx = SessionContext::new();
    ctx.register_catalog("pg", connector.catalog());
    let ran = run_df(
        &ctx,
        "SELECT c, a, b FROM pg.public.keyed GROUP BY c, a ORDER BY a",
    )
    .await;
    assert_eq!(ids(&ran.batches), vec![10, 10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_modes_against_a_tls_only_postgres() {
    let dir = tempfile::Builder::new()
        .prefix("tributary-pgcerts-")
        .tempdir()
        .expect("temp dir");
    let certs = TestCerts::make(dir.path());
    let pg = start_postgres(Some(&certs));
    pg.connect_socket("postgres")
        .await
        .batch_execute(
            "CREATE VIEW my_ssl AS \
             SELECT ssl::int4 AS ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        )
        .await
        .expect("setup");

    /// What reading `my_ssl` through a catalog with `extra` settings gives: whether the
    /// connection was TLS, or the error.
    async fn attempt(pg: &Postgres, name: &str, extra: &str) -> Result<i64, String> {
        let config: toml::Table = toml::from_str(&format!(
            "connector = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"postgres\"\n\
             user = \"postgres\"\npassword = \"{PASSWORD}\"\nconnect_timeout_secs = 5\n{extra}",
            pg.port()
        ))
        .map_err(|e| e.to_string())?;
        let connector = PostgresConnector::from_config(name, &config)
            .await
            .map_err(|e| e.to_string())?;
        let ctx = SessionContext::new();
        ctx.register_catalog(name, connector.catalog());
        let df = ctx
            .sql(&format!("SELECT ssl FROM {name}.public.my_ssl"))
            .await
            .map_err(|e| e.to_string())?;
        let batches = df.collect().await.map_err(|e| e.to_string())?;
        Ok(ids(&batches).first().copied().unwrap_or(-1))
    }

    let ca = certs.ca.display().to_string();
    let other = certs.other_ca.display().to_string();
    // The server rejects plain connections: `disable` fails, every TLS mode gets through.
    let err = attempt(&pg, "plain", "ssl_mode = \"disable\"\n")
        .await
        .expect_err("plain TCP is rejected");
    assert!(err.contains("catalog \"plain\""), "{err}");
    assert!(err.contains("no encryption"), "{err}");
    assert_eq!(
        attempt(&pg, "dflt", "").await,
        Ok(1),
        "prefer is the default"
    );
    assert_eq!(attempt(&pg, "req", "ssl_mode = \"require\"\n").await, Ok(1));
    assert_eq!(
        attempt(
            &pg,
            "ca",
            &format!("ssl_mode = \"verify-ca\"\nssl_root_cert = \"{ca}\"\n")
        )
        .await,
        Ok(1)
    );
    // verify-full checks the host name: the certificate is for db.example, not 127.0.0.1.
    let err = attempt(
        &pg,
        "full",
        &format!("ssl_mode = \"verify-full\"\nssl_root_cert = \"{ca}\"\n"),
    )
    .await
    .expect_err("wrong host name");
    assert!(err.contains("catalog \"full\""), "{err}");
    assert!(err.contains("not valid for name"), "{err}");
    // A certificate from another authority is refused.
    let err = attempt(
        &pg,
        "other",
        &format!("ssl_mode = \"verify-ca\"\nssl_root_cert = \"{other}\"\n"),
    )
    .await
    .expect_err("unknown issuer");
    assert!(err.contains("UnknownIssuer"), "{err}");
    // Bad settings are configuration errors naming the key.
    let err = attempt(&pg, "bad", "ssl_mode = \"verify-full\"\n")
        .await
        .expect_err("no root certificate");
    assert!(err.contains("ssl_root_cert"), "{err}");
    let err = attempt(&pg, "bad", "ssl_mode = \"sometimes\"\n")
        .await
        .expect_err("bad mode");
    assert!(err.contains("ssl_mode"), "{err}");
}
