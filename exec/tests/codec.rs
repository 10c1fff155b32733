//! Plan fragments survive `PlanCodec` encode + decode: every stage of the 22 TPC-H queries displays the
//! same, whole plans give the same rows, lake scans and PostgreSQL scans (pushed-down aggregate included)
//! run after the round trip, MySQL and Kafka scans rebuild from their payload, and plans that must stay
//! on the coordinator are refused with `NotImplemented`.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::physical_plan::{ExecutionPlan, collect, displayable, execute_stream};
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;
use tributary_connectors::{ScanSpec, decode_scan, encode_scan};
use tributary_exec::codec::PlanCodec;
use tributary_exec::subquery::{StagedRunner, run_scalar_subqueries};
use tributary_exec::tracker::QueryTracker;
use tributary_planner::plan::distribute;
use tributary_planner::{CatalogRegistry, DistributedPlan, fragment};
use tributary_testkit::{Postgres, PostgresOptions, TempDir, free_port};

/// A registry over `catalog_dir`, a runtime with its object stores, and a codec: what coordinator and
/// workers each build at startup.
struct Node {
    registry: CatalogRegistry,
    runtime: Arc<RuntimeEnv>,
    codec: PlanCodec,
    tracker: Arc<QueryTracker>,
}

impl Node {
    async fn start(catalog_dir: Option<&Path>) -> Node {
        let tracker = QueryTracker::new();
        let registry = CatalogRegistry::load(catalog_dir, tracker.clone())
            .await
            .expect("catalogs load");
        let runtime = Arc::new(RuntimeEnv::default());
        for (_, connector) in registry.connectors() {
            for (url, store) in connector.object_stores() {
                runtime.register_object_store(&url, store);
            }
        }
        let codec = PlanCodec::new(registry.clone());
        Node {
            registry,
            runtime,
            codec,
            tracker,
        }
    }

    fn session(&self, catalog: &str, schema: &str) -> SessionContext {
        tributary_planner::session::new_session_context(
            &self.registry,
            Arc::clone(&self.runtime),
            catalog,
            schema,
            4,
        )
    }
}

async fn physical(ctx: &SessionContext, sql: &str) -> Arc<dyn ExecutionPlan> {
    let plan = ctx
        .state()
        .create_logical_plan(sql)
        .await
        .unwrap_or_else(|e| panic!("planning {sql}: {e}"));
    ctx.state()
        .create_physical_plan(&plan)
        .await
        .unwrap_or_else(|e| panic!("physical plan of {sql}: {e}"))
}

fn text(plan: &Arc<dyn ExecutionPlan>) -> String {
    displayable(plan.as_ref()).indent(true).to_string()
}

/// Every node's display line with its partitioning and equivalence properties (orderings,
/// equivalences, constants), depth first: what the operators above a decoded node plan from.
fn properties(plan: &Arc<dyn ExecutionPlan>) -> Vec<String> {
    let mut out = vec![format!(
        "{} | {} | {} | {:?} | {:?}",
        displayable(plan.as_ref()).one_line(),
        plan.properties().partitioning,
        plan.properties().eq_properties,
        plan.properties().emission_type,
        plan.properties().boundedness,
    )];
    for child in plan.children() {
        out.extend(properties(child));
    }
    out
}

/// Encodes and decodes `plan`, asserting the decoded plan displays and plans the same; returns it.
fn round_trip(
    node: &Node,
    ctx: &SessionContext,
    plan: &Arc<dyn ExecutionPlan>,
) -> Arc<dyn ExecutionPlan> {
    let bytes = node
        .codec
        .encode(plan)
        .unwrap_or_else(|e| panic!("encode: {e}\n{}", text(plan)));
    let decoded = node
        .codec
        .decode(&bytes, &ctx.task_ctx())
        .unwrap_or_else(|e| panic!("decode: {e}\n{}", text(plan)));
    assert_eq!(text(plan), text(&decoded), "display after the round trip");
    assert_eq!(
        plan.schema(),
        decoded.schema(),
        "schema after the round trip"
    );
    assert_eq!(
        properties(plan),
        properties(&decoded),
        "properties after the round trip"
    );
    decoded
}

/// The rows of `plan`, pretty-printed and sorted (plans with LIMIT under ties may vary in order).
async fn rows(plan: Arc<dyn ExecutionPlan>, ctx: Arc<TaskContext>) -> Vec<String> {
    let plan_text = text(&plan);
    let batches = collect(plan, ctx)
        .await
        .unwrap_or_else(|e| panic!("running: {e}\n{plan_text}"));
    let mut lines: Vec<String> = pretty_format_batches(&batches)
        .expect("format")
        .to_string()
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

/// Runs scalar subqueries un-staged (the engine runs them staged; the values are the same).
struct Direct(Arc<TaskContext>);

impl StagedRunner for Direct {
    #[allow(clippy::type_complexity)]
    fn run<'a>(
        &'a self,
        plan: &'a DistributedPlan,
        _key: String,
    ) -> BoxFuture<
        'a,
        datafusion::error::Result<(Box<dyn std::any::Any + Send>, SendableRecordBatchStream)>,
    > {
        let ctx = Arc::clone(&self.0);
        Box::pin(async move {
            let stream = execute_stream(Arc::clone(&plan.physical), ctx)?;
            Ok((Box::new(()) as Box<dyn std::any::Any + Send>, stream))
        })
    }
}

fn tpch_sql(q: usize) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compat-tests/queries");
    std::fs::read_to_string(dir.join(format!("q{q:02}.sql"))).expect("query file")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_stage_plans_and_results_survive_the_round_trip() {
    let node = Node::start(None).await;
    let mut scans = 0;
    let mut reads = 0;
    let mut subqueries = 0;
    let mut equivalences = 0;
    for q in 1..=22 {
        let sql = tpch_sql(q);
        let ctx = node.session("tpch", "tiny");
        let plan = physical(&ctx, &sql).await;

        // The whole plan (scalar subqueries still inside their ScalarSubqueryExec) runs the same.
        let decoded = round_trip(&node, &ctx, &plan);
        let expected = rows(Arc::clone(&plan), ctx.task_ctx()).await;
        assert_eq!(
            expected,
            rows(decoded, ctx.task_ctx()).await,
            "q{q:02} rows"
        );

        // As the engine ships it: scalar subqueries computed first, then cut into stages.
        let plan = physical(&ctx, &sql).await;
        let runner = Direct(ctx.task_ctx());
        let distributed = distribute(plan).unwrap_or_else(|e| panic!("q{q:02} distribute: {e}"));
        run_scalar_subqueries(&runner, &distributed, "codec")
            .await
            .unwrap_or_else(|e| panic!("q{q:02} subqueries: {e}"));
        let decoded = round_trip(&node, &ctx, &distributed.physical);
        assert_eq!(
            expected,
            rows(decoded, ctx.task_ctx()).await,
            "q{q:02} rows with computed subqueries"
        );
        let staged = &distributed.stages;
        assert!(staged.stages.len() > 1, "q{q:02} has no stages");
        for stage in &staged.stages {
            let decoded = round_trip(&node, &ctx, &stage.plan);
            let shown = text(&decoded);
            scans += shown.matches("TpchScan:").count();
            reads += shown.matches("ExchangeRead:").count();
            subqueries += shown.matches("scalar_subquery(").count();
            equivalences += properties(&decoded)
                .iter()
                .filter(|p| p.starts_with("ExchangeRead") && p.contains("eq: "))
                .count();
        }
    }
    assert!(scans >= 22, "{scans} tpch scans seen");
    assert!(reads >= 22, "{reads} exchange reads seen");
    // q11 and q22 compare against an uncorrelated scalar subquery (q15's reads the same rows as
    // its filter and becomes a window: `tributary_planner::extreme`).
    assert!(subqueries >= 2, "{subqueries} computed subqueries seen");
    println!("{equivalences} exchange reads with equivalences or constants");
    // Joins' key equalities and filters' constants reach the nodes above an exchange read.
    assert!(equivalences > 0, "no exchange read carried equivalences");
}

fn write_parquet(path: &Path, ids: &[i64], names: &[&str]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names.to_vec())),
        ],
    )
    .expect("batch");
    let file = std::fs::File::create(path).expect("create parquet file");
    let mut writer = ArrowWriter::try_new(file, schema, None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lake_scans_survive_the_round_trip() {
    let root = TempDir::new("codec-lake");
    let shop = root.path().join("data/shop");
    write_parquet(
        &shop.join("sales/year=2023/part-0.parquet"),
        &[10, 11],
        &["a", "b"],
    );
    write_parquet(
        &shop.join("sales/year=2024/part-0.parquet"),
        &[20, 21, 22],
        &["c", "d", "e"],
    );
    write_parquet(&shop.join("sales/year=2024/part-1.parquet"), &[23], &["f"]);
    std::fs::write(shop.join("people.csv"), "id,name\n10,ann\n21,bob\n").expect("csv");
    std::fs::write(
        shop.join("events.jsonl"),
        "{\"id\": 10, \"kind\": \"click\"}\n{\"id\": 22, \"kind\": \"view\"}\n",
    )
    .expect("json");
    let catalogs = root.path().join("catalog");
    std::fs::create_dir_all(&catalogs).expect("catalog dir");
    std::fs::write(
        catalogs.join("lake.toml"),
        format!(
            "connector = \"lake\"\nlocation = \"file://{}\"\n",
            root.path().join("data").display()
        ),
    )
    .expect("lake.toml");
    let node = Node::start(Some(&catalogs)).await;
    let ctx = node.session("lake", "shop");
    for sql in [
        "select id, name, year from sales where id > 10 and year = '2024' order by id",
        "select s.name, p.name as person, e.kind from sales s \
         join people p on s.id = p.id left join events e on e.id = s.id order by s.name",
        "select year, count(*), max(name) from sales group by year",
    ] {
        let plan = physical(&ctx, sql).await;
        let decoded = round_trip(&node, &ctx, &plan);
        assert!(!object_stores(&decoded).is_empty(), "{}", text(&decoded));
        assert_eq!(object_stores(&plan), object_stores(&decoded));
        let expected = rows(Arc::clone(&plan), ctx.task_ctx()).await;
        assert!(expected.len() > 4, "{sql}: {expected:#?}");
        assert_eq!(expected, rows(decoded, ctx.task_ctx()).await, "{sql}");
        for stage in fragment(plan).expect("fragment").stages {
            round_trip(&node, &ctx, &stage.plan);
        }
    }
    // The predicate and the partition pruning travel too.
    let plan = physical(
        &ctx,
        "select name from sales where id > 20 and year = '2024'",
    )
    .await;
    let shown = text(&round_trip(&node, &ctx, &plan));
    assert!(shown.contains("predicate="), "{shown}");
    assert!(shown.contains("file_groups"), "{shown}");
    assert!(!shown.contains("year=2023"), "{shown}");
}

/// The object store URLs of the file scans of `plan`.
fn object_stores(plan: &Arc<dyn ExecutionPlan>) -> Vec<String> {
    let mut urls = Vec::new();
    if let Some(exec) = plan.downcast_ref::<DataSourceExec>()
        && let Some(config) = exec.data_source().downcast_ref::<FileScanConfig>()
    {
        urls.push(config.object_store_url.to_string());
        assert_eq!(config.object_store_url.as_str(), "lake://lake/");
    }
    for child in plan.children() {
        urls.extend(object_stores(child));
    }
    urls
}

fn refusal(node: &Node, plan: &Arc<dyn ExecutionPlan>) -> String {
    match node.codec.encode(plan) {
        Ok(_) => panic!(
            "encoded a plan that must stay on the coordinator:\n{}",
            text(plan)
        ),
        Err(DataFusionError::NotImplemented(message)) => message,
        Err(other) => panic!("not a NotImplemented error: {other:?}"),
    }
}

fn text_udf(name: &str) -> datafusion::logical_expr::ScalarUDF {
    create_udf(
        name,
        vec![DataType::Utf8View],
        DataType::Utf8View,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| Ok(args[0].clone())),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_only_plans_are_refused() {
    let node = Node::start(None).await;

    // A function only the server's sessions have, and one replacing a built-in under its name.
    let ctx = node.session("tpch", "tiny");
    ctx.register_udf(text_udf("pg_server_only"));
    let plan = physical(&ctx, "select pg_server_only(n_name) from nation").await;
    let message = refusal(&node, &plan);
    assert!(message.contains("cannot run on a worker"), "{message}");
    assert!(message.contains("pg_server_only"), "{message}");
    let plan = physical(&ctx, "select upper(n_name) from nation").await;
    round_trip(&node, &ctx, &plan);
    ctx.register_udf(text_udf("upper"));
    let plan = physical(&ctx, "select upper(n_name) from nation").await;
    let message = refusal(&node, &plan);
    assert!(message.contains("upper"), "{message}");

    // Catalog listings read coordinator state through a stream no worker has.
    let ctx = node.session("tpch", "tiny");
    let plan = physical(&ctx, "select table_name from information_schema.tables").await;
    let message = refusal(&node, &plan);
    assert!(message.contains("cannot run on a worker"), "{message}");

    // A computed scalar subquery travels as its value; one still waiting for its
    // ScalarSubqueryExec cannot leave it.
    let plan = physical(
        &ctx,
        "select n_name from nation where n_regionkey = (select max(r_regionkey) from region)",
    )
    .await;
    assert!(
        text(&plan).contains("scalar_subquery(<pending>)"),
        "{}",
        text(&plan)
    );
    round_trip(&node, &ctx, &plan);
    let input = Arc::clone(plan.children()[0]);
    let message = refusal(&node, &input);
    assert!(
        message.contains("outside its ScalarSubqueryExec"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_scans_ship_their_snapshot() {
    let node = Node::start(None).await;
    let _cancel = node.tracker.begin(
        "20250101_000000_00001_abcde",
        "alice",
        "select 1",
        tributary_exec::RetryPolicy::None,
        Some(100_000),
    );
    let ctx = node.session("system", "runtime");
    let plan = physical(&ctx, "select query_id, state, \"user\" from queries").await;
    let decoded = round_trip(&node, &ctx, &plan);
    node.tracker.finish(
        "20250101_000000_00001_abcde",
        tributary_connectors::system::QueryState::Finished,
        None,
    );
    let _other = node.tracker.begin(
        "20250101_000000_00002_fghij",
        "bob",
        "select 2",
        tributary_exec::RetryPolicy::None,
        None,
    );
    // The rows are the snapshot taken when the coordinator planned the scan, not the worker's state.
    let got = rows(decoded, ctx.task_ctx()).await.join("\n");
    assert!(
        got.contains("| 20250101_000000_00001_abcde | RUNNING | alice |"),
        "{got}"
    );
    assert!(!got.contains("bob"), "{got}");
}

/// MySQL and Kafka scans rebuild from their payload alone (no live source: both catalogs point at a
/// closed port, which a catalog tolerates until a scan runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_and_kafka_scans_rebuild_from_their_payload() {
    let root = TempDir::new("codec-remote");
    std::fs::write(
        root.path().join("my.toml"),
        format!(
            "connector = \"mysql\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"u\"\n\
             password = \"p\"\nconnect_timeout_secs = 1\n",
            free_port()
        ),
    )
    .expect("my.toml");
    std::fs::write(
        root.path().join("kf.toml"),
        format!(
            "connector = \"kafka\"\nbootstrap_servers = \"127.0.0.1:{}\"\n",
            free_port()
        ),
    )
    .expect("kf.toml");
    let node = Node::start(Some(root.path())).await;
    let ctx = node.session("tpch", "tiny");

    let mysql = ScanSpec {
        kind: tributary_connectors::mysql::KIND,
        catalog: Some("my".into()),
        payload: serde_json::json!({
            "types": [{"Int": {"bits": 32, "unsigned": false}}, "Year", "Bits", "Text"],
            "sqls": [
                "SELECT `id`, `y`, `b`, `s` FROM `db`.`t` WHERE `id` < 100",
                "SELECT `id`, `y`, `b`, `s` FROM `db`.`t` WHERE `id` >= 100",
            ],
        }),
    };
    let mysql_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, true),
        Field::new("y", DataType::Int16, true),
        Field::new("b", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
    ]));
    let kafka = ScanSpec {
        kind: tributary_connectors::kafka::KIND,
        catalog: Some("kf".into()),
        payload: serde_json::json!({
            "label": "default.orders",
            "schema": "default",
            "table": "orders",
            "topic": "orders",
            "described": false,
            "outputs": [{"Internal": 0}, {"Internal": 1}, {"Internal": 6}],
            "plan": [[0, [[0, 5]]], [1, [[2, 4]]]],
            "splits": [[0, 0, 5], [1, 2, 4]],
            "timestamp_from": 1_700_000_000_000_i64,
            "limit": 10,
        }),
    };
    let kafka_schema = Arc::new(Schema::new(vec![
        Field::new("_partition_id", DataType::Int64, false),
        Field::new("_partition_offset", DataType::Int64, false),
        Field::new("_message", DataType::Utf8, true),
    ]));
    for (spec, schema, shown) in [
        (&mysql, mysql_schema, "MySqlScan: catalog=my, splits=2"),
        (
            &kafka,
            kafka_schema,
            "KafkaScan: catalog=kf, table=default.orders, topic=orders, partitions=[0, 1], \
             offsets={0: 0..5, 1: 2..4}, timestamp>=2023-11-14 22:13:20.000, splits=2",
        ),
    ] {
        let connector = node
            .registry
            .get(spec.catalog.as_deref().unwrap_or_default());
        let scan = decode_scan(spec, connector.as_deref(), schema).expect("decode");
        assert!(text(&scan).contains(shown), "{}", text(&scan));
        let decoded = round_trip(&node, &ctx, &scan);
        assert_eq!(encode_scan(decoded.as_ref()).as_ref(), Some(spec));
    }

    // A scan names its catalog's kind: a catalog of another kind does not rebuild it.
    let wrong = ScanSpec {
        catalog: Some("kf".into()),
        ..mysql.clone()
    };
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, true)]));
    let err = decode_scan(&wrong, node.registry.get("kf").as_deref(), schema)
        .expect_err("a kafka catalog is no mysql catalog");
    assert!(err.to_string().contains("kafka catalog"), "{err}");
}

// --- PostgreSQL: a real server of the test's own, from the test kit. ---

const PG_PASSWORD: &str = "Codec-Pg-7x!";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_scans_survive_the_round_trip() {
    let pg = Postgres::dedicated(PostgresOptions {
        password: Some(PG_PASSWORD.to_string()),
        tls: None,
    });
    pg.connect("postgres")
        .await
        .batch_execute(
            "CREATE TABLE t AS SELECT g::int8 AS id, (g % 7)::int4 AS v, md5(g::text) AS s, \
         (g::numeric / 100)::numeric(12, 2) AS amt, ARRAY[g, g + 1]::int4[] AS arr, \
         (g % 3)::text::char(3) AS c FROM generate_series(1, 5000) g; ANALYZE t;",
        )
        .await
        .expect("create t");
    let catalogs = TempDir::new("codec-pgcat");
    std::fs::write(
        catalogs.path().join("pg.toml"),
        format!(
            "connector = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"postgres\"\n\
             user = \"postgres\"\npassword = \"{PG_PASSWORD}\"\nsplits = 4\n\
             split_min_pages = 1\n",
            pg.port()
        ),
    )
    .expect("pg.toml");
    let node = Node::start(Some(catalogs.path())).await;
    let ctx = node.session("pg", "public");
    for (sql, shown) in [
        // A table scan over ctid splits, aggregated here.
        (
            "select v, count(*), min(s), max(arr[1]) from t group by v",
            "PostgresScan: catalog=pg, splits=4",
        ),
        // A filter pushed into the remote statement.
        ("select id, v, s, amt, arr, c from t where v = 3", "WHERE"),
        // A whole aggregate pushed down as one remote statement.
        (
            "select v, count(*) as n, sum(amt) as total from t group by v",
            "GROUP BY",
        ),
    ] {
        let plan = physical(&ctx, sql).await;
        assert!(text(&plan).contains(shown), "{}", text(&plan));
        let decoded = round_trip(&node, &ctx, &plan);
        let expected = rows(Arc::clone(&plan), ctx.task_ctx()).await;
        assert!(expected.len() > 7, "{sql}: {expected:#?}");
        assert_eq!(expected, rows(decoded, ctx.task_ctx()).await, "{sql}");
        for stage in fragment(plan).expect("fragment").stages {
            round_trip(&node, &ctx, &stage.plan);
        }
    }

    // A correlated apply over tpch whose subquery reads the PostgreSQL table: it travels by name
    // and is rebuilt through the decoding side's own `pg` catalog (each binding's plan pushed down
    // there, with the binding's value).
    let sql = "select n_name, (select count(*) from (select v, max(id) as m from t group by v) g \
               where g.m > n.n_nationkey * 200 + 4000) from tpch.tiny.nation n";
    let plan = physical(&ctx, sql).await;
    assert!(
        text(&plan).contains("CorrelatedApplyExec"),
        "{}",
        text(&plan)
    );
    let bytes = node.codec.encode(&plan).expect("encode");
    let worker = node.session("system", "runtime");
    let decoded = node
        .codec
        .decode(&bytes, &worker.task_ctx())
        .expect("decode");
    let expected = rows(Arc::clone(&plan), ctx.task_ctx()).await;
    assert!(expected.len() > 20, "{expected:#?}");
    assert_eq!(expected, rows(decoded, worker.task_ctx()).await, "{sql}");
}

/// A lake write ships its writer stage to workers (the writer over its input, rebuilt through the
/// worker's own lake catalog) and keeps the commit on the coordinator; the decoded writer writes
/// the Parquet files and lists them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lake_writers_survive_the_round_trip() {
    let root = TempDir::new("codec-lake-write");
    std::fs::create_dir_all(root.path().join("data/w")).expect("schema dir");
    let catalogs = root.path().join("catalog");
    std::fs::create_dir_all(&catalogs).expect("catalog dir");
    std::fs::write(
        catalogs.join("lake.toml"),
        format!(
            "connector = \"lake\"\nlocation = \"file://{}\"\n",
            root.path().join("data").display()
        ),
    )
    .expect("lake.toml");
    let node = Node::start(Some(&catalogs)).await;
    let ctx = node.session("lake", "w");
    let state = ctx.state();
    let statement = state
        .sql_to_statement(
            "CREATE TABLE lake.w.lineitem WITH (partitioned_by = ARRAY['l_returnflag']) \
             AS SELECT l_orderkey, l_partkey, l_suppkey, l_linenumber, l_quantity, l_extendedprice, l_discount, l_tax, l_linestatus, l_shipdate, l_commitdate, l_receiptdate, l_shipinstruct, l_shipmode, l_comment, l_returnflag FROM tpch.tiny.lineitem",
            &state.config().options().sql_parser.dialect,
        )
        .expect("parses");
    let logical = tributary_planner::plan::logical_plan(&state, statement)
        .await
        .expect("plans");
    let plan = state
        .create_physical_plan(&logical)
        .await
        .expect("physical plan");
    let stages = fragment(plan).expect("fragment").stages;
    let root_refusal = refusal(&node, &stages[0].plan);
    assert!(root_refusal.contains("LakeCommitExec"), "{root_refusal}");
    let writer = stages
        .iter()
        .find(|s| text(&s.plan).contains("LakeWrite:"))
        .expect("a writer stage");
    assert_ne!(
        writer.id,
        0,
        "the writers run in a worker stage: {}",
        text(&writer.plan)
    );
    let decoded = round_trip(&node, &ctx, &writer.plan);
    let written = rows(decoded, ctx.task_ctx()).await;
    assert!(
        written.iter().any(|l| l.contains("l_returnflag=R/part-")),
        "{written:#?}"
    );
    let dir = root.path().join("data/w/lineitem/l_returnflag=R");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .collect();
    assert_eq!(files.len(), 2, "one file per writer partition: {files:?}");
}

/// A correlated apply ships with its subqueries' logical plans: decoded (as a worker does, with a
/// session whose default catalog is another), it displays the same and gives the same rows, its
/// subqueries planned and run on the decoding side. One whose subquery reads a `system` table (the
/// coordinator's own state) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlated_applies_ship_their_subqueries() {
    let node = Node::start(None).await;
    let ctx = node.session("tpch", "tiny");
    let worker = node.session("system", "runtime");
    for sql in [
        // Scalar, in the select list, with a non-equality correlation.
        "select n_nationkey, (select count(*) from customer c \
         where c.c_nationkey < n.n_nationkey and c.c_acctbal > 9000) from nation n",
        // EXISTS in the select list, two outer columns.
        "select n_name, exists (select 1 from region r \
         where r.r_regionkey > n.n_regionkey and r.r_regionkey * 5 < n.n_nationkey) from nation n",
        // IN with a correlated filter, a checked integer operator inside.
        "select n_name, n_regionkey in (select r_regionkey from tpch.tiny.region r \
         where r.r_regionkey + 20 < n.n_nationkey) from nation n",
    ] {
        let plan = physical(&ctx, sql).await;
        assert!(
            text(&plan).contains("CorrelatedApplyExec"),
            "no apply in:\n{}",
            text(&plan)
        );
        let bytes = node
            .codec
            .encode(&plan)
            .unwrap_or_else(|e| panic!("encode: {e}\n{}", text(&plan)));
        let decoded = node
            .codec
            .decode(&bytes, &worker.task_ctx())
            .unwrap_or_else(|e| panic!("decode: {e}\n{}", text(&plan)));
        assert_eq!(text(&plan), text(&decoded), "display after the round trip");
        let expected = rows(Arc::clone(&plan), ctx.task_ctx()).await;
        assert!(expected.len() > 4, "{expected:?}");
        assert_eq!(expected, rows(decoded, worker.task_ctx()).await, "{sql}");
    }

    for (sql, named) in [
        (
            "select n_name, (select count(*) from system.runtime.nodes s \
             where s.node_id <> n.n_name) from nation n",
            "system.runtime.nodes",
        ),
        // A table function's scan is no table of a catalog.
        (
            "select n_name, (select count(*) from generate_series(1, 30) g \
             where g.value < n.n_nationkey) from nation n",
            "generate_series",
        ),
    ] {
        let plan = physical(&ctx, sql).await;
        let message = refusal(&node, &plan);
        assert!(
            message.contains(named),
            "the refusal should name the table: {message}"
        );
    }
}
