//! The built-in `system` catalog: `system.runtime.nodes` and `system.runtime.queries`, read live from the
//! engine through [`RuntimeInfo`] (implemented in `exec`, which this crate must not depend on).
//!
//! As in Trino, the tables are snapshots taken when a scan runs: each scan asks [`RuntimeInfo`] once and
//! returns the rows as a single partition.

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;

/// Defines a state enum whose variants show in the `system.runtime.*` tables as Trino spells them.
macro_rules! states {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// The state as the system tables show it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

states! {
    /// A query's state in `system.runtime.queries` (Trino's names).
    QueryState {
        /// Planning or running; its result may still be streaming.
        Running => "RUNNING",
        /// Ended with its whole result sent.
        Finished => "FINISHED",
        /// Ended with an error (`QueryInfo::error`).
        Failed => "FAILED",
        /// Canceled by the client (CancelRequest, client gone).
        Canceled => "CANCELED",
    }
}

states! {
    /// A task's state in `system.runtime.tasks` (Trino's names).
    TaskState {
        /// Sent to its worker, not yet accepted.
        Planned => "PLANNED",
        /// Accepted by its worker and running.
        Running => "RUNNING",
        /// Wrote its whole output.
        Finished => "FINISHED",
        /// Ended with an error (`TaskInfo::error`).
        Failed => "FAILED",
        /// Stopped because its query ended first.
        Canceled => "CANCELED",
    }
}

impl TaskState {
    /// Whether a task in this state has not ended yet (planned or running).
    pub fn is_live(self) -> bool {
        matches!(self, TaskState::Planned | TaskState::Running)
    }
}

states! {
    /// A node's state in `system.runtime.nodes`.
    NodeState {
        /// Heartbeating and given tasks.
        Active => "active",
        /// Silent past the heartbeat timeout, or found lost by an RPC: given no tasks.
        Dead => "dead",
        /// Shutting down gracefully (SIGTERM): given no new tasks, finishing the ones it has
        /// (Trino's `SHUTTING_DOWN`).
        Draining => "draining",
    }
}

/// One node of the cluster, as `system.runtime.nodes` shows it (Trino's columns, plus `role`).
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// Stable node id, e.g. `coordinator` or `worker-1`.
    pub node_id: String,
    /// Address others reach the node at (`host:port`), or `in-process`.
    pub address: String,
    /// `coordinator`, `worker`, or `single`.
    pub role: String,
    /// Whether the node gets tasks.
    pub state: NodeState,
    /// Last heartbeat, microseconds since the Unix epoch (UTC).
    pub last_heartbeat_us: i64,
    /// Tasks running on the node, as of its last heartbeat.
    pub running_tasks: i64,
}

/// One query the server ran or runs, as `system.runtime.queries` shows it.
#[derive(Debug, Clone)]
pub struct QueryInfo {
    /// Query id, unique in this server's lifetime.
    pub query_id: String,
    /// Running or how it ended.
    pub state: QueryState,
    /// The session user who submitted the query.
    pub user: String,
    /// The SQL text.
    pub query: String,
    /// Creation time, microseconds since the Unix epoch (UTC).
    pub created_us: i64,
    /// Elapsed wall time so far or in total, milliseconds.
    pub elapsed_ms: i64,
    /// Rows returned to the client so far.
    pub rows: i64,
    /// Error message if the query failed.
    pub error: Option<String>,
    /// The query's retry policy (`NONE`, `QUERY` or `TASK`).
    pub retry_policy: &'static str,
    /// How many times the query ran: 1, more when `retry_policy = QUERY` ran it again.
    pub attempts: i64,
    /// The pid of the PostgreSQL-wire session that sent it (`pg_stat_activity.pid`,
    /// `pg_backend_pid()`), when a session did.
    pub session_pid: Option<i32>,
}

/// One task of a query's stage, as `system.runtime.tasks` shows it (Trino's `system.runtime.tasks`,
/// reduced to what Tributary tracks).
#[derive(Debug, Clone)]
pub struct TaskInfo {
    /// The query the task belongs to; `QUERY.sqN` for a scalar subquery run before it, `QUERY.aN`
    /// when the query was placed again (attempt N) after a worker was found lost, `QUERY.rN` for
    /// attempt N of a query run again under `retry_policy = QUERY`.
    pub query_id: String,
    /// Stage number within the query (0 is the root stage, on the coordinator).
    pub stage: i64,
    /// Task number within the stage.
    pub task: i64,
    /// Attempt number of the task (0 for the first; `retry_policy = TASK` runs a failed task again
    /// as the next attempt).
    pub attempt: i64,
    /// Node id of the worker that runs or ran it.
    pub worker: String,
    /// Planned, running or how it ended.
    pub state: TaskState,
    /// Rows the task wrote to its output so far or in total.
    pub rows: i64,
    /// Bytes (Arrow in-memory size) the task wrote to its output.
    pub bytes: i64,
    /// Bytes the task wrote to the spool (`retry_policy = TASK`; 0 for streaming exchanges).
    pub spooled_bytes: i64,
    /// Plan partitions the task runs: 1, or under `retry_policy = TASK` as many splits or hash
    /// partitions as fit its target input size, run one after another.
    pub partitions: i64,
    /// Elapsed wall time so far or in total, milliseconds.
    pub elapsed_ms: i64,
    /// Error message if the task failed.
    pub error: Option<String>,
}

/// Live view of the engine that the `system` catalog reads on every scan.
pub trait RuntimeInfo: Send + Sync + std::fmt::Debug {
    /// The cluster's nodes as of now.
    fn nodes(&self) -> Vec<NodeInfo>;
    /// The queries the server runs or remembers, as of now.
    fn queries(&self) -> Vec<QueryInfo>;
    /// The tasks of running and recent queries, as of now.
    fn tasks(&self) -> Vec<TaskInfo> {
        Vec::new()
    }
}

/// Name of the only schema of the `system` catalog.
pub const RUNTIME_SCHEMA: &str = "runtime";

/// This connector's kind (built in, never named by a catalog file).
pub const KIND: crate::ConnectorKind = crate::ConnectorKind::new("system");

/// The `system` catalog connector (kind `system`), always mounted.
#[derive(Debug)]
pub struct SystemConnector {
    catalog: Arc<SystemCatalog>,
}

impl SystemConnector {
    /// The `system` catalog over `info`, which every scan of its tables reads.
    pub fn new(info: Arc<dyn RuntimeInfo>) -> Self {
        Self {
            catalog: Arc::new(SystemCatalog {
                runtime: Arc::new(RuntimeSchema { info }),
            }),
        }
    }
}

impl crate::Connector for SystemConnector {
    fn kind(&self) -> crate::ConnectorKind {
        KIND
    }

    fn catalog(&self) -> Arc<dyn CatalogProvider> {
        Arc::clone(&self.catalog) as Arc<dyn CatalogProvider>
    }
}

/// The `system` catalog: the one schema `runtime`.
#[derive(Debug)]
pub struct SystemCatalog {
    runtime: Arc<RuntimeSchema>,
}

impl CatalogProvider for SystemCatalog {
    fn schema_names(&self) -> Vec<String> {
        vec![RUNTIME_SCHEMA.to_string()]
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        (name == RUNTIME_SCHEMA).then(|| Arc::clone(&self.runtime) as Arc<dyn SchemaProvider>)
    }
}

/// `system.runtime`: the tables `nodes` and `queries`.
#[derive(Debug)]
pub struct RuntimeSchema {
    info: Arc<dyn RuntimeInfo>,
}

#[async_trait]
impl SchemaProvider for RuntimeSchema {
    fn table_names(&self) -> Vec<String> {
        SystemTableKind::ALL
            .iter()
            .map(|t| t.name().to_string())
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        Ok(SystemTableKind::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .map(|kind| {
                Arc::new(SystemTable {
                    kind,
                    info: Arc::clone(&self.info),
                }) as Arc<dyn TableProvider>
            }))
    }

    fn table_exist(&self, name: &str) -> bool {
        SystemTableKind::ALL.iter().any(|t| t.name() == name)
    }
}

/// The tables of `system.runtime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemTableKind {
    /// `nodes(node_id, address, role, state, last_heartbeat timestamptz, running_tasks bigint)`.
    Nodes,
    /// `queries(query_id, state, user, query, created timestamptz, elapsed_ms bigint, rows bigint,
    /// error text NULL)`.
    Queries,
    /// `tasks(query_id, stage bigint, task bigint, worker, state, rows bigint, bytes bigint,
    /// elapsed_ms bigint, error text NULL)`.
    Tasks,
}

impl SystemTableKind {
    /// Every table.
    pub const ALL: [SystemTableKind; 3] = [
        SystemTableKind::Nodes,
        SystemTableKind::Queries,
        SystemTableKind::Tasks,
    ];

    /// The table's SQL name.
    pub fn name(self) -> &'static str {
        match self {
            SystemTableKind::Nodes => "nodes",
            SystemTableKind::Queries => "queries",
            SystemTableKind::Tasks => "tasks",
        }
    }

    /// The table's Arrow schema; timestamps are microseconds with time zone `UTC`.
    pub fn schema(self) -> SchemaRef {
        match self {
            SystemTableKind::Nodes => Arc::clone(&NODES_SCHEMA),
            SystemTableKind::Queries => Arc::clone(&QUERIES_SCHEMA),
            SystemTableKind::Tasks => Arc::clone(&TASKS_SCHEMA),
        }
    }
}

fn timestamptz() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

static NODES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("node_id", DataType::Utf8, false),
        Field::new("address", DataType::Utf8, false),
        Field::new("role", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("last_heartbeat", timestamptz(), false),
        Field::new("running_tasks", DataType::Int64, false),
    ]))
});

static QUERIES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("query_id", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("user", DataType::Utf8, false),
        Field::new("query", DataType::Utf8, false),
        Field::new("created", timestamptz(), false),
        Field::new("elapsed_ms", DataType::Int64, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("retry_policy", DataType::Utf8, false),
        Field::new("attempts", DataType::Int64, false),
        Field::new("session_pid", DataType::Int32, true),
    ]))
});

static TASKS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("query_id", DataType::Utf8, false),
        Field::new("stage", DataType::Int64, false),
        Field::new("task", DataType::Int64, false),
        Field::new("attempt", DataType::Int64, false),
        Field::new("worker", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("elapsed_ms", DataType::Int64, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("spooled_bytes", DataType::Int64, false),
        Field::new("partitions", DataType::Int64, false),
    ]))
});

/// One `system.runtime` table; a scan snapshots [`RuntimeInfo`] into a single in-memory partition.
#[derive(Debug)]
pub struct SystemTable {
    kind: SystemTableKind,
    info: Arc<dyn RuntimeInfo>,
}

impl SystemTable {
    /// The table's rows as of now, as one batch.
    pub fn snapshot(&self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = match self.kind {
            SystemTableKind::Nodes => {
                let nodes = self.info.nodes();
                vec![
                    strings(nodes.iter().map(|n| n.node_id.as_str())),
                    strings(nodes.iter().map(|n| n.address.as_str())),
                    strings(nodes.iter().map(|n| n.role.as_str())),
                    strings(nodes.iter().map(|n| n.state.as_str())),
                    timestamps(nodes.iter().map(|n| n.last_heartbeat_us)),
                    Arc::new(Int64Array::from_iter_values(
                        nodes.iter().map(|n| n.running_tasks),
                    )),
                ]
            }
            SystemTableKind::Queries => {
                let queries = self.info.queries();
                vec![
                    strings(queries.iter().map(|q| q.query_id.as_str())),
                    strings(queries.iter().map(|q| q.state.as_str())),
                    strings(queries.iter().map(|q| q.user.as_str())),
                    strings(queries.iter().map(|q| q.query.as_str())),
                    timestamps(queries.iter().map(|q| q.created_us)),
                    Arc::new(Int64Array::from_iter_values(
                        queries.iter().map(|q| q.elapsed_ms),
                    )),
                    Arc::new(Int64Array::from_iter_values(queries.iter().map(|q| q.rows))),
                    Arc::new(
                        queries
                            .iter()
                            .map(|q| q.error.as_deref())
                            .collect::<StringArray>(),
                    ),
                    strings(queries.iter().map(|q| q.retry_policy)),
                    Arc::new(Int64Array::from_iter_values(
                        queries.iter().map(|q| q.attempts),
                    )),
                    Arc::new(
                        queries
                            .iter()
                            .map(|q| q.session_pid)
                            .collect::<Int32Array>(),
                    ),
                ]
            }
            SystemTableKind::Tasks => {
                let tasks = self.info.tasks();
                let ints = |f: fn(&TaskInfo) -> i64| -> ArrayRef {
                    Arc::new(Int64Array::from_iter_values(tasks.iter().map(f)))
                };
                vec![
                    strings(tasks.iter().map(|t| t.query_id.as_str())),
                    ints(|t| t.stage),
                    ints(|t| t.task),
                    ints(|t| t.attempt),
                    strings(tasks.iter().map(|t| t.worker.as_str())),
                    strings(tasks.iter().map(|t| t.state.as_str())),
                    ints(|t| t.rows),
                    ints(|t| t.bytes),
                    ints(|t| t.elapsed_ms),
                    Arc::new(
                        tasks
                            .iter()
                            .map(|t| t.error.as_deref())
                            .collect::<StringArray>(),
                    ),
                    ints(|t| t.spooled_bytes),
                    ints(|t| t.partitions),
                ]
            }
        };
        Ok(RecordBatch::try_new(self.kind.schema(), columns)?)
    }
}

fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn timestamps(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter_values(values).with_timezone("UTC"))
}

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        self.kind.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = self.snapshot()?;
        let table = MemTable::try_new(self.kind.schema(), vec![vec![batch]])?;
        table.scan(state, projection, filters, limit).await
    }
}
