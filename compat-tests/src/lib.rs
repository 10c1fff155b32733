//! Black-box test harness for Tributary.
//!
//! Everything here talks to real processes over real sockets:
//! - [`Tributary`]: the built `tributary` binary on a free port (killed on drop), with its log.
//! - [`Postgres::shared`]: one real PostgreSQL 15 per test process (stopped at process exit).
//! - [`Moto::shared`]: one moto S3 server per test process, with bucket creation and uploads.
//! - [`Mariadb::shared`]: one real MariaDB per test process (SQL through the `mariadb` client).
//! - [`TempDir`] / [`ConfigDir`]: scratch directories and `config.toml` / `catalog/NAME.toml` files.
//! - [`results`]: run a query with the simple protocol (every value as text) and compare result
//!   sets with stated tolerances.
//! - [`tpch`]: load TPC-H data (the same `tpchgen` generator the server uses) into PostgreSQL.
//! - [`tpch_compare`]: one TPC-H query on PostgreSQL and on the server, answers compared.
//! - [`pushdown`]: the remote statements EXPLAIN shows for a connector's scans.
//! - [`source_failure`]: what a client sees when a catalog's source fails.
//!
//! Nothing is skipped silently: a missing PostgreSQL, moto or binary is a panic that says what to
//! install (`scripts/test.sh` installs all of it).

mod cleanup;
mod fsutil;
mod mariadb;
mod moto;
mod postgres;
pub mod pushdown;
pub mod results;
mod service;
pub mod source_failure;
mod tansu;
pub mod tpch;
pub mod tpch_compare;
mod tributary;

pub use fsutil::{ConfigDir, TempDir, toml_string};
pub use mariadb::Mariadb;
pub use moto::Moto;
pub use postgres::Postgres;
pub use tansu::Tansu;
pub use tributary::{StartFailure, Tributary};

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("compat-tests lives inside the workspace")
        .to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` if set (relative to the workspace root), else
/// `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago and that this process has not handed out
/// before (so two services started by one test process never get the same port).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    for _ in 0..100 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        if given.insert(port) {
            return port;
        }
    }
    panic!("could not find a free TCP port on 127.0.0.1");
}

/// Finds an executable named `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The last `n` lines of `text` (for panic messages quoting a log).
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

/// Connects to a Postgres-protocol server with `config`, spawning the connection task on the
/// current tokio runtime. Panics with `what` and the error on failure.
pub async fn connect_with(config: &tokio_postgres::Config, what: &str) -> tokio_postgres::Client {
    match try_connect_with(config).await {
        Ok(client) => client,
        Err(e) => panic!("could not connect to {what}: {e} ({e:?})"),
    }
}

/// Like [`connect_with`] but returns the error.
pub async fn try_connect_with(
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        // The error (if any) surfaces on the client's next call; nothing to do here.
        let _ = connection.await;
    });
    Ok(client)
}
