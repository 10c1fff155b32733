//! A small connection pool for one catalog, and the error messages of the connector.
//!
//! At most `pool_size` connections are open at once; idle ones are kept for reuse. A connection whose
//! result was not read to the end (a cancelled scan, a LIMIT satisfied early) is not reused: its
//! running query is killed at the source (`KILL QUERY id` from another connection) and the connection
//! closed, so nobody waits for rows nobody reads.
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
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ConnectorError;
use crate::remote_config::{SslMode, TlsSettings};
use crate::sqlstate;

/// Statements run on every new connection, so values do not depend on the server's defaults:
/// results in UTF-8, `timestamp` columns in UTC, and `col IS NULL` never matching the last
/// auto-increment id.
const SESSION_INIT: [&str; 3] = [
    "SET NAMES utf8mb4",
    "SET time_zone = '+00:00'",
    "SET sql_auto_is_null = 0",
];

/// Connections of one catalog to its MySQL / MariaDB server.
pub struct Pool {
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
    idle: Mutex<Vec<Conn>>,
    permits: Arc<Semaphore>,
    size: usize,
    connect_timeout: Duration,
    acquire_timeout: Duration,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("catalog", &self.catalog)
            .field("address", &self.address)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Where and how to connect; built from the catalog file.
pub(crate) struct PoolOptions {
    pub host: String,
    pub port: u16,
    pub database: Option<String>,
    pub user: String,
    pub password: Option<String>,
    pub size: usize,
    pub connect_timeout: Duration,
    pub acquire_timeout: Duration,
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

impl Pool {
    pub(crate) fn new(catalog: &str, options: PoolOptions) -> Self {
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
        let size = options.size.max(1);
        Pool {
            catalog: catalog.to_string(),
            address: format!("{}:{}", options.host, options.port),
            password: options.password.filter(|p| !p.is_empty()),
            opts: Opts::from(opts),
            plain_opts,
            server_without_tls: AtomicBool::new(false),
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size)),
            size,
            connect_timeout: options.connect_timeout,
            acquire_timeout: options.acquire_timeout,
        }
    }

    /// The catalog name, as used in error messages.
    pub(crate) fn catalog(&self) -> &str {
        &self.catalog
    }

    /// An open connection: an idle one if any, else a new one. Waits for a free slot when
    /// `pool_size` connections are in use, failing after the acquire timeout.
    pub(crate) async fn get(self: &Arc<Self>) -> Result<PooledConn, ConnectorError> {
        let permit = tokio::time::timeout(
            self.acquire_timeout,
            Arc::clone(&self.permits).acquire_owned(),
        )
        .await
        .map_err(|_| {
            ConnectorError::Source(format!(
                "catalog \"{}\": timed out after {:?} waiting for a free connection to MySQL \
                 at {} (pool_size = {})",
                self.catalog, self.acquire_timeout, self.address, self.size
            ))
        })?
        .map_err(|_| {
            ConnectorError::Source(format!("catalog \"{}\": pool closed", self.catalog))
        })?;
        let mut conn = None;
        loop {
            let idle = self.idle.lock().pop();
            let Some(mut candidate) = idle else {
                break;
            };
            // An idle connection may have been closed by the server (restart, wait_timeout).
            if candidate.ping().await.is_ok() {
                conn = Some(candidate);
                break;
            }
        }
        let conn = match conn {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        Ok(PooledConn {
            pool: Arc::clone(self),
            conn: Some(conn),
            reusable: true,
            _permit: permit,
        })
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

    /// `catalog "NAME": cannot connect to MySQL at host:port: reason`, never with the password.
    fn connect_error(&self, e: &mysql_async::Error) -> ConnectorError {
        let sqlstate = match e {
            mysql_async::Error::Server(s) => sqlstate_of(s.code, &s.state),
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
    pub(crate) fn scrub(&self, message: String) -> String {
        match &self.password {
            Some(p) if message.contains(p.as_str()) => message.replace(p.as_str(), "********"),
            _ => message,
        }
    }

    /// Kills the statement running on connection `id` (best effort), then closes `conn`.
    async fn kill_and_close(self: Arc<Self>, id: u32, conn: Conn) {
        let other = self.idle.lock().pop();
        let other = match other {
            Some(c) => Some(c),
            None => self.connect().await.ok(),
        };
        if let Some(mut other) = other {
            if let Err(e) = other.query_drop(format!("KILL QUERY {id}")).await {
                tracing::debug!("catalog \"{}\": KILL QUERY {id} failed: {e}", self.catalog);
            }
            // `other` was outside the pool's limit; close it rather than growing the pool.
            let _ = other.disconnect().await;
        }
        // Reads what is left of the killed result (an error at once), then closes.
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

/// `error` and its sources, joined with `: `.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// A connection borrowed from the pool. Returned to the pool on drop if it is marked reusable
/// (its last result was read to the end); otherwise its running query is killed and it is closed.
pub(crate) struct PooledConn {
    pool: Arc<Pool>,
    conn: Option<Conn>,
    reusable: bool,
    _permit: OwnedSemaphorePermit,
}

impl PooledConn {
    /// The connection.
    pub(crate) fn conn(&mut self) -> &mut Conn {
        // Only taken in `drop`.
        self.conn.as_mut().expect("connection present until drop")
    }

    /// Whether the connection may go back to the pool when dropped.
    pub(crate) fn set_reusable(&mut self, reusable: bool) {
        self.reusable = reusable;
    }
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if self.reusable {
            self.pool.idle.lock().push(conn);
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let id = conn.id();
                handle.spawn(Arc::clone(&self.pool).kill_and_close(id, conn));
            }
            // No runtime: mysql_async's own drop closes the connection as well as it can.
            Err(_) => drop(conn),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates() {
        assert_eq!(sqlstate_of(1045, "28000"), "28P01");
        assert_eq!(sqlstate_of(1146, "42S02"), "42P01");
        assert_eq!(sqlstate_of(9999, "22007"), "22007");
        assert_eq!(sqlstate_of(9999, "HY000"), "XX000");
        assert_eq!(sqlstate_of(9999, "42S99"), "XX000");
    }
}
