//! [`ResultBuffer`]: a query attempt's result, held until the attempt succeeds (`retry_policy =
//! QUERY`), spilled to the spool past a memory bound.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

use super::format::{DATA_FILE, DataFile, Segment, SegmentEncoder, read_segments};
use super::storage::{Base, check_segment};
use super::{BufferLimits, Spool, SpoolError};
use crate::batch_bytes;

/// Holds a query attempt's result batches: in memory up to `memory_bytes` (counted with
/// [`crate::batch_bytes`]), then every later batch appended to the spool file
/// `{base}/{query}/result/{attempt}/data.arrow` (compressed IPC segments, as task output).
///
/// [`ResultBuffer::into_stream`] gives every batch back in push order. The spill file is deleted
/// when that stream is dropped, or when the buffer is dropped without being streamed (both in the
/// background, best effort); [`Spool::release_query`] deletes it in any case.
pub struct ResultBuffer {
    schema: SchemaRef,
    memory_limit: usize,
    memory_used: usize,
    memory: Vec<RecordBatch>,
    rows: u64,
    limits: BufferLimits,
    /// The spill, once the memory bound was reached.
    spill: Spill,
}

struct Spill {
    /// `{query}/result/{attempt}/`.
    dir: String,
    encoder: SegmentEncoder,
    file: Option<DataFile>,
    segments: Vec<Segment>,
}

impl ResultBuffer {
    /// An empty buffer of attempt `attempt` of `query`, whose batches have `schema`, holding up to
    /// `memory_bytes` in memory. `query` must be a plain path segment (no `/`, not starting with
    /// `_`); otherwise the first spill fails with [`SpoolError::Invalid`].
    pub fn new(
        spool: Spool,
        query: &str,
        attempt: u32,
        schema: SchemaRef,
        memory_bytes: usize,
    ) -> Self {
        let dir = format!("{query}/result/{attempt}/");
        let base: Base = spool.base_for(&format!("{query}/result")).clone();
        let ipc_options = base.ipc_options.clone();
        let file = check_segment("query id", query)
            .ok()
            .map(|()| DataFile::new(base, format!("{dir}{DATA_FILE}")));
        Self {
            schema,
            memory_limit: memory_bytes,
            memory_used: 0,
            memory: Vec::new(),
            rows: 0,
            limits: spool.limits,
            spill: Spill {
                dir,
                encoder: SegmentEncoder::new(ipc_options),
                file,
                segments: Vec::new(),
            },
        }
    }

    /// Appends `batch`: to memory while the memory bound allows (and nothing was spilled yet), else
    /// to the spill file. Errors: a storage failure, as `DataFusionError::External(SpoolError)`.
    pub async fn push(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        let size = batch_bytes(&batch);
        if !self.spill.started() && self.memory_used + size <= self.memory_limit {
            self.memory_used += size;
            self.memory.push(batch);
            return Ok(());
        }
        self.spill.encoder.write(&batch)?;
        if self.spill.encoder.buffered() >= self.limits.segment_bytes {
            self.spill.flush().await?;
        }
        Ok(())
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes spilled so far: the spill file's size (compressed IPC) plus the segment being encoded.
    pub fn spilled_bytes(&self) -> u64 {
        let written = self.spill.file.as_ref().map_or(0, DataFile::len);
        written + self.spill.encoder.buffered() as u64
    }

    /// Every batch in push order: the in-memory ones, then the spill file's, streamed back one
    /// segment at a time. Errors: completing the spill file failed.
    pub async fn into_stream(mut self) -> Result<SendableRecordBatchStream> {
        let memory = futures::stream::iter(std::mem::take(&mut self.memory).into_iter().map(Ok));
        let schema = self.schema.clone();
        // On an error the spill, still holding its file, deletes it when dropped.
        self.spill.flush().await?;
        let file = match &mut self.spill.file {
            Some(file) if !self.spill.segments.is_empty() => {
                file.close().await?;
                self.spill.file.take()
            }
            _ => None,
        };
        let Some(file) = file else {
            return Ok(Box::pin(RecordBatchStreamAdapter::new(schema, memory)));
        };
        // The returned stream owns the file now: the guard, moved into its closure, deletes it
        // when the stream is dropped.
        let guard = DeleteOnDrop {
            base: file.base.clone(),
            dir: self.spill.dir.clone(),
        };
        let segments = std::mem::take(&mut self.spill.segments);
        let spilled = read_segments(file.base, file.path, segments).map(move |batch| {
            let _ = &guard;
            batch
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            memory.chain(spilled),
        )))
    }
}

impl Spill {
    /// Whether anything was spilled: later batches must follow into the file, to keep push order.
    fn started(&self) -> bool {
        !self.segments.is_empty() || self.encoder.buffered() > 0
    }

    /// Appends the segment being encoded to the spill file.
    async fn flush(&mut self) -> Result<(), SpoolError> {
        let taken = self
            .encoder
            .take()
            .map_err(|e| SpoolError::Invalid(format!("encoding a segment: {e}")))?;
        let Some((bytes, rows)) = taken else {
            return Ok(());
        };
        let file = self.file.as_mut().ok_or_else(|| {
            SpoolError::Invalid(format!(
                "result buffer {} has an invalid query id",
                self.dir
            ))
        })?;
        self.segments.push(file.append(bytes, rows).await?);
        Ok(())
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        if let Some(file) = &mut self.file
            && file.touched()
        {
            let writer = file.take_writer();
            file.base.discard_with_parents(self.dir.clone(), writer);
        }
    }
}

/// Deletes a result buffer's spill directory (and, on a local base, the query's directories above
/// it, once empty) when the stream reading it back is dropped.
struct DeleteOnDrop {
    base: Base,
    dir: String,
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        self.base
            .discard_with_parents(std::mem::take(&mut self.dir), None);
    }
}
