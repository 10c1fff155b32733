//! MySQL / MariaDB column types mapped to Arrow, and decoders from the values of the binary protocol
//! (prepared statements, as `mysql_async` hands them over) into Arrow arrays.
//!
//! Mapping (by `information_schema.COLUMNS.DATA_TYPE` and `COLUMN_TYPE`):
//!
//! | MySQL / MariaDB | Arrow |
//! |---|---|
//! | tinyint / smallint / mediumint / int / bigint | Int8 / Int16 / Int32 / Int32 / Int64 |
//! | the same `unsigned` | Int16 / Int32 / Int32 / Int64 / Decimal128(20, 0) (every value exact) |
//! | decimal(p, s) with p <= 38 | Decimal128(p, s) |
//! | decimal(p, s) with p > 38 | Utf8 (the exact text, never rounded) |
//! | float / double | Float32 / Float64 |
//! | char, varchar, tinytext .. longtext, json (MariaDB: longtext), enum, set | Utf8 |
//! | binary, varbinary, tinyblob .. longblob | Binary |
//! | date | Date32 |
//! | datetime | Timestamp(µs, None) |
//! | timestamp | Timestamp(µs, "UTC") (sessions use `time_zone = '+00:00'`) |
//! | time | Time64(µs); with `time_type = "interval"` in the catalog file: Interval(MonthDayNano) |
//! | year | Int16 |
//! | bit(n), n <= 63 | Int64 (the bits as an unsigned number) |
//! | bit(64) | Binary (8 bytes, big-endian) |
//! | every other type (uuid, inet4, inet6, MySQL's binary json, geometry, ...) | Utf8: `CAST(col AS CHAR)` in the remote SQL (geometries: `ST_AsText(col)`), logged once per column |
//!
//! Clients see json (MySQL's json, and MariaDB's longtext checked by `json_valid`) as `json`,
//! MariaDB's uuid as `uuid`,
//! char(n) / varchar(n) as `varchar(n)` and decimals read as text as `numeric`: those string columns
//! carry the type in their field metadata ([`front_end_type`]); enum and set are `text`.
//!
//! So no column is ever dropped and nothing is silently rounded. Values Arrow cannot hold fail the
//! query with an error naming the column: zero dates (`0000-00-00`, or a zero month/day, only
//! storable under a non-strict `sql_mode`), and — with the default `time_type = "time"` — a `time`
//! value outside `00:00:00 .. 23:59:59.999999` (MySQL's range is `-838:59:59 .. 838:59:59`: set
//! `time_type = "interval"` for such columns' catalog).

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder,
    Int8Builder, Int16Builder, Int32Builder, Int64Builder, IntervalMonthDayNanoBuilder,
    StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNano, IntervalUnit, TimeUnit};
use datafusion::arrow::error::ArrowError;
use datafusion::common::ScalarValue;
use mysql_async::Value;

use crate::sql_source::SqlKind;
use crate::sql_table::ColumnType;

/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400_000_000;

/// How a MySQL column is read and what Arrow type it becomes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MyType {
    /// A signed or unsigned integer read into the given width (bits: 8, 16, 32, 64).
    Int {
        bits: u8,
        /// Whether the source column is unsigned (only matters for display and pushdown).
        unsigned: bool,
    },
    /// bigint unsigned, as Decimal128(20, 0).
    UBigint,
    /// decimal(p, s) with p <= 38.
    Decimal {
        precision: u8,
        scale: i8,
    },
    Float,
    Double,
    /// A native string type (char, varchar, text, enum, set, json-as-longtext, wide decimals).
    Text,
    /// Any other type, read through `CAST(col AS CHAR)` (or `ST_AsText` for geometries).
    AsText {
        geometry: bool,
    },
    Binary,
    Date,
    Datetime,
    Timestamp,
    Time,
    TimeInterval,
    Year,
    /// bit(n), n <= 63, as Int64.
    Bits,
    /// bit(64), as 8 big-endian bytes.
    Bits64,
}

const GEOMETRY_TYPES: [&str; 8] = [
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
];

impl MyType {
    /// The mapping of a column from its `DATA_TYPE` (e.g. `int`), `COLUMN_TYPE` (e.g.
    /// `int(10) unsigned`), `NUMERIC_PRECISION` and `NUMERIC_SCALE`.
    pub(crate) fn from_mysql(
        data_type: &str,
        column_type: &str,
        precision: Option<u64>,
        scale: Option<u64>,
        time_as_interval: bool,
    ) -> Self {
        let data_type = data_type.to_ascii_lowercase();
        let unsigned = column_type.to_ascii_lowercase().contains("unsigned");
        match data_type.as_str() {
            "tinyint" => MyType::Int {
                bits: if unsigned { 16 } else { 8 },
                unsigned,
            },
            "smallint" => MyType::Int {
                bits: if unsigned { 32 } else { 16 },
                unsigned,
            },
            "mediumint" => MyType::Int { bits: 32, unsigned },
            "int" | "integer" => MyType::Int {
                bits: if unsigned { 64 } else { 32 },
                unsigned,
            },
            "bigint" if unsigned => MyType::UBigint,
            "bigint" => MyType::Int {
                bits: 64,
                unsigned: false,
            },
            "decimal" | "numeric" | "fixed" => match (precision, scale) {
                (Some(p), Some(s)) if (1..=38).contains(&p) && s <= p => MyType::Decimal {
                    precision: u8::try_from(p).unwrap_or(38),
                    scale: i8::try_from(s).unwrap_or(0),
                },
                _ => MyType::Text,
            },
            "float" => MyType::Float,
            "double" | "real" | "double precision" => MyType::Double,
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum"
            | "set" | "long varchar" => MyType::Text,
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"
            | "long varbinary" => MyType::Binary,
            "date" => MyType::Date,
            "datetime" => MyType::Datetime,
            "timestamp" => MyType::Timestamp,
            "time" if time_as_interval => MyType::TimeInterval,
            "time" => MyType::Time,
            "year" => MyType::Year,
            "bit" => match precision {
                Some(64) => MyType::Bits64,
                _ => MyType::Bits,
            },
            other => MyType::AsText {
                geometry: GEOMETRY_TYPES.contains(&other),
            },
        }
    }

    /// Whether the value is produced by a cast to text (the type had no direct mapping).
    pub(crate) fn is_text_cast(&self) -> bool {
        matches!(self, MyType::AsText { .. })
    }

    /// Whether the column holds an integer usable as a split key.
    pub(crate) fn is_integer(&self) -> bool {
        matches!(self, MyType::Int { .. } | MyType::UBigint)
    }

    /// A builder for a column of this type.
    pub(crate) fn builder(&self, capacity: usize) -> Result<ColumnBuilder, ArrowError> {
        Ok(match self {
            MyType::Int { bits: 8, .. } => {
                ColumnBuilder::Int8(Int8Builder::with_capacity(capacity))
            }
            MyType::Int { bits: 16, .. } | MyType::Year => {
                ColumnBuilder::Int16(Int16Builder::with_capacity(capacity))
            }
            MyType::Int { bits: 32, .. } => {
                ColumnBuilder::Int32(Int32Builder::with_capacity(capacity))
            }
            MyType::Int { .. } => ColumnBuilder::Int64(Int64Builder::with_capacity(capacity)),
            MyType::Bits => ColumnBuilder::Bits(Int64Builder::with_capacity(capacity)),
            MyType::UBigint => ColumnBuilder::Decimal(
                Decimal128Builder::with_capacity(capacity).with_precision_and_scale(20, 0)?,
                0,
            ),
            MyType::Decimal { precision, scale } => ColumnBuilder::Decimal(
                Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(*precision, *scale)?,
                *scale,
            ),
            MyType::Float => ColumnBuilder::Float(Float32Builder::with_capacity(capacity)),
            MyType::Double => ColumnBuilder::Double(Float64Builder::with_capacity(capacity)),
            MyType::Text | MyType::AsText { .. } => {
                ColumnBuilder::Text(StringBuilder::with_capacity(capacity, capacity * 16))
            }
            MyType::Binary | MyType::Bits64 => {
                ColumnBuilder::Binary(BinaryBuilder::with_capacity(capacity, 0))
            }
            MyType::Date => ColumnBuilder::Date(Date32Builder::with_capacity(capacity)),
            MyType::Datetime => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity))
            }
            MyType::Timestamp => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            ),
            MyType::Time => ColumnBuilder::Time(Time64MicrosecondBuilder::with_capacity(capacity)),
            MyType::TimeInterval => {
                ColumnBuilder::Interval(IntervalMonthDayNanoBuilder::with_capacity(capacity))
            }
        })
    }
}

impl ColumnType for MyType {
    /// The Arrow type of the column.
    fn arrow_type(&self) -> DataType {
        match self {
            MyType::Int { bits: 8, .. } => DataType::Int8,
            MyType::Int { bits: 16, .. } | MyType::Year => DataType::Int16,
            MyType::Int { bits: 32, .. } => DataType::Int32,
            MyType::Int { .. } | MyType::Bits => DataType::Int64,
            MyType::UBigint => DataType::Decimal128(20, 0),
            MyType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
            MyType::Float => DataType::Float32,
            MyType::Double => DataType::Float64,
            MyType::Text | MyType::AsText { .. } => DataType::Utf8,
            MyType::Binary | MyType::Bits64 => DataType::Binary,
            MyType::Date => DataType::Date32,
            MyType::Datetime => DataType::Timestamp(TimeUnit::Microsecond, None),
            MyType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            MyType::Time => DataType::Time64(TimeUnit::Microsecond),
            MyType::TimeInterval => DataType::Interval(IntervalUnit::MonthDayNano),
        }
    }

    /// The expression of the remote SELECT list reading the column `quoted` (already quoted).
    fn select_expr(&self, quoted: &str) -> String {
        match self {
            MyType::AsText { geometry: true } => format!("ST_AsText({quoted})"),
            MyType::AsText { geometry: false } => format!("CAST({quoted} AS CHAR)"),
            _ => quoted.to_string(),
        }
    }

    fn sql_kind(&self) -> SqlKind {
        super::dialect::kind_of(self)
    }

    fn from_arrow(ty: &DataType) -> Option<Self> {
        super::dialect::reader_type(ty)
    }

    fn filter_literal(&self, value: &ScalarValue, _ordered: bool) -> Option<String> {
        super::pushdown::literal_sql(self, value)
    }
}

/// The PostgreSQL type a column read as `ty` from `DATA_TYPE` `data_type` is reported as to clients,
/// when it is not what its Arrow type says (the `tributary.pg_type` field metadata);
/// `char_length` is `CHARACTER_MAXIMUM_LENGTH`, `json_checked` whether a `json_valid(col)` check
/// makes the column MariaDB's json.
pub(crate) fn front_end_type(
    data_type: &str,
    ty: &MyType,
    char_length: Option<u64>,
    json_checked: bool,
) -> Option<String> {
    let data_type = data_type.to_ascii_lowercase();
    Some(match (data_type.as_str(), ty) {
        ("json", _) => "json".into(),
        (_, MyType::Text) if json_checked => "json".into(),
        ("uuid", MyType::AsText { .. }) => "uuid".into(),
        ("decimal" | "numeric" | "fixed", MyType::Text) => "numeric".into(),
        ("char" | "varchar", MyType::Text) => match char_length {
            Some(n) if (1..=10_485_760).contains(&n) => format!("varchar({n})"),
            _ => "varchar".into(),
        },
        _ => return None,
    })
}

/// Accumulates one column's values into an Arrow array.
pub(crate) enum ColumnBuilder {
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Bits(Int64Builder),
    /// A Decimal128 column and its scale.
    Decimal(Decimal128Builder, i8),
    Float(Float32Builder),
    Double(Float64Builder),
    Text(StringBuilder),
    Binary(BinaryBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Time(Time64MicrosecondBuilder),
    Interval(IntervalMonthDayNanoBuilder),
}

fn unexpected(value: &Value, what: &str) -> String {
    let kind = match value {
        Value::NULL => "NULL",
        Value::Bytes(_) => "bytes",
        Value::Int(_) => "signed integer",
        Value::UInt(_) => "unsigned integer",
        Value::Float(_) => "float",
        Value::Double(_) => "double",
        Value::Date(..) => "date",
        Value::Time(..) => "time",
    };
    format!("unexpected {kind} value for a {what} column")
}

/// An integer value (binary protocol: Int / UInt; text form tolerated).
fn integer(value: &Value) -> Result<i128, String> {
    match value {
        Value::Int(v) => Ok(i128::from(*v)),
        Value::UInt(v) => Ok(i128::from(*v)),
        Value::Bytes(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.trim().parse::<i128>().ok())
            .ok_or_else(|| unexpected(value, "integer")),
        _ => Err(unexpected(value, "integer")),
    }
}

fn narrow<T: TryFrom<i128>>(v: i128) -> Result<T, String> {
    T::try_from(v).map_err(|_| format!("integer {v} out of range"))
}

/// Days since 1970-01-01 of a MySQL date; zero dates (or a zero month / day) are an error.
fn days(year: u16, month: u8, day: u8) -> Result<i32, String> {
    let date = NaiveDate::from_ymd_opt(i32::from(year), u32::from(month), u32::from(day))
        .ok_or_else(|| {
            format!(
                "the MySQL zero date {year:04}-{month:02}-{day:02} cannot be represented \
                 (stored under a non-strict sql_mode)"
            )
        })?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).ok_or("epoch")?;
    i32::try_from((date - epoch).num_days()).map_err(|_| "date out of range".to_string())
}

fn datetime_micros(value: &Value) -> Result<i64, String> {
    match value {
        Value::Date(y, mo, d, h, mi, s, us) => {
            let days = i64::from(days(*y, *mo, *d)?);
            let secs = i64::from(*h) * 3600 + i64::from(*mi) * 60 + i64::from(*s);
            Ok(days * DAY_MICROS + secs * 1_000_000 + i64::from(*us))
        }
        _ => Err(unexpected(value, "datetime")),
    }
}

fn time_micros(value: &Value) -> Result<i64, String> {
    match value {
        Value::Time(negative, days, h, m, s, us) => {
            let secs = i64::from(*days) * 86_400
                + i64::from(*h) * 3600
                + i64::from(*m) * 60
                + i64::from(*s);
            let micros = secs * 1_000_000 + i64::from(*us);
            Ok(if *negative { -micros } else { micros })
        }
        _ => Err(unexpected(value, "time")),
    }
}

/// The decimal text `text` (`-12.5`, `3`, `0.000`) as an integer scaled by `10^scale`, exactly.
pub(crate) fn parse_decimal(text: &str, scale: i8) -> Result<i128, String> {
    let bad = || format!("bad decimal value {text:?}");
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let scale = usize::try_from(scale).map_err(|_| bad())?;
    let (kept, dropped) = frac.split_at(frac.len().min(scale));
    if dropped.bytes().any(|b| b != b'0') {
        return Err(format!(
            "decimal value {text} has more fractional digits than its scale"
        ));
    }
    let mut value: i128 = 0;
    let overflow = || format!("decimal value {text} does not fit Decimal128");
    for b in int.bytes().chain(kept.bytes()) {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(b - b'0')))
            .ok_or_else(overflow)?;
    }
    for _ in kept.len()..scale {
        value = value.checked_mul(10).ok_or_else(overflow)?;
    }
    Ok(if negative { -value } else { value })
}

impl ColumnBuilder {
    /// Appends one value as the binary protocol delivers it (`Value::NULL` for SQL NULL).
    pub(crate) fn append(&mut self, value: &Value) -> Result<(), String> {
        if *value == Value::NULL {
            self.append_null();
            return Ok(());
        }
        match self {
            ColumnBuilder::Int8(b) => b.append_value(narrow(integer(value)?)?),
            ColumnBuilder::Int16(b) => b.append_value(narrow(integer(value)?)?),
            ColumnBuilder::Int32(b) => b.append_value(narrow(integer(value)?)?),
            ColumnBuilder::Int64(b) => b.append_value(narrow(integer(value)?)?),
            ColumnBuilder::Bits(b) => match value {
                Value::Bytes(bytes) if bytes.len() <= 8 => {
                    let v = bytes.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x));
                    b.append_value(i64::try_from(v).map_err(|_| "bit value out of range")?)
                }
                _ => b.append_value(narrow(integer(value)?)?),
            },
            ColumnBuilder::Decimal(b, scale) => {
                let v = match value {
                    Value::Bytes(bytes) => {
                        let text = std::str::from_utf8(bytes)
                            .map_err(|_| "decimal value is not UTF-8".to_string())?;
                        parse_decimal(text, *scale)?
                    }
                    Value::Int(_) | Value::UInt(_) => {
                        let factor = 10i128.pow(u32::try_from(*scale).unwrap_or(0));
                        integer(value)?
                            .checked_mul(factor)
                            .ok_or("decimal value out of range")?
                    }
                    _ => return Err(unexpected(value, "decimal")),
                };
                b.append_value(v)
            }
            ColumnBuilder::Float(b) => match value {
                Value::Float(v) => b.append_value(*v),
                // A double that is exactly a float (some servers send FLOAT as DOUBLE).
                Value::Double(v) if f64::from(*v as f32) == *v => b.append_value(*v as f32),
                _ => return Err(unexpected(value, "float")),
            },
            ColumnBuilder::Double(b) => match value {
                Value::Double(v) => b.append_value(*v),
                Value::Float(v) => b.append_value(f64::from(*v)),
                _ => return Err(unexpected(value, "double")),
            },
            ColumnBuilder::Text(b) => match value {
                Value::Bytes(bytes) => b.append_value(
                    std::str::from_utf8(bytes).map_err(|e| format!("invalid UTF-8 text: {e}"))?,
                ),
                Value::Int(v) => b.append_value(v.to_string()),
                Value::UInt(v) => b.append_value(v.to_string()),
                _ => return Err(unexpected(value, "text")),
            },
            ColumnBuilder::Binary(b) => match value {
                Value::Bytes(bytes) => b.append_value(bytes),
                _ => return Err(unexpected(value, "binary")),
            },
            ColumnBuilder::Date(b) => match value {
                Value::Date(y, m, d, ..) => b.append_value(days(*y, *m, *d)?),
                _ => return Err(unexpected(value, "date")),
            },
            ColumnBuilder::Timestamp(b) => b.append_value(datetime_micros(value)?),
            ColumnBuilder::Time(b) => {
                let micros = time_micros(value)?;
                if !(0..DAY_MICROS).contains(&micros) {
                    return Err(format!(
                        "time value {} is outside 00:00:00 .. 23:59:59.999999; set \
                         `time_type = \"interval\"` in the catalog file to read such columns as \
                         intervals",
                        time_text(micros)
                    ));
                }
                b.append_value(micros)
            }
            ColumnBuilder::Interval(b) => {
                let micros = time_micros(value)?;
                b.append_value(IntervalMonthDayNano::new(0, 0, micros * 1_000))
            }
        }
        Ok(())
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Int8(b) => b.append_null(),
            ColumnBuilder::Int16(b) => b.append_null(),
            ColumnBuilder::Int32(b) => b.append_null(),
            ColumnBuilder::Int64(b) | ColumnBuilder::Bits(b) => b.append_null(),
            ColumnBuilder::Decimal(b, _) => b.append_null(),
            ColumnBuilder::Float(b) => b.append_null(),
            ColumnBuilder::Double(b) => b.append_null(),
            ColumnBuilder::Text(b) => b.append_null(),
            ColumnBuilder::Binary(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Timestamp(b) => b.append_null(),
            ColumnBuilder::Time(b) => b.append_null(),
            ColumnBuilder::Interval(b) => b.append_null(),
        }
    }

    /// The array of the values appended since the last `finish`.
    pub(crate) fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Int8(b) => Arc::new(b.finish()),
            ColumnBuilder::Int16(b) => Arc::new(b.finish()),
            ColumnBuilder::Int32(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) | ColumnBuilder::Bits(b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal(b, _) => Arc::new(b.finish()),
            ColumnBuilder::Float(b) => Arc::new(b.finish()),
            ColumnBuilder::Double(b) => Arc::new(b.finish()),
            ColumnBuilder::Text(b) => Arc::new(b.finish()),
            ColumnBuilder::Binary(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
            ColumnBuilder::Time(b) => Arc::new(b.finish()),
            ColumnBuilder::Interval(b) => Arc::new(b.finish()),
        }
    }
}

/// `[-]H:MM:SS.ffffff` for error messages.
fn time_text(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let secs = m / 1_000_000;
    format!(
        "{sign}{}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        m % 1_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal("12.50", 2), Ok(1250));
        assert_eq!(parse_decimal("-0.05", 2), Ok(-5));
        assert_eq!(parse_decimal("7", 3), Ok(7000));
        assert_eq!(parse_decimal("1.230", 2), Ok(123));
        assert!(parse_decimal("1.235", 2).is_err());
        assert!(parse_decimal("abc", 0).is_err());
        assert_eq!(
            parse_decimal("18446744073709551615", 0),
            Ok(18_446_744_073_709_551_615)
        );
    }

    #[test]
    fn mapping() {
        let t = |d: &str, c: &str, p: Option<u64>, s: Option<u64>| {
            MyType::from_mysql(d, c, p, s, false).arrow_type()
        };
        assert_eq!(t("tinyint", "tinyint(4)", None, None), DataType::Int8);
        assert_eq!(
            t("tinyint", "tinyint(3) unsigned", None, None),
            DataType::Int16
        );
        assert_eq!(
            t("bigint", "bigint(20) unsigned", None, None),
            DataType::Decimal128(20, 0)
        );
        assert_eq!(
            t("decimal", "decimal(10,2)", Some(10), Some(2)),
            DataType::Decimal128(10, 2)
        );
        assert_eq!(
            t("decimal", "decimal(65,30)", Some(65), Some(30)),
            DataType::Utf8
        );
        assert_eq!(t("bit", "bit(1)", Some(1), None), DataType::Int64);
        assert_eq!(t("bit", "bit(64)", Some(64), None), DataType::Binary);
        assert_eq!(t("uuid", "uuid", None, None), DataType::Utf8);
        assert!(MyType::from_mysql("inet6", "inet6", None, None, false).is_text_cast());
        assert_eq!(
            MyType::from_mysql("time", "time(6)", None, None, true).arrow_type(),
            DataType::Interval(IntervalUnit::MonthDayNano)
        );
    }

    #[test]
    fn front_end_types() {
        let text = MyType::from_mysql("varchar", "varchar(20)", None, None, false);
        assert_eq!(
            front_end_type("varchar", &text, Some(20), false).as_deref(),
            Some("varchar(20)")
        );
        assert_eq!(
            front_end_type("longtext", &text, Some(4_294_967_295), true).as_deref(),
            Some("json")
        );
        assert_eq!(front_end_type("longtext", &text, None, false), None);
        let wide = MyType::from_mysql("decimal", "decimal(65,30)", Some(65), Some(30), false);
        assert_eq!(
            front_end_type("decimal", &wide, None, false).as_deref(),
            Some("numeric")
        );
    }

    #[test]
    fn times() {
        assert_eq!(time_text(-(3_020_399_000_000)), "-838:59:59.000000");
        let v = Value::Time(true, 34, 22, 59, 59, 0);
        assert_eq!(time_micros(&v), Ok(-3_020_399_000_000));
        assert!(days(0, 0, 0).is_err());
        assert_eq!(days(1970, 1, 2), Ok(1));
    }
}
