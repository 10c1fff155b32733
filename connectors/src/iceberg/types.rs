//! Arrow (59, DataFusion's) and Iceberg types, column statistics for manifests, and DataFusion
//! filters as Iceberg predicates. The iceberg crate's own Arrow conversions are on arrow 58, so
//! these are written against its spec types only.
//!
//! Types, as Trino's Iceberg connector maps them:
//!
//! | Arrow (query result)                         | Iceberg            | Arrow (read back)      |
//! |----------------------------------------------|--------------------|------------------------|
//! | Boolean                                      | boolean            | Boolean                |
//! | Int8, Int16, Int32, UInt8, UInt16            | int                | Int32                  |
//! | Int64, UInt32, UInt64                        | long               | Int64                  |
//! | Float16, Float32                             | float              | Float32                |
//! | Float64                                      | double             | Float64                |
//! | Decimal128(p, s), p <= 38                    | decimal(p, s)      | Decimal128(p, s)       |
//! | Utf8, LargeUtf8, Utf8View                    | string             | Utf8                   |
//! | Binary, LargeBinary, BinaryView              | binary             | Binary                 |
//! | Date32, Date64                               | date               | Date32                 |
//! | Time32, Time64                               | time               | Time64(us)             |
//! | Timestamp(any unit, no zone)                 | timestamp          | Timestamp(us)          |
//! | Timestamp(any unit, zone)                    | timestamptz        | Timestamp(us, "UTC")   |
//!
//! Anything else (nested types, intervals, untyped NULL) is refused with `0A000`.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::parquet::file::statistics::Statistics;
use iceberg::expr::{Predicate, Reference};
use iceberg::spec::{self, Datum, NestedField, PrimitiveType, Type};

use crate::sqlstate;

/// The Iceberg type a column of Arrow type `data_type` is stored as (see the module table).
/// Errors: `0A000` naming `column` for a type Iceberg tables here cannot hold.
pub fn iceberg_type(column: &str, data_type: &DataType) -> Result<PrimitiveType> {
    Ok(match data_type {
        DataType::Boolean => PrimitiveType::Boolean,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16 => {
            PrimitiveType::Int
        }
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => PrimitiveType::Long,
        DataType::Float16 | DataType::Float32 => PrimitiveType::Float,
        DataType::Float64 => PrimitiveType::Double,
        DataType::Decimal128(p, s) if *s >= 0 => PrimitiveType::Decimal {
            precision: u32::from(*p),
            scale: *s as u32,
        },
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => PrimitiveType::String,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => PrimitiveType::Binary,
        DataType::Date32 | DataType::Date64 => PrimitiveType::Date,
        DataType::Time32(_) | DataType::Time64(_) => PrimitiveType::Time,
        DataType::Timestamp(_, None) => PrimitiveType::Timestamp,
        DataType::Timestamp(_, Some(_)) => PrimitiveType::Timestamptz,
        DataType::Null => {
            return Err(crate::ConnectorError::sql(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!(
                    "column \"{column}\" has no type (an untyped NULL): cast it, e.g. CAST(NULL AS varchar)"
                ),
            ));
        }
        other => {
            return Err(crate::ConnectorError::sql(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!("column \"{column}\" of type {other} cannot be stored in an Iceberg table"),
            ));
        }
    })
}

/// The Arrow type Iceberg type `ty` is read as (see the module table). Errors: `0A000` for a type
/// this connector does not read (nested types, uuid, fixed, nanosecond timestamps).
pub fn arrow_type(column: &str, ty: &Type) -> Result<DataType> {
    let Type::Primitive(primitive) = ty else {
        return Err(crate::ConnectorError::sql(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!("column \"{column}\" has nested Iceberg type {ty}, which is not supported yet"),
        ));
    };
    Ok(match primitive {
        PrimitiveType::Boolean => DataType::Boolean,
        PrimitiveType::Int => DataType::Int32,
        PrimitiveType::Long => DataType::Int64,
        PrimitiveType::Float => DataType::Float32,
        PrimitiveType::Double => DataType::Float64,
        PrimitiveType::Decimal { precision, scale } => {
            DataType::Decimal128(*precision as u8, *scale as i8)
        }
        PrimitiveType::Date => DataType::Date32,
        PrimitiveType::Time => DataType::Time64(TimeUnit::Microsecond),
        PrimitiveType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        PrimitiveType::Timestamptz => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        PrimitiveType::String => DataType::Utf8,
        PrimitiveType::Binary => DataType::Binary,
        other => {
            return Err(crate::ConnectorError::sql(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!("column \"{column}\" has Iceberg type {other}, which is not supported yet"),
            ));
        }
    })
}

/// The Iceberg schema of a new table with the columns of `columns`, all optional, field ids 1..n in
/// column order (the ids Iceberg assigns a new table's flat schema).
pub fn iceberg_schema(columns: &Schema) -> Result<spec::Schema> {
    let fields = columns
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let ty = iceberg_type(field.name(), field.data_type())?;
            Ok(Arc::new(NestedField::optional(
                i as i32 + 1,
                field.name(),
                Type::Primitive(ty),
            )))
        })
        .collect::<Result<Vec<_>>>()?;
    spec::Schema::builder()
        .with_fields(fields)
        .build()
        .map_err(|e| DataFusionError::Plan(format!("invalid Iceberg schema: {e}")))
}

/// The Arrow schema an Iceberg schema is read as (every column nullable, as Iceberg's optional
/// fields are; required fields too, so a file written with them optional still reads).
pub fn arrow_schema(schema: &spec::Schema) -> Result<SchemaRef> {
    let fields = schema
        .as_struct()
        .fields()
        .iter()
        .map(|f| {
            Ok(Field::new(
                &f.name,
                arrow_type(&f.name, &f.field_type)?,
                true,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// Column statistics of one data file for its manifest entry, from the Parquet footer: per field id
/// (file column `i` is `field_ids[i]`, `types[i]`), the compressed bytes, values, nulls, and exact
/// lower and upper bounds where the Parquet statistics have them in Iceberg's single-value form
/// (decimals and binaries get none).
#[derive(Debug, Default)]
pub struct FileStats {
    /// Compressed bytes per field id.
    pub column_sizes: HashMap<i32, u64>,
    /// Values (nulls included) per field id.
    pub value_counts: HashMap<i32, u64>,
    /// Nulls per field id.
    pub null_value_counts: HashMap<i32, u64>,
    /// Smallest value per field id.
    pub lower_bounds: HashMap<i32, Datum>,
    /// Largest value per field id.
    pub upper_bounds: HashMap<i32, Datum>,
}

/// [`FileStats`] of a file whose footer is `metadata`.
pub fn file_stats(
    metadata: &ParquetMetaData,
    field_ids: &[i32],
    types: &[PrimitiveType],
) -> FileStats {
    let mut stats = FileStats::default();
    let mut nulls_known: HashMap<i32, bool> = HashMap::new();
    // Columns some row group gives no exact bound for while holding values: no bound for the file
    // (a bound from the other row groups alone could exclude that row group's values).
    let mut unbounded: std::collections::HashSet<i32> = std::collections::HashSet::new();
    for row_group in metadata.row_groups() {
        let rows = row_group.num_rows().max(0) as u64;
        for (i, column) in row_group.columns().iter().enumerate() {
            let (Some(&id), Some(ty)) = (field_ids.get(i), types.get(i)) else {
                continue;
            };
            *stats.column_sizes.entry(id).or_default() += column.compressed_size().max(0) as u64;
            *stats.value_counts.entry(id).or_default() += column.num_values().max(0) as u64;
            let known = nulls_known.entry(id).or_insert(true);
            let Some(statistics) = column.statistics() else {
                *known = false;
                unbounded.insert(id);
                continue;
            };
            let nulls = statistics.null_count_opt();
            match nulls {
                Some(n) => *stats.null_value_counts.entry(id).or_default() += n,
                None => *known = false,
            }
            let all_null = nulls == Some(rows);
            let (low, high) = (min_datum(statistics, ty), max_datum(statistics, ty));
            if !all_null && (low.is_none() || high.is_none()) {
                unbounded.insert(id);
            }
            merge_bound(&mut stats.lower_bounds, id, low, true);
            merge_bound(&mut stats.upper_bounds, id, high, false);
        }
    }
    for id in unbounded {
        stats.lower_bounds.remove(&id);
        stats.upper_bounds.remove(&id);
    }
    for (id, known) in nulls_known {
        if !known {
            stats.null_value_counts.remove(&id);
        }
    }
    stats
}

/// Keeps the smaller (`lower`) or larger bound of `bounds[id]` and `value`. An all-null row group
/// (no bound) leaves the others' bound: nulls are outside Iceberg bounds.
fn merge_bound(bounds: &mut HashMap<i32, Datum>, id: i32, value: Option<Datum>, lower: bool) {
    let Some(value) = value else {
        return;
    };
    match bounds.get(&id) {
        Some(current) => {
            let replace = match value.partial_cmp(current) {
                Some(std::cmp::Ordering::Less) => lower,
                Some(std::cmp::Ordering::Greater) => !lower,
                _ => false,
            };
            if replace {
                bounds.insert(id, value);
            }
        }
        None => {
            bounds.insert(id, value);
        }
    }
}

fn min_datum(statistics: &Statistics, ty: &PrimitiveType) -> Option<Datum> {
    if !statistics.min_is_exact() {
        return None;
    }
    bound_datum(statistics.min_bytes_opt()?, statistics, ty)
}

fn max_datum(statistics: &Statistics, ty: &PrimitiveType) -> Option<Datum> {
    if !statistics.max_is_exact() {
        return None;
    }
    bound_datum(statistics.max_bytes_opt()?, statistics, ty)
}

/// A Parquet statistics value (plain encoded: little-endian numbers, raw string bytes) as a Datum of
/// `ty`, when the physical type is the one Iceberg's single-value form shares with it.
fn bound_datum(bytes: &[u8], statistics: &Statistics, ty: &PrimitiveType) -> Option<Datum> {
    let fits = matches!(
        (statistics, ty),
        (Statistics::Boolean(_), PrimitiveType::Boolean)
            | (
                Statistics::Int32(_),
                PrimitiveType::Int | PrimitiveType::Date
            )
            | (
                Statistics::Int64(_),
                PrimitiveType::Long
                    | PrimitiveType::Time
                    | PrimitiveType::Timestamp
                    | PrimitiveType::Timestamptz
            )
            | (Statistics::Float(_), PrimitiveType::Float)
            | (Statistics::Double(_), PrimitiveType::Double)
            | (Statistics::ByteArray(_), PrimitiveType::String)
    );
    if !fits {
        return None;
    }
    let datum = Datum::try_from_bytes(bytes, ty.clone()).ok()?;
    // NaN is no bound (Iceberg keeps NaNs out of bounds).
    (!datum.is_nan()).then_some(datum)
}

/// The conjunction of the filters that translate exactly into Iceberg predicates over `schema`
/// (comparisons of a column with a literal, IS [NOT] NULL, IN lists, AND, OR, NOT), for manifest and
/// file pruning; `None` when none does. Pruning with it never drops a row the filters keep: an
/// untranslatable part of an AND is left out, an OR or NOT with one is left out whole.
pub fn to_predicate(filters: &[Expr], schema: &spec::Schema) -> Option<Predicate> {
    filters
        .iter()
        .flat_map(split_and)
        .filter_map(|f| predicate(f, schema))
        .reduce(Predicate::and)
}

fn split_and(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let mut parts = split_and(left);
            parts.extend(split_and(right));
            parts
        }
        other => vec![other],
    }
}

fn predicate(expr: &Expr, schema: &spec::Schema) -> Option<Predicate> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => Some(predicate(left, schema)?.and(predicate(right, schema)?)),
            Operator::Or => Some(predicate(left, schema)?.or(predicate(right, schema)?)),
            _ => {
                let (column, literal, op) = match (column_of(left, schema), literal_of(right)) {
                    (Some(c), Some(l)) => (c, l, *op),
                    _ => (column_of(right, schema)?, literal_of(left)?, op.swap()?),
                };
                let (reference, ty) = field(column, schema)?;
                if is_float(&ty) {
                    // DataFusion orders NaN above every number and -0.0 below 0.0; Iceberg bounds
                    // leave NaN out: a comparison could prune a file holding a matching NaN.
                    return None;
                }
                let datum = datum(literal, &ty)?;
                Some(match op {
                    Operator::Eq => reference.equal_to(datum),
                    Operator::NotEq => reference.not_equal_to(datum),
                    Operator::Lt => reference.less_than(datum),
                    Operator::LtEq => reference.less_than_or_equal_to(datum),
                    Operator::Gt => reference.greater_than(datum),
                    Operator::GtEq => reference.greater_than_or_equal_to(datum),
                    _ => return None,
                })
            }
        },
        Expr::Not(inner) => Some(predicate(inner, schema)?.negate()),
        Expr::IsNull(inner) => Some(field(bare_column(inner)?, schema)?.0.is_null()),
        Expr::IsNotNull(inner) => Some(field(bare_column(inner)?, schema)?.0.is_not_null()),
        Expr::InList(list) => {
            let (reference, ty) = field(column_of(&list.expr, schema)?, schema)?;
            if is_float(&ty) {
                return None;
            }
            let values = list
                .list
                .iter()
                .map(|e| datum(literal_of(e)?, &ty))
                .collect::<Option<Vec<_>>>()?;
            Some(if list.negated {
                reference.is_not_in(values)
            } else {
                reference.is_in(values)
            })
        }
        _ => None,
    }
}

/// The column `expr` reads, looking through a cast only when it cannot change a value's order or
/// equality (an integer column widened, a string column as another string type, a date as a date,
/// a timestamp to a finer unit): the literal is then converted back exactly or the filter is left
/// out. `TRY_CAST` is never looked through (it turns values into NULL).
fn column_of<'a>(expr: &'a Expr, schema: &spec::Schema) -> Option<&'a str> {
    match expr {
        Expr::Column(column) => Some(column.name.as_str()),
        Expr::Cast(cast) => {
            let name = bare_column(&cast.expr)?;
            let (_, ty) = field(name, schema)?;
            let lossless = matches!(
                (&ty, cast.field.data_type()),
                (PrimitiveType::Int, DataType::Int32 | DataType::Int64)
                    | (PrimitiveType::Long, DataType::Int64)
                    | (
                        PrimitiveType::String,
                        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                    )
                    | (PrimitiveType::Date, DataType::Date32)
                    | (
                        PrimitiveType::Timestamp | PrimitiveType::Timestamptz,
                        DataType::Timestamp(TimeUnit::Microsecond | TimeUnit::Nanosecond, _)
                    )
            );
            lossless.then_some(name)
        }
        _ => None,
    }
}

/// The column `expr` is, without any cast.
fn bare_column(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Column(column) => Some(column.name.as_str()),
        _ => None,
    }
}

fn is_float(ty: &PrimitiveType) -> bool {
    matches!(ty, PrimitiveType::Float | PrimitiveType::Double)
}

fn literal_of(expr: &Expr) -> Option<&ScalarValue> {
    match expr {
        Expr::Literal(value, _) => Some(value),
        _ => None,
    }
}

fn field(name: &str, schema: &spec::Schema) -> Option<(Reference, PrimitiveType)> {
    let field = schema.field_by_name(name)?;
    match field.field_type.as_ref() {
        Type::Primitive(p) => Some((Reference::new(name), p.clone())),
        _ => None,
    }
}

/// `value` as an Iceberg value of `ty`, only when the conversion is exact (a NULL literal, a value out
/// of range or with a fraction gives `None`: the filter is then not used for pruning).
fn datum(value: &ScalarValue, ty: &PrimitiveType) -> Option<Datum> {
    let integer = || -> Option<i64> {
        Some(match value {
            ScalarValue::Int8(Some(v)) => i64::from(*v),
            ScalarValue::Int16(Some(v)) => i64::from(*v),
            ScalarValue::Int32(Some(v)) => i64::from(*v),
            ScalarValue::Int64(Some(v)) => *v,
            ScalarValue::UInt8(Some(v)) => i64::from(*v),
            ScalarValue::UInt16(Some(v)) => i64::from(*v),
            ScalarValue::UInt32(Some(v)) => i64::from(*v),
            ScalarValue::UInt64(Some(v)) => i64::try_from(*v).ok()?,
            _ => return None,
        })
    };
    let micros = |unit: &TimeUnit, v: i64| -> Option<i64> {
        match unit {
            TimeUnit::Second => v.checked_mul(1_000_000),
            TimeUnit::Millisecond => v.checked_mul(1_000),
            TimeUnit::Microsecond => Some(v),
            TimeUnit::Nanosecond => (v % 1_000 == 0).then_some(v / 1_000),
        }
    };
    match ty {
        PrimitiveType::Boolean => match value {
            ScalarValue::Boolean(Some(v)) => Some(Datum::bool(*v)),
            _ => None,
        },
        PrimitiveType::Int => Some(Datum::int(i32::try_from(integer()?).ok()?)),
        PrimitiveType::Long => Some(Datum::long(integer()?)),
        PrimitiveType::Float => match value {
            ScalarValue::Float32(Some(v)) => Some(Datum::float(*v)),
            _ => None,
        },
        PrimitiveType::Double => match value {
            ScalarValue::Float64(Some(v)) => Some(Datum::double(*v)),
            ScalarValue::Float32(Some(v)) => Some(Datum::double(f64::from(*v))),
            _ => None,
        },
        PrimitiveType::String => match value {
            ScalarValue::Utf8(Some(v))
            | ScalarValue::LargeUtf8(Some(v))
            | ScalarValue::Utf8View(Some(v)) => Some(Datum::string(v)),
            _ => None,
        },
        PrimitiveType::Date => match value {
            ScalarValue::Date32(Some(v)) => Some(Datum::date(*v)),
            _ => None,
        },
        PrimitiveType::Timestamp | PrimitiveType::Timestamptz => {
            let (v, zoned) = match value {
                ScalarValue::TimestampSecond(Some(v), z) => (micros(&TimeUnit::Second, *v)?, z),
                ScalarValue::TimestampMillisecond(Some(v), z) => {
                    (micros(&TimeUnit::Millisecond, *v)?, z)
                }
                ScalarValue::TimestampMicrosecond(Some(v), z) => (*v, z),
                ScalarValue::TimestampNanosecond(Some(v), z) => {
                    (micros(&TimeUnit::Nanosecond, *v)?, z)
                }
                _ => return None,
            };
            match (ty, zoned.is_some()) {
                (PrimitiveType::Timestamp, false) => Some(Datum::timestamp_micros(v)),
                (PrimitiveType::Timestamptz, true) => Some(Datum::timestamptz_micros(v)),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};

    #[test]
    fn types_round_trip_as_trino_maps_them() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int16, false),
            Field::new("b", DataType::Utf8View, true),
            Field::new("c", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
            Field::new("d", DataType::Decimal128(12, 2), true),
        ]);
        let iceberg = iceberg_schema(&schema).unwrap();
        let back = arrow_schema(&iceberg).unwrap();
        let types: Vec<_> = back
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            types,
            vec![
                DataType::Int32,
                DataType::Utf8,
                DataType::Timestamp(TimeUnit::Microsecond, None),
                DataType::Decimal128(12, 2)
            ]
        );
        assert_eq!(iceberg.field_by_name("c").unwrap().id, 3);
        let e = iceberg_type("n", &DataType::Null).unwrap_err();
        assert!(e.to_string().contains("CAST"), "{e}");
    }

    #[test]
    fn only_exact_filters_become_predicates() {
        let schema = iceberg_schema(&Schema::new(vec![
            Field::new("k", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
        ]))
        .unwrap();
        let p = to_predicate(
            &[col("k").gt(lit(5i64)).and(col("s").eq(lit("x")))],
            &schema,
        );
        assert_eq!(
            p.unwrap().to_string(),
            "(k > 5) AND (s = \"x\")",
            "both parts translate"
        );
        // Out of the column's range: left out, not wrapped.
        assert!(to_predicate(&[col("k").gt(lit(5_000_000_000i64))], &schema).is_none());
        // Floats (NaN, -0.0) and TRY_CAST are never used for pruning.
        let floats =
            iceberg_schema(&Schema::new(vec![Field::new("f", DataType::Float64, true)])).unwrap();
        assert!(to_predicate(&[col("f").gt(lit(1.0))], &floats).is_none());
        assert!(to_predicate(&[col("f").is_null()], &floats).is_some());
        let try_cast = Expr::TryCast(datafusion::logical_expr::TryCast::new(
            Box::new(col("s")),
            DataType::Int32,
        ));
        assert!(to_predicate(&[try_cast.is_null()], &schema).is_none());
        // An OR with an untranslatable side is left out whole.
        let or = col("k").eq(lit(1)).or(col("s").like(lit("a%")));
        assert!(to_predicate(&[or], &schema).is_none());
    }
}
