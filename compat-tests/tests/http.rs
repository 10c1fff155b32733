//! The coordinator's HTTP listener (`[http] listen`): Prometheus metrics that move with the work
//! done, Trino-like `/v1/info`, `/v1/node` and `/v1/query` JSON, cancelling a running query with
//! `DELETE /v1/query/ID` (the client gets 57014), and HTTP Basic authentication against the users
//! file with `pg_cancel_backend`'s rule for other users' queries.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use compat_tests::{ConfigDir, Tributary, free_port};
use serde_json::Value;

/// One HTTP/1.1 request to `127.0.0.1:port` (Basic credentials `user:password` when given): the
/// status code and the body.
fn request(port: u16, method: &str, path: &str, credentials: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("HTTP listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let auth = credentials
        .map(|c| format!("Authorization: Basic {}\r\n", base64(c.as_bytes())))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    // Chunked bodies: keep the chunks' data only.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            out.push_str(&after[..size]);
            rest = &after[size + 2..];
        }
        out
    } else {
        body.to_string()
    };
    (status, body)
}

/// Standard base64 (what Basic authentication wants), without a dependency.
fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn json(port: u16, path: &str, credentials: Option<&str>) -> Value {
    let (status, body) = request(port, "GET", path, credentials);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// The value of the sample `name` (with its labels, as written) in a Prometheus text page.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
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
