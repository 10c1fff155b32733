//! Exchanges: how one stage's output partitions reach the stages that consume them.
//!
//! This crate owns the [`ExchangeSink`] a task writes its output partitions to, the [`ExchangeSource`] a
//! consumer reads them from, the [`ExchangeReadExec`] plan node that stands in a consumer stage's plan for a
//! producer stage, and the implementations behind the traits ([`memory::MemoryExchange`]: in-process,
//! streaming; [`flight`]: between processes, streaming; [`spool`]: task output spooled to files
//! through OpenDAL, for `retry_policy = TASK`, with its journal and cleanup). It must not know how
//! stages are planned or scheduled.
//!
//! Output of a task attempt is addressed by [`TaskOutputId`] (query, stage, task) plus an output partition
//! number. In the streaming exchanges a sink's data becomes visible to readers as it is written; readers
//! see an error if the producing task fails and end-of-stream once it finishes. In the spool, a task
//! attempt's output is readable once the attempt committed (its sink finished), and never before.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;

pub mod flight;
pub mod memory;
pub mod read;
mod secret;
pub mod spool;

pub use read::{ExchangeContext, ExchangeReadExec, ReadMode};
pub use secret::Secret;
pub use spool::install_http_transport;

/// Bytes of data in `batch`: what its rows occupy, counting only the part of each buffer a sliced
/// array refers to (about the Arrow IPC body size). `RecordBatch::get_array_memory_size` counts whole
/// buffers instead, so slices of one batch (as a hash repartition emits) would each count all of it.
/// Used for exchange buffer limits and the bytes reported per task.
pub fn batch_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size())
        })
        .sum()
}

/// `batch` with its string and binary view columns (`Utf8View`, `BinaryView`) compacted when they
/// hold far more buffer bytes than their rows refer to: more than twice the bytes referred to and
/// over 32 KiB. Other columns, and view columns already compact, are shared, not copied.
///
/// A view array that came out of a `take` or a slice (a hash repartition, a join's probe output)
/// keeps every data buffer of the arrays it was gathered from, and Arrow IPC writes whole buffers:
/// without this, an exchange carries the same strings once per batch (q21's supplier names made a
/// task's 37 MB of rows 89 MB of spool). The streaming exchange ([`memory`]) calls it on every
/// batch written; the spool's sink gets the same from arrow's `BatchCoalescer`, which compacts by
/// the same rule while gathering batches. DataFusion's spill files do the same
/// (`gc_view_arrays`, not public).
pub fn compact_views(batch: RecordBatch) -> RecordBatch {
    use datafusion::arrow::array::{Array, ArrayRef, AsArray, GenericByteViewArray};
    use datafusion::arrow::datatypes::{ByteViewType, DataType};

    fn compact<T: ByteViewType + ?Sized>(a: &GenericByteViewArray<T>) -> Option<ArrayRef> {
        let held: usize = a.data_buffers().iter().map(|b| b.len()).sum();
        (held > 32 * 1024 && held > 2 * a.total_buffer_bytes_used()).then(|| Arc::new(a.gc()) as _)
    }
    let compacted = |c: &ArrayRef| match c.data_type() {
        DataType::Utf8View => compact(c.as_string_view()),
        DataType::BinaryView => compact(c.as_binary_view()),
        _ => None,
    };
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (i, c) in batch.columns().iter().enumerate() {
        if let Some(new) = compacted(c) {
            if columns.is_empty() {
                columns = batch.columns().to_vec();
            }
            columns[i] = new;
        }
    }
    if columns.is_empty() {
        return batch;
    }
    RecordBatch::try_new(batch.schema(), columns).unwrap_or(batch)
}

/// The output of one task of one stage of one query.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskOutputId {
    /// Server-wide query id.
    pub query: Arc<str>,
    /// Stage number within the query (the root stage is 0).
    pub stage: usize,
    /// Task number within the stage (= the stage plan's partition it runs).
    pub task: usize,
}

impl std::fmt::Display for TaskOutputId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.query, self.stage, self.task)
    }
}

/// Where one task writes its output partitions.
///
/// Implementors guarantee: batches written to a partition are read back in the order written; readers see
/// end-of-stream only after [`ExchangeSink::finish`], and the task's own error after
/// [`ExchangeSink::abort`] (a generic error if the sink is dropped unfinished). `write` may wait for
/// readers to make room (back-pressure).
#[async_trait]
pub trait ExchangeSink: Send {
    /// Appends `batch` to output partition `partition` (`0..partitions` as given at creation), waiting
    /// while that partition's buffer is full.
    async fn write(&mut self, partition: usize, batch: RecordBatch) -> Result<()>;
    /// Whether no reader will ever read any more of this sink's output (every reader ended early, e.g.
    /// after a LIMIT): the task may stop producing.
    fn is_abandoned(&self) -> bool {
        false
    }
    /// Marks every output partition complete.
    async fn finish(self: Box<Self>) -> Result<()>;
    /// Marks every output partition failed; readers receive `error` itself (as
    /// `DataFusionError::Shared`), so its kind and SQLSTATE survive the exchange.
    fn abort(self: Box<Self>, error: Arc<DataFusionError>);
}

/// Where consumer tasks read producer tasks' output partitions from.
pub trait ExchangeSource: Send + Sync + Debug {
    /// Streams output partition `partition` of `output`, waiting for batches as they are written.
    /// `schema` is the producer stage's output schema. Errors if the partition does not exist (its sink
    /// was never created, or the query was released) or was already consumed by an earlier reader.
    fn read(
        &self,
        output: &TaskOutputId,
        partition: usize,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream>;

    /// The task outputs of `stage` a reader reads, in task order: `0..planned` (one per
    /// partition of the producer's plan) unless the source knows better. A spooled source lists
    /// the producer's committed tasks, which may each have run several plan partitions
    /// (`retry_policy = TASK` sizes tasks by input bytes).
    fn producer_tasks(&self, stage: usize, planned: usize) -> Vec<usize> {
        let _ = stage;
        (0..planned).collect()
    }
}

/// An exchange implementation: creates sinks and serves reads, and frees a query's data at its end.
pub trait Exchange: ExchangeSource {
    /// Opens the sink of `output` with `partitions` output partitions, each read by `readers` readers
    /// (1, or the number of consumer plan instances when the output is broadcast). Sinks must be created
    /// before any reader of them is opened.
    fn create_sink(
        &self,
        output: &TaskOutputId,
        partitions: usize,
        readers: usize,
    ) -> Result<Box<dyn ExchangeSink>>;
    /// Drops everything held for `query` (called when the query ends, however it ends).
    fn release_query(&self, query: &str);
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;

    #[test]
    fn batch_bytes_counts_only_what_a_slice_refers_to() {
        let values = Int64Array::from_iter_values(0..1000);
        let batch = RecordBatch::try_from_iter([("v", Arc::new(values) as _)]).unwrap();
        assert_eq!(batch_bytes(&batch), 8000);
        let slice = batch.slice(100, 100);
        assert_eq!(batch_bytes(&slice), 800);
        assert!(slice.get_array_memory_size() >= 8000);
    }

    #[test]
    fn compact_views_copies_only_wasteful_view_columns() {
        use datafusion::arrow::array::{AsArray, StringViewArray};
        let values: Vec<String> = (0..10_000)
            .map(|i| format!("a value longer than a view's inline bytes, number {i:05}"))
            .collect();
        let views = StringViewArray::from_iter_values(&values);
        let batch = RecordBatch::try_from_iter([
            ("s", Arc::new(views) as _),
            ("v", Arc::new(Int64Array::from_iter_values(0..10_000)) as _),
        ])
        .unwrap();
        let held = |b: &RecordBatch| -> usize {
            let column = b.column(0).as_string_view();
            column.data_buffers().iter().map(|d| d.len()).sum()
        };
        // A whole, compact batch is returned as it is.
        let same = compact_views(batch.clone());
        assert!(Arc::ptr_eq(same.column(0), batch.column(0)));
        // A 10-row slice keeps the 550 KB buffer; compacted it holds its 10 values only.
        let slice = batch.slice(500, 10);
        assert!(held(&slice) > 500_000);
        let compacted = compact_views(slice.clone());
        assert!(held(&compacted) < 1_000, "{}", held(&compacted));
        assert_eq!(compacted, slice);
        assert!(Arc::ptr_eq(compacted.column(1), slice.column(1)));
    }
}
