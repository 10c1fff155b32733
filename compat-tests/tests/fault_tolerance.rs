//! Fault-tolerant execution (Trino's `retry-policy`), from a client:
//!
//! - `SET retry_policy` / `SHOW retry_policy`: the values Trino accepts, `22023` for others, and
//!   `TASK` refused without a spool.
//! - `QUERY`: a task failing on purpose (`inject_failure`) on the first attempt is retried and the
//!   answer is exact, `system.runtime.queries` counting 2 attempts; a task that always fails ends the
//!   query after `query_retry_attempts` retries with its SQLSTATE; the same failure under `NONE` fails
//!   at once; a user error (division by zero) is never retried.
//! - `QUERY` on a coordinator + 3 workers: `kill -9` of a worker mid-query, and the answer equals an
//!   undisturbed run's; under `NONE` the same kill fails the query with 58000.

use std::sync::Arc;
use std::time::Duration;

use compat_tests::cluster::{Cluster, wait_running_task};
use compat_tests::results::{self, TextRows};
use compat_tests::{ConfigDir, Tributary};
use tokio_postgres::Client;

/// Retries after 50 ms (Trino's default is 10 s), so the tests spend their time on queries.
const FAST_RETRIES: &str = "[query]\nretry_initial_delay_ms = 50\nretry_max_delay_ms = 200\n";

/// A multi-stage query (scan, join, partial and final aggregation, sort) over `tpch.tiny`.
const JOIN_QUERY: &str = "SELECT o_orderpriority, count(*), sum(l_quantity) \
     FROM tpch.tiny.lineitem JOIN tpch.tiny.orders ON l_orderkey = o_orderkey \
     GROUP BY o_orderpriority ORDER BY 1";

/// A long multi-stage query at scale 1: seconds of work on every worker in a debug build.
const LONG_QUERY: &str = "SELECT l_suppkey, count(*), sum(l_extendedprice * (1 - l_discount)) \
     FROM tpch.sf1.lineitem GROUP BY l_suppkey ORDER BY 3 DESC, 1 LIMIT 5";

async fn run(client: &Client, sql: &str) -> TextRows {
    results::query_text(client, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
}

async fn exec(client: &Client, sql: &str) {
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .unwrap_or_else(|| panic!("not a server error: {e:?}"))
        .code()
        .code()
        .to_string()
}

/// `(retry_policy, attempts, state)` of the last query whose text is `sql`.
async fn query_record(client: &Client, sql: &str) -> (String, i64, String) {
    let row = client
        .query_one(
            "SELECT retry_policy, attempts, state FROM system.runtime.queries \
             WHERE query = $1 ORDER BY created DESC LIMIT 1",
            &[&sql],
        )
        .await
        .expect("system.runtime.queries");
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_policy_is_a_session_setting() {
    let server = Tributary::start(Some(ConfigDir::new().config(FAST_RETRIES).path()));
    let c = server.connect("tpch").await;
    assert_eq!(run(&c, "SHOW retry_policy").await.strings(), [["NONE"]]);
    exec(&c, "SET retry_policy = 'query'").await;
    assert_eq!(run(&c, "SHOW retry_policy").await.strings(), [["QUERY"]]);
    let err = c
        .batch_execute("SET retry_policy = 'always'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "22023");
    let err = c
        .batch_execute("SET retry_policy = 'TASK'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "22023");
    let message = err.as_db_error().unwrap().message();
    assert!(message.contains("base_directories"), "{message}");
    let err = c
        .batch_execute("SET inject_failure = 'x'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "22023");
    exec(&c, "RESET retry_policy").await;
    assert_eq!(run(&c, "SHOW retry_policy").await.strings(), [["NONE"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_retry_reruns_a_failed_query_and_returns_each_row_once() {
    let server = Tributary::start(Some(ConfigDir::new().config(FAST_RETRIES).path()));
    let c = server.connect("tpch").await;
    let expected = run(&c, JOIN_QUERY).await;

    // NONE: the injected failure (retryable, 58000) fails the query at once.
    exec(&c, "SET inject_failure = '1.0'").await;
    let err = results::query_text(&c, JOIN_QUERY).await.unwrap_err();
    assert_eq!(sqlstate(&err), "58000", "{err:?}");

    // QUERY: the first attempt fails, the second answers exactly.
    exec(&c, "SET retry_policy = 'QUERY'").await;
    let got = run(&c, JOIN_QUERY).await;
    assert_eq!(got.strings(), expected.strings());
    assert_eq!(
        query_record(&c, JOIN_QUERY).await,
        ("QUERY".into(), 2, "FINISHED".into())
    );

    // A task that always fails: 1 + query_retry_attempts (4) attempts, then its error.
    exec(&c, "SET inject_failure = '1.0:all'").await;
    let err = results::query_text(&c, JOIN_QUERY).await.unwrap_err();
    assert_eq!(sqlstate(&err), "58000", "{err:?}");
    assert_eq!(
        query_record(&c, JOIN_QUERY).await,
        ("QUERY".into(), 5, "FAILED".into())
    );

    // A user error is not retried.
    exec(&c, "RESET inject_failure").await;
    let division = "SELECT count(*) / (count(*) - count(*)) FROM tpch.tiny.nation";
    let err = results::query_text(&c, division).await.unwrap_err();
    assert_eq!(sqlstate(&err), "22012", "{err:?}");
    assert_eq!(
        query_record(&c, division).await,
        ("QUERY".into(), 1, "FAILED".into())
    );
}

/// A cluster of three workers with fast retries (a worker is declared dead after 3 s of silence).
async fn three_workers() -> Cluster {
    let config = ConfigDir::new().config(&format!(
        "[node]\nheartbeat_interval_ms = 200\nheartbeat_timeout_ms = 3000\n\
         [engine]\ntask_threads = 1\n{FAST_RETRIES}"
    ));
    Cluster::start_with(config, &["w1", "w2", "w3"]).await
}

/// Runs [`LONG_QUERY`] on `cluster` under `policy`, killing worker `w2` once it runs a task.
async fn long_query_with_a_kill(
    cluster: &Cluster,
    policy: &str,
) -> Result<TextRows, tokio_postgres::Error> {
    let c = Arc::new(cluster.coordinator.connect("tpch").await);
    exec(&c, &format!("SET retry_policy = '{policy}'")).await;
    let long = {
        let c = c.clone();
        tokio::spawn(async move { results::query_text(&c, LONG_QUERY).await })
    };
    let watcher = cluster.coordinator.connect("tpch").await;
    wait_running_task(&watcher, "w2").await;
    cluster.kill_worker("w2");
    tokio::time::timeout(Duration::from_secs(300), long)
        .await
        .expect("the query must end once a worker is gone")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_retry_survives_a_killed_worker() {
    let cluster = three_workers().await;
    let c = cluster.coordinator.connect("tpch").await;
    let expected = run(&c, LONG_QUERY).await;
    let got = long_query_with_a_kill(&cluster, "QUERY")
        .await
        .expect("under QUERY the query survives the loss of a worker");
    assert_eq!(got.strings(), expected.strings());
    let (policy, attempts, state) = query_record(&c, LONG_QUERY).await;
    assert_eq!((policy.as_str(), state.as_str()), ("QUERY", "FINISHED"));
    assert!(attempts >= 2, "the query ran again: {attempts} attempt(s)");
    cluster.wait_node_state("w2", "dead").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_retries_a_killed_worker_fails_the_query_with_58000() {
    let cluster = three_workers().await;
    let err = long_query_with_a_kill(&cluster, "NONE")
        .await
        .expect_err("under NONE a lost worker fails the query");
    assert_eq!(sqlstate(&err), "58000", "{err:?}");
}
