//! In-process streaming exchange: output partitions are shared in-memory buffers that readers follow as
//! producers append to them. Used between in-process workers of `single` mode.
//!
//! Buffers are kept until the query ends ([`Exchange::release_query`]), so several consumers (a broadcast
//! build side) can read the same partition. There is no back-pressure: a producer never waits for its
//! readers. That bounds nothing but keeps scheduling deadlock-free; the network exchange adds flow control.

use std::collections::HashMap;
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

#[derive(Debug, Default)]
enum State {
    #[default]
    Open,
    Finished,
    Failed(String),
}

/// One output partition of one task: batches so far, and whether more will come.
#[derive(Debug, Default)]
struct PartitionBuffer {
    inner: Mutex<(Vec<RecordBatch>, State)>,
    changed: Notify,
}

/// What a reader at position `next` does now.
enum Step {
    Batch(RecordBatch),
    Wait,
    End,
    Failed(String),
}

impl PartitionBuffer {
    fn step(&self, next: usize) -> Step {
        let inner = self.inner.lock();
        match (inner.0.get(next), &inner.1) {
            (Some(batch), _) => Step::Batch(batch.clone()),
            (None, State::Open) => Step::Wait,
            (None, State::Finished) => Step::End,
            (None, State::Failed(e)) => Step::Failed(e.clone()),
        }
    }

    fn push(&self, batch: RecordBatch) {
        self.inner.lock().0.push(batch);
        self.changed.notify_waiters();
    }

    fn close(&self, state: State) {
        {
            let mut inner = self.inner.lock();
            if matches!(inner.1, State::Open) {
                inner.1 = state;
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
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn buffer(&self, output: &TaskOutputId, partition: usize) -> Arc<PartitionBuffer> {
        self.buffers
            .lock()
            .entry((output.clone(), partition))
            .or_default()
            .clone()
    }

    /// Number of partition buffers held (for tests and metrics).
    pub fn buffer_count(&self) -> usize {
        self.buffers.lock().len()
    }
}

impl ExchangeSource for MemoryExchange {
    fn read(
        &self,
        output: &TaskOutputId,
        partition: usize,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream> {
        let buffer = self.buffer(output, partition);
        let name = output.to_string();
        let stream = futures::stream::unfold(Some((buffer, 0usize)), move |cursor| {
            let name = name.clone();
            async move {
                let (buffer, next) = cursor?;
                loop {
                    // Created before looking, so a push between the look and the wait still wakes us
                    // (a `Notified` receives `notify_waiters` from its creation on).
                    let notified = buffer.changed.notified();
                    let step = buffer.step(next);
                    if let Step::Wait = step {
                        notified.await;
                        continue;
                    }
                    drop(notified);
                    match step {
                        Step::Wait => {}
                        Step::Batch(batch) => return Some((Ok(batch), Some((buffer, next + 1)))),
                        Step::End => return None,
                        // Report the failure once, then end.
                        Step::Failed(e) => {
                            let e = DataFusionError::Execution(format!("task {name} failed: {e}"));
                            return Some((Err(e), None));
                        }
                    }
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
    ) -> Result<Box<dyn ExchangeSink>> {
        let buffers = (0..partitions).map(|p| self.buffer(output, p)).collect();
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
        buffer.push(batch);
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<()> {
        self.closed = true;
        for b in &self.buffers {
            b.close(State::Finished);
        }
        Ok(())
    }

    fn abort(mut self: Box<Self>, error: &str) {
        self.closed = true;
        for b in &self.buffers {
            b.close(State::Failed(error.to_string()));
        }
    }
}

impl Drop for MemorySink {
    fn drop(&mut self) {
        if !self.closed {
            for b in &self.buffers {
                b.close(State::Failed(
                    "task ended without finishing its output".into(),
                ));
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

    fn batch(v: i32) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(vec![v]))]).unwrap()
    }

    fn out() -> TaskOutputId {
        TaskOutputId {
            query: "q".into(),
            stage: 1,
            task: 0,
        }
    }

    #[tokio::test]
    async fn readers_follow_writes_and_see_end_or_error() {
        let ex = MemoryExchange::new();
        let schema = batch(0).schema();
        let mut r1 = ex.read(&out(), 0, schema.clone()).unwrap();
        let mut sink = ex.create_sink(&out(), 2).unwrap();
        sink.write(0, batch(1)).await.unwrap();
        assert_eq!(r1.next().await.unwrap().unwrap(), batch(1));
        let reader = tokio::spawn(async move { r1.next().await.map(|r| r.unwrap()) });
        sink.write(0, batch(2)).await.unwrap();
        assert_eq!(reader.await.unwrap(), Some(batch(2)));
        sink.finish().await.unwrap();
        // A late reader sees everything, then the end.
        let all: Vec<_> = ex.read(&out(), 0, schema.clone()).unwrap().collect().await;
        assert_eq!(all.len(), 2);
        let empty: Vec<_> = ex.read(&out(), 1, schema.clone()).unwrap().collect().await;
        assert!(empty.is_empty());

        let failed = TaskOutputId { task: 1, ..out() };
        let sink = ex.create_sink(&failed, 1).unwrap();
        sink.abort("boom");
        let got: Vec<_> = ex.read(&failed, 0, schema).unwrap().collect().await;
        assert_eq!(got.len(), 1);
        assert!(got[0].as_ref().unwrap_err().to_string().contains("boom"));

        ex.release_query("q");
        assert_eq!(ex.buffer_count(), 0);
    }
}
