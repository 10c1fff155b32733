//! Every type the `postgres` connector maps, read through the server in text (simple protocol) and
//! binary (extended protocol) result formats, checked against PostgreSQL's own answer for the same
//! rows: the same text, the same bytes and the same type OID, or — for the types the connector reads
//! as text (enums, arrays of uuid / jsonb / enums / varchar / unconstrained numeric) — exactly what
//! PostgreSQL gives for `col::text` / `col::text[]`. NULLs and extreme values included.

use compat_tests::results::query_text;
use compat_tests::{ConfigDir, Postgres, Tributary};
use tokio_postgres::types::Type;

#[path = "support/wire.rs"]
mod wire;
use wire::{binary_values, text_values};

/// One column of the test table: its declaration and its values in rows 1, 3, 4, ... (row 2 is all
/// NULL), as SQL literals.
struct Column {
    name: &'static str,
    decl: &'static str,
    values: &'static [&'static str],
    /// Read as text by the connector: compare with PostgreSQL's `col::text` (or `::text[]`).
    as_text: bool,
}

const fn col(name: &'static str, decl: &'static str, values: &'static [&'static str]) -> Column {
    Column {
        name,
        decl,
        values,
        as_text: false,
    }
}

const fn text_col(
    name: &'static str,
    decl: &'static str,
    values: &'static [&'static str],
) -> Column {
    Column {
        as_text: true,
        ..col(name, decl, values)
    }
}

/// Seven values per column: rows 1 and 3..=8.
const COLUMNS: &[Column] = &[
    col(
        "b",
        "bool",
        &["true", "false", "true", "false", "true", "false", "true"],
    ),
    col(
        "i2",
        "int2",
        &["-32768", "32767", "0", "-1", "1", "12345", "-12345"],
    ),
    col(
        "i4",
        "int4",
        &[
            "-2147483648",
            "2147483647",
            "0",
            "-1",
            "1",
            "123456789",
            "-42",
        ],
    ),
    col(
        "i8",
        "int8",
        &[
            "-9223372036854775808",
            "9223372036854775807",
            "0",
            "-1",
            "1",
            "1234567890123",
            "-42",
        ],
    ),
    col(
        "f4",
        "float4",
        &[
            "1.5",
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "3.4028235e38",
            "'-0'",
            "1.4e-45",
        ],
    ),
    col(
        "f4b",
        "float4",
        &[
            "123456", "1234567", "0.0001", "0.00001", "0.1", "-2.5e-10", "1e10",
        ],
    ),
    col(
        "f8",
        "float8",
        &[
            "1.7976931348623157e308",
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "5e-324",
            "'-0'",
            "0.1",
        ],
    ),
    col(
        "f8b",
        "float8",
        &[
            "123456789012345",
            "1e15",
            "0.0001",
            "0.00001",
            "1e-300",
            "-1.5e100",
            "3.141592653589793",
        ],
    ),
    col(
        "n",
        "numeric(38, 10)",
        &[
            "1234567890123456789012345678.0123456789",
            "-9999999999999999999999999999.9999999999",
            "0",
            "0.0000000001",
            "-1",
            "12.5",
            "10000",
        ],
    ),
    col(
        "n0",
        "numeric(38, 0)",
        &[
            "99999999999999999999999999999999999999",
            "-99999999999999999999999999999999999999",
            "0",
            "1",
            "-1",
            "10000",
            "123456789",
        ],
    ),
    col(
        "n2",
        "numeric(10, 2)",
        &[
            "-12345678.99",
            "0",
            "0.01",
            "99999999.99",
            "-0.5",
            "1",
            "100",
        ],
    ),
    col(
        "nu",
        "numeric",
        &[
            "3.14159265358979323846264338327950288419716939937510",
            "'NaN'",
            "-0.5",
            "0",
            "1e100",
            "'Infinity'",
            "0.000000000000000000000000000000000000001",
        ],
    ),
    col(
        "nw",
        "numeric(50, 20)",
        &[
            "123456789012345678901234567890.12345678901234567890",
            "-1",
            "0",
            "0.00000000000000000001",
            "'NaN'",
            "42.5",
            "-99999999999999999999999999999.99999999999999999999",
        ],
    ),
    col(
        "t",
        "text",
        &[
            "'héllo ''quoted'''",
            "''",
            "'NULL'",
            r#"'a,b {c} "d" \e'"#,
            "E'tab\\there\\nnewline'",
            "'😀 emoji'",
            "'plain'",
        ],
    ),
    col(
        "vc",
        "varchar(20)",
        &[
            "'abc'",
            "''",
            "'12345678901234567890'",
            "' lead'",
            "'trail '",
            "'x'",
            "'ü'",
        ],
    ),
    col(
        "c",
        "char(5)",
        &["'ab'", "''", "'abcde'", "'ü'", "' a'", "'x'", "'y'"],
    ),
    col(
        "nm",
        "name",
        &["'nm'", "''", "'Mixed Case'", "'x'", "'y'", "'z'", "'w'"],
    ),
    col(
        "by",
        "bytea",
        &[
            r"'\x00ff00'",
            "''",
            r"'\x5c'",
            r"'\x7f80'",
            "'abc'",
            r"'\x00'",
            r"'\xdeadbeef'",
        ],
    ),
    col(
        "d",
        "date",
        &[
            "'0001-01-01'",
            "'9999-12-31'",
            "'4714-11-24 BC'",
            "'2024-02-29'",
            "'1970-01-01'",
            "'5874897-12-31'",
            "'0001-12-31 BC'",
        ],
    ),
    col(
        "tm",
        "time",
        &[
            "'00:00:00'",
            "'23:59:59.999999'",
            "'24:00:00'",
            "'12:34:56.5'",
            "'00:00:00.000001'",
            "'13:00'",
            "'01:02:03.123'",
        ],
    ),
    col(
        "ts",
        "timestamp",
        &[
            "'0001-01-01 00:00:00'",
            "'9999-12-31 23:59:59.999999'",
            "'4713-11-24 00:00:00 BC'",
            "'2024-02-29 12:34:56.789'",
            "'1970-01-01 00:00:00'",
            "'200000-01-01 00:00:00'",
            "'1999-12-31 23:59:59.5'",
        ],
    ),
    col(
        "tstz",
        "timestamptz",
        &[
            "'2024-02-29 12:34:56.789+05'",
            "'1970-01-01 00:00:00+00'",
            "'0001-01-01 00:00:00+00'",
            "'9999-12-31 23:59:59.999999+00'",
            "'4713-11-24 00:00:00+00 BC'",
            "'2000-01-01 00:00:00+05:30'",
            "'2100-06-15 12:00:00-07'",
        ],
    ),
    col(
        "iv",
        "interval",
        &[
            "'1 year 2 months 3 days 04:05:06.789'",
            "'-1 days'",
            "'0'",
            "'-1 years -2 mons +2 days -00:00:01'",
            "'838:59:59'",
            "'1 mon'",
            "'-00:00:00.000001'",
        ],
    ),
    col(
        "u",
        "uuid",
        &[
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
            "'00000000-0000-0000-0000-000000000000'",
            "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
            "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12'",
            "'{a0eebc999c0b4ef8bb6d6bb9bd380a13}'",
            "'12345678-1234-1234-1234-123456789abc'",
            "'00000000-0000-0000-0000-000000000001'",
        ],
    ),
    col(
        "j",
        "json",
        &[
            r#"'{"a": 1}'"#,
            "'[]'",
            "'null'",
            r#"'"str"'"#,
            r#"'{"b":[1,2,{"c":null}]}'"#,
            r#"'  {"ws" :  true}  '"#,
            "'1.5'",
        ],
    ),
    col(
        "jb",
        "jsonb",
        &[
            r#"'{"b": [1, 2]}'"#,
            "'null'",
            "'[]'",
            r#"'{"a":1,"a":2}'"#,
            r#"'"x"'"#,
            "'1e2'",
            "'{}'",
        ],
    ),
    text_col(
        "m",
        "mood",
        &[
            "'happy'", "'sad'", "'happy'", "'sad'", "'happy'", "'sad'", "'happy'",
        ],
    ),
    col(
        "dom",
        "posint",
        &["1", "2147483647", "3", "4", "5", "6", "7"],
    ),
    col(
        "ab",
        "bool[]",
        &[
            "'{t,f,NULL}'",
            "'{}'",
            "'{t}'",
            "'{NULL}'",
            "'{f,f}'",
            "'{t,t,t}'",
            "'{}'",
        ],
    ),
    col(
        "ai2",
        "int2[]",
        &[
            "'{1,NULL,3}'",
            "'{}'",
            "'{-32768,32767}'",
            "'{0}'",
            "'{NULL,NULL}'",
            "'{5}'",
            "'{6,7}'",
        ],
    ),
    col(
        "ai",
        "int4[]",
        &[
            "'{1,NULL,3}'",
            "'{}'",
            "'{-2147483648,2147483647}'",
            "'{0}'",
            "'{NULL}'",
            "'{5}'",
            "'{6,7}'",
        ],
    ),
    col(
        "ai8",
        "int8[]",
        &[
            "'{1,NULL,3}'",
            "'{}'",
            "'{-9223372036854775808,9223372036854775807}'",
            "'{0}'",
            "'{NULL}'",
            "'{5}'",
            "'{6,7}'",
        ],
    ),
    col(
        "af4",
        "float4[]",
        &[
            "'{NaN,Infinity,-Infinity,1.5}'",
            "'{}'",
            "'{-0,1e-45}'",
            "'{NULL}'",
            "'{1234567}'",
            "'{0.1}'",
            "'{3.4028235e38}'",
        ],
    ),
    col(
        "af8",
        "float8[]",
        &[
            "'{NaN,-0,1e300}'",
            "'{}'",
            "'{-Infinity,Infinity}'",
            "'{NULL,0.1}'",
            "'{1e15}'",
            "'{5e-324}'",
            "'{123456789012345}'",
        ],
    ),
    col(
        "an",
        "numeric(10, 2)[]",
        &[
            "'{1.50,-2.25,NULL}'",
            "'{}'",
            "'{99999999.99}'",
            "'{0}'",
            "'{-0.01}'",
            "'{1}'",
            "'{2,3}'",
        ],
    ),
    text_col(
        "anu",
        "numeric[]",
        &[
            "'{1.5,NaN}'",
            "'{}'",
            "'{1e30}'",
            "'{0}'",
            "'{-0.5}'",
            "'{1}'",
            "'{2}'",
        ],
    ),
    col(
        "at",
        "text[]",
        &[
            r#"'{"x","y z","","NULL",null,"a\"b","c\\d"}'"#,
            "'{}'",
            "'{\"{braces}\",\"a,b\"}'",
            "'{ü}'",
            "'{NULL}'",
            "'{\"tab\there\"}'",
            "'{plain}'",
        ],
    ),
    text_col(
        "avc",
        "varchar(10)[]",
        &[
            "'{a,b}'",
            "'{}'",
            "'{\"x y\"}'",
            "'{NULL}'",
            "'{1}'",
            "'{2}'",
            "'{3}'",
        ],
    ),
    col(
        "aby",
        "bytea[]",
        &[
            r#"'{"\\x00ff",NULL}'"#,
            "'{}'",
            r#"'{"\\x"}'"#,
            "'{NULL}'",
            r#"'{"\\x5c"}'"#,
            r#"'{"\\x01","\\x02"}'"#,
            "'{}'",
        ],
    ),
    col(
        "ad",
        "date[]",
        &[
            "'{2024-01-01,\"0001-01-01 BC\"}'",
            "'{}'",
            "'{9999-12-31}'",
            "'{NULL}'",
            "'{1970-01-01}'",
            "'{2000-02-29}'",
            "'{0001-01-01}'",
        ],
    ),
    col(
        "atm",
        "time[]",
        &[
            "'{00:00:00,23:59:59.999999}'",
            "'{}'",
            "'{24:00:00}'",
            "'{NULL}'",
            "'{12:00:00.5}'",
            "'{01:02:03}'",
            "'{13:14:15.000001}'",
        ],
    ),
    col(
        "ats",
        "timestamp[]",
        &[
            "'{\"2024-02-29 12:34:56.789\",NULL}'",
            "'{}'",
            "'{\"0001-01-01 00:00:00 BC\"}'",
            "'{NULL}'",
            "'{\"1970-01-01 00:00:00\"}'",
            "'{\"9999-12-31 23:59:59.999999\"}'",
            "'{\"2000-01-01 00:00:00\"}'",
        ],
    ),
    col(
        "atstz",
        "timestamptz[]",
        &[
            "'{\"2024-02-29 12:34:56.789+05\"}'",
            "'{}'",
            "'{\"1970-01-01 00:00:00+00\",NULL}'",
            "'{NULL}'",
            "'{\"0001-01-01 00:00:00+00 BC\"}'",
            "'{\"9999-12-31 23:59:59.999999+00\"}'",
            "'{\"2000-01-01 00:00:00+00\"}'",
        ],
    ),
    col(
        "aiv",
        "interval[]",
        &[
            "'{\"1 year 2 mons\",\"-1 days\"}'",
            "'{}'",
            "'{00:00:00}'",
            "'{NULL}'",
            "'{\"838:59:59\"}'",
            "'{\"1 day -00:00:01\"}'",
            "'{\"3 mons\"}'",
        ],
    ),
    text_col(
        "au",
        "uuid[]",
        &[
            "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}'",
            "'{}'",
            "'{00000000-0000-0000-0000-000000000000}'",
            "'{NULL}'",
            "'{ffffffff-ffff-ffff-ffff-ffffffffffff}'",
            "'{12345678-1234-1234-1234-123456789abc}'",
            "'{}'",
        ],
    ),
    text_col(
        "ajb",
        "jsonb[]",
        &[
            r#"'{"{\"a\": 1}",null}'"#,
            "'{}'",
            r#"'{"[1, 2]"}'"#,
            "'{NULL}'",
            r#"'{"\"s\""}'"#,
            "'{1}'",
            "'{true}'",
        ],
    ),
    text_col(
        "am",
        "mood[]",
        &[
            "'{happy,sad}'",
            "'{}'",
            "'{sad}'",
            "'{NULL}'",
            "'{happy}'",
            "'{sad,sad}'",
            "'{}'",
        ],
    ),
];

/// The test table in database `ptypes` (8 rows, id 1..=8, row 2 all NULL), created once per test
/// process, and a catalog `pg` on it.
async fn setup() -> ConfigDir {
    static CREATED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    CREATED.get_or_init(create_tables).await;
    ConfigDir::new().catalog(
        "pg",
        &format!(
            "connector = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"ptypes\"\n\
             user = \"postgres\"\n",
            Postgres::shared().port()
        ),
    )
}

async fn create_tables() {
    let pg = Postgres::shared();
    pg.create_database("ptypes").await;
    let client = pg.connect("ptypes").await;
    let columns: Vec<String> = COLUMNS
        .iter()
        .map(|c| format!("{} {}", c.name, c.decl))
        .collect();
    let mut rows = Vec::new();
    for id in 1..=8usize {
        let values: Vec<&str> = COLUMNS
            .iter()
            .map(|c| match id {
                2 => "NULL",
                1 => c.values[0],
                _ => c.values[id - 2],
            })
            .collect();
        rows.push(format!("({id}, {})", values.join(", ")));
    }
    let sql = format!(
        "DROP TABLE IF EXISTS types; DROP DOMAIN IF EXISTS posint; DROP TYPE IF EXISTS mood;
         CREATE TYPE mood AS ENUM ('sad', 'happy');
         CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
         CREATE TABLE types (id int4 PRIMARY KEY, {});
         INSERT INTO types VALUES {};
         DROP TABLE IF EXISTS bad_values;
         CREATE TABLE bad_values (id int4, n numeric(5, 2), ts timestamp, d date);
         INSERT INTO bad_values VALUES (1, 'NaN', NULL, NULL), (2, NULL, 'infinity', NULL),
                                       (3, NULL, NULL, '-infinity'), (4, 1.5, '2000-01-01', '2000-01-01');",
        columns.join(", "),
        rows.join(",\n")
    );
    client
        .batch_execute(&sql)
        .await
        .unwrap_or_else(|e| panic!("setup: {:?}", e.as_db_error()));
}

/// The SELECT lists: ours reads every column; PostgreSQL's reads the text-read ones as text.
fn select_lists() -> (String, String) {
    let ours: Vec<String> = COLUMNS.iter().map(|c| c.name.to_string()).collect();
    let theirs: Vec<String> = COLUMNS
        .iter()
        .map(|c| match (c.as_text, c.decl.ends_with("[]")) {
            (false, _) => c.name.to_string(),
            (true, false) => format!("{0}::text AS {0}", c.name),
            (true, true) => format!("{0}::text[] AS {0}", c.name),
        })
        .collect();
    (ours.join(", "), theirs.join(", "))
}

fn show(bytes: &Option<Vec<u8>>) -> String {
    match bytes {
        None => "NULL".into(),
        Some(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_types_round_trip_in_text_and_binary() {
    let config = setup().await;
    let server = Tributary::start(Some(config.path()));
    let ours = server.connect("pg").await;
    let theirs = Postgres::shared().connect("ptypes").await;
    theirs
        .batch_execute(
            "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET extra_float_digits = 1",
        )
        .await
        .unwrap();
    let (our_list, their_list) = select_lists();
    let our_sql = format!("SELECT {our_list} FROM pg.public.types ORDER BY id");
    let their_sql = format!("SELECT {their_list} FROM public.types ORDER BY id");

    // Text results (simple protocol).
    let our_rows = text_values(&ours, &our_sql).await;
    let their_rows = text_values(&theirs, &their_sql).await;
    assert_eq!(our_rows.len(), 8);
    assert_eq!(their_rows.len(), 8);
    let mut problems = Vec::new();
    for (c, column) in COLUMNS.iter().enumerate() {
        for (r, (our_row, their_row)) in our_rows.iter().zip(&their_rows).enumerate() {
            if our_row[c] != their_row[c] {
                problems.push(format!(
                    "{} ({}) row {}: text {:?}, PostgreSQL {:?}",
                    column.name,
                    column.decl,
                    r + 1,
                    our_row[c],
                    their_row[c]
                ));
            }
        }
    }

    // Binary results (extended protocol).
    let (our_oids, our_rows) = binary_values(&ours, &our_sql).await;
    let (their_oids, their_rows) = binary_values(&theirs, &their_sql).await;
    for (c, column) in COLUMNS.iter().enumerate() {
        let expected_oid = if column.name == "dom" {
            Type::INT4.oid()
        } else {
            their_oids[c]
        };
        if our_oids[c] != expected_oid {
            problems.push(format!(
                "{} ({}): type OID {} (binary), PostgreSQL {}",
                column.name, column.decl, our_oids[c], expected_oid
            ));
        }
        for (r, (our_row, their_row)) in our_rows.iter().zip(&their_rows).enumerate() {
            if our_row[c] != their_row[c] {
                problems.push(format!(
                    "{} ({}) row {}: bytes {}, PostgreSQL {}",
                    column.name,
                    column.decl,
                    r + 1,
                    show(&our_row[c]),
                    show(&their_row[c])
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Named zones follow the tz database as compiled into the server, whose rules end in 2037 (where
/// PostgreSQL continues the last rule): row 8 (a summer day of 2100) is left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamptz_text_follows_the_session_time_zone() {
    let config = setup().await;
    let server = Tributary::start(Some(config.path()));
    let ours = server.connect("pg").await;
    let theirs = Postgres::shared().connect("ptypes").await;
    for zone in ["America/New_York", "Asia/Kolkata", "UTC"] {
        let set = format!("SET TimeZone = '{zone}'");
        ours.batch_execute(&set).await.unwrap();
        theirs.batch_execute(&set).await.unwrap();
        let our_rows = text_values(
            &ours,
            "SELECT tstz, atstz FROM pg.public.types WHERE id < 8 ORDER BY id",
        )
        .await;
        let their_rows = text_values(
            &theirs,
            "SELECT tstz, atstz FROM public.types WHERE id < 8 ORDER BY id",
        )
        .await;
        assert_eq!(our_rows, their_rows, "TimeZone {zone}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_arrow_cannot_hold_fail_naming_the_column() {
    let config = setup().await;
    let server = Tributary::start(Some(config.path()));
    let client = server.connect("pg").await;
    for (column, id) in [("n", 1), ("ts", 2), ("d", 3)] {
        let sql = format!("SELECT {column} FROM pg.public.bad_values WHERE id = {id}");
        let err = query_text(&client, &sql)
            .await
            .expect_err("unrepresentable value must fail the query");
        let message = err
            .as_db_error()
            .map(|e| e.message().to_string())
            .unwrap_or_else(|| err.to_string());
        assert!(
            message.contains(&format!("\"{column}\"")) && message.contains("catalog \"pg\""),
            "{sql}: {message}"
        );
    }
    // The same columns with representable values read fine, and the server keeps serving.
    let rows = query_text(
        &client,
        "SELECT n, ts, d FROM pg.public.bad_values WHERE id = 4",
    )
    .await
    .unwrap();
    assert_eq!(
        rows.strings(),
        vec![vec!["1.50", "2000-01-01 00:00:00", "2000-01-01"]]
    );
    // Each column read as text is reported once, however often the metadata is reloaded (an
    // unknown table reloads it, at most every 5 s).
    tokio::time::sleep(std::time::Duration::from_millis(5500)).await;
    let _ = query_text(&client, "SELECT * FROM pg.public.no_such_table").await;
    let _ = query_text(&client, "SELECT m FROM pg.public.types").await;
    let log = server.log();
    for column in [
        "types.m ",
        "types.anu ",
        "types.au ",
        "types.ajb ",
        "types.am ",
    ] {
        let count = log.matches(&format!("column public.{column}")).count();
        assert_eq!(count, 1, "{column} reported once:\n{log}");
    }
}

/// An expression over a column loses the column's source type: `u::text` is text, as in
/// PostgreSQL, in both result formats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn casts_and_expressions_are_reported_as_their_own_type() {
    let config = setup().await;
    let server = Tributary::start(Some(config.path()));
    let ours = server.connect("pg").await;
    let theirs = Postgres::shared().connect("ptypes").await;
    let select = "u::text AS a, CAST(u AS varchar) AS b, j::text AS c, nu::text AS d, \
                  vc || '!' AS e, c::text AS f, u AS g";
    let (our_oids, our_rows) = binary_values(
        &ours,
        &format!("SELECT {select} FROM pg.public.types ORDER BY id"),
    )
    .await;
    let (their_oids, their_rows) = binary_values(
        &theirs,
        &format!("SELECT {select} FROM public.types ORDER BY id"),
    )
    .await;
    // PostgreSQL's varchar cast is varchar (1043); ours is text. Everything else the same.
    let mut expected = their_oids.clone();
    expected[1] = Type::TEXT.oid();
    assert_eq!(our_oids, expected);
    assert_eq!(our_rows, their_rows);
}
