//! The spooled exchange on real storage: every scenario runs on a local directory and on S3 (a moto
//! server started by the test kit; a missing `moto_server` fails the test, saying what to install).

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, Int32Array, Int64Array, StringArray, StringViewArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use futures::TryStreamExt;
use opendal::Operator;
use tributary_exchange::spool::{
    BufferLimits, ExchangeConfig, ResultBuffer, S3Settings, Spool, SpoolCompression, SpoolError,
    SpoolSource,
};
use tributary_exchange::{ExchangeSink, ExchangeSource, Secret, TaskOutputId};
use tributary_testkit::{Moto, TempDir};

#[derive(Debug, Clone, Copy)]
enum Where {
    Local,
    S3,
}

/// One spool location (a fresh directory or bucket), its config, and an operator to look at it.
struct Store {
    config: ExchangeConfig,
    /// Lists what the spool left, independently of the spool.
    check: Operator,
    _dir: Option<TempDir>,
}

impl Store {
    fn new(at: Where, compression: Option<SpoolCompression>) -> Store {
        match at {
            Where::Local => {
                let dir = TempDir::new("spool");
                let config = ExchangeConfig {
                    base_directories: vec![dir.url()],
                    compression,
                    ..ExchangeConfig::default()
                };
                let check = Operator::new(
                    opendal::services::Fs::default().root(&dir.path().to_string_lossy()),
                )
                .expect("fs operator");
                Store {
                    config,
                    check,
                    _dir: Some(dir),
                }
            }
            Where::S3 => {
                let moto = Moto::shared();
                let bucket = fresh_bucket();
                moto.create_bucket(&bucket);
                let config = ExchangeConfig {
                    base_directories: vec![format!("s3://{bucket}/spool")],
                    s3: moto_settings(moto),
                    compression,
                    ..ExchangeConfig::default()
                };
                tributary_exchange::install_http_transport();
                let check = Operator::new(
                    opendal::services::S3::default()
                        .bucket(&bucket)
                        .root("/spool")
                        .endpoint(&moto.endpoint())
                        .region(Moto::REGION)
                        .access_key_id(Moto::ACCESS_KEY_ID)
                        .secret_access_key(Moto::SECRET_ACCESS_KEY),
                )
                .expect("s3 operator");
                Store {
                    config,
                    check,
                    _dir: None,
                }
            }
        }
    }

    /// A spool on this store (a new one stands for a restarted process).
    fn spool(&self) -> Spool {
        Spool::new(&self.config).expect("spool")
    }

    /// A spool whose sinks flush tiny segments, so small tests make many of them: a partition's
    /// segment at 8 KiB, or the largest when three partitions buffer more than 12 KiB together.
    fn small_segments(&self) -> Spool {
        self.spool().with_limits(BufferLimits {
            segment_bytes: 8 << 10,
            sink_bytes: 12 << 10,
            batch_rows: 64,
        })
    }

    /// Every object (file) under `prefix`, relative to the base, sorted.
    async fn objects(&self, prefix: &str) -> Vec<String> {
        let mut files: Vec<String> = self
            .check
            .list_with(prefix)
            .recursive(true)
            .await
            .unwrap_or_else(|e| panic!("list {prefix}: {e}"))
            .into_iter()
            .filter(|e| e.metadata().is_file())
            .map(|e| e.path().to_string())
            .collect();
        files.sort();
        files
    }

    /// Waits (up to 10 s) until nothing is left under `prefix` (background deletes).
    async fn wait_until_empty(&self, prefix: &str) {
        if !wait_until(async || self.objects(prefix).await.is_empty()).await {
            panic!("{prefix} still holds {:?}", self.objects(prefix).await);
        }
    }

    /// Waits (up to 10 s) until `dir` is no longer there (a local directory removed in the
    /// background); panics if it stays.
    async fn wait_until_gone(&self, dir: &str) {
        if !wait_until(async || !self.check.exists(dir).await.unwrap()).await {
            panic!("{dir} is still there");
        }
    }
}

/// Whether `done` becomes true within 10 s (polled every 100 ms).
async fn wait_until(done: impl AsyncFn() -> bool) -> bool {
    for _ in 0..100 {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn moto_settings(moto: &Moto) -> S3Settings {
    S3Settings {
        endpoint: Some(moto.endpoint()),
        region: Moto::REGION.into(),
        access_key_id: Some(Moto::ACCESS_KEY_ID.into()),
        secret_access_key: Some(Secret::new(Moto::SECRET_ACCESS_KEY)),
    }
}

fn fresh_bucket() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "spool-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("part", DataType::Int32, false),
        Field::new("seq", DataType::Int64, false),
        Field::new("text", DataType::Utf8, true),
    ]))
}

/// `rows` rows of partition `part` with sequence numbers from `start`.
fn batch(part: i32, start: i64, rows: usize) -> RecordBatch {
    let seq: Vec<i64> = (start..start + rows as i64).collect();
    let text: Vec<Option<String>> = seq
        .iter()
        .map(|s| (s % 11 != 0).then(|| format!("row {s} of partition {part}, padded")))
        .collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int32Array::from(vec![part; rows])),
            Arc::new(Int64Array::from(seq)),
            Arc::new(StringArray::from(text)),
        ],
    )
    .expect("batch")
}

fn output(query: &str, stage: usize, task: usize) -> TaskOutputId {
    TaskOutputId {
        query: query.into(),
        stage,
        task,
    }
}

async fn collect(stream: SendableRecordBatchStream) -> Result<Vec<RecordBatch>, DataFusionError> {
    stream.try_collect().await
}

/// (part, seq) of every row, in order.
fn rows_of(batches: &[RecordBatch]) -> Vec<(i32, i64)> {
    let mut rows = Vec::new();
    for b in batches {
        let part = b.column(0).as_any().downcast_ref::<Int32Array>().unwrap();
        let seq = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        let text = b.column(2).as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..b.num_rows() {
            assert_eq!(text.is_null(i), seq.value(i) % 11 == 0, "text of {i}");
            rows.push((part.value(i), seq.value(i)));
        }
    }
    rows
}

fn expected(part: i32, seqs: impl IntoIterator<Item = i64>) -> Vec<(i32, i64)> {
    seqs.into_iter().map(|s| (part, s)).collect()
}

/// The `SpoolError` inside a stream's `DataFusionError`.
fn spool_error(e: &DataFusionError) -> &SpoolError {
    match e {
        DataFusionError::External(inner) => inner
            .downcast_ref::<SpoolError>()
            .unwrap_or_else(|| panic!("not a SpoolError: {e}")),
        other => panic!("not a SpoolError: {other}"),
    }
}

async fn read(
    spool: &Spool,
    out: &TaskOutputId,
    attempt: u32,
    partition: usize,
) -> Vec<RecordBatch> {
    let stream = spool.read(out, attempt, partition, schema()).expect("read");
    collect(stream)
        .await
        .unwrap_or_else(|e| panic!("read {out} attempt {attempt} partition {partition}: {e}"))
}

/// Writes `batches` (partition, start, rows) to attempt `attempt` of `out` and commits it.
async fn commit(spool: &Spool, out: &TaskOutputId, attempt: u32, batches: &[(usize, i64, usize)]) {
    let partitions = batches.iter().map(|b| b.0 + 1).max().unwrap_or(1);
    let mut sink: Box<dyn ExchangeSink> =
        Box::new(spool.create_sink(out, attempt, partitions).expect("sink"));
    for &(p, start, rows) in batches {
        sink.write(p, batch(p as i32, start, rows))
            .await
            .expect("write");
    }
    sink.finish().await.expect("finish");
}

/// Slices of a string-view column pointing into one big buffer (what a join's or a hash
/// repartition's `take` gives) are spooled compacted: the strings the rows refer to, not the whole
/// buffer once per batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_slices_are_spooled_compacted() {
    let store = Store::new(Where::Local, Some(SpoolCompression::None));
    let spool = store.spool();
    let values: Vec<String> = (0..10_000)
        .map(|i| format!("a value longer than a view's inline bytes, number {i:05}"))
        .collect();
    let big = RecordBatch::try_from_iter([(
        "s",
        Arc::new(StringViewArray::from_iter_values(&values)) as _,
    )])
    .unwrap();
    let buffer_bytes: usize = values.iter().map(String::len).sum();
    let out = output("views", 1, 0);
    let mut sink: Box<dyn ExchangeSink> = Box::new(spool.create_sink(&out, 0, 1).expect("sink"));
    let mut want = Vec::new();
    for i in 0..100 {
        sink.write(0, big.slice(i * 100, 10)).await.expect("write");
        want.extend_from_slice(&values[i * 100..i * 100 + 10]);
    }
    sink.finish().await.expect("finish");
    let manifest = spool.manifest(&out, 0).await.expect("manifest");
    // 1,000 values of 55 bytes plus their views; whole buffers would be 100 x 550 KB.
    assert!(
        manifest.data_bytes < buffer_bytes as u64 / 4,
        "{} bytes spooled for 1,000 values",
        manifest.data_bytes
    );
    let stream = spool.read(&out, 0, 0, big.schema()).expect("read");
    let got: Vec<String> = collect(stream)
        .await
        .expect("read back")
        .iter()
        .flat_map(|b| {
            let column = b
                .column(0)
                .as_any()
                .downcast_ref::<StringViewArray>()
                .unwrap();
            column
                .iter()
                .map(|v| v.unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(got, want);
}

macro_rules! on_local_and_s3 {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn local() {
                    super::$scenario(super::Where::Local).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn s3() {
                    super::$scenario(super::Where::S3).await
                }
            }
        )*
    };
}

on_local_and_s3!(
    round_trip_of_interleaved_partitions,
    a_large_attempt_streams_through_multipart_upload,
    an_attempt_without_output_commits_an_empty_manifest,
    an_unfinished_attempt_is_never_readable,
    each_committed_attempt_reads_its_own_data,
    release_query_deletes_everything_of_the_query,
    recover_cleans_what_a_crashed_coordinator_journaled,
    sweep_deletes_only_expired_queries,
    result_buffer_spills_past_its_memory_bound,
);

/// Several partitions written interleaved with many flushes, one partition empty: each partition
/// reads back exactly, in order, for every compression (unset: none on a local directory, LZ4 on
/// S3); one data file plus the manifest per attempt.
async fn round_trip_of_interleaved_partitions(at: Where) {
    let mut sizes = Vec::new();
    for configured in [
        Some(SpoolCompression::None),
        Some(SpoolCompression::Lz4),
        Some(SpoolCompression::Zstd),
        None,
    ] {
        let compression = configured.unwrap_or(match at {
            Where::Local => SpoolCompression::None,
            Where::S3 => SpoolCompression::Lz4,
        });
        let store = Store::new(at, configured);
        let spool = store.small_segments();
        let out = output("q1", 1, 3);
        let sink = spool.create_sink(&out, 0, 4).expect("sink");
        let spooled = sink.spooled_bytes();
        let mut sink: Box<dyn ExchangeSink> = Box::new(sink);
        let mut want = vec![Vec::new(); 4];
        let mut next = [0i64; 4];
        for i in 0..150usize {
            let p = [0, 1, 3, 0, 3][i % 5]; // partition 2 gets nothing
            let rows = 20 + (i % 7) * 15;
            sink.write(p, batch(p as i32, next[p], rows))
                .await
                .expect("write");
            want[p].extend(expected(p as i32, next[p]..next[p] + rows as i64));
            next[p] += rows as i64;
        }
        // An empty batch is accepted and changes nothing.
        sink.write(1, batch(1, 0, 0)).await.expect("empty write");
        sink.finish().await.expect("finish");

        let manifest = spool.manifest(&out, 0).await.expect("manifest");
        assert_eq!(manifest.partitions.len(), 4);
        assert_eq!(manifest.compression, compression);
        assert!(
            manifest.partitions[2].segments.is_empty() && manifest.partitions[2].rows == 0,
            "{manifest:?}"
        );
        for p in [0, 1, 3] {
            assert!(
                manifest.partitions[p].segments.len() > 2,
                "partition {p} should have been flushed many times: {:?}",
                manifest.partitions[p]
            );
            assert_eq!(manifest.partitions[p].rows, want[p].len() as u64);
        }
        let total: u64 = manifest.partitions.iter().map(|p| p.bytes).sum();
        assert_eq!(manifest.data_bytes, total);
        assert_eq!(spooled.load(std::sync::atomic::Ordering::Relaxed), total);
        assert_eq!(
            store.objects("q1/").await,
            ["q1/1/3/0/data.arrow", "q1/1/3/0/manifest"]
        );
        sizes.push(total);

        for (p, want) in want.iter().enumerate() {
            let got = read(&spool, &out, 0, p).await;
            assert_eq!(&rows_of(&got), want, "{compression:?} partition {p}");
            // Written in slices of 20 to 110 rows, read in batches of `batch_rows` (64) but the last.
            let sizes: Vec<usize> = got.iter().map(|b| b.num_rows()).collect();
            if let Some((_, full)) = sizes.split_last() {
                assert!(full.iter().all(|&n| n == 64), "{sizes:?}");
            }
        }
        // The same through a fresh spool (another process: no cached manifest).
        let got = read(&store.spool(), &out, 0, 3).await;
        assert_eq!(rows_of(&got), want[3]);

        // A partition the attempt does not have is an error, not an empty stream.
        let err = collect(spool.read(&out, 0, 4, schema()).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(spool_error(&err), SpoolError::Invalid(_)), "{err}");
    }
    // Compression applies: the same data is smaller compressed.
    assert!(sizes[1] < sizes[0] && sizes[2] < sizes[0], "{sizes:?}");
}

/// With the default limits (1 MiB segments), an attempt larger than S3's 5 MiB part size: the data
/// file is uploaded in parts and ranged reads cross part boundaries.
async fn a_large_attempt_streams_through_multipart_upload(at: Where) {
    let store = Store::new(at, Some(SpoolCompression::None));
    let spool = store.spool();
    let out = output("big", 1, 0);
    let sink = spool.create_sink(&out, 0, 3).expect("sink");
    let spooled = sink.spooled_bytes();
    let mut sink: Box<dyn ExchangeSink> = Box::new(sink);
    let rows = 8192;
    let batches = 48;
    for i in 0..batches {
        let p = i % 3;
        let start = (i / 3 * rows) as i64;
        sink.write(p, batch(p as i32, start, rows))
            .await
            .expect("write");
    }
    sink.finish().await.expect("finish");
    let manifest = spool.manifest(&out, 0).await.expect("manifest");
    assert!(manifest.data_bytes > 12 << 20, "{}", manifest.data_bytes);
    assert_eq!(
        spooled.load(std::sync::atomic::Ordering::Relaxed),
        manifest.data_bytes
    );
    for p in 0..3 {
        assert!(
            manifest.partitions[p].segments.len() >= 4,
            "{:?}",
            manifest.partitions[p]
        );
        let got = read(&spool, &out, 0, p).await;
        let want = expected(p as i32, 0..(batches / 3 * rows) as i64);
        assert!(rows_of(&got) == want, "partition {p} differs");
    }
}

async fn an_attempt_without_output_commits_an_empty_manifest(at: Where) {
    let store = Store::new(at, Some(SpoolCompression::Lz4));
    let spool = store.spool();
    let out = output("q2", 2, 0);
    let sink: Box<dyn ExchangeSink> = Box::new(spool.create_sink(&out, 0, 3).expect("sink"));
    sink.finish().await.expect("finish");
    let manifest = spool.manifest(&out, 0).await.expect("manifest");
    assert_eq!((manifest.rows, manifest.data_bytes), (0, 0));
    assert_eq!(manifest.partitions.len(), 3);
    assert_eq!(store.objects("q2/").await, ["q2/2/0/0/manifest"]);
    for p in 0..3 {
        assert!(read(&spool, &out, 0, p).await.is_empty());
    }
}

async fn an_unfinished_attempt_is_never_readable(at: Where) {
    let store = Store::new(at, Some(SpoolCompression::Lz4));
    let spool = store.small_segments();
    let dropped = output("q3", 1, 0);
    let aborted = output("q3", 1, 1);
    let mut sink = spool.create_sink(&dropped, 0, 2).expect("sink");
    let mut other: Box<dyn ExchangeSink> =
        Box::new(spool.create_sink(&aborted, 0, 2).expect("sink"));
    for i in 0..40 {
        sink.write(i % 2, batch(0, i as i64 * 100, 100))
            .await
            .unwrap();
        other
            .write(i % 2, batch(0, i as i64 * 100, 100))
            .await
            .unwrap();
    }
    // Segments were written, but nothing committed.
    assert!(
        sink.spooled_bytes()
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    drop(sink);
    other.abort(Arc::new(DataFusionError::Execution("task failed".into())));

    for out in [&dropped, &aborted] {
        let err = collect(spool.read(out, 0, 0, schema()).unwrap())
            .await
            .unwrap_err();
        let spool_err = spool_error(&err);
        assert!(
            matches!(spool_err, SpoolError::NotCommitted { .. }),
            "{spool_err}"
        );
        assert_eq!(spool_err.sqlstate(), "58030");
        assert!(spool_err.to_string().contains("manifest"), "{spool_err}");
    }
    // What they wrote is deleted in the background.
    store.wait_until_empty("q3/").await;
}

async fn each_committed_attempt_reads_its_own_data(at: Where) {
    let store = Store::new(at, Some(SpoolCompression::Zstd));
    let spool = store.spool();
    let out = output("q4", 1, 2);
    commit(&spool, &out, 0, &[(0, 0, 10), (1, 0, 5)]).await;
    commit(&spool, &out, 1, &[(0, 1000, 7), (1, 2000, 3)]).await;
    assert_eq!(rows_of(&read(&spool, &out, 0, 0).await), expected(0, 0..10));
    assert_eq!(
        rows_of(&read(&spool, &out, 1, 0).await),
        expected(0, 1000..1007)
    );
    assert_eq!(
        rows_of(&read(&spool, &out, 1, 1).await),
        expected(1, 2000..2003)
    );
    assert_eq!(spool.manifest(&out, 1).await.unwrap().attempt, 1);

    // The source reads the attempt the scheduler chose; an unknown task is an error.
    let source = SpoolSource {
        spool: spool.clone(),
        attempts: [((1, 2), 1)].into(),
    };
    let got = collect(source.read(&out, 1, schema()).unwrap())
        .await
        .unwrap();
    assert_eq!(rows_of(&got), expected(1, 2000..2003));
    assert!(source.read(&output("q4", 1, 0), 0, schema()).is_err());
}

async fn release_query_deletes_everything_of_the_query(at: Where) {
    let store = Store::new(at, Some(SpoolCompression::Lz4));
    let spool = store.small_segments();
    spool.journal_begin("coordinator", "q5").await.unwrap();
    for (stage, task) in [(1, 0), (1, 1), (2, 0)] {
        commit(
            &spool,
            &output("q5", stage, task),
            0,
            &[(0, 0, 500), (1, 0, 500)],
        )
        .await;
    }
    commit(&spool, &output("q5.sq1", 1, 0), 0, &[(0, 0, 5)]).await;
    let mut result = ResultBuffer::new(spool.clone(), "q5", 0, schema(), 0);
    result.push(batch(0, 0, 2000)).await.unwrap();
    assert!(result.spilled_bytes() > 0);
    // (On S3 the result's spill is still in the upload buffer: it becomes an object when closed.)
    assert!(store.objects("q5/").await.len() >= 6);

    spool.release_query("q5").await.expect("release");
    assert_eq!(store.objects("q5/").await, Vec::<String>::new());
    assert!(store.objects("_journal/").await.is_empty());
    // Another query key is another query.
    assert_eq!(store.objects("q5.sq1/").await.len(), 2);
    let err = collect(spool.read(&output("q5", 1, 0), 0, 0, schema()).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(spool_error(&err), SpoolError::NotCommitted { .. }),
        "{err}"
    );
    drop(result);
    // Releasing again, or a query that never spooled, is fine.
    spool.release_query("q5").await.expect("release again");
    spool.release_query("never").await.expect("release unknown");
    if let (Where::Local, Some(dir)) = (at, &store._dir) {
        assert!(
            !dir.path().join("q5").exists(),
            "the query directory itself is gone"
        );
    }
}

async fn recover_cleans_what_a_crashed_coordinator_journaled(at: Where) {
    let store = Store::new(at, Some(SpoolCompression::Lz4));
    {
        let crashed = store.spool();
        crashed.journal_begin("coord-1", "lost").await.unwrap();
        commit(&crashed, &output("lost", 1, 0), 0, &[(0, 0, 10)]).await;
        crashed.journal_begin("coord-1", "lost.sq1").await.unwrap();
        crashed.journal_begin("coord-2", "elsewhere").await.unwrap();
        commit(&crashed, &output("elsewhere", 1, 0), 0, &[(0, 0, 10)]).await;
        // The process dies here: nothing released.
    }
    let restarted = store.spool();
    assert_eq!(restarted.recover("coord-1").await.unwrap(), 2);
    assert!(store.objects("lost/").await.is_empty());
    assert!(store.objects("_journal/coord-1/").await.is_empty());
    // Another coordinator's queries are its own business.
    assert_eq!(store.objects("elsewhere/").await.len(), 2);
    assert_eq!(
        store.objects("_journal/").await,
        ["_journal/coord-2/elsewhere"]
    );
    assert_eq!(restarted.recover("coord-1").await.unwrap(), 0);
    // A node that never journaled anything.
    assert_eq!(restarted.recover("coord-9").await.unwrap(), 0);
    // Releasing a query journaled by another process finds its entry.
    restarted.release_query("elsewhere").await.unwrap();
    assert!(
        store.objects("").await.is_empty(),
        "{:?}",
        store.objects("").await
    );
}

async fn sweep_deletes_only_expired_queries(at: Where) {
    let store = Store::new(at, Some(SpoolCompression::None));
    let spool = store.spool();
    spool.journal_begin("coord", "old").await.unwrap();
    commit(&spool, &output("old", 1, 0), 0, &[(0, 0, 10)]).await;
    // Older than 2 s by the time of the sweep, whatever the store's timestamp resolution (S3: 1 s).
    tokio::time::sleep(Duration::from_millis(3500)).await;
    spool.journal_begin("coord", "new").await.unwrap();
    commit(&spool, &output("new", 1, 0), 0, &[(0, 0, 10)]).await;

    assert_eq!(spool.sweep(Duration::from_secs(3600)).await.unwrap(), 0);
    assert_eq!(store.objects("old/").await.len(), 2);
    assert_eq!(spool.sweep(Duration::from_secs(2)).await.unwrap(), 1);
    assert!(store.objects("old/").await.is_empty());
    assert_eq!(store.objects("new/").await.len(), 2);
    assert_eq!(store.objects("_journal/").await, ["_journal/coord/new"]);
    assert_eq!(spool.sweep(Duration::ZERO).await.unwrap(), 1);
    assert!(
        store.objects("").await.is_empty(),
        "{:?}",
        store.objects("").await
    );
}

async fn result_buffer_spills_past_its_memory_bound(at: Where) {
    let store = Store::new(at, Some(SpoolCompression::Lz4));
    let spool = store.small_segments();
    let mut buffer = ResultBuffer::new(spool.clone(), "q8", 1, schema(), 20_000);
    for i in 0..100 {
        buffer.push(batch(0, i * 100, 100)).await.unwrap();
        if i == 2 {
            assert_eq!(buffer.spilled_bytes(), 0, "3 batches fit in memory");
        }
    }
    assert_eq!(buffer.rows(), 10_000);
    assert!(buffer.spilled_bytes() > 0);
    let stream = buffer.into_stream().await.unwrap();
    assert_eq!(store.objects("q8/").await, ["q8/result/1/data.arrow"]);
    let got = collect(stream).await.unwrap();
    assert_eq!(rows_of(&got), expected(0, 0..10_000));
    // Read back and dropped: the spill is deleted, and on a local disk the query's directories
    // above it too (a server left one per spilled query).
    store.wait_until_empty("q8/").await;
    if matches!(at, Where::Local) {
        store.wait_until_gone("q8/").await;
    }

    // Within the bound nothing touches the store.
    let mut small = ResultBuffer::new(spool, "q8b", 0, schema(), 1 << 20);
    small.push(batch(0, 0, 10)).await.unwrap();
    assert_eq!(small.spilled_bytes(), 0);
    let got = collect(small.into_stream().await.unwrap()).await.unwrap();
    assert_eq!(rows_of(&got), expected(0, 0..10));
    assert!(store.objects("").await.is_empty());
}

/// Several bases, one local and one S3: tasks spread over both, readers find each without listing,
/// and release cleans both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_spread_over_several_bases() {
    let local = Store::new(Where::Local, Some(SpoolCompression::Lz4));
    let s3 = Store::new(Where::S3, Some(SpoolCompression::Lz4));
    let config = ExchangeConfig {
        base_directories: vec![
            local.config.base_directories[0].clone(),
            s3.config.base_directories[0].clone(),
        ],
        s3: s3.config.s3.clone(),
        ..ExchangeConfig::default()
    };
    let spool = Spool::new(&config).unwrap();
    assert_eq!(spool.base_urls(), config.base_directories);
    for task in 0..8 {
        commit(&spool, &output("q9", 1, task), 0, &[(0, task as i64, 3)]).await;
    }
    let (on_local, on_s3) = (local.objects("q9/").await, s3.objects("q9/").await);
    assert!(
        !on_local.is_empty() && !on_s3.is_empty(),
        "{on_local:?} {on_s3:?}"
    );
    assert_eq!(on_local.len() + on_s3.len(), 16);
    let reader = Spool::new(&config).unwrap();
    for task in 0..8 {
        let got = read(&reader, &output("q9", 1, task), 0, 0).await;
        assert_eq!(rows_of(&got), expected(0, task as i64..task as i64 + 3));
    }
    spool.release_query("q9").await.unwrap();
    assert!(local.objects("q9/").await.is_empty() && s3.objects("q9/").await.is_empty());
}

/// Parses `text` as `config.toml` does: `[exchange]` through serde, errors with the key path.
fn parse(text: &str) -> Result<ExchangeConfig, String> {
    #[derive(serde::Deserialize)]
    struct File {
        exchange: ExchangeConfig,
    }
    let table: toml::Table = text.parse().expect("toml");
    serde_path_to_error::deserialize::<_, File>(toml::Value::Table(table))
        .map(|f| f.exchange)
        .map_err(|e| format!("key `{}`: {}", e.path(), e.inner()))
}

#[test]
fn config_keys_defaults_and_errors() {
    let config = parse(
        "[exchange]\nbase_directories = [\"file:///var/spool/t\", \"s3://bucket/pre/fix/\"]\n\
         endpoint = \"http://127.0.0.1:9000\"\naccess_key_id = \"AKIA\"\n\
         secret_access_key = \"wJalrXUtnFEMI\"\ncompression = \"ZSTD\"\nmax_age_s = 60\n",
    )
    .unwrap();
    assert_eq!(config.base_directories.len(), 2);
    assert_eq!(config.s3.region, "us-east-1");
    assert_eq!(config.s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(config.compression, Some(SpoolCompression::Zstd));
    assert_eq!(config.max_age_s, 60);
    assert!(!format!("{config:?}").contains("wJalrXUtnFEMI"));
    assert_eq!(parse("[exchange]\n").unwrap(), ExchangeConfig::default());
    assert_eq!(ExchangeConfig::default().compression, None);
    assert_eq!(ExchangeConfig::default().max_age_s, 86_400);

    for (text, key, reason) in [
        (
            "base_directories = [\"ftp://h/x\"]",
            "exchange.base_directories",
            "unsupported scheme \"ftp\"",
        ),
        (
            "base_directories = [\"file:///ok\", \"s3:///prefix\"]",
            "exchange.base_directories",
            "entry 1",
        ),
        (
            "base_directories = [\"s3://\"]",
            "exchange.base_directories",
            "names no bucket",
        ),
        (
            "base_directories = \"file:///x\"",
            "exchange.base_directories",
            "expected an array",
        ),
        (
            "regoin = \"eu\"",
            "exchange.regoin",
            "unknown field `regoin`",
        ),
        (
            "compression = \"snappy\"",
            "exchange.compression",
            "expected \"lz4\"",
        ),
        ("max_age_s = 0", "exchange.max_age_s", "integer >= 1"),
        (
            "endpoint = \"localhost:9000\"",
            "exchange.endpoint",
            "http://",
        ),
    ] {
        let msg = parse(&format!("[exchange]\n{text}\n")).unwrap_err();
        assert!(
            msg.starts_with(&format!("key `{key}`")) && msg.contains(reason),
            "{text}: {msg}"
        );
    }

    // Secrets (or what might be one) are never echoed.
    for text in [
        "secret_access_key = 918273645",
        "max_age_s = \"918273645\"",
        "region = 918273645",
        "base_directories = [\"s3://AKIA:918273645@bucket/x\"]",
    ] {
        let msg = parse(&format!("[exchange]\n{text}\n")).unwrap_err();
        assert!(msg.starts_with("key `exchange."), "{text}: {msg}");
        assert!(!msg.contains("918273645"), "{text}: {msg}");
    }
}

#[test]
fn spool_new_names_the_key_of_a_bad_config() {
    for (config, key) in [
        (ExchangeConfig::default(), "exchange.base_directories"),
        (
            ExchangeConfig {
                base_directories: vec!["hdfs://nn/x".into()],
                ..ExchangeConfig::default()
            },
            "exchange.base_directories",
        ),
        (
            ExchangeConfig {
                base_directories: vec!["file:///tmp/x".into()],
                max_age_s: 0,
                ..ExchangeConfig::default()
            },
            "exchange.max_age_s",
        ),
    ] {
        match Spool::new(&config) {
            Err(e @ SpoolError::Config { .. }) => {
                let SpoolError::Config { key: k, .. } = &e else {
                    unreachable!()
                };
                assert_eq!(k, key, "{e}");
                assert_eq!(e.sqlstate(), "F0000");
            }
            other => panic!("{config:?}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_errors_name_the_location_and_never_the_secret() {
    let moto = Moto::shared();
    let secret = "Sup3rS3cretKeyNeverPrinted";
    let config = ExchangeConfig {
        base_directories: vec!["s3://no-such-bucket-for-spool/base".into()],
        s3: S3Settings {
            secret_access_key: Some(Secret::new(secret)),
            ..moto_settings(moto)
        },
        ..ExchangeConfig::default()
    };
    assert!(!format!("{config:?}").contains(secret));
    let spool = Spool::new(&config).unwrap();
    assert!(!format!("{spool:?}").contains(secret));
    let err = spool.journal_begin("coord", "q").await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains(secret), "{text}");
    assert!(
        text.contains("s3://no-such-bucket-for-spool/base/_journal/coord/q"),
        "{text}"
    );
    assert!(matches!(err, SpoolError::Storage { .. }), "{text}");
    assert_eq!(err.sqlstate(), "58030");
    // Through a sink, the error arrives as a DataFusionError carrying the SpoolError.
    let mut sink: Box<dyn ExchangeSink> =
        Box::new(spool.create_sink(&output("q", 1, 0), 0, 1).unwrap());
    sink.write(0, batch(0, 0, 10)).await.unwrap();
    let err = sink.finish().await.unwrap_err();
    assert_eq!(spool_error(&err).sqlstate(), "58030");
    assert!(!format!("{err} {err:?}").contains(secret));
}
