//! PostgreSQL column types mapped to Arrow, and decoders from PostgreSQL's binary wire format into
//! Arrow arrays.
//!
//! Mapping (by the column's type OID, domains resolved to their base type):
//!
//! | PostgreSQL | Arrow |
//! |---|---|
//! | bool | Boolean |
//! | int2 / int4 / int8 | Int16 / Int32 / Int64 |
//! | float4 / float8 | Float32 / Float64 |
//! | numeric(p, s) with 1 <= p <= 38 and 0 <= s <= p | Decimal128(p, s) |
//! | numeric without typmod, or p > 38, or a negative scale | Utf8 (the exact text, never rounded) |
//! | text, varchar, name | Utf8 |
//! | char(n) / bpchar | Utf8 without the blank padding (read through `::text`, as PostgreSQL compares it) |
//! | bytea | Binary |
//! | date | Date32 |
//! | time | Time64(µs) |
//! | timestamp | Timestamp(µs, None) |
//! | timestamptz | Timestamp(µs, "UTC") |
//! | interval | Interval(MonthDayNano) |
//! | one-dimensional array of any of the above | List of that type |
//! | every other type (uuid, json, jsonb, enums, "char", timetz, inet, ranges, composites, ...) | Utf8: cast to `text` in the remote SQL |
//! | array of such a type | List(Utf8): cast to `text[]` in the remote SQL |
//!
//! So no column is ever dropped and nothing is silently rounded; each column read as text is logged
//! once. Values arrow cannot hold fail the query with an error naming the column: `NaN` or
//! `Infinity` in a numeric(p, s) column, `infinity` dates and timestamps, timestamps after year
//! 294246, intervals of more than about 292 years in their time part, arrays with more than one
//! dimension.
//!
//! Clients see the PostgreSQL type of the source for uuid, json, jsonb, unconstrained numeric,
//! varchar(n), char(n) (values blank-padded again) and name: those string columns carry the type in
//! their field metadata ([`front_end_type`]). Enums and the other types read as text are `text`;
//! arrays of types read as text, and arrays of strings, are `text[]`.

use std::sync::Arc;

use datafusion::arrow::array::NullBufferBuilder;
use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, IntervalMonthDayNanoBuilder,
    ListArray, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, IntervalMonthDayNano, IntervalUnit, TimeUnit,
};
use datafusion::arrow::error::ArrowError;
use datafusion::common::ScalarValue;
use tokio_postgres::types::{FromSql, Type};

use crate::sql_source::SqlKind;
use crate::sql_table::ColumnType;

/// Days from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch).
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// How a PostgreSQL column is read and what Arrow type it becomes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PgType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// numeric(p, s), 1 <= p <= 38, 0 <= s <= p.
    Numeric {
        precision: u8,
        scale: i8,
    },
    /// A native string type (text, varchar, bpchar, name), read as UTF-8.
    Text {
        /// Whether `=` / `<>` against a string literal means the same at the source as in
        /// DataFusion: text/varchar/name under a deterministic (default, C, POSIX) collation. Not
        /// bpchar, whose comparisons ignore trailing blanks.
        eq_pushable: bool,
        /// Whether two values are equal at the source exactly when their bytes are (a deterministic
        /// collation; bpchar too, since every value is padded to the same length).
        deterministic: bool,
        /// char(n) / bpchar: read through `::text`, which drops the blank padding, so that
        /// equality, grouping and ordering of the values read agree with PostgreSQL's (which
        /// ignore trailing blanks).
        padded: bool,
    },
    /// Any other type, cast to `text` in the remote SQL.
    AsText,
    Bytea,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    Interval,
    /// A one-dimensional array of the element type (`AsText` elements: cast to `text[]`).
    List(Box<PgType>),
}

// Built-in type OIDs (pg_type.dat; fixed across versions).
const BOOL: u32 = 16;
const BYTEA: u32 = 17;
const NAME: u32 = 19;
const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const TEXT: u32 = 25;
const FLOAT4: u32 = 700;
const FLOAT8: u32 = 701;
const BPCHAR: u32 = 1042;
const VARCHAR: u32 = 1043;
const DATE: u32 = 1082;
const TIME: u32 = 1083;
const TIMESTAMP: u32 = 1114;
const TIMESTAMPTZ: u32 = 1184;
const INTERVAL: u32 = 1186;
const NUMERIC: u32 = 1700;
const JSON: u32 = 114;
const UUID: u32 = 2950;
const JSONB: u32 = 3802;
/// Collations under which string equality is plain byte equality: 0 (none), default, C, POSIX.
const DETERMINISTIC_COLLATIONS: [u32; 4] = [0, 100, 950, 951];

impl PgType {
    /// The mapping of a column whose (base) type is `oid` with modifier `typmod`; `array_elem` is the
    /// element type OID when the type is an array (`typcategory = 'A'`), `collation` the column's.
    pub(crate) fn from_pg(oid: u32, typmod: i32, array_elem: Option<u32>, collation: u32) -> Self {
        if let Some(elem) = array_elem {
            let elem = Self::scalar(elem, typmod, collation);
            return PgType::List(Box::new(elem));
        }
        Self::scalar(oid, typmod, collation)
    }

    fn scalar(oid: u32, typmod: i32, collation: u32) -> Self {
        let deterministic = DETERMINISTIC_COLLATIONS.contains(&collation);
        match oid {
            BOOL => PgType::Bool,
            INT2 => PgType::Int2,
            INT4 => PgType::Int4,
            INT8 => PgType::Int8,
            FLOAT4 => PgType::Float4,
            FLOAT8 => PgType::Float8,
            NUMERIC => numeric_typmod(typmod)
                .map(|(precision, scale)| PgType::Numeric { precision, scale })
                .unwrap_or(PgType::AsText),
            TEXT | VARCHAR | NAME => PgType::Text {
                eq_pushable: deterministic,
                deterministic,
                padded: false,
            },
            BPCHAR => PgType::Text {
                eq_pushable: false,
                deterministic,
                padded: true,
            },
            BYTEA => PgType::Bytea,
            DATE => PgType::Date,
            TIME => PgType::Time,
            TIMESTAMP => PgType::Timestamp,
            TIMESTAMPTZ => PgType::Timestamptz,
            INTERVAL => PgType::Interval,
            _ => PgType::AsText,
        }
    }

    /// Whether the value is produced by a cast to text (the type had no direct mapping).
    pub(crate) fn is_text_cast(&self) -> bool {
        match self {
            PgType::AsText => true,
            PgType::List(e) => e.is_text_cast(),
            _ => false,
        }
    }

    /// The PostgreSQL type name of a [`PgType::from_arrow`] type.
    pub(crate) fn cast_name(&self) -> Option<String> {
        Some(match self {
            PgType::Bool => "bool".into(),
            PgType::Int2 => "int2".into(),
            PgType::Int4 => "int4".into(),
            PgType::Int8 => "int8".into(),
            PgType::Float4 => "float4".into(),
            PgType::Float8 => "float8".into(),
            PgType::Numeric { precision, scale } => format!("numeric({precision},{scale})"),
            PgType::Text { .. } => "text".into(),
            PgType::Bytea => "bytea".into(),
            PgType::Date => "date".into(),
            PgType::Time => "time".into(),
            PgType::Timestamp => "timestamp".into(),
            PgType::Timestamptz => "timestamptz".into(),
            PgType::Interval => "interval".into(),
            PgType::AsText | PgType::List(_) => return None,
        })
    }

    /// A builder for a column of this type.
    pub(crate) fn builder(&self, capacity: usize) -> Result<ColumnBuilder, ArrowError> {
        Ok(match self {
            PgType::Bool => ColumnBuilder::Bool(BooleanBuilder::with_capacity(capacity)),
            PgType::Int2 => ColumnBuilder::Int2(Int16Builder::with_capacity(capacity)),
            PgType::Int4 => ColumnBuilder::Int4(Int32Builder::with_capacity(capacity)),
            PgType::Int8 => ColumnBuilder::Int8(Int64Builder::with_capacity(capacity)),
            PgType::Float4 => ColumnBuilder::Float4(Float32Builder::with_capacity(capacity)),
            PgType::Float8 => ColumnBuilder::Float8(Float64Builder::with_capacity(capacity)),
            PgType::Numeric { precision, scale } => ColumnBuilder::Numeric(
                Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(*precision, *scale)?,
                *scale,
            ),
            PgType::Text { .. } | PgType::AsText => {
                ColumnBuilder::Text(StringBuilder::with_capacity(capacity, capacity * 16))
            }
            PgType::Bytea => ColumnBuilder::Bytea(BinaryBuilder::with_capacity(capacity, 0)),
            PgType::Date => ColumnBuilder::Date(Date32Builder::with_capacity(capacity)),
            PgType::Time => ColumnBuilder::Time(Time64MicrosecondBuilder::with_capacity(capacity)),
            PgType::Timestamp => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity))
            }
            PgType::Timestamptz => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            ),
            PgType::Interval => {
                ColumnBuilder::Interval(IntervalMonthDayNanoBuilder::with_capacity(capacity))
            }
            PgType::List(e) => {
                let mut offsets = Vec::with_capacity(capacity + 1);
                offsets.push(0);
                ColumnBuilder::List {
                    child: Box::new(e.builder(capacity)?),
                    field: Arc::new(Field::new_list_field(e.arrow_type(), true)),
                    offsets,
                    nulls: NullBufferBuilder::new(capacity),
                }
            }
        })
    }
}

impl ColumnType for PgType {
    /// The Arrow type of the column.
    fn arrow_type(&self) -> DataType {
        match self {
            PgType::Bool => DataType::Boolean,
            PgType::Int2 => DataType::Int16,
            PgType::Int4 => DataType::Int32,
            PgType::Int8 => DataType::Int64,
            PgType::Float4 => DataType::Float32,
            PgType::Float8 => DataType::Float64,
            PgType::Numeric { precision, scale } => DataType::Decimal128(*precision, *scale),
            PgType::Text { .. } | PgType::AsText => DataType::Utf8,
            PgType::Bytea => DataType::Binary,
            PgType::Date => DataType::Date32,
            PgType::Time => DataType::Time64(TimeUnit::Microsecond),
            PgType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            PgType::Timestamptz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            PgType::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
            PgType::List(e) => {
                DataType::List(Arc::new(Field::new_list_field(e.arrow_type(), true)))
            }
        }
    }

    /// The type read for a pushed statement's column of Arrow type `ty` (the statement casts the
    /// column to [`PgType::cast_name`]), if there is one.
    fn from_arrow(ty: &DataType) -> Option<Self> {
        Some(match ty {
            DataType::Boolean => PgType::Bool,
            DataType::Int16 => PgType::Int2,
            DataType::Int32 => PgType::Int4,
            DataType::Int64 => PgType::Int8,
            DataType::Float32 => PgType::Float4,
            DataType::Float64 => PgType::Float8,
            DataType::Decimal128(precision, scale)
                if (1..=38).contains(precision) && (0..=*precision as i8).contains(scale) =>
            {
                PgType::Numeric {
                    precision: *precision,
                    scale: *scale,
                }
            }
            DataType::Utf8 => PgType::Text {
                eq_pushable: false,
                deterministic: false,
                padded: false,
            },
            DataType::Binary => PgType::Bytea,
            DataType::Date32 => PgType::Date,
            DataType::Time64(TimeUnit::Microsecond) => PgType::Time,
            DataType::Timestamp(TimeUnit::Microsecond, None) => PgType::Timestamp,
            DataType::Timestamp(TimeUnit::Microsecond, Some(tz))
                if matches!(tz.as_ref(), "UTC" | "+00:00") =>
            {
                PgType::Timestamptz
            }
            DataType::Interval(IntervalUnit::MonthDayNano) => PgType::Interval,
            _ => return None,
        })
    }

    /// The expression of the remote SELECT list reading the column `quoted` (already quoted).
    fn select_expr(&self, quoted: &str) -> String {
        match self {
            PgType::AsText | PgType::Text { padded: true, .. } => format!("{quoted}::text"),
            PgType::List(e) if **e == PgType::AsText => format!("{quoted}::text[]"),
            _ => quoted.to_string(),
        }
    }

    fn sql_kind(&self) -> SqlKind {
        super::dialect::kind_of(self)
    }

    fn filter_literal(&self, value: &ScalarValue, ordered: bool) -> Option<String> {
        super::pushdown::literal_sql(self, value, ordered)
    }

    fn is_predicate(&self) -> bool {
        *self == PgType::Bool
    }
}

/// The PostgreSQL type a column read as `ty` from a column of (base) type `oid` with modifier
/// `typmod` is reported as to clients, when it is not what its Arrow type says (see the module docs):
/// the value of the `tributary.pg_type` field metadata.
pub(crate) fn front_end_type(oid: u32, typmod: i32, ty: &PgType) -> Option<String> {
    let length = |base: &str| {
        if typmod >= 4 {
            format!("{base}({})", typmod - 4)
        } else {
            base.to_string()
        }
    };
    Some(match (oid, ty) {
        (UUID, PgType::AsText) => "uuid".into(),
        (JSON, PgType::AsText) => "json".into(),
        (JSONB, PgType::AsText) => "jsonb".into(),
        (NUMERIC, PgType::AsText) => "numeric".into(),
        (VARCHAR, PgType::Text { .. }) => length("varchar"),
        (BPCHAR, PgType::Text { .. }) => length("bpchar"),
        (NAME, PgType::Text { .. }) => "name".into(),
        _ => return None,
    })
}

/// Precision and scale of a numeric typmod, when Decimal128 can hold every value exactly.
fn numeric_typmod(typmod: i32) -> Option<(u8, i8)> {
    if typmod < 4 {
        return None;
    }
    let t = typmod - 4;
    let precision = (t >> 16) & 0xffff;
    // PostgreSQL 15 stores the scale in the low 11 bits, signed.
    let scale = ((t & 0x7ff) ^ 1024) - 1024;
    if (1..=38).contains(&precision) && (0..=precision).contains(&scale) {
        Some((u8::try_from(precision).ok()?, i8::try_from(scale).ok()?))
    } else {
        None
    }
}

/// The raw binary value of any column, as tokio-postgres received it.
pub(crate) struct RawValue<'a>(pub &'a [u8]);

impl<'a> FromSql<'a> for RawValue<'a> {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawValue(raw))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// Accumulates one column's values (binary wire format) into an Arrow array.
pub(crate) enum ColumnBuilder {
    Bool(BooleanBuilder),
    Int2(Int16Builder),
    Int4(Int32Builder),
    Int8(Int64Builder),
    Float4(Float32Builder),
    Float8(Float64Builder),
    Numeric(Decimal128Builder, i8),
    Text(StringBuilder),
    Bytea(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Interval(IntervalMonthDayNanoBuilder),
    List {
        child: Box<ColumnBuilder>,
        field: FieldRef,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
    },
}

fn fixed<const N: usize>(raw: &[u8], what: &str) -> Result<[u8; N], String> {
    raw.try_into()
        .map_err(|_| format!("bad {what} value: {} bytes", raw.len()))
}

fn take_i32(raw: &mut &[u8]) -> Result<i32, String> {
    if raw.len() < 4 {
        return Err("truncated array value".into());
    }
    let (head, rest) = raw.split_at(4);
    *raw = rest;
    Ok(i32::from_be_bytes(fixed(head, "int4")?))
}

impl ColumnBuilder {
    /// Appends one value: `None` for SQL NULL, else its binary representation.
    pub(crate) fn append(&mut self, value: Option<&[u8]>) -> Result<(), String> {
        let Some(raw) = value else {
            self.append_null();
            return Ok(());
        };
        match self {
            ColumnBuilder::Bool(b) => b.append_value(fixed::<1>(raw, "bool")?[0] != 0),
            ColumnBuilder::Int2(b) => b.append_value(i16::from_be_bytes(fixed(raw, "int2")?)),
            ColumnBuilder::Int4(b) => b.append_value(i32::from_be_bytes(fixed(raw, "int4")?)),
            ColumnBuilder::Int8(b) => b.append_value(i64::from_be_bytes(fixed(raw, "int8")?)),
            ColumnBuilder::Float4(b) => b.append_value(f32::from_be_bytes(fixed(raw, "float4")?)),
            ColumnBuilder::Float8(b) => b.append_value(f64::from_be_bytes(fixed(raw, "float8")?)),
            ColumnBuilder::Numeric(b, scale) => b.append_value(decode_numeric(raw, *scale)?),
            ColumnBuilder::Text(b) => b.append_value(
                std::str::from_utf8(raw).map_err(|e| format!("invalid UTF-8 text: {e}"))?,
            ),
            ColumnBuilder::Bytea(b) => b.append_value(raw),
            ColumnBuilder::Date(b) => {
                let days = i32::from_be_bytes(fixed(raw, "date")?);
                if days == i32::MAX || days == i32::MIN {
                    return Err("infinite date cannot be represented".into());
                }
                b.append_value(days.checked_add(PG_EPOCH_DAYS).ok_or("date out of range")?)
            }
            ColumnBuilder::Time(b) => b.append_value(i64::from_be_bytes(fixed(raw, "time")?)),
            ColumnBuilder::Timestamp(b) => {
                let micros = i64::from_be_bytes(fixed(raw, "timestamp")?);
                if micros == i64::MAX || micros == i64::MIN {
                    return Err("infinite timestamp cannot be represented".into());
                }
                b.append_value(
                    micros
                        .checked_add(PG_EPOCH_MICROS)
                        .ok_or("timestamp out of range")?,
                )
            }
            ColumnBuilder::Interval(b) => {
                let raw: [u8; 16] = fixed(raw, "interval")?;
                let micros = i64::from_be_bytes(raw[0..8].try_into().map_err(|_| "interval")?);
                let days = i32::from_be_bytes(raw[8..12].try_into().map_err(|_| "interval")?);
                let months = i32::from_be_bytes(raw[12..16].try_into().map_err(|_| "interval")?);
                let nanos = micros
                    .checked_mul(1000)
                    .ok_or("interval out of range for nanoseconds")?;
                b.append_value(IntervalMonthDayNano::new(months, days, nanos))
            }
            ColumnBuilder::List {
                child,
                offsets,
                nulls,
                ..
            } => {
                let mut rest = raw;
                let ndim = take_i32(&mut rest)?;
                let _has_nulls = take_i32(&mut rest)?;
                let _elem_oid = take_i32(&mut rest)?;
                let count = match ndim {
                    0 => 0,
                    1 => {
                        let n = take_i32(&mut rest)?;
                        let _lower_bound = take_i32(&mut rest)?;
                        n
                    }
                    n => {
                        return Err(format!(
                            "arrays with {n} dimensions are not supported (only one-dimensional)"
                        ));
                    }
                };
                for _ in 0..count {
                    let len = take_i32(&mut rest)?;
                    if len < 0 {
                        child.append(None)?;
                    } else {
                        let len = usize::try_from(len).map_err(|_| "bad array element length")?;
                        if rest.len() < len {
                            return Err("truncated array element".into());
                        }
                        let (elem, tail) = rest.split_at(len);
                        rest = tail;
                        child.append(Some(elem))?;
                    }
                }
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last.checked_add(count).ok_or("list too long")?);
                nulls.append_non_null();
            }
        }
        Ok(())
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::Int2(b) => b.append_null(),
            ColumnBuilder::Int4(b) => b.append_null(),
            ColumnBuilder::Int8(b) => b.append_null(),
            ColumnBuilder::Float4(b) => b.append_null(),
            ColumnBuilder::Float8(b) => b.append_null(),
            ColumnBuilder::Numeric(b, _) => b.append_null(),
            ColumnBuilder::Text(b) => b.append_null(),
            ColumnBuilder::Bytea(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Time(b) => b.append_null(),
            ColumnBuilder::Timestamp(b) => b.append_null(),
            ColumnBuilder::Interval(b) => b.append_null(),
            ColumnBuilder::List { offsets, nulls, .. } => {
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last);
                nulls.append_null();
            }
        }
    }

    /// The array of the values appended since the last `finish`.
    pub(crate) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        Ok(match self {
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::Int2(b) => Arc::new(b.finish()),
            ColumnBuilder::Int4(b) => Arc::new(b.finish()),
            ColumnBuilder::Int8(b) => Arc::new(b.finish()),
            ColumnBuilder::Float4(b) => Arc::new(b.finish()),
            ColumnBuilder::Float8(b) => Arc::new(b.finish()),
            ColumnBuilder::Numeric(b, _) => Arc::new(b.finish()),
            ColumnBuilder::Text(b) => Arc::new(b.finish()),
            ColumnBuilder::Bytea(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Time(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
            ColumnBuilder::Interval(b) => Arc::new(b.finish()),
            ColumnBuilder::List {
                child,
                field,
                offsets,
                nulls,
            } => {
                let values = child.finish()?;
                let offsets = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                Arc::new(ListArray::try_new(
                    Arc::clone(field),
                    offsets,
                    values,
                    nulls.finish(),
                )?)
            }
        })
    }
}

/// A binary `numeric` value as an integer scaled by `10^scale` (exact, or an error).
fn decode_numeric(raw: &[u8], scale: i8) -> Result<i128, String> {
    let mut rest = raw;
    let mut take_u16 = || -> Result<u16, String> {
        if rest.len() < 2 {
            return Err("truncated numeric value".into());
        }
        let (head, tail) = rest.split_at(2);
        rest = tail;
        Ok(u16::from_be_bytes([head[0], head[1]]))
    };
    let ndigits = take_u16()?;
    let weight = i32::from(take_u16()? as i16);
    let sign = take_u16()?;
    let _dscale = take_u16()?;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err("NaN cannot be represented as a decimal".into()),
        _ => return Err("infinite numeric cannot be represented as a decimal".into()),
    }
    let mut value: i128 = 0;
    for i in 0..i32::from(ndigits) {
        let digit = i128::from(take_u16()?);
        let exp = 4 * (weight - i) + i32::from(scale);
        let overflow = || "numeric value does not fit Decimal128".to_string();
        if exp >= 0 {
            let factor = 10i128
                .checked_pow(u32::try_from(exp).map_err(|_| overflow())?)
                .ok_or_else(overflow)?;
            value = digit
                .checked_mul(factor)
                .and_then(|d| value.checked_add(d))
                .ok_or_else(overflow)?;
        } else {
            let divisor = 10i128.pow(u32::try_from(-exp).unwrap_or(4).min(4));
            if exp <= -4 || digit % divisor != 0 {
                if digit != 0 {
                    return Err("numeric value has more fractional digits than its scale".into());
                }
            } else {
                value = value.checked_add(digit / divisor).ok_or_else(overflow)?;
            }
        }
    }
    Ok(if sign == 0x4000 { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_typmods() {
        // numeric(10, 2)
        assert_eq!(numeric_typmod((10 << 16 | 2) + 4), Some((10, 2)));
        assert_eq!(numeric_typmod((38 << 16 | 10) + 4), Some((38, 10)));
        assert_eq!(numeric_typmod((39 << 16) + 4), None);
        assert_eq!(numeric_typmod(-1), None);
    }

    #[test]
    fn front_end_types() {
        let text = PgType::from_pg(VARCHAR, 24, None, 100);
        assert_eq!(
            front_end_type(VARCHAR, 24, &text).as_deref(),
            Some("varchar(20)")
        );
        assert_eq!(
            front_end_type(VARCHAR, -1, &text).as_deref(),
            Some("varchar")
        );
        let uuid = PgType::from_pg(UUID, -1, None, 0);
        assert_eq!(front_end_type(UUID, -1, &uuid).as_deref(), Some("uuid"));
        let numeric = PgType::from_pg(NUMERIC, -1, None, 0);
        assert_eq!(
            front_end_type(NUMERIC, -1, &numeric).as_deref(),
            Some("numeric")
        );
        let exact = PgType::from_pg(NUMERIC, (10 << 16 | 2) + 4, None, 0);
        assert_eq!(front_end_type(NUMERIC, (10 << 16 | 2) + 4, &exact), None);
        assert_eq!(front_end_type(TEXT, -1, &text), None);
    }

    #[test]
    fn numeric_values() {
        // 1.5 at scale 2: ndigits 2, weight 0, sign +, dscale 1, digits [1, 5000].
        let raw = [0, 2, 0, 0, 0, 0, 0, 1, 0, 1, 0x13, 0x88];
        assert_eq!(decode_numeric(&raw, 2), Ok(150));
        // -12345.678 at scale 3: digits [1, 2345, 6780], weight 1.
        let raw = [0, 3, 0, 1, 0x40, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c];
        assert_eq!(decode_numeric(&raw, 3), Ok(-12_345_678));
    }
}
