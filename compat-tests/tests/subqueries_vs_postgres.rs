//! Correlated subqueries DataFusion cannot decorrelate (non-equality correlation in the select list,
//! WHERE, CASE and nested EXISTS), asked of a `postgres` catalog: the statement runs whole in
//! PostgreSQL, and the answers are PostgreSQL's own, which is the oracle here (the same SQL is run on
//! PostgreSQL directly and compared under `compat_tests::results`' rules).

use compat_tests::pushdown::explain;
use compat_tests::results::{self, compare, kinds_from_postgres};
use compat_tests::tpch_compare::run_side;
use compat_tests::{ConfigDir, Postgres, Tributary};

/// A table in the style of the classic sqllogictest `select` files: five integer columns, 30 rows,
/// some NULLs.
const SETUP: &str = "
    drop table if exists t1;
    create table t1 (a int, b int, c int, d int, e int);
    insert into t1
    select 100 + (i * 37) % 150,
           100 + (i * 53) % 150,
           case when i % 11 = 0 then null else 100 + (i * 71) % 150 end,
           100 + (i * 13) % 150,
           case when i % 7 = 0 then null else 100 + (i * 29) % 150 end
    from generate_series(1, 30) i;
";

/// Each is refused by DataFusion's physical planner today when run anywhere but whole at the source
/// (`Physical plan does not support logical expression ScalarSubquery` / `Exists`).
const QUERIES: &[&str] = &[
    "SELECT a, (SELECT count(*) FROM t1 AS x WHERE x.b < t1.b) FROM t1 ORDER BY 1, 2",
    "SELECT a FROM t1 WHERE EXISTS (SELECT 1 FROM t1 AS x WHERE x.c > t1.c AND x.d < t1.d) ORDER BY 1",
    "SELECT a FROM t1 WHERE NOT EXISTS (SELECT 1 FROM t1 AS x WHERE x.c > t1.c AND x.d < t1.d) ORDER BY 1",
    "SELECT d FROM t1 WHERE (SELECT count(*) FROM t1 AS x WHERE x.b < t1.b) > 5 ORDER BY 1",
    "SELECT (SELECT max(x.a) FROM t1 AS x WHERE x.e < t1.e) AS m, e FROM t1 ORDER BY 2, 1",
    "SELECT a, CASE WHEN (SELECT count(*) FROM t1 AS x WHERE x.a < t1.a) > 10 THEN b ELSE c END \
     FROM t1 ORDER BY 1, 2",
    // Nested, each level correlated with the one around it. (A reference two levels up, `y.c >
    // t1.c` here, is refused by DataFusion's SQL planner before any pushdown: apache/datafusion#15558.)
    "SELECT a FROM t1 WHERE EXISTS (SELECT 1 FROM t1 AS x WHERE x.a > t1.a \
       AND EXISTS (SELECT 1 FROM t1 AS y WHERE y.b < x.b AND y.c > x.c)) ORDER BY 1",
    "SELECT a + b * 2, (SELECT count(*) FROM t1 AS x WHERE x.c > t1.c), b - c, a / 7, a % 7 \
     FROM t1 WHERE c > d ORDER BY 1, 2, 3",
    "SELECT a, b FROM t1 WHERE b IN (SELECT x.d FROM t1 AS x WHERE x.a <> t1.a) ORDER BY 1, 2",
    "SELECT a FROM t1 WHERE c > (SELECT min(x.c) FROM t1 AS x WHERE x.d > t1.d) ORDER BY 1",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlated_subqueries_run_whole_in_postgres_with_its_answers() {
    let pg = Postgres::shared();
    pg.create_database("subqueries").await;
    let direct = pg.connect("subqueries").await;
    direct.batch_execute(SETUP).await.unwrap();
    let config = ConfigDir::new().catalog(
        "pgs",
        &format!(
            "connector = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\n\
             database = \"subqueries\"\nuser = \"postgres\"\n",
            pg.port()
        ),
    );
    let server = Tributary::start(Some(config.path()));
    let client = server.connect("pgs").await;
    client
        .batch_execute("SET search_path TO public")
        .await
        .unwrap();
    let mut failures = Vec::new();
    for sql in QUERIES {
        let kinds = kinds_from_postgres(&direct, sql).await.unwrap();
        let expected = run_side("PostgreSQL", &direct, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        match run_side("tributary", &client, sql).await {
            Err(e) => failures.push(format!("{sql}\n  {e}")),
            Ok(actual) => {
                let ordered = results::has_top_level_order_by(sql);
                if let Err(diff) = compare(&expected, &actual, &kinds, ordered, 5) {
                    failures.push(format!("{sql}\n  {diff}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} queries differ from PostgreSQL:\n{}\nlog:\n{}",
        failures.len(),
        QUERIES.len(),
        failures.join("\n"),
        compat_tests::tail(&server.log(), 20)
    );
    // EXPLAIN shows the statement PostgreSQL runs, subquery included.
    let plan = explain(&client, QUERIES[1]).await;
    assert!(
        plan.contains("PostgresScan") && plan.contains("EXISTS (SELECT"),
        "{plan}"
    );
}
