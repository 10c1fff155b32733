//! Catalog functions the library lacks or gets wrong: `information_schema._pg_expandarray(anyarray)`
//! (pgjdbc's key and index metadata), `to_regtype(text)` (psycopg 3's type lookup) and
//! `pg_get_expr(expr, relation)` (the library's is always '', so `pg_get_expr(indpred, ...) IS NULL`
//! never held).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, Int32Builder, ListArray, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use super::simple_udf;

pub fn udfs(pg_type: &[RecordBatch]) -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(ExpandArray::new()),
        generate_subscripts(),
        ScalarUDF::new_from_impl(CaseWhen::new()),
        to_regtype(type_oids(pg_type)),
        pg_get_expr(),
        ScalarUDF::new_from_impl(ArrayToString::new()),
    ]
}

/// `array_to_string(array, separator [, null])`, also of text: the library keeps the ACL and
/// option columns psql shows this way (`nspacl`, `proacl`, `spcacl`, ...) as text, always NULL
/// here, so text is returned as it is. Arrays go to DataFusion's function.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ArrayToString {
    signature: Signature,
    arrays: Arc<ScalarUDF>,
}

impl ArrayToString {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
            arrays: datafusion::functions_nested::string::array_to_string_udf(),
        }
    }
}

fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    )
}

impl ScalarUDFImpl for ArrayToString {
    fn name(&self) -> &str {
        "array_to_string"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args.first() {
            Some(first) if is_text(first) => Ok(args.iter().map(|_| DataType::Utf8).collect()),
            _ => {
                let fields: Vec<_> = args
                    .iter()
                    .map(|t| Arc::new(Field::new("arg", t.clone(), true)))
                    .collect();
                let coerced = datafusion::logical_expr::type_coercion::functions::fields_with_udf(
                    &fields,
                    self.arrays.as_ref(),
                )?;
                Ok(coerced.iter().map(|f| f.data_type().clone()).collect())
            }
        }
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        if args.first().is_some_and(is_text) {
            Ok(DataType::Utf8)
        } else {
            self.arrays.return_type(args)
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if args.args.first().is_some_and(|a| is_text(&a.data_type())) {
            return Ok(args.args[0].clone());
        }
        self.arrays.invoke_with_args(args)
    }
}

/// `pg_get_expr(expr, relation [, pretty])`: our catalogs keep expressions (`adbin`, `indpred`,
/// `relpartbound`, ...) as their text, so the text itself; NULL stays NULL.
fn pg_get_expr() -> ScalarUDF {
    simple_udf(
        "pg_get_expr",
        Signature::one_of(
            vec![TypeSignature::Any(2), TypeSignature::Any(3)],
            Volatility::Stable,
        ),
        DataType::Utf8,
        |args| {
            let scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
            let rows = super::rows_of(args);
            let text = datafusion::arrow::compute::cast(&args[0].to_array(rows)?, &DataType::Utf8)?;
            if scalar {
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                    &text, 0,
                )?))
            } else {
                Ok(ColumnarValue::Array(text))
            }
        },
    )
}

/// `_pg_expandarray(array)`: PostgreSQL's set-returning function yields one `(x, n)` row per element.
/// Here it returns the list of those `(x, n)` structs; the catalog rewrite wraps each call in
/// `unnest(...)`, which gives the rows (several calls in one SELECT list unnest in step, as in
/// PostgreSQL).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ExpandArray {
    signature: Signature,
}

impl ExpandArray {
    fn new() -> Self {
        Self {
            signature: Signature::new(TypeSignature::Any(1), Volatility::Immutable),
        }
    }
}

fn expanded_fields(elem: &DataType) -> Fields {
    Fields::from(vec![
        Field::new("x", elem.clone(), true),
        Field::new("n", DataType::Int32, false),
    ])
}

fn element_type(arg: &DataType) -> Result<DataType> {
    match arg {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            Ok(f.data_type().clone())
        }
        DataType::Null => Ok(DataType::Int16),
        other => exec_err!("_pg_expandarray expects an array, got {other}"),
    }
}

impl ScalarUDFImpl for ExpandArray {
    fn name(&self) -> &str {
        "_pg_expandarray"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let elem = element_type(&args[0])?;
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Struct(expanded_fields(&elem)),
            true,
        ))))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let list: ListArray = match array.data_type() {
            DataType::Null => ListArray::new_null(
                Arc::new(Field::new_list_field(DataType::Int16, true)),
                array.len(),
            ),
            _ => datafusion::arrow::compute::cast(
                &array,
                &DataType::List(Arc::new(Field::new_list_field(
                    element_type(array.data_type())?,
                    true,
                ))),
            )?
            .as_list::<i32>()
            .clone(),
        };
        let elem = element_type(list.data_type())?;
        let offsets = list.offsets();
        let start = offsets[0] as usize;
        let end = offsets[offsets.len() - 1] as usize;
        let values = list.values().slice(start, end - start);
        let mut positions = Int32Builder::with_capacity(values.len());
        for window in offsets.windows(2) {
            for i in 0..(window[1] - window[0]) {
                positions.append_value(i + 1);
            }
        }
        let positions: Int32Array = positions.finish();
        let structs = StructArray::try_new(
            expanded_fields(&elem),
            vec![values, Arc::new(positions) as ArrayRef],
            None,
        )?;
        let rebased = OffsetBuffer::new(offsets.iter().map(|o| o - offsets[0]).collect());
        let out = ListArray::try_new(
            Arc::new(Field::new_list_field(structs.data_type().clone(), true)),
            rebased,
            Arc::new(structs),
            list.nulls().cloned(),
        )?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `pg_case_when(condition, then, else)`: `CASE WHEN condition THEN then ELSE else END` with every
/// argument evaluated. The catalog rewrite uses it for CASEs holding scalar subqueries, which
/// DataFusion cannot decorrelate inside CASE but can as function arguments (the subqueries are
/// side-effect-free catalog lookups, so evaluating them eagerly gives the same result).
#[derive(Debug, PartialEq, Eq, Hash)]
struct CaseWhen {
    signature: Signature,
}

impl CaseWhen {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for CaseWhen {
    fn name(&self) -> &str {
        "pg_case_when"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        if args.len() != 3 {
            return exec_err!("pg_case_when takes 3 arguments");
        }
        let common =
            datafusion::logical_expr::type_coercion::binary::type_union_resolution(&args[1..])
                .unwrap_or(DataType::Utf8);
        Ok(vec![DataType::Boolean, common.clone(), common])
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(if args[1] == DataType::Null {
            args[2].clone()
        } else {
            args[1].clone()
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<Vec<_>>>()?;
        let condition = arrays[0].as_boolean();
        let mask = if condition.null_count() > 0 {
            datafusion::arrow::compute::prep_null_mask_filter(condition)
        } else {
            condition.clone()
        };
        let out = datafusion::arrow::compute::kernels::zip::zip(&mask, &arrays[1], &arrays[2])?;
        let out = if out.data_type() == args.return_field.data_type() {
            out
        } else {
            datafusion::arrow::compute::cast(&out, args.return_field.data_type())?
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// `generate_subscripts(array, dim)`: in PostgreSQL a set-returning function of the array's
/// subscripts; here the list `[1, ..., n]` (our arrays are 1-based and one-dimensional), which the
/// catalog rewrite unnests.
fn generate_subscripts() -> ScalarUDF {
    let list = DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true)));
    simple_udf(
        "generate_subscripts",
        Signature::any(2, Volatility::Immutable),
        list,
        |args| {
            let rows = super::rows_of(args);
            let array = args[0].to_array(rows)?;
            let mut builder = datafusion::arrow::array::ListBuilder::new(Int32Builder::new());
            let lengths: Vec<Option<usize>> = match array.data_type() {
                DataType::List(_) => {
                    let list = array.as_list::<i32>();
                    (0..rows)
                        .map(|i| list.is_valid(i).then(|| list.value_length(i) as usize))
                        .collect()
                }
                DataType::LargeList(_) => {
                    let list = array.as_list::<i64>();
                    (0..rows)
                        .map(|i| list.is_valid(i).then(|| list.value_length(i) as usize))
                        .collect()
                }
                _ => vec![None; rows],
            };
            for length in lengths {
                match length {
                    Some(n) => {
                        for i in 1..=n {
                            builder.values().append_value(i as i32);
                        }
                        builder.append(true);
                    }
                    None => builder.append(false),
                }
            }
            Ok(ColumnarValue::Array(Arc::new(builder.finish())))
        },
    )
}

/// Type name -> oid from the static `pg_type` rows.
pub(super) fn type_oids(pg_type: &[RecordBatch]) -> HashMap<String, i32> {
    let mut out = HashMap::new();
    for batch in pg_type {
        let (Some(names), Some(oids)) =
            (batch.column_by_name("typname"), batch.column_by_name("oid"))
        else {
            continue;
        };
        let (Ok(names), Ok(oids)) = (
            datafusion::arrow::compute::cast(names, &DataType::Utf8),
            datafusion::arrow::compute::cast(oids, &DataType::Int32),
        ) else {
            continue;
        };
        let names = names.as_string::<i32>();
        let oids = oids.as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        for i in 0..batch.num_rows() {
            if names.is_valid(i) && oids.is_valid(i) {
                out.insert(names.value(i).to_string(), oids.value(i));
            }
        }
    }
    out
}

/// The `pg_type` name of a type as SQL spells it (`integer` -> `int4`, `text[]` -> `_text`).
pub(super) fn canonical_type_name(name: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    let name = name
        .strip_prefix("pg_catalog.")
        .unwrap_or(&name)
        .trim_matches('"');
    if let Some(elem) = name.strip_suffix("[]") {
        return format!("_{}", canonical_type_name(elem));
    }
    let alias = match name {
        "integer" | "int" => "int4",
        "bigint" => "int8",
        "smallint" => "int2",
        "boolean" => "bool",
        "real" => "float4",
        "double precision" => "float8",
        "character varying" => "varchar",
        "character" | "char" => "bpchar",
        "decimal" => "numeric",
        "timestamp with time zone" => "timestamptz",
        "timestamp without time zone" => "timestamp",
        "time with time zone" => "timetz",
        "time without time zone" => "time",
        other => other,
    };
    alias.to_string()
}

/// `to_regtype(text)`: the type's oid, NULL when there is no such type.
fn to_regtype(oids: HashMap<String, i32>) -> ScalarUDF {
    simple_udf(
        "to_regtype",
        Signature::exact(vec![DataType::Utf8], Volatility::Stable),
        DataType::Int32,
        move |args| {
            let lookup =
                |name: Option<&str>| name.and_then(|n| oids.get(&canonical_type_name(n)).copied());
            match &args[0] {
                ColumnarValue::Scalar(value) => {
                    let name = match value {
                        ScalarValue::Utf8(s)
                        | ScalarValue::LargeUtf8(s)
                        | ScalarValue::Utf8View(s) => s.clone(),
                        _ => None,
                    };
                    Ok(ColumnarValue::Scalar(ScalarValue::Int32(lookup(
                        name.as_deref(),
                    ))))
                }
                ColumnarValue::Array(array) => {
                    let text = datafusion::arrow::compute::cast(array, &DataType::Utf8)?;
                    let out: Int32Array = text.as_string::<i32>().iter().map(lookup).collect();
                    Ok(ColumnarValue::Array(Arc::new(out)))
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_canonicalize() {
        assert_eq!(canonical_type_name("integer"), "int4");
        assert_eq!(canonical_type_name("pg_catalog.text[]"), "_text");
        assert_eq!(canonical_type_name("hstore"), "hstore");
    }
}
