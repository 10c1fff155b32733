//! Node RPC versioning, through real node services: a request of another `NODE_RPC_VERSION` (a node
//! of another Tributary release) is refused with `FAILED_PRECONDITION` naming both versions and the
//! sender, and the sending side reports that error itself, not a lost node.

use std::sync::Arc;

use arrow_flight::error::FlightError;
use arrow_flight::{Action, FlightClient};
use bytes::Bytes;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use prost::Message;
use tributary_exchange::TaskOutputId;
use tributary_exchange::flight::{Channels, ReadTicket, RemoteError, VERSION_MISMATCH_SQLSTATE};
use tributary_exec::codec::PlanCodec;
use tributary_exec::engine::default_classifier;
use tributary_exec::rpc::messages::{Announce, Release, RunTasks};
use tributary_exec::rpc::{ANNOUNCE, NODE_RPC_VERSION, NodeService, RELEASE, RUN_TASKS};
use tributary_exec::task::{RuntimeOptions, TaskRuntime, TaskSpec};
use tributary_exec::tracker::QueryTracker;
use tributary_exec::worker::{Heartbeats, WorkerPool};
use tributary_planner::CatalogRegistry;

/// The version a node of the next release would send.
const OTHER: u32 = NODE_RPC_VERSION + 1;

/// The refusal `receiver` answers a request of version [`OTHER`] from `sender` with.
fn refusal(sender: &str, receiver: &str) -> String {
    format!(
        "node RPC version {OTHER} from {sender} is not supported by {receiver} (version \
         {NODE_RPC_VERSION}): run the same Tributary release on every node"
    )
}

/// Starts a node named `node_id` serving node RPC on a free port (a coordinator when `pool` is
/// given); returns its runtime and address.
async fn start_node(node_id: &str, pool: Option<Arc<WorkerPool>>) -> (Arc<TaskRuntime>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let registry = CatalogRegistry::load(None, QueryTracker::new())
        .await
        .unwrap();
    let runtime = TaskRuntime::new(
        node_id.into(),
        address.clone(),
        Arc::new(PlanCodec::new(registry)),
        SessionContext::new(),
        default_classifier(),
        RuntimeOptions::default(),
    );
    tokio::spawn(NodeService::new(runtime.clone(), pool).serve(listener));
    (runtime, address)
}

/// Sends action `kind` with `body` to `client`; returns the status it was refused with.
async fn refused_action(client: &mut FlightClient, kind: &str, body: Vec<u8>) -> tonic::Status {
    let action = Action {
        r#type: kind.into(),
        body: body.into(),
    };
    let error = match client.do_action(action).await {
        Err(e) => e,
        Ok(mut stream) => match stream.next().await {
            Some(Err(e)) => e,
            other => panic!("{kind} of version {OTHER} was accepted: {other:?}"),
        },
    };
    match error {
        FlightError::Tonic(status) => *status,
        other => panic!("{kind}: not a gRPC status: {other}"),
    }
}

fn assert_refused(status: &tonic::Status, sender: &str, receiver: &str) {
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert_eq!(status.message(), refusal(sender, receiver));
}

fn spec() -> TaskSpec {
    TaskSpec {
        query: "q1".into(),
        stage: 1,
        tasks: vec![0],
        stage_tasks: 1,
        output_partitions: 1,
        readers: 1,
        ..TaskSpec::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_refuses_requests_of_another_version() {
    let (coordinator, _) = start_node("coordinator", None).await;
    let (_worker, address) = start_node("worker-7501", None).await;
    let mut client = Channels::new().client(&address).unwrap();

    let mut request = RunTasks::new("coordinator", &spec(), false, Bytes::new());
    request.version = OTHER;
    let status = refused_action(&mut client, RUN_TASKS, request.encode_to_vec()).await;
    assert_refused(&status, "coordinator", "worker-7501");

    let mut release = Release::new("coordinator", "q1");
    release.version = OTHER;
    let status = refused_action(&mut client, RELEASE, release.encode_to_vec()).await;
    assert_refused(&status, "coordinator", "worker-7501");

    let output = TaskOutputId {
        query: "q1".into(),
        stage: 1,
        task: 0,
    };
    let mut ticket = ReadTicket::new(&output, 0, "127.0.0.1:7502");
    ticket.version = OTHER;
    let error = match client.do_get(ticket.to_ticket()).await {
        Err(e) => e,
        Ok(mut stream) => match stream.next().await {
            Some(Err(e)) => e,
            other => panic!("a ticket of version {OTHER} was accepted: {other:?}"),
        },
    };
    let FlightError::Tonic(status) = error else {
        panic!("not a gRPC status: {error}");
    };
    assert_refused(&status, "127.0.0.1:7502", "worker-7501");

    // The coordinator sending it reports the refusal as the query's error, not as a lost worker.
    let err =
        tributary_exec::rpc::run_remote_tasks(&coordinator, "worker-7501", &address, &request)
            .await
            .err()
            .expect("run_tasks of another version started tasks");
    let remote = remote_error(&err);
    assert_eq!(remote.sqlstate, VERSION_MISMATCH_SQLSTATE);
    assert_eq!(remote.lost_node, None);
    assert_eq!(remote.message, refusal("coordinator", "worker-7501"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_refuses_the_heartbeat_of_a_worker_of_another_version() {
    let pool = Arc::new(WorkerPool::cluster(
        "127.0.0.1:7500",
        false,
        Heartbeats::default(),
        QueryTracker::new(),
    ));
    let (_coordinator, address) = start_node("coordinator", Some(pool.clone())).await;
    let mut client = Channels::new().client(&address).unwrap();

    let mut announce = Announce::new("worker-7501", "127.0.0.1:7501", 0);
    announce.version = OTHER;
    let status = refused_action(&mut client, ANNOUNCE, announce.encode_to_vec()).await;
    assert_refused(&status, "worker-7501", "coordinator");
    assert!(
        pool.workers().is_empty(),
        "a worker of another version joined"
    );

    // The same worker of this version joins.
    announce.version = NODE_RPC_VERSION;
    let mut stream = client
        .do_action(Action {
            r#type: ANNOUNCE.into(),
            body: announce.encode_to_vec().into(),
        })
        .await
        .unwrap();
    while let Some(m) = stream.next().await {
        m.unwrap();
    }
    let workers = pool.workers();
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].id, "worker-7501");
    assert_eq!(workers[0].address(), "127.0.0.1:7501");
}

/// The [`RemoteError`] `err` wraps.
fn remote_error(err: &DataFusionError) -> RemoteError {
    match err {
        DataFusionError::External(e) => e
            .downcast_ref::<RemoteError>()
            .cloned()
            .unwrap_or_else(|| panic!("not a remote error: {err}")),
        other => panic!("not a remote error: {other}"),
    }
}
