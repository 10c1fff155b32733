//! What drivers and tools send besides queries, over tokio-postgres against the built binary: the
//! session statements of pool resets (`DISCARD ALL`, `DEALLOCATE ALL`, `UNLISTEN *`), savepoints,
//! `SET SESSION CHARACTERISTICS`, `current_setting` / `set_config`, `LIKE ... ESCAPE`, cursors
//! (`DECLARE` / `FETCH` / `CLOSE`), `COPY (query) TO STDOUT` in text, CSV and binary, and a
//! Grafana-style exchange (simple protocol, `-- ping`, several statements in one query, RFC3339
//! literals compared with a timestamptz column named `time`).

use compat_tests::Tributary;
use compat_tests::results::all_rows;
use futures::StreamExt;
use tokio_postgres::SimpleQueryMessage;

async fn copy_out(client: &tokio_postgres::Client, sql: &str) -> Vec<u8> {
    let stream = client
        .copy_out(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut stream = std::pin::pin!(stream);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("copy data"));
    }
    out
}

#[tokio::test]
async fn session_statements_drivers_send() {
    let tributary = Tributary::start(None);
    let client = tributary.connect("tpch").await;
    client
        .batch_execute(
            "DISCARD ALL; DEALLOCATE ALL; UNLISTEN *; \
             SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED; \
             BEGIN; SAVEPOINT a; RELEASE SAVEPOINT a; SAVEPOINT b; ROLLBACK TO SAVEPOINT b; COMMIT",
        )
        .await
        .expect("session statements");
    let got = all_rows(
        &client,
        "select set_config('myapp.flag', 'on', false), current_setting('myapp.flag'), \
         current_setting('application_name'), current_setting('nope', true)",
    )
    .await;
    assert_eq!(
        got,
        vec![vec![
            Some("on".into()),
            Some("on".into()),
            Some("compat-tests".into()),
            None
        ]]
    );
    let err = client
        .simple_query("select current_setting('no_such_setting')")
        .await
        .unwrap_err();
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "42704", "{db:?}");
    assert!(db.message().contains("no_such_setting"), "{db:?}");
    // SQLAlchemy's `NOT LIKE 'pg/_' || '%' ESCAPE '/'`.
    let got = all_rows(
        &client,
        "select count(*) from (values ('pg_x'), ('pgx'), ('tiny')) t(s) \
         where s not like 'pg/_' || '%' escape '/'",
    )
    .await;
    assert_eq!(got, vec![vec![Some("2".into())]]);
}

#[tokio::test]
async fn cursors_declare_fetch_close() {
    let tributary = Tributary::start(None);
    let client = tributary.connect("tpch").await;
    client
        .batch_execute("BEGIN; DECLARE c CURSOR FOR SELECT n_nationkey FROM nation ORDER BY 1")
        .await
        .expect("declare");
    let first = all_rows(&client, "FETCH FORWARD 10 FROM c").await;
    assert_eq!(first.len(), 10);
    assert_eq!(first[0], vec![Some("0".into())]);
    let next = all_rows(&client, "FETCH NEXT FROM c").await;
    assert_eq!(next, vec![vec![Some("10".into())]]);
    let rest = all_rows(&client, "FETCH ALL FROM c").await;
    assert_eq!(rest.len(), 14);
    assert!(all_rows(&client, "FETCH 5 FROM c").await.is_empty());
    client
        .batch_execute("CLOSE c; COMMIT")
        .await
        .expect("close");
    let err = client.simple_query("FETCH 1 FROM c").await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("34000"), "{err}");
}

#[tokio::test]
async fn copy_to_stdout_text_csv_binary() {
    let tributary = Tributary::start(None);
    let client = tributary.connect("tpch").await;
    let text = copy_out(
        &client,
        "COPY (select r_regionkey, r_name, null::text as n from region order by 1) TO STDOUT",
    )
    .await;
    let text = String::from_utf8(text).unwrap();
    assert_eq!(text.lines().count(), 5, "{text}");
    assert_eq!(text.lines().next(), Some("0\tAFRICA\t\\N"));

    let csv = copy_out(
        &client,
        "COPY (select r_regionkey, r_comment from region order by 1) TO STDOUT WITH (FORMAT csv, HEADER true)",
    )
    .await;
    let csv = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "r_regionkey,r_comment");
    assert_eq!(lines[2], "1,\"hs use ironic, even requests. s\"", "{csv}");

    let table = copy_out(&client, "COPY region TO STDOUT (FORMAT csv)").await;
    assert_eq!(String::from_utf8(table).unwrap().lines().count(), 5);

    let binary = copy_out(
        &client,
        "COPY (select r_regionkey from region order by 1) TO STDOUT (FORMAT binary)",
    )
    .await;
    assert!(binary.starts_with(b"PGCOPY\n\xff\r\n\0"), "{binary:?}");
    assert!(binary.ends_with(&[0xff, 0xff]));
    // Header (19 bytes), 5 rows of (field count 2 + length 4 + int8 8), trailer 2.
    assert_eq!(binary.len(), 19 + 5 * 14 + 2);
    let empty = copy_out(
        &client,
        "COPY (select r_regionkey from region where false) TO STDOUT (FORMAT binary)",
    )
    .await;
    assert_eq!(empty.len(), 19 + 2);
}

#[tokio::test]
async fn grafana_style_exchange() {
    let tributary = Tributary::start(None);
    let client = tributary.connect("tpch").await;
    // Ping: a comment-only query gets EmptyQueryResponse (no rows, no error).
    let messages = client.simple_query("-- ping").await.expect("ping");
    assert!(
        messages
            .iter()
            .all(|m| !matches!(m, SimpleQueryMessage::Row(_))),
        "{messages:?}"
    );
    // Several statements in one query string.
    let got = all_rows(&client, "SET TIME ZONE 'UTC'; select 1 as a; select 2 as b").await;
    assert_eq!(got, vec![vec![Some("1".into())], vec![Some("2".into())]]);
    // A time series query as `$__timeFilter(time)` expands it.
    let messages = client
        .simple_query(
            "SELECT o_orderdate::timestamptz AS \"time\", sum(o_totalprice) AS value \
             FROM orders \
             WHERE o_orderdate::timestamptz BETWEEN '1995-01-01T00:00:00Z' AND '1995-01-03T23:59:59Z' \
             GROUP BY 1 ORDER BY 1",
        )
        .await
        .expect("time series");
    let rows: Vec<_> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].columns()[0].name(), "time");
    assert!(
        rows[0].get(0).unwrap().starts_with("1995-01-01 00:00:00"),
        "{:?}",
        rows[0].get(0)
    );
}
