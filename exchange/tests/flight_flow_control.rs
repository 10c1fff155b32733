//! Flow control of the Flight exchange: partitions that a consumer opened but is not reading must not
//! stall the other partitions it reads from the same node over the same connection.
//!
//! Every read from one node shares one HTTP/2 connection. With hyper's default 5 MiB connection
//! window, three or four unread partitions (a join's probe side waiting for its build side) held the
//! whole window and the build side's partition never arrived: TPC-H q18 hung at scale 1 on a
//! coordinator with two workers. This test fails (times out) if the connection window shrinks back.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use futures::{Stream, StreamExt, TryStreamExt};
use tonic::{Request, Response, Status, Streaming};
use tributary_exchange::flight::{Channels, Location, ReadTicket, RoutedSource, serve_read};
use tributary_exchange::memory::MemoryExchange;
use tributary_exchange::{Exchange, ExchangeSource, TaskOutputId};

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// A Flight server that only serves `do_get` from an in-memory exchange, as a node does.
struct ReadServer {
    exchange: Arc<MemoryExchange>,
}

#[tonic::async_trait]
impl FlightService for ReadServer {
    type HandshakeStream = Boxed<HandshakeResponse>;
    type ListFlightsStream = Boxed<FlightInfo>;
    type DoGetStream = Boxed<FlightData>;
    type DoPutStream = Boxed<PutResult>;
    type DoExchangeStream = Boxed<FlightData>;
    type DoActionStream = Boxed<arrow_flight::Result>;
    type ListActionsStream = Boxed<ActionType>;

    async fn handshake(
        &self,
        _: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented("handshake"))
    }
    async fn list_flights(
        &self,
        _: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        Err(Status::unimplemented("list_flights"))
    }
    async fn get_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(Status::unimplemented("get_flight_info"))
    }
    async fn poll_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented("poll_flight_info"))
    }
    async fn get_schema(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        Err(Status::unimplemented("get_schema"))
    }
    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let ticket = ReadTicket::decode(request.get_ref())?;
        let classify: tributary_exchange::flight::ErrorClassifier =
            Arc::new(|e| ("XX000".to_string(), e.to_string()));
        Ok(Response::new(serve_read(
            self.exchange.as_ref(),
            &ticket,
            classify,
        )?))
    }
    async fn do_put(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        Err(Status::unimplemented("do_put"))
    }
    async fn do_exchange(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(Status::unimplemented("do_exchange"))
    }
    async fn do_action(
        &self,
        _: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        Err(Status::unimplemented("do_action"))
    }
    async fn list_actions(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        Err(Status::unimplemented("list_actions"))
    }
}

/// A batch of `rows` 64-bit integers (8 bytes each).
fn batch(schema: &SchemaRef, rows: usize) -> RecordBatch {
    let values = Int64Array::from_iter_values(0..rows as i64);
    RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_partitions_do_not_stall_another_partition_on_the_same_connection() {
    let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
    let exchange = MemoryExchange::new();
    let output = TaskOutputId {
        query: Arc::from("q1"),
        stage: 1,
        task: 0,
    };
    // Partitions 0..4: 3 MiB each (six 512 KiB batches), more than a stream window; partition 4: one
    // small batch. All written and finished before anyone reads.
    const UNREAD: usize = 4;
    let mut sink = exchange.create_sink(&output, UNREAD + 1, 1).unwrap();
    for p in 0..UNREAD {
        for _ in 0..6 {
            sink.write(p, batch(&schema, 64 << 10)).await.unwrap();
        }
    }
    sink.write(UNREAD, batch(&schema, 10)).await.unwrap();
    sink.finish().await.unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = FlightServiceServer::new(ReadServer {
        exchange: exchange.clone(),
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(server)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

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
