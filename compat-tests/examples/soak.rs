//! Soak load for `scripts/soak.sh` (a benchmark, not a test): starts the server (`$TRIBUTARY_BIN`,
//! the built-in catalogs), computes each query's answer once, then runs `SESSIONS` sessions for
//! `SOAK_SECONDS` seconds, each cycling through TPC-H tiny queries, catalog queries as psql and JDBC send
//! them, and a prepared statement with a parameter. Prints queries per second, latency percentiles,
//! errors, answers that differ from the first one, and the server's resident memory (start, end,
//! peak from `VmHWM`) as a table.
//!
//! Environment: `SESSIONS` (default 200), `SOAK_SECONDS` (default 40), `TRIBUTARY_BIN` (the binary).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use compat_tests::Tributary;
use compat_tests::tpch_compare::query_text;

/// What every session runs, in turn (starting at a different one each).
fn workload() -> Vec<String> {
    let mut queries: Vec<String> = ["q01", "q03", "q05", "q06", "q10", "q12", "q14"]
        .iter()
        .map(|q| query_text(q))
        .collect();
    queries.extend(
        [
            // psql's \dt
            "SELECT n.nspname, c.relname, CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' END \
             FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r','p','v') AND n.nspname <> 'pg_catalog' \
             AND n.nspname !~ '^pg_toast' AND n.nspname <> 'information_schema' ORDER BY 1,2",
            // pgjdbc's getColumns, shortened
            "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns \
             WHERE table_schema = 'tiny' ORDER BY 1, 2, ordinal_position",
            "SELECT count(*) FROM system.runtime.nodes",
            "SELECT current_database(), current_schema(), version() IS NOT NULL",
        ]
        .map(String::from),
    );
    queries
}

const PREPARED: &str = "SELECT n_name, count(*) FROM tpch.tiny.nation JOIN tpch.tiny.customer \
                        ON c_nationkey = n_nationkey WHERE n_regionkey = $1 GROUP BY 1 ORDER BY 1";

type Rows = Vec<Vec<Option<String>>>;

async fn simple_rows(client: &tokio_postgres::Client, sql: &str) -> Result<Rows, String> {
    compat_tests::results::query_text(client, sql)
        .await
        .map(|text| text.rows)
        .map_err(|e| format!("{e} ({:?})", e.code()))
}

async fn prepared_rows(
    client: &tokio_postgres::Client,
    statement: &tokio_postgres::Statement,
    region: i64,
) -> Result<Rows, String> {
    let rows = client
        .query(statement, &[&region])
        .await
        .map_err(|e| format!("{e} ({:?})", e.code()))?;
    Ok(rows
        .iter()
        .map(|r| {
            vec![
                Some(r.get::<_, String>(0)),
                Some(r.get::<_, i64>(1).to_string()),
            ]
        })
        .collect())
}

/// (VmRSS, VmHWM) of process `pid`, in MiB.
fn memory_mib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
            / 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[derive(Default)]
struct Counters {
    queries: AtomicU64,
    errors: AtomicU64,
    differing: AtomicU64,
}

#[tokio::main]
async fn main() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let sessions = env("SESSIONS", 200);
    let seconds = env("SOAK_SECONDS", 40);
    let server = Tributary::start(None);
    let pid = server.pid();
    let (rss_start, _) = memory_mib(pid);

    // The answers, once, from one session.
    let queries = Arc::new(workload());
    let first = server.connect("tpch").await;
    let mut expected = Vec::new();
    for sql in queries.iter() {
        expected.push(
            simple_rows(&first, sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        );
    }
    let statement = first.prepare(PREPARED).await.unwrap();
    let mut expected_prepared = Vec::new();
    for region in 0..5 {
        expected_prepared.push(prepared_rows(&first, &statement, region).await.unwrap());
    }
    drop(first);
    let expected = Arc::new(expected);
    let expected_prepared = Arc::new(expected_prepared);

    let counters = Arc::new(Counters::default());
    let latencies = Arc::new(latency::Latencies::default());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut clients = Vec::new();
    for i in 0..sessions {
        clients.push(server.connect("tpch").await);
        if i % 50 == 49 {
            tokio::task::yield_now().await;
        }
    }
    let started = Instant::now();
    let mut handles = Vec::new();
    for (i, client) in clients.into_iter().enumerate() {
        let (queries, expected, expected_prepared) =
            (queries.clone(), expected.clone(), expected_prepared.clone());
        let (counters, latencies) = (counters.clone(), latencies.clone());
        handles.push(tokio::spawn(async move {
            let statement = client.prepare(PREPARED).await.ok();
            let mut turn = i;
            while Instant::now() < deadline {
                let at = turn % (queries.len() + 1);
                turn += 1;
                let began = Instant::now();
                let (got, want) = if at == queries.len() {
                    let region = (turn % 5) as i64;
                    let got = match &statement {
                        Some(s) => prepared_rows(&client, s, region).await,
                        None => Err("prepare failed".into()),
                    };
                    (got, &expected_prepared[region as usize])
                } else {
                    (simple_rows(&client, &queries[at]).await, &expected[at])
                };
                latencies.record(began.elapsed());
                counters.queries.fetch_add(1, Ordering::Relaxed);
                match got {
                    Err(e) => {
                        if counters.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("error: {e}");
                        }
                    }
                    Ok(rows) if &rows != want => {
                        if counters.differing.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("differing answer for query {at}");
                        }
                    }
                    Ok(_) => {}
                }
            }
        }));
    }
    let mut peak_sampled = 0;
    while Instant::now() < deadline {
        peak_sampled = peak_sampled.max(memory_mib(pid).0);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (rss_end, hwm) = memory_mib(pid);
    let queries_run = counters.queries.load(Ordering::Relaxed);
    let (p50, p99) = latencies.percentiles();
    println!(
        "| sessions | seconds | queries | queries/s | p50 ms | p99 ms | errors | differing answers | RSS start MiB | RSS end MiB | peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {sessions} | {elapsed:.0} | {queries_run} | {:.0} | {:.1} | {:.1} | {} | {} | {rss_start} | {rss_end} | {} |",
        queries_run as f64 / elapsed,
        p50.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0,
        counters.errors.load(Ordering::Relaxed),
        counters.differing.load(Ordering::Relaxed),
        hwm.max(peak_sampled),
    );
    assert!(
        server.try_wait().is_none(),
        "the server exited during the soak"
    );
}

/// Latency samples behind a std mutex (the load generator's own cost is small beside a query's).
mod latency {
    use std::sync::Mutex;
    use std::time::Duration;

    #[derive(Default)]
    pub struct Latencies(Mutex<Vec<Duration>>);

    impl Latencies {
        pub fn record(&self, d: Duration) {
            self.0.lock().unwrap().push(d);
        }

        /// (p50, p99) of the samples.
        pub fn percentiles(&self) -> (Duration, Duration) {
            let mut v = self.0.lock().unwrap().clone();
            if v.is_empty() {
                return (Duration::ZERO, Duration::ZERO);
            }
            v.sort();
            let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
            (at(0.5), at(0.99))
        }
    }
}
