//! The spool's file format: one data file of Arrow IPC stream segments per task attempt, and the
//! manifest that indexes it.
//!
//! `data.arrow` is a concatenation of *segments*. A segment is one complete Arrow IPC stream
//! (schema message, record batches, end-of-stream marker), written by arrow's `StreamWriter` with
//! the configured buffer compression, holding consecutive batches of ONE output partition. The
//! segments of different partitions interleave in the file in the order they were flushed. The
//! manifest (JSON, see [`Manifest`]) lists each partition's segments as byte ranges of the file, so a
//! reader of partition `p` fetches exactly those ranges and decodes each with `StreamReader`.

use std::io::Cursor;
use std::pin::Pin;

use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::CompressionType;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use futures::{Stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::storage::Base;
use super::{SpoolCompression, SpoolError};

/// The manifest format this build writes and reads.
pub const MANIFEST_VERSION: u32 = 1;

/// Name of the data file in an attempt's directory.
pub const DATA_FILE: &str = "data.arrow";

/// Name of the manifest (the commit marker) in an attempt's directory.
pub const MANIFEST_FILE: &str = "manifest";

/// Segment reads a reader has in flight: the next segment's request is already sent while one is
/// decoded.
const READ_AHEAD: usize = 2;

/// The commit record of one task attempt (`{attempt dir}/manifest`, JSON): written once, after the
/// data file is closed, and never changed. Its presence is what makes the attempt readable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`] of the writer; readers refuse other versions.
    pub version: u32,
    /// The attempt number this is the output of.
    pub attempt: u32,
    /// The buffer compression of the segments (informational: IPC messages carry their own).
    pub compression: SpoolCompression,
    /// Size of `data.arrow` in bytes (0 when the attempt produced no rows: then there is no file).
    pub data_bytes: u64,
    /// Rows over all partitions.
    pub rows: u64,
    /// One entry per output partition, in partition order.
    pub partitions: Vec<PartitionIndex>,
}

/// Where one output partition's data is in the data file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionIndex {
    /// Rows of the partition.
    pub rows: u64,
    /// Bytes of its segments in the file (compressed IPC).
    pub bytes: u64,
    /// Its segments in write order (reading them in this order gives its batches in write order).
    pub segments: Vec<Segment>,
}

/// One Arrow IPC stream inside the data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Byte offset in the data file.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// Rows in the segment.
    pub rows: u64,
}

impl PartitionIndex {
    pub(crate) fn push(&mut self, segment: Segment) {
        self.rows += segment.rows;
        self.bytes += segment.length;
        self.segments.push(segment);
    }
}

/// Encodes one partition's batches into the current segment (in memory, compressed) until it is
/// taken.
pub(crate) struct SegmentEncoder {
    options: IpcWriteOptions,
    current: Option<StreamWriter<Vec<u8>>>,
    rows: u64,
}

/// Arrow IPC write options with `compression`.
pub(crate) fn ipc_options(compression: SpoolCompression) -> Result<IpcWriteOptions, ArrowError> {
    let codec = match compression {
        SpoolCompression::None => None,
        SpoolCompression::Lz4 => Some(CompressionType::LZ4_FRAME),
        SpoolCompression::Zstd => Some(CompressionType::ZSTD),
    };
    IpcWriteOptions::default().try_with_compression(codec)
}

impl SegmentEncoder {
    pub(crate) fn new(options: IpcWriteOptions) -> Self {
        Self {
            options,
            current: None,
            rows: 0,
        }
    }

    /// Appends `batch` to the current segment (starting one, with `batch`'s schema, if none).
    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<(), ArrowError> {
        let writer = match &mut self.current {
            Some(writer) => writer,
            None => self.current.insert(StreamWriter::try_new_with_options(
                Vec::new(),
                &batch.schema(),
                self.options.clone(),
            )?),
        };
        writer.write(batch)?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Encoded bytes of the current segment so far.
    pub(crate) fn buffered(&self) -> usize {
        self.current.as_ref().map_or(0, |w| w.get_ref().len())
    }

    /// Ends the current segment: its complete IPC stream and rows (`None` if nothing is buffered).
    pub(crate) fn take(&mut self) -> Result<Option<(Vec<u8>, u64)>, ArrowError> {
        let Some(writer) = self.current.take() else {
            return Ok(None);
        };
        let rows = std::mem::take(&mut self.rows);
        Ok(Some((writer.into_inner()?, rows)))
    }
}

/// A data file being appended to through an OpenDAL streaming writer (multipart on S3), opened on
/// the first append.
pub(crate) struct DataFile {
    pub(crate) base: Base,
    pub(crate) path: String,
    writer: Option<opendal::Writer>,
    len: u64,
}

impl DataFile {
    pub(crate) fn new(base: Base, path: String) -> Self {
        Self {
            base,
            path,
            writer: None,
            len: 0,
        }
    }

    /// Bytes appended so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends one encoded segment of `rows` rows and returns where it is.
    pub(crate) async fn append(
        &mut self,
        bytes: Vec<u8>,
        rows: u64,
    ) -> Result<Segment, SpoolError> {
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => {
                let writer = self
                    .base
                    .op
                    .writer(&self.path)
                    .await
                    .map_err(self.base.error("write", &self.path))?;
                self.writer.insert(writer)
            }
        };
        let length = bytes.len() as u64;
        writer
            .write(bytes)
            .await
            .map_err(self.base.error("write", &self.path))?;
        let segment = Segment {
            offset: self.len,
            length,
            rows,
        };
        self.len += length;
        Ok(segment)
    }

    /// Completes the file (flushes, completes the multipart upload, syncs a local file): durable
    /// once this returns. Nothing to do if nothing was appended.
    pub(crate) async fn close(&mut self) -> Result<(), SpoolError> {
        if let Some(mut writer) = self.writer.take() {
            writer
                .close()
                .await
                .map_err(self.base.error("write", &self.path))?;
        }
        Ok(())
    }

    /// Whether anything may have been written (something to delete when the file is abandoned).
    pub(crate) fn touched(&self) -> bool {
        self.writer.is_some() || self.len > 0
    }

    /// The unfinished writer, for [`Base::discard`].
    pub(crate) fn take_writer(&mut self) -> Option<opendal::Writer> {
        self.writer.take()
    }
}

/// Streams the batches of `segments` of the data file at `path` in order: each segment is one
/// ranged read (up to [`READ_AHEAD`] in flight), decoded batch by batch.
pub(crate) fn read_segments(
    base: Base,
    path: String,
    segments: Vec<Segment>,
) -> Pin<Box<dyn Stream<Item = Result<RecordBatch>> + Send>> {
    let fetch = move |segment: Segment| {
        let (base, path) = (base.clone(), path.clone());
        async move {
            let range = segment.offset..segment.offset + segment.length;
            let buffer = base
                .op
                .read_with(&path)
                .range(range)
                .await
                .map_err(|e| base.error("read", &path)(e).into_datafusion())?;
            if buffer.len() as u64 != segment.length {
                return Err(corrupt(
                    &base,
                    &path,
                    format!(
                        "segment at {} has {} bytes, expected {}",
                        segment.offset,
                        buffer.len(),
                        segment.length
                    ),
                ));
            }
            let location = base.location(&path);
            let reader = StreamReader::try_new(Cursor::new(buffer.to_bytes()), None)
                .map_err(|e| corrupt(&base, &path, e.to_string()))?;
            Ok(futures::stream::iter(reader.map(move |batch| {
                batch.map_err(|e| {
                    SpoolError::Corrupt {
                        location: location.clone(),
                        reason: e.to_string(),
                    }
                    .into_datafusion()
                })
            })))
        }
    };
    Box::pin(
        futures::stream::iter(segments)
            .map(fetch)
            .buffered(READ_AHEAD)
            .try_flatten(),
    )
}

fn corrupt(base: &Base, path: &str, reason: String) -> DataFusionError {
    SpoolError::Corrupt {
        location: base.location(path),
        reason,
    }
    .into_datafusion()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int64Array;

    use super::*;

    fn batch(start: i64, rows: i64) -> RecordBatch {
        let values = Int64Array::from_iter_values(start..start + rows);
        RecordBatch::try_from_iter([("v", Arc::new(values) as _)]).unwrap()
    }

    #[test]
    fn a_segment_is_one_self_contained_ipc_stream() {
        for compression in [
            SpoolCompression::None,
            SpoolCompression::Lz4,
            SpoolCompression::Zstd,
        ] {
            let mut encoder = SegmentEncoder::new(ipc_options(compression).unwrap());
            assert_eq!(encoder.buffered(), 0);
            assert!(encoder.take().unwrap().is_none());
            encoder.write(&batch(0, 1000)).unwrap();
            encoder.write(&batch(1000, 24)).unwrap();
            assert!(encoder.buffered() > 0);
            let (bytes, rows) = encoder.take().unwrap().unwrap();
            assert_eq!(rows, 1024);
            assert_eq!(encoder.buffered(), 0);
            let got: Vec<RecordBatch> = StreamReader::try_new(Cursor::new(bytes), None)
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(
                got,
                vec![batch(0, 1000), batch(1000, 24)],
                "{compression:?}"
            );
            // The next segment starts a new stream (with its own schema message).
            encoder.write(&batch(5, 1)).unwrap();
            let (bytes, rows) = encoder.take().unwrap().unwrap();
            assert_eq!(rows, 1);
            let got: Vec<RecordBatch> = StreamReader::try_new(Cursor::new(bytes), None)
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(got, vec![batch(5, 1)]);
        }
    }

    #[test]
    fn manifests_are_json_with_a_version() {
        let mut partition = PartitionIndex::default();
        partition.push(Segment {
            offset: 0,
            length: 100,
            rows: 7,
        });
        partition.push(Segment {
            offset: 250,
            length: 50,
            rows: 3,
        });
        assert_eq!((partition.rows, partition.bytes), (10, 150));
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            attempt: 2,
            compression: SpoolCompression::Zstd,
            data_bytes: 300,
            rows: 10,
            partitions: vec![partition, PartitionIndex::default()],
        };
        let json = serde_json::to_string(&manifest).unwrap();
        assert!(
            json.starts_with("{\"version\":1,\"attempt\":2,\"compression\":\"zstd\""),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), manifest);
    }
}
