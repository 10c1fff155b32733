//! The spooled exchange (`retry_policy = TASK`, Trino's fault-tolerant execution): every task
//! attempt writes its output partitions to files through OpenDAL (local disk or S3), so a failed task
//! is re-run alone and consumers read only the attempt the scheduler says committed.
//!
//! Layout under each base directory (`[exchange] base_directories`):
//! ```text
//! {query}/{stage}/{task}/{attempt}/data.arrow   every output partition, as Arrow IPC stream segments
//! {query}/{stage}/{task}/{attempt}/manifest     the commit marker (JSON): per partition its segments
//! {query}/result/{attempt}/data.arrow           a QUERY-retry result buffer's spill (ResultBuffer)
//! _journal/{node}/{query}                       queries coordinator `node` has spool data for
//! ```
//! One data file per attempt holds all its partitions (not a file per partition: no masses of tiny
//! objects); [`Manifest`] describes its shape. The base of a task is picked by a stable hash
//! of (query, stage, task), so several bases spread the load and readers find the files without
//! listing: a reader reads the manifest, then only its partition's byte ranges. Only cleanup lists
//! ([`Spool::release_query`], [`Spool::recover`], [`Spool::sweep`]).
//!
//! Commit protocol: the data file is closed (durable: fsync, or the multipart upload completed)
//! before the manifest is written; an attempt without a manifest is never read (reading it is an
//! error, not an empty result). Which of several committed attempts of a task counts is the
//! scheduler's choice ([`SpoolSource::attempts`]).
//!
//! Cleanup: [`Spool::release_query`] when a query ends; the journal ([`Spool::journal_begin`],
//! [`Spool::recover`]) for what a crashed coordinator left; [`Spool::sweep`] (TTL) for everything
//! else.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::TryStreamExt;
use parking_lot::Mutex;

use crate::{ExchangeSource, TaskOutputId};

mod config;
mod error;
mod format;
mod result;
mod sink;
mod storage;

pub use config::{ExchangeConfig, S3Settings, SpoolCompression};
pub use error::SpoolError;
pub use format::{DATA_FILE, MANIFEST_FILE, MANIFEST_VERSION, Manifest, PartitionIndex, Segment};
pub use result::ResultBuffer;
pub use sink::SpoolSink;
pub use storage::install_http_transport;

use config::BaseUrl;
use format::read_segments;
use storage::{Base, check_segment, pick};

/// Directory of the journal under the journal's base.
const JOURNAL_DIR: &str = "_journal/";

/// Committed manifests a spool keeps in memory (they never change); beyond it the cache starts over.
const MANIFEST_CACHE_ENTRIES: usize = 4096;

/// When buffered output is written out to the data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferLimits {
    /// A partition's segment is appended once its encoded (compressed) size reaches this many bytes
    /// (default 1 MiB): the unit of a reader's ranged read.
    pub segment_bytes: usize,
    /// When a sink's partitions together buffer more than this many encoded bytes, the largest
    /// segment is appended (default 16 MiB): a sink's memory bound, beside the rows each
    /// partition gathers before encoding them (below `batch_rows`).
    pub sink_bytes: usize,
    /// A sink gathers each partition's rows into batches of this many rows before encoding them
    /// (default 8192, DataFusion's batch size): a hash-partitioned task writes many small slices,
    /// and IPC compression pays a fixed cost per buffer.
    pub batch_rows: usize,
}

impl Default for BufferLimits {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 20,
            sink_bytes: 16 << 20,
            batch_rows: 8192,
        }
    }
}

/// The spool: one OpenDAL operator per base directory, plus a cache of committed manifests. Cheap
/// to clone (an `Arc` inside); clones share the cache.
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
    limits: BufferLimits,
}

struct Inner {
    /// Never empty.
    bases: Vec<Base>,
    /// `{query}/{stage}/{task}/{attempt}/` -> its manifest.
    manifests: Mutex<HashMap<String, Arc<Manifest>>>,
    /// query -> the node whose journal entry this process wrote for it.
    journal: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("bases", &self.inner.bases)
            .field(
                "compression",
                &self
                    .inner
                    .bases
                    .iter()
                    .map(|b| b.compression)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Spool {
    /// Builds the operators of every base directory of `config` (creating local directories; S3
    /// buckets must exist and are not contacted here).
    ///
    /// Errors: [`SpoolError::Config`] naming the key when no base directory is configured or a key
    /// is invalid (bad URL scheme, `s3://` without bucket, bad endpoint); [`SpoolError::Storage`]
    /// when a local directory cannot be created.
    pub fn new(config: &ExchangeConfig) -> Result<Spool, SpoolError> {
        let bases = config
            .bases()?
            .iter()
            .map(|base| Base::open(base, &config.s3, config.compression))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::build(bases))
    }

    /// A spool on the local directory `dir` (created when missing): for the QUERY result buffer
    /// when no base directory is configured, and for tests. Errors: [`SpoolError::Storage`] when
    /// the directory cannot be created.
    pub fn local(dir: &Path, compression: Option<SpoolCompression>) -> Result<Spool, SpoolError> {
        let base = Base::open(
            &BaseUrl::Fs(dir.to_path_buf()),
            &S3Settings::default(),
            compression,
        )?;
        Ok(Self::build(vec![base]))
    }

    fn build(bases: Vec<Base>) -> Spool {
        Spool {
            inner: Arc::new(Inner {
                bases,
                manifests: Mutex::default(),
                journal: Mutex::default(),
            }),
            limits: BufferLimits::default(),
        }
    }

    /// This spool with other buffer limits (for tuning, and tests that want many small segments).
    /// Clones share everything else.
    pub fn with_limits(mut self, limits: BufferLimits) -> Spool {
        self.limits = limits;
        self
    }

    /// The base directories as URLs (without credentials), in configuration order.
    pub fn base_urls(&self) -> Vec<String> {
        self.inner
            .bases
            .iter()
            .map(|b| b.url().to_string())
            .collect()
    }

    /// The base holding the objects of `key` (`{query}/{stage}/{task}` or `{query}/result`).
    fn base_for(&self, key: &str) -> &Base {
        &self.inner.bases[pick(key, self.inner.bases.len())]
    }

    /// The base of `output`'s attempts and the directory of attempt `attempt`.
    fn attempt_dir(
        &self,
        output: &TaskOutputId,
        attempt: u32,
    ) -> Result<(&Base, String), SpoolError> {
        check_segment("query id", &output.query)?;
        let task = format!("{}/{}/{}", output.query, output.stage, output.task);
        Ok((self.base_for(&task), format!("{task}/{attempt}/")))
    }

    /// The journal's base: the first base directory.
    fn journal_base(&self) -> &Base {
        &self.inner.bases[0]
    }

    /// Opens the writer of attempt `attempt` of task `output`, with `partitions` output partitions
    /// (`0..partitions`). Nothing is written before the first batch is flushed; see [`SpoolSink`].
    /// Errors: [`SpoolError::Invalid`] when the query id cannot name a directory (empty, `/`, or a
    /// leading `_`).
    pub fn create_sink(
        &self,
        output: &TaskOutputId,
        attempt: u32,
        partitions: usize,
    ) -> Result<SpoolSink, SpoolError> {
        let (base, dir) = self.attempt_dir(output, attempt)?;
        Ok(SpoolSink::new(self, base.clone(), dir, attempt, partitions))
    }

    /// The manifest of the committed attempt `attempt` of `output` (cached once read).
    ///
    /// Errors: [`SpoolError::NotCommitted`] when it does not exist; [`SpoolError::Corrupt`] when it
    /// cannot be parsed, has another format version or another attempt number;
    /// [`SpoolError::Storage`].
    pub async fn manifest(
        &self,
        output: &TaskOutputId,
        attempt: u32,
    ) -> Result<Arc<Manifest>, SpoolError> {
        let (base, dir) = self.attempt_dir(output, attempt)?;
        if let Some(manifest) = self.inner.manifests.lock().get(&dir) {
            return Ok(manifest.clone());
        }
        let path = format!("{dir}{MANIFEST_FILE}");
        let bytes = match base.read_whole(&path).await {
            Ok(buffer) => buffer.to_bytes(),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => {
                return Err(SpoolError::NotCommitted {
                    location: base.location(&path),
                });
            }
            Err(e) => return Err(base.error("read", &path)(e)),
        };
        let corrupt = |reason: String| SpoolError::Corrupt {
            location: base.location(&path),
            reason,
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if manifest.version != MANIFEST_VERSION {
            return Err(corrupt(format!(
                "manifest version {} (this build reads {MANIFEST_VERSION})",
                manifest.version
            )));
        }
        if manifest.attempt != attempt {
            return Err(corrupt(format!("manifest of attempt {}", manifest.attempt)));
        }
        let manifest = Arc::new(manifest);
        let mut cache = self.inner.manifests.lock();
        if cache.len() >= MANIFEST_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(dir, manifest.clone());
        Ok(manifest)
    }

    /// Streams output partition `partition` of the committed attempt `attempt` of `output`: reads
    /// the manifest, then only that partition's byte ranges of the data file, giving its batches in
    /// the order written. `schema` is the stream's declared schema (batches are returned as
    /// written).
    ///
    /// Errors: an invalid query id at once; inside the stream (first item) the manifest's errors
    /// ([`SpoolError::NotCommitted`] when the attempt never committed: an error, not an empty
    /// stream), [`SpoolError::Invalid`] for a partition the attempt does not have, then storage and
    /// decoding errors; all as `DataFusionError::External(SpoolError)`.
    pub fn read(
        &self,
        output: &TaskOutputId,
        attempt: u32,
        partition: usize,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream> {
        let (base, dir) = self.attempt_dir(output, attempt)?;
        let base = base.clone();
        let spool = self.clone();
        let output = output.clone();
        let batches = futures::stream::once(async move {
            let manifest = spool.manifest(&output, attempt).await?;
            let index = manifest.partitions.get(partition).ok_or_else(|| {
                SpoolError::Invalid(format!(
                    "{dir} has {} partitions, not partition {partition}",
                    manifest.partitions.len()
                ))
            })?;
            Ok::<_, DataFusionError>(read_segments(
                base,
                format!("{dir}{DATA_FILE}"),
                index.segments.clone(),
            ))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }

    /// Deletes everything of `query` under every base (`{base}/{query}/`: all attempts and its
    /// result buffers), forgets its cached manifests, then deletes its journal entry. A query with
    /// nothing spooled is fine; a failed delete is tried again four times (50 to 400 ms apart).
    /// Errors: [`SpoolError::Invalid`] for an invalid query id; [`SpoolError::Storage`] (the
    /// journal entry is then kept, so [`Spool::recover`] retries).
    pub async fn release_query(&self, query: &str) -> Result<(), SpoolError> {
        // A task aborted a moment ago may still finish a write it began (OpenDAL's file writes run
        // on blocking threads that outlive the aborted future), so a directory listed empty can
        // gain a file before it is removed: try a few times, 50 ms apart and growing.
        let mut delay = std::time::Duration::from_millis(50);
        let mut retries = 4;
        loop {
            match self.delete_query_data(query).await {
                Ok(()) => break,
                Err(e @ SpoolError::Storage { .. }) if retries > 0 => {
                    tracing::debug!(query, "spool: deleting the query's data again: {e}");
                    retries -= 1;
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => return Err(e),
            }
        }
        let node = self.inner.journal.lock().get(query).cloned();
        let base = self.journal_base();
        let nodes = match node {
            Some(node) => vec![node],
            // Journaled by another process (or never): look in every node's journal.
            None => self.list_journal_nodes().await?,
        };
        for node in nodes {
            let entry = format!("{JOURNAL_DIR}{node}/{query}");
            base.op
                .delete(&entry)
                .await
                .map_err(base.error("delete", &entry))?;
        }
        self.inner.journal.lock().remove(query);
        Ok(())
    }

    /// Deletes `{query}/` under every base and forgets its manifests.
    async fn delete_query_data(&self, query: &str) -> Result<(), SpoolError> {
        check_segment("query id", query)?;
        let dir = format!("{query}/");
        for base in &self.inner.bases {
            base.delete_dir(&dir).await?;
        }
        self.inner
            .manifests
            .lock()
            .retain(|key, _| !key.starts_with(&dir));
        tracing::debug!(query, "spool data released");
        Ok(())
    }

    /// The nodes that have a journal directory.
    async fn list_journal_nodes(&self) -> Result<Vec<String>, SpoolError> {
        let base = self.journal_base();
        let entries = base
            .op
            .list(JOURNAL_DIR)
            .await
            .map_err(base.error("list", JOURNAL_DIR))?;
        Ok(entries
            .iter()
            .filter(|e| e.metadata().is_dir() && e.path() != JOURNAL_DIR)
            .map(|e| e.name().trim_end_matches('/').to_string())
            .collect())
    }

    /// Records that `query`, run by coordinator `node`, has (or is about to have) spool data:
    /// writes `_journal/{node}/{query}` under the first base directory. Call before the query's
    /// first task writes. Errors: [`SpoolError::Invalid`] for a name that cannot name a directory;
    /// [`SpoolError::Storage`].
    pub async fn journal_begin(&self, node: &str, query: &str) -> Result<(), SpoolError> {
        check_segment("node", node)?;
        check_segment("query id", query)?;
        let base = self.journal_base();
        let entry = format!("{JOURNAL_DIR}{node}/{query}");
        base.op
            .write(&entry, query.as_bytes().to_vec())
            .await
            .map_err(base.error("write", &entry))?;
        self.inner
            .journal
            .lock()
            .insert(query.to_string(), node.to_string());
        Ok(())
    }

    /// On coordinator start: deletes the spool data of every query in `node`'s journal (what a
    /// crashed coordinator left), then each entry. Returns how many queries were cleaned. Errors:
    /// [`SpoolError::Invalid`] for a bad node name; [`SpoolError::Storage`] (entries not yet
    /// cleaned stay for the next start).
    pub async fn recover(&self, node: &str) -> Result<usize, SpoolError> {
        check_segment("node", node)?;
        let base = self.journal_base();
        let dir = format!("{JOURNAL_DIR}{node}/");
        let entries = base.op.list(&dir).await.map_err(base.error("list", &dir))?;
        let mut cleaned = 0;
        for entry in entries.iter().filter(|e| e.metadata().is_file()) {
            let query = entry.name();
            if check_segment("query id", query).is_ok() {
                self.delete_query_data(query).await?;
                cleaned += 1;
            }
            base.op
                .delete(entry.path())
                .await
                .map_err(base.error("delete", entry.path()))?;
            self.inner.journal.lock().remove(query);
        }
        if cleaned > 0 {
            tracing::info!(
                node,
                queries = cleaned,
                "spool: cleaned what a previous run left"
            );
        }
        Ok(cleaned)
    }

    /// TTL sweep: deletes the data of every query whose newest object (over all bases) is at least
    /// `max_age` old, or that holds no object; then the journal entries at least `max_age` old of
    /// queries that have no data left. Returns how many queries' data was deleted. Lists the whole
    /// store: run it rarely (e.g. hourly, with the config's `max_age_s`). Errors:
    /// [`SpoolError::Storage`].
    pub async fn sweep(&self, max_age: Duration) -> Result<usize, SpoolError> {
        let now = SystemTime::now();
        let old = |time: Option<SystemTime>| time.is_none_or(|t| t + max_age <= now);
        let mut queries: HashMap<String, Option<SystemTime>> = HashMap::new();
        for base in &self.inner.bases {
            let top = base.op.list("/").await.map_err(base.error("list", ""))?;
            for entry in top.iter().filter(|e| e.metadata().is_dir()) {
                let query = entry.name().trim_end_matches('/');
                if check_segment("query id", query).is_err() {
                    continue; // the base itself, `_journal/`
                }
                let newest = newest(base, entry.path()).await?;
                let seen = queries.entry(query.to_string()).or_default();
                *seen = (*seen).max(newest);
            }
        }
        let mut swept = 0;
        for (query, newest) in &queries {
            if old(*newest) {
                self.delete_query_data(query).await?;
                swept += 1;
            }
        }
        let base = self.journal_base();
        let journal = base
            .op
            .list_with(JOURNAL_DIR)
            .recursive(true)
            .await
            .map_err(base.error("list", JOURNAL_DIR))?;
        for entry in journal.iter().filter(|e| e.metadata().is_file()) {
            let has_data = queries
                .get(entry.name())
                .is_some_and(|newest| !old(*newest));
            let modified = entry.metadata().last_modified().map(SystemTime::from);
            if !has_data && old(modified) {
                base.op
                    .delete(entry.path())
                    .await
                    .map_err(base.error("delete", entry.path()))?;
            }
        }
        if swept > 0 {
            tracing::info!(queries = swept, "spool: swept expired query data");
        }
        Ok(swept)
    }
}

/// When the newest object under `dir` was last modified (`None` when it holds no object).
async fn newest(base: &Base, dir: &str) -> Result<Option<SystemTime>, SpoolError> {
    let entries = base
        .op
        .list_with(dir)
        .recursive(true)
        .await
        .map_err(base.error("list", dir))?;
    let mut newest = None;
    for entry in entries.iter().filter(|e| e.metadata().is_file()) {
        let modified = match entry.metadata().last_modified() {
            Some(t) => t,
            None => {
                let meta = base
                    .op
                    .stat(entry.path())
                    .await
                    .map_err(base.error("stat", entry.path()))?;
                // An object without a time is treated as new: never delete what we cannot date.
                meta.last_modified()
                    .unwrap_or_else(opendal::raw::Timestamp::now)
            }
        };
        newest = newest.max(Some(SystemTime::from(modified)));
    }
    Ok(newest)
}

/// An [`ExchangeSource`] over committed attempts: `read(output, partition, schema)` reads the
/// attempt `attempts[(output.stage, output.task)]` of `output` from `spool`.
#[derive(Debug)]
pub struct SpoolSource {
    /// Where the attempts are.
    pub spool: Spool,
    /// The committed attempt of each (stage, task) the reader may read, as chosen by the scheduler.
    pub attempts: HashMap<(usize, usize), u32>,
}

impl ExchangeSource for SpoolSource {
    /// Errors: `DataFusionError::Internal` for a (stage, task) without a committed attempt in
    /// [`SpoolSource::attempts`]; otherwise as [`Spool::read`].
    fn read(
        &self,
        output: &TaskOutputId,
        partition: usize,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream> {
        let attempt = self
            .attempts
            .get(&(output.stage, output.task))
            .ok_or_else(|| {
                DataFusionError::Internal(format!(
                    "spooled exchange: task {output} has no committed attempt"
                ))
            })?;
        self.spool.read(output, *attempt, partition, schema)
    }

    /// The committed tasks of `stage`, in task order (`0..planned` when none is known, so that
    /// the read of a missing one fails as [`SpoolSource::read`] does).
    fn producer_tasks(&self, stage: usize, planned: usize) -> Vec<usize> {
        let mut tasks: Vec<usize> = self
            .attempts
            .keys()
            .filter(|(s, _)| *s == stage)
            .map(|(_, t)| *t)
            .collect();
        if tasks.is_empty() {
            return (0..planned).collect();
        }
        tasks.sort_unstable();
        tasks
    }
}
