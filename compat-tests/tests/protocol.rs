//! The PostgreSQL wire front end, black box: the built `tributary` binary driven by tokio-postgres (binary
//! parameters and results), the simple protocol (text results), psql, and raw protocol messages (text
//! parameters).

use std::error::Error;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use compat_tests::results::all_rows;
use compat_tests::{ConfigDir, Tributary};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// Any value as its raw binary wire bytes (for types tokio-postgres has no Rust type for here).
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

async fn text_value(client: &Client, sql: &str) -> String {
    let rows = all_rows(client, sql).await;
    rows[0][0].clone().unwrap_or_else(|| panic!("{sql}: NULL"))
}

async fn sqlstate(client: &Client, sql: &str) -> SqlState {
    let err = client
        .simple_query(sql)
        .await
        .expect_err(&format!("{sql} should fail"));
    err.code()
        .unwrap_or_else(|| panic!("{sql}: no SQLSTATE in {err:?}"))
        .clone()
}

async fn assert_alive(client: &Client) {
    let row = client.query_one("select 41 + 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
}

#[tokio::test]
async fn startup_reports_parameters_and_refuses_unknown_database() {
    let server = Tributary::start(None);
    let client = server.connect("tpch").await;
    assert!(
        text_value(&client, "show server_version")
            .await
            .starts_with("15.")
    );
    assert_eq!(text_value(&client, "show DateStyle").await, "ISO, MDY");
    assert_eq!(text_value(&client, "show TimeZone").await, "UTC");
    assert_eq!(text_value(&client, "show client_encoding").await, "UTF8");
    assert_eq!(
        text_value(&client, "show application_name").await,
        "compat-tests"
    );
    assert_eq!(
        text_value(&client, "show session_authorization").await,
        "tester"
    );

    let err = server.try_connect("nosuch").await.err().unwrap();
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code(), &SqlState::INVALID_CATALOG_NAME);
    assert_eq!(db.message(), "database \"nosuch\" does not exist");
    assert!(db.hint().unwrap_or_default().contains("tpch"), "{db:?}");
}

#[tokio::test]
async fn simple_protocol_runs_each_statement_and_answers_empty_queries() {
    let server = Tributary::start(None);
    let client = server.connect("tpch").await;
    let messages = client
        .simple_query("select 1 as a; select 'x' as b, 2 as c; set extra_float_digits = 3")
        .await
        .unwrap();
    let completes: Vec<u64> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(completes, vec![1, 1, 0]);
    assert_eq!(
        all_rows(&client, "select 1 as a; select 'x' as b, 2 as c").await,
        vec![
            vec![Some("1".to_string())],
            vec![Some("x".to_string()), Some("2".to_string())]
        ]
    );
    // Empty and comment-only strings get EmptyQueryResponse (Grafana's `-- ping`).
    for empty in ["", "-- ping", " ; "] {
        let messages = client.simple_query(empty).await.unwrap();
        assert!(
            messages
                .iter()
                .all(|m| !matches!(m, SimpleQueryMessage::Row(_))),
            "{empty:?}"
        );
    }
    client.batch_execute("-- ping").await.unwrap();
    // Text results of every type, with NULL.
    assert_eq!(
        all_rows(
            &client,
            "select true as a, cast(7 as smallint) as b, 1.5::float8 as c, 1.50::numeric(10,2) as d, 'héllo'::varchar as e, \
             date '2024-02-29', timestamp '2024-02-29 13:14:15', null::int"
        )
        .await,
        vec![vec![
            Some("t".into()),
            Some("7".into()),
            Some("1.5".into()),
            Some("1.50".into()),
            Some("héllo".into()),
            Some("2024-02-29".into()),
            Some("2024-02-29 13:14:15".into()),
            None,
        ]]
    );
}

/// Result types as PostgreSQL gives them, and the binary values agreeing with what was described:
/// integer literals are `int4` when they fit (`l_linenumber + 1` stays `int4`), and a union is
/// described with its inputs' common type (it was the first input's: 8-byte values went out under
/// an `int4` description).
#[tokio::test]
async fn described_types_follow_postgres_and_match_the_values() {
    let server = Tributary::start(None);
    let client = server.connect("tpch").await;
    let sql = "select 1, 3000000000, l_linenumber + 1, l_linenumber * 2::smallint, l_orderkey + 1 \
               from tiny.lineitem where l_orderkey = 1 and l_linenumber = 1";
    let statement = client.prepare(sql).await.unwrap();
    let types: Vec<Type> = statement
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    assert_eq!(
        types,
        [Type::INT4, Type::INT8, Type::INT4, Type::INT4, Type::INT8]
    );
    let row = client.query_one(&statement, &[]).await.unwrap();
    assert_eq!(
        (
            row.get::<_, i32>(0),
            row.get::<_, i64>(1),
            row.get::<_, i32>(2),
            row.get::<_, i32>(3),
            row.get::<_, i64>(4)
        ),
        (1, 3_000_000_000, 2, 2, 2)
    );
    let union = "select l_linenumber from tiny.lineitem where l_orderkey = 1 and l_linenumber = 2 \
                 union all select l_orderkey * 3000000000 from tiny.lineitem \
                 where l_orderkey = 1 and l_linenumber = 1 order by 1";
    let statement = client.prepare(union).await.unwrap();
    assert_eq!(statement.columns()[0].type_(), &Type::INT8);
    let rows = client.query(&statement, &[]).await.unwrap();
    let values: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(values, [2, 3_000_000_000]);
    // Named by the leftmost SELECT, as PostgreSQL names them.
    let statement = client.prepare("select 1 union all select 2").await.unwrap();
    assert_eq!(statement.columns()[0].name(), "?column?");
    assert_eq!(statement.columns()[0].type_(), &Type::INT4);
    // sum of a bigint is numeric (past 2^63 without wrapping), of an integer bigint, as in
    // PostgreSQL.
    let statement = client
        .prepare(
            "select sum(l_orderkey * 3000000000000000000), sum(l_linenumber) from tiny.lineitem              where l_orderkey < 3",
        )
        .await
        .unwrap();
    let types: Vec<Type> = statement
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    assert_eq!(types, [Type::NUMERIC, Type::INT8]);
    let row = client
        .simple_query(
            "select sum(l_orderkey * 3000000000000000000), sum(l_linenumber) from tiny.lineitem              where l_orderkey < 3",
        )
        .await
        .unwrap();
    let values: Vec<Option<&str>> = match &row[1] {
        tokio_postgres::SimpleQueryMessage::Row(r) => vec![r.get(0), r.get(1)],
        other => panic!("{other:?}"),
    };
    assert_eq!(values, [Some("24000000000000000000"), Some("22")]);
    // Overflow is PostgreSQL's error, in both protocols.
    for sql in [
        "select 2147483647 + l_linenumber from tiny.lineitem",
        "select l_linenumber * 1000000000 from tiny.lineitem",
    ] {
        let err = client.query(sql, &[]).await.expect_err(sql);
        assert_eq!(
            err.code(),
            Some(&SqlState::NUMERIC_VALUE_OUT_OF_RANGE),
            "{sql}"
        );
        assert_eq!(
            err.as_db_error().map(|e| e.message()),
            Some("integer out of range")
        );
        assert_eq!(
            sqlstate(&client, sql).await,
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE
        );
    }
    assert_alive(&client).await;
}

#[tokio::test]
async fn extended_protocol_binary_parameters_and_results() {
    let server = Tributary::start(None);
    let client = server.connect("tpch").await;

    let row = client
        .query_one(
            "select $1::bool, $2::int2, $3::int4, $4::int8, $5::float4, $6::float8, $7::text, \
             $8::varchar, $9::bytea",
            &[
                &true,
                &7i16,
                &-42i32,
                &(1i64 << 40),
                &1.5f32,
                &-2.25f64,
                &"héllo",
                &"v",
                &vec![0u8, 1, 255],
            ],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, i16>(1), 7);
    assert_eq!(row.get::<_, i32>(2), -42);
    assert_eq!(row.get::<_, i64>(3), 1i64 << 40);
    assert_eq!(row.get::<_, f32>(4), 1.5);
    assert_eq!(row.get::<_, f64>(5), -2.25);
    assert_eq!(row.get::<_, String>(6), "héllo");
    assert_eq!(row.get::<_, String>(7), "v");
    assert_eq!(row.get::<_, Vec<u8>>(8), vec![0u8, 1, 255]);

    let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let time = NaiveTime::from_hms_micro_opt(13, 14, 15, 250_000).unwrap();
    let timestamp = NaiveDateTime::new(date, time);
    let row = client
        .query_one(
            "select $1::date, $2::time, $3::timestamp",
            &[&date, &time, &timestamp],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, NaiveDate>(0), date);
    assert_eq!(row.get::<_, NaiveTime>(1), time);
    assert_eq!(row.get::<_, NaiveDateTime>(2), timestamp);

    let row = client
        .query_one(
            "select timestamptz '2024-02-29 13:14:15+00', interval '1 day 2 hours', \
             1.50::numeric(10,2), null::int4, $1::int4",
            &[&None::<i32>],
        )
        .await
        .unwrap();
    let tz: DateTime<Utc> = row.get(0);
    assert_eq!(
        tz.naive_utc(),
        NaiveDateTime::new(date, NaiveTime::from_hms_opt(13, 14, 15).unwrap())
    );
    // interval: microseconds (8 bytes), days (4), months (4)
    let Raw(interval) = row.get(1);
    assert_eq!(&interval[..8], &7_200_000_000i64.to_be_bytes());
    assert_eq!(&interval[8..12], &1i32.to_be_bytes());
    assert_eq!(&interval[12..], &0i32.to_be_bytes());
    assert_eq!(row.columns()[2].type_(), &Type::NUMERIC);
    let Raw(numeric) = row.get(2);
    assert!(!numeric.is_empty());
    assert_eq!(row.get::<_, Option<i32>>(3), None);
    assert_eq!(row.get::<_, Option<i32>>(4), None);

    // Named statements, reused with other parameters; Describe gives parameter and column types.
    let statement = client
        .prepare("select $1::int8 * 2 as doubled")
        .await
        .unwrap();
    assert_eq!(statement.params(), &[Type::INT8]);
    assert_eq!(statement.columns()[0].name(), "doubled");
    for n in [1i64, 21, -5] {
        let row = client.query_one(&statement, &[&n]).await.unwrap();
        assert_eq!(row.get::<_, i64>(0), n * 2);
    }
    // Parse with explicit parameter types.
    let statement = client
        .prepare_typed("select $1::int4 + 1", &[Type::INT4])
        .await
        .unwrap();
    assert_eq!(statement.params(), &[Type::INT4]);
    let row = client.query_one(&statement, &[&41i32]).await.unwrap();
    // int4 + the literal 1 (an int4, as in PostgreSQL) is int4.
    assert_eq!(row.get::<_, i32>(0), 42);
    // Portals with a row limit (PortalSuspended) inside a transaction.
    let mut client = client;
    let transaction = client.transaction().await.unwrap();
    let portal = transaction
        .bind("select * from (values (1), (2), (3)) t(a)", &[])
        .await
        .unwrap();
    let first = transaction.query_portal(&portal, 2).await.unwrap();
    let rest = transaction.query_portal(&portal, 2).await.unwrap();
    assert_eq!((first.len(), rest.len()), (2, 1));
    transaction.commit().await.unwrap();
    assert_alive(&client).await;
}

/// Bind with a text-format parameter and text results, as raw protocol messages (tokio-postgres always
/// sends binary parameters).
#[test]
fn extended_protocol_text_parameters() {
    let server = Tributary::start(None);
    let mut socket = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut startup = Vec::new();
    startup.extend_from_slice(&196608i32.to_be_bytes());
    for s in ["user", "raw", "database", "tpch", ""] {
        startup.extend_from_slice(s.as_bytes());
        startup.push(0);
    }
    let mut message = ((startup.len() + 4) as i32).to_be_bytes().to_vec();
    message.extend(startup);
    socket.write_all(&message).unwrap();
    read_until(&mut socket, b'Z');

    let mut out = Vec::new();
    // Parse "" "select $1::int4 + 1, $2::text" with no types.
    let mut body = b"\0select $1::int4 + 1, $2::text\0".to_vec();
    body.extend_from_slice(&0i16.to_be_bytes());
    frame(&mut out, b'P', &body);
    // Bind "" "" : 1 format code (text), 2 params, 1 result format (text)
    let mut body = b"\0\0".to_vec();
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&2i16.to_be_bytes());
    for p in ["41", "abc"] {
        body.extend_from_slice(&(p.len() as i32).to_be_bytes());
        body.extend_from_slice(p.as_bytes());
    }
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    frame(&mut out, b'B', &body);
    frame(&mut out, b'E', b"\0\0\0\0\0");
    frame(&mut out, b'S', b"");
    socket.write_all(&out).unwrap();
    let messages = read_until(&mut socket, b'Z');
    let data_row = messages
        .iter()
        .find(|(tag, _)| *tag == b'D')
        .unwrap_or_else(|| panic!("no DataRow in {messages:?}"));
    let body = &data_row.1;
    assert_eq!(i16::from_be_bytes([body[0], body[1]]), 2);
    let len = i32::from_be_bytes([body[2], body[3], body[4], body[5]]) as usize;
    assert_eq!(&body[6..6 + len], b"42");
    assert_eq!(&body[6 + len + 4..], b"abc");
}

fn frame(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
}

/// Reads backend messages up to and including the first one tagged `last`.
fn read_until(socket: &mut TcpStream, last: u8) -> Vec<(u8, Vec<u8>)> {
    let mut messages = Vec::new();
    loop {
        let mut header = [0u8; 5];
        socket.read_exact(&mut header).unwrap();
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        socket.read_exact(&mut body).unwrap();
        assert_ne!(
            header[0],
            b'E',
            "ErrorResponse: {}",
            String::from_utf8_lossy(&body)
        );
        messages.push((header[0], body));
        if header[0] == last {
            return messages;
        }
    }
}

#[tokio::test]
async fn errors_carry_sqlstate_and_the_session_keeps_working() {
    let server = Tributary::start(None);
    let client = server.connect("tpch").await;
    let cases: &[(&str, SqlState)] = &[
        ("selec 1", SqlState::SYNTAX_ERROR),
        ("select * from no_such_table", SqlState::UNDEFINED_TABLE),
        (
            "select no_such_column from (values (1)) t(a)",
            SqlState::UNDEFINED_COLUMN,
        ),
        ("select 1/0", SqlState::DIVISION_BY_ZERO),
        (
            "select 1/a from (values (0)) t(a)",
            SqlState::DIVISION_BY_ZERO,
        ),
        (
            "select * from tpch.no_such_schema.t",
            SqlState::INVALID_SCHEMA_NAME,
        ),
        ("create table t (a int)", SqlState::FEATURE_NOT_SUPPORTED),
        (
            "set extra_float_digits = 9",
            SqlState::INVALID_PARAMETER_VALUE,
        ),
        ("set no_such_parameter = 1", SqlState::UNDEFINED_OBJECT),
        ("show no_such_parameter", SqlState::UNDEFINED_OBJECT),
        (
            "set server_version = '1'",
            SqlState::CANT_CHANGE_RUNTIME_PARAM,
        ),
        // PostgreSQL's 1 GiB per value, checked before anything is allocated.
        (
            "select repeat('x', 2000000000)",
            SqlState::PROGRAM_LIMIT_EXCEEDED,
        ),
        (
            "select length(repeat(n_name, 200000000)) from tpch.tiny.nation",
            SqlState::PROGRAM_LIMIT_EXCEEDED,
        ),
        (
            "select lpad('x', 1000000000)",
            SqlState::PROGRAM_LIMIT_EXCEEDED,
        ),
        (
            "select string_agg(repeat(n_name, 7000000), ',') from tpch.tiny.nation",
            SqlState::PROGRAM_LIMIT_EXCEEDED,
        ),
        ("select no_such_function(1)", SqlState::UNDEFINED_FUNCTION),
        (
            "select a, count(*) from (values (1, 2)) t(a, b) group by b",
            SqlState::GROUPING_ERROR,
        ),
        (
            "select n_name + 1 from tpch.tiny.nation",
            SqlState::UNDEFINED_FUNCTION,
        ),
        ("select 'a'::int", SqlState::INVALID_TEXT_REPRESENTATION),
        ("select 5 % 0", SqlState::DIVISION_BY_ZERO),
        // A simple query has no parameters; `:1` is no PostgreSQL token (sqlparser takes it for a
        // placeholder: both were internal errors, found by the malformed-message fuzzer).
        ("select $1", SqlState::UNDEFINED_PARAMETER),
        ("explain select $1 + 1", SqlState::UNDEFINED_PARAMETER),
        ("select:1", SqlState::SYNTAX_ERROR),
        ("select :name", SqlState::SYNTAX_ERROR),
    ];
    for (sql, expected) in cases {
        assert_eq!(&sqlstate(&client, sql).await, expected, "{sql}");
        assert_alive(&client).await;
    }
    // PostgreSQL's words, never DataFusion's (nor its plea to file a bug).
    for (sql, message) in [
        (
            "select sum(n_name) from tpch.tiny.nation",
            "function sum(text) does not exist",
        ),
        (
            "select n_name + 1 from tpch.tiny.nation",
            "operator does not exist: text + integer",
        ),
        (
            "select 'a'::int",
            "invalid input syntax for type integer: \"a\"",
        ),
        ("select 2147483648::bigint::int", "integer out of range"),
    ] {
        let err = client.simple_query(sql).await.expect_err(sql);
        assert_eq!(
            err.as_db_error().map(|e| e.message()),
            Some(message),
            "{sql}"
        );
    }
    // The same through the extended protocol (errors at Parse and at Execute).
    let err = client
        .prepare("select * from no_such_table")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
    let err = client
        .query("select 10 / $1::int4", &[&0i32])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO));
    assert_alive(&client).await;
    // A failed transaction refuses statements until ROLLBACK.
    client.batch_execute("begin").await.unwrap();
    assert_eq!(
        sqlstate(&client, "select 1/0").await,
        SqlState::DIVISION_BY_ZERO
    );
    assert_eq!(
        sqlstate(&client, "select 1").await,
        SqlState::IN_FAILED_SQL_TRANSACTION
    );
    client.batch_execute("rollback").await.unwrap();
    assert_alive(&client).await;
}

#[tokio::test]
async fn cancel_request_stops_the_running_query() {
    let server = Tributary::start(None);
    let client = server.connect("tpch").await;
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(NoTls).await.unwrap();
    });
    let started = std::time::Instant::now();
    let err = client
        .simple_query("select count(*) from generate_series(1, 100000000000) t(a)")
        .await
        .expect_err("the query should be canceled");
    canceller.await.unwrap();
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_alive(&client).await;

    // Cancel reaches a query before its result stream exists (EXPLAIN ANALYZE runs it whole first).
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(NoTls).await.unwrap();
    });
    let err = client
        .simple_query("explain analyze select count(*) from generate_series(1, 100000000000) t(a)")
        .await
        .expect_err("the EXPLAIN ANALYZE should be canceled");
    canceller.await.unwrap();
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
    assert_alive(&client).await;

    // statement_timeout cancels too.
    client
        .batch_execute("set statement_timeout = '200ms'")
        .await
        .unwrap();
    let err = client
        .query(
            "select count(*) from generate_series(1, 100000000000) t(a)",
            &[],
        )
        .await
        .expect_err("the query should time out");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
    client
        .batch_execute("reset statement_timeout")
        .await
        .unwrap();
    assert_alive(&client).await;
}

/// `pg_stat_activity` lists the sessions with their running query; `pg_cancel_backend(pid)` from
/// another session cancels it (57014 for the canceled client), refuses another user's session (42501)
/// and answers false for an unknown pid.
#[tokio::test]
async fn pg_stat_activity_shows_sessions_and_pg_cancel_backend_cancels() {
    let server = Tributary::start(None);
    let runner = server.connect("tpch").await;
    let watcher = server.connect("tpch").await;
    let long = "select count(*) from generate_series(1, 100000000000) t(a)";
    let running = tokio::spawn(async move { runner.simple_query(long).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (pid, state, application) = loop {
        let rows = all_rows(
            &watcher,
            "select pid, state, application_name, usename, datname, backend_type, \
                    query_start is not null \
             from pg_stat_activity where query like '%generate_series(1, 100000000000)%' \
               and query not like '%pg_stat_activity%'",
        )
        .await;
        if let Some(row) = rows.first() {
            assert_eq!(row[3].as_deref(), Some("tester"), "{row:?}");
            assert_eq!(row[4].as_deref(), Some("tpch"), "{row:?}");
            assert_eq!(row[5].as_deref(), Some("client backend"), "{row:?}");
            assert_eq!(row[6].as_deref(), Some("t"), "{row:?}");
            break (row[0].clone().unwrap(), row[1].clone(), row[2].clone());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the query never showed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(state.as_deref(), Some("active"));
    assert_eq!(application.as_deref(), Some("compat-tests"));
    // The watcher itself is listed too, idle or active.
    let sessions = all_rows(&watcher, "select count(*) from pg_stat_activity").await;
    assert_eq!(sessions[0][0].as_deref(), Some("2"), "{sessions:?}");

    // Another user does not see its text, and may not cancel it.
    let mut as_other = server.config("tpch");
    as_other.user("someone_else");
    let other = compat_tests::try_connect_with(&as_other).await.unwrap();
    let hidden = all_rows(
        &other,
        &format!("select query, query_start from pg_stat_activity where pid = {pid}"),
    )
    .await;
    assert_eq!(
        hidden,
        [[Some("<insufficient privilege>".to_string()), None]],
        "another user's query is hidden"
    );
    let refused = other
        .simple_query(&format!("select pg_cancel_backend({pid})"))
        .await
        .expect_err("another user's session");
    assert_eq!(
        refused.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{refused:?}"
    );

    let canceled = all_rows(&watcher, &format!("select pg_cancel_backend({pid})")).await;
    assert_eq!(canceled[0][0].as_deref(), Some("t"));
    let err = running.await.unwrap().expect_err("the query was canceled");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
    let unknown = all_rows(&watcher, "select pg_cancel_backend(1)").await;
    assert_eq!(unknown[0][0].as_deref(), Some("f"));
    assert_alive(&watcher).await;
}

/// `pg_terminate_backend(pid)` ends a session as PostgreSQL does: a running query's client gets FATAL
/// 57P01 and its connection closes, the query is canceled; an idle session is closed too; another
/// user's session is refused (42501) and an unknown pid answers false.
#[tokio::test]
async fn pg_terminate_backend_ends_sessions() {
    let server = Tributary::start(None);
    let watcher = server.connect("tpch").await;
    let runner = server.connect("tpch").await;
    let runner_pid = text_value(&runner, "select pg_backend_pid()").await;
    let idle = server.connect("tpch").await;
    let idle_pid = text_value(&idle, "select pg_backend_pid()").await;

    let mut as_other = server.config("tpch");
    as_other.user("someone_else");
    let other = compat_tests::try_connect_with(&as_other).await.unwrap();
    let refused = other
        .simple_query(&format!("select pg_terminate_backend({idle_pid})"))
        .await
        .expect_err("another user's session");
    assert_eq!(
        refused.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{refused:?}"
    );

    let long = "select count(*) from generate_series(1, 100000000000) t(terminated_query)";
    let running = tokio::spawn(async move {
        let result = runner.simple_query(long).await;
        (result, runner)
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while all_rows(
        &watcher,
        &format!("select state from pg_stat_activity where pid = {runner_pid}"),
    )
    .await
        != [[Some("active".to_string())]]
    {
        assert!(std::time::Instant::now() < deadline, "the query never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done = all_rows(
        &watcher,
        &format!("select pg_terminate_backend({runner_pid})"),
    )
    .await;
    assert_eq!(done[0][0].as_deref(), Some("t"));
    let (result, runner) = tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("the terminated query ended")
        .unwrap();
    let err = result.expect_err("the session was terminated");
    assert_eq!(err.code(), Some(&SqlState::ADMIN_SHUTDOWN), "{err:?}");
    assert!(runner.simple_query("select 1").await.is_err());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let state = all_rows(
            &watcher,
            "select state, session_pid from system.runtime.queries \
             where query like '%(terminated_query)%' and query not like '%runtime.queries%'",
        )
        .await;
        // The query is the terminated session's, by pid.
        if state == [[Some("CANCELED".to_string()), Some(runner_pid.clone())]] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{state:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // An idle session: closed with the same FATAL, seen by its next statement.
    let done = all_rows(
        &watcher,
        &format!("select pg_terminate_backend({idle_pid})"),
    )
    .await;
    assert_eq!(done[0][0].as_deref(), Some("t"));
    assert!(idle.simple_query("select 1").await.is_err());
    // The client sees the FATAL before the server has closed the session: as in PostgreSQL,
    // pg_stat_activity drops it a moment later.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listed = all_rows(
            &watcher,
            &format!(
                "select count(*) from pg_stat_activity where pid in ({runner_pid}, {idle_pid})"
            ),
        )
        .await;
        if listed[0][0].as_deref() == Some("0") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{listed:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let unknown = all_rows(&watcher, "select pg_terminate_backend(1)").await;
    assert_eq!(unknown[0][0].as_deref(), Some("f"));
    assert_alive(&watcher).await;
}

/// SIGTERM on a server that serves sessions: no new sessions, the running query finishes and its
/// client gets its rows, then the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_running_queries_finish_then_exits() {
    let server = Tributary::start(None);
    let client = server.connect("tpch").await;
    let watcher = server.connect("tpch").await;
    let running = tokio::spawn(async move {
        all_rows(
            &client,
            "select l_returnflag, count(*) from tpch.sf1.lineitem group by 1 order by 1",
        )
        .await
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while all_rows(
        &watcher,
        "select count(*) from pg_stat_activity where query like '%sf1.lineitem%' \
           and query not like '%pg_stat_activity%'",
    )
    .await
        != [[Some("1".to_string())]]
    {
        assert!(std::time::Instant::now() < deadline, "the query never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        server.try_connect("tpch").await.is_err(),
        "a new session was accepted after SIGTERM"
    );
    let rows = tokio::time::timeout(Duration::from_secs(120), running)
        .await
        .expect("the running query finishes")
        .unwrap();
    assert_eq!(
        rows,
        [
            [Some("A".to_string()), Some("1478493".to_string())],
            [Some("N".to_string()), Some("3043852".to_string())],
            [Some("R".to_string()), Some("1478870".to_string())],
        ]
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.try_wait() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not exit"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exited with {status}");
}

#[tokio::test]
async fn session_statements() {
    let server = Tributary::start(None);
    let client = server.connect("tpch").await;
    assert_eq!(text_value(&client, "show search_path").await, "tiny");
    client
        .batch_execute("set search_path to \"$user\", sf1")
        .await
        .unwrap();
    assert_eq!(
        text_value(&client, "show search_path").await,
        "\"$user\", sf1"
    );
    client
        .batch_execute("set search_path = tiny")
        .await
        .unwrap();
    assert_eq!(text_value(&client, "show search_path").await, "tiny");
    client.batch_execute("reset search_path").await.unwrap();
    assert_eq!(text_value(&client, "show search_path").await, "tiny");

    client.batch_execute("SET TIME ZONE 'UTC'").await.unwrap();
    assert_eq!(text_value(&client, "show timezone").await, "UTC");
    client
        .batch_execute("set application_name = 'renamed'; set DateStyle = 'ISO, DMY'")
        .await
        .unwrap();
    assert_eq!(
        text_value(&client, "show application_name").await,
        "renamed"
    );
    assert_eq!(text_value(&client, "show datestyle").await, "ISO, DMY");
    client.batch_execute("set myapp.flag = 'on'").await.unwrap();
    assert_eq!(text_value(&client, "show myapp.flag").await, "on");
    assert_eq!(
        text_value(&client, "show transaction isolation level").await,
        "read committed"
    );
    assert!(all_rows(&client, "show all").await.len() > 10);

    for (sql, tag) in [
        ("begin", 0),
        ("start transaction", 0),
        ("commit", 0),
        ("rollback", 0),
    ] {
        let messages = client.simple_query(sql).await.unwrap();
        assert!(
            matches!(messages[..], [SimpleQueryMessage::CommandComplete(n)] if n == tag),
            "{sql}"
        );
    }

    let plan = all_rows(&client, "explain select 1").await;
    assert!(!plan.is_empty());
    let messages = client.simple_query("explain select 1").await.unwrap();
    let SimpleQueryMessage::RowDescription(columns) = &messages[0] else {
        panic!("{messages:?}")
    };
    assert_eq!(columns[0].name(), "QUERY PLAN");
}

#[tokio::test]
async fn psql_works() {
    let server = Tributary::start(None);
    let output = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &server.port().to_string()])
        .args(["-U", "x", "-d", "tpch", "-X", "-A", "-t"])
        .args(["-c", "select 40 + 2 as answer", "-c", "show search_path"])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql is installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout.lines().collect::<Vec<_>>(), vec!["42", "tiny"]);
}

#[test]
fn bad_config_fails_startup_naming_the_file() {
    let cases = [
        ("broken", "connector = \"no_such_connector\"\n"),
        ("garbled", "connector = \n"),
    ];
    for (name, toml) in cases {
        let dir = ConfigDir::new().catalog(name, toml);
        let failure = Tributary::try_start(Some(dir.path())).expect_err("startup should fail");
        let status = failure.status.expect("the process should exit");
        assert!(!status.success());
        assert!(
            failure.log.contains(&format!("{name}.toml")),
            "{}",
            failure.log
        );
    }
    let dir = ConfigDir::new().config("[server]\nlisten = \"127.0.0.1:1\"\nlistn = 2\n");
    let failure = Tributary::try_start(Some(dir.path())).expect_err("startup should fail");
    assert!(failure.log.contains("config.toml"), "{}", failure.log);
    assert!(failure.log.contains("server.listn"), "{}", failure.log);
}

/// `SET progress_notices = on` over the extended protocol (tokio-postgres's `query` is Parse/Bind/
/// Execute): NOTICEs arrive while the query runs, before its rows, and the rows still stream.
#[tokio::test]
async fn progress_notices_arrive_over_the_extended_protocol() {
    use futures::StreamExt;
    let tributary = Tributary::start(None);
    let (client, mut connection) = tributary
        .config("tpch")
        .connect(NoTls)
        .await
        .expect("connects");
    let (notices_tx, mut notices) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notice(notice) = message {
                let _ = notices_tx.send(notice.message().to_string());
            }
        }
    });
    client
        .batch_execute("set progress_notices = on; set progress_interval = '200ms'")
        .await
        .expect("set");
    let rows = client
        .query(
            "select a % $1, count(*) from generate_series(1, 8000000) t(a) group by 1 order by 1",
            &[&3_i64],
        )
        .await
        .expect("query");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].get::<_, i64>(1), 2_666_666);
    let mut seen = Vec::new();
    while let Ok(notice) = notices.try_recv() {
        seen.push(notice);
    }
    assert!(
        seen.iter()
            .any(|n| n.starts_with("query ") && n.contains(" tasks finished, ")),
        "no progress notice over the extended protocol: {seen:?}\n{}",
        compat_tests::tail(&tributary.log(), 30)
    );
    // A statement whose portal ran to the end: the rows and tag are PostgreSQL's.
    let statement = client.prepare("select 1 union all select 2").await.unwrap();
    assert_eq!(client.query(&statement, &[]).await.unwrap().len(), 2);
    assert_eq!(client.execute(&statement, &[]).await.unwrap(), 2);
}

/// `now()` and `current_timestamp` are timestamptz in the session's zone, as in PostgreSQL.
#[tokio::test]
async fn now_is_a_timestamptz_in_the_session_zone() {
    let server = Tributary::start(None);
    let client = server.connect("tpch").await;
    let statement = client
        .prepare("select now(), current_timestamp")
        .await
        .unwrap();
    assert_eq!(statement.columns()[0].type_(), &Type::TIMESTAMPTZ);
    assert_eq!(statement.columns()[1].type_(), &Type::TIMESTAMPTZ);
    let text = text_value(&client, "select now()").await;
    assert!(text.ends_with("+00"), "{text}");
    client
        .batch_execute("set timezone = '+02:00'")
        .await
        .unwrap();
    let text = text_value(&client, "select now()").await;
    assert!(text.ends_with("+02"), "{text}");
}
