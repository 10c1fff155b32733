//! Table description files: one file per table, TOML (`.toml`) or JSON (`.json`), after Trino's Kafka
//! table description files.
//!
//! ```json
//! {
//!   "tableName": "orders",            // optional, default: the topic name
//!   "schemaName": "default",          // optional, default: the catalog's default_schema
//!   "topicName": "orders",
//!   "key":     { "dataFormat": "raw",  "fields": [ { "name": "order_key", "type": "VARCHAR" } ] },
//!   "message": { "dataFormat": "json", "fields": [
//!       { "name": "id",       "type": "BIGINT",  "mapping": "id" },
//!       { "name": "customer", "type": "VARCHAR", "mapping": "customer/name" },
//!       { "name": "at",       "type": "TIMESTAMP", "mapping": "at", "dataFormat": "milliseconds-since-epoch" }
//!   ] }
//! }
//! ```
//!
//! The same keys are accepted in snake case (`table_name`, `data_format`, ...), which is how TOML files
//! usually spell them. `mapping` is a `/`-separated JSON path for `json` (array elements by index,
//! default: the column name), a 0-based field index for `csv` (a string or an integer), and a byte range
//! `start[:end]` for `raw` (default: the whole key or message). Types (case-insensitive): `boolean`,
//! `tinyint`, `smallint`, `integer`/`int`, `bigint`, `real`, `double`, `decimal(p, s)`,
//! `varchar`/`varchar(n)` (length not enforced), `varbinary` (`raw` only), `date`, `timestamp`.
//! Field `dataFormat`: for `timestamp` / `date` in JSON and CSV one of `iso8601` (the default),
//! `milliseconds-since-epoch`, `seconds-since-epoch`; for numbers in `raw` one of `byte`, `short`,
//! `int`, `long`, `float`, `double` (big-endian; the default follows the type).

use std::path::Path;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use serde::Deserialize;

use super::INTERNAL_COLUMNS;

/// The format of a key or a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    /// A JSON document; columns are JSON paths.
    Json,
    /// One CSV line; columns are field indices.
    Csv,
    /// The bytes themselves; columns are byte ranges.
    Raw,
}

impl DataFormat {
    fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(DataFormat::Json),
            "csv" => Ok(DataFormat::Csv),
            "raw" => Ok(DataFormat::Raw),
            other => Err(format!(
                "unsupported dataFormat \"{other}\"; expected \"json\", \"csv\" or \"raw\""
            )),
        }
    }
}

/// The SQL type of a described column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `boolean`
    Boolean,
    /// `tinyint`
    TinyInt,
    /// `smallint`
    SmallInt,
    /// `integer`
    Integer,
    /// `bigint`
    BigInt,
    /// `real`
    Real,
    /// `double`
    Double,
    /// `decimal(precision, scale)`
    Decimal(u8, i8),
    /// `varchar`
    Varchar,
    /// `varbinary`
    Varbinary,
    /// `date`
    Date,
    /// `timestamp` (no time zone, microseconds)
    Timestamp,
}

impl ColumnType {
    fn parse(s: &str) -> Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase();
        let (base, args) = match lower.split_once('(') {
            Some((base, rest)) => {
                let args = rest
                    .strip_suffix(')')
                    .ok_or_else(|| format!("bad type \"{s}\""))?;
                (base.trim(), Some(args))
            }
            None => (lower.as_str(), None),
        };
        let ty = match (base, args) {
            ("boolean" | "bool", None) => ColumnType::Boolean,
            ("tinyint", None) => ColumnType::TinyInt,
            ("smallint", None) => ColumnType::SmallInt,
            ("integer" | "int", None) => ColumnType::Integer,
            ("bigint", None) => ColumnType::BigInt,
            ("real", None) => ColumnType::Real,
            ("double" | "double precision", None) => ColumnType::Double,
            ("varchar" | "text", _) => ColumnType::Varchar,
            ("varbinary", None) => ColumnType::Varbinary,
            ("date", None) => ColumnType::Date,
            ("timestamp", _) => ColumnType::Timestamp,
            ("decimal", Some(args)) => {
                let (p, sc) = args.split_once(',').unwrap_or((args, "0"));
                let p: u8 = p
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad decimal precision in \"{s}\""))?;
                let sc: i8 = sc
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad decimal scale in \"{s}\""))?;
                if !(1..=38).contains(&p) || sc < 0 || sc as u8 > p {
                    return Err(format!("bad decimal precision or scale in \"{s}\""));
                }
                ColumnType::Decimal(p, sc)
            }
            _ => {
                return Err(format!(
                    "unsupported type \"{s}\"; expected boolean, tinyint, smallint, integer, \
                     bigint, real, double, decimal(p, s), varchar, varbinary, date or timestamp"
                ));
            }
        };
        Ok(ty)
    }

    /// The Arrow type of the column.
    pub fn arrow_type(self) -> DataType {
        match self {
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::TinyInt => DataType::Int8,
            ColumnType::SmallInt => DataType::Int16,
            ColumnType::Integer => DataType::Int32,
            ColumnType::BigInt => DataType::Int64,
            ColumnType::Real => DataType::Float32,
            ColumnType::Double => DataType::Float64,
            ColumnType::Decimal(p, s) => DataType::Decimal128(p, s),
            ColumnType::Varchar => DataType::Utf8,
            ColumnType::Varbinary => DataType::Binary,
            ColumnType::Date => DataType::Date32,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        }
    }
}

/// How a date or timestamp is written in a JSON or CSV value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    /// `2024-05-01`, `2024-05-01T10:00:00[.fff][Z|+hh:mm]` (a space instead of `T` is accepted).
    Iso8601,
    /// An integer count of milliseconds since 1970-01-01 UTC.
    EpochMillis,
    /// An integer count of seconds since 1970-01-01 UTC.
    EpochSeconds,
}

/// A big-endian number in a `raw` key or message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawFormat {
    /// 1 byte
    Byte,
    /// 2 bytes
    Short,
    /// 4 bytes
    Int,
    /// 8 bytes
    Long,
    /// 4-byte IEEE float
    Float,
    /// 8-byte IEEE float
    Double,
    /// The bytes themselves (varchar, varbinary).
    Bytes,
}

impl RawFormat {
    /// Width in bytes, `None` for variable-width bytes.
    pub fn width(self) -> Option<usize> {
        match self {
            RawFormat::Byte => Some(1),
            RawFormat::Short => Some(2),
            RawFormat::Int | RawFormat::Float => Some(4),
            RawFormat::Long | RawFormat::Double => Some(8),
            RawFormat::Bytes => None,
        }
    }
}

/// Where a column's value comes from inside the key or message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapping {
    /// JSON path segments (object keys or array indices).
    JsonPath(Vec<String>),
    /// 0-based CSV field index.
    CsvIndex(usize),
    /// Byte range `start..end` (`None`: to the end) read as `format`.
    Raw {
        /// First byte.
        start: usize,
        /// One past the last byte, `None` for the rest.
        end: Option<usize>,
        /// How the bytes are read.
        format: RawFormat,
    },
}

/// One described column.
#[derive(Debug, Clone)]
pub struct Column {
    /// The column name.
    pub name: String,
    /// Its SQL type.
    pub ty: ColumnType,
    /// Where its value comes from.
    pub mapping: Mapping,
    /// How dates and timestamps are written (JSON, CSV).
    pub time_format: TimeFormat,
}

/// The decoding of a key or message.
#[derive(Debug, Clone)]
pub struct Codec {
    /// The data format.
    pub format: DataFormat,
    /// The columns decoded from it.
    pub columns: Vec<Column>,
}

/// A validated table description.
#[derive(Debug, Clone)]
pub struct TableDescription {
    /// The SQL table name.
    pub table: String,
    /// The schema holding the table.
    pub schema: String,
    /// The Kafka topic.
    pub topic: String,
    /// How keys are decoded, if they are.
    pub key: Option<Codec>,
    /// How messages are decoded, if they are.
    pub message: Option<Codec>,
    /// The file it was read from.
    pub file: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawDescription {
    #[serde(alias = "table_name")]
    table_name: Option<String>,
    #[serde(alias = "schema_name")]
    schema_name: Option<String>,
    #[serde(alias = "topic_name")]
    topic_name: String,
    key: Option<RawCodec>,
    message: Option<RawCodec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawCodec {
    #[serde(alias = "data_format")]
    data_format: String,
    #[serde(default)]
    fields: Vec<RawField>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawMapping {
    Text(String),
    Index(i64),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawField {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    mapping: Option<RawMapping>,
    #[serde(alias = "data_format")]
    data_format: Option<String>,
    #[serde(default)]
    hidden: bool,
    #[allow(dead_code)]
    comment: Option<String>,
}

/// Reads and validates the description in `path` (`.json` or `.toml`); `default_schema` fills a missing
/// schema name. The error says what is wrong, without the file name (the caller adds it).
pub fn read(path: &Path, default_schema: &str) -> Result<TableDescription, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let raw: RawDescription = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => serde_json::from_str(&text).map_err(|e| e.to_string())?,
        Some("toml") => toml::from_str(&text).map_err(|e| e.to_string().trim().to_string())?,
        _ => return Err("not a .json or .toml file".into()),
    };
    validate(raw, default_schema, &path.display().to_string())
}

/// Parses a description from JSON text (for tests and tools).
pub fn from_json(text: &str, default_schema: &str) -> Result<TableDescription, String> {
    let raw: RawDescription = serde_json::from_str(text).map_err(|e| e.to_string())?;
    validate(raw, default_schema, "<inline>")
}

fn validate(
    raw: RawDescription,
    default_schema: &str,
    file: &str,
) -> Result<TableDescription, String> {
    if raw.topic_name.is_empty() {
        return Err("topicName is empty".into());
    }
    let table = raw.table_name.unwrap_or_else(|| raw.topic_name.clone());
    let schema = raw
        .schema_name
        .unwrap_or_else(|| default_schema.to_string());
    let key = raw.key.map(|c| codec(c, "key")).transpose()?;
    let message = raw.message.map(|c| codec(c, "message")).transpose()?;
    let mut seen: Vec<&str> = Vec::new();
    for column in key
        .iter()
        .chain(message.iter())
        .flat_map(|c| c.columns.iter())
    {
        if INTERNAL_COLUMNS.contains(&column.name.as_str()) {
            return Err(format!(
                "column \"{}\" has the name of an internal column",
                column.name
            ));
        }
        if seen.contains(&column.name.as_str()) {
            return Err(format!("column \"{}\" is described twice", column.name));
        }
        seen.push(&column.name);
    }
    Ok(TableDescription {
        table,
        schema,
        topic: raw.topic_name,
        key,
        message,
        file: file.to_string(),
    })
}

fn codec(raw: RawCodec, what: &str) -> Result<Codec, String> {
    let format = DataFormat::parse(&raw.data_format).map_err(|e| format!("{what}: {e}"))?;
    let columns = raw
        .fields
        .into_iter()
        .map(|f| {
            let name = f.name.clone();
            column(f, format).map_err(|e| format!("{what} field \"{name}\": {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Codec { format, columns })
}

fn column(f: RawField, format: DataFormat) -> Result<Column, String> {
    if f.name.is_empty() {
        return Err("empty name".into());
    }
    if f.hidden {
        return Err("hidden columns are not supported".into());
    }
    let ty = ColumnType::parse(&f.ty)?;
    let data_format = f.data_format.as_deref().map(str::to_ascii_lowercase);
    let mut time_format = TimeFormat::Iso8601;
    let mapping = match format {
        DataFormat::Json | DataFormat::Csv => {
            if ty == ColumnType::Varbinary {
                return Err("varbinary is only supported with the raw format".into());
            }
            if let Some(df) = &data_format {
                if !matches!(ty, ColumnType::Date | ColumnType::Timestamp) {
                    return Err(format!(
                        "dataFormat \"{df}\" applies to date and timestamp columns only"
                    ));
                }
                time_format = match df.as_str() {
                    "iso8601" => TimeFormat::Iso8601,
                    "milliseconds-since-epoch" => TimeFormat::EpochMillis,
                    "seconds-since-epoch" => TimeFormat::EpochSeconds,
                    other => {
                        return Err(format!(
                            "unsupported dataFormat \"{other}\"; expected \"iso8601\", \
                             \"milliseconds-since-epoch\" or \"seconds-since-epoch\""
                        ));
                    }
                };
            }
            if format == DataFormat::Json {
                let path = match &f.mapping {
                    None => f.name.clone(),
                    Some(RawMapping::Text(s)) => s.clone(),
                    Some(RawMapping::Index(i)) => i.to_string(),
                };
                let segments: Vec<String> = path
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                if segments.is_empty() {
                    return Err(format!("bad JSON path mapping \"{path}\""));
                }
                Mapping::JsonPath(segments)
            } else {
                let index = match &f.mapping {
                    None => return Err("a CSV column needs a mapping (field index)".into()),
                    Some(RawMapping::Index(i)) => usize::try_from(*i).ok(),
                    Some(RawMapping::Text(s)) => s.trim().parse::<usize>().ok(),
                };
                Mapping::CsvIndex(index.ok_or("the CSV mapping must be a field index (0, 1, ...)")?)
            }
        }
        DataFormat::Raw => {
            let raw_format = match data_format.as_deref() {
                None => match ty {
                    ColumnType::Boolean | ColumnType::TinyInt => RawFormat::Byte,
                    ColumnType::SmallInt => RawFormat::Short,
                    ColumnType::Integer => RawFormat::Int,
                    ColumnType::BigInt => RawFormat::Long,
                    ColumnType::Real => RawFormat::Float,
                    ColumnType::Double => RawFormat::Double,
                    ColumnType::Varchar | ColumnType::Varbinary => RawFormat::Bytes,
                    other => {
                        return Err(format!(
                            "type {other:?} is not supported with the raw format"
                        ));
                    }
                },
                Some("byte") => RawFormat::Byte,
                Some("short") => RawFormat::Short,
                Some("int") => RawFormat::Int,
                Some("long") => RawFormat::Long,
                Some("float") => RawFormat::Float,
                Some("double") => RawFormat::Double,
                Some(other) => {
                    return Err(format!(
                        "unsupported raw dataFormat \"{other}\"; expected byte, short, int, \
                         long, float or double"
                    ));
                }
            };
            let fits = match raw_format {
                RawFormat::Bytes => matches!(ty, ColumnType::Varchar | ColumnType::Varbinary),
                RawFormat::Float | RawFormat::Double => {
                    matches!(ty, ColumnType::Real | ColumnType::Double)
                }
                _ => matches!(
                    ty,
                    ColumnType::Boolean
                        | ColumnType::TinyInt
                        | ColumnType::SmallInt
                        | ColumnType::Integer
                        | ColumnType::BigInt
                ),
            };
            if !fits {
                return Err(format!(
                    "raw dataFormat {raw_format:?} cannot be read as {}",
                    f.ty
                ));
            }
            let (start, end) = match &f.mapping {
                None => (0, None),
                Some(RawMapping::Index(i)) => (
                    usize::try_from(*i).map_err(|_| "negative raw mapping")?,
                    None,
                ),
                Some(RawMapping::Text(s)) => parse_range(s)?,
            };
            let end = match (end, raw_format.width()) {
                (None, Some(w)) => Some(start + w),
                (Some(e), Some(w)) if e - start != w => {
                    return Err(format!(
                        "raw mapping \"{start}:{e}\" is not {w} bytes wide as {raw_format:?} is"
                    ));
                }
                (end, _) => end,
            };
            Mapping::Raw {
                start,
                end,
                format: raw_format,
            }
        }
    };
    Ok(Column {
        name: f.name,
        ty,
        mapping,
        time_format,
    })
}

fn parse_range(s: &str) -> Result<(usize, Option<usize>), String> {
    let bad = || format!("bad raw mapping \"{s}\"; expected \"start\" or \"start:end\"");
    let (start, end) = match s.split_once(':') {
        Some((a, b)) => (a.trim(), Some(b.trim())),
        None => (s.trim(), None),
    };
    let start: usize = if start.is_empty() {
        0
    } else {
        start.parse().map_err(|_| bad())?
    };
    let end = match end {
        None | Some("") => None,
        Some(e) => Some(e.parse::<usize>().map_err(|_| bad())?),
    };
    if end.is_some_and(|e| e <= start) {
        return Err(bad());
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trino_style_json() {
        let d = from_json(
            r#"{"tableName": "t", "topicName": "events",
                "key": {"dataFormat": "raw", "fields": [{"name": "k", "type": "VARCHAR"}]},
                "message": {"dataFormat": "json", "fields": [
                    {"name": "id", "type": "BIGINT", "mapping": "id"},
                    {"name": "city", "type": "VARCHAR(20)", "mapping": "address/city", "comment": "c"},
                    {"name": "amount", "type": "DECIMAL(10, 2)"}
                ]}}"#,
            "default",
        )
        .unwrap();
        assert_eq!(d.schema, "default");
        assert_eq!(d.topic, "events");
        let m = d.message.unwrap();
        assert_eq!(
            m.columns[1].mapping,
            Mapping::JsonPath(vec!["address".into(), "city".into()])
        );
        assert_eq!(m.columns[2].ty, ColumnType::Decimal(10, 2));
    }

    #[test]
    fn errors() {
        let e = from_json(
            r#"{"topicName": "t", "message": {"dataFormat": "avro"}}"#,
            "d",
        );
        assert!(e.unwrap_err().contains("avro"));
        let e = from_json(
            r#"{"topicName": "t", "message": {"dataFormat": "csv", "fields": [{"name": "a", "type": "bigint"}]}}"#,
            "d",
        );
        assert!(e.unwrap_err().contains("field index"));
        let e = from_json(
            r#"{"topicName": "t", "message": {"dataFormat": "json", "fields": [{"name": "_key", "type": "bigint"}]}}"#,
            "d",
        );
        assert!(e.unwrap_err().contains("internal"));
        let e = from_json(r#"{"topicName": "t", "oops": 1}"#, "d");
        assert!(e.unwrap_err().contains("oops"));
    }
}
