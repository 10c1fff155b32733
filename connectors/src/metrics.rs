//! Per-catalog source request metrics, in one process-wide registry that a node's `GET /metrics`
//! renders beside the engine's: how long each request to a catalog's source took and which failed.
//!
//! A request is what the connector asks its source for one piece of work: a split's SQL (`query`,
//! `postgres` and `mysql`: from the first poll, connecting included, until the first batch or the
//! end), a Kafka partition's fetch (`fetch`: until its first batch), and each object-store call of a
//! `lake` or `iceberg` catalog (`get`, `get_ranges`, `head`-like `get`s, `list`,
//! `list_with_delimiter`, `put`, `put_multipart`, `copy`, `rename`, `delete`). Metrics run on the node
//! that makes the request: the coordinator for planning-time listings, a worker for its tasks.

use std::fmt;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// The registry the metrics of this module are in (rendered by the node's `GET /metrics`).
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

const LABELS: &[&str] = &["catalog", "connector", "operation"];

/// `tributary_source_request_seconds{catalog, connector, operation}`: time each source request
/// took (see the module doc for where a request starts and ends), failed ones included.
pub static SOURCE_REQUEST_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    let metric = HistogramVec::new(
        HistogramOpts::new(
            "tributary_source_request_seconds",
            "Time of requests to a catalog's source, by catalog, connector and operation",
        )
        .buckets(vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0, 60.0,
        ]),
        LABELS,
    )
    .expect("valid metric");
    let _ = REGISTRY.register(Box::new(metric.clone()));
    metric
});

/// `tributary_source_request_errors_total{catalog, connector, operation}`: source requests that
/// failed (a refused connection, an SQL error, a missing object, a broker error).
pub static SOURCE_REQUEST_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let metric = IntCounterVec::new(
        Opts::new(
            "tributary_source_request_errors_total",
            "Requests to a catalog's source that failed, by catalog, connector and operation",
        ),
        LABELS,
    )
    .expect("valid metric");
    let _ = REGISTRY.register(Box::new(metric.clone()));
    metric
});

/// Registers every metric of this module (a family is rendered once it has a labelled sample).
pub fn init() {
    LazyLock::force(&SOURCE_REQUEST_SECONDS);
    LazyLock::force(&SOURCE_REQUEST_ERRORS);
}

/// Where requests go: a catalog, its connector kind, and the operation.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    catalog: Arc<str>,
    connector: &'static str,
}

impl Source {
    pub(crate) fn new(catalog: &str, connector: crate::ConnectorKind) -> Self {
        Self {
            catalog: catalog.into(),
            connector: connector.name(),
        }
    }

    /// Records one request of `operation` that started at `started`, failed or not.
    pub(crate) fn observe(&self, operation: &str, started: Instant, ok: bool) {
        let labels = [&*self.catalog, self.connector, operation];
        SOURCE_REQUEST_SECONDS
            .with_label_values(&labels)
            .observe(started.elapsed().as_secs_f64());
        if !ok {
            SOURCE_REQUEST_ERRORS.with_label_values(&labels).inc();
        }
    }

    /// Times `request` as one `operation`.
    async fn time<T, E>(
        &self,
        operation: &str,
        request: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let started = Instant::now();
        let result = request.await;
        self.observe(operation, started, result.is_ok());
        result
    }

    /// `stream` (one split's batches) with its request timed as `operation`: from the first poll
    /// until the first batch, the end or an error, whichever comes first. An error after the first
    /// batch counts as a failed request too (its time is not observed twice).
    pub(crate) fn instrument(
        &self,
        operation: &'static str,
        stream: SendableRecordBatchStream,
    ) -> SendableRecordBatchStream {
        Box::pin(TimedStream {
            schema: stream.schema(),
            inner: stream,
            source: self.clone(),
            operation,
            started: None,
            answered: false,
        })
    }
}

struct TimedStream {
    schema: SchemaRef,
    inner: SendableRecordBatchStream,
    source: Source,
    operation: &'static str,
    started: Option<Instant>,
    answered: bool,
}

impl Stream for TimedStream {
    type Item = datafusion::common::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let started = *self.started.get_or_insert_with(Instant::now);
        let next = self.inner.poll_next_unpin(cx);
        if let Poll::Ready(item) = &next {
            let ok = !matches!(item, Some(Err(_)));
            if !self.answered {
                self.answered = true;
                self.source.observe(self.operation, started, ok);
            } else if !ok {
                let labels = [&*self.source.catalog, self.source.connector, self.operation];
                SOURCE_REQUEST_ERRORS.with_label_values(&labels).inc();
            }
        }
        next
    }
}

impl RecordBatchStream for TimedStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

/// An object store whose every request is timed for its catalog ([`Source`]); what a `lake` or
/// `iceberg` catalog reads and writes through. Listing streams count their errors but are not
/// timed (they page on demand).
#[derive(Debug)]
pub(crate) struct TimedStore {
    inner: Arc<dyn ObjectStore>,
    source: Source,
}

impl TimedStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, source: Source) -> Self {
        Self { inner, source }
    }

    fn count_errors<T: Send + 'static>(
        &self,
        operation: &'static str,
        stream: BoxStream<'static, object_store::Result<T>>,
    ) -> BoxStream<'static, object_store::Result<T>> {
        let source = self.source.clone();
        stream
            .inspect(move |item| {
                if item.is_err() {
                    let labels = [&*source.catalog, source.connector, operation];
                    SOURCE_REQUEST_ERRORS.with_label_values(&labels).inc();
                }
            })
            .boxed()
    }
}

impl fmt::Display for TimedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timed({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for TimedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.source
            .time("put", self.inner.put_opts(location, payload, opts))
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.source
            .time(
                "put_multipart",
                self.inner.put_multipart_opts(location, opts),
            )
            .await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.source
            .time("get", self.inner.get_opts(location, options))
            .await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.source
            .time("get_ranges", self.inner.get_ranges(location, ranges))
            .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.count_errors("delete", self.inner.delete_stream(locations))
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.count_errors("list", self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.count_errors("list", self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.source
            .time(
                "list_with_delimiter",
                self.inner.list_with_delimiter(prefix),
            )
            .await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.source
            .time("copy", self.inner.copy_opts(from, to, options))
            .await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.source
            .time("rename", self.inner.rename_opts(from, to, options))
            .await
    }
}
