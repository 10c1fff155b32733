//! The Python with the client drivers (psycopg 3, psycopg2, asyncpg, SQLAlchemy) and the probe
//! scripts of `compat-tests/clients/`. Included by the test files that run them.

use std::path::PathBuf;
use std::process::{Command, Output};

/// `$CLIENTS_PYTHON`, else the venv scripts/test.sh creates.
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

/// Runs `compat-tests/clients/<script>` with `args`.
pub fn run(script: &str, args: &[&str]) -> Output {
    let script_path = compat_tests::workspace_root()
        .join("compat-tests/clients")
        .join(script);
    Command::new(python())
        .arg(&script_path)
        .args(args)
        .output()
        .expect("python runs")
}
