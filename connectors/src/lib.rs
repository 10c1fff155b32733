//! Tributary connectors: one module per kind of source, each mounting a source as a DataFusion catalog.
//!
//! This crate owns everything that touches a source: metadata (schemas, tables, columns), splits, and the
//! scans that read them. It must not know about sessions, stages, workers or the wire protocol; those live in
//! `planner`, `exec` and `server`, which depend on this crate and never the other way round.
//!
//! A connector is built from one `etc/catalog/NAME.toml` file by [`build_connector`]. Its tables are
//! DataFusion [`TableProvider`](datafusion::catalog::TableProvider)s whose scans expose **one output
//! partition per split**: a split is a deterministic slice of the table's data fixed at planning time
//! (a tpch generator part, a lake file or row-group range), so re-running partition `i` of a scan yields
//! the same rows. The scheduler turns those partitions into tasks.

#![warn(missing_docs)]

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::CatalogProvider;
use datafusion::common::{DataFusionError, Result};
use datafusion::physical_plan::ExecutionPlan;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

pub mod error;
pub mod kafka;
pub mod lake;
pub mod mysql;
pub mod postgres;
mod remote_catalog;
mod remote_config;
mod scan_leaf;
mod sql_filter;
mod sql_scan;
pub mod sql_source;
mod sql_table;
pub mod system;
pub mod tpch;

pub use error::ConnectorError;

/// A configured source mounted as one catalog.
///
/// Implementors guarantee:
/// - [`Connector::catalog`] is cheap and returns the same provider every time (table metadata may be
///   refreshed inside it);
/// - scans of its tables expose one output partition per split, and executing the same partition twice
///   yields the same rows (task retry relies on it);
/// - errors name the catalog and never contain a password.
///
/// `Any` lets [`decode_scan`] reach the concrete connector (its pool or client) to rebuild a scan.
pub trait Connector: Any + Send + Sync + Debug {
    /// The connector kind as written in the catalog file (`connector = "tpch"`).
    fn kind(&self) -> &'static str;

    /// The DataFusion catalog holding this source's schemas and tables.
    fn catalog(&self) -> Arc<dyn CatalogProvider>;

    /// Object stores the scans of this connector read through, to register in DataFusion's
    /// `RuntimeEnv` under the given URL (scheme + host) before any query runs. Empty by default.
    fn object_stores(&self) -> Vec<(url::Url, Arc<dyn ObjectStore>)> {
        Vec::new()
    }
}

/// Builds the connector for catalog `name` from its parsed catalog file (`etc/catalog/NAME.toml`).
///
/// `config` is the whole TOML table of the file, with `${ENV}` already substituted; the `connector` key
/// selects the kind. Errors: [`ConnectorError::Config`] naming the key and reason for a missing or bad key
/// or an unknown kind; [`ConnectorError::Source`] when the source cannot be opened at all (a lake location
/// that cannot be listed).
pub async fn build_connector(
    name: &str,
    config: &toml::Table,
) -> Result<Arc<dyn Connector>, ConnectorError> {
    let kind = config
        .get("connector")
        .and_then(|v| v.as_str())
        .ok_or_else(|| ConnectorError::Config {
            key: "connector".into(),
            reason: "missing; expected one of \"tpch\", \"lake\", \"postgres\", \"mysql\"".into(),
        })?;
    match kind {
        "tpch" => Ok(Arc::new(tpch::TpchConnector::new())),
        "lake" => Ok(Arc::new(
            lake::LakeConnector::from_config(name, config).await?,
        )),
        "postgres" => Ok(Arc::new(
            postgres::PostgresConnector::from_config(name, config).await?,
        )),
        "mysql" => Ok(Arc::new(
            mysql::MySqlConnector::from_config(name, config).await?,
        )),
        "kafka" => Ok(Arc::new(
            kafka::KafkaConnector::from_config(name, config).await?,
        )),
        other => Err(ConnectorError::Config {
            key: "connector".into(),
            reason: format!(
                "unknown connector kind \"{other}\"; expected one of \"tpch\", \"lake\", \"postgres\", \"mysql\""
            ),
        }),
    }
}

/// One of this crate's scans as plain data, so that a plan fragment holding it can be shipped to
/// another process and rebuilt there: [`encode_scan`] on the coordinator, [`decode_scan`] on a worker.
///
/// Scans that hold live resources (PostgreSQL / MySQL connection pools, Kafka clients) are rebuilt
/// from the connector of the same catalog on the receiving side, which mounts the same catalog files
/// (as in Trino, every node has the catalogs). A spec holds no secret, only what the scan was planned
/// with: splits, remote SQL, projection, limit. The scan's output schema is not part of the spec (the
/// caller serializes it as Arrow, with the rest of the plan) and is given back to [`decode_scan`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanSpec {
    /// The connector kind of the scan: `tpch`, `postgres`, `mysql` or `kafka`.
    pub kind: String,
    /// The catalog the scan reads, whose connector rebuilds it; `None` for a scan that needs no
    /// connector (tpch data is generated from the spec alone).
    pub catalog: Option<String>,
    /// Everything else that defines the scan, in the kind's own JSON shape.
    pub payload: serde_json::Value,
}

/// The [`ScanSpec`] of `plan` if it is a scan of this crate that can run in another process
/// (tpch, postgres, mysql, kafka), `None` for any other node. Lake scans are DataFusion's own
/// `DataSourceExec` and `system` scans in-memory snapshots: neither needs a spec.
pub fn encode_scan(plan: &dyn ExecutionPlan) -> Option<ScanSpec> {
    if let Some(scan) = plan.downcast_ref::<tpch::TpchScanExec>() {
        return Some(scan.to_spec());
    }
    if let Some(scan) = plan.downcast_ref::<postgres::PostgresScanExec>() {
        return Some(scan.to_spec());
    }
    if let Some(scan) = plan.downcast_ref::<mysql::MySqlScanExec>() {
        return Some(scan.to_spec());
    }
    if let Some(scan) = plan.downcast_ref::<kafka::KafkaScanExec>() {
        return Some(scan.to_spec());
    }
    None
}

/// Rebuilds the scan `spec` describes, with output schema `schema` (the encoded scan's), reading
/// through `connector`: the connector of catalog `spec.catalog` (ignored when that is `None`).
///
/// Errors (`DataFusionError::Plan`): no connector for a spec that needs one, a connector of another
/// kind, an unknown kind, a payload that does not parse or does not fit `schema`, or (Kafka) a table
/// the catalog no longer describes the same way.
pub fn decode_scan(
    spec: &ScanSpec,
    connector: Option<&dyn Connector>,
    schema: SchemaRef,
) -> Result<Arc<dyn ExecutionPlan>> {
    if spec.kind == "tpch" {
        return Ok(Arc::new(tpch::TpchScanExec::from_spec(spec, &schema)?));
    }
    let catalog = spec.catalog.as_deref().unwrap_or_default();
    let Some(connector) = connector else {
        return Err(DataFusionError::Plan(format!(
            "cannot rebuild a {} scan: catalog \"{catalog}\" is not mounted here",
            spec.kind
        )));
    };
    let any: &dyn Any = connector;
    let wrong_kind = || {
        DataFusionError::Plan(format!(
            "cannot rebuild a {} scan of catalog \"{catalog}\": that catalog is a {} catalog here",
            spec.kind,
            connector.kind()
        ))
    };
    let plan: Arc<dyn ExecutionPlan> = match spec.kind.as_str() {
        "postgres" => {
            let c = any.downcast_ref::<postgres::PostgresConnector>();
            Arc::new(postgres::PostgresScanExec::from_spec(
                c.ok_or_else(wrong_kind)?,
                spec,
                schema,
            )?)
        }
        "mysql" => {
            let c = any.downcast_ref::<mysql::MySqlConnector>();
            Arc::new(mysql::MySqlScanExec::from_spec(
                c.ok_or_else(wrong_kind)?,
                spec,
                schema,
            )?)
        }
        "kafka" => {
            let c = any.downcast_ref::<kafka::KafkaConnector>();
            Arc::new(kafka::KafkaScanExec::from_spec(
                c.ok_or_else(wrong_kind)?,
                spec,
                schema,
            )?)
        }
        other => {
            return Err(DataFusionError::Plan(format!(
                "cannot rebuild a scan of unknown kind \"{other}\""
            )));
        }
    };
    Ok(plan)
}

/// Parses a spec's payload into the scan's own shape. Errors name the kind.
pub(crate) fn spec_payload<T: serde::de::DeserializeOwned>(spec: &ScanSpec) -> Result<T> {
    serde_json::from_value(spec.payload.clone())
        .map_err(|e| DataFusionError::Plan(format!("bad {} scan payload: {e}", spec.kind)))
}

/// Checks that a rebuilt scan's column types are those of the encoded schema.
pub(crate) fn check_scan_schema(
    kind: &str,
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
