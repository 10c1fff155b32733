//! Every type the `mysql` connector maps, read from a real MariaDB through the server in text (simple
//! protocol) and binary (extended protocol) result formats, with NULLs and extreme values, checked
//! against what MariaDB itself returns for the same rows (through the `mariadb` client, each value
//! in a canonical text: HEX() for strings and bytes, exact decimals, doubles, ISO dates with six
//! fractional digits), and the type OID each column is reported as.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use compat_tests::results::query_text;
use compat_tests::{ConfigDir, Mariadb, Tributary};
use tokio_postgres::Client;
use tokio_postgres::types::Type;

#[path = "support/wire.rs"]
mod wire;
use wire::{binary_values, text_values};

/// How a column's values are compared.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// An integer (decimal digits).
    Int,
    /// An exact decimal, as MariaDB prints it (its scale).
    Num,
    /// A float column: MariaDB's `CAST(col AS DOUBLE)` is the exact value.
    F32,
    F64,
    /// Text: compared as the hex of its UTF-8 bytes.
    Str,
    /// Bytes, as hex.
    Bytes,
    Date,
    /// datetime / timestamp: `YYYY-MM-DD HH:MM:SS.ffffff` (UTC for timestamps).
    DateTime,
    /// time of day: `HH:MM:SS.ffffff`.
    Time,
    /// time read as an interval: `[-]H:MM:SS.ffffff`.
    Interval,
    /// A uuid: its lower-case text (16 bytes in binary).
    Uuid,
}

struct Column {
    name: &'static str,
    decl: &'static str,
    kind: Kind,
    /// The type the server reports.
    oid: Type,
    /// Values of rows 1, 3, 4, ... (row 2 is all NULL) as MariaDB literals.
    values: &'static [&'static str],
}

const fn col(
    name: &'static str,
    decl: &'static str,
    kind: Kind,
    oid: Type,
    values: &'static [&'static str],
) -> Column {
    Column {
        name,
        decl,
        kind,
        oid,
        values,
    }
}

/// Five values per column: rows 1 and 3..=6.
const COLUMNS: &[Column] = &[
    col(
        "ti",
        "tinyint",
        Kind::Int,
        Type::INT2,
        &["-128", "127", "0", "-1", "42"],
    ),
    col(
        "tiu",
        "tinyint unsigned",
        Kind::Int,
        Type::INT2,
        &["0", "255", "1", "128", "42"],
    ),
    col(
        "si",
        "smallint",
        Kind::Int,
        Type::INT2,
        &["-32768", "32767", "0", "-1", "42"],
    ),
    col(
        "siu",
        "smallint unsigned",
        Kind::Int,
        Type::INT4,
        &["0", "65535", "1", "32768", "42"],
    ),
    col(
        "mi",
        "mediumint",
        Kind::Int,
        Type::INT4,
        &["-8388608", "8388607", "0", "-1", "42"],
    ),
    col(
        "miu",
        "mediumint unsigned",
        Kind::Int,
        Type::INT4,
        &["0", "16777215", "1", "8388608", "42"],
    ),
    col(
        "i",
        "int",
        Kind::Int,
        Type::INT4,
        &["-2147483648", "2147483647", "0", "-1", "42"],
    ),
    col(
        "iu",
        "int unsigned",
        Kind::Int,
        Type::INT8,
        &["0", "4294967295", "1", "2147483648", "42"],
    ),
    col(
        "bi",
        "bigint",
        Kind::Int,
        Type::INT8,
        &[
            "-9223372036854775808",
            "9223372036854775807",
            "0",
            "-1",
            "42",
        ],
    ),
    col(
        "biu",
        "bigint unsigned",
        Kind::Int,
        Type::NUMERIC,
        &[
            "0",
            "18446744073709551615",
            "1",
            "9223372036854775808",
            "42",
        ],
    ),
    col(
        "de",
        "decimal(10,2)",
        Kind::Num,
        Type::NUMERIC,
        &["-99999999.99", "99999999.99", "0", "-0.01", "12.5"],
    ),
    col(
        "de38",
        "decimal(38,10)",
        Kind::Num,
        Type::NUMERIC,
        &[
            "-9999999999999999999999999999.9999999999",
            "1234567890123456789012345678.0123456789",
            "0",
            "0.0000000001",
            "-1",
        ],
    ),
    col(
        "de65",
        "decimal(65,30)",
        Kind::Num,
        Type::NUMERIC,
        &[
            "99999999999999999999999999999999999.999999999999999999999999999999",
            "-12345678901234567890.123456789012345678901234567890",
            "0",
            "0.000000000000000000000000000001",
            "1",
        ],
    ),
    col(
        "f",
        "float",
        Kind::F32,
        Type::FLOAT4,
        &["3.40282e38", "-1.17549e-38", "0", "1.5", "0.1"],
    ),
    col(
        "d",
        "double",
        Kind::F64,
        Type::FLOAT8,
        &[
            "1.7976931348623157e308",
            "-2.2250738585072014e-308",
            "0",
            "0.1",
            "-1.5e100",
        ],
    ),
    col(
        "c",
        "char(5)",
        Kind::Str,
        Type::VARCHAR,
        &["'ab'", "''", "'abcde'", "'ü'", "' a'"],
    ),
    col(
        "vc",
        "varchar(20)",
        Kind::Str,
        Type::VARCHAR,
        &["'abc'", "''", "'12345678901234567890'", "'trail '", "'😀'"],
    ),
    col(
        "tx",
        "text",
        Kind::Str,
        Type::TEXT,
        &[
            "'héllo ''quoted'''",
            "''",
            "'NULL'",
            "'tab\\there\\nnewline'",
            "'a,b {c} \"d\" \\\\e'",
        ],
    ),
    col(
        "bn",
        "binary(4)",
        Kind::Bytes,
        Type::BYTEA,
        &["x'00ff00'", "''", "x'5c'", "x'deadbeef'", "'ab'"],
    ),
    col(
        "vb",
        "varbinary(10)",
        Kind::Bytes,
        Type::BYTEA,
        &["x'00ff00'", "''", "x'5c'", "x'7f80'", "'abc'"],
    ),
    col(
        "bl",
        "blob",
        Kind::Bytes,
        Type::BYTEA,
        &["x'00'", "''", "x'ffffffff'", "'text'", "x'0102'"],
    ),
    col(
        "dt",
        "date",
        Kind::Date,
        Type::DATE,
        &[
            "'1000-01-01'",
            "'9999-12-31'",
            "'2024-02-29'",
            "'1970-01-01'",
            "'0001-01-01'",
        ],
    ),
    col(
        "dtm",
        "datetime(6)",
        Kind::DateTime,
        Type::TIMESTAMP,
        &[
            "'1000-01-01 00:00:00'",
            "'9999-12-31 23:59:59.999999'",
            "'2024-02-29 12:34:56.789'",
            "'1970-01-01 00:00:00'",
            "'1999-12-31 23:59:59.5'",
        ],
    ),
    col(
        "dtm0",
        "datetime",
        Kind::DateTime,
        Type::TIMESTAMP,
        &[
            "'1000-01-01 00:00:00'",
            "'9999-12-31 23:59:59'",
            "'2024-02-29 12:34:56'",
            "'1970-01-01 00:00:00'",
            "'2000-01-01 00:00:01'",
        ],
    ),
    col(
        "ts",
        "timestamp(6) NULL DEFAULT NULL",
        Kind::DateTime,
        Type::TIMESTAMPTZ,
        &[
            "'1970-01-01 00:00:01'",
            "'2038-01-19 03:14:07.999999'",
            "'2024-02-29 12:34:56.789'",
            "'2000-01-01 00:00:00'",
            "'1999-12-31 23:59:59.5'",
        ],
    ),
    col(
        "tm",
        "time(6)",
        Kind::Time,
        Type::TIME,
        &[
            "'00:00:00'",
            "'23:59:59.999999'",
            "'12:34:56.5'",
            "'00:00:00.000001'",
            "'13:00'",
        ],
    ),
    col(
        "yr",
        "year",
        Kind::Int,
        Type::INT2,
        &["1901", "2155", "0", "2024", "1970"],
    ),
    col(
        "js",
        "json",
        Kind::Str,
        Type::JSON,
        &[
            "'{\"a\": 1}'",
            "'[]'",
            "'null'",
            "'{\"b\":[1,2,{\"c\":null}]}'",
            "'\"ü\"'",
        ],
    ),
    col(
        "en",
        "enum('a','b','c d')",
        Kind::Str,
        Type::TEXT,
        &["'a'", "'b'", "'c d'", "'a'", "'b'"],
    ),
    col(
        "st",
        "set('x','y','z')",
        Kind::Str,
        Type::TEXT,
        &["'x'", "''", "'x,z'", "'x,y,z'", "'y'"],
    ),
    col(
        "b1",
        "bit(1)",
        Kind::Int,
        Type::INT8,
        &["b'0'", "b'1'", "b'1'", "b'0'", "b'1'"],
    ),
    col(
        "b8",
        "bit(8)",
        Kind::Int,
        Type::INT8,
        &["b'0'", "b'11111111'", "b'10000000'", "b'1'", "b'101'"],
    ),
    col(
        "u",
        "uuid",
        Kind::Uuid,
        Type::UUID,
        &[
            "'123e4567-e89b-12d3-a456-426655440000'",
            "'00000000-0000-0000-0000-000000000000'",
            "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
            "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'",
            "'00000000-0000-0000-0000-000000000001'",
        ],
    ),
    col(
        "ip",
        "inet6",
        Kind::Str,
        Type::TEXT,
        &[
            "'::1'",
            "'2001:db8::ff00:42:8329'",
            "'::'",
            "'::ffff:1.2.3.4'",
            "'fe80::1'",
        ],
    ),
    col(
        "b64",
        "bit(64)",
        Kind::Bytes,
        Type::BYTEA,
        &[
            "b'0'",
            "x'ffffffffffffffff'",
            "x'8000000000000000'",
            "b'1'",
            "x'0102030405060708'",
        ],
    ),
];

/// MariaDB's canonical text of a column (see [`Kind`]).
fn source_expr(column: &Column) -> String {
    let name = column.name;
    match column.kind {
        Kind::Int if column.decl.starts_with("bit") || column.decl == "year" => {
            format!("CAST({name} AS UNSIGNED)")
        }
        Kind::Int | Kind::Num => format!("CAST({name} AS CHAR)"),
        Kind::F32 => format!("CAST({name} AS DOUBLE)"),
        Kind::F64 => name.to_string(),
        // bit(n) values print as a number in hex: pad to the column's 8 bytes.
        Kind::Bytes if column.decl.starts_with("bit") => format!("LPAD(HEX({name}), 16, '0')"),
        // Types read as text are compared with their text.
        Kind::Str if column.decl == "inet6" => format!("HEX(CAST({name} AS CHAR))"),
        Kind::Str | Kind::Bytes => format!("HEX({name})"),
        Kind::Uuid => format!("CAST({name} AS CHAR)"),
        Kind::Date => format!("DATE_FORMAT({name}, '%Y-%m-%d')"),
        Kind::DateTime => format!("DATE_FORMAT({name}, '%Y-%m-%d %H:%i:%s.%f')"),
        Kind::Time | Kind::Interval => format!("TIME_FORMAT({name}, '%H:%i:%s.%f')"),
    }
}

async fn setup() -> ConfigDir {
    static CREATED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    CREATED.get_or_init(|| async { create_tables() }).await;
    let my = Mariadb::shared();
    ConfigDir::new()
        .catalog("my", &my.catalog_toml("database = \"mtypes\"\n"))
        .catalog(
            "myi",
            &my.catalog_toml("database = \"mtypes\"\ntime_type = \"interval\"\n"),
        )
}

fn create_tables() {
    let columns: Vec<String> = COLUMNS
        .iter()
        .map(|c| format!("{} {}", c.name, c.decl))
        .collect();
    let rows: Vec<String> = (1..=6usize)
        .map(|id| {
            let values: Vec<&str> = COLUMNS
                .iter()
                .map(|c| match id {
                    2 => "NULL",
                    1 => c.values[0],
                    _ => c.values[id - 2],
                })
                .collect();
            format!("({id}, {})", values.join(", "))
        })
        .collect();
    Mariadb::shared().execute(&format!(
        "SET time_zone = '+00:00'; SET sql_mode = 'NO_ENGINE_SUBSTITUTION';
         CREATE DATABASE IF NOT EXISTS mtypes;
         CREATE OR REPLACE TABLE mtypes.types (id int PRIMARY KEY, {}) DEFAULT CHARSET = utf8mb4;
         INSERT INTO mtypes.types VALUES {};
         CREATE OR REPLACE TABLE mtypes.times (id int PRIMARY KEY, tm time(6));
         INSERT INTO mtypes.times VALUES (1, '-838:59:59'), (2, NULL), (3, '838:59:59'),
             (4, '-00:00:00.000001'), (5, '24:00:00'), (6, '00:00:00'), (7, '-01:02:03.5');",
        columns.join(", "),
        rows.join(",\n")
    ));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn be<const N: usize>(raw: &[u8]) -> [u8; N] {
    raw.try_into()
        .unwrap_or_else(|_| panic!("{} bytes, expected {N}", raw.len()))
}

/// numeric's binary format as text with its display scale.
fn numeric_text(raw: &[u8]) -> String {
    let word = |i: usize| u16::from_be_bytes([raw[2 * i], raw[2 * i + 1]]);
    let (ndigits, weight, sign, dscale) = (
        usize::from(word(0)),
        i32::from(word(1) as i16),
        word(2),
        usize::from(word(3)),
    );
    match sign {
        0xC000 => return "NaN".into(),
        0xD000 => return "Infinity".into(),
        0xF000 => return "-Infinity".into(),
        _ => {}
    }
    let digit = |k: i32| -> u16 {
        usize::try_from(k)
            .ok()
            .filter(|k| *k < ndigits)
            .map_or(0, |k| word(4 + k))
    };
    let mut int = String::new();
    for k in 0..=weight {
        int.push_str(&format!("{:04}", digit(k)));
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let mut frac = String::new();
    let mut k = weight + 1;
    while frac.len() < dscale {
        frac.push_str(&format!("{:04}", digit(k)));
        k += 1;
    }
    frac.truncate(dscale);
    let sign = if sign == 0x4000 { "-" } else { "" };
    if dscale == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

const PG_EPOCH: i64 = 946_684_800_000_000;

fn datetime_from_micros(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .expect("timestamp in range")
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

/// `[-]HH:MM:SS.ffffff` of a signed number of microseconds.
fn duration_text(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let secs = m / 1_000_000;
    format!(
        "{sign}{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        m % 1_000_000
    )
}

/// The canonical text of a value the server sent in binary format as `oid`.
fn from_binary(kind: Kind, oid: u32, raw: &[u8]) -> String {
    match kind {
        Kind::Int | Kind::Num => match oid {
            21 => i16::from_be_bytes(be(raw)).to_string(),
            23 => i32::from_be_bytes(be(raw)).to_string(),
            20 => i64::from_be_bytes(be(raw)).to_string(),
            _ => numeric_text(raw),
        },
        Kind::F32 => f64::from(f32::from_be_bytes(be(raw))).to_string(),
        Kind::F64 => f64::from_be_bytes(be(raw)).to_string(),
        Kind::Str | Kind::Bytes => hex(raw),
        Kind::Uuid => {
            let h = hex(raw).to_ascii_lowercase();
            format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            )
        }
        Kind::Date => {
            let days = i32::from_be_bytes(be(raw));
            (NaiveDate::from_ymd_opt(2000, 1, 1).expect("epoch")
                + chrono::Duration::days(i64::from(days)))
            .format("%Y-%m-%d")
            .to_string()
        }
        Kind::DateTime => datetime_from_micros(i64::from_be_bytes(be(raw)) + PG_EPOCH),
        Kind::Time => duration_text(i64::from_be_bytes(be(raw))),
        Kind::Interval => {
            let micros = i64::from_be_bytes(be(&raw[..8]));
            assert_eq!(&raw[8..], &[0u8; 8], "no days or months in a time");
            duration_text(micros)
        }
    }
}

/// The canonical text of a value the server sent in text format.
fn from_text(kind: Kind, text: &str) -> String {
    match kind {
        Kind::Int | Kind::Num | Kind::Uuid => text.to_string(),
        Kind::F32 => f64::from(text.parse::<f32>().expect("float4 text")).to_string(),
        Kind::F64 => text.parse::<f64>().expect("float8 text").to_string(),
        Kind::Str => hex(text.as_bytes()),
        Kind::Bytes => text
            .strip_prefix("\\x")
            .expect("bytea hex text")
            .to_ascii_uppercase(),
        Kind::Date => text.to_string(),
        Kind::DateTime => {
            // timestamptz text ends with the offset of the session time zone (UTC here).
            let text = text.strip_suffix("+00").unwrap_or(text);
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                .expect("timestamp text")
                .format("%Y-%m-%d %H:%M:%S%.6f")
                .to_string()
        }
        Kind::Time | Kind::Interval => {
            let (sign, rest) = match text.strip_prefix('-') {
                Some(rest) => (-1, rest),
                None => (1, text),
            };
            let parts: Vec<&str> = rest.split(':').collect();
            assert_eq!(parts.len(), 3, "time text {text}");
            let hours: i64 = parts[0].parse().expect("hours");
            let minutes: i64 = parts[1].parse().expect("minutes");
            let (secs, frac) = parts[2].split_once('.').unwrap_or((parts[2], ""));
            let secs: i64 = secs.parse().expect("seconds");
            let frac: i64 = format!("{frac:0<6}").parse().expect("fraction");
            duration_text(sign * (((hours * 60 + minutes) * 60 + secs) * 1_000_000 + frac))
        }
    }
}

/// MariaDB's canonical value (doubles re-printed by Rust, so both sides print alike).
fn from_source(kind: Kind, text: &str) -> String {
    match kind {
        Kind::F32 | Kind::F64 => text.parse::<f64>().expect("double text").to_string(),
        Kind::Int => text.parse::<i128>().expect("integer").to_string(),
        Kind::Time | Kind::Interval => from_text(Kind::Interval, text),
        _ => text.to_string(),
    }
}

/// Compares the server's text and binary results of `select` (columns `columns`, in order) with
/// MariaDB's canonical values of `source`; returns the differences.
async fn compare(
    client: &Client,
    columns: &[(&str, Kind, u32)],
    select: &str,
    source: &str,
) -> Vec<String> {
    let theirs: Vec<Vec<Option<String>>> = Mariadb::shared()
        .query(&format!("SET time_zone = '+00:00'; {source}"))
        .into_iter()
        .map(|row| {
            row.into_iter()
                .zip(columns)
                .map(|(v, (_, kind, _))| v.map(|v| from_source(*kind, &v)))
                .collect()
        })
        .collect();
    let text = text_values(client, select).await;
    let (oids, binary) = binary_values(client, select).await;
    let mut problems = Vec::new();
    if theirs.len() != text.len() || theirs.len() != binary.len() {
        problems.push(format!(
            "row counts: MariaDB {}, text {}, binary {}",
            theirs.len(),
            text.len(),
            binary.len()
        ));
        return problems;
    }
    for (c, (name, kind, oid)) in columns.iter().enumerate() {
        if oids[c] != *oid {
            problems.push(format!("{name}: type OID {}, expected {oid}", oids[c]));
        }
        for r in 0..theirs.len() {
            let expected = &theirs[r][c];
            let as_text = text[r][c].as_deref().map(|t| from_text(*kind, t));
            let as_binary = binary[r][c]
                .as_deref()
                .map(|b| from_binary(*kind, oids[c], b));
            if as_text != *expected {
                problems.push(format!(
                    "{name} row {}: text {:?} ({:?}), MariaDB {expected:?}",
                    r + 1,
                    text[r][c],
                    as_text
                ));
            }
            if as_binary != *expected {
                problems.push(format!(
                    "{name} row {}: binary {as_binary:?}, MariaDB {expected:?}",
                    r + 1
                ));
            }
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_types_round_trip_in_text_and_binary() {
    let config = setup().await;
    let server = Tributary::start(Some(config.path()));
    let client = server.connect("my").await;
    let columns: Vec<(&str, Kind, u32)> = COLUMNS
        .iter()
        .map(|c| (c.name, c.kind, c.oid.oid()))
        .collect();
    let names: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
    let exprs: Vec<String> = COLUMNS.iter().map(source_expr).collect();
    let problems = compare(
        &client,
        &columns,
        &format!(
            "SELECT {} FROM my.mtypes.types ORDER BY id",
            names.join(", ")
        ),
        &format!("SELECT {} FROM mtypes.types ORDER BY id", exprs.join(", ")),
    )
    .await;
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_time_beyond_a_day_reads_as_interval_or_fails_clearly() {
    let config = setup().await;
    let server = Tributary::start(Some(config.path()));
    let client = server.connect("myi").await;
    let problems = compare(
        &client,
        &[("tm", Kind::Interval, Type::INTERVAL.oid())],
        "SELECT tm FROM myi.mtypes.times ORDER BY id",
        "SELECT TIME_FORMAT(tm, '%H:%i:%s.%f') FROM mtypes.times ORDER BY id",
    )
    .await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // With the default time_type, a time outside one day fails the query, naming the column.
    let err = query_text(&client, "SELECT tm FROM my.mtypes.times WHERE id = 1")
        .await
        .expect_err("-838:59:59 is no time of day");
    let message = err
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    assert!(
        message.contains("\"tm\"") && message.contains("time_type"),
        "{message}"
    );
    let rows = query_text(&client, "SELECT tm FROM my.mtypes.times WHERE id = 6")
        .await
        .unwrap();
    assert_eq!(rows.strings(), vec![vec!["00:00:00"]]);
}
