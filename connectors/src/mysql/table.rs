//! Table metadata of one MySQL table or view, and what its provider (the shared
//! [`SqlTableProvider`]) needs of the catalog.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::Statistics;
use datafusion::common::stats::Precision;
use datafusion::logical_expr::TableType;

use super::Shared;
use super::dialect::MySqlDialect;
use super::pool::Pool;
use super::scan::MySqlReader;
use super::types::MyType;
use crate::ConnectorError;
use crate::remote_catalog::{RemoteTable, TableRows};
use crate::sql_source::{Estimate, SqlDialect};
use crate::sql_table::{SqlCatalog, SqlTableProvider};

/// What the connector keeps of a table besides its columns.
#[derive(Debug)]
pub(crate) struct MyTableInfo {
    /// Whether this is a view (`TABLE_TYPE = 'VIEW'`).
    pub view: bool,
    /// `information_schema.TABLES.TABLE_ROWS` (an estimate for InnoDB; none for views).
    pub rows: Option<u64>,
    /// The single-column integer primary key that splits range over, if any.
    pub split_key: Option<String>,
    /// Columns that lead an index (`SEQ_IN_INDEX = 1` in `information_schema.STATISTICS`).
    pub indexed: Vec<String>,
}

/// One table or view of the source.
pub(crate) type TableMeta = RemoteTable<MyType, MyTableInfo>;

/// The table of `rows` with primary key `key` (none for a view), and its split key.
pub(crate) fn table_meta(rows: TableRows<MyTableInfo, MyType>, key: &[String]) -> TableMeta {
    let view = rows.info.view;
    let key = if view { &[] } else { key };
    let mut table = TableMeta::new(rows, key);
    table.info.split_key = match key {
        [key]
            if !view
                && table
                    .columns
                    .iter()
                    .any(|c| c.name == *key && c.ty.is_integer()) =>
        {
            Some(key.clone())
        }
        _ => None,
    };
    table
}

/// A MySQL table as a DataFusion table.
pub(crate) type MySqlTable = SqlTableProvider<Shared>;

#[async_trait]
impl SqlCatalog for Shared {
    type Type = MyType;
    type Info = MyTableInfo;
    type Reader = MySqlReader;
    type Writer = super::write::MyWriter;
    const SOURCE: &'static str = "MySQL";

    fn name(&self) -> &str {
        &self.name
    }

    fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    fn dialect(&self) -> &'static dyn SqlDialect {
        &MySqlDialect
    }

    async fn splits(&self, table: &TableMeta) -> Result<Vec<Option<String>>, ConnectorError> {
        self.key_splits(table).await
    }

    fn table_type(table: &TableMeta) -> TableType {
        if table.info.view {
            TableType::View
        } else {
            TableType::Base
        }
    }

    fn join_pushdown(&self) -> crate::sql_source::JoinPushdown {
        self.join_pushdown
    }

    fn indexed(table: &TableMeta, index: usize) -> bool {
        table
            .columns
            .get(index)
            .is_some_and(|c| table.info.indexed.contains(&c.name))
    }

    /// `EXPLAIN FORMAT=JSON` of `sql` (planned, not run), costed as a nested loop
    /// ([`super::explain`]).
    async fn estimate(&self, sql: &str) -> Result<Option<Estimate>, ConnectorError> {
        use mysql_async::prelude::Queryable;
        let explain = format!("EXPLAIN FORMAT=JSON {sql}");
        let mut conn = self.pool.get().await?;
        // Planning gives up on a slow answer by dropping this future: the connection must not go
        // back to the pool mid-result.
        conn.set_reusable(false);
        let rows: Vec<mysql_async::Row> = conn
            .query(&explain)
            .await
            .map_err(|e| self.pool.source().query_error(&e, &explain))?;
        conn.set_reusable(true);
        Ok(rows
            .into_iter()
            .next()
            .map(mysql_async::Row::unwrap)
            .and_then(|row| row.first().and_then(super::text))
            .and_then(|json| super::explain::plan_estimate(&json)))
    }

    fn statistics(table: &TableMeta) -> Option<Statistics> {
        let rows = table.info.rows?;
        // TABLE_ROWS is an estimate for InnoDB.
        Some(
            Statistics::new_unknown(&table.arrow_schema)
                .with_num_rows(Precision::Inexact(usize::try_from(rows).ok()?)),
        )
    }
}
