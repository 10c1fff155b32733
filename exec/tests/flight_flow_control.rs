//! Flow control of the Flight exchange, through a node's own Flight service (`NodeService`): partitions
//! that a consumer opened but is not reading must not stall the other partitions it reads from the
//! same node over the same connection.
//!
//! Every read from one node shares one HTTP/2 connection. With hyper's default 5 MiB connection
//! window, three or four unread partitions (a join's probe side waiting for its build side) held the
//! whole window and the build side's partition never arrived: TPC-H q18 hung at scale 1 on a
//! coordinator with two workers. This test fails (times out) if the connection window shrinks back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use tributary_exchange::flight::{Channels, Location, RoutedSource};
use tributary_exchange::memory::MemoryExchange;
use tributary_exchange::{Exchange, ExchangeSource, TaskOutputId};
use tributary_exec::codec::PlanCodec;
use tributary_exec::engine::default_classifier;
use tributary_exec::rpc::NodeService;
use tributary_exec::task::{RuntimeOptions, TaskRuntime};
use tributary_exec::tracker::QueryTracker;
use tributary_planner::CatalogRegistry;

/// A batch of `rows` 64-bit integers (8 bytes each).
fn batch(schema: &SchemaRef, rows: usize) -> RecordBatch {
    let values = Int64Array::from_iter_values(0..rows as i64);
    RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_partitions_do_not_stall_another_partition_on_the_same_connection() {
    let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
    let output = TaskOutputId {
        query: Arc::from("q1"),
        stage: 1,
        task: 0,
    };
    // Partitions 0..4: 3 MiB each (six 512 KiB batches), more than a stream window; partition 4: one
    // small batch. All written and finished before anyone reads.
    const UNREAD: usize = 4;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let registry = CatalogRegistry::load(None, QueryTracker::new())
        .await
        .unwrap();
    let node = TaskRuntime::new(
        "producer".into(),
        address.clone(),
        Arc::new(PlanCodec::new(registry)),
        SessionContext::new(),
        default_classifier(),
        RuntimeOptions::default(),
    );
    let mut sink = node.exchange.create_sink(&output, UNREAD + 1, 1).unwrap();
    for p in 0..UNREAD {
        for _ in 0..6 {
            sink.write(p, batch(&schema, 64 << 10)).await.unwrap();
        }
    }
    sink.write(UNREAD, batch(&schema, 10)).await.unwrap();
    sink.finish().await.unwrap();

    tokio::spawn(NodeService::new(node.clone(), None).serve(listener));

    let source = RoutedSource {
        local_address: "127.0.0.1:1".into(),
        local: MemoryExchange::new(),
        locations: HashMap::from([(
            (1, 0),
            Location {
                node: "producer".into(),
                address: address.clone(),
            },
        )]),
        channels: Channels::new(),
    };

    // Open the big partitions and read one batch of each, then leave them unread (they stay open).
    let mut unread = Vec::new();
    for p in 0..UNREAD {
        let mut stream = source.read(&output, p, schema.clone()).unwrap();
        let first = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("first batch of a big partition")
            .unwrap()
            .unwrap();
        assert_eq!(first.num_rows(), 64 << 10);
        unread.push(stream);
    }
    // Give the server time to fill every window it is allowed to fill.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let small = source.read(&output, UNREAD, schema.clone()).unwrap();
    let batches: Vec<RecordBatch> =
        tokio::time::timeout(Duration::from_secs(30), small.try_collect())
            .await
            .expect("the small partition stalled behind unread partitions on the same connection")
            .unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 10);

    // The unread partitions are still whole.
    for mut stream in unread {
        let mut rows = 64 << 10;
        while let Some(b) = stream.next().await {
            rows += b.unwrap().num_rows();
        }
        assert_eq!(rows, 6 * (64 << 10));
    }
}
