//! `INSERT INTO` a table of a SQL source (`postgres`, `mysql`), from any catalog, published in one
//! source transaction and safe under every retry policy. Trino's JDBC connectors write the same
//! way (`insert.non-transactional-insert.enabled = false`): tasks fill temporary tables, the
//! coordinator copies them into the target in one transaction.
//!
//! Plan shape:
//! ```text
//! SqlCommitExec              root stage, coordinator: one `count` row
//!   CoalescePartitionsExec   stage boundary
//!     SqlWriteExec           one writer per partition of the query (a task of a worker stage)
//!       <the query>
//! ```
//! A writer creates its own staging table next to the target, shaped like it, named after the
//! query attempt key, its partition and its attempt (`tributary_stage_QUERY_pP_aA`), fills it
//! (PostgreSQL: `COPY ... FROM STDIN`; MySQL: batched multi-row `INSERT`s) over a connection of its
//! own, outside the catalog's pool (an `INSERT ... SELECT` within one catalog would otherwise have
//! its writers hold every pooled connection while their scans wait for one), and returns one row
//! (staging table, rows). The commit step receives the rows of the committed attempt of each writer
//! only (the spooled exchange under `TASK`, the succeeding attempt under `QUERY`), copies those
//! staging tables into the target in one transaction, then drops every staging table of the query.
//! A failed or canceled statement drops them too and leaves the target untouched; a staging table a
//! writer on a lost worker creates after that is dropped by a second sweep of the same statement
//! attempt's tables a minute later (not the query's: a `QUERY` retry may be writing by then). A
//! lost connection during the commit is `40003` (statement_completion_unknown), which no retry
//! policy re-runs: the commit may have happened.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{DataFusionError, Result, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    Partitioning, PlanProperties,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::lake::write::{count_schema, task_identity};

/// Every staging table's name starts with this.
pub(crate) const STAGE_PREFIX: &str = "tributary_stage_";

/// How long after a statement ended its staging tables are swept once more (a writer still
/// running on a lost worker may create its table after the first sweep).
const SWEEP_AGAIN_AFTER: Duration = Duration::from_secs(60);

/// How long the answer to a statement waits for its staging tables to be dropped.
const SWEEP_WAIT: Duration = Duration::from_secs(5);

/// What an `INSERT` into a SQL source's table writes: shipped to the workers with [`SqlWriteExec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SqlWriteSpec {
    /// The catalog written to.
    pub catalog: String,
    /// The target table's schema at the source.
    pub schema: String,
    /// The target table's name at the source.
    pub table: String,
    /// The target's columns, in the order of the input's columns.
    pub columns: Vec<String>,
}

/// How one SQL source writes: implemented by each connector for its client.
#[async_trait]
pub(crate) trait SqlWriter: fmt::Debug + Send + Sync + 'static {
    /// The connector kind, also the write spec's kind.
    const KIND: crate::ConnectorKind;
    /// The label of the plan nodes (`Postgres` shows as `PostgresWrite` and `PostgresCommit`).
    const LABEL: &'static str;
    /// The catalog's connections.
    type Pool: fmt::Debug + Send + Sync + 'static;

    /// `name` quoted as an identifier of the source.
    fn quote(name: &str) -> String;

    /// Creates staging table `stage` shaped like the target of `spec`, in the target's schema, and
    /// writes `input`'s rows into it (columns `spec.columns`, in order); returns the rows written.
    async fn write_stage(
        pool: &Arc<Self::Pool>,
        spec: &SqlWriteSpec,
        stage: &str,
        input: SendableRecordBatchStream,
    ) -> Result<u64>;

    /// In one transaction, inserts the rows of staging tables `stages` into the target of `spec`;
    /// returns the rows inserted.
    async fn commit(pool: &Arc<Self::Pool>, spec: &SqlWriteSpec, stages: &[String]) -> Result<u64>;

    /// The tables of `schema` whose names start with `prefix`.
    async fn tables_like(pool: &Arc<Self::Pool>, schema: &str, prefix: &str)
    -> Result<Vec<String>>;

    /// Drops tables `names` of `schema` (those that exist).
    async fn drop_tables(pool: &Arc<Self::Pool>, schema: &str, names: &[String]) -> Result<()>;
}

impl SqlWriteSpec {
    /// The target, quoted for the source (`"schema"."table"`).
    pub(crate) fn target<W: SqlWriter>(&self) -> String {
        format!("{}.{}", W::quote(&self.schema), W::quote(&self.table))
    }

    /// Staging table `name`, quoted, in the target's schema.
    pub(crate) fn stage<W: SqlWriter>(&self, name: &str) -> String {
        format!("{}.{}", W::quote(&self.schema), W::quote(name))
    }

    /// The target's columns, quoted and comma-separated.
    pub(crate) fn column_list<W: SqlWriter>(&self) -> String {
        self.columns
            .iter()
            .map(|c| W::quote(c))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The write plan of `INSERT INTO` the table of `spec`:
/// `SqlCommitExec(CoalescePartitionsExec(SqlWriteExec(input)))`.
pub(crate) fn insert_plan<W: SqlWriter>(
    spec: SqlWriteSpec,
    pool: Arc<W::Pool>,
    input: Arc<dyn ExecutionPlan>,
) -> Arc<dyn ExecutionPlan> {
    let write = Arc::new(SqlWriteExec::<W>::new(
        spec.clone(),
        Arc::clone(&pool),
        input,
    ));
    let gathered = Arc::new(CoalescePartitionsExec::new(write));
    Arc::new(SqlCommitExec::<W>::new(spec, pool, gathered))
}

/// The spec of `plan` if it is a writer of `W`'s kind (see [`crate::ConnectorFactory::encode_write`]).
pub(crate) fn encode_write<W: SqlWriter>(plan: &dyn ExecutionPlan) -> Option<crate::ScanSpec> {
    let write = plan.downcast_ref::<SqlWriteExec<W>>()?;
    Some(crate::ScanSpec {
        kind: W::KIND,
        catalog: Some(write.spec.catalog.clone()),
        payload: serde_json::to_value(&write.spec).ok()?,
    })
}

/// Rebuilds the writer `spec` describes over `input`, writing through `pool` of catalog `catalog`
/// (see [`crate::Connector::decode_write`]). Errors (`DataFusionError::Plan`): a payload that does
/// not parse, or names another catalog.
pub(crate) fn decode_write<W: SqlWriter>(
    spec: &crate::ScanSpec,
    catalog: &str,
    pool: &Arc<W::Pool>,
    input: Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let spec: SqlWriteSpec = serde_json::from_value(spec.payload.clone())
        .map_err(|e| DataFusionError::Plan(format!("bad {} write: {e}", W::KIND)))?;
    if spec.catalog != catalog {
        return Err(DataFusionError::Plan(format!(
            "{} write of catalog `{}` sent to catalog `{catalog}`",
            W::KIND,
            spec.catalog
        )));
    }
    Ok(Arc::new(SqlWriteExec::<W>::new(
        spec,
        Arc::clone(pool),
        input,
    )))
}

/// `key` as part of a table name: lower case letters, digits and `_`.
fn name_part(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The prefix of the staging tables of every attempt of the query whose attempt key is `query`
/// (`Q`, `Q.r1`, ...: named after `Q`, the part before the first `.`).
fn query_stage_prefix(query: &str) -> String {
    let base = query.split('.').next().unwrap_or(query);
    format!("{STAGE_PREFIX}{}", name_part(base))
}

/// The prefix of the staging tables of query attempt `query` only (`Q.r1`, not `Q` nor `Q.r2`).
fn attempt_stage_prefix(query: &str) -> String {
    format!("{STAGE_PREFIX}{}_p", name_part(query))
}

/// The staging table of attempt `attempt` of writer `partition` of query attempt `query`.
fn stage_name(query: &str, partition: usize, attempt: u32) -> String {
    format!("{}{partition}_a{attempt}", attempt_stage_prefix(query))
}

/// The error of a commit whose connection broke after it was sent: it may or may not have
/// happened (`40003` statement_completion_unknown, which no retry policy re-runs).
pub(crate) fn commit_unknown(catalog: &str, reason: &str) -> DataFusionError {
    crate::ConnectorError::sql(
        crate::sqlstate::STATEMENT_COMPLETION_UNKNOWN,
        format!(
            "catalog \"{catalog}\": the connection was lost while the INSERT committed, so it may or \
             may not have been applied: {reason}"
        ),
    )
}

/// The schema of a writer's output: one row, its staging table and the rows in it.
fn staged_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("stage", DataType::Utf8, false),
        Field::new("rows", DataType::UInt64, false),
    ]))
}

/// Writes each partition of its input into a staging table of a SQL source: see the module docs.
pub(crate) struct SqlWriteExec<W: SqlWriter> {
    spec: SqlWriteSpec,
    pool: Arc<W::Pool>,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl<W: SqlWriter> fmt::Debug for SqlWriteExec<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlWriteExec")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl<W: SqlWriter> SqlWriteExec<W> {
    /// A writer of `input`'s partitions into the table of `spec`, through `pool`.
    pub(crate) fn new(
        spec: SqlWriteSpec,
        pool: Arc<W::Pool>,
        input: Arc<dyn ExecutionPlan>,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(staged_schema()),
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self {
            spec,
            pool,
            input,
            properties,
        }
    }
}

impl<W: SqlWriter> DisplayAs for SqlWriteExec<W> {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{}Write: {}.{}.{}, columns=[{}]",
            W::LABEL,
            self.spec.catalog,
            self.spec.schema,
            self.spec.table,
            self.spec.columns.join(", ")
        )
    }
}

impl<W: SqlWriter> ExecutionPlan for SqlWriteExec<W> {
    fn name(&self) -> &'static str {
        "SqlWriteExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    crate::scan_leaf::unary_exec_methods!(|this, input| Self::new(
        this.spec.clone(),
        Arc::clone(&this.pool),
        input
    ));

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, Arc::clone(&context))?;
        let (query, attempt) = task_identity(&context);
        let stage = stage_name(&query, partition, attempt);
        let (spec, pool) = (self.spec.clone(), Arc::clone(&self.pool));
        let future = async move {
            let rows = W::write_stage(&pool, &spec, &stage, input).await?;
            Ok(RecordBatch::try_new(
                staged_schema(),
                vec![
                    Arc::new(StringArray::from(vec![stage])) as ArrayRef,
                    Arc::new(UInt64Array::from(vec![rows])),
                ],
            )?)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            staged_schema(),
            futures::stream::once(future),
        )))
    }
}

/// Copies what the [`SqlWriteExec`]s below it staged into the target in one transaction, then
/// drops the staging tables (or only drops them when the statement failed): see the module docs.
/// One partition, one output row (`count`: rows inserted).
pub(crate) struct SqlCommitExec<W: SqlWriter> {
    spec: SqlWriteSpec,
    pool: Arc<W::Pool>,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl<W: SqlWriter> fmt::Debug for SqlCommitExec<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlCommitExec")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl<W: SqlWriter> SqlCommitExec<W> {
    fn new(spec: SqlWriteSpec, pool: Arc<W::Pool>, input: Arc<dyn ExecutionPlan>) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(count_schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self {
            spec,
            pool,
            input,
            properties,
        }
    }
}

impl<W: SqlWriter> DisplayAs for SqlCommitExec<W> {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{}Commit: {}.{}.{}",
            W::LABEL,
            self.spec.catalog,
            self.spec.schema,
            self.spec.table
        )
    }
}

impl<W: SqlWriter> ExecutionPlan for SqlCommitExec<W> {
    fn name(&self) -> &'static str {
        "SqlCommitExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    crate::scan_leaf::unary_exec_methods!(|this, input| Self::new(
        this.spec.clone(),
        Arc::clone(&this.pool),
        input
    ));

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("SqlCommitExec has one partition, not {partition}");
        }
        let input = self.input.execute(0, Arc::clone(&context))?;
        let (query, _) = task_identity(&context);
        let committer = Committer::<W> {
            spec: self.spec.clone(),
            pool: Arc::clone(&self.pool),
            prefix: query_stage_prefix(&query),
            attempt_prefix: attempt_stage_prefix(&query),
        };
        let future = async move { committer.run(input).await };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            count_schema(),
            futures::stream::once(future),
        )))
    }
}

/// The commit step of one statement attempt.
struct Committer<W: SqlWriter> {
    spec: SqlWriteSpec,
    pool: Arc<W::Pool>,
    /// Every staging table of the query starts with it.
    prefix: String,
    /// Every staging table of this statement attempt (`Q.rN`) starts with it.
    attempt_prefix: String,
}

impl<W: SqlWriter> Clone for Committer<W> {
    fn clone(&self) -> Self {
        Self {
            spec: self.spec.clone(),
            pool: Arc::clone(&self.pool),
            prefix: self.prefix.clone(),
            attempt_prefix: self.attempt_prefix.clone(),
        }
    }
}

/// Drops a statement's staging tables if its commit future is dropped before it ended (cancel).
struct DropOnCancel<W: SqlWriter>(Option<Committer<W>>);

impl<W: SqlWriter> Drop for DropOnCancel<W> {
    fn drop(&mut self) {
        if let Some(committer) = self.0.take()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            handle.spawn(async move { committer.sweep().await });
        }
    }
}

impl<W: SqlWriter> Committer<W> {
    async fn run(self, mut input: SendableRecordBatchStream) -> Result<RecordBatch> {
        let mut guard = DropOnCancel(Some(self.clone()));
        let result = async {
            let mut stages = Vec::new();
            while let Some(batch) = input.next().await {
                let batch = batch?;
                let names = batch.column(0).as_string::<i32>();
                stages.extend(names.iter().flatten().map(str::to_string));
            }
            W::commit(&self.pool, &self.spec, &stages).await
        }
        .await;
        guard.0 = None;
        // The drops wait behind any statement still writing a staging table (an abandoned
        // attempt's): the answer does not wait for them past a few seconds.
        let sweep = self.clone();
        let sweeping = tokio::spawn(async move { sweep.sweep().await });
        let _ = tokio::time::timeout(SWEEP_WAIT, sweeping).await;
        let rows = result?;
        tracing::info!(
            catalog = self.spec.catalog,
            schema = self.spec.schema,
            table = self.spec.table,
            rows,
            "SQL source INSERT committed"
        );
        Ok(RecordBatch::try_new(
            count_schema(),
            vec![Arc::new(UInt64Array::from(vec![rows])) as ArrayRef],
        )?)
    }

    /// Drops every staging table of the query now, and those of this statement attempt once more
    /// after [`SWEEP_AGAIN_AFTER`].
    async fn sweep(&self) {
        self.drop_stages(&self.prefix).await;
        let again = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SWEEP_AGAIN_AFTER).await;
            again.drop_stages(&again.attempt_prefix).await;
        });
    }

    async fn drop_stages(&self, prefix: &str) {
        let dropped = async {
            let names = W::tables_like(&self.pool, &self.spec.schema, prefix).await?;
            if !names.is_empty() {
                W::drop_tables(&self.pool, &self.spec.schema, &names).await?;
            }
            Ok::<_, DataFusionError>(())
        };
        if let Err(e) = dropped.await {
            tracing::warn!(
                catalog = self.spec.catalog,
                schema = self.spec.schema,
                prefix = self.prefix,
                "cannot drop the staging tables of an INSERT: {e}"
            );
        }
    }
}

/// The values of one column as a source reads them in a text format: Arrow's display of each value
/// (ISO dates and timestamps, decimal digits, `true`/`false`), binary values as `\x` and hex.
pub(crate) struct ColumnText<'a> {
    column: &'a ArrayRef,
    formatter: ArrayFormatter<'a>,
    binary: bool,
}

impl<'a> ColumnText<'a> {
    /// The text form of `column`'s values. Errors: a type Arrow cannot display.
    pub(crate) fn new(column: &'a ArrayRef, options: &'a FormatOptions<'a>) -> Result<Self> {
        let binary = matches!(
            column.data_type(),
            DataType::Binary
                | DataType::LargeBinary
                | DataType::BinaryView
                | DataType::FixedSizeBinary(_)
        );
        Ok(Self {
            column,
            formatter: ArrayFormatter::try_new(column.as_ref(), options)?,
            binary,
        })
    }

    /// Appends the text of value `row` to `out`; false (nothing appended) for NULL.
    pub(crate) fn write(&self, row: usize, out: &mut String) -> Result<bool> {
        use std::fmt::Write;
        if self.column.is_null(row) {
            return Ok(false);
        }
        if self.binary {
            out.push_str("\\x");
        }
        write!(out, "{}", self.formatter.value(row))
            .map_err(|e| DataFusionError::Execution(format!("cannot format a value: {e}")))?;
        Ok(true)
    }
}

/// The text of each value of `column` (see [`ColumnText`]), `None` for NULL.
pub(crate) fn column_texts(column: &ArrayRef) -> Result<Vec<Option<String>>> {
    let options = FormatOptions::default();
    let text = ColumnText::new(column, &options)?;
    (0..column.len())
        .map(|row| {
            let mut value = String::new();
            Ok(text.write(row, &mut value)?.then_some(value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, BinaryArray, Int32Array};

    use super::{attempt_stage_prefix, column_texts, query_stage_prefix, stage_name};

    #[test]
    fn staging_tables_are_named_after_the_query_attempt() {
        let name = stage_name("20261204_233219_00001_abcde.r1", 3, 2);
        assert_eq!(name, "tributary_stage_20261204_233219_00001_abcde_r1_p3_a2");
        assert!(name.len() <= 63, "a PostgreSQL identifier: {name}");
        assert!(name.starts_with(&query_stage_prefix("20261204_233219_00001_abcde.r1")));
        assert!(name.starts_with(&query_stage_prefix("20261204_233219_00001_abcde")));
        assert!(name.starts_with(&attempt_stage_prefix("20261204_233219_00001_abcde.r1")));
        // The first attempt's tables are not the retry's, and the other way round.
        assert!(!name.starts_with(&attempt_stage_prefix("20261204_233219_00001_abcde")));
        let first = stage_name("20261204_233219_00001_abcde", 3, 0);
        assert!(!first.starts_with(&attempt_stage_prefix("20261204_233219_00001_abcde.r1")));
    }

    #[test]
    fn values_are_written_as_text() {
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), None]));
        assert_eq!(column_texts(&ints).unwrap(), [Some("1".into()), None]);
        let bytes: ArrayRef = Arc::new(BinaryArray::from(vec![&b"\x01\xff"[..]]));
        assert_eq!(column_texts(&bytes).unwrap(), [Some("\\x01ff".into())]);
    }
}
