//! Reading an Iceberg table: snapshot planning by the iceberg crate, data files read by DataFusion's
//! Parquet scan (see the module docs of [`super`]).

use std::sync::Arc;

use datafusion::catalog::Session;
use datafusion::common::config::TableParquetOptions;
use datafusion::common::{DFSchema, Result};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use futures::TryStreamExt;

use super::{IcebergTable, types};
use crate::sqlstate;

/// The scan of `table` (see [`datafusion::catalog::TableProvider::scan`]): the data files of its
/// snapshot that survive Iceberg's pruning with `filters`, in up to `target_partitions` groups of
/// about equal bytes. Errors: `0A000` for delete files or a non-Parquet data file, `58030` when
/// the manifests cannot be read.
pub(super) async fn plan(
    table: &IcebergTable,
    state: &dyn Session,
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let inner = &table.inner;
    let metadata = table.table.metadata();
    let snapshot = table.snapshot.or_else(|| metadata.current_snapshot_id());
    let projected = match projection {
        Some(indices) => Arc::new(table.schema.project(indices)?),
        None => Arc::clone(&table.schema),
    };
    let Some(snapshot) = snapshot else {
        // A table no write has committed to yet.
        return Ok(Arc::new(EmptyExec::new(projected)));
    };
    let mut builder = table.table.scan().snapshot_id(snapshot).select_all();
    if let Some(predicate) = types::to_predicate(filters, &table.iceberg_schema) {
        builder = builder.with_filter(predicate);
    }
    let name = table.qualified_name();
    let scan = builder
        .build()
        .map_err(|e| inner.error(&format!("cannot plan a scan of `{name}`"), &e))?;
    let tasks: Vec<_> = scan
        .plan_files()
        .await
        .map_err(|e| inner.error(&format!("cannot plan a scan of `{name}`"), &e))?
        .try_collect()
        .await
        .map_err(|e| inner.error(&format!("cannot read the manifests of `{name}`"), &e))?;
    let mut files = Vec::with_capacity(tasks.len());
    for task in tasks {
        if !task.deletes.is_empty() {
            return Err(crate::ConnectorError::sql(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!(
                    "Iceberg table `{name}` has delete files (row-level deletes), which cannot be read yet"
                ),
            ));
        }
        if task.data_file_format != iceberg::spec::DataFileFormat::Parquet {
            return Err(crate::ConnectorError::sql(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!(
                    "Iceberg table `{name}` has a {:?} data file: only Parquet is read",
                    task.data_file_format
                ),
            ));
        }
        let path = inner.relative(&task.data_file_path)?;
        let whole = task.start == 0 && task.length >= task.file_size_in_bytes;
        let file = if whole {
            PartitionedFile::new(path, task.file_size_in_bytes)
        } else {
            PartitionedFile::new_with_range(
                path,
                task.file_size_in_bytes,
                task.start as i64,
                (task.start + task.length) as i64,
            )
        };
        files.push((task.length, file));
    }
    if files.is_empty() {
        return Ok(Arc::new(EmptyExec::new(projected)));
    }
    let groups = balance(files, state.config().target_partitions().max(1));
    let options = TableParquetOptions {
        global: state.config_options().execution.parquet.clone(),
        ..Default::default()
    };
    let mut source =
        ParquetSource::new(Arc::clone(&table.schema)).with_table_parquet_options(options);
    if let Some(filter) = conjunction(filters.iter().cloned()) {
        let df_schema = DFSchema::try_from(table.schema.as_ref().clone())?;
        let predicate = state.create_physical_expr(filter, &df_schema)?;
        source = source.with_predicate(predicate);
    }
    let url = ObjectStoreUrl::parse(inner.lake.store_url().as_str())?;
    let config = FileScanConfigBuilder::new(url, Arc::new(source))
        .with_file_groups(groups)
        .with_projection_indices(projection.cloned())?
        .with_limit(limit)
        .build();
    Ok(DataSourceExec::from_data_source(config))
}

/// `files` (bytes, file) in at most `n` groups of about equal bytes: largest first, each into the
/// lightest group.
fn balance(mut files: Vec<(u64, PartitionedFile)>, n: usize) -> Vec<FileGroup> {
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    let n = n.min(files.len()).max(1);
    let mut groups: Vec<(u64, Vec<PartitionedFile>)> = (0..n).map(|_| (0, Vec::new())).collect();
    for (bytes, file) in files {
        let lightest = groups
            .iter_mut()
            .min_by_key(|(total, _)| *total)
            .expect("at least one group");
        lightest.0 += bytes;
        lightest.1.push(file);
    }
    groups
        .into_iter()
        .map(|(_, files)| FileGroup::new(files))
        .collect()
}
