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
