//! Config files: reading TOML with `${ENV}` substitution (shared by `config.toml` and the catalog
//! files), and the one model of `DIR/config.toml` that the server and the engine both use.
//!
//! [`Config`] holds every section of `config.toml` (`[server]`, `[node]`, `[engine]`, `[query]`,
//! `[exchange]`, `[auth]`, `[tls]`), each a serde-derived struct that refuses unknown keys, with its
//! defaults in its `Default` impl (serde fills absent keys from it, so the two cannot disagree). A
//! new section is a new field of [`Config`] with its own struct here. Every error names the file, the key as
//! `section.key` and the reason, and never quotes a string the file gave a non-string key (it may be
//! a substituted secret). Catalog files (`DIR/catalog/NAME.toml`) are interpreted by their
//! connectors, not here.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use tributary_exchange::flight::NodeSecret;
use tributary_exchange::spool::ExchangeConfig;

/// A config file that could not be used. The message names the file, the key and the reason
/// (and never a substituted secret).
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", file.display())]
pub struct ConfigError {
    /// The file (or config directory) that was refused.
    pub file: PathBuf,
    /// Why: for a key, `key `section.key`: REASON`.
    pub reason: String,
}

/// Replaces every `${NAME}` in `text` with the environment variable `NAME`.
///
/// Errors with the variable's name when it is unset or the `${` is not closed. `$$` is not special.
pub fn substitute_env(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated `${` in value".to_string())?;
        let name = &after[..end];
        let value =
            std::env::var(name).map_err(|_| format!("environment variable `{name}` is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads `path` as TOML, then replaces `${ENV}` in its string values (never in keys or the raw text,
/// so a secret can hold any character and a TOML error never quotes one).
///
/// Errors name the file and, for TOML errors, the line and the `toml` crate's reason; for a missing
/// variable, the key path and the variable's name.
pub fn read_toml(path: &Path) -> Result<toml::Table, ConfigError> {
    let err = |reason: String| ConfigError {
        file: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let mut table = text.parse::<toml::Table>().map_err(|e| {
        let line = e
            .span()
            .map(|span| format!("line {}: ", text[..span.start].lines().count().max(1)))
            .unwrap_or_default();
        err(format!("{line}{}", e.message()))
    })?;
    for (key, value) in table.iter_mut() {
        substitute_value(value).map_err(|reason| err(format!("key `{key}`: {reason}")))?;
    }
    Ok(table)
}

/// Applies [`substitute_env`] to every string inside `value`.
fn substitute_value(value: &mut toml::Value) -> Result<(), String> {
    match value {
        toml::Value::String(s) => *s = substitute_env(s)?,
        toml::Value::Array(items) => items.iter_mut().try_for_each(substitute_value)?,
        toml::Value::Table(table) => table
            .iter_mut()
            .try_for_each(|(_, v)| substitute_value(v))?,
        _ => {}
    }
    Ok(())
}

/// The PostgreSQL-wire address when neither `--listen` nor `[server] listen` says otherwise (not
/// 5432, so a local PostgreSQL keeps its port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7432";

/// Most in-process workers, hash partitions or task threads `config.toml` accepts (beyond it,
/// per-task overhead dominates on any machine).
pub const MAX_PARALLELISM: usize = 256;

/// Environment variable overriding the core count [`node_cores`] reads (a positive integer): for
/// nodes sharing a machine (tests, a cluster on one box) or a container whose CPU limit is not
/// visible as affinity or a cgroup quota.
pub const CORES_ENV: &str = "TRIBUTARY_CORES";

/// The cores this node may use, which the `[engine]` defaults derive from: [`CORES_ENV`] when set
/// to a positive integer, else the standard library's `available_parallelism` (CPU affinity and
/// cgroup quotas included), else 2. At most [`MAX_PARALLELISM`].
pub fn node_cores() -> usize {
    std::env::var(CORES_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .min(MAX_PARALLELISM)
}

/// The settings of `DIR/config.toml`, with defaults for what the file leaves out.
///
/// Built by [`Config::load`] (or [`Config::from_table`]), then [`Config::apply`] for the
/// command line; the engine (`tributary_exec::Engine::start`) takes it as is.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`: the PostgreSQL-wire front end.
    pub server: ServerConfig,
    /// `[node]`: this process's role and cluster membership.
    pub node: NodeConfig,
    /// `[engine]`: parallelism, memory and threads of query execution on this node.
    pub engine: EngineConfig,
    /// `[query]`: the retry policy and its attempts and delays (Trino's `retry-policy` family).
    pub query: QueryConfig,
    /// `[auth]`: how clients authenticate.
    pub auth: AuthConfig,
    /// `[tls]`: the server certificate, when TLS is offered.
    pub tls: TlsConfig,
    /// `[exchange]`: the spool of fault-tolerant execution (base directories, S3 settings,
    /// compression, TTL); see [`ExchangeConfig`].
    pub exchange: ExchangeConfig,
    /// `[log]`: how the log (standard error) is written.
    pub log: LogConfig,
    /// `[catalogs]`: how the catalog directory is watched, and whether SQL may add catalogs.
    pub catalogs: CatalogsConfig,
    /// `[http]`: the HTTP listener (metrics, query API); off unless `listen` is set.
    pub http: HttpConfig,
    /// The config directory the file was read from (`--config DIR`); `None` when only the built-in
    /// catalogs are served. Not a key of the file.
    #[serde(skip)]
    pub dir: Option<PathBuf>,
}

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `[http] listen`: `host:port` of the coordinator's HTTP listener: `GET /metrics`
    /// (Prometheus), `GET /v1/info`, `GET /v1/node`, `GET /v1/query[/ID]`, `DELETE /v1/query/ID`.
    /// Absent: no listener. With a password method in `[auth]`, requests need HTTP Basic
    /// authentication as one of the users file's users.
    pub listen: Option<String>,
}

/// `[catalogs]`: catalogs that change while the server runs (Trino's dynamic catalog management).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogsConfig {
    /// `[catalogs] refresh_interval_ms`: how often each node reads `DIR/catalog/` again and mounts
    /// what was added, changed or removed (default 3000 ms; 0 = only at start and on
    /// `CALL system.reload_catalogs()`). Polled rather than watched, so a Kubernetes ConfigMap
    /// (updated by swapping a symbolic link) is seen like any other change.
    pub refresh_interval_ms: u64,
    /// `[catalogs] management`: `"static"` (default: catalogs are files, changed by editing them) or
    /// `"dynamic"` (also `CREATE CATALOG` and `DROP CATALOG`, which write and delete those files;
    /// Trino's `catalog.management`).
    pub management: CatalogManagement,
}

impl Default for CatalogsConfig {
    fn default() -> Self {
        Self {
            refresh_interval_ms: 3000,
            management: CatalogManagement::Static,
        }
    }
}

/// Whether SQL statements may add and drop catalogs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatalogManagement {
    /// Catalogs change only through their files.
    #[default]
    Static,
    /// `CREATE CATALOG` / `DROP CATALOG` too.
    Dynamic,
}

/// `[log]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `[log] format`: `"text"` (default, for people) or `"json"` (one JSON object per line, for
    /// log pipelines: every line of a query's work carries its session's `pid` and `user`, the
    /// query id, and a task's `query`, `stage`, `task` and `attempt`).
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (tracing's default format).
    #[default]
    Text,
    /// One JSON object per line, with the fields of the spans it happened in.
    Json,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// `[server] listen`: the PostgreSQL-wire address, `HOST:PORT` (default [`DEFAULT_LISTEN`]).
    #[serde(deserialize_with = "de::address")]
    pub listen: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_string(),
        }
    }
}

/// What this process does in a cluster (`[node] role`, or `--role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum NodeRole {
    /// Coordinator and in-process workers in one process (the default).
    #[default]
    Single,
    /// Serves clients, plans and schedules; tasks run on the workers that announced themselves.
    Coordinator,
    /// Runs tasks the coordinator named by `[node] coordinator` sends; serves no clients.
    Worker,
}

impl NodeRole {
    /// The names `[node] role` and `--role` accept, in the order of the variants.
    pub const NAMES: [&'static str; 3] = ["single", "coordinator", "worker"];

    /// The name used in `config.toml` and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            NodeRole::Single => "single",
            NodeRole::Coordinator => "coordinator",
            NodeRole::Worker => "worker",
        }
    }
}

impl FromStr for NodeRole {
    type Err = ValueError;

    fn from_str(name: &str) -> Result<Self, ValueError> {
        match name {
            "single" => Ok(NodeRole::Single),
            "coordinator" => Ok(NodeRole::Coordinator),
            "worker" => Ok(NodeRole::Worker),
            other => Err(ValueError::Role(other.to_string())),
        }
    }
}

impl TryFrom<String> for NodeRole {
    type Error = ValueError;

    fn try_from(name: String) -> Result<Self, ValueError> {
        name.parse()
    }
}

/// `[node]`: cluster membership of this process.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// `[node] role` (default `single`).
    pub role: NodeRole,
    /// `[node] id`: the node id shown in `system.runtime.nodes` (default `coordinator`, or
    /// `worker-PORT` for a worker); not empty.
    #[serde(deserialize_with = "de::non_empty")]
    pub id: Option<String>,
    /// `[node] rpc_listen`: the node RPC (Arrow Flight) address, `HOST:PORT` (default
    /// `127.0.0.1:0`, any free port; a coordinator's workers need a fixed one). Not used in
    /// `single` mode.
    #[serde(deserialize_with = "de::address")]
    pub rpc_listen: String,
    /// `[node] coordinator`: a worker's coordinator, `HOST:PORT` as the coordinator's `rpc_listen`.
    #[serde(deserialize_with = "de::optional_address")]
    pub coordinator: Option<String>,
    /// `[node] include_coordinator`: whether a coordinator runs tasks too (Trino's
    /// `node-scheduler.include-coordinator`; default false).
    #[serde(deserialize_with = "de::flag")]
    pub include_coordinator: bool,
    /// `[node] heartbeat_interval_ms`: how often a worker announces itself, in milliseconds, >= 1
    /// (default 1000).
    #[serde(deserialize_with = "de::positive")]
    pub heartbeat_interval_ms: u64,
    /// `[node] heartbeat_timeout_ms`: silence in milliseconds after which the coordinator marks a
    /// worker dead, >= 1 (default 5000).
    #[serde(deserialize_with = "de::positive")]
    pub heartbeat_timeout_ms: u64,
    /// `[node] shared_secret`: the secret every node of the cluster shares (Trino's
    /// `internal-communication.shared-secret`; use `${ENV}` to keep it out of the file); not empty.
    /// When set, node RPC without it is refused (gRPC `UNAUTHENTICATED`). Never printed.
    #[serde(deserialize_with = "de::secret")]
    pub shared_secret: Option<NodeSecret>,
    /// `[node] tls_ca_file`: PEM CA certificate(s) that signed every node's certificate. With
    /// `tls_cert_file` and `tls_key_file` (all three or none), node RPC and exchange reads use
    /// mutual TLS: peers without a certificate the CA signed are refused, and the shared secret
    /// travels encrypted.
    #[serde(deserialize_with = "de::path")]
    pub tls_ca_file: Option<PathBuf>,
    /// `[node] tls_cert_file`: this node's PEM certificate chain (its own first), naming its RPC
    /// host (`rpc_listen`'s, as the others dial it) as a subject alternative name.
    #[serde(deserialize_with = "de::path")]
    pub tls_cert_file: Option<PathBuf>,
    /// `[node] tls_key_file`: this node's PEM private key.
    #[serde(deserialize_with = "de::path")]
    pub tls_key_file: Option<PathBuf>,
    /// `[node] shutdown_timeout_ms`: on SIGTERM, how long a worker waits for the queries it serves
    /// and a coordinator for running queries before exiting anyway, in milliseconds, >= 1 (default
    /// 300000; Trino's `shutdown.grace-period` is similar).
    #[serde(deserialize_with = "de::positive")]
    pub shutdown_timeout_ms: u64,
}

impl NodeConfig {
    /// `shutdown_timeout_ms` as a duration.
    pub fn shutdown_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.shutdown_timeout_ms)
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            role: NodeRole::Single,
            id: None,
            rpc_listen: "127.0.0.1:0".into(),
            coordinator: None,
            include_coordinator: false,
            heartbeat_interval_ms: 1000,
            heartbeat_timeout_ms: 5000,
            shared_secret: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            shutdown_timeout_ms: 300_000,
        }
    }
}

/// `[engine]`: query execution on this node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// `[engine] workers`: in-process workers tasks are spread over in `single` mode,
    /// 1..=[`MAX_PARALLELISM`] (default: a quarter of [`node_cores`], at least 2: 2 on up to 11
    /// cores, 4 on 16).
    #[serde(deserialize_with = "de::parallelism")]
    pub workers: usize,
    /// `[engine] hash_partitions`: partitions of a hash-repartitioned stage (Trino's
    /// `hash_partition_count`, DataFusion's `target_partitions`), 1..=[`MAX_PARALLELISM`]
    /// (default: [`node_cores`], at least 4; on a coordinator with workers, the cluster's task
    /// slots, see [`EngineConfig::hash_partitions_configured`]).
    #[serde(deserialize_with = "de::parallelism")]
    pub hash_partitions: usize,
    /// Whether `config.toml` set `hash_partitions` (not a key: found by [`Config::from_table`]).
    /// When it did not, a coordinator gives each query as many hash partitions as its active
    /// workers have task threads together (at least 4), as Trino sizes `hash_partition_count` to
    /// the cluster.
    #[serde(skip)]
    pub hash_partitions_configured: bool,
    /// `[engine] max_memory_mb`: memory in MiB all queries on this node may use together, >= 1;
    /// operators that can spill do so past it. When absent: [`DEFAULT_NODE_MEMORY_PERCENT`] of the
    /// machine's memory (or of the container's cgroup limit when that is lower).
    #[serde(deserialize_with = "de::optional_positive")]
    pub max_memory_mb: Option<usize>,
    /// `[engine] query_max_memory_per_node_mb`: memory in MiB one query may use on this node
    /// (Trino's `query.max-memory-per-node`), >= 1. When absent: [`DEFAULT_QUERY_MEMORY_PERCENT`] of
    /// the node's limit.
    #[serde(deserialize_with = "de::optional_positive")]
    pub query_max_memory_per_node_mb: Option<usize>,
    /// `[engine] task_threads`: threads of the runtime tasks run on (Trino's
    /// `task.max-worker-threads`), 1..=[`MAX_PARALLELISM`]; one per core ([`node_cores`]) when
    /// absent.
    /// Co-located nodes (tests, a cluster on one machine) share cores and may want fewer.
    #[serde(deserialize_with = "de::optional_parallelism")]
    pub task_threads: Option<usize>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self::for_cores(node_cores())
    }
}

impl EngineConfig {
    /// The defaults on a node of `cores` cores: `workers` a quarter of them (at least 2),
    /// `hash_partitions` one per core (at least 4), task threads one per core.
    pub fn for_cores(cores: usize) -> Self {
        Self {
            workers: (cores / 4).clamp(2, MAX_PARALLELISM),
            hash_partitions: cores.clamp(4, MAX_PARALLELISM),
            hash_partitions_configured: false,
            max_memory_mb: None,
            query_max_memory_per_node_mb: None,
            task_threads: None,
        }
    }
}

impl EngineConfig {
    /// The node's memory limit in bytes: `max_memory_mb`, else [`DEFAULT_NODE_MEMORY_PERCENT`] of
    /// [`machine_memory_bytes`] (none when the machine's memory cannot be read).
    pub fn max_memory_bytes(&self) -> Option<usize> {
        match self.max_memory_mb {
            Some(mib) => Some(mib_to_bytes(mib)),
            None => machine_memory_bytes().map(|bytes| bytes / 100 * DEFAULT_NODE_MEMORY_PERCENT),
        }
    }

    /// One query's limit on this node in bytes: `query_max_memory_per_node_mb`, else
    /// [`DEFAULT_QUERY_MEMORY_PERCENT`] of [`Self::max_memory_bytes`].
    pub fn query_max_memory_per_node_bytes(&self) -> Option<usize> {
        match self.query_max_memory_per_node_mb {
            Some(mib) => Some(mib_to_bytes(mib)),
            None => self
                .max_memory_bytes()
                .map(|bytes| bytes / 100 * DEFAULT_QUERY_MEMORY_PERCENT),
        }
    }
}

/// The share of the machine's memory a node's queries may use together when `[engine]
/// max_memory_mb` is absent, in percent (the rest is for the process itself, values no pool
/// tracks, and the operating system; Trino's default heap sizing leaves a similar margin).
pub const DEFAULT_NODE_MEMORY_PERCENT: usize = 70;

/// The share of the node's limit one query may use when `[engine] query_max_memory_per_node_mb` is
/// absent, in percent: two queries that each want it all still leave room for the others.
pub const DEFAULT_QUERY_MEMORY_PERCENT: usize = 50;

/// The memory this process may use, in bytes: the machine's (`MemTotal` of `/proc/meminfo`), or
/// the cgroup's limit (`memory.max` of cgroup v2, `memory.limit_in_bytes` of v1) when lower, as a
/// container runtime sets it. `None` where neither can be read (not Linux).
pub fn machine_memory_bytes() -> Option<usize> {
    let physical = std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<usize>()
        .ok()?
        .saturating_mul(1024);
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|file| std::fs::read_to_string(file).ok())
    // "max" (v2) and a near-`u64::MAX` page-rounded value (v1) mean no limit.
    .filter_map(|text| text.trim().parse::<usize>().ok())
    .min();
    Some(cgroup.map_or(physical, |limit| limit.min(physical)))
}

/// What happens when a query fails for a reason worth trying again (Trino's `retry-policy`;
/// `[query] retry_policy` for the cluster, `SET retry_policy` per session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum RetryPolicy {
    /// Streaming exchanges; any failure fails the query (lowest latency).
    #[default]
    None,
    /// Streaming exchanges; a retryable failure runs the whole query again, the client seeing each
    /// row once (the result is held until the attempt succeeds).
    Query,
    /// Spooled exchanges; a failed or lost task runs again alone.
    Task,
}

impl RetryPolicy {
    /// The name as Trino and `SHOW retry_policy` spell it.
    pub fn name(self) -> &'static str {
        match self {
            RetryPolicy::None => "NONE",
            RetryPolicy::Query => "QUERY",
            RetryPolicy::Task => "TASK",
        }
    }
}

impl std::fmt::Display for RetryPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RetryPolicy {
    type Err = ValueError;

    fn from_str(name: &str) -> Result<Self, ValueError> {
        match name.trim().to_ascii_uppercase().as_str() {
            "NONE" => Ok(RetryPolicy::None),
            "QUERY" => Ok(RetryPolicy::Query),
            "TASK" => Ok(RetryPolicy::Task),
            _ => Err(ValueError::RetryPolicy(name.to_string())),
        }
    }
}

impl TryFrom<String> for RetryPolicy {
    type Error = ValueError;

    fn try_from(name: String) -> Result<Self, ValueError> {
        name.parse()
    }
}

/// `[query]`: fault tolerance of queries (names and defaults are Trino's).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// `[query] retry_policy`: `"NONE"` (default), `"QUERY"` or `"TASK"`. `TASK` needs
    /// `[exchange] base_directories`.
    pub retry_policy: RetryPolicy,
    /// `[query] query_retry_attempts`: how many times a query runs again under `QUERY` (default 4).
    #[serde(deserialize_with = "de::count")]
    pub query_retry_attempts: u32,
    /// `[query] task_retry_attempts_per_task`: how many times one task runs again under `TASK`
    /// (default 4).
    #[serde(deserialize_with = "de::count")]
    pub task_retry_attempts_per_task: u32,
    /// `[query] retry_initial_delay_ms`: wait before the first retry, milliseconds (default 10000).
    #[serde(deserialize_with = "de::count_u64")]
    pub retry_initial_delay_ms: u64,
    /// `[query] retry_max_delay_ms`: the longest wait between retries, milliseconds (default 60000).
    #[serde(deserialize_with = "de::count_u64")]
    pub retry_max_delay_ms: u64,
    /// `[query] retry_delay_scale_factor`: each wait is the previous one times this, >= 1.0
    /// (default 2.0).
    #[serde(deserialize_with = "de::scale_factor")]
    pub retry_delay_scale_factor: f64,
    /// `[query] result_buffer_mb`: under `QUERY`, how much of an attempt's result is held in memory
    /// before the rest is spilled to the spool, MiB >= 1 (default 32).
    #[serde(deserialize_with = "de::positive")]
    pub result_buffer_mb: u64,
    /// `[query] task_hash_partitions`: the most hash partitions a repartitioned stage gets under
    /// `TASK`, 1..=[`MAX_PARALLELISM`] (default 16; Trino's
    /// `fault-tolerant-execution-max-partition-count`). A query gets one partition per
    /// `task_target_input_mb` it scans, at least `[engine] hash_partitions`, so a join or
    /// aggregation over much data runs in pieces small enough for memory.
    #[serde(deserialize_with = "de::parallelism")]
    pub task_hash_partitions: usize,
    /// `[query] task_target_input_mb`: input a task is sized to under `TASK`, MiB >= 1 (default
    /// 512; Trino's `fault-tolerant-execution-*-task-target-size`): a task runs as many of its
    /// stage's partitions (splits, or hash partitions of its input) as fit, one after another, so
    /// a stage's task count follows its input bytes. A stage still gets as many tasks as
    /// `[engine] hash_partitions` when it has that many partitions, so a small query keeps its
    /// parallelism.
    #[serde(deserialize_with = "de::positive")]
    pub task_target_input_mb: u64,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            retry_policy: RetryPolicy::None,
            query_retry_attempts: 4,
            task_retry_attempts_per_task: 4,
            retry_initial_delay_ms: 10_000,
            retry_max_delay_ms: 60_000,
            retry_delay_scale_factor: 2.0,
            result_buffer_mb: 32,
            task_hash_partitions: 16,
            task_target_input_mb: 512,
        }
    }
}

impl QueryConfig {
    /// The wait before retry number `retry` (1 for the first): the initial delay times the scale
    /// factor per earlier retry, at most the maximum delay (Trino's exponential backoff).
    pub fn retry_delay(&self, retry: u32) -> std::time::Duration {
        let initial = self.retry_initial_delay_ms as f64;
        let scaled = initial
            * self
                .retry_delay_scale_factor
                .powi(retry.saturating_sub(1) as i32);
        let ms = scaled.min(self.retry_max_delay_ms.max(self.retry_initial_delay_ms) as f64);
        std::time::Duration::from_millis(ms as u64)
    }
}

fn mib_to_bytes(mib: usize) -> usize {
    mib.saturating_mul(1 << 20)
}

/// How clients prove who they are (`[auth] method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum AuthMethod {
    /// Anyone connects as any user without a password.
    Trust,
    /// SCRAM-SHA-256 (SASL) against the users file's verifiers.
    ScramSha256,
    /// PostgreSQL's `md5` challenge against the users file's `md5…` hashes.
    Md5,
    /// The cleartext password, compared with the users file's `password` (development only).
    Password,
}

impl AuthMethod {
    /// The name used in `config.toml` (and in PostgreSQL's `pg_hba.conf`).
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Trust => "trust",
            AuthMethod::ScramSha256 => "scram-sha-256",
            AuthMethod::Md5 => "md5",
            AuthMethod::Password => "password",
        }
    }
}

impl TryFrom<String> for AuthMethod {
    type Error = ValueError;

    fn try_from(name: String) -> Result<Self, ValueError> {
        match name.as_str() {
            "trust" => Ok(AuthMethod::Trust),
            "scram-sha-256" => Ok(AuthMethod::ScramSha256),
            "md5" => Ok(AuthMethod::Md5),
            "password" => Ok(AuthMethod::Password),
            _ => Err(ValueError::AuthMethod),
        }
    }
}

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `[auth] method`; `None` when the file does not say (trust, allowed on a loopback listener
    /// only).
    pub method: Option<AuthMethod>,
    /// `[auth] users_file`: required with a password method, refused otherwise; relative paths are
    /// resolved against the config directory by [`Config::load`].
    #[serde(deserialize_with = "de::path")]
    pub users_file: Option<PathBuf>,
    /// `[auth] admin_users`: users who may cancel and terminate other users' sessions
    /// (`pg_cancel_backend`, `pg_terminate_backend`; PostgreSQL's `pg_signal_backend` role) and,
    /// with a password method, run `CREATE CATALOG` / `DROP CATALOG` (default: none).
    pub admin_users: Vec<String>,
}

impl AuthConfig {
    /// Whether `user` is one of `[auth] admin_users`.
    pub fn is_admin(&self, user: &str) -> bool {
        self.admin_users.iter().any(|a| a == user)
    }
}

/// `[tls]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// `[tls] cert_file`: PEM certificate chain, server certificate first (needs `key_file`).
    #[serde(deserialize_with = "de::path")]
    pub cert_file: Option<PathBuf>,
    /// `[tls] key_file`: PEM private key (PKCS#8, PKCS#1 or SEC1; needs `cert_file`).
    #[serde(deserialize_with = "de::path")]
    pub key_file: Option<PathBuf>,
    /// `[tls] required`: refuse connections that did not negotiate TLS (needs both files).
    #[serde(deserialize_with = "de::flag")]
    pub required: bool,
}

/// Why a value of `config.toml` (or of the flag overriding it) was refused. Never quotes a value
/// that may be a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// An address without `:PORT`.
    #[error("\"{0}\" is not HOST:PORT")]
    NotHostPort(String),
    /// An address with an empty host.
    #[error("\"{0}\" has no host")]
    NoHost(String),
    /// An address whose port is not a number in 0..=65535.
    #[error("\"{0}\" is not a port number")]
    NotPort(String),
    /// A value that must be a `HOST:PORT` string.
    #[error("expected a string \"HOST:PORT\"")]
    NotAddress,
    /// An unknown `[node] role` / `--role`.
    #[error("unsupported role \"{0}\"; expected \"single\", \"coordinator\" or \"worker\"")]
    Role(String),
    /// An unknown `[auth] method`.
    #[error("expected \"trust\", \"scram-sha-256\", \"md5\" or \"password\"")]
    AuthMethod,
    /// A worker, partition or thread count outside 1..=[`MAX_PARALLELISM`].
    #[error("expected an integer from 1 to {MAX_PARALLELISM}")]
    NotParallelism,
    /// A count, size or duration below 1.
    #[error("expected an integer >= 1")]
    NotPositive,
    /// Not a boolean.
    #[error("expected true or false")]
    NotBool,
    /// An empty (or non-string) value where a name is needed.
    #[error("expected a non-empty string")]
    NotName,
    /// An empty (or non-string) value where a file path is needed.
    #[error("expected a file path string")]
    NotPath,
    /// Not a string.
    #[error("expected a string")]
    NotString,
    /// An empty secret.
    #[error("must not be empty")]
    EmptySecret,
    /// An unknown retry policy.
    #[error("unsupported retry policy \"{0}\"; expected \"NONE\", \"QUERY\" or \"TASK\"")]
    RetryPolicy(String),
    /// A negative count or delay.
    #[error("expected an integer >= 0")]
    Negative,
    /// A scale factor below 1 (or not a number).
    #[error("expected a number >= 1.0")]
    NotScaleFactor,
}

/// Checks `HOST:PORT` (a name or an IP, and a port number).
pub fn validate_listen(listen: &str) -> Result<(), ValueError> {
    let (host, port) = listen
        .rsplit_once(':')
        .ok_or_else(|| ValueError::NotHostPort(listen.to_string()))?;
    if host.is_empty() {
        return Err(ValueError::NoHost(listen.to_string()));
    }
    port.parse::<u16>()
        .map_err(|_| ValueError::NotPort(port.to_string()))?;
    Ok(())
}

/// Command-line settings that override `config.toml` (`tributary --listen ...`); `None` keeps the
/// file's value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--listen HOST:PORT`: `[server] listen`.
    pub listen: Option<String>,
    /// `--role`: `[node] role`.
    pub role: Option<NodeRole>,
    /// `--rpc-listen HOST:PORT`: `[node] rpc_listen`.
    pub rpc_listen: Option<String>,
    /// `--coordinator HOST:PORT`: `[node] coordinator`.
    pub coordinator: Option<String>,
    /// `--node-id ID`: `[node] id`.
    pub node_id: Option<String>,
}

/// A config that could not be put together from `config.toml` and the command line.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The config directory or `config.toml` was refused.
    #[error(transparent)]
    File(#[from] ConfigError),
    /// A command-line flag (`--listen`, ...) was refused.
    #[error("--{flag}: {reason}")]
    Flag {
        /// The flag's name without dashes.
        flag: &'static str,
        /// Why.
        reason: ValueError,
    },
    /// `role = worker` (file or `--role`) without a coordinator address.
    #[error("a worker needs its coordinator: set `[node] coordinator` or --coordinator")]
    WorkerWithoutCoordinator,
}

impl Config {
    /// Reads `dir/config.toml` (optional: a directory holding only `catalog/` is fine), resolves
    /// its relative file paths against `dir` and remembers `dir` (so catalogs come from
    /// `dir/catalog`). Errors name the file, the key and the reason.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        if !dir.is_dir() {
            return Err(ConfigError {
                file: dir.to_path_buf(),
                reason: "config directory does not exist".into(),
            });
        }
        let file = dir.join("config.toml");
        let mut config = if file.exists() {
            Self::from_table(&file, &read_toml(&file)?)?
        } else {
            Self::default()
        };
        config.dir = Some(dir.to_path_buf());
        for path in [
            &mut config.auth.users_file,
            &mut config.tls.cert_file,
            &mut config.tls.key_file,
            &mut config.node.tls_ca_file,
            &mut config.node.tls_cert_file,
            &mut config.node.tls_key_file,
        ]
        .into_iter()
        .flatten()
        {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        }
        Ok(config)
    }

    /// Interprets a parsed `config.toml` (after `${ENV}` substitution); `file` is only used in
    /// error messages. Relative file paths are returned as written.
    pub fn from_table(file: &Path, table: &toml::Table) -> Result<Self, ConfigError> {
        let err = |key: &str, reason: String| ConfigError {
            file: file.to_path_buf(),
            reason: format!("key `{key}`: {reason}"),
        };
        let mut config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
                let key = e
                    .path()
                    .iter()
                    .map(|segment| segment.to_string())
                    .collect::<Vec<_>>()
                    .join(".");
                err(&key, e.inner().message().to_string())
            })?;
        config.engine.hash_partitions_configured = table
            .get("engine")
            .and_then(|engine| engine.get("hash_partitions"))
            .is_some();
        let node_tls = [
            &config.node.tls_ca_file,
            &config.node.tls_cert_file,
            &config.node.tls_key_file,
        ];
        if node_tls.iter().any(|f| f.is_some()) && !node_tls.iter().all(|f| f.is_some()) {
            return Err(err(
                "node.tls_ca_file",
                "node TLS needs all of tls_ca_file, tls_cert_file and tls_key_file".into(),
            ));
        }
        match (config.auth.method, &config.auth.users_file) {
            (Some(m), None) if m != AuthMethod::Trust => {
                return Err(err(
                    "auth.users_file",
                    format!("required with method \"{}\"", m.name()),
                ));
            }
            (Some(AuthMethod::Trust) | None, Some(_)) => {
                return Err(err(
                    "auth.users_file",
                    "only used with a password method; set `[auth] method`".into(),
                ));
            }
            _ => {}
        }
        match (&config.tls.cert_file, &config.tls.key_file) {
            (Some(_), None) => {
                return Err(err("tls.key_file", "required with tls.cert_file".into()));
            }
            (None, Some(_)) => {
                return Err(err("tls.cert_file", "required with tls.key_file".into()));
            }
            (None, None) if config.tls.required => {
                return Err(err(
                    "tls.required",
                    "needs tls.cert_file and tls.key_file".into(),
                ));
            }
            _ => {}
        }
        Ok(config)
    }

    /// The config of a process: `dir/config.toml` when a directory is given (else the defaults),
    /// then the command-line `overrides`, then the checks that span both (a worker needs a
    /// coordinator).
    pub fn resolve(dir: Option<&Path>, overrides: Overrides) -> Result<Self, SetupError> {
        let mut config = match dir {
            Some(dir) => Self::load(dir)?,
            None => Self::default(),
        };
        config.apply(overrides)?;
        if config.node.role == NodeRole::Worker && config.node.coordinator.is_none() {
            return Err(SetupError::WorkerWithoutCoordinator);
        }
        Ok(config)
    }

    /// Applies the command-line `overrides`, checking addresses as the file's are checked.
    pub fn apply(&mut self, overrides: Overrides) -> Result<(), SetupError> {
        let address = |flag: &'static str, value: String| {
            validate_listen(&value)
                .map(|()| value)
                .map_err(|reason| SetupError::Flag { flag, reason })
        };
        if let Some(listen) = overrides.listen {
            self.server.listen = address("listen", listen)?;
        }
        if let Some(role) = overrides.role {
            self.node.role = role;
        }
        if let Some(rpc) = overrides.rpc_listen {
            self.node.rpc_listen = address("rpc-listen", rpc)?;
        }
        if let Some(coordinator) = overrides.coordinator {
            self.node.coordinator = Some(address("coordinator", coordinator)?);
        }
        if let Some(id) = overrides.node_id {
            self.node.id = Some(id);
        }
        Ok(())
    }

    /// `DIR/catalog`, holding one `NAME.toml` per catalog; `None` (only the built-in catalogs)
    /// without a config directory.
    pub fn catalog_dir(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|dir| dir.join("catalog"))
    }

    /// `DIR/config.toml` as errors name it (`config.toml` without a config directory).
    pub fn file(&self) -> PathBuf {
        self.dir
            .as_ref()
            .map_or_else(|| "config.toml".into(), |dir| dir.join("config.toml"))
    }
}

/// Field deserializers that check bounds and never echo a string given where another type was
/// expected (it may be a substituted secret).
mod de {
    use std::path::PathBuf;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};
    use tributary_exchange::flight::NodeSecret;

    use super::{MAX_PARALLELISM, ValueError, validate_listen};

    fn value<'de, D: Deserializer<'de>>(d: D) -> Result<toml::Value, D::Error> {
        toml::Value::deserialize(d)
    }

    fn integer<'de, D: Deserializer<'de>>(
        d: D,
        min: i64,
        max: i64,
        error: ValueError,
    ) -> Result<i64, D::Error> {
        match value(d)?.as_integer() {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(D::Error::custom(error)),
        }
    }

    /// 1..=[`MAX_PARALLELISM`].
    pub fn parallelism<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        let n = integer(d, 1, MAX_PARALLELISM as i64, ValueError::NotParallelism)?;
        Ok(n as usize)
    }

    /// [`parallelism`], present.
    pub fn optional_parallelism<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<usize>, D::Error> {
        parallelism(d).map(Some)
    }

    /// An integer >= 1.
    pub fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let n = integer(d, 1, i64::MAX, ValueError::NotPositive)?;
        Ok(n as u64)
    }

    /// An integer >= 0 that fits `u32`.
    pub fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let n = integer(d, 0, u32::MAX as i64, ValueError::Negative)?;
        Ok(n as u32)
    }

    /// An integer >= 0.
    pub fn count_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let n = integer(d, 0, i64::MAX, ValueError::Negative)?;
        Ok(n as u64)
    }

    /// A number (integer or float) >= 1.0.
    pub fn scale_factor<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let v = value(d)?;
        let n = v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
        match n {
            Some(n) if n >= 1.0 && n.is_finite() => Ok(n),
            _ => Err(D::Error::custom(ValueError::NotScaleFactor)),
        }
    }

    /// An integer >= 1 that fits `usize`, present.
    pub fn optional_positive<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
        let max = i64::try_from(usize::MAX).unwrap_or(i64::MAX);
        let n = integer(d, 1, max, ValueError::NotPositive)?;
        Ok(Some(n as usize))
    }

    /// `true` or `false`.
    pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        value(d)?
            .as_bool()
            .ok_or_else(|| D::Error::custom(ValueError::NotBool))
    }

    /// A `HOST:PORT` string.
    pub fn address<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let toml::Value::String(address) = value(d)? else {
            return Err(D::Error::custom(ValueError::NotAddress));
        };
        validate_listen(&address).map_err(D::Error::custom)?;
        Ok(address)
    }

    /// [`address`], present.
    pub fn optional_address<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        address(d).map(Some)
    }

    /// A non-empty string, present.
    pub fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        match value(d)? {
            toml::Value::String(s) if !s.is_empty() => Ok(Some(s)),
            _ => Err(D::Error::custom(ValueError::NotName)),
        }
    }

    /// A non-empty file path, present.
    pub fn path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        match value(d)? {
            toml::Value::String(s) if !s.is_empty() => Ok(Some(PathBuf::from(s))),
            _ => Err(D::Error::custom(ValueError::NotPath)),
        }
    }

    /// A non-empty secret, present.
    pub fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NodeSecret>, D::Error> {
        match value(d)? {
            toml::Value::String(s) => NodeSecret::new(s)
                .map(Some)
                .ok_or_else(|| D::Error::custom(ValueError::EmptySecret)),
            _ => Err(D::Error::custom(ValueError::NotString)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_table(Path::new("etc/config.toml"), &text.parse().unwrap())
    }

    /// Without `[engine]` memory keys a node is bounded by 70% of the machine and a query by half of
    /// that; configured values win.
    #[test]
    fn memory_limits_default_to_shares_of_the_machine() {
        let machine = machine_memory_bytes().expect("this machine's memory is readable");
        let defaults = parse("").unwrap().engine;
        assert_eq!(defaults.max_memory_bytes(), Some(machine / 100 * 70));
        assert_eq!(
            defaults.query_max_memory_per_node_bytes(),
            Some(machine / 100 * 70 / 100 * 50)
        );
        let configured = parse("[engine]\nmax_memory_mb = 100\n").unwrap().engine;
        assert_eq!(configured.max_memory_bytes(), Some(100 << 20));
        assert_eq!(configured.query_max_memory_per_node_bytes(), Some(50 << 20));
        let both = parse("[engine]\nmax_memory_mb = 100\nquery_max_memory_per_node_mb = 80\n")
            .unwrap()
            .engine;
        assert_eq!(both.query_max_memory_per_node_bytes(), Some(80 << 20));
    }

    #[test]
    fn reads_every_key() {
        let config = parse(
            "[server]\nlisten = \"0.0.0.0:9000\"\n[node]\nrole = \"single\"\n[engine]\nworkers = 3\nhash_partitions = 8\ntask_threads = 3\n",
        )
        .unwrap();
        assert_eq!(config.server.listen, "0.0.0.0:9000");
        assert_eq!(config.engine.workers, 3);
        assert_eq!(config.engine.hash_partitions, 8);
        assert!(config.engine.hash_partitions_configured);
        assert!(!parse("").unwrap().engine.hash_partitions_configured);
        assert_eq!(config.engine.task_threads, Some(3));
        let config = parse(
            "[node]\nrole = \"worker\"\nid = \"w1\"\nrpc_listen = \"127.0.0.1:7500\"\ncoordinator = \"127.0.0.1:7400\"\ninclude_coordinator = true\nheartbeat_interval_ms = 200\nheartbeat_timeout_ms = 900\nshared_secret = \"s3cret\"\n",
        )
        .unwrap();
        assert_eq!(config.node.role, NodeRole::Worker);
        assert_eq!(config.node.id.as_deref(), Some("w1"));
        assert_eq!(config.node.rpc_listen, "127.0.0.1:7500");
        assert_eq!(config.node.coordinator.as_deref(), Some("127.0.0.1:7400"));
        assert!(config.node.include_coordinator);
        assert_eq!(config.node.heartbeat_interval_ms, 200);
        assert_eq!(config.node.heartbeat_timeout_ms, 900);
        assert_eq!(config.node.shared_secret, NodeSecret::new("s3cret"));
        assert!(
            !format!("{config:?}").contains("s3cret"),
            "the shared secret must never be printed"
        );
        let msg = parse("[node]\nshared_secret = \"\"\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("node.shared_secret"), "{msg}");
        let config =
            parse("[engine]\nmax_memory_mb = 3\nquery_max_memory_per_node_mb = 2\n").unwrap();
        assert_eq!(config.engine.max_memory_mb, Some(3));
        assert_eq!(config.engine.max_memory_bytes(), Some(3 << 20));
        assert_eq!(
            config.engine.query_max_memory_per_node_bytes(),
            Some(2 << 20)
        );
    }

    #[test]
    fn reads_the_log_format() {
        assert_eq!(parse("").unwrap().log.format, LogFormat::Text);
        let config = parse("[log]\nformat = \"json\"\n").unwrap();
        assert_eq!(config.log.format, LogFormat::Json);
        for (text, key) in [
            ("[log]\nformat = \"xml\"\n", "log.format"),
            ("[log]\nlevel = \"debug\"\n", "log.level"),
        ] {
            let msg = parse(text).unwrap_err().to_string();
            assert!(msg.contains(key), "{text}: {msg}");
        }
    }

    #[test]
    fn reads_the_retry_policy_with_trino_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config.query.retry_policy, RetryPolicy::None);
        assert_eq!(config.query.query_retry_attempts, 4);
        assert_eq!(config.query.task_retry_attempts_per_task, 4);
        assert_eq!(config.query.retry_delay(1).as_millis(), 10_000);
        assert_eq!(config.query.retry_delay(2).as_millis(), 20_000);
        assert_eq!(config.query.retry_delay(9).as_millis(), 60_000);
        let config = parse(
            "[query]\nretry_policy = \"task\"\nquery_retry_attempts = 0\ntask_retry_attempts_per_task = 2\nretry_initial_delay_ms = 5\nretry_max_delay_ms = 12\nretry_delay_scale_factor = 3\nresult_buffer_mb = 1\ntask_hash_partitions = 32\ntask_target_input_mb = 64\n",
        )
        .unwrap();
        assert_eq!(config.query.retry_policy, RetryPolicy::Task);
        assert_eq!(config.query.query_retry_attempts, 0);
        assert_eq!(config.query.task_retry_attempts_per_task, 2);
        assert_eq!(config.query.retry_delay(2).as_millis(), 12);
        assert_eq!(config.query.result_buffer_mb, 1);
        assert_eq!(config.query.task_hash_partitions, 32);
        assert_eq!(config.query.task_target_input_mb, 64);
        for (text, key) in [
            ("[query]\nretry_policy = \"ALWAYS\"\n", "query.retry_policy"),
            (
                "[query]\nquery_retry_attempts = -1\n",
                "query.query_retry_attempts",
            ),
            (
                "[query]\nretry_delay_scale_factor = 0.5\n",
                "query.retry_delay_scale_factor",
            ),
            ("[query]\nretry_attempts = 1\n", "query.retry_attempts"),
        ] {
            let msg = parse(text).unwrap_err().to_string();
            assert!(msg.contains(key), "{text}: {msg}");
        }
    }

    #[test]
    fn reads_auth_and_tls() {
        let config = parse(
            "[auth]\nmethod = \"scram-sha-256\"\nusers_file = \"users.toml\"\n[tls]\ncert_file = \"a.pem\"\nkey_file = \"k.pem\"\nrequired = true\n",
        )
        .unwrap();
        assert_eq!(config.auth.method, Some(AuthMethod::ScramSha256));
        assert_eq!(config.auth.users_file, Some(PathBuf::from("users.toml")));
        assert_eq!(config.tls.cert_file, Some(PathBuf::from("a.pem")));
        assert!(config.tls.required);
        for (text, key) in [
            ("[auth]\nmethod = \"md5\"\n", "auth.users_file"),
            ("[auth]\nmethod = \"ldap\"\n", "auth.method"),
            ("[auth]\nusers = \"x\"\n", "auth.users"),
            ("[tls]\ncert_file = \"a.pem\"\n", "tls.key_file"),
            ("[tls]\nrequired = true\n", "tls.required"),
            ("[tls]\nrequire = true\n", "tls.require"),
        ] {
            let msg = parse(text).unwrap_err().to_string();
            assert!(msg.contains(key), "{text}: {msg}");
        }
    }

    #[test]
    fn reads_the_exchange_section() {
        let config = parse(
            "[exchange]\nbase_directories = [\"file:///var/spool/t\"]\nendpoint = \"http://127.0.0.1:9000\"\nsecret_access_key = \"wJalrXUtnFEMI\"\ncompression = \"zstd\"\n",
        )
        .unwrap();
        assert_eq!(config.exchange.base_directories, ["file:///var/spool/t"]);
        assert_eq!(
            config.exchange.s3.endpoint.as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert!(!format!("{config:?}").contains("wJalrXUtnFEMI"));
        for (text, expected) in [
            (
                "[exchange]\nbase_directories = [\"ftp://h/x\"]\n",
                "etc/config.toml: key `exchange.base_directories`: entry 0 has unsupported scheme \"ftp\"",
            ),
            (
                "[exchange]\nbase_directories = [\"s3:///x\"]\n",
                "etc/config.toml: key `exchange.base_directories`: entry 0 (\"s3:///x\") names no bucket",
            ),
            (
                "[exchange]\nsecret_access_key = 918273645\n",
                "etc/config.toml: key `exchange.secret_access_key`: must be a string, found a integer",
            ),
            (
                "[exchange]\nbase_directory = []\n",
                "etc/config.toml: key `exchange.base_directory`: unknown field",
            ),
        ] {
            let msg = parse(text).unwrap_err().to_string();
            assert!(msg.starts_with(expected), "{text}: {msg}");
        }
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
        // Every section given empty: serde's defaults are the `Default` impls'.
        assert_eq!(
            parse("[server]\n[node]\n[engine]\n[query]\n[auth]\n[tls]\n[exchange]\n").unwrap(),
            Config::default()
        );
    }

    #[test]
    fn errors_name_file_and_key() {
        let msg = parse("[server]\nlisten = \"x:1\"\nlistn = 3\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("etc/config.toml"), "{msg}");
        assert!(msg.contains("server.listn"), "{msg}");
        let msg = parse("[engine]\nworkers = 0\n").unwrap_err().to_string();
        assert!(msg.contains("engine.workers"), "{msg}");
        let msg = parse("[node]\nrole = \"leader\"\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("node.role"), "{msg}");
        let msg = parse("[engine]\nworkers = 100000\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("engine.workers"), "{msg}");
        let msg = parse("[node]\ncoordinator = \"nope\"\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("node.coordinator"), "{msg}");
        let msg = parse("[server]\nlisten = \"nope\"\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("server.listen"), "{msg}");
    }

    #[test]
    fn unknown_keys_are_refused_in_every_section() {
        for (text, key) in [
            ("[servr]\nlisten = \"x:1\"\n", "key `servr`"),
            ("listen = \"x:1\"\n", "key `listen`"),
            ("[server]\nport = 1\n", "key `server.port`"),
            ("[node]\nname = \"w1\"\n", "key `node.name`"),
            ("[engine]\nthreads = 2\n", "key `engine.threads`"),
            ("[auth]\nusers_fil = \"u.toml\"\n", "key `auth.users_fil`"),
            ("[tls]\ncert = \"a.pem\"\n", "key `tls.cert`"),
        ] {
            let msg = parse(text).unwrap_err().to_string();
            assert!(msg.starts_with("etc/config.toml: "), "{text}: {msg}");
            assert!(msg.contains(key), "{text}: {msg}");
            assert!(msg.contains("unknown field"), "{text}: {msg}");
        }
    }

    #[test]
    fn errors_name_section_key_and_reason() {
        for (text, expected) in [
            (
                "[engine]\nworkers = 0\n",
                "etc/config.toml: key `engine.workers`: expected an integer from 1 to 256",
            ),
            (
                "[engine]\ntask_threads = 300\n",
                "etc/config.toml: key `engine.task_threads`: expected an integer from 1 to 256",
            ),
            (
                "[engine]\nmax_memory_mb = 0\n",
                "etc/config.toml: key `engine.max_memory_mb`: expected an integer >= 1",
            ),
            (
                "[node]\nheartbeat_timeout_ms = -5\n",
                "etc/config.toml: key `node.heartbeat_timeout_ms`: expected an integer >= 1",
            ),
            (
                "[node]\nrole = \"leader\"\n",
                "etc/config.toml: key `node.role`: unsupported role \"leader\"; expected \"single\", \"coordinator\" or \"worker\"",
            ),
            (
                "[node]\nrpc_listen = \":7500\"\n",
                "etc/config.toml: key `node.rpc_listen`: \":7500\" has no host",
            ),
            (
                "[tls]\nrequired = \"yes\"\n",
                "etc/config.toml: key `tls.required`: expected true or false",
            ),
            (
                "[auth]\nmethod = \"md5\"\n",
                "etc/config.toml: key `auth.users_file`: required with method \"md5\"",
            ),
        ] {
            assert_eq!(parse(text).unwrap_err().to_string(), expected, "{text}");
        }
    }

    #[test]
    fn values_of_the_wrong_type_are_not_quoted() {
        // SAFETY: single-threaded test setting a variable only it reads.
        unsafe { std::env::set_var("TRIBUTARY_TEST_MISPLACED", "hunter2") };
        let dir = std::env::temp_dir().join(format!("tributary-misplaced-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for text in [
            "[engine]\nworkers = \"${TRIBUTARY_TEST_MISPLACED}\"\n",
            "[node]\ninclude_coordinator = \"${TRIBUTARY_TEST_MISPLACED}\"\n",
            "[node]\nheartbeat_interval_ms = \"${TRIBUTARY_TEST_MISPLACED}\"\n",
            "[auth]\nmethod = \"${TRIBUTARY_TEST_MISPLACED}\"\n",
        ] {
            std::fs::write(dir.join("config.toml"), text).unwrap();
            let msg = Config::load(&dir).unwrap_err().to_string();
            assert!(msg.contains("config.toml: key `"), "{text}: {msg}");
            assert!(!msg.contains("hunter2"), "{text}: {msg}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_resolves_paths_and_the_catalog_directory() {
        let dir = std::env::temp_dir().join(format!("tributary-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = Config::load(&dir).unwrap();
        assert_eq!(config.catalog_dir(), Some(dir.join("catalog")));
        assert_eq!(config.file(), dir.join("config.toml"));
        std::fs::write(
            dir.join("config.toml"),
            "[auth]\nmethod = \"md5\"\nusers_file = \"users.toml\"\n[tls]\ncert_file = \"/abs/a.pem\"\nkey_file = \"k.pem\"\n",
        )
        .unwrap();
        let config = Config::load(&dir).unwrap();
        assert_eq!(config.auth.users_file, Some(dir.join("users.toml")));
        assert_eq!(config.tls.cert_file, Some(PathBuf::from("/abs/a.pem")));
        assert_eq!(config.tls.key_file, Some(dir.join("k.pem")));
        std::fs::remove_dir_all(&dir).unwrap();
        let msg = Config::load(&dir).unwrap_err().to_string();
        assert!(msg.contains("config directory does not exist"), "{msg}");
        assert_eq!(Config::default().catalog_dir(), None);
        assert_eq!(Config::default().file(), PathBuf::from("config.toml"));
    }

    #[test]
    fn command_line_overrides_the_file() {
        let overrides = Overrides {
            listen: Some("0.0.0.0:9000".into()),
            role: Some(NodeRole::Worker),
            rpc_listen: Some("127.0.0.1:7501".into()),
            coordinator: Some("127.0.0.1:7500".into()),
            node_id: Some("w9".into()),
        };
        let config = Config::resolve(None, overrides).unwrap();
        assert_eq!(config.server.listen, "0.0.0.0:9000");
        assert_eq!(config.node.role, NodeRole::Worker);
        assert_eq!(config.node.rpc_listen, "127.0.0.1:7501");
        assert_eq!(config.node.coordinator.as_deref(), Some("127.0.0.1:7500"));
        assert_eq!(config.node.id.as_deref(), Some("w9"));
        assert_eq!(
            Config::resolve(None, Overrides::default()).unwrap(),
            Config::default()
        );

        for (overrides, expected) in [
            (
                Overrides {
                    listen: Some("nope".into()),
                    ..Overrides::default()
                },
                "--listen: \"nope\" is not HOST:PORT",
            ),
            (
                Overrides {
                    rpc_listen: Some("h:port".into()),
                    ..Overrides::default()
                },
                "--rpc-listen: \"port\" is not a port number",
            ),
            (
                Overrides {
                    coordinator: Some(":1".into()),
                    ..Overrides::default()
                },
                "--coordinator: \":1\" has no host",
            ),
            (
                Overrides {
                    role: Some(NodeRole::Worker),
                    ..Overrides::default()
                },
                "a worker needs its coordinator: set `[node] coordinator` or --coordinator",
            ),
        ] {
            let msg = Config::resolve(None, overrides).unwrap_err().to_string();
            assert_eq!(msg, expected);
        }
    }

    #[test]
    fn role_names_round_trip() {
        for name in NodeRole::NAMES {
            assert_eq!(name.parse::<NodeRole>().unwrap().name(), name);
        }
        assert_eq!(
            "leader".parse::<NodeRole>(),
            Err(ValueError::Role("leader".into()))
        );
    }

    #[test]
    fn substitutes_and_reports_missing() {
        // SAFETY: single-threaded test setting a variable only it reads.
        unsafe { std::env::set_var("TRIBUTARY_TEST_SECRET", "s3cr3t") };
        assert_eq!(
            substitute_env("password = \"${TRIBUTARY_TEST_SECRET}\"").unwrap(),
            "password = \"s3cr3t\""
        );
        assert!(
            substitute_env("${TRIBUTARY_NOT_SET_ANYWHERE}")
                .unwrap_err()
                .contains("TRIBUTARY_NOT_SET_ANYWHERE")
        );
        assert!(substitute_env("${OPEN").is_err());
    }

    #[test]
    fn secrets_are_substituted_after_parsing_and_never_quoted_in_errors() {
        // SAFETY: single-threaded test setting a variable only it reads.
        unsafe { std::env::set_var("TRIBUTARY_TEST_QUOTED", "p\"w\\d") };
        let dir = std::env::temp_dir().join(format!("tributary-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, "[auth]\npassword = \"${TRIBUTARY_TEST_QUOTED}\"\n").unwrap();
        let table = read_toml(&good).unwrap();
        assert_eq!(table["auth"]["password"].as_str(), Some("p\"w\\d"));

        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "password = \"${TRIBUTARY_TEST_QUOTED}\"\nport = \n").unwrap();
        let e = read_toml(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.toml") && e.contains("line 2"), "{e}");
        assert!(!e.contains("p\"w"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
