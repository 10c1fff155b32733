//! The 22 TPC-H queries (compat-tests/queries) through a `postgres` catalog: TPC-H scale 0.01 is
//! loaded into a real PostgreSQL 15, mounted in the built server as catalog `postgres`, and every
//! query run through that catalog (so the planner pushes aggregates, joins and top-N into
//! PostgreSQL where that keeps their meaning) must give PostgreSQL's own answer (rules in
//! `compat_tests::results`).
//!
//! One test per query. PostgreSQL is started and loaded once per test process; so is the
//! Tributary server.

use std::sync::OnceLock;

use compat_tests::tpch_compare;
use compat_tests::{ConfigDir, Postgres, Tributary};

/// Database of the PostgreSQL copy (schema `tiny`), mounted as catalog `postgres`.
const PG_DATABASE: &str = "tpch_on_pg";

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
    let pg = tpch_compare::postgres_loaded(PG_DATABASE).await;
    tpch_compare::check_query(name, PG_DATABASE, tributary(pg), "postgres").await;
}

compat_tests::tpch_query_tests!(check_query);

/// The harness itself: all 22 queries run on PostgreSQL and return rows (independent of the
/// server, so a harness or data problem is told apart from a server bug).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_answers_all_queries() {
    tpch_compare::assert_postgres_answers_all_queries(PG_DATABASE).await;
}
