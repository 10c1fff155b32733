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
use crate::sql_source::{Estimate, SqlDialect};
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

    /// `EXPLAIN (FORMAT JSON)` of `sql` (planned, not run): the top plan node's `Plan Rows`, as
    /// cost the bytes it sends, `Plan Rows` x `Plan Width`, and as work its `Total Cost`.
    /// PostgreSQL hashes or merges large joins, so what a pushed join costs beyond its inputs is
    /// mostly its output's size.
    async fn estimate(&self, sql: &str) -> Result<Option<Estimate>, ConnectorError> {
        let explain = format!("EXPLAIN (FORMAT JSON) {sql}");
        let client = self.pool.get().await?;
        let messages = client
            .simple_query(&explain)
            .await
            .map_err(|e| self.pool.source().query_error(&e, &explain))?;
        let text = messages.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0),
            _ => None,
        });
        Ok(text.and_then(plan_estimate))
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

/// The estimate of PostgreSQL's `EXPLAIN (FORMAT JSON)` output `json` (`[{"Plan": {"Plan Rows":
/// 10, "Plan Width": 36, "Total Cost": 40.2, ...}}]`): rows, bytes sent as cost, total cost as
/// work. `None` if it has no such plan.
fn plan_estimate(json: &str) -> Option<Estimate> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let plan = value.get(0)?.get("Plan")?;
    let rows = plan.get("Plan Rows")?.as_f64()?;
    let width = plan.get("Plan Width")?.as_f64()?;
    Some(Estimate {
        rows,
        cost: rows * width.max(1.0),
        work: plan.get("Total Cost")?.as_f64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explain_json_gives_rows_and_bytes() {
        let json = r#"[{"Plan": {"Node Type": "Hash Join", "Startup Cost": 1.5,
            "Total Cost": 40.2, "Plan Rows": 120, "Plan Width": 36}}]"#;
        assert_eq!(
            plan_estimate(json),
            Some(Estimate {
                rows: 120.0,
                cost: 4320.0,
                work: 40.2
            })
        );
        assert_eq!(plan_estimate("[]"), None);
        assert_eq!(plan_estimate("not json"), None);
    }
}
