//! The `mysql` connector: a MySQL or MariaDB server mounted as a catalog, its databases as schemas.
//!
//! Catalog file (`etc/catalog/NAME.toml`):
//!
//! ```toml
//! connector = "mysql"
//! host = "127.0.0.1"
//! port = 3306                 # default 3306
//! database = "shop"           # optional: the connection's default database and, unless `schemas`
//!                             # is given, the only schema shown (MySQL databases are schemas)
//! user = "reader"
//! password = "${MYSQL_PASSWORD}" # optional
//! pool_size = 4               # max open connections of this catalog, default 4
//! schemas = ["shop", "crm"]   # optional include list (exact names)
//! exclude_schemas = ["mysql", "information_schema", "performance_schema", "sys"]  # the default; `*` suffix = prefix
//! splits = 4                  # max splits (primary-key ranges) per table scan, default 4
//! join_pushdown = "automatic" # joins (and aggregates) at MariaDB when its EXPLAIN says cheaper; "eager", "never"
//! split_min_rows = 100000     # tables with fewer rows (TABLE_ROWS estimate) are one split, default 100000
//! connect_timeout_secs = 10   # default 10
//! pool_timeout_secs = 60      # wait for a free connection, default 60
//! time_type = "time"          # "time" (default): `time` columns are Time64, values outside 0..24h
//!                             # fail the query; "interval": `time` columns are intervals (any value)
//! ssl_mode = "prefer"         # disable | prefer (default) | require | verify-full
//! ssl_root_cert = "/etc/tributary/my-ca.pem"  # CA certificates (PEM), needed by verify-full
//! ```
//!
//! Any other key is an error naming it (a misspelt key must not silently fall back to a default).
//!
//! TLS (see the `pool` module): `prefer` and `require` encrypt without checking the certificate,
//! `verify-full` checks it was signed by `ssl_root_cert` and issued for `host`; `verify-ca` is
//! refused (mysql_async cannot skip only the host name check). rustls on the ring provider.
//!
//! Building the connector never connects synchronously, so a source that is down at startup still
//! loads. Metadata (schemas, tables, views, columns, primary keys, comments) is read from `information_schema`
//! on first use and cached (a background fetch is started when the connector is built, so synchronous
//! listings such as `SHOW TABLES` see the tables soon after startup); a lookup of an unknown table
//! refreshes it, at most every few seconds. Queries against an unreachable source fail with SQLSTATE
//! 08001 and `catalog "NAME": cannot connect to MySQL at host:port: ...`; wrong credentials (MySQL
//! error 1045) with 28P01; a remote SQL error with the source's message and a mapped SQLSTATE. No
//! message ever shows the password.
//!
//! Types: see the `types` module docs — unmapped types (inet6, geometry, ...) are read as text
//! and logged once per column. Reading uses the binary protocol (prepared statements), streamed into
//! Arrow batches. Splits: a base table with a single-column integer primary key and at least
//! `split_min_rows` rows is cut into `splits` key ranges from the key's MIN and MAX read at planning
//! time (the first range open below, the last open above); everything else is one split.
//! Pushdown: projection, the filters listed in the `pushdown` module docs (reported `Exact`,
//! everything else `Unsupported`; no string comparison is pushed, MySQL collations differ), and
//! LIMIT. `EXPLAIN` shows the remote SQL of the first split (`` `backtick` `` quoted identifiers).
//!
//! Primary keys are the tables' DataFusion constraints; column and table comments are Arrow metadata
//! `comment` on the fields and the schema (see `remote_catalog`).
//!
//! Not supported yet: statement timeouts.

mod dialect;
mod explain;
mod pool;
mod pushdown;
mod scan;
mod table;
mod types;
mod write;

use std::any::Any;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProvider, TableProvider};
use datafusion::physical_plan::ExecutionPlan;
use mysql_async::prelude::Queryable;
use mysql_async::{Row, Value};

pub use dialect::MySqlDialect;
pub use scan::MySqlScanExec;

use crate::remote_catalog::{
    ColumnMeta, ColumnRow, MetadataCache, MetadataSource, RemoteCatalog, SchemaFilter, Snapshot,
    SourceColumn, TextColumns, primary_keys,
};
use crate::remote_config::{
    RemoteSettings, SourceDefaults, SslMode, config_error, int_in, remote_catalog_file,
};
use crate::sql_source::SqlTable;
use crate::sql_table::range_conditions;
use crate::{ConnectorError, ConnectorFactory, ConnectorKind, ScanSpec};
use pool::{MyOptions, MySource, Pool};
pub(crate) use table::MySqlTable;
use table::{MyTableInfo, TableMeta};
use types::MyType;

/// What differs in reading the catalog file's shared keys.
const DEFAULTS: SourceDefaults = SourceDefaults {
    port: 3306,
    database_required: false,
    excluded: &["mysql", "information_schema", "performance_schema", "sys"],
};

remote_catalog_file! {
    /// The keys of a `mysql` catalog file as written (see the module docs).
    MySqlFile {
        /// Tables with fewer rows are one split (default 100000).
        split_min_rows: Option<i64>,
        /// `"time"` (default) or `"interval"`.
        time_type: Option<String>,
    }
}

/// Quotes a MySQL identifier: `` `a``b` ``.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A MySQL / MariaDB server mounted as a catalog. See the module docs for the configuration.
pub struct MySqlConnector {
    catalog: Arc<RemoteCatalog<Shared>>,
    shared: Arc<Shared>,
}

impl fmt::Debug for MySqlConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySqlConnector")
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
    split_min_rows: u64,
    time_as_interval: bool,
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

impl MySqlConnector {
    /// Builds the connector for catalog `name` from its catalog file (`${ENV}` already substituted).
    ///
    /// Never connects before returning: a source that is down still loads, and its queries fail until
    /// it is back. Errors: [`ConnectorError::Config`] for a missing or invalid key.
    pub async fn from_config(
        name: &str,
        config: &toml::Table,
    ) -> Result<MySqlConnector, ConnectorError> {
        let mut file: MySqlFile = crate::catalog_file::parse(config)?;
        let settings = RemoteSettings::from_keys(file.remote_keys(), &DEFAULTS)?;
        let split_min_rows = int_in("split_min_rows", file.split_min_rows, 100_000, 0, i64::MAX)?;
        let time_as_interval = match file.time_type.as_deref() {
            None | Some("time") => false,
            Some("interval") => true,
            Some(_) => {
                return Err(config_error(
                    "time_type",
                    "must be \"time\" or \"interval\"",
                ));
            }
        };
        if settings.tls.mode == SslMode::VerifyCa {
            // mysql_async skips the host name check by matching an error text rustls no longer
            // prints, so it would check the name anyway.
            return Err(config_error(
                "ssl_mode",
                "\"verify-ca\" is not available for mysql catalogs (the MySQL client library \
                 cannot skip only the host name check); use \"verify-full\" or \"require\"",
            ));
        }
        // Without a `schemas` list, the configured database is the only schema shown.
        let include = settings
            .include
            .or_else(|| settings.database.clone().map(|d| vec![d]));
        let source = MySource::new(
            name,
            MyOptions {
                host: settings.host,
                port: settings.port,
                database: settings.database,
                user: settings.user,
                password: settings.password,
                connect_timeout: settings.connect_timeout,
                tls: settings.tls,
            },
        );
        let pool = Pool::new(source, settings.pool_size, settings.pool_timeout);
        let shared = Arc::new(Shared {
            name: name.to_string(),
            pool: Arc::new(pool),
            schemas: SchemaFilter::new(include, settings.exclude),
            splits: settings.splits,
            join_pushdown: settings.join_pushdown,
            split_min_rows: split_min_rows.unsigned_abs(),
            time_as_interval,
            cache: MetadataCache::default(),
            reported: TextColumns::default(),
        });
        shared.prefetch();
        Ok(MySqlConnector {
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

/// This connector's kind, as catalog files name it (`connector = "mysql"`).
pub const KIND: ConnectorKind = ConnectorKind::new("mysql");

/// The `mysql` entry of [`crate::FACTORIES`]: encodes [`MySqlScanExec`]s, and its tables' SQL side.
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
        Ok(Arc::new(MySqlConnector::from_config(name, config).await?))
    }

    fn encode_scan(&self, plan: &dyn ExecutionPlan) -> Option<ScanSpec> {
        plan.downcast_ref::<MySqlScanExec>()
            .map(MySqlScanExec::to_spec)
    }

    fn encode_write(&self, plan: &dyn ExecutionPlan) -> Option<ScanSpec> {
        crate::sql_write::encode_write::<write::MyWriter>(plan)
    }

    fn sql_table<'a>(&self, provider: &'a dyn TableProvider) -> Option<&'a dyn SqlTable> {
        let any: &dyn Any = provider;
        any.downcast_ref::<MySqlTable>().map(|t| t as &dyn SqlTable)
    }
}

impl crate::Connector for MySqlConnector {
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
        Ok(Arc::new(MySqlScanExec::from_spec(self, spec, schema)?))
    }

    fn decode_write(
        &self,
        spec: &ScanSpec,
        input: Arc<dyn ExecutionPlan>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        crate::sql_write::decode_write::<write::MyWriter>(
            spec,
            &self.shared.name,
            &self.shared.pool,
            input,
        )
    }
}

/// A text-protocol value as a string (`None` for NULL).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Int(v) => Some(v.to_string()),
        Value::UInt(v) => Some(v.to_string()),
        Value::Float(v) => Some(v.to_string()),
        Value::Double(v) => Some(v.to_string()),
        other => Some(format!("{other:?}")),
    }
}

fn number(value: &Value) -> Option<u64> {
    text(value).and_then(|s| s.trim().parse().ok())
}

/// An integer value of any kind (binary or text protocol).
fn integer(value: &Value) -> Option<i128> {
    match value {
        Value::Int(v) => Some(i128::from(*v)),
        Value::UInt(v) => Some(i128::from(*v)),
        other => text(other).and_then(|s| s.trim().parse().ok()),
    }
}

/// The key-range conditions of `n` splits of `[min, max]`: the first open below, the last open
/// above, boundaries deduplicated (`None`: one split, no condition).
fn key_ranges(key: &str, min: i128, max: i128, n: usize) -> Vec<Option<String>> {
    let n = i128::try_from(n).unwrap_or(1);
    let span = max - min;
    let mut bounds: Vec<i128> = (1..n).map(|i| min + span * i / n).collect();
    bounds.retain(|b| *b > min);
    bounds.dedup();
    let key = quote_ident(key);
    range_conditions(
        &bounds,
        |l| format!("{key} >= {l}"),
        |h| format!("{key} < {h}"),
    )
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
        let schema_sql = "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY 1";
        let schemas = self.query(schema_sql).await?;
        let mut meta = Metadata::with_schemas(
            schemas.iter().filter_map(|row| row.first().and_then(text)),
            &self.schemas,
        );
        let key_sql = "\
            SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
            WHERE INDEX_NAME = 'PRIMARY' \
            ORDER BY TABLE_SCHEMA, TABLE_NAME, SEQ_IN_INDEX";
        let key_rows = self.query(key_sql).await?;
        let keys = primary_keys(key_rows.iter().map(|row| {
            let get = |i: usize| row.get(i).and_then(text).unwrap_or_default();
            (get(0), get(1), get(2))
        }));
        let index_sql = "\
            SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
            WHERE SEQ_IN_INDEX = 1";
        let mut indexed: std::collections::HashMap<(String, String), Vec<String>> =
            Default::default();
        for row in self.query(index_sql).await? {
            let get = |i: usize| row.get(i).and_then(text).unwrap_or_default();
            indexed.entry((get(0), get(1))).or_default().push(get(2));
        }
        let json_columns = self.json_checked_columns().await;
        let column_sql = "\
            SELECT c.TABLE_SCHEMA, c.TABLE_NAME, t.TABLE_TYPE, t.TABLE_ROWS, c.COLUMN_NAME, \
                   c.IS_NULLABLE, c.DATA_TYPE, c.COLUMN_TYPE, c.NUMERIC_PRECISION, c.NUMERIC_SCALE, \
                   c.CHARACTER_MAXIMUM_LENGTH, c.COLUMN_COMMENT, t.TABLE_COMMENT \
            FROM information_schema.COLUMNS c \
            JOIN information_schema.TABLES t \
              ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
            ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION";
        let rows = self.query(column_sql).await?;
        let columns = rows.iter().filter_map(|row| {
            let get = |i: usize| row.get(i).and_then(text).unwrap_or_default();
            let schema = get(0);
            if !meta.schemas.contains_key(&schema) {
                return None;
            }
            let table = get(1);
            let view = get(2).eq_ignore_ascii_case("VIEW");
            let rows = if view {
                None
            } else {
                row.get(3).and_then(number)
            };
            let column = get(4);
            let nullable = !get(5).eq_ignore_ascii_case("NO");
            let data_type = get(6);
            let column_type = get(7);
            let precision = row.get(8).and_then(number);
            let scale = row.get(9).and_then(number);
            let char_length = row.get(10).and_then(number);
            let comment = Some(get(11)).filter(|c| !c.is_empty());
            // A view's TABLE_COMMENT is the word VIEW.
            let table_comment = Some(get(12)).filter(|c| !c.is_empty() && !view);
            let ty = MyType::from_mysql(
                &data_type,
                &column_type,
                precision,
                scale,
                self.time_as_interval,
            );
            let json_checked =
                json_columns.contains(&(schema.clone(), table.clone(), column.clone()));
            let pg_type = types::front_end_type(&data_type, &ty, char_length, json_checked);
            if ty.is_text_cast() {
                let full = format!("{schema}.{table}.{column}");
                self.reported.report(&self.name, full, &column_type);
            }
            let table_indexed = indexed
                .get(&(schema.clone(), table.clone()))
                .cloned()
                .unwrap_or_default();
            Some(ColumnRow {
                schema,
                table,
                info: MyTableInfo {
                    view,
                    rows,
                    split_key: None,
                    indexed: table_indexed,
                },
                table_comment,
                column: SourceColumn {
                    column: ColumnMeta { name: column, ty },
                    // A view's columns may be nullable whatever information_schema says.
                    nullable: nullable || view,
                    pg_type,
                    comment,
                },
            })
        });
        let columns: Vec<_> = columns.collect();
        meta.add_tables(columns, &keys, table::table_meta);
        Ok(meta)
    }

    fn table_provider(self: &Arc<Self>, table: Arc<TableMeta>) -> Arc<dyn TableProvider> {
        Arc::new(MySqlTable::new(Arc::clone(self), table))
    }
}

impl Shared {
    async fn query(&self, sql: &str) -> Result<Vec<Vec<Value>>, ConnectorError> {
        self.exec(sql, Vec::new()).await
    }

    /// Runs `sql` with `params` (a prepared statement when there are any) and returns all rows.
    async fn exec(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Vec<Value>>, ConnectorError> {
        let mut conn = self.pool.get().await?;
        let rows: Vec<Row> = if params.is_empty() {
            conn.query(sql).await
        } else {
            conn.exec(sql, params).await
        }
        .map_err(|e| self.pool.source().query_error(&e, sql))?;
        Ok(rows.into_iter().map(Row::unwrap).collect())
    }

    /// MariaDB's json columns: (schema, table, column) of each `json_valid(col)` check (MariaDB
    /// stores json as longtext with that check). Empty where the server has no such view (MySQL's
    /// json is its own type).
    async fn json_checked_columns(&self) -> HashSet<(String, String, String)> {
        let sql = "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE \
                   FROM information_schema.CHECK_CONSTRAINTS \
                   WHERE CHECK_CLAUSE LIKE 'json\\_valid(%'";
        let rows = match self.query(sql).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::debug!("catalog \"{}\": no json_valid checks read: {e}", self.name);
                return HashSet::new();
            }
        };
        rows.iter()
            .filter_map(|row| {
                let get = |i: usize| row.get(i).and_then(text);
                let clause = get(2)?;
                let column = clause
                    .strip_prefix("json_valid(`")?
                    .strip_suffix("`)")?
                    .replace("``", "`");
                Some((get(0)?, get(1)?, column))
            })
            .collect()
    }

    /// The key-range condition of each split of a scan of `table` (`None`: one split, no
    /// condition). Base tables with a single-column integer primary key and at least
    /// `split_min_rows` rows (the TABLE_ROWS estimate, read now) are cut into `splits` ranges of
    /// the key between its MIN and MAX (read now); the first range is open below and the last open
    /// above, so rows added after planning are still read exactly once.
    async fn key_splits(&self, table: &TableMeta) -> Result<Vec<Option<String>>, ConnectorError> {
        let Some(key) = &table.info.split_key else {
            return Ok(vec![None]);
        };
        if self.splits <= 1 {
            return Ok(vec![None]);
        }
        let sql = format!(
            "SELECT (SELECT TABLE_ROWS FROM information_schema.TABLES \
                     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?), MIN({k}), MAX({k}) FROM {}",
            table.quoted_name(&MySqlDialect),
            k = quote_ident(key),
        );
        let params = vec![
            Value::from(table.schema.as_str()),
            Value::from(table.name.as_str()),
        ];
        let rows = self.exec(&sql, params).await?;
        let Some(row) = rows.first() else {
            return Ok(vec![None]);
        };
        let estimate = row.first().and_then(number).unwrap_or(0);
        let (Some(min), Some(max)) = (row.get(1).and_then(integer), row.get(2).and_then(integer))
        else {
            return Ok(vec![None]);
        };
        if estimate < self.split_min_rows || max <= min {
            return Ok(vec![None]);
        }
        Ok(key_ranges(key, min, max, self.splits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(
            key_ranges("id", 1, 100, 4),
            vec![
                Some("(`id` < 25)".to_string()),
                Some("(`id` >= 25 AND `id` < 50)".to_string()),
                Some("(`id` >= 50 AND `id` < 75)".to_string()),
                Some("(`id` >= 75)".to_string()),
            ]
        );
        assert_eq!(key_ranges("id", 5, 6, 4), vec![None]);
        assert_eq!(key_ranges("id", 0, 9, 4).len(), 4);
        let wide = key_ranges("k", 0, i128::from(u64::MAX), 2);
        assert_eq!(wide[1].as_deref(), Some("(`k` >= 9223372036854775807)"));
        assert_eq!(quote_ident("a`b"), "`a``b`");
    }
}
