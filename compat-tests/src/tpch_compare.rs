//! Running one TPC-H query on PostgreSQL and on Tributary and comparing the answers: shared by the
//! TPC-H tests over the built-in `tpch` catalog and over `postgres` / `mysql` catalogs.

use std::time::Duration;

use tokio_postgres::Client;

use crate::Tributary;
use crate::results::{self, TextRows};

/// Per-query limit on each side (debug build of the server).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(180);

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
