//! Tributary connectors: one module per kind of source, each mounting a source as a DataFusion catalog.
//!
//! This crate owns everything that touches a source: metadata (schemas, tables, columns), splits, and the
//! scans that read them. It must not know about sessions, stages, workers or the wire protocol; those live in
//! `planner`, `exec` and `server`, which depend on this crate and never the other way round.
//!
//! A connector is built from one `etc/catalog/NAME.toml` file by [`build_connector`], through the
//! [`ConnectorFactory`] of its kind in [`FACTORIES`]; each kind's module owns its name (`KIND`), its
//! catalog-file keys, its scans' [`ScanSpec`] codec and its tables' SQL side. Its tables are
//! DataFusion [`TableProvider`](datafusion::catalog::TableProvider)s whose scans expose **one output
//! partition per split**: a split is a deterministic slice of the table's data fixed at planning time
//! (a tpch generator part, a lake file or row-group range), so re-running partition `i` of a scan yields
//! the same rows. The scheduler turns those partitions into tasks.

use std::fmt::{self, Debug};
use std::sync::Arc;

use async_trait::async_trait;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProvider, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::physical_plan::ExecutionPlan;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

mod catalog_file;
pub mod error;
pub mod iceberg;
pub mod kafka;
pub mod lake;
pub mod metrics;
pub mod mysql;
mod pool;
pub mod postgres;
mod remote_catalog;
mod remote_config;
mod scan_leaf;
mod sql_filter;
mod sql_scan;
pub mod sql_source;
mod sql_table;
mod sql_write;
pub mod sqlstate;
pub mod system;
pub mod tpch;

pub use error::ConnectorError;
pub use remote_catalog::PG_TYPE_KEY;

/// A connector kind's name, as catalog files (`connector = "postgres"`) and [`ScanSpec`]s write it.
///
/// Each connector module owns its kind as a constant (`postgres::KIND`). Serialized as the bare name;
/// deserializing accepts only the kinds of [`FACTORIES`] (the kinds whose scans have specs), so a
/// spec of an unknown kind does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectorKind(&'static str);

impl ConnectorKind {
    /// The kind named `name` (a module's `KIND` constant).
    pub const fn new(name: &'static str) -> Self {
        Self(name)
    }

    /// The name as written in catalog files (`postgres`).
    pub const fn name(self) -> &'static str {
        self.0
    }

    /// The kind of [`FACTORIES`] named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        factory(name).map(|f| f.kind())
    }
}

impl fmt::Display for ConnectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for ConnectorKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for ConnectorKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown connector kind \"{name}\"")))
    }
}

/// A configured source mounted as one catalog.
///
/// Implementors guarantee:
/// - [`Connector::catalog`] is cheap and returns the same provider every time (table metadata may be
///   refreshed inside it);
/// - scans of its tables expose one output partition per split, and executing the same partition twice
///   yields the same rows (task retry relies on it);
/// - errors name the catalog and never contain a password.
pub trait Connector: Send + Sync + Debug {
    /// The connector kind, as written in the catalog file (`connector = "tpch"`).
    fn kind(&self) -> ConnectorKind;

    /// The DataFusion catalog holding this source's schemas and tables.
    fn catalog(&self) -> Arc<dyn CatalogProvider>;

    /// The catalog as one that accepts DDL and `CREATE TABLE AS` (`lake`, `iceberg`), `None` for a
    /// catalog that does not (the default; SQL sources accept only `INSERT`).
    fn writable(&self) -> Option<Arc<dyn lake::WritableCatalog>> {
        None
    }

    /// Object stores the scans of this connector read through, to register in DataFusion's
    /// `RuntimeEnv` under the given URL (scheme + host) before any query runs. Empty by default.
    fn object_stores(&self) -> Vec<(url::Url, Arc<dyn ObjectStore>)> {
        Vec::new()
    }

    /// Rebuilds the scan `spec` describes (a spec of this connector's kind, made by its factory's
    /// [`ConnectorFactory::encode_scan`], possibly in another process), with output schema `schema`,
    /// reading through this connector (its pool or client).
    ///
    /// Errors (`DataFusionError::Plan`): a payload that does not parse or does not fit `schema`, a
    /// table this catalog does not describe the same way (Kafka), or a kind whose scans are never
    /// shipped (the default).
    fn decode_scan(&self, spec: &ScanSpec, schema: SchemaRef) -> Result<Arc<dyn ExecutionPlan>> {
        let _ = schema;
        Err(DataFusionError::Plan(format!(
            "cannot rebuild a {} scan: {} catalogs have no such scans",
            spec.kind,
            self.kind()
        )))
    }

    /// Rebuilds the write node `spec` describes (made by [`ConnectorFactory::encode_write`],
    /// possibly in another process) over `input`, writing through this connector.
    ///
    /// Errors (`DataFusionError::Plan`): a payload that does not parse or names another catalog, or a
    /// kind that writes nothing on workers (the default).
    fn decode_write(
        &self,
        spec: &ScanSpec,
        input: Arc<dyn ExecutionPlan>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let _ = input;
        Err(DataFusionError::Plan(format!(
            "cannot rebuild a {} write: {} catalogs write nothing on workers",
            spec.kind,
            self.kind()
        )))
    }
}

/// One connector kind: its name, how a catalog file of that kind becomes a connector, and what of
/// the kind's plan nodes and tables other crates reach without knowing their types.
///
/// Every kind a catalog file may name is one entry of [`FACTORIES`]; adding a connector is its
/// module plus that one entry.
#[async_trait]
pub trait ConnectorFactory: Send + Sync {
    /// The kind this factory builds (`connector = "..."` in the catalog file).
    fn kind(&self) -> ConnectorKind;

    /// Builds the connector for catalog `name` from its parsed catalog file (the whole TOML table,
    /// `${ENV}` already substituted, `connector` key included).
    ///
    /// Errors: [`ConnectorError::Config`] naming the key and reason for a missing, unknown or bad
    /// key; [`ConnectorError::Source`] when the source cannot be opened at all.
    async fn build(
        &self,
        name: &str,
        config: &toml::Table,
    ) -> Result<Arc<dyn Connector>, ConnectorError>;

    /// The [`ScanSpec`] of `plan` if it is a scan of this kind that can run in another process,
    /// `None` for any other node (the default: the kind's scans are never shipped).
    fn encode_scan(&self, plan: &dyn ExecutionPlan) -> Option<ScanSpec> {
        let _ = plan;
        None
    }

    /// The [`ScanSpec`] (here: what to write) of `plan` if it is a write node of this kind that runs
    /// on workers over one input (rebuilt by [`Connector::decode_write`]), `None` for any other node
    /// (the default).
    fn encode_write(&self, plan: &dyn ExecutionPlan) -> Option<ScanSpec> {
        let _ = plan;
        None
    }

    /// The [`SqlTable`](sql_source::SqlTable) side of `provider` if it is a table of this kind
    /// whose subplans can be pushed as SQL, `None` otherwise (the default).
    fn sql_table<'a>(
        &self,
        provider: &'a dyn TableProvider,
    ) -> Option<&'a dyn sql_source::SqlTable> {
        let _ = provider;
        None
    }
}

/// Every connector kind a catalog file may name (`system` is built in, never from a file).
pub static FACTORIES: &[&dyn ConnectorFactory] = &[
    &tpch::Factory,
    &lake::Factory,
    &postgres::Factory,
    &mysql::Factory,
    &kafka::Factory,
    &iceberg::Factory,
];

/// The factory of kind `name`, if [`FACTORIES`] has one.
pub fn factory(name: &str) -> Option<&'static dyn ConnectorFactory> {
    FACTORIES.iter().copied().find(|f| f.kind().name() == name)
}

/// The kinds of [`FACTORIES`] as a list for error messages: `"tpch", "lake", ...`.
fn known_kinds() -> String {
    FACTORIES
        .iter()
        .map(|f| format!("\"{}\"", f.kind()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds the connector for catalog `name` from its parsed catalog file (`etc/catalog/NAME.toml`).
///
/// `config` is the whole TOML table of the file, with `${ENV}` already substituted; the `connector` key
/// selects the kind among [`FACTORIES`]. Errors: [`ConnectorError::Config`] naming the key and reason for
/// a missing or bad key or an unknown kind; [`ConnectorError::Source`] when the source cannot be opened at
/// all (a lake location that cannot be listed).
pub async fn build_connector(
    name: &str,
    config: &toml::Table,
) -> Result<Arc<dyn Connector>, ConnectorError> {
    let kind = config
        .get("connector")
        .and_then(|v| v.as_str())
        .ok_or_else(|| ConnectorError::Config {
            key: "connector".into(),
            reason: format!("missing; expected one of {}", known_kinds()),
        })?;
    let Some(factory) = factory(kind) else {
        return Err(ConnectorError::Config {
            key: "connector".into(),
            reason: format!(
                "unknown connector kind \"{kind}\"; expected one of {}",
                known_kinds()
            ),
        });
    };
    factory.build(name, config).await
}

/// One of this crate's scans as plain data, so that a plan fragment holding it can be shipped to
/// another process and rebuilt there: [`encode_scan`] on the coordinator, [`decode_scan`] on a worker.
///
/// Scans that hold live resources (PostgreSQL / MySQL connection pools, Kafka clients) are rebuilt
/// from the connector of the same catalog on the receiving side, which mounts the same catalog files
/// (as in Trino, every node has the catalogs). A spec holds no secret, only what the scan was planned
/// with: splits, remote SQL, projection, limit. The scan's output schema is not part of the spec (the
/// caller serializes it as Arrow, with the rest of the plan) and is given back to [`decode_scan`].
/// Specs are only read by the same binary that wrote them: no compatibility across versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanSpec {
    /// The connector kind of the scan (`tpch::KIND`, `postgres::KIND`, ...).
    pub kind: ConnectorKind,
    /// The catalog the scan reads, whose connector rebuilds it; `None` for a scan that any connector
    /// of its kind rebuilds (tpch data is generated from the spec alone).
    pub catalog: Option<String>,
    /// Everything else that defines the scan, in the kind's own JSON shape.
    pub payload: serde_json::Value,
}

/// The [`ScanSpec`] of `plan` if it is a scan of this crate that can run in another process (one
/// a factory of [`FACTORIES`] encodes: tpch, postgres, mysql, kafka), `None` for any other node. Lake
/// scans are DataFusion's own `DataSourceExec` and `system` scans in-memory snapshots: neither needs
/// a spec.
pub fn encode_scan(plan: &dyn ExecutionPlan) -> Option<ScanSpec> {
    FACTORIES.iter().find_map(|f| f.encode_scan(plan))
}

/// The spec of `plan` if it is a write node of this crate that runs on workers (a lake table writer,
/// whose one child is encoded separately), `None` for any other node.
pub fn encode_write(plan: &dyn ExecutionPlan) -> Option<ScanSpec> {
    FACTORIES.iter().find_map(|f| f.encode_write(plan))
}

/// Whether `provider` is a table that accepts `INSERT`: a lake table Tributary manages, one a
/// `CREATE TABLE AS` is creating, an Iceberg table, or a table of a SQL source (`postgres`, `mysql`).
pub fn is_write_target(provider: &dyn TableProvider) -> bool {
    provider.downcast_ref::<lake::ManagedTable>().is_some()
        || provider.downcast_ref::<lake::WriteTarget>().is_some()
        || iceberg::is_write_target(provider)
        || sql_source::as_sql_table(provider).is_some()
}

/// Rebuilds the write node `spec` describes over `input`, writing through `connector` (the connector
/// of catalog `spec.catalog`, see [`Connector::decode_write`]).
///
/// Errors (`DataFusionError::Plan`): no connector (the catalog is not mounted here), a connector of
/// another kind, or the connector's own errors.
pub fn decode_write(
    spec: &ScanSpec,
    connector: Option<&dyn Connector>,
    input: Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>> {
    connector_of(spec, connector, "write")?.decode_write(spec, input)
}

/// Rebuilds the scan `spec` describes, with output schema `schema` (the encoded scan's), reading
/// through `connector` ([`Connector::decode_scan`]): the connector of catalog `spec.catalog`, or any
/// connector of kind `spec.kind` when that is `None`.
///
/// Errors (`DataFusionError::Plan`): no connector, a connector of another kind, or the connector's
/// own errors (a payload that does not parse or does not fit `schema`, or (Kafka) a table the catalog
/// no longer describes the same way).
pub fn decode_scan(
    spec: &ScanSpec,
    connector: Option<&dyn Connector>,
    schema: SchemaRef,
) -> Result<Arc<dyn ExecutionPlan>> {
    connector_of(spec, connector, "scan")?.decode_scan(spec, schema)
}

/// `connector` when it is there and of `spec`'s kind; else the `DataFusionError::Plan` saying why
/// the `what` (`scan`, `write`) cannot be rebuilt on this node.
fn connector_of<'a>(
    spec: &ScanSpec,
    connector: Option<&'a dyn Connector>,
    what: &str,
) -> Result<&'a dyn Connector> {
    let catalog = spec.catalog.as_deref().unwrap_or_default();
    let Some(connector) = connector else {
        return Err(DataFusionError::Plan(format!(
            "cannot rebuild a {} {what}: catalog \"{catalog}\" is not mounted here",
            spec.kind
        )));
    };
    if connector.kind() != spec.kind {
        return Err(DataFusionError::Plan(format!(
            "cannot rebuild a {} {what} of catalog \"{catalog}\": that catalog is a {} catalog here",
            spec.kind,
            connector.kind()
        )));
    }
    Ok(connector)
}

/// Parses a spec's payload into the scan's own shape. Errors name the kind.
pub(crate) fn spec_payload<T: serde::de::DeserializeOwned>(spec: &ScanSpec) -> Result<T> {
    serde_json::from_value(spec.payload.clone())
        .map_err(|e| DataFusionError::Plan(format!("bad {} scan payload: {e}", spec.kind)))
}

/// Checks that a rebuilt scan's column types are those of the encoded schema.
pub(crate) fn check_scan_schema(
    kind: ConnectorKind,
    schema: &SchemaRef,
    types: impl ExactSizeIterator<Item = datafusion::arrow::datatypes::DataType>,
) -> Result<()> {
    let fields = schema.fields();
    let ok = fields.len() == types.len()
        && fields
            .iter()
            .zip(types)
            .all(|(f, t)| f.data_type().equals_datatype(&t));
    if ok {
        Ok(())
    } else {
        Err(DataFusionError::Plan(format!(
            "bad {kind} scan payload: its column types do not match the scan schema {schema:?}"
        )))
    }
}
