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
//! - `TASK`: an injected failure re-runs only that task (its attempts in `system.runtime.tasks`); one
//!   that always fails ends the query naming the stage and task after `task_retry_attempts_per_task`
//!   retries; `kill -9` of a worker mid-query with the spool on local disk and on S3 (moto) gives the
//!   undisturbed answer; a GROUP BY far past the per-node memory limit completes under `TASK` and
//!   fails with 53200 under `NONE`; a task out of memory runs again with three times the memory; a coordinator killed mid-query removes its spool data when it
//!   starts again.
//! - A worker frozen mid-query (`kill -STOP`: connections open, no answers) under `TASK`: the coordinator
//!   marks it dead after the heartbeat timeout and its attempts run again elsewhere.
//! - `CREATE TABLE AS` of `tpch.sf1.lineitem` into a lake table under `TASK` with a worker killed
//!   mid-write: exactly 6,001,215 rows, aggregates equal to the source.
//! - After every query, however it ended (finished, failed, canceled), the spool holds no data.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use compat_tests::cluster::{Cluster, wait_running_task};
use compat_tests::results::{self, TextRows};
use compat_tests::{ConfigDir, Moto, TempDir, Tributary, files_under, toml_string};
use tokio_postgres::Client;

/// Retries after 50 ms (Trino's default is 10 s), so the tests spend their time on queries; a
/// `QUERY` result past 1 MiB is spilled.
const FAST_RETRIES: &str =
    "[query]\nretry_initial_delay_ms = 50\nretry_max_delay_ms = 200\nresult_buffer_mb = 1\n";

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

    // The cluster default comes from config.toml; TASK there without a spool is a startup error.
    let query = ConfigDir::new().config("[query]\nretry_policy = \"query\"\n");
    let server = Tributary::start(Some(query.path()));
    let c = server.connect("tpch").await;
    assert_eq!(run(&c, "SHOW retry_policy").await.strings(), [["QUERY"]]);
    let task = ConfigDir::new().config("[query]\nretry_policy = \"TASK\"\n");
    let failure = Tributary::try_start(Some(task.path())).expect_err("startup must fail");
    assert!(
        failure.log.contains("query.retry_policy") && failure.log.contains("base_directories"),
        "{}",
        failure.log
    );
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

    // A result far past result_buffer_mb (spilled while the attempt runs) arrives whole, once.
    let rows = c
        .query("SELECT l_orderkey, l_comment FROM tpch.tiny.lineitem", &[])
        .await
        .expect("a large result under QUERY");
    assert_eq!(rows.len(), 60175);

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

/// A cluster of three workers with fast retries (a worker is declared dead after 3 s of silence);
/// `extra` is added to `config.toml` (the `[exchange]` section).
async fn three_workers(extra: &str) -> Cluster {
    let config = ConfigDir::new().config(&format!(
        "[node]\nheartbeat_interval_ms = 200\nheartbeat_timeout_ms = 3000\n\
         [engine]\ntask_threads = 1\n{FAST_RETRIES}{extra}"
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
    let cluster = three_workers("").await;
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
    let cluster = three_workers("").await;
    let err = long_query_with_a_kill(&cluster, "NONE")
        .await
        .expect_err("under NONE a lost worker fails the query");
    assert_eq!(sqlstate(&err), "58000", "{err:?}");
}

/// `[exchange]` with one base directory on local disk.
fn disk_spool(dir: &Path) -> String {
    format!(
        "[exchange]\nbase_directories = [{}]\n",
        toml_string(&format!("file://{}", dir.display()))
    )
}

/// `[exchange]` with one base directory on the moto S3 server, bucket `bucket`.
fn s3_spool(bucket: &str) -> String {
    let moto = Moto::shared();
    moto.create_bucket(bucket);
    format!(
        "[exchange]\nbase_directories = [\"s3://{bucket}/spool\"]\nendpoint = \"{}\"\n\
         region = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
        moto.endpoint(),
        Moto::REGION,
        Moto::ACCESS_KEY_ID,
        Moto::SECRET_ACCESS_KEY
    )
}

/// Waits (15 s at most) until `files()` is empty: the spool data of ended queries is deleted in
/// the background.
async fn wait_spool_empty<T: std::fmt::Debug>(what: &str, files: impl Fn() -> Vec<T>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = files();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: spool not empty after the queries ended: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `(stage, task, attempt, worker, state)` of every task attempt of the last query whose text is
/// `sql`, in order. Read with a `NONE` session so that the read itself spools nothing.
async fn task_attempts(server: &Tributary, sql: &str) -> Vec<(i64, i64, i64, String, String)> {
    let c = server.connect("tpch").await;
    let rows = c
        .query(
            "SELECT stage, task, attempt, worker, state FROM system.runtime.tasks \
             WHERE query_id = (SELECT query_id FROM system.runtime.queries WHERE query = $1 \
                               ORDER BY created DESC LIMIT 1) \
             ORDER BY stage, task, attempt",
            &[&sql],
        )
        .await
        .expect("system.runtime.tasks");
    rows.iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_retry_reruns_only_the_failed_task() {
    let spool = TempDir::new("spool-task");
    let config = ConfigDir::new().config(&format!("{FAST_RETRIES}{}", disk_spool(spool.path())));
    let server = Tributary::start(Some(config.path()));
    let c = server.connect("tpch").await;
    let expected = run(&c, JOIN_QUERY).await;

    exec(&c, "SET retry_policy = 'TASK'; SET inject_failure = '1.0'").await;
    assert_eq!(run(&c, JOIN_QUERY).await.strings(), expected.strings());
    let attempts = task_attempts(&server, JOIN_QUERY).await;
    let retried: Vec<_> = attempts
        .iter()
        .filter(|(stage, task, ..)| (*stage, *task) == (1, 0))
        .map(|(_, _, attempt, _, state)| (*attempt, state.as_str()))
        .collect();
    assert_eq!(retried, [(0, "FAILED"), (1, "FINISHED")], "{attempts:?}");
    assert!(
        attempts
            .iter()
            .all(|(stage, task, attempt, ..)| (*stage, *task) == (1, 0) || *attempt == 0),
        "only the failed task runs again: {attempts:?}"
    );

    // EXPLAIN ANALYZE shows the attempts and the bytes spooled.
    let analyzed = run(&c, &format!("EXPLAIN ANALYZE {JOIN_QUERY}"))
        .await
        .strings();
    let text: Vec<&str> = analyzed.iter().map(|r| r[0].as_str()).collect();
    let text = text.join("\n");
    assert!(
        text.contains("task 0 attempt 1 on") && text.contains("bytes spooled"),
        "{text}"
    );

    // Always failing: 1 + task_retry_attempts_per_task (4) attempts, then the query fails naming it.
    exec(&c, "SET inject_failure = '1.0:all'").await;
    let err = results::query_text(&c, JOIN_QUERY).await.unwrap_err();
    assert_eq!(sqlstate(&err), "58000", "{err:?}");
    let message = err.as_db_error().unwrap().message();
    assert!(
        message.contains("task 1.0 failed after 5 attempt(s)"),
        "{message}"
    );
    exec(&c, "RESET inject_failure; RESET retry_policy").await;
    wait_spool_empty("disk", || files_under(spool.path())).await;
}

/// With `[log] format = "json"` every log line is a JSON object, and a query's lines carry its
/// session (`pid`, `user`) and its id: here the line of a task retried under TASK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_carry_the_session_and_the_query() {
    let spool = TempDir::new("spool-log");
    let config = ConfigDir::new().config(&format!(
        "[log]\nformat = \"json\"\n{FAST_RETRIES}{}",
        disk_spool(spool.path())
    ));
    let server = Tributary::start(Some(config.path()));
    let c = server.connect("tpch").await;
    exec(&c, "SET retry_policy = 'TASK'; SET inject_failure = '1.0'").await;
    run(&c, JOIN_QUERY).await;
    let query_id: String = c
        .query_one(
            "SELECT query_id FROM system.runtime.queries WHERE query = $1 \
             ORDER BY created DESC LIMIT 1",
            &[&JOIN_QUERY],
        )
        .await
        .expect("system.runtime.queries")
        .get(0);
    let log = server.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!lines.is_empty(), "{log}");
    let retry = lines
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("retrying the task"))
        })
        .unwrap_or_else(|| panic!("no retry line: {log}"));
    let spans = retry["spans"].as_array().expect("spans");
    assert!(
        spans
            .iter()
            .any(|s| s["name"] == "session" && s["pid"].is_number() && s["user"].is_string()),
        "{retry}"
    );
    assert!(
        spans
            .iter()
            .any(|s| s["name"] == "query" && s["query"] == query_id.as_str()),
        "{retry}"
    );
}

/// Kills worker `w2` of a three-worker cluster spooling as `spool` during [`LONG_QUERY`] under
/// `TASK`: the answer equals the undisturbed one, and w2's lost attempts ran again elsewhere.
async fn task_retry_survives_a_killed_worker(spool: &str) -> Cluster {
    let cluster = three_workers(spool).await;
    let c = cluster.coordinator.connect("tpch").await;
    let expected = run(&c, LONG_QUERY).await;
    let got = long_query_with_a_kill(&cluster, "TASK")
        .await
        .expect("under TASK the query survives the loss of a worker");
    assert_eq!(got.strings(), expected.strings());
    let attempts = task_attempts(&cluster.coordinator, LONG_QUERY).await;
    let lost: Vec<_> = attempts
        .iter()
        .filter(|(.., worker, state)| worker == "w2" && state == "FAILED")
        .collect();
    assert!(!lost.is_empty(), "a task was lost with w2: {attempts:?}");
    for (stage, task, attempt, ..) in lost {
        assert!(
            attempts
                .iter()
                .any(|(s, t, a, w, state)| (s, t) == (stage, task)
                    && a > attempt
                    && w != "w2"
                    && state == "FINISHED"),
            "task {stage}.{task} ran again on a live worker: {attempts:?}"
        );
    }
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_retry_survives_a_killed_worker_with_the_spool_on_disk() {
    let spool = TempDir::new("spool-kill");
    let _cluster = task_retry_survives_a_killed_worker(&disk_spool(spool.path())).await;
    wait_spool_empty("disk", || files_under(spool.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_retry_survives_a_killed_worker_with_the_spool_on_s3() {
    let _cluster = task_retry_survives_a_killed_worker(&s3_spool("fte-kill")).await;
    let moto = Moto::shared();
    wait_spool_empty("s3", || {
        moto.list_keys("fte-kill", "spool/")
            .into_iter()
            .filter(|k| !k.starts_with("spool/_journal/"))
            .collect()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_by_past_the_memory_limit_completes_under_task_and_fails_under_none() {
    let spool = TempDir::new("spool-memory");
    let config = ConfigDir::new().config(&format!(
        "[engine]\nquery_max_memory_per_node_mb = 3\n{FAST_RETRIES}{}",
        disk_spool(spool.path())
    ));
    let server = Tributary::start(Some(config.path()));
    let c = server.connect("tpch").await;
    let sql = "SELECT count(*), sum(c) FROM (SELECT l_orderkey, l_partkey, count(*) AS c \
               FROM tpch.sf1.lineitem GROUP BY 1, 2) AS t";
    let err = results::query_text(&c, sql).await.unwrap_err();
    assert_eq!(sqlstate(&err), "53200", "{err:?}");
    exec(&c, "SET retry_policy = 'TASK'").await;
    assert_eq!(run(&c, sql).await.strings(), [["6001169", "6001215"]]);
    wait_spool_empty("disk", || files_under(spool.path())).await;
}

/// A task whose hash-join build side needs more than the per-node limit fails with 53200 on its
/// first attempt and runs again with three times the memory (Trino's growth factor): the query
/// completes, and `system.runtime.tasks` shows the failed and the retried attempt of each task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_out_of_memory_runs_again_with_three_times_the_memory() {
    let spool = TempDir::new("spool-grow");
    let config = ConfigDir::new().config(&format!(
        "[engine]\nquery_max_memory_per_node_mb = 1\n{FAST_RETRIES}{}",
        disk_spool(spool.path())
    ));
    let server = Tributary::start(Some(config.path()));
    let c = server.connect("tpch").await;
    // Each of the 4 join tasks builds a quarter of customer: about 1 MB, under 3 MB.
    let sql =
        "SELECT count(*) FROM tpch.sf1.orders JOIN tpch.sf1.customer ON o_custkey = c_custkey";
    let err = results::query_text(&c, sql).await.unwrap_err();
    assert_eq!(sqlstate(&err), "53200", "{err:?}");
    exec(&c, "SET retry_policy = 'TASK'").await;
    assert_eq!(run(&c, sql).await.strings(), [["1500000"]]);
    // Sorted here: a sort's reservation alone is past the 1 MB limit.
    let mut attempts = run(
        &c,
        "SELECT t.stage, t.task, t.attempt, t.state, t.error LIKE 'out of memory%' \
         FROM system.runtime.tasks t JOIN system.runtime.queries q ON t.query_id = q.query_id \
         WHERE q.retry_policy = 'TASK' AND (t.attempt > 0 OR t.state = 'FAILED')",
    )
    .await
    .strings();
    attempts.sort();
    assert!(!attempts.is_empty(), "no task ran out of memory");
    for pair in attempts.chunks(2) {
        let [failed, retried] = pair else {
            panic!("a failed attempt without its retry: {attempts:?}");
        };
        assert_eq!(failed[..2], retried[..2], "{attempts:?}");
        assert_eq!(failed[2..], ["0", "FAILED", "t"], "{attempts:?}");
        assert_eq!(retried[2..4], ["1", "FINISHED"], "{attempts:?}");
    }
    wait_spool_empty("disk", || files_under(spool.path())).await;
}

/// Under TASK a stage's task count follows its input bytes (`task_target_input_mb`), not the
/// cluster: orders' 30 splits (about 24 MB of `o_orderkey, o_custkey`) make about 6 tasks of 4 MB,
/// customer's 3 splits stay 3 tasks. The query scans about 25 MB, so its joins get 7 hash
/// partitions (one per 4 MB, more than `[engine] hash_partitions`); the join's input, about 4 MB
/// once filtered, fits the 4 tasks of `[engine] hash_partitions`, each running its partitions one
/// after another. The join, whose build side is past the 1 MB per-node limit, completes without
/// any attempt running out of memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_count_follows_input_bytes_and_a_join_past_memory_runs_in_pieces() {
    let spool = TempDir::new("spool-sized");
    let config = ConfigDir::new().config(&format!(
        "[engine]\nquery_max_memory_per_node_mb = 1\n{FAST_RETRIES}task_target_input_mb = 4\n{}",
        disk_spool(spool.path())
    ));
    let server = Tributary::start(Some(config.path()));
    let c = server.connect("tpch").await;
    let sql = "SELECT count(*) FROM tpch.sf1.orders JOIN tpch.sf1.customer \
               ON o_custkey = c_custkey WHERE o_orderkey % 4 = 0";
    exec(&c, "SET retry_policy = 'TASK'").await;
    // Every order has its customer.
    let expected = run(
        &c,
        "SELECT count(*) FROM tpch.sf1.orders WHERE o_orderkey % 4 = 0",
    )
    .await;
    assert_eq!(run(&c, sql).await.strings(), expected.strings());
    // Per stage: tasks, attempts that failed, the most partitions a task ran, all partitions run.
    let stages = c
        .query(
            "SELECT stage, count(DISTINCT task), count(*) FILTER (WHERE state <> 'FINISHED'), \
                    max(partitions), sum(partitions)::bigint \
             FROM system.runtime.tasks \
             WHERE query_id = (SELECT query_id FROM system.runtime.queries WHERE query = $1 \
                               ORDER BY created DESC LIMIT 1) \
             GROUP BY stage ORDER BY stage",
            &[&sql],
        )
        .await
        .expect("system.runtime.tasks");
    let stages: Vec<(i64, i64, i64, i64, i64)> = stages
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert!(
        stages.iter().all(|s| s.2 == 0),
        "no attempt fails: {stages:?}"
    );
    // The orders scan: more tasks than the 4 of [engine] hash_partitions, fewer than its splits.
    assert!(
        stages.iter().any(|s| s.4 == 30 && s.1 > 4 && s.1 < 30),
        "orders' 30 splits in tasks of about 4 MB: {stages:?}"
    );
    assert!(
        stages.iter().any(|s| s.4 == 3 && s.1 == 3),
        "customer's 3 splits: {stages:?}"
    );
    // The join: more hash partitions than [engine] hash_partitions, in 4 tasks.
    assert!(
        stages
            .iter()
            .any(|s| s.4 > 4 && s.4 <= 16 && s.3 > 1 && s.1 == 4),
        "the join's partitions grouped by bytes: {stages:?}"
    );
    wait_spool_empty("disk", || files_under(spool.path())).await;
}

/// A file scan's splits follow its bytes under TASK even when the query's hash partitions are
/// capped (`task_hash_partitions = 4`): orders of scale 1 in Parquet (tens of MB) are read in
/// splits of about 4 MB, so by more than 4 tasks, and the answer is the source's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_scans_are_split_by_bytes_under_task() {
    let spool = TempDir::new("spool-split");
    let lake = TempDir::new("lake-split");
    let catalog = format!(
        "connector = \"lake\"\nlocation = {}\n",
        toml_string(&format!("file://{}", lake.path().display()))
    );
    let config = ConfigDir::new()
        .config(&format!(
            "{FAST_RETRIES}task_target_input_mb = 4\ntask_hash_partitions = 4\n{}",
            disk_spool(spool.path())
        ))
        .catalog("lake", &catalog);
    let server = Tributary::start(Some(config.path()));
    let c = server.connect("tpch").await;
    exec(
        &c,
        "CREATE SCHEMA lake.etl; \
         CREATE TABLE lake.etl.orders AS SELECT * FROM tpch.sf1.orders",
    )
    .await;
    let aggregates = "count(*), sum(o_totalprice), max(o_comment)";
    let source = run(&c, &format!("SELECT {aggregates} FROM tpch.sf1.orders")).await;
    exec(&c, "SET retry_policy = 'TASK'").await;
    let sql = format!("SELECT {aggregates} FROM lake.etl.orders");
    assert_eq!(run(&c, &sql).await.strings(), source.strings());
    let attempts = task_attempts(&server, &sql).await;
    let scan_tasks = attempts.iter().filter(|(stage, ..)| *stage == 1).count();
    assert!(scan_tasks > 4, "splits of about 4 MB: {attempts:?}");
    wait_spool_empty("disk", || files_under(spool.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_killed_mid_query_removes_its_spool_data_when_it_starts_again() {
    let spool = TempDir::new("spool-crash");
    let config = ConfigDir::new().config(&format!("{FAST_RETRIES}{}", disk_spool(spool.path())));
    let server = Tributary::start(Some(config.path()));
    let c = Arc::new(server.connect("tpch").await);
    exec(&c, "SET retry_policy = 'TASK'").await;
    let long = {
        let c = c.clone();
        tokio::spawn(async move { results::query_text(&c, LONG_QUERY).await })
    };
    let data = |dir: &Path| -> Vec<PathBuf> {
        files_under(dir)
            .into_iter()
            .filter(|f| !f.to_string_lossy().contains("/_journal/"))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while data(spool.path()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the query never spooled anything"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill();
    let _ = long.await;
    assert!(!data(spool.path()).is_empty(), "the crash left spool data");
    let _restarted = Tributary::start(Some(config.path()));
    wait_spool_empty("disk after restart", || files_under(spool.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canceled_task_query_leaves_an_empty_spool() {
    let spool = TempDir::new("spool-cancel");
    let config = ConfigDir::new().config(&format!("{FAST_RETRIES}{}", disk_spool(spool.path())));
    let server = Tributary::start(Some(config.path()));
    let c = Arc::new(server.connect("tpch").await);
    exec(&c, "SET retry_policy = 'TASK'").await;
    let token = c.cancel_token();
    let long = {
        let c = c.clone();
        tokio::spawn(async move { results::query_text(&c, LONG_QUERY).await })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while files_under(spool.path())
        .iter()
        .all(|f| f.to_string_lossy().contains("/_journal/"))
    {
        assert!(
            Instant::now() < deadline,
            "the query never spooled anything"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    token
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("cancel request");
    let err = long.await.unwrap().expect_err("the query was canceled");
    assert_eq!(sqlstate(&err), "57014", "{err:?}");
    wait_spool_empty("disk after cancel", || files_under(spool.path())).await;
    // The server serves on.
    exec(&c, "RESET retry_policy").await;
    assert_eq!(
        run(&c, "SELECT count(*) FROM tpch.tiny.nation")
            .await
            .strings(),
        [["25"]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ctas_under_task_survives_a_killed_worker_with_exactly_one_copy_of_each_row() {
    let spool = TempDir::new("spool-ctas");
    let lake = TempDir::new("lake-ctas");
    let catalog = format!(
        "connector = \"lake\"\nlocation = {}\n",
        toml_string(&format!("file://{}", lake.path().display()))
    );
    let config = ConfigDir::new()
        .config(&format!(
            "[node]\nheartbeat_interval_ms = 200\nheartbeat_timeout_ms = 3000\n\
             [engine]\ntask_threads = 1\n{FAST_RETRIES}{}",
            disk_spool(spool.path())
        ))
        .catalog("lake", &catalog);
    let cluster = Cluster::start_with(config, &["w1", "w2", "w3"]).await;
    let c = Arc::new(cluster.coordinator.connect("tpch").await);
    exec(&c, "CREATE SCHEMA lake.etl; SET retry_policy = 'TASK'").await;
    let ctas = "CREATE TABLE lake.etl.lineitem AS SELECT * FROM tpch.sf1.lineitem";
    let write = {
        let c = c.clone();
        tokio::spawn(async move { c.simple_query(ctas).await })
    };
    let watcher = cluster.coordinator.connect("tpch").await;
    wait_running_task(&watcher, "w2").await;
    cluster.kill_worker("w2");
    let done = tokio::time::timeout(Duration::from_secs(600), write)
        .await
        .expect("the CTAS must end")
        .unwrap()
        .expect("under TASK the CTAS survives the loss of a worker");
    let tag = done.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
        _ => None,
    });
    assert_eq!(tag, Some(6_001_215));
    let aggregates = "count(*), sum(l_quantity), sum(l_extendedprice), count(DISTINCT l_orderkey)";
    exec(&c, "RESET retry_policy").await;
    let copy = run(&c, &format!("SELECT {aggregates} FROM lake.etl.lineitem")).await;
    let source = run(&c, &format!("SELECT {aggregates} FROM tpch.sf1.lineitem")).await;
    assert_eq!(copy.strings(), source.strings());
    assert_eq!(copy.strings()[0][0], "6001215");
    let attempts = task_attempts(&cluster.coordinator, ctas).await;
    assert!(
        attempts
            .iter()
            .any(|(.., w, state)| w == "w2" && state == "FAILED"),
        "a writer task was lost with w2: {attempts:?}"
    );
    wait_spool_empty("disk", || files_under(spool.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_retry_survives_a_frozen_worker() {
    let spool = TempDir::new("spool-freeze");
    let cluster = three_workers(&disk_spool(spool.path())).await;
    let c = Arc::new(cluster.coordinator.connect("tpch").await);
    let expected = run(&c, LONG_QUERY).await;
    exec(&c, "SET retry_policy = 'TASK'").await;
    let long = {
        let c = c.clone();
        tokio::spawn(async move { results::query_text(&c, LONG_QUERY).await })
    };
    let watcher = cluster.coordinator.connect("tpch").await;
    wait_running_task(&watcher, "w2").await;
    cluster.freeze_worker("w2");
    let got = tokio::time::timeout(Duration::from_secs(300), long)
        .await
        .expect("the query must not hang on a frozen worker")
        .unwrap()
        .expect("under TASK the query survives a frozen worker");
    assert_eq!(got.strings(), expected.strings());
    cluster.wait_node_state("w2", "dead").await;
    wait_spool_empty("disk", || files_under(spool.path())).await;
}
