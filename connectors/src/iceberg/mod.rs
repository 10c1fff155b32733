//! `iceberg` connector: Apache Iceberg tables, read and written, with their catalog kept in Iceberg's
//! SQL catalog on PostgreSQL and their files in a warehouse on a local directory or S3.
//!
//! Catalog file keys: see [`IcebergConfig`]. Schemas are Iceberg namespaces (one level), tables
//! Iceberg tables (format v2, Parquet data files).
//!
//! - **Reads** plan a snapshot with the iceberg crate (`TableScan::plan_files`: manifests pruned by
//!   partition and column statistics with the translatable filters, see [`types::to_predicate`]),
//!   then read the data files with DataFusion's own Parquet scan (`DataSourceExec` over the
//!   warehouse's `lake://NAME/` object store, so it ships to workers like any lake scan, with
//!   projection, row-group pruning and byte-range splits). EXPLAIN shows the files left, the
//!   projection and the predicate. Tables with delete files (row-level deletes) are refused (`0A000`).
//! - **Time travel**: `FOR VERSION AS OF snapshot_id` and `FOR TIMESTAMP AS OF TIMESTAMP '...'`
//!   (Trino's syntax; the front end rewrites them into the table names [`version_name`] and
//!   [`timestamp_name`] make), and the metadata tables `"t$snapshots"` and `"t$files"`.
//! - **Writes**: `CREATE SCHEMA`, `CREATE TABLE` (columns or `AS SELECT`), `INSERT INTO`, `DROP TABLE`,
//!   `DROP SCHEMA` (Trino's syntax). Data files are written by the tasks of the final stage exactly as
//!   lake tables' are ([`crate::lake::LakeWriteExec`], into the table's `data/` directory, names
//!   carrying query, task and attempt), and the commit step on the coordinator appends the committed
//!   attempts' files as **one Iceberg snapshot** (fast append, the iceberg crate's optimistic commit,
//!   retried on conflict). Until then no reader sees a file (Iceberg readers see only files a
//!   snapshot lists); a failed or canceled statement deletes what it wrote. `CREATE TABLE AS`
//!   creates the table in the same commit step, just before its append (and drops it again if the
//!   append fails), so a failed CTAS leaves no table.
//!
//! The catalog backend is connected on first use, not at startup: a database that is down fails the
//! queries that need it, with the URI shown without its password.

mod config;
mod metadata_tables;
mod scan;
mod storage;
pub mod types;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::TableType;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
use datafusion::physical_plan::ExecutionPlan;
use iceberg::spec::{
    DataContentType, DataFileBuilder, DataFileFormat, FormatVersion, Literal, PrimitiveType,
    Struct, Transform, Type, UnboundPartitionSpec,
};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, CatalogBuilder, ErrorKind, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_sql::{SqlBindStyle, SqlCatalogBuilder};
use object_store::ObjectStore;
use parking_lot::RwLock;
use tokio::sync::OnceCell;

pub use config::{CatalogBackend, IcebergConfig};
pub use storage::{WarehouseStorage, WarehouseStorageFactory};

use crate::lake::{
    Lake, NewTable, Publisher, WritableCatalog, WriteSpec, WriteTarget, managed::CommittedFile,
};
use crate::{ConnectorError, ConnectorFactory, ConnectorKind, sqlstate};

/// This connector's kind, as catalog files name it (`connector = "iceberg"`).
pub const KIND: ConnectorKind = ConnectorKind::new("iceberg");

/// The `iceberg` entry of [`crate::FACTORIES`]. Its scans are DataFusion's own Parquet scans and its
/// writers lake writers (shipped by the lake factory with this kind), so it encodes nothing itself.
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
        Ok(Arc::new(IcebergConnector::from_config(name, config)?))
    }
}

/// Whether `provider` is an Iceberg table that accepts `INSERT`.
pub fn is_write_target(provider: &dyn TableProvider) -> bool {
    provider
        .downcast_ref::<IcebergTable>()
        .is_some_and(|t| t.snapshot.is_none())
}

/// The table name that reads `table` as of snapshot `snapshot_id` (`FOR VERSION AS OF`).
pub fn version_name(table: &str, snapshot_id: i64) -> String {
    format!("{table}@v{snapshot_id}")
}

/// The table name that reads `table` as of the snapshot current at `micros` microseconds since the
/// Unix epoch (`FOR TIMESTAMP AS OF`).
pub fn timestamp_name(table: &str, micros: i64) -> String {
    format!("{table}@t{micros}")
}

/// An `iceberg` catalog.
#[derive(Debug)]
pub struct IcebergConnector {
    catalog: Arc<IcebergCatalog>,
}

impl IcebergConnector {
    /// Builds the connector for catalog `name` from its catalog file. Opens the warehouse store (a
    /// local warehouse directory must exist) but not the catalog backend (connected on first use).
    ///
    /// Errors: [`ConnectorError::Config`] naming the key (see [`IcebergConfig::from_toml`]);
    /// [`ConnectorError::Source`] when the warehouse cannot be opened. No message has a password.
    pub fn from_config(name: &str, config: &toml::Table) -> Result<Self, ConnectorError> {
        let config = IcebergConfig::from_toml(config)?;
        let lake = Lake::new(name, config.warehouse.clone(), KIND)?;
        let storage =
            WarehouseStorage::new(config.warehouse.display_location(), lake.operator().clone());
        let inner = Arc::new(Inner {
            name: name.to_string(),
            config,
            lake,
            storage,
            backend: OnceCell::new(),
            names: RwLock::new(BTreeMap::new()),
        });
        inner.refresh_in_background();
        Ok(Self {
            catalog: Arc::new(IcebergCatalog { inner }),
        })
    }
}

impl crate::Connector for IcebergConnector {
    fn kind(&self) -> ConnectorKind {
        KIND
    }

    fn catalog(&self) -> Arc<dyn CatalogProvider> {
        Arc::clone(&self.catalog) as Arc<dyn CatalogProvider>
    }

    fn writable(&self) -> Option<Arc<dyn WritableCatalog>> {
        Some(Arc::clone(&self.catalog) as Arc<dyn WritableCatalog>)
    }

    fn object_stores(&self) -> Vec<(url::Url, Arc<dyn ObjectStore>)> {
        let lake = &self.catalog.inner.lake;
        vec![(lake.store_url().clone(), Arc::clone(lake.store()))]
    }

    fn decode_write(
        &self,
        spec: &crate::ScanSpec,
        input: Arc<dyn ExecutionPlan>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let spec: WriteSpec = serde_json::from_value(spec.payload.clone())
            .map_err(|e| DataFusionError::Plan(format!("bad iceberg write: {e}")))?;
        if spec.catalog != self.catalog.inner.name {
            return Err(DataFusionError::Plan(format!(
                "iceberg write of catalog `{}` sent to catalog `{}`",
                spec.catalog, self.catalog.inner.name
            )));
        }
        Ok(Arc::new(crate::lake::LakeWriteExec::new(
            spec,
            Arc::clone(&self.catalog.inner.lake),
            input,
        )))
    }
}

/// What the schemas and tables of one catalog share.
pub(crate) struct Inner {
    name: String,
    config: IcebergConfig,
    /// The warehouse store (data files are written and read through it).
    lake: Arc<Lake>,
    storage: WarehouseStorage,
    backend: OnceCell<Arc<dyn Catalog>>,
    /// Namespaces and their tables as last listed (for `schema_names` / `table_names`, which
    /// DataFusion asks synchronously); lookups by name always ask the backend.
    names: RwLock<BTreeMap<String, BTreeSet<String>>>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IcebergCatalog")
            .field("name", &self.name)
            .field("catalog_uri", &self.config.display_uri())
            .field("warehouse", &self.config.warehouse.display_location())
            .finish()
    }
}

/// The snapshot summary property naming the query attempt that wrote a snapshot (Trino's name).
const QUERY_ID_PROPERTY: &str = "trino_query_id";

/// How often the cached namespace and table lists are refreshed from the backend.
const REFRESH_EVERY: Duration = Duration::from_secs(10);

impl Inner {
    /// The catalog backend, connected (and its tables created when missing) on first use.
    /// Errors: `08001` naming the URI (without password) when it cannot be reached.
    async fn backend(&self) -> Result<&Arc<dyn Catalog>> {
        self.backend
            .get_or_try_init(|| async {
                let CatalogBackend::Sql { uri } = &self.config.backend;
                let name = self.config.catalog_name.as_deref().unwrap_or(&self.name);
                let catalog = SqlCatalogBuilder::default()
                    .uri(uri.clone())
                    .warehouse_location(self.storage.uri(""))
                    .sql_bind_style(SqlBindStyle::DollarNumeric)
                    .with_storage_factory(Arc::new(WarehouseStorageFactory::new(
                        self.storage.clone(),
                    )))
                    .load(name, HashMap::new())
                    .await
                    .map_err(|e| {
                        crate::ConnectorError::sql(
                            sqlstate::CONNECTION_FAILURE,
                            self.config.redact(format!(
                                "iceberg catalog `{}`: cannot open the SQL catalog at {}: {}",
                                self.name,
                                self.config.display_uri(),
                                error_chain(&e)
                            )),
                        )
                    })?;
                Ok(Arc::new(catalog) as Arc<dyn Catalog>)
            })
            .await
    }

    /// An error of the iceberg crate as a query error: conflicts `40001`, missing objects
    /// `42P01` / `3F000`, unsupported features `0A000`, the rest `58030`; passwords removed.
    fn error(&self, what: &str, e: &iceberg::Error) -> DataFusionError {
        let code = match e.kind() {
            ErrorKind::CatalogCommitConflicts => sqlstate::SERIALIZATION_FAILURE,
            ErrorKind::TableNotFound => sqlstate::UNDEFINED_TABLE,
            ErrorKind::NamespaceNotFound => sqlstate::UNDEFINED_SCHEMA,
            ErrorKind::TableAlreadyExists => sqlstate::DUPLICATE_TABLE,
            ErrorKind::NamespaceAlreadyExists => sqlstate::DUPLICATE_SCHEMA,
            ErrorKind::FeatureUnsupported => sqlstate::FEATURE_NOT_SUPPORTED,
            _ => sqlstate::IO_ERROR,
        };
        crate::ConnectorError::sql(
            code,
            self.config.redact(format!(
                "iceberg catalog `{}`: {what}: {}",
                self.name,
                error_chain(e)
            )),
        )
    }

    /// Lists namespaces and tables into the cache. Errors as [`Inner::backend`].
    async fn refresh(&self) -> Result<()> {
        let backend = self.backend().await?;
        let namespaces = backend
            .list_namespaces(None)
            .await
            .map_err(|e| self.error("cannot list schemas", &e))?;
        let mut names = BTreeMap::new();
        for namespace in namespaces {
            let tables = match backend.list_tables(&namespace).await {
                Ok(tables) => tables.into_iter().map(|t| t.name().to_string()).collect(),
                Err(e) if e.kind() == ErrorKind::NamespaceNotFound => continue,
                Err(e) => return Err(self.error("cannot list tables", &e)),
            };
            names.insert(namespace.join("."), tables);
        }
        *self.names.write() = names;
        Ok(())
    }

    /// [`Inner::refresh`], a failure logged (the lists stay as they were).
    async fn refresh_logged(&self) {
        if let Err(e) = self.refresh().await {
            tracing::warn!(catalog = self.name, error = %e, "iceberg: cannot list the catalog");
        }
    }

    /// Keeps the cached lists fresh while the catalog lives (for `\dn`, `\dt` and
    /// `information_schema`, which DataFusion answers from them).
    fn refresh_in_background(self: &Arc<Self>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(self);
        handle.spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = inner.refresh().await {
                    tracing::debug!(catalog = inner.name, error = %e, "iceberg: cannot list the catalog");
                }
                drop(inner);
                tokio::time::sleep(REFRESH_EVERY).await;
            }
        });
    }

    /// Loads table `schema.table`; `Ok(None)` when it does not exist.
    async fn load(&self, schema: &str, table: &str) -> Result<Option<Table>> {
        let backend = self.backend().await?;
        let ident = TableIdent::new(NamespaceIdent::new(schema.to_string()), table.to_string());
        match backend.load_table(&ident).await {
            Ok(table) => Ok(Some(table)),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::TableNotFound | ErrorKind::NamespaceNotFound
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(self.error(&format!("cannot load table `{schema}.{table}`"), &e)),
        }
    }

    /// The operator path (under the warehouse) of a table or namespace location URI. Errors: `0A000`
    /// for a location outside the warehouse.
    fn relative(&self, location: &str) -> Result<String> {
        self.storage.relative(location).ok_or_else(|| {
            crate::ConnectorError::sql(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!(
                    "location {location} is outside the warehouse {} of catalog `{}`",
                    self.config.warehouse.display_location(),
                    self.name
                ),
            )
        })
    }
}

/// The message of an iceberg error with its sources (its `Display` alone omits the cause).
fn error_chain(e: &iceberg::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// The DataFusion catalog of an `iceberg` catalog.
#[derive(Debug)]
pub struct IcebergCatalog {
    inner: Arc<Inner>,
}

impl CatalogProvider for IcebergCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.inner.names.read().keys().cloned().collect()
    }

    /// Every name gives a schema: whether it exists is asked of the backend when a table is looked
    /// up in it (the cached list may be up to [`REFRESH_EVERY`] old).
    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        Some(Arc::new(IcebergSchema {
            inner: Arc::clone(&self.inner),
            name: name.to_string(),
        }))
    }
}

/// One namespace.
#[derive(Debug)]
struct IcebergSchema {
    inner: Arc<Inner>,
    name: String,
}

/// What a table name asks for: the table now, at a snapshot, or a metadata table.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Version {
    Current,
    Snapshot(i64),
    AsOfMicros(i64),
    Snapshots,
    Files,
}

/// Splits a looked-up name into the table and what of it (see [`version_name`]).
fn parse_name(name: &str) -> (&str, Version) {
    if let Some(table) = name.strip_suffix("$snapshots") {
        return (table, Version::Snapshots);
    }
    if let Some(table) = name.strip_suffix("$files") {
        return (table, Version::Files);
    }
    if let Some((table, version)) = name.rsplit_once('@') {
        if let Some(id) = version.strip_prefix('v').and_then(|v| v.parse().ok()) {
            return (table, Version::Snapshot(id));
        }
        if let Some(micros) = version.strip_prefix('t').and_then(|v| v.parse().ok()) {
            return (table, Version::AsOfMicros(micros));
        }
    }
    (name, Version::Current)
}

#[async_trait]
impl SchemaProvider for IcebergSchema {
    fn table_names(&self) -> Vec<String> {
        self.inner
            .names
            .read()
            .get(&self.name)
            .map(|tables| tables.iter().cloned().collect())
            .unwrap_or_default()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let (table_name, version) = parse_name(name);
        let Some(table) = self.inner.load(&self.name, table_name).await? else {
            return Ok(None);
        };
        let qualified = format!("{}.{table_name}", self.name);
        let provider: Arc<dyn TableProvider> = match version {
            Version::Current => Arc::new(IcebergTable::new(&self.inner, table, None)?),
            Version::Snapshot(id) => {
                if table.metadata().snapshot_by_id(id).is_none() {
                    return Err(crate::ConnectorError::sql(
                        sqlstate::INVALID_PARAMETER_VALUE,
                        format!("Iceberg snapshot ID does not exist: {id} (table {qualified})"),
                    ));
                }
                Arc::new(IcebergTable::new(&self.inner, table, Some(id))?)
            }
            Version::AsOfMicros(micros) => {
                let millis = micros.div_euclid(1000);
                let id = table
                    .metadata()
                    .history()
                    .iter()
                    .filter(|entry| entry.timestamp_ms <= millis)
                    .max_by_key(|entry| entry.timestamp_ms)
                    .map(|entry| entry.snapshot_id)
                    .ok_or_else(|| {
                        let at = chrono::DateTime::from_timestamp_micros(micros)
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_else(|| micros.to_string());
                        crate::ConnectorError::sql(
                            sqlstate::INVALID_PARAMETER_VALUE,
                            format!("No version history table {qualified} at or before {at}"),
                        )
                    })?;
                Arc::new(IcebergTable::new(&self.inner, table, Some(id))?)
            }
            Version::Snapshots => metadata_tables::snapshots(&table)?,
            Version::Files => metadata_tables::files(&self.inner, &table).await?,
        };
        Ok(Some(provider))
    }

    fn table_exist(&self, name: &str) -> bool {
        let (table, _) = parse_name(name);
        self.inner
            .names
            .read()
            .get(&self.name)
            .is_some_and(|tables| tables.contains(table))
    }
}

/// An Iceberg table (at its current snapshot, or at an older one for time travel: then read-only).
#[derive(Debug)]
pub struct IcebergTable {
    inner: Arc<Inner>,
    table: Table,
    /// The snapshot read; `None` = the current one (and the table accepts `INSERT`).
    snapshot: Option<i64>,
    /// The Iceberg schema read (the snapshot's), and the Arrow schema it is read as.
    iceberg_schema: iceberg::spec::SchemaRef,
    schema: SchemaRef,
}

impl IcebergTable {
    fn new(inner: &Arc<Inner>, table: Table, snapshot: Option<i64>) -> Result<Self> {
        let metadata = table.metadata();
        if metadata.schemas_iter().len() > 1 {
            // Files are read by column name: after a rename or a drop and re-add, older files
            // would give wrong values. Refused until columns are mapped by field id.
            let ident = table.identifier();
            return Err(crate::ConnectorError::sql(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!(
                    "Iceberg table {}.{} has an evolved schema ({} schema versions), which is not \
                     supported yet",
                    ident.namespace().join("."),
                    ident.name(),
                    metadata.schemas_iter().len()
                ),
            ));
        }
        let iceberg_schema = match snapshot.and_then(|id| metadata.snapshot_by_id(id)) {
            Some(s) => s
                .schema(metadata)
                .unwrap_or_else(|_| Arc::clone(metadata.current_schema())),
            None => Arc::clone(metadata.current_schema()),
        };
        let schema = types::arrow_schema(&iceberg_schema)?;
        Ok(Self {
            inner: Arc::clone(inner),
            table,
            snapshot,
            iceberg_schema,
            schema,
        })
    }

    fn qualified_name(&self) -> String {
        let ident = self.table.identifier();
        format!("{}.{}", ident.namespace().join("."), ident.name())
    }

    /// The write of `INSERT INTO` this table: lake writers into `LOCATION/data/` (in `col=value/`
    /// directories for identity partitions), published as one snapshot. Errors: `0A000` for another
    /// partition transform or a table outside the warehouse.
    fn write_target(&self) -> Result<WriteTarget> {
        let metadata = self.table.metadata();
        let schema = metadata.current_schema();
        // Identity partitions are written as lake partitions that keep their columns.
        let partitioned_by = metadata
            .default_partition_spec()
            .fields()
            .iter()
            .map(
                |field| match (&field.transform, schema.field_by_id(field.source_id)) {
                    (Transform::Identity, Some(source)) => Ok(source.name.clone()),
                    _ => Err(crate::ConnectorError::sql(
                        sqlstate::FEATURE_NOT_SUPPORTED,
                        format!(
                            "INSERT into Iceberg table {} partitioned by {}({}) is not supported: \
                         only identity partitions are written",
                            self.qualified_name(),
                            field.transform,
                            field.name
                        ),
                    )),
                },
            )
            .collect::<Result<Vec<_>>>()?;
        let location = self.inner.relative(metadata.location())?;
        let field_ids = schema.as_struct().fields().iter().map(|f| f.id).collect();
        let spec = WriteSpec {
            catalog: self.inner.name.clone(),
            table_dir: data_dir(&location),
            partitioned_by,
            create: None,
            field_ids,
            keep_partition_columns: true,
        };
        let publisher = Arc::new(Append {
            inner: Arc::clone(&self.inner),
            ident: self.table.identifier().clone(),
            create: None,
        });
        Ok(WriteTarget::new(
            Arc::clone(&self.inner.lake),
            spec,
            Arc::clone(&self.schema),
            Some(publisher),
        ))
    }
}

/// The data directory (operator path, trailing `/`) of the table at operator path `location`.
fn data_dir(location: &str) -> String {
    format!("{}/data/", location.trim_end_matches('/'))
}

#[async_trait]
impl TableProvider for IcebergTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        scan::plan(self, state, projection, filters, limit).await
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if self.snapshot.is_some() {
            return Err(crate::ConnectorError::sql(
                sqlstate::FEATURE_NOT_SUPPORTED,
                "cannot write to a table read FOR VERSION / TIMESTAMP AS OF",
            ));
        }
        self.write_target()?.insert(input, insert_op)
    }
}

/// The table a `CREATE TABLE AS` creates, made by its commit step.
#[derive(Debug, Clone)]
struct Creation {
    schema: iceberg::spec::Schema,
    /// Identity partitions, outermost first.
    partition: UnboundPartitionSpec,
    /// The table's location URI (`WAREHOUSE/s/t-UUID`).
    location: String,
}

/// Publishes a write as one Iceberg snapshot (fast append), creating the table first for
/// `CREATE TABLE AS`.
#[derive(Debug)]
struct Append {
    inner: Arc<Inner>,
    ident: TableIdent,
    create: Option<Creation>,
}

impl Append {
    /// The manifest entry of one written file: its path, counts and column statistics (read back
    /// from its Parquet footer).
    async fn data_file(
        &self,
        spec: &WriteSpec,
        file: &CommittedFile,
        types: &[PrimitiveType],
        partition_spec: &iceberg::spec::PartitionSpec,
    ) -> Result<iceberg::spec::DataFile> {
        let path = format!("{}{}", spec.table_dir, file.path);
        let footer = self.footer(&path, file.bytes).await.map_err(|e| {
            crate::ConnectorError::sql(
                sqlstate::IO_ERROR,
                self.inner
                    .config
                    .redact(format!("iceberg: cannot read the footer of {path}: {e}")),
            )
        })?;
        let stats = types::file_stats(&footer, &spec.field_ids, types);
        let partition = partition_of(partition_spec, &stats, file.rows, &path)?;
        DataFileBuilder::default()
            .content(DataContentType::Data)
            .file_path(self.inner.storage.uri(&path))
            .file_format(DataFileFormat::Parquet)
            .partition(partition)
            .partition_spec_id(partition_spec.spec_id())
            .record_count(file.rows)
            .file_size_in_bytes(file.bytes)
            .column_sizes(stats.column_sizes)
            .value_counts(stats.value_counts)
            .null_value_counts(stats.null_value_counts)
            .lower_bounds(stats.lower_bounds)
            .upper_bounds(stats.upper_bounds)
            .build()
            .map_err(|e| DataFusionError::Internal(format!("iceberg data file: {e}")))
    }

    /// Whether the table has a snapshot written by query attempt `query` (its `trino_query_id`).
    async fn committed(&self, backend: &Arc<dyn Catalog>, query: &str) -> bool {
        match backend.load_table(&self.ident).await {
            Ok(table) => table.metadata().snapshots().any(|s| {
                s.summary()
                    .additional_properties
                    .get(QUERY_ID_PROPERTY)
                    .is_some_and(|q| q == query)
            }),
            Err(_) => false,
        }
    }

    /// The Parquet footer of the file at operator path `path`, `size` bytes long.
    async fn footer(
        &self,
        path: &str,
        size: u64,
    ) -> std::result::Result<datafusion::parquet::file::metadata::ParquetMetaData, String> {
        let op = self.inner.lake.operator();
        if size < 8 {
            return Err(format!("{size} bytes is too short for a Parquet file"));
        }
        let tail = op
            .read_with(path)
            .range(size - 8..size)
            .await
            .map_err(|e| e.to_string())?
            .to_vec();
        let tail: [u8; 8] = tail.try_into().map_err(|_| "short read".to_string())?;
        let length = FooterTail::try_new(&tail)
            .map_err(|e| e.to_string())?
            .metadata_length() as u64;
        if length + 8 > size {
            return Err(format!("footer of {length} bytes in a file of {size}"));
        }
        let metadata = op
            .read_with(path)
            .range(size - 8 - length..size - 8)
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        ParquetMetaDataReader::decode_metadata(&metadata).map_err(|e| e.to_string())
    }

    async fn create(&self, backend: &Arc<dyn Catalog>, creation: &Creation) -> Result<Table> {
        let request = TableCreation::builder()
            .name(self.ident.name().to_string())
            .location(creation.location.clone())
            .schema(creation.schema.clone())
            .partition_spec(creation.partition.clone())
            .properties([("write.format.default".to_string(), "parquet".to_string())])
            .format_version(FormatVersion::V2)
            .build();
        let table = backend
            .create_table(self.ident.namespace(), request)
            .await
            .map_err(|e| {
                self.inner
                    .error(&format!("cannot create table `{}`", self.ident), &e)
            })?;
        // The files were written with the ids of `creation.schema`: the created table must have
        // assigned the same (Iceberg numbers a new flat schema 1..n, as `iceberg_schema` does).
        let ids = |s: &iceberg::spec::Schema| -> Vec<(i32, String)> {
            s.as_struct()
                .fields()
                .iter()
                .map(|f| (f.id, f.name.clone()))
                .collect()
        };
        if ids(table.metadata().current_schema()) != ids(&creation.schema) {
            let _ = backend.drop_table(&self.ident).await;
            return Err(DataFusionError::Internal(format!(
                "iceberg: table `{}` was created with other field ids than its files were written with",
                self.ident
            )));
        }
        Ok(table)
    }
}

#[async_trait]
impl Publisher for Append {
    async fn publish(&self, query: &str, spec: &WriteSpec, files: &[CommittedFile]) -> Result<()> {
        let backend = self.inner.backend().await?;
        let table = match &self.create {
            Some(creation) => self.create(backend, creation).await?,
            None => backend.load_table(&self.ident).await.map_err(|e| {
                self.inner
                    .error(&format!("cannot load `{}`", self.ident), &e)
            })?,
        };
        let result: Result<()> = async {
            if files.is_empty() {
                return Ok(());
            }
            let metadata = table.metadata();
            let partition_spec = metadata.default_partition_spec();
            let schema = metadata.current_schema();
            let types: Vec<PrimitiveType> = spec
                .field_ids
                .iter()
                .map(|id| match schema.field_by_id(*id).map(|f| f.field_type.as_ref()) {
                    Some(Type::Primitive(p)) => Ok(p.clone()),
                    _ => Err(DataFusionError::Plan(format!(
                        "iceberg: table `{}` has no column with field id {id} any more (its schema \
                         changed during the write)",
                        self.ident
                    ))),
                })
                .collect::<Result<_>>()?;
            let mut data_files = Vec::with_capacity(files.len());
            for file in files {
                data_files.push(self.data_file(spec, file, &types, partition_spec).await?);
            }
            let transaction = Transaction::new(&table);
            let append = transaction
                .fast_append()
                .set_snapshot_properties(HashMap::from([(
                    QUERY_ID_PROPERTY.to_string(),
                    query.to_string(),
                )]))
                .add_data_files(data_files);
            let transaction = append
                .apply(transaction)
                .map_err(|e| self.inner.error("cannot prepare the append", &e))?;
            if let Err(e) = transaction.commit(backend.as_ref()).await {
                // A lost answer to a commit that happened must not delete the snapshot's files:
                // look for this query's snapshot before failing.
                if e.kind() != ErrorKind::CatalogCommitConflicts
                    && self.committed(backend, query).await
                {
                    return Ok(());
                }
                return Err(self
                    .inner
                    .error(&format!("cannot commit to `{}`", self.ident), &e));
            }
            Ok(())
        }
        .await;
        if result.is_err() && self.create.is_some() {
            // The table must not stay behind, empty, after a failed CREATE TABLE AS.
            if let Err(e) = backend.purge_table(&self.ident).await {
                tracing::warn!(table = %self.ident, error = %error_chain(&e), "iceberg: cannot drop a table whose CREATE TABLE AS failed");
            }
        }
        result?;
        // The listing refresh runs on its own: the commit is done, and a cancel arriving while it
        // ran would otherwise clean up files the snapshot lists.
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move { inner.refresh_logged().await });
        tracing::info!(
            catalog = self.inner.name,
            table = %self.ident,
            query,
            files = files.len(),
            "iceberg: snapshot committed"
        );
        Ok(())
    }

    async fn clean_up(&self, query: &str) {
        // A CREATE TABLE AS canceled between the table's creation and its append: the table (ours:
        // at our unique location, without our snapshot) goes too.
        let Some(creation) = &self.create else {
            return;
        };
        let Ok(backend) = self.inner.backend().await else {
            return;
        };
        let Ok(table) = backend.load_table(&self.ident).await else {
            return;
        };
        let ours = table.metadata().location().trim_end_matches('/')
            == creation.location.trim_end_matches('/');
        if ours
            && !self.committed(backend, query).await
            && let Err(e) = backend.purge_table(&self.ident).await
        {
            tracing::warn!(table = %self.ident, error = %error_chain(&e), "iceberg: cannot drop the table of a canceled CREATE TABLE AS");
        }
    }

    fn describe(&self) -> String {
        format!(
            "iceberg snapshot of {}.{}{}",
            self.inner.name,
            self.ident,
            if self.create.is_some() {
                " (create)"
            } else {
                ""
            }
        )
    }
}

/// A new table's schema and partition spec from its columns and properties: Parquet only;
/// `partitioned_by` / `partitioning` columns become identity partitions (in any position, unlike a
/// lake table's). Errors: `0A000` for another format or a partition column of a type whose values
/// cannot be read back from file statistics (decimal, float, binary, time); `22023` for an unknown or
/// repeated partition column; the type errors of [`types::iceberg_schema`].
fn new_table_spec(new: &NewTable) -> Result<(iceberg::spec::Schema, UnboundPartitionSpec)> {
    if let Some(format) = &new.format
        && !format.eq_ignore_ascii_case("parquet")
    {
        return Err(crate::ConnectorError::sql(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!(
                "table format '{format}' is not supported: Iceberg tables are written as PARQUET"
            ),
        ));
    }
    let schema = types::iceberg_schema(&new.columns)?;
    let mut builder = UnboundPartitionSpec::builder();
    for (i, name) in new.partitioned_by.iter().enumerate() {
        let invalid = |reason: &str| {
            crate::ConnectorError::sql(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!("partition column \"{name}\" {reason}"),
            )
        };
        if new.partitioned_by[..i].contains(name) {
            return Err(invalid("is listed twice"));
        }
        let field = schema
            .field_by_name(name)
            .ok_or_else(|| invalid("is not a column of the table"))?;
        let partitionable = matches!(
            field.field_type.as_ref(),
            Type::Primitive(
                PrimitiveType::Boolean
                    | PrimitiveType::Int
                    | PrimitiveType::Long
                    | PrimitiveType::Date
                    | PrimitiveType::String
                    | PrimitiveType::Timestamp
                    | PrimitiveType::Timestamptz
            )
        );
        if !partitionable {
            return Err(crate::ConnectorError::sql(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!(
                    "partition column \"{name}\" of type {} is not supported: identity partitions \
                     of boolean, integer, date, timestamp and varchar columns are",
                    field.field_type
                ),
            ));
        }
        builder = builder
            .add_partition_field(field.id, name, Transform::Identity)
            .map_err(|e| invalid(&e.to_string()))?;
    }
    Ok((schema, builder.build()))
}

/// The partition of a data file of a table partitioned by `spec`: each identity partition's value,
/// which every row of the file shares, read from the file's bounds (NULL when all its rows are
/// null). Errors: a value the statistics do not give exactly (a long string).
fn partition_of(
    spec: &iceberg::spec::PartitionSpec,
    stats: &types::FileStats,
    rows: u64,
    path: &str,
) -> Result<Struct> {
    spec.fields()
        .iter()
        .map(|field| {
            let id = field.source_id;
            if stats.null_value_counts.get(&id) == Some(&rows) {
                return Ok(None);
            }
            match (stats.lower_bounds.get(&id), stats.upper_bounds.get(&id)) {
                (Some(low), Some(high)) if low == high => {
                    Ok(Some(Literal::Primitive(low.literal().clone())))
                }
                _ => Err(crate::ConnectorError::sql(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    format!(
                        "iceberg: the value of partition \"{}\" of {path} cannot be read back \
                         from its statistics (a value longer than 64 bytes?)",
                        field.name
                    ),
                )),
            }
        })
        .collect()
}

impl IcebergCatalog {
    fn missing_schema(name: &str) -> DataFusionError {
        crate::ConnectorError::sql(
            sqlstate::UNDEFINED_SCHEMA,
            format!("schema \"{name}\" does not exist"),
        )
    }

    /// The location URI of a new table `table` in namespace `schema`: under the namespace's
    /// `location` property if it has one, else `WAREHOUSE/schema/`, named `table-UUID` as Trino's
    /// unique table locations are (a dropped table's leftovers never mix with a new one's).
    async fn new_location(&self, schema: &str, table: &str) -> Result<String> {
        let inner = &self.inner;
        let backend = inner.backend().await?;
        let namespace = NamespaceIdent::new(schema.to_string());
        let found = backend
            .get_namespace(&namespace)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::NamespaceNotFound => Self::missing_schema(schema),
                _ => inner.error(&format!("cannot read schema `{schema}`"), &e),
            })?;
        let base = match found.properties().get("location") {
            Some(location) => location.trim_end_matches('/').to_string(),
            None => inner.storage.uri(schema),
        };
        inner.relative(&base)?;
        Ok(format!("{base}/{table}-{}", uuid::Uuid::new_v4().simple()))
    }

    /// Whether `schema.table` exists. Errors: `3F000` when the schema does not.
    async fn table_exists(&self, schema: &str, table: &str) -> Result<bool> {
        let backend = self.inner.backend().await?;
        let namespace = NamespaceIdent::new(schema.to_string());
        let exists = backend
            .namespace_exists(&namespace)
            .await
            .map_err(|e| self.inner.error("cannot look up the schema", &e))?;
        if !exists {
            return Err(Self::missing_schema(schema));
        }
        backend
            .table_exists(&TableIdent::new(namespace, table.to_string()))
            .await
            .map_err(|e| self.inner.error("cannot look up the table", &e))
    }
}

fn already_exists(schema: &str, table: &str) -> DataFusionError {
    crate::ConnectorError::sql(
        sqlstate::DUPLICATE_TABLE,
        format!("relation \"{schema}.{table}\" already exists"),
    )
}

#[async_trait]
impl WritableCatalog for IcebergCatalog {
    fn name(&self) -> &str {
        &self.inner.name
    }

    async fn create_schema(
        &self,
        name: &str,
        location: Option<&str>,
        if_not_exists: bool,
    ) -> Result<()> {
        let inner = &self.inner;
        let backend = inner.backend().await?;
        let namespace = NamespaceIdent::new(name.to_string());
        let mut properties = HashMap::new();
        if let Some(location) = location {
            inner.relative(location)?;
            properties.insert("location".to_string(), location.to_string());
        }
        match backend.create_namespace(&namespace, properties).await {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NamespaceAlreadyExists && if_not_exists => {}
            Err(e) if e.kind() == ErrorKind::NamespaceAlreadyExists => {
                return Err(crate::ConnectorError::sql(
                    sqlstate::DUPLICATE_SCHEMA,
                    format!("schema \"{name}\" already exists"),
                ));
            }
            Err(e) => return Err(inner.error(&format!("cannot create schema `{name}`"), &e)),
        }
        tracing::info!(
            catalog = inner.name,
            schema = name,
            "iceberg: schema created"
        );
        Ok(())
    }

    async fn drop_schema(&self, name: &str, if_exists: bool, cascade: bool) -> Result<()> {
        let inner = &self.inner;
        let backend = inner.backend().await?;
        let namespace = NamespaceIdent::new(name.to_string());
        let tables = match backend.list_tables(&namespace).await {
            Ok(tables) => tables,
            Err(e) if e.kind() == ErrorKind::NamespaceNotFound => {
                return if if_exists {
                    Ok(())
                } else {
                    Err(Self::missing_schema(name))
                };
            }
            Err(e) => return Err(inner.error(&format!("cannot list schema `{name}`"), &e)),
        };
        if !backend
            .namespace_exists(&namespace)
            .await
            .map_err(|e| inner.error("cannot look up the schema", &e))?
        {
            return if if_exists {
                Ok(())
            } else {
                Err(Self::missing_schema(name))
            };
        }
        if !tables.is_empty() && !cascade {
            return Err(crate::ConnectorError::sql(
                sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
                format!("cannot drop schema \"{name}\" because it has tables (use CASCADE)"),
            ));
        }
        for table in &tables {
            self.drop_table(name, table.name(), true).await?;
        }
        backend
            .drop_namespace(&namespace)
            .await
            .map_err(|e| inner.error(&format!("cannot drop schema `{name}`"), &e))?;
        tracing::info!(
            catalog = inner.name,
            schema = name,
            "iceberg: schema dropped"
        );
        Ok(())
    }

    async fn create_table(
        &self,
        schema: &str,
        table: &str,
        new: &NewTable,
        if_not_exists: bool,
    ) -> Result<()> {
        let (iceberg_schema, partition) = new_table_spec(new)?;
        if self.table_exists(schema, table).await? {
            if if_not_exists {
                return Ok(());
            }
            return Err(already_exists(schema, table));
        }
        let location = self.new_location(schema, table).await?;
        let append = Append {
            inner: Arc::clone(&self.inner),
            ident: TableIdent::new(NamespaceIdent::new(schema.to_string()), table.to_string()),
            create: None,
        };
        append
            .create(
                self.inner.backend().await?,
                &Creation {
                    schema: iceberg_schema,
                    partition,
                    location,
                },
            )
            .await?;
        tracing::info!(
            catalog = self.inner.name,
            schema,
            table,
            "iceberg: table created"
        );
        Ok(())
    }

    async fn drop_table(&self, schema: &str, table: &str, if_exists: bool) -> Result<()> {
        let inner = &self.inner;
        let Some(loaded) = inner.load(schema, table).await? else {
            if if_exists {
                return Ok(());
            }
            return Err(crate::ConnectorError::sql(
                sqlstate::UNDEFINED_TABLE,
                format!("table \"{schema}.{table}\" does not exist"),
            ));
        };
        let backend = inner.backend().await?;
        backend
            .purge_table(loaded.identifier())
            .await
            .map_err(|e| inner.error(&format!("cannot drop table `{schema}.{table}`"), &e))?;
        // Files no snapshot listed (a writer's leftovers) go with the table's directory.
        // Only a table directory of its own (`schema/table...`, never a parent or `..`).
        if let Some(dir) = inner.storage.relative(loaded.metadata().location())
            && dir.split('/').filter(|part| !part.is_empty()).count() >= 2
            && !dir.split('/').any(|part| part == "..")
            && let Err(e) = inner
                .lake
                .operator()
                .delete_with(&format!("{}/", dir.trim_end_matches('/')))
                .recursive(true)
                .await
        {
            tracing::warn!(error = %e, "iceberg: cannot remove a dropped table's directory");
        }
        tracing::info!(
            catalog = inner.name,
            schema,
            table,
            "iceberg: table dropped"
        );
        Ok(())
    }

    async fn ddl_done(&self) {
        self.inner.refresh_logged().await;
    }

    async fn create_table_as(
        &self,
        schema: &str,
        table: &str,
        new: &NewTable,
        if_not_exists: bool,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let (iceberg_schema, partition) = new_table_spec(new)?;
        if self.table_exists(schema, table).await? {
            if if_not_exists {
                return Ok(None);
            }
            return Err(already_exists(schema, table));
        }
        let location = self.new_location(schema, table).await?;
        let relative = self.inner.relative(&location)?;
        let arrow = types::arrow_schema(&iceberg_schema)?;
        let field_ids = iceberg_schema
            .as_struct()
            .fields()
            .iter()
            .map(|f| f.id)
            .collect();
        let spec = WriteSpec {
            catalog: self.inner.name.clone(),
            table_dir: data_dir(&relative),
            partitioned_by: new.partitioned_by.clone(),
            create: None,
            field_ids,
            keep_partition_columns: true,
        };
        let publisher = Arc::new(Append {
            inner: Arc::clone(&self.inner),
            ident: TableIdent::new(NamespaceIdent::new(schema.to_string()), table.to_string()),
            create: Some(Creation {
                schema: iceberg_schema,
                partition,
                location,
            }),
        });
        Ok(Some(Arc::new(WriteTarget::new(
            Arc::clone(&self.inner.lake),
            spec,
            arrow,
            Some(publisher),
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_versions_and_metadata_tables() {
        assert_eq!(parse_name("t"), ("t", Version::Current));
        assert_eq!(
            parse_name(&version_name("t", 42)),
            ("t", Version::Snapshot(42))
        );
        assert_eq!(
            parse_name(&timestamp_name("t", -5)),
            ("t", Version::AsOfMicros(-5))
        );
        assert_eq!(parse_name("t$snapshots"), ("t", Version::Snapshots));
        assert_eq!(parse_name("t$files"), ("t", Version::Files));
        assert_eq!(parse_name("a@b"), ("a@b", Version::Current));
    }
}
