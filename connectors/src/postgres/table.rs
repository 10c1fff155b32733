//! Table metadata and the [`TableProvider`] of one PostgreSQL table or view.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{Constraints, DataFusionError, Result, Statistics};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;

use super::pushdown::filter_to_sql;
use super::scan::PostgresScanExec;
use super::types::PgType;
use super::{Shared, quote_ident};
use crate::remote_catalog::{ReadColumn, SourceColumn, table_schema};

/// One column of a source table.
#[derive(Debug, Clone)]
pub(crate) struct ColumnMeta {
    pub name: String,
    pub ty: PgType,
}

impl ReadColumn for ColumnMeta {
    fn name(&self) -> &str {
        &self.name
    }

    fn arrow_type(&self) -> DataType {
        self.ty.arrow_type()
    }
}

/// One table, view, materialized view, partitioned or foreign table of the source.
#[derive(Debug)]
pub(crate) struct TableMeta {
    pub schema: String,
    pub name: String,
    /// `pg_class.relkind`: `r` table, `v` view, `m` materialized view, `p` partitioned, `f` foreign.
    pub relkind: char,
    /// `pg_class.reltuples` (-1 when never analyzed).
    pub reltuples: f64,
    pub columns: Vec<ColumnMeta>,
    /// Column comments and front-end types as field metadata, the table comment as schema metadata.
    pub arrow_schema: SchemaRef,
    /// The primary key, if the table has one.
    pub constraints: Option<Constraints>,
}

impl TableMeta {
    pub(crate) fn new(
        schema: String,
        name: String,
        relkind: char,
        reltuples: f64,
        columns: Vec<SourceColumn<ColumnMeta>>,
        comment: Option<String>,
        key: &[String],
    ) -> Self {
        let (arrow_schema, constraints) = table_schema(&columns, comment, key);
        TableMeta {
            schema,
            name,
            relkind,
            reltuples,
            columns: columns.into_iter().map(|c| c.column).collect(),
            arrow_schema: Arc::new(arrow_schema),
            constraints,
        }
    }

    /// The column named `name` (exact match).
    pub(crate) fn column(&self, name: &str) -> Option<&ColumnMeta> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// `"schema"."table"`.
    pub(crate) fn quoted_name(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// Whether rows have a ctid that ranges can split on (plain and materialized tables).
    pub(crate) fn has_ctid(&self) -> bool {
        matches!(self.relkind, 'r' | 'm')
    }
}

/// A source table as a DataFusion table: projection, filter and limit pushdown into one remote SELECT
/// per split.
#[derive(Debug)]
pub(crate) struct PostgresTable {
    shared: Arc<Shared>,
    meta: Arc<TableMeta>,
}

impl PostgresTable {
    pub(crate) fn new(shared: Arc<Shared>, meta: Arc<TableMeta>) -> Self {
        PostgresTable { shared, meta }
    }
}

#[async_trait]
impl TableProvider for PostgresTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.meta.arrow_schema)
    }

    fn table_type(&self) -> TableType {
        match self.meta.relkind {
            'v' => TableType::View,
            _ => TableType::Base,
        }
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.meta.constraints.as_ref()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match filter_to_sql(f, &self.meta) {
                Some(_) => TableProviderFilterPushDown::Exact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.meta.columns.len()).collect(),
        };
        let schema = Arc::new(self.meta.arrow_schema.project(&indices)?);
        let mut types = Vec::with_capacity(indices.len());
        let mut select = Vec::with_capacity(indices.len());
        for &i in &indices {
            let column = self.meta.columns.get(i).ok_or_else(|| {
                DataFusionError::Internal(format!("projection index {i} out of range"))
            })?;
            select.push(column.ty.select_expr(&quote_ident(&column.name)));
            types.push(column.ty.clone());
        }
        let mut conditions = Vec::with_capacity(filters.len());
        for f in filters {
            match filter_to_sql(f, &self.meta) {
                Some(sql) => conditions.push(sql),
                None => {
                    return Err(DataFusionError::Internal(format!(
                        "PostgreSQL scan got a filter it cannot push: {f}"
                    )));
                }
            }
        }
        let splits = self
            .shared
            .ctid_splits(&self.meta)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let sqls = splits
            .iter()
            .map(|split| {
                let mut sql = format!(
                    "SELECT {} FROM {}",
                    select.join(", "),
                    self.meta.quoted_name()
                );
                if select.is_empty() {
                    sql = format!("SELECT FROM {}", self.meta.quoted_name());
                }
                let mut all: Vec<&str> = conditions.iter().map(String::as_str).collect();
                if let Some(range) = split {
                    all.push(range);
                }
                if !all.is_empty() {
                    sql.push_str(" WHERE ");
                    sql.push_str(&all.join(" AND "));
                }
                if let Some(limit) = limit {
                    sql.push_str(&format!(" LIMIT {limit}"));
                }
                sql
            })
            .collect();
        Ok(Arc::new(PostgresScanExec::new(
            Arc::clone(&self.shared.pool),
            schema,
            types,
            sqls,
        )))
    }

    fn statistics(&self) -> Option<Statistics> {
        if self.meta.reltuples < 0.0 || !self.meta.has_ctid() {
            return None;
        }
        // reltuples is an estimate (last ANALYZE / VACUUM).
        let rows = self.meta.reltuples as usize;
        Some(
            Statistics::new_unknown(&self.meta.arrow_schema)
                .with_num_rows(Precision::Inexact(rows)),
        )
    }
}

impl crate::sql_source::SqlTable for PostgresTable {
    fn sql_source(&self) -> Arc<dyn crate::sql_source::SqlSource> {
        Arc::new(super::dialect::PostgresSource {
            shared: Arc::clone(&self.shared),
        })
    }

    fn relation(&self) -> String {
        self.meta.quoted_name()
    }

    fn column(&self, index: usize) -> Option<(String, crate::sql_source::SqlKind)> {
        let column = self.meta.columns.get(index)?;
        Some((
            column.ty.select_expr(&quote_ident(&column.name)),
            super::dialect::kind_of(&column.ty),
        ))
    }

    fn filter_sql(&self, filter: &Expr) -> Option<String> {
        filter_to_sql(filter, &self.meta)
    }
}
