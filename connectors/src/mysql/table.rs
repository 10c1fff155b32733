//! Table metadata and the [`TableProvider`] of one MySQL table or view.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{Constraints, DataFusionError, Result, Statistics};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;

use super::pushdown::filter_to_sql;
use super::scan::MySqlScanExec;
use super::types::MyType;
use super::{Shared, quote_ident};
use crate::remote_catalog::{ReadColumn, SourceColumn, table_schema};

/// One column of a source table.
#[derive(Debug, Clone)]
pub(crate) struct ColumnMeta {
    pub name: String,
    pub ty: MyType,
}

impl ReadColumn for ColumnMeta {
    fn name(&self) -> &str {
        &self.name
    }

    fn arrow_type(&self) -> DataType {
        self.ty.arrow_type()
    }
}

/// One table or view of the source.
#[derive(Debug)]
pub(crate) struct TableMeta {
    pub schema: String,
    pub name: String,
    /// Whether this is a view (`TABLE_TYPE = 'VIEW'`).
    pub view: bool,
    /// `information_schema.TABLES.TABLE_ROWS` (an estimate for InnoDB; none for views).
    pub rows: Option<u64>,
    /// The single-column integer primary key that splits range over, if any.
    pub split_key: Option<String>,
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
        view: bool,
        rows: Option<u64>,
        columns: Vec<SourceColumn<ColumnMeta>>,
        comment: Option<String>,
        key: &[String],
    ) -> Self {
        let key = if view { &[] } else { key };
        let (arrow_schema, constraints) = table_schema(&columns, comment, key);
        let columns: Vec<ColumnMeta> = columns.into_iter().map(|c| c.column).collect();
        let split_key = match key {
            [key] if !view && columns.iter().any(|c| c.name == *key && c.ty.is_integer()) => {
                Some(key.clone())
            }
            _ => None,
        };
        TableMeta {
            schema,
            name,
            view,
            rows,
            split_key,
            columns,
            arrow_schema: Arc::new(arrow_schema),
            constraints,
        }
    }

    /// The column named `name` (exact match).
    pub(crate) fn column(&self, name: &str) -> Option<&ColumnMeta> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// `` `schema`.`table` ``.
    pub(crate) fn quoted_name(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// A source table as a DataFusion table: projection, filter and limit pushdown into one remote SELECT
/// per split.
#[derive(Debug)]
pub(crate) struct MySqlTable {
    pub(crate) shared: Arc<Shared>,
    pub(crate) meta: Arc<TableMeta>,
}

impl MySqlTable {
    pub(crate) fn new(shared: Arc<Shared>, meta: Arc<TableMeta>) -> Self {
        MySqlTable { shared, meta }
    }
}

#[async_trait]
impl TableProvider for MySqlTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.meta.arrow_schema)
    }

    fn table_type(&self) -> TableType {
        if self.meta.view {
            TableType::View
        } else {
            TableType::Base
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
                        "MySQL scan got a filter it cannot push: {f}"
                    )));
                }
            }
        }
        let splits = self
            .shared
            .key_splits(&self.meta)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        // MySQL has no `SELECT FROM t`: a scan reading no column (count(*)) selects a constant,
        // and the reader builds batches of that many rows and no columns.
        let select_list = if select.is_empty() {
            "1".to_string()
        } else {
            select.join(", ")
        };
        let sqls = splits
            .iter()
            .map(|split| {
                let mut sql = format!("SELECT {select_list} FROM {}", self.meta.quoted_name());
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
        Ok(Arc::new(MySqlScanExec::new(
            Arc::clone(&self.shared.pool),
            schema,
            types,
            sqls,
        )))
    }

    fn statistics(&self) -> Option<Statistics> {
        let rows = self.meta.rows?;
        // TABLE_ROWS is an estimate for InnoDB.
        Some(
            Statistics::new_unknown(&self.meta.arrow_schema)
                .with_num_rows(Precision::Inexact(usize::try_from(rows).ok()?)),
        )
    }
}
