//! Node RPC over Arrow Flight (gRPC, tonic): every node serves one Flight service.
//!
//! - `do_get(ticket)`: an exchange read of one output partition of a task that ran on this node
//!   ([`tributary_exchange::flight`]).
//! - `do_action("run_tasks", RunTasks)`: decode a stage fragment and start some of its tasks here. The
//!   response is a stream: one `Started` message once the tasks' output sinks exist, then one
//!   [`TaskReport`] per task as it ends. The tasks live as long as that stream: a coordinator that drops
//!   it (query canceled or failed) aborts them, and a coordinator that sees it break knows the worker is
//!   lost.
//! - `do_action("release", Release)`: abort the query's tasks on this node and free its exchange data.
//! - `do_action("announce", Announce)`: a worker's heartbeat (served by the coordinator).
//!
//! Action bodies, reply messages and tickets are protobuf ([`messages`],
//! [`tributary_exchange::flight::messages`]). Every request carries the sender's [`NODE_RPC_VERSION`];
//! a node refuses another version with `FAILED_PRECONDITION` naming both versions and the sender
//! (SQLSTATE [`tributary_exchange::flight::VERSION_MISMATCH_SQLSTATE`]), which the sender reports as
//! the query's (or the heartbeat's) error.

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use bytes::Bytes;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};
pub use tributary_exchange::flight::NODE_RPC_VERSION;
use tributary_exchange::flight::{
    MAX_MESSAGE_BYTES, ReadTicket, RemoteError, SQLSTATE_METADATA, decode_request, error_to_status,
    flight_error, serve_read, status_to_error,
};

use crate::task::{TaskReport, TaskRuntime};
use crate::worker::WorkerPool;

pub mod messages;

use messages::{Announce, Release, RunTasks, RunTasksMessage, RunTasksReply};

/// Action that starts tasks.
pub const RUN_TASKS: &str = "run_tasks";
/// Action that ends a query on a node.
pub const RELEASE: &str = "release";
/// Action of a worker's heartbeat.
pub const ANNOUNCE: &str = "announce";

/// The Flight service of one node.
#[derive(Debug, Clone)]
pub struct NodeService {
    runtime: Arc<TaskRuntime>,
    /// The coordinator's membership (None on workers).
    membership: Option<Arc<WorkerPool>>,
}

impl NodeService {
    /// The service of a node running tasks on `runtime`; a coordinator passes its worker pool so
    /// announcements reach it.
    pub fn new(runtime: Arc<TaskRuntime>, membership: Option<Arc<WorkerPool>>) -> Self {
        Self {
            runtime,
            membership,
        }
    }

    /// Serves this service on `listener` until the process ends. When the node has a shared secret,
    /// every request without it is refused with `UNAUTHENTICATED` before it reaches the service.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> Result<()> {
        let secret = self.runtime.channels.secret().cloned();
        let tls = self.runtime.channels.tls().cloned();
        let server = FlightServiceServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let server = tonic::service::interceptor::InterceptedService::new(
            server,
            move |request: tonic::Request<()>| match &secret {
                Some(s) if !s.accepts(request.metadata()) => Err(Status::unauthenticated(
                    "node RPC refused: missing or wrong cluster shared secret ([node] shared_secret)",
                )),
                _ => Ok(request),
            },
        );
        // `Server::tcp_nodelay` only applies to listeners tonic binds itself; accepted connections
        // need it set here, or every small reply (task reports, the last Flight message of a
        // partition) waits for the peer's delayed ACK: about 40 ms per stage on Linux.
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder
                .tls_config(tls.server_config())
                .map_err(|e| DataFusionError::Configuration(format!("[node] tls: {e}")))?;
        }
        builder
            .add_service(server)
            .serve_with_incoming(incoming)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))
    }

    async fn run_tasks(
        &self,
        body: Bytes,
    ) -> Result<BoxStream<'static, Result<arrow_flight::Result, Status>>, Status> {
        let rt = &self.runtime;
        let request: RunTasks = decode_request(RUN_TASKS, body, &rt.node_id)?;
        let (spec, partitioned, fragment) = request.into_parts();
        let ctx = rt
            .remote_task_context(&spec)
            .map_err(|e| error_to_status(&e, &rt.classify))?;
        let plan = match rt.codec.decode(&fragment, &ctx) {
            Ok(plan) => Ok(plan),
            // The coordinator may have mounted a catalog this node has not read yet: read the
            // catalog directory now and try once more.
            Err(_) if rt.codec.registry().dir().is_some() => {
                if let Err(e) =
                    crate::engine::reload_catalogs(rt.codec.registry(), ctx.runtime_env().as_ref())
                        .await
                {
                    tracing::warn!("cannot read the catalog directory: {e}");
                }
                rt.codec.decode(&fragment, &ctx)
            }
            Err(e) => Err(e),
        }
        .map_err(|e| error_to_status(&e, &rt.classify))?;
        // A file scan of a catalog the coordinator mounted since this node last read the catalog
        // directory decodes without the catalog; its object store would be missing when it runs.
        if rt.codec.registry().dir().is_some()
            && missing_object_store(&plan, &ctx)
            && let Err(e) =
                crate::engine::reload_catalogs(rt.codec.registry(), ctx.runtime_env().as_ref())
                    .await
        {
            tracing::warn!("cannot read the catalog directory: {e}");
        }
        let (plan, partitioning) = if partitioned {
            unwrap_partitioning(plan).map_err(|e| error_to_status(&e, &rt.classify))?
        } else {
            (plan, None)
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        rt.start_tasks(&spec, plan.clone(), partitioning, ctx, tx)
            .map_err(|e| error_to_status(&e, &rt.classify))?;
        let expected = spec.tasks.len();
        let started = futures::stream::once(async { Ok(message(&RunTasksMessage::started())) });
        // The last report carries the instance's operator metrics (all its tasks have ended).
        let reports = tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
            .take(expected)
            .enumerate()
            .map(move |(i, mut r)| {
                if i + 1 == expected {
                    r.operators = crate::operator_metrics::collect(&plan);
                }
                Ok(message(&RunTasksMessage::report(&r)))
            });
        // Dropping the response (the coordinator went away or canceled) aborts the tasks.
        let guard = AbortOnDrop {
            runtime: rt.clone(),
            query: spec.query.clone(),
            done: false,
        };
        Ok(GuardedStream {
            inner: started.chain(reports).boxed(),
            guard,
        }
        .boxed())
    }
}

fn message(reply: &RunTasksMessage) -> arrow_flight::Result {
    arrow_flight::Result {
        body: reply.encode_to_vec().into(),
    }
}

/// A stage fragment whose tasks split their output travels wrapped in the `RepartitionExec` that says
/// how (so its expressions are encoded with the plan); this takes the wrapper off again.
pub fn unwrap_partitioning(
    plan: Arc<dyn ExecutionPlan>,
) -> Result<(Arc<dyn ExecutionPlan>, Option<Partitioning>)> {
    let repartition = plan.downcast_ref::<RepartitionExec>().ok_or_else(|| {
        DataFusionError::Internal("partitioned fragment without its RepartitionExec".into())
    })?;
    Ok((
        repartition.input().clone(),
        Some(repartition.partitioning().clone()),
    ))
}

struct AbortOnDrop {
    runtime: Arc<TaskRuntime>,
    query: String,
    done: bool,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if !self.done {
            self.runtime.release_query(&self.query);
        }
    }
}

struct GuardedStream {
    inner: BoxStream<'static, Result<arrow_flight::Result, Status>>,
    guard: AbortOnDrop,
}

impl Stream for GuardedStream {
    type Item = Result<arrow_flight::Result, Status>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        if let std::task::Poll::Ready(None) = polled {
            // Every task reported: their output stays until read or released.
            self.guard.done = true;
        }
        polled
    }
}

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl FlightService for NodeService {
    type HandshakeStream = Boxed<HandshakeResponse>;
    type ListFlightsStream = Boxed<FlightInfo>;
    type DoGetStream = Boxed<FlightData>;
    type DoPutStream = Boxed<PutResult>;
    type DoExchangeStream = Boxed<FlightData>;
    type DoActionStream = Boxed<arrow_flight::Result>;
    type ListActionsStream = Boxed<ActionType>;

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented("handshake"))
    }

    async fn list_flights(
        &self,
        _request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        Err(Status::unimplemented("list_flights"))
    }

    async fn get_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(Status::unimplemented("get_flight_info"))
    }

    async fn poll_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented("poll_flight_info"))
    }

    async fn get_schema(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        Err(Status::unimplemented("get_schema"))
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let ticket = ReadTicket::from_ticket(request.get_ref(), &self.runtime.node_id)?;
        let stream = serve_read(
            self.runtime.exchange.as_ref(),
            &ticket,
            self.runtime.classify.clone(),
        )?;
        Ok(Response::new(stream))
    }

    async fn do_put(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        Err(Status::unimplemented("do_put"))
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(Status::unimplemented("do_exchange"))
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let action = request.into_inner();
        let node = &self.runtime.node_id;
        match action.r#type.as_str() {
            RUN_TASKS => Ok(Response::new(self.run_tasks(action.body).await?)),
            RELEASE => {
                let release: Release = decode_request(RELEASE, action.body, node)?;
                self.runtime.release_query(&release.query);
                Ok(Response::new(futures::stream::empty().boxed()))
            }
            ANNOUNCE => {
                let Some(pool) = &self.membership else {
                    return Err(Status::failed_precondition("not a coordinator"));
                };
                let a: Announce = decode_request(ANNOUNCE, action.body, node)?;
                if a.leaving {
                    pool.leave(&a.node_id, &a.address);
                } else {
                    pool.heartbeat(&a.node_id, &a.address, a.running_tasks as usize, a.draining);
                    pool.set_task_threads(&a.node_id, a.task_threads as usize);
                }
                Ok(Response::new(futures::stream::empty().boxed()))
            }
            other => Err(Status::unimplemented(format!("action {other}"))),
        }
    }

    async fn list_actions(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        let actions = [RUN_TASKS, RELEASE, ANNOUNCE].map(|a| {
            Ok(ActionType {
                r#type: a.into(),
                description: String::new(),
            })
        });
        Ok(Response::new(futures::stream::iter(actions).boxed()))
    }
}

/// Starts the tasks of `request` on the remote node `node` at `address` and waits until their sinks
/// exist. Returns the stream of their reports (ending after the last one); an `Err` item means the
/// node was lost or refused (a node of another [`NODE_RPC_VERSION`] refuses with a
/// [`RemoteError`] saying so).
pub async fn run_remote_tasks(
    runtime: &TaskRuntime,
    node: &str,
    address: &str,
    request: &RunTasks,
) -> Result<BoxStream<'static, Result<TaskReport>>> {
    let mut client = runtime.channels.client(address)?;
    let mut stream = client
        .do_action(Action {
            r#type: RUN_TASKS.into(),
            body: request.encode_to_vec().into(),
        })
        .await
        .map_err(|e| flight_error(e, node, address))?;
    match stream.next().await {
        Some(Ok(first)) if matches!(reply(&first), Ok(RunTasksReply::Started(_))) => {}
        Some(Ok(_)) => {
            return Err(DataFusionError::Internal(format!(
                "unexpected first message from {node}"
            )));
        }
        Some(Err(e)) => return Err(flight_error(e, node, address)),
        None => {
            return Err(
                RemoteError::node_lost(node, address, "no answer to run_tasks").into_datafusion(),
            );
        }
    }
    let node = node.to_string();
    let address = address.to_string();
    Ok(stream
        .map(move |m| match m {
            Ok(body) => match reply(&body)? {
                RunTasksReply::Report(report) => Ok(report.into()),
                RunTasksReply::Started(_) => Err(DataFusionError::Internal(format!(
                    "bad task report from {node}: a second Started message"
                ))),
            },
            Err(e) => Err(flight_error(e, &node, &address)),
        })
        .boxed())
}

/// The content of one message of a `run_tasks` reply stream.
fn reply(body: &Bytes) -> Result<RunTasksReply> {
    RunTasksMessage::decode(body.clone())
        .map_err(|e| DataFusionError::Internal(format!("bad task report: {e}")))?
        .reply
        .ok_or_else(|| DataFusionError::Internal("bad task report: empty message".into()))
}

/// Tells `address` to drop what it holds of `query` (best effort, in the background).
pub fn release_remote(runtime: &TaskRuntime, address: &str, query: &str) {
    let Ok(mut client) = runtime.channels.client(address) else {
        return;
    };
    let body = Release::new(&runtime.node_id, query).encode_to_vec().into();
    tokio::spawn(async move {
        let _ = client
            .do_action(Action {
                r#type: RELEASE.into(),
                body,
            })
            .await;
    });
}

/// A worker's heartbeat loop: announces `runtime`'s node to the coordinator every `interval`, forever.
/// Failures are logged and retried (the coordinator may start later or restart).
///
/// Meant to run on its own thread and runtime ([`spawn_heartbeats`]): a worker busy with many tasks
/// must still be heard, or the coordinator would declare it dead.
pub async fn heartbeat_loop(
    runtime: Arc<TaskRuntime>,
    coordinator: String,
    interval: std::time::Duration,
) {
    // Own channels: their connection tasks live on this loop's runtime.
    let channels = tributary_exchange::flight::Channels::with_security(
        runtime.channels.secret().cloned(),
        runtime.channels.tls().cloned(),
    );
    let mut announced = false;
    // Whether the current run of failures was logged (the first failure of each run is).
    let mut failure_logged = false;
    loop {
        let result = announce(&runtime, &channels, &coordinator, false).await;
        match result {
            Ok(()) if !announced => {
                tracing::info!(coordinator, "announced to the coordinator");
                announced = true;
                failure_logged = false;
            }
            Ok(()) => {}
            Err(e) => {
                if announced {
                    tracing::warn!(coordinator, "heartbeat failed: {e}");
                } else if !failure_logged {
                    tracing::warn!(
                        coordinator,
                        "cannot announce to the coordinator (retrying): {e}"
                    );
                }
                failure_logged = true;
                announced = false;
                channels.forget(&coordinator);
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// Sends one announcement of this node to `coordinator`: a heartbeat (saying whether the node is
/// draining), or with `leaving` the last one of a drained node.
pub async fn announce(
    runtime: &TaskRuntime,
    channels: &tributary_exchange::flight::Channels,
    coordinator: &str,
    leaving: bool,
) -> Result<()> {
    let mut message = Announce::new(&runtime.node_id, &runtime.address, runtime.running_tasks());
    message.draining = runtime.is_draining();
    message.leaving = leaving;
    message.task_threads = u32::try_from(runtime.task_threads()).unwrap_or(u32::MAX);
    let mut client = channels.client(coordinator)?;
    let mut s = client
        .do_action(Action {
            r#type: ANNOUNCE.into(),
            body: message.encode_to_vec().into(),
        })
        .await
        .map_err(|e| heartbeat_error(e, coordinator))?;
    while s.next().await.is_some() {}
    Ok(())
}

/// The error of a refused or failed heartbeat to the coordinator at `address`: the coordinator's own
/// error when it sent one (a refused [`NODE_RPC_VERSION`] says which versions differ), else the
/// transport's.
fn heartbeat_error(err: FlightError, address: &str) -> DataFusionError {
    match err {
        FlightError::Tonic(status) if status.metadata().contains_key(SQLSTATE_METADATA) => {
            status_to_error(&status, "coordinator", address).into_datafusion()
        }
        other => DataFusionError::External(Box::new(other)),
    }
}

/// Runs [`heartbeat_loop`] on a dedicated thread with its own single-threaded runtime, so heartbeats
/// go out on time however busy the task runtime is.
pub fn spawn_heartbeats(
    runtime: Arc<TaskRuntime>,
    coordinator: String,
    interval: std::time::Duration,
) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || rt.block_on(heartbeat_loop(runtime, coordinator, interval)))?;
    Ok(())
}

/// Whether a file scan in `plan` reads an object store `ctx`'s runtime does not know.
fn missing_object_store(
    plan: &Arc<dyn ExecutionPlan>,
    ctx: &datafusion::execution::TaskContext,
) -> bool {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::datasource::physical_plan::FileScanConfig;
    use datafusion::datasource::source::DataSourceExec;
    let mut missing = false;
    let _ = plan.apply(|node| {
        if let Some(config) = node
            .downcast_ref::<DataSourceExec>()
            .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
            && ctx
                .runtime_env()
                .object_store(&config.object_store_url)
                .is_err()
        {
            missing = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    missing
}
