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

use std::fmt::Debug;
use std::sync::Arc;

use datafusion::catalog::CatalogProvider;
use object_store::ObjectStore;

pub mod error;
pub mod kafka;
pub mod lake;
pub mod mysql;
pub mod postgres;
mod remote_catalog;
pub mod sql_source;
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
pub trait Connector: Send + Sync + Debug {
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
