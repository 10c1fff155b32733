//! A `kafka` catalog over a real tansu broker, through the built server and a real client: reading a
//! described JSON topic, pushdown visible in EXPLAIN, a join with a `postgres` catalog, and a broker
//! that is down.

use compat_tests::results::query_text;
use compat_tests::{ConfigDir, Postgres, Tansu, Tributary, free_port};

const EVENTS: &str = r#"{
  "tableName": "events",
  "topicName": "compat_events",
  "message": {"dataFormat": "json", "fields": [
    {"name": "order_id", "type": "INTEGER", "mapping": "order/id"},
    {"name": "kind", "type": "VARCHAR"}
  ]}
}"#;

/// Topic `compat_events` (3 partitions: 4, 3 and 2 messages, one of them malformed) and a
/// PostgreSQL table `orders` they refer to.
async fn catalogs() -> ConfigDir {
    let tansu = Tansu::shared();
    tansu.create_topic("compat_events", 3);
    let mut order = 0;
    for (partition, n) in [(0, 4), (1, 3), (2, 2)] {
        for _ in 0..n {
            order += 1;
            let kind = if order % 2 == 0 { "paid" } else { "created" };
            let value = format!(r#"{{"order": {{"id": {order}}}, "kind": "{kind}"}}"#);
            tansu.produce("compat_events", partition, Some("\"k\""), &value);
        }
    }
    // `tansu cat produce` only writes JSON, so the malformed message is JSON with a value that does
    // not fit its column (order/id is an INTEGER).
    tansu.produce(
        "compat_events",
        2,
        None,
        r#"{"order": {"id": "nine"}, "kind": "bad"}"#,
    );

    let pg = Postgres::shared();
    pg.create_database("kshop").await;
    let client = pg.connect("kshop").await;
    client
        .batch_execute(
            "create table if not exists orders (id int primary key, customer text);
             truncate orders;
             insert into orders select i, 'customer ' || (i % 3) from generate_series(1, 9) i;",
        )
        .await
        .unwrap();
    ConfigDir::new()
        .file("kafka/events.json", EVENTS)
        .catalog(
            "pg",
            &format!(
                "connector = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"kshop\"\nuser = \"postgres\"\n",
                pg.port()
            ),
        )
}

fn kafka_catalog(config: ConfigDir, bootstrap: &str) -> ConfigDir {
    let dir = config.path().join("kafka");
    let text = format!(
        "connector = \"kafka\"\nbootstrap_servers = \"{bootstrap}\"\ntable_description_dir = {}\n\
         messages_per_split = 2\nrequest_timeout_ms = 3000\n",
        compat_tests::toml_string(&dir.to_string_lossy())
    );
    config.catalog("kf", &text)
}

fn explain_text(rows: compat_tests::results::TextRows) -> String {
    rows.rows
        .into_iter()
        .filter_map(|r| r.into_iter().last().flatten())
        .collect::<Vec<_>>()
        .join("\n")
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_topic_reads_pushes_down_and_joins_postgres() {
    let config = kafka_catalog(catalogs().await, &Tansu::shared().bootstrap());
    let server = Tributary::start(Some(config.path()));
    let client = server.connect("kf").await;

    let rows = query_text(
        &client,
        "select _partition_id, count(*), sum(case when _message_corrupt then 1 else 0 end) \
         from kf.default.events group by 1 order by 1",
    )
    .await
    .unwrap();
    assert_eq!(
        rows.rows,
        vec![
            vec![s("0"), s("4"), s("0")],
            vec![s("1"), s("3"), s("0")],
            vec![s("2"), s("3"), s("1")],
        ]
    );
    let rows = query_text(
        &client,
        "select order_id, kind, _message_corrupt, _message from kf.default.events \
         where _message_corrupt or order_id = 5",
    )
    .await
    .unwrap();
    let mut got = rows.rows;
    got.sort();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0][..3], [None, None, s("t")]);
    assert!(
        got[0][3].as_deref().unwrap_or("").contains("nine"),
        "{got:?}"
    );
    assert_eq!(got[1][..3], [s("5"), s("created"), s("f")]);
    assert!(
        got[1][3].as_deref().unwrap_or("").contains("created"),
        "{got:?}"
    );

    // Partition pruning and offset narrowing, in EXPLAIN and in the rows.
    let sql = "select _partition_offset, order_id from kf.default.events \
               where _partition_id = 0 and _partition_offset >= 1 and _partition_offset < 3 order by 1";
    let plan = explain_text(
        query_text(&client, &format!("explain {sql}"))
            .await
            .unwrap(),
    );
    assert!(
        plan.contains("KafkaScan") && plan.contains("partitions=[0], offsets={0: 1..3}"),
        "{plan}"
    );
    let rows = query_text(&client, sql).await.unwrap();
    assert_eq!(rows.rows, vec![vec![s("1"), s("2")], vec![s("2"), s("3")]]);

    // Splits of at most 2 messages.
    let plan = explain_text(
        query_text(&client, "explain select count(*) from kf.default.events")
            .await
            .unwrap(),
    );
    assert!(plan.contains("splits=6"), "{plan}");

    // A join of the topic with a PostgreSQL table.
    let rows = query_text(
        &client,
        "select o.customer, count(*) as events, sum(case when e.kind = 'paid' then 1 else 0 end) as paid \
         from kf.default.events e join pg.public.orders o on e.order_id = o.id \
         group by o.customer order by o.customer",
    )
    .await
    .unwrap();
    assert_eq!(
        rows.rows,
        vec![
            vec![s("customer 0"), s("3"), s("1")],
            vec![s("customer 1"), s("3"), s("1")],
            vec![s("customer 2"), s("3"), s("2")],
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_is_down_fails_its_query_not_the_server() {
    let port = free_port(); // nothing listens here
    let config = ConfigDir::new().file("kafka/events.json", EVENTS);
    let config = kafka_catalog(config, &format!("127.0.0.1:{port}"));
    let server = Tributary::start(Some(config.path()));
    let client = server.connect("tpch").await;
    let started = std::time::Instant::now();
    let err = client
        .simple_query("select count(*) from kf.default.events")
        .await
        .unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let db = err.as_db_error().expect("an ErrorResponse");
    assert_eq!(db.code().code(), "08001", "{}", db.message());
    assert!(
        db.message().contains("catalog \"kf\"") && db.message().contains("compat_events"),
        "{}",
        db.message()
    );
    // The server keeps serving other catalogs.
    let rows = query_text(&client, "select count(*) from tpch.tiny.region")
        .await
        .unwrap();
    assert_eq!(rows.rows, vec![vec![Some("5".into())]]);
}
