//! Table metadata of one PostgreSQL table or view, and what its provider (the shared
//! [`SqlTableProvider`]) needs of the catalog.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::Statistics;
use datafusion::common::stats::Precision;
use datafusion::logical_expr::TableType;

use super::Shared;
use super::dialect::PostgresDialect;
use super::pool::Pool;
use super::scan::PostgresReader;
use super::types::PgType;
use crate::ConnectorError;
use crate::remote_catalog::{ColumnMeta, RemoteTable, SourceColumn};
use crate::sql_source::SqlDialect;
use crate::sql_table::{SqlCatalog, SqlTableProvider};

/// What the connector keeps of a table besides its columns.
#[derive(Debug)]
pub(crate) struct PgTableInfo {
    /// `pg_class.relkind`: `r` table, `v` view, `m` materialized view, `p` partitioned, `f` foreign.
    pub relkind: char,
    /// `pg_class.reltuples` (-1 when never analyzed).
    pub reltuples: f64,
}

impl PgTableInfo {
    /// Whether rows have a ctid that ranges can split on (plain and materialized tables).
    pub(crate) fn has_ctid(&self) -> bool {
        matches!(self.relkind, 'r' | 'm')
    }
}

/// One table, view, materialized view, partitioned or foreign table of the source.
pub(crate) type TableMeta = RemoteTable<PgType, PgTableInfo>;

/// A PostgreSQL table as a DataFusion table.
pub(crate) type PostgresTable = SqlTableProvider<Shared>;

#[async_trait]
impl SqlCatalog for Shared {
    type Type = PgType;
    type Info = PgTableInfo;
    type Reader = PostgresReader;
    type Writer = super::write::PgWriter;
    const SOURCE: &'static str = "PostgreSQL";

    fn name(&self) -> &str {
        &self.name
    }

    fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    fn dialect(&self) -> &'static dyn SqlDialect {
        &PostgresDialect
    }

    async fn splits(&self, table: &TableMeta) -> Result<Vec<Option<String>>, ConnectorError> {
        self.ctid_splits(table).await
    }

    fn table_type(table: &TableMeta) -> TableType {
        match table.info.relkind {
            'v' => TableType::View,
            _ => TableType::Base,
        }
    }

    fn join_pushdown(&self) -> crate::sql_source::JoinPushdown {
        self.join_pushdown
    }

    /// A Parse/Describe of `sql` on a pooled connection (the prepared statement is closed when
    /// dropped). A domain is read as its base type, an array, enum, range or composite as text.
    async fn describe(
        &self,
        sql: &str,
    ) -> Result<Option<Vec<SourceColumn<ColumnMeta<PgType>>>>, ConnectorError> {
        use tokio_postgres::types::Kind;
        let client = self.pool.get().await?;
        let statement = client
            .prepare(sql)
            .await
            .map_err(|e| self.pool.source().query_error(&e, sql))?;
        let columns = statement
            .columns()
            .iter()
            .map(|c| {
                let oid = match c.type_().kind() {
                    Kind::Domain(base) => base.oid(),
                    Kind::Simple | Kind::Pseudo => c.type_().oid(),
                    _ => 0, // read as text
                };
                let typmod = c.type_modifier();
                let ty = PgType::from_pg(oid, typmod, None, 0);
                SourceColumn {
                    pg_type: super::types::front_end_type(oid, typmod, &ty),
                    column: ColumnMeta {
                        name: c.name().to_string(),
                        ty,
                    },
                    nullable: true,
                    comment: None,
                }
            })
            .collect();
        Ok(Some(columns))
    }

    fn statistics(table: &TableMeta) -> Option<Statistics> {
        if table.info.reltuples < 0.0 || !table.info.has_ctid() {
            return None;
        }
        // reltuples is an estimate (last ANALYZE / VACUUM).
        let rows = table.info.reltuples as usize;
        Some(Statistics::new_unknown(&table.arrow_schema).with_num_rows(Precision::Inexact(rows)))
    }
}
