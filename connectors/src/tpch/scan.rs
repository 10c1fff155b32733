//! [`TpchScanExec`]: the physical scan of one tpch table, one output partition per generator part.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, Statistics, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning,
    PlanProperties, ReplaceChildrenOptions, StatisticsArgs,
};

use super::table::{BatchIter, TpchTable, projected_schema};
use crate::ScanSpec;

/// The [`ScanSpec`] payload of a [`TpchScanExec`]: everything `try_new` takes.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct TpchScanPayload {
    schema: String,
    table: String,
    scale_factor: f64,
    splits: usize,
    projection: Option<Vec<usize>>,
    limit: Option<usize>,
}

/// One split of a tpch table: generator part `part` (1-based) of `part_count`.
///
/// Concatenating the parts `1..=part_count` in order yields exactly the table's rows, whatever
/// `part_count` is; a given part always yields the same rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TpchSplit {
    /// 1-based generator part.
    pub part: i32,
    /// Number of parts the table is cut into.
    pub part_count: i32,
}

/// Physical scan of one tpch table, generating rows on the fly with `tpchgen`.
///
/// Output partition `i` is split `i` ([`TpchSplit`] part `i + 1` of `split_count`); executing it twice
/// yields the same batches, and it shares no state with other partitions, so it can run on any worker.
/// Batches are generated lazily as the stream is polled. With a `limit`, each partition stops after
/// `limit` rows (the limit is an upper bound on the rows the consumer needs, as in DataFusion's
/// `TableProvider::scan`). Statistics give exact row counts (an estimate for `lineitem` splits).
///
/// Everything that defines the scan is plain data (schema name, table, scale factor, split count,
/// projection, limit), so the node can be serialized and rebuilt with [`TpchScanExec::try_new`].
/// Displayed as `TpchScan: tiny.lineitem, splits=2, projection=[l_orderkey, l_quantity], limit=10`.
#[derive(Debug, Clone)]
pub struct TpchScanExec {
    schema_name: String,
    table: TpchTable,
    scale_factor: f64,
    split_count: usize,
    projection: Option<Vec<usize>>,
    limit: Option<usize>,
    projected_schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl TpchScanExec {
    /// A scan of `table` at `scale_factor` (shown as `schema_name.table`), cut into `split_count`
    /// splits (at least 1), reading the columns `projection` (indices into the table's full schema,
    /// `None` for all) and at most `limit` rows per split.
    ///
    /// Errors: a projection index out of range, or a split count that does not fit an `i32`.
    pub fn try_new(
        schema_name: impl Into<String>,
        table: TpchTable,
        scale_factor: f64,
        split_count: usize,
        projection: Option<Vec<usize>>,
        limit: Option<usize>,
    ) -> Result<Self> {
        let split_count = split_count.max(1);
        if i32::try_from(split_count).is_err() {
            return internal_err!("tpch split count {split_count} does not fit an i32");
        }
        let projected_schema = projected_schema(table, projection.as_deref())?;
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&projected_schema)),
            Partitioning::UnknownPartitioning(split_count),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Self {
            schema_name: schema_name.into(),
            table,
            scale_factor,
            split_count,
            projection,
            limit,
            projected_schema,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The tpch schema name the scan was planned under (`tiny`, `sf1`, ...).
    pub fn schema_name(&self) -> &str {
        &self.schema_name
    }

    /// The scanned table.
    pub fn table(&self) -> TpchTable {
        self.table
    }

    /// The TPC-H scale factor (0.01 for `tiny`).
    pub fn scale_factor(&self) -> f64 {
        self.scale_factor
    }

    /// Number of splits, which is the number of output partitions.
    pub fn split_count(&self) -> usize {
        self.split_count
    }

    /// The split output partition `partition` reads, if the partition exists.
    pub fn split(&self, partition: usize) -> Option<TpchSplit> {
        if partition >= self.split_count {
            return None;
        }
        // Both fit an i32: checked in `try_new`.
        Some(TpchSplit {
            part: i32::try_from(partition + 1).ok()?,
            part_count: i32::try_from(self.split_count).ok()?,
        })
    }

    /// The projected column indices into the table's full schema, `None` for all columns.
    pub fn projection(&self) -> Option<&[usize]> {
        self.projection.as_deref()
    }

    /// The per-split row limit, if any.
    pub fn limit(&self) -> Option<usize> {
        self.limit
    }

    /// The scan as plain data (no catalog: the rows are generated from the spec alone).
    pub(crate) fn to_spec(&self) -> ScanSpec {
        let payload = TpchScanPayload {
            schema: self.schema_name.clone(),
            table: self.table.name().to_string(),
            scale_factor: self.scale_factor,
            splits: self.split_count,
            projection: self.projection.clone(),
            limit: self.limit,
        };
        ScanSpec {
            kind: super::KIND,
            catalog: None,
            payload: serde_json::to_value(payload).unwrap_or_default(),
        }
    }

    /// Rebuilds the scan of [`TpchScanExec::to_spec`]. Errors: a bad payload, or one whose
    /// projected schema is not `schema`'s.
    pub(crate) fn from_spec(spec: &ScanSpec, schema: &SchemaRef) -> Result<Self> {
        let p: TpchScanPayload = crate::spec_payload(spec)?;
        let Some(table) = TpchTable::from_name(&p.table) else {
            return Err(DataFusionError::Plan(format!(
                "bad tpch scan payload: no table \"{}\"",
                p.table
            )));
        };
        let scan = Self::try_new(
            p.schema,
            table,
            p.scale_factor,
            p.splits,
            p.projection,
            p.limit,
        )?;
        crate::check_scan_schema(
            super::KIND,
            schema,
            scan.projected_schema
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect::<Vec<_>>()
                .into_iter(),
        )?;
        Ok(scan)
    }

    /// Row count of one split (`Some(partition)`) or of the whole scan (`None`), after the limit.
    fn row_count(&self, partition: Option<usize>) -> Result<Precision<usize>> {
        let capped = |(rows, exact): (u64, bool)| {
            let rows = usize::try_from(rows).unwrap_or(usize::MAX);
            let rows = self.limit.map_or(rows, |l| rows.min(l));
            if exact {
                Precision::Exact(rows)
            } else {
                Precision::Inexact(rows)
            }
        };
        match partition {
            Some(p) => match self.split(p) {
                Some(s) => Ok(capped(self.table.split_row_count(
                    self.scale_factor,
                    s.part,
                    s.part_count,
                ))),
                None => internal_err!(
                    "TpchScanExec: invalid partition {p}, the scan has {} splits",
                    self.split_count
                ),
            },
            None if self.limit.is_none() => Ok(capped(self.table.row_count(self.scale_factor))),
            None => (0..self.split_count).try_fold(Precision::Exact(0), |acc, p| {
                Ok(acc.add(&self.row_count(Some(p))?))
            }),
        }
    }

    fn statistics_for(&self, partition: Option<usize>) -> Result<Arc<Statistics>> {
        let rows = self.row_count(partition)?;
        Ok(Arc::new(
            Statistics::new_unknown(&self.projected_schema).with_num_rows(rows),
        ))
    }
}

impl DisplayAs for TpchScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let columns: Vec<&str> = self
            .projected_schema
            .fields()
            .iter()
            .map(|c| c.name().as_str())
            .collect();
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(
                    f,
                    "TpchScan: {}.{}, splits={}, projection=[{}]",
                    self.schema_name,
                    self.table,
                    self.split_count,
                    columns.join(", ")
                )?;
                if let Some(limit) = self.limit {
                    write!(f, ", limit={limit}")?;
                }
                Ok(())
            }
            DisplayFormatType::TreeRender => {
                writeln!(f, "table={}.{}", self.schema_name, self.table)?;
                writeln!(f, "splits={}", self.split_count)?;
                if let Some(limit) = self.limit {
                    writeln!(f, "limit={limit}")?;
                }
                Ok(())
            }
        }
    }
}

impl ExecutionPlan for TpchScanExec {
    fn name(&self) -> &'static str {
        "TpchScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !children.is_empty() {
            return internal_err!("TpchScanExec is a leaf and takes no children");
        }
        Ok(self)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let Some(split) = self.split(partition) else {
            return internal_err!(
                "TpchScanExec: invalid partition {partition}, the scan has {} splits",
                self.split_count
            );
        };
        let mut batch_size = context.session_config().batch_size();
        if let Some(limit) = self.limit {
            batch_size = batch_size.min(limit);
        }
        let batches = SplitBatches {
            batches: self.table.generate(
                self.scale_factor,
                split.part,
                split.part_count,
                batch_size,
            ),
            projection: self.projection.clone(),
            remaining: self.limit,
            metrics: BaselineMetrics::new(&self.metrics, partition),
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.projected_schema),
            futures::stream::iter(batches),
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        self.statistics_for(args.partition())
    }

    fn partition_statistics(&self, partition: Option<usize>) -> Result<Arc<Statistics>> {
        self.statistics_for(partition)
    }
}

/// The batches of one split, projected and cut at the limit; generates a batch per `next()`.
struct SplitBatches {
    batches: BatchIter,
    projection: Option<Vec<usize>>,
    remaining: Option<usize>,
    metrics: BaselineMetrics,
}

impl Iterator for SplitBatches {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == Some(0) {
            self.metrics.try_done();
            return None;
        }
        let timer = self.metrics.elapsed_compute().timer();
        let batch = match self.batches.next() {
            None => {
                timer.done();
                self.metrics.try_done();
                return None;
            }
            Some(Err(e)) => return Some(Err(e.into())),
            Some(Ok(batch)) => batch,
        };
        let mut batch = match &self.projection {
            Some(p) => match batch.project(p) {
                Ok(b) => b,
                Err(e) => return Some(Err(e.into())),
            },
            None => batch,
        };
        if let Some(remaining) = self.remaining.as_mut() {
            if batch.num_rows() > *remaining {
                batch = batch.slice(0, *remaining);
            }
            *remaining -= batch.num_rows();
        }
        timer.done();
        self.metrics.record_output(batch.num_rows());
        Some(Ok(batch))
    }
}
