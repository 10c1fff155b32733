//! How the pool of a catalog connects to MySQL / MariaDB ([`MySource`]), and the connector's error
//! messages.
//!
//! The pool itself is the generic [`crate::pool::Pool`]. An idle connection is pinged before it is
//! reused. A dirty connection (its result not read to the end) has its running query killed at the
//! source (`KILL QUERY id` from another connection) and is closed, so nobody waits for rows nobody
//! reads.
//!
//! TLS follows the catalog's `ssl_mode` (rustls on the ring provider, through mysql_async):
//! `prefer` uses TLS when the server offers it (and remembers a server that does not), `require`
//! insists on it, neither checks the certificate; `verify-full` checks the chain against
//! `ssl_root_cert` and the host name (`verify-ca` is refused when the catalog is built).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, DriverError, Opts, OptsBuilder, SslOpts};

use crate::ConnectorError;
use crate::pool::{PooledSource, error_chain, scrub};
use crate::remote_config::{SslMode, TlsSettings};
use crate::sqlstate;

/// Statements run on every new connection, so values do not depend on the server's defaults:
/// results in UTF-8, `timestamp` columns in UTC, `col IS NULL` never matching the last
/// auto-increment id, and a backslash in a `'...'` literal being itself (`NO_BACKSLASH_ESCAPES`:
/// string literals are never pushed to MySQL today, values travel as parameters; this keeps quote
/// doubling the only escaping any future literal needs).
const SESSION_INIT: [&str; 4] = [
    "SET NAMES utf8mb4",
    "SET time_zone = '+00:00'",
    "SET sql_auto_is_null = 0",
    "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'NO_BACKSLASH_ESCAPES')",
];

/// The connections of one catalog to its MySQL / MariaDB server.
pub type Pool = crate::pool::Pool<MySource>;

/// One catalog's MySQL / MariaDB server: how to connect to it, and its error messages.
pub struct MySource {
    catalog: String,
    address: String,
    password: Option<String>,
    /// Holds the password: never printed (mysql_async's Debug of it would show it). With TLS
    /// when `ssl_mode` is not `disable`.
    opts: Opts,
    /// The same without TLS, for `prefer` when the server offers none.
    plain_opts: Option<Opts>,
    /// `prefer` found a server without TLS: connect plainly from now on.
    server_without_tls: AtomicBool,
    connect_timeout: Duration,
}

impl fmt::Debug for MySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySource")
            .field("catalog", &self.catalog)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Where and how to connect; built from the catalog file.
pub(crate) struct MyOptions {
    pub host: String,
    pub port: u16,
    pub database: Option<String>,
    pub user: String,
    pub password: Option<String>,
    pub connect_timeout: Duration,
    pub tls: TlsSettings,
}

/// mysql_async's TLS options for `settings` (`None`: plain TCP).
fn ssl_opts(settings: &TlsSettings) -> Option<SslOpts> {
    let roots = || {
        settings
            .root_cert
            .iter()
            .map(|p| p.clone().into())
            .collect::<Vec<_>>()
    };
    match settings.mode {
        SslMode::Disable => None,
        SslMode::Prefer | SslMode::Require => Some(
            SslOpts::default()
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
        ),
        // Refused in `from_config` (mysql_async cannot skip only the name check); if it ever gets
        // here, it is at least as strict as verify-full.
        SslMode::VerifyCa | SslMode::VerifyFull => Some(
            SslOpts::default()
                .with_root_certs(roots())
                .with_disable_built_in_roots(true),
        ),
    }
}

impl MySource {
    /// The source of catalog `catalog`, as `options` say. Connects nothing.
    pub(crate) fn new(catalog: &str, options: MyOptions) -> Self {
        // mysql_async builds its rustls client on the process default provider: ring, as the
        // rest of the workspace (an already installed default is kept).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let opts = OptsBuilder::default()
            .ip_or_hostname(options.host.clone())
            .tcp_port(options.port)
            .user(Some(options.user.clone()))
            .pass(options.password.clone())
            .db_name(options.database.clone())
            // Stay on TCP: by default mysql_async switches to the server's Unix socket on loopback.
            .prefer_socket(false)
            .init(SESSION_INIT.to_vec())
            .stmt_cache_size(32usize);
        let plain_opts =
            (options.tls.mode == SslMode::Prefer).then(|| Opts::from(opts.clone().ssl_opts(None)));
        let opts = opts.ssl_opts(ssl_opts(&options.tls));
        MySource {
            catalog: catalog.to_string(),
            address: format!("{}:{}", options.host, options.port),
            password: options.password.filter(|p| !p.is_empty()),
            opts: Opts::from(opts),
            plain_opts,
            server_without_tls: AtomicBool::new(false),
            connect_timeout: options.connect_timeout,
        }
    }

    /// `catalog "NAME": cannot connect to MySQL at host:port: reason`, never with the password.
    fn connect_error(&self, e: &mysql_async::Error) -> ConnectorError {
        // A refused login keeps its class-28 code (the catalog's credentials are wrong); any other
        // refusal (too many connections, unknown database, host blocked) is, for our client, a
        // source it cannot reach: 08001, with MySQL's code in the message.
        let sqlstate = match e {
            mysql_async::Error::Server(s) if sqlstate_of(s.code, &s.state).starts_with("28") => {
                sqlstate_of(s.code, &s.state)
            }
            _ => sqlstate::CONNECTION_FAILURE_ON_CONNECT.to_string(),
        };
        ConnectorError::Remote {
            sqlstate,
            message: self.scrub(format!(
                "catalog \"{}\": cannot connect to MySQL at {}: {}",
                self.catalog,
                self.address,
                error_chain(e)
            )),
        }
    }

    /// The error of a statement sent to the source: the source's own message and code, or the
    /// connection failure, naming the catalog.
    pub(crate) fn query_error(&self, e: &mysql_async::Error, sql: &str) -> ConnectorError {
        let (sqlstate, message) = match e {
            mysql_async::Error::Server(s) => (
                sqlstate_of(s.code, &s.state),
                format!(
                    "catalog \"{}\": MySQL error {} ({}): {} [remote SQL: {sql}]",
                    self.catalog, s.code, s.state, s.message
                ),
            ),
            other => (
                sqlstate::CONNECTION_FAILURE.to_string(),
                format!(
                    "catalog \"{}\": lost connection to MySQL at {}: {}",
                    self.catalog,
                    self.address,
                    error_chain(other)
                ),
            ),
        };
        ConnectorError::Remote {
            sqlstate,
            message: self.scrub(message),
        }
    }

    /// Removes the password from a message, in case a library ever echoes it.
    fn scrub(&self, message: String) -> String {
        scrub(self.password.as_deref(), message)
    }
}

impl PooledSource for MySource {
    type Conn = Conn;

    const PRODUCT: &'static str = "MySQL";

    fn catalog(&self) -> &str {
        &self.catalog
    }

    fn address(&self) -> &str {
        &self.address
    }

    /// A new connection, within the connect timeout (TLS as `ssl_mode` says).
    async fn connect(&self) -> Result<Conn, ConnectorError> {
        let plain = self
            .plain_opts
            .as_ref()
            .filter(|_| self.server_without_tls.load(Ordering::Relaxed));
        let opts = plain.unwrap_or(&self.opts).clone();
        let connect = async {
            match (Conn::new(opts).await, &self.plain_opts) {
                (
                    Err(mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer)),
                    Some(plain),
                ) => {
                    self.server_without_tls.store(true, Ordering::Relaxed);
                    Conn::new(plain.clone()).await
                }
                (result, _) => result,
            }
        };
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(self.connect_error(&e)),
            Err(_) => Err(ConnectorError::Remote {
                sqlstate: sqlstate::CONNECTION_FAILURE_ON_CONNECT.into(),
                message: format!(
                    "catalog \"{}\": cannot connect to MySQL at {}: timed out after {:?}",
                    self.catalog, self.address, self.connect_timeout
                ),
            }),
        }
    }

    /// mysql_async cannot tell without a round trip: [`MySource::is_alive`] pings.
    fn is_closed(&self, _conn: &Conn) -> bool {
        false
    }

    /// An idle connection may have been closed by the server (restart, `wait_timeout`).
    async fn is_alive(&self, conn: &mut Conn) -> bool {
        conn.ping().await.is_ok()
    }

    /// Kills the statement running on `conn` (best effort) from another connection (an idle one,
    /// else a new one, closed afterwards), then closes `conn`.
    async fn discard(pool: Arc<Pool>, conn: Conn) {
        let id = conn.id();
        let other = match pool.take_idle() {
            Some(c) => Some(c),
            None => pool.source().connect().await.ok(),
        };
        if let Some(mut other) = other {
            if let Err(e) = other.query_drop(format!("KILL QUERY {id}")).await {
                tracing::debug!(
                    "catalog \"{}\": KILL QUERY {id} failed: {e}",
                    pool.catalog()
                );
            }
            // `other` (an idle connection taken from the pool, or a new one) no longer counts
            // against `pool_size`: close it rather than growing the pool.
            let _ = other.disconnect().await;
        }
        // Closes the dirty connection (COM_QUIT); the source ends the killed statement.
        let _ = conn.disconnect().await;
    }
}

/// A PostgreSQL SQLSTATE for a MySQL error: the known equivalents by error number, else MySQL's own
/// SQLSTATE when it is a standard code Postgres clients understand, else `XX000`.
pub(crate) fn sqlstate_of(code: u16, state: &str) -> String {
    let mapped = match code {
        1045 => "28P01",                      // access denied (bad user / password)
        1044 | 1142 | 1143 | 1227 => "42501", // no privilege
        1049 => "3D000",                      // unknown database
        1146 => "42P01",                      // table does not exist
        1054 => "42703",                      // unknown column
        1064 | 1149 => "42601",               // syntax error
        1040 | 1203 => "53300",               // too many connections
        1317 | 3024 | 1969 => "57014",        // query interrupted / execution time exceeded
        1205 => "55P03",                      // lock wait timeout
        1213 => "40P01",                      // deadlock
        1062 | 1586 => "23505",               // duplicate key
        1048 => "23502",                      // column cannot be null
        1451 | 1452 => "23503",               // foreign key
        1365 => "22012",                      // division by zero
        1264 | 1690 => "22003",               // out of range
        _ => "",
    };
    if !mapped.is_empty() {
        return mapped.to_string();
    }
    let standard = state.len() == 5
        && state
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        && !state.starts_with("HY")
        && !state.starts_with("42S")
        && state != sqlstate::SUCCESSFUL_COMPLETION;
    if standard {
        state.to_string()
    } else {
        sqlstate::INTERNAL_ERROR.to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tributary_testkit::Mariadb;

    use super::*;

    /// A pool of one connection of catalog `catalog` over `my` as `root`, without TLS.
    fn small_pool(my: &Mariadb, catalog: &str) -> Arc<Pool> {
        let source = MySource::new(
            catalog,
            MyOptions {
                host: "127.0.0.1".into(),
                port: my.port(),
                database: None,
                user: "root".into(),
                password: None,
                connect_timeout: Duration::from_secs(5),
                tls: TlsSettings {
                    mode: SslMode::Disable,
                    root_cert: None,
                },
            },
        );
        Arc::new(Pool::new(source, 1, Duration::from_secs(5)))
    }

    /// Whether connection `id` is still open at the server.
    fn open(my: &Mariadb, id: u32) -> bool {
        let rows = my.query(&format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {id}"
        ));
        rows[0][0].as_deref() != Some("0")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_idle_connection_is_pinged_and_replaced() {
        let my = Mariadb::shared();
        let pool = small_pool(my, "dead");
        let conn = pool.get().await.expect("connect");
        let old = conn.id();
        drop(conn);
        // The server ends the idle connection (as a restart or `wait_timeout` would).
        my.execute(&format!("KILL {old}"));

        let mut conn = pool.get().await.expect("a new connection");
        assert_ne!(conn.id(), old, "the dead connection was handed out");
        let one: Option<u8> = conn.query_first("SELECT 1").await.expect("usable");
        assert_eq!(one, Some(1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dirty_connection_is_killed_and_not_reused() {
        let my = Mariadb::shared();
        let pool = small_pool(my, "dirty");
        // Another session holds a row lock (not SLEEP: the server ends a sleep by itself within
        // 5 s once its client is gone; a lock wait lasts innodb_lock_wait_timeout, 50 s).
        let holder_pool = small_pool(my, "holder");
        let mut holder = holder_pool.get().await.expect("connect");
        for sql in [
            "CREATE DATABASE IF NOT EXISTS pool_test",
            "CREATE TABLE IF NOT EXISTS pool_test.locked (id INT PRIMARY KEY)",
            "INSERT IGNORE INTO pool_test.locked VALUES (1)",
            "START TRANSACTION",
            "SELECT id FROM pool_test.locked WHERE id = 1 FOR UPDATE",
        ] {
            holder.query_drop(sql).await.expect(sql);
        }
        let mut conn = pool.get().await.expect("connect");
        let old = conn.id();
        // A statement left waiting, its user gone (a cancelled scan): the task is aborted with
        // the connection marked not reusable.
        conn.set_reusable(false);
        let task = tokio::spawn(async move {
            let _ = conn
                .query_drop("SELECT id FROM pool_test.locked WHERE id = 1 FOR UPDATE")
                .await;
            drop(conn);
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        task.abort();
        let _ = task.await;

        // The statement is killed and the connection closed, long before the lock wait times out.
        let deadline = Instant::now() + Duration::from_secs(20);
        while open(my, old) {
            assert!(Instant::now() < deadline, "connection {old} still open");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The permit is free again, and the connection was not reused.
        let mut conn = pool.get().await.expect("a connection");
        assert_ne!(conn.id(), old, "a dirty connection was reused");
        let one: Option<u8> = conn.query_first("SELECT 1").await.expect("usable");
        assert_eq!(one, Some(1));
        holder.query_drop("ROLLBACK").await.expect("rollback");
    }

    #[test]
    fn sqlstates() {
        assert_eq!(sqlstate_of(1045, "28000"), "28P01");
        assert_eq!(sqlstate_of(1146, "42S02"), "42P01");
        assert_eq!(sqlstate_of(9999, "22007"), "22007");
        assert_eq!(sqlstate_of(9999, "HY000"), "XX000");
        assert_eq!(sqlstate_of(9999, "42S99"), "XX000");
    }
}
