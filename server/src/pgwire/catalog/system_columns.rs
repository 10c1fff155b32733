//! PostgreSQL's system column `tableoid` on the `pg_catalog` tables: psql's `\dd` and `\dL` join
//! `pg_description` on `d.classoid = x.tableoid`. It is the table's own OID on every row; here a
//! column after the table's others (DataFusion has no hidden columns, so `SELECT *` shows it too).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::common::metadata::FieldMetadata;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion_pg_catalog::pg_catalog::oid_field::{kind, oid_field};

/// The system column's name.
const TABLEOID: &str = "tableoid";

/// A `pg_catalog` table with `tableoid` added as its last column.
#[derive(Debug)]
pub struct WithTableOid {
    inner: Arc<dyn TableProvider>,
    schema: SchemaRef,
    oid: i32,
}

impl WithTableOid {
    /// `inner` with a `tableoid` column of value `oid` (unchanged if it has one already).
    pub fn wrap(inner: Arc<dyn TableProvider>, oid: u32) -> Result<Arc<dyn TableProvider>> {
        let inner_schema = inner.schema();
        if inner_schema.field_with_name(TABLEOID).is_ok() {
            return Ok(inner);
        }
        let mut fields: Vec<Field> = inner_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(oid_field(TABLEOID, kind::OID, false));
        let schema = Arc::new(Schema::new_with_metadata(
            fields,
            inner_schema.metadata().clone(),
        ));
        let oid = i32::try_from(oid).map_err(|_| {
            datafusion::error::DataFusionError::Internal(format!("table oid {oid} out of range"))
        })?;
        Ok(Arc::new(Self { inner, schema, oid }))
    }

    fn literal(&self) -> Literal {
        let field = self.schema.field(self.schema.fields().len() - 1);
        Literal::new_with_metadata(
            ScalarValue::Int32(Some(self.oid)),
            Some(FieldMetadata::from(field.metadata())),
        )
    }
}

#[async_trait]
impl TableProvider for WithTableOid {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    /// Scans the inner table for the other columns and projects `tableoid` as a constant where it
    /// is asked for. Filters are not pushed (the catalog tables apply none themselves).
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let tableoid = self.schema.fields().len() - 1;
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..=tableoid).collect(),
        };
        let inner_projection: Vec<usize> =
            wanted.iter().copied().filter(|i| *i != tableoid).collect();
        let input = self
            .inner
            .scan(state, Some(&inner_projection), &[], limit)
            .await?;
        if !wanted.contains(&tableoid) {
            return Ok(input);
        }
        let input_schema = input.schema();
        let mut next = 0;
        let exprs: Vec<ProjectionExpr> = wanted
            .iter()
            .map(|i| {
                if *i == tableoid {
                    ProjectionExpr {
                        expr: Arc::new(self.literal()),
                        alias: TABLEOID.to_string(),
                    }
                } else {
                    let name = input_schema.field(next).name().clone();
                    let expr = ProjectionExpr {
                        expr: Arc::new(Column::new(&name, next)),
                        alias: name,
                    };
                    next += 1;
                    expr
                }
            })
            .collect();
        Ok(Arc::new(ProjectionExec::try_new(exprs, input)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::DataType;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn tableoid_is_the_tables_oid_on_every_row() {
        let schema = Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec!["a", "b"]))],
        )
        .unwrap();
        let table = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
        let ctx = SessionContext::new();
        ctx.register_table("t", WithTableOid::wrap(Arc::new(table), 2612).unwrap())
            .unwrap();
        for sql in [
            "select tableoid from t",
            "select name, tableoid from t where tableoid = 2612 order by name",
            "select count(*) from t where tableoid = 2612",
        ] {
            let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            assert!(rows > 0, "{sql}");
            if sql.starts_with("select tableoid") {
                let oids = batches[0]
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int32Array>()
                    .unwrap();
                assert!(oids.iter().all(|o| o == Some(2612)));
            }
        }
        let star = ctx.sql("select * from t").await.unwrap().collect().await;
        assert_eq!(star.unwrap()[0].num_columns(), 2);
    }
}
