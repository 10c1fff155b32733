//! [`SqlScanExec`]: the physical scan of a SQL source (`postgres`, `mysql`), one remote SELECT per
//! split, streamed into Arrow batches.
//!
//! Planning, display, `EXPLAIN` and shipping the scan to a worker ([`ScanSpec`]) are the same for
//! every SQL source; how a split's statement is run and its rows decoded is the source's
//! [`SqlReader`].

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, Result, Statistics, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, StatisticsArgs,
};

use crate::sql_table::ColumnType;
use crate::{ConnectorError, ScanSpec};

/// How one SQL source runs a split's statement and decodes its rows.
pub trait SqlReader: fmt::Debug + Send + Sync + 'static {
    /// The connector kind, also the scan's [`ScanSpec::kind`] (`postgres`).
    const KIND: crate::ConnectorKind;
    /// The plan node's name (`PostgresScanExec`).
    const NAME: &'static str;
    /// The label the scan is displayed with (`PostgresScan`).
    const LABEL: &'static str;
    /// The connector a scan is rebuilt on.
    type Connector: 'static;
    /// The connection pool of one catalog.
    type Pool: fmt::Debug + Send + Sync + 'static;
    /// How a column is read.
    type Type: ColumnType;

    /// The pool of `connector`'s catalog.
    fn pool(connector: &Self::Connector) -> &Arc<Self::Pool>;

    /// The catalog `pool` connects for.
    fn catalog(pool: &Self::Pool) -> &str;

    /// The batches of one split: `split.sql`'s rows, read as `split.types` into `split.schema`, in
    /// batches of `split.batch_size` rows, recorded in `split.metrics`.
    fn read(split: SplitRead<Self>) -> SendableRecordBatchStream;
}

/// What one output partition of a [`SqlScanExec`] reads.
pub struct SplitRead<R: SqlReader + ?Sized> {
    /// The catalog's connections.
    pub pool: Arc<R::Pool>,
    /// The split's statement.
    pub sql: String,
    /// The output schema.
    pub schema: SchemaRef,
    /// How each column is read.
    pub types: Vec<R::Type>,
    /// Rows per batch (at least 1).
    pub batch_size: usize,
    /// The partition's metrics.
    pub metrics: BaselineMetrics,
}

/// The error of a value that cannot be read into column `index` of `schema`.
pub(crate) fn column_error(
    catalog: &str,
    schema: &SchemaRef,
    index: usize,
    reason: String,
) -> DataFusionError {
    DataFusionError::External(Box::new(ConnectorError::Source(format!(
        "catalog \"{catalog}\": cannot read column \"{}\": {reason}",
        schema.field(index).name()
    ))))
}

/// The [`ScanSpec`] payload of a [`SqlScanExec`]: how each column is read, and each split's SQL.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(bound = "")]
struct SqlScanPayload<T: ColumnType> {
    types: Vec<T>,
    sqls: Vec<String>,
}

/// Physical scan of a table (or of a pushed statement) of a SQL source: output partition `i` runs
/// the remote SQL of split `i` (a key or ctid range of the table, or the whole table, view or
/// statement) and streams its rows.
///
/// The SQL of each split is fixed at planning time, so executing a partition twice reads the same
/// rows (as long as the source table is unchanged); memory stays bounded whatever the table size.
/// Displayed as `PostgresScan: catalog=pg, splits=4, sql="SELECT ..."` with the SQL of the first
/// split, so `EXPLAIN` shows what is pushed to the source.
#[derive(Debug)]
pub struct SqlScanExec<R: SqlReader> {
    pool: Arc<R::Pool>,
    schema: SchemaRef,
    types: Vec<R::Type>,
    sqls: Vec<String>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl<R: SqlReader> SqlScanExec<R> {
    pub(crate) fn new(
        pool: Arc<R::Pool>,
        schema: SchemaRef,
        types: Vec<R::Type>,
        sqls: Vec<String>,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(sqls.len()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        SqlScanExec {
            pool,
            schema,
            types,
            sqls,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// The catalog the scan reads from.
    pub fn catalog(&self) -> &str {
        R::catalog(&self.pool)
    }

    /// The remote SQL of each split, in partition order.
    pub fn split_sqls(&self) -> &[String] {
        &self.sqls
    }

    /// The scan as plain data: the catalog, each column's reader type and each split's SQL.
    pub(crate) fn to_spec(&self) -> ScanSpec {
        let payload = SqlScanPayload::<R::Type> {
            types: self.types.clone(),
            sqls: self.sqls.clone(),
        };
        ScanSpec {
            kind: R::KIND,
            catalog: Some(self.catalog().to_string()),
            payload: serde_json::to_value(payload).unwrap_or_default(),
        }
    }

    /// Rebuilds the scan of [`SqlScanExec::to_spec`] on `connector`'s pool. Errors: a bad
    /// payload, or column types that are not `schema`'s.
    pub(crate) fn from_spec(
        connector: &R::Connector,
        spec: &ScanSpec,
        schema: SchemaRef,
    ) -> Result<Self> {
        let p: SqlScanPayload<R::Type> = crate::spec_payload(spec)?;
        crate::check_scan_schema(
            R::KIND,
            &schema,
            p.types
                .iter()
                .map(ColumnType::arrow_type)
                .collect::<Vec<_>>()
                .into_iter(),
        )?;
        Ok(Self::new(
            Arc::clone(R::pool(connector)),
            schema,
            p.types,
            p.sqls,
        ))
    }
}

impl<R: SqlReader> DisplayAs for SqlScanExec<R> {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let first = self.sqls.first().map(String::as_str).unwrap_or("");
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => write!(
                f,
                "{}: catalog={}, splits={}, sql={first:?}",
                R::LABEL,
                self.catalog(),
                self.sqls.len()
            ),
            DisplayFormatType::TreeRender => {
                writeln!(f, "catalog={}", self.catalog())?;
                writeln!(f, "splits={}", self.sqls.len())?;
                writeln!(f, "sql={first}")
            }
        }
    }
}

impl<R: SqlReader> ExecutionPlan for SqlScanExec<R> {
    fn name(&self) -> &'static str {
        R::NAME
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    crate::scan_leaf::leaf_exec_methods!();

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let Some(sql) = self.sqls.get(partition) else {
            return internal_err!(
                "{}: invalid partition {partition}, the scan has {} splits",
                R::NAME,
                self.sqls.len()
            );
        };
        let stream = R::read(SplitRead {
            pool: Arc::clone(&self.pool),
            sql: sql.clone(),
            schema: Arc::clone(&self.schema),
            types: self.types.clone(),
            batch_size: context.session_config().batch_size().max(1),
            metrics: BaselineMetrics::new(&self.metrics, partition),
        });
        Ok(crate::metrics::Source::new(self.catalog(), R::KIND).instrument("query", stream))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        Ok(Arc::new(Statistics::new_unknown(&self.schema)))
    }

    fn partition_statistics(&self, _partition: Option<usize>) -> Result<Arc<Statistics>> {
        Ok(Arc::new(Statistics::new_unknown(&self.schema)))
    }
}
