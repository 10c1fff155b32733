//! How the pool of a catalog connects to PostgreSQL ([`PgSource`]), and the connector's error
//! messages.
//!
//! The pool itself is the generic [`crate::pool::Pool`]. A connection is known dead once
//! tokio-postgres' connection task has ended (the server closed it); a dirty one (its result not
//! read to the end) has its running query cancelled at the source (a cancel request) and is closed.
//! Connections use TLS as the catalog's `ssl_mode` says (see [`super::tls`]).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::ConnectorError;
use crate::pool::{PooledSource, error_chain, scrub};
use crate::sqlstate;

/// Session settings sent in the startup packet of every connection, so that values cast to text at
/// the source (uuid, json, enums, unmapped types) do not depend on the server's defaults, and a
/// backslash in a pushed-down `'...'` literal is itself whatever the database's
/// `standard_conforming_strings` (literals are also written to mean the same either way:
/// [`super::pushdown::string_literal`]).
const SESSION_OPTIONS: &str = "-c TimeZone=UTC -c DateStyle=ISO,MDY -c IntervalStyle=postgres \
     -c extra_float_digits=3 -c standard_conforming_strings=on";

/// The connections of one catalog to its PostgreSQL server.
pub type Pool = crate::pool::Pool<PgSource>;

/// A connection borrowed from a [`Pool`] (derefs to the [`Client`]).
pub type PooledClient = crate::pool::Pooled<PgSource>;

/// One catalog's PostgreSQL server: how to connect to it, and its error messages.
pub struct PgSource {
    catalog: String,
    address: String,
    password: Option<String>,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
}

impl fmt::Debug for PgSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // tokio_postgres::Config redacts the password in its Debug output.
        f.debug_struct("PgSource")
            .field("catalog", &self.catalog)
            .field("address", &self.address)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Where and how to connect; built from the catalog file.
pub(crate) struct PgOptions {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: Option<String>,
    pub connect_timeout: Duration,
    /// The TLS connector and the `sslmode` negotiated with it.
    pub tls: (MakeRustlsConnect, SslMode),
}

impl PgSource {
    /// The source of catalog `catalog`, as `options` say. Connects nothing.
    pub(crate) fn new(catalog: &str, options: PgOptions) -> Self {
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
        PgSource {
            catalog: catalog.to_string(),
            address: format!("{}:{}", options.host, options.port),
            password: options.password.filter(|p| !p.is_empty()),
            config,
            tls,
        }
    }

    /// `catalog "NAME": cannot connect to PostgreSQL at host:port: reason`, never with the password.
    fn connect_error(&self, e: &tokio_postgres::Error) -> ConnectorError {
        let (sqlstate, reason) = match e.as_db_error() {
            // A refused login keeps its class-28 code (the catalog's credentials are wrong); any
            // other refusal (55000 not accepting connections, 57P03 starting up, 53300 too many
            // connections, 3D000 no such database) is, for our client, a source it cannot reach:
            // 08001, with the source's code in the message.
            Some(db) => (
                if db.code().code().starts_with("28") {
                    db.code().code().to_string()
                } else {
                    sqlstate::CONNECTION_FAILURE_ON_CONNECT.to_string()
                },
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
            // The source ended the connection (57P01 admin_shutdown: terminated, 57P02 crash,
            // 57P03 cannot connect now, 57P04 database dropped, 57P05 idle timeout): for our client
            // that is a lost source connection, not its own session being shut down.
            Some(db) if db.code().code().starts_with("57P") => {
                sqlstate::CONNECTION_FAILURE.to_string()
            }
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
    fn scrub(&self, message: String) -> String {
        scrub(self.password.as_deref(), message)
    }
}

impl PooledSource for PgSource {
    type Conn = Client;

    const PRODUCT: &'static str = "PostgreSQL";

    fn catalog(&self) -> &str {
        &self.catalog
    }

    fn address(&self) -> &str {
        &self.address
    }

    async fn connect(&self) -> Result<Client, ConnectorError> {
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
        Ok(client)
    }

    /// Closed once the connection task has ended (the server closed the socket).
    fn is_closed(&self, client: &Client) -> bool {
        client.is_closed()
    }

    /// The connection task notices a closed socket by itself: [`PgSource::is_closed`] is the
    /// whole check, no round trip.
    async fn is_alive(&self, _client: &mut Client) -> bool {
        true
    }

    /// Sends a cancel request for the running query (over a connection of its own) and drops the
    /// client at once, which closes the connection.
    fn discard(pool: Arc<Pool>, client: Client) -> impl Future<Output = ()> + Send + 'static {
        let token = client.cancel_token();
        let tls = pool.source().tls.clone();
        drop(client);
        async move {
            let _ = token.cancel_query(tls).await;
        }
    }
}

/// The generic pool's own behaviour, against a real PostgreSQL (the test kit's).
#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use tributary_testkit::{Postgres, PostgresOptions};

    use super::*;
    use crate::remote_config::{SslMode as ConfigSslMode, TlsSettings};

    /// A pool of catalog `catalog` over `pg`'s database `postgres` as user `postgres`.
    fn pool(
        pg: &Postgres,
        catalog: &str,
        password: Option<&str>,
        size: usize,
        acquire_timeout: Duration,
    ) -> Arc<Pool> {
        let tls = super::super::tls::connector(&TlsSettings {
            mode: ConfigSslMode::Disable,
            root_cert: None,
        })
        .expect("tls connector");
        let source = PgSource::new(
            catalog,
            PgOptions {
                host: "127.0.0.1".into(),
                port: pg.port(),
                database: "postgres".into(),
                user: "postgres".into(),
                password: password.map(str::to_string),
                connect_timeout: Duration::from_secs(5),
                tls,
            },
        );
        Arc::new(Pool::new(source, size, acquire_timeout))
    }

    async fn pid(client: &PooledClient) -> i32 {
        client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .expect("pg_backend_pid")
            .get(0)
    }

    /// Waits (at most 20 s) until backend `pid` no longer runs a statement.
    async fn wait_until_idle_or_gone(admin: &Client, pid: i32) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let active: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'",
                    &[&pid],
                )
                .await
                .expect("pg_stat_activity")
                .get(0);
            if active == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "backend {pid} still runs its statement"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn permits_bound_the_connections_and_acquire_times_out() {
        let pg = Postgres::shared();
        let pool = pool(pg, "permits", None, 2, Duration::from_millis(300));
        let a = pool.get().await.expect("first");
        let b = pool.get().await.expect("second");
        let pid_a = pid(&a).await;
        assert_ne!(pid_a, pid(&b).await);

        // Both permits taken: the third waits, then fails naming the catalog, source and size.
        let started = Instant::now();
        let err = pool.get().await.err().expect("no free connection");
        assert!(started.elapsed() >= Duration::from_millis(300));
        let ConnectorError::Source(message) = &err else {
            panic!("not a Source error: {err:?}");
        };
        assert_eq!(
            message,
            &format!(
                "catalog \"permits\": timed out after 300ms waiting for a free connection to \
                 PostgreSQL at 127.0.0.1:{} (pool_size = 2)",
                pg.port()
            )
        );

        // A connection given back is reused by the next caller.
        drop(a);
        let c = pool.get().await.expect("a free connection again");
        assert_eq!(pid(&c).await, pid_a);
        drop((b, c));

        // Many concurrent users: never more than 2 at once, and only 2 connections ever opened.
        let in_use = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (pool, in_use, most) =
                    (Arc::clone(&pool), Arc::clone(&in_use), Arc::clone(&most));
                tokio::spawn(async move {
                    let mut client = pool.get().await;
                    for _ in 0..50 {
                        if client.is_ok() {
                            break;
                        }
                        // 300 ms is short for 8 users of 2 connections: try again.
                        client = pool.get().await;
                    }
                    let client = client.expect("a connection");
                    let now = in_use.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let pid = pid(&client).await;
                    client
                        .batch_execute("SELECT pg_sleep(0.05)")
                        .await
                        .expect("sleep");
                    in_use.fetch_sub(1, Ordering::SeqCst);
                    pid
                })
            })
            .collect();
        let mut pids = HashSet::new();
        for task in tasks {
            pids.insert(task.await.expect("task"));
        }
        assert!(most.load(Ordering::SeqCst) <= 2, "{most:?} at once");
        assert!(
            pids.len() <= 2,
            "{} connections opened: {pids:?}",
            pids.len()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_idle_connection_is_not_handed_out() {
        let pg = Postgres::shared();
        let admin = pg.connect("postgres").await;
        let pool = pool(pg, "dead", None, 1, Duration::from_secs(5));
        let client = pool.get().await.expect("connect");
        let old = pid(&client).await;
        drop(client);
        // The server ends the idle connection (as a restart or an admin would).
        // (Waits up to 10 s for the backend to exit.)
        let terminated: bool = admin
            .query_one("SELECT pg_terminate_backend($1, 10000)", &[&old])
            .await
            .expect("terminate")
            .get(0);
        assert!(terminated);
        // Let the connection task read the server's goodbye.
        tokio::time::sleep(Duration::from_millis(300)).await;

        let client = pool.get().await.expect("a new connection");
        let new = pid(&client).await;
        assert_ne!(new, old, "the dead connection was handed out");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dirty_connection_is_cancelled_and_not_reused() {
        let pg = Postgres::shared();
        let admin = pg.connect("postgres").await;
        let pool = pool(pg, "dirty", None, 1, Duration::from_secs(5));
        let mut client = pool.get().await.expect("connect");
        let old = pid(&client).await;
        // A statement left running, its user gone (a cancelled scan): the task is aborted with
        // the connection marked not reusable.
        client.set_reusable(false);
        let task = tokio::spawn(async move {
            let _ = client.batch_execute("SELECT pg_sleep(60)").await;
            drop(client);
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        task.abort();
        let _ = task.await;

        // The statement is cancelled at the source, long before its 60 s.
        wait_until_idle_or_gone(&admin, old).await;
        // The permit is free again, and the connection was not reused.
        let client = pool.get().await.expect("a connection");
        assert_ne!(pid(&client).await, old, "a dirty connection was reused");
        client.batch_execute("SELECT 1").await.expect("usable");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_source_is_a_connect_error_and_a_restarted_one_is_reconnected() {
        const PASSWORD: &str = "Pool-Secret-31!";
        let pg = Postgres::dedicated(PostgresOptions {
            password: Some(PASSWORD.into()),
            tls: None,
        });
        let pool = pool(&pg, "restart", Some(PASSWORD), 2, Duration::from_secs(5));
        let client = pool.get().await.expect("connect");
        client.batch_execute("SELECT 1").await.expect("query");
        drop(client);

        pg.stop();
        let err = pool.get().await.err().expect("the source is down");
        let ConnectorError::Remote { sqlstate, message } = &err else {
            panic!("not a Remote error: {err:?}");
        };
        assert_eq!(
            sqlstate,
            sqlstate::CONNECTION_FAILURE_ON_CONNECT,
            "{message}"
        );
        assert!(
            message.starts_with(&format!(
                "catalog \"restart\": cannot connect to PostgreSQL at 127.0.0.1:{}: ",
                pg.port()
            )),
            "{message}"
        );
        assert!(!message.contains(PASSWORD), "{message}");
        let debug = format!("{pool:?}");
        assert!(!debug.contains(PASSWORD), "{debug}");

        // Back up: the first use reconnects (the idle connection died with the old server).
        pg.start();
        let client = pool.get().await.expect("reconnect");
        client.batch_execute("SELECT 1").await.expect("query");
    }
}
