//! Whole-subplan pushdown into a `mysql` catalog over MariaDB, in the style of Trino's connector
//! tests: for each pushdown kind, EXPLAIN shows it in the remote SQL and the result equals running
//! the same query on MariaDB directly; for each "must not push" case (strings under MariaDB's
//! case-insensitive collation, FULL JOIN, floats, functions), EXPLAIN shows it kept local and the
//! result is still right.

use std::sync::OnceLock;

use compat_tests::pushdown::RemoteScans;
use compat_tests::results::{self, Kind, TextRows, query_text};
use compat_tests::{ConfigDir, Mariadb, Tributary};

async fn setup() -> &'static Tributary {
    static SERVER: OnceLock<(ConfigDir, Tributary)> = OnceLock::new();
    let (_, server) = SERVER.get_or_init(|| {
        let my = Mariadb::shared();
        // cat holds 'a' and 'A' (equal under MariaDB's default collation, not in Tributary).
        my.execute(
            "CREATE DATABASE IF NOT EXISTS mpush;
             CREATE OR REPLACE TABLE mpush.items (id int PRIMARY KEY, grp int, cat varchar(5),
               price decimal(10,2), qty bigint, score double, day date, note varchar(20),
               delta decimal(10,2));
             INSERT INTO mpush.items
               SELECT seq, seq % 4,
                      IF(seq % 3 = 0, UPPER(CHAR(97 + seq % 5)), CHAR(97 + seq % 5)),
                      IF(seq % 7 = 0, NULL, seq * 1.25), IF(seq % 5 = 0, NULL, seq * 3),
                      seq / 3.0, DATE '2024-01-01' + INTERVAL seq DAY, concat('Note ', seq),
                      -seq / 100
               FROM mpush.seq_1_to_60;
             CREATE OR REPLACE TABLE mpush.owners (id int PRIMARY KEY, name varchar(20), item_id int);
             INSERT INTO mpush.owners SELECT seq, concat('owner ', seq), (seq * 7) % 70
               FROM mpush.seq_1_to_40;
             ANALYZE TABLE mpush.items, mpush.owners;",
        );
        // `eager`: the join cases check that joins translated to MariaDB's SQL answer the same;
        // `automatic` keeps MariaDB joins here (tpch_on_mysql.rs).
        let config = ConfigDir::new().catalog(
            "my",
            &my.catalog_toml("database = \"mpush\"\njoin_pushdown = \"eager\"\n"),
        );
        let server = Tributary::start(Some(config.path()));
        (config, server)
    });
    server
}

/// Runs `sql` on Tributary (catalog `my`) and `my_sql` on MariaDB directly and compares the
/// results (numbers with tolerance, text with trailing blanks trimmed).
async fn same_as_mariadb(sql: &str, my_sql: &str) {
    let server = setup().await;
    let client = server.connect("my").await;
    let actual = query_text(&client, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}\n{}", compat_tests::tail(&server.log(), 20)));
    let expected = TextRows {
        columns: actual.columns.clone(),
        rows: Mariadb::shared().query(my_sql),
    };
    assert!(!expected.rows.is_empty(), "no rows from MariaDB: {my_sql}");
    let kinds: Vec<Kind> = (0..actual.columns.len())
        .map(|i| {
            let numeric = expected
                .rows
                .iter()
                .filter_map(|r| r.get(i).cloned().flatten())
                .all(|v| v.parse::<f64>().is_ok());
            if numeric { Kind::Number } else { Kind::Text }
        })
        .collect();
    let ordered = results::has_top_level_order_by(sql);
    if let Err(diff) = results::compare(&expected, &actual, &kinds, ordered, 10) {
        panic!("{sql}: result differs from MariaDB's ({my_sql})\n{diff}");
    }
}

/// The server's catalog `my` and its `MySqlScan` statements.
async fn scans() -> RemoteScans<'static> {
    RemoteScans {
        server: setup().await,
        catalog: "my",
        scan_node: "MySqlScan",
    }
}

/// EXPLAIN shows exactly one remote statement (one split) containing every one of `fragments`,
/// and the result equals MariaDB's answer to `my_sql`.
async fn pushed(sql: &str, my_sql: &str, fragments: &[&str]) {
    scans().await.assert_pushed(sql, fragments).await;
    same_as_mariadb(sql, my_sql).await;
}

/// EXPLAIN shows none of `fragments` in any remote statement; the result equals MariaDB's answer
/// to `my_sql`.
async fn kept_local(sql: &str, my_sql: &str, fragments: &[&str]) {
    scans().await.assert_kept_local(sql, fragments).await;
    same_as_mariadb(sql, my_sql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_with_group_by() {
    let sql = "select grp, count(*) as n, count(distinct qty) as dq, sum(price) as s, \
               min(price) as lo, max(day) as last_day, sum(qty) as q, count(note) as notes \
               from mpush.items group by grp";
    pushed(
        sql,
        sql,
        &[
            "GROUP BY",
            "count(*)",
            "count(DISTINCT",
            "sum(",
            "min(",
            "max(",
            "`c0`",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avg_keeps_tributary_types() {
    // avg of integers and of decimals is numeric with 16 decimals, rounded, as PostgreSQL's
    // (MariaDB's avg keeps scale + 4).
    pushed(
        "select grp, avg(qty) as a, avg(price) as ap from mpush.items group by grp",
        "select grp, cast(cast(sum(qty) as decimal(38,16)) / count(qty) as decimal(38,16)), \
         cast(cast(sum(price) as decimal(38,16)) / count(price) as decimal(38,16)) \
         from mpush.items group by grp",
        &[
            "(round(sum(",
            "(round(CAST(sum(",
            "* 10000000000000000 / NULLIF(count(",
        ],
    )
    .await;
    let server = setup().await;
    let client = server.connect("my").await;
    let rows = query_text(
        &client,
        "select avg(price), avg(delta) from mpush.items where id in (2, 4, 5)",
    )
    .await
    .unwrap();
    // (2.50 + 5.00 + 6.25) / 3 = 4.583333..; (-0.02 - 0.04 - 0.05) / 3 = -0.036666.., rounded
    // half away from zero at 16 decimals as PostgreSQL does.
    assert_eq!(
        rows.strings(),
        vec![vec!["4.5833333333333333", "-0.0366666666666667"]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_aggregate_with_filter() {
    let sql = "select count(*), sum(price), max(id) from mpush.items where grp = 1 and price > 10";
    pushed(sql, sql, &["count(*)", "WHERE", "sum("]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_n_with_null_ordering() {
    // MariaDB has no NULLS FIRST/LAST: a leading `x IS NULL` key places them as DataFusion does
    // (ascending: last; descending: first).
    pushed(
        "select id, price from mpush.items order by price, id limit 5",
        "select id, price from mpush.items order by price is null, price, id limit 5",
        &["ORDER BY", "IS NULL) ASC", "LIMIT 5"],
    )
    .await;
    pushed(
        "select id, price from mpush.items order by price desc, id limit 5",
        "select id, price from mpush.items order by price is null desc, price desc, id limit 5",
        &["IS NULL) DESC", "DESC", "LIMIT 5"],
    )
    .await;
    pushed(
        "select id, qty from mpush.items order by qty desc nulls last, id limit 4 offset 2",
        "select id, qty from mpush.items order by qty is null, qty desc, id limit 4 offset 2",
        &["LIMIT 4", "OFFSET 2"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_within_the_catalog() {
    let sql = "select o.id, i.price from mpush.owners o join mpush.items i on o.item_id = i.id \
               where i.grp = 1";
    pushed(sql, sql, &["INNER JOIN", "`owners`", "`items`"]).await;
    let sql = "select o.id, i.qty from mpush.owners o left join mpush.items i on o.item_id = i.id";
    pushed(sql, sql, &["LEFT JOIN"]).await;
    let sql = "select i.grp, count(*) as n, sum(i.price) as s from mpush.owners o \
               join mpush.items i on o.item_id = i.id group by i.grp order by i.grp";
    pushed(sql, sql, &["JOIN", "GROUP BY"]).await;
    let sql = "select id from mpush.items i \
               where exists (select 1 from mpush.owners o where o.item_id = i.id)";
    pushed(sql, sql, &["EXISTS"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_join_is_local() {
    // MariaDB has no FULL JOIN.
    kept_local(
        "select o.id, i.id from mpush.owners o full join mpush.items i on o.item_id = i.id",
        "select o.id, i.id from mpush.owners o left join mpush.items i on o.item_id = i.id \
         union all select null, i.id from mpush.items i \
         where not exists (select 1 from mpush.owners o where o.item_id = i.id)",
        &["JOIN"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_comparison_and_grouping_are_local() {
    // 'a' = 'A' and they group together under MariaDB's default collation; not in Tributary.
    kept_local(
        "select count(*) from mpush.items where cat = 'a'",
        "select count(*) from mpush.items where binary cat = 'a'",
        &["count(", "WHERE"],
    )
    .await;
    kept_local(
        "select cat, count(*) as n from mpush.items group by cat",
        "select binary cat, count(*) from mpush.items group by binary cat",
        &["GROUP BY"],
    )
    .await;
    kept_local(
        "select count(distinct cat) from mpush.items",
        "select count(distinct binary cat) from mpush.items",
        &["count("],
    )
    .await;
    kept_local(
        "select count(*) from mpush.owners o join mpush.items i on o.name = i.note",
        "select count(*) from mpush.owners o join mpush.items i on binary o.name = binary i.note",
        &["JOIN"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_order_by_limit_is_local() {
    kept_local(
        "select note from mpush.items order by note limit 3",
        "select note from mpush.items order by binary note limit 3",
        &["ORDER BY"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_are_local() {
    kept_local(
        "select grp, count(*) from mpush.items where ends_with(note, '1') group by grp",
        "select grp, count(*) from mpush.items where note like binary '%1' group by grp",
        &["ends_with", "GROUP BY"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn float_grouping_and_ordering_are_local() {
    kept_local(
        "select score, count(*) from mpush.items group by score order by score limit 3",
        "select score, count(*) from mpush.items group by score order by score limit 3",
        &["GROUP BY", "ORDER BY"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federated_join_pushes_the_single_source_part() {
    let sql = "select n.n_name, t.c from tpch.tiny.nation n join \
               (select grp, count(*) as c from mpush.items group by grp) t \
               on n.n_nationkey = t.grp order by n.n_name";
    scans()
        .await
        .assert_federated_join_pushes_grouping(sql)
        .await;
}
