//! Type encoding, in one place: Arrow schemas to pgwire fields (type OIDs), record batches to
//! DataRows (text or binary per column), and bind parameters to DataFusion values.
//!
//! Result values are written in PostgreSQL's own formats by the [`column`] encoders (numbers, exact
//! numerics of any size, dates and times of any year, intervals, uuid, json/jsonb, char(n), arrays
//! of those), with `arrow-pg` for the rest. A string column whose Arrow field carries the metadata
//! [`PG_TYPE_KEY`] (set by the postgres and mysql connectors) is reported as that PostgreSQL type:
//! `uuid`, `json`, `jsonb`, `numeric` (exact text of an unconstrained or very wide numeric),
//! `varchar[(n)]`, `bpchar[(n)]` (values blank-padded to n again) or `name`; any other value, or
//! metadata on a non-string field, is ignored.

mod column;
mod datetime;
mod number;

use std::collections::HashMap;
use std::sync::Arc;

use arrow_pg::datatypes::df::deserialize_parameters;
use arrow_pg::datatypes::{field_into_pg_type, into_pg_type};
use arrow_pg::encoder::Encoder;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{Cast, Expr, LogicalPlan, TryCast};
use futures::{Stream, StreamExt, stream};
use pgwire::api::Type;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::types::format::FormatOptions;

use self::column::{TextSettings, ValueEncoder};
use super::cancel::RunningGuard;
use super::errors;

/// Arrow field metadata naming the PostgreSQL type a string column is reported as (see the module
/// docs): the connectors' key, which they write and only the front end reads.
pub use tributary_exec::PG_TYPE_KEY;

/// The column name of `EXPLAIN` output, as PostgreSQL names it (the planner's).
pub use tributary_planner::explain::QUERY_PLAN_COLUMN as EXPLAIN_COLUMN;

/// Result fields for an Arrow schema, each in the format the client asked for.
pub fn fields(
    schema: &Schema,
    format: &Format,
    options: Arc<FormatOptions>,
) -> PgWireResult<Vec<FieldInfo>> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let (ty, typmod) = pg_type(field)?;
            Ok(FieldInfo::new(
                super::column_names::display_name(field.name()).to_string(),
                None,
                None,
                ty,
                format.format_for(i),
            )
            .with_format_options(Arc::clone(&options))
            .with_type_modifier(typmod))
        })
        .collect()
}

/// The PostgreSQL type (and type modifier, -1 for none) a result column is reported as.
fn pg_type(field: &FieldRef) -> PgWireResult<(Type, i32)> {
    let tagged = field
        .metadata()
        .get(PG_TYPE_KEY)
        .filter(|_| field.data_type() == &DataType::Utf8)
        .and_then(|name| tagged_type(name));
    match tagged {
        Some(found) => Ok(found),
        None => Ok((field_into_pg_type(field)?, -1)),
    }
}

/// The type named by a [`PG_TYPE_KEY`] value: `uuid`, `varchar(20)`, ...
fn tagged_type(name: &str) -> Option<(Type, i32)> {
    let (base, length) = match name.split_once('(') {
        Some((base, rest)) => {
            let n: i32 = rest.strip_suffix(')')?.trim().parse().ok()?;
            (base.trim(), Some(n))
        }
        None => (name.trim(), None),
    };
    let ty = match base {
        "uuid" => Type::UUID,
        "json" => Type::JSON,
        "jsonb" => Type::JSONB,
        "numeric" => Type::NUMERIC,
        "varchar" => Type::VARCHAR,
        "bpchar" => Type::BPCHAR,
        "name" => Type::NAME,
        _ => return None,
    };
    let typmod = match (&ty, length) {
        (t, Some(n)) if (*t == Type::VARCHAR || *t == Type::BPCHAR) && n > 0 => n.checked_add(4)?,
        _ => -1,
    };
    Some((ty, typmod))
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
                    Ok(batch) => data_rows(fields.clone(), batch),
                    Err(e) => Box::new(std::iter::once(Err(e))),
                },
                Ok(batch) => data_rows(fields.clone(), batch),
                Err(e) => Box::new(std::iter::once(Err(errors::user_error(
                    errors::datafusion_error(&e),
                )))),
            };
            stream::iter(rows)
        })
        .flatten()
}

/// The DataRows of one batch.
fn data_rows(
    fields: Arc<Vec<FieldInfo>>,
    batch: RecordBatch,
) -> Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync> {
    let mut writer = RowWriter::new(Arc::clone(&fields), &batch);
    if writer.writes_all() {
        let Ok(columns) = i16::try_from(fields.len()) else {
            return Box::new(std::iter::once(Err(internal("too many columns"))));
        };
        let (rows, failed) = rows_in_one_buffer(batch.num_rows(), fields.len(), |row, out| {
            writer.data_row_fields(&batch, row, out)
        });
        return Box::new(
            rows.into_iter()
                .map(move |row| Ok(DataRow::new(row, columns)))
                .chain(failed.map(Err)),
        );
    }
    let mut encoder = DataRowEncoder::new(fields);
    Box::new((0..batch.num_rows()).map(move |row| {
        writer.write_row(&mut encoder, &batch, row)?;
        Ok(encoder.take_row())
    }))
}

/// Rows `0..rows` written by `write` (row index, buffer) into one buffer sized for `columns`
/// columns: each row's bytes as a part of that one allocation (no copy), then the error that
/// stopped writing, if any (the rows before it are kept).
pub fn rows_in_one_buffer(
    rows: usize,
    columns: usize,
    mut write: impl FnMut(usize, &mut Vec<u8>) -> PgWireResult<()>,
) -> (Vec<bytes::BytesMut>, Option<PgWireError>) {
    let mut buffer = Vec::with_capacity(rows * 16 * columns.max(1));
    let mut ends = Vec::with_capacity(rows);
    let mut failed = None;
    for row in 0..rows {
        if let Err(e) = write(row, &mut buffer) {
            failed = Some(e);
            break;
        }
        ends.push(buffer.len());
    }
    // The buffer itself, not a copy (a `Bytes` made from a `Vec` is unique).
    let mut data = bytes::BytesMut::from(bytes::Bytes::from(buffer));
    let mut start = 0;
    let parts = ends
        .into_iter()
        .map(|end| {
            let part = data.split_to(end - start);
            start = end;
            part
        })
        .collect();
    (parts, failed)
}

/// Writes rows of a batch, column by column, in the types and formats of `fields` (the fields
/// [`fields`] computed for the batch's schema), into DataRows.
///
/// Text values are handed to the encoder as `text` fields so that they pass through unchanged;
/// pgwire's COPY encoder ignores that field and would quote the text of an array column as a whole,
/// so COPY in text format must leave array columns to arrow-pg.
pub struct RowWriter {
    fields: Arc<Vec<FieldInfo>>,
    /// Per column: the encoder written here, or `None` for arrow-pg.
    encoders: Vec<Option<ValueEncoder>>,
    /// Per column: the field text values are handed over with (type `text`, so the values written
    /// here are passed through as they are).
    text_fields: Vec<FieldInfo>,
    text: TextSettings,
    scratch: Vec<u8>,
}

impl RowWriter {
    /// The writer of DataRows for batches with `batch`'s schema.
    pub fn new(fields: Arc<Vec<FieldInfo>>, batch: &RecordBatch) -> Self {
        let options = fields
            .first()
            .map(|f| Arc::clone(f.format_options()))
            .unwrap_or_default();
        let text = TextSettings::new(&options);
        let schema = batch.schema();
        let encoders = fields
            .iter()
            .zip(schema.fields().iter())
            .map(|(pg, arrow)| {
                ValueEncoder::choose(
                    arrow.data_type(),
                    pg.datatype(),
                    pg.type_modifier(),
                    pg.format(),
                    &text,
                )
            })
            .collect();
        let text_fields = fields
            .iter()
            .map(|f| {
                FieldInfo::new(
                    f.name().to_string(),
                    None,
                    None,
                    Type::TEXT,
                    FieldFormat::Text,
                )
                .with_format_options(Arc::clone(f.format_options()))
            })
            .collect();
        RowWriter {
            fields,
            encoders,
            text_fields,
            text,
            scratch: Vec::with_capacity(64),
        }
    }

    /// The writer of COPY rows for batches with `batch`'s schema (`binary`: COPY's binary
    /// format): as [`RowWriter::new`], except that in text and CSV formats array columns are left
    /// to arrow-pg, since pgwire's COPY encoder would quote an array's text as one value.
    pub fn for_copy(fields: Arc<Vec<FieldInfo>>, batch: &RecordBatch, binary: bool) -> Self {
        let mut writer = Self::new(fields, batch);
        if !binary {
            for (encoder, field) in writer.encoders.iter_mut().zip(batch.schema().fields()) {
                if matches!(field.data_type(), DataType::List(_)) {
                    *encoder = None;
                }
            }
        }
        writer
    }

    /// Whether every column is written by an encoder here (none left to arrow-pg): then rows can
    /// be written without a pgwire encoder ([`RowWriter::data_row_fields`],
    /// [`RowWriter::copy_text_row`], [`RowWriter::copy_binary_row`]).
    pub fn writes_all(&self) -> bool {
        self.encoders.iter().all(Option::is_some)
    }

    /// Appends row `row` of `batch` to `out` as the fields of a DataRow: per column an int4 length
    /// (-1 for NULL) and the value in the column's format (PostgreSQL's DataRow body, without the
    /// field count). Only when [`RowWriter::writes_all`].
    pub fn data_row_fields(
        &self,
        batch: &RecordBatch,
        row: usize,
        out: &mut Vec<u8>,
    ) -> PgWireResult<()> {
        self.length_prefixed_fields(batch, row, false, out)
    }

    /// Appends row `row` of `batch` to `out` as a line of `COPY ... TO STDOUT` in text format:
    /// values separated by `delimiter`, NULL as `null`, escaped as PostgreSQL's
    /// `CopyAttributeOutText` escapes them (backslash, the delimiter, and `\b \f \n \r \t \v`),
    /// ending in a newline. Only when [`RowWriter::writes_all`].
    pub fn copy_text_row(
        &mut self,
        batch: &RecordBatch,
        row: usize,
        delimiter: u8,
        null: &[u8],
        out: &mut Vec<u8>,
    ) -> PgWireResult<()> {
        let mut scratch = std::mem::take(&mut self.scratch);
        for col in 0..self.fields.len() {
            if col > 0 {
                out.push(delimiter);
            }
            let array = batch.column(col);
            if array.is_null(row) {
                out.extend_from_slice(null);
                continue;
            }
            scratch.clear();
            if let Err(e) = self.value(col, array.as_ref(), row, false, &mut scratch) {
                self.scratch = scratch;
                return Err(e);
            }
            escape_copy_text(&scratch, delimiter, out);
        }
        self.scratch = scratch;
        out.push(b'\n');
        Ok(())
    }

    /// Appends row `row` of `batch` to `out` as a tuple of `COPY ... TO STDOUT (FORMAT binary)`:
    /// the int2 field count, then per column an int4 length (-1 for NULL) and the binary value.
    /// Only when [`RowWriter::writes_all`] (the file header is the caller's).
    pub fn copy_binary_row(
        &self,
        batch: &RecordBatch,
        row: usize,
        out: &mut Vec<u8>,
    ) -> PgWireResult<()> {
        let columns = i16::try_from(self.fields.len()).map_err(|_| internal("too many columns"))?;
        out.extend_from_slice(&columns.to_be_bytes());
        self.length_prefixed_fields(batch, row, true, out)
    }

    /// Appends row `row`'s fields: per column an int4 length (-1 for NULL) and the value, in
    /// binary when `binary`, else in its column's format.
    fn length_prefixed_fields(
        &self,
        batch: &RecordBatch,
        row: usize,
        binary: bool,
        out: &mut Vec<u8>,
    ) -> PgWireResult<()> {
        for (col, field) in self.fields.iter().enumerate() {
            let array = batch.column(col);
            if array.is_null(row) {
                out.extend_from_slice(&(-1i32).to_be_bytes());
                continue;
            }
            let at = out.len();
            out.extend_from_slice(&0i32.to_be_bytes());
            let binary = binary || field.format() == FieldFormat::Binary;
            self.value(col, array.as_ref(), row, binary, out)?;
            set_length(out, at)?;
        }
        Ok(())
    }

    /// Appends the value at `row` of column `col` (not null) in text or binary format.
    fn value(
        &self,
        col: usize,
        array: &dyn Array,
        row: usize,
        binary: bool,
        out: &mut Vec<u8>,
    ) -> PgWireResult<()> {
        let Some(Some(encoder)) = self.encoders.get(col) else {
            return Err(internal("a column without an encoder"));
        };
        let written = if binary {
            encoder.binary(array, row, out)
        } else {
            encoder.text(array, row, &self.text, out)
        };
        written.map_err(|reason| {
            errors::user_error(errors::error(
                errors::sqlstate::INVALID_TEXT_REPRESENTATION,
                format!(
                    "cannot send column \"{}\": {reason}",
                    self.fields[col].name()
                ),
            ))
        })
    }

    /// Writes row `row` of `batch` into `encoder` (one field per column; the row is not taken).
    pub fn write_row<E: Encoder>(
        &mut self,
        encoder: &mut E,
        batch: &RecordBatch,
        row: usize,
    ) -> PgWireResult<()> {
        let schema = batch.schema();
        for (col, pg_field) in self.fields.iter().enumerate() {
            let array = batch.column(col);
            let value_encoder = self.encoders.get(col).and_then(Option::as_ref);
            let Some(value_encoder) = value_encoder else {
                arrow_pg::encoder::encode_value(encoder, array, row, schema.field(col), pg_field)?;
                continue;
            };
            let binary = pg_field.format() == FieldFormat::Binary;
            if array.is_null(row) {
                encoder.encode_field(&None::<&str>, pg_field)?;
                continue;
            }
            self.scratch.clear();
            let written = if binary {
                value_encoder.binary(array.as_ref(), row, &mut self.scratch)
            } else {
                value_encoder.text(array.as_ref(), row, &self.text, &mut self.scratch)
            };
            let failed = |reason: String| {
                errors::user_error(errors::error(
                    errors::sqlstate::INVALID_TEXT_REPRESENTATION,
                    format!("cannot send column \"{}\": {reason}", pg_field.name()),
                ))
            };
            written.map_err(failed)?;
            if binary {
                // `&[u8]` is written as its bytes in binary format, whatever the type.
                encoder.encode_field(&self.scratch.as_slice(), pg_field)?;
            } else {
                let text = std::str::from_utf8(&self.scratch)
                    .map_err(|e| failed(format!("invalid UTF-8: {e}")))?;
                encoder.encode_field(&text, &self.text_fields[col])?;
            }
        }
        Ok(())
    }
}

/// Sets the int4 length at `at` to the number of bytes written after it.
fn set_length(out: &mut [u8], at: usize) -> PgWireResult<()> {
    let n = i32::try_from(out.len() - at - 4).map_err(|_| internal("value longer than 2 GiB"))?;
    out[at..at + 4].copy_from_slice(&n.to_be_bytes());
    Ok(())
}

/// `value` as COPY's text format writes it (PostgreSQL's `CopyAttributeOutText`): a backslash
/// before itself and the delimiter, `\b \f \n \r \t \v` for those control characters.
fn escape_copy_text(value: &[u8], delimiter: u8, out: &mut Vec<u8>) {
    let special = |b: u8| b == b'\\' || b == delimiter || (8..=13).contains(&b);
    if !value.iter().any(|&b| special(b)) {
        out.extend_from_slice(value);
        return;
    }
    for &b in value {
        match b {
            8 => out.extend_from_slice(b"\\b"),
            9 => out.extend_from_slice(b"\\t"),
            10 => out.extend_from_slice(b"\\n"),
            11 => out.extend_from_slice(b"\\v"),
            12 => out.extend_from_slice(b"\\f"),
            13 => out.extend_from_slice(b"\\r"),
            b if b == b'\\' || b == delimiter => {
                out.push(b'\\');
                out.push(b);
            }
            b => out.push(b),
        }
    }
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
        .map_err(|e| errors::user_error(errors::datafusion_error(&e)))?;
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
        .map_err(|e| errors::user_error(errors::datafusion_error(&e)))
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
    fn tagged_strings_are_reported_as_their_source_type() {
        let tagged = |name: &str, ty: &str| {
            Field::new(name, DataType::Utf8, true)
                .with_metadata(HashMap::from([(PG_TYPE_KEY.to_string(), ty.to_string())]))
        };
        let schema = Schema::new(vec![
            tagged("u", "uuid"),
            tagged("v", "varchar(20)"),
            tagged("c", "bpchar(5)"),
            tagged("x", "no such type"),
            Field::new("n", DataType::Int64, true).with_metadata(HashMap::from([(
                PG_TYPE_KEY.to_string(),
                "uuid".to_string(),
            )])),
        ]);
        let fields = fields(
            &schema,
            &Format::UnifiedBinary,
            Arc::new(FormatOptions::default()),
        )
        .unwrap();
        let types: Vec<(Type, i32)> = fields
            .iter()
            .map(|f| (f.datatype().clone(), f.type_modifier()))
            .collect();
        assert_eq!(
            types,
            vec![
                (Type::UUID, -1),
                (Type::VARCHAR, 24),
                (Type::BPCHAR, 9),
                (Type::TEXT, -1),
                (Type::INT8, -1),
            ]
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
