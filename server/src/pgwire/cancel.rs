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
use tributary_exec::Engine;

use super::Frontend;

type Key = (i32, Bytes);

/// Running-query slots of all sessions, by (pid, secret key).
#[derive(Debug, Default)]
pub struct CancelRegistry {
    sessions: Mutex<HashMap<Key, Arc<RunningQuery>>>,
}

impl CancelRegistry {
    /// Registers a session; the slot is removed when the returned registration is dropped.
    pub fn register(self: &Arc<Self>, pid: i32, secret: &SecretKey) -> Registration {
        let key = (pid, secret.to_bytes());
        let slot = Arc::new(RunningQuery::default());
        self.sessions.lock().insert(key.clone(), slot.clone());
        Registration {
            registry: self.clone(),
            key,
            slot,
        }
    }

    /// The query id running on the session with this key, if any.
    pub fn running(&self, pid: i32, secret: &SecretKey) -> Option<String> {
        let key = (pid, secret.to_bytes());
        let slot = self.sessions.lock().get(&key).cloned()?;
        slot.current()
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
}

impl RunningQuery {
    pub fn current(&self) -> Option<String> {
        self.query_id.lock().clone()
    }

    /// Marks `query_id` as running until the guard is dropped; with a `timeout`
    /// (`statement_timeout`), the query is canceled when it runs longer.
    pub fn begin(
        self: &Arc<Self>,
        engine: &Arc<Engine>,
        query_id: &str,
        timeout: Option<Duration>,
    ) -> RunningGuard {
        *self.query_id.lock() = Some(query_id.to_string());
        let timer = timeout.map(|timeout| {
            let engine = engine.clone();
            let query_id = query_id.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                tracing::info!(%query_id, ?timeout, "statement_timeout reached, canceling");
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
