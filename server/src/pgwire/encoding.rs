//! Type encoding glue, all through `arrow-pg`: Arrow schemas to pgwire fields, record batches to
//! DataRows (text or binary per column), and bind parameters to DataFusion values.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_pg::datatypes::df::deserialize_parameters;
use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{Cast, Expr, LogicalPlan, TryCast};
use futures::{Stream, StreamExt, stream};
use pgwire::api::Type;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::results::{DataRowEncoder, FieldInfo, QueryResponse};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::types::format::FormatOptions;

use super::cancel::RunningGuard;
use super::errors;

/// The column name of `EXPLAIN` output, as PostgreSQL names it.
pub const EXPLAIN_COLUMN: &str = "QUERY PLAN";

/// Result fields for an Arrow schema, each in the format the client asked for.
pub fn fields(
    schema: &Schema,
    format: &Format,
    options: Arc<FormatOptions>,
) -> PgWireResult<Vec<FieldInfo>> {
    arrow_schema_to_pg_fields(schema, format, Some(options))
}

/// The result fields of a planned statement: `QUERY PLAN` for `EXPLAIN`, the plan's schema otherwise.
pub fn plan_fields(
    plan: &LogicalPlan,
    format: &Format,
    options: Arc<FormatOptions>,
) -> PgWireResult<Vec<FieldInfo>> {
    if is_explain(plan) {
        fields(&explain_schema(), format, options)
    } else {
        fields(plan.schema().as_arrow(), format, options)
    }
}

pub fn is_explain(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_))
}

fn explain_schema() -> Schema {
    Schema::new(vec![Field::new(EXPLAIN_COLUMN, DataType::Utf8, false)])
}

/// Streams a query's batches as DataRows, one batch at a time (memory stays bounded by a batch).
///
/// `guard` keeps the query registered for CancelRequest until the stream is dropped. With `explain`, the
/// plan text is reshaped into PostgreSQL's one `QUERY PLAN` row per line.
pub fn rows(
    fields: Arc<Vec<FieldInfo>>,
    batches: SendableRecordBatchStream,
    guard: RunningGuard,
    explain: bool,
) -> impl Stream<Item = PgWireResult<DataRow>> + Send + 'static {
    batches
        .map(move |batch| {
            let _registered = &guard;
            let rows: Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync> = match batch {
                Ok(batch) if explain => match explain_lines(&batch) {
                    Ok(batch) => encode_recordbatch(fields.clone(), batch),
                    Err(e) => Box::new(std::iter::once(Err(e))),
                },
                Ok(batch) => encode_recordbatch(fields.clone(), batch),
                Err(e) => Box::new(std::iter::once(Err(errors::user_error(
                    errors::datafusion_error(&e, None),
                )))),
            };
            stream::iter(rows)
        })
        .flatten()
}

/// An explain batch as one text column, one row per line of the last text column (DataFusion's
/// `plan_type, plan` as well as an engine's single rendered column).
fn explain_lines(batch: &RecordBatch) -> PgWireResult<RecordBatch> {
    let column = (0..batch.num_columns())
        .rev()
        .map(|i| batch.column(i))
        .find(|c| {
            matches!(
                c.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            )
        })
        .ok_or_else(|| internal("EXPLAIN output has no text column"))?;
    let column = datafusion::arrow::compute::cast(column, &DataType::Utf8)
        .map_err(|e| internal(&e.to_string()))?;
    let text = column.as_string::<i32>();
    let lines: Vec<String> = (0..text.len())
        .filter(|i| !text.is_null(*i))
        .flat_map(|i| text.value(i).lines().map(String::from).collect::<Vec<_>>())
        .collect();
    let array: ArrayRef = Arc::new(StringArray::from(lines));
    RecordBatch::try_new(Arc::new(explain_schema()), vec![array])
        .map_err(|e| internal(&e.to_string()))
}

fn internal(message: &str) -> PgWireError {
    errors::user_error(errors::error(errors::sqlstate::INTERNAL_ERROR, message))
}

/// A small all-text result computed by the front end (`SHOW`).
pub fn text_rows(
    columns: &[&str],
    rows: Vec<Vec<String>>,
    format: &Format,
    tag: &str,
) -> PgWireResult<QueryResponse> {
    let fields: Arc<Vec<FieldInfo>> = Arc::new(text_fields(columns, format));
    let mut encoded = Vec::with_capacity(rows.len());
    let mut encoder = DataRowEncoder::new(fields.clone());
    for row in rows {
        for value in &row {
            encoder.encode_field(&Some(value.as_str()))?;
        }
        encoded.push(Ok(encoder.take_row()));
    }
    let mut response = QueryResponse::new(fields, stream::iter(encoded));
    response.set_command_tag(tag);
    Ok(response)
}

/// Text columns named `columns`.
pub fn text_fields(columns: &[&str], format: &Format) -> Vec<FieldInfo> {
    columns
        .iter()
        .enumerate()
        .map(|(i, name)| {
            FieldInfo::new(
                name.to_string(),
                None,
                None,
                Type::TEXT,
                format.format_for(i),
            )
        })
        .collect()
}

/// The types of a plan's parameters `$1..$n`, in order: what DataFusion inferred, else the type of a
/// cast applied directly to the parameter (`$1::int4`, as PostgreSQL infers it), else unknown.
pub fn parameter_types(plan: &LogicalPlan) -> PgWireResult<Vec<Option<DataType>>> {
    let inferred = plan
        .get_parameter_types()
        .map_err(|e| errors::user_error(errors::datafusion_error(&e, None)))?;
    let mut casts: HashMap<String, DataType> = HashMap::new();
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                let (inner, target) = match e {
                    Expr::Cast(Cast { expr, field }) => (expr.as_ref(), field.data_type()),
                    Expr::TryCast(TryCast { expr, field }) => (expr.as_ref(), field.data_type()),
                    _ => return Ok(TreeNodeRecursion::Continue),
                };
                if let Expr::Placeholder(p) = inner {
                    casts.entry(p.id.clone()).or_insert_with(|| target.clone());
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    let count = inferred
        .keys()
        .filter_map(|id| id.strip_prefix('$')?.parse::<usize>().ok())
        .max()
        .unwrap_or(0);
    Ok((1..=count)
        .map(|i| {
            let id = format!("${i}");
            inferred
                .get(&id)
                .cloned()
                .flatten()
                .or_else(|| casts.get(&id).cloned())
        })
        .collect())
}

/// Parameter types as PostgreSQL types for ParameterDescription (`unknown` when not inferable).
pub fn pg_parameter_types(types: &[Option<DataType>]) -> Vec<Type> {
    types
        .iter()
        .map(|t| {
            t.as_ref()
                .and_then(|t| into_pg_type(t).ok())
                .unwrap_or(Type::UNKNOWN)
        })
        .collect()
}

/// Binds a portal's parameters (text or binary, typed by the client or by inference) into the plan.
pub fn bind<S: Clone>(portal: &Portal<S>, plan: &LogicalPlan) -> PgWireResult<LogicalPlan> {
    let types = parameter_types(plan)?;
    if types.is_empty() && portal.parameter_len() == 0 {
        return Ok(plan.clone());
    }
    let refs: Vec<Option<&DataType>> = types.iter().map(Option::as_ref).collect();
    let values = deserialize_parameters(portal, &refs)?;
    plan.clone()
        .with_param_values(values)
        .map_err(|e| errors::user_error(errors::datafusion_error(&e, None)))
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    use super::*;

    #[tokio::test]
    async fn infers_parameter_types_from_casts() {
        let ctx = SessionContext::new();
        let plan = ctx
            .state()
            .create_logical_plan("select $1::int4 + 1, $2::text, $3")
            .await
            .unwrap();
        let types = parameter_types(&plan).unwrap();
        assert_eq!(types.len(), 3);
        assert_eq!(types[0], Some(DataType::Int32));
        assert!(matches!(
            types[1],
            Some(DataType::Utf8 | DataType::Utf8View)
        ));
        assert_eq!(
            pg_parameter_types(&types),
            vec![Type::INT4, Type::TEXT, Type::UNKNOWN]
        );
    }

    #[test]
    fn explain_text_becomes_lines() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("plan_type", DataType::Utf8, false),
            Field::new("plan", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["logical_plan"])),
                Arc::new(StringArray::from(vec!["Projection: a\n  TableScan: t"])),
            ],
        )
        .unwrap();
        let lines = explain_lines(&batch).unwrap();
        assert_eq!(lines.num_rows(), 2);
        assert_eq!(lines.schema().field(0).name(), EXPLAIN_COLUMN);
    }
}
