//! Whole-subplan pushdown into a `postgres` catalog, in the style of Trino's connector tests: for
//! each pushdown kind, EXPLAIN shows it in the remote SQL and the result equals running the same SQL
//! on PostgreSQL directly; for each "must not push" case, EXPLAIN shows it kept local and the
//! result is still right.

use std::sync::OnceLock;

use compat_tests::pushdown::{RemoteScans, explain};
use compat_tests::results::{self, query_text};
use compat_tests::{ConfigDir, Postgres, Tributary};

const DB: &str = "pushdown";

async fn setup() -> &'static Tributary {
    static LOADED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    static SERVER: OnceLock<(ConfigDir, Tributary)> = OnceLock::new();
    let pg = Postgres::shared();
    LOADED
        .get_or_init(|| async {
            pg.create_database(DB).await;
            let client = pg.connect(DB).await;
            client
                .batch_execute(
                    "drop table if exists items, owners;
                     create table items (id int primary key, grp int, cat text, price numeric(10,2),
                       qty int8, score float8, day date, note varchar(20), flag bool);
                     insert into items
                       select i, i % 4, chr(97 + i % 5) || case when i % 3 = 0 then 'X' else '' end,
                              case when i % 7 = 0 then null else i * 1.25 end,
                              case when i % 5 = 0 then null else i * 3 end,
                              i / 3.0, date '2024-01-01' + i, 'Note ' || i, i % 2 = 0
                       from generate_series(1, 60) i;
                     create table owners (id int primary key, name text, item_id int);
                     insert into owners select i, 'owner ' || i, (i * 7) % 70 from generate_series(1, 40) i;
                     analyze;",
                )
                .await
                .unwrap();
        })
        .await;
    let (_, server) = SERVER.get_or_init(|| {
        let config = ConfigDir::new().catalog(
            "pg",
            &format!(
                "connector = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"{DB}\"\nuser = \"postgres\"\n",
                pg.port()
            ),
        );
        let server = Tributary::start(Some(config.path()));
        (config, server)
    });
    server
}

/// Runs `sql` on Tributary (catalog `pg`, schema `public`) and `pg_sql` on PostgreSQL directly and
/// compares the results.
async fn same_as_postgres(sql: &str, pg_sql: &str) {
    let server = setup().await;
    let pg_client = Postgres::shared().connect(DB).await;
    let kinds = results::kinds_from_postgres(&pg_client, pg_sql)
        .await
        .unwrap();
    let expected = query_text(&pg_client, pg_sql).await.unwrap();
    assert!(
        !expected.rows.is_empty(),
        "no rows from PostgreSQL: {pg_sql}"
    );
    let client = server.connect("pg").await;
    let actual = query_text(&client, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}\n{}", compat_tests::tail(&server.log(), 20)));
    let ordered = results::has_top_level_order_by(sql);
    if let Err(diff) = results::compare(&expected, &actual, &kinds, ordered, 10) {
        panic!("{sql}: result differs from PostgreSQL's\n{diff}");
    }
}

/// The server's catalog `pg` and its `PostgresScan` statements.
async fn scans() -> RemoteScans<'static> {
    RemoteScans {
        server: setup().await,
        catalog: "pg",
        scan_node: "PostgresScan",
    }
}

/// EXPLAIN shows exactly one remote statement containing every one of `fragments`, and the result
/// equals PostgreSQL's.
async fn pushed(sql: &str, fragments: &[&str]) {
    scans().await.assert_pushed(sql, fragments).await;
    same_as_postgres(sql, sql).await;
}

/// EXPLAIN shows none of `fragments` in any remote statement; the result equals PostgreSQL's
/// answer to `pg_sql`.
async fn kept_local(sql: &str, pg_sql: &str, fragments: &[&str]) {
    scans().await.assert_kept_local(sql, fragments).await;
    same_as_postgres(sql, pg_sql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_with_group_by() {
    pushed(
        "select grp, count(*) as n, count(distinct cat) as cats, sum(price) as s, min(price) as lo, \
         max(day) as last_day, sum(qty) as q from items group by grp",
        &["GROUP BY", "count(*)", "count(DISTINCT", "sum(", "min(", "max("],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avg_stddev_variance_keep_local_types() {
    // avg of integers and of decimals is numeric rounded at 16 decimals (as in PostgreSQL, which
    // shows its own scale); stddev of integers is float8.
    pushed(
        "select grp, avg(qty) as a, avg(price) as ap, stddev(qty) as sd, var_samp(price) as v, \
         stddev_pop(score) as sp, var_pop(grp) as vp from items group by grp",
        &[
            "(round(sum(",
            "stddev_samp(",
            "var_samp(",
            "stddev_pop(",
            "var_pop(",
            "float8",
        ],
    )
    .await;
    let server = setup().await;
    let client = server.connect("pg").await;
    let rows = query_text(&client, "select avg(price) from items where id < 4")
        .await
        .unwrap();
    // (1.25 + 2.50 + 3.75) / 3 = 2.5 exactly, at 16 decimals as PostgreSQL shows it.
    assert_eq!(
        rows.rows,
        vec![vec![Some("2.5000000000000000".to_string())]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_aggregate_with_filter() {
    pushed(
        "select count(*), sum(price), max(id) from items where grp = 1 and price > 10",
        &["count(*)", "WHERE", "sum("],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_n_with_null_ordering() {
    // price has NULLs: ascending puts them last, descending first, as in PostgreSQL.
    pushed(
        "select id, price from items order by price, id limit 5",
        &["ORDER BY", "ASC NULLS LAST", "LIMIT 5"],
    )
    .await;
    pushed(
        "select id, price from items order by price desc, id limit 5",
        &["DESC NULLS FIRST", "LIMIT 5"],
    )
    .await;
    pushed(
        "select id, qty from items order by qty desc nulls last, id limit 4 offset 2",
        &["DESC NULLS LAST", "LIMIT 4", "OFFSET 2"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_within_the_catalog() {
    pushed(
        "select o.name, i.price from owners o join items i on o.item_id = i.id where i.grp = 1",
        &["INNER JOIN", "owners", "items"],
    )
    .await;
    pushed(
        "select o.id, i.cat from owners o left join items i on o.item_id = i.id",
        &["LEFT JOIN"],
    )
    .await;
    pushed(
        "select i.grp, count(*) as n, sum(i.price) as s from owners o join items i on o.item_id = i.id \
         group by i.grp order by i.grp",
        &["JOIN", "GROUP BY"],
    )
    .await;
    pushed(
        "select id from items i where exists (select 1 from owners o where o.item_id = i.id)",
        &["EXISTS"],
    )
    .await;
    // EXPLAIN says why each join went to PostgreSQL.
    let client = setup().await.connect("pg").await;
    let plan = explain(
        &client,
        "select o.name, i.price from owners o join items i on o.item_id = i.id",
    )
    .await;
    assert!(
        plan.contains(
            "Pushdown decisions:\n  Inner join on o.item_id = i.id: pushed (join_pushdown = automatic: \
             the source estimates cost"
        ),
        "{plan}"
    );
}

/// `sum` of a bigint is numeric (as in PostgreSQL): PostgreSQL sums the bigint itself, already
/// exactly as numeric, not a numeric cast of it (slower there); the answer is PostgreSQL's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sum_of_bigint_is_summed_by_the_source_as_it_is() {
    let sql = "select grp, sum(qty) as q from items group by grp order by grp";
    pushed(sql, &["GROUP BY", "sum("]).await;
    scans().await.assert_kept_local(sql, &["sum(CAST"]).await;
}

/// `join_pushdown = "automatic"` weighs PostgreSQL's own estimates as Trino does: a join whose
/// result is many times its inputs (every item with every item of its group) would send more
/// bytes than its inputs, so it is joined here; EXPLAIN says so, and the answer is PostgreSQL's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_that_multiply_rows_stay_here() {
    let sql = "select a.id, b.id as other from items a join items b on a.grp = b.grp \
               order by a.id, b.id";
    kept_local(sql, sql, &["JOIN"]).await;
    let client = setup().await.connect("pg").await;
    let plan = explain(&client, sql).await;
    assert!(
        plan.contains(
            "Inner join on a.grp = b.grp: kept here (join_pushdown = automatic: the source \
             estimates cost"
        ),
        "{plan}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_order_by_limit_is_local() {
    // Collations may order strings differently from Tributary's byte order.
    kept_local(
        "select note from items order by note limit 3",
        "select note from items order by note collate \"C\" limit 3",
        &["ORDER BY"],
    )
    .await;
    kept_local(
        "select cat, count(*) from items group by cat order by min(cat) limit 2",
        "select cat, count(*) from items group by cat order by min(cat collate \"C\") limit 2",
        &["min("],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_range_is_local() {
    kept_local(
        "select count(*) from items where cat > 'b'",
        "select count(*) from items where cat collate \"C\" > 'b'",
        &["> 'b'", "count("],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_are_local() {
    // `ends_with` is DataFusion's; PostgreSQL has no such function.
    kept_local(
        "select grp, count(*) from items where ends_with(note, '1') group by grp",
        "select grp, count(*) from items where note like '%1' group by grp",
        &["ends_with", "GROUP BY"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn float_grouping_and_ordering_are_local() {
    // NaN and -0 group and order differently.
    kept_local(
        "select score, count(*) from items group by score order by score limit 3",
        "select score, count(*) from items group by score order by score limit 3",
        &["GROUP BY", "ORDER BY"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federated_join_pushes_the_single_source_part() {
    let sql = "select n.n_name, t.c from tpch.tiny.nation n join \
               (select grp, count(*) as c from items group by grp) t on n.n_nationkey = t.grp \
               order by n.n_name";
    scans()
        .await
        .assert_federated_join_pushes_grouping(sql)
        .await;
}
