//! Real Python drivers against the built `tributary` binary: psycopg 3 (text and binary results,
//! prepared statements, server-side cursors, COPY), psycopg2, asyncpg (its type introspection) and
//! SQLAlchemy Inspector reflection. Each driver runs a probe script from `compat-tests/clients/` that
//! asserts what it gets; `scripts/deps/clients.sh` installs the drivers (a missing one fails the test).

use std::path::PathBuf;
use std::process::Command;

use compat_tests::Tributary;

/// The Python with the drivers: `$CLIENTS_PYTHON`, else the venv scripts/test.sh creates.
fn python() -> PathBuf {
    let path = std::env::var_os("CLIENTS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| compat_tests::target_dir().join("test-tools/venv/bin/python"));
    assert!(
        path.is_file(),
        "no Python with the client drivers at {}: run scripts/test.sh (scripts/deps/clients.sh installs \
         psycopg, psycopg2-binary, asyncpg and SQLAlchemy) or set CLIENTS_PYTHON",
        path.display()
    );
    path
}

fn probe(script: &str) {
    let tributary = Tributary::start(None);
    let script_path = compat_tests::workspace_root()
        .join("compat-tests/clients")
        .join(script);
    let output = Command::new(python())
        .arg(&script_path)
        .arg(tributary.port().to_string())
        .output()
        .expect("python runs");
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
    probe("psycopg3_probe.py");
}

#[test]
fn psycopg2_queries_named_cursor_copy_csv() {
    probe("psycopg2_probe.py");
}

#[test]
fn asyncpg_binary_and_type_introspection() {
    probe("asyncpg_probe.py");
}

#[test]
fn sqlalchemy_inspector_reflection() {
    probe("sqlalchemy_probe.py");
}
