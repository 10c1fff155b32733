//! How one result column is written: a [`ValueEncoder`] chosen from the column's Arrow type and
//! the PostgreSQL type reported for it, writing each value in PostgreSQL's own text or binary
//! format. Columns with no encoder here (structs, dictionaries, unsigned integers, ...) are left to
//! `arrow-pg`.

use std::str::FromStr;

use chrono::{DateTime, Offset, TimeZone};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Float32Type, Float64Type, Int8Type,
    Int16Type, Int32Type, Int64Type, IntervalMonthDayNanoType, IntervalUnit, Time32MillisecondType,
    Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use pgwire::api::Type;
use pgwire::api::results::FieldFormat;
use pgwire::types::format::FormatOptions;

use super::datetime::{
    date_binary, date_text, interval_binary, interval_text, time_text, timestamp_binary,
    timestamp_text,
};
use super::number::{decimal_binary, decimal_text, float4_text, float8_text, numeric_text_binary};

/// Writes the values of one column (of a fixed Arrow type) as one PostgreSQL type.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ValueEncoder {
    Bool,
    /// Int8 as int2 (2 bytes in binary).
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// Decimal128 as numeric, exactly (any precision up to 38).
    Decimal {
        scale: i8,
    },
    /// A string reported as text, varchar, name or json (binary format = the UTF-8 bytes).
    Text,
    /// A string holding exact numeric text (`NaN` and infinities included), reported as numeric.
    NumericText,
    /// A string holding a uuid, reported as uuid (16 bytes in binary).
    Uuid,
    /// A string holding json, reported as jsonb (version byte 1, then the text, in binary).
    Jsonb,
    /// A string reported as char(n): blank-padded to `len` characters, as PostgreSQL returns it.
    Bpchar {
        len: Option<usize>,
    },
    Bytea,
    Date32,
    Date64,
    Time(TimeUnit),
    Timestamp {
        unit: TimeUnit,
        /// timestamptz: shown at the session's time zone in text.
        tz: bool,
    },
    Interval,
    /// A one-dimensional array of `elem` values, whose PostgreSQL type is `elem_oid`.
    List {
        elem: Box<ValueEncoder>,
        elem_oid: u32,
    },
}

/// The session settings text output depends on.
pub(super) struct TextSettings {
    extra_float_digits: i8,
    bytea_hex: bool,
    zone: Zone,
    /// `DateStyle` is ISO (the only style written here; others are left to arrow-pg).
    iso_dates: bool,
    /// `IntervalStyle` is postgres (likewise).
    postgres_intervals: bool,
}

/// The session's `TimeZone`, for showing timestamptz values.
enum Zone {
    Fixed(i32),
    Named(Tz),
}

impl TextSettings {
    pub(super) fn new(options: &FormatOptions) -> Self {
        let tz = options.time_zone.trim();
        let zone = if tz.is_empty()
            || ["utc", "etc/utc", "gmt", "etc/gmt", "z", "zulu", "universal"]
                .contains(&tz.to_ascii_lowercase().as_str())
        {
            Zone::Fixed(0)
        } else {
            match Tz::from_str(tz) {
                Ok(tz) => Zone::Named(tz),
                Err(_) => Zone::Fixed(0),
            }
        };
        TextSettings {
            extra_float_digits: options.extra_float_digits,
            bytea_hex: !options.bytea_output.eq_ignore_ascii_case("escape"),
            zone,
            iso_dates: options
                .date_style
                .trim()
                .to_ascii_lowercase()
                .starts_with("iso"),
            postgres_intervals: options
                .interval_style
                .trim()
                .eq_ignore_ascii_case("postgres"),
        }
    }

    /// The session zone's UTC offset (seconds) at the instant `micros` since 1970 UTC.
    fn offset_at(&self, micros: i64) -> i32 {
        match &self.zone {
            Zone::Fixed(offset) => *offset,
            Zone::Named(tz) => DateTime::from_timestamp_micros(micros)
                .map(|utc| {
                    tz.offset_from_utc_datetime(&utc.naive_utc())
                        .fix()
                        .local_minus_utc()
                })
                .unwrap_or(0),
        }
    }
}

impl ValueEncoder {
    /// The encoder for a column of Arrow type `data_type` reported as `ty` (with type modifier
    /// `typmod`) in `format`, or `None` to leave the column to arrow-pg.
    pub(super) fn choose(
        data_type: &DataType,
        ty: &Type,
        typmod: i32,
        format: FieldFormat,
        text: &TextSettings,
    ) -> Option<ValueEncoder> {
        let in_text = format == FieldFormat::Text;
        let dates_ok = !in_text || text.iso_dates;
        Some(match data_type {
            DataType::Boolean if *ty == Type::BOOL => ValueEncoder::Bool,
            DataType::Int8 if *ty == Type::INT2 => ValueEncoder::Int8,
            DataType::Int16 if *ty == Type::INT2 => ValueEncoder::Int16,
            DataType::Int32 if *ty == Type::INT4 => ValueEncoder::Int32,
            DataType::Int64 if *ty == Type::INT8 => ValueEncoder::Int64,
            DataType::Float32 if *ty == Type::FLOAT4 => ValueEncoder::Float32,
            DataType::Float64 if *ty == Type::FLOAT8 => ValueEncoder::Float64,
            DataType::Decimal128(_, scale) if *ty == Type::NUMERIC => {
                ValueEncoder::Decimal { scale: *scale }
            }
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => match ty {
                t if *t == Type::UUID => ValueEncoder::Uuid,
                t if *t == Type::JSONB => ValueEncoder::Jsonb,
                t if *t == Type::NUMERIC => ValueEncoder::NumericText,
                t if *t == Type::BPCHAR => ValueEncoder::Bpchar {
                    len: usize::try_from(typmod - 4).ok().filter(|_| typmod >= 4),
                },
                t if [Type::TEXT, Type::VARCHAR, Type::NAME, Type::JSON].contains(t) => {
                    ValueEncoder::Text
                }
                _ => return None,
            },
            DataType::Binary | DataType::BinaryView | DataType::LargeBinary
                if *ty == Type::BYTEA =>
            {
                ValueEncoder::Bytea
            }
            DataType::Date32 if *ty == Type::DATE && dates_ok => ValueEncoder::Date32,
            DataType::Date64 if *ty == Type::DATE && dates_ok => ValueEncoder::Date64,
            DataType::Time32(unit) | DataType::Time64(unit) if *ty == Type::TIME && dates_ok => {
                ValueEncoder::Time(*unit)
            }
            DataType::Timestamp(unit, zone) if dates_ok => {
                let tz = zone.is_some();
                let expected = if tz {
                    Type::TIMESTAMPTZ
                } else {
                    Type::TIMESTAMP
                };
                if *ty != expected {
                    return None;
                }
                ValueEncoder::Timestamp { unit: *unit, tz }
            }
            DataType::Interval(IntervalUnit::MonthDayNano)
                if *ty == Type::INTERVAL && (!in_text || text.postgres_intervals) =>
            {
                ValueEncoder::Interval
            }
            DataType::List(field) => {
                let elem_ty = array_element(ty)?;
                let elem = Self::choose(field.data_type(), &elem_ty, -1, format, text)?;
                ValueEncoder::List {
                    elem: Box::new(elem),
                    elem_oid: elem_ty.oid(),
                }
            }
            _ => return None,
        })
    }

    /// Writes value `row` of `array` (not null) in PostgreSQL's text format.
    pub(super) fn text(
        &self,
        array: &dyn Array,
        row: usize,
        settings: &TextSettings,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let mut put = |s: &str| out.extend_from_slice(s.as_bytes());
        let mut ints = itoa::Buffer::new();
        match self {
            ValueEncoder::Bool => put(if bool_value(array, row)? { "t" } else { "f" }),
            ValueEncoder::Int8 => put(ints.format(prim::<Int8Type>(array, row)?)),
            ValueEncoder::Int16 => put(ints.format(prim::<Int16Type>(array, row)?)),
            ValueEncoder::Int32 => put(ints.format(prim::<Int32Type>(array, row)?)),
            ValueEncoder::Int64 => put(ints.format(prim::<Int64Type>(array, row)?)),
            ValueEncoder::Float32 => put(&float4_text(
                prim::<Float32Type>(array, row)?,
                settings.extra_float_digits,
            )),
            ValueEncoder::Float64 => put(&float8_text(
                prim::<Float64Type>(array, row)?,
                settings.extra_float_digits,
            )),
            ValueEncoder::Decimal { scale } => {
                decimal_text(prim::<Decimal128Type>(array, row)?, *scale, out)
            }
            ValueEncoder::Text
            | ValueEncoder::NumericText
            | ValueEncoder::Uuid
            | ValueEncoder::Jsonb => put(string(array, row)?),
            ValueEncoder::Bpchar { len } => padded(string(array, row)?, *len, out),
            ValueEncoder::Bytea => bytea_text(binary(array, row)?, settings.bytea_hex, out),
            ValueEncoder::Date32 => date_text(i64::from(prim::<Date32Type>(array, row)?), out),
            ValueEncoder::Date64 => {
                date_text(prim::<Date64Type>(array, row)?.div_euclid(86_400_000), out)
            }
            ValueEncoder::Time(unit) => time_text(time_micros(array, row, *unit)?, out),
            ValueEncoder::Timestamp { unit, tz } => {
                let micros = timestamp_micros(array, row, *unit)?;
                let offset = tz.then(|| settings.offset_at(micros));
                timestamp_text(micros, offset, out)
            }
            ValueEncoder::Interval => {
                let v = prim::<IntervalMonthDayNanoType>(array, row)?;
                interval_text(v.months, v.days, v.nanoseconds / 1000, out)
            }
            ValueEncoder::List { elem, .. } => {
                let list = list_value(array, row)?;
                out.push(b'{');
                let mut item = Vec::new();
                for i in 0..list.len() {
                    if i > 0 {
                        out.push(b',');
                    }
                    if list.is_null(i) {
                        out.extend_from_slice(b"NULL");
                        continue;
                    }
                    item.clear();
                    elem.text(list.as_ref(), i, settings, &mut item)?;
                    quote_element(&item, out);
                }
                out.push(b'}');
            }
        }
        Ok(())
    }

    /// Writes value `row` of `array` (not null) in PostgreSQL's binary format.
    pub(super) fn binary(
        &self,
        array: &dyn Array,
        row: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        match self {
            ValueEncoder::Bool => out.push(u8::from(bool_value(array, row)?)),
            ValueEncoder::Int8 => {
                out.extend_from_slice(&i16::from(prim::<Int8Type>(array, row)?).to_be_bytes())
            }
            ValueEncoder::Int16 => {
                out.extend_from_slice(&prim::<Int16Type>(array, row)?.to_be_bytes())
            }
            ValueEncoder::Int32 => {
                out.extend_from_slice(&prim::<Int32Type>(array, row)?.to_be_bytes())
            }
            ValueEncoder::Int64 => {
                out.extend_from_slice(&prim::<Int64Type>(array, row)?.to_be_bytes())
            }
            ValueEncoder::Float32 => {
                out.extend_from_slice(&prim::<Float32Type>(array, row)?.to_be_bytes())
            }
            ValueEncoder::Float64 => {
                out.extend_from_slice(&prim::<Float64Type>(array, row)?.to_be_bytes())
            }
            ValueEncoder::Decimal { scale } => {
                decimal_binary(prim::<Decimal128Type>(array, row)?, *scale, out)
            }
            ValueEncoder::Text => out.extend_from_slice(string(array, row)?.as_bytes()),
            ValueEncoder::NumericText => numeric_text_binary(string(array, row)?, out)?,
            ValueEncoder::Uuid => uuid_binary(string(array, row)?, out)?,
            ValueEncoder::Jsonb => {
                out.push(1);
                out.extend_from_slice(string(array, row)?.as_bytes());
            }
            ValueEncoder::Bpchar { len } => padded(string(array, row)?, *len, out),
            ValueEncoder::Bytea => out.extend_from_slice(binary(array, row)?),
            ValueEncoder::Date32 => date_binary(i64::from(prim::<Date32Type>(array, row)?), out)?,
            ValueEncoder::Date64 => {
                date_binary(prim::<Date64Type>(array, row)?.div_euclid(86_400_000), out)?
            }
            ValueEncoder::Time(unit) => {
                out.extend_from_slice(&time_micros(array, row, *unit)?.to_be_bytes())
            }
            ValueEncoder::Timestamp { unit, .. } => {
                timestamp_binary(timestamp_micros(array, row, *unit)?, out)?
            }
            ValueEncoder::Interval => {
                let v = prim::<IntervalMonthDayNanoType>(array, row)?;
                interval_binary(v.months, v.days, v.nanoseconds / 1000, out)
            }
            ValueEncoder::List { elem, elem_oid } => {
                let list = list_value(array, row)?;
                let len = i32::try_from(list.len()).map_err(|_| "array too long".to_string())?;
                let ndim: i32 = if len == 0 { 0 } else { 1 };
                out.extend_from_slice(&ndim.to_be_bytes());
                out.extend_from_slice(&i32::from(list.null_count() > 0).to_be_bytes());
                out.extend_from_slice(&elem_oid.to_be_bytes());
                if ndim == 1 {
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(&1i32.to_be_bytes());
                }
                for i in 0..list.len() {
                    if list.is_null(i) {
                        out.extend_from_slice(&(-1i32).to_be_bytes());
                        continue;
                    }
                    let at = out.len();
                    out.extend_from_slice(&0i32.to_be_bytes());
                    elem.binary(list.as_ref(), i, out)?;
                    let n = i32::try_from(out.len() - at - 4)
                        .map_err(|_| "array element too long".to_string())?;
                    out[at..at + 4].copy_from_slice(&n.to_be_bytes());
                }
            }
        }
        Ok(())
    }
}

/// The element type of the array types result columns are reported as.
fn array_element(ty: &Type) -> Option<Type> {
    const ARRAYS: [(Type, Type); 14] = [
        (Type::BOOL_ARRAY, Type::BOOL),
        (Type::INT2_ARRAY, Type::INT2),
        (Type::INT4_ARRAY, Type::INT4),
        (Type::INT8_ARRAY, Type::INT8),
        (Type::FLOAT4_ARRAY, Type::FLOAT4),
        (Type::FLOAT8_ARRAY, Type::FLOAT8),
        (Type::NUMERIC_ARRAY, Type::NUMERIC),
        (Type::TEXT_ARRAY, Type::TEXT),
        (Type::BYTEA_ARRAY, Type::BYTEA),
        (Type::DATE_ARRAY, Type::DATE),
        (Type::TIME_ARRAY, Type::TIME),
        (Type::TIMESTAMP_ARRAY, Type::TIMESTAMP),
        (Type::TIMESTAMPTZ_ARRAY, Type::TIMESTAMPTZ),
        (Type::INTERVAL_ARRAY, Type::INTERVAL),
    ];
    ARRAYS
        .iter()
        .find(|(array, _)| array == ty)
        .map(|(_, elem)| elem.clone())
}

fn wrong_type(array: &dyn Array) -> String {
    format!("unexpected Arrow array of type {}", array.data_type())
}

fn prim<T: datafusion::arrow::datatypes::ArrowPrimitiveType>(
    array: &dyn Array,
    row: usize,
) -> Result<T::Native, String> {
    array
        .as_primitive_opt::<T>()
        .map(|a| a.value(row))
        .ok_or_else(|| wrong_type(array))
}

fn bool_value(array: &dyn Array, row: usize) -> Result<bool, String> {
    array
        .as_boolean_opt()
        .map(|a| a.value(row))
        .ok_or_else(|| wrong_type(array))
}

/// A string of a `Utf8`, `Utf8View` or `LargeUtf8` array.
fn string(array: &dyn Array, row: usize) -> Result<&str, String> {
    if let Some(a) = array.as_string_opt::<i32>() {
        return Ok(a.value(row));
    }
    if let Some(a) = array.as_string_view_opt() {
        return Ok(a.value(row));
    }
    array
        .as_string_opt::<i64>()
        .map(|a| a.value(row))
        .ok_or_else(|| wrong_type(array))
}

/// The bytes of a `Binary`, `BinaryView` or `LargeBinary` array.
fn binary(array: &dyn Array, row: usize) -> Result<&[u8], String> {
    if let Some(a) = array.as_binary_opt::<i32>() {
        return Ok(a.value(row));
    }
    if let Some(a) = array.as_binary_view_opt() {
        return Ok(a.value(row));
    }
    array
        .as_binary_opt::<i64>()
        .map(|a| a.value(row))
        .ok_or_else(|| wrong_type(array))
}

fn list_value(array: &dyn Array, row: usize) -> Result<datafusion::arrow::array::ArrayRef, String> {
    array
        .as_list_opt::<i32>()
        .map(|a| a.value(row))
        .ok_or_else(|| wrong_type(array))
}

/// Microseconds since midnight of a time value of any unit.
fn time_micros(array: &dyn Array, row: usize, unit: TimeUnit) -> Result<i64, String> {
    Ok(match (array.data_type(), unit) {
        (DataType::Time32(_), TimeUnit::Second) => {
            i64::from(prim::<Time32SecondType>(array, row)?) * 1_000_000
        }
        (DataType::Time32(_), _) => i64::from(prim::<Time32MillisecondType>(array, row)?) * 1_000,
        (_, TimeUnit::Nanosecond) => prim::<Time64NanosecondType>(array, row)?.div_euclid(1000),
        _ => prim::<Time64MicrosecondType>(array, row)?,
    })
}

/// Microseconds since 1970-01-01 (UTC for timestamptz) of a timestamp value of any unit.
fn timestamp_micros(array: &dyn Array, row: usize, unit: TimeUnit) -> Result<i64, String> {
    let out_of_range = || "timestamp out of range".to_string();
    Ok(match unit {
        TimeUnit::Second => prim::<TimestampSecondType>(array, row)?
            .checked_mul(1_000_000)
            .ok_or_else(out_of_range)?,
        TimeUnit::Millisecond => prim::<TimestampMillisecondType>(array, row)?
            .checked_mul(1_000)
            .ok_or_else(out_of_range)?,
        TimeUnit::Microsecond => prim::<TimestampMicrosecondType>(array, row)?,
        TimeUnit::Nanosecond => prim::<TimestampNanosecondType>(array, row)?.div_euclid(1000),
    })
}

/// `value` blank-padded to `len` characters (char(n)), appended to `out`.
fn padded(value: &str, len: Option<usize>, out: &mut Vec<u8>) {
    out.extend_from_slice(value.as_bytes());
    if let Some(len) = len {
        let count = value.chars().count();
        if count < len {
            out.resize(out.len() + len - count, b' ');
        }
    }
}

/// bytea text: `\x00ff` (hex) or the escape format (`\000` for non-printable bytes, `\\`).
fn bytea_text(bytes: &[u8], hex: bool, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if hex {
        out.extend_from_slice(b"\\x");
        for b in bytes {
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        }
        return;
    }
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
        }
    }
}

/// A uuid's 16 bytes from its text (hyphens anywhere, as PostgreSQL accepts).
fn uuid_binary(text: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
    let bad = || format!("invalid uuid value {text:?}");
    let inner = digits
        .strip_prefix(b"{")
        .and_then(|d| d.strip_suffix(b"}"))
        .unwrap_or(&digits);
    if inner.len() != 32 {
        return Err(bad());
    }
    for pair in inner.chunks(2) {
        let hex = std::str::from_utf8(pair).map_err(|_| bad())?;
        out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
    }
    Ok(())
}

/// One array element's text, double-quoted (with `"` and `\` escaped) when PostgreSQL's
/// `array_out` would: empty, `NULL`, or holding a quote, backslash, brace, comma or white space.
fn quote_element(item: &[u8], out: &mut Vec<u8>) {
    let needs = item.is_empty()
        || item.eq_ignore_ascii_case(b"null")
        || item.iter().any(|b| {
            matches!(
                b,
                b'"' | b'\\' | b'{' | b'}' | b',' | b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c
            )
        });
    if !needs {
        out.extend_from_slice(item);
        return;
    }
    out.push(b'"');
    for &b in item {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ListArray, StringArray};
    use datafusion::arrow::datatypes::Int32Type;

    use super::*;

    fn settings() -> TextSettings {
        TextSettings::new(&FormatOptions::default())
    }

    #[test]
    fn arrays_text_and_binary() {
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), None, Some(3)]),
            Some(vec![]),
        ]);
        let enc = ValueEncoder::List {
            elem: Box::new(ValueEncoder::Int32),
            elem_oid: 23,
        };
        let mut out = Vec::new();
        enc.text(&list, 0, &settings(), &mut out).unwrap();
        assert_eq!(out, b"{1,NULL,3}");
        out.clear();
        enc.text(&list, 1, &settings(), &mut out).unwrap();
        assert_eq!(out, b"{}");
        out.clear();
        enc.binary(&list, 1, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 23]);
        out.clear();
        enc.binary(&list, 0, &mut out).unwrap();
        assert_eq!(
            &out[..20],
            [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 23, 0, 0, 0, 3, 0, 0, 0, 1]
        );
        assert_eq!(
            &out[20..],
            [
                0, 0, 0, 4, 0, 0, 0, 1, 255, 255, 255, 255, 0, 0, 0, 4, 0, 0, 0, 3
            ]
        );
    }

    #[test]
    fn quoting_and_strings() {
        let values = StringArray::from(vec!["", "a b", "NULL", "x\"y\\", "plain"]);
        let list = ListArray::new(
            Arc::new(datafusion::arrow::datatypes::Field::new_list_field(
                DataType::Utf8,
                true,
            )),
            datafusion::arrow::buffer::OffsetBuffer::from_lengths([5]),
            Arc::new(values),
            None,
        );
        let enc = ValueEncoder::List {
            elem: Box::new(ValueEncoder::Text),
            elem_oid: 25,
        };
        let mut out = Vec::new();
        enc.text(&list, 0, &settings(), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"","a b","NULL","x\"y\\",plain}"#
        );
        let mut out = Vec::new();
        uuid_binary("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", &mut out).unwrap();
        assert_eq!(out[0], 0xa0);
        assert_eq!(out.len(), 16);
        assert!(uuid_binary("nope", &mut Vec::new()).is_err());
        let mut out = Vec::new();
        padded("ab", Some(5), &mut out);
        assert_eq!(out, b"ab   ");
        out.clear();
        padded("ümlaut", Some(3), &mut out);
        assert_eq!(out, "ümlaut".as_bytes());
        let mut out = Vec::new();
        bytea_text(&[0, b'a', b'\\', 0xff], false, &mut out);
        assert_eq!(out, b"\\000a\\\\\\377");
    }
}
