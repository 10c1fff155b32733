//! The SQL-source pushdown rule, case by case, against a real PostgreSQL 15 (testkit): for each
//! query, the distributed plan with the remote statement the rule wrote, as an `insta` snapshot
//! (`tests/snapshots/pushdown_rule__*.snap`). Cases that must push show their operator inside the
//! `PostgresScan` SQL; cases that must not (collation-dependent string ranges, float ordering,
//! scalar functions, cross-catalog joins) show it kept in a local operator above the scan. Results
//! are compared with PostgreSQL's by `compat-tests/tests/pushdown.rs`; this file pins the SQL.
//! Accept an intended change with `INSTA_UPDATE=always cargo test -p tributary-planner --test
//! pushdown_rule` and review the diff.

mod common;

use std::sync::Arc;

use datafusion::execution::runtime_env::RuntimeEnv;
use tributary_planner::{CatalogRegistry, explain};
use tributary_testkit::{Postgres, TempDir};

const DB: &str = "pushdown_rule";

/// Each case: a name for its snapshot and the query (catalog `pg`, schema `public`).
const CASES: &[(&str, &str)] = &[
    // Pushed whole: aggregates, joins, top-N, limits, filters that keep their meaning.
    (
        "aggregate_group_by",
        "select grp, count(*), sum(price), min(qty), avg(qty) from items group by grp",
    ),
    (
        "aggregate_count_distinct",
        "select count(distinct cat) from items where flag",
    ),
    (
        "inner_join_with_filter",
        "select o.name, i.price from owners o join items i on o.item_id = i.id where i.qty > 10",
    ),
    (
        "left_join_aggregate",
        "select o.id, count(i.id) from owners o left join items i on o.item_id = i.id group by o.id",
    ),
    (
        "semi_join",
        "select id from items where id in (select item_id from owners)",
    ),
    (
        "top_n_on_numbers",
        "select id, price from items order by price desc nulls last, id limit 5",
    ),
    ("limit_offset", "select id from items limit 3 offset 2"),
    (
        "between_in_list_and_case",
        "select id, case when qty between 3 and 30 then 'low' else 'high' end from items \
         where grp in (1, 2) limit 10",
    ),
    // Kept local: what would change meaning at the source.
    (
        "string_range_stays_local",
        "select cat, count(*) from items where cat > 'b' group by cat",
    ),
    (
        "float_order_stays_local",
        "select id from items order by score desc limit 3",
    ),
    (
        "scalar_function_stays_local",
        "select upper(cat), count(*) from items group by upper(cat)",
    ),
    (
        "cross_catalog_join_stays_local",
        "select n.n_name, count(*) from items i join tpch.tiny.nation n on i.grp = n.n_regionkey \
         group by n.n_name",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushdown_cases() {
    let pg = Postgres::shared();
    pg.create_database(DB).await;
    pg.connect(DB)
        .await
        .batch_execute(
            "create table items (id int primary key, grp int, cat text, price numeric(10,2),
               qty int8, score float8, day date, flag bool);
             insert into items
               select i, i % 4, chr(97 + i % 5), i * 1.25, i * 3, i / 3.0, date '2024-01-01' + i,
                      i % 2 = 0
               from generate_series(1, 60) i;
             create table owners (id int primary key, name text, item_id int);
             insert into owners select i, 'owner ' || i, (i * 7) % 70 from generate_series(1, 40) i;
             analyze;",
        )
        .await
        .expect("test tables");
    let dir = TempDir::new("pushdown-rule");
    std::fs::write(
        dir.path().join("pg.toml"),
        format!(
            "connector = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"{DB}\"\n\
             user = \"postgres\"\n",
            pg.port()
        ),
    )
    .expect("catalog file");
    let registry = CatalogRegistry::load(Some(dir.path()), Arc::new(common::Idle))
        .await
        .expect("catalogs");
    let ctx = tributary_planner::session::new_session_context(
        &registry,
        Arc::new(RuntimeEnv::default()),
        "pg",
        "public",
        4,
    );
    for (name, sql) in CASES {
        let state = ctx.state();
        let plan = common::distributed(&state, name, sql).await;
        let text = format!(
            "{sql}\n\n{}",
            explain::render(&plan.stages, false).join("\n")
        );
        insta::assert_snapshot!(*name, text);
    }
}
