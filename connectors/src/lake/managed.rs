//! Tables Tributary writes ("managed" tables): their metadata and commit manifests.
//!
//! Layout of a managed table `SCHEMA/TABLE/` under the lake's location:
//! ```text
//! SCHEMA/TABLE/_tributary/table.json               columns (Arrow types), format, partitioned_by
//! SCHEMA/TABLE/_tributary/creating                 while a CREATE TABLE AS runs (its query key; no table.json yet)
//! SCHEMA/TABLE/_tributary/commits/QUERY.json       one per committed write: the data files it added
//! SCHEMA/TABLE/k=v/.../part-QUERY-tT-aA-N.parquet  data files, Hive-style partition directories
//! ```
//! A reader of a managed table reads only the files some commit file lists (see [`committed_files`]),
//! so the data files of a running, failed or duplicate attempt are never seen; each commit is one
//! object written last (atomic on a local disk and on S3). A table becomes visible when `table.json`
//! is written, which `CREATE TABLE AS` does after its commit file; discovery skips a directory that
//! has `_tributary/` but no `table.json` (a `CREATE TABLE AS` still running, or one that failed
//! before its cleanup). Directories without `_tributary/` are plain Hive-style tables, read as they
//! are listed.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use futures::StreamExt;
use opendal::Operator;
use serde::{Deserialize, Serialize};

/// Name of the metadata directory inside a managed table's directory.
pub const META_DIR: &str = "_tributary";

/// The metadata file of a managed table, relative to the table directory.
pub fn meta_path(table_dir: &str) -> String {
    format!("{table_dir}{META_DIR}/table.json")
}

/// The marker of a `CREATE TABLE AS` in progress, relative to the lake root.
pub fn creating_path(table_dir: &str) -> String {
    format!("{table_dir}{META_DIR}/creating")
}

/// The directory of commit files, relative to the lake root.
pub fn commits_dir(table_dir: &str) -> String {
    format!("{table_dir}{META_DIR}/commits/")
}

/// One column of a managed table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnMeta {
    /// Column name.
    pub name: String,
    /// Arrow type in its display form (`Int64`, `Utf8`, `Date32`, `Decimal128(15, 2)`, ...).
    pub data_type: String,
    /// Whether the column may hold NULL.
    pub nullable: bool,
}

/// `_tributary/table.json`: what a managed table is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableMeta {
    /// Format version of this file (1).
    pub version: u32,
    /// File format of the data files (`parquet`).
    pub format: String,
    /// All columns in table order; the partition columns are the last ones, in `partitioned_by` order.
    pub columns: Vec<ColumnMeta>,
    /// Hive partition columns, outermost directory first.
    pub partitioned_by: Vec<String>,
}

impl TableMeta {
    /// The metadata of a Parquet table of `schema` (partition columns already last).
    pub fn parquet(schema: &Schema, partitioned_by: Vec<String>) -> Self {
        Self {
            version: 1,
            format: "parquet".into(),
            columns: schema
                .fields()
                .iter()
                .map(|f| ColumnMeta {
                    name: f.name().clone(),
                    data_type: f.data_type().to_string(),
                    nullable: f.is_nullable(),
                })
                .collect(),
            partitioned_by,
        }
    }

    /// The table's Arrow schema. Errors: a type string Arrow cannot parse (a file written by
    /// something else).
    pub fn schema(&self) -> Result<SchemaRef, String> {
        let fields = self
            .columns
            .iter()
            .map(|c| {
                DataType::from_str(&c.data_type)
                    .map(|t| Field::new(&c.name, t, c.nullable))
                    .map_err(|e| format!("column `{}`: type `{}`: {e}", c.name, c.data_type))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(Schema::new(fields)))
    }

    /// The schema of the data files: the columns that are not partition columns.
    pub fn file_schema(&self) -> Result<SchemaRef, String> {
        let schema = self.schema()?;
        let fields: Vec<_> = schema
            .fields()
            .iter()
            .filter(|f| !self.partitioned_by.contains(f.name()))
            .cloned()
            .collect();
        Ok(Arc::new(Schema::new(fields)))
    }

    /// The partition columns with their types, in `partitioned_by` order.
    pub fn partition_columns(&self) -> Result<Vec<(String, DataType)>, String> {
        let schema = self.schema()?;
        self.partitioned_by
            .iter()
            .map(|name| {
                schema
                    .field_with_name(name)
                    .map(|f| (name.clone(), f.data_type().clone()))
                    .map_err(|e| e.to_string())
            })
            .collect()
    }
}

/// One data file a commit added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommittedFile {
    /// Path relative to the table directory (`n_regionkey=3/part-Q-t0-a0-0.parquet`).
    pub path: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
}

/// `_tributary/commits/QUERY.json`: the data files one statement added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    /// The query (attempt key) that wrote them.
    pub query: String,
    /// The files, relative to the table directory.
    pub files: Vec<CommittedFile>,
}

/// Reads a managed table's metadata; `Ok(None)` when `table_dir` has none (a plain table).
pub async fn read_meta(op: &Operator, table_dir: &str) -> Result<Option<TableMeta>, String> {
    match op.read(&meta_path(table_dir)).await {
        Ok(buffer) => serde_json::from_slice(&buffer.to_vec())
            .map(Some)
            .map_err(|e| format!("bad {}: {e}", meta_path(table_dir))),
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Whether `table_dir` has a metadata directory (a managed table, or one being created).
pub async fn has_meta_dir(op: &Operator, table_dir: &str) -> opendal::Result<bool> {
    let entries = op.list(&format!("{table_dir}{META_DIR}/")).await;
    match entries {
        Ok(entries) => Ok(!entries.is_empty()),
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The data files of a managed table that some commit lists, as paths relative to the lake root.
pub async fn committed_files(op: &Operator, table_dir: &str) -> Result<HashSet<String>, String> {
    let dir = commits_dir(table_dir);
    let entries = match op.list(&dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(e.to_string()),
    };
    // One commit file per write ever made: read them concurrently (round trips on S3).
    let paths = entries
        .into_iter()
        .filter(|e| e.metadata().is_file() && e.name().ends_with(".json"))
        .map(|e| e.path().to_string());
    let mut commits = futures::stream::iter(paths)
        .map(|path| async move {
            let bytes = op.read(&path).await.map_err(|e| e.to_string())?.to_vec();
            serde_json::from_slice::<Commit>(&bytes)
                .map_err(|e| format!("bad commit file {path}: {e}"))
        })
        .buffer_unordered(16);
    let mut files = HashSet::new();
    while let Some(commit) = commits.next().await {
        files.extend(
            commit?
                .files
                .into_iter()
                .map(|f| format!("{table_dir}{}", f.path)),
        );
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip_through_their_display_form() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Decimal128(15, 2), true),
            Field::new("c", DataType::Date32, true),
            Field::new(
                "d",
                DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, None),
                true,
            ),
            Field::new("e", DataType::Utf8View, true),
        ]);
        let meta = TableMeta::parquet(&schema, vec!["c".into()]);
        assert_eq!(meta.schema().expect("parses").as_ref(), &schema);
        assert_eq!(meta.file_schema().expect("parses").fields().len(), 4);
    }
}
