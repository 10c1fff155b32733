//! [`PostgresScanExec`]: one remote SELECT per split, streamed into Arrow batches.

use std::fmt;
use std::pin::Pin;
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
use tokio_postgres::RowStream;

use super::PostgresConnector;
use super::pool::{Pool, PooledClient};
use super::types::{ColumnBuilder, PgType, RawValue};
use crate::{ConnectorError, ScanSpec};

/// The [`ScanSpec`] payload of a [`PostgresScanExec`]: how each column is read, and each split's SQL.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct PostgresScanPayload {
    types: Vec<PgTypeSpec>,
    sqls: Vec<String>,
}

/// [`PgType`] as plain data (the reader's decoding depends on more than the Arrow type).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum PgTypeSpec {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric {
        precision: u8,
        scale: i8,
    },
    Text {
        eq_pushable: bool,
        deterministic: bool,
        padded: bool,
    },
    AsText,
    Bytea,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    Interval,
    List(Box<PgTypeSpec>),
}

impl From<&PgType> for PgTypeSpec {
    fn from(t: &PgType) -> Self {
        match t {
            PgType::Bool => Self::Bool,
            PgType::Int2 => Self::Int2,
            PgType::Int4 => Self::Int4,
            PgType::Int8 => Self::Int8,
            PgType::Float4 => Self::Float4,
            PgType::Float8 => Self::Float8,
            PgType::Numeric { precision, scale } => Self::Numeric {
                precision: *precision,
                scale: *scale,
            },
            PgType::Text {
                eq_pushable,
                deterministic,
                padded,
            } => Self::Text {
                eq_pushable: *eq_pushable,
                deterministic: *deterministic,
                padded: *padded,
            },
            PgType::AsText => Self::AsText,
            PgType::Bytea => Self::Bytea,
            PgType::Date => Self::Date,
            PgType::Time => Self::Time,
            PgType::Timestamp => Self::Timestamp,
            PgType::Timestamptz => Self::Timestamptz,
            PgType::Interval => Self::Interval,
            PgType::List(e) => Self::List(Box::new(e.as_ref().into())),
        }
    }
}

impl From<PgTypeSpec> for PgType {
    fn from(t: PgTypeSpec) -> Self {
        match t {
            PgTypeSpec::Bool => Self::Bool,
            PgTypeSpec::Int2 => Self::Int2,
            PgTypeSpec::Int4 => Self::Int4,
            PgTypeSpec::Int8 => Self::Int8,
            PgTypeSpec::Float4 => Self::Float4,
            PgTypeSpec::Float8 => Self::Float8,
            PgTypeSpec::Numeric { precision, scale } => Self::Numeric { precision, scale },
            PgTypeSpec::Text {
                eq_pushable,
                deterministic,
                padded,
            } => Self::Text {
                eq_pushable,
                deterministic,
                padded,
            },
            PgTypeSpec::AsText => Self::AsText,
            PgTypeSpec::Bytea => Self::Bytea,
            PgTypeSpec::Date => Self::Date,
            PgTypeSpec::Time => Self::Time,
            PgTypeSpec::Timestamp => Self::Timestamp,
            PgTypeSpec::Timestamptz => Self::Timestamptz,
            PgTypeSpec::Interval => Self::Interval,
            PgTypeSpec::List(e) => Self::List(Box::new((*e).into())),
        }
    }
}

/// Physical scan of a PostgreSQL table: output partition `i` runs the remote SQL of split `i` (a ctid
/// page range of the table, or the whole table / view) and streams its rows.
///
/// The SQL of each split is fixed at planning time, so executing a partition twice reads the same
/// rows (as long as the source table is unchanged). Rows are read through a streaming portal
/// (binary format) and cut into batches of the session's batch size: memory stays bounded whatever
/// the table size. Displayed as `PostgresScan: catalog=pg, splits=4, sql="SELECT ..."` with the SQL
/// of the first split, so `EXPLAIN` shows what is pushed to the source.
#[derive(Debug)]
pub struct PostgresScanExec {
    pool: Arc<Pool>,
    schema: SchemaRef,
    types: Vec<PgType>,
    sqls: Vec<String>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl PostgresScanExec {
    pub(crate) fn new(
        pool: Arc<Pool>,
        schema: SchemaRef,
        types: Vec<PgType>,
        sqls: Vec<String>,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(sqls.len()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        PostgresScanExec {
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
        let payload = PostgresScanPayload {
            types: self.types.iter().map(PgTypeSpec::from).collect(),
            sqls: self.sqls.clone(),
        };
        ScanSpec {
            kind: "postgres".into(),
            catalog: Some(self.pool.catalog().to_string()),
            payload: serde_json::to_value(payload).unwrap_or_default(),
        }
    }

    /// Rebuilds the scan of [`PostgresScanExec::to_spec`] on `connector`'s pool. Errors: a bad
    /// payload, or column types that are not `schema`'s.
    pub(crate) fn from_spec(
        connector: &PostgresConnector,
        spec: &ScanSpec,
        schema: SchemaRef,
    ) -> Result<Self> {
        let p: PostgresScanPayload = crate::spec_payload(spec)?;
        let types: Vec<PgType> = p.types.into_iter().map(PgType::from).collect();
        crate::check_scan_schema(
            "postgres",
            &schema,
            types
                .iter()
                .map(PgType::arrow_type)
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

impl DisplayAs for PostgresScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let first = self.sqls.first().map(String::as_str).unwrap_or("");
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => write!(
                f,
                "PostgresScan: catalog={}, splits={}, sql={first:?}",
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

impl ExecutionPlan for PostgresScanExec {
    fn name(&self) -> &'static str {
        "PostgresScanExec"
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
            return internal_err!("PostgresScanExec is a leaf and takes no children");
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
                "PostgresScanExec: invalid partition {partition}, the scan has {} splits",
                self.sqls.len()
            );
        };
        let state = ReadState::Pending {
            pool: Arc::clone(&self.pool),
            sql: sql.clone(),
        };
        let reader = Reader {
            schema: Arc::clone(&self.schema),
            types: self.types.clone(),
            batch_size: context.session_config().batch_size().max(1),
            metrics: BaselineMetrics::new(&self.metrics, partition),
            state,
        };
        let stream = futures::stream::unfold(reader, |mut reader| async move {
            match reader.next_batch().await {
                Ok(Some(batch)) => Some((Ok(batch), reader)),
                Ok(None) => None,
                Err(e) => {
                    reader.state = ReadState::Done;
                    Some((Err(e), reader))
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

enum ReadState {
    /// Not started: connect and send the query on the first poll.
    Pending {
        pool: Arc<Pool>,
        sql: String,
    },
    Reading {
        pool: Arc<Pool>,
        sql: String,
        // Declared before the client so it is dropped first.
        rows: Pin<Box<RowStream>>,
        client: PooledClient,
    },
    Done,
}

struct Reader {
    schema: SchemaRef,
    types: Vec<PgType>,
    batch_size: usize,
    metrics: BaselineMetrics,
    state: ReadState,
}

fn external(e: ConnectorError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl Reader {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if let ReadState::Pending { pool, sql } = &self.state {
            let (pool, sql) = (Arc::clone(pool), sql.clone());
            let mut client = pool.get().await.map_err(external)?;
            // Until the result is read to the end, the connection must not be reused.
            client.set_reusable(false);
            let rows = client
                .client()
                .query_raw(sql.as_str(), std::iter::empty::<i32>())
                .await
                .map_err(|e| external(pool.query_error(&e, &sql)))?;
            self.state = ReadState::Reading {
                pool,
                sql,
                rows: Box::pin(rows),
                client,
            };
        }
        let ReadState::Reading {
            pool,
            sql,
            rows,
            client,
        } = &mut self.state
        else {
            return Ok(None);
        };
        let mut builders = self
            .types
            .iter()
            .map(|t| t.builder(self.batch_size))
            .collect::<Result<Vec<ColumnBuilder>, _>>()?;
        let mut count = 0usize;
        let mut finished = false;
        while count < self.batch_size {
            let row = match rows.next().await {
                Some(Ok(row)) => row,
                Some(Err(e)) => return Err(external(pool.query_error(&e, sql))),
                None => {
                    finished = true;
                    break;
                }
            };
            let timer = self.metrics.elapsed_compute().timer();
            for (i, builder) in builders.iter_mut().enumerate() {
                let value: Option<RawValue> = row
                    .try_get(i)
                    .map_err(|e| external(pool.query_error(&e, sql)))?;
                builder.append(value.map(|v| v.0)).map_err(|reason| {
                    external(ConnectorError::Source(format!(
                        "catalog \"{}\": cannot read column \"{}\": {reason}",
                        pool.catalog(),
                        self.schema.field(i).name()
                    )))
                })?;
            }
            timer.done();
            count += 1;
        }
        if finished {
            client.set_reusable(true);
        }
        let batch = if count == 0 {
            None
        } else {
            let columns = builders
                .iter_mut()
                .map(ColumnBuilder::finish)
                .collect::<Result<Vec<_>, _>>()?;
            let options = RecordBatchOptions::new().with_row_count(Some(count));
            Some(RecordBatch::try_new_with_options(
                Arc::clone(&self.schema),
                columns,
                &options,
            )?)
        };
        if finished {
            // Returns the connection to the pool now, not when the consumer drops the stream.
            self.state = ReadState::Done;
            self.metrics.done();
        }
        if let Some(b) = &batch {
            self.metrics.record_output(b.num_rows());
        }
        Ok(batch)
    }
}
