//! The `.slt` files in compat-tests/slt, run with the `sqllogictest` library against the built
//! `tributary` binary under both the simple and the extended query protocol (what
//! `sqllogictest --engine postgres` and `--engine postgres-extended` do; the library instead of
//! `sqllogictest-bin` keeps the build short). Values are compared as PostgreSQL's text output:
//! NULL as `NULL`, the empty string as `(empty)`, booleans as `true`/`false`.
//!
//! `compat-tests/slt/postgres/*.slt` is the PostgreSQL-oracle suite: its expected results are written
//! by PostgreSQL 15 itself (`SLT_REGENERATE=1 cargo test -p compat-tests --test slt
//! postgres_oracle_simple` runs each file against PostgreSQL and rewrites its results; they are never
//! edited by hand), over the tables of `setup.sql`. Tributary must give the same answers through a
//! `postgres` catalog and on copies of the tables in a `lake` catalog, under both protocols. A record
//! Tributary does not answer like PostgreSQL yet is marked `skipif tributary` (or
//! `skipif tributary-lake`, `skipif tributary-pg` for one target), with a comment saying why.

use std::path::PathBuf;

use compat_tests::Tributary;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

struct Db {
    client: Client,
    extended: bool,
}

#[derive(Debug)]
struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Error(format!("{e:?}"))
    }
}

fn text(value: Option<&str>) -> String {
    match value {
        None => "NULL".into(),
        Some("") => "(empty)".into(),
        Some("t") => "true".into(),
        Some("f") => "false".into(),
        Some(s) => s.into(),
    }
}

/// A binary value rendered as PostgreSQL's text output.
struct Text(String);

impl<'a> FromSql<'a> for Text {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let s = match *ty {
            Type::BOOL => bool::from_sql(ty, raw)?.to_string(),
            Type::INT2 => i16::from_sql(ty, raw)?.to_string(),
            Type::INT4 => i32::from_sql(ty, raw)?.to_string(),
            Type::INT8 => i64::from_sql(ty, raw)?.to_string(),
            Type::OID => u32::from_sql(ty, raw)?.to_string(),
            Type::FLOAT4 => f32::from_sql(ty, raw)?.to_string(),
            Type::FLOAT8 => f64::from_sql(ty, raw)?.to_string(),
            Type::DATE => chrono::NaiveDate::from_sql(ty, raw)?.to_string(),
            Type::TIMESTAMP => chrono::NaiveDateTime::from_sql(ty, raw)?.to_string(),
            // As PostgreSQL shows it in the suite's zone (UTC).
            Type::TIMESTAMPTZ => {
                let at = chrono::DateTime::<chrono::Utc>::from_sql(ty, raw)?;
                format!("{}+00", at.naive_utc())
            }
            Type::NUMERIC => numeric(raw),
            _ => String::from_utf8_lossy(raw).into_owned(),
        };
        Ok(Text(s))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// PostgreSQL's binary numeric (ndigits, weight, sign, dscale, base-10000 digits) as text.
fn numeric(raw: &[u8]) -> String {
    let word = |i: usize| i16::from_be_bytes([raw[2 * i], raw[2 * i + 1]]);
    let (ndigits, weight, sign, dscale) = (word(0) as usize, word(1), word(2) as u16, word(3));
    if sign == 0xC000 {
        return "NaN".into();
    }
    let digits: Vec<i16> = (0..ndigits).map(|i| word(4 + i)).collect();
    let mut int = String::new();
    for w in 0..=weight.max(0) {
        let d = if w <= weight {
            digits.get(w as usize).copied().unwrap_or(0)
        } else {
            0
        };
        if int.is_empty() {
            if weight >= 0 {
                int = d.to_string();
            }
        } else {
            int.push_str(&format!("{d:04}"));
        }
    }
    if int.is_empty() {
        int = "0".into();
    }
    let mut frac = String::new();
    let mut i = weight + 1;
    while (frac.len() as i16) < dscale {
        let d = if i < 0 {
            0
        } else {
            digits.get(i as usize).copied().unwrap_or(0)
        };
        frac.push_str(&format!("{d:04}"));
        i += 1;
    }
    frac.truncate(dscale.max(0) as usize);
    let sign = if sign == 0x4000 { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

#[async_trait::async_trait]
impl AsyncDB for Db {
    type Error = Error;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Error> {
        if self.extended {
            let statement = self.client.prepare(sql).await?;
            if statement.columns().is_empty() {
                let n = self.client.execute(&statement, &[]).await?;
                return Ok(DBOutput::StatementComplete(n));
            }
            let rows = self.client.query(&statement, &[]).await?;
            let types = vec![DefaultColumnType::Any; statement.columns().len()];
            let rows = rows
                .iter()
                .map(|row| {
                    (0..row.len())
                        .map(|i| text(row.get::<_, Option<Text>>(i).as_ref().map(|t| t.0.as_str())))
                        .collect()
                })
                .collect();
            return Ok(DBOutput::Rows { types, rows });
        }
        let messages = self.client.simple_query(sql).await?;
        let mut rows = Vec::new();
        let mut columns = None;
        let mut count = 0;
        for message in messages {
            match message {
                SimpleQueryMessage::RowDescription(desc) => columns = Some(desc.len()),
                SimpleQueryMessage::Row(row) => {
                    columns = Some(row.len());
                    rows.push((0..row.len()).map(|i| text(row.get(i))).collect());
                }
                SimpleQueryMessage::CommandComplete(n) => count = n,
                _ => {}
            }
        }
        Ok(match columns {
            Some(n) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; n],
                rows,
            },
            None => DBOutput::StatementComplete(count),
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        if self.extended {
            "postgres-extended"
        } else {
            "postgres"
        }
    }
}

/// The `.slt` files directly in `compat-tests/{dir}`, in name order (at least one).
fn slt_files(dir: &str) -> Vec<PathBuf> {
    let dir = compat_tests::workspace_root()
        .join("compat-tests")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    files
}

/// A runner whose every connection goes to `config` (with `SET search_path TO {schema}` when
/// given) over the simple or the extended protocol, checking no column types.
fn runner(
    config: tokio_postgres::Config,
    extended: bool,
    schema: Option<&'static str>,
) -> Runner<Db, impl sqllogictest::MakeConnection<Conn = Db>> {
    let mut runner = Runner::new(move || {
        let config = config.clone();
        async move {
            let (client, connection) = config.connect(NoTls).await?;
            tokio::spawn(connection);
            if let Some(schema) = schema {
                client
                    .batch_execute(&format!("SET search_path TO {schema}"))
                    .await?;
            }
            Ok(Db { client, extended })
        }
    });
    runner.with_column_validator(|_, _| true);
    runner
}

async fn run_all(extended: bool) {
    let tributary = Tributary::start(None);
    let config = tributary.config("tpch");
    for file in slt_files("slt") {
        let mut runner = runner(config.clone(), extended, None);
        if let Err(e) = runner.run_file_async(&file).await {
            panic!(
                "{} ({}):\n{e}\nserver log:\n{}",
                file.display(),
                if extended { "extended" } else { "simple" },
                compat_tests::tail(&tributary.log(), 20)
            );
        }
    }
}

/// Runs the PostgreSQL-oracle suite against Tributary's `postgres` catalog and a `lake` copy; with
/// `SLT_REGENERATE` set, rewrites the files' results from PostgreSQL instead.
async fn postgres_oracle(extended: bool) {
    let pg = compat_tests::Postgres::shared();
    // One database per protocol: the two tests run at once and each loads the tables.
    let database = if extended {
        "slt_oracle_extended"
    } else {
        "slt_oracle_simple"
    };
    pg.create_database(database).await;
    let setup = std::fs::read_to_string(
        compat_tests::workspace_root().join("compat-tests/slt/postgres/setup.sql"),
    )
    .unwrap();
    pg.connect(database)
        .await
        .batch_execute(&setup)
        .await
        .unwrap();
    if std::env::var_os("SLT_REGENERATE").is_some() {
        if extended {
            return;
        }
        for file in slt_files("slt/postgres") {
            runner(pg.config(database), false, None)
                .update_test_file(
                    &file,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    |_, _| true,
                )
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        }
        return;
    }
    let lake = compat_tests::TempDir::new("slt-oracle-lake");
    let config = compat_tests::ConfigDir::new()
        .catalog("pg", &pg.catalog_toml(database, ""))
        .catalog("lk", &compat_tests::lake_catalog_toml(lake.path()));
    let tributary = Tributary::start(Some(config.path()));
    tributary
        .connect("lk")
        .await
        .batch_execute(
            "CREATE SCHEMA lk.s; \
             CREATE TABLE lk.s.t1 AS SELECT * FROM pg.public.t1; \
             CREATE TABLE lk.s.t2 AS SELECT * FROM pg.public.t2",
        )
        .await
        .unwrap();
    let mut failures = Vec::new();
    for (catalog, schema, label) in [
        ("pg", "public", "tributary-pg"),
        ("lk", "s", "tributary-lake"),
    ] {
        for file in slt_files("slt/postgres") {
            let mut runner = runner(tributary.config(catalog), extended, Some(schema));
            runner.add_label("tributary");
            runner.add_label(label);
            // Every record, so one run reports every difference.
            let records = sqllogictest::parse_file(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            for record in records {
                if let Err(e) = runner.run_async(record).await {
                    failures.push(format!("on catalog {catalog}: {e}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} records differ from PostgreSQL ({} protocol):\n{}\nserver log:\n{}",
        failures.len(),
        if extended { "extended" } else { "simple" },
        failures.join("\n"),
        compat_tests::tail(&tributary.log(), 20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_oracle_simple() {
    postgres_oracle(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_oracle_extended() {
    postgres_oracle(true).await;
}

#[tokio::test]
async fn slt_simple_protocol() {
    run_all(false).await;
}

#[tokio::test]
async fn slt_extended_protocol() {
    run_all(true).await;
}
