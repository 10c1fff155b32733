//! Checking what a query pushes into a source: the remote statements EXPLAIN shows for a
//! connector's scan node (`PostgresScan`, `MySqlScan`), in the style of Trino's connector tests.
//! Shared by the pushdown tests over `postgres` and `mysql` catalogs; each compares the results
//! with its source on its own.

use tokio_postgres::Client;

use crate::Tributary;
use crate::results::query_text;

/// The plan of `EXPLAIN sql` on `client`, one plan line per line. Panics if EXPLAIN fails.
pub async fn explain(client: &Client, sql: &str) -> String {
    let plan = query_text(client, &format!("explain {sql}"))
        .await
        .unwrap_or_else(|e| panic!("explain {sql}: {e:?}"));
    plan.rows
        .into_iter()
        .map(|r| r[0].clone().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The remote SQL of every `scan_node` (e.g. `PostgresScan`) in `plan`: the text after
/// `{scan_node}: `, which ends with the scan's split count (`splits=N`).
pub fn remote_sqls(plan: &str, scan_node: &str) -> Vec<String> {
    let marker = format!("{scan_node}: ");
    plan.lines()
        .filter_map(|l| l.split_once(&marker).map(|(_, rest)| rest.to_string()))
        .collect()
}

/// One catalog of a running server whose remote statements are checked.
pub struct RemoteScans<'a> {
    /// The server, whose log tail is quoted when a check fails.
    pub server: &'a Tributary,
    /// The database (catalog) the checks connect to.
    pub catalog: &'a str,
    /// The connector's scan node in EXPLAIN output.
    pub scan_node: &'a str,
}

impl RemoteScans<'_> {
    /// EXPLAIN of `sql` in the catalog and the remote statements in it.
    pub async fn plan(&self, sql: &str) -> (String, Vec<String>) {
        let client = self.server.connect(self.catalog).await;
        let plan = explain(&client, sql).await;
        let sqls = remote_sqls(&plan, self.scan_node);
        (plan, sqls)
    }

    /// Asserts that EXPLAIN shows exactly one remote statement, of one split, containing every
    /// one of `fragments`.
    pub async fn assert_pushed(&self, sql: &str, fragments: &[&str]) {
        let (plan, sqls) = self.plan(sql).await;
        assert_eq!(
            sqls.len(),
            1,
            "expected one remote statement:\n{plan}\n{}",
            crate::tail(&self.server.log(), 20)
        );
        assert!(
            sqls[0].contains("splits=1"),
            "a pushed statement is one split:\n{plan}"
        );
        for f in fragments {
            assert!(sqls[0].contains(f), "remote SQL lacks {f:?}:\n{plan}");
        }
    }

    /// Asserts that EXPLAIN shows at least one remote statement and none of `fragments` in any.
    pub async fn assert_kept_local(&self, sql: &str, fragments: &[&str]) {
        let (plan, sqls) = self.plan(sql).await;
        assert!(!sqls.is_empty(), "no remote scan:\n{plan}");
        for s in &sqls {
            for f in fragments {
                assert!(
                    !s.contains(f),
                    "remote SQL has {f:?}, must be local:\n{plan}"
                );
            }
        }
    }

    /// Asserts that `sql`, which joins `tpch.tiny.nation` with a per-`grp` count of the
    /// catalog's 60 test items, pushes the grouping into the source and returns the first four
    /// nations with 15 items each.
    pub async fn assert_federated_join_pushes_grouping(&self, sql: &str) {
        let (plan, sqls) = self.plan(sql).await;
        assert!(sqls.iter().any(|s| s.contains("GROUP BY")), "{plan}");
        let client = self.server.connect(self.catalog).await;
        let rows = query_text(&client, sql).await.unwrap();
        assert_eq!(
            rows.strings(),
            vec![
                vec!["ALGERIA", "15"],
                vec!["ARGENTINA", "15"],
                vec!["BRAZIL", "15"],
                vec!["CANADA", "15"],
            ]
        );
    }
}
