//! The catalog and schema providers shared by connectors whose metadata lives in a remote database
//! (`postgres`, `mysql`): a lazily fetched, cached [`Snapshot`] of schemas and tables, so a catalog whose
//! source is down still loads and its queries fail clearly until the source is back.
//!
//! Also the Arrow metadata their tables' schemas carry for the front end and `pg_catalog`:
//! - field metadata [`COMMENT_KEY`] (`comment`): the column's comment at the source; schema metadata
//!   `comment`: the table's comment (absent when there is none);
//! - field metadata [`PG_TYPE_KEY`] (`tributary.pg_type`): for string columns that hold another
//!   PostgreSQL type's text, that type's name (`uuid`, `json`, `jsonb`, `numeric`, `varchar(20)`,
//!   `bpchar(5)`, `name`), so the front end reports (and encodes) the column as that type.
//!
//! Primary keys are reported through [`TableProvider::constraints`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::common::{Constraint, Constraints};
use datafusion::datasource::TableProvider;
use datafusion::error::DataFusionError;

use crate::ConnectorError;

/// Field / schema metadata key of a column's / table's comment at the source.
pub(crate) const COMMENT_KEY: &str = "comment";
/// Field metadata key of the PostgreSQL type a string column is reported as at the front end (the
/// server's `pgwire::encoding::PG_TYPE_KEY`, same value).
pub(crate) const PG_TYPE_KEY: &str = "tributary.pg_type";

/// How a connector reads one column: its name and Arrow type.
pub(crate) trait ReadColumn {
    fn name(&self) -> &str;
    fn arrow_type(&self) -> DataType;
}

/// What a metadata query says about one column: how it is read, and what clients see of it.
#[derive(Debug)]
pub(crate) struct SourceColumn<C> {
    pub(crate) column: C,
    pub(crate) nullable: bool,
    /// The PostgreSQL type clients see when not the one of its Arrow type ([`PG_TYPE_KEY`]).
    pub(crate) pg_type: Option<String>,
    pub(crate) comment: Option<String>,
}

/// A table's Arrow schema (column comments and front-end types as field metadata, the table comment
/// as schema metadata) and its primary-key constraint (`key`: column names in key order; none when
/// empty or naming an unknown column).
pub(crate) fn table_schema<C: ReadColumn>(
    columns: &[SourceColumn<C>],
    comment: Option<String>,
    key: &[String],
) -> (Schema, Option<Constraints>) {
    let fields: Vec<Field> = columns
        .iter()
        .map(|c| {
            let mut metadata = HashMap::new();
            if let Some(ty) = &c.pg_type {
                metadata.insert(PG_TYPE_KEY.to_string(), ty.clone());
            }
            if let Some(comment) = c.comment.as_ref().filter(|c| !c.is_empty()) {
                metadata.insert(COMMENT_KEY.to_string(), comment.clone());
            }
            Field::new(c.column.name(), c.column.arrow_type(), c.nullable).with_metadata(metadata)
        })
        .collect();
    let mut metadata = HashMap::new();
    if let Some(comment) = comment.filter(|c| !c.is_empty()) {
        metadata.insert(COMMENT_KEY.to_string(), comment);
    }
    let indices = key
        .iter()
        .map(|k| columns.iter().position(|c| c.column.name() == k))
        .collect::<Option<Vec<usize>>>()
        .filter(|indices| !indices.is_empty());
    let constraints =
        indices.map(|indices| Constraints::new_unverified(vec![Constraint::PrimaryKey(indices)]));
    (Schema::new_with_metadata(fields, metadata), constraints)
}

/// The columns of a catalog reported as read as text: each is logged once per process, however
/// often the metadata is reloaded.
#[derive(Debug, Default)]
pub(crate) struct TextColumns(parking_lot::Mutex<HashSet<String>>);

impl TextColumns {
    /// Logs that `column` (`schema.table.column`) of source type `declared` is read as text, the
    /// first time only.
    pub(crate) fn report(&self, catalog: &str, column: String, declared: &str) {
        if self.0.lock().insert(column.clone()) {
            tracing::info!(
                "catalog \"{catalog}\": column {column} of type {declared} is read as text"
            );
        }
    }
}

/// A snapshot of a source's schemas and, per schema, its tables' metadata `T`.
#[derive(Debug)]
pub(crate) struct Snapshot<T> {
    pub(crate) schemas: BTreeMap<String, BTreeMap<String, Arc<T>>>,
}

impl<T> Default for Snapshot<T> {
    fn default() -> Self {
        Self {
            schemas: BTreeMap::new(),
        }
    }
}

/// What a connector provides so [`RemoteCatalog`] can serve its metadata.
#[async_trait]
pub(crate) trait MetadataSource: Debug + Send + Sync + 'static {
    /// Metadata of one table.
    type Table: Debug + Send + Sync + 'static;
    /// Whether the catalog shows `schema` (include / exclude lists).
    fn schema_included(&self, schema: &str) -> bool;
    /// The cached snapshot, if metadata was loaded.
    fn cached(&self) -> Option<Arc<Snapshot<Self::Table>>>;
    /// Starts a background load when nothing is cached.
    fn prefetch(self: &Arc<Self>);
    /// The snapshot, loading it when none is cached; with `force`, reloading it if it is not recent.
    async fn load(&self, force: bool) -> Result<Arc<Snapshot<Self::Table>>, ConnectorError>;
    /// The table provider for `table`.
    fn table_provider(self: &Arc<Self>, table: Arc<Self::Table>) -> Arc<dyn TableProvider>;
}

/// The catalog of one remote database.
#[derive(Debug)]
pub(crate) struct RemoteCatalog<S> {
    shared: Arc<S>,
}

impl<S> RemoteCatalog<S> {
    pub(crate) fn new(shared: Arc<S>) -> Self {
        Self { shared }
    }
}

impl<S: MetadataSource> CatalogProvider for RemoteCatalog<S> {
    /// The cached schema names; empty (and a fetch started) until metadata was first loaded.
    fn schema_names(&self) -> Vec<String> {
        match self.shared.cached() {
            Some(meta) => meta.schemas.keys().cloned().collect(),
            None => {
                self.shared.prefetch();
                Vec::new()
            }
        }
    }

    /// Any included schema name before metadata is loaded (tables are checked when looked up), else
    /// the schemas of the snapshot.
    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if !self.shared.schema_included(name) {
            return None;
        }
        Some(Arc::new(RemoteSchema {
            shared: Arc::clone(&self.shared),
            name: name.to_string(),
        }))
    }
}

/// One schema of the source.
#[derive(Debug)]
struct RemoteSchema<S> {
    shared: Arc<S>,
    name: String,
}

fn to_df(e: ConnectorError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[async_trait]
impl<S: MetadataSource> SchemaProvider for RemoteSchema<S> {
    fn table_names(&self) -> Vec<String> {
        match self.shared.cached() {
            Some(meta) => meta
                .schemas
                .get(&self.name)
                .map(|t| t.keys().cloned().collect())
                .unwrap_or_default(),
            None => {
                self.shared.prefetch();
                Vec::new()
            }
        }
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let lookup = |meta: &Snapshot<S::Table>| {
            meta.schemas
                .get(&self.name)
                .and_then(|t| t.get(name))
                .cloned()
        };
        let meta = self.shared.load(false).await.map_err(to_df)?;
        let found = match lookup(&meta) {
            Some(t) => Some(t),
            // Unknown table: maybe created since the snapshot.
            None => lookup(&*self.shared.load(true).await.map_err(to_df)?),
        };
        Ok(found.map(|t| self.shared.table_provider(t)))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.shared.cached().is_some_and(|meta| {
            meta.schemas
                .get(&self.name)
                .is_some_and(|t| t.contains_key(name))
        })
    }
}

/// How a connection to the source uses TLS (`ssl_mode` in the catalog file), as libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, else plain TCP; the certificate is not checked.
    Prefer,
    /// TLS or fail; the certificate is not checked.
    Require,
    /// TLS with a certificate signed by `ssl_root_cert`, for any host name.
    VerifyCa,
    /// TLS with a certificate signed by `ssl_root_cert` and issued for the configured host.
    VerifyFull,
}

/// TLS settings of a catalog: `ssl_mode` and, for the verifying modes, the PEM file of the
/// certificate authorities to trust (`ssl_root_cert`).
#[derive(Debug, Clone)]
pub(crate) struct TlsSettings {
    pub(crate) mode: SslMode,
    pub(crate) root_cert: Option<std::path::PathBuf>,
}

impl TlsSettings {
    /// Reads `ssl_mode` (default `default_mode`) and `ssl_root_cert` from a catalog file. The
    /// verifying modes need `ssl_root_cert`; the file must exist.
    pub(crate) fn from_config(
        config: &toml::Table,
        default_mode: SslMode,
    ) -> Result<TlsSettings, ConnectorError> {
        let error = |key: &str, reason: &str| ConnectorError::Config {
            key: key.to_string(),
            reason: reason.to_string(),
        };
        let mode = match config.get("ssl_mode") {
            None => default_mode,
            Some(toml::Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "disable" | "disabled" => SslMode::Disable,
                "prefer" | "preferred" => SslMode::Prefer,
                "require" | "required" => SslMode::Require,
                "verify-ca" | "verify_ca" => SslMode::VerifyCa,
                "verify-full" | "verify_full" | "verify_identity" => SslMode::VerifyFull,
                _ => {
                    return Err(error(
                        "ssl_mode",
                        "must be one of \"disable\", \"prefer\", \"require\", \"verify-ca\", \
                         \"verify-full\"",
                    ));
                }
            },
            Some(_) => return Err(error("ssl_mode", "must be a string")),
        };
        let root_cert = match config.get("ssl_root_cert") {
            None => None,
            Some(toml::Value::String(s)) => {
                let path = std::path::PathBuf::from(s);
                if !path.is_file() {
                    return Err(error("ssl_root_cert", &format!("no such file: {s}")));
                }
                Some(path)
            }
            Some(_) => return Err(error("ssl_root_cert", "must be a string (a PEM file)")),
        };
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_cert.is_none() {
            return Err(error(
                "ssl_root_cert",
                "required with ssl_mode \"verify-ca\" or \"verify-full\" (the PEM file of the \
                 certificate authorities to trust)",
            ));
        }
        Ok(TlsSettings { mode, root_cert })
    }
}
