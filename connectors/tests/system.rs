//! The system catalog reads the engine's live state on every scan.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::prelude::SessionContext;
use parking_lot::Mutex;
use tributary_connectors::Connector;
use tributary_connectors::system::{
    NodeInfo, NodeState, QueryInfo, QueryState, RuntimeInfo, SystemConnector,
};

/// A runtime whose queries can change between scans.
#[derive(Debug, Default)]
struct Runtime {
    queries: Mutex<Vec<QueryInfo>>,
}

impl RuntimeInfo for Runtime {
    fn nodes(&self) -> Vec<NodeInfo> {
        vec![NodeInfo {
            node_id: "coordinator".into(),
            address: "in-process".into(),
            role: "single".into(),
            state: NodeState::Active,
            last_heartbeat_us: 1_700_000_000_000_000,
            running_tasks: 0,
        }]
    }

    fn queries(&self) -> Vec<QueryInfo> {
        self.queries.lock().clone()
    }
}

fn query(id: &str, error: Option<&str>) -> QueryInfo {
    QueryInfo {
        query_id: id.into(),
        state: if error.is_some() {
            QueryState::Failed
        } else {
            QueryState::Finished
        },
        user: "alice".into(),
        query: "SELECT 1".into(),
        created_us: 1_700_000_000_000_000,
        elapsed_ms: 12,
        rows: 1,
        error: error.map(str::to_string),
        retry_policy: "NONE",
        attempts: 1,
        session_pid: Some(100_000),
    }
}

async fn run(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run")
}

fn pretty(batches: &[RecordBatch]) -> String {
    datafusion::arrow::util::pretty::pretty_format_batches(batches)
        .expect("format")
        .to_string()
}

#[tokio::test]
async fn runtime_tables_show_live_state() {
    let runtime = Arc::new(Runtime::default());
    let connector = SystemConnector::new(Arc::clone(&runtime) as Arc<dyn RuntimeInfo>);
    assert_eq!(connector.kind().name(), "system");
    let ctx = SessionContext::new();
    ctx.register_catalog("system", connector.catalog());

    let nodes = run(
        &ctx,
        "SELECT node_id, role, last_heartbeat FROM system.runtime.nodes",
    )
    .await;
    assert_eq!(
        nodes[0].schema().field(2).data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    let text = pretty(&nodes);
    assert!(
        text.contains("coordinator") && text.contains("2023-11-14T22:13:20Z"),
        "{text}"
    );

    let empty = run(&ctx, "SELECT * FROM system.runtime.queries").await;
    assert_eq!(empty.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);

    runtime.queries.lock().push(query("q1", None));
    runtime
        .queries
        .lock()
        .push(query("q2", Some("division by zero")));
    let queries = run(
        &ctx,
        "SELECT query_id, state, error, elapsed_ms FROM system.runtime.queries \
         WHERE error IS NOT NULL",
    )
    .await;
    let text = pretty(&queries);
    assert!(
        text.contains("q2") && text.contains("division by zero"),
        "{text}"
    );
    assert!(!text.contains("q1"), "{text}");
    assert_eq!(queries[0].schema().field(3).data_type(), &DataType::Int64);
}
