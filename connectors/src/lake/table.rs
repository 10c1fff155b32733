//! The table providers of lake tables Tributary writes: [`ManagedTable`] (a managed table: reads only
//! committed files, accepts `INSERT`) and [`WriteTarget`] (the table a `CREATE TABLE AS` fills).

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{ScanArgs, ScanResult, Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Constraints, DataFusionError, Result, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::ListingTable;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;

use super::Lake;
use super::managed;
use super::write::{LakeCommitExec, LakeWriteExec, Publisher, WriteSpec};

/// Where a write goes and the schema its input has: builds the write plan of `INSERT` and
/// `CREATE TABLE AS` (see [`super::write`]).
#[derive(Debug, Clone)]
pub struct WriteTarget {
    pub(super) lake: Arc<Lake>,
    pub(super) spec: WriteSpec,
    pub(super) schema: SchemaRef,
    /// What publishes the files instead of a lake commit (an Iceberg snapshot); `None` for lake
    /// tables.
    pub(super) publisher: Option<Arc<dyn Publisher>>,
}

impl WriteTarget {
    /// The target writing `spec` through `lake`'s store, whose input has `schema`, published by
    /// `publisher` (see [`LakeCommitExec`]).
    pub(crate) fn new(
        lake: Arc<Lake>,
        spec: WriteSpec,
        schema: SchemaRef,
        publisher: Option<Arc<dyn Publisher>>,
    ) -> Self {
        Self {
            lake,
            spec,
            schema,
            publisher,
        }
    }

    /// Plans `INSERT` of `input` (already of the target's schema). Errors: an overwrite.
    pub(crate) fn insert(
        &self,
        input: Arc<dyn ExecutionPlan>,
        op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if op != InsertOp::Append {
            return Err(DataFusionError::NotImplemented(format!(
                "{op} into a lake table (only INSERT INTO, which appends)"
            )));
        }
        Ok(self.plan(input))
    }

    /// `LakeCommitExec(CoalescePartitionsExec(LakeWriteExec(input)))`.
    fn plan(&self, input: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
        let write = Arc::new(LakeWriteExec::new(
            self.spec.clone(),
            Arc::clone(&self.lake),
            input,
        ));
        let gathered = Arc::new(CoalescePartitionsExec::new(write));
        Arc::new(LakeCommitExec::new(
            self.spec.clone(),
            Arc::clone(&self.lake),
            self.publisher.clone(),
            gathered,
        ))
    }
}

#[async_trait]
impl TableProvider for WriteTarget {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::Plan(
            "a table being created cannot be read".into(),
        ))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.insert(input, insert_op)
    }
}

/// A managed table: DataFusion's [`ListingTable`] over its directory (typed partition columns from
/// the table's metadata, Parquet pruning), whose scans keep only the files a commit lists, read
/// when the scan is planned (each statement sees the commits made before it).
#[derive(Debug)]
pub struct ManagedTable {
    pub(super) inner: Arc<ListingTable>,
    pub(super) target: WriteTarget,
}

impl ManagedTable {
    fn dir(&self) -> &str {
        &self.target.spec.table_dir
    }
}

#[async_trait]
impl TableProvider for ManagedTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let lake = &self.target.lake;
        let committed = managed::committed_files(&lake.operator, self.dir())
            .await
            .map_err(|e| {
                crate::ConnectorError::sql(
                    crate::sqlstate::IO_ERROR,
                    lake.message(&format!("cannot read the commits of `{}`", self.dir()), &e),
                )
            })?;
        // Listed without DataFusion's listing cache (files come and go), and without statistics:
        // uncommitted files must not count in row counts (which answer `count(*)`) nor stop the
        // listing early under a LIMIT.
        let mut config = state.config().clone();
        config.options_mut().execution.collect_statistics = false;
        let listing = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(Arc::clone(&lake.listing))
            .build();
        let plan = self
            .inner
            .scan(&listing, projection, filters, limit)
            .await?;
        keep_committed(plan, &committed)
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.target.insert(input, insert_op)
    }
}

/// Removes every file not in `committed` (paths relative to the lake root) from the file scans of
/// `plan`. File groups keep their number (possibly empty), so the scan's partitioning holds.
fn keep_committed(
    plan: Arc<dyn ExecutionPlan>,
    committed: &HashSet<String>,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let Some(config) = node
            .downcast_ref::<DataSourceExec>()
            .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
        else {
            return Ok(Transformed::no(node));
        };
        let mut config = config.clone();
        config.file_groups = config
            .file_groups
            .iter()
            .map(|group| {
                FileGroup::new(
                    group
                        .iter()
                        .filter(|f| {
                            // The object store's paths escape `%`; the commit lists the keys.
                            let key =
                                opendal::raw::percent_decode_path(f.object_meta.location.as_ref());
                            committed.contains(&key)
                        })
                        .cloned()
                        .collect(),
                )
            })
            .collect();
        Ok(Transformed::yes(
            DataSourceExec::from_data_source(config) as Arc<dyn ExecutionPlan>
        ))
    })
    .map(|t| t.data)
}

/// A lake table that is not managed (files written by other tools): DataFusion's [`ListingTable`]
/// with the row count and column statistics of its files when it was first read, which the
/// planner's join ordering estimates from (`TableProvider::statistics`; DataFusion's own listing
/// table gives them only to the physical scan). Scans list the files again, so new files are read;
/// only the estimate can be stale. A file's own statistics (which answer `count(*)`, `min`, `max`)
/// are taken from its footer once per version of the file (size and modification time, as
/// DataFusion's statistics cache checks), not at every scan.
#[derive(Debug)]
pub struct FileTable {
    pub(super) inner: Arc<ListingTable>,
    pub(super) statistics: Option<Statistics>,
}

impl FileTable {
    /// `inner` with the statistics of its files as listed through `state` now (the footers of
    /// Parquet files; none for formats without them). A listing failure leaves the table without
    /// statistics, to fail (or not) when scanned.
    pub(super) async fn new(inner: ListingTable, state: &dyn Session) -> Self {
        let statistics = inner
            .list_files_for_scan(state, &[], None)
            .await
            .ok()
            .map(|listed| listed.statistics)
            .map(|mut statistics| {
                // Statistics of the files' columns only, without partition columns: kept when they
                // line up with the table's columns.
                if statistics.column_statistics.len() != inner.schema().fields().len() {
                    statistics.column_statistics = Statistics::unknown_column(&inner.schema());
                }
                statistics
            })
            .filter(|s| s.num_rows.get_value().is_some());
        Self {
            inner: Arc::new(inner),
            statistics,
        }
    }
}

#[async_trait]
impl TableProvider for FileTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.scan(state, projection, filters, limit).await
    }

    async fn scan_with_args<'a>(
        &self,
        state: &dyn Session,
        args: ScanArgs<'a>,
    ) -> Result<ScanResult> {
        self.inner.scan_with_args(state, args).await
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.inner.constraints()
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.inner.get_column_default(column)
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.insert_into(state, input, insert_op).await
    }

    fn statistics(&self) -> Option<Statistics> {
        self.statistics.clone()
    }
}
