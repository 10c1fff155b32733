//! The streaming exchange between processes: a consumer task reads a producer task's output partition
//! from the node that ran the producer, with an Arrow Flight `do_get` (ticket = query, stage, task,
//! partition). The producer's node serves the read from its in-memory exchange, so buffering and
//! back-pressure are the [`crate::memory`] ones, extended over the network by HTTP/2 flow control: a
//! reader that stops reading stops the producer once its partition buffer is full.
//!
//! Errors cross the network whole: a producer's error travels as a gRPC status carrying its SQLSTATE in
//! the `x-tributary-sqlstate` metadata key and arrives as a [`RemoteError`]; a node that cannot be
//! reached (killed, network gone) arrives as a [`RemoteError`] with SQLSTATE [`NODE_LOST_SQLSTATE`]
//! naming the node.
//!
//! Tickets and the node RPC version are protobuf messages ([`messages`]).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_flight::encode::{DictionaryHandling, FlightDataEncoderBuilder};
use arrow_flight::error::FlightError;
use arrow_flight::{FlightClient, FlightData};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use parking_lot::Mutex;
use tonic::transport::{Channel, Endpoint};

use crate::{ExchangeSource, TaskOutputId};

pub mod messages;

pub use messages::{
    NODE_RPC_VERSION, ReadTicket, RequestError, RequestHeader, VERSION_MISMATCH_SQLSTATE,
    decode_request,
};

/// gRPC metadata key holding the SQLSTATE of an error that crossed a process boundary.
pub const SQLSTATE_METADATA: &str = "x-tributary-sqlstate";

/// SQLSTATE of a query that lost a node it depended on (PostgreSQL's `system_error` class 58: an error
/// external to the database proper; Trino reports `REMOTE_HOST_GONE`).
pub const NODE_LOST_SQLSTATE: &str = "58000";

/// Largest gRPC message either side accepts (plan fragments can be large; Flight data is split into
/// messages of at most 2 MiB by the encoder).
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// HTTP/2 receive window of one `do_get` stream (bytes): how much of one partition may be in flight
/// or unread on the consumer's side before the producer's node stops sending it (hyper's default).
pub const STREAM_WINDOW_BYTES: u32 = 2 << 20;

/// HTTP/2 receive window of a whole connection (bytes): the protocol's largest, so that only the
/// per-stream windows apply. Every read from one node shares one connection; with a connection window
/// of a few stream windows (hyper's default is 5 MiB), a few partitions that a consumer is not reading
/// yet (a join's probe side while its build side loads) would hold the whole window and stall the
/// partitions it is waiting for: a distributed deadlock (TPC-H q18 at scale 1 hung that way).
pub const CONNECTION_WINDOW_BYTES: u32 = (1 << 31) - 1;

/// Largest HTTP/2 frame a node accepts on its reads (bytes): Flight messages are up to 2 MiB, and
/// HTTP/2's default 16 KiB frames cut each into 128 frames, each framed, copied and flow-controlled.
pub const MAX_FRAME_BYTES: u32 = 1 << 20;

/// Maps an error to the `(SQLSTATE, message)` a client would see, so the error keeps its code when it
/// crosses to another node. Provided by the front end, which owns the SQLSTATE mapping.
pub type ErrorClassifier = Arc<dyn Fn(&DataFusionError) -> (String, String) + Send + Sync>;

/// An error raised on another node: its SQLSTATE and message, as that node's front end would have
/// reported them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    /// Five-character SQLSTATE.
    pub sqlstate: String,
    /// The message, without any "External error:" prefixes.
    pub message: String,
    /// The node id when the error says that node was lost (set on the node that saw it go).
    pub lost_node: Option<String>,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RemoteError {}

impl RemoteError {
    /// The error of a node that could not be reached or stopped answering.
    pub fn node_lost(node: &str, address: &str, detail: &str) -> Self {
        Self {
            sqlstate: NODE_LOST_SQLSTATE.into(),
            message: format!("worker {node} ({address}) is unreachable or was lost: {detail}"),
            lost_node: Some(node.to_string()),
        }
    }

    /// Wraps the error as a DataFusion error.
    pub fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }
}

/// A gRPC status carrying `err`'s SQLSTATE and message (see [`status_to_error`]).
pub fn error_to_status(err: &DataFusionError, classify: &ErrorClassifier) -> tonic::Status {
    let (sqlstate, message) = classify(err);
    status_with_sqlstate(tonic::Code::Internal, &sqlstate, message)
}

/// A gRPC status of `code` carrying `sqlstate` in the [`SQLSTATE_METADATA`] key (left out when it is
/// not a valid header value).
pub fn status_with_sqlstate(code: tonic::Code, sqlstate: &str, message: String) -> tonic::Status {
    let mut metadata = tonic::metadata::MetadataMap::new();
    if let Ok(value) = sqlstate.parse() {
        metadata.insert(SQLSTATE_METADATA, value);
    }
    tonic::Status::with_metadata(code, message, metadata)
}

/// The error a status from `node` at `address` stands for: the remote error with its SQLSTATE when the
/// node sent one, otherwise the node is treated as lost.
pub fn status_to_error(status: &tonic::Status, node: &str, address: &str) -> RemoteError {
    match status
        .metadata()
        .get(SQLSTATE_METADATA)
        .and_then(|v| v.to_str().ok())
    {
        Some(sqlstate) => RemoteError {
            sqlstate: sqlstate.to_string(),
            message: status.message().to_string(),
            lost_node: None,
        },
        None => RemoteError::node_lost(node, address, status.message()),
    }
}

/// Converts a Flight client error from `node` into a DataFusion error.
pub fn flight_error(err: FlightError, node: &str, address: &str) -> DataFusionError {
    match err {
        FlightError::Tonic(status) => status_to_error(&status, node, address).into_datafusion(),
        other => RemoteError::node_lost(node, address, &other.to_string()).into_datafusion(),
    }
}

/// Rows per Flight message that [`serve_read`] gathers up to: DataFusion's default batch size.
pub const FLIGHT_BATCH_ROWS: usize = 8192;

/// `batches` with the small batches already waiting merged, up to `target_rows` rows per batch
/// (arrow's `BatchCoalescer`), without ever waiting for more: when the input has nothing ready,
/// what was gathered goes out at once; a batch of `target_rows` or more passes whole, in order. A hash repartition's output partition arrives as slices of its input
/// batches (2048 rows at 4 partitions): a reader that keeps up gets them as they come, one that
/// lags gets them as fewer, fuller Flight messages (less per-message framing, encoding and decoding).
pub fn coalesce_ready(
    batches: SendableRecordBatchStream,
    target_rows: usize,
) -> impl futures::Stream<Item = Result<RecordBatch>> + Send + 'static {
    use datafusion::arrow::compute::BatchCoalescer;
    use std::task::Poll;

    /// Makes what `c` holds a completed batch.
    fn flush(c: &mut Option<BatchCoalescer>) -> Result<()> {
        if let Some(c) = c.as_mut() {
            c.finish_buffered_batch()?;
        }
        Ok(())
    }

    let mut input = batches.fuse();
    let mut coalescer: Option<BatchCoalescer> = None;
    // A batch of `target_rows` or more, passed on whole once what was gathered before it is out.
    let mut whole: Option<RecordBatch> = None;
    let mut ended = false;
    futures::stream::poll_fn(move |cx| {
        loop {
            if let Some(c) = coalescer.as_mut()
                && let Some(batch) = c.next_completed_batch()
            {
                return Poll::Ready(Some(Ok(batch)));
            }
            if let Some(batch) = whole.take() {
                return Poll::Ready(Some(Ok(batch)));
            }
            if ended {
                return Poll::Ready(None);
            }
            match input.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(batch))) if batch.num_rows() >= target_rows => {
                    if let Err(e) = flush(&mut coalescer) {
                        return Poll::Ready(Some(Err(e)));
                    }
                    whole = Some(batch);
                }
                Poll::Ready(Some(Ok(batch))) => {
                    let c = coalescer
                        .get_or_insert_with(|| BatchCoalescer::new(batch.schema(), target_rows));
                    if let Err(e) = c.push_batch(batch) {
                        return Poll::Ready(Some(Err(e.into())));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    // What was gathered before the error is dropped with it: the read fails.
                    coalescer = None;
                    ended = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    ended = true;
                    if let Err(e) = flush(&mut coalescer) {
                        return Poll::Ready(Some(Err(e)));
                    }
                }
                Poll::Pending => {
                    if coalescer.as_ref().is_none_or(|c| c.is_empty()) {
                        return Poll::Pending;
                    }
                    if let Err(e) = flush(&mut coalescer) {
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
        }
    })
}

/// Serves a `do_get`: streams the ticket's partition from `source` (this node's exchange) as Flight
/// data, batches already waiting merged ([`coalesce_ready`]). Dictionaries are sent as dictionaries
/// so the reader's schema matches the plan's.
pub fn serve_read(
    source: &dyn ExchangeSource,
    ticket: &ReadTicket,
    classify: ErrorClassifier,
) -> std::result::Result<
    BoxStream<'static, std::result::Result<FlightData, tonic::Status>>,
    tonic::Status,
> {
    let stream = source
        .read(
            &ticket.output(),
            ticket.partition as usize,
            Arc::new(Schema::empty()),
        )
        .map_err(|e| error_to_status(&e, &classify))?;
    let batches = coalesce_ready(stream, FLIGHT_BATCH_ROWS)
        .map_err(move |e| FlightError::Tonic(Box::new(error_to_status(&e, &classify))));
    let data = FlightDataEncoderBuilder::new()
        .with_dictionary_handling(DictionaryHandling::Resend)
        .build(batches)
        .map_err(|e| match e {
            FlightError::Tonic(status) => *status,
            other => tonic::Status::internal(other.to_string()),
        });
    Ok(data.boxed())
}

/// gRPC metadata key carrying a node's [`NodeSecret`] on every node RPC and exchange read.
pub const SECRET_METADATA: &str = "authorization";

/// The secret every node of a cluster shares (`[node] shared_secret`, Trino's
/// `internal-communication.shared-secret`): sent as `authorization: Bearer SECRET` on every request
/// between nodes and required on every request a node serves, so only nodes of the cluster can
/// announce themselves, start tasks or read task output. Never printed: `Debug` shows `NodeSecret(***)`.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeSecret(String);

impl NodeSecret {
    /// The secret `value`; `None` when it is empty.
    pub fn new(value: impl Into<String>) -> Option<Self> {
        let value = value.into();
        (!value.is_empty()).then_some(Self(value))
    }

    /// The `authorization` header value carrying it.
    fn header(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether `metadata` carries this secret. Compares in time independent of where the values
    /// differ, so a peer cannot guess the secret byte by byte from response times.
    pub fn accepts(&self, metadata: &tonic::metadata::MetadataMap) -> bool {
        let Some(given) = metadata.get(SECRET_METADATA) else {
            return false;
        };
        let expected = self.header();
        let (a, b) = (given.as_bytes(), expected.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for NodeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeSecret(***)")
    }
}

/// Mutual TLS between the nodes of a cluster (`[node] tls_ca_file`, `tls_cert_file`,
/// `tls_key_file`): every node serves its RPC with its certificate and accepts only peers whose
/// certificate the cluster's CA signed; every node connects with its certificate and checks the
/// peer's against the CA and the address it dialed (a node certificate names its RPC host as a
/// subject alternative name, an IP address or a DNS name). PEM contents, read once at startup.
#[derive(Clone)]
pub struct NodeTls {
    /// The cluster's CA certificate(s).
    pub ca_pem: Vec<u8>,
    /// This node's certificate chain, its own first.
    pub cert_pem: Vec<u8>,
    /// This node's private key.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeTls(***)")
    }
}

impl NodeTls {
    /// The server side: this node's identity, client certificates required and checked against the
    /// CA (a peer without one fails the handshake).
    pub fn server_config(&self) -> tonic::transport::ServerTlsConfig {
        // tonic's TLS server builds on the process's default rustls provider: ring, as everywhere
        // in this workspace.
        let _ = rustls::crypto::ring::default_provider().install_default();
        tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(
                &self.cert_pem,
                &self.key_pem,
            ))
            .client_ca_root(tonic::transport::Certificate::from_pem(&self.ca_pem))
    }

    /// The client side: the CA as the only trust root, and this node's identity.
    pub fn client_config(&self) -> tonic::transport::ClientTlsConfig {
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca_pem))
            .identity(tonic::transport::Identity::from_pem(
                &self.cert_pem,
                &self.key_pem,
            ))
    }
}

/// gRPC channels to other nodes by address, created lazily and shared by every read and RPC.
#[derive(Debug, Default)]
pub struct Channels {
    channels: Mutex<HashMap<String, Channel>>,
    /// Sent with every request when set.
    secret: Option<NodeSecret>,
    /// Connections use TLS with these when set.
    tls: Option<Arc<NodeTls>>,
}

impl Channels {
    /// An empty cache whose requests carry no secret, over plain connections.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// An empty cache whose requests carry `secret` (none when `None`), over mutual TLS when `tls`
    /// is set (plain connections otherwise).
    pub fn with_security(secret: Option<NodeSecret>, tls: Option<Arc<NodeTls>>) -> Arc<Self> {
        Arc::new(Self {
            channels: Mutex::default(),
            secret,
            tls,
        })
    }

    /// The secret sent with every request, if any.
    pub fn secret(&self) -> Option<&NodeSecret> {
        self.secret.as_ref()
    }

    /// The TLS identity and CA connections use, if any.
    pub fn tls(&self) -> Option<&Arc<NodeTls>> {
        self.tls.as_ref()
    }

    /// The channel to `address` (`host:port`); connects on first use. Errors on an unparsable address.
    pub fn get(&self, address: &str) -> Result<Channel> {
        if let Some(c) = self.channels.lock().get(address) {
            return Ok(c.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}")).map_err(|e| {
            DataFusionError::Configuration(format!("bad node address {address}: {e}"))
        })?;
        if let Some(tls) = &self.tls {
            endpoint = endpoint.tls_config(tls.client_config()).map_err(|e| {
                DataFusionError::Configuration(format!("node TLS for {address}: {e}"))
            })?;
        }
        let endpoint = endpoint
            .connect_timeout(std::time::Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_adaptive_window(false)
            .initial_stream_window_size(STREAM_WINDOW_BYTES)
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
            .max_frame_size(MAX_FRAME_BYTES)
            .http2_keep_alive_interval(std::time::Duration::from_secs(5))
            .keep_alive_timeout(std::time::Duration::from_secs(10));
        let channel = endpoint.connect_lazy();
        self.channels
            .lock()
            .insert(address.to_string(), channel.clone());
        Ok(channel)
    }

    /// A Flight client over the channel to `address`, accepting messages up to [`MAX_MESSAGE_BYTES`]
    /// and sending the secret, if any. Errors on an unparsable address, or a secret that is not a
    /// valid header value (control characters).
    pub fn client(&self, address: &str) -> Result<FlightClient> {
        let inner =
            arrow_flight::flight_service_client::FlightServiceClient::new(self.get(address)?)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let mut client = FlightClient::new_from_inner(inner);
        if let Some(secret) = &self.secret {
            client
                .add_header(SECRET_METADATA, &secret.header())
                .map_err(|e| DataFusionError::Configuration(format!("node shared secret: {e}")))?;
        }
        Ok(client)
    }

    /// Forgets the channel to `address` (after the node was found dead), so a restarted node at the
    /// same address gets a fresh connection.
    pub fn forget(&self, address: &str) {
        self.channels.lock().remove(address);
    }
}

/// Where a task's output lives: the node that runs the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Node id, e.g. `worker-1`.
    pub node: String,
    /// The node's RPC (Flight) address, `host:port`.
    pub address: String,
}

/// An [`ExchangeSource`] for one query that reads each producer task's output from the node running it:
/// this node's own exchange when the task runs here, a Flight `do_get` otherwise.
#[derive(Debug)]
pub struct RoutedSource {
    /// This node's RPC address (locations at it are read locally).
    pub local_address: String,
    /// This node's exchange.
    pub local: Arc<dyn ExchangeSource>,
    /// `(stage, task)` -> the node running that task.
    pub locations: HashMap<(usize, usize), Location>,
    /// Channels to the other nodes (reads send the cluster's secret, if any).
    pub channels: Arc<Channels>,
}

impl ExchangeSource for RoutedSource {
    fn read(
        &self,
        output: &TaskOutputId,
        partition: usize,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream> {
        let Some(location) = self.locations.get(&(output.stage, output.task)) else {
            return self.local.read(output, partition, schema);
        };
        if location.address == self.local_address {
            return self.local.read(output, partition, schema);
        }
        let ticket = ReadTicket::new(output, partition, &self.local_address);
        let mut client = self.channels.client(&location.address)?;
        let location = location.clone();
        let read = async move {
            let node = location.node.clone();
            let address = location.address.clone();
            let stream = client
                .do_get(ticket.to_ticket())
                .await
                .map_err(|e| flight_error(e, &node, &address))?;
            Ok::<_, DataFusionError>(
                stream.map_err(move |e| flight_error(e, &location.node, &location.address)),
            )
        };
        let stream = futures::stream::once(read).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int32Array;
    use datafusion::arrow::datatypes::{DataType, Field};

    fn batch(rows: i32) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int32, false)]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(Int32Array::from_iter_values(0..rows))],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn ready_batches_are_merged_and_nothing_waits_for_more() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<RecordBatch>>();
        let schema = batch(1).schema();
        let input: SendableRecordBatchStream = Box::pin(RecordBatchStreamAdapter::new(schema, rx));
        let mut out = Box::pin(coalesce_ready(input, 8192));
        // Five slices waiting: one full batch, then the rest at once.
        for _ in 0..5 {
            tx.unbounded_send(Ok(batch(2048))).unwrap();
        }
        assert_eq!(out.next().await.unwrap().unwrap().num_rows(), 8192);
        assert_eq!(out.next().await.unwrap().unwrap().num_rows(), 2048);
        // A big batch passes whole, after what was gathered before it.
        tx.unbounded_send(Ok(batch(100))).unwrap();
        tx.unbounded_send(Ok(batch(20000))).unwrap();
        assert_eq!(out.next().await.unwrap().unwrap().num_rows(), 100);
        assert_eq!(out.next().await.unwrap().unwrap().num_rows(), 20000);
        // One slice and nothing else ready: it goes out alone, without waiting for the input.
        tx.unbounded_send(Ok(batch(100))).unwrap();
        assert_eq!(out.next().await.unwrap().unwrap().num_rows(), 100);
        // An error ends the stream, rows gathered before it dropped.
        tx.unbounded_send(Ok(batch(10))).unwrap();
        tx.unbounded_send(Err(DataFusionError::Execution("boom".into())))
            .unwrap();
        assert!(out.next().await.unwrap().is_err());
        assert!(out.next().await.is_none());
    }
}
