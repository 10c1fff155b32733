//! pgjdbc (Debian `libpostgresql-jdbc-java`) against the built `tributary` binary, through small Java
//! programs in `compat-tests/clients/` (compiled here with javac):
//! - `JdbcProbe` calls the DatabaseMetaData methods Metabase and DBeaver use (getCatalogs,
//!   getSchemas, getTables, getColumns, getPrimaryKeys, getIndexInfo, getImportedKeys, getTypeInfo,
//!   getProcedures, getFunctions, getUDTs), executes PreparedStatements past pgjdbc's
//!   prepareThreshold (named server statements, binary results) and streams tpch.tiny.lineitem with
//!   setFetchSize(100) (Execute with a row limit, PortalSuspended, resume); on a `postgres` catalog,
//!   the primary keys, index and comments its tables have at the source;
//! - `MetabaseProbe` sends what Metabase's PostgreSQL driver sends to sync a database (its own
//!   pg_catalog / information_schema queries, with parameters), on `tpch` and on a `postgres`
//!   catalog whose tables have primary keys and comments.
//!
//! `scripts/deps/clients.sh` installs the JDK and the driver and exports PGJDBC_JAR (a missing one
//! fails the test).

#[path = "support/java.rs"]
mod java;
#[path = "support/keyed.rs"]
mod keyed;

use compat_tests::Tributary;

/// Runs a probe; returns its stdout, panicking with its output and the server's log on failure.
fn probe(tributary: &Tributary, class: &str, args: &[&str]) -> String {
    let port = tributary.port().to_string();
    let mut all = vec![port.as_str()];
    all.extend_from_slice(args);
    let output = java::run(class, &all);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{class} {args:?} failed:\nstdout:\n{stdout}\nstderr:\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        compat_tests::tail(&tributary.log(), 40)
    );
    stdout
}

fn assert_lines(output: &str, expected: &[&str]) {
    for line in expected {
        assert!(
            output.lines().any(|l| l == *line),
            "line {line:?} missing from:\n{output}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgjdbc_metadata_keys_prepared_binary_and_fetch_size() {
    let config = keyed::catalog().await;
    let tributary = Tributary::start(Some(config.path()));
    let stdout = probe(&tributary, "JdbcProbe", &[keyed::CATALOG]);
    assert!(
        stdout.contains("keys ok") && stdout.contains("jdbc ok"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metabase_sync_queries() {
    let config = keyed::catalog().await;
    let tributary = Tributary::start(Some(config.path()));

    let tpch = probe(&tributary, "MetabaseProbe", &["tpch", "tiny"]);
    assert_lines(
        &tpch,
        &[
            "table|tiny|nation|TABLE|",
            "table|tiny|lineitem|TABLE|",
            "field|nation|n_nationkey|int8|0|pk=false|required=true|auto=false|",
            "field|nation|n_name|text|1|pk=false|required=true|auto=false|",
            "field|lineitem|l_quantity|numeric|4|pk=false|required=true|auto=false|",
            "field|lineitem|l_shipdate|date|10|pk=false|required=true|auto=false|",
            "metabase sync ok: 8 tables",
        ],
    );

    // What a connector knows beyond columns reaches Metabase: keys, comments, declared types.
    let keyed = probe(&tributary, "MetabaseProbe", &[keyed::CATALOG, "public"]);
    assert_lines(
        &keyed,
        &[
            "table|public|orders|TABLE|Customer orders",
            "table|public|lines|TABLE|",
            "field|orders|id|int4|0|pk=true|required=true|auto=false|",
            "field|orders|code|varchar|1|pk=false|required=false|auto=false|",
            "field|orders|total|numeric|2|pk=false|required=false|auto=false|Total in EUR",
            "field|lines|order_id|int4|0|pk=true|required=true|auto=false|",
            "field|lines|line|int4|1|pk=true|required=true|auto=false|",
            "field|lines|qty|int4|2|pk=false|required=false|auto=false|",
            "index|orders|id",
            "index|lines|order_id",
            "metabase sync ok: 2 tables",
        ],
    );
    assert!(!keyed.contains("fk|"), "{keyed}");
}
