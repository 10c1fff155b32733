//! Decoding keys and messages (JSON, CSV, raw) into column values, and the Arrow builders they go to.
//!
//! A key or message that cannot be decoded (not JSON, an unterminated CSV quote, a value that does not
//! fit its column's type, a raw range past the end) is *corrupt*: all its columns are NULL and
//! `_key_corrupt` / `_message_corrupt` is true. A missing JSON path, a CSV line with fewer fields, a JSON
//! `null` and an empty CSV field are NULL and not corrupt. An empty (or absent) key or message is not
//! decoded: its columns are NULL, not corrupt.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, TimeUnit};

use super::description::{Codec, Column, ColumnType, DataFormat, Mapping, RawFormat, TimeFormat};

/// A decoded value, already of its column's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// boolean
    Bool(bool),
    /// any integer type
    Int(i64),
    /// real, double
    Float(f64),
    /// decimal (unscaled)
    Decimal(i128),
    /// varchar
    Text(String),
    /// varbinary
    Bytes(Vec<u8>),
    /// date: days since the epoch
    Date(i32),
    /// timestamp: microseconds (decoded columns) or milliseconds (`_timestamp`) since the epoch
    Time(i64),
}

/// Decodes `data` with `codec`, returning the values of `wanted` (indices into `codec.columns`), or
/// `Err` when the data is corrupt.
pub fn decode(codec: &Codec, wanted: &[usize], data: &[u8]) -> Result<Vec<Value>, String> {
    match codec.format {
        DataFormat::Json => {
            let doc: serde_json::Value =
                serde_json::from_slice(data).map_err(|e| format!("not JSON: {e}"))?;
            wanted
                .iter()
                .map(|&i| {
                    let column = &codec.columns[i];
                    let Mapping::JsonPath(path) = &column.mapping else {
                        return Err("internal: JSON column without a path".into());
                    };
                    let mut node = &doc;
                    for segment in path {
                        let next = match node {
                            serde_json::Value::Object(map) => map.get(segment),
                            serde_json::Value::Array(items) => {
                                segment.parse::<usize>().ok().and_then(|i| items.get(i))
                            }
                            _ => None,
                        };
                        match next {
                            Some(n) => node = n,
                            None => return Ok(Value::Null),
                        }
                    }
                    json_value(column, node)
                })
                .collect()
        }
        DataFormat::Csv => {
            let text = std::str::from_utf8(data).map_err(|_| "not UTF-8".to_string())?;
            let fields = split_csv(text)?;
            wanted
                .iter()
                .map(|&i| {
                    let column = &codec.columns[i];
                    let Mapping::CsvIndex(index) = column.mapping else {
                        return Err("internal: CSV column without an index".into());
                    };
                    match fields.get(index) {
                        None => Ok(Value::Null),
                        Some(f) if f.is_empty() => Ok(Value::Null),
                        Some(f) => text_value(column, f),
                    }
                })
                .collect()
        }
        DataFormat::Raw => wanted
            .iter()
            .map(|&i| raw_value(&codec.columns[i], data))
            .collect(),
    }
}

fn json_value(column: &Column, node: &serde_json::Value) -> Result<Value, String> {
    use serde_json::Value as J;
    match node {
        J::Null => Ok(Value::Null),
        J::String(s) => text_value(column, s),
        J::Bool(b) => match column.ty {
            ColumnType::Boolean => Ok(Value::Bool(*b)),
            ColumnType::Varchar => Ok(Value::Text(b.to_string())),
            _ => Err(format!(
                "{}: boolean for a {:?} column",
                column.name, column.ty
            )),
        },
        J::Number(n) => match column.ty {
            ColumnType::Date | ColumnType::Timestamp
                if column.time_format != TimeFormat::Iso8601 =>
            {
                let v = n
                    .as_i64()
                    .ok_or_else(|| format!("{}: not an integer epoch value: {n}", column.name))?;
                epoch_value(column, v)
            }
            ColumnType::Real | ColumnType::Double => n
                .as_f64()
                .map(Value::Float)
                .ok_or_else(|| format!("{}: bad number {n}", column.name)),
            _ => text_value(column, &n.to_string()),
        },
        J::Array(_) | J::Object(_) => match column.ty {
            ColumnType::Varchar => Ok(Value::Text(node.to_string())),
            _ => Err(format!(
                "{}: an object or array for a {:?} column",
                column.name, column.ty
            )),
        },
    }
}

fn epoch_value(column: &Column, v: i64) -> Result<Value, String> {
    let micros = match column.time_format {
        TimeFormat::EpochMillis => v.checked_mul(1_000),
        TimeFormat::EpochSeconds => v.checked_mul(1_000_000),
        TimeFormat::Iso8601 => None,
    }
    .ok_or_else(|| format!("{}: epoch value out of range: {v}", column.name))?;
    match column.ty {
        ColumnType::Date => Ok(Value::Date(
            i32::try_from(micros.div_euclid(86_400_000_000))
                .map_err(|_| format!("{}: date out of range", column.name))?,
        )),
        _ => Ok(Value::Time(micros)),
    }
}

/// Parses the text `s` as a value of `column`'s type.
fn text_value(column: &Column, s: &str) -> Result<Value, String> {
    let bad = || format!("{}: \"{s}\" is not a valid {:?}", column.name, column.ty);
    let t = s.trim();
    let int = |min: i64, max: i64| -> Result<Value, String> {
        let v: i64 = t.parse().map_err(|_| bad())?;
        if (min..=max).contains(&v) {
            Ok(Value::Int(v))
        } else {
            Err(bad())
        }
    };
    match column.ty {
        ColumnType::Varchar => Ok(Value::Text(s.to_string())),
        ColumnType::Varbinary => Ok(Value::Bytes(s.as_bytes().to_vec())),
        ColumnType::Boolean => match t.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(bad()),
        },
        ColumnType::TinyInt => int(i64::from(i8::MIN), i64::from(i8::MAX)),
        ColumnType::SmallInt => int(i64::from(i16::MIN), i64::from(i16::MAX)),
        ColumnType::Integer => int(i64::from(i32::MIN), i64::from(i32::MAX)),
        ColumnType::BigInt => int(i64::MIN, i64::MAX),
        ColumnType::Real | ColumnType::Double => t.parse().map(Value::Float).map_err(|_| bad()),
        ColumnType::Decimal(p, sc) => {
            datafusion::arrow::compute::kernels::cast_utils::parse_decimal::<Decimal128Type>(
                t, p, sc,
            )
            .map(Value::Decimal)
            .map_err(|_| bad())
        }
        ColumnType::Date | ColumnType::Timestamp => match column.time_format {
            TimeFormat::Iso8601 => iso_value(column.ty, t).ok_or_else(bad),
            _ => epoch_value(column, t.parse().map_err(|_| bad())?),
        },
    }
}

fn iso_value(ty: ColumnType, t: &str) -> Option<Value> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    if ty == ColumnType::Date {
        let date = NaiveDate::parse_from_str(t, "%Y-%m-%d").ok()?;
        return i32::try_from((date - epoch).num_days())
            .ok()
            .map(Value::Date);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(Value::Time(dt.timestamp_micros()));
    }
    let normalized = t.replacen(' ', "T", 1);
    if let Ok(dt) = DateTime::parse_from_str(&normalized, "%Y-%m-%dT%H:%M:%S%.f%#z") {
        return Some(Value::Time(dt.timestamp_micros()));
    }
    if let Ok(naive) = NaiveDateTime::parse_from_str(&normalized, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(Value::Time(naive.and_utc().timestamp_micros()));
    }
    let date = NaiveDate::parse_from_str(t, "%Y-%m-%d").ok()?;
    Some(Value::Time(
        date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros(),
    ))
}

fn raw_value(column: &Column, data: &[u8]) -> Result<Value, String> {
    let Mapping::Raw { start, end, format } = &column.mapping else {
        return Err("internal: raw column without a range".into());
    };
    let end = end.unwrap_or(data.len());
    if *start > data.len() || end > data.len() || end < *start {
        return Err(format!(
            "{}: bytes {start}..{end} past the end ({} bytes)",
            column.name,
            data.len()
        ));
    }
    let bytes = &data[*start..end];
    let array = |n: usize| -> [u8; 8] {
        let mut a = [0u8; 8];
        a[8 - n..].copy_from_slice(bytes);
        a
    };
    let int = match format {
        RawFormat::Byte => i64::from(bytes[0] as i8),
        RawFormat::Short => i64::from(i16::from_be_bytes([bytes[0], bytes[1]])),
        RawFormat::Int => i64::from(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
        RawFormat::Long => i64::from_be_bytes(array(8)),
        RawFormat::Float => {
            let v = f32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            return Ok(Value::Float(f64::from(v)));
        }
        RawFormat::Double => return Ok(Value::Float(f64::from_be_bytes(array(8)))),
        RawFormat::Bytes => {
            return match column.ty {
                ColumnType::Varbinary => Ok(Value::Bytes(bytes.to_vec())),
                _ => std::str::from_utf8(bytes)
                    .map(|s| Value::Text(s.to_string()))
                    .map_err(|_| format!("{}: not UTF-8", column.name)),
            };
        }
    };
    let (min, max) = match column.ty {
        ColumnType::Boolean => return Ok(Value::Bool(int != 0)),
        ColumnType::TinyInt => (i64::from(i8::MIN), i64::from(i8::MAX)),
        ColumnType::SmallInt => (i64::from(i16::MIN), i64::from(i16::MAX)),
        ColumnType::Integer => (i64::from(i32::MIN), i64::from(i32::MAX)),
        _ => (i64::MIN, i64::MAX),
    };
    if (min..=max).contains(&int) {
        Ok(Value::Int(int))
    } else {
        Err(format!("{}: {int} out of range", column.name))
    }
}

/// Splits one CSV line (RFC 4180 quoting with `"`, `""` for a quote; a trailing newline is ignored).
pub fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let line = line
        .strip_suffix("\r\n")
        .or_else(|| line.strip_suffix('\n'))
        .unwrap_or(line);
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                    match chars.peek() {
                        None | Some(',') => {}
                        Some(_) => return Err("text after a closing quote".into()),
                    }
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
                continue;
            }
            '"' if at_start => quoted = true,
            '"' => return Err("a quote inside an unquoted field".into()),
            c => field.push(c),
        }
        at_start = false;
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    fields.push(field);
    Ok(fields)
}

/// An Arrow builder for one output column.
pub enum Builder {
    /// boolean
    Bool(BooleanBuilder),
    /// tinyint
    I8(Int8Builder),
    /// smallint
    I16(Int16Builder),
    /// integer
    I32(Int32Builder),
    /// bigint
    I64(Int64Builder),
    /// real
    F32(Float32Builder),
    /// double
    F64(Float64Builder),
    /// decimal
    Decimal(Decimal128Builder),
    /// varchar
    Text(StringBuilder),
    /// varbinary
    Bytes(BinaryBuilder),
    /// date
    Date(Date32Builder),
    /// timestamp in microseconds
    Micros(TimestampMicrosecondBuilder),
    /// timestamp in milliseconds (`_timestamp`)
    Millis(TimestampMillisecondBuilder),
}

impl Builder {
    /// A builder for `data_type` with room for `capacity` rows.
    pub fn new(data_type: &DataType, capacity: usize) -> Result<Self, String> {
        Ok(match data_type {
            DataType::Boolean => Builder::Bool(BooleanBuilder::with_capacity(capacity)),
            DataType::Int8 => Builder::I8(Int8Builder::with_capacity(capacity)),
            DataType::Int16 => Builder::I16(Int16Builder::with_capacity(capacity)),
            DataType::Int32 => Builder::I32(Int32Builder::with_capacity(capacity)),
            DataType::Int64 => Builder::I64(Int64Builder::with_capacity(capacity)),
            DataType::Float32 => Builder::F32(Float32Builder::with_capacity(capacity)),
            DataType::Float64 => Builder::F64(Float64Builder::with_capacity(capacity)),
            DataType::Decimal128(p, s) => Builder::Decimal(
                Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(*p, *s)
                    .map_err(|e| e.to_string())?,
            ),
            DataType::Utf8 => Builder::Text(StringBuilder::with_capacity(capacity, capacity * 16)),
            DataType::Binary => {
                Builder::Bytes(BinaryBuilder::with_capacity(capacity, capacity * 16))
            }
            DataType::Date32 => Builder::Date(Date32Builder::with_capacity(capacity)),
            DataType::Timestamp(TimeUnit::Microsecond, None) => {
                Builder::Micros(TimestampMicrosecondBuilder::with_capacity(capacity))
            }
            DataType::Timestamp(TimeUnit::Millisecond, None) => {
                Builder::Millis(TimestampMillisecondBuilder::with_capacity(capacity))
            }
            other => return Err(format!("internal: no builder for {other}")),
        })
    }

    /// Appends `value` (NULL when it does not match the builder: decoders only produce matching
    /// values, so that does not happen).
    pub fn append(&mut self, value: Value) {
        match (self, value) {
            (Builder::Bool(b), Value::Bool(v)) => b.append_value(v),
            (Builder::I8(b), Value::Int(v)) => b.append_option(i8::try_from(v).ok()),
            (Builder::I16(b), Value::Int(v)) => b.append_option(i16::try_from(v).ok()),
            (Builder::I32(b), Value::Int(v)) => b.append_option(i32::try_from(v).ok()),
            (Builder::I64(b), Value::Int(v)) => b.append_value(v),
            (Builder::F32(b), Value::Float(v)) => b.append_value(v as f32),
            (Builder::F64(b), Value::Float(v)) => b.append_value(v),
            (Builder::Decimal(b), Value::Decimal(v)) => b.append_value(v),
            (Builder::Text(b), Value::Text(v)) => b.append_value(v),
            (Builder::Bytes(b), Value::Bytes(v)) => b.append_value(v),
            (Builder::Date(b), Value::Date(v)) => b.append_value(v),
            (Builder::Micros(b), Value::Time(v)) => b.append_value(v),
            (Builder::Millis(b), Value::Time(v)) => b.append_value(v),
            (b, _) => b.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Bool(b) => b.append_null(),
            Builder::I8(b) => b.append_null(),
            Builder::I16(b) => b.append_null(),
            Builder::I32(b) => b.append_null(),
            Builder::I64(b) => b.append_null(),
            Builder::F32(b) => b.append_null(),
            Builder::F64(b) => b.append_null(),
            Builder::Decimal(b) => b.append_null(),
            Builder::Text(b) => b.append_null(),
            Builder::Bytes(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Micros(b) => b.append_null(),
            Builder::Millis(b) => b.append_null(),
        }
    }

    /// The array built so far; the builder is left empty.
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::I8(b) => Arc::new(b.finish()),
            Builder::I16(b) => Arc::new(b.finish()),
            Builder::I32(b) => Arc::new(b.finish()),
            Builder::I64(b) => Arc::new(b.finish()),
            Builder::F32(b) => Arc::new(b.finish()),
            Builder::F64(b) => Arc::new(b.finish()),
            Builder::Decimal(b) => Arc::new(b.finish()),
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Bytes(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Micros(b) => Arc::new(b.finish()),
            Builder::Millis(b) => Arc::new(b.finish()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::description::from_json;
    use super::*;

    #[test]
    fn csv_lines() {
        assert_eq!(split_csv("a,b,,c\n").unwrap(), vec!["a", "b", "", "c"]);
        assert_eq!(
            split_csv(r#"1,"x, ""y""",z"#).unwrap(),
            vec!["1", "x, \"y\"", "z"]
        );
        assert!(split_csv(r#"1,"open"#).is_err());
    }

    #[test]
    fn json_and_corrupt() {
        let d = from_json(
            r#"{"topicName": "t", "message": {"dataFormat": "json", "fields": [
                {"name": "id", "type": "bigint"},
                {"name": "city", "type": "varchar", "mapping": "a/city"},
                {"name": "at", "type": "timestamp", "dataFormat": "milliseconds-since-epoch"},
                {"name": "price", "type": "decimal(6,2)"}]}}"#,
            "d",
        )
        .unwrap();
        let codec = d.message.unwrap();
        let all = [0, 1, 2, 3];
        let v = decode(
            &codec,
            &all,
            br#"{"id": 7, "a": {"city": "Oslo"}, "at": 1000, "price": "12.5"}"#,
        )
        .unwrap();
        assert_eq!(
            v,
            vec![
                Value::Int(7),
                Value::Text("Oslo".into()),
                Value::Time(1_000_000),
                Value::Decimal(1250)
            ]
        );
        let v = decode(&codec, &all, br#"{"id": null}"#).unwrap();
        assert_eq!(v, vec![Value::Null; 4]);
        assert!(decode(&codec, &all, b"{not json").is_err());
        assert!(decode(&codec, &all, br#"{"id": "seven"}"#).is_err());
    }

    #[test]
    fn raw_numbers() {
        let d = from_json(
            r#"{"topicName": "t", "key": {"dataFormat": "raw", "fields": [
                {"name": "n", "type": "integer", "mapping": "0"},
                {"name": "rest", "type": "varchar", "mapping": "4:"}]}}"#,
            "d",
        )
        .unwrap();
        let codec = d.key.unwrap();
        let v = decode(&codec, &[0, 1], &[0, 0, 1, 2, b'h', b'i']).unwrap();
        assert_eq!(v, vec![Value::Int(258), Value::Text("hi".into())]);
        assert!(decode(&codec, &[0], &[0, 1]).is_err());
    }
}
