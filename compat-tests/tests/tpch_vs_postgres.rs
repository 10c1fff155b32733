//! The 22 TPC-H queries (compat-tests/queries, a copy of the bench kit's) on a real PostgreSQL 15
//! loaded with TPC-H scale 0.01 and on Tributary's built-in `tpch.tiny` schema, same generator;
//! the results must match (rules in `compat_tests::results`).
//!
//! One test per query. PostgreSQL is started and loaded once per test process; so is the
//! Tributary server (it holds no state between queries).

use std::sync::OnceLock;

use compat_tests::results;
use compat_tests::tpch_compare::{self, query_text, run_side};
use compat_tests::{Postgres, Tributary, tpch};

/// Database and schema of the PostgreSQL copy, named like the server's catalog and schema.
const PG_DATABASE: &str = "tpch";
const SCHEMA: &str = "tiny";
const SCALE_FACTOR: f64 = 0.01;

async fn postgres_loaded() -> &'static Postgres {
    static LOADED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let pg = Postgres::shared();
    LOADED
        .get_or_init(|| async {
            pg.create_database(PG_DATABASE).await;
            let client = pg.connect(PG_DATABASE).await;
            tpch::load_into_postgres(&client, SCHEMA, SCALE_FACTOR).await;
        })
        .await;
    pg
}

fn tributary() -> &'static Tributary {
    static SERVER: OnceLock<Tributary> = OnceLock::new();
    SERVER.get_or_init(|| Tributary::start(None))
}

async fn check_query(name: &str) {
    let pg = postgres_loaded().await;
    let pg_client = pg.connect(PG_DATABASE).await;
    pg_client
        .batch_execute(&format!("SET search_path TO {SCHEMA}"))
        .await
        .expect("SET search_path on PostgreSQL");
    let server = tributary();
    tpch_compare::compare_with_postgres(name, &pg_client, server, "tpch", SCHEMA).await;
}

macro_rules! tpch_queries {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                check_query(stringify!($name)).await;
            }
        )*
    };
}

tpch_queries!(
    q01, q02, q03, q04, q05, q06, q07, q08, q09, q10, q11, q12, q13, q14, q15, q16, q17, q18, q19,
    q20, q21, q22,
);

/// The harness itself: all 22 queries run on PostgreSQL and return rows (independent of the
/// server, so a harness or data problem is told apart from a server bug).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_answers_all_queries() {
    let pg = postgres_loaded().await;
    let client = pg.connect(PG_DATABASE).await;
    client
        .batch_execute(&format!("SET search_path TO {SCHEMA}"))
        .await
        .expect("SET search_path");
    let count = results::query_text(&client, "select count(*) from lineitem")
        .await
        .expect("count lineitem");
    assert_eq!(count.rows, vec![vec![Some("60175".to_string())]]);
    for i in 1..=22 {
        let name = format!("q{i:02}");
        let sql = query_text(&name);
        let rows = run_side("PostgreSQL", &client, sql.trim().trim_end_matches(';'))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!rows.rows.is_empty(), "{name}: no rows from PostgreSQL");
    }
}
