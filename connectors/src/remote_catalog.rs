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
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::common::{Constraint, Constraints};
use datafusion::datasource::TableProvider;
use datafusion::error::DataFusionError;

use crate::ConnectorError;
use crate::sql_source::SqlDialect;
use crate::sql_table::ColumnType;

/// Field / schema metadata key of a column's / table's comment at the source.
pub(crate) const COMMENT_KEY: &str = "comment";
/// Field metadata key of the PostgreSQL type a string column is reported as at the front end (which
/// reads it under the same name, re-exported through `tributary_exec`).
pub const PG_TYPE_KEY: &str = "tributary.pg_type";
/// A lookup of an unknown table refreshes the metadata at most this often.
const REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// One column of a source table: its name and how it is read (`T`, the connector's type mapping).
#[derive(Debug, Clone)]
pub(crate) struct ColumnMeta<T> {
    pub name: String,
    pub ty: T,
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
pub(crate) fn table_schema<T: ColumnType>(
    columns: &[SourceColumn<ColumnMeta<T>>],
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
            Field::new(&c.column.name, c.column.ty.arrow_type(), c.nullable).with_metadata(metadata)
        })
        .collect();
    let mut metadata = HashMap::new();
    if let Some(comment) = comment.filter(|c| !c.is_empty()) {
        metadata.insert(COMMENT_KEY.to_string(), comment);
    }
    let indices = key
        .iter()
        .map(|k| columns.iter().position(|c| c.column.name == *k))
        .collect::<Option<Vec<usize>>>()
        .filter(|indices| !indices.is_empty());
    let constraints =
        indices.map(|indices| Constraints::new_unverified(vec![Constraint::PrimaryKey(indices)]));
    (Schema::new_with_metadata(fields, metadata), constraints)
}

/// One table or view of a remote database. `T` is how the connector reads a column, `X` what else
/// it keeps of the table (its kind, a row estimate, how it splits).
#[derive(Debug)]
pub(crate) struct RemoteTable<T, X> {
    pub schema: String,
    pub name: String,
    pub columns: Vec<ColumnMeta<T>>,
    /// Column comments and front-end types as field metadata, the table comment as schema metadata.
    pub arrow_schema: SchemaRef,
    /// The primary key, if the table has one.
    pub constraints: Option<Constraints>,
    /// What only this connector keeps.
    pub info: X,
}

impl<T: ColumnType, X> RemoteTable<T, X> {
    /// The table gathered from its column rows, with primary key `key` (column names in key order).
    pub(crate) fn new(rows: TableRows<X, T>, key: &[String]) -> Self {
        let (arrow_schema, constraints) = table_schema(&rows.columns, rows.comment, key);
        RemoteTable {
            schema: rows.schema,
            name: rows.table,
            columns: rows.columns.into_iter().map(|c| c.column).collect(),
            arrow_schema: Arc::new(arrow_schema),
            constraints,
            info: rows.info,
        }
    }

    /// The column named `name` (exact match).
    pub(crate) fn column(&self, name: &str) -> Option<&ColumnMeta<T>> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The table's quoted name at the source: `"schema"."table"`, `` `schema`.`table` ``.
    pub(crate) fn quoted_name(&self, dialect: &dyn SqlDialect) -> String {
        format!(
            "{}.{}",
            dialect.quote_ident(&self.schema),
            dialect.quote_ident(&self.name)
        )
    }
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

/// Which schemas of the source a catalog shows: those of the include list (`schemas`, exact
/// names) when there is one, else all but those of the exclude list (`*` at the end: a prefix).
#[derive(Debug, Clone)]
pub(crate) struct SchemaFilter {
    include: Option<Vec<String>>,
    exclude: Vec<String>,
}

impl SchemaFilter {
    pub(crate) fn new(include: Option<Vec<String>>, exclude: Vec<String>) -> Self {
        SchemaFilter { include, exclude }
    }

    /// Whether the catalog shows `schema`.
    pub(crate) fn includes(&self, schema: &str) -> bool {
        if let Some(include) = &self.include {
            return include.iter().any(|s| s == schema);
        }
        !self
            .exclude
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => schema.starts_with(prefix),
                None => pattern == schema,
            })
    }
}

/// Primary keys by (schema, table): column names in key order.
pub(crate) type PrimaryKeys = HashMap<(String, String), Vec<String>>;

/// The primary keys of `(schema, table, column)` rows, in key order within a table.
pub(crate) fn primary_keys(
    rows: impl IntoIterator<Item = (String, String, String)>,
) -> PrimaryKeys {
    let mut keys = PrimaryKeys::new();
    for (schema, table, column) in rows {
        keys.entry((schema, table)).or_default().push(column);
    }
    keys
}

/// One row of a column metadata query, which lists columns ordered by schema, table and position.
pub(crate) struct ColumnRow<X, T> {
    pub schema: String,
    pub table: String,
    /// What the connector keeps of the table; the first row of a table gives it.
    pub info: X,
    /// The table's comment; the first row of a table gives it.
    pub table_comment: Option<String>,
    pub column: SourceColumn<ColumnMeta<T>>,
}

/// The rows of one table, gathered.
pub(crate) struct TableRows<X, T> {
    pub schema: String,
    pub table: String,
    pub info: X,
    pub comment: Option<String>,
    pub columns: Vec<SourceColumn<ColumnMeta<T>>>,
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

impl<T> Snapshot<T> {
    /// A snapshot of the schemas `names` that `filter` includes, without tables yet.
    pub(crate) fn with_schemas(
        names: impl IntoIterator<Item = String>,
        filter: &SchemaFilter,
    ) -> Self {
        let mut snapshot = Snapshot::default();
        for schema in names {
            if filter.includes(&schema) {
                snapshot.schemas.insert(schema, BTreeMap::new());
            }
        }
        snapshot
    }

    /// Adds the tables of column rows `rows` (ordered by schema and table) to the snapshot's
    /// schemas (tables of other schemas, and the staging tables of running `INSERT`s, are left
    /// out), each built by `build` from its rows and its primary key in `keys` (empty when it has
    /// none).
    pub(crate) fn add_tables<X, C>(
        &mut self,
        rows: impl IntoIterator<Item = ColumnRow<X, C>>,
        keys: &PrimaryKeys,
        build: impl Fn(TableRows<X, C>, &[String]) -> T,
    ) {
        let mut finish = |table: TableRows<X, C>| {
            if table.table.starts_with(crate::sql_write::STAGE_PREFIX) {
                return;
            }
            if let Some(tables) = self.schemas.get_mut(&table.schema) {
                let key = keys
                    .get(&(table.schema.clone(), table.table.clone()))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let name = table.table.clone();
                tables.insert(name, Arc::new(build(table, key)));
            }
        };
        let mut current: Option<TableRows<X, C>> = None;
        for row in rows {
            let same = current
                .as_ref()
                .is_some_and(|t| t.schema == row.schema && t.table == row.table);
            if !same && let Some(t) = current.take() {
                finish(t);
            }
            let entry = current.get_or_insert_with(|| TableRows {
                schema: row.schema,
                table: row.table,
                info: row.info,
                comment: row.table_comment,
                columns: Vec::new(),
            });
            entry.columns.push(row.column);
        }
        if let Some(t) = current.take() {
            finish(t);
        }
    }
}

/// The cached [`Snapshot`] of a [`MetadataSource`], and when it was last (re)loaded.
#[derive(Debug)]
pub(crate) struct MetadataCache<T> {
    snapshot: parking_lot::RwLock<Option<Arc<Snapshot<T>>>>,
    /// Serializes metadata loads, and remembers when the last attempt ended.
    loading: tokio::sync::Mutex<Option<Instant>>,
}

impl<T> Default for MetadataCache<T> {
    fn default() -> Self {
        MetadataCache {
            snapshot: parking_lot::RwLock::new(None),
            loading: tokio::sync::Mutex::new(None),
        }
    }
}

/// What a connector provides so [`RemoteCatalog`] can serve its metadata: the schema lists, a
/// cache, and how to fetch a fresh snapshot. Loading, caching and refreshing are the same for all.
#[async_trait]
pub(crate) trait MetadataSource: Debug + Send + Sync + 'static {
    /// Metadata of one table.
    type Table: Debug + Send + Sync + 'static;
    /// The schemas the catalog shows.
    fn schema_filter(&self) -> &SchemaFilter;
    /// Where the snapshot is cached.
    fn cache(&self) -> &MetadataCache<Self::Table>;
    /// Reads a fresh snapshot from the source.
    async fn fetch(&self) -> Result<Snapshot<Self::Table>, ConnectorError>;
    /// The table provider for `table`.
    fn table_provider(self: &Arc<Self>, table: Arc<Self::Table>) -> Arc<dyn TableProvider>;

    /// Whether the catalog shows `schema` (include / exclude lists).
    fn schema_included(&self, schema: &str) -> bool {
        self.schema_filter().includes(schema)
    }

    /// The cached snapshot, if metadata was loaded.
    fn cached(&self) -> Option<Arc<Snapshot<Self::Table>>> {
        self.cache().snapshot.read().clone()
    }

    /// Starts a background metadata fetch if none is cached (errors are logged, not returned).
    fn prefetch(self: &Arc<Self>) {
        if self.cached().is_some() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let shared = Arc::clone(self);
        handle.spawn(async move {
            if let Err(e) = shared.load(false).await {
                tracing::warn!("{e}");
            }
        });
    }

    /// The metadata: the cached snapshot, or a fresh one when there is none or `force` is set and
    /// the last load is older than [`REFRESH_INTERVAL`].
    async fn load(&self, force: bool) -> Result<Arc<Snapshot<Self::Table>>, ConnectorError> {
        let mut last = self.cache().loading.lock().await;
        if let Some(meta) = self.cached() {
            let recent = last.is_some_and(|t| t.elapsed() < REFRESH_INTERVAL);
            if !force || recent {
                return Ok(meta);
            }
        }
        let result = self.fetch().await;
        *last = Some(Instant::now());
        let meta = Arc::new(result?);
        *self.cache().snapshot.write() = Some(Arc::clone(&meta));
        Ok(meta)
    }
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
