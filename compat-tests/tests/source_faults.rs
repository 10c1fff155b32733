//! Sources under fault, through the built server: a PostgreSQL or MariaDB source whose connection is
//! dropped mid-scan (the source terminates it), that answers too slowly for the session's
//! `statement_timeout`, or (PostgreSQL) that refuses new connections, fails that query with the
//! right SQLSTATE (08006 / 57014 / 08001) within seconds, never a hang; the slow query is canceled at
//! the source too, and the next query on the same session is answered (the pool recovers).

use std::time::{Duration, Instant};

use compat_tests::results::query_text;
use compat_tests::{ConfigDir, Mariadb, Postgres, Tributary};
use tokio_postgres::Client;

/// Rows of the big tables: enough that a scan streams for a while.
const BIG_ROWS: i64 = 3_000_000;

/// A query that streams the whole big table of `catalog` into a federated join (nothing of it can be
/// pushed whole, so the scan runs as long as the rows flow).
fn streaming_query(table: &str) -> String {
    format!(
        "select count(*), max(b.v) from {table} b join tpch.tiny.region r \
         on b.k % 5 = r.r_regionkey"
    )
}

/// The error of `sql` on `client`, with its SQLSTATE; panics if it succeeds or takes over 30 s.
async fn fails_with(client: &Client, sql: &str) -> (String, String) {
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(30), client.simple_query(sql))
        .await
        .unwrap_or_else(|_| panic!("{sql}: no answer within 30 s"));
    let err = result.expect_err(sql);
    assert!(started.elapsed() < Duration::from_secs(30));
    let code = err
        .code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| panic!("{sql}: no SQLSTATE: {err:?}"));
    let message = err
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    (code, message)
}

/// Runs `fault` once `is_running` sees the streaming scan at the source, while the query runs.
async fn during_scan<F, R, Fut, Fut2>(
    client: &Client,
    sql: &str,
    is_running: R,
    fault: F,
) -> (String, String)
where
    R: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
    F: FnOnce() -> Fut2,
    Fut2: std::future::Future<Output = ()>,
{
    let query = fails_with(client, sql);
    let injector = async {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !is_running().await {
            assert!(
                Instant::now() < deadline,
                "the scan never showed at the source"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        fault().await;
    };
    let (answer, ()) = tokio::join!(query, injector);
    answer
}

/// `sql` under `statement_timeout = 1s` fails with 57014; the session's timeout is reset after.
async fn times_out(client: &Client, sql: &str) {
    client
        .batch_execute("set statement_timeout = '1s'")
        .await
        .unwrap();
    let (code, message) = fails_with(client, sql).await;
    assert_eq!(code, "57014", "{message}");
    client
        .batch_execute("reset statement_timeout")
        .await
        .unwrap();
}

async fn assert_answers(client: &Client, sql: &str, expected: &str) {
    let rows = query_text(client, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql} after the fault: {e}"));
    assert_eq!(rows.strings()[0][0], expected, "{sql}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_source_dropped_slow_and_refusing() {
    let pg = Postgres::shared();
    pg.create_database("faults").await;
    let admin = pg.connect("faults").await;
    admin
        .batch_execute(&format!(
            "drop table if exists big; \
             create table big as select i as k, md5(i::text) as v from generate_series(1, {BIG_ROWS}) i; \
             create or replace view slow as select 1 as id, pg_sleep(60)::text as s;"
        ))
        .await
        .unwrap();
    let config = ConfigDir::new().catalog(
        "pgf",
        &format!(
            "connector = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"faults\"\n\
             user = \"postgres\"\nconnect_timeout_secs = 3\npool_timeout_secs = 5\n",
            pg.port()
        ),
    );
    let server = Tributary::start(Some(config.path()));
    let client = server.connect("pgf").await;
    let source_sessions = |filter: &'static str| {
        let admin = &admin;
        async move {
            let sql = format!(
                "select count(*) from pg_stat_activity where datname = 'faults' \
                 and application_name = 'tributary' and {filter}"
            );
            admin.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0)
        }
    };

    // Dropped mid-scan: the source terminates the scanning backend.
    let (code, message) = during_scan(
        &client,
        &streaming_query("pgf.public.big"),
        || async { source_sessions("query like '%big%' and state = 'active'").await > 0 },
        || async {
            admin
                .batch_execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity \
                     where datname = 'faults' and application_name = 'tributary' \
                       and query like '%big%'",
                )
                .await
                .unwrap();
        },
    )
    .await;
    assert_eq!(code, "08006", "{message}");
    assert!(message.contains("pgf"), "{message}");
    assert_answers(
        &client,
        "select count(*) from pgf.public.big",
        &BIG_ROWS.to_string(),
    )
    .await;

    // Too slow for statement_timeout: 57014 here, and the source's query is canceled too.
    times_out(&client, "select * from pgf.public.slow").await;
    // Polls for up to 10 s until no session of the source matches `filter`.
    let gone = |filter: &'static str, what: &'static str| {
        let source_sessions = &source_sessions;
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            while source_sessions(filter).await > 0 {
                assert!(Instant::now() < deadline, "{what}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    gone(
        "query like '%slow%' and state = 'active'",
        "the slow query still runs at the source",
    )
    .await;
    assert_answers(
        &client,
        "select count(*) from pgf.public.big where k <= 10",
        "10",
    )
    .await;

    // Refusing new connections: the pooled ones are terminated and the database closed to new ones
    // (from a session on another database: a database cannot close itself).
    let other = pg.connect("postgres").await;
    other
        .batch_execute(
            "alter database faults allow_connections false; \
             select pg_terminate_backend(pid) from pg_stat_activity \
             where datname = 'faults' and application_name = 'tributary'",
        )
        .await
        .unwrap();
    // pg_terminate_backend only signals: wait until the pooled backends are gone (and their
    // sockets' end seen), or the query may still reach one as it exits (57P01, 08006).
    gone("true", "terminated backends still at the source").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, message) = fails_with(&client, "select count(*) from pgf.public.big").await;
    other
        .batch_execute("alter database faults allow_connections true")
        .await
        .unwrap();
    assert_eq!(code, "08001", "{message}");
    assert!(message.contains("pgf"), "{message}");
    assert_answers(
        &client,
        "select count(*) from pgf.public.big where k <= 10",
        "10",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_source_dropped_and_slow() {
    let my = Mariadb::shared();
    my.execute(&format!(
        "CREATE DATABASE IF NOT EXISTS mfaults;
         CREATE OR REPLACE TABLE mfaults.big (k bigint, v varchar(40));
         INSERT INTO mfaults.big SELECT seq, md5(seq) FROM mfaults.seq_1_to_{BIG_ROWS};
         CREATE OR REPLACE VIEW mfaults.slow AS SELECT 1 AS id, SLEEP(60) AS s;"
    ));
    let config = ConfigDir::new().catalog(
        "myf",
        &my.catalog_toml(
            "database = \"mfaults\"\nconnect_timeout_secs = 3\npool_timeout_secs = 5\n",
        ),
    );
    let server = Tributary::start(Some(config.path()));
    let client = server.connect("myf").await;
    let running = |needle: &'static str| {
        let rows = my.query(&format!(
            "SELECT count(*) FROM information_schema.processlist \
             WHERE db = 'mfaults' AND info LIKE '%{needle}%' AND info NOT LIKE '%processlist%'"
        ));
        rows[0][0].as_deref().unwrap_or("0") != "0"
    };

    let (code, message) = during_scan(
        &client,
        &streaming_query("myf.mfaults.big"),
        || async { running("big") },
        || async {
            let ids = my.query(
                "SELECT id FROM information_schema.processlist \
                 WHERE db = 'mfaults' AND info LIKE '%big%' AND info NOT LIKE '%processlist%'",
            );
            for id in ids.into_iter().filter_map(|row| row[0].clone()) {
                my.execute(&format!("KILL CONNECTION {id}"));
            }
        },
    )
    .await;
    assert_eq!(code, "08006", "{message}");
    assert!(message.contains("myf"), "{message}");
    assert_answers(
        &client,
        "select count(*) from myf.mfaults.big",
        &BIG_ROWS.to_string(),
    )
    .await;

    times_out(&client, "select * from myf.mfaults.slow").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while running("slow") {
        assert!(
            Instant::now() < deadline,
            "the slow query still runs at MariaDB"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_answers(
        &client,
        "select count(*) from myf.mfaults.big where k <= 10",
        "10",
    )
    .await;
}
