//! [`SpoolSink`]: writes one task attempt's output partitions into its data file, then commits the
//! manifest.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use datafusion::arrow::compute::BatchCoalescer;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};

use super::format::{
    DATA_FILE, DataFile, MANIFEST_FILE, MANIFEST_VERSION, Manifest, PartitionIndex, SegmentEncoder,
};
use super::storage::Base;
use super::{BufferLimits, Spool, SpoolCompression, SpoolError};
use crate::ExchangeSink;

/// The sink of one task attempt, from [`super::Spool::create_sink`].
///
/// Each output partition's batches are first gathered into batches of
/// [`BufferLimits::batch_rows`] rows (a hash-partitioned task writes many small slices), then
/// encoded (compressed Arrow IPC) into that partition's
/// current segment in memory; a segment is appended to the attempt's single `data.arrow` when it
/// reaches the segment size (1 MiB), and when all partitions together buffer more than the sink
/// limit (16 MiB) the largest is appended, so memory stays bounded whatever the output size.
/// [`ExchangeSink::finish`] appends what is left, closes the data file (durable) and then writes the
/// manifest: the commit. [`ExchangeSink::abort`], or dropping the sink unfinished, never writes a
/// manifest, and deletes what was written in the background (best effort). Never abandoned: spooled
/// output is kept for whoever reads it later.
pub struct SpoolSink {
    /// `{query}/{stage}/{task}/{attempt}/`.
    dir: String,
    attempt: u32,
    compression: SpoolCompression,
    limits: BufferLimits,
    /// Per output partition, rows not yet encoded (created on its first batch).
    coalescers: Vec<Option<BatchCoalescer>>,
    encoders: Vec<SegmentEncoder>,
    index: Vec<PartitionIndex>,
    /// Encoded bytes buffered over all encoders.
    buffered: usize,
    data: DataFile,
    spooled: Arc<AtomicU64>,
    committed: bool,
}

impl SpoolSink {
    /// The sink writing `{dir}data.arrow` and `{dir}manifest` on `base`.
    pub(crate) fn new(
        spool: &Spool,
        base: Base,
        dir: String,
        attempt: u32,
        partitions: usize,
    ) -> Self {
        Self {
            compression: base.compression,
            encoders: (0..partitions)
                .map(|_| SegmentEncoder::new(base.ipc_options.clone()))
                .collect(),
            data: DataFile::new(base, format!("{dir}{DATA_FILE}")),
            dir,
            attempt,
            limits: spool.limits,
            coalescers: (0..partitions).map(|_| None).collect(),
            index: vec![PartitionIndex::default(); partitions],
            buffered: 0,
            spooled: Arc::default(),
            committed: false,
        }
    }

    /// Shared counter of the bytes this sink wrote to its data file (compressed IPC, as stored),
    /// growing as segments are appended; final once `finish` returned.
    pub fn spooled_bytes(&self) -> Arc<AtomicU64> {
        self.spooled.clone()
    }

    /// Encodes `batch` into partition `partition`'s segment; appends segments to the data file as
    /// they or the sink's buffer fill up.
    async fn encode(&mut self, partition: usize, batch: &RecordBatch) -> Result<()> {
        let encoder = &mut self.encoders[partition];
        let before = encoder.buffered();
        encoder.write(batch)?;
        let after = encoder.buffered();
        self.buffered += after - before;
        if after >= self.limits.segment_bytes {
            self.flush(partition).await?;
        }
        while self.buffered > self.limits.sink_bytes {
            let largest = (0..self.encoders.len())
                .max_by_key(|&p| self.encoders[p].buffered())
                .unwrap_or(0);
            self.flush(largest).await?;
        }
        Ok(())
    }

    /// Encodes the batches partition `partition`'s coalescer completed (all it holds if `all`).
    async fn drain(&mut self, partition: usize, all: bool) -> Result<()> {
        let Some(coalescer) = self.coalescers[partition].as_mut() else {
            return Ok(());
        };
        if all {
            coalescer.finish_buffered_batch()?;
        }
        let mut completed = Vec::new();
        while let Some(batch) = coalescer.next_completed_batch() {
            completed.push(batch);
        }
        for batch in completed {
            self.encode(partition, &batch).await?;
        }
        Ok(())
    }

    /// Appends partition `partition`'s current segment to the data file.
    async fn flush(&mut self, partition: usize) -> Result<(), SpoolError> {
        let encoder = &mut self.encoders[partition];
        self.buffered -= encoder.buffered();
        let taken = encoder
            .take()
            .map_err(|e| SpoolError::Invalid(format!("encoding a segment: {e}")))?;
        let Some((bytes, rows)) = taken else {
            return Ok(());
        };
        let segment = self.data.append(bytes, rows).await?;
        self.spooled.fetch_add(segment.length, Ordering::Relaxed);
        self.index[partition].push(segment);
        Ok(())
    }
}

#[async_trait]
impl ExchangeSink for SpoolSink {
    async fn write(&mut self, partition: usize, batch: RecordBatch) -> Result<()> {
        let coalescer = self.coalescers.get_mut(partition).ok_or_else(|| {
            DataFusionError::Internal(format!("spool partition {partition} out of range"))
        })?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        coalescer
            .get_or_insert_with(|| BatchCoalescer::new(batch.schema(), self.limits.batch_rows))
            .push_batch(batch)?;
        self.drain(partition, false).await
    }

    async fn finish(mut self: Box<Self>) -> Result<()> {
        for partition in 0..self.encoders.len() {
            self.drain(partition, true).await?;
            self.flush(partition).await?;
        }
        self.data.close().await?;
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            attempt: self.attempt,
            compression: self.compression,
            data_bytes: self.data.len(),
            rows: self.index.iter().map(|p| p.rows).sum(),
            partitions: std::mem::take(&mut self.index),
        };
        let json = serde_json::to_vec(&manifest)
            .map_err(|e| DataFusionError::Internal(format!("spool manifest: {e}")))?;
        let path = format!("{}{MANIFEST_FILE}", self.dir);
        let base = &self.data.base;
        base.op
            .write(&path, json)
            .await
            .map_err(base.error("write", &path))?;
        self.committed = true;
        tracing::debug!(
            dir = %self.dir,
            rows = manifest.rows,
            bytes = manifest.data_bytes,
            "spool attempt committed"
        );
        Ok(())
    }

    fn abort(self: Box<Self>, error: Arc<DataFusionError>) {
        tracing::debug!(dir = %self.dir, "spool attempt aborted: {error}");
        // Dropping discards it.
    }
}

impl Drop for SpoolSink {
    fn drop(&mut self) {
        if !self.committed && self.data.touched() {
            let writer = self.data.take_writer();
            self.data.base.discard(self.dir.clone(), writer);
        }
    }
}
