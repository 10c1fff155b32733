//! Running one TPC-H query on PostgreSQL and on Tributary and comparing the answers: shared by the
//! TPC-H tests over the built-in `tpch` catalog and over `postgres` / `mysql` catalogs.
//!
//! A test file names its PostgreSQL database, says how to get its server, and lets
//! [`tpch_query_tests!`](crate::tpch_query_tests) write one test per query.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::Client;

use crate::results::{self, TextRows};
use crate::{Postgres, Tributary, tpch};

/// Per-query limit on each side (debug build of the server).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(180);

/// The schema the TPC-H copies are loaded into, named like the server's `tpch.tiny`.
pub const SCHEMA: &str = "tiny";

/// The scale factor of the TPC-H copies (that of `tpch.tiny`).
pub const SCALE_FACTOR: f64 = 0.01;

/// One test per TPC-H query, `q01` .. `q22`, each calling `$check("qNN").await` (an
/// `async fn(&str)` of the test file) on a two-thread tokio runtime.
#[macro_export]
macro_rules! tpch_query_tests {
    ($check:ident) => {
        $crate::tpch_query_tests!(
            $check; q01, q02, q03, q04, q05, q06, q07, q08, q09, q10, q11, q12, q13, q14, q15,
            q16, q17, q18, q19, q20, q21, q22
        );
    };
    ($check:ident; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $check(stringify!($name)).await;
            }
        )*
    };
}

/// The shared PostgreSQL with TPC-H [`SCALE_FACTOR`] loaded into schema [`SCHEMA`] of `database`
/// (created and loaded once per test process and database).
pub async fn postgres_loaded(database: &str) -> &'static Postgres {
    static LOADED: Mutex<BTreeMap<String, Arc<tokio::sync::OnceCell<()>>>> =
        Mutex::new(BTreeMap::new());
    let once = LOADED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(database.to_string())
        .or_default()
        .clone();
    let pg = Postgres::shared();
    once.get_or_init(|| async {
        pg.create_database(database).await;
        let client = pg.connect(database).await;
        tpch::load_into_postgres(&client, SCHEMA, SCALE_FACTOR).await;
    })
    .await;
    pg
}

/// A connection to the loaded `database` (see [`postgres_loaded`]) with `search_path` set to
/// [`SCHEMA`].
pub async fn postgres_client(database: &str) -> Client {
    let client = postgres_loaded(database).await.connect(database).await;
    client
        .batch_execute(&format!("SET search_path TO {SCHEMA}"))
        .await
        .expect("SET search_path on PostgreSQL");
    client
}

/// Runs query `name` on the loaded PostgreSQL `database` and on `server` (database `catalog`,
/// schema [`SCHEMA`]) and panics as [`compare_with_postgres`] does.
pub async fn check_query(name: &str, database: &str, server: &Tributary, catalog: &str) {
    let pg_client = postgres_client(database).await;
    compare_with_postgres(name, &pg_client, server, catalog, SCHEMA).await;
}

/// The harness itself: the loaded `database` holds TPC-H's 60175 lineitem rows and all 22
/// queries return rows on PostgreSQL (independent of the server, so a harness or data problem is
/// told apart from a server bug).
pub async fn assert_postgres_answers_all_queries(database: &str) {
    let client = postgres_client(database).await;
    let count = results::query_text(&client, "select count(*) from lineitem")
        .await
        .expect("count lineitem");
    assert_eq!(count.rows, vec![vec![Some("60175".to_string())]]);
    for i in 1..=22 {
        let name = format!("q{i:02}");
        let sql = query_text(&name);
        let rows = run_side("PostgreSQL", &client, &sql)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!rows.rows.is_empty(), "{name}: no rows from PostgreSQL");
    }
}

/// The text of query `name` (`q01` .. `q22`) from `compat-tests/queries`, without its final `;`.
pub fn query_text(name: &str) -> String {
    let path = crate::workspace_root()
        .join("compat-tests/queries")
        .join(format!("{name}.sql"));
    let sql =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    sql.trim().trim_end_matches(';').to_string()
}

/// Runs `sql` with the simple protocol within [`QUERY_TIMEOUT`]; errors say which side (`what`) failed
/// and carry the SQLSTATE.
pub async fn run_side(what: &str, client: &Client, sql: &str) -> Result<TextRows, String> {
    match tokio::time::timeout(QUERY_TIMEOUT, results::query_text(client, sql)).await {
        Err(_) => Err(format!("{what}: no answer within {QUERY_TIMEOUT:?}")),
        Ok(Err(e)) => Err(format!("{what}: {e}{}", db_error_detail(&e))),
        Ok(Ok(rows)) => Ok(rows),
    }
}

/// ` [SQLSTATE code] message` of a server error, or the client error's debug form.
pub fn db_error_detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(" [SQLSTATE {}] {}", db.code().code(), db.message()),
        None => format!(" ({e:?})"),
    }
}

/// Runs query `name` on PostgreSQL (`pg`, its search_path already set to the loaded schema) and on
/// `server` (database `catalog`, `SET search_path TO schema`), and panics with the differences if the
/// answers differ under [`results::compare`]'s rules (order only where the query orders) or if an
/// aliased column is named differently.
pub async fn compare_with_postgres(
    name: &str,
    pg: &Client,
    server: &Tributary,
    catalog: &str,
    schema: &str,
) {
    let sql = query_text(name);
    let sql = sql.as_str();
    let kinds = results::kinds_from_postgres(pg, sql)
        .await
        .unwrap_or_else(|e| panic!("{name}: PostgreSQL could not prepare the query: {e}"));
    let expected = run_side("PostgreSQL", pg, sql)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        !expected.rows.is_empty(),
        "{name}: PostgreSQL returned no rows; the loaded data is wrong"
    );

    let client = server.connect(catalog).await;
    if let Err(e) = client
        .batch_execute(&format!("SET search_path TO {schema}"))
        .await
    {
        panic!(
            "{name}: tributary rejected `SET search_path TO {schema}`: {e}{}",
            db_error_detail(&e)
        );
    }
    let actual = run_side("tributary", &client, sql)
        .await
        .unwrap_or_else(|e| {
            // The server is shared by all queries and never dropped, so quote its log here.
            panic!(
                "{name}: {e}\nquery:\n{sql}\ntributary log tail:\n{}",
                crate::tail(&server.log(), 30)
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
