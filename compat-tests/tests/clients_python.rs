//! Real Python drivers against the built `tributary` binary: psycopg 3 (text and binary results,
//! prepared statements, server-side cursors, COPY), psycopg2, asyncpg (its type introspection) and
//! SQLAlchemy Inspector reflection and `MetaData.reflect` (of `tpch` and of a `postgres` catalog
//! whose tables have keys and comments). Each driver runs a probe script from
//! `compat-tests/clients/` that asserts what it gets; `scripts/deps/clients.sh` installs the drivers
//! (a missing one fails the test).

#[path = "support/keyed.rs"]
mod keyed;
#[path = "support/python.rs"]
mod python;

use compat_tests::Tributary;

fn probe(tributary: &Tributary, script: &str, args: &[&str]) {
    let port = tributary.port().to_string();
    let mut all = vec![port.as_str()];
    all.extend_from_slice(args);
    let output = python::run(script, &all);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed:\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver log:\n{}",
        compat_tests::tail(&tributary.log(), 40)
    );
}

#[test]
fn psycopg3_text_binary_cursors_copy() {
    probe(&Tributary::start(None), "psycopg3_probe.py", &[]);
}

#[test]
fn psycopg2_queries_named_cursor_copy_csv() {
    probe(&Tributary::start(None), "psycopg2_probe.py", &[]);
}

#[test]
fn asyncpg_binary_and_type_introspection() {
    probe(&Tributary::start(None), "asyncpg_probe.py", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlalchemy_inspector_reflection() {
    let config = keyed::catalog().await;
    let tributary = Tributary::start(Some(config.path()));
    probe(&tributary, "sqlalchemy_probe.py", &[keyed::CATALOG]);
}
