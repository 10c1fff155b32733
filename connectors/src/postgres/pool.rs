//! A small connection pool for one catalog, and the error messages of the connector.
//!
//! At most `pool_size` connections are open at once; idle ones are kept for reuse. A connection whose
//! query was not read to the end (a cancelled scan, a LIMIT satisfied early) is not reused: the running
//! query is cancelled at the source and the connection closed, so the next user never waits for rows
//! nobody reads. Connections use TLS as the catalog's `ssl_mode` says (see [`super::tls`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::Client;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::ConnectorError;
use crate::sqlstate;

/// Session settings sent in the startup packet of every connection, so that values cast to text at
/// the source (uuid, json, enums, unmapped types) do not depend on the server's defaults.
const SESSION_OPTIONS: &str =
    "-c TimeZone=UTC -c DateStyle=ISO,MDY -c IntervalStyle=postgres -c extra_float_digits=3";

/// Connections of one catalog to its PostgreSQL server.
pub struct Pool {
    catalog: String,
    address: String,
    password: Option<String>,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    idle: Mutex<Vec<Client>>,
    permits: Arc<Semaphore>,
    size: usize,
    acquire_timeout: Duration,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // tokio_postgres::Config redacts the password in its Debug output.
        f.debug_struct("Pool")
            .field("catalog", &self.catalog)
            .field("address", &self.address)
            .field("size", &self.size)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Where and how to connect; built from the catalog file.
pub(crate) struct PoolOptions {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: Option<String>,
    pub size: usize,
    pub connect_timeout: Duration,
    pub acquire_timeout: Duration,
    /// The TLS connector and the `sslmode` negotiated with it.
    pub tls: (MakeRustlsConnect, SslMode),
}

impl Pool {
    pub(crate) fn new(catalog: &str, options: PoolOptions) -> Self {
        let (tls, ssl_mode) = options.tls;
        let mut config = tokio_postgres::Config::new();
        config
            .host(&options.host)
            .port(options.port)
            .dbname(&options.database)
            .user(&options.user)
            .application_name("tributary")
            .options(SESSION_OPTIONS)
            .ssl_mode(ssl_mode)
            .connect_timeout(options.connect_timeout);
        if let Some(password) = &options.password {
            config.password(password);
        }
        let size = options.size.max(1);
        Pool {
            catalog: catalog.to_string(),
            address: format!("{}:{}", options.host, options.port),
            password: options.password.filter(|p| !p.is_empty()),
            config,
            tls,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size)),
            size,
            acquire_timeout: options.acquire_timeout,
        }
    }

    /// The catalog name, as used in error messages.
    pub(crate) fn catalog(&self) -> &str {
        &self.catalog
    }

    /// An open connection: an idle one if any, else a new one. Waits for a free slot when
    /// `pool_size` connections are in use, failing after the acquire timeout.
    pub(crate) async fn get(self: &Arc<Self>) -> Result<PooledClient, ConnectorError> {
        let permit = tokio::time::timeout(
            self.acquire_timeout,
            Arc::clone(&self.permits).acquire_owned(),
        )
        .await
        .map_err(|_| {
            ConnectorError::Source(format!(
                "catalog \"{}\": timed out after {:?} waiting for a free connection to PostgreSQL \
                 at {} (pool_size = {})",
                self.catalog, self.acquire_timeout, self.address, self.size
            ))
        })?
        .map_err(|_| {
            ConnectorError::Source(format!("catalog \"{}\": pool closed", self.catalog))
        })?;
        loop {
            let client = self.idle.lock().pop();
            match client {
                Some(c) if !c.is_closed() => {
                    return Ok(PooledClient::new(Arc::clone(self), c, permit));
                }
                Some(_) => continue,
                None => break,
            }
        }
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| self.connect_error(&e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("PostgreSQL connection ended: {e}");
            }
        });
        Ok(PooledClient::new(Arc::clone(self), client, permit))
    }

    /// `catalog "NAME": cannot connect to PostgreSQL at host:port: reason`, never with the password.
    fn connect_error(&self, e: &tokio_postgres::Error) -> ConnectorError {
        let (sqlstate, reason) = match e.as_db_error() {
            Some(db) => (
                db.code().code().to_string(),
                format!("{} (SQLSTATE {})", db.message(), db.code().code()),
            ),
            None => (
                sqlstate::CONNECTION_FAILURE_ON_CONNECT.to_string(),
                error_chain(e),
            ),
        };
        ConnectorError::Remote {
            sqlstate,
            message: self.scrub(format!(
                "catalog \"{}\": cannot connect to PostgreSQL at {}: {reason}",
                self.catalog, self.address
            )),
        }
    }

    /// The error of a statement sent to the source: the source's own message and SQLSTATE, or the
    /// connection failure, naming the catalog.
    pub(crate) fn query_error(&self, e: &tokio_postgres::Error, sql: &str) -> ConnectorError {
        let sqlstate = match e.as_db_error() {
            Some(db) => db.code().code().to_string(),
            None => sqlstate::CONNECTION_FAILURE.to_string(),
        };
        let message = match e.as_db_error() {
            Some(db) => {
                let mut m = format!(
                    "catalog \"{}\": PostgreSQL error {}: {}",
                    self.catalog,
                    db.code().code(),
                    db.message()
                );
                if let Some(detail) = db.detail() {
                    m.push_str(&format!(" (detail: {detail})"));
                }
                m.push_str(&format!(" [remote SQL: {sql}]"));
                m
            }
            None => format!(
                "catalog \"{}\": lost connection to PostgreSQL at {}: {}",
                self.catalog,
                self.address,
                error_chain(e)
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

    fn put_back(&self, client: Client) {
        if !client.is_closed() {
            self.idle.lock().push(client);
        }
    }
}

/// `error` and its sources, joined with `: ` (tokio-postgres puts the OS error in the source).
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

/// A connection borrowed from the pool. Returned to the pool on drop if it was marked reusable
/// (its last query was read to the end); otherwise its running query is cancelled and it is closed.
pub(crate) struct PooledClient {
    pool: Arc<Pool>,
    client: Option<Client>,
    reusable: bool,
    _permit: OwnedSemaphorePermit,
}

impl PooledClient {
    fn new(pool: Arc<Pool>, client: Client, permit: OwnedSemaphorePermit) -> Self {
        PooledClient {
            pool,
            client: Some(client),
            reusable: true,
            _permit: permit,
        }
    }

    /// The connection.
    pub(crate) fn client(&self) -> &Client {
        // Only taken in `drop`.
        self.client.as_ref().expect("client present until drop")
    }

    /// Whether the connection may go back to the pool when dropped.
    pub(crate) fn set_reusable(&mut self, reusable: bool) {
        self.reusable = reusable;
    }
}

impl Drop for PooledClient {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if self.reusable {
            self.pool.put_back(client);
            return;
        }
        // A query may still be running: cancel it at the source, then drop the connection.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let token = client.cancel_token();
            let tls = self.pool.tls.clone();
            handle.spawn(async move {
                let _ = token.cancel_query(tls).await;
            });
        }
    }
}
