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
//! join_pushdown = "automatic" # joins at PostgreSQL when its EXPLAIN says cheaper; "eager" always, "never" keeps them here
//! split_min_pages = 1000      # tables with fewer pages are one split, default 1000
//! connect_timeout_secs = 10   # default 10
//! pool_timeout_secs = 60      # wait for a free connection, default 60
//! ssl_mode = "prefer"         # disable | prefer (default) | require | verify-ca | verify-full
//! ssl_root_cert = "/etc/tributary/pg-ca.pem"  # CA certificates (PEM), needed by verify-ca / verify-full
//! ```
//!
//! Any other key is an error naming it (a misspelt key must not silently fall back to a default).
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
mod write;

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProvider, TableProvider};
use datafusion::physical_plan::ExecutionPlan;

pub use dialect::PostgresDialect;
pub use scan::PostgresScanExec;
pub(crate) use table::PostgresTable;

use crate::remote_catalog::{
    ColumnMeta, ColumnRow, MetadataCache, MetadataSource, RemoteCatalog, SchemaFilter, Snapshot,
    SourceColumn, TextColumns, primary_keys,
};
use crate::remote_config::{RemoteSettings, SourceDefaults, int_in, remote_catalog_file};
use crate::sql_source::SqlTable;
use crate::sql_table::range_conditions;
use crate::{ConnectorError, ConnectorFactory, ConnectorKind, ScanSpec};
use pool::{PgOptions, PgSource, Pool};
use table::{PgTableInfo, TableMeta};
use types::PgType;

/// What differs in reading the catalog file's shared keys.
const DEFAULTS: SourceDefaults = SourceDefaults {
    port: 5432,
    database_required: true,
    excluded: &["pg_catalog", "information_schema", "pg_toast*", "pg_temp*"],
};

remote_catalog_file! {
    /// The keys of a `postgres` catalog file as written (see the module docs).
    PostgresFile {
        /// Tables with fewer pages are one split (default 1000).
        split_min_pages: Option<i64>,
    }
}

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
    schemas: SchemaFilter,
    splits: usize,
    join_pushdown: crate::sql_source::JoinPushdown,
    split_min_pages: i64,
    cache: MetadataCache<TableMeta>,
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

impl PostgresConnector {
    /// Builds the connector for catalog `name` from its catalog file (`${ENV}` already substituted).
    ///
    /// Never connects before returning: a source that is down still loads, and its queries fail until
    /// it is back. Errors: [`ConnectorError::Config`] for a missing or invalid key.
    pub async fn from_config(
        name: &str,
        config: &toml::Table,
    ) -> Result<PostgresConnector, ConnectorError> {
        let mut file: PostgresFile = crate::catalog_file::parse(config)?;
        let settings = RemoteSettings::from_keys(file.remote_keys(), &DEFAULTS)?;
        let split_min_pages = int_in("split_min_pages", file.split_min_pages, 1000, 1, i64::MAX)?;
        let tls = tls::connector(&settings.tls)?;
        let source = PgSource::new(
            name,
            PgOptions {
                tls,
                host: settings.host,
                port: settings.port,
                database: settings.database.unwrap_or_default(),
                user: settings.user,
                password: settings.password,
                connect_timeout: settings.connect_timeout,
            },
        );
        let pool = Pool::new(source, settings.pool_size, settings.pool_timeout);
        let shared = Arc::new(Shared {
            name: name.to_string(),
            pool: Arc::new(pool),
            schemas: SchemaFilter::new(settings.include, settings.exclude),
            splits: settings.splits,
            join_pushdown: settings.join_pushdown,
            split_min_pages,
            cache: MetadataCache::default(),
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

/// This connector's kind, as catalog files name it (`connector = "postgres"`).
pub const KIND: ConnectorKind = ConnectorKind::new("postgres");

/// The `postgres` entry of [`crate::FACTORIES`]: encodes [`PostgresScanExec`]s, and its tables' SQL side.
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
        Ok(Arc::new(
            PostgresConnector::from_config(name, config).await?,
        ))
    }

    fn encode_scan(&self, plan: &dyn ExecutionPlan) -> Option<ScanSpec> {
        plan.downcast_ref::<PostgresScanExec>()
            .map(PostgresScanExec::to_spec)
    }

    fn encode_write(&self, plan: &dyn ExecutionPlan) -> Option<ScanSpec> {
        crate::sql_write::encode_write::<write::PgWriter>(plan)
    }

    fn sql_table<'a>(&self, provider: &'a dyn TableProvider) -> Option<&'a dyn SqlTable> {
        let any: &dyn Any = provider;
        any.downcast_ref::<PostgresTable>()
            .map(|t| t as &dyn SqlTable)
    }
}

impl crate::Connector for PostgresConnector {
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
        Ok(Arc::new(PostgresScanExec::from_spec(self, spec, schema)?))
    }

    fn decode_write(
        &self,
        spec: &ScanSpec,
        input: Arc<dyn ExecutionPlan>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        crate::sql_write::decode_write::<write::PgWriter>(
            spec,
            &self.shared.name,
            &self.shared.pool,
            input,
        )
    }
}

#[async_trait::async_trait]
impl MetadataSource for Shared {
    type Table = TableMeta;

    fn schema_filter(&self) -> &SchemaFilter {
        &self.schemas
    }

    fn cache(&self) -> &MetadataCache<TableMeta> {
        &self.cache
    }

    async fn fetch(&self) -> Result<Metadata, ConnectorError> {
        let client = &self.pool.get().await?;
        let query = |sql: &'static str| async move {
            client
                .query(sql, &[])
                .await
                .map_err(|e| self.pool.source().query_error(&e, sql))
        };
        let schema_sql = "SELECT nspname::text FROM pg_catalog.pg_namespace ORDER BY 1";
        let schemas = query(schema_sql).await?;
        let mut meta = Metadata::with_schemas(schemas.iter().map(|r| r.get(0)), &self.schemas);
        let key_sql = "\
            SELECT n.nspname::text, c.relname::text, a.attname::text \
            FROM pg_catalog.pg_constraint con \
            JOIN pg_catalog.pg_class c ON c.oid = con.conrelid \
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
            CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, pos) \
            JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum \
            WHERE con.contype = 'p' \
            ORDER BY 1, 2, k.pos";
        let key_rows = query(key_sql).await?;
        let keys = primary_keys(key_rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))));
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
        let rows = query(column_sql).await?;
        let columns = rows.iter().filter_map(|row| {
            let schema: String = row.get(0);
            if !self.schema_included(&schema) {
                return None;
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
            Some(ColumnRow {
                schema,
                table,
                info: PgTableInfo { relkind, reltuples },
                table_comment,
                column: SourceColumn {
                    column: ColumnMeta { name: column, ty },
                    nullable,
                    pg_type,
                    comment,
                },
            })
        });
        meta.add_tables(columns, &keys, TableMeta::new);
        Ok(meta)
    }

    fn table_provider(self: &Arc<Self>, table: Arc<TableMeta>) -> Arc<dyn TableProvider> {
        Arc::new(PostgresTable::new(Arc::clone(self), table))
    }
}

impl Shared {
    /// The ctid range condition of each split of a scan of `table` (`None`: one split, no condition).
    /// Tables of at least `split_min_pages` pages are cut into `splits` page ranges; the first range is
    /// open below and the last open above, so rows added after planning are still read exactly once.
    async fn ctid_splits(&self, table: &TableMeta) -> Result<Vec<Option<String>>, ConnectorError> {
        if !table.info.has_ctid() || self.splits <= 1 {
            return Ok(vec![None]);
        }
        let sql = "SELECT (pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8 \
                   FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                   WHERE n.nspname = $1 AND c.relname = $2";
        let client = self.pool.get().await?;
        let row = client
            .query_opt(sql, &[&table.schema, &table.name])
            .await
            .map_err(|e| self.pool.source().query_error(&e, sql))?;
        let pages: i64 = row.map(|r| r.get(0)).unwrap_or(0);
        if pages < self.split_min_pages {
            return Ok(vec![None]);
        }
        let n = i64::try_from(self.splits).unwrap_or(1);
        let bounds: Vec<i64> = (1..n).map(|i| pages * i / n).collect();
        Ok(range_conditions(
            &bounds,
            |l| format!("ctid >= '({l},0)'::tid"),
            |h| format!("ctid < '({h},0)'::tid"),
        ))
    }
}
