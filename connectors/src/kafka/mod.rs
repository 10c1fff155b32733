//! The `kafka` connector: Kafka topics as tables, after Trino's Kafka connector.
//!
//! Catalog file (`etc/catalog/NAME.toml`):
//!
//! ```toml
//! connector = "kafka"
//! bootstrap_servers = "127.0.0.1:9092"     # or a list: ["b1:9092", "b2:9092"]
//! default_schema = "default"               # schema of undescribed topics and of descriptions without one
//! table_description_dir = "etc/kafka"      # optional: one .json / .toml file per table (see below)
//! messages_per_split = 10000               # max messages in one split (scan partition), default 10000
//! request_timeout_ms = 5000                # metadata / offsets requests, default 5000
//! read_timeout_ms = 30000                  # max wait for the next message of a split, default 30000
//!
//! [properties]                             # passed to librdkafka as is (security.protocol, sasl.*, ...)
//! "client.id" = "tributary"
//! ```
//!
//! Any other key is an error naming it (a misspelt key must not silently fall back to a default).
//!
//! Tables: one per description file ([`description`] has the format); every other topic of the
//! cluster (except internal `__*` topics) is a table of `default_schema` with the internal columns
//! only. Internal columns, after the described ones: `_partition_id` (bigint), `_partition_offset`
//! (bigint), `_timestamp` (timestamp(3), UTC), `_key` (varchar, NULL when absent), `_key_length`
//! (bigint), `_key_corrupt` (boolean), `_message` (varchar, NULL for a tombstone), `_message_length`
//! (bigint), `_message_corrupt` (boolean), `_headers` (varchar: a JSON object mapping each header
//! name to the list of its values as text). `_key` and `_message` hold the bytes as UTF-8 text
//! (invalid sequences replaced). A key or message that cannot be decoded gives NULL columns and sets
//! its `_corrupt` flag; it never fails the query ([`decode`]).
//!
//! Splits: a scan reads each chosen partition from its start offset to the end offset (high
//! watermark) read **once, at planning time**, cut into ranges of at most `messages_per_split`
//! messages; each range is one output partition, so a re-run partition reads the same messages and a
//! self-join sees one snapshot. Filters on `_partition_id` prune partitions, ranges on
//! `_partition_offset` narrow the offsets, and a lower bound on `_timestamp` starts each partition at
//! the offset `offsets_for_times` gives ([`pushdown`]); `EXPLAIN` shows the partitions and offset
//! ranges read. Reading assigns partitions explicitly: no consumer group, nothing committed.
//!
//! Errors name the catalog and the topic: an unreachable broker (SQLSTATE 08001, after
//! `request_timeout_ms`), a topic missing on the broker (42P01), a bad description file (F0000, only
//! for queries of that table; the file is also logged at startup).

pub mod decode;
pub mod description;
pub mod pushdown;
mod scan;
mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::DataFusionError;
use datafusion::physical_plan::ExecutionPlan;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

pub use description::TableDescription;
pub use scan::{KafkaScanExec, KafkaSplit};

use crate::remote_config::{config_error, int_in};
use crate::sqlstate;
use crate::{ConnectorError, ConnectorFactory, ConnectorKind, ScanSpec};
use table::KafkaTable;

/// The internal columns every Kafka table has, in schema order (after the described columns).
pub const INTERNAL_COLUMNS: [&str; 10] = [
    "_partition_id",
    "_partition_offset",
    "_timestamp",
    "_key",
    "_key_length",
    "_key_corrupt",
    "_message",
    "_message_length",
    "_message_corrupt",
    "_headers",
];

/// A topic list older than this is refetched when a lookup misses it.
const TOPIC_LIST_TTL: Duration = Duration::from_secs(2);

/// The keys of a `kafka` catalog file as written (see the module docs), any other key being an
/// error naming it. `bootstrap_servers` and `properties` stay TOML values, checked by
/// [`KafkaConnector::from_config`] with reasons that never echo a value (`properties` may hold
/// `sasl.password`); no `Debug`, for the same reason.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KafkaFile {
    /// `connector`, checked by [`crate::build_connector`].
    #[allow(dead_code)]
    connector: Option<String>,
    /// The catalog's name, allowed and ignored (the file's name decides).
    #[allow(dead_code)]
    name: Option<String>,
    /// A string or a list of strings; required.
    bootstrap_servers: Option<toml::Value>,
    #[serde(default = "default_schema")]
    default_schema: String,
    table_description_dir: Option<String>,
    messages_per_split: Option<i64>,
    request_timeout_ms: Option<i64>,
    read_timeout_ms: Option<i64>,
    /// A table of librdkafka settings.
    properties: Option<toml::Value>,
}

/// `default_schema` when the file has none.
fn default_schema() -> String {
    "default".into()
}

/// Settings librdkafka must have for reads to be what this connector promises; they win over
/// `[properties]`.
const FORCED_PROPERTIES: [(&str, &str); 4] = [
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("enable.partition.eof", "true"),
    ("auto.offset.reset", "earliest"),
];

/// A Kafka cluster mounted as a catalog. See the module docs for the configuration.
pub struct KafkaConnector {
    catalog: Arc<KafkaCatalog>,
}

impl fmt::Debug for KafkaConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConnector")
            .field("catalog", &self.catalog.shared.name)
            .field("bootstrap_servers", &self.catalog.shared.bootstrap)
            .finish()
    }
}

/// What every provider of the catalog shares.
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) bootstrap: String,
    default_schema: String,
    /// librdkafka settings: `[properties]`, then `bootstrap.servers`, then [`FORCED_PROPERTIES`].
    properties: Vec<(String, String)>,
    pub(crate) messages_per_split: i64,
    pub(crate) request_timeout: Duration,
    pub(crate) read_timeout: Duration,
    /// Described tables by (schema, table): the description or why its file is bad.
    descriptions: BTreeMap<(String, String), Result<Arc<TableDescription>, String>>,
    /// The metadata client (created on first use).
    client: OnceLock<Result<Arc<BaseConsumer>, String>>,
    topics: parking_lot::Mutex<Option<(Instant, Arc<BTreeSet<String>>)>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .field("bootstrap", &self.bootstrap)
            .finish_non_exhaustive()
    }
}

impl KafkaConnector {
    /// Builds the connector for catalog `name` from its catalog file (`${ENV}` already substituted).
    ///
    /// Never contacts the brokers before returning: a cluster that is down still loads, and its queries
    /// fail until it is back. Reads the description files; a bad one is logged and makes its table fail
    /// when queried. Errors: [`ConnectorError::Config`] for a missing or invalid key, or a
    /// `table_description_dir` that cannot be listed.
    pub async fn from_config(
        name: &str,
        config: &toml::Table,
    ) -> Result<KafkaConnector, ConnectorError> {
        let file: KafkaFile = crate::catalog_file::parse(config)?;
        let bootstrap = match &file.bootstrap_servers {
            Some(toml::Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(toml::Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        config_error("bootstrap_servers", "must be a string or a list of strings")
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            None => return Err(config_error("bootstrap_servers", "missing")),
            Some(_) => {
                return Err(config_error(
                    "bootstrap_servers",
                    "must be a non-empty string (\"host:port,host:port\") or list of strings",
                ));
            }
        };
        let default_schema = file.default_schema;
        let messages_per_split = int_in(
            "messages_per_split",
            file.messages_per_split,
            10_000,
            1,
            i64::MAX,
        )?;
        let request_timeout = int_in(
            "request_timeout_ms",
            file.request_timeout_ms,
            5_000,
            1,
            3_600_000,
        )?;
        let read_timeout = int_in(
            "read_timeout_ms",
            file.read_timeout_ms,
            30_000,
            1,
            86_400_000,
        )?;
        let mut properties: Vec<(String, String)> = Vec::new();
        match &file.properties {
            None => {}
            Some(toml::Value::Table(t)) => {
                for (key, value) in t {
                    let value = match value {
                        toml::Value::String(s) => s.clone(),
                        toml::Value::Integer(i) => i.to_string(),
                        toml::Value::Boolean(b) => b.to_string(),
                        toml::Value::Float(f) => f.to_string(),
                        _ => {
                            return Err(config_error(
                                &format!("properties.{key}"),
                                "must be a string, number or boolean",
                            ));
                        }
                    };
                    if FORCED_PROPERTIES.iter().any(|(k, _)| k == key) || key == "group.id" {
                        tracing::warn!(
                            "catalog \"{name}\": property `{key}` is ignored (reads use explicit \
                             partition assignment and never commit)"
                        );
                        continue;
                    }
                    properties.push((key.clone(), value));
                }
            }
            Some(_) => return Err(config_error("properties", "must be a table")),
        }
        if !properties.iter().any(|(k, _)| k == "bootstrap.servers") {
            properties.push(("bootstrap.servers".into(), bootstrap.clone()));
        }
        for (k, v) in FORCED_PROPERTIES {
            properties.push((k.into(), v.into()));
        }
        // Checks the properties now, so a typo is a startup error naming it.
        let mut check = ClientConfig::new();
        for (k, v) in &properties {
            check.set(k, v);
        }
        check
            .create_native_config()
            .map_err(|e| config_error("properties", e.to_string()))?;

        let mut descriptions = BTreeMap::new();
        if let Some(dir) = file.table_description_dir {
            let dir = PathBuf::from(dir);
            let entries = std::fs::read_dir(&dir).map_err(|e| {
                config_error(
                    "table_description_dir",
                    format!("cannot list {}: {e}", dir.display()),
                )
            })?;
            let mut files: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("json" | "toml")
                        )
                })
                .collect();
            files.sort();
            for file in files {
                let stem = file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match description::read(&file, &default_schema) {
                    Ok(d) => {
                        let key = (d.schema.clone(), d.table.clone());
                        if let Some(Ok(other)) = descriptions.get(&key) {
                            let other: &Arc<TableDescription> = other;
                            let reason = format!(
                                "table {}.{} is described twice, in {} and {}",
                                key.0,
                                key.1,
                                other.file,
                                file.display()
                            );
                            tracing::warn!("catalog \"{name}\": {reason}");
                            descriptions.insert(key, Err(reason));
                        } else {
                            descriptions.insert(key, Ok(Arc::new(d)));
                        }
                    }
                    Err(reason) => {
                        let reason = format!("table description file {}: {reason}", file.display());
                        tracing::warn!("catalog \"{name}\": {reason}");
                        descriptions.insert((default_schema.clone(), stem), Err(reason));
                    }
                }
            }
        }
        let shared = Arc::new(Shared {
            name: name.to_string(),
            bootstrap,
            default_schema,
            properties,
            messages_per_split,
            request_timeout: Duration::from_millis(request_timeout.unsigned_abs()),
            read_timeout: Duration::from_millis(read_timeout.unsigned_abs()),
            descriptions,
            client: OnceLock::new(),
            topics: parking_lot::Mutex::new(None),
        });
        shared.prefetch_topics();
        Ok(KafkaConnector {
            catalog: Arc::new(KafkaCatalog { shared }),
        })
    }

    /// Fetches the topic list now (listings such as `SHOW TABLES` use the last one fetched).
    pub async fn refresh_topics(&self) -> Result<(), ConnectorError> {
        self.catalog.shared.fetch_topics().await.map(|_| ())
    }
}

/// This connector's kind, as catalog files name it (`connector = "kafka"`).
pub const KIND: ConnectorKind = ConnectorKind::new("kafka");

/// The `kafka` entry of [`crate::FACTORIES`]: encodes [`KafkaScanExec`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Factory;

#[async_trait]
impl ConnectorFactory for Factory {
    fn kind(&self) -> ConnectorKind {
        KIND
    }

    async fn build(
        &self,
        name: &str,
        config: &toml::Table,
    ) -> Result<Arc<dyn crate::Connector>, ConnectorError> {
        Ok(Arc::new(KafkaConnector::from_config(name, config).await?))
    }

    fn encode_scan(&self, plan: &dyn ExecutionPlan) -> Option<ScanSpec> {
        plan.downcast_ref::<KafkaScanExec>()
            .map(KafkaScanExec::to_spec)
    }
}

impl crate::Connector for KafkaConnector {
    fn kind(&self) -> ConnectorKind {
        KIND
    }

    fn catalog(&self) -> Arc<dyn CatalogProvider> {
        Arc::clone(&self.catalog) as Arc<dyn CatalogProvider>
    }

    fn decode_scan(
        &self,
        spec: &ScanSpec,
        schema: SchemaRef,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(KafkaScanExec::from_spec(self, spec, schema)?))
    }
}

impl Shared {
    /// A librdkafka config with the catalog's properties.
    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        config
    }

    /// The shared metadata client.
    pub(crate) fn client(&self) -> Result<Arc<BaseConsumer>, ConnectorError> {
        self.client
            .get_or_init(|| {
                self.client_config()
                    .create::<BaseConsumer>()
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|e| {
                ConnectorError::Source(format!(
                    "catalog \"{}\": cannot create a Kafka client: {e}",
                    self.name
                ))
            })
    }

    /// Maps a librdkafka error of a request about `topic` (if any) to an error naming the catalog.
    pub(crate) fn kafka_error(
        &self,
        e: &KafkaError,
        topic: Option<&str>,
        what: &str,
    ) -> ConnectorError {
        let code = e.rdkafka_error_code();
        let topic = topic
            .map(|t| format!(" topic \"{t}\":"))
            .unwrap_or_default();
        let unreachable = matches!(
            code,
            Some(
                RDKafkaErrorCode::OperationTimedOut
                    | RDKafkaErrorCode::BrokerTransportFailure
                    | RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::RequestTimedOut
                    | RDKafkaErrorCode::Resolve
                    | RDKafkaErrorCode::BrokerNotAvailable
                    | RDKafkaErrorCode::NetworkException
            )
        );
        if unreachable {
            ConnectorError::Remote {
                sqlstate: sqlstate::CONNECTION_FAILURE_ON_CONNECT.into(),
                message: format!(
                    "catalog \"{}\":{topic} cannot reach Kafka at {} ({what} failed after {:?}): {e}",
                    self.name, self.bootstrap, self.request_timeout
                ),
            }
        } else {
            ConnectorError::Remote {
                sqlstate: sqlstate::SYSTEM_ERROR.into(),
                message: format!("catalog \"{}\":{topic} Kafka {what} failed: {e}", self.name),
            }
        }
    }

    /// Starts a background fetch of the topic list (errors are logged).
    fn prefetch_topics(self: &Arc<Self>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let shared = Arc::clone(self);
        handle.spawn(async move {
            if let Err(e) = shared.fetch_topics().await {
                tracing::warn!("{e}");
            }
        });
    }

    fn cached_topics(&self) -> Option<(Instant, Arc<BTreeSet<String>>)> {
        self.topics.lock().clone()
    }

    /// Fetches the names of the cluster's topics (all of them, never one by name: a request for one
    /// topic may create it on brokers that auto-create topics).
    async fn fetch_topics(self: &Arc<Self>) -> Result<Arc<BTreeSet<String>>, ConnectorError> {
        let shared = Arc::clone(self);
        let topics = tokio::task::spawn_blocking(move || -> Result<_, ConnectorError> {
            let client = shared.client()?;
            let metadata = client
                .fetch_metadata(None, shared.request_timeout)
                .map_err(|e| shared.kafka_error(&e, None, "metadata request"))?;
            Ok(metadata
                .topics()
                .iter()
                .filter(|t| t.error().is_none())
                .map(|t| t.name().to_string())
                .collect::<BTreeSet<_>>())
        })
        .await
        .map_err(|e| ConnectorError::Source(format!("catalog \"{}\": {e}", self.name)))??;
        let topics = Arc::new(topics);
        *self.topics.lock() = Some((Instant::now(), Arc::clone(&topics)));
        Ok(topics)
    }

    /// Whether `topic` is described by some table (it then has no undescribed table).
    fn is_described(&self, topic: &str) -> bool {
        self.descriptions
            .values()
            .any(|d| d.as_ref().is_ok_and(|d| d.topic == topic))
    }

    fn schema_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> =
            self.descriptions.keys().map(|(s, _)| s.clone()).collect();
        names.insert(self.default_schema.clone());
        names
    }

    /// The undescribed topics that are tables of the default schema, from `topics`.
    fn undescribed<'a>(&'a self, topics: &'a BTreeSet<String>) -> impl Iterator<Item = &'a String> {
        topics.iter().filter(move |t| {
            !t.starts_with("__")
                && !self.is_described(t)
                && !self
                    .descriptions
                    .contains_key(&(self.default_schema.clone(), (*t).clone()))
        })
    }
}

fn to_df(e: ConnectorError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// The catalog of one Kafka cluster.
#[derive(Debug)]
pub struct KafkaCatalog {
    shared: Arc<Shared>,
}

impl CatalogProvider for KafkaCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.shared.schema_names().into_iter().collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.shared.schema_names().contains(name).then(|| {
            Arc::new(KafkaSchema {
                shared: Arc::clone(&self.shared),
                name: name.to_string(),
            }) as Arc<dyn SchemaProvider>
        })
    }
}

/// One schema: its described tables, plus the undescribed topics in the default schema.
#[derive(Debug)]
struct KafkaSchema {
    shared: Arc<Shared>,
    name: String,
}

#[async_trait]
impl SchemaProvider for KafkaSchema {
    fn table_names(&self) -> Vec<String> {
        // Tables with a bad description file are not listed (listings such as
        // information_schema.tables look every listed table up); naming one gives its error.
        let mut names: BTreeSet<String> = self
            .shared
            .descriptions
            .iter()
            .filter(|((s, _), d)| *s == self.name && d.is_ok())
            .map(|((_, t), _)| t.clone())
            .collect();
        if self.name == self.shared.default_schema {
            match self.shared.cached_topics() {
                Some((_, topics)) => names.extend(self.shared.undescribed(&topics).cloned()),
                None => self.shared.prefetch_topics(),
            }
        }
        names.into_iter().collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        if let Some(d) = self
            .shared
            .descriptions
            .get(&(self.name.clone(), name.to_string()))
        {
            return match d {
                Ok(d) => Ok(Some(Arc::new(KafkaTable::new(
                    Arc::clone(&self.shared),
                    &self.name,
                    Arc::clone(d),
                )) as Arc<dyn TableProvider>)),
                Err(reason) => Err(to_df(ConnectorError::Remote {
                    sqlstate: sqlstate::CONFIG_FILE_ERROR.into(),
                    message: format!(
                        "catalog \"{}\": table {}.{name}: {reason}",
                        self.shared.name, self.name
                    ),
                })),
            };
        }
        if self.name != self.shared.default_schema {
            return Ok(None);
        }
        let topics = match self.shared.cached_topics() {
            Some((_, topics)) if topics.contains(name) => topics,
            Some((at, topics)) if at.elapsed() < TOPIC_LIST_TTL => topics,
            _ => self.shared.fetch_topics().await.map_err(|e| match e {
                ConnectorError::Remote { sqlstate, message } => to_df(ConnectorError::Remote {
                    sqlstate,
                    message: message.replacen(
                        &format!("catalog \"{}\":", self.shared.name),
                        &format!(
                            "catalog \"{}\": table {}.{name}:",
                            self.shared.name, self.name
                        ),
                        1,
                    ),
                }),
                other => to_df(other),
            })?,
        };
        if !self.shared.undescribed(&topics).any(|t| t == name) {
            return Ok(None);
        }
        let description = TableDescription {
            table: name.to_string(),
            schema: self.name.clone(),
            topic: name.to_string(),
            key: None,
            message: None,
            file: String::new(),
        };
        Ok(Some(Arc::new(KafkaTable::new(
            Arc::clone(&self.shared),
            &self.name,
            Arc::new(description),
        ))))
    }

    fn table_exist(&self, name: &str) -> bool {
        if self
            .shared
            .descriptions
            .contains_key(&(self.name.clone(), name.to_string()))
        {
            return true;
        }
        self.name == self.shared.default_schema
            && self
                .shared
                .cached_topics()
                .is_some_and(|(_, topics)| self.shared.undescribed(&topics).any(|t| t == name))
    }
}

#[cfg(test)]
mod catalog_file_tests {
    use super::*;

    async fn error(text: &str) -> (String, String) {
        let config: toml::Table = toml::from_str(text).expect("toml");
        match KafkaConnector::from_config("k", &config).await {
            Err(ConnectorError::Config { key, reason }) => (key, reason),
            Err(other) => panic!("expected a config error for {text:?}, got {other:?}"),
            Ok(_) => panic!("expected a config error for {text:?}"),
        }
    }

    const BASE: &str = "connector = \"kafka\"\nbootstrap_servers = \"127.0.0.1:9\"\n";

    #[tokio::test]
    async fn an_unknown_key_is_an_error_naming_it() {
        let (key, reason) = error(&format!("{BASE}messages_per_spilt = 5")).await;
        assert_eq!(key, "messages_per_spilt");
        assert!(reason.contains("unknown key"), "{reason}");
    }

    #[tokio::test]
    async fn a_bad_value_names_the_key() {
        for (extra, key) in [
            ("messages_per_split = 0", "messages_per_split"),
            ("request_timeout_ms = \"5s\"", "request_timeout_ms"),
            ("default_schema = 1", "default_schema"),
            ("properties = 3", "properties"),
            ("properties = { \"a.b\" = [1] }", "properties.a.b"),
        ] {
            assert_eq!(error(&format!("{BASE}{extra}")).await.0, key, "{extra}");
        }
        assert_eq!(error("connector = \"kafka\"").await.0, "bootstrap_servers");
        assert_eq!(
            error("bootstrap_servers = [1]").await.0,
            "bootstrap_servers"
        );
    }

    #[tokio::test]
    async fn a_password_property_is_never_shown() {
        for extra in [
            "properties = \"sasl.password=Kp-77-secret\"",
            "properties = { \"sasl.password\" = \"Kp-77-secret\" }\nbogus = 1",
            "properties = { \"sasl.password\" = \"Kp-77-secret\" }\nread_timeout_ms = 0",
        ] {
            let (_, reason) = error(&format!("{BASE}{extra}")).await;
            assert!(!reason.contains("Kp-77-secret"), "{reason}");
        }
    }
}
