//! The table provider of a SQL source's table (`postgres`, `mysql`): projection, filter and limit
//! pushdown into one remote SELECT per split, and the [`SqlTable`] / [`SqlSource`] the planner
//! pushes whole subplans through.
//!
//! A connector plugs in with three small traits: [`ColumnType`] (its type mapping: Arrow type, how
//! a column is selected, which comparisons keep their meaning), [`SqlCatalog`] (its dialect, its
//! pool, how a table splits) and [`SqlReader`] (its client: how a split's statement is run and its
//! rows decoded, see [`crate::sql_scan`]).

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Constraints, DataFusionError, Result, ScalarValue, Statistics};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;

use crate::ConnectorError;
use crate::remote_catalog::{ColumnMeta, MetadataSource, RemoteTable, SourceColumn, table_schema};
use crate::sql_filter::filter_to_sql;
use crate::sql_scan::{SqlReader, SqlScanExec};
use crate::sql_source::{
    Estimate, READ_ONLY_MARKER, RemoteStatement, SqlDialect, SqlKind, SqlSource, SqlTable,
};
use crate::sql_write::{SqlWriteSpec, SqlWriter, insert_plan};

/// How a SQL source's column is read (the connector's type mapping), as plain data so a scan can
/// be shipped to another process.
pub trait ColumnType:
    Debug + Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static
{
    /// The Arrow type of the column.
    fn arrow_type(&self) -> DataType;

    /// The expression of the remote SELECT list reading the column `quoted` (already quoted).
    fn select_expr(&self, quoted: &str) -> String;

    /// What operations on the value keep their meaning at the source.
    fn sql_kind(&self) -> SqlKind;

    /// How a pushed statement's column of Arrow type `ty` is read, if it can be.
    fn from_arrow(ty: &DataType) -> Option<Self>;

    /// The SQL literal of `value` compared with a column of this type, if the comparison
    /// (`ordered`: `<`, `>`, BETWEEN; else `=`, `<>`, IN) means the same at the source. NULL
    /// literals are never pushed.
    fn filter_literal(&self, value: &ScalarValue, ordered: bool) -> Option<String>;

    /// Whether a column of this type is a predicate on its own (a bool column).
    fn is_predicate(&self) -> bool {
        false
    }
}

/// One catalog of a SQL source, as its tables' providers need it: implemented by the connector's
/// shared state (settings, pool, cached metadata).
#[async_trait]
pub(crate) trait SqlCatalog:
    MetadataSource<Table = RemoteTable<Self::Type, Self::Info>>
{
    /// How the source's columns are read.
    type Type: ColumnType;
    /// How the source's scans read their statements.
    type Reader: SqlReader<Type = Self::Type>;
    /// How `INSERT` writes into the source, through the same pool.
    type Writer: SqlWriter<Pool = <Self::Reader as SqlReader>::Pool>;
    /// What the connector keeps of a table besides its columns.
    type Info: Debug + Send + Sync + 'static;
    /// The source's name in messages (`PostgreSQL`).
    const SOURCE: &'static str;

    /// The catalog name.
    fn name(&self) -> &str;

    /// The source's dialect.
    fn dialect(&self) -> &'static dyn SqlDialect;

    /// The extra condition of each split of a scan of `table` (`None`: no condition), read at
    /// planning time.
    async fn splits(&self, table: &Self::Table) -> Result<Vec<Option<String>>, ConnectorError>;

    /// The catalog's connections.
    fn pool(&self) -> &Arc<<Self::Reader as SqlReader>::Pool>;

    /// Whether `table` is a view.
    fn table_type(table: &Self::Table) -> TableType;

    /// The estimated statistics of `table`, if the source keeps any.
    fn statistics(table: &Self::Table) -> Option<Statistics>;

    /// The catalog's `join_pushdown` strategy.
    fn join_pushdown(&self) -> crate::sql_source::JoinPushdown;

    /// Whether column `index` of `table` leads an index at the source.
    fn indexed(_table: &Self::Table, _index: usize) -> bool {
        false
    }

    /// The output columns of query `sql` as the source describes it without running it; `None`
    /// when the source does not take statement text ([`SqlSource::statement`]).
    async fn describe(
        &self,
        _sql: &str,
    ) -> Result<Option<Vec<SourceColumn<ColumnMeta<Self::Type>>>>, ConnectorError> {
        Ok(None)
    }

    /// The source planner's estimate of query `sql` ([`SqlSource::estimate`]); `None` when the
    /// source gives none.
    async fn estimate(&self, _sql: &str) -> Result<Option<Estimate>, ConnectorError> {
        Ok(None)
    }
}

/// The scan of catalog `shared` running `sqls` (one per split), reading columns `types` as `schema`.
fn scan<S: SqlCatalog>(
    shared: &S,
    schema: SchemaRef,
    types: Vec<S::Type>,
    sqls: Vec<String>,
) -> Arc<dyn ExecutionPlan> {
    Arc::new(SqlScanExec::<S::Reader>::new(
        Arc::clone(shared.pool()),
        schema,
        types,
        sqls,
    ))
}

/// A source table as a DataFusion table: projection, filter and limit pushdown into one remote
/// SELECT per split.
#[derive(Debug)]
pub(crate) struct SqlTableProvider<S: SqlCatalog> {
    shared: Arc<S>,
    meta: Arc<S::Table>,
}

impl<S: SqlCatalog> SqlTableProvider<S> {
    pub(crate) fn new(shared: Arc<S>, meta: Arc<S::Table>) -> Self {
        SqlTableProvider { shared, meta }
    }

    fn filter_sql(&self, filter: &Expr) -> Option<String> {
        filter_to_sql(filter, &self.meta, self.shared.dialect())
    }
}

#[async_trait]
impl<S: SqlCatalog> TableProvider for SqlTableProvider<S> {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.meta.arrow_schema)
    }

    fn table_type(&self) -> TableType {
        S::table_type(&self.meta)
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
            .map(|f| match self.filter_sql(f) {
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
        let dialect = self.shared.dialect();
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
            select.push(column.ty.select_expr(&dialect.quote_ident(&column.name)));
            types.push(column.ty.clone());
        }
        let mut conditions = Vec::with_capacity(filters.len());
        for f in filters {
            match self.filter_sql(f) {
                Some(sql) => conditions.push(sql),
                None => {
                    return Err(DataFusionError::Internal(format!(
                        "{} scan got a filter it cannot push: {f}",
                        S::SOURCE
                    )));
                }
            }
        }
        let splits = self
            .shared
            .splits(&self.meta)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        // Without `SELECT FROM t` (MySQL), a scan reading no column (count(*)) selects a constant,
        // and the reader builds batches of that many rows and no columns.
        let select = if select.is_empty() && !dialect.empty_select() {
            "SELECT 1".to_string()
        } else if select.is_empty() {
            "SELECT".to_string()
        } else {
            format!("SELECT {}", select.join(", "))
        };
        let relation = self.meta.quoted_name(dialect);
        let sqls = splits
            .iter()
            .map(|split| {
                let mut sql = format!("{select} FROM {relation}");
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
        Ok(scan(self.shared.as_ref(), schema, types, sqls))
    }

    fn statistics(&self) -> Option<Statistics> {
        S::statistics(&self.meta)
    }

    /// `INSERT INTO` the table (every column, in order), published in one source transaction: see
    /// [`crate::sql_write`]. Only appends (`INSERT OVERWRITE` and `REPLACE INTO` are refused).
    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return Err(DataFusionError::NotImplemented(format!(
                "{insert_op} into a {} table (only INSERT INTO, which appends)",
                S::SOURCE
            )));
        }
        if let Some(nested) = self
            .meta
            .arrow_schema
            .fields()
            .iter()
            .find(|f| f.data_type().is_nested())
        {
            return Err(DataFusionError::NotImplemented(format!(
                "INSERT into a {} table with column `{}` of type {} (arrays and records are not \
                 written)",
                S::SOURCE,
                nested.name(),
                nested.data_type()
            )));
        }
        let spec = SqlWriteSpec {
            catalog: self.shared.name().to_string(),
            schema: self.meta.schema.clone(),
            table: self.meta.name.clone(),
            columns: self.meta.columns.iter().map(|c| c.name.clone()).collect(),
        };
        Ok(insert_plan::<S::Writer>(
            spec,
            Arc::clone(self.shared.pool()),
            input,
        ))
    }
}

impl<S: SqlCatalog> SqlTable for SqlTableProvider<S> {
    fn sql_source(&self) -> Arc<dyn SqlSource> {
        Arc::new(RemoteSqlSource {
            shared: Arc::clone(&self.shared),
        })
    }

    fn relation(&self) -> String {
        self.meta.quoted_name(self.shared.dialect())
    }

    fn column(&self, index: usize) -> Option<(String, SqlKind)> {
        let column = self.meta.columns.get(index)?;
        let quoted = self.shared.dialect().quote_ident(&column.name);
        Some((column.ty.select_expr(&quoted), column.ty.sql_kind()))
    }

    fn filter_sql(&self, filter: &Expr) -> Option<String> {
        SqlTableProvider::filter_sql(self, filter)
    }

    fn indexed(&self, index: usize) -> bool {
        S::indexed(&self.meta, index)
    }
}

/// One catalog of a SQL source as a [`SqlSource`].
#[derive(Debug)]
pub(crate) struct RemoteSqlSource<S> {
    shared: Arc<S>,
}

#[async_trait]
impl<S: SqlCatalog> SqlSource for RemoteSqlSource<S> {
    fn id(&self) -> String {
        format!("{}:{}", S::Reader::KIND, self.shared.name())
    }

    fn dialect(&self) -> &dyn SqlDialect {
        self.shared.dialect()
    }

    fn query_scan(&self, sql: String, schema: SchemaRef) -> Result<Arc<dyn ExecutionPlan>> {
        let types = schema
            .fields()
            .iter()
            .map(|f| {
                S::Type::from_arrow(f.data_type()).ok_or_else(|| {
                    DataFusionError::Internal(format!(
                        "pushed {} query has a column of unsupported type {}",
                        S::SOURCE,
                        f.data_type()
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(scan(self.shared.as_ref(), schema, types, vec![sql]))
    }

    fn join_pushdown(&self) -> crate::sql_source::JoinPushdown {
        self.shared.join_pushdown()
    }

    async fn estimate(&self, sql: &str) -> Result<Option<Estimate>> {
        self.shared
            .estimate(sql)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))
    }

    async fn statement(&self, sql: &str, ordered: bool) -> Result<Option<RemoteStatement>> {
        let Some(mut columns) = self
            .shared
            .describe(sql)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
        else {
            return Ok(None);
        };
        if columns.is_empty() {
            return Ok(None);
        }
        // The statement's own names are given back above the scan; the scan reads c0, c1, ...
        let names: Vec<String> = columns
            .iter_mut()
            .enumerate()
            .map(|(i, c)| std::mem::replace(&mut c.column.name, format!("c{i}")))
            .collect();
        let d = self.shared.dialect();
        let aliases: Vec<String> = columns
            .iter()
            .map(|c| d.quote_ident(&c.column.name))
            .collect();
        let mut items: Vec<String> = columns
            .iter()
            .zip(&aliases)
            .map(|(c, alias)| {
                let read = c.column.ty.select_expr(&format!("q.{alias}"));
                format!("{read} AS {alias}")
            })
            .collect();
        let (mut schema, _) = table_schema(&columns, None, &[]);
        if ordered {
            items.push(format!("row_number() OVER () AS {}", d.quote_ident("ord")));
            let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
            fields.push(Arc::new(Field::new("ord", DataType::Int64, false)));
            schema = Schema::new(fields);
        }
        Ok(Some(RemoteStatement {
            sql: format!(
                "{READ_ONLY_MARKER}SELECT {} FROM ({sql}) AS q({})",
                items.join(", "),
                aliases.join(", ")
            ),
            schema: Arc::new(schema),
            names,
        }))
    }
}

/// The conditions of the splits between `bounds` (ascending): the first open below, the last open
/// above, each written with `low(bound)` / `high(bound)` (`None`: one split, no condition).
pub(crate) fn range_conditions<B: Copy>(
    bounds: &[B],
    low: impl Fn(B) -> String,
    high: impl Fn(B) -> String,
) -> Vec<Option<String>> {
    if bounds.is_empty() {
        return vec![None];
    }
    (0..=bounds.len())
        .map(|i| {
            let l = i.checked_sub(1).map(|j| low(bounds[j]));
            let h = bounds.get(i).map(|b| high(*b));
            match (l, h) {
                (Some(l), Some(h)) => Some(format!("({l} AND {h})")),
                (Some(c), None) | (None, Some(c)) => Some(format!("({c})")),
                (None, None) => None,
            }
        })
        .collect()
}
