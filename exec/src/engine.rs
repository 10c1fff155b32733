//! The engine a session submits queries to: planning through `planner`, execution as stages and tasks,
//! tracking in [`QueryTracker`], cancellation.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use futures::{Stream, StreamExt};
use tributary_planner::CatalogRegistry;
use tributary_planner::config::ConfigError;

use crate::ExecError;
use crate::tracker::QueryTracker;

/// Settings of the engine, from `config.toml` and the CLI.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `DIR/catalog`, holding one `NAME.toml` per catalog; `None` mounts only the built-ins.
    pub catalog_dir: Option<PathBuf>,
    /// In-process workers in `single` mode (at least 1).
    pub workers: usize,
    /// Hash partitions of a repartitioned stage (Trino's `hash_partition_count`).
    pub hash_partitions: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            catalog_dir: None,
            workers: 2,
            hash_partitions: 4,
        }
    }
}

/// The query engine of one server process. Cheap to share (`Arc<Engine>`), one per process.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    registry: CatalogRegistry,
    runtime: Arc<RuntimeEnv>,
    tracker: Arc<QueryTracker>,
}

/// A running query's result: its schema and a stream of Arrow batches.
///
/// Dropping the stream stops the query (its tasks are canceled) and records it as canceled if it had not
/// finished.
pub struct QueryStream {
    /// Server-wide query id (Trino-style `YYYYMMDD_HHMMSS_NNNNN_xxxxx`).
    pub query_id: String,
    pub schema: SchemaRef,
    pub stream: SendableRecordBatchStream,
}

impl std::fmt::Debug for QueryStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryStream")
            .field("query_id", &self.query_id)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Loads the catalogs and starts the engine. Errors name the bad config file, key and reason.
    pub async fn start(config: EngineConfig) -> Result<Arc<Self>, ConfigError> {
        let tracker = QueryTracker::new();
        let registry = CatalogRegistry::load(config.catalog_dir.as_deref(), tracker.clone()).await?;
        let runtime = Arc::new(RuntimeEnv::default());
        for (_, connector) in registry.connectors() {
            for (url, store) in connector.object_stores() {
                runtime.register_object_store(&url, store);
            }
        }
        Ok(Arc::new(Self {
            config,
            registry,
            runtime,
            tracker,
        }))
    }

    /// The mounted catalogs.
    pub fn registry(&self) -> &CatalogRegistry {
        &self.registry
    }

    /// The query tracker behind `system.runtime.*`.
    pub fn tracker(&self) -> &Arc<QueryTracker> {
        &self.tracker
    }

    /// A DataFusion context for one client session with `catalog.schema` as the default namespace.
    pub fn new_session_context(&self, catalog: &str, schema: &str) -> SessionContext {
        tributary_planner::session::new_session_context(
            &self.registry,
            self.runtime.clone(),
            catalog,
            schema,
            self.config.hash_partitions,
        )
    }

    /// Runs a planned statement (a query, or `EXPLAIN` of one) and streams its result.
    ///
    /// `sql` and `user` are recorded for `system.runtime.queries`. Errors: planning errors as
    /// [`ExecError::DataFusion`]; execution errors arrive in the stream.
    pub async fn execute(
        &self,
        ctx: &SessionContext,
        plan: LogicalPlan,
        sql: &str,
        user: &str,
    ) -> Result<QueryStream, ExecError> {
        let query_id = new_query_id();
        let cancel = self.tracker.begin(&query_id, user, sql);
        let result = async {
            let df = datafusion::dataframe::DataFrame::new(ctx.state(), plan);
            df.execute_stream().await
        }
        .await;
        match result {
            Ok(stream) => {
                let schema = stream.schema();
                let stream = Box::pin(TrackedStream {
                    query_id: query_id.clone(),
                    schema: schema.clone(),
                    inner: stream,
                    tracker: self.tracker.clone(),
                    cancel: Box::pin(cancel.cancelled_owned()),
                    done: false,
                });
                Ok(QueryStream {
                    query_id,
                    schema,
                    stream,
                })
            }
            Err(e) => {
                self.tracker
                    .finish(&query_id, "FAILED", Some(e.to_string()));
                Err(e.into())
            }
        }
    }

    /// Cancels a running query (CancelRequest). Returns whether it was running.
    pub fn cancel(&self, query_id: &str) -> bool {
        self.tracker.cancel(query_id)
    }
}

/// A query id in Trino's shape: `YYYYMMDD_HHMMSS_NNNNN_xxxxx` (a counter and a random suffix).
fn new_query_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..5];
    format!(
        "{}_{:05}_{suffix}",
        chrono::Utc::now().format("%Y%m%d_%H%M%S"),
        n % 100_000
    )
}

/// The message of the error a canceled query's stream ends with (Postgres's text for SQLSTATE 57014).
pub const CANCELED_MESSAGE: &str = "canceling statement due to user request";

/// Wraps a query's result stream: counts rows, records the final state, and ends with a
/// [`CANCELED_MESSAGE`] error when the query is canceled.
struct TrackedStream {
    query_id: String,
    schema: SchemaRef,
    inner: SendableRecordBatchStream,
    tracker: Arc<QueryTracker>,
    cancel: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    done: bool,
}

impl Stream for TrackedStream {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.cancel.as_mut().poll(cx).is_ready() {
            self.done = true;
            self.tracker.finish(&self.query_id, "CANCELED", None);
            return Poll::Ready(Some(Err(DataFusionError::Execution(
                CANCELED_MESSAGE.to_string(),
            ))));
        }
        let polled = self.inner.poll_next_unpin(cx);
        match &polled {
            Poll::Ready(Some(Ok(batch))) => self.tracker.add_rows(&self.query_id, batch.num_rows()),
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                self.tracker
                    .finish(&self.query_id, "FAILED", Some(e.to_string()));
            }
            Poll::Ready(None) => {
                self.done = true;
                self.tracker.finish(&self.query_id, "FINISHED", None);
            }
            Poll::Pending => {}
        }
        polled
    }
}

impl RecordBatchStream for TrackedStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        if !self.done {
            self.tracker.finish(&self.query_id, "CANCELED", None);
        }
    }
}

