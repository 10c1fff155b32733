//! The engine cuts plans into stages and runs them as tasks; results equal DataFusion's own.

use datafusion::arrow::util::pretty::pretty_format_batches;
use futures::TryStreamExt;
use tributary_exec::{Config, Engine};

async fn run(engine: &Engine, sql: &str) -> Vec<String> {
    let ctx = engine.new_session_context("tpch", "tiny");
    let plan = ctx.state().create_logical_plan(sql).await.unwrap();
    let q = engine.execute(&ctx, plan, sql, "test").await.unwrap();
    let batches: Vec<_> = q.stream.try_collect().await.unwrap();
    pretty_format_batches(&batches)
        .unwrap()
        .to_string()
        .lines()
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_results_match_and_explain_shows_stages() {
    let engine = Engine::start(Config::default()).await.unwrap();
    let got = run(
        &engine,
        "select l_returnflag, l_linestatus, count(*) as n, sum(l_quantity) as q \
         from lineitem group by 1, 2 order by 1, 2",
    )
    .await;
    assert_eq!(got.len(), 8, "{got:#?}"); // 4 groups + header/borders
    assert!(
        got[3].contains("| A            | F            | 14876 | 380456.00 |"),
        "{got:#?}"
    );

    let joined = run(
        &engine,
        "select n_name, count(*) as c from customer join nation on c_nationkey = n_nationkey \
         group by n_name order by c desc, n_name limit 3",
    )
    .await;
    assert_eq!(joined.len(), 7, "{joined:#?}");

    let explain = run(
        &engine,
        "explain select l_returnflag, count(*) from lineitem group by 1",
    )
    .await;
    let text = explain.join("\n");
    println!("{text}");
    assert!(text.contains("Stage 0 [coordinator"), "{text}");
    assert!(text.contains("Stage 2"), "{text}");
    assert!(text.contains("ExchangeRead"), "{text}");
    assert!(text.contains("hash("), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_errors_reach_the_client_unwrapped() {
    let engine = Engine::start(Config::default()).await.unwrap();
    let ctx = engine.new_session_context("tpch", "tiny");
    let sql = "select l_orderkey / (l_linenumber - l_linenumber) from lineitem";
    let plan = ctx.state().create_logical_plan(sql).await.unwrap();
    let q = engine.execute(&ctx, plan, sql, "test").await.unwrap();
    let err = q.stream.try_collect::<Vec<_>>().await.unwrap_err();
    // The failing task's own error crosses the exchange, not a "task failed" wrapper.
    assert!(
        matches!(
            err.find_root(),
            datafusion::error::DataFusionError::ArrowError(e, _)
                if matches!(**e, datafusion::arrow::error::ArrowError::DivideByZero)
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursive_queries_over_multi_split_tables_run_in_one_task() {
    let engine = Engine::start(Config::default()).await.unwrap();
    let got = run(
        &engine,
        "with recursive r(k, d) as (\
           select 1 as k, 0 as d \
           union all \
           select r.k + x.c, r.d + 1 from r cross join (select count(*) as c from lineitem where l_quantity > 0) x where r.d < 3) \
         select max(k) as k, count(*) as n from r",
    )
    .await;
    assert!(got[3].contains("| 180526 | 4 |"), "{got:#?}");
}
