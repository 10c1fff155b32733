//! Finding a lake's schemas and tables by listing its location.
//!
//! Layout: each directory directly under the location is a schema; in a schema, each file of a known
//! format is a table named after its stem, and each directory is a table holding files of one format,
//! possibly under Hive-style `key=value` directories (partition columns). Names starting with `.` or
//! `_` (`_SUCCESS`, `.crc` files, `_temporary/`) are ignored, as Hive and Spark do.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};

use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use futures::TryStreamExt;
use opendal::Operator;

/// The file formats a lake table can have, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LakeFormat {
    /// `.parquet`
    Parquet,
    /// `.csv`, with a header row.
    Csv,
    /// `.json`, `.jsonl`, `.ndjson`: newline-delimited JSON, one object per line.
    Json,
}

impl LakeFormat {
    /// The format and extension (with its dot, e.g. `.jsonl`) of a file name, if it has a known one.
    pub fn of_file(name: &str) -> Option<(Self, &'static str)> {
        let lower = name.to_ascii_lowercase();
        [
            (".parquet", LakeFormat::Parquet),
            (".csv", LakeFormat::Csv),
            (".json", LakeFormat::Json),
            (".jsonl", LakeFormat::Json),
            (".ndjson", LakeFormat::Json),
        ]
        .into_iter()
        .find(|(ext, _)| lower.ends_with(ext) && lower.len() > ext.len())
        .map(|(ext, format)| (format, ext))
    }

    /// The DataFusion file format reading it.
    pub fn file_format(self) -> Arc<dyn FileFormat> {
        match self {
            LakeFormat::Parquet => Arc::new(ParquetFormat::default()),
            LakeFormat::Csv => Arc::new(CsvFormat::default().with_has_header(true)),
            LakeFormat::Json => Arc::new(JsonFormat::default().with_newline_delimited(true)),
        }
    }
}

/// One table found in a schema directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeTableEntry {
    /// Table name: the file's stem, or the directory's name.
    pub name: String,
    /// Path relative to the lake's root: `schema/file.parquet` for a file table, `schema/dir/` (with a
    /// trailing slash) for a directory table.
    pub path: String,
    /// Format of the table's files.
    pub format: LakeFormat,
    /// Extension of the table's files, with its dot; other files in a directory table are ignored.
    pub extension: &'static str,
    /// Hive-style partition columns with their types, outermost first (empty for a file table):
    /// a managed table's declared types, else inferred from the directory values (see
    /// [`infer_partition_type`]), else (inference off) `Utf8`.
    pub partition_columns: Vec<(String, DataType)>,
    /// Whether the table was written by Tributary (has `_tributary/table.json`, see
    /// [`super::managed`]): its columns come from that file and only committed files are read.
    pub managed: bool,
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

/// Names of the schema directories directly under the operator's root, sorted.
pub async fn list_schemas(op: &Operator) -> opendal::Result<Vec<String>> {
    let mut names: Vec<String> = op
        .list("/")
        .await?
        .into_iter()
        .filter(|e| e.metadata().is_dir())
        .map(|e| e.name().trim_end_matches('/').to_string())
        .filter(|n| !n.is_empty() && !is_hidden(n))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// The tables of schema directory `schema`, by name. A directory holding no file of a known format is
/// skipped; when a file and a directory have the same table name, the directory wins.
///
/// `infer_types`: whether plain tables' partition columns get types inferred from their values.
pub async fn list_tables(
    op: &Operator,
    schema: &str,
    infer_types: bool,
) -> opendal::Result<BTreeMap<String, LakeTableEntry>> {
    let dir = format!("{schema}/");
    let mut entries = op.list(&dir).await?;
    entries.sort_by(|a, b| a.path().cmp(b.path()));
    let mut tables = BTreeMap::new();
    for entry in entries {
        let name = entry.name().trim_end_matches('/');
        if name.is_empty() || is_hidden(name) || entry.path() == dir {
            continue;
        }
        if entry.metadata().is_dir() {
            let path = format!("{dir}{name}/");
            match directory_table(op, name, &path, infer_types).await? {
                Some(table) => {
                    tables.insert(table.name.clone(), table);
                }
                None => tracing::debug!(path, "lake: skipping directory with no data files"),
            }
        } else if let Some((format, extension)) = LakeFormat::of_file(name) {
            let stem = &name[..name.len() - extension.len()];
            if tables.contains_key(stem) {
                continue;
            }
            tables.insert(
                stem.to_string(),
                LakeTableEntry {
                    name: stem.to_string(),
                    path: format!("{dir}{name}"),
                    format,
                    extension,
                    partition_columns: Vec::new(),
                    managed: false,
                },
            );
        }
    }
    Ok(tables)
}

/// Describes directory `path` as a table: a managed table from its metadata, else from its first data
/// file (in path order): the file's format and the `key=value` directories between the table
/// directory and the file, typed from the values of all files when `infer_types`. A directory with a
/// `_tributary/` directory but no metadata (a `CREATE TABLE AS` still running) is no table.
async fn directory_table(
    op: &Operator,
    name: &str,
    path: &str,
    infer_types: bool,
) -> opendal::Result<Option<LakeTableEntry>> {
    if super::managed::has_meta_dir(op, path).await? {
        return Ok(match super::managed::read_meta(op, path).await {
            Ok(Some(meta)) => match meta.partition_columns() {
                Ok(partition_columns) => Some(LakeTableEntry {
                    name: name.to_string(),
                    path: path.to_string(),
                    format: LakeFormat::Parquet,
                    extension: ".parquet",
                    partition_columns,
                    managed: true,
                }),
                Err(e) => {
                    tracing::warn!(path, error = e, "lake: skipping table with bad metadata");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(path, error = e, "lake: skipping table with bad metadata");
                None
            }
        });
    }
    let lister = op.lister_with(path).recursive(true).await?;
    let mut files: Vec<String> = lister
        .try_filter_map(|e| async move { Ok(e.metadata().is_file().then(|| e.path().to_string())) })
        .try_collect()
        .await?;
    files.sort();
    let mut table: Option<LakeTableEntry> = None;
    let mut values: Vec<Vec<String>> = Vec::new();
    for file in files {
        let Some(relative) = file.strip_prefix(path) else {
            continue;
        };
        let parts: Vec<&str> = relative.split('/').collect();
        let Some((file_name, dirs)) = parts.split_last() else {
            continue;
        };
        if parts.iter().any(|p| is_hidden(p)) {
            continue;
        }
        let Some((format, extension)) = LakeFormat::of_file(file_name) else {
            continue;
        };
        let pairs: Vec<(&str, &str)> = dirs.iter().filter_map(|d| d.split_once('=')).collect();
        match &table {
            None => {
                values = vec![Vec::new(); pairs.len()];
                table = Some(LakeTableEntry {
                    name: name.to_string(),
                    path: path.to_string(),
                    format,
                    extension,
                    partition_columns: pairs
                        .iter()
                        .map(|(k, _)| (k.to_string(), DataType::Utf8))
                        .collect(),
                    managed: false,
                });
            }
            Some(t) if t.extension != extension => continue,
            Some(_) => {}
        }
        if pairs.len() == values.len() {
            for (i, (_, v)) in pairs.iter().enumerate() {
                values[i].push(v.to_string());
            }
        }
        if !infer_types {
            break;
        }
    }
    if let Some(table) = &mut table
        && infer_types
    {
        for ((_, data_type), values) in table.partition_columns.iter_mut().zip(&values) {
            *data_type = infer_partition_type(values);
        }
    }
    Ok(table)
}

/// The type of a Hive partition column from its directory values, as DuckDB infers it: `Int64` when
/// every value is an integer, `Date32` when every value is a `YYYY-MM-DD` date, `Timestamp(µs)` when
/// every value is a `YYYY-MM-DD HH:MM:SS[.f]` timestamp, else `Utf8` (also for no values).
pub fn infer_partition_type(values: &[String]) -> DataType {
    // As DataFusion will read them: the directory names as they are (it decodes the `%` escapes the
    // object store adds, not Hive's), so a Hive-escaped `10%3A00` stays text.
    let all = |f: &dyn Fn(&str) -> bool| !values.is_empty() && values.iter().all(|v| f(v));
    if all(&|v| v.parse::<i64>().is_ok()) {
        DataType::Int64
    } else if all(&|v| v.len() == 10 && chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok()) {
        DataType::Date32
    } else if all(&|v| {
        chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S%.f").is_ok()
            || chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
    }) {
        DataType::Timestamp(TimeUnit::Microsecond, None)
    } else {
        DataType::Utf8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer(values: &[&str]) -> DataType {
        infer_partition_type(&values.iter().map(|v| v.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn partition_types_are_inferred_from_all_values() {
        assert_eq!(infer(&["3", "10", "-1"]), DataType::Int64);
        assert_eq!(infer(&["3", "x"]), DataType::Utf8);
        assert_eq!(infer(&["2024-01-01", "2023-12-31"]), DataType::Date32);
        assert_eq!(
            infer(&["2024-01-01 10:00:00", "2024-01-01 11:30:00.5"]),
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(infer(&["2024-01-01 10%3A00%3A00"]), DataType::Utf8);
        assert_eq!(infer(&[]), DataType::Utf8);
    }
}
