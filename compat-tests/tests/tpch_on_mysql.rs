//! The 22 TPC-H queries (compat-tests/queries) through a `mysql` catalog: TPC-H scale 0.01 is
//! loaded into a real MariaDB (same generator, same specification types) and into PostgreSQL;
//! MariaDB is mounted in the built server as catalog `mysql`, and every query run through that
//! catalog (so the planner pushes aggregates, joins and top-N into MariaDB where that keeps their
//! meaning) must give PostgreSQL's answer (rules in `compat_tests::results`).
//!
//! One test per query. PostgreSQL and MariaDB are started and loaded once per test process; so is
//! the Tributary server.

use std::sync::OnceLock;
use std::time::Duration;

use compat_tests::results::{self, TextRows};
use compat_tests::{ConfigDir, Mariadb, Postgres, Tributary, tpch};

/// Database of the PostgreSQL copy (schema [`SCHEMA`]); MariaDB's database is [`SCHEMA`], so the
/// server sees the tables as `mysql.tiny.*`.
const PG_DATABASE: &str = "tpch_for_mysql";
const SCHEMA: &str = "tiny";
const SCALE_FACTOR: f64 = 0.01;
/// Per-query limit on each side (debug build of the server).
const QUERY_TIMEOUT: Duration = Duration::from_secs(180);

async fn postgres_loaded() -> &'static Postgres {
    static LOADED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let pg = Postgres::shared();
    LOADED
        .get_or_init(|| async {
            pg.create_database(PG_DATABASE).await;
            let client = pg.connect(PG_DATABASE).await;
            tpch::load_into_postgres(&client, SCHEMA, SCALE_FACTOR).await;
        })
        .await;
    pg
}

async fn mariadb_loaded() -> &'static Mariadb {
    static LOADED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let my = Mariadb::shared();
    LOADED
        .get_or_init(|| async {
            tokio::task::spawn_blocking(|| {
                tpch::load_into_mariadb(Mariadb::shared(), SCHEMA, SCALE_FACTOR)
            })
            .await
            .expect("load TPC-H into MariaDB");
        })
        .await;
    my
}

/// The server with the loaded MariaDB mounted as catalog `mysql` (call after loading).
fn tributary(my: &Mariadb) -> &'static Tributary {
    static SERVER: OnceLock<(ConfigDir, Tributary)> = OnceLock::new();
    let (_, server) = SERVER.get_or_init(|| {
        let config = ConfigDir::new().catalog(
            "mysql",
            &my.catalog_toml(&format!("database = \"{SCHEMA}\"\n")),
        );
        let server = Tributary::start(Some(config.path()));
        (config, server)
    });
    server
}

fn query_text(name: &str) -> String {
    let path = compat_tests::workspace_root()
        .join("compat-tests/queries")
        .join(format!("{name}.sql"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

async fn run_side(
    what: &str,
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<TextRows, String> {
    match tokio::time::timeout(QUERY_TIMEOUT, results::query_text(client, sql)).await {
        Err(_) => Err(format!("{what}: no answer within {QUERY_TIMEOUT:?}")),
        Ok(Err(e)) => Err(format!("{what}: {e}{}", db_error_detail(&e))),
        Ok(Ok(rows)) => Ok(rows),
    }
}

fn db_error_detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(" [SQLSTATE {}] {}", db.code().code(), db.message()),
        None => format!(" ({e:?})"),
    }
}

async fn check_query(name: &str) {
    let sql = query_text(name);
    let sql = sql.trim().trim_end_matches(';');

    let pg = postgres_loaded().await;
    let pg_client = pg.connect(PG_DATABASE).await;
    pg_client
        .batch_execute(&format!("SET search_path TO {SCHEMA}"))
        .await
        .expect("SET search_path on PostgreSQL");
    let kinds = results::kinds_from_postgres(&pg_client, sql)
        .await
        .unwrap_or_else(|e| panic!("{name}: PostgreSQL could not prepare the query: {e}"));
    let expected = run_side("PostgreSQL", &pg_client, sql)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        !expected.rows.is_empty(),
        "{name}: PostgreSQL returned no rows; the loaded data is wrong"
    );

    let server = tributary(mariadb_loaded().await);
    let client = server.connect("mysql").await;
    if let Err(e) = client
        .batch_execute(&format!("SET search_path TO {SCHEMA}"))
        .await
    {
        panic!(
            "{name}: tributary rejected `SET search_path TO {SCHEMA}`: {e}{}",
            db_error_detail(&e)
        );
    }
    let actual = run_side("tributary", &client, sql)
        .await
        .unwrap_or_else(|e| {
            // The server is shared by all queries and never dropped, so quote its log here.
            panic!(
                "{name}: {e}\nquery:\n{sql}\ntributary log tail:\n{}",
                compat_tests::tail(&server.log(), 30)
            )
        });

    let ordered = results::has_top_level_order_by(sql);
    if let Err(diff) = results::compare(&expected, &actual, &kinds, ordered, 10) {
        panic!("{name}: tributary's result differs from PostgreSQL's\n{diff}\nquery:\n{sql}");
    }
    // Names of aliased columns (`... as name`) must match too; unaliased expressions are named
    // differently by every engine and are not checked.
    let lower = sql.to_ascii_lowercase();
    for (i, expected_name) in expected.columns.iter().enumerate() {
        if lower.contains(&format!(" as {expected_name}")) {
            assert_eq!(
                actual.columns.get(i),
                Some(expected_name),
                "{name}: column {i} name differs (PostgreSQL: {:?}, tributary: {:?})",
                expected.columns,
                actual.columns
            );
        }
    }
}

macro_rules! tpch_queries {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                check_query(stringify!($name)).await;
            }
        )*
    };
}

tpch_queries!(
    q01, q02, q03, q04, q05, q06, q07, q08, q09, q10, q11, q12, q13, q14, q15, q16, q17, q18, q19,
    q20, q21, q22,
);

/// The loaded MariaDB copy has the rows PostgreSQL's has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_holds_tpch_tiny() {
    let my = mariadb_loaded().await;
    let counts = my.query(&format!(
        "SELECT (SELECT count(*) FROM {SCHEMA}.lineitem), (SELECT count(*) FROM {SCHEMA}.orders), \
         (SELECT sum(l_extendedprice) FROM {SCHEMA}.lineitem)"
    ));
    let pg = postgres_loaded().await;
    let client = pg.connect(PG_DATABASE).await;
    let theirs = results::query_text(
        &client,
        &format!(
            "select (select count(*) from {SCHEMA}.lineitem), (select count(*) from {SCHEMA}.orders), \
             (select sum(l_extendedprice) from {SCHEMA}.lineitem)"
        ),
    )
    .await
    .expect("count on PostgreSQL");
    assert_eq!(counts, theirs.rows);
}

/// The single-source parts really go to MariaDB: Q6's whole aggregate is one remote statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q06_aggregate_is_pushed() {
    let my = mariadb_loaded().await;
    let server = tributary(my);
    let client = server.connect("mysql").await;
    client
        .batch_execute(&format!("SET search_path TO {SCHEMA}"))
        .await
        .expect("SET search_path");
    let sql = query_text("q06");
    let plan = results::query_text(
        &client,
        &format!("explain {}", sql.trim().trim_end_matches(';')),
    )
    .await
    .expect("explain q06")
    .rows
    .into_iter()
    .map(|r| r[0].clone().unwrap_or_default())
    .collect::<Vec<_>>()
    .join("\n");
    let remote: Vec<&str> = plan.lines().filter(|l| l.contains("MySqlScan")).collect();
    assert_eq!(remote.len(), 1, "{plan}");
    assert!(
        remote[0].contains("sum(") && remote[0].contains("splits=1"),
        "{plan}"
    );
    // TPCH_MYSQL_PLANS=1 prints the remote statements of all 22 queries (with --nocapture).
    if std::env::var_os("TPCH_MYSQL_PLANS").is_some() {
        for i in 1..=22 {
            let name = format!("q{i:02}");
            let sql = query_text(&name);
            let plan = results::query_text(
                &client,
                &format!("explain {}", sql.trim().trim_end_matches(';')),
            )
            .await
            .expect("explain");
            for row in plan.rows {
                let line = row[0].clone().unwrap_or_default();
                if line.contains("MySqlScan") {
                    eprintln!("{name}: {}", line.trim());
                }
            }
        }
    }
}
