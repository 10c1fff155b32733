//! The web UI at `/ui/` in a real browser: Debian's headless Chromium driven through chromedriver's
//! W3C WebDriver HTTP API (plain HTTP/1.1 over a `TcpStream`, no client library). While an endless
//! query runs, the list shows it RUNNING with a moving elapsed time, its page draws the stage graph,
//! and the list's Cancel button cancels it (the client gets 57014); a screenshot of the list is not
//! blank.
//!
//! `scripts/deps/chromium.sh` installs `chromium` and `chromium-driver`; a missing one fails the
//! tests.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use compat_tests::{ConfigDir, TempDir, Tributary, free_port};
use serde_json::{Value, json};

/// One HTTP/1.1 request with an optional JSON body to `127.0.0.1:port`: the status and the body.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let body = body.map(Value::to_string);
    compat_tests::http::request(port, method, path, None, body.as_deref())
}

/// A headless Chromium behind a chromedriver of our own; ends both when dropped.
struct Browser {
    driver: Child,
    port: u16,
    session: String,
    /// Removed when dropped, after `drop` ended the browser.
    profile: TempDir,
}

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start() -> Browser {
        for tool in ["chromium", "chromedriver"] {
            let found = Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                found,
                "{tool} not found: run scripts/test.sh (scripts/deps/chromium.sh installs it)"
            );
        }
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        // A fresh temporary directory, as the browser's profile (--user-data-dir).
        let profile = TempDir::new("chromium-profile");
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
            profile,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        let binary = Command::new("sh")
            .args(["-c", "command -v chromium"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1200,800",
        ]
        .map(String::from)
        .into_iter()
        .chain([format!(
            "--user-data-dir={}",
            browser.profile.path().display()
        )])
        .collect::<Vec<_>>();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": binary, "args": args},
        }}});
        let (status, body) = http(port, "POST", "/session", Some(&capabilities));
        assert_eq!(status, 200, "new session: {body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        browser.session = answer["value"]["sessionId"].as_str().unwrap().to_string();
        browser
    }

    /// A WebDriver command of this session: its `value`, or the error's message.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let path = format!("/session/{}{path}", self.session);
        let (status, text) = http(self.port, method, &path, body.as_ref());
        let answer: Value =
            serde_json::from_str(&text).map_err(|e| format!("{path}: {e}: {text}"))?;
        if status == 200 {
            Ok(answer["value"].clone())
        } else {
            Err(format!("{method} {path}: {status} {}", answer["value"]))
        }
    }

    fn go(&self, url: &str) {
        self.command("POST", "/url", Some(json!({"url": url})))
            .unwrap();
    }

    /// The elements matching a CSS selector now.
    fn find(&self, css: &str) -> Vec<String> {
        let found = self
            .command(
                "POST",
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .unwrap();
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[ELEMENT].as_str().unwrap().to_string())
            .collect()
    }

    /// The text of the first element matching `css`, once there is one (the page polls every second).
    fn text(&self, css: &str) -> String {
        self.wait_for(css, |b, e| {
            b.command("GET", &format!("/element/{e}/text"), None)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
        })
    }

    /// Retries `f` on the first element matching `css` until it gives an answer (elements go stale
    /// when the page redraws).
    fn wait_for<T>(&self, css: &str, f: impl Fn(&Browser, &str) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(found) = self.find(css).first().and_then(|e| f(self, e)) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no {css} in the page:\n{}",
                self.command("GET", "/source", None).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A PNG screenshot of the viewport, as WebDriver gives it (base64).
    fn screenshot(&self) -> String {
        let png = self.command("GET", "/screenshot", None).unwrap();
        let png = png.as_str().unwrap().to_string();
        assert!(png.starts_with("iVBORw0KGgo"), "not a PNG");
        png
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.command("DELETE", "", None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Waits until the query running `text` is listed RUNNING by the API; its id.
fn running_query(port: u16, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = http(port, "GET", "/v1/query", None);
        let list: Value = serde_json::from_str(&body).unwrap();
        if let Some(q) = list.as_array().unwrap().iter().find(|q| {
            q["state"] == "RUNNING" && q["query"].as_str().is_some_and(|s| s.contains(text))
        }) {
            return q["queryId"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "{text} never ran: {list}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const ENDLESS: &str =
    "select a % 3, count(*) from generate_series(1, 100000000000) t(a) group by 1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_shows_and_cancels_a_running_query() {
    let port = free_port();
    let config = ConfigDir::new().config(&format!("[http]\nlisten = \"127.0.0.1:{port}\"\n"));
    let server = Tributary::start(Some(config.path()));
    let (status, _) = http(port, "GET", "/", None);
    assert!(
        (300..400).contains(&status),
        "/ redirects to /ui/: {status}"
    );
    let browser = Browser::start();

    let runner = server.connect("tpch").await;
    let running = tokio::spawn(async move { runner.simple_query(ENDLESS).await });
    let id = running_query(port, "generate_series(1, 100000000000)");
    let base = format!("http://127.0.0.1:{port}");
    browser.go(&format!("{base}/"));
    let row = format!("tr[data-query-id=\"{id}\"]");
    assert_eq!(browser.text(&format!("{row} .state")), "RUNNING");
    let first = browser.text(&format!("{row} .elapsed"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = browser.text(&format!("{row} .elapsed"));
        if now != first {
            break;
        }
        assert!(Instant::now() < deadline, "elapsed stayed {first}");
    }

    // The query's page: its SQL and its stage graph.
    browser.go(&format!("{base}/ui/#query/{id}"));
    let sql = browser.text("pre.sql");
    assert!(sql.to_lowercase().contains("group by 1"), "{sql}");
    // Stage 0 (the root) and at least one stage of tasks, each box with its task counts.
    let box0 = browser.text("#stage-graph .stage[data-stage=\"0\"]");
    assert!(box0.contains("root"), "{box0}");
    let tasks = browser.wait_for("#stage-graph .stage:not([data-stage=\"0\"])", |b, e| {
        let tasks = b
            .command("GET", &format!("/element/{e}/attribute/data-tasks"), None)
            .ok()?;
        let tasks: u32 = tasks.as_str()?.parse().ok()?;
        (tasks > 0).then_some(tasks)
    });
    let box1 = browser.text("#stage-graph .stage[data-stage=\"1\"]");
    assert!(box1.contains(&format!("/{tasks} tasks finished")), "{box1}");
    assert!(browser.find("#tasks tr.task").len() >= tasks as usize);

    // Back to the list: its Cancel button cancels the query.
    browser.go(&format!("{base}/ui/"));
    browser.wait_for(&format!("{row} button.cancel"), |b, e| {
        b.command("POST", &format!("/element/{e}/click"), Some(json!({})))
            .ok()
    });
    let err = tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .expect("canceled in time")
        .unwrap()
        .expect_err("canceled");
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err:?}");
    assert_eq!(
        browser.text(&format!(
            "tr[data-query-id=\"{id}\"][data-state=\"CANCELED\"] .state"
        )),
        "CANCELED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screenshot_of_the_ui_is_not_blank() {
    let port = free_port();
    let config = ConfigDir::new().config(&format!("[http]\nlisten = \"127.0.0.1:{port}\"\n"));
    let server = Tributary::start(Some(config.path()));
    let client = server.connect("tpch").await;
    client
        .simple_query("select o_orderpriority, count(*) from tpch.tiny.orders group by 1")
        .await
        .unwrap();
    let browser = Browser::start();
    browser.go("about:blank");
    let blank = browser.screenshot();
    browser.go(&format!("http://127.0.0.1:{port}/ui/"));
    assert_eq!(browser.text("tr.query .state"), "FINISHED");
    let page = browser.screenshot();
    assert!(
        page.len() > blank.len() * 2,
        "the UI's screenshot ({} base64 bytes) is about as small as a blank page's ({})",
        page.len(),
        blank.len()
    );
    browser.go(&format!("http://127.0.0.1:{port}/ui/#cluster"));
    assert_eq!(browser.text("tr.node .state"), "active");
}
