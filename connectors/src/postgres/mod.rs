//! The `postgres` connector: a PostgreSQL database mounted as a catalog.
//!
//! Catalog file (`etc/catalog/NAME.toml`):
//!
//! ```toml
//! connector = "postgres"
//! host = "127.0.0.1"
//! port = 5432                 # default 5432
//! database = "shop"
//! user = "reader"
//! password = "${PG_PASSWORD}" # optional
//! pool_size = 4               # max open connections of this catalog, default 4
//! schemas = ["public"]        # optional include list (exact names)
//! exclude_schemas = ["pg_catalog", "information_schema", "pg_toast*", "pg_temp*"]  # the default; `*` suffix = prefix
//! splits = 4                  # max splits (ctid page ranges) per table scan, default 4
//! split_min_pages = 1000      # tables with fewer pages are one split, default 1000
//! connect_timeout_secs = 10   # default 10
//! pool_timeout_secs = 60      # wait for a free connection, default 60
//! ssl_mode = "prefer"         # disable | prefer (default) | require | verify-ca | verify-full
//! ssl_root_cert = "/etc/tributary/pg-ca.pem"  # CA certificates (PEM), needed by verify-ca / verify-full
//! ```
//!
//! TLS (see the `tls` module): `prefer` and `require` encrypt without checking the certificate,
//! `verify-ca` checks it was signed by `ssl_root_cert`, `verify-full` also that it was issued for
//! `host`; rustls on the ring provider.
//!
//! Building the connector never connects synchronously, so a source that is down at startup still
//! loads. Metadata (schemas, tables, views, columns) is fetched on first use and cached (a background
//! fetch is started when the connector is built, so synchronous listings such as `SHOW TABLES` see the
//! tables soon after startup); a lookup of an unknown table refreshes it, at most every few seconds.
//! Queries against an unreachable source fail with
//! `catalog "NAME": cannot connect to PostgreSQL at host:port: ...`, never showing the password.
//!
//! Metadata also gives each table's primary key (as its DataFusion constraint) and comments (Arrow
//! metadata `comment` on the fields and the schema), see `remote_catalog`.
//!
//! Types: see the `types` module docs — unmapped types (enums, timetz, ranges, ...) are read as
//! text and logged once per column; uuid, json, jsonb and unconstrained numeric are carried as text
//! and reported to clients as their own type. Pushdown: projection, the filters listed in the
//! pushdown module docs (reported `Exact`, everything else `Unsupported`), and LIMIT.
//!
//! Whole subplans (aggregates, joins, top-N) are pushed by the planner's rule through
//! [`crate::sql_source`] ([`PostgresDialect`], one split per pushed statement).
//!
//! Not supported yet: statement timeouts.

mod dialect;
mod pool;
mod pushdown;
mod scan;
mod table;
mod tls;
mod types;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::catalog::{CatalogProvider, TableProvider};

pub use dialect::PostgresDialect;
pub use scan::PostgresScanExec;
pub(crate) use table::PostgresTable;

use crate::ConnectorError;
use crate::remote_catalog::{
    MetadataSource, RemoteCatalog, Snapshot, SourceColumn, SslMode, TextColumns, TlsSettings,
};
use pool::{Pool, PoolOptions};
use table::{ColumnMeta, TableMeta};
use types::PgType;

/// Default schemas left out when no `schemas` include list is given; `*` at the end matches a prefix.
const DEFAULT_EXCLUDED: [&str; 4] = ["pg_catalog", "information_schema", "pg_toast*", "pg_temp*"];
/// A lookup of an unknown table refreshes the metadata at most this often.
const REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// Quotes a PostgreSQL identifier: `"a""b"`.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A PostgreSQL database mounted as a catalog. See the module docs for the configuration.
pub struct PostgresConnector {
    catalog: Arc<RemoteCatalog<Shared>>,
    shared: Arc<Shared>,
}

impl fmt::Debug for PostgresConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConnector")
            .field("catalog", &self.shared.name)
            .field("pool", &self.shared.pool)
            .finish()
    }
}

/// What every provider of the catalog shares: settings, the pool, cached metadata.
pub(crate) struct Shared {
    name: String,
    pub(crate) pool: Arc<Pool>,
    include: Option<Vec<String>>,
    exclude: Vec<String>,
    splits: usize,
    split_min_pages: i64,
    metadata: parking_lot::RwLock<Option<Arc<Metadata>>>,
    /// Serializes metadata loads, and remembers when the last attempt ended.
    loading: tokio::sync::Mutex<Option<Instant>>,
    /// Columns already reported as read as text.
    reported: TextColumns,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

/// A snapshot of the source's schemas and tables.
type Metadata = Snapshot<TableMeta>;

fn config_error(key: &str, reason: impl Into<String>) -> ConnectorError {
    ConnectorError::Config {
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn get_str(config: &toml::Table, key: &str) -> Result<Option<String>, ConnectorError> {
    match config.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(config_error(key, "must be a string")),
    }
}

fn required_str(config: &toml::Table, key: &str) -> Result<String, ConnectorError> {
    get_str(config, key)?.ok_or_else(|| config_error(key, "missing"))
}

fn get_int(
    config: &toml::Table,
    key: &str,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ConnectorError> {
    match config.get(key) {
        None => Ok(default),
        Some(toml::Value::Integer(i)) if (min..=max).contains(i) => Ok(*i),
        Some(_) => Err(config_error(
            key,
            format!("must be an integer from {min} to {max}"),
        )),
    }
}

fn get_list(config: &toml::Table, key: &str) -> Result<Option<Vec<String>>, ConnectorError> {
    match config.get(key) {
        None => Ok(None),
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| config_error(key, "must be a list of strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(config_error(key, "must be a list of strings")),
    }
}

const KNOWN_KEYS: [&str; 16] = [
    "connector",
    "host",
    "port",
    "database",
    "user",
    "password",
    "pool_size",
    "schemas",
    "exclude_schemas",
    "splits",
    "split_min_pages",
    "connect_timeout_secs",
    "pool_timeout_secs",
    "ssl_mode",
    "ssl_root_cert",
    "name",
];

impl PostgresConnector {
    /// Builds the connector for catalog `name` from its catalog file (`${ENV}` already substituted).
    ///
    /// Never connects before returning: a source that is down still loads, and its queries fail until
    /// it is back. Errors: [`ConnectorError::Config`] for a missing or invalid key.
    pub async fn from_config(
        name: &str,
        config: &toml::Table,
    ) -> Result<PostgresConnector, ConnectorError> {
        for key in config.keys() {
            if !KNOWN_KEYS.contains(&key.as_str()) {
                tracing::warn!("catalog \"{name}\": unknown key `{key}` ignored");
            }
        }
        let host = required_str(config, "host")?;
        let port = get_int(config, "port", 5432, 1, 65535)?;
        let database = required_str(config, "database")?;
        let user = required_str(config, "user")?;
        let password = get_str(config, "password")?;
        let pool_size = get_int(config, "pool_size", 4, 1, 1024)?;
        let splits = get_int(config, "splits", 4, 1, 4096)?;
        let split_min_pages = get_int(config, "split_min_pages", 1000, 1, i64::MAX)?;
        let connect_timeout = get_int(config, "connect_timeout_secs", 10, 1, 3600)?;
        let pool_timeout = get_int(config, "pool_timeout_secs", 60, 1, 86_400)?;
        let include = get_list(config, "schemas")?;
        let exclude = get_list(config, "exclude_schemas")?
            .unwrap_or_else(|| DEFAULT_EXCLUDED.iter().map(|s| s.to_string()).collect());
        let tls = tls::connector(&TlsSettings::from_config(config, SslMode::Prefer)?)?;

        // The ranges were checked above, so the conversions cannot fail.
        let as_usize = |v: i64| usize::try_from(v).unwrap_or(1);
        let pool = Pool::new(
            name,
            PoolOptions {
                tls,
                host,
                port: u16::try_from(port).unwrap_or(5432),
                database,
                user,
                password,
                size: as_usize(pool_size),
                connect_timeout: Duration::from_secs(connect_timeout.unsigned_abs()),
                acquire_timeout: Duration::from_secs(pool_timeout.unsigned_abs()),
            },
        );
        let shared = Arc::new(Shared {
            name: name.to_string(),
            pool: Arc::new(pool),
            include,
            exclude,
            splits: as_usize(splits),
            split_min_pages,
            metadata: parking_lot::RwLock::new(None),
            loading: tokio::sync::Mutex::new(None),
            reported: TextColumns::default(),
        });
        shared.prefetch();
        Ok(PostgresConnector {
            catalog: Arc::new(RemoteCatalog::new(Arc::clone(&shared))),
            shared,
        })
    }

    /// Fetches (or re-fetches) the source's metadata now. Queries do this on their own when needed;
    /// this is for callers that want synchronous listings (`schema_names`, `table_names`) complete.
    pub async fn refresh_metadata(&self) -> Result<(), ConnectorError> {
        self.shared.load(true).await.map(|_| ())
    }
}

impl crate::Connector for PostgresConnector {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn catalog(&self) -> Arc<dyn CatalogProvider> {
        Arc::clone(&self.catalog) as Arc<dyn CatalogProvider>
    }
}

#[async_trait::async_trait]
impl MetadataSource for Shared {
    type Table = TableMeta;

    fn schema_included(&self, schema: &str) -> bool {
        Shared::schema_included(self, schema)
    }

    fn cached(&self) -> Option<Arc<Metadata>> {
        Shared::cached(self)
    }

    fn prefetch(self: &Arc<Self>) {
        Shared::prefetch(self)
    }

    async fn load(&self, force: bool) -> Result<Arc<Metadata>, ConnectorError> {
        Shared::load(self, force).await
    }

    fn table_provider(self: &Arc<Self>, table: Arc<TableMeta>) -> Arc<dyn TableProvider> {
        Arc::new(PostgresTable::new(Arc::clone(self), table))
    }
}

impl Shared {
    fn schema_included(&self, schema: &str) -> bool {
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

    fn cached(&self) -> Option<Arc<Metadata>> {
        self.metadata.read().clone()
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

    /// The metadata: the cached snapshot, or a fresh one when there is none or `force` is set and the
    /// last load is older than [`REFRESH_INTERVAL`].
    async fn load(&self, force: bool) -> Result<Arc<Metadata>, ConnectorError> {
        let mut last = self.loading.lock().await;
        if let Some(meta) = self.cached() {
            let recent = last.is_some_and(|t| t.elapsed() < REFRESH_INTERVAL);
            if !force || recent {
                return Ok(meta);
            }
        }
        let result = self.fetch().await;
        *last = Some(Instant::now());
        let meta = Arc::new(result?);
        *self.metadata.write() = Some(Arc::clone(&meta));
        Ok(meta)
    }

    async fn fetch(&self) -> Result<Metadata, ConnectorError> {
        let client = self.pool.get().await?;
        let schema_sql = "SELECT nspname::text FROM pg_catalog.pg_namespace ORDER BY 1";
        let rows = client
            .client()
            .query(schema_sql, &[])
            .await
            .map_err(|e| self.pool.query_error(&e, schema_sql))?;
        let mut meta = Metadata::default();
        for row in rows {
            let schema: String = row.get(0);
            if self.schema_included(&schema) {
                meta.schemas.insert(schema, BTreeMap::new());
            }
        }
        let key_sql = "\
            SELECT n.nspname::text, c.relname::text, a.attname::text \
            FROM pg_catalog.pg_constraint con \
            JOIN pg_catalog.pg_class c ON c.oid = con.conrelid \
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
            CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, pos) \
            JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum \
            WHERE con.contype = 'p' \
            ORDER BY 1, 2, k.pos";
        let rows = client
            .client()
            .query(key_sql, &[])
            .await
            .map_err(|e| self.pool.query_error(&e, key_sql))?;
        let mut keys: HashMap<(String, String), Vec<String>> = HashMap::new();
        for row in rows {
            keys.entry((row.get(0), row.get(1)))
                .or_default()
                .push(row.get(2));
        }
        let column_sql = "\
            SELECT n.nspname::text, c.relname::text, c.relkind::text, c.reltuples::float8, \
                   a.attname::text, a.attnotnull, bt.oid::int8, \
                   CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END, \
                   CASE WHEN bt.typcategory = 'A' THEN bt.typelem::int8 END, \
                   a.attcollation::int8, format_type(a.atttypid, a.atttypmod), \
                   col_description(c.oid, a.attnum), obj_description(c.oid, 'pg_class') \
            FROM pg_catalog.pg_class c \
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
            JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
            JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
            JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
            WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') \
            ORDER BY 1, 2, a.attnum";
        let rows = client
            .client()
            .query(column_sql, &[])
            .await
            .map_err(|e| self.pool.query_error(&e, column_sql))?;
        struct Pending {
            schema: String,
            table: String,
            relkind: char,
            reltuples: f64,
            comment: Option<String>,
            columns: Vec<SourceColumn<ColumnMeta>>,
        }
        let finish = |meta: &mut Metadata, p: Pending| {
            if let Some(tables) = meta.schemas.get_mut(&p.schema) {
                let key = keys
                    .get(&(p.schema.clone(), p.table.clone()))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let table = TableMeta::new(
                    p.schema,
                    p.table.clone(),
                    p.relkind,
                    p.reltuples,
                    p.columns,
                    p.comment,
                    key,
                );
                tables.insert(p.table, Arc::new(table));
            }
        };
        let mut current: Option<Pending> = None;
        for row in rows {
            let schema: String = row.get(0);
            if !self.schema_included(&schema) {
                continue;
            }
            let table: String = row.get(1);
            let relkind: String = row.get(2);
            let relkind = relkind.chars().next().unwrap_or('r');
            let reltuples: f64 = row.get(3);
            let column: String = row.get(4);
            let not_null: bool = row.get(5);
            let oid: i64 = row.get(6);
            let typmod: i32 = row.get(7);
            let elem: Option<i64> = row.get(8);
            let collation: i64 = row.get(9);
            let declared: String = row.get(10);
            let comment: Option<String> = row.get(11);
            let table_comment: Option<String> = row.get(12);
            let oid = u32::try_from(oid).unwrap_or(0);
            let ty = PgType::from_pg(
                oid,
                typmod,
                elem.and_then(|e| u32::try_from(e).ok()).filter(|e| *e != 0),
                u32::try_from(collation).unwrap_or(0),
            );
            let pg_type = types::front_end_type(oid, typmod, &ty);
            if ty.is_text_cast() {
                let full = format!("{schema}.{table}.{column}");
                self.reported.report(&self.name, full, &declared);
            }
            // Only base tables promise NOT NULL; a view's columns are always nullable.
            let nullable = !(not_null && relkind != 'v');
            let same = current
                .as_ref()
                .is_some_and(|p| p.schema == schema && p.table == table);
            if !same && let Some(p) = current.take() {
                finish(&mut meta, p);
            }
            let entry = current.get_or_insert_with(|| Pending {
                schema,
                table,
                relkind,
                reltuples,
                comment: table_comment,
                columns: Vec::new(),
            });
            entry.columns.push(SourceColumn {
                column: ColumnMeta { name: column, ty },
                nullable,
                pg_type,
                comment,
            });
        }
        if let Some(p) = current.take() {
            finish(&mut meta, p);
        }
        Ok(meta)
    }

    /// The ctid range condition of each split of a scan of `table` (`None`: one split, no condition).
    /// Tables of at least `split_min_pages` pages are cut into `splits` page ranges; the first range is
    /// open below and the last open above, so rows added after planning are still read exactly once.
    async fn ctid_splits(&self, table: &TableMeta) -> Result<Vec<Option<String>>, ConnectorError> {
        if !table.has_ctid() || self.splits <= 1 {
            return Ok(vec![None]);
        }
        let sql = "SELECT (pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8 \
                   FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                   WHERE n.nspname = $1 AND c.relname = $2";
        let client = self.pool.get().await?;
        let row = client
            .client()
            .query_opt(sql, &[&table.schema, &table.name])
            .await
            .map_err(|e| self.pool.query_error(&e, sql))?;
        let pages: i64 = row.map(|r| r.get(0)).unwrap_or(0);
        if pages < self.split_min_pages {
            return Ok(vec![None]);
        }
        let n = i64::try_from(self.splits).unwrap_or(1);
        let bounds: Vec<i64> = (1..n).map(|i| pages * i / n).collect();
        let mut splits = Vec::with_capacity(self.splits);
        for i in 0..bounds.len() + 1 {
            let low = i.checked_sub(1).map(|j| bounds[j]);
            let high = bounds.get(i).copied();
            let condition = match (low, high) {
                (None, Some(h)) => format!("(ctid < '({h},0)'::tid)"),
                (Some(l), Some(h)) => {
                    format!("(ctid >= '({l},0)'::tid AND ctid < '({h},0)'::tid)")
                }
                (Some(l), None) => format!("(ctid >= '({l},0)'::tid)"),
                (None, None) => return Ok(vec![None]),
            };
            splits.push(Some(condition));
        }
        Ok(splits)
    }
}
