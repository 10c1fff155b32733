//! Every TPC-H query plans into stages and runs to completion on tpch.tiny (answers are checked against
//! PostgreSQL by compat-tests; this catches planning and scheduling failures close to their cause).

use futures::TryStreamExt;
use tributary_exec::{Config, Engine};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_22_queries_run_staged() {
    let engine = Engine::start(Config::default()).await.unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../compat-tests/queries");
    let mut failures = Vec::new();
    for q in 1..=22 {
        let sql = std::fs::read_to_string(dir.join(format!("q{q:02}.sql"))).unwrap();
        let ctx = engine.new_session_context("tpch", "tiny");
        let result = async {
            let plan = ctx.state().create_logical_plan(&sql).await?;
            let stream = engine.execute(&ctx, plan, &sql, "test").await?.stream;
            let batches: Vec<_> = stream.try_collect().await?;
            Ok::<_, Box<dyn std::error::Error>>(batches.iter().map(|b| b.num_rows()).sum::<usize>())
        }
        .await;
        match result {
            Ok(rows) => println!("q{q:02}: {rows} rows"),
            Err(e) => failures.push(format!("q{q:02}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
