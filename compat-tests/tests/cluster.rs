//! Distributed execution: a coordinator and worker processes on 127.0.0.1, talking Arrow Flight.
//!
//! - The 22 TPC-H queries on `tpch.tiny` and on the same data as lake Parquet files give the answers
//!   of a `single`-mode server over the same config, with tasks seen on both workers
//!   (`system.runtime.tasks`) and in `EXPLAIN ANALYZE`.
//! - A worker started after the coordinator joins and gets tasks.
//! - `kill -9` of a worker during a long query fails that query with SQLSTATE 58000 naming the worker;
//!   the next query runs on the survivor; `system.runtime.nodes` shows the dead worker.
//! - A canceled distributed query leaves no running task.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use compat_tests::cluster::{Cluster, wait_running_task};
use compat_tests::results::{self, Kind, TextRows};
use compat_tests::tpch_compare::{db_error_detail, query_text};
use compat_tests::{ConfigDir, TempDir, Tributary, toml_string};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use tokio_postgres::Client;

const QUERIES: [&str; 22] = [
    "q01", "q02", "q03", "q04", "q05", "q06", "q07", "q08", "q09", "q10", "q11", "q12", "q13",
    "q14", "q15", "q16", "q17", "q18", "q19", "q20", "q21", "q22",
];

/// A long query for the failure tests: seconds of work on every worker in a debug build.
const LONG_QUERY: &str = "SELECT l_suppkey, count(*), sum(l_extendedprice * (1 - l_discount)) \
     FROM tpch.sf1.lineitem GROUP BY l_suppkey ORDER BY 3 DESC LIMIT 3";

/// TPC-H scale 0.01 as Parquet, two files per table (so scans have several splits): `tpch/TABLE/`.
fn lake_dir() -> &'static Path {
    static DIR: OnceLock<TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        use tpchgen::generators::*;
        use tpchgen_arrow::*;
        let dir = TempDir::new("cluster-lake").remove_at_exit();
        let sf = 0.01;
        type Gen = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>>>;
        type Table = (&'static str, fn(f64, i32, i32) -> Gen);
        let tables: Vec<Table> = vec![
            ("nation", |sf, _, _| {
                Box::new(NationArrow::new(NationGenerator::new(sf, 1, 1)))
            }),
            ("region", |sf, _, _| {
                Box::new(RegionArrow::new(RegionGenerator::new(sf, 1, 1)))
            }),
            ("part", |sf, p, n| {
                Box::new(PartArrow::new(PartGenerator::new(sf, p, n)))
            }),
            ("supplier", |sf, p, n| {
                Box::new(SupplierArrow::new(SupplierGenerator::new(sf, p, n)))
            }),
            ("partsupp", |sf, p, n| {
                Box::new(PartSuppArrow::new(PartSuppGenerator::new(sf, p, n)))
            }),
            ("customer", |sf, p, n| {
                Box::new(CustomerArrow::new(CustomerGenerator::new(sf, p, n)))
            }),
            ("orders", |sf, p, n| {
                Box::new(OrderArrow::new(OrderGenerator::new(sf, p, n)))
            }),
            ("lineitem", |sf, p, n| {
                Box::new(LineItemArrow::new(LineItemGenerator::new(sf, p, n)))
            }),
        ];
        for (name, generate) in tables {
            let parts = if matches!(name, "nation" | "region") {
                1
            } else {
                2
            };
            for part in 1..=parts {
                let path = dir.path().join(format!("tpch/{name}/part-{part}.parquet"));
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                let mut batches = generate(sf, part, parts).peekable();
                let schema = match batches.peek().expect("generator yields a batch") {
                    Ok(b) => b.schema(),
                    Err(e) => panic!("generate {name}: {e}"),
                };
                let file = std::fs::File::create(&path).unwrap();
                let mut writer = ArrowWriter::try_new(file, schema, None).unwrap();
                for batch in batches {
                    writer.write(&batch.unwrap()).unwrap();
                }
                writer.close().unwrap();
            }
        }
        dir
    })
    .path()
}

/// The cluster's shared secret: every node RPC and exchange read of these tests carries it.
const SECRET: &str = "cluster-secret";

/// A config directory with the lake catalog, fast heartbeats, the shared secret, and the built-in
/// catalogs; `engine` is added to `config.toml`'s `[engine]` table. Each node runs its tasks on one
/// thread: the coordinator and both workers share this machine's cores.
fn config_dir(engine: &str) -> ConfigDir {
    config_dir_with_threads(1, engine)
}

/// [`config_dir`] whose nodes run their tasks on `threads` threads each.
fn config_dir_with_threads(threads: usize, engine: &str) -> ConfigDir {
    ConfigDir::new()
        .config(&format!(
            "[node]\nheartbeat_interval_ms = 200\nheartbeat_timeout_ms = 3000\n\
             shared_secret = \"{SECRET}\"\n[engine]\ntask_threads = {threads}\n{engine}"
        ))
        .catalog(
            "lake",
            &format!(
                "connector = \"lake\"\nlocation = {}\n",
                toml_string(&format!("file://{}", lake_dir().display()))
            ),
        )
}

/// The cluster the comparison tests share (w1, w2) and a single-mode server over the same catalogs.
async fn shared() -> &'static (Cluster, Tributary) {
    static SHARED: tokio::sync::OnceCell<(Cluster, Tributary)> = tokio::sync::OnceCell::const_new();
    SHARED
        .get_or_init(|| async {
            let cluster = Cluster::start_with(config_dir(""), &["w1", "w2"]).await;
            let single = Tributary::start(Some(cluster.config.path()));
            (cluster, single)
        })
        .await
}

async fn run(client: &Client, sql: &str, what: &str) -> TextRows {
    results::query_text(client, sql)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}{}", db_error_detail(&e)))
}

/// Runs every TPC-H query in `db`.`schema` on the cluster and on the single-mode server; the answers
/// must agree (float sums within tolerance: partial aggregates are added in a different order).
async fn compare_all(db: &str, schema: &str) {
    let (cluster, single) = shared().await;
    let c = cluster.coordinator.connect(db).await;
    let s = single.connect(db).await;
    for client in [&c, &s] {
        client
            .batch_execute(&format!("SET search_path TO {schema}"))
            .await
            .unwrap();
    }
    for name in QUERIES {
        let sql = query_text(name);
        let kinds: Vec<Kind> = results::kinds_from_postgres(&s, &sql)
            .await
            .unwrap_or_else(|e| panic!("{name}: prepare on single: {e}"));
        let expected = run(&s, &sql, &format!("{name} on single")).await;
        let actual = run(&c, &sql, &format!("{name} on the cluster")).await;
        let ordered = results::has_top_level_order_by(&sql);
        if let Err(diff) = results::compare(&expected, &actual, &kinds, ordered, 10) {
            panic!("{name} in {db}.{schema}: cluster and single mode differ:\n{diff}");
        }
    }
    let workers = run(
        &c,
        "SELECT DISTINCT worker FROM system.runtime.tasks WHERE state = 'FINISHED' ORDER BY 1",
        "tasks",
    )
    .await;
    let workers: Vec<String> = workers
        .strings()
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert!(
        workers.contains(&"w1".to_string()) && workers.contains(&"w2".to_string()),
        "tasks should have run on both workers, saw {workers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_tiny_on_a_cluster_matches_single_mode() {
    compare_all("tpch", "tiny").await;
    let (cluster, _) = shared().await;
    let c = cluster.coordinator.connect("tpch").await;
    let plan = run(
        &c,
        "EXPLAIN ANALYZE SELECT o_orderpriority, count(*) FROM tpch.tiny.orders GROUP BY 1",
        "explain analyze",
    )
    .await;
    let text: Vec<String> = plan.strings().into_iter().map(|r| r[0].clone()).collect();
    let text = text.join("\n");
    assert!(
        text.contains("on w1") && text.contains("on w2") && text.contains("Stage 1"),
        "EXPLAIN ANALYZE should show tasks per stage and worker:\n{text}"
    );
    // Operators that ran on the workers show their metrics, brought back with the task reports.
    for operator in [
        "AggregateExec: mode=Partial",
        "AggregateExec: mode=FinalPartitioned",
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(operator))
            .unwrap_or_else(|| panic!("no {operator} in:\n{text}"));
        assert!(
            line.contains("metrics=[output_rows="),
            "remote operator metrics missing:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lake_parquet_on_a_cluster_matches_single_mode() {
    compare_all("lake", "tpch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_started_later_joins_and_gets_tasks() {
    let cluster = Cluster::start_with(config_dir(""), &["w1"]).await;
    let c = cluster.coordinator.connect("tpch").await;
    run(&c, "SELECT count(*) FROM tpch.tiny.lineitem", "before").await;
    cluster.add_worker("w3").await;
    let rows = run(
        &c,
        "SELECT l_returnflag, count(*) FROM tpch.tiny.lineitem GROUP BY 1 ORDER BY 1",
        "after",
    )
    .await;
    assert_eq!(rows.rows.len(), 3);
    let on_w3 = run(
        &c,
        "SELECT count(*) FROM system.runtime.tasks WHERE worker = 'w3'",
        "tasks",
    )
    .await;
    assert_ne!(on_w3.strings()[0][0], "0", "the new worker got no tasks");

    // A worker without the cluster's shared secret is refused: it never joins.
    let other = ConfigDir::new().config(
        "[node]\nheartbeat_interval_ms = 200\nshared_secret = \"not-the-cluster-secret\"\n",
    );
    let intruder = Tributary::start_worker(Some(other.path()), &cluster.rpc, "intruder");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !intruder.log().contains("cannot announce") {
        assert!(Instant::now() < deadline, "no refusal:\n{}", intruder.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        intruder.log().contains("shared secret") && !intruder.log().contains(SECRET),
        "the refusal should say why, without the secret:\n{}",
        intruder.log()
    );
    let listed = run(
        &c,
        "SELECT count(*) FROM system.runtime.nodes WHERE node_id = 'intruder'",
        "nodes",
    )
    .await;
    assert_eq!(
        listed.strings()[0][0],
        "0",
        "a worker with another secret joined"
    );
}

/// Without `[engine] hash_partitions`, a coordinator gives a query as many hash partitions as its
/// active workers have task threads together (Trino's `hash_partition_count` follows the cluster):
/// 2 workers of 3 threads make 6, and a third worker joining makes 9.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_partitions_follow_the_workers_task_slots() {
    let cluster = Cluster::start_with(config_dir_with_threads(3, ""), &["w1", "w2"]).await;
    let c = cluster.coordinator.connect("tpch").await;
    let sql = "EXPLAIN SELECT l_returnflag, count(*) FROM tpch.tiny.lineitem GROUP BY 1";
    let partitions = |plan: TextRows| {
        let text = plan.strings().concat().join("\n");
        let hash = text
            .lines()
            .find(|l| l.contains("output: hash("))
            .unwrap_or_else(|| panic!("no hash stage:\n{text}"))
            .to_string();
        hash.split(") x ")
            .nth(1)
            .and_then(|rest| rest.split(|ch: char| !ch.is_ascii_digit()).next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no partition count in {hash}"))
    };
    assert_eq!(partitions(run(&c, sql, "two workers").await), 6);
    cluster.add_worker("w3").await;
    assert_eq!(partitions(run(&c, sql, "three workers").await), 9);
    // The answer is the same as single mode's.
    let rows = run(
        &c,
        "SELECT l_returnflag, count(*) FROM tpch.tiny.lineitem GROUP BY 1 ORDER BY 1",
        "query",
    )
    .await;
    assert_eq!(rows.rows.len(), 3);
}

/// SIGTERM on a worker mid-query under `retry_policy = NONE` is a graceful shutdown: it shows
/// `draining`, gets no new tasks, finishes what it runs (the query answers, the same as without the
/// drain), leaves the cluster and exits 0; the next queries run on the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_drained_with_sigterm_mid_query_loses_no_query() {
    let cluster = Cluster::start_with(config_dir(""), &["w1", "w2"]).await;
    let c = Arc::new(cluster.coordinator.connect("tpch").await);
    let long = {
        let c = c.clone();
        tokio::spawn(async move { results::query_text(&c, LONG_QUERY).await })
    };
    let watcher = cluster.coordinator.connect("tpch").await;
    wait_running_task(&watcher, "w2").await;
    cluster.terminate_worker("w2");
    cluster.wait_node_state("w2", "draining").await;
    let drained = tokio::time::timeout(Duration::from_secs(120), long)
        .await
        .expect("the query finishes")
        .unwrap()
        .unwrap_or_else(|e| panic!("the drained worker's query failed: {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = cluster.worker_exit("w2") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "w2 did not exit after draining:\n{}",
            cluster.worker_log("w2")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "w2 exited with {status}");
    let nodes = run(
        &c,
        "SELECT node_id, state FROM system.runtime.nodes WHERE role = 'worker' ORDER BY 1",
        "nodes",
    )
    .await;
    assert_eq!(
        nodes.strings(),
        vec![vec!["w1".to_string(), "active".to_string()]]
    );
    let again = run(&c, LONG_QUERY, "the same query on w1 alone").await;
    assert_eq!(drained.strings(), again.strings());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_worker_fails_its_query_and_the_next_runs_on_the_survivor() {
    let cluster = Cluster::start_with(config_dir(""), &["w1", "w2"]).await;
    let c = Arc::new(cluster.coordinator.connect("tpch").await);
    let long = {
        let c = c.clone();
        tokio::spawn(async move { c.simple_query(LONG_QUERY).await })
    };
    let watcher = cluster.coordinator.connect("tpch").await;
    wait_running_task(&watcher, "w2").await;
    cluster.kill_worker("w2");
    let err = tokio::time::timeout(Duration::from_secs(60), long)
        .await
        .expect("the query must fail promptly once a worker is gone")
        .unwrap()
        .expect_err("a query that lost a worker must fail");
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("not a server error: {err:?}"));
    assert_eq!(db.code().code(), "58000", "{}", db.message());
    assert!(
        db.message().contains("w2"),
        "the lost worker must be named: {}",
        db.message()
    );

    // The query's own error marked the worker dead (the heartbeat timeout would, at the latest).
    cluster.wait_node_state("w2", "dead").await;
    let rows = run(&c, "SELECT count(*) FROM tpch.tiny.lineitem", "next query").await;
    assert_eq!(rows.strings(), vec![vec!["60175".to_string()]]);
    let nodes = run(
        &c,
        "SELECT node_id, state FROM system.runtime.nodes WHERE role = 'worker' ORDER BY 1",
        "nodes",
    )
    .await;
    assert_eq!(
        nodes.strings(),
        vec![
            vec!["w1".to_string(), "active".to_string()],
            vec!["w2".to_string(), "dead".to_string()]
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_lost_between_queries_is_skipped_when_the_next_query_is_placed() {
    let cluster = Cluster::start_with(config_dir(""), &["w1", "w2"]).await;
    let c = cluster.coordinator.connect("tpch").await;
    // Before its heartbeat times out (3 s) the coordinator still lists w2 active, so the next query
    // is placed on it; starting its tasks there fails, and as none ran, the query is placed again.
    cluster.kill_worker("w2");
    let rows = run(
        &c,
        "SELECT n_regionkey, count(*) FROM tpch.tiny.nation GROUP BY n_regionkey ORDER BY 1",
        "query after the kill",
    )
    .await;
    assert_eq!(rows.strings().len(), 5);
    cluster.wait_node_state("w2", "dead").await;
    // The second placement attempt's tasks (`QUERY.a2`) ran on the survivor.
    let on_w1 = run(
        &c,
        "SELECT count(*) FROM system.runtime.tasks \
         WHERE query_id LIKE '%.a2' AND worker = 'w1' AND state = 'FINISHED'",
        "tasks",
    )
    .await;
    assert_ne!(
        on_w1.strings()[0][0],
        "0",
        "the query was not placed again on w1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canceled_distributed_query_leaves_no_running_tasks() {
    let cluster = Cluster::start_with(config_dir(""), &["w1", "w2"]).await;
    let c = Arc::new(cluster.coordinator.connect("tpch").await);
    let cancel = c.cancel_token();
    let long = {
        let c = c.clone();
        tokio::spawn(async move { c.simple_query(LONG_QUERY).await })
    };
    let watcher = cluster.coordinator.connect("tpch").await;
    wait_running_task(&watcher, "w1").await;
    cancel.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let err = long.await.unwrap().expect_err("canceled");
    assert_eq!(
        err.as_db_error().map(|d| d.code().code()),
        Some("57014"),
        "{err:?}"
    );
    // The coordinator's view, then the workers' own (reported with their heartbeats).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let running = run(
            &watcher,
            "SELECT (SELECT count(*) FROM system.runtime.tasks WHERE state = 'RUNNING' \
             AND query_id NOT IN (SELECT query_id FROM system.runtime.queries WHERE state = 'RUNNING')) \
             + (SELECT sum(running_tasks) FROM system.runtime.nodes WHERE role = 'worker')",
            "tasks",
        )
        .await;
        if running.strings()[0][0] == "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tasks still running 10 s after the cancel: {:?}",
            running.strings()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The cluster still serves.
    let rows = run(&c, "SELECT count(*) FROM tpch.tiny.nation", "after cancel").await;
    assert_eq!(rows.strings(), vec![vec!["25".to_string()]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_past_its_memory_limit_fails_with_53200_and_the_cluster_serves_on() {
    let config = config_dir("query_max_memory_per_node_mb = 1\n");
    let cluster = Cluster::start_with(config, &["w1", "w2"]).await;
    let c = cluster.coordinator.connect("tpch").await;
    // The build side of this join (all of lineitem's comments) needs far more than 1 MB.
    let err = c
        .simple_query(
            "SELECT count(*) FROM tpch.tiny.lineitem a JOIN tpch.tiny.lineitem b \
             ON a.l_comment = b.l_comment AND a.l_orderkey = b.l_orderkey",
        )
        .await
        .expect_err("over the memory limit");
    let db = err.as_db_error().unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(db.code().code(), "53200", "{}", db.message());
    assert!(
        db.message().contains("memory limit"),
        "the message should say which limit: {}",
        db.message()
    );
    let rows = run(&c, "SELECT count(*) FROM tpch.tiny.nation", "after").await;
    assert_eq!(rows.strings(), vec![vec!["25".to_string()]]);
}
