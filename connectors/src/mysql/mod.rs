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
//! split_min_rows = 100000     # tables with fewer rows (TABLE_ROWS estimate) are one split, default 100000
//! connect_timeout_secs = 10   # default 10
//! pool_timeout_secs = 60      # wait for a free connection, default 60
//! time_type = "time"          # "time" (default): `time` columns are Time64, values outside 0..24h
//!                             # fail the query; "interval": `time` columns are intervals (any value)
//! ssl_mode = "prefer"         # disable | prefer (default) | require | verify-full
//! ssl_root_cert = "/etc/tributary/my-ca.pem"  # CA certificates (PEM), needed by verify-full
//! ```
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
mod pool;
mod pushdown;
mod scan;
mod table;
mod types;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::catalog::{CatalogProvider, TableProvider};
use mysql_async::prelude::Queryable;
use mysql_async::{Row, Value};

pub use dialect::MySqlDialect;
pub use scan::MySqlScanExec;

use crate::ConnectorError;
use crate::remote_catalog::{
    MetadataSource, RemoteCatalog, Snapshot, SourceColumn, SslMode, TextColumns, TlsSettings,
};
use pool::{Pool, PoolOptions};
pub(crate) use table::MySqlTable;
use table::{ColumnMeta, TableMeta};
use types::MyType;

/// Default schemas left out when no `schemas` include list is given; `*` at the end matches a prefix.
const DEFAULT_EXCLUDED: [&str; 4] = ["mysql", "information_schema", "performance_schema", "sys"];
/// A lookup of an unknown table refreshes the metadata at most this often.
const REFRESH_INTERVAL: Duration = Duration::from_secs(5);

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
    include: Option<Vec<String>>,
    exclude: Vec<String>,
    splits: usize,
    split_min_rows: u64,
    time_as_interval: bool,
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

const KNOWN_KEYS: [&str; 17] = [
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
    "split_min_rows",
    "connect_timeout_secs",
    "pool_timeout_secs",
    "time_type",
    "ssl_mode",
    "ssl_root_cert",
    "name",
];

impl MySqlConnector {
    /// Builds the connector for catalog `name` from its catalog file (`${ENV}` already substituted).
    ///
    /// Never connects before returning: a source that is down still loads, and its queries fail until
    /// it is back. Errors: [`ConnectorError::Config`] for a missing or invalid key.
    pub async fn from_config(
        name: &str,
        config: &toml::Table,
    ) -> Result<MySqlConnector, ConnectorError> {
        for key in config.keys() {
            if !KNOWN_KEYS.contains(&key.as_str()) {
                tracing::warn!("catalog \"{name}\": unknown key `{key}` ignored");
            }
        }
        let host = required_str(config, "host")?;
        let port = get_int(config, "port", 3306, 1, 65535)?;
        let database = get_str(config, "database")?.filter(|d| !d.is_empty());
        let user = required_str(config, "user")?;
        let password = get_str(config, "password")?;
        let pool_size = get_int(config, "pool_size", 4, 1, 1024)?;
        let splits = get_int(config, "splits", 4, 1, 4096)?;
        let split_min_rows = get_int(config, "split_min_rows", 100_000, 0, i64::MAX)?;
        let connect_timeout = get_int(config, "connect_timeout_secs", 10, 1, 3600)?;
        let pool_timeout = get_int(config, "pool_timeout_secs", 60, 1, 86_400)?;
        let time_as_interval = match get_str(config, "time_type")?.as_deref() {
            None | Some("time") => false,
            Some("interval") => true,
            Some(_) => {
                return Err(config_error(
                    "time_type",
                    "must be \"time\" or \"interval\"",
                ));
            }
        };
        let include = match get_list(config, "schemas")? {
            Some(list) => Some(list),
            None => database.clone().map(|d| vec![d]),
        };
        let exclude = get_list(config, "exclude_schemas")?
            .unwrap_or_else(|| DEFAULT_EXCLUDED.iter().map(|s| s.to_string()).collect());
        let tls = TlsSettings::from_config(config, SslMode::Prefer)?;
        if tls.mode == SslMode::VerifyCa {
            // mysql_async skips the host name check by matching an error text rustls no longer
            // prints, so it would check the name anyway.
            return Err(config_error(
                "ssl_mode",
                "\"verify-ca\" is not available for mysql catalogs (the MySQL client library \
                 cannot skip only the host name check); use \"verify-full\" or \"require\"",
            ));
        }

        // The ranges were checked above, so the conversions cannot fail.
        let as_usize = |v: i64| usize::try_from(v).unwrap_or(1);
        let pool = Pool::new(
            name,
            PoolOptions {
                host,
                port: u16::try_from(port).unwrap_or(3306),
                database,
                user,
                password,
                size: as_usize(pool_size),
                connect_timeout: Duration::from_secs(connect_timeout.unsigned_abs()),
                acquire_timeout: Duration::from_secs(pool_timeout.unsigned_abs()),
                tls,
            },
        );
        let shared = Arc::new(Shared {
            name: name.to_string(),
            pool: Arc::new(pool),
            include,
            exclude,
            splits: as_usize(splits),
            split_min_rows: split_min_rows.unsigned_abs(),
            time_as_interval,
            metadata: parking_lot::RwLock::new(None),
            loading: tokio::sync::Mutex::new(None),
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

impl crate::Connector for MySqlConnector {
    fn kind(&self) -> &'static str {
        "mysql"
    }

    fn catalog(&self) -> Arc<dyn CatalogProvider> {
        Arc::clone(&self.catalog) as Arc<dyn CatalogProvider>
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
    if bounds.is_empty() {
        return vec![None];
    }
    let key = quote_ident(key);
    let mut splits = Vec::with_capacity(bounds.len() + 1);
    for i in 0..=bounds.len() {
        let low = i.checked_sub(1).map(|j| bounds[j]);
        let high = bounds.get(i).copied();
        let condition = match (low, high) {
            (None, Some(h)) => format!("({key} < {h})"),
            (Some(l), Some(h)) => format!("({key} >= {l} AND {key} < {h})"),
            (Some(l), None) => format!("({key} >= {l})"),
            (None, None) => return vec![None],
        };
        splits.push(Some(condition));
    }
    splits
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
        Arc::new(MySqlTable::new(Arc::clone(self), table))
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

    async fn query(&self, sql: &str) -> Result<Vec<Vec<Value>>, ConnectorError> {
        self.exec(sql, Vec::new()).await
    }

    /// Runs `sql` with `params` (a prepared statement when there are any) and returns all rows.
    async fn exec(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Vec<Value>>, ConnectorError> {
        let mut conn = self.pool.get().await?;
        let rows: Vec<Row> = if params.is_empty() {
            conn.conn().query(sql).await
        } else {
            conn.conn().exec(sql, params).await
        }
        .map_err(|e| self.pool.query_error(&e, sql))?;
        Ok(rows.into_iter().map(Row::unwrap).collect())
    }

    async fn fetch(&self) -> Result<Metadata, ConnectorError> {
        let schema_sql = "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY 1";
        let mut meta = Metadata::default();
        for row in self.query(schema_sql).await? {
            if let Some(schema) = row.first().and_then(text)
                && self.schema_included(&schema)
            {
                meta.schemas.insert(schema, BTreeMap::new());
            }
        }
        let key_sql = "\
            SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
            WHERE INDEX_NAME = 'PRIMARY' \
            ORDER BY TABLE_SCHEMA, TABLE_NAME, SEQ_IN_INDEX";
        let mut keys: HashMap<(String, String), Vec<String>> = HashMap::new();
        for row in self.query(key_sql).await? {
            let get = |i: usize| row.get(i).and_then(text).unwrap_or_default();
            keys.entry((get(0), get(1))).or_default().push(get(2));
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
        struct Pending {
            schema: String,
            table: String,
            view: bool,
            rows: Option<u64>,
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
                    p.view,
                    p.rows,
                    p.columns,
                    p.comment,
                    key,
                );
                tables.insert(p.table, Arc::new(table));
            }
        };
        let mut current: Option<Pending> = None;
        for row in self.query(column_sql).await? {
            let get = |i: usize| row.get(i).and_then(text).unwrap_or_default();
            let schema = get(0);
            if !meta.schemas.contains_key(&schema) {
                continue;
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
            let same = current
                .as_ref()
                .is_some_and(|p| p.schema == schema && p.table == table);
            if !same && let Some(p) = current.take() {
                finish(&mut meta, p);
            }
            let entry = current.get_or_insert_with(|| Pending {
                schema,
                table,
                view,
                rows,
                comment: table_comment,
                columns: Vec::new(),
            });
            // A view's columns may be nullable whatever information_schema says.
            let nullable = nullable || view;
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
        let Some(key) = &table.split_key else {
            return Ok(vec![None]);
        };
        if self.splits <= 1 {
            return Ok(vec![None]);
        }
        let sql = format!(
            "SELECT (SELECT TABLE_ROWS FROM information_schema.TABLES \
                     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?), MIN({k}), MAX({k}) FROM {}",
            table.quoted_name(),
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
