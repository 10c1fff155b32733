//! CancelRequest: a client opens a second connection carrying the (pid, secret key) of its
//! BackendKeyData; the query running on that session is canceled through the engine.
//!
//! Each session registers a [`RunningQuery`] slot under its key for its lifetime; a query sets its id in
//! the slot while its result streams. Canceling ends the stream with
//! [`tributary_exec::ExecError::Canceled`], which the client gets as SQLSTATE 57014; the session
//! itself keeps working.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use pgwire::api::cancel::CancelHandler;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::SecretKey;
use tokio_util::sync::CancellationToken;
use tributary_exec::Engine;

use super::Frontend;

type Key = (i32, Bytes);

/// A registered session: who it is and the query it runs.
type Slot = (Arc<SessionInfo>, Arc<RunningQuery>);

/// Who a session is, for `pg_stat_activity`.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The session's user.
    pub user: String,
    /// The catalog it connected to.
    pub database: String,
    /// `application_name` at startup (empty when none).
    pub application_name: String,
    /// The client's address.
    pub client: std::net::SocketAddr,
    /// When the session started, microseconds since the Unix epoch.
    pub started_us: i64,
}

/// Running-query slots of all sessions, by (pid, secret key), with who each session is.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    sessions: Mutex<HashMap<Key, Slot>>,
}

impl CancelRegistry {
    /// Registers a session; the slot is removed when the returned registration is dropped.
    pub fn register(
        self: &Arc<Self>,
        pid: i32,
        secret: &SecretKey,
        info: SessionInfo,
    ) -> Registration {
        let key = (pid, secret.to_bytes());
        let slot = Arc::new(RunningQuery::default());
        self.sessions
            .lock()
            .insert(key.clone(), (Arc::new(info), slot.clone()));
        Registration {
            registry: self.clone(),
            key,
            slot,
        }
    }

    /// The query id running on the session with this key, if any.
    pub fn running(&self, pid: i32, secret: &SecretKey) -> Option<String> {
        let key = (pid, secret.to_bytes());
        let slot = self
            .sessions
            .lock()
            .get(&key)
            .map(|(_, slot)| slot.clone())?;
        slot.current()
    }

    /// Fires the terminate signal of session `pid` (see [`RunningQuery::terminate`]); false when
    /// there is no such session.
    pub fn terminate(&self, pid: i32) -> bool {
        let slot = self
            .sessions
            .lock()
            .iter()
            .find(|((p, _), _)| *p == pid)
            .map(|(_, (_, slot))| slot.clone());
        match slot {
            Some(slot) => {
                slot.terminate();
                true
            }
            None => false,
        }
    }

    /// Every session: pid, who, and the id of the query it runs.
    pub fn snapshot(&self) -> Vec<(i32, Arc<SessionInfo>, Option<String>)> {
        self.sessions
            .lock()
            .iter()
            .map(|((pid, _), (info, slot))| (*pid, info.clone(), slot.current()))
            .collect()
    }
}

/// The sessions of a [`CancelRegistry`] and the queries of the engine, as `pg_stat_activity` shows
/// them and `pg_cancel_backend` cancels them.
#[derive(Debug)]
pub struct SessionActivity {
    /// The sessions.
    pub registry: Arc<CancelRegistry>,
    /// The engine running their queries.
    pub engine: Arc<Engine>,
}

impl super::catalog::activity::Activity for SessionActivity {
    fn sessions(&self) -> Vec<super::catalog::activity::ActivityRow> {
        let queries = self.engine.tracker().query_infos();
        self.registry
            .snapshot()
            .into_iter()
            .map(|(pid, info, query_id)| {
                let query = query_id
                    .as_ref()
                    .and_then(|id| queries.iter().find(|q| &q.query_id == id));
                super::catalog::activity::ActivityRow {
                    pid,
                    datname: info.database.clone(),
                    usename: info.user.clone(),
                    application_name: info.application_name.clone(),
                    client_addr: Some(info.client.ip().to_string()),
                    client_port: Some(i32::from(info.client.port())),
                    backend_start_us: info.started_us,
                    state: if query_id.is_some() { "active" } else { "idle" },
                    query: query.map(|q| q.query.clone()).unwrap_or_default(),
                    query_start_us: query.map(|q| q.created_us),
                    query_id,
                }
            })
            .collect()
    }

    fn cancel(
        &self,
        pid: i32,
        user: &str,
    ) -> Result<bool, super::catalog::activity::CancelRefused> {
        let Some(query_id) = self.signaled(pid, user, "pg_cancel_backend")? else {
            return Ok(false);
        };
        let Some(query_id) = query_id else {
            return Ok(false);
        };
        Ok(self.engine.cancel(&query_id))
    }

    fn terminate(
        &self,
        pid: i32,
        user: &str,
    ) -> Result<bool, super::catalog::activity::CancelRefused> {
        let Some(query_id) = self.signaled(pid, user, "pg_terminate_backend")? else {
            return Ok(false);
        };
        // The session's loop is told first, so that it answers FATAL 57P01 rather than the
        // canceled query's 57014.
        let terminated = self.registry.terminate(pid);
        if let Some(query_id) = query_id {
            self.engine.cancel(&query_id);
        }
        Ok(terminated)
    }
}

impl SessionActivity {
    /// The session `pid` that `function` (called by `user`) signals: `None` when there is no such
    /// session, else the id of the query it runs (if any); another user's session is refused.
    fn signaled(
        &self,
        pid: i32,
        user: &str,
        function: &str,
    ) -> Result<Option<Option<String>>, super::catalog::activity::CancelRefused> {
        let found = self
            .registry
            .snapshot()
            .into_iter()
            .find(|(session, ..)| *session == pid);
        let Some((_, info, query_id)) = found else {
            tracing::warn!(pid, "{function}: PID {pid} is not a Tributary session");
            return Ok(None);
        };
        if info.user != user && !self.engine.config().auth.is_admin(user) {
            return Err(super::catalog::activity::CancelRefused::OtherUser);
        }
        tracing::info!(pid, ?query_id, by = user, "{function}");
        Ok(Some(query_id))
    }
}

/// A session's entry in the [`CancelRegistry`].
#[derive(Debug)]
pub struct Registration {
    registry: Arc<CancelRegistry>,
    key: Key,
    slot: Arc<RunningQuery>,
}

impl Registration {
    pub fn slot(&self) -> &Arc<RunningQuery> {
        &self.slot
    }

    /// The session's pid (BackendKeyData's).
    pub fn pid(&self) -> i32 {
        self.key.0
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.sessions.lock().remove(&self.key);
    }
}

/// The id of the query a session is running (at most one at a time).
#[derive(Debug, Default)]
pub struct RunningQuery {
    query_id: Mutex<Option<String>>,
    /// Fires when the session's client has closed its connection ([`super::frames::ClientGone`]).
    client_gone: std::sync::OnceLock<CancellationToken>,
    /// The connection's terminate signal ([`Terminate`]), watched by its message loop.
    terminate: std::sync::OnceLock<CancellationToken>,
}

/// A connection's terminate signal (`pg_terminate_backend`), stored in its session extensions: the
/// connection's message loop ends the session with FATAL 57P01 when it fires.
#[derive(Debug, Clone, Default)]
pub struct Terminate(pub CancellationToken);

impl RunningQuery {
    pub fn current(&self) -> Option<String> {
        self.query_id.lock().clone()
    }

    /// Cancels every query of the session, running or later, once `gone` fires (the client closed
    /// its connection: nobody is left to read the result).
    pub fn cancel_when_client_gone(&self, gone: CancellationToken) {
        let _ = self.client_gone.set(gone);
    }

    /// The signal [`RunningQuery::terminate`] fires: the connection's [`Terminate`].
    pub fn set_terminate(&self, terminate: CancellationToken) {
        let _ = self.terminate.set(terminate);
    }

    /// Ends the session: fires its terminate signal (its connection loop cancels what runs and
    /// closes with FATAL 57P01).
    pub fn terminate(&self) {
        if let Some(token) = self.terminate.get() {
            token.cancel();
        }
    }

    /// Marks `query_id` as running until the guard is dropped; with a `timeout`
    /// (`statement_timeout`), the query is canceled when it runs longer, and it is canceled as soon
    /// as the client is gone.
    pub fn begin(
        self: &Arc<Self>,
        engine: &Arc<Engine>,
        query_id: &str,
        timeout: Option<Duration>,
    ) -> RunningGuard {
        *self.query_id.lock() = Some(query_id.to_string());
        let gone = self.client_gone.get().cloned();
        let timer = (timeout.is_some() || gone.is_some()).then(|| {
            let engine = engine.clone();
            let query_id = query_id.to_string();
            tokio::spawn(async move {
                let timed_out = async {
                    match timeout {
                        Some(timeout) => tokio::time::sleep(timeout).await,
                        None => std::future::pending().await,
                    }
                };
                let client_gone = async {
                    match &gone {
                        Some(gone) => gone.cancelled().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = timed_out => {
                        tracing::info!(%query_id, ?timeout, "statement_timeout reached, canceling");
                    }
                    () = client_gone => {
                        tracing::info!(%query_id, "the client closed its connection, canceling");
                    }
                }
                engine.cancel(&query_id);
            })
        });
        RunningGuard {
            slot: self.clone(),
            query_id: query_id.to_string(),
            timer,
        }
    }
}

/// Clears the session's running query (and stops its timeout) when the result stream is dropped.
#[derive(Debug)]
pub struct RunningGuard {
    slot: Arc<RunningQuery>,
    query_id: String,
    timer: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
        let mut current = self.slot.query_id.lock();
        if current.as_deref() == Some(self.query_id.as_str()) {
            *current = None;
        }
    }
}

#[async_trait]
impl CancelHandler for Frontend {
    async fn on_cancel_request(&self, request: CancelRequest) {
        match self.cancels.running(request.pid, &request.secret_key) {
            Some(query_id) => {
                let canceled = self.engine.cancel(&query_id);
                tracing::info!(pid = request.pid, %query_id, canceled, "cancel request");
            }
            // Like PostgreSQL: an unknown key or an idle session is silently ignored.
            None => tracing::debug!(pid = request.pid, "cancel request with nothing to cancel"),
        }
    }
}
