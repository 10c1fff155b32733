//! The engine's Prometheus metrics: counters and histograms updated as queries and tasks end, in one
//! process-wide registry that `GET /metrics` renders (with gauges read at scrape time by the front
//! end). Names follow Prometheus conventions (`_total` counters, `_seconds` and `_bytes` units).

use std::sync::LazyLock;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// The registry every metric of this module is in.
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

fn register<C: prometheus::core::Collector + Clone + 'static>(collector: C) -> C {
    // Registering the same metric twice is the only error, and each is registered once here.
    let _ = REGISTRY.register(Box::new(collector.clone()));
    collector
}

/// `tributary_queries_total{state}`: queries that ended, by how (`FINISHED`, `FAILED`, `CANCELED`).
pub static QUERIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "tributary_queries_total",
                "Queries that ended, by final state",
            ),
            &["state"],
        )
        .expect("valid metric"),
    )
});

/// `tributary_query_wall_seconds{state}`: wall time of queries that ended.
pub static QUERY_WALL: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "tributary_query_wall_seconds",
                "Wall time of queries that ended, by final state",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                1800.0,
            ]),
            &["state"],
        )
        .expect("valid metric"),
    )
});

/// `tributary_task_attempts_total{result, cause}`: task attempts that ended, `finished` or
/// `failed`; a failure's cause is its SQLSTATE class (`08`: connection, `53`: resources, `57`:
/// operator intervention, `58`: system, `XX`: internal, ...), `lost` when its worker was lost.
pub static TASK_ATTEMPTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "tributary_task_attempts_total",
                "Task attempts that ended, by result and failure cause",
            ),
            &["result", "cause"],
        )
        .expect("valid metric"),
    )
});

/// `tributary_exchange_rows_total{kind}` and `tributary_exchange_bytes_total{kind}`: what tasks
/// wrote to their output, `streamed` (Arrow Flight) or `spooled` (fault-tolerant execution).
pub static EXCHANGE_ROWS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "tributary_exchange_rows_total",
                "Rows tasks wrote to their output",
            ),
            &["kind"],
        )
        .expect("valid metric"),
    )
});

/// See [`EXCHANGE_ROWS`].
pub static EXCHANGE_BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "tributary_exchange_bytes_total",
                "Bytes (Arrow in memory) tasks wrote to their output",
            ),
            &["kind"],
        )
        .expect("valid metric"),
    )
});

/// Records a query's end.
pub fn query_ended(state: &str, wall_seconds: f64) {
    QUERIES.with_label_values(&[state]).inc();
    QUERY_WALL.with_label_values(&[state]).observe(wall_seconds);
}

/// Records a task attempt's end: its output, or its failure's SQLSTATE (`None`: worker lost).
pub fn task_ended(failure: Option<Option<&str>>, rows: u64, bytes: u64, spooled_bytes: u64) {
    match failure {
        None => {
            TASK_ATTEMPTS.with_label_values(&["finished", ""]).inc();
            let kind = if spooled_bytes > 0 {
                "spooled"
            } else {
                "streamed"
            };
            EXCHANGE_ROWS.with_label_values(&[kind]).inc_by(rows);
            EXCHANGE_BYTES
                .with_label_values(&[kind])
                .inc_by(if spooled_bytes > 0 {
                    spooled_bytes
                } else {
                    bytes
                });
        }
        Some(sqlstate) => {
            let cause = sqlstate.map_or("lost", |code| code.get(..2).unwrap_or(code));
            TASK_ATTEMPTS.with_label_values(&["failed", cause]).inc();
        }
    }
}

/// Every metric of this module, registered (so a scrape before any query lists them at zero).
pub fn init() {
    LazyLock::force(&QUERIES);
    LazyLock::force(&QUERY_WALL);
    LazyLock::force(&TASK_ATTEMPTS);
    LazyLock::force(&EXCHANGE_ROWS);
    LazyLock::force(&EXCHANGE_BYTES);
    LazyLock::force(&NODE_TASKS);
    tributary_connectors::metrics::init();
}

/// Every metric of this node: this module's and the connectors' per-catalog source requests
/// (`tributary_connectors::metrics`), as Prometheus metric families.
pub fn gather() -> Vec<prometheus::proto::MetricFamily> {
    let mut families = REGISTRY.gather();
    families.extend(tributary_connectors::metrics::REGISTRY.gather());
    families
}

/// `tributary_node_tasks_total{result}`: tasks this node ran that ended, `finished` or `failed`
/// (on a worker: its own tasks; the coordinator's `tributary_task_attempts_total` counts the whole
/// cluster's from their reports).
pub static NODE_TASKS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "tributary_node_tasks_total",
                "Tasks this node ran that ended, by result",
            ),
            &["result"],
        )
        .expect("valid metric"),
    )
});
