//! The 22 TPC-H queries (compat-tests/queries) through a `postgres` catalog: TPC-H scale 0.01 is
//! loaded into a real PostgreSQL 15, mounted in the built server as catalog `postgres`, and every
//! query run through that catalog (so the planner pushes aggregates, joins and top-N into
//! PostgreSQL where that keeps their meaning) must give PostgreSQL's own answer (rules in
//! `compat_tests::results`).
//!
//! One test per query. PostgreSQL is started and loaded once per test process; so is the
//! Tributary server.

use std::sync::OnceLock;

use compat_tests::results;
use compat_tests::tpch_compare::{self, query_text, run_side};
use compat_tests::{ConfigDir, Postgres, Tributary, tpch};

/// Database and schema of the PostgreSQL copy, named like the server's catalog and schema.
const PG_DATABASE: &str = "tpch_on_pg";
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

/// The server with the loaded database mounted as catalog `postgres` (call after loading).
fn tributary(pg: &Postgres) -> &'static Tributary {
    static SERVER: OnceLock<(ConfigDir, Tributary)> = OnceLock::new();
    let (_, server) = SERVER.get_or_init(|| {
        let config = ConfigDir::new().catalog(
            "postgres",
            &format!(
                "connector = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"{PG_DATABASE}\"\nuser = \"postgres\"\n",
                pg.port()
            ),
        );
        let server = Tributary::start(Some(config.path()));
        (config, server)
    });
    server
}

async fn check_query(name: &str) {
    let pg = postgres_loaded().await;
    let pg_client = pg.connect(PG_DATABASE).await;
    pg_client
        .batch_execute(&format!("SET search_path TO {SCHEMA}"))
        .await
        .expect("SET search_path on PostgreSQL");
    let server = tributary(pg);
    tpch_compare::compare_with_postgres(name, &pg_client, server, "postgres", SCHEMA).await;
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
