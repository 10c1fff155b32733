//! A `postgres` catalog over a real PostgreSQL, through the built server and a real client: reading,
//! filter pushdown visible in EXPLAIN, a federated join with `tpch`, and a source that is down.

use compat_tests::results::query_text;
use compat_tests::source_failure::{assert_catalog_error, assert_tpch_still_served};
use compat_tests::{ConfigDir, Postgres, Tributary, free_port};

async fn shop_catalog() -> ConfigDir {
    let pg = Postgres::shared();
    pg.create_database("shop").await;
    let client = pg.connect("shop").await;
    client
        .batch_execute(
            "create table if not exists orders (id int primary key, nationkey int, total numeric(10,2), note text);
             truncate orders;
             insert into orders select i, i % 25, i * 1.5, 'order ' || i from generate_series(1, 100) i;",
        )
        .await
        .unwrap();
    ConfigDir::new().catalog(
        "pg",
        &format!(
            "connector = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"shop\"\nuser = \"postgres\"\n",
            pg.port()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_catalog_reads_pushes_filters_and_joins_tpch() {
    let config = shop_catalog().await;
    let server = Tributary::start(Some(config.path()));
    let client = server.connect("pg").await;

    let rows = query_text(&client, "select count(*), sum(total) from public.orders")
        .await
        .unwrap();
    assert_eq!(
        rows.rows,
        vec![vec![Some("100".into()), Some("7575.00".into())]]
    );

    let plan = query_text(
        &client,
        "explain select id from public.orders where id > 95",
    )
    .await
    .unwrap();
    let plan: Vec<String> = plan
        .rows
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();
    let plan = plan.join("\n");
    assert!(
        plan.contains("PostgresScan") && plan.contains("WHERE"),
        "{plan}"
    );

    let joined = query_text(
        &client,
        "select n.n_name, count(*) as c from public.orders o \
         join tpch.tiny.nation n on o.nationkey = n.n_nationkey \
         where n.n_name in ('ALGERIA', 'BRAZIL') group by n.n_name order by n.n_name",
    )
    .await
    .unwrap();
    assert_eq!(
        joined.rows,
        vec![
            vec![Some("ALGERIA".into()), Some("4".into())],
            vec![Some("BRAZIL".into()), Some("4".into())],
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_is_down_fails_its_query_not_the_server() {
    let port = free_port(); // nothing listens here
    let config = ConfigDir::new().catalog(
        "down",
        &format!(
            "connector = \"postgres\"\nhost = \"127.0.0.1\"\nport = {port}\ndatabase = \"x\"\nuser = \"u\"\npassword = \"hunter2-secret\"\n"
        ),
    );
    let server = Tributary::start(Some(config.path()));
    let client = server.connect("tpch").await;
    assert_catalog_error(
        &client,
        "select * from down.public.t",
        "08001",
        "down",
        "hunter2-secret",
    )
    .await;
    assert!(!server.log().contains("hunter2-secret"));
    // The server keeps serving other catalogs.
    assert_tpch_still_served(&client).await;
}

/// A pushed-down string literal means the user's value even when the source's sessions have
/// `standard_conforming_strings = off` (where a backslash in a plain `'...'` literal is an
/// escape): a backslash is matched as itself, and one before a quote does not end the literal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_string_literals_keep_their_backslashes_without_standard_conforming_strings() {
    let pg = Postgres::shared();
    pg.create_database("sloppy").await;
    let admin = pg.connect("sloppy").await;
    admin
        .batch_execute(
            "alter database sloppy set standard_conforming_strings = off;
             create table if not exists notes (id int, note text);
             truncate notes;
             insert into notes values (1, E'a\\\\b'), (2, 'ab'), (3, E'x\\\\'' or true --'),
               (4, 'naïve ☃ 𝄞 ''q'' ב');",
        )
        .await
        .unwrap();
    let config = ConfigDir::new().catalog(
        "pg",
        &format!(
            "connector = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"sloppy\"\nuser = \"postgres\"\n",
            pg.port()
        ),
    );
    let server = Tributary::start(Some(config.path()));
    let client = server.connect("pg").await;
    let ids = |sql: &'static str| {
        let client = &client;
        async move {
            query_text(client, sql)
                .await
                .unwrap()
                .rows
                .into_iter()
                .map(|r| r[0].clone().unwrap())
                .collect::<Vec<_>>()
        }
    };
    let plan = ids("explain select id from public.notes where note = 'a\\b'").await;
    // An escape string (shown with the SQL's backslashes escaped again).
    assert!(plan.join("\n").contains("= E'a\\"), "{plan:?}");
    assert_eq!(
        ids("select id from public.notes where note = 'a\\b'").await,
        ["1"]
    );
    assert_eq!(
        ids("select id from public.notes where note = 'x\\'' or true --' order by id").await,
        ["3"]
    );
    assert_eq!(
        ids("select id from public.notes where note = 'naïve ☃ 𝄞 ''q'' ב'").await,
        ["4"]
    );
    // Bind parameters reach the pushed SQL as literals too: quotes, backslashes and Unicode are
    // compared, and a NUL (which no PostgreSQL text holds) is compared here, not sent.
    for (value, expected) in [
        ("x\\' or true --", vec![3]),
        ("a\\b", vec![1]),
        ("naïve ☃ 𝄞 'q' ב", vec![4]),
        ("ab\0' or true --", vec![]),
        ("' or 1=1 --", vec![]),
    ] {
        let rows = client
            .query(
                "select id from public.notes where note = $1 order by id",
                &[&value],
            )
            .await
            .unwrap_or_else(|e| panic!("{value:?}: {e}"));
        let got: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(got, expected, "{value:?}");
    }
    let rows = client
        .query("select count(*) from public.notes", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 4, "a literal changed the table");
}
