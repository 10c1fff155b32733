//! A `mysql` catalog over a real MariaDB, through the built server and a real client: values in text
//! and binary result formats, filter pushdown visible in EXPLAIN, a federated join of MariaDB,
//! PostgreSQL and tpch tables, and wrong-password / down-source errors.

use compat_tests::results::query_text;
use compat_tests::source_failure::{assert_catalog_error, assert_tpch_still_served};
use compat_tests::{ConfigDir, Mariadb, Postgres, Tributary, free_port};

/// Database `mshop` on the shared MariaDB (50 items) and `mfed` on the shared PostgreSQL
/// (customers of nations 0..4, two each); catalogs `my` and `pg` over them.
async fn catalogs() -> ConfigDir {
    let my = Mariadb::shared();
    my.execute(
        "CREATE DATABASE IF NOT EXISTS mshop;
         CREATE OR REPLACE TABLE mshop.items (
             id int PRIMARY KEY, nationkey int, price decimal(10,2), name varchar(20),
             created datetime, big bigint unsigned, tm time, yr year, kind enum('a','b'), f double);
         INSERT INTO mshop.items
           SELECT seq, seq % 25, seq * 1.25, concat('item ', seq),
                  TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq HOUR, 18446744073709551615 - seq,
                  SEC_TO_TIME(seq * 61), 2000 + seq, IF(seq % 2 = 0, 'a', 'b'), seq / 4
           FROM mshop.seq_1_to_50;
         INSERT INTO mshop.items (id) VALUES (51);",
    );
    let pg = Postgres::shared();
    pg.create_database("mfed").await;
    let client = pg.connect("mfed").await;
    client
        .batch_execute(
            "create table if not exists customers (nationkey int, segment text);
             truncate customers;
             insert into customers select i % 5, 'segment ' || i from generate_series(0, 9) i;",
        )
        .await
        .unwrap();
    ConfigDir::new()
        .catalog("my", &my.catalog_toml("database = \"mshop\"\n"))
        .catalog(
            "pg",
            &format!(
                "connector = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"mfed\"\nuser = \"postgres\"\n",
                pg.port()
            ),
        )
}

/// The rows with whole-second times and timestamps written without the `.000000` the server's
/// text output currently adds (MariaDB's client, like PostgreSQL, omits it).
fn normalized(rows: Vec<Vec<Option<String>>>) -> Vec<Vec<Option<String>>> {
    rows.into_iter()
        .map(|row| {
            row.into_iter()
                .map(|v| v.map(|s| s.strip_suffix(".000000").map(str::to_string).unwrap_or(s)))
                .collect()
        })
        .collect()
}

fn one_row(rows: Vec<Vec<Option<String>>>) -> Vec<Option<String>> {
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows.into_iter().next().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_catalog_text_binary_pushdown_and_federation() {
    let config = catalogs().await;
    let server = Tributary::start(Some(config.path()));
    let client = server.connect("my").await;

    // Text format: aggregates and values equal MariaDB's own.
    let ours = query_text(
        &client,
        "select count(*), count(price), sum(price), min(created), max(big), min(tm), max(yr) \
         from my.mshop.items",
    )
    .await
    .unwrap();
    let theirs = one_row(Mariadb::shared().query(
        "SELECT count(*), count(price), sum(price), min(created), max(big), min(tm), max(yr) \
         FROM mshop.items",
    ));
    assert_eq!(one_row(normalized(ours.rows)), theirs);

    let ours = query_text(
        &client,
        "select id, price, name, created, big, tm, yr, kind from my.mshop.items \
         where id in (1, 50, 51) order by id",
    )
    .await
    .unwrap();
    let theirs = Mariadb::shared().query(
        "SELECT id, price, name, created, big, tm, yr, kind FROM mshop.items \
         WHERE id IN (1, 50, 51) ORDER BY id",
    );
    assert_eq!(normalized(ours.rows), theirs);

    // Binary format (extended protocol): typed values.
    let rows = client
        .query(
            "select id, name, created, yr, f, big::text as big from my.mshop.items \
             where id <= 2 order by id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<_, i32>(0), 1);
    assert_eq!(rows[0].get::<_, String>(1), "item 1");
    let created: chrono::NaiveDateTime = rows[1].get(2);
    assert_eq!(created.to_string(), "2024-01-01 02:00:00");
    assert_eq!(rows[1].get::<_, i16>(3), 2002);
    assert_eq!(rows[1].get::<_, f64>(4), 0.5);
    assert_eq!(rows[0].get::<_, String>(5), "18446744073709551614");

    // Pushdown visible in EXPLAIN, with the exact remote SQL; strings stay local.
    let explain = |sql: &'static str| {
        let client = &client;
        async move {
            let plan = query_text(client, &format!("explain {sql}")).await.unwrap();
            plan.rows
                .into_iter()
                .flat_map(|r| r.into_iter().flatten())
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    let plan = explain("select id from my.mshop.items where id > 45 and created >= timestamp '2024-01-02 00:00:00'").await;
    assert!(
        plan.contains("MySqlScan")
            && plan.contains("(`id` > 45)")
            && plan.contains("(`created` >= TIMESTAMP '2024-01-02 00:00:00.000000')"),
        "{plan}"
    );
    let plan = explain("select id from my.mshop.items where name = 'ITEM 1'").await;
    assert!(
        plan.contains("MySqlScan") && !plan.contains("`name` ="),
        "{plan}"
    );
    // Kept local, so byte equality: MariaDB's case-insensitive collation would match 'item 1'.
    let rows = query_text(
        &client,
        "select id from my.mshop.items where name = 'ITEM 1'",
    )
    .await
    .unwrap();
    assert!(rows.rows.is_empty(), "{:?}", rows.rows);

    // Federated: MariaDB items x PostgreSQL customers x tpch nations.
    let joined = query_text(
        &client,
        "select n.n_name, count(*) as c, sum(i.price) as p from my.mshop.items i \
         join tpch.tiny.nation n on i.nationkey = n.n_nationkey \
         join pg.public.customers c on c.nationkey = n.n_nationkey \
         where n.n_name in ('ALGERIA', 'BRAZIL') group by n.n_name order by n.n_name",
    )
    .await
    .unwrap();
    // ALGERIA = 0: items 25, 50 (price 31.25 + 62.50), two customers; BRAZIL = 2: items 2, 27.
    assert_eq!(
        joined.rows,
        vec![
            vec![
                Some("ALGERIA".into()),
                Some("4".into()),
                Some("187.50".into())
            ],
            vec![
                Some("BRAZIL".into()),
                Some("4".into()),
                Some("72.50".into())
            ],
        ]
    );

    // User literals with quotes, backslashes, NUL and Unicode are compared as values, never run as
    // SQL at MariaDB (whose default sql_mode reads a backslash as an escape).
    for (value, expected) in [
        ("item 7", 1i64),
        ("item 7' or '1'='1", 0),
        ("item 7\\' or 1=1 -- ", 0),
        ("item 7\0", 0),
        ("ïtem ☃ 𝄞", 0),
    ] {
        let rows = client
            .query(
                "select count(*) from my.mshop.items where name = $1",
                &[&value],
            )
            .await
            .unwrap_or_else(|e| panic!("{value:?}: {e}"));
        assert_eq!(rows[0].get::<_, i64>(0), expected, "{value:?}");
    }
    let rows = client
        .query("select count(*) from my.mshop.items", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 51);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_wrong_password_and_down_source_fail_their_query_only() {
    let my = Mariadb::shared();
    let port = free_port(); // nothing listens here
    let config = ConfigDir::new()
        .catalog(
            "mybad",
            &my.catalog_toml("password = \"hunter2-wrong\"\ndatabase = \"mysql\"\n"),
        )
        .catalog(
            "mydown",
            &format!(
                "connector = \"mysql\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"u\"\n\
                 password = \"hunter2-secret\"\nconnect_timeout_secs = 2\n"
            ),
        );
    let server = Tributary::start(Some(config.path()));
    let client = server.connect("tpch").await;

    assert_catalog_error(
        &client,
        "select * from mybad.mysql.user",
        "28P01",
        "mybad",
        "hunter2-wrong",
    )
    .await;
    assert_catalog_error(
        &client,
        "select * from mydown.db.t",
        "08001",
        "mydown",
        "hunter2-secret",
    )
    .await;
    assert!(!server.log().contains("hunter2"));

    // The server keeps serving other catalogs.
    assert_tpch_still_served(&client).await;
}
