//! The coordinator's HTTP listener (`[http] listen`): Prometheus metrics that move with the work
//! done, Trino-like `/v1/info`, `/v1/node` and `/v1/query` JSON, cancelling a running query with
//! `DELETE /v1/query/ID` (the client gets 57014), and HTTP Basic authentication against the users
//! file with `pg_cancel_backend`'s rule for other users' queries.

use std::time::{Duration, Instant};

use compat_tests::http::sample;
use compat_tests::{ConfigDir, Tributary, free_port};
use serde_json::Value;

/// One request without a body: the status code and the body.
fn request(port: u16, method: &str, path: &str, credentials: Option<&str>) -> (u16, String) {
    compat_tests::http::request(port, method, path, credentials, None)
}

fn json(port: u16, path: &str, credentials: Option<&str>) -> Value {
    let (status, body) = request(port, "GET", path, credentials);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Waits until the query running `text` is listed RUNNING; its id.
fn running_query(port: u16, text: &str, credentials: Option<&str>) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = json(port, "/v1/query", credentials);
        if let Some(q) = list.as_array().unwrap().iter().find(|q| {
            q["state"] == "RUNNING" && q["query"].as_str().is_some_and(|s| s.contains(text))
        }) {
            return q["queryId"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "{text} never ran: {list}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const ENDLESS: &str = "select count(*) from generate_series(1, 100000000000) t(a)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_the_query_api() {
    let port = free_port();
    let config = ConfigDir::new().config(&format!("[http]\nlisten = \"127.0.0.1:{port}\"\n"));
    let server = Tributary::start(Some(config.path()));
    let info = json(port, "/v1/info", None);
    assert_eq!(info["nodeVersion"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["coordinator"], true);
    let nodes = json(port, "/v1/node", None);
    assert!(!nodes.as_array().unwrap().is_empty(), "{nodes}");

    let (status, before) = request(port, "GET", "/metrics", None);
    assert_eq!(status, 200);
    let finished = r#"tributary_queries_total{state="FINISHED"}"#;
    let done_before = sample(&before, finished).unwrap_or(0.0);
    let client = server.connect("tpch").await;
    client
        .simple_query("select o_orderpriority, count(*) from tpch.tiny.orders group by 1")
        .await
        .unwrap();
    let (_, page) = request(port, "GET", "/metrics", None);
    assert_eq!(sample(&page, finished), Some(done_before + 1.0), "{page}");
    assert_eq!(
        sample(&page, "tributary_sessions_active"),
        Some(1.0),
        "{page}"
    );
    assert!(
        sample(
            &page,
            r#"tributary_task_attempts_total{cause="",result="finished"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{page}"
    );
    assert!(
        sample(&page, r#"tributary_exchange_rows_total{kind="streamed"}"#)
            .is_some_and(|n| n >= 5.0),
        "{page}"
    );
    for name in [
        "tributary_query_wall_seconds_bucket",
        "tributary_workers{state=\"active\"}",
        "tributary_memory_reserved_bytes",
        "tributary_queries_running",
    ] {
        assert!(page.contains(name), "{name} missing:\n{page}");
    }

    // A running query: listed with its progress, then canceled over HTTP.
    let runner = server.connect("tpch").await;
    let running = tokio::spawn(async move { runner.simple_query(ENDLESS).await });
    let id = running_query(port, "generate_series(1, 100000000000)", None);
    let one = json(port, &format!("/v1/query/{id}"), None);
    assert_eq!(one["state"], "RUNNING", "{one}");
    assert!(
        one["tasks"].is_array() && one["progress"]["stages"].is_number(),
        "{one}"
    );
    let (status, _) = request(port, "DELETE", &format!("/v1/query/{id}"), None);
    assert_eq!(status, 204);
    let err = running.await.unwrap().expect_err("canceled");
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err:?}");
    let (status, _) = request(port, "DELETE", &format!("/v1/query/{id}"), None);
    assert_eq!(status, 404, "not running any more");
    assert_eq!(request(port, "GET", "/v1/query/nope", None).0, 404);
    let (_, page) = request(port, "GET", "/metrics", None);
    assert!(
        sample(&page, r#"tributary_queries_total{state="CANCELED"}"#).is_some_and(|n| n >= 1.0),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_passwords_the_api_wants_users_and_respects_their_queries() {
    let port = free_port();
    let config = ConfigDir::new()
        .config(&format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n\
             [auth]\nmethod = \"password\"\nusers_file = \"users.toml\"\nadmin_users = [\"root\"]\n"
        ))
        .file(
            "users.toml",
            "[[user]]\nname = \"alice\"\npassword = \"a-pass\"\n\
             [[user]]\nname = \"bob\"\npassword = \"b-pass\"\n\
             [[user]]\nname = \"root\"\npassword = \"r-pass\"\n",
        );
    let server = Tributary::start(Some(config.path()));
    assert_eq!(request(port, "GET", "/v1/query", None).0, 401);
    assert_eq!(request(port, "GET", "/metrics", Some("alice:wrong")).0, 401);
    assert_eq!(
        request(port, "GET", "/metrics", Some("alice:a-pass")).0,
        200
    );

    let mut c = server.config("tpch");
    c.user("alice").password("a-pass");
    let alice = compat_tests::try_connect_with(&c).await.unwrap();
    let running = tokio::spawn(async move { alice.simple_query(ENDLESS).await });
    let id = running_query(port, "generate_series(1, 100000000000)", Some("bob:b-pass"));
    let path = format!("/v1/query/{id}");
    assert_eq!(request(port, "DELETE", &path, Some("bob:b-pass")).0, 403);
    assert_eq!(request(port, "DELETE", &path, Some("root:r-pass")).0, 204);
    let err = running.await.unwrap().expect_err("canceled");
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err:?}");
    assert!(!server.log().contains("b-pass"), "a password was logged");
}

/// The count of the histogram or counter `name` for `catalog`'s requests of `connector` and
/// `operation` in a Prometheus page (0 when absent).
fn source_sample(page: &str, name: &str, catalog: &str, connector: &str, operation: &str) -> f64 {
    sample(
        page,
        &format!(
            "{name}{{catalog=\"{catalog}\",connector=\"{connector}\",operation=\"{operation}\"}}"
        ),
    )
    .unwrap_or(0.0)
}

/// Per-catalog source requests, timed and counted where they are made: a `postgres` catalog's
/// split queries (one failing in PostgreSQL itself) and a `lake` catalog's object-store reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_requests_are_measured_per_catalog() {
    let pg = compat_tests::Postgres::shared();
    pg.create_database("http_metrics").await;
    pg.connect("http_metrics")
        .await
        .batch_execute(
            "drop view if exists broken; drop table if exists t; \
             create table t as select i from generate_series(1, 100) i; \
             create view broken as select 1 / (i - i) as boom from t;",
        )
        .await
        .unwrap();
    let lake = compat_tests::TempDir::new("http-metrics-lake");
    let port = free_port();
    let config = ConfigDir::new()
        .config(&format!("[http]\nlisten = \"127.0.0.1:{port}\"\n"))
        .catalog("pgm", &pg.catalog_toml("http_metrics", ""))
        .catalog("lk", &compat_tests::lake_catalog_toml(lake.path()));
    let server = Tributary::start(Some(config.path()));
    let client = server.connect("tpch").await;
    let rows = client
        .simple_query("select count(*) from pgm.public.t")
        .await
        .unwrap();
    assert!(!rows.is_empty());
    let err = client
        .simple_query("select boom from pgm.public.broken")
        .await
        .expect_err("division by zero in PostgreSQL");
    assert_eq!(err.code().map(|c| c.code()), Some("22012"), "{err:?}");
    client
        .batch_execute(
            "create schema lk.m; create table lk.m.orders as select * from tpch.tiny.orders",
        )
        .await
        .unwrap();
    client
        .simple_query("select count(*), max(o_comment) from lk.m.orders")
        .await
        .unwrap();
    let (_, page) = request(port, "GET", "/metrics", None);
    let pg_requests = source_sample(
        &page,
        "tributary_source_request_seconds_count",
        "pgm",
        "postgres",
        "query",
    );
    let pg_errors = source_sample(
        &page,
        "tributary_source_request_errors_total",
        "pgm",
        "postgres",
        "query",
    );
    assert!(
        pg_requests >= 2.0 && pg_errors >= 1.0,
        "{pg_requests} requests, {pg_errors} errors:\n{page}"
    );
    assert!(
        pg_errors < pg_requests,
        "the good query is no error:\n{page}"
    );
    let lake_reads: f64 = ["get", "get_ranges"]
        .iter()
        .map(|op| {
            source_sample(
                &page,
                "tributary_source_request_seconds_count",
                "lk",
                "lake",
                op,
            )
        })
        .sum();
    let lake_writes = source_sample(
        &page,
        "tributary_source_request_seconds_count",
        "lk",
        "lake",
        "put",
    ) + source_sample(
        &page,
        "tributary_source_request_seconds_count",
        "lk",
        "lake",
        "put_multipart",
    );
    assert!(
        lake_reads >= 1.0 && lake_writes >= 1.0,
        "{lake_reads} reads, {lake_writes} writes:\n{page}"
    );
}

/// A worker with `[http] listen` serves its own `/metrics` (its tasks, its source requests) and
/// `/v1/info`; the query API stays on the coordinator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_serves_its_own_metrics() {
    let lake = compat_tests::TempDir::new("http-worker-lake");
    let catalog = compat_tests::lake_catalog_toml(lake.path());
    let (coordinator_http, worker_http) = (free_port(), free_port());
    let coordinator_config = ConfigDir::new()
        .config(&format!(
            "[http]\nlisten = \"127.0.0.1:{coordinator_http}\"\n"
        ))
        .catalog("lk", &catalog);
    let worker_config = ConfigDir::new()
        .config(&format!("[http]\nlisten = \"127.0.0.1:{worker_http}\"\n"))
        .catalog("lk", &catalog);
    let rpc = format!("127.0.0.1:{}", free_port());
    let coordinator = Tributary::start_with_args(
        Some(coordinator_config.path()),
        &["--role", "coordinator", "--rpc-listen", &rpc],
    );
    let worker = Tributary::start_worker(Some(worker_config.path()), &rpc, "w1");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let nodes = json(coordinator_http, "/v1/node", None);
        if nodes
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["nodeId"] == "w1" && n["state"] == "active")
        {
            break;
        }
        assert!(Instant::now() < deadline, "w1 never active: {nodes}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let info = json(worker_http, "/v1/info", None);
    assert_eq!(info["coordinator"], false, "{info}");
    assert_eq!(info["nodeId"], "w1", "{info}");
    assert_eq!(request(worker_http, "GET", "/v1/query", None).0, 404);

    let client = coordinator.connect("tpch").await;
    client
        .batch_execute(
            "create schema lk.w; create table lk.w.orders as select * from tpch.tiny.orders",
        )
        .await
        .unwrap();
    let rows = client
        .simple_query("select o_orderstatus, count(*) from lk.w.orders group by 1")
        .await
        .unwrap();
    assert!(rows.len() > 3);
    let (status, page) = request(worker_http, "GET", "/metrics", None);
    assert_eq!(status, 200);
    assert!(
        sample(&page, r#"tributary_node_tasks_total{result="finished"}"#).is_some_and(|n| n >= 1.0),
        "the worker ran tasks:\n{page}\nworker log:\n{}",
        compat_tests::tail(&worker.log(), 30)
    );
    assert!(
        page.contains(r#"tributary_source_request_seconds_count{catalog="lk",connector="lake""#),
        "the worker read the lake:\n{page}"
    );
    assert!(page.contains("tributary_tasks_running "), "{page}");
    assert!(
        !page.contains("tributary_sessions_active") && !page.contains("tributary_workers{"),
        "coordinator-only gauges:\n{page}"
    );
}
