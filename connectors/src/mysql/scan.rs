//! [`MySqlScanExec`]: one remote SELECT per split, streamed into Arrow batches.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatchOptions;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
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
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;

use super::MySqlConnector;
use super::pool::Pool;
use super::types::{ColumnBuilder, MyType};
use crate::{ConnectorError, ScanSpec};

/// The [`ScanSpec`] payload of a [`MySqlScanExec`]: how each column is read, and each split's SQL.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct MySqlScanPayload {
    types: Vec<MyTypeSpec>,
    sqls: Vec<String>,
}

/// [`MyType`] as plain data (several reader types share an Arrow type: year, bit, bigint unsigned).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum MyTypeSpec {
    Int { bits: u8, unsigned: bool },
    UBigint,
    Decimal { precision: u8, scale: i8 },
    Float,
    Double,
    Text,
    AsText { geometry: bool },
    Binary,
    Date,
    Datetime,
    Timestamp,
    Time,
    TimeInterval,
    Year,
    Bits,
    Bits64,
}

impl From<&MyType> for MyTypeSpec {
    fn from(t: &MyType) -> Self {
        match *t {
            MyType::Int { bits, unsigned } => Self::Int { bits, unsigned },
            MyType::UBigint => Self::UBigint,
            MyType::Decimal { precision, scale } => Self::Decimal { precision, scale },
            MyType::Float => Self::Float,
            MyType::Double => Self::Double,
            MyType::Text => Self::Text,
            MyType::AsText { geometry } => Self::AsText { geometry },
            MyType::Binary => Self::Binary,
            MyType::Date => Self::Date,
            MyType::Datetime => Self::Datetime,
            MyType::Timestamp => Self::Timestamp,
            MyType::Time => Self::Time,
            MyType::TimeInterval => Self::TimeInterval,
            MyType::Year => Self::Year,
            MyType::Bits => Self::Bits,
            MyType::Bits64 => Self::Bits64,
        }
    }
}

impl From<MyTypeSpec> for MyType {
    fn from(t: MyTypeSpec) -> Self {
        match t {
            MyTypeSpec::Int { bits, unsigned } => Self::Int { bits, unsigned },
            MyTypeSpec::UBigint => Self::UBigint,
            MyTypeSpec::Decimal { precision, scale } => Self::Decimal { precision, scale },
            MyTypeSpec::Float => Self::Float,
            MyTypeSpec::Double => Self::Double,
            MyTypeSpec::Text => Self::Text,
            MyTypeSpec::AsText { geometry } => Self::AsText { geometry },
            MyTypeSpec::Binary => Self::Binary,
            MyTypeSpec::Date => Self::Date,
            MyTypeSpec::Datetime => Self::Datetime,
            MyTypeSpec::Timestamp => Self::Timestamp,
            MyTypeSpec::Time => Self::Time,
            MyTypeSpec::TimeInterval => Self::TimeInterval,
            MyTypeSpec::Year => Self::Year,
            MyTypeSpec::Bits => Self::Bits,
            MyTypeSpec::Bits64 => Self::Bits64,
        }
    }
}

/// Physical scan of a MySQL table: output partition `i` runs the remote SQL of split `i` (a primary
/// key range of the table, or the whole table / view) and streams its rows.
///
/// The SQL of each split is fixed at planning time, so executing a partition twice reads the same
/// rows (as long as the source table is unchanged). Rows are read with the binary protocol (a
/// prepared statement), row by row off the socket, and cut into batches of the session's batch size
/// by a reader task that stays at most two batches ahead of the consumer: memory stays bounded
/// whatever the table size. Displayed as ``MySqlScan: catalog=my, splits=4, sql="SELECT `id` ..."``
/// with the SQL of the first split, so `EXPLAIN` shows what is pushed to the source.
#[derive(Debug)]
pub struct MySqlScanExec {
    pool: Arc<Pool>,
    schema: SchemaRef,
    types: Vec<MyType>,
    sqls: Vec<String>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl MySqlScanExec {
    pub(crate) fn new(
        pool: Arc<Pool>,
        schema: SchemaRef,
        types: Vec<MyType>,
        sqls: Vec<String>,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(sqls.len()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        MySqlScanExec {
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
        self.pool.catalog()
    }

    /// The remote SQL of each split, in partition order.
    pub fn split_sqls(&self) -> &[String] {
        &self.sqls
    }

    /// The scan as plain data: the catalog, each column's reader type and each split's SQL.
    pub(crate) fn to_spec(&self) -> ScanSpec {
        let payload = MySqlScanPayload {
            types: self.types.iter().map(MyTypeSpec::from).collect(),
            sqls: self.sqls.clone(),
        };
        ScanSpec {
            kind: "mysql".into(),
            catalog: Some(self.pool.catalog().to_string()),
            payload: serde_json::to_value(payload).unwrap_or_default(),
        }
    }

    /// Rebuilds the scan of [`MySqlScanExec::to_spec`] on `connector`'s pool. Errors: a bad
    /// payload, or column types that are not `schema`'s.
    pub(crate) fn from_spec(
        connector: &MySqlConnector,
        spec: &ScanSpec,
        schema: SchemaRef,
    ) -> Result<Self> {
        let p: MySqlScanPayload = crate::spec_payload(spec)?;
        let types: Vec<MyType> = p.types.into_iter().map(MyType::from).collect();
        crate::check_scan_schema(
            "mysql",
            &schema,
            types
                .iter()
                .map(MyType::arrow_type)
                .collect::<Vec<_>>()
                .into_iter(),
        )?;
        Ok(Self::new(
            Arc::clone(&connector.shared.pool),
            schema,
            types,
            p.sqls,
        ))
    }
}

impl DisplayAs for MySqlScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let first = self.sqls.first().map(String::as_str).unwrap_or("");
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => write!(
                f,
                "MySqlScan: catalog={}, splits={}, sql={first:?}",
                self.pool.catalog(),
                self.sqls.len()
            ),
            DisplayFormatType::TreeRender => {
                writeln!(f, "catalog={}", self.pool.catalog())?;
                writeln!(f, "splits={}", self.sqls.len())?;
                writeln!(f, "sql={first}")
            }
        }
    }
}

impl ExecutionPlan for MySqlScanExec {
    fn name(&self) -> &'static str {
        "MySqlScanExec"
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
            return internal_err!("MySqlScanExec is a leaf and takes no children");
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
        let Some(sql) = self.sqls.get(partition) else {
            return internal_err!(
                "MySqlScanExec: invalid partition {partition}, the scan has {} splits",
                self.sqls.len()
            );
        };
        let (tx, rx) = mpsc::channel::<Result<RecordBatch>>(2);
        let reader = Reader {
            pool: Arc::clone(&self.pool),
            sql: sql.clone(),
            schema: Arc::clone(&self.schema),
            types: self.types.clone(),
            batch_size: context.session_config().batch_size().max(1),
        };
        // The reader task ends when the result is read, on the first error, or as soon as the
        // consumer drops the stream (then the connection's running query is killed).
        tokio::spawn(async move {
            let closed = tx.clone();
            tokio::select! {
                _ = closed.closed() => {}
                result = reader.run(&tx) => {
                    if let Err(e) = result {
                        let _ = tx.send(Err(e)).await;
                    }
                }
            }
        });
        let metrics = BaselineMetrics::new(&self.metrics, partition);
        let stream = futures::stream::unfold((rx, metrics), |(mut rx, metrics)| async move {
            match rx.recv().await {
                Some(item) => {
                    if let Ok(batch) = &item {
                        metrics.record_output(batch.num_rows());
                    }
                    Some((item, (rx, metrics)))
                }
                None => {
                    metrics.done();
                    None
                }
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream.boxed(),
        )))
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

/// Runs one split's SQL and sends its rows as batches.
struct Reader {
    pool: Arc<Pool>,
    sql: String,
    schema: SchemaRef,
    types: Vec<MyType>,
    batch_size: usize,
}

fn external(e: ConnectorError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl Reader {
    fn builders(&self) -> Result<Vec<ColumnBuilder>> {
        Ok(self
            .types
            .iter()
            .map(|t| t.builder(self.batch_size))
            .collect::<Result<Vec<_>, _>>()?)
    }

    fn batch(&self, builders: &mut [ColumnBuilder], rows: usize) -> Result<RecordBatch> {
        let columns = builders.iter_mut().map(ColumnBuilder::finish).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &options,
        )?)
    }

    /// Reads the whole result, sending each batch; returns early (leaving the connection to be
    /// killed) when the consumer is gone.
    async fn run(&self, tx: &mpsc::Sender<Result<RecordBatch>>) -> Result<()> {
        let pool = &self.pool;
        let sql = self.sql.as_str();
        let mut conn = pool.get().await.map_err(external)?;
        // Until the result is read to the end, the connection must not be reused.
        conn.set_reusable(false);
        let mut result = conn
            .conn()
            .exec_iter(sql, ())
            .await
            .map_err(|e| external(pool.query_error(&e, sql)))?;
        let mut builders = self.builders()?;
        let mut count = 0usize;
        loop {
            let row = result
                .next()
                .await
                .map_err(|e| external(pool.query_error(&e, sql)))?;
            let Some(row) = row else {
                break;
            };
            let values = row.unwrap();
            for (i, builder) in builders.iter_mut().enumerate() {
                let value = values.get(i).unwrap_or(&mysql_async::Value::NULL);
                builder.append(value).map_err(|reason| {
                    external(ConnectorError::Source(format!(
                        "catalog \"{}\": cannot read column \"{}\": {reason}",
                        pool.catalog(),
                        self.schema.field(i).name()
                    )))
                })?;
            }
            count += 1;
            if count == self.batch_size {
                let batch = self.batch(&mut builders, count)?;
                count = 0;
                if tx.send(Ok(batch)).await.is_err() {
                    return Ok(());
                }
            }
        }
        drop(result);
        // Read to the end: the connection goes back to the pool before the last batch is sent.
        conn.set_reusable(true);
        drop(conn);
        if count > 0 {
            let batch = self.batch(&mut builders, count)?;
            let _ = tx.send(Ok(batch)).await;
        }
        Ok(())
    }
}
