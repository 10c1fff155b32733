//! Trino's Iceberg metadata tables: `"t$snapshots"` (the table's snapshots) and `"t$files"` (the
//! data files of its current snapshot), as in-memory tables built when looked up.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::TableProvider;
use datafusion::common::Result;
use datafusion::datasource::MemTable;
use iceberg::spec::ManifestStatus;
use iceberg::table::Table;

use super::Inner;

/// `"t$snapshots"`: `committed_at` (timestamptz), `snapshot_id`, `parent_id` (bigint, NULL for the
/// first), `operation` (`append`, ...), `manifest_list` (URI), `summary` (the snapshot summary as a
/// JSON object; Trino has a map), oldest first.
pub(super) fn snapshots(table: &Table) -> Result<Arc<dyn TableProvider>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "committed_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("snapshot_id", DataType::Int64, false),
        Field::new("parent_id", DataType::Int64, true),
        Field::new("operation", DataType::Utf8, false),
        Field::new("manifest_list", DataType::Utf8, false),
        Field::new("summary", DataType::Utf8, false),
    ]));
    let mut snapshots: Vec<_> = table.metadata().snapshots().collect();
    snapshots.sort_by_key(|s| (s.timestamp_ms(), s.sequence_number()));
    let summary = |s: &iceberg::spec::Snapshot| {
        let mut all: BTreeMap<&str, &str> = s
            .summary()
            .additional_properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        all.insert("operation", s.summary().operation.as_str());
        serde_json::to_string(&all).unwrap_or_default()
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                snapshots.iter().map(|s| s.timestamp_ms() * 1000),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(Int64Array::from_iter_values(
            snapshots.iter().map(|s| s.snapshot_id()),
        )),
        Arc::new(Int64Array::from_iter(
            snapshots.iter().map(|s| s.parent_snapshot_id()),
        )),
        Arc::new(StringArray::from_iter_values(
            snapshots.iter().map(|s| s.summary().operation.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            snapshots.iter().map(|s| s.manifest_list()),
        )),
        Arc::new(StringArray::from_iter_values(
            snapshots.iter().map(|s| summary(s)),
        )),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// `"t$files"`: one row per live file of the current snapshot: `content` (0 data, 1 position
/// deletes, 2 equality deletes), `file_path`, `file_format`, `spec_id`, `record_count`,
/// `file_size_in_bytes`.
pub(super) async fn files(inner: &Inner, table: &Table) -> Result<Arc<dyn TableProvider>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("content", DataType::Int32, false),
        Field::new("file_path", DataType::Utf8, false),
        Field::new("file_format", DataType::Utf8, false),
        Field::new("spec_id", DataType::Int32, false),
        Field::new("record_count", DataType::Int64, false),
        Field::new("file_size_in_bytes", DataType::Int64, false),
    ]));
    let mut content = Vec::new();
    let mut paths = Vec::new();
    let mut formats = Vec::new();
    let mut spec_ids = Vec::new();
    let mut records = Vec::new();
    let mut sizes = Vec::new();
    if let Some(snapshot) = table.metadata().current_snapshot() {
        let name = table.identifier().to_string();
        let list = table
            .manifest_list_reader(snapshot)
            .load()
            .await
            .map_err(|e| inner.error(&format!("cannot read the manifest list of `{name}`"), &e))?;
        for manifest_file in list.entries() {
            let manifest = manifest_file
                .load_manifest(table.file_io())
                .await
                .map_err(|e| inner.error(&format!("cannot read a manifest of `{name}`"), &e))?;
            for entry in manifest.entries() {
                if entry.status() == ManifestStatus::Deleted {
                    continue;
                }
                let file = entry.data_file();
                content.push(file.content_type() as i32);
                paths.push(file.file_path().to_string());
                formats.push(file.file_format().to_string().to_uppercase());
                spec_ids.push(manifest_file.partition_spec_id);
                records.push(file.record_count() as i64);
                sizes.push(file.file_size_in_bytes() as i64);
            }
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(content)),
        Arc::new(StringArray::from(paths)),
        Arc::new(StringArray::from(formats)),
        Arc::new(Int32Array::from(spec_ids)),
        Arc::new(Int64Array::from(records)),
        Arc::new(Int64Array::from(sizes)),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}
