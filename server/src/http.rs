//! The HTTP listener (`[http] listen`): on the coordinator Prometheus metrics, a Trino-like JSON API
//! for scripts and the web UI; on a worker its own metrics and `/v1/info` ([`serve_worker`]).
//!
//! | request | answer |
//! |---|---|
//! | `GET /metrics` | Prometheus text format: the engine's counters and histograms and the connectors' per-catalog source requests (`tributary_exec::metrics::gather`), and gauges read now (running queries, sessions, workers by state, tasks running, memory reserved) |
//! | `GET /v1/info` | `{"nodeId", "nodeVersion": {"version"}, "environment", "coordinator", "role", "starting", "uptimeSeconds"}` (Trino's `/v1/info`) |
//! | `GET /v1/node` | the cluster's nodes, as `system.runtime.nodes` |
//! | `GET /v1/query` | every query the coordinator remembers, newest first, with its progress |
//! | `GET /v1/query/ID` | one query, with its tasks (404 when unknown) |
//! | `DELETE /v1/query/ID` | cancels it: 204; 404 when it does not run; 403 for another user's query unless an `[auth] admin_users` user |
//! | `GET /ui/` (`/` redirects there), `/ui/app.js`, `/ui/style.css` | the web UI: query list, query page with its stage graph, cluster page (files in `server/ui/`, built in) |
//!
//! With a password method in `[auth]`, every request needs HTTP Basic authentication as a user of
//! the users file (401 otherwise); with trust, the caller is anonymous and may cancel any query.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine as _;
use prometheus::{Encoder, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tributary_exec::Engine;
use tributary_exec::system::{QueryInfo, QueryState};
use tributary_exec::tracker::QueryProgress;

use crate::auth::Security;
use crate::config::AuthMethod;
use crate::pgwire::Frontend;

/// What the handlers share.
#[derive(Clone)]
struct Http {
    engine: Arc<Engine>,
    /// The coordinator's front end (sessions, cancel); `None` on a worker.
    frontend: Option<Arc<Frontend>>,
    security: Arc<Security>,
    started: Instant,
}

/// The authenticated caller of a request (`None`: no authentication configured).
#[derive(Clone)]
struct Caller(Option<String>);

/// Serves HTTP on `listener` until the process ends.
pub async fn serve(listener: TcpListener, engine: Arc<Engine>, frontend: Arc<Frontend>) {
    tributary_exec::metrics::init();
    let state = Http {
        engine,
        security: Arc::clone(frontend.security()),
        frontend: Some(frontend),
        started: Instant::now(),
    };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/info", get(info))
        .route("/v1/node", get(nodes))
        .route("/v1/query", get(queries))
        .route("/v1/query/{id}", get(query).delete(cancel))
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route(
            "/ui/",
            get(|| ui_file("text/html; charset=utf-8", UI_INDEX)),
        )
        .route(
            "/ui/app.js",
            get(|| ui_file("text/javascript; charset=utf-8", UI_APP)),
        )
        .route(
            "/ui/style.css",
            get(|| ui_file("text/css; charset=utf-8", UI_STYLE)),
        )
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("HTTP listener stopped: {e}");
    }
}

/// A worker's HTTP listener (`[http] listen` in a worker's config): `GET /metrics` (its own tasks,
/// source requests and memory; no queries or sessions, which live on the coordinator) and
/// `GET /v1/info`, behind the same HTTP Basic authentication as the coordinator's.
pub async fn serve_worker(listener: TcpListener, engine: Arc<Engine>, security: Arc<Security>) {
    tributary_exec::metrics::init();
    let state = Http {
        engine,
        frontend: None,
        security,
        started: Instant::now(),
    };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/info", get(info))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("HTTP listener stopped: {e}");
    }
}

/// The web UI's files, built into the binary.
const UI_INDEX: &str = include_str!("../ui/index.html");
const UI_APP: &str = include_str!("../ui/app.js");
const UI_STYLE: &str = include_str!("../ui/style.css");

/// One of the web UI's files, with its content type.
async fn ui_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// HTTP Basic authentication against the users file, when `[auth]` has a password method.
async fn authenticate(State(http): State<Http>, mut request: Request, next: Next) -> Response {
    let security = &http.security;
    let users = match (&security.users, security.method) {
        (Some(users), method) if method != AuthMethod::Trust => users,
        _ => {
            request.extensions_mut().insert(Caller(None));
            return next.run(request).await;
        }
    };
    let credentials = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    if let Some((user, password)) = credentials.as_deref().and_then(|c| c.split_once(':'))
        && users.verify(user, password)
    {
        request
            .extensions_mut()
            .insert(Caller(Some(user.to_string())));
        return next.run(request).await;
    }
    if credentials.is_some() {
        tracing::warn!("HTTP request with a wrong user or password refused");
    }
    let mut response = (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"tributary\""),
    );
    response
}

/// `GET /metrics`.
async fn metrics(State(http): State<Http>) -> Response {
    let now = Registry::new();
    let gauge = |name: &str, help: &str, value: i64| {
        let g = IntGauge::new(name, help).expect("valid metric");
        g.set(value);
        let _ = now.register(Box::new(g));
    };
    let engine = &http.engine;
    let running = engine
        .tracker()
        .query_infos()
        .iter()
        .filter(|q| q.state == QueryState::Running)
        .count();
    gauge(
        "tributary_queries_running",
        "Queries running now",
        running as i64,
    );
    if let Some(frontend) = &http.frontend {
        gauge(
            "tributary_sessions_active",
            "PostgreSQL-wire sessions connected now",
            frontend.session_count() as i64,
        );
    }
    gauge(
        "tributary_tasks_running",
        "Tasks running now on this node",
        engine.running_tasks() as i64,
    );
    gauge(
        "tributary_memory_reserved_bytes",
        "Bytes reserved now in this node's query memory pool",
        engine.memory_reserved() as i64,
    );
    let workers = IntGaugeVec::new(
        Opts::new("tributary_workers", "Nodes taking tasks, by state"),
        &["state"],
    )
    .expect("valid metric");
    for state in ["active", "draining", "dead"] {
        workers.with_label_values(&[state]).set(0);
    }
    if http.frontend.is_some() {
        for node in engine.workers().nodes() {
            workers.with_label_values(&[node.state.as_str()]).inc();
        }
        let _ = now.register(Box::new(workers));
    }
    let mut families = tributary_exec::metrics::gather();
    families.extend(now.gather());
    let mut body = Vec::new();
    let encoder = TextEncoder::new();
    if let Err(e) = encoder.encode(&families, &mut body) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    let mut headers = HeaderMap::new();
    if let Ok(content_type) = HeaderValue::from_str(encoder.format_type()) {
        headers.insert(header::CONTENT_TYPE, content_type);
    }
    (headers, body).into_response()
}

/// `GET /v1/info`.
async fn info(State(http): State<Http>) -> Response {
    axum::Json(json!({
        "nodeId": http.engine.node_id(),
        "nodeVersion": {"version": env!("CARGO_PKG_VERSION")},
        "environment": "tributary",
        "coordinator": http.frontend.is_some(),
        "role": http.engine.config().node.role.name(),
        "starting": false,
        "uptimeSeconds": http.started.elapsed().as_secs_f64(),
    }))
    .into_response()
}

/// `GET /v1/node`.
async fn nodes(State(http): State<Http>) -> Response {
    let nodes: Vec<Value> = http
        .engine
        .workers()
        .nodes()
        .into_iter()
        .map(|n| {
            json!({
                "nodeId": n.node_id,
                "address": n.address,
                "role": n.role,
                "state": n.state.as_str(),
                "lastHeartbeatUs": n.last_heartbeat_us,
                "runningTasks": n.running_tasks,
            })
        })
        .collect();
    axum::Json(nodes).into_response()
}

/// A query as the API shows it, with its progress from its tasks.
fn query_json(q: &QueryInfo, progress: QueryProgress) -> Value {
    json!({
        "queryId": q.query_id,
        "state": q.state.as_str(),
        "user": q.user,
        "query": q.query,
        "sessionPid": q.session_pid,
        "createdUs": q.created_us,
        "elapsedMs": q.elapsed_ms,
        "rows": q.rows,
        "error": q.error,
        "retryPolicy": q.retry_policy,
        "attempts": q.attempts,
        "progress": {
            "stages": progress.stages,
            "finishedStages": progress.finished_stages,
            "tasks": progress.tasks,
            "finishedTasks": progress.finished_tasks,
        },
    })
}

/// `GET /v1/query`.
async fn queries(State(http): State<Http>) -> Response {
    let tracker = http.engine.tracker();
    let progress = tracker.progress_by_query();
    let mut list: Vec<Value> = tracker
        .query_infos()
        .iter()
        .map(|q| {
            let p = progress.get(&q.query_id).copied().unwrap_or_default();
            query_json(q, p)
        })
        .collect();
    list.reverse();
    axum::Json(list).into_response()
}

/// `GET /v1/query/ID`.
async fn query(State(http): State<Http>, Path(id): Path<String>) -> Response {
    let tracker = http.engine.tracker();
    let Some(q) = tracker.query_infos().into_iter().find(|q| q.query_id == id) else {
        return (StatusCode::NOT_FOUND, format!("query {id} is not known\n")).into_response();
    };
    let tasks = tracker.tasks_of(&id);
    let mut body = query_json(&q, QueryProgress::of(&tasks));
    body["tasks"] = tasks
        .iter()
        .map(|t| {
            json!({
                "queryId": t.query_id,
                "stage": t.stage,
                "task": t.task,
                "attempt": t.attempt,
                "worker": t.worker,
                "state": t.state.as_str(),
                "rows": t.rows,
                "bytes": t.bytes,
                "spooledBytes": t.spooled_bytes,
                "elapsedMs": t.elapsed_ms,
                "error": t.error,
            })
        })
        .collect();
    axum::Json(body).into_response()
}

/// `DELETE /v1/query/ID`.
async fn cancel(
    State(http): State<Http>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    // Without authentication the caller may cancel any query, as any session may connect as anyone.
    let user = match &caller.0 {
        Some(user) => user.clone(),
        None => http
            .engine
            .tracker()
            .query_infos()
            .into_iter()
            .find(|q| q.query_id == id)
            .map(|q| q.user)
            .unwrap_or_default(),
    };
    let Some(frontend) = &http.frontend else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match frontend.cancel_query(&id, &user) {
        Ok(true) => {
            tracing::info!(query = %id, by = %user, "canceled over HTTP");
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => (
            StatusCode::NOT_FOUND,
            format!("query {id} is not running\n"),
        )
            .into_response(),
        Err(()) => (
            StatusCode::FORBIDDEN,
            "permission denied: another user's query\n",
        )
            .into_response(),
    }
}
