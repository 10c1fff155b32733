//! The 22 TPC-H queries (compat-tests/queries, a copy of the bench kit's) on a real PostgreSQL 15
//! loaded with TPC-H scale 0.01 and on Tributary's built-in `tpch.tiny` schema, same generator;
//! the results must match (rules in `compat_tests::results`).
//!
//! One test per query. PostgreSQL is started and loaded once per test process; so is the
//! Tributary server (it holds no state between queries).

use std::sync::OnceLock;

use compat_tests::Tributary;
use compat_tests::tpch_compare;

/// Database of the PostgreSQL copy, named like the server's catalog.
const PG_DATABASE: &str = "tpch";

fn tributary() -> &'static Tributary {
    static SERVER: OnceLock<Tributary> = OnceLock::new();
    SERVER.get_or_init(|| Tributary::start(None))
}

async fn check_query(name: &str) {
    tpch_compare::check_query(name, PG_DATABASE, tributary(), "tpch").await;
}

compat_tests::tpch_query_tests!(check_query);

/// The harness itself: all 22 queries run on PostgreSQL and return rows (independent of the
/// server, so a harness or data problem is told apart from a server bug).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_answers_all_queries() {
    tpch_compare::assert_postgres_answers_all_queries(PG_DATABASE).await;
}

/// Semi-join reduction (`SET semijoin_reduction`, `tributary_planner::semijoin`): an aggregate
/// joined on its grouping key by an inner join, as the inner side of a left join, and under an
/// anti join answers as PostgreSQL does with the reduction on and off, and EXPLAIN shows one more
/// semi join (the reducer) only when it is on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semijoin_reduction_answers_as_postgres() {
    use compat_tests::results;
    let queries = [
        "select p_partkey, p_name, a.total, a.n from part p \
         join (select l_partkey, sum(l_quantity) as total, count(*) as n from lineitem \
               group by l_partkey) a on a.l_partkey = p.p_partkey \
         where p_brand = 'Brand#45' and p_container = 'MED JAR' order by p_partkey",
        "select p_partkey, a.total from part p \
         left join (select l_partkey, sum(l_quantity) as total from lineitem \
                    where l_shipdate >= date '1998-06-01' group by l_partkey) a \
           on a.l_partkey = p.p_partkey \
         where p_brand = 'Brand#45' and p_container in ('MED JAR', 'LG PKG') order by p_partkey",
        "select p_partkey from part p where p_brand = 'Brand#23' and p_size < 20 \
         and not exists (select 1 from (select l_partkey from lineitem group by l_partkey \
                                        having sum(l_quantity) > 800) a \
                         where a.l_partkey = p.p_partkey) order by p_partkey",
    ];
    let pg = tpch_compare::postgres_client(PG_DATABASE).await;
    let client = tributary().connect("tpch").await;
    client
        .batch_execute(&format!("SET search_path TO {}", tpch_compare::SCHEMA))
        .await
        .expect("search_path");
    let semi_joins = |plan: &str| plan.lines().filter(|l| l.contains("Semi")).count();
    let mut counts = Vec::new();
    for setting in ["on", "off"] {
        client
            .batch_execute(&format!("set semijoin_reduction = {setting}"))
            .await
            .expect("set semijoin_reduction");
        let shown = results::query_text(&client, "show semijoin_reduction")
            .await
            .expect("show");
        assert_eq!(shown.rows, vec![vec![Some(setting.to_string())]]);
        for sql in queries {
            let kinds = results::kinds_from_postgres(&pg, sql).await.expect("kinds");
            let expected = tpch_compare::run_side("PostgreSQL", &pg, sql)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(!expected.rows.is_empty(), "no rows from PostgreSQL: {sql}");
            let actual = tpch_compare::run_side("tributary", &client, sql)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            if let Err(diff) = results::compare(&expected, &actual, &kinds, true, 10) {
                panic!("semijoin_reduction = {setting}: differs from PostgreSQL\n{diff}\n{sql}");
            }
            let plan = compat_tests::pushdown::explain(&client, sql).await;
            counts.push((semi_joins(&plan), plan));
        }
    }
    let (on, off) = counts.split_at(queries.len());
    for ((sql, (with, plan_on)), (without, plan_off)) in queries.iter().zip(on).zip(off) {
        assert_eq!(
            *with,
            without + 1,
            "one reducing semi join more with the reduction on: {sql}\non:\n{plan_on}\noff:\n{plan_off}"
        );
    }
    let error = client
        .batch_execute("set semijoin_reduction = 'maybe'")
        .await
        .expect_err("not a boolean");
    assert_eq!(
        error.as_db_error().map(|d| d.code().code()),
        Some("22023"),
        "{error}"
    );
}
