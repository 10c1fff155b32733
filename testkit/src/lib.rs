//! Test support for every Tributary crate: the real services tests run against, started on
//! 127.0.0.1 and free ports, and stopped when the test process ends.
//!
//! - [`Postgres`]: PostgreSQL 15 (`initdb` + `pg_ctl`, as the `postgres` OS user when root), one per
//!   test process ([`Postgres::shared`], trust auth) or one of a test's own
//!   ([`Postgres::dedicated`], with a password and TLS if asked), which a test may stop and start.
//! - [`Mariadb`]: MariaDB (MySQL protocol), shared or dedicated (TLS if asked), stoppable.
//! - [`Tansu`]: the `tansu` Kafka-protocol broker (memory engine), with topic creation and
//!   producing through its CLI.
//! - [`Moto`]: a moto S3 server, with bucket creation and uploads over plain HTTP.
//! - [`TempDir`]: scratch directories; [`cleanup`]: what runs when the test process exits, however
//!   it exits; [`service`]: running the services' tools and waiting for a server to be ready.
//!
//! No mocks and no silent skips: a service that cannot be found is a panic naming what is missing
//! and saying that `scripts/test.sh` installs it. This crate owns starting and stopping services;
//! what a test does with them (catalog files, the `tributary` binary, clients) stays with the test.

pub mod cleanup;
mod fsutil;
mod mariadb;
mod moto;
mod postgres;
pub mod service;
mod tansu;

pub use fsutil::{TempDir, files_under, toml_string};
pub use mariadb::{Mariadb, MariadbOptions};
pub use moto::Moto;
pub use postgres::{Postgres, PostgresOptions};
pub use tansu::Tansu;

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A server's certificate and private key (PEM files), for services started with TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The server certificate.
    pub cert: PathBuf,
    /// Its private key (unencrypted).
    pub key: PathBuf,
}

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives inside the workspace")
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

/// Connects to a Postgres-protocol server with `config` (no TLS), spawning the connection task on
/// the current tokio runtime. Panics with `what` and the error on failure.
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
