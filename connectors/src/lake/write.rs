//! Writing lake tables: [`LakeWriteExec`] (one Parquet writer per input partition, run by the tasks
//! of a distributed stage) and [`LakeCommitExec`] (the root, on the coordinator: publishes what the
//! writers wrote, or removes it).
//!
//! Plan shape of `CREATE TABLE AS` and `INSERT`:
//! ```text
//! LakeCommitExec                       root stage, coordinator: one `count` row
//!   CoalescePartitionsExec             stage boundary
//!     LakeWriteExec                    one writer per partition of the query (task of a worker stage)
//!       <the query>
//! ```
//! A writer task stages its files under names carrying the query key and its own attempt,
//! `TABLE/k=v/part-QUERY-tTASK-aATTEMPT-N.parquet` (query key and attempt from the task's
//! [`ExchangeContext`]), so attempts never overwrite each other, and returns one row per file (path
//! relative to the table directory, rows, bytes). Nothing it writes is visible: readers of a managed
//! table read only the files a commit lists (see [`super::managed`]).
//!
//! The commit step receives only the rows of the committed attempt of each writer task (under
//! `retry_policy = TASK` the spooled exchange delivers the committed attempt; under `QUERY` only the
//! succeeding query attempt reaches its root), writes them as `_tributary/commits/QUERY.json`, then,
//! for `CREATE TABLE AS`, `_tributary/table.json` (the table appears) and removes the `creating`
//! marker. It then deletes the files of other attempts of the same query (`part-QUERY…` not listed).
//! When the query fails or is canceled, the commit step removes what the statement wrote: the whole
//! table directory for `CREATE TABLE AS` (the table did not exist before), this query's commit file
//! and `part-QUERY…` files for `INSERT`. Cleanup is best effort (a writer still running on a lost
//! worker may write after it).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use datafusion::arrow::compute::{cast, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DataFusionError, Result, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    Partitioning, PlanProperties,
};
use futures::StreamExt;
use object_store::buffered::BufWriter;
use serde::{Deserialize, Serialize};
use tributary_exchange::ExchangeContext;

use super::Lake;
use super::managed::{self, Commit, CommittedFile, TableMeta};

/// What a write statement writes to: shipped to the workers with [`LakeWriteExec`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteSpec {
    /// The lake catalog written to.
    pub catalog: String,
    /// The table directory relative to the lake root, with a trailing `/` (`sales/orders/`).
    pub table_dir: String,
    /// Hive partition columns, outermost first; they are the last columns of the input.
    pub partitioned_by: Vec<String>,
    /// For `CREATE TABLE AS`: the metadata the commit publishes (the table does not exist before).
    /// `None` for `INSERT` into an existing managed table.
    pub create: Option<TableMeta>,
    /// Iceberg field ids of the data columns, in file column order, written as the Parquet field ids
    /// (`PARQUET:field_id`) so Iceberg readers resolve columns by id; empty for lake tables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub field_ids: Vec<i32>,
    /// Whether the data files keep the partition columns (Iceberg: partition source columns are
    /// data; Hive-style lake tables drop them, their values are in the directory names).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_partition_columns: bool,
}

impl WriteSpec {
    /// The table as `schema.table` (its directory with `/` as `.`), for plans and messages.
    fn table_name(&self) -> String {
        self.table_dir.trim_end_matches('/').replace('/', ".")
    }
}

/// Publishes the files of a write somewhere other than a lake table's commit files: an Iceberg
/// snapshot (see `crate::iceberg`). Given to [`LakeCommitExec`] by the table that plans the write.
#[async_trait::async_trait]
pub(crate) trait Publisher: fmt::Debug + Send + Sync {
    /// Makes `files` (paths relative to `spec.table_dir`, the committed attempt of each writer task)
    /// visible as one commit of query attempt `query`. On error nothing may be visible; the caller
    /// then deletes the files.
    async fn publish(&self, query: &str, spec: &WriteSpec, files: &[CommittedFile]) -> Result<()>;

    /// Undoes what `publish` of query attempt `query` may have left when the statement failed or
    /// was canceled (an Iceberg table a canceled `CREATE TABLE AS` created). Best effort.
    async fn clean_up(&self, query: &str);

    /// What the commit publishes to, for EXPLAIN (`iceberg snapshot of ice.s.t`).
    fn describe(&self) -> String;
}

/// The schema of a writer's output: one row per data file written.
pub fn written_files_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("path", DataType::Utf8, false),
        Field::new("rows", DataType::UInt64, false),
        Field::new("bytes", DataType::UInt64, false),
    ]))
}

/// The schema of a write statement's result: one row, the rows written (DataFusion's DML shape).
pub fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]))
}

/// The query key and attempt a task runs as (see [`ExchangeContext`]); outside the engine (a plan run
/// directly) a fresh key.
pub(crate) fn task_identity(context: &TaskContext) -> (String, u32) {
    match context.session_config().get_extension::<ExchangeContext>() {
        Some(exchange) => (exchange.query.to_string(), exchange.attempt),
        None => (format!("local_{}", uuid::Uuid::new_v4().simple()), 0),
    }
}

/// The prefix of the data file names of query attempt key `query` (`part-Q-t`), and of every attempt of
/// the query it belongs to (`part-Q-` or `part-Q.`, see [`is_of_query`]).
fn file_prefix(query: &str) -> String {
    format!("part-{query}-t")
}

/// Whether data file name `name` was written by any attempt of the query whose key is `query`
/// (`Q`, `Q.r1`, ...: the part before the first `.`).
fn is_of_query(name: &str, query: &str) -> bool {
    let base = query.split('.').next().unwrap_or(query);
    name.strip_prefix("part-")
        .and_then(|rest| rest.strip_prefix(base))
        .is_some_and(|rest| rest.starts_with("-t") || rest.starts_with('.'))
}

/// Writes each partition of its input as Parquet files of one lake table: see the module docs.
#[derive(Debug)]
pub struct LakeWriteExec {
    spec: WriteSpec,
    lake: Arc<Lake>,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl LakeWriteExec {
    pub(crate) fn new(spec: WriteSpec, lake: Arc<Lake>, input: Arc<dyn ExecutionPlan>) -> Self {
        let schema = written_files_schema();
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self {
            spec,
            lake,
            input,
            properties,
        }
    }

    /// What the node writes to (what [`crate::ConnectorFactory::encode_write`] ships).
    pub fn spec(&self) -> &WriteSpec {
        &self.spec
    }

    /// The plan whose rows are written.
    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }

    /// The kind of the catalog written to (`lake`, or `iceberg` for an Iceberg table's data files):
    /// the kind its shipped spec names.
    pub fn lake_kind(&self) -> crate::ConnectorKind {
        self.lake.kind
    }
}

impl DisplayAs for LakeWriteExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "LakeWrite: {}.{}, format=parquet",
            self.spec.catalog,
            self.spec.table_name()
        )?;
        if !self.spec.partitioned_by.is_empty() {
            write!(
                f,
                ", partitioned_by=[{}]",
                self.spec.partitioned_by.join(", ")
            )?;
        }
        Ok(())
    }
}

impl ExecutionPlan for LakeWriteExec {
    fn name(&self) -> &'static str {
        "LakeWriteExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    crate::scan_leaf::unary_exec_methods!(|this, input| Self::new(
        this.spec.clone(),
        Arc::clone(&this.lake),
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
        let writer = PartitionWriter {
            lake: Arc::clone(&self.lake),
            spec: self.spec.clone(),
            name_prefix: format!("{}{partition}-a{attempt}", file_prefix(&query)),
            query,
        };
        let future = async move { writer.run(input).await };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            written_files_schema(),
            futures::stream::once(future),
        )))
    }
}

/// One writer task's files.
struct PartitionWriter {
    lake: Arc<Lake>,
    spec: WriteSpec,
    /// `part-QUERY-tTASK-aATTEMPT`: every file of this task attempt starts with it.
    name_prefix: String,
    /// The query (attempt) key, which the `creating` marker holds.
    query: String,
}

/// An open data file of one partition directory.
struct OpenFile {
    path: String,
    writer: AsyncArrowWriter<BufWriter>,
}

impl PartitionWriter {
    async fn run(self, mut input: SendableRecordBatchStream) -> Result<RecordBatch> {
        let op = &self.lake.operator;
        if self.spec.create.is_some() {
            // Hides the directory from discovery until the commit writes table.json.
            op.write(
                &managed::creating_path(&self.spec.table_dir),
                self.query.clone().into_bytes(),
            )
            .await
            .map_err(|e| self.error("cannot mark the table as being created", &e))?;
        }
        let schema = input.schema();
        let partition_indices: Vec<usize> = self
            .spec
            .partitioned_by
            .iter()
            .map(|c| schema.index_of(c))
            .collect::<std::result::Result<_, _>>()?;
        let data_indices: Vec<usize> = (0..schema.fields().len())
            .filter(|i| self.spec.keep_partition_columns || !partition_indices.contains(i))
            .collect();
        let mut file_schema = schema.project(&data_indices)?;
        if !self.spec.field_ids.is_empty() {
            file_schema = with_field_ids(&file_schema, &self.spec.field_ids)?;
        }
        let file_schema = Arc::new(file_schema);
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let mut files: BTreeMap<String, OpenFile> = BTreeMap::new();
        while let Some(batch) = input.next().await {
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            let groups = self.split(&batch, &partition_indices)?;
            let data = batch.project(&data_indices)?;
            // The writer's schema (with field ids, if any) on the same columns.
            let data = RecordBatch::try_new(Arc::clone(&file_schema), data.columns().to_vec())?;
            for (dir, rows) in groups {
                let data = match rows {
                    Some(rows) => take_record_batch(&data, &rows)?,
                    None => data.clone(),
                };
                let next = files.len();
                let file = match files.entry(dir) {
                    Entry::Occupied(open) => open.into_mut(),
                    Entry::Vacant(new) => {
                        let path = format!(
                            "{}{}{}-{next}.parquet",
                            self.spec.table_dir,
                            new.key(),
                            self.name_prefix
                        );
                        let object = BufWriter::new(
                            Arc::clone(&self.lake.store),
                            object_store::path::Path::from(path.as_str()),
                        );
                        let writer = AsyncArrowWriter::try_new(
                            object,
                            Arc::clone(&file_schema),
                            Some(properties.clone()),
                        )?;
                        new.insert(OpenFile { path, writer })
                    }
                };
                file.writer.write(&data).await?;
            }
        }
        let mut paths = Vec::new();
        let mut rows = Vec::new();
        let mut bytes = Vec::new();
        for (_, mut file) in files {
            // The footer's row count, and the bytes the writer put out: the object's size.
            let metadata = file.writer.finish().await?;
            let size = file.writer.bytes_written() as u64;
            paths.push(
                file.path
                    .strip_prefix(&self.spec.table_dir)
                    .unwrap_or(&file.path)
                    .to_string(),
            );
            rows.push(metadata.file_metadata().num_rows() as u64);
            bytes.push(size);
        }
        Ok(RecordBatch::try_new(
            written_files_schema(),
            vec![
                Arc::new(StringArray::from(paths)) as ArrayRef,
                Arc::new(UInt64Array::from(rows)),
                Arc::new(UInt64Array::from(bytes)),
            ],
        )?)
    }

    /// Splits `batch` by its partition columns: (`k=v/...` directory, rows of it; `None` = all rows).
    fn split(
        &self,
        batch: &RecordBatch,
        partition_indices: &[usize],
    ) -> Result<Vec<(String, Option<UInt32Array>)>> {
        if partition_indices.is_empty() {
            return Ok(vec![(String::new(), None)]);
        }
        let mut values = Vec::new();
        for &i in partition_indices {
            let column = cast(batch.column(i), &DataType::Utf8)?;
            let strings = column.as_string::<i32>();
            if strings.null_count() > 0 {
                return Err(DataFusionError::Execution(format!(
                    "partition column `{}` is NULL in a row: partition values cannot be NULL",
                    batch.schema().field(i).name()
                )));
            }
            values.push((batch.schema().field(i).name().clone(), strings.clone()));
        }
        let mut groups: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        // One directory buffer for every row: a new key is allocated only per new directory.
        let mut dir = String::new();
        for row in 0..batch.num_rows() {
            dir.clear();
            for (name, strings) in &values {
                dir.push_str(name);
                dir.push('=');
                dir.push_str(partition_dir_value(name, strings.value(row))?);
                dir.push('/');
            }
            match groups.get_mut(&dir) {
                Some(rows) => rows.push(row as u32),
                None => {
                    groups.insert(dir.clone(), vec![row as u32]);
                }
            }
        }
        Ok(groups
            .into_iter()
            .map(|(dir, rows)| (dir, Some(UInt32Array::from(rows))))
            .collect())
    }

    fn error(&self, what: &str, e: &dyn fmt::Display) -> DataFusionError {
        io_error(&self.lake, &self.spec, "writing", what, e)
    }
}

/// A storage failure (`58030`) while `doing` (`writing`, `committing`) the table of `spec`: `what`
/// went wrong, and the store's error `e` (the lake's message never shows a secret).
fn io_error(
    lake: &Lake,
    spec: &WriteSpec,
    doing: &str,
    what: &str,
    e: &dyn fmt::Display,
) -> DataFusionError {
    let table = spec.table_dir.trim_end_matches('/');
    crate::ConnectorError::sql(
        crate::sqlstate::IO_ERROR,
        lake.message(&format!("{doing} `{table}`: {what}"), e),
    )
}

/// A partition value as it is written in its `key=value` directory: as is. Values are not
/// `%XX`-escaped as Hive does, because DataFusion reads them back through the object store, which
/// escapes `%` itself, so an escape would not round-trip; a value that cannot be a path segment
/// (`/`, control characters, empty, `.`, `..`) is an error (`22023`).
fn partition_dir_value<'a>(column: &str, value: &'a str) -> Result<&'a str> {
    if value.is_empty()
        || value == "."
        || value == ".."
        || value.contains('/')
        || value.chars().any(char::is_control)
    {
        return Err(crate::ConnectorError::sql(
            crate::sqlstate::INVALID_PARAMETER_VALUE,
            format!(
                "partition column `{column}` has the value {value:?}, which cannot be a directory name"
            ),
        ));
    }
    Ok(value)
}

/// Publishes what the [`LakeWriteExec`]s below it wrote, or removes it: see the module docs. One
/// partition, one output row (`count`: rows written).
#[derive(Debug)]
pub struct LakeCommitExec {
    spec: WriteSpec,
    lake: Arc<Lake>,
    /// Publishes instead of the lake's commit files (Iceberg tables); `None` for lake tables.
    publisher: Option<Arc<dyn Publisher>>,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl LakeCommitExec {
    pub(crate) fn new(
        spec: WriteSpec,
        lake: Arc<Lake>,
        publisher: Option<Arc<dyn Publisher>>,
        input: Arc<dyn ExecutionPlan>,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(count_schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self {
            spec,
            lake,
            publisher,
            input,
            properties,
        }
    }
}

impl DisplayAs for LakeCommitExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        if let Some(publisher) = &self.publisher {
            return write!(f, "LakeCommit: {}", publisher.describe());
        }
        write!(
            f,
            "LakeCommit: {}.{}{}",
            self.spec.catalog,
            self.spec.table_name(),
            if self.spec.create.is_some() {
                " (create)"
            } else {
                ""
            }
        )
    }
}

impl ExecutionPlan for LakeCommitExec {
    fn name(&self) -> &'static str {
        "LakeCommitExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    crate::scan_leaf::unary_exec_methods!(|this, input| Self::new(
        this.spec.clone(),
        Arc::clone(&this.lake),
        this.publisher.clone(),
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
            return internal_err!("LakeCommitExec has one partition, not {partition}");
        }
        let input = self.input.execute(0, Arc::clone(&context))?;
        let (query, _) = task_identity(&context);
        let committer = Committer {
            lake: Arc::clone(&self.lake),
            spec: self.spec.clone(),
            publisher: self.publisher.clone(),
            query,
        };
        let future = async move { committer.run(input).await };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            count_schema(),
            futures::stream::once(future),
        )))
    }
}

/// The commit step of one statement attempt.
#[derive(Clone)]
struct Committer {
    lake: Arc<Lake>,
    spec: WriteSpec,
    publisher: Option<Arc<dyn Publisher>>,
    query: String,
}

/// Removes a statement's files if its commit future is dropped before it finished (cancel).
struct CleanupOnDrop(Option<Committer>);

impl Drop for CleanupOnDrop {
    fn drop(&mut self) {
        if let Some(committer) = self.0.take()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            handle.spawn(async move {
                committer.clean_up().await;
                committer.sweep_later();
            });
        }
    }
}

impl Committer {
    async fn run(self, mut input: SendableRecordBatchStream) -> Result<RecordBatch> {
        let mut guard = CleanupOnDrop(Some(self.clone()));
        let mut files = Vec::new();
        let result = async {
            while let Some(batch) = input.next().await {
                files.extend(files_of(&batch?)?);
            }
            self.publish(&files).await
        }
        .await;
        guard.0 = None;
        match result {
            Ok(()) => {
                let rows: u64 = files.iter().map(|f| f.rows).sum();
                let committed: HashSet<String> = files
                    .iter()
                    .map(|f| format!("{}{}", self.spec.table_dir, f.path))
                    .collect();
                self.remove_other_attempts(&committed).await;
                Ok(RecordBatch::try_new(
                    count_schema(),
                    vec![Arc::new(UInt64Array::from(vec![rows])) as ArrayRef],
                )?)
            }
            Err(e) => {
                self.clean_up().await;
                self.sweep_later();
                Err(e)
            }
        }
    }

    /// Writes the commit file, then (`CREATE TABLE AS`) the table's metadata, which makes it visible.
    async fn publish(&self, files: &[CommittedFile]) -> Result<()> {
        if let Some(publisher) = &self.publisher {
            return publisher.publish(&self.query, &self.spec, files).await;
        }
        let op = &self.lake.operator;
        let commit = Commit {
            query: self.query.clone(),
            files: files.to_vec(),
        };
        let json = serde_json::to_vec_pretty(&commit)
            .map_err(|e| DataFusionError::Internal(e.to_string()))?;
        op.write(&self.commit_path(), json)
            .await
            .map_err(|e| self.error("cannot write the commit file", &e))?;
        if let Some(meta) = &self.spec.create {
            let json = serde_json::to_vec_pretty(meta)
                .map_err(|e| DataFusionError::Internal(e.to_string()))?;
            op.write(&managed::meta_path(&self.spec.table_dir), json)
                .await
                .map_err(|e| self.error("cannot write the table metadata", &e))?;
            if let Err(e) = op
                .delete(&managed::creating_path(&self.spec.table_dir))
                .await
            {
                tracing::warn!(error = %e, "lake: cannot remove the creating marker");
            }
        }
        tracing::info!(
            catalog = self.spec.catalog,
            table = self.spec.table_dir,
            query = self.query,
            files = files.len(),
            "lake: write committed"
        );
        Ok(())
    }

    fn commit_path(&self) -> String {
        format!(
            "{}{}.json",
            managed::commits_dir(&self.spec.table_dir),
            self.query
        )
    }

    /// Deletes the data files of this query's other attempts (task retries, earlier query attempts)
    /// that the commit does not list. Best effort.
    async fn remove_other_attempts(&self, committed: &HashSet<String>) {
        match self.files_of_query().await {
            Ok(paths) => {
                for path in paths.into_iter().filter(|p| !committed.contains(p)) {
                    if let Err(e) = self.lake.operator.delete(&path).await {
                        tracing::warn!(path, error = %e, "lake: cannot delete an uncommitted file");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "lake: cannot list the table after its commit"),
        }
    }

    /// Every data file of the table written by some attempt of this query.
    async fn files_of_query(&self) -> opendal::Result<Vec<String>> {
        let entries = self
            .lake
            .operator
            .list_with(&self.spec.table_dir)
            .recursive(true)
            .await?;
        Ok(entries
            .into_iter()
            .filter(|e| e.metadata().is_file() && is_of_query(e.name(), &self.query))
            .map(|e| e.path().to_string())
            .collect())
    }

    /// Removes what this statement attempt wrote (it failed or was canceled). Best effort.
    async fn clean_up(&self) {
        let op = &self.lake.operator;
        let result = if self.spec.create.is_some() {
            op.delete_with(&self.spec.table_dir).recursive(true).await
        } else {
            match &self.publisher {
                None => {
                    let _ = op.delete(&self.commit_path()).await;
                }
                Some(publisher) => publisher.clean_up(&self.query).await,
            }
            self.delete_own_files().await
        };
        match result {
            Ok(()) => tracing::info!(
                table = self.spec.table_dir,
                query = self.query,
                "lake: removed the files of a failed write"
            ),
            Err(e) => tracing::warn!(
                table = self.spec.table_dir,
                query = self.query,
                error = %e,
                "lake: cannot remove the files of a failed write"
            ),
        }
    }

    /// Removes the table directory of a failed `CREATE TABLE AS` if a late writer of this attempt
    /// left only its `creating` marker there (no metadata, no data file).
    async fn remove_abandoned_creation(&self) {
        let op = &self.lake.operator;
        let dir = &self.spec.table_dir;
        let Ok(entries) = op.list_with(dir).recursive(true).await else {
            return;
        };
        let marker = managed::creating_path(dir);
        // Only this attempt's marker: a later attempt (QUERY retry) or statement may be starting.
        let ours = op
            .read(&marker)
            .await
            .is_ok_and(|content| content.to_vec() == self.query.as_bytes());
        let abandoned = ours
            && entries
                .iter()
                .filter(|e| e.metadata().is_file())
                .all(|e| e.path() == marker);
        if abandoned && let Err(e) = op.delete_with(dir).recursive(true).await {
            tracing::warn!(error = %e, "lake: cannot remove an abandoned table directory");
        }
    }

    /// Deletes the data files of this query attempt (`part-QUERY-t…`).
    async fn delete_own_files(&self) -> opendal::Result<()> {
        let prefix = file_prefix(&self.query);
        for path in self.files_of_query().await? {
            let name = path.rsplit('/').next().unwrap_or(&path);
            if name.starts_with(&prefix) {
                self.lake.operator.delete(&path).await?;
            }
        }
        Ok(())
    }

    /// A second sweep a few seconds later, in the background: writer tasks being aborted may still
    /// close a file after the cleanup. Deletes only this attempt's data files (a statement run
    /// meanwhile may have created the same table again).
    fn sweep_later(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let committer = self.clone();
        handle.spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            if let Err(e) = committer.delete_own_files().await
                && e.kind() != opendal::ErrorKind::NotFound
            {
                tracing::warn!(error = %e, "lake: late sweep of a failed write failed");
            }
            if committer.spec.create.is_some() {
                committer.remove_abandoned_creation().await;
            }
        });
    }

    fn error(&self, what: &str, e: &dyn fmt::Display) -> DataFusionError {
        io_error(&self.lake, &self.spec, "committing", what, e)
    }
}

/// `schema` with Parquet field id `ids[i]` on its column `i` (the `PARQUET:field_id` field metadata
/// the Parquet writer turns into the file schema's field ids). Errors: a count that differs.
fn with_field_ids(schema: &Schema, ids: &[i32]) -> Result<Schema> {
    if ids.len() != schema.fields().len() {
        return internal_err!(
            "{} field ids for {} data columns",
            ids.len(),
            schema.fields().len()
        );
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .zip(ids)
        .map(|(field, id)| {
            let mut metadata = field.metadata().clone();
            metadata.insert(
                datafusion::parquet::arrow::PARQUET_FIELD_ID_META_KEY.to_string(),
                id.to_string(),
            );
            field.as_ref().clone().with_metadata(metadata)
        })
        .collect();
    Ok(Schema::new(fields))
}

/// The files a writer's output batch lists.
fn files_of(batch: &RecordBatch) -> Result<Vec<CommittedFile>> {
    let column = |i: usize| batch.column(i).as_any();
    let (Some(paths), Some(rows), Some(bytes)) = (
        column(0).downcast_ref::<StringArray>(),
        column(1).downcast_ref::<UInt64Array>(),
        column(2).downcast_ref::<UInt64Array>(),
    ) else {
        return internal_err!("LakeCommitExec: input is not a list of written files");
    };
    Ok((0..batch.num_rows())
        .map(|i| CommittedFile {
            path: paths.value(i).to_string(),
            rows: rows.value(i),
            bytes: bytes.value(i),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_belong_to_their_query() {
        let name = "part-20261204_101010_00001_abcde-t3-a1-0.parquet";
        assert!(is_of_query(name, "20261204_101010_00001_abcde"));
        assert!(is_of_query(name, "20261204_101010_00001_abcde.r1"));
        assert!(is_of_query(
            "part-20261204_101010_00001_abcde.r1-t0-a0-0.parquet",
            "20261204_101010_00001_abcde"
        ));
        assert!(!is_of_query(name, "20261204_101010_00001_abcd"));
        assert!(name.starts_with(&file_prefix("20261204_101010_00001_abcde")));
        assert!(!name.starts_with(&file_prefix("20261204_101010_00001_abcde.r1")));
    }

    #[test]
    fn partition_values_are_written_as_they_are() {
        assert_eq!(
            partition_dir_value("c", "2024-01-01 10:00:00").ok(),
            Some("2024-01-01 10:00:00")
        );
        assert_eq!(partition_dir_value("c", "50%=x").ok(), Some("50%=x"));
        assert!(partition_dir_value("c", "a/b").is_err());
        assert!(partition_dir_value("c", "").is_err());
        assert!(partition_dir_value("c", "..").is_err());
    }
}
