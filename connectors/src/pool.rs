//! The connection pool of one `postgres` or `mysql` catalog, generic over how its source connects.
//!
//! At most `pool_size` connections of a catalog are in use at once: [`Pool::get`] takes one of
//! `pool_size` permits, waiting up to the catalog's `pool_timeout_secs` for one, then fails naming
//! the catalog, the source and the pool size. Connections given back clean are kept idle and reused
//! after a liveness check (the source may have closed them since: a restart, an idle timeout); a
//! dead one is dropped and the next idle one tried, else a new connection is opened. A connection
//! given back dirty (its query not read to the end: a cancelled scan, a LIMIT satisfied early) is
//! never reused: its running query is cancelled at the source and it is closed
//! ([`PooledSource::discard`]), so the next user never waits for rows nobody reads.
//!
//! What differs between sources (connecting, checking, cancelling, their error messages) is a
//! [`PooledSource`]: `postgres::pool::PgSource` and `mysql::pool::MySource`.

use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ConnectorError;

/// How a [`Pool`] opens, checks and throws away the connections of one catalog's source.
///
/// Its `Debug` output must not show the password.
pub trait PooledSource: fmt::Debug + Send + Sync + Sized + 'static {
    /// An open connection.
    type Conn: Send + 'static;

    /// The source's name in messages (`PostgreSQL`, `MySQL`).
    const PRODUCT: &'static str;

    /// The catalog name, as used in error messages.
    fn catalog(&self) -> &str;

    /// `host:port` of the source, as used in error messages.
    fn address(&self) -> &str;

    /// Opens a new connection. Errors name the catalog, carry a SQLSTATE (`08001` when the source
    /// cannot be reached) and never show the password.
    fn connect(&self) -> impl Future<Output = Result<Self::Conn, ConnectorError>> + Send;

    /// Whether `conn` is known to be closed, without asking the source (cheap: checked when a
    /// connection is given back and before an idle one is reused).
    fn is_closed(&self, conn: &Self::Conn) -> bool;

    /// Whether an idle connection that is not known to be closed still works, checked before it
    /// is reused (a round trip to the source where the client library cannot tell otherwise).
    fn is_alive(&self, conn: &mut Self::Conn) -> impl Future<Output = bool> + Send;

    /// Cancels the statement that may still be running on `conn` (given back dirty) and closes
    /// it; best effort, run as a task of its own. `pool` is the pool `conn` came from; it no
    /// longer counts against its `pool_size`.
    fn discard(
        pool: Arc<Pool<Self>>,
        conn: Self::Conn,
    ) -> impl Future<Output = ()> + Send + 'static;
}

/// The connections of one catalog to its source: at most `size` in use at once, idle ones kept
/// for reuse. See the module docs.
pub struct Pool<S: PooledSource> {
    source: S,
    idle: Mutex<Vec<S::Conn>>,
    permits: Arc<Semaphore>,
    size: usize,
    acquire_timeout: Duration,
}

impl<S: PooledSource> fmt::Debug for Pool<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("source", &self.source)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl<S: PooledSource> Pool<S> {
    /// A pool of at most `size` connections (at least 1) to `source`, whose [`Pool::get`] waits
    /// at most `acquire_timeout` for a free one. Connects nothing yet.
    pub fn new(source: S, size: usize, acquire_timeout: Duration) -> Self {
        let size = size.max(1);
        Pool {
            source,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size)),
            size,
            acquire_timeout,
        }
    }

    /// The source: how connections are opened, and its error messages.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The catalog name, as used in error messages.
    pub fn catalog(&self) -> &str {
        self.source.catalog()
    }

    /// An open connection: a live idle one if any, else a new one. Waits for a free slot while
    /// `size` connections are in use, failing after the acquire timeout with
    /// `catalog "NAME": timed out after ... waiting for a free connection to PRODUCT at host:port
    /// (pool_size = N)`; a connection that cannot be opened is [`PooledSource::connect`]'s error.
    pub async fn get(self: &Arc<Self>) -> Result<Pooled<S>, ConnectorError> {
        let permit = tokio::time::timeout(
            self.acquire_timeout,
            Arc::clone(&self.permits).acquire_owned(),
        )
        .await
        .map_err(|_| {
            ConnectorError::Source(format!(
                "catalog \"{}\": timed out after {:?} waiting for a free connection to {} \
                 at {} (pool_size = {})",
                self.catalog(),
                self.acquire_timeout,
                S::PRODUCT,
                self.source.address(),
                self.size
            ))
        })?
        .map_err(|_| {
            ConnectorError::Source(format!("catalog \"{}\": pool closed", self.catalog()))
        })?;
        while let Some(mut conn) = self.take_idle() {
            // An idle connection may have been closed by the source (restart, idle timeout).
            if !self.source.is_closed(&conn) && self.source.is_alive(&mut conn).await {
                return Ok(Pooled::new(Arc::clone(self), conn, permit));
            }
        }
        let conn = self.source.connect().await?;
        Ok(Pooled::new(Arc::clone(self), conn, permit))
    }

    /// An idle connection taken out of the pool, unchecked (for a [`PooledSource::discard`] that
    /// needs a second connection to cancel a statement). It is the caller's to close.
    pub fn take_idle(&self) -> Option<S::Conn> {
        self.idle.lock().pop()
    }

    fn put_back(&self, conn: S::Conn) {
        if !self.source.is_closed(&conn) {
            self.idle.lock().push(conn);
        }
    }
}

/// A connection borrowed from a [`Pool`], used through `Deref` as the source's connection, and
/// holding one of the pool's permits until dropped. On drop it goes back to the pool if it is
/// marked reusable (the default); otherwise it is handed to [`PooledSource::discard`].
pub struct Pooled<S: PooledSource> {
    pool: Arc<Pool<S>>,
    conn: Option<S::Conn>,
    reusable: bool,
    _permit: OwnedSemaphorePermit,
}

impl<S: PooledSource> Pooled<S> {
    fn new(pool: Arc<Pool<S>>, conn: S::Conn, permit: OwnedSemaphorePermit) -> Self {
        Pooled {
            pool,
            conn: Some(conn),
            reusable: true,
            _permit: permit,
        }
    }

    /// Whether the connection may go back to the pool when dropped: set `false` before sending a
    /// statement whose result may be left unread, `true` once it has been read to the end.
    pub fn set_reusable(&mut self, reusable: bool) {
        self.reusable = reusable;
    }
}

impl<S: PooledSource> Deref for Pooled<S> {
    type Target = S::Conn;

    fn deref(&self) -> &S::Conn {
        // Only taken in `drop`.
        self.conn.as_ref().expect("connection present until drop")
    }
}

impl<S: PooledSource> DerefMut for Pooled<S> {
    fn deref_mut(&mut self) -> &mut S::Conn {
        self.conn.as_mut().expect("connection present until drop")
    }
}

impl<S: PooledSource> Drop for Pooled<S> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if self.reusable {
            self.pool.put_back(conn);
            return;
        }
        // A statement may still be running: cancel it and close the connection, off this thread.
        // Without a runtime the connection is just dropped (the client library closes it as well
        // as it can).
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(S::discard(Arc::clone(&self.pool), conn));
        }
    }
}

/// `error` and its sources, joined with `: ` (client libraries put the OS error in the source).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
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

/// `message` with `password` (if any) replaced by `********`, in case a library ever echoes it.
pub(crate) fn scrub(password: Option<&str>, message: String) -> String {
    match password {
        Some(p) if !p.is_empty() && message.contains(p) => message.replace(p, "********"),
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_hides_the_password_only() {
        let text = "login as u with pw s3cret failed: s3cret".to_string();
        assert_eq!(
            scrub(Some("s3cret"), text.clone()),
            "login as u with pw ******** failed: ********"
        );
        assert_eq!(scrub(None, text.clone()), text);
        assert_eq!(scrub(Some(""), text.clone()), text);
    }

    #[test]
    fn error_chain_keeps_every_source_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot connect")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        assert_eq!(error_chain(&e), "cannot connect: connection refused");
        // A source already in the text is not repeated.
        #[derive(Debug, thiserror::Error)]
        #[error("cannot connect: {0}")]
        struct Repeats(#[source] Outer);
        let e = Repeats(Outer(std::io::Error::other("timed out")));
        assert_eq!(error_chain(&e), "cannot connect: cannot connect: timed out");
    }
}
