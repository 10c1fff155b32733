//! In-process streaming exchange: output partitions are in-memory queues that readers follow as
//! producers append to them. Used between in-process workers of `single` mode.
//!
//! Flow control: each partition buffers at most [`PARTITION_BUFFER_BYTES`] not yet read by all of its
//! readers; a producer writing to a full partition waits (Trino's output buffer with back-pressure). A batch
//! is dropped once every registered reader is past it, so memory stays bounded by the buffers, not the data.
//! A reader that arrives after batches were dropped gets an error rather than silently missing rows. Once
//! every reader of a partition has ended early (a LIMIT was satisfied) the partition is abandoned: writes to
//! it are discarded, and a sink whose partitions are all abandoned reports it so its task can stop.
//!
//! Scheduling is all-at-once, so every consumer task exists while its producers run: waiting for room
//! cannot deadlock unless a consumer waits on one input before reading another that depends on it, which
//! stage plans never do (a join's build and probe sides come from different stages).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::{Exchange, ExchangeSink, ExchangeSource, TaskOutputId};

/// Bytes of unread batches one output partition holds before its producer waits (at least one batch is
/// always accepted).
pub const PARTITION_BUFFER_BYTES: usize = 4 << 20;

#[derive(Debug, Default)]
enum State {
    #[default]
    Open,
    Finished,
    Failed(Arc<DataFusionError>),
}

#[derive(Debug, Default)]
struct Inner {
    /// Batches not yet read by every registered reader, with their [`crate::batch_bytes`];
    /// `batches[0]` has absolute index `base`.
    batches: VecDeque<(RecordBatch, usize)>,
    base: usize,
    /// Sum of the byte counts in `batches`.
    bytes: usize,
    /// Registered readers: id -> absolute index of the next batch each reads.
    readers: HashMap<u64, usize>,
    next_reader: u64,
    /// Readers that registered so far, and how many are expected (more than one when a stage's output
    /// is broadcast to several consumer plan instances). Nothing is dropped before all expected readers
    /// registered, so a late one still sees every batch.
    registered: usize,
    expected: usize,
    state: State,
}

impl Inner {
    fn abandoned(&self) -> bool {
        self.registered >= self.expected.max(1) && self.readers.is_empty()
    }

    /// Drops batches every reader is past (all of them once the partition is abandoned).
    fn trim(&mut self) {
        let keep_from = if self.abandoned() {
            self.base + self.batches.len()
        } else if self.registered < self.expected {
            self.base
        } else {
            match self.readers.values().min() {
                Some(min) => *min,
                None => self.base,
            }
        };
        while self.base < keep_from {
            match self.batches.pop_front() {
                Some((_, size)) => self.bytes -= size,
                None => break,
            }
            self.base += 1;
        }
    }
}

/// One output partition of one task.
#[derive(Debug, Default)]
struct PartitionBuffer {
    inner: Mutex<Inner>,
    /// Woken on every push, read, reader change and close.
    changed: Notify,
}

/// What a reader does now.
enum Step {
    Batch(RecordBatch),
    Wait,
    End,
    Failed(Arc<DataFusionError>),
}

impl PartitionBuffer {
    fn new(expected_readers: usize) -> Self {
        let buffer = Self::default();
        buffer.inner.lock().expected = expected_readers.max(1);
        buffer
    }

    fn register(&self) -> Option<u64> {
        let mut inner = self.inner.lock();
        if inner.base > 0 {
            return None;
        }
        let id = inner.next_reader;
        inner.next_reader += 1;
        inner.registered += 1;
        inner.readers.insert(id, 0);
        Some(id)
    }

    fn unregister(&self, reader: u64) {
        let mut inner = self.inner.lock();
        inner.readers.remove(&reader);
        inner.trim();
        drop(inner);
        self.changed.notify_waiters();
    }

    fn step(&self, reader: u64) -> Step {
        let mut inner = self.inner.lock();
        let next = inner.readers.get(&reader).copied().unwrap_or(usize::MAX);
        let step = match inner.batches.get(next.wrapping_sub(inner.base)) {
            Some((batch, _)) => Step::Batch(batch.clone()),
            None => match &inner.state {
                State::Open => Step::Wait,
                State::Finished => Step::End,
                State::Failed(e) => Step::Failed(e.clone()),
            },
        };
        if let Step::Batch(_) = step {
            inner.readers.insert(reader, next + 1);
            inner.trim();
            drop(inner);
            self.changed.notify_waiters();
        }
        step
    }

    /// Appends `batch`, waiting while the buffer is full. Returns false if the partition is abandoned
    /// (the batch is discarded).
    async fn push(&self, batch: RecordBatch) -> bool {
        let size = crate::batch_bytes(&batch);
        loop {
            let notified = self.changed.notified();
            {
                let mut inner = self.inner.lock();
                if inner.abandoned() {
                    return false;
                }
                if inner.batches.is_empty() || inner.bytes + size <= PARTITION_BUFFER_BYTES {
                    inner.bytes += size;
                    inner.batches.push_back((batch, size));
                    drop(inner);
                    self.changed.notify_waiters();
                    return true;
                }
            }
            notified.await;
        }
    }

    fn close(&self, state: State) {
        {
            let mut inner = self.inner.lock();
            if matches!(inner.state, State::Open) {
                inner.state = state;
            }
        }
        self.changed.notify_waiters();
    }
}

type Key = (TaskOutputId, usize);

/// The in-memory exchange of one process. Cheap to share.
#[derive(Debug, Default)]
pub struct MemoryExchange {
    buffers: Mutex<HashMap<Key, Arc<PartitionBuffer>>>,
}

impl MemoryExchange {
    /// An empty exchange.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Number of partition buffers held (for tests and metrics).
    pub fn buffer_count(&self) -> usize {
        self.buffers.lock().len()
    }
}

/// Unregisters its reader when the reader's stream is dropped, finished or not.
struct ReaderGuard {
    buffer: Arc<PartitionBuffer>,
    reader: u64,
}

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        self.buffer.unregister(self.reader);
    }
}

impl ExchangeSource for MemoryExchange {
    fn read(
        &self,
        output: &TaskOutputId,
        partition: usize,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream> {
        let name = format!("{output}/{partition}");
        let buffer = self
            .buffers
            .lock()
            .get(&(output.clone(), partition))
            .cloned()
            .ok_or_else(|| {
                DataFusionError::Internal(format!("exchange partition {name} does not exist"))
            })?;
        let reader = buffer.register().ok_or_else(|| {
            DataFusionError::Internal(format!(
                "exchange partition {name} was already consumed by another reader"
            ))
        })?;
        let guard = ReaderGuard { buffer, reader };
        let stream = futures::stream::unfold(Some(guard), |guard| async move {
            let guard = guard?;
            loop {
                // Created before looking, so a push between the look and the wait still wakes us
                // (a `Notified` receives `notify_waiters` from its creation on).
                let buffer = guard.buffer.clone();
                let notified = buffer.changed.notified();
                match buffer.step(guard.reader) {
                    Step::Wait => notified.await,
                    Step::Batch(batch) => return Some((Ok(batch), Some(guard))),
                    Step::End => return None,
                    // The producing task's own error, once; then the stream ends.
                    Step::Failed(e) => return Some((Err(DataFusionError::Shared(e)), None)),
                }
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

impl Exchange for MemoryExchange {
    fn create_sink(
        &self,
        output: &TaskOutputId,
        partitions: usize,
        readers: usize,
    ) -> Result<Box<dyn ExchangeSink>> {
        let mut map = self.buffers.lock();
        let buffers = (0..partitions)
            .map(|p| {
                map.entry((output.clone(), p))
                    .or_insert_with(|| Arc::new(PartitionBuffer::new(readers)))
                    .clone()
            })
            .collect();
        Ok(Box::new(MemorySink {
            buffers,
            closed: false,
        }))
    }

    fn release_query(&self, query: &str) {
        self.buffers
            .lock()
            .retain(|(output, _), _| &*output.query != query);
    }
}

struct MemorySink {
    buffers: Vec<Arc<PartitionBuffer>>,
    closed: bool,
}

#[async_trait]
impl ExchangeSink for MemorySink {
    async fn write(&mut self, partition: usize, batch: RecordBatch) -> Result<()> {
        let buffer = self.buffers.get(partition).ok_or_else(|| {
            DataFusionError::Internal(format!("exchange partition {partition} out of range"))
        })?;
        // Compacted here, where batches wait in memory and leave over Flight as IPC; the spool's
        // sink compacts while it gathers batches (arrow's `BatchCoalescer`).
        buffer.push(crate::compact_views(batch)).await;
        Ok(())
    }

    fn is_abandoned(&self) -> bool {
        self.buffers.iter().all(|b| b.inner.lock().abandoned())
    }

    async fn finish(mut self: Box<Self>) -> Result<()> {
        self.closed = true;
        for b in &self.buffers {
            b.close(State::Finished);
        }
        Ok(())
    }

    fn abort(mut self: Box<Self>, error: Arc<DataFusionError>) {
        self.closed = true;
        for b in &self.buffers {
            b.close(State::Failed(error.clone()));
        }
    }
}

impl Drop for MemorySink {
    fn drop(&mut self) {
        if !self.closed {
            let error = Arc::new(DataFusionError::Execution(
                "task ended without finishing its output".into(),
            ));
            for b in &self.buffers {
                b.close(State::Failed(error.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int32Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use futures::StreamExt;

    fn batch(v: i32, rows: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(vec![v; rows]))]).unwrap()
    }

    fn out(task: usize) -> TaskOutputId {
        TaskOutputId {
            query: "q".into(),
            stage: 1,
            task,
        }
    }

    #[tokio::test]
    async fn readers_follow_writes_and_see_end_or_the_task_error() {
        let ex = MemoryExchange::new();
        let schema = batch(0, 1).schema();
        let mut sink = ex.create_sink(&out(0), 2, 1).unwrap();
        let mut r1 = ex.read(&out(0), 0, schema.clone()).unwrap();
        sink.write(0, batch(1, 1)).await.unwrap();
        assert_eq!(r1.next().await.unwrap().unwrap(), batch(1, 1));
        let reader = tokio::spawn(async move { r1.next().await.map(|r| r.unwrap()) });
        sink.write(0, batch(2, 1)).await.unwrap();
        assert_eq!(reader.await.unwrap(), Some(batch(2, 1)));
        let empty = ex.read(&out(0), 1, schema.clone()).unwrap();
        sink.finish().await.unwrap();
        assert!(empty.collect::<Vec<_>>().await.is_empty());
        // Batches already read by every reader are gone: a late reader is refused, loudly.
        assert!(ex.read(&out(0), 0, schema.clone()).is_err());
        // Unknown partitions are refused too.
        assert!(ex.read(&out(7), 0, schema.clone()).is_err());

        let sink = ex.create_sink(&out(1), 1, 1).unwrap();
        let failed = ex.read(&out(1), 0, schema).unwrap();
        sink.abort(Arc::new(DataFusionError::ResourcesExhausted("boom".into())));
        let got: Vec<_> = failed.collect().await;
        assert_eq!(got.len(), 1);
        let err = got.into_iter().next().unwrap().unwrap_err();
        assert!(
            matches!(err.find_root(), DataFusionError::ResourcesExhausted(_)),
            "{err}"
        );

        ex.release_query("q");
        assert_eq!(ex.buffer_count(), 0);
    }

    #[tokio::test]
    async fn a_full_partition_makes_its_producer_wait_and_early_readers_abandon_it() {
        let ex = MemoryExchange::new();
        let big = batch(1, PARTITION_BUFFER_BYTES / 4); // each about the whole budget
        let mut sink = ex.create_sink(&out(0), 1, 1).unwrap();
        let mut reader = ex.read(&out(0), 0, big.schema()).unwrap();
        sink.write(0, big.clone()).await.unwrap();
        let mut sink = tokio::spawn(async move {
            sink.write(0, big.clone()).await.unwrap();
            sink
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(1), &mut sink)
                .await
                .is_err(),
            "the second write must wait for the reader"
        );
        reader.next().await.unwrap().unwrap();
        let mut sink = sink.await.unwrap();
        assert!(!sink.is_abandoned());
        drop(reader);
        assert!(sink.is_abandoned());
        // Writes after abandonment are discarded without waiting.
        sink.write(0, batch(3, PARTITION_BUFFER_BYTES / 4))
            .await
            .unwrap();
        sink.write(0, batch(3, PARTITION_BUFFER_BYTES / 4))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_broadcast_partition_keeps_its_batches_until_every_reader_registered() {
        let ex = MemoryExchange::new();
        let schema = batch(0, 1).schema();
        let mut sink = ex.create_sink(&out(0), 1, 2).unwrap();
        let first = ex.read(&out(0), 0, schema.clone()).unwrap();
        sink.write(0, batch(1, 1)).await.unwrap();
        sink.write(0, batch(2, 1)).await.unwrap();
        sink.finish().await.unwrap();
        let got: Vec<_> = first.map(|b| b.unwrap()).collect().await;
        assert_eq!(got, vec![batch(1, 1), batch(2, 1)]);
        // The second consumer instance arrives after the first read everything: nothing was dropped.
        let second = ex.read(&out(0), 0, schema.clone()).unwrap();
        let got: Vec<_> = second.map(|b| b.unwrap()).collect().await;
        assert_eq!(got, vec![batch(1, 1), batch(2, 1)]);
        // Both expected readers came: a third is refused.
        assert!(ex.read(&out(0), 0, schema).is_err());
    }
}
